//! The bookkeeping of a pull: which records to export next, each batch cast and kept as a
//! checkpoint, and at the end the dataset's files written and renamed into place. The client
//! (`redcap::dataset`) only makes the calls this asks for.
//!
//! Each exported batch is cast at once, kept as one Arrow IPC part per table (appended to
//! `DIR/.redcap-pull/parts.arrows`) and appended to the final files (which a resumed pull
//! replays the parts into). So
//! memory is bounded by the batch (and one Parquet row group), an interrupted pull resumes after
//! its last complete batch (`resume`), and a final path never holds a half-written file.
//!
//! The working folder's bookkeeping costs in proportion to the records, not to records ×
//! batches: `state.json` (what the pull is: schema hash, options, watermark) and `plan.json`
//! (the batches' record ids) are written once, and each finished batch appends one line to
//! `done.jsonl` after its parts are written, with their checksums. A torn last line (a crash
//! while appending), or a part that is missing or does not match its checksum (a power cut
//! before the page cache reached the disk: neither parts nor lines are synced, which would cost
//! an fsync per table and batch), is not a checkpoint: that batch is exported again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use redcap_core::Row;
use serde::{Deserialize, Serialize};

use crate::commit::{self, CrashAt, Generation};
use crate::error::local;
use crate::records::Records;
use crate::write::{OutputFormat, Part, PartsFile, TableWriter, atomic_write};
use crate::{CastBatch, DatasetLayout, Error, LayoutOptions, ProjectSchema, names, problems_batch, problems_schema};

/// The folder of a pull in progress, inside the dataset's directory.
pub const PARTIAL_DIR: &str = ".redcap-pull";
const STATE: &str = "state.json";
const PLAN: &str = "plan.json";
const DONE: &str = "done.jsonl";
const PARTS: &str = "parts.arrows";

/// Options of a pull.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PullOptions {
    /// File format of the tables.
    pub format: OutputFormat,
    /// Instruments, events, label columns.
    pub layout: LayoutOptions,
    /// Only these records (empty: all).
    pub records: Vec<String>,
    /// Records per export call.
    pub batch_size: usize,
    /// Continue an interrupted pull of the same project, schema and options (otherwise the pull
    /// starts over).
    #[serde(skip)]
    pub resume: bool,
    /// Batch exports in flight at once (at least 1; 1: one batch is exported while the one
    /// before it is written). The default, 2: while each batch is written, the next two are
    /// being exported: a server answers two requests side by side (REDCap's web server does,
    /// and so does the emulator), so a pull waits less for its next batch. How a pull runs,
    /// not what it pulls: not kept.
    #[serde(skip, default = "default_parallel")]
    pub parallel: usize,
    /// Test hook: stop the commit at this step as a crash would.
    #[serde(skip)]
    #[doc(hidden)]
    pub crash_at: CrashAt,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            format: OutputFormat::Parquet,
            layout: LayoutOptions::default(),
            records: Vec::new(),
            batch_size: 500,
            resume: false,
            parallel: default_parallel(),
            crash_at: CrashAt::default(),
        }
    }
}

/// [`PullOptions::parallel`]'s default, also what a state read back holds (it is not kept).
fn default_parallel() -> usize {
    2
}

impl PullOptions {
    /// Sets the format.
    pub fn format(mut self, format: OutputFormat) -> Self {
        self.format = format;
        self
    }
    /// Sets the layout options.
    pub fn layout(mut self, layout: LayoutOptions) -> Self {
        self.layout = layout;
        self
    }
    /// Only these records.
    pub fn records(mut self, records: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.records = records.into_iter().map(Into::into).collect();
        self
    }
    /// Records per export call (at least 1).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
    /// Sets how many batch exports may be in flight at once (1–16; see
    /// [`PullOptions::parallel`]).
    pub fn parallel(mut self, n: usize) -> Self {
        self.parallel = n.clamp(1, 16);
        self
    }
    /// Resume an interrupted pull.
    pub fn resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }
    /// Test hook: stop the commit after `steps` steps, as a crash would.
    #[doc(hidden)]
    pub fn crash_at(mut self, steps: Option<usize>) -> Self {
        self.crash_at = CrashAt(steps);
        self
    }
}

/// One batch done: a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Checkpoint {
    /// 1-based batch number.
    pub batch: usize,
    /// Records in it.
    pub records: usize,
    /// Its first and last record ids.
    pub first: String,
    /// Its last record id.
    pub last: String,
    /// Rows it added per table (problems included, as `_problems`).
    pub rows: BTreeMap<String, u64>,
    /// Where each table's rows are kept while the pull runs (not in a manifest): a checkpoint
    /// is trusted only if every part is there as written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, Part>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    schema_hash: String,
    options: PullOptions,
    /// In `plan.json`, written once.
    #[serde(skip)]
    batches: Option<Vec<Vec<String>>>,
    /// In `done.jsonl`, a line per batch.
    #[serde(skip)]
    done: Vec<Checkpoint>,
    /// The logging watermark taken before the first export (a resumed pull keeps the older,
    /// safer one).
    #[serde(default)]
    watermark: Option<String>,
}

/// A table in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TableEntry {
    /// File name in the dataset's directory.
    pub file: String,
    /// Rows.
    pub rows: u64,
}

/// `_manifest.json`: what a pull wrote, from what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// This manifest's format (1).
    pub manifest_version: u32,
    /// The project schema's hash ([`ProjectSchema::hash`]).
    pub schema_hash: String,
    /// The project id.
    pub project_id: Option<String>,
    /// The project title.
    pub project_title: String,
    /// REDCap's version.
    pub redcap_version: String,
    /// When the pull finished (RFC 3339, UTC).
    pub pulled_at: String,
    /// The options.
    pub options: PullOptions,
    /// Records pulled.
    pub records: u64,
    /// The tables: instruments, then `_dictionary` and `_problems`.
    pub tables: BTreeMap<String, TableEntry>,
    /// The batches, as checkpoints.
    pub batches: Vec<Checkpoint>,
    /// The server-local time (`YYYY-MM-DD HH:MM`) from which REDCap's logging may hold changes
    /// this dataset does not have: `dataset sync` reads the log from here (minus an overlap).
    /// `None`: unknown (sync rebuilds in full).
    #[serde(default)]
    pub watermark: Option<String>,
    /// Each instrument table's fingerprint ([`crate::TableLayout::fingerprint`]); empty in a
    /// manifest written before fingerprints (a dictionary change then rebuilds every table).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fingerprints: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads `DIR/_manifest.json`.
    pub fn load(dir: &Path) -> Result<Manifest, Error> {
        let path = dir.join(names::MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(local(&path))?;
        serde_json::from_str(&text).map_err(|e| Error::State { path, message: e.to_string() })
    }
}

/// What a pull did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullSummary {
    /// The manifest written.
    pub manifest: Manifest,
    /// Batches taken over from an interrupted pull.
    pub resumed_batches: usize,
}

/// A pull in progress.
#[derive(Debug)]
pub struct DatasetPull {
    dir: PathBuf,
    partial: PathBuf,
    schema: ProjectSchema,
    layout: DatasetLayout,
    state: State,
    resumed: usize,
    crash: CrashAt,
    /// The dataset's files, written as the batches come ([`Live`]).
    live: Option<Live>,
    /// The checkpoint parts, appended after those of the trusted checkpoints.
    parts: PartsFile,
}

/// Record ids from an id list (a row per event and instance): each non-empty id once, where it
/// first came. The set borrows the ids: no second copy of a big project's list.
pub fn distinct_ids(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let keep: Vec<bool> = ids.iter().map(|id| !id.is_empty() && seen.insert(id.as_str())).collect();
    drop(seen);
    ids.into_iter().zip(keep).filter_map(|(id, keep)| keep.then_some(id)).collect()
}

/// Bytes of unwritten Parquet row groups all tables of a pull may hold together before they
/// are flushed: memory stays at about a batch whatever the project's size (at a 64 Ki-row
/// row group per table it grew with the project up to that, 67 MiB against 27 MiB from 10k to
/// 100k records; the dictionary encoder's tables were slower at that size too). Row groups
/// come out at a few thousand rows (5,000 at 100k records × 30 fields, 5% more bytes).
const LIVE_BUDGET: usize = 1 << 20;

/// The generation being written while the pull runs: each batch's tables are appended to the
/// final files as soon as the batch is checkpointed, so the encoding (Parquet's is most of a
/// pull's CPU) overlaps the exports instead of following them, and `finish` only closes the
/// files. The parts stay the checkpoints: a resumed pull replays them into a new generation.
#[derive(Debug)]
struct Live {
    generation: Generation,
    /// The layout's tables, then the problems table.
    tables: Vec<GenerationTable>,
}

impl DatasetPull {
    /// Plans the pull of the project described by `schema` into `dir`. With `options.resume`, a
    /// pull interrupted with the same schema hash and options continues; otherwise any
    /// leftover of one is removed.
    pub fn start(dir: &Path, schema: ProjectSchema, options: &PullOptions) -> Result<DatasetPull, Error> {
        let layout = DatasetLayout::new(&schema, &options.layout)?;
        // Before anything is written: a directory that is a file, or a user's own file where a
        // table goes, stops the pull here rather than after every record was exported.
        let ext = options.format.extension();
        let files: Vec<String> = layout
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .chain([names::PROBLEMS, names::DICTIONARY])
            .map(|t| format!("{t}.{ext}"))
            .chain([names::MANIFEST.to_owned()])
            .collect();
        commit::check_free(dir, &files)?;
        std::fs::create_dir_all(dir).map_err(local(dir))?;
        commit::recover(dir)?;
        let partial = dir.join(PARTIAL_DIR);
        // Whether to resume, and how many batches are asked at once, are not part of what a
        // pull is (the options as a state read back has them).
        let same = PullOptions {
            resume: false,
            parallel: default_parallel(),
            crash_at: CrashAt::default(),
            ..options.clone()
        };
        let fresh = State {
            schema_hash: layout.schema_hash.clone(),
            options: same,
            batches: None,
            done: Vec::new(),
            watermark: None,
        };
        let previous = if options.resume { load_state(&partial) } else { None };
        let (state, resumed) = match previous {
            Some(s) if s.schema_hash == fresh.schema_hash && s.options == fresh.options => {
                let n = s.done.len();
                (s, n)
            }
            _ => {
                match std::fs::remove_dir_all(&partial) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(local(&partial)(e)),
                }
                std::fs::create_dir_all(&partial).map_err(local(&partial))?;
                (fresh, 0)
            }
        };
        let crash = options.crash_at;
        let end = state.done.iter().flat_map(|c| c.parts.values()).map(Part::end).max().unwrap_or(0);
        let parts = PartsFile::open(&partial.join(PARTS), end)?;
        let pull =
            DatasetPull { dir: dir.to_owned(), partial, schema, layout, state, resumed, crash, live: None, parts };
        pull.save()?;
        // What follows the last whole checkpoint (a torn line) goes before anything is appended.
        pull.save_done()?;
        Ok(pull)
    }

    /// Whether the logging watermark must still be taken (before the first export).
    pub fn needs_watermark(&self) -> bool {
        self.state.watermark.is_none() && self.state.done.is_empty()
    }

    /// Keeps the logging watermark (see [`Manifest::watermark`]), taken before the first export.
    pub fn set_watermark(&mut self, watermark: String) -> Result<(), Error> {
        self.state.watermark = Some(watermark);
        self.save()
    }

    /// The layout the records are cast into.
    pub fn layout(&self) -> &DatasetLayout {
        &self.layout
    }

    /// Whether the record ids must still be exported (a resumed pull keeps its plan).
    pub fn needs_ids(&self) -> bool {
        self.state.batches.is_none()
    }

    /// The records to pull, from the id-only export: distinct, in the server's order, in
    /// batches of the options' size.
    pub fn plan(&mut self, ids: impl IntoIterator<Item = String>) -> Result<(), Error> {
        let size = self.state.options.batch_size.max(1);
        let mut ids = distinct_ids(ids.into_iter().collect()).into_iter().peekable();
        let mut batches: Vec<Vec<String>> = Vec::new();
        while ids.peek().is_some() {
            batches.push(ids.by_ref().take(size).collect());
        }
        let path = self.partial.join(PLAN);
        let bytes =
            serde_json::to_vec(&batches).map_err(|e| Error::State { path: path.clone(), message: e.to_string() })?;
        atomic_write(&path, &bytes)?;
        self.state.batches = Some(batches);
        Ok(())
    }

    /// Number of batches planned.
    pub fn batches(&self) -> usize {
        self.state.batches.as_ref().map_or(0, Vec::len)
    }

    /// Batches done so far.
    pub fn done(&self) -> usize {
        self.state.done.len()
    }

    /// The record ids of the next batch to export, or `None` when all are done.
    pub fn next_batch(&self) -> Option<&[String]> {
        self.batch(self.done())
    }

    /// The record ids of batch number `n` of the plan (from 0), done or not: a client may
    /// export the batches after the next one while the next one is cast and written.
    pub fn batch(&self, n: usize) -> Option<&[String]> {
        self.state.batches.as_ref()?.get(n).map(Vec::as_slice)
    }

    /// Casts the next batch's exported rows and keeps them as a checkpoint.
    pub fn add_batch(&mut self, rows: &[Row]) -> Result<&Checkpoint, Error> {
        self.add_records(&Records::from_rows(rows))
    }

    /// [`DatasetPull::add_batch`] of records read as text (a CSV answer).
    pub fn add_records(&mut self, records: &Records) -> Result<&Checkpoint, Error> {
        let ids = self.next_batch().ok_or(Error::Internal("no batch is due"))?;
        let (records_n, first, last) =
            (ids.len(), ids.first().cloned().unwrap_or_default(), ids.last().cloned().unwrap_or_default());
        let batch = self.state.done.len() + 1;
        let CastBatch { tables, problems } = self.layout.cast_records(records)?;
        // Opened (and the batches done before, replayed) before this batch is checkpointed.
        self.live()?;
        let mut counts = BTreeMap::new();
        let mut parts = BTreeMap::new();
        for (layout, table) in self.layout.tables.iter().zip(&tables) {
            counts.insert(layout.name.clone(), table.num_rows() as u64);
            if table.num_rows() > 0 {
                parts.insert(layout.name.clone(), self.parts.append(table)?);
            }
        }
        counts.insert(names::PROBLEMS.to_owned(), problems.len() as u64);
        let problems = if problems.is_empty() { None } else { Some(problems_batch(&problems)?) };
        if let Some(p) = &problems {
            parts.insert(names::PROBLEMS.to_owned(), self.parts.append(p)?);
        }
        let checkpoint = Checkpoint { batch, records: records_n, first, last, rows: counts, parts };
        self.append_done(&checkpoint)?;
        self.state.done.push(checkpoint);
        let live = self.live.as_mut().ok_or(Error::Internal("no files open"))?;
        for (w, t) in live.tables.iter_mut().zip(tables.iter().chain(problems.as_ref())) {
            if t.num_rows() > 0 {
                w.write(t)?;
            }
        }
        live.bound()?;
        Ok(self.state.done.last().expect("just pushed"))
    }

    /// The files being written, opened on first use with the batches already done (a resumed
    /// pull's) replayed into them from their parts.
    fn live(&mut self) -> Result<&mut Live, Error> {
        if self.live.is_none() {
            let format = self.state.options.format;
            let mut generation = Generation::begin(&self.dir, self.crash)?;
            let schemas = self.layout.tables.iter().map(|t| (t.name.as_str(), t.schema.clone()));
            let mut tables = Vec::with_capacity(self.layout.tables.len() + 1);
            for (name, schema) in schemas.chain(std::iter::once((names::PROBLEMS, problems_schema()))) {
                let mut w = GenerationTable::create(&mut generation, name, schema.clone(), format)?;
                let path = self.partial.join(PARTS);
                for part in self.state.done.iter().filter_map(|c| c.parts.get(name)) {
                    for b in PartsFile::read(&path, part, &schema)? {
                        w.write(&b)?;
                    }
                }
                tables.push(w);
            }
            let mut live = Live { generation, tables };
            live.bound()?;
            self.live = Some(live);
        }
        Ok(self.live.as_mut().expect("just opened"))
    }

    /// Appends one checkpoint line to `done.jsonl`, after its parts are written. Not synced: a
    /// line lost to a power cut is a batch exported again, and one whose parts were lost does
    /// not match their checksums (see [`load_state`]).
    fn append_done(&self, checkpoint: &Checkpoint) -> Result<(), Error> {
        use std::io::Write;
        let path = self.partial.join(DONE);
        let mut line =
            serde_json::to_vec(checkpoint).map_err(|e| Error::State { path: path.clone(), message: e.to_string() })?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(local(&path))?;
        f.write_all(&line).map_err(local(&path))
    }

    /// Rewrites `done.jsonl` with the checkpoints held (dropping a torn or unusable tail).
    fn save_done(&self) -> Result<(), Error> {
        let path = self.partial.join(DONE);
        let mut bytes = Vec::new();
        for c in &self.state.done {
            serde_json::to_writer(&mut bytes, c)
                .map_err(|e| Error::State { path: path.clone(), message: e.to_string() })?;
            bytes.push(b'\n');
        }
        atomic_write(&path, &bytes)
    }

    fn save(&self) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(&self.state)
            .map_err(|e| Error::State { path: self.partial.join(STATE), message: e.to_string() })?;
        atomic_write(&self.partial.join(STATE), &bytes)
    }

    /// Writes the dataset's files as a new generation and commits it atomically (see
    /// [`crate::commit`]), then removes the pull's working folder. `pulled_at` is the
    /// manifest's time stamp.
    pub fn finish(mut self, pulled_at: String) -> Result<PullSummary, Error> {
        if self.next_batch().is_some() {
            return Err(Error::Internal("finish before every batch is done"));
        }
        // Open already unless no batch came since the pull (re)started: then from the parts.
        self.live()?;
        let Live { generation, tables: writers } = self.live.take().expect("just opened");
        let mut tables = BTreeMap::new();
        let names = self.layout.tables.iter().map(|t| t.name.as_str()).chain(std::iter::once(names::PROBLEMS));
        for (name, w) in names.zip(writers) {
            tables.insert(name.to_owned(), w.finish()?);
        }
        let ids: Vec<&String> = self.state.batches.iter().flatten().flatten().collect();
        let manifest = Published {
            schema: &self.schema,
            layout: &self.layout,
            options: &self.state.options,
            pulled_at,
            watermark: self.state.watermark.clone(),
            // The parts' checksums were the pull's own bookkeeping.
            batches: self.state.done.iter().map(|c| Checkpoint { parts: BTreeMap::new(), ..c.clone() }).collect(),
        }
        .commit(generation, tables, &ids)?;
        std::fs::remove_dir_all(&self.partial).map_err(local(&self.partial))?;
        Ok(PullSummary { manifest, resumed_batches: self.resumed })
    }
}

impl Live {
    /// Flushes the tables' row groups when together they hold more than [`LIVE_BUDGET`].
    fn bound(&mut self) -> Result<(), Error> {
        let held: usize = self.tables.iter().map(|t| t.writer.buffered_bytes()).sum();
        if held > LIVE_BUDGET {
            for t in &mut self.tables {
                t.writer.flush()?;
            }
        }
        Ok(())
    }
}

/// A table written into a generation, under a temporary name until complete.
#[derive(Debug)]
pub(crate) struct GenerationTable {
    writer: TableWriter,
    file: String,
}

impl GenerationTable {
    pub(crate) fn create(
        generation: &mut Generation,
        name: &str,
        schema: Arc<Schema>,
        format: OutputFormat,
    ) -> Result<Self, Error> {
        generation.step()?;
        let file = format!("{name}.{}", format.extension());
        Ok(GenerationTable { writer: TableWriter::create(&generation.path().join(&file), schema, format)?, file })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        self.writer.write(batch)
    }

    pub(crate) fn finish(self) -> Result<TableEntry, Error> {
        Ok(TableEntry { rows: self.writer.finish()?, file: self.file })
    }
}

/// What a generation's manifest is made of, besides its tables.
pub(crate) struct Published<'a> {
    pub schema: &'a ProjectSchema,
    pub layout: &'a DatasetLayout,
    pub options: &'a PullOptions,
    pub pulled_at: String,
    pub watermark: Option<String>,
    pub batches: Vec<Checkpoint>,
}

impl Published<'_> {
    /// Writes the dictionary, the record list and the manifest into `generation`, and commits it.
    pub(crate) fn commit(
        self,
        mut generation: Generation,
        mut tables: BTreeMap<String, TableEntry>,
        ids: &[&String],
    ) -> Result<Manifest, Error> {
        let dictionary = dictionary_batch(&self.schema.metadata)?;
        let mut w =
            GenerationTable::create(&mut generation, names::DICTIONARY, dictionary.schema(), self.options.format)?;
        w.write(&dictionary)?;
        tables.insert(names::DICTIONARY.to_owned(), w.finish()?);
        let info = |k: &str| self.schema.project_info.get(k).map(crate::schema::text).unwrap_or_default();
        let manifest = Manifest {
            manifest_version: 1,
            schema_hash: self.layout.schema_hash.clone(),
            project_id: self.schema.project_id(),
            project_title: info("project_title"),
            redcap_version: self.schema.redcap_version.clone(),
            pulled_at: self.pulled_at,
            options: self.options.clone(),
            records: ids.len() as u64,
            tables,
            batches: self.batches,
            watermark: self.watermark,
            fingerprints: self.layout.tables.iter().map(|t| (t.name.clone(), t.fingerprint.clone())).collect(),
        };
        generation.step()?;
        let path = generation.path().join(RECORDS);
        let bytes = serde_json::to_vec(ids).map_err(|e| Error::State { path: path.clone(), message: e.to_string() })?;
        atomic_write(&path, &bytes)?;
        generation.step()?;
        let path = generation.path().join(names::MANIFEST);
        let bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::State { path: path.clone(), message: e.to_string() })?;
        atomic_write(&path, &bytes)?;
        generation.commit()?;
        Ok(manifest)
    }
}

/// The record ids of a generation, in the server's order (`sync` needs them to know what a
/// dataset holds; not a table for readers).
pub(crate) const RECORDS: &str = "records.json";

/// The record ids held by the dataset in `dir`, in the server's order, if its current
/// generation lists them.
pub fn dataset_records(dir: &Path) -> Option<Vec<String>> {
    let path = commit::current_generation(dir)?.join(RECORDS);
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The interrupted pull in `partial`: its state, its plan (if the ids were listed) and the
/// checkpoints that can be trusted — whole lines, numbered 1, 2, … in order, whose parts are all
/// there with the checksums the line gives. Anything after the first line that is not is redone.
fn load_state(partial: &Path) -> Option<State> {
    let text = std::fs::read_to_string(partial.join(STATE)).ok()?;
    let mut state: State = serde_json::from_str(&text).ok()?;
    let Ok(plan) = std::fs::read(partial.join(PLAN)) else { return Some(state) };
    let batches: Vec<Vec<String>> = serde_json::from_slice(&plan).ok()?;
    let done = std::fs::read(partial.join(DONE)).unwrap_or_default();
    // Only lines ended by a newline were completely appended.
    for line in done.split_inclusive(|&b| b == b'\n').take_while(|l| l.ends_with(b"\n")) {
        let Ok(c) = serde_json::from_slice::<Checkpoint>(line) else { break };
        let parts = partial.join(PARTS);
        let parts_present = c
            .rows
            .iter()
            .filter(|&(_, &n)| n > 0)
            .all(|(table, _)| c.parts.get(table).is_some_and(|part| PartsFile::holds(&parts, part)));
        let planned = batches.get(c.batch.wrapping_sub(1)).map(Vec::len);
        if c.batch != state.done.len() + 1 || planned != Some(c.records) || !parts_present {
            break;
        }
        state.done.push(c);
    }
    state.batches = Some(batches);
    Some(state)
}

/// The data dictionary as a table: one `Utf8` column per dictionary column, in REDCap's order
/// (columns this version does not know included).
pub fn dictionary_batch(fields: &[redcap_api::rows::Field]) -> Result<RecordBatch, Error> {
    let metadata: Vec<Row> = fields
        .iter()
        .map(|f| match serde_json::to_value(f) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            _ => Err(Error::Internal("a dictionary field does not serialize as a row")),
        })
        .collect::<Result<_, _>>()?;
    let metadata = metadata.as_slice();
    let mut columns: Vec<String> = Vec::new();
    for row in metadata {
        for k in row.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let fields: Vec<Field> = columns.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect();
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|c| {
            Arc::new(metadata.iter().map(|r| r.get(c).map(crate::schema::text)).collect::<StringArray>()) as ArrayRef
        })
        .collect();
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(metadata.len()));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)?)
}
