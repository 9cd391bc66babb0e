//! Async REDCap API client over [reqwest](https://docs.rs/reqwest) and tokio.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use redcap_async::Client;
//! use redcap_api::file_repository;
//!
//! let client = Client::builder("https://redcap.example.edu/api/", std::env::var("REDCAP_API_TOKEN")?)
//!     .concurrency(4)
//!     .build()?;
//! for entry in client.call(&file_repository::list::Request::new()).await? {
//!     println!("{}", entry.name());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Requests are prepared and responses decoded by `redcap-core`, exactly as in the blocking
//! client; this crate only moves bytes, bounds concurrency and sleeps between retries.
#![warn(missing_docs)]

mod client;
mod transport;

pub use client::{Async, Client, ClientBuilder};
pub use redcap_core::exchange::Target;
pub use redcap_core::{DEFAULT_CONCURRENCY, DEFAULT_MAX_BUFFERED, Downloaded, Streamed};
pub use transport::{ByteStream, ReqwestTransport, ResponseFuture};
