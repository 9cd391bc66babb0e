//! Typed report export.

use redcap_core::{CsvDelimiter, DecimalCharacter, EncodeError, Format, RawOrLabel, ReturnFormat};

/// A report id: REDCap's numeric id, checked before any call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportId(pub u64);

impl std::str::FromStr for ReportId {
    type Err = EncodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EncodeError::InvalidValue {
                param: "report_id",
                value: s.to_owned(),
                reason: "a report id is the number shown on the report's page (e.g. 42), not its name".into(),
            });
        }
        t.parse().map(ReportId).map_err(|_| EncodeError::InvalidValue {
            param: "report_id",
            value: s.to_owned(),
            reason: "too large".into(),
        })
    }
}

/// How a report is exported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportOptions {
    /// Values as raw codes (default) or labels.
    pub raw_or_label: Option<RawOrLabel>,
    /// CSV headers as variable names (default) or labels.
    pub raw_or_label_headers: Option<RawOrLabel>,
    /// With labels: checked boxes as their label.
    pub export_checkbox_label: bool,
    /// CSV delimiter.
    pub csv_delimiter: Option<CsvDelimiter>,
    /// Force the decimal mark of numbers.
    pub decimal_character: Option<DecimalCharacter>,
}

impl ReportOptions {
    /// The request for report `id` in `format`.
    pub fn request(&self, id: ReportId, format: Format) -> crate::report::export::Request {
        let mut r = crate::report::export::Request::new(id.0).format(format).return_format(ReturnFormat::Json);
        r.raw_or_label = self.raw_or_label;
        r.raw_or_label_headers = self.raw_or_label_headers;
        r.export_checkbox_label = self.export_checkbox_label;
        r.csv_delimiter = self.csv_delimiter;
        r.decimal_character = self.decimal_character;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_ids_are_numbers() {
        assert_eq!("42".parse::<ReportId>().unwrap(), ReportId(42));
        assert_eq!(" 7 ".parse::<ReportId>().unwrap(), ReportId(7));
        for bad in ["", "R-3788YK8R7X", "4 2", "-1", "1e3"] {
            let e = bad.parse::<ReportId>().unwrap_err();
            assert!(e.to_string().contains("report id"), "{bad}: {e}");
        }
    }
}
