//! The request body: ordered form fields, rendered as `application/x-www-form-urlencoded` or as a
//! `multipart/form-data` envelope whose file part is streamed by the transport.

use std::fmt;

use bytes::Bytes;

use crate::error::EncodeError;
use crate::param::{BoolWire, ParamInfo, ParamValue, Shape, ValueType};
use crate::upload::Upload;

fn type_mismatch(info: &ParamInfo, expected: &str) -> EncodeError {
    EncodeError::InvalidValue { param: info.name, value: String::new(), reason: format!("expected {expected}") }
}

/// One form field.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormField {
    /// Text.
    Text(String),
    /// A file part.
    File(Upload),
}

/// Ordered form fields of one request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, FormField)>,
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (name, value) in &self.fields {
            match value {
                FormField::Text(_) if name == "token" => list.entry(&(name, "[redacted]")),
                FormField::Text(v) => list.entry(&(name, v)),
                FormField::File(u) => list.entry(&(name, u)),
            };
        }
        list.finish()
    }
}

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a text field as is.
    pub fn push_text(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), FormField::Text(value.into())));
    }

    /// The fields in order.
    pub fn fields(&self) -> &[(String, FormField)] {
        &self.fields
    }

    /// The first text value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find_map(|(n, v)| match v {
            FormField::Text(t) if n == name => Some(t.as_str()),
            _ => None,
        })
    }

    /// The file part, if any.
    pub fn upload(&self) -> Option<(&str, &Upload)> {
        self.fields.iter().find_map(|(n, v)| match v {
            FormField::File(u) => Some((n.as_str(), u)),
            _ => None,
        })
    }

    /// Writes one parameter according to its descriptor: omission of absent values and false
    /// flags, allowed spellings, array shape, flag spelling.
    pub fn put(&mut self, info: &ParamInfo, value: ParamValue) -> Result<(), EncodeError> {
        let missing = || EncodeError::MissingParam { param: info.name };
        match value {
            ParamValue::Absent => {
                if info.required {
                    return Err(missing());
                }
            }
            ParamValue::Bool(b) => {
                let ValueType::Bool(wire) = info.ty else {
                    return Err(type_mismatch(info, "a flag"));
                };
                match (wire, b) {
                    (BoolWire::Presence, false) => {}
                    (BoolWire::Presence, true) => self.push_text(info.name, "1"),
                    (_, false) if !info.always && !info.required => {}
                    (BoolWire::TrueFalse, b) => self.push_text(info.name, if b { "true" } else { "false" }),
                    (BoolWire::OneZero, b) => self.push_text(info.name, if b { "1" } else { "0" }),
                }
            }
            ParamValue::Text(text) => {
                if info.shape != Shape::Scalar {
                    return self.put(info, ParamValue::List(vec![text]));
                }
                check_value(info, &text)?;
                self.push_text(info.name, text);
            }
            ParamValue::List(items) => {
                if items.is_empty() {
                    if info.required {
                        return Err(missing());
                    }
                    return Ok(());
                }
                for item in &items {
                    check_value(info, item)?;
                }
                match info.shape {
                    Shape::Indexed => {
                        // `name[i]`, built without the formatting machinery (itoa): a batch of
                        // a thousand records is a thousand of these.
                        self.fields.reserve(items.len());
                        let mut digits = itoa::Buffer::new();
                        for (i, item) in items.into_iter().enumerate() {
                            let i = digits.format(i);
                            let mut key = String::with_capacity(info.name.len() + i.len() + 2);
                            key.push_str(info.name);
                            key.push('[');
                            key.push_str(i);
                            key.push(']');
                            self.push_text(key, item);
                        }
                    }
                    Shape::Comma => {
                        if let Some(bad) = items.iter().find(|s| s.contains(',')) {
                            return Err(EncodeError::InvalidValue {
                                param: info.name,
                                value: bad.clone(),
                                reason: "a value in a comma-separated list cannot contain a comma".into(),
                            });
                        }
                        self.push_text(info.name, items.join(","));
                    }
                    Shape::Scalar => {
                        if items.len() > 1 {
                            return Err(type_mismatch(info, "one value"));
                        }
                        let item = items.into_iter().next().unwrap_or_default();
                        self.push_text(info.name, item);
                    }
                }
            }
            ParamValue::File(upload) => {
                if info.ty != ValueType::File {
                    return Err(type_mismatch(info, "a file"));
                }
                if self.upload().is_some() {
                    return Err(EncodeError::InvalidValue {
                        param: info.name,
                        value: upload.file_name,
                        reason: "only one file can be uploaded per request".into(),
                    });
                }
                self.fields.push((info.name.to_owned(), FormField::File(upload)));
            }
        }
        Ok(())
    }

    /// Renders `application/x-www-form-urlencoded`. Fails if the form holds a file.
    pub fn to_urlencoded(&self) -> Result<Bytes, EncodeError> {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.fields {
            match value {
                FormField::Text(t) => {
                    ser.append_pair(name, t);
                }
                FormField::File(_) => return Err(EncodeError::FileNeedsMultipart),
            }
        }
        Ok(Bytes::from(ser.finish()))
    }

    /// Renders the multipart envelope around the (unread) file part. Text fields come first, the
    /// file part last, so the transport can stream `head`, the file, then `tail`.
    pub fn to_multipart(&self, boundary: &str) -> Multipart {
        let mut head = String::new();
        let mut upload = None;
        for (name, value) in &self.fields {
            match value {
                FormField::Text(t) => {
                    head.push_str(&format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{t}\r\n",
                        escape_quoted(name)
                    ));
                }
                FormField::File(u) => upload = Some((name.clone(), u.clone())),
            }
        }
        let tail;
        if let Some((name, u)) = &upload {
            head.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                escape_quoted(name),
                escape_quoted(&u.file_name),
                u.content_type
            ));
            tail = format!("\r\n--{boundary}--\r\n");
        } else {
            tail = format!("--{boundary}--\r\n");
        }
        Multipart {
            boundary: boundary.to_owned(),
            head: Bytes::from(head),
            upload: upload.map(|(_, u)| u),
            tail: Bytes::from(tail),
        }
    }
}

/// Quoted-string escaping of the HTML form-data algorithm: `"` → `%22`, CR → `%0D`, LF → `%0A`.
fn escape_quoted(s: &str) -> String {
    s.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

/// A `multipart/form-data` body: `head`, then the upload's bytes (if any), then `tail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multipart {
    boundary: String,
    head: Bytes,
    upload: Option<Upload>,
    tail: Bytes,
}

impl Multipart {
    /// The `Content-Type` header value.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The boundary.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// Everything before the file's bytes.
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// The file to stream between `head` and `tail`.
    pub fn upload(&self) -> Option<&Upload> {
        self.upload.as_ref()
    }

    /// Everything after the file's bytes.
    pub fn tail(&self) -> &Bytes {
        &self.tail
    }

    /// The total length, given the file's length.
    pub fn content_length(&self, file_len: u64) -> u64 {
        self.head.len() as u64 + file_len + self.tail.len() as u64
    }
}

fn check_value(info: &ParamInfo, value: &str) -> Result<(), EncodeError> {
    let invalid = |reason: String| EncodeError::InvalidValue { param: info.name, value: value.to_owned(), reason };
    if let Some(allowed) = info.allowed_values() {
        if !allowed.contains(&value) {
            return Err(invalid(format!("expected one of: {}", allowed.join(", "))));
        }
    }
    match info.ty {
        ValueType::Int if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) => {
            Err(invalid("expected a whole number".into()))
        }
        ValueType::Timestamp if !matches_pattern(value, "dddd-dd-dd dd:dd:dd") => {
            Err(invalid("expected YYYY-MM-DD HH:MM:SS".into()))
        }
        ValueType::Minute if !matches_pattern(value, "dddd-dd-dd dd:dd") => {
            Err(invalid("expected YYYY-MM-DD HH:MM".into()))
        }
        _ => Ok(()),
    }
}

fn matches_pattern(value: &str, pattern: &str) -> bool {
    value.len() == pattern.len()
        && value.bytes().zip(pattern.bytes()).all(|(v, p)| if p == b'd' { v.is_ascii_digit() } else { v == p })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::ValueType;

    const RECORDS: ParamInfo = ParamInfo { shape: Shape::Indexed, ..ParamInfo::new("records", ValueType::String) };

    #[test]
    fn indexed_arrays_and_omission() {
        let mut form = Form::new();
        form.put(&RECORDS, ParamValue::List(vec!["1".into(), "a b".into()])).unwrap();
        form.put(&RECORDS, ParamValue::List(vec![])).unwrap();
        form.put(&RECORDS, ParamValue::Absent).unwrap();
        assert_eq!(&form.to_urlencoded().unwrap()[..], b"records%5B0%5D=1&records%5B1%5D=a+b");
    }

    #[test]
    fn indexed_keys_count_in_decimal_past_one_digit() {
        let mut form = Form::new();
        let ids: Vec<String> = (0..1235).map(|i| format!("r{i}")).collect();
        form.put(&RECORDS, ParamValue::List(ids)).unwrap();
        let names: Vec<&str> = form.fields().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "records[0]");
        assert_eq!(names[9], "records[9]");
        assert_eq!(names[10], "records[10]");
        assert_eq!(names[100], "records[100]");
        assert_eq!(names[1234], "records[1234]");
        assert_eq!(form.get("records[1234]"), Some("r1234"));
    }

    #[test]
    fn flags() {
        let flag = ParamInfo::new("exportSurveyFields", ValueType::Bool(BoolWire::TrueFalse));
        let all = ParamInfo::new("allRecords", ValueType::Bool(BoolWire::Presence));
        let logging =
            ParamInfo { always: true, ..ParamInfo::new("delete_logging", ValueType::Bool(BoolWire::OneZero)) };
        let mut form = Form::new();
        form.put(&flag, ParamValue::Bool(false)).unwrap();
        form.put(&all, ParamValue::Bool(false)).unwrap();
        assert!(form.fields().is_empty(), "false optional flags and allRecords=false are omitted");
        form.put(&flag, ParamValue::Bool(true)).unwrap();
        form.put(&all, ParamValue::Bool(true)).unwrap();
        form.put(&logging, ParamValue::Bool(false)).unwrap();
        assert_eq!(&form.to_urlencoded().unwrap()[..], b"exportSurveyFields=true&allRecords=1&delete_logging=0");
    }

    #[test]
    fn values_are_checked() {
        let format =
            ParamInfo { allowed: &["json", "csv", "xml"], ..ParamInfo::new("format", ValueType::Enum("Format")) };
        let err = Form::new().put(&format, ParamValue::Text("odm".into())).unwrap_err();
        assert_eq!(err.to_string(), "parameter `format`: `odm` is not accepted (expected one of: json, csv, xml)");
        let int = ParamInfo::new("doc_id", ValueType::Int);
        assert!(Form::new().put(&int, ParamValue::Text("12a".into())).is_err());
        let ts = ParamInfo::new("dateRangeBegin", ValueType::Timestamp);
        assert!(Form::new().put(&ts, ParamValue::Text("2024-01-02 03:04:05".into())).is_ok());
        assert!(Form::new().put(&ts, ParamValue::Text("2024-01-02".into())).is_err());
        let req = ParamInfo { required: true, ..ParamInfo::new("record", ValueType::String) };
        assert_eq!(
            Form::new().put(&req, ParamValue::Absent).unwrap_err().to_string(),
            "the required parameter `record` is missing"
        );
    }

    #[test]
    fn multipart_envelope() {
        let file = ParamInfo::new("file", ValueType::File);
        let mut form = Form::new();
        form.push_text("content", "fileRepository");
        form.put(&file, ParamValue::File(Upload::from_bytes("a\"b.txt", &b"hello"[..]))).unwrap();
        assert_eq!(form.to_urlencoded(), Err(EncodeError::FileNeedsMultipart));
        let mp = form.to_multipart("XyZ");
        assert_eq!(
            std::str::from_utf8(mp.head()).unwrap(),
            "--XyZ\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nfileRepository\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a%22b.txt\"\r\nContent-Type: text/plain\r\n\r\n"
        );
        assert_eq!(&mp.tail()[..], b"\r\n--XyZ--\r\n");
        assert_eq!(mp.content_length(5), (mp.head().len() + 5 + mp.tail().len()) as u64);
        assert_eq!(mp.content_type(), "multipart/form-data; boundary=XyZ");
    }

    #[test]
    fn debug_redacts_token() {
        let mut form = Form::new();
        form.push_text("token", "0123456789ABCDEF0123456789ABCDEF");
        assert!(!format!("{form:?}").contains("0123456789ABCDEF"));
    }
}
