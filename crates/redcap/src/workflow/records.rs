//! Batched record export and import.
//!
//! Export follows REDCapR's approach: first the record ids (only the id field), then the
//! records in batches by id, so the rows of one record (events, repeat instances) never span
//! two batches. REDCap can answer 200 with rows missing, so every requested id is checked.
//! Import sends batches of whole records and checks each batch's count against the records
//! sent (REDCap counts distinct records, not rows).

use std::collections::BTreeSet;

use redcap_core::Row;
use serde_json::Value;

/// Record ids split into batches.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordBatches {
    /// The batches, in the server's record order.
    pub batches: Vec<Vec<String>>,
}

impl RecordBatches {
    /// Distinct ids from the id-only export `rows` (first occurrence order), in batches of
    /// `batch_size` records.
    pub fn from_id_rows(rows: &[Row], id_field: &str, batch_size: usize) -> Self {
        let mut seen = BTreeSet::new();
        let ids: Vec<String> =
            rows.iter().filter_map(|r| cell(r, id_field)).filter(|id| seen.insert(id.clone())).collect();
        Self::from_ids(ids, batch_size)
    }

    /// `ids` in batches of `batch_size`.
    pub fn from_ids(ids: Vec<String>, batch_size: usize) -> Self {
        let size = batch_size.max(1);
        RecordBatches { batches: ids.chunks(size).map(<[String]>::to_vec).collect() }
    }

    /// Number of records.
    pub fn records(&self) -> usize {
        self.batches.iter().map(Vec::len).sum()
    }
}

/// A value of a row as text (ids come as strings, numbers in some JSON).
pub fn cell(row: &Row, field: &str) -> Option<String> {
    match row.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The completeness check of one exported batch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportCheck {
    /// Requested ids with no row in the answer.
    pub missing: Vec<String>,
}

impl ExportCheck {
    /// Which of `requested` have no row in `rows`.
    pub fn new(requested: &[String], rows: &[Row], id_field: &str) -> Self {
        let got: BTreeSet<String> = rows.iter().filter_map(|r| cell(r, id_field)).collect();
        ExportCheck { missing: requested.iter().filter(|id| !got.contains(*id)).cloned().collect() }
    }

    /// Whether everything came back.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Import rows in batches of whole records.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BatchPlan {
    /// The batches: rows, and the number of distinct records in them.
    pub batches: Vec<(Vec<Row>, u64)>,
}

impl BatchPlan {
    /// Groups `rows` by `id_field` (keeping each record's rows together and in order) into
    /// batches of at most `batch_size` records. Rows without an id go in a batch of their own
    /// (REDCap will reject them with a clear message).
    pub fn new(rows: Vec<Row>, id_field: &str, batch_size: usize) -> Self {
        let size = batch_size.max(1);
        let mut order: Vec<String> = Vec::new();
        let mut groups: std::collections::HashMap<String, Vec<Row>> = std::collections::HashMap::new();
        let mut orphans = Vec::new();
        for row in rows {
            match cell(&row, id_field) {
                Some(id) => {
                    if !groups.contains_key(&id) {
                        order.push(id.clone());
                    }
                    groups.entry(id).or_default().push(row);
                }
                None => orphans.push(row),
            }
        }
        let mut batches = Vec::new();
        for chunk in order.chunks(size) {
            let rows = chunk.iter().flat_map(|id| groups.remove(id).unwrap_or_default()).collect();
            batches.push((rows, chunk.len() as u64));
        }
        if !orphans.is_empty() {
            batches.push((orphans, 0));
        }
        BatchPlan { batches }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(json: &str) -> Vec<Row> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn ids_are_distinct_in_order_and_batched() {
        let r = rows(r#"[{"id":"2"},{"id":"2"},{"id":"1"},{"id":3},{"id":""}]"#);
        let b = RecordBatches::from_id_rows(&r, "id", 2);
        assert_eq!(b.batches, [vec!["2".to_string(), "1".into()], vec!["3".into()]]);
        assert_eq!(b.records(), 3);
    }

    #[test]
    fn missing_records_are_named() {
        let r = rows(r#"[{"id":"1","x":"a"},{"id":"1","x":"b"}]"#);
        let check = ExportCheck::new(&["1".into(), "2".into()], &r, "id");
        assert_eq!(check.missing, ["2"]);
        assert!(!check.is_complete());
    }

    #[test]
    fn import_batches_keep_records_whole() {
        let r = rows(r#"[{"id":"1","e":"a"},{"id":"2","e":"a"},{"id":"1","e":"b"},{"id":"3","e":"a"}]"#);
        let plan = BatchPlan::new(r, "id", 2);
        assert_eq!(plan.batches.len(), 2);
        assert_eq!(plan.batches[0].1, 2);
        assert_eq!(plan.batches[0].0.len(), 3, "both rows of record 1 travel together");
        assert_eq!(plan.batches[1].1, 1);
    }
}
