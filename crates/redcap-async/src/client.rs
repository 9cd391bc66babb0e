//! The async client: one retry/redirect loop around any async [`Transport`], with bounded
//! concurrency and optional pacing.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use http::response::Parts;
use redcap_core::exchange::{self, Next, Outcome, StreamPlan, Target};
use redcap_core::{
    AfterStatus, ApiUrl, Attempts, Build, Bytes, ClientSettings, DEFAULT_CONCURRENCY, DEFAULT_MAX_BUFFERED,
    DecodeContext, DownloadHead, Downloaded, DynamicCall, Error, FailureKind, Method, MethodInfo, Pacer,
    PreparedRequest, RetryPolicy, StallGuard, Streamed, Token, Transport, TransportConfig, TransportError, prepare,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::transport::ReqwestTransport;

#[derive(Debug)]
struct Limits {
    permits: Semaphore,
    concurrency: usize,
    pacer: Option<Mutex<Pacer>>,
}

/// An async REDCap client: one API URL, one token, one transport. Cheap to clone; clones share
/// the concurrency bound and the pacing.
#[derive(Debug, Clone)]
pub struct Client<T = ReqwestTransport> {
    url: ApiUrl,
    token: Token,
    transport: Arc<T>,
    policy: RetryPolicy,
    max_buffered: usize,
    limits: Arc<Limits>,
    stall: Duration,
    overall: Option<Duration>,
}

/// Builds the async client over reqwest: `Client::builder(url, token)…build()`.
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
pub type ClientBuilder = redcap_core::ClientBuilder<Async>;

/// The async mode of [`redcap_core::ClientBuilder`].
#[derive(Debug, Clone, Copy)]
pub struct Async;

impl Build for Async {
    type Client = Client;

    fn build(settings: ClientSettings) -> Result<Client, Error> {
        let (url, token) = settings.endpoint()?;
        let transport = ReqwestTransport::new(&settings.transport)?;
        let mut client = Client::with_transport(url, token, transport)
            .with_retry(settings.retry)
            .with_limits(settings.concurrency, settings.requests_per_minute);
        client.max_buffered = settings.max_buffered;
        client.stall = settings.transport.stall_timeout;
        client.overall = settings.transport.overall_timeout;
        Ok(client)
    }
}

impl Client<ReqwestTransport> {
    /// Starts building a client for `url` with `token` (both validated by `build`).
    pub fn builder(url: impl Into<String>, token: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url, token)
    }
}

impl<T, S> Client<T>
where
    // `'static`: a higher-ranked bound on a GAT implies it anyway (a type-system limitation).
    T: for<'a> Transport<Body = S, Reply<'a>: Future<Output = Result<http::Response<S>, TransportError>>> + 'static,
    S: Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    /// A client over any async transport (a recorder, a test double).
    pub fn with_transport(url: ApiUrl, token: Token, transport: T) -> Self {
        Client {
            url,
            token,
            transport: Arc::new(transport),
            policy: RetryPolicy::default(),
            max_buffered: DEFAULT_MAX_BUFFERED,
            limits: Arc::new(Limits {
                permits: Semaphore::new(DEFAULT_CONCURRENCY),
                concurrency: DEFAULT_CONCURRENCY,
                pacer: None,
            }),
            stall: TransportConfig::default().stall_timeout,
            overall: None,
        }
    }

    /// Sets the stall timeout applied to response bodies (the transport applies its own to
    /// the wait for an answer) and the overall timeout of each call, retries included.
    pub fn with_timeouts(mut self, stall: Duration, overall: Option<Duration>) -> Self {
        self.stall = stall;
        self.overall = overall;
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the concurrency bound and the pacing (0: none).
    pub fn with_limits(mut self, concurrency: usize, per_minute: u32) -> Self {
        let concurrency = concurrency.max(1);
        self.limits = Arc::new(Limits {
            permits: Semaphore::new(concurrency),
            concurrency,
            pacer: (per_minute > 0).then(|| Mutex::new(Pacer::per_minute(per_minute))),
        });
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

    /// How many calls may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.limits.concurrency
    }

    /// Calls `method` and decodes its answer (the body is buffered; see [`Client::stream`]).
    pub async fn call<M: Method>(&self, method: &M) -> Result<M::Output, Error> {
        let prepared = prepare(method, &self.url, &self.token)?;
        let ctx = *prepared.context();
        let mut handler = Buffered::<M> { ctx, limit: self.max_buffered, method: PhantomData };
        self.run(M::INFO, prepared, &mut handler).await
    }

    /// Calls `method` and streams its success body into `sink` in constant memory. Errors are
    /// detected before the first byte is written. A call that fails mid-body leaves what was
    /// written in `sink` and is not retried; use [`Client::download_to`] for an all-or-nothing file.
    pub async fn stream<M: Method, W: AsyncWrite + Unpin + Send + ?Sized>(
        &self,
        method: &M,
        sink: &mut W,
    ) -> Result<Streamed, Error> {
        let prepared = prepare(method, &self.url, &self.token)?;
        self.stream_prepared(M::INFO, prepared, sink).await
    }

    /// Runs a call built at run time and streams its body to `sink`.
    pub async fn stream_dynamic<W: AsyncWrite + Unpin + Send + ?Sized>(
        &self,
        call: &DynamicCall,
        sink: &mut W,
    ) -> Result<Streamed, Error> {
        let prepared = call.prepare(&self.url, &self.token)?;
        self.stream_prepared(call.info(), prepared, sink).await
    }

    async fn stream_prepared<W: AsyncWrite + Unpin + Send + ?Sized>(
        &self,
        info: &'static MethodInfo,
        prepared: PreparedRequest,
        sink: &mut W,
    ) -> Result<Streamed, Error> {
        let ctx = *prepared.context();
        self.run(info, prepared, &mut ToSink { info, ctx, sink }).await
    }

    /// Downloads a file (File Repository, record file, PDF) to `target`. The bytes go to a
    /// temporary file beside the final path, are checked against Content-Length and synced,
    /// then renamed into place: on any failure nothing is left at the final path. An
    /// interrupted download of an idempotent method is retried from the start.
    pub async fn download_to<M: Method>(&self, method: &M, target: &Target) -> Result<Downloaded, Error> {
        self.download_to_observed(method, target, &|_| {}).await
    }

    /// [`Client::download_to`], telling `on_bytes` how many bytes are written so far (for a
    /// progress bar; the count restarts if a broken download is retried).
    pub async fn download_to_observed<M: Method>(
        &self,
        method: &M,
        target: &Target,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<Downloaded, Error> {
        let prepared = prepare(method, &self.url, &self.token)?;
        let ctx = *prepared.context();
        self.run(M::INFO, prepared, &mut ToFile { info: M::INFO, ctx, target, on_bytes }).await
    }

    /// The retry/redirect loop. `handler` reads the body; its outcome says whether to retry.
    async fn run<H: Handle<Guarded<S>>>(
        &self,
        info: &'static MethodInfo,
        mut prepared: PreparedRequest,
        handler: &mut H,
    ) -> Result<H::Output, Error> {
        let _permit =
            self.limits.permits.acquire().await.map_err(|_| {
                Error::Transport(TransportError::new(FailureKind::Other, "the client is shutting down"))
            })?;
        let mut attempts = Attempts::new(&self.policy, info).with_overall_timeout(self.overall);
        loop {
            if let Some(pacer) = &self.limits.pacer {
                let wait = pacer.lock().map(|mut p| p.reserve(Instant::now())).unwrap_or_default();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            // After pacing, as the blocking client does: the wait counts against the overall deadline.
            prepared.set_timeout(attempts.before_send().map_err(Error::Transport)?);
            let span = tracing::info_span!(
                "redcap.call",
                method = info.id,
                attempt = attempts.attempt(),
                status = tracing::field::Empty,
                bytes = tracing::field::Empty,
            );
            let started = Instant::now();
            let next = match tracing::Instrument::instrument(self.transport.send(&prepared), span.clone()).await {
                Err(e) => attempts.after_send_error(e),
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    span.record("status", parts.status.as_u16());
                    match attempts.after_status(prepared.url(), parts.status, &parts.headers) {
                        AfterStatus::Proceed => {}
                        AfterStatus::Retry(wait) => {
                            tracing::warn!(parent: &span, status = parts.status.as_u16(), ?wait, "transient status; retrying");
                            drop(body);
                            tokio::time::sleep(wait).await;
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
                    let outcome = tracing::Instrument::instrument(handler.handle(parts, body), span.clone()).await;
                    attempts.after_outcome(outcome)
                }
            };
            match next {
                Next::Return(result) => {
                    tracing::debug!(parent: &span, elapsed = ?started.elapsed(), ok = result.is_ok(), "call finished");
                    return result;
                }
                Next::Retry { wait, why } => {
                    tracing::warn!(parent: &span, %why, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// A response body under the stall rule (core's [`StallGuard`]).
struct Guarded<S> {
    inner: S,
    guard: StallGuard,
}

impl<S> Stream for Guarded<S>
where
    S: Stream<Item = Result<Bytes, TransportError>> + Unpin,
{
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                Poll::Ready(Some(this.guard.observe(Instant::now(), chunk.len()).map(|()| chunk)))
            }
            other => other,
        }
    }
}

/// What a call does with a response body. A trait with `Send` futures rather than an async
/// closure: the futures of closures that borrow are not provably `Send` for every lifetime,
/// which made the client's futures impossible to spawn.
trait Handle<S> {
    type Output: Send;
    fn handle(&mut self, parts: Parts, body: S) -> impl Future<Output = Outcome<Self::Output>> + Send;
}

/// Buffers the body and decodes it as `M`'s output.
struct Buffered<M> {
    ctx: DecodeContext,
    limit: usize,
    method: PhantomData<fn() -> M>,
}

impl<M: Method, S> Handle<S> for Buffered<M>
where
    S: Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    type Output = M::Output;

    async fn handle(&mut self, parts: Parts, body: S) -> Outcome<M::Output> {
        match read_all(body, self.limit, exchange::content_length(&parts)).await {
            Ok(bytes) => {
                tracing::Span::current().record("bytes", bytes.len());
                exchange::buffered::<M>(&self.ctx, parts, bytes)
            }
            Err(outcome) => outcome,
        }
    }
}

/// Streams the body into the caller's writer.
struct ToSink<'a, W: ?Sized> {
    info: &'static MethodInfo,
    ctx: DecodeContext,
    sink: &'a mut W,
}

impl<W, S> Handle<S> for ToSink<'_, W>
where
    W: AsyncWrite + Unpin + Send + ?Sized,
    S: Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    type Output = Streamed;

    async fn handle(&mut self, parts: Parts, mut body: S) -> Outcome<Streamed> {
        let (prefix, rest) = match first_bytes(self.info, &self.ctx, &parts, &mut body).await {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let head = DownloadHead::from_headers(&parts.headers);
        let expected = exchange::content_length(&parts);
        let sink = &mut *self.sink;
        if let Err(e) = sink.write_all(&prefix).await {
            return Outcome::Done(Err(Error::Output(e)));
        }
        if let Err(e) = sink.write_all(&rest).await {
            return Outcome::Done(Err(Error::Output(e)));
        }
        // Bytes are out now: a failure from here on cannot be retried into the same sink.
        let result = copy(&mut body, sink, 0, &|_| {}).await.map_err(|e| match e {
            CopyError::Read(e) => Error::Transport(e),
            CopyError::Write(e) => Error::Output(e),
        });
        let result = match result {
            Ok(n) => {
                let total = (prefix.len() + rest.len()) as u64 + n;
                tracing::Span::current().record("bytes", total);
                match exchange::check_length(expected, total) {
                    Ok(()) => sink.flush().await.map(|_| Streamed::new(head, total)).map_err(Error::Output),
                    Err(e) => Err(Error::Transport(e)),
                }
            }
            Err(e) => Err(e),
        };
        Outcome::Done(result)
    }
}

/// Writes the body to a temporary file and renames it into place.
struct ToFile<'a> {
    info: &'static MethodInfo,
    ctx: DecodeContext,
    target: &'a Target,
    on_bytes: &'a (dyn Fn(u64) + Sync),
}

impl<S> Handle<S> for ToFile<'_>
where
    S: Stream<Item = Result<Bytes, TransportError>> + Send + Unpin,
{
    type Output = Downloaded;

    async fn handle(&mut self, parts: Parts, mut body: S) -> Outcome<Downloaded> {
        let (prefix, rest) = match first_bytes(self.info, &self.ctx, &parts, &mut body).await {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let head = DownloadHead::from_headers(&parts.headers);
        let final_path = self.target.final_path(&head);
        let local = |e: std::io::Error| Outcome::Done(Err(Error::Local { path: final_path.clone(), source: e }));
        let tmp = match tempfile::Builder::new().prefix(exchange::PARTIAL_PREFIX).tempfile_in(self.target.dir()) {
            Ok(t) => t,
            Err(e) => return local(e),
        };
        let std_file = match tmp.as_file().try_clone() {
            Ok(f) => f,
            Err(e) => return local(e),
        };
        let mut file = tokio::fs::File::from_std(std_file);
        for chunk in [&prefix, &rest] {
            if let Err(e) = file.write_all(chunk).await {
                return local(e);
            }
        }
        let start = (prefix.len() + rest.len()) as u64;
        (self.on_bytes)(start);
        let n = match copy(&mut body, &mut file, start, self.on_bytes).await {
            Ok(n) => n,
            Err(CopyError::Read(e)) => return Outcome::Interrupted(e),
            Err(CopyError::Write(e)) => return local(e),
        };
        let total = start + n;
        tracing::Span::current().record("bytes", total);
        if let Err(e) = exchange::check_length(exchange::content_length(&parts), total) {
            return Outcome::Interrupted(e);
        }
        if let Err(e) = file.flush().await {
            return local(e);
        }
        if let Err(e) = file.sync_all().await {
            return local(e);
        }
        drop(file);
        // Only a target that may replace a file renames over one; the others fail instead.
        let placed = if self.target.replaces() { tmp.persist(&final_path) } else { tmp.persist_noclobber(&final_path) };
        match placed {
            Ok(_) => Outcome::Done(Ok(Downloaded::new(final_path.clone(), head, total))),
            Err(e) => local(e.error),
        }
    }
}

/// Reads a whole body, up to `limit` bytes.
async fn read_all<R, S>(mut body: S, limit: usize, expected: Option<u64>) -> Result<Bytes, Outcome<R>>
where
    S: Stream<Item = Result<Bytes, TransportError>> + Unpin,
{
    let mut buf = Vec::with_capacity(expected.map_or(8192, |n| (n as usize).min(limit)));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Outcome::Interrupted(interrupted(e)))?;
        buf.extend_from_slice(&chunk);
        if buf.len() > limit {
            return Err(Outcome::Done(Err(Error::Transport(TransportError::new(
                FailureKind::TooLarge,
                format!("the response is larger than {limit} bytes; stream it to a file instead"),
            )))));
        }
    }
    exchange::check_length(expected, buf.len() as u64).map_err(Outcome::Interrupted)?;
    Ok(Bytes::from(buf))
}

/// Reads what the stream plan needs before anything is written. Returns the inspected prefix
/// and any bytes of the last chunk beyond it, or the error outcome.
async fn first_bytes<R, S>(
    info: &'static MethodInfo,
    ctx: &redcap_core::DecodeContext,
    parts: &http::response::Parts,
    body: &mut S,
) -> Result<(Bytes, Bytes), Outcome<R>>
where
    S: Stream<Item = Result<Bytes, TransportError>> + Unpin,
{
    let (limit, error) = match exchange::stream_plan(info, parts) {
        StreamPlan::ReadError(limit) => (limit, true),
        StreamPlan::Sniff(limit) => (limit, false),
    };
    let mut buf = Vec::new();
    while buf.len() < limit {
        match body.next().await {
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(Outcome::Interrupted(interrupted(e))),
            None => break,
        }
    }
    let mut prefix = Bytes::from(buf);
    let rest = if prefix.len() > limit { prefix.split_off(limit) } else { Bytes::new() };
    if error {
        return Err(exchange::streamed_error(info, ctx, parts.clone(), prefix));
    }
    match exchange::sniff(info, ctx, parts, &prefix) {
        Some(outcome) => Err(outcome),
        None => Ok((prefix, rest)),
    }
}

/// A body read error: the connection broke or timed out.
fn interrupted(e: TransportError) -> TransportError {
    match e.kind() {
        FailureKind::Timeout | FailureKind::Interrupted => e,
        _ => TransportError::new(FailureKind::Interrupted, "reading the response failed").with_source(e),
    }
}

enum CopyError {
    Read(TransportError),
    Write(std::io::Error),
}

/// Copies the rest of a body into `sink`; `on_bytes` hears the running total (plus `start`).
async fn copy<S, W>(body: &mut S, sink: &mut W, start: u64, on_bytes: &(dyn Fn(u64) + Sync)) -> Result<u64, CopyError>
where
    S: Stream<Item = Result<Bytes, TransportError>> + Unpin,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut total = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| CopyError::Read(interrupted(e)))?;
        sink.write_all(&chunk).await.map_err(CopyError::Write)?;
        total += chunk.len() as u64;
        on_bytes(start + total);
    }
    Ok(total)
}
