//! Logging exported in time windows: the pure plan.
//!
//! A long history asked for at once times out (504s on whole-project logs, redcapAPI#383,
//! whose fix slices the time range into days). [`LogWindows`] slices `beginTime`..`endTime` into
//! windows of a few days, asks them newest first (REDCap lists its log newest first: REDCapR's
//! recorded log, `log-read/2024-10-11.R`), and halves a window that fails in a way a smaller
//! one may survive (a 5xx, a timeout, a cut answer; see [`super::heal::survivable`]), down to
//! one minute.
//!
//! # Boundaries
//!
//! REDCap's times are server-local minutes (`YYYY-MM-DD HH:MM`) and nothing documents whether
//! `endTime` takes in its whole minute or only its first second. So neighbouring windows share
//! their boundary minute (one ends at `m`, the next begins at `m`): every entry of the range is
//! in at least one window however the server reads the bounds. The entries of a boundary minute
//! are then merged as a multiset maximum (each distinct entry as many times as the window that
//! has it most often): an entry in both windows is kept once, and entries that are genuinely
//! repeated (two identical updates in one minute) stay repeated.

use std::collections::HashMap;
use std::time::SystemTime;

use redcap_core::{DateTime, Row};

use super::heal::survivable;
use super::{Progress, ProgressEvent, WorkflowError};
use crate::log;

/// Minutes per window by default: a week (redcapAPI's `batchInterval` counts days).
pub const DEFAULT_WINDOW_MINUTES: u32 = 7 * 24 * 60;

/// How far ahead of UTC a server's local clock can be: UTC+14 is the latest zone, plus an hour.
/// Without an `endTime` the windows reach this far past the client's clock in UTC, and the
/// newest window is left open.
const AHEAD_OF_UTC_MINUTES: i64 = 15 * 60;

/// A window: minutes since the epoch, server time; `end: None` is open (up to now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Window {
    /// The request as given (no `beginTime`, or times that do not parse): one call.
    Whole,
    Span {
        begin: i64,
        end: Option<i64>,
    },
}

/// What a windowed logging export did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogSummary {
    /// Entries handed on.
    pub entries: u64,
    /// Export Logging calls made.
    pub requests: u64,
    /// Windows that failed and were halved.
    pub halved: u64,
    /// Why each window was halved (the first [`crate::workflow::HealReport::MAX_REASONS`]).
    pub reasons: Vec<String>,
}

/// The plan of a windowed logging export: which window to ask next, and the entries to hand on
/// once a window's answer is in (boundary minutes merged). Does no I/O.
#[derive(Debug)]
pub struct LogWindows<'p> {
    template: log::export::Request,
    /// Windows still to ask; the next is last (so the newest is asked first).
    todo: Vec<Window>,
    asked: Option<Window>,
    /// The entries of the last answered window's oldest minute, held until the next window
    /// (which shares that minute) is in: (minute, entries in listing order).
    carry: Option<(i64, Vec<Row>)>,
    /// The latest minute a server may be at now (the open window's end, for halving it).
    horizon: i64,
    summary: LogSummary,
    progress: &'p dyn Progress,
}

fn minutes(text: &str) -> Option<i64> {
    let text = text.trim();
    // Seconds, if sent, are ignored (REDCap's logging has minute resolution).
    let t: DateTime = text.get(..16).unwrap_or(text).parse().ok()?;
    Some(t.minutes_since_epoch())
}

fn minute_text(m: i64) -> String {
    DateTime::from_minutes_since_epoch(m).map(DateTime::to_minute_string).unwrap_or_default()
}

fn entry_minute(row: &Row) -> Option<i64> {
    row.get("timestamp").and_then(|v| v.as_str()).and_then(minutes)
}

impl<'p> LogWindows<'p> {
    /// The windows of `template`'s `beginTime`..`endTime` (its other filters kept), at most
    /// `window_minutes` long. Without an `endTime` they reach up to now wherever the server is
    /// (`now` is the client's clock) and the newest is open-ended; without a `beginTime` the
    /// request is sent whole, as there is nothing to slice. Halvings go to `progress` as
    /// [`ProgressEvent::Split`].
    pub fn new(
        template: &log::export::Request,
        window_minutes: u32,
        now: SystemTime,
        progress: &'p dyn Progress,
    ) -> Self {
        let span = i64::from(window_minutes.max(1));
        let now_utc = DateTime::from_system_time_utc(now).map_or(0, DateTime::minutes_since_epoch);
        let horizon = now_utc + AHEAD_OF_UTC_MINUTES;
        let begin = template.begin_time.as_deref().map(minutes);
        let end = template.end_time.as_deref().map(minutes);
        let todo = match (begin, end) {
            (Some(Some(b)), None) => windows(b, None, span, horizon),
            (Some(Some(b)), Some(Some(e))) if b <= e => windows(b, Some(e), span, horizon),
            _ => vec![Window::Whole],
        };
        let mut template = template.clone();
        template.format = Some(redcap_core::Format::Json);
        LogWindows { template, todo, asked: None, carry: None, horizon, summary: LogSummary::default(), progress }
    }

    /// The next request, or `None` when every window is in (then [`LogWindows::finish`]).
    pub fn next_request(&mut self) -> Option<log::export::Request> {
        debug_assert!(self.asked.is_none(), "one window at a time");
        let window = self.todo.pop()?;
        self.asked = Some(window);
        self.summary.requests += 1;
        let mut r = self.template.clone();
        if let Window::Span { begin, end } = window {
            r.begin_time = Some(minute_text(begin));
            r.end_time = end.map(minute_text);
        }
        Some(r)
    }

    /// The answer to the last request: the entries that can be handed on now, newest first.
    /// A failure a smaller window may survive halves the window (no entries yet); any other
    /// failure, or one of a window that cannot be halved, is returned.
    pub fn answer(&mut self, answer: Result<Vec<Row>, WorkflowError>) -> Result<Vec<Row>, WorkflowError> {
        let window = self.asked.take().unwrap_or(Window::Whole);
        let rows = match answer {
            Ok(rows) => rows,
            Err(e) => {
                let halves = if survivable(&e) { self.halve(window) } else { None };
                let Some((older, newer)) = halves else { return Err(e) };
                let reason = e.to_string();
                self.progress.event(ProgressEvent::Split { item: label(window), reason: reason.clone(), parts: 2 });
                self.summary.halved += 1;
                if self.summary.reasons.len() < super::HealReport::MAX_REASONS {
                    self.summary.reasons.push(reason);
                }
                self.todo.push(older);
                self.todo.push(newer);
                return Ok(Vec::new());
            }
        };
        let Window::Span { begin, .. } = window else {
            self.summary.entries += rows.len() as u64;
            return Ok(rows);
        };
        let mut out = Vec::with_capacity(rows.len());
        let mut rest = rows;
        // This window's newest minute is the one the previous (newer) window held back.
        if let Some((minute, held)) = self.carry.take() {
            let (here, others): (Vec<Row>, Vec<Row>) = rest.into_iter().partition(|r| entry_minute(r) == Some(minute));
            out.extend(merge_minute(held, here));
            rest = others;
        }
        // Its oldest minute is shared with the next window: held back until that one is in.
        let shared = matches!(self.todo.last(), Some(Window::Span { end: Some(e), .. }) if *e == begin);
        if shared {
            let (held, others): (Vec<Row>, Vec<Row>) = rest.into_iter().partition(|r| entry_minute(r) == Some(begin));
            self.carry = Some((begin, held));
            rest = others;
        }
        out.extend(rest);
        self.summary.entries += out.len() as u64;
        Ok(out)
    }

    /// The entries still held back, and what was done.
    pub fn finish(mut self) -> (Vec<Row>, LogSummary) {
        let rows = self.carry.take().map(|(_, rows)| rows).unwrap_or_default();
        self.summary.entries += rows.len() as u64;
        (rows, self.summary)
    }

    /// A failed window's two halves (older, newer), sharing their middle minute; `None` when it
    /// spans less than two minutes.
    fn halve(&self, window: Window) -> Option<(Window, Window)> {
        let Window::Span { begin, end } = window else { return None };
        let last = end.unwrap_or(self.horizon);
        if last - begin < 2 {
            return None;
        }
        let mid = begin + (last - begin) / 2;
        Some((Window::Span { begin, end: Some(mid) }, Window::Span { begin: mid, end }))
    }
}

/// Windows from `begin` to `end` (or, open, past `horizon`), oldest first, each at most `span`
/// minutes and sharing its first minute with the previous one's last.
fn windows(begin: i64, end: Option<i64>, span: i64, horizon: i64) -> Vec<Window> {
    let mut out = Vec::new();
    let mut b = begin;
    match end {
        Some(e) => loop {
            let next = (b + span).min(e);
            out.push(Window::Span { begin: b, end: Some(next) });
            if next >= e {
                break;
            }
            b = next;
        },
        None => {
            while b + span < horizon {
                out.push(Window::Span { begin: b, end: Some(b + span) });
                b += span;
            }
            out.push(Window::Span { begin: b, end: None });
        }
    }
    out
}

fn label(window: Window) -> String {
    match window {
        Window::Whole => "logging".to_owned(),
        Window::Span { begin, end } => {
            format!("logging {} to {}", minute_text(begin), end.map_or_else(|| "now".to_owned(), minute_text))
        }
    }
}

/// One boundary minute's entries from both windows: the longer listing, plus what the other
/// has more often (a multiset maximum).
fn merge_minute(newer: Vec<Row>, older: Vec<Row>) -> Vec<Row> {
    let (mut base, other) = if older.len() > newer.len() { (older, newer) } else { (newer, older) };
    let key = |r: &Row| serde_json::to_string(r).unwrap_or_default();
    let mut budget: HashMap<String, usize> = HashMap::new();
    for r in &base {
        *budget.entry(key(r)).or_default() += 1;
    }
    for r in other {
        match budget.get_mut(&key(&r)) {
            Some(n) if *n > 0 => *n -= 1,
            _ => base.push(r),
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::NoProgress;

    fn t(s: &str) -> i64 {
        minutes(s).unwrap()
    }

    fn at(s: &str) -> SystemTime {
        let m = t(s);
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(m * 60).unwrap())
    }

    fn spans(w: &LogWindows<'_>) -> Vec<(String, Option<String>)> {
        w.todo
            .iter()
            .rev()
            .map(|w| match w {
                Window::Span { begin, end } => (minute_text(*begin), end.map(minute_text)),
                Window::Whole => (String::new(), None),
            })
            .collect()
    }

    fn entry(ts: &str, record: &str, details: &str) -> Row {
        let mut r = Row::new();
        r.insert("timestamp".into(), ts.into());
        r.insert("username".into(), "alice".into());
        r.insert("action".into(), format!("Update record (API) {record}").into());
        r.insert("details".into(), details.into());
        r.insert("record".into(), record.into());
        r
    }

    #[test]
    fn windows_cover_the_range_newest_first_sharing_only_their_boundaries() {
        let mut request = log::export::Request::new();
        request.begin_time = Some("2026-01-01 00:00".into());
        request.end_time = Some("2026-01-20 12:30".into());
        let w = LogWindows::new(&request, DEFAULT_WINDOW_MINUTES, at("2026-03-01 00:00"), &NoProgress);
        let got = spans(&w);
        let want = [
            ("2026-01-15 00:00", "2026-01-20 12:30"),
            ("2026-01-08 00:00", "2026-01-15 00:00"),
            ("2026-01-01 00:00", "2026-01-08 00:00"),
        ];
        let want: Vec<_> = want.iter().map(|(b, e)| ((*b).to_owned(), Some((*e).to_owned()))).collect();
        assert_eq!(got, want);
        // Any range, any span: from begin to end without a gap, consecutive windows meeting at
        // one minute, none longer than the span.
        for (begin, len, span) in [(0i64, 0i64, 1u32), (17, 1, 1), (5, 10_000, 7), (1_000, 59, 60), (3, 60, 60)] {
            let base = t("2025-06-30 23:00") + begin;
            let mut r = log::export::Request::new();
            r.begin_time = Some(minute_text(base));
            r.end_time = Some(minute_text(base + len));
            let w = LogWindows::new(&r, span, at("2026-03-01 00:00"), &NoProgress);
            let mut expect_end = base + len;
            let mut list: Vec<_> = w.todo.clone();
            list.reverse();
            for (i, win) in list.iter().enumerate() {
                let Window::Span { begin: b, end: Some(e) } = *win else { panic!("{win:?}") };
                assert_eq!(e, expect_end, "window {i} ends where the newer one begins");
                assert!(e - b <= i64::from(span) && (e > b || len == 0), "{b}..{e}");
                expect_end = b;
            }
            assert_eq!(expect_end, base, "the oldest window begins at beginTime");
        }
    }

    #[test]
    fn without_an_end_the_newest_window_is_open_and_the_grid_reaches_past_any_zone() {
        let mut request = log::export::Request::new();
        request.begin_time = Some("2026-01-01 00:00".into());
        request.record = Some("7".into());
        let mut w = LogWindows::new(&request, DEFAULT_WINDOW_MINUTES, at("2026-01-10 00:00"), &NoProgress);
        assert_eq!(
            spans(&w),
            [
                ("2026-01-08 00:00".to_owned(), None),
                ("2026-01-01 00:00".to_owned(), Some("2026-01-08 00:00".to_owned()))
            ]
        );
        let first = w.next_request().unwrap();
        assert_eq!((first.begin_time.as_deref(), first.end_time.as_deref()), (Some("2026-01-08 00:00"), None));
        assert_eq!(first.record.as_deref(), Some("7"), "the other filters are kept");
        assert_eq!(first.format, Some(redcap_core::Format::Json));
        // A sync's usual read, a day back: one call, as before windows.
        let mut recent = log::export::Request::new();
        recent.begin_time = Some("2026-01-09 00:00".into());
        let w = LogWindows::new(&recent, DEFAULT_WINDOW_MINUTES, at("2026-01-10 00:00"), &NoProgress);
        assert_eq!(spans(&w), [("2026-01-09 00:00".to_owned(), None)]);
        // Nothing to slice without a beginTime.
        let mut w = LogWindows::new(&log::export::Request::new(), 60, at("2026-01-10 00:00"), &NoProgress);
        assert_eq!(w.next_request().unwrap().begin_time, None);
        assert_eq!(w.answer(Ok(vec![entry("2020-01-01 00:00", "1", "")])).unwrap().len(), 1);
        assert!(w.next_request().is_none());
    }

    #[test]
    fn boundary_minutes_are_merged_without_losing_repeats() {
        let mut request = log::export::Request::new();
        request.begin_time = Some("2026-01-01 00:00".into());
        request.end_time = Some("2026-01-01 00:20".into());
        let mut w = LogWindows::new(&request, 10, at("2026-03-01 00:00"), &NoProgress);
        // Newest window: 00:10..00:20. Record 2 was updated twice identically at 00:10, and
        // record 3 once; the server counts all of 00:10 in this window.
        let r = w.next_request().unwrap();
        assert_eq!(r.begin_time.as_deref(), Some("2026-01-01 00:10"));
        let newer = vec![
            entry("2026-01-01 00:15", "1", "a = '1'"),
            entry("2026-01-01 00:10", "3", "b = '1'"),
            entry("2026-01-01 00:10", "2", "a = '2'"),
            entry("2026-01-01 00:10", "2", "a = '2'"),
        ];
        let out = w.answer(Ok(newer.clone())).unwrap();
        assert_eq!(out, newer[..1], "the boundary minute is held back");
        // Older window 00:00..00:10 sees only part of 00:10 (its first second, say).
        w.next_request().unwrap();
        let older = vec![
            entry("2026-01-01 00:10", "2", "a = '2'"),
            entry("2026-01-01 00:05", "4", "c = '1'"),
            entry("2026-01-01 00:00", "5", "c = '2'"),
        ];
        let out = w.answer(Ok(older.clone())).unwrap();
        assert_eq!(out, [newer[1].clone(), newer[2].clone(), newer[3].clone(), older[1].clone(), older[2].clone()]);
        assert!(w.next_request().is_none());
        let (rest, summary) = w.finish();
        assert!(rest.is_empty(), "the oldest window's first minute is nobody's boundary");
        assert_eq!((summary.entries, summary.requests, summary.halved), (6, 2, 0));
        // The other way round: the older window has more of the minute; and an entry only one
        // of them has is kept.
        let merged = merge_minute(
            vec![entry("t", "2", "x")],
            vec![entry("t", "2", "x"), entry("t", "2", "x"), entry("t", "9", "y")],
        );
        assert_eq!(merged, [entry("t", "2", "x"), entry("t", "2", "x"), entry("t", "9", "y")]);
        let merged = merge_minute(vec![entry("t", "1", "x"), entry("t", "2", "x")], vec![entry("t", "3", "x")]);
        assert_eq!(merged.len(), 3);
    }

    fn api(status: http::StatusCode, message: &str) -> WorkflowError {
        let e = redcap_core::ApiError::new(status, message, redcap_core::ApiErrorKind::Envelope);
        WorkflowError::Call(redcap_core::Error::Api(e))
    }

    fn timeout() -> WorkflowError {
        api(http::StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
    }

    #[test]
    fn a_window_that_times_out_is_halved_down_to_a_minute() {
        let mut request = log::export::Request::new();
        request.begin_time = Some("2026-01-01 00:00".into());
        request.end_time = Some("2026-01-01 00:08".into());
        let mut w = LogWindows::new(&request, 60, at("2026-03-01 00:00"), &NoProgress);
        w.next_request().unwrap();
        assert_eq!(w.answer(Err(timeout())).unwrap(), []);
        assert_eq!(
            spans(&w),
            [
                ("2026-01-01 00:04".to_owned(), Some("2026-01-01 00:08".to_owned())),
                ("2026-01-01 00:00".to_owned(), Some("2026-01-01 00:04".to_owned())),
            ]
        );
        let mut asked = Vec::new();
        // Every window of more than one minute fails: 00:04..00:08 → 00:06..00:08 → 00:07..00:08.
        while let Some(r) = w.next_request() {
            let (b, e) = (t(r.begin_time.as_deref().unwrap()), t(r.end_time.as_deref().unwrap()));
            asked.push((b, e));
            if e - b > 1 {
                assert_eq!(w.answer(Err(timeout())).unwrap(), []);
            } else {
                w.answer(Ok(vec![])).unwrap();
            }
        }
        // The one-minute windows that answered tile the range.
        let mut ok: Vec<(i64, i64)> = asked.into_iter().filter(|(b, e)| e - b == 1).collect();
        ok.sort();
        let base = t("2026-01-01 00:00");
        assert_eq!(ok, (0..8).map(|i| (base + i, base + i + 1)).collect::<Vec<_>>());
        let (_, summary) = w.finish();
        assert_eq!(summary.halved, 7);
        // A one-minute window that still fails, or a failure no smaller window survives, stops.
        let mut one = log::export::Request::new();
        one.begin_time = Some("2026-01-01 00:00".into());
        one.end_time = Some("2026-01-01 00:01".into());
        let mut w = LogWindows::new(&one, 60, at("2026-03-01 00:00"), &NoProgress);
        w.next_request().unwrap();
        assert!(w.answer(Err(timeout())).is_err());
        let mut w = LogWindows::new(&request, 60, at("2026-03-01 00:00"), &NoProgress);
        w.next_request().unwrap();
        let refused = api(http::StatusCode::FORBIDDEN, "You do not have Logging privileges");
        assert!(w.answer(Err(refused)).is_err());
    }
}
