//! What an import would change: the rows to import against the rows REDCap exports for the
//! same records, cell by cell. Pure: the caller exports the stored rows (only the records and
//! fields of the import) and this compares them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use redcap_core::Row;
use serde::Serialize;

use crate::check::Checker;
use crate::names;
use crate::schema::text;

/// The repeating-instrument column.
const REPEAT_INSTRUMENT: &str = "redcap_repeat_instrument";

/// How a cell changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeKind {
    /// A value where there was none.
    Added,
    /// A different value.
    Changed,
    /// The stored value erased (a blank cell of an `overwrite` import).
    Blanked,
}

/// One cell an import would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Change {
    /// The import's row, from 1.
    pub row: usize,
    /// The record.
    pub record: String,
    /// The event (longitudinal projects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The repeating instrument.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_instrument: Option<String>,
    /// The repeat instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_instance: Option<String>,
    /// The column (checkbox options as `<field>___<code>`).
    pub field: String,
    /// What REDCap holds now ("" for nothing).
    pub old: String,
    /// What it would hold.
    pub new: String,
    /// Added, changed or blanked.
    pub kind: ChangeKind,
}

/// The changes of an import.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Diff {
    /// Every changed cell, in the import's row order.
    pub changes: Vec<Change>,
    /// The import reduced to what changes: each row with a change keeps its key columns
    /// (record id, event, repeat instrument and instance) and its changed cells.
    pub changed_rows: Vec<Row>,
    /// Rows of records REDCap does not have yet.
    pub new_records: usize,
}

/// Where a row sits: record, event, repeating instrument, instance.
type Key = (String, String, String, String);

fn key(row: &Row, id_field: &str) -> Key {
    let cell = |k: &str| row.get(k).map(text).map(|s| s.trim().to_owned()).unwrap_or_default();
    (cell(id_field), cell(names::EVENT), cell(REPEAT_INSTRUMENT), cell(names::INSTANCE))
}

/// Compares the rows to import (`import`, flat) with what REDCap holds (`stored`, a flat raw
/// export of the same records and fields). With `overwrite`, blank cells erase stored values.
/// Columns the checker does not know are not compared (the check reports them).
pub fn diff(checker: &Checker, import: &[Row], stored: &[Row], overwrite: bool) -> Diff {
    let id_field = checker.id_field();
    let by_key: HashMap<Key, &Row> = stored.iter().map(|r| (key(r, id_field), r)).collect();
    let known_records: HashSet<String> = stored.iter().filter_map(|r| r.get(id_field).map(text)).collect();
    let mut out = Diff::default();
    let mut new_records = BTreeSet::new();
    for (i, row) in import.iter().enumerate() {
        let k = key(row, id_field);
        let (record, event, instrument, instance) = &k;
        if !known_records.contains(record.as_str()) {
            new_records.insert(record.clone());
        }
        // `new` numbers a new instance: nothing is stored there yet.
        let old_row = if instance == "new" { None } else { by_key.get(&k).copied() };
        let mut changed = BTreeMap::new();
        for (column, value) in row {
            let comparable = checker.field_of(column).is_some()
                || checker.status_of(column).is_some()
                || column == names::DAG && !text(value).trim().is_empty();
            if !comparable {
                continue;
            }
            let Some(new) = checker.stored(column, &text(value), overwrite) else { continue };
            let old = old_row.and_then(|r| r.get(column)).map(text).unwrap_or_default();
            let unset = |s: &str| s.is_empty() || checker.field_of(column) != Some(column) && s == "0";
            let kind = if new == old.trim() || unset(&new) && unset(old.trim()) {
                continue;
            } else if new.is_empty() {
                ChangeKind::Blanked
            } else if unset(old.trim()) {
                ChangeKind::Added
            } else {
                ChangeKind::Changed
            };
            changed.insert(column.clone(), value.clone());
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            out.changes.push(Change {
                row: i + 1,
                record: record.clone(),
                event: opt(event),
                repeat_instrument: opt(instrument),
                repeat_instance: opt(instance),
                field: column.clone(),
                old,
                new,
                kind,
            });
        }
        if !changed.is_empty() {
            let mut slim = Row::new();
            for k in [id_field, names::EVENT, REPEAT_INSTRUMENT, names::INSTANCE] {
                if let Some(v) = row.get(k) {
                    slim.insert(k.to_owned(), v.clone());
                }
            }
            slim.extend(changed);
            out.changed_rows.push(slim);
        }
    }
    out.new_records = new_records.len();
    out
}
