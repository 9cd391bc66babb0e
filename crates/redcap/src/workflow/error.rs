//! Workflow errors: a failed call, or a check a workflow makes on REDCap's answers.

use std::path::PathBuf;

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
    /// The project's record-id field could not be found.
    #[error("cannot tell the project's record-id field: the data dictionary is empty")]
    NoIdField,
    /// A local file or directory.
    #[error("local file {path}: {source}")]
    Local {
        /// Which.
        path: PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// A data body did not decode into rows.
    #[error("could not read REDCap's answer: {0}")]
    Decode(#[from] redcap_core::DecodeError),
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
