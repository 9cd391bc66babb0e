//! The dataset benchmark of `cargo xtask bench` (issue 10 item 6): a generated project of N
//! records × 30 fields (dates, datetimes, times, numbers, choices, checkboxes, a repeating
//! instrument; see redcap-bench's `synth_typed.rs`) pulled to Parquet by `redcap dataset pull`,
//! side by side in the same run with PyCap 2.7.0 `export_records(format_type="df")` and pandas
//! `to_parquet` (pyarrow), and a one-shot curl export for the wall-time bar. Each path runs in
//! its own process, measured the same way (wall time, the child's user+system CPU, its peak
//! RSS); the emulator's CPU time during each path is read from /proc (the server's share, the
//! same work for every client).
//!
//! `REDCAP_BENCH_ONLY=dataset` runs only this; sizes with REDCAP_BENCH_DATASET_RECORDS
//! (default 10000,30000,100000), batch size with REDCAP_BENCH_DATASET_BATCH (default 1000),
//! batches in flight with REDCAP_BENCH_DATASET_PARALLEL (`--parallel`, default 2, the CLI's);
//! REDCAP_BENCH_NO_PYCAP=1 skips the Python path. Each path runs REDCAP_BENCH_ROUNDS times
//! (default 3), interleaved; the report gives the medians and the highest peak RSS.

use std::path::Path;
use std::process::Command;

use crate::bench_records::{Server, curl_export, median, pycap_python, rounds, words};

/// Runs a command: (wall ms, peak RSS KiB, user+system CPU ms) of the child.
const MEASURE_PY: &str = r#"
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
ms = (time.monotonic() - t) * 1000
if r.returncode:
    sys.exit(r.returncode)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(int(ms), u.ru_maxrss, int((u.ru_utime + u.ru_stime) * 1000))
"#;

/// The Python path: PyCap's DataFrame export, then Parquet through pyarrow.
const PYCAP_DF_PY: &str = r#"
import sys
from redcap import Project
p = Project(sys.argv[1], sys.argv[2])
df = p.export_records(format_type="df")
df.to_parquet(sys.argv[3], engine="pyarrow")
print(len(df))
"#;

/// One path's figures.
#[derive(Clone, Copy, Default)]
struct Run {
    ms: f64,
    rss_mib: f64,
    cpu_ms: f64,
    emu_cpu_ms: f64,
}

impl Run {
    /// Each figure's median over `runs`; the peak RSS is the highest.
    fn median(runs: &[Run]) -> Run {
        let of = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
        Run {
            ms: of(|r| r.ms),
            rss_mib: runs.iter().map(|r| r.rss_mib).fold(0.0, f64::max),
            cpu_ms: of(|r| r.cpu_ms),
            emu_cpu_ms: of(|r| r.emu_cpu_ms),
        }
    }
}

#[derive(Default)]
struct Size {
    n: u64,
    curl: Run,
    pull: Run,
    pycap: Option<Run>,
    rows: u64,
    /// The JSON export's size in MiB (curl's body).
    body_mib: f64,
    /// The export into a typed struct, both ways (the largest size only).
    typed: Option<crate::bench_records::TypedRows>,
}

/// The emulator's user+system CPU time so far, in ms.
fn cpu_ms(pid: u32, tick_ms: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name and state.
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) * tick_ms
}

fn measure(server: &Server, tick_ms: f64, cmd: &[&str], what: &str) -> Result<Run, String> {
    let before = cpu_ms(server.pid(), tick_ms);
    let mut c = Command::new("python3");
    c.arg("-c").arg(MEASURE_PY).args(cmd).env("REDCAP_API_URL", &server.url).env("REDCAP_API_TOKEN", &server.token);
    let w = words(&c.output().map_err(|e| format!("{what}: {e}"))?, what)?;
    Ok(Run {
        ms: w.first().copied().unwrap_or(0.0),
        rss_mib: w.get(1).copied().unwrap_or(0.0) / 1024.0,
        cpu_ms: w.get(2).copied().unwrap_or(0.0),
        emu_cpu_ms: cpu_ms(server.pid(), tick_ms) - before,
    })
}

/// A venv with PyCap 2.7.0, pandas and pyarrow (the record benchmark's venv, with the two added).
fn df_python(target: &Path) -> Result<std::path::PathBuf, String> {
    let python = pycap_python(target)?;
    let ready = Command::new(&python).args(["-c", "import pandas, pyarrow"]).output().is_ok_and(|o| o.status.success());
    if !ready {
        eprintln!("installing pandas and pyarrow beside PyCap…");
        let ok = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "pandas", "pyarrow"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("could not install pandas and pyarrow (set REDCAP_BENCH_NO_PYCAP=1 to skip PyCap)".into());
        }
    }
    Ok(python)
}

pub fn bench(bench_bin: &Path, target: &Path, work: &Path) -> Result<bool, String> {
    let sizes: Vec<u64> = std::env::var("REDCAP_BENCH_DATASET_RECORDS")
        .unwrap_or_else(|_| "10000,30000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let batch: u64 = std::env::var("REDCAP_BENCH_DATASET_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let parallel: u64 =
        std::env::var("REDCAP_BENCH_DATASET_PARALLEL").ok().and_then(|v| v.parse().ok()).unwrap_or(2).clamp(1, 16);
    // The CLI beside the driver (the same build profile).
    let cli = bench_bin.with_file_name("redcap").to_string_lossy().into_owned();
    let python = if std::env::var_os("REDCAP_BENCH_NO_PYCAP").is_some() { None } else { Some(df_python(target)?) };
    let ticks: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let tick_ms = 1000.0 / ticks;
    let dir = work.join("dataset");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for &n in &sizes {
        eprintln!("dataset benchmark: {n} records × 30 fields, pulled to Parquet…");
        let xml = dir.join(format!("typed-{n}.xml"));
        let out = Command::new(bench_bin).args(["gen-typed-xml", &n.to_string()]).arg(&xml).output();
        words(&out.map_err(|e| e.to_string())?, "gen-typed-xml")?;
        let data = dir.join(format!("data-{n}"));
        let server = Server::start(bench_bin, &data, &xml)?;
        let _ = std::fs::remove_file(&xml);
        let mut size = Size { n, ..Size::default() };
        let out_dir = dir.join(format!("pulled-{n}"));
        let out_s = out_dir.to_string_lossy().into_owned();
        let (batch_s, parallel_s) = (batch.to_string(), parallel.to_string());
        let pull_args =
            [cli.as_str(), "--quiet", "dataset", "pull", &out_s, "--batch-size", &batch_s, "--parallel", &parallel_s];
        // Each path once per round, interleaved; the medians are reported.
        let (mut curls, mut pulls, mut pycaps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds() {
            let before = cpu_ms(server.pid(), tick_ms);
            let curl_ms = curl_export(&server.url, &server.token, &dir.join("curl.json"))?;
            curls.push(Run { ms: curl_ms, emu_cpu_ms: cpu_ms(server.pid(), tick_ms) - before, ..Run::default() });
            size.body_mib =
                std::fs::metadata(dir.join("curl.json")).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0));
            let _ = std::fs::remove_file(dir.join("curl.json"));
            pulls.push(measure(&server, tick_ms, &pull_args, "redcap dataset pull")?);
            let manifest = std::fs::read_to_string(out_dir.join("_manifest.json")).map_err(|e| e.to_string())?;
            let manifest: serde_json::Value = serde_json::from_str(&manifest).map_err(|e| e.to_string())?;
            size.rows = manifest["records"].as_u64().unwrap_or(0);
            if size.rows != n {
                return Err(format!("the pull wrote {} records of {n}", size.rows));
            }
            let _ = std::fs::remove_dir_all(&out_dir);
            if let Some(py) = &python {
                let parquet = dir.join("pycap.parquet").to_string_lossy().into_owned();
                let py = py.to_string_lossy().into_owned();
                let args = [py.as_str(), "-c", PYCAP_DF_PY, &server.url, &server.token, &parquet];
                pycaps.push(measure(&server, tick_ms, &args, "PyCap export_records(df) + to_parquet")?);
                let _ = std::fs::remove_file(&parquet);
            }
        }
        if Some(&n) == sizes.iter().max() {
            size.typed = Some(crate::bench_records::typed_rows(bench_bin, &server.url, &server.token, "typed")?);
        }
        size.curl = Run::median(&curls);
        size.pull = Run::median(&pulls);
        size.pycap = (!pycaps.is_empty()).then(|| Run::median(&pycaps));
        server.stop();
        let _ = std::fs::remove_dir_all(&data);
        results.push(size);
    }
    Ok(report(&results, batch, parallel))
}

fn report(sizes: &[Size], batch: u64, parallel: u64) -> bool {
    println!(
        "\ndataset pull to Parquet: records × 30 fields, a repeating instrument; batches of {batch}, --parallel {parallel}"
    );
    println!(
        "(ms, medians of {} rounds; CPU = the client's user+system; RSS = the client's peak, MiB; emu = the emulator's CPU ms)\n",
        rounds()
    );
    println!(
        "{:>8} {:>8} {:>8} | {:>8} {:>8} {:>7} {:>8} | {:>8} {:>8} {:>7} {:>8}",
        "records", "curl", "emu", "pull", "CPU", "RSS", "emu", "PyCap df", "CPU", "RSS", "emu"
    );
    for s in sizes {
        let py = s.pycap.map_or_else(
            || format!("{:>8} {:>8} {:>7} {:>8}", "-", "-", "-", "-"),
            |p| format!("{:>8.0} {:>8.0} {:>7.0} {:>8.0}", p.ms, p.cpu_ms, p.rss_mib, p.emu_cpu_ms),
        );
        println!(
            "{:>8} {:>8.0} {:>8.0} | {:>8.0} {:>8.0} {:>7.1} {:>8.0} | {py}",
            s.n, s.curl.ms, s.curl.emu_cpu_ms, s.pull.ms, s.pull.cpu_ms, s.pull.rss_mib, s.pull.emu_cpu_ms
        );
    }
    let mut checks: Vec<(String, bool)> = Vec::new();
    if let Some(big) = sizes.iter().max_by_key(|s| s.n) {
        if let Some(p) = big.pycap {
            let ratio = p.cpu_ms / big.pull.cpu_ms.max(1.0);
            checks.push((
                format!(
                    "{}: client CPU {:.0} ms ≥ 5× less than PyCap+pandas {:.0} ms ({ratio:.1}×)",
                    big.n, big.pull.cpu_ms, p.cpu_ms
                ),
                ratio >= 5.0,
            ));
        }
        checks.push((
            format!("{}: pull wall {:.0} ms ≤ one-shot curl {:.0} ms + 20%", big.n, big.pull.ms, big.curl.ms),
            big.pull.ms <= 1.2 * big.curl.ms,
        ));
    }
    for s in sizes {
        let Some([(b_ms, b_rss), (s_ms, s_rss)]) = s.typed else { continue };
        println!(
            "\ntyped rows (a typed struct: numbers, dates, flags, choice codes; text as String) of the {}-record \
             export, JSON body {:.0} MiB: decoded from the body {b_ms:.0} ms, peak RSS {b_rss:.0} MiB; \
             decoded while it streams {s_ms:.0} ms, peak RSS {s_rss:.0} MiB",
            s.n, s.body_mib
        );
        checks.push((
            format!("{}: typed rows (streamed) peak RSS {s_rss:.0} MiB ≤ 1.5 × the body {:.0} MiB", s.n, s.body_mib),
            s_rss <= 1.5 * s.body_mib,
        ));
    }
    for s in sizes {
        checks.push((format!("{}: pull peak RSS {:.1} MiB ≤ 256 MiB", s.n, s.pull.rss_mib), s.pull.rss_mib <= 256.0));
    }
    let ends = sizes.iter().min_by_key(|s| s.n).zip(sizes.iter().max_by_key(|s| s.n));
    if let Some((small, big)) = ends.filter(|(small, big)| big.n >= 3 * small.n) {
        checks.push((
            format!(
                "RSS bounded by the batch: {:.1} MiB at {} ≤ 1.5 × {:.1} MiB at {}",
                big.pull.rss_mib, big.n, small.pull.rss_mib, small.n
            ),
            big.pull.rss_mib <= 1.5 * small.pull.rss_mib,
        ));
    }
    println!();
    let mut ok = true;
    for (what, pass) in checks {
        println!("{} {what}", if pass { "PASS" } else { "MISS" });
        ok &= pass;
    }
    ok
}
