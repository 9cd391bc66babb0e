//! Export / Import / Delete / Rename Records and Generate Next Record Name.

use std::collections::{BTreeSet, HashMap, HashSet};

use redcap_core::{ReturnFormat, WireEnum};
use serde_json::Value;

use super::{Ctx, Failure, HResult, Reply, bad, forbidden};
use crate::auth::DataExport;
use crate::input;
use crate::logic;
use crate::model::{Project, checkbox_column};
use crate::odm;
use crate::odm_out;
use crate::records::{self, CellOptions, Col, Dataset, Relevance};
use crate::render::{self, Out, RowWriter, Table};
use crate::store::{self, RowKey, Snapshot};
use crate::stream::{BodySink, Producer, StreamError};

/// `'a', 'b'` as REDCap lists bad values.
fn quoted_list(items: &[String]) -> String {
    items.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}

/// Cell options from `rawOrLabel`, `rawOrLabelHeaders`, `exportCheckboxLabel`, `decimalCharacter`.
pub(super) fn cell_options(ctx: &Ctx) -> Result<CellOptions, Failure> {
    let raw_or_label = |name: &str| -> Result<bool, Failure> {
        match ctx.params.get_nonempty(name) {
            None | Some("raw") => Ok(false),
            Some("label") => Ok(true),
            Some(_) => Err(bad(format!("The value of the parameter \"{name}\" is not valid"))),
        }
    };
    let labels = raw_or_label("rawOrLabel")?;
    let decimal = match ctx.params.get_nonempty("decimalCharacter") {
        None => None,
        Some(".") => Some('.'),
        Some(",") => Some(','),
        Some(_) => return Err(bad("The value of the parameter \"decimalCharacter\" is not valid")),
    };
    Ok(CellOptions {
        labels,
        label_headers: raw_or_label("rawOrLabelHeaders")?,
        checkbox_labels: labels && ctx.params.flag("exportCheckboxLabel"),
        decimal,
        remove_line_breaks: false,
        blank_gray_status: ctx.params.flag("exportBlankForGrayFormStatus"),
    })
}

/// Renders rows; label headers only apply to CSV (reference §3.1).
pub(super) fn render_rows(ctx: &Ctx, out: Out, cols: &[Col], rows: Vec<Vec<Value>>, opts: &CellOptions) -> HResult {
    let label_headers = opts.label_headers && matches!(out, Out::Csv(_));
    let t = Table { columns: records::headers(&ctx.project, cols, label_headers), rows, ..Table::default() };
    let (ct, body) = render::table(out, &t, "records");
    Ok(Reply::Body { content_type: ct.into(), body })
}

/// The rows and names an export selects: `fields`, `forms`, `events`, `records`,
/// `dateRangeBegin`/`End` and `filterLogic`, limited by the caller's DAG and export level.
pub(super) struct Selection {
    /// Selected names (fields, the record id, `<form>_complete`) in metadata order.
    pub names: Vec<String>,
    pub data: Dataset,
    /// Indexes of the selected rows in `data.rows`.
    pub rows: Vec<usize>,
}

/// Parses the selection parameters shared by Export Records and Export Project XML, and lists
/// the records they can select.
pub(super) fn plan(ctx: &mut Ctx, level: DataExport, with_dag: bool, survey: bool) -> Result<Plan, Failure> {
    let project = ctx.project.clone();
    let p = &*project;
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let fields = ctx.params.list("fields");
    let forms = ctx.params.list("forms");
    if let Some(fields) = &fields {
        let mut invalid = Vec::new();
        for f in fields {
            if f == &p.def.record_id_field || p.field(f).is_some() || p.complete_form(f).is_some() {
                wanted.insert(f.clone());
            } else if let Some(base) = checkbox_base(p, f) {
                wanted.insert(base);
            } else {
                invalid.push(f.clone());
            }
        }
        if !invalid.is_empty() {
            return Err(bad(format!(
                "The following values in the parameter \"fields\" are not valid: {}",
                quoted_list(&invalid)
            )));
        }
    }
    if let Some(forms) = &forms {
        let invalid: Vec<String> = forms.iter().filter(|f| !p.has_form(f)).cloned().collect();
        if !invalid.is_empty() {
            return Err(bad(format!(
                "The following values in the parameter \"forms\" are not valid: {}",
                quoted_list(&invalid)
            )));
        }
    }
    let names = records::names_in_metadata_order(p, |name, form| {
        if fields.is_none() && forms.is_none() {
            return true;
        }
        wanted.contains(name) || forms.as_ref().is_some_and(|fs| fs.iter().any(|f| f == form))
    });
    let names: Vec<String> = names.into_iter().filter(|n| !ctx.export_hides(level, n)).collect();

    let events = ctx.params.list("events");
    if let (Some(events), true) = (&events, p.def.longitudinal) {
        let invalid: Vec<String> = events.iter().filter(|e| p.event(e).is_none()).cloned().collect();
        if !invalid.is_empty() {
            return Err(bad(format!(
                "The following values in the parameter \"events\" are not valid: {}",
                quoted_list(&invalid)
            )));
        }
    }
    // dateRangeBegin/End: records created or modified in the range (server time, here UTC).
    let (begin, end) = (ctx.params.get_nonempty("dateRangeBegin"), ctx.params.get_nonempty("dateRangeEnd"));
    let in_range: Option<HashSet<String>> = if begin.is_some() || end.is_some() {
        Some(ctx.store.records_modified_between(p.id(), begin, end)?.into_iter().collect())
    } else {
        None
    };
    let filter = logic::compile(p, ctx.params.get("filterLogic").unwrap_or("")).map_err(bad)?;
    let cols = records::columns(p, &names, with_dag, false, survey);

    // The records, in export order: `records=` looks each name up by key; otherwise all of them.
    let all_records = ctx.params.list("records").is_none();
    let mut recs = match ctx.params.list("records") {
        Some(wanted) => {
            let unique: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
            store::records_named(&ctx.store.conn, p.id(), unique)?
        }
        None => ctx.store.records(p.id())?,
    };
    recs.retain(|(r, dag)| {
        ctx.user.dag_id.is_none_or(|d| *dag == Some(d)) && in_range.as_ref().is_none_or(|set| set.contains(r))
    });
    records::sort_records(&mut recs);
    let events = if p.def.longitudinal { events } else { None };
    Ok(Plan { names, cols, records: recs, all_records, events, filter })
}

/// What an export selects, before any value is read.
pub(super) struct Plan {
    /// Selected names (fields, the record id, `<form>_complete`) in metadata order.
    pub names: Vec<String>,
    /// Flat columns for `names`.
    pub cols: Vec<Col>,
    /// The records that may contribute rows, in export order, with their DAG.
    pub records: Vec<(String, Option<i64>)>,
    /// Whether `records` are the whole project's (no `records=`; a DAG or a date range may
    /// still have left some out).
    all_records: bool,
    /// `events=` (longitudinal projects only).
    events: Option<Vec<String>>,
    filter: Option<logic::Filter>,
}

impl Plan {
    /// Whether the export is of the record id alone (with the event, repeat and DAG columns),
    /// which reads no value.
    fn keys_only(&self) -> bool {
        self.filter.is_none()
            && self.cols.iter().all(|c| {
                matches!(c, Col::RecordId | Col::EventName | Col::RepeatInstrument | Col::RepeatInstance | Col::Dag)
            })
    }

    /// Whether a loaded row is selected: its event, its relevance to the columns, the filter.
    pub fn keeps(&self, p: &Project, data: &Dataset, row: &records::RowData, relevance: &mut Relevance) -> bool {
        let key = &row.key;
        self.events.as_ref().is_none_or(|e| e.contains(&key.event))
            && relevance.of(p, &self.cols, key)
            && self.filter.as_ref().is_none_or(|f| f.matches(p, data, row))
    }
}

/// [`plan`], then every selected row loaded at once (ODM and project XML build one document).
pub(super) fn select(ctx: &mut Ctx, level: DataExport, with_dag: bool, survey: bool) -> Result<Selection, Failure> {
    let plan = plan(ctx, level, with_dag, survey)?;
    let p = &*ctx.project;
    let data = Dataset::load_records(&ctx.store.conn, ctx.store.blob_dir(), p, plan.records.clone())?;
    let mut relevance = Relevance::default();
    let rows = (0..data.rows.len()).filter(|&i| plan.keeps(p, &data, &data.rows[i], &mut relevance)).collect();
    Ok(Selection { names: plan.names, data, rows })
}

/// Export Records: flat or eav in json/csv/xml, or ODM (ClinicalData).
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let level = ctx.need_data_export()?;
    let eav = match ctx.params.get_nonempty("type") {
        None | Some("flat") => false,
        Some("eav") => true,
        Some(_) => return Err(bad("The value of the parameter \"type\" is not valid")),
    };
    let odm = ctx.params.format() == Ok(redcap_core::Format::Odm);
    let out = if odm { Out::Xml } else { ctx.out(false)? };
    let opts = cell_options(ctx)?;
    // exportDataAccessGroups has no effect for users in a DAG.
    let with_dag = ctx.params.flag("exportDataAccessGroups") && ctx.user.dag_id.is_none();
    let survey = ctx.params.flag("exportSurveyFields");
    if !odm {
        // Flat and EAV bodies stream from a snapshot, a few records at a time.
        let plan = plan(ctx, level, with_dag, survey)?;
        ctx.log("export", "Data export (API)", &format!("Export records (API): {} records", plan.records.len()), "")?;
        let label_headers = opts.label_headers && matches!(out, Out::Csv(_));
        if plan.records.len() <= RECORDS_PER_STEP {
            // One step (a one-record look-up) is rendered here, through the store's own connection
            // and its warm cache, while this handler holds the store: no snapshot, no second
            // thread. 4,000 one-record calls from 64 clients took 1.3 s of the emulator's CPU
            // through a snapshot and 0.8 s this way.
            let body = Rendering { p: &ctx.project, plan: &plan, out, eav, label_headers, opts: &opts };
            let mut sink = BodySink::whole();
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            read_steps(&ctx.store.conn, ctx.store.blob_dir(), body, (0, 1), None, &tx)?;
            drop(tx);
            // (No records: no step, and an empty body.)
            render_steps(&mut sink, body, plan.records.len().div_ceil(RECORDS_PER_STEP), &[rx])?;
            return Ok(Reply::Body { content_type: render::content_type(out).into(), body: sink.into_body() });
        }
        // A larger export is read by two connections. Both read transactions begin here, while
        // this handler holds the store (no write commits in between): one consistent state.
        let snapshot = ctx.store.snapshot()?;
        let second = ctx.store.snapshot()?;
        let project = ctx.project.clone();
        let producer: Producer = Box::new(move |sink| {
            let body = Rendering { p: &project, plan: &plan, out, eav, label_headers, opts: &opts };
            stream_rows(sink, snapshot, second, body)
        });
        return Ok(Reply::Stream { content_type: render::content_type(out).into(), producer });
    }
    let sel = select(ctx, level, with_dag, survey)?;
    let project = ctx.project.clone();
    let p = &*project;
    let n = sel.rows.len();
    let clinical = odm_out::Clinical {
        rows: sel.rows.iter().map(|&i| &sel.data.rows[i]).collect(),
        names: sel.names.iter().cloned().collect(),
        dag: with_dag,
        survey,
        files: None,
    };
    let body = odm_out::clinical_document(p, &ctx.env.version, &sel.data, &clinical);
    ctx.log("export", "Data export (API)", &format!("Export records (API): {n} rows"), "")?;
    Ok(Reply::Body { content_type: render::XML.into(), body: body.into_bytes() })
}

/// Records loaded and rendered per step of a streamed export.
const RECORDS_PER_STEP: usize = 200;

/// What a streamed export writes: the project, the plan, and the body's form.
#[derive(Clone, Copy)]
struct Rendering<'a> {
    p: &'a Project,
    plan: &'a Plan,
    out: Out,
    eav: bool,
    label_headers: bool,
    opts: &'a CellOptions,
}

/// Renders a flat or EAV export of more than one step into `sink`, loading [`RECORDS_PER_STEP`]
/// records at a time.
///
/// Reading a step from the store took about three times as long as rendering it, one after the
/// other on one thread. Two snapshots of the same state are read by two threads, the even steps
/// and the odd ones, each at most one step ahead, while a third renders them in order: the export
/// is bound by the reads, shared between two cores.
fn stream_rows(
    sink: &mut BodySink,
    snapshot: Snapshot,
    second: Snapshot,
    body: Rendering<'_>,
) -> Result<(), StreamError> {
    let steps = body.plan.records.len().div_ceil(RECORDS_PER_STEP);
    // An id list of the whole project (of a project with events or repeats: otherwise its
    // rows are known without a read) reads every row key in one walk, not a record at a time.
    let all_keys =
        if body.plan.keys_only() && body.plan.all_records && (body.p.def.longitudinal || body.p.has_repeating()) {
            Some(store::all_base_rows(snapshot.conn(), body.p.id(), body.plan.records.len())?)
        } else {
            None
        };
    let all_keys = all_keys.as_ref();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let (tx2, rx2) = std::sync::mpsc::sync_channel(1);
    std::thread::scope(|scope| {
        let renderer = scope.spawn(move || render_steps(sink, body, steps, &[rx, rx2]));
        let other = scope.spawn(move || read_steps(second.conn(), second.blob_dir(), body, (1, 2), all_keys, &tx2));
        let mut read = read_steps(snapshot.conn(), snapshot.blob_dir(), body, (0, 2), all_keys, &tx);
        drop(tx);
        let join = |t: std::thread::ScopedJoinHandle<'_, _>| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        read = read.and(join(other));
        read.and(join(renderer))
    })
}

/// Reads steps `first`, `first + every`, … of the export and sends them on, until the end, a
/// failure, or a renderer that stopped (the client went away: it says so itself).
fn read_steps(
    conn: &rusqlite::Connection,
    blob_dir: &std::path::Path,
    body: Rendering<'_>,
    (first, every): (usize, usize),
    all_keys: Option<&store::RecordRows>,
    tx: &std::sync::mpsc::SyncSender<Dataset>,
) -> Result<(), StreamError> {
    let plan = body.plan;
    let keys_only = plan.keys_only();
    for step in plan.records.chunks(RECORDS_PER_STEP).skip(first).step_by(every) {
        let data = if keys_only {
            Dataset::load_row_keys(conn, body.p, step.to_vec(), all_keys)?
        } else {
            Dataset::load_records(conn, blob_dir, body.p, step.to_vec())?
        };
        if tx.send(data).is_err() {
            break;
        }
    }
    Ok(())
}

/// The renderer of [`stream_rows`]: writes `steps` steps, taking them from `from` in turn; one
/// that does not come means its reader failed, and the body is left unfinished.
fn render_steps(
    sink: &mut BodySink,
    body: Rendering<'_>,
    steps: usize,
    from: &[std::sync::mpsc::Receiver<Dataset>],
) -> Result<(), StreamError> {
    let Rendering { p, plan, out, eav, label_headers, opts } = body;
    let columns: Vec<String> = if eav { eav_columns(p) } else { records::headers(p, &plan.cols, label_headers) };
    let eav_opts = CellOptions { checkbox_labels: true, blank_gray_status: true, ..opts.clone() };
    let mut w = RowWriter::begin(out, &columns, "records", sink.buf());
    let mut dag_listed = (String::new(), false);
    // Columns resolved once for the whole export, not once per row.
    let mut cells = records::CellPlan::new(p, &plan.cols, if eav { &eav_opts } else { opts });
    let mut relevance = Relevance::default();
    for step in 0..steps {
        // A reader that failed: its error is the export's, and the body stays unfinished.
        let Ok(data) = from[step % from.len()].recv() else { return Ok(()) };
        for row in data.rows.iter().filter(|row| plan.keeps(p, &data, row, &mut relevance)) {
            if eav {
                if dag_listed.0 != row.key.record {
                    dag_listed = (row.key.record.clone(), false);
                }
                for r in eav_rows(p, &data, row, &plan.cols, opts, &mut cells, &mut dag_listed.1) {
                    w.row(sink.buf(), &r);
                }
            } else {
                w.row(sink.buf(), &cells.cells(&data, row));
            }
            sink.flush_if_full()?;
        }
    }
    w.end(sink.buf());
    Ok(())
}

/// EAV columns: `record, field_name, value`, then `redcap_event_name` (longitudinal) and the
/// repeat columns (projects with repeating data; UNVERIFIED, the help lists only the event column).
fn eav_columns(p: &Project) -> Vec<String> {
    let mut columns = vec!["record", "field_name", "value"];
    if p.def.longitudinal {
        columns.push("redcap_event_name");
    }
    if p.has_repeating() {
        columns.extend(["redcap_repeat_instrument", "redcap_repeat_instance"]);
    }
    columns.into_iter().map(str::to_owned).collect()
}

/// The EAV rows of one flat row. Only non-blank values are listed. A checkbox gives one row per
/// checked option under its own name, with the code (raw) or the option label (label) as value:
/// the help's "0 or 1" wording cannot tell options apart, so the code is used (UNVERIFIED). The
/// DAG is listed once per record (`dag_listed`: already listed for this row's record).
fn eav_rows(
    p: &Project,
    data: &Dataset,
    row: &records::RowData,
    cols: &[Col],
    opts: &CellOptions,
    cell_plan: &mut records::CellPlan<'_>,
    dag_listed: &mut bool,
) -> Vec<Vec<Value>> {
    let key = &row.key;
    let mut out = Vec::new();
    let cells = cell_plan.cells(data, row);
    let tail: Vec<Value> = {
        let mut v = Vec::new();
        if p.def.longitudinal {
            v.push(Value::from(key.event.clone()));
        }
        if p.has_repeating() {
            v.push(Value::from(key.instrument.clone()));
            let repeats = !key.instrument.is_empty() || p.is_repeating_event(&key.event);
            v.push(if repeats { Value::from(key.instance) } else { Value::from("") });
        }
        v
    };
    let mut push = |name: &str, value: String| {
        let mut r = vec![Value::from(key.record.clone()), Value::from(name.to_owned()), Value::from(value)];
        r.extend(tail.iter().cloned());
        out.push(r);
    };
    for (col, cell) in cols.iter().zip(cells) {
        let text = render::text_of(&cell);
        match col {
            Col::EventName | Col::RepeatInstrument | Col::RepeatInstance => {}
            Col::RecordId => {
                if key.instrument.is_empty() {
                    push(&p.def.record_id_field, key.record.clone());
                }
            }
            Col::Dag => {
                if !text.is_empty() && !*dag_listed {
                    *dag_listed = true;
                    push("redcap_data_access_group", text);
                }
            }
            Col::Checkbox(f, code) => {
                if row.values.get(f).is_some_and(|v| v.contains(code)) {
                    push(f, if opts.labels { text } else { code.clone() });
                }
            }
            _ => {
                if !text.is_empty() {
                    let name = records::headers(p, std::slice::from_ref(col), false).remove(0);
                    // A File Upload value is REDCap's internal doc id in EAV, not the file's
                    // name (REDCapR's recorded EAV reads: `mugshot = 22:26`).
                    let raw = p
                        .field(&name)
                        .filter(|f| f.field_type == "file")
                        .and_then(|_| row.values.get(&name)?.first().cloned());
                    push(&name, raw.unwrap_or(text));
                }
            }
        }
    }
    out
}

fn checkbox_base(p: &Project, name: &str) -> Option<String> {
    let (base, _) = name.split_once("___")?;
    let f = p.field(base)?;
    (f.field_type == "checkbox" && f.choice_list().iter().any(|(c, _)| checkbox_column(base, c) == name))
        .then(|| base.to_owned())
}

/// One planned write: a field, and either checkbox toggles (code, checked) or a value.
type Write = (String, Vec<(String, bool)>, Option<String>);

/// What one imported cell does.
enum Target {
    Field(String),
    Checkbox(String, String),
}

/// Import Records: flat or eav data in json/csv/xml, or ODM ClinicalData.
pub fn import(ctx: &mut Ctx) -> HResult {
    ctx.need_import()?;
    let eav = match ctx.params.get_nonempty("type") {
        None | Some("flat") => false,
        Some("eav") => true,
        Some(_) => return Err(bad("The value of the parameter \"type\" is not valid")),
    };
    let format = ctx.params.get_nonempty("format").unwrap_or("xml").to_owned();
    if !["json", "csv", "xml", "odm"].contains(&format.as_str()) {
        return Err(bad("The value of the parameter \"format\" is not valid"));
    }
    let overwrite = match ctx.params.get_nonempty("overwriteBehavior") {
        None | Some("normal") => false,
        Some("overwrite") => true,
        Some(_) => return Err(bad("The value of the parameter \"overwriteBehavior\" is not valid")),
    };
    let return_content = match ctx.params.get_nonempty("returnContent") {
        None => redcap_core::ReturnContent::Count,
        Some(v) => redcap_core::ReturnContent::from_wire(v)
            .ok_or_else(|| bad("The value of the parameter \"returnContent\" is not valid"))?,
    };
    let date_format = ctx.params.get_nonempty("dateFormat").unwrap_or("YMD").to_owned();
    if !["YMD", "MDY", "DMY"].contains(&date_format.as_str()) {
        return Err(bad("The value of the parameter \"dateFormat\" is not valid"));
    }
    let force_auto = ctx.params.flag("forceAutoNumber");
    let delim = ctx.csv_delimiter()?;
    let background = ctx.params.flag("backgroundProcess");
    let opts = ImportOpts { overwrite, date_format, force_auto };
    let applied = parse_rows(ctx, &format, eav, delim).and_then(|rows| apply_rows(ctx, &rows, &opts));
    let rf = match ctx.params.error_format() {
        ReturnFormat::Json => Out::Json,
        ReturnFormat::Csv => Out::Csv(b','),
        _ => Out::Xml,
    };
    let ct = match rf {
        Out::Json => render::JSON,
        Out::Csv(_) => render::CSV,
        Out::Xml => render::XML,
    };
    if background {
        // backgroundProcess: the answer is only a success flag (reference §5.6). The exact bytes are
        // UNVERIFIED; the emulator answers {"success":true} in JSON, and `true` / <success>true</success>
        // in CSV / XML by analogy with the count bodies. The import runs at once; a data problem
        // (which REDCap would report later by e-mail) gives success:false and is written to the log.
        let ok = match applied {
            Ok(_) => true,
            Err(f) if f.status == http::StatusCode::BAD_REQUEST => {
                ctx.log("record", "Data import (API)", &format!("Background data import failed: {}", f.message), "")?;
                false
            }
            Err(f) => return Err(f),
        };
        let body = match rf {
            Out::Json => serde_json::json!({ "success": ok }).to_string(),
            Out::Csv(_) => ok.to_string(),
            Out::Xml => format!("<?xml version=\"1.0\" encoding=\"UTF-8\" ?><success>{ok}</success>"),
        };
        return Ok(Reply::Body { content_type: ct.into(), body: body.into_bytes() });
    }
    let (touched, auto) = applied?;
    import_result(return_content, rf, ct, &touched, &auto, force_auto)
}

/// How rows are written.
struct ImportOpts {
    overwrite: bool,
    date_format: String,
    force_auto: bool,
}

/// The `data` parameter as flat rows, whatever its type and format.
fn parse_rows(ctx: &Ctx, format: &str, eav: bool, delim: u8) -> Result<Vec<input::InRow>, Failure> {
    let data = ctx.params.get("data").unwrap_or("");
    if format == "odm" {
        return odm::clinical_rows(data, &ctx.project.def)
            .map_err(|e| bad(format!("The ODM data could not be imported: {}", e.0)));
    }
    let rows = input::rows(format, data, delim).map_err(bad)?;
    if eav { eav_to_flat(&ctx.project, rows) } else { Ok(rows) }
}

/// EAV rows (`record, field_name, value` plus optional `redcap_event_name`,
/// `redcap_repeat_instrument`, `redcap_repeat_instance`) grouped into flat rows. A checkbox
/// option may come as `<field>___<code>` with 0/1 (KB RC-API-03) or as the field's own name with
/// the checked code (the emulator's EAV export).
fn eav_to_flat(p: &Project, rows: Vec<input::InRow>) -> Result<Vec<input::InRow>, Failure> {
    let rid = p.def.record_id_field.as_str();
    let mut out: Vec<input::InRow> = Vec::new();
    let mut index: HashMap<(String, String, String, String), usize> = HashMap::new();
    let mut errors = Vec::new();
    for row in rows {
        let (Some(record), Some(field)) = (input::get(&row, "record"), input::get(&row, "field_name")) else {
            return Err(bad("The data is not in EAV format: every item needs \"record\" and \"field_name\""));
        };
        let record = record.trim().to_owned();
        let field = field.trim().to_owned();
        let value = input::get(&row, "value").unwrap_or("").to_owned();
        let event = input::get(&row, "redcap_event_name").unwrap_or("").trim().to_owned();
        let form = input::get(&row, "redcap_repeat_instrument").unwrap_or("").trim().to_owned();
        let instance = input::get(&row, "redcap_repeat_instance").unwrap_or("").trim().to_owned();
        if instance == "new" {
            errors.push(csv_line(
                &record,
                "redcap_repeat_instance",
                &instance,
                "instance numbering with new cannot be used with type=eav",
            ));
            continue;
        }
        let key = (record.clone(), event.clone(), form.clone(), instance.clone());
        let i = *index.entry(key).or_insert_with(|| {
            let mut r = vec![(rid.to_owned(), record.clone())];
            for (k, v) in [
                ("redcap_event_name", &event),
                ("redcap_repeat_instrument", &form),
                ("redcap_repeat_instance", &instance),
            ] {
                if input::get(&row, k).is_some() {
                    r.push((k.to_owned(), v.clone()));
                }
            }
            out.push(r);
            out.len() - 1
        });
        if field == rid {
            continue;
        }
        let (column, value) = match p.field(&field) {
            Some(f) if f.field_type == "checkbox" => {
                let code = value.trim();
                if code.is_empty() {
                    continue;
                }
                match f.choice_list().into_iter().find(|(c, _)| c == code) {
                    Some((c, _)) => (checkbox_column(&field, &c), "1".to_owned()),
                    None => {
                        errors.push(csv_line(
                            &record,
                            &field,
                            code,
                            &format!("The value is not a valid category for {field}"),
                        ));
                        continue;
                    }
                }
            }
            _ => (field, value),
        };
        out[i].retain(|(k, _)| k != &column);
        out[i].push((column, value));
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    Ok(out)
}

/// One line of an import error: `"record","field","value","message"`.
fn csv_line(record: &str, field: &str, value: &str, message: &str) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!("{},{},{},{}", q(record), q(field), q(value), q(message))
}

/// Validates and writes flat rows in one transaction; returns the touched records and the
/// auto-numbering map (original, new). Nothing is written unless every row is valid.
#[allow(clippy::type_complexity)]
fn apply_rows(
    ctx: &mut Ctx,
    rows: &[input::InRow],
    o: &ImportOpts,
) -> Result<(Vec<String>, Vec<(String, String)>), Failure> {
    let project = ctx.project.clone();
    let p = &*project;
    let rid = p.def.record_id_field.as_str();
    let targets = column_targets(p, rows)?;
    // Only the records this import names are read: the cost follows the import, not the project.
    let existing = {
        let names: BTreeSet<&str> = rows.iter().filter_map(|r| input::get(r, rid)).map(str::trim).collect();
        let recs = store::records_named(&ctx.store.conn, p.id(), names)?;
        Dataset::load_records(&ctx.store.conn, ctx.store.blob_dir(), p, recs)?
    };
    let auto = if o.force_auto { auto_names(ctx, rows, rid)? } else { Vec::new() };
    let mut planner = Planner {
        p,
        targets: &targets,
        existing: &existing,
        auto: &auto,
        o,
        user_dag: ctx.user.dag_id,
        rights: &ctx.user.rights,
        instances: HashMap::new(),
    };
    let mut errors: Vec<String> = Vec::new();
    let plans: Vec<Planned> = rows.iter().filter_map(|row| planner.plan(row, &mut errors)).collect();
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let touched = write_plans(ctx, &plans, &existing)?;
    Ok((touched, auto))
}

/// What each column of the import writes (`None`: read for the row's key, or ignored); an
/// unknown column, or rows without the record-id field, refuse the whole import.
fn column_targets(p: &Project, rows: &[input::InRow]) -> Result<HashMap<String, Option<Target>>, Failure> {
    let rid = p.def.record_id_field.as_str();
    let mut targets: HashMap<String, Option<Target>> = HashMap::new();
    let mut unknown = Vec::new();
    for row in rows {
        for (k, _) in row {
            if targets.contains_key(k) {
                continue;
            }
            let t = if k == rid
                || matches!(
                    k.as_str(),
                    "redcap_event_name"
                        | "redcap_repeat_instrument"
                        | "redcap_repeat_instance"
                        | "redcap_data_access_group"
                        | "redcap_survey_identifier"
                ) {
                None
            } else if p.field(k).is_some_and(|f| f.field_type == "file") {
                // A File Upload value is a file name here; files come only through Import a File.
                // The column is ignored so that an export can be imported again (UNVERIFIED).
                None
            } else if p.field(k).is_some_and(|f| f.field_type != "checkbox") || p.complete_form(k).is_some() {
                Some(Target::Field(k.clone()))
            } else if let Some(base) = checkbox_base(p, k) {
                let code = p
                    .field(&base)
                    .map(|f| f.choice_list())
                    .unwrap_or_default()
                    .into_iter()
                    .find(|(c, _)| checkbox_column(&base, c) == *k)
                    .map(|(c, _)| c)
                    .unwrap_or_default();
                Some(Target::Checkbox(base, code))
            } else if k.ends_with("_timestamp") && p.has_form(k.trim_end_matches("_timestamp")) {
                None
            } else {
                unknown.push(k.clone());
                None
            };
            targets.insert(k.clone(), t);
        }
    }
    if !unknown.is_empty() {
        return Err(bad(format!(
            "The following fields were not found in the project (or cannot be imported): {}",
            quoted_list(&unknown)
        )));
    }
    if !rows.is_empty() && rows.iter().any(|r| input::get(r, rid).is_none()) {
        return Err(bad(format!("The record id field ({rid}) is missing.")));
    }
    Ok(targets)
}

/// forceAutoNumber: the new name of each original record name, in order of first appearance
/// (a DAG user's records are named `<dag id>-<n>`).
fn auto_names(ctx: &Ctx, rows: &[input::InRow], rid: &str) -> Result<Vec<(String, String)>, Failure> {
    let mut auto: Vec<(String, String)> = Vec::new();
    let mut next = next_number(&ctx.store.records(ctx.project.id())?, ctx.user.dag_id);
    for row in rows {
        let orig = input::get(row, rid).unwrap_or("").trim().to_owned();
        if !auto.iter().any(|(o, _)| o == &orig) {
            let name = match ctx.user.dag_id {
                Some(d) => format!("{d}-{next}"),
                None => next.to_string(),
            };
            next += 1;
            auto.push((orig, name));
        }
    }
    Ok(auto)
}

/// One valid row's writes.
struct Planned {
    key: RowKey,
    record: String,
    /// `Some` when the row sets the record's DAG (`Some(None)`: unassigns it).
    new_dag: Option<Option<i64>>,
    writes: Vec<Write>,
}

/// Validates rows one at a time against the project and the records already stored.
struct Planner<'a> {
    p: &'a Project,
    targets: &'a HashMap<String, Option<Target>>,
    existing: &'a Dataset,
    auto: &'a [(String, String)],
    o: &'a ImportOpts,
    user_dag: Option<i64>,
    /// The caller's rights: per-instrument data entry rights refuse writes (Ctx::need_entry_right).
    rights: &'a crate::auth::Rights,
    /// The last instance numbered for `new` per (record, event, instrument).
    instances: HashMap<(String, String, String), i64>,
}

impl Planner<'_> {
    /// The row's plan, or `None` with its problems added to `errors` (one line each).
    fn plan(&mut self, row: &input::InRow, errors: &mut Vec<String>) -> Option<Planned> {
        let record = self.record(row).map_err(|e| errors.push(e)).ok()?;
        let key = self.key(row, &record).map_err(|e| errors.push(e)).ok()?;
        let new_dag = self.dag(row, &record).map_err(|e| errors.push(e)).ok()?;
        let writes = self.writes(row, &key, errors);
        Some(Planned { key, record, new_dag, writes })
    }

    /// The record the row writes: its name (or its auto-numbered name), which a DAG user may
    /// only touch in their own DAG.
    fn record(&self, row: &input::InRow) -> Result<String, String> {
        let rid = self.p.def.record_id_field.as_str();
        let orig = input::get(row, rid).unwrap_or("").trim().to_owned();
        let record = if self.o.force_auto {
            self.auto.iter().find(|(o, _)| o == &orig).map(|(_, n)| n.clone()).unwrap_or_default()
        } else {
            orig.clone()
        };
        if record.is_empty() {
            return Err(csv_line(&orig, rid, "", "The record name cannot be blank."));
        }
        if let (Some(d), false) = (self.user_dag, self.o.force_auto) {
            if self.existing.has_record(&record) && self.existing.dag_of(&record) != Some(d) {
                return Err(csv_line(
                    &record,
                    rid,
                    &record,
                    "The record belongs to a Data Access Group you do not have access to.",
                ));
            }
        }
        Ok(record)
    }

    /// The row's event, repeating instrument and instance.
    fn key(&mut self, row: &input::InRow, record: &str) -> Result<RowKey, String> {
        let p = self.p;
        let event = if p.def.longitudinal {
            let mut e = input::get(row, "redcap_event_name").unwrap_or("").trim().to_owned();
            if e.is_empty() {
                // PyCap's recorded doctest imports `{"record_id": 3, "field_1": 1}` into its
                // longitudinal project and gets `{'count': 1}`: a row without an event goes to
                // the project's first event (which event when there are several arms is UNVERIFIED).
                e = p.def.events.first().map(|e| e.unique_name.clone()).unwrap_or_default();
            }
            if p.event(&e).is_none() {
                return Err(csv_line(
                    record,
                    "redcap_event_name",
                    &e,
                    "The event name is missing or is not a valid unique event name.",
                ));
            }
            e
        } else {
            p.def.events.first().map(|e| e.unique_name.clone()).unwrap_or_default()
        };
        let rep_form = input::get(row, "redcap_repeat_instrument").unwrap_or("").trim().to_owned();
        let rep_inst = input::get(row, "redcap_repeat_instance").unwrap_or("").trim().to_owned();
        let (instrument, instance) = if !rep_form.is_empty() {
            if !p.is_repeating_form(&event, &rep_form) {
                return Err(csv_line(
                    record,
                    "redcap_repeat_instrument",
                    &rep_form,
                    "The instrument is not a repeating instrument in this event.",
                ));
            }
            (rep_form, rep_inst)
        } else if p.is_repeating_event(&event) {
            (String::new(), if rep_inst.is_empty() { "1".to_owned() } else { rep_inst })
        } else {
            if !rep_inst.is_empty() && rep_inst != "1" {
                return Err(csv_line(
                    record,
                    "redcap_repeat_instance",
                    &rep_inst,
                    "A repeat instance was given for data that does not repeat.",
                ));
            }
            (String::new(), "1".to_owned())
        };
        let instance = if instance == "new" {
            self.new_instance(record, &event, &instrument)
        } else {
            match instance.parse::<i64>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(csv_line(
                        record,
                        "redcap_repeat_instance",
                        &instance,
                        "The repeat instance must be a positive integer or \"new\".",
                    ));
                }
            }
        };
        Ok(RowKey { record: record.to_owned(), event, instrument, instance })
    }

    /// `redcap_repeat_instance=new`: the instance after the highest stored or already numbered.
    fn new_instance(&mut self, record: &str, event: &str, instrument: &str) -> i64 {
        let existing = self.existing;
        let c =
            self.instances.entry((record.to_owned(), event.to_owned(), instrument.to_owned())).or_insert_with(|| {
                existing
                    .rows
                    .iter()
                    .filter(|r| r.key.record == record && r.key.event == event && r.key.instrument == instrument)
                    .map(|r| r.key.instance)
                    .max()
                    .unwrap_or(0)
            });
        *c += 1;
        *c
    }

    /// The DAG the row assigns the record to (`redcap_data_access_group`; a DAG user's rows
    /// keep their record's DAG); a blank value unassigns only with overwrite.
    fn dag(&self, row: &input::InRow, record: &str) -> Result<Option<Option<i64>>, String> {
        match input::get(row, "redcap_data_access_group") {
            Some(u) if self.user_dag.is_none() => {
                let u = u.trim();
                if u.is_empty() {
                    Ok(if self.o.overwrite { Some(None) } else { None })
                } else if let Some(d) = self.p.dag_by_unique(u) {
                    Ok(Some(Some(d.id)))
                } else {
                    Err(csv_line(
                        record,
                        "redcap_data_access_group",
                        u,
                        "The value is not a valid unique Data Access Group name.",
                    ))
                }
            }
            _ => Ok(None),
        }
    }

    /// The validated value writes of the row's cells; each bad cell adds an error line.
    fn writes(&self, row: &input::InRow, key: &RowKey, errors: &mut Vec<String>) -> Vec<Write> {
        let (p, record) = (self.p, key.record.as_str());
        let mut writes = Vec::new();
        for (k, v) in row {
            let Some(Some(target)) = self.targets.get(k) else { continue };
            let (field, form) = match target {
                Target::Field(f) | Target::Checkbox(f, _) => (f.clone(), p.form_of(f).unwrap_or("").to_owned()),
            };
            if v.trim().is_empty() && !self.o.overwrite {
                continue;
            }
            if !records::form_in_row(p, key, &form) {
                if v.trim().is_empty() {
                    continue;
                }
                errors.push(csv_line(
                    record,
                    &field,
                    v,
                    &format!(
                        "This field ('{field}') exists on an instrument that is not designated for the event named '{}'. You are not allowed to import data for this field into this event.",
                        // The event's label, as REDCap names it (redcapAPI PR #348's recorded
                        // message: `'event_1 (Arm 1: Arm 1)'`).
                        p.event(&key.event).map_or_else(|| key.event.clone(), |e| p.def.event_label(e))
                    ),
                ));
                continue;
            }
            if let Some(why) = records::entry_refusal(p, self.rights, &field) {
                errors.push(csv_line(record, &field, v, &why));
                continue;
            }
            match target {
                Target::Checkbox(f, code) => match v.trim() {
                    "1" => writes.push((f.clone(), vec![(code.clone(), true)], None)),
                    "0" | "" => writes.push((f.clone(), vec![(code.clone(), false)], None)),
                    _ => errors.push(csv_line(
                        record,
                        k,
                        v,
                        "The value you provided could not be validated because it does not follow the expected format. Please try again.",
                    )),
                },
                Target::Field(f) => match validate(p, f, v, &self.o.date_format) {
                    Ok(value) => writes.push((f.clone(), Vec::new(), Some(value))),
                    Err(msg) => errors.push(csv_line(record, f, v, &msg)),
                },
            }
        }
        writes
    }
}

/// Writes every plan, with one log entry per row, in one transaction; returns the records
/// touched in order of first appearance.
fn write_plans(ctx: &mut Ctx, plans: &[Planned], existing: &Dataset) -> Result<Vec<String>, Failure> {
    let pid = ctx.project.id();
    let rid = ctx.project.def.record_id_field.clone();
    let user_dag = ctx.user.dag_id;
    let username = ctx.user.username.clone();
    let dags = ctx.project.def.dags.clone();
    let mut touched: Vec<String> = Vec::new();
    let mut touched_set: HashSet<String> = HashSet::new();
    ctx.store.transaction(|s| {
        let mut created: HashSet<String> = HashSet::new();
        // Rows of records created by this request, already written once: a row not in it has
        // nothing stored yet, so its values are added without deleting first.
        let mut written: HashSet<RowKey> = HashSet::new();
        for plan in plans {
            let new = s.ensure_record(pid, &plan.record, user_dag)?;
            if new {
                created.insert(plan.record.clone());
            }
            let fresh = created.contains(&plan.record) && written.insert(plan.key.clone());
            if let Some(d) = plan.new_dag {
                s.set_record_dag(pid, &plan.record, d)?;
                // A line of its own, so a reader of the log (dataset sync) sees the record
                // change even when no field did. UNVERIFIED wording.
                let unique =
                    d.and_then(|id| dags.iter().find(|g| g.id == id)).map(|g| g.unique.clone()).unwrap_or_default();
                let (verb, details) = if unique.is_empty() {
                    ("Remove record from Data Access Group", String::from("redcap_data_access_group = ''"))
                } else {
                    ("Assign record to Data Access Group", format!("redcap_data_access_group = '{unique}'"))
                };
                s.log(
                    pid,
                    &username,
                    "record_edit",
                    &format!("{verb} (API) {}", plan.record),
                    &details,
                    &plan.record,
                    user_dag,
                )?;
            }
            let details = write_plan(s, pid, &rid, plan, fresh, &mut written, existing)?;
            let (kind, verb) = if created.contains(&plan.record) {
                ("record_add", "Create record")
            } else {
                ("record_edit", "Update record")
            };
            s.log(
                pid,
                &username,
                kind,
                &format!("{verb} (API) {}", plan.record),
                &details.join(", "),
                &plan.record,
                user_dag,
            )?;
            if touched_set.insert(plan.record.clone()) {
                touched.push(plan.record.clone());
            }
        }
        Ok(())
    })?;
    Ok(touched)
}

/// Stores one row's values (`fresh`: the row has nothing stored yet, so values are added
/// without deleting first); returns the log details (`field = 'value'`, `cb(code) = checked`).
fn write_plan(
    s: &mut crate::store::Store,
    pid: i64,
    rid: &str,
    plan: &Planned,
    fresh: bool,
    written: &mut HashSet<RowKey>,
    existing: &Dataset,
) -> Result<Vec<String>, crate::store::StoreError> {
    let mut fresh_fields: HashSet<String> = HashSet::new();
    let mut put = |s: &mut crate::store::Store, field: &str, vals: &[String]| {
        if fresh && fresh_fields.insert(field.to_owned()) {
            s.add_values(pid, &plan.key, field, vals)
        } else {
            s.set_values(pid, &plan.key, field, vals)
        }
    };
    // The record-id value marks the row (and the event's base row) as existing.
    put(s, rid, std::slice::from_ref(&plan.record))?;
    if !plan.key.instrument.is_empty() {
        let base = RowKey { instrument: String::new(), instance: 1, ..plan.key.clone() };
        s.set_values(pid, &base, rid, std::slice::from_ref(&plan.record))?;
        // The base row now holds a value: a later plan for it must not add a second.
        written.insert(base);
    }
    let current = existing_values(existing, &plan.key);
    let mut checkbox_state: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut details = Vec::new();
    for (field, toggles, value) in &plan.writes {
        if let Some(v) = value {
            let vals: Vec<String> = if v.is_empty() { Vec::new() } else { vec![v.clone()] };
            put(s, field, &vals)?;
            // REDCap writes line breaks in logged values as spaces (REDCapR's recorded
            // log: "…a DAG assigned  So call up Trudy…" for a value with "\n\n").
            details.push(format!("{field} = '{}'", v.replace("\r\n", " ").replace(['\r', '\n'], " ")));
        } else {
            let state = checkbox_state
                .entry(field.clone())
                .or_insert_with(|| current.get(field).cloned().unwrap_or_default().into_iter().collect());
            for (code, on) in toggles {
                if *on {
                    state.insert(code.clone());
                } else {
                    state.remove(code);
                }
                details.push(format!("{}({code}) = {}", field, if *on { "checked" } else { "unchecked" }));
            }
        }
    }
    for (field, state) in checkbox_state {
        let vals: Vec<String> = state.into_iter().collect();
        put(s, &field, &vals)?;
    }
    Ok(details)
}

/// The success body of Import Records per returnContent; its format follows returnFormat, then
/// format (reference §1).
fn import_result(
    return_content: redcap_core::ReturnContent,
    rf: Out,
    ct: &str,
    touched: &[String],
    auto: &[(String, String)],
    force_auto: bool,
) -> HResult {
    let body = match return_content {
        redcap_core::ReturnContent::Nothing => return Ok(Reply::Empty),
        redcap_core::ReturnContent::Count => match rf {
            Out::Json => serde_json::json!({ "count": touched.len() }).to_string(),
            Out::Csv(_) => touched.len().to_string(),
            Out::Xml => format!("<?xml version=\"1.0\" encoding=\"UTF-8\" ?><count>{}</count>", touched.len()),
        },
        rc => {
            let ids: Vec<String> = if rc == redcap_core::ReturnContent::AutoIds {
                if force_auto {
                    auto.iter().map(|(o, n)| format!("{n},{o}")).collect()
                } else {
                    // Without forceAutoNumber the names are kept: new and original are the same.
                    touched.iter().map(|r| format!("{r},{r}")).collect()
                }
            } else {
                touched.to_vec()
            };
            match rf {
                Out::Json => serde_json::to_string(&ids).unwrap_or_default(),
                Out::Csv(_) => {
                    let mut s = String::from("id\n");
                    for id in &ids {
                        s.push_str(id);
                        s.push('\n');
                    }
                    s
                }
                // XML shape UNVERIFIED: <ids><id>…</id></ids>.
                Out::Xml => {
                    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" ?><ids>");
                    for id in &ids {
                        s.push_str(&format!("<id>{}</id>", render::esc(id)));
                    }
                    s.push_str("</ids>");
                    s
                }
            }
        }
    };
    Ok(Reply::Body { content_type: ct.into(), body: body.into_bytes() })
}

fn existing_values(data: &Dataset, key: &RowKey) -> HashMap<String, Vec<String>> {
    data.row(key).map(|r| r.values.iter().map(|(f, v)| (f.to_owned(), v.to_vec())).collect()).unwrap_or_default()
}

/// Validates one imported value; returns the value to store.
fn validate(p: &Project, field: &str, value: &str, date_format: &str) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(String::new());
    }
    const FORMAT: &str = "The value you provided could not be validated because it does not follow the expected format. Please try again.";
    if p.complete_form(field).is_some() && p.field(field).is_none() {
        return if ["0", "1", "2"].contains(&v) {
            Ok(v.to_owned())
        } else {
            Err(format!("The value is not a valid category for {field}"))
        };
    }
    let Some(f) = p.field(field) else { return Ok(value.to_owned()) };
    if f.has_choices() {
        return if f.choice_list().iter().any(|(c, _)| c == v) {
            Ok(v.to_owned())
        } else {
            Err(format!("The value is not a valid category for {field}"))
        };
    }
    if f.field_type != "text" {
        return Ok(value.to_owned());
    }
    let val = f.validation.as_str();
    if val.starts_with("date_") || val.starts_with("datetime_") {
        let converted = to_ymd(v, date_format);
        return match converted {
            Some(c) if valid_date_time(val, &c) => Ok(c),
            _ => Err(FORMAT.into()),
        };
    }
    if validation::accepts(val, v) { Ok(v.to_owned()) } else { Err(FORMAT.into()) }
}

/// REDCap's text validation types, one check each, as REDCap's validation patterns define them
/// (the definitions are shown on every REDCap data entry page; the one message the API answers
/// for any of them is recorded in redcapAPI issue #217). Unknown types accept anything.
mod validation {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }

    fn signed(s: &str) -> &str {
        s.strip_prefix(['-', '+']).unwrap_or(s)
    }

    /// `[-+]?[0-9]*[.,]?[0-9]+([eE][-+]?[0-9]+)?` with `sep` as the decimal mark.
    fn number(s: &str, sep: char) -> bool {
        let s = signed(s);
        let (mantissa, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let mantissa_ok = match mantissa.split_once(sep) {
            Some((a, b)) => (a.is_empty() || digits(a)) && digits(b),
            None => digits(mantissa),
        };
        mantissa_ok && exp.is_none_or(|e| digits(signed(e)))
    }

    /// `-?[0-9]+<sep>[0-9]{dp}`: exactly `dp` decimal places.
    fn fixed(s: &str, sep: char, dp: usize) -> bool {
        let s = s.strip_prefix('-').unwrap_or(s);
        matches!(s.split_once(sep), Some((a, b)) if digits(a) && digits(b) && b.len() == dp)
    }

    fn hh_mm(s: &str) -> bool {
        matches!(s.split_once(':'), Some((h, m))
            if (1..=2).contains(&h.len()) && digits(h) && h.parse::<u32>().is_ok_and(|h| h < 24)
                && m.len() == 2 && digits(m) && m.parse::<u32>().is_ok_and(|m| m < 60))
    }

    fn mm_ss(s: &str) -> bool {
        matches!(s.split_once(':'), Some((m, x))
            if m.len() == 2 && x.len() == 2 && digits(m) && digits(x)
                && m.parse::<u32>().is_ok_and(|m| m < 60) && x.parse::<u32>().is_ok_and(|x| x < 60))
    }

    /// Whether `v` (trimmed, non-empty) is valid for validation type `t`.
    pub fn accepts(t: &str, v: &str) -> bool {
        let b = v.as_bytes();
        match t {
            "integer" | "int" => digits(signed(v)),
            "number" | "float" => number(v, '.'),
            "number_comma_decimal" => number(v, ','),
            "number_1dp" => fixed(v, '.', 1),
            "number_2dp" => fixed(v, '.', 2),
            "number_3dp" => fixed(v, '.', 3),
            "number_4dp" => fixed(v, '.', 4),
            "number_1dp_comma_decimal" => fixed(v, ',', 1),
            "number_2dp_comma_decimal" => fixed(v, ',', 2),
            "number_3dp_comma_decimal" => fixed(v, ',', 3),
            "number_4dp_comma_decimal" => fixed(v, ',', 4),
            "time" => hh_mm(v),
            "time_mm_ss" => mm_ss(v),
            "time_hh_mm_ss" => v.rsplit_once(':').is_some_and(|(hm, s)| {
                hh_mm(hm) && s.len() == 2 && digits(s) && s.parse::<u32>().is_ok_and(|s| s < 60)
            }),
            "alpha_only" => !v.is_empty() && v.chars().all(|c| c.is_ascii_alphabetic()),
            "email" => v.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.chars().all(|c| c.is_ascii_alphanumeric() || "._%+-'".contains(c))
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && domain.chars().all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
                    && domain.rsplit('.').next().is_some_and(|tld| tld.len() >= 2)
            }),
            "zipcode" => {
                (b.len() == 5 && digits(v)) || (b.len() == 10 && b[5] == b'-' && digits(&v[..5]) && digits(&v[6..]))
            }
            "phone" => {
                // Ten digits (separators `()-. ` allowed), area code and exchange not starting
                // with 0 or 1: a North American number.
                let d: Vec<u8> = v.bytes().filter(u8::is_ascii_digit).collect();
                v.chars().all(|c| c.is_ascii_digit() || "()-. ".contains(c))
                    && d.len() == 10
                    && d[0] >= b'2'
                    && d[3] >= b'2'
            }
            "ssn" => {
                b.len() == 11 && b[3] == b'-' && b[6] == b'-' && digits(&v[..3]) && digits(&v[4..6]) && digits(&v[7..])
            }
            "mrn_10d" => b.len() == 10 && digits(v),
            "mrn_generic" => !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "vmrn" => {
                // 4 to 9 digits without leading zeros (the Vanderbilt MRN check).
                (4..=9).contains(&b.len()) && digits(v) && b[0] != b'0'
            }
            "postalcode_canada" => {
                let c: Vec<char> = v.chars().filter(|c| *c != ' ').collect();
                c.len() == 6
                    && c.iter()
                        .enumerate()
                        .all(|(i, ch)| if i % 2 == 0 { ch.is_ascii_alphabetic() } else { ch.is_ascii_digit() })
            }
            "postalcode_australia" => b.len() == 4 && digits(v),
            "postalcode_germany" | "postalcode_french" => b.len() == 5 && digits(v),
            "phone_australia" => {
                let d: Vec<u8> = v.bytes().filter(u8::is_ascii_digit).collect();
                v.chars().all(|c| c.is_ascii_digit() || "()-. ".contains(c)) && d.len() == 10 && d[0] == b'0'
            }
            _ => true,
        }
    }
}

/// A converted (`YYYY-MM-DD[ …]`) value valid for a date or datetime type: a real calendar
/// date, then ` HH:MM` for `datetime_*`, ` HH:MM:SS` for `datetime_seconds_*`, nothing for `date_*`.
fn valid_date_time(t: &str, c: &str) -> bool {
    let (date, time) = match c.split_once(' ') {
        Some((d, t)) => (d, Some(t)),
        None => (c, None),
    };
    if !valid_ymd(date) {
        return false;
    }
    match (t.starts_with("datetime_seconds_"), t.starts_with("datetime_"), time) {
        (true, _, Some(x)) => validation::accepts("time_hh_mm_ss", x),
        (false, true, Some(x)) => validation::accepts("time", x),
        (false, false, None) => true,
        _ => false,
    }
}

/// Converts a date(time) in `MDY`/`DMY` (slashes or dashes) to `YYYY-MM-DD[ rest]`.
fn to_ymd(v: &str, fmt: &str) -> Option<String> {
    let (date, rest) = match v.split_once(' ') {
        Some((d, r)) => (d, format!(" {r}")),
        None => (v, String::new()),
    };
    let parts: Vec<&str> = date.split(['-', '/']).collect();
    if parts.len() != 3 {
        return None;
    }
    let (y, m, d) = match fmt {
        "MDY" => (parts[2], parts[0], parts[1]),
        "DMY" => (parts[2], parts[1], parts[0]),
        _ => (parts[0], parts[1], parts[2]),
    };
    let y: u32 = y.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    let d: u32 = d.parse().ok()?;
    Some(format!("{y:04}-{m:02}-{d:02}{rest}"))
}

fn valid_ymd(s: &str) -> bool {
    let parts: Vec<u32> = s.split('-').filter_map(|p| p.parse().ok()).collect();
    let [y, m, d] = parts.as_slice() else { return false };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    s.len() == 10 && *y >= 1 && (1..=days).contains(d)
}

/// Next numeric record name (max + 1; with a DAG, the max of `<dag>-<n>` names).
fn next_number(records: &[(String, Option<i64>)], dag: Option<i64>) -> i64 {
    let max = records
        .iter()
        .filter_map(|(r, _)| match dag {
            Some(d) => r.strip_prefix(&format!("{d}-")).and_then(|n| n.parse::<i64>().ok()),
            None => r.parse::<i64>().ok(),
        })
        .max()
        .unwrap_or(0);
    max + 1
}

/// Generate Next Record Name.
pub fn generate_next_name(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let n = next_number(&ctx.store.records(ctx.project.id())?, ctx.user.dag_id);
    Ok(Reply::text(match ctx.user.dag_id {
        Some(d) => format!("{d}-{n}"),
        None => n.to_string(),
    }))
}

/// Delete Records (all-or-nothing when a record is missing).
pub fn delete(ctx: &mut Ctx) -> HResult {
    if !ctx.user.rights.record_delete {
        return Err(forbidden("You do not have Delete Record privileges"));
    }
    let project = ctx.project.clone();
    let p = &*project;
    let Some(names) = ctx.params.list("records") else {
        // Recorded text (AndrewPoppe/ApiUserRights' Playwright suite, against a live REDCap).
        return Err(bad(
            "The 'records' parameter is an empty array. The parameter must be an array containing one or more record names to delete.",
        ));
    };
    let named = store::records_named(&ctx.store.conn, p.id(), names.iter().map(String::as_str))?;
    let data = Dataset::load_records(&ctx.store.conn, ctx.store.blob_dir(), p, named)?;
    let visible = |r: &str| data.has_record(r) && ctx.user.dag_id.is_none_or(|d| data.dag_of(r) == Some(d));
    let missing: Vec<String> = names.iter().filter(|r| !visible(r)).cloned().collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "One or more of the records provided cannot be deleted because they do not exist in the project. The following records do not exist: {}",
            missing.join(", ")
        )));
    }
    let arm: Option<i64> = match ctx.params.get_nonempty("arm") {
        None => None,
        Some(a) => Some(a.trim().parse().map_err(|_| bad("The value of the parameter \"arm\" is not valid"))?),
    };
    let instrument = ctx.params.get_nonempty("instrument").map(str::to_owned);
    if let Some(i) = &instrument {
        if !p.has_form(i) {
            return Err(bad(format!("The value of the parameter \"instrument\" is not valid: '{i}'")));
        }
    }
    let event = ctx.params.get_nonempty("event").map(str::to_owned);
    if let Some(e) = &event {
        if p.event(e).is_none() {
            return Err(bad(format!("The value of the parameter \"event\" is not valid: '{e}'")));
        }
    }
    let instance: Option<i64> = match ctx.params.get_nonempty("repeat_instance") {
        None => None,
        Some(v) => {
            Some(v.trim().parse().map_err(|_| bad("The value of the parameter \"repeat_instance\" is not valid"))?)
        }
    };
    let pid = p.id();
    let username = ctx.user.username.clone();
    let dag = ctx.user.dag_id;
    let mut unique: Vec<String> = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    let count = unique.len();
    ctx.store.transaction(|s| {
        for rec in &unique {
            let partial = instrument.is_some() || event.is_some() || arm.is_some();
            if !partial {
                s.delete_record(pid, rec)?;
                s.log(pid, &username, "record_delete", &format!("Delete record (API) {rec}"), "", rec, dag)?;
                continue;
            }
            for row in data.rows.iter().filter(|r| &r.key.record == rec) {
                let ev = p.event(&row.key.event);
                if arm.is_some_and(|a| ev.is_none_or(|e| e.arm_num != a)) {
                    continue;
                }
                if event.as_ref().is_some_and(|e| e != &row.key.event) {
                    continue;
                }
                if instance.is_some_and(|i| i != row.key.instance) {
                    continue;
                }
                for field in row.values.keys() {
                    let in_form = match &instrument {
                        None => true,
                        Some(form) => field != p.def.record_id_field && p.owner_form(field) == Some(form.as_str()),
                    };
                    if in_form {
                        s.set_values(pid, &row.key, field, &[])?;
                    }
                }
            }
            let left: i64 = s.conn.query_row(
                "SELECT COUNT(*) FROM data WHERE project_id = ?1 AND record = ?2",
                rusqlite::params![pid, rec],
                |r| r.get(0),
            )?;
            if left == 0 {
                s.delete_record(pid, rec)?;
            }
            s.log(pid, &username, "record_delete", &format!("Delete record (API) {rec}"), "partial delete", rec, dag)?;
        }
        Ok(())
    })?;
    Ok(Reply::text(count.to_string()))
}

/// Rename Record: answers `1`.
pub fn rename(ctx: &mut Ctx) -> HResult {
    if !ctx.user.rights.record_rename {
        // UNVERIFIED text.
        return Err(forbidden("You do not have Rename Record privileges"));
    }
    let record =
        ctx.params.get_nonempty("record").ok_or_else(|| bad("The parameter \"record\" is missing"))?.to_owned();
    let new_name = ctx
        .params
        .get_nonempty("new_record_name")
        .ok_or_else(|| bad("The parameter \"new_record_name\" is missing"))?
        .trim()
        .to_owned();
    let named = store::records_named(&ctx.store.conn, ctx.project.id(), [record.as_str(), new_name.as_str()])?;
    let data = Dataset::load_records(&ctx.store.conn, ctx.store.blob_dir(), &ctx.project, named)?;
    let visible = data.has_record(&record) && ctx.user.dag_id.is_none_or(|d| data.dag_of(&record) == Some(d));
    if !visible {
        return Err(bad(format!("The record \"{record}\" does not exist")));
    }
    if data.has_record(&new_name) {
        return Err(bad(format!("The record \"{new_name}\" already exists")));
    }
    let pid = ctx.project.id();
    let rid = ctx.project.def.record_id_field.clone();
    ctx.store.transaction(|s| {
        s.conn.execute(
            "UPDATE data SET value = ?3 WHERE project_id = ?1 AND record = ?2 AND field = ?4",
            rusqlite::params![pid, record, new_name, rid],
        )?;
        s.conn.execute(
            "UPDATE data SET record = ?3 WHERE project_id = ?1 AND record = ?2",
            rusqlite::params![pid, record, new_name],
        )?;
        s.conn.execute(
            "UPDATE records SET record = ?3 WHERE project_id = ?1 AND record = ?2",
            rusqlite::params![pid, record, new_name],
        )?;
        s.conn.execute(
            "UPDATE record_files SET record = ?3 WHERE project_id = ?1 AND record = ?2",
            rusqlite::params![pid, record, new_name],
        )?;
        crate::survey_codes::rename_record(&s.conn, pid, &record, &new_name)?;
        s.count_rows(pid, crate::store::RowScope::Record(&record))?;
        s.count_rows(pid, crate::store::RowScope::Record(&new_name))?;
        Ok(())
    })?;
    ctx.log(
        "record_edit",
        &format!("Update record (API) {new_name}"),
        &format!("Rename record {record} to {new_name}"),
        &new_name,
    )?;
    Ok(Reply::text("1"))
}
