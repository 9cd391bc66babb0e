//! The ureq 3 transport.

use std::io::{Cursor, Read};
use std::time::Duration;

use redcap_core::transport::{Timeouts, read_pem_file};
use redcap_core::{
    Body, FailureKind, PreparedRequest, TimeoutKind, Transport, TransportConfig, TransportError, UploadSource,
};

/// A response body being read from the connection.
pub type ResponseBody = Box<dyn Read + Send>;

/// Sends requests with a ureq [`ureq::Agent`] (connection pooling, keep-alive, rustls).
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
    timeouts: Timeouts,
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
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_resolve(Some(config.connect_timeout))
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.stall_timeout))
            .timeout_per_read(Some(config.stall_timeout))
            .timeout_per_write(Some(config.stall_timeout))
            .tls_config(tls.build())
            .proxy(proxy)
            .user_agent(config.user_agent.as_str())
            .build();
        let agent = ureq::Agent::with_parts(
            agent_config,
            ureq::unversioned::transport::DefaultConnector::new(),
            LiteralFirst(ureq::unversioned::resolver::DefaultResolver::default()),
        );
        Ok(UreqTransport { agent, timeouts: Timeouts::new(config) })
    }

    fn send_inner(&self, request: &PreparedRequest) -> Result<http::Response<ResponseBody>, TransportError> {
        let timeouts = self.timeouts.for_attempt(request.timeout());
        let builder =
            http::Request::post(request.url().as_str()).header(http::header::CONTENT_TYPE, request.content_type());
        let response = match request.body() {
            Body::Form(bytes) => {
                let req = builder.body(&bytes[..]).map_err(request_error)?;
                self.run(req, timeouts.overall)
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
                self.run(req, timeouts.overall)
            }
            _ => return Err(TransportError::new(FailureKind::Request, "unsupported request body")),
        };
        let response = response.map_err(|e| map_error(e, &timeouts))?;
        Ok(response.map(|b| Box::new(TimedReader { inner: b.into_reader(), timeouts }) as ResponseBody))
    }
}

impl UreqTransport {
    fn run<S: ureq::AsSendBody>(
        &self,
        req: http::Request<S>,
        overall: Option<Duration>,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        let req = self.agent.configure_request(req).timeout_global(overall).build();
        self.agent.run(req)
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

/// A response body whose read errors carry the [`TransportError`] they stand for (a timeout
/// named as such, not "io: …"), as the client expects of any blocking transport.
struct TimedReader<R> {
    inner: R,
    timeouts: Timeouts,
}

impl<R: Read> Read for TimedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            // ureq hands its own errors (timeouts among them) out of the reader wrapped in io::Error.
            let e = match e.get_ref().is_some_and(|inner| inner.is::<ureq::Error>()) {
                true => match e.into_inner().map(|inner| inner.downcast::<ureq::Error>()) {
                    Some(Ok(ureq)) => map_error(*ureq, &self.timeouts),
                    _ => return std::io::Error::other("unreadable response body"),
                },
                false => TransportError::from(e),
            };
            let kind = match e.kind() {
                FailureKind::Timeout => std::io::ErrorKind::TimedOut,
                _ => std::io::ErrorKind::ConnectionAborted,
            };
            std::io::Error::new(kind, e)
        })
    }
}

fn map_error(e: ureq::Error, timeouts: &Timeouts) -> TransportError {
    if let ureq::Error::Timeout(which) = &e {
        let which = match which {
            ureq::Timeout::Resolve | ureq::Timeout::Connect => TimeoutKind::Connect,
            ureq::Timeout::Global | ureq::Timeout::PerCall => TimeoutKind::Overall,
            _ => TimeoutKind::Stall,
        };
        return timeouts.elapsed(which).with_source(e);
    }
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

/// Resolves like the fallback resolver, but answers a URL whose host is an IP address itself
/// (the emulator's `http://127.0.0.1:PORT/api/`). ureq resolves the host on every request, even
/// on a pooled connection, and with a resolve timeout its default resolver starts a thread per
/// lookup: one thread per call for nothing.
#[derive(Debug)]
struct LiteralFirst<R>(R);

impl<R: ureq::unversioned::resolver::Resolver> ureq::unversioned::resolver::Resolver for LiteralFirst<R> {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.authority().and_then(|a| {
            let ip: std::net::IpAddr = a.host().trim_start_matches('[').trim_end_matches(']').parse().ok()?;
            let port = a.port_u16().or(match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })?;
            Some(std::net::SocketAddr::new(ip, port))
        });
        match literal {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

#[cfg(test)]
mod resolver_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
    use ureq::unversioned::transport::NextTimeout;

    use super::LiteralFirst;

    /// A fallback that counts its lookups and answers 192.0.2.1 (TEST-NET-1).
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl Resolver for Counting {
        fn resolve(
            &self,
            _: &ureq::http::Uri,
            _: &ureq::config::Config,
            _: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let mut v = self.empty();
            v.push("192.0.2.1:443".parse().unwrap());
            Ok(v)
        }
    }

    fn resolve(r: &LiteralFirst<Counting>, url: &str) -> Vec<std::net::SocketAddr> {
        let config = ureq::Agent::config_builder().build();
        let timeout = NextTimeout {
            after: ureq::unversioned::transport::time::Duration::NotHappening,
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        r.resolve(&url.parse().unwrap(), &config, timeout).unwrap().iter().copied().collect()
    }

    #[test]
    fn ip_literals_are_answered_without_a_lookup() {
        let r = LiteralFirst(Counting::default());
        assert_eq!(resolve(&r, "http://127.0.0.1:8080/api/"), ["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(resolve(&r, "https://[::1]/api/"), ["[::1]:443".parse().unwrap()]);
        assert_eq!(resolve(&r, "http://10.1.2.3/api/"), ["10.1.2.3:80".parse().unwrap()]);
        assert_eq!(r.0.0.load(Ordering::SeqCst), 0, "no lookup for an address");
        assert_eq!(resolve(&r, "https://redcap.example.edu/api/"), ["192.0.2.1:443".parse().unwrap()]);
        assert_eq!(r.0.0.load(Ordering::SeqCst), 1, "a host name is looked up");
    }
}
