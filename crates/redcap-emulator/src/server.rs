//! HTTP layer: axum routing on a hand-driven hyper connection loop (so a fault can reset a
//! connection), body parsing (form and multipart, bounded), fault application and streaming.

use std::convert::Infallible;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, Method, StatusCode, header};
use redcap_core::ReturnFormat;
use redcap_core::envelope;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::faults::{BatchFault, Fault, Faults};
use crate::handlers::{self, Env, Failure, Reply};
use crate::params::{Params, Upload};
use crate::render;
use crate::store::Store;
use crate::stream::{self, Piece};

/// Request limits: what one client may make the emulator hold or wait for.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest urlencoded body, and largest total of the non-file parts of a multipart body.
    pub max_form_bytes: u64,
    /// Largest uploaded file.
    pub max_upload_bytes: u64,
    /// Most parts in a multipart body.
    pub max_parts: usize,
    /// Time a client has to send a request's headers before the connection is closed (slow
    /// clients otherwise hold a connection open forever).
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_form_bytes: 64 << 20,
            max_upload_bytes: 4 << 30,
            max_parts: 10_000,
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// State shared by every request.
#[derive(Debug)]
pub struct Shared {
    pub store: Mutex<Store>,
    /// Requests take their turn at the store here, in arrival order, before they take a blocking
    /// thread: a crowd of waiters on the store's mutex is a crowd of threads on two cores.
    pub turn: tokio::sync::Semaphore,
    pub env: Env,
    pub faults: Faults,
    pub limits: Limits,
    pub tmp_dir: PathBuf,
}

/// A second handle on an accepted socket, so a fault can turn the close into a reset.
#[derive(Debug)]
struct ConnHandle {
    dup: Option<std::net::TcpStream>,
}

impl ConnHandle {
    fn reset(&self) {
        if let Some(s) = &self.dup {
            // Linger 0: the close that follows sends RST instead of FIN.
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Serves until `shutdown` fires.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: tokio::sync::oneshot::Receiver<()>) {
    let header_timeout = shared.limits.header_read_timeout;
    let app = Router::new().route("/api/", any(api)).route("/api", any(api)).fallback(not_found).with_state(shared);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let (tcp, dup) = match tcp.into_std().and_then(|s| {
            let dup = s.try_clone()?;
            Ok((tokio::net::TcpStream::from_std(s)?, dup))
        }) {
            Ok(pair) => pair,
            Err(_) => continue,
        };
        let conn = Arc::new(ConnHandle { dup: Some(dup) });
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(conn.clone());
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.oneshot(req.map(Body::new)).await.unwrap_or_else(|e| match e {})) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn not_found() -> Response {
    // What a web server in front of REDCap answers for a wrong URL (reference §5.1).
    response(
        StatusCode::NOT_FOUND,
        "text/html; charset=utf-8",
        Body::from(
            "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>",
        ),
    )
}

fn response(status: StatusCode, content_type: &str, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn error_response(status: StatusCode, format: ReturnFormat, message: &str) -> Response {
    let (ct, body) = envelope::render(format, message);
    response(status, ct, Body::from(body))
}

async fn api(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    if req.method() != Method::POST {
        return error_response(
            StatusCode::NOT_IMPLEMENTED,
            ReturnFormat::Xml,
            "The requested method is not implemented.",
        );
    }
    let conn = req.extensions().get::<Arc<ConnHandle>>().cloned();
    let (latency, fault) = shared.faults.next_call();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let params = match read_params(&shared, req).await {
        Ok(p) => p,
        Err((status, msg)) => return error_response(status, ReturnFormat::Xml, &msg),
    };
    let err_format = params.error_format();
    let batch_fault = shared.faults.batch_fault(&params);
    let mangle = match batch_fault {
        Some(BatchFault::Status { status, message }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error_response(status, err_format, &message);
        }
        Some(BatchFault::Empty) => return response(StatusCode::OK, render::JSON, Body::empty()),
        Some(f) if f.runs_export() => Some((f, params.list("records").unwrap_or_default())),
        _ => None,
    };
    match &fault {
        Some(Fault::Status { status, message }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error_response(status, err_format, message);
        }
        Some(Fault::HtmlPage) => {
            return response(
                StatusCode::OK,
                "text/html; charset=UTF-8",
                Body::from(
                    "<!DOCTYPE html><html><head><title>REDCap crashed due to an unexpected error</title></head>\
                     <body><p>An unknown error occurred. (injected by the REDCap emulator)</p></body></html>",
                ),
            );
        }
        Some(Fault::Redirect { status, location }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            // The body an Apache server sends with its redirects; clients must not rely on it.
            let body = format!(
                "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head><title>{status}</title></head><body>\
                 <h1>Moved</h1><p>The document has moved <a href=\"{}\">here</a>.</p></body></html>\n",
                render::esc(location)
            );
            let mut r = response(status, "text/html; charset=iso-8859-1", Body::from(body));
            if let Ok(v) = HeaderValue::from_str(location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut r = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                err_format,
                "Too many requests (injected by the REDCap emulator)",
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            return r;
        }
        _ => {}
    }
    // The logging rule looks at the answer, after the handler took the params.
    let content = params.get("content").map(str::to_owned);
    let shared2 = shared.clone();
    let Ok(turn) = shared.turn.acquire().await else {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, err_format, GONE);
    };
    let outcome = tokio::task::spawn_blocking(move || {
        let mut store = shared2.store.lock().unwrap_or_else(|e| e.into_inner());
        handlers::handle(&mut store, &shared2.env, params)
    })
    .await;
    drop(turn);
    let reply = match outcome {
        Ok(Ok(reply)) => reply,
        Ok(Err(Failure { status, message })) => return error_response(status, err_format, &message),
        Err(_) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                err_format,
                "The REDCap emulator failed while handling this request.",
            );
        }
    };
    if let Reply::Body { body, .. } = &reply {
        if let Some(status) = shared.faults.log_fault(content.as_deref(), body) {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::GATEWAY_TIMEOUT);
            return error_response(status, err_format, "Gateway Timeout (injected by the REDCap emulator)");
        }
    }
    let cut = match fault {
        Some(Fault::ResetAfter { bytes }) => Some((bytes, conn)),
        Some(Fault::Truncate { bytes }) => Some((bytes, None)),
        _ => None,
    };
    build_reply(reply, cut, mangle, err_format, shared.env.content_disposition).await
}

const GONE: &str = "The REDCap emulator failed while handling this request.";

type BoxStream = std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

async fn build_reply(
    reply: Reply,
    cut: Option<(u64, Option<Arc<ConnHandle>>)>,
    mangle: Option<(BatchFault, Vec<String>)>,
    err_format: ReturnFormat,
    content_disposition: bool,
) -> Response {
    let reply = match reply {
        Reply::Stream { content_type, producer } => {
            let mut rx = stream::spawn(producer);
            match rx.recv().await {
                // Small bodies: the whole body came at once, sent with its length as before.
                Some(Piece::Last(body)) => Reply::Body { content_type, body: body.into() },
                Some(Piece::Chunk(first)) if cut.is_some() || mangle.is_some() => {
                    // Fault injection needs the whole body: gather it (only tests inject faults).
                    let mut body = first.to_vec();
                    loop {
                        match rx.recv().await {
                            Some(Piece::Chunk(b)) => body.extend_from_slice(&b),
                            Some(Piece::Last(b)) => {
                                body.extend_from_slice(&b);
                                break;
                            }
                            Some(Piece::Failed(m)) => {
                                return error_response(StatusCode::INTERNAL_SERVER_ERROR, err_format, &m);
                            }
                            None => return error_response(StatusCode::INTERNAL_SERVER_ERROR, err_format, GONE),
                        }
                    }
                    Reply::Body { content_type, body }
                }
                Some(Piece::Chunk(first)) => {
                    // Chunked transfer: a failure after the first chunk aborts the connection, so a
                    // client never takes a cut body for a whole one.
                    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
                        match rx.recv().await {
                            Some(Piece::Chunk(b) | Piece::Last(b)) => Some((Ok(b), rx)),
                            Some(Piece::Failed(m)) => Some((Err(io::Error::other(m)), rx)),
                            None => None,
                        }
                    });
                    let s = futures_util::stream::once(async move { Ok::<_, io::Error>(first) }).chain(rest);
                    return response(StatusCode::OK, &content_type, Body::from_stream(s));
                }
                Some(Piece::Failed(m)) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, err_format, &m),
                None => return error_response(StatusCode::INTERNAL_SERVER_ERROR, err_format, GONE),
            }
        }
        other => other,
    };
    let (content_type, len, stream, extra): (String, u64, BoxStream, Vec<(header::HeaderName, HeaderValue)>) =
        match reply {
            Reply::Stream { .. } => unreachable!("streams are resolved above"),
            Reply::Body { content_type, body } => {
                let body = match &mangle {
                    Some((fault, records)) => fault.mangle(&body, records, content_type.starts_with("text/csv")),
                    None => body,
                };
                let len = body.len() as u64;
                if cut.is_none() {
                    return response(StatusCode::OK, &content_type, Body::from(body));
                }
                let s: BoxStream = Box::pin(futures_util::stream::once(async move { Ok(Bytes::from(body)) }));
                (content_type, len, s, Vec::new())
            }
            Reply::Empty => {
                return response(StatusCode::OK, render::TEXT, Body::empty());
            }
            Reply::File { path, mime, name, size } => {
                let file = match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(_) => {
                        return error_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            err_format,
                            "The stored file could not be read.",
                        );
                    }
                };
                let s: BoxStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10));
                let (ct, extra) = download_headers(&mime, &name, content_disposition);
                (ct, size, s, extra)
            }
            Reply::Download { mime, name, body } => {
                let (ct, extra) = download_headers(&mime, &name, content_disposition);
                let len = body.len() as u64;
                let s: BoxStream = Box::pin(futures_util::stream::once(async move { Ok(Bytes::from(body)) }));
                (ct, len, s, extra)
            }
        };
    let stream: BoxStream = match cut {
        Some((keep, conn)) => Box::pin(cut_stream(stream, keep, conn)),
        None => stream,
    };
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_bytes(content_type.as_bytes()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    for (k, v) in extra {
        h.insert(k, v);
    }
    r
}

/// The headers naming a downloaded file: `Content-Type: <mime>; name="<file>"` (reference §5.5),
/// and `Content-Disposition` when switched on.
fn download_headers(
    mime: &str,
    name: &str,
    content_disposition: bool,
) -> (String, Vec<(header::HeaderName, HeaderValue)>) {
    let mut ct = format!("{mime}; name=\"{}\"", quote(name));
    if mime.starts_with("text/") {
        ct.push_str("; charset=UTF-8");
    }
    let mut extra = Vec::new();
    if content_disposition {
        let mut cd = format!("attachment; filename=\"{}\"", quote(name));
        if !name.is_ascii() {
            cd.push_str(&format!("; filename*=UTF-8''{}", pct(name)));
        }
        if let Ok(v) = HeaderValue::from_bytes(cd.as_bytes()) {
            extra.push((header::CONTENT_DISPOSITION, v));
        }
    }
    (ct, extra)
}

/// Passes `keep` bytes, then resets the connection (`conn` given) or ends early (truncation).
fn cut_stream(inner: BoxStream, keep: u64, conn: Option<Arc<ConnHandle>>) -> impl Stream<Item = io::Result<Bytes>> {
    futures_util::stream::unfold((inner, keep, false), move |(mut inner, remaining, done)| {
        let conn = conn.clone();
        async move {
            if done {
                return None;
            }
            if remaining == 0 {
                return match conn {
                    Some(c) => {
                        c.reset();
                        Some((
                            Err(io::Error::new(io::ErrorKind::ConnectionReset, "injected connection reset")),
                            (inner, 0, true),
                        ))
                    }
                    None => None,
                };
            }
            match inner.next().await {
                None => None,
                Some(Err(e)) => Some((Err(e), (inner, 0, true))),
                Some(Ok(mut b)) => {
                    if b.len() as u64 > remaining {
                        b.truncate(remaining as usize);
                    }
                    let rem = remaining - b.len() as u64;
                    Some((Ok(b), (inner, rem, false)))
                }
            }
        }
    })
}

fn quote(name: &str) -> String {
    name.replace('\\', "\\\\").replace('"', "\\\"").replace(['\r', '\n'], " ")
}

fn pct(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn read_params(shared: &Shared, req: Request) -> Result<Params, (StatusCode, String)> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let limits = shared.limits;
    let multipart = ct.to_ascii_lowercase().starts_with("multipart/form-data");
    // A declared length over the limit is refused before a byte of the body is read.
    let limit =
        if multipart { limits.max_upload_bytes.saturating_add(limits.max_form_bytes) } else { limits.max_form_bytes };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large("body", limit));
    }
    let host =
        req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).filter(|h| plain_host(h)).map(str::to_owned);
    let mut params = if multipart {
        read_multipart(&limits, &shared.tmp_dir, &ct, req.into_body()).await?
    } else {
        let limit = limits.max_form_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), usize::try_from(limit).unwrap_or(usize::MAX))
            .await
            .map_err(|_| too_large("body", limit))?;
        Params::from_urlencoded(&bytes)
    };
    params.host = host;
    Ok(params)
}

/// A `Host` value fit to put in a link: a name or address and port, nothing else.
fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

fn too_large(what: &str, n: u64) -> (StatusCode, String) {
    (StatusCode::PAYLOAD_TOO_LARGE, format!("The request {what} is larger than the emulator's limit of {n} bytes."))
}

/// Parses a `multipart/form-data` body (content type `ct`): text parts into parameters, the
/// `file` part streamed to a temp file under `tmp_dir`.
pub(crate) async fn read_multipart(
    limits: &Limits,
    tmp_dir: &std::path::Path,
    ct: &str,
    body: Body,
) -> Result<Params, (StatusCode, String)> {
    let boundary = multer::parse_boundary(ct)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("The multipart request could not be parsed: {e}")))?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(limits.max_upload_bytes.saturating_add(limits.max_form_bytes))
            .per_field(limits.max_form_bytes)
            .for_field("file", limits.max_upload_bytes),
    );
    let mut mp = multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut params = Params::default();
    let (mut parts, mut text_bytes) = (0usize, 0u64);
    let map_err = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { limit, field_name } => {
            too_large(&format!("part \"{}\"", field_name.unwrap_or_default()), limit)
        }
        multer::Error::StreamSizeExceeded { limit } => too_large("body", limit),
        other => (StatusCode::BAD_REQUEST, format!("The multipart request could not be parsed: {other}")),
    };
    while let Some(mut field) = mp.next_field().await.map_err(map_err)? {
        parts += 1;
        if parts > limits.max_parts {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request has more than the emulator's limit of {} parts.", limits.max_parts),
            ));
        }
        let name = field.name().unwrap_or("").to_owned();
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            if name != "file" {
                // Only `file` carries an upload; drain anything else.
                while field.chunk().await.map_err(map_err)?.is_some() {}
                continue;
            }
            let content_type = field.content_type().map(|m| m.to_string()).unwrap_or_default();
            let tmp = tempfile::Builder::new()
                .prefix("upload-")
                .tempfile_in(tmp_dir)
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("Could not store the upload: {e}")))?;
            let std_file = tmp
                .as_file()
                .try_clone()
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("Could not store the upload: {e}")))?;
            let path = tmp.into_temp_path();
            let mut out = tokio::io::BufWriter::with_capacity(256 << 10, tokio::fs::File::from_std(std_file));
            while let Some(chunk) = field.chunk().await.map_err(map_err)? {
                out.write_all(&chunk)
                    .await
                    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("Could not store the upload: {e}")))?;
            }
            out.flush()
                .await
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("Could not store the upload: {e}")))?;
            params.upload = Some(Upload { path, file_name, content_type });
        } else {
            // The text parts together, not each alone, are held to the form limit.
            let mut buf = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(map_err)? {
                text_bytes += chunk.len() as u64;
                if text_bytes > limits.max_form_bytes {
                    return Err(too_large("non-file parts", limits.max_form_bytes));
                }
                buf.extend_from_slice(&chunk);
            }
            params.push(name, String::from_utf8_lossy(&buf).into_owned());
        }
    }
    Ok(params)
}
