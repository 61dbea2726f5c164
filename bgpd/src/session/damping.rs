//! Peer oscillation damping (RFC 4271 §8.1.1 DampPeerOscillations): how long a peer stays in
//! Idle (the IdleHoldTime) after a failure. In: failures and Established instants. Out: the
//! next IdleHoldTime.
//!
//! ```text
//!   failures:   1    2    3    4  …  8     9 …      (initial 1 s, max 120 s)
//!   idle hold:  1 s  2 s  4 s  8 s   120 s 120 s
//!   a session Established for `stable` before it fails starts the count again at 1.
//! ```

use std::time::{Duration, Instant};

use super::config::DampingConfig;

/// The failure count and its IdleHoldTime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damping {
    config: DampingConfig,
    failures: u32,
    established_at: Option<Instant>,
}

impl Damping {
    /// No failures yet.
    pub fn new(config: DampingConfig) -> Self {
        Self {
            config,
            failures: 0,
            established_at: None,
        }
    }

    /// A session reached Established at `now`.
    pub fn established(&mut self, now: Instant) {
        self.established_at = Some(now);
    }

    /// The peer failed (every connection gone, not stopped by us): count it and return how
    /// long to stay Idle. A session that had been Established for `stable` resets the count.
    pub fn failure(&mut self, now: Instant) -> Duration {
        if self
            .established_at
            .take()
            .is_some_and(|t| now.saturating_duration_since(t) >= self.config.stable)
        {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.idle_hold()
    }

    /// Failures since the last stable session.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The IdleHoldTime for the current failure count: `initial · 2^(failures-1)`, at most
    /// `max` (and `initial` before any failure).
    pub fn idle_hold(&self) -> Duration {
        let shift = self.failures.saturating_sub(1).min(31);
        self.config
            .initial
            .checked_mul(1u32 << shift)
            .map_or(self.config.max, |d| d.min(self.config.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_bound_and_resets_after_a_stable_session() {
        let t0 = Instant::now();
        let mut d = Damping::new(DampingConfig::default());
        let holds: Vec<u64> = (0..10).map(|_| d.failure(t0).as_secs()).collect();
        assert_eq!(holds, [1, 2, 4, 8, 16, 32, 64, 120, 120, 120]);
        // short session: keeps counting
        d.established(t0);
        assert_eq!(d.failure(t0 + Duration::from_secs(59)).as_secs(), 120);
        // stable session: starts again
        d.established(t0);
        assert_eq!(d.failure(t0 + Duration::from_secs(60)).as_secs(), 1);
        assert_eq!(d.failures(), 1);
        // many failures never overflow
        for _ in 0..100 {
            d.failure(t0);
        }
        assert_eq!(d.idle_hold(), Duration::from_secs(120));
    }
}
