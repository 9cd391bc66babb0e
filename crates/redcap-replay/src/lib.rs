//! Record REDCap API exchanges once, replay them in tests without a server.
//!
//! [`Recorder`] wraps any blocking [`Transport`] and keeps every exchange (the request's form
//! fields with the token redacted, the response's status, headers and body, with any echo of
//! the token masked) in a [`Cassette`],
//! which saves as JSON. [`Replay`] (blocking) and [`AsyncReplay`] serve a cassette back in order
//! and refuse a request that differs from the recorded one, so a replayed test still checks
//! what the code sends. Both are ordinary implementations of `redcap_core::Transport`: the same
//! trait any third-party transport implements.
#![warn(missing_docs)]

use std::io::{Cursor, Read};
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;

use base64::Engine;
use futures_util::Stream;
use redcap_core::{Bytes, FailureKind, FormField, PreparedRequest, Transport, TransportError, UploadSource};
use serde::{Deserialize, Serialize};

/// A request as recorded: method and form fields (the token replaced by `[redacted]`, a file
/// by its name and size).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Method id, e.g. `file_repository.list`.
    pub method: String,
    /// Form fields in order.
    pub fields: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The recorded form of `request`.
    pub fn of(request: &PreparedRequest) -> Self {
        let fields = request
            .form()
            .fields()
            .iter()
            .map(|(name, value)| {
                let shown = match value {
                    FormField::Text(_) if name == "token" => "[redacted]".to_owned(),
                    FormField::Text(v) => v.clone(),
                    FormField::File(u) => {
                        let size = match &u.source {
                            UploadSource::Bytes(b) => b.len().to_string(),
                            UploadSource::Path(p) => {
                                std::fs::metadata(p).map(|m| m.len().to_string()).unwrap_or_default()
                            }
                            UploadSource::Reader(r) => r.len().to_string(),
                            _ => String::new(),
                        };
                        format!("<file {} ({size} bytes)>", u.file_name)
                    }
                    _ => String::new(),
                };
                (name.clone(), shown)
            })
            .collect();
        RecordedRequest { method: request.info().id.to_owned(), fields }
    }
}

/// A response as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The body, base64.
    pub body: String,
}

impl RecordedResponse {
    fn to_http<B>(&self, body: impl FnOnce(Bytes) -> B) -> Result<http::Response<B>, TransportError> {
        let bad = |what: String| TransportError::new(FailureKind::Other, format!("replay: {what}"));
        let bytes = base64::engine::general_purpose::STANDARD.decode(&self.body).map_err(|e| bad(e.to_string()))?;
        let mut builder = http::Response::builder().status(self.status);
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        builder.body(body(Bytes::from(bytes))).map_err(|e| bad(e.to_string()))
    }
}

/// One call and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// What was sent.
    pub request: RecordedRequest,
    /// What came back.
    pub response: RecordedResponse,
}

/// Recorded exchanges, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cassette {
    /// The exchanges.
    pub exchanges: Vec<Exchange>,
}

impl Cassette {
    /// Reads a cassette saved with [`Cassette::save`].
    pub fn load(path: &Path) -> std::io::Result<Self> {
        serde_json::from_slice(&std::fs::read(path)?)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Writes the cassette as JSON.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)
    }
}

/// Wraps a blocking transport and records every exchange (bodies are buffered to be kept).
#[derive(Debug)]
pub struct Recorder<T> {
    inner: T,
    cassette: Mutex<Cassette>,
}

impl<T> Recorder<T> {
    /// Records what `inner` sends and receives.
    pub fn new(inner: T) -> Self {
        Recorder { inner, cassette: Mutex::new(Cassette::default()) }
    }

    /// What was recorded so far.
    pub fn cassette(&self) -> Cassette {
        self.cassette.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl<T> Transport for Recorder<T>
where
    T: for<'a> Transport<Reply<'a> = Result<http::Response<<T as Transport>::Body>, TransportError>> + 'static,
    T::Body: Read,
{
    type Body = Cursor<Bytes>;
    type Reply<'a> = Result<http::Response<Cursor<Bytes>>, TransportError>;

    fn send<'a>(&'a self, request: &'a PreparedRequest) -> Self::Reply<'a> {
        let recorded = RecordedRequest::of(request);
        let response = self.inner.send(request)?;
        let (parts, mut body) = response.into_parts();
        let mut buf = Vec::new();
        body.read_to_end(&mut buf).map_err(TransportError::from)?;
        // A server may quote the token back (an error body, a header): a cassette is meant to
        // be checked in, so the echo is masked there (the caller still gets the answer as sent).
        let secret = request.form().get("token").unwrap_or_default().as_bytes();
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                let mut value = v.as_bytes().to_vec();
                mask(&mut value, secret);
                (k.as_str().to_owned(), String::from_utf8_lossy(&value).into_owned())
            })
            .collect();
        let mut kept = buf.clone();
        mask(&mut kept, secret);
        let exchange = Exchange {
            request: recorded,
            response: RecordedResponse {
                status: parts.status.as_u16(),
                headers,
                body: base64::engine::general_purpose::STANDARD.encode(&kept),
            },
        };
        if let Ok(mut c) = self.cassette.lock() {
            c.exchanges.push(exchange);
        }
        Ok(http::Response::from_parts(parts, Cursor::new(Bytes::from(buf))))
    }
}

/// Overwrites every occurrence of `secret` in `bytes` (ASCII case ignored: tokens are hex) with
/// `[redacted]` padded with `*` to the same length, so a recorded `Content-Length` still holds.
fn mask(bytes: &mut [u8], secret: &[u8]) {
    let n = secret.len();
    if n == 0 {
        return;
    }
    let mut at = 0;
    while at + n <= bytes.len() {
        if bytes[at..at + n].eq_ignore_ascii_case(secret) {
            for (i, b) in bytes[at..at + n].iter_mut().enumerate() {
                *b = b"[redacted]".get(i).copied().unwrap_or(b'*');
            }
            at += n;
        } else {
            at += 1;
        }
    }
}

/// Serves a cassette's exchanges in order, checking each request against the recorded one.
#[derive(Debug)]
struct Tape {
    exchanges: Mutex<std::collections::VecDeque<Exchange>>,
}

impl Tape {
    fn next(&self, request: &PreparedRequest) -> Result<RecordedResponse, TransportError> {
        let mismatch = |what: String| TransportError::new(FailureKind::Request, format!("replay: {what}"));
        let mut queue = self.exchanges.lock().map_err(|_| mismatch("poisoned".into()))?;
        let exchange = queue.pop_front().ok_or_else(|| mismatch("no more recorded exchanges".into()))?;
        let sent = RecordedRequest::of(request);
        if sent != exchange.request {
            return Err(mismatch(format!(
                "the request differs from the recording: sent {sent:?}, recorded {:?}",
                exchange.request
            )));
        }
        Ok(exchange.response)
    }

    fn remaining(&self) -> usize {
        self.exchanges.lock().map(|q| q.len()).unwrap_or(0)
    }
}

/// A blocking transport that replays a cassette.
#[derive(Debug)]
pub struct Replay {
    tape: Tape,
}

impl Replay {
    /// Replays `cassette`.
    pub fn new(cassette: Cassette) -> Self {
        Replay { tape: Tape { exchanges: Mutex::new(cassette.exchanges.into()) } }
    }

    /// Exchanges not yet replayed (a test can check it is 0 at the end).
    pub fn remaining(&self) -> usize {
        self.tape.remaining()
    }
}

impl Transport for Replay {
    type Body = Cursor<Bytes>;
    type Reply<'a> = Result<http::Response<Cursor<Bytes>>, TransportError>;

    fn send<'a>(&'a self, request: &'a PreparedRequest) -> Self::Reply<'a> {
        self.tape.next(request)?.to_http(Cursor::new)
    }
}

/// A body replayed to an async client: the whole recorded body as one chunk.
pub type ReplayStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// An async transport that replays a cassette.
#[derive(Debug)]
pub struct AsyncReplay {
    tape: Tape,
}

impl AsyncReplay {
    /// Replays `cassette`.
    pub fn new(cassette: Cassette) -> Self {
        AsyncReplay { tape: Tape { exchanges: Mutex::new(cassette.exchanges.into()) } }
    }

    /// Exchanges not yet replayed.
    pub fn remaining(&self) -> usize {
        self.tape.remaining()
    }
}

impl Transport for AsyncReplay {
    type Body = ReplayStream;
    type Reply<'a> = std::future::Ready<Result<http::Response<ReplayStream>, TransportError>>;

    fn send<'a>(&'a self, request: &'a PreparedRequest) -> Self::Reply<'a> {
        std::future::ready(
            self.tape
                .next(request)
                .and_then(|r| r.to_http(|bytes| Box::pin(futures_util::stream::iter([Ok(bytes)])) as ReplayStream)),
        )
    }
}
