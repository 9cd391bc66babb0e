//! Decoders for each [`crate::ResponseKind`], and [`DataResponse`] for structured data.

use bytes::Bytes;
use quick_xml::events::Event;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::DecodeError;
use crate::method::DecodeContext;
use crate::model::{AutoId, FileDownload, FileRepositoryEntry, ImportOutcome, Version};
use crate::token::Token;
use crate::types::{CsvDelimiter, Format, ReturnContent, ReturnFormat};

/// One row of data with its columns in the server's order.
pub type Row = Map<String, Value>;

/// A structured response body in a known format, decoded on demand.
#[derive(Clone, PartialEq, Eq)]
pub struct DataResponse {
    format: Format,
    delimiter: Option<CsvDelimiter>,
    body: Bytes,
}

impl std::fmt::Debug for DataResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataResponse").field("format", &self.format).field("bytes", &self.body.len()).finish()
    }
}

impl DataResponse {
    /// Wraps a body of `format`; `delimiter` is the CSV delimiter requested (else sniffed).
    pub fn new(format: Format, delimiter: Option<CsvDelimiter>, body: Bytes) -> Self {
        DataResponse { format, delimiter, body }
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The raw body.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Rows as ordered maps: JSON numbers stay numbers, CSV and XML values are strings.
    pub fn rows(&self) -> Result<Vec<Row>, DecodeError> {
        match self.format {
            Format::Json => json_rows(&self.body),
            Format::Csv => csv_rows(&self.body, self.delimiter),
            Format::Xml => xml_rows(&self.body),
            Format::Odm => Err(DecodeError::NotRows("ODM")),
        }
    }

    /// Rows deserialized into `T` (use [`crate::model::de`] helpers for number-or-string ids).
    pub fn rows_as<T: DeserializeOwned>(&self) -> Result<Vec<T>, DecodeError> {
        self.rows()?
            .into_iter()
            .map(|row| {
                serde_json::from_value(Value::Object(row))
                    .map_err(|e| DecodeError::Syntax { format: "row", reason: e.to_string() })
            })
            .collect()
    }
}

fn json_rows(body: &[u8]) -> Result<Vec<Row>, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::Syntax { format: "json", reason: e.to_string() })?;
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Ok(m),
                other => Err(DecodeError::unexpected("an array of objects", other.to_string().as_bytes())),
            })
            .collect(),
        // Export Project Info answers with one object.
        Value::Object(m) => Ok(vec![m]),
        other => Err(DecodeError::unexpected("a JSON array", other.to_string().as_bytes())),
    }
}

/// Guesses the delimiter of a CSV header line (REDCap may use the user's locale preference).
pub fn sniff_delimiter(body: &[u8]) -> u8 {
    let line = body.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut best = (0usize, b',');
    for d in [b',', b'\t', b';', b'|', b'^'] {
        let mut in_quotes = false;
        let n = line
            .iter()
            .filter(|&&b| {
                if b == b'"' {
                    in_quotes = !in_quotes;
                }
                !in_quotes && b == d
            })
            .count();
        if n > best.0 {
            best = (n, d);
        }
    }
    best.1
}

fn csv_rows(body: &[u8], delimiter: Option<CsvDelimiter>) -> Result<Vec<Row>, DecodeError> {
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    let delim = delimiter.map(CsvDelimiter::byte).unwrap_or_else(|| sniff_delimiter(body));
    let mut reader = csv::ReaderBuilder::new().delimiter(delim).from_reader(body);
    let syntax = |e: csv::Error| DecodeError::Syntax { format: "csv", reason: e.to_string() };
    let headers = reader.headers().map_err(syntax)?.clone();
    let mut rows = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(syntax)?;
        let mut row = Map::new();
        for (h, v) in headers.iter().zip(rec.iter()) {
            // REDCapR turns \r\n into \n: do the same so values match across formats.
            row.insert(h.to_owned(), Value::String(v.replace("\r\n", "\n")));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// REDCap XML data: `<root><item><field>value</field>…</item>…</root>`. Elements nested one
/// level deeper (e.g. a user's `<forms><demographics>1</demographics></forms>`) become
/// `name:value` pairs joined by commas, as in the CSV export.
fn xml_rows(body: &[u8]) -> Result<Vec<Row>, DecodeError> {
    let syntax = |e: String| DecodeError::Syntax { format: "xml", reason: e };
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut rows = Vec::new();
    let mut depth = 0usize;
    let mut row = Row::new();
    let mut field: Option<String> = None;
    let mut nested: Vec<String> = Vec::new();
    let mut sub: Option<String> = None;
    let mut text = String::new();
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| syntax(e.to_string()))?;
        match event {
            Event::Start(e) => {
                depth += 1;
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match depth {
                    2 => row = Row::new(),
                    3 => {
                        field = Some(name);
                        nested.clear();
                    }
                    4 => sub = Some(name),
                    _ => {}
                }
                text.clear();
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match depth + 1 {
                    2 => rows.push(Row::new()),
                    3 => {
                        row.insert(name, Value::String(String::new()));
                    }
                    4 => nested.push(format!("{name}:")),
                    _ => {}
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| syntax(e.to_string()))?;
                text.push_str(&s);
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                match depth {
                    2 => rows.push(std::mem::take(&mut row)),
                    3 => {
                        if let Some(f) = field.take() {
                            let value = if nested.is_empty() { std::mem::take(&mut text) } else { nested.join(",") };
                            row.insert(f, Value::String(value));
                        }
                    }
                    4 => {
                        if let Some(s) = sub.take() {
                            nested.push(format!("{s}:{}", text.trim()));
                        }
                    }
                    _ => {}
                }
                text.clear();
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(rows)
}

fn body_text(body: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(body).map_err(|e| DecodeError::Syntax { format: "text", reason: e.to_string() })
}

/// Structured data.
pub fn data(ctx: &DecodeContext, response: http::Response<Bytes>) -> Result<DataResponse, DecodeError> {
    Ok(DataResponse::new(ctx.data_format(), ctx.csv_delimiter, response.into_body()))
}

/// A raw file and its headers.
pub fn bytes(_: &DecodeContext, response: http::Response<Bytes>) -> Result<FileDownload, DecodeError> {
    let head = crate::download::DownloadHead::from_headers(response.headers());
    Ok(FileDownload { head, bytes: response.into_body() })
}

/// A bare string, trailing whitespace removed.
pub fn text(_: &DecodeContext, response: http::Response<Bytes>) -> Result<String, DecodeError> {
    Ok(body_text(response.body())?.trim_end().to_owned())
}

/// `1`, or an error carrying whatever else came.
pub fn one(_: &DecodeContext, response: http::Response<Bytes>) -> Result<(), DecodeError> {
    match body_text(response.body())?.trim() {
        "1" => Ok(()),
        _ => Err(DecodeError::unexpected("`1`", response.body())),
    }
}

/// An empty body (whitespace tolerated).
pub fn empty(_: &DecodeContext, response: http::Response<Bytes>) -> Result<(), DecodeError> {
    if response.body().iter().all(u8::is_ascii_whitespace) {
        Ok(())
    } else {
        Err(DecodeError::unexpected("an empty body", response.body()))
    }
}

/// A count: bare `3`, JSON `{"count":3}`, XML `<count>3</count>` (REDCap shapes counts by
/// `returnFormat` for Import Records; other methods answer a bare number).
pub fn count(_: &DecodeContext, response: http::Response<Bytes>) -> Result<u64, DecodeError> {
    parse_count(response.body()).ok_or_else(|| DecodeError::unexpected("a count", response.body()))
}

fn parse_count(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?.trim();
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    if text.starts_with('{') {
        let v: Value = serde_json::from_str(text).ok()?;
        return match v.get("count")? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
    }
    let start = text.find("<count>")? + 7;
    let end = text[start..].find("</count>")? + start;
    text[start..end].trim().parse().ok()
}

/// Import Records' result per `returnContent` and the result format (`returnFormat`, else `format`).
pub fn import(ctx: &DecodeContext, response: http::Response<Bytes>) -> Result<ImportOutcome, DecodeError> {
    let body = response.body();
    let result_format = ctx.error_format();
    if ctx.background {
        let text = body_text(body)?.to_ascii_lowercase();
        return if text.contains("true") {
            Ok(ImportOutcome::Background(true))
        } else if text.contains("false") {
            Ok(ImportOutcome::Background(false))
        } else {
            Err(DecodeError::unexpected("success:true or success:false", body))
        };
    }
    match ctx.return_content.unwrap_or(ReturnContent::Count) {
        ReturnContent::Count => {
            parse_count(body).map(ImportOutcome::Count).ok_or_else(|| DecodeError::unexpected("a count", body))
        }
        ReturnContent::Nothing => Ok(ImportOutcome::Nothing),
        kind @ (ReturnContent::Ids | ReturnContent::AutoIds) => {
            let ids = id_list(body, result_format)?;
            if kind == ReturnContent::Ids {
                return Ok(ImportOutcome::Ids(ids));
            }
            ids.into_iter()
                .map(|pair| match pair.split_once(',') {
                    Some((new, original)) => Ok(AutoId { new: new.to_owned(), original: original.to_owned() }),
                    None => Err(DecodeError::unexpected("`new,original` pairs", pair.as_bytes())),
                })
                .collect::<Result<_, _>>()
                .map(ImportOutcome::AutoIds)
        }
    }
}

/// ids as JSON `["1","2"]`, CSV `id\n1\n2` (header optional), or XML `<ids><id>1</id></ids>`.
fn id_list(body: &[u8], format: ReturnFormat) -> Result<Vec<String>, DecodeError> {
    let text = body_text(body)?.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    match format {
        ReturnFormat::Json => {
            let values: Vec<Value> = serde_json::from_str(text)
                .map_err(|e| DecodeError::Syntax { format: "json", reason: e.to_string() })?;
            Ok(values
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect())
        }
        ReturnFormat::Csv => {
            let mut lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            if lines.first() == Some(&"id") {
                lines.remove(0);
            }
            Ok(lines.into_iter().map(|l| l.trim_matches('"').to_owned()).collect())
        }
        ReturnFormat::Xml => {
            let mut out = Vec::new();
            let mut rest = text;
            while let Some(s) = rest.find("<id>") {
                let after = &rest[s + 4..];
                let e = after.find("</id>").ok_or_else(|| DecodeError::unexpected("<id> elements", body))?;
                out.push(after[..e].to_owned());
                rest = &after[e + 5..];
            }
            Ok(out)
        }
    }
}

/// The token of a new project: the last 32 hex characters (REDCap may print SQL before it).
pub fn new_token(_: &DecodeContext, response: http::Response<Bytes>) -> Result<Token, DecodeError> {
    let text = body_text(response.body())?.trim();
    let bad = || DecodeError::unexpected("a 32-character project token", b"[token-like body withheld]");
    if text.len() < 32 || !text.is_char_boundary(text.len() - 32) {
        return Err(bad());
    }
    Token::new(&text[text.len() - 32..]).map_err(|_| bad())
}

/// `MAJOR.MINOR.PATCH`.
pub fn version(_: &DecodeContext, response: http::Response<Bytes>) -> Result<Version, DecodeError> {
    body_text(response.body())?.parse().map_err(|_| DecodeError::unexpected("a version like 14.5.2", response.body()))
}

/// The id of a new folder, from `[{"folder_id":45}]` or its CSV/XML equivalents.
pub fn folder_id(ctx: &DecodeContext, response: http::Response<Bytes>) -> Result<u64, DecodeError> {
    #[derive(serde::Deserialize)]
    struct Created {
        #[serde(deserialize_with = "crate::model::de::opt_u64")]
        folder_id: Option<u64>,
    }
    let body = response.body().clone();
    let rows: Vec<Created> = data(ctx, response)?.rows_as()?;
    rows.into_iter().find_map(|c| c.folder_id).ok_or_else(|| DecodeError::unexpected("[{\"folder_id\": N}]", &body))
}

/// A File Repository listing.
pub fn file_repository_list(
    ctx: &DecodeContext,
    response: http::Response<Bytes>,
) -> Result<Vec<FileRepositoryEntry>, DecodeError> {
    data(ctx, response)?.rows_as()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(body: &str) -> http::Response<Bytes> {
        http::Response::new(Bytes::from(body.to_owned()))
    }

    fn ctx(format: Format) -> DecodeContext {
        DecodeContext {
            format: Some(format),
            return_format: None,
            return_content: None,
            csv_delimiter: None,
            background: false,
        }
    }

    #[test]
    fn counts() {
        for body in [
            "3",
            "3\n",
            "{\"count\": 3}",
            "{\"count\":\"3\"}",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><count>3</count>",
        ] {
            assert_eq!(count(&ctx(Format::Json), resp(body)).unwrap(), 3, "{body}");
        }
        assert!(count(&ctx(Format::Json), resp("[]")).is_err());
    }

    #[test]
    fn new_project_token_after_sql_noise() {
        let t = new_token(&ctx(Format::Json), resp("INSERT INTO x; 0123456789ABCDEF0123456789ABCDEF\n")).unwrap();
        assert_eq!(t.expose_secret(), "0123456789ABCDEF0123456789ABCDEF");
    }
}
