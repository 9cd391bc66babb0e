//! Typed, columnar datasets (feature `dataset`): the data dictionary decides every column's
//! type, and a pull writes one Parquet (or Arrow IPC, or CSV) table per instrument.
//!
//! ```no_run
//! # #[cfg(feature = "blocking")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use redcap::dataset::blocking::Datasets;
//! use redcap::dataset::{LayoutOptions, PullOptions};
//! use redcap::workflow::NoProgress;
//!
//! let client = redcap::blocking::Client::builder("https://redcap.example.edu/api/", std::env::var("REDCAP_API_TOKEN")?).build()?;
//! let options = PullOptions::default().batch_size(500).layout(LayoutOptions::default().labels(true));
//! let summary = client.pull_dataset("dataset".as_ref(), &options, &NoProgress)?;
//! println!("{} records; tables: {:?}", summary.manifest.records, summary.manifest.tables.keys());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "blocking"))] fn main() {}
//! ```
//!
//! Everything that decides is in [`redcap_dataset`] (re-exported here): the layout, the casting,
//! the checkpoints. The drivers for the two clients only make the calls.

pub use redcap_dataset::*;

#[cfg(feature = "async")]
pub mod asynchronous;
mod batch;
#[cfg(feature = "blocking")]
pub mod blocking;
mod drive;

pub use drive::SyncOptions;

use redcap_core::Row;

use crate::workflow::WorkflowError;
use crate::{Format, RecordType, record};

/// Why a dataset pull stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// A call, or a check of REDCap's answers (missing records), failed.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// The dataset could not be built or written.
    #[error(transparent)]
    Dataset(#[from] redcap_dataset::Error),
}

impl From<redcap_core::Error> for PullError {
    fn from(e: redcap_core::Error) -> Self {
        PullError::Workflow(e.into())
    }
}

impl From<redcap_core::DecodeError> for PullError {
    fn from(e: redcap_core::DecodeError) -> Self {
        PullError::Workflow(e.into())
    }
}

/// A part of the schema a project or token may not have: REDCap refuses it (no DAG right, a
/// classic project asked for events), so it is empty.
pub(crate) fn optional<T: Default>(r: Result<T, redcap_core::Error>) -> Result<T, redcap_core::Error> {
    match r {
        Err(e) if e.is_permission() || e.is_validation() || e.is_not_found() => Ok(T::default()),
        other => other,
    }
}

/// Which optional parts of the schema to ask for, from the project info.
pub(crate) struct SchemaParts {
    pub longitudinal: bool,
    pub repeating: bool,
}

impl SchemaParts {
    pub fn from_info(info: &Row) -> Self {
        let flag = |k: &str| info.get(k).is_some_and(|v| matches!(v.as_str(), Some("1")) || v.as_u64() == Some(1));
        SchemaParts { longitudinal: flag("is_longitudinal"), repeating: flag("has_repeating_instruments_or_events") }
    }
}

/// The id-only export that plans the pull: the options' records and events.
pub(crate) fn id_request(pull: &DatasetPull, options: &PullOptions) -> record::export::Request {
    id_request_for(pull.layout(), options)
}

/// The id-only export of the records a dataset of `layout` and `options` holds.
pub(crate) fn id_request_for(layout: &DatasetLayout, options: &PullOptions) -> record::export::Request {
    let mut template = record::export::Request::new();
    template.records = options.records.clone();
    template.events = options.layout.events.clone();
    crate::workflow::id_request(&template, &layout.id_field)
}

/// The record export of a dataset: flat raw JSON, the options' forms and events, the DAG
/// column when the project has DAGs (records not set).
pub(crate) fn batch_template(layout: &DatasetLayout, options: &PullOptions) -> record::export::Request {
    let mut template = record::export::Request::new();
    template.forms = options.layout.forms.clone();
    template.events = options.layout.events.clone();
    template.export_data_access_groups = layout.has_dags();
    template.format = Some(Format::Json);
    template.record_type = Some(RecordType::Flat);
    template
}

/// One batch's export: these records.
pub(crate) fn batch_request(pull: &DatasetPull, options: &PullOptions, ids: &[String]) -> record::export::Request {
    let template = batch_template(pull.layout(), options);
    let mut r = crate::workflow::batch_request(&template, &pull.layout().id_field, ids);
    r.format = Some(Format::Json);
    r.record_type = Some(RecordType::Flat);
    r
}
