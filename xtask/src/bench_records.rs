//! The record benchmarks of `cargo xtask bench` (issue "Scale"): a synthetic project of N
//! records × 30 fields, side by side in one run with curl and PyCap 2.7.0 (installed into a
//! virtual environment under target/), each measured operation in its own process so its peak
//! RSS is its own.
//!
//! Per size: the emulator loading the project XML into a data directory (time, RSS), a one-shot
//! JSON export by curl, our CLI (one batch, and batches of 100 and 1,000), PyCap, and an import
//! in batches of 1,000 into an empty project; growth exponents between sizes; at the largest
//! size, one-record exports from 64 concurrent clients. Sizes: REDCAP_BENCH_RECORDS
//! (default 10000,30000,100000); REDCAP_BENCH_NO_PYCAP=1 skips PyCap. The exports (curl and
//! the CLI), the one-record calls and the import run REDCAP_BENCH_ROUNDS times (default 3; the
//! exports interleaved) and report the median time and the highest peak RSS: one run of a
//! second is at the mercy of this machine's noise.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const FIELDS: u64 = 30;
const PYCAP: &str = "pycap==2.7.0";

/// Runs a command under Python's resource accounting: (wall ms, peak RSS KiB of the child).
const MEASURE_PY: &str = r#"
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
ms = (time.monotonic() - t) * 1000
if r.returncode:
    sys.exit(r.returncode)
print(int(ms), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"#;

/// PyCap's one-shot export, timed inside Python: (ms, peak RSS KiB, rows).
const PYCAP_PY: &str = r#"
import resource, sys, time
from redcap import Project
p = Project(sys.argv[1], sys.argv[2])
t = time.monotonic()
rows = p.export_records(format_type="json")
ms = (time.monotonic() - t) * 1000
print(int(ms), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(rows))
"#;

pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    pub(crate) token: String,
    load_ms: f64,
}

impl Server {
    /// Starts the shipped `redcap-emulator` binary (beside `bench_bin`, the same profile) on a
    /// free port with `xml` loaded into the data directory `dir`: the emulator users run, with
    /// its own allocator, not a copy hosted by the driver.
    pub(crate) fn start(bench_bin: &Path, dir: &Path, xml: &Path) -> Result<Server, String> {
        let started = Instant::now();
        let mut child = Command::new(bench_bin.with_file_name("redcap-emulator"))
            .arg("--project")
            .arg(xml)
            .arg("--data-dir")
            .arg(dir)
            .args(["--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("redcap-emulator: {e}"))?;
        // It prints the API's URL, the super token, then a line per project with its token.
        let (mut url, mut token) = (None, None);
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        while token.is_none() {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                return Err("the emulator did not start".into());
            };
            if let Some(u) = line.strip_prefix("REDCap emulator API: ") {
                url = Some(u.trim().to_owned());
            } else if line.starts_with("project ") {
                token = line.rsplit_once(": token ").and_then(|(_, t)| t.split_whitespace().next()).map(str::to_owned);
            }
        }
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        let url = url.ok_or("the emulator printed no URL")?;
        Ok(Server { child, url, token: token.unwrap_or_default(), load_ms })
    }

    fn status_kib(&self, key: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with(key)).map(str::to_owned))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    }

    /// Resets the peak RSS so the next reading is the peak of what follows.
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    /// The emulator's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stop(mut self) {
        // It serves until killed; its data directory survives that (the kill -9 tests).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn words(out: &std::process::Output, what: &str) -> Result<Vec<f64>, String> {
    if !out.status.success() {
        return Err(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|w| w.parse().ok()).collect())
}

/// (ms, peak RSS MiB) of one export into typed rows, decoded from the whole body and while it
/// streams.
pub(crate) type TypedRows = [(f64, f64); 2];

/// Runs the driver's `typed` export of `project` (`text` or `typed`) both ways.
pub(crate) fn typed_rows(bench_bin: &Path, url: &str, token: &str, project: &str) -> Result<TypedRows, String> {
    let mut out = [(0.0, 0.0); 2];
    for (slot, how) in out.iter_mut().zip(["buffered", "streamed"]) {
        let run = Command::new(bench_bin).args(["typed", url, token, project, how]).output();
        let w = words(&run.map_err(|e| e.to_string())?, "typed rows")?;
        *slot = (w.first().copied().unwrap_or(0.0), w.get(1).copied().unwrap_or(0.0) / 1024.0);
    }
    Ok(out)
}

fn measured(cmd: &mut Command, what: &str) -> Result<(f64, f64), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    let w = words(&out, what)?;
    Ok((w.first().copied().unwrap_or(0.0), w.get(1).copied().unwrap_or(0.0) / 1024.0))
}

pub(crate) fn python_measure(cmd: &[&str], env: &[(&str, &str)], what: &str) -> Result<(f64, f64), String> {
    let mut c = Command::new("python3");
    c.arg("-c").arg(MEASURE_PY).args(cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    measured(&mut c, what)
}

/// A venv with PyCap 2.7.0 (made once, kept under target/).
pub(crate) fn pycap_python(target: &Path) -> Result<PathBuf, String> {
    let venv = target.join("bench-venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python).args(["-c", "import redcap"]).output().is_ok_and(|o| o.status.success());
    if ready {
        return Ok(python);
    }
    eprintln!("installing {PYCAP} into {}…", venv.display());
    let ok = Command::new("python3").args(["-m", "venv", &venv.to_string_lossy()]).status().is_ok_and(|s| s.success())
        && Command::new(&python).args(["-m", "pip", "install", "--quiet", PYCAP]).status().is_ok_and(|s| s.success());
    if ok { Ok(python) } else { Err(format!("could not install {PYCAP} (set REDCAP_BENCH_NO_PYCAP=1 to skip it)")) }
}

/// How many times each compared export runs (REDCAP_BENCH_ROUNDS, default 3).
pub(crate) fn rounds() -> usize {
    std::env::var("REDCAP_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1)
}

/// The median of `v` (the mean of the middle two for an even count; 0 for none).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(crate) fn curl_export(url: &str, token: &str, out: &Path) -> Result<f64, String> {
    let started = Instant::now();
    let status = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "-o"])
        .arg(out)
        .args(["-d", &format!("token={token}"), "-d", "content=record", "-d", "format=json", url])
        .status()
        .map_err(|e| format!("curl is needed for the comparison: {e}"))?;
    if !status.success() {
        return Err(format!("curl failed: {status}"));
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// One size's figures.
#[derive(Default, Clone)]
struct Row {
    n: u64,
    load_ms: f64,
    emu_rss_loaded: f64,
    emu_peak_load: f64,
    curl_ms: f64,
    emu_peak_export: f64,
    cli_ms: f64,
    cli_rss: f64,
    b100_ms: f64,
    b100_rss: f64,
    b1000_ms: f64,
    b1000_rss: f64,
    pycap_ms: Option<f64>,
    pycap_rss: Option<f64>,
    import_ms: f64,
    import_rss: f64,
    emu_peak_import: f64,
}

fn exponent(a: &Row, b: &Row, f: impl Fn(&Row) -> f64) -> f64 {
    let (ta, tb) = (f(a).max(1.0), f(b).max(1.0));
    (tb / ta).ln() / (b.n as f64 / a.n as f64).ln()
}

pub fn bench(bench_bin: &Path, target: &Path, work: &Path) -> Result<bool, String> {
    let sizes: Vec<u64> = std::env::var("REDCAP_BENCH_RECORDS")
        .unwrap_or_else(|_| "10000,30000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cli = target.join("release/redcap");
    let python = if std::env::var_os("REDCAP_BENCH_NO_PYCAP").is_some() { None } else { Some(pycap_python(target)?) };
    let dir = work.join("records");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let meta = dir.join("empty.xml");
    let out = Command::new(bench_bin).args(["gen-xml", &FIELDS.to_string(), "0"]).arg(&meta).output();
    words(&out.map_err(|e| e.to_string())?, "gen-xml")?;
    let mut rows: Vec<Row> = Vec::new();
    let mut one_record: Option<(u64, f64, f64)> = None;
    // (records, [buffered, streamed] (ms, peak RSS MiB), body MiB) of one export into typed rows,
    // at the largest size.
    let mut typed: Option<(u64, TypedRows, f64)> = None;
    for &n in &sizes {
        eprintln!("records benchmark: {n} records × {FIELDS} fields…");
        let mut row = Row { n, ..Row::default() };
        let xml = dir.join(format!("project-{n}.xml"));
        let out = Command::new(bench_bin).args(["gen-xml", &FIELDS.to_string(), &n.to_string()]).arg(&xml).output();
        words(&out.map_err(|e| e.to_string())?, "gen-xml")?;
        let data = dir.join(format!("data-{n}"));
        let server = Server::start(bench_bin, &data, &xml)?;
        let _ = std::fs::remove_file(&xml);
        row.load_ms = server.load_ms;
        row.emu_peak_load = server.status_kib("VmHWM:") as f64 / 1024.0;
        row.emu_rss_loaded = server.status_kib("VmRSS:") as f64 / 1024.0;
        let (url, token) = (server.url.clone(), server.token.clone());
        server.reset_peak();
        let body = dir.join("curl.json");
        let env = [("REDCAP_API_URL", url.as_str()), ("REDCAP_API_TOKEN", token.as_str())];
        let out_file = dir.join("cli.json").to_string_lossy().into_owned();
        let cli_s = cli.to_string_lossy().into_owned();
        // (times, peak RSS) of curl, then the CLI in one batch (no --batch-size: every record in
        // one call, no id list first) and in batches of 100 and 1,000; round after round.
        let mut runs: [(Vec<f64>, f64); 4] = Default::default();
        for _ in 0..rounds() {
            runs[0].0.push(curl_export(&url, &token, &body)?);
            for (batch, run) in [None, Some("100"), Some("1000")].into_iter().zip(&mut runs[1..]) {
                let mut args = vec![cli_s.as_str(), "--quiet", "records", "export", "-o", &out_file];
                if let Some(b) = batch {
                    args.extend(["--batch-size", b]);
                }
                let (m, r) = python_measure(&args, &env, "redcap records export")?;
                run.0.push(m);
                run.1 = run.1.max(r);
            }
        }
        // The emulator's peak over all those exports.
        row.emu_peak_export = server.status_kib("VmHWM:") as f64 / 1024.0;
        let [curl, one, b100, b1000] = runs.map(|(ms, rss)| (median(ms), rss));
        row.curl_ms = curl.0;
        (row.cli_ms, row.cli_rss) = one;
        (row.b100_ms, row.b100_rss) = b100;
        (row.b1000_ms, row.b1000_rss) = b1000;
        if let Some(py) = &python {
            let out = Command::new(py).arg("-c").arg(PYCAP_PY).args([&url, &token]).output();
            let w = words(&out.map_err(|e| e.to_string())?, "PyCap export")?;
            row.pycap_ms = w.first().copied();
            row.pycap_rss = w.get(1).map(|k| k / 1024.0);
        }
        if Some(&n) == sizes.iter().max() {
            let body_mib = std::fs::metadata(&body).map(|m| m.len()).unwrap_or(0) as f64 / (1024.0 * 1024.0);
            typed = Some((n, typed_rows(bench_bin, &url, &token, "text")?, body_mib));
            let calls = 4000u64;
            let (mut times, mut errors) = (Vec::new(), 0.0f64);
            for _ in 0..rounds() {
                let out = Command::new(bench_bin)
                    .args(["one-record", &url, &token, &n.to_string(), &calls.to_string(), "64"])
                    .output();
                let w = words(&out.map_err(|e| e.to_string())?, "one-record")?;
                times.push(w.first().copied().unwrap_or(0.0));
                errors = errors.max(w.get(2).copied().unwrap_or(0.0));
            }
            one_record = Some((calls, median(times), errors));
        }
        server.stop();
        let _ = std::fs::remove_dir_all(&data);
        // Import into an empty project, round after round (a new one each time).
        let mut times = Vec::new();
        for round in 0..rounds() {
            let data = dir.join(format!("import-{n}-{round}"));
            let server = Server::start(bench_bin, &data, &meta)?;
            server.reset_peak();
            let out = Command::new(bench_bin)
                .args(["import", &server.url, &server.token, &FIELDS.to_string(), &n.to_string(), "1000"])
                .output();
            let w = words(&out.map_err(|e| e.to_string())?, "import")?;
            times.push(w.first().copied().unwrap_or(0.0));
            row.import_rss = row.import_rss.max(w.get(1).copied().unwrap_or(0.0) / 1024.0);
            row.emu_peak_import = row.emu_peak_import.max(server.status_kib("VmHWM:") as f64 / 1024.0);
            server.stop();
            let _ = std::fs::remove_dir_all(&data);
        }
        row.import_ms = median(times);
        rows.push(row);
    }
    report(&rows, one_record, typed)
}

fn report(
    rows: &[Row],
    one_record: Option<(u64, f64, f64)>,
    typed: Option<(u64, TypedRows, f64)>,
) -> Result<bool, String> {
    println!(
        "\nrecords × {FIELDS} fields, JSON, loopback (ms, the median of {} rounds; RSS in MiB; one process per measurement)\n",
        rounds()
    );
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "records",
        "XML load",
        "emu RSS",
        "curl",
        "emu peak",
        "CLI 1",
        "CLI RSS",
        "CLI b100",
        "CLI b1000",
        "PyCap",
        "import"
    );
    for r in rows {
        let py = r.pycap_ms.map(|m| format!("{m:.0}")).unwrap_or_else(|| "-".into());
        println!(
            "{:>8} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.1} {:>9.0} {:>9.0} {:>9} {:>9.0}",
            r.n,
            r.load_ms,
            r.emu_rss_loaded,
            r.curl_ms,
            r.emu_peak_export,
            r.cli_ms,
            r.cli_rss,
            r.b100_ms,
            r.b1000_ms,
            py,
            r.import_ms
        );
    }
    println!("\npeak RSS (MiB): emulator while loading / exporting / importing; clients");
    for r in rows {
        let py = r.pycap_rss.map(|m| format!("{m:.0}")).unwrap_or_else(|| "-".into());
        println!(
            "{:>8}: emulator {:.0} / {:.0} / {:.0}; CLI one batch {:.1}, b100 {:.1}, b1000 {:.1}; PyCap {py}; importer {:.0}",
            r.n,
            r.emu_peak_load,
            r.emu_peak_export,
            r.emu_peak_import,
            r.cli_rss,
            r.b100_rss,
            r.b1000_rss,
            r.import_rss
        );
    }
    let mut checks: Vec<(String, bool)> = Vec::new();
    if rows.len() >= 2 {
        println!("\ngrowth exponents (1.0 = linear)");
        for w in rows.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let e = |f: fn(&Row) -> f64| exponent(a, b, f);
            println!(
                "{:>8} → {:<8} curl {:.2}  CLI {:.2}  b100 {:.2}  b1000 {:.2}  import {:.2}  XML load {:.2}",
                a.n,
                b.n,
                e(|r| r.curl_ms),
                e(|r| r.cli_ms),
                e(|r| r.b100_ms),
                e(|r| r.b1000_ms),
                e(|r| r.import_ms),
                e(|r| r.load_ms)
            );
            for (what, f) in [
                ("batched export (100)", (|r: &Row| r.b100_ms) as fn(&Row) -> f64),
                ("batched export (1,000)", |r: &Row| r.b1000_ms),
                ("import (batches of 1,000)", |r: &Row| r.import_ms),
            ] {
                let x = exponent(a, b, f);
                checks.push((format!("{what} linear {}→{}: exponent {x:.2} ≤ 1.1", a.n, b.n), x <= 1.1));
            }
        }
    }
    if let Some((calls, ms, errors)) = one_record {
        let rate = calls as f64 / (ms / 1000.0);
        let n = rows.iter().map(|r| r.n).max().unwrap_or(0);
        println!("\none-record export from the {n}-record project, 64 clients: {rate:.0} requests/s ({errors} errors)");
        checks.push((
            format!("one-record export, 64 clients: {rate:.0} req/s ≥ 2,000, no errors"),
            rate >= 2000.0 && errors == 0.0,
        ));
    }
    if let Some((n, [(b_ms, b_rss), (s_ms, s_rss)], body)) = typed {
        println!(
            "\ntyped rows (31 String fields) of the {n}-record export, body {body:.0} MiB: \
             decoded from the body {b_ms:.0} ms, peak RSS {b_rss:.0} MiB; \
             decoded while it streams {s_ms:.0} ms, peak RSS {s_rss:.0} MiB"
        );
        checks.push((
            format!("{n}: typed rows (String fields, streamed) peak RSS {s_rss:.0} MiB ≤ 1.5 × the body {body:.0} MiB"),
            s_rss <= 1.5 * body,
        ));
    }
    if let Some(big) = rows.iter().find(|r| r.n == 100_000) {
        checks.push((
            format!("100k batched export (1,000): {:.0} ms ≤ 1.5 × curl one-shot {:.0} ms", big.b1000_ms, big.curl_ms),
            big.b1000_ms <= 1.5 * big.curl_ms,
        ));
        checks.push((
            format!("100k one-shot export (curl): {:.0} ms ≤ 1,850 ms (4× faster than 7,400 ms)", big.curl_ms),
            big.curl_ms <= 1850.0,
        ));
        let rss = big.emu_rss_loaded.max(big.emu_peak_export);
        checks.push((format!("emulator with the 100k project: {rss:.0} MiB < 400 MiB"), rss < 400.0));
        checks
            .push((format!("100k project XML loaded in {:.1} s < 10 s", big.load_ms / 1000.0), big.load_ms < 10_000.0));
    }
    for r in rows {
        checks.push((
            format!("{}: CLI one batch {:.0} ms ≤ 1.2 × curl {:.0} ms", r.n, r.cli_ms, r.curl_ms),
            r.cli_ms <= 1.2 * r.curl_ms,
        ));
        let worst = r.cli_rss.max(r.b100_rss).max(r.b1000_rss);
        checks.push((format!("{}: CLI export peak RSS {worst:.1} MiB < 64 MiB", r.n), worst < 64.0));
    }
    println!();
    let mut ok = true;
    for (what, pass) in checks {
        println!("{} {what}", if pass { "PASS" } else { "MISS" });
        ok &= pass;
    }
    Ok(ok)
}
