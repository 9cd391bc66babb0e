//! `records import --check`, `--diff` and `--only-changed`: what happens before an import.
//!
//! A real import is checked by default: the project schema is fetched (a handful of export
//! calls) and rows with errors stop the import before anything is sent, because a batched
//! import that fails half-way has already saved its earlier batches, and some mistakes
//! (a field on an instrument the event does not have, a repeating row without its instrument)
//! are not refused by REDCap but stored somewhere the user did not mean. Warnings (values
//! outside a field's range, which REDCap saves) are printed and do not stop it. `--no-check`
//! imports without looking.

use std::collections::BTreeSet;

use redcap::dataset::blocking::Datasets;
use redcap::dataset::check::{CheckOptions, Checker, Problem, Severity};
use redcap::dataset::diff::{Change, Diff, diff};
use redcap::dataset::{ProjectSchema, PullError, names};
use redcap::{DateFormat, Format as WireFormat, MethodInfo, RecordType, Row, record};

use crate::error::{CliError, ExitKind, from_call, from_workflow, plural};
use crate::output;
use crate::progress::Ui;
use crate::session::Session;

/// The schema's calls and the export of stored records (`--diff`), as a pull makes them.
const CALLS: &[&MethodInfo] = super::dataset::PULL;

/// The check and diff options of `records import`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CheckArgs {
    /// Only check the rows against the project's data dictionary: print each problem (row,
    /// record, field, value, why), send nothing, exit 1 when there is one
    #[arg(long, conflicts_with_all = ["diff", "only_changed", "no_check"])]
    pub check: bool,
    /// Only show the cells the import would change (including what --overwrite would blank),
    /// from an export of the import's records and fields; send nothing
    #[arg(long, conflicts_with_all = ["only_changed"])]
    pub diff: bool,
    /// Send only the cells that change (each row keeps its record id, event and repeat columns)
    #[arg(long)]
    pub only_changed: bool,
    /// Import without checking the rows against the data dictionary first
    #[arg(long)]
    pub no_check: bool,
}

/// Runs the check and diff before an import. Returns the rows to import, or `None` when
/// nothing is to be sent (`--check`, `--diff`, nothing changed).
pub fn before_import(
    session: &Session,
    ui: &Ui,
    rows: Vec<Row>,
    args: &CheckArgs,
    overwrite: bool,
    date_format: DateFormat,
    batch_size: usize,
) -> Result<Option<Vec<Row>>, CliError> {
    if args.no_check && !args.diff && !args.only_changed {
        return Ok(Some(rows));
    }
    let schema = project_schema(session)?;
    let now = redcap::dataset::now_utc().replacen('T', " ", 1).chars().take(19).collect::<String>();
    // REDCap's `today`/`now` are the server's; UTC is as close as the client can tell, and
    // range problems are only warnings.
    let checker = Checker::new(&schema, CheckOptions::default().date_format(date_format).now(now))
        .map_err(|e| CliError::new(ExitKind::Other, e.to_string()))?;
    let problems = checker.check_flat(&rows);
    if args.check {
        print_problems(ui, &problems, rows.len())?;
        if problems.is_empty() {
            ui.status(format!("No problems in {} row{}; nothing was sent.", rows.len(), plural(rows.len())));
            return Ok(None);
        }
        return Err(found(&problems).hint("nothing was sent"));
    }
    if !args.no_check {
        let errors: Vec<Problem> = problems.iter().filter(|p| p.severity == Severity::Error).cloned().collect();
        for p in problems.iter().filter(|p| p.severity == Severity::Warning) {
            ui.warn(line(p));
        }
        if !errors.is_empty() {
            for p in &errors {
                crate::output::to_stderr(format!("{}\n", crate::error::redact(&line(p))));
            }
            return Err(found(&errors)
                .hint("nothing was sent; `--check` lists every problem, `--no-check` imports without checking"));
        }
    }
    if !(args.diff || args.only_changed) {
        return Ok(Some(rows));
    }
    let stored = export_stored(session, &checker, &schema, &rows, batch_size)?;
    let d = diff(&checker, &rows, &stored, overwrite);
    if args.diff {
        print_diff(ui, &d)?;
        return Ok(None);
    }
    let cells = d.changes.len();
    if d.changed_rows.is_empty() {
        ui.status(format!("Nothing to change in {} row{}; nothing was sent.", rows.len(), plural(rows.len())));
        if ui.json {
            output::json(&serde_json::json!({"imported": 0, "rows": 0, "changed_cells": 0}))?;
        }
        return Ok(None);
    }
    ui.status(format!(
        "Sending {cells} changed cell{} in {} of {} row{}.",
        plural(cells),
        d.changed_rows.len(),
        rows.len(),
        plural(rows.len())
    ));
    Ok(Some(d.changed_rows))
}

fn project_schema(session: &Session) -> Result<ProjectSchema, CliError> {
    session.client.project_schema().map_err(|e| match e {
        PullError::Workflow(w) => from_workflow(&w, &session.ctx(CALLS)),
        other => CliError::new(ExitKind::Other, other.to_string()),
    })
}

fn found(problems: &[Problem]) -> CliError {
    let n = problems.len();
    let rows: BTreeSet<usize> = problems.iter().map(|p| p.row).collect();
    CliError::new(
        ExitKind::Other,
        format!("{n} problem{} in {} row{} of the import", plural(n), rows.len(), plural(rows.len())),
    )
}

/// One problem as one line: `row 3 (record 1, baseline_arm_1): sex = "Male": why`.
fn line(p: &Problem) -> String {
    let event = p.event.as_deref().map(|e| format!(", {e}")).unwrap_or_default();
    let severity = if p.severity == Severity::Warning { "warning: " } else { "" };
    format!("row {} (record {}{event}): {severity}{} = {:?}: {}", p.row, p.record, p.field, p.value, p.reason)
}

fn print_problems(ui: &Ui, problems: &[Problem], rows: usize) -> Result<(), CliError> {
    if ui.json {
        let value = serde_json::json!({"rows": rows, "problems": problems});
        return output::json(&value);
    }
    if problems.is_empty() {
        return Ok(());
    }
    let table: Vec<Vec<String>> = problems
        .iter()
        .map(|p| {
            vec![
                p.row.to_string(),
                p.record.clone(),
                p.event.clone().unwrap_or_default(),
                p.field.clone(),
                p.value.clone(),
                match p.severity {
                    Severity::Warning => format!("warning: {}", p.reason),
                    _ => p.reason.clone(),
                },
            ]
        })
        .collect();
    output::text(crate::error::redact(&output::table(&["row", "record", "event", "field", "value", "problem"], &table)))
}

fn print_diff(ui: &Ui, d: &Diff) -> Result<(), CliError> {
    if ui.json {
        let value =
            serde_json::json!({"changes": d.changes, "rows": d.changed_rows.len(), "new_records": d.new_records});
        return output::json(&value);
    }
    let place = |c: &Change| {
        let mut s = c.event.clone().unwrap_or_default();
        if let Some(i) = &c.repeat_instrument {
            s = if s.is_empty() { i.clone() } else { format!("{s} {i}") };
        }
        if let Some(n) = &c.repeat_instance {
            s.push_str(&format!(" #{n}"));
        }
        s.trim().to_owned()
    };
    let table: Vec<Vec<String>> = d
        .changes
        .iter()
        .map(|c| {
            let kind =
                serde_json::to_value(c.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            vec![c.row.to_string(), c.record.clone(), place(c), c.field.clone(), c.old.clone(), c.new.clone(), kind]
        })
        .collect();
    if !table.is_empty() {
        output::text(crate::error::redact(&output::table(
            &["row", "record", "where", "field", "now", "after import", "change"],
            &table,
        )))?;
    }
    let n = d.changes.len();
    ui.status(format!(
        "{n} cell{} would change in {} row{} ({} new record{}); nothing was sent.",
        plural(n),
        d.changed_rows.len(),
        plural(d.changed_rows.len()),
        d.new_records,
        plural(d.new_records)
    ));
    Ok(())
}

/// What REDCap holds for the import's records: a flat raw export of only those records, only
/// the fields (and form statuses) the import has, only its events, in batches of `batch_size`.
fn export_stored(
    session: &Session,
    checker: &Checker,
    schema: &ProjectSchema,
    rows: &[Row],
    batch_size: usize,
) -> Result<Vec<Row>, CliError> {
    let id_field = checker.id_field().to_owned();
    let mut fields = vec![id_field.clone()];
    let mut seen_columns = BTreeSet::new();
    let mut events = BTreeSet::new();
    let mut ids = Vec::new();
    let mut seen_ids = BTreeSet::new();
    let mut dags = false;
    for row in rows {
        for (column, value) in row {
            if !seen_columns.insert(column.clone()) {
                continue;
            }
            let field = checker.field_of(column).map(str::to_owned).or_else(|| {
                // REDCap takes `<form>_complete` in `fields` (PyCap asks for it that way).
                checker.status_of(column).map(|_| column.clone())
            });
            if let Some(f) = field.filter(|f| !fields.contains(f)) {
                fields.push(f);
            }
            dags |= column == names::DAG && !output::cell_text(value).is_empty();
        }
        let cell = |k: &str| row.get(k).map(output::cell_text).unwrap_or_default();
        let id = cell(&id_field);
        if !id.is_empty() && seen_ids.insert(id.clone()) {
            ids.push(id);
        }
        let e = cell(names::EVENT);
        if !e.is_empty() {
            events.insert(e);
        }
    }
    let known_events: BTreeSet<String> =
        schema.events.iter().filter_map(|r| r.get("unique_event_name").map(output::cell_text)).collect();
    let ctx = session.ctx(CALLS);
    let mut stored = Vec::new();
    for chunk in ids.chunks(batch_size.max(1)) {
        let mut r = record::export::Request::new();
        r.records = chunk.to_vec();
        r.fields = fields.clone();
        // Unknown events were reported by the check; asking for them would fail the export.
        r.events = events.iter().filter(|e| known_events.contains(*e)).cloned().collect();
        r.export_data_access_groups = dags;
        r.format = Some(WireFormat::Json);
        r.record_type = Some(RecordType::Flat);
        let answer = session.client.call(&r).map_err(|e| from_call(&e, &ctx))?;
        stored.extend(answer.rows().map_err(|e| from_call(&redcap::Error::Decode(e), &ctx))?);
    }
    Ok(stored)
}
