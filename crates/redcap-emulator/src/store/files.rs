//! Stored files: blobs and their docs, files bound to record fields, the File Repository.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::{RowKey, Store, StoreError, now_seconds};

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

impl Store {
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
        let mut stmt = self.conn.prepare_cached(
            "SELECT folder_id, project_id, parent_id, name, dag_id, role_id FROM fr_folders
             WHERE project_id = ?1 AND parent_id IS ?2 ORDER BY name COLLATE NOCASE, folder_id",
        )?;
        let rows = stmt.query_map(params![project_id, parent], folder_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Live files in a folder (top level: `None`), by name: (doc_id, name).
    pub fn files_in(&self, project_id: i64, folder: Option<i64>) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
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
