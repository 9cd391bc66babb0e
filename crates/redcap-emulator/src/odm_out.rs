//! Writer of CDISC ODM 1.3.1 with REDCap's `redcap:` extensions: the ClinicalData of Export
//! Records / Export Reports with `format=odm`, and the whole document of Export Project XML.
//!
//! The shape is the one REDCap's project XML files have and [`crate::odm::parse`] reads
//! (`SubjectData` → `StudyEventData` (longitudinal only) → `FormData` → `ItemGroupData` →
//! `ItemData`), so everything written here loads back into an emulator.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::model::{Field, Project, checkbox_column};
use crate::records::{Dataset, RowData, form_in_row};
use crate::store::now_seconds;

/// A file to embed as `ItemDataBase64Binary`.
#[derive(Debug)]
pub struct Embedded {
    pub name: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}

/// Looks up an uploaded file by the doc id stored in a File Upload field.
pub type FileLookup<'a> = &'a dyn Fn(&str) -> Option<Embedded>;

/// What goes into ClinicalData.
pub struct Clinical<'a> {
    /// The rows to write (any order; rows of one record are gathered in first-seen order).
    pub rows: Vec<&'a RowData>,
    /// Selected names: fields, the record-id field and `<form>_complete`.
    pub names: HashSet<String>,
    /// Write `redcap_data_access_group` (with the record id).
    pub dag: bool,
    /// Write `redcap_survey_identifier` and `<form>_timestamp`.
    pub survey: bool,
    /// Embeds File Upload values when set; without it they are left out, since an ODM value
    /// cannot carry the file and a bare name would not load back as a file.
    pub files: Option<FileLookup<'a>>,
}

impl std::fmt::Debug for Clinical<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clinical").field("rows", &self.rows.len()).field("names", &self.names).finish()
    }
}

/// One item of an item group.
enum Item {
    Field(String),
    Dag,
    SurveyId,
    Timestamp(String),
    Complete(String),
}

impl Item {
    fn oid(&self) -> String {
        match self {
            Item::Field(n) => n.clone(),
            Item::Dag => "redcap_data_access_group".into(),
            Item::SurveyId => "redcap_survey_identifier".into(),
            Item::Timestamp(f) => format!("{f}_timestamp"),
            Item::Complete(f) => format!("{f}_complete"),
        }
    }
}

struct Group {
    oid: String,
    name: String,
    items: Vec<Item>,
}

/// The item groups of a form, as REDCap lays them out: a new group at the form's first field and
/// at each section header; the record-id group also holds the DAG and survey-identifier
/// pseudo-items; a survey form's timestamp and the form status get groups of their own.
fn layout(p: &Project, form: &str) -> Vec<Group> {
    let rid = &p.def.record_id_field;
    let any_survey = p.def.forms.iter().any(|f| p.is_survey(&f.name));
    let mut groups: Vec<Group> = Vec::new();
    let rid_form = p.form_of(rid) == Some(form);
    if p.is_survey(form) && !rid_form {
        groups.push(Group {
            oid: format!("{form}.{form}_timestamp"),
            name: String::new(),
            items: vec![Item::Timestamp(form.to_owned())],
        });
    }
    let mut current: Option<Group> = None;
    for f in p.form_fields(form) {
        if current.is_none() || !f.section_header.is_empty() {
            if let Some(g) = current.take() {
                groups.push(g);
            }
            let name = if f.section_header.is_empty() { form.to_owned() } else { strip_tags(&f.section_header) };
            current = Some(Group { oid: format!("{form}.{}", f.name), name, items: Vec::new() });
        }
        let g = current.as_mut().expect("set above");
        g.items.push(Item::Field(f.name.clone()));
        if &f.name == rid {
            if !p.def.dags.is_empty() {
                g.items.push(Item::Dag);
            }
            if any_survey {
                g.items.push(Item::SurveyId);
            }
            if p.is_survey(form) {
                g.items.push(Item::Timestamp(form.to_owned()));
            }
        }
    }
    if let Some(g) = current {
        groups.push(g);
    }
    groups.push(Group {
        oid: format!("{form}.{form}_complete"),
        name: "Form Status".into(),
        items: vec![Item::Complete(form.to_owned())],
    });
    groups
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Escapes an attribute value. Line breaks and tabs become character references so that an XML
/// parser keeps them (a literal newline in an attribute is normalised to a space).
pub fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes element text.
fn text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `Project.<Words>` from the title, as in REDCap's files ("REDCapR: simple" → `REDCapRSimple`).
fn oid_stem(title: &str) -> String {
    let stem: String = title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(c) => c.to_ascii_uppercase().to_string() + cs.as_str(),
                None => String::new(),
            }
        })
        .collect();
    if stem.is_empty() { "Project".into() } else { stem }
}

struct Oids {
    study: String,
    metadata: String,
}

fn oids(p: &Project, now: &str) -> Oids {
    let stem = oid_stem(&p.def.info.title);
    // `YYYY-MM-DD HH:MM:SS` → `YYYY-MM-DD_HHMM`.
    let stamp = format!("{}_{}{}", &now[..10], &now[11..13], &now[14..16]);
    Oids { study: format!("Project.{stem}"), metadata: format!("Metadata.{stem}_{stamp}") }
}

fn opening(out: &mut String, p: &Project, version: &str, now: &str) {
    let t = now.replace(' ', "T");
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<ODM xmlns=\"http://www.cdisc.org/ns/odm/v1.3\" \
         xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns:redcap=\"https://projectredcap.org\" \
         xsi:schemaLocation=\"http://www.cdisc.org/ns/odm/v1.3 schema/odm/ODM1-3-1.xsd\" ODMVersion=\"1.3.1\" \
         FileOID=\"000-00-0000\" FileType=\"Snapshot\" Description=\"{}\" AsOfDateTime=\"{t}\" \
         CreationDateTime=\"{t}\" SourceSystem=\"REDCap\" SourceSystemVersion=\"{}\">\n",
        attr(&p.def.info.title),
        attr(version)
    );
}

/// Export Records / Export Reports with `format=odm`: the ODM root with ClinicalData only.
pub fn clinical_document(p: &Project, version: &str, data: &Dataset, sel: &Clinical) -> String {
    let now = now_seconds();
    let ids = oids(p, &now);
    let mut out = String::new();
    opening(&mut out, p, version, &now);
    clinical(&mut out, p, data, sel, &ids);
    out.push_str("</ODM>\n");
    out
}

/// Export Project XML: metadata, and ClinicalData unless `data` is `None`.
pub fn project_document(p: &Project, version: &str, data: Option<(&Dataset, &Clinical)>) -> String {
    let now = now_seconds();
    let ids = oids(p, &now);
    let mut out = String::new();
    opening(&mut out, p, version, &now);
    study(&mut out, p, &ids);
    if let Some((data, sel)) = data {
        clinical(&mut out, p, data, sel, &ids);
    }
    out.push_str("</ODM>\n");
    out
}

fn clinical(out: &mut String, p: &Project, data: &Dataset, sel: &Clinical, ids: &Oids) {
    let _ = writeln!(
        out,
        "<ClinicalData StudyOID=\"{}\" MetaDataVersionOID=\"{}\">",
        attr(&ids.study),
        attr(&ids.metadata)
    );
    let layouts: HashMap<&str, Vec<Group>> =
        p.def.forms.iter().map(|f| (f.name.as_str(), layout(p, &f.name))).collect();
    // Gather rows by record, then by (event, event instance), in first-seen order.
    let mut records: Vec<(&str, Vec<&RowData>)> = Vec::new();
    let mut pos: HashMap<&str, usize> = HashMap::new();
    for row in &sel.rows {
        let i = *pos.entry(row.key.record.as_str()).or_insert_with(|| {
            records.push((row.key.record.as_str(), Vec::new()));
            records.len() - 1
        });
        records[i].1.push(row);
    }
    let rid = &p.def.record_id_field;
    for (record, rows) in records {
        let _ = writeln!(out, "\t<SubjectData SubjectKey=\"{}\" redcap:RecordIdField=\"{}\">", attr(record), attr(rid));
        let mut blocks: Vec<((&str, i64), Vec<&RowData>)> = Vec::new();
        for row in rows {
            let ev = row.key.event.as_str();
            let ev_key = if p.is_repeating_event(ev) { row.key.instance } else { 1 };
            match blocks.iter_mut().find(|(k, _)| *k == (ev, ev_key)) {
                Some((_, list)) => list.push(row),
                None => blocks.push(((ev, ev_key), vec![row])),
            }
        }
        let mut dag_written = false;
        for ((event, ev_key), rows) in blocks {
            let indent = if p.def.longitudinal {
                let _ = writeln!(
                    out,
                    "\t\t<StudyEventData StudyEventOID=\"Event.{e}\" StudyEventRepeatKey=\"{ev_key}\" redcap:UniqueEventName=\"{e}\">",
                    e = attr(event)
                );
                "\t\t\t"
            } else {
                "\t\t"
            };
            for row in rows {
                for form in &p.def.forms {
                    if !form_in_row(p, &row.key, &form.name) {
                        continue;
                    }
                    let Some(groups) = layouts.get(form.name.as_str()) else { continue };
                    let Some(body) = form_data(p, data, row, groups, sel, &mut dag_written, indent) else {
                        continue;
                    };
                    let repeat_key = if row.key.instrument.is_empty() { 1 } else { row.key.instance };
                    let _ = writeln!(
                        out,
                        "{indent}<FormData FormOID=\"Form.{}\" FormRepeatKey=\"{repeat_key}\">",
                        attr(&form.name)
                    );
                    out.push_str(&body);
                    let _ = writeln!(out, "{indent}</FormData>");
                }
            }
            if p.def.longitudinal {
                out.push_str("\t\t</StudyEventData>\n");
            }
        }
        out.push_str("\t</SubjectData>\n");
    }
    out.push_str("</ClinicalData>\n");
}

/// The ItemGroupData of one form in one row, or `None` when the form holds no data there.
fn form_data(
    p: &Project,
    data: &Dataset,
    row: &RowData,
    groups: &[Group],
    sel: &Clinical,
    dag_written: &mut bool,
    indent: &str,
) -> Option<String> {
    let rid = &p.def.record_id_field;
    let base_row = row.key.instrument.is_empty();
    let with_rid = sel.names.contains(rid);
    let stored = |name: &str| -> Option<&str> {
        row.values.get(name).and_then(|v| v.first()).map(String::as_str).filter(|v| !v.is_empty())
    };
    // Survey timestamps go with forms that have a selected field, as the flat columns do.
    let form_selected = groups.iter().flat_map(|g| &g.items).any(|it| match it {
        Item::Field(n) => sel.names.contains(n),
        Item::Complete(_) => sel.names.contains(&it.oid()),
        _ => false,
    });
    let mut has_data = false;
    let mut out = String::new();
    for g in groups {
        let mut items = String::new();
        let item = |items: &mut String, oid: &str, value: &str| {
            let _ = writeln!(items, "{indent}\t\t<ItemData ItemOID=\"{}\" Value=\"{}\"/>", attr(oid), attr(value));
        };
        for it in &g.items {
            match it {
                Item::Field(name) if name == rid => {
                    if with_rid && base_row {
                        item(&mut items, name, &row.key.record);
                        has_data = true;
                    }
                }
                Item::Field(name) => {
                    if !sel.names.contains(name) {
                        continue;
                    }
                    let Some(f) = p.field(name) else { continue };
                    field_items(f, row, sel, &mut items, &mut has_data, indent);
                }
                Item::Dag => {
                    if sel.dag && with_rid && base_row && !*dag_written {
                        *dag_written = true;
                        let dag = data.dag_of(&row.key.record).and_then(|d| p.dag(d));
                        if let Some(d) = dag {
                            item(&mut items, "redcap_data_access_group", &d.unique);
                        }
                    }
                }
                Item::SurveyId => {
                    if let (true, true, Some(v)) = (sel.survey, with_rid, stored("redcap_survey_identifier")) {
                        item(&mut items, "redcap_survey_identifier", v);
                    }
                }
                Item::Timestamp(_) | Item::Complete(_) => {
                    let oid = it.oid();
                    let wanted = match it {
                        Item::Timestamp(_) => sel.survey && form_selected,
                        _ => sel.names.contains(&oid),
                    };
                    if let (true, Some(v)) = (wanted, stored(&oid)) {
                        item(&mut items, &oid, v);
                        has_data = true;
                    }
                }
            }
        }
        if !items.is_empty() {
            let _ =
                writeln!(out, "{indent}\t<ItemGroupData ItemGroupOID=\"{}\" ItemGroupRepeatKey=\"1\">", attr(&g.oid));
            out.push_str(&items);
            let _ = writeln!(out, "{indent}\t</ItemGroupData>");
        }
    }
    has_data.then_some(out)
}

fn field_items(f: &Field, row: &RowData, sel: &Clinical, items: &mut String, has_data: &mut bool, indent: &str) {
    let values = row.values.get(&f.name).unwrap_or(&[]);
    match f.field_type.as_str() {
        "descriptive" => {}
        "checkbox" => {
            // Every option is written, unchecked ones as 0, as in REDCap's files.
            for (code, _) in f.choice_list() {
                let on = values.iter().any(|v| v == &code);
                *has_data |= on;
                let _ = writeln!(
                    items,
                    "{indent}\t\t<ItemData ItemOID=\"{}\" Value=\"{}\"/>",
                    attr(&checkbox_column(&f.name, &code)),
                    if on { 1 } else { 0 }
                );
            }
        }
        "file" => {
            let (Some(lookup), Some(doc)) = (sel.files, values.first()) else { return };
            let Some(file) = lookup(doc) else { return };
            *has_data = true;
            let _ = writeln!(
                items,
                "{indent}\t\t<ItemDataBase64Binary ItemOID=\"{}\" redcap:DocName=\"{}\" redcap:MimeType=\"{}\"><![CDATA[{}]]></ItemDataBase64Binary>",
                attr(&f.name),
                attr(&file.name),
                attr(&file.mime),
                base64_encode(&file.bytes)
            );
        }
        _ => {
            if let Some(v) = values.first().filter(|v| !v.is_empty()) {
                *has_data = true;
                let _ = writeln!(items, "{indent}\t\t<ItemData ItemOID=\"{}\" Value=\"{}\"/>", attr(&f.name), attr(v));
            }
        }
    }
}

// ------------------------------------------------------------------------------- metadata

fn el(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(out, "\t<{name}>{}</{name}>", text(value));
}

/// The rights beyond the modelled ones, and the per-instrument rights, as REDCap writes them.
fn role_extras(x: &crate::auth::Rights) -> String {
    let mut out = String::new();
    for (api, xml) in crate::auth::OTHER_RIGHTS {
        let _ = write!(out, " {xml}=\"{}\"", x.other(api));
    }
    let codes = |list: &[(String, i64)]| list.iter().map(|(f, c)| format!("[{f},{c}]")).collect::<String>();
    if !x.forms.is_empty() {
        let _ = write!(out, " data_entry=\"{}\"", attr(&codes(&x.forms)));
    }
    if !x.forms_export.is_empty() {
        let _ = write!(out, " data_export_instruments=\"{}\"", attr(&codes(&x.forms_export)));
    }
    out
}

fn b(v: bool) -> &'static str {
    if v { "1" } else { "0" }
}

fn study(out: &mut String, p: &Project, ids: &Oids) {
    let d = &p.def;
    let i = &d.info;
    let _ = writeln!(out, "<Study OID=\"{}\">\n<GlobalVariables>", attr(&ids.study));
    el(out, "StudyName", &i.title);
    el(
        out,
        "StudyDescription",
        &format!("This file contains the metadata, events, and data for REDCap project \"{}\".", i.title),
    );
    el(out, "ProtocolName", &i.title);
    el(out, "redcap:RecordAutonumberingEnabled", b(i.record_autonumbering_enabled));
    el(out, "redcap:CustomRecordLabel", &i.custom_record_label);
    el(out, "redcap:SecondaryUniqueField", &i.secondary_unique_field);
    el(out, "redcap:SchedulingEnabled", b(i.scheduling_enabled));
    el(out, "redcap:SurveysEnabled", b(i.surveys_enabled));
    el(out, "redcap:SurveyInvitationEmailField", &d.survey_settings.invitation_email_field);
    el(out, "redcap:RandomizationEnabled", b(i.randomization_enabled));
    el(out, "redcap:DisplayTodayNowButton", b(i.display_today_now_button));
    el(out, "redcap:PreventBranchingEraseValues", b(i.bypass_branching_erase_field_prompt));
    el(out, "redcap:Purpose", &i.purpose.to_string());
    el(out, "redcap:PurposeOther", &i.purpose_other);
    el(out, "redcap:ProjectNotes", &i.notes);
    el(out, "redcap:MissingDataCodes", &i.missing_data_codes);
    if !d.repeating.is_empty() {
        out.push_str("\t<redcap:RepeatingInstrumentsAndEvents>\n");
        for r in d.repeating.iter().filter(|r| r.form.is_none()) {
            let _ = writeln!(out, "\t\t<redcap:RepeatingEvent redcap:UniqueEventName=\"{}\"/>", attr(&r.event));
        }
        let forms: Vec<_> = d.repeating.iter().filter(|r| r.form.is_some()).collect();
        if !forms.is_empty() {
            out.push_str("\t\t<redcap:RepeatingInstruments>\n");
            for r in forms {
                let _ = writeln!(
                    out,
                    "\t\t\t<redcap:RepeatingInstrument redcap:UniqueEventName=\"{}\" redcap:RepeatInstrument=\"{}\" redcap:CustomLabel=\"{}\"/>",
                    attr(&r.event),
                    attr(r.form.as_deref().unwrap_or("")),
                    attr(&r.label)
                );
            }
            out.push_str("\t\t</redcap:RepeatingInstruments>\n");
        }
        out.push_str("\t</redcap:RepeatingInstrumentsAndEvents>\n");
    }
    if !d.dags.is_empty() {
        out.push_str("\t<redcap:DataAccessGroupsGroup>\n");
        for g in &d.dags {
            // `unique_group_name` is an emulator addition (REDCap derives it from the name);
            // it keeps unique names that a collision suffix made different.
            let _ = writeln!(
                out,
                "\t\t<redcap:DataAccessGroups group_name=\"{}\" unique_group_name=\"{}\"/>",
                attr(&g.name),
                attr(&g.unique)
            );
        }
        out.push_str("\t</redcap:DataAccessGroupsGroup>\n");
    }
    if !d.roles.is_empty() {
        out.push_str("\t<redcap:UserRolesGroup>\n");
        for r in &d.roles {
            let x = &r.rights;
            let _ = writeln!(
                out,
                "\t\t<redcap:UserRoles role_name=\"{}\" unique_role_name=\"{}\" data_export_tool=\"{}\" data_logging=\"{}\" \
                 file_repository=\"{}\" user_rights=\"{}\" data_access_groups=\"{}\" reports=\"{}\" design=\"{}\" \
                 api_export=\"{}\" api_import=\"{}\" record_create=\"{}\" record_rename=\"{}\" record_delete=\"{}\"{}/>",
                attr(&r.label),
                attr(&r.unique),
                x.data_export.code(),
                b(x.logging),
                b(x.file_repository),
                x.user_rights_code(),
                b(x.data_access_groups),
                b(x.reports),
                b(x.design),
                b(x.api_export),
                b(x.api_import),
                b(x.record_create),
                b(x.record_rename),
                b(x.record_delete),
                role_extras(x)
            );
        }
        out.push_str("\t</redcap:UserRolesGroup>\n");
    }
    if !d.surveys.is_empty() {
        out.push_str("\t<redcap:SurveysGroup>\n");
        for s in &d.surveys {
            let title = d.forms.iter().find(|f| &f.name == s).map(|f| f.label.as_str()).unwrap_or("");
            let _ = writeln!(out, "\t\t<redcap:Surveys form_name=\"{}\" title=\"{}\"/>", attr(s), attr(title));
        }
        out.push_str("\t</redcap:SurveysGroup>\n");
    }
    if !d.survey_settings.queue.is_empty() {
        out.push_str("\t<redcap:SurveysQueueGroup>\n");
        for (event, form) in &d.survey_settings.queue {
            let _ = writeln!(
                out,
                "\t\t<redcap:SurveysQueue active=\"1\" event_id=\"{}\" survey_id=\"{}\"/>",
                attr(event),
                attr(form)
            );
        }
        out.push_str("\t</redcap:SurveysQueueGroup>\n");
    }
    if !d.reports.is_empty() {
        out.push_str("\t<redcap:ReportsGroup>\n");
        for (n, r) in d.reports.iter().enumerate() {
            let order = |i: usize| r.order_by.get(i).cloned().unwrap_or_default();
            let mut ob = String::new();
            for k in 0..3 {
                let (f, asc) = order(k);
                let sort = if f.is_empty() {
                    ""
                } else if asc {
                    "ASC"
                } else {
                    "DESC"
                };
                let _ = write!(ob, " orderby_field{}=\"{}\" orderby_sort{}=\"{sort}\"", k + 1, attr(&f), k + 1);
            }
            let _ = writeln!(
                out,
                "\t\t<redcap:Reports title=\"{}\" unique_report_name=\"{}\" report_order=\"{}\" user_access=\"{}\" \
                 combine_checkbox_values=\"{}\" output_dags=\"{}\" output_survey_fields=\"{}\" \
                 remove_line_breaks_in_values=\"{}\"{ob} advanced_logic=\"{}\" filter_type=\"{}\" \
                 redcap_reports_fields=\"{}\" redcap_reports_filter_dags=\"{}\" redcap_reports_filter_events=\"{}\"/>",
                attr(&r.title),
                attr(&r.unique_name),
                n + 1,
                attr(&r.user_access),
                b(r.combine_checkbox_values),
                b(r.output_dags),
                b(r.output_survey_fields),
                b(r.remove_line_breaks),
                attr(&r.advanced_logic),
                attr(&r.filter_type),
                attr(&r.fields.join(",")),
                attr(&r.filter_dags.join(",")),
                attr(&r.filter_events.join(","))
            );
        }
        out.push_str("\t</redcap:ReportsGroup>\n");
    }
    out.push_str("</GlobalVariables>\n");
    let _ = writeln!(
        out,
        "<MetaDataVersion OID=\"{}\" Name=\"{}\" redcap:RecordIdField=\"{}\">",
        attr(&ids.metadata),
        attr(&i.title),
        attr(&d.record_id_field)
    );
    if d.longitudinal {
        out.push_str("\t<Protocol>\n");
        for (n, e) in d.events.iter().enumerate() {
            let _ = writeln!(
                out,
                "\t\t<StudyEventRef StudyEventOID=\"Event.{}\" OrderNumber=\"{}\" Mandatory=\"No\"/>",
                attr(&e.unique_name),
                n + 1
            );
        }
        out.push_str("\t</Protocol>\n");
        for e in &d.events {
            let arm = d.arms.iter().find(|a| a.num == e.arm_num).map(|a| a.name.as_str()).unwrap_or("");
            let _ = writeln!(
                out,
                "\t<StudyEventDef OID=\"Event.{u}\" Name=\"{}\" Type=\"Common\" Repeating=\"{}\" redcap:EventName=\"{}\" \
                 redcap:CustomEventLabel=\"{}\" redcap:UniqueEventName=\"{u}\" redcap:ArmNum=\"{}\" redcap:ArmName=\"{}\" \
                 redcap:DayOffset=\"{}\" redcap:OffsetMin=\"{}\" redcap:OffsetMax=\"{}\">",
                attr(&d.event_label(e)),
                if p.is_repeating_event(&e.unique_name) { "Yes" } else { "No" },
                attr(&e.name),
                attr(&e.custom_label),
                e.arm_num,
                attr(arm),
                attr(&e.day_offset),
                attr(&e.offset_min),
                attr(&e.offset_max),
                u = attr(&e.unique_name),
            );
            let forms = d.form_events.iter().filter(|(ev, _)| ev == &e.unique_name);
            for (n, (_, f)) in forms.enumerate() {
                let _ = writeln!(
                    out,
                    "\t\t<FormRef FormOID=\"Form.{f}\" OrderNumber=\"{}\" Mandatory=\"No\" redcap:FormName=\"{f}\"/>",
                    n + 1,
                    f = attr(f)
                );
            }
            out.push_str("\t</StudyEventDef>\n");
        }
    }
    let layouts: Vec<(&str, Vec<Group>)> = d.forms.iter().map(|f| (f.name.as_str(), layout(p, &f.name))).collect();
    for (form, groups) in &layouts {
        let label = d.forms.iter().find(|f| f.name == *form).map(|f| f.label.as_str()).unwrap_or("");
        let repeating = d.repeating.iter().any(|r| r.form.as_deref() == Some(*form));
        let _ = writeln!(
            out,
            "\t<FormDef OID=\"Form.{f}\" Name=\"{}\" Repeating=\"{}\" redcap:FormName=\"{f}\">",
            attr(label),
            if repeating { "Yes" } else { "No" },
            f = attr(form)
        );
        for g in groups {
            let _ = writeln!(out, "\t\t<ItemGroupRef ItemGroupOID=\"{}\" Mandatory=\"No\"/>", attr(&g.oid));
        }
        out.push_str("\t</FormDef>\n");
    }
    for (_, groups) in &layouts {
        for g in groups {
            let _ =
                writeln!(out, "\t<ItemGroupDef OID=\"{}\" Name=\"{}\" Repeating=\"No\">", attr(&g.oid), attr(&g.name));
            for it in &g.items {
                let oids = match it {
                    Item::Field(n) => match p.field(n) {
                        Some(f) if f.field_type == "checkbox" => {
                            f.choice_list().iter().map(|(c, _)| checkbox_column(n, c)).collect()
                        }
                        _ => vec![n.clone()],
                    },
                    other => vec![other.oid()],
                };
                let var = match it {
                    Item::Field(n) => n.clone(),
                    other => other.oid(),
                };
                for oid in oids {
                    let _ = writeln!(
                        out,
                        "\t\t<ItemRef ItemOID=\"{}\" Mandatory=\"No\" redcap:Variable=\"{}\"/>",
                        attr(&oid),
                        attr(&var)
                    );
                }
            }
            out.push_str("\t</ItemGroupDef>\n");
        }
    }
    let mut code_lists = String::new();
    for (form, groups) in &layouts {
        for g in groups {
            for it in &g.items {
                match it {
                    Item::Field(n) => {
                        if let Some(f) = p.field(n) {
                            item_defs(out, &mut code_lists, f);
                        }
                    }
                    Item::Dag => pseudo_def(out, "redcap_data_access_group", "text", "Data Access Group"),
                    Item::SurveyId => pseudo_def(out, "redcap_survey_identifier", "text", "Survey Identifier"),
                    Item::Timestamp(f) => {
                        pseudo_def(out, &format!("{f}_timestamp"), "datetime", "Survey Timestamp");
                    }
                    Item::Complete(_) => {
                        let name = format!("{form}_complete");
                        let _ = writeln!(
                            out,
                            "\t<ItemDef OID=\"{name}\" Name=\"{name}\" DataType=\"text\" Length=\"1\" redcap:Variable=\"{name}\" \
                             redcap:FieldType=\"select\" redcap:SectionHeader=\"Form Status\">\n\t\t<Question><TranslatedText>Complete?</TranslatedText></Question>\n\
                             \t\t<CodeListRef CodeListOID=\"{name}.choices\"/>\n\t</ItemDef>",
                            name = attr(&name)
                        );
                        code_list(
                            &mut code_lists,
                            &name,
                            "text",
                            &[("0", "Incomplete"), ("1", "Unverified"), ("2", "Complete")],
                            None,
                        );
                    }
                }
            }
        }
    }
    out.push_str(&code_lists);
    out.push_str("</MetaDataVersion>\n</Study>\n");
}

fn pseudo_def(out: &mut String, name: &str, data_type: &str, label: &str) {
    let _ = writeln!(
        out,
        "\t<ItemDef OID=\"{n}\" Name=\"{n}\" DataType=\"{data_type}\" Length=\"999\" redcap:Variable=\"{n}\">\n\
         \t\t<Question><TranslatedText>{}</TranslatedText></Question>\n\t</ItemDef>",
        text(label),
        n = attr(name)
    );
}

fn code_list(out: &mut String, oid: &str, data_type: &str, items: &[(&str, &str)], checkbox: Option<(&str, &str)>) {
    let extra = match checkbox {
        Some((var, choices)) => {
            format!(" redcap:Variable=\"{}\" redcap:CheckboxChoices=\"{}\"", attr(var), attr(choices))
        }
        None => String::new(),
    };
    let _ =
        writeln!(out, "\t<CodeList OID=\"{o}.choices\" Name=\"{o}\" DataType=\"{data_type}\"{extra}>", o = attr(oid));
    for (code, label) in items {
        let _ = writeln!(
            out,
            "\t\t<CodeListItem CodedValue=\"{}\"><Decode><TranslatedText>{}</TranslatedText></Decode></CodeListItem>",
            attr(code),
            text(label)
        );
    }
    out.push_str("\t</CodeList>\n");
}

/// The ItemDef(s) of a field (one per option for a checkbox) and its code lists.
fn item_defs(out: &mut String, code_lists: &mut String, f: &Field) {
    let ftype = match f.field_type.as_str() {
        "notes" => "textarea",
        "dropdown" => "select",
        other => other,
    };
    let validation = match f.validation.as_str() {
        "number" => "float",
        "integer" => "int",
        other => other,
    };
    let data_type = match (f.field_type.as_str(), f.validation.as_str()) {
        ("checkbox" | "yesno" | "truefalse", _) => "boolean",
        ("calc", _) => "float",
        (_, "number") => "float",
        (_, v) if v.starts_with("number_") => "float",
        (_, "integer") => "integer",
        (_, v) if v.starts_with("datetime") => "datetime",
        (_, v) if v.starts_with("date") => "date",
        (_, v) if v.starts_with("time") => "time",
        _ => "text",
    };
    let mut attrs = String::new();
    let mut opt = |k: &str, v: &str| {
        if !v.is_empty() {
            let _ = write!(attrs, " redcap:{k}=\"{}\"", attr(v));
        }
    };
    opt("TextValidationType", validation);
    opt("SectionHeader", &f.section_header);
    opt("FieldNote", &f.note);
    match f.field_type.as_str() {
        "calc" => opt("Calculation", &f.choices),
        "slider" => opt("SliderLabels", &f.choices),
        _ => {}
    }
    opt("Identifier", if f.identifier { "y" } else { "" });
    opt("BranchingLogic", &f.branching_logic);
    opt("RequiredField", if f.required { "y" } else { "" });
    opt("CustomAlignment", &f.alignment);
    opt("QuestionNumber", &f.question_number);
    opt("MatrixGroupName", &f.matrix_group);
    opt("MatrixRanking", if f.matrix_ranking { "y" } else { "" });
    opt("FieldAnnotation", &f.annotation);
    let mut question = format!("<TranslatedText>{}</TranslatedText>", text(&strip_tags(&f.label)));
    if f.label.contains('<') {
        let _ = write!(question, "<redcap:FormattedTranslatedText>{}</redcap:FormattedTranslatedText>", text(&f.label));
    }
    let mut range = String::new();
    for (cmp, v) in [("GE", &f.min), ("LE", &f.max)] {
        if !v.is_empty() {
            let _ = write!(
                range,
                "\t\t<RangeCheck Comparator=\"{cmp}\" SoftHard=\"Soft\">\n\t\t\t<CheckValue>{}</CheckValue>\n\
                 \t\t\t<ErrorMessage><TranslatedText>The value you provided is outside the suggested range.</TranslatedText></ErrorMessage>\n\t\t</RangeCheck>\n",
                text(v)
            );
        }
    }
    let def = |out: &mut String, oid: &str, with_codes: bool| {
        let codes = if with_codes {
            format!("\t\t<CodeListRef CodeListOID=\"{}.choices\"/>\n", attr(oid))
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "\t<ItemDef OID=\"{o}\" Name=\"{o}\" DataType=\"{data_type}\" Length=\"999\" redcap:Variable=\"{}\" \
             redcap:FieldType=\"{ftype}\"{attrs}>\n\t\t<Question>{question}</Question>\n{codes}{range}\t</ItemDef>\n",
            attr(&f.name),
            o = attr(oid)
        );
    };
    match f.field_type.as_str() {
        "checkbox" => {
            let choices = f.choice_list();
            let joined = choices.iter().map(|(c, l)| format!("{c}, {l}")).collect::<Vec<_>>().join("|");
            for (code, _) in &choices {
                let col = checkbox_column(&f.name, code);
                def(out, &col, true);
                code_list(
                    code_lists,
                    &col,
                    "boolean",
                    &[("1", "Checked"), ("0", "Unchecked")],
                    Some((&f.name, &joined)),
                );
            }
        }
        "radio" | "dropdown" | "yesno" | "truefalse" => {
            def(out, &f.name, true);
            let choices = f.choice_list();
            let pairs: Vec<(&str, &str)> = choices.iter().map(|(c, l)| (c.as_str(), l.as_str())).collect();
            code_list(code_lists, &f.name, if f.field_type == "radio" { "text" } else { data_type }, &pairs, None);
        }
        _ => def(out, &f.name, false),
    }
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for input in [&b""[..], b"h", b"hi", b"hi!", b"test upload\n", &[0u8, 255, 128, 7, 9]] {
            assert_eq!(crate::odm::base64_decode(&base64_encode(input)).unwrap(), input);
        }
        assert_eq!(base64_encode(b"hi"), "aGk=");
    }

    #[test]
    fn escaping_and_oids() {
        assert_eq!(attr("a\n\"<&>"), "a&#10;&quot;&lt;&amp;&gt;");
        assert_eq!(oid_stem("REDCapR: simple"), "REDCapRSimple");
        assert_eq!(oid_stem("doctest project"), "DoctestProject");
        assert_eq!(oid_stem("::"), "Project");
    }
}
