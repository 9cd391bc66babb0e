//! Errors of building, casting and writing a dataset.

use std::path::PathBuf;

/// Why a dataset could not be built or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data dictionary is empty, so there is no record-id field.
    #[error("cannot tell the project's record-id field: the data dictionary is empty")]
    NoIdField,
    /// `--forms` named an instrument the project does not have.
    #[error("the project has no instrument `{0}`")]
    UnknownInstrument(String),
    /// `--events` named an event the project does not have.
    #[error("the project has no event `{0}`")]
    UnknownEvent(String),
    /// A sync of a dataset pulled with `--forms` or `--events` naming an instrument or event
    /// the project no longer has: the dataset cannot be brought up to date as it was asked
    /// for, so it is left as it is (see [`crate::sync::sync_layout`]).
    #[error(
        "the dataset was pulled with {flag} {name}, but the project no longer has {kind} `{name}`; \
         the dataset was left as it was"
    )]
    SelectionGone {
        /// `--forms` or `--events`.
        flag: &'static str,
        /// `instrument` or `event`.
        kind: &'static str,
        /// The name the pull was given.
        name: String,
    },
    /// Arrow refused a batch (a bug of this crate if it happens).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The Parquet writer failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A local file or directory.
    #[error("local file {path}: {source}")]
    Local {
        /// Which.
        path: PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// A file the dataset would publish is already there, and no pull wrote it (a user's own
    /// file of that name): it is never replaced, so the pull or sync stops before it.
    #[error("{} is already there and is not part of the dataset; nothing was replaced", path.display())]
    InTheWay {
        /// The file.
        path: PathBuf,
    },
    /// The dataset's directory is a file (or something else that is not a directory).
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A state or manifest file could not be read.
    #[error("{path}: {message}")]
    State {
        /// Which.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The test hook [`crate::CrashAt`] stopped a commit.
    #[error("stopped by the test hook")]
    Injected,
    /// An inconsistency of this crate.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

pub(crate) fn local(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Local { path, source }
}
