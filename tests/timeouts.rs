//! Timeouts against hostile stand-in servers on 127.0.0.1: one that accepts and never answers,
//! one that sends its body a byte at a time. With short timeouts each case ends in about a
//! second, as a timeout error that says which timeout elapsed, in both clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redcap::{Error, ErrorKind, Target, TimeoutKind, file_repository, version};
use redcap_core::{RetryPolicy, TransportConfig};

#[derive(Clone, Copy)]
enum Hostile {
    /// Reads the request, then says nothing until the client hangs up.
    Silent,
    /// Answers 200 with a 100,000-byte file, one byte per `interval`.
    Trickle { interval: Duration },
}

/// A stand-in server; counts the requests it read.
fn start(mode: Hostile) -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/api/", listener.local_addr().unwrap().port());
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 {
                        return;
                    }
                    if h == "\r\n" {
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
                seen.fetch_add(1, Ordering::SeqCst);
                let mut out = &stream;
                match mode {
                    // Blocks until the client closes the connection.
                    Hostile::Silent => while reader.read(&mut [0u8; 64]).is_ok_and(|n| n > 0) {},
                    Hostile::Trickle { interval } => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream; name=\"slow.bin\"\r\nContent-Length: 100000\r\n\r\n";
                        if out.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        while out.write_all(b"x").and_then(|()| out.flush()).is_ok() {
                            std::thread::sleep(interval);
                        }
                    }
                }
            });
        }
    });
    (url, requests)
}

fn policy() -> RetryPolicy {
    RetryPolicy::default().with_base_delay(Duration::from_millis(5))
}

fn blocking(url: &str, stall: Duration, overall: Option<Duration>) -> redcap::blocking::Client {
    redcap::blocking::Client::builder(url, redcap_tests::FAKE_TOKEN)
        .allow_http(true)
        .retry(policy())
        .stall_timeout(stall)
        .overall_timeout(overall)
        .build()
        .unwrap()
}

fn asynchronous(url: &str, stall: Duration, overall: Option<Duration>) -> redcap::asynchronous::Client {
    redcap::asynchronous::Client::builder(url, redcap_tests::FAKE_TOKEN)
        .allow_http(true)
        .retry(policy())
        .stall_timeout(stall)
        .overall_timeout(overall)
        .build()
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[track_caller]
fn assert_timeout(e: &Error, which: TimeoutKind, words: &str) {
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_timeout());
    let Error::Transport(t) = e else { panic!("{e:?}") };
    assert_eq!(t.timeout_kind(), Some(which), "{e}");
    assert!(e.to_string().contains(words), "`{e}` should say `{words}`");
    assert!(!e.to_string().contains("error sending request"), "{e}");
}

#[test]
fn a_silent_server_is_a_stall_timeout_retried_once() {
    let stall = Duration::from_millis(400);
    let (url, requests) = start(Hostile::Silent);
    let e = blocking(&url, stall, None).call(&version::export::Request::new()).unwrap_err();
    assert_timeout(&e, TimeoutKind::Stall, "the server sent nothing for 400 ms (stall timeout)");
    assert_eq!(requests.load(Ordering::SeqCst), 2, "one retry after a timeout, not three");

    let (url, requests) = start(Hostile::Silent);
    let e = rt().block_on(asynchronous(&url, stall, None).call(&version::export::Request::new())).unwrap_err();
    assert_timeout(&e, TimeoutKind::Stall, "the server sent nothing for 400 ms (stall timeout)");
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[test]
fn a_trickling_body_is_a_stall_even_though_bytes_arrive() {
    // Five bytes a second pass every per-read timeout; the stall floor ends them.
    let trickle = Hostile::Trickle { interval: Duration::from_millis(200) };
    let stall = Duration::from_millis(500);
    let dir = tempfile::tempdir().unwrap();
    let target = Target::File(dir.path().join("slow.bin"));
    let export = file_repository::export::Request::new(1);

    let (url, _) = start(trickle);
    let e = blocking(&url, stall, None).download_to(&export, &target).unwrap_err();
    assert_timeout(&e, TimeoutKind::Stall, "stalled");
    let (url, _) = start(trickle);
    let e = rt().block_on(asynchronous(&url, stall, None).download_to(&export, &target)).unwrap_err();
    assert_timeout(&e, TimeoutKind::Stall, "stalled");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no partial or temporary file remains");

    // Streaming into a caller's writer stops the same way.
    let (url, _) = start(trickle);
    let e = blocking(&url, stall, None).stream(&export, &mut Vec::new()).unwrap_err();
    assert_timeout(&e, TimeoutKind::Stall, "stalled");
    let (url, _) = start(trickle);
    let e = rt().block_on(asynchronous(&url, stall, None).stream(&export, &mut Vec::new())).unwrap_err();
    assert_timeout(&e, TimeoutKind::Stall, "stalled");
}

#[test]
fn the_overall_timeout_ends_a_call_that_is_not_stalled() {
    let overall = Some(Duration::from_millis(700));
    let long_stall = Duration::from_secs(30);
    // Silent: the stall timeout is far off, the overall one ends it.
    let (url, requests) = start(Hostile::Silent);
    let e = blocking(&url, long_stall, overall).call(&version::export::Request::new()).unwrap_err();
    assert_timeout(&e, TimeoutKind::Overall, "the call did not finish within 700 ms (overall timeout)");
    assert_eq!(requests.load(Ordering::SeqCst), 1, "no retry once the call's time is up");
    let (url, _) = start(Hostile::Silent);
    let e = rt().block_on(asynchronous(&url, long_stall, overall).call(&version::export::Request::new())).unwrap_err();
    assert_timeout(&e, TimeoutKind::Overall, "overall timeout");

    // A body that keeps coming (10 bytes/s, under the floor but within a 30 s stall window).
    let trickle = Hostile::Trickle { interval: Duration::from_millis(100) };
    let dir = tempfile::tempdir().unwrap();
    let target = Target::File(dir.path().join("slow.bin"));
    let export = file_repository::export::Request::new(1);
    let (url, _) = start(trickle);
    let e = blocking(&url, long_stall, overall).download_to(&export, &target).unwrap_err();
    assert_timeout(&e, TimeoutKind::Overall, "overall timeout");
    let (url, _) = start(trickle);
    let e = rt().block_on(asynchronous(&url, long_stall, overall).download_to(&export, &target)).unwrap_err();
    assert_timeout(&e, TimeoutKind::Overall, "overall timeout");
}

#[test]
fn the_defaults_end_a_dead_transfer_in_minutes() {
    let config = TransportConfig::default();
    let retry = RetryPolicy::default();
    // Worst case for a server that accepts and never answers: every timeout, plus the backoffs.
    let attempts = 1 + retry.max_timeout_retries;
    let worst = config.connect_timeout + config.stall_timeout * attempts + retry.max_delay * retry.max_timeout_retries;
    assert!(worst <= Duration::from_secs(6 * 60), "{worst:?}");
    assert!(config.stall_timeout >= Duration::from_secs(60), "REDCap may think a minute before a large export");
}

#[test]
fn waiting_for_the_pace_counts_against_the_overall_timeout() {
    // One call a second, 300 ms per call: the second call waits out its slot past its own
    // deadline, so it must end there, without sending anything.
    let overall = Some(Duration::from_millis(300));
    let long_stall = Duration::from_secs(30);
    let paced_blocking = |url: &str| {
        redcap::blocking::Client::builder(url, redcap_tests::FAKE_TOKEN)
            .allow_http(true)
            .retry(policy())
            .stall_timeout(long_stall)
            .overall_timeout(overall)
            .requests_per_minute(60)
            .build()
            .unwrap()
    };
    let paced_async = |url: &str| {
        redcap::asynchronous::Client::builder(url, redcap_tests::FAKE_TOKEN)
            .allow_http(true)
            .retry(policy())
            .stall_timeout(long_stall)
            .overall_timeout(overall)
            .requests_per_minute(60)
            .build()
            .unwrap()
    };

    let (url, requests) = start(Hostile::Silent);
    let client = paced_blocking(&url);
    for _ in 0..2 {
        let e = client.call(&version::export::Request::new()).unwrap_err();
        assert_timeout(&e, TimeoutKind::Overall, "overall timeout");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 1, "blocking: the paced call was never sent");

    let (url, requests) = start(Hostile::Silent);
    let client = paced_async(&url);
    rt().block_on(async {
        for _ in 0..2 {
            let e = client.call(&version::export::Request::new()).await.unwrap_err();
            assert_timeout(&e, TimeoutKind::Overall, "overall timeout");
        }
    });
    assert_eq!(requests.load(Ordering::SeqCst), 1, "async: the paced call was never sent");
}
