//! Parsers of REDCap's raw export values: strict, so a value that does not fit is reported
//! rather than guessed at. Each returns `Err(reason)` with the reason a person reads in the
//! problems table.

use chrono::NaiveDate;

use crate::kind::TimeForm;

/// The days since 1970-01-01 of `YYYY-MM-DD`.
pub fn date(s: &str) -> Result<i32, &'static str> {
    let d = naive_date(s)?;
    Ok((d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date")).num_days() as i32)
}

fn naive_date(s: &str) -> Result<NaiveDate, &'static str> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err("not a date (YYYY-MM-DD)");
    }
    let y = digits(&b[0..4]).ok_or("not a date (YYYY-MM-DD)")?;
    let m = digits(&b[5..7]).ok_or("not a date (YYYY-MM-DD)")?;
    let d = digits(&b[8..10]).ok_or("not a date (YYYY-MM-DD)")?;
    NaiveDate::from_ymd_opt(y as i32, m, d).ok_or("no such day in the calendar")
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

/// The seconds since 1970-01-01 00:00:00 of `YYYY-MM-DD HH:MM` or `YYYY-MM-DD HH:MM:SS` (REDCap's
/// export of every datetime validation; no time zone).
pub fn datetime(s: &str) -> Result<i64, &'static str> {
    const WHAT: &str = "not a datetime (YYYY-MM-DD HH:MM[:SS])";
    let (d, t) = s.split_once(' ').ok_or(WHAT)?;
    let days = i64::from(date(d).map_err(|e| if e == "no such day in the calendar" { e } else { WHAT })?);
    let secs = clock(t, true).map_err(|_| WHAT)?;
    Ok(days * 86_400 + i64::from(secs))
}

/// `HH:MM` or `HH:MM:SS` (with `seconds_allowed`) as seconds after midnight.
fn clock(t: &str, seconds_allowed: bool) -> Result<i32, ()> {
    let parts: Vec<&str> = t.split(':').collect();
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (h, m, &"00"),
        [h, m, s] if seconds_allowed => (h, m, s),
        _ => return Err(()),
    };
    let two = |p: &str| if p.len() == 2 { digits(p.as_bytes()) } else { None };
    let (h, m, s) = (two(h).ok_or(())?, two(m).ok_or(())?, two(s).ok_or(())?);
    if h > 23 || m > 59 || s > 59 {
        return Err(());
    }
    Ok((h * 3600 + m * 60 + s) as i32)
}

/// A time value as seconds after midnight.
pub fn time(s: &str, form: TimeForm) -> Result<i32, &'static str> {
    match form {
        TimeForm::HoursMinutes => match s.split(':').count() {
            2 => clock(s, false).map_err(|_| "not a time (HH:MM)"),
            _ => Err("not a time (HH:MM)"),
        },
        TimeForm::HoursMinutesSeconds => match s.split(':').count() {
            3 => clock(s, true).map_err(|_| "not a time (HH:MM:SS)"),
            _ => Err("not a time (HH:MM:SS)"),
        },
        TimeForm::MinutesSeconds => {
            const WHAT: &str = "not minutes and seconds (MM:SS)";
            let (m, s) = s.split_once(':').ok_or(WHAT)?;
            let two = |p: &str| if p.len() == 2 { digits(p.as_bytes()) } else { None };
            let (m, s) = (two(m).ok_or(WHAT)?, two(s).ok_or(WHAT)?);
            if m > 59 || s > 59 {
                return Err(WHAT);
            }
            Ok((m * 60 + s) as i32)
        }
    }
}

/// A whole number (optional sign, digits; no decimals, no spaces).
pub fn integer(s: &str) -> Result<i64, &'static str> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a whole number");
    }
    s.parse::<i64>().map_err(|_| "whole number out of range")
}

/// A decimal number: optional sign, digits with at most one decimal mark (`.`; with `comma`,
/// `,` or `.`), an optional exponent. No thousands separators, no `inf`/`NaN`.
pub fn number(s: &str, comma: bool) -> Result<f64, &'static str> {
    const WHAT: &str = "not a number";
    let normalised;
    let text = if comma && s.contains(',') {
        if s.contains('.') {
            return Err("not a number (both a comma and a dot)");
        }
        normalised = s.replacen(',', ".", 1);
        normalised.as_str()
    } else {
        s
    };
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mut marks = 0;
    let mut digits = 0;
    for b in mantissa.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => marks += 1,
            _ => {
                return Err(if b == b',' && !comma {
                    "not a number (a comma in a field whose decimal mark is a dot)"
                } else {
                    WHAT
                });
            }
        }
    }
    if digits == 0 || marks > 1 {
        return Err(WHAT);
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WHAT);
        }
    }
    let v: f64 = text.parse().map_err(|_| WHAT)?;
    if v.is_finite() { Ok(v) } else { Err("number out of range") }
}

/// `1` / `0` (yes/no, true/false, checkbox options).
pub fn boolean(s: &str) -> Result<bool, &'static str> {
    match s {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err("not 1 or 0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strict_iso() {
        assert_eq!(date("1970-01-01"), Ok(0));
        assert_eq!(date("2000-03-01"), Ok(11017));
        assert_eq!(date("1969-12-31"), Ok(-1));
        assert_eq!(date("2021-02-29"), Err("no such day in the calendar"));
        for bad in ["2021-2-03", "03/02/2021", "2021-02-03 ", "UNK", "20210203", "2021-0a-03"] {
            assert!(date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn datetimes_with_and_without_seconds() {
        assert_eq!(datetime("1970-01-02 01:02"), Ok(86_400 + 3720));
        assert_eq!(datetime("1970-01-02 01:02:03"), Ok(86_400 + 3723));
        assert_eq!(datetime("2021-02-29 01:02"), Err("no such day in the calendar"));
        for bad in ["1970-01-02", "1970-01-02T01:02", "1970-01-02 24:00", "1970-01-02 1:02", "x y"] {
            assert!(datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_by_form() {
        assert_eq!(time("13:45", TimeForm::HoursMinutes), Ok(49_500));
        assert!(time("13:45:10", TimeForm::HoursMinutes).is_err());
        assert_eq!(time("13:45:10", TimeForm::HoursMinutesSeconds), Ok(49_510));
        assert!(time("13:45", TimeForm::HoursMinutesSeconds).is_err());
        assert_eq!(time("59:30", TimeForm::MinutesSeconds), Ok(3570));
        assert!(time("60:00", TimeForm::MinutesSeconds).is_err());
        assert!(time("25:00", TimeForm::HoursMinutes).is_err());
    }

    #[test]
    fn numbers_and_comma_decimals() {
        assert_eq!(integer("-12"), Ok(-12));
        assert_eq!(integer("007"), Ok(7));
        for bad in ["1.0", "1e3", "", "-", " 1", "12a", "99999999999999999999"] {
            assert!(integer(bad).is_err(), "{bad}");
        }
        assert_eq!(number("1.5", false), Ok(1.5));
        assert_eq!(number("-.5", false), Ok(-0.5));
        assert_eq!(number("2e3", false), Ok(2000.0));
        assert_eq!(number("1,5", true), Ok(1.5), "REDCapR#366: not 15");
        assert_eq!(number("1.5", true), Ok(1.5));
        assert!(number("1,5", false).is_err(), "a comma in a dot field is a problem, never 15");
        for bad in ["1,000.5", "1.2.3", "inf", "NaN", "abc", ".", "1e", "1,5,6"] {
            assert!(number(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn booleans_are_one_or_zero() {
        assert_eq!(boolean("1"), Ok(true));
        assert_eq!(boolean("0"), Ok(false));
        assert!(boolean("yes").is_err());
    }
}
