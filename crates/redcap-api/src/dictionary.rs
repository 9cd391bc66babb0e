//! Reading the packed columns of a data dictionary [`Field`]: its choices, its validation and a
//! slider's labels (the forms REDCap's data dictionary documents).

use crate::rows::{Field, FieldType, Validation};

/// One choice of a drop-down, radio or checkbox field: the code stored and exported, and the
/// label shown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Choice {
    /// The raw value (`1`); a checkbox exports it as the column `<field>___<code>`.
    pub code: String,
    /// The label (`Yes`), which may hold HTML.
    pub label: String,
}

impl Choice {
    /// A choice.
    pub fn new(code: impl Into<String>, label: impl Into<String>) -> Self {
        Choice { code: code.into(), label: label.into() }
    }
}

/// Parses REDCap's choices text: `1, Yes | 0, No`. Choices are separated by `|` (or by line
/// breaks, as they are typed in the Online Designer); the code ends at the first comma and both
/// parts are trimmed. A choice without a comma is its own code and label.
pub fn parse_choices(text: &str) -> Vec<Choice> {
    text.split(['|', '\n'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| match c.split_once(',') {
            Some((code, label)) => Choice::new(code.trim(), label.trim()),
            None => Choice::new(c, c),
        })
        .collect()
}

impl Field {
    /// The choices of a drop-down, radio or checkbox field; the fixed codes of yes/no (`1` Yes,
    /// `0` No) and true/false (`1` True, `0` False) fields; empty for every other field (a calc
    /// field's column holds its equation, a slider's its labels, a dynamic SQL field's a query).
    pub fn choices(&self) -> Vec<Choice> {
        match self.field_type {
            FieldType::Dropdown | FieldType::Radio | FieldType::Checkbox => {
                self.select_choices_or_calculations.as_deref().map(parse_choices).unwrap_or_default()
            }
            FieldType::YesNo => vec![Choice::new("1", "Yes"), Choice::new("0", "No")],
            FieldType::TrueFalse => vec![Choice::new("1", "True"), Choice::new("0", "False")],
            _ => Vec::new(),
        }
    }

    /// The validation of a text field (or `signature` on a file field); `None` when there is
    /// none, and for a slider, whose column only says whether it shows its number.
    pub fn validation(&self) -> Option<Validation> {
        if self.field_type == FieldType::Slider {
            return None;
        }
        self.text_validation_type_or_show_slider_number.as_deref().map(str::trim).map(Validation::from)
    }

    /// The equation of a calc field.
    pub fn calculation(&self) -> Option<&str> {
        match self.field_type {
            FieldType::Calc => self.select_choices_or_calculations.as_deref(),
            _ => None,
        }
    }

    /// A slider's labels: left, middle and right (`Low | Medium | High`; any may be blank).
    pub fn slider_labels(&self) -> Option<[String; 3]> {
        if self.field_type != FieldType::Slider {
            return None;
        }
        let text = self.select_choices_or_calculations.as_deref().unwrap_or_default();
        let mut parts = text.split('|').map(|s| s.trim().to_owned());
        Some([parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default()])
    }

    /// Whether a slider shows its number (the validation column holds `number`).
    pub fn slider_shows_number(&self) -> bool {
        self.field_type == FieldType::Slider
            && self.text_validation_type_or_show_slider_number.as_deref().map(str::trim) == Some("number")
    }

    /// The export column names of the field: `<field>___<code>` per choice for a checkbox (codes
    /// lower-cased, as REDCap names them), the field name otherwise; none for a descriptive field.
    pub fn export_columns(&self) -> Vec<String> {
        match self.field_type {
            FieldType::Checkbox => self
                .choices()
                .iter()
                .map(|c| format!("{}___{}", self.field_name, c.code.to_ascii_lowercase().replace(['-', '.'], "_")))
                .collect(),
            FieldType::Descriptive => Vec::new(),
            _ => vec![self.field_name.clone()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(ty: &str, choices: &str, validation: &str) -> Field {
        let mut f = Field::new("f", "form_1", FieldType::from(ty), "F");
        f.select_choices_or_calculations = (!choices.is_empty()).then(|| choices.to_owned());
        f.text_validation_type_or_show_slider_number = (!validation.is_empty()).then(|| validation.to_owned());
        f
    }

    #[test]
    fn choices_in_both_styles() {
        let want = vec![Choice::new("1", "Yes"), Choice::new("0", "No, never")];
        assert_eq!(field("radio", "1, Yes | 0, No, never", "").choices(), want);
        assert_eq!(field("dropdown", "1,Yes|0,No, never", "").choices(), want);
        assert_eq!(field("checkbox", "1, Yes\n0, No, never\n", "").choices(), want);
        assert_eq!(field("yesno", "", "").choices(), vec![Choice::new("1", "Yes"), Choice::new("0", "No")]);
        assert!(field("calc", "3+4", "").choices().is_empty());
        assert_eq!(field("calc", "3+4", "").calculation(), Some("3+4"));
        assert!(field("slider", "Low | Mid | High", "number").choices().is_empty());
    }

    #[test]
    fn validation_and_sliders() {
        assert_eq!(field("text", "", "date_ymd").validation(), Some(Validation::DateYmd));
        assert_eq!(field("text", "", "number_2dp_comma_decimal").validation(), Some(Validation::Number2dpCommaDecimal));
        assert_eq!(field("text", "", "my_site_rule").validation(), Some(Validation::Other("my_site_rule".into())));
        assert_eq!(field("text", "", "").validation(), None);
        let slider = field("slider", "Low | | High", "number");
        assert_eq!(slider.validation(), None);
        assert!(slider.slider_shows_number());
        assert_eq!(slider.slider_labels(), Some(["Low".into(), String::new(), "High".into()]));
        assert_eq!(field("file", "", "signature").validation(), Some(Validation::Signature));
    }

    #[test]
    fn checkbox_export_columns() {
        assert_eq!(field("checkbox", "1, A | 2, B", "").export_columns(), ["f___1", "f___2"]);
        assert!(field("descriptive", "", "").export_columns().is_empty());
    }
}
