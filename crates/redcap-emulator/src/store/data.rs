//! Records and their values (the `records` and `data` tables).

use std::collections::HashMap;

use std::sync::{Arc, OnceLock};

use rusqlite::{Connection, Row, params};

use super::{Store, StoreError, now_seconds};

impl Store {
    /// Records of a project in creation order, with their DAG.
    pub fn records(&self, project_id: i64) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        record_list(&self.conn, project_id)
    }

    /// Records whose last change lies within [begin, end] (`YYYY-MM-DD HH:MM:SS`, inclusive;
    /// either bound optional).
    pub fn records_modified_between(
        &self,
        project_id: i64,
        begin: Option<&str>,
        end: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT record FROM records WHERE project_id = ?1 AND (?2 IS NULL OR modified >= ?2) AND (?3 IS NULL OR modified <= ?3)",
        )?;
        let rows = stmt.query_map(params![project_id, begin, end], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Creates a record if missing; returns whether it was new.
    pub fn ensure_record(&mut self, project_id: i64, record: &str, dag_id: Option<i64>) -> Result<bool, StoreError> {
        let now = now_seconds();
        let n = self
            .conn
            .prepare_cached("UPDATE records SET modified = ?3 WHERE project_id = ?1 AND record = ?2")?
            .execute(params![project_id, record, now])?;
        if n > 0 {
            return Ok(false);
        }
        // MAX over the (project_id, seq) index: one index step, not a scan.
        let seq: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), -1) + 1 FROM records WHERE project_id = ?1")?
            .query_row([project_id], |r| r.get(0))?;
        self.conn
            .prepare_cached(
                "INSERT INTO records (project_id, record, dag_id, seq, created, modified) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![project_id, record, dag_id, seq, now])?;
        Ok(true)
    }

    /// Sets a record's DAG.
    pub fn set_record_dag(&mut self, project_id: i64, record: &str, dag_id: Option<i64>) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE records SET dag_id = ?3 WHERE project_id = ?1 AND record = ?2")?
            .execute(params![project_id, record, dag_id])?;
        Ok(())
    }

    /// Replaces the value(s) of one field in one row; an empty `values` erases it (and the
    /// row, from `data_rows`, when it was the row's last value).
    pub fn set_values(
        &mut self,
        project_id: i64,
        key: &RowKey,
        field: &str,
        values: &[String],
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "DELETE FROM data WHERE project_id = ?1 AND record = ?2 AND event = ?3 AND instrument = ?4
                 AND instance = ?5 AND field = ?6",
            )?
            .execute(params![project_id, key.record, key.event, key.instrument, key.instance, field])?;
        if values.is_empty() {
            // A row written in this transaction through another field still holds that value
            // (an import writes the record id first): no need to look.
            if self.marked.as_ref().is_some_and(|(p, k, f)| *p == project_id && k == key && f != field) {
                return Ok(());
            }
            let n = self
                .conn
                .prepare_cached(
                    "DELETE FROM data_rows WHERE project_id = ?1 AND record = ?2 AND event = ?3
                     AND instrument = ?4 AND instance = ?5 AND NOT EXISTS (SELECT 1 FROM data
                     WHERE project_id = ?1 AND record = ?2 AND event = ?3 AND instrument = ?4 AND instance = ?5)",
                )?
                .execute(params![project_id, key.record, key.event, key.instrument, key.instance])?;
            if n > 0 || self.marked.as_ref().is_some_and(|(_, k, _)| k == key) {
                self.marked = None;
            }
            return Ok(());
        }
        self.add_values(project_id, key, field, values)
    }

    /// Adds the value(s) of one field in a row that has none stored yet (a row of a record this
    /// transaction created): [`Store::set_values`] without its delete.
    pub fn add_values(
        &mut self,
        project_id: i64,
        key: &RowKey,
        field: &str,
        values: &[String],
    ) -> Result<(), StoreError> {
        let row = (key.record.as_str(), key.event.as_str(), key.instrument.as_str(), key.instance);
        insert_values(&self.conn, project_id, values.iter().map(|v| Cell { row, field, value: v }))?;
        if !values.is_empty() {
            self.mark_row(project_id, key, field)?;
        }
        Ok(())
    }

    /// Enters a row that now holds a value of `field` in `data_rows` (once: the row entered
    /// last is remembered, with that field, until the transaction ends or the value is erased).
    fn mark_row(&mut self, project_id: i64, key: &RowKey, field: &str) -> Result<(), StoreError> {
        if self.marked.as_ref().is_some_and(|(p, k, _)| *p == project_id && k == key) {
            return Ok(());
        }
        mark_rows(
            &self.conn,
            project_id,
            [(key.record.as_str(), key.event.as_str(), key.instrument.as_str(), key.instance)],
        )?;
        self.marked = Some((project_id, key.clone(), field.to_owned()));
        Ok(())
    }

    /// Counts the rows of `scope` again from the values, after a change of many values at once
    /// (a field deleted, an instrument made repeating or not, a record renamed).
    pub fn count_rows(&mut self, project_id: i64, scope: RowScope<'_>) -> Result<(), StoreError> {
        self.marked = None;
        count_rows(&self.conn, Some(project_id), scope)
    }

    /// Deletes a record and all its data.
    pub fn delete_record(&mut self, project_id: i64, record: &str) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM data WHERE project_id = ?1 AND record = ?2", params![project_id, record])?;
        self.count_rows(project_id, RowScope::Record(record))?;
        self.conn
            .execute("DELETE FROM record_files WHERE project_id = ?1 AND record = ?2", params![project_id, record])?;
        self.conn.execute("DELETE FROM records WHERE project_id = ?1 AND record = ?2", params![project_id, record])?;
        crate::survey_codes::forget_record(&self.conn, project_id, record)?;
        Ok(())
    }
}

/// Records of a project in creation order, with their DAG.
pub fn record_list(conn: &Connection, project_id: i64) -> Result<Vec<(String, Option<i64>)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT record, dag_id FROM records WHERE project_id = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([project_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Names looked up by one statement: an `IN` list of this many. One statement per name cost a
/// statement round (~10 µs) per record, a quarter of a batched export's time.
const NAMES_PER_STATEMENT: usize = 256;

/// Those of `names` that are records of the project, with their DAG, in the order of `names`.
pub fn records_named<'a>(
    conn: &Connection,
    project_id: i64,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, Option<i64>)>, StoreError> {
    let names: Vec<&str> = names.into_iter().collect();
    let mut found: HashMap<String, Option<i64>> = HashMap::with_capacity(names.len());
    for_named(conn, "SELECT record, dag_id FROM records", project_id, &names, |r| {
        found.insert(r.get(0)?, r.get(1)?);
        Ok(())
    })?;
    Ok(names.into_iter().filter_map(|n| found.get(n).map(|dag| (n.to_owned(), *dag))).collect())
}

/// Runs `select` (`SELECT … FROM <table>`, the table having `project_id` and `record`) for
/// the rows of project `project_id` whose record is one of `names`, [`NAMES_PER_STATEMENT`]
/// names a statement: `each` gets every row found.
fn for_named(
    conn: &Connection,
    select: &str,
    project_id: i64,
    names: &[&str],
    mut each: impl FnMut(&Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for chunk in names.chunks(NAMES_PER_STATEMENT) {
        let marks = (2..chunk.len() + 2).map(|i| format!("?{i}")).collect::<Vec<_>>().join(",");
        let mut stmt = conn.prepare_cached(&format!("{select} WHERE project_id = ?1 AND record IN ({marks})"))?;
        let params = std::iter::once(rusqlite::types::Value::Integer(project_id))
            .chain(chunk.iter().map(|n| rusqlite::types::Value::Text((*n).to_owned())));
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            each(r)?;
        }
    }
    Ok(())
}

/// One record's values, grouped by row (event, instrument, instance), fields in name order:
/// `each(event, instrument, instance, field, value)`. Read from the covering index alone.
pub fn for_record_values(
    conn: &Connection,
    project_id: i64,
    record: &str,
    mut each: impl FnMut(&str, &str, i64, &str, String),
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT event, instrument, instance, field, value FROM data INDEXED BY data_cover
         WHERE project_id = ?1 AND record = ?2",
    )?;
    let mut rows = stmt.query(params![project_id, record])?;
    // A row's values come together, under one event and instrument: those are read as text
    // (checked as UTF-8) only when their bytes change, not once per value.
    let (mut event, mut instrument) = (String::new(), String::new());
    while let Some(r) = rows.next()? {
        for (i, kept) in [(0, &mut event), (1, &mut instrument)] {
            // (Only text is the same: a blob of the same bytes is still refused, as before.)
            if !matches!(r.get_ref(i)?, rusqlite::types::ValueRef::Text(b) if b == kept.as_bytes()) {
                text(r, i)?.clone_into(kept);
            }
        }
        each(&event, &instrument, r.get(2)?, text(r, 3)?, r.get(4)?);
    }
    Ok(())
}

/// The record files of one record: doc id → (row, field) it belongs to.
pub fn record_files_of(
    conn: &Connection,
    project_id: i64,
    record: &str,
) -> Result<HashMap<i64, (RowKey, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT doc_id, record, event, instrument, instance, field FROM record_files
         WHERE project_id = ?1 AND record = ?2",
    )?;
    let rows = stmt
        .query_map(params![project_id, record], |r| {
            let key = RowKey { record: r.get(1)?, event: r.get(2)?, instrument: r.get(3)?, instance: r.get(4)? };
            Ok((r.get(0)?, (key, r.get(5)?)))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// A record's row keys: (event, instrument, instance) each. The event and instrument names are
/// shared by the rows that have them (a project has few): two strings a row were most of what
/// an id list of a large project allocated.
pub type RecordRows = HashMap<String, Vec<KeyRow>>;

/// One row's key less its record: (event, instrument, instance).
pub type KeyRow = (Arc<str>, Arc<str>, i64);

/// The row keys (event, instrument, instance) of `records` outside repeating instruments, from
/// `data_rows` without reading any value: what an export of the record id alone (a batched
/// export's id list) needs, as a repeating instrument's row never shows the record id (see
/// `records::row_relevant`). One statement per [`NAMES_PER_STATEMENT`] records; a record with
/// no such row is absent.
pub fn base_rows_of(conn: &Connection, project_id: i64, records: &[&str]) -> Result<RecordRows, StoreError> {
    let mut keys = RowKeys::new(records.len());
    for_named(conn, ROW_KEYS, project_id, records, |r| keys.add(r))?;
    Ok(keys.finish())
}

/// [`base_rows_of`] every record of project `project_id`, in one walk of `data_rows`: what an
/// id list of the whole project reads (a look-up per record, from the root of the index each
/// time, was two thirds of its time). `records`: about how many there are (room is made).
/// The repeating instruments' rows are passed over by SQLite: entered and then dropped by the
/// export, they were a third of the CPU of an id list of a project with one repeating form.
pub fn all_base_rows(conn: &Connection, project_id: i64, records: usize) -> Result<RecordRows, StoreError> {
    let mut keys = RowKeys::new(records);
    let mut stmt = conn.prepare_cached(&format!("{ROW_KEYS} WHERE project_id = ?1 AND instrument = ''"))?;
    let mut rows = stmt.query(params![project_id])?;
    while let Some(r) = rows.next()? {
        keys.add(r)?;
    }
    Ok(keys.finish())
}

const ROW_KEYS: &str = "SELECT record, event, instrument, instance FROM data_rows";

/// [`RecordRows`] being gathered from rows of [`ROW_KEYS`].
struct RowKeys {
    found: RecordRows,
    /// The record whose rows are coming (a record's rows come one after another: it is
    /// entered once they end, with one hash instead of one a row).
    current: Option<(String, Vec<KeyRow>)>,
    names: HashMap<Box<str>, Arc<str>>,
    /// The last event and instrument names (most rows share them with the row before).
    last: [Option<Arc<str>>; 2],
}

impl RowKeys {
    fn new(records: usize) -> RowKeys {
        RowKeys { found: HashMap::with_capacity(records), current: None, names: HashMap::new(), last: [None, None] }
    }

    fn add(&mut self, r: &Row<'_>) -> Result<(), StoreError> {
        if !text(r, 2)?.is_empty() {
            return Ok(());
        }
        let (event, instrument) = (self.name(0, text(r, 1)?), self.name(1, ""));
        let row = (event, instrument, r.get(3)?);
        let record = text(r, 0)?;
        match &mut self.current {
            Some((name, rows)) if name == record => rows.push(row),
            current => {
                if let Some((name, rows)) = current.replace((record.to_owned(), vec![row])) {
                    self.found.entry(name).or_default().extend(rows);
                }
            }
        }
        Ok(())
    }

    /// The shared name `text` (`slot`: 0 an event, 1 an instrument).
    fn name(&mut self, slot: usize, text: &str) -> Arc<str> {
        if let Some(last) = self.last[slot].as_ref().filter(|l| l.as_ref() == text) {
            return last.clone();
        }
        let shared = match self.names.get(text) {
            Some(n) => n.clone(),
            None => {
                let n: Arc<str> = Arc::from(text);
                self.names.insert(text.into(), n.clone());
                n
            }
        };
        self.last[slot] = Some(shared.clone());
        shared
    }

    fn finish(mut self) -> RecordRows {
        if let Some((name, rows)) = self.current.take() {
            self.found.entry(name).or_default().extend(rows);
        }
        self.found
    }
}

/// The rows a bulk change asks to count again.
#[derive(Clone, Copy, Debug)]
pub enum RowScope<'a> {
    /// Every row of the project (of every project, at a migration).
    Project,
    /// The rows of one event.
    Event(&'a str),
    /// The rows of one record.
    Record(&'a str),
}

/// Enters rows that hold values in `data_rows` (already there: nothing happens).
pub(super) fn mark_rows<'a>(
    conn: &Connection,
    project_id: i64,
    rows: impl IntoIterator<Item = (&'a str, &'a str, &'a str, i64)>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached("INSERT OR IGNORE INTO data_rows VALUES (?1, ?2, ?3, ?4, ?5)")?;
    for (record, event, instrument, instance) in rows {
        stmt.execute(params![project_id, record, event, instrument, instance])?;
    }
    Ok(())
}

/// Replaces the `data_rows` entries of `scope` (of project `project_id`, or of every project)
/// with the rows its values have.
pub(super) fn count_rows(conn: &Connection, project_id: Option<i64>, scope: RowScope<'_>) -> Result<(), StoreError> {
    let mut params: Vec<rusqlite::types::Value> = Vec::new();
    let mut filter = vec!["1"];
    if let Some(p) = project_id {
        params.push(p.into());
        filter.push("project_id = ?1");
    }
    let at = params.len() + 1;
    let one = match scope {
        RowScope::Project => None,
        RowScope::Event(e) => Some(("event", e)),
        RowScope::Record(r) => Some(("record", r)),
    };
    let condition;
    if let Some((column, value)) = one {
        params.push(rusqlite::types::Value::Text(value.to_owned()));
        condition = format!("{column} = ?{at}");
        filter.push(&condition);
    }
    let filter = filter.join(" AND ");
    conn.execute(&format!("DELETE FROM data_rows WHERE {filter}"), rusqlite::params_from_iter(&params))?;
    conn.execute(
        &format!(
            "INSERT OR IGNORE INTO data_rows SELECT DISTINCT project_id, record, event, instrument, instance
             FROM data WHERE {filter}"
        ),
        rusqlite::params_from_iter(&params),
    )?;
    Ok(())
}

/// Identifies one flat row: record, event, repeating instrument (or empty) and instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub record: String,
    pub event: String,
    pub instrument: String,
    pub instance: i64,
}

/// Column `i` of a row as borrowed text.
fn text<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    r.get_ref(i)?
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

/// One value to store: its row (record, event, repeating instrument or empty, instance), field
/// and value.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cell<'a> {
    pub row: (&'a str, &'a str, &'a str, i64),
    pub field: &'a str,
    pub value: &'a str,
}

/// Values written by one statement in a bulk insert (7 parameters each, far below SQLite's limit):
/// a project load writes millions, and a statement per value costs more than the value.
const PER_STATEMENT: usize = 64;

const INSERT_ONE: &str = "INSERT INTO data (project_id, record, event, instrument, instance, field, value)
     VALUES (?, ?, ?, ?, ?, ?, ?)";

/// The one place values are written: [`PER_STATEMENT`] values per execution, the rest one by one
/// (both statements stay prepared in the connection's cache).
pub(super) fn insert_values<'a>(
    conn: &Connection,
    project_id: i64,
    cells: impl IntoIterator<Item = Cell<'a>>,
) -> Result<(), StoreError> {
    static INSERT_MANY: OnceLock<String> = OnceLock::new();
    let many = INSERT_MANY.get_or_init(|| {
        let tuples = vec!["(?, ?, ?, ?, ?, ?, ?)"; PER_STATEMENT].join(", ");
        format!("INSERT INTO data (project_id, record, event, instrument, instance, field, value) VALUES {tuples}")
    });
    let mut batch: Vec<Cell<'a>> = Vec::with_capacity(PER_STATEMENT);
    let mut cells = cells.into_iter();
    // Taken from the cache once, not per execution: each return to the cache cleared all of
    // its bindings.
    let mut stmt = None;
    loop {
        batch.clear();
        batch.extend(cells.by_ref().take(PER_STATEMENT));
        if batch.len() < PER_STATEMENT {
            break;
        }
        let stmt = match &mut stmt {
            Some(s) => s,
            None => stmt.insert(conn.prepare_cached(many)?),
        };
        for (i, c) in batch.iter().enumerate() {
            bind(stmt, i * 7, project_id, c)?;
        }
        stmt.raw_execute()?;
    }
    drop(stmt);
    let mut stmt = conn.prepare_cached(INSERT_ONE)?;
    for c in &batch {
        bind(&mut stmt, 0, project_id, c)?;
        stmt.raw_execute()?;
    }
    Ok(())
}

/// Binds one value's 7 parameters after the first `at`.
fn bind(stmt: &mut rusqlite::CachedStatement<'_>, at: usize, project_id: i64, c: &Cell<'_>) -> rusqlite::Result<()> {
    let (record, event, instrument, instance) = c.row;
    stmt.raw_bind_parameter(at + 1, project_id)?;
    stmt.raw_bind_parameter(at + 2, record)?;
    stmt.raw_bind_parameter(at + 3, event)?;
    stmt.raw_bind_parameter(at + 4, instrument)?;
    stmt.raw_bind_parameter(at + 5, instance)?;
    stmt.raw_bind_parameter(at + 6, c.field)?;
    stmt.raw_bind_parameter(at + 7, c.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_values_come_with_their_row_and_a_key_that_is_not_text_is_refused() {
        let dir = std::env::temp_dir().join(format!("redcap-emu-values-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db.sqlite"), dir.join("blobs"), crate::auth::TokenGen::seeded(1)).unwrap();
        let insert = "INSERT INTO data (project_id, record, event, instrument, instance, field, value)
                      VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)";
        for (record, event, instrument, instance, field, value) in [
            ("1", "e1", "", 1, "a", "x"),
            ("1", "e1", "", 1, "b", "y"),
            ("1", "e1", "rep", 2, "c", "z"),
            ("1", "e2", "", 1, "a", "w"),
        ] {
            store.conn.execute(insert, params![record, event, instrument, instance, field, value]).unwrap();
        }
        let values = |record: &str| {
            let mut got = Vec::new();
            for_record_values(&store.conn, 1, record, |e, i, n, f, v| got.push(format!("{e}|{i}|{n}|{f}|{v}")))
                .map(|()| got)
        };
        assert_eq!(values("1").unwrap(), ["e1||1|a|x", "e1||1|b|y", "e1|rep|2|c|z", "e2||1|a|w"]);
        // An event stored as a blob with the bytes of the event before it is no event.
        store
            .conn
            .execute(
                "INSERT INTO data (project_id, record, event, instrument, instance, field, value)
                 VALUES (1, '2', 'e1', '', 1, 'a', 'x'), (1, '2', CAST('e1' AS BLOB), '', 1, 'b', 'y')",
                [],
            )
            .unwrap();
        assert!(values("2").is_err());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
