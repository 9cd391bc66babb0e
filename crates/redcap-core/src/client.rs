//! What both clients share: their builder, and the results of streamed calls.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use crate::download::DownloadHead;
use crate::error::{EncodeError, Error};
use crate::policy::RetryPolicy;
use crate::token::Token;
use crate::transport::TransportConfig;
use crate::url::ApiUrl;

/// The largest body a client's `call` buffers by default (stream larger ones).
pub const DEFAULT_MAX_BUFFERED: usize = 512 << 20;

/// Calls a client keeps in flight at once by default.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Everything a client is built from. URL and token are kept as given until `build`
/// validates them, so a builder can be passed around before any check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientSettings {
    /// The API URL as given.
    pub url: String,
    /// The token as given (never shown: see the `Debug` of [`ClientBuilder`]).
    pub(crate) token: String,
    /// Whether plain http is accepted.
    pub allow_http: bool,
    /// Timeouts, TLS roots, proxies.
    pub transport: TransportConfig,
    /// Retries.
    pub retry: RetryPolicy,
    /// The largest buffered body.
    pub max_buffered: usize,
    /// Calls in flight at once (across the tasks or threads sharing a client).
    pub concurrency: usize,
    /// Calls started per minute, 0 for no pacing (retries count as calls).
    pub requests_per_minute: u32,
}

impl ClientSettings {
    /// Validates URL and token: nothing is sent with a malformed one.
    pub fn endpoint(&self) -> Result<(ApiUrl, Token), Error> {
        let url = if self.allow_http { ApiUrl::parse_allow_http(&self.url) } else { ApiUrl::parse(&self.url) }
            .map_err(|e| Error::Encode(EncodeError::Url(e)))?;
        let token = Token::new(&self.token).map_err(|e| Error::Encode(EncodeError::Token(e)))?;
        Ok((url, token))
    }
}

/// How a client crate turns settings into its client.
pub trait Build {
    /// The client built.
    type Client;
    /// Builds it (after validating URL and token with [`ClientSettings::endpoint`]).
    fn build(settings: ClientSettings) -> Result<Self::Client, Error>;
}

/// Builds a client: `redcap::blocking::Client::builder(url, token)…build()`.
pub struct ClientBuilder<B> {
    settings: ClientSettings,
    mode: PhantomData<fn() -> B>,
}

impl<B> std::fmt::Debug for ClientBuilder<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.settings.url)
            .field("token", &"[redacted]")
            .field("allow_http", &self.settings.allow_http)
            .finish_non_exhaustive()
    }
}

impl<B> Clone for ClientBuilder<B> {
    fn clone(&self) -> Self {
        ClientBuilder { settings: self.settings.clone(), mode: PhantomData }
    }
}

impl<B: Build> ClientBuilder<B> {
    /// A builder for `url` with `token` (validated by `build`).
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        ClientBuilder {
            settings: ClientSettings {
                url: url.into(),
                token: token.into(),
                allow_http: false,
                transport: TransportConfig::default(),
                retry: RetryPolicy::default(),
                max_buffered: DEFAULT_MAX_BUFFERED,
                concurrency: DEFAULT_CONCURRENCY,
                requests_per_minute: 0,
            },
            mode: PhantomData,
        }
    }

    /// Accepts a plain-http URL (a local emulator, a test server). Off by default.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.settings.allow_http = allow;
        self
    }

    /// Longest time to connect (DNS, TCP and TLS); 30 s by default.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.settings.transport.connect_timeout = d;
        self
    }

    /// Longest time without progress (no answer yet, a body that stopped or trickles under
    /// [`STALL_FLOOR`](crate::STALL_FLOOR) bytes in this time, an upload not taken); 120 s by
    /// default. A stalled idempotent call is retried once.
    pub fn stall_timeout(mut self, d: Duration) -> Self {
        self.settings.transport.stall_timeout = d;
        self
    }

    /// Longest time for a whole call, retries included (`None`, the default: no limit, so a
    /// large download that progresses may take hours).
    pub fn overall_timeout(mut self, d: Option<Duration>) -> Self {
        self.settings.transport.overall_timeout = d;
        self
    }

    /// Trust the certificates of this PEM file in addition to the built-in roots.
    pub fn extra_roots_pem(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.transport.extra_roots_pem = Some(path.into());
        self
    }

    /// Whether to honour the proxy environment variables (on by default).
    pub fn proxy_from_env(mut self, on: bool) -> Self {
        self.settings.transport.proxy_from_env = on;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.settings.transport.user_agent = agent.into();
        self
    }

    /// The retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.settings.retry = policy;
        self
    }

    /// The largest body `call` buffers (512 MiB by default). One-value answers (a version, a
    /// count, a link) are cut at [`SMALL_ANSWER_LIMIT`](crate::exchange::SMALL_ANSWER_LIMIT) and
    /// error bodies at [`ERROR_BODY_LIMIT`](crate::exchange::ERROR_BODY_LIMIT) whatever this says.
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.settings.max_buffered = bytes;
        self
    }

    /// At most `n` calls in flight at once, across the tasks or threads sharing the client
    /// (REDCap servers ban floods).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.settings.concurrency = n.max(1);
        self
    }

    /// At most `n` calls started per minute, 0 for no pacing.
    pub fn requests_per_minute(mut self, n: u32) -> Self {
        self.settings.requests_per_minute = n;
        self
    }

    /// The settings so far.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Validates URL and token and builds the client.
    pub fn build(self) -> Result<B::Client, Error> {
        B::build(self.settings)
    }
}

/// What a streamed call wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Streamed {
    /// The response's file name, type and length headers.
    pub head: DownloadHead,
    /// Bytes written.
    pub bytes: u64,
}

impl Streamed {
    /// A result of `bytes` written under `head`.
    pub fn new(head: DownloadHead, bytes: u64) -> Self {
        Streamed { head, bytes }
    }
}

/// A file written by a client's `download_to`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Downloaded {
    /// Where it is.
    pub path: PathBuf,
    /// The response headers' view of it.
    pub head: DownloadHead,
    /// Its size.
    pub bytes: u64,
}

impl Downloaded {
    /// A download of `bytes` at `path`.
    pub fn new(path: PathBuf, head: DownloadHead, bytes: u64) -> Self {
        Downloaded { path, head, bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Build for Echo {
        type Client = (ApiUrl, Token, ClientSettings);
        fn build(settings: ClientSettings) -> Result<Self::Client, Error> {
            let (url, token) = settings.endpoint()?;
            Ok((url, token, settings))
        }
    }

    #[test]
    fn builds_and_validates_before_anything_is_sent() {
        let (url, _, settings) =
            ClientBuilder::<Echo>::new("http://127.0.0.1:1/api", "0123456789ABCDEF0123456789ABCDEF\n")
                .allow_http(true)
                .concurrency(0)
                .build()
                .unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:1/api/");
        assert_eq!(settings.concurrency, 1);
        let err = ClientBuilder::<Echo>::new("http://r/api/", "0123456789ABCDEF0123456789ABCDEF").build().unwrap_err();
        assert!(matches!(err, Error::Encode(EncodeError::Url(_))));
        let builder = ClientBuilder::<Echo>::new("https://r/api/", "0123456789ABCDEF0123456789ABCDEF");
        assert!(!format!("{builder:?}").contains("0123456789ABCDEF"));
        assert!(builder.clone().build().is_ok());
        assert!(matches!(
            ClientBuilder::<Echo>::new("https://r/api/", "nope").build(),
            Err(Error::Encode(EncodeError::Token(_)))
        ));
    }
}
