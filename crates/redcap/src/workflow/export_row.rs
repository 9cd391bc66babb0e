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
}

impl ExportRow for RawRow {
    fn from_json(element: &[u8], id_field: &str) -> Result<Self, serde_json::Error> {
        let json = std::str::from_utf8(element).map_err(|e| de::Error::custom(format!("not UTF-8: {e}")))?;
        let mut d = serde_json::Deserializer::from_str(json);
        let (id, width) = d.deserialize_map(Skim { id_field })?;
        d.end()?;
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

    #[test]
    fn a_raw_row_is_checked_like_a_map() {
        for bad in [&br#"{"a":"1""#[..], br#"{"a":}"#, br#"[1]"#, br#"{"a":"1"} x"#, b"{\"a\":\"\xff\"}"] {
            assert!(RawRow::from_json(bad, "a").is_err(), "{}", String::from_utf8_lossy(bad));
            assert!(Row::from_json(bad, "a").is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
