//! `cargo xtask bench`: the transfer and call benchmarks against the emulator on loopback.
//!
//! Measures (issue "Benchmark"): a 1 GiB File Repository upload and download with our blocking
//! client, wall time and peak RSS, beside curl doing the same transfer; and 2,000 small calls,
//! blocking (keep-alive) and async with concurrency 16 and 64 (the emulator holding 64
//! concurrent clients). Targets: peak RSS under 32 MiB for the
//! 1 GiB transfers, download wall time within 1.25x of curl's. Size and call count can be
//! lowered with REDCAP_BENCH_MIB and REDCAP_BENCH_CALLS for a quick run. Then the record
//! benchmarks (see `bench_records.rs`), the File Repository pull (see `bench_files.rs`) and the
//! dataset pull (`bench_dataset.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run(bin: &Path, args: &[&str]) -> Result<Vec<String>, String> {
    let out = Command::new(bin).args(args).output().map_err(|e| format!("{}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!("{} {args:?} failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect())
}

fn curl(args: &[String]) -> Result<f64, String> {
    let started = Instant::now();
    let status = Command::new("curl")
        .args(["--silent", "--show-error", "--fail"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("curl is needed for the comparison (apt-get install curl): {e}"))?;
    if !status.success() {
        return Err(format!("curl failed: {status}"));
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Flushes dirty pages to disk so the next timed transfer starts from a quiet disk.
fn settle() {
    let _ = Command::new("sync").status();
}

fn write_payload(path: &Path, mib: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    // One pseudo-random MiB (xorshift), each copy stamped with its index: cheap to make, and no
    // two blocks are equal.
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for i in 0..mib {
        block[..8].copy_from_slice(&i.to_le_bytes());
        f.write_all(&block)?;
    }
    f.flush()
}

pub fn bench(root: &Path) -> Result<bool, String> {
    let mib = env_num("REDCAP_BENCH_MIB", 1024);
    let calls = env_num("REDCAP_BENCH_CALLS", 2000);
    // REDCAP_BENCH_PROFILE=debug: debug binaries, to check the benchmark runs (figures are not
    // meaningful).
    let debug = std::env::var("REDCAP_BENCH_PROFILE").is_ok_and(|p| p == "debug");
    let profile = if debug { "debug" } else { "release" };
    eprintln!("building the benchmark driver ({profile})…");
    let release: &[&str] = if debug { &[] } else { &["--release"] };
    let status = Command::new(env!("CARGO"))
        .arg("build")
        .args(release)
        .args(["--quiet", "-p", "redcap-bench", "-p", "redcap-cli", "-p", "redcap-emulator"])
        .current_dir(root)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("cargo build -p redcap-bench failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let bin = target.join(profile).join("redcap-bench");
    let work = target.join("bench-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("data")).map_err(|e| e.to_string())?;
    // REDCAP_BENCH_ONLY=records (or =transfers, =files, =dataset, =sync) runs one part.
    let only = std::env::var("REDCAP_BENCH_ONLY").unwrap_or_default();
    let fixture = root.join("crates/redcap-emulator/fixtures/redcapr-simple.xml");
    if only == "records" || only == "files" || only == "dataset" || only == "sync" {
        let ok = match only.as_str() {
            "records" => crate::bench_records::bench(&bin, &target, &work),
            "dataset" => crate::bench_dataset::bench(&bin, &target, &work),
            "sync" => crate::bench_sync::bench(&bin, &work),
            _ => crate::bench_files::bench(&bin, &target, &work, &fixture),
        };
        let _ = std::fs::remove_dir_all(&work);
        return ok;
    }
    let payload = work.join("payload.bin");
    eprintln!("writing a {mib} MiB payload…");
    write_payload(&payload, mib).map_err(|e| e.to_string())?;

    let server = crate::bench_records::Server::start(&bin, &work.join("data"), &fixture)?;
    let result = measure(&bin, &server.url, &server.token, &payload, &work, mib, calls);
    server.stop();
    let _ = std::fs::remove_file(&payload);
    let result = match result {
        Ok(transfers_ok) if only != "transfers" => crate::bench_records::bench(&bin, &target, &work)
            .and_then(|records_ok| {
                crate::bench_files::bench(&bin, &target, &work, &fixture).map(|files_ok| files_ok && records_ok)
            })
            .and_then(|ok| crate::bench_dataset::bench(&bin, &target, &work).map(|dataset_ok| ok && dataset_ok))
            .and_then(|ok| crate::bench_sync::bench(&bin, &work).map(|sync_ok| ok && sync_ok))
            .map(|ok| transfers_ok && ok),
        other => other,
    };
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn measure(
    bin: &Path,
    url: &str,
    token: &str,
    payload: &Path,
    work: &Path,
    mib: u64,
    calls: u64,
) -> Result<bool, String> {
    let p = payload.to_string_lossy().into_owned();
    settle();
    let up = run(bin, &["upload", url, token, &p])?;
    let (up_ms, up_rss, doc) = (up[0].parse::<f64>().unwrap_or(0.0), up[1].parse::<u64>().unwrap_or(0), up[2].clone());
    settle();
    let curl_up = curl(&[
        "-F".into(),
        format!("token={token}"),
        "-F".into(),
        "content=fileRepository".into(),
        "-F".into(),
        "action=import".into(),
        "-F".into(),
        format!("file=@{p}"),
        url.into(),
    ])?;
    // File downloads are disk-bound on a VM: flush earlier writes before each timed run, and keep
    // the best of three runs per tool, alternating them, so neither pays for the other's backlog.
    let out = work.join("download.bin").to_string_lossy().into_owned();
    let curl_out = work.join("curl.bin").to_string_lossy().into_owned();
    let (mut down_ms, mut down_rss, mut curl_down) = (f64::MAX, 0u64, f64::MAX);
    for _ in 0..3 {
        settle();
        let down = run(bin, &["download", url, token, &doc, &out])?;
        down_ms = down_ms.min(down[0].parse::<f64>().unwrap_or(f64::MAX));
        down_rss = down_rss.max(down[1].parse::<u64>().unwrap_or(0));
        settle();
        curl_down = curl_down.min(curl(&[
            "-o".into(),
            curl_out.clone(),
            "-d".into(),
            format!("token={token}"),
            "-d".into(),
            "content=fileRepository".into(),
            "-d".into(),
            "action=export".into(),
            "-d".into(),
            format!("doc_id={doc}"),
            url.into(),
        ])?);
    }
    // The same downloads into /dev/null: the wire alone, without the disk (and without our fsync).
    let (mut null_ms, mut null_rss, mut curl_null) = (f64::MAX, 0u64, f64::MAX);
    for _ in 0..3 {
        settle();
        let null = run(bin, &["download-null", url, token, &doc])?;
        null_ms = null_ms.min(null[0].parse::<f64>().unwrap_or(f64::MAX));
        null_rss = null_rss.max(null[1].parse::<u64>().unwrap_or(0));
        settle();
        curl_null = curl_null.min(curl(&[
            "-o".into(),
            "/dev/null".into(),
            "-d".into(),
            format!("token={token}"),
            "-d".into(),
            "content=fileRepository".into(),
            "-d".into(),
            "action=export".into(),
            "-d".into(),
            format!("doc_id={doc}"),
            url.into(),
        ])?);
    }
    settle();
    let n = calls.to_string();
    let blocking = run(bin, &["small-blocking", url, token, &n])?;
    let asynchronous = run(bin, &["small-async", url, token, &n, "16"])?;
    // 64 calls in flight: the emulator holds 64 concurrent client connections.
    let wide = run(bin, &["small-async", url, token, &n, "64"])?;

    let mb = mib as f64 * 1.048_576;
    let rate = |ms: f64| if ms > 0.0 { mb / (ms / 1000.0) } else { 0.0 };
    println!("redcap-rs benchmark against the emulator on loopback ({mib} MiB payload, {calls} small calls)");
    println!("(downloads: best of 3 runs per tool, the disk flushed before each)\n");
    println!("{:<34} {:>10} {:>10} {:>14}", "operation", "wall ms", "MB/s", "peak RSS MiB");
    println!(
        "{:<34} {:>10.0} {:>10.0} {:>14.1}",
        "upload, redcap blocking client",
        up_ms,
        rate(up_ms),
        up_rss as f64 / 1024.0
    );
    println!("{:<34} {:>10.0} {:>10.0} {:>14}", "upload, curl", curl_up, rate(curl_up), "-");
    println!(
        "{:<34} {:>10.0} {:>10.0} {:>14.1}",
        "download, redcap blocking client",
        down_ms,
        rate(down_ms),
        down_rss as f64 / 1024.0
    );
    println!("{:<34} {:>10.0} {:>10.0} {:>14}", "download, curl", curl_down, rate(curl_down), "-");
    println!(
        "{:<34} {:>10.0} {:>10.0} {:>14.1}",
        "download to /dev/null, redcap",
        null_ms,
        rate(null_ms),
        null_rss as f64 / 1024.0
    );
    println!("{:<34} {:>10.0} {:>10.0} {:>14}", "download to /dev/null, curl", curl_null, rate(curl_null), "-");
    let per = |v: &[String]| v[0].parse::<f64>().unwrap_or(0.0);
    println!(
        "{:<34} {:>10.0} {:>10.0} {:>14.1}",
        format!("{calls} calls, blocking keep-alive"),
        per(&blocking),
        calls as f64 / (per(&blocking) / 1000.0),
        blocking[1].parse::<f64>().unwrap_or(0.0) / 1024.0
    );
    println!(
        "{:<34} {:>10.0} {:>10.0} {:>14.1}",
        format!("{calls} calls, async x16"),
        per(&asynchronous),
        calls as f64 / (per(&asynchronous) / 1000.0),
        asynchronous[1].parse::<f64>().unwrap_or(0.0) / 1024.0
    );
    println!(
        "{:<34} {:>10.0} {:>10.0} {:>14.1}",
        format!("{calls} calls, async x64"),
        per(&wide),
        calls as f64 / (per(&wide) / 1000.0),
        wide[1].parse::<f64>().unwrap_or(0.0) / 1024.0
    );
    println!("(MB/s is calls per second for the small-call rows)\n");

    let checks = [
        ("upload peak RSS < 32 MiB", up_rss < 32 * 1024),
        ("download peak RSS < 32 MiB", down_rss < 32 * 1024),
        ("download to a file within 1.25x of curl's (best of 3; ours also fsyncs)", down_ms <= curl_down * 1.25),
        ("download to /dev/null within 1.25x of curl's", null_ms <= curl_null * 1.25),
        ("emulator serves the export faster than 500 MB/s (curl to /dev/null)", rate(curl_null) > 500.0),
    ];
    let mut ok = true;
    for (what, pass) in checks {
        println!("{} {what}", if pass { "PASS" } else { "MISS" });
        ok &= pass;
    }
    Ok(ok)
}
