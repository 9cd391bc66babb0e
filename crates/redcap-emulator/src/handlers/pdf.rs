//! Export PDF of instruments (`spec/instrument.toml`, `export_pdf`; reference §3.4): blank
//! forms, one record's forms, or every record's (`allRecords`), optionally compact.
//!
//! Each instrument (per record, event and instance) starts a page: its label, the record and
//! event, then every field's label with its value — the choice labels of choice fields, all
//! options marked for the chosen ones, or only the chosen ones with `compactDisplay`, which also
//! leaves out empty fields (API help: exp_instr_pdf; KB RC-API-15). REDCap's own layout (logo,
//! boxes, fonts) is not reproduced; the text is what clients and tests read.

use super::{Ctx, Failure, HResult, Reply, bad, lookup};
use crate::model::{Field, Project};
use crate::pdf::{self, Line, Section, Style};
use crate::records::{Dataset, RowData, form_in_row, record_cmp};
use crate::store;

/// What the call asks for.
struct Request {
    /// `None`: blank forms.
    records: Option<Vec<String>>,
    event: Option<String>,
    form: Option<String>,
    /// `None`: every instance (allRecords).
    instance: Option<i64>,
    compact: bool,
}

fn request(ctx: &Ctx) -> Result<Request, Failure> {
    let p = &*ctx.project;
    let compact = ctx.params.flag("compactDisplay");
    // Presence alone switches allRecords on, whatever its value, and then record, event and
    // instrument are ignored (PHPCap `processAllRecordsArgument`; KB RC-API-15); `allrecords` is
    // the spelling before 6.4.3 (PyCap API changelog).
    if ctx.params.has("allRecords") || ctx.params.has("allrecords") {
        let mut records = ctx.store.records(p.id())?;
        records.retain(|(_, dag)| ctx.user.dag_id.is_none_or(|d| *dag == Some(d)));
        records.sort_by(|a, b| record_cmp(&a.0, &b.0));
        let names = records.into_iter().map(|(r, _)| r).collect();
        return Ok(Request { records: Some(names), event: None, form: None, instance: None, compact });
    }
    let form = match ctx.params.get_nonempty("instrument") {
        Some(f) if p.has_form(f) => Some(f.to_owned()),
        Some(f) => return Err(bad(format!("The value of the parameter \"instrument\" is not valid: '{f}'"))),
        None => None,
    };
    let event = match ctx.params.get_nonempty("event") {
        // Classic projects have one event, whatever is sent (UNVERIFIED whether REDCap refuses one).
        _ if !p.def.longitudinal => None,
        Some(e) if p.event(e).is_none() => {
            return Err(bad(format!("The value of the parameter \"event\" is not valid: '{e}'")));
        }
        Some(e) => {
            if let Some(f) = &form {
                if !p.form_in_event(e, f) {
                    return Err(bad(format!("The instrument \"{f}\" is not designated for the event \"{e}\"")));
                }
            }
            Some(e.to_owned())
        }
        None => None,
    };
    let instance = lookup::repeat_instance(ctx)?;
    let records = match ctx.params.get_nonempty("record") {
        None => None,
        Some(record) => {
            // The survey methods' recorded text; for PDF UNVERIFIED.
            lookup::visible_record(ctx, record)?;
            Some(vec![record.to_owned()])
        }
    };
    Ok(Request { records, event, form, instance: Some(instance), compact })
}

/// Export PDF: API Export and a data export right; values hidden by the caller's export level
/// are left out. Answers `application/pdf` with the file's name as REDCap names downloads in
/// Content-Type (reference §5.5; the PDF's own headers are not recorded, §5.4).
pub fn export_pdf(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let level = ctx.need_data_export()?;
    let req = request(ctx)?;
    let p = ctx.project.clone();
    let sections = match &req.records {
        None => blank_sections(&p, &req),
        Some(names) => {
            let named = store::records_named(&ctx.store.conn, p.id(), names.iter().map(String::as_str))?;
            let data = Dataset::load_records(&ctx.store.conn, ctx.store.blob_dir(), &p, named)?;
            // Per-instrument export rights too, as Export Records applies them.
            let hidden = |field: &str| ctx.export_hides(level, field);
            record_sections(&p, &data, &req, &hidden)
        }
    };
    let title = &p.def.info.title;
    let body = pdf::document(title, title, &sections);
    log_pdf(ctx, &req)?;
    Ok(Reply::Download { mime: "application/pdf".into(), name: file_name(&p, &req), body })
}

/// Logs the download. REDCap logs its API exports (reference §5.6: `Manage/Design` with
/// `Export … (API)` details for the metadata-like ones); what it writes for a PDF is not
/// recorded (UNVERIFIED), so the emulator follows its own entries: a blank form is metadata
/// (`Manage/Design`, `Export PDF (API)`), records' data a data export (`Data export (API)`, like
/// Export Records). The record is named in `details`, not in `record`, which a log reader such
/// as dataset sync takes for a possible change of the record's data.
fn log_pdf(ctx: &mut Ctx, req: &Request) -> Result<(), Failure> {
    let form = req.form.as_deref().map(|f| format!(" instrument = '{f}'")).unwrap_or_default();
    let details = match req.records.as_deref() {
        None => return ctx.log_export(&format!("Export PDF (API){form}")),
        Some(_) if req.instance.is_none() => "Export PDF (API) all records".to_owned(),
        Some(names) => format!("Export PDF (API) record = '{}'{form}", names.join(", ")),
    };
    ctx.log("export", "Data export (API)", &details, "")
}

/// `<project>_<instrument|AllInstruments>[_record].pdf`, letters and digits only (UNVERIFIED: the
/// name REDCap gives API downloads is not recorded).
fn file_name(p: &Project, req: &Request) -> String {
    let clean = |s: &str| -> String {
        let mut out = String::new();
        for c in s.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.trim_end_matches('_').to_owned()
    };
    let mut name = clean(&p.def.info.title);
    if name.is_empty() {
        name = "REDCap".into();
    }
    match &req.form {
        Some(f) => name.push_str(&format!("_{}", clean(f))),
        None => name.push_str("_AllInstruments"),
    }
    if let Some([one]) = req.records.as_deref() {
        if req.instance.is_some() {
            name.push_str(&format!("_{}", clean(one)));
        }
    }
    name.push_str(".pdf");
    name
}

/// The forms to print, in project order: the one asked for, else those of the event asked for,
/// else all.
fn forms<'a>(p: &'a Project, req: &'a Request, event: Option<&'a str>) -> impl Iterator<Item = &'a str> + 'a {
    p.def
        .forms
        .iter()
        .map(|f| f.name.as_str())
        .filter(move |f| req.form.as_deref().is_none_or(|x| x == *f) && event.is_none_or(|e| p.form_in_event(e, f)))
}

fn blank_sections(p: &Project, req: &Request) -> Vec<Section> {
    let event = req.event.as_deref().filter(|_| p.def.longitudinal);
    forms(p, req, event)
        .map(|form| {
            let mut s = vec![Line::new(Style::Title, form_label(p, form))];
            if let Some(e) = event.and_then(|e| p.event(e)) {
                s.push(Line::new(Style::Heading, e.name.clone()));
            }
            for field in p.form_fields(form) {
                field_lines(&mut s, field, None, false);
            }
            status_lines(&mut s, None, false);
            s
        })
        .collect()
}

fn record_sections(p: &Project, data: &Dataset, req: &Request, hidden: &dyn Fn(&str) -> bool) -> Vec<Section> {
    let rid = &p.def.record_id_field;
    let rid_label = p.field(rid).map(|f| clean_label(&f.label)).unwrap_or_else(|| rid.clone());
    let multi_arm = p.def.arms.len() > 1;
    let mut out = Vec::new();
    for rows in data.rows.chunk_by(|a, b| a.key.record == b.key.record) {
        let record = &rows[0].key.record;
        for ev in &p.def.events {
            if req.event.as_deref().is_some_and(|e| e != ev.unique_name) {
                continue;
            }
            let in_event: Vec<&RowData> = rows.iter().filter(|r| r.key.event == ev.unique_name).collect();
            if in_event.is_empty() {
                continue;
            }
            for form in forms(p, req, Some(&ev.unique_name)) {
                // The rows of this form: its repeating instances, or the event's rows.
                let mut form_rows: Vec<&RowData> = in_event
                    .iter()
                    .copied()
                    .filter(|r| form_in_row(p, &r.key, form))
                    .filter(|r| req.instance.is_none_or(|n| r.key.instance == n))
                    .collect();
                let has_data = |r: &RowData| {
                    p.form_fields(form).any(|f| f.name != *rid && r.values.contains_key(&f.name))
                        || r.values.contains_key(&format!("{form}_complete"))
                };
                form_rows.retain(|r| has_data(r));
                // A form without data prints blank, except in a compact PDF.
                if form_rows.is_empty() && req.compact {
                    continue;
                }
                let repeats = p.is_repeating_form(&ev.unique_name, form) || p.is_repeating_event(&ev.unique_name);
                let printed: Vec<Option<&RowData>> =
                    if form_rows.is_empty() { vec![None] } else { form_rows.into_iter().map(Some).collect() };
                for row in printed {
                    let mut s = vec![Line::new(Style::Title, form_label(p, form))];
                    let mut who = format!("{rid_label}: {record}");
                    if p.def.longitudinal {
                        let arm = p.def.arms.iter().find(|a| a.num == ev.arm_num).filter(|_| multi_arm);
                        match arm {
                            Some(a) => who.push_str(&format!("    Event: {} ({})", ev.name, a.name)),
                            None => who.push_str(&format!("    Event: {}", ev.name)),
                        }
                    }
                    if repeats {
                        let n = row.map(|r| r.key.instance).or(req.instance).unwrap_or(1);
                        who.push_str(&format!("    Instance: {n}"));
                    }
                    s.push(Line::new(Style::Heading, who));
                    for field in p.form_fields(form) {
                        let values: Vec<String> = match row {
                            Some(r) if !hidden(&field.name) => {
                                let mut v = r.values.get(&field.name).map(<[String]>::to_vec).unwrap_or_default();
                                if field.field_type == "file" {
                                    v = v.iter().filter_map(|id| data.doc_names.get(id).cloned()).collect();
                                }
                                v
                            }
                            _ => Vec::new(),
                        };
                        field_lines(&mut s, field, Some(&values), req.compact);
                    }
                    let status = row.and_then(|r| r.values.get(&format!("{form}_complete"))).and_then(|v| v.first());
                    status_lines(&mut s, Some(status.map(String::as_str).unwrap_or("0")), req.compact);
                    out.push(s);
                }
            }
        }
    }
    out
}

/// One field's lines. `values`: `None` for a blank form, else the stored values (the checked
/// codes of a checkbox).
fn field_lines(s: &mut Section, field: &Field, values: Option<&[String]>, compact: bool) {
    let empty = values.is_some_and(|v| v.iter().all(String::is_empty));
    if compact && empty && field.field_type != "descriptive" {
        return;
    }
    if !field.section_header.is_empty() {
        s.push(Line::new(Style::Heading, clean_label(&field.section_header)));
    }
    let mut label = clean_label(&field.label);
    if !field.question_number.is_empty() {
        label = format!("{}) {label}", field.question_number);
    }
    s.push(Line::new(Style::Label, label));
    if field.field_type == "descriptive" {
        return;
    }
    if field.has_choices() {
        let (on, off) = if field.field_type == "checkbox" { ("[X]", "[ ]") } else { ("(X)", "( )") };
        for (code, choice) in field.choice_list() {
            let chosen = values.is_some_and(|v| v.contains(&code));
            if compact && !chosen {
                continue;
            }
            s.push(Line::new(Style::Value, format!("{} {}", if chosen { on } else { off }, clean_label(&choice))));
        }
        return;
    }
    match values {
        Some(v) if !empty => {
            for value in v {
                s.push(Line::new(Style::Value, value.clone()));
            }
        }
        _ => s.push(Line::new(Style::Value, "__________________________________")),
    }
}

const STATUS: [(&str, &str); 3] = [("0", "Incomplete"), ("1", "Unverified"), ("2", "Complete")];

/// The form status block (`<form>_complete`), as on REDCap's forms.
fn status_lines(s: &mut Section, value: Option<&str>, compact: bool) {
    s.push(Line::new(Style::Heading, "Form Status"));
    s.push(Line::new(Style::Label, "Complete?"));
    for (code, label) in STATUS {
        let chosen = value == Some(code);
        if compact && !chosen {
            continue;
        }
        s.push(Line::new(Style::Value, format!("{} {label}", if chosen { "(X)" } else { "( )" })));
    }
}

fn form_label(p: &Project, form: &str) -> String {
    p.def.forms.iter().find(|f| f.name == form).map(|f| clean_label(&f.label)).unwrap_or_else(|| form.to_owned())
}

/// A label as text: HTML tags dropped (`<br>` and block ends as line breaks), the common
/// entities decoded.
fn clean_label(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => {
                let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
                if tag.starts_with("br") || tag == "/p" || tag == "/div" || tag == "/li" {
                    out.push('\n');
                }
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    let out = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::clean_label;

    #[test]
    fn labels_lose_their_html() {
        assert_eq!(clean_label("<p><strong>Name</strong> &amp; age</p>"), "Name & age");
        assert_eq!(clean_label("a<br>b"), "a\nb");
        assert_eq!(clean_label("x < y"), "x < y");
    }
}
