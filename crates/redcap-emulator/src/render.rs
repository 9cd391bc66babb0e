//! Rows to json / csv / xml bodies.

use serde_json::{Map, Value};

/// Content types of success bodies (reference §5.4: only the JSON error header is recorded; these
/// are what clients expect).
pub const JSON: &str = "application/json; charset=utf-8";
/// CSV content type.
pub const CSV: &str = "text/csv; charset=utf-8";
/// XML content type.
pub const XML: &str = "text/xml; charset=utf-8";
/// Bare text bodies (version, counts, next record name, tokens).
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Output format of a data body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    Json,
    Csv(u8),
    Xml,
}

/// A table of values with named columns; values are JSON strings or numbers.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Columns whose non-empty CSV cells REDCap always quotes (see [`Table::always_quote`]).
    pub quoted: Vec<String>,
    /// CSV leaves cells with spaces unquoted (see [`Table::spaces_unquoted`]).
    pub spaces_unquoted: bool,
}

impl Table {
    /// A table with these columns.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Table { columns: columns.into_iter().map(Into::into).collect(), ..Table::default() }
    }

    /// Makes CSV quote the non-empty cells of these columns whatever they hold: REDCap's
    /// recorded event and arm exports quote every event and arm name (`"Intake",1,intake_arm_1,,12357`,
    /// REDCapR test-data projects/arm-single-longitudinal/event.csv) but not the unique names.
    pub fn always_quote(mut self, columns: &[&str]) -> Self {
        self.quoted = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Makes CSV quote a cell only for a delimiter, a quote or a line break, not for a space:
    /// REDCap's recorded repeating setup export has `weight,[weight_date] [weight_time]` (PHPCap's
    /// testImportRepeatingIntrumentsAndEventsWithSuperToken), where record exports quote
    /// `"(405) 321-1111"`.
    pub fn spaces_unquoted(mut self) -> Self {
        self.spaces_unquoted = true;
        self
    }

    /// Adds a row of string values.
    pub fn push_strs<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(row.into_iter().map(|s| Value::String(s.into())).collect());
    }
}

/// Renders `table` (`root`/`item` name the XML elements). Returns (content type, body).
pub fn table(out: Out, t: &Table, root: &str) -> (&'static str, Vec<u8>) {
    let always = t.columns.iter().map(|c| t.quoted.contains(c)).collect();
    (content_type(out), rows_body(out, &t.columns, (always, !t.spaces_unquoted), &t.rows, root))
}

/// The whole body of `rows` through a [`RowWriter`]; `quoting`: the CSV columns always quoted,
/// and whether a space makes a cell quoted.
fn rows_body(out: Out, columns: &[String], quoting: (Vec<bool>, bool), rows: &[Vec<Value>], root: &str) -> Vec<u8> {
    let mut body = Vec::new();
    let mut w = RowWriter::begin(out, columns, root, &mut body);
    (w.always_quoted, w.spaces_quoted) = quoting;
    for r in rows {
        w.row(&mut body, r);
    }
    w.end(&mut body);
    body
}

/// The content type of a body in `out`.
pub fn content_type(out: Out) -> &'static str {
    match out {
        Out::Json => JSON,
        Out::Csv(_) => CSV,
        Out::Xml => XML,
    }
}

/// Writes a table row by row into any buffer, so a body can be sent while it is rendered; the
/// bytes are those of [`table`].
#[derive(Debug)]
pub struct RowWriter<'a> {
    out: Out,
    columns: &'a [String],
    root: &'a str,
    rows: usize,
    /// JSON: each column's `"name":`, escaped once.
    keys: Vec<Vec<u8>>,
    /// CSV: the columns whose non-empty cells are always quoted (see [`Table::always_quote`]).
    always_quoted: Vec<bool>,
    /// CSV: whether a space makes a cell quoted (see [`Table::spaces_unquoted`]).
    spaces_quoted: bool,
}

impl<'a> RowWriter<'a> {
    /// Writes what comes before the first row.
    pub fn begin(out: Out, columns: &'a [String], root: &'a str, buf: &mut Vec<u8>) -> Self {
        match out {
            Out::Json => buf.push(b'['),
            Out::Csv(delim) => csv_line(buf, columns.iter().map(String::as_str), delim),
            Out::Xml => {
                buf.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<");
                buf.extend_from_slice(root.as_bytes());
                buf.extend_from_slice(b">\n");
            }
        }
        let keys = match out {
            Out::Json => columns
                .iter()
                .map(|c| {
                    let mut k = serde_json::to_vec(c).unwrap_or_default();
                    k.push(b':');
                    k
                })
                .collect(),
            _ => Vec::new(),
        };
        RowWriter { out, columns, root, rows: 0, keys, always_quoted: Vec::new(), spaces_quoted: true }
    }

    /// Writes one row (values in column order).
    pub fn row(&mut self, buf: &mut Vec<u8>, row: &[Value]) {
        match self.out {
            Out::Json => {
                if self.rows > 0 {
                    buf.push(b',');
                }
                // The bytes serde_json writes for a Map in column order, without building one.
                buf.push(b'{');
                for (i, (k, v)) in self.keys.iter().zip(row).enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    buf.extend_from_slice(k);
                    let _ = serde_json::to_writer(&mut *buf, v);
                }
                buf.push(b'}');
            }
            Out::Csv(delim) => {
                // (Each cell straight from its value: a vector of them per row was a fifth of
                // the time a CSV answer took more than the same JSON one.)
                csv_line_quoting(buf, row.iter().map(text_cow), delim, &self.always_quoted, self.spaces_quoted);
            }
            Out::Xml => {
                buf.extend_from_slice(b"<item>");
                for (c, v) in self.columns.iter().zip(row) {
                    buf.push(b'<');
                    buf.extend_from_slice(c.as_bytes());
                    buf.push(b'>');
                    match v {
                        // A user's `forms`: one child element per form, as REDCap writes them.
                        Value::Object(m) => {
                            for (k, v) in m {
                                buf.extend_from_slice(format!("<{k}>{}</{k}>", esc(&text_of(v))).as_bytes());
                            }
                        }
                        _ => buf.extend_from_slice(quick_xml::escape::escape(text_cow(v).as_ref()).as_bytes()),
                    }
                    buf.extend_from_slice(b"</");
                    buf.extend_from_slice(c.as_bytes());
                    buf.push(b'>');
                }
                buf.extend_from_slice(b"</item>\n");
            }
        }
        self.rows += 1;
    }

    /// Writes what comes after the last row.
    pub fn end(self, buf: &mut Vec<u8>) {
        match self.out {
            Out::Json => buf.push(b']'),
            Out::Csv(_) => {}
            Out::Xml => {
                buf.extend_from_slice(b"</");
                buf.extend_from_slice(self.root.as_bytes());
                buf.extend_from_slice(b">\n");
            }
        }
    }
}

fn text_cow(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
        Value::Null => std::borrow::Cow::Borrowed(""),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// One CSV line with REDCap's quoting: a value is quoted when it holds the delimiter, a quote, a
/// space or a line break (reference §4.9).
fn csv_line<S: AsRef<str>>(buf: &mut Vec<u8>, cells: impl Iterator<Item = S>, delim: u8) {
    csv_line_quoting(buf, cells, delim, &[], true);
}

/// [`csv_line`], also quoting the non-empty cells whose `always` flag is set; a space makes a
/// cell quoted only with `spaces`.
fn csv_line_quoting<S: AsRef<str>>(
    buf: &mut Vec<u8>,
    cells: impl Iterator<Item = S>,
    delim: u8,
    always: &[bool],
    spaces: bool,
) {
    // The bytes that make a cell quoted, looked up instead of compared one by one.
    let mut quoted = [false; 256];
    for b in [delim, b'"', b'\n', b'\r'].into_iter().chain(spaces.then_some(b' ')) {
        quoted[usize::from(b)] = true;
    }
    for (i, s) in cells.enumerate() {
        let s = s.as_ref();
        if i > 0 {
            buf.push(delim);
        }
        let quote =
            (always.get(i).copied().unwrap_or(false) && !s.is_empty()) || s.bytes().any(|b| quoted[usize::from(b)]);
        if quote {
            buf.push(b'"');
            for b in s.bytes() {
                if b == b'"' {
                    buf.push(b'"');
                }
                buf.push(b);
            }
            buf.push(b'"');
        } else {
            buf.extend_from_slice(s.as_bytes());
        }
    }
    buf.push(b'\n');
}

/// One object (Export Project Info): JSON object, CSV header + row, XML `<item>`.
pub fn single(out: Out, t: &Table) -> (&'static str, Vec<u8>) {
    let row = t.rows.first().cloned().unwrap_or_default();
    match out {
        Out::Json => (JSON, serde_json::to_vec(&Value::Object(object(&t.columns, &row))).unwrap_or_default()),
        Out::Csv(d) => (CSV, csv(&t.columns, std::slice::from_ref(&row), d).into_bytes()),
        Out::Xml => {
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<item>");
            for (c, v) in t.columns.iter().zip(&row) {
                s.push_str(&format!("<{c}>{}</{c}>", esc(&text_of(v))));
            }
            s.push_str("</item>\n");
            (XML, s.into_bytes())
        }
    }
}

fn object(columns: &[String], row: &[Value]) -> Map<String, Value> {
    columns.iter().cloned().zip(row.iter().cloned()).collect()
}

/// A value as text (numbers without quotes).
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// XML text escaping.
pub fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// CSV with REDCap's quoting (see [`csv_line`]).
pub fn csv(columns: &[String], rows: &[Vec<Value>], delim: u8) -> String {
    // Only str pieces were written.
    String::from_utf8(rows_body(Out::Csv(delim), columns, (Vec::new(), true), rows, "")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let mut t = Table::new(["a", "b"]);
        t.rows.push(vec![Value::from(1), Value::from("x, y")]);
        assert_eq!(table(Out::Json, &t, "items").1, br#"[{"a":1,"b":"x, y"}]"#);
        assert_eq!(String::from_utf8(table(Out::Csv(b','), &t, "items").1).unwrap(), "a,b\n1,\"x, y\"\n");
        assert_eq!(String::from_utf8(table(Out::Csv(b'\t'), &t, "items").1).unwrap(), "a\tb\n1\t\"x, y\"\n");
        let xml = String::from_utf8(table(Out::Xml, &t, "items").1).unwrap();
        assert!(xml.contains("<items>\n<item><a>1</a><b>x, y</b></item>\n</items>"));
        t.rows[0][1] = Value::from("<&>");
        assert!(String::from_utf8(table(Out::Xml, &t, "items").1).unwrap().contains("&lt;&amp;&gt;"));
        t.rows[0][1] = serde_json::json!({"demographics": 1, "visit": 0});
        let xml = String::from_utf8(table(Out::Xml, &t, "users").1).unwrap();
        assert!(xml.contains("<b><demographics>1</demographics><visit>0</visit></b>"), "{xml}");
    }
}
