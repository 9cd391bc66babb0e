//! What a client does with a response, decided without I/O: the blocking and async clients
//! read bodies their own way and hand the bytes here.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::response::Parts;

use crate::download::DownloadHead;
use crate::error::{ApiError, Error};
use crate::method::{DecodeContext, Method, MethodInfo, ResponseKind, check_response};
use crate::transport::{FailureKind, TransportError};

/// Most bytes of an error body read before it is decoded (error bodies are short; a larger one
/// is cut, which only shortens the message).
pub const ERROR_BODY_LIMIT: usize = 1 << 20;

/// Bytes of a streamed success body inspected before any is written, to catch errors that
/// REDCap sends with status 200 (HTML pages, error envelopes).
pub const SNIFF_LIMIT: usize = 64 * 1024;

/// Most bytes of a success answer that is one short value (a version, a count, a survey link, a
/// folder id, a new token): a longer body is not that answer, so no more of it is read.
pub const SMALL_ANSWER_LIMIT: usize = 1 << 20;

/// Most bytes reserved for a buffered body before they arrive: `Content-Length` is the server's
/// word, and believing a terabyte would abort the process. The buffer grows toward it as bytes come.
pub const PREALLOCATE_LIMIT: usize = 1 << 20;

/// The most bytes of a success body a buffered call of `info` reads: [`SMALL_ANSWER_LIMIT`] for
/// one-value answers, `max_buffered` for data.
pub fn answer_limit(info: &MethodInfo, max_buffered: usize) -> usize {
    match info.response {
        ResponseKind::Text
        | ResponseKind::One
        | ResponseKind::Count
        | ResponseKind::Empty
        | ResponseKind::NewToken
        | ResponseKind::Version
        | ResponseKind::FolderId => SMALL_ANSWER_LIMIT.min(max_buffered),
        ResponseKind::Data | ResponseKind::Bytes | ResponseKind::Import | ResponseKind::FileRepositoryList => {
            max_buffered
        }
    }
}

/// A buffered success body passed `limit`: the error its start shows (an HTML page sent with
/// status 200), else a "too large" failure.
pub fn too_large<R>(info: &MethodInfo, ctx: &DecodeContext, parts: &Parts, start: &[u8], limit: usize) -> Outcome<R> {
    let mut response = http::Response::new(Bytes::copy_from_slice(&start[..start.len().min(SNIFF_LIMIT)]));
    *response.status_mut() = parts.status;
    *response.headers_mut() = parts.headers.clone();
    if let Err(e) = check_response(info, ctx, &response) {
        return Outcome::from_api(e);
    }
    let one_value = answer_limit(info, usize::MAX) == SMALL_ANSWER_LIMIT;
    let message = if one_value {
        format!("the server sent more than {limit} bytes where REDCap sends one short value; it is not REDCap's answer")
    } else {
        format!("the response is larger than {limit} bytes; stream it to a file instead")
    };
    Outcome::Done(Err(Error::Transport(TransportError::new(FailureKind::TooLarge, message))))
}

/// The result of handling one response.
#[derive(Debug)]
// Exhaustive on purpose: a new case must fail every client's build, not fall into `_`.
pub enum Outcome<R> {
    /// Finished, well or badly.
    Done(Result<R, Error>),
    /// The body broke off: retry if the method allows.
    Interrupted(TransportError),
    /// A success status with an error page or server text: retry if the method allows.
    Disguised(ApiError),
}

impl<R> Outcome<R> {
    fn from_api(error: ApiError) -> Self {
        if error.status().is_success() { Outcome::Disguised(error) } else { Outcome::Done(Err(Error::Api(error))) }
    }
}

/// What a client does after an attempt: return, or wait and send again.
#[derive(Debug)]
// Exhaustive on purpose: a new case must fail every client's build, not fall into `_`.
pub enum Next<R> {
    /// The call is over.
    Return(Result<R, Error>),
    /// Send again after `wait`; `why` is for the log.
    Retry {
        /// How long to wait first.
        wait: std::time::Duration,
        /// What went wrong, for the warning.
        why: String,
    },
}

impl crate::policy::Attempts<'_> {
    /// After the transport failed to send or to get a response head.
    pub fn after_send_error<R>(&mut self, error: TransportError) -> Next<R> {
        let error = self.name_timeout(error);
        match self.after_failure(error.kind()) {
            Some(wait) => Next::Retry { wait, why: format!("transport failure: {error}") },
            None => Next::Return(Err(Error::Transport(error))),
        }
    }

    /// After a response's body was handled: retry an interrupted body or an error page sent
    /// with a success status, when the method may be repeated; otherwise return.
    pub fn after_outcome<R>(&mut self, outcome: Outcome<R>) -> Next<R> {
        match outcome {
            Outcome::Done(Err(Error::Transport(e))) => Next::Return(Err(Error::Transport(self.name_timeout(e)))),
            Outcome::Done(result) => Next::Return(result),
            Outcome::Interrupted(e) => {
                let e = self.name_timeout(e);
                match self.after_failure(e.kind()) {
                    Some(wait) => Next::Retry { wait, why: format!("response interrupted: {e}") },
                    None => Next::Return(Err(Error::Transport(e))),
                }
            }
            Outcome::Disguised(e) => match self.after_api_error(&e) {
                Some(wait) => Next::Retry { wait, why: format!("error page with a success status: {e}") },
                None => Next::Return(Err(Error::Api(e))),
            },
        }
    }
}

/// Handles a fully read response of `M`.
pub fn buffered<M: Method + ?Sized>(ctx: &DecodeContext, parts: Parts, body: Bytes) -> Outcome<M::Output> {
    let response = http::Response::from_parts(parts, body);
    if let Err(e) = check_response(M::INFO, ctx, &response) {
        return Outcome::from_api(e);
    }
    Outcome::Done(M::decode(ctx, response).map_err(Error::Decode))
}

/// What to do with the body of a response that would be streamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Exhaustive on purpose: a new case must fail every client's build, not fall into `_`.
pub enum StreamPlan {
    /// Read at most this many bytes and pass them to [`streamed_error`]: it is an error.
    ReadError(usize),
    /// Read up to this many bytes and pass them to [`sniff`] before writing anything.
    Sniff(usize),
}

/// Decides from the head whether a streamed body is an error or may be data.
pub fn stream_plan(info: &MethodInfo, parts: &Parts) -> StreamPlan {
    if !parts.status.is_success() {
        return StreamPlan::ReadError(ERROR_BODY_LIMIT);
    }
    if info.response == ResponseKind::Bytes {
        let head = DownloadHead::from_headers(&parts.headers);
        // A file download always has a name; an unnamed HTML page is an error page.
        if head.mime.as_deref() == Some("text/html") && head.server_name.is_none() {
            return StreamPlan::ReadError(ERROR_BODY_LIMIT);
        }
    }
    StreamPlan::Sniff(SNIFF_LIMIT)
}

/// The error carried by a response [`stream_plan`] sent to `ReadError`.
pub fn streamed_error<R>(info: &MethodInfo, ctx: &DecodeContext, parts: Parts, prefix: Bytes) -> Outcome<R> {
    let response = http::Response::from_parts(parts, prefix);
    match check_response(info, ctx, &response) {
        Err(e) => Outcome::from_api(e),
        Ok(()) => Outcome::Done(Err(Error::Api(ApiError::new(
            response.status(),
            "the server sent an HTML page instead of the file",
            crate::error::ApiErrorKind::HtmlPage,
        )))),
    }
}

/// Checks the first bytes of a streamed success body; `None` means write them and go on.
/// File bodies are never sniffed: a file may be anything, including HTML.
pub fn sniff<R>(info: &MethodInfo, ctx: &DecodeContext, parts: &Parts, prefix: &Bytes) -> Option<Outcome<R>> {
    if info.response == ResponseKind::Bytes {
        return None;
    }
    let mut response = http::Response::new(prefix.clone());
    *response.status_mut() = parts.status;
    *response.headers_mut() = parts.headers.clone();
    check_response(info, ctx, &response).err().map(Outcome::from_api)
}

/// Checks a finished body's length against `Content-Length`.
pub fn check_length(expected: Option<u64>, received: u64) -> Result<(), TransportError> {
    match expected {
        Some(n) if n != received => Err(TransportError::new(
            FailureKind::Interrupted,
            format!("the response ended after {received} of {n} bytes"),
        )),
        _ => Ok(()),
    }
}

/// `Content-Length` of a response head.
pub fn content_length(parts: &Parts) -> Option<u64> {
    parts.headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

pub use crate::staged::PARTIAL_PREFIX;

/// Where a download goes. No target lets a server-chosen name replace a file unless the caller
/// says so: a download never destroys a local file by surprise.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Into this directory, under the server's (sanitised) name, else `fallback`. Never
    /// replaces a file: a name that is taken gets ` (fallback)` before its extension (if that
    /// is taken too, the download fails with `AlreadyExists`), and a name starting with a dot
    /// (`.bashrc`) gets `_` for it. [`Target::DirWith`] makes either choice.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Name used when the server gives none that is usable; also the disambiguating tag.
        fallback: String,
    },
    /// Exactly this file, replacing a file there (the caller has decided it may).
    File(PathBuf),
    /// Exactly this file, which must not exist yet: otherwise the download fails with
    /// `AlreadyExists` and the file is left as it was.
    NewFile(PathBuf),
    /// [`Target::Dir`] with its choices made.
    DirWith {
        /// The directory.
        dir: PathBuf,
        /// Name used when the server gives none that is usable; also the disambiguating tag.
        fallback: String,
        /// A file of the server's name is replaced (instead of getting a disambiguated name).
        replace: bool,
        /// A server name starting with a dot is kept as it is.
        dot_files: bool,
    },
}

impl Target {
    /// The final path for a download with this head (checks which names are taken).
    pub fn final_path(&self, head: &DownloadHead) -> PathBuf {
        self.final_path_given(head, &|p| std::fs::symlink_metadata(p).is_ok())
    }

    /// The final path for a download with this head, `exists` telling which paths are taken.
    pub fn final_path_given(&self, head: &DownloadHead, exists: &dyn Fn(&Path) -> bool) -> PathBuf {
        let (dir, fallback, replace, dot_files) = match self {
            Target::Dir { dir, fallback } => (dir, fallback, false, false),
            Target::DirWith { dir, fallback, replace, dot_files } => (dir, fallback, *replace, *dot_files),
            Target::File(p) | Target::NewFile(p) => return p.clone(),
        };
        let mut name = head
            .safe_name()
            .unwrap_or_else(|| crate::download::sanitize_file_name(fallback).unwrap_or_else(|| "download".into()));
        if !dot_files && name.starts_with('.') {
            name.replace_range(..1, "_");
        }
        let path = dir.join(&name);
        if replace || !exists(&path) {
            return path;
        }
        let tag = crate::download::sanitize_file_name(fallback).unwrap_or_else(|| "download".into());
        dir.join(crate::download::disambiguate(&name, &tag))
    }

    /// Whether the download may replace a file at its final path (otherwise the final rename
    /// must fail rather than replace).
    pub fn replaces(&self) -> bool {
        match self {
            Target::File(_) => true,
            Target::DirWith { replace, .. } => *replace,
            Target::Dir { .. } | Target::NewFile(_) => false,
        }
    }

    /// The directory the temporary file must be created in (same file system, so the final
    /// rename is atomic).
    pub fn dir(&self) -> &Path {
        match self {
            Target::Dir { dir, .. } | Target::DirWith { dir, .. } => dir,
            Target::File(p) | Target::NewFile(p) => match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(status: u16, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    static FILE: MethodInfo = MethodInfo::new("t.export", "t", None, ResponseKind::Bytes, true);
    static DATA: MethodInfo = MethodInfo::new("t.records", "t", None, ResponseKind::Data, true);

    #[test]
    fn plans() {
        assert_eq!(stream_plan(&FILE, &parts(400, &[])), StreamPlan::ReadError(ERROR_BODY_LIMIT));
        assert_eq!(
            stream_plan(&FILE, &parts(200, &[("content-type", "text/html")])),
            StreamPlan::ReadError(ERROR_BODY_LIMIT)
        );
        assert_eq!(
            stream_plan(&FILE, &parts(200, &[("content-type", "text/html; name=\"page.html\"")])),
            StreamPlan::Sniff(SNIFF_LIMIT)
        );
        assert_eq!(stream_plan(&DATA, &parts(200, &[])), StreamPlan::Sniff(SNIFF_LIMIT));
    }

    #[test]
    fn sniffing_catches_disguised_errors_but_not_files() {
        let ctx = DecodeContext {
            format: None,
            return_format: None,
            return_content: None,
            csv_delimiter: None,
            background: false,
        };
        let html = Bytes::from_static(b"<html><title>Down</title></html>");
        assert!(matches!(sniff::<()>(&DATA, &ctx, &parts(200, &[]), &html), Some(Outcome::Disguised(_))));
        assert!(sniff::<()>(&FILE, &ctx, &parts(200, &[]), &html).is_none());
        assert!(sniff::<()>(&DATA, &ctx, &parts(200, &[]), &Bytes::from_static(b"[{\"a\":1}]")).is_none());
    }

    #[test]
    fn outcomes_decide_retries_by_idempotency() {
        let policy = crate::policy::RetryPolicy::default();
        let mut export = crate::policy::Attempts::new(&policy, &DATA);
        let cut = || TransportError::new(FailureKind::Interrupted, "cut");
        assert!(matches!(export.after_outcome::<()>(Outcome::Interrupted(cut())), Next::Retry { .. }));
        assert!(matches!(export.after_send_error::<()>(cut()), Next::Retry { .. }));
        static UPLOAD: MethodInfo = MethodInfo::new("t.import", "t", Some("import"), ResponseKind::Empty, false);
        let mut upload = crate::policy::Attempts::new(&policy, &UPLOAD);
        assert!(matches!(
            upload.after_outcome::<()>(Outcome::Interrupted(cut())),
            Next::Return(Err(Error::Transport(_)))
        ));
        let page = ApiError::new(http::StatusCode::OK, "down", crate::error::ApiErrorKind::HtmlPage);
        assert!(matches!(upload.after_outcome::<()>(Outcome::Disguised(page)), Next::Return(Err(Error::Api(_)))));
        assert!(matches!(upload.after_outcome(Outcome::Done(Ok(7))), Next::Return(Ok(7))));
    }

    #[test]
    fn lengths_and_targets() {
        assert!(check_length(Some(5), 5).is_ok());
        assert_eq!(check_length(Some(5), 3).unwrap_err().kind(), FailureKind::Interrupted);
        assert!(check_length(None, 3).is_ok());
        let head = DownloadHead { server_name: Some("../x.pdf".into()), ..Default::default() };
        let t = Target::Dir { dir: "out".into(), fallback: "doc_7".into() };
        assert_eq!(t.final_path(&head), PathBuf::from("out/_._x.pdf"), "made safe, and visible");
        assert_eq!(t.final_path(&DownloadHead::default()), PathBuf::from("out/doc_7"));
        assert_eq!(Target::File("a.pdf".into()).dir(), Path::new("."));
    }

    #[test]
    fn server_names_never_replace_or_hide_by_default() {
        let named = |n: &str| DownloadHead { server_name: Some(n.into()), ..Default::default() };
        let t = Target::Dir { dir: "home".into(), fallback: "doc_id 5".into() };
        let nothing = |_: &Path| false;
        let taken = |p: &Path| p == Path::new("home/report.pdf") || p == Path::new("home/_bashrc");
        assert_eq!(t.final_path_given(&named(".bashrc"), &nothing), PathBuf::from("home/_bashrc"));
        assert_eq!(t.final_path_given(&named(".bashrc"), &taken), PathBuf::from("home/_bashrc (doc_id 5)"));
        assert_eq!(t.final_path_given(&named("report.pdf"), &taken), PathBuf::from("home/report (doc_id 5).pdf"));
        assert!(!t.replaces() && !Target::NewFile("x".into()).replaces() && Target::File("x".into()).replaces());
        let asked = Target::DirWith { dir: "home".into(), fallback: "doc_id 5".into(), replace: true, dot_files: true };
        assert_eq!(asked.final_path_given(&named(".bashrc"), &|_| true), PathBuf::from("home/.bashrc"));
        assert!(asked.replaces());
    }
}
