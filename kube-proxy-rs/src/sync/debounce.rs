//! When to sync: a pure state machine in the role of upstream's `BoundedFrequencyRunner`
//! plus the proxier's full-sync bookkeeping. It takes `(now, Event)` and returns
//! [`Action`]s; the driver turns them into syncs, canary checks and one timer.
//!
//! ```text
//!   Start, Changed, NodeChanged, CanaryGone, Timer, Synced{full, ok}
//!        │
//!        v            token bucket: burst 2, one token per --min-sync-period
//!   Debouncer ──> Sync { full: Some(reason) | None, trigger }     (one in flight at a time)
//!             ──> CheckCanaries                                   (every --sync-period)
//!             ──> WakeAt(t)                                       (the next time anything is due)
//! ```
//! - A change syncs at once while tokens last, else when the next token comes; changes that
//!   arrive meanwhile (or during a sync) are folded into that one sync.
//! - A sync also runs every `sync_period` after the last one (the periodic resync that
//!   removes stale chains and reconciles conntrack), and a full one every `full_sync_period`
//!   (upstream `FullSyncPeriod`, an hour).
//! - Full syncs: at start, when this node changed, when a canary is gone, after a failed
//!   sync and hourly. A failed sync is retried (full) after `retry_min`, doubling up to
//!   `sync_period` while it keeps failing; a change arriving earlier syncs (full) at once.

use std::time::{Duration, Instant};

/// The timing parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `--min-sync-period`: one token per period (0: no limit).
    pub min_sync_period: Duration,
    /// Syncs allowed back to back before the limit applies (upstream `burstSyncs`, 2).
    pub burst: u32,
    /// `--sync-period`: periodic resync and canary check.
    pub sync_period: Duration,
    /// Full sync at least this often (upstream `FullSyncPeriod`, 1 h).
    pub full_sync_period: Duration,
    /// First retry delay after a failed sync.
    pub retry_min: Duration,
}

impl Timing {
    /// Upstream's defaults for the given periods.
    pub fn new(min_sync_period: Duration, sync_period: Duration) -> Timing {
        Timing {
            min_sync_period,
            burst: 2,
            sync_period,
            full_sync_period: Duration::from_secs(3600),
            retry_min: Duration::from_secs(1).min(sync_period),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The sources have their initial lists: start syncing.
    Start,
    /// A Service or EndpointSlice changed.
    Changed,
    /// This node changed (labels, addresses, pod CIDRs).
    NodeChanged,
    /// A canary chain is gone (someone flushed the tables).
    CanaryGone,
    /// The time asked for with [`Action::WakeAt`] has come.
    Timer,
    /// The sync asked for finished.
    Synced {
        /// It was a full sync.
        full: bool,
        /// Every family applied.
        ok: bool,
    },
}

/// Why a sync is a full one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FullReason {
    /// The first sync.
    Start,
    /// This node changed.
    NodeChanged,
    /// A canary chain disappeared.
    CanaryGone,
    /// The previous sync failed.
    Failure,
    /// `full_sync_period` since the last full sync.
    Periodic,
}

impl FullReason {
    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FullReason::Start => "start",
            FullReason::NodeChanged => "node changed",
            FullReason::CanaryGone => "canary chain gone",
            FullReason::Failure => "previous sync failed",
            FullReason::Periodic => "hourly full sync",
        }
    }
}

/// What asked for a sync (the first cause; later ones are folded in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Start.
    Start,
    /// Object changes.
    Changes,
    /// This node changed.
    NodeChanged,
    /// A canary disappeared.
    CanaryGone,
    /// `sync_period` since the last sync.
    Periodic,
    /// Retrying a failed sync.
    Retry,
}

impl Trigger {
    /// A short label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Changes => "changes",
            Trigger::NodeChanged => "node changed",
            Trigger::CanaryGone => "canary gone",
            Trigger::Periodic => "periodic",
            Trigger::Retry => "retry",
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Sync now (full when a reason is given), then report [`Event::Synced`].
    Sync {
        /// Why it must be a full sync, if it must.
        full: Option<FullReason>,
        /// What asked for it.
        trigger: Trigger,
    },
    /// Check the canary chains; report [`Event::CanaryGone`] if one is missing.
    CheckCanaries,
    /// Report [`Event::Timer`] at this time (replaces any earlier request).
    WakeAt(Instant),
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct Debouncer {
    timing: Timing,
    started: bool,
    /// Token bucket as GCRA: the theoretical arrival time of the next token.
    tat: Option<Instant>,
    /// A sync is wanted, first asked for by this.
    wanted: Option<Trigger>,
    need_full: Option<FullReason>,
    in_flight: Option<bool>,
    last_sync: Option<Instant>,
    last_full: Option<Instant>,
    next_canary: Option<Instant>,
    retry_at: Option<Instant>,
    retry_delay: Duration,
}

impl Debouncer {
    /// A debouncer that does nothing until [`Event::Start`].
    pub fn new(timing: Timing) -> Debouncer {
        Debouncer {
            timing,
            started: false,
            tat: None,
            wanted: None,
            need_full: None,
            in_flight: None,
            last_sync: None,
            last_full: None,
            next_canary: None,
            retry_at: None,
            retry_delay: timing.retry_min,
        }
    }

    /// The timing it was built with.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Whether a sync has been asked for and not yet started.
    pub fn pending(&self) -> bool {
        self.wanted.is_some()
    }

    fn want(&mut self, t: Trigger) {
        self.wanted.get_or_insert(t);
    }

    fn want_full(&mut self, r: FullReason, t: Trigger) {
        self.need_full.get_or_insert(r);
        self.want(t);
    }

    /// The earliest time a token is available.
    fn next_token(&self) -> Option<Instant> {
        let tolerance = self
            .timing
            .min_sync_period
            .saturating_mul(self.timing.burst.saturating_sub(1));
        // allowed at `now` iff now + tolerance >= tat
        self.tat
            .map(|tat| tat.checked_sub(tolerance).unwrap_or(tat))
    }

    fn token_available(&self, now: Instant) -> bool {
        self.timing.min_sync_period.is_zero()
            || self.tat.is_none_or(|tat| {
                now + self
                    .timing
                    .min_sync_period
                    .saturating_mul(self.timing.burst.saturating_sub(1))
                    >= tat
            })
    }

    fn take_token(&mut self, now: Instant) {
        let base = self.tat.map_or(now, |t| t.max(now));
        self.tat = Some(base + self.timing.min_sync_period);
    }

    /// Handles one event; returns what to do, a [`Action::WakeAt`] last when a timer is
    /// needed.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        let period = self.timing.sync_period;
        match event {
            Event::Start => {
                self.started = true;
                // Changes seen before the start are part of the first sync.
                self.wanted = Some(Trigger::Start);
                self.need_full = Some(FullReason::Start);
            }
            Event::Changed => self.want(Trigger::Changes),
            Event::NodeChanged => self.want_full(FullReason::NodeChanged, Trigger::NodeChanged),
            Event::CanaryGone => self.want_full(FullReason::CanaryGone, Trigger::CanaryGone),
            Event::Timer => {}
            Event::Synced { full, ok } => {
                self.in_flight = None;
                self.last_sync = Some(now);
                if ok {
                    if full {
                        self.last_full = Some(now);
                        self.next_canary.get_or_insert(now + period);
                    }
                    self.retry_at = None;
                    self.retry_delay = self.timing.retry_min;
                } else {
                    self.need_full.get_or_insert(FullReason::Failure);
                    self.retry_at = Some(now + self.retry_delay);
                    self.retry_delay =
                        (self.retry_delay * 2).min(period.max(self.timing.retry_min));
                }
            }
        }
        if !self.started {
            return actions;
        }

        // Timers that are due.
        if self.next_canary.is_some_and(|t| now >= t) && self.in_flight.is_none() {
            actions.push(Action::CheckCanaries);
            self.next_canary = Some(now + period);
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            self.want(Trigger::Retry);
        }
        if self.last_sync.is_some_and(|t| now >= t + period) {
            self.want(Trigger::Periodic);
        }
        if self
            .last_full
            .is_some_and(|t| now >= t + self.timing.full_sync_period)
        {
            self.want_full(FullReason::Periodic, Trigger::Periodic);
        }

        // Sync if wanted, none is running and the rate limit allows it.
        if self.in_flight.is_none()
            && let Some(trigger) = self.wanted
            && self.token_available(now)
        {
            self.wanted = None;
            self.take_token(now);
            let full = self.need_full.take();
            self.in_flight = Some(full.is_some());
            actions.push(Action::Sync { full, trigger });
        }

        // The next time something is due.
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.in_flight.is_none() {
            consider(self.next_canary);
            consider(self.retry_at);
            consider(self.last_sync.map(|t| t + period));
            consider(self.last_full.map(|t| t + self.timing.full_sync_period));
            if self.wanted.is_some() {
                consider(self.next_token().map(|t| t.max(now)));
            }
        }
        if let Some(t) = next {
            actions.push(Action::WakeAt(t));
        }
        actions
    }
}

#[cfg(test)]
mod tests;
