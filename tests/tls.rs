//! TLS: certificates are verified by default, and extra roots from a PEM file are trusted.
//! A loopback HTTPS stand-in with a self-signed certificate answers Export Version.

#[path = "support/self_signed.rs"]
mod self_signed;

use std::io::{BufReader, Write};

use redcap::{Error, version};
use redcap_core::FailureKind;

struct HttpsStandIn {
    port: u16,
    pem: tempfile::NamedTempFile,
}

fn start() -> HttpsStandIn {
    let (config, pem) = self_signed::localhost();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                // A client that rejects the certificate closes the handshake: stop quietly.
                if redcap_tests::read_request(&mut BufReader::new(&mut tls)).is_none() {
                    return;
                }
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n14.5.2");
                let _ = tls.flush();
            });
        }
    });
    HttpsStandIn { port, pem }
}

fn url(s: &HttpsStandIn) -> String {
    format!("https://localhost:{}/api/", s.port)
}

fn assert_untrusted(err: Error) {
    match err {
        Error::Transport(e) => assert_eq!(e.kind(), FailureKind::Tls, "{e}"),
        other => panic!("expected a TLS failure, got {other}"),
    }
}

#[test]
fn blocking_verifies_and_accepts_extra_roots() {
    let server = start();
    let plain = redcap::blocking::Client::builder(url(&server), redcap_tests::FAKE_TOKEN).build().unwrap();
    assert_untrusted(plain.call(&version::export::Request::new()).unwrap_err());
    let trusting = redcap::blocking::Client::builder(url(&server), redcap_tests::FAKE_TOKEN)
        .extra_roots_pem(server.pem.path())
        .build()
        .unwrap();
    assert_eq!(trusting.call(&version::export::Request::new()).unwrap(), redcap::Version::new(14, 5, 2));
}

#[test]
fn async_verifies_and_accepts_extra_roots() {
    let server = start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let plain = redcap::asynchronous::Client::builder(url(&server), redcap_tests::FAKE_TOKEN).build().unwrap();
    assert_untrusted(rt.block_on(plain.call(&version::export::Request::new())).unwrap_err());
    let trusting = redcap::asynchronous::Client::builder(url(&server), redcap_tests::FAKE_TOKEN)
        .extra_roots_pem(server.pem.path())
        .build()
        .unwrap();
    assert_eq!(rt.block_on(trusting.call(&version::export::Request::new())).unwrap(), redcap::Version::new(14, 5, 2));
}

#[test]
fn unreadable_or_empty_root_files_are_refused_at_build() {
    for client in [
        redcap::blocking::Client::builder("https://localhost/api/", redcap_tests::FAKE_TOKEN)
            .extra_roots_pem("/nonexistent.pem")
            .build()
            .err(),
        redcap::blocking::Client::builder("https://localhost/api/", redcap_tests::FAKE_TOKEN)
            .extra_roots_pem("/dev/null")
            .build()
            .err(),
    ] {
        assert!(matches!(client, Some(Error::Transport(ref e)) if e.kind() == FailureKind::Tls), "{client:?}");
    }
    let err = redcap::asynchronous::Client::builder("https://localhost/api/", redcap_tests::FAKE_TOKEN)
        .extra_roots_pem("/dev/null")
        .build()
        .err();
    assert!(matches!(err, Some(Error::Transport(ref e)) if e.kind() == FailureKind::Tls), "{err:?}");
}
