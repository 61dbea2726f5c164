//! Random event sequences against a [`Peer`]: admin events, accepted connections, TCP
//! outcomes and messages on live and stale connections, injected timer expiries, and time
//! passing. After every step:
//! - nothing panicked;
//! - no busy loop: after `poll(now)` no deadline is due; an automatic reconnect happens only
//!   once the IdleHoldTimer (at least `damping.initial`) ran out, and two Connects of the
//!   peer are never closer than the shorter of ConnectRetryTime and `damping.initial`
//!   unless an operator started the peer in between;
//! - Established ⇔ a negotiated session exists, with hold time min(ours, theirs), never 1 or 2,
//!   and keepalive = hold/3;
//! - at most two connections, at most one past OpenSent;
//! - no message is sent on a connection after it was dropped, and every NOTIFICATION is
//!   followed by the Drop of its connection.

mod session_support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgpd::session::*;
use bgpd::wire::*;
use proptest::prelude::*;
use session_support::*;

#[derive(Debug, Clone)]
enum Msg {
    Open {
        id: Ipv4Addr,
        asn: u32,
        hold: u16,
        gr: Option<GracefulRestart>,
    },
    Keepalive,
    Update,
    TreatAsWithdraw,
    EndOfRib(AfiSafi),
    Notification(u8, u8),
    RouteRefresh(AfiSafi),
    HeaderErr,
    UpdateErr,
}

#[derive(Debug, Clone)]
enum Op {
    Start,
    Stop(bool),
    AutoStop,
    Incoming,
    InitialAdvertisement,
    Tcp(usize, u8),
    Msg(usize, Msg),
    Timer(usize, u8),
    Advance(u64),
    PollNext,
    /// TCP up (if still connecting), a valid OPEN, a KEEPALIVE: the likely path to Established.
    Handshake(usize, Ipv4Addr, Option<GracefulRestart>),
}

fn gr() -> impl Strategy<Value = Option<GracefulRestart>> {
    prop_oneof![
        Just(None),
        (any::<bool>(), any::<bool>(), 0u16..200, any::<bool>()).prop_map(|(n, r, t, f)| {
            let mut g = gr_cap(t, n, &[(V4, f), (V6, !f)]);
            g.restart_state = r;
            Some(g)
        }),
    ]
}

fn msg() -> impl Strategy<Value = Msg> {
    let id = prop_oneof![
        Just(PEER_ID),
        Just(PEER_ID_HIGH),
        Just(LOCAL_ID),
        Just(Ipv4Addr::UNSPECIFIED)
    ];
    let gr = gr();
    let family = prop_oneof![Just(V4), Just(V6), Just(AfiSafi::new(1, 128))];
    prop_oneof![
        4 => (id, prop_oneof![9 => Just(PEER_AS), 1 => Just(65099u32)],
              prop_oneof![Just(0u16), Just(1), Just(3), Just(30), Just(90)], gr)
            .prop_map(|(id, asn, hold, gr)| Msg::Open { id, asn, hold, gr }),
        6 => Just(Msg::Keepalive),
        2 => Just(Msg::Update),
        1 => Just(Msg::TreatAsWithdraw),
        2 => family.clone().prop_map(Msg::EndOfRib),
        1 => (prop_oneof![Just(6u8), Just(4), Just(2), Just(5)], 0u8..10)
            .prop_map(|(c, s)| Msg::Notification(c, s)),
        1 => family.prop_map(Msg::RouteRefresh),
        1 => Just(Msg::HeaderErr),
        1 => Just(Msg::UpdateErr),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Start),
        1 => any::<bool>().prop_map(Op::Stop),
        1 => Just(Op::AutoStop),
        5 => Just(Op::Incoming),
        1 => Just(Op::InitialAdvertisement),
        6 => (0usize..8, 0u8..3).prop_map(|(c, t)| Op::Tcp(c, t)),
        12 => (0usize..8, msg()).prop_map(|(c, m)| Op::Msg(c, m)),
        1 => (0usize..8, 0u8..4).prop_map(|(c, t)| Op::Timer(c, t)),
        4 => (0u64..300_000).prop_map(Op::Advance),
        6 => Just(Op::PollNext),
        4 => (0usize..8, prop_oneof![Just(PEER_ID), Just(PEER_ID_HIGH)], gr())
            .prop_map(|(c, id, gr)| Op::Handshake(c, id, gr)),
    ]
}

fn peer_config() -> impl Strategy<Value = PeerConfig> {
    (
        any::<bool>(),
        prop_oneof![Just(None), Just(Some(secs(2)))],
        prop_oneof![Just(0u16), Just(3), Just(90)],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(1u64), Just(5), Just(120)],
    )
        .prop_map(|(passive, delay_open, hold, gr, cde, retry)| {
            let mut c = config();
            c.passive = passive;
            c.delay_open = delay_open;
            c.hold_time = hold;
            c.collision_detect_established = cde;
            c.connect_retry = secs(retry);
            if !gr {
                c.graceful_restart = None;
            }
            c
        })
}

fn event_for(m: &Msg) -> Event {
    match m.clone() {
        Msg::Open { id, asn, hold, gr } => {
            let mut caps = vec![
                Capability::Multiprotocol(V4),
                Capability::Multiprotocol(V6),
                Capability::RouteRefresh,
                Capability::FourOctetAs(asn),
            ];
            caps.extend(gr.map(Capability::GracefulRestart));
            open_event(Open::new(asn, hold, id, caps))
        }
        Msg::Keepalive => Event::KeepAliveMsg,
        Msg::Update => update_event(update()),
        Msg::TreatAsWithdraw => update_event(treat_as_withdraw_update()),
        Msg::EndOfRib(f) => update_event(Update::end_of_rib(f)),
        Msg::Notification(c, s) => Event::from_message(Ok(Message::Notification(notif(c, s)))),
        Msg::RouteRefresh(f) => Event::RouteRefreshMsg(RouteRefresh::new(f)),
        Msg::HeaderErr => Event::BgpHeaderErr(header_error()),
        Msg::UpdateErr => Event::UpdateMsgErr(update_error()),
    }
}

/// What the checker remembers between steps.
struct Watch {
    cfg: PeerConfig,
    known: Vec<ConnId>,
    closed: BTreeSet<ConnId>,
    last_connect: Option<Instant>,
    hold_until: Option<Instant>,
}

impl Watch {
    fn check(&mut self, p: &Peer, now: Instant, acts: &[Action], admin_start: bool, polled: bool) {
        if admin_start {
            self.last_connect = None;
        }
        for (i, a) in acts.iter().enumerate() {
            match a {
                Action::Connect { conn } => {
                    if let Some(prev) = self.last_connect {
                        let floor = self.cfg.connect_retry.min(self.cfg.damping.initial);
                        assert!(
                            now - prev >= floor,
                            "Connect {:?} after {:?}, floor {floor:?}",
                            conn,
                            now - prev
                        );
                    }
                    self.last_connect = Some(now);
                    self.closed.remove(conn);
                    if !self.known.contains(conn) {
                        self.known.push(*conn);
                    }
                }
                Action::Accept { conn } => self.known.push(*conn),
                Action::Send { conn, message } => {
                    assert!(
                        !self.closed.contains(conn),
                        "send on dropped {conn}: {acts:?}"
                    );
                    if matches!(message, Message::Notification(_)) {
                        assert_eq!(
                            acts.get(i + 1),
                            Some(&Action::Drop { conn: *conn }),
                            "NOTIFICATION then Drop"
                        );
                    }
                }
                Action::Drop { conn } => {
                    assert!(self.closed.insert(*conn), "{conn} dropped twice: {acts:?}");
                }
                Action::Transition(t) => {
                    assert_ne!(t.from, t.to);
                    if t.event == EventKind::AutomaticStart && t.to == State::Connect {
                        let until = self.hold_until.expect("automatic start without idle hold");
                        assert!(now >= until, "reconnect before the IdleHoldTimer");
                        assert!(polled);
                    }
                }
                _ => {}
            }
        }
        if let Some(until) = p.idle_hold()
            && self.hold_until != Some(until)
        {
            let d = until - now;
            assert!(
                d >= self.cfg.damping.initial && d <= self.cfg.damping.max,
                "idle hold {d:?}"
            );
            self.hold_until = Some(until);
        }
        if polled {
            assert!(
                p.next_deadline().is_none_or(|t| t > now),
                "a timer is still due"
            );
        }
        // Established ⇔ a negotiated session
        assert_eq!(p.state() == State::Established, p.established().is_some());
        if let Some(s) = p.established() {
            assert_eq!(s.hold_time, self.cfg.hold_time.min(s.remote.hold_time));
            assert!(s.hold_time == 0 || s.hold_time >= 3);
            assert_eq!(
                s.keepalive,
                if s.hold_time == 0 { 0 } else { s.hold_time / 3 }
            );
            assert_eq!(s.decode.four_octet_as, s.encode.four_octet_as);
        }
        let conns: Vec<State> = p.connections().map(|f| f.state()).collect();
        assert!(conns.len() <= 2, "{conns:?}");
        assert!(
            conns
                .iter()
                .filter(|s| matches!(s, State::OpenConfirm | State::Established))
                .count()
                <= 1,
            "{conns:?}"
        );
        assert!(
            !conns.contains(&State::Idle),
            "Idle connections are dropped"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_keep_the_invariants(
        cfg in peer_config(),
        restarting in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..250),
    ) {
        let mut now = t0();
        let mut p = Peer::new(cfg.clone(), restarting).unwrap();
        let mut w = Watch {
            cfg,
            known: vec![],
            closed: BTreeSet::new(),
            last_connect: None,
            hold_until: None,
        };
        for op in ops {
            let live: Vec<ConnId> = p.connections().map(|f| f.conn()).collect();
            let pick = |i: usize| {
                if i < 6 && !live.is_empty() {
                    Some(live[i % live.len()])
                } else {
                    w.known.get(i % w.known.len().max(1)).copied()
                }
            };
            let (acts, admin, polled) = match op {
                Op::Start => (p.handle(now, PeerEvent::ManualStart), true, false),
                Op::Stop(g) => {
                    let stop = if g { Stop::graceful() } else { Stop::shutdown("test") };
                    (p.handle(now, PeerEvent::ManualStop(stop)), false, false)
                }
                Op::AutoStop => (p.handle(now, PeerEvent::AutomaticStop(notif(6, 1))), false, false),
                Op::Incoming => (p.handle(now, PeerEvent::TcpConnectionConfirmed), false, false),
                Op::InitialAdvertisement => {
                    (p.handle(now, PeerEvent::InitialAdvertisementComplete), false, false)
                }
                Op::Tcp(i, t) => {
                    let Some(c) = pick(i) else { continue };
                    let e = [Event::TcpCrAcked, Event::TcpConnectionFails, Event::TcpConnectionValid];
                    (p.handle(now, conn(c, e[t as usize].clone())), false, false)
                }
                Op::Msg(i, m) => {
                    let Some(c) = pick(i) else { continue };
                    (p.handle(now, conn(c, event_for(&m))), false, false)
                }
                Op::Timer(i, t) => {
                    // injected expiries other than ConnectRetry (which connects by definition)
                    let Some(c) = pick(i) else { continue };
                    let e = [
                        Event::HoldTimerExpires,
                        Event::KeepaliveTimerExpires,
                        Event::DelayOpenTimerExpires,
                        Event::IdleHoldTimerExpires,
                    ];
                    (p.handle(now, conn(c, e[t as usize].clone())), false, false)
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    (p.poll(now), false, true)
                }
                Op::Handshake(i, id, gr) => {
                    let Some(c) = pick(i) else { continue };
                    let connecting = p
                        .connections()
                        .any(|f| f.conn() == c && f.state() == State::Connect);
                    if connecting {
                        let acts = p.handle(now, conn(c, Event::TcpCrAcked));
                        w.check(&p, now, &acts, false, false);
                    }
                    let open = Msg::Open { id, asn: PEER_AS, hold: 90, gr };
                    let acts = p.handle(now, conn(c, event_for(&open)));
                    w.check(&p, now, &acts, false, false);
                    (p.handle(now, conn(c, Event::KeepAliveMsg)), false, false)
                }
                Op::PollNext => {
                    if let Some(t) = p.next_deadline() {
                        now = now.max(t);
                    }
                    (p.poll(now), false, true)
                }
            };
            w.check(&p, now, &acts, admin, polled);
        }
    }
}
