//! Metadata exports: data dictionary, export field names, instruments, instrument-event
//! mappings, repeating setup, arms and events.

use serde_json::Value;

use super::{Ctx, HResult, bad};
use crate::model::checkbox_column;
use crate::render::Table;

const METADATA_COLUMNS: [&str; 18] = [
    "field_name",
    "form_name",
    "section_header",
    "field_type",
    "field_label",
    "select_choices_or_calculations",
    "field_note",
    "text_validation_type_or_show_slider_number",
    "text_validation_min",
    "text_validation_max",
    "identifier",
    "branching_logic",
    "required_field",
    "custom_alignment",
    "question_number",
    "matrix_group_name",
    "matrix_ranking",
    "field_annotation",
];

fn invalid(param: &str, bad_values: &[String]) -> super::Failure {
    bad(format!(
        "The following values in the parameter \"{param}\" are not valid: {}",
        bad_values.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
    ))
}

/// Export Metadata: 18 columns, empty values as "".
pub fn metadata(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let p = ctx.project.clone();
    let fields = ctx.params.list("fields");
    let forms = ctx.params.list("forms");
    if let Some(fs) = &fields {
        let badv: Vec<String> = fs.iter().filter(|f| p.field(f).is_none()).cloned().collect();
        if !badv.is_empty() {
            return Err(invalid("fields", &badv));
        }
    }
    if let Some(fs) = &forms {
        let badv: Vec<String> = fs.iter().filter(|f| !p.has_form(f)).cloned().collect();
        if !badv.is_empty() {
            return Err(invalid("forms", &badv));
        }
    }
    let mut t = Table::new(METADATA_COLUMNS);
    for f in &p.def.fields {
        let pick = (fields.is_none() && forms.is_none())
            || fields.as_ref().is_some_and(|l| l.contains(&f.name))
            || forms.as_ref().is_some_and(|l| l.contains(&f.form));
        if !pick {
            continue;
        }
        let yn = |b: bool| if b { "y" } else { "" }.to_owned();
        t.push_strs([
            f.name.clone(),
            f.form.clone(),
            f.section_header.clone(),
            f.field_type.clone(),
            f.label.clone(),
            f.choices.clone(),
            f.note.clone(),
            f.validation.clone(),
            f.min.clone(),
            f.max.clone(),
            yn(f.identifier),
            f.branching_logic.clone(),
            yn(f.required),
            f.alignment.clone(),
            f.question_number.clone(),
            f.matrix_group.clone(),
            yn(f.matrix_ranking),
            f.annotation.clone(),
        ]);
    }
    ctx.table(&t, "records")
}

/// Export List of Export Field Names: calc, file and descriptive fields are not listed.
pub fn field_names(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let p = ctx.project.clone();
    let only = ctx.params.get_nonempty("field").map(str::to_owned);
    if let Some(f) = &only {
        if p.field(f).is_none() && p.complete_form(f).is_none() {
            return Err(invalid("field", std::slice::from_ref(f)));
        }
    }
    // REDCapR's recorded export (variables/default.R): calc fields and each `<form>_complete`
    // (after the form's last field) are listed; File Upload and descriptive fields are not.
    let mut t = Table::new(["original_field_name", "choice_value", "export_field_name"]);
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    for form in &p.def.forms {
        for f in p.def.fields.iter().filter(|f| f.form == form.name) {
            if !wanted(&f.name) {
                continue;
            }
            match f.field_type.as_str() {
                "file" | "descriptive" => {}
                "checkbox" => {
                    for (code, _) in f.choice_list() {
                        t.push_strs([f.name.clone(), code.clone(), checkbox_column(&f.name, &code)]);
                    }
                }
                _ => t.push_strs([f.name.clone(), String::new(), f.name.clone()]),
            }
        }
        let complete = format!("{}_complete", form.name);
        if wanted(&complete) {
            t.push_strs([complete.clone(), String::new(), complete]);
        }
    }
    ctx.table(&t, "fields")
}

/// Export Instruments.
pub fn instruments(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let mut t = Table::new(["instrument_name", "instrument_label"]);
    for f in &ctx.project.def.forms {
        t.push_strs([f.name.clone(), f.label.clone()]);
    }
    let reply = ctx.table(&t, "instruments")?;
    ctx.log_export("Export instruments (API)")?;
    Ok(reply)
}

fn arms_filter(ctx: &Ctx) -> Result<Option<Vec<i64>>, super::Failure> {
    match ctx.params.list("arms") {
        None => Ok(None),
        Some(list) => list
            .iter()
            .map(|a| a.parse::<i64>().map_err(|_| invalid("arms", std::slice::from_ref(a))))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
    }
}

/// Export Instrument-Event Mappings (longitudinal only).
pub fn form_event_mapping(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let p = ctx.project.clone();
    if !p.def.longitudinal {
        return Err(bad("You cannot export form/event mappings for classic projects"));
    }
    let arms = arms_filter(ctx)?;
    let mut t = Table::new(["arm_num", "unique_event_name", "form"]);
    for (ev, form) in &p.def.form_events {
        let Some(e) = p.event(ev) else { continue };
        if arms.as_ref().is_some_and(|a| !a.contains(&e.arm_num)) {
            continue;
        }
        t.rows.push(vec![Value::from(e.arm_num), Value::from(ev.clone()), Value::from(form.clone())]);
    }
    ctx.table(&t, "items")
}

/// Export Repeating Instruments and Events: API Export + Project Design (API help).
pub fn repeating(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    if !ctx.user.rights.design {
        // UNVERIFIED text, as for the structure imports.
        return Err(super::forbidden("You do not have Project Design and Setup privileges"));
    }
    let p = ctx.project.clone();
    if !p.has_repeating() {
        return Err(bad(
            "You cannot export repeating instruments and events because the project does not contain any repeating instruments and events",
        ));
    }
    let mut t = if p.def.longitudinal {
        Table::new(["event_name", "form_name", "custom_form_label"])
    } else {
        Table::new(["form_name", "custom_form_label"])
    };
    for r in &p.def.repeating {
        let form = r.form.clone().unwrap_or_default();
        if p.def.longitudinal {
            t.push_strs([r.event.clone(), form, r.label.clone()]);
        } else {
            t.push_strs([form, r.label.clone()]);
        }
    }
    ctx.table(&t, "items")
}

/// Export Arms (longitudinal only).
pub fn arms(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let p = ctx.project.clone();
    if !p.def.longitudinal {
        return Err(bad("You cannot export arms for classic projects"));
    }
    let arms = arms_filter(ctx)?;
    let mut t = Table::new(["arm_num", "name"]).always_quote(&["name"]);
    for a in &p.def.arms {
        if arms.as_ref().is_some_and(|l| !l.contains(&a.num)) {
            continue;
        }
        // "REDCap will not return an Arm unless it has an event associated with it" (PyCap's
        // integration test_arms_import, recorded against a live server).
        if !p.def.events.iter().any(|e| e.arm_num == a.num) {
            continue;
        }
        t.rows.push(vec![Value::from(a.num), Value::from(a.name.clone())]);
    }
    ctx.table(&t, "arms")
}

/// Export Events (longitudinal only); scheduling columns when the module is on.
pub fn events(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let p = ctx.project.clone();
    if !p.def.longitudinal {
        return Err(bad("You cannot export events for classic projects"));
    }
    let arms = arms_filter(ctx)?;
    let sched = p.def.info.scheduling_enabled;
    let mut cols = vec!["event_name", "arm_num"];
    if sched {
        cols.extend(["day_offset", "offset_min", "offset_max"]);
    }
    cols.extend(["unique_event_name", "custom_event_label", "event_id"]);
    let mut t = Table::new(cols).always_quote(&["event_name"]);
    for e in &p.def.events {
        if arms.as_ref().is_some_and(|l| !l.contains(&e.arm_num)) {
            continue;
        }
        let mut row = vec![Value::from(e.name.clone()), Value::from(e.arm_num)];
        if sched {
            row.extend([
                Value::from(e.day_offset.clone()),
                Value::from(e.offset_min.clone()),
                Value::from(e.offset_max.clone()),
            ]);
        }
        row.extend([Value::from(e.unique_name.clone()), Value::from(e.custom_label.clone()), Value::from(e.id)]);
        t.rows.push(row);
    }
    ctx.table(&t, "events")
}
