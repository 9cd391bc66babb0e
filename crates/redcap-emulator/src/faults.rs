//! Fault injection for client tests. Off by default; driven through [`Faults`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One kind of injected failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a REDCap error envelope (in the call's error format)
    /// carrying `message`, without running the call.
    Status {
        /// HTTP status, e.g. 500 or 503.
        status: u16,
        /// Error message in the envelope.
        message: String,
    },
    /// Run the call, then reset the TCP connection (RST) after `bytes` bytes of the body.
    ResetAfter {
        /// Body bytes sent before the reset.
        bytes: u64,
    },
    /// Run the call, announce the full Content-Length, send only `bytes` bytes and close.
    Truncate {
        /// Body bytes sent.
        bytes: u64,
    },
    /// Answer 200 with an HTML error page, without running the call (REDCap's PHP error pages
    /// and "multiple browser tabs" screens arrive with status 200).
    HtmlPage,
    /// Answer 429 Too Many Requests with `Retry-After: <seconds>`, without running the call.
    RateLimited {
        /// Value of the Retry-After header, in seconds.
        retry_after_secs: u64,
    },
    /// Answer with a redirect, `status` (e.g. 301, 302, 307, 308) and `Location: <location>`,
    /// without running the call: what a web server in front of REDCap does when the API URL
    /// moved or http is sent to https (reference §1, "Redirects").
    Redirect {
        /// HTTP status.
        status: u16,
        /// Value of the Location header.
        location: String,
    },
}

impl Fault {
    /// Whether the call still runs (its effects happen) before the fault shows.
    pub fn runs_call(&self) -> bool {
        matches!(self, Fault::ResetAfter { .. } | Fault::Truncate { .. })
    }
}

#[derive(Debug, Default)]
struct State {
    latency: Duration,
    queue: VecDeque<(Fault, u32)>,
}

/// Handle to the fault plan of a running emulator. Cheap to clone; changes apply to the next
/// API call (requests to `/api/` only).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    calls: Arc<AtomicU64>,
}

impl Faults {
    /// Delays every call by `latency` (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The next `times` calls get `fault` (queued after faults already planned).
    pub fn inject(&self, fault: Fault, times: u32) {
        if times > 0 {
            self.lock().queue.push_back((fault, times));
        }
    }

    /// The next `times` calls fail with `status` and a generic message.
    pub fn fail_next(&self, times: u32, status: u16) {
        self.inject(
            Fault::Status { status, message: format!("Injected failure (HTTP {status}) by the REDCap emulator") },
            times,
        );
    }

    /// Removes every planned fault and the latency.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.queue.clear();
        s.latency = Duration::ZERO;
    }

    /// Number of faults still planned.
    pub fn pending(&self) -> u32 {
        self.lock().queue.iter().map(|(_, n)| *n).sum()
    }

    /// How many API calls the emulator has received (faulted ones included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts a call and takes the fault (if any) planned for it, plus the latency.
    pub(crate) fn next_call(&self) -> (Duration, Option<Fault>) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut s = self.lock();
        let latency = s.latency;
        let fault = match s.queue.front_mut() {
            Some((fault, n)) => {
                let f = fault.clone();
                *n -= 1;
                if *n == 0 {
                    s.queue.pop_front();
                }
                Some(f)
            }
            None => None,
        };
        (latency, fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_counts_down() {
        let f = Faults::default();
        f.fail_next(2, 503);
        f.inject(Fault::HtmlPage, 1);
        assert_eq!(f.pending(), 3);
        assert!(matches!(f.next_call().1, Some(Fault::Status { status: 503, .. })));
        assert!(matches!(f.next_call().1, Some(Fault::Status { status: 503, .. })));
        assert_eq!(f.next_call().1, Some(Fault::HtmlPage));
        assert_eq!(f.next_call().1, None);
        assert_eq!(f.calls(), 4);
    }
}
