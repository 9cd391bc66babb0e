//! The async client: one retry/redirect loop around any async [`Transport`], with bounded
//! concurrency and optional pacing.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use redcap_core::driver::{Call, CallConfig, Step};
use redcap_core::exchange::Target;
use redcap_core::{
    ApiUrl, Build, Bytes, ClientSettings, DEFAULT_CONCURRENCY, Downloaded, DynamicCall, Error, FailureKind, Method,
    MethodInfo, Pacer, PreparedRequest, RetryPolicy, Streamed, Token, Transport, TransportError, prepare,
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
    config: CallConfig,
    limits: Arc<Limits>,
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
            .with_limits(settings.concurrency, settings.requests_per_minute);
        client.config = CallConfig::from_settings(&settings);
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
            config: CallConfig::default(),
            limits: Arc::new(Limits {
                permits: Semaphore::new(DEFAULT_CONCURRENCY),
                concurrency: DEFAULT_CONCURRENCY,
                pacer: None,
            }),
        }
    }

    /// Sets the stall timeout applied to response bodies (the transport applies its own to
    /// the wait for an answer) and the overall timeout of each call, retries included.
    pub fn with_timeouts(mut self, stall: Duration, overall: Option<Duration>) -> Self {
        self.config.stall = stall;
        self.config.overall = overall;
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.config.policy = policy;
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
        let call = Call::<M::Output>::buffered::<M>(prepared, &self.config, self.limits.pacer.as_ref());
        self.drive(call, None::<&mut tokio::io::Sink>, &|_| {}).await
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
        self.drive(Call::stream(info, prepared, &self.config, self.limits.pacer.as_ref()), Some(sink), &|_| {}).await
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
        let call = Call::download(M::INFO, prepared, &self.config, self.limits.pacer.as_ref(), target);
        self.drive(call, None::<&mut tokio::io::Sink>, on_bytes).await
    }

    /// Performs the I/O `call` asks for until it is over (core's driver decides everything).
    async fn drive<R: Send, W: AsyncWrite + Unpin + Send + ?Sized>(
        &self,
        mut call: Call<'_, R>,
        mut sink: Option<&mut W>,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<R, Error> {
        let _permit =
            self.limits.permits.acquire().await.map_err(|_| {
                Error::Transport(TransportError::new(FailureKind::Other, "the client is shutting down"))
            })?;
        let mut body: Option<S> = None;
        let mut file: Option<tokio::fs::File> = None;
        loop {
            match call.step() {
                Step::Send => {
                    // The last attempt's body goes first: its connection returns to the pool.
                    drop(body.take());
                    file = None;
                    let span = call.span().clone();
                    let reply = tracing::Instrument::instrument(self.transport.send(call.request()), span).await;
                    body = call.reply(reply);
                }
                Step::Sleep(wait) => {
                    body = None;
                    file = None;
                    tokio::time::sleep(wait).await;
                }
                Step::Read(_) => match body.as_mut() {
                    Some(b) => match b.next().await {
                        Some(Ok(bytes)) => call.chunk(bytes),
                        Some(Err(e)) => call.read_failed(e),
                        None => call.end(),
                    },
                    None => call.end(),
                },
                Step::Write(bytes) => {
                    let written = match sink.as_mut() {
                        Some(sink) => sink.write_all(&bytes).await,
                        None => Err(no_output()),
                    };
                    call.written(written);
                }
                Step::WriteFile(bytes) => {
                    if file.is_none() {
                        file = call.staged_file().and_then(|f| f.try_clone().ok()).map(tokio::fs::File::from_std);
                    }
                    let written = match file.as_mut() {
                        Some(f) => f.write_all(&bytes).await,
                        None => Err(no_output()),
                    };
                    call.written(written);
                    on_bytes(call.bytes_written());
                }
                Step::Flush => {
                    let flushed = match sink.as_mut() {
                        Some(sink) => sink.flush().await,
                        None => Ok(()),
                    };
                    call.finished(flushed);
                }
                Step::SyncFile => {
                    let synced = match file.take() {
                        Some(mut f) => match f.flush().await {
                            Ok(()) => f.sync_all().await,
                            Err(e) => Err(e),
                        },
                        // Nothing was written: the staged file is empty, and there is nothing to sync.
                        None => Ok(()),
                    };
                    call.finished(synced);
                }
                Step::Done(result) => return result,
            }
        }
    }
}

fn no_output() -> std::io::Error {
    std::io::Error::other("the call has no output to write to")
}
