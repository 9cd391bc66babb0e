//! Both clients against hostile or broken servers on 127.0.0.1 (raw HTTP written by hand): a
//! server that echoes the token, redirects elsewhere, stalls in every phase, sends endless or
//! enormous answers, or breaks HTTP. Each case must end in a typed error within the configured
//! timeouts and bounded memory, with the token nowhere in errors or logs, and a failed download
//! must leave the local file as it was.

#[path = "support/self_signed.rs"]
mod self_signed;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redcap::{Error, ErrorKind, FailureKind, RedirectError, Target, Upload, file_repository, metadata, version};
use redcap_core::{ClientBuilder, Method, RetryPolicy};
use redcap_tests::FAKE_TOKEN;

// ---- A hostile server -------------------------------------------------------------------

/// One connection as the handler sees it: the request head, read already; the body is read
/// only if the handler asks.
struct Conn {
    head: String,
    reader: BufReader<TcpStream>,
    sent: Arc<AtomicU64>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Conn {
    fn content_length(&self) -> usize {
        self.head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0)
    }

    /// Reads the request body (and records it).
    fn body(&mut self) -> Vec<u8> {
        let mut body = vec![0; self.content_length()];
        let _ = self.reader.read_exact(&mut body);
        self.bodies.lock().unwrap().push(body.clone());
        body
    }

    /// The request's `token` field (form bodies).
    fn token(&mut self) -> String {
        let body = String::from_utf8_lossy(&self.body()).into_owned();
        body.split('&').find_map(|kv| kv.strip_prefix("token=")).unwrap_or_default().to_owned()
    }

    /// Writes and flushes `bytes`, counting them.
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()?;
        self.sent.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    /// Waits until the client hangs up (or `limit` passes), reading and dropping what it sends.
    fn hold(&mut self, limit: Duration) {
        let _ = self.reader.get_ref().set_read_timeout(Some(limit));
        let mut buf = [0u8; 64 * 1024];
        while self.reader.read(&mut buf).is_ok_and(|n| n > 0) {}
    }
}

/// A server on 127.0.0.1: each connection gets a thread, its head is read and recorded, then
/// `handle` does the rest; the connection closes when it returns.
struct Server {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    sent: Arc<AtomicU64>,
}

impl Server {
    fn start(handle: impl Fn(&mut Conn, usize) + Send + Sync + 'static) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (heads, bodies, sent) = (Arc::default(), Arc::default(), Arc::new(AtomicU64::new(0)));
        let server = Server {
            url: format!("http://127.0.0.1:{port}/api/"),
            heads: Arc::clone(&heads),
            bodies: Arc::clone(&bodies),
            sent: Arc::clone(&sent),
        };
        let handle = Arc::new(handle);
        let count = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handle, heads, bodies, sent) = (handle.clone(), heads.clone(), bodies.clone(), sent.clone());
                let n = count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let Some(head) = redcap_tests::read_head(&mut reader) else { return };
                    heads.lock().unwrap().push(head.clone());
                    let mut conn = Conn { head, reader, sent, bodies };
                    handle(&mut conn, n);
                });
            }
        });
        server
    }

    fn requests(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// A whole response that closes the connection.
fn http(status: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}", body.len())
        .into_bytes()
}

/// A server answering every request with `reply(token)`, after reading the request.
fn answering(reply: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Server {
    Server::start(move |conn, _| {
        let token = conn.token();
        let _ = conn.send(&reply(&token));
    })
}

// ---- Both clients -----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Blocking,
    Async,
}

const MODES: [Mode; 2] = [Mode::Blocking, Mode::Async];

#[derive(Clone)]
struct Knobs {
    stall: Duration,
    overall: Option<Duration>,
    retry: RetryPolicy,
    max_buffered: Option<usize>,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs { stall: Duration::from_secs(5), overall: None, retry: RetryPolicy::never(), max_buffered: None }
    }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy::default().with_max_attempts(2).with_base_delay(Duration::from_millis(5))
}

enum Api {
    Blocking(redcap::blocking::Client),
    Async(redcap::asynchronous::Client, tokio::runtime::Runtime),
}

fn tune<B: redcap_core::Build>(builder: ClientBuilder<B>, k: &Knobs) -> ClientBuilder<B> {
    let builder = builder
        .allow_http(true)
        .proxy_from_env(false)
        .connect_timeout(Duration::from_secs(5))
        .stall_timeout(k.stall)
        .overall_timeout(k.overall)
        .retry(k.retry.clone());
    match k.max_buffered {
        Some(n) => builder.max_buffered(n),
        None => builder,
    }
}

impl Api {
    fn new(mode: Mode, url: &str, k: &Knobs) -> Api {
        match mode {
            Mode::Blocking => {
                Api::Blocking(tune(redcap::blocking::Client::builder(url, FAKE_TOKEN), k).build().unwrap())
            }
            Mode::Async => {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                Api::Async(tune(redcap::asynchronous::Client::builder(url, FAKE_TOKEN), k).build().unwrap(), rt)
            }
        }
    }

    fn call<M: Method>(&self, m: &M) -> Result<M::Output, Error> {
        match self {
            Api::Blocking(c) => c.call(m),
            Api::Async(c, rt) => rt.block_on(c.call(m)),
        }
    }

    fn download_to<M: Method>(&self, m: &M, target: &Target) -> Result<std::path::PathBuf, Error> {
        match self {
            Api::Blocking(c) => c.download_to(m, target).map(|d| d.path),
            Api::Async(c, rt) => rt.block_on(c.download_to(m, target)).map(|d| d.path),
        }
    }
}

/// Every text an error shows: Display, Debug, and each source's Display.
fn texts(e: &Error) -> String {
    let mut out = format!("{e}\n{e:?}\n");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!("{s}\n{s:?}\n"));
        source = s.source();
    }
    out
}

#[track_caller]
fn assert_no_token(what: &str, text: &str) {
    assert!(!text.to_ascii_lowercase().contains(&FAKE_TOKEN.to_ascii_lowercase()), "{what} shows the token:\n{text}");
}

/// A tracing subscriber writing to a buffer, for what a library user's logs would show.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn capture<R>(&self, f: impl FnOnce() -> R) -> R {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// ---- The token ----------------------------------------------------------------------------

/// A server (or a proxy in front of it) that quotes the token back, in the error body, a page
/// title, a data body, a redirect's Location: neither the error nor the log shows it.
#[test]
fn an_echoed_token_reaches_no_error_and_no_log() {
    type Reply = fn(&str) -> Vec<u8>;
    let cases: [(&str, Reply); 6] = [
        ("a JSON error envelope", |t| {
            http(
                "400 Bad Request",
                "Content-Type: application/json\r\n",
                &format!(r#"{{"error":"token {t} ({}) is unknown"}}"#, t.to_lowercase()),
            )
        }),
        ("a 500 text body", |t| {
            http("500 Internal Server Error", "Content-Type: text/plain\r\n", &format!("failed for token={t}"))
        }),
        ("an HTML page at 200", |t| {
            http(
                "200 OK",
                "Content-Type: text/html\r\n",
                &format!("<html><head><title>Login ({t})</title></head></html>"),
            )
        }),
        ("a body that is not a version", |t| http("200 OK", "Content-Type: text/plain\r\n", &format!("token={t}"))),
        ("a redirect to another server", |t| {
            http("302 Found", &format!("Location: http://127.0.0.2:9/api/?token={t}\r\n"), "")
        }),
        ("a redirect to an unusable path", |t| http("307 Temporary Redirect", &format!("Location: /{t}\r\n"), "")),
    ];
    for mode in MODES {
        for (what, reply) in cases {
            let server = answering(reply);
            let api = Api::new(mode, &server.url, &Knobs { retry: quick_retries(), ..Knobs::default() });
            let log = Log::default();
            let e = log.capture(|| api.call(&version::export::Request::new())).unwrap_err();
            assert_no_token(&format!("{mode:?}, {what}: the error"), &texts(&e));
            assert_no_token(&format!("{mode:?}, {what}: the log"), &log.text());
            assert!(texts(&e).contains("[redacted]"), "{mode:?}, {what}: the echo is marked: {e}");
        }
        // A download refused with an HTML page that quotes the token.
        let server = answering(|t| {
            http("200 OK", "Content-Type: text/html\r\n", &format!("<html><title>Session {t} expired</title></html>"))
        });
        let dir = tempfile::tempdir().unwrap();
        let api = Api::new(mode, &server.url, &Knobs::default());
        let e = api
            .download_to(&file_repository::export::Request::new(1), &Target::File(dir.path().join("a")))
            .unwrap_err();
        assert_no_token(&format!("{mode:?}, a download's error page"), &texts(&e));
    }
}

/// A same-server redirect is followed with a warning naming the new URL: a Location that
/// carries the token is not logged as it is.
#[test]
fn a_followed_redirect_logs_no_token() {
    for mode in MODES {
        let server = Server::start(|conn, _| {
            let token = conn.token();
            let reply = match conn.head.lines().next().unwrap_or_default() {
                l if l.contains(&format!("/{token}/api/")) => http("200 OK", "Content-Type: text/plain\r\n", "14.5.2"),
                _ => http("308 Permanent Redirect", &format!("Location: /{token}/api/\r\n"), ""),
            };
            let _ = conn.send(&reply);
        });
        let api = Api::new(mode, &server.url, &Knobs::default());
        let log = Log::default();
        let v = log.capture(|| api.call(&version::export::Request::new())).unwrap();
        assert_eq!(v, redcap::Version::new(14, 5, 2), "{mode:?}");
        assert_eq!(server.requests(), 2, "{mode:?}: followed once");
        let log = log.text();
        assert!(log.contains("moved"), "{mode:?}: the move is logged: {log}");
        assert_no_token(&format!("{mode:?}: the log"), &log);
    }
}

// ---- Redirects ----------------------------------------------------------------------------

/// Every redirect status, to another port, for a plain call and an upload: refused, and the
/// other server sees nothing (neither transport follows a redirect by itself).
#[test]
fn no_redirect_status_takes_the_token_to_another_server() {
    for mode in MODES {
        for status in ["301 Moved Permanently", "302 Found", "307 Temporary Redirect", "308 Permanent Redirect"] {
            let elsewhere = answering(|_| http("200 OK", "", "14.5.2"));
            let location = format!("Location: {}\r\n", elsewhere.url);
            let server = answering(move |_| http(status, &location, ""));
            let api = Api::new(mode, &server.url, &Knobs { retry: quick_retries(), ..Knobs::default() });
            let e = api.call(&version::export::Request::new()).unwrap_err();
            assert!(matches!(e, Error::Redirect(RedirectError::OtherServer { .. })), "{mode:?} {status}: {e}");
            let upload = file_repository::import::Request::new(Upload::from_bytes("a.txt", &b"abc"[..]));
            let e = api.call(&upload).unwrap_err();
            assert!(matches!(e, Error::Redirect(RedirectError::OtherServer { .. })), "{mode:?} {status}: {e}");
            assert_eq!(server.requests(), 2, "{mode:?} {status}: each call sent once");
            assert_eq!(elsewhere.requests(), 0, "{mode:?} {status}: nothing reached the other server");
        }
    }
}

/// An https server redirecting to http on the same host and port: refused; no plaintext
/// request (which would carry the token) ever arrives.
#[test]
fn a_redirect_from_https_to_http_is_refused() {
    let (config, pem) = self_signed::localhost();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tls_requests, plaintext) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (tls_seen, plain_seen) = (tls_requests.clone(), plaintext.clone());
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, tls_seen, plain_seen) = (config.clone(), tls_seen.clone(), plain_seen.clone());
            std::thread::spawn(move || {
                let mut first = [0u8; 1];
                if tcp.peek(&mut first).unwrap_or(0) == 1 && first[0] != 0x16 {
                    // Not a TLS handshake: a plaintext request, token and all.
                    plain_seen.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                if redcap_tests::read_request(&mut BufReader::new(&mut tls)).is_none() {
                    return;
                }
                tls_seen.fetch_add(1, Ordering::SeqCst);
                let reply = http("301 Moved Permanently", &format!("Location: http://localhost:{port}/api/\r\n"), "");
                let _ = tls.write_all(&reply);
                let _ = tls.flush();
            });
        }
    });
    let url = format!("https://localhost:{port}/api/");
    let k = Knobs { retry: quick_retries(), ..Knobs::default() };
    let blocking =
        tune(redcap::blocking::Client::builder(&url, FAKE_TOKEN), &k).extra_roots_pem(pem.path()).build().unwrap();
    let e = blocking.call(&version::export::Request::new()).unwrap_err();
    assert!(matches!(e, Error::Redirect(RedirectError::OtherServer { .. })), "blocking: {e}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let asynchronous =
        tune(redcap::asynchronous::Client::builder(&url, FAKE_TOKEN), &k).extra_roots_pem(pem.path()).build().unwrap();
    let e = rt.block_on(asynchronous.call(&version::export::Request::new())).unwrap_err();
    assert!(matches!(e, Error::Redirect(RedirectError::OtherServer { .. })), "async: {e}");
    assert!(e.to_string().contains("from https to http"), "{e}");
    assert_eq!(tls_requests.load(Ordering::SeqCst), 2, "one call each, over TLS");
    assert_eq!(plaintext.load(Ordering::SeqCst), 0, "no request went out in plaintext");
}

// ---- Stalls -------------------------------------------------------------------------------

#[track_caller]
fn assert_timeout(what: &str, result: Result<impl std::fmt::Debug, Error>, started: Instant, within: Duration) {
    let e = result.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::Timeout, "{what}: {e}");
    assert!(started.elapsed() < within, "{what}: took {:?}", started.elapsed());
}

/// The response starts and stops: after the head, after part of its head, or it trickles a
/// byte at a time (head or body). Each is a timeout within a few stall windows.
#[test]
fn a_response_that_stalls_in_any_phase_is_a_timeout() {
    type Phase = fn(&mut Conn);
    let phases: [(&str, Phase); 4] = [
        ("the head, then silence", |c| {
            let _ = c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\n");
            c.hold(Duration::from_secs(20));
        }),
        ("half a head, then silence", |c| {
            let _ = c.send(b"HTTP/1.1 200 OK\r\nContent-Ty");
            c.hold(Duration::from_secs(20));
        }),
        ("a head trickling a byte at a time", |c| {
            let _ = c.send(b"HTTP/1.1 200 OK\r\nX-Slow: ");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) && c.send(b"a").is_ok() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }),
        ("a small answer trickling a byte at a time", |c| {
            let _ = c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) && c.send(b"1").is_ok() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }),
    ];
    let stall = Duration::from_millis(500);
    for mode in MODES {
        for (what, phase) in phases {
            let server = Server::start(move |c, _| {
                c.body();
                phase(c);
            });
            let api = Api::new(mode, &server.url, &Knobs { stall, ..Knobs::default() });
            let started = Instant::now();
            let result = api.call(&version::export::Request::new());
            assert_timeout(&format!("{mode:?}, {what}"), result, started, Duration::from_secs(5));
        }
    }
}

/// A server that reads an upload's head and never its body: a timeout, and the upload is not
/// sent again (a second copy could land).
#[test]
fn an_upload_the_server_never_takes_is_a_timeout_sent_once() {
    let stall = Duration::from_millis(500);
    // Far more than the sockets' buffers hold, so the client really waits on the server.
    let payload = vec![7u8; 48 << 20];
    for mode in MODES {
        // Reads the head only, then neither reads nor answers.
        let server = Server::start(|_, _| std::thread::sleep(Duration::from_secs(20)));
        let api = Api::new(mode, &server.url, &Knobs { stall, retry: quick_retries(), ..Knobs::default() });
        let upload = file_repository::import::Request::new(Upload::from_bytes("big.bin", payload.clone()));
        let started = Instant::now();
        let result = api.call(&upload);
        assert_timeout(&format!("{mode:?}: an upload not taken"), result, started, Duration::from_secs(8));
        assert_eq!(server.requests(), 1, "{mode:?}: never sent twice");
    }
}

/// A reader that gives `chunks` chunks of `size` bytes, one per `pause`.
struct SlowReader {
    chunks: usize,
    size: usize,
    pause: Duration,
}

impl Read for SlowReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.chunks == 0 {
            return Ok(0);
        }
        std::thread::sleep(self.pause);
        self.chunks -= 1;
        let n = self.size.min(buf.len());
        buf[..n].fill(b'x');
        if n < self.size {
            // Give the rest of the chunk on the next read.
            self.chunks += 1;
            self.size -= n;
        }
        Ok(n)
    }
}

/// An upload that takes longer than the stall timeout but progresses all along (a slow link,
/// a slow source) is not a stall: the stall timeout is time without progress.
#[test]
fn a_slow_but_steady_upload_is_not_a_stall() {
    let stall = Duration::from_millis(600);
    for mode in MODES {
        let server = Server::start(|c, _| {
            c.body();
            let _ = c.send(&http("200 OK", "Content-Type: application/json\r\n", ""));
        });
        let api = Api::new(mode, &server.url, &Knobs { stall, ..Knobs::default() });
        // 40 chunks of 8 KiB, one per 60 ms: about 2.4 s in all, 4 stall windows.
        let (chunks, size) = (40, 8 << 10);
        let reader = SlowReader { chunks, size, pause: Duration::from_millis(60) };
        let upload = Upload::from_reader("slow.bin", reader, (chunks * size) as u64);
        let started = Instant::now();
        let result = api.call(&file_repository::import::Request::new(upload));
        assert!(result.is_ok(), "{mode:?}: {:?} after {:?}", result.err(), started.elapsed());
        assert!(started.elapsed() > stall * 3, "{mode:?}: the upload really was slow");
        assert!(server.bodies.lock().unwrap()[0].len() > chunks * size, "{mode:?}: all of it arrived");
    }
}

// ---- Memory -------------------------------------------------------------------------------

/// Writes `head`, then an endless body of `fill` until the client hangs up (or 1 GiB).
fn endless(head: &'static str, fill: u8) -> impl Fn(&mut Conn, usize) + Send + Sync + 'static {
    move |c, _| {
        c.body();
        if c.send(head.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![fill; 64 << 10];
        for _ in 0..(1 << 14) {
            if c.send(&chunk).is_err() {
                return;
            }
        }
    }
}

/// What the server may send before the client stops reading: the client's limit plus what
/// the sockets' buffers hold.
const SLACK: u64 = 24 << 20;

/// Small answers (a version, a count, a folder id) against an endless body: the client stops
/// after a small, fixed amount, not after the 512 MiB a records export may buffer.
#[test]
fn an_endless_body_to_a_small_answer_is_cut_short() {
    for mode in MODES {
        let server =
            Server::start(endless("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n", b'1'));
        let api = Api::new(mode, &server.url, &Knobs::default());
        let e = api.call(&version::export::Request::new()).unwrap_err();
        assert!(matches!(&e, Error::Transport(t) if t.kind() == FailureKind::TooLarge), "{mode:?}: {e}");
        assert!(server.sent() < SLACK, "{mode:?}: the client read {} bytes for a version", server.sent());
    }
}

/// A data call buffers at most `max_buffered`, however much the server sends.
#[test]
fn an_endless_body_stops_at_the_buffer_limit() {
    for mode in MODES {
        let server = Server::start(endless(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[",
            b' ',
        ));
        let api = Api::new(mode, &server.url, &Knobs { max_buffered: Some(4 << 20), ..Knobs::default() });
        let e = api.call(&metadata::export::Request::new()).unwrap_err();
        assert!(matches!(&e, Error::Transport(t) if t.kind() == FailureKind::TooLarge), "{mode:?}: {e}");
        assert!(server.sent() < (4 << 20) + SLACK, "{mode:?}: {} bytes", server.sent());
    }
}

/// An error status with an endless body: the error is read from its start (at most the error
/// body limit), and the call fails with REDCap's error, not with "too large".
#[test]
fn a_giant_error_body_is_cut_and_still_the_error() {
    for mode in MODES {
        let head = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nERROR: ";
        let server = Server::start(endless(head, b'x'));
        let api = Api::new(mode, &server.url, &Knobs::default());
        let e = api.call(&version::export::Request::new()).unwrap_err();
        assert!(e.api().is_some_and(|a| a.status() == 400), "{mode:?}: {e}");
        assert!(server.sent() < SLACK, "{mode:?}: the client read {} bytes of an error", server.sent());
        // The same for a download.
        let server = Server::start(endless(head, b'x'));
        let api = Api::new(mode, &server.url, &Knobs::default());
        let dir = tempfile::tempdir().unwrap();
        let e = api
            .download_to(&file_repository::export::Request::new(1), &Target::File(dir.path().join("a")))
            .unwrap_err();
        assert!(e.api().is_some_and(|a| a.status() == 400), "{mode:?}: {e}");
        assert!(server.sent() < SLACK, "{mode:?}: {} bytes", server.sent());
    }
}

/// A Content-Length of a terabyte is not believed up front: no allocation of that size (which
/// would abort the process), just a broken answer.
#[test]
fn an_absurd_content_length_is_not_allocated() {
    for mode in MODES {
        let server = answering(|_| {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n";
            format!("{head}Connection: close\r\n\r\n[]").into_bytes()
        });
        let api = Api::new(mode, &server.url, &Knobs { max_buffered: Some(usize::MAX), ..Knobs::default() });
        let e = api.call(&metadata::export::Request::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Network, "{mode:?}: {e}");
    }
}

/// Endless header lines: refused by the HTTP stack after a bounded amount, quickly.
#[test]
fn endless_headers_are_refused() {
    for mode in MODES {
        let server = Server::start(|c, _| {
            c.body();
            if c.send(b"HTTP/1.1 200 OK\r\n").is_err() {
                return;
            }
            let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
            for _ in 0..(1 << 20) {
                if c.send(line.as_bytes()).is_err() {
                    return;
                }
            }
        });
        let api = Api::new(mode, &server.url, &Knobs::default());
        let started = Instant::now();
        let e = api.call(&version::export::Request::new()).unwrap_err();
        assert!(matches!(e, Error::Transport(_)), "{mode:?}: {e}");
        assert!(started.elapsed() < Duration::from_secs(5), "{mode:?}");
        assert!(server.sent() < SLACK, "{mode:?}: {} bytes of headers", server.sent());
    }
}

// ---- Broken answers -----------------------------------------------------------------------

/// Answers that break HTTP or are not what the method returns: a typed error of the right
/// kind, never a panic, in both clients. No client asks for compression, so a compressed body
/// (a gzip bomb) is never inflated.
#[test]
fn broken_answers_are_typed_errors() {
    let json = "Content-Type: application/json\r\n";
    let cases: Vec<(&str, bool, Vec<u8>, ErrorKind)> = vec![
        (
            "a body shorter than its Content-Length",
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n14.5.2".to_vec(),
            ErrorKind::Network,
        ),
        ("no answer at all", false, Vec::new(), ErrorKind::Network),
        ("a garbage status line", false, b"HELLO THERE\r\n\r\n14.5.2".to_vec(), ErrorKind::Network),
        (
            "two Content-Lengths",
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Length: 60\r\nConnection: close\r\n\r\n14.5.2".to_vec(),
            ErrorKind::Network,
        ),
        (
            "a broken chunk size",
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n14.5.2\r\n0\r\n\r\n"
                .to_vec(),
            ErrorKind::Network,
        ),
        (
            "a chunked body cut off",
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6\r\n14.5.2\r\n".to_vec(),
            ErrorKind::Network,
        ),
        (
            "a version that is not UTF-8",
            false,
            http("200 OK", "", "14.\u{0}").into_iter().map(|b| if b == 0 { 0xff } else { b }).collect(),
            ErrorKind::Decode,
        ),
        (
            "a gzip body never asked for",
            false,
            http("200 OK", "Content-Encoding: gzip\r\n", "\u{1f}\u{8b}\u{8}\u{0}garbage"),
            ErrorKind::Decode,
        ),
        ("invalid JSON", true, http("200 OK", json, r#"[{"field_name":"#), ErrorKind::Decode),
        (
            "JSON that is not UTF-8",
            true,
            http("200 OK", json, "[{\"field_name\":\"\u{0}\"}]")
                .into_iter()
                .map(|b| if b == 0 { 0xfe } else { b })
                .collect(),
            ErrorKind::Decode,
        ),
        (
            "a login page at 200",
            true,
            http("200 OK", "Content-Type: text/html\r\n", "<!DOCTYPE html><html><title>REDCap Log In</title></html>"),
            ErrorKind::Server,
        ),
    ];
    for mode in MODES {
        for (what, data_call, reply, kind) in &cases {
            let reply = reply.clone();
            let server = answering(move |_| reply.clone());
            let api = Api::new(mode, &server.url, &Knobs::default());
            let e = if *data_call {
                api.call(&metadata::export::Request::new()).map(|_| ()).unwrap_err()
            } else {
                api.call(&version::export::Request::new()).map(|_| ()).unwrap_err()
            };
            assert_eq!(e.kind(), *kind, "{mode:?}, {what}: {e}");
            let heads = server.heads.lock().unwrap();
            assert!(
                !heads[0].to_ascii_lowercase().contains("accept-encoding"),
                "{mode:?} asks for compression:\n{}",
                heads[0]
            );
        }
    }
}

// ---- Downloads ----------------------------------------------------------------------------

/// A download that fails in any way (cut short, a broken chunked body, a stall mid-body, an
/// error page or status) never replaces the file at its final path, even when the caller said
/// it may, and leaves nothing beside it.
#[test]
fn a_failed_download_leaves_the_existing_file_alone() {
    // A file's head (200, named keep.bin) with `framing`, then `body`.
    let file = |framing: &str, body: &str| {
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream; name=\"keep.bin\"\r\n{framing}\r\n{body}")
            .into_bytes()
    };
    let chunked = "Transfer-Encoding: chunked\r\nConnection: close\r\n";
    let failures: Vec<(&str, Vec<u8>)> = vec![
        ("cut short", file("Content-Length: 5000\r\nConnection: close\r\n", "new bytes")),
        ("a chunked body cut off", file(chunked, "9\r\nnew bytes\r\n")),
        ("a broken chunk", file(chunked, "9\r\nnew bytes\r\nqq\r\n")),
        ("an HTML page", http("200 OK", "Content-Type: text/html\r\n", "<html><title>Error</title></html>")),
        (
            "a REDCap error",
            http("400 Bad Request", "Content-Type: application/json\r\n", r#"{"error":"no such file"}"#),
        ),
        ("a server error", http("500 Internal Server Error", "", "")),
        ("a stall mid-body", file("Content-Length: 5000\r\n", "new bytes")),
    ];
    for mode in MODES {
        for (what, reply) in &failures {
            let reply = reply.clone();
            let server = Server::start(move |c, _| {
                c.body();
                let _ = c.send(&reply);
                c.hold(Duration::from_secs(10));
            });
            let api = Api::new(mode, &server.url, &Knobs { stall: Duration::from_millis(400), ..Knobs::default() });
            let dir = tempfile::tempdir().unwrap();
            let keep = dir.path().join("keep.bin");
            let targets = [
                Target::File(keep.clone()),
                Target::DirWith {
                    dir: dir.path().to_owned(),
                    fallback: "doc_1".into(),
                    replace: true,
                    dot_files: false,
                },
            ];
            for target in &targets {
                std::fs::write(&keep, "precious").unwrap();
                let result = api.download_to(&file_repository::export::Request::new(1), target);
                assert!(result.is_err(), "{mode:?}, {what}: {result:?}");
                assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious", "{mode:?}, {what}: replaced");
                let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
                assert_eq!(names, ["keep.bin"], "{mode:?}, {what}: left behind");
            }
        }
    }
}
