//! What a field's values are, decided from the data dictionary's field type and validation, and
//! the Arrow type each kind becomes.

use std::sync::Arc;

use arrow_schema::{DataType, TimeUnit};
use redcap_api::rows::{Field, FieldType, Validation};

/// How a time field writes its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeForm {
    /// `HH:MM` (`time`, `time_hh_mm`).
    HoursMinutes,
    /// `HH:MM:SS` (`time_hh_mm_ss`).
    HoursMinutesSeconds,
    /// `MM:SS` (`time_mm_ss`): minutes and seconds, stored as that many seconds after midnight.
    MinutesSeconds,
}

/// The kind of values a field holds, which decides its column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldKind {
    /// Free text, notes, file names, the record id, dynamic SQL fields, and validations that
    /// are formats of text (email, phone, zip codes …): `Utf8`.
    Text,
    /// `integer` text fields and sliders: `Int64`.
    Integer,
    /// `number`, `number_Ndp` and calculated fields: `Float64`. `comma`: the field's decimal mark
    /// is a comma (`number_comma_decimal`, `number_Ndp_comma_decimal`), so `1,5` is 1.5.
    Number {
        /// The decimal mark is a comma (a dot is accepted too).
        comma: bool,
        /// The fixed number of decimals of `number_Ndp` fields.
        decimals: Option<u8>,
    },
    /// `date_ymd`, `date_mdy`, `date_dmy` (REDCap exports all as `YYYY-MM-DD`): `Date32`.
    Date,
    /// `datetime_*` and `datetime_seconds_*` (exported `YYYY-MM-DD HH:MM[:SS]`, the server's local
    /// time, no zone): `Timestamp(Millisecond, None)` (Parquet's TIMESTAMP(MILLIS): seconds are
    /// not a Parquet unit, and readers other than Arrow's would see bare integers).
    DateTime {
        /// The validation keeps seconds.
        seconds: bool,
    },
    /// `time`, `time_hh_mm_ss`, `time_mm_ss`: `Time32(Millisecond)` (Parquet's TIME(MILLIS)).
    Time(TimeForm),
    /// `yesno` and `truefalse` (`1`/`0`): `Boolean`.
    Boolean,
    /// `radio`, `dropdown` and `<form>_complete`: the code, dictionary-encoded over the field's
    /// codes in the dictionary's order.
    Choice,
    /// `checkbox`: one `Boolean` column per choice.
    Checkbox,
    /// `descriptive` fields hold no data and get no column.
    Descriptive,
}

impl FieldKind {
    /// The kind of a dictionary field, from its type and validation. Unknown types and
    /// validations are text: nothing is lost, and the validation is in the column's metadata.
    pub fn of(field: &Field) -> FieldKind {
        FieldKind::of_parts(&field.field_type, field.validation().as_ref())
    }

    /// The kind of a field of `field_type` with `validation`.
    pub fn of_parts(field_type: &FieldType, validation: Option<&Validation>) -> FieldKind {
        match field_type {
            FieldType::YesNo | FieldType::TrueFalse => FieldKind::Boolean,
            FieldType::Radio | FieldType::Dropdown => FieldKind::Choice,
            FieldType::Checkbox => FieldKind::Checkbox,
            FieldType::Slider => FieldKind::Integer,
            FieldType::Calc => FieldKind::Number { comma: false, decimals: None },
            FieldType::Descriptive => FieldKind::Descriptive,
            FieldType::Text => validation.map_or(FieldKind::Text, FieldKind::of_validation),
            _ => FieldKind::Text,
        }
    }

    /// The kind of a text field with `validation`.
    pub fn of_validation(validation: &Validation) -> FieldKind {
        use Validation as V;
        let number = |comma, decimals| FieldKind::Number { comma, decimals };
        match validation {
            V::Integer => FieldKind::Integer,
            V::Number => number(false, None),
            V::Number1dp => number(false, Some(1)),
            V::Number2dp => number(false, Some(2)),
            V::Number3dp => number(false, Some(3)),
            V::Number4dp => number(false, Some(4)),
            V::NumberCommaDecimal => number(true, None),
            V::Number1dpCommaDecimal => number(true, Some(1)),
            V::Number2dpCommaDecimal => number(true, Some(2)),
            V::Number3dpCommaDecimal => number(true, Some(3)),
            V::Number4dpCommaDecimal => number(true, Some(4)),
            V::DateYmd | V::DateMdy | V::DateDmy => FieldKind::Date,
            V::DatetimeYmd | V::DatetimeMdy | V::DatetimeDmy => FieldKind::DateTime { seconds: false },
            V::DatetimeSecondsYmd | V::DatetimeSecondsMdy | V::DatetimeSecondsDmy => {
                FieldKind::DateTime { seconds: true }
            }
            V::Time => FieldKind::Time(TimeForm::HoursMinutes),
            V::TimeHhMmSs => FieldKind::Time(TimeForm::HoursMinutesSeconds),
            V::TimeMmSs => FieldKind::Time(TimeForm::MinutesSeconds),
            _ => FieldKind::Text,
        }
    }

    /// The Arrow type of the field's value column (`None` for descriptive fields; checkboxes
    /// give the type of each choice's column).
    pub fn data_type(self) -> Option<DataType> {
        Some(match self {
            FieldKind::Text => DataType::Utf8,
            FieldKind::Integer => DataType::Int64,
            FieldKind::Number { .. } => DataType::Float64,
            FieldKind::Date => DataType::Date32,
            FieldKind::DateTime { .. } => DataType::Timestamp(TimeUnit::Millisecond, None),
            FieldKind::Time(_) => DataType::Time32(TimeUnit::Millisecond),
            FieldKind::Boolean | FieldKind::Checkbox => DataType::Boolean,
            FieldKind::Choice => dictionary_type(),
            FieldKind::Descriptive => return None,
        })
    }
}

/// The type of dictionary-encoded columns (choice codes and labels, missing-data codes).
pub fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// A shared handle to an Arrow field.
pub type FieldRef = Arc<arrow_schema::Field>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validations_decide_the_kind() {
        let cases = [
            ("text", "", FieldKind::Text),
            ("text", "email", FieldKind::Text),
            ("text", "integer", FieldKind::Integer),
            ("text", "number", FieldKind::Number { comma: false, decimals: None }),
            ("text", "number_2dp", FieldKind::Number { comma: false, decimals: Some(2) }),
            ("text", "number_comma_decimal", FieldKind::Number { comma: true, decimals: None }),
            ("text", "number_3dp_comma_decimal", FieldKind::Number { comma: true, decimals: Some(3) }),
            ("text", "date_dmy", FieldKind::Date),
            ("text", "date_ymd", FieldKind::Date),
            ("text", "datetime_mdy", FieldKind::DateTime { seconds: false }),
            ("text", "datetime_seconds_ymd", FieldKind::DateTime { seconds: true }),
            ("text", "time", FieldKind::Time(TimeForm::HoursMinutes)),
            ("text", "time_hh_mm_ss", FieldKind::Time(TimeForm::HoursMinutesSeconds)),
            ("text", "time_mm_ss", FieldKind::Time(TimeForm::MinutesSeconds)),
            ("text", "number_xdp", FieldKind::Text),
            ("notes", "", FieldKind::Text),
            ("file", "", FieldKind::Text),
            ("file", "signature", FieldKind::Text),
            ("sql", "", FieldKind::Text),
            ("slider", "number", FieldKind::Integer),
            ("text", "a_validation_of_tomorrow", FieldKind::Text),
            ("calc", "", FieldKind::Number { comma: false, decimals: None }),
            ("yesno", "", FieldKind::Boolean),
            ("truefalse", "", FieldKind::Boolean),
            ("radio", "", FieldKind::Choice),
            ("dropdown", "autocomplete", FieldKind::Choice),
            ("checkbox", "", FieldKind::Checkbox),
            ("descriptive", "", FieldKind::Descriptive),
        ];
        for (t, v, want) in cases {
            let v = (!v.is_empty()).then(|| Validation::from(v));
            assert_eq!(FieldKind::of_parts(&FieldType::from(t), v.as_ref()), want, "{t} / {v:?}");
        }
    }
}
