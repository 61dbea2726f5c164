//! FSM events with the names and numbers of RFC 4271 §8.1, and the mapping from a decoded
//! message (or decode error) to the event it raises.
//!
//! ```text
//!   Message::decode(..) ──Event::from_message──> BGPOpen | NotifMsg | NotifMsgVerErr |
//!                                                KeepAliveMsg | UpdateMsg | RouteRefreshMsg
//!   Err(DecodeError)    ──Event::from_message──> BGPHeaderErr | BGPOpenMsgErr | UpdateMsgErr |
//!                                                RouteRefreshMsgErr   (by NOTIFICATION code)
//! ```

use std::fmt;

use crate::wire::{
    DecodeError, ErrorCode, Message, Notification, Open, OpenError, RouteRefresh, Update,
};

/// How we stop a session (RFC 4271 §8.1.2 ManualStop), with the graceful restart distinction
/// of RFC 4724 / RFC 8538.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stop {
    /// We are restarting and want peers to keep our routes: no NOTIFICATION (RFC 4724), or a
    /// non-Hard-Reset Cease when the N bit was exchanged (RFC 8538). Only effective on a
    /// session where both sides advertised graceful restart; otherwise a plain Cease is sent.
    pub graceful: bool,
    /// Shutdown communication for the Cease (RFC 9003), e.g. "maintenance".
    pub communication: Option<String>,
}

impl Stop {
    /// A stop for a process restart: peers keep our routes.
    pub fn graceful() -> Self {
        Self {
            graceful: true,
            communication: None,
        }
    }

    /// An administrative shutdown with a message for the peer's operator.
    pub fn shutdown(communication: &str) -> Self {
        Self {
            graceful: false,
            communication: Some(communication.to_string()),
        }
    }
}

/// An event for one connection's FSM (RFC 4271 §8.1). Timer events are normally produced by
/// [`super::Fsm::poll`]; feeding them directly means "this timer fired".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Event 1: ManualStart.
    ManualStart,
    /// Event 2: ManualStop.
    ManualStop(Stop),
    /// Event 3: AutomaticStart (issued by the peer after the IdleHoldTimer).
    AutomaticStart,
    /// Event 4: ManualStart_with_PassiveTcpEstablishment.
    ManualStartWithPassiveTcpEstablishment,
    /// Event 5: AutomaticStart_with_PassiveTcpEstablishment.
    AutomaticStartWithPassiveTcpEstablishment,
    /// Event 8: AutomaticStop, e.g. the RIB's maximum-prefix limit; carries the Cease to send.
    AutomaticStop(Notification),
    /// Event 9: ConnectRetryTimer_Expires.
    ConnectRetryTimerExpires,
    /// Event 10: HoldTimer_Expires.
    HoldTimerExpires,
    /// Event 11: KeepaliveTimer_Expires.
    KeepaliveTimerExpires,
    /// Event 12: DelayOpenTimer_Expires.
    DelayOpenTimerExpires,
    /// Event 13: IdleHoldTimer_Expires (a peer-level timer; ignored by a connection in Idle).
    IdleHoldTimerExpires,
    /// Event 14: TcpConnection_Valid.
    TcpConnectionValid,
    /// Event 16: Tcp_CR_Acked — our outgoing connection is up.
    TcpCrAcked,
    /// Event 17: TcpConnectionConfirmed — an incoming connection is up.
    TcpConnectionConfirmed,
    /// Event 18: TcpConnectionFails — refused, reset, closed by the peer, or timed out.
    TcpConnectionFails,
    /// Event 19 (20 while the DelayOpenTimer runs): BGPOpen. The FSM runs the RFC 4271 §6.2
    /// checks; a failing OPEN is handled as BGPOpenMsgErr.
    BgpOpen(Box<Open>),
    /// Event 21: BGPHeaderErr.
    BgpHeaderErr(DecodeError),
    /// Event 22: BGPOpenMsgErr.
    BgpOpenMsgErr(DecodeError),
    /// Event 23: OpenCollisionDump — this connection lost a collision (RFC 4271 §6.8).
    OpenCollisionDump,
    /// Event 24: NotifMsgVerErr — NOTIFICATION with OPEN Message Error/Unsupported Version.
    NotifMsgVerErr(Notification),
    /// Event 25: NotifMsg.
    NotifMsg(Notification),
    /// Event 26: KeepAliveMsg.
    KeepAliveMsg,
    /// Event 27: UpdateMsg (RFC 7606 attribute-discard and treat-as-withdraw findings inside).
    UpdateMsg(Box<Update>),
    /// Event 28: UpdateMsgErr — an UPDATE error that resets the session.
    UpdateMsgErr(DecodeError),
    /// ROUTE-REFRESH received (RFC 2918; no RFC 4271 event number).
    RouteRefreshMsg(RouteRefresh),
    /// Malformed ROUTE-REFRESH (RFC 7313 §5; no RFC 4271 event number).
    RouteRefreshMsgErr(DecodeError),
}

impl Event {
    /// The event a decoded message raises, or the error event for a decode failure (by the
    /// NOTIFICATION code the error calls for).
    pub fn from_message(decoded: Result<Message, DecodeError>) -> Self {
        match decoded {
            Ok(Message::Open(o)) => Self::BgpOpen(Box::new(o)),
            Ok(Message::Update(u)) => Self::UpdateMsg(Box::new(u)),
            Ok(Message::Keepalive) => Self::KeepAliveMsg,
            Ok(Message::RouteRefresh(r)) => Self::RouteRefreshMsg(r),
            Ok(Message::Notification(n)) => {
                if n.code == ErrorCode::Open(OpenError::UnsupportedVersionNumber) {
                    Self::NotifMsgVerErr(n)
                } else {
                    Self::NotifMsg(n)
                }
            }
            Err(e) => match e.code() {
                ErrorCode::MessageHeader(_) => Self::BgpHeaderErr(e),
                ErrorCode::Open(_) => Self::BgpOpenMsgErr(e),
                ErrorCode::RouteRefresh(_) => Self::RouteRefreshMsgErr(e),
                _ => Self::UpdateMsgErr(e),
            },
        }
    }

    /// The event's name without its data, for transitions, logs and metrics labels.
    pub fn kind(&self) -> EventKind {
        use EventKind as K;
        match self {
            Self::ManualStart => K::ManualStart,
            Self::ManualStop(_) => K::ManualStop,
            Self::AutomaticStart => K::AutomaticStart,
            Self::ManualStartWithPassiveTcpEstablishment => {
                K::ManualStartWithPassiveTcpEstablishment
            }
            Self::AutomaticStartWithPassiveTcpEstablishment => {
                K::AutomaticStartWithPassiveTcpEstablishment
            }
            Self::AutomaticStop(_) => K::AutomaticStop,
            Self::ConnectRetryTimerExpires => K::ConnectRetryTimerExpires,
            Self::HoldTimerExpires => K::HoldTimerExpires,
            Self::KeepaliveTimerExpires => K::KeepaliveTimerExpires,
            Self::DelayOpenTimerExpires => K::DelayOpenTimerExpires,
            Self::IdleHoldTimerExpires => K::IdleHoldTimerExpires,
            Self::TcpConnectionValid => K::TcpConnectionValid,
            Self::TcpCrAcked => K::TcpCrAcked,
            Self::TcpConnectionConfirmed => K::TcpConnectionConfirmed,
            Self::TcpConnectionFails => K::TcpConnectionFails,
            Self::BgpOpen(_) => K::BgpOpen,
            Self::BgpHeaderErr(_) => K::BgpHeaderErr,
            Self::BgpOpenMsgErr(_) => K::BgpOpenMsgErr,
            Self::OpenCollisionDump => K::OpenCollisionDump,
            Self::NotifMsgVerErr(_) => K::NotifMsgVerErr,
            Self::NotifMsg(_) => K::NotifMsg,
            Self::KeepAliveMsg => K::KeepAliveMsg,
            Self::UpdateMsg(_) => K::UpdateMsg,
            Self::UpdateMsgErr(_) => K::UpdateMsgErr,
            Self::RouteRefreshMsg(_) => K::RouteRefreshMsg,
            Self::RouteRefreshMsgErr(_) => K::RouteRefreshMsgErr,
        }
    }
}

/// The name of an [`Event`] (and of the peer-level events that have an RFC name). `Display`
/// gives the RFC 4271 §8.1 spelling, e.g. `HoldTimer_Expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the event of the same name above
pub enum EventKind {
    ManualStart,
    ManualStop,
    AutomaticStart,
    ManualStartWithPassiveTcpEstablishment,
    AutomaticStartWithPassiveTcpEstablishment,
    AutomaticStop,
    ConnectRetryTimerExpires,
    HoldTimerExpires,
    KeepaliveTimerExpires,
    DelayOpenTimerExpires,
    IdleHoldTimerExpires,
    TcpConnectionValid,
    TcpCrAcked,
    TcpConnectionConfirmed,
    TcpConnectionFails,
    BgpOpen,
    BgpHeaderErr,
    BgpOpenMsgErr,
    OpenCollisionDump,
    NotifMsgVerErr,
    NotifMsg,
    KeepAliveMsg,
    UpdateMsg,
    UpdateMsgErr,
    RouteRefreshMsg,
    RouteRefreshMsgErr,
}

impl EventKind {
    /// The RFC 4271 §8.1 event number (`None` for the route refresh events of RFC 2918/7313).
    pub fn number(self) -> Option<u8> {
        use EventKind::*;
        Some(match self {
            ManualStart => 1,
            ManualStop => 2,
            AutomaticStart => 3,
            ManualStartWithPassiveTcpEstablishment => 4,
            AutomaticStartWithPassiveTcpEstablishment => 5,
            AutomaticStop => 8,
            ConnectRetryTimerExpires => 9,
            HoldTimerExpires => 10,
            KeepaliveTimerExpires => 11,
            DelayOpenTimerExpires => 12,
            IdleHoldTimerExpires => 13,
            TcpConnectionValid => 14,
            TcpCrAcked => 16,
            TcpConnectionConfirmed => 17,
            TcpConnectionFails => 18,
            BgpOpen => 19,
            BgpHeaderErr => 21,
            BgpOpenMsgErr => 22,
            OpenCollisionDump => 23,
            NotifMsgVerErr => 24,
            NotifMsg => 25,
            KeepAliveMsg => 26,
            UpdateMsg => 27,
            UpdateMsgErr => 28,
            RouteRefreshMsg | RouteRefreshMsgErr => return None,
        })
    }

    /// Whether the event is a received message (RFC 4271 §8.1.5 and ROUTE-REFRESH); an
    /// unexpected one gets the RFC 6608 subcode of the state.
    pub fn is_message(self) -> bool {
        use EventKind::*;
        matches!(
            self,
            BgpOpen
                | BgpOpenMsgErr
                | NotifMsgVerErr
                | NotifMsg
                | KeepAliveMsg
                | UpdateMsg
                | UpdateMsgErr
                | RouteRefreshMsg
                | RouteRefreshMsgErr
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EventKind::*;
        f.write_str(match self {
            ManualStart => "ManualStart",
            ManualStop => "ManualStop",
            AutomaticStart => "AutomaticStart",
            ManualStartWithPassiveTcpEstablishment => "ManualStart_with_PassiveTcpEstablishment",
            AutomaticStartWithPassiveTcpEstablishment => {
                "AutomaticStart_with_PassiveTcpEstablishment"
            }
            AutomaticStop => "AutomaticStop",
            ConnectRetryTimerExpires => "ConnectRetryTimer_Expires",
            HoldTimerExpires => "HoldTimer_Expires",
            KeepaliveTimerExpires => "KeepaliveTimer_Expires",
            DelayOpenTimerExpires => "DelayOpenTimer_Expires",
            IdleHoldTimerExpires => "IdleHoldTimer_Expires",
            TcpConnectionValid => "TcpConnection_Valid",
            TcpCrAcked => "Tcp_CR_Acked",
            TcpConnectionConfirmed => "TcpConnectionConfirmed",
            TcpConnectionFails => "TcpConnectionFails",
            BgpOpen => "BGPOpen",
            BgpHeaderErr => "BGPHeaderErr",
            BgpOpenMsgErr => "BGPOpenMsgErr",
            OpenCollisionDump => "OpenCollisionDump",
            NotifMsgVerErr => "NotifMsgVerErr",
            NotifMsg => "NotifMsg",
            KeepAliveMsg => "KeepAliveMsg",
            UpdateMsg => "UpdateMsg",
            UpdateMsgErr => "UpdateMsgErr",
            RouteRefreshMsg => "RouteRefreshMsg",
            RouteRefreshMsgErr => "RouteRefreshMsgErr",
        })?;
        if let Some(n) = self.number() {
            write!(f, " (event {n})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DecodeCx, EncodeCx};

    #[test]
    fn decoded_messages_map_to_rfc_events() {
        let cx = DecodeCx::default();
        let ka = Message::Keepalive.to_bytes(&EncodeCx::default());
        assert_eq!(
            Event::from_message(Message::decode(&ka, &cx)),
            Event::KeepAliveMsg
        );
        let mut bad = ka.clone();
        bad[0] = 0;
        assert_eq!(
            Event::from_message(Message::decode(&bad, &cx)).kind(),
            EventKind::BgpHeaderErr
        );
        // OPEN with version 3: the decoder's error is an OPEN message error
        let mut open = vec![0xff; 16];
        open.extend_from_slice(&[0, 29, 1, 3, 0xfd, 0xe8, 0, 90, 198, 18, 0, 1, 0]);
        let e = Event::from_message(Message::decode(&open, &cx));
        assert_eq!(e.kind(), EventKind::BgpOpenMsgErr);
        let ver = Notification::new(ErrorCode::Open(OpenError::UnsupportedVersionNumber));
        assert_eq!(
            Event::from_message(Ok(Message::Notification(ver))).kind(),
            EventKind::NotifMsgVerErr
        );
        assert_eq!(
            EventKind::HoldTimerExpires.to_string(),
            "HoldTimer_Expires (event 10)"
        );
        assert_eq!(EventKind::RouteRefreshMsg.to_string(), "RouteRefreshMsg");
    }
}
