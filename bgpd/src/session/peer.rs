//! A configured peer: up to two connections with their own [`Fsm`], collision resolution
//! (RFC 4271 §6.8), the IdleHoldTimer with back-off (§8.1.1), graceful restart helper mode
//! (RFC 4724 §4.2, RFC 8538), End-of-RIB and route refresh.
//!
//! ```text
//!   ManualStart ──> outgoing Fsm: Connect ─ Tcp_CR_Acked ─> OpenSent ─┐
//!   TcpConnectionConfirmed ──> incoming Fsm: Active ─> OpenSent ───────┤ BGPOpen on one while the
//!                              (refused when stopped, damped, or       │ other is in OpenSent,
//!                               Established without GR/CollisionDetect) OpenConfirm or Established:
//!                                                                       │ §6.8 by BGP Identifier,
//!   every connection gone, peer started:                                │ or RFC 4724 §4.2 restart
//!     IdleHoldTimer = back-off ─ expires ─> AutomaticStart (outgoing)   v
//!                                                        one session: Established / SessionDown
//! ```
//!
//! The only automatic way to a new outgoing connection is the IdleHoldTimer (at least
//! `damping.initial`, doubling per failure) or an outgoing FSM's ConnectRetryTimer (at least
//! `connect_retry`): the peer cannot reconnect in a busy loop.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::action::{Action, DownReason, Established, RefuseReason, RibAction};
use super::config::{ConfigError, PeerConfig};
use super::damping::Damping;
use super::event::{Event, Stop};
use super::fsm::Fsm;
use super::gr::Helper;
use super::{ConnId, Direction, State};
use crate::wire::{AfiSafi, Message, Notification, Open, RouteRefresh, Update};

/// An event for a [`Peer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// Start the peering (RFC 4271 event 1, or 4 when configured passive).
    ManualStart,
    /// Stop the peering (event 2); see [`Stop`] for graceful restart.
    ManualStop(Stop),
    /// Stop automatically with this Cease (event 8), e.g. the maximum-prefix limit; the peer
    /// connects again after its IdleHoldTimer.
    AutomaticStop(Notification),
    /// The listener accepted a TCP connection from this peer's address (event 17 for a new
    /// FSM). Answered with [`Action::Accept`] or [`Action::Refuse`].
    TcpConnectionConfirmed,
    /// An event of one connection (TCP outcome or received message).
    Conn {
        /// The connection.
        conn: ConnId,
        /// The event.
        event: Event,
    },
    /// The RIB finished sending the Adj-RIB-Out after Established: send End-of-RIB for each
    /// negotiated family (RFC 4724 §4).
    InitialAdvertisementComplete,
}

/// Why a ROUTE-REFRESH cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshRequestError {
    /// No session.
    #[error("route refresh: the session is not established")]
    NotEstablished,
    /// The peer did not advertise the capability (RFC 2918 §4).
    #[error("route refresh: the peer did not advertise the capability (RFC 2918)")]
    NotSupported,
    /// The family is not part of the session.
    #[error("route refresh: family {family} was not negotiated")]
    FamilyNotNegotiated {
        /// The family asked for.
        family: AfiSafi,
    },
}

/// One configured peer.
#[derive(Debug, Clone)]
pub struct Peer {
    config: PeerConfig,
    started: bool,
    restarting: bool,
    next_conn: u64,
    conns: Vec<Fsm>,
    idle_hold: Option<Instant>,
    damping: Damping,
    session: Option<Box<Established>>,
    helper: Helper,
    eor_sent: bool,
    /// A connection that had reached OpenSent went back to Idle since the last failure was
    /// counted: the peer answers and then fails (oscillation), unlike a peer we cannot reach.
    session_failure: bool,
    /// The last counted failure was such a session failure: only then does the IdleHoldTimer
    /// refuse the peer's own connections.
    refuse_when_damped: bool,
    /// The other connections that existed when the session became Established: colliding
    /// with it (RFC 4271 §6.8), never a sign that the peer restarted (RFC 4724 §4.2 is about
    /// a connection that comes after).
    partners: Vec<ConnId>,
}

impl Peer {
    /// A stopped peer. `restarting`: this process restarted with forwarding state kept, so
    /// OPENs carry the R bit until the first session with this peer is Established
    /// (RFC 4724 §4.1).
    pub fn new(config: PeerConfig, restarting: bool) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            damping: Damping::new(config.damping),
            config,
            started: false,
            restarting,
            next_conn: 1,
            conns: Vec::new(),
            idle_hold: None,
            session: None,
            helper: Helper::default(),
            eor_sent: false,
            session_failure: false,
            refuse_when_damped: false,
            partners: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// The furthest state of the connections; Active for a started passive peer that waits,
    /// Idle otherwise.
    pub fn state(&self) -> State {
        self.conns
            .iter()
            .map(Fsm::state)
            .max_by_key(|s| s.progress())
            .unwrap_or(
                if self.started && self.config.passive && self.idle_hold.is_none() {
                    State::Active
                } else {
                    State::Idle
                },
            )
    }

    /// The Established session.
    pub fn established(&self) -> Option<&Established> {
        self.session.as_deref()
    }

    /// The live connections (at most two).
    pub fn connections(&self) -> impl Iterator<Item = &Fsm> {
        self.conns.iter()
    }

    /// The damping state.
    pub fn damping(&self) -> &Damping {
        &self.damping
    }

    /// When the IdleHoldTimer expires, if it runs.
    pub fn idle_hold(&self) -> Option<Instant> {
        self.idle_hold
    }

    /// Graceful restart helper state.
    pub fn helper(&self) -> &Helper {
        &self.helper
    }

    /// Whether our OPENs still carry the R bit.
    pub fn restarting(&self) -> bool {
        self.restarting
    }

    /// The earliest deadline of any timer; call [`Peer::poll`] then.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(Fsm::next_deadline)
            .chain(self.idle_hold)
            .chain(self.helper.next_deadline())
            .min()
    }

    /// Fire every timer due at `now` (each at most once).
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for id in self.ids() {
            if let Some(i) = self.index(id) {
                let acts = self.conns[i].poll(now);
                self.observe_all(now, acts, &mut out);
            }
        }
        if self.idle_hold.is_some_and(|t| t <= now) {
            self.idle_hold = None;
            if self.started
                && !self.config.passive
                && self.session.is_none()
                && !self
                    .conns
                    .iter()
                    .any(|c| c.direction() == Direction::Outgoing)
            {
                self.open_outgoing(now, Event::AutomaticStart, &mut out);
            }
        }
        out.extend(self.helper.poll(now).into_iter().map(Action::Rib));
        self.settle(now, &mut out);
        out
    }

    /// Process one event.
    pub fn handle(&mut self, now: Instant, event: PeerEvent) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            PeerEvent::ManualStart => self.start(now, &mut out),
            PeerEvent::ManualStop(stop) => self.stop(now, stop, &mut out),
            PeerEvent::AutomaticStop(n) => {
                for id in self.ids() {
                    self.feed(now, id, Event::AutomaticStop(n.clone()), &mut out);
                }
            }
            PeerEvent::TcpConnectionConfirmed => self.incoming(now, &mut out),
            PeerEvent::Conn { conn, event } => self.conn_event(now, conn, event, &mut out),
            PeerEvent::InitialAdvertisementComplete => self.send_end_of_rib(&mut out),
        }
        self.settle(now, &mut out);
        out
    }

    /// A ROUTE-REFRESH asking the peer to re-send its routes of `family` (RFC 2918 §3).
    pub fn request_route_refresh(&self, family: AfiSafi) -> Result<Action, RefreshRequestError> {
        let s = self
            .session
            .as_deref()
            .ok_or(RefreshRequestError::NotEstablished)?;
        if !s.peer_route_refresh {
            return Err(RefreshRequestError::NotSupported);
        }
        if !s.families.contains(&family) {
            return Err(RefreshRequestError::FamilyNotNegotiated { family });
        }
        Ok(Action::Send {
            conn: s.conn,
            message: Message::RouteRefresh(RouteRefresh::new(family)),
        })
    }

    fn ids(&self) -> Vec<ConnId> {
        self.conns.iter().map(Fsm::conn).collect()
    }

    fn index(&self, id: ConnId) -> Option<usize> {
        self.conns.iter().position(|c| c.conn() == id)
    }

    fn alloc(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    fn local_open(&self) -> Open {
        self.config.local_open(self.restarting)
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.started {
            return;
        }
        self.started = true;
        self.idle_hold = None;
        if !self.config.passive {
            self.open_outgoing(now, Event::ManualStart, out);
        }
    }

    fn stop(&mut self, now: Instant, stop: Stop, out: &mut Vec<Action>) {
        self.started = false;
        self.idle_hold = None;
        for id in self.ids() {
            self.feed(now, id, Event::ManualStop(stop.clone()), out);
        }
        // Helper mode with the session already down: our stop ends the wait.
        if self.session.is_none() && self.helper != Helper::default() {
            if stop.graceful {
                self.helper.clear();
            } else {
                out.extend(self.helper.flush().into_iter().map(Action::Rib));
            }
        }
    }

    fn open_outgoing(&mut self, now: Instant, event: Event, out: &mut Vec<Action>) {
        let id = self.alloc();
        let mut fsm = Fsm::new(id, Direction::Outgoing, &self.config, self.local_open());
        let acts = fsm.handle(now, event);
        self.conns.push(fsm);
        self.observe_all(now, acts, out);
    }

    /// The IdleHoldTimer refuses incoming connections only after repeated failures: the first
    /// failure after a stable session is often the peer restarting, and refusing it would
    /// defeat graceful restart. Failures of our own connection attempts (refused, timed out)
    /// never make us refuse the peer's: a peer that only connects and never listens (ExaBGP,
    /// many node speakers) would otherwise be locked out by our retries.
    fn damped(&self) -> Option<Instant> {
        self.idle_hold
            .filter(|_| self.damping.failures() >= 2 && self.refuse_when_damped)
    }

    fn incoming(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.started {
            out.push(Action::Refuse {
                reason: RefuseReason::NotStarted,
            });
            return;
        }
        if let Some(until) = self.damped() {
            out.push(Action::Refuse {
                reason: RefuseReason::Damped { until },
            });
            return;
        }
        if let Some(s) = &self.session {
            let gr_restart = self.config.graceful_restart.is_some() && s.peer_gr.is_some();
            if !(gr_restart || self.config.collision_detect_established) {
                out.push(Action::Refuse {
                    reason: RefuseReason::Established,
                });
                return;
            }
        }
        // An earlier incoming connection that is not Established: the peer gave up on it.
        if let Some(old) = self
            .conns
            .iter()
            .find(|c| c.direction() == Direction::Incoming && c.state() != State::Established)
            .map(Fsm::conn)
        {
            self.feed(now, old, Event::OpenCollisionDump, out);
        }
        let id = self.alloc();
        out.push(Action::Accept { conn: id });
        let mut fsm = Fsm::new(id, Direction::Incoming, &self.config, self.local_open());
        let mut acts = fsm.handle(now, Event::AutomaticStartWithPassiveTcpEstablishment);
        acts.extend(fsm.handle(now, Event::TcpConnectionConfirmed));
        self.conns.push(fsm);
        self.observe_all(now, acts, out);
    }

    fn conn_event(&mut self, now: Instant, id: ConnId, event: Event, out: &mut Vec<Action>) {
        let Some(i) = self.index(id) else {
            return; // the connection is gone: a late event
        };
        if event == Event::TcpConnectionConfirmed {
            return; // incoming connections get a new ConnId (PeerEvent::TcpConnectionConfirmed)
        }
        if let Event::BgpOpen(open) = &event {
            let fsm = &self.conns[i];
            let opening = fsm.state() == State::OpenSent
                || (matches!(fsm.state(), State::Connect | State::Active)
                    && fsm.timers().delay_open.is_some());
            if opening
                && fsm.check_open(open).is_ok()
                && !self.resolve_collision(now, id, open, out)
            {
                return;
            }
        }
        self.feed(now, id, event, out);
    }

    /// A valid OPEN arrived on `id`. If another connection is in OpenSent, OpenConfirm or
    /// Established, close one of them; `false` when `id` itself was closed.
    fn resolve_collision(
        &mut self,
        now: Instant,
        id: ConnId,
        open: &Open,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(other) = self.conns.iter().find(|c| {
            c.conn() != id
                && matches!(
                    c.state(),
                    State::OpenSent | State::OpenConfirm | State::Established
                )
        }) else {
            return true;
        };
        let (other_id, other_state) = (other.conn(), other.state());
        if other_state == State::Established {
            let peer_gr = self.session.as_ref().is_some_and(|s| s.peer_gr.is_some());
            if self.config.graceful_restart.is_some() && peer_gr && !self.partners.contains(&id) {
                // RFC 4724 §4.2: the new connection tells us the old session is gone.
                self.abandon_at(now, other_id, DownReason::PeerRestarted, out);
                return true;
            }
            if !self.config.collision_detect_established {
                self.feed(now, id, Event::OpenCollisionDump, out);
                return false;
            }
        }
        let this_dir = self
            .index(id)
            .map_or(Direction::Incoming, |i| self.conns[i].direction());
        let keep = collision_winner(self.config.router_id, self.config.local_as, open);
        if this_dir == keep {
            self.feed(now, other_id, Event::OpenCollisionDump, out);
            true
        } else {
            self.feed(now, id, Event::OpenCollisionDump, out);
            false
        }
    }

    fn feed(&mut self, now: Instant, id: ConnId, event: Event, out: &mut Vec<Action>) {
        if let Some(i) = self.index(id) {
            let acts = self.conns[i].handle(now, event);
            self.observe_all(now, acts, out);
        }
    }

    fn abandon_at(&mut self, now: Instant, id: ConnId, reason: DownReason, out: &mut Vec<Action>) {
        if let Some(i) = self.index(id) {
            let acts = self.conns[i].abandon(reason);
            self.observe_all(now, acts, out);
        }
    }

    fn observe_all(&mut self, now: Instant, acts: Vec<Action>, out: &mut Vec<Action>) {
        for a in acts {
            self.observe(now, a, out);
        }
    }

    /// Pass an FSM action on, adding what the peer does about it: session bookkeeping,
    /// damping, graceful restart helper actions.
    fn observe(&mut self, now: Instant, action: Action, out: &mut Vec<Action>) {
        match action {
            Action::Established(s) => {
                self.restarting = false;
                self.damping.established(now);
                self.idle_hold = None;
                self.eor_sent = false;
                let stale_time = self
                    .config
                    .graceful_restart
                    .as_ref()
                    .map(|g| g.stale_routes_time)
                    .unwrap_or_default();
                let rib = self.helper.session_up(now, &s, stale_time);
                self.partners = self
                    .conns
                    .iter()
                    .map(Fsm::conn)
                    .filter(|c| *c != s.conn)
                    .collect();
                self.session = Some(s.clone());
                out.push(Action::Established(s));
                out.extend(rib.into_iter().map(Action::Rib));
            }
            Action::SessionDown { conn, reason } => {
                let ended = self.session.take_if(|s| s.conn == conn);
                if ended.is_some() {
                    self.partners.clear();
                }
                out.push(Action::SessionDown {
                    conn,
                    reason: reason.clone(),
                });
                if let Some(s) = ended {
                    self.eor_sent = false;
                    let rib = match reason {
                        // Our own restart: the forwarding state stays for the next process.
                        DownReason::ManualStop { graceful: true } if s.local_gr => {
                            self.helper.clear();
                            Vec::new()
                        }
                        _ => {
                            let retain = s.retains_routes(&reason);
                            self.helper.session_down(now, &s, retain)
                        }
                    };
                    out.extend(rib.into_iter().map(Action::Rib));
                }
            }
            Action::Transition(t) => {
                if t.to == State::Idle && t.from.progress() >= State::OpenSent.progress() {
                    self.session_failure = true;
                }
                out.push(Action::Transition(t));
            }
            Action::Rib(RibAction::EndOfRib(f)) => {
                out.push(Action::Rib(RibAction::EndOfRib(f)));
                out.extend(self.helper.end_of_rib(f).into_iter().map(Action::Rib));
            }
            other => out.push(other),
        }
    }

    /// After an event: close outgoing attempts made pointless by an Established session and
    /// (unless collision detection covers Established) the connections it collided with,
    /// forget connections in Idle, and start the IdleHoldTimer when the last one failed.
    fn settle(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.session.is_some() && !self.config.collision_detect_established {
            // RFC 4271 §6.8: a collision with an Established connection closes the other one
            // (Cease, Connection Collision Resolution); waiting for its OPEN would let that
            // OPEN look like the peer restarting (RFC 4724 §4.2) and end the good session.
            let colliding: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|c| {
                    self.partners.contains(&c.conn())
                        && matches!(c.state(), State::OpenSent | State::OpenConfirm)
                })
                .map(Fsm::conn)
                .collect();
            for id in colliding {
                self.feed(now, id, Event::OpenCollisionDump, out);
            }
        }
        if let Some(est) = self.session.as_ref().map(|s| s.conn) {
            let pointless: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|c| c.conn() != est && matches!(c.state(), State::Connect | State::Active))
                .map(Fsm::conn)
                .collect();
            for id in pointless {
                self.abandon_at(now, id, DownReason::Superseded, out);
            }
        }
        let before = self.conns.len();
        self.conns.retain(|c| c.state() != State::Idle);
        if self.conns.len() < before && self.conns.is_empty() && self.started {
            let hold = self.damping.failure(now);
            self.idle_hold = Some(now + hold);
            self.refuse_when_damped = std::mem::take(&mut self.session_failure);
        }
    }

    fn send_end_of_rib(&mut self, out: &mut Vec<Action>) {
        let Some(s) = self.session.as_deref() else {
            return;
        };
        if self.eor_sent {
            return;
        }
        self.eor_sent = true;
        for f in &s.families {
            out.push(Action::Send {
                conn: s.conn,
                message: Message::Update(Update::end_of_rib(*f)),
            });
        }
    }
}

/// Which connection survives a collision (RFC 4271 §6.8): the one initiated by the speaker
/// with the higher BGP Identifier, compared as unsigned integers; with equal identifiers
/// (possible between ASes) the one initiated by the higher AS (RFC 6286 §2.3).
pub fn collision_winner(local_id: Ipv4Addr, local_as: u32, remote: &Open) -> Direction {
    if (u32::from(local_id), local_as) > (u32::from(remote.bgp_id), remote.asn()) {
        Direction::Outgoing
    } else {
        Direction::Incoming
    }
}
