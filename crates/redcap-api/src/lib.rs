//! Typed requests for every method of the REDCap API.
//!
//! One module per method (`redcap_api::<area>::<method>`), each with a `Request` type that
//! implements [`redcap_core::Method`], an `INFO` constant describing the method, and the spec's
//! example calls. The modules are generated from `spec/*.toml` by `cargo xtask codegen` and checked
//! in; never edit them by hand.
//!
//! Fixed-shape answers are typed: [`rows`] holds one struct per row shape (the data dictionary's
//! [`rows::Field`], arms, events, users …), and such methods return [`redcap_core::Rows`]. The
//! [`dictionary`] module reads a field's packed columns (choices, validation, slider labels).
//!
//! ```
//! use redcap_api::file_repository;
//! use redcap_core::{ApiUrl, Token};
//!
//! let url = ApiUrl::parse("https://redcap.example.edu/api/").unwrap();
//! let token = Token::new("0123456789ABCDEF0123456789ABCDEF").unwrap();
//! let request = file_repository::list::Request::new().folder_id(45);
//! let prepared = redcap_core::prepare(&request, &url, &token).unwrap();
//! assert!(prepared.render().contains("folder_id=45"));
//! ```

pub mod dictionary;
mod records;
#[rustfmt::skip]
mod generated;

pub use dictionary::Choice;
pub use generated::*;
