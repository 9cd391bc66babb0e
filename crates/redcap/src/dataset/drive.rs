//! The driving sequence of `pull` and `sync`, written once: which call comes next and what its
//! answer does. The blocking and async clients only perform the [`Call`]s.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use redcap_core::Row;

use super::{DatasetPull, ProjectSchema, PullError, PullOptions, PullSummary};
use crate::dataset::sync::{self, LogLine, RebuildReason, SyncPlan, SyncSummary};
use crate::dataset::{DatasetSync, Manifest, Records, SyncExport, dataset_records};
use crate::workflow::{BatchOptions, Progress, ProgressEvent, WorkflowError};
use crate::{log, record};

/// Options of a sync.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncOptions {
    /// Minutes of logging re-read before the watermark (REDCap's log has minute resolution and
    /// the server's clock may lag; re-reading is harmless).
    pub overlap_minutes: i64,
    /// Records per export call (`None`: the dataset's own batch size).
    pub batch_size: Option<usize>,
    /// Longest window of one logging export, in minutes: a long history is read in windows,
    /// halved when one fails ([`crate::workflow::log_windows`]).
    pub log_window_minutes: u32,
    /// Export calls of changed records in flight at once (at least 1, the default; see
    /// [`BatchOptions::parallel`]).
    pub parallel: usize,
    /// Test hook: stop the commit at this step as a crash would.
    #[doc(hidden)]
    pub crash_at: Option<usize>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            overlap_minutes: sync::DEFAULT_OVERLAP_MINUTES,
            batch_size: None,
            log_window_minutes: crate::workflow::log_windows::DEFAULT_WINDOW_MINUTES,
            parallel: 1,
            crash_at: None,
        }
    }
}

impl SyncOptions {
    /// Sets the overlap, in minutes.
    pub fn overlap_minutes(mut self, minutes: i64) -> Self {
        self.overlap_minutes = minutes.max(0);
        self
    }
    /// Sets the records per export call.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n.max(1));
        self
    }
    /// Sets the longest logging window, in minutes (at least 1).
    pub fn log_window_minutes(mut self, minutes: u32) -> Self {
        self.log_window_minutes = minutes.max(1);
        self
    }
    /// Sets how many export calls of changed records may be in flight at once (at least 1).
    pub fn parallel(mut self, n: usize) -> Self {
        self.parallel = n.max(1);
        self
    }
    /// Test hook: stop the commit after `steps` steps.
    #[doc(hidden)]
    pub fn crash_at(mut self, steps: Option<usize>) -> Self {
        self.crash_at = steps;
        self
    }
}

/// A call the driver needs made.
#[derive(Debug)]
pub(crate) enum Call {
    /// Export Logging in windows of at most this many minutes; REDCap may refuse it (no
    /// Logging right): answer `None`.
    Log(log::export::Request, u32),
    /// An id-only record export: answer its ids ([`Driver::answer_ids`]).
    Ids(record::export::Request),
    /// One batch of a pull, by its number in the plan: exactly its records
    /// ([`Driver::batch_request`]), healed by splitting if the server cannot answer it whole (the
    /// dictionary and id field are the driver's `metadata`/`id_field`). A client that started
    /// its export ahead ([`Driver::following_batches`]) does not build its request again.
    Batch(usize),
    /// A batched export of whole records through the library's batched export.
    Fetch(record::export::Request, BatchOptions),
    /// Records for the tables a sync rebuilds: like a [`Call::Batch`], but every answer must
    /// hold this scope's columns (the rebuilt instruments'), not the pull's.
    Rebuild(record::export::Request, crate::workflow::heal::Scope),
}

enum Stage {
    Pull(DatasetPull),
    /// Sync: waiting for the log, then the ids.
    /// (`log`: `Some(None)` when REDCap refused the log.)
    Plan {
        manifest: Manifest,
        log: Option<Option<Vec<LogLine>>>,
    },
    Update(DatasetSync),
    Done,
}

/// A batch's export: the request (its records are the batch) and what it gave.
pub(crate) type Exported = (record::export::Request, Result<Records, crate::workflow::WorkflowError>);

/// The batches a client is exporting ahead of the one due, in order, each by its number in the
/// plan with what stands for its export (a thread, a future, an answer): the window of
/// [`Driver::following_batches`].
pub(crate) struct Ahead<H>(std::collections::VecDeque<(usize, H)>);

impl<H> Ahead<H> {
    pub fn new() -> Self {
        Ahead(std::collections::VecDeque::new())
    }

    /// Keeps the export of batch number `batch`, started ahead.
    pub fn push(&mut self, batch: usize, export: H) {
        self.0.push_back((batch, export));
    }

    /// The export of batch number `batch`, if it is the first started ahead; otherwise none,
    /// and every one started ahead is dropped (they are of other batches). A failed export is
    /// reported here, when its batch is due: the batches before it are checkpoints by then.
    pub fn take(&mut self, batch: usize) -> Option<H> {
        match self.0.pop_front() {
            Some((started, export)) if started == batch => Some(export),
            _ => {
                self.0.clear();
                None
            }
        }
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The exports kept, in order (the async client polls them in place).
    #[cfg(feature = "async")]
    pub fn exports_mut(&mut self) -> impl Iterator<Item = &mut H> {
        self.0.iter_mut().map(|(_, h)| h)
    }
}

/// A pull or sync in progress.
pub(crate) struct Driver<'p> {
    dir: PathBuf,
    schema: Option<ProjectSchema>,
    stage: Stage,
    pull_options: PullOptions,
    sync: Option<SyncOptions>,
    pending: Option<&'static str>,
    asked_log: bool,
    floor: String,
    watermark: Option<String>,
    rebuilt: Option<RebuildReason>,
    rebuilt_tables: Vec<String>,
    seen: HashSet<String>,
    metadata: Vec<crate::rows::Field>,
    id_field: String,
    progress: &'p dyn Progress,
    prefetched: Option<Result<Vec<Row>, WorkflowError>>,
}

/// A pull's watermark read, made while the project's schema is read rather than after it
/// ([`Driver::watermark_call`]): the log is not a record export, so it still comes before
/// every one, and a pull waits one round trip less (REDCap's log export is slow on a busy
/// project).
pub(crate) struct Prefetched {
    /// The floor its request began at.
    pub floor: String,
    /// Its rows, or why it failed.
    pub answer: Result<Vec<Row>, WorkflowError>,
}

/// What a driver ends with.
pub(crate) enum Outcome {
    Pull(PullSummary),
    Sync(SyncSummary),
}

impl<'p> Driver<'p> {
    fn new(dir: &Path, options: PullOptions, sync: Option<SyncOptions>, progress: &'p dyn Progress) -> Self {
        Driver {
            dir: dir.to_owned(),
            schema: None,
            stage: Stage::Done,
            pull_options: options,
            sync,
            pending: None,
            asked_log: false,
            floor: sync::watermark_floor(std::time::SystemTime::now()),
            watermark: None,
            rebuilt: None,
            rebuilt_tables: Vec::new(),
            seen: HashSet::new(),
            metadata: Vec::new(),
            id_field: String::new(),
            progress,
            prefetched: None,
        }
    }

    /// The watermark read a pull with `options` makes first, to be made while the schema is
    /// read: its floor, the log read and its window in minutes (as [`Call::Log`]). `None` for
    /// a resumed pull, which may have its watermark already (it then asks for the read
    /// itself, if it needs one).
    pub fn watermark_call(options: &PullOptions) -> Option<(String, log::export::Request, u32)> {
        if options.resume {
            return None;
        }
        let floor = sync::watermark_floor(std::time::SystemTime::now());
        let mut r = log::export::Request::new();
        r.begin_time = Some(floor.clone());
        Some((floor, r, crate::workflow::log_windows::DEFAULT_WINDOW_MINUTES))
    }

    /// A pull of the project described by `schema` into `dir`, with the answer of its
    /// [`Driver::watermark_call`] if it was made.
    pub fn pull(
        dir: &Path,
        schema: ProjectSchema,
        options: &PullOptions,
        progress: &'p dyn Progress,
        prefetched: Option<Prefetched>,
    ) -> Result<Self, PullError> {
        let mut d = Driver::new(dir, options.clone(), None, progress);
        if let Some(p) = prefetched {
            // The watermark is never before the floor the read began at.
            d.floor = p.floor;
            d.prefetched = Some(p.answer);
        }
        d.metadata = schema.metadata.clone();
        let pull = DatasetPull::start(dir, schema, options)?;
        d.id_field = pull.layout().id_field.clone();
        d.stage = Stage::Pull(pull);
        Ok(d)
    }

    /// A sync of the dataset in `dir` with the project described by `schema`.
    pub fn sync(
        dir: &Path,
        schema: ProjectSchema,
        options: &SyncOptions,
        progress: &'p dyn Progress,
    ) -> Result<Self, PullError> {
        crate::dataset::commit::recover(dir)?;
        let manifest = Manifest::load(dir)?;
        let mut pull_options = manifest.options.clone().crash_at(options.crash_at).parallel(options.parallel);
        if let Some(n) = options.batch_size {
            pull_options = pull_options.batch_size(n);
        }
        let mut d = Driver::new(dir, pull_options, Some(options.clone()), progress);
        d.metadata = schema.metadata.clone();
        // Before the log or a record is read: an instrument or event of the pull that the
        // project dropped stops the sync here.
        d.id_field = sync::sync_layout(&schema, &manifest.options.layout)?.id_field;
        d.schema = Some(schema);
        d.stage = Stage::Plan { manifest, log: None };
        Ok(d)
    }

    fn log_call(&self, begin: Option<String>) -> Call {
        let mut r = log::export::Request::new();
        r.begin_time = begin;
        let window =
            self.sync.as_ref().map_or(crate::workflow::log_windows::DEFAULT_WINDOW_MINUTES, |s| s.log_window_minutes);
        Call::Log(r, window)
    }

    /// The dictionary (a healed batch splits a record by instrument with it).
    pub fn metadata(&self) -> &[crate::rows::Field] {
        &self.metadata
    }

    /// What every batch's answer must hold: the record id and the columns of the pulled forms
    /// ([`super::batch::judge`]).
    pub fn batch_scope(&self) -> crate::workflow::heal::Scope {
        let mut template = record::export::Request::new();
        template.forms = self.pull_options.layout.forms.clone();
        crate::workflow::heal::Scope::new(&template, &self.id_field, &self.metadata)
    }

    /// The record-id field.
    pub fn id_field(&self) -> &str {
        &self.id_field
    }

    /// The next call, or `None` when [`Driver::finish`] is due.
    pub fn next(&mut self) -> Result<Option<Call>, PullError> {
        let call = match &mut self.stage {
            Stage::Pull(pull) => {
                if pull.needs_watermark() && !self.asked_log {
                    self.asked_log = true;
                    self.pending = Some("watermark");
                    match self.prefetched.take() {
                        Some(answer) => {
                            self.answer_log(answer)?;
                            return self.next();
                        }
                        None => Some(self.log_call(Some(self.floor.clone()))),
                    }
                } else if pull.needs_ids() {
                    self.pending = Some("ids");
                    Some(Call::Ids(super::id_request(pull, &self.pull_options)))
                } else if pull.next_batch().is_some() {
                    if self.pending != Some("batch") {
                        let left = (pull.batches() - pull.done()) as u64;
                        self.progress.event(ProgressEvent::Planned { items: left, bytes: None });
                    }
                    self.pending = Some("batch");
                    let label = format!("batch {}/{}", pull.done() + 1, pull.batches());
                    self.progress.event(ProgressEvent::Started { item: label, bytes: None });
                    Some(Call::Batch(pull.done()))
                } else {
                    None
                }
            }
            Stage::Plan { manifest, log } => {
                if log.is_none() {
                    // From the watermark minus the overlap, and never after the floor: the same
                    // read gives the next watermark.
                    let overlap = self.sync.as_ref().map_or(0, |s| s.overlap_minutes);
                    let begin = manifest
                        .watermark
                        .as_deref()
                        .and_then(|w| sync::log_begin(w, overlap))
                        .map(|b| if b < self.floor { b } else { self.floor.clone() });
                    self.pending = Some("log");
                    Some(self.log_call(begin))
                } else {
                    let layout = crate::dataset::DatasetLayout::new(
                        self.schema.as_ref().expect("a sync has its schema"),
                        &manifest.options.layout,
                    )?;
                    self.pending = Some("ids");
                    Some(Call::Ids(super::id_request_for(&layout, &self.pull_options)))
                }
            }
            Stage::Update(update) => {
                let parallel = self.sync.as_ref().map_or(1, |s| s.parallel);
                let batch = self.pull_options.batch_size;
                let mut template = super::batch_template(update.layout(), &self.pull_options);
                // The changed records, whole; then, after a dictionary change, every record for
                // the tables rebuilt (only their instruments when the record id is not one).
                // `parallel` calls' worth at a time, each answer cast before the next is asked.
                match update.next_export(batch * parallel, batch) {
                    Some(SyncExport::Changed(records)) => {
                        self.pending = Some("fetch");
                        template.records = records;
                    }
                    Some(SyncExport::Rebuilt(records)) => {
                        // CSV, like a pull's batches (many records: all of them).
                        self.pending = Some("rebuild");
                        if let Some(forms) = update.rebuild_forms() {
                            template.fields = vec![self.id_field.clone()];
                            template.forms = forms;
                        }
                        let scope = crate::workflow::heal::Scope::new(&template, &self.id_field, &self.metadata);
                        let request = crate::workflow::batch_request(&template, &self.id_field, &records);
                        return Ok(Some(Call::Rebuild(request, scope)));
                    }
                    None => return Ok(None),
                }
                let options = BatchOptions::default().batch_size(batch).parallel(parallel);
                Some(Call::Fetch(template, options))
            }
            Stage::Done => None,
        };
        Ok(call)
    }

    /// The batches to start exporting now, after the [`Call::Batch`] just made (a pull only):
    /// those after the ones in `ahead` (already started, in order), so that `window` batches
    /// after it are being exported. A client asks for [`Driver::window`] of them while it casts
    /// and writes the batch due: the server always has as many to answer, never fewer while a
    /// group of them is cast.
    /// Each comes with its number in the plan.
    pub fn following_batches<H>(&self, ahead: &Ahead<H>, window: usize) -> Vec<(usize, record::export::Request)> {
        match (&self.stage, self.pending) {
            (Stage::Pull(pull), Some("batch")) => (pull.done() + 1 + ahead.len()..=pull.done() + window)
                .map_while(|n| pull.batch(n).map(|ids| (n, super::batch_request(pull, &self.pull_options, ids))))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The export of batch number `batch` of a pull's plan ([`Call::Batch`]); its ids are
    /// copied once, into the request.
    pub fn batch_request(&self, batch: usize) -> Result<record::export::Request, PullError> {
        match &self.stage {
            Stage::Pull(pull) => pull.batch(batch).map(|ids| super::batch_request(pull, &self.pull_options, ids)),
            _ => None,
        }
        .ok_or(PullError::Dataset(crate::dataset::Error::Internal("a batch the plan does not have")))
    }

    /// How many batches a pull exports ahead of the one it casts ([`PullOptions::parallel`]).
    pub fn window(&self) -> usize {
        self.pull_options.parallel.max(1)
    }

    /// The answer of a [`Call::Log`]: its rows, or why it failed. A refusal (the token may not
    /// read the log) is an answer too; any other failure ends the pull or sync.
    pub fn answer_log(&mut self, answer: Result<Vec<Row>, WorkflowError>) -> Result<(), PullError> {
        let rows = match answer {
            Ok(rows) => Some(rows),
            Err(e) if log_refused(&e) => None,
            Err(e) => return Err(e.into()),
        };
        let lines: Option<Vec<LogLine>> = rows.map(|r| r.iter().map(LogLine::from_row).collect());
        // The watermark is taken before any record is exported.
        self.watermark = lines.as_ref().map(|l| sync::watermark(l, &self.floor));
        match &mut self.stage {
            Stage::Pull(pull) => {
                if let Some(w) = &self.watermark {
                    pull.set_watermark(w.clone())?;
                }
            }
            Stage::Plan { log, .. } => *log = Some(lines),
            _ => return Err(PullError::Dataset(crate::dataset::Error::Internal("an unexpected log answer"))),
        }
        Ok(())
    }

    /// The answer of a [`Call::Ids`]: the record ids in the server's order (a pull's plan and a
    /// sync keep each once).
    pub fn answer_ids(&mut self, ids: Vec<String>) -> Result<(), PullError> {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        self.stage = match (stage, self.pending) {
            (Stage::Pull(mut pull), Some("ids")) => {
                pull.plan(ids)?;
                Stage::Pull(pull)
            }
            (Stage::Plan { manifest, log }, Some("ids")) => {
                self.planned(manifest, log.flatten(), crate::dataset::distinct_ids(ids))?
            }
            _ => return Err(PullError::Dataset(crate::dataset::Error::Internal("an unexpected id list"))),
        };
        Ok(())
    }

    /// The answer of a [`Call::Batch`] or [`Call::Rebuild`]: its records.
    pub fn answer_batch(&mut self, records: Records) -> Result<(), PullError> {
        match (&mut self.stage, self.pending) {
            (Stage::Update(update), Some("rebuild")) => Ok(update.add_rebuilt_records(&records)?),
            (Stage::Pull(pull), Some("batch")) => {
                // The batch's export checked that every requested record came back.
                let label = format!("batch {}/{}", pull.done() + 1, pull.batches());
                pull.add_records(&records)?;
                self.progress.event(ProgressEvent::Finished { item: label, bytes: records.len() as u64 });
                Ok(())
            }
            _ => Err(PullError::Dataset(crate::dataset::Error::Internal("an unexpected batch"))),
        }
    }

    /// The answer of a [`Call::Fetch`]: its rows.
    pub fn answer_rows(&mut self, rows: Vec<Row>) -> Result<(), PullError> {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        self.stage = match (stage, self.pending) {
            (Stage::Update(mut update), Some("fetch")) => {
                let id_field = update.layout().id_field.clone();
                self.seen.extend(rows.iter().filter_map(|r| crate::workflow::records::cell(r, &id_field)));
                update.add_rows(&rows)?;
                Stage::Update(update)
            }
            _ => return Err(PullError::Dataset(crate::dataset::Error::Internal("an unexpected answer"))),
        };
        Ok(())
    }

    fn planned(&mut self, manifest: Manifest, log: Option<Vec<LogLine>>, ids: Vec<String>) -> Result<Stage, PullError> {
        let schema = self.schema.take().expect("a sync has its schema");
        let layout = crate::dataset::DatasetLayout::new(&schema, &manifest.options.layout)?;
        let held = dataset_records(&self.dir);
        let fingerprints: Vec<(String, String)> =
            layout.tables.iter().map(|t| (t.name.clone(), t.fingerprint.clone())).collect();
        let now = sync::ProjectNow {
            schema_hash: &layout.schema_hash,
            redcap_version: &schema.redcap_version,
            ids: Some(&ids),
            fingerprints: Some(&fingerprints),
        };
        let plan = match &log {
            Some(log) => sync::plan_sync(&manifest, held.as_deref(), log, now),
            None => SyncPlan::Rebuild {
                reason: RebuildReason::NoLogging,
                tables: manifest.tables.keys().cloned().collect(),
            },
        };
        match plan {
            SyncPlan::Rebuild { reason, tables } => {
                self.rebuilt = Some(reason);
                self.rebuilt_tables = tables;
                let mut pull = DatasetPull::start(&self.dir, schema, &self.pull_options)?;
                if let Some(w) = &self.watermark {
                    pull.set_watermark(w.clone())?;
                }
                // The id list just read plans the pull: no second id export.
                pull.plan(ids)?;
                Ok(Stage::Pull(pull))
            }
            plan @ SyncPlan::Update { .. } => {
                let crash = crate::dataset::CrashAt(self.pull_options.crash_at.0);
                Ok(Stage::Update(DatasetSync::start(&self.dir, schema, manifest, plan, crash)?))
            }
        }
    }

    /// Writes and commits the dataset.
    pub fn finish(self) -> Result<Outcome, PullError> {
        let now = super::now_utc();
        match self.stage {
            Stage::Pull(pull) => {
                let summary = pull.finish(now)?;
                match self.sync {
                    None => Ok(Outcome::Pull(summary)),
                    Some(_) => Ok(Outcome::Sync(SyncSummary::rebuilt(
                        summary.manifest,
                        self.rebuilt.unwrap_or(RebuildReason::NoWatermark),
                        self.rebuilt_tables,
                    ))),
                }
            }
            Stage::Update(update) => {
                let watermark = self.watermark.unwrap_or_else(|| self.floor.clone());
                Ok(Outcome::Sync(update.finish(now, watermark, &self.seen)?))
            }
            _ => Err(PullError::Dataset(crate::dataset::Error::Internal("finish before the calls are done"))),
        }
    }
}

/// Whether a refused call means "this token may not read the log" (the sync then rebuilds).
fn log_refused(e: &crate::workflow::WorkflowError) -> bool {
    matches!(e, crate::workflow::WorkflowError::Call(e) if e.is_permission() || e.is_validation() || e.is_not_found())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::NoProgress;

    fn schema() -> ProjectSchema {
        let mut s = ProjectSchema::default();
        s.metadata = serde_json::from_str(
            r#"[{"field_name":"record_id","form_name":"f","field_type":"text","field_label":"Id"},
                {"field_name":"age","form_name":"f","field_type":"text","field_label":"Age"}]"#,
        )
        .unwrap();
        s.instruments = serde_json::from_str(r#"[{"instrument_name":"f","instrument_label":"F"}]"#).unwrap();
        s
    }

    /// The calls of a pull up to its first batch, seven records in batches of two.
    fn at_first_batch(dir: &Path) -> (Driver<'static>, usize) {
        let options = PullOptions::default().batch_size(2);
        let mut d = Driver::pull(dir, schema(), &options, &NoProgress, None).unwrap();
        loop {
            match d.next().unwrap().expect("a call before the batches") {
                Call::Log(..) => d.answer_log(Ok(Vec::new())).unwrap(),
                Call::Ids(_) => d.answer_ids(["1", "2", "3", "4", "5", "6", "7"].map(String::from).into()).unwrap(),
                Call::Batch(n) => return (d, n),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn a_watermark_read_made_with_the_schema_is_used_and_not_asked_for_again() {
        let dir = tempfile::tempdir().unwrap();
        let options = PullOptions::default().batch_size(2);
        let (floor, r, _) = Driver::watermark_call(&options).expect("a fresh pull reads the log first");
        assert_eq!(r.begin_time.as_deref(), Some(floor.as_str()));
        let rows: Vec<Row> = serde_json::from_str(r#"[{"timestamp":"2099-05-06 07:08","action":"x"}]"#).unwrap();
        let prefetched = Prefetched { floor: "2000-01-01 00:00".into(), answer: Ok(rows) };
        let mut d = Driver::pull(dir.path(), schema(), &options, &NoProgress, Some(prefetched)).unwrap();
        // The first call is the id list: the log was read already, and gave the watermark.
        assert!(matches!(d.next().unwrap(), Some(Call::Ids(_))));
        assert_eq!(d.watermark.as_deref(), Some("2099-05-06 07:08"));
        // With no log line after it, the watermark is the floor the read began at.
        let dir = tempfile::tempdir().unwrap();
        let prefetched = Prefetched { floor: "2000-01-01 00:00".into(), answer: Ok(Vec::new()) };
        let mut d = Driver::pull(dir.path(), schema(), &options, &NoProgress, Some(prefetched)).unwrap();
        assert!(matches!(d.next().unwrap(), Some(Call::Ids(_))));
        assert_eq!(d.watermark.as_deref(), Some("2000-01-01 00:00"));
        // A failure that is not a refusal ends the pull, as the read's own call would.
        let dir = tempfile::tempdir().unwrap();
        let failed = WorkflowError::MissingRecords { missing: vec!["1".into()] };
        let prefetched = Prefetched { floor: "2000-01-01 00:00".into(), answer: Err(failed) };
        let mut d = Driver::pull(dir.path(), schema(), &options, &NoProgress, Some(prefetched)).unwrap();
        assert!(d.next().is_err());
        // A resumed pull may hold its watermark: it is not read ahead.
        assert!(Driver::watermark_call(&options.clone().resume(true)).is_none());
    }

    #[test]
    fn batches_ahead_are_numbered_and_their_requests_are_the_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, first) = at_first_batch(dir.path());
        assert_eq!(first, 0);
        assert_eq!(d.batch_request(0).unwrap().records, ["1", "2"]);
        let mut ahead: Ahead<&str> = Ahead::new();
        let following = d.following_batches(&ahead, 2);
        let numbered: Vec<(usize, Vec<String>)> = following.into_iter().map(|(n, r)| (n, r.records)).collect();
        assert_eq!(numbered, [(1, vec!["3".to_owned(), "4".to_owned()]), (2, vec!["5".to_owned(), "6".to_owned()])]);
        ahead.push(1, "export of 1");
        ahead.push(2, "export of 2");
        // Those already started are not started again: only the one after them.
        let more: Vec<usize> = d.following_batches(&ahead, 3).into_iter().map(|(n, _)| n).collect();
        assert_eq!(more, [3]);
        assert_eq!(d.batch_request(3).unwrap().records, ["7"]);
        assert!(d.batch_request(4).is_err(), "the plan has four batches");

        // The first batch is answered; the next call is batch 1, whose export was started ahead.
        d.answer_batch(Records::from_rows(
            &serde_json::from_str::<Vec<Row>>(r#"[{"record_id":"1","age":"30"},{"record_id":"2","age":""}]"#).unwrap(),
        ))
        .unwrap();
        let Some(Call::Batch(n)) = d.next().unwrap() else { panic!("batch 1 is due") };
        assert_eq!(n, 1);
        assert_eq!(ahead.take(n), Some("export of 1"));
        // An export started ahead for another batch than the one due is never used for it.
        assert_eq!(ahead.take(3), None);
        assert_eq!(ahead.len(), 0, "a mismatch drops every export started ahead");
    }
}
