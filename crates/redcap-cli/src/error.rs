//! Errors shown as one sentence plus a hint, and the exit code of each class of error.

use std::path::Path;

use redcap::core::{EncodeError, FailureKind};
use redcap::workflow::WorkflowError;
use redcap::{ApiErrorKind, MethodInfo, TimeoutKind};

/// The class of an error; each has its own exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// Anything else (1).
    Other,
    /// Wrong arguments or configuration (2, as clap's own usage errors).
    Usage,
    /// Malformed or rejected token (3).
    Auth,
    /// REDCap answered with an error (4).
    Api,
    /// REDCap could not be reached, or the URL is not its API (5).
    Network,
    /// A local file could not be read or written (6).
    Local,
    /// A batched import stopped part-way: earlier batches were saved (7).
    PartialImport,
    /// Standard output was closed by the reader (`redcap … | head`): stop quietly (0).
    ClosedOutput,
}

impl ExitKind {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::ClosedOutput => 0,
            ExitKind::Other => 1,
            ExitKind::Usage => 2,
            ExitKind::Auth => 3,
            ExitKind::Api => 4,
            ExitKind::Network => 5,
            ExitKind::Local => 6,
            ExitKind::PartialImport => 7,
        }
    }
}

/// The exit codes, for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  any other failure (e.g. an answer that could not be read)
  2  usage: wrong arguments or configuration (no URL, bad URL, unknown method or parameter)
  3  authentication: the token is malformed (nothing was sent) or REDCap rejected it
  4  REDCap answered with an error (a missing right, a bad value, an unknown report …)
  5  network: REDCap could not be reached, or the URL is not a REDCap API endpoint
  6  local file: a file could not be read or written
  7  a batched import stopped part-way: earlier batches were saved; the message names the
     saved, failed and unsent records and the batch to pass to --resume-from";

/// An error ready to show: one sentence, an optional hint, details (import errors), and its class.
#[derive(Debug)]
pub struct CliError {
    /// Its class.
    pub kind: ExitKind,
    /// One sentence.
    pub message: String,
    /// What to check or try.
    pub hint: Option<String>,
    /// Extra lines (REDCap's per-value import errors).
    pub details: Vec<String>,
}

impl CliError {
    /// An error of `kind`.
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        CliError { kind, message: message.into(), hint: None, details: Vec::new() }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(ExitKind::Usage, message)
    }

    /// A local file error (exit 6), or a quiet stop when stdout was closed.
    pub fn local(path: &Path, what: &str, e: &std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError::new(ExitKind::ClosedOutput, "the output was closed");
        }
        CliError::new(ExitKind::Local, format!("could not {what} {}: {e}", path.display()))
    }

    /// Writing `path` failed; a missing directory is named as such (the I/O error would name
    /// the temporary file beside the target instead).
    pub fn write_failed(path: &Path, e: &std::io::Error) -> Self {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if e.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() {
            return CliError::new(
                ExitKind::Local,
                format!("could not write {}: the directory {} does not exist", path.display(), dir.display()),
            );
        }
        CliError::local(path, "write", e)
    }

    /// Writing to standard output failed.
    pub fn stdout(e: &std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError::new(ExitKind::ClosedOutput, "the output was closed");
        }
        CliError::new(ExitKind::Local, format!("could not write to standard output: {e}"))
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The text for stderr: `error: …` and `hint: …` lines, with any secret in use redacted
    /// (a server or proxy may echo the token in its error text).
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", sentence(&self.message));
        for line in &self.details {
            out.push_str(&format!("  {line}\n"));
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("hint: {}\n", sentence(h)));
        }
        redact(&out)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Remembers a secret (the API token in use) so that no message shows it.
pub fn remember_secret(secret: &str) {
    if secret.len() >= 8 {
        SECRETS.lock().unwrap_or_else(|e| e.into_inner()).push(secret.to_owned());
    }
}

/// `text` with every remembered secret (matched without regard to case, as REDCap's tokens
/// are hexadecimal) replaced by `[redacted]`.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_owned();
    for secret in secrets.iter() {
        let lower = out.to_ascii_lowercase();
        let needle = secret.to_ascii_lowercase();
        if !lower.contains(&needle) {
            continue;
        }
        let mut redacted = String::with_capacity(out.len());
        let mut at = 0;
        while let Some(i) = lower[at..].find(&needle) {
            redacted.push_str(&out[at..at + i]);
            redacted.push_str("[redacted]");
            at += i + needle.len();
        }
        redacted.push_str(&out[at..]);
        out = redacted;
    }
    out
}

/// [`redact`], and also every run of 30 or more hexadecimal digits: what a token looks like,
/// for text that quotes the command line (a usage error), where a token typed in the wrong
/// place was never known as one.
pub fn redact_tokens(text: &str) -> String {
    const TOKEN_LIKE: usize = 30;
    let text = redact(text);
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        out.push_str(if run.len() >= TOKEN_LIKE { "[redacted]" } else { &run });
        run.clear();
        out.push(c);
    }
    out.push_str(if run.len() >= TOKEN_LIKE { "[redacted]" } else { &run });
    out
}

/// Ends `s` with a full stop unless it already ends a sentence.
fn sentence(s: &str) -> String {
    let t = s.trim_end();
    if t.ends_with(['.', '!', '?', ')', '`']) && !t.ends_with("...") { t.to_owned() } else { format!("{t}.") }
}

/// What an error message needs to know about the call: where it went, where the token came
/// from, and which methods it used (for the rights a refusal names).
#[derive(Clone, Copy, Debug)]
pub struct CallContext<'a> {
    /// The API URL.
    pub url: &'a str,
    /// Where the token came from (`REDCAP_API_TOKEN`, `profile "lab"` …).
    pub token_source: &'a str,
    /// The methods the command calls.
    pub methods: &'a [&'static MethodInfo],
    /// The output file, when the call streams into one.
    pub output: Option<&'a Path>,
    /// A raw `redcap call`: parameter errors point at the method's parameter list.
    pub raw_call: bool,
}

impl CallContext<'_> {
    fn rights(&self) -> Vec<&'static str> {
        let mut rights: Vec<&'static str> = Vec::new();
        for m in self.methods {
            for r in m.rights {
                if !rights.contains(r) {
                    rights.push(r);
                }
            }
        }
        rights
    }

    fn method_help(&self) -> Option<String> {
        match self.methods {
            [one] if self.raw_call => {
                Some(format!("see the method's parameters with `redcap methods show {}`", one.id))
            }
            _ => None,
        }
    }
}

/// A failed call as an error to show.
pub fn from_call(e: &redcap::Error, ctx: &CallContext<'_>) -> CliError {
    match e {
        redcap::Error::Encode(e) => from_encode(e, ctx),
        redcap::Error::Api(api) => {
            let status = api.status().as_u16();
            let msg = api.message().trim();
            if api.is_auth() {
                return CliError::new(ExitKind::Auth, format!("REDCap rejected the API token (HTTP {status}): {msg}"))
                    .hint(format!(
                        "check the token ({}): it must be a token of a project on {} with API rights; \
                         it changes when regenerated",
                        ctx.token_source, ctx.url
                    ));
            }
            let not_the_api = api.kind() == ApiErrorKind::HtmlPage
                && (api.status().is_success() || api.status().is_redirection() || matches!(status, 404 | 405));
            if not_the_api {
                return CliError::new(
                    ExitKind::Network,
                    format!("the server at {} answered with a web page (HTTP {status}), not the REDCap API", ctx.url),
                )
                .hint(
                    "check the URL: it is your REDCap address followed by /api/, e.g. https://redcap.example.edu/api/",
                );
            }
            let names_a_right = ["privilege", "permission", "rights"].iter().any(|w| msg.to_lowercase().contains(w));
            if api.is_permission() && names_a_right {
                let rights = ctx.rights();
                let hint = if rights.is_empty() {
                    "ask the project's administrator for the user rights this needs".to_owned()
                } else {
                    format!(
                        "this needs the user right{} {}: ask the project's administrator",
                        if rights.len() > 1 { "s" } else { "" },
                        rights.join(", ")
                    )
                };
                return CliError::new(ExitKind::Api, format!("REDCap refused the call (HTTP {status}): {msg}"))
                    .hint(hint);
            }
            let lines = api.import_lines();
            if !lines.is_empty() {
                let mut err = CliError::new(
                    ExitKind::Api,
                    format!("REDCap rejected {} value{} (HTTP {status})", lines.len(), plural(lines.len())),
                )
                .hint("fix these values and import again; nothing of the failing batch was saved");
                err.details = lines
                    .iter()
                    .take(20)
                    .map(|l| format!("record {}, field {}, value `{}`: {}", l.record, l.field, l.value, l.message))
                    .collect();
                if lines.len() > 20 {
                    err.details.push(format!("… and {} more", lines.len() - 20));
                }
                return err;
            }
            let err = CliError::new(ExitKind::Api, format!("REDCap answered with an error (HTTP {status}): {msg}"));
            match ctx.method_help() {
                Some(h) => err.hint(h),
                None => err,
            }
        }
        redcap::Error::Transport(t) if t.kind() == FailureKind::TooLarge => CliError::new(
            ExitKind::Other,
            format!("REDCap answered, but the answer is too large to hold in memory: {}", t.message()),
        )
        .hint(
            "ask for less at a time (e.g. `redcap records export --batch-size`), or stream the answer to a file \
             with `redcap call … -o FILE`",
        ),
        redcap::Error::Transport(t) => {
            let hint = match (t.kind(), t.timeout_kind()) {
                (FailureKind::Timeout, Some(TimeoutKind::Overall)) => {
                    "the call took longer than --timeout allows: raise it, or leave it out for no limit"
                }
                (FailureKind::Timeout, Some(TimeoutKind::Connect)) => {
                    "check the URL's host and port, and your network or VPN (--connect-timeout sets the wait)"
                }
                (FailureKind::Connect, _) => "check the URL's host and port, and your network or VPN",
                (FailureKind::Timeout, _) => "the server stopped answering: try again later, or check the network",
                (FailureKind::Tls, _) => {
                    "the server's certificate is not trusted: check the URL, or your organisation's certificates"
                }
                _ => "try again; if it persists, check the URL and the network",
            };
            CliError::new(ExitKind::Network, format!("could not reach REDCap at {}: {}", ctx.url, with_cause(t)))
                .hint(hint)
        }
        redcap::Error::Redirect(r) => CliError::new(ExitKind::Network, r.to_string())
            .hint("use the address the server redirects to as the API URL (ending in /api/)"),
        redcap::Error::Decode(d) => CliError::new(ExitKind::Other, format!("REDCap's answer could not be read: {d}"))
            .hint(format!("check that {} is a REDCap API endpoint", ctx.url)),
        redcap::Error::Local { path, source } if source.kind() == std::io::ErrorKind::AlreadyExists => {
            CliError::new(ExitKind::Local, format!("{} already exists; nothing was replaced", path.display()))
                .hint("pass --overwrite to replace it, or choose another path with -o")
        }
        redcap::Error::Local { path, source } => CliError::write_failed(path, source),
        redcap::Error::Output(source) => match ctx.output {
            Some(path) => CliError::write_failed(path, source),
            None => CliError::stdout(source),
        },
        other => CliError::new(ExitKind::Other, other.to_string()),
    }
}

fn from_encode(e: &EncodeError, ctx: &CallContext<'_>) -> CliError {
    match e {
        EncodeError::Token(t) => CliError::new(ExitKind::Auth, t.to_string())
            .hint(format!("check the token ({}); nothing was sent", ctx.token_source)),
        EncodeError::WrongToken { .. } => CliError::new(ExitKind::Auth, e.to_string())
            .hint(format!("use another token ({} was used); nothing was sent", ctx.token_source)),
        EncodeError::Url(u) => CliError::usage(u.to_string())
            .hint("the API URL is your REDCap address followed by /api/, e.g. https://redcap.example.edu/api/"),
        EncodeError::MissingParam { .. } | EncodeError::InvalidValue { .. } | EncodeError::UnknownParam { .. } => {
            let err = CliError::usage(format!("{e}; nothing was sent"));
            match ctx.method_help() {
                Some(h) => err.hint(h),
                None => err,
            }
        }
        other => CliError::new(ExitKind::Other, other.to_string()),
    }
}

/// A batched import that stopped: what was saved, what failed (REDCap's lines), what was not
/// sent, and how to go on. Exit 7 when something was saved, so a script can tell a partial
/// import from one that saved nothing.
fn from_import(f: &redcap::workflow::ImportFailure, ctx: &CallContext<'_>) -> CliError {
    use redcap::workflow::BatchSaved;
    let cause = from_workflow(&f.error, ctx);
    let n = |v: &[String]| format!("{} record{}", v.len(), plural(v.len()));
    let kind =
        if f.saved.is_empty() && f.failed_saved == BatchSaved::No { cause.kind } else { ExitKind::PartialImport };
    let mut err = CliError::new(kind, format!("batch {} of {} failed: {}", f.failed_batch, f.batches, cause.message));
    let mut details = cause.details.clone();
    details.push(if f.saved.is_empty() {
        "saved: nothing in this run".to_owned()
    } else {
        format!("saved: {} in batches {}–{}: {}", n(&f.saved), f.first, f.failed_batch - 1, preview(&f.saved))
    });
    details.push(match f.failed_saved {
        BatchSaved::No => {
            format!("failed, not saved: {} in batch {}: {}", n(&f.failed), f.failed_batch, preview(&f.failed))
        }
        BatchSaved::Unknown => format!(
            "failed, may have been saved (the answer was lost): {} in batch {}: {}",
            n(&f.failed),
            f.failed_batch,
            preview(&f.failed)
        ),
        BatchSaved::Counted(k) => {
            format!(
                "failed: REDCap reports {k} of {} in batch {} saved: {}",
                n(&f.failed),
                f.failed_batch,
                preview(&f.failed)
            )
        }
        _ => format!("failed: {} in batch {}: {}", n(&f.failed), f.failed_batch, preview(&f.failed)),
    });
    details.push(if f.unsent.is_empty() {
        "not sent: nothing".to_owned()
    } else {
        format!("not sent: {} in batches {}–{}: {}", n(&f.unsent), f.failed_batch + 1, f.batches, preview(&f.unsent))
    });
    err.details = details;
    let check = if f.failed_saved == BatchSaved::Unknown {
        "export the failing batch's records to see whether they arrived, then "
    } else {
        "fix the failing batch, then "
    };
    err.hint(format!(
        "{check}run the same import with --resume-from {} (same file, same --batch-size)",
        f.resume_from()
    ))
}

fn preview(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
    match ids.len().saturating_sub(shown.len()) {
        0 => shown.join(", "),
        more => format!("{} … and {more} more", shown.join(", ")),
    }
}

/// A failed workflow as an error to show.
pub fn from_workflow(e: &WorkflowError, ctx: &CallContext<'_>) -> CliError {
    match e {
        WorkflowError::Call(c) => from_call(c, ctx),
        WorkflowError::Import(f) => from_import(f, ctx),
        WorkflowError::Local { path, source } => CliError::local(path, "use", source),
        WorkflowError::MissingRecords { .. } | WorkflowError::ImportCount { .. } => {
            CliError::new(ExitKind::Api, e.to_string()).hint("run it again, perhaps with a smaller --batch-size")
        }
        WorkflowError::Unresolved(_) => {
            CliError::new(ExitKind::Api, e.to_string()).hint("list the folder with `redcap files ls` to find it")
        }
        WorkflowError::NoIdField => CliError::new(ExitKind::Api, e.to_string()),
        WorkflowError::NotADirectory { .. } => CliError::new(ExitKind::Local, e.to_string())
            .hint("give the directory to pull into (created if missing)"),
        WorkflowError::ResumePastEnd { .. } => CliError::usage(format!("{e}; nothing was sent")).hint(
            "resume with the same file and --batch-size as the import that stopped: they plan the same batches",
        ),
        WorkflowError::FolderLoop { .. } | WorkflowError::TooDeep { .. } => CliError::new(ExitKind::Api, e.to_string())
            .hint("nothing was downloaded; the server's File Repository listing is broken: report it to its administrator"),
        other => CliError::new(ExitKind::Other, other.to_string()),
    }
}

/// A transport error's message and, in parentheses, its innermost cause (the OS's or HTTP
/// stack's own words: "Connection refused", "dns error"), which the message does not repeat.
fn with_cause(t: &redcap::TransportError) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    let mut last = None;
    while let Some(c) = cause {
        last = Some(c);
        cause = c.source();
    }
    match last.map(|c| c.to_string()) {
        Some(text) if !text.is_empty() && !t.message().contains(&text) => format!("{} ({text})", t.message()),
        _ => t.message().to_owned(),
    }
}

/// `s` for a count other than one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redcap::core::TokenError;

    static LIST: [&MethodInfo; 1] = [&redcap::file_repository::list::INFO];

    fn ctx() -> CallContext<'static> {
        CallContext {
            url: "https://redcap.example.edu/api/",
            token_source: "REDCAP_API_TOKEN",
            methods: &LIST,
            output: None,
            raw_call: true,
        }
    }

    fn api(status: u16, message: &str, kind: ApiErrorKind) -> redcap::Error {
        redcap::Error::Api(redcap::ApiError::new(http_status(status), message, kind))
    }

    fn http_status(n: u16) -> redcap::core::__private::http::StatusCode {
        redcap::core::__private::http::StatusCode::from_u16(n).unwrap()
    }

    #[test]
    fn classes_and_hints() {
        let e = from_call(&redcap::Error::Encode(EncodeError::Token(TokenError::Length(5))), &ctx());
        assert_eq!(e.kind, ExitKind::Auth);
        assert!(e.hint.as_deref().unwrap().contains("REDCAP_API_TOKEN"));

        let e = from_call(&api(403, "You do not have permissions to use the API", ApiErrorKind::Envelope), &ctx());
        assert_eq!(e.kind, ExitKind::Auth);

        let e = from_call(&api(403, "You do not have File Repository privileges", ApiErrorKind::Envelope), &ctx());
        assert_eq!(e.kind, ExitKind::Api);
        assert!(e.hint.as_deref().unwrap().contains("File Repository"), "{e:?}");

        let e = from_call(&api(404, "<html>", ApiErrorKind::HtmlPage), &ctx());
        assert_eq!(e.kind, ExitKind::Network);
        assert!(e.hint.as_deref().unwrap().contains("/api/"));

        let e =
            from_call(&api(400, "The value you provided for folder_id is not valid", ApiErrorKind::Envelope), &ctx());
        assert_eq!(e.kind, ExitKind::Api);
        assert!(e.render().contains("folder_id is not valid"));

        // A 403 that names no right gets no rights hint.
        let e = from_call(&api(403, "report_id=7 does not belong to this project", ApiErrorKind::Envelope), &ctx());
        assert_eq!(e.kind, ExitKind::Api);
        assert!(!e.render().contains("user right"), "{}", e.render());
    }

    #[test]
    fn import_lines_become_details() {
        let msg = "\"1\",\"age\",\"abc\",\"The value is not an integer\"\n\"2\",\"age\",\"x\",\"The value is not an integer\"";
        let e = from_call(&api(400, msg, ApiErrorKind::Envelope), &ctx());
        assert_eq!(e.kind, ExitKind::Api);
        assert_eq!(e.details.len(), 2, "{e:?}");
        assert!(e.render().contains("record 1, field age, value `abc`"));
    }

    #[test]
    fn an_oversized_answer_is_not_a_network_failure() {
        let t = redcap::core::TransportError::new(FailureKind::TooLarge, "the response is larger than 100 bytes");
        let e = from_call(&redcap::Error::Transport(t), &ctx());
        assert_eq!(e.kind, ExitKind::Other);
        assert!(!e.render().contains("could not reach") && !e.render().contains("try again"), "{}", e.render());
        assert!(e.render().contains("too large"), "{}", e.render());
    }

    #[test]
    fn secrets_never_reach_the_rendered_text() {
        remember_secret("ABCDEF0123456789ABCDEF0123456789");
        let e = CliError::new(ExitKind::Api, "REDCap said: invalid token abcdef0123456789ABCDEF0123456789!")
            .hint("token ABCDEF0123456789ABCDEF0123456789");
        let text = e.render();
        assert!(!text.to_lowercase().contains("abcdef0123456789abcdef0123456789"), "{text}");
        assert_eq!(text.matches("[redacted]").count(), 2, "{text}");
    }

    #[test]
    fn token_shaped_text_is_redacted_in_usage_errors() {
        let t = "0123456789ABCDEF0123456789abcdef";
        let text = redact_tokens(&format!("error: unexpected argument '{t}' found; '{}'", &t[..29]));
        assert_eq!(text, format!("error: unexpected argument '[redacted]' found; '{}'", &t[..29]));
    }

    #[test]
    fn rendering_is_one_sentence_and_a_hint() {
        let e = CliError::usage("no API URL").hint("pass --url");
        assert_eq!(e.render(), "error: no API URL.\nhint: pass --url.\n");
        assert_eq!(ExitKind::Usage.code(), 2);
    }
}
