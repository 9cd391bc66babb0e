//! Blocking REDCap API client over [ureq](https://docs.rs/ureq) 3.
//!
//! ```no_run
//! use redcap_blocking::Client;
//! use redcap_api::file_repository;
//!
//! let client = Client::builder("https://redcap.example.edu/api/", std::env::var("REDCAP_API_TOKEN")?).build()?;
//! for entry in client.call(&file_repository::list::Request::new())? {
//!     println!("{}", entry.name());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Requests are prepared and responses decoded by `redcap-core`, exactly as in the async
//! client; this crate only moves bytes and sleeps between retries.
#![warn(missing_docs)]

mod client;
mod transport;

pub use client::{Blocking, Client, ClientBuilder};
pub use redcap_core::exchange::Target;
pub use redcap_core::{DEFAULT_MAX_BUFFERED, Downloaded, Streamed};
pub use transport::{ResponseBody, UreqTransport};
