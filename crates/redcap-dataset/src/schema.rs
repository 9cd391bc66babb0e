//! The project schema: everything that decides the shape of a project's data, as REDCap answered
//! it, with a stable content hash; and the one adapter that reads it into the model the layout
//! is built from.

use std::collections::{BTreeSet, HashMap, HashSet};

use redcap_api::Choice;
use redcap_api::dictionary::parse_choices;
use redcap_api::rows::{Field, FieldType};
use redcap_core::Row;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Error;

/// What decides the shape of a project's data, gathered by one call of the client
/// (`redcap::dataset`): the answers of Export Metadata, Export List of Export Field Names, Export
/// Instruments, Export Project Info, Export Events, Export Arms, Export Instrument-Event Mappings,
/// Export Repeating Instruments and Events, Export DAGs and Export Version, as rows. Parts a
/// project does not have (events of a classic project, DAGs the token may not see) are empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProjectSchema {
    /// REDCap's version (Export Version).
    pub redcap_version: String,
    /// Export Project Info (one row).
    pub project_info: Row,
    /// The data dictionary.
    pub metadata: Vec<Field>,
    /// Export field names: checkbox options as `<field>___<code>`.
    pub export_field_names: Vec<Row>,
    /// Instruments, in project order.
    pub instruments: Vec<Row>,
    /// Events (longitudinal projects).
    pub events: Vec<Row>,
    /// Arms (longitudinal projects).
    pub arms: Vec<Row>,
    /// Instrument-event mappings (longitudinal projects).
    pub mappings: Vec<Row>,
    /// Repeating instruments and events.
    pub repeating: Vec<Row>,
    /// Data Access Groups.
    pub dags: Vec<Row>,
}

impl ProjectSchema {
    /// A stable SHA-256 (hex) of what decides the dataset's shape: the dictionary, export field
    /// names, instruments, events, arms, mappings, repeating setup, DAGs, missing-data codes and
    /// whether the project is longitudinal. Project settings that do not change the data (title,
    /// production status) and the REDCap version are not part of it.
    pub fn hash(&self) -> String {
        let mut content = self.shared();
        content.insert("metadata".into(), serde_json::json!(self.metadata));
        content.insert("export_field_names".into(), serde_json::json!(self.export_field_names));
        content.insert("instruments".into(), serde_json::json!(self.instruments));
        sha256_hex(&Value::Object(content))
    }

    /// A stable SHA-256 (hex) of what decides the table of instrument `form`: what all tables
    /// share (events, arms, mappings, repeating setup, DAGs, missing-data codes, whether the
    /// project is longitudinal, the record-id field's dictionary row), the instrument's own
    /// dictionary rows and instrument row, and `table`, the table's Arrow schema rendered. A table
    /// whose fingerprint did not change casts the same records the same way, so a sync after a
    /// dictionary change rebuilds only the tables whose fingerprint changed.
    pub fn table_fingerprint(&self, form: &str, table: &str) -> String {
        let own: Vec<&Field> = self.metadata.iter().filter(|f| f.form_name == form).collect();
        let instrument: Vec<&Row> =
            self.instruments.iter().filter(|r| r.get("instrument_name").map(text).as_deref() == Some(form)).collect();
        let mut shared = self.shared();
        shared.insert("record_id".into(), serde_json::json!(self.metadata.first()));
        sha256_hex(&serde_json::json!({
            "shared": shared,
            "fields": own,
            "instrument": instrument,
            "table": table,
        }))
    }

    /// What every table depends on, beside the dictionary.
    fn shared(&self) -> serde_json::Map<String, Value> {
        let info = |k: &str| self.project_info.get(k).cloned().unwrap_or(Value::Null);
        let content = serde_json::json!({
            "events": self.events,
            "arms": self.arms,
            "mappings": self.mappings,
            "repeating": self.repeating,
            "dags": self.dags,
            "missing_data_codes": text(&info("missing_data_codes")),
            "is_longitudinal": text(&info("is_longitudinal")),
        });
        match content {
            Value::Object(m) => m,
            _ => unreachable!("a JSON object literal"),
        }
    }

    /// The project id (from project info).
    pub fn project_id(&self) -> Option<String> {
        self.project_info.get("project_id").map(text).filter(|s| !s.is_empty())
    }
}

/// JSON with object keys sorted and numbers and strings as REDCap sent them: a JSON answer's
/// `1` and a CSV answer's `"1"` differ, so values are compared as text.
fn sha256_hex(content: &Value) -> String {
    let mut h = Sha256::new();
    h.update(canonical(content).as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[k.as_str()]))).collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => Value::String(text(other)).to_string(),
    }
}

/// A cell as text (REDCap sends numbers in some JSON answers and strings in CSV).
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        other => other.to_string(),
    }
}

fn cell(row: &Row, key: &str) -> String {
    row.get(key).map(text).unwrap_or_default()
}

/// One field of the dictionary, as the layout needs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldDef {
    pub name: String,
    pub form: String,
    pub field_type: String,
    pub kind: crate::FieldKind,
    pub checkbox: bool,
    pub validation: String,
    pub label: String,
    pub choices: Vec<Choice>,
    pub identifier: bool,
    pub min: String,
    pub max: String,
    /// `@NOMISSING`: the field takes no missing-data codes.
    pub no_missing: bool,
}

/// The project as the layout needs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Model {
    pub id_field: String,
    pub longitudinal: bool,
    pub fields: Vec<FieldDef>,
    /// (name, label), in project order.
    pub instruments: Vec<(String, String)>,
    /// Unique event names, in project order.
    pub events: Vec<String>,
    /// Event → forms designated for it (longitudinal). By event, so that a lookup (one per
    /// row and table in a cast) borrows its keys instead of building an owned pair.
    pub designated: HashMap<String, BTreeSet<String>>,
    /// Event → its repeating instruments; the event is "" in classic projects.
    pub repeating_forms: HashMap<String, BTreeSet<String>>,
    /// Repeating events.
    pub repeating_events: BTreeSet<String>,
    /// The project's missing-data codes (code, label).
    pub missing_codes: Vec<Choice>,
    /// (field, code) → export column of checkbox options.
    pub checkbox_columns: HashMap<(String, String), String>,
    /// field → its export columns and choice values, in order.
    pub export_names: HashMap<String, Vec<(String, String)>>,
    pub has_dags: bool,
}

/// REDCap's export name of a checkbox option when the export field names do not list it: the
/// code lower-cased, characters other than letters, digits and `_` replaced by `_`
/// (REDCapTidieR#32: `-1` → `field____1`).
pub(crate) fn checkbox_column(field: &str, code: &str) -> String {
    let code: String = code
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    format!("{field}___{code}")
}

impl Model {
    /// The adapter: the schema's raw rows → the model. The one place that reads the
    /// dictionary's columns by name.
    pub fn from_schema(schema: &ProjectSchema) -> Result<Model, Error> {
        let fields: Vec<FieldDef> = schema
            .metadata
            .iter()
            .map(|f| FieldDef {
                name: f.field_name.clone(),
                form: f.form_name.clone(),
                field_type: f.field_type.as_str().to_owned(),
                kind: crate::FieldKind::of(f),
                validation: f.validation().map(|v| v.to_string()).unwrap_or_default(),
                label: f.field_label.clone(),
                choices: f.choices(),
                identifier: f.identifier,
                min: f.text_validation_min.clone().unwrap_or_default(),
                max: f.text_validation_max.clone().unwrap_or_default(),
                no_missing: f
                    .field_annotation
                    .as_deref()
                    .is_some_and(|a| a.to_ascii_uppercase().contains("@NOMISSING")),
                checkbox: f.field_type == FieldType::Checkbox,
            })
            .collect();
        let id_field = fields.first().map(|f| f.name.clone()).filter(|n| !n.is_empty()).ok_or(Error::NoIdField)?;
        let mut instruments: Vec<(String, String)> = schema
            .instruments
            .iter()
            .map(|r| (cell(r, "instrument_name"), cell(r, "instrument_label")))
            .filter(|(n, _)| !n.is_empty())
            .collect();
        // An instrument listed twice is one instrument (one table, one file): its first place.
        let mut seen = HashSet::new();
        instruments.retain(|(n, _)| seen.insert(n.clone()));
        for f in &fields {
            if !instruments.iter().any(|(n, _)| n == &f.form) {
                instruments.push((f.form.clone(), f.form.clone()));
            }
        }
        let info = |k: &str| cell(&schema.project_info, k);
        let longitudinal = info("is_longitudinal") == "1" || !schema.mappings.is_empty();
        let events: Vec<String> =
            schema.events.iter().map(|r| cell(r, "unique_event_name")).filter(|e| !e.is_empty()).collect();
        let mut designated: HashMap<String, BTreeSet<String>> = HashMap::new();
        for r in &schema.mappings {
            designated.entry(cell(r, "unique_event_name")).or_default().insert(cell(r, "form"));
        }
        let mut repeating_forms: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut repeating_events = BTreeSet::new();
        for r in &schema.repeating {
            let event = cell(r, "event_name");
            let form = cell(r, "form_name");
            if form.is_empty() {
                repeating_events.insert(event);
            } else {
                repeating_forms.entry(event).or_default().insert(form);
            }
        }
        let mut checkbox_columns = HashMap::new();
        let mut export_names: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in &schema.export_field_names {
            let field = cell(r, "original_field_name");
            let code = cell(r, "choice_value");
            let name = cell(r, "export_field_name");
            checkbox_columns.insert((field.clone(), code.clone()), name.clone());
            export_names.entry(field).or_default().push((name, code));
        }
        Ok(Model {
            id_field,
            longitudinal,
            fields,
            instruments,
            events,
            designated,
            repeating_forms,
            repeating_events,
            missing_codes: parse_choices(&info("missing_data_codes")),
            checkbox_columns,
            export_names,
            has_dags: !schema.dags.is_empty(),
        })
    }

    /// Whether `form` repeats in some event (as a repeating instrument or inside a repeating
    /// event).
    pub fn form_repeats(&self, form: &str) -> bool {
        self.repeating_forms.values().any(|forms| forms.contains(form))
            || self.repeating_events.iter().any(|e| !self.longitudinal || self.is_designated(e, form))
    }

    /// Whether `form` is a repeating instrument in `event` ("" in classic projects).
    pub fn is_repeating_form(&self, event: &str, form: &str) -> bool {
        let event = if self.longitudinal { event } else { "" };
        self.repeating_forms.get(event).is_some_and(|forms| forms.contains(form))
    }

    /// Whether `form` is part of `event` (always in classic projects).
    pub fn is_designated(&self, event: &str, form: &str) -> bool {
        !self.longitudinal || self.designated.get(event).is_some_and(|forms| forms.contains(form))
    }

    /// The export column of a checkbox option.
    pub fn checkbox_export(&self, field: &str, code: &str) -> String {
        self.checkbox_columns
            .get(&(field.to_owned(), code.to_owned()))
            .cloned()
            .unwrap_or_else(|| checkbox_column(field, code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(json: &str) -> Vec<Row> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn checkbox_names_follow_redcap() {
        assert_eq!(checkbox_column("race", "-1"), "race____1");
        assert_eq!(checkbox_column("race", "AB"), "race___ab");
    }

    #[test]
    fn the_hash_is_stable_and_sees_what_matters() {
        let mut a = ProjectSchema {
            metadata: serde_json::from_str(
                r#"[{"field_name":"record_id","form_name":"f","field_type":"text","field_label":"Id"}]"#,
            )
            .unwrap(),
            ..Default::default()
        };
        let h = a.hash();
        assert_eq!(h.len(), 64);
        let mut b = a.clone();
        b.redcap_version = "15.0.0".into();
        b.project_info.insert("project_title".into(), "Renamed".into());
        assert_eq!(b.hash(), h, "title and version do not change the shape");
        // A JSON number and a CSV string of the same value hash alike.
        b.export_field_names = rows(r#"[{"x":1}]"#);
        a.export_field_names = rows(r#"[{"x":"1"}]"#);
        assert_eq!(a.hash(), b.hash());
        b.project_info.insert("missing_data_codes".into(), "UNK, Unknown".into());
        assert_ne!(a.hash(), b.hash(), "missing-data codes change the shape");
    }
}
