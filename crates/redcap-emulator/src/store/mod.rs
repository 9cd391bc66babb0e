//! Durable state: SQLite (projects, users, tokens, data, File Repository, logging) plus a blob
//! directory for file contents. One module per table group, each adding its part of [`Store`]'s
//! methods and the reads that work on any connection (the writer's or a [`Snapshot`]'s).

mod data;
mod files;
mod log;
mod projects;
mod users;

pub use data::{
    RecordRows, RowKey, RowScope, all_base_rows, base_rows_of, for_record_values, record_files_of, records_named,
};
pub use files::{Doc, Folder, doc};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
pub use users::MemberRow;
use users::TokenIndex;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::auth::TokenGen;
use crate::model::Project;
use crate::odm::OdmError;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A blob could not be written or read.
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
    /// Stored JSON did not decode.
    #[error("stored definition: {0}")]
    Json(#[from] serde_json::Error),
    /// Something the caller asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A project document did not parse (inside a load's transaction).
    #[error("project XML: {0}")]
    Xml(OdmError),
}

/// Why a project document could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The document is not valid project XML.
    #[error(transparent)]
    Xml(OdmError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS projects (id INTEGER PRIMARY KEY, def TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY, email TEXT NOT NULL DEFAULT '', firstname TEXT NOT NULL DEFAULT '',
    lastname TEXT NOT NULL DEFAULT '', super_token TEXT UNIQUE);
CREATE TABLE IF NOT EXISTS project_users (
    project_id INTEGER NOT NULL, username TEXT NOT NULL, token TEXT UNIQUE, rights TEXT NOT NULL,
    dag_id INTEGER, role_id INTEGER, expiration TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (project_id, username));
CREATE TABLE IF NOT EXISTS records (
    project_id INTEGER NOT NULL, record TEXT NOT NULL, dag_id INTEGER, seq INTEGER NOT NULL,
    created TEXT NOT NULL, modified TEXT NOT NULL, PRIMARY KEY (project_id, record));
CREATE TABLE IF NOT EXISTS data (
    project_id INTEGER NOT NULL, record TEXT NOT NULL, event TEXT NOT NULL, instrument TEXT NOT NULL,
    instance INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL);
DROP INDEX IF EXISTS data_record;
-- Creation order, and the next record's sequence number without a scan. It holds each record's
-- name and DAG too: a list of every record (a whole export's) reads the index alone, where a
-- look-up in the table per record was a fifth of an id list of 100,000 records.
DROP INDEX IF EXISTS records_seq;
CREATE INDEX IF NOT EXISTS records_by_seq ON records (project_id, seq, record, dag_id);
-- Records looked up by name (a batch's) with their DAG, from the index alone.
CREATE INDEX IF NOT EXISTS records_dag ON records (project_id, record, dag_id);
CREATE TABLE IF NOT EXISTS docs (
    doc_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, name TEXT NOT NULL, mime TEXT NOT NULL,
    size INTEGER NOT NULL, path TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS record_files (
    doc_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, record TEXT NOT NULL, event TEXT NOT NULL,
    instrument TEXT NOT NULL, instance INTEGER NOT NULL, field TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS record_files_record ON record_files (project_id, record);
CREATE TABLE IF NOT EXISTS fr_folders (
    folder_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, parent_id INTEGER, name TEXT NOT NULL,
    dag_id INTEGER, role_id INTEGER);
CREATE TABLE IF NOT EXISTS fr_files (
    doc_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, folder_id INTEGER, recycled TEXT);
-- A folder's listing reads its own entries, not every file and folder of the project.
CREATE INDEX IF NOT EXISTS fr_files_folder ON fr_files (project_id, folder_id);
CREATE INDEX IF NOT EXISTS fr_folders_parent ON fr_folders (project_id, parent_id);
CREATE TABLE IF NOT EXISTS sources (hash TEXT PRIMARY KEY, project_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dag_switcher (
    project_id INTEGER NOT NULL, username TEXT NOT NULL, dag_id INTEGER,
    UNIQUE (project_id, username, dag_id));
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, ts TEXT NOT NULL, username TEXT NOT NULL,
    action TEXT NOT NULL, details TEXT NOT NULL, record TEXT NOT NULL DEFAULT '', event TEXT NOT NULL DEFAULT '',
    dag_id INTEGER, kind TEXT NOT NULL);
"#;

/// A record's values by index, the value included (a covering index): an export or an import
/// reads the records it touches, each as one contiguous range, and never the project's table.
/// A large project load drops it and creates it again after its inserts (see `insert_project_xml`).
pub(super) const DATA_COVER: &str =
    "CREATE INDEX IF NOT EXISTS data_cover ON data (project_id, record, event, instrument, instance, field, value)";

/// The flat rows that hold at least one value: what an export of the record id alone (the id
/// list a batched export asks first) reads, one entry a row, instead of every value of every
/// record (a DISTINCT over ~40 index entries a record was ~30% of a 100,000-record pull's
/// emulator time). Kept by the store's own writes, once a row (not by triggers, which cost
/// every imported value two statements); bulk changes count their rows again from `data`.
pub(super) const DATA_ROWS: &str = "CREATE TABLE IF NOT EXISTS data_rows (
    project_id INTEGER NOT NULL, record TEXT NOT NULL, event TEXT NOT NULL, instrument TEXT NOT NULL,
    instance INTEGER NOT NULL, PRIMARY KEY (project_id, record, event, instrument, instance)) WITHOUT ROWID";

/// Page cache of the writing connection, KiB (SQLite's default is 2 MiB): an index of a large
/// project stays in memory while imports insert all over it.
pub(super) const CACHE_KIB: i64 = 32 * 1024;

/// A write-ahead log larger than this is cut back when the database is opened.
const WAL_KEEP_BYTES: u64 = 64 << 20;

/// The emulator's state: one writing connection (behind the server's lock) and a pool of
/// read-only connections that stream exports without holding that lock.
#[derive(Debug)]
pub struct Store {
    pub(crate) conn: Connection,
    blob_dir: PathBuf,
    cache: HashMap<i64, Arc<Project>>,
    tokens: TokenGen,
    token_index: Option<TokenIndex>,
    readers: Arc<ReaderPool>,
    /// The row last entered in `data_rows` in this transaction, and the field whose value
    /// entered it: an import writes a row's values one field after the other, and only the
    /// first needs the entry; erasing another field's value cannot leave the row empty.
    marked: Option<(i64, RowKey, String)>,
}

/// Idle read-only connections to the same database file.
#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Idle readers kept for reuse; more may be open while many exports stream at once.
const MAX_IDLE_READERS: usize = 16;

/// A read-only connection holding one read transaction: everything read through it sees the
/// database as it was when [`Store::snapshot`] was called (SQLite WAL snapshot isolation), however
/// long the caller streams and whatever the writer commits meanwhile. Back to the pool on drop.
#[derive(Debug)]
pub struct Snapshot {
    conn: Option<Connection>,
    pool: Arc<ReaderPool>,
    blob_dir: PathBuf,
}

impl Snapshot {
    /// The connection (inside its read transaction).
    pub fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("connection present until drop")
    }

    /// Where blobs live.
    pub fn blob_dir(&self) -> &Path {
        &self.blob_dir
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if conn.execute_batch("COMMIT").is_err() {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

impl Store {
    /// Opens (or creates) the database file `db` with blobs under `blob_dir`. The file is in WAL
    /// mode so that readers never block the writer nor see a half-written transaction.
    /// The database file and the blob directory hold tokens and study data: they are made
    /// readable by their owner only (0600 / 0700).
    pub fn open(db: &Path, blob_dir: PathBuf, tokens: TokenGen) -> Result<Self, StoreError> {
        private_dir(&blob_dir)?;
        private_dir(&blob_dir.join("tmp"))?;
        private_file(db)?;
        let conn = Connection::open(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(DATA_COVER)?;
        let had_rows: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'data_rows'",
            [],
            |r| r.get(0),
        )?;
        conn.execute_batch(DATA_ROWS)?;
        if !had_rows {
            // A data directory from before the table: its rows are counted once.
            data::count_rows(&conn, None, RowScope::Project)?;
        }
        conn.execute_batch(crate::survey_codes::SCHEMA)?;
        let readers = Arc::new(ReaderPool { path: db.to_owned(), idle: Mutex::new(Vec::new()) });
        let store = Store { conn, blob_dir, cache: HashMap::new(), tokens, token_index: None, readers, marked: None };
        // A log left large (a load of before, then a kill) is cut back once, here.
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_KEEP_BYTES) {
            store.shrink_log()?;
        }
        Ok(store)
    }

    /// Copies the write-ahead log into the database and cuts it to nothing, if no reader is in
    /// it (otherwise it is left for later: nothing waits). A large load writes the whole
    /// project through the log, and SQLite keeps the file at that size: a 100,000-record data
    /// directory held a 316 MiB log beside its 337 MiB database.
    pub(crate) fn shrink_log(&self) -> Result<(), StoreError> {
        // (A busy log answers a row saying so, not an error.)
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// A read transaction on its own connection, begun now. Writes committed later are not
    /// seen through it, so a streamed export is one consistent state.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let pooled = self.readers.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.readers.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                )?;
                c.set_prepared_statement_cache_capacity(32);
                c
            }
        };
        conn.execute_batch("BEGIN")?;
        // The snapshot starts at the first read, not at BEGIN: read now.
        conn.query_row("SELECT COUNT(*) FROM counters", [], |r| r.get::<_, i64>(0))?;
        Ok(Snapshot { conn: Some(conn), pool: self.readers.clone(), blob_dir: self.blob_dir.clone() })
    }

    /// Removes what a crash left in the blob directory's `tmp/` (uploads and loads in flight).
    /// Only a serving emulator calls this: `token add` opens a data directory a server may use.
    pub fn clean_tmp(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for entry in std::fs::read_dir(self.blob_dir.join("tmp"))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Where blobs live.
    pub fn blob_dir(&self) -> &Path {
        &self.blob_dir
    }

    /// Runs `f` in one transaction: all or nothing.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        // An entry made in another transaction may have been rolled back.
        self.marked = None;
        let result = f(self);
        self.marked = None;
        match result {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                // Cached definitions and tokens may have been changed inside the failed transaction.
                self.cache.clear();
                self.token_index = None;
                Err(e)
            }
        }
    }

    /// The next value of a global id sequence (events, DAGs, roles, reports …), starting at `start`.
    pub fn next_id(&mut self, name: &str, start: i64) -> Result<i64, StoreError> {
        let cur: Option<i64> =
            self.conn.query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| r.get(0)).optional()?;
        let next = cur.map(|v| v + 1).unwrap_or(start);
        self.conn.execute(
            "INSERT INTO counters (name, value) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![name, next],
        )?;
        Ok(next)
    }

    /// A new token of `hex_len` characters.
    pub fn make_token(&self, hex_len: usize) -> String {
        self.tokens.make(hex_len)
    }
}

/// Creates `dir` (and parents) and makes it 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Creates `file` if missing and makes it 0600 (SQLite gives its -wal and -shm files the
/// database file's mode).
fn private_file(file: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(file)?;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        std::fs::OpenOptions::new().create(true).append(true).open(file).map(drop)
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS` (the emulator's "server time" is UTC).
pub fn now_seconds() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    format_time(secs)
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time.
pub fn format_time(secs: i64) -> String {
    let Some(mut t) = redcap_core::DateTime::from_minutes_since_epoch(secs.div_euclid(60)) else {
        return String::new();
    };
    t.second = secs.rem_euclid(60) as u8;
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_listings_and_record_lookups_use_their_indexes() {
        let dir = std::env::temp_dir().join(format!("redcap-emu-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db.sqlite"), dir.join("blobs"), TokenGen::seeded(1)).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = store.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.collect::<Result<Vec<_>, _>>().unwrap().join("; ")
        };
        let files = plan(
            "SELECT f.doc_id, d.name FROM fr_files f JOIN docs d ON d.doc_id = f.doc_id
             WHERE f.project_id = 1 AND f.folder_id IS 2 AND f.recycled IS NULL",
        );
        assert!(files.contains("fr_files_folder"), "{files}");
        let folders = plan("SELECT folder_id FROM fr_folders WHERE project_id = 1 AND parent_id IS NULL");
        assert!(folders.contains("fr_folders_parent"), "{folders}");
        // A batch's records are found by key, many to a statement.
        let named = plan("SELECT record, dag_id FROM records WHERE project_id = 1 AND record IN ('1', '2')");
        assert!(named.contains("record=?") && named.contains("COVERING INDEX records_dag"), "{named}");
        // A list of every record reads the index alone, not the table a record at a time.
        let all = plan("SELECT record, dag_id FROM records WHERE project_id = 1 ORDER BY seq");
        assert!(all.contains("COVERING INDEX records_by_seq") && !all.contains("TEMP B-TREE"), "{all}");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `data_rows` against the rows the values have.
    fn rows_agree(store: &Store, when: &str) {
        let list = |sql: &str| -> Vec<(i64, String, String, String, i64)> {
            let mut stmt = store.conn.prepare(sql).unwrap();
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        };
        let kept = list("SELECT * FROM data_rows ORDER BY 1, 2, 3, 4, 5");
        let read =
            list("SELECT DISTINCT project_id, record, event, instrument, instance FROM data ORDER BY 1, 2, 3, 4, 5");
        assert!(!read.is_empty(), "{when}: no data to compare");
        assert_eq!(kept, read, "{when}");
    }

    #[test]
    fn the_row_list_follows_every_write_of_values() {
        let dir = std::env::temp_dir().join(format!("redcap-emu-rows-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("db.sqlite");
        let mut store = Store::open(&db, dir.join("blobs"), TokenGen::seeded(1)).unwrap();
        let fixture = |name: &str| {
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name))
                .unwrap()
        };
        // A repeating event; a longitudinal project with data in several events.
        let pid = store.insert_project_xml(&fixture("pycap-doctest_project.xml")).unwrap();
        let long = store.insert_project_xml(&fixture("redcapr-longitudinal.xml")).unwrap();
        rows_agree(&store, "after a load");
        let (record, event, instrument, instance): (String, String, String, i64) = store
            .conn
            .query_row(
                "SELECT record, event, instrument, instance FROM data_rows WHERE project_id = ?1
                 ORDER BY instrument DESC, instance DESC LIMIT 1",
                [pid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        let key = RowKey { record, event, instrument, instance };
        let fields: Vec<String> = {
            let mut stmt = store
                .conn
                .prepare(
                    "SELECT field FROM data WHERE project_id = ?1 AND record = ?2 AND event = ?3
                     AND instrument = ?4 AND instance = ?5",
                )
                .unwrap();
            let rows = stmt
                .query_map(params![pid, key.record, key.event, key.instrument, key.instance], |r| r.get(0))
                .unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        };
        // A new instance, written field by field (the entry made once), then erased field by
        // field (gone with its last value).
        let new = RowKey { instance: 77, ..key.clone() };
        store
            .transaction(|s| {
                for f in &fields {
                    s.set_values(pid, &new, f, &["x".to_owned()])?;
                }
                Ok(())
            })
            .unwrap();
        rows_agree(&store, "after an instance is written");
        store
            .transaction(|s| {
                for f in &fields[1..] {
                    s.set_values(pid, &new, f, &[])?;
                }
                Ok(())
            })
            .unwrap();
        rows_agree(&store, "after all but one value of the instance are erased");
        store.transaction(|s| s.set_values(pid, &new, &fields[0], &[])).unwrap();
        rows_agree(&store, "after the instance's last value is erased");
        // Written, erased and written again in one transaction: the entry is made again.
        store
            .transaction(|s| {
                s.set_values(pid, &new, &fields[0], &["w".to_owned()])?;
                s.set_values(pid, &new, &fields[0], &[])?;
                s.set_values(pid, &new, &fields[0], &["v".to_owned()])
            })
            .unwrap();
        rows_agree(&store, "after an instance is erased and written again");
        // Two values written, the one that entered the row erased first, then the other.
        store
            .transaction(|s| {
                s.set_values(pid, &new, &fields[0], &["a".to_owned()])?;
                s.set_values(pid, &new, &fields[1], &["b".to_owned()])?;
                s.set_values(pid, &new, &fields[0], &[])?;
                s.set_values(pid, &new, &fields[1], &[])
            })
            .unwrap();
        rows_agree(&store, "after both values of a row written in one transaction are erased");
        // A write rolled back leaves no entry, and the next write still makes its own.
        let failed: Result<(), StoreError> = store.transaction(|s| {
            s.set_values(pid, &new, &fields[0], &["y".to_owned()])?;
            Err(StoreError::NotFound("rolled back".into()))
        });
        assert!(failed.is_err());
        rows_agree(&store, "after a rolled-back write");
        store.transaction(|s| s.set_values(pid, &new, &fields[0], &["z".to_owned()])).unwrap();
        rows_agree(&store, "after a write following a rollback");
        let first: String = store
            .conn
            .query_row("SELECT event FROM data_rows WHERE project_id = ?1 LIMIT 1", [long], |r| r.get(0))
            .unwrap();
        store.transaction(|s| s.delete_event_data(long, &[first])).unwrap();
        rows_agree(&store, "after an event's data is deleted");
        let other: String =
            store.conn.query_row("SELECT record FROM data_rows WHERE project_id = ?1", [long], |r| r.get(0)).unwrap();
        store.transaction(|s| s.delete_record(long, &other)).unwrap();
        rows_agree(&store, "after a record is deleted");
        // A data directory from before the table: its rows are counted when it opens.
        store.conn.execute_batch("DROP TABLE data_rows").unwrap();
        drop(store);
        let store = Store::open(&db, dir.join("blobs"), TokenGen::seeded(1)).unwrap();
        rows_agree(&store, "after a migration");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn time_format() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13:20");
    }
}
