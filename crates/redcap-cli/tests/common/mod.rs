//! What the CLI's test files share: a running emulator with the demo project, its admin token,
//! and `redcap` run in an isolated config, state and working directory.

// Each test file uses its own subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use redcap_emulator::{Emulator, RunningEmulator};

pub const DEMO_XML: &str = include_str!("../../demo/demo-project.xml");

/// A running emulator with one project, a token, and empty config and work directories.
pub struct Fixture {
    pub emu: RunningEmulator,
    pub pid: i64,
    pub token: String,
    pub config: tempfile::TempDir,
    pub work: tempfile::TempDir,
}

impl Fixture {
    /// The demo project.
    pub fn new() -> Fixture {
        Fixture::with_xml(DEMO_XML)
    }

    /// A project loaded from `xml`.
    pub fn with_xml(xml: &str) -> Fixture {
        let emu = Emulator::builder().project_xml(xml).in_memory().start().expect("emulator starts");
        let pid = emu.project_ids()[0];
        let token = emu.token(pid, redcap_emulator::DEFAULT_ADMIN).expect("admin token");
        Fixture { emu, pid, token, config: tempfile::tempdir().unwrap(), work: tempfile::tempdir().unwrap() }
    }

    /// `redcap` with no connection settings but an isolated config and state directory, as a
    /// cron job runs it (no terminal).
    pub fn bare(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redcap"));
        cmd.current_dir(self.work.path())
            .env("REDCAP_CONFIG_DIR", self.config.path())
            .env("REDCAP_STATE_DIR", self.config.path().join("state"))
            .env_remove("REDCAP_API_URL")
            .env_remove("REDCAP_API_TOKEN")
            .env_remove("REDCAP_PROFILE");
        cmd
    }

    /// `redcap` connected to the emulator through the environment.
    pub fn redcap(&self) -> Command {
        self.redcap_as(&self.token)
    }

    /// `redcap` connected to the emulator with `token`.
    pub fn redcap_as(&self, token: &str) -> Command {
        let mut cmd = self.bare();
        cmd.env("REDCAP_API_URL", self.emu.url()).env("REDCAP_API_TOKEN", token);
        cmd
    }

    /// Runs `args`; the token appears in neither stream.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_as(&self.token, args)
    }

    /// Runs `args` with `token`; the token appears in neither stream.
    pub fn run_as(&self, token: &str, args: &[&str]) -> Output {
        let out = self.redcap_as(token).args(args).output().unwrap();
        assert_no_token(&out, token);
        out
    }

    /// Runs and returns stdout, asserting success.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_both(args).0
    }

    /// Runs and returns stdout and stderr, asserting success.
    pub fn ok_both(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    }

    /// A path in the work directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.work.path().join(rel)
    }
}

/// The token (in any case) appears in neither output stream.
pub fn assert_no_token(out: &Output, token: &str) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(token), "the token appears in the output:\n{text}");
        assert!(!text.to_lowercase().contains(&token.to_lowercase()));
    }
}

/// Writes `bytes` at `path`, creating its folders.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The process's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
