//! Layered errors: nothing sent ([`EncodeError`]), REDCap said no ([`ApiError`]), the body was not
//! what the method returns ([`DecodeError`]), and the client-level [`Error`] that adds transport
//! failures. None of them can contain the token: it is never passed to them.

use std::fmt;

use http::StatusCode;

use crate::param::ParamInfo;
use crate::token::{TokenError, TokenKind};
use crate::url::UrlError;

/// The request could not be built; nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A required parameter has no value.
    #[error("the required parameter `{param}` is missing")]
    MissingParam {
        /// Wire name.
        param: &'static str,
    },
    /// A value REDCap would refuse or misread.
    #[error("parameter `{param}`: `{value}` is not accepted ({reason})")]
    InvalidValue {
        /// Wire name.
        param: &'static str,
        /// What was given.
        value: String,
        /// Why not.
        reason: String,
    },
    /// A parameter name the method does not have (dynamic calls).
    #[error("method `{method}` has no parameter `{param}`")]
    UnknownParam {
        /// Method id.
        method: &'static str,
        /// What was given.
        param: String,
    },
    /// The method needs another kind of token.
    #[error("method `{method}` needs a {needed}, but a {given} was given")]
    WrongToken {
        /// Method id.
        method: &'static str,
        /// What the method needs.
        needed: &'static str,
        /// What was given.
        given: TokenKind,
    },
    /// A file part in a body that must be urlencoded (internal misuse).
    #[error("a file upload needs a multipart body")]
    FileNeedsMultipart,
    /// The token is malformed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The URL is unusable.
    #[error(transparent)]
    Url(#[from] UrlError),
}

impl EncodeError {
    pub(crate) fn type_mismatch(info: &ParamInfo, expected: &str) -> Self {
        EncodeError::InvalidValue { param: info.name, value: String::new(), reason: format!("expected {expected}") }
    }
}

/// How an error answer was recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiErrorKind {
    /// REDCap's error envelope (JSON `{"error":…}`, CSV `ERROR: …`, XML `<hash><error>`).
    Envelope,
    /// An HTML page (web server error, login page, REDCap crash page) where data was expected.
    HtmlPage,
    /// A plain-text answer that is not data (e.g. a database-connection failure message).
    Text,
}

/// One line of an Import Records validation error: `"record","field","value","message"`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImportErrorLine {
    /// Record name.
    pub record: String,
    /// Field name.
    pub field: String,
    /// Offending value.
    pub value: String,
    /// REDCap's explanation.
    pub message: String,
}

/// REDCap answered, and the answer is an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    lines: Vec<ImportErrorLine>,
    kind: ApiErrorKind,
}

impl ApiError {
    /// An error with the given status and message.
    pub fn new(status: StatusCode, message: impl Into<String>, kind: ApiErrorKind) -> Self {
        let message = message.into();
        let lines = crate::envelope::parse_import_lines(&message);
        ApiError { status, message, lines, kind }
    }

    /// HTTP status (200 for errors REDCap sends with a success status).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// REDCap's message, as sent.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Import validation problems, when the message consists of them.
    pub fn import_lines(&self) -> &[ImportErrorLine] {
        &self.lines
    }

    /// How the error was recognised.
    pub fn kind(&self) -> ApiErrorKind {
        self.kind
    }

    /// The token was refused (401/403 with REDCap's "permissions to use the API" message, or 401).
    pub fn is_auth(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED
            || (self.status == StatusCode::FORBIDDEN
                && self.message.contains("You do not have permissions to use the API"))
    }

    /// The token is valid but its user lacks a right: REDCap names it "… privileges" (403s such
    /// as "You do not have API Import/Update privileges", and 400s such as "Insufficient user
    /// privileges"). Other 403s (a report of another project) are not about rights.
    pub fn is_permission(&self) -> bool {
        !self.is_auth() && self.message.to_ascii_lowercase().contains("privileges")
    }

    /// A server-side failure that may pass (5xx, or an HTML/text page where data was expected).
    pub fn is_transient(&self) -> bool {
        self.status.is_server_error()
            || self.status == StatusCode::REQUEST_TIMEOUT
            || self.status == StatusCode::TOO_MANY_REQUESTS
            || (self.status.is_success() && self.kind != ApiErrorKind::Envelope)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ApiErrorKind::Envelope => "REDCap answered",
            ApiErrorKind::HtmlPage => "the server answered with an HTML page instead of API output",
            ApiErrorKind::Text => "the server answered with a message instead of API output",
        };
        write!(f, "{what} (HTTP {}): {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// A success answer whose body is not what the method returns.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body does not parse as the expected format.
    #[error("the response is not valid {format}: {reason}")]
    Syntax {
        /// json, csv, xml.
        format: &'static str,
        /// Parser message.
        reason: String,
    },
    /// The body parses, but not into the expected shape.
    #[error("unexpected response: expected {expected}, got `{excerpt}`")]
    Unexpected {
        /// What the method returns.
        expected: &'static str,
        /// The start of the body.
        excerpt: String,
    },
    /// The format cannot be decoded into rows (ODM; use the raw bytes).
    #[error("{0} responses cannot be decoded into rows; read the raw body instead")]
    NotRows(&'static str),
}

impl DecodeError {
    pub(crate) fn unexpected(expected: &'static str, body: &[u8]) -> Self {
        DecodeError::Unexpected { expected, excerpt: excerpt(body) }
    }
}

/// At most 200 characters of a body, for messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// What went wrong with a response (REDCap error or undecodable body).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// REDCap said no.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The body is not what the method returns.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Any failure of a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request could not be built; nothing was sent.
    #[error("invalid request: {0}")]
    Encode(#[source] EncodeError),
    /// The transport failed; the request may or may not have reached REDCap.
    #[error("could not reach REDCap: {0}")]
    Transport(#[source] crate::transport::TransportError),
    /// The server redirected the call somewhere it must not follow.
    #[error("{0}")]
    Redirect(#[source] crate::policy::RedirectError),
    /// REDCap answered with an error.
    #[error("{0}")]
    Api(#[source] ApiError),
    /// REDCap answered, but the body did not decode.
    #[error("could not read REDCap's answer: {0}")]
    Decode(#[source] DecodeError),
    /// A local file could not be read or written (nothing was left at the final path).
    #[error("local file {path}: {source}")]
    Local {
        /// The file.
        path: std::path::PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status, when REDCap answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api(e) => Some(e.status()),
            _ => None,
        }
    }

    /// The REDCap error, if REDCap answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Error::Encode(e)
    }
}

impl From<crate::transport::TransportError> for Error {
    fn from(e: crate::transport::TransportError) -> Self {
        Error::Transport(e)
    }
}

impl From<ResponseError> for Error {
    fn from(e: ResponseError) -> Self {
        match e {
            ResponseError::Api(e) => Error::Api(e),
            ResponseError::Decode(e) => Error::Decode(e),
        }
    }
}
