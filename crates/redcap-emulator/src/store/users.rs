//! Users, project members, their rights, DAGs and roles, the DAG switcher, and tokens.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::auth::{Caller, ProjectUser, Rights};

/// Who a token belongs to, before rights are read.
#[derive(Clone, Debug)]
pub(super) enum TokenOwner {
    Super(String),
    Member(i64, String),
}

/// Every live token, found by a randomly keyed hash of it (std's SipHash with a per-process
/// key) and confirmed by a constant-time compare: no step compares the caller's token with a
/// stored one byte by byte with an early exit, so response times tell nothing about a near miss
/// (an SQL `WHERE token = ?`, or a map keyed by the token itself, would).
#[derive(Debug)]
pub(super) struct TokenIndex {
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

impl Store {
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
        // Cached statements: this runs on every call.
        let version: i64 = self.conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))?;
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
            .prepare_cached(
                "SELECT rights, dag_id, role_id FROM project_users WHERE project_id = ?1 AND username = ?2",
            )?
            .query_row(params![project_id, username], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
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
}

/// Equal bytes, compared in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
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
