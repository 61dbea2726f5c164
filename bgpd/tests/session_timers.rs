//! The timers of RFC 4271 §8 and §10 on one connection: keepalive scheduling from the
//! negotiated hold time, every received message restarting the hold timer, hold time 0, hold
//! expiry in OpenSent/OpenConfirm/Established, ConnectRetry, DelayOpen, passive, and the
//! ConnectRetryCounter. Time moves by calling `poll` with later instants.

mod session_support;

use std::time::Instant;

use State::*;
use bgpd::session::*;
use bgpd::wire::*;
use session_support::*;

const C: ConnId = ConnId(1);

fn established_at(now: Instant, cfg: &PeerConfig, peer: &Open) -> Fsm {
    fsm_in(Established, cfg, peer, now)
}

#[test]
fn established_carries_the_negotiation() {
    let now = t0();
    let f = established_at(now, &config(), &open_from(PEER_ID, 30, None));
    let s = f.session().unwrap();
    assert_eq!((s.hold_time, s.keepalive), (30, 10));
    assert_eq!(
        (s.peer_as, s.peer_id, s.internal),
        (PEER_AS, PEER_ID, false)
    );
    assert_eq!(s.families, vec![V4, V6]);
    assert!(s.decode.four_octet_as && s.decode.ebgp && s.encode.four_octet_as);
    assert!(s.peer_route_refresh && s.local_route_refresh);
    assert!(s.peer_gr.is_none() && s.local_gr && !s.gr_notification);
    let f = established_at(now, &config(), &peer_open());
    let s = f.session().unwrap();
    assert_eq!(s.hold_time, 90);
    assert!(s.gr_notification);
    assert_eq!(
        s.peer_gr,
        Some(gr_cap(120, true, &[(V4, true), (V6, true)]))
    );
}

#[test]
fn keepalives_and_hold_timer_follow_the_negotiated_hold_time() {
    let now = t0();
    // ours 90, theirs 30: hold 30, keepalive every 10 s
    let mut f = established_at(now, &config(), &open_from(PEER_ID, 30, None));
    assert_eq!(f.timers().keepalive, Some(now + secs(10)));
    assert_eq!(f.timers().hold, Some(now + secs(30)));
    assert_eq!(f.next_deadline(), Some(now + secs(10)));
    assert!(f.poll(now + secs(9)).is_empty());
    for k in 1..=2 {
        let t = now + secs(10 * k);
        assert_eq!(sent(&f.poll(t)), vec![Message::Keepalive], "keepalive {k}");
        assert_eq!(f.timers().keepalive, Some(t + secs(10)));
    }
    // every received message restarts the hold timer
    f.handle(now + secs(25), Event::KeepAliveMsg);
    assert_eq!(f.timers().hold, Some(now + secs(55)));
    f.handle(now + secs(40), update_event(update()));
    assert_eq!(f.timers().hold, Some(now + secs(70)));
    f.handle(
        now + secs(45),
        Event::RouteRefreshMsg(RouteRefresh::new(V4)),
    );
    assert_eq!(f.timers().hold, Some(now + secs(75)));
    // silence: keepalives go out at 50, 60, 70; the hold timer fires at 75
    let mut t = now + secs(50);
    while t < now + secs(75) {
        assert_eq!(sent(&f.poll(t)), vec![Message::Keepalive]);
        t += secs(10);
    }
    let acts = f.poll(now + secs(75));
    assert_eq!(
        effects(&acts),
        vec![
            Action::Send {
                conn: C,
                message: Message::Notification(notif(4, 0))
            },
            Action::Drop { conn: C },
            Action::SessionDown {
                conn: C,
                reason: DownReason::HoldTimerExpired
            },
        ]
    );
    let Some(Action::Transition(tr)) = acts.last() else {
        panic!("{acts:?}")
    };
    assert_eq!(
        tr.to_string(),
        "Established -> Idle: hold timer expired (RFC 4271 §6.5)"
    );
    assert_eq!(tr.event, EventKind::HoldTimerExpires);
    assert_eq!(f.next_deadline(), None);
}

#[test]
fn hold_time_zero_means_no_keepalives_and_no_hold_timer() {
    let now = t0();
    for (ours, theirs) in [(0, 90), (90, 0), (0, 0)] {
        let mut cfg = config();
        cfg.hold_time = ours;
        let mut f = established_at(now, &cfg, &open_from(PEER_ID, theirs, None));
        let s = f.session().unwrap();
        assert_eq!((s.hold_time, s.keepalive), (0, 0), "{ours}/{theirs}");
        assert_eq!(f.next_deadline(), None);
        assert!(f.poll(now + secs(100_000)).is_empty());
        f.handle(now + secs(5), Event::KeepAliveMsg);
        assert_eq!(f.next_deadline(), None);
        assert_eq!(f.state(), Established);
    }
}

#[test]
fn hold_timer_expires_in_open_sent_and_open_confirm() {
    let now = t0();
    // OpenSent: the large value, 4 minutes
    let mut f = fsm_in(OpenSent, &config(), &peer_open(), now);
    assert_eq!(f.timers().hold, Some(now + secs(240)));
    assert!(f.poll(now + secs(239)).is_empty());
    let acts = f.poll(now + secs(240));
    assert_eq!(sent(&acts), vec![Message::Notification(notif(4, 0))]);
    assert_eq!(transitions(&acts), ["OpenSent -> Idle"]);
    // OpenConfirm: the negotiated value; keepalives keep going out meanwhile
    let mut f = fsm_in(OpenConfirm, &config(), &open_from(PEER_ID, 9, None), now);
    assert_eq!(sent(&f.poll(now + secs(3))), vec![Message::Keepalive]);
    assert_eq!(sent(&f.poll(now + secs(6))), vec![Message::Keepalive]);
    let acts = f.poll(now + secs(9));
    assert_eq!(sent(&acts), vec![Message::Notification(notif(4, 0))]);
    assert_eq!(transitions(&acts), ["OpenConfirm -> Idle"]);
}

#[test]
fn connect_retry_timer_retries_the_connection() {
    let now = t0();
    let mut f = fsm_in(Connect, &config(), &peer_open(), now);
    assert_eq!(f.timers().connect_retry, Some(now + secs(5)));
    assert!(f.poll(now + secs(4)).is_empty());
    let acts = f.poll(now + secs(5));
    assert_eq!(
        acts,
        vec![Action::Drop { conn: C }, Action::Connect { conn: C }]
    );
    assert_eq!(f.timers().connect_retry, Some(now + secs(10)));
    // the connection completes: the timer stops, the 4 minute hold timer runs
    f.handle(now + secs(6), Event::TcpCrAcked);
    assert_eq!(f.timers().connect_retry, None);
    assert_eq!(f.next_deadline(), Some(now + secs(246)));
}

#[test]
fn passive_fsm_never_connects() {
    let now = t0();
    let mut cfg = config();
    cfg.passive = true;
    // even ManualStart (event 1) listens only when the peering is passive
    let mut f = Fsm::new(C, Direction::Outgoing, &cfg, cfg.local_open(false));
    let acts = f.handle(now, Event::ManualStart);
    assert_eq!(transitions(&acts), ["Idle -> Active"]);
    assert!(effects(&acts).is_empty());
    assert_eq!(f.next_deadline(), None);
    assert!(f.poll(now + secs(1_000_000)).is_empty());
    assert!(f.handle(now, Event::ConnectRetryTimerExpires).is_empty());
    assert_eq!(f.state(), Active);
}

#[test]
fn delay_open() {
    let now = t0();
    let mut cfg = config();
    cfg.delay_open = Some(secs(3));
    // the peer's OPEN arrives first: OPEN and KEEPALIVE go out together (event 20)
    let mut f = fsm_in(Connect, &cfg, &peer_open(), now);
    assert!(f.handle(now, Event::TcpCrAcked).is_empty());
    assert_eq!(f.state(), Connect);
    assert_eq!(f.timers().delay_open, Some(now + secs(3)));
    assert_eq!(f.timers().connect_retry, None);
    // a repeated Tcp_CR_Acked neither restarts the DelayOpenTimer nor sends anything
    assert!(f.handle(now + secs(1), Event::TcpCrAcked).is_empty());
    assert_eq!(f.timers().delay_open, Some(now + secs(3)));
    let acts = f.handle(now + secs(1), open_event(peer_open()));
    assert_eq!(
        sent(&acts),
        vec![Message::Open(cfg.local_open(false)), Message::Keepalive]
    );
    assert_eq!(f.state(), OpenConfirm);
    assert_eq!(f.timers().delay_open, None);
    // the timer expires first: our OPEN goes out
    let mut f = fsm_in(Connect, &cfg, &peer_open(), now);
    f.handle(now, Event::TcpCrAcked);
    let acts = f.poll(now + secs(3));
    assert_eq!(sent(&acts), vec![Message::Open(cfg.local_open(false))]);
    assert_eq!(f.state(), OpenSent);
    // the connection fails while delaying: Active, ConnectRetryTimer, then Connect again
    let mut f = fsm_in(Connect, &cfg, &peer_open(), now);
    f.handle(now, Event::TcpCrAcked);
    let acts = f.handle(now + secs(1), Event::TcpConnectionFails);
    assert_eq!(effects(&acts), vec![Action::Drop { conn: C }]);
    assert_eq!(f.state(), Active);
    assert_eq!(f.timers().connect_retry, Some(now + secs(6)));
    let acts = f.poll(now + secs(6));
    assert_eq!(effects(&acts), vec![Action::Connect { conn: C }]);
    assert_eq!(f.state(), Connect);
    // a bad OPEN while delaying is answered (SendNOTIFICATIONwithoutOPEN)
    let mut f = fsm_in(Connect, &cfg, &peer_open(), now);
    f.handle(now, Event::TcpCrAcked);
    let acts = f.handle(now, open_event(open_from(PEER_ID, 2, None)));
    assert_eq!(sent(&acts), vec![Message::Notification(notif(2, 6))]);
    assert_eq!(f.state(), Idle);
}

#[test]
fn connect_retry_counter_counts_failures_and_manual_stop_resets_it() {
    let now = t0();
    let mut f = fsm_in(OpenSent, &config(), &peer_open(), now);
    f.handle(now, Event::HoldTimerExpires);
    assert_eq!(f.connect_retry_counter(), 1);
    f.handle(now, Event::ManualStart); // the counter is zeroed by a start, per RFC
    assert_eq!(f.connect_retry_counter(), 0);
    f.handle(now, Event::TcpCrAcked);
    f.handle(now, Event::NotifMsg(notif(6, 2)));
    assert_eq!(f.connect_retry_counter(), 1);
    let mut f = fsm_in(Established, &config(), &peer_open(), now);
    f.handle(now, Event::ManualStop(Stop::default()));
    assert_eq!(f.connect_retry_counter(), 0);
}
