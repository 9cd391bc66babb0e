//! Projects (spec/project.toml): Create Project (super token), Export Project Info, Import
//! Project Info, Export Project XML.

use std::collections::HashSet;

use serde_json::Value;

use super::{Ctx, Env, HResult, NO_API, Reply, bad, commit, count, forbidden};
use crate::auth::Rights;
use crate::input;
use crate::model::{Arm, Event, Field, Form, ProjectDef};
use crate::odm::{self, LoadedProject};
use crate::odm_out;
use crate::params::Params;
use crate::render::{self, Table};
use crate::store::Store;

/// Calls made with a super token: Export Version and Create Project.
pub fn super_call(store: &mut Store, env: &Env, params: Params, username: &str, content: &str) -> HResult {
    match content {
        "version" => Ok(Reply::text(env.version.clone())),
        "project" if params.has("data") || params.has("odm") => create(store, &params, username),
        _ => Err(forbidden(NO_API)),
    }
}

/// Create Project: `data` (project attributes) and optional `odm` (a whole project XML).
fn create(store: &mut Store, params: &Params, username: &str) -> HResult {
    let format = params.get_nonempty("format").unwrap_or("xml");
    let rows = match params.get_nonempty("data") {
        Some(d) => input::rows(format, d, b',').map_err(bad)?,
        None => Vec::new(),
    };
    let attrs = rows.into_iter().next().unwrap_or_default();
    let mut loaded = match params.get_nonempty("odm") {
        Some(xml) => odm::parse(xml).map_err(|e| bad(format!("The ODM document could not be imported: {e}")))?,
        None => blank_project(),
    };
    drop_calc_values(&mut loaded);
    let get = |k: &str| input::get(&attrs, k).map(str::to_owned);
    if let Some(t) = get("project_title").filter(|t| !t.trim().is_empty()) {
        loaded.def.info.title = t;
    }
    if loaded.def.info.title.trim().is_empty() {
        return Err(bad("The parameter 'project_title' is missing from the data"));
    }
    if let Some(p) = get("purpose") {
        loaded.def.info.purpose = p.trim().parse().map_err(|_| bad("The value of 'purpose' is not valid"))?;
        if !(0..=4).contains(&loaded.def.info.purpose) {
            return Err(bad("The value of 'purpose' is not valid"));
        }
    }
    for (key, slot) in
        [("purpose_other", &mut loaded.def.info.purpose_other), ("project_notes", &mut loaded.def.info.notes)]
    {
        if let Some(v) = get(key) {
            *slot = v;
        }
    }
    if let Some(v) = get("surveys_enabled") {
        loaded.def.info.surveys_enabled = v.trim() == "1";
    }
    if let Some(v) = get("record_autonumbering_enabled") {
        loaded.def.info.record_autonumbering_enabled = v.trim() == "1";
    }
    let id = store.insert_project(loaded)?;
    let token = store.set_project_user(id, username, &Rights::full(), None, None)?;
    // The records the XML brings, then the creation itself: PyCap 2.7.0's doctest
    // redcap.methods.logging.Logging.export_logging (newest first) shows entries older than
    // `Create project`, so REDCap writes it once the XML is in. Which entries those are, and their
    // details, is UNVERIFIED: one `Create record (API) N` per record here.
    for (record, dag) in store.records(id)? {
        store.log(id, username, "record_add", &format!("Create record (API) {record}"), "", &record, dag)?;
    }
    // REDCap's action text for the creation has a trailing space (the same doctest:
    // `'action': 'Manage/Design '`).
    store.log(id, username, "manage", "Manage/Design ", "Create project (API)", "", None)?;
    Ok(Reply::text(token))
}

/// Create Project stores none of the calc-field values its `odm` brings, and does not compute
/// them: PyCap's integration test `test_simple_project.py::test_export_records_df_eav` finds 30
/// EAV values in a project created on a live REDCap from `test_simple_project.xml`, whose 34
/// values include 4 of calc fields (`age`, `bmi`). A project loaded from a file is a server's
/// existing state instead, and keeps them.
fn drop_calc_values(loaded: &mut LoadedProject) {
    let calc: HashSet<&str> =
        loaded.def.fields.iter().filter(|f| f.field_type == "calc").map(|f| f.name.as_str()).collect();
    loaded.values.retain(|v| !calc.contains(v.field.as_str()));
}

/// What a new project without `odm` contains: one instrument with the record-id field.
fn blank_project() -> LoadedProject {
    let def = ProjectDef {
        record_id_field: "record_id".into(),
        forms: vec![Form { name: "my_first_instrument".into(), label: "My First Instrument".into() }],
        fields: vec![Field {
            name: "record_id".into(),
            form: "my_first_instrument".into(),
            field_type: "text".into(),
            label: "Record ID".into(),
            ..Default::default()
        }],
        arms: vec![Arm { num: 1, name: "Arm 1".into() }],
        events: vec![Event {
            id: 0,
            unique_name: "event_1_arm_1".into(),
            name: "Event 1".into(),
            arm_num: 1,
            day_offset: "0".into(),
            offset_min: "0".into(),
            offset_max: "0".into(),
            custom_label: String::new(),
        }],
        form_events: vec![("event_1_arm_1".into(), "my_first_instrument".into())],
        ..Default::default()
    };
    LoadedProject { def, ..Default::default() }
}

/// Export Project Info: one object (JSON object, CSV header + row).
pub fn export_info(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let out = ctx.out(false)?;
    let p = &ctx.project;
    let i = &p.def.info;
    let b = |v: bool| Value::from(i64::from(v));
    let s = |v: &str| Value::from(v.to_owned());
    let cols: Vec<(&str, Value)> = vec![
        ("project_id", Value::from(p.id())),
        ("project_title", s(&i.title)),
        ("creation_time", s(&i.creation_time)),
        ("production_time", s(&i.production_time)),
        ("in_production", b(i.in_production)),
        ("project_language", s(&i.project_language)),
        ("purpose", Value::from(i.purpose)),
        ("purpose_other", s(&i.purpose_other)),
        ("project_notes", s(&i.notes)),
        ("custom_record_label", s(&i.custom_record_label)),
        ("secondary_unique_field", s(&i.secondary_unique_field)),
        // The setting alone is not enough: a project whose arms were all deleted reports 0
        // (redcapAPI's arm method tests, run against a live REDCap: after deleteArms of every
        // arm, is_longitudinal is 0, and importing arms and events makes it 1 again).
        ("is_longitudinal", b(p.def.longitudinal && !p.def.events.is_empty())),
        ("has_repeating_instruments_or_events", b(p.has_repeating())),
        ("surveys_enabled", b(i.surveys_enabled)),
        ("scheduling_enabled", b(i.scheduling_enabled)),
        ("record_autonumbering_enabled", b(i.record_autonumbering_enabled)),
        ("randomization_enabled", b(i.randomization_enabled)),
        ("ddp_enabled", b(false)),
        ("project_irb_number", s(&i.irb_number)),
        ("project_grant_number", s(&i.grant_number)),
        ("project_pi_firstname", s(&i.pi_firstname)),
        ("project_pi_lastname", s(&i.pi_lastname)),
        ("project_pi_email", s(&i.pi_email)),
        ("display_today_now_button", b(i.display_today_now_button)),
        ("missing_data_codes", s(&i.missing_data_codes)),
        ("external_modules", s("")),
        // A number in JSON (PyCap's recorded doctest: `'bypass_branching_erase_field_prompt': 0`);
        // REDCapR's fixture shows "0" only because it reads every column of the CSV as text.
        ("bypass_branching_erase_field_prompt", b(i.bypass_branching_erase_field_prompt)),
    ];
    let mut t = Table::new(cols.iter().map(|(k, _)| *k));
    t.rows.push(cols.into_iter().map(|(_, v)| v).collect());
    let (ct, body) = render::single(out, &t);
    ctx.log_export("Export project information (API)")?;
    Ok(Reply::Body { content_type: ct.into(), body })
}

/// Largest total of file bytes a Project XML export embeds (`exportFiles`): the document is built
/// in memory, so bigger exports get an honest error instead.
const MAX_EMBEDDED_FILES: u64 = 256 << 20;

/// Export Project XML: the whole project as CDISC ODM 1.3.1 with REDCap's extensions, loadable
/// by this emulator (and by Create Project's `odm`). The data filters (`records`, `fields`,
/// `events`, `filterLogic`) apply to ClinicalData only; the metadata is always complete.
pub fn export_xml(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let project = ctx.project.clone();
    let p = &*project;
    let version = ctx.env.version.clone();
    let body = if ctx.params.flag("returnMetadataOnly") {
        odm_out::project_document(p, &version, None)
    } else {
        let level = ctx.need_data_export()?;
        let with_dag = ctx.params.flag("exportDataAccessGroups") && ctx.user.dag_id.is_none();
        let survey = ctx.params.flag("exportSurveyFields");
        let sel = super::record::select(ctx, level, with_dag, survey)?;
        let rows: Vec<&crate::records::RowData> = sel.rows.iter().map(|&i| &sel.data.rows[i]).collect();
        let embed = ctx.params.flag("exportFiles");
        if embed {
            let mut total = 0u64;
            for row in &rows {
                for (name, values) in row.values.iter() {
                    if p.field(name).is_some_and(|f| f.field_type == "file") && sel.names.iter().any(|n| n == name) {
                        let doc = values.first().and_then(|v| v.parse::<i64>().ok());
                        if let Some(d) = doc.map(|d| ctx.store.doc(d)).transpose()?.flatten() {
                            total += d.size;
                        }
                    }
                }
            }
            if total > MAX_EMBEDDED_FILES {
                return Err(bad(format!(
                    "The emulator does not embed more than {} MiB of files in a Project XML export ({total} bytes \
                     requested): export without exportFiles and download the files with Export a File",
                    MAX_EMBEDDED_FILES >> 20
                )));
            }
        }
        let store = &*ctx.store;
        let lookup = |doc: &str| -> Option<odm_out::Embedded> {
            let d = store.doc(doc.parse().ok()?).ok()??;
            let bytes = std::fs::read(&d.path).ok()?;
            Some(odm_out::Embedded { name: d.name, mime: d.mime, bytes })
        };
        let clinical = odm_out::Clinical {
            rows,
            names: sel.names.iter().cloned().collect(),
            dag: with_dag,
            survey,
            files: if embed { Some(&lookup) } else { None },
        };
        odm_out::project_document(p, &version, Some((&sel.data, &clinical)))
    };
    ctx.log("export", "Data export (API)", "Export project XML (API)", "")?;
    Ok(Reply::Body { content_type: render::XML.into(), body: body.into_bytes() })
}

/// Import Project Info (`content=project_settings`): one object of the documented updatable
/// attributes; answers how many of them were received, unchanged ones included (API help:
/// imp_proj_sett). Other keys are ignored and not counted (UNVERIFIED). Turning
/// `is_longitudinal` off is refused while the project has more than one event (UNVERIFIED).
pub fn import_info(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    let rows = ctx.data_rows()?;
    let Some(row) = rows.into_iter().next() else {
        return Err(bad("The data must hold one object of project attributes"));
    };
    let mut def = ctx.project.def.clone();
    let mut n = 0;
    let mut errors = Vec::new();
    let mut flags: Vec<(String, bool)> = Vec::new();
    for (key, raw) in &row {
        let v = raw.trim();
        let info = &mut def.info;
        let text: Option<&mut String> = match key.as_str() {
            "project_language" => Some(&mut info.project_language),
            "purpose_other" => Some(&mut info.purpose_other),
            "project_notes" => Some(&mut info.notes),
            "custom_record_label" => Some(&mut info.custom_record_label),
            "project_irb_number" => Some(&mut info.irb_number),
            "project_grant_number" => Some(&mut info.grant_number),
            "project_pi_firstname" => Some(&mut info.pi_firstname),
            "project_pi_lastname" => Some(&mut info.pi_lastname),
            _ => None,
        };
        if let Some(slot) = text {
            *slot = raw.clone();
            n += 1;
            continue;
        }
        match key.as_str() {
            "project_title" => {
                if v.is_empty() {
                    errors.push("project_title cannot be blank".to_owned());
                }
                info.title = raw.clone();
            }
            "purpose" => match v.parse::<i64>() {
                Ok(x) if (0..=4).contains(&x) => info.purpose = x,
                _ => errors.push(format!("The value of 'purpose' is not valid: '{v}'")),
            },
            "secondary_unique_field" => {
                if !v.is_empty() && ctx.project.field(v).is_none() {
                    errors.push(format!("The secondary_unique_field \"{v}\" is not a field of this project"));
                }
                info.secondary_unique_field = v.to_owned();
            }
            "is_longitudinal"
            | "surveys_enabled"
            | "scheduling_enabled"
            | "record_autonumbering_enabled"
            | "randomization_enabled"
            | "display_today_now_button"
            | "bypass_branching_erase_field_prompt" => match v {
                "0" | "1" => flags.push((key.clone(), v == "1")),
                _ => errors.push(format!("The value of '{key}' must be 0 or 1")),
            },
            _ => continue,
        }
        n += 1;
    }
    for (k, on) in &flags {
        let info = &mut def.info;
        match k.as_str() {
            "surveys_enabled" => info.surveys_enabled = *on,
            "scheduling_enabled" => info.scheduling_enabled = *on,
            "record_autonumbering_enabled" => info.record_autonumbering_enabled = *on,
            "randomization_enabled" => info.randomization_enabled = *on,
            "display_today_now_button" => info.display_today_now_button = *on,
            "bypass_branching_erase_field_prompt" => info.bypass_branching_erase_field_prompt = *on,
            "is_longitudinal" if *on => def.longitudinal = true,
            "is_longitudinal" => {
                if def.events.len() > 1 {
                    errors.push(
                        "is_longitudinal cannot be set to 0 while the project has more than one event".to_owned(),
                    );
                } else {
                    def.longitudinal = false;
                    let ev = def.events.first().map(|e| e.unique_name.clone()).unwrap_or_default();
                    def.form_events = def.forms.iter().map(|f| (ev.clone(), f.name.clone())).collect();
                    def.repeating.retain(|r| r.form.is_some());
                }
            }
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    commit(ctx, def, &format!("Modify project settings (API): {n} attributes"), |_, _| Ok(()))?;
    count(n)
}
