//! Survey links and codes, stable per (record, survey, event, instance) and per record for the
//! Survey Queue: made on first request and kept in the store, as REDCap keeps a participant's
//! hash once it exists.
//!
//! Shapes are REDCap's as observed: a survey hash of 10 letters and digits
//! (`…/surveys/?s=8KuzSLMHf6`, REDCapR `test-survey-link-export-oneshot.R`), a 9-character access
//! code and an 8-character alphanumeric return code (reference §2 rows 52 and 54; PHPCap
//! `SurveyTest::testExportSurveyReturnCode` checks `ctype_alnum`). The queue hash's length and the
//! codes' alphabets (upper-case letters and digits) are UNVERIFIED.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{Store, StoreError};

/// Tables of this module, created with the store's schema.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS survey_codes (
    project_id INTEGER NOT NULL, record TEXT NOT NULL, form TEXT NOT NULL, event TEXT NOT NULL,
    instance INTEGER NOT NULL, hash TEXT NOT NULL UNIQUE, access_code TEXT NOT NULL UNIQUE,
    return_code TEXT NOT NULL, PRIMARY KEY (project_id, record, form, event, instance));
CREATE TABLE IF NOT EXISTS survey_queue_codes (
    project_id INTEGER NOT NULL, record TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
    PRIMARY KEY (project_id, record));
"#;

/// One participant's survey: which response the codes open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurveyKey<'a> {
    pub record: &'a str,
    pub form: &'a str,
    pub event: &'a str,
    pub instance: i64,
}

/// The codes of one participant's survey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurveyCodes {
    /// The `s=` value of the survey link.
    pub hash: String,
    /// Typed on the survey page instead of following a link.
    pub access_code: String,
    /// Resumes a partial response (Save & Return Later).
    pub return_code: String,
}

const MIXED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// `len` characters of `alphabet` from the store's token source (seeded runs stay reproducible).
fn code(store: &Store, alphabet: &[u8], len: usize) -> String {
    let hex = store.make_token(len * 2);
    (0..len)
        .map(|i| {
            let byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap_or(0);
            char::from(alphabet[usize::from(byte) % alphabet.len()])
        })
        .collect()
}

/// Whether a write failed on a UNIQUE constraint (a code already taken: draw again).
fn is_taken(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Draws before giving up on a free code (62^10 hashes: a second draw is already unlikely).
const DRAWS: usize = 16;

/// The codes of `key`, made and stored on first use.
pub fn codes(store: &mut Store, project_id: i64, key: &SurveyKey<'_>) -> Result<SurveyCodes, StoreError> {
    if let Some(c) = stored(&store.conn, project_id, key)? {
        return Ok(c);
    }
    for _ in 0..DRAWS {
        let c = SurveyCodes {
            hash: code(store, MIXED, 10),
            access_code: code(store, UPPER, 9),
            return_code: code(store, UPPER, 8),
        };
        let done = store
            .conn
            .prepare_cached(
                "INSERT INTO survey_codes (project_id, record, form, event, instance, hash, access_code, return_code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                project_id,
                key.record,
                key.form,
                key.event,
                key.instance,
                c.hash,
                c.access_code,
                c.return_code
            ]);
        match done {
            Ok(_) => return Ok(c),
            Err(e) if is_taken(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::NotFound("no free survey code could be drawn".into()))
}

fn stored(conn: &Connection, project_id: i64, key: &SurveyKey<'_>) -> Result<Option<SurveyCodes>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT hash, access_code, return_code FROM survey_codes
             WHERE project_id = ?1 AND record = ?2 AND form = ?3 AND event = ?4 AND instance = ?5",
        )?
        .query_row(params![project_id, key.record, key.form, key.event, key.instance], |r| {
            Ok(SurveyCodes { hash: r.get(0)?, access_code: r.get(1)?, return_code: r.get(2)? })
        })
        .optional()?)
}

/// The `sq=` value of a record's Survey Queue link, made and stored on first use.
pub fn queue_hash(store: &mut Store, project_id: i64, record: &str) -> Result<String, StoreError> {
    let found: Option<String> = store
        .conn
        .prepare_cached("SELECT hash FROM survey_queue_codes WHERE project_id = ?1 AND record = ?2")?
        .query_row(params![project_id, record], |r| r.get(0))
        .optional()?;
    if let Some(h) = found {
        return Ok(h);
    }
    for _ in 0..DRAWS {
        let hash = code(store, MIXED, 10);
        let done = store
            .conn
            .prepare_cached("INSERT INTO survey_queue_codes (project_id, record, hash) VALUES (?1, ?2, ?3)")?
            .execute(params![project_id, record, hash]);
        match done {
            Ok(_) => return Ok(hash),
            Err(e) if is_taken(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::NotFound("no free survey queue code could be drawn".into()))
}

/// Drops a deleted record's codes (a new record of the same name gets new ones).
pub fn forget_record(conn: &Connection, project_id: i64, record: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM survey_codes WHERE project_id = ?1 AND record = ?2", params![project_id, record])?;
    conn.execute("DELETE FROM survey_queue_codes WHERE project_id = ?1 AND record = ?2", params![project_id, record])?;
    Ok(())
}

/// Moves a renamed record's codes to its new name (its links keep working).
pub fn rename_record(conn: &Connection, project_id: i64, from: &str, to: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE survey_codes SET record = ?3 WHERE project_id = ?1 AND record = ?2",
        params![project_id, from, to],
    )?;
    conn.execute(
        "UPDATE survey_queue_codes SET record = ?3 WHERE project_id = ?1 AND record = ?2",
        params![project_id, from, to],
    )?;
    Ok(())
}
