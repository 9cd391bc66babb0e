//! `cargo xtask fuzz [SECONDS] [TARGET…]`: runs the cargo-fuzz targets in `fuzz/` for a bounded
//! time each (default 60 s), seeded from the emulator's fixtures. Not part of CI.
//!
//! cargo-fuzz needs compiler flags that only nightly accepts (`-Z` options). The project's own
//! stable toolchain is run with `RUSTC_BOOTSTRAP=1`, as cargo-fuzz users on stable do, so no
//! second toolchain is needed. cargo-fuzz itself is installed from crates.io
//! (`cargo install cargo-fuzz --locked`) when missing. The sanitizer is
//! off (`-s none`): the code under test is safe Rust, and without it each run explores about
//! twice as many inputs on this shared machine.
//!
//! A crash stops its target and leaves the input in `fuzz/artifacts/<target>/`; turn it into a
//! regression test in the crate that crashed, then fix.

use std::path::Path;
use std::process::Command;

/// The fuzz targets, each `fuzz/fuzz_targets/<name>.rs`.
pub const TARGETS: &[&str] = &["form", "multipart", "project_xml", "data_rows", "record_import", "logic"];

/// Runs the targets; `Ok(false)` when one of them found a crash.
pub fn fuzz(root: &Path, seconds: u64, only: &[&str]) -> Result<bool, String> {
    let unknown: Vec<&&str> = only.iter().filter(|t| !TARGETS.contains(t)).collect();
    if !unknown.is_empty() {
        return Err(format!("unknown fuzz target(s) {unknown:?}; the targets are {TARGETS:?}"));
    }
    let targets: Vec<&str> = if only.is_empty() { TARGETS.to_vec() } else { only.to_vec() };
    ensure_cargo_fuzz()?;
    let fuzz_dir = root.join("fuzz");
    for t in &targets {
        seed(root, t)?;
    }
    let mut crashed = Vec::new();
    for t in &targets {
        println!("fuzzing {t} for {seconds} s …");
        let status = Command::new("cargo")
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(&fuzz_dir)
            .args(["fuzz", "run", "--fuzz-dir", ".", "-s", "none", "-j", "1", t])
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-max_len=65536")
            .arg("-rss_limit_mb=2048")
            .arg("-timeout=10")
            .arg("-print_final_stats=1")
            .status()
            .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        if !status.success() {
            eprintln!("fuzz target {t} failed: see fuzz/artifacts/{t}/");
            crashed.push(*t);
        }
    }
    if crashed.is_empty() {
        println!("fuzzing done: {} target(s), no crash", targets.len());
        Ok(true)
    } else {
        eprintln!("crashes in {crashed:?}: each input in fuzz/artifacts/ becomes a regression test");
        Ok(false)
    }
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    println!("installing cargo-fuzz from crates.io …");
    let ok = Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?
        .success();
    if ok { Ok(()) } else { Err("cargo install cargo-fuzz failed".into()) }
}

/// Seeds `fuzz/corpus/<target>/` (kept between runs, ignored by git) with valid inputs.
fn seed(root: &Path, target: &str) -> Result<(), String> {
    let dir = root.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let put = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        // A seed whose bytes changed is rewritten (the fuzzer's own finds have hash names).
        if std::fs::read(&p).is_ok_and(|b| b == bytes) {
            Ok(())
        } else {
            std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
        }
    };
    let fixtures = root.join("crates/redcap-emulator/fixtures");
    match target {
        "project_xml" => {
            for name in ["pycap-doctest_project.xml", "redcapr-dag.xml", "redcapr-repeating-instruments.xml"] {
                let bytes = std::fs::read(fixtures.join(name)).map_err(|e| format!("{name}: {e}"))?;
                put(name, &bytes)?;
            }
        }
        "form" => {
            put("export", b"token=ABC&content=record&format=json&records[0]=1&fields[]=a&rawOrLabel=raw")?;
            put("escapes", b"data=%5B%7B%22a%22%3A1%7D%5D&x=%ZZ&+=+&&=")?;
        }
        "multipart" => {
            put(
                "two-parts",
                b"XyZ\n--XyZ\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nABC\r\n--XyZ\r\n\
                  Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n\
                  hello\r\n--XyZ--\r\n",
            )?;
        }
        "data_rows" | "record_import" => {
            // Valid values (field_1 is yes/no), so the seeds pass validation and reach the writes.
            // First byte: format (its value mod 3: 0 json, 1 csv, 2 xml) and, in record_import, bit
            // 4 type=eav, bit 8 overwrite, bit 16 forceAutoNumber (data_rows: bit 4 a `;` delimiter).
            put("json", b"\x00[{\"record_id\":\"1\",\"redcap_event_name\":\"event_1_arm_1\",\"field_1\":\"1\"}]")?;
            put("csv", b"\x01record_id,redcap_event_name,field_1\n2,event_1_arm_1,\"0\"\n")?;
            put(
                "xml",
                b"\x02<records><item><record_id>3</record_id><redcap_event_name>event_1_arm_1</redcap_event_name></item></records>",
            )?;
            // 0x0c: JSON (12 mod 3 = 0), eav, overwrite. (0x04 was CSV, 4 mod 3 = 1: the eav JSON
            // below then never parsed, so the seed reached no eav import.)
            put("eav", b"\x0c[{\"record\":\"4\",\"redcap_event_name\":\"event_1_arm_1\",\"field_name\":\"field_1\",\"value\":\"0\"}]")?;
        }
        "logic" => {
            put("cmp", b"[age] > 30 and [sex] = '1' or [x(2)] = \"1\"")?;
            put("fn", b"datediff([dob], 'today', 'y', 'ymd') >= if([a] <> '', sum([b], 2 ^ 3), -1)")?;
            put("event", b"[event_1_arm_1][field] = '' and not([c] + 1 <= 2)")?;
        }
        _ => {}
    }
    Ok(())
}
