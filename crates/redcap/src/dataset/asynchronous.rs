//! The dataset pull on the async client: the calls only (awaited).

use std::future::Future;
use std::path::Path;

use redcap_async::Client;
use redcap_core::{Bytes, Transport, TransportError};

use super::{DatasetPull, ProjectSchema, PullError, PullOptions, PullSummary, SchemaParts, optional};
use crate::workflow::{Progress, ProgressEvent};
use crate::{arm, dag, event, instrument, metadata, project, repeating, version};

/// Datasets on the async client: `use redcap::dataset::asynchronous::Datasets;`. The futures
/// are `Send`. Files are written with blocking calls between the exports (one batch's parts at a
/// time), as the other workflows do with their manifests.
pub trait Datasets {
    /// Gathers what decides the shape of the project's data (see [`ProjectSchema`]).
    fn project_schema(&self) -> impl Future<Output = Result<ProjectSchema, PullError>> + Send;

    /// Pulls the project into `dir` as a typed dataset: one table per instrument,
    /// `_dictionary`, `_problems` and `_manifest.json`, in batches of whole records.
    fn pull_dataset(
        &self,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<PullSummary, PullError>> + Send;
}

impl<T, S> Datasets for Client<T>
where
    T: for<'a> Transport<Body = S, Reply<'a>: Future<Output = Result<http::Response<S>, TransportError>>> + 'static,
    S: futures_util::Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    async fn project_schema(&self) -> Result<ProjectSchema, PullError> {
        let mut s = ProjectSchema::default();
        s.redcap_version = optional(self.call(&version::export::Request::new()).await.map(|v| Some(v.to_string())))?
            .unwrap_or_default();
        s.project_info = self
            .call(&project::export_info::Request::new())
            .await?
            .raw()
            .rows()?
            .into_iter()
            .next()
            .unwrap_or_default();
        let parts = SchemaParts::from_info(&s.project_info);
        s.metadata = self.call(&metadata::export::Request::new()).await?.into_vec();
        s.export_field_names = self.call(&metadata::export_field_names::Request::new()).await?.raw().rows()?;
        s.instruments = self.call(&instrument::export::Request::new()).await?.raw().rows()?;
        if parts.longitudinal {
            s.events = self.call(&event::export::Request::new()).await?.raw().rows()?;
            s.arms = self.call(&arm::export::Request::new()).await?.raw().rows()?;
            s.mappings = self.call(&instrument::export_event_mappings::Request::new()).await?.raw().rows()?;
        }
        if parts.repeating {
            s.repeating = optional(self.call(&repeating::export::Request::new()).await.map(Some))?
                .map(|r| r.raw().rows())
                .transpose()?
                .unwrap_or_default();
        }
        s.dags = optional(self.call(&dag::export::Request::new()).await.map(Some))?
            .map(|r| r.raw().rows())
            .transpose()?
            .unwrap_or_default();
        Ok(s)
    }

    async fn pull_dataset(
        &self,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<PullSummary, PullError> {
        let schema = self.project_schema().await?;
        let metadata = schema.metadata.clone();
        let mut pull = DatasetPull::start(dir, schema, options)?;
        let id_field = pull.layout().id_field.clone();
        if pull.needs_ids() {
            let rows = self.call(&super::id_request(&pull, options)).await?.rows()?;
            pull.plan(super::ids(&rows, &id_field))?;
        }
        progress.event(ProgressEvent::Planned { items: (pull.batches() - pull.done()) as u64, bytes: None });
        while let Some(ids) = pull.next_batch().map(<[String]>::to_vec) {
            let label = format!("batch {}/{}", pull.done() + 1, pull.batches());
            progress.event(ProgressEvent::Started { item: label.clone(), bytes: None });
            // A batch the server cannot answer is split until it can (issue 11).
            let request = super::batch_request(&pull, options, &ids);
            let (rows, _) =
                crate::async_ext::export_healed(self, &request, &metadata, &id_field, ids, progress).await?;
            pull.add_batch(&rows)?;
            progress.event(ProgressEvent::Finished { item: label, bytes: rows.len() as u64 });
        }
        Ok(pull.finish(super::now_utc())?)
    }
}
