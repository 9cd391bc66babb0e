//! Checking rows before they are imported: every value against the project schema, with the
//! same parsers that cast exported values ([`crate::parse`]), so what a pull would call a
//! problem an import check calls one too. Pure: no I/O.
//!
//! What is caught: unknown columns (checkbox options `<field>___<code>` against the field's
//! codes), labels where codes are expected (PyCap#152), checkbox values other than `0`/`1`
//! (redcapAPI#18), values outside a field's choices, values that do not match their validation
//! (dates in the import's `dateFormat`, datetimes, times, numbers, integers, emails and the other
//! text formats), values outside the field's minimum and maximum (including `today` and `now`,
//! REDCap 12.1+), yes/no and true/false values, fields on an instrument not designated for the
//! row's event (PyCap#142), repeating rows without `redcap_repeat_instrument` /
//! `redcap_repeat_instance` or with them on a non-repeating instrument (PyCap#154), a missing or
//! unknown `redcap_event_name` in a longitudinal project, and DAG names the project does not have.
//!
//! Out-of-range values are [`Severity::Warning`]: REDCap's range checks are soft (it saves the
//! value and shows a warning on the form); everything else is an [`Severity::Error`], a value
//! REDCap refuses or stores somewhere the user did not mean.

use std::collections::{BTreeSet, HashMap};

use redcap_api::rows::Validation;
use redcap_core::{DateFormat, Row};
use serde::Serialize;

use crate::kind::FieldKind;
use crate::schema::{FieldDef, Model, text};
use crate::{Error, ProjectSchema, names, parse};

/// The repeating-instrument column.
const REPEAT_INSTRUMENT: &str = "redcap_repeat_instrument";
/// Columns REDCap exports that are not fields and that an import may carry.
const PSEUDO: &[&str] = &["redcap_survey_identifier"];

/// What kind of mistake a [`Problem`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// The row has no record id.
    NoRecordId,
    /// A column that is not a field of the project (or a checkbox option it does not have).
    UnknownField,
    /// A choice's label where its code is expected.
    Label,
    /// A checkbox option's value is not `1`, `0` or empty.
    CheckboxValue,
    /// A value that is not one of the field's codes.
    NotAChoice,
    /// A value that does not match the field's validation (or yes/no, true/false).
    Format,
    /// A value below the field's minimum or above its maximum.
    OutOfRange,
    /// A value of an instrument not designated for the row's event.
    NotDesignated,
    /// A value of a repeating instrument or event on a row that does not say which instance.
    RepeatMissing,
    /// Repeat columns on a row whose instrument or event does not repeat.
    NotRepeating,
    /// A value of another instrument on a repeating instrument's row.
    OtherInstrument,
    /// No `redcap_event_name` on a row of a longitudinal project.
    EventMissing,
    /// An event the project does not have (or an event in a classic project).
    UnknownEvent,
    /// A Data Access Group the project does not have.
    UnknownDag,
}

impl ProblemKind {
    /// The kind's name, as in `--json` output (`unknown_field`, `label`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::NoRecordId => "no_record_id",
            ProblemKind::UnknownField => "unknown_field",
            ProblemKind::Label => "label",
            ProblemKind::CheckboxValue => "checkbox_value",
            ProblemKind::NotAChoice => "not_a_choice",
            ProblemKind::Format => "format",
            ProblemKind::OutOfRange => "out_of_range",
            ProblemKind::NotDesignated => "not_designated",
            ProblemKind::RepeatMissing => "repeat_missing",
            ProblemKind::NotRepeating => "not_repeating",
            ProblemKind::OtherInstrument => "other_instrument",
            ProblemKind::EventMissing => "event_missing",
            ProblemKind::UnknownEvent => "unknown_event",
            ProblemKind::UnknownDag => "unknown_dag",
        }
    }

    /// How serious: only out-of-range values are warnings.
    pub fn severity(self) -> Severity {
        match self {
            ProblemKind::OutOfRange => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// Whether REDCap would refuse or misplace the value ([`Severity::Error`]) or save it with a
/// warning ([`Severity::Warning`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Saved by REDCap, but outside what the dictionary expects.
    Warning,
    /// Refused by REDCap, or saved where it was not meant to be.
    Error,
}

/// One mistake found in the rows to import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Problem {
    /// The row, from 1 (a CSV file's header is not a row).
    pub row: usize,
    /// The row's record id ("" when it has none).
    pub record: String,
    /// The row's event (longitudinal projects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The column (for checkboxes `<field>___<code>`; the key column for row problems).
    pub field: String,
    /// The value as given.
    pub value: String,
    /// What is wrong.
    pub kind: ProblemKind,
    /// Error or warning.
    pub severity: Severity,
    /// Why, for a person.
    pub reason: String,
}

/// How the rows are to be imported.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckOptions {
    /// The import's `dateFormat` (the layout of date and datetime values in the rows).
    pub date_format: DateFormat,
    /// Today (`YYYY-MM-DD`), for minimums and maximums of `today`; `None` skips them.
    pub today: Option<String>,
    /// Now (`YYYY-MM-DD HH:MM:SS`), for minimums and maximums of `now`; `None` skips them.
    pub now: Option<String>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { date_format: DateFormat::Ymd, today: None, now: None }
    }
}

impl CheckOptions {
    /// Sets the date layout.
    pub fn date_format(mut self, f: DateFormat) -> Self {
        self.date_format = f;
        self
    }

    /// Sets today and now (local time of the REDCap server, as best known), for `today` and
    /// `now` bounds: `now` is `YYYY-MM-DD HH:MM:SS`, today its date.
    pub fn now(mut self, now: impl Into<String>) -> Self {
        let now = now.into();
        self.today = Some(now.chars().take(10).collect());
        self.now = Some(now);
        self
    }
}

/// What a column of the rows is.
#[derive(Clone, Debug)]
enum Column {
    /// A key column or a pseudo-field: checked per row, not per cell.
    Key,
    /// A field (index into the model's fields).
    Field(usize),
    /// A checkbox option (field index, code) or a checkbox's missing-data code column.
    Checkbox(usize),
    /// `<form>_complete`.
    Status(String),
}

/// Checks rows against one project's schema.
#[derive(Debug)]
pub struct Checker {
    model: Model,
    options: CheckOptions,
    columns: HashMap<String, Column>,
    dags: BTreeSet<String>,
    /// Checkbox field name → index, for a column `<field>___<unknown code>`.
    checkboxes: HashMap<String, usize>,
}

const STATUS: [(&str, &str); 3] = [("0", "Incomplete"), ("1", "Unverified"), ("2", "Complete")];

impl Checker {
    /// A checker of rows for the project described by `schema`.
    pub fn new(schema: &ProjectSchema, options: CheckOptions) -> Result<Checker, Error> {
        let model = Model::from_schema(schema)?;
        let mut columns = HashMap::new();
        let mut checkboxes = HashMap::new();
        for key in [model.id_field.as_str(), names::EVENT, REPEAT_INSTRUMENT, names::INSTANCE, names::DAG]
            .into_iter()
            .chain(PSEUDO.iter().copied())
        {
            columns.insert(key.to_owned(), Column::Key);
        }
        for (i, f) in model.fields.iter().enumerate() {
            if f.name == model.id_field || f.kind == FieldKind::Descriptive {
                continue;
            }
            if f.checkbox {
                checkboxes.insert(f.name.clone(), i);
                let own = f.choices.iter().map(|c| c.code.as_str());
                let missing = model.missing_codes.iter().filter(|_| !f.no_missing).map(|c| c.code.as_str());
                for code in own.chain(missing) {
                    columns.entry(model.checkbox_export(&f.name, code)).or_insert(Column::Checkbox(i));
                }
            } else {
                columns.insert(f.name.clone(), Column::Field(i));
            }
        }
        for (form, _) in &model.instruments {
            columns.insert(format!("{form}_complete"), Column::Status(form.clone()));
            // Survey timestamps are exported with the survey fields; REDCap ignores them on import.
            columns.entry(format!("{form}_timestamp")).or_insert(Column::Key);
        }
        let dags = schema.dags.iter().filter_map(|r| r.get("unique_group_name").map(text)).collect();
        Ok(Checker { model, options, columns, dags, checkboxes })
    }

    /// The project's record-id field.
    pub fn id_field(&self) -> &str {
        &self.model.id_field
    }

    /// The dictionary field a column of the rows imports into (a checkbox option's field), for
    /// exporting what is stored; `None` for key columns, form statuses and unknown columns.
    pub fn field_of(&self, column: &str) -> Option<&str> {
        match self.columns.get(column)? {
            Column::Field(i) | Column::Checkbox(i) => Some(&self.model.fields[*i].name),
            Column::Key | Column::Status(_) => None,
        }
    }

    /// The instrument whose status a `<form>_complete` column is.
    pub fn status_of(&self, column: &str) -> Option<&str> {
        match self.columns.get(column)? {
            Column::Status(form) => Some(form),
            _ => None,
        }
    }

    /// What storing `value` in `column` leaves there, in the form REDCap exports it: `None`
    /// when the import leaves the stored value alone (blank without `overwrite`). Dates and
    /// datetimes are read in the import's date format, a blank checkbox option with `overwrite`
    /// is `0`, values are trimmed.
    pub fn stored(&self, column: &str, value: &str, overwrite: bool) -> Option<String> {
        let value = value.trim();
        let col = self.columns.get(column);
        if value.is_empty() {
            return match col {
                Some(Column::Checkbox(_)) if overwrite => Some("0".into()),
                _ if overwrite => Some(String::new()),
                _ => None,
            };
        }
        if let Some(Column::Field(i)) = col {
            if matches!(self.model.fields[*i].kind, FieldKind::Date | FieldKind::DateTime { .. }) {
                if let Ok(ymd) = parse::ymd_from(value, self.options.date_format) {
                    return Some(ymd);
                }
            }
        }
        Some(value.to_owned())
    }

    /// Checks flat rows (one object per record, event and instance; REDCap's `type=flat`).
    pub fn check_flat(&self, rows: &[Row]) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let place = Place::of(row, &self.model.id_field, i + 1);
            let mut report = |field: &str, value: &str, kind: ProblemKind, reason: String| {
                problems.push(place.problem(self.model.longitudinal, field, value, kind, reason));
            };
            let repeat = self.check_place(&place, &mut report);
            for (column, value) in row {
                let value = text(value);
                self.check_cell(&place, repeat.as_ref(), column, value.trim(), &mut report);
            }
        }
        problems
    }

    /// Checks EAV rows (`record`, `field_name`, `value`, and `redcap_event_name`,
    /// `redcap_repeat_instrument`, `redcap_repeat_instance` where they apply; REDCap's `type=eav`).
    pub fn check_eav(&self, rows: &[Row]) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let place = Place::of(row, "record", i + 1);
            let mut report = |field: &str, value: &str, kind: ProblemKind, reason: String| {
                problems.push(place.problem(self.model.longitudinal, field, value, kind, reason));
            };
            let repeat = self.check_place(&place, &mut report);
            let column = row.get("field_name").map(text).unwrap_or_default();
            let value = row.get("value").map(text).unwrap_or_default();
            self.check_cell(&place, repeat.as_ref(), &column, value.trim(), &mut report);
        }
        problems
    }

    /// The row-level checks: record id, event, repeat columns. Returns the row's repeating
    /// instrument when it names a valid one (`Some("")` for a repeating event's instance).
    fn check_place(&self, place: &Place, report: &mut Reporter<'_>) -> Option<Repeat> {
        let m = &self.model;
        if place.record.is_empty() {
            report(&m.id_field, "", ProblemKind::NoRecordId, "the row has no record id".into());
        }
        let event = place.event.as_str();
        let mut event_ok = true;
        if m.longitudinal {
            if event.is_empty() {
                event_ok = false;
                let hint = self.list(m.events.iter().map(String::as_str));
                let reason = format!("a longitudinal project's rows need redcap_event_name (one of {hint})");
                report(names::EVENT, "", ProblemKind::EventMissing, reason);
            } else if !m.events.is_empty() && !m.events.iter().any(|e| e == event) {
                event_ok = false;
                let hint = self.list(m.events.iter().map(String::as_str));
                report(names::EVENT, event, ProblemKind::UnknownEvent, format!("no such event (the events: {hint})"));
            }
        } else if !event.is_empty() {
            let reason = "the project is not longitudinal: leave redcap_event_name out".into();
            report(names::EVENT, event, ProblemKind::UnknownEvent, reason);
        }
        let instrument = place.repeat_instrument.as_str();
        let instance = place.instance.as_str();
        let instance_ok = instance.is_empty()
            || instance == "new"
            || parse::integer(instance).is_ok_and(|n| n >= 1) && !instance.starts_with(['+', '-']);
        if !instance_ok {
            let reason = "not an instance number (1, 2, … or new)".into();
            report(names::INSTANCE, instance, ProblemKind::Format, reason);
        }
        if !place.dag.is_empty() && !self.dags.contains(place.dag.as_str()) {
            let reason = if self.dags.is_empty() {
                "the project has no Data Access Groups (or the token cannot see them)".to_owned()
            } else {
                format!("no such Data Access Group (the groups: {})", self.list(self.dags.iter().map(String::as_str)))
            };
            report(names::DAG, &place.dag, ProblemKind::UnknownDag, reason);
        }
        if !instrument.is_empty() {
            if !m.instruments.iter().any(|(n, _)| n == instrument) {
                report(REPEAT_INSTRUMENT, instrument, ProblemKind::NotRepeating, "no such instrument".into());
                return None;
            }
            if event_ok && !m.is_repeating_form(event, instrument) {
                let reason = if m.longitudinal {
                    format!("`{instrument}` is not a repeating instrument in event `{event}`")
                } else {
                    format!("`{instrument}` is not a repeating instrument")
                };
                report(REPEAT_INSTRUMENT, instrument, ProblemKind::NotRepeating, reason);
                return None;
            }
            if instance.is_empty() {
                let reason = format!("a row of repeating instrument `{instrument}` needs redcap_repeat_instance");
                report(names::INSTANCE, "", ProblemKind::RepeatMissing, reason);
            }
            return Some(Repeat::Instrument(instrument.to_owned()));
        }
        if !instance.is_empty() {
            if m.longitudinal && m.repeating_events.contains(event) {
                return Some(Repeat::Event);
            }
            if event_ok {
                let reason = if m.longitudinal {
                    format!("event `{event}` does not repeat: an instance needs redcap_repeat_instrument")
                } else {
                    "an instance needs redcap_repeat_instrument (the project has no repeating events)".to_owned()
                };
                report(names::INSTANCE, instance, ProblemKind::NotRepeating, reason);
            }
            return None;
        }
        event_ok.then_some(Repeat::None)
    }

    fn check_cell(&self, place: &Place, repeat: Option<&Repeat>, column: &str, value: &str, report: &mut Reporter<'_>) {
        let m = &self.model;
        let Some(col) = self.columns.get(column) else {
            self.unknown(column, value, report);
            return;
        };
        let (form, def) = match col {
            Column::Key => return,
            Column::Field(i) | Column::Checkbox(i) => (m.fields[*i].form.as_str(), Some(&m.fields[*i])),
            Column::Status(form) => (form.as_str(), None),
        };
        if value.is_empty() {
            return;
        }
        // Where the value would go: the row's event and instance must take its instrument.
        if let Some(repeat) = repeat {
            let event = place.event.as_str();
            if !m.is_designated(event, form) {
                let reason = format!("instrument `{form}` is not designated for event `{event}`");
                report(column, value, ProblemKind::NotDesignated, reason);
                return;
            }
            match repeat {
                Repeat::Instrument(i) if i != form => {
                    let reason =
                        format!("belongs to instrument `{form}`, not to this row's repeating instrument `{i}`");
                    report(column, value, ProblemKind::OtherInstrument, reason);
                    return;
                }
                Repeat::None if m.is_repeating_form(event, form) => {
                    let reason = format!(
                        "`{form}` is a repeating instrument: the row needs redcap_repeat_instrument and redcap_repeat_instance"
                    );
                    report(column, value, ProblemKind::RepeatMissing, reason);
                    return;
                }
                Repeat::None if m.longitudinal && m.repeating_events.contains(event) => {
                    let reason = format!("event `{event}` repeats: the row needs redcap_repeat_instance");
                    report(column, value, ProblemKind::RepeatMissing, reason);
                    return;
                }
                _ => {}
            }
        }
        match (col, def) {
            (Column::Checkbox(_), Some(f)) => self.checkbox(f, column, value, report),
            (Column::Field(_), Some(f)) => self.value(f, column, value, report),
            (Column::Status(_), _) if !STATUS.iter().any(|(c, _)| *c == value) => {
                let choices: Vec<redcap_api::Choice> =
                    STATUS.iter().map(|(c, l)| redcap_api::Choice::new(*c, *l)).collect();
                not_a_choice(&choices, column, value, report);
            }
            _ => {}
        }
    }

    fn unknown(&self, column: &str, value: &str, report: &mut Reporter<'_>) {
        let m = &self.model;
        let reason = if let Some(&i) = self.checkboxes.get(column) {
            let f = &m.fields[i];
            format!(
                "checkbox `{column}` is imported one column per option: {}",
                self.list(
                    f.choices
                        .iter()
                        .map(|c| m.checkbox_export(&f.name, &c.code))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str)
                )
            )
        } else if let Some((field, i)) = column.rsplit_once("___").and_then(|(f, _)| self.checkboxes.get_key_value(f)) {
            let f = &m.fields[*i];
            let codes = self.list(f.choices.iter().map(|c| c.code.as_str()));
            format!("checkbox `{field}` has no such option (its codes: {codes})")
        } else if m.fields.iter().any(|f| f.name == column && f.kind == FieldKind::Descriptive) {
            "a descriptive field holds no data".to_owned()
        } else {
            match m.fields.iter().find(|f| f.name.eq_ignore_ascii_case(column)) {
                Some(f) => format!("not a field of the project (did you mean `{}`?)", f.name),
                None => "not a field of the project".to_owned(),
            }
        };
        report(column, value, ProblemKind::UnknownField, reason);
    }

    fn checkbox(&self, f: &FieldDef, column: &str, value: &str, report: &mut Reporter<'_>) {
        if parse::boolean(value).is_ok() {
            return;
        }
        let code = f.choices.iter().find(|c| self.model.checkbox_export(&f.name, &c.code) == column);
        let hint = match code {
            Some(c)
                if value == c.code || value.eq_ignore_ascii_case(&c.label) || value.eq_ignore_ascii_case("checked") =>
            {
                format!(" (to check `{}`, import 1)", c.label)
            }
            _ => String::new(),
        };
        let reason = format!("a checkbox option takes 1 (checked) or 0 (unchecked){hint}");
        report(column, value, ProblemKind::CheckboxValue, reason);
    }

    fn value(&self, f: &FieldDef, column: &str, value: &str, report: &mut Reporter<'_>) {
        if !f.no_missing && self.model.missing_codes.iter().any(|c| c.code == value) {
            return;
        }
        let validation = Validation::from(f.validation.as_str());
        let fail = |reason: &str| (ProblemKind::Format, reason.to_owned());
        let order = self.options.date_format;
        let checked: Result<Option<f64>, (ProblemKind, String)> = match f.kind {
            FieldKind::Choice | FieldKind::Boolean => {
                if !f.choices.iter().any(|c| c.code == value) {
                    not_a_choice(&f.choices, column, value, report);
                }
                return;
            }
            FieldKind::Integer => parse::integer(value).map(|n| Some(n as f64)).map_err(fail),
            FieldKind::Number { comma, decimals } => match decimals {
                Some(n) => parse::fixed_decimals(value, comma, n),
                None => parse::number(value, comma),
            }
            .map(Some)
            .map_err(fail),
            FieldKind::Date => parse::ymd_from(value, order)
                .and_then(|d| if d.contains(' ') { Err("not a date (no time of day)") } else { parse::date(&d) })
                .map(|d| Some(f64::from(d)))
                .map_err(fail),
            FieldKind::DateTime { seconds } => parse::ymd_from(value, order)
                .and_then(|d| {
                    let has_seconds = d.split(':').count() == 3;
                    match (seconds, has_seconds) {
                        (true, false) => Err("not a datetime with seconds (HH:MM:SS)"),
                        (false, true) => Err("not a datetime to the minute (HH:MM, no seconds)"),
                        _ => parse::datetime(&d),
                    }
                })
                .map(|t| Some(t as f64))
                .map_err(fail),
            FieldKind::Time(form) => parse::time(value, form).map(|t| Some(f64::from(t))).map_err(fail),
            FieldKind::Text => parse::text_format(&validation, value).map(|()| None).map_err(fail),
            FieldKind::Checkbox | FieldKind::Descriptive => return,
        };
        match checked {
            Err((kind, reason)) => report(column, value, kind, format!("{reason} ({} field)", f.validation)),
            Ok(Some(v)) => {
                let below = self.bound(f, &f.min).is_some_and(|min| v < min);
                let above = self.bound(f, &f.max).is_some_and(|max| v > max);
                if below || above {
                    let range = match (f.min.as_str(), f.max.as_str()) {
                        ("", max) => format!("at most {max}"),
                        (min, "") => format!("at least {min}"),
                        (min, max) => format!("from {min} to {max}"),
                    };
                    report(column, value, ProblemKind::OutOfRange, format!("outside the field's range ({range})"));
                }
            }
            Ok(None) => {}
        }
    }

    /// A minimum or maximum as the number its field's values compare by (`None`: none, or one
    /// this cannot read).
    fn bound(&self, f: &FieldDef, bound: &str) -> Option<f64> {
        let bound = bound.trim();
        if bound.is_empty() {
            return None;
        }
        let relative = match bound {
            "today" => Some(self.options.today.as_deref()?),
            "now" => Some(self.options.now.as_deref()?),
            _ => None,
        };
        let b = relative.unwrap_or(bound);
        match f.kind {
            FieldKind::Integer => parse::integer(b).ok().map(|n| n as f64),
            FieldKind::Number { comma, .. } => parse::number(b, comma).ok(),
            FieldKind::Date => parse::date(b.get(..10)?).ok().map(f64::from),
            FieldKind::DateTime { .. } => match b.len() {
                10 => parse::date(b).ok().map(|d| f64::from(d) * 86_400.0),
                _ => parse::datetime(b).ok().map(|t| t as f64),
            },
            FieldKind::Time(form) => parse::time(b, form).ok().map(f64::from),
            _ => None,
        }
    }

    /// A short list for a reason: the first ten, then how many more.
    fn list<'a>(&self, items: impl Iterator<Item = &'a str>) -> String {
        let items: Vec<&str> = items.collect();
        let mut s = items.iter().take(10).copied().collect::<Vec<_>>().join(", ");
        if items.len() > 10 {
            s.push_str(&format!(", … {} more", items.len() - 10));
        }
        s
    }
}

fn not_a_choice(choices: &[redcap_api::Choice], column: &str, value: &str, report: &mut Reporter<'_>) {
    let norm = |s: &str| s.trim().to_lowercase();
    if let Some(c) = choices.iter().find(|c| norm(&c.label) == norm(value)) {
        let reason = format!("`{value}` is the label of code `{}`: import the code", c.code);
        report(column, value, ProblemKind::Label, reason);
        return;
    }
    let codes: Vec<String> = choices.iter().take(12).map(|c| format!("{} = {}", c.code, c.label)).collect();
    let more = if choices.len() > 12 { ", …" } else { "" };
    let reason = format!("not one of the field's codes ({}{more})", codes.join(", "));
    report(column, value, ProblemKind::NotAChoice, reason);
}

type Reporter<'a> = dyn FnMut(&str, &str, ProblemKind, String) + 'a;

/// What a row's repeat columns say.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Repeat {
    /// Not a repeating row.
    None,
    /// An instance of this repeating instrument.
    Instrument(String),
    /// An instance of a repeating event.
    Event,
}

/// A row's keys, as text.
struct Place {
    row: usize,
    record: String,
    event: String,
    repeat_instrument: String,
    instance: String,
    dag: String,
}

impl Place {
    fn of(row: &Row, id_field: &str, n: usize) -> Place {
        let cell = |k: &str| row.get(k).map(text).map(|s| s.trim().to_owned()).unwrap_or_default();
        Place {
            row: n,
            record: cell(id_field),
            event: cell(names::EVENT),
            repeat_instrument: cell(REPEAT_INSTRUMENT),
            instance: cell(names::INSTANCE),
            dag: cell(names::DAG),
        }
    }

    fn problem(&self, longitudinal: bool, field: &str, value: &str, kind: ProblemKind, reason: String) -> Problem {
        Problem {
            row: self.row,
            record: self.record.clone(),
            event: (longitudinal && !self.event.is_empty()).then(|| self.event.clone()),
            field: field.to_owned(),
            value: value.to_owned(),
            kind,
            severity: kind.severity(),
            reason,
        }
    }
}

/// Checks flat `rows` against `schema` (see [`Checker`]).
pub fn check(schema: &ProjectSchema, rows: &[Row], options: CheckOptions) -> Result<Vec<Problem>, Error> {
    Ok(Checker::new(schema, options)?.check_flat(rows))
}
