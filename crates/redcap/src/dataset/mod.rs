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

/// What a successful call of method `M` returned, or why it failed.
pub(crate) type Answer<M> = Result<<M as redcap_core::Method>::Output, redcap_core::Error>;

/// The answers to the schema's calls after the project info. Each client makes those calls
/// its own way, all at once; this decodes them into the schema, in one place for both.
pub(crate) struct SchemaAnswers {
    pub version: Answer<crate::version::export::Request>,
    pub metadata: Answer<crate::metadata::export::Request>,
    pub field_names: Answer<crate::metadata::export_field_names::Request>,
    pub instruments: Answer<crate::instrument::export::Request>,
    /// `None`: not asked (the project is not longitudinal, or does not repeat).
    pub events: Option<Answer<crate::event::export::Request>>,
    pub arms: Option<Answer<crate::arm::export::Request>>,
    pub mappings: Option<Answer<crate::instrument::export_event_mappings::Request>>,
    pub repeating: Option<Answer<crate::repeating::export::Request>>,
    pub dags: Answer<crate::dag::export::Request>,
}

impl SchemaAnswers {
    /// Fills `s` from the answers, in the order the parts were once asked one after the
    /// other, so a failure is the error a caller saw then. The version, the repeating setup
    /// and the DAGs may be refused (an older server, a user without the right): empty then.
    pub fn fill(self, s: &mut ProjectSchema) -> Result<(), PullError> {
        fn rows<T>(answer: Option<Result<redcap_core::Rows<T>, redcap_core::Error>>) -> Result<Vec<Row>, PullError> {
            Ok(answer.transpose()?.map(|r| r.raw().rows()).transpose()?.unwrap_or_default())
        }
        fn refusable<T>(
            answer: Option<Result<redcap_core::Rows<T>, redcap_core::Error>>,
        ) -> Result<Vec<Row>, PullError> {
            rows(answer.map(|a| optional(a.map(Some)).transpose()).and_then(|a| a))
        }
        s.redcap_version = optional(self.version.map(|v| Some(v.to_string())))?.unwrap_or_default();
        s.metadata = self.metadata?.into_vec();
        s.export_field_names = rows(Some(self.field_names))?;
        s.instruments = rows(Some(self.instruments))?;
        s.events = rows(self.events)?;
        s.arms = rows(self.arms)?;
        s.mappings = rows(self.mappings)?;
        s.repeating = refusable(self.repeating)?;
        s.dags = refusable(Some(self.dags))?;
        Ok(())
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
