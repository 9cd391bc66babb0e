//! Layered errors: nothing sent ([`EncodeError`]), REDCap said no ([`ApiError`]), the body was not
//! what the method returns ([`DecodeError`]), and the client-level [`Error`] that adds transport
//! failures. None of them can contain the token: it is never passed to them, and what a server
//! echoes of it (an error body, a page title, a `Location`) is redacted by the client before the
//! error is returned ([`Error::redact`]).

use std::fmt;

use crate::redact::redact_in;

use http::StatusCode;

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
    /// Typed rows could not be written as `data` in the request's format.
    #[error("row {index} cannot be sent as {format}: {reason}")]
    Rows {
        /// Index of the row, counting from 0.
        index: usize,
        /// json, csv or xml.
        format: &'static str,
        /// Why not.
        reason: String,
    },
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
        let lines = parse_import_lines(&message);
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

/// Splits an Import Records validation message into `"record","field","value","message"` lines.
/// Empty unless every non-blank line is such a tuple.
pub fn parse_import_lines(message: &str) -> Vec<ImportErrorLine> {
    let mut out = Vec::new();
    for line in message.lines().filter(|l| !l.trim().is_empty()) {
        let line = line.trim();
        if !line.starts_with('"') {
            return Vec::new();
        }
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
        let Some(Ok(rec)) = reader.records().next() else {
            return Vec::new();
        };
        if rec.len() != 4 {
            return Vec::new();
        }
        out.push(ImportErrorLine {
            record: rec[0].to_owned(),
            field: rec[1].to_owned(),
            value: rec[2].to_owned(),
            message: rec[3].to_owned(),
        });
    }
    out
}

/// Why a redirect was not followed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectError {
    /// To another scheme, host or port: the token must not go there.
    #[error(
        "REDCap's API URL moved from {from} to {to}; not following a redirect to another server or from https to http (it would send the token there). Update the API URL if the new address is right."
    )]
    OtherServer {
        /// The URL called.
        from: String,
        /// Where the server pointed.
        to: String,
    },
    /// A 303, or a redirect without a usable Location.
    #[error("the server answered HTTP {status} with {what}; a REDCap API call cannot follow it")]
    Unusable {
        /// The status.
        status: u16,
        /// What was wrong.
        what: String,
    },
    /// Too many redirects.
    #[error("too many redirects (more than {0})")]
    TooMany(u32),
}

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
    /// One row's value does not fit the type it is read into.
    #[error(
        "{format} row {index}{}: {reason} (REDCap sends most values as text: the lenient deserializers of `redcap::de` accept both)",
        column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default()
    )]
    Row {
        /// json, csv or xml.
        format: &'static str,
        /// Index of the row, counting from 0.
        index: usize,
        /// The column, when known.
        column: Option<String>,
        /// What did not fit.
        reason: String,
    },
}

impl DecodeError {
    pub(crate) fn unexpected(expected: &'static str, body: &[u8]) -> Self {
        DecodeError::Unexpected { expected, excerpt: excerpt(body) }
    }
}

/// At most 200 characters of a body, for messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    // 200 characters are at most 800 bytes: only the start is decoded, however long the body.
    let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
    let body = &body[start..body.len().min(start + 4096)];
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

/// What kind of failure an [`Error`] is: what the caller (or the user) has to fix. Finer
/// detail stays in the variants ([`Error::api`], [`Error::status`], the transport's
/// [`FailureKind`](crate::transport::FailureKind)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The token is malformed or of the wrong kind (nothing was sent), or REDCap rejected it.
    Auth,
    /// The token is valid, but its user lacks a right ("… privileges").
    Permission,
    /// REDCap refused a value or a parameter (import validation, an invalid field or event).
    Validation,
    /// What was asked for does not exist (a record, file, folder or report; a 404 page).
    NotFound,
    /// REDCap could not be reached, or the connection broke (DNS, refused, reset, TLS, a
    /// redirect that is not followed).
    Network,
    /// A timeout elapsed (connect, stall or overall).
    Timeout,
    /// The server failed (5xx, or an error page or text where data was expected).
    Server,
    /// The request could not be built or sent as built; nothing reached REDCap.
    Request,
    /// REDCap answered, but the answer is not what the method returns.
    Decode,
    /// A local file, or the caller's output, could not be read or written.
    Local,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Auth => "authentication",
            ErrorKind::Permission => "permission",
            ErrorKind::Validation => "validation",
            ErrorKind::NotFound => "not found",
            ErrorKind::Network => "network",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Server => "server",
            ErrorKind::Request => "request",
            ErrorKind::Decode => "decode",
            ErrorKind::Local => "local",
        })
    }
}

impl ApiError {
    /// What kind of failure this answer is (see [`ErrorKind`]).
    pub fn error_kind(&self) -> ErrorKind {
        if self.is_auth() {
            return ErrorKind::Auth;
        }
        if self.is_permission() {
            return ErrorKind::Permission;
        }
        if self.status == StatusCode::NOT_FOUND || self.names_a_missing_thing() {
            return ErrorKind::NotFound;
        }
        if self.is_transient() || self.status.is_server_error() {
            return ErrorKind::Server;
        }
        ErrorKind::Validation
    }

    /// REDCap's words for "no such record / field / folder / report" (it answers 400 for them).
    fn names_a_missing_thing(&self) -> bool {
        if self.kind != ApiErrorKind::Envelope {
            return false;
        }
        let m = self.message.to_ascii_lowercase();
        ["does not exist", "do not exist", "not found", "no longer exists"].iter().any(|w| m.contains(w))
    }
}

/// The `is_*` shortcuts over `kind()`, written once for every error type that has a
/// `kind() -> ErrorKind` (the call error here, the workflow error in `redcap`).
#[doc(hidden)]
#[macro_export]
macro_rules! kind_shortcuts {
    () => {
        /// The token is malformed or was rejected.
        pub fn is_auth(&self) -> bool {
            self.kind() == $crate::ErrorKind::Auth
        }

        /// The token's user lacks a right.
        pub fn is_permission(&self) -> bool {
            self.kind() == $crate::ErrorKind::Permission
        }

        /// REDCap refused a value or parameter.
        pub fn is_validation(&self) -> bool {
            self.kind() == $crate::ErrorKind::Validation
        }

        /// What was asked for does not exist.
        pub fn is_not_found(&self) -> bool {
            self.kind() == $crate::ErrorKind::NotFound
        }

        /// REDCap could not be reached or the connection broke (timeouts are `is_timeout`).
        pub fn is_network(&self) -> bool {
            self.kind() == $crate::ErrorKind::Network
        }

        /// A timeout elapsed.
        pub fn is_timeout(&self) -> bool {
            self.kind() == $crate::ErrorKind::Timeout
        }

        /// The server failed (or, for a workflow, its answers contradict each other).
        pub fn is_server(&self) -> bool {
            self.kind() == $crate::ErrorKind::Server
        }

        /// A local file or the output failed.
        pub fn is_local(&self) -> bool {
            self.kind() == $crate::ErrorKind::Local
        }
    };
}

/// Any failure of a call. Each variant's message says what failed without repeating its
/// cause; the cause is its [`source`](std::error::Error::source), so error reporters that walk
/// the chain (anyhow, eyre) print every text once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request could not be built; nothing was sent.
    #[error(transparent)]
    Encode(EncodeError),
    /// The transport failed; the request may or may not have reached REDCap.
    #[error(transparent)]
    Transport(crate::transport::TransportError),
    /// The server redirected the call somewhere it must not follow.
    #[error(transparent)]
    Redirect(RedirectError),
    /// REDCap answered with an error.
    #[error(transparent)]
    Api(ApiError),
    /// REDCap answered, but the body did not decode.
    #[error(transparent)]
    Decode(DecodeError),
    /// A local file could not be read or written (nothing was left at the final path).
    #[error("local file {}", path.display())]
    Local {
        /// The file.
        path: std::path::PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// The caller's output (the writer given to a `stream` call) failed.
    #[error("writing the output failed")]
    Output(#[source] std::io::Error),
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

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use crate::transport::FailureKind as F;
        match self {
            Error::Encode(EncodeError::Token(_) | EncodeError::WrongToken { .. }) => ErrorKind::Auth,
            Error::Encode(_) => ErrorKind::Request,
            Error::Transport(t) => match t.kind() {
                F::Timeout => ErrorKind::Timeout,
                F::Request => ErrorKind::Request,
                F::TooLarge => ErrorKind::Decode,
                F::Connect | F::Interrupted | F::Tls | F::Other => ErrorKind::Network,
            },
            Error::Redirect(_) => ErrorKind::Network,
            Error::Api(e) => e.error_kind(),
            Error::Decode(_) => ErrorKind::Decode,
            Error::Local { .. } | Error::Output(_) => ErrorKind::Local,
        }
    }

    crate::kind_shortcuts!();

    /// Whether the request may have reached REDCap although the call failed (see
    /// [`TransportError::maybe_delivered`](crate::TransportError::maybe_delivered)); false
    /// for every other error, which either sent nothing or got REDCap's answer.
    pub fn maybe_delivered(&self) -> bool {
        match self {
            Error::Transport(t) => t.maybe_delivered(),
            Error::Encode(_)
            | Error::Redirect(_)
            | Error::Api(_)
            | Error::Decode(_)
            | Error::Local { .. }
            | Error::Output(_) => false,
        }
    }

    /// Whether the same call may succeed later (a transient network failure, a timeout, a
    /// 5xx, 408 or 429, an error page sent with a success status). Idempotent calls were
    /// already retried by the client before this error was returned.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(t) => t.kind().is_transient(),
            Error::Api(e) => e.is_transient(),
            Error::Encode(_) | Error::Redirect(_) | Error::Decode(_) | Error::Local { .. } | Error::Output(_) => false,
        }
    }
}

impl ApiError {
    fn redact(mut self, secret: &str) -> Self {
        redact_in(&mut self.message, secret);
        for line in &mut self.lines {
            for text in [&mut line.record, &mut line.field, &mut line.value, &mut line.message] {
                redact_in(text, secret);
            }
        }
        self
    }
}

impl DecodeError {
    fn redact(mut self, secret: &str) -> Self {
        match &mut self {
            DecodeError::Syntax { reason, .. } => redact_in(reason, secret),
            DecodeError::Unexpected { excerpt, .. } => redact_in(excerpt, secret),
            DecodeError::Row { column, reason, .. } => {
                redact_in(reason, secret);
                if let Some(c) = column {
                    redact_in(c, secret);
                }
            }
            DecodeError::NotRows(_) => {}
        }
        self
    }
}

impl RedirectError {
    fn redact(mut self, secret: &str) -> Self {
        match &mut self {
            RedirectError::OtherServer { from, to } => {
                redact_in(from, secret);
                redact_in(to, secret);
            }
            RedirectError::Unusable { what, .. } => redact_in(what, secret),
            RedirectError::TooMany(_) => {}
        }
        self
    }
}

impl Error {
    /// The error with every text a server may have written (an error body, a page title, a
    /// `Location`, a file name) cleared of `secret`, which it may have echoed. Both clients
    /// apply it with the call's token before they return an error.
    pub fn redact(self, secret: &str) -> Self {
        match self {
            Error::Api(e) => Error::Api(e.redact(secret)),
            Error::Decode(e) => Error::Decode(e.redact(secret)),
            Error::Redirect(e) => Error::Redirect(e.redact(secret)),
            Error::Transport(e) => Error::Transport(e.redact(secret)),
            Error::Local { path, source } => {
                let path = match crate::redact::redacted(&path.to_string_lossy(), secret) {
                    Some(p) => p.into(),
                    None => path,
                };
                Error::Local { path, source }
            }
            // Built from the caller's input and the caller's writer: nothing the server wrote.
            e @ (Error::Encode(_) | Error::Output(_)) => e,
        }
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::redacted;

    const T: &str = "0123456789ABCDEF0123456789ABCDEF";

    #[test]
    fn echoes_are_redacted_in_any_case_and_only_echoes() {
        let text = format!("é {T} and {} then {T}", T.to_lowercase());
        assert_eq!(redacted(&text, T).unwrap(), "é [redacted] and [redacted] then [redacted]");
        assert_eq!(redacted("nothing here", T), None);
        assert_eq!(redacted("", T), None);
        let e = Error::Api(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("\"1\",\"f\",\"{T}\",\"bad\""),
            ApiErrorKind::Envelope,
        ));
        let e = e.redact(T);
        assert!(!format!("{e} {e:?}").contains(T), "{e:?}");
        assert_eq!(e.api().unwrap().import_lines()[0].value, "[redacted]");
        let e = Error::Redirect(RedirectError::OtherServer {
            from: "https://a/api/".into(),
            to: format!("https://b/?t={T}"),
        });
        assert_eq!(e.redact(T).to_string().matches("[redacted]").count(), 1);
    }
}
