//! Parsers of REDCap's raw export values: strict, so a value that does not fit is reported
//! rather than guessed at. Each returns `Err(reason)` with the reason a person reads in the
//! problems table.

use chrono::NaiveDate;

use redcap_api::rows::Validation;
use redcap_core::DateFormat;

use crate::kind::TimeForm;

/// The days since 1970-01-01 of `YYYY-MM-DD`.
pub fn date(s: &str) -> Result<i32, &'static str> {
    use chrono::Datelike;
    // 1970-01-01 is day 719,163 of the common era.
    Ok(naive_date(s)?.num_days_from_ce() - 719_163)
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
    // Fixed places, read as bytes (a pull reads hundreds of thousands of these).
    let b = t.as_bytes();
    let seconds = match b.len() {
        5 => None,
        8 if seconds_allowed && b[5] == b':' => Some(&b[6..8]),
        _ => return Err(()),
    };
    if b[2] != b':' {
        return Err(());
    }
    let h = digits(&b[0..2]).ok_or(())?;
    let m = digits(&b[3..5]).ok_or(())?;
    let s = seconds.map_or(Some(0), digits).ok_or(())?;
    if h > 23 || m > 59 || s > 59 {
        return Err(());
    }
    Ok((h * 3600 + m * 60 + s) as i32)
}

/// A time value as seconds after midnight.
pub fn time(s: &str, form: TimeForm) -> Result<i32, &'static str> {
    match form {
        TimeForm::HoursMinutes => clock(s, false).map_err(|_| "not a time (HH:MM)"),
        TimeForm::HoursMinutesSeconds if s.len() == 8 => clock(s, true).map_err(|_| "not a time (HH:MM:SS)"),
        TimeForm::HoursMinutesSeconds => Err("not a time (HH:MM:SS)"),
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
    // One pass over the bytes checks the shape and reads the digits (a pull reads hundreds of
    // thousands of these).
    let b = s.as_bytes();
    let negative = b.first() == Some(&b'-');
    let mut at = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let (mut digits, mut dots, mut commas, mut after_mark, mut mantissa) = (0, 0, 0, 0, 0u64);
    while let Some(&c) = b.get(at) {
        match c {
            b'0'..=b'9' => {
                digits += 1;
                after_mark += usize::from(dots + commas > 0);
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            }
            b'.' => dots += 1,
            b',' if comma => commas += 1,
            b'e' | b'E' => break,
            b',' => return Err("not a number (a comma in a field whose decimal mark is a dot)"),
            _ => return Err(WHAT),
        }
        at += 1;
    }
    if dots > 0 && commas > 0 {
        return Err("not a number (both a comma and a dot)");
    }
    if digits == 0 || dots + commas > 1 {
        return Err(WHAT);
    }
    if at == b.len() && digits <= 15 {
        // Clinger's exact case: fewer than 16 digits are an integer below 2^53 and 10^k
        // (k ≤ 15) is exact too, so their IEEE quotient is the correctly rounded value, the
        // one `str::parse` gives, without its general machinery.
        let v = mantissa as f64 / POWERS_OF_TEN[after_mark];
        return Ok(if negative { -v } else { v });
    }
    if at < b.len() {
        let e = &b[at + 1..];
        let e = e.strip_prefix(b"-").or_else(|| e.strip_prefix(b"+")).unwrap_or(e);
        if e.is_empty() || !e.iter().all(u8::is_ascii_digit) {
            return Err(WHAT);
        }
    }
    let v: f64 = if commas > 0 { s.replacen(',', ".", 1).parse() } else { s.parse() }.map_err(|_| WHAT)?;
    if v.is_finite() { Ok(v) } else { Err("number out of range") }
}

/// 10^0 to 10^15, each exact in an f64.
const POWERS_OF_TEN: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// `1` / `0` (yes/no, true/false, checkbox options).
pub fn boolean(s: &str) -> Result<bool, &'static str> {
    match s {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err("not 1 or 0"),
    }
}

/// An imported date (or the date part of a datetime) in `order` as `YYYY-MM-DD[ rest]`:
/// REDCap's `dateFormat` takes `YMD` with dashes, `MDY` and `DMY` with slashes (one- or two-digit
/// month and day). The result is then read by [`date`] or [`datetime`], as an export value.
pub fn ymd_from(s: &str, order: DateFormat) -> Result<String, &'static str> {
    let (d, rest) = match s.split_once(' ') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let ymd = match order {
        DateFormat::Ymd => d.to_owned(),
        DateFormat::Mdy | DateFormat::Dmy => {
            let what = if order == DateFormat::Mdy { "not a date (M/D/YYYY)" } else { "not a date (D/M/YYYY)" };
            let parts: Vec<&str> = d.split('/').collect();
            let [a, b, y] = parts.as_slice() else { return Err(what) };
            let (m, day) = if order == DateFormat::Mdy { (a, b) } else { (b, a) };
            let short = |p: &str| (1..=2).contains(&p.len()) && digits(p.as_bytes()).is_some();
            if !short(m) || !short(day) || y.len() != 4 || digits(y.as_bytes()).is_none() {
                return Err(what);
            }
            format!("{y}-{m:0>2}-{day:0>2}")
        }
        _ => d.to_owned(),
    };
    Ok(match rest {
        Some(t) => format!("{ymd} {t}"),
        None => ymd,
    })
}

/// A number with exactly `decimals` digits after its decimal mark (`number_Ndp` validations:
/// REDCap refuses `1.5` in a `number_2dp` field).
pub fn fixed_decimals(s: &str, comma: bool, decimals: u8) -> Result<f64, &'static str> {
    let v = number(s, comma)?;
    let after = s.rsplit_once(['.', ',']).map(|(_, d)| d);
    match after {
        Some(d) if d.len() == usize::from(decimals) && d.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
        _ => Err(match decimals {
            1 => "not a number with 1 decimal place",
            2 => "not a number with 2 decimal places",
            3 => "not a number with 3 decimal places",
            _ => "not a number with 4 decimal places",
        }),
    }
}

/// Whether `s` has the shape of a text validation that is a format of text (email, phone, ZIP
/// and postal codes, letters only, SSN, MRN). Validations that are not formats of text, and
/// site-defined ones, accept anything here.
pub fn text_format(validation: &Validation, s: &str) -> Result<(), &'static str> {
    use Validation as V;
    let all = |p: &str, f: fn(char) -> bool| !p.is_empty() && p.chars().all(f);
    let dig = |p: &str| all(p, |c| c.is_ascii_digit());
    // Ten digits, separators `()-. ` allowed.
    let phone_digits = |p: &str| -> Option<Vec<u8>> {
        p.chars()
            .all(|c| c.is_ascii_digit() || "()-. ".contains(c))
            .then(|| p.bytes().filter(u8::is_ascii_digit).collect::<Vec<u8>>())
            .filter(|d| d.len() == 10)
    };
    let ok = match validation {
        V::Email => s.split_once('@').is_some_and(|(local, domain)| {
            all(local, |c| c.is_ascii_alphanumeric() || "._%+-'".contains(c))
                && all(domain, |c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                && !domain.starts_with('.')
                && domain.rsplit_once('.').is_some_and(|(host, tld)| !host.is_empty() && tld.len() >= 2)
        }),
        V::Phone => phone_digits(s).is_some_and(|d| d[0] >= b'2' && d[3] >= b'2'),
        V::PhoneAustralia => phone_digits(s).is_some_and(|d| d[0] == b'0'),
        V::Zipcode => match s.split_once('-') {
            Some((a, b)) => a.len() == 5 && dig(a) && b.len() == 4 && dig(b),
            None => s.len() == 5 && dig(s),
        },
        V::PostalcodeAustralia => s.len() == 4 && dig(s),
        V::PostalcodeFrench | V::PostalcodeGermany => s.len() == 5 && dig(s),
        V::PostalcodeCanada => {
            let c: Vec<char> = s.chars().filter(|c| *c != ' ').collect();
            c.len() == 6
                && c.iter()
                    .enumerate()
                    .all(|(i, ch)| if i % 2 == 0 { ch.is_ascii_alphabetic() } else { ch.is_ascii_digit() })
        }
        V::AlphaOnly => all(s, |c| c.is_ascii_alphabetic()),
        V::Ssn => {
            let p: Vec<&str> = s.split('-').collect();
            matches!(p.as_slice(), [a, b, c] if a.len() == 3 && b.len() == 2 && c.len() == 4 && dig(a) && dig(b) && dig(c))
        }
        V::Mrn10d => s.len() == 10 && dig(s),
        V::MrnGeneric => all(s, |c| c.is_ascii_alphanumeric() || c == '-'),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    Err(match validation {
        V::Email => "not an email address",
        V::Phone => "not a North American phone number (10 digits)",
        V::PhoneAustralia => "not an Australian phone number (10 digits from 0)",
        V::Zipcode => "not a U.S. ZIP code (12345 or 12345-6789)",
        V::PostalcodeAustralia => "not an Australian postal code (4 digits)",
        V::PostalcodeFrench => "not a French postal code (5 digits)",
        V::PostalcodeGermany => "not a German postal code (5 digits)",
        V::PostalcodeCanada => "not a Canadian postal code (A1A 1A1)",
        V::AlphaOnly => "not letters only",
        V::Ssn => "not a Social Security number (123-45-6789)",
        V::Mrn10d => "not a 10-digit medical record number",
        _ => "not a medical record number (letters, digits and -)",
    })
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
        for bad in ["1:00", "13:4", "13-45", "13:45:", "1a:00", "13:60", "", "13:45:1", "13:45:60", "13::45"] {
            assert!(
                time(bad, TimeForm::HoursMinutes).is_err() && time(bad, TimeForm::HoursMinutesSeconds).is_err(),
                "{bad}"
            );
        }
        assert_eq!(time("00:00:00", TimeForm::HoursMinutesSeconds), Ok(0));
        assert_eq!(time("23:59", TimeForm::HoursMinutes), Ok(86_340));
        assert_eq!(datetime("2024-02-29 23:59:59"), Ok(19_782 * 86_400 + 86_399));
        assert_eq!(datetime("1969-12-31 00:00"), Ok(-86_400));
        assert_eq!(date("1970-01-01"), Ok(0));
        assert_eq!(date("2023-02-29"), Err("no such day in the calendar"));
        assert!(datetime("2024-02-29 23:59:5").is_err());
    }

    #[test]
    fn numbers_read_by_the_exact_shortcut_equal_the_standard_parse() {
        // Every shape the shortcut takes (up to 15 digits, a mark anywhere, a sign), and the
        // longer ones it leaves to `str::parse`, bit for bit (so -0 stays -0).
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200_000 {
            let n = (next() % 19 + 1) as usize;
            let mut text: String = (0..n).map(|_| char::from(b'0' + (next() % 10) as u8)).collect();
            if next() % 4 > 0 {
                text.insert((next() % (n as u64 + 1)) as usize, '.');
            }
            match next() % 3 {
                0 => text.insert(0, '-'),
                1 => text.insert(0, '+'),
                _ => {}
            }
            let standard: f64 = text.parse().unwrap();
            assert_eq!(number(&text, false).map(f64::to_bits), Ok(standard.to_bits()), "{text}");
            let with_comma = text.replace('.', ",");
            assert_eq!(number(&with_comma, true).map(f64::to_bits), Ok(standard.to_bits()), "{with_comma}");
        }
        for edge in ["0.1", "0.3", "999999999999999", "9007199254740993", "-0", "-0.0", ".000000000000001", "1."] {
            assert_eq!(number(edge, false).map(f64::to_bits), Ok(edge.parse::<f64>().unwrap().to_bits()), "{edge}");
        }
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
        for bad in ["1,000.5", "1.2.3", "inf", "NaN", "abc", ".", "1e", "1,5,6", "1e+", "1e5.0", "--1", "1 "] {
            assert!(number(bad, true).is_err(), "{bad}");
        }
        assert_eq!(number("-1.5e-3", false), Ok(-0.0015));
        assert_eq!(number("+2E+2", false), Ok(200.0));
        assert_eq!(number("-,5", true), Ok(-0.5));
        assert_eq!(number("1,5", false), Err("not a number (a comma in a field whose decimal mark is a dot)"));
        assert_eq!(number("1,5.0", true), Err("not a number (both a comma and a dot)"));
        assert_eq!(number("1e400", false), Err("number out of range"));
    }

    #[test]
    fn booleans_are_one_or_zero() {
        assert_eq!(boolean("1"), Ok(true));
        assert_eq!(boolean("0"), Ok(false));
        assert!(boolean("yes").is_err());
    }

    #[test]
    fn import_dates_by_order() {
        assert_eq!(ymd_from("2024-12-31", DateFormat::Ymd).as_deref(), Ok("2024-12-31"));
        assert_eq!(ymd_from("12/31/2024", DateFormat::Mdy).as_deref(), Ok("2024-12-31"));
        assert_eq!(ymd_from("1/2/2024 13:05", DateFormat::Dmy).as_deref(), Ok("2024-02-01 13:05"));
        for bad in ["2024-12-31", "12/31/24", "12-31-2024", "123/1/2024", "a/b/2024"] {
            assert!(ymd_from(bad, DateFormat::Mdy).is_err(), "{bad}");
        }
    }

    #[test]
    fn fixed_decimals_are_exact() {
        assert_eq!(fixed_decimals("1.50", false, 2), Ok(1.5));
        assert_eq!(fixed_decimals("-1,5", true, 1), Ok(-1.5));
        for bad in ["1.5", "1", "1.500", "1e2"] {
            assert!(fixed_decimals(bad, false, 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_formats() {
        let ok = |v: &str, s: &str| text_format(&Validation::from(v), s).is_ok();
        assert!(ok("email", "ada.l+x@example.org") && !ok("email", "ada@example") && !ok("email", "ada"));
        assert!(ok("phone", "(615) 555-1234") && !ok("phone", "115-555-1234") && !ok("phone", "555-1234"));
        assert!(ok("zipcode", "37212") && ok("zipcode", "37212-1234") && !ok("zipcode", "3721"));
        assert!(ok("postalcode_canada", "K1A 0B1") && !ok("postalcode_canada", "K1A 0B"));
        assert!(ok("alpha_only", "abc") && !ok("alpha_only", "ab1"));
        assert!(ok("ssn", "123-45-6789") && !ok("ssn", "123456789"));
        assert!(ok("mrn_10d", "0123456789") && !ok("mrn_10d", "12345"));
        assert!(ok("my_site_rule", "anything"), "site-defined validations are not known here");
    }
}
