//! Workflows for the async client (the same plans as the blocking one; only the I/O awaits).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redcap_async::Client;
use redcap_core::{Bytes, ImportOutcome, Row, Transport, TransportError, Upload};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWrite;

use crate::workflow::files::{PushedEntry, local_path, resolve_doc_id, scan_local};
use crate::workflow::{
    self, BatchOptions, BatchPlan, ExportCheck, Manifest, ManifestEntry, Progress, ProgressEvent, PullOptions,
    PullPlan, PushOptions, PushPlan, RecordBatches, RemoteTree, ReportId, ReportOptions, TransferSummary, TreeWalk,
    WorkflowError, local,
};
use crate::{Target, file_repository, metadata, record};

/// The workflows, on the async client: `use redcap::asynchronous::Workflows;`.
#[allow(async_fn_in_trait)]
pub trait Workflows {
    /// Walks the File Repository from `root` (`None`: the top level), one listing per folder.
    async fn walk(&self, root: Option<u64>, progress: &dyn Progress) -> Result<RemoteTree, WorkflowError>;

    /// Mirrors `root` into `dir`: every file written atomically, a manifest so a re-run
    /// downloads only what is new, nothing local removed unless `options.delete`. A failure in
    /// one file is reported in the summary and the others go on.
    async fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError>;

    /// Uploads `dir` into `root`: creates missing folders, uploads files not yet pushed (by the
    /// manifest, unless `options.force`), and records each upload's `doc_id`. Uploads are never
    /// retried, so a failed one is reported, not duplicated.
    async fn push(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError>;

    /// Exports report `id` into typed rows.
    async fn export_report<R: DeserializeOwned>(
        &self,
        id: ReportId,
        options: &ReportOptions,
    ) -> Result<Vec<R>, WorkflowError>;

    /// Streams report `id` as CSV into `sink`; returns the bytes written.
    async fn export_report_csv<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        id: ReportId,
        options: &ReportOptions,
        sink: &mut W,
    ) -> Result<u64, WorkflowError>;

    /// Exports records in batches of whole records (ids first, then batches), checking that
    /// every requested record came back. `template` carries fields, forms, events, filters.
    async fn export_records_batched(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<Row>, WorkflowError>;

    /// Imports `rows` in batches of whole records, checking each batch's count. `template`
    /// carries the import options (overwrite behaviour, auto-numbering, date format).
    async fn import_records_batched(
        &self,
        rows: Vec<Row>,
        template: &record::import::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<u64, WorkflowError>;
}

fn list_request(folder: Option<u64>) -> file_repository::list::Request {
    let r = file_repository::list::Request::new();
    match folder {
        Some(id) => r.folder_id(id),
        None => r,
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
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
            walk.add_listing(folder, &path, entries?);
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
        std::fs::create_dir_all(dir).map_err(local(dir))?;
        let tree = self.walk(root, progress).await?;
        let mut manifest = Manifest::load(dir).map_err(local(dir))?;
        let plan = PullPlan::new(&tree, &manifest, |rel| {
            local_path(dir, rel).and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len())
        });
        for folder in &plan.folders {
            if let Some(p) = local_path(dir, folder) {
                std::fs::create_dir_all(&p).map_err(local(&p))?;
            }
        }
        let mut summary = TransferSummary { skipped: plan.skip.len() as u64, ..Default::default() };
        progress.event(ProgressEvent::Planned { items: plan.fetch.len() as u64, bytes: None });
        for path in &plan.skip {
            progress.event(ProgressEvent::Skipped { item: path.clone() });
        }
        for item in &plan.fetch {
            let Some(target) = local_path(dir, &item.path) else { continue };
            progress.event(ProgressEvent::Started { item: item.path.clone(), bytes: None });
            match self.download_to(&file_repository::export::Request::new(item.doc_id), &Target::File(target)).await {
                Ok(done) => {
                    manifest.pulled.insert(item.doc_id, ManifestEntry { path: item.path.clone(), bytes: done.bytes });
                    manifest.save(dir).map_err(local(dir))?;
                    summary.transferred += 1;
                    summary.bytes += done.bytes;
                    progress.event(ProgressEvent::Finished { item: item.path.clone(), bytes: done.bytes });
                }
                Err(e) => {
                    progress.event(ProgressEvent::Failed { item: item.path.clone(), error: e.to_string() });
                    summary.failed.push((item.path.clone(), e.to_string()));
                }
            }
        }
        if options.delete && !plan.gone.is_empty() {
            for path in &plan.gone {
                if let Some(p) = local_path(dir, path) {
                    match std::fs::remove_file(&p) {
                        Ok(()) => summary.removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(local(&p)(e)),
                    }
                }
            }
            let gone: std::collections::BTreeSet<&String> = plan.gone.iter().collect();
            manifest.pulled.retain(|_, m| !gone.contains(&m.path));
            manifest.save(dir).map_err(local(dir))?;
        }
        Ok(summary)
    }

    async fn push(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        let (folders, files) = scan_local(dir).map_err(local(dir))?;
        let tree = self.walk(root, &workflow::NoProgress).await?;
        let mut manifest = Manifest::load(dir).map_err(local(dir))?;
        let plan = PushPlan::new(&tree, &manifest, &folders, &files, options.force);
        let mut summary = TransferSummary { skipped: plan.skip.len() as u64, ..Default::default() };
        let mut ids: BTreeMap<String, Option<u64>> =
            plan.existing.iter().map(|(p, id)| (p.clone(), Some(*id))).collect();
        ids.insert(String::new(), root);
        for path in &plan.create {
            let name = path.rsplit('/').next().unwrap_or(path);
            let mut req = file_repository::create_folder::Request::new(name);
            req.folder_id = ids.get(parent_of(path)).copied().flatten();
            let id = self.call(&req).await?;
            ids.insert(path.clone(), Some(id));
            summary.folders_created += 1;
        }
        progress.event(ProgressEvent::Planned {
            items: plan.upload.len() as u64,
            bytes: Some(plan.upload.iter().map(|f| f.bytes).sum()),
        });
        let mut listings: BTreeMap<Option<u64>, Vec<redcap_core::FileRepositoryEntry>> = BTreeMap::new();
        for file in &plan.upload {
            let folder = ids.get(parent_of(&file.path)).copied().flatten();
            let Some(source) = local_path(dir, &file.path) else { continue };
            progress.event(ProgressEvent::Started { item: file.path.clone(), bytes: Some(file.bytes) });
            let before = match listings.remove(&folder) {
                Some(l) => l,
                None => self.call(&list_request(folder)).await?,
            };
            let upload = Upload::from_path(&source);
            let name = upload.file_name.clone();
            let mut req = file_repository::import::Request::new(upload);
            req.folder_id = folder;
            if let Err(e) = self.call(&req).await {
                progress.event(ProgressEvent::Failed { item: file.path.clone(), error: e.to_string() });
                summary.failed.push((file.path.clone(), e.to_string()));
                listings.insert(folder, before);
                continue;
            }
            let after = self.call(&list_request(folder)).await?;
            match resolve_doc_id(&before, &after, &name) {
                Some(doc_id) => {
                    manifest.pushed.insert(file.path.clone(), PushedEntry { doc_id, bytes: file.bytes });
                    manifest.save(dir).map_err(local(dir))?;
                    summary.transferred += 1;
                    summary.bytes += file.bytes;
                    summary.uploaded.push((file.path.clone(), doc_id));
                    progress.event(ProgressEvent::Finished { item: file.path.clone(), bytes: file.bytes });
                }
                None => {
                    let e = WorkflowError::Unresolved(file.path.clone());
                    progress.event(ProgressEvent::Failed { item: file.path.clone(), error: e.to_string() });
                    summary.failed.push((file.path.clone(), e.to_string()));
                }
            }
            listings.insert(folder, after);
        }
        Ok(summary)
    }

    async fn export_report<R: DeserializeOwned>(
        &self,
        id: ReportId,
        options: &ReportOptions,
    ) -> Result<Vec<R>, WorkflowError> {
        let data = self.call(&options.request(id, redcap_core::Format::Json)).await?;
        Ok(data.rows_as()?)
    }

    async fn export_report_csv<W: AsyncWrite + Unpin + ?Sized>(
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
        let id_field = workflow::id_field(&self.call(&metadata::export::Request::new()).await?.rows()?)?;
        let ids = self.call(&workflow::id_request(template, &id_field)).await?.rows()?;
        let batches = RecordBatches::from_id_rows(&ids, &id_field, options.batch_size);
        progress.event(ProgressEvent::Planned { items: batches.batches.len() as u64, bytes: None });
        let mut out = Vec::new();
        for (i, batch) in batches.batches.iter().enumerate() {
            if i > 0 && !options.pause.is_zero() {
                tokio::time::sleep(options.pause).await;
            }
            let label = format!("batch {}/{}", i + 1, batches.batches.len());
            progress.event(ProgressEvent::Started { item: label.clone(), bytes: None });
            let rows = self.call(&workflow::batch_request(template, &id_field, batch)).await?.rows()?;
            let check = ExportCheck::new(batch, &rows, &id_field);
            if !check.is_complete() {
                return Err(WorkflowError::MissingRecords { missing: check.missing });
            }
            progress.event(ProgressEvent::Finished { item: label, bytes: rows.len() as u64 });
            out.extend(rows);
        }
        Ok(out)
    }

    async fn import_records_batched(
        &self,
        rows: Vec<Row>,
        template: &record::import::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<u64, WorkflowError> {
        let id_field = workflow::id_field(&self.call(&metadata::export::Request::new()).await?.rows()?)?;
        let plan = BatchPlan::new(rows, &id_field, options.batch_size);
        progress.event(ProgressEvent::Planned { items: plan.batches.len() as u64, bytes: None });
        let mut total = 0;
        for (i, (rows, sent)) in plan.batches.iter().enumerate() {
            if i > 0 && !options.pause.is_zero() {
                tokio::time::sleep(options.pause).await;
            }
            let label = format!("batch {}/{}", i + 1, plan.batches.len());
            progress.event(ProgressEvent::Started { item: label.clone(), bytes: None });
            let imported = match self.call(&workflow::import_request(template, rows)).await? {
                ImportOutcome::Count(n) => n,
                other => {
                    return Err(WorkflowError::Call(redcap_core::Error::Decode(redcap_core::DecodeError::Unexpected {
                        expected: "a count",
                        excerpt: format!("{other:?}"),
                    })));
                }
            };
            if imported != *sent {
                return Err(WorkflowError::ImportCount { batch: i + 1, sent: *sent, imported });
            }
            total += imported;
            progress.event(ProgressEvent::Finished { item: label, bytes: imported });
        }
        Ok(total)
    }
}
