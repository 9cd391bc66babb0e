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
    /// What kind of failure this is: a failed call's own kind; a local file is
    /// [`ErrorKind::Local`]; an answer that does not decode is [`ErrorKind::Decode`]; REDCap's
    /// answers contradicting each other (missing records, another import count, an upload not
    /// in its folder, an empty data dictionary, a folder tree that loops) are [`ErrorKind::Server`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            WorkflowError::Call(e) => e.kind(),
            WorkflowError::Local { .. } => ErrorKind::Local,
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

fn preview(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(20).map(String::as_str).collect();
    let more = ids.len().saturating_sub(shown.len());
    if more > 0 { format!("{} … and {more} more", shown.join(", ")) } else { shown.join(", ") }
}

pub(crate) fn local(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> WorkflowError {
    let path = path.into();
    move |source| WorkflowError::Local { path, source }
}
