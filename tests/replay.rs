//! A session recorded once against the emulator replays, without any server, through both
//! clients; a request that differs from the recording is refused.

use redcap::{FileRepositoryEntry, Upload, file_repository, version};
use redcap_core::{ApiUrl, FailureKind, Token, TransportConfig};
use redcap_emulator::Emulator;
use redcap_replay::{AsyncReplay, Cassette, Recorder, Replay};

fn first_doc(entries: &[FileRepositoryEntry]) -> u64 {
    entries
        .iter()
        .find_map(|e| match e {
            FileRepositoryEntry::File(f) => Some(f.doc_id),
            _ => None,
        })
        .unwrap()
}

/// The session: version, a folder, an upload, a listing, a download.
macro_rules! session {
    ($call:expr) => {{
        let v = $call(&version::export::Request::new()).unwrap();
        let folder = $call(&file_repository::create_folder::Request::new("Recorded")).unwrap();
        let mut upload = file_repository::import::Request::new(Upload::from_bytes("r.txt", &b"recorded bytes"[..]));
        upload.folder_id = Some(folder);
        $call(&upload).unwrap();
        let listing = $call(&file_repository::list::Request::new().folder_id(folder)).unwrap();
        let file = $call(&file_repository::export::Request::new(first_doc(&listing))).unwrap();
        (v, folder, listing, file.bytes)
    }};
}

fn record() -> (Cassette, String, (redcap::Version, u64, Vec<FileRepositoryEntry>, redcap_core::Bytes)) {
    let emu = Emulator::builder()
        .project_xml_file(redcap_tests::workspace_root().join("crates/redcap-emulator/fixtures/redcapr-simple.xml"))
        .unwrap()
        .in_memory()
        .start()
        .unwrap();
    let token = emu.token(emu.project_ids()[0], "admin").unwrap();
    let url = ApiUrl::parse_allow_http(&emu.url()).unwrap();
    let recorder = Recorder::new(redcap_blocking::UreqTransport::new(&TransportConfig::default()).unwrap());
    let client = redcap_blocking::Client::with_transport(url.clone(), Token::new(&token).unwrap(), recorder);
    let results = session!(|r| client.call(r));
    (client.transport().cassette(), token, results)
}

#[test]
fn recorded_once_replayed_by_both_clients() {
    let (cassette, token, recorded) = record();
    assert_eq!(cassette.exchanges.len(), 5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.json");
    cassette.save(&path).unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(!saved.contains(&token), "the token is never recorded");
    let cassette = Cassette::load(&path).unwrap();

    // The emulator is gone: only the cassette answers now. The URL and token may differ.
    let url = ApiUrl::parse("https://redcap.example.edu/api/").unwrap();
    let token = Token::new(redcap_tests::FAKE_TOKEN).unwrap();
    let blocking = redcap_blocking::Client::with_transport(url.clone(), token.clone(), Replay::new(cassette.clone()));
    assert_eq!(session!(|r| blocking.call(r)), recorded);
    assert_eq!(blocking.transport().remaining(), 0);

    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let asynchronous = redcap_async::Client::with_transport(url, token, AsyncReplay::new(cassette));
    assert_eq!(session!(|r| rt.block_on(asynchronous.call(r))), recorded);
    assert_eq!(asynchronous.transport().remaining(), 0);
}

#[test]
fn a_different_request_is_refused() {
    let (cassette, _, _) = record();
    let url = ApiUrl::parse("https://redcap.example.edu/api/").unwrap();
    let client = redcap_blocking::Client::with_transport(
        url,
        Token::new(redcap_tests::FAKE_TOKEN).unwrap(),
        Replay::new(cassette),
    );
    client.call(&version::export::Request::new()).unwrap();
    let err = client.call(&file_repository::create_folder::Request::new("Another name")).unwrap_err();
    match err {
        redcap::Error::Transport(e) => {
            assert_eq!(e.kind(), FailureKind::Request);
            assert!(e.message().contains("differs from the recording"), "{e}");
        }
        other => panic!("expected a replay mismatch, got {other}"),
    }
}

/// A server (or a proxy) that quotes the token back, in a header and in its error body: the
/// cassette, meant to be checked in, never holds it, and still replays the same answer.
#[test]
fn an_echoed_token_is_never_recorded() {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url =
        ApiUrl::parse_allow_http(&format!("http://127.0.0.1:{}/api/", listener.local_addr().unwrap().port())).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).into_owned();
            let token = body.split('&').find_map(|kv| kv.strip_prefix("token=")).unwrap_or_default().to_owned();
            let error = format!(r#"{{"error":"token {token} ({}) refused"}}"#, token.to_lowercase());
            let _ = reader.get_mut().write_all(
                format!(
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nX-Echo: {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{error}",
                    error.len()
                )
                .as_bytes(),
            );
        }
    });
    let recorder = Recorder::new(redcap_blocking::UreqTransport::new(&TransportConfig::default()).unwrap());
    let token = Token::new(redcap_tests::FAKE_TOKEN).unwrap();
    let client = redcap_blocking::Client::with_transport(url.clone(), token.clone(), recorder);
    let live = client.call(&version::export::Request::new()).unwrap_err();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.json");
    client.transport().cassette().save(&path).unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(!saved.to_lowercase().contains(&redcap_tests::FAKE_TOKEN.to_lowercase()), "in a header:\n{saved}");
    // The body is kept in base64: decoded, it does not hold the token either.
    let body = &Cassette::load(&path).unwrap().exchanges[0].response.body;
    let body = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap();
    let body = String::from_utf8_lossy(&body).to_lowercase();
    assert!(!body.contains(&redcap_tests::FAKE_TOKEN.to_lowercase()), "in the body: {body}");

    let replay = redcap_blocking::Client::with_transport(url, token, Replay::new(Cassette::load(&path).unwrap()));
    let replayed = replay.call(&version::export::Request::new()).unwrap_err();
    assert_eq!((replayed.status(), replayed.kind()), (live.status(), live.kind()), "{replayed}");
    assert!(replayed.to_string().contains("refused"), "{replayed}");
}
