//! The project log.

use rusqlite::params;

use super::{Store, StoreError, now_seconds};

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

impl Store {
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

    /// Moves every log entry of a project `seconds` into the past (a test's long history).
    pub fn age_log(&mut self, project_id: i64, seconds: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE log SET ts = strftime('%Y-%m-%d %H:%M:%S', ts, '-' || ?2 || ' seconds') WHERE project_id = ?1",
            params![project_id, seconds as i64],
        )?;
        Ok(())
    }

    /// Log entries of a project, newest first (as REDCap lists them: REDCapR's recorded log,
    /// `log-read/2024-10-11.R`).
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
