//! `dataset sync`: bringing a pulled dataset up to date from REDCap's logging.
//!
//! [`plan_sync`] is pure: from the manifest, the records the dataset holds, the log rows since
//! the watermark and (when known) the project's current record ids, it decides which records to
//! re-export and which to drop, which tables a dictionary change rebuilds from every record (those
//! whose fingerprint changed), or that the dataset must be rebuilt in full. [`DatasetSync`]
//! then casts the re-exported records and writes the merged tables as a new generation,
//! committed atomically like a pull's ([`crate::commit`]).
//!
//! # Time
//!
//! REDCap's log times are the server's local time at minute resolution, and nothing in the API
//! says the server's zone. The watermark is therefore taken from the log itself: the newest
//! log time seen before the records were exported, but never earlier than "now in UTC minus
//! [`ZONE_SPAN_HOURS`]" (every zone is within 14 hours of UTC, so a change made after this
//! run is logged at or after that time whatever the server's zone). The next sync reads the
//! log from the watermark minus an overlap (minutes), so a change logged in the watermark's
//! minute, or by a server whose clock is a little behind, is read again; re-exporting whole
//! records makes reading a change twice harmless.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use redcap_core::Row;

use crate::commit::{CrashAt, Generation};
use crate::error::local;
use crate::pull::{GenerationTable, Published};
use crate::{DatasetLayout, Error, Manifest, OutputFormat, ProjectSchema, names, problems_batch, problems_schema};

/// Hours between the earliest and latest local time on Earth and UTC, rounded up (UTC−12 to
/// UTC+14), plus a margin for a wrong client clock.
pub const ZONE_SPAN_HOURS: i64 = 36;

/// Minutes re-read before the watermark by default.
pub const DEFAULT_OVERLAP_MINUTES: i64 = 5;

/// One row of REDCap's logging, as the plan reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogLine {
    /// `YYYY-MM-DD HH:MM`, server time.
    pub timestamp: String,
    /// REDCap's wording, e.g. `Update record (API) 12`.
    pub action: String,
    /// Fields changed, or what was done.
    pub details: String,
    /// The record concerned (empty when none).
    pub record: String,
}

impl LogLine {
    /// A line of a logging export row (`timestamp`, `action`, `details`, `record`).
    pub fn from_row(row: &Row) -> LogLine {
        let get = |k: &str| row.get(k).map(crate::schema::text).unwrap_or_default();
        LogLine { timestamp: get("timestamp"), action: get("action"), details: get("details"), record: get("record") }
    }

    /// A line from its parts.
    pub fn new(timestamp: &str, action: &str, details: &str, record: &str) -> LogLine {
        LogLine { timestamp: timestamp.into(), action: action.into(), details: details.into(), record: record.into() }
    }
}

/// What a log line says happened to records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogChange {
    /// The record's data may have changed (created, updated, a file, its DAG, …).
    Changed(String),
    /// The record was deleted (a partial delete of an event or instance is a change).
    Deleted(String),
    /// The record was renamed.
    Renamed {
        /// Its old name.
        from: String,
        /// Its new name.
        to: String,
    },
}

/// Reads one log line. Every line naming a record counts as a possible change of it (REDCap
/// words record actions in many ways: `Create record`, `Update record (API)`, `Update record
/// (import)`, `Assign record to Data Access Group`, …; re-exporting a record that did not
/// change costs a row, missing one costs correctness). `Delete record` lines without `partial
/// delete` details delete it; `Rename record A to B` details rename it.
pub fn log_change(line: &LogLine) -> Option<LogChange> {
    if let Some(rest) = line.details.trim().strip_prefix("Rename record ") {
        if let Some((from, to)) = rest.split_once(" to ") {
            return Some(LogChange::Renamed { from: from.trim().to_owned(), to: to.trim().to_owned() });
        }
    }
    let record = line.record.trim();
    if record.is_empty() {
        return None;
    }
    let action = line.action.trim_start();
    if action.starts_with("Delete record") && !line.details.contains("partial delete") {
        Some(LogChange::Deleted(record.to_owned()))
    } else {
        Some(LogChange::Changed(record.to_owned()))
    }
}

/// Why a sync rebuilds the dataset in full.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebuildReason {
    /// The project schema (dictionary, events, …) changed.
    SchemaChanged,
    /// REDCap's version changed (its exports may differ).
    VersionChanged,
    /// The dataset has no watermark (pulled without Logging rights, or by an older version).
    NoWatermark,
    /// REDCap refused the logging export (the token has no Logging right).
    NoLogging,
    /// The dataset does not list its records (pulled by an older version).
    NoRecordList,
    /// CSV tables cannot be read back with their types.
    CsvFormat,
    /// The server's record order disagrees with the dataset's (it is kept as a fresh pull's).
    OrderChanged,
}

impl std::fmt::Display for RebuildReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RebuildReason::SchemaChanged => "the project's dictionary or design changed",
            RebuildReason::VersionChanged => "REDCap's version changed",
            RebuildReason::NoWatermark => "the dataset has no logging watermark",
            RebuildReason::NoLogging => "the token may not export the project's logging",
            RebuildReason::NoRecordList => "the dataset does not list its records",
            RebuildReason::CsvFormat => "CSV tables cannot be updated in place",
            RebuildReason::OrderChanged => "the server's record order changed",
        })
    }
}

/// The decision of a sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncPlan {
    /// Rebuild every table (a fresh pull).
    Rebuild {
        /// Why.
        reason: RebuildReason,
        /// The tables affected (all of them).
        tables: Vec<String>,
    },
    /// Update in place.
    Update {
        /// Records to re-export, whole.
        fetch: Vec<String>,
        /// Records to remove.
        drop: Vec<String>,
        /// The dataset's records afterwards, in the server's order.
        order: Vec<String>,
        /// Tables rebuilt from every record, their dictionary having changed (the others are
        /// updated in place).
        rebuild: Vec<String>,
    },
}

/// What a sync knows of the project now.
#[derive(Clone, Copy, Debug)]
pub struct ProjectNow<'a> {
    /// The schema hash.
    pub schema_hash: &'a str,
    /// REDCap's version.
    pub redcap_version: &'a str,
    /// The project's record ids now (the dataset's records, options applied), in the server's
    /// order, when exported; without them the log alone decides.
    pub ids: Option<&'a [String]>,
    /// Each instrument table's fingerprint now ([`crate::TableLayout::fingerprint`]), in table
    /// order: with them, a changed dictionary rebuilds only the tables whose fingerprint
    /// changed; without them, every table.
    pub fingerprints: Option<&'a [(String, String)]>,
}

/// Decides a sync (pure). `held` are the dataset's records in its order, `log` the log rows
/// since the watermark (any order).
pub fn plan_sync(manifest: &Manifest, held: Option<&[String]>, log: &[LogLine], now: ProjectNow<'_>) -> SyncPlan {
    let tables: Vec<String> = manifest.tables.keys().cloned().collect();
    let rebuild = |reason| SyncPlan::Rebuild { reason, tables: tables.clone() };
    if manifest.redcap_version != now.redcap_version {
        return rebuild(RebuildReason::VersionChanged);
    }
    let mut rebuilt_tables = Vec::new();
    if manifest.schema_hash != now.schema_hash {
        match changed_tables(manifest, now.fingerprints) {
            Some(changed) => rebuilt_tables = changed,
            None => return rebuild(RebuildReason::SchemaChanged),
        }
    }
    if manifest.options.format == OutputFormat::Csv {
        return rebuild(RebuildReason::CsvFormat);
    }
    if manifest.watermark.is_none() {
        return rebuild(RebuildReason::NoWatermark);
    }
    let Some(held) = held else { return rebuild(RebuildReason::NoRecordList) };
    // The last word on each record, in time order (REDCap lists the newest first; the order
    // within one minute is the listing's, reversed).
    let mut lines: Vec<(usize, &LogLine)> = log.iter().enumerate().collect();
    lines.sort_by(|(i, a), (j, b)| a.timestamp.cmp(&b.timestamp).then(j.cmp(i)));
    let mut last: HashMap<String, bool> = HashMap::new(); // record -> exists
    for (_, line) in lines {
        match log_change(line) {
            Some(LogChange::Changed(r)) => {
                last.insert(r, true);
            }
            Some(LogChange::Deleted(r)) => {
                last.insert(r, false);
            }
            Some(LogChange::Renamed { from, to }) => {
                last.insert(from, false);
                last.insert(to, true);
            }
            None => {}
        }
    }
    let held_set: HashSet<&str> = held.iter().map(String::as_str).collect();
    match now.ids {
        Some(ids) => {
            // The id list is the truth on what exists (a delete can take its log with it:
            // `delete_logging`); the log says what changed.
            let exists: HashSet<&str> = ids.iter().map(String::as_str).collect();
            let drop: Vec<String> = held.iter().filter(|r| !exists.contains(r.as_str())).cloned().collect();
            let fetch: Vec<String> = ids
                .iter()
                .filter(|r| !held_set.contains(r.as_str()) || last.contains_key(r.as_str()))
                .cloned()
                .collect();
            // Kept records must come in the same order as before (the merge keeps their rows).
            let kept: Vec<&String> = ids.iter().filter(|r| held_set.contains(r.as_str())).collect();
            let before: Vec<&String> = held.iter().filter(|r| exists.contains(r.as_str())).collect();
            if kept != before {
                return rebuild(RebuildReason::OrderChanged);
            }
            SyncPlan::Update { fetch, drop, order: ids.to_vec(), rebuild: rebuilt_tables }
        }
        None => {
            let drop: Vec<String> = held.iter().filter(|r| last.get(r.as_str()) == Some(&false)).cloned().collect();
            let mut order: Vec<String> =
                held.iter().filter(|r| last.get(r.as_str()) != Some(&false)).cloned().collect();
            let mut fetch: Vec<String> = order.iter().filter(|r| last.contains_key(r.as_str())).cloned().collect();
            let mut new: Vec<&String> =
                last.iter().filter(|(r, e)| **e && !held_set.contains(r.as_str())).map(|(r, _)| r).collect();
            new.sort();
            fetch.extend(new.iter().map(|r| (*r).clone()));
            order.extend(new.into_iter().cloned());
            SyncPlan::Update { fetch, drop, order, rebuild: rebuilt_tables }
        }
    }
}

/// The instrument tables whose fingerprint changed since the manifest (new ones among them), or
/// `None` when every table must be rebuilt: the fingerprints are unknown (either side), or
/// all of them changed (what all tables share changed, or every dictionary did).
fn changed_tables(manifest: &Manifest, now: Option<&[(String, String)]>) -> Option<Vec<String>> {
    let now = now?;
    if manifest.fingerprints.is_empty() || now.is_empty() {
        return None;
    }
    let changed: Vec<String> =
        now.iter().filter(|(name, f)| manifest.fingerprints.get(name) != Some(f)).map(|(n, _)| n.clone()).collect();
    (changed.len() < now.len()).then_some(changed)
}

/// The layout a sync of a dataset pulled with `options` works in: [`DatasetLayout::new`], but an
/// instrument or event the pull named that the project no longer has is
/// [`Error::SelectionGone`]. A rebuild without it would quietly change what the dataset holds
/// (and a table of it would vanish), so the user decides: pull again with the instruments and
/// events there are now.
pub fn sync_layout(schema: &ProjectSchema, options: &crate::LayoutOptions) -> Result<DatasetLayout, Error> {
    DatasetLayout::new(schema, options).map_err(|e| match e {
        Error::UnknownInstrument(name) => Error::SelectionGone { flag: "--forms", kind: "instrument", name },
        Error::UnknownEvent(name) => Error::SelectionGone { flag: "--events", kind: "event", name },
        e => e,
    })
}

fn parse_minute(ts: &str) -> Option<chrono::NaiveDateTime> {
    let ts: String = ts.trim().chars().take(16).collect();
    chrono::NaiveDateTime::parse_from_str(&ts, "%Y-%m-%d %H:%M").ok()
}

fn format_minute(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// The `beginTime` of a sync's log read: the watermark minus `overlap_minutes`.
pub fn log_begin(watermark: &str, overlap_minutes: i64) -> Option<String> {
    parse_minute(watermark).map(|t| format_minute(t - chrono::Duration::minutes(overlap_minutes.max(0))))
}

/// The `beginTime` of the log read that takes a new watermark: [`ZONE_SPAN_HOURS`] before
/// `now_utc`.
pub fn watermark_floor(now_utc: std::time::SystemTime) -> String {
    let now = chrono::DateTime::<chrono::Utc>::from(now_utc);
    format_minute((now - chrono::Duration::hours(ZONE_SPAN_HOURS)).naive_utc())
}

/// The watermark from a log read made before the records are exported: the newest time in it,
/// or `floor` ([`watermark_floor`]) if that is later or the log is empty.
pub fn watermark(log: &[LogLine], floor: &str) -> String {
    let newest = log.iter().filter_map(|l| parse_minute(&l.timestamp)).max();
    match (newest, parse_minute(floor)) {
        (Some(n), Some(f)) => format_minute(n.max(f)),
        (Some(n), None) => format_minute(n),
        (None, _) => floor.chars().take(16).collect(),
    }
}

/// What a sync did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncSummary {
    /// The manifest written.
    pub manifest: Manifest,
    /// Records re-exported.
    pub fetched: Vec<String>,
    /// Records removed.
    pub dropped: Vec<String>,
    /// Why the dataset was rebuilt in full, if it was.
    pub rebuilt: Option<RebuildReason>,
    /// The tables rebuilt in full: every table when [`SyncSummary::rebuilt`] says why, else those
    /// a dictionary change touched (the others were updated in place).
    pub rebuilt_tables: Vec<String>,
}

impl SyncSummary {
    /// The summary of a sync that rebuilt the dataset in full.
    pub fn rebuilt(manifest: Manifest, reason: RebuildReason, tables: Vec<String>) -> SyncSummary {
        SyncSummary {
            manifest,
            fetched: Vec::new(),
            dropped: Vec::new(),
            rebuilt: Some(reason),
            rebuilt_tables: tables,
        }
    }
}

/// An in-place update in progress: the re-exported rows, cast, until [`DatasetSync::finish`].
#[derive(Debug)]
pub struct DatasetSync {
    dir: PathBuf,
    schema: ProjectSchema,
    layout: DatasetLayout,
    manifest: Manifest,
    fetch: Vec<String>,
    drop: Vec<String>,
    order: Vec<String>,
    /// Tables rebuilt from every record (their dictionary changed).
    rebuild: Vec<String>,
    /// Cast rows of the re-exported records, per table (problems last).
    fetched: Vec<Vec<RecordBatch>>,
    /// The problems of the tables rebuilt (bad values only: held).
    rebuilt_problems: Vec<RecordBatch>,
    /// The rows of every record for each table rebuilt, in a temporary file as they come, in
    /// the records' order.
    spills: Vec<Option<Spill>>,
    /// The records of the last [`SyncExport::Rebuilt`] handed out.
    rebuilding: std::ops::Range<usize>,
    /// How many of `fetch`, then of `order` (for the rebuilt tables), were handed out to be
    /// exported ([`DatasetSync::next_export`]).
    handed: (usize, usize),
    crash: CrashAt,
}

/// What [`DatasetSync::next_export`] asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncExport {
    /// These changed records, whole: answer with [`DatasetSync::add_rows`].
    Changed(Vec<String>),
    /// These records for the rebuilt tables: answer with [`DatasetSync::add_rebuilt_records`].
    Rebuilt(Vec<String>),
}

impl DatasetSync {
    /// Starts the update of the dataset in `dir` that `plan` decided. `crash` is the test hook.
    pub fn start(
        dir: &Path,
        schema: ProjectSchema,
        manifest: Manifest,
        plan: SyncPlan,
        crash: CrashAt,
    ) -> Result<DatasetSync, Error> {
        let SyncPlan::Update { fetch, drop, order, rebuild } = plan else {
            return Err(Error::Internal("a rebuild is a pull"));
        };
        let layout = DatasetLayout::new(&schema, &manifest.options.layout)?;
        let fetched = vec![Vec::new(); layout.tables.len() + 1];
        let spills = (0..layout.tables.len()).map(|_| None).collect();
        Ok(DatasetSync {
            dir: dir.to_owned(),
            schema,
            layout,
            manifest,
            fetch,
            drop,
            order,
            rebuild,
            fetched,
            rebuilt_problems: Vec::new(),
            spills,
            rebuilding: 0..0,
            handed: (0, 0),
            crash,
        })
    }

    /// The next records to export, at most `changed` of the changed records, then, after a
    /// dictionary change, at most `rebuilt` of every record for the rebuilt tables (a batch:
    /// the rows of one answer are cast and dropped before the next is asked for, so memory
    /// holds one answer, not every record's). `None` when all are handed out.
    pub fn next_export(&mut self, changed: usize, rebuilt_n: usize) -> Option<SyncExport> {
        let (n, m) = (changed.max(1), rebuilt_n.max(1));
        let (fetch, rebuilt) = &mut self.handed;
        if *fetch < self.fetch.len() {
            let chunk = self.fetch[*fetch..(*fetch + n).min(self.fetch.len())].to_vec();
            *fetch += chunk.len();
            return Some(SyncExport::Changed(chunk));
        }
        if !self.rebuild.is_empty() && *rebuilt < self.order.len() {
            let chunk = self.order[*rebuilt..(*rebuilt + m).min(self.order.len())].to_vec();
            self.rebuilding = *rebuilt..*rebuilt + chunk.len();
            *rebuilt += chunk.len();
            return Some(SyncExport::Rebuilt(chunk));
        }
        None
    }

    /// The instruments to export for the rebuilt tables, or `None` for whole records: an
    /// export of some instruments leaves out rows a whole record has, which the table holding
    /// the record id keeps.
    pub fn rebuild_forms(&self) -> Option<Vec<String>> {
        let tables: Vec<&crate::TableLayout> =
            self.layout.tables.iter().filter(|t| self.rebuild.contains(&t.name)).collect();
        (!tables.iter().any(|t| t.holds_id)).then(|| tables.iter().map(|t| t.name.clone()).collect())
    }

    /// Casts the rows exported for the last [`SyncExport::Rebuilt`]: only the rebuilt tables
    /// and their problems are kept, the tables' rows in the records' order in a temporary file
    /// (memory holds one answer).
    pub fn add_rebuilt_records(&mut self, records: &crate::Records) -> Result<(), Error> {
        let cast = self.layout.cast_records(records)?;
        let chunk: Vec<&String> = self.order[self.rebuilding.clone()].iter().collect();
        let everyone: HashSet<&str> = chunk.iter().map(|r| r.as_str()).collect();
        for (i, t) in cast.tables.into_iter().enumerate() {
            let layout = &self.layout.tables[i];
            if t.num_rows() == 0 || !self.rebuild.contains(&layout.name) {
                continue;
            }
            // In the records' order (a healed answer may bring some later), then spilled.
            let mut ordered = Vec::new();
            merge(&layout.schema, 0, std::iter::empty(), &[t], &chunk, &everyone, &mut |b| {
                ordered.push(b);
                Ok(())
            })?;
            let spill = match &mut self.spills[i] {
                Some(s) => s,
                slot => slot.insert(Spill::new(&self.dir, &layout.schema)?),
            };
            for b in &ordered {
                spill.write(b)?;
            }
        }
        let problems: Vec<crate::Problem> =
            cast.problems.into_iter().filter(|p| self.rebuild.contains(&p.instrument)).collect();
        if !problems.is_empty() {
            self.rebuilt_problems.push(problems_batch(&problems)?);
        }
        Ok(())
    }

    /// The layout the records are cast into.
    pub fn layout(&self) -> &DatasetLayout {
        &self.layout
    }

    /// The records to re-export.
    pub fn fetch(&self) -> &[String] {
        &self.fetch
    }

    /// Casts re-exported rows (whole records, any number of calls).
    pub fn add_rows(&mut self, rows: &[Row]) -> Result<(), Error> {
        let cast = self.layout.cast(rows)?;
        for (i, t) in cast.tables.into_iter().enumerate() {
            if t.num_rows() > 0 {
                self.fetched[i].push(t);
            }
        }
        if !cast.problems.is_empty() {
            self.fetched[self.layout.tables.len()].push(problems_batch(&cast.problems)?);
        }
        Ok(())
    }

    /// Writes the merged tables as a new generation and commits it: each table keeps the rows
    /// of records neither re-exported nor dropped, in the server's record order, with the
    /// re-exported records' new rows in their places.
    pub fn finish(
        mut self,
        pulled_at: String,
        watermark: String,
        seen: &HashSet<String>,
    ) -> Result<SyncSummary, Error> {
        // A record to re-export that came back with no rows was deleted meanwhile.
        let fetch_set: HashSet<&str> = self.fetch.iter().map(String::as_str).collect();
        let order: Vec<&String> =
            self.order.iter().filter(|r| !fetch_set.contains(r.as_str()) || seen.contains(*r)).collect();
        let replaced: HashSet<&str> = fetch_set.iter().copied().chain(self.drop.iter().map(String::as_str)).collect();
        let format = self.manifest.options.format;
        // An empty cast holds each dictionary column's categories as a pull writes them.
        let empty = self.layout.cast(&[])?;
        let mut generation = Generation::begin(&self.dir, self.crash)?;
        let mut tables = BTreeMap::new();
        // Every table's first column is the record id (the problems table's too).
        let key = 0;
        let schemas: Vec<(String, SchemaRef)> = self
            .layout
            .tables
            .iter()
            .map(|t| (t.name.clone(), t.schema.clone()))
            .chain(std::iter::once((names::PROBLEMS.to_owned(), problems_schema())))
            .collect();
        let mut spills = std::mem::take(&mut self.spills);
        let problems_at = self.layout.tables.len();
        for (i, (name, schema)) in schemas.into_iter().enumerate() {
            let rebuilt = self.rebuild.contains(&name);
            let old_file = self.manifest.tables.get(&name).map(|entry| self.dir.join(&entry.file));
            let mut w = GenerationTable::create(&mut generation, &name, schema.clone(), format)?;
            let mut emit = |b: RecordBatch| -> Result<(), Error> {
                let b = match empty.tables.get(i) {
                    Some(categories) => recode(&b, categories)?,
                    None => b,
                };
                w.write(&b)
            };
            if i == problems_at {
                // Problems are few (bad values): read whole.
                let old = match &old_file {
                    Some(path) => table_batches(path, format)?.collect::<Result<Vec<_>, _>>()?,
                    None => Vec::new(),
                };
                if let Some(b) = self.merge_problems(&schema, &old, &order, &replaced)? {
                    emit(b)?;
                }
            } else if rebuilt {
                // Spilled in the records' order: one forward pass keeps those still there.
                let spilled: Box<dyn Iterator<Item = Result<RecordBatch, Error>>> = match spills[i].take() {
                    Some(spill) => spill.read()?,
                    None => Box::new(std::iter::empty()),
                };
                merge(&schema, key, spilled, &[], &order, &HashSet::new(), &mut emit)?;
            } else {
                let old: Box<dyn Iterator<Item = Result<RecordBatch, Error>>> = match &old_file {
                    Some(path) => table_batches(path, format)?,
                    None => Box::new(std::iter::empty()),
                };
                merge(&schema, key, old, &self.fetched[i], &order, &replaced, &mut emit)?;
            }
            tables.insert(name, w.finish()?);
        }
        let ids: Vec<&String> = order.clone();
        let manifest = Published {
            schema: &self.schema,
            layout: &self.layout,
            options: &self.manifest.options,
            pulled_at,
            watermark: Some(watermark),
            batches: Vec::new(),
        }
        .commit(generation, tables, &ids)?;
        let fetched = self.fetch.iter().filter(|r| seen.contains(*r)).cloned().collect();
        Ok(SyncSummary { manifest, fetched, dropped: self.drop, rebuilt: None, rebuilt_tables: self.rebuild })
    }

    /// The problems table: per record, in `order`, the problems of the tables updated in place
    /// (the old rows, or a re-exported record's new ones) and those of the tables rebuilt, by
    /// table as a pull lists them ([`DatasetLayout::cast`]). Problems of an instrument the
    /// dataset no longer has are gone.
    fn merge_problems(
        &self,
        schema: &SchemaRef,
        old: &[RecordBatch],
        order: &[&String],
        replaced: &HashSet<&str>,
    ) -> Result<Option<RecordBatch>, Error> {
        let at = self.layout.tables.len();
        let table_of: HashMap<&str, usize> =
            self.layout.tables.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
        let mut sources: Vec<RecordBatch> = Vec::new();
        for b in old.iter().chain(&self.fetched[at]).chain(&self.rebuilt_problems) {
            sources.push(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?);
        }
        let (n_old, n_fetched) = (old.len(), self.fetched[at].len());
        // (record) -> rows (source, row, table index), each source kept only for the tables it
        // speaks for.
        let mut rows: HashMap<String, Vec<(usize, usize, usize)>> = HashMap::new();
        for (i, b) in sources.iter().enumerate() {
            let from_rebuild = i >= n_old + n_fetched;
            let ids = text_column(b, 0)?;
            let instruments = text_column(b, PROBLEM_INSTRUMENT)?;
            for row in 0..b.num_rows() {
                let Some(&table) = table_of.get(instruments.value(row)) else { continue };
                if self.rebuild.contains(&self.layout.tables[table].name) != from_rebuild {
                    continue;
                }
                let record = ids.value(row);
                let wanted = from_rebuild || (i < n_old) != replaced.contains(record);
                if wanted {
                    rows.entry(record.to_owned()).or_default().push((i, row, table));
                }
            }
        }
        let mut indices = Vec::new();
        for r in order {
            if let Some(mut of) = rows.remove(r.as_str()) {
                of.sort_by_key(|&(_, _, table)| table);
                indices.extend(of.into_iter().map(|(i, row, _)| (i, row)));
            }
        }
        if indices.is_empty() {
            return Ok(None);
        }
        let refs: Vec<&RecordBatch> = sources.iter().collect();
        Ok(Some(arrow_select::interleave::interleave_record_batch(&refs, &indices)?))
    }
}

/// The problems table's `instrument` column.
const PROBLEM_INSTRUMENT: usize = 3;

fn text_column(batch: &RecordBatch, i: usize) -> Result<&StringArray, Error> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or(Error::Internal("a text column (the record id or the instrument) is not text"))
}

/// Rows of a rebuilt table held on disk until the sync writes the table: an anonymous
/// temporary file in the dataset's folder (gone when closed, or at a crash), Arrow IPC.
struct Spill {
    writer: arrow_ipc::writer::StreamWriter<std::io::BufWriter<std::fs::File>>,
    /// The folder it is in (for errors).
    dir: PathBuf,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill").finish_non_exhaustive()
    }
}

impl Spill {
    fn new(dir: &Path, schema: &SchemaRef) -> Result<Spill, Error> {
        let file = tempfile::tempfile_in(dir).map_err(local(dir))?;
        let writer = arrow_ipc::writer::StreamWriter::try_new(std::io::BufWriter::new(file), schema)?;
        Ok(Spill { writer, dir: dir.to_owned() })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        Ok(self.writer.write(batch)?)
    }

    /// The batches written, from the start.
    fn read(mut self) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, Error>>>, Error> {
        use std::io::Seek;
        self.writer.finish()?;
        let dir = self.dir;
        let mut file = self.writer.into_inner()?.into_inner().map_err(|e| local(&dir)(e.into_error()))?;
        file.rewind().map_err(local(&dir))?;
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::BufReader::new(file), None)?;
        Ok(Box::new(reader.map(|b| b.map_err(Error::from))))
    }
}

/// Rows read back from a table at a time while a sync merges it.
const MERGE_BATCH_ROWS: usize = 4096;

/// A table's batches, read as they are needed: a merge holds one of them, not the table.
fn table_batches(
    path: &Path,
    format: OutputFormat,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, Error>>>, Error> {
    let file = std::fs::File::open(path).map_err(local(path))?;
    match format {
        OutputFormat::Parquet => {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
                .with_batch_size(MERGE_BATCH_ROWS)
                .build()?;
            Ok(Box::new(reader.map(|b| b.map_err(Error::from))))
        }
        OutputFormat::Arrow => {
            let reader = arrow_ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)?;
            Ok(Box::new(reader.map(|b| b.map_err(Error::from))))
        }
        OutputFormat::Csv => Err(Error::Internal("CSV tables are rebuilt, never merged")),
    }
}

/// Rows of `batch` per record (column `key`), in order.
fn rows_by_record(
    batch: &RecordBatch,
    key: usize,
    into: &mut HashMap<String, Vec<(usize, usize)>>,
    which: usize,
) -> Result<(), Error> {
    let ids = batch
        .column(key)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or(Error::Internal("a table's first column is the record id, as text"))?;
    for row in 0..batch.num_rows() {
        if ids.is_valid(row) {
            into.entry(ids.value(row).to_owned()).or_default().push((which, row));
        }
    }
    Ok(())
}

/// `batch` with each dictionary column keyed over `like`'s categories (a table read back from
/// Parquet has the categories it holds, in the order met; a pull writes the dictionary's).
fn recode(batch: &RecordBatch, like: &RecordBatch) -> Result<RecordBatch, Error> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    let mut columns = batch.columns().to_vec();
    for (i, column) in columns.iter_mut().enumerate() {
        let (Some(have), Some(want)) =
            (column.as_dictionary_opt::<Int32Type>(), like.column(i).as_dictionary_opt::<Int32Type>())
        else {
            continue;
        };
        let want_values = want.values().as_string::<i32>();
        let index: HashMap<&str, i32> = (0..want_values.len()).map(|j| (want_values.value(j), j as i32)).collect();
        let have_values = have.values().as_string::<i32>();
        let keys: arrow_array::Int32Array =
            have.keys().iter().map(|k| k.and_then(|k| index.get(have_values.value(k as usize)).copied())).collect();
        *column = Arc::new(arrow_array::DictionaryArray::<Int32Type>::try_new(keys, want.values().clone())?);
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// One table: old rows of records not replaced, new rows of re-exported records, in `order`,
/// handed to `emit` a piece at a time. The old rows are read batch by batch: a record kept has
/// its rows where it had them (the kept records' order is the old one, or the plan rebuilt), so
/// one forward pass over the old table finds each kept record's rows, skipping those of
/// records dropped or re-exported.
fn merge(
    schema: &SchemaRef,
    key: usize,
    old: impl Iterator<Item = Result<RecordBatch, Error>>,
    new: &[RecordBatch],
    order: &[&String],
    replaced: &HashSet<&str>,
    emit: &mut dyn FnMut(RecordBatch) -> Result<(), Error>,
) -> Result<(), Error> {
    // Batches read back carry the file's schema; the layout's is the one written.
    let with_schema = |b: &RecordBatch| RecordBatch::try_new(schema.clone(), b.columns().to_vec());
    // Sources: the new batches, then (last) the old batch being read.
    let mut sources: Vec<RecordBatch> = new.iter().map(with_schema).collect::<Result<_, _>>()?;
    let mut new_rows = HashMap::new();
    for (i, b) in sources.iter().enumerate() {
        rows_by_record(b, key, &mut new_rows, i)?;
    }
    let at = sources.len();
    let kept: HashSet<&str> = order.iter().map(|r| r.as_str()).filter(|r| !replaced.contains(r)).collect();
    let mut old = old;
    let mut old_ids: Vec<Option<String>> = Vec::new();
    let mut cursor = 0;
    let mut indices: Vec<(usize, usize)> = Vec::new();
    let flush = |sources: &[RecordBatch],
                 indices: &mut Vec<(usize, usize)>,
                 emit: &mut dyn FnMut(RecordBatch) -> Result<(), Error>|
     -> Result<(), Error> {
        if !indices.is_empty() {
            let refs: Vec<&RecordBatch> = sources.iter().collect();
            emit(arrow_select::interleave::interleave_record_batch(&refs, indices)?)?;
            indices.clear();
        }
        Ok(())
    };
    for r in order {
        if replaced.contains(r.as_str()) {
            indices.extend(new_rows.get(r.as_str()).into_iter().flatten().copied());
        } else {
            // Past the old rows of records not kept, to this record's rows.
            let mut found = false;
            loop {
                if cursor == old_ids.len() {
                    // The old batch is used up: write what refers to it, read the next.
                    flush(&sources, &mut indices, emit)?;
                    let Some(next) = old.next().transpose()? else { break };
                    let next = with_schema(&next)?;
                    old_ids = text_column(&next, key)?.iter().map(|v| v.map(str::to_owned)).collect();
                    cursor = 0;
                    sources.truncate(at);
                    sources.push(next);
                    continue;
                }
                match old_ids[cursor].as_deref() {
                    Some(id) if id == r.as_str() => {
                        found = true;
                        indices.push((at, cursor));
                        cursor += 1;
                    }
                    // Another kept record's rows: this record's are done, or it has none here.
                    Some(id) if found || kept.contains(id) => break,
                    // A dropped or re-exported record's old rows.
                    _ => cursor += 1,
                }
            }
        }
        if indices.len() >= MERGE_BATCH_ROWS {
            flush(&sources, &mut indices, emit)?;
        }
    }
    flush(&sources, &mut indices, emit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PullOptions;

    fn rows(pairs: &[(&str, i64)]) -> RecordBatch {
        let schema = Arc::new(arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("record", arrow_schema::DataType::Utf8, false),
            arrow_schema::Field::new("v", arrow_schema::DataType::Int64, true),
        ]));
        let ids: StringArray = pairs.iter().map(|(r, _)| Some(*r)).collect();
        let v: arrow_array::Int64Array = pairs.iter().map(|(_, v)| Some(*v)).collect();
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(v)]).unwrap()
    }

    fn pairs(batches: &[RecordBatch]) -> Vec<(String, i64)> {
        use arrow_array::cast::AsArray;
        batches
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_string::<i32>().clone();
                let v = b.column(1).as_primitive::<arrow_array::types::Int64Type>().clone();
                (0..b.num_rows()).map(move |i| (ids.value(i).to_owned(), v.value(i))).collect::<Vec<_>>()
            })
            .collect()
    }

    /// The old table is read a batch at a time: a kept record's rows may span two batches, a
    /// kept record may have no rows in the table, dropped and re-exported records' old rows
    /// are skipped wherever they sit, and new records come in the server's order.
    #[test]
    fn a_merge_reads_the_old_table_batch_by_batch() {
        let old = vec![
            rows(&[("1", 10), ("1", 11), ("2", 20)]),
            rows(&[("2", 21), ("3", 30)]),
            rows(&[("5", 50), ("5", 51)]),
            rows(&[("6", 60)]),
        ];
        let new = [rows(&[("3", 31), ("9", 90)]), rows(&[("4", 40)])];
        // 3 re-exported, 5 dropped, 4 and 9 new, 7 kept but without rows here.
        let order: Vec<String> = ["1", "2", "3", "4", "7", "6", "9"].iter().map(|s| (*s).to_owned()).collect();
        let order: Vec<&String> = order.iter().collect();
        let replaced: HashSet<&str> = ["3", "4", "5", "9"].into_iter().collect();
        let mut out = Vec::new();
        let schema = old[0].schema();
        merge(&schema, 0, old.into_iter().map(Ok), &new, &order, &replaced, &mut |b| {
            out.push(b);
            Ok(())
        })
        .unwrap();
        let want = [("1", 10), ("1", 11), ("2", 20), ("2", 21), ("3", 31), ("4", 40), ("6", 60), ("9", 90)];
        assert_eq!(pairs(&out), want.iter().map(|(r, v)| ((*r).to_owned(), *v)).collect::<Vec<_>>());
        assert!(out.len() > 1, "written a piece at a time");
    }

    fn manifest(watermark: Option<&str>) -> Manifest {
        Manifest {
            manifest_version: 1,
            schema_hash: "h".into(),
            project_id: None,
            project_title: String::new(),
            redcap_version: "14.0.0".into(),
            pulled_at: String::new(),
            options: PullOptions::default(),
            records: 3,
            tables: BTreeMap::new(),
            batches: Vec::new(),
            watermark: watermark.map(str::to_owned),
            fingerprints: BTreeMap::new(),
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    const NOW: ProjectNow<'static> =
        ProjectNow { schema_hash: "h", redcap_version: "14.0.0", ids: None, fingerprints: None };

    fn update(plan: SyncPlan) -> (Vec<String>, Vec<String>, Vec<String>) {
        match plan {
            SyncPlan::Update { fetch, drop, order, .. } => (fetch, drop, order),
            other => panic!("expected an update: {other:?}"),
        }
    }

    #[test]
    fn reread_lines_in_the_overlap_change_nothing_twice() {
        let m = manifest(Some("2026-01-02 03:04"));
        let held = ids(&["1", "2", "3"]);
        // Newest first, as REDCap lists them; record 2 updated twice, once inside the overlap.
        let log = [
            LogLine::new("2026-01-02 03:10", "Update record (API) 2", "age = '5'", "2"),
            LogLine::new("2026-01-02 03:04", "Update record (API) 2", "age = '4'", "2"),
            LogLine::new("2026-01-02 03:02", "Export Logging (API)", "", ""),
        ];
        let (fetch, drop, order) = update(plan_sync(&m, Some(&held), &log, NOW));
        assert_eq!(fetch, ["2"]);
        assert!(drop.is_empty());
        assert_eq!(order, held);
        assert_eq!(log_begin("2026-01-02 03:04", 5).as_deref(), Some("2026-01-02 02:59"));
        assert_eq!(log_begin("2026-01-02 00:03:59", 5).as_deref(), Some("2026-01-01 23:58"), "seconds are ignored");
    }

    #[test]
    fn deletes_partial_deletes_creates_and_renames_from_the_log() {
        let m = manifest(Some("2026-01-02 03:04"));
        let held = ids(&["1", "2", "3", "4"]);
        let log = [
            LogLine::new("2026-01-02 03:09", "Update record (API) 9", "Rename record 4 to 9", "9"),
            LogLine::new("2026-01-02 03:08", "Create record (API) 7", "age = '1'", "7"),
            LogLine::new("2026-01-02 03:07", "Delete record (API) 3", "partial delete", "3"),
            LogLine::new("2026-01-02 03:06", "Delete record (API) 1", "", "1"),
            // Deleted, then created again under the same name: it exists.
            LogLine::new("2026-01-02 03:06", "Create record (API) 2", "", "2"),
            LogLine::new("2026-01-02 03:05", "Delete record (API) 2", "", "2"),
        ];
        let (fetch, drop, order) = update(plan_sync(&m, Some(&held), &log, NOW));
        assert_eq!(drop, ["1", "4"]);
        assert_eq!(fetch, ["2", "3", "7", "9"]);
        assert_eq!(order, ["2", "3", "7", "9"]);
    }

    #[test]
    fn the_id_list_decides_what_exists_and_the_order() {
        let m = manifest(Some("2026-01-02 03:04"));
        let held = ids(&["1", "2", "3"]);
        // Record 1's deletion took its log with it (delete_logging); 5 was created unlogged.
        let log = [LogLine::new("2026-01-02 03:06", "Update record (API) 3", "x = '1'", "3")];
        let now_ids = ids(&["2", "3", "5"]);
        let (fetch, drop, order) = update(plan_sync(&m, Some(&held), &log, ProjectNow { ids: Some(&now_ids), ..NOW }));
        assert_eq!(drop, ["1"]);
        assert_eq!(fetch, ["3", "5"]);
        assert_eq!(order, now_ids);
        // Kept records in another order than the dataset's: rebuilt, so it matches a pull.
        let swapped = ids(&["3", "2"]);
        let plan = plan_sync(&m, Some(&held), &log, ProjectNow { ids: Some(&swapped), ..NOW });
        assert!(matches!(plan, SyncPlan::Rebuild { reason: RebuildReason::OrderChanged, .. }), "{plan:?}");
    }

    #[test]
    fn a_changed_schema_or_version_or_no_watermark_rebuilds_every_table() {
        let mut m = manifest(Some("2026-01-02 03:04"));
        m.tables.insert("a".into(), crate::TableEntry { file: "a.parquet".into(), rows: 1 });
        let held = ids(&["1"]);
        let plan = plan_sync(&m, Some(&held), &[], ProjectNow { schema_hash: "other", ..NOW });
        assert_eq!(plan, SyncPlan::Rebuild { reason: RebuildReason::SchemaChanged, tables: vec!["a".into()] });
        let plan = plan_sync(&m, Some(&held), &[], ProjectNow { redcap_version: "15.0.0", ..NOW });
        assert!(matches!(plan, SyncPlan::Rebuild { reason: RebuildReason::VersionChanged, .. }));
        let plan = plan_sync(&m, None, &[], NOW);
        assert!(matches!(plan, SyncPlan::Rebuild { reason: RebuildReason::NoRecordList, .. }));
        let plan = plan_sync(&manifest(None), Some(&held), &[], NOW);
        assert!(matches!(plan, SyncPlan::Rebuild { reason: RebuildReason::NoWatermark, .. }));
        let mut csv = manifest(Some("2026-01-02 03:04"));
        csv.options.format = OutputFormat::Csv;
        assert!(matches!(
            plan_sync(&csv, Some(&held), &[], NOW),
            SyncPlan::Rebuild { reason: RebuildReason::CsvFormat, .. }
        ));
    }

    #[test]
    fn a_changed_dictionary_rebuilds_the_tables_whose_fingerprint_changed() {
        let mut m = manifest(Some("2026-01-02 03:04"));
        m.fingerprints = [("a", "1"), ("b", "2")].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let held = ids(&["1", "2"]);
        let log = [LogLine::new("2026-01-02 03:05", "Update record (API) 2", "x = '1'", "2")];
        let fp = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let changed = fp(&[("a", "1"), ("b", "3"), ("c", "4")]);
        let now = ProjectNow { schema_hash: "other", ids: Some(&held), fingerprints: Some(&changed), ..NOW };
        let plan = plan_sync(&m, Some(&held), &log, now);
        assert_eq!(
            plan,
            SyncPlan::Update { fetch: ids(&["2"]), drop: vec![], order: held.clone(), rebuild: ids(&["b", "c"]) },
            "b changed and c is new; a is updated in place"
        );
        // Every table changed, or fingerprints unknown on either side: a full rebuild.
        let all = fp(&[("a", "9"), ("b", "9")]);
        let now = ProjectNow { schema_hash: "other", fingerprints: Some(&all), ..NOW };
        assert!(matches!(plan_sync(&m, Some(&held), &log, now), SyncPlan::Rebuild { .. }));
        let now = ProjectNow { schema_hash: "other", fingerprints: None, ..NOW };
        assert!(matches!(plan_sync(&m, Some(&held), &log, now), SyncPlan::Rebuild { .. }));
        let now = ProjectNow { schema_hash: "other", fingerprints: Some(&changed), ..NOW };
        assert!(matches!(
            plan_sync(&manifest(Some("2026-01-02 03:04")), Some(&held), &log, now),
            SyncPlan::Rebuild { .. }
        ));
        // The same schema: nothing is rebuilt, whatever the fingerprints say.
        let now = ProjectNow { fingerprints: Some(&changed), ..NOW };
        assert!(
            matches!(plan_sync(&m, Some(&held), &log, now), SyncPlan::Update { ref rebuild, .. } if rebuild.is_empty())
        );
    }

    #[test]
    fn the_watermark_is_the_newest_log_time_never_before_the_zone_floor() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-03T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let floor = watermark_floor(now.into());
        assert_eq!(floor, "2026-01-02 00:00");
        assert_eq!(watermark(&[], &floor), floor);
        let log = [
            LogLine::new("2026-01-03 07:15", "Update record (API) 1", "", "1"),
            LogLine::new("2026-01-03 09:41", "Manage/Design", "Export Logging (API)", ""),
        ];
        assert_eq!(watermark(&log, &floor), "2026-01-03 09:41");
        let old = [LogLine::new("2025-12-01 07:15", "Update record (API) 1", "", "1")];
        assert_eq!(watermark(&old, &floor), floor);
    }

    #[test]
    fn lines_without_a_record_change_nothing() {
        assert_eq!(log_change(&LogLine::new("t", "Manage/Design", "Export Logging (API)", "")), None);
        assert_eq!(
            log_change(&LogLine::new("t", "Update record (import) 5", "mugshot = '26'", "5")),
            Some(LogChange::Changed("5".into())),
            "REDCapR's recorded log (log-read/2024-10-11.R)"
        );
    }
}
