//! Structure imports and deletes: Import Metadata, Import / Delete Arms and Events, Import
//! Instrument-Event Mappings, Import Repeating Instruments and Events, Import Project Info.
//!
//! All need API Import/Update plus Project Design and Setup (reference §2 rows 9–24). Each
//! answers a bare count (§5.6), changes the stored definition and the data in one transaction,
//! and is logged.

use std::collections::HashSet;

use super::{Ctx, Failure, HResult, Reply, bad};
use crate::input::{self, InRow};
use crate::model::{Arm, Event, Field, Form, ProjectDef, Repeating, parse_choices};
use crate::odm::render_choices;
use crate::store::Store;

fn count(n: usize) -> HResult {
    Ok(Reply::text(n.to_string()))
}

fn invalid(param: &str, values: &[String]) -> Failure {
    bad(format!(
        "The following values in the parameter \"{param}\" are not valid: {}",
        values.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
    ))
}

fn value<'a>(row: &'a InRow, key: &str) -> &'a str {
    input::get(row, key).map(str::trim).unwrap_or("")
}

/// Saves `def`, runs `data` (data changes) and logs, in one transaction.
fn commit(
    ctx: &mut Ctx,
    def: ProjectDef,
    details: &str,
    data: impl FnOnce(&mut Store, i64) -> Result<(), crate::store::StoreError>,
) -> Result<(), Failure> {
    let pid = def.id;
    let (user, dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        s.save_def(def)?;
        data(s, pid)?;
        s.log(pid, &user, "manage", "Manage/Design", details, "", dag)
    })?;
    Ok(())
}

// ------------------------------------------------------------------------------- metadata

/// The 18 dictionary columns and their spellings in REDCap's data-dictionary CSV header.
const META_KEYS: [(&str, &str); 18] = [
    ("field_name", "Variable / Field Name"),
    ("form_name", "Form Name"),
    ("section_header", "Section Header"),
    ("field_type", "Field Type"),
    ("field_label", "Field Label"),
    ("select_choices_or_calculations", "Choices, Calculations, OR Slider Labels"),
    ("field_note", "Field Note"),
    ("text_validation_type_or_show_slider_number", "Text Validation Type OR Show Slider Number"),
    ("text_validation_min", "Text Validation Min"),
    ("text_validation_max", "Text Validation Max"),
    ("identifier", "Identifier?"),
    ("branching_logic", "Branching Logic (Show field only if...)"),
    ("required_field", "Required Field?"),
    ("custom_alignment", "Custom Alignment"),
    ("question_number", "Question Number (surveys only)"),
    ("matrix_group_name", "Matrix Group Name"),
    ("matrix_ranking", "Matrix Ranking?"),
    ("field_annotation", "Field Annotation"),
];

const FIELD_TYPES: &[&str] = &[
    "text",
    "notes",
    "dropdown",
    "radio",
    "checkbox",
    "yesno",
    "truefalse",
    "calc",
    "file",
    "descriptive",
    "slider",
    "sql",
];

fn meta<'a>(row: &'a InRow, key: &str) -> &'a str {
    let ui = META_KEYS.iter().find(|(k, _)| *k == key).map(|(_, u)| *u).unwrap_or("");
    row.iter().find(|(k, _)| k == key || k.trim().eq_ignore_ascii_case(ui)).map(|(_, v)| v.as_str()).unwrap_or("")
}

fn valid_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_lowercase())
        && cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 100
}

/// "my_first_instrument" → "My First Instrument", for forms new in an imported dictionary.
fn form_label(name: &str) -> String {
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next().map(|c| c.to_ascii_uppercase().to_string() + cs.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Import Metadata: replaces the whole data dictionary (Development only); answers the number
/// of fields. Problems are listed one per line (their wording is UNVERIFIED). Data of fields
/// that are gone is deleted; a renamed record-id field keeps its values.
pub fn import_metadata(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    ctx.need_development("Importing a data dictionary")?;
    let rows = ctx.data_rows()?;
    if rows.is_empty() {
        return Err(bad("The data dictionary is empty: it must hold at least the record-id field"));
    }
    let mut errors = Vec::new();
    let mut fields: Vec<Field> = Vec::new();
    let mut forms: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let line = i + 1;
        let name = meta(row, "field_name").trim().to_owned();
        let form = meta(row, "form_name").trim().to_owned();
        let mut err = |msg: String| errors.push(format!("Row {line} (field \"{name}\"): {msg}"));
        if !valid_name(&name) {
            err("the field name must start with a lower-case letter and hold only a-z, 0-9 and _".into());
        } else if !seen.insert(name.clone()) {
            err("the field name is used more than once".into());
        }
        if !valid_name(&form) {
            err(format!("the form name \"{form}\" must start with a lower-case letter and hold only a-z, 0-9 and _"));
        } else if forms.last() != Some(&form) {
            if forms.contains(&form) {
                err(format!("the fields of form \"{form}\" must be next to each other"));
            }
            forms.push(form.clone());
        }
        let ftype = match meta(row, "field_type").trim() {
            "textarea" => "notes".to_owned(),
            "select" => "dropdown".to_owned(),
            other => other.to_owned(),
        };
        if !FIELD_TYPES.contains(&ftype.as_str()) {
            err(format!("the field type \"{ftype}\" is not valid"));
        }
        let raw_choices = meta(row, "select_choices_or_calculations").trim();
        let choices = match ftype.as_str() {
            "radio" | "dropdown" | "checkbox" => {
                let pairs = parse_choices(raw_choices);
                let mut codes = HashSet::new();
                if pairs.is_empty() {
                    err("a multiple-choice field needs choices (\"1, Yes | 2, No\")".into());
                } else if pairs.iter().any(|(c, _)| c.is_empty() || !codes.insert(c.clone())) {
                    err("the choice codes must be present and distinct".into());
                }
                render_choices(&pairs)
            }
            "calc" => {
                if raw_choices.is_empty() {
                    err("a calculated field needs a calculation".into());
                }
                raw_choices.to_owned()
            }
            "slider" | "sql" => raw_choices.to_owned(),
            _ => String::new(),
        };
        let mut yes = |key: &str| match meta(row, key).trim() {
            "" => false,
            "y" | "Y" => true,
            other => {
                err(format!("the value \"{other}\" of {key} must be \"y\" or blank"));
                false
            }
        };
        let (identifier, required, matrix_ranking) = (yes("identifier"), yes("required_field"), yes("matrix_ranking"));
        fields.push(Field {
            name,
            form,
            section_header: meta(row, "section_header").to_owned(),
            field_type: ftype,
            label: meta(row, "field_label").to_owned(),
            choices,
            note: meta(row, "field_note").to_owned(),
            validation: meta(row, "text_validation_type_or_show_slider_number").trim().to_owned(),
            min: meta(row, "text_validation_min").trim().to_owned(),
            max: meta(row, "text_validation_max").trim().to_owned(),
            identifier,
            branching_logic: meta(row, "branching_logic").to_owned(),
            required,
            alignment: meta(row, "custom_alignment").trim().to_owned(),
            question_number: meta(row, "question_number").to_owned(),
            matrix_group: meta(row, "matrix_group_name").trim().to_owned(),
            matrix_ranking,
            annotation: meta(row, "field_annotation").to_owned(),
        });
    }
    if fields.first().is_some_and(|f| f.field_type != "text") {
        errors.push("The first field is the record-id field and must be a text field".into());
    }
    for f in &fields {
        if let Some(form) = f.name.strip_suffix("_complete").filter(|x| forms.iter().any(|n| n == x)) {
            errors.push(format!("The field name \"{}\" is reserved for the status of form \"{form}\"", f.name));
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let old = &ctx.project.def;
    let mut def = old.clone();
    let n = fields.len();
    def.forms = forms
        .iter()
        .map(|name| Form {
            name: name.clone(),
            label: old
                .forms
                .iter()
                .find(|f| &f.name == name)
                .map(|f| f.label.clone())
                .unwrap_or_else(|| form_label(name)),
        })
        .collect();
    let old_rid = old.record_id_field.clone();
    def.record_id_field = fields[0].name.clone();
    def.fields = fields;
    let has = |f: &str| def.forms.iter().any(|x| x.name == f);
    if def.longitudinal {
        // New forms are not designated for any event (UNVERIFIED); mappings of gone forms go.
        def.form_events.retain(|(_, f)| def.forms.iter().any(|x| &x.name == f));
    } else {
        let ev = def.events.first().map(|e| e.unique_name.clone()).unwrap_or_default();
        def.form_events = def.forms.iter().map(|f| (ev.clone(), f.name.clone())).collect();
    }
    def.repeating.retain(|r| r.form.as_deref().is_none_or(has));
    def.surveys.retain(|s| has(s));
    if !def.fields.iter().any(|f| f.name == def.info.secondary_unique_field) {
        def.info.secondary_unique_field.clear();
    }
    let mut keep: HashSet<String> = def.fields.iter().map(|f| f.name.clone()).collect();
    for f in &def.forms {
        keep.insert(format!("{}_complete", f.name));
        keep.insert(format!("{}_timestamp", f.name));
    }
    keep.insert("redcap_survey_identifier".into());
    let new_rid = def.record_id_field.clone();
    let rename_rid = old_rid != new_rid && !keep.contains(&old_rid);
    commit(ctx, def, &format!("Import data dictionary (API): {n} fields"), |s, pid| {
        if rename_rid {
            s.conn.execute(
                "UPDATE data SET field = ?3 WHERE project_id = ?1 AND field = ?2",
                rusqlite::params![pid, old_rid, new_rid],
            )?;
        }
        let stored: Vec<String> = {
            let mut stmt = s.conn.prepare("SELECT DISTINCT field FROM data WHERE project_id = ?1")?;
            stmt.query_map([pid], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for f in stored.iter().filter(|f| !keep.contains(*f)) {
            s.conn.execute("DELETE FROM data WHERE project_id = ?1 AND field = ?2", rusqlite::params![pid, f])?;
        }
        Ok(())
    })?;
    count(n)
}

// ------------------------------------------------------------------------------- arms and events

fn need_longitudinal(ctx: &Ctx, what: &str) -> Result<(), Failure> {
    if ctx.project.def.longitudinal {
        Ok(())
    } else {
        // Modelled on the recorded export messages (UNVERIFIED for imports and deletes).
        Err(bad(format!("You cannot {what} for classic projects")))
    }
}

/// Removes events with their mappings, repeating setup and report filters (the data is deleted
/// by [`Store::delete_event_data`]).
fn drop_events(def: &mut ProjectDef, gone: &HashSet<String>) {
    def.events.retain(|e| !gone.contains(&e.unique_name));
    def.form_events.retain(|(e, _)| !gone.contains(e));
    def.repeating.retain(|r| !gone.contains(&r.event));
    for r in &mut def.reports {
        r.filter_events.retain(|e| !gone.contains(e));
    }
}

/// Import Arms (`action=import`): adds arms and renames existing ones; `override=1` (Development
/// only) first deletes every arm, with its events and their data.
pub fn import_arms(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    need_longitudinal(ctx, "import arms")?;
    let over = ctx.params.flag("override");
    if over {
        ctx.need_development("Importing arms with override=1")?;
    }
    let rows = ctx.data_rows()?;
    let mut arms: Vec<Arm> = Vec::new();
    let mut errors = Vec::new();
    for row in &rows {
        let (num, name) = (value(row, "arm_num"), value(row, "name"));
        match num.parse::<i64>() {
            Ok(n) if n >= 1 && !name.is_empty() => {
                arms.retain(|a| a.num != n);
                arms.push(Arm { num: n, name: name.to_owned() });
            }
            _ => {
                errors.push(format!("The arm (arm_num \"{num}\", name \"{name}\") needs a positive arm_num and a name"))
            }
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let mut def = ctx.project.def.clone();
    let mut gone = Vec::new();
    if over {
        gone = def.events.iter().map(|e| e.unique_name.clone()).collect();
        drop_events(&mut def, &gone.iter().cloned().collect());
        def.arms.clear();
    }
    for a in arms {
        match def.arms.iter_mut().find(|x| x.num == a.num) {
            Some(x) => x.name = a.name,
            None => def.arms.push(a),
        }
    }
    def.arms.sort_by_key(|a| a.num);
    let n = rows.len();
    commit(ctx, def, &format!("Import arms (API): {n}"), |s, pid| s.delete_event_data(pid, &gone))?;
    count(n)
}

/// Delete Arms (Development only): the arms, their events and the data in them.
pub fn delete_arms(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    need_longitudinal(ctx, "delete arms")?;
    ctx.need_development("Deleting arms")?;
    let list = ctx.params.list("arms").ok_or_else(|| bad("The parameter \"arms\" is missing"))?;
    let def0 = &ctx.project.def;
    let nums: Vec<i64> = list.iter().filter_map(|a| a.parse().ok()).collect();
    let unknown: Vec<String> = list
        .iter()
        .filter(|a| a.parse::<i64>().ok().is_none_or(|n| !def0.arms.iter().any(|x| x.num == n)))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(invalid("arms", &unknown));
    }
    let mut def = def0.clone();
    let gone: Vec<String> =
        def.events.iter().filter(|e| nums.contains(&e.arm_num)).map(|e| e.unique_name.clone()).collect();
    drop_events(&mut def, &gone.iter().cloned().collect());
    def.arms.retain(|a| !nums.contains(&a.num));
    let n = def0.arms.len() - def.arms.len();
    commit(ctx, def, &format!("Delete arms (API): {}", list.join(", ")), |s, pid| s.delete_event_data(pid, &gone))?;
    count(n)
}

/// Longest label slug in a unique event name: REDCap's own files have "Deadline to opt out of
/// study" as `deadline_to_opt_ou_arm_2` (PyCap's long project XML).
const EVENT_SLUG_LEN: usize = 18;

/// A unique event name: the label in lower case with other characters as `_`, cut to 18
/// characters, then `_arm_<n>` ("XYZ" in arm 2 → `xyz_arm_2`, PyCap integration). A clash gets
/// `_2`, `_3` … (REDCap's own de-duplication, and whether it trims a `_` left at the cut, are
/// UNVERIFIED).
fn unique_event_name(def: &ProjectDef, name: &str, arm: i64) -> String {
    let mut base = String::new();
    for c in name.to_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && (base.is_empty() || base.ends_with('_'))) {
            base.push(c);
        }
    }
    base.truncate(EVENT_SLUG_LEN);
    let base = base.trim_end_matches('_');
    let base = if base.is_empty() { "event" } else { base };
    let taken = |u: &str| def.events.iter().any(|e| e.unique_name == u);
    let mut candidate = format!("{base}_arm_{arm}");
    let mut n = 2;
    while taken(&candidate) {
        candidate = format!("{base}_{n}_arm_{arm}");
        n += 1;
    }
    candidate
}

/// Whether a new event may take `unique` as its name: free, of REDCap's shape (a lower-case
/// slug of at most 18 characters, then `_arm_<arm>`).
fn keeps_unique_name(def: &ProjectDef, unique: &str, arm: i64) -> bool {
    let Some(slug) = unique.strip_suffix(&format!("_arm_{arm}")) else { return false };
    !slug.is_empty()
        && slug.len() <= EVENT_SLUG_LEN
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !def.events.iter().any(|e| e.unique_name == unique)
}

/// Import Events (`action=import`): a row with an existing `unique_event_name` updates that event;
/// any other row creates one (REDCap generates the unique name). `override=1` (Development only)
/// first deletes every event and its data.
pub fn import_events(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    need_longitudinal(ctx, "import events")?;
    let over = ctx.params.flag("override");
    if over {
        ctx.need_development("Importing events with override=1")?;
    }
    let rows = ctx.data_rows()?;
    let mut def = ctx.project.def.clone();
    let mut gone = Vec::new();
    if over {
        gone = def.events.iter().map(|e| e.unique_name.clone()).collect();
        drop_events(&mut def, &gone.iter().cloned().collect());
    }
    let mut errors = Vec::new();
    let mut new_events = Vec::new();
    for row in &rows {
        let name = value(row, "event_name");
        let arm = value(row, "arm_num");
        let Some(arm) = arm.parse::<i64>().ok().filter(|n| def.arms.iter().any(|a| a.num == *n)) else {
            errors.push(format!("The event \"{name}\" has an arm_num (\"{arm}\") that is not an arm of this project"));
            continue;
        };
        if name.is_empty() {
            errors.push("Every event needs an event_name".to_owned());
            continue;
        }
        let num = |k: &str, default: &str| {
            let v = value(row, k);
            if v.is_empty() { default.to_owned() } else { v.to_owned() }
        };
        if ["day_offset", "offset_min", "offset_max"].iter().any(|k| {
            let v = value(row, k);
            !v.is_empty() && v.parse::<f64>().is_err()
        }) {
            errors.push(format!("The offsets of the event \"{name}\" must be numbers"));
            continue;
        }
        let unique = value(row, "unique_event_name");
        if let Some(e) = def.events.iter_mut().find(|e| !unique.is_empty() && e.unique_name == unique) {
            if e.arm_num != arm {
                errors.push(format!("The event \"{unique}\" belongs to arm {}; its arm cannot change", e.arm_num));
                continue;
            }
            e.name = name.to_owned();
            e.day_offset = num("day_offset", &e.day_offset);
            e.offset_min = num("offset_min", &e.offset_min);
            e.offset_max = num("offset_max", &e.offset_max);
            if let Some(l) = input::get(row, "custom_event_label") {
                e.custom_label = l.to_owned();
            }
            continue;
        }
        // An event imported with a unique name it does not have yet keeps it (so a saved
        // structure comes back after `override=1`: PyCap's test_arms_import_override).
        let keep = keeps_unique_name(&def, unique, arm);
        let event = Event {
            id: 0,
            unique_name: if keep { unique.to_owned() } else { unique_event_name(&def, name, arm) },
            name: name.to_owned(),
            arm_num: arm,
            day_offset: num("day_offset", "0"),
            offset_min: num("offset_min", "0"),
            offset_max: num("offset_max", "0"),
            custom_label: value(row, "custom_event_label").to_owned(),
        };
        new_events.push(event.unique_name.clone());
        def.events.push(event);
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let n = rows.len();
    let pid = def.id;
    let (user, dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        for e in def.events.iter_mut().filter(|e| new_events.contains(&e.unique_name)) {
            e.id = s.next_id("event", 40)?;
        }
        def.events.sort_by_key(|e| e.arm_num);
        s.save_def(def)?;
        s.delete_event_data(pid, &gone)?;
        s.log(pid, &user, "manage", "Manage/Design", &format!("Import events (API): {n}"), "", dag)
    })?;
    count(n)
}

/// Delete Events (Development only): the events and the data in them.
pub fn delete_events(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    need_longitudinal(ctx, "delete events")?;
    ctx.need_development("Deleting events")?;
    let list = ctx.params.list("events").ok_or_else(|| bad("The parameter \"events\" is missing"))?;
    let unknown: Vec<String> = list.iter().filter(|e| ctx.project.event(e).is_none()).cloned().collect();
    if !unknown.is_empty() {
        return Err(invalid("events", &unknown));
    }
    let mut def = ctx.project.def.clone();
    let gone: HashSet<String> = list.iter().cloned().collect();
    drop_events(&mut def, &gone);
    let gone: Vec<String> = gone.into_iter().collect();
    let n = gone.len();
    commit(ctx, def, &format!("Delete events (API): {}", list.join(", ")), |s, pid| s.delete_event_data(pid, &gone))?;
    count(n)
}

/// Import Instrument-Event Mappings: replaces every mapping (PyCap integration). Production use
/// depends on a server setting that is off by default, so the emulator allows it in Development
/// only (UNVERIFIED, reference §8 #13). Repeating instruments no longer designated are dropped.
pub fn import_form_events(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    need_longitudinal(ctx, "import form/event mappings")?;
    ctx.need_development("Importing instrument-event mappings")?;
    let rows = ctx.data_rows()?;
    let p = ctx.project.clone();
    let mut pairs: HashSet<(String, String)> = HashSet::new();
    let mut errors = Vec::new();
    for row in &rows {
        let (ev, form, arm) = (value(row, "unique_event_name"), value(row, "form"), value(row, "arm_num"));
        match p.event(ev) {
            None => errors.push(format!("The unique_event_name \"{ev}\" is not valid")),
            Some(e) if !arm.is_empty() && arm != e.arm_num.to_string() => {
                errors.push(format!("The event \"{ev}\" is not in arm \"{arm}\""))
            }
            Some(_) if !p.has_form(form) => errors.push(format!("The form \"{form}\" is not valid")),
            Some(_) => {
                pairs.insert((ev.to_owned(), form.to_owned()));
            }
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let mut def = p.def.clone();
    def.form_events = Vec::new();
    for e in &p.def.events {
        for f in &p.def.forms {
            if pairs.contains(&(e.unique_name.clone(), f.name.clone())) {
                def.form_events.push((e.unique_name.clone(), f.name.clone()));
            }
        }
    }
    def.repeating.retain(|r| r.form.as_ref().is_none_or(|f| pairs.contains(&(r.event.clone(), f.clone()))));
    let n = rows.len();
    commit(ctx, def, &format!("Import instrument-event mappings (API): {n}"), |_, _| Ok(()))?;
    count(n)
}

/// Import Repeating Instruments and Events: the rows describe the whole setup, which they replace
/// (replace vs merge is UNVERIFIED, reference §8 #28). Data follows the change: a form that starts
/// repeating keeps its values as instance 1; one that stops keeps instance 1 and loses the others;
/// an event that stops repeating loses its instances above 1.
pub fn import_repeating(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    let rows = ctx.data_rows()?;
    let p = ctx.project.clone();
    let first_event = p.def.events.first().map(|e| e.unique_name.clone()).unwrap_or_default();
    let mut setup: Vec<Repeating> = Vec::new();
    let mut errors = Vec::new();
    for row in &rows {
        let event = if p.def.longitudinal { value(row, "event_name").to_owned() } else { first_event.clone() };
        let form = value(row, "form_name");
        // KB RC-API-53 names the label `custom_repeat_instrument_label`; the help and PyCap use
        // `custom_form_label`. Both are read.
        let label = input::get(row, "custom_form_label").or_else(|| input::get(row, "custom_repeat_instrument_label"));
        if p.event(&event).is_none() {
            errors.push(format!("The event_name \"{event}\" is not a unique event name of this project"));
            continue;
        }
        if form.is_empty() && !p.def.longitudinal {
            errors.push("A classic project has no repeating events: every row needs a form_name".to_owned());
            continue;
        }
        if !form.is_empty() && !p.form_in_event(&event, form) {
            errors.push(format!("The form \"{form}\" is not an instrument designated for the event \"{event}\""));
            continue;
        }
        let form = (!form.is_empty()).then(|| form.to_owned());
        if setup.iter().any(|r| r.event == event && r.form == form) {
            errors.push(format!("The event \"{event}\" / form \"{}\" is listed twice", form.unwrap_or_default()));
            continue;
        }
        setup.push(Repeating { event, form, label: label.unwrap_or("").to_owned() });
    }
    for r in setup.iter().filter(|r| r.form.is_none()) {
        if setup.iter().any(|x| x.event == r.event && x.form.is_some()) {
            errors.push(format!(
                "The event \"{}\" cannot both repeat as a whole and have repeating instruments",
                r.event
            ));
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let old: HashSet<(String, Option<String>)> =
        p.def.repeating.iter().map(|r| (r.event.clone(), r.form.clone())).collect();
    let new: HashSet<(String, Option<String>)> = setup.iter().map(|r| (r.event.clone(), r.form.clone())).collect();
    let form_names = |form: &str| -> Vec<String> {
        let mut v: Vec<String> = p.form_fields(form).map(|f| f.name.clone()).collect();
        v.extend([format!("{form}_complete"), format!("{form}_timestamp")]);
        v
    };
    // (event, form or None, starts repeating?)
    let mut moves: Vec<(String, Option<String>, bool)> = Vec::new();
    for (e, f) in new.difference(&old) {
        moves.push((e.clone(), f.clone(), true));
    }
    for (e, f) in old.difference(&new) {
        moves.push((e.clone(), f.clone(), false));
    }
    let mut def = p.def.clone();
    def.repeating = setup;
    let n = rows.len();
    commit(ctx, def, &format!("Import repeating instruments and events (API): {n}"), |s, pid| {
        for (event, form, starts) in &moves {
            match (form, starts) {
                (Some(form), true) => {
                    for field in form_names(form) {
                        // The record files move with their cells.
                        for table in ["data", "record_files"] {
                            s.conn.execute(
                                &format!(
                                    "UPDATE {table} SET instrument = ?4 WHERE project_id = ?1 AND event = ?2
                                     AND field = ?3 AND instrument = '' AND instance = 1"
                                ),
                                rusqlite::params![pid, event, field, form],
                            )?;
                        }
                    }
                }
                (Some(form), false) => {
                    s.conn.execute(
                        "DELETE FROM data WHERE project_id = ?1 AND event = ?2 AND instrument = ?3 AND instance > 1",
                        rusqlite::params![pid, event, form],
                    )?;
                    for table in ["data", "record_files"] {
                        s.conn.execute(
                            &format!(
                                "UPDATE {table} SET instrument = '' WHERE project_id = ?1 AND event = ?2
                                 AND instrument = ?3 AND instance = 1"
                            ),
                            rusqlite::params![pid, event, form],
                        )?;
                    }
                }
                (None, false) => {
                    s.conn.execute(
                        "DELETE FROM data WHERE project_id = ?1 AND event = ?2 AND instrument = '' AND instance > 1",
                        rusqlite::params![pid, event],
                    )?;
                }
                (None, true) => {}
            }
        }
        Ok(())
    })?;
    count(n)
}

// ------------------------------------------------------------------------------- project settings

/// Import Project Info (`content=project_settings`): one object of the documented updatable
/// attributes; answers how many of them were received, unchanged ones included (API help:
/// imp_proj_sett). Other keys are ignored and not counted (UNVERIFIED). Turning
/// `is_longitudinal` off is refused while the project has more than one event (UNVERIFIED).
pub fn import_settings(ctx: &mut Ctx) -> HResult {
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
