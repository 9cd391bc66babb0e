//! REDCap's error envelopes: recognised in responses (client) and written (emulator).
//!
//! Shapes, as real REDCap servers send them (REDCap's API documentation shows the json form; the
//! others are in the recorded responses this crate's tests replay):
//! - json: `{"error":"<message>"}`
//! - csv: `ERROR: <message>`
//! - xml: `<?xml version="1.0" encoding="UTF-8" ?><hash><error><message></error></hash>` on one line.

use http::StatusCode;

use crate::error::{ApiError, ApiErrorKind};
use crate::types::ReturnFormat;

/// Import Records' per-row validation message split into its lines (re-exported here, with
/// the other readers of REDCap's error bodies; the error type it fills is defined with the errors).
pub use crate::error::parse_import_lines;

/// Renders an error body in `format`, byte-for-byte as REDCap does. Returns (content type, body).
pub fn render(format: ReturnFormat, message: &str) -> (&'static str, String) {
    match format {
        ReturnFormat::Json => ("application/json; charset=utf-8", serde_json::json!({ "error": message }).to_string()),
        ReturnFormat::Csv => ("text/csv; charset=utf-8", format!("ERROR: {message}")),
        ReturnFormat::Xml => (
            "text/xml; charset=utf-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><hash><error>{}</error></hash>",
                quick_xml::escape::escape(message)
            ),
        ),
    }
}

/// Finds an error envelope in a body, trying the expected format first. `None` if the body is
/// not an envelope in any of the three formats.
pub fn parse(body: &[u8], expected: ReturnFormat) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let text = text.trim_start_matches('\u{feff}').trim();
    let order = match expected {
        ReturnFormat::Json => [parse_json, parse_xml, parse_csv],
        ReturnFormat::Xml => [parse_xml, parse_json, parse_csv],
        ReturnFormat::Csv => [parse_csv, parse_json, parse_xml],
    };
    order.iter().find_map(|p| p(text))
}

fn parse_json(text: &str) -> Option<String> {
    if !text.starts_with('{') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    match value.get("error")? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn parse_csv(text: &str) -> Option<String> {
    let head = text.get(..6)?;
    head.eq_ignore_ascii_case("error:").then(|| text[6..].trim().to_owned())
}

fn parse_xml(text: &str) -> Option<String> {
    // The envelope's root is <hash>: data with a field named `error` must not match.
    let mut rest = text;
    if rest.starts_with("<?xml") {
        rest = rest[rest.find("?>")? + 2..].trim_start();
    }
    if !rest.starts_with("<hash>") {
        return None;
    }
    let start = text.find("<error>")? + "<error>".len();
    let end = text[start..].find("</error>")? + start;
    let raw = &text[start..end];
    // Escaping of `<` and `&` is unverified: unescape when it parses, else keep the raw text.
    Some(quick_xml::escape::unescape(raw).map(|c| c.into_owned()).unwrap_or_else(|_| raw.to_owned()))
}

/// Whether a body looks like an HTML page.
pub fn is_html(body: &[u8]) -> bool {
    let start: Vec<u8> =
        body.iter().skip_while(|b| b.is_ascii_whitespace()).take(64).map(|b| b.to_ascii_lowercase()).collect();
    start.starts_with(b"<!doctype html") || start.starts_with(b"<html") || start.starts_with(b"<head")
}

/// Messages REDCap's PHP layer prints instead of API output when its database is unavailable
/// (public client issues quote these; see the user-needs reference, "200-with-HTML" gotchas).
const SERVER_TEXT_MARKERS: &[&str] = &[
    "could not connect to the database",
    "cannot connect to the database",
    "database connection",
    "ran out of server memory",
];

/// A short single-line message naming a server failure. Data never looks like this: JSON and
/// XML start with a bracket, and CSV with data has a header line and at least one row.
fn is_server_text(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else { return false };
    let text = text.trim();
    if text.is_empty() || text.len() > 1000 || text.contains('\n') || text.starts_with(['[', '{', '<']) {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    SERVER_TEXT_MARKERS.iter().any(|m| lower.contains(m))
}

/// Builds the error for a non-success status, or for a success status whose body is an error.
/// `None` means the body is not an error (only possible for a success status).
pub fn classify(status: StatusCode, body: &[u8], expected: ReturnFormat) -> Option<ApiError> {
    if let Some(message) = parse(body, expected) {
        return Some(ApiError::new(status, message, ApiErrorKind::Envelope));
    }
    if is_html(body) {
        return Some(ApiError::new(status, html_summary(body), ApiErrorKind::HtmlPage));
    }
    if is_server_text(body) {
        return Some(ApiError::new(status, crate::error::excerpt(body), ApiErrorKind::Text));
    }
    if status.is_success() {
        return None;
    }
    let text = crate::error::excerpt(body);
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("no message").to_owned() } else { text };
    Some(ApiError::new(status, message, ApiErrorKind::Text))
}

/// The `<title>` of an HTML page, else its start.
fn html_summary(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    if let (Some(s), Some(e)) = (lower.find("<title>"), lower.find("</title>")) {
        if s + 7 <= e {
            let title = text[s + 7..e].trim();
            if !title.is_empty() {
                return title.to_owned();
            }
        }
    }
    crate::error::excerpt(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_API: &str = "You do not have permissions to use the API";

    #[test]
    fn round_trip_every_format() {
        for f in [ReturnFormat::Json, ReturnFormat::Csv, ReturnFormat::Xml] {
            let (_, body) = render(f, "a \"quoted\" <b> & c");
            assert_eq!(parse(body.as_bytes(), f).as_deref(), Some("a \"quoted\" <b> & c"), "{f}");
            // Found even when another format was expected.
            assert!(parse(body.as_bytes(), ReturnFormat::Json).is_some());
        }
    }

    #[test]
    fn recorded_bytes() {
        assert_eq!(render(ReturnFormat::Json, NO_API).1, r#"{"error":"You do not have permissions to use the API"}"#);
        assert_eq!(
            render(ReturnFormat::Xml, "The requested method is not implemented.").1,
            r#"<?xml version="1.0" encoding="UTF-8" ?><hash><error>The requested method is not implemented.</error></hash>"#
        );
        assert_eq!(render(ReturnFormat::Csv, NO_API).1, format!("ERROR: {NO_API}"));
    }

    #[test]
    fn data_is_not_an_error() {
        for body in [
            &b"[]"[..],
            b"record_id,name\n1,x\n",
            b"<records></records>",
            b"13.10.3",
            b"",
            b"1",
            // Data that merely mentions the words of an error.
            b"record_id,notes\n1,could not connect to the database\n",
            b"[{\"notes\":\"ran out of server memory\"}]",
            b"<?xml version=\"1.0\" encoding=\"UTF-8\" ?><records><item><record_id>1</record_id><error>x</error></item></records>",
        ] {
            assert_eq!(classify(StatusCode::OK, body, ReturnFormat::Xml), None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn html_and_server_text_at_200() {
        let page = b"<!DOCTYPE html><html><head><title>REDCap crashed</title></head></html>";
        let e = classify(StatusCode::OK, page, ReturnFormat::Json).unwrap();
        assert_eq!((e.kind(), e.message()), (ApiErrorKind::HtmlPage, "REDCap crashed"));
        assert!(e.is_transient());
        let e = classify(StatusCode::OK, b"Could not connect to the database", ReturnFormat::Json).unwrap();
        assert_eq!(e.kind(), ApiErrorKind::Text);
    }

    #[test]
    fn auth_and_permission() {
        let e = classify(StatusCode::FORBIDDEN, render(ReturnFormat::Json, NO_API).1.as_bytes(), ReturnFormat::Json)
            .unwrap();
        assert!(e.is_auth() && !e.is_permission());
        let e = ApiError::new(
            StatusCode::FORBIDDEN,
            "You do not have API Import/Update privileges",
            ApiErrorKind::Envelope,
        );
        assert!(!e.is_auth() && e.is_permission());
        let e = ApiError::new(
            StatusCode::FORBIDDEN,
            "The API request cannot complete because report_id=7 does not belong to this project.",
            ApiErrorKind::Envelope,
        );
        assert!(!e.is_auth() && !e.is_permission());
    }

    #[test]
    fn import_lines() {
        let msg = "\"1\",\"weight_kg\",\"22\",\"The value you provided could not be validated\"\n\"2\",\"age\",\"x\",\"bad, really\"";
        let lines = parse_import_lines(msg);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].message, "bad, really");
        assert!(parse_import_lines("The value of the parameter \"content\" is not valid").is_empty());
    }
}
