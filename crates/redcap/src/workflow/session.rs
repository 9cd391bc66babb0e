//! The bookkeeping of running workflows, shared by both drivers: manifests, summaries, progress
//! events and checks. A driver asks a session what to call next and reports what happened;
//! only the calls themselves are per mode. Local file operations here are small and synchronous
//! in both modes (directories, the manifest).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redcap_core::exchange::Target;
use redcap_core::{FileRepositoryEntry, ImportOutcome, Row, Upload};

use super::files::{Change, ManifestStore, local_path, resolve_with_leftovers, scan_local};
use super::heal::{HealReport, Healer, Scope, Ticket, Verdict};
use super::{
    BatchOptions, BatchPlan, BatchSaved, ImportFailure, ImportOptions, LocalFile, Manifest, Progress, ProgressEvent,
    PullItem, PullOptions, PullPlan, PushOptions, PushPlan, RecordBatches, RemoteTree, TransferSummary, WorkflowError,
    local,
};
use crate::{file_repository, record};

/// How old a partial download must be before a later run removes it: a live download writes
/// to its partial file far more often than this.
pub const STALE_PARTIAL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Removes stale partial downloads (`.redcap-download-*` regular files not modified for
/// [`STALE_PARTIAL`]) that an interrupted run left in `dir`; returns how many. Only this
/// library's own prefix, only regular files (never a link), only old ones.
pub fn remove_stale_partials(dir: &Path) -> std::io::Result<u64> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        if !e.file_name().to_string_lossy().starts_with(redcap_core::exchange::PARTIAL_PREFIX) {
            continue;
        }
        let meta = e.metadata()?;
        let age = meta.modified().ok().and_then(|m| m.elapsed().ok());
        if meta.file_type().is_file() && age.is_some_and(|a| a >= STALE_PARTIAL) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// A pull in progress.
#[derive(Debug)]
pub struct PullSession<'p> {
    dir: PathBuf,
    store: ManifestStore,
    plan: PullPlan,
    /// Manifest entries by local path, to forget an old file's entry when a new one takes its
    /// path (REDCap's only way to update a file is delete and upload again).
    by_path: BTreeMap<String, Vec<u64>>,
    summary: TransferSummary,
    progress: &'p dyn Progress,
}

impl<'p> PullSession<'p> {
    /// Refuses a `dir` that exists and is not a directory: the clients check it before they
    /// list the File Repository, so a mistyped path costs no request.
    pub fn check_dir(dir: &Path) -> Result<(), WorkflowError> {
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => Err(WorkflowError::NotADirectory { path: dir.to_owned() }),
            _ => Ok(()),
        }
    }

    /// Plans the pull of `tree` into `dir`, creates the local folders and removes stale partial
    /// downloads an interrupted run left in them.
    pub fn start(
        dir: &Path,
        tree: &RemoteTree,
        options: &PullOptions,
        progress: &'p dyn Progress,
    ) -> Result<Self, WorkflowError> {
        Self::check_dir(dir)?;
        std::fs::create_dir_all(dir).map_err(local(dir))?;
        let manifest = Manifest::load(dir).map_err(local(dir))?;
        let plan = PullPlan::new(
            tree,
            &manifest,
            |rel| local_path(dir, rel).and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len()),
            options.overwrite,
        );
        let mut partials = remove_stale_partials(dir).map_err(local(dir))?;
        for folder in &plan.folders {
            if let Some(p) = local_path(dir, folder) {
                std::fs::create_dir_all(&p).map_err(local(&p))?;
                partials += remove_stale_partials(&p).map_err(local(&p))?;
            }
        }
        progress.event(ProgressEvent::Planned { items: plan.fetch.len() as u64, bytes: None });
        for path in &plan.skip {
            progress.event(ProgressEvent::Skipped { item: path.clone() });
        }
        let mut summary =
            TransferSummary { skipped: plan.skip.len() as u64, partials_removed: partials, ..Default::default() };
        for path in &plan.blocked {
            let error = format!(
                "a local file not written by a pull is at `{path}` and at its ` (doc_id N)` name: \
                 nothing was replaced (overwrite to replace it)"
            );
            progress.event(ProgressEvent::Failed { item: path.clone(), error: error.clone() });
            summary.failed.push((path.clone(), error));
        }
        let mut by_path: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (id, m) in &manifest.pulled {
            by_path.entry(m.path.clone()).or_default().push(*id);
        }
        let store = ManifestStore::new(dir.join(Manifest::FILE_NAME), manifest);
        Ok(PullSession { dir: dir.to_owned(), store, plan, by_path, summary, progress })
    }

    /// The downloads to make: the request and the target of each (a target that may replace
    /// a file only where the plan proved it may).
    pub fn downloads(&self) -> Vec<(PullItem, file_repository::export::Request, Target)> {
        self.plan
            .fetch
            .iter()
            .filter_map(|item| {
                let path = local_path(&self.dir, &item.path)?;
                let target = if item.replace { Target::File(path) } else { Target::NewFile(path) };
                Some((item.clone(), file_repository::export::Request::new(item.doc_id), target))
            })
            .collect()
    }

    /// Reports that a download starts.
    pub fn started(&self, item: &PullItem) {
        self.progress.event(ProgressEvent::Started { item: item.path.clone(), bytes: None });
    }

    /// Records a download's result (bytes written, or the error); a failure does not stop the
    /// pull.
    pub fn finished(&mut self, item: &PullItem, result: Result<u64, redcap_core::Error>) -> Result<(), WorkflowError> {
        match result {
            Ok(bytes) => {
                let manifest_path = self.store.path().to_owned();
                let record = |store: &mut ManifestStore, change| store.record(change).map_err(local(&manifest_path));
                let owners = self.by_path.entry(item.path.clone()).or_default();
                for old in owners.drain(..).filter(|id| *id != item.doc_id).collect::<Vec<_>>() {
                    record(&mut self.store, Change::Forget { doc_id: old })?;
                }
                owners.push(item.doc_id);
                record(&mut self.store, Change::Pulled { doc_id: item.doc_id, path: item.path.clone(), bytes })?;
                self.summary.transferred += 1;
                self.summary.bytes += bytes;
                self.progress.event(ProgressEvent::Finished { item: item.path.clone(), bytes });
            }
            Err(error) => {
                if error.kind() == redcap_core::ErrorKind::Local {
                    self.summary.failed_local += 1;
                }
                let error = error.to_string();
                self.progress.event(ProgressEvent::Failed { item: item.path.clone(), error: error.clone() });
                self.summary.failed.push((item.path.clone(), error));
            }
        }
        Ok(())
    }

    /// Removes local files gone remotely (only with `delete`), saves the manifest and returns
    /// the summary.
    pub fn finish(mut self, options: &PullOptions) -> Result<TransferSummary, WorkflowError> {
        let manifest_path = self.store.path().to_owned();
        if options.delete {
            for path in &self.plan.gone {
                if let Some(p) = local_path(&self.dir, path) {
                    match std::fs::remove_file(&p) {
                        Ok(()) => self.summary.removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(local(&p)(e)),
                    }
                }
            }
            for doc_id in &self.plan.forget {
                self.store.record(Change::Forget { doc_id: *doc_id }).map_err(local(&manifest_path))?;
            }
        }
        self.store.checkpoint().map_err(local(&manifest_path))?;
        Ok(self.summary)
    }
}

/// A push in progress.
#[derive(Debug)]
pub struct PushSession<'p> {
    dir: PathBuf,
    store: ManifestStore,
    plan: PushPlan,
    ids: BTreeMap<String, Option<u64>>,
    next_folder: usize,
    listings: BTreeMap<Option<u64>, Vec<FileRepositoryEntry>>,
    /// The uploads not yet started (planned at the first wave, once every folder exists).
    queue: Option<std::collections::VecDeque<PushUpload>>,
    summary: TransferSummary,
    progress: &'p dyn Progress,
}

/// A round of uploads that run at once (see [`PushSession::next_wave`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct PushWave {
    /// The uploads.
    pub uploads: Vec<PushUpload>,
    /// Folders to list before the uploads start (the session holds no listing of them yet).
    pub list_first: Vec<Option<u64>>,
}

/// A folder's listing taken after a round of uploads (or the error listing it gave).
pub type FolderListing = (Option<u64>, Result<Vec<FileRepositoryEntry>, redcap_core::Error>);

/// One upload of a push.
#[derive(Clone, Debug)]
pub struct PushUpload {
    /// The local file.
    pub file: LocalFile,
    /// The remote folder (`None`: top level).
    pub folder: Option<u64>,
    /// The request.
    pub request: file_repository::import::Request,
    name: String,
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

impl<'p> PushSession<'p> {
    /// Plans the push of `dir` into `root`, given the remote `tree` under `root`, keeping its
    /// manifest at `manifest` (see [`super::files::default_push_manifest`]). A manifest an
    /// older version kept inside `dir` is read once, never written.
    pub fn start(
        dir: &Path,
        root: Option<u64>,
        tree: &RemoteTree,
        options: &PushOptions,
        manifest: &Path,
        progress: &'p dyn Progress,
    ) -> Result<Self, WorkflowError> {
        let scan = scan_local(dir).map_err(local(dir))?;
        let mut loaded = Manifest::load_file(manifest).map_err(local(manifest))?;
        if loaded.pushed.is_empty() {
            if let Ok(legacy) = Manifest::load(dir) {
                loaded.pushed = legacy.pushed;
            }
        }
        if let Some(parent) = manifest.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(local(parent))?;
        }
        let plan = PushPlan::new(tree, &loaded, &scan.folders, &scan.files, options.force);
        let mut ids: BTreeMap<String, Option<u64>> =
            plan.existing.iter().map(|(p, id)| (p.clone(), Some(*id))).collect();
        ids.insert(String::new(), root);
        let mut summary = TransferSummary { skipped: plan.skip.len() as u64, ..Default::default() };
        for (path, why) in scan.unusable {
            progress.event(ProgressEvent::Failed { item: path.clone(), error: why.clone() });
            summary.failed.push((path, why));
        }
        Ok(PushSession {
            dir: dir.to_owned(),
            store: ManifestStore::new(manifest.to_owned(), loaded),
            plan,
            ids,
            next_folder: 0,
            listings: BTreeMap::new(),
            queue: None,
            summary,
            progress,
        })
    }

    /// The next folder to create (parents come first), as its local path and request.
    pub fn next_folder(&mut self) -> Option<(String, file_repository::create_folder::Request)> {
        let path = self.plan.create.get(self.next_folder)?.clone();
        self.next_folder += 1;
        let name = path.rsplit('/').next().unwrap_or(&path);
        let mut req = file_repository::create_folder::Request::new(name);
        req.folder_id = self.ids.get(parent_of(&path)).copied().flatten();
        Some((path, req))
    }

    /// Records a created folder.
    pub fn folder_created(&mut self, path: String, folder_id: u64) {
        self.ids.insert(path, Some(folder_id));
        self.summary.folders_created += 1;
    }

    /// The next round of uploads (call after all folders exist): up to `jobs` files, to be
    /// uploaded at once. The driver first lists the folders in [`PushWave::list_first`] (passing
    /// each listing to [`PushSession::listed`]), then runs the uploads, lists the folders
    /// [`PushSession::list_after`] names, and reports everything to
    /// [`PushSession::wave_finished`]. Uploads are never retried.
    pub fn next_wave(&mut self, jobs: usize) -> Option<PushWave> {
        if self.queue.is_none() {
            self.progress.event(ProgressEvent::Planned {
                items: self.plan.upload.len() as u64,
                bytes: Some(self.plan.upload.iter().map(|f| f.bytes).sum()),
            });
            let uploads: std::collections::VecDeque<PushUpload> = self
                .plan
                .upload
                .iter()
                .filter_map(|file| {
                    let source = local_path(&self.dir, &file.path)?;
                    let folder = self.ids.get(parent_of(&file.path)).copied().flatten();
                    let upload = Upload::from_path(source);
                    let name = upload.file_name.clone();
                    let mut request = file_repository::import::Request::new(upload);
                    request.folder_id = folder;
                    Some(PushUpload { file: file.clone(), folder, request, name })
                })
                .collect();
            self.queue = Some(uploads);
        }
        let queue = self.queue.as_mut()?;
        let n = jobs.max(1).min(queue.len());
        if n == 0 {
            return None;
        }
        let uploads: Vec<PushUpload> = queue.drain(..n).collect();
        let mut list_first: Vec<Option<u64>> = Vec::new();
        for u in &uploads {
            if !self.listings.contains_key(&u.folder) && !list_first.contains(&u.folder) {
                list_first.push(u.folder);
            }
            self.progress.event(ProgressEvent::Started { item: u.file.path.clone(), bytes: Some(u.file.bytes) });
        }
        Some(PushWave { uploads, list_first })
    }

    /// Takes a folder's listing from before a wave's uploads.
    pub fn listed(&mut self, folder: Option<u64>, listing: Vec<FileRepositoryEntry>) {
        self.listings.insert(folder, listing);
    }

    /// The folders to list after a wave's uploads: those an upload reached, or may have reached
    /// (its answer was lost). A definite failure needs no listing.
    pub fn list_after(uploads: &[PushUpload], results: &[Result<(), redcap_core::Error>]) -> Vec<Option<u64>> {
        let mut folders = Vec::new();
        for (u, r) in uploads.iter().zip(results) {
            let reached = r.as_ref().map_or_else(redcap_core::Error::maybe_delivered, |()| true);
            if reached && !folders.contains(&u.folder) {
                folders.push(u.folder);
            }
        }
        folders
    }

    /// Records a wave: each upload's result (in the wave's order) and the listings taken after
    /// it. A `doc_id` comes from the listings before and after ([`super::files::resolve_doc_ids`]); an upload
    /// whose answer was lost is recorded as uploaded if the listing shows it, and otherwise
    /// reported as safe to upload again only when nothing unexplained appeared in its folder.
    /// A failed listing after uploads that succeeded fails the push (their ids are unknown).
    pub fn wave_finished(
        &mut self,
        uploads: Vec<PushUpload>,
        results: Vec<Result<(), redcap_core::Error>>,
        after: Vec<FolderListing>,
    ) -> Result<(), WorkflowError> {
        let mut after: BTreeMap<Option<u64>, Result<Vec<FileRepositoryEntry>, redcap_core::Error>> =
            after.into_iter().collect();
        // Per upload: the doc_id found, and whether its folder's listing after is known.
        let mut doc_ids: Vec<Option<u64>> = vec![None; uploads.len()];
        let mut listed_after = vec![false; uploads.len()];
        let mut nothing_unexplained = vec![false; uploads.len()];
        let mut folders: Vec<Option<u64>> = uploads.iter().map(|u| u.folder).collect();
        folders.sort();
        folders.dedup();
        for folder in folders {
            let members: Vec<usize> = (0..uploads.len()).filter(|i| uploads[*i].folder == folder).collect();
            let before = self.listings.remove(&folder).unwrap_or_default();
            let listing = match after.remove(&folder) {
                Some(Ok(listing)) => listing,
                Some(Err(e)) => {
                    if members.iter().any(|i| results[*i].is_ok()) {
                        return Err(WorkflowError::Call(e));
                    }
                    self.listings.insert(folder, before);
                    continue;
                }
                None => {
                    self.listings.insert(folder, before);
                    continue;
                }
            };
            // Only uploads that reached the server, or may have, take an entry.
            let reached: Vec<usize> = members
                .iter()
                .copied()
                .filter(|i| results[*i].as_ref().map_or_else(redcap_core::Error::maybe_delivered, |()| true))
                .collect();
            let names: Vec<&str> = reached.iter().map(|i| uploads[*i].name.as_str()).collect();
            let (found, unexplained) = resolve_with_leftovers(&before, &listing, &names);
            for (i, id) in reached.iter().zip(found) {
                doc_ids[*i] = id;
            }
            for i in &members {
                listed_after[*i] = true;
                nothing_unexplained[*i] = unexplained == 0;
            }
            self.listings.insert(folder, listing);
        }
        for (i, (upload, result)) in uploads.iter().zip(results).enumerate() {
            match (result, doc_ids[i]) {
                (Ok(()), Some(doc_id)) | (Err(_), Some(doc_id)) => self.record_upload(upload, doc_id)?,
                (Ok(()), None) => {
                    let e = WorkflowError::Unresolved(upload.file.path.clone());
                    self.fail(upload, e.to_string());
                }
                (Err(error), None) => {
                    let message = match (error.maybe_delivered(), listed_after[i]) {
                        (true, true) if nothing_unexplained[i] => format!(
                            "{error}; the folder's listing shows the file did not arrive, so uploading it again is safe"
                        ),
                        (true, _) => format!(
                            "{error}; the answer was lost, so whether the file arrived is unknown: list the folder before \
                             uploading it again (REDCap would keep both copies)"
                        ),
                        (false, _) => error.to_string(),
                    };
                    self.fail(upload, message);
                }
            }
        }
        Ok(())
    }

    fn record_upload(&mut self, upload: &PushUpload, doc_id: u64) -> Result<(), WorkflowError> {
        let (path, bytes) = (upload.file.path.clone(), upload.file.bytes);
        let manifest_path = self.store.path().to_owned();
        self.store.record(Change::Pushed { path: path.clone(), doc_id, bytes }).map_err(local(&manifest_path))?;
        self.summary.transferred += 1;
        self.summary.bytes += bytes;
        self.summary.uploaded.push((path.clone(), doc_id));
        self.progress.event(ProgressEvent::Finished { item: path, bytes });
        Ok(())
    }

    fn fail(&mut self, upload: &PushUpload, message: String) {
        self.progress.event(ProgressEvent::Failed { item: upload.file.path.clone(), error: message.clone() });
        self.summary.failed.push((upload.file.path.clone(), message));
    }

    /// Saves the manifest and returns the summary.
    pub fn finish(mut self) -> Result<TransferSummary, WorkflowError> {
        let manifest_path = self.store.path().to_owned();
        self.store.checkpoint().map_err(local(&manifest_path))?;
        Ok(self.summary)
    }
}

/// A batched export in progress: the [`Healer`]'s plan, with pauses and progress events,
/// handing on rows of type `R` (see [`super::ExportRow`]).
#[derive(Debug)]
pub struct ExportSession<'p, R = Row> {
    healer: Healer<R>,
    id_field: String,
    pause: std::time::Duration,
    sent: u64,
    rows: u64,
    progress: &'p dyn Progress,
}

/// What a batched export did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportSummary {
    /// Rows handed on.
    pub rows: u64,
    /// How failing batches were healed (nothing when none failed).
    pub healing: HealReport,
}

impl ExportSummary {
    /// The summary of an export made with one call.
    pub(crate) fn single(rows: u64) -> Self {
        ExportSummary { rows, healing: HealReport { requests: 1, ..HealReport::default() } }
    }
}

/// A row sink that keeps each record id once, in first-seen order (the id-only export).
pub(crate) fn distinct_ids<'a>(
    id_field: &'a str,
    ids: &'a mut Vec<String>,
) -> impl FnMut(Row) -> Result<(), WorkflowError> + Send + 'a {
    let mut seen = std::collections::HashSet::new();
    move |row: Row| {
        if let Some(id) = super::records::cell(&row, id_field) {
            if seen.insert(id.clone()) {
                ids.push(id);
            }
        }
        Ok(())
    }
}

/// Passes on only [`ProgressEvent::Split`]: a driver that runs inside another's batches
/// (the dataset pull) reports its splits, not a second plan.
pub(crate) fn only_splits(progress: &dyn Progress) -> impl Progress + '_ {
    move |e: ProgressEvent| {
        if matches!(e, ProgressEvent::Split { .. }) {
            progress.event(e);
        }
    }
}

/// The requests made before a session starts, whatever rows it will hand on.
impl ExportSession<'_> {
    /// The id-only request to send first, given the project's metadata rows.
    pub fn id_request(
        template: &record::export::Request,
        metadata: &[crate::rows::Field],
    ) -> Result<(String, record::export::Request), WorkflowError> {
        let id_field = super::id_field(metadata)?;
        let req = super::id_request(template, &id_field);
        Ok((id_field, req))
    }

    /// The one request of an export that needs no id list: the caller named its records and
    /// they fit in one batch. Nothing can be cross-checked, so records that do not exist are
    /// simply absent, as in REDCap's own answer.
    pub fn single_request(
        template: &record::export::Request,
        options: &BatchOptions,
    ) -> Option<record::export::Request> {
        let distinct: std::collections::BTreeSet<&String> = template.records.iter().collect();
        if distinct.is_empty() || distinct.len() > options.batch_size.max(1) {
            return None;
        }
        let mut r = template.clone();
        r.format = Some(redcap_core::Format::Json);
        r.record_type = Some(redcap_core::RecordType::Flat);
        Some(r)
    }
}

impl<'p, R: super::ExportRow> ExportSession<'p, R> {
    /// Plans the batches of `ids` (distinct, in the server's order), exported with `template`
    /// (its fields, forms, events, filters) and checked against the data dictionary `metadata`.
    pub fn start(
        template: &record::export::Request,
        metadata: &[crate::rows::Field],
        id_field: String,
        ids: Vec<String>,
        options: &BatchOptions,
        progress: &'p dyn Progress,
    ) -> Self {
        let batches = RecordBatches::from_ids(ids, options.batch_size);
        progress.event(ProgressEvent::Planned { items: batches.batches.len() as u64, bytes: None });
        let scope = Scope::new(template, &id_field, metadata);
        ExportSession {
            healer: Healer::new(template, scope, batches.batches),
            id_field,
            pause: options.pause,
            sent: 0,
            rows: 0,
            progress,
        }
    }

    /// An export of every record `template` selects in one call, with no id list first (the
    /// id list is asked for only if the call fails; see [`Healer::whole`]), checked against
    /// the data dictionary `metadata`.
    pub fn whole(
        template: &record::export::Request,
        metadata: &[crate::rows::Field],
        options: &BatchOptions,
        progress: &'p dyn Progress,
    ) -> Result<Self, WorkflowError> {
        let id_field = super::id_field(metadata)?;
        progress.event(ProgressEvent::Planned { items: 1, bytes: None });
        let scope = Scope::new(template, &id_field, metadata);
        Ok(ExportSession {
            healer: Healer::whole(template, scope),
            id_field,
            pause: options.pause,
            sent: 0,
            rows: 0,
            progress,
        })
    }

    /// The record-id field the batches are checked by.
    pub fn id_field(&self) -> &str {
        &self.id_field
    }

    /// The next request, and how long to pause before sending it; `None` when nothing is
    /// waiting (requests in flight may still split into more).
    pub fn next_batch(&mut self) -> Option<(Ticket, record::export::Request, std::time::Duration)> {
        let (ticket, request, item) = self.healer.next_request()?;
        let pause = if self.sent > 0 { self.pause } else { std::time::Duration::ZERO };
        self.sent += 1;
        self.progress.event(ProgressEvent::Started { item, bytes: None });
        Some((ticket, request, pause))
    }

    /// Takes one row of the answer to `ticket`, as it is decoded, and hands `each` the rows
    /// whose turn has come (the healer holds back only the record being received).
    pub fn row(
        &mut self,
        ticket: Ticket,
        row: R,
        each: &mut (dyn FnMut(R) -> Result<(), WorkflowError> + '_),
    ) -> Result<(), WorkflowError> {
        self.healer.row(ticket, row)?;
        self.hand_on(each)
    }

    /// Takes how the answer to `ticket` ended (its rows having gone to [`ExportSession::row`])
    /// and hands `each` the rows whose turn has come. A failure a smaller request may survive
    /// is asked again for what it did not bring; others stop.
    pub fn end(
        &mut self,
        ticket: Ticket,
        outcome: Result<(), WorkflowError>,
        each: &mut (dyn FnMut(R) -> Result<(), WorkflowError> + '_),
    ) -> Result<(), WorkflowError> {
        match self.healer.end(ticket, outcome)? {
            Verdict::Kept { item, rows } => self.progress.event(ProgressEvent::Finished { item, bytes: rows }),
            Verdict::Split { item, reason, parts } => {
                self.progress.event(ProgressEvent::Split { item, reason, parts: parts as u64 })
            }
            // The failure that needed the list was reported when it happened.
            Verdict::Listed { .. } => {}
        }
        self.hand_on(each)
    }

    fn hand_on(&mut self, each: &mut (dyn FnMut(R) -> Result<(), WorkflowError> + '_)) -> Result<(), WorkflowError> {
        for row in self.healer.ready()? {
            self.rows += 1;
            each(row)?;
        }
        Ok(())
    }

    /// Rows taken and not yet handed on (see [`Healer::rows_held`]).
    pub fn rows_held(&self) -> usize {
        self.healer.rows_held()
    }

    /// Whether every batch is done.
    pub fn is_finished(&self) -> bool {
        self.healer.is_finished()
    }

    /// The summary, once [`ExportSession::is_finished`].
    pub fn finish(self) -> ExportSummary {
        ExportSummary { rows: self.rows, healing: self.healer.into_report() }
    }
}

/// A batched import in progress.
#[derive(Debug)]
pub struct ImportSession<'p> {
    options: ImportOptions,
    plan: BatchPlan,
    /// The records of each batch.
    records: Vec<Vec<String>>,
    first: usize,
    next: usize,
    pause: std::time::Duration,
    total: u64,
    progress: &'p dyn Progress,
}

impl<'p> ImportSession<'p> {
    /// Plans batches of whole records, given the project's metadata rows; with
    /// [`BatchOptions::resume_from`], the batches before it are skipped.
    pub fn start(
        rows: Vec<Row>,
        import: &ImportOptions,
        metadata: &[crate::rows::Field],
        options: &BatchOptions,
        progress: &'p dyn Progress,
    ) -> Result<Self, WorkflowError> {
        let id_field = super::id_field(metadata)?;
        let plan = BatchPlan::new(rows, &id_field, options.batch_size);
        let records = plan
            .batches
            .iter()
            .map(|(rows, _)| {
                let mut seen = std::collections::HashSet::new();
                let ids = rows.iter().filter_map(|r| super::records::cell(r, &id_field));
                ids.filter(|id| seen.insert(id.clone())).collect()
            })
            .collect();
        // A batch past the end would make the run a silent success that sends nothing.
        if options.resume_from > plan.batches.len().max(1) {
            return Err(WorkflowError::ResumePastEnd { resume_from: options.resume_from, batches: plan.batches.len() });
        }
        let first = options.resume_from.saturating_sub(1).min(plan.batches.len());
        progress.event(ProgressEvent::Planned { items: (plan.batches.len() - first) as u64, bytes: None });
        Ok(ImportSession {
            options: import.clone(),
            plan,
            records,
            first,
            next: first,
            pause: options.pause,
            total: 0,
            progress,
        })
    }

    /// The next batch's request, and how long to pause before sending it.
    pub fn next_batch(&mut self) -> Option<(record::import::Request, std::time::Duration)> {
        let (rows, _) = self.plan.batches.get(self.next)?;
        let pause = if self.next > self.first { self.pause } else { std::time::Duration::ZERO };
        self.next += 1;
        self.progress.event(ProgressEvent::Started { item: self.label(), bytes: None });
        Some((super::import_request(&self.options, rows), pause))
    }

    fn label(&self) -> String {
        format!("batch {}/{}", self.next, self.plan.batches.len())
    }

    /// Checks the last batch's answer (a count matching the records sent); a failure says
    /// what was saved, what failed and what was not sent ([`WorkflowError::Import`]). Batches
    /// are never sent twice: a batch whose answer was lost may have been saved.
    pub fn add(&mut self, answer: Result<ImportOutcome, redcap_core::Error>) -> Result<(), WorkflowError> {
        let sent = self.plan.batches[self.next - 1].1;
        let outcome = match answer {
            Ok(ImportOutcome::Count(n)) if n == sent => n,
            Ok(ImportOutcome::Count(imported)) => {
                let e = WorkflowError::ImportCount { batch: self.next, sent, imported };
                return Err(self.failure(e, BatchSaved::Counted(imported)));
            }
            Ok(other) => {
                let e = WorkflowError::Decode(redcap_core::DecodeError::Unexpected {
                    expected: "a count",
                    excerpt: format!("{other:?}"),
                });
                // REDCap answered, so it saved the batch or refused it; it did not say which.
                return Err(self.failure(e, BatchSaved::Unknown));
            }
            Err(e) => {
                let saved = if e.maybe_delivered() { BatchSaved::Unknown } else { BatchSaved::No };
                return Err(self.failure(WorkflowError::Call(e), saved));
            }
        };
        self.total += outcome;
        self.progress.event(ProgressEvent::Finished { item: self.label(), bytes: outcome });
        Ok(())
    }

    fn failure(&self, error: WorkflowError, failed_saved: BatchSaved) -> WorkflowError {
        let at = self.next - 1;
        self.progress.event(ProgressEvent::Failed { item: self.label(), error: error.to_string() });
        let lines =
            error.call().and_then(redcap_core::Error::api).map(|a| a.import_lines().to_vec()).unwrap_or_default();
        let flat = |r: &[Vec<String>]| r.iter().flatten().cloned().collect::<Vec<_>>();
        WorkflowError::Import(Box::new(ImportFailure {
            batches: self.plan.batches.len(),
            first: self.first + 1,
            failed_batch: at + 1,
            saved: flat(&self.records[self.first..at]),
            failed: self.records[at].clone(),
            failed_saved,
            lines,
            unsent: flat(&self.records[at + 1..]),
            error,
        }))
    }

    /// Records imported in all.
    pub fn finish(self) -> u64 {
        self.total
    }
}
