//! The sans-IO method trait, request preparation and response handling shared by every client.

use std::fmt;

use bytes::Bytes;
use http::StatusCode;

use crate::error::{EncodeError, ResponseError};
use crate::form::{Form, Multipart};
use crate::param::{ParamInfo, ParamValue, Shape, ValueType};
use crate::token::{Token, TokenRequirement};
use crate::types::{CsvDelimiter, Format, ReturnContent, ReturnFormat, WireEnum};
use crate::url::ApiUrl;

/// What a successful call returns, as the spec states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseKind {
    /// Structured data in the requested format.
    Data,
    /// Raw file bytes with name and type in the headers.
    Bytes,
    /// A bare string (survey link, next record name).
    Text,
    /// `1` on success (rename record, switch DAG); anything else is an error.
    One,
    /// A bare number (import and delete counts).
    Count,
    /// Nothing.
    Empty,
    /// Import Records' count / ids / auto_ids / nothing / background flag.
    Import,
    /// The token of a newly created project.
    NewToken,
    /// `MAJOR.MINOR.PATCH`.
    Version,
    /// `[{"folder_id": N}]`.
    FolderId,
    /// File Repository entries.
    FileRepositoryList,
}

/// Static facts about one REDCap API method, generated from `spec/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodInfo {
    /// `<area>.<name>`, e.g. `file_repository.export`.
    pub id: &'static str,
    /// The `content` field.
    pub content: &'static str,
    /// The `action` field, where the method sends one.
    pub action: Option<&'static str>,
    /// One-line summary.
    pub summary: &'static str,
    /// Which token the method takes.
    pub token: TokenRequirement,
    /// Whether repeating the call is harmless; only such calls are retried.
    pub idempotent: bool,
    /// Whether the success body must be streamed rather than buffered.
    pub streaming: bool,
    /// What a success returns.
    pub response: ResponseKind,
    /// Parameters in spec order (besides token, content and action).
    pub params: &'static [ParamInfo],
    /// Fields always sent with a fixed value (e.g. an External Module's `prefix`).
    pub fixed: &'static [(&'static str, &'static str)],
    /// Rights the documentation names.
    pub rights: &'static [&'static str],
    /// The REDCap version that introduced the method, where known.
    pub since: Option<&'static str>,
}

impl MethodInfo {
    /// A method with no parameters, rights or version; fill in with the builders below.
    pub const fn new(
        id: &'static str,
        content: &'static str,
        action: Option<&'static str>,
        response: ResponseKind,
        idempotent: bool,
    ) -> Self {
        MethodInfo {
            id,
            content,
            action,
            summary: "",
            token: TokenRequirement::Project,
            idempotent,
            streaming: false,
            response,
            params: &[],
            fixed: &[],
            rights: &[],
            since: None,
        }
    }

    /// Sets the summary.
    pub const fn summary(mut self, summary: &'static str) -> Self {
        self.summary = summary;
        self
    }

    /// Sets the token requirement.
    pub const fn token(mut self, token: TokenRequirement) -> Self {
        self.token = token;
        self
    }

    /// Marks the response as streamed.
    pub const fn streaming(mut self) -> Self {
        self.streaming = true;
        self
    }

    /// Sets the parameters.
    pub const fn params(mut self, params: &'static [ParamInfo]) -> Self {
        self.params = params;
        self
    }

    /// Sets the fixed fields.
    pub const fn fixed(mut self, fixed: &'static [(&'static str, &'static str)]) -> Self {
        self.fixed = fixed;
        self
    }

    /// Sets the documented rights.
    pub const fn rights(mut self, rights: &'static [&'static str]) -> Self {
        self.rights = rights;
        self
    }

    /// Sets the version that introduced the method.
    pub const fn since(mut self, version: &'static str) -> Self {
        self.since = Some(version);
        self
    }

    /// Whether the body is multipart (the method uploads a file).
    pub fn is_multipart(&self) -> bool {
        self.params.iter().any(|p| p.ty == ValueType::File)
    }

    /// A parameter by wire name.
    pub fn param(&self, name: &str) -> Option<&'static ParamInfo> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// Facts about the request that decoding needs (all read back from the encoded form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeContext {
    /// The `format` sent, if any.
    pub format: Option<Format>,
    /// The `returnFormat` sent, if any.
    pub return_format: Option<ReturnFormat>,
    /// The `returnContent` sent, if any.
    pub return_content: Option<ReturnContent>,
    /// The `csvDelimiter` sent, if any.
    pub csv_delimiter: Option<CsvDelimiter>,
    /// Whether `backgroundProcess` was sent as true.
    pub background: bool,
}

impl DecodeContext {
    fn from_form(form: &Form) -> Self {
        fn get<E: WireEnum>(form: &Form, name: &str) -> Option<E> {
            form.get(name).and_then(E::from_wire)
        }
        DecodeContext {
            format: get(form, "format"),
            return_format: get(form, "returnFormat"),
            return_content: get(form, "returnContent"),
            csv_delimiter: get(form, "csvDelimiter"),
            background: matches!(form.get("backgroundProcess"), Some("true" | "1")),
        }
    }

    /// The format of error bodies: `returnFormat`, else `format`, else xml (REDCap's rule).
    pub fn error_format(&self) -> ReturnFormat {
        self.return_format.or(self.format.map(ReturnFormat::from)).unwrap_or(ReturnFormat::Xml)
    }

    /// The format of data in the response (`format`, REDCap's default xml).
    pub fn data_format(&self) -> Format {
        self.format.unwrap_or(Format::Xml)
    }
}

/// A REDCap API method: encodes its parameters and decodes its success body, without I/O.
pub trait Method {
    /// Static facts (content, action, parameters …).
    const INFO: &'static MethodInfo;
    /// What a successful call yields.
    type Output: Send;
    /// Writes the method's parameters (token, content, action and fixed fields are written by
    /// [`prepare`]).
    fn encode(&self, form: &mut Form) -> Result<(), EncodeError>;
    /// Decodes a success body (already checked for REDCap errors).
    fn decode(ctx: &DecodeContext, response: http::Response<Bytes>) -> Result<Self::Output, crate::error::DecodeError>;
}

/// The body of a prepared request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// `application/x-www-form-urlencoded`.
    Form(Bytes),
    /// `multipart/form-data`, file streamed by the transport.
    Multipart(Multipart),
}

/// A request ready for a transport: URL, body, and what decoding will need.
#[derive(Clone, PartialEq, Eq)]
pub struct PreparedRequest {
    info: &'static MethodInfo,
    url: ApiUrl,
    form: Form,
    body: Body,
    ctx: DecodeContext,
    timeout: Option<std::time::Duration>,
}

impl fmt::Debug for PreparedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body holds the token: show the (redacting) form instead.
        f.debug_struct("PreparedRequest")
            .field("method", &self.info.id)
            .field("url", &self.url)
            .field("form", &self.form)
            .finish()
    }
}

impl PreparedRequest {
    /// The method's static facts.
    pub fn info(&self) -> &'static MethodInfo {
        self.info
    }

    /// Where to POST.
    pub fn url(&self) -> &ApiUrl {
        &self.url
    }

    /// The encoded body (contains the token: never log it).
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The form fields (contains the token: use `Debug`, which redacts it).
    pub fn form(&self) -> &Form {
        &self.form
    }

    /// What decoding needs.
    pub fn context(&self) -> &DecodeContext {
        &self.ctx
    }

    /// The `Content-Type` of the body.
    pub fn content_type(&self) -> String {
        match &self.body {
            Body::Form(_) => "application/x-www-form-urlencoded".to_owned(),
            Body::Multipart(m) => m.content_type(),
        }
    }

    /// Points the request at another URL (after a same-host redirect).
    pub fn set_url(&mut self, url: ApiUrl) {
        self.url = url;
    }

    /// The longest this attempt may take in all (what is left of the call's overall timeout);
    /// transports apply it to the whole exchange, body included.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout
    }

    /// Sets [`PreparedRequest::timeout`] (the client does, before each attempt).
    pub fn set_timeout(&mut self, timeout: Option<std::time::Duration>) {
        self.timeout = timeout;
    }

    /// A canonical, token-free rendering for snapshots and logs.
    pub fn render(&self) -> String {
        let mut out = format!("POST {}\ncontent-type: {}\n--\n", self.url, self.content_type());
        for (name, value) in self.form.fields() {
            match value {
                crate::form::FormField::Text(_) if name == "token" => {
                    out.push_str("token=[redacted]\n");
                }
                crate::form::FormField::Text(v) => out.push_str(&format!("{name}={v}\n")),
                crate::form::FormField::File(u) => {
                    out.push_str(&format!("{name}=<file {:?}, {}, {:?}>\n", u.file_name, u.content_type, u.source))
                }
            }
        }
        if let Body::Form(_) = &self.body {
            let mut redacted = Form::new();
            for (name, value) in self.form.fields() {
                if let crate::form::FormField::Text(v) = value {
                    redacted.push_text(name, if name == "token" { "[redacted]" } else { v });
                }
            }
            let wire = redacted.to_urlencoded().unwrap_or_default();
            out.push_str(&format!("--\n{}\n", String::from_utf8_lossy(&wire)));
        }
        out
    }
}

/// Builds the request for `method`: checks the token kind, writes token, content, action, fixed
/// fields and parameters, and renders the body. Nothing is sent; any error means nothing will be.
pub fn prepare<M: Method + ?Sized>(method: &M, url: &ApiUrl, token: &Token) -> Result<PreparedRequest, EncodeError> {
    prepare_with_boundary(method, url, token, &random_boundary())
}

/// [`prepare`] with a chosen multipart boundary (for reproducible tests).
pub fn prepare_with_boundary<M: Method + ?Sized>(
    method: &M,
    url: &ApiUrl,
    token: &Token,
    boundary: &str,
) -> Result<PreparedRequest, EncodeError> {
    assemble(M::INFO, url, token, boundary, |form| method.encode(form))
}

/// Writes token, content, action and fixed fields, then the parameters, and renders the body.
fn assemble(
    info: &'static MethodInfo,
    url: &ApiUrl,
    token: &Token,
    boundary: &str,
    encode: impl FnOnce(&mut Form) -> Result<(), EncodeError>,
) -> Result<PreparedRequest, EncodeError> {
    if !info.token.accepts(token.kind()) {
        return Err(EncodeError::WrongToken {
            method: info.id,
            needed: match info.token {
                TokenRequirement::Super => "super token (64 hex characters)",
                _ => "project token (32 hex characters)",
            },
            given: token.kind(),
        });
    }
    let mut form = Form::new();
    form.push_text("token", token.expose_secret());
    form.push_text("content", info.content);
    if let Some(action) = info.action {
        form.push_text("action", action);
    }
    for (name, value) in info.fixed {
        form.push_text(*name, *value);
    }
    encode(&mut form)?;
    let body = if form.upload().is_some() {
        Body::Multipart(form.to_multipart(boundary))
    } else {
        Body::Form(form.to_urlencoded()?)
    };
    let ctx = DecodeContext::from_form(&form);
    Ok(PreparedRequest { info, url: url.clone(), form, body, ctx, timeout: None })
}

/// A boundary unlikely to occur in any file: 32 hex digits from the standard library's
/// per-process random hash keys, mixed with time and a counter.
pub fn random_boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let mut out = String::from("redcap-rs-");
    for _ in 0..2 {
        let mut h = state.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Checks a buffered response for REDCap errors, then decodes it with `M`.
pub fn handle_response<M: Method + ?Sized>(
    ctx: &DecodeContext,
    response: http::Response<Bytes>,
) -> Result<M::Output, ResponseError> {
    check_response(M::INFO, ctx, &response)?;
    Ok(M::decode(ctx, response)?)
}

/// The error in a response, if it is one: any non-2xx status, or a 2xx whose body is an error
/// envelope, an HTML page or a server failure message (never for raw file bodies, which may be
/// HTML files; their HTML error pages are caught by Content-Type instead).
pub fn check_response<B: AsRef<[u8]>>(
    info: &MethodInfo,
    ctx: &DecodeContext,
    response: &http::Response<B>,
) -> Result<(), crate::error::ApiError> {
    let status = response.status();
    let body = response.body().as_ref();
    if info.response == ResponseKind::Bytes && status.is_success() {
        return match crate::download::html_error_page(response.headers(), body) {
            Some(e) => Err(e),
            None => Ok(()),
        };
    }
    if status == StatusCode::OK || status.is_success() {
        return match crate::envelope::classify(status, body, ctx.error_format()) {
            Some(e) => Err(e),
            None => Ok(()),
        };
    }
    Err(crate::envelope::classify(status, body, ctx.error_format()).unwrap_or_else(|| {
        crate::error::ApiError::new(status, "error without a message", crate::error::ApiErrorKind::Text)
    }))
}

/// A request built at run time from a [`MethodInfo`] and `name=value` strings (the CLI's
/// `redcap call`). Lists may be given as repeated names or comma-separated.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicCall {
    info: &'static MethodInfo,
    values: Vec<(&'static ParamInfo, ParamValue)>,
}

impl DynamicCall {
    /// Builds a call of `info` from `(name, value)` pairs.
    pub fn new(info: &'static MethodInfo, pairs: &[(String, String)]) -> Result<Self, EncodeError> {
        let mut values: Vec<(&'static ParamInfo, ParamValue)> = Vec::new();
        for (name, raw) in pairs {
            let param =
                info.param(name).ok_or_else(|| EncodeError::UnknownParam { method: info.id, param: name.clone() })?;
            let value = match param.ty {
                ValueType::Bool(_) => ParamValue::Bool(parse_flag(param, raw)?),
                ValueType::File => ParamValue::File(crate::upload::Upload::from_path(raw)),
                _ if param.shape != Shape::Scalar => {
                    ParamValue::List(raw.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                }
                _ => ParamValue::Text(raw.clone()),
            };
            match (values.iter_mut().find(|(p, _)| p.name == param.name), value) {
                (Some((_, ParamValue::List(existing))), ParamValue::List(more)) => existing.extend(more),
                (Some(_), _) => {
                    return Err(EncodeError::InvalidValue {
                        param: param.name,
                        value: raw.clone(),
                        reason: "given more than once".into(),
                    });
                }
                (None, value) => values.push((param, value)),
            }
        }
        Ok(DynamicCall { info, values })
    }

    /// The method.
    pub fn info(&self) -> &'static MethodInfo {
        self.info
    }

    /// Prepares the request (checks required parameters too).
    pub fn prepare(&self, url: &ApiUrl, token: &Token) -> Result<PreparedRequest, EncodeError> {
        prepare_dynamic(self, url, token, &random_boundary())
    }
}

fn parse_flag(param: &'static ParamInfo, raw: &str) -> Result<bool, EncodeError> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "" => Ok(true),
        "false" | "0" | "no" | "n" => Ok(false),
        _ => Err(EncodeError::InvalidValue {
            param: param.name,
            value: raw.to_owned(),
            reason: "expected true or false".into(),
        }),
    }
}

fn prepare_dynamic(
    call: &DynamicCall,
    url: &ApiUrl,
    token: &Token,
    boundary: &str,
) -> Result<PreparedRequest, EncodeError> {
    assemble(call.info, url, token, boundary, |form| {
        for param in call.info.params {
            let value = call
                .values
                .iter()
                .find(|(p, _)| p.name == param.name)
                .map(|(_, v)| v.clone())
                .unwrap_or(ParamValue::Absent);
            form.put(param, value)?;
        }
        Ok(())
    })
}
