//! Workflow errors: a failed call, or a check a workflow makes on REDCap's answers.

use std::path::PathBuf;

use redcap_core::ErrorKind;

/// Why a workflow stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// A call failed.
    #[error(transparent)]
    Call(#[from] redcap_core::Error),
    /// REDCap answered a batch without some of the records asked for.
    #[error("REDCap returned no rows for {} of the requested records: {}", missing.len(), preview(missing))]
    MissingRecords {
        /// The ids with no row.
        missing: Vec<String>,
    },
    /// REDCap answered a record, exported alone and instrument by instrument, without some of
    /// the columns asked for.
    #[error("REDCap's answer for record {record} lacks the column{} {}", if columns.len() == 1 { "" } else { "s" }, preview(columns))]
    MissingColumns {
        /// The record.
        record: String,
        /// The columns (or checkbox fields) missing.
        columns: Vec<String>,
    },
    /// REDCap imported another number of records than were sent.
    #[error("batch {batch}: REDCap imported {imported} records of the {sent} sent (earlier batches were imported)")]
    ImportCount {
        /// 1-based batch number.
        batch: usize,
        /// Records sent.
        sent: u64,
        /// Records REDCap reported.
        imported: u64,
    },
    /// A batched import stopped part-way: what was saved, what failed and what was not sent.
    #[error(transparent)]
    Import(Box<ImportFailure>),
    /// A thread of a parallel workflow stopped without its answer (it panicked, or the one
    /// collecting the answers went away): a local failure, not REDCap's.
    #[error("a worker of the workflow stopped: {0}")]
    Worker(String),
    /// An uploaded file could not be found in its folder afterwards.
    #[error("uploaded `{0}`, but it does not appear in the folder's listing, so its doc_id is unknown")]
    Unresolved(String),
    /// A tree walk met a folder it had already listed: a folder inside itself, or a server
    /// that ignores `folder_id` and lists the same folder for every request.
    #[error(
        "the File Repository listing loops: folder_id {folder_id} appears again at `{path}` (a folder inside \
         itself, or a server that ignores folder_id); the walk stopped"
    )]
    FolderLoop {
        /// The folder met again.
        folder_id: u64,
        /// Where it was met the second time.
        path: String,
    },
    /// A tree walk went deeper than [`super::files::MAX_DEPTH`] folders.
    #[error(
        "the File Repository listing is deeper than {} folders at `{path}`; the walk stopped",
        super::files::MAX_DEPTH
    )]
    TooDeep {
        /// The folder too deep.
        path: String,
    },
    /// [`BatchOptions::resume_from`](super::BatchOptions::resume_from) names a batch past the
    /// last one the rows make: other rows or another batch size than the import that stopped
    /// (which would plan other batches). Nothing was sent.
    #[error(
        "there is no batch {resume_from} to resume from: the rows make {batches} batch{}",
        if *batches == 1 { "" } else { "es" }
    )]
    ResumePastEnd {
        /// The batch asked for (1-based).
        resume_from: usize,
        /// The batches the rows make.
        batches: usize,
    },
    /// The local directory of a pull is a file (or something else that is not a directory).
    /// Found before any request ([`PullSession::check_dir`](super::PullSession::check_dir)).
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path given as the directory.
        path: std::path::PathBuf,
    },
    /// The project's record-id field could not be found.
    #[error("cannot tell the project's record-id field: the data dictionary is empty")]
    NoIdField,
    /// A local file or directory.
    #[error("local file {}", path.display())]
    Local {
        /// Which.
        path: PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// A data body did not decode into rows.
    #[error(transparent)]
    Decode(#[from] redcap_core::DecodeError),
}

impl WorkflowError {
    /// What kind of failure this is: a failed call's own kind; a local file or a stopped worker is
    /// [`ErrorKind::Local`]; a batch to resume from that the rows do not make is
    /// [`ErrorKind::Request`]; an answer that does not decode is [`ErrorKind::Decode`]; REDCap's
    /// answers contradicting each other (missing records, another import count, an upload not
    /// in its folder, an empty data dictionary, a folder tree that loops) are [`ErrorKind::Server`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            WorkflowError::Call(e) => e.kind(),
            WorkflowError::Import(f) => f.error.kind(),
            WorkflowError::Local { .. } | WorkflowError::NotADirectory { .. } | WorkflowError::Worker(_) => {
                ErrorKind::Local
            }
            WorkflowError::ResumePastEnd { .. } => ErrorKind::Request,
            WorkflowError::Decode(_) => ErrorKind::Decode,
            WorkflowError::MissingRecords { .. }
            | WorkflowError::MissingColumns { .. }
            | WorkflowError::ImportCount { .. }
            | WorkflowError::Unresolved(_)
            | WorkflowError::FolderLoop { .. }
            | WorkflowError::TooDeep { .. }
            | WorkflowError::NoIdField => ErrorKind::Server,
        }
    }

    /// The failed call's error, if a call failed.
    pub fn call(&self) -> Option<&redcap_core::Error> {
        match self {
            WorkflowError::Call(e) => Some(e),
            WorkflowError::Import(f) => f.error.call(),
            _ => None,
        }
    }

    redcap_core::kind_shortcuts!();

    /// Whether running the workflow again may succeed (a transient call failure).
    pub fn is_transient(&self) -> bool {
        self.call().is_some_and(redcap_core::Error::is_transient)
    }
}

impl From<redcap_core::ResponseError> for WorkflowError {
    fn from(e: redcap_core::ResponseError) -> Self {
        WorkflowError::Call(e.into())
    }
}

/// Whether the failing batch of an import was saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchSaved {
    /// REDCap refused it, or it was never sent: nothing of it was saved (REDCap saves a
    /// batch whole or not at all).
    No,
    /// The answer was lost after the request may have reached REDCap: the batch may have been
    /// saved. It is not sent again by itself (an auto-numbered import would be duplicated).
    Unknown,
    /// REDCap answered that it saved this many of the batch's records.
    Counted(u64),
}

/// What a batched import that stopped part-way did (issue 11): the batches before the failing
/// one were saved, the failing one was not (or may have been), the later ones were not sent.
#[derive(Debug)]
#[non_exhaustive]
pub struct ImportFailure {
    /// Batches in the plan.
    pub batches: usize,
    /// The first batch this run sent (1 unless resumed).
    pub first: usize,
    /// The failing batch (1-based): the batch to resume from.
    pub failed_batch: usize,
    /// Records of the batches saved in this run.
    pub saved: Vec<String>,
    /// Records of the failing batch.
    pub failed: Vec<String>,
    /// Whether the failing batch was saved.
    pub failed_saved: BatchSaved,
    /// REDCap's record/field/value lines for the failing batch, when it gave them.
    pub lines: Vec<redcap_core::ImportErrorLine>,
    /// Records of the batches not sent.
    pub unsent: Vec<String>,
    /// Why the failing batch failed.
    pub error: WorkflowError,
}

impl ImportFailure {
    /// The batch to pass to `BatchOptions::resume_from` to go on where this run stopped.
    pub fn resume_from(&self) -> usize {
        self.failed_batch
    }
}

impl std::fmt::Display for ImportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |v: &[String]| format!("{} record{}", v.len(), if v.len() == 1 { "" } else { "s" });
        write!(f, "batch {} of {} failed: {}", self.failed_batch, self.batches, self.error)?;
        if self.failed_batch > self.first {
            write!(f, "; saved: batches {}–{} ({})", self.first, self.failed_batch - 1, n(&self.saved))?;
        } else {
            write!(f, "; saved: none in this run")?;
        }
        match self.failed_saved {
            BatchSaved::No => write!(f, "; not saved: batch {} ({})", self.failed_batch, n(&self.failed))?,
            BatchSaved::Unknown => write!(
                f,
                "; batch {} ({}) may have been saved: the answer was lost, so it was not sent again",
                self.failed_batch,
                n(&self.failed)
            )?,
            BatchSaved::Counted(k) => {
                write!(f, "; batch {}: REDCap reports {k} of its {} saved", self.failed_batch, n(&self.failed))?
            }
        }
        if self.failed_batch < self.batches {
            write!(f, "; not sent: batches {}–{} ({})", self.failed_batch + 1, self.batches, n(&self.unsent))?;
        } else {
            write!(f, "; nothing left unsent")?;
        }
        write!(f, "; resume from batch {}", self.failed_batch)
    }
}

impl std::error::Error for ImportFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The error's text is already in the message; its own cause is the next in the chain.
        std::error::Error::source(&self.error)
    }
}

fn preview(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(20).map(String::as_str).collect();
    let more = ids.len().saturating_sub(shown.len());
    if more > 0 { format!("{} … and {more} more", shown.join(", ")) } else { shown.join(", ") }
}

pub(crate) fn local(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> WorkflowError {
    let path = path.into();
    move |source| WorkflowError::Local { path, source }
}
