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

impl Date {
    /// Days since 1970-01-01 (negative before).
    pub fn days_since_epoch(self) -> i64 {
        // Howard Hinnant's days-from-civil: years start in March, so the leap day ends one.
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` after 1970-01-01; `None` outside the years 0–65535.
    pub fn from_days_since_epoch(days: i64) -> Option<Date> {
        let z = days.checked_add(719_468)?;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date::new(u16::try_from(year).ok()?, month as u8, day as u8)
    }
}

impl DateTime {
    /// Minutes since 1970-01-01 00:00 (the seconds are dropped): REDCap's logging has minute
    /// resolution, and windows of it are counted in minutes.
    pub fn minutes_since_epoch(self) -> i64 {
        self.date.days_since_epoch() * 1440 + i64::from(self.hour) * 60 + i64::from(self.minute)
    }

    /// The minute `minutes` after 1970-01-01 00:00 (seconds 0); `None` outside the years 0–65535.
    pub fn from_minutes_since_epoch(minutes: i64) -> Option<DateTime> {
        let date = Date::from_days_since_epoch(minutes.div_euclid(1440))?;
        let m = minutes.rem_euclid(1440);
        Some(DateTime { date, hour: (m / 60) as u8, minute: (m % 60) as u8, second: 0 })
    }

    /// The wall-clock time of `time` in UTC, to the second.
    pub fn from_system_time_utc(time: std::time::SystemTime) -> Option<DateTime> {
        let secs = match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).ok()?,
            // Before the epoch: rounded down to the second.
            Err(e) => -i64::try_from(e.duration().as_secs()).ok()? - i64::from(e.duration().subsec_nanos() > 0),
        };
        let mut t = DateTime::from_minutes_since_epoch(secs.div_euclid(60))?;
        t.second = secs.rem_euclid(60) as u8;
        Some(t)
    }

    /// This time plus `minutes` (negative: minus), seconds kept; `None` outside the years
    /// 0–65535.
    pub fn add_minutes(self, minutes: i64) -> Option<DateTime> {
        let mut t = DateTime::from_minutes_since_epoch(self.minutes_since_epoch().checked_add(minutes)?)?;
        t.second = self.second;
        Some(t)
    }

    /// `YYYY-MM-DD HH:MM`: how the logging export's `beginTime`/`endTime` and its timestamps
    /// are written.
    pub fn to_minute_string(self) -> String {
        format!("{} {:02}:{:02}", self.date, self.hour, self.minute)
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

    #[test]
    fn days_count_from_the_epoch_both_ways() {
        let d = |s: &str| s.parse::<Date>().unwrap();
        assert_eq!(d("1970-01-01").days_since_epoch(), 0);
        assert_eq!(d("1969-12-31").days_since_epoch(), -1);
        assert_eq!(d("2000-03-01").days_since_epoch(), 11_017);
        assert_eq!(d("2024-02-29").days_since_epoch() + 1, d("2024-03-01").days_since_epoch());
        assert_eq!(d("2023-02-28").days_since_epoch() + 1, d("2023-03-01").days_since_epoch());
        assert_eq!(d("1900-02-28").days_since_epoch() + 1, d("1900-03-01").days_since_epoch(), "1900 is not leap");
        // Every day of four centuries round-trips, in order.
        let start = d("1899-12-25").days_since_epoch();
        let mut previous: Option<Date> = None;
        for n in start..start + 146_097 + 10 {
            let date = Date::from_days_since_epoch(n).unwrap();
            assert_eq!(date.days_since_epoch(), n);
            assert_eq!(Date::new(date.year, date.month, date.day), Some(date));
            if let Some(p) = previous {
                assert!(p < date);
            }
            previous = Some(date);
        }
        assert_eq!(Date::from_days_since_epoch(i64::MAX), None);
        assert_eq!(Date::from_days_since_epoch(-719_529), None, "before the year 0");
    }

    #[test]
    fn minutes_add_across_days_months_and_years() {
        let t = |s: &str| s.parse::<DateTime>().unwrap();
        assert_eq!(t("2025-12-31 23:59:30").add_minutes(1), Some(t("2026-01-01 00:00:30")));
        assert_eq!(t("2024-03-01 00:00").add_minutes(-1), Some(t("2024-02-29 23:59")));
        assert_eq!(t("2024-05-06 07:08").add_minutes(7 * 1440), Some(t("2024-05-13 07:08")));
        assert_eq!(t("1970-01-01 00:00").minutes_since_epoch(), 0);
        let m = t("2026-01-02 03:04:05").minutes_since_epoch();
        assert_eq!(DateTime::from_minutes_since_epoch(m), Some(t("2026-01-02 03:04")));
        assert_eq!(t("2026-01-02 03:04:05").to_minute_string(), "2026-01-02 03:04");
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_323_045);
        assert_eq!(DateTime::from_system_time_utc(now), Some(t("2026-01-02 03:04:05")));
        let before = std::time::UNIX_EPOCH - std::time::Duration::from_secs(1);
        assert_eq!(DateTime::from_system_time_utc(before), Some(t("1969-12-31 23:59:59")));
    }
}
