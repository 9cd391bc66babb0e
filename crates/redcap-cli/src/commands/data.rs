//! `redcap report export` and `redcap records export|import`.

use std::io::Read;
use std::path::Path;

use redcap::blocking::Workflows;
use redcap::workflow::{BatchOptions, ImportOptions, RawRow, ReportId, ReportOptions, WorkflowError};
use redcap::{DateFormat, MethodInfo, RawOrLabel, Row, metadata, record, report};

use crate::cli::{DateFormatArg, InputFormat, RecordsCmd, ReportCmd};
use crate::error::{CallContext, CliError, ExitKind, from_call, from_workflow, plural};
use crate::output::{self, Format};
use crate::progress::Ui;
use crate::session::Session;

const REPORT: &[&MethodInfo] = &[&report::export::INFO];
const EXPORT: &[&MethodInfo] = &[&metadata::export::INFO, &record::export::INFO];
const IMPORT: &[&MethodInfo] = &[&metadata::export::INFO, &record::import::INFO];

/// Runs a `report` subcommand.
pub fn run_report(cmd: &ReportCmd, session: &Session) -> Result<(), CliError> {
    match cmd {
        ReportCmd::Export { id, out } => {
            let ctx = CallContext { output: out.output.as_deref(), ..session.ctx(REPORT) };
            let options = report_options(out.labels);
            if out.format == Format::Csv {
                // CSV goes straight from REDCap to the destination, in constant memory.
                return output::to_destination(out.output.as_deref(), |w| {
                    session.client.export_report_csv(*id, &options, w).map(|_| ()).map_err(|e| from_workflow(&e, &ctx))
                });
            }
            // Other formats: rows written as the answer streams in, in constant memory.
            let path = out.output.as_deref();
            let write_error = |e: &std::io::Error| match path {
                Some(p) if p.as_os_str() != "-" => CliError::local(p, "write", e),
                _ => CliError::stdout(e),
            };
            output::to_destination(path, |w| {
                let mut sink = output::RowSink::new(out.format, w);
                let mut failed_write = None;
                let exported = session.client.export_report_each(*id, &options, &mut |row| {
                    sink.row(row).map_err(|e| {
                        failed_write = Some(write_error(&e));
                        WorkflowError::Local { path: path.unwrap_or(Path::new("-")).into(), source: e }
                    })
                });
                if let Some(e) = failed_write {
                    return Err(e);
                }
                exported.map_err(|e| from_workflow(&e, &ctx))?;
                sink.finish().map(drop).map_err(|e| write_error(&e))
            })
        }
    }
}

fn report_options(labels: bool) -> ReportOptions {
    let mut o = ReportOptions::default();
    if labels {
        o.raw_or_label = Some(RawOrLabel::Label);
    }
    o
}

/// A report's rows.
pub fn report_rows(session: &Session, id: ReportId, labels: bool) -> Result<Vec<Row>, CliError> {
    session
        .client
        .export_report::<Row>(id, &report_options(labels))
        .map_err(|e| from_workflow(&e, &session.ctx(REPORT)))
}

/// Runs a `records` subcommand.
pub fn run_records(cmd: &RecordsCmd, session: &Session, ui: &Ui) -> Result<(), CliError> {
    match cmd {
        RecordsCmd::Export { fields, forms, events, records, filter, batch_size, parallel, out } => {
            let mut template = record::export::Request::new();
            template.fields = fields.clone();
            template.forms = forms.clone();
            template.events = events.clone();
            template.records = records.clone();
            template.filter_logic = filter.clone();
            if !forms.is_empty() && fields.is_empty() {
                // REDCap returns only the named forms' fields, without the record id when it
                // is on another form, and the batched export needs the id to check each batch
                // (PyCap adds it the same way).
                template.fields = vec![record_id_field(session)?];
            }
            if out.labels {
                template.raw_or_label = Some(RawOrLabel::Label);
            }
            // No batch size: one call, with no id list first (issue 14: the list cost a second
            // full-size call); the id list is asked for only if that call fails, to heal it.
            let options = match batch_size {
                Some(n) => BatchOptions::default().batch_size(*n as usize).parallel(*parallel as usize),
                None => BatchOptions::default().one_call(),
            };
            let progress = ui.observer();
            let path = out.output.as_deref();
            let write_error = |e: &std::io::Error| match path {
                Some(p) if p.as_os_str() != "-" => CliError::local(p, "write", e),
                _ => CliError::stdout(e),
            };
            // The destination is opened first (a wrong -o fails before any export), and rows
            // are written as each batch's answer streams in: constant memory at any size.
            let n = output::to_destination(path, |w| {
                let mut sink = output::RowSink::new(out.format, w);
                let mut failed_write = None;
                let mut failed = |e: std::io::Error| {
                    failed_write = Some(write_error(&e));
                    WorkflowError::Local { path: path.unwrap_or(Path::new("-")).into(), source: e }
                };
                let (client, progress) = (&session.client, progress.as_ref());
                let exported = if sink.format() == Format::Json {
                    // JSON out: each row goes out as the server's own object, never a map.
                    client.export_records_each(&template, &options, progress, &mut |row: RawRow| {
                        sink.raw_json(row.json()).map_err(&mut failed)
                    })
                } else {
                    client.export_records_each(&template, &options, progress, &mut |row: Row| {
                        sink.row(row).map_err(&mut failed)
                    })
                };
                if let Some(e) = failed_write {
                    return Err(e);
                }
                let summary = exported.map_err(|e| from_workflow(&e, &session.ctx(EXPORT)))?;
                if summary.healing.healed() {
                    // What it took to get every record: the user may want a smaller --batch-size.
                    ui.status(format!("Some batches failed and were split until they passed: {}.", summary.healing));
                }
                if sink.is_empty() && sink.format() == Format::Csv {
                    sink.header_if_empty(empty_csv_header(session, fields, forms)?);
                }
                sink.finish().map_err(|e| write_error(&e))
            })?;
            drop(progress);
            if path.is_some_and(|p| p.as_os_str() != "-") {
                ui.status(format!("Exported {n} row{}.", plural(n as usize)));
            }
            Ok(())
        }
        RecordsCmd::Import { file, input_format, batch_size, overwrite, date_format, resume_from, check } => {
            let date_format = match date_format {
                DateFormatArg::YMD => DateFormat::Ymd,
                DateFormatArg::MDY => DateFormat::Mdy,
                DateFormatArg::DMY => DateFormat::Dmy,
            };
            let rows = read_rows(file, *input_format)?;
            let before = super::import_check::before_import(
                session,
                ui,
                rows,
                check,
                *overwrite,
                date_format,
                *batch_size as usize,
            )?;
            let Some(rows) = before else { return Ok(()) };
            let n_rows = rows.len();
            let import = ImportOptions::default().overwrite(*overwrite).date_format(date_format);
            let options =
                BatchOptions::default().batch_size(*batch_size as usize).resume_from(resume_from.unwrap_or(1) as usize);
            let progress = ui.observer();
            let count = session
                .client
                .import_records_batched(&rows, &import, &options, progress.as_ref())
                .map_err(|e| from_workflow(&e, &session.ctx(IMPORT)))?;
            drop(progress);
            if ui.json {
                output::json(&serde_json::json!({"imported": count, "rows": n_rows}))?;
            }
            ui.status(format!("Imported {count} record{} ({n_rows} row{}).", plural(count as usize), plural(n_rows)));
            Ok(())
        }
    }
}

/// The header of a CSV export that matched no record: the export columns of the fields asked
/// for (checkboxes expanded, as REDCap names them), else of the forms asked for, else of all.
fn empty_csv_header(session: &Session, fields: &[String], forms: &[String]) -> Result<Vec<String>, CliError> {
    let ctx = session.ctx(&EXPORT[..1]);
    let names =
        session.client.call(&metadata::export_field_names::Request::new()).map_err(|e| from_call(&e, &ctx))?.into_vec();
    let mut in_forms = std::collections::BTreeSet::new();
    if !forms.is_empty() {
        let meta = session.client.call(&metadata::export::Request::new()).map_err(|e| from_call(&e, &ctx))?;
        for row in meta.raw().rows().map_err(|e| from_call(&redcap::Error::Decode(e), &ctx))? {
            let cell = |k: &str| row.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            if forms.contains(&cell("form_name")) {
                in_forms.insert(cell("field_name"));
            }
        }
    }
    let keep = |original: &str| {
        (fields.is_empty() && forms.is_empty()) || fields.iter().any(|f| f == original) || in_forms.contains(original)
    };
    Ok(names.into_iter().filter(|n| keep(&n.original_field_name)).map(|n| n.export_field_name).collect())
}

/// The project's record-id field (the data dictionary's first field).
fn record_id_field(session: &Session) -> Result<String, CliError> {
    let ctx = session.ctx(&EXPORT[..1]);
    let meta = session.client.call(&metadata::export::Request::new()).map_err(|e| from_call(&e, &ctx))?;
    redcap::workflow::id_field(&meta).map_err(|e| from_workflow(&e, &ctx))
}

/// Reads rows from a JSON array or a CSV file (`-`: stdin). A file that is empty, or whose
/// header is ambiguous (a name twice, an empty name, one column holding `;`), is refused: the
/// first is what a failed step before the import leaves, the others would import values into
/// the wrong field or none. A byte-order mark is skipped in both formats.
pub fn read_rows(path: &Path, format: Option<InputFormat>) -> Result<Vec<Row>, CliError> {
    use std::io::IsTerminal;
    let stdin = path.as_os_str() == "-";
    let by_extension = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("json") => Some(InputFormat::Json),
        Some("csv") => Some(InputFormat::Csv),
        _ => None,
    };
    if format.is_none() && by_extension.is_none() && !stdin {
        return Err(CliError::usage(format!("cannot tell the format of {}", path.display()))
            .hint("name it .json or .csv, or pass --input-format json|csv"));
    }
    if stdin && std::io::stdin().is_terminal() {
        // Nothing was piped in: reading would wait, silently, for records typed by hand.
        return Err(CliError::usage("`records import -` reads the records from standard input, which is a terminal")
            .hint("pipe or redirect them in (`redcap records import - < records.csv`), or give the file's path"));
    }
    let mut text = String::new();
    let read = if stdin {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| {
        let err = CliError::local(path, "read", &e);
        match e.kind() {
            // Excel's "Unicode text" (UTF-16) or a Latin-1 CSV.
            std::io::ErrorKind::InvalidData => {
                err.hint("the records must be UTF-8 text: save the file as UTF-8 (Excel: CSV UTF-8)")
            }
            _ => err,
        }
    })?;
    let name = if stdin { "standard input".to_owned() } else { path.display().to_string() };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if text.trim().is_empty() {
        return Err(CliError::new(ExitKind::Local, format!("{name} is empty: there are no records to import")).hint(
            "check the step that wrote it; a CSV file with only its header row imports nothing, without an error",
        ));
    }
    let format = format.or(by_extension).unwrap_or_else(|| sniff_format(text));
    let bad = |why: String| {
        CliError::new(
            ExitKind::Local,
            format!(
                "{name} is not valid {}: {why}",
                match format {
                    InputFormat::Json => "JSON records",
                    InputFormat::Csv => "CSV",
                }
            ),
        )
    };
    match format {
        InputFormat::Json => serde_json::from_str::<Vec<Row>>(text)
            .map_err(|e| bad(format!("{e} (expected an array of objects, one per row)"))),
        InputFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
            let header = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
            check_header(&header).map_err(bad)?;
            let mut rows = Vec::new();
            for rec in reader.records() {
                let rec = rec.map_err(|e| bad(e.to_string()))?;
                let mut row = Row::new();
                for (k, v) in header.iter().zip(rec.iter()) {
                    row.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
                }
                rows.push(row);
            }
            Ok(rows)
        }
    }
}

/// Why a CSV header cannot be imported as it is, if it cannot: a field named twice (the row
/// would keep one of the values, silently), an empty name, or one column that holds `;` or a
/// tab (a file from a spreadsheet set to another separator).
fn check_header(header: &csv::StringRecord) -> Result<(), String> {
    for (i, name) in header.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(format!("column {} of the header has no name (a trailing comma?)", i + 1));
        }
        if let Some(j) = header.iter().take(i).position(|n| n == name) {
            return Err(format!("the header names `{name}` twice (columns {} and {})", j + 1, i + 1));
        }
    }
    if let [only] = header.iter().collect::<Vec<_>>()[..] {
        if let Some(sep) = [';', '\t'].into_iter().find(|c| only.contains(*c)) {
            let shown = if sep == ';' { "`;`" } else { "tabs" };
            return Err(format!(
                "the header is one column, `{only}`: the file seems separated by {shown}, and REDCap's CSV by commas"
            ));
        }
    }
    Ok(())
}

/// The format of records read from stdin: JSON when the first character that is not blank (or
/// a byte-order mark) opens an array or object, else CSV (a header of field names).
pub fn sniff_format(text: &str) -> InputFormat {
    match text.trim_start_matches('\u{feff}').trim_start().chars().next() {
        Some('[' | '{') => InputFormat::Json,
        _ => InputFormat::Csv,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_format_is_sniffed() {
        assert_eq!(sniff_format("\u{feff}  [{\"record_id\":\"1\"}]"), InputFormat::Json);
        assert_eq!(sniff_format("\n{\"a\":1}"), InputFormat::Json);
        assert_eq!(sniff_format("record_id,age\n1,2\n"), InputFormat::Csv);
        assert_eq!(sniff_format("\u{feff}record_id\n"), InputFormat::Csv);
    }

    #[test]
    fn csv_and_json_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("r.csv");
        std::fs::write(&csv, "\u{feff}record_id,name\n1,\"Ada, L.\"\n2,\n").unwrap();
        let rows = read_rows(&csv, None).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["name"], "Ada, L.");
        assert_eq!(rows[1]["name"], "");
        let json = dir.path().join("r.json");
        std::fs::write(&json, r#"[{"record_id":"1"}]"#).unwrap();
        assert_eq!(read_rows(&json, None).unwrap().len(), 1);
        std::fs::write(&json, r#"{"record_id":"1"}"#).unwrap();
        assert_eq!(read_rows(&json, None).unwrap_err().kind, ExitKind::Local);
        assert_eq!(read_rows(&dir.path().join("r.txt"), None).unwrap_err().kind, ExitKind::Usage);
        assert_eq!(read_rows(&dir.path().join("none.csv"), None).unwrap_err().kind, ExitKind::Local);
    }
}
