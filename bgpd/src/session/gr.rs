//! Graceful restart as pure logic (RFC 4724, RFC 8538).
//!
//! ```text
//!   helper (per peer, RFC 4724 §4.2)                     restarting speaker (RFC 4724 §4.1)
//!   session down, routes retained ─> MarkStale(f),        SelectionDeferral: per family, wait for
//!        restart timer (peer's Restart Time)              End-of-RIB from every peer that
//!   timer expires ─────────────────> FlushAll              advertised GR without the R bit, or
//!   back with F bit for f ─────────> keep f stale,         for the Selection_Deferral_Timer;
//!        stale timer                                       then SelectionReady { family } lets
//!   back without F / without GR ───> SweepStale(f)         the RIB run best path and sweep the
//!   End-of-RIB(f) / stale timer ───> SweepStale(f)         kernel routes it did not re-learn
//!   down again while stale ────────> SweepStale(f) first (consecutive restarts)
//! ```
//!
//! In: session up/down with the negotiated [`Established`], End-of-RIB markers, `now`.
//! Out: [`RibAction`]s (helper) or [`SelectionReady`] (deferral). Which session ends keep
//! routes at all is [`Established::retains_routes`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::action::{Established, RibAction};
use crate::wire::AfiSafi;

/// Helper-mode state for one peer (RFC 4724 §4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Helper {
    stale: BTreeSet<AfiSafi>,
    restart_deadline: Option<Instant>,
    stale_deadline: Option<Instant>,
}

impl Helper {
    /// Families whose routes from the peer are currently kept as stale.
    pub fn stale(&self) -> impl Iterator<Item = AfiSafi> + '_ {
        self.stale.iter().copied()
    }

    /// When the peer's Restart Time runs out (while its session is down).
    pub fn restart_deadline(&self) -> Option<Instant> {
        self.restart_deadline
    }

    /// When stale routes are swept even without End-of-RIB (while its session is up).
    pub fn stale_deadline(&self) -> Option<Instant> {
        self.stale_deadline
    }

    /// The earlier of both deadlines.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.restart_deadline
            .into_iter()
            .chain(self.stale_deadline)
            .min()
    }

    /// The session `s` went down. With `retain`, keep the routes of the families the peer
    /// listed in its capability (stale), flush the others, and start the restart timer;
    /// otherwise flush everything.
    pub fn session_down(&mut self, now: Instant, s: &Established, retain: bool) -> Vec<RibAction> {
        let gr = match &s.peer_gr {
            Some(gr) if retain && gr.restart_time > 0 => gr,
            _ => return self.flush(),
        };
        let mut out: Vec<RibAction> = std::mem::take(&mut self.stale)
            .into_iter()
            .map(RibAction::SweepStale) // consecutive restarts: old stale routes go
            .collect();
        for f in &s.families {
            if gr.families.iter().any(|g| g.afi_safi == *f) {
                out.push(RibAction::MarkStale(*f));
                self.stale.insert(*f);
            } else {
                out.push(RibAction::Flush(*f));
            }
        }
        self.stale_deadline = None;
        self.restart_deadline =
            (!self.stale.is_empty()).then(|| now + Duration::from_secs(gr.restart_time.into()));
        out
    }

    /// The session is back as `s`: families the peer no longer preserves (F bit clear, family
    /// or capability missing, family not negotiated) are swept now; the rest stay stale until
    /// their End-of-RIB or `stale_time`.
    pub fn session_up(
        &mut self,
        now: Instant,
        s: &Established,
        stale_time: Duration,
    ) -> Vec<RibAction> {
        self.restart_deadline = None;
        let mut out = Vec::new();
        let kept = |f: AfiSafi| {
            s.families.contains(&f)
                && s.peer_gr.as_ref().is_some_and(|g| {
                    g.families
                        .iter()
                        .any(|x| x.afi_safi == f && x.forwarding_preserved)
                })
        };
        self.stale.retain(|f| {
            let keep = kept(*f);
            if !keep {
                out.push(RibAction::SweepStale(*f));
            }
            keep
        });
        self.stale_deadline = (!self.stale.is_empty()).then(|| now + stale_time);
        out
    }

    /// End-of-RIB from the peer for `family`: its remaining stale routes go.
    pub fn end_of_rib(&mut self, family: AfiSafi) -> Vec<RibAction> {
        if !self.stale.remove(&family) {
            return Vec::new();
        }
        if self.stale.is_empty() {
            self.stale_deadline = None;
        }
        vec![RibAction::SweepStale(family)]
    }

    /// Expire the timers due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<RibAction> {
        if self.restart_deadline.is_some_and(|t| t <= now) {
            return self.flush();
        }
        if self.stale_deadline.is_some_and(|t| t <= now) {
            self.stale_deadline = None;
            return std::mem::take(&mut self.stale)
                .into_iter()
                .map(RibAction::SweepStale)
                .collect();
        }
        Vec::new()
    }

    /// Forget everything and flush the peer's routes.
    pub fn flush(&mut self) -> Vec<RibAction> {
        *self = Self::default();
        vec![RibAction::FlushAll]
    }

    /// Forget everything without touching routes (our own graceful stop).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Why route selection for a family may run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeferralEnd {
    /// Every awaited peer sent End-of-RIB (or was excluded).
    AllEndOfRib,
    /// The Selection_Deferral_Timer expired first.
    TimerExpired,
}

/// Route selection (best path, FIB sweep of stale kernel routes) may run for `family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SelectionReady {
    /// The family.
    pub family: AfiSafi,
    /// Why now.
    pub reason: DeferralEnd,
}

/// The restarting speaker's deferral of route selection (RFC 4724 §4.1): per family, until
/// End-of-RIB arrived from all peers — excluding those that set the R bit (they restarted too,
/// so waiting for each other would deadlock two nodes restarting at once) and those without
/// the capability — or the Selection_Deferral_Timer expires. Peers not yet Established are
/// awaited (they may still come back with the routes that are in the kernel); the timer bounds
/// that wait. Keyed by any peer identifier `K`.
#[derive(Debug, Clone)]
pub struct SelectionDeferral<K> {
    started: Instant,
    deadline: Instant,
    waiting: BTreeMap<AfiSafi, Option<BTreeSet<K>>>,
}

impl<K: Ord + Clone> SelectionDeferral<K> {
    /// Start deferring at `now` for `families`, awaiting every one of `peers`, for at most
    /// `time`. Call [`SelectionDeferral::poll`] afterwards: with no peers, every family is
    /// ready at once.
    pub fn new(
        now: Instant,
        time: Duration,
        families: impl IntoIterator<Item = AfiSafi>,
        peers: impl IntoIterator<Item = K>,
    ) -> Self {
        let peers: BTreeSet<K> = peers.into_iter().collect();
        Self {
            started: now,
            deadline: now + time,
            waiting: families
                .into_iter()
                .map(|f| (f, Some(peers.clone())))
                .collect(),
        }
    }

    /// Families still deferred, with the peers they wait for (for `show`).
    pub fn pending(&self) -> impl Iterator<Item = (AfiSafi, &BTreeSet<K>)> {
        self.waiting
            .iter()
            .filter_map(|(f, w)| w.as_ref().map(|w| (*f, w)))
    }

    /// Whether selection may run for every family.
    pub fn is_complete(&self) -> bool {
        self.waiting.values().all(Option::is_none)
    }

    /// `peer` reached Established: stop waiting for it where it will not send End-of-RIB
    /// as a helper (no capability, R bit set, family not negotiated).
    pub fn established(&mut self, peer: &K, s: &Established) -> Vec<SelectionReady> {
        let exclude_all = s.peer_gr.as_ref().is_none_or(|g| g.restart_state);
        for (f, w) in self.waiting.iter_mut() {
            if let Some(w) = w
                && (exclude_all || !s.families.contains(f))
            {
                w.remove(peer);
            }
        }
        self.ready(DeferralEnd::AllEndOfRib)
    }

    /// `peer` sent End-of-RIB for `family`.
    pub fn end_of_rib(&mut self, peer: &K, family: AfiSafi) -> Vec<SelectionReady> {
        if let Some(Some(w)) = self.waiting.get_mut(&family) {
            w.remove(peer);
        }
        self.ready(DeferralEnd::AllEndOfRib)
    }

    /// `peer` was removed from the configuration.
    pub fn peer_removed(&mut self, peer: &K) -> Vec<SelectionReady> {
        for w in self.waiting.values_mut().flatten() {
            w.remove(peer);
        }
        self.ready(DeferralEnd::AllEndOfRib)
    }

    /// When to call [`SelectionDeferral::poll`]: at once if a family is ready but not yet
    /// reported, else at the Selection_Deferral_Timer, `None` when complete.
    pub fn next_deadline(&self) -> Option<Instant> {
        let pending: Vec<_> = self.waiting.values().flatten().collect();
        if pending.iter().any(|w| w.is_empty()) {
            Some(self.started)
        } else if pending.is_empty() {
            None
        } else {
            Some(self.deadline)
        }
    }

    /// Report families that became ready, or all remaining ones once the timer expired.
    pub fn poll(&mut self, now: Instant) -> Vec<SelectionReady> {
        let mut out = self.ready(DeferralEnd::AllEndOfRib);
        if now >= self.deadline {
            for (f, w) in self.waiting.iter_mut() {
                if w.take().is_some() {
                    out.push(SelectionReady {
                        family: *f,
                        reason: DeferralEnd::TimerExpired,
                    });
                }
            }
        }
        out
    }

    fn ready(&mut self, reason: DeferralEnd) -> Vec<SelectionReady> {
        let mut out = Vec::new();
        for (f, w) in self.waiting.iter_mut() {
            if w.as_ref().is_some_and(BTreeSet::is_empty) {
                *w = None;
                out.push(SelectionReady { family: *f, reason });
            }
        }
        out
    }
}
