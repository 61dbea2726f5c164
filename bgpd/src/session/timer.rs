//! The per-connection timers of RFC 4271 §10 as deadlines. A stopped timer is `None`; an
//! expired one becomes its RFC event through [`super::Fsm::poll`].

use std::time::Instant;

use super::event::Event;

/// A per-connection timer (RFC 4271 §8, §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// ConnectRetryTimer.
    ConnectRetry,
    /// HoldTimer.
    Hold,
    /// KeepaliveTimer.
    Keepalive,
    /// DelayOpenTimer.
    DelayOpen,
}

impl TimerKind {
    /// The event the timer raises when it expires.
    pub fn event(self) -> Event {
        match self {
            Self::ConnectRetry => Event::ConnectRetryTimerExpires,
            Self::Hold => Event::HoldTimerExpires,
            Self::Keepalive => Event::KeepaliveTimerExpires,
            Self::DelayOpen => Event::DelayOpenTimerExpires,
        }
    }
}

/// Deadlines of the running timers of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timers {
    /// ConnectRetryTimer.
    pub connect_retry: Option<Instant>,
    /// HoldTimer.
    pub hold: Option<Instant>,
    /// KeepaliveTimer.
    pub keepalive: Option<Instant>,
    /// DelayOpenTimer.
    pub delay_open: Option<Instant>,
}

impl Timers {
    /// The deadline of one timer.
    pub fn get(&self, kind: TimerKind) -> Option<Instant> {
        match kind {
            TimerKind::ConnectRetry => self.connect_retry,
            TimerKind::Hold => self.hold,
            TimerKind::Keepalive => self.keepalive,
            TimerKind::DelayOpen => self.delay_open,
        }
    }

    /// Set (`Some`) or stop (`None`) one timer.
    pub fn set(&mut self, kind: TimerKind, deadline: Option<Instant>) {
        let slot = match kind {
            TimerKind::ConnectRetry => &mut self.connect_retry,
            TimerKind::Hold => &mut self.hold,
            TimerKind::Keepalive => &mut self.keepalive,
            TimerKind::DelayOpen => &mut self.delay_open,
        };
        *slot = deadline;
    }

    /// Running timers, earliest first (ties in the order ConnectRetry, Hold, Keepalive,
    /// DelayOpen, so a hold expiry is seen before a keepalive due at the same instant).
    pub fn running(&self) -> Vec<(Instant, TimerKind)> {
        let mut v: Vec<(Instant, TimerKind)> = [
            TimerKind::ConnectRetry,
            TimerKind::Hold,
            TimerKind::Keepalive,
            TimerKind::DelayOpen,
        ]
        .into_iter()
        .filter_map(|k| self.get(k).map(|t| (t, k)))
        .collect();
        v.sort_by_key(|(t, _)| *t);
        v
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.running().first().map(|(t, _)| *t)
    }
}
