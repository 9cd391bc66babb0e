//! Request parameters: form fields in request order, `name[<anything>]` arrays, one uploaded file.

use redcap_core::{Format, ReturnFormat, WireEnum};

/// An uploaded `file` part, already streamed to a temp file in the blob directory.
#[derive(Debug)]
pub struct Upload {
    /// The temp file; deleted on drop unless adopted.
    pub path: tempfile::TempPath,
    /// The part's filename.
    pub file_name: String,
    /// The part's Content-Type (may be empty).
    pub content_type: String,
}

/// Parsed parameters of one API call.
#[derive(Debug, Default)]
pub struct Params {
    scalars: Vec<(String, String)>,
    arrays: Vec<(String, Vec<String>)>,
    /// The `file` part, if any.
    pub upload: Option<Upload>,
    /// The request's `Host` header when it is a plain `host[:port]` (links are made under it).
    pub host: Option<String>,
}

impl Params {
    /// Adds one form field, sorting `name[...]` into arrays.
    pub fn push(&mut self, key: String, value: String) {
        if let Some(open) = key.find('[') {
            if key.ends_with(']') && open > 0 {
                let name = &key[..open];
                if let Some((_, list)) = self.arrays.iter_mut().find(|(n, _)| n == name) {
                    list.push(value);
                } else {
                    self.arrays.push((name.to_owned(), vec![value]));
                }
                return;
            }
        }
        self.scalars.push((key, value));
    }

    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn from_urlencoded(body: &[u8]) -> Self {
        let mut p = Params::default();
        for (k, v) in form_urlencoded::parse(body) {
            p.push(k.into_owned(), v.into_owned());
        }
        p
    }

    /// A scalar parameter (the last one wins, as in PHP).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.scalars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A scalar parameter, empty strings treated as absent.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Whether a parameter was sent at all (scalar or array).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some() || self.arrays.iter().any(|(n, _)| n == name)
    }

    /// An array parameter: `name[…]` values in request order, else a scalar split on commas
    /// (REDCap also accepts comma-joined lists). `None` when absent or empty.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        if let Some((_, list)) = self.arrays.iter().find(|(n, _)| n == name) {
            let items: Vec<String> = list.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            return (!items.is_empty()).then_some(items);
        }
        let v = self.get(name)?;
        let items: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        (!items.is_empty()).then_some(items)
    }

    /// A boolean flag: `true`/`1` are true; `false`, `0`, empty or absent are false. Other
    /// spellings (e.g. `True`) are compared case-insensitively (reference §4.3 leaves them open).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name).map(|v| v.trim().to_ascii_lowercase()).as_deref(), Some("true" | "1" | "yes" | "y"))
    }

    /// `format`, defaulting to xml. `Err` holds the bad value.
    pub fn format(&self) -> Result<Format, String> {
        match self.get_nonempty("format") {
            None => Ok(Format::Xml),
            Some(v) => Format::from_wire(v).ok_or_else(|| v.to_owned()),
        }
    }

    /// The format of error bodies: `returnFormat`, else `format`, else xml.
    pub fn error_format(&self) -> ReturnFormat {
        if let Some(rf) = self.get_nonempty("returnFormat").and_then(ReturnFormat::from_wire) {
            return rf;
        }
        match self.get_nonempty("format").and_then(Format::from_wire) {
            Some(f) => f.into(),
            None => ReturnFormat::Xml,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_in_request_order() {
        let p = Params::from_urlencoded(b"fields%5B1%5D=b&fields%5B0%5D=a&records=1,2&x=1&x=2&forms[]=f");
        assert_eq!(p.list("fields").unwrap(), ["b", "a"]);
        assert_eq!(p.list("records").unwrap(), ["1", "2"]);
        assert_eq!(p.list("forms").unwrap(), ["f"]);
        assert_eq!(p.get("x"), Some("2"));
        assert!(p.list("events").is_none());
    }

    #[test]
    fn error_format_order() {
        assert_eq!(Params::from_urlencoded(b"format=csv").error_format(), ReturnFormat::Csv);
        assert_eq!(Params::from_urlencoded(b"format=csv&returnFormat=json").error_format(), ReturnFormat::Json);
        assert_eq!(Params::from_urlencoded(b"format=odm").error_format(), ReturnFormat::Xml);
        assert_eq!(Params::from_urlencoded(b"returnFormat=bogus&format=json").error_format(), ReturnFormat::Json);
        assert_eq!(Params::from_urlencoded(b"").error_format(), ReturnFormat::Xml);
    }

    #[test]
    fn flags() {
        let p = Params::from_urlencoded(b"a=true&b=1&c=false&d=0&e=True&f=");
        assert!(p.flag("a") && p.flag("b") && p.flag("e"));
        assert!(!p.flag("c") && !p.flag("d") && !p.flag("f") && !p.flag("zz"));
    }
}
