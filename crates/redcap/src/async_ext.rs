//! Workflows for the async client: the calls only (awaited); sessions in `workflow` keep the books.

use std::future::Future;
use std::path::Path;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redcap_async::Client;
use redcap_core::{Bytes, Row, Transport, TransportError};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWrite;

use crate::workflow::{
    BatchOptions, ExportRow, ExportSession, ExportSummary, HealReport, ImportOptions, ImportSession, LogSummary,
    LogWindows, Progress, ProgressEvent, PullOptions, PullSession, PushOptions, PushSession, RemoteTree, ReportId,
    ReportOptions, RowStream, TransferSummary, TreeWalk, WorkflowError, distinct_ids, list_request, only_splits,
    push_manifest, to_rows,
};
use crate::{log, metadata, record};

/// The workflows, on the async client: `use redcap::asynchronous::Workflows;`. Every future
/// is `Send`, so a workflow can be `tokio::spawn`ed (move a clone of the client in).
pub trait Workflows {
    /// Walks the File Repository from `root` (`None`: the top level), one listing per folder.
    fn walk(
        &self,
        root: Option<u64>,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<RemoteTree, WorkflowError>> + Send;

    /// Mirrors `root` into `dir`: every file written atomically, a manifest so a re-run
    /// downloads only what is new, nothing local removed unless `options.delete`. A failure in
    /// one file is reported in the summary and the others go on.
    fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<TransferSummary, WorkflowError>> + Send;

    /// Uploads `dir` into `root`: creates missing folders, uploads files not yet pushed (by the
    /// manifest, unless `options.force`), and records each upload's `doc_id`. Uploads are never
    /// retried, so a failed one is reported, not duplicated.
    fn push(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<TransferSummary, WorkflowError>> + Send;

    /// Exports report `id` into typed rows (`T: Deserialize`, or [`Row`] for generic rows).
    fn export_report<R: DeserializeOwned + Send>(
        &self,
        id: ReportId,
        options: &ReportOptions,
    ) -> impl Future<Output = Result<Vec<R>, WorkflowError>> + Send;

    /// Streams report `id` as CSV into `sink`; returns the bytes written.
    fn export_report_csv<W: AsyncWrite + Unpin + Send + ?Sized>(
        &self,
        id: ReportId,
        options: &ReportOptions,
        sink: &mut W,
    ) -> impl Future<Output = Result<u64, WorkflowError>> + Send;

    /// Exports report `id` as JSON, decoding the answer while it streams and handing every row to
    /// `each`, in order: nothing is kept, so memory stays at one row. Returns the number of rows.
    fn export_report_each(
        &self,
        id: ReportId,
        options: &ReportOptions,
        each: &mut (dyn FnMut(Row) -> Result<(), WorkflowError> + Send),
    ) -> impl Future<Output = Result<u64, WorkflowError>> + Send;

    /// Exports the project's logging with `request`'s filters as JSON (whatever its format),
    /// handing every entry to `each` as the answer streams, in constant memory like
    /// [`Workflows::export_report_each`]. Returns the number of entries.
    fn export_logging_each(
        &self,
        request: &log::export::Request,
        each: &mut (dyn FnMut(Row) -> Result<(), WorkflowError> + Send),
    ) -> impl Future<Output = Result<u64, WorkflowError>> + Send;

    /// Exports the project's logging like [`Workflows::export_logging_each`], in windows of at
    /// most `window_minutes` from `request`'s `beginTime` to its `endTime` (or now), newest
    /// first: a long history asked for at once times out (redcapAPI#383). A window that fails
    /// in a way a smaller one may survive (a 5xx, a timeout) is halved, down to one minute
    /// ([`ProgressEvent::Split`]); entries of the minute two windows share are counted once
    /// (see [`crate::workflow::log_windows`]). Each window's entries are held until it is
    /// complete. Without a `beginTime` the request is sent whole.
    fn export_logging_windowed(
        &self,
        request: &log::export::Request,
        window_minutes: u32,
        progress: &dyn Progress,
        each: &mut (dyn FnMut(Row) -> Result<(), WorkflowError> + Send),
    ) -> impl Future<Output = Result<LogSummary, WorkflowError>> + Send;

    /// Exports records in batches of whole records (ids first, then batches), checking that
    /// every requested record and column came back. `template` carries fields, forms, events,
    /// filters. A batch that fails in a way a smaller one may survive (5xx, a timeout, a
    /// memory message, an empty or cut answer, rows or columns missing) is halved and asked
    /// again, down to one record, then instrument by instrument (see [`crate::workflow::heal`];
    /// each split is a [`ProgressEvent::Split`]). With [`BatchOptions::parallel`] above 1,
    /// that many calls are in flight at once.
    fn export_records_batched(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<Vec<Row>, WorkflowError>> + Send;

    /// Exports records like [`Workflows::export_records_batched`], but decodes each answer
    /// while it streams and hands every row to `each`, in order, as soon as its record is
    /// complete (the next record has started; see [`crate::workflow::heal`]): memory stays at
    /// one record plus the record ids, and with [`BatchOptions::parallel`] above 1 also the
    /// answers that arrive before their turn. Records named in `template` that fit in one
    /// batch are exported with one call, without the id list.
    /// Rows come as [`Row`] maps, or as [`crate::workflow::RawRow`]s, each the server's own
    /// JSON object, for a caller that writes them out again (no map per row).
    /// Returns the number of rows and what healing was needed.
    fn export_records_each<R: ExportRow>(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
        each: &mut (dyn FnMut(R) -> Result<(), WorkflowError> + Send),
    ) -> impl Future<Output = Result<ExportSummary, WorkflowError>> + Send;

    /// Imports `rows` (any `Serialize` rows, e.g. [`Row`]) in batches of whole records,
    /// checking each batch's count; `import` holds REDCap's import options. A batch that
    /// fails stops the import with [`WorkflowError::Import`]: which batches and records were
    /// saved, which failed (with REDCap's record/field/value lines) and which were not sent;
    /// [`BatchOptions::resume_from`] goes on from the failing batch. No batch is ever sent
    /// twice (a batch whose answer was lost may have been saved).
    fn import_records_batched<R: serde::Serialize + Sync>(
        &self,
        rows: &[R],
        import: &ImportOptions,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<u64, WorkflowError>> + Send;
}

impl<T, S> Workflows for Client<T>
where
    T: for<'a> Transport<Body = S, Reply<'a>: Future<Output = Result<http::Response<S>, TransportError>>> + 'static,
    S: futures_util::Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    async fn walk(&self, root: Option<u64>, progress: &dyn Progress) -> Result<RemoteTree, WorkflowError> {
        let mut walk = TreeWalk::new(root);
        let mut running = FuturesUnordered::new();
        loop {
            // Keep up to the client's concurrency bound of listings in flight.
            while running.len() < self.concurrency() {
                let Some((folder, path)) = walk.next_folder() else { break };
                running.push(async move { (folder, path, self.call(&list_request(folder)).await) });
            }
            let Some((folder, path, entries)) = running.next().await else { break };
            progress.event(ProgressEvent::FolderListed { path: path.clone() });
            walk.add_listing(folder, &path, entries?)?;
        }
        Ok(walk.finish())
    }

    async fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        PullSession::check_dir(dir)?;
        let tree = self.walk(root, progress).await?;
        let mut session = PullSession::start(dir, &tree, options, progress)?;
        let mut pending = session.downloads().into_iter();
        let jobs = options.jobs.max(1);
        let mut running = FuturesUnordered::new();
        loop {
            // Up to `jobs` downloads in flight (the client's concurrency bound applies too);
            // each syncs its own file, so the fsyncs overlap.
            while running.len() < jobs {
                let Some((item, request, target)) = pending.next() else { break };
                session.started(&item);
                running.push(async move {
                    let result = self.download_to(&request, &target).await.map(|d| d.bytes);
                    (item, result)
                });
            }
            let Some((item, result)) = running.next().await else { break };
            session.finished(&item, result)?;
        }
        session.finish(options)
    }

    async fn push(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        let tree = self.walk(root, &crate::workflow::NoProgress).await?;
        let manifest = push_manifest(options, self.url().as_str(), root, dir)?;
        let mut session = PushSession::start(dir, root, &tree, options, &manifest, progress)?;
        while let Some((path, request)) = session.next_folder() {
            let id = self.call(&request).await?;
            session.folder_created(path, id);
        }
        while let Some(wave) = session.next_wave(options.jobs) {
            for folder in &wave.list_first {
                session.listed(*folder, self.call(&list_request(*folder)).await?);
            }
            // The round's uploads at once (the client's concurrency bound applies too).
            let results: Vec<Result<(), redcap_core::Error>> =
                futures_util::future::join_all(wave.uploads.iter().map(|u| self.call(&u.request))).await;
            let mut after = Vec::new();
            for folder in PushSession::list_after(&wave.uploads, &results) {
                after.push((folder, self.call(&list_request(folder)).await));
            }
            session.wave_finished(wave.uploads, results, after)?;
        }
        session.finish()
    }

    async fn export_report<R: DeserializeOwned + Send>(
        &self,
        id: ReportId,
        options: &ReportOptions,
    ) -> Result<Vec<R>, WorkflowError> {
        Ok(self.call(&options.request(id, redcap_core::Format::Json)).await?.rows_as()?)
    }

    async fn export_report_csv<W: AsyncWrite + Unpin + Send + ?Sized>(
        &self,
        id: ReportId,
        options: &ReportOptions,
        sink: &mut W,
    ) -> Result<u64, WorkflowError> {
        Ok(self.stream(&options.request(id, redcap_core::Format::Csv), sink).await?.bytes)
    }

    async fn export_report_each(
        &self,
        id: ReportId,
        options: &ReportOptions,
        each: &mut (dyn FnMut(Row) -> Result<(), WorkflowError> + Send),
    ) -> Result<u64, WorkflowError> {
        let mut sink = RowStream::new("", each);
        stream_rows(self, &options.request(id, redcap_core::Format::Json), &mut sink).await?;
        Ok(sink.rows)
    }

    async fn export_logging_each(
        &self,
        request: &log::export::Request,
        each: &mut (dyn FnMut(Row) -> Result<(), WorkflowError> + Send),
    ) -> Result<u64, WorkflowError> {
        let mut request = request.clone();
        request.format = Some(redcap_core::Format::Json);
        let mut sink = RowStream::new("", each);
        stream_rows(self, &request, &mut sink).await?;
        Ok(sink.rows)
    }

    async fn export_logging_windowed(
        &self,
        request: &log::export::Request,
        window_minutes: u32,
        progress: &dyn Progress,
        each: &mut (dyn FnMut(Row) -> Result<(), WorkflowError> + Send),
    ) -> Result<LogSummary, WorkflowError> {
        let mut windows = LogWindows::new(request, window_minutes, std::time::SystemTime::now(), progress);
        while let Some(request) = windows.next_request() {
            let mut rows = Vec::new();
            let mut keep = |row| {
                rows.push(row);
                Ok(())
            };
            let answer = stream_rows(self, &request, &mut RowStream::new("", &mut keep)).await.map(|()| rows);
            for row in windows.answer(answer)? {
                each(row)?;
            }
        }
        let (rest, summary) = windows.finish();
        for row in rest {
            each(row)?;
        }
        Ok(summary)
    }

    async fn export_records_batched(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<Row>, WorkflowError> {
        let mut rows = Vec::new();
        self.export_records_each(template, options, progress, &mut |row| {
            rows.push(row);
            Ok(())
        })
        .await?;
        Ok(rows)
    }

    async fn export_records_each<R: ExportRow>(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
        each: &mut (dyn FnMut(R) -> Result<(), WorkflowError> + Send),
    ) -> Result<ExportSummary, WorkflowError> {
        if let Some(request) = ExportSession::single_request(template, options) {
            progress.event(ProgressEvent::Planned { items: 1, bytes: None });
            progress.event(ProgressEvent::Started { item: "batch 1/1".into(), bytes: None });
            // No healer reads the id here; a named record's rows carry it anyway.
            let mut sink = RowStream::new("", each);
            stream_rows(self, &request, &mut sink).await?;
            progress.event(ProgressEvent::Finished { item: "batch 1/1".into(), bytes: sink.rows });
            return Ok(ExportSummary::single(sink.rows));
        }
        let metadata = self.call(&metadata::export::Request::new()).await?;
        if options.is_one_call() {
            let session = ExportSession::whole(template, &metadata, options, progress)?;
            return run_export(self, session, 1, each).await;
        }
        let (id_field, ids_request) = ExportSession::id_request(template, &metadata)?;
        let mut ids = Vec::new();
        stream_rows(self, &ids_request, &mut RowStream::new(&id_field, &mut distinct_ids(&id_field, &mut ids))).await?;
        let session = ExportSession::start(template, &metadata, id_field.clone(), ids, options, progress);
        run_export(self, session, options.parallel, each).await
    }

    async fn import_records_batched<R: serde::Serialize + Sync>(
        &self,
        rows: &[R],
        import: &ImportOptions,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<u64, WorkflowError> {
        let rows = to_rows(rows)?;
        let metadata = self.call(&metadata::export::Request::new()).await?;
        let mut session = ImportSession::start(rows, import, &metadata, options, progress)?;
        while let Some((request, pause)) = session.next_batch() {
            tokio::time::sleep(pause).await;
            session.add(self.call(&request).await)?;
        }
        Ok(session.finish())
    }
}

/// Sends what the session asks for, up to `parallel` calls at once (the client's pacing and
/// concurrency bound apply to each), and hands the rows on in order as the answers stream in.
async fn run_export<T, S, R: ExportRow>(
    client: &Client<T>,
    session: ExportSession<'_, R>,
    parallel: usize,
    each: &mut (dyn FnMut(R) -> Result<(), WorkflowError> + Send),
) -> Result<ExportSummary, WorkflowError>
where
    T: for<'a> Transport<Body = S, Reply<'a>: Future<Output = Result<http::Response<S>, TransportError>>> + 'static,
    S: futures_util::Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    let id_field = session.id_field().to_owned();
    let id_field = id_field.as_str();
    // The answers in flight all feed the session as they stream; the lock is never held
    // across an await.
    let shared = std::sync::Mutex::new((session, each));
    let lock = || shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < parallel.max(1) {
            let Some((ticket, request, pause)) = lock().0.next_batch() else { break };
            let shared = &shared;
            running.push(async move {
                tokio::time::sleep(pause).await;
                // An error from the session or from `each` stops the export; one from the
                // answer goes to the session, which may heal it.
                let mut stopped = false;
                let mut take = |row| {
                    let mut guard = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let (session, each) = &mut *guard;
                    let r = session.row(ticket, row, &mut **each);
                    stopped |= r.is_err();
                    r
                };
                let outcome = stream_rows(client, &request, &mut RowStream::new(id_field, &mut take)).await;
                (ticket, outcome, stopped)
            });
        }
        let Some((ticket, outcome, stopped)) = running.next().await else { break };
        let mut guard = lock();
        let (session, each) = &mut *guard;
        match outcome {
            Err(e) if stopped => return Err(e),
            outcome => session.end(ticket, outcome, &mut **each)?,
        }
    }
    drop(running);
    let (session, _) = shared.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(session.finish())
}

/// Exports the records `ids` with `template` (a batch request) in batches of `batch_size` that
/// heal themselves (the dataset pull plans and checkpoints its own batches, and hands over one
/// whose first answer failed already halved); split events go to `progress`.
pub(crate) async fn export_healed<T, S>(
    client: &Client<T>,
    template: &record::export::Request,
    metadata: &[crate::rows::Field],
    id_field: &str,
    ids: Vec<String>,
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<(Vec<Row>, HealReport), WorkflowError>
where
    T: for<'a> Transport<Body = S, Reply<'a>: Future<Output = Result<http::Response<S>, TransportError>>> + 'static,
    S: futures_util::Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    let splits = only_splits(progress);
    let options = BatchOptions::default().batch_size(batch_size);
    let session = ExportSession::start(template, metadata, id_field.to_owned(), ids, &options, &splits);
    let mut rows = Vec::new();
    let summary = run_export(client, session, 1, &mut |row| {
        rows.push(row);
        Ok(())
    })
    .await?;
    Ok((rows, summary.healing))
}

/// Streams one export's body through `sink`; the sink's own error (a row the caller could not
/// take) wins over the transport's report of it.
async fn stream_rows<T, S, R, F, M>(
    client: &Client<T>,
    request: &M,
    sink: &mut RowStream<'_, R, F>,
) -> Result<(), WorkflowError>
where
    T: for<'a> Transport<Body = S, Reply<'a>: Future<Output = Result<http::Response<S>, TransportError>>> + 'static,
    S: futures_util::Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
    R: ExportRow,
    F: FnMut(R) -> Result<(), WorkflowError> + Send + ?Sized,
    M: redcap_core::Method + Sync,
{
    let sent = client.stream(request, sink).await;
    if let Some(e) = sink.error.take() {
        return Err(e);
    }
    sent?;
    sink.finish()
}
