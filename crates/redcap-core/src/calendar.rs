//! REDCap's dates (`YYYY-MM-DD`) and datetimes (`YYYY-MM-DD HH:MM[:SS]`), as the API sends them in
//! metadata-like answers (project info, users' expiration, logging timestamps).

use std::fmt;
use std::str::FromStr;

/// A calendar date, `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day, 1–31.
    pub day: u8,
}

/// A date and a wall-clock time in the server's time zone, `YYYY-MM-DD HH:MM[:SS]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    /// The date.
    pub date: Date,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–59 (0 when the server sent minutes only).
    pub second: u8,
}

/// A text that is not a REDCap date or datetime.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {expected}")]
pub struct CalendarError {
    value: String,
    expected: &'static str,
}

fn num<T: FromStr>(s: &str, len: usize) -> Option<T> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

impl Date {
    /// A date; `None` if the month or day is out of range.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (1..=days).contains(&day).then_some(Date { year, month, day })
    }
}

impl FromStr for Date {
    type Err = CalendarError;
    fn from_str(s: &str) -> Result<Self, CalendarError> {
        let bad = || CalendarError { value: s.to_owned(), expected: "date (YYYY-MM-DD)" };
        let mut parts = s.trim().split('-');
        let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        match (num(y, 4), num(m, 2), num(d, 2)) {
            (Some(y), Some(m), Some(d)) => Date::new(y, m, d).ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for DateTime {
    type Err = CalendarError;
    fn from_str(s: &str) -> Result<Self, CalendarError> {
        let bad = || CalendarError { value: s.to_owned(), expected: "datetime (YYYY-MM-DD HH:MM[:SS])" };
        let (d, t) = s.trim().split_once([' ', 'T']).ok_or_else(bad)?;
        let date: Date = d.parse().map_err(|_| bad())?;
        let parts: Vec<&str> = t.split(':').collect();
        let field = |i: usize, max: u8| -> Result<u8, CalendarError> {
            num::<u8>(parts[i], 2).filter(|v| *v <= max).ok_or_else(bad)
        };
        let (hour, minute, second) = match parts.len() {
            2 => (field(0, 23)?, field(1, 59)?, 0),
            3 => (field(0, 23)?, field(1, 59)?, field(2, 59)?),
            _ => return Err(bad()),
        };
        Ok(DateTime { date, hour, minute, second })
    }
}

impl fmt::Display for DateTime {
    /// `YYYY-MM-DD HH:MM:SS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:02}:{:02}:{:02}", self.date, self.hour, self.minute, self.second)
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl serde::Serialize for DateTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redcap_spellings() {
        assert_eq!("2024-02-29".parse::<Date>().unwrap(), Date { year: 2024, month: 2, day: 29 });
        assert!("2023-02-29".parse::<Date>().is_err());
        assert!("2024-2-1".parse::<Date>().is_err());
        let t: DateTime = "2024-05-06 07:08".parse().unwrap();
        assert_eq!((t.hour, t.minute, t.second), (7, 8, 0));
        let t: DateTime = "2024-05-06 07:08:09".parse().unwrap();
        assert_eq!(t.to_string(), "2024-05-06 07:08:09");
        assert!("2024-05-06 24:00".parse::<DateTime>().is_err());
        assert!("2024-05-06".parse::<DateTime>().is_err());
    }
}
