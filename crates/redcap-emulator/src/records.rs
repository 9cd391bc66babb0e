//! The data engine shared by Export Records and Export Reports: a project's values grouped into
//! flat rows (record × event × repeating instrument × instance), column selection, and cell
//! rendering (raw/label, checkbox labels, decimal mark, line breaks).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rusqlite::Connection;
use serde_json::Value;

use crate::auth::{DataExport, FormEntry, Rights};
use crate::model::{Field, Project, checkbox_column};
use crate::store::{self, RowKey, Store, StoreError};

/// One flat row's stored values.
#[derive(Debug)]
pub struct RowData {
    pub key: RowKey,
    /// field → values (several for a checkbox: the checked codes).
    pub values: RowValues,
}

/// One row's values by field, in field-name order (the order the covering index yields them):
/// a lookup is a binary search, and a row costs one vector where a hash map cost a table per
/// row, which a large export builds hundreds of thousands of times.
///
/// Field names are shared (`Arc<str>`): rows of one shape name the same fields, and a name
/// allocated per value was a fifth of a large export's allocations. A field's values are kept
/// inline when there is one (all but checkboxes): a vector of one value was an allocation more
/// per value read.
#[derive(Clone, Debug, Default)]
pub struct RowValues(Vec<(Arc<str>, Values)>);

/// The values of one field of a row.
type Values = smallvec::SmallVec<[String; 1]>;

impl RowValues {
    fn find(&self, field: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(f, _)| f.as_ref().cmp(field))
    }

    /// The values of `field`, if it has any stored.
    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.find(field).ok().map(|i| self.0[i].1.as_slice())
    }

    /// [`RowValues::get`], looking first where `hint` says the field was in a row before (rows
    /// of one shape hold their fields at the same places): one comparison instead of a search.
    pub fn get_hinted(&self, field: &str, hint: &mut usize) -> Option<&[String]> {
        if let Some((f, v)) = self.0.get(*hint) {
            if f.as_ref() == field {
                return Some(v);
            }
        }
        let i = self.find(field).ok()?;
        *hint = i;
        Some(&self.0[i].1)
    }

    /// Whether `field` has a value stored.
    pub fn contains_key(&self, field: &str) -> bool {
        self.find(field).is_ok()
    }

    /// The fields with values, in name order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(f, _)| f.as_ref())
    }

    /// Fields and their values, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(f, v)| (f.as_ref(), v.as_slice()))
    }

    /// Adds one value of `field` (cheapest when fields come in name order), its name taken from
    /// `names` (the names rows before used) when it is there.
    fn push_shared(&mut self, field: &str, value: String, names: &mut Names) {
        match self.0.last_mut() {
            Some((last, values)) if last.as_ref() == field => return values.push(value),
            Some((last, _)) if last.as_ref() > field => {}
            _ => {
                let at = self.0.len();
                return self.0.push((names.name(at, field), smallvec::smallvec![value]));
            }
        }
        match self.find(field) {
            Ok(i) => self.0[i].1.push(value),
            Err(i) => self.0.insert(i, (Arc::from(field), smallvec::smallvec![value])),
        }
    }
}

/// The field names the rows loaded so far used, by their place in the row.
#[derive(Debug, Default)]
struct Names(Vec<Arc<str>>);

impl Names {
    /// The shared name for `field` at place `at` of a row (a new one if the rows before had
    /// another name there).
    fn name(&mut self, at: usize, field: &str) -> Arc<str> {
        match self.0.get(at) {
            Some(n) if n.as_ref() == field => n.clone(),
            _ => {
                let n: Arc<str> = Arc::from(field);
                if at < self.0.len() {
                    self.0[at] = n.clone();
                } else if at == self.0.len() {
                    self.0.push(n.clone());
                }
                n
            }
        }
    }
}

/// All rows of a project, in export order.
#[derive(Debug)]
pub struct Dataset {
    pub rows: Vec<RowData>,
    /// Row key → place in `rows`, built when first asked for (a filter's cross-row look-ups): a
    /// plain export never needs it, and building it hashed every key.
    index: OnceLock<HashMap<RowKey, usize>>,
    /// record → its DAG.
    dags: HashMap<String, Option<i64>>,
    /// The project's missing-data codes.
    pub missing_codes: Vec<String>,
    /// doc_id → file name, for file-upload fields.
    pub doc_names: HashMap<String, String>,
}

/// Natural order of record names: numbers numerically first, then text.
pub fn record_cmp(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Sorts records by [`record_cmp`] of their names, each name parsed once (not twice per
/// comparison: an export of every record sorts the whole project).
pub fn sort_records<T>(items: &mut Vec<(String, T)>) {
    let mut keyed: Vec<(Option<f64>, (String, T))> =
        items.drain(..).map(|item| (item.0.parse::<f64>().ok(), item)).collect();
    keyed.sort_by(|(x, a), (y, b)| match (x, y) {
        (Some(x), Some(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal).then_with(|| a.0.cmp(&b.0)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.0.cmp(&b.0),
    });
    items.extend(keyed.into_iter().map(|(_, item)| item));
}

/// Export order of one record's rows: event, then form (the base row first), then instance.
struct RowOrder<'p> {
    event: HashMap<&'p str, usize>,
    form: HashMap<&'p str, usize>,
}

impl<'p> RowOrder<'p> {
    fn new(project: &'p Project) -> Self {
        RowOrder {
            event: project.def.events.iter().enumerate().map(|(i, e)| (e.unique_name.as_str(), i)).collect(),
            form: project.def.forms.iter().enumerate().map(|(i, f)| (f.name.as_str(), i + 1)).collect(),
        }
    }

    fn position(&self, k: &RowKey) -> (usize, usize, i64) {
        let ep = self.event.get(k.event.as_str()).copied().unwrap_or(usize::MAX);
        let fp = if k.instrument.is_empty() {
            0
        } else {
            self.form.get(k.instrument.as_str()).copied().unwrap_or(usize::MAX)
        };
        (ep, fp, k.instance)
    }

    fn sort(&self, rows: &mut [RowData]) {
        rows.sort_by(|a, b| self.position(&a.key).cmp(&self.position(&b.key)).then_with(|| a.key.cmp(&b.key)));
    }
}

impl Dataset {
    /// Loads every value of `project`.
    pub fn load(store: &Store, project: &Project) -> Result<Self, StoreError> {
        let mut records = store.records(project.id())?;
        sort_records(&mut records);
        Self::load_records(&store.conn, store.blob_dir(), project, records)
    }

    /// Loads the values of `records` only (with their DAG, in the given order): one index lookup
    /// per record, so the cost follows the records asked for, not the project's size.
    pub fn load_records(
        conn: &Connection,
        blob_dir: &Path,
        project: &Project,
        records: Vec<(String, Option<i64>)>,
    ) -> Result<Self, StoreError> {
        let pid = project.id();
        let order = RowOrder::new(project);
        let mut rows = Vec::new();
        let mut file_fields = Vec::new();
        let mut names = Names::default();
        let has_files = project.def.fields.iter().any(|f| f.field_type == "file");
        for (record, _) in &records {
            let first = rows.len();
            let bound = if has_files { store::record_files_of(conn, pid, record)? } else { HashMap::new() };
            // The index yields a row's values together: a new row starts when its key changes.
            store::for_record_values(conn, pid, record, |event, instrument, instance, field, value| {
                let is_file = has_files && project.field(field).is_some_and(|f| f.field_type == "file");
                if is_file {
                    // Only a doc that belongs to this very cell is its file; any other value (a doc
                    // id forged through a text field turned into a file field) is no file at all.
                    let owned = value.parse::<i64>().ok().and_then(|d| bound.get(&d)).is_some_and(|(k, f)| {
                        f == field
                            && k.record == *record
                            && k.event == event
                            && k.instrument == instrument
                            && k.instance == instance
                    });
                    if !owned {
                        return;
                    }
                }
                let same = rows.len() > first && {
                    let last: &RowData = &rows[rows.len() - 1];
                    last.key.instance == instance && last.key.event == event && last.key.instrument == instrument
                };
                if !same {
                    rows.push(RowData {
                        key: RowKey {
                            record: record.clone(),
                            event: event.to_owned(),
                            instrument: instrument.to_owned(),
                            instance,
                        },
                        values: RowValues::default(),
                    });
                }
                if is_file {
                    file_fields.push(value.clone());
                }
                rows.last_mut().expect("a row was pushed").values.push_shared(field, value, &mut names);
            })?;
            order.sort(&mut rows[first..]);
        }
        let mut doc_names = HashMap::new();
        for id in file_fields {
            if let Ok(n) = id.parse::<i64>() {
                if let Some(doc) = store::doc(conn, blob_dir, n)? {
                    doc_names.insert(id, doc.name);
                }
            }
        }
        let missing_codes =
            crate::model::parse_choices(&project.def.info.missing_data_codes).into_iter().map(|(c, _)| c).collect();
        let dags = records.into_iter().collect();
        Ok(Dataset { rows, index: OnceLock::new(), dags, missing_codes, doc_names })
    }

    /// The rows of `records` that can show the record id, without their values (see
    /// [`store::base_rows_of`]), for an export whose columns need only the row keys and the
    /// record's DAG; from `all` (see [`store::all_base_rows`]) when the export read every
    /// record's row keys at once.
    pub fn load_row_keys(
        conn: &Connection,
        project: &Project,
        records: Vec<(String, Option<i64>)>,
        all: Option<&store::RecordRows>,
    ) -> Result<Self, StoreError> {
        let pid = project.id();
        let order = RowOrder::new(project);
        let mut rows = Vec::new();
        if !project.def.longitudinal && !project.has_repeating() {
            // One row per record, and every record has it: the record-id value marks a row as
            // existing, and a record left without values is deleted (as REDCap keeps a record
            // only while it has data). Nothing to read: the index walk was the id list's time.
            let event = project.def.events.first().map(|e| e.unique_name.clone()).unwrap_or_default();
            for (record, _) in &records {
                let key =
                    RowKey { record: record.clone(), event: event.clone(), instrument: String::new(), instance: 1 };
                rows.push(RowData { key, values: RowValues::default() });
            }
            let dags = records.into_iter().collect();
            return Ok(Dataset {
                rows,
                index: OnceLock::new(),
                dags,
                missing_codes: Vec::new(),
                doc_names: HashMap::new(),
            });
        }
        let looked_up;
        let found = match all {
            Some(all) => all,
            None => {
                let names: Vec<&str> = records.iter().map(|(r, _)| r.as_str()).collect();
                looked_up = store::base_rows_of(conn, pid, &names)?;
                &looked_up
            }
        };
        for (record, _) in &records {
            let first = rows.len();
            for (event, instrument, instance) in found.get(record).into_iter().flatten() {
                let key = RowKey {
                    record: record.clone(),
                    event: event.to_string(),
                    instrument: instrument.to_string(),
                    instance: *instance,
                };
                rows.push(RowData { key, values: RowValues::default() });
            }
            order.sort(&mut rows[first..]);
        }
        let dags = records.into_iter().collect();
        Ok(Dataset { rows, index: OnceLock::new(), dags, missing_codes: Vec::new(), doc_names: HashMap::new() })
    }

    fn index(&self) -> &HashMap<RowKey, usize> {
        self.index.get_or_init(|| self.rows.iter().enumerate().map(|(i, r)| (r.key.clone(), i)).collect())
    }

    /// The row with this key.
    pub fn row(&self, key: &RowKey) -> Option<&RowData> {
        self.index().get(key).map(|&i| &self.rows[i])
    }

    /// Values of one field in one row (empty when absent).
    pub fn values_at(&self, record: &str, event: &str, instrument: &str, instance: i64, field: &str) -> &[String] {
        let key =
            RowKey { record: record.to_owned(), event: event.to_owned(), instrument: instrument.to_owned(), instance };
        self.index().get(&key).and_then(|&i| self.rows[i].values.get(field)).unwrap_or(&[])
    }

    /// A record's DAG.
    pub fn dag_of(&self, record: &str) -> Option<i64> {
        self.dags.get(record).copied().flatten()
    }

    /// Whether a record exists.
    pub fn has_record(&self, record: &str) -> bool {
        self.dags.contains_key(record)
    }
}

/// One output column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Col {
    RecordId,
    EventName,
    RepeatInstrument,
    RepeatInstance,
    Dag,
    /// `redcap_survey_identifier` (exportSurveyFields).
    SurveyId,
    /// `<form>_timestamp` of a survey form (exportSurveyFields).
    SurveyTimestamp(String),
    /// A non-checkbox field.
    Field(String),
    /// One option of a checkbox field.
    Checkbox(String, String),
    /// All checked options of a checkbox in one cell (reports with combine_checkbox_values).
    Combined(String),
    /// `<form>_complete`.
    Complete(String),
}

/// How cells are written.
#[derive(Clone, Debug, Default)]
pub struct CellOptions {
    pub labels: bool,
    pub label_headers: bool,
    pub checkbox_labels: bool,
    /// `Some('.')` or `Some(',')` forces the decimal mark of numeric fields.
    pub decimal: Option<char>,
    pub remove_line_breaks: bool,
    /// Blank instead of `0` for the status of forms never started (`exportBlankForGrayFormStatus`).
    pub blank_gray_status: bool,
}

/// Which fields a caller's data export level hides: identifiers (both restricted levels), and for
/// De-identified also free text and dates. The record-id field is never hidden. (REDCap also
/// hashes record names for de-identified exports; the emulator does not.)
pub fn hidden_by_export_level(project: &Project, level: DataExport, field: &str) -> bool {
    if field == project.def.record_id_field {
        return false;
    }
    let Some(f) = project.field(field) else { return false };
    match level {
        DataExport::Full => false,
        DataExport::NoAccess => true,
        DataExport::RemoveIdentifiers => f.identifier,
        DataExport::DeIdentified => {
            f.identifier
                || f.field_type == "notes"
                || (f.field_type == "text" && f.validation.is_empty())
                || f.validation.starts_with("date")
        }
    }
}

/// Why a caller may not write `field` (a field or `<form>_complete`), if they may not: its
/// instrument's data entry right is No Access or Read Only. The record-id field names the
/// record and is never refused here. The text is UNVERIFIED: no public recording shows REDCap's
/// words; it is written in the style of its recorded "not designated for the event" import
/// message (redcapAPI issue #348).
pub fn entry_refusal(project: &Project, rights: &Rights, field: &str) -> Option<String> {
    if field == project.def.record_id_field {
        return None;
    }
    let form = project.form_of(field)?;
    let right = rights.form_entry(form);
    (right != FormEntry::Edit).then(|| {
        format!(
            "This field ('{field}') exists on an instrument ('{form}') for which your data entry rights are \"{}\". You are not allowed to import data for this field.",
            right.label()
        )
    })
}

/// Builds the columns for `names` (field names and `<form>_complete`), in the given order.
/// The pseudo-columns come after the record id, and only when it is selected. With `survey`
/// (exportSurveyFields), `redcap_survey_identifier` follows them and each survey form's
/// `<form>_timestamp` comes before the form's first column (column order UNVERIFIED).
pub fn columns(
    project: &Project,
    names: &[String],
    with_dag: bool,
    combine_checkboxes: bool,
    survey: bool,
) -> Vec<Col> {
    let rid = &project.def.record_id_field;
    let survey = survey && project.def.forms.iter().any(|f| project.is_survey(&f.name));
    let mut cols = Vec::new();
    let mut stamped: Vec<String> = Vec::new();
    let mut stamp = |cols: &mut Vec<Col>, name: &str| {
        if let Some(form) = project.form_of(name) {
            if survey && project.is_survey(form) && !stamped.iter().any(|f| f == form) {
                stamped.push(form.to_owned());
                cols.push(Col::SurveyTimestamp(form.to_owned()));
            }
        }
    };
    if names.iter().any(|n| n == rid) {
        cols.push(Col::RecordId);
        if project.def.longitudinal {
            cols.push(Col::EventName);
        }
        if project.has_repeating() {
            cols.push(Col::RepeatInstrument);
            cols.push(Col::RepeatInstance);
        }
        if with_dag {
            cols.push(Col::Dag);
        }
        if survey {
            cols.push(Col::SurveyId);
        }
        stamp(&mut cols, rid);
    }
    for n in names {
        if n == rid {
            continue;
        }
        if project.field(n).is_some_and(|f| f.is_exported()) || project.complete_form(n).is_some() {
            stamp(&mut cols, n);
        }
        if let Some(f) = project.field(n) {
            if !f.is_exported() {
                continue;
            }
            if f.field_type == "checkbox" {
                if combine_checkboxes {
                    cols.push(Col::Combined(n.clone()));
                } else {
                    for (code, _) in f.choice_list() {
                        cols.push(Col::Checkbox(n.clone(), code));
                    }
                }
            } else {
                cols.push(Col::Field(n.clone()));
            }
        } else if let Some(form) = project.complete_form(n) {
            cols.push(Col::Complete(form.to_owned()));
        }
    }
    cols
}

/// All field names (and `<form>_complete`) of `forms`, in metadata order.
pub fn names_in_metadata_order(project: &Project, pick: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for form in &project.def.forms {
        for f in project.form_fields(&form.name) {
            if pick(&f.name, &form.name) {
                out.push(f.name.clone());
            }
        }
        let complete = format!("{}_complete", form.name);
        if pick(&complete, &form.name) {
            out.push(complete);
        }
    }
    out
}

/// Whether `form` is part of `key`'s row.
pub fn form_in_row(project: &Project, key: &RowKey, form: &str) -> bool {
    if !key.instrument.is_empty() {
        return key.instrument == form;
    }
    project.form_in_event(&key.event, form)
        && (project.is_repeating_event(&key.event) || !project.is_repeating_form(&key.event, form))
}

/// Whether a row has anything to show for `cols`: a selected field's form belongs to it, or it is
/// a record's base row and the record id is selected.
fn row_relevant(project: &Project, cols: &[Col], key: &RowKey) -> bool {
    cols.iter().any(|c| match c {
        Col::RecordId => key.instrument.is_empty(),
        Col::Field(f) | Col::Checkbox(f, _) | Col::Combined(f) => {
            project.form_of(f).is_some_and(|form| form_in_row(project, key, form))
        }
        Col::Complete(form) => form_in_row(project, key, form),
        _ => false,
    })
}

/// [`row_relevant`] remembered per row shape (event, repeating instrument), which is all the
/// answer depends on: an export asks it for every row, and each asking looked up every column's
/// form (4% of a 100,000-record export's instructions).
#[derive(Debug, Default)]
pub struct Relevance {
    shapes: Vec<(String, String, bool)>,
    last: usize,
}

impl Relevance {
    /// Whether a row keyed `key` has anything to show for `cols` (always the same `cols`).
    pub fn of(&mut self, project: &Project, cols: &[Col], key: &RowKey) -> bool {
        let same = |(e, i, _): &(String, String, bool)| *e == key.event && *i == key.instrument;
        if let Some(&(_, _, r)) = self.shapes.get(self.last).filter(|s| same(s)) {
            return r;
        }
        if let Some(at) = self.shapes.iter().position(same) {
            self.last = at;
            return self.shapes[at].2;
        }
        let r = row_relevant(project, cols, key);
        self.last = self.shapes.len();
        self.shapes.push((key.event.clone(), key.instrument.clone(), r));
        r
    }
}

fn header(project: &Project, col: &Col, labels: bool) -> String {
    let rid = &project.def.record_id_field;
    if !labels {
        return match col {
            Col::RecordId => rid.clone(),
            Col::EventName => "redcap_event_name".into(),
            Col::RepeatInstrument => "redcap_repeat_instrument".into(),
            Col::RepeatInstance => "redcap_repeat_instance".into(),
            Col::Dag => "redcap_data_access_group".into(),
            Col::SurveyId => "redcap_survey_identifier".into(),
            Col::SurveyTimestamp(form) => format!("{form}_timestamp"),
            Col::Field(f) | Col::Combined(f) => f.clone(),
            Col::Checkbox(f, code) => checkbox_column(f, code),
            Col::Complete(form) => format!("{form}_complete"),
        };
    }
    match col {
        Col::RecordId => project.field(rid).map(|f| f.label.clone()).unwrap_or_else(|| rid.clone()),
        Col::EventName => "Event Name".into(),
        Col::RepeatInstrument => "Repeat Instrument".into(),
        Col::RepeatInstance => "Repeat Instance".into(),
        Col::Dag => "Data Access Group".into(),
        Col::SurveyId => "Survey Identifier".into(),
        Col::SurveyTimestamp(_) => "Survey Timestamp".into(),
        Col::Field(f) | Col::Combined(f) => project.field(f).map(|x| x.label.clone()).unwrap_or_default(),
        Col::Checkbox(f, code) => {
            let field = project.field(f);
            let label = field.map(|x| x.label.clone()).unwrap_or_default();
            let choice = field
                .and_then(|x| x.choice_list().into_iter().find(|(c, _)| c == code))
                .map(|(_, l)| l)
                .unwrap_or_default();
            format!("{label} (choice={choice})")
        }
        Col::Complete(_) => "Complete?".into(),
    }
}

/// Column headers.
pub fn headers(project: &Project, cols: &[Col], labels: bool) -> Vec<String> {
    cols.iter().map(|c| header(project, c, labels)).collect()
}

/// The columns of an export resolved once (fields, forms, choices), so that each cell costs a
/// lookup in its row rather than several in the project: a large export renders millions.
#[derive(Debug)]
pub struct CellPlan<'p> {
    project: &'p Project,
    cols: &'p [Col],
    o: &'p CellOptions,
    /// Per column: the field (fields and checkboxes), the form whose presence in a row decides
    /// whether the cell has a value, and the stored name it reads.
    fields: Vec<Option<&'p Field>>,
    forms: Vec<Option<&'p str>>,
    stored: Vec<String>,
    /// Per column: its choices, parsed once (checkboxes, and fields whose labels are exported).
    choices: Vec<Vec<(String, String)>>,
    /// Row shapes seen so far: (event, repeating instrument) → which columns' forms are in it.
    shapes: Vec<(String, String, Vec<bool>)>,
    /// Per column: where its field was in the last row ([`RowValues::get_hinted`]).
    hints: Vec<std::cell::Cell<usize>>,
}

impl<'p> CellPlan<'p> {
    /// Resolves `cols`.
    pub fn new(project: &'p Project, cols: &'p [Col], o: &'p CellOptions) -> Self {
        let mut plan = CellPlan {
            project,
            cols,
            o,
            fields: Vec::with_capacity(cols.len()),
            forms: Vec::with_capacity(cols.len()),
            stored: Vec::with_capacity(cols.len()),
            choices: Vec::with_capacity(cols.len()),
            shapes: Vec::new(),
            hints: vec![std::cell::Cell::new(0); cols.len()],
        };
        for col in cols {
            let (field, form, stored) = match col {
                Col::Field(f) | Col::Checkbox(f, _) | Col::Combined(f) => {
                    (project.field(f), project.form_of(f), f.clone())
                }
                Col::Complete(form) => (None, Some(form.as_str()), format!("{form}_complete")),
                Col::SurveyTimestamp(form) => (None, Some(form.as_str()), format!("{form}_timestamp")),
                Col::SurveyId => (None, None, "redcap_survey_identifier".to_owned()),
                _ => (None, None, String::new()),
            };
            let labelled = matches!(col, Col::Checkbox(..) | Col::Combined(_)) || o.labels;
            plan.choices.push(field.filter(|_| labelled).map(Field::choice_list).unwrap_or_default());
            plan.fields.push(field);
            plan.forms.push(form);
            plan.stored.push(stored);
        }
        plan
    }

    /// Which columns' forms belong to rows shaped like `key`.
    fn shape(&mut self, key: &RowKey) -> usize {
        if let Some(i) = self.shapes.iter().position(|(e, i, _)| *e == key.event && *i == key.instrument) {
            return i;
        }
        let in_row = self.forms.iter().map(|f| f.is_some_and(|form| form_in_row(self.project, key, form))).collect();
        self.shapes.push((key.event.clone(), key.instrument.clone(), in_row));
        self.shapes.len() - 1
    }

    /// The cells of one row.
    pub fn cells(&mut self, data: &Dataset, row: &RowData) -> Vec<Value> {
        let shape = self.shape(&row.key);
        let (project, o, key) = (self.project, self.o, &row.key);
        let in_row = &self.shapes[shape].2;
        let values = |i: usize, field: &str| {
            let mut h = self.hints[i].get();
            let v = row.values.get_hinted(field, &mut h);
            self.hints[i].set(h);
            v
        };
        let first = |i: usize| values(i, &self.stored[i]).and_then(|v| v.first());
        let mut out = Vec::with_capacity(self.cols.len());
        for (i, col) in self.cols.iter().enumerate() {
            let cell = match col {
                Col::RecordId => Value::from(key.record.clone()),
                Col::EventName => {
                    let ev = project.event(&key.event);
                    Value::from(match (o.labels, ev) {
                        (true, Some(e)) => project.def.event_label(e),
                        _ => key.event.clone(),
                    })
                }
                Col::RepeatInstrument => Value::from(if key.instrument.is_empty() {
                    String::new()
                } else if o.labels {
                    project
                        .def
                        .forms
                        .iter()
                        .find(|f| f.name == key.instrument)
                        .map(|f| f.label.clone())
                        .unwrap_or_else(|| key.instrument.clone())
                } else {
                    key.instrument.clone()
                }),
                Col::RepeatInstance => {
                    if !key.instrument.is_empty() || project.is_repeating_event(&key.event) {
                        Value::from(key.instance)
                    } else {
                        Value::from("")
                    }
                }
                Col::Dag => Value::from(
                    data.dag_of(&key.record)
                        .and_then(|d| project.dag(d))
                        .map(|d| if o.labels { d.name.clone() } else { d.unique.clone() })
                        .unwrap_or_default(),
                ),
                Col::SurveyId => Value::from(first(i).cloned().unwrap_or_default()),
                Col::SurveyTimestamp(_) => {
                    Value::from(if in_row[i] { first(i).cloned().unwrap_or_default() } else { String::new() })
                }
                Col::Field(_) => match (self.fields[i], in_row[i], first(i)) {
                    (Some(field), true, Some(raw)) => Value::from(field_cell(field, &self.choices[i], data, raw, o)),
                    _ => Value::from(""),
                },
                Col::Checkbox(f, code) => {
                    if !in_row[i] {
                        Value::from("")
                    } else {
                        let checked = values(i, f).is_some_and(|v| v.iter().any(|x| x == code));
                        Value::from(match (o.labels, o.checkbox_labels, checked) {
                            (false, _, c) => if c { "1" } else { "0" }.to_owned(),
                            (true, false, c) => if c { "Checked" } else { "Unchecked" }.to_owned(),
                            (true, true, true) => self.choices[i]
                                .iter()
                                .find(|(c, _)| c == code)
                                .map(|(_, l)| l.clone())
                                .unwrap_or_default(),
                            (true, true, false) => String::new(),
                        })
                    }
                }
                Col::Combined(f) => {
                    if !in_row[i] || self.fields[i].is_none() {
                        Value::from("")
                    } else {
                        let checked = values(i, f).unwrap_or_default();
                        let parts: Vec<&str> = self.choices[i]
                            .iter()
                            .filter(|(c, _)| checked.contains(c))
                            .map(|(c, l)| if o.labels { l.as_str() } else { c.as_str() })
                            .collect();
                        Value::from(parts.join(","))
                    }
                }
                Col::Complete(_) => {
                    if !in_row[i] {
                        Value::from("")
                    } else {
                        let gray = if o.blank_gray_status { "" } else { "0" };
                        let raw = first(i).map(String::as_str).unwrap_or(gray);
                        Value::from(match (o.labels, raw) {
                            (true, "0") => "Incomplete",
                            (true, "1") => "Unverified",
                            (true, "2") => "Complete",
                            _ => raw,
                        })
                    }
                }
            };
            out.push(cell);
        }
        out
    }
}

/// A field's cell from its stored value (`choices`: the field's, when labels are exported).
fn field_cell(field: &Field, choices: &[(String, String)], data: &Dataset, raw: &str, o: &CellOptions) -> String {
    let mut v = if field.field_type == "file" {
        data.doc_names.get(raw).cloned().unwrap_or_else(|| "[document]".into())
    } else if o.labels && field.has_choices() {
        choices.iter().find(|(c, _)| c == raw).map(|(_, l)| l.clone()).unwrap_or_else(|| raw.to_owned())
    } else {
        raw.to_owned()
    };
    if let Some(mark) = o.decimal {
        if field.is_numeric() {
            v = match mark {
                ',' => v.replace('.', ","),
                _ => v.replace(',', "."),
            };
        }
    }
    if o.remove_line_breaks {
        v = v.replace(['\r', '\n'], " ");
    }
    v
}

/// Compares two cell values for report ordering: numbers numerically, else text.
pub fn value_cmp(a: &Value, b: &Value) -> Ordering {
    let text = |v: &Value| crate::render::text_of(v);
    let (a, b) = (text(a), text(b));
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.cmp(&b),
    }
}
