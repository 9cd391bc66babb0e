//! `redcap dataset pull`: the project as typed tables, one per instrument.

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use redcap::dataset::blocking::Datasets;
use redcap::dataset::{LayoutOptions, Manifest, OutputFormat, PullError, PullOptions, PullSummary, SyncOptions};
use redcap::{MethodInfo, arm, dag, event, instrument, log, metadata, project, record, repeating, version};

use crate::error::{CliError, ExitKind, from_workflow, plural};
use crate::progress::Ui;
use crate::session::Session;

/// The calls of a pull: the project schema's, then the record exports.
pub(crate) const PULL: &[&MethodInfo] = &[
    &version::export::INFO,
    &project::export_info::INFO,
    &metadata::export::INFO,
    &metadata::export_field_names::INFO,
    &instrument::export::INFO,
    &event::export::INFO,
    &arm::export::INFO,
    &instrument::export_event_mappings::INFO,
    &repeating::export::INFO,
    &dag::export::INFO,
    &log::export::INFO,
    &record::export::INFO,
];

/// `redcap dataset …`.
#[derive(Debug, Subcommand)]
pub enum DatasetCmd {
    /// Pull the project into DIR as typed tables: one per instrument, typed by the data dictionary
    #[command(
        long_about = "Pulls the project's records into DIR as an analysis-ready dataset: \
                      DIR/<instrument>.parquet for each instrument (keyed by the record id, the event \
                      and the repeat instance; every column typed from the data dictionary), \
                      DIR/_dictionary.parquet, DIR/_problems.parquet (values that do not fit their \
                      type, which are null in the tables) and DIR/_manifest.json. Records are \
                      exported in batches of whole records, so memory is bounded by the batch; an \
                      interrupted pull continues with --resume.",
        after_help = "Examples:\n  redcap dataset pull study\n  redcap dataset pull study --forms demographics,visit --labels\n  \
                      redcap dataset pull study --format arrow --batch-size 1000 --resume\n\n\
                      Read it with DuckDB: SELECT * FROM 'study/demographics.parquet';"
    )]
    Pull {
        /// The dataset's directory (created if needed)
        dir: PathBuf,
        /// File format of the tables
        #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
        format: FormatArg,
        /// Only these instruments (comma-separated or repeated)
        #[arg(long, value_delimiter = ',', value_name = "FORM")]
        forms: Vec<String>,
        /// Only these events (longitudinal projects)
        #[arg(long, value_delimiter = ',', value_name = "EVENT")]
        events: Vec<String>,
        /// Only these records
        #[arg(long, value_delimiter = ',', value_name = "RECORD")]
        records: Vec<String>,
        /// Records per export call
        #[arg(long, default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        batch_size: u64,
        /// Batch exports in flight at once (1 to 16; 1: each batch is exported while the one
        /// before it is written; 2: while each batch is written, the next two are exported)
        #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=16))]
        parallel: u64,
        /// Add a label column (`<field>___label`) beside each choice code column
        #[arg(long)]
        labels: bool,
        /// Continue an interrupted pull (same project, dictionary and options) from its last batch
        #[arg(long)]
        resume: bool,
    },
    /// Bring a dataset written by `dataset pull` up to date: only the records that changed
    #[command(
        long_about = "Brings DIR (written by `redcap dataset pull`) up to date. Reads the project's \
                      logging since the dataset's watermark (minus --overlap minutes: REDCap's log \
                      has minute resolution, in the server's time), re-exports the records that were \
                      created or changed (whole records, in batches), removes deleted and renamed-away \
                      records, and commits the new tables atomically: a crash leaves the previous \
                      dataset readable, and the next run completes the job. A changed data \
                      dictionary or REDCap version, or a token without the Logging right, rebuilds \
                      the dataset in full. The options of the pull (forms, events, format, labels) are \
                      kept.",
        after_help = "Examples:\n  redcap dataset sync study\n  redcap dataset sync study --json\n  \
                      redcap dataset sync study --batch-size 200 --overlap 15"
    )]
    Sync {
        /// The dataset's directory
        dir: PathBuf,
        /// Records per export call (default: the pull's)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        batch_size: Option<u64>,
        /// Minutes of logging re-read before the watermark
        #[arg(long, default_value_t = 5, value_name = "MINUTES")]
        overlap: u32,
        /// Batches asked for at once (1 to 16): of changed records, or of a rebuild
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=16))]
        parallel: u64,
    },
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Apache Parquet (Snappy)
    Parquet,
    /// Arrow IPC file (Feather v2)
    Arrow,
    /// CSV (types are not kept)
    Csv,
}

/// `redcap dataset pull`'s work: the pull, with progress on a terminal.
pub fn pull(session: &Session, dir: &Path, options: &PullOptions, ui: &Ui) -> Result<PullSummary, CliError> {
    let progress = ui.observer();
    session.client.pull_dataset(dir, options, progress.as_ref()).map_err(|e| pull_error(e, session))
}

/// What a pull did, in one line.
pub fn pull_summary(m: &Manifest, dir: &Path) -> String {
    let problems = m.tables.get(redcap::dataset::names::PROBLEMS).map_or(0, |t| t.rows);
    let tables = m.tables.len().saturating_sub(2);
    format!(
        "Pulled {} record{} into {} ({tables} table{}, {problems} problem{}).",
        m.records,
        plural(m.records as usize),
        dir.display(),
        plural(tables),
        plural(problems as usize),
    )
}

/// Runs a `dataset` subcommand.
pub fn run(cmd: &DatasetCmd, session: &Session, ui: &Ui) -> Result<(), CliError> {
    match cmd {
        DatasetCmd::Pull { dir, format, forms, events, records, batch_size, parallel, labels, resume } => {
            let format = match format {
                FormatArg::Parquet => OutputFormat::Parquet,
                FormatArg::Arrow => OutputFormat::Arrow,
                FormatArg::Csv => OutputFormat::Csv,
            };
            let options = PullOptions::default()
                .format(format)
                .layout(LayoutOptions::default().forms(forms.clone()).events(events.clone()).labels(*labels))
                .records(records.clone())
                .batch_size(*batch_size as usize)
                .parallel(*parallel as usize)
                .resume(*resume);
            let summary = pull(session, dir, &options, ui)?;
            let m = &summary.manifest;
            if ui.json {
                let manifest = serde_json::to_value(m).map_err(|e| CliError::new(ExitKind::Other, e.to_string()))?;
                crate::output::json(&manifest)?;
            }
            let problems = m.tables.get(redcap::dataset::names::PROBLEMS).map_or(0, |t| t.rows);
            if summary.resumed_batches > 0 {
                ui.status(format!(
                    "Resumed after {} batch{}.",
                    summary.resumed_batches,
                    if summary.resumed_batches == 1 { "" } else { "es" }
                ));
            }
            ui.status(pull_summary(m, dir));
            if problems > 0 {
                ui.status(format!(
                    "Values that did not fit their type are null and listed in {}.",
                    dir.join(&m.tables[redcap::dataset::names::PROBLEMS].file).display()
                ));
            }
            Ok(())
        }
        DatasetCmd::Sync { dir, batch_size, overlap, parallel } => {
            let mut options = SyncOptions::default().overlap_minutes(i64::from(*overlap)).parallel(*parallel as usize);
            if let Some(n) = batch_size {
                options = options.batch_size(*n as usize);
            }
            let progress = ui.observer();
            let summary = session.client.sync_dataset(dir, &options, progress.as_ref()).map_err(|e| match e {
                PullError::Dataset(redcap::dataset::Error::Local { path, source })
                    if source.kind() == std::io::ErrorKind::NotFound && !dir.join("_manifest.json").exists() =>
                {
                    CliError::usage(format!("{} is not a dataset: {} is missing", dir.display(), path.display()))
                        .hint("write one with `redcap dataset pull DIR` first")
                }
                e => pull_error(e, session),
            })?;
            drop(progress);
            let m = &summary.manifest;
            if ui.json {
                let value = serde_json::json!({
                    "fetched": summary.fetched.len(),
                    "dropped": summary.dropped.len(),
                    "fetched_records": summary.fetched,
                    "dropped_records": summary.dropped,
                    "rebuilt": summary.rebuilt.as_ref().map(ToString::to_string),
                    "rebuilt_tables": summary.rebuilt_tables,
                    "records": m.records,
                    "watermark": m.watermark,
                    "tables": m.tables,
                });
                crate::output::json(&value)?;
            }
            match &summary.rebuilt {
                Some(reason) => ui.status(format!(
                    "Rebuilt {} in full ({reason}): {} record{}.",
                    dir.display(),
                    m.records,
                    plural(m.records as usize)
                )),
                None => ui.status(format!(
                    "Synced {}: {} record{} re-exported, {} removed, {} in the dataset{}.",
                    dir.display(),
                    summary.fetched.len(),
                    plural(summary.fetched.len()),
                    summary.dropped.len(),
                    m.records,
                    if summary.rebuilt_tables.is_empty() {
                        String::new()
                    } else {
                        format!("; rebuilt for a dictionary change: {}", summary.rebuilt_tables.join(", "))
                    }
                )),
            }
            Ok(())
        }
    }
}

/// A failed pull or sync as the CLI reports it (exit codes as the other commands').
fn pull_error(e: PullError, session: &Session) -> CliError {
    match e {
        PullError::Workflow(w) => from_workflow(&w, &session.ctx(PULL)),
        PullError::Dataset(redcap::dataset::Error::Local { path, source }) => CliError::local(&path, "write", &source),
        PullError::Dataset(
            d @ (redcap::dataset::Error::UnknownInstrument(_) | redcap::dataset::Error::UnknownEvent(_)),
        ) => CliError::usage(d.to_string())
            .hint("`redcap call instrument.export` and `redcap call event.export` list them"),
        PullError::Dataset(d @ redcap::dataset::Error::SelectionGone { flag, .. }) => {
            let what = if flag == "--forms" { "instruments" } else { "events" };
            let hint = format!(
                "pull the dataset again with the {what} the project has now: `redcap dataset pull DIR {flag} …`"
            );
            CliError::usage(d.to_string()).hint(hint)
        }
        PullError::Dataset(d @ redcap::dataset::Error::InTheWay { .. }) => {
            CliError::new(ExitKind::Local, d.to_string())
                .hint("move that file away, or give the dataset a directory of its own")
        }
        PullError::Dataset(d @ redcap::dataset::Error::NotADirectory(_)) => {
            CliError::new(ExitKind::Local, d.to_string()).hint("give a directory for the dataset (created if missing)")
        }
        PullError::Dataset(d) => CliError::new(ExitKind::Other, d.to_string()),
        other => CliError::new(ExitKind::Other, other.to_string()),
    }
}
