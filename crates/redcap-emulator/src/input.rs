//! The `data` parameter of imports: JSON, CSV or XML rows of name → value.

use quick_xml::events::Event;
use serde_json::Value;

/// One imported row, keys in their original order.
pub type InRow = Vec<(String, String)>;

/// Looks up a key in a row.
pub fn get<'a>(row: &'a InRow, key: &str) -> Option<&'a str> {
    row.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Parses `data` in `format` (`json`, `csv`, `xml`). JSON accepts an array of objects or a single
/// object; numbers and booleans become their text.
pub fn rows(format: &str, data: &str, csv_delim: u8) -> Result<Vec<InRow>, String> {
    match format {
        "json" => json_rows(data),
        "csv" => csv_rows(data, csv_delim),
        "xml" => xml_rows(data),
        other => Err(format!("The value of the parameter \"format\" is not valid: {other}")),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        other => other.to_string(),
    }
}

fn json_rows(data: &str) -> Result<Vec<InRow>, String> {
    let v: Value = serde_json::from_str(data.trim_start_matches('\u{feff}'))
        .map_err(|e| format!("The data you provided is not valid JSON: {e}"))?;
    let objects = match v {
        Value::Array(a) => a,
        o @ Value::Object(_) => vec![o],
        _ => return Err("The data you provided must be a JSON array of objects".into()),
    };
    objects
        .into_iter()
        .map(|o| match o {
            Value::Object(m) => Ok(m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect()),
            _ => Err("The data you provided must be a JSON array of objects".into()),
        })
        .collect()
}

fn csv_rows(data: &str, delim: u8) -> Result<Vec<InRow>, String> {
    let data = data.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new().delimiter(delim).flexible(true).from_reader(data.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("The CSV data could not be parsed: {e}"))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| format!("The CSV data could not be parsed: {e}"))?;
        // Blank lines are ignored on import (since 6.10.0).
        if rec.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        out.push(headers.iter().cloned().zip(rec.iter().map(str::to_owned)).collect());
    }
    Ok(out)
}

/// Deepest element nesting accepted in XML data.
const MAX_XML_DEPTH: usize = 32;

fn xml_rows(data: &str) -> Result<Vec<InRow>, String> {
    // <root><item><a>1</a>…</item>…</root>, or a single <item><a>1</a></item>.
    let mut reader = quick_xml::Reader::from_str(data);
    let mut path: Vec<String> = Vec::new();
    let mut leaves: Vec<(usize, String, String)> = Vec::new();
    let mut text = String::new();
    let mut max_depth = 0;
    loop {
        match reader.read_event().map_err(|e| format!("The XML data could not be parsed: {e}"))? {
            Event::Start(e) => {
                // Rows nest two or three levels; anything much deeper is not REDCap data.
                if path.len() >= MAX_XML_DEPTH {
                    return Err(format!(
                        "The XML data could not be parsed: elements nest deeper than {MAX_XML_DEPTH} levels"
                    ));
                }
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                max_depth = max_depth.max(path.len());
                text.clear();
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                leaves.push((path.len() + 1, name, String::new()));
                max_depth = max_depth.max(path.len() + 1);
            }
            Event::Text(t) => {
                text.push_str(&t.unescape().map_err(|e| format!("The XML data could not be parsed: {e}"))?)
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                let depth = path.len();
                let name = path.pop().unwrap_or_default();
                leaves.push((depth, name, std::mem::take(&mut text)));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    // Field elements are the deepest ones; their parents are rows.
    let field_depth = max_depth;
    let mut rows = Vec::new();
    let mut current: InRow = Vec::new();
    for (depth, name, value) in leaves {
        if depth == field_depth {
            current.push((name, value));
        } else if depth == field_depth - 1 {
            rows.push(std::mem::take(&mut current));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_formats() {
        let j = rows("json", r#"[{"record_id":1,"a":"x"}]"#, b',').unwrap();
        assert_eq!(j, vec![vec![("record_id".into(), "1".into()), ("a".into(), "x".into())]]);
        assert_eq!(rows("json", r#"{"project_title":"t"}"#, b',').unwrap().len(), 1);
        let c = rows("csv", "record_id;a\n1;\"x;y\"\n\n", b';').unwrap();
        assert_eq!(c, vec![vec![("record_id".into(), "1".into()), ("a".into(), "x;y".into())]]);
        let x = rows("xml", "<records><item><record_id>1</record_id><a/></item><item><record_id>2</record_id><a>&lt;</a></item></records>", b',').unwrap();
        assert_eq!(x.len(), 2);
        assert_eq!(get(&x[1], "a"), Some("<"));
        let one = rows("xml", "<?xml version=\"1.0\"?><item><project_title>T</project_title></item>", b',').unwrap();
        assert_eq!(get(&one[0], "project_title"), Some("T"));
        assert!(rows("json", "{", b',').is_err());
    }
}
