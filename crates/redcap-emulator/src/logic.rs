//! Filter logic (`filterLogic`, report `advanced_logic`) through `redcap-logic`.

use redcap_logic::{Context, FieldRef, Logic};

use crate::model::Project;
use crate::records::{Dataset, RowData};

/// A compiled filter, checked against the project's fields and events.
#[derive(Debug)]
pub struct Filter {
    logic: Logic,
}

/// Parses `text` (empty: no filter). `[event-name]` (the smart variable for "this event") is
/// dropped before parsing, so `[event-name][f]` reads as `[f]`. The error is REDCap's message
/// (the caller answers it as a 400).
pub fn compile(project: &Project, text: &str) -> Result<Option<Filter>, String> {
    let text = text.replace("[event-name]", "");
    if text.trim().is_empty() {
        return Ok(None);
    }
    let logic = redcap_logic::parse(&text).map_err(|e| format!("The filter logic is not valid: {e}"))?;
    for f in logic.fields() {
        let known = f.field == project.def.record_id_field
            || project.field(&f.field).is_some()
            || project.complete_form(&f.field).is_some();
        if !known {
            return Err(format!(
                "The filter logic is not valid: the field \"{}\" does not exist in this project",
                f.field
            ));
        }
        if let Some(ev) = &f.event {
            if project.event(ev).is_none() {
                return Err(format!(
                    "The filter logic is not valid: the event \"{ev}\" does not exist in this project"
                ));
            }
        }
    }
    Ok(Some(Filter { logic }))
}

impl Filter {
    /// Whether `row` passes. Evaluation errors count as "does not pass" (REDCap's PHP evaluation
    /// yields false rather than failing the export).
    pub fn matches(&self, project: &Project, data: &Dataset, row: &RowData) -> bool {
        let ctx = RowContext { project, data, row };
        self.logic.is_true(&ctx).unwrap_or(false)
    }
}

struct RowContext<'a> {
    project: &'a Project,
    data: &'a Dataset,
    row: &'a RowData,
}

impl Context for RowContext<'_> {
    fn value(&self, f: &FieldRef) -> Option<String> {
        let key = &self.row.key;
        if f.field == self.project.def.record_id_field && f.checkbox_code.is_none() {
            return Some(key.record.clone());
        }
        let event = f.event.clone().unwrap_or_else(|| key.event.clone());
        let form = self.project.form_of(&f.field)?.to_owned();
        // The instance: this row's when the reference points at the row's own instrument or
        // repeating event, else the first one.
        let (instrument, instance) = if self.project.is_repeating_form(&event, &form) {
            if key.instrument == form && key.event == event { (form.clone(), key.instance) } else { (form.clone(), 1) }
        } else if self.project.is_repeating_event(&event) {
            (String::new(), if key.event == event { key.instance } else { 1 })
        } else {
            (String::new(), 1)
        };
        let values = self.data.values_at(&key.record, &event, &instrument, instance, &f.field);
        match &f.checkbox_code {
            Some(code) => Some(if values.iter().any(|v| v == code) { "1" } else { "0" }.to_owned()),
            None => values.first().cloned(),
        }
    }

    fn missing_codes(&self) -> &[String] {
        &self.data.missing_codes
    }
}
