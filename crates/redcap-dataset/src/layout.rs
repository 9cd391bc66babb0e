//! The dataset's layout: one table per instrument, its key columns, and one or more columns per
//! field, each with its Arrow type and metadata. Decided once from the project schema, so every
//! batch of records casts into the same schemas.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::kind::{FieldKind, dictionary_type};
use redcap_api::Choice;

use crate::schema::{FieldDef, Model, ProjectSchema};
use crate::{Error, names};

/// What to include in the dataset.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct LayoutOptions {
    /// Only these instruments (empty: all).
    pub forms: Vec<String>,
    /// Only rows of these events (empty: all; longitudinal projects).
    pub events: Vec<String>,
    /// Add a label column beside each radio/dropdown code column.
    pub labels: bool,
}

impl LayoutOptions {
    /// Only these instruments.
    pub fn forms(mut self, forms: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.forms = forms.into_iter().map(Into::into).collect();
        self
    }

    /// Only these events.
    pub fn events(mut self, events: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.events = events.into_iter().map(Into::into).collect();
        self
    }

    /// Label columns on or off.
    pub fn labels(mut self, on: bool) -> Self {
        self.labels = on;
        self
    }
}

/// A key column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Record,
    Event,
    Instance,
    Dag,
}

/// How one column is filled from a raw row.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    Key(Key),
    /// The typed value of `export` (a field's export column).
    Value {
        export: String,
        kind: FieldKind,
        codes: Option<Arc<Codes>>,
        takes_missing: bool,
        /// The form's status (`0` counts as no data).
        status: bool,
    },
    /// The label of a choice field's code.
    Label {
        export: String,
        codes: Arc<Codes>,
        labels: Arc<arrow_array::StringArray>,
    },
    /// One checkbox option: `1`/`0`.
    Checkbox {
        export: String,
    },
    /// The missing-data code held by `exports` (a field's column, or a checkbox's missing-code
    /// columns as (export, code)).
    Missing {
        exports: Vec<(String, Option<String>)>,
    },
}

/// The codes of a dictionary-encoded column: their order, and each code's index.
#[derive(Debug)]
pub(crate) struct Codes {
    pub values: Arc<arrow_array::StringArray>,
    /// Every code's key, for a long list only (a short one is scanned).
    index: Option<HashMap<String, i32>>,
    /// A short list whose codes are all of at most 7 bytes (REDCap's are mostly one or two
    /// digits): each code packed into a word ([`packed`]), so a scan compares words instead
    /// of calling `memcmp` for every code of every cell.
    words: Option<Vec<u64>>,
}

/// `code`'s bytes and length in one word, when it has at most 7 bytes (two codes are equal
/// exactly when their words are).
fn packed(code: &str) -> Option<u64> {
    let b = code.as_bytes();
    (b.len() <= 7).then(|| b.iter().rev().fold(b.len() as u64, |w, &c| (w << 8) | u64::from(c)))
}

/// Codes up to this many are found by comparing, not hashing: a REDCap choice list is usually
/// a handful of short codes, and a pull looks one up for every cell of a choice column.
const SCANNED: usize = 16;

impl Codes {
    fn new(codes: impl IntoIterator<Item = String>) -> Codes {
        let codes: Vec<String> = codes.into_iter().collect();
        let index =
            (codes.len() > SCANNED).then(|| codes.iter().enumerate().map(|(i, c)| (c.clone(), i as i32)).collect());
        let words = if index.is_none() { codes.iter().map(|c| packed(c)).collect() } else { None };
        Codes { values: Arc::new(arrow_array::StringArray::from(codes)), index, words }
    }

    /// The dictionary key of `code` (a code listed twice: its last place, as in the index).
    pub fn key(&self, code: &str) -> Option<i32> {
        use arrow_array::Array;
        match (&self.index, &self.words) {
            (Some(index), _) => index.get(code).copied(),
            // (A code of more than 7 bytes is none of these.)
            (None, Some(words)) => packed(code).and_then(|w| words.iter().rposition(|&x| x == w)).map(|i| i as i32),
            (None, None) => (0..self.values.len()).rev().find(|&i| self.values.value(i) == code).map(|i| i as i32),
        }
    }
}

/// One table of the dataset: an instrument's rows.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TableLayout {
    /// The table's name: the instrument's unique name.
    pub name: String,
    /// Its Arrow schema.
    pub schema: SchemaRef,
    pub(crate) sources: Vec<Source>,
    /// The instrument holds the record-id field (every exported row of it is kept).
    pub(crate) holds_id: bool,
    /// What decides the table ([`ProjectSchema::table_fingerprint`]): a sync rebuilds the tables
    /// whose fingerprint changed and updates the others in place.
    pub fingerprint: String,
}

/// The dataset's tables.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DatasetLayout {
    /// One per instrument, in project order.
    pub tables: Vec<TableLayout>,
    /// The project's record-id field.
    pub id_field: String,
    /// The schema's hash.
    pub schema_hash: String,
    pub(crate) model: Arc<Model>,
    pub(crate) events: Option<BTreeSet<String>>,
    pub(crate) missing: Option<Arc<Codes>>,
}

/// A table's schema as text, metadata in a stable order, without the schema hash every table
/// carries (it changes with any table's dictionary).
fn render_for_fingerprint(schema: &Schema) -> String {
    let sorted = |m: &HashMap<String, String>| {
        let mut v: Vec<(&String, &String)> = m.iter().filter(|(k, _)| *k != "redcap.schema_hash").collect();
        v.sort();
        format!("{v:?}")
    };
    let mut out = sorted(schema.metadata());
    for f in schema.fields() {
        out.push_str(&format!("\n{} {:?} {} {}", f.name(), f.data_type(), f.is_nullable(), sorted(f.metadata())));
    }
    out
}

fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn field_meta(f: &FieldDef, role: &str) -> HashMap<String, String> {
    let mut m = meta(&[
        ("redcap.role", role),
        ("redcap.field", &f.name),
        ("redcap.form", &f.form),
        ("redcap.field_type", &f.field_type),
        ("redcap.validation", &f.validation),
        ("redcap.validation_min", &f.min),
        ("redcap.validation_max", &f.max),
        ("redcap.label", &f.label),
    ]);
    if f.identifier {
        m.insert("redcap.identifier".into(), "y".into());
    }
    if let FieldKind::Number { decimals: Some(n), .. } = f.kind {
        m.insert("redcap.decimals".into(), n.to_string());
    }
    if !f.choices.is_empty() && !f.checkbox {
        m.insert("redcap.choices".into(), choices_json(&f.choices));
    }
    m
}

fn choices_json(choices: &[Choice]) -> String {
    let list: Vec<serde_json::Value> =
        choices.iter().map(|c| serde_json::json!({"code": c.code, "label": c.label})).collect();
    serde_json::Value::Array(list).to_string()
}

/// Names in use in one table; a sibling column whose name is taken gets one more `_` before its
/// suffix until it is free (REDCap names are `[a-z0-9_]`, so only a checkbox option coded like
/// the suffix could take it).
struct Taken(BTreeSet<String>);

impl Taken {
    fn claim(&mut self, base: &str, suffix: &str) -> String {
        let mut sep = names::SEPARATOR.to_owned();
        loop {
            let name = format!("{base}{sep}{suffix}");
            if self.0.insert(name.clone()) {
                return name;
            }
            sep.push('_');
        }
    }
}

impl DatasetLayout {
    /// The layout of `schema` with `options`.
    pub fn new(schema: &ProjectSchema, options: &LayoutOptions) -> Result<DatasetLayout, Error> {
        let model = Model::from_schema(schema)?;
        for form in &options.forms {
            if !model.instruments.iter().any(|(n, _)| n == form) {
                return Err(Error::UnknownInstrument(form.clone()));
            }
        }
        if model.longitudinal {
            for event in &options.events {
                if !model.events.is_empty() && !model.events.contains(event) {
                    return Err(Error::UnknownEvent(event.clone()));
                }
            }
        }
        let missing = (!model.missing_codes.is_empty())
            .then(|| Arc::new(Codes::new(model.missing_codes.iter().map(|c| c.code.clone()))));
        let mut tables = Vec::new();
        for (form, form_label) in &model.instruments {
            if !options.forms.is_empty() && !options.forms.contains(form) {
                continue;
            }
            let repeats = model.form_repeats(form);
            let id = model.fields.iter().position(|f| f.name == model.id_field);
            let holds_id = id.is_some_and(|i| &model.fields[i].form == form);
            let mut fields = Vec::new();
            let mut sources = Vec::new();
            let id_meta = match id {
                Some(i) => field_meta(&model.fields[i], "key"),
                None => meta(&[("redcap.role", "key")]),
            };
            fields.push(Field::new(&model.id_field, DataType::Utf8, false).with_metadata(id_meta));
            sources.push(Source::Key(Key::Record));
            if model.longitudinal {
                fields.push(key_field(names::EVENT, false));
                sources.push(Source::Key(Key::Event));
            }
            if repeats {
                fields.push(
                    Field::new(names::INSTANCE, DataType::Int64, true).with_metadata(meta(&[("redcap.role", "key")])),
                );
                sources.push(Source::Key(Key::Instance));
            }
            if model.has_dags {
                fields.push(key_field(names::DAG, true));
                sources.push(Source::Key(Key::Dag));
            }
            let mut taken = Taken(fields.iter().map(|f| f.name().clone()).collect());
            // Every export column of the form first, so a sibling never takes a real name.
            for f in model.fields.iter().filter(|f| &f.form == form) {
                if f.checkbox {
                    for c in &f.choices {
                        taken.0.insert(model.checkbox_export(&f.name, &c.code));
                    }
                } else {
                    taken.0.insert(f.name.clone());
                }
            }
            for (i, f) in model.fields.iter().enumerate() {
                if &f.form != form || Some(i) == id {
                    continue;
                }
                let kind = f.kind;
                let takes_missing = missing.is_some() && !f.no_missing;
                match kind {
                    FieldKind::Descriptive => continue,
                    FieldKind::Checkbox => {
                        let own: BTreeSet<&str> = f.choices.iter().map(|c| c.code.as_str()).collect();
                        for c in &f.choices {
                            let export = model.checkbox_export(&f.name, &c.code);
                            let mut m = field_meta(f, "checkbox");
                            m.insert("redcap.choice_code".into(), c.code.clone());
                            m.insert("redcap.choice_label".into(), c.label.clone());
                            fields.push(Field::new(&export, DataType::Boolean, true).with_metadata(m));
                            sources.push(Source::Checkbox { export });
                        }
                        if takes_missing {
                            // REDCap lists a checkbox's missing-data codes as extra options.
                            let exports: Vec<(String, Option<String>)> = model
                                .missing_codes
                                .iter()
                                .filter(|c| !own.contains(c.code.as_str()))
                                .map(|c| (model.checkbox_export(&f.name, &c.code), Some(c.code.clone())))
                                .collect();
                            let name = taken.claim(&f.name, names::MISSING_SUFFIX);
                            fields.push(
                                Field::new(name, dictionary_type(), true).with_metadata(field_meta(f, "missing_code")),
                            );
                            sources.push(Source::Missing { exports });
                        }
                    }
                    _ => {
                        let codes = (kind == FieldKind::Choice)
                            .then(|| Arc::new(Codes::new(f.choices.iter().map(|c| c.code.clone()))));
                        let dt = kind.data_type().expect("non-descriptive kinds have a type");
                        fields.push(Field::new(&f.name, dt, true).with_metadata(field_meta(f, "value")));
                        sources.push(Source::Value {
                            export: f.name.clone(),
                            kind,
                            codes: codes.clone(),
                            takes_missing,
                            status: false,
                        });
                        if let (true, Some(codes)) = (options.labels, codes) {
                            let labels = Arc::new(arrow_array::StringArray::from(
                                f.choices.iter().map(|c| c.label.clone()).collect::<Vec<_>>(),
                            ));
                            let name = taken.claim(&f.name, names::LABEL_SUFFIX);
                            fields
                                .push(Field::new(name, dictionary_type(), true).with_metadata(field_meta(f, "label")));
                            sources.push(Source::Label { export: f.name.clone(), codes, labels });
                        }
                        if takes_missing {
                            let name = taken.claim(&f.name, names::MISSING_SUFFIX);
                            fields.push(
                                Field::new(name, dictionary_type(), true).with_metadata(field_meta(f, "missing_code")),
                            );
                            sources.push(Source::Missing { exports: vec![(f.name.clone(), None)] });
                        }
                    }
                }
            }
            // The form's status, as REDCap exports it.
            let complete = format!("{form}_complete");
            let status = FieldDef {
                name: complete.clone(),
                form: form.clone(),
                field_type: "radio".into(),
                kind: FieldKind::Choice,
                checkbox: false,
                validation: String::new(),
                label: "Complete?".into(),
                choices: [("0", "Incomplete"), ("1", "Unverified"), ("2", "Complete")]
                    .iter()
                    .map(|(c, l)| Choice::new(*c, *l))
                    .collect(),
                identifier: false,
                min: String::new(),
                max: String::new(),
                no_missing: true,
            };
            let codes = Arc::new(Codes::new(status.choices.iter().map(|c| c.code.clone())));
            fields.push(Field::new(&complete, dictionary_type(), true).with_metadata(field_meta(&status, "status")));
            sources.push(Source::Value {
                export: complete.clone(),
                kind: FieldKind::Choice,
                codes: Some(codes.clone()),
                takes_missing: false,
                status: true,
            });
            if options.labels {
                let labels = Arc::new(arrow_array::StringArray::from(vec!["Incomplete", "Unverified", "Complete"]));
                let name = taken.claim(&complete, names::LABEL_SUFFIX);
                fields.push(Field::new(name, dictionary_type(), true).with_metadata(field_meta(&status, "label")));
                sources.push(Source::Label { export: complete, codes, labels });
            }
            let schema_meta: HashMap<String, String> = meta(&[
                ("redcap.instrument", form),
                ("redcap.instrument_label", form_label),
                ("redcap.repeating", if repeats { "y" } else { "" }),
                ("redcap.schema_hash", &schema.hash()),
            ]);
            let table_schema = Schema::new_with_metadata(fields, schema_meta);
            let fingerprint = schema.table_fingerprint(form, &render_for_fingerprint(&table_schema));
            tables.push(TableLayout {
                name: form.clone(),
                schema: Arc::new(table_schema),
                sources,
                holds_id,
                fingerprint,
            });
        }
        let events = (!options.events.is_empty()).then(|| options.events.iter().cloned().collect());
        Ok(DatasetLayout {
            tables,
            id_field: model.id_field.clone(),
            schema_hash: schema.hash(),
            model: Arc::new(model),
            events,
            missing,
        })
    }

    /// Whether the project has DAGs the token can see (the tables have a DAG column, and the
    /// export asks for it).
    pub fn has_dags(&self) -> bool {
        self.model.has_dags
    }

    /// The table of `name`.
    pub fn table(&self, name: &str) -> Option<&TableLayout> {
        self.tables.iter().find(|t| t.name == name)
    }
}

fn key_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable).with_metadata(meta(&[("redcap.role", "key")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_has_the_same_key_in_a_short_list_and_a_long_one() {
        let short = Codes::new(["1", "-1", "a", "1"].map(String::from));
        assert!(short.index.is_none(), "a short list is scanned");
        let long = Codes::new((0..40).map(|i| i.to_string()).chain(["a".to_owned(), "7".to_owned()]));
        assert!(long.index.is_some(), "a long list is looked up");
        for (codes, code, key) in [(&short, "-1", Some(1)), (&short, "a", Some(2)), (&short, "x", None)] {
            assert_eq!(codes.key(code), key, "{code}");
        }
        // A code listed twice: its last place, whichever way it is found.
        assert_eq!(short.key("1"), Some(3));
        assert_eq!(long.key("7"), Some(41));
        assert_eq!(long.key("39"), Some(39));
        assert_eq!(long.key("a"), Some(40));
        assert_eq!(long.key("40"), None);
        // Codes of up to 7 bytes are compared as words, a list with a longer one as text: the
        // same keys either way, whatever the lengths (a prefix, an empty code, 7 and 8 bytes).
        let words = Codes::new(["", "1", "12", "1234567", "-1", "ab"].map(String::from));
        let texts = Codes::new(["", "1", "12", "1234567", "-1", "ab", "12345678"].map(String::from));
        assert!(words.words.is_some() && texts.words.is_none());
        for code in ["", "1", "12", "123", "1234567", "12345678", "123456789", "-1", "ab", "a", "b", "1\0"] {
            let expected = ["", "1", "12", "1234567", "-1", "ab"].iter().rposition(|c| *c == code).map(|i| i as i32);
            assert_eq!(words.key(code), expected, "{code:?}");
            assert_eq!(texts.key(code), if code == "12345678" { Some(6) } else { expected }, "{code:?}");
        }
    }
}
