//! The rows a record export hands on: [`Row`] maps, or [`RawRow`], a row kept as the server's
//! own JSON text. The healer checks and orders either kind through [`ExportRow`].
//!
//! A map costs two allocations a cell (the column's name and its value) and a hashed insert;
//! a caller that only writes the rows out again as JSON needs none of it. A `RawRow` keeps
//! the element's bytes as they came and reads only the record id and the number of columns
//! on the way (the JSON is still checked in full), which made a 100,000-record export with
//! `redcap records export` spend a small part of the CPU it spent building maps.

use std::borrow::Cow;
use std::fmt;

use redcap_core::Row;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::records::cell;

/// A row of a record export as the healer needs to see it.
pub trait ExportRow: Sized + Send + 'static {
    /// Decodes one element of a JSON array of rows; `id_field` is the record-id column.
    fn from_json(element: &[u8], id_field: &str) -> Result<Self, serde_json::Error>;

    /// The row's record id (`None` when absent or empty).
    fn id(&self, id_field: &str) -> Option<String>;

    /// How many columns the row has.
    fn width(&self) -> usize;

    /// The row's column names, in order.
    fn column_names(&self) -> Vec<String>;

    /// The row as a map (to merge the instrument pieces of one record).
    fn into_row(self) -> Row;

    /// A row from a map (the merged rows of one record).
    fn from_row(row: Row, id_field: &str) -> Self;

    /// The row that starts `json` (at its `{`) and the bytes it takes, when it can be read
    /// there in one pass without cutting it out first; `None`: cut it out and decode it with
    /// [`ExportRow::from_json`] (the default: always).
    fn from_json_prefix(json: &[u8], id_field: &str) -> Option<(Self, usize)> {
        let _ = (json, id_field);
        None
    }
}

impl ExportRow for Row {
    fn from_json(element: &[u8], _id_field: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(element)
    }

    fn id(&self, id_field: &str) -> Option<String> {
        cell(self, id_field)
    }

    fn width(&self) -> usize {
        self.len()
    }

    fn column_names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }

    fn into_row(self) -> Row {
        self
    }

    fn from_row(row: Row, _id_field: &str) -> Self {
        row
    }
}

/// One row of a JSON record export, kept as the server sent it: one JSON object, checked, with
/// its record id and column count read on the way.
#[derive(Clone, PartialEq, Eq)]
pub struct RawRow {
    json: Box<str>,
    /// The id, read when the row was decoded with its id field's name (`keyed`).
    id: Option<String>,
    keyed: bool,
    width: usize,
}

impl fmt::Debug for RawRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRow").field("id", &self.id).field("width", &self.width).finish_non_exhaustive()
    }
}

impl RawRow {
    /// The row's JSON object, as the server sent it.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The row deserialized into the caller's own `T`, as [`redcap_core::DataResponse::rows_as`]
    /// reads a row (a value that does not fit is a [`redcap_core::DecodeError::Row`] naming its
    /// column; its `index` is 0, the row read alone: the caller knows where it came). With `Workflows::export_records_each` (blocking or async) this gives typed rows
    /// while the export streams: each row's text is dropped as soon as it is read, so memory is
    /// the caller's rows, never the body as well.
    pub fn parse<T: de::DeserializeOwned>(&self) -> Result<T, redcap_core::DecodeError> {
        let mut rows = redcap_core::rows::decode::<T>(redcap_core::Format::Json, None, self.json.as_bytes())?;
        match rows.pop() {
            Some(row) if rows.is_empty() => Ok(row),
            _ => Err(redcap_core::DecodeError::Unexpected {
                expected: "one row",
                excerpt: self.json.chars().take(120).collect(),
            }),
        }
    }
}

impl ExportRow for RawRow {
    fn from_json(element: &[u8], id_field: &str) -> Result<Self, serde_json::Error> {
        let json = std::str::from_utf8(element).map_err(|e| de::Error::custom(format!("not UTF-8: {e}")))?;
        let (id, width) = match flat_skim(json.as_bytes(), id_field) {
            Some(skimmed) => skimmed,
            None => {
                let mut d = serde_json::Deserializer::from_str(json);
                let skimmed = d.deserialize_map(Skim { id_field })?;
                d.end()?;
                skimmed
            }
        };
        Ok(RawRow { json: json.into(), id, keyed: !id_field.is_empty(), width })
    }

    fn id(&self, id_field: &str) -> Option<String> {
        if self.keyed {
            return self.id.clone();
        }
        // Decoded where no id field was known (an export of named records): read it now.
        let mut d = serde_json::Deserializer::from_str(&self.json);
        d.deserialize_map(Skim { id_field }).ok().and_then(|(id, _)| id)
    }

    fn width(&self) -> usize {
        self.width
    }

    fn column_names(&self) -> Vec<String> {
        // Asked for an answer's first row and for narrower rows only: parsing again is cheap.
        self.clone().into_row().keys().cloned().collect()
    }

    fn into_row(self) -> Row {
        serde_json::from_str(&self.json).expect("a RawRow holds a checked JSON object")
    }

    fn from_row(row: Row, id_field: &str) -> Self {
        let id = cell(&row, id_field);
        let width = row.len();
        RawRow { json: Value::Object(row).to_string().into(), id, keyed: true, width }
    }

    /// A row REDCap sends, whole in `json`: the flat skim finds its end while it reads it,
    /// so the body is read once, not once to cut the row out and once more to read it.
    fn from_json_prefix(json: &[u8], id_field: &str) -> Option<(Self, usize)> {
        let (end, id, width) = flat_object(json, id_field)?;
        let text = std::str::from_utf8(&json[..end]).ok()?;
        Some((RawRow { json: text.into(), id, keyed: !id_field.is_empty(), width }, end))
    }
}

/// [`Skim`]'s answer for the row REDCap sends, an object of string values (`{"k":"v",…}`),
/// read with a byte search instead of a parser, or `None` for anything else (a number, a nested
/// value, an escape in a key or in the id, bad JSON), which [`Skim`] then reads or refuses.
/// Only valid JSON is accepted: escapes and control characters are checked as serde_json
/// checks them (the bytes are already known to be UTF-8). `redcap records export` spent a
/// third of its CPU in serde_json for what this reads at a few instructions a byte.
fn flat_skim(json: &[u8], id_field: &str) -> Option<(Option<String>, usize)> {
    let (end, id, width) = flat_object(json, id_field)?;
    (skip_space(json, end) == json.len()).then_some((id, width))
}

/// [`flat_skim`] of the object that starts `json`, whatever follows it: where it ends (just
/// past its `}`), its id and its width.
fn flat_object(json: &[u8], id_field: &str) -> Option<(usize, Option<String>, usize)> {
    let mut at = skip_space(json, 0);
    if json.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(json, at + 1);
    let (mut id, mut width) = (None, 0);
    if json.get(at) == Some(&b'}') {
        return Some((at + 1, id, width));
    }
    loop {
        let (key, escaped) = string(json, at)?;
        if escaped {
            return None;
        }
        at = skip_space(json, key.end + 1);
        if json.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(json, at + 1);
        let (value, value_escaped) = string(json, at)?;
        width += 1;
        if &json[key.start..key.end] == id_field.as_bytes() {
            if value_escaped {
                return None;
            }
            // (The bytes are UTF-8 and a quote is ASCII: a string's text ends on a boundary.)
            let text = std::str::from_utf8(&json[value.start..value.end]).ok()?;
            id = (!text.is_empty()).then(|| text.to_owned());
        }
        at = skip_space(json, value.end + 1);
        match json.get(at) {
            Some(b',') => at = skip_space(json, at + 1),
            Some(b'}') => return Some((at + 1, id, width)),
            _ => return None,
        }
    }
}

fn skip_space(json: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = json.get(at) {
        at += 1;
    }
    at
}

/// The text of the JSON string that starts at `at` (between its quotes), and whether it holds
/// an escape; `None` when there is no valid string there.
fn string(json: &[u8], at: usize) -> Option<(std::ops::Range<usize>, bool)> {
    if json.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let (mut i, mut escaped) = (start, false);
    loop {
        i += memchr::memchr2(b'"', b'\\', json.get(i..)?)?;
        if json[i] == b'"' {
            break;
        }
        escaped = true;
        match *json.get(i + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
            b'u' if json.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
            _ => return None,
        }
    }
    // JSON allows no raw control character in a string.
    if json[start..i].iter().any(|&b| b < 0x20) {
        return None;
    }
    Some((start..i, escaped))
}

/// Reads a row's record id and counts its columns, skipping every other value.
struct Skim<'f> {
    id_field: &'f str,
}

impl<'de> Visitor<'de> for Skim<'_> {
    type Value = (Option<String>, usize);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (one row)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut id, mut width) = (None, 0);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            width += 1;
            if key == self.id_field {
                id = match map.next_value::<Value>()? {
                    Value::String(s) if !s.is_empty() => Some(s),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((id, width))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_row_keeps_the_bytes_and_reads_the_id_and_width() {
        let text = r#"{"record_id":"0012","name":"a \"q\" \u00e9","n":{"x":[1,2]},"e":""}"#;
        let raw = RawRow::from_json(text.as_bytes(), "record_id").unwrap();
        assert_eq!(raw.json(), text);
        assert_eq!((raw.id("record_id").as_deref(), raw.width()), (Some("0012"), 4));
        let map: Row = serde_json::from_str(text).unwrap();
        assert_eq!(raw.column_names(), map.column_names());
        assert_eq!(raw.clone().into_row(), map);
        // A merged row is written anew (escapes as serde_json writes them), with the same content.
        let again = RawRow::from_row(map.clone(), "record_id");
        assert_eq!((again.id("record_id").as_deref(), again.width()), (Some("0012"), 4));
        assert_eq!(again.into_row(), map);
        // An escaped key is still the id; a number is an id; an empty id is none.
        let escaped = RawRow::from_json(br#"{"record\u005fid":"7"}"#, "record_id").unwrap();
        assert_eq!(escaped.id("record_id").as_deref(), Some("7"));
        assert_eq!(
            RawRow::from_json(br#"{"record_id":8}"#, "record_id").unwrap().id("record_id").as_deref(),
            Some("8")
        );
        assert_eq!(RawRow::from_json(br#"{"record_id":""}"#, "record_id").unwrap().id("record_id"), None);
        // Decoded without knowing the id field, the id is read when asked for.
        let unkeyed = RawRow::from_json(text.as_bytes(), "").unwrap();
        assert_eq!(unkeyed.id("record_id").as_deref(), Some("0012"));
        assert_eq!(unkeyed.id("name").as_deref(), Some("a \"q\" é"));
    }

    fn slow_skim(json: &str, id_field: &str) -> Option<(Option<String>, usize)> {
        let mut d = serde_json::Deserializer::from_str(json);
        let skimmed = d.deserialize_map(Skim { id_field }).ok()?;
        d.end().ok().map(|()| skimmed)
    }

    #[test]
    fn the_flat_skim_reads_redcap_rows_and_agrees_with_serde_json_on_everything_else() {
        let row = r#"{"record_id":"0012","name":"a \"q\" \u00e9 \/ \\","date":"2024-01-31 12:00","e":""}"#;
        for (json, id) in [
            (row, Some("0012")),
            (r#"{"record_id":""}"#, None),
            ("{}", None),
            (" {\n\t\"record_id\" : \"7\" ,\r\"x\":\"\"} ", Some("7")),
            // The last of two same keys is the id, as serde_json's visitor sees them.
            (r#"{"record_id":"1","record_id":"2"}"#, Some("2")),
        ] {
            let fast = flat_skim(json.as_bytes(), "record_id");
            assert_eq!(fast.as_ref().map(|(i, _)| i.as_deref()), Some(id), "{json}");
            assert_eq!(fast, slow_skim(json, "record_id"), "{json}");
        }
        // Shapes it leaves to serde_json (which reads or refuses them).
        for json in
            [r#"{"record_id":8}"#, r#"{"record\u005fid":"7"}"#, r#"{"record_id":"\u0037"}"#, r#"{"a":{"b":"c"}}"#]
        {
            assert_eq!(flat_skim(json.as_bytes(), "record_id"), None, "{json}");
        }
        // Every edit of a row, at every place: whatever the fast path accepts, serde_json
        // accepts with the same id and width (it may leave more to serde_json, never less).
        let edits = ["", "\"", "\\", ",", ":", "}", "{", " ", "\u{1}", "\\u12", "\\x", "]", "1"];
        let (mut accepted, mut tried) = (0, 0);
        for at in 0..=row.len() {
            for cut in [0, 1] {
                for edit in edits {
                    if !row.is_char_boundary(at) || !row.is_char_boundary((at + cut).min(row.len())) {
                        continue;
                    }
                    let json = format!("{}{edit}{}", &row[..at], &row[(at + cut).min(row.len())..]);
                    tried += 1;
                    if let Some(fast) = flat_skim(json.as_bytes(), "record_id") {
                        accepted += 1;
                        assert_eq!(Some(fast), slow_skim(&json, "record_id"), "{json}");
                    }
                }
            }
        }
        assert!(accepted > 0 && accepted < tried, "{accepted} of {tried}");
    }

    #[test]
    fn a_raw_row_parses_into_a_typed_row_and_names_the_column_that_does_not_fit() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Visit {
            record_id: String,
            #[serde(default, deserialize_with = "redcap_core::de::opt_parse")]
            age: Option<i64>,
            #[serde(default, deserialize_with = "redcap_core::de::opt_date")]
            dob: Option<redcap_core::Date>,
        }
        let raw = RawRow::from_json(br#"{"record_id":"0012","age":"41","dob":"1983-02-28","x":""}"#, "record_id");
        let visit: Visit = raw.unwrap().parse().unwrap();
        assert_eq!(visit.record_id, "0012");
        assert_eq!(visit.age, Some(41));
        assert_eq!(visit.dob.map(|d| d.to_string()).as_deref(), Some("1983-02-28"));
        let blank: Visit =
            RawRow::from_json(br#"{"record_id":"7","age":"","dob":""}"#, "record_id").unwrap().parse().unwrap();
        assert_eq!((blank.age, blank.dob), (None, None));
        let bad = RawRow::from_json(br#"{"record_id":"7","age":"forty"}"#, "record_id").unwrap().parse::<Visit>();
        match bad {
            Err(redcap_core::DecodeError::Row { column, .. }) => assert_eq!(column.as_deref(), Some("age")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_raw_row_is_checked_like_a_map() {
        for bad in [&br#"{"a":"1""#[..], br#"{"a":}"#, br#"[1]"#, br#"{"a":"1"} x"#, b"{\"a\":\"\xff\"}"] {
            assert!(RawRow::from_json(bad, "a").is_err(), "{}", String::from_utf8_lossy(bad));
            assert!(Row::from_json(bad, "a").is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
