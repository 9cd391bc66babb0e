//! Civil (proleptic Gregorian) date arithmetic for `datediff` and friends.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A calendar date (proleptic Gregorian, years 1–9999), used for `'today'` in logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u32,
    day: u32,
}

impl Date {
    /// The date, or `None` if it does not exist (e.g. 2023-02-29) or the year is outside
    /// 1–9999.
    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        ((1..=9999).contains(&year) && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month))
            .then_some(Date { year, month, day })
    }

    /// Parses `YYYY-MM-DD` (REDCap's storage format for dates).
    pub fn parse(s: &str) -> Option<Date> {
        let (y, m, d) = split_date(s.trim(), DateFormat::Ymd)?;
        Date::new(y, m, d)
    }

    /// Today's date in UTC, from the system clock (the default for [`Context::today`]).
    ///
    /// [`Context::today`]: crate::Context::today
    pub fn today_utc() -> Date {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let days = i64::try_from(secs / 86_400).unwrap_or(0);
        let (year, month, day) = civil_from_days(days);
        Date { year, month, day }
    }

    /// The year.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month, 1–12.
    pub fn month(&self) -> u32 {
        self.month
    }

    /// The day of the month, 1–31.
    pub fn day(&self) -> u32 {
        self.day
    }

    /// Seconds since 1970-01-01 00:00 for midnight of this date.
    pub(crate) fn timestamp(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
    }
}

impl fmt::Display for Date {
    /// Formats as `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Order of the date parts for `datediff`'s date-format argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateFormat {
    Ymd,
    Mdy,
    Dmy,
}

impl DateFormat {
    pub(crate) fn parse(s: &str) -> Option<DateFormat> {
        match s.to_ascii_lowercase().as_str() {
            "ymd" => Some(DateFormat::Ymd),
            "mdy" => Some(DateFormat::Mdy),
            "dmy" => Some(DateFormat::Dmy),
            _ => None,
        }
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // The ranges are guaranteed by the algorithm for any date this crate constructs.
    (y as i32, m as u32, d as u32)
}

fn all_digits(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None }
}

/// Splits `Y-M-D` / `M-D-Y` / `D-M-Y` (separator `-` or `/`; four-digit year, one- or
/// two-digit month and day) into numbers, without range checks.
fn split_date(s: &str, fmt: DateFormat) -> Option<(i32, u32, u32)> {
    let sep = if s.contains('/') { '/' } else { '-' };
    let mut parts = s.split(sep);
    let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (y, m, d) = match fmt {
        DateFormat::Ymd => (a, b, c),
        DateFormat::Mdy => (c, a, b),
        DateFormat::Dmy => (c, b, a),
    };
    Some((all_digits(y, 4, 4)? as i32, all_digits(m, 1, 2)?, all_digits(d, 1, 2)?))
}

/// `HH:MM` or `HH:MM:SS` as seconds since midnight.
fn parse_time(s: &str) -> Option<i64> {
    let mut parts = s.split(':');
    let h = all_digits(parts.next()?, 1, 2)?;
    let m = all_digits(parts.next()?, 2, 2)?;
    let sec = match parts.next() {
        Some(p) => all_digits(p, 2, 2)?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(i64::from(h * 3600 + m * 60 + sec))
}

fn parse_with(s: &str, fmt: DateFormat) -> Option<i64> {
    let (date, time) = match s.find([' ', 'T']) {
        Some(p) => (&s[..p], Some(s[p + 1..].trim_start())),
        None => (s, None),
    };
    let (y, m, d) = split_date(date, fmt)?;
    let date = Date::new(y, m, d)?;
    let tod = match time {
        Some(t) => parse_time(t)?,
        None => 0,
    };
    Some(date.timestamp() + tod)
}

/// Parses a date or datetime value into seconds since 1970-01-01 00:00.
///
/// `YYYY-MM-DD` (REDCap's storage format) is always accepted; other orders are tried only
/// when `fmt` asks for them. A time `HH:MM[:SS]` may follow after a space or `T`.
pub(crate) fn parse_datetime(s: &str, fmt: DateFormat) -> Option<i64> {
    let s = s.trim();
    parse_with(s, DateFormat::Ymd).or_else(|| if fmt == DateFormat::Ymd { None } else { parse_with(s, fmt) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        for z in [-800_000, -1, 0, 1, 11_016, 19_782, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn date_validation() {
        assert!(Date::new(2024, 2, 29).is_some());
        assert!(Date::new(2023, 2, 29).is_none());
        assert!(Date::new(1900, 2, 29).is_none());
        assert!(Date::new(2000, 2, 29).is_some());
        assert!(Date::new(2024, 13, 1).is_none());
        assert!(Date::new(2024, 4, 31).is_none());
        assert!(Date::new(0, 1, 1).is_none());
        assert_eq!(Date::parse("2024-06-05").map(|d| d.to_string()).as_deref(), Some("2024-06-05"));
        assert_eq!(Date::parse("2024-6-5").map(|d| d.to_string()).as_deref(), Some("2024-06-05"));
        assert!(Date::parse("24-06-05").is_none());
        assert!(Date::parse("2024-06-05 10:00").is_none());
    }

    #[test]
    fn datetime_parsing() {
        let day = days_from_civil(2024, 3, 1) * 86_400;
        assert_eq!(parse_datetime("2024-03-01", DateFormat::Ymd), Some(day));
        assert_eq!(parse_datetime("2024-03-01 10:30", DateFormat::Ymd), Some(day + 37_800));
        assert_eq!(parse_datetime("2024-03-01T10:30:15", DateFormat::Ymd), Some(day + 37_815));
        assert_eq!(parse_datetime("03/01/2024", DateFormat::Mdy), Some(day));
        assert_eq!(parse_datetime("01-03-2024 9:05", DateFormat::Dmy), Some(day + 9 * 3600 + 300));
        assert_eq!(parse_datetime("2024-03-01", DateFormat::Dmy), Some(day));
        assert_eq!(parse_datetime("03/01/2024", DateFormat::Ymd), None);
        assert_eq!(parse_datetime("2024-03-01 24:00", DateFormat::Ymd), None);
        assert_eq!(parse_datetime("2024-02-30", DateFormat::Ymd), None);
        assert_eq!(parse_datetime("today", DateFormat::Ymd), None);
    }

    #[test]
    fn today_is_plausible() {
        assert!(Date::today_utc().year() >= 2024);
    }
}
