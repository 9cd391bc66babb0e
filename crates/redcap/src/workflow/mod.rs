//! Multi-step jobs users script today, as pure plans shared by both clients.
//!
//! With the blocking client (`use redcap::blocking::Workflows`):
//!
//! ```no_run
//! # #[cfg(feature = "blocking")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use redcap::blocking::{Client, Workflows};
//! use redcap::workflow::{BatchOptions, NoProgress, PullOptions, PushOptions, ReportOptions};
//!
//! let client = Client::builder("https://redcap.example.edu/api/", std::env::var("REDCAP_API_TOKEN")?).build()?;
//!
//! // Mirror the whole File Repository; a second run downloads only what is new.
//! let summary = client.pull(None, "repository".as_ref(), &PullOptions::default(), &NoProgress)?;
//! println!("{} downloaded, {} already there, {} failed", summary.transferred, summary.skipped, summary.failed.len());
//!
//! // Upload a directory tree into folder 45 and learn each new file's doc_id.
//! let pushed = client.push("outgoing".as_ref(), Some(45), &PushOptions::default(), &NoProgress)?;
//! for (path, doc_id) in &pushed.uploaded {
//!     println!("{path} -> doc_id {doc_id}");
//! }
//!
//! // A report into your own type.
//! #[derive(serde::Deserialize)]
//! struct Row { record_id: String, age: String }
//! let rows: Vec<Row> = client.export_report("42".parse()?, &ReportOptions::default())?;
//!
//! // All records, 200 at a time, checked for completeness.
//! let records = client.export_records_batched(
//!     &redcap::record::export::Request::new().fields(["record_id", "age"]),
//!     &BatchOptions::default().batch_size(200),
//!     &NoProgress,
//! )?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "blocking"))] fn main() {}
//! ```
//!
//! The async client has the same methods (`use redcap::asynchronous::Workflows`), awaited; its
//! tree walk lists folders concurrently within the client's concurrency bound:
//!
//! ```no_run
//! # #[cfg(feature = "async")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use redcap::asynchronous::{Client, Workflows};
//! use redcap::workflow::{NoProgress, PullOptions};
//!
//! let client = Client::builder("https://redcap.example.edu/api/", std::env::var("REDCAP_API_TOKEN")?)
//!     .concurrency(4)
//!     .build()?;
//! let tree = client.walk(None, &NoProgress).await?;
//! let summary = client.pull(None, "repository".as_ref(), &PullOptions::default(), &NoProgress).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Everything here decides without doing I/O: which folder to list next, which files a pull
//! must fetch and where they go, which folders a push must create, how records are batched,
//! and whether a batched export came back complete. The blocking and async drivers only
//! perform the calls these plans ask for.

mod error;
mod export_row;
pub mod files;
pub mod heal;
pub mod log_windows;
pub mod progress;
pub mod records;
pub mod report;
mod row_stream;
mod session;

pub(crate) use error::local;
pub use error::{BatchSaved, ImportFailure, WorkflowError};
pub use export_row::{ExportRow, RawRow};
pub use files::{
    LocalFile, LocalScan, Manifest, ManifestEntry, PullItem, PullPlan, PushPlan, RemoteFile, RemoteFolder, RemoteTree,
    TreeWalk,
};
pub use heal::{HealReport, Healer, Scope, Ticket, Verdict};
pub use log_windows::{LogSummary, LogWindows};
pub use progress::{NoProgress, Progress, ProgressEvent};
pub use records::{BatchPlan, ExportCheck, RecordBatches};
pub use report::{ReportId, ReportOptions};
pub use row_stream::RowStream;
pub use session::{
    ExportSession, ExportSummary, FolderListing, ImportSession, PullSession, PushSession, PushUpload, PushWave,
    STALE_PARTIAL, remove_stale_partials,
};
pub(crate) use session::{distinct_ids, only_splits};

/// What a pull or push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransferSummary {
    /// Files transferred.
    pub transferred: u64,
    /// Files already present (by the manifest), not transferred again.
    pub skipped: u64,
    /// Folders created (push).
    pub folders_created: u64,
    /// Local files removed because they are gone remotely (pull with `delete`).
    pub removed: u64,
    /// Bytes transferred.
    pub bytes: u64,
    /// Files that failed, with the reason; the others went on.
    pub failed: Vec<(String, String)>,
    /// Uploaded files and the `doc_id` each was given (push).
    pub uploaded: Vec<(String, u64)>,
    /// Stale partial downloads of interrupted runs that were removed (pull).
    pub partials_removed: u64,
    /// How many of `failed` were local-file failures (disk full, permissions, a vanished
    /// folder) rather than failed calls.
    pub failed_local: u64,
}

impl TransferSummary {
    /// Whether every file made it.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Options of a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullOptions {
    /// Remove local files whose remote file is gone (off: a pull never deletes by default).
    /// Only files the manifest shows this pull wrote, unchanged since, are removed.
    pub delete: bool,
    /// Replace local files a pull did not write when a remote file takes their path (off:
    /// such a remote file is downloaded under its ` (doc_id N)` name instead).
    pub overwrite: bool,
    /// Files downloaded at once (at least 1; the client's own concurrency bound applies too).
    /// Each download keeps every guarantee (temporary file, length check, fsync, atomic
    /// rename); running several overlaps their fsyncs.
    pub jobs: usize,
}

/// Files a pull downloads (and a push uploads) at once by default.
pub const DEFAULT_JOBS: usize = 4;

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { delete: false, overwrite: false, jobs: DEFAULT_JOBS }
    }
}

/// Options of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushOptions {
    /// Upload files the manifest says were already uploaded.
    pub force: bool,
    /// Where to keep the push's manifest (`None`: [`files::default_push_manifest`], in the
    /// user's state directory). Never inside the pushed directory.
    pub manifest: Option<std::path::PathBuf>,
    /// Files uploaded at once (at least 1; the client's own concurrency bound applies too).
    /// They go in rounds: the folders are listed before and after each round, which tells the
    /// `doc_id` each upload got (REDCap's import answers nothing). No upload is ever retried.
    pub jobs: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions { force: false, manifest: None, jobs: DEFAULT_JOBS }
    }
}

/// Options of a batched record export or import.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchOptions {
    /// Records per call (REDCapR's default is 100). `usize::MAX` ([`BatchOptions::one_call`]):
    /// every record in one call, with no id list first (an export only; the id list is asked
    /// for only if that call fails, to heal it).
    pub batch_size: usize,
    /// Pause between calls, to spare the server.
    pub pause: std::time::Duration,
    /// Import only: the batch to start from (1-based; 0 or 1: the first). Batches are planned
    /// the same way from the same rows and batch size, so after a failed import
    /// ([`ImportFailure::resume_from`]) the run goes on where it stopped.
    pub resume_from: usize,
    /// Export calls in flight at once (at least 1, the default). The client's own pacing
    /// (`requests_per_minute`) and concurrency bound still apply to every call; rows are
    /// handed on in order whatever order the answers arrive in.
    pub parallel: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions { batch_size: 100, pause: std::time::Duration::ZERO, resume_from: 0, parallel: 1 }
    }
}

impl BatchOptions {
    /// Sets the batch size.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Exports every record in one call, with no id list first (see
    /// [`BatchOptions::batch_size`]).
    pub fn one_call(mut self) -> Self {
        self.batch_size = usize::MAX;
        self
    }

    /// Whether an export is made in one call ([`BatchOptions::one_call`]).
    pub fn is_one_call(&self) -> bool {
        self.batch_size == usize::MAX
    }

    /// Sets the pause.
    pub fn pause(mut self, d: std::time::Duration) -> Self {
        self.pause = d;
        self
    }

    /// Sets the batch an import starts from (1-based).
    pub fn resume_from(mut self, batch: usize) -> Self {
        self.resume_from = batch;
        self
    }

    /// Sets how many export calls may be in flight at once (at least 1).
    pub fn parallel(mut self, n: usize) -> Self {
        self.parallel = n.max(1);
        self
    }
}

/// The record-id field: the first field of the data dictionary.
pub fn id_field(metadata: &[crate::rows::Field]) -> Result<String, WorkflowError> {
    metadata.first().map(|f| f.field_name.clone()).filter(|n| !n.is_empty()).ok_or(WorkflowError::NoIdField)
}

/// The id-only export that starts a batched export: the caller's record, event and filter
/// choices, only the id field, flat JSON.
pub fn id_request(template: &crate::record::export::Request, id_field: &str) -> crate::record::export::Request {
    let mut r = template.clone();
    r.fields = vec![id_field.to_owned()];
    r.forms = Vec::new();
    r.format = Some(redcap_core::Format::Json);
    r.record_type = Some(redcap_core::RecordType::Flat);
    r.raw_or_label = None;
    r.export_checkbox_label = false;
    r
}

/// One batch of a batched export: the template for these records, as flat JSON, with the id
/// field added when the caller named fields or forms without it (REDCap returns the id only when
/// it or its form is asked for, and completeness is checked by id).
pub fn batch_request(
    template: &crate::record::export::Request,
    id_field: &str,
    ids: &[String],
) -> crate::record::export::Request {
    let mut r = template.clone();
    r.records = ids.to_vec();
    let narrowed = !r.fields.is_empty() || !r.forms.is_empty();
    if narrowed && !r.fields.iter().any(|f| f == id_field) {
        r.fields.insert(0, id_field.to_owned());
    }
    r.format = Some(redcap_core::Format::Json);
    r.record_type = Some(redcap_core::RecordType::Flat);
    r
}

/// How a batched import's rows are written: REDCap's import options (the batching itself is
/// [`BatchOptions`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Let blank values erase stored values (REDCap's `overwrite`; default `normal`).
    pub overwrite: bool,
    /// Let REDCap number new records itself (`forceAutoNumber`).
    pub force_auto_number: bool,
    /// Layout of date values in the rows (default: REDCap's, Y-M-D).
    pub date_format: Option<redcap_core::DateFormat>,
}

impl ImportOptions {
    /// Sets `overwrite`.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Sets `force_auto_number`.
    pub fn force_auto_number(mut self, yes: bool) -> Self {
        self.force_auto_number = yes;
        self
    }

    /// Sets the date format.
    pub fn date_format(mut self, f: redcap_core::DateFormat) -> Self {
        self.date_format = Some(f);
        self
    }
}

/// One batch of a batched import: these rows as JSON data with the options, asking for a
/// count so it can be checked.
pub fn import_request(options: &ImportOptions, rows: &[redcap_core::Row]) -> crate::record::import::Request {
    let mut r = crate::record::import::Request::new(serde_json::to_string(rows).unwrap_or_else(|_| "[]".to_owned()));
    if options.overwrite {
        r.overwrite_behavior = Some(redcap_core::OverwriteBehavior::Overwrite);
    }
    r.force_auto_number = options.force_auto_number;
    r.date_format = options.date_format;
    r.format = Some(redcap_core::Format::Json);
    r.return_content = Some(redcap_core::ReturnContent::Count);
    r.background_process = false;
    r
}

/// Rows of any `Serialize` type as generic rows (each must serialize as a map).
pub fn to_rows<T: serde::Serialize>(rows: &[T]) -> Result<Vec<redcap_core::Row>, WorkflowError> {
    rows.iter()
        .enumerate()
        .map(|(index, row)| match serde_json::to_value(row) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(other) => Err(rows_error(index, format!("a row must be a map of field names to values, not {other}"))),
            Err(e) => Err(rows_error(index, e.to_string())),
        })
        .collect()
}

fn rows_error(index: usize, reason: String) -> WorkflowError {
    WorkflowError::Call(redcap_core::Error::Encode(redcap_core::EncodeError::Rows { index, format: "json", reason }))
}

/// Where a push keeps its manifest: the option, else the default in the user's state directory.
pub fn push_manifest(
    options: &PushOptions,
    url: &str,
    root: Option<u64>,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf, WorkflowError> {
    match &options.manifest {
        Some(p) => Ok(p.clone()),
        None => files::default_push_manifest(url, root, dir).ok_or_else(|| WorkflowError::Local {
            path: dir.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no home directory to keep the push's manifest in; set PushOptions::manifest",
            ),
        }),
    }
}

/// The listing request of one folder (`None`: the top level).
pub fn list_request(folder: Option<u64>) -> crate::file_repository::list::Request {
    let r = crate::file_repository::list::Request::new();
    match folder {
        Some(id) => r.folder_id(id),
        None => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_always_ask_for_the_id_field_when_narrowed() {
        let ids = ["1".to_owned()];
        let by_form = crate::record::export::Request::new().forms(["visit"]);
        assert_eq!(batch_request(&by_form, "record_id", &ids).fields, ["record_id"]);
        let by_field = crate::record::export::Request::new().fields(["age"]);
        assert_eq!(batch_request(&by_field, "record_id", &ids).fields, ["record_id", "age"]);
        let everything = crate::record::export::Request::new();
        assert!(batch_request(&everything, "record_id", &ids).fields.is_empty(), "all fields include the id already");
    }
}
