//! `cargo xtask compat`: PyCap 2.7.0's doctests against the emulator.
//!
//! PyCap's doctests ship inside its PyPI package and were recorded against a live REDCap
//! (redcapdemo.vumc.org). This installs PyCap 2.7.0 (with pandas, as its `data-science` extra)
//! and pytest into a venv under `target/`, starts the emulator with no project, and runs
//! `pytest --doctest-modules` over the installed `redcap` package with the option flags of
//! PyCap's own `pytest.ini`. PyCap's doctest conftest creates the doctest project through the
//! super token; the integration fixture it imports is not in the package, so a stand-in
//! (`xtask/compat/fixture.py`, written here) points it at the emulator. PyCap's code is
//! installed from PyPI, never copied into this repository.
//!
//! Prints `N passed, M failed`. A failure is accepted only for a doctest in [`UNPASSABLE`]
//! (no local server can pass it, each with its reason); any other failure, or an unpassable
//! doctest that passes (the list would be stale), fails the command.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What the venv holds; pinned so a run today and a run next year test the same client.
const REQUIREMENTS: &[&str] = &["pycap[data-science]==2.7.0", "pandas==2.3.3", "pytest==9.2.0"];

/// Doctests no local server can pass, by pytest's doctest name, with the reason.
pub const UNPASSABLE: &[(&str, &str)] = &[(
    "redcap.project.Project",
    "its example builds a Project on https://redcapdemo.vumc.org/api/ itself, a host no local server is",
)];

/// Doctests of methods the emulator does not implement yet (issue 12 item 3). Their failure is
/// accepted only while the emulator answers that it does not implement the method; once it
/// does, the doctest must pass (or be moved to [`UNPASSABLE`] with its reason).
pub const NOT_EMULATED: &[&str] = &[];

/// What the emulator says for a method it does not implement (`handlers::not_emulated`).
const NOT_IMPLEMENTED: &str = "The emulator does not implement";

/// pytest's failure report of each doctest: the text under its `_ [doctest] NAME _` header.
fn failure_sections(stdout: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        let header = line
            .trim_matches('_')
            .trim()
            .strip_prefix("[doctest] ")
            .filter(|_| line.starts_with('_') && line.ends_with('_'));
        if let Some(name) = header {
            out.push((name.trim().to_owned(), String::new()));
        } else if line.starts_with("=====") {
            // The next `=` banner (short test summary) ends the last section.
            if !out.is_empty() && line.contains("short test summary") {
                break;
            }
        } else if let Some((_, text)) = out.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out
}

/// Doctest outcomes from pytest's `-rA` summary: (name, passed, reason).
fn outcomes(stdout: &str) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let (passed, rest) = if let Some(r) = line.strip_prefix("PASSED ") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("FAILED ").or_else(|| line.strip_prefix("ERROR ")) {
            (false, r)
        } else {
            continue;
        };
        // `path::name - reason`; the name is what follows the last `::`.
        let (id, reason) = rest.split_once(" - ").unwrap_or((rest, ""));
        let name = id.rsplit("::").next().unwrap_or(id).trim().to_owned();
        out.push((name, passed, reason.trim().to_owned()));
    }
    out
}

fn venv_python(target: &Path) -> Result<PathBuf, String> {
    let venv = target.join("compat-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.txt");
    let wanted = REQUIREMENTS.join("\n");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(python);
    }
    eprintln!("installing {} into {}…", REQUIREMENTS.join(" "), venv.display());
    let made = Command::new("python3").args(["-m", "venv", "--clear", &venv.to_string_lossy()]).status();
    if !made.is_ok_and(|s| s.success()) {
        return Err("python3 -m venv failed (python3 with the venv module is needed)".into());
    }
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(REQUIREMENTS)
        .status();
    if !installed.is_ok_and(|s| s.success()) {
        return Err(format!("pip could not install {}", REQUIREMENTS.join(" ")));
    }
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// The super token's user. PyCap's doctest `import_user_dag_assignment` lists the user it adds,
/// `pandeharris@gmail.com`, before the project's creator: users come in username order, so the
/// creator's name on the server the doctests were recorded on sorts after it (the emulator's
/// default, `admin`, sorts before).
const ADMIN: &str = "pycap_superuser";

/// REDCap makes survey links under its configured base URL; the doctests' links are under the
/// server they were recorded on (`'https://redcapdemo.vumc.org/surveys/?s=...'`).
const BASE_URL: &str = "https://redcapdemo.vumc.org/";

/// The emulator, stopped (killed by its own handle) when dropped.
struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the emulator in memory on a free port; returns it with its URL and super token.
fn start_emulator(bin: &Path) -> Result<(Emulator, String, String), String> {
    let mut child = Command::new(bin)
        .args(["--in-memory", "--bind", "127.0.0.1:0", "--admin", ADMIN, "--base-url", BASE_URL])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let emu = Emulator(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut next = || lines.next().and_then(Result::ok).ok_or("the emulator did not start");
    let url = next()?.rsplit(' ').next().unwrap_or_default().to_owned();
    let token = next()?.rsplit(' ').next().unwrap_or_default().to_owned();
    // Keep reading what it prints: a closed pipe would end it at its next line.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((emu, url, token))
}

pub fn compat(root: &Path) -> Result<bool, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let python = venv_python(&target)?;
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "redcap-emulator"])
        .current_dir(root)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("cargo build -p redcap-emulator failed".into());
    }
    let site = Command::new(&python)
        .args(["-c", "import os, redcap; print(os.path.dirname(redcap.__file__))"])
        .output()
        .map_err(|e| e.to_string())?;
    let package = String::from_utf8_lossy(&site.stdout).trim().to_owned();
    if !site.status.success() || package.is_empty() {
        return Err("PyCap is not importable in the venv".into());
    }

    // The layout PyCap's doctest conftest expects in its working directory.
    let work = target.join("compat-work");
    let _ = std::fs::remove_dir_all(&work);
    let integration = work.join("tests/integration");
    std::fs::create_dir_all(&integration).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(work.join("tests/data")).map_err(|e| e.to_string())?;
    for init in [work.join("tests/__init__.py"), integration.join("__init__.py")] {
        std::fs::write(init, "").map_err(|e| e.to_string())?;
    }
    std::fs::write(integration.join("conftest.py"), include_str!("../compat/fixture.py")).map_err(|e| e.to_string())?;
    std::fs::copy(
        root.join("crates/redcap-emulator/fixtures/pycap-doctest_project.xml"),
        work.join("tests/data/doctest_project.xml"),
    )
    .map_err(|e| e.to_string())?;

    let (emulator, url, token) = start_emulator(&target.join("debug/redcap-emulator"))?;
    let out = Command::new(&python)
        .args(["-m", "pytest", "--doctest-modules", "-p", "no:cacheprovider", "-rA", "--tb=short", "-q"])
        .args(["-o", "doctest_optionflags=NORMALIZE_WHITESPACE ELLIPSIS"])
        .args(["-W", "ignore::UserWarning", "-W", "ignore::DeprecationWarning"])
        .arg(format!("--rootdir={}", work.display()))
        .arg(&package)
        .current_dir(&work)
        .env("REDCAP_COMPAT_URL", &url)
        .env("REDCAP_COMPAT_SUPER_TOKEN", &token)
        .output()
        .map_err(|e| e.to_string())?;
    drop(emulator);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results = outcomes(&stdout);
    if results.is_empty() {
        println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        return Err("pytest reported no doctest outcome".into());
    }
    let sections = failure_sections(&stdout);
    let (mut passed, mut failed, mut ok) = (0, 0, true);
    let mut unexpected = Vec::new();
    for (name, pass, reason) in &results {
        let allowed = UNPASSABLE.iter().find(|(n, _)| n == name).map(|(_, why)| *why);
        if !pass && allowed.is_none() && NOT_EMULATED.contains(&name.as_str()) {
            let said = sections.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_str()).unwrap_or_default();
            failed += 1;
            if said.contains(NOT_IMPLEMENTED) {
                println!("not emulated yet {name}: the emulator answers that it does not implement the method");
            } else {
                ok = false;
                unexpected.push(format!("{name} failed (listed as not emulated, but the emulator answered)"));
            }
            continue;
        }
        match (pass, allowed) {
            (true, Some(_)) => {
                passed += 1;
                ok = false;
                unexpected.push(format!("{name} passes but is listed as unpassable: remove it from UNPASSABLE"));
            }
            (true, None) if NOT_EMULATED.contains(&name.as_str()) => {
                passed += 1;
                println!("{name} passes: remove it from NOT_EMULATED");
            }
            (false, Some(why)) => {
                failed += 1;
                println!("expected failure {name}: {why}");
            }
            (true, None) => passed += 1,
            (false, None) => {
                failed += 1;
                ok = false;
                unexpected.push(if reason.is_empty() {
                    format!("{name} failed")
                } else {
                    format!("{name} failed: {reason}")
                });
            }
        }
    }
    for name in UNPASSABLE.iter().map(|(n, _)| *n).chain(NOT_EMULATED.iter().copied()) {
        if !results.iter().any(|(n, _, _)| n == name) {
            ok = false;
            unexpected.push(format!("{name} is listed as unpassable but did not run"));
        }
    }
    if !unexpected.is_empty() {
        // pytest's own report says why each doctest failed.
        println!("{stdout}");
        for u in &unexpected {
            println!("NOT ACCEPTED {u}");
        }
    }
    println!("PyCap 2.7.0 doctests against the emulator: {passed} passed, {failed} failed");
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::{failure_sections, outcomes};

    #[test]
    fn reads_failure_sections() {
        let out = "=== FAILURES ===\n_____ [doctest] redcap.a.B.c _____\nExpected:\n    1\n\
                   ___ [doctest] redcap.a.B.d ___\nERROR: The emulator does not implement x\n\
                   ===== short test summary info =====\nFAILED x\n";
        let got = failure_sections(out);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], ("redcap.a.B.c".into(), "Expected:\n    1\n".into()));
        assert!(got[1].1.contains("does not implement"));
        assert!(!got[1].1.contains("FAILED"));
    }

    #[test]
    fn reads_pytest_summary_lines() {
        let out = "x\nPASSED ../redcap/methods/arms.py::redcap.methods.arms.Arms.export_arms\n\
                   FAILED ../redcap/methods/users.py::redcap.methods.users.Users.export_users - AssertionError\n\
                   ERROR ../a.py::redcap.a.b - fixture\n";
        let got = outcomes(out);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], ("redcap.methods.arms.Arms.export_arms".into(), true, String::new()));
        assert_eq!(got[1], ("redcap.methods.users.Users.export_users".into(), false, "AssertionError".into()));
        assert!(!got[2].1);
    }
}
