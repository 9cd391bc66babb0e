//! A project's definition: settings, metadata, events, DAGs, roles and reports.
//!
//! Stored as one JSON document per project (metadata changes are rare and whole), cached in memory
//! with lookup indexes (see [`Project`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::auth::Rights;

/// Project-level settings, as Export Project Info reports them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ProjectInfo {
    pub title: String,
    pub purpose: i64,
    pub purpose_other: String,
    pub notes: String,
    pub custom_record_label: String,
    pub secondary_unique_field: String,
    pub surveys_enabled: bool,
    pub scheduling_enabled: bool,
    pub record_autonumbering_enabled: bool,
    pub randomization_enabled: bool,
    pub display_today_now_button: bool,
    pub bypass_branching_erase_field_prompt: bool,
    pub missing_data_codes: String,
    pub creation_time: String,
    pub production_time: String,
    pub in_production: bool,
    pub project_language: String,
    pub irb_number: String,
    pub grant_number: String,
    pub pi_firstname: String,
    pub pi_lastname: String,
    pub pi_email: String,
}

/// An instrument.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Form {
    pub name: String,
    pub label: String,
}

/// One field, with the 18 attributes of Export Metadata (field types and validation names as the
/// data dictionary spells them: `notes`, `dropdown`, `number`, `integer`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Field {
    pub name: String,
    pub form: String,
    pub section_header: String,
    pub field_type: String,
    pub label: String,
    /// `select_choices_or_calculations` as exported: `1, Yes | 2, No`, a calculation or slider labels.
    pub choices: String,
    pub note: String,
    pub validation: String,
    pub min: String,
    pub max: String,
    pub identifier: bool,
    pub branching_logic: String,
    pub required: bool,
    pub alignment: String,
    pub question_number: String,
    pub matrix_group: String,
    pub matrix_ranking: bool,
    pub annotation: String,
}

impl Field {
    /// Coded choices of a radio, dropdown, checkbox, yesno or truefalse field.
    pub fn choice_list(&self) -> Vec<(String, String)> {
        match self.field_type.as_str() {
            "yesno" => vec![("1".into(), "Yes".into()), ("0".into(), "No".into())],
            "truefalse" => vec![("1".into(), "True".into()), ("0".into(), "False".into())],
            "radio" | "dropdown" | "checkbox" => parse_choices(&self.choices),
            _ => Vec::new(),
        }
    }

    /// Whether values are stored as codes with labels.
    pub fn has_choices(&self) -> bool {
        matches!(self.field_type.as_str(), "yesno" | "truefalse" | "radio" | "dropdown" | "checkbox")
    }

    /// Whether Export Records writes a column for this field.
    pub fn is_exported(&self) -> bool {
        self.field_type != "descriptive"
    }

    /// Number-like field whose decimal mark `decimalCharacter` may change.
    pub fn is_numeric(&self) -> bool {
        self.field_type == "calc"
            || (self.field_type == "text"
                && (self.validation == "number"
                    || self.validation == "integer"
                    || self.validation.starts_with("number_")))
    }
}

/// Parses `1, Yes | 2, No` (also `1,Yes|2,No`) into (code, label) pairs.
pub fn parse_choices(text: &str) -> Vec<(String, String)> {
    text.split('|')
        .filter_map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            Some(match part.split_once(',') {
                Some((code, label)) => (code.trim().to_owned(), label.trim().to_owned()),
                None => (part.to_owned(), part.to_owned()),
            })
        })
        .collect()
}

/// The column name of one checkbox option: `<field>___<code>`, the code lower-cased with characters
/// other than letters, digits and `_` replaced by `_` (REDCap's export naming for codes like `-1`).
pub fn checkbox_column(field: &str, code: &str) -> String {
    let code: String = code
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    format!("{field}___{code}")
}

/// An arm.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Arm {
    pub num: i64,
    pub name: String,
}

/// An event. Classic projects have one implicit event, `event_1_arm_1`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: i64,
    pub unique_name: String,
    pub name: String,
    pub arm_num: i64,
    pub day_offset: String,
    pub offset_min: String,
    pub offset_max: String,
    pub custom_label: String,
}

/// A repeating instrument (`form` set) or a repeating event (`form` empty).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Repeating {
    pub event: String,
    pub form: Option<String>,
    pub label: String,
}

/// A Data Access Group.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Dag {
    pub id: i64,
    pub name: String,
    pub unique: String,
}

/// A user role.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Role {
    pub id: i64,
    pub unique: String,
    pub label: String,
    pub rights: Rights,
}

/// A report definition (the attributes of `redcap:Reports`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub id: i64,
    pub title: String,
    pub unique_name: String,
    pub fields: Vec<String>,
    /// (field, ascending)
    pub order_by: Vec<(String, bool)>,
    pub advanced_logic: String,
    /// `RECORD` (logic keeps whole records) or `EVENT` (logic keeps record-events).
    pub filter_type: String,
    pub filter_dags: Vec<String>,
    pub filter_events: Vec<String>,
    pub combine_checkbox_values: bool,
    pub output_dags: bool,
    pub output_survey_fields: bool,
    pub remove_line_breaks: bool,
    pub user_access: String,
}

/// Everything about a project except its data.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ProjectDef {
    pub id: i64,
    pub info: ProjectInfo,
    pub record_id_field: String,
    pub longitudinal: bool,
    pub forms: Vec<Form>,
    pub fields: Vec<Field>,
    pub arms: Vec<Arm>,
    pub events: Vec<Event>,
    /// (unique event name, form name), in event then form order.
    pub form_events: Vec<(String, String)>,
    pub repeating: Vec<Repeating>,
    pub dags: Vec<Dag>,
    pub roles: Vec<Role>,
    pub reports: Vec<Report>,
    /// Forms enabled as surveys.
    pub surveys: Vec<String>,
    /// Survey settings besides which forms are surveys (absent in definitions stored before).
    #[serde(default)]
    pub survey_settings: SurveySettings,
}

/// A project's survey settings from its XML (`redcap:SurveyInvitationEmailField`,
/// `redcap:SurveysQueueGroup`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SurveySettings {
    /// The field whose value is a participant's e-mail address (may be empty).
    pub invitation_email_field: String,
    /// Active Survey Queue entries as (unique event name, form); the queue is enabled when any is.
    pub queue: Vec<(String, String)>,
}

impl ProjectDef {
    /// An event's label as REDCap shows it in label exports and the project XML: its name, with
    /// ` (Arm N: name)` only when events are in more than one arm. REDCap's XML of a one-arm
    /// project has `Name="Event 1"`, of a three-arm one `Name="Event 1 (Arm 1: Arm 1)"` (REDCapR's
    /// arm-single-longitudinal and arm-multiple-delete fixtures); PyCap 2.7.0's doctest
    /// `export_records` shows `"Event 1"` while its project also has an arm 2 without events.
    pub fn event_label(&self, e: &Event) -> String {
        let other_arm = self.events.iter().any(|o| o.arm_num != e.arm_num);
        if !other_arm {
            return e.name.clone();
        }
        let arm = self.arms.iter().find(|a| a.num == e.arm_num).map(|a| a.name.as_str()).unwrap_or("");
        format!("{} (Arm {}: {arm})", e.name, e.arm_num)
    }
}

/// A project definition with lookup indexes.
#[derive(Debug)]
pub struct Project {
    pub def: ProjectDef,
    field_pos: HashMap<String, usize>,
}

impl Project {
    /// Indexes `def`.
    pub fn new(def: ProjectDef) -> Self {
        let field_pos = def.fields.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
        Project { def, field_pos }
    }

    /// The project id.
    pub fn id(&self) -> i64 {
        self.def.id
    }

    /// A field by name (not `<form>_complete`).
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.field_pos.get(name).map(|&i| &self.def.fields[i])
    }

    /// The form a field or `<form>_complete` belongs to.
    pub fn form_of(&self, name: &str) -> Option<&str> {
        if let Some(f) = self.field(name) {
            return Some(&f.form);
        }
        self.complete_form(name)
    }

    /// The form a stored name belongs to: fields, `<form>_complete` and `<form>_timestamp`
    /// (the survey identifier belongs to the record-id field's form).
    pub fn owner_form(&self, name: &str) -> Option<&str> {
        if let Some(f) = self.form_of(name) {
            return Some(f);
        }
        if name == "redcap_survey_identifier" {
            return self.form_of(&self.def.record_id_field);
        }
        let form = name.strip_suffix("_timestamp")?;
        self.def.forms.iter().find(|f| f.name == form).map(|f| f.name.as_str())
    }

    /// The form whose status field is `name`.
    pub fn complete_form(&self, name: &str) -> Option<&str> {
        let form = name.strip_suffix("_complete")?;
        self.def.forms.iter().find(|f| f.name == form).map(|f| f.name.as_str())
    }

    /// Fields of one form, in order.
    pub fn form_fields<'a>(&'a self, form: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.def.fields.iter().filter(move |f| f.form == form)
    }

    /// Whether a form exists.
    pub fn has_form(&self, form: &str) -> bool {
        self.def.forms.iter().any(|f| f.name == form)
    }

    /// An event by unique name.
    pub fn event(&self, unique: &str) -> Option<&Event> {
        self.def.events.iter().find(|e| e.unique_name == unique)
    }

    /// Whether `form` is designated for `event`.
    pub fn form_in_event(&self, event: &str, form: &str) -> bool {
        self.def.form_events.iter().any(|(e, f)| e == event && f == form)
    }

    /// Whether the whole event repeats.
    pub fn is_repeating_event(&self, event: &str) -> bool {
        self.def.repeating.iter().any(|r| r.event == event && r.form.is_none())
    }

    /// Whether `form` repeats as an instrument in `event`.
    pub fn is_repeating_form(&self, event: &str, form: &str) -> bool {
        self.def.repeating.iter().any(|r| r.event == event && r.form.as_deref() == Some(form))
    }

    /// Whether anything repeats.
    pub fn has_repeating(&self) -> bool {
        !self.def.repeating.is_empty()
    }

    /// Whether `form` is enabled as a survey (surveys on, form listed).
    pub fn is_survey(&self, form: &str) -> bool {
        self.def.info.surveys_enabled && self.def.surveys.iter().any(|s| s == form)
    }

    /// A DAG by id.
    pub fn dag(&self, id: i64) -> Option<&Dag> {
        self.def.dags.iter().find(|d| d.id == id)
    }

    /// A DAG by unique name.
    pub fn dag_by_unique(&self, unique: &str) -> Option<&Dag> {
        self.def.dags.iter().find(|d| d.unique == unique)
    }

    /// A role by id.
    pub fn role(&self, id: i64) -> Option<&Role> {
        self.def.roles.iter().find(|r| r.id == id)
    }
}

/// REDCap's unique DAG name: lower case, spaces to `_`, other characters outside `[a-z0-9_]`
/// dropped (fixtures: "Test DAG" → `test_dag`, "dag-a" → `daga`). Whether REDCap also truncates
/// long names is UNVERIFIED; the emulator does not.
pub fn unique_dag_name(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('_'),
            c if c.is_ascii_alphanumeric() || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(unique_dag_name("Test DAG"), "test_dag");
        assert_eq!(unique_dag_name("dag-a"), "daga");
        assert_eq!(checkbox_column("race", "-1"), "race____1");
        assert_eq!(parse_choices("1, Option 1|2, Option, 2").len(), 2);
        assert_eq!(parse_choices("1, Option 1|2, Option, 2")[1].1, "Option, 2");
    }
}
