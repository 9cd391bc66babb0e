//! The `redcap` binary driven as a subprocess against the emulator, started in-process.

use std::process::Output;

use assert_cmd::Command;
use predicates::prelude::*;
use redcap_emulator::{Rights, User};

mod common;
use common::{Fixture, assert_no_token, stderr, write};

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn files_commands() {
    let f = Fixture::new();
    let folder = f.ok(&["files", "mkdir", "Protocols"]).trim().parse::<u64>().expect("mkdir prints the folder_id");
    let folder_s = folder.to_string();
    let sub = f.ok(&["files", "mkdir", "Amendments", "--parent", &folder_s]).trim().to_owned();

    write(&f.path("up/protocol.txt"), "protocol v1\n");
    let doc = f.ok(&["files", "put", "up/protocol.txt", "--folder", &folder_s]);
    let doc: u64 = doc.trim().parse().expect("put prints only the doc_id on stdout");

    let ls = f.ok(&["files", "ls", &folder_s]);
    assert!(ls.contains("protocol.txt") && ls.contains("Amendments/") && ls.contains(&doc.to_string()), "{ls}");
    let ls = json(&f.ok(&["files", "ls", &folder_s, "--format", "json"]));
    assert_eq!(ls.as_array().unwrap().len(), 2);
    let top = f.ok(&["files", "ls", "--format", "csv"]);
    assert!(top.starts_with("kind,id,name,dag,role\n") && top.contains("folder,"), "{top}");

    let tree = f.ok(&["files", "tree"]);
    assert!(tree.contains("└── Protocols/") && tree.contains("    └── protocol.txt  (doc_id"), "{tree}");
    let tree = json(&f.ok(&["files", "tree", "--format", "json"]));
    assert_eq!(tree["files"][0]["path"], "Protocols/protocol.txt");

    // get: to a file, into a directory under REDCap's name, and to stdout.
    let saved = f.ok(&["files", "get", &doc.to_string(), "-o", "copy.txt"]);
    assert_eq!(saved.trim(), "copy.txt");
    assert_eq!(std::fs::read_to_string(f.path("copy.txt")).unwrap(), "protocol v1\n");
    std::fs::create_dir(f.path("dl")).unwrap();
    f.ok(&["files", "get", &doc.to_string(), "-o", "dl"]);
    assert!(f.path("dl/protocol.txt").is_file());
    assert_eq!(f.ok(&["files", "get", &doc.to_string(), "-o", "-"]), "protocol v1\n");

    // push a tree, then pull the folder back.
    write(&f.path("site/readme.md"), "# site\n");
    write(&f.path("site/forms/consent.txt"), "consent\n");
    // Data (what was uploaded) on stdout, the summary on stderr.
    let (pushed, said) = f.ok_both(&["files", "push", "site", "--folder", &sub]);
    assert!(pushed.contains("forms/consent.txt\tdoc_id ") && said.contains("Pushed 2 files"), "{pushed}{said}");
    assert!(!pushed.contains("Pushed"), "{pushed}");
    let (_, again) = f.ok_both(&["files", "push", "site", "--folder", &sub]);
    assert!(again.contains("Pushed 0 files") && again.contains("2 already pushed"), "{again}");

    let (out, pulled) = f.ok_both(&["files", "pull", "--folder", &folder_s, "mirror"]);
    assert!(pulled.contains("Pulled 3 files") && out.is_empty(), "{out}{pulled}");
    assert_eq!(std::fs::read_to_string(f.path("mirror/Amendments/forms/consent.txt")).unwrap(), "consent\n");
    let (_, again) = f.ok_both(&["files", "pull", "--folder", &folder_s, "mirror"]);
    assert!(again.contains("Pulled 0 files") && again.contains("3 already there"), "{again}");

    // rm, then a pull with --delete removes the local copy.
    f.ok(&["files", "rm", &doc.to_string()]);
    assert!(!f.ok(&["files", "ls", &folder_s]).contains("protocol.txt"));
    let (_, pruned) = f.ok_both(&["files", "pull", "--folder", &folder_s, "mirror", "--delete"]);
    assert!(pruned.contains("removed 1"), "{pruned}");
    assert!(!f.path("mirror/protocol.txt").exists());
}

#[test]
fn reports_and_records() {
    let f = Fixture::new();
    let report = f.emu.report_id(f.pid, "R-DEMOSHORT1").unwrap().to_string();
    let rows = json(&f.ok(&["report", "export", &report]));
    let ids: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["record_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["4", "1", "7"], "the report's filter logic and order");
    let csv = f.ok(&["report", "export", &report, "--format", "csv"]);
    assert!(csv.starts_with("record_id,"), "{csv}");
    assert_eq!(csv.lines().count(), 4);
    let table = f.ok(&["report", "export", &report, "--format", "table", "--labels"]);
    assert!(table.contains("Very poorly") && table.lines().nth(1).unwrap().starts_with('─'), "{table}");

    let all = json(&f.ok(&["records", "export", "--batch-size", "3"]));
    assert_eq!(all.as_array().unwrap().len(), 8);
    let some = f.ok(&["records", "export", "--fields", "record_id,age", "--filter", "[age] < 18", "--format", "csv"]);
    assert_eq!(some, "record_id,age\n3,16\n");
    std::fs::create_dir(f.path("out")).unwrap();
    let printed = f.ok(&["records", "export", "--forms", "sleep_diary", "--format", "csv", "-o", "out/records.csv"]);
    assert_eq!(printed, "", "with -o nothing goes to stdout");
    let csv = std::fs::read_to_string(f.path("out/records.csv")).unwrap();
    assert!(csv.starts_with("record_id,hours_sleep,"), "{csv}");
    assert_eq!(csv.lines().count(), 9);
    let table = f.ok(&["records", "export", "--records", "2,5", "--format", "table"]);
    assert_eq!(table.lines().count(), 4, "{table}");

    write(&f.path("new.json"), r#"[{"record_id":"9","age":"30"},{"record_id":"10","age":"41"}]"#);
    assert!(f.ok_both(&["records", "import", "new.json", "--batch-size", "1"]).1.contains("Imported 2 records"));
    write(&f.path("new.csv"), "record_id,age,hours_sleep\n11,22,7\n");
    assert!(f.ok_both(&["records", "import", "new.csv"]).1.contains("Imported 1 record "));
    let all = json(&f.ok(&["records", "export", "--fields", "record_id"]));
    assert_eq!(all.as_array().unwrap().len(), 11);

    // REDCap's per-value import errors are listed under the sentence.
    write(&f.path("bad.csv"), "record_id,age\n12,old\n");
    let out = f.redcap().args(["records", "import", "bad.csv", "--no-check"]).output().unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("age"), "{}", stderr(&out));
    // Checked first (the default), nothing is sent: the check names the row and field.
    let out = f.redcap().args(["records", "import", "bad.csv"]).output().unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(r#"row 1 (record 12): age = "old""#), "{}", stderr(&out));
}

/// Issue 11: an import that stops part-way says what was saved, what failed and what was not
/// sent, exits 7, and `--resume-from` goes on from the failing batch.
/// Issue 14: `records export` with no batch size is one records export, with no id list
/// first (the list cost a second full-size call); a batch size lists the ids, then batches.
#[test]
fn one_batch_export_is_one_records_call() {
    let f = Fixture::new();
    f.emu.faults().clear();
    let all = json(&f.ok(&["records", "export"]));
    assert_eq!(f.emu.faults().record_exports(), [Vec::<String>::new()], "one call, every record");
    let ids: std::collections::BTreeSet<&str> =
        all.as_array().unwrap().iter().map(|r| r["record_id"].as_str().unwrap()).collect();
    assert!(ids.len() > 3, "{ids:?}");
    f.emu.faults().clear();
    let batched = json(&f.ok(&["records", "export", "--batch-size", "3"]));
    assert_eq!(batched, all);
    let exports = f.emu.faults().record_exports();
    assert!(exports[0].is_empty(), "the id list first: {exports:?}");
    assert_eq!(exports.len(), 1 + ids.len().div_ceil(3), "{exports:?}");

    // --parallel: the same batches, the same rows in the same order.
    f.emu.faults().clear();
    let parallel = json(&f.ok(&["records", "export", "--batch-size", "3", "--parallel", "3"]));
    assert_eq!(parallel, all);
    let mut again = f.emu.faults().record_exports();
    again.sort();
    let mut once = exports.clone();
    once.sort();
    assert_eq!(again, once, "each batch asked for once");
    // It means something only with batches.
    let out = f.run(&["records", "export", "--parallel", "3"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch-size"), "{out:?}");
}

#[test]
fn a_partial_import_names_what_was_saved_and_resumes() {
    let f = Fixture::new();
    write(&f.path("part.csv"), "record_id,age\n20,30\n21,old\n22,40\n");
    let out = f.redcap().args(["records", "import", "part.csv", "--batch-size", "1", "--no-check"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(code(&out), 7, "{err}");
    for part in [
        "batch 2 of 3 failed",
        "record 21, field age, value `old`",
        "saved: 1 record in batches 1–1: 20",
        "failed, not saved: 1 record in batch 2: 21",
        "not sent: 1 record in batches 3–3: 22",
        "--resume-from 2",
    ] {
        assert!(err.contains(part), "{part:?} in {err}");
    }
    write(&f.path("part.csv"), "record_id,age\n20,30\n21,31\n22,40\n");
    let (_, err) = f.ok_both(&["records", "import", "part.csv", "--batch-size", "1", "--resume-from", "2"]);
    assert!(err.contains("Imported 2 records"), "{err}");
    let all = json(&f.ok(&["records", "export", "--records", "20,21,22", "--fields", "record_id,age"]));
    assert_eq!(all.as_array().unwrap().len(), 3);
}

#[test]
fn call_and_methods() {
    let f = Fixture::new();
    assert_eq!(f.ok(&["call", "version.export"]).trim(), "14.5.2");
    let csv = f.ok(&[
        "call",
        "record.export",
        "-p",
        "format=csv",
        "-p",
        "fields=record_id,age",
        "-p",
        "records=1",
        "-p",
        "records=2",
    ]);
    assert_eq!(csv.lines().next().unwrap(), "record_id,age");
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // json by default; -o writes a file and nothing to stdout.
    assert_eq!(f.ok(&["call", "metadata.export", "-p", "fields=age", "-o", "meta.json"]), "");
    assert_eq!(json(&std::fs::read_to_string(f.path("meta.json")).unwrap())[0]["field_name"], "age");
    // a File parameter takes a path.
    write(&f.path("x.txt"), "x");
    f.ok(&["call", "file_repository.import", "-p", "file=x.txt"]);
    assert!(f.ok(&["files", "ls"]).contains("x.txt"));

    let list = f.ok(&["call", "--list"]);
    assert_eq!(list.lines().filter(|l| l.starts_with("  ")).count(), 55, "{list}");
    assert_eq!(f.ok(&["methods", "list"]).lines().count(), 55);
    let help = f.ok(&["call", "record.export", "--help"]);
    for needle in ["filterLogic", "one of: json, csv, xml, odm", "REDCap's default: xml", "Rights: API Export"] {
        assert!(help.contains(needle), "{needle} missing:\n{help}");
    }
    assert!(f.ok(&["methods", "show", "file_repository.create_folder"]).contains("dag_id"));
}

#[test]
fn exit_codes() {
    let f = Fixture::new();
    // A port with nothing listening: any request would fail with 5.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/", l.local_addr().unwrap())
    };

    // 3: a malformed token is refused before any request.
    let out = f.bare().args(["files", "ls", "--url", &dead]).env("REDCAP_API_TOKEN", "not-a-token").output().unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("REDCAP_API_TOKEN") && stderr(&out).contains("nothing was sent"));

    // 3: a well-formed token REDCap does not know.
    let unknown = "0123456789ABCDEF0123456789ABCDEF";
    let out = f.redcap().env("REDCAP_API_TOKEN", unknown).args(["files", "ls"]).output().unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("rejected the API token"), "{}", stderr(&out));
    assert_no_token(&out, unknown);

    // 4: REDCap says no.
    let out = f.redcap().args(["report", "export", "999"]).output().unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: ") && stderr(&out).contains("report_id=999"), "{}", stderr(&out));

    // 4, with the right named: a user without File Repository rights.
    let no_files = Rights { file_repository: false, ..Rights::full() };
    let limited = f.emu.add_user(f.pid, User::new("nofiles").rights(no_files)).unwrap();
    let out = f.redcap().env("REDCAP_API_TOKEN", &limited).args(["files", "ls"]).output().unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: this needs the user right") && stderr(&out).contains("File Repository"));
    assert_no_token(&out, &limited);

    // 5: nothing listening; and a URL that is not the API.
    let out = f.redcap().args(["files", "ls", "--url", &dead]).output().unwrap();
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let wrong = f.emu.url().replace("/api/", "/redcap/api/");
    let out = f.redcap().args(["info", "--url", &wrong]).output().unwrap();
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("/api/"), "{}", stderr(&out));

    // 6: -o into a directory that does not exist; nothing is left behind.
    let out = f.redcap().args(["call", "version.export", "-o", "no/such/dir/v.txt"]).output().unwrap();
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    let out = f.redcap().args(["files", "put", "missing.pdf"]).output().unwrap();
    assert_eq!(code(&out), 6, "{}", stderr(&out));

    // 2: clap's usage errors, and missing configuration.
    let out = f.redcap().args(["files", "get", "abc"]).output().unwrap();
    assert_eq!(code(&out), 2);
    let out = f.redcap().args(["call", "record.export", "-p", "nope=1"]).output().unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = f.bare().args(["files", "ls"]).output().unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("REDCAP_API_URL"), "{}", stderr(&out));
    let out = f.redcap().args(["info", "--url", "https://redcap.example.edu/index.php"]).output().unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn profiles_are_checked_private_and_secret() {
    let f = Fixture::new();
    let url = f.emu.url();

    // A rejected token is not saved.
    let out = f
        .bare()
        .args(["profile", "add", "lab", "--url", &url, "--token-stdin"])
        .write_stdin("0123456789ABCDEF0123456789ABCDEF\n")
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(!f.config.path().join("config.toml").exists());

    let out = f
        .bare()
        .args(["profile", "add", "lab", "--url", &url, "--token-stdin"])
        .write_stdin(format!("{}\n", f.token))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_token(&out, &f.token);
    assert!(String::from_utf8_lossy(&out.stdout).contains("REDCap 14.5.2"));
    let file = f.config.path().join("config.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(std::fs::read_to_string(&file).unwrap().contains(&f.token), "the profile holds the token");

    // The default profile connects; list never shows the token.
    let out = f.bare().args(["info"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_token(&out, &f.token);
    let out = f.bare().args(["profile", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("lab"));
    assert_no_token(&out, &f.token);

    // --profile and REDCAP_PROFILE pick a profile; an unknown one is a usage error.
    f.bare().args(["files", "ls", "--profile", "lab"]).assert().success();
    f.bare().env("REDCAP_PROFILE", "lab").args(["files", "ls"]).assert().success();
    f.bare().args(["files", "ls", "--profile", "nope"]).assert().code(2);

    f.bare().args(["profile", "remove", "lab"]).assert().success();
    f.bare().args(["profile", "remove", "lab"]).assert().code(2);
    f.bare().args(["info"]).assert().code(2);
}

#[test]
fn the_token_never_appears() {
    let f = Fixture::new();
    let runs: Vec<Vec<&str>> = vec![
        vec!["info"],
        vec!["info", "--format", "json"],
        vec!["--help"],
        vec!["files", "--help"],
        vec!["call", "project.export_info", "-p", "format=csv"],
        vec!["call", "record.export", "-p", "bogus=1"],
        vec!["report", "export", "12345"],
        vec!["records", "import", "missing.json"],
        vec!["info", "--url", "http://127.0.0.1:9/api/"],
    ];
    for args in runs {
        for via_flag in [false, true] {
            let mut cmd = f.redcap();
            if via_flag {
                cmd.env_remove("REDCAP_API_TOKEN").args(["--token", &f.token]);
            }
            let out = cmd.args(&args).output().unwrap();
            assert_no_token(&out, &f.token);
        }
    }
    // A mistyped token is not echoed either.
    let typo = format!("{}Z", &f.token[..31]);
    let out = f.redcap().env("REDCAP_API_TOKEN", &typo).args(["info"]).output().unwrap();
    assert_eq!(code(&out), 3);
    assert_no_token(&out, &typo);
}

#[test]
fn help_and_completions() {
    let f = Fixture::new();
    let top = f.bare().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(text.contains("Exit codes:") && text.contains("REDCAP_API_TOKEN") && text.contains("ps"), "{text}");
    for sub in ["call", "methods", "info", "files", "report", "records", "profile", "demo", "completions"] {
        f.bare().args([sub, "--help"]).assert().success().stdout(predicate::str::contains("Usage: redcap"));
    }
    for sub in ["ls", "tree", "get", "put", "mkdir", "rm", "pull", "push"] {
        f.bare().args(["files", sub, "--help"]).assert().success();
    }
    for shell in ["bash", "zsh", "fish"] {
        f.bare()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("redcap").and(predicate::str::contains("record.export")));
    }
}

#[cfg(feature = "demo")]
#[test]
fn the_demo_runs_on_its_own() {
    let f = Fixture::new();
    let out = f.bare().arg("demo").timeout(std::time::Duration::from_secs(120)).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "$ redcap call version.export",
        "$ redcap info",
        "$ redcap files tree",
        "role U-DEMOCOORD",
        "DAG site_a",
        "Amendments/",
        "$ redcap files put",
        "Pulled 3 files",
        "Adults sleeping under 6 hours",
        "$ redcap dataset pull",
        "Pulled 8 records into",
        "sleep_diary.parquet",
        "Try next",
        "redcap-emulator",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from the demo:\n{text}");
    }
}

#[test]
fn a_moved_api_url_is_followed_with_a_warning() {
    let fx = Fixture::new();
    // The server answers 307 to the same API URL once: the POST is re-sent and the user told.
    fx.emu.faults().inject(redcap_emulator::Fault::Redirect { status: 307, location: fx.emu.url() }, 1);
    let out = fx.redcap().args(["call", "version.export"]).output().unwrap();
    assert_no_token(&out, &fx.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN") && stderr.contains("the API URL moved"), "{stderr}");
}

#[test]
fn the_proxy_environment_variables_are_honoured() {
    use std::io::{BufRead, BufReader, Write};
    // A stand-in proxy on loopback: records the request line and answers like REDCap.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        // Reads one request head and body; returns its request line.
        fn request(reader: &mut impl BufRead) -> String {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            line.trim().to_owned()
        }
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut out = stream;
            let mut line = request(&mut reader);
            if line.starts_with("CONNECT ") {
                // A tunnel: establish it, then serve the request that comes through it.
                log.lock().unwrap().push(line);
                out.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
                line = request(&mut reader);
            }
            log.lock().unwrap().push(line);
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n14.5.2");
        }
    });
    let token = "0123456789ABCDEF0123456789ABCDEF";
    // redcap.invalid does not resolve: only the proxy can answer.
    let out = Command::new(env!("CARGO_BIN_EXE_redcap"))
        .args(["--url", "http://redcap.invalid/api/", "--allow-http", "call", "version.export"])
        .env("REDCAP_API_TOKEN", token)
        .env("HTTP_PROXY", format!("http://127.0.0.1:{port}"))
        .env("http_proxy", format!("http://127.0.0.1:{port}"))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "14.5.2\n", "a short text answer ends its line (issue 13)");
    // Through the proxy, as a forwarded request or inside a CONNECT tunnel to the API host.
    let seen = seen.lock().unwrap();
    let via_proxy = seen.as_slice() == ["POST http://redcap.invalid/api/ HTTP/1.1"]
        || (seen.len() == 2 && seen[0].starts_with("CONNECT redcap.invalid:80 ") && seen[1].starts_with("POST /api/ "));
    assert!(via_proxy, "{seen:?}");
}

#[test]
fn timeouts_end_a_silent_server() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let f = Fixture::new();
    let out = f.redcap().args(["--timeout", "0.5", "call", "version.export", "--url", &url]).output().unwrap();
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("the call did not finish within 500 ms (overall timeout)"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: the call took longer than --timeout allows"), "{}", stderr(&out));
    assert_no_token(&out, &f.token);

    for bad in ["0", "-1", "soon"] {
        let out = f.redcap().args(["--connect-timeout", bad, "info"]).output().unwrap();
        assert_eq!(code(&out), 2, "--connect-timeout {bad}: {}", stderr(&out));
    }
    // Accepted after the subcommand too, like every global option.
    assert!(f.ok(&["info", "--timeout", "30", "--connect-timeout", "5"]).contains("REDCap"));
}
