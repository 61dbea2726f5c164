//! What the state machines ask the outside world to do, and why sessions change state.
//!
//! ```text
//!   Action ──> tokio layer: Connect / Accept / Refuse / Send / Drop   (sockets, by ConnId)
//!          ──> RIB:         Established, SessionDown, Rib(RibAction)  (routes of this peer)
//!          ──> logs/metrics: Transition { from, to, event, reason }
//! ```
//!
//! Actions are listed in the order they must happen: a NOTIFICATION `Send` comes before the
//! `Drop` of its connection, `Accept` before the first `Send` on the accepted connection.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Instant;

use super::event::EventKind;
use super::{ConnId, Direction, State};
use crate::wire::{
    AfiSafi, CeaseReason, DecodeCx, EncodeCx, ErrorCode, GracefulRestart, Message, Notification,
    Open, Update, Withdrawn,
};

/// Something to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer for `conn` (RFC 4271 §8.2.2 "initiates a TCP
    /// connection"). Report the outcome as `Tcp_CR_Acked` or `TcpConnectionFails`.
    Connect {
        /// The new connection.
        conn: ConnId,
    },
    /// Keep the TCP connection just accepted from the peer; it is `conn` from now on.
    Accept {
        /// The accepted connection.
        conn: ConnId,
    },
    /// Close the TCP connection just accepted from the peer without a word.
    Refuse {
        /// Why.
        reason: RefuseReason,
    },
    /// Write a message on a connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message.
        message: Message,
    },
    /// Close the connection (after writing what was queued), or abandon the connection attempt.
    Drop {
        /// The connection.
        conn: ConnId,
    },
    /// The session is up: decode with `decode`, encode with `encode`, advertise the Adj-RIB-Out
    /// and then report `InitialAdvertisementComplete`.
    Established(Box<Established>),
    /// The session left Established.
    SessionDown {
        /// The connection that carried it.
        conn: ConnId,
        /// Why.
        reason: DownReason,
    },
    /// Work for the RIB about this peer's routes.
    Rib(RibAction),
    /// A state change, for logs and the FSM transition counter.
    Transition(Transition),
}

/// Work for the RIB, about the routes of this peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RibAction {
    /// Process an UPDATE (RFC 4271 §9). RFC 7606 attribute-discard findings have been applied.
    Update(Box<Update>),
    /// RFC 7606 treat-as-withdraw: withdraw every prefix the malformed UPDATE carried.
    Withdraw(Box<Withdrawn>),
    /// The peer finished its initial update for a family (End-of-RIB, RFC 4724 §2). Feed it to
    /// [`super::SelectionDeferral`] when restarting.
    EndOfRib(AfiSafi),
    /// Delete all routes of the peer (RFC 4271 §8.2.2 "deletes all routes associated with
    /// this connection").
    FlushAll,
    /// Delete the peer's routes of one family (RFC 4724 §4.2: not covered by graceful restart).
    Flush(AfiSafi),
    /// Graceful restart helper: keep the peer's routes of a family, marked stale, and keep
    /// forwarding with them (RFC 4724 §4.2).
    MarkStale(AfiSafi),
    /// Delete the peer's routes of a family that are still marked stale (End-of-RIB received,
    /// F bit missing on return, stale timer, or a second restart; RFC 4724 §4.2).
    SweepStale(AfiSafi),
    /// The peer asked for our routes again (ROUTE-REFRESH, RFC 2918): re-send the Adj-RIB-Out
    /// for the family.
    ReAdvertise(AfiSafi),
}

/// Why an accepted connection was closed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefuseReason {
    /// The peer is stopped (RFC 4271 §8.2.2: Idle refuses all incoming connections).
    NotStarted,
    /// Damping after repeated failures (RFC 4271 §8.1.1 IdleHoldTimer) until this instant.
    Damped {
        /// When the IdleHoldTimer expires.
        until: Instant,
    },
    /// A session is Established and collisions with it are not resolved (RFC 4271 §6.8).
    Established,
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotStarted => f.write_str("peer is stopped (RFC 4271 §8.2.2 Idle)"),
            Self::Damped { .. } => {
                f.write_str("idle hold after repeated failures (RFC 4271 §8.1.1)")
            }
            Self::Established => f.write_str("session already established (RFC 4271 §6.8)"),
        }
    }
}

/// Why a connection went to Idle (and, from Established, why the session went down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We stopped it (RFC 4271 event 2 ManualStop).
    ManualStop {
        /// A restart: peers were asked to keep our routes.
        graceful: bool,
    },
    /// We stopped it automatically (event 8), e.g. maximum prefixes, with this Cease (sent
    /// once OPENs were exchanged; on an Established session wrapped in Hard Reset when
    /// RFC 8538 §5.1 asks for it).
    AutomaticStop(Notification),
    /// No message within the hold time; we sent Hold Timer Expired 4/0 (RFC 4271 §6.5).
    HoldTimerExpired,
    /// The peer sent a NOTIFICATION (RFC 4271 §4.5).
    NotificationReceived(Notification),
    /// A received message was malformed; we sent this NOTIFICATION (RFC 4271 §6.1–6.3,
    /// RFC 7313 §5). Also an OPEN that failed the §6.2 checks.
    MessageError(Notification),
    /// An event the state does not expect (RFC 4271 §6.6, RFC 6608); `sent` is the FSM Error
    /// NOTIFICATION, `None` before our OPEN was sent.
    FsmError {
        /// The event.
        event: EventKind,
        /// The NOTIFICATION sent.
        sent: Option<Notification>,
    },
    /// The TCP connection failed, was refused, or was closed by the peer (event 18).
    ConnectionClosed,
    /// This connection lost a collision (RFC 4271 §6.8); once OPENs were exchanged we sent
    /// Cease/Connection Collision Resolution 6/7.
    Collision,
    /// The peer opened a new connection while this session was Established: it restarted
    /// (RFC 4724 §4.2); the old connection is closed without a NOTIFICATION.
    PeerRestarted,
    /// Another connection to the peer became Established (RFC 4271 §8.2.1.2).
    Superseded,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ManualStop { graceful: true } => {
                f.write_str("stopped for a graceful restart (RFC 4724 §4.1)")
            }
            Self::ManualStop { graceful: false } => {
                f.write_str("stopped by the operator (RFC 4271 §8.1.2 ManualStop)")
            }
            Self::AutomaticStop(n) => write!(f, "automatic stop: {n} (RFC 4271 §8.1.2 event 8)"),
            Self::HoldTimerExpired => f.write_str("hold timer expired (RFC 4271 §6.5)"),
            Self::NotificationReceived(n) => {
                write!(f, "NOTIFICATION received: {n} (RFC 4271 §4.5)")
            }
            Self::MessageError(n) => write!(f, "bad message, sent {n} (RFC 4271 §6)"),
            Self::FsmError { event, sent } => {
                write!(f, "unexpected {event}")?;
                if let Some(n) = sent {
                    write!(f, ", sent {n}")?;
                }
                f.write_str(" (RFC 4271 §6.6, RFC 6608)")
            }
            Self::ConnectionClosed => {
                f.write_str("TCP connection failed or closed (RFC 4271 §8.1.4 event 18)")
            }
            Self::Collision => f.write_str("connection collision resolution (RFC 4271 §6.8)"),
            Self::PeerRestarted => {
                f.write_str("peer reconnected while established: it restarted (RFC 4724 §4.2)")
            }
            Self::Superseded => {
                f.write_str("another connection to the peer is established (RFC 4271 §8.2.1.2)")
            }
        }
    }
}

/// One FSM state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The connection.
    pub conn: ConnId,
    /// Who opened it.
    pub direction: Direction,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// The event that caused it.
    pub event: EventKind,
    /// For a change to Idle: why.
    pub reason: Option<DownReason>,
}

impl fmt::Display for Transition {
    /// `Established -> Idle: hold timer expired (RFC 4271 §6.5)`; the caller prefixes the peer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}: ", self.from, self.to)?;
        match &self.reason {
            Some(r) => write!(f, "{r}"),
            None => write!(f, "{}", self.event),
        }
    }
}

/// What the OPEN exchange settled for an Established session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    /// The connection carrying the session.
    pub conn: ConnId,
    /// Who opened it.
    pub direction: Direction,
    /// The OPEN we sent.
    pub local: Open,
    /// The OPEN the peer sent (all its capabilities).
    pub remote: Open,
    /// The peer's AS (RFC 6793: from the 4-octet AS capability when present).
    pub peer_as: u32,
    /// The peer's BGP Identifier.
    pub peer_id: Ipv4Addr,
    /// iBGP (same AS on both sides).
    pub internal: bool,
    /// Negotiated hold time: the smaller of both proposals (RFC 4271 §4.2); 0 = no hold timer
    /// and no keepalives.
    pub hold_time: u16,
    /// Keepalive interval in seconds (hold time / 3, at least 1; 0 when hold time is 0).
    pub keepalive: u16,
    /// How to encode messages for this peer.
    pub encode: EncodeCx,
    /// How to decode the peer's messages.
    pub decode: DecodeCx,
    /// Families both sides advertised (RFC 4760; none advertised means IPv4 unicast).
    pub families: Vec<AfiSafi>,
    /// The peer accepts ROUTE-REFRESH from us (it advertised RFC 2918).
    pub peer_route_refresh: bool,
    /// We accept ROUTE-REFRESH from the peer (we advertised RFC 2918).
    pub local_route_refresh: bool,
    /// The peer's graceful restart capability (the last one, RFC 4724 §3).
    pub peer_gr: Option<GracefulRestart>,
    /// We advertised graceful restart.
    pub local_gr: bool,
    /// Both sides set the N bit (RFC 8538).
    pub gr_notification: bool,
}

impl Established {
    /// Whether a session that ended for `reason` keeps the peer's routes as stale (RFC 4724
    /// §4.2, extended by RFC 8538 §4 to NOTIFICATIONs other than Hard Reset and to hold timer
    /// expiry when both sides set the N bit). Needs the peer's capability and ours.
    pub fn retains_routes(&self, reason: &DownReason) -> bool {
        if self.peer_gr.is_none() || !self.local_gr {
            return false;
        }
        let n = self.gr_notification;
        match reason {
            DownReason::ConnectionClosed | DownReason::PeerRestarted => true,
            DownReason::ManualStop { .. } | DownReason::Superseded => false,
            DownReason::HoldTimerExpired => n,
            DownReason::Collision => n,
            DownReason::NotificationReceived(x) => n && !is_hard_reset(x),
            DownReason::AutomaticStop(x) | DownReason::MessageError(x) => n && !is_hard_reset(x),
            DownReason::FsmError { sent, .. } => n && !sent.as_ref().is_some_and(is_hard_reset),
        }
    }
}

/// Cease/Hard Reset (6/9, RFC 8538 §3).
pub fn is_hard_reset(n: &Notification) -> bool {
    n.code == ErrorCode::Cease(CeaseReason::HardReset)
}

/// Wrap a NOTIFICATION in Cease/Hard Reset (RFC 8538 §3): the data carries the inner code,
/// subcode and data.
pub fn hard_reset(inner: &Notification) -> Notification {
    let mut body = bytes::BytesMut::new();
    inner.encode_body(&mut body);
    Notification {
        code: ErrorCode::Cease(CeaseReason::HardReset),
        shutdown_communication: None,
        data: body.to_vec(),
    }
}

/// Whether RFC 8538 §5.1 wants this Cease sent as a Hard Reset once the N bit is exchanged:
/// Maximum Number of Prefixes Reached, Administrative Shutdown, Peer De-configured. (For
/// Administrative Reset the RFC leaves it to the operator; we keep it soft, which is what a
/// graceful stop sends.)
pub fn needs_hard_reset(n: &Notification) -> bool {
    matches!(
        n.code,
        ErrorCode::Cease(
            CeaseReason::MaximumPrefixesReached
                | CeaseReason::AdministrativeShutdown
                | CeaseReason::PeerDeconfigured
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_reset_carries_the_inner_notification() {
        let inner = Notification::shutdown(CeaseReason::AdministrativeShutdown, "bye");
        let hr = hard_reset(&inner);
        assert!(is_hard_reset(&hr));
        assert_eq!(hr.data, b"\x06\x02\x03bye");
        assert_eq!(hr.to_string(), "cease/hard reset (6/9) data 060203627965");
        assert!(needs_hard_reset(&inner));
        assert!(!needs_hard_reset(&Notification::new(ErrorCode::Cease(
            CeaseReason::ConnectionCollisionResolution
        ))));
    }
}
