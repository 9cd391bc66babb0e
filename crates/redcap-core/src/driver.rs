//! One call from request to result, as a state machine both clients obey: pacing, the overall
//! deadline, retries and redirects, reading the body (buffered, streamed to the caller's writer,
//! or staged to a file), the stall rule, the length check, and the download's finish (temp file
//! → length check → fsync → rename). The machine decides; a client only performs the I/O step
//! [`Call::step`] asks for ([`Step`]) and reports how it went.
//!
//! ```text
//! loop {
//!     match call.step() {
//!         Step::Send => body = call.reply(transport.send(call.request())),
//!         Step::Sleep(d) => drop the open body, sleep d
//!         Step::Read(max) => read up to max bytes: call.chunk(bytes) / call.end() / call.read_failed(e)
//!         Step::Write(bytes) | Step::WriteFile(bytes) => write them: call.written(result)
//!         Step::Flush | Step::SyncFile => flush (and fsync the file): call.finished(result)
//!         Step::Done(result) => return result,
//!     }
//! }
//! ```

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::response::Parts;

use crate::client::{Downloaded, Streamed};
use crate::download::DownloadHead;
use crate::error::Error;
use crate::exchange::{self, Next, Outcome, StreamPlan, Target};
use crate::method::{DecodeContext, Method, MethodInfo, PreparedRequest};
use crate::policy::{AfterStatus, Attempts, Pacer, RetryPolicy};
use crate::staged::StagedFile;
use crate::timeout::StallGuard;
use crate::transport::{FailureKind, TransportError};

/// The pacer a client's calls share (`None`: no pacing).
pub type Pacing<'a> = Option<&'a Mutex<Pacer>>;

/// Most bytes a client reads for one [`Step::Read`].
pub const CHUNK: usize = 64 * 1024;

/// The I/O a client performs next.
#[derive(Debug)]
// Exhaustive on purpose: a new step must fail every client's build, not fall into `_`.
pub enum Step<R> {
    /// Send [`Call::request`] (dropping any body still open), then report what came with
    /// [`Call::reply`] (or [`Call::response`] and [`Call::send_failed`]).
    Send,
    /// Drop any open body and wait this long, then ask again.
    Sleep(Duration),
    /// Read at most this many bytes of the body: [`Call::chunk`], [`Call::end`] at its end, or
    /// [`Call::read_failed`].
    Read(usize),
    /// Write these bytes to the caller's writer, then [`Call::written`].
    Write(Bytes),
    /// Write these bytes to [`Call::staged_file`] (after a new attempt, a new file), then
    /// [`Call::written`].
    WriteFile(Bytes),
    /// Flush the caller's writer, then [`Call::finished`].
    Flush,
    /// Flush and fsync [`Call::staged_file`], then [`Call::finished`].
    SyncFile,
    /// The call is over.
    Done(Result<R, Error>),
}

/// What becomes of the body.
enum Mode<'a, R> {
    /// Read it whole (at most `limit` bytes) and decode it.
    Buffer { limit: usize, decode: fn(&DecodeContext, Parts, Bytes) -> Outcome<R> },
    /// Pass it on to the caller's writer.
    Stream { make: fn(DownloadHead, u64) -> R },
    /// Stage it in a file that becomes `target`'s.
    Download { target: &'a Target, make: fn(PathBuf, DownloadHead, u64) -> R },
}

/// Where the call is.
enum State<R> {
    /// Before an attempt; `paced` once the pacer's wait is over.
    BeforeSend { paced: bool },
    /// Waiting for the transport's answer.
    Sending,
    /// To sleep this long before the next attempt.
    Sleep(Duration),
    /// Reading a body into `buf`, at most `limit` bytes of it.
    Buffering { parts: Parts, buf: Vec<u8>, limit: usize },
    /// Reading the first bytes of a streamed body before any is written (`error`: the head
    /// already says it is an error, only its message is read).
    Inspecting { parts: Parts, prefix: Vec<u8>, limit: usize, error: bool },
    /// Writing `pending` (then the rest of the body) to the output.
    Writing { out: Out, pending: Vec<Bytes> },
    /// The output's flush (and the file's sync) was asked for.
    Finishing { out: Out },
    /// The result, to be returned by the next [`Call::step`].
    Over(Result<R, Error>),
    /// Returned.
    Finished,
}

/// A body being written out.
struct Out {
    head: DownloadHead,
    expected: Option<u64>,
    written: u64,
    /// The bytes of the current `Write`, counted once it succeeded.
    in_flight: u64,
    /// A download's file; `None` when streaming to the caller.
    staged: Option<StagedFile>,
    /// The body has ended: finish once `pending` is written.
    ended: bool,
}

/// One call. Build it with [`Call::buffered`], [`Call::stream`] or [`Call::download`] and
/// drive it with [`Call::step`].
pub struct Call<'a, R> {
    info: &'static MethodInfo,
    ctx: DecodeContext,
    prepared: PreparedRequest,
    attempts: Attempts<'a>,
    pacer: Pacing<'a>,
    stall: Duration,
    guard: StallGuard,
    mode: Mode<'a, R>,
    state: State<R>,
    span: tracing::Span,
    started: Instant,
}

impl<R> std::fmt::Debug for Call<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("method", &self.info.id).field("attempt", &self.attempts.attempt()).finish()
    }
}

/// How a client makes its calls: what every [`Call`] of it is made with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallConfig {
    /// The retry policy.
    pub policy: RetryPolicy,
    /// The stall timeout applied to bodies (the transport applies its own to the wait for an
    /// answer).
    pub stall: Duration,
    /// The overall timeout of each call, retries included.
    pub overall: Option<Duration>,
    /// The largest body a buffered call reads.
    pub max_buffered: usize,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            policy: RetryPolicy::default(),
            stall: crate::transport::TransportConfig::default().stall_timeout,
            overall: None,
            max_buffered: crate::client::DEFAULT_MAX_BUFFERED,
        }
    }
}

impl CallConfig {
    /// What `settings` say.
    pub fn from_settings(settings: &crate::client::ClientSettings) -> Self {
        CallConfig {
            policy: settings.retry.clone(),
            stall: settings.transport.stall_timeout,
            overall: settings.transport.overall_timeout,
            max_buffered: settings.max_buffered,
        }
    }
}

impl<'a, R> Call<'a, R> {
    fn new(
        info: &'static MethodInfo,
        prepared: PreparedRequest,
        config: &'a CallConfig,
        pacer: Pacing<'a>,
        mode: Mode<'a, R>,
    ) -> Self {
        let now = Instant::now();
        Call {
            info,
            ctx: *prepared.context(),
            prepared,
            attempts: Attempts::new(&config.policy, info).with_overall_timeout(config.overall),
            pacer,
            stall: config.stall,
            guard: StallGuard::new(config.stall, now),
            mode,
            state: State::BeforeSend { paced: false },
            span: tracing::Span::none(),
            started: now,
        }
    }

    /// A call of `M` whose body is read whole and decoded.
    pub fn buffered<M: Method + ?Sized>(
        prepared: PreparedRequest,
        config: &'a CallConfig,
        pacer: Pacing<'a>,
    ) -> Call<'a, M::Output> {
        let limit = exchange::answer_limit(M::INFO, config.max_buffered);
        let mode = Mode::Buffer { limit, decode: exchange::buffered::<M> };
        Call::new(M::INFO, prepared, config, pacer, mode)
    }

    /// The request to send now.
    pub fn request(&self) -> &PreparedRequest {
        &self.prepared
    }

    /// The span of the current attempt (`redcap.call`: method, attempt, status, bytes), for the
    /// transport's own events.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The bytes written so far in this attempt (for a progress bar; a retry starts again).
    pub fn bytes_written(&self) -> u64 {
        match &self.state {
            State::Writing { out, .. } | State::Finishing { out } => out.written,
            State::BeforeSend { .. }
            | State::Sending
            | State::Sleep(_)
            | State::Buffering { .. }
            | State::Inspecting { .. }
            | State::Over(_)
            | State::Finished => 0,
        }
    }

    /// The staged file of a download being written.
    pub fn staged_file(&self) -> Option<&std::fs::File> {
        match &self.state {
            State::Writing { out, .. } | State::Finishing { out } => out.staged.as_ref().map(StagedFile::file),
            State::BeforeSend { .. }
            | State::Sending
            | State::Sleep(_)
            | State::Buffering { .. }
            | State::Inspecting { .. }
            | State::Over(_)
            | State::Finished => None,
        }
    }

    /// The next I/O step.
    pub fn step(&mut self) -> Step<R> {
        loop {
            match std::mem::replace(&mut self.state, State::Finished) {
                State::BeforeSend { paced: false } => {
                    self.state = State::BeforeSend { paced: true };
                    let wait = self
                        .pacer
                        .map(|p| p.lock().map(|mut p| p.reserve(Instant::now())).unwrap_or_default())
                        .unwrap_or_default();
                    if !wait.is_zero() {
                        return Step::Sleep(wait);
                    }
                }
                // After pacing: the pacer's wait counts against the overall deadline.
                State::BeforeSend { paced: true } => match self.attempts.before_send() {
                    Err(e) => self.state = State::Over(Err(Error::Transport(e))),
                    Ok(timeout) => {
                        self.prepared.set_timeout(timeout);
                        self.span = tracing::info_span!(
                            "redcap.call",
                            method = self.info.id,
                            attempt = self.attempts.attempt(),
                            status = tracing::field::Empty,
                            bytes = tracing::field::Empty,
                        );
                        self.started = Instant::now();
                        self.state = State::Sending;
                        return Step::Send;
                    }
                },
                State::Sleep(wait) => {
                    self.state = State::BeforeSend { paced: false };
                    return Step::Sleep(wait);
                }
                State::Sending => {
                    self.state = State::Sending;
                    return Step::Send;
                }
                State::Buffering { parts, buf, limit } => {
                    let max = match exchange::content_length(&parts) {
                        // One byte more than announced, to see a body longer than its header.
                        Some(n) => usize::try_from(n)
                            .unwrap_or(usize::MAX)
                            .saturating_sub(buf.len())
                            .saturating_add(1)
                            .min(CHUNK),
                        None => CHUNK,
                    };
                    self.state = State::Buffering { parts, buf, limit };
                    return Step::Read(max);
                }
                State::Inspecting { parts, prefix, limit, error } => {
                    let max = (limit - prefix.len()).min(CHUNK);
                    self.state = State::Inspecting { parts, prefix, limit, error };
                    return Step::Read(max);
                }
                State::Writing { mut out, mut pending } => {
                    if let Some(bytes) = pending.pop() {
                        out.in_flight = bytes.len() as u64;
                        let file = out.staged.is_some();
                        self.state = State::Writing { out, pending };
                        return if file { Step::WriteFile(bytes) } else { Step::Write(bytes) };
                    }
                    if !out.ended {
                        self.state = State::Writing { out, pending };
                        return Step::Read(CHUNK);
                    }
                    self.span.record("bytes", out.written);
                    if let Err(e) = exchange::check_length(out.expected, out.written) {
                        // A download not yet placed may be retried; a stream's bytes are out.
                        let outcome = match out.staged {
                            Some(_) => Outcome::Interrupted(e),
                            None => Outcome::Done(Err(Error::Transport(e))),
                        };
                        self.conclude(outcome);
                        continue;
                    }
                    let file = out.staged.is_some();
                    self.state = State::Finishing { out };
                    return if file { Step::SyncFile } else { Step::Flush };
                }
                State::Finishing { out } => {
                    // Asked for and not reported: ask again.
                    let file = out.staged.is_some();
                    self.state = State::Finishing { out };
                    return if file { Step::SyncFile } else { Step::Flush };
                }
                State::Over(result) => {
                    tracing::debug!(parent: &self.span, elapsed = ?self.started.elapsed(), ok = result.is_ok(), "call finished");
                    // A server may echo the token in anything it writes (an error body, a page
                    // title, a Location): the caller's error never shows it.
                    let result = match self.prepared.form().get("token") {
                        Some(token) => result.map_err(|e| e.redact(token)),
                        None => result,
                    };
                    return Step::Done(result);
                }
                State::Finished => {
                    return Step::Done(Err(Error::Transport(TransportError::new(
                        FailureKind::Other,
                        "the call was already over",
                    ))));
                }
            }
        }
    }

    /// What the transport's send gave: the answer's body is handed back for the client to
    /// read when [`Step::Read`] asks (`None`: there is none to read, the call goes on).
    pub fn reply<B>(&mut self, reply: Result<http::Response<B>, TransportError>) -> Option<B> {
        match reply {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                self.response(parts);
                Some(body)
            }
            Err(e) => {
                self.send_failed(e);
                None
            }
        }
    }

    /// The transport could not send the request or get an answer.
    pub fn send_failed(&mut self, error: TransportError) {
        let next = self.attempts.after_send_error(error);
        self.follow(next);
    }

    /// The transport got an answer with this head (its body is read with [`Step::Read`]).
    pub fn response(&mut self, parts: Parts) {
        self.span.record("status", parts.status.as_u16());
        match self.attempts.after_status(self.prepared.url(), parts.status, &parts.headers) {
            AfterStatus::Proceed => {}
            AfterStatus::Retry(wait) => {
                tracing::warn!(parent: &self.span, status = parts.status.as_u16(), ?wait, "transient status; retrying");
                self.state = State::Sleep(wait);
                return;
            }
            AfterStatus::Redirect(url) => {
                // The server chose the path (this one, or an earlier redirect's): it may hold
                // the token.
                let from = self.redact_text(self.prepared.url().as_str());
                let to = self.redact_text(url.as_str());
                tracing::warn!(parent: &self.span, %from, %to, "the API URL moved; re-sending the POST there (update the URL)");
                self.prepared.set_url(url);
                self.state = State::BeforeSend { paced: false };
                return;
            }
            AfterStatus::Refuse(e) => {
                self.state = State::Over(Err(Error::Redirect(e)));
                return;
            }
        }
        self.guard = StallGuard::new(self.stall, Instant::now());
        self.state = match &self.mode {
            Mode::Buffer { limit, .. } => {
                // An error's text is read from its start, however long the server makes it.
                let limit = if parts.status.is_success() { *limit } else { exchange::ERROR_BODY_LIMIT.min(*limit) };
                let capacity = exchange::content_length(&parts)
                    .map_or(8192, |n| usize::try_from(n).unwrap_or(usize::MAX).min(limit))
                    .min(exchange::PREALLOCATE_LIMIT);
                State::Buffering { parts, buf: Vec::with_capacity(capacity), limit }
            }
            Mode::Stream { .. } | Mode::Download { .. } => match exchange::stream_plan(self.info, &parts) {
                StreamPlan::ReadError(limit) => State::Inspecting { parts, prefix: Vec::new(), limit, error: true },
                StreamPlan::Sniff(limit) => State::Inspecting { parts, prefix: Vec::new(), limit, error: false },
            },
        };
    }

    /// The client read these bytes of the body.
    pub fn chunk(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        if let Err(e) = self.guard.observe(Instant::now(), bytes.len()) {
            self.read_failed(e);
            return;
        }
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Buffering { parts, mut buf, limit } => {
                if buf.len() + bytes.len() > limit {
                    if !parts.status.is_success() {
                        // An error body: its start is the message; the rest is not waited for.
                        buf.extend_from_slice(&bytes[..limit - buf.len()]);
                        let outcome = match &self.mode {
                            Mode::Buffer { decode, .. } => decode(&self.ctx, parts, Bytes::from(buf)),
                            Mode::Stream { .. } | Mode::Download { .. } => Outcome::Done(Err(Error::Transport(
                                TransportError::new(FailureKind::Other, "a streamed call buffered its body"),
                            ))),
                        };
                        self.conclude(outcome);
                        return;
                    }
                    let outcome = exchange::too_large(self.info, &self.ctx, &parts, &buf, limit);
                    self.conclude(outcome);
                    return;
                }
                grow(&mut buf, bytes.len(), exchange::content_length(&parts));
                buf.extend_from_slice(&bytes);
                self.state = State::Buffering { parts, buf, limit };
            }
            State::Inspecting { parts, mut prefix, limit, error } => {
                let take = (limit - prefix.len()).min(bytes.len());
                prefix.extend_from_slice(&bytes[..take]);
                let rest = bytes.slice(take..);
                if prefix.len() < limit {
                    self.state = State::Inspecting { parts, prefix, limit, error };
                } else {
                    self.inspected(parts, prefix, error, rest, false);
                }
            }
            State::Writing { out, mut pending } => {
                pending.insert(0, bytes);
                self.state = State::Writing { out, pending };
            }
            other => self.state = other,
        }
    }

    /// The body ended.
    pub fn end(&mut self) {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Buffering { parts, buf, .. } => {
                let received = buf.len() as u64;
                self.span.record("bytes", received);
                let outcome = match exchange::check_length(exchange::content_length(&parts), received) {
                    Err(e) => Outcome::Interrupted(e),
                    Ok(()) => match &self.mode {
                        Mode::Buffer { decode, .. } => decode(&self.ctx, parts, Bytes::from(buf)),
                        Mode::Stream { .. } | Mode::Download { .. } => Outcome::Done(Err(Error::Transport(
                            TransportError::new(FailureKind::Other, "a streamed call buffered its body"),
                        ))),
                    },
                };
                self.conclude(outcome);
            }
            State::Inspecting { parts, prefix, error, .. } => self.inspected(parts, prefix, error, Bytes::new(), true),
            State::Writing { mut out, pending } => {
                out.ended = true;
                self.state = State::Writing { out, pending };
            }
            other => self.state = other,
        }
    }

    /// Reading the body failed (the connection broke, a timeout elapsed).
    pub fn read_failed(&mut self, error: TransportError) {
        let error = match error.kind() {
            FailureKind::Timeout | FailureKind::Interrupted => error,
            FailureKind::Connect
            | FailureKind::Tls
            | FailureKind::Request
            | FailureKind::TooLarge
            | FailureKind::Other => {
                TransportError::new(FailureKind::Interrupted, "reading the response failed").with_source(error)
            }
        };
        let outcome = match &self.state {
            // Nothing is out yet, or only into a staged file that is dropped: retry if allowed.
            State::Buffering { .. } | State::Inspecting { .. } => Outcome::Interrupted(error),
            State::Writing { out, .. } | State::Finishing { out } if out.staged.is_some() => {
                Outcome::Interrupted(error)
            }
            // Bytes are out in the caller's writer: a retry cannot take them back.
            State::Writing { .. } | State::Finishing { .. } => Outcome::Done(Err(Error::Transport(error))),
            State::BeforeSend { .. } | State::Sending | State::Sleep(_) | State::Over(_) | State::Finished => return,
        };
        self.conclude(outcome);
    }

    /// The last [`Step::Write`] or [`Step::WriteFile`] went so.
    pub fn written(&mut self, result: std::io::Result<()>) {
        let State::Writing { out, .. } = &mut self.state else { return };
        match result {
            Ok(()) => {
                out.written += out.in_flight;
                out.in_flight = 0;
            }
            Err(e) => {
                let error = self.output_error(e);
                self.conclude(Outcome::Done(Err(error)));
            }
        }
    }

    /// The [`Step::Flush`] or [`Step::SyncFile`] went so.
    pub fn finished(&mut self, result: std::io::Result<()>) {
        if let Err(e) = result {
            // Named while the state still holds the staged file's path.
            let error = self.output_error(e);
            self.conclude(Outcome::Done(Err(error)));
            return;
        }
        let State::Finishing { out } = std::mem::replace(&mut self.state, State::Finished) else { return };
        let Out { head, written, staged, .. } = out;
        let outcome = match (staged, &self.mode) {
            (None, Mode::Stream { make }) => Outcome::Done(Ok(make(head, written))),
            (Some(staged), Mode::Download { make, .. }) => {
                let path = staged.final_path().to_path_buf();
                match staged.commit() {
                    Ok(path) => Outcome::Done(Ok(make(path, head, written))),
                    Err(source) => Outcome::Done(Err(Error::Local { path, source })),
                }
            }
            (_, Mode::Stream { .. } | Mode::Download { .. } | Mode::Buffer { .. }) => Outcome::Done(Err(
                Error::Transport(TransportError::new(FailureKind::Other, "the output does not match the call")),
            )),
        };
        self.conclude(outcome);
    }

    /// An output error: the caller's writer, or the download's file (named by its final path).
    fn output_error(&self, e: std::io::Error) -> Error {
        match &self.state {
            State::Writing { out, .. } | State::Finishing { out } => match &out.staged {
                Some(staged) => Error::Local { path: staged.final_path().to_path_buf(), source: e },
                None => Error::Output(e),
            },
            State::BeforeSend { .. }
            | State::Sending
            | State::Sleep(_)
            | State::Buffering { .. }
            | State::Inspecting { .. }
            | State::Over(_)
            | State::Finished => Error::Output(e),
        }
    }

    /// The first bytes of a streamed body are in: an error, or the start of the data.
    fn inspected(&mut self, parts: Parts, prefix: Vec<u8>, error: bool, rest: Bytes, ended: bool) {
        let prefix = Bytes::from(prefix);
        if error {
            let outcome = exchange::streamed_error(self.info, &self.ctx, parts, prefix);
            self.conclude(outcome);
            return;
        }
        if let Some(outcome) = exchange::sniff(self.info, &self.ctx, &parts, &prefix) {
            self.conclude(outcome);
            return;
        }
        let head = DownloadHead::from_headers(&parts.headers);
        let staged = match &self.mode {
            Mode::Download { target, .. } => {
                let final_path = target.final_path(&head);
                match StagedFile::create(target.dir(), final_path.clone(), target.replaces()) {
                    Ok(staged) => Some(staged),
                    Err(source) => {
                        self.conclude(Outcome::Done(Err(Error::Local { path: final_path, source })));
                        return;
                    }
                }
            }
            Mode::Stream { .. } | Mode::Buffer { .. } => None,
        };
        // `pending` is a stack: the last is written first.
        let pending: Vec<Bytes> = [rest, prefix].into_iter().filter(|b| !b.is_empty()).collect();
        let expected = exchange::content_length(&parts);
        let out = Out { head, expected, written: 0, in_flight: 0, staged, ended };
        self.state = State::Writing { out, pending };
    }

    /// `text` (from the server) without the call's token, for the log.
    fn redact_text(&self, text: &str) -> String {
        self.prepared
            .form()
            .get("token")
            .and_then(|token| crate::redact::redacted(text, token))
            .unwrap_or_else(|| text.to_owned())
    }

    /// An attempt's outcome: return, or retry.
    fn conclude(&mut self, outcome: Outcome<R>) {
        let next = self.attempts.after_outcome(outcome);
        self.follow(next);
    }

    fn follow(&mut self, next: Next<R>) {
        match next {
            Next::Return(result) => self.state = State::Over(result),
            Next::Retry { wait, why } => {
                let why = self.redact_text(&why);
                tracing::warn!(parent: &self.span, %why, ?wait, "retrying");
                self.state = State::Sleep(wait);
            }
        }
    }
}

/// Makes room in `buf` for `incoming` more bytes: at most doubling, and never past the
/// announced length (a length header alone never makes a large allocation, and a body that
/// matches it ends in a buffer of exactly its size).
fn grow(buf: &mut Vec<u8>, incoming: usize, announced: Option<u64>) {
    if buf.capacity() - buf.len() >= incoming {
        return;
    }
    let doubled = buf.capacity().max(CHUNK);
    let room = match announced.map(|n| usize::try_from(n).unwrap_or(usize::MAX)) {
        Some(n) if n > buf.len() => doubled.min(n - buf.len()),
        _ => doubled,
    };
    buf.reserve_exact(room.max(incoming));
}

impl<'a> Call<'a, Streamed> {
    /// A call whose success body is written to the caller's writer.
    pub fn stream(
        info: &'static MethodInfo,
        prepared: PreparedRequest,
        config: &'a CallConfig,
        pacer: Pacing<'a>,
    ) -> Self {
        Call::new(info, prepared, config, pacer, Mode::Stream { make: Streamed::new })
    }
}

impl<'a> Call<'a, Downloaded> {
    /// A call whose success body becomes the file `target` names.
    pub fn download(
        info: &'static MethodInfo,
        prepared: PreparedRequest,
        config: &'a CallConfig,
        pacer: Pacing<'a>,
        target: &'a Target,
    ) -> Self {
        Call::new(info, prepared, config, pacer, Mode::Download { target, make: Downloaded::new })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{DynamicCall, ResponseKind};
    use crate::token::Token;
    use crate::url::ApiUrl;

    static FILE: MethodInfo = MethodInfo::new("t.file", "t", Some("export"), ResponseKind::Bytes, true);

    fn prepared() -> PreparedRequest {
        let url = ApiUrl::parse("https://redcap.example.edu/api/").unwrap();
        let token = Token::new("0123456789ABCDEF0123456789ABCDEF").unwrap();
        DynamicCall::new(&FILE, &[]).unwrap().prepare(&url, &token).unwrap()
    }

    fn head(len: usize) -> Parts {
        let r = http::Response::builder()
            .status(200)
            .header("content-type", "text/plain; name=\"a.txt\"")
            .header("content-length", len.to_string());
        r.body(()).unwrap().into_parts().0
    }

    fn quick() -> CallConfig {
        CallConfig { policy: RetryPolicy::default().with_base_delay(Duration::from_millis(1)), ..CallConfig::default() }
    }

    #[test]
    fn a_stream_cut_after_its_bytes_are_out_is_not_retried() {
        let config = quick();
        let mut call = Call::stream(&FILE, prepared(), &config, None);
        assert!(matches!(call.step(), Step::Send));
        call.response(head(10));
        assert!(matches!(call.step(), Step::Read(_)));
        call.chunk(Bytes::from_static(b"hello"));
        assert!(matches!(call.step(), Step::Read(_)));
        call.end();
        let Step::Write(bytes) = call.step() else { panic!("the prefix is written") };
        assert_eq!(&bytes[..], b"hello");
        call.written(Ok(()));
        // The body ended 5 bytes short: an error, and no retry (the bytes are in the caller's sink).
        match call.step() {
            Step::Done(Err(Error::Transport(e))) => assert_eq!(e.kind(), FailureKind::Interrupted),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_error_body_is_read_from_its_start_only() {
        let config = CallConfig { policy: RetryPolicy::never(), ..CallConfig::default() };
        let url = ApiUrl::parse("https://redcap.example.edu/api/").unwrap();
        let token = Token::new("0123456789ABCDEF0123456789ABCDEF").unwrap();
        let prepared = crate::method::prepare(&DynamicVersion, &url, &token).unwrap();
        let mut call = Call::<crate::model::Version>::buffered::<DynamicVersion>(prepared, &config, None);
        assert!(matches!(call.step(), Step::Send));
        // A terabyte announced: not believed up front.
        let head = http::Response::builder().status(400).header("content-length", "1000000000000");
        call.response(head.body(()).unwrap().into_parts().0);
        let State::Buffering { buf, .. } = &call.state else { panic!("buffering") };
        assert!(buf.capacity() <= exchange::PREALLOCATE_LIMIT);
        let mut reads = 0;
        let done = loop {
            match call.step() {
                Step::Read(_) => call.chunk(Bytes::from(vec![b'x'; CHUNK])),
                other => break other,
            }
            reads += 1;
        };
        // The first MiB is the message: the call ends with it, reading no more.
        let Step::Done(Err(Error::Api(e))) = done else { panic!("REDCap's error: {done:?}") };
        assert_eq!(e.status(), 400);
        assert_eq!(reads, exchange::ERROR_BODY_LIMIT / CHUNK + 1);
    }

    /// A method answering a version, for the driver's tests.
    struct DynamicVersion;

    impl Method for DynamicVersion {
        const INFO: &'static MethodInfo = &MethodInfo::new("t.version", "version", None, ResponseKind::Version, true);
        type Output = crate::model::Version;
        fn encode(&self, _: &mut crate::form::Form) -> Result<(), crate::error::EncodeError> {
            Ok(())
        }
        fn decode(ctx: &DecodeContext, r: http::Response<Bytes>) -> Result<Self::Output, crate::error::DecodeError> {
            crate::decode::version(ctx, r)
        }
    }

    #[test]
    fn a_short_download_is_retried_and_a_whole_one_placed() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::File(dir.path().join("a.txt"));
        let config = quick();
        let mut call = Call::download(&FILE, prepared(), &config, None, &target);
        assert!(matches!(call.step(), Step::Send));
        call.response(head(10));
        assert!(matches!(call.step(), Step::Read(_)));
        call.chunk(Bytes::from_static(b"hello"));
        call.end();
        let Step::WriteFile(bytes) = call.step() else { panic!("written to the staged file") };
        std::io::Write::write_all(&mut call.staged_file().unwrap(), &bytes).unwrap();
        call.written(Ok(()));
        assert_eq!(call.bytes_written(), 5);
        assert!(matches!(call.step(), Step::Sleep(_)), "a short download of an idempotent method is retried");
        assert!(!dir.path().join("a.txt").exists(), "nothing at the final path");
        assert!(matches!(call.step(), Step::Send));
        call.response(head(5));
        assert!(matches!(call.step(), Step::Read(_)));
        call.chunk(Bytes::from_static(b"hello"));
        call.end();
        let Step::WriteFile(bytes) = call.step() else { panic!("written to the staged file") };
        std::io::Write::write_all(&mut call.staged_file().unwrap(), &bytes).unwrap();
        call.written(Ok(()));
        assert!(matches!(call.step(), Step::SyncFile), "synced after the length check");
        call.finished(Ok(()));
        match call.step() {
            Step::Done(Ok(d)) => assert_eq!((d.bytes, std::fs::read(&d.path).unwrap()), (5, b"hello".to_vec())),
            other => panic!("{other:?}"),
        }
    }
}
