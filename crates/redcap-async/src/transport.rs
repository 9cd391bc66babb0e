//! The reqwest transport.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt, TryStreamExt};
use redcap_core::transport::{Timeouts, read_pem_file};
use redcap_core::{
    Body, Bytes, FailureKind, PreparedRequest, TimeoutKind, Transport, TransportConfig, TransportError, UploadSource,
};
use rustls::pki_types::pem::PemObject;

/// A response body arriving from the connection.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// The future [`ReqwestTransport::send`] returns.
pub type ResponseFuture<'a> =
    Pin<Box<dyn Future<Output = Result<http::Response<ByteStream>, TransportError>> + Send + 'a>>;

/// Sends requests with a [`reqwest::Client`] (connection pooling, rustls with the ring provider).
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    timeouts: Timeouts,
}

impl ReqwestTransport {
    /// A transport configured by `config`: timeouts, extra CA roots, proxy from the environment.
    /// Redirects are not followed (the client decides).
    pub fn new(config: &TransportConfig) -> Result<Self, TransportError> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = &config.extra_roots_pem {
            let pem = read_pem_file(path)?;
            let tls_error = |what: String| TransportError::new(FailureKind::Tls, what);
            let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| tls_error(format!("cannot parse CA certificates in {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(tls_error(format!("no certificate found in {}", path.display())));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| tls_error(format!("unusable CA certificate in {}: {e}", path.display())))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::new(FailureKind::Tls, format!("TLS set-up failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // No reqwest read timeout: it runs from the start of the request until the response head,
        // upload included, so a large upload that progresses would be cut after one stall window.
        // The stall timeout is applied here instead (`send_inner`), as time without progress.
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.as_str());
        if !config.proxy_from_env {
            builder = builder.no_proxy();
        }
        let timeouts = Timeouts::new(config);
        let client = builder.build().map_err(|e| map_error(e, &timeouts, Instant::now()))?;
        Ok(ReqwestTransport { client, timeouts })
    }

    async fn send_inner(&self, request: &PreparedRequest) -> Result<http::Response<ByteStream>, TransportError> {
        let started = Instant::now();
        let timeouts = self.timeouts.for_attempt(request.timeout());
        let progress = Progress::new();
        let mut builder =
            self.client.post(request.url().as_str()).header(http::header::CONTENT_TYPE, request.content_type());
        if let Some(overall) = timeouts.overall {
            builder = builder.timeout(overall);
        }
        builder = match request.body() {
            Body::Form(bytes) => builder.body(bytes.clone()),
            Body::Multipart(mp) => {
                // head, then the file streamed from its source, then tail: constant memory.
                let (file, len): (ByteStream, u64) = match mp.upload().map(|u| &u.source) {
                    Some(UploadSource::Path(p)) => {
                        let f = tokio::fs::File::open(p).await.map_err(|e| {
                            TransportError::new(FailureKind::Request, format!("cannot open {}", p.display()))
                                .with_source(e)
                        })?;
                        let len = f.metadata().await.map_err(TransportError::from)?.len();
                        let stream = tokio_util::io::ReaderStream::with_capacity(
                            tokio::io::AsyncReadExt::take(f, len),
                            64 * 1024,
                        )
                        .map_err(TransportError::from);
                        (Box::pin(stream), len)
                    }
                    Some(UploadSource::Bytes(b)) => {
                        (Box::pin(futures_util::stream::iter([Ok(b.clone())])), b.len() as u64)
                    }
                    Some(UploadSource::Reader(r)) => {
                        let reader = r.take().ok_or_else(|| {
                            TransportError::new(
                                FailureKind::Request,
                                "the upload's reader was already used by another request",
                            )
                        })?;
                        (reader_stream(reader), r.len())
                    }
                    _ => (Box::pin(futures_util::stream::empty()), 0),
                };
                let head = futures_util::stream::iter([Ok::<_, TransportError>(mp.head().clone())]);
                let tail = futures_util::stream::iter([Ok::<_, TransportError>(mp.tail().clone())]);
                let sent = progress.clone();
                // Each piece hyper takes is progress: it takes the next when the last is written.
                let body = head.chain(file).chain(tail).flat_map(pieces).inspect(move |_| sent.touch());
                builder
                    .header(http::header::CONTENT_LENGTH, mp.content_length(len))
                    .body(reqwest::Body::wrap_stream(body))
            }
            _ => return Err(TransportError::new(FailureKind::Request, "unsupported request body")),
        };
        let send = std::pin::pin!(builder.send());
        let stalled = std::pin::pin!(progress.stalled(timeouts.stall));
        let response = match futures_util::future::select(send, stalled).await {
            futures_util::future::Either::Left((response, _)) => {
                response.map_err(|e| map_error(e, &timeouts, started))?
            }
            futures_util::future::Either::Right(((), _)) => return Err(timeouts.elapsed(TimeoutKind::Stall)),
        };
        let mut out = http::Response::builder().status(response.status());
        if let Some(headers) = out.headers_mut() {
            *headers = response.headers().clone();
        }
        let body = response.bytes_stream().map_err(move |e| map_error(e, &timeouts, started));
        out.body(read_stall(body, timeouts)).map_err(|e| TransportError::new(FailureKind::Other, e.to_string()))
    }
}

impl Transport for ReqwestTransport {
    type Body = ByteStream;
    type Reply<'a> = ResponseFuture<'a>;

    fn send<'a>(&'a self, request: &'a PreparedRequest) -> Self::Reply<'a> {
        Box::pin(self.send_inner(request))
    }
}

/// Upload pieces of at most this size (slices, not copies), so progress is seen as it is made.
const PIECE: usize = 64 * 1024;

/// An upload chunk as pieces of at most [`PIECE`] bytes: an upload from memory is one chunk,
/// which would otherwise show no progress until all of it is written.
fn pieces(chunk: Result<Bytes, TransportError>) -> impl Stream<Item = Result<Bytes, TransportError>> {
    let items: Vec<_> = match chunk {
        Ok(bytes) => {
            (0..bytes.len()).step_by(PIECE).map(|at| Ok(bytes.slice(at..(at + PIECE).min(bytes.len())))).collect()
        }
        Err(e) => vec![Err(e)],
    };
    futures_util::stream::iter(items)
}

/// When the request last made progress: its start, then each upload piece taken. The stall
/// timeout runs from there until the response head arrives (what ureq's send and receive
/// timeouts do for the blocking transport). Tokio's clock, as reqwest's own timeouts use.
#[derive(Clone, Debug)]
struct Progress(Arc<Mutex<tokio::time::Instant>>);

impl Progress {
    fn new() -> Self {
        Progress(Arc::new(Mutex::new(tokio::time::Instant::now())))
    }

    fn touch(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
    }

    /// Resolves once `window` passed without progress.
    async fn stalled(&self, window: Duration) {
        loop {
            let deadline = *self.0.lock().unwrap_or_else(|e| e.into_inner()) + window;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A response body that fails with the stall timeout when no chunk arrives for a stall window
/// (a trickle is the client's to catch: it counts bytes).
fn read_stall(
    body: impl Stream<Item = Result<Bytes, TransportError>> + Send + 'static,
    timeouts: Timeouts,
) -> ByteStream {
    let body: ByteStream = Box::pin(body);
    Box::pin(futures_util::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(timeouts.stall, body.next()).await {
            Ok(Some(item)) => Some((item, Some(body))),
            Ok(None) => None,
            Err(_) => Some((Err(timeouts.elapsed(TimeoutKind::Stall)), None)),
        }
    }))
}

/// Streams a blocking reader: a blocking task reads 64 KiB chunks into a bounded channel, so
/// memory stays constant and the async executor is never blocked.
fn reader_stream(mut reader: Box<dyn std::io::Read + Send>) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, TransportError>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let item = match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(TransportError::from(e)),
            };
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                return;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

/// `started`: when the attempt began, to tell the overall timeout from the stall timeout
/// (reqwest reports both as "timed out").
fn map_error(e: reqwest::Error, timeouts: &Timeouts, started: Instant) -> TransportError {
    let tls = redcap_core::transport::in_source_chain(&e, |s| {
        s.is::<rustls::Error>()
            || s.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).is_some_and(|inner| inner.is::<rustls::Error>())
            // The TLS connector passes rustls' certificate error on as text inside an io::Error.
            || s.to_string().starts_with("invalid peer certificate")
    });
    if e.is_timeout() && !tls {
        let which = match timeouts.overall {
            _ if e.is_connect() => TimeoutKind::Connect,
            Some(overall) if started.elapsed() >= overall => TimeoutKind::Overall,
            _ => TimeoutKind::Stall,
        };
        return timeouts.elapsed(which).with_source(e);
    }
    let (kind, message) = if tls {
        (FailureKind::Tls, "the TLS connection failed")
    } else if e.is_connect() {
        // hyper-util reports a failed name lookup as a connect error ("dns error").
        let dns = redcap_core::transport::in_source_chain(&e, |s| {
            s.downcast_ref::<std::io::Error>().is_some_and(redcap_core::transport::is_dns_failure)
                || s.to_string().starts_with("dns error")
        });
        if dns {
            (FailureKind::Connect, "the server's name could not be resolved")
        } else {
            (FailureKind::Connect, "the connection could not be made")
        }
    } else if e.is_body() || e.is_decode() {
        (FailureKind::Interrupted, "the connection broke while the response was read")
    } else if e.is_request() {
        (FailureKind::Interrupted, "the request could not be sent")
    } else if e.is_builder() {
        (FailureKind::Request, "cannot build the request")
    } else {
        (FailureKind::Other, "the HTTP request failed")
    };
    // The message says what happened; reqwest's error (the source, token-free: the URL has no
    // query) says how.
    TransportError::new(kind, message).with_source(e)
}
