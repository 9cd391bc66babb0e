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
