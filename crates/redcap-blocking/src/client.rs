//! The blocking client: one retry/redirect loop around any blocking [`Transport`].

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use redcap_core::exchange::{self, Next, Outcome, StreamPlan, Target};
use redcap_core::{
    AfterStatus, ApiUrl, Attempts, Build, Bytes, ClientSettings, DEFAULT_CONCURRENCY, DEFAULT_MAX_BUFFERED,
    DownloadHead, Downloaded, DynamicCall, Error, FailureKind, Method, MethodInfo, Pacer, PreparedRequest, RetryPolicy,
    StallGuard, Streamed, Token, Transport, TransportConfig, TransportError, prepare,
};

use crate::transport::UreqTransport;

/// How many calls of all threads sharing a client may be in flight, and their pacing.
#[derive(Debug)]
struct Limits {
    in_flight: Mutex<usize>,
    freed: Condvar,
    concurrency: usize,
    pacer: Option<Mutex<Pacer>>,
}

impl Limits {
    fn new(concurrency: usize, per_minute: u32) -> Self {
        Limits {
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
            concurrency: concurrency.max(1),
            pacer: (per_minute > 0).then(|| Mutex::new(Pacer::per_minute(per_minute))),
        }
    }

    /// Waits for a free slot; the slot is given back when the guard drops.
    fn enter(&self) -> Slot<'_> {
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.concurrency {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot(self)
    }

    /// Sleeps until the pacer's next slot (no-op without pacing).
    fn pace(&self) {
        if let Some(pacer) = &self.pacer {
            let wait = pacer.lock().map(|mut p| p.reserve(Instant::now())).unwrap_or_default();
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }
}

struct Slot<'a>(&'a Limits);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut n = self.0.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        self.0.freed.notify_one();
    }
}

/// A blocking REDCap client: one API URL, one token, one transport. Clones share the
/// concurrency bound and the pacing, so threads sharing a client (or its clones) together keep
/// at most `concurrency` calls in flight and start at most `requests_per_minute` a minute.
#[derive(Debug, Clone)]
pub struct Client<T = UreqTransport> {
    url: ApiUrl,
    token: Token,
    transport: T,
    policy: RetryPolicy,
    max_buffered: usize,
    limits: Arc<Limits>,
    stall: Duration,
    overall: Option<Duration>,
}

/// Builds the blocking client over ureq: `Client::builder(url, token)…build()`.
///
/// Its methods are those of [`redcap_core::ClientBuilder`] (rustdoc lists them there, not on this alias):
/// [`allow_http`](redcap_core::ClientBuilder::allow_http),
/// [`connect_timeout`](redcap_core::ClientBuilder::connect_timeout),
/// [`stall_timeout`](redcap_core::ClientBuilder::stall_timeout),
/// [`overall_timeout`](redcap_core::ClientBuilder::overall_timeout),
/// [`extra_roots_pem`](redcap_core::ClientBuilder::extra_roots_pem),
/// [`proxy_from_env`](redcap_core::ClientBuilder::proxy_from_env),
/// [`user_agent`](redcap_core::ClientBuilder::user_agent), [`retry`](redcap_core::ClientBuilder::retry),
/// [`max_buffered`](redcap_core::ClientBuilder::max_buffered),
/// [`concurrency`](redcap_core::ClientBuilder::concurrency),
/// [`requests_per_minute`](redcap_core::ClientBuilder::requests_per_minute),
/// [`settings`](redcap_core::ClientBuilder::settings), [`build`](redcap_core::ClientBuilder::build).
pub type ClientBuilder = redcap_core::ClientBuilder<Blocking>;

/// The blocking mode of [`redcap_core::ClientBuilder`].
#[derive(Debug, Clone, Copy)]
pub struct Blocking;

impl Build for Blocking {
    type Client = Client;

    fn build(settings: ClientSettings) -> Result<Client, Error> {
        let (url, token) = settings.endpoint()?;
        let transport = UreqTransport::new(&settings.transport)?;
        let mut client = Client::with_transport(url, token, transport)
            .with_retry(settings.retry)
            .with_limits(settings.concurrency, settings.requests_per_minute);
        client.max_buffered = settings.max_buffered;
        client.stall = settings.transport.stall_timeout;
        client.overall = settings.transport.overall_timeout;
        Ok(client)
    }
}

impl Client<UreqTransport> {
    /// Starts building a client for `url` with `token` (both validated by `build`).
    pub fn builder(url: impl Into<String>, token: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url, token)
    }
}

impl<T> Client<T>
where
    // `'static`: a higher-ranked bound on a GAT implies it anyway (a type-system limitation).
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + 'static,
    T::Body: Read,
{
    /// A client over any blocking transport (a recorder, a test double).
    pub fn with_transport(url: ApiUrl, token: Token, transport: T) -> Self {
        Client {
            url,
            token,
            transport,
            policy: RetryPolicy::default(),
            max_buffered: DEFAULT_MAX_BUFFERED,
            limits: Arc::new(Limits::new(DEFAULT_CONCURRENCY, 0)),
            stall: TransportConfig::default().stall_timeout,
            overall: None,
        }
    }

    /// Sets the concurrency bound (calls in flight across the threads sharing this client) and
    /// the pacing (calls started per minute, 0: none).
    pub fn with_limits(mut self, concurrency: usize, per_minute: u32) -> Self {
        self.limits = Arc::new(Limits::new(concurrency, per_minute));
        self
    }

    /// Sets the stall timeout applied to response bodies (the transport applies its own to
    /// the wait for an answer) and the overall timeout of each call, retries included.
    pub fn with_timeouts(mut self, stall: Duration, overall: Option<Duration>) -> Self {
        self.stall = stall;
        self.overall = overall;
        self
    }

    /// How many calls may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.limits.concurrency
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The API URL.
    pub fn url(&self) -> &ApiUrl {
        &self.url
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Calls `method` and decodes its answer (the body is buffered; see [`Client::stream`]).
    pub fn call<M: Method>(&self, method: &M) -> Result<M::Output, Error> {
        let prepared = prepare(method, &self.url, &self.token)?;
        let ctx = *prepared.context();
        let limit = self.max_buffered;
        self.run(M::INFO, prepared, |parts, body| match read_all(body, limit, exchange::content_length(&parts)) {
            Ok(bytes) => {
                tracing::Span::current().record("bytes", bytes.len());
                exchange::buffered::<M>(&ctx, parts, bytes)
            }
            Err(outcome) => outcome,
        })
    }

    /// Calls `method` and streams its success body into `sink` in constant memory (files,
    /// PDFs, large exports). Errors are detected before the first byte is written. A call that
    /// fails mid-body leaves what was written in `sink` and is not retried; use
    /// [`Client::download_to`] for an all-or-nothing file.
    pub fn stream<M: Method>(&self, method: &M, sink: &mut dyn Write) -> Result<Streamed, Error> {
        let prepared = prepare(method, &self.url, &self.token)?;
        self.stream_prepared(M::INFO, prepared, sink)
    }

    /// Runs a call built at run time (the CLI's `redcap call`) and streams its body to `sink`.
    pub fn stream_dynamic(&self, call: &DynamicCall, sink: &mut dyn Write) -> Result<Streamed, Error> {
        let prepared = call.prepare(&self.url, &self.token)?;
        self.stream_prepared(call.info(), prepared, sink)
    }

    fn stream_prepared(
        &self,
        info: &'static MethodInfo,
        prepared: PreparedRequest,
        sink: &mut dyn Write,
    ) -> Result<Streamed, Error> {
        let ctx = *prepared.context();
        self.run(info, prepared, |parts, mut body| {
            let prefix = match first_bytes(info, &ctx, &parts, &mut body) {
                Ok(prefix) => prefix,
                Err(outcome) => return outcome,
            };
            let head = DownloadHead::from_headers(&parts.headers);
            let expected = exchange::content_length(&parts);
            let local = Error::Output;
            if let Err(e) = sink.write_all(&prefix) {
                return Outcome::Done(Err(local(e)));
            }
            // Bytes are out now: a failure from here on cannot be retried into the same sink.
            let result = copy(&mut body, sink, 0, &|_| {}).map_err(|e| match e {
                CopyError::Read(e) => Error::Transport(e),
                CopyError::Write(e) => local(e),
            });
            Outcome::Done(result.and_then(|n| {
                let total = prefix.len() as u64 + n;
                tracing::Span::current().record("bytes", total);
                exchange::check_length(expected, total)?;
                sink.flush().map_err(local)?;
                Ok(Streamed::new(head, total))
            }))
        })
    }

    /// Downloads a file (File Repository, record file, PDF) to `target`. The bytes go to a
    /// temporary file beside the final path, are checked against Content-Length and synced,
    /// then renamed into place: on any failure nothing is left at the final path. An
    /// interrupted download of an idempotent method is retried from the start.
    pub fn download_to<M: Method>(&self, method: &M, target: &Target) -> Result<Downloaded, Error> {
        self.download_to_observed(method, target, &|_| {})
    }

    /// [`Client::download_to`], telling `on_bytes` how many bytes are written so far (for a
    /// progress bar; the count restarts if a broken download is retried).
    pub fn download_to_observed<M: Method>(
        &self,
        method: &M,
        target: &Target,
        on_bytes: &dyn Fn(u64),
    ) -> Result<Downloaded, Error> {
        let prepared = prepare(method, &self.url, &self.token)?;
        let ctx = *prepared.context();
        let info = M::INFO;
        self.run(info, prepared, |parts, mut body| {
            let prefix = match first_bytes(info, &ctx, &parts, &mut body) {
                Ok(prefix) => prefix,
                Err(outcome) => return outcome,
            };
            let head = DownloadHead::from_headers(&parts.headers);
            let final_path = target.final_path(&head);
            let local = |e: std::io::Error| Outcome::Done(Err(Error::Local { path: final_path.clone(), source: e }));
            let mut tmp = match tempfile::Builder::new().prefix(exchange::PARTIAL_PREFIX).tempfile_in(target.dir()) {
                Ok(t) => t,
                Err(e) => return local(e),
            };
            if let Err(e) = tmp.write_all(&prefix) {
                return local(e);
            }
            on_bytes(prefix.len() as u64);
            let n = match copy(&mut body, tmp.as_file_mut(), prefix.len() as u64, on_bytes) {
                Ok(n) => n,
                Err(CopyError::Read(e)) => return Outcome::Interrupted(e),
                Err(CopyError::Write(e)) => return local(e),
            };
            let total = prefix.len() as u64 + n;
            tracing::Span::current().record("bytes", total);
            if let Err(e) = exchange::check_length(exchange::content_length(&parts), total) {
                return Outcome::Interrupted(e);
            }
            if let Err(e) = tmp.as_file().sync_all() {
                return local(e);
            }
            // Only a target that may replace a file renames over one; the others fail instead.
            let placed = if target.replaces() { tmp.persist(&final_path) } else { tmp.persist_noclobber(&final_path) };
            match placed {
                Ok(_) => Outcome::Done(Ok(Downloaded::new(final_path.clone(), head, total))),
                Err(e) => local(e.error),
            }
        })
    }

    /// The retry/redirect loop. `handle` reads the body; its outcome says whether to retry.
    fn run<R>(
        &self,
        info: &'static MethodInfo,
        mut prepared: PreparedRequest,
        mut handle: impl FnMut(http::response::Parts, Guarded<T::Body>) -> Outcome<R>,
    ) -> Result<R, Error> {
        let _slot = self.limits.enter();
        let mut attempts = Attempts::new(&self.policy, info).with_overall_timeout(self.overall);
        loop {
            self.limits.pace();
            prepared.set_timeout(attempts.before_send().map_err(Error::Transport)?);
            let span = tracing::info_span!(
                "redcap.call",
                method = info.id,
                attempt = attempts.attempt(),
                status = tracing::field::Empty,
                bytes = tracing::field::Empty,
            );
            let _entered = span.enter();
            let started = Instant::now();
            let next = match self.transport.send(&prepared) {
                Err(e) => attempts.after_send_error(e),
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    span.record("status", parts.status.as_u16());
                    match attempts.after_status(prepared.url(), parts.status, &parts.headers) {
                        AfterStatus::Proceed => {}
                        AfterStatus::Retry(wait) => {
                            tracing::warn!(parent: &span, status = parts.status.as_u16(), ?wait, "transient status; retrying");
                            drop(body);
                            std::thread::sleep(wait);
                            continue;
                        }
                        AfterStatus::Redirect(url) => {
                            tracing::warn!(parent: &span, from = %prepared.url(), to = %url, "the API URL moved; re-sending the POST there (update the URL)");
                            prepared.set_url(url);
                            continue;
                        }
                        AfterStatus::Refuse(e) => return Err(Error::Redirect(e)),
                    }
                    let body = Guarded { inner: body, guard: StallGuard::new(self.stall, Instant::now()) };
                    attempts.after_outcome(handle(parts, body))
                }
            };
            match next {
                Next::Return(result) => {
                    tracing::debug!(parent: &span, elapsed = ?started.elapsed(), ok = result.is_ok(), "call finished");
                    return result;
                }
                Next::Retry { wait, why } => {
                    tracing::warn!(parent: &span, %why, ?wait, "retrying");
                    std::thread::sleep(wait);
                }
            }
        }
    }
}

/// Reads a whole body, up to `limit` bytes.
fn read_all<R>(body: impl Read, limit: usize, expected: Option<u64>) -> Result<Bytes, Outcome<R>> {
    let mut buf = Vec::with_capacity(expected.map_or(8192, |n| (n as usize).min(limit)));
    let read = body.take(limit as u64 + 1).read_to_end(&mut buf);
    if let Err(e) = read {
        return Err(Outcome::Interrupted(interrupted(e)));
    }
    if buf.len() > limit {
        return Err(Outcome::Done(Err(Error::Transport(TransportError::new(
            FailureKind::TooLarge,
            format!("the response is larger than {limit} bytes; stream it to a file instead"),
        )))));
    }
    if let Err(e) = exchange::check_length(expected, buf.len() as u64) {
        return Err(Outcome::Interrupted(e));
    }
    Ok(Bytes::from(buf))
}

/// Reads what the stream plan needs before anything is written, and returns the error outcome
/// when the response is one.
fn first_bytes<R>(
    info: &'static MethodInfo,
    ctx: &redcap_core::DecodeContext,
    parts: &http::response::Parts,
    body: &mut impl Read,
) -> Result<Bytes, Outcome<R>> {
    match exchange::stream_plan(info, parts) {
        StreamPlan::ReadError(limit) => {
            let prefix = read_up_to(body, limit).map_err(|e| Outcome::Interrupted(interrupted(e)))?;
            Err(exchange::streamed_error(info, ctx, parts.clone(), prefix))
        }
        StreamPlan::Sniff(limit) => {
            let prefix = read_up_to(body, limit).map_err(|e| Outcome::Interrupted(interrupted(e)))?;
            match exchange::sniff(info, ctx, parts, &prefix) {
                Some(outcome) => Err(outcome),
                None => Ok(prefix),
            }
        }
    }
}

fn read_up_to(body: &mut impl Read, limit: usize) -> std::io::Result<Bytes> {
    let mut buf = Vec::with_capacity(limit.min(64 * 1024));
    body.take(limit as u64).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// A body read error: the connection broke or timed out. A transport (or [`Guarded`]) that
/// knows what happened puts its [`TransportError`] inside the io::Error: it is taken as is.
fn interrupted(e: std::io::Error) -> TransportError {
    if e.get_ref().is_some_and(|inner| inner.is::<TransportError>()) {
        if let Some(Ok(t)) = e.into_inner().map(|inner| inner.downcast::<TransportError>()) {
            return *t;
        }
        return TransportError::new(FailureKind::Interrupted, "reading the response failed");
    }
    let kind = if e.kind() == std::io::ErrorKind::TimedOut { FailureKind::Timeout } else { FailureKind::Interrupted };
    TransportError::new(kind, "reading the response failed").with_source(e)
}

/// A response body under the stall rule (core's [`StallGuard`]).
struct Guarded<R> {
    inner: R,
    guard: StallGuard,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.guard.observe(Instant::now(), n).map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, e))?;
        }
        Ok(n)
    }
}

enum CopyError {
    Read(TransportError),
    Write(std::io::Error),
}

/// Copies the rest of a body into `sink`; `on_bytes` hears the running total (plus `start`).
fn copy(
    body: &mut impl Read,
    sink: &mut (impl Write + ?Sized),
    start: u64,
    on_bytes: &dyn Fn(u64),
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(interrupted(e))),
        };
        sink.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
        on_bytes(start + total);
    }
}
