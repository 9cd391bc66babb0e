//! A toolkit for the [REDCap](https://projectredcap.org) HTTP API.
//!
//! Every API method is a typed request in its own module (`redcap::record::export`,
//! `redcap::file_repository::list`, …), generated from the project's spec. The same request
//! works with the blocking client (feature `blocking`, on by default) and the async client
//! (feature `async`); both features may be enabled together.
//!
//! ```no_run
//! # #[cfg(feature = "blocking")]
//! # fn main() -> Result<(), redcap::Error> {
//! use redcap::file_repository;
//!
//! let client = redcap::blocking::Client::builder("https://redcap.example.edu/api/", "0123456789ABCDEF0123456789ABCDEF").build()?;
//! let entries = client.call(&file_repository::list::Request::new())?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "blocking"))] fn main() {}
//! ```
//!
//! With the `async` feature the call is the same, awaited:
//!
//! ```no_run
//! # #[cfg(feature = "async")]
//! # async fn run() -> Result<(), redcap::Error> {
//! use redcap::file_repository;
//!
//! let client = redcap::asynchronous::Client::builder("https://redcap.example.edu/api/", "0123456789ABCDEF0123456789ABCDEF").build()?;
//! let entries = client.call(&file_repository::list::Request::new()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Tokens are validated before any request and never appear in `Debug`, `Display`, errors or
//! logs. Only idempotent calls (exports, lists) are retried; uploads, imports, deletes and
//! folder creation never are.
#![warn(missing_docs)]

pub mod workflow;

/// The README's Rust examples, compiled as doc tests so they keep compiling as users copy them.
#[cfg(all(doctest, feature = "blocking", feature = "async"))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

#[cfg(feature = "dataset")]
pub mod dataset;

pub use redcap_api::*;
pub use redcap_core::{
    ApiError, ApiErrorKind, ApiUrl, CsvDelimiter, DataResponse, DateFormat, DecimalCharacter, DownloadHead, Error,
    FileDownload, FileRepositoryEntry, Folder, Format, ImportOutcome, LogType, Method, MethodInfo, OverwriteBehavior,
    RawOrLabel, RecordType, RepositoryFile, RetryPolicy, ReturnContent, ReturnFormat, Row, Token, TokenError, Upload,
    UrlError, Version,
};
// The error types nested in [`Error`], so a `match` needs no path into `redcap::core`.
pub use redcap_core::{
    DecodeError, EncodeError, ErrorKind, FailureKind, ImportErrorLine, RedirectError, ResponseError, TimeoutKind,
    TransportError,
};
pub use workflow::WorkflowError;

/// The sans-IO core (encoding, decoding, the transport trait) for transport authors.
pub use redcap_core as core;

/// Lenient deserializers for REDCap's values (number or text, blank as `None`, `0`/`1` flags,
/// dates), for your own row types.
pub use redcap_core::de;
/// Typed rows of fixed-shape answers, REDCap's dates and datetimes.
pub use redcap_core::{Date, DateTime, Rows, Single};

/// Where a download goes (a directory, under the server's sanitised name, or a file).
pub use redcap_core::exchange::Target;

/// The blocking client (ureq).
#[cfg(feature = "blocking")]
pub mod blocking {
    pub use crate::blocking_ext::Workflows;
    pub use redcap_blocking::{Client, ClientBuilder, Downloaded, Streamed, UreqTransport};
}

#[cfg(feature = "blocking")]
mod blocking_ext;

/// The async client (reqwest + tokio).
///
/// Every future of the client and of [`Workflows`](asynchronous::Workflows) is `Send`: move a
/// clone of the client (clones share the connection pool and the concurrency bound) into a
/// spawned task, a `JoinSet` or an axum handler.
///
/// ```no_run
/// use redcap::asynchronous::{Client, Workflows};
/// use redcap::workflow::NoProgress;
///
/// let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
/// runtime.block_on(async {
///     let client = Client::builder("https://redcap.example.edu/api/", std::env::var("REDCAP_API_TOKEN")?).build()?;
///     let c = client.clone();
///     let version = tokio::spawn(async move { c.call(&redcap::version::export::Request::new()).await });
///     let c = client.clone();
///     let tree = tokio::spawn(async move { c.walk(None, &NoProgress).await });
///     let mut set = tokio::task::JoinSet::new();
///     for id in [1, 2, 3] {
///         let c = client.clone();
///         set.spawn(async move {
///             let target = redcap::Target::Dir { dir: "downloads".into(), fallback: format!("doc_{id}") };
///             c.download_to(&redcap::file_repository::export::Request::new(id), &target).await
///         });
///     }
///     println!("REDCap {}, {} files", version.await??, tree.await??.files.len());
///     while let Some(done) = set.join_next().await {
///         println!("{}", done??.path.display());
///     }
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// })?;
/// # Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[cfg(feature = "async")]
pub mod asynchronous {
    pub use crate::async_ext::Workflows;
    pub use redcap_async::{Client, ClientBuilder, Downloaded, ReqwestTransport, Streamed};
}

#[cfg(feature = "async")]
mod async_ext;
