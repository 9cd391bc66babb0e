//! The blocking client: one retry/redirect loop around any blocking [`Transport`].

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use redcap_core::driver::{Call, CallConfig, Step};
use redcap_core::exchange::Target;
use redcap_core::{
    ApiUrl, Build, Bytes, ClientSettings, DEFAULT_CONCURRENCY, Downloaded, DynamicCall, Error, Method, MethodInfo,
    Pacer, PreparedRequest, RetryPolicy, Streamed, Token, Transport, TransportError, prepare,
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

    /// Waits for a free slot; the slot is given back when the guard drops. A thread that holds
    /// a slot of these limits already (a call made from a `stream` sink or a progress callback,
    /// while the outer call is in flight) goes on without a second one: waiting for itself
    /// would never end.
    fn enter(&self) -> Slot<'_> {
        let me = self as *const Limits as usize;
        if HELD.with(|held| held.borrow().contains(&me)) {
            return Slot { limits: self, counted: false };
        }
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.concurrency {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        HELD.with(|held| held.borrow_mut().push(me));
        Slot { limits: self, counted: true }
    }
}

thread_local! {
    /// The limits (by address) whose slots this thread holds.
    static HELD: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Slot<'a> {
    limits: &'a Limits,
    counted: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let me = self.limits as *const Limits as usize;
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(at) = held.iter().rposition(|l| *l == me) {
                held.swap_remove(at);
            }
        });
        let mut n = self.limits.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        self.limits.freed.notify_one();
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
    config: CallConfig,
    limits: Arc<Limits>,
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
            .with_limits(settings.concurrency, settings.requests_per_minute);
        client.config = CallConfig::from_settings(&settings);
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
            config: CallConfig::default(),
            limits: Arc::new(Limits::new(DEFAULT_CONCURRENCY, 0)),
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
        self.config.stall = stall;
        self.config.overall = overall;
        self
    }

    /// How many calls may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.limits.concurrency
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.config.policy = policy;
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
        self.drive(Call::<M::Output>::buffered::<M>(prepared, &self.config, self.limits.pacer.as_ref()), None, &|_| {})
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
        self.drive(Call::stream(info, prepared, &self.config, self.limits.pacer.as_ref()), Some(sink), &|_| {})
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
        self.drive(Call::download(M::INFO, prepared, &self.config, self.limits.pacer.as_ref(), target), None, on_bytes)
    }

    /// Performs the I/O `call` asks for until it is over (core's driver decides everything).
    fn drive<R>(
        &self,
        mut call: Call<'_, R>,
        mut sink: Option<&mut dyn Write>,
        on_bytes: &dyn Fn(u64),
    ) -> Result<R, Error> {
        let _slot = self.limits.enter();
        let mut body: Option<T::Body> = None;
        // Read into one buffer for the whole call and copy out what arrived: a fresh zeroed
        // buffer of the largest chunk per read cost more than the bytes read into it.
        let mut scratch = Vec::new();
        loop {
            match call.step() {
                Step::Send => {
                    // The last attempt's body goes first: its connection returns to the pool.
                    drop(body.take());
                    let reply = {
                        let _entered = call.span().enter();
                        self.transport.send(call.request())
                    };
                    body = call.reply(reply);
                }
                Step::Sleep(wait) => {
                    body = None;
                    std::thread::sleep(wait);
                }
                Step::Read(max) => match body.as_mut().map(|b| read_chunk(b, max, &mut scratch)) {
                    Some(Ok(Some(bytes))) => call.chunk(bytes),
                    Some(Ok(None)) | None => call.end(),
                    Some(Err(e)) => call.read_failed(e),
                },
                Step::Write(bytes) => {
                    let written = match sink.as_mut() {
                        Some(sink) => sink.write_all(&bytes),
                        None => Err(no_output()),
                    };
                    call.written(written);
                }
                Step::WriteFile(bytes) => {
                    let written = call.staged_file().map_or_else(|| Err(no_output()), |mut f| f.write_all(&bytes));
                    call.written(written);
                    on_bytes(call.bytes_written());
                }
                Step::Flush => {
                    let flushed = sink.as_mut().map_or(Ok(()), |sink| sink.flush());
                    call.finished(flushed);
                }
                Step::SyncFile => {
                    let synced = call.staged_file().map_or_else(|| Err(no_output()), |f| f.sync_all());
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

/// Reads up to `max` bytes of a body through `scratch`; `None` at its end.
fn read_chunk(body: &mut impl Read, max: usize, scratch: &mut Vec<u8>) -> Result<Option<Bytes>, TransportError> {
    scratch.resize(max.max(1), 0);
    loop {
        match body.read(&mut scratch[..max.max(1)]) {
            Ok(0) => return Ok(None),
            Ok(n) => return Ok(Some(Bytes::copy_from_slice(&scratch[..n]))),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(redcap_core::transport::from_read_error(e)),
        }
    }
}
