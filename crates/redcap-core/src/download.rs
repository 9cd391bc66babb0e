//! File download headers: the server's file name and type, and making that name safe as a path.
//!
//! REDCap names a download in `Content-Type: <mime>; name="<file>"` (quoted, single-quoted or bare
//! in the wild, as PyCap's and REDCapR's file exports parse it); a server or proxy may send
//! `Content-Disposition` instead. Both are parsed; `Content-Disposition` (`filename*` of RFC 8187
//! first, then `filename`, RFC 6266) wins when present.

use http::HeaderMap;
use http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};

use crate::error::{ApiError, ApiErrorKind};

/// What the headers of a file download say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DownloadHead {
    /// The file name exactly as the server sent it (may be unsafe as a path).
    pub server_name: Option<String>,
    /// MIME type (first part of Content-Type).
    pub mime: Option<String>,
    /// `charset` parameter, if any.
    pub charset: Option<String>,
    /// Content-Length, if sent.
    pub content_length: Option<u64>,
}

impl DownloadHead {
    /// Reads name, type and length from response headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (mime, ct_params) = split_params(ct);
        let cd = headers.get(CONTENT_DISPOSITION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (_, cd_params) = split_params(cd);
        let get = |params: &[(String, String)], key: &str| {
            params.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone())
        };
        let extended = get(&cd_params, "filename*").and_then(|v| decode_ext_value(&v));
        let server_name = extended
            .or_else(|| get(&cd_params, "filename"))
            .or_else(|| get(&ct_params, "name"))
            .filter(|n| !n.is_empty());
        DownloadHead {
            server_name,
            mime: (!mime.is_empty()).then(|| mime.to_ascii_lowercase()),
            charset: get(&ct_params, "charset"),
            content_length: headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
        }
    }

    /// The server's name made safe to use as one path component, if there is a usable one.
    pub fn safe_name(&self) -> Option<String> {
        self.server_name.as_deref().and_then(sanitize_file_name)
    }
}

/// Splits `value; k=v; k2="v 2"` into the value and its parameters (quotes and single quotes
/// removed, backslash escapes honoured inside double quotes).
fn split_params(header: &str) -> (String, Vec<(String, String)>) {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = header.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (None, '"') => {
                quote = Some('"');
                current.push(c);
            }
            // A single quote opens a quoted value only right after `=` (names like O'Brien stay).
            (None, '\'') if current.trim_end().ends_with('=') => {
                quote = Some('\'');
                current.push(c);
            }
            (None, ';') => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    let mut iter = parts.into_iter();
    let head = iter.next().unwrap_or_default().trim().to_owned();
    let params = iter
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_owned(), unquote(v.trim())))
        })
        .collect();
    (head, params)
}

fn unquote(v: &str) -> String {
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let inner = &v[1..v.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        v[1..v.len() - 1].to_owned()
    } else {
        v.to_owned()
    }
}

/// RFC 8187 `charset'lang'percent-encoded`; UTF-8 and ISO-8859-1 only.
fn decode_ext_value(v: &str) -> Option<String> {
    let mut it = v.splitn(3, '\'');
    let charset = it.next()?;
    let _lang = it.next()?;
    let encoded = it.next()?;
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

/// Makes a server-supplied file name safe as a single path component on any OS: separators and
/// characters Windows forbids become `_`, control characters and invisible format characters
/// (bidi overrides such as U+202E, which make `invoice\u{202e}txt.exe` show as `invoiceexe.txt`,
/// zero-width characters, line separators) go, trailing dots and spaces go,
/// `.`/`..`/empty give `None`, Windows device names gain a leading `_`, and the name is cut to
/// 200 bytes keeping its extension.
pub fn sanitize_file_name(name: &str) -> Option<String> {
    let mut out: String = name
        .chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c => c,
        })
        .collect();
    let trimmed = out.trim().trim_end_matches(['.', ' ']).to_owned();
    out = trimmed;
    if out.is_empty() || out.chars().all(|c| c == '.' || c == '_') && out.starts_with('.') {
        return None;
    }
    let stem = out.split('.').next().unwrap_or("").trim().to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (stem.len() == 4
            && (stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved {
        out.insert(0, '_');
    }
    if out.len() > 200 {
        let ext = out.rfind('.').map(|i| out[i..].to_owned()).filter(|e| e.len() <= 20).unwrap_or_default();
        let mut cut = 200 - ext.len();
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out = format!("{}{ext}", &out[..cut]);
    }
    Some(out)
}

/// Characters that change how a name is displayed without being seen: bidi embeddings,
/// overrides, isolates and marks, zero-width characters, the BOM, soft hyphen, and line or
/// paragraph separators.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// `name` told apart by `tag` before its extension: `report.pdf` with `doc_id 5` becomes
/// `report (doc_id 5).pdf` (a leading dot is not an extension: `.env (doc_id 5)`). The
/// deterministic disambiguation used wherever two things would get one local name.
pub fn disambiguate(name: &str, tag: &str) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({tag}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({tag})"),
    }
}

/// A 2xx file download that is really an HTML error page: `text/html` with no file name.
pub(crate) fn html_error_page(headers: &HeaderMap, body: &[u8]) -> Option<ApiError> {
    let head = DownloadHead::from_headers(headers);
    let html = head.mime.as_deref() == Some("text/html");
    if html && head.server_name.is_none() {
        let message = match crate::envelope::classify(http::StatusCode::OK, body, crate::types::ReturnFormat::Xml) {
            Some(e) => e.message().to_owned(),
            None => crate::error::excerpt(body),
        };
        return Some(ApiError::new(http::StatusCode::OK, message, ApiErrorKind::HtmlPage));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(ct: &str, cd: Option<&str>) -> DownloadHead {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, ct.parse().unwrap());
        if let Some(cd) = cd {
            h.insert(CONTENT_DISPOSITION, cd.parse().unwrap());
        }
        DownloadHead::from_headers(&h)
    }

    #[test]
    fn names_from_content_type() {
        let h = head("text/plain; name=\"test_upload.txt\"; charset=UTF-8", None);
        assert_eq!(h.server_name.as_deref(), Some("test_upload.txt"));
        assert_eq!(h.mime.as_deref(), Some("text/plain"));
        assert_eq!(h.charset.as_deref(), Some("UTF-8"));
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document; name='FILE_NAME.docx'";
        assert_eq!(head(docx, None).server_name.as_deref(), Some("FILE_NAME.docx"));
        assert_eq!(head("image/jpeg; name=mugshot-1.jpg", None).server_name.as_deref(), Some("mugshot-1.jpg"));
        assert_eq!(head("text/plain; name=\"a;b=c.txt\"", None).server_name.as_deref(), Some("a;b=c.txt"));
    }

    #[test]
    fn content_disposition_wins() {
        let h = head("application/pdf; name=\"x.pdf\"", Some("attachment; filename=\"consent_form_v3.pdf\""));
        assert_eq!(h.server_name.as_deref(), Some("consent_form_v3.pdf"));
        let h =
            head("application/pdf", Some("attachment; filename=\"fallback.pdf\"; filename*=UTF-8''%C3%A9t%C3%A9.pdf"));
        assert_eq!(h.server_name.as_deref(), Some("été.pdf"));
        let h = head("application/pdf", Some("attachment; filename=plain.pdf"));
        assert_eq!(h.server_name.as_deref(), Some("plain.pdf"));
    }

    #[test]
    fn sanitising() {
        assert_eq!(sanitize_file_name("../../etc/passwd").as_deref(), Some(".._.._etc_passwd"));
        assert_eq!(sanitize_file_name("a\\b/c.txt").as_deref(), Some("a_b_c.txt"));
        assert_eq!(sanitize_file_name("bell\u{7}.txt").as_deref(), Some("bell.txt"));
        assert_eq!(sanitize_file_name(".."), None);
        assert_eq!(sanitize_file_name("."), None);
        assert_eq!(sanitize_file_name("   "), None);
        assert_eq!(sanitize_file_name("CON.txt").as_deref(), Some("_CON.txt"));
        assert_eq!(sanitize_file_name("com1").as_deref(), Some("_com1"));
        assert_eq!(sanitize_file_name("report. ").as_deref(), Some("report"));
        assert_eq!(sanitize_file_name("invoice\u{202e}txt.exe").as_deref(), Some("invoicetxt.exe"));
        for c in ['\u{200b}', '\u{200e}', '\u{2066}', '\u{2069}', '\u{feff}', '\u{2028}', '\u{061c}'] {
            assert_eq!(sanitize_file_name(&format!("a{c}b.txt")).as_deref(), Some("ab.txt"), "{:?}", c);
        }
        assert_eq!(sanitize_file_name("\u{202e}").as_deref(), None);
        assert_eq!(disambiguate("report.pdf", "doc_id 5"), "report (doc_id 5).pdf");
        assert_eq!(disambiguate(".env", "doc_id 5"), ".env (doc_id 5)");
        let long = format!("{}.pdf", "x".repeat(300));
        let cut = sanitize_file_name(&long).unwrap();
        assert!(cut.len() <= 200 && cut.ends_with(".pdf"));
    }
}
