//! The File Repository benchmark of `cargo xtask bench` (issue "Scale", item 3): `redcap files
//! pull` of N small files in nested folders beside a plain PyCap 2.7.0 loop (list each folder,
//! download each file, write it) in the same run, with growth exponents between sizes. The tree
//! is uploaded first with `redcap files push` (timed too). Sizes: REDCAP_BENCH_FILES (default
//! 250,500,1000,2000); REDCAP_BENCH_NO_PYCAP=1 skips PyCap. Run alone with
//! REDCAP_BENCH_ONLY=files.
//!
//! Targets: the 500-file pull at least 5× faster than the PyCap loop; the pull linear up to the
//! largest size (growth exponent from the smallest to the largest size ≤ 1.1).

use std::path::Path;
use std::process::Command;

use crate::bench_records::{Server, pycap_python, python_measure};

/// PyCap's loop over the File Repository, timed inside Python (after `Project()`, which makes
/// its own calls): `"<ms> <peak RSS KiB> <files>"`.
const PYCAP_PULL_PY: &str = r#"
import os, resource, sys, time
from redcap import Project
p = Project(sys.argv[1], sys.argv[2])
out = sys.argv[3]
t = time.monotonic()
n = 0
def walk(folder_id, rel):
    global n
    for e in p.export_file_repository(folder_id=folder_id):
        if e.get("folder_id"):
            sub = os.path.join(rel, e["name"])
            os.makedirs(os.path.join(out, sub), exist_ok=True)
            walk(int(e["folder_id"]), sub)
        elif e.get("doc_id"):
            content, _ = p.export_file_from_repository(doc_id=int(e["doc_id"]))
            with open(os.path.join(out, rel, e["name"]), "wb") as f:
                f.write(content)
            n += 1
walk(None, "")
print(int((time.monotonic() - t) * 1000), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, n)
"#;

/// One size's figures (ms; RSS in MiB).
#[derive(Default)]
struct Row {
    n: u64,
    push_ms: f64,
    pull_ms: f64,
    pull_rss: f64,
    pycap_ms: Option<f64>,
    pycap_rss: Option<f64>,
}

/// Writes `n` small files into `dir`: ten top folders of five subfolders each (60 folders),
/// a few hundred bytes per file.
fn write_tree(dir: &Path, n: u64) -> std::io::Result<()> {
    for i in 0..n {
        let rel = format!("site_{}/visit_{}/doc_{i:05}.txt", i % 10, (i / 10) % 5);
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, format!("document {i}\n").repeat(20))?;
    }
    Ok(())
}

fn count_files(dir: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with(".redcap-") {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => n += 1,
                _ => {}
            }
        }
    }
    n
}

fn exponent(a: (u64, f64), b: (u64, f64)) -> f64 {
    (b.1.max(1.0) / a.1.max(1.0)).ln() / (b.0 as f64 / a.0 as f64).ln()
}

pub fn bench(bench_bin: &Path, target: &Path, work: &Path, fixture: &Path) -> Result<bool, String> {
    let sizes: Vec<u64> = std::env::var("REDCAP_BENCH_FILES")
        .unwrap_or_else(|_| "250,500,1000,2000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cli = target.join("release/redcap").to_string_lossy().into_owned();
    let python = if std::env::var_os("REDCAP_BENCH_NO_PYCAP").is_some() { None } else { Some(pycap_python(target)?) };
    let mut rows = Vec::new();
    for &n in &sizes {
        eprintln!("File Repository: {n} files…");
        let dir = work.join(format!("files-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let (src, data, state) = (dir.join("src"), dir.join("data"), dir.join("state"));
        for d in [&src, &data, &state] {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        write_tree(&src, n).map_err(|e| e.to_string())?;
        let server = Server::start(bench_bin, &data, fixture)?;
        let (url, token) = (server.url.clone(), server.token.clone());
        let state_s = state.to_string_lossy().into_owned();
        let env =
            [("REDCAP_API_URL", url.as_str()), ("REDCAP_API_TOKEN", token.as_str()), ("REDCAP_STATE_DIR", &state_s)];
        let src_s = src.to_string_lossy().into_owned();
        let (push_ms, _) = python_measure(&[&cli, "--quiet", "files", "push", &src_s], &env, "redcap files push")?;
        let out = dir.join("pulled");
        let out_s = out.to_string_lossy().into_owned();
        let (pull_ms, pull_rss) =
            python_measure(&[&cli, "--quiet", "files", "pull", &out_s], &env, "redcap files pull")?;
        let pulled = count_files(&out);
        if pulled != n {
            server.stop();
            return Err(format!("redcap files pull wrote {pulled} of {n} files"));
        }
        let mut row = Row { n, push_ms, pull_ms, pull_rss, ..Row::default() };
        if let Some(py) = &python {
            let py_out = dir.join("pycap");
            std::fs::create_dir_all(&py_out).map_err(|e| e.to_string())?;
            let o = Command::new(py)
                .arg("-c")
                .arg(PYCAP_PULL_PY)
                .args([&url, &token, &py_out.to_string_lossy().into_owned()])
                .output()
                .map_err(|e| e.to_string())?;
            if !o.status.success() {
                server.stop();
                return Err(format!("the PyCap loop failed: {}", String::from_utf8_lossy(&o.stderr)));
            }
            let w: Vec<f64> =
                String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|s| s.parse().ok()).collect();
            if w.get(2).copied() != Some(n as f64) {
                server.stop();
                return Err(format!("the PyCap loop wrote {:?} of {n} files", w.get(2)));
            }
            row.pycap_ms = w.first().copied();
            row.pycap_rss = w.get(1).map(|k| k / 1024.0);
        }
        server.stop();
        let _ = std::fs::remove_dir_all(&dir);
        rows.push(row);
    }
    report(&rows)
}

fn report(rows: &[Row]) -> Result<bool, String> {
    println!("\nFile Repository, small files in 60 nested folders, loopback (ms; RSS in MiB; one process each)\n");
    println!(
        "{:>6} {:>10} {:>10} {:>9} {:>10} {:>9} {:>8}",
        "files", "CLI push", "CLI pull", "pull RSS", "PyCap loop", "PyCap RSS", "speedup"
    );
    for r in rows {
        let (py, py_rss, speedup) = match (r.pycap_ms, r.pycap_rss) {
            (Some(ms), Some(rss)) => {
                (format!("{ms:.0}"), format!("{rss:.0}"), format!("{:.1}x", ms / r.pull_ms.max(1.0)))
            }
            _ => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:>6} {:>10.0} {:>10.0} {:>9.1} {:>10} {:>9} {:>8}",
            r.n, r.push_ms, r.pull_ms, r.pull_rss, py, py_rss, speedup
        );
    }
    let mut checks: Vec<(String, bool)> = Vec::new();
    if rows.len() >= 2 {
        println!("\ngrowth exponents (1.0 = linear)");
        for w in rows.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let py = match (a.pycap_ms, b.pycap_ms) {
                (Some(x), Some(y)) => format!("{:.2}", exponent((a.n, x), (b.n, y))),
                _ => "-".into(),
            };
            println!(
                "{:>6} → {:<6} CLI pull {:.2}  CLI push {:.2}  PyCap loop {py}",
                a.n,
                b.n,
                exponent((a.n, a.pull_ms), (b.n, b.pull_ms)),
                exponent((a.n, a.push_ms), (b.n, b.push_ms)),
            );
        }
        let (first, last) = (&rows[0], &rows[rows.len() - 1]);
        let x = exponent((first.n, first.pull_ms), (last.n, last.pull_ms));
        checks.push((format!("files pull linear {}→{}: exponent {x:.2} ≤ 1.1", first.n, last.n), x <= 1.1));
    }
    if let Some((r, py)) = rows.iter().find(|r| r.n == 500).and_then(|r| Some((r, r.pycap_ms?))) {
        let speedup = py / r.pull_ms.max(1.0);
        checks.push((format!("500-file pull {speedup:.1}x faster than the PyCap loop (≥ 5x)"), speedup >= 5.0));
    }
    println!();
    for (what, ok) in &checks {
        println!("{} {what}", if *ok { "PASS" } else { "MISS" });
    }
    Ok(checks.iter().all(|(_, ok)| *ok))
}
