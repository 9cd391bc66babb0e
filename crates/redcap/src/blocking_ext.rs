//! Workflows for the blocking client.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use redcap_blocking::Client;
use redcap_core::{ImportOutcome, Row, Transport, TransportError, Upload};
use serde::de::DeserializeOwned;

use crate::workflow::files::{PushedEntry, local_path, resolve_doc_id, scan_local};
use crate::workflow::{
    self, BatchOptions, BatchPlan, ExportCheck, Manifest, ManifestEntry, Progress, ProgressEvent, PullOptions,
    PullPlan, PushOptions, PushPlan, RecordBatches, RemoteTree, ReportId, ReportOptions, TransferSummary, TreeWalk,
    WorkflowError, local,
};
use crate::{Target, file_repository, metadata, record};

/// The workflows, on the blocking client: `use redcap::blocking::Workflows;`.
pub trait Workflows {
    /// Walks the File Repository from `root` (`None`: the top level), one listing per folder.
    fn walk(&self, root: Option<u64>, progress: &dyn Progress) -> Result<RemoteTree, WorkflowError>;

    /// Mirrors `root` into `dir`: every file written atomically, a manifest so a re-run
    /// downloads only what is new, nothing local removed unless `options.delete`. A failure in
    /// one file is reported in the summary and the others go on.
    fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError>;

    /// Uploads `dir` into `root`: creates missing folders, uploads files not yet pushed (by the
    /// manifest, unless `options.force`), and records each upload's `doc_id`. Uploads are never
    /// retried, so a failed one is reported, not duplicated.
    fn push(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError>;

    /// Exports report `id` into typed rows.
    fn export_report<R: DeserializeOwned>(
        &self,
        id: ReportId,
        options: &ReportOptions,
    ) -> Result<Vec<R>, WorkflowError>;

    /// Streams report `id` as CSV into `sink`; returns the bytes written.
    fn export_report_csv(
        &self,
        id: ReportId,
        options: &ReportOptions,
        sink: &mut dyn Write,
    ) -> Result<u64, WorkflowError>;

    /// Exports records in batches of whole records (ids first, then batches), checking that
    /// every requested record came back. `template` carries fields, forms, events, filters.
    fn export_records_batched(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<Row>, WorkflowError>;

    /// Imports `rows` in batches of whole records, checking each batch's count. `template`
    /// carries the import options (overwrite behaviour, auto-numbering, date format).
    fn import_records_batched(
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

impl<T> Workflows for Client<T>
where
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + 'static,
    T::Body: std::io::Read,
{
    fn walk(&self, root: Option<u64>, progress: &dyn Progress) -> Result<RemoteTree, WorkflowError> {
        let mut walk = TreeWalk::new(root);
        while let Some((folder, path)) = walk.next_folder() {
            let entries = self.call(&list_request(folder))?;
            progress.event(ProgressEvent::FolderListed { path: path.clone() });
            walk.add_listing(folder, &path, entries);
        }
        Ok(walk.finish())
    }

    fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        std::fs::create_dir_all(dir).map_err(local(dir))?;
        let tree = self.walk(root, progress)?;
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
            match self.download_to(&file_repository::export::Request::new(item.doc_id), &Target::File(target)) {
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

    fn push(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        let (folders, files) = scan_local(dir).map_err(local(dir))?;
        let tree = self.walk(root, &workflow::NoProgress)?;
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
            let id = self.call(&req)?;
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
                None => self.call(&list_request(folder))?,
            };
            let upload = Upload::from_path(&source);
            let name = upload.file_name.clone();
            let mut req = file_repository::import::Request::new(upload);
            req.folder_id = folder;
            if let Err(e) = self.call(&req) {
                progress.event(ProgressEvent::Failed { item: file.path.clone(), error: e.to_string() });
                summary.failed.push((file.path.clone(), e.to_string()));
                listings.insert(folder, before);
                continue;
            }
            let after = self.call(&list_request(folder))?;
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

    fn export_report<R: DeserializeOwned>(
        &self,
        id: ReportId,
        options: &ReportOptions,
    ) -> Result<Vec<R>, WorkflowError> {
        let data = self.call(&options.request(id, redcap_core::Format::Json))?;
        Ok(data.rows_as()?)
    }

    fn export_report_csv(
        &self,
        id: ReportId,
        options: &ReportOptions,
        sink: &mut dyn Write,
    ) -> Result<u64, WorkflowError> {
        Ok(self.stream(&options.request(id, redcap_core::Format::Csv), sink)?.bytes)
    }

    fn export_records_batched(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<Row>, WorkflowError> {
        let id_field = workflow::id_field(&self.call(&metadata::export::Request::new())?.rows()?)?;
        let ids = self.call(&workflow::id_request(template, &id_field))?.rows()?;
        let batches = RecordBatches::from_id_rows(&ids, &id_field, options.batch_size);
        progress.event(ProgressEvent::Planned { items: batches.batches.len() as u64, bytes: None });
        let mut out = Vec::new();
        for (i, batch) in batches.batches.iter().enumerate() {
            if i > 0 && !options.pause.is_zero() {
                std::thread::sleep(options.pause);
            }
            let label = format!("batch {}/{}", i + 1, batches.batches.len());
            progress.event(ProgressEvent::Started { item: label.clone(), bytes: None });
            let rows = self.call(&workflow::batch_request(template, &id_field, batch))?.rows()?;
            let check = ExportCheck::new(batch, &rows, &id_field);
            if !check.is_complete() {
                return Err(WorkflowError::MissingRecords { missing: check.missing });
            }
            progress.event(ProgressEvent::Finished { item: label, bytes: rows.len() as u64 });
            out.extend(rows);
        }
        Ok(out)
    }

    fn import_records_batched(
        &self,
        rows: Vec<Row>,
        template: &record::import::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<u64, WorkflowError> {
        let id_field = workflow::id_field(&self.call(&metadata::export::Request::new())?.rows()?)?;
        let plan = BatchPlan::new(rows, &id_field, options.batch_size);
        progress.event(ProgressEvent::Planned { items: plan.batches.len() as u64, bytes: None });
        let mut total = 0;
        for (i, (rows, sent)) in plan.batches.iter().enumerate() {
            if i > 0 && !options.pause.is_zero() {
                std::thread::sleep(options.pause);
            }
            let label = format!("batch {}/{}", i + 1, plan.batches.len());
            progress.event(ProgressEvent::Started { item: label.clone(), bytes: None });
            let imported = match self.call(&workflow::import_request(template, rows))? {
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
