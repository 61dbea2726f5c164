//! RFC 4271 §8.2.2 as a table: for each row, the starting state (reached by driving the FSM
//! with events), the event, the expected actions (compared structurally, transition included)
//! and the next state. Timer behaviour is in `session_timers.rs`.

mod session_support;

use bgpd::session::*;
use bgpd::wire::*;
use session_support::*;

const C: ConnId = ConnId(1);

/// An expected action, resolved against the FSM as it was before the event (for our OPEN and
/// the negotiated session).
#[derive(Debug, Clone)]
enum X {
    Connect,
    Drop,
    Open,
    Keepalive,
    Notif(Notification),
    Established,
    Down(DownReason),
    Rib(RibAction),
}

struct Row {
    name: &'static str,
    config: PeerConfig,
    peer: Open,
    from: State,
    event: Event,
    expect: Vec<X>,
    to: State,
    reason: Option<DownReason>,
}

fn row(from: State, event: Event, expect: &[X], to: State, reason: Option<DownReason>) -> Row {
    Row {
        name: "",
        config: config(),
        peer: peer_open(),
        from,
        event,
        expect: expect.to_vec(),
        to,
        reason,
    }
}

impl Row {
    fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }
    fn config(mut self, c: PeerConfig) -> Self {
        self.config = c;
        self
    }
    fn peer(mut self, o: Open) -> Self {
        self.peer = o;
        self
    }
}

fn resolve(x: &X, f: &Fsm) -> Action {
    match x {
        X::Connect => Action::Connect { conn: C },
        X::Drop => Action::Drop { conn: C },
        X::Open => Action::Send {
            conn: C,
            message: Message::Open(f.local_open().clone()),
        },
        X::Keepalive => Action::Send {
            conn: C,
            message: Message::Keepalive,
        },
        X::Notif(n) => Action::Send {
            conn: C,
            message: Message::Notification(n.clone()),
        },
        X::Established => Action::Established(Box::new(f.session().unwrap().clone())),
        X::Down(r) => Action::SessionDown {
            conn: C,
            reason: r.clone(),
        },
        X::Rib(r) => Action::Rib(r.clone()),
    }
}

fn run(rows: Vec<Row>) {
    let now = t0();
    let mut failures = Vec::new();
    for r in rows {
        let mut f = fsm_in(r.from, &r.config, &r.peer, now);
        let kind = r.event.kind();
        let mut expect: Vec<Action> = r.expect.iter().map(|x| resolve(x, &f)).collect();
        if r.to != r.from {
            expect.push(Action::Transition(Transition {
                conn: C,
                direction: Direction::Outgoing,
                from: r.from,
                to: r.to,
                event: kind,
                reason: r.reason.clone(),
            }));
        }
        let got = f.handle(now, r.event);
        if got != expect || f.state() != r.to {
            failures.push(format!(
                "{} + {kind} {}:\n  expected {:?} -> {}\n  got      {:?} -> {}",
                r.from,
                r.name,
                expect,
                r.to,
                got,
                f.state()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn bad_open(e: ErrorKind) -> Notification {
    Notification::new(e.code())
}

use DownReason as R;
use State::*;

#[test]
fn idle() {
    run(vec![
        row(Idle, Event::ManualStart, &[X::Connect], Connect, None),
        row(Idle, Event::AutomaticStart, &[X::Connect], Connect, None),
        row(
            Idle,
            Event::ManualStartWithPassiveTcpEstablishment,
            &[],
            Active,
            None,
        ),
        row(
            Idle,
            Event::AutomaticStartWithPassiveTcpEstablishment,
            &[],
            Active,
            None,
        ),
        row(Idle, Event::ManualStop(Stop::default()), &[], Idle, None),
        row(Idle, Event::TcpConnectionConfirmed, &[], Idle, None),
        row(Idle, open_event(peer_open()), &[], Idle, None),
        row(Idle, Event::KeepAliveMsg, &[], Idle, None),
        row(Idle, update_event(update()), &[], Idle, None),
        row(Idle, Event::NotifMsg(notif(6, 2)), &[], Idle, None),
        row(Idle, Event::HoldTimerExpires, &[], Idle, None),
        row(Idle, Event::ConnectRetryTimerExpires, &[], Idle, None),
        row(Idle, Event::IdleHoldTimerExpires, &[], Idle, None),
    ]);
}

#[test]
fn connect() {
    let fsm_err = |event| R::FsmError { event, sent: None };
    run(vec![
        row(Connect, Event::ManualStart, &[], Connect, None),
        row(Connect, Event::AutomaticStart, &[], Connect, None),
        row(
            Connect,
            Event::ManualStop(Stop::default()),
            &[X::Drop],
            Idle,
            Some(R::ManualStop { graceful: false }),
        ),
        row(
            Connect,
            Event::ConnectRetryTimerExpires,
            &[X::Drop, X::Connect],
            Connect,
            None,
        ),
        row(Connect, Event::TcpConnectionValid, &[], Connect, None),
        row(Connect, Event::TcpCrAcked, &[X::Open], OpenSent, None),
        row(
            Connect,
            Event::TcpConnectionConfirmed,
            &[X::Open],
            OpenSent,
            None,
        ),
        row(
            Connect,
            Event::TcpConnectionFails,
            &[X::Drop],
            Idle,
            Some(R::ConnectionClosed),
        ),
        // without a DelayOpenTimer there is nothing to send
        row(Connect, Event::DelayOpenTimerExpires, &[], Connect, None),
        row(
            Connect,
            open_event(peer_open()),
            &[X::Drop],
            Idle,
            Some(fsm_err(EventKind::BgpOpen)),
        ),
        row(
            Connect,
            Event::BgpHeaderErr(header_error()),
            &[X::Drop],
            Idle,
            Some(R::MessageError(notif(1, 1))),
        ),
        row(
            Connect,
            Event::NotifMsg(notif(6, 2)),
            &[X::Drop],
            Idle,
            Some(R::NotificationReceived(notif(6, 2))),
        ),
        row(
            Connect,
            Event::NotifMsgVerErr(notif(2, 1)),
            &[X::Drop],
            Idle,
            Some(R::NotificationReceived(notif(2, 1))),
        ),
        row(
            Connect,
            Event::KeepAliveMsg,
            &[X::Drop],
            Idle,
            Some(fsm_err(EventKind::KeepAliveMsg)),
        ),
        row(
            Connect,
            update_event(update()),
            &[X::Drop],
            Idle,
            Some(fsm_err(EventKind::UpdateMsg)),
        ),
        row(
            Connect,
            Event::HoldTimerExpires,
            &[X::Drop],
            Idle,
            Some(fsm_err(EventKind::HoldTimerExpires)),
        ),
        row(
            Connect,
            Event::OpenCollisionDump,
            &[X::Drop],
            Idle,
            Some(R::Collision),
        ),
        row(
            Connect,
            Event::AutomaticStop(notif(6, 1)),
            &[X::Drop],
            Idle,
            Some(R::AutomaticStop(notif(6, 1))),
        ),
    ]);
}

#[test]
fn active_passive() {
    let passive = || {
        let mut c = config();
        c.passive = true;
        c
    };
    let fsm_err = |event| R::FsmError { event, sent: None };
    let rows = vec![
        row(Active, Event::ManualStart, &[], Active, None),
        row(
            Active,
            Event::ManualStop(Stop::default()),
            &[],
            Idle,
            Some(R::ManualStop { graceful: false }),
        )
        .named("no connection, nothing to drop"),
        row(Active, Event::ConnectRetryTimerExpires, &[], Active, None)
            .named("passive never connects"),
        row(
            Active,
            Event::TcpConnectionConfirmed,
            &[X::Open],
            OpenSent,
            None,
        ),
        row(Active, Event::TcpCrAcked, &[], Active, None)
            .named("no connection attempt of ours to complete"),
        row(
            Active,
            Event::TcpConnectionFails,
            &[],
            Idle,
            Some(R::ConnectionClosed),
        ),
        row(
            Active,
            Event::NotifMsg(notif(6, 3)),
            &[],
            Idle,
            Some(R::NotificationReceived(notif(6, 3))),
        ),
        row(
            Active,
            Event::KeepAliveMsg,
            &[],
            Idle,
            Some(fsm_err(EventKind::KeepAliveMsg)),
        ),
        row(
            Active,
            open_event(peer_open()),
            &[],
            Idle,
            Some(fsm_err(EventKind::BgpOpen)),
        ),
        row(
            Active,
            Event::BgpOpenMsgErr(version_error()),
            &[],
            Idle,
            Some(R::MessageError(Notification {
                data: vec![0, 4],
                ..notif(2, 1)
            })),
        ),
    ];
    run(rows.into_iter().map(|r| r.config(passive())).collect());
}

#[test]
fn open_sent() {
    let fsm1 = |event| R::FsmError {
        event,
        sent: Some(notif(5, 1)),
    };
    let fsm0 = |event| R::FsmError {
        event,
        sent: Some(notif(5, 0)),
    };
    let err = |n: Notification| (vec![X::Notif(n.clone()), X::Drop], Some(R::MessageError(n)));
    let mut rows = vec![
        row(OpenSent, Event::ManualStart, &[], OpenSent, None),
        row(
            OpenSent,
            Event::ManualStop(Stop::default()),
            &[X::Notif(notif(6, 2)), X::Drop],
            Idle,
            Some(R::ManualStop { graceful: false }),
        ),
        row(
            OpenSent,
            Event::ManualStop(Stop::shutdown("maintenance")),
            &[
                X::Notif(Notification::shutdown(
                    CeaseReason::AdministrativeShutdown,
                    "maintenance",
                )),
                X::Drop,
            ],
            Idle,
            Some(R::ManualStop { graceful: false }),
        )
        .named("with a shutdown communication (RFC 9003)"),
        row(
            OpenSent,
            Event::AutomaticStop(notif(6, 1)),
            &[X::Notif(notif(6, 1)), X::Drop],
            Idle,
            Some(R::AutomaticStop(notif(6, 1))),
        ),
        row(
            OpenSent,
            Event::HoldTimerExpires,
            &[X::Notif(notif(4, 0)), X::Drop],
            Idle,
            Some(R::HoldTimerExpired),
        ),
        row(OpenSent, Event::TcpCrAcked, &[], OpenSent, None)
            .named("a second connection is another FSM"),
        row(OpenSent, Event::TcpConnectionConfirmed, &[], OpenSent, None),
        row(
            OpenSent,
            Event::TcpConnectionFails,
            &[X::Drop],
            Idle,
            Some(R::ConnectionClosed),
        ),
        row(
            OpenSent,
            open_event(peer_open()),
            &[X::Keepalive],
            OpenConfirm,
            None,
        ),
        row(
            OpenSent,
            Event::OpenCollisionDump,
            &[X::Notif(notif(6, 7)), X::Drop],
            Idle,
            Some(R::Collision),
        ),
        row(
            OpenSent,
            Event::NotifMsg(notif(6, 2)),
            &[X::Drop],
            Idle,
            Some(R::NotificationReceived(notif(6, 2))),
        )
        .named("no NOTIFICATION in answer to a NOTIFICATION"),
        row(
            OpenSent,
            Event::NotifMsgVerErr(notif(2, 1)),
            &[X::Drop],
            Idle,
            Some(R::NotificationReceived(notif(2, 1))),
        ),
        row(
            OpenSent,
            Event::KeepAliveMsg,
            &[X::Notif(notif(5, 1)), X::Drop],
            Idle,
            Some(fsm1(EventKind::KeepAliveMsg)),
        )
        .named("RFC 6608 unexpected message in OpenSent"),
        row(
            OpenSent,
            update_event(update()),
            &[X::Notif(notif(5, 1)), X::Drop],
            Idle,
            Some(fsm1(EventKind::UpdateMsg)),
        ),
        row(
            OpenSent,
            Event::UpdateMsgErr(update_error()),
            &[X::Notif(notif(5, 1)), X::Drop],
            Idle,
            Some(fsm1(EventKind::UpdateMsgErr)),
        ),
        row(
            OpenSent,
            Event::RouteRefreshMsg(RouteRefresh::new(V4)),
            &[X::Notif(notif(5, 1)), X::Drop],
            Idle,
            Some(fsm1(EventKind::RouteRefreshMsg)),
        ),
        row(
            OpenSent,
            Event::ConnectRetryTimerExpires,
            &[X::Notif(notif(5, 0)), X::Drop],
            Idle,
            Some(fsm0(EventKind::ConnectRetryTimerExpires)),
        ),
        row(
            OpenSent,
            Event::KeepaliveTimerExpires,
            &[X::Notif(notif(5, 0)), X::Drop],
            Idle,
            Some(fsm0(EventKind::KeepaliveTimerExpires)),
        ),
    ];
    // OPEN checks (RFC 4271 §6.2), each with its OPEN Message Error subcode
    let checks: Vec<(&str, Open, Notification)> = vec![
        (
            "unacceptable hold time 1",
            open_from(PEER_ID, 1, None),
            bad_open(ErrorKind::UnacceptableHoldTime { hold_time: 1 }),
        ),
        (
            "unacceptable hold time 2",
            open_from(PEER_ID, 2, None),
            bad_open(ErrorKind::UnacceptableHoldTime { hold_time: 2 }),
        ),
        (
            "bad peer AS",
            Open::new(65001, 90, PEER_ID, vec![Capability::FourOctetAs(65001)]),
            bad_open(ErrorKind::BadPeerAs { asn: 65001 }),
        ),
        (
            "bad BGP identifier 0.0.0.0",
            open_from(std::net::Ipv4Addr::UNSPECIFIED, 90, None),
            bad_open(ErrorKind::BadBgpIdentifier {
                id: std::net::Ipv4Addr::UNSPECIFIED,
            }),
        ),
        (
            "bad version 3",
            Open {
                version: 3,
                ..peer_open()
            },
            Notification {
                data: vec![0, 4],
                ..notif(2, 1)
            },
        ),
    ];
    for (name, open, n) in checks {
        let (x, reason) = err(n);
        rows.push(row(OpenSent, open_event(open), &x, Idle, reason).named(name));
    }
    let (x, reason) = err(Notification {
        data: vec![0, 4],
        ..notif(2, 1)
    });
    rows.push(
        row(
            OpenSent,
            Event::BgpOpenMsgErr(version_error()),
            &x,
            Idle,
            reason,
        )
        .named("version error from the decoder"),
    );
    let (x, reason) = err(notif(1, 1));
    rows.push(row(
        OpenSent,
        Event::BgpHeaderErr(header_error()),
        &x,
        Idle,
        reason,
    ));
    run(rows);
}

#[test]
fn open_sent_checks_the_peer_as_rule() {
    let mut internal = config();
    internal.peer_as = PeerAs::Internal;
    let mut external = config();
    external.peer_as = PeerAs::External;
    let ours = Open::new(
        LOCAL_AS,
        90,
        PEER_ID,
        vec![Capability::FourOctetAs(LOCAL_AS)],
    );
    let bad_as = |asn| {
        let n = Notification::new(ErrorKind::BadPeerAs { asn }.code());
        (vec![X::Notif(n.clone()), X::Drop], Some(R::MessageError(n)))
    };
    let (x1, r1) = bad_as(PEER_AS);
    let (x2, r2) = bad_as(LOCAL_AS);
    run(vec![
        row(
            OpenSent,
            open_event(ours.clone()),
            &[X::Keepalive],
            OpenConfirm,
            None,
        )
        .config(internal.clone())
        .named("iBGP peer in our AS"),
        row(OpenSent, open_event(peer_open()), &x1, Idle, r1)
            .config(internal)
            .named("iBGP config, external AS"),
        row(
            OpenSent,
            open_event(peer_open()),
            &[X::Keepalive],
            OpenConfirm,
            None,
        )
        .config(external.clone())
        .named("eBGP config, any other AS"),
        row(OpenSent, open_event(ours), &x2, Idle, r2)
            .config(external)
            .named("eBGP config, our own AS"),
    ]);
}

#[test]
fn open_confirm() {
    let fsm2 = |event| R::FsmError {
        event,
        sent: Some(notif(5, 2)),
    };
    run(vec![
        row(OpenConfirm, Event::ManualStart, &[], OpenConfirm, None),
        row(
            OpenConfirm,
            Event::ManualStop(Stop::default()),
            &[X::Notif(notif(6, 2)), X::Drop],
            Idle,
            Some(R::ManualStop { graceful: false }),
        ),
        row(
            OpenConfirm,
            Event::AutomaticStop(notif(6, 8)),
            &[X::Notif(notif(6, 8)), X::Drop],
            Idle,
            Some(R::AutomaticStop(notif(6, 8))),
        ),
        row(
            OpenConfirm,
            Event::HoldTimerExpires,
            &[X::Notif(notif(4, 0)), X::Drop],
            Idle,
            Some(R::HoldTimerExpired),
        ),
        row(
            OpenConfirm,
            Event::KeepaliveTimerExpires,
            &[X::Keepalive],
            OpenConfirm,
            None,
        ),
        row(
            OpenConfirm,
            Event::KeepAliveMsg,
            &[X::Established],
            Established,
            None,
        ),
        row(
            OpenConfirm,
            Event::TcpConnectionConfirmed,
            &[],
            OpenConfirm,
            None,
        ),
        row(
            OpenConfirm,
            Event::TcpConnectionFails,
            &[X::Drop],
            Idle,
            Some(R::ConnectionClosed),
        ),
        row(
            OpenConfirm,
            Event::NotifMsg(notif(2, 2)),
            &[X::Drop],
            Idle,
            Some(R::NotificationReceived(notif(2, 2))),
        ),
        row(
            OpenConfirm,
            Event::NotifMsgVerErr(notif(2, 1)),
            &[X::Drop],
            Idle,
            Some(R::NotificationReceived(notif(2, 1))),
        ),
        row(
            OpenConfirm,
            Event::OpenCollisionDump,
            &[X::Notif(notif(6, 7)), X::Drop],
            Idle,
            Some(R::Collision),
        ),
        row(
            OpenConfirm,
            open_event(peer_open()),
            &[X::Notif(notif(5, 2)), X::Drop],
            Idle,
            Some(fsm2(EventKind::BgpOpen)),
        )
        .named("a second OPEN on the same connection"),
        row(
            OpenConfirm,
            update_event(update()),
            &[X::Notif(notif(5, 2)), X::Drop],
            Idle,
            Some(fsm2(EventKind::UpdateMsg)),
        )
        .named("RFC 6608 unexpected message in OpenConfirm"),
        row(
            OpenConfirm,
            Event::BgpHeaderErr(header_error()),
            &[X::Notif(notif(1, 1)), X::Drop],
            Idle,
            Some(R::MessageError(notif(1, 1))),
        ),
        row(
            OpenConfirm,
            Event::DelayOpenTimerExpires,
            &[X::Notif(notif(5, 0)), X::Drop],
            Idle,
            Some(R::FsmError {
                event: EventKind::DelayOpenTimerExpires,
                sent: Some(notif(5, 0)),
            }),
        ),
    ]);
}

fn hard_reset_of(inner: Notification) -> Notification {
    let mut data = vec![];
    let (c, s) = inner.code.to_pair();
    data.extend_from_slice(&[c, s]);
    if let Some(t) = &inner.shutdown_communication {
        data.push(t.len() as u8);
        data.extend_from_slice(t.as_bytes());
    }
    Notification {
        data,
        ..notif(6, 9)
    }
}

#[test]
fn established() {
    let fsm3 = |event| R::FsmError {
        event,
        sent: Some(notif(5, 3)),
    };
    let no_n = open_from(PEER_ID, 90, Some(gr_cap(120, false, &[(V4, true)])));
    let no_gr = open_from(PEER_ID, 90, None);
    let down = |n: Option<Notification>, r: R| {
        let mut x: Vec<X> = n.into_iter().map(X::Notif).collect();
        x.extend([X::Drop, X::Down(r.clone())]);
        (x, Some(r))
    };
    let stop = R::ManualStop { graceful: false };
    let graceful = R::ManualStop { graceful: true };
    let mut rows = vec![
        row(Established, Event::ManualStart, &[], Established, None),
        row(Established, Event::TcpCrAcked, &[], Established, None),
        row(Established, Event::KeepAliveMsg, &[], Established, None),
        row(
            Established,
            Event::KeepaliveTimerExpires,
            &[X::Keepalive],
            Established,
            None,
        ),
        row(
            Established,
            update_event(update()),
            &[X::Rib(RibAction::Update(Box::new(update())))],
            Established,
            None,
        ),
        row(
            Established,
            update_event(Update::end_of_rib(V6)),
            &[X::Rib(RibAction::EndOfRib(V6))],
            Established,
            None,
        ),
        row(
            Established,
            update_event(treat_as_withdraw_update()),
            &[X::Rib(RibAction::Withdraw(Box::new(
                treat_as_withdraw_update().treat_as_withdraw(),
            )))],
            Established,
            None,
        )
        .named("RFC 7606 treat-as-withdraw keeps the session"),
        row(
            Established,
            update_event(attribute_discard_update()),
            &[X::Rib(RibAction::Update(Box::new(
                attribute_discard_update(),
            )))],
            Established,
            None,
        )
        .named("RFC 7606 attribute discard keeps the session"),
        row(
            Established,
            Event::RouteRefreshMsg(RouteRefresh::new(V4)),
            &[X::Rib(RibAction::ReAdvertise(V4))],
            Established,
            None,
        ),
        row(
            Established,
            Event::RouteRefreshMsg(RouteRefresh {
                subtype: RouteRefreshSubtype::BeginningOfRouteRefresh,
                ..RouteRefresh::new(V4)
            }),
            &[],
            Established,
            None,
        )
        .named("BoRR without enhanced route refresh is ignored"),
        row(
            Established,
            Event::RouteRefreshMsg(RouteRefresh::new(AfiSafi::new(1, 128))),
            &[],
            Established,
            None,
        )
        .named("a family not negotiated is ignored (RFC 2918 §4)"),
    ];
    let mut downs: Vec<(&str, Open, Event, Option<Notification>, R)> = vec![
        (
            "stop, N bit exchanged: Hard Reset (RFC 8538 §5.1)",
            peer_open(),
            Event::ManualStop(Stop::default()),
            Some(hard_reset_of(notif(6, 2))),
            stop.clone(),
        ),
        (
            "stop without N: Cease",
            no_n.clone(),
            Event::ManualStop(Stop::shutdown("decommissioned")),
            Some(Notification::shutdown(
                CeaseReason::AdministrativeShutdown,
                "decommissioned",
            )),
            stop.clone(),
        ),
        (
            "graceful stop with N: soft Cease/Administrative Reset (RFC 8538 §4)",
            peer_open(),
            Event::ManualStop(Stop::graceful()),
            Some(notif(6, 4)),
            graceful.clone(),
        ),
        (
            "graceful stop without N: no NOTIFICATION (RFC 4724)",
            no_n.clone(),
            Event::ManualStop(Stop::graceful()),
            None,
            graceful.clone(),
        ),
        (
            "graceful stop, peer without GR: Cease",
            no_gr.clone(),
            Event::ManualStop(Stop::graceful()),
            Some(notif(6, 2)),
            graceful,
        ),
        (
            "max prefix with N: Hard Reset",
            peer_open(),
            Event::AutomaticStop(notif(6, 1)),
            Some(hard_reset_of(notif(6, 1))),
            R::AutomaticStop(hard_reset_of(notif(6, 1))),
        ),
        (
            "max prefix without N",
            no_n,
            Event::AutomaticStop(notif(6, 1)),
            Some(notif(6, 1)),
            R::AutomaticStop(notif(6, 1)),
        ),
        (
            "hold timer",
            peer_open(),
            Event::HoldTimerExpires,
            Some(notif(4, 0)),
            R::HoldTimerExpired,
        ),
        (
            "TCP closed",
            peer_open(),
            Event::TcpConnectionFails,
            None,
            R::ConnectionClosed,
        ),
        (
            "NOTIFICATION received",
            peer_open(),
            Event::NotifMsg(notif(6, 9)),
            None,
            R::NotificationReceived(notif(6, 9)),
        ),
        (
            "version NOTIFICATION received",
            peer_open(),
            Event::NotifMsgVerErr(notif(2, 1)),
            None,
            R::NotificationReceived(notif(2, 1)),
        ),
        (
            "collision in Established (CollisionDetectEstablishedState)",
            peer_open(),
            Event::OpenCollisionDump,
            Some(notif(6, 7)),
            R::Collision,
        ),
        (
            "UPDATE error",
            peer_open(),
            Event::UpdateMsgErr(update_error()),
            Some(notif(3, 1)),
            R::MessageError(notif(3, 1)),
        ),
        (
            "header error",
            peer_open(),
            Event::BgpHeaderErr(header_error()),
            Some(notif(1, 1)),
            R::MessageError(notif(1, 1)),
        ),
        (
            "OPEN on an Established connection (RFC 6608)",
            peer_open(),
            open_event(peer_open()),
            Some(notif(5, 3)),
            fsm3(EventKind::BgpOpen),
        ),
        (
            "bad OPEN on an Established connection",
            peer_open(),
            Event::BgpOpenMsgErr(version_error()),
            Some(notif(5, 3)),
            fsm3(EventKind::BgpOpenMsgErr),
        ),
        (
            "ConnectRetryTimer in Established",
            peer_open(),
            Event::ConnectRetryTimerExpires,
            Some(notif(5, 0)),
            R::FsmError {
                event: EventKind::ConnectRetryTimerExpires,
                sent: Some(notif(5, 0)),
            },
        ),
    ];
    let rr_len = {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&[0, 24, 5, 0, 1, 1, 1, 0]); // BoRR with a trailing octet
        Message::decode(&m, &DecodeCx::default()).unwrap_err()
    };
    let rr_n = Notification::from(&rr_len);
    downs.push((
        "malformed ROUTE-REFRESH (RFC 7313 §5)",
        peer_open(),
        Event::RouteRefreshMsgErr(rr_len),
        Some(rr_n.clone()),
        R::MessageError(rr_n),
    ));
    for (name, peer, event, n, r) in downs {
        let (x, reason) = down(n, r);
        rows.push(
            row(Established, event, &x, Idle, reason)
                .peer(peer)
                .named(name),
        );
    }
    run(rows);
}
