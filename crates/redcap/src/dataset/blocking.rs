//! Dataset pull and sync on the blocking client: the calls only (the sequence is `drive`'s).

use std::path::Path;

use redcap_blocking::Client;
use redcap_core::{Transport, TransportError};

use super::batch::{self, Judged};
use super::drive::{Ahead, Call, Driver, Exported, Outcome, Prefetched};
use super::{ProjectSchema, PullError, PullOptions, PullSummary, SchemaAnswers, SchemaParts, SyncOptions, SyncSummary};
use crate::blocking::Workflows;
use crate::dataset::Records;
use crate::workflow::Progress;
use crate::workflow::WorkflowError;
use crate::{arm, dag, event, instrument, log, metadata, project, repeating, version};
use redcap_core::Row;

/// Datasets on the blocking client: `use redcap::dataset::blocking::Datasets;`.
pub trait Datasets {
    /// Gathers what decides the shape of the project's data (see [`ProjectSchema`]).
    fn project_schema(&self) -> Result<ProjectSchema, PullError>;

    /// Pulls the project into `dir` as a typed dataset: one table per instrument,
    /// `_dictionary`, `_problems` and `_manifest.json`, in batches of whole records.
    fn pull_dataset(
        &self,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<PullSummary, PullError>;

    /// Brings the dataset in `dir` (written by [`Datasets::pull_dataset`]) up to date: reads
    /// the project's logging since the dataset's watermark, re-exports the records that
    /// changed (whole, in batches), drops deleted and renamed-away ones, and commits the new
    /// tables atomically; a dictionary change rebuilds the tables it touches, a new REDCap
    /// version or a change all tables share the whole dataset. See
    /// [`crate::dataset::sync`].
    fn sync_dataset(
        &self,
        dir: &Path,
        options: &SyncOptions,
        progress: &dyn Progress,
    ) -> Result<SyncSummary, PullError>;
}

impl<T> Datasets for Client<T>
where
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + Sync + 'static,
    T::Body: std::io::Read,
{
    fn project_schema(&self) -> Result<ProjectSchema, PullError> {
        let mut s = ProjectSchema::default();
        // The project info first (it says which optional parts there are, and a token that
        // cannot read the project fails here, once); then every other part at once, on as many
        // connections as the client allows: one round trip instead of up to nine in a row.
        s.project_info =
            self.call(&project::export_info::Request::new())?.raw().rows()?.into_iter().next().unwrap_or_default();
        let parts = SchemaParts::from_info(&s.project_info);
        let answers = std::thread::scope(|scope| {
            let long = parts.longitudinal;
            let rep = parts.repeating;
            let version = scope.spawn(|| self.call(&version::export::Request::new()));
            let metadata = scope.spawn(|| self.call(&metadata::export::Request::new()));
            let field_names = scope.spawn(|| self.call(&metadata::export_field_names::Request::new()));
            let instruments = scope.spawn(|| self.call(&instrument::export::Request::new()));
            let events = scope.spawn(move || long.then(|| self.call(&event::export::Request::new())));
            let arms = scope.spawn(move || long.then(|| self.call(&arm::export::Request::new())));
            let mappings =
                scope.spawn(move || long.then(|| self.call(&instrument::export_event_mappings::Request::new())));
            let repeating = scope.spawn(move || rep.then(|| self.call(&repeating::export::Request::new())));
            let dags = scope.spawn(|| self.call(&dag::export::Request::new()));
            SchemaAnswers {
                version: joined(version),
                metadata: joined(metadata),
                field_names: joined(field_names),
                instruments: joined(instruments),
                events: joined(events),
                arms: joined(arms),
                mappings: joined(mappings),
                repeating: joined(repeating),
                dags: joined(dags),
            }
        });
        answers.fill(&mut s)?;
        Ok(s)
    }

    fn pull_dataset(
        &self,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<PullSummary, PullError> {
        // The watermark read goes out with the schema's calls (see `Prefetched`).
        let watermark = Driver::watermark_call(options);
        let (schema, logged) = std::thread::scope(|s| {
            let logged = watermark.as_ref().map(|(_, r, window)| s.spawn(|| export_log(self, r, *window, progress)));
            (self.project_schema(), logged.map(joined))
        });
        let prefetched = watermark.zip(logged).map(|((floor, ..), answer)| Prefetched { floor, answer });
        let driver = Driver::pull(dir, schema?, options, progress, prefetched)?;
        match drive(self, driver, progress)? {
            Outcome::Pull(s) => Ok(s),
            Outcome::Sync(_) => Err(PullError::Dataset(crate::dataset::Error::Internal("a pull ended as a sync"))),
        }
    }

    fn sync_dataset(
        &self,
        dir: &Path,
        options: &SyncOptions,
        progress: &dyn Progress,
    ) -> Result<SyncSummary, PullError> {
        let driver = Driver::sync(dir, self.project_schema()?, options, progress)?;
        match drive(self, driver, progress)? {
            Outcome::Sync(s) => Ok(s),
            Outcome::Pull(_) => Err(PullError::Dataset(crate::dataset::Error::Internal("a sync ended as a pull"))),
        }
    }
}

/// The rows of the log read `r`, in windows of `window` minutes.
fn export_log<T>(
    client: &Client<T>,
    r: &log::export::Request,
    window: u32,
    progress: &dyn Progress,
) -> Result<Vec<Row>, WorkflowError>
where
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + Sync + 'static,
    T::Body: std::io::Read,
{
    let mut rows = Vec::new();
    let mut keep = |row| {
        rows.push(row);
        Ok(())
    };
    client.export_logging_windowed(r, window, progress, &mut keep)?;
    Ok(rows)
}

/// What a scoped thread returned (its panic goes on).
fn joined<T>(t: std::thread::ScopedJoinHandle<'_, T>) -> T {
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Performs the driver's calls.
fn drive<T>(client: &Client<T>, mut driver: Driver<'_>, progress: &dyn Progress) -> Result<Outcome, PullError>
where
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + Sync + 'static,
    T::Body: std::io::Read,
{
    // The dictionary and id field a healed batch needs, owned: the batch after the current one
    // is exported on a second thread while the driver casts and writes the current one.
    let metadata = driver.metadata().to_vec();
    let id_field = driver.id_field().to_owned();
    let scope = driver.batch_scope();
    // CSV first; the healed JSON export only for a batch whose CSV answer failed or fell short.
    // The request (its records are the batch) comes back with the answer: its ids are kept.
    let export_in = |r: crate::record::export::Request,
                     scope: &crate::workflow::heal::Scope|
     -> (crate::record::export::Request, Result<Records, WorkflowError>) {
        let r = batch::as_csv(r);
        let mut sink = batch::csv_sink(&r);
        let sent = client.stream(&r, &mut sink);
        match batch::judge(sent, sink, &r.records, scope, &id_field, progress) {
            Ok(Judged::Kept(records)) => (r, Ok(records)),
            Ok(Judged::Heal(size)) => {
                let r = batch::as_json(r);
                let ids = r.records.clone();
                let healed = crate::blocking_ext::export_healed(client, &r, &metadata, &id_field, ids, size, progress);
                (r, healed.map(|(rows, _)| Records::from_rows(&rows)))
            }
            Err(e) => (r, Err(e)),
        }
    };
    let export = |r: crate::record::export::Request| export_in(r, &scope);
    // The loop runs in one scope: the batches exported ahead are threads that outlive the step
    // that started them.
    std::thread::scope(|s| -> Result<(), PullError> {
        let mut ahead: Ahead<std::thread::ScopedJoinHandle<'_, Exported>> = Ahead::new();
        let start = |ahead: &mut Ahead<_>, driver: &Driver<'_>, window: usize| {
            for (n, r) in driver.following_batches(ahead, window) {
                ahead.push(n, s.spawn(|| export(r)));
            }
        };
        while let Some(call) = driver.next()? {
            match call {
                Call::Log(r, window) => driver.answer_log(export_log(client, &r, window, progress))?,
                Call::Ids(r) => {
                    let mut sink = batch::IdSink::new(&id_field);
                    let sent = client.stream(&batch::as_csv(r), &mut sink);
                    driver.answer_ids(sink.finish(sent)?)?
                }
                Call::Batch(n) => {
                    let window = driver.window();
                    let rows = match ahead.take(n) {
                        Some(started) => joined(started).1?,
                        None => {
                            // (The first batch: it and the ones after it go out together.)
                            start(&mut ahead, &driver, window - 1);
                            export(driver.batch_request(n)?).1?
                        }
                    };
                    // As many exported ahead as the window while this one is cast and written.
                    start(&mut ahead, &driver, window);
                    driver.answer_batch(rows)?;
                }
                Call::Fetch(r, options) => {
                    driver.answer_rows(client.export_records_batched(&r, &options, progress)?)?
                }
                Call::Rebuild(r, scope) => driver.answer_batch(export_in(r, &scope).1?)?,
            }
        }
        Ok(())
    })?;
    driver.finish()
}
