//! The async client's and the async workflows' futures are `Send` (and `'static` when they own
//! their inputs), so they can be `tokio::spawn`ed on a multi-threaded runtime or run in a
//! `JoinSet` (axum handlers, worker pools). This file fails to compile if any of them is not.

use std::future::Future;
use std::path::PathBuf;

use redcap::asynchronous::{Client, Workflows};
use redcap::workflow::{NoProgress, PullOptions};
use redcap::{Target, file_repository, version};
use redcap_emulator::{Emulator, RunningEmulator};

fn assert_send_static<F: Future + Send + 'static>(f: F) -> F {
    f
}

fn emulator() -> (RunningEmulator, Client) {
    let xml = std::fs::read_to_string(
        redcap_tests::workspace_root().join("crates/redcap-emulator/fixtures/redcapr-simple.xml"),
    )
    .expect("fixture");
    let emu =
        Emulator::builder().project_xml(xml).in_memory().deterministic_tokens(7).start().expect("emulator starts");
    let token = emu.token(emu.project_ids()[0], "admin").expect("admin token");
    let client = Client::builder(emu.url(), token).allow_http(true).build().expect("client");
    (emu, client)
}

#[test]
fn calls_and_workflows_spawn_on_a_multi_threaded_runtime() {
    let (_emu, client) = emulator();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir_path: PathBuf = dir.path().to_owned();
    rt.block_on(async move {
        let c = client.clone();
        let upload = file_repository::import::Request::new(redcap::Upload::from_bytes("a.txt", b"spawned".to_vec()));
        tokio::spawn(async move { c.call(&upload).await }).await.unwrap().unwrap();

        let c = client.clone();
        let version = tokio::spawn(async move { c.call(&version::export::Request::new()).await });
        assert!(version.await.unwrap().is_ok());

        let c = client.clone();
        let listing =
            tokio::spawn(async move { c.call(&file_repository::list::Request::new()).await }).await.unwrap().unwrap();
        let doc = match &listing[0] {
            redcap::FileRepositoryEntry::File(f) => f.doc_id,
            other => panic!("{other:?}"),
        };

        let c = client.clone();
        let streamed = tokio::spawn(async move {
            let mut sink = Vec::new();
            c.stream(&file_repository::export::Request::new(doc), &mut sink).await.map(|_| sink)
        });
        assert_eq!(streamed.await.unwrap().unwrap(), b"spawned");

        let c = client.clone();
        let target = Target::File(dir_path.join("a-copy.txt"));
        let downloaded =
            tokio::spawn(async move { c.download_to(&file_repository::export::Request::new(doc), &target).await });
        assert_eq!(std::fs::read(downloaded.await.unwrap().unwrap().path).unwrap(), b"spawned");

        let c = client.clone();
        let tree = tokio::spawn(async move { c.walk(None, &NoProgress).await }).await.unwrap().unwrap();
        assert_eq!(tree.files.len(), 1);

        let c = client.clone();
        let pull_dir = dir_path.join("pulled");
        let summary = tokio::spawn(async move { c.pull(None, &pull_dir, &PullOptions::default(), &NoProgress).await });
        assert_eq!(summary.await.unwrap().unwrap().transferred, 1);

        // Many at once in a JoinSet, each future owning its client clone.
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let c = client.clone();
            set.spawn(assert_send_static(async move {
                c.call(&version::export::Request::new()).await.map(|_| ()).map_err(|e| e.to_string())
            }));
            let c = client.clone();
            set.spawn(assert_send_static(async move {
                c.walk(None, &NoProgress).await.map(|_| ()).map_err(|e| e.to_string())
            }));
        }
        while let Some(done) = set.join_next().await {
            done.unwrap().unwrap();
        }
    });
}
