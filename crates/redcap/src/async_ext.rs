//! Workflows for the async client: the calls only (awaited); sessions in `workflow` keep the books.

use std::future::Future;
use std::path::Path;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redcap_async::Client;
use redcap_core::{Bytes, Row, Transport, TransportError};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWrite;

use crate::workflow::{
    BatchOptions, ExportSession, ImportSession, Progress, ProgressEvent, PullOptions, PullSession, PushOptions,
    PushSession, RemoteTree, ReportId, ReportOptions, RowStream, TransferSummary, TreeWalk, WorkflowError,
    list_request, push_manifest,
};
use crate::{metadata, record};

/// The workflows, on the async client: `use redcap::asynchronous::Workflows;`. Every future
/// is `Send`, so a workflow can be `tokio::spawn`ed (move a clone of the client in).
pub trait Workflows {
    /// Walks the File Repository from `root` (`None`: the top level), one listing per folder.
    fn walk(
        &self,
        root: Option<u64>,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<RemoteTree, WorkflowError>> + Send;

    /// Mirrors `root` into `dir`: every file written atomically, a manifest so a re-run
    /// downloads only what is new, nothing local removed unless `options.delete`. A failure in
    /// one file is reported in the summary and the others go on.
    fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<TransferSummary, WorkflowError>> + Send;

    /// Uploads `dir` into `root`: creates missing folders, uploads files not yet pushed (by the
    /// manifest, unless `options.force`), and records each upload's `doc_id`. Uploads are never
    /// retried, so a failed one is reported, not duplicated.
    fn push(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<TransferSummary, WorkflowError>> + Send;

    /// Exports report `id` into typed rows (`T: Deserialize`, or [`Row`] for generic rows).
    fn export_report<R: DeserializeOwned + Send>(
        &self,
        id: ReportId,
        options: &ReportOptions,
    ) -> impl Future<Output = Result<Vec<R>, WorkflowError>> + Send;

    /// Streams report `id` as CSV into `sink`; returns the bytes written.
    fn export_report_csv<W: AsyncWrite + Unpin + Send + ?Sized>(
        &self,
        id: ReportId,
        options: &ReportOptions,
        sink: &mut W,
    ) -> impl Future<Output = Result<u64, WorkflowError>> + Send;

    /// Exports records in batches of whole records (ids first, then batches), checking that
    /// every requested record came back. `template` carries fields, forms, events, filters.
    fn export_records_batched(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<Vec<Row>, WorkflowError>> + Send;

    /// Exports records like [`Workflows::export_records_batched`], but decodes each answer
    /// while it streams and hands every row to `each`, in order: nothing is kept, so memory
    /// stays at one row plus the record ids. Records named in `template` that fit in one
    /// batch are exported with one call, without the id list. Returns the number of rows.
    fn export_records_each(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
        each: &mut (dyn FnMut(Row) -> Result<(), WorkflowError> + Send),
    ) -> impl Future<Output = Result<u64, WorkflowError>> + Send;

    /// Imports `rows` in batches of whole records, checking each batch's count. `template`
    /// carries the import options (overwrite behaviour, auto-numbering, date format).
    fn import_records_batched(
        &self,
        rows: Vec<Row>,
        template: &record::import::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<u64, WorkflowError>> + Send;
}

impl<T, S> Workflows for Client<T>
where
    T: for<'a> Transport<Body = S, Reply<'a>: Future<Output = Result<http::Response<S>, TransportError>>> + 'static,
    S: futures_util::Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    async fn walk(&self, root: Option<u64>, progress: &dyn Progress) -> Result<RemoteTree, WorkflowError> {
        let mut walk = TreeWalk::new(root);
        let mut running = FuturesUnordered::new();
        loop {
            // Keep up to the client's concurrency bound of listings in flight.
            while running.len() < self.concurrency() {
                let Some((folder, path)) = walk.next_folder() else { break };
                running.push(async move { (folder, path, self.call(&list_request(folder)).await) });
            }
            let Some((folder, path, entries)) = running.next().await else { break };
            progress.event(ProgressEvent::FolderListed { path: path.clone() });
            walk.add_listing(folder, &path, entries?)?;
        }
        Ok(walk.finish())
    }

    async fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        let tree = self.walk(root, progress).await?;
        let mut session = PullSession::start(dir, &tree, options, progress)?;
        let mut pending = session.downloads().into_iter();
        let jobs = options.jobs.max(1);
        let mut running = FuturesUnordered::new();
        loop {
            // Up to `jobs` downloads in flight (the client's concurrency bound applies too);
            // each syncs its own file, so the fsyncs overlap.
            while running.len() < jobs {
                let Some((item, request, target)) = pending.next() else { break };
                session.started(&item);
                running.push(async move {
                    let result = self.download_to(&request, &target).await.map(|d| d.bytes);
                    (item, result)
                });
            }
            let Some((item, result)) = running.next().await else { break };
            session.finished(&item, result)?;
        }
        session.finish(options)
    }

    async fn push(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        let tree = self.walk(root, &crate::workflow::NoProgress).await?;
        let manifest = push_manifest(options, self.url().as_str(), root, dir)?;
        let mut session = PushSession::start(dir, root, &tree, options, &manifest, progress)?;
        while let Some((path, request)) = session.next_folder() {
            let id = self.call(&request).await?;
            session.folder_created(path, id);
        }
        for upload in session.uploads() {
            let before = match session.cached_listing(&upload) {
                Some(listing) => listing,
                None => self.call(&list_request(upload.folder)).await?,
            };
            if let Err(e) = self.call(&upload.request).await {
                let after = match e.maybe_delivered() {
                    true => self.call(&list_request(upload.folder)).await.ok(),
                    false => None,
                };
                session.upload_failed(&upload, &e, before, after)?;
                continue;
            }
            let after = self.call(&list_request(upload.folder)).await?;
            session.uploaded(&upload, before, after)?;
        }
        session.finish()
    }

    async fn export_report<R: DeserializeOwned + Send>(
        &self,
        id: ReportId,
        options: &ReportOptions,
    ) -> Result<Vec<R>, WorkflowError> {
        Ok(self.call(&options.request(id, redcap_core::Format::Json)).await?.rows_as()?)
    }

    async fn export_report_csv<W: AsyncWrite + Unpin + Send + ?Sized>(
        &self,
        id: ReportId,
        options: &ReportOptions,
        sink: &mut W,
    ) -> Result<u64, WorkflowError> {
        Ok(self.stream(&options.request(id, redcap_core::Format::Csv), sink).await?.bytes)
    }

    async fn export_records_batched(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<Row>, WorkflowError> {
        let metadata = self.call(&metadata::export::Request::new()).await?;
        let (id_field, ids) = ExportSession::id_request(template, &metadata)?;
        let id_rows = self.call(&ids).await?.rows()?;
        let mut session = ExportSession::start(template, id_field, &id_rows, options, progress);
        while let Some((request, pause)) = session.next_batch() {
            tokio::time::sleep(pause).await;
            session.add(self.call(&request).await?.rows()?)?;
        }
        Ok(session.finish())
    }

    async fn export_records_each(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
        each: &mut (dyn FnMut(Row) -> Result<(), WorkflowError> + Send),
    ) -> Result<u64, WorkflowError> {
        if let Some(request) = ExportSession::single_request(template, options) {
            progress.event(ProgressEvent::Planned { items: 1, bytes: None });
            progress.event(ProgressEvent::Started { item: "batch 1/1".into(), bytes: None });
            let mut sink = RowStream::new("", each);
            let sent = self.stream(&request, &mut sink).await;
            if let Some(e) = sink.error.take() {
                return Err(e);
            }
            sent?;
            sink.finish()?;
            progress.event(ProgressEvent::Finished { item: "batch 1/1".into(), bytes: sink.rows });
            return Ok(sink.rows);
        }
        let metadata = self.call(&metadata::export::Request::new()).await?;
        let (id_field, ids_request) = ExportSession::id_request(template, &metadata)?;
        let mut ids = Vec::new();
        {
            let mut distinct = std::collections::HashSet::new();
            let mut keep = |row: Row| {
                if let Some(id) = crate::workflow::records::cell(&row, &id_field) {
                    if distinct.insert(id.clone()) {
                        ids.push(id);
                    }
                }
                Ok(())
            };
            let mut sink = RowStream::new(&id_field, &mut keep);
            let sent = self.stream(&ids_request, &mut sink).await;
            if let Some(e) = sink.error.take() {
                return Err(e);
            }
            sent?;
            sink.finish()?;
        }
        let mut session = ExportSession::start_with_ids(template, id_field.clone(), ids, options, progress);
        let mut total = 0;
        while let Some((request, pause)) = session.next_batch() {
            tokio::time::sleep(pause).await;
            let mut sink = RowStream::new(&id_field, &mut *each);
            let sent = self.stream(&request, &mut sink).await;
            if let Some(e) = sink.error.take() {
                return Err(e);
            }
            sent?;
            sink.finish()?;
            total += sink.rows;
            session.check_seen(&sink.seen, sink.rows)?;
        }
        Ok(total)
    }

    async fn import_records_batched(
        &self,
        rows: Vec<Row>,
        template: &record::import::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<u64, WorkflowError> {
        let metadata = self.call(&metadata::export::Request::new()).await?;
        let mut session = ImportSession::start(rows, template, &metadata, options, progress)?;
        while let Some((request, pause)) = session.next_batch() {
            tokio::time::sleep(pause).await;
            session.add(self.call(&request).await?)?;
        }
        Ok(session.finish())
    }
}
