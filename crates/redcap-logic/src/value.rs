//! Runtime values.

use std::borrow::Cow;
use std::fmt;

/// The result of evaluating an expression (or a sub-expression).
///
/// REDCap stores every field value as text, so field values arrive as [`Value::Text`] even when
/// they look numeric; operators decide per use whether text "looks numeric" (see
/// [`Value::as_number`]).
///
/// **Blank.** An absent value and the empty string are the same thing in REDCap (there is no
/// "null" distinct from `''`), so both are represented as [`Value::Blank`]: a field with no
/// value, the literal `''` or `""`, and `Text` built from an empty string via `From`. A `Text`
/// value produced by this crate is never empty.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value: a missing or empty field, `''`, or the result of arithmetic on blanks.
    Blank,
    /// A number (always finite).
    Number(f64),
    /// A non-empty string.
    Text(String),
    /// The result of a comparison, `and`, `or`, `not` or a predicate function.
    Bool(bool),
}

impl Value {
    /// Whether this is [`Value::Blank`].
    pub fn is_blank(&self) -> bool {
        matches!(self, Value::Blank)
    }

    /// The numeric reading of this value, if it has one: numbers as is, booleans as 1 / 0,
    /// and text that looks like a number in PHP's sense (optional surrounding whitespace,
    /// optional sign, digits with an optional decimal point, optional exponent: `"10"`,
    /// `" -2.5 "`, `".5"`, `"1e3"`; not `"0x1A"`, `"inf"` or `"1,5"`). Blank has none.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Blank => None,
            Value::Number(n) => Some(*n),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Text(s) => parse_numeric(s),
        }
    }

    /// How the value reads as a condition: blank is false, a boolean is itself, a number (or
    /// numeric text such as a yes/no field's `"0"` / `"1"`) is true when non-zero, and any
    /// other non-empty text is true.
    ///
    /// Numeric text is read as a number (so `"0.0"` is false, unlike PHP where only `""` and
    /// `"0"` are falsy) because REDCap values are text and a stored `0.0` means zero.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Blank => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0,
            Value::Text(s) => parse_numeric(s).is_none_or(|n| n != 0.0),
        }
    }

    /// The text form used by string comparisons and text functions (same as `Display`).
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            Value::Blank => Cow::Borrowed(""),
            Value::Text(s) => Cow::Borrowed(s),
            Value::Number(n) => Cow::Owned(format_number(*n)),
            Value::Bool(b) => Cow::Borrowed(if *b { "1" } else { "0" }),
        }
    }

    /// A number, or blank when it is not finite (REDCap yields no value for `NaN`).
    pub(crate) fn number(n: f64) -> Value {
        if n.is_finite() { Value::Number(n) } else { Value::Blank }
    }
}

impl fmt::Display for Value {
    /// Formats the value as REDCap would store it: blank as the empty string, whole numbers
    /// without a decimal point (`3`, not `3.0`), other numbers in their shortest exact form,
    /// and booleans as `1` / `0` (the values of yes/no and checkbox fields).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl From<&str> for Value {
    /// Text, or [`Value::Blank`] for the empty string.
    fn from(s: &str) -> Self {
        if s.is_empty() { Value::Blank } else { Value::Text(s.to_owned()) }
    }
}

impl From<String> for Value {
    /// Text, or [`Value::Blank`] for the empty string.
    fn from(s: String) -> Self {
        if s.is_empty() { Value::Blank } else { Value::Text(s) }
    }
}

impl From<f64> for Value {
    /// A number, or [`Value::Blank`] when it is not finite.
    fn from(n: f64) -> Self {
        Value::number(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Formats a number without a trailing `.0` for whole values.
pub(crate) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        // `as i64` also turns -0.0 into 0.
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// PHP-style `is_numeric` followed by the conversion.
pub(crate) fn parse_numeric(s: &str) -> Option<f64> {
    let t = s.trim();
    let b = t.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_end = digits(i);
    let mut mantissa_digits = int_end - i;
    i = int_end;
    if i < b.len() && b[i] == b'.' {
        let frac_end = digits(i + 1);
        mantissa_digits += frac_end - (i + 1);
        i = frac_end;
    }
    if mantissa_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_end = digits(i);
        if exp_end == i {
            return None;
        }
        i = exp_end;
    }
    if i != b.len() {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_detection_follows_php() {
        for (s, n) in [("10", 10.0), (" -2.5 ", -2.5), (".5", 0.5), ("5.", 5.0), ("+3", 3.0), ("1e3", 1000.0)] {
            assert_eq!(parse_numeric(s), Some(n), "{s:?}");
        }
        for s in ["", " ", "-", ".", "abc", "0x1A", "inf", "NaN", "1,5", "1e", "1.2.3", "10a", "e5"] {
            assert_eq!(parse_numeric(s), None, "{s:?}");
        }
    }

    #[test]
    fn number_formatting() {
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(-0.0), "0");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(-12.5), "-12.5");
        assert_eq!(format_number(1e20), "100000000000000000000");
    }

    #[test]
    fn truthiness() {
        assert!(!Value::Blank.is_truthy());
        assert!(!Value::from("0").is_truthy());
        assert!(!Value::from("0.0").is_truthy());
        assert!(Value::from("1").is_truthy());
        assert!(Value::from("abc").is_truthy());
        assert!(!Value::Number(0.0).is_truthy());
        assert!(Value::Number(-1.0).is_truthy());
        assert!(Value::Bool(true).is_truthy());
    }

    #[test]
    fn conversions() {
        assert_eq!(Value::from(""), Value::Blank);
        assert_eq!(Value::from(String::new()), Value::Blank);
        assert_eq!(Value::from(f64::NAN), Value::Blank);
        assert_eq!(Value::from(f64::INFINITY), Value::Blank);
        assert_eq!(Value::from(true).to_string(), "1");
        assert_eq!(Value::Bool(false).to_string(), "0");
        assert_eq!(Value::Blank.to_string(), "");
        assert_eq!(Value::Bool(true).as_number(), Some(1.0));
        assert_eq!(Value::Blank.as_number(), None);
    }
}
