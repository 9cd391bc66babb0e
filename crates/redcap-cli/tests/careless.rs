//! A hurried data manager's mistakes, each refused clearly and without losing anything: tokens
//! pasted badly or typed in the wrong place, output closed early, directories that hold other
//! things, import files that are empty or odd, a terminal where a pipe was meant, and a
//! `--resume-from` that no longer fits. Driven as a subprocess against the emulator.

use std::io::Read;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Fixture, assert_no_token, stderr, write};

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

/// `redcap` as a plain `std` command with the fixture's connection (assert_cmd always pipes
/// stdin, and these tests need to choose it or close the other end of a pipe).
fn std_command(f: &Fixture, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_redcap"));
    cmd.current_dir(f.work.path())
        .env("REDCAP_CONFIG_DIR", f.config.path())
        .env("REDCAP_STATE_DIR", f.config.path().join("state"))
        .env_remove("REDCAP_PROFILE")
        .env("REDCAP_API_URL", f.emu.url())
        .env("REDCAP_API_TOKEN", &f.token)
        .args(args);
    cmd
}

/// Waits for `child` at most `limit`; kills it and returns `None` if it is still running.
fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_malformed_token_is_refused_before_any_request_with_what_to_fix() {
    let f = Fixture::new();
    let t = f.token.clone();
    let calls = f.emu.faults().calls();
    let cases = [
        // REDCap's tokens are upper-case: a lowered copy would reach the server and be told
        // it has no API rights, which sends the user looking in the wrong place.
        (t.to_lowercase(), "upper-case"),
        (format!(" {t}"), "position 0"),
        (format!("{}\n{}", &t[..16], &t[16..]), "position 16"),
        // `REDCAP_API_TOKEN=$(cat token.txt)` of a file with Windows line ends.
        (format!("{t}\r"), "line"),
        (t[..31].to_owned(), "31 characters"),
    ];
    for (bad, says) in &cases {
        let out = f.run_as(bad, &["info"]);
        let err = stderr(&out);
        assert_eq!(code(&out), 3, "{bad:?}: {err}");
        assert!(err.contains(says) && err.contains("nothing was sent"), "{bad:?}: {err}");
        // The same from the command line.
        let out = f.redcap_as("unused").env_remove("REDCAP_API_TOKEN").args(["--token", bad, "info"]).output().unwrap();
        assert_no_token(&out, bad);
        assert_eq!(code(&out), 3, "--token {bad:?}: {}", stderr(&out));
    }
    // And from a profile file.
    let profile =
        format!("default = \"lab\"\n[profiles.lab]\nurl = \"{}\"\ntoken = \"{}\"\n", f.emu.url(), t.to_lowercase());
    write(&f.config.path().join("config.toml"), profile);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f.config.path().join("config.toml"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = f.bare().arg("info").output().unwrap();
    assert_no_token(&out, &t);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("profile `lab`"), "{}", stderr(&out));
    assert_eq!(f.emu.faults().calls(), calls, "no request was made");
}

#[test]
fn an_api_url_copied_from_the_browser_is_refused_with_the_one_meant() {
    let f = Fixture::new();
    let api = f.emu.url();
    let base = api.trim_end_matches("api/");
    let calls = f.emu.faults().calls();
    for page in [
        format!("{base}redcap_v14.5.2/index.php?pid={}", f.pid),
        format!("{base}redcap_v14.5.2/API/project_api.php?pid={}", f.pid),
        format!("{base}api/help/"),
    ] {
        let out = f.run(&["info", "--url", &page]);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{page}: {err}");
        assert!(err.contains("web page") && err.contains(&format!("likely {api}")), "{page}: {err}");
    }
    // A scheme typed wrong.
    for typo in ["https//redcap.example.edu/api/", "redcap.example.edu/api/"] {
        let out = f.run(&["info", "--url", typo]);
        assert_eq!(code(&out), 2, "{typo}: {}", stderr(&out));
        assert!(stderr(&out).contains("does not start with `https://`"), "{typo}: {}", stderr(&out));
    }
    let out = f.run(&["info", "--url", "htps://redcap.example.edu/api/"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("must use https, not `htps:`"), "{}", stderr(&out));
    assert_eq!(f.emu.faults().calls(), calls, "no request was made");
    // `/API/` for `/api/` is only a matter of case.
    assert!(f.ok(&["info", "--url", &api.replace("/api/", "/API/")]).contains("REDCap version"));
}

#[test]
fn a_token_typed_where_another_argument_goes_is_not_echoed_by_the_usage_error() {
    let f = Fixture::new();
    let t = f.token.clone();
    let runs: [&[&str]; 4] =
        [&["info", &t], &["files", "ls", "--folder", &t], &["records", "export", "--format", &t], &[&t, "info"]];
    for args in runs {
        // `run` asserts that the token (in any case) is in neither stream.
        let out = f.run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("error: "), "{args:?}: {}", stderr(&out));
    }
    // A lower-case copy is redacted too.
    let out = f.run(&["info", &t.to_lowercase()]);
    assert_eq!(code(&out), 2);
    // Help and version still print normally.
    assert!(f.ok(&["info", "--help"]).contains("Usage: redcap info"));
}

/// `redcap … | head -1` and `redcap … 2>&1 | head -1`: whichever stream the reader closes,
/// the command ends with its own exit code, never a panic (101) or a write error (6).
#[test]
fn a_closed_output_stream_ends_the_command_quietly() {
    let f = Fixture::new();
    // Every answer waits, so the reader has gone before anything is written.
    f.emu.faults().set_latency(Duration::from_millis(300));
    for args in [
        &["info", "--format", "json"][..],
        &["files", "tree", "--format", "json"],
        &["files", "ls", "--format", "json"],
    ] {
        let mut child = std_command(&f, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let status = wait_at_most(&mut child, Duration::from_secs(30)).expect("ends");
        assert_eq!(status.code(), Some(0), "{args:?} with stdout closed: {err}");
        assert_eq!(err, "", "{args:?}: nothing to say about a closed pipe");
    }
    // An error written to a closed stderr: the error's own exit code (4: no such report).
    let mut child =
        std_command(&f, &["report", "export", "999"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stderr.take());
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = wait_at_most(&mut child, Duration::from_secs(30)).expect("ends");
    assert_eq!(status.code(), Some(4), "with stderr closed");
    // Retry warnings (tracing's) to a closed stderr, then the error: exit 5, nothing could be reached.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/", l.local_addr().unwrap())
    };
    let mut child =
        std_command(&f, &["info", "--url", &dead]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stderr.take());
    let status = wait_at_most(&mut child, Duration::from_secs(60)).expect("ends");
    assert_eq!(status.code(), Some(5), "warnings and an error to a closed stderr");
}

#[test]
fn a_backup_into_a_directory_holding_other_files_replaces_nothing() {
    let f = Fixture::new();
    write(&f.path("outgoing/a.txt"), "remote");
    f.ok(&["files", "push", "outgoing"]);
    // A directory that is not a backup: the user's own project.xml and File Repository copy.
    let mine = [("mine/notes.txt", "mine"), ("mine/project.xml", "my own xml"), ("mine/file-repository/a.txt", "mine")];
    for (path, text) in mine {
        write(&f.path(path), text);
    }
    let calls = f.emu.faults().calls();
    let out = f.run(&["backup", "mine"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 6, "{err}");
    assert!(err.contains("not a backup") && err.contains("notes.txt"), "{err}");
    for (path, text) in mine {
        assert_eq!(std::fs::read_to_string(f.path(path)).unwrap(), text, "{path} is untouched");
    }
    assert!(!f.path("mine/backup-manifest.json").exists());
    assert_eq!(f.emu.faults().calls(), calls, "refused before any request");

    // An empty directory is fine, and so is one an interrupted first backup left (only
    // backup's own files, no manifest yet).
    std::fs::create_dir(f.path("empty")).unwrap();
    f.ok(&["-q", "backup", "empty"]);
    std::fs::remove_file(f.path("empty/backup-manifest.json")).unwrap();
    f.ok(&["-q", "backup", "empty"]);
    f.ok(&["-q", "backup", "verify", "empty"]);
}

#[test]
fn a_dataset_pull_never_replaces_a_file_it_did_not_write() {
    let f = Fixture::new();
    // The user's own files at the names the pull writes (the demo has `enrollment`).
    write(&f.path("study/enrollment.parquet"), "my own table");
    write(&f.path("study/notes.txt"), "mine");
    write(&f.path("csv/_manifest.json"), "{}");
    for (dir, file, text, extra) in [
        ("study", "enrollment.parquet", "my own table", &[][..]),
        ("csv", "_manifest.json", "{}", &["--format", "csv"][..]),
    ] {
        let mut args = vec!["dataset", "pull", dir];
        args.extend_from_slice(extra);
        let out = f.run(&args);
        let err = stderr(&out);
        assert_eq!(code(&out), 6, "{dir}: {err}");
        assert!(err.contains(file) && err.contains("nothing was replaced"), "{dir}: {err}");
        assert_eq!(std::fs::read_to_string(f.path(dir).join(file)).unwrap(), text);
        assert!(!f.path(dir).join(".redcap").exists(), "{dir}: nothing was started");
    }
    assert_eq!(std::fs::read_to_string(f.path("study/notes.txt")).unwrap(), "mine");

    // A file where the dataset's directory goes.
    write(&f.path("dataset"), "a file");
    let out = f.run(&["dataset", "pull", "dataset"]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a directory"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(f.path("dataset")).unwrap(), "a file");

    // A directory of other files, but none in the way: the pull goes ahead beside them.
    f.ok(&["-q", "dataset", "pull", "study", "--forms", "sleep_diary"]);
    assert_eq!(std::fs::read_to_string(f.path("study/enrollment.parquet")).unwrap(), "my own table");
    assert!(f.path("study/sleep_diary.parquet").exists());
}

#[test]
fn an_import_file_that_is_empty_or_ambiguous_is_refused_and_nothing_is_sent() {
    let f = Fixture::new();
    let calls = f.emu.faults().calls();
    for (name, text, says) in [
        ("empty.csv", "", "is empty"),
        ("blank.csv", "\n  \r\n", "is empty"),
        ("empty.json", "", "is empty"),
        ("bom-only.csv", "\u{feff}", "is empty"),
        ("twice.csv", "record_id,age,age\n50,30,31\n", "`age` twice"),
        ("twice-crlf.csv", "record_id,age,sex,age\r\n50,30,1,31\r\n", "`age` twice"),
        ("trailing.csv", "record_id,age,\n50,30,\n", "column 3 of the header has no name"),
        // A spreadsheet saved with its locale's separator.
        ("semicolons.csv", "record_id;age\n50;30\n", "separated by `;`"),
    ] {
        write(&f.path(name), text);
        let out = f.run(&["records", "import", name]);
        let err = stderr(&out);
        assert_eq!(code(&out), 6, "{name}: {err}");
        assert!(err.contains(says) && err.contains(name), "{name}: {err}");
    }
    // Latin-1, as a spreadsheet may save it.
    std::fs::write(f.path("latin1.csv"), b"record_id,notes\n50,caf\xe9\n").unwrap();
    let out = f.run(&["records", "import", "latin1.csv"]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("save the file as UTF-8"), "{}", stderr(&out));
    // Empty standard input: what `upstream | redcap records import -` gets when upstream failed.
    let out = f.redcap().args(["records", "import", "-"]).write_stdin("").output().unwrap();
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
    assert_eq!(f.emu.faults().calls(), calls, "nothing was sent");

    // A byte-order mark (PowerShell, Excel) and Windows line ends are read as the user meant.
    write(&f.path("bom.json"), "\u{feff}[{\"record_id\":\"60\",\"age\":\"30\"}]");
    write(&f.path("crlf.csv"), "record_id,age\r\n61,31\r\n");
    f.ok(&["-q", "records", "import", "bom.json"]);
    f.ok(&["-q", "records", "import", "crlf.csv"]);
    let csv = f.ok(&["records", "export", "--records", "60,61", "--fields", "record_id,age", "--format", "csv"]);
    assert_eq!(csv, "record_id,age\n60,30\n61,31\n");
}

#[test]
fn a_resume_from_past_the_last_batch_is_refused() {
    let f = Fixture::new();
    write(&f.path("three.csv"), "record_id,age\n70,30\n71,31\n72,32\n");
    let calls = f.emu.faults().calls();
    // The import that stopped used --batch-size 1; this run forgot it: one batch of 100.
    let out = f.run(&["records", "import", "three.csv", "--resume-from", "2", "--no-check"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("batch 2") && err.contains("1 batch") && err.contains("--batch-size"), "{err}");
    assert!(f.emu.faults().calls() - calls <= 1, "at most the data dictionary was read");
    let csv = f.ok(&["records", "export", "--records", "70,71,72", "--fields", "record_id", "--format", "csv"]);
    assert_eq!(csv.lines().count(), 1, "nothing was imported: {csv}");
    // The batch that exists still resumes.
    f.ok(&["-q", "records", "import", "three.csv", "--resume-from", "2", "--batch-size", "1", "--no-check"]);
}

/// `-o` naming a directory, or a directory that does not exist, says so.
#[test]
fn an_output_path_that_is_a_directory_is_named_as_such() {
    let f = Fixture::new();
    std::fs::create_dir(f.path("out")).unwrap();
    write(&f.path("out/keep.txt"), "mine");
    for target in ["out", "out/"] {
        let out = f.run(&["records", "export", "-o", target]);
        assert_eq!(code(&out), 6, "{target}: {}", stderr(&out));
        assert!(stderr(&out).contains("is a directory"), "{target}: {}", stderr(&out));
    }
    write(&f.path("up/a.txt"), "remote");
    let doc = f.ok(&["files", "put", "up/a.txt"]).trim().to_owned();
    let out = f.run(&["files", "get", &doc, "-o", "new/"]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("directory new/ does not exist"), "{}", stderr(&out));
    // `files pull` into a file.
    write(&f.path("mirror"), "a file");
    let out = f.run(&["files", "pull", "mirror"]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("mirror is not a directory"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(f.path("mirror")).unwrap(), "a file");
    assert_eq!(std::fs::read_dir(f.path("out")).unwrap().count(), 1, "nothing left in out/");
    assert_eq!(std::fs::read_to_string(f.path("out/keep.txt")).unwrap(), "mine");
}

/// A pseudo-terminal's other end, as a `Stdio` for the child's stdin.
#[cfg(unix)]
fn terminal() -> (std::os::fd::OwnedFd, Stdio) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new().read(true).write(true).open(Path::new(name.to_str().unwrap())).unwrap();
    (master, Stdio::from(slave))
}

/// Reading from stdin when stdin is a terminal (nothing piped in): a message, never a silent
/// wait for input that is not coming.
#[cfg(unix)]
#[test]
fn standard_input_that_is_a_terminal_is_not_waited_on() {
    let f = Fixture::new();
    let (_master, tty) = terminal();
    let mut child = std_command(&f, &["records", "import", "-"])
        .stdin(tty)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_at_most(&mut child, Duration::from_secs(10)).expect("records import - on a terminal ends");
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("terminal") && err.contains("records import - <"), "{err}");

    // `profile add --token-stdin` on a terminal: the same, pointing at the hidden prompt
    // (waiting for an end of input would echo the pasted token on the screen).
    let (_master, tty) = terminal();
    let url = f.emu.url();
    let mut child = std_command(&f, &["profile", "add", "lab", "--url", &url, "--token-stdin"])
        .env_remove("REDCAP_API_TOKEN")
        .stdin(tty)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status =
        wait_at_most(&mut child, Duration::from_secs(10)).expect("profile add --token-stdin on a terminal ends");
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("terminal") && err.contains("without --token-stdin"), "{err}");
    assert!(!f.config.path().join("config.toml").exists());
}

/// A nightly export killed mid-way (a job timeout, Ctrl-C) leaves yesterday's file whole, and
/// the temporary file it was writing is removed by a later run once it is stale.
#[test]
fn a_killed_export_keeps_the_old_file_and_its_leftover_is_cleaned_later() {
    let f = Fixture::new();
    write(&f.path("out.json"), "yesterday");
    f.emu.faults().set_latency(Duration::from_secs(3));
    let mut child = std_command(&f, &["records", "export", "-o", "out.json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partials = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(f.work.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".redcap-output-"))
            .map(|e| e.path())
            .collect()
    };
    let start = Instant::now();
    while partials().is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(std::fs::read_to_string(f.path("out.json")).unwrap(), "yesterday", "never replaced by a partial file");
    let left = partials();
    assert_eq!(left.len(), 1, "the killed write's temporary file: {left:?}");
    f.emu.faults().set_latency(Duration::ZERO);

    // An hour later, the next write into the directory removes it; a fresh one (another run's,
    // still writing) stays.
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&left[0]).unwrap().set_modified(hour_ago).unwrap();
    write(&f.path(".redcap-output-running"), "another run");
    f.ok(&["-q", "call", "version.export", "-o", "version.txt"]);
    assert!(!left[0].exists(), "the stale leftover is removed");
    assert!(f.path(".redcap-output-running").exists(), "a fresh one is not");
}
