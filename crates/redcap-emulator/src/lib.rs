//! A local server that behaves like a REDCap server's `/api/` endpoint.
//!
//! Projects come from REDCap project XML (CDISC ODM with `redcap:` extensions); state lives in
//! SQLite (in memory for tests, or under a data directory); the HTTP side answers with REDCap's
//! status codes, bodies and headers (see `shared/reference/redcap-api.md`).
//!
//! Every documented method is emulated except Randomize Record, which answers a 400 naming the
//! method rather than fake data. Export PDF writes a real PDF (text, not REDCap's layout). Survey links and codes are kept per participant
//! in the store and made under the emulator's own address (or [`EmulatorBuilder::base_url`]). Records
//! and reports export as json/csv/xml/odm (flat or eav), Export Project XML writes a document
//! this emulator loads again, and structure, users, roles and DAGs can be imported and deleted.
//! Choices where REDCap's behaviour is not public are marked UNVERIFIED in the code.
//!
//! ```no_run
//! use redcap_emulator::{Emulator, Rights, User};
//!
//! let emu = Emulator::builder()
//!     .project_xml_file("fixtures/redcapr-simple.xml")?
//!     .in_memory()
//!     .deterministic_tokens(42)
//!     .start()?;
//! let pid = emu.project_ids()[0];
//! let admin = emu.token(pid, "admin").unwrap();
//! let reader = emu.add_user(pid, User::new("reader").rights(Rights { api_import: false, ..Rights::full() }))?;
//! println!("POST to {} with token {admin} or {reader}", emu.url());
//! emu.faults().fail_next(1, 503);
//! # Ok::<(), redcap_emulator::Error>(())
//! ```
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod auth;
mod faults;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handlers;
mod input;
mod logic;
mod model;
mod odm;
mod odm_out;
mod params;
mod pdf;
mod records;
mod render;
mod server;
mod store;
mod stream;
mod survey_codes;

pub use auth::{DataExport, FormEntry, Rights};
pub use faults::{BatchFault, Fault, Faults};
pub use odm::OdmError;
pub use store::StoreError;

use auth::TokenGen;
use handlers::Env;
use odm::XmlSource;
use server::{Limits, Shared};
use store::Store;

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read, or the server could not bind.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A project XML file did not load.
    #[error(transparent)]
    Odm(#[from] OdmError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bad argument (unknown project, DAG, role …).
    #[error("{0}")]
    Invalid(String),
}

/// The user every loaded project gets, with full rights and the instance's super token.
pub const DEFAULT_ADMIN: &str = "admin";

/// A user to add to a project.
#[derive(Clone, Debug)]
pub struct User {
    /// Username.
    pub username: String,
    /// Rights (ignored in favour of the role's rights when `role` is set, as in REDCap).
    pub rights: Rights,
    /// Unique DAG name, if the user is in a DAG.
    pub dag: Option<String>,
    /// Unique role name, if the user has a role.
    pub role: Option<String>,
}

impl User {
    /// A user with full rights, in no DAG and no role.
    pub fn new(username: impl Into<String>) -> Self {
        User { username: username.into(), rights: Rights::full(), dag: None, role: None }
    }

    /// Sets the rights.
    pub fn rights(mut self, rights: Rights) -> Self {
        self.rights = rights;
        self
    }

    /// Puts the user in a DAG (unique group name).
    pub fn dag(mut self, unique_name: impl Into<String>) -> Self {
        self.dag = Some(unique_name.into());
        self
    }

    /// Gives the user a role (unique role name).
    pub fn role(mut self, unique_role_name: impl Into<String>) -> Self {
        self.role = Some(unique_role_name.into());
        self
    }
}

/// Configures an emulator. Start with [`Emulator::builder`].
#[derive(Debug)]
pub struct EmulatorBuilder {
    projects: Vec<ProjectXml>,
    data_dir: Option<PathBuf>,
    seed: Option<u64>,
    bind: SocketAddr,
    version: String,
    limits: Limits,
    content_disposition: bool,
    base_url: Option<String>,
    admin: String,
}

/// A project XML document the builder loads.
#[derive(Debug)]
enum ProjectXml {
    Text(String),
    File(PathBuf),
}

impl EmulatorBuilder {
    /// Adds a project from a REDCap project XML file. A missing file is an error here; the file
    /// is read when the emulator is built, as it is loaded (a pipe is read whole then).
    pub fn project_xml_file(mut self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        // (Not opened: a pipe would lose what its writer sent.)
        std::fs::metadata(path).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        self.projects.push(ProjectXml::File(path.to_owned()));
        Ok(self)
    }

    /// Adds a project from REDCap project XML text.
    pub fn project_xml(mut self, xml: impl Into<String>) -> Self {
        self.projects.push(ProjectXml::Text(xml.into()));
        self
    }

    /// Keeps state in memory, with blobs in a temporary directory (the default).
    pub fn in_memory(mut self) -> Self {
        self.data_dir = None;
        self
    }

    /// Keeps state under `dir` (`emulator.sqlite` and `blobs/`); a restart with the same
    /// directory keeps everything. A project XML already loaded into it is not loaded twice.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Makes tokens reproducible from `seed` (tests only: such tokens are guessable).
    pub fn deterministic_tokens(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Address to listen on (default `127.0.0.1:0`, any free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// What Export Version answers (default `14.5.2`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Largest urlencoded body, or total of the non-file parts of a multipart body (default 64 MiB).
    pub fn max_form_bytes(mut self, n: u64) -> Self {
        self.limits.max_form_bytes = n;
        self
    }

    /// Most parts in a multipart body (default 10,000).
    pub fn max_parts(mut self, n: usize) -> Self {
        self.limits.max_parts = n;
        self
    }

    /// Time a client has to send a request's headers before its connection is closed
    /// (default 30 s).
    pub fn header_read_timeout(mut self, t: Duration) -> Self {
        self.limits.header_read_timeout = t;
        self
    }

    /// Largest uploaded file (default 4 GiB).
    pub fn max_upload_bytes(mut self, n: u64) -> Self {
        self.limits.max_upload_bytes = n;
        self
    }

    /// Whether file downloads also carry `Content-Disposition: attachment; filename="…"`
    /// (default on; REDCap's documented header is the `name=` of Content-Type, which is always sent).
    pub fn content_disposition(mut self, on: bool) -> Self {
        self.content_disposition = on;
        self
    }

    /// The base URL survey links are made under, as REDCap's own (`https://redcap.example.org/`
    /// gives `https://redcap.example.org/surveys/?s=…`). Default: the address each request was
    /// sent to (its `Host` header), so links point back at this emulator.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        let mut url = url.into();
        if !url.ends_with('/') {
            url.push('/');
        }
        self.base_url = Some(url);
        self
    }

    /// Name of the user that gets full rights on every loaded project and the super token
    /// (default [`DEFAULT_ADMIN`]).
    pub fn admin_username(mut self, name: impl Into<String>) -> Self {
        self.admin = name.into();
        self
    }

    /// Opens the store and loads the projects, without serving.
    pub fn build(self) -> Result<Emulator, Error> {
        let tokens = match self.seed {
            Some(s) => TokenGen::seeded(s),
            None => TokenGen::random(),
        };
        let (store, temp) = match &self.data_dir {
            Some(dir) => {
                // Owner-only from the start: it holds the database (tokens, data) and the blobs.
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
                    .create(dir)?;
                #[cfg(not(unix))]
                std::fs::create_dir_all(dir)?;
                (Store::open(&dir.join("emulator.sqlite"), dir.join("blobs"), tokens)?, None)
            }
            None => {
                let temp = tempfile::Builder::new().prefix("redcap-emulator-").tempdir()?;
                // A database file even here: exports stream from their own read connections.
                (Store::open(&temp.path().join("emulator.sqlite"), temp.path().join("blobs"), tokens)?, Some(temp))
            }
        };
        let tmp_dir = store.blob_dir().join("tmp");
        let emu = Emulator {
            shared: Arc::new(Shared {
                store: Mutex::new(store),
                turn: tokio::sync::Semaphore::new(1),
                env: Env {
                    version: self.version,
                    content_disposition: self.content_disposition,
                    base_url: self.base_url,
                },
                faults: Faults::default(),
                limits: self.limits,
                tmp_dir,
            }),
            admin: self.admin,
            _temp: temp.map(Arc::new),
        };
        {
            let mut store = emu.store();
            store.super_token_of(&emu.admin)?;
        }
        for xml in &self.projects {
            match xml {
                ProjectXml::Text(xml) => emu.load_project_xml(xml)?,
                ProjectXml::File(path) => emu.load_project_xml_file(path)?,
            };
        }
        Ok(emu)
    }

    /// Builds, then serves on its own thread and Tokio runtime.
    pub fn start(self) -> Result<RunningEmulator, Error> {
        let bind = self.bind;
        self.build()?.serve(bind)
    }
}

/// An emulator's state, with or without a server running. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
    admin: String,
    _temp: Option<Arc<tempfile::TempDir>>,
}

impl Emulator {
    /// A builder with the defaults: in memory, random tokens, `127.0.0.1:0`, version `14.5.2`.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder {
            projects: Vec::new(),
            data_dir: None,
            seed: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            version: "14.5.2".into(),
            limits: Limits::default(),
            content_disposition: true,
            base_url: None,
            admin: DEFAULT_ADMIN.into(),
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads a project from project XML (unless this exact XML was loaded before into the same
    /// data directory) and gives the admin user full rights on it. Returns the project id.
    pub fn load_project_xml(&self, xml: &str) -> Result<i64, Error> {
        self.load_source(&fnv1a(xml.as_bytes()), XmlSource::Text(xml))
    }

    /// [`Emulator::load_project_xml`] of a file, read as it is loaded: a document of any size
    /// is never held whole (it is read twice: once to tell whether it was loaded before).
    pub fn load_project_xml_file(&self, path: &Path) -> Result<i64, Error> {
        let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        // A pipe (`--project <(gunzip -c p.xml.gz)`, /dev/stdin) can be read only once: it is
        // read whole, as text.
        if !std::fs::metadata(path).map_err(named)?.is_file() {
            let xml = std::fs::read_to_string(path).map_err(named)?;
            return self.load_project_xml(&xml);
        }
        let hash = fnv1a_file(path).map_err(named)?;
        self.load_source(&hash, XmlSource::File(path))
    }

    fn load_source(&self, hash: &str, xml: XmlSource<'_>) -> Result<i64, Error> {
        let mut store = self.store();
        if let Some(id) = store.project_for_source(hash)? {
            return Ok(id);
        }
        let id = match store.insert_project_source(xml) {
            Ok(id) => id,
            Err(store::LoadError::Xml(e)) => return Err(e.into()),
            Err(store::LoadError::Store(e)) => return Err(e.into()),
        };
        store.remember_source(hash, id)?;
        store.set_project_user(id, &self.admin, &Rights::full(), None, None)?;
        Ok(id)
    }

    /// Ids of every project.
    pub fn project_ids(&self) -> Vec<i64> {
        self.store().project_ids().unwrap_or_default()
    }

    /// A project's title.
    pub fn project_title(&self, project_id: i64) -> Option<String> {
        self.store().project(project_id).ok().flatten().map(|p| p.def.info.title.clone())
    }

    /// The token of `username` in a project.
    pub fn token(&self, project_id: i64, username: &str) -> Option<String> {
        self.store().token_of(project_id, username).ok().flatten()
    }

    /// The admin user's super token (64 hex characters).
    pub fn super_token(&self) -> String {
        self.store().super_token_of(&self.admin).unwrap_or_default()
    }

    /// Adds a user to a project (or updates their rights, DAG and role) and returns their token.
    pub fn add_user(&self, project_id: i64, user: User) -> Result<String, Error> {
        let mut store = self.store();
        let p = store.project(project_id)?.ok_or_else(|| Error::Invalid(format!("no project with id {project_id}")))?;
        let dag = match &user.dag {
            None => None,
            Some(u) => Some(
                p.dag_by_unique(u)
                    .ok_or_else(|| Error::Invalid(format!("project {project_id} has no DAG named `{u}`")))?
                    .id,
            ),
        };
        let role = match &user.role {
            None => None,
            Some(u) => Some(
                p.def
                    .roles
                    .iter()
                    .find(|r| &r.unique == u)
                    .ok_or_else(|| Error::Invalid(format!("project {project_id} has no role named `{u}`")))?
                    .id,
            ),
        };
        Ok(store.set_project_user(project_id, &user.username, &user.rights, dag, role)?)
    }

    /// The numeric id of a report, by unique report name (`R-…`) or title.
    pub fn report_id(&self, project_id: i64, name_or_title: &str) -> Option<i64> {
        let p = self.store().project(project_id).ok().flatten()?;
        p.def.reports.iter().find(|r| r.unique_name == name_or_title || r.title == name_or_title).map(|r| r.id)
    }

    /// The numeric id of a DAG (`dag_id` of createFolder), by unique group name.
    pub fn dag_id(&self, project_id: i64, unique_name: &str) -> Option<i64> {
        let p = self.store().project(project_id).ok().flatten()?;
        p.dag_by_unique(unique_name).map(|d| d.id)
    }

    /// The numeric id of a role (`role_id` of createFolder), by unique role name.
    pub fn role_id(&self, project_id: i64, unique_role_name: &str) -> Option<i64> {
        let p = self.store().project(project_id).ok().flatten()?;
        p.def.roles.iter().find(|r| r.unique == unique_role_name).map(|r| r.id)
    }

    /// Number of (forms, fields, records) of a project; fields exclude `<form>_complete`.
    pub fn project_counts(&self, project_id: i64) -> Option<(usize, usize, usize)> {
        let mut store = self.store();
        let p = store.project(project_id).ok().flatten()?;
        let records = store.records(project_id).ok()?.len();
        Some((p.def.forms.len(), p.def.fields.len(), records))
    }

    /// Moves a project to Production status (`true`) or back to Development. Import Metadata,
    /// Delete Arms / Events, override imports and mapping imports are refused in Production.
    pub fn set_in_production(&self, project_id: i64, on: bool) -> Result<(), Error> {
        let mut store = self.store();
        let p = store.project(project_id)?.ok_or_else(|| Error::Invalid(format!("no project with id {project_id}")))?;
        let mut def = p.def.clone();
        def.info.in_production = on;
        if on && def.info.production_time.is_empty() {
            def.info.production_time = store::now_seconds();
        }
        store.save_def(def)?;
        Ok(())
    }

    /// Sets the DAGs `username` may move to with Switch DAG (unique group names; `""` stands for
    /// "no DAG"), replacing earlier entries. REDCap keeps this on its DAG Switcher page.
    pub fn set_dag_switcher(&self, project_id: i64, username: &str, dags: &[&str]) -> Result<(), Error> {
        let mut store = self.store();
        let p = store.project(project_id)?.ok_or_else(|| Error::Invalid(format!("no project with id {project_id}")))?;
        let ids = dags
            .iter()
            .map(|u| match *u {
                "" => Ok(None),
                u => p
                    .dag_by_unique(u)
                    .map(|d| Some(d.id))
                    .ok_or_else(|| Error::Invalid(format!("project {project_id} has no DAG named `{u}`"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        store.set_dag_switcher(project_id, username, &ids)?;
        Ok(())
    }

    /// Doc ids in a project's File Repository recycle bin.
    pub fn recycled_files(&self, project_id: i64) -> Vec<i64> {
        self.store().recycled_files(project_id).unwrap_or_default()
    }

    /// Moves every entry logged so far in a project `by` into the past, so a test can build a
    /// history spread over days or months (the emulator logs at its clock's time).
    pub fn age_log(&self, project_id: i64, by: Duration) -> Result<(), Error> {
        self.store().age_log(project_id, by.as_secs())?;
        Ok(())
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// Serves on `bind` from a new thread with its own Tokio runtime.
    pub fn serve(self, bind: SocketAddr) -> Result<RunningEmulator, Error> {
        // Uploads a crash interrupted would otherwise stay forever.
        self.store().clean_tmp()?;
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<std::io::Result<SocketAddr>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = self.shared.clone();
        let thread = std::thread::Builder::new().name("redcap-emulator".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("redcap-emulator-worker")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind(bind).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                let _ = addr_tx.send(listener.local_addr());
                server::serve(listener, shared, stop_rx).await;
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        })?;
        let addr = addr_rx.recv().map_err(|_| Error::Invalid("the server thread ended before binding".into()))??;
        Ok(RunningEmulator { emulator: self, addr, stop: Some(stop_tx), thread: Some(thread) })
    }
}

/// A serving emulator. Dereferences to [`Emulator`] for tokens, users and faults; stops on
/// [`RunningEmulator::shutdown`] or drop.
#[derive(Debug)]
pub struct RunningEmulator {
    emulator: Emulator,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for RunningEmulator {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emulator
    }
}

impl RunningEmulator {
    /// The API URL, e.g. `http://127.0.0.1:41234/api/`.
    pub fn url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the server thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The key a loaded document is remembered by (FNV-1a and the length: kept as it was, so a
/// data directory recognises the documents loaded into it before).
#[derive(Clone, Copy)]
struct SourceKey {
    hash: u64,
    len: u64,
}

impl SourceKey {
    fn new() -> Self {
        SourceKey { hash: 0xcbf2_9ce4_8422_2325, len: 0 }
    }

    fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.hash ^= u64::from(*b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.len += bytes.len() as u64;
    }

    fn finish(self) -> String {
        format!("{:016x}-{}", self.hash, self.len)
    }
}

fn fnv1a(bytes: &[u8]) -> String {
    let mut key = SourceKey::new();
    key.update(bytes);
    key.finish()
}

/// [`fnv1a`] of a file, read a piece at a time.
fn fnv1a_file(path: &Path) -> std::io::Result<String> {
    let mut key = SourceKey::new();
    // Through a 64 KiB buffer: `io::copy`'s own is 8 KiB, eight times the reads of a project
    // XML of hundreds of MiB (30 ms more for 230 MiB).
    std::io::copy(&mut std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path)?), &mut key)?;
    Ok(key.finish())
}

/// A key is made by writing the document into it.
impl std::io::Write for SourceKey {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
