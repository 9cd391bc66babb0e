//! One scenario suite, written once and run against both clients (blocking and async), with
//! the emulator started in-process on 127.0.0.1. Each scenario asserts what the user sees and
//! that nothing was lost or duplicated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redcap::workflow::{
    BatchOptions, BatchSaved, ExportSummary, ImportOptions, ProgressEvent, PullOptions, PushOptions, RemoteTree,
    ReportId, ReportOptions, TransferSummary, WorkflowError,
};
use redcap::{Error, FileRepositoryEntry, Format, Method, Row, Target, file_repository, record};
use redcap_core::RetryPolicy;
use redcap_emulator::{BatchFault, Emulator, Fault, Rights, RunningEmulator, User};

/// What a scenario can do with a client; implemented by both modes.
trait Api: Sized {
    fn connect(url: &str, token: &str) -> Result<Self, Error>;
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, Error>;
    fn stream<M: Method>(&self, m: &M, sink: &mut Vec<u8>) -> Result<u64, Error>;
    fn download_to<M: Method>(&self, m: &M, target: &Target) -> Result<PathBuf, Error>;
    fn walk(&self, root: Option<u64>) -> Result<RemoteTree, WorkflowError>;
    fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        progress: &dyn redcap::workflow::Progress,
    ) -> Result<TransferSummary, WorkflowError>;
    fn push(&self, dir: &Path, root: Option<u64>) -> Result<TransferSummary, WorkflowError> {
        self.push_with(dir, root, &PushOptions::default(), &redcap::workflow::NoProgress)
    }
    fn push_with(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn redcap::workflow::Progress,
    ) -> Result<TransferSummary, WorkflowError>;
    fn export_report_rows(&self, id: ReportId) -> Result<Vec<Row>, WorkflowError>;
    fn export_batched(&self, template: &record::export::Request, batch: usize) -> Result<Vec<Row>, WorkflowError>;
    fn import_batched(&self, rows: Vec<Row>, batch: usize) -> Result<u64, WorkflowError> {
        self.import_from(&rows, &BatchOptions::default().batch_size(batch))
    }
    fn import_from(&self, rows: &[Row], options: &BatchOptions) -> Result<u64, WorkflowError>;
    fn export_each(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn redcap::workflow::Progress,
    ) -> Result<(Vec<Row>, ExportSummary), WorkflowError>;
}

fn policy() -> RetryPolicy {
    // Fast retries keep the suite quick; the number of attempts is the default (4).
    RetryPolicy::default().with_base_delay(Duration::from_millis(5))
}

/// Pulls here download one file at a time: the fault-injection scenarios break the download
/// that starts at a given moment (concurrent pulls are in file_safety.rs).
fn one_at_a_time() -> PullOptions {
    let mut o = PullOptions::default();
    o.jobs = 1;
    o
}

struct Blocking(redcap::blocking::Client);

impl Api for Blocking {
    fn connect(url: &str, token: &str) -> Result<Self, Error> {
        redcap::blocking::Client::builder(url, token).allow_http(true).retry(policy()).build().map(Blocking)
    }
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, Error> {
        self.0.call(m)
    }
    fn stream<M: Method>(&self, m: &M, sink: &mut Vec<u8>) -> Result<u64, Error> {
        self.0.stream(m, sink).map(|s| s.bytes)
    }
    fn download_to<M: Method>(&self, m: &M, target: &Target) -> Result<PathBuf, Error> {
        self.0.download_to(m, target).map(|d| d.path)
    }
    fn walk(&self, root: Option<u64>) -> Result<RemoteTree, WorkflowError> {
        use redcap::blocking::Workflows;
        self.0.walk(root, &redcap::workflow::NoProgress)
    }
    fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        progress: &dyn redcap::workflow::Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        use redcap::blocking::Workflows;
        self.0.pull(root, dir, &one_at_a_time(), progress)
    }
    fn push_with(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn redcap::workflow::Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        use redcap::blocking::Workflows;
        self.0.push(dir, root, options, progress)
    }
    fn export_report_rows(&self, id: ReportId) -> Result<Vec<Row>, WorkflowError> {
        use redcap::blocking::Workflows;
        self.0.export_report(id, &ReportOptions::default())
    }
    fn export_batched(&self, template: &record::export::Request, batch: usize) -> Result<Vec<Row>, WorkflowError> {
        use redcap::blocking::Workflows;
        self.0.export_records_batched(
            template,
            &BatchOptions::default().batch_size(batch),
            &redcap::workflow::NoProgress,
        )
    }
    fn import_from(&self, rows: &[Row], options: &BatchOptions) -> Result<u64, WorkflowError> {
        use redcap::blocking::Workflows;
        self.0.import_records_batched(rows, &ImportOptions::default(), options, &redcap::workflow::NoProgress)
    }
    fn export_each(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn redcap::workflow::Progress,
    ) -> Result<(Vec<Row>, ExportSummary), WorkflowError> {
        use redcap::blocking::Workflows;
        let mut rows = Vec::new();
        let summary = self.0.export_records_each(template, options, progress, &mut |r| {
            rows.push(r);
            Ok(())
        })?;
        Ok((rows, summary))
    }
}

struct Async {
    client: redcap::asynchronous::Client,
    rt: tokio::runtime::Runtime,
}

impl Api for Async {
    fn connect(url: &str, token: &str) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = redcap::asynchronous::Client::builder(url, token).allow_http(true).retry(policy()).build()?;
        Ok(Async { client, rt })
    }
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, Error> {
        self.rt.block_on(self.client.call(m))
    }
    fn stream<M: Method>(&self, m: &M, sink: &mut Vec<u8>) -> Result<u64, Error> {
        self.rt.block_on(self.client.stream(m, sink)).map(|s| s.bytes)
    }
    fn download_to<M: Method>(&self, m: &M, target: &Target) -> Result<PathBuf, Error> {
        self.rt.block_on(self.client.download_to(m, target)).map(|d| d.path)
    }
    fn walk(&self, root: Option<u64>) -> Result<RemoteTree, WorkflowError> {
        use redcap::asynchronous::Workflows;
        self.rt.block_on(self.client.walk(root, &redcap::workflow::NoProgress))
    }
    fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        progress: &dyn redcap::workflow::Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        use redcap::asynchronous::Workflows;
        self.rt.block_on(self.client.pull(root, dir, &one_at_a_time(), progress))
    }
    fn push_with(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn redcap::workflow::Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        use redcap::asynchronous::Workflows;
        self.rt.block_on(self.client.push(dir, root, options, progress))
    }
    fn export_report_rows(&self, id: ReportId) -> Result<Vec<Row>, WorkflowError> {
        use redcap::asynchronous::Workflows;
        self.rt.block_on(self.client.export_report(id, &ReportOptions::default()))
    }
    fn export_batched(&self, template: &record::export::Request, batch: usize) -> Result<Vec<Row>, WorkflowError> {
        use redcap::asynchronous::Workflows;
        self.rt.block_on(self.client.export_records_batched(
            template,
            &BatchOptions::default().batch_size(batch),
            &redcap::workflow::NoProgress,
        ))
    }
    fn import_from(&self, rows: &[Row], options: &BatchOptions) -> Result<u64, WorkflowError> {
        use redcap::asynchronous::Workflows;
        self.rt.block_on(self.client.import_records_batched(
            rows,
            &ImportOptions::default(),
            options,
            &redcap::workflow::NoProgress,
        ))
    }
    fn export_each(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn redcap::workflow::Progress,
    ) -> Result<(Vec<Row>, ExportSummary), WorkflowError> {
        use redcap::asynchronous::Workflows;
        let mut rows = Vec::new();
        let summary = self.rt.block_on(self.client.export_records_each(template, options, progress, &mut |r| {
            rows.push(r);
            Ok(())
        }))?;
        Ok((rows, summary))
    }
}

fn fixture(name: &str) -> PathBuf {
    redcap_tests::workspace_root().join("crates/redcap-emulator/fixtures").join(name)
}

/// An emulator with one project loaded from `xml`, and a client for its admin.
struct Env<A> {
    emu: RunningEmulator,
    pid: i64,
    api: A,
}

impl<A: Api> Env<A> {
    fn with_xml(xml: String) -> Self {
        let emu =
            Emulator::builder().project_xml(xml).in_memory().deterministic_tokens(7).start().expect("emulator starts");
        let pid = emu.project_ids()[0];
        let token = emu.token(pid, "admin").expect("admin token");
        let api = A::connect(&emu.url(), &token).expect("client");
        Env { emu, pid, api }
    }

    fn new(fixture_name: &str) -> Self {
        Self::with_xml(std::fs::read_to_string(fixture(fixture_name)).expect("fixture"))
    }

    fn client_for(&self, user: User) -> A {
        let token = self.emu.add_user(self.pid, user).expect("user added");
        A::connect(&self.emu.url(), &token).expect("client")
    }
}

fn files_in(entries: &[FileRepositoryEntry]) -> Vec<(u64, String)> {
    entries
        .iter()
        .filter_map(|e| match e {
            FileRepositoryEntry::File(f) => Some((f.doc_id, f.name.clone())),
            _ => None,
        })
        .collect()
}

fn upload_bytes<A: Api>(api: &A, name: &str, bytes: &[u8], folder: Option<u64>) -> Result<(), Error> {
    let mut req = file_repository::import::Request::new(redcap::Upload::from_bytes(name.to_owned(), bytes.to_vec()));
    req.folder_id = folder;
    api.call(&req)
}

// ---- File Repository ---------------------------------------------------------------------

fn file_repository_round_trip<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let folder = env.api.call(&file_repository::create_folder::Request::new("Protocols")).unwrap();
    upload_bytes(&env.api, "consent.txt", b"signed consent v3\n", Some(folder)).unwrap();
    let listing = env.api.call(&file_repository::list::Request::new().folder_id(folder)).unwrap();
    let files = files_in(&listing);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1, "consent.txt");
    let top = env.api.call(&file_repository::list::Request::new()).unwrap();
    assert!(
        top.iter()
            .any(|e| matches!(e, FileRepositoryEntry::Folder(f) if f.folder_id == folder && f.name == "Protocols"))
    );

    // Buffered, streamed and atomic downloads all give the same bytes and name.
    let doc = files[0].0;
    let got = env.api.call(&file_repository::export::Request::new(doc)).unwrap();
    assert_eq!(&got.bytes[..], b"signed consent v3\n");
    assert_eq!(got.head.server_name.as_deref(), Some("consent.txt"));
    let mut sink = Vec::new();
    assert_eq!(env.api.stream(&file_repository::export::Request::new(doc), &mut sink).unwrap(), 18);
    assert_eq!(sink, b"signed consent v3\n");
    let dir = tempfile::tempdir().unwrap();
    let path = env
        .api
        .download_to(
            &file_repository::export::Request::new(doc),
            &Target::Dir { dir: dir.path().into(), fallback: "x".into() },
        )
        .unwrap();
    assert_eq!(path, dir.path().join("consent.txt"));
    assert_eq!(std::fs::read(&path).unwrap(), b"signed consent v3\n");

    // Delete: gone from the listing, and exporting it is an error REDCap-style.
    env.api.call(&file_repository::delete::Request::new(doc)).unwrap();
    assert!(files_in(&env.api.call(&file_repository::list::Request::new().folder_id(folder)).unwrap()).is_empty());
    let err = env.api.call(&file_repository::export::Request::new(doc)).unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400), "{err}");
}

fn file_repository_listing_in_every_format<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let folder = env.api.call(&file_repository::create_folder::Request::new("A & B <docs>")).unwrap();
    upload_bytes(&env.api, "x.txt", b"x", None).unwrap();
    let json = env.api.call(&file_repository::list::Request::new()).unwrap();
    for format in [Format::Csv, Format::Xml] {
        let req = file_repository::list::Request::new().format(format);
        assert_eq!(env.api.call(&req).unwrap(), json, "{format}");
    }
    assert!(
        json.iter()
            .any(|e| matches!(e, FileRepositoryEntry::Folder(f) if f.folder_id == folder && f.name == "A & B <docs>"))
    );
}

fn restricted_folders_are_hidden_from_outsiders<A: Api>() {
    let env = Env::<A>::new("redcapr-dag.xml");
    let dags = env.api.call(&redcap::dag::export::Request::new()).unwrap();
    let unique = |i: usize| dags[i].unique_group_name.clone().unwrap();
    let (dag_a, dag_b) = (unique(0), unique(1));
    let dag_a_id = env.emu.dag_id(env.pid, &dag_a).unwrap() as u64;
    let restricted =
        env.api.call(&file_repository::create_folder::Request::new("Site A only").dag_id(dag_a_id)).unwrap();
    let open = env.api.call(&file_repository::create_folder::Request::new("Everyone")).unwrap();
    let inside = env.client_for(User::new("in_a").dag(dag_a.clone()));
    let outside = env.client_for(User::new("in_b").dag(dag_b));
    let ids = |entries: Vec<FileRepositoryEntry>| -> Vec<(u64, Option<String>)> {
        entries
            .into_iter()
            .filter_map(|e| match e {
                FileRepositoryEntry::Folder(f) => Some((f.folder_id, f.dag)),
                _ => None,
            })
            .collect()
    };
    let seen_inside = ids(inside.call(&file_repository::list::Request::new()).unwrap());
    assert!(seen_inside.contains(&(restricted, Some(dag_a))), "{seen_inside:?}");
    assert!(seen_inside.contains(&(open, None)));
    let seen_outside = ids(outside.call(&file_repository::list::Request::new()).unwrap());
    assert_eq!(seen_outside, [(open, None)]);
    let err = outside.call(&file_repository::list::Request::new().folder_id(restricted)).unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert!(err.to_string().contains("DAG-restricted or Role-restricted"), "{err}");
}

fn missing_rights_are_reported<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let reader = env.client_for(User::new("reader").rights(Rights { api_import: false, ..Rights::full() }));
    let err = reader.call(&file_repository::create_folder::Request::new("x")).unwrap_err();
    let api = err.api().expect("an API error");
    assert_eq!(api.status().as_u16(), 403);
    assert!(api.is_permission() && !api.is_auth(), "{err}");
}

fn upload_from_a_reader<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 13) as u8).collect();
    let reader = std::io::Cursor::new(payload.clone());
    let upload = redcap::Upload::from_reader("from-reader.bin", reader, payload.len() as u64);
    env.api.call(&file_repository::import::Request::new(upload)).unwrap();
    let doc = files_in(&env.api.call(&file_repository::list::Request::new()).unwrap())[0].0;
    assert_eq!(&env.api.call(&file_repository::export::Request::new(doc)).unwrap().bytes[..], &payload[..]);
}

fn traces_carry_call_facts_without_the_token<A: Api>() {
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let env = Env::<A>::new("redcapr-simple.xml");
    let token = env.emu.token(env.pid, "admin").unwrap();
    let buffer = Buffer::default();
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        env.emu.faults().fail_next(1, 503);
        env.api.call(&redcap::version::export::Request::new()).unwrap();
    });
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("method=\"version.export\"") || log.contains("method=version.export"), "{log}");
    assert!(log.contains("attempt=2"), "{log}");
    assert!(log.contains("status=503") && log.contains("status=200"), "{log}");
    assert!(log.contains("bytes="), "{log}");
    assert!(!log.contains(&token), "the token must never reach a log");
}

// ---- Errors and tokens -----------------------------------------------------------------

fn rejected_and_malformed_tokens<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let stranger = A::connect(&env.emu.url(), "0123456789ABCDEF0123456789ABCDEF").unwrap();
    let err = stranger.call(&redcap::version::export::Request::new()).unwrap_err();
    assert!(err.api().is_some_and(|e| e.is_auth()), "{err}");
    assert!(!format!("{err} {err:?}").contains("0123456789ABCDEF"), "the token must not appear in errors");

    let calls = env.emu.faults().calls();
    for bad in ["not-a-token", "0123456789ABCDEF0123456789ABCDE", "0123456789ABCDEF0123456789ABCDEFG"] {
        let err = A::connect(&env.emu.url(), bad).err().expect("refused");
        assert!(matches!(err, Error::Encode(_)), "{err}");
        assert!(!err.to_string().contains(bad));
    }
    assert_eq!(env.emu.faults().calls(), calls, "nothing was sent");
}

fn error_envelopes_in_every_format<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    for format in [Format::Json, Format::Csv, Format::Xml] {
        let req = file_repository::list::Request::new().folder_id(999_999).format(format).return_format(format.into());
        let err = env.api.call(&req).unwrap_err();
        let api = err.api().expect("API error");
        assert_eq!(api.status().as_u16(), 400);
        assert_eq!(api.kind(), redcap::ApiErrorKind::Envelope, "{format}");
        assert!(
            api.message().starts_with("The File Repository folder folder_id=999999 does not exist"),
            "{format}: {}",
            api.message()
        );
    }
}

// ---- Reports and records --------------------------------------------------------------

fn reports_in_every_format<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let id = env.emu.report_id(env.pid, "test-report-1").unwrap() as u64;
    let req = |f: Format| redcap::report::export::Request::new(id).format(f);
    let json = env.api.call(&req(Format::Json)).unwrap().rows().unwrap();
    assert!(!json.is_empty());
    assert_eq!(json[0].keys().collect::<Vec<_>>(), ["record_id", "height", "health_complete", "address", "ethnicity"]);
    for f in [Format::Csv, Format::Xml] {
        let rows = env.api.call(&req(f)).unwrap().rows().unwrap();
        let as_text = |rows: &[Row]| -> Vec<Vec<String>> {
            rows.iter()
                .map(|r| r.values().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect())
                .collect()
        };
        assert_eq!(as_text(&rows), as_text(&json), "{f}");
    }
    let odm = env.api.call(&req(Format::Odm)).unwrap();
    assert!(odm.text().contains("<ODM"), "ODM output");
    assert_eq!(env.api.export_report_rows(ReportId(id)).unwrap(), json);
}

fn report_with_filter_logic<A: Api>() {
    let xml = std::fs::read_to_string(fixture("redcapr-simple.xml")).unwrap();
    let xml = xml.replacen("advanced_logic=\"\"", "advanced_logic=\"[height] &gt;= 160\"", 1);
    let env = Env::<A>::with_xml(xml);
    let id = env.emu.report_id(env.pid, "test-report-1").unwrap() as u64;
    let rows = env.api.export_report_rows(ReportId(id)).unwrap();
    let all = env.api.call(&record::export::Request::new().fields(["record_id", "height"])).unwrap().rows().unwrap();
    let expected: Vec<&Row> = all
        .iter()
        .filter(|r| r["height"].as_str().and_then(|h| h.parse::<f64>().ok()).is_some_and(|h| h >= 160.0))
        .collect();
    assert!(!expected.is_empty() && expected.len() < all.len(), "the filter must keep some rows and drop others");
    let got: Vec<&str> = rows.iter().map(|r| r["record_id"].as_str().unwrap()).collect();
    let want: Vec<&str> = expected.iter().map(|r| r["record_id"].as_str().unwrap()).collect();
    assert_eq!(got, want);
}

fn records_import_then_export<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let data = r#"[{"record_id":"901","name_first":"Ada","name_last":"Lovelace","height":"165"},{"record_id":"902","name_first":"Alan","name_last":"Turing","height":"180"}]"#;
    let outcome = env.api.call(&record::import::Request::new(data)).unwrap();
    assert_eq!(outcome, redcap::ImportOutcome::Count(2));
    let rows = env
        .api
        .call(&record::export::Request::new().records(["901", "902"]).fields(["record_id", "name_first", "height"]))
        .unwrap()
        .rows()
        .unwrap();
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r["record_id"].as_str().unwrap(), r["name_first"].as_str().unwrap(), r["height"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("901", "Ada", "165"), ("902", "Alan", "180")]);
}

// ---- Faults ---------------------------------------------------------------------------------

fn transient_503_is_retried<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    env.emu.faults().fail_next(2, 503);
    let v = env.api.call(&redcap::version::export::Request::new()).unwrap();
    assert!(v.major >= 6);
    assert_eq!(env.emu.faults().pending(), 0);
}

fn rate_limit_honours_retry_after<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    env.emu.faults().inject(Fault::RateLimited { retry_after_secs: 1 }, 1);
    let started = std::time::Instant::now();
    env.api.call(&redcap::version::export::Request::new()).unwrap();
    // Not a speed assertion: the client must have waited for the server's Retry-After.
    assert!(started.elapsed() >= Duration::from_millis(900));
}

fn html_error_page_at_200<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    // An export is retried past it.
    env.emu.faults().inject(Fault::HtmlPage, 1);
    env.api.call(&file_repository::list::Request::new()).unwrap();
    // An upload is not: the error is reported and no file was stored.
    env.emu.faults().inject(Fault::HtmlPage, 1);
    let err = upload_bytes(&env.api, "a.txt", b"a", None).unwrap_err();
    assert_eq!(err.api().map(|e| e.kind()), Some(redcap::ApiErrorKind::HtmlPage), "{err}");
    assert!(files_in(&env.api.call(&file_repository::list::Request::new()).unwrap()).is_empty());
}

fn failed_upload_is_never_duplicated<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    env.emu.faults().fail_next(1, 503);
    let err = upload_bytes(&env.api, "once.txt", b"1", None).unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    upload_bytes(&env.api, "once.txt", b"1", None).unwrap();
    let files = files_in(&env.api.call(&file_repository::list::Request::new()).unwrap());
    assert_eq!(files.len(), 1, "exactly one copy: the failed attempt was not retried behind the user's back");
}

fn download_survives_reset_and_truncation<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    upload_bytes(&env.api, "big.bin", &payload, None).unwrap();
    let doc = files_in(&env.api.call(&file_repository::list::Request::new()).unwrap())[0].0;
    let dir = tempfile::tempdir().unwrap();
    let target = Target::File(dir.path().join("big.bin"));
    for fault in [Fault::ResetAfter { bytes: 70_000 }, Fault::Truncate { bytes: 150_000 }] {
        env.emu.faults().inject(fault, 1);
        let path = env.api.download_to(&file_repository::export::Request::new(doc), &target).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), payload);
    }
    // Broken every time: an error, and nothing at the final path nor left behind.
    std::fs::remove_file(dir.path().join("big.bin")).unwrap();
    env.emu.faults().inject(Fault::Truncate { bytes: 1000 }, 10);
    let err = env.api.download_to(&file_repository::export::Request::new(doc), &target).unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no partial or temporary file remains");
    env.emu.faults().clear();
    // Streaming into a caller's writer: an attempt that broke before any byte reached the writer
    // is retried; once bytes are out, the error is returned instead (a retry would write them
    // twice). Which case happens depends on when the transport notices the cut.
    env.emu.faults().inject(Fault::Truncate { bytes: 100_000 }, 10);
    let mut sink = Vec::new();
    let result = env.api.stream(&file_repository::export::Request::new(doc), &mut sink);
    assert!(matches!(result, Err(Error::Transport(_))), "{result:?}");
    assert!(sink.len() < payload.len() && payload.starts_with(&sink), "only a clean prefix was written");
    if !sink.is_empty() {
        assert_eq!(env.emu.faults().pending(), 9, "no retry after bytes reached the writer");
    }
    env.emu.faults().clear();
}

// ---- Workflows ------------------------------------------------------------------------------

/// Three levels: an open folder, a DAG-restricted one in it, and a role-restricted one in that.
fn build_tree<A: Api>(api: &A, dag_id: u64, role_id: u64) {
    let top = api.call(&file_repository::create_folder::Request::new("Study")).unwrap();
    let site = api.call(&file_repository::create_folder::Request::new("Site A").folder_id(top).dag_id(dag_id)).unwrap();
    let coord = api
        .call(&file_repository::create_folder::Request::new("Coordinators").folder_id(site).role_id(role_id))
        .unwrap();
    upload_bytes(api, "protocol.txt", b"protocol v1", Some(top)).unwrap();
    upload_bytes(api, "site-a.txt", b"site a notes", Some(site)).unwrap();
    upload_bytes(api, "roster.csv", b"id,name\n1,x\n", Some(coord)).unwrap();
    upload_bytes(api, "roster.csv", b"id,name\n2,y\n", Some(coord)).unwrap();
}

fn tree_walk_pull_twice_and_restrictions<A: Api>() {
    // The CLI's demo project: two DAGs and a Coordinator role that may upload.
    let xml = std::fs::read_to_string(redcap_tests::workspace_root().join("crates/redcap-cli/demo/demo-project.xml"))
        .unwrap();
    let env = Env::<A>::with_xml(xml);
    let dags = env.api.call(&redcap::dag::export::Request::new()).unwrap();
    let dag_a = dags[0].unique_group_name.clone().unwrap();
    let dag_b = dags[1].unique_group_name.clone().unwrap();
    let role = "U-DEMOCOORD";
    let dag_a_id = env.emu.dag_id(env.pid, &dag_a).unwrap() as u64;
    let role_id = env.emu.role_id(env.pid, role).unwrap() as u64;
    let insider = env.client_for(User::new("coordinator").dag(dag_a.clone()).role(role));
    build_tree(&insider, dag_a_id, role_id);

    let tree = insider.walk(None).unwrap();
    let paths: Vec<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "Study/Site A/Coordinators/roster (doc_id 4).csv",
            "Study/Site A/Coordinators/roster.csv",
            "Study/Site A/site-a.txt",
            "Study/protocol.txt"
        ]
    );
    assert_eq!(tree.folder_at("Study/Site A").unwrap().dag.as_deref(), Some(dag_a.as_str()));
    assert_eq!(tree.folder_at("Study/Site A/Coordinators").unwrap().role.as_deref(), Some(role));

    let seen = |api: &A| -> Vec<String> { api.walk(None).unwrap().files.into_iter().map(|f| f.path).collect() };
    let same_dag_no_role = env.client_for(User::new("a_user").dag(dag_a.clone()));
    assert_eq!(seen(&same_dag_no_role), ["Study/Site A/site-a.txt", "Study/protocol.txt"]);
    let other_dag = env.client_for(User::new("b_user").dag(dag_b));
    assert_eq!(seen(&other_dag), ["Study/protocol.txt"]);
    // No DAG sees every DAG's folders (as in REDCap), but a role's folder only with the role.
    assert_eq!(seen(&env.api), ["Study/Site A/site-a.txt", "Study/protocol.txt"]);

    let dir = tempfile::tempdir().unwrap();
    let first = insider.pull(None, dir.path(), &redcap::workflow::NoProgress).unwrap();
    assert_eq!((first.transferred, first.skipped), (4, 0));
    assert_eq!(std::fs::read(dir.path().join("Study/Site A/Coordinators/roster.csv")).unwrap(), b"id,name\n1,x\n");
    assert_eq!(
        std::fs::read(dir.path().join("Study/Site A/Coordinators/roster (doc_id 4).csv")).unwrap(),
        b"id,name\n2,y\n"
    );
    let second = insider.pull(None, dir.path(), &redcap::workflow::NoProgress).unwrap();
    assert_eq!((second.transferred, second.skipped, second.bytes), (0, 4, 0), "the second run transfers nothing");
}

fn push_then_pull_round_trips<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("a/b/c")).unwrap();
    let files: [(&str, Vec<u8>); 3] = [
        ("top.txt", b"top".to_vec()),
        ("a/b/mid.bin", (0..5000u32).map(|i| (i * 7 % 256) as u8).collect()),
        ("a/b/c/deep.txt", b"deep".to_vec()),
    ];
    for (p, bytes) in &files {
        std::fs::write(src.path().join(p), bytes).unwrap();
    }
    let pushed = env.api.push(src.path(), None).unwrap();
    assert_eq!((pushed.transferred, pushed.folders_created), (3, 3));
    assert!(pushed.uploaded.iter().all(|(_, doc)| *doc > 0));
    // Resolved doc_ids are the real ones: export each and compare.
    for (path, doc) in &pushed.uploaded {
        let got = env.api.call(&file_repository::export::Request::new(*doc)).unwrap();
        let want = &files.iter().find(|(p, _)| p == path).unwrap().1;
        assert_eq!(&got.bytes[..], &want[..], "{path}");
    }
    // A re-run uploads nothing; the same name elsewhere is a new file with its own doc_id.
    assert_eq!(env.api.push(src.path(), None).unwrap().transferred, 0);
    let dst = tempfile::tempdir().unwrap();
    env.api.pull(None, dst.path(), &redcap::workflow::NoProgress).unwrap();
    for (p, bytes) in &files {
        assert_eq!(&std::fs::read(dst.path().join(p)).unwrap(), bytes, "{p}");
    }
}

/// Uploads made several at once (ISSUE 14 item 3): every file gets its own doc_id, also where
/// several files of a round share a folder or a name, or a remote file already has the name.
fn concurrent_push_resolves_every_doc_id<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    upload_bytes(&env.api, "same.txt", b"already there", None).unwrap();
    let src = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, Vec<u8>)> = vec![("same.txt".into(), b"pushed".to_vec())];
    for dir in ["", "a/", "a/b/", "c/"] {
        std::fs::create_dir_all(src.path().join(dir)).unwrap();
        for i in 0..9 {
            files.push((format!("{dir}f{i}.txt"), format!("{dir} file {i}").into_bytes()));
        }
    }
    for (p, bytes) in &files {
        std::fs::write(src.path().join(p), bytes).unwrap();
    }
    // How many uploads were under way at once, from the progress events.
    let (open, most) = (std::sync::atomic::AtomicI64::new(0), std::sync::atomic::AtomicI64::new(0));
    let progress = |e: redcap::workflow::ProgressEvent| match e {
        redcap::workflow::ProgressEvent::Started { .. } => {
            let now = open.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        }
        redcap::workflow::ProgressEvent::Finished { .. } | redcap::workflow::ProgressEvent::Failed { .. } => {
            open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        _ => {}
    };
    let mut options = PushOptions::default();
    options.jobs = 5;
    let pushed = env.api.push_with(src.path(), None, &options, &progress).unwrap();
    assert!(pushed.is_complete(), "{:?}", pushed.failed);
    assert_eq!(most.into_inner(), 5, "five uploads at once");
    assert_eq!((pushed.transferred, pushed.folders_created), (files.len() as u64, 3));
    let mut ids: Vec<u64> = pushed.uploaded.iter().map(|(_, d)| *d).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), files.len(), "one doc_id per file");
    for (path, doc) in &pushed.uploaded {
        let got = env.api.call(&file_repository::export::Request::new(*doc)).unwrap();
        let want = &files.iter().find(|(p, _)| p == path).unwrap().1;
        assert_eq!(&got.bytes[..], &want[..], "{path} got doc_id {doc}");
    }
    // Nothing was uploaded twice, and a re-run uploads nothing.
    let mut walk = env.api.walk(None).unwrap().files.len();
    assert_eq!(walk, files.len() + 1, "the files pushed and the one already there");
    assert_eq!(env.api.push(src.path(), None).unwrap().transferred, 0);
    walk = env.api.walk(None).unwrap().files.len();
    assert_eq!(walk, files.len() + 1);
}

fn push_resolves_doc_id_when_the_name_exists<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    upload_bytes(&env.api, "same.txt", b"old", None).unwrap();
    let old = files_in(&env.api.call(&file_repository::list::Request::new()).unwrap())[0].0;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("same.txt"), b"new").unwrap();
    let pushed = env.api.push(src.path(), None).unwrap();
    let (_, new) = pushed.uploaded[0];
    assert_ne!(new, old, "REDCap keeps both; the new doc_id is the one that was not there before");
    assert_eq!(&env.api.call(&file_repository::export::Request::new(new)).unwrap().bytes[..], b"new");
    assert_eq!(&env.api.call(&file_repository::export::Request::new(old)).unwrap().bytes[..], b"old");
}

fn failure_mid_pull_loses_nothing<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    for i in 0..4 {
        upload_bytes(&env.api, &format!("f{i}.txt"), format!("file {i}").as_bytes(), None).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let faults = env.emu.faults();
    // Break every attempt of the third download (the default policy makes 4), nothing else.
    let progress = move |e: redcap::workflow::ProgressEvent| {
        if matches!(&e, redcap::workflow::ProgressEvent::Started { item, .. } if item == "f2.txt") {
            faults.inject(Fault::Status { status: 500, message: "boom".into() }, 4);
        }
    };
    let first = env.api.pull(None, dir.path(), &progress).unwrap();
    assert_eq!(first.transferred, 3);
    assert_eq!(first.failed.len(), 1);
    assert_eq!(first.failed[0].0, "f2.txt");
    assert!(!dir.path().join("f2.txt").exists(), "a failed download leaves nothing at its path");
    let second = env.api.pull(None, dir.path(), &redcap::workflow::NoProgress).unwrap();
    assert_eq!((second.transferred, second.skipped), (1, 3));
    assert_eq!(std::fs::read(dir.path().join("f2.txt")).unwrap(), b"file 2");
}

fn batched_export_equals_one_shot<A: Api>() {
    let env = Env::<A>::new("redcapr-vignette-repeating.xml");
    let template = record::export::Request::new();
    let one_shot = env.api.call(&template).unwrap().rows().unwrap();
    let batched = env.api.export_batched(&template, 2).unwrap();
    assert!(one_shot.len() > 2);
    let key = |r: &Row| serde_json::to_string(r).unwrap();
    let mut a: Vec<String> = one_shot.iter().map(key).collect();
    let mut b: Vec<String> = batched.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

/// Issue 11: a batched export against a server that cannot answer batches above a size
/// completes with every record, whatever way the big batches fail: a 500 out of memory
/// (PyCap#80), a 504 (REDCapR#383), an empty 200 (REDCapTidieR#212), a record left out
/// (REDCapR#400), a column left out.
fn batched_export_heals_batches_the_server_cannot_answer<A: Api>() {
    // 20 records with repeating instruments.
    let env = Env::<A>::new("redcapr-multilevel-model-1.xml");
    let template = record::export::Request::new();
    let sorted = |rows: &[Row]| {
        let mut v: Vec<String> = rows.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
        v.sort();
        v
    };
    let whole = sorted(&env.api.call(&template).unwrap().rows().unwrap());
    let faults = BatchFault::known();
    for fault in faults {
        env.emu.faults().clear();
        env.emu.faults().fail_batches_over(3, fault.clone());
        let splits = std::sync::Mutex::new(0u64);
        let progress = |e: ProgressEvent| {
            if let ProgressEvent::Split { .. } = e {
                *splits.lock().unwrap() += 1;
            }
        };
        let options = BatchOptions::default().batch_size(8).parallel(3);
        let (rows, summary) = env.api.export_each(&template, &options, &progress).unwrap();
        assert_eq!(sorted(&rows), whole, "{fault:?}: every record, once");
        let healing = summary.healing;
        let exports = env.emu.faults().record_exports();
        if fault == BatchFault::DropRows {
            // Each batch of 8, 8 and 4 lost its last record: only that record is asked for
            // again, not the batch (whose other rows were already handed on).
            assert_eq!((healing.halved, healing.reasked, healing.requests), (0, 3, 6), "{healing:?}");
            let again: Vec<&Vec<String>> = exports.iter().filter(|e| e.len() == 1).collect();
            assert_eq!(again.len(), 3, "{exports:?}");
            for one in again {
                assert!(exports.iter().any(|e| e.len() > 1 && e.last() == one.last()), "{one:?} in {exports:?}");
            }
        } else {
            // Batches of 8, 8 and 4: 8 -> 4+4 -> 2+2+2+2 twice, 4 -> 2+2.
            assert_eq!(healing.halved, 7, "{fault:?}: {healing:?}");
            assert_eq!(healing.requests, 3 + 2 * 7);
            // A 5xx is retried by the client before the batch is split.
            assert!(env.emu.faults().batches_failed() >= healing.halved, "{fault:?}");
        }
        assert_eq!(
            *splits.lock().unwrap(),
            healing.halved + healing.reasked,
            "{fault:?}: each split reported as it happened"
        );
        assert!(healing.by_instrument.is_empty(), "{fault:?}: two records pass");
        assert_eq!(summary.rows as usize, rows.len());
    }
    env.emu.faults().clear();
    assert_eq!(sorted(&env.api.export_batched(&template, 4).unwrap()), whole);
}

/// Issue 11: with `parallel`, that many batches are asked for before the first answer is in,
/// and the rows come out exactly as one batch at a time gives them.
fn parallel_batches_are_in_flight_together_and_keep_the_order<A: Api>() {
    let env = Env::<A>::new("redcapr-multilevel-model-1.xml");
    let template = record::export::Request::new();
    let one = BatchOptions::default().batch_size(3);
    let (sequential, _) = env.api.export_each(&template, &one, &redcap::workflow::NoProgress).unwrap();
    // Slow answers, so the first cannot end before the others are sent.
    env.emu.faults().set_latency(Duration::from_millis(100));
    let events = std::sync::Mutex::new(Vec::new());
    let progress = |e: ProgressEvent| match e {
        ProgressEvent::Started { item, .. } => events.lock().unwrap().push(format!("start {item}")),
        ProgressEvent::Finished { item, .. } => events.lock().unwrap().push(format!("end {item}")),
        _ => {}
    };
    let (rows, summary) = env.api.export_each(&template, &one.clone().parallel(4), &progress).unwrap();
    env.emu.faults().set_latency(Duration::ZERO);
    assert_eq!(rows, sequential, "the same rows in the same order");
    assert_eq!(summary.healing.requests, 7, "20 records in batches of 3, each asked for once");
    let events = events.into_inner().unwrap();
    let first_end = events.iter().position(|e| e.starts_with("end")).expect("batches end");
    assert_eq!(events[..first_end].iter().filter(|e| e.starts_with("start")).count(), 4, "{events:?}");
}

/// Issue 14: an export of everything in one call makes one records export, with no id list
/// first (the id list is asked for only if that call fails).
fn one_call_export_makes_one_records_call<A: Api>() {
    let env = Env::<A>::new("redcapr-multilevel-model-1.xml");
    let template = record::export::Request::new();
    let whole = env.api.call(&template).unwrap().rows().unwrap();
    env.emu.faults().clear();
    let options = BatchOptions::default().one_call();
    let (rows, summary) = env.api.export_each(&template, &options, &redcap::workflow::NoProgress).unwrap();
    assert_eq!(rows, whole, "the same rows, in the same order");
    assert_eq!(env.emu.faults().record_exports(), [Vec::<String>::new()], "one export, no id list");
    assert_eq!(summary.healing.requests, 1);
    assert_eq!(summary.rows as usize, whole.len());
}

/// A server that fails even one record is not retried forever, and a failure no batch size
/// fixes (a refused token) stops at the first batch.
fn batched_export_gives_up_when_nothing_helps<A: Api>() {
    let env = Env::<A>::new("redcapr-vignette-repeating.xml");
    env.emu.faults().fail_batches_over(0, BatchFault::DropColumns);
    let options = BatchOptions::default().batch_size(4);
    let e = env.api.export_each(&record::export::Request::new(), &options, &redcap::workflow::NoProgress).unwrap_err();
    assert!(matches!(e, WorkflowError::MissingColumns { .. }), "{e}");
    env.emu.faults().clear();
    let refused = "You do not have permissions to use the API".to_owned();
    env.emu.faults().fail_batches_over(0, BatchFault::Status { status: 403, message: refused });
    let e = env.api.export_each(&record::export::Request::new(), &options, &redcap::workflow::NoProgress).unwrap_err();
    assert!(e.is_auth(), "{e}");
    assert_eq!(env.emu.faults().batches_failed(), 1, "not split: no batch size fixes a refused token");
}

fn batched_import_checks_counts<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let rows: Vec<Row> = serde_json::from_str(
        r#"[{"record_id":"801","name_first":"A"},{"record_id":"802","name_first":"B"},{"record_id":"803","name_first":"C"}]"#,
    )
    .unwrap();
    assert_eq!(env.api.import_batched(rows, 2).unwrap(), 3);
    let back = env
        .api
        .call(&record::export::Request::new().records(["801", "802", "803"]).fields(["record_id"]))
        .unwrap()
        .rows()
        .unwrap();
    assert_eq!(back.len(), 3);
}

/// Issue 11: when batch 2 of 3 fails, the error names what was saved (batch 1), what failed
/// (batch 2, with REDCap's record/field/value lines) and what was not sent (batch 3), and
/// the import resumes from batch 2 once it is fixed.
fn failed_batched_import_says_what_was_saved<A: Api>() {
    let env = Env::<A>::new("redcapr-simple.xml");
    let row = |id: &str, dob: &str| -> Row {
        serde_json::from_value(serde_json::json!({"record_id": id, "name_first": "N", "dob": dob})).unwrap()
    };
    let mut rows: Vec<Row> =
        ["901", "902", "903", "904", "905", "906"].iter().map(|id| row(id, "2001-02-03")).collect();
    rows[2] = row("903", "not a date");
    let options = BatchOptions::default().batch_size(2);
    let e = env.api.import_from(&rows, &options).unwrap_err();
    let WorkflowError::Import(f) = &e else { panic!("not an import failure: {e:?}") };
    assert_eq!((f.batches, f.first, f.failed_batch, f.resume_from()), (3, 1, 2, 2));
    assert_eq!(f.saved, ["901", "902"]);
    assert_eq!(f.failed, ["903", "904"]);
    assert_eq!(f.unsent, ["905", "906"]);
    assert_eq!(f.failed_saved, BatchSaved::No);
    assert!(f.lines.iter().any(|l| l.record == "903" && l.field == "dob" && l.value == "not a date"), "{:?}", f.lines);
    assert!(e.is_validation(), "the failing batch's own kind: {e}");
    let text = e.to_string();
    for part in [
        "batch 2 of 3",
        "saved: batches 1–1 (2 records)",
        "not saved: batch 2",
        "not sent: batches 3–3",
        "resume from batch 2",
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    let stored = |ids: &[&str]| {
        let r = record::export::Request::new().records(ids.iter().copied()).fields(["record_id"]);
        env.api.call(&r).unwrap().rows().unwrap().len()
    };
    assert_eq!(stored(&["901", "902"]), 2, "batch 1 was saved");
    assert_eq!(stored(&["903", "904", "905", "906"]), 0, "nothing of batches 2 and 3");
    // Fixed, and resumed: batches 2 and 3 only.
    rows[2] = row("903", "2001-02-03");
    assert_eq!(env.api.import_from(&rows, &options.clone().resume_from(2)).unwrap(), 4);
    assert_eq!(stored(&["901", "902", "903", "904", "905", "906"]), 6);
}

macro_rules! for_both_clients {
    ($group:ident: $($name:ident),* $(,)?) => {
        mod $group {
            mod blocking {
                $(#[test] fn $name() { super::super::$name::<super::super::Blocking>() })*
            }
            mod asynchronous {
                $(#[test] fn $name() { super::super::$name::<super::super::Async>() })*
            }
        }
    };
}

for_both_clients!(
    emulator:
    file_repository_round_trip,
    file_repository_listing_in_every_format,
    upload_from_a_reader,
    traces_carry_call_facts_without_the_token,
    restricted_folders_are_hidden_from_outsiders,
    missing_rights_are_reported,
    rejected_and_malformed_tokens,
    error_envelopes_in_every_format,
    reports_in_every_format,
    report_with_filter_logic,
    records_import_then_export,
    transient_503_is_retried,
    rate_limit_honours_retry_after,
    html_error_page_at_200,
    failed_upload_is_never_duplicated,
    download_survives_reset_and_truncation,
    tree_walk_pull_twice_and_restrictions,
    push_then_pull_round_trips,
    concurrent_push_resolves_every_doc_id,
    push_resolves_doc_id_when_the_name_exists,
    failure_mid_pull_loses_nothing,
    batched_export_equals_one_shot,
    batched_export_heals_batches_the_server_cannot_answer,
    parallel_batches_are_in_flight_together_and_keep_the_order,
    one_call_export_makes_one_records_call,
    batched_export_gives_up_when_nothing_helps,
    batched_import_checks_counts,
    failed_batched_import_says_what_was_saved,
);

// ---- Redirects (a loopback stand-in: the emulator never redirects) ------------------------

/// A one-thread HTTP server on 127.0.0.1 that records each request's method, path and body,
/// and answers with `reply(path)`.
struct StandIn {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
}

impl StandIn {
    fn start(reply: impl Fn(&str, u16) -> String + Send + 'static) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
                let mut len = 0usize;
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
                log.lock().unwrap().push((method, path.clone(), String::from_utf8_lossy(&body).into_owned()));
                let mut out = stream;
                let _ = out.write_all(reply(&path, port).as_bytes());
            }
        });
        StandIn { port, seen }
    }
}

fn http(status: &str, headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}", body.len())
}

fn redirect_on_the_same_server_is_re_posted<A: Api>() {
    let server = StandIn::start(|path, _| match path {
        "/old/api/" => http("307 Temporary Redirect", "Location: /api/\r\n", ""),
        _ => http("200 OK", "Content-Type: text/csv\r\n", "14.5.2"),
    });
    let api = A::connect(&format!("http://127.0.0.1:{}/old/api/", server.port), redcap_tests::FAKE_TOKEN).unwrap();
    let version = api.call(&redcap::version::export::Request::new()).unwrap();
    assert_eq!(version, redcap::Version::new(14, 5, 2));
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[1].0.as_str(), seen[1].1.as_str()), ("POST", "/api/"), "re-POSTed, never turned into a GET");
    assert_eq!(seen[1].2, seen[0].2, "the same body");
}

fn redirect_to_another_server_is_refused<A: Api>() {
    let elsewhere = StandIn::start(|_, _| http("200 OK", "", "14.5.2"));
    let other = elsewhere.port;
    let server =
        StandIn::start(move |_, _| http("302 Found", &format!("Location: http://127.0.0.1:{other}/api/\r\n"), ""));
    let api = A::connect(&format!("http://127.0.0.1:{}/api/", server.port), redcap_tests::FAKE_TOKEN).unwrap();
    let err = api.call(&redcap::version::export::Request::new()).unwrap_err();
    assert!(matches!(err, Error::Redirect(_)), "{err}");
    assert!(err.to_string().contains("not following a redirect to another server"), "{err}");
    assert!(elsewhere.seen.lock().unwrap().is_empty(), "the token was not sent to the other server");
}

for_both_clients!(stand_in: redirect_on_the_same_server_is_re_posted, redirect_to_another_server_is_refused);

// ---- A sink that calls the client (blocking) -------------------------------------------------

/// A writer that makes a call of its own with the client whose `stream` feeds it.
struct CallingSink<'c> {
    client: &'c redcap::blocking::Client,
    written: Vec<u8>,
    versions: usize,
}

impl std::io::Write for CallingSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let v = self.client.call(&redcap::version::export::Request::new()).map_err(std::io::Error::other)?;
        assert!(v.major >= 1);
        self.versions += 1;
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// At concurrency(1) the blocking client held its one slot while `stream` wrote to the sink, so
/// a sink calling the same client waited for itself forever. The call runs on a thread so a
/// regression fails here (after a generous bound) instead of hanging the suite.
#[test]
fn a_stream_sink_may_call_the_client_at_concurrency_one() {
    let emu = Emulator::builder()
        .project_xml(std::fs::read_to_string(fixture("redcapr-simple.xml")).unwrap())
        .in_memory()
        .deterministic_tokens(7)
        .start()
        .expect("emulator starts");
    let token = emu.token(emu.project_ids()[0], "admin").expect("admin token");
    let client = redcap::blocking::Client::builder(emu.url(), token).allow_http(true).concurrency(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = CallingSink { client: &client, written: Vec::new(), versions: 0 };
        let streamed = client.stream(&redcap::metadata::export::Request::new(), &mut sink);
        let _ = tx.send(streamed.map(|s| (s.bytes, sink.written.len(), sink.versions)));
    });
    let (bytes, written, versions) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the stream finished (a sink calling the client must not deadlock)")
        .unwrap();
    assert_eq!(bytes as usize, written);
    assert!(written > 0 && versions > 0);
}
