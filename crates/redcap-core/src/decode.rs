//! Decoders for each [`crate::ResponseKind`]. Structured data is a [`DataResponse`] (defined with
//! the typed rows in [`crate::rows`], re-exported here).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::DecodeError;
use crate::method::DecodeContext;
use crate::model::{AutoId, FileDownload, FileRepositoryEntry, ImportOutcome, Version};
use crate::token::Token;
use crate::types::{ReturnContent, ReturnFormat};

pub use crate::rows::{DataResponse, Row, sniff_delimiter};

fn body_text(body: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(body).map_err(|e| DecodeError::Syntax { format: "text", reason: e.to_string() })
}

/// Structured data.
pub fn data(ctx: &DecodeContext, response: http::Response<Bytes>) -> Result<DataResponse, DecodeError> {
    Ok(DataResponse::new(ctx.data_format(), ctx.csv_delimiter, response.into_body()))
}

/// Typed rows of a fixed-shape answer.
pub fn rows<T: DeserializeOwned>(
    ctx: &DecodeContext,
    response: http::Response<Bytes>,
) -> Result<crate::rows::Rows<T>, DecodeError> {
    crate::rows::Rows::decode(data(ctx, response)?)
}

/// The one typed object of a fixed-shape answer (Export Project Info).
pub fn single<T: DeserializeOwned>(
    ctx: &DecodeContext,
    response: http::Response<Bytes>,
) -> Result<crate::rows::Single<T>, DecodeError> {
    crate::rows::Single::decode(data(ctx, response)?)
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
        #[serde(deserialize_with = "crate::de::opt_u64")]
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
    use crate::types::Format;

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
