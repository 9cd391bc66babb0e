//! Retry, backoff and redirect decisions, shared by the blocking and async clients.
//!
//! Rules (architecture "Retries", issue "Resilience"): only idempotent methods are retried, on
//! connect errors, timeouts, interrupted bodies, 408, 429 (honouring Retry-After), 500, 502, 503,
//! 504, and success statuses whose body is an HTML page or server failure text. Imports,
//! deletes and createFolder are never retried: the File Repository does not de-duplicate names,
//! so a retried upload would store a second copy. A redirected POST is re-sent to the new
//! location only on the same scheme, host and port; anything else is refused so the token never
//! travels elsewhere.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, StatusCode, header};

use crate::error::{ApiError, ApiErrorKind};
use crate::method::MethodInfo;
use crate::transport::{FailureKind, TimeoutKind, TransportError};
use crate::url::ApiUrl;

/// How hard to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Longest computed delay.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a longer one ends the retries.
    pub max_retry_after: Duration,
    /// Redirects followed per call.
    pub max_redirects: u32,
    /// Retries after a timeout (within `max_attempts`): a server that did not answer in the
    /// stall time is rarely quicker the next time, so it is given one more chance, not three.
    pub max_timeout_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            max_redirects: 3,
            max_timeout_retries: 1,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        RetryPolicy { max_attempts: 1, ..Self::default() }
    }

    /// Sets the attempts.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the base delay.
    pub fn with_base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }
}

pub use crate::error::RedirectError;

/// The next step after a response head.
#[derive(Clone, Debug, PartialEq, Eq)]
// Exhaustive on purpose: a new case must fail every client's build, not fall into `_`.
pub enum AfterStatus {
    /// Read the body and handle it.
    Proceed,
    /// Wait, then send again.
    Retry(Duration),
    /// Send again to this URL (the same server): say so, the URL should be updated.
    Redirect(ApiUrl),
    /// Stop: a redirect that must not be followed.
    Refuse(RedirectError),
}

/// The decision state of one call.
#[derive(Clone, Debug)]
pub struct Attempts<'a> {
    policy: &'a RetryPolicy,
    info: &'static MethodInfo,
    attempt: u32,
    redirects: u32,
    timeouts: u32,
    deadline: Option<(Instant, Duration)>,
}

impl<'a> Attempts<'a> {
    /// Starts a call of `info` under `policy`.
    pub fn new(policy: &'a RetryPolicy, info: &'static MethodInfo) -> Self {
        Attempts { policy, info, attempt: 1, redirects: 0, timeouts: 0, deadline: None }
    }

    /// Limits the whole call, retries included, to `overall` from now (`None`: no limit).
    pub fn with_overall_timeout(mut self, overall: Option<Duration>) -> Self {
        self.deadline = overall.map(|d| (Instant::now() + d, d));
        self
    }

    /// The current attempt, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Before each attempt: how long it may take (what is left of the overall timeout, for
    /// [`PreparedRequest::set_timeout`](crate::PreparedRequest::set_timeout)), or the
    /// timeout error when nothing is left.
    pub fn before_send(&self) -> Result<Option<Duration>, TransportError> {
        match self.deadline {
            None => Ok(None),
            Some((at, overall)) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(TransportError::timeout(TimeoutKind::Overall, overall)),
            },
        }
    }

    /// A transport's overall timeout names the time left for its attempt; the call's error
    /// names the overall timeout as configured.
    pub fn name_timeout(&self, e: TransportError) -> TransportError {
        match (e.timeout_kind(), self.deadline) {
            (Some(TimeoutKind::Overall), Some((_, overall))) => {
                let mut named = TransportError::timeout(TimeoutKind::Overall, overall);
                if let Some(source) = e.into_source() {
                    named = named.with_boxed_source(source);
                }
                named
            }
            _ => e,
        }
    }

    fn retry_after_backoff(&mut self, hint: Option<Duration>) -> Option<Duration> {
        if !self.info.idempotent || self.attempt >= self.policy.max_attempts {
            return None;
        }
        let delay = match hint {
            Some(d) if d > self.policy.max_retry_after => return None,
            Some(d) => d,
            None => backoff(self.policy, self.attempt),
        };
        // A retry that could not start before the deadline is not made: the caller gets the
        // real error now rather than a timeout later.
        if self.deadline.is_some_and(|(at, _)| Instant::now() + delay >= at) {
            return None;
        }
        self.attempt += 1;
        Some(delay)
    }

    /// Decides what to do with a response head.
    pub fn after_status(&mut self, current: &ApiUrl, status: StatusCode, headers: &HeaderMap) -> AfterStatus {
        match status.as_u16() {
            301 | 302 | 307 | 308 => {
                let location = headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
                let Some(location) = location else {
                    return AfterStatus::Refuse(RedirectError::Unusable {
                        status: status.as_u16(),
                        what: "no Location header".into(),
                    });
                };
                if self.redirects >= self.policy.max_redirects {
                    return AfterStatus::Refuse(RedirectError::TooMany(self.policy.max_redirects));
                }
                self.redirects += 1;
                match same_server_redirect(current, location) {
                    Ok(url) => AfterStatus::Redirect(url),
                    Err(e) => AfterStatus::Refuse(e),
                }
            }
            303 => AfterStatus::Refuse(RedirectError::Unusable {
                status: 303,
                what: "See Other (a redirect to a GET)".into(),
            }),
            408 | 429 | 500 | 502 | 503 | 504 => match self.retry_after_backoff(retry_after(headers)) {
                Some(d) => AfterStatus::Retry(d),
                None => AfterStatus::Proceed,
            },
            _ => AfterStatus::Proceed,
        }
    }

    /// Whether to retry after a transport failure, and after how long.
    pub fn after_failure(&mut self, kind: FailureKind) -> Option<Duration> {
        if kind == FailureKind::Timeout {
            if self.timeouts >= self.policy.max_timeout_retries {
                return None;
            }
            let wait = self.retry_after_backoff(None)?;
            self.timeouts += 1;
            return Some(wait);
        }
        if kind.is_transient() { self.retry_after_backoff(None) } else { None }
    }

    /// Whether to retry after a success status whose body was an error page or server text.
    pub fn after_api_error(&mut self, error: &ApiError) -> Option<Duration> {
        let disguised = error.status().is_success() && error.kind() != ApiErrorKind::Envelope;
        if disguised { self.retry_after_backoff(None) } else { None }
    }
}

/// Exponential backoff with jitter: a random delay between half and all of `base * 2^(n-1)`,
/// capped at `max_delay` (jitter spreads clients that failed together).
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy.base_delay.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16));
    let capped = exp.min(policy.max_delay);
    let half = capped / 2;
    half + half.mul_f64(fastrand::f64())
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// Resolves `location` against `current` and accepts it only on the same scheme, host and port.
pub fn same_server_redirect(current: &ApiUrl, location: &str) -> Result<ApiUrl, RedirectError> {
    let target = current
        .as_url()
        .join(location)
        .map_err(|e| RedirectError::Unusable { status: 0, what: format!("an unusable Location ({e})") })?;
    if target.origin() != current.origin() {
        return Err(RedirectError::OtherServer { from: current.to_string(), to: target.to_string() });
    }
    let parse = if current.is_http() { ApiUrl::parse_allow_http } else { ApiUrl::parse };
    parse(target.as_str())
        .map_err(|e| RedirectError::Unusable { status: 0, what: format!("a Location that is not an API URL ({e})") })
}

/// Spaces calls to at most `per_minute` (sans-IO: the caller sleeps for what it returns).
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Option<std::time::Instant>,
}

impl Pacer {
    /// At most `per_minute` calls a minute (0 means no limit).
    pub fn per_minute(per_minute: u32) -> Self {
        let interval = if per_minute == 0 { Duration::ZERO } else { Duration::from_secs(60) / per_minute };
        Pacer { interval, next: None }
    }

    /// Reserves the next slot at or after `now`; returns how long to wait for it.
    pub fn reserve(&mut self, now: std::time::Instant) -> Duration {
        if self.interval.is_zero() {
            return Duration::ZERO;
        }
        let slot = match self.next {
            Some(next) if next > now => next,
            _ => now,
        };
        self.next = Some(slot + self.interval);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::ResponseKind;

    static EXPORT: MethodInfo = MethodInfo::new("t.export", "t", None, ResponseKind::Data, true);
    static IMPORT: MethodInfo = MethodInfo::new("t.import", "t", Some("import"), ResponseKind::Empty, false);

    fn url() -> ApiUrl {
        ApiUrl::parse("https://redcap.example.edu/redcap/api/").unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn idempotent_calls_retry_transient_failures_then_give_up() {
        let policy = RetryPolicy::default();
        let mut a = Attempts::new(&policy, &EXPORT);
        for status in [503, 500, 502] {
            assert!(matches!(
                a.after_status(&url(), StatusCode::from_u16(status).unwrap(), &HeaderMap::new()),
                AfterStatus::Retry(_)
            ));
        }
        assert_eq!(a.after_status(&url(), StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new()), AfterStatus::Proceed);
        assert_eq!(a.attempt(), 4);
    }

    #[test]
    fn timeouts_are_retried_once_and_never_past_the_deadline() {
        let policy = RetryPolicy::default();
        let mut a = Attempts::new(&policy, &EXPORT);
        assert!(a.after_failure(FailureKind::Timeout).is_some());
        assert_eq!(a.after_failure(FailureKind::Timeout), None, "a second timeout ends the call");
        assert!(a.after_failure(FailureKind::Connect).is_some(), "other failures keep their retries");

        let slow = RetryPolicy { base_delay: Duration::from_secs(60), ..RetryPolicy::default() };
        let mut a = Attempts::new(&slow, &EXPORT).with_overall_timeout(Some(Duration::from_secs(5)));
        let left = a.before_send().unwrap().unwrap();
        assert!(left <= Duration::from_secs(5) && left > Duration::from_secs(4), "{left:?}");
        assert_eq!(a.after_failure(FailureKind::Connect), None, "a 30-60 s backoff would pass the deadline");
        let a = Attempts::new(&policy, &EXPORT).with_overall_timeout(Some(Duration::ZERO));
        let e = a.before_send().unwrap_err();
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::Overall));
        assert!(e.message().contains("overall timeout"), "{e}");
    }

    #[test]
    fn writes_are_never_retried() {
        let policy = RetryPolicy::default();
        let mut a = Attempts::new(&policy, &IMPORT);
        assert_eq!(a.after_status(&url(), StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new()), AfterStatus::Proceed);
        assert_eq!(a.after_failure(FailureKind::Connect), None);
        assert_eq!(a.after_failure(FailureKind::Interrupted), None);
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let policy = RetryPolicy::default();
        let mut a = Attempts::new(&policy, &EXPORT);
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(
            a.after_status(&url(), StatusCode::TOO_MANY_REQUESTS, &h),
            AfterStatus::Retry(Duration::from_secs(7))
        );
        let h = headers(&[("retry-after", "100000")]);
        assert_eq!(a.after_status(&url(), StatusCode::TOO_MANY_REQUESTS, &h), AfterStatus::Proceed);
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let got = retry_after(&headers(&[("retry-after", &date)])).unwrap();
        assert!(got <= Duration::from_secs(30) && got >= Duration::from_secs(28), "{got:?}");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy::default();
        for attempt in 1..6 {
            let full = p.base_delay * (1 << (attempt - 1));
            let d = backoff(&p, attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(&p, 30) <= p.max_delay);
    }

    #[test]
    fn redirects_stay_on_the_same_server() {
        let policy = RetryPolicy::default();
        let mut a = Attempts::new(&policy, &IMPORT);
        let moved = headers(&[("location", "/new/api/")]);
        assert_eq!(
            a.after_status(&url(), StatusCode::PERMANENT_REDIRECT, &moved),
            AfterStatus::Redirect(ApiUrl::parse("https://redcap.example.edu/new/api/").unwrap())
        );
        for target in [
            "https://evil.example.com/api/",
            "http://redcap.example.edu/redcap/api/",
            "https://redcap.example.edu:8443/api/",
        ] {
            let h = headers(&[("location", target)]);
            let mut a = Attempts::new(&policy, &IMPORT);
            assert!(
                matches!(
                    a.after_status(&url(), StatusCode::FOUND, &h),
                    AfterStatus::Refuse(RedirectError::OtherServer { .. })
                ),
                "{target}"
            );
        }
        assert!(matches!(a.after_status(&url(), StatusCode::SEE_OTHER, &moved), AfterStatus::Refuse(_)));
        // A redirect loop ends.
        let mut a = Attempts::new(&policy, &IMPORT);
        for _ in 0..policy.max_redirects {
            assert!(matches!(a.after_status(&url(), StatusCode::FOUND, &moved), AfterStatus::Redirect(_)));
        }
        assert_eq!(a.after_status(&url(), StatusCode::FOUND, &moved), AfterStatus::Refuse(RedirectError::TooMany(3)));
    }

    #[test]
    fn html_at_200_is_retried_but_envelopes_are_not() {
        let policy = RetryPolicy::default();
        let mut a = Attempts::new(&policy, &EXPORT);
        let html = ApiError::new(StatusCode::OK, "Service Unavailable", ApiErrorKind::HtmlPage);
        assert!(a.after_api_error(&html).is_some());
        let envelope = ApiError::new(StatusCode::OK, "x", ApiErrorKind::Envelope);
        assert_eq!(a.after_api_error(&envelope), None);
        let forbidden = ApiError::new(StatusCode::FORBIDDEN, "no", ApiErrorKind::Envelope);
        assert_eq!(a.after_api_error(&forbidden), None);
    }

    #[test]
    fn pacer_spaces_calls() {
        let mut p = Pacer::per_minute(60);
        let t0 = std::time::Instant::now();
        assert_eq!(p.reserve(t0), Duration::ZERO);
        assert_eq!(p.reserve(t0), Duration::from_secs(1));
        assert_eq!(p.reserve(t0), Duration::from_secs(2));
        assert_eq!(Pacer::per_minute(0).reserve(t0), Duration::ZERO);
    }
}
