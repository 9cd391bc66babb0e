//! Casting: a batch of flat raw records → one Arrow record batch per instrument, plus the
//! problems found. Pure: no I/O, the same input always gives the same output.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder, Time32MillisecondBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use redcap_core::Row;

use crate::kind::FieldKind;
use crate::layout::{Codes, DatasetLayout, Key, Source, TableLayout};
use crate::records::{Cells, Records};
use crate::{Error, names, parse};

/// A value that did not fit its column's type: it is null in the table and kept here.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The record.
    pub record: String,
    /// The event (longitudinal projects).
    pub event: Option<String>,
    /// The repeat instance.
    pub instance: Option<i64>,
    /// The instrument (table).
    pub instrument: String,
    /// The export column (for checkboxes `<field>___<code>`).
    pub field: String,
    /// The raw value, as REDCap sent it.
    pub raw: String,
    /// Why it does not fit.
    pub reason: String,
}

/// One batch of records, cast.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CastBatch {
    /// One batch per table of the layout, in the layout's order (possibly with no rows).
    pub tables: Vec<RecordBatch>,
    /// The values that did not fit.
    pub problems: Vec<Problem>,
}

/// The problems table's schema.
pub fn problems_schema() -> SchemaRef {
    let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
    Arc::new(Schema::new(vec![
        f("record", DataType::Utf8, false),
        f("event", DataType::Utf8, true),
        f("instance", DataType::Int64, true),
        f("instrument", DataType::Utf8, false),
        f("field", DataType::Utf8, false),
        f("raw", DataType::Utf8, false),
        f("reason", DataType::Utf8, false),
    ]))
}

/// The problems as a record batch of [`problems_schema`].
pub fn problems_batch(problems: &[Problem]) -> Result<RecordBatch, Error> {
    let s = |get: &dyn Fn(&Problem) -> Option<&str>| -> ArrayRef {
        Arc::new(problems.iter().map(get).collect::<arrow_array::StringArray>())
    };
    let instance: ArrayRef = Arc::new(problems.iter().map(|p| p.instance).collect::<arrow_array::Int64Array>());
    Ok(RecordBatch::try_new(
        problems_schema(),
        vec![
            s(&|p| Some(&p.record)),
            s(&|p| p.event.as_deref()),
            instance,
            s(&|p| Some(&p.instrument)),
            s(&|p| Some(&p.field)),
            s(&|p| Some(&p.raw)),
            s(&|p| Some(&p.reason)),
        ],
    )?)
}

/// Where a row sits: its keys.
struct Place<'r> {
    record: Cow<'r, str>,
    event: Cow<'r, str>,
    repeat_instrument: Cow<'r, str>,
    instance: Cow<'r, str>,
}

impl DatasetLayout {
    /// Casts flat raw records (REDCap's `type=flat`, `rawOrLabel=raw` export; whole records) into
    /// one batch per table. A row goes to an instrument's table when the instrument belongs to
    /// the row (its event, its repeating instrument or event) and the row holds a value of it
    /// (a checked box counts, a `0` form status does not); the record-id instrument keeps every
    /// row of its events.
    pub fn cast(&self, rows: &[Row]) -> Result<CastBatch, Error> {
        self.cast_records(&Records::from_rows(rows))
    }

    /// [`DatasetLayout::cast`] of records already read as text (a CSV answer: every cell is
    /// found by its row and column, no map per row).
    pub fn cast_records(&self, grid: &Records) -> Result<CastBatch, Error> {
        let rows = grid.len();
        let at = |name: &str| grid.cells(grid.column(name));
        let (id, event, repeat, instance) =
            (at(&self.id_field), at(names::EVENT), at("redcap_repeat_instrument"), at(names::INSTANCE));
        let places: Vec<Place> = (0..rows)
            .map(|i| Place {
                record: Cow::Borrowed(id.get(i)),
                event: Cow::Borrowed(event.get(i)),
                repeat_instrument: Cow::Borrowed(repeat.get(i)),
                instance: Cow::Borrowed(instance.get(i)),
            })
            .collect();
        // Each row's repeating instrument as the place of its table, matched once a batch, not
        // once a table: comparing the cell's text again for every table (a read of the batch's
        // text, row after row) was a tenth of a pull's CPU.
        let repeats: Vec<Repeat> = places
            .iter()
            .map(|p| match p.repeat_instrument.as_ref() {
                "" => Repeat::None,
                name => self.tables.iter().position(|t| t.name == name).map_or(Repeat::Other, Repeat::Table),
            })
            .collect();
        let mut problems = Vec::new();
        let mut tables = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            let data = DataCheck::new(table, grid);
            // Rows come event by event: what the event says of the table is looked up once a run.
            let mut last: Option<(&str, EventFacts)> = None;
            let picked: Vec<usize> = (0..rows)
                .filter(|&i| {
                    let place = &places[i];
                    let event = place.event.as_ref();
                    let facts = match last {
                        Some((e, facts)) if e == event => facts,
                        _ => {
                            let facts = self.event_facts(table, event);
                            last = Some((event, facts));
                            facts
                        }
                    };
                    facts.takes(t, repeats[i], place) && data.has_data(i)
                })
                .collect();
            let mut columns = Vec::with_capacity(table.sources.len());
            let instances: Vec<Option<i64>> = picked
                .iter()
                .map(|&i| {
                    let s = &places[i].instance;
                    if s.is_empty() {
                        return None;
                    }
                    match parse::integer(s) {
                        Ok(n) => Some(n),
                        Err(reason) => {
                            problems.push(Problem {
                                record: places[i].record.to_string(),
                                event: self.model.longitudinal.then(|| places[i].event.to_string()),
                                instance: None,
                                instrument: table.name.clone(),
                                field: names::INSTANCE.into(),
                                raw: s.to_string(),
                                reason: reason.into(),
                            });
                            None
                        }
                    }
                })
                .collect();
            for (source, field) in table.sources.iter().zip(table.schema.fields()) {
                // `k`: the position among the picked rows.
                let mut report = |k: usize, column: &str, value: &str, reason: &str| {
                    let i = picked[k];
                    problems.push(Problem {
                        record: places[i].record.to_string(),
                        event: self.model.longitudinal.then(|| places[i].event.to_string()),
                        instance: instances[k],
                        instrument: table.name.clone(),
                        field: column.to_owned(),
                        raw: value.to_owned(),
                        reason: reason.to_owned(),
                    });
                };
                let array: ArrayRef = match source {
                    Source::Key(Key::Record) => Arc::new(
                        picked.iter().map(|&i| Some(places[i].record.as_ref())).collect::<arrow_array::StringArray>(),
                    ),
                    Source::Key(Key::Event) => Arc::new(
                        picked.iter().map(|&i| Some(places[i].event.as_ref())).collect::<arrow_array::StringArray>(),
                    ),
                    Source::Key(Key::Instance) => Arc::new(arrow_array::Int64Array::from(instances.clone())),
                    Source::Key(Key::Dag) => {
                        let dag = at(names::DAG);
                        Arc::new(
                            picked
                                .iter()
                                .map(|&i| Some(dag.get(i)).filter(|s| !s.is_empty()))
                                .collect::<arrow_array::StringArray>(),
                        )
                    }
                    Source::Value { export, kind, codes, takes_missing, .. } => {
                        let missing = if *takes_missing { self.missing.as_deref() } else { None };
                        let column = at(export);
                        let cells = picked.iter().enumerate().map(move |(k, &i)| {
                            let v = Cow::Borrowed(column.get(i));
                            let skip = v.is_empty() || missing.is_some_and(|m| m.key(v.as_ref()).is_some());
                            (k, v, skip)
                        });
                        typed(*kind, codes.as_deref(), cells, &mut |i, v, reason| report(i, export, v, reason))?
                    }
                    Source::Label { export, codes, labels } => {
                        let column = at(export);
                        let keys: Int32Builder = picked.iter().fold(Int32Builder::new(), |mut b, &i| {
                            b.append_option(codes.key(column.get(i)));
                            b
                        });
                        dictionary(keys, labels.clone())?
                    }
                    Source::Checkbox { export } => {
                        let mut b = BooleanBuilder::with_capacity(picked.len());
                        let column = at(export);
                        for (k, &i) in picked.iter().enumerate() {
                            match column.get(i) {
                                "" => b.append_null(),
                                s => match parse::boolean(s) {
                                    Ok(x) => b.append_value(x),
                                    Err(reason) => {
                                        report(k, export, s, reason);
                                        b.append_null();
                                    }
                                },
                            }
                        }
                        Arc::new(b.finish())
                    }
                    Source::Missing { exports } => {
                        let codes = self.missing.clone().ok_or(Error::Internal("missing-code column without codes"))?;
                        let mut keys = Int32Builder::with_capacity(picked.len());
                        let slots: Vec<(Cells<'_>, &Option<String>)> =
                            exports.iter().map(|(export, code)| (at(export), code)).collect();
                        for &i in &picked {
                            let code = slots.iter().find_map(|&(column, code)| {
                                let v = column.get(i);
                                match code {
                                    // A checkbox's missing-code option, checked.
                                    Some(code) => (v == "1").then(|| codes.key(code)).flatten(),
                                    None => codes.key(v),
                                }
                            });
                            keys.append_option(code);
                        }
                        dictionary(keys, codes.values.clone())?
                    }
                };
                debug_assert_eq!(array.data_type(), field.data_type(), "{}", field.name());
                columns.push(array);
            }
            let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(picked.len()));
            tables.push(RecordBatch::try_new_with_options(table.schema.clone(), columns, &options)?);
        }
        // Record by record, in the answer's record order (each record's as found: by table,
        // column, row): a sync rewrites the problems table record by record, and must give
        // what a pull of the same records gives.
        if !problems.is_empty() {
            let mut first: HashMap<&str, usize> = HashMap::new();
            for (i, p) in places.iter().enumerate() {
                first.entry(p.record.as_ref()).or_insert(i);
            }
            problems.sort_by_key(|p| first.get(p.record.as_str()).copied().unwrap_or(usize::MAX));
        }
        Ok(CastBatch { tables, problems })
    }

    fn event_facts(&self, table: &TableLayout, event: &str) -> EventFacts {
        let model = &self.model;
        let in_scope = !model.longitudinal || self.events.as_ref().is_none_or(|events| events.contains(event));
        EventFacts {
            in_scope,
            designated: model.is_designated(event, &table.name),
            repeating: model.is_repeating_form(event, &table.name),
        }
    }
}

/// What a row's event says of a table: whether the pull takes the event, whether the table's
/// instrument is designated for it, and whether it repeats there.
#[derive(Clone, Copy)]
struct EventFacts {
    in_scope: bool,
    designated: bool,
    repeating: bool,
}

/// A row's repeating instrument: none, the table at a place of the layout (instrument names
/// are unique there), or another one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    None,
    Table(usize),
    Other,
}

impl EventFacts {
    /// Whether the row at `place`, whose repeating instrument is `repeat`, belongs to the
    /// layout's table `table`.
    fn takes(self, table: usize, repeat: Repeat, place: &Place) -> bool {
        if !self.in_scope {
            return false;
        }
        if repeat != Repeat::None {
            return repeat == Repeat::Table(table);
        }
        if !place.instance.is_empty() {
            // A repeating event's instance: every form of the event.
            return self.designated;
        }
        self.designated && !self.repeating
    }
}

/// Which cells say that a row holds a value of a table's instrument, resolved for one batch.
enum DataCheck<'g> {
    /// The record-id instrument keeps every row of its events.
    Always,
    /// (column, whether it is a form status, where `0` is no data; whether only `1` counts).
    Cells(Vec<(Cells<'g>, bool, bool)>),
}

impl<'g> DataCheck<'g> {
    fn new(table: &TableLayout, grid: &'g Records) -> DataCheck<'g> {
        if table.holds_id {
            return DataCheck::Always;
        }
        let at = |name: &str| grid.cells(grid.column(name));
        let mut cells = Vec::new();
        for s in &table.sources {
            match s {
                Source::Value { export, status, .. } => cells.push((at(export), *status, false)),
                Source::Checkbox { export } => cells.push((at(export), false, true)),
                Source::Missing { exports } => {
                    cells.extend(exports.iter().filter(|(_, code)| code.is_some()).map(|(e, _)| (at(e), false, true)))
                }
                Source::Key(_) | Source::Label { .. } => {}
            }
        }
        DataCheck::Cells(cells)
    }

    /// Whether row `i` holds a value of the instrument.
    fn has_data(&self, i: usize) -> bool {
        match self {
            DataCheck::Always => true,
            DataCheck::Cells(cells) => cells.iter().any(|&(column, status, checked)| {
                let v = column.get(i);
                if checked { v == "1" } else { !(v.is_empty() || status && v == "0") }
            }),
        }
    }
}

fn dictionary(keys: Int32Builder, values: Arc<arrow_array::StringArray>) -> Result<ArrayRef, Error> {
    let mut keys = keys;
    Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(keys.finish(), values)?))
}

type Report<'a> = dyn FnMut(usize, &str, &str) + 'a;

/// Builds one typed column from `(position, raw, skip)` cells (`skip`: empty or a missing-data
/// code, so null without a problem).
fn typed<'r>(
    kind: FieldKind,
    codes: Option<&Codes>,
    cells: impl Iterator<Item = (usize, Cow<'r, str>, bool)>,
    report: &mut Report<'_>,
) -> Result<ArrayRef, Error> {
    // Builders sized once: the cells are the picked rows, known up front.
    let n = cells.size_hint().0;
    macro_rules! build {
        ($builder:expr, $parse:expr) => {{
            let mut b = $builder;
            for (i, v, skip) in cells {
                if skip {
                    b.append_null();
                    continue;
                }
                match $parse(v.as_ref()) {
                    Ok(x) => b.append_value(x),
                    Err(reason) => {
                        report(i, v.as_ref(), reason);
                        b.append_null();
                    }
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match kind {
        FieldKind::Text => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for (_, v, skip) in cells {
                if skip { b.append_null() } else { b.append_value(v.as_ref()) }
            }
            Arc::new(b.finish())
        }
        FieldKind::Integer => build!(Int64Builder::with_capacity(n), parse::integer),
        FieldKind::Number { comma, .. } => build!(Float64Builder::with_capacity(n), |s| parse::number(s, comma)),
        FieldKind::Date => build!(Date32Builder::with_capacity(n), parse::date),
        FieldKind::DateTime { .. } => {
            build!(TimestampMillisecondBuilder::with_capacity(n), |s| parse::datetime(s).map(|t| t * 1000))
        }
        FieldKind::Time(form) => {
            build!(Time32MillisecondBuilder::with_capacity(n), |s| parse::time(s, form).map(|t| t * 1000))
        }
        FieldKind::Boolean => build!(BooleanBuilder::with_capacity(n), parse::boolean),
        FieldKind::Choice => {
            let codes = codes.ok_or(Error::Internal("choice column without codes"))?;
            let keys =
                build!(Int32Builder::with_capacity(n), |s: &str| codes.key(s).ok_or("not one of the field's choices"));
            let keys =
                keys.as_any().downcast_ref::<arrow_array::Int32Array>().cloned().ok_or(Error::Internal("keys"))?;
            Arc::new(DictionaryArray::<Int32Type>::try_new(keys, codes.values.clone())?)
        }
        FieldKind::Checkbox | FieldKind::Descriptive => return Err(Error::Internal("no single column for this kind")),
    })
}
