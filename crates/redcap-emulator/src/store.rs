//! Durable state: SQLite (projects, users, tokens, data, File Repository, logging) plus a blob
//! directory for file contents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::auth::{Caller, ProjectUser, Rights, TokenGen};
use crate::model::{Project, ProjectDef};
use crate::odm::{ClinicalPart, LoadedProject, OdmError, Streamed};

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
-- A record's values by index, the value included (a covering index): an export or an import
-- reads the records it touches, each as one contiguous range, and never the project's table.
CREATE INDEX IF NOT EXISTS data_cover ON data (project_id, record, event, instrument, instance, field, value);
DROP INDEX IF EXISTS data_record;
-- Creation order, and the next record's sequence number without a scan.
CREATE INDEX IF NOT EXISTS records_seq ON records (project_id, seq);
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
CREATE TABLE IF NOT EXISTS sources (hash TEXT PRIMARY KEY, project_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dag_switcher (
    project_id INTEGER NOT NULL, username TEXT NOT NULL, dag_id INTEGER,
    UNIQUE (project_id, username, dag_id));
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, ts TEXT NOT NULL, username TEXT NOT NULL,
    action TEXT NOT NULL, details TEXT NOT NULL, record TEXT NOT NULL DEFAULT '', event TEXT NOT NULL DEFAULT '',
    dag_id INTEGER, kind TEXT NOT NULL);
"#;

/// A stored file.
#[derive(Clone, Debug)]
pub struct Doc {
    pub doc_id: i64,
    pub project_id: i64,
    pub name: String,
    pub mime: String,
    pub size: u64,
    pub path: PathBuf,
}

/// A File Repository folder.
#[derive(Clone, Debug)]
pub struct Folder {
    pub folder_id: i64,
    pub project_id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub dag_id: Option<i64>,
    pub role_id: Option<i64>,
}

/// A logged event.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub ts: String,
    pub username: String,
    pub action: String,
    pub details: String,
    pub record: String,
    pub kind: String,
    pub dag_id: Option<i64>,
}

/// Who a token belongs to, before rights are read.
#[derive(Clone, Debug)]
enum TokenOwner {
    Super(String),
    Member(i64, String),
}

/// Every live token, found by a randomly keyed hash of it (std's SipHash with a per-process
/// key) and confirmed by a constant-time compare: no step compares the caller's token with a
/// stored one byte by byte with an early exit, so response times tell nothing about a near miss
/// (an SQL `WHERE token = ?`, or a map keyed by the token itself, would).
#[derive(Debug)]
struct TokenIndex {
    key: std::collections::hash_map::RandomState,
    owners: HashMap<u64, Vec<(String, TokenOwner)>>,
    /// SQLite's `data_version` when loaded: another process (`token add`) changes it.
    data_version: i64,
}

impl TokenIndex {
    fn new(tokens: Vec<(String, TokenOwner)>, data_version: i64) -> Self {
        use std::hash::BuildHasher;
        let key = std::collections::hash_map::RandomState::new();
        let mut owners: HashMap<u64, Vec<(String, TokenOwner)>> = HashMap::new();
        for (token, owner) in tokens {
            owners.entry(key.hash_one(token.as_bytes())).or_default().push((token, owner));
        }
        TokenIndex { key, owners, data_version }
    }

    fn owner(&self, token: &str) -> Option<&TokenOwner> {
        use std::hash::BuildHasher;
        let bucket = self.owners.get(&self.key.hash_one(token.as_bytes()))?;
        bucket.iter().find(|(stored, _)| constant_time_eq(stored.as_bytes(), token.as_bytes())).map(|(_, o)| o)
    }
}

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
        // 32 MiB of page cache (SQLite's default is 2 MiB): an index of a large project stays
        // in memory while imports insert all over it.
        conn.pragma_update(None, "cache_size", -32768)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::survey_codes::SCHEMA)?;
        let readers = Arc::new(ReaderPool { path: db.to_owned(), idle: Mutex::new(Vec::new()) });
        Ok(Store { conn, blob_dir, cache: HashMap::new(), tokens, token_index: None, readers })
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
        match f(self) {
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

    // ---------------------------------------------------------------- projects

    /// Stores a loaded project (definition, data, files) and returns its id.
    pub fn insert_project(&mut self, mut loaded: LoadedProject) -> Result<i64, StoreError> {
        self.transaction(|s| {
            let id = s.insert_def(&mut loaded)?;
            let part = ClinicalPart {
                values: std::mem::take(&mut loaded.values),
                files: std::mem::take(&mut loaded.files),
                record_dags: std::mem::take(&mut loaded.record_dags),
                records: std::mem::take(&mut loaded.records),
            };
            let mut seq = 0;
            s.insert_part(id, &loaded.def, part, &mut seq)?;
            Ok(id)
        })
    }

    /// Stores a project from its XML document in one transaction, reading the document's data
    /// one record at a time (the data is never held whole), and returns its id.
    pub fn insert_project_xml(&mut self, xml: &str) -> Result<i64, LoadError> {
        let mut failed: Option<StoreError> = None;
        let result = self.transaction(|s| {
            let mut id = 0;
            let mut seq = 0;
            let parsed = crate::odm::parse_streamed(xml, &mut |piece| {
                let stored = match piece {
                    Streamed::Definition(loaded) => s.insert_def(loaded).map(|new| id = new),
                    Streamed::Data(def, part) => s.insert_part(id, def, part, &mut seq),
                };
                stored.map_err(|e| {
                    let msg = e.to_string();
                    failed = Some(e);
                    OdmError(msg)
                })
            });
            match parsed {
                Ok(_) => Ok(Ok(id)),
                // A bad document rolls everything back too.
                Err(e) => match failed.take() {
                    Some(store) => Err(store),
                    None => Err(StoreError::Xml(e)),
                },
            }
        });
        match result {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(e)) => Err(LoadError::Xml(e)),
            Err(StoreError::Xml(e)) => Err(LoadError::Xml(e)),
            Err(e) => Err(LoadError::Store(e)),
        }
    }

    /// Assigns the ids of a new project and its events, DAGs, roles and reports, and stores its
    /// definition.
    fn insert_def(&mut self, loaded: &mut LoadedProject) -> Result<i64, StoreError> {
        let id = self.next_id("project", 1)?;
        let def = &mut loaded.def;
        def.id = id;
        if def.info.creation_time.is_empty() {
            def.info.creation_time = now_seconds();
        }
        for e in &mut def.events {
            e.id = self.next_id("event", 40)?;
        }
        for d in &mut def.dags {
            d.id = self.next_id("dag", 1)?;
        }
        for r in &mut def.roles {
            r.id = self.next_id("role", 1)?;
        }
        for r in &mut def.reports {
            r.id = self.next_id("report", 1)?;
        }
        self.conn
            .execute("INSERT INTO projects (id, def) VALUES (?1, ?2)", params![id, serde_json::to_string(&*def)?])?;
        Ok(id)
    }

    /// Stores some records' data of project `id`; `seq` numbers new records in document order.
    fn insert_part(&mut self, id: i64, def: &ProjectDef, part: ClinicalPart, seq: &mut i64) -> Result<(), StoreError> {
        let now = now_seconds();
        let dag_of: HashMap<&str, i64> = part
            .record_dags
            .iter()
            .filter_map(|(r, u)| def.dags.iter().find(|d| &d.unique == u).map(|d| (r.as_str(), d.id)))
            .collect();
        {
            let mut stmt = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO records (project_id, record, dag_id, seq, created, modified)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?;
            for record in &part.records {
                if stmt.execute(params![id, record, dag_of.get(record.as_str()), *seq, now])? > 0 {
                    *seq += 1;
                }
            }
        }
        {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO data (project_id, record, event, instrument, instance, field, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for v in &part.values {
                stmt.execute(params![id, v.record, v.event, v.instrument, v.instance, v.field, v.value])?;
            }
        }
        for f in &part.files {
            let doc = self.put_blob(id, &f.name, &f.mime, &f.bytes)?;
            let key = RowKey {
                record: f.record.clone(),
                event: f.event.clone(),
                instrument: f.instrument.clone(),
                instance: f.instance,
            };
            self.bind_record_file(id, &key, &f.field, doc)?;
            self.conn
                .prepare_cached(
                    "INSERT INTO data (project_id, record, event, instrument, instance, field, value)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![id, f.record, f.event, f.instrument, f.instance, f.field, doc.to_string()])?;
        }
        Ok(())
    }

    /// A project by id, from the cache.
    pub fn project(&mut self, id: i64) -> Result<Option<Arc<Project>>, StoreError> {
        if let Some(p) = self.cache.get(&id) {
            return Ok(Some(p.clone()));
        }
        let json: Option<String> = self
            .conn
            .query_row("SELECT def FROM projects WHERE id = ?1 AND deleted = 0", [id], |r| r.get(0))
            .optional()?;
        let Some(json) = json else { return Ok(None) };
        let def: ProjectDef = serde_json::from_str(&json)?;
        let p = Arc::new(Project::new(def));
        self.cache.insert(id, p.clone());
        Ok(Some(p))
    }

    /// Replaces a project's definition (metadata, events, DAGs, roles …) and refreshes the cache.
    pub fn save_def(&mut self, def: ProjectDef) -> Result<Arc<Project>, StoreError> {
        self.conn
            .execute("UPDATE projects SET def = ?2 WHERE id = ?1", params![def.id, serde_json::to_string(&def)?])?;
        let p = Arc::new(Project::new(def));
        self.cache.insert(p.id(), p.clone());
        Ok(p)
    }

    /// Deletes the values of the given events, then records left without any value.
    pub fn delete_event_data(&mut self, project_id: i64, events: &[String]) -> Result<(), StoreError> {
        for e in events {
            self.conn.execute("DELETE FROM data WHERE project_id = ?1 AND event = ?2", params![project_id, e])?;
        }
        self.conn.execute(
            "DELETE FROM records WHERE project_id = ?1
             AND record NOT IN (SELECT DISTINCT record FROM data WHERE project_id = ?1)",
            [project_id],
        )?;
        Ok(())
    }

    /// The project loaded from XML with this content hash, if any.
    pub fn project_for_source(&self, hash: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row("SELECT project_id FROM sources WHERE hash = ?1", [hash], |r| r.get(0)).optional()?)
    }

    /// Remembers which project an XML document became.
    pub fn remember_source(&mut self, hash: &str, project_id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("INSERT OR REPLACE INTO sources (hash, project_id) VALUES (?1, ?2)", params![hash, project_id])?;
        Ok(())
    }

    /// Ids of all projects.
    pub fn project_ids(&self) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT id FROM projects WHERE deleted = 0 ORDER BY id")?;
        let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(ids)
    }

    // ---------------------------------------------------------------- users and tokens

    /// Creates the user if new.
    pub fn ensure_user(&mut self, username: &str) -> Result<(), StoreError> {
        self.conn.execute("INSERT OR IGNORE INTO users (username) VALUES (?1)", [username])?;
        Ok(())
    }

    /// Adds `username` to a project (or updates rights, DAG and role) and returns their token,
    /// creating one if they had none.
    pub fn set_project_user(
        &mut self,
        project_id: i64,
        username: &str,
        rights: &Rights,
        dag_id: Option<i64>,
        role_id: Option<i64>,
    ) -> Result<String, StoreError> {
        self.ensure_user(username)?;
        let existing: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT token FROM project_users WHERE project_id = ?1 AND username = ?2",
                params![project_id, username],
                |r| r.get(0),
            )
            .optional()?;
        let rights_json = serde_json::to_string(rights)?;
        self.token_index = None;
        let token = match existing {
            Some(Some(t)) => {
                self.conn.execute(
                    "UPDATE project_users SET rights = ?3, dag_id = ?4, role_id = ?5
                     WHERE project_id = ?1 AND username = ?2",
                    params![project_id, username, rights_json, dag_id, role_id],
                )?;
                t
            }
            _ => {
                let t = self.make_token(32);
                self.conn.execute(
                    "INSERT OR REPLACE INTO project_users (project_id, username, token, rights, dag_id, role_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![project_id, username, t, rights_json, dag_id, role_id],
                )?;
                t
            }
        };
        Ok(token)
    }

    /// Adds or updates a member without giving a new member a token (REDCap creates tokens only
    /// on request). Returns whether the member is new.
    pub fn set_member(
        &mut self,
        project_id: i64,
        username: &str,
        rights: &Rights,
        dag_id: Option<i64>,
        role_id: Option<i64>,
        expiration: &str,
    ) -> Result<bool, StoreError> {
        self.ensure_user(username)?;
        let rights_json = serde_json::to_string(rights)?;
        let n = self.conn.execute(
            "UPDATE project_users SET rights = ?3, dag_id = ?4, role_id = ?5, expiration = ?6
             WHERE project_id = ?1 AND username = ?2",
            params![project_id, username, rights_json, dag_id, role_id, expiration],
        )?;
        if n == 0 {
            self.conn.execute(
                "INSERT INTO project_users (project_id, username, token, rights, dag_id, role_id, expiration)
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6)",
                params![project_id, username, rights_json, dag_id, role_id, expiration],
            )?;
        }
        Ok(n == 0)
    }

    /// Updates a user's e-mail and names (instance-wide, as in REDCap).
    pub fn set_user_profile(&mut self, username: &str, email: &str, first: &str, last: &str) -> Result<(), StoreError> {
        self.ensure_user(username)?;
        self.conn.execute(
            "UPDATE users SET email = ?2, firstname = ?3, lastname = ?4 WHERE username = ?1",
            params![username, email, first, last],
        )?;
        Ok(())
    }

    /// Removes a member (and their token and DAG-switcher entries) from a project.
    pub fn remove_member(&mut self, project_id: i64, username: &str) -> Result<(), StoreError> {
        self.token_index = None;
        self.conn.execute(
            "DELETE FROM project_users WHERE project_id = ?1 AND username = ?2",
            params![project_id, username],
        )?;
        self.conn.execute(
            "DELETE FROM dag_switcher WHERE project_id = ?1 AND username = ?2",
            params![project_id, username],
        )?;
        Ok(())
    }

    /// Sets a member's DAG.
    pub fn set_member_dag(&mut self, project_id: i64, username: &str, dag_id: Option<i64>) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE project_users SET dag_id = ?3 WHERE project_id = ?1 AND username = ?2",
            params![project_id, username, dag_id],
        )?;
        Ok(())
    }

    /// Sets a member's role.
    pub fn set_member_role(&mut self, project_id: i64, username: &str, role_id: Option<i64>) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE project_users SET role_id = ?3 WHERE project_id = ?1 AND username = ?2",
            params![project_id, username, role_id],
        )?;
        Ok(())
    }

    /// Takes a deleted DAG off records, members, File Repository folders and the DAG switcher.
    pub fn forget_dag(&mut self, project_id: i64, dag_id: i64) -> Result<(), StoreError> {
        for table in ["records", "project_users", "fr_folders"] {
            self.conn.execute(
                &format!("UPDATE {table} SET dag_id = NULL WHERE project_id = ?1 AND dag_id = ?2"),
                params![project_id, dag_id],
            )?;
        }
        self.conn
            .execute("DELETE FROM dag_switcher WHERE project_id = ?1 AND dag_id = ?2", params![project_id, dag_id])?;
        Ok(())
    }

    /// Takes a deleted role off members (who keep its rights as their own) and folders.
    pub fn forget_role(&mut self, project_id: i64, role_id: i64, rights: &Rights) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE project_users SET role_id = NULL, rights = ?3 WHERE project_id = ?1 AND role_id = ?2",
            params![project_id, role_id, serde_json::to_string(rights)?],
        )?;
        self.conn.execute(
            "UPDATE fr_folders SET role_id = NULL WHERE project_id = ?1 AND role_id = ?2",
            params![project_id, role_id],
        )?;
        Ok(())
    }

    /// Replaces the DAGs a member may switch to (`None`: no DAG).
    pub fn set_dag_switcher(
        &mut self,
        project_id: i64,
        username: &str,
        dags: &[Option<i64>],
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM dag_switcher WHERE project_id = ?1 AND username = ?2",
            params![project_id, username],
        )?;
        for d in dags {
            self.conn.execute(
                "INSERT OR IGNORE INTO dag_switcher (project_id, username, dag_id) VALUES (?1, ?2, ?3)",
                params![project_id, username, d],
            )?;
        }
        Ok(())
    }

    /// The DAGs a member may switch to (`None`: no DAG).
    pub fn dag_switcher(&self, project_id: i64, username: &str) -> Result<Vec<Option<i64>>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT dag_id FROM dag_switcher WHERE project_id = ?1 AND username = ?2")?;
        let rows = stmt.query_map(params![project_id, username], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The token of a project member.
    pub fn token_of(&self, project_id: i64, username: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT token FROM project_users WHERE project_id = ?1 AND username = ?2",
                params![project_id, username],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Gives `username` a super token (once) and returns it.
    pub fn super_token_of(&mut self, username: &str) -> Result<String, StoreError> {
        self.ensure_user(username)?;
        let t: Option<String> =
            self.conn.query_row("SELECT super_token FROM users WHERE username = ?1", [username], |r| r.get(0))?;
        if let Some(t) = t {
            return Ok(t);
        }
        let t = self.make_token(64);
        self.token_index = None;
        self.conn.execute("UPDATE users SET super_token = ?2 WHERE username = ?1", params![username, t])?;
        Ok(t)
    }

    /// Who owns a token. Matching is exact (REDCap tokens are upper-case hex).
    pub fn caller(&mut self, token: &str) -> Result<Option<Caller>, StoreError> {
        let version: i64 = self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if self.token_index.as_ref().is_none_or(|i| i.data_version != version) {
            self.token_index = Some(TokenIndex::new(self.load_tokens()?, version));
        }
        let index = self.token_index.as_ref().expect("just loaded");
        let Some(owner) = index.owner(token) else { return Ok(None) };
        let (project_id, username) = match owner.clone() {
            TokenOwner::Super(username) => return Ok(Some(Caller::Super { username })),
            TokenOwner::Member(p, u) => (p, u),
        };
        let row: Option<(String, Option<i64>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT rights, dag_id, role_id FROM project_users WHERE project_id = ?1 AND username = ?2",
                params![project_id, username],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((rights, dag_id, role_id)) = row else {
            return Ok(None);
        };
        let mut rights: Rights = serde_json::from_str(&rights)?;
        if let Some(role_id) = role_id {
            if let Some(p) = self.project(project_id)? {
                if let Some(role) = p.role(role_id) {
                    rights = role.rights.clone();
                }
            }
        }
        Ok(Some(Caller::Project(ProjectUser { project_id, username, rights, dag_id, role_id })))
    }

    fn load_tokens(&self) -> Result<Vec<(String, TokenOwner)>, StoreError> {
        let mut owners = Vec::new();
        let mut stmt = self.conn.prepare("SELECT super_token, username FROM users WHERE super_token IS NOT NULL")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (t, u) = row?;
            owners.push((t, TokenOwner::Super(u)));
        }
        let mut stmt =
            self.conn.prepare("SELECT token, project_id, username FROM project_users WHERE token IS NOT NULL")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))? {
            let (t, p, u) = row?;
            owners.push((t, TokenOwner::Member(p, u)));
        }
        Ok(owners)
    }

    /// Members of a project: (username, rights, dag, role, expiration, email, first, last).
    pub fn project_users(&self, project_id: i64) -> Result<Vec<MemberRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT pu.username, pu.rights, pu.dag_id, pu.role_id, pu.expiration, u.email, u.firstname, u.lastname
             FROM project_users pu JOIN users u ON u.username = pu.username
             WHERE pu.project_id = ?1 ORDER BY pu.username",
        )?;
        let rows = stmt
            .query_map([project_id], |r| {
                Ok(MemberRow {
                    username: r.get(0)?,
                    rights: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_else(|_| Rights::none()),
                    dag_id: r.get(2)?,
                    role_id: r.get(3)?,
                    expiration: r.get(4)?,
                    email: r.get(5)?,
                    firstname: r.get(6)?,
                    lastname: r.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    // ---------------------------------------------------------------- records and data

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

    /// Replaces the value(s) of one field in one row; an empty `values` erases it.
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
            return Ok(());
        }
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO data (project_id, record, event, instrument, instance, field, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for v in values {
            insert.execute(params![project_id, key.record, key.event, key.instrument, key.instance, field, v])?;
        }
        Ok(())
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
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO data (project_id, record, event, instrument, instance, field, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for v in values {
            insert.execute(params![project_id, key.record, key.event, key.instrument, key.instance, field, v])?;
        }
        Ok(())
    }

    /// Deletes a record and all its data.
    pub fn delete_record(&mut self, project_id: i64, record: &str) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM data WHERE project_id = ?1 AND record = ?2", params![project_id, record])?;
        self.conn
            .execute("DELETE FROM record_files WHERE project_id = ?1 AND record = ?2", params![project_id, record])?;
        self.conn.execute("DELETE FROM records WHERE project_id = ?1 AND record = ?2", params![project_id, record])?;
        crate::survey_codes::forget_record(&self.conn, project_id, record)?;
        Ok(())
    }

    // ---------------------------------------------------------------- blobs and docs

    /// Writes `bytes` as a new doc and returns its id.
    pub fn put_blob(&mut self, project_id: i64, name: &str, mime: &str, bytes: &[u8]) -> Result<i64, StoreError> {
        let tmp = self.blob_dir.join("tmp").join(format!("load-{}", self.make_token(16)));
        std::fs::write(&tmp, bytes)?;
        self.adopt_blob(project_id, name, mime, &tmp)
    }

    /// Moves a finished temp file into the blob store as a new doc and returns its id.
    pub fn adopt_blob(&mut self, project_id: i64, name: &str, mime: &str, tmp: &Path) -> Result<i64, StoreError> {
        let size = std::fs::metadata(tmp)?.len();
        let doc_id = self.next_id("doc", 1)?;
        let rel = format!("{project_id}/{doc_id}");
        let dest = self.blob_dir.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(tmp, &dest)?;
        self.conn.execute(
            "INSERT INTO docs (doc_id, project_id, name, mime, size, path, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![doc_id, project_id, name, mime, size as i64, rel, now_seconds()],
        )?;
        Ok(doc_id)
    }

    /// A doc by id.
    pub fn doc(&self, doc_id: i64) -> Result<Option<Doc>, StoreError> {
        doc(&self.conn, &self.blob_dir, doc_id)
    }

    /// Makes a doc the file of one field in one row: only that cell may give it out, whatever
    /// value another cell is made to hold (a forged doc id reaches nothing).
    pub fn bind_record_file(
        &mut self,
        project_id: i64,
        key: &RowKey,
        field: &str,
        doc_id: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO record_files (doc_id, project_id, record, event, instrument, instance, field)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![doc_id, project_id, key.record, key.event, key.instrument, key.instance, field],
        )?;
        Ok(())
    }

    /// The doc `doc_id` if it is the file of exactly this project, row and field.
    pub fn record_file(
        &self,
        project_id: i64,
        key: &RowKey,
        field: &str,
        doc_id: i64,
    ) -> Result<Option<Doc>, StoreError> {
        let bound: Option<i64> = self
            .conn
            .query_row(
                "SELECT doc_id FROM record_files WHERE doc_id = ?1 AND project_id = ?2 AND record = ?3 AND event = ?4
                 AND instrument = ?5 AND instance = ?6 AND field = ?7",
                params![doc_id, project_id, key.record, key.event, key.instrument, key.instance, field],
                |r| r.get(0),
            )
            .optional()?;
        match bound {
            Some(d) => Ok(self.doc(d)?.filter(|doc| doc.project_id == project_id)),
            None => Ok(None),
        }
    }

    // ---------------------------------------------------------------- File Repository

    /// Creates a folder.
    pub fn create_folder(
        &mut self,
        project_id: i64,
        parent: Option<i64>,
        name: &str,
        dag_id: Option<i64>,
        role_id: Option<i64>,
    ) -> Result<i64, StoreError> {
        let id = self.next_id("folder", 1)?;
        self.conn.execute(
            "INSERT INTO fr_folders (folder_id, project_id, parent_id, name, dag_id, role_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, project_id, parent, name, dag_id, role_id],
        )?;
        Ok(id)
    }

    /// A folder by id.
    pub fn folder(&self, folder_id: i64) -> Result<Option<Folder>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT folder_id, project_id, parent_id, name, dag_id, role_id FROM fr_folders WHERE folder_id = ?1",
                [folder_id],
                folder_row,
            )
            .optional()?)
    }

    /// Sub-folders of `parent` (top level: `None`), by name.
    pub fn folders_in(&self, project_id: i64, parent: Option<i64>) -> Result<Vec<Folder>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT folder_id, project_id, parent_id, name, dag_id, role_id FROM fr_folders
             WHERE project_id = ?1 AND parent_id IS ?2 ORDER BY name COLLATE NOCASE, folder_id",
        )?;
        let rows = stmt.query_map(params![project_id, parent], folder_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Live files in a folder (top level: `None`), by name: (doc_id, name).
    pub fn files_in(&self, project_id: i64, folder: Option<i64>) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT f.doc_id, d.name FROM fr_files f JOIN docs d ON d.doc_id = f.doc_id
             WHERE f.project_id = ?1 AND f.folder_id IS ?2 AND f.recycled IS NULL
             ORDER BY d.name COLLATE NOCASE, f.doc_id",
        )?;
        let rows =
            stmt.query_map(params![project_id, folder], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Registers a doc as a File Repository file.
    pub fn add_repository_file(&mut self, project_id: i64, doc_id: i64, folder: Option<i64>) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO fr_files (doc_id, project_id, folder_id) VALUES (?1, ?2, ?3)",
            params![doc_id, project_id, folder],
        )?;
        Ok(())
    }

    /// A live repository file: (doc, folder).
    pub fn repository_file(&self, doc_id: i64) -> Result<Option<(Doc, Option<i64>)>, StoreError> {
        let row: Option<(Option<i64>,)> = self
            .conn
            .query_row("SELECT folder_id FROM fr_files WHERE doc_id = ?1 AND recycled IS NULL", [doc_id], |r| {
                Ok((r.get(0)?,))
            })
            .optional()?;
        let Some((folder,)) = row else { return Ok(None) };
        Ok(self.doc(doc_id)?.map(|d| (d, folder)))
    }

    /// Moves a repository file to the recycle bin.
    pub fn recycle_repository_file(&mut self, doc_id: i64) -> Result<(), StoreError> {
        self.conn.execute("UPDATE fr_files SET recycled = ?2 WHERE doc_id = ?1", params![doc_id, now_seconds()])?;
        Ok(())
    }

    /// Docs in the recycle bin of a project.
    pub fn recycled_files(&self, project_id: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT doc_id FROM fr_files WHERE project_id = ?1 AND recycled IS NOT NULL ORDER BY doc_id")?;
        let rows = stmt.query_map([project_id], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    // ---------------------------------------------------------------- logging

    /// Appends a log entry.
    #[allow(clippy::too_many_arguments)]
    pub fn log(
        &mut self,
        project_id: i64,
        username: &str,
        kind: &str,
        action: &str,
        details: &str,
        record: &str,
        dag_id: Option<i64>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO log (project_id, ts, username, action, details, record, dag_id, kind)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![project_id, now_seconds(), username, action, details, record, dag_id, kind])?;
        Ok(())
    }

    /// Log entries of a project, newest first.
    pub fn log_entries(&self, project_id: i64) -> Result<Vec<LogEntry>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT ts, username, action, details, record, kind, dag_id FROM log WHERE project_id = ?1 ORDER BY id DESC",
        )?;
        let rows = stmt
            .query_map([project_id], |r| {
                Ok(LogEntry {
                    ts: r.get(0)?,
                    username: r.get(1)?,
                    action: r.get(2)?,
                    details: r.get(3)?,
                    record: r.get(4)?,
                    kind: r.get(5)?,
                    dag_id: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

/// Equal bytes, compared in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
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

// -------------------------------------------------------------------- reads on any connection
// (the writer's, or a [`Snapshot`]'s while an export streams)

/// Records of a project in creation order, with their DAG.
pub fn record_list(conn: &Connection, project_id: i64) -> Result<Vec<(String, Option<i64>)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT record, dag_id FROM records WHERE project_id = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([project_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Those of `names` that are records of the project, with their DAG (one key lookup each).
pub fn records_named<'a>(
    conn: &Connection,
    project_id: i64,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, Option<i64>)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT dag_id FROM records WHERE project_id = ?1 AND record = ?2")?;
    let mut out = Vec::new();
    for name in names {
        if let Some(dag) = stmt.query_row(params![project_id, name], |r| r.get(0)).optional()? {
            out.push((name.to_owned(), dag));
        }
    }
    Ok(out)
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
    while let Some(r) = rows.next()? {
        let text = |i: usize| -> rusqlite::Result<&str> {
            r.get_ref(i)?
                .as_str()
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
        };
        each(text(0)?, text(1)?, r.get(2)?, text(3)?, r.get(4)?);
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

/// One record's row keys (event, instrument, instance), without reading any value: what an
/// export of the record id alone (a batched export's id list) needs. From the index alone.
pub fn for_record_rows(
    conn: &Connection,
    project_id: i64,
    record: &str,
    mut each: impl FnMut(&str, &str, i64),
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT event, instrument, instance FROM data INDEXED BY data_cover
         WHERE project_id = ?1 AND record = ?2",
    )?;
    let mut rows = stmt.query(params![project_id, record])?;
    while let Some(r) = rows.next()? {
        let text = |i: usize| -> rusqlite::Result<&str> {
            r.get_ref(i)?
                .as_str()
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
        };
        each(text(0)?, text(1)?, r.get(2)?);
    }
    Ok(())
}

/// A doc by id.
pub fn doc(conn: &Connection, blob_dir: &Path, doc_id: i64) -> Result<Option<Doc>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT doc_id, project_id, name, mime, size, path FROM docs WHERE doc_id = ?1")?
        .query_row([doc_id], |r| {
            Ok(Doc {
                doc_id: r.get(0)?,
                project_id: r.get(1)?,
                name: r.get(2)?,
                mime: r.get(3)?,
                size: r.get::<_, i64>(4)? as u64,
                path: blob_dir.join(r.get::<_, String>(5)?),
            })
        })
        .optional()?)
}

fn folder_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Folder> {
    Ok(Folder {
        folder_id: r.get(0)?,
        project_id: r.get(1)?,
        parent_id: r.get(2)?,
        name: r.get(3)?,
        dag_id: r.get(4)?,
        role_id: r.get(5)?,
    })
}

/// A project member as stored.
#[derive(Clone, Debug)]
pub struct MemberRow {
    pub username: String,
    pub rights: Rights,
    pub dag_id: Option<i64>,
    pub role_id: Option<i64>,
    pub expiration: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
}

/// Identifies one flat row: record, event, repeating instrument (or empty) and instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub record: String,
    pub event: String,
    pub instrument: String,
    pub instance: i64,
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS` (the emulator's "server time" is UTC).
pub fn now_seconds() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    format_time(secs)
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time.
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, (rem % 3600) / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13:20");
    }
}
