//! Sans-IO core of the REDCap API toolkit.
//!
//! Everything a REDCap client needs except the network: validated [`Token`] and [`ApiUrl`],
//! the [`Method`] trait that generated request types implement, form and multipart encoding,
//! REDCap's error envelopes, and decoding of every response kind. Transports (blocking, async,
//! or your own) send a [`PreparedRequest`] and hand the response back to [`handle_response`].
#![warn(missing_docs)]

pub mod calendar;
mod client;
pub mod de;
pub mod decode;
pub mod download;
pub mod driver;
pub mod envelope;
mod error;
pub mod exchange;
pub mod form;
mod method;
pub mod model;
pub mod param;
pub mod policy;
mod redact;
pub mod rows;
pub mod send;
pub mod ser;
pub mod staged;
pub mod timeout;
mod token;
pub mod transport;
pub mod types;
pub mod upload;
mod url;

pub use bytes::Bytes;
pub use calendar::{CalendarError, Date, DateTime};
pub use client::{
    Build, ClientBuilder, ClientSettings, DEFAULT_CONCURRENCY, DEFAULT_MAX_BUFFERED, Downloaded, Streamed,
};
pub use decode::{DataResponse, Row};
pub use download::{DownloadHead, disambiguate, sanitize_file_name};
pub use error::{
    ApiError, ApiErrorKind, DecodeError, EncodeError, Error, ErrorKind, ImportErrorLine, RedirectError, ResponseError,
};
pub use form::{Form, FormField, Multipart};
pub use method::{
    Body, DecodeContext, DynamicCall, Method, MethodInfo, PreparedRequest, ResponseKind, check_response,
    handle_response, prepare, prepare_with_boundary, random_boundary,
};
pub use model::{AutoId, FileDownload, FileRepositoryEntry, Folder, ImportOutcome, RepositoryFile, Version};
pub use param::{BoolWire, ParamInfo, ParamValue, Shape, ToParam, ValueType};
pub use policy::{AfterStatus, Attempts, Pacer, RetryPolicy};
pub use rows::{Rows, Single};
pub use send::Transport;
pub use timeout::StallGuard;
pub use token::{Token, TokenError, TokenKind, TokenRequirement};
pub use transport::{FailureKind, STALL_FLOOR, TimeoutKind, TransportConfig, TransportError};
pub use types::{
    CsvDelimiter, DateFormat, DecimalCharacter, Format, LogType, OverwriteBehavior, RawOrLabel, RecordType,
    ReturnContent, ReturnFormat, WireEnum,
};
pub use upload::{ReaderSource, Upload, UploadSource};
pub use url::{ApiUrl, UrlError};

#[doc(hidden)]
pub mod __private {
    //! Re-exports for generated code.
    pub use http;
    pub use serde;
    pub use serde_json;
}
