//! Projects: definitions (with the ids of their events, DAGs, roles and reports), the project
//! XML they were loaded from, and a loaded document's data.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use super::data::{Cell, insert_values};
use super::{DATA_COVER, LoadError, RowKey, Store, StoreError, now_seconds};
use crate::model::{Dag, Project, ProjectDef};
use crate::odm::{ClinicalPart, LoadedProject, OdmError, Streamed, XmlSource};

/// A project XML document's bytes per stored value, about (one `ItemData` element each).
const BYTES_PER_VALUE: u64 = 64;

/// Values of the records a load stores at once (a few hundred KiB).
const VALUES_PER_PART: usize = 4096;

/// Values a document must bring before a load rebuilds the covering index (below, inserting
/// into it costs less than sorting it).
const REBUILD_FROM: i64 = 100_000;

impl Store {
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
            s.insert_part(id, &loaded.def.dags, part, &mut seq)?;
            Ok(id)
        })
    }

    /// Stores a project from its XML document in one transaction, reading the document's data
    /// one record at a time (the data is never held whole), and returns its id.
    #[cfg(test)]
    pub fn insert_project_xml(&mut self, xml: &str) -> Result<i64, LoadError> {
        self.insert_project_source(XmlSource::Text(xml))
    }

    /// [`Store::insert_project_xml`] of a document in memory or in a file.
    pub fn insert_project_source(&mut self, xml: XmlSource<'_>) -> Result<i64, LoadError> {
        let size = xml.len().map_err(|e| LoadError::Xml(OdmError(format!("project XML: {e}"))))?;
        let mut failed: Option<StoreError> = None;
        let result = self.transaction(|s| {
            // A document larger than the data already stored is inserted without the covering
            // index, which is then built by one sort: inserting millions of values into it one by
            // one costs a random B-tree step each (and, past the page cache, page writes), several
            // times the sort. The drop and the rebuild are part of the load's transaction: a
            // failed or killed load leaves the index as it was.
            let stored: i64 = s.conn.query_row("SELECT COALESCE(MAX(rowid), 0) FROM data", [], |r| r.get(0))?;
            let rebuild = size / BYTES_PER_VALUE > stored.max(REBUILD_FROM) as u64;
            if rebuild {
                s.conn.execute_batch("DROP INDEX IF EXISTS data_cover")?;
            }
            let loaded = s.insert_document(xml, &mut failed);
            if rebuild && loaded.as_ref().is_ok_and(Result::is_ok) {
                s.conn.execute_batch(DATA_COVER)?;
            }
            loaded
        });
        match result {
            Ok(Ok(id)) => {
                // The load wrote the whole project through the log. It is committed: a log
                // that cannot be cut back now is left for later, and the load has succeeded.
                let _ = self.shrink_log();
                Ok(id)
            }
            Ok(Err(e)) => Err(LoadError::Xml(e)),
            Err(StoreError::Xml(e)) => Err(LoadError::Xml(e)),
            Err(e) => Err(LoadError::Store(e)),
        }
    }

    /// Parses `xml` and stores its definition and data (inside the caller's transaction): a
    /// store failure is kept in `failed`, a bad document is `Ok(Err(_))`.
    fn insert_document(
        &mut self,
        xml: XmlSource<'_>,
        failed: &mut Option<StoreError>,
    ) -> Result<Result<i64, OdmError>, StoreError> {
        let mut id = 0;
        let mut seq = 0;
        // Records are stored some at a time, not one by one: a record's few dozen values are
        // fewer than one multi-row insert takes, and one row at a time was most of a load.
        let mut dags = Vec::new();
        let mut pending = ClinicalPart::default();
        let mut fail = |e: StoreError| {
            let msg = e.to_string();
            *failed = Some(e);
            OdmError(msg)
        };
        let parsed = crate::odm::parse_streamed(xml, &mut |piece| match piece {
            Streamed::Definition(loaded) => {
                id = self.insert_def(loaded).map_err(&mut fail)?;
                dags = loaded.def.dags.clone();
                Ok(())
            }
            Streamed::Data(part) => {
                pending.append(part);
                if pending.values.len() >= VALUES_PER_PART || !pending.files.is_empty() {
                    self.insert_part(id, &dags, std::mem::take(&mut pending), &mut seq).map_err(&mut fail)?;
                }
                Ok(())
            }
        })
        .and_then(|()| self.insert_part(id, &dags, pending, &mut seq).map_err(&mut fail));
        match parsed {
            Ok(_) => Ok(Ok(id)),
            // A bad document rolls everything back too.
            Err(e) => match failed.take() {
                Some(store) => Err(store),
                None => Err(StoreError::Xml(e)),
            },
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
    fn insert_part(&mut self, id: i64, dags: &[Dag], part: ClinicalPart, seq: &mut i64) -> Result<(), StoreError> {
        let now = now_seconds();
        let dag_of: HashMap<&str, i64> = part
            .record_dags
            .iter()
            .filter_map(|(r, u)| dags.iter().find(|d| &d.unique == u).map(|d| (r.as_str(), d.id)))
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
        insert_values(
            &self.conn,
            id,
            part.values.iter().map(|v| Cell {
                row: (&v.record, &v.event, &v.instrument, v.instance),
                field: &v.field,
                value: &v.value,
            }),
        )?;
        // A record's values come row by row.
        let mut rows: Vec<(&str, &str, &str, i64)> = part
            .values
            .iter()
            .map(|v| (v.record.as_str(), v.event.as_str(), v.instrument.as_str(), v.instance))
            .collect();
        rows.dedup();
        rows.extend(
            part.files.iter().map(|f| (f.record.as_str(), f.event.as_str(), f.instrument.as_str(), f.instance)),
        );
        super::data::mark_rows(&self.conn, id, rows)?;
        for f in &part.files {
            let doc = self.put_blob(id, &f.name, &f.mime, &f.bytes)?;
            let key = RowKey {
                record: f.record.clone(),
                event: f.event.clone(),
                instrument: f.instrument.clone(),
                instance: f.instance,
            };
            self.bind_record_file(id, &key, &f.field, doc)?;
            let value = doc.to_string();
            let row = (f.record.as_str(), f.event.as_str(), f.instrument.as_str(), f.instance);
            insert_values(&self.conn, id, [Cell { row, field: &f.field, value: &value }])?;
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
            self.conn.execute("DELETE FROM data_rows WHERE project_id = ?1 AND event = ?2", params![project_id, e])?;
            self.marked = None;
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
}
