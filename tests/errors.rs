//! Errors as a program and a user see them: each has a kind, messages never repeat their
//! cause (so anyhow/eyre chains print every text once), and the blocking client honours the
//! builder's concurrency and pacing settings.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redcap::workflow::WorkflowError;
use redcap::{Error, ErrorKind, FailureKind, Target, file_repository, record};
use redcap_core::RetryPolicy;
use redcap_emulator::{Emulator, Fault, Rights, RunningEmulator, User};

/// The texts of an error and its sources, outermost first, as anyhow's `{:#}` or "Caused by"
/// list prints them.
fn chain(e: &(dyn StdError + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        out.push(s.to_string());
        next = s.source();
    }
    out
}

/// No text of the chain appears again in an outer one.
#[track_caller]
fn assert_no_repeats(e: &(dyn StdError + 'static)) {
    let texts = chain(e);
    for (i, outer) in texts.iter().enumerate() {
        for inner in &texts[i + 1..] {
            assert!(
                inner.is_empty() || !outer.contains(inner.as_str()),
                "`{outer}` repeats its cause `{inner}`: {texts:#?}"
            );
        }
    }
}

fn emulator() -> (RunningEmulator, i64, String) {
    let xml = std::fs::read_to_string(
        redcap_tests::workspace_root().join("crates/redcap-emulator/fixtures/redcapr-simple.xml"),
    )
    .expect("fixture");
    let emu =
        Emulator::builder().project_xml(xml).in_memory().deterministic_tokens(7).start().expect("emulator starts");
    let pid = emu.project_ids()[0];
    let token = emu.token(pid, "admin").expect("admin token");
    (emu, pid, token)
}

fn blocking(url: &str, token: &str) -> redcap::blocking::Client {
    redcap::blocking::Client::builder(url, token).allow_http(true).retry(RetryPolicy::never()).build().expect("client")
}

fn asynchronous(url: &str, token: &str) -> redcap::asynchronous::Client {
    redcap::asynchronous::Client::builder(url, token)
        .allow_http(true)
        .retry(RetryPolicy::never())
        .build()
        .expect("client")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Runs `call` with both clients and returns both errors.
fn both<R: std::fmt::Debug>(
    url: &str,
    token: &str,
    b: impl FnOnce(&redcap::blocking::Client) -> Result<R, Error>,
    a: impl AsyncFnOnce(&redcap::asynchronous::Client) -> Result<R, Error>,
) -> [Error; 2] {
    let e1 = b(&blocking(url, token)).expect_err("blocking call fails");
    let client = asynchronous(url, token);
    let e2 = rt().block_on(a(&client)).expect_err("async call fails");
    [e1, e2]
}

#[test]
fn every_kind_from_the_emulator_in_both_clients() {
    let (emu, pid, token) = emulator();
    let url = emu.url();
    let version = redcap::version::export::Request::new();

    let stranger = "0123456789ABCDEF0123456789ABCDEF";
    for e in both(&url, stranger, |c| c.call(&version), async |c| c.call(&version).await) {
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
        assert!(e.is_auth() && !e.is_permission() && !e.is_transient());
        assert_no_repeats(&e);
    }

    let reader = emu.add_user(pid, User::new("reader").rights(Rights { api_import: false, ..Rights::full() })).unwrap();
    let folder = file_repository::create_folder::Request::new("x");
    for e in both(&url, &reader, |c| c.call(&folder), async |c| c.call(&folder).await) {
        assert_eq!(e.kind(), ErrorKind::Permission, "{e}");
        assert!(e.is_permission() && !e.is_auth());
    }

    let missing = file_repository::list::Request::new().folder_id(999_999);
    for e in both(&url, &token, |c| c.call(&missing), async |c| c.call(&missing).await) {
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.is_not_found());
    }

    let bad_value = record::import::Request::new(r#"[{"record_id":"1","height":"tall"}]"#).format(redcap::Format::Json);
    for e in both(&url, &token, |c| c.call(&bad_value), async |c| c.call(&bad_value).await) {
        assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
        assert!(e.is_validation());
        assert!(!e.api().unwrap().import_lines().is_empty(), "{e}");
    }

    emu.faults().inject(Fault::Status { status: 500, message: "boom".into() }, 2);
    for e in both(&url, &token, |c| c.call(&version), async |c| c.call(&version).await) {
        assert_eq!(e.kind(), ErrorKind::Server, "{e}");
        assert!(e.is_server() && e.is_transient());
        assert_no_repeats(&e);
    }

    // Nothing sent: a malformed token is an authentication error, a bad URL a request error.
    let e = redcap::blocking::Client::builder(&url, "nope").allow_http(true).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert_no_repeats(&e);
    let e = redcap::blocking::Client::builder("ftp://x/api/", &token).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Request, "{e}");
    assert_no_repeats(&e);
}

#[test]
fn connection_failures_are_network_errors_without_repeats() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let version = redcap::version::export::Request::new();
    let url = "http://127.0.0.1:1/api/";
    for e in both(url, redcap_tests::FAKE_TOKEN, |c| c.call(&version), async |c| c.call(&version).await) {
        assert_eq!(e.kind(), ErrorKind::Network, "{e}");
        assert!(e.is_network() && e.is_transient());
        let Error::Transport(t) = &e else { panic!("{e:?}") };
        assert_eq!(t.kind(), FailureKind::Connect, "{e}");
        assert_no_repeats(&e);
        assert!(chain(&e).len() >= 2, "the cause is kept as the source: {:?}", chain(&e));
    }
}

#[test]
fn dns_failures_are_connection_failures() {
    // `.invalid` never resolves (RFC 2606).
    let version = redcap::version::export::Request::new();
    let url = "http://redcap.example.invalid/api/";
    for e in both(url, redcap_tests::FAKE_TOKEN, |c| c.call(&version), async |c| c.call(&version).await) {
        let Error::Transport(t) = &e else { panic!("{e:?}") };
        assert_eq!(
            t.kind(),
            FailureKind::Connect,
            "a failed lookup is a connection failure (retried): {:?}",
            chain(&e)
        );
        assert!(t.kind().is_transient());
        assert_eq!(e.kind(), ErrorKind::Network);
        assert!(t.message().contains("name could not be resolved"), "{:?}", chain(&e));
        assert_no_repeats(&e);
    }
}

struct Broken;

impl std::io::Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk on fire"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncWrite for Broken {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Err(std::io::Error::other("disk on fire")))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[test]
fn output_and_local_file_failures_are_local_and_named() {
    let (emu, _, token) = emulator();
    let url = emu.url();
    let version = redcap::version::export::Request::new();
    for e in both(&url, &token, |c| c.stream(&version, &mut Broken), async |c| c.stream(&version, &mut Broken).await) {
        assert!(matches!(&e, Error::Output(io) if io.to_string() == "disk on fire"), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Local);
        assert!(e.is_local());
        assert_eq!(chain(&e), ["writing the output failed", "disk on fire"]);
    }

    blocking(&url, &token)
        .call(&file_repository::import::Request::new(redcap::Upload::from_bytes("a.txt", b"a".to_vec())))
        .unwrap();
    let doc = match &blocking(&url, &token).call(&file_repository::list::Request::new()).unwrap()[0] {
        redcap::FileRepositoryEntry::File(f) => f.doc_id,
        other => panic!("{other:?}"),
    };
    let gone = tempfile::tempdir().unwrap().path().join("no/such/dir");
    let target = Target::File(gone.join("a.txt"));
    let export = file_repository::export::Request::new(doc);
    for e in both(&url, &token, |c| c.download_to(&export, &target), async |c| c.download_to(&export, &target).await) {
        assert!(matches!(&e, Error::Local { path, .. } if path == &gone.join("a.txt")), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Local);
        assert_no_repeats(&e);
        assert!(e.to_string().contains("a.txt"), "{e}");
    }
}

#[test]
fn workflow_errors_share_the_kinds_and_do_not_repeat() {
    let (emu, _, _) = emulator();
    use redcap::blocking::Workflows;
    let stranger = blocking(&emu.url(), "0123456789ABCDEF0123456789ABCDEF");
    let e = stranger.walk(None, &redcap::workflow::NoProgress).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(e.is_auth() && e.call().is_some());
    assert_no_repeats(&e);

    let local = WorkflowError::Local { path: "/x/y".into(), source: std::io::Error::other("denied") };
    assert_eq!(local.kind(), ErrorKind::Local);
    assert_eq!(chain(&local), ["local file /x/y", "denied"]);
    let decode: WorkflowError = redcap::DecodeError::NotRows("odm").into();
    assert_eq!(decode.kind(), ErrorKind::Decode);
    assert_no_repeats(&decode);
}

/// `?` turns a decode error into `redcap::Error`, so a call and its rows chain in one function.
fn first_record(client: &redcap::blocking::Client) -> Result<Option<String>, Error> {
    let rows = client.call(&record::export::Request::new().fields(["record_id"]))?.rows()?;
    Ok(rows.first().and_then(|r| r["record_id"].as_str().map(str::to_owned)))
}

#[test]
fn decode_errors_convert_into_the_call_error() {
    let (emu, _, token) = emulator();
    assert!(first_record(&blocking(&emu.url(), &token)).unwrap().is_some());
    let e: Error = redcap::DecodeError::NotRows("odm").into();
    assert_eq!(e.kind(), ErrorKind::Decode);
}

/// A loopback server that answers every request after `hold`, counting requests in flight.
fn slow_server(hold: Duration) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), max.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (n, m) = (n.clone(), m.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let inside = n.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(inside, Ordering::SeqCst);
                    std::thread::sleep(hold);
                    n.fetch_sub(1, Ordering::SeqCst);
                    let mut out = &stream;
                    if out
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/csv\r\n\r\n14.5.2")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, now, max)
}

#[test]
fn the_blocking_client_honours_concurrency() {
    let (port, _, max) = slow_server(Duration::from_millis(150));
    let client = redcap::blocking::Client::builder(format!("http://127.0.0.1:{port}/api/"), redcap_tests::FAKE_TOKEN)
        .allow_http(true)
        .concurrency(2)
        .build()
        .unwrap();
    assert_eq!(client.concurrency(), 2);
    std::thread::scope(|s| {
        for _ in 0..6 {
            let c = client.clone();
            s.spawn(move || c.call(&redcap::version::export::Request::new()).unwrap());
        }
    });
    assert_eq!(max.load(Ordering::SeqCst), 2, "six threads, at most two calls in flight");
}

#[test]
fn the_blocking_client_honours_requests_per_minute() {
    let (port, _, _) = slow_server(Duration::ZERO);
    // 1,200 a minute: one call every 50 ms, so four calls span at least 150 ms.
    let client = redcap::blocking::Client::builder(format!("http://127.0.0.1:{port}/api/"), redcap_tests::FAKE_TOKEN)
        .allow_http(true)
        .requests_per_minute(1200)
        .build()
        .unwrap();
    let started = Instant::now();
    for _ in 0..4 {
        client.call(&redcap::version::export::Request::new()).unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
}
