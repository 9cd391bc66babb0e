//! The ureq 3 transport.

use std::io::{Cursor, Read};

use redcap_core::transport::read_pem_file;
use redcap_core::{Body, FailureKind, PreparedRequest, Transport, TransportConfig, TransportError, UploadSource};

/// A response body being read from the connection.
pub type ResponseBody = Box<dyn Read + Send>;

/// Sends requests with a ureq [`ureq::Agent`] (connection pooling, keep-alive, rustls).
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
}

impl UreqTransport {
    /// A transport configured by `config`: timeouts, extra CA roots, proxy from the environment.
    /// Redirects are not followed (the client decides) and error statuses are returned as
    /// responses so REDCap's error bodies can be read.
    pub fn new(config: &TransportConfig) -> Result<Self, TransportError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &config.extra_roots_pem {
            let pem = read_pem_file(path)?;
            let mut roots: Vec<ureq::tls::Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
                .collect();
            let before = roots.len();
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => roots.push(c),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(TransportError::new(
                            FailureKind::Tls,
                            format!("cannot parse CA certificates in {}: {e}", path.display()),
                        ));
                    }
                }
            }
            if roots.len() == before {
                return Err(TransportError::new(
                    FailureKind::Tls,
                    format!("no certificate found in {}", path.display()),
                ));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
        }
        let proxy = if config.proxy_from_env { ureq::Proxy::try_from_env() } else { None };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.read_timeout))
            .timeout_per_read(Some(config.read_timeout))
            .timeout_global(config.overall_timeout)
            .tls_config(tls.build())
            .proxy(proxy)
            .user_agent(config.user_agent.as_str())
            .build()
            .new_agent();
        Ok(UreqTransport { agent })
    }

    fn send_inner(&self, request: &PreparedRequest) -> Result<http::Response<ResponseBody>, TransportError> {
        let builder =
            http::Request::post(request.url().as_str()).header(http::header::CONTENT_TYPE, request.content_type());
        let response = match request.body() {
            Body::Form(bytes) => {
                let req = builder.body(&bytes[..]).map_err(request_error)?;
                self.agent.run(req)
            }
            Body::Multipart(mp) => {
                // head, then the file streamed from its source, then tail: constant memory.
                let (file, len): (Box<dyn Read + Send>, u64) = match mp.upload().map(|u| &u.source) {
                    Some(UploadSource::Path(p)) => {
                        let f = std::fs::File::open(p).map_err(|e| {
                            TransportError::new(FailureKind::Request, format!("cannot open {}", p.display()))
                                .with_source(e)
                        })?;
                        let len = f.metadata().map(|m| m.len()).map_err(TransportError::from)?;
                        (Box::new(f), len)
                    }
                    Some(UploadSource::Bytes(b)) => (Box::new(Cursor::new(b.clone())), b.len() as u64),
                    Some(UploadSource::Reader(r)) => {
                        let reader = r.take().ok_or_else(|| {
                            TransportError::new(
                                FailureKind::Request,
                                "the upload's reader was already used by another request",
                            )
                        })?;
                        (reader, r.len())
                    }
                    _ => (Box::new(std::io::empty()), 0),
                };
                let body = Cursor::new(mp.head().clone()).chain(file.take(len)).chain(Cursor::new(mp.tail().clone()));
                let req = builder
                    .header(http::header::CONTENT_LENGTH, mp.content_length(len))
                    .body(ureq::SendBody::from_owned_reader(body))
                    .map_err(request_error)?;
                self.agent.run(req)
            }
            _ => return Err(TransportError::new(FailureKind::Request, "unsupported request body")),
        };
        let response = response.map_err(map_error)?;
        Ok(response.map(|b| Box::new(b.into_reader()) as ResponseBody))
    }
}

impl Transport for UreqTransport {
    type Body = ResponseBody;
    type Reply<'a> = Result<http::Response<ResponseBody>, TransportError>;

    fn send<'a>(&'a self, request: &'a PreparedRequest) -> Self::Reply<'a> {
        self.send_inner(request)
    }
}

fn request_error(e: http::Error) -> TransportError {
    TransportError::new(FailureKind::Request, "cannot build the request").with_source(e)
}

fn map_error(e: ureq::Error) -> TransportError {
    // ureq's Io variant does not expose its io::Error as a source: look inside it directly.
    let tls = match &e {
        ureq::Error::Io(io) => io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()),
        other => redcap_core::transport::in_source_chain(other, |s| s.is::<rustls::Error>()),
    };
    let (kind, message) = match &e {
        _ if tls => (FailureKind::Tls, "the TLS connection failed"),
        ureq::Error::Timeout(_) => (FailureKind::Timeout, "a timeout elapsed"),
        ureq::Error::HostNotFound => (FailureKind::Connect, "the server's name could not be resolved"),
        ureq::Error::ConnectionFailed => (FailureKind::Connect, "the connection could not be made"),
        ureq::Error::ConnectProxyFailed(_) => (FailureKind::Connect, "the connection through the proxy failed"),
        // A failed name lookup reaches ureq as an io::Error from the resolver.
        ureq::Error::Io(io) => redcap_core::transport::classify_io(io),
        ureq::Error::Tls(_) | ureq::Error::Pem(_) | ureq::Error::Rustls(_) => {
            (FailureKind::Tls, "the TLS connection failed")
        }
        ureq::Error::Protocol(_) => (FailureKind::Interrupted, "the server broke the HTTP protocol"),
        ureq::Error::BodyStalled => (FailureKind::Interrupted, "the response body stalled"),
        _ => (FailureKind::Other, "the HTTP request failed"),
    };
    // The message says what happened; ureq's error (the source) says how.
    TransportError::new(kind, message).with_source(e)
}
