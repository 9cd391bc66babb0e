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
}

impl Table {
    /// A table with these columns.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Table { columns: columns.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Adds a row of string values.
    pub fn push_strs<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(row.into_iter().map(|s| Value::String(s.into())).collect());
    }
}

/// Renders `table` (`root`/`item` name the XML elements). Returns (content type, body).
pub fn table(out: Out, t: &Table, root: &str) -> (&'static str, Vec<u8>) {
    match out {
        Out::Json => {
            let arr: Vec<Value> = t.rows.iter().map(|r| Value::Object(object(&t.columns, r))).collect();
            (JSON, serde_json::to_vec(&arr).unwrap_or_default())
        }
        Out::Csv(delim) => (CSV, csv(&t.columns, &t.rows, delim).into_bytes()),
        Out::Xml => {
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n");
            s.push_str(&format!("<{root}>\n"));
            for r in &t.rows {
                s.push_str("<item>");
                for (c, v) in t.columns.iter().zip(r) {
                    s.push_str(&format!("<{c}>{}</{c}>", esc(&text_of(v))));
                }
                s.push_str("</item>\n");
            }
            s.push_str(&format!("</{root}>\n"));
            (XML, s.into_bytes())
        }
    }
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

/// CSV with REDCap's quoting: a value is quoted when it holds the delimiter, a quote, a space or
/// a line break (reference §4.9).
pub fn csv(columns: &[String], rows: &[Vec<Value>], delim: u8) -> String {
    let d = delim as char;
    let cell = |s: &str| -> String {
        if s.contains(d) || s.contains('"') || s.contains(' ') || s.contains('\n') || s.contains('\r') {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut out = String::new();
    let line = |cells: Vec<String>| cells.join(&d.to_string());
    out.push_str(&line(columns.iter().map(|c| cell(c)).collect()));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(|v| cell(&text_of(v))).collect()));
        out.push('\n');
    }
    out
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
    }
}
