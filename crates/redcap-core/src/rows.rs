//! Typed rows: REDCap's json, csv and xml answers deserialized straight into a `T`, one row at a
//! time (no map per row, no tree of the whole body), and typed rows encoded as an import's `data`.
//!
//! The same `T` reads all three formats. JSON values arrive as the server typed them (numbers
//! or strings); CSV and XML cells arrive as text, and a cell read into a number or a `bool` is
//! parsed. Nested XML elements (a user's `<forms><demographics>1</demographics></forms>`) arrive as
//! a map, as JSON's objects do. A value that does not fit is a [`DecodeError::Row`] naming the row
//! and the column.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use quick_xml::events::Event;
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{DecodeError, EncodeError};
use crate::types::{CsvDelimiter, Format};

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

    /// Rows as ordered maps: JSON numbers stay numbers, CSV and XML values are strings (nested XML
    /// elements, such as a user's `forms`, are maps).
    pub fn rows(&self) -> Result<Vec<Row>, DecodeError> {
        self.rows_as()
    }

    /// Rows deserialized straight into `T`, one at a time (see [`Rows`]; the lenient
    /// deserializers of [`crate::de`] read numbers, flags and dates in every format).
    pub fn rows_as<T: DeserializeOwned>(&self) -> Result<Vec<T>, DecodeError> {
        decode(self.format, self.delimiter, &self.body)
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

/// Rows of a fixed-shape answer, typed, with the body they came from.
#[derive(Clone, PartialEq)]
pub struct Rows<T> {
    rows: Vec<T>,
    raw: DataResponse,
}

impl<T> Rows<T> {
    /// The typed rows.
    pub fn as_slice(&self) -> &[T] {
        &self.rows
    }

    /// The answer as received (format and bytes), e.g. to save it unchanged.
    pub fn raw(&self) -> &DataResponse {
        &self.raw
    }

    /// The raw body.
    pub fn bytes(&self) -> &Bytes {
        self.raw.bytes()
    }

    /// The typed rows, dropping the body.
    pub fn into_vec(self) -> Vec<T> {
        self.rows
    }

    /// The typed rows and the body.
    pub fn into_parts(self) -> (Vec<T>, DataResponse) {
        (self.rows, self.raw)
    }
}

impl<T: DeserializeOwned> Rows<T> {
    /// Decodes `raw` into rows of `T`.
    pub fn decode(raw: DataResponse) -> Result<Self, DecodeError> {
        Ok(Rows { rows: raw.rows_as()?, raw })
    }
}

impl<T> std::ops::Deref for Rows<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.rows
    }
}

impl<T> IntoIterator for Rows<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Rows<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for Rows<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rows").field("format", &self.raw.format()).field("rows", &self.rows).finish()
    }
}

/// A fixed-shape answer of one object (Export Project Info), typed, with the body it came from.
#[derive(Clone, PartialEq)]
pub struct Single<T> {
    value: T,
    raw: DataResponse,
}

impl<T> Single<T> {
    /// The typed value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The answer as received.
    pub fn raw(&self) -> &DataResponse {
        &self.raw
    }

    /// The typed value, dropping the body.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: DeserializeOwned> Single<T> {
    /// Decodes `raw`, which must hold exactly one row.
    pub fn decode(raw: DataResponse) -> Result<Self, DecodeError> {
        let mut rows: Vec<T> = raw.rows_as()?;
        if rows.len() != 1 {
            return Err(DecodeError::unexpected("exactly one row", raw.bytes()));
        }
        let value = rows.remove(0);
        Ok(Single { value, raw })
    }
}

impl<T> std::ops::Deref for Single<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Single<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Single").field("format", &self.raw.format()).field("value", &self.value).finish()
    }
}

/// Deserializes every row of `body` (in `format`) into `T`. A JSON object (Export Project Info's
/// answer) is one row; a blank body is no rows. `delimiter` is the CSV delimiter requested (else
/// sniffed from the header line, as REDCap may follow the user's locale).
pub fn decode<T: DeserializeOwned>(
    format: Format,
    delimiter: Option<CsvDelimiter>,
    body: &[u8],
) -> Result<Vec<T>, DecodeError> {
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    match format {
        Format::Json => json(body),
        Format::Csv => csv(body, delimiter.map(CsvDelimiter::byte).unwrap_or_else(|| sniff_delimiter(body))),
        Format::Xml => xml(body),
        Format::Odm => Err(DecodeError::NotRows("ODM")),
    }
}

fn row_error<E: fmt::Display>(format: &'static str, index: usize, e: serde_path_to_error::Error<E>) -> DecodeError {
    let column = e.path().iter().find_map(|s| match s {
        serde_path_to_error::Segment::Map { key } => Some(key.clone()),
        _ => None,
    });
    DecodeError::Row { format, index, column, reason: e.into_inner().to_string() }
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Result<Vec<T>, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let rows = serde_path_to_error::deserialize::<_, OneOrMany<T>>(&mut de).map_err(|e| {
        if matches!(e.inner().classify(), serde_json::error::Category::Data) {
            let mut segments = e.path().iter();
            match segments.next() {
                Some(serde_path_to_error::Segment::Seq { index }) => {
                    let index = *index;
                    row_error("json", index, e)
                }
                Some(serde_path_to_error::Segment::Map { .. }) => row_error("json", 0, e),
                _ => DecodeError::unexpected("rows (a JSON array of objects, or one object)", body),
            }
        } else {
            DecodeError::Syntax { format: "json", reason: e.into_inner().to_string() }
        }
    })?;
    de.end().map_err(|e| DecodeError::Syntax { format: "json", reason: e.to_string() })?;
    Ok(rows.0)
}

/// A JSON array of rows, or one object as the only row.
struct OneOrMany<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of rows or one object")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(row) = seq.next_element()? {
                    out.push(row);
                }
                Ok(OneOrMany(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| OneOrMany(vec![t]))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

fn csv<T: DeserializeOwned>(body: &[u8], delimiter: u8) -> Result<Vec<T>, DecodeError> {
    let syntax = |e: csv::Error| DecodeError::Syntax { format: "csv", reason: e.to_string() };
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(body);
    let headers = reader.headers().map_err(syntax)?.clone();
    let mut record = csv::StringRecord::new();
    let mut out = Vec::new();
    while reader.read_record(&mut record).map_err(syntax)? {
        let cells = headers.iter().zip(record.iter()).map(|(h, v)| (h, Cell::Text(text(v))));
        let row = serde_path_to_error::deserialize(RowDe(cells)).map_err(|e| row_error("csv", out.len(), e))?;
        out.push(row);
    }
    Ok(out)
}

/// REDCapR turns `\r\n` into `\n` in CSV cells: do the same so values match across formats.
fn text(v: &str) -> Cow<'_, str> {
    if v.contains("\r\n") { Cow::Owned(v.replace("\r\n", "\n")) } else { Cow::Borrowed(v) }
}

/// One value of a CSV or XML row.
enum Cell<'a> {
    Text(Cow<'a, str>),
    /// Child elements (XML), read as a map.
    Nested(Vec<(String, String)>),
}

/// Why a cell did not deserialize.
#[derive(Debug)]
struct CellError(String);

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CellError {}

impl de::Error for CellError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        CellError(msg.to_string())
    }
}

/// A row of named cells, read as a map (or a struct).
struct RowDe<I>(I);

impl<'de, 'a, I: Iterator<Item = (K, Cell<'a>)>, K: Into<Cow<'a, str>>> Deserializer<'de> for RowDe<I> {
    type Error = CellError;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, CellError> {
        v.visit_map(RowAccess { cells: self.0.map(|(k, c)| (k.into(), c)), value: None })
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct RowAccess<'a, I> {
    cells: I,
    value: Option<Cell<'a>>,
}

impl<'de, 'a, I: Iterator<Item = (Cow<'a, str>, Cell<'a>)>> MapAccess<'de> for RowAccess<'a, I> {
    type Error = CellError;
    fn next_key_seed<S: de::DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, CellError> {
        match self.cells.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(CellDe(Cell::Text(k))).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<S: de::DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, CellError> {
        let v = self.value.take().ok_or_else(|| CellError("a value without a column".into()))?;
        seed.deserialize(CellDe(v))
    }
}

/// One cell. Text is handed over as a string, except where the target asks for a number or a
/// `bool`: then it is parsed (so a plain `u32` field reads CSV's `"3"`).
struct CellDe<'a>(Cell<'a>);

macro_rules! parse_number {
    ($($method:ident $visit:ident $t:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, CellError> {
            match &self.0 {
                Cell::Text(s) => match s.trim().parse::<$t>() {
                    Ok(n) => v.$visit(n),
                    Err(_) => self.deserialize_any(v),
                },
                Cell::Nested(_) => self.deserialize_any(v),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for CellDe<'_> {
    type Error = CellError;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, CellError> {
        match self.0 {
            Cell::Text(Cow::Borrowed(s)) => v.visit_str(s),
            Cell::Text(Cow::Owned(s)) => v.visit_string(s),
            Cell::Nested(pairs) => {
                RowDe(pairs.into_iter().map(|(k, t)| (Cow::Owned(k), Cell::Text(Cow::Owned(t))))).deserialize_any(v)
            }
        }
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, CellError> {
        match &self.0 {
            Cell::Text(s) => match s.trim() {
                "1" | "true" => v.visit_bool(true),
                "0" | "false" => v.visit_bool(false),
                _ => self.deserialize_any(v),
            },
            Cell::Nested(_) => self.deserialize_any(v),
        }
    }
    parse_number!(
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16, deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64, deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64, deserialize_f32 visit_f32 f32,
        deserialize_f64 visit_f64 f64
    );
    /// A cell is always present: blank stays `Some("")`, as in JSON (use `redcap::de::blank_as_none`).
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, CellError> {
        v.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, CellError> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, CellError> {
        match self.0 {
            Cell::Text(s) => v.visit_enum(IntoDeserializer::<CellError>::into_deserializer(s.into_owned())),
            nested => CellDe(nested).deserialize_any(v),
        }
    }
    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

fn xml<T: DeserializeOwned>(body: &[u8]) -> Result<Vec<T>, DecodeError> {
    let syntax = |e: String| DecodeError::Syntax { format: "xml", reason: e };
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut out: Vec<T> = Vec::new();
    // Depth of the row elements: 2 for `<items><item>…`, 1 when the root is the row (Export
    // Project Info's `<item>…</item>`); unknown until the shape shows.
    let mut row_depth: Option<usize> = None;
    let mut depth = 0usize;
    let mut row: Vec<(String, Cell<'static>)> = Vec::new();
    let mut pending: Option<String> = None;
    let mut field: Option<String> = None;
    let mut nested: Option<Vec<(String, String)>> = None;
    let mut sub: Option<String> = None;
    let mut text = String::new();
    let mut buf = Vec::new();
    let name_of = |e: &[u8]| String::from_utf8_lossy(e).into_owned();
    let finish = |row: &mut Vec<(String, Cell<'static>)>, out: &mut Vec<T>| -> Result<(), DecodeError> {
        let cells = std::mem::take(row).into_iter();
        let t = serde_path_to_error::deserialize(RowDe(cells)).map_err(|e| row_error("xml", out.len(), e))?;
        out.push(t);
        Ok(())
    };
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| syntax(e.to_string()))?;
        match event {
            Event::Start(e) => {
                depth += 1;
                let name = name_of(e.local_name().as_ref());
                match (depth, row_depth) {
                    (1, _) if name == "item" => row_depth = Some(1),
                    (2, None) => pending = Some(name),
                    (3, None) => {
                        row_depth = Some(2);
                        pending = None;
                        field = Some(name);
                    }
                    (d, Some(r)) if d == r + 1 => {
                        field = Some(name);
                        nested = None;
                    }
                    (d, Some(r)) if d == r + 2 => {
                        sub = Some(name);
                        nested.get_or_insert_with(Vec::new);
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Empty(e) => {
                let name = name_of(e.local_name().as_ref());
                match (depth + 1, row_depth) {
                    (2, None) => {
                        row_depth = Some(2);
                        finish(&mut row, &mut out)?;
                    }
                    (d, Some(r)) if d == r => finish(&mut row, &mut out)?,
                    (d, Some(r)) if d == r + 1 => row.push((name, Cell::Text(Cow::Borrowed("")))),
                    (d, Some(r)) if d == r + 2 => nested.get_or_insert_with(Vec::new).push((name, String::new())),
                    _ => {}
                }
            }
            Event::Text(t) => text.push_str(&t.unescape().map_err(|e| syntax(e.to_string()))?),
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                match (depth, row_depth) {
                    (2, None) => {
                        // A leaf under the root: the root is the row, and this was its first field.
                        row_depth = Some(1);
                        if let Some(name) = pending.take() {
                            row.push((name, Cell::Text(Cow::Owned(std::mem::take(&mut text)))));
                        }
                    }
                    (d, Some(r)) if d == r => finish(&mut row, &mut out)?,
                    (d, Some(r)) if d == r + 1 => {
                        if let Some(f) = field.take() {
                            let cell = match nested.take() {
                                Some(pairs) => Cell::Nested(pairs),
                                None => Cell::Text(Cow::Owned(std::mem::take(&mut text))),
                            };
                            row.push((f, cell));
                        }
                    }
                    (d, Some(r)) if d == r + 2 => {
                        if let (Some(s), Some(n)) = (sub.take(), nested.as_mut()) {
                            n.push((s, text.trim().to_owned()));
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
    Ok(out)
}

/// Encodes rows as an import's `data` in `format`: a JSON array of objects, CSV with a header of
/// every column in first-seen order, or XML `<root><item>…</item></root>` (`xml_root` names the root,
/// e.g. `records`, `items`, `users`). Maps (a user's `forms`) become JSON objects, CSV cells
/// `name:value,…` and XML child elements, as REDCap exports them.
pub fn encode<T: Serialize>(format: Format, xml_root: &str, rows: &[T]) -> Result<String, EncodeError> {
    let fail = |index: usize, reason: String| EncodeError::Rows { index, format: format_name(format), reason };
    if format == Format::Json {
        return serde_json::to_string(rows).map_err(|e| fail(0, e.to_string()));
    }
    let objects = objects(rows, format)?;
    match format {
        Format::Csv => {
            let mut columns: Vec<&str> = Vec::new();
            for o in &objects {
                for k in o.keys() {
                    if !columns.contains(&k.as_str()) {
                        columns.push(k);
                    }
                }
            }
            let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
            let err = |e: csv::Error| fail(0, e.to_string());
            w.write_record(&columns).map_err(err)?;
            for (i, o) in objects.iter().enumerate() {
                let cells: Vec<String> = columns.iter().map(|c| o.get(*c).map(cell_text).unwrap_or_default()).collect();
                w.write_record(&cells).map_err(|e| fail(i, e.to_string()))?;
            }
            let bytes = w.into_inner().map_err(|e| fail(0, e.to_string()))?;
            String::from_utf8(bytes).map_err(|e| fail(0, e.to_string()))
        }
        _ => {
            let mut s = format!("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<{xml_root}>\n");
            for (i, o) in objects.iter().enumerate() {
                s.push_str("<item>");
                xml_fields(&mut s, o).map_err(|r| fail(i, r))?;
                s.push_str("</item>\n");
            }
            s.push_str(&format!("</{xml_root}>\n"));
            Ok(s)
        }
    }
}

/// Encodes one object (Import Project Info): a JSON object, CSV header and one row, XML `<item>`.
pub fn encode_one<T: Serialize>(format: Format, row: &T) -> Result<String, EncodeError> {
    match format {
        Format::Json => serde_json::to_string(row).map_err(|e| EncodeError::Rows {
            index: 0,
            format: "json",
            reason: e.to_string(),
        }),
        Format::Csv => encode(format, "", std::slice::from_ref(row)),
        _ => {
            let objects = objects(std::slice::from_ref(row), format)?;
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<item>");
            xml_fields(&mut s, &objects[0]).map_err(|reason| EncodeError::Rows { index: 0, format: "xml", reason })?;
            s.push_str("</item>\n");
            Ok(s)
        }
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Json => "json",
        Format::Csv => "csv",
        Format::Xml => "xml",
        Format::Odm => "odm",
    }
}

fn objects<T: Serialize>(rows: &[T], format: Format) -> Result<Vec<serde_json::Map<String, Value>>, EncodeError> {
    let fail = |index: usize, reason: String| EncodeError::Rows { index, format: format_name(format), reason };
    if format == Format::Odm {
        return Err(fail(0, "ODM is not a row format; send the document as text".into()));
    }
    rows.iter()
        .enumerate()
        .map(|(i, r)| match serde_json::to_value(r) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(fail(i, format!("a row must serialize as a map of columns, not `{other}`"))),
            Err(e) => Err(fail(i, e.to_string())),
        })
        .collect()
}

/// A scalar cell's text; a map as `name:value,…` (REDCap's CSV spelling of `forms`).
fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(cell_text).collect::<Vec<_>>().join(","),
        Value::Object(m) => m.iter().map(|(k, v)| format!("{k}:{}", cell_text(v))).collect::<Vec<_>>().join(","),
    }
}

fn xml_name(name: &str) -> Result<&str, String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok { Ok(name) } else { Err(format!("`{name}` cannot be an XML element name")) }
}

fn xml_fields(s: &mut String, o: &serde_json::Map<String, Value>) -> Result<(), String> {
    for (k, v) in o {
        let k = xml_name(k)?;
        s.push_str(&format!("<{k}>"));
        match v {
            Value::Object(m) => {
                for (sk, sv) in m {
                    let sk = xml_name(sk)?;
                    s.push_str(&format!("<{sk}>{}</{sk}>", quick_xml::escape::escape(cell_text(sv))));
                }
            }
            other => s.push_str(&quick_xml::escape::escape(cell_text(other))),
        }
        s.push_str(&format!("</{k}>"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Arm {
        #[serde(deserialize_with = "crate::de::u64")]
        arm_num: u64,
        name: String,
        #[serde(default, deserialize_with = "crate::de::number_map")]
        forms: BTreeMap<String, u64>,
        #[serde(flatten)]
        extra: serde_json::Map<String, Value>,
    }

    fn arms(format: Format, body: &str) -> Result<Vec<Arm>, DecodeError> {
        decode(format, None, body.as_bytes())
    }

    #[test]
    fn the_same_rows_from_every_format() {
        let json = arms(Format::Json, r#"[{"arm_num":1,"name":"A, b","forms":{"f":1,"g":0},"new":"x"}]"#).unwrap();
        let csv = arms(Format::Csv, "arm_num,name,forms,new\n1,\"A, b\",\"f:1,g:0\",x\n").unwrap();
        let xml = arms(
            Format::Xml,
            "<?xml version=\"1.0\" ?>\n<arms>\n<item><arm_num>1</arm_num><name>A, b</name>\
             <forms><f>1</f><g>0</g></forms><new>x</new></item>\n</arms>",
        )
        .unwrap();
        assert_eq!(json, csv);
        assert_eq!(json, xml);
        assert_eq!(json[0].extra.get("new"), Some(&Value::from("x")));
        assert!(arms(Format::Json, "  ").unwrap().is_empty());
        assert!(arms(Format::Xml, "<items></items>").unwrap().is_empty());
    }

    #[test]
    fn a_single_object_is_one_row() {
        let json = arms(Format::Json, r#"{"arm_num":"2","name":"x"}"#).unwrap();
        let xml =
            arms(Format::Xml, "<?xml version=\"1.0\" ?>\n<item><arm_num>2</arm_num><name>x</name></item>").unwrap();
        let other_root = arms(Format::Xml, "<project><arm_num>2</arm_num><name>x</name></project>").unwrap();
        assert_eq!(json, xml);
        assert_eq!(json, other_root);
    }

    #[test]
    fn errors_name_row_and_column() {
        let e = arms(Format::Json, r#"[{"arm_num":1,"name":"a"},{"arm_num":"x","name":"b"}]"#).unwrap_err();
        assert!(
            matches!(&e, DecodeError::Row { format: "json", index: 1, column: Some(c), .. } if c == "arm_num"),
            "{e:?}"
        );
        assert!(e.to_string().contains("redcap::de"), "{e}");
        let e = arms(Format::Csv, "arm_num,name\n1,a\n2,b\nz,c\n").unwrap_err();
        assert!(
            matches!(&e, DecodeError::Row { format: "csv", index: 2, column: Some(c), .. } if c == "arm_num"),
            "{e:?}"
        );
        let e = arms(Format::Xml, "<items><item><name>a</name></item></items>").unwrap_err();
        assert!(matches!(&e, DecodeError::Row { format: "xml", index: 0, .. }), "{e:?}");
        assert!(matches!(arms(Format::Json, "[{\"arm_num\""), Err(DecodeError::Syntax { .. })));
        assert!(matches!(arms(Format::Json, "[1]"), Err(DecodeError::Row { index: 0, column: None, .. })));
        assert!(matches!(arms(Format::Json, "\"x\""), Err(DecodeError::Unexpected { .. })));
    }

    #[test]
    fn encoded_rows_decode_back() {
        let rows = arms(Format::Json, r#"[{"arm_num":1,"name":"A, \"b\"","forms":{"f":1},"new":"<&>"}]"#).unwrap();
        for format in [Format::Json, Format::Csv, Format::Xml] {
            let text = encode(format, "arms", &rows).unwrap();
            assert_eq!(arms(format, &text).unwrap(), rows, "{format}: {text}");
        }
        let one = encode_one(Format::Xml, &rows[0]).unwrap();
        assert_eq!(arms(Format::Xml, &one).unwrap(), rows);
        assert!(encode(Format::Odm, "x", &rows).is_err());
    }
}
