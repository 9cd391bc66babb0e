//! `cargo xtask codegen` regenerates `crates/redcap-api/src/generated/` from `spec/` and
//! `crates/redcap-core/src/generated/` from the enum table (`redcap-codegen/src/core_enums.toml`);
//! `cargo xtask codegen --check` fails when the checked-in files are stale;
//! `cargo xtask bench` runs the transfer and call benchmarks (see `bench.rs`);
//! `cargo xtask fuzz [SECONDS] [TARGET…]` runs the fuzz targets for a bounded time (see `fuzz.rs`);
//! `cargo xtask compat` runs PyCap 2.7.0's doctests against the emulator (see `compat.rs`);
//! `cargo xtask ci` runs every CI check (see `ci.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench;
mod bench_dataset;
mod bench_files;
mod bench_records;
mod bench_sync;
mod ci;
mod compat;
mod fuzz;

const USAGE: &str = "usage: cargo xtask codegen [--check] | cargo xtask bench | cargo xtask fuzz [SECONDS] [TARGET…] | cargo xtask compat | cargo xtask ci";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["codegen"] => codegen(false),
        ["codegen", "--check"] => codegen(true),
        ["ci"] => match ci::ci(&root()) {
            Ok(()) => {
                println!("== all checks passed");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("CI failed: {e}");
                ExitCode::FAILURE
            }
        },
        ["bench"] => match bench::bench(&root()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("benchmark failed: {e}");
                ExitCode::FAILURE
            }
        },
        ["compat"] => match compat::compat(&root()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("compat failed: {e}");
                ExitCode::FAILURE
            }
        },
        ["fuzz", rest @ ..] => {
            let (seconds, targets) = match rest.first().and_then(|s| s.parse::<u64>().ok()) {
                Some(n) => (n, &rest[1..]),
                None => (60, rest),
            };
            match fuzz::fuzz(&root(), seconds, targets) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("fuzzing failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Diff lines shown per stale file.
const MAX_DIFF_LINES: usize = 80;

fn codegen(check: bool) -> ExitCode {
    let root = root();
    let api = match redcap_codegen::generate_dir(&root.join("spec"), "spec") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("the spec is invalid:\n{e}");
            return ExitCode::FAILURE;
        }
    };
    // The request types from the spec, and core's enums from the one table of wire values.
    let outputs = [
        ("crates/redcap-api/src/generated", api),
        ("crates/redcap-core/src/generated", redcap_codegen::core_enum_files()),
    ];
    let mut ok = true;
    for (dir, files) in &outputs {
        let out_dir = root.join(dir);
        ok &= if check { check_files(dir, &out_dir, files) } else { write_files(dir, &out_dir, files) };
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn check_files(dir: &str, out_dir: &std::path::Path, files: &std::collections::BTreeMap<String, String>) -> bool {
    let stale = redcap_codegen::stale_files(files, out_dir);
    if stale.is_empty() {
        println!("generated code is up to date ({} files in {dir})", files.len());
        return true;
    }
    eprintln!("generated code is stale; run `cargo xtask codegen` and commit the result. Stale files:");
    for s in &stale {
        eprintln!("  {dir}/{s}");
    }
    for s in &stale {
        let path = format!("{dir}/{s}");
        let on_disk = std::fs::read_to_string(out_dir.join(s)).unwrap_or_default();
        let wanted = files.get(s).map(String::as_str).unwrap_or_default();
        let diff = similar::TextDiff::from_lines(on_disk.as_str(), wanted);
        let text = diff.unified_diff().context_radius(2).header(&format!("a/{path}"), &format!("b/{path}")).to_string();
        // Keep the log readable: the first lines of each file's diff say what is stale.
        let lines: Vec<&str> = text.lines().collect();
        for l in lines.iter().take(MAX_DIFF_LINES) {
            eprintln!("{l}");
        }
        if lines.len() > MAX_DIFF_LINES {
            eprintln!("… {} more diff lines in {path}", lines.len() - MAX_DIFF_LINES);
        }
    }
    false
}

fn write_files(dir: &str, out_dir: &std::path::Path, files: &std::collections::BTreeMap<String, String>) -> bool {
    match redcap_codegen::write_files(files, out_dir) {
        Ok(()) => {
            println!("wrote {} files to {dir}", files.len());
            true
        }
        Err(e) => {
            eprintln!("cannot write generated files to {dir}: {e}");
            false
        }
    }
}
