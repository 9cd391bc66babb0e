//! The stall rule applied while a body arrives, written once for both clients: a transfer
//! that brings fewer than [`STALL_FLOOR`] bytes in a stall window is ended. (Total silence is
//! caught by the transports' per-read timeout; a trickle passes every per-read timeout, so the
//! client counts bytes.)

use std::time::{Duration, Instant};

use crate::transport::{STALL_FLOOR, TimeoutKind, TransportError};

/// Counts a body's bytes against the stall rule.
#[derive(Clone, Debug)]
pub struct StallGuard {
    window: Duration,
    window_start: Instant,
    in_window: u64,
}

impl StallGuard {
    /// Starts watching at `now`, with `window` ([`TransportConfig::stall_timeout`](crate::TransportConfig)).
    pub fn new(window: Duration, now: Instant) -> Self {
        StallGuard { window, window_start: now, in_window: 0 }
    }

    /// Records `bytes` received at `now`; an error when the window passed with too few.
    pub fn observe(&mut self, now: Instant, bytes: usize) -> Result<(), TransportError> {
        self.in_window += bytes as u64;
        if self.in_window >= STALL_FLOOR {
            self.window_start = now;
            self.in_window = 0;
            return Ok(());
        }
        if now.duration_since(self.window_start) >= self.window {
            let mut e = TransportError::timeout(TimeoutKind::Stall, self.window);
            e.set_message(format!(
                "the transfer stalled: under {STALL_FLOOR} bytes arrived in {} (stall timeout)",
                crate::transport::human(self.window)
            ));
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickle_is_stalled_a_flow_is_not() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut g = StallGuard::new(Duration::from_secs(10), t0);
        for i in 1..=9 {
            assert!(g.observe(t0 + s * i, 1).is_ok());
        }
        let e = g.observe(t0 + s * 10, 1).unwrap_err();
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::Stall));
        assert!(e.message().contains("stalled"), "{e}");

        let mut g = StallGuard::new(Duration::from_secs(10), t0);
        for i in 1..=100 {
            assert!(g.observe(t0 + s * i, 1024).is_ok(), "1 KiB/s is progress");
        }
    }
}
