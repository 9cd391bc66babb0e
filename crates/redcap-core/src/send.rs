//! The transport trait: what sends a [`PreparedRequest`]. One trait serves both modes:
//! `Reply` is the response itself for a blocking transport and a future of it for an async one,
//! so a third-party transport (a recorder, a test double, another HTTP stack) implements one
//! trait whichever client drives it. All decisions (retries, redirects, error bodies,
//! decoding) stay in this crate; a transport only moves bytes.

use crate::method::PreparedRequest;

/// Sends prepared requests.
pub trait Transport: Send + Sync {
    /// The response body: `std::io::Read` for blocking transports, a stream of
    /// `Result<Bytes, TransportError>` for async ones.
    type Body: Send;
    /// What [`Transport::send`] returns: `Result<http::Response<Self::Body>, TransportError>`
    /// for blocking transports, a future of it for async ones.
    type Reply<'a>: Send + 'a
    where
        Self: 'a;

    /// POSTs `request` (body streamed: an upload is read from its source as it is sent). Must not
    /// follow redirects or retry: the client decides both.
    fn send<'a>(&'a self, request: &'a PreparedRequest) -> Self::Reply<'a>;
}
