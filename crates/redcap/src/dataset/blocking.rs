//! The dataset pull on the blocking client: the calls only.

use std::path::Path;

use redcap_blocking::Client;
use redcap_core::{Transport, TransportError};

use super::{DatasetPull, ProjectSchema, PullError, PullOptions, PullSummary, SchemaParts, optional};
use crate::workflow::{Progress, ProgressEvent};
use crate::{arm, dag, event, instrument, metadata, project, repeating, version};

/// Datasets on the blocking client: `use redcap::dataset::blocking::Datasets;`.
pub trait Datasets {
    /// Gathers what decides the shape of the project's data (see [`ProjectSchema`]).
    fn project_schema(&self) -> Result<ProjectSchema, PullError>;

    /// Pulls the project into `dir` as a typed dataset: one table per instrument,
    /// `_dictionary`, `_problems` and `_manifest.json`, in batches of whole records.
    fn pull_dataset(
        &self,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<PullSummary, PullError>;
}

impl<T> Datasets for Client<T>
where
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + 'static,
    T::Body: std::io::Read,
{
    fn project_schema(&self) -> Result<ProjectSchema, PullError> {
        let mut s = ProjectSchema::default();
        s.redcap_version =
            optional(self.call(&version::export::Request::new()).map(|v| Some(v.to_string())))?.unwrap_or_default();
        s.project_info =
            self.call(&project::export_info::Request::new())?.raw().rows()?.into_iter().next().unwrap_or_default();
        let parts = SchemaParts::from_info(&s.project_info);
        s.metadata = self.call(&metadata::export::Request::new())?.into_vec();
        s.export_field_names = self.call(&metadata::export_field_names::Request::new())?.raw().rows()?;
        s.instruments = self.call(&instrument::export::Request::new())?.raw().rows()?;
        if parts.longitudinal {
            s.events = self.call(&event::export::Request::new())?.raw().rows()?;
            s.arms = self.call(&arm::export::Request::new())?.raw().rows()?;
            s.mappings = self.call(&instrument::export_event_mappings::Request::new())?.raw().rows()?;
        }
        if parts.repeating {
            s.repeating = optional(self.call(&repeating::export::Request::new()).map(Some))?
                .map(|r| r.raw().rows())
                .transpose()?
                .unwrap_or_default();
        }
        s.dags = optional(self.call(&dag::export::Request::new()).map(Some))?
            .map(|r| r.raw().rows())
            .transpose()?
            .unwrap_or_default();
        Ok(s)
    }

    fn pull_dataset(
        &self,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<PullSummary, PullError> {
        let schema = self.project_schema()?;
        let metadata = schema.metadata.clone();
        let mut pull = DatasetPull::start(dir, schema, options)?;
        let id_field = pull.layout().id_field.clone();
        if pull.needs_ids() {
            let rows = self.call(&super::id_request(&pull, options))?.rows()?;
            pull.plan(super::ids(&rows, &id_field))?;
        }
        progress.event(ProgressEvent::Planned { items: (pull.batches() - pull.done()) as u64, bytes: None });
        while let Some(ids) = pull.next_batch().map(<[String]>::to_vec) {
            let label = format!("batch {}/{}", pull.done() + 1, pull.batches());
            progress.event(ProgressEvent::Started { item: label.clone(), bytes: None });
            // A batch the server cannot answer is split until it can (issue 11).
            let request = super::batch_request(&pull, options, &ids);
            let (rows, _) = crate::blocking_ext::export_healed(self, &request, &metadata, &id_field, ids, progress)?;
            pull.add_batch(&rows)?;
            progress.event(ProgressEvent::Finished { item: label, bytes: rows.len() as u64 });
        }
        Ok(pull.finish(super::now_utc())?)
    }
}
