//! The data dictionary (spec/metadata.toml): Export and Import Metadata, Export Field Names.

use std::collections::HashSet;

use super::{Ctx, HResult, bad, commit, count, invalid};
use crate::input::InRow;
use crate::model::{Field, Form, checkbox_column, parse_choices};
use crate::odm::render_choices;
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

/// Export Metadata: 18 columns, empty values as "".
pub fn export(ctx: &mut Ctx) -> HResult {
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
pub fn export_field_names(ctx: &mut Ctx) -> HResult {
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
pub fn import(ctx: &mut Ctx) -> HResult {
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
    def.survey_settings.queue.retain(|(_, f)| has(f));
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
        let mut deleted = false;
        for f in stored.iter().filter(|f| !keep.contains(*f)) {
            s.conn.execute("DELETE FROM data WHERE project_id = ?1 AND field = ?2", rusqlite::params![pid, f])?;
            deleted = true;
        }
        if deleted {
            // A row whose values were all of deleted fields is gone.
            s.count_rows(pid, crate::store::RowScope::Project)?;
        }
        Ok(())
    })?;
    count(n)
}
