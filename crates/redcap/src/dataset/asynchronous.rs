//! Dataset pull and sync on the async client: the calls only, awaited (the sequence is `drive`'s).

use std::future::Future;
use std::path::Path;

use redcap_async::Client;
use redcap_core::{Bytes, Row, Transport, TransportError};

use super::batch::{self, Judged};
use super::drive::{Ahead, Call, Driver, Exported, Outcome, Prefetched};
use super::{ProjectSchema, PullError, PullOptions, PullSummary, SchemaAnswers, SchemaParts, SyncOptions, SyncSummary};
use crate::asynchronous::Workflows;
use crate::dataset::Records;
use crate::workflow::Progress;
use crate::workflow::WorkflowError;
use crate::{arm, dag, event, instrument, log, metadata, project, repeating, version};

/// Datasets on the async client: `use redcap::dataset::asynchronous::Datasets;`. The futures
/// are `Send`. Files are written with blocking calls between the exports (one batch's parts at a
/// time), as the other workflows do with their manifests.
pub trait Datasets {
    /// Gathers what decides the shape of the project's data (see [`ProjectSchema`]).
    fn project_schema(&self) -> impl Future<Output = Result<ProjectSchema, PullError>> + Send;

    /// Pulls the project into `dir` as a typed dataset: one table per instrument,
    /// `_dictionary`, `_problems` and `_manifest.json`, in batches of whole records.
    fn pull_dataset(
        &self,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<PullSummary, PullError>> + Send;

    /// Brings the dataset in `dir` up to date from the project's logging (see the blocking
    /// client's `sync_dataset` and [`crate::dataset::sync`]).
    fn sync_dataset(
        &self,
        dir: &Path,
        options: &SyncOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<SyncSummary, PullError>> + Send;
}

/// `call`'s answer when `wanted`; otherwise `None`, and the call is never made (a future does
/// nothing until it is polled).
async fn when<F: Future>(wanted: bool, call: F) -> Option<F::Output> {
    if wanted { Some(call.await) } else { None }
}

impl<T, S> Datasets for Client<T>
where
    T: for<'a> Transport<Body = S, Reply<'a>: Future<Output = Result<http::Response<S>, TransportError>>> + 'static,
    S: futures_util::Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    async fn project_schema(&self) -> Result<ProjectSchema, PullError> {
        use futures_util::future::{join, join4, join5};
        let mut s = ProjectSchema::default();
        // The project info first, then every other part at once (see the blocking client).
        s.project_info = self
            .call(&project::export_info::Request::new())
            .await?
            .raw()
            .rows()?
            .into_iter()
            .next()
            .unwrap_or_default();
        let parts = SchemaParts::from_info(&s.project_info);
        let (long, rep) = (parts.longitudinal, parts.repeating);
        let ((version, metadata, field_names, instruments, events), (arms, mappings, repeating, dags)) = join(
            join5(
                self.call(&version::export::Request::new()),
                self.call(&metadata::export::Request::new()),
                self.call(&metadata::export_field_names::Request::new()),
                self.call(&instrument::export::Request::new()),
                when(long, self.call(&event::export::Request::new())),
            ),
            join4(
                when(long, self.call(&arm::export::Request::new())),
                when(long, self.call(&instrument::export_event_mappings::Request::new())),
                when(rep, self.call(&repeating::export::Request::new())),
                self.call(&dag::export::Request::new()),
            ),
        )
        .await;
        SchemaAnswers { version, metadata, field_names, instruments, events, arms, mappings, repeating, dags }
            .fill(&mut s)?;
        Ok(s)
    }

    async fn pull_dataset(
        &self,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<PullSummary, PullError> {
        // The watermark read goes out with the schema's calls (see `Prefetched`).
        let watermark = Driver::watermark_call(options);
        let logged = async {
            match &watermark {
                Some((_, r, window)) => Some(export_log(self, r, *window, progress).await),
                None => None,
            }
        };
        let (schema, logged) = futures_util::future::join(self.project_schema(), logged).await;
        let prefetched = watermark.zip(logged).map(|((floor, ..), answer)| Prefetched { floor, answer });
        let driver = Driver::pull(dir, schema?, options, progress, prefetched)?;
        match drive(self, driver, progress).await? {
            Outcome::Pull(s) => Ok(s),
            Outcome::Sync(_) => Err(PullError::Dataset(crate::dataset::Error::Internal("a pull ended as a sync"))),
        }
    }

    async fn sync_dataset(
        &self,
        dir: &Path,
        options: &SyncOptions,
        progress: &dyn Progress,
    ) -> Result<SyncSummary, PullError> {
        let driver = Driver::sync(dir, self.project_schema().await?, options, progress)?;
        match drive(self, driver, progress).await? {
            Outcome::Sync(s) => Ok(s),
            Outcome::Pull(_) => Err(PullError::Dataset(crate::dataset::Error::Internal("a sync ended as a pull"))),
        }
    }
}

/// The rows of the log read `r`, in windows of `window` minutes.
async fn export_log<T, S>(
    client: &Client<T>,
    r: &log::export::Request,
    window: u32,
    progress: &dyn Progress,
) -> Result<Vec<Row>, WorkflowError>
where
    T: for<'a> Transport<Body = S, Reply<'a>: Future<Output = Result<http::Response<S>, TransportError>>> + 'static,
    S: futures_util::Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    let mut rows = Vec::new();
    let mut keep = |row| {
        rows.push(row);
        Ok(())
    };
    client.export_logging_windowed(r, window, progress, &mut keep).await?;
    Ok(rows)
}

/// A batch exported ahead: still running, or its answer.
enum Slot<F: Future<Output = Exported>> {
    Running(std::pin::Pin<Box<F>>),
    Done(Box<Exported>),
}

/// Runs `work` while the exports started ahead go on (each ends as its answer, kept).
async fn with_ahead<F: Future<Output = Exported>, T>(ahead: &mut Ahead<Slot<F>>, work: impl Future<Output = T>) -> T {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        for slot in ahead.exports_mut() {
            if let Slot::Running(f) = slot {
                if let std::task::Poll::Ready(answer) = f.as_mut().poll(cx) {
                    *slot = Slot::Done(Box::new(answer));
                }
            }
        }
        work.as_mut().poll(cx)
    })
    .await
}

/// Performs the driver's calls.
async fn drive<T, S>(client: &Client<T>, mut driver: Driver<'_>, progress: &dyn Progress) -> Result<Outcome, PullError>
where
    T: for<'a> Transport<Body = S, Reply<'a>: Future<Output = Result<http::Response<S>, TransportError>>> + 'static,
    S: futures_util::Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    // Owned, so the batch after the current one can be exported while the driver casts and
    // writes the current one.
    let metadata = driver.metadata().to_vec();
    let id_field = driver.id_field().to_owned();
    let scope = driver.batch_scope();
    // CSV first; the healed JSON export only for a batch whose CSV answer failed or fell short.
    // The request (its records are the batch) comes back with the answer: its ids are kept.
    let export_in = |r: crate::record::export::Request, scope: crate::workflow::heal::Scope| {
        let (metadata, id_field) = (&metadata, &id_field);
        async move {
            let r = batch::as_csv(r);
            let mut sink = batch::csv_sink(&r);
            let sent = client.stream(&r, &mut batch::AsyncSink(&mut sink)).await;
            match batch::judge(sent, sink, &r.records, &scope, id_field, progress) {
                Ok(Judged::Kept(records)) => (r, Ok(records)),
                Ok(Judged::Heal(size)) => {
                    let r = batch::as_json(r);
                    let ids = r.records.clone();
                    let healed =
                        crate::async_ext::export_healed(client, &r, metadata, id_field, ids, size, progress).await;
                    (r, healed.map(|(rows, _)| Records::from_rows(&rows)))
                }
                Err(e) => (r, Err::<Records, WorkflowError>(e)),
            }
        }
    };
    let export = |r: crate::record::export::Request| export_in(r, scope.clone());
    let mut ahead = Ahead::new();
    let start = |ahead: &mut Ahead<Slot<_>>, driver: &Driver<'_>, window: usize| {
        for (n, r) in driver.following_batches(ahead, window) {
            ahead.push(n, Slot::Running(Box::pin(export(r))));
        }
    };
    while let Some(call) = driver.next()? {
        match call {
            Call::Log(r, window) => driver.answer_log(export_log(client, &r, window, progress).await)?,
            Call::Ids(r) => {
                let mut sink = batch::IdSink::new(&id_field);
                let sent = client.stream(&batch::as_csv(r), &mut batch::AsyncSink(&mut sink)).await;
                driver.answer_ids(sink.finish(sent)?)?
            }
            Call::Batch(n) => {
                let window = driver.window();
                let rows = match ahead.take(n) {
                    Some(Slot::Done(answer)) => answer.1?,
                    Some(Slot::Running(started)) => with_ahead::<_, Exported>(&mut ahead, started).await.1?,
                    None => {
                        // (The first batch: it and the ones after it go out together.)
                        start(&mut ahead, &driver, window - 1);
                        with_ahead(&mut ahead, export(driver.batch_request(n)?)).await.1?
                    }
                };
                // As many exported ahead as the window while this one is cast and written (their
                // requests go out first, on the poll before the cast).
                start(&mut ahead, &driver, window);
                with_ahead(&mut ahead, async { driver.answer_batch(rows) }).await?;
            }
            Call::Fetch(r, options) => {
                driver.answer_rows(client.export_records_batched(&r, &options, progress).await?)?
            }
            Call::Rebuild(r, scope) => driver.answer_batch(export_in(r, scope).await.1?)?,
        }
    }
    driver.finish()
}
