//! What transports share: their error type (with the kind of failure and which timeout
//! elapsed), and the settings both built-in transports honour. The trait itself is in the
//! `send` module.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What kind of failure a transport met; drives the retry decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The connection could not be made (refused, DNS, unreachable): nothing reached REDCap.
    Connect,
    /// A timeout elapsed.
    Timeout,
    /// The connection broke or the body ended early (reset, truncated body).
    Interrupted,
    /// TLS failed (certificate not trusted, handshake).
    Tls,
    /// The request could not be sent as built (bad header, file unreadable).
    Request,
    /// The answer is larger than the client buffers in memory: the connection is fine, the call
    /// must be streamed (or asked for in parts) instead. Not transient.
    TooLarge,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// Whether repeating an idempotent call may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, FailureKind::Connect | FailureKind::Timeout | FailureKind::Interrupted)
    }
}

/// Which timeout of [`TransportConfig`] elapsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// No connection (TCP and TLS) within [`TransportConfig::connect_timeout`].
    Connect,
    /// No progress within [`TransportConfig::stall_timeout`]: no answer, or a body that stopped
    /// or trickles (under [`STALL_FLOOR`] bytes in that time).
    Stall,
    /// The call did not finish within [`TransportConfig::overall_timeout`].
    Overall,
}

/// The fewest bytes a transfer must receive per [`TransportConfig::stall_timeout`] not to be
/// stalled: a body sent at a few bytes a second (a hostile or broken server) is ended, not
/// waited for for days.
pub const STALL_FLOOR: u64 = 1024;

/// A transport failure. Never contains the token (transports never see it outside the body).
#[derive(Debug)]
pub struct TransportError {
    kind: FailureKind,
    message: String,
    timeout: Option<TimeoutKind>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    /// A failure of `kind` described by `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        TransportError { kind, message: message.into(), timeout: None, source: None }
    }

    /// The timeout `which` elapsed after `after` (kind [`FailureKind::Timeout`]), with a
    /// message that names the timeout and its setting.
    pub fn timeout(which: TimeoutKind, after: Duration) -> Self {
        let after = human(after);
        let message = match which {
            TimeoutKind::Connect => format!("no connection within {after} (connect timeout)"),
            TimeoutKind::Stall => format!("the server sent nothing for {after} (stall timeout)"),
            TimeoutKind::Overall => format!("the call did not finish within {after} (overall timeout)"),
        };
        TransportError { kind: FailureKind::Timeout, message, timeout: Some(which), source: None }
    }

    /// Replaces the message (keeping kind, timeout and source).
    pub fn set_message(&mut self, message: impl Into<String>) {
        self.message = message.into();
    }

    /// Which timeout elapsed, when this is a timeout a transport could tell apart.
    pub fn timeout_kind(&self) -> Option<TimeoutKind> {
        self.timeout
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Attaches an already boxed underlying error.
    pub fn with_boxed_source(mut self, source: Box<dyn std::error::Error + Send + Sync>) -> Self {
        self.source = Some(source);
        self
    }

    /// The underlying error, taken out.
    pub fn into_source(self) -> Option<Box<dyn std::error::Error + Send + Sync>> {
        self.source
    }

    /// The kind.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// Whether the request may have reached REDCap although no answer came: true for every
    /// failure but one before a connection was made (connect, TLS) or before anything was
    /// sent (the request could not be built). A non-idempotent call (an upload, an import)
    /// failing so must be checked on the server before it is sent again.
    pub fn maybe_delivered(&self) -> bool {
        match self.kind {
            FailureKind::Connect | FailureKind::Tls | FailureKind::Request => false,
            FailureKind::Timeout | FailureKind::Interrupted | FailureKind::TooLarge | FailureKind::Other => true,
        }
    }

    /// The description.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error without `secret` in its message or its sources' (an HTTP stack may quote a
    /// header the server sent). A source that shows it is replaced by its redacted text.
    pub(crate) fn redact(mut self, secret: &str) -> Self {
        crate::redact::redact_in(&mut self.message, secret);
        if let Some(source) = self.source.take() {
            let mut chain = Vec::new();
            let mut next: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(e) = next {
                chain.push(e.to_string());
                next = e.source();
            }
            let text = chain.join(": ");
            // Debug too: `{:?}` of the error shows the source's Debug.
            let shows = crate::redact::redacted(&format!("{text}\n{source:?}"), secret).is_some();
            self.source = match shows {
                true => Some(Box::new(Redacted(crate::redact::redacted(&text, secret).unwrap_or(text)))),
                false => Some(source),
            };
        }
        self
    }
}

/// A source error whose text had to be redacted: its chain, as text.
#[derive(Debug)]
struct Redacted(String);

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Redacted {}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for TransportError {
    fn from(e: std::io::Error) -> Self {
        let (kind, message) = classify_io(&e);
        TransportError::new(kind, message).with_source(e)
    }
}

/// The failure kind of an I/O error met while talking to the server, and a message that
/// describes it without repeating the error's own text (which stays the source).
pub fn classify_io(e: &std::io::Error) -> (FailureKind, &'static str) {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused | K::NotConnected | K::AddrNotAvailable | K::HostUnreachable | K::NetworkUnreachable => {
            (FailureKind::Connect, "the connection could not be made")
        }
        K::TimedOut | K::WouldBlock => (FailureKind::Timeout, "the connection timed out"),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            (FailureKind::Interrupted, "the connection broke")
        }
        _ if is_dns_failure(e) => (FailureKind::Connect, "the server's name could not be resolved"),
        _ => (FailureKind::Other, "the connection failed"),
    }
}

/// Whether an I/O error is a failed name lookup. The standard library reports `getaddrinfo`
/// failures with no specific [`std::io::ErrorKind`]; its message (Unix) or the WSA code
/// (Windows: host not found, try again, no data) tells them apart.
pub fn is_dns_failure(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(11001 | 11002 | 11004) if cfg!(windows))
        || e.to_string().contains("failed to lookup address information")
}

/// Whether `error` or any error in its source chain satisfies `test`. Transports use it to
/// find their TLS library's error (an untrusted certificate, a failed handshake) behind the
/// I/O or connect error their HTTP stack reports, which would otherwise look transient.
pub fn in_source_chain(
    error: &(dyn std::error::Error + 'static),
    test: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if test(e) {
            return true;
        }
        current = e.source();
    }
    false
}

/// A duration as a person reads it: `1.5 s`, `120 s`, `250 ms`.
pub(crate) fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Settings both built-in transports honour.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Time to establish a connection (DNS, TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest time without progress: waiting for the response to start, or while its body
    /// arrives (a body must bring at least [`STALL_FLOOR`] bytes in this time), or while an
    /// upload is sent.
    pub stall_timeout: Duration,
    /// Longest time for a whole call, retries included; `None` for no overall limit (large
    /// downloads take as long as they take while they progress).
    pub overall_timeout: Option<Duration>,
    /// Extra trusted root certificates (PEM file), added to the built-in roots.
    pub extra_roots_pem: Option<PathBuf>,
    /// Honour `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY`.
    pub proxy_from_env: bool,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connect_timeout: Duration::from_secs(30),
            // REDCap builds an export before it sends the first byte; two minutes covers large
            // ones, and a silent server is given up on after one retry (about four minutes).
            stall_timeout: Duration::from_secs(120),
            overall_timeout: None,
            extra_roots_pem: None,
            proxy_from_env: true,
            user_agent: concat!("redcap-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The timeouts a transport applies to one attempt, to name the one that elapsed. Both
/// built-in transports use it: the same setting gives the same message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// [`TransportConfig::connect_timeout`].
    pub connect: Duration,
    /// [`TransportConfig::stall_timeout`].
    pub stall: Duration,
    /// What is left of the call's overall timeout for this attempt, else the configured one.
    pub overall: Option<Duration>,
}

impl Timeouts {
    /// The timeouts `config` sets.
    pub fn new(config: &TransportConfig) -> Self {
        Timeouts { connect: config.connect_timeout, stall: config.stall_timeout, overall: config.overall_timeout }
    }

    /// The timeouts of one attempt, given what is left of the call's overall time
    /// (`PreparedRequest::timeout`): that bounds the attempt, body included.
    pub fn for_attempt(self, remaining: Option<Duration>) -> Self {
        Timeouts { overall: remaining.or(self.overall), ..self }
    }

    /// The error of the timeout `which` elapsing (an overall timeout that is not set is named
    /// with the stall timeout's duration).
    pub fn elapsed(&self, which: TimeoutKind) -> TransportError {
        let after = match which {
            TimeoutKind::Connect => self.connect,
            TimeoutKind::Stall => self.stall,
            TimeoutKind::Overall => self.overall.unwrap_or(self.stall),
        };
        TransportError::timeout(which, after)
    }
}

/// A body read error of a blocking transport as the [`TransportError`] it stands for: one a
/// transport put inside the `io::Error` is taken as is.
pub fn from_read_error(e: std::io::Error) -> TransportError {
    if e.get_ref().is_some_and(|inner| inner.is::<TransportError>()) {
        if let Some(Ok(t)) = e.into_inner().map(|inner| inner.downcast::<TransportError>()) {
            return *t;
        }
        return TransportError::new(FailureKind::Interrupted, "reading the response failed");
    }
    let kind = if e.kind() == std::io::ErrorKind::TimedOut { FailureKind::Timeout } else { FailureKind::Interrupted };
    TransportError::new(kind, "reading the response failed").with_source(e)
}

/// Reads every certificate of a PEM file (for transports that add extra roots).
pub fn read_pem_file(path: &std::path::Path) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|e| {
        TransportError::new(FailureKind::Tls, format!("cannot read CA certificates from {}", path.display()))
            .with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_before_sending_are_known_undelivered() {
        let e = |kind| TransportError::new(kind, "x");
        for kind in [FailureKind::Connect, FailureKind::Tls, FailureKind::Request] {
            assert!(!e(kind).maybe_delivered(), "{kind:?}");
        }
        for kind in [FailureKind::Timeout, FailureKind::Interrupted, FailureKind::TooLarge, FailureKind::Other] {
            assert!(e(kind).maybe_delivered(), "{kind:?}");
        }
        assert!(TransportError::timeout(TimeoutKind::Stall, Duration::from_secs(1)).maybe_delivered());
        assert!(crate::Error::Transport(e(FailureKind::Interrupted)).maybe_delivered());
        assert!(!crate::Error::Transport(e(FailureKind::Connect)).maybe_delivered());
    }
}
