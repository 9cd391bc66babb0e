//! `cargo xtask ci`: everything CI checks, in one place `.ci/run` calls. Each step names
//! itself and stops the run on failure.
//!
//! Besides codegen freshness, formatting, clippy and the tests: rustdoc with warnings denied;
//! the `redcap` feature matrix; the sans-IO crates pulling in no HTTP client or runtime; no
//! language feature newer than `rust-version` that clippy's `incompatible_msrv` cannot see (let
//! chains); no module cycle in `redcap-core` (one concern per module, dependencies one way); and
//! no snapshot left pending or unreferenced by any test (the check
//! `cargo insta test --unreferenced=reject` makes, done with insta's own reference file so
//! cargo-insta need not be installed); last, PyCap's doctests against the emulator (`compat.rs`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs every check; `Err` names the one that failed.
pub fn ci(root: &Path) -> Result<(), String> {
    step("codegen freshness", || cargo(root, &["xtask", "codegen", "--check"], &[]))?;
    step("formatting", || cargo(root, &["fmt", "--all", "--check"], &[]))?;
    step("clippy", || {
        cargo(root, &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"], &[])
    })?;
    step("rust-version: no let chains (1.88) under rust-version 1.85", || let_chains(root))?;
    step("docs (warnings denied)", || {
        cargo(root, &["doc", "--workspace", "--all-features", "--no-deps"], &[("RUSTDOCFLAGS", "-D warnings")])
    })?;
    step("feature matrix of redcap", || {
        for features in [
            &["--no-default-features"][..],
            &["--no-default-features", "--features", "blocking"],
            &["--no-default-features", "--features", "async"],
            &["--no-default-features", "--features", "blocking,async"],
        ] {
            let mut args = vec!["check", "-p", "redcap"];
            args.extend_from_slice(features);
            cargo(root, &args, &[])?;
        }
        Ok(())
    })?;
    step("sans-IO crates pull in no HTTP client or runtime", || no_http_client(root))?;
    step("redcap-core modules depend one way (no cycle)", || module_cycles(&root.join("crates/redcap-core/src")))?;
    let references = root.join("target/insta-references.txt");
    // A stale list from an earlier run would hide an orphan.
    let _ = std::fs::remove_file(&references);
    step("tests (the README's test command)", || {
        let refs = references.to_string_lossy().into_owned();
        cargo(
            root,
            &["test", "--workspace", "--all-features"],
            &[("INSTA_SNAPSHOT_REFERENCES_FILE", refs.as_str()), ("INSTA_UPDATE", "no")],
        )
    })?;
    step("snapshots: none pending, none unreferenced", || snapshots(root, &references))?;
    // After the tests (which build the emulator), on its own: a few seconds once the venv exists
    // under target/; making it (pip installing PyCap, pandas, pytest) took 2.5 minutes here.
    step("PyCap 2.7.0's doctests against the emulator (cargo xtask compat)", || match crate::compat::compat(root)? {
        true => Ok(()),
        false => Err("a doctest failed that the emulator should pass (see above)".into()),
    })?;
    Ok(())
}

fn step(name: &str, run: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    println!("== {name}");
    run().map_err(|e| format!("{name}: {e}"))
}

fn cargo(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

/// Source files of the workspace (not `target/`).
fn sources(root: &Path, ext: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(&path, ext, out);
            } else if path.to_string_lossy().ends_with(ext) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, ext, &mut out);
    out.sort();
    out
}

/// The crates that must stay sans-IO, and what they must not depend on.
const SANS_IO: [&str; 2] = ["redcap-core", "redcap-api"];
const FORBIDDEN: [&str; 6] = ["ureq", "reqwest", "hyper", "tokio", "hyper-util", "h2"];

fn no_http_client(root: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    for krate in SANS_IO {
        let out = Command::new(&cargo)
            .current_dir(root)
            .args(["tree", "-p", krate, "-e", "normal", "--prefix", "none", "--format", "{p}", "--all-features"])
            .output()
            .map_err(|e| format!("cannot run cargo tree: {e}"))?;
        if !out.status.success() {
            return Err(format!("`cargo tree -p {krate}` failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let tree = String::from_utf8_lossy(&out.stdout);
        let found = forbidden_in_tree(&tree);
        if !found.is_empty() {
            return Err(format!("{krate} depends on {} (it must stay sans-IO)", found.join(", ")));
        }
        let crates: BTreeSet<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
        println!("{krate}: {} crates, no HTTP client or runtime", crates.len().saturating_sub(1));
    }
    Ok(())
}

/// The forbidden crates named in `cargo tree --prefix none --format {p}` output.
fn forbidden_in_tree(tree: &str) -> Vec<String> {
    let names: BTreeSet<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    FORBIDDEN.iter().filter(|f| names.contains(**f)).map(|f| (*f).to_owned()).collect()
}

/// `if let P = e && …` / `&& let P = e`: let chains need Rust 1.88, newer than `rust-version`.
fn let_chains(root: &Path) -> Result<(), String> {
    let mut found = Vec::new();
    for path in sources(root, ".rs") {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        for line in find_let_chains(&text) {
            found.push(format!("{}:{line}", path.strip_prefix(root).unwrap_or(&path).display()));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(format!(
        "let chains need Rust 1.88 but rust-version is 1.85; rewrite them (or raise rust-version): {}",
        found.join(", ")
    ))
}

/// Line numbers (from 1) where a let chain starts. A condition is read from `if let`/`while
/// let` to the `{` that opens its block, outside brackets and strings; a top-level `&&` in it
/// makes a chain.
fn find_let_chains(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find(" let ").map(|p| p + i) {
        i = at + 5;
        // Comments and string literals are not code.
        let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
        let prefix = &text[line_start..at];
        if prefix.trim_start().starts_with("//") || prefix.matches('"').count() % 2 == 1 {
            continue;
        }
        let before = text[..at].trim_end();
        let opens = before.ends_with("if") || before.ends_with("while") || before.ends_with("&&");
        if !opens {
            continue;
        }
        if before.ends_with("&&") {
            out.push(text[..at].matches('\n').count() + 1);
            continue;
        }
        let (mut depth, mut k, mut in_str) = (0i32, i, false);
        while k < bytes.len() {
            let c = bytes[k];
            match c {
                b'"' if k == 0 || bytes[k - 1] != b'\\' => in_str = !in_str,
                _ if in_str => {}
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b'{' if depth == 0 => break,
                b'{' => depth += 1,
                b'}' => depth -= 1,
                b'&' if depth == 0 && bytes.get(k + 1) == Some(&b'&') => {
                    out.push(text[..at].matches('\n').count() + 1);
                    break;
                }
                b';' => break,
                _ => {}
            }
            k += 1;
        }
    }
    out.dedup();
    out
}

/// After the tests ran with `INSTA_SNAPSHOT_REFERENCES_FILE`: every `.snap` was read by a test,
/// and no `.snap.new` / `.pending-snap` is left.
fn snapshots(root: &Path, references: &Path) -> Result<(), String> {
    let pending: Vec<PathBuf> = sources(root, ".snap.new").into_iter().chain(sources(root, ".pending-snap")).collect();
    let referenced: BTreeSet<PathBuf> = std::fs::read_to_string(references)
        .unwrap_or_default()
        .lines()
        .map(|l| std::fs::canonicalize(l.trim()).unwrap_or_else(|_| PathBuf::from(l.trim())))
        .collect();
    let snaps = sources(root, ".snap");
    let orphans: Vec<&PathBuf> =
        snaps.iter().filter(|s| !referenced.contains(&std::fs::canonicalize(s).unwrap_or((*s).clone()))).collect();
    let show = |paths: Vec<&PathBuf>| -> String {
        paths.iter().map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string()).collect::<Vec<_>>().join(", ")
    };
    if !pending.is_empty() {
        return Err(format!(
            "pending snapshots (review them with cargo insta, or delete them): {}",
            show(pending.iter().collect())
        ));
    }
    if !orphans.is_empty() {
        return Err(format!("snapshots no test reads (delete them, or restore their test): {}", show(orphans)));
    }
    println!("{} snapshots, all read by a test", snaps.len());
    Ok(())
}

/// Fails on a cycle among the top-level modules of the crate at `src`: a module's dependencies
/// are the `crate::<module>` paths its code (not its comments, not its tests) names.
fn module_cycles(src: &Path) -> Result<(), String> {
    let mut modules = std::collections::BTreeMap::new();
    let entries = std::fs::read_dir(src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".rs")) else {
            continue;
        };
        if name == "lib" || name == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        modules.insert(name.to_owned(), text);
    }
    let names: BTreeSet<&str> = modules.keys().map(String::as_str).collect();
    let graph: std::collections::BTreeMap<&str, BTreeSet<&str>> =
        modules.iter().map(|(name, text)| (name.as_str(), crate_paths(text, &names, name))).collect();
    match find_cycle(&graph) {
        None => {
            println!("{} modules, no cycle", graph.len());
            Ok(())
        }
        Some(cycle) => Err(format!("module cycle in {}: {}", src.display(), cycle.join(" -> "))),
    }
}

/// The modules of `names` (other than `this`) that `text` names as `crate::m` or in
/// `crate::{m, …}`, outside comments and the `tests` module.
fn crate_paths<'n>(text: &str, names: &BTreeSet<&'n str>, this: &str) -> BTreeSet<&'n str> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let code: String = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut found = BTreeSet::new();
    let mut add = |m: &str| {
        if let Some(n) = names.get(m).filter(|n| **n != this) {
            found.insert(*n);
        }
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                add(&ident(item.trim()));
            }
        } else {
            add(&ident(rest));
        }
    }
    found
}

/// One cycle of `graph`, as the path that closes it, if there is any.
fn find_cycle<'a>(graph: &std::collections::BTreeMap<&'a str, BTreeSet<&'a str>>) -> Option<Vec<&'a str>> {
    fn visit<'a>(
        node: &'a str,
        graph: &std::collections::BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn let_chains_are_found_and_plain_conditions_are_not() {
        let code = "fn f() {\n    if let Some(x) = a && x > 1 {\n    }\n    if let Some(x) = a.find(|y| y && z) {\n    }\n    if a\n        && let Err(e) = b()\n    {\n    }\n    while let Some(x) = it.next() {\n    }\n}\n";
        assert_eq!(find_let_chains(code), [2, 7]);
    }

    #[test]
    fn the_workspace_has_no_let_chains() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let_chains(root).unwrap();
    }

    #[test]
    fn forbidden_crates_are_named() {
        let tree = "redcap-core v0.1.0 (/x)\nbytes v1.0.0\nhttp v1.0.0\n";
        assert!(forbidden_in_tree(tree).is_empty());
        let tree = "redcap-core v0.1.0 (/x)\ntokio v1.0.0\nhyper-util v0.1.0\n";
        assert_eq!(forbidden_in_tree(tree), ["tokio", "hyper-util"]);
    }

    #[test]
    fn module_cycles_are_found_through_code_not_comments() {
        let names: BTreeSet<&str> = ["a", "b", "c"].into_iter().collect();
        let a = "//! See [`b`](crate::b).\nuse crate::{c::X, std};\nfn f() { crate::c::g() }\n";
        assert_eq!(crate_paths(a, &names, "a"), ["c"].into_iter().collect());
        let b = "use crate::a::Y;\n#[cfg(test)]\nmod tests {\n    use crate::c::Z;\n}\n";
        assert_eq!(crate_paths(b, &names, "b"), ["a"].into_iter().collect());
        let mut graph = std::collections::BTreeMap::new();
        graph.insert("a", ["c"].into_iter().collect::<BTreeSet<_>>());
        graph.insert("b", ["a"].into_iter().collect());
        graph.insert("c", BTreeSet::new());
        assert_eq!(find_cycle(&graph), None);
        graph.insert("c", ["b"].into_iter().collect());
        assert_eq!(find_cycle(&graph), Some(vec!["a", "c", "b", "a"]));
    }

    #[test]
    fn redcap_core_has_no_module_cycle() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        module_cycles(&root.join("crates/redcap-core/src")).unwrap();
    }
}
