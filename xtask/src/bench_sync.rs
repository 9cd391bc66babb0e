//! The sync benchmark of `cargo xtask bench` (issue 11 item 5): a nightly `dataset sync` of a
//! project where 1% of the records changed, against a full re-pull, in the same run: wall time
//! and API calls of each (the emulator runs inside the measuring process, so it counts the
//! calls). Knobs: REDCAP_BENCH_SYNC_RECORDS (default 100000), REDCAP_BENCH_SYNC_CHANGED
//! (records changed, default 1% of them); REDCAP_BENCH_ONLY=sync runs only this benchmark.

use std::path::Path;
use std::process::Command;

const FIELDS: u64 = 30;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

pub fn bench(bench_bin: &Path, work: &Path) -> Result<bool, String> {
    let records = env_num("REDCAP_BENCH_SYNC_RECORDS", 100_000);
    let changed = env_num("REDCAP_BENCH_SYNC_CHANGED", (records / 100).max(1));
    let dir = work.join("sync");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let xml = dir.join("project.xml");
    eprintln!("sync benchmark: {records} records × {FIELDS} fields, {changed} changed…");
    let out = Command::new(bench_bin).args(["gen-xml", &FIELDS.to_string(), &records.to_string()]).arg(&xml).output();
    let out = out.map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("gen-xml: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let out = Command::new(bench_bin)
        .arg("sync")
        .arg(&xml)
        .arg(dir.join("data"))
        .arg(dir.join("work"))
        .args([FIELDS.to_string(), records.to_string(), changed.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        return Err(format!("redcap-bench sync: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let w: Vec<f64> = String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|s| s.parse().ok()).collect();
    let [pull_ms, pull_calls, sync_ms, sync_calls, repull_ms, repull_calls, fetched] = w[..] else {
        return Err(format!("redcap-bench sync printed {:?}", String::from_utf8_lossy(&out.stdout)));
    };
    println!();
    println!("## dataset sync: {records} records, {changed} changed ({:.1}%)", changed as f64 * 100.0 / records as f64);
    println!("| run | wall ms | API calls |");
    println!("|---|---:|---:|");
    println!("| first `dataset pull` | {pull_ms:.0} | {pull_calls:.0} |");
    println!("| nightly `dataset sync` ({fetched:.0} records re-exported) | {sync_ms:.0} | {sync_calls:.0} |");
    println!("| full re-pull | {repull_ms:.0} | {repull_calls:.0} |");
    let speedup = if sync_ms > 0.0 { repull_ms / sync_ms } else { f64::INFINITY };
    println!("sync vs re-pull: {speedup:.1}× less wall time, {:.0} vs {repull_calls:.0} calls", sync_calls);
    let ok = fetched as u64 == changed && sync_ms < repull_ms && sync_calls < repull_calls;
    if !ok {
        println!("FAIL: the sync should re-export exactly the changed records, faster and in fewer calls");
    }
    Ok(ok)
}
