//! The BGP session as a pure state machine (RFC 4271 §8), with connection collision handling
//! (§6.8), peer oscillation damping (§8.1.1), graceful restart (RFC 4724, RFC 8538) and route
//! refresh (RFC 2918). No sockets, no tokio, no clock: time comes in as `now`.
//!
//! ```text
//!            PeerEvent (admin, accepted TCP, per-connection Event)      poll(now) at next_deadline()
//!                  │                                                          │
//!                  v                                                          v
//!   ┌──────────────────────────── Peer ──────────────────────────────────────────────┐
//!   │ outgoing Fsm (ConnId 1) ─┐  collision (§6.8): the connection initiated by the   │
//!   │ incoming Fsm (ConnId 2) ─┴─ higher BGP Identifier survives, Cease 6/7 to the     │
//!   │                             other; IdleHoldTimer back-off; GR helper (stale,     │
//!   │                             restart timer, EoR sweep)                            │
//!   └─────────────────────────────────────────────────────────────────────────────────┘
//!                  │
//!                  v  Vec<Action>: Connect / Accept / Refuse / Send / Drop (per ConnId),
//!                     Established, SessionDown, Rib(..), Transition (for logs and metrics)
//! ```
//!
//! [`Fsm`] is one RFC 4271 §8.2.2 state machine per TCP connection (§8.2.1: "each FSM
//! corresponds to exactly one TCP connection"). [`Peer`] owns up to two of them (our outgoing
//! connection and one incoming), resolves collisions, decides when to connect again, and turns
//! session changes into RIB actions for graceful restart.
//!
//! # Timers: deadlines kept inside, `next_deadline()` + `poll(now)`
//!
//! Every timer (ConnectRetry, Hold, Keepalive, DelayOpen per connection; IdleHold, the peer's
//! graceful restart time and the stale-routes bound per peer) is an `Option<Instant>` inside
//! the state machine. The driver sleeps until [`Peer::next_deadline`] and calls
//! [`Peer::poll`], which turns every due deadline into its RFC event (`HoldTimer_Expires`, ...).
//! Chosen over "arm/disarm" actions because the state machine stays the only owner of its
//! timers: a timer stopped by a transition can never fire late from a driver's queue, the
//! driver is a single `sleep_until`, and tests move time by calling `poll` with a later
//! instant. A timer re-armed by its own expiry always lies in the future, so `poll` never
//! loops and a driver cannot spin.
//!
//! # Where this deviates from the letter of RFC 4271 §8.2.2 (and why)
//! - A connection that fails in OpenSent goes to Idle, not Active: each FSM owns one
//!   connection, and reconnecting is the peer's decision (IdleHoldTimer with back-off), so a
//!   peer that closes right after connecting cannot make us reconnect at ConnectRetryTime.
//! - With PassiveTcpEstablishment no ConnectRetryTimer runs (its expiry in Active would make
//!   a passive FSM connect).
//! - A NOTIFICATION received in OpenSent is not answered with an FSM Error NOTIFICATION: the
//!   sender closes the connection right after it (RFC 4271 §4.5).
//! - Tcp_CR_Acked counts only while the FSM's own connection attempt is outstanding, and the
//!   peer never hands TcpConnectionConfirmed to an existing FSM (an incoming connection gets
//!   a new FSM, §8.2.1), so a stray TCP event cannot revive a dropped connection.
//! - The IdleHoldTimer (RFC 4271 leaves damping open) delays our reconnects after every
//!   failure, but refuses the peer's connections only from the second failure on: after one
//!   failure the peer is likely restarting, and refusing it would defeat graceful restart.
//! - A message header error in Established sends the Message Header Error NOTIFICATION of
//!   §6.1 rather than an FSM Error; an OPEN on an Established or OpenConfirm connection is an
//!   unexpected message (FSM Error 5/3 or 5/2, RFC 6608). Unexpected timer events send
//!   FSM Error/Unspecified (5/0); RFC 6608's subcodes name unexpected messages only.

pub mod action;
pub mod config;
pub mod damping;
pub mod event;
pub mod fsm;
pub mod gr;
pub mod peer;
pub mod timer;

use std::fmt;

pub use action::{Action, DownReason, Established, RefuseReason, RibAction, Transition};
pub use config::{ConfigError, DampingConfig, GracefulRestartConfig, PeerAs, PeerConfig};
pub use damping::Damping;
pub use event::{Event, EventKind, Stop};
pub use fsm::Fsm;
pub use gr::{DeferralEnd, SelectionDeferral, SelectionReady};
pub use peer::{Peer, PeerEvent, RefreshRequestError};
pub use timer::{TimerKind, Timers};

/// Identifies one TCP connection of a peer in actions and events. Allocated by the [`Peer`]
/// (for its outgoing connection when it emits [`Action::Connect`], for an incoming one when
/// it emits [`Action::Accept`]) and never reused, so an event for a connection that is gone
/// is recognised as stale and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which side opened the TCP connection (RFC 4271 §8.2.1: "outgoing" sent the first SYN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Outgoing => "outgoing",
            Self::Incoming => "incoming",
        })
    }
}

/// FSM states (RFC 4271 §8.2.2), with the RFC's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection; refuses incoming connections.
    Idle,
    /// Waiting for our TCP connection to complete.
    Connect,
    /// Listening for the peer's TCP connection.
    Active,
    /// OPEN sent, waiting for the peer's OPEN.
    OpenSent,
    /// OPENs exchanged, waiting for a KEEPALIVE or NOTIFICATION.
    OpenConfirm,
    /// UPDATE, KEEPALIVE and NOTIFICATION messages flow.
    Established,
}

impl State {
    /// How far a connection has come (Idle 0 … Established 4); Connect and Active tie. The
    /// state a [`Peer`] reports is the furthest of its connections.
    pub fn progress(self) -> u8 {
        match self {
            Self::Idle => 0,
            Self::Connect | Self::Active => 1,
            Self::OpenSent => 2,
            Self::OpenConfirm => 3,
            Self::Established => 4,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Idle => "Idle",
            Self::Connect => "Connect",
            Self::Active => "Active",
            Self::OpenSent => "OpenSent",
            Self::OpenConfirm => "OpenConfirm",
            Self::Established => "Established",
        })
    }
}
