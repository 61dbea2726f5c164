//! One BGP finite state machine per TCP connection (RFC 4271 §8.2.2).
//!
//! ```text
//!            ManualStart/AutomaticStart             Tcp_CR_Acked / TcpConnectionConfirmed
//!   Idle ─────────────────────────────> Connect ──────────────────────────> OpenSent
//!    ^  \_ …_with_PassiveTcpEstablishment ─> Active ──(same; DelayOpen waits)──^  │ BGPOpen (§6.2 ok)
//!    │                                                                          v  send KEEPALIVE
//!    │  errors, NOTIFICATION, HoldTimer_Expires, TcpConnectionFails,        OpenConfirm
//!    └─ ManualStop, OpenCollisionDump (each with its NOTIFICATION) ─────────    │ KeepAliveMsg
//!                                                                           Established
//! ```
//!
//! In: [`Event`]s (from the peer wrapper, the socket layer, or [`Fsm::poll`] for timers).
//! Out: [`Action`]s for this connection and a [`Transition`] whenever the state changes.
//! The module documentation of [`super`] lists where this follows the intent rather than the
//! letter of §8.2.2. `SendNOTIFICATIONwithoutOPEN` is on: errors found while the DelayOpenTimer
//! runs are reported to the peer.

use std::time::{Duration, Instant};

use super::action::{
    Action, DownReason, Established, RibAction, Transition, hard_reset, needs_hard_reset,
};
use super::config::{PeerAs, PeerConfig};
use super::event::{Event, EventKind, Stop};
use super::timer::Timers;
use super::{ConnId, Direction, State};
use crate::wire::open::BGP_VERSION;
use crate::wire::{
    Capability, CeaseReason, DecodeError, ErrorAction, ErrorCode, ErrorKind, FsmError, Message,
    Notification, Open, RouteRefresh, RouteRefreshSubtype, Update, negotiate,
};

/// The "large value" for the HoldTimer while waiting for the peer's OPEN (RFC 4271 §8.2.2
/// suggests 4 minutes).
pub const LARGE_HOLD_TIME: Duration = Duration::from_secs(240);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tcp {
    None,
    Connecting,
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Reset,
    Increment,
    Keep,
}

/// The FSM of one connection.
#[derive(Debug, Clone)]
pub struct Fsm {
    conn: ConnId,
    direction: Direction,
    config: PeerConfig,
    local_open: Open,
    state: State,
    tcp: Tcp,
    connect_retry_counter: u32,
    timers: Timers,
    session: Option<Box<Established>>,
}

impl Fsm {
    /// A connection in Idle that will send `local_open` (see [`PeerConfig::local_open`]).
    pub fn new(conn: ConnId, direction: Direction, config: &PeerConfig, local_open: Open) -> Self {
        Self {
            conn,
            direction,
            config: config.clone(),
            local_open,
            state: State::Idle,
            tcp: Tcp::None,
            connect_retry_counter: 0,
            timers: Timers::default(),
            session: None,
        }
    }

    /// The connection.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Who opened it.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The running timers.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// The earliest timer deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// ConnectRetryCounter (RFC 4271 §8): failures since the last ManualStart/ManualStop.
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// What the OPEN exchange settled (OpenConfirm and Established).
    pub fn session(&self) -> Option<&Established> {
        self.session.as_deref()
    }

    /// The OPEN this connection sends.
    pub fn local_open(&self) -> &Open {
        &self.local_open
    }

    /// The OPEN checks of RFC 4271 §6.2 against this peering's configuration: version, peer AS
    /// (and not ours for an external peer), hold time, BGP Identifier, optional parameters.
    pub fn check_open(&self, open: &Open) -> Result<(), DecodeError> {
        if open.version != BGP_VERSION {
            return Err(DecodeError::new(
                ErrorKind::UnsupportedVersion {
                    version: open.version,
                },
                crate::wire::HEADER_LEN,
            )
            .with_data([0, BGP_VERSION]));
        }
        open.validate(&self.config.open_check())?;
        if self.config.peer_as == PeerAs::External && open.asn() == self.config.local_as {
            return Err(DecodeError::new(
                ErrorKind::BadPeerAs { asn: open.asn() },
                crate::wire::HEADER_LEN + 1,
            ));
        }
        Ok(())
    }

    /// Fire every timer whose deadline is at or before `now`, in deadline order, each at most
    /// once (a timer re-armed by its expiry lies in the future).
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for (deadline, kind) in self.timers.running() {
            if deadline > now {
                break;
            }
            if self.timers.get(kind) != Some(deadline) {
                continue; // stopped or re-armed by an earlier expiry
            }
            self.timers.set(kind, None);
            out.extend(self.handle(now, kind.event()));
        }
        out
    }

    /// Close the connection without a NOTIFICATION because the peer wrapper decided so (an
    /// AutomaticStop, RFC 4271 event 8): another connection won, or the peer restarted.
    pub fn abandon(&mut self, reason: DownReason) -> Vec<Action> {
        if self.state == State::Idle {
            return Vec::new();
        }
        let from = self.state;
        let mut out = Vec::new();
        let reason = self.close(&mut out, None, reason, Counter::Increment);
        out.push(self.transition(from, EventKind::AutomaticStop, reason));
        out
    }

    /// Process one event (RFC 4271 §8.2.2).
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let from = self.state;
        let kind = event.kind();
        let mut out = Vec::new();
        let reason = self.step(now, event, &mut out);
        if self.state != from {
            out.push(self.transition(from, kind, reason));
        }
        out
    }

    fn transition(&self, from: State, event: EventKind, reason: Option<DownReason>) -> Action {
        Action::Transition(Transition {
            conn: self.conn,
            direction: self.direction,
            from,
            to: self.state,
            event,
            reason,
        })
    }

    fn step(&mut self, now: Instant, event: Event, out: &mut Vec<Action>) -> Option<DownReason> {
        use DownReason as R;
        use Event as E;
        use State as S;
        let kind = event.kind();
        match (self.state, event) {
            // ── Idle: only a start leaves it; everything else is ignored.
            (S::Idle, E::ManualStart | E::AutomaticStart) if !self.config.passive => {
                self.connect_retry_counter = 0;
                self.connect(now, out);
                self.state = S::Connect;
                None
            }
            (
                S::Idle,
                E::ManualStart
                | E::AutomaticStart
                | E::ManualStartWithPassiveTcpEstablishment
                | E::AutomaticStartWithPassiveTcpEstablishment,
            ) => {
                // Listen only; no ConnectRetryTimer (its expiry in Active would connect).
                self.connect_retry_counter = 0;
                self.state = S::Active;
                None
            }
            (S::Idle, _) => None,

            // ── Start events and TcpConnection_Valid never change a started FSM; a second
            //    TCP connection in OpenSent or later belongs to another FSM (§6.8).
            (
                _,
                E::ManualStart
                | E::AutomaticStart
                | E::ManualStartWithPassiveTcpEstablishment
                | E::AutomaticStartWithPassiveTcpEstablishment
                | E::TcpConnectionValid,
            ) => None,
            (
                S::OpenSent | S::OpenConfirm | S::Established,
                E::TcpCrAcked | E::TcpConnectionConfirmed,
            ) => None,

            // ── Connect and Active: waiting for a TCP connection (or for the peer's OPEN
            //    while the DelayOpenTimer runs).
            (S::Connect | S::Active, E::ManualStop(stop)) => self.close(
                out,
                None,
                R::ManualStop {
                    graceful: stop.graceful,
                },
                Counter::Reset,
            ),
            (S::Connect, E::ConnectRetryTimerExpires) => {
                self.release_tcp(out);
                self.timers.delay_open = None;
                self.connect(now, out);
                None
            }
            (S::Active, E::ConnectRetryTimerExpires) => {
                if self.config.passive {
                    return None;
                }
                self.connect(now, out);
                self.state = S::Connect;
                None
            }
            (S::Connect | S::Active, E::DelayOpenTimerExpires) => {
                if self.tcp == Tcp::Up {
                    self.timers = Timers::default();
                    self.send_open(now, out);
                }
                None
            }
            // A TCP success counts only for the connection this FSM waits for: Tcp_CR_Acked
            // for its own attempt, TcpConnectionConfirmed while it has none up.
            (S::Connect | S::Active, E::TcpCrAcked) if self.tcp != Tcp::Connecting => None,
            (S::Connect | S::Active, E::TcpConnectionConfirmed) if self.tcp == Tcp::Up => None,
            (S::Connect | S::Active, E::TcpCrAcked | E::TcpConnectionConfirmed) => {
                self.tcp = Tcp::Up;
                self.timers.connect_retry = None;
                match self.config.delay_open {
                    Some(d) => self.timers.delay_open = Some(now + d),
                    None => self.send_open(now, out),
                }
                None
            }
            (S::Connect, E::TcpConnectionFails) if self.timers.delay_open.is_some() => {
                self.release_tcp(out);
                self.timers.delay_open = None;
                self.timers.connect_retry = Some(now + self.config.connect_retry);
                self.state = S::Active;
                None
            }
            (S::Connect, E::TcpConnectionFails) => {
                self.close(out, None, R::ConnectionClosed, Counter::Keep)
            }
            (S::Active, E::TcpConnectionFails) => {
                self.close(out, None, R::ConnectionClosed, Counter::Increment)
            }
            (S::Connect | S::Active, E::BgpOpen(open)) if self.timers.delay_open.is_some() => {
                match self.check_open(&open) {
                    Err(e) => self.message_error(out, &e),
                    Ok(()) => {
                        self.timers = Timers::default();
                        self.send_open(now, out);
                        self.accept_open(now, *open, out);
                        None
                    }
                }
            }
            (S::Connect | S::Active, E::BgpHeaderErr(e) | E::BgpOpenMsgErr(e)) => {
                self.message_error(out, &e)
            }
            (S::Connect | S::Active, E::NotifMsgVerErr(n)) => {
                let counter = if self.timers.delay_open.is_some() {
                    Counter::Keep
                } else {
                    Counter::Increment
                };
                self.close(out, None, R::NotificationReceived(n), counter)
            }
            (S::Connect | S::Active, other) => {
                let reason = match other {
                    E::NotifMsg(n) => R::NotificationReceived(n),
                    E::AutomaticStop(n) => R::AutomaticStop(n),
                    E::OpenCollisionDump => R::Collision,
                    _ => R::FsmError {
                        event: kind,
                        sent: None,
                    },
                };
                self.close(out, None, reason, Counter::Increment)
            }

            // ── OpenSent and OpenConfirm.
            (S::OpenSent | S::OpenConfirm, E::ManualStop(stop)) => {
                let n = cease(CeaseReason::AdministrativeShutdown, &stop);
                self.close(
                    out,
                    Some(n),
                    R::ManualStop {
                        graceful: stop.graceful,
                    },
                    Counter::Reset,
                )
            }
            (S::OpenSent | S::OpenConfirm, E::AutomaticStop(n)) => self.close(
                out,
                Some(n.clone()),
                R::AutomaticStop(n),
                Counter::Increment,
            ),
            (S::OpenSent | S::OpenConfirm, E::HoldTimerExpires) => self.close(
                out,
                Some(Notification::new(ErrorCode::HoldTimerExpired)),
                R::HoldTimerExpired,
                Counter::Increment,
            ),
            (S::OpenSent | S::OpenConfirm, E::TcpConnectionFails) => {
                self.close(out, None, R::ConnectionClosed, Counter::Increment)
            }
            (S::OpenSent, E::BgpOpen(open)) => match self.check_open(&open) {
                Err(e) => self.message_error(out, &e),
                Ok(()) => {
                    self.timers.delay_open = None;
                    self.timers.connect_retry = None;
                    self.accept_open(now, *open, out);
                    None
                }
            },
            (S::OpenSent | S::OpenConfirm, E::BgpHeaderErr(e) | E::BgpOpenMsgErr(e)) => {
                self.message_error(out, &e)
            }
            (S::OpenSent | S::OpenConfirm, E::OpenCollisionDump) => self.close(
                out,
                Some(Notification::new(ErrorCode::Cease(
                    CeaseReason::ConnectionCollisionResolution,
                ))),
                R::Collision,
                Counter::Increment,
            ),
            (S::OpenSent | S::OpenConfirm, E::NotifMsgVerErr(n)) => {
                self.close(out, None, R::NotificationReceived(n), Counter::Keep)
            }
            (S::OpenSent | S::OpenConfirm, E::NotifMsg(n)) => {
                self.close(out, None, R::NotificationReceived(n), Counter::Increment)
            }
            (S::OpenConfirm | S::Established, E::KeepaliveTimerExpires) => {
                out.push(self.send(Message::Keepalive));
                self.arm_keepalive(now);
                None
            }
            (S::OpenConfirm, E::KeepAliveMsg) => {
                self.restart_hold(now);
                self.state = S::Established;
                if let Some(s) = &self.session {
                    out.push(Action::Established(s.clone()));
                }
                None
            }
            (S::OpenSent | S::OpenConfirm, _) => self.fsm_error(out, kind),

            // ── Established.
            (S::Established, E::ManualStop(stop)) => {
                let n = self.stop_notification(&stop);
                self.close(
                    out,
                    n,
                    R::ManualStop {
                        graceful: stop.graceful,
                    },
                    Counter::Reset,
                )
            }
            (S::Established, E::AutomaticStop(n)) => {
                let n = if self.session.as_ref().is_some_and(|s| s.gr_notification)
                    && needs_hard_reset(&n)
                {
                    hard_reset(&n)
                } else {
                    n
                };
                self.close(
                    out,
                    Some(n.clone()),
                    R::AutomaticStop(n),
                    Counter::Increment,
                )
            }
            (S::Established, E::HoldTimerExpires) => self.close(
                out,
                Some(Notification::new(ErrorCode::HoldTimerExpired)),
                R::HoldTimerExpired,
                Counter::Increment,
            ),
            (S::Established, E::TcpConnectionFails) => {
                self.close(out, None, R::ConnectionClosed, Counter::Increment)
            }
            (S::Established, E::NotifMsg(n) | E::NotifMsgVerErr(n)) => {
                self.close(out, None, R::NotificationReceived(n), Counter::Increment)
            }
            (S::Established, E::OpenCollisionDump) => self.close(
                out,
                Some(Notification::new(ErrorCode::Cease(
                    CeaseReason::ConnectionCollisionResolution,
                ))),
                R::Collision,
                Counter::Increment,
            ),
            (S::Established, E::KeepAliveMsg) => {
                self.restart_hold(now);
                None
            }
            (S::Established, E::UpdateMsg(u)) => {
                self.restart_hold(now);
                self.deliver(*u, out)
            }
            (S::Established, E::RouteRefreshMsg(rr)) => {
                self.restart_hold(now);
                self.route_refresh(&rr, out);
                None
            }
            (
                S::Established,
                E::UpdateMsgErr(e) | E::RouteRefreshMsgErr(e) | E::BgpHeaderErr(e),
            ) => self.message_error(out, &e),
            (S::Established, _) => self.fsm_error(out, kind),
        }
    }

    fn send(&self, message: Message) -> Action {
        Action::Send {
            conn: self.conn,
            message,
        }
    }

    /// Start (or restart) the ConnectRetryTimer and initiate a TCP connection.
    fn connect(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.timers.connect_retry = Some(now + self.config.connect_retry);
        out.push(Action::Connect { conn: self.conn });
        self.tcp = Tcp::Connecting;
    }

    fn release_tcp(&mut self, out: &mut Vec<Action>) {
        if self.tcp != Tcp::None {
            out.push(Action::Drop { conn: self.conn });
            self.tcp = Tcp::None;
        }
    }

    /// Send our OPEN, set the HoldTimer to the large value, go to OpenSent.
    fn send_open(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(self.send(Message::Open(self.local_open.clone())));
        self.timers.hold = Some(now + LARGE_HOLD_TIME);
        self.state = State::OpenSent;
    }

    /// The peer's OPEN passed the checks: negotiate, send KEEPALIVE, go to OpenConfirm.
    fn accept_open(&mut self, now: Instant, remote: Open, out: &mut Vec<Action>) {
        let session = self.negotiate(remote);
        out.push(self.send(Message::Keepalive));
        self.session = Some(Box::new(session));
        self.arm_keepalive(now);
        self.restart_hold(now);
        self.state = State::OpenConfirm;
    }

    fn negotiate(&self, remote: Open) -> Established {
        let local = &self.local_open;
        let (encode, decode) = negotiate(local, &remote);
        let hold_time = local.hold_time.min(remote.hold_time);
        let keepalive = if hold_time == 0 {
            0
        } else {
            (hold_time / 3).max(1)
        };
        let theirs = remote.families();
        let families = local
            .families()
            .into_iter()
            .filter(|f| theirs.contains(f))
            .collect();
        let gr = |o: &Open| {
            o.capabilities()
                .filter_map(|c| match c {
                    Capability::GracefulRestart(g) => Some(g.clone()),
                    _ => None,
                })
                .last()
        };
        let rr = |o: &Open| o.capabilities().any(|c| *c == Capability::RouteRefresh);
        let (local_gr, peer_gr) = (gr(local), gr(&remote));
        Established {
            conn: self.conn,
            direction: self.direction,
            peer_as: remote.asn(),
            peer_id: remote.bgp_id,
            internal: remote.asn() == self.config.local_as,
            hold_time,
            keepalive,
            encode,
            decode,
            families,
            peer_route_refresh: rr(&remote),
            local_route_refresh: rr(local),
            gr_notification: local_gr.as_ref().is_some_and(|g| g.notification)
                && peer_gr.as_ref().is_some_and(|g| g.notification),
            local_gr: local_gr.is_some(),
            peer_gr,
            local: local.clone(),
            remote,
        }
    }

    fn hold_time(&self) -> u16 {
        self.session.as_ref().map_or(0, |s| s.hold_time)
    }

    /// Restart the HoldTimer with the negotiated value (stopped when it is 0).
    fn restart_hold(&mut self, now: Instant) {
        let h = self.hold_time();
        self.timers.hold = (h > 0).then(|| now + Duration::from_secs(h.into()));
    }

    fn arm_keepalive(&mut self, now: Instant) {
        let k = self.session.as_ref().map_or(0, |s| s.keepalive);
        self.timers.keepalive = (k > 0).then(|| now + Duration::from_secs(k.into()));
    }

    /// Go to Idle: send the NOTIFICATION (when a connection is up), drop the connection, report
    /// the session down (from Established), stop every timer.
    fn close(
        &mut self,
        out: &mut Vec<Action>,
        notify: Option<Notification>,
        reason: DownReason,
        counter: Counter,
    ) -> Option<DownReason> {
        if let Some(n) = notify
            && self.tcp == Tcp::Up
        {
            out.push(self.send(Message::Notification(n)));
        }
        self.release_tcp(out);
        if self.state == State::Established {
            out.push(Action::SessionDown {
                conn: self.conn,
                reason: reason.clone(),
            });
        }
        self.timers = Timers::default();
        self.session = None;
        match counter {
            Counter::Reset => self.connect_retry_counter = 0,
            Counter::Increment => {
                self.connect_retry_counter = self.connect_retry_counter.saturating_add(1)
            }
            Counter::Keep => {}
        }
        self.state = State::Idle;
        Some(reason)
    }

    /// A received message failed its checks: send the NOTIFICATION it calls for and close.
    fn message_error(&mut self, out: &mut Vec<Action>, e: &DecodeError) -> Option<DownReason> {
        let n = Notification::from(e);
        self.close(
            out,
            Some(n.clone()),
            DownReason::MessageError(n),
            Counter::Increment,
        )
    }

    /// An event the state does not expect: FSM Error with the RFC 6608 subcode for messages.
    fn fsm_error(&mut self, out: &mut Vec<Action>, event: EventKind) -> Option<DownReason> {
        let sub = match (event.is_message(), self.state) {
            (true, State::OpenSent) => FsmError::UnexpectedMessageInOpenSent,
            (true, State::OpenConfirm) => FsmError::UnexpectedMessageInOpenConfirm,
            (true, State::Established) => FsmError::UnexpectedMessageInEstablished,
            _ => FsmError::Unspecified,
        };
        let n = Notification::new(ErrorCode::Fsm(sub));
        self.close(
            out,
            Some(n.clone()),
            DownReason::FsmError {
                event,
                sent: Some(n),
            },
            Counter::Increment,
        )
    }

    /// The NOTIFICATION for stopping an Established session: none for a graceful stop without
    /// the N bit (RFC 4724: peers keep our routes when the TCP session just ends), a soft
    /// Cease/Administrative Reset with it (RFC 8538 §4), and otherwise Cease/Administrative
    /// Shutdown, wrapped in Hard Reset when the N bit was exchanged (RFC 8538 §5.1).
    fn stop_notification(&self, stop: &Stop) -> Option<Notification> {
        let s = self.session.as_deref();
        let graceful = stop.graceful && s.is_some_and(|s| s.local_gr && s.peer_gr.is_some());
        let n_bit = s.is_some_and(|s| s.gr_notification);
        match (graceful, n_bit) {
            (true, false) => None,
            (true, true) => Some(cease(CeaseReason::AdministrativeReset, stop)),
            (false, false) => Some(cease(CeaseReason::AdministrativeShutdown, stop)),
            (false, true) => Some(hard_reset(&cease(
                CeaseReason::AdministrativeShutdown,
                stop,
            ))),
        }
    }

    /// Hand an UPDATE to the RIB: End-of-RIB, RFC 7606 treat-as-withdraw, or the UPDATE.
    fn deliver(&mut self, u: Update, out: &mut Vec<Action>) -> Option<DownReason> {
        if let Some(f) = u.is_end_of_rib() {
            out.push(Action::Rib(RibAction::EndOfRib(f)));
            return None;
        }
        match u.action() {
            None | Some(ErrorAction::AttributeDiscard) => {
                out.push(Action::Rib(RibAction::Update(Box::new(u))))
            }
            Some(ErrorAction::TreatAsWithdraw) => out.push(Action::Rib(RibAction::Withdraw(
                Box::new(u.treat_as_withdraw()),
            ))),
            Some(ErrorAction::SessionReset) => {
                // The decoder returns session-reset errors as Err; honour one that got here.
                if let Some(e) = u
                    .errors
                    .iter()
                    .find(|e| e.action == ErrorAction::SessionReset)
                {
                    let e = e.clone();
                    return self.message_error(out, &e);
                }
            }
        }
        None
    }

    /// ROUTE-REFRESH (RFC 2918 §4): re-advertise a family we negotiated, if we advertised the
    /// capability. Other subtypes (RFC 7313, not advertised by us) and families are ignored.
    fn route_refresh(&self, rr: &RouteRefresh, out: &mut Vec<Action>) {
        let Some(s) = self.session.as_deref() else {
            return;
        };
        if rr.subtype == RouteRefreshSubtype::Normal
            && s.local_route_refresh
            && s.families.contains(&rr.afi_safi)
        {
            out.push(Action::Rib(RibAction::ReAdvertise(rr.afi_safi)));
        }
    }
}

/// A Cease with the stop's shutdown communication (RFC 9003) when there is one.
fn cease(reason: CeaseReason, stop: &Stop) -> Notification {
    match &stop.communication {
        Some(text) => Notification::shutdown(reason, text),
        None => Notification::new(ErrorCode::Cease(reason)),
    }
}
