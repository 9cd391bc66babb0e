//! Workflows for the blocking client: the calls only; sessions in `workflow` keep the books.

use std::io::Write;
use std::path::Path;

use redcap_blocking::Client;
use redcap_core::{Row, Transport, TransportError};
use serde::de::DeserializeOwned;

use crate::workflow::{
    BatchOptions, ExportRow, ExportSession, ExportSummary, HealReport, ImportOptions, ImportSession, LogSummary,
    LogWindows, Progress, ProgressEvent, PullOptions, PullSession, PushOptions, PushSession, RemoteTree, ReportId,
    ReportOptions, RowStream, Ticket, TransferSummary, TreeWalk, WorkflowError, distinct_ids, list_request,
    only_splits, push_manifest, to_rows,
};
use crate::{log, metadata, record};

/// The workflows, on the blocking client: `use redcap::blocking::Workflows;`.
pub trait Workflows {
    /// Walks the File Repository from `root` (`None`: the top level), one listing per folder.
    fn walk(&self, root: Option<u64>, progress: &dyn Progress) -> Result<RemoteTree, WorkflowError>;

    /// Mirrors `root` into `dir`: every file written atomically, a manifest so a re-run
    /// downloads only what is new, nothing local removed unless `options.delete`. A failure in
    /// one file is reported in the summary and the others go on.
    fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError>;

    /// Uploads `dir` into `root`: creates missing folders, uploads files not yet pushed (by the
    /// manifest, unless `options.force`), and records each upload's `doc_id`. Uploads are never
    /// retried, so a failed one is reported, not duplicated.
    fn push(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError>;

    /// Exports report `id` into typed rows (`T: Deserialize`, or [`Row`] for generic rows).
    fn export_report<R: DeserializeOwned>(
        &self,
        id: ReportId,
        options: &ReportOptions,
    ) -> Result<Vec<R>, WorkflowError>;

    /// Streams report `id` as CSV into `sink`; returns the bytes written.
    fn export_report_csv(
        &self,
        id: ReportId,
        options: &ReportOptions,
        sink: &mut dyn Write,
    ) -> Result<u64, WorkflowError>;

    /// Exports report `id` as JSON, decoding the answer while it streams and handing every row to
    /// `each`, in order: nothing is kept, so memory stays at one row. Returns the number of rows.
    fn export_report_each(
        &self,
        id: ReportId,
        options: &ReportOptions,
        each: &mut dyn FnMut(Row) -> Result<(), WorkflowError>,
    ) -> Result<u64, WorkflowError>;

    /// Exports the project's logging with `request`'s filters as JSON (whatever its format),
    /// handing every entry to `each` as the answer streams, in constant memory like
    /// [`Workflows::export_report_each`]. Returns the number of entries.
    fn export_logging_each(
        &self,
        request: &log::export::Request,
        each: &mut dyn FnMut(Row) -> Result<(), WorkflowError>,
    ) -> Result<u64, WorkflowError>;

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
        each: &mut dyn FnMut(Row) -> Result<(), WorkflowError>,
    ) -> Result<LogSummary, WorkflowError>;

    /// Exports records in batches of whole records (ids first, then batches), checking that
    /// every requested record and column came back. `template` carries fields, forms, events,
    /// filters. A batch that fails in a way a smaller one may survive (5xx, a timeout, a
    /// memory message, an empty or cut answer, rows or columns missing) is halved and asked
    /// again, down to one record, then instrument by instrument (see [`crate::workflow::heal`];
    /// each split is a [`ProgressEvent::Split`]). With [`BatchOptions::parallel`] above 1,
    /// that many calls are in flight at once, each on its own thread.
    fn export_records_batched(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<Row>, WorkflowError>;

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
        each: &mut dyn FnMut(R) -> Result<(), WorkflowError>,
    ) -> Result<ExportSummary, WorkflowError>;

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
    ) -> Result<u64, WorkflowError>;
}

impl<T> Workflows for Client<T>
where
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + Sync + 'static,
    T::Body: std::io::Read,
{
    fn walk(&self, root: Option<u64>, progress: &dyn Progress) -> Result<RemoteTree, WorkflowError> {
        let mut walk = TreeWalk::new(root);
        // Up to the client's concurrency bound of listings in flight, each on its own thread (a
        // tree of many folders was listed one round trip at a time); the walk stays here.
        let limit = self.concurrency().max(1);
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel();
            let mut running = 0usize;
            loop {
                while running < limit {
                    let Some((folder, path)) = walk.next_folder() else { break };
                    running += 1;
                    let tx = tx.clone();
                    scope.spawn(move || {
                        answer_even_on_panic(
                            "a listing thread",
                            || self.call(&list_request(folder)).map_err(WorkflowError::from),
                            |listed| drop(tx.send((folder, path, listed))),
                        )
                    });
                }
                if running == 0 {
                    break;
                }
                let (folder, path, entries) =
                    rx.recv().map_err(|_| WorkflowError::Worker("a listing thread ended without its answer".into()))?;
                running -= 1;
                progress.event(ProgressEvent::FolderListed { path: path.clone() });
                walk.add_listing(folder, &path, entries?)?;
            }
            Ok(walk.finish())
        })
    }

    fn pull(
        &self,
        root: Option<u64>,
        dir: &Path,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        PullSession::check_dir(dir)?;
        let tree = self.walk(root, progress)?;
        let mut session = PullSession::start(dir, &tree, options, progress)?;
        let downloads = session.downloads();
        let jobs = options.jobs.clamp(1, downloads.len().max(1));
        if jobs == 1 {
            for (item, request, target) in downloads {
                session.started(&item);
                let result = self.download_to(&request, &target).map(|d| d.bytes);
                session.finished(&item, result)?;
            }
            return session.finish(options);
        }
        // `jobs` threads download (each writes, checks, syncs and renames its own file, so the
        // fsyncs overlap); this thread keeps the books as results arrive.
        let queue = std::sync::Mutex::new(downloads.into_iter());
        let stop = std::sync::atomic::AtomicBool::new(false);
        let mut failure = None;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel();
            for _ in 0..jobs {
                let (tx, queue, stop) = (tx.clone(), &queue, &stop);
                scope.spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some((item, request, target)) = next else { break };
                        progress.event(ProgressEvent::Started { item: item.path.clone(), bytes: None });
                        let result = self.download_to(&request, &target).map(|d| d.bytes);
                        if tx.send((item, result)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for (item, result) in rx {
                if failure.is_none() {
                    if let Err(e) = session.finished(&item, result) {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                        failure = Some(e);
                    }
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => session.finish(options),
        }
    }

    fn push(
        &self,
        dir: &Path,
        root: Option<u64>,
        options: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<TransferSummary, WorkflowError> {
        let tree = self.walk(root, &crate::workflow::NoProgress)?;
        let manifest = push_manifest(options, self.url().as_str(), root, dir)?;
        let mut session = PushSession::start(dir, root, &tree, options, &manifest, progress)?;
        while let Some((path, request)) = session.next_folder() {
            let id = self.call(&request)?;
            session.folder_created(path, id);
        }
        while let Some(wave) = session.next_wave(options.jobs) {
            for folder in &wave.list_first {
                session.listed(*folder, self.call(&list_request(*folder))?);
            }
            // One thread per upload of the round (at most `jobs`).
            let results: Vec<Result<(), redcap_core::Error>> = match wave.uploads.as_slice() {
                [one] => vec![self.call(&one.request)],
                many => std::thread::scope(|scope| {
                    let running: Vec<_> = many.iter().map(|u| scope.spawn(move || self.call(&u.request))).collect();
                    running.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
                }),
            };
            let after = PushSession::list_after(&wave.uploads, &results)
                .into_iter()
                .map(|folder| (folder, self.call(&list_request(folder))))
                .collect();
            session.wave_finished(wave.uploads, results, after)?;
        }
        session.finish()
    }

    fn export_report<R: DeserializeOwned>(
        &self,
        id: ReportId,
        options: &ReportOptions,
    ) -> Result<Vec<R>, WorkflowError> {
        Ok(self.call(&options.request(id, redcap_core::Format::Json))?.rows_as()?)
    }

    fn export_report_csv(
        &self,
        id: ReportId,
        options: &ReportOptions,
        sink: &mut dyn Write,
    ) -> Result<u64, WorkflowError> {
        Ok(self.stream(&options.request(id, redcap_core::Format::Csv), sink)?.bytes)
    }

    fn export_report_each(
        &self,
        id: ReportId,
        options: &ReportOptions,
        each: &mut dyn FnMut(Row) -> Result<(), WorkflowError>,
    ) -> Result<u64, WorkflowError> {
        let mut sink = RowStream::new("", each);
        stream_rows(self, &options.request(id, redcap_core::Format::Json), &mut sink)?;
        Ok(sink.rows)
    }

    fn export_logging_each(
        &self,
        request: &log::export::Request,
        each: &mut dyn FnMut(Row) -> Result<(), WorkflowError>,
    ) -> Result<u64, WorkflowError> {
        let mut request = request.clone();
        request.format = Some(redcap_core::Format::Json);
        let mut sink = RowStream::new("", each);
        stream_rows(self, &request, &mut sink)?;
        Ok(sink.rows)
    }

    fn export_logging_windowed(
        &self,
        request: &log::export::Request,
        window_minutes: u32,
        progress: &dyn Progress,
        each: &mut dyn FnMut(Row) -> Result<(), WorkflowError>,
    ) -> Result<LogSummary, WorkflowError> {
        let mut windows = LogWindows::new(request, window_minutes, std::time::SystemTime::now(), progress);
        while let Some(request) = windows.next_request() {
            let mut rows = Vec::new();
            let mut keep = |row| {
                rows.push(row);
                Ok(())
            };
            let answer = stream_rows(self, &request, &mut RowStream::new("", &mut keep)).map(|()| rows);
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

    fn export_records_batched(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<Row>, WorkflowError> {
        let mut rows = Vec::new();
        self.export_records_each(template, options, progress, &mut |row| {
            rows.push(row);
            Ok(())
        })?;
        Ok(rows)
    }

    fn export_records_each<R: ExportRow>(
        &self,
        template: &record::export::Request,
        options: &BatchOptions,
        progress: &dyn Progress,
        each: &mut dyn FnMut(R) -> Result<(), WorkflowError>,
    ) -> Result<ExportSummary, WorkflowError> {
        if let Some(request) = ExportSession::single_request(template, options) {
            progress.event(ProgressEvent::Planned { items: 1, bytes: None });
            progress.event(ProgressEvent::Started { item: "batch 1/1".into(), bytes: None });
            // No healer reads the id here; a named record's rows carry it anyway.
            let mut sink = RowStream::new("", each);
            stream_rows(self, &request, &mut sink)?;
            progress.event(ProgressEvent::Finished { item: "batch 1/1".into(), bytes: sink.rows });
            return Ok(ExportSummary::single(sink.rows));
        }
        let metadata = self.call(&metadata::export::Request::new())?;
        let session = if options.is_one_call() {
            ExportSession::whole(template, &metadata, options, progress)?
        } else {
            let (id_field, ids_request) = ExportSession::id_request(template, &metadata)?;
            let mut ids = Vec::new();
            stream_rows(self, &ids_request, &mut RowStream::new(&id_field, &mut distinct_ids(&id_field, &mut ids)))?;
            ExportSession::start(template, &metadata, id_field.clone(), ids, options, progress)
        };
        match options.parallel {
            0 | 1 => run_export(self, session, each),
            n => run_export_parallel(self, session, n, each),
        }
    }

    fn import_records_batched<R: serde::Serialize + Sync>(
        &self,
        rows: &[R],
        import: &ImportOptions,
        options: &BatchOptions,
        progress: &dyn Progress,
    ) -> Result<u64, WorkflowError> {
        let rows = to_rows(rows)?;
        let metadata = self.call(&metadata::export::Request::new())?;
        let mut session = ImportSession::start(rows, import, &metadata, options, progress)?;
        while let Some((request, pause)) = session.next_batch() {
            std::thread::sleep(pause);
            session.add(self.call(&request))?;
        }
        Ok(session.finish())
    }
}

/// Sends what the session asks for, one call at a time, and hands the rows on in order as
/// each answer streams in.
fn run_export<T, R: ExportRow>(
    client: &Client<T>,
    mut session: ExportSession<'_, R>,
    each: &mut dyn FnMut(R) -> Result<(), WorkflowError>,
) -> Result<ExportSummary, WorkflowError>
where
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + 'static,
    T::Body: std::io::Read,
{
    let id_field = session.id_field().to_owned();
    while let Some((ticket, request, pause)) = session.next_batch() {
        std::thread::sleep(pause);
        // An error from the session or from `each` stops the export; one from the answer
        // (cut short, undecodable, refused) goes to the session, which may heal it.
        let mut stopped = false;
        let mut take = |row| {
            let r = session.row(ticket, row, each);
            stopped |= r.is_err();
            r
        };
        let outcome = stream_rows(client, &request, &mut RowStream::new(&id_field, &mut take));
        match outcome {
            Err(e) if stopped => return Err(e),
            outcome => session.end(ticket, outcome, each)?,
        }
    }
    Ok(session.finish())
}

/// Runs `work` and hands its result to `answer`; a panic is answered too (as an error naming
/// `who`) before it goes on unwinding, so a thread waiting on that answer never waits forever.
fn answer_even_on_panic<T>(
    who: &str,
    work: impl FnOnce() -> Result<T, WorkflowError>,
    answer: impl FnOnce(Result<T, WorkflowError>),
) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(result) => answer(result),
        Err(panic) => {
            answer(Err(WorkflowError::Worker(format!("{who} panicked"))));
            std::panic::resume_unwind(panic);
        }
    }
}

/// What an export thread sends the thread that owns the session.
enum Answer<R> {
    Row(Ticket, R),
    End(Ticket, Result<(), WorkflowError>),
}

/// Like [`run_export`] with up to `parallel` calls in flight, each on its own thread. The
/// threads only send and decode; the session and `each` stay on this thread, which takes
/// their rows in the order they arrive (the session orders them) through a bounded channel.
fn run_export_parallel<T, R: ExportRow>(
    client: &Client<T>,
    mut session: ExportSession<'_, R>,
    parallel: usize,
    each: &mut dyn FnMut(R) -> Result<(), WorkflowError>,
) -> Result<ExportSummary, WorkflowError>
where
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + Sync + 'static,
    T::Body: std::io::Read,
{
    let id_field = session.id_field().to_owned();
    let id_field = id_field.as_str();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Answer<R>>(1024);
        let mut running = 0usize;
        loop {
            while running < parallel {
                let Some((ticket, request, pause)) = session.next_batch() else { break };
                running += 1;
                let tx = tx.clone();
                scope.spawn(move || {
                    std::thread::sleep(pause);
                    // A send fails only once this thread's owner has stopped the export: the
                    // error ends the stream and is seen by no one.
                    let mut take = |row| {
                        tx.send(Answer::Row(ticket, row))
                            .map_err(|_| WorkflowError::Worker("the export was stopped".into()))
                    };
                    answer_even_on_panic(
                        "an export thread",
                        || stream_rows(client, &request, &mut RowStream::new(id_field, &mut take)),
                        |outcome| drop(tx.send(Answer::End(ticket, outcome))),
                    )
                });
            }
            if running == 0 {
                break;
            }
            // An error from the session or from `each` stops the export (dropping the
            // receiver ends the other threads' streams); one from an answer goes to the
            // session, which may heal it.
            match rx.recv().map_err(|_| WorkflowError::Worker("an export thread ended without its answer".into()))? {
                Answer::Row(ticket, row) => session.row(ticket, row, each)?,
                Answer::End(ticket, outcome) => {
                    running -= 1;
                    session.end(ticket, outcome, each)?;
                }
            }
        }
        Ok(session.finish())
    })
}

/// Exports the records `ids` with `template` (a batch request) in batches of `batch_size` that
/// heal themselves (the dataset pull plans and checkpoints its own batches, and hands over one
/// whose first answer failed already halved); split events go to `progress`.
pub(crate) fn export_healed<T>(
    client: &Client<T>,
    template: &record::export::Request,
    metadata: &[crate::rows::Field],
    id_field: &str,
    ids: Vec<String>,
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<(Vec<Row>, HealReport), WorkflowError>
where
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + 'static,
    T::Body: std::io::Read,
{
    let splits = only_splits(progress);
    let options = BatchOptions::default().batch_size(batch_size);
    let session = ExportSession::start(template, metadata, id_field.to_owned(), ids, &options, &splits);
    let mut rows = Vec::new();
    let summary = run_export(client, session, &mut |row| {
        rows.push(row);
        Ok(())
    })?;
    Ok((rows, summary.healing))
}

/// Streams one export's body through `sink`; the sink's own error (a row the caller could not
/// take) wins over the transport's report of it.
fn stream_rows<T, R, F, M>(client: &Client<T>, request: &M, sink: &mut RowStream<'_, R, F>) -> Result<(), WorkflowError>
where
    M: redcap_core::Method,
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + 'static,
    T::Body: std::io::Read,
    R: ExportRow,
    F: FnMut(R) -> Result<(), WorkflowError> + ?Sized,
{
    let sent = client.stream(request, sink);
    if let Some(e) = sink.error.take() {
        return Err(e);
    }
    sent?;
    sink.finish()
}
