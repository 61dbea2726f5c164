//! The peer around the per-connection FSMs: connection collisions (RFC 4271 §6.8, both
//! identifier orders, in OpenSent, OpenConfirm and against Established), passive peers,
//! damping (back-off growth and reset, refusal while damped), End-of-RIB, route refresh.

mod session_support;

use std::time::Instant;

use bgpd::session::*;
use bgpd::wire::*;
use session_support::*;

fn states(p: &Peer) -> Vec<(ConnId, Direction, State)> {
    p.connections()
        .map(|f| (f.conn(), f.direction(), f.state()))
        .collect()
}

fn peer(cfg: PeerConfig) -> Peer {
    Peer::new(cfg, false).unwrap()
}

fn cease(sub: u8, c: ConnId) -> Action {
    Action::Send {
        conn: c,
        message: Message::Notification(notif(6, sub)),
    }
}

#[test]
fn outgoing_session_comes_up() {
    let now = t0();
    let mut p = peer(config());
    assert_eq!(p.state(), State::Idle);
    let acts = p.handle(now, PeerEvent::ManualStart);
    assert_eq!(effects(&acts), vec![Action::Connect { conn: ConnId(1) }]);
    assert_eq!(transitions(&acts), ["Idle -> Connect"]);
    let c = ConnId(1);
    let acts = p.handle(now, conn(c, Event::TcpCrAcked));
    assert_eq!(sent(&acts), vec![Message::Open(config().local_open(false))]);
    let acts = p.handle(now, conn(c, open_event(peer_open())));
    assert_eq!(sent(&acts), vec![Message::Keepalive]);
    assert_eq!(p.state(), State::OpenConfirm);
    assert!(p.established().is_none());
    let acts = p.handle(now, conn(c, Event::KeepAliveMsg));
    assert_eq!(p.state(), State::Established);
    let s = p.established().unwrap();
    assert_eq!(
        effects(&acts),
        vec![Action::Established(Box::new(s.clone()))]
    );
    assert_eq!((s.conn, s.hold_time), (c, 90));
    // a late event for a connection that never existed changes nothing
    assert!(
        p.handle(now, conn(ConnId(99), Event::TcpConnectionFails))
            .is_empty()
    );
}

#[test]
fn passive_peer_never_connects_and_accepts() {
    let now = t0();
    let mut cfg = config();
    cfg.passive = true;
    let mut p = peer(cfg.clone());
    assert!(p.handle(now, PeerEvent::ManualStart).is_empty());
    assert_eq!(p.state(), State::Active);
    assert_eq!(p.next_deadline(), None);
    assert!(p.poll(now + secs(3600)).is_empty());
    let acts = p.handle(now, PeerEvent::TcpConnectionConfirmed);
    let c = new_conn(&acts);
    assert_eq!(
        effects(&acts),
        vec![
            Action::Accept { conn: c },
            Action::Send {
                conn: c,
                message: Message::Open(cfg.local_open(false))
            }
        ]
    );
    // the connection dies; after the idle hold the peer listens again, still without connecting
    p.handle(now, conn(c, Event::TcpConnectionFails));
    assert_eq!(p.idle_hold(), Some(now + secs(1)));
    let acts = p.poll(now + secs(1));
    assert!(acts.is_empty(), "{acts:?}");
    assert_eq!(p.state(), State::Active);
}

#[test]
fn incoming_connections_are_refused_when_stopped_or_established() {
    let now = t0();
    let mut p = peer(config());
    assert_eq!(
        p.handle(now, PeerEvent::TcpConnectionConfirmed),
        vec![Action::Refuse {
            reason: RefuseReason::NotStarted
        }]
    );
    // Established with a peer without graceful restart: the new connection is refused (§6.8)
    establish(&mut p, now, open_from(PEER_ID, 90, None));
    assert_eq!(
        p.handle(now, PeerEvent::TcpConnectionConfirmed),
        vec![Action::Refuse {
            reason: RefuseReason::Established
        }]
    );
}

/// Outgoing connection #1 and incoming #2, both in OpenSent.
fn both_open_sent(p: &mut Peer, now: Instant) -> (ConnId, ConnId) {
    let out = outgoing_open_sent(p, now);
    let inc = new_conn(&p.handle(now, PeerEvent::TcpConnectionConfirmed));
    assert_eq!(
        states(p),
        [
            (out, Direction::Outgoing, State::OpenSent),
            (inc, Direction::Incoming, State::OpenSent)
        ]
    );
    (out, inc)
}

#[test]
fn collision_in_open_sent_keeps_the_connection_of_the_higher_identifier() {
    let now = t0();
    // (OPEN arrives on, peer identifier, connection that must survive)
    for (on_incoming, peer_id, keep_outgoing) in [
        (true, PEER_ID, true), // ours is higher: our outgoing connection survives
        (true, PEER_ID_HIGH, false),
        (false, PEER_ID, true),
        (false, PEER_ID_HIGH, false),
    ] {
        let case = format!("OPEN on incoming={on_incoming} from {peer_id}");
        let mut p = peer(config());
        let (out, inc) = both_open_sent(&mut p, now);
        let (on, other) = if on_incoming { (inc, out) } else { (out, inc) };
        let (keep, lose) = if keep_outgoing {
            (out, inc)
        } else {
            (inc, out)
        };
        let acts = p.handle(now, conn(on, open_event(open_from(peer_id, 90, None))));
        // the loser gets Cease/Connection Collision Resolution and goes away
        let dump = [cease(7, lose), Action::Drop { conn: lose }];
        assert!(effects(&acts).starts_with(&dump), "{case}: {acts:?}");
        let expect_keep_state = if keep == on {
            State::OpenConfirm
        } else {
            State::OpenSent
        };
        assert_eq!(
            states(&p)
                .into_iter()
                .map(|(c, _, s)| (c, s))
                .collect::<Vec<_>>(),
            [(keep, expect_keep_state)],
            "{case}"
        );
        // the survivor finishes normally
        if keep == other {
            p.handle(now, conn(keep, open_event(open_from(peer_id, 90, None))));
        }
        p.handle(now, conn(keep, Event::KeepAliveMsg));
        assert_eq!(p.established().map(|s| s.conn), Some(keep), "{case}");
        // one connection failing did not count as a peer failure
        assert_eq!(p.damping().failures(), 0, "{case}");
    }
}

#[test]
fn collision_in_open_confirm_keeps_the_connection_of_the_higher_identifier() {
    let now = t0();
    for (peer_id, keep_outgoing) in [(PEER_ID, true), (PEER_ID_HIGH, false)] {
        let open = open_from(peer_id, 90, None);
        // A: our outgoing connection is in OpenConfirm when the incoming one gets its OPEN
        let mut p = peer(config());
        let out = outgoing_open_sent(&mut p, now);
        p.handle(now, conn(out, open_event(open.clone())));
        assert_eq!(p.state(), State::OpenConfirm);
        let inc = new_conn(&p.handle(now, PeerEvent::TcpConnectionConfirmed));
        let acts = p.handle(now, conn(inc, open_event(open.clone())));
        let (keep, lose, dir) = if keep_outgoing {
            (out, inc, Direction::Outgoing)
        } else {
            (inc, out, Direction::Incoming)
        };
        assert_eq!(
            effects(&acts)[..2],
            [cease(7, lose), Action::Drop { conn: lose }],
            "A {peer_id}"
        );
        assert_eq!(states(&p), [(keep, dir, State::OpenConfirm)], "A {peer_id}");
        // B: the incoming connection is in OpenConfirm when our outgoing one gets its OPEN
        let mut p = peer(config());
        let out = new_conn(&p.handle(now, PeerEvent::ManualStart));
        let inc = new_conn(&p.handle(now, PeerEvent::TcpConnectionConfirmed));
        p.handle(now, conn(inc, open_event(open.clone())));
        assert_eq!(
            states(&p),
            [
                (out, Direction::Outgoing, State::Connect),
                (inc, Direction::Incoming, State::OpenConfirm)
            ],
            "no collision with a connection in Connect"
        );
        p.handle(now, conn(out, Event::TcpCrAcked));
        let acts = p.handle(now, conn(out, open_event(open)));
        let (keep, lose, dir) = if keep_outgoing {
            (out, inc, Direction::Outgoing)
        } else {
            (inc, out, Direction::Incoming)
        };
        assert_eq!(
            effects(&acts)[..2],
            [cease(7, lose), Action::Drop { conn: lose }],
            "B {peer_id}"
        );
        assert_eq!(states(&p), [(keep, dir, State::OpenConfirm)], "B {peer_id}");
        p.handle(now, conn(keep, Event::KeepAliveMsg));
        assert_eq!(p.established().map(|s| s.conn), Some(keep));
    }
}

#[test]
fn equal_identifiers_fall_back_to_the_as_number() {
    // RFC 6286 §2.3: eBGP peers may share an identifier; the higher AS's connection survives.
    let same_id = open_from(LOCAL_ID, 90, None); // AS 65000 < our 65010
    assert_eq!(
        bgpd::session::peer::collision_winner(LOCAL_ID, LOCAL_AS, &same_id),
        Direction::Outgoing
    );
    assert_eq!(
        bgpd::session::peer::collision_winner(LOCAL_ID, 64999, &same_id),
        Direction::Incoming
    );
}

#[test]
fn collision_with_established_when_configured() {
    let now = t0();
    for (peer_id, established_survives) in [(PEER_ID, true), (PEER_ID_HIGH, false)] {
        let mut cfg = config();
        cfg.collision_detect_established = true;
        cfg.graceful_restart = None;
        let mut p = peer(cfg);
        let est = establish(&mut p, now, open_from(peer_id, 90, None));
        let inc = new_conn(&p.handle(now, PeerEvent::TcpConnectionConfirmed));
        let acts = p.handle(now, conn(inc, open_event(open_from(peer_id, 90, None))));
        if established_survives {
            assert_eq!(
                effects(&acts)[..2],
                [cease(7, inc), Action::Drop { conn: inc }]
            );
            assert_eq!(p.established().map(|s| s.conn), Some(est));
        } else {
            assert_eq!(
                effects(&acts)[..3],
                [
                    cease(7, est),
                    Action::Drop { conn: est },
                    Action::SessionDown {
                        conn: est,
                        reason: DownReason::Collision
                    }
                ]
            );
            assert_eq!(rib(&acts), [RibAction::FlushAll]);
            assert_eq!(p.state(), State::OpenConfirm);
        }
    }
}

#[test]
fn established_session_abandons_the_other_connection_attempt() {
    let now = t0();
    let mut p = peer(config());
    let out = new_conn(&p.handle(now, PeerEvent::ManualStart)); // Connect, never completes
    let inc = new_conn(&p.handle(now, PeerEvent::TcpConnectionConfirmed));
    p.handle(now, conn(inc, open_event(peer_open())));
    let acts = p.handle(now, conn(inc, Event::KeepAliveMsg));
    assert!(acts.contains(&Action::Drop { conn: out }), "{acts:?}");
    assert!(acts.iter().any(|a| matches!(a,
        Action::Transition(t) if t.conn == out && t.reason == Some(DownReason::Superseded))));
    assert_eq!(states(&p), [(inc, Direction::Incoming, State::Established)]);
    // nothing reconnects while the session is up
    assert_eq!(p.next_deadline(), Some(now + secs(30)));
    assert!(
        p.poll(now + secs(30))
            .iter()
            .all(|a| !matches!(a, Action::Connect { .. }))
    );
}

#[test]
fn a_second_incoming_connection_replaces_the_first() {
    let now = t0();
    let mut cfg = config();
    cfg.passive = true;
    let mut p = peer(cfg);
    p.handle(now, PeerEvent::ManualStart);
    let first = new_conn(&p.handle(now, PeerEvent::TcpConnectionConfirmed));
    let acts = p.handle(now, PeerEvent::TcpConnectionConfirmed);
    let second = new_conn(&acts);
    assert_eq!(
        effects(&acts)[..2],
        [cease(7, first), Action::Drop { conn: first }]
    );
    assert_eq!(states(&p), [(second, Direction::Incoming, State::OpenSent)]);
}

/// Let the peer fail `n` times by closing each connection right after it opened (TCP up,
/// OPEN sent, then TcpConnectionFails). Returns the instants of the Connect actions.
fn flap(p: &mut Peer, mut now: Instant, n: usize) -> (Vec<Instant>, Instant) {
    let mut connects = Vec::new();
    let mut c = new_conn(&p.handle(now, PeerEvent::ManualStart));
    connects.push(now);
    for i in 0..n {
        p.handle(now, conn(c, Event::TcpCrAcked));
        let acts = p.handle(now, conn(c, Event::TcpConnectionFails));
        assert!(
            !acts.iter().any(|a| matches!(a, Action::Connect { .. })),
            "no reconnect without waiting"
        );
        let deadline = p.next_deadline().unwrap();
        assert_eq!(Some(deadline), p.idle_hold(), "flap {i}");
        // nothing happens a millisecond early
        let early = p.poll(deadline - std::time::Duration::from_millis(1));
        assert!(early.is_empty(), "{early:?}");
        now = deadline;
        let acts = p.poll(now);
        c = new_conn(&acts);
        connects.push(now);
    }
    (connects, now)
}

#[test]
fn damping_backs_off_exponentially_for_a_peer_that_closes_at_once() {
    let now = t0();
    let mut p = peer(config());
    let (connects, _) = flap(&mut p, now, 100);
    let gaps: Vec<u64> = connects
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs())
        .collect();
    assert_eq!(gaps.len(), 100);
    assert_eq!(&gaps[..9], &[1, 2, 4, 8, 16, 32, 64, 120, 120]);
    assert!(gaps.windows(2).all(|w| w[0] <= w[1]), "never shrinks");
    assert!(gaps[9..].iter().all(|&g| g == 120), "bounded by max");
    assert_eq!(p.damping().failures(), 100);
    // 100 failures took hours, not a busy loop
    assert!(connects[100] - connects[0] > secs(100 * 100));
}

#[test]
fn damping_resets_after_a_stable_session_and_refuses_while_damped() {
    let now = t0();
    let mut p = peer(config());
    let (_, now) = flap(&mut p, now, 3); // failures 3, next idle hold 8 s
    // while damped (two or more failures), incoming connections are refused
    let c = p.connections().next().unwrap().conn();
    p.handle(now, conn(c, Event::TcpCrAcked));
    p.handle(now, conn(c, Event::TcpConnectionFails));
    let until = now + secs(8);
    assert_eq!(p.idle_hold(), Some(until));
    assert_eq!(
        p.handle(now, PeerEvent::TcpConnectionConfirmed),
        vec![Action::Refuse {
            reason: RefuseReason::Damped { until }
        }]
    );
    // a session that stays up for the stable period (60 s) resets the count
    let now = until;
    let c = new_conn(&p.poll(now));
    p.handle(now, conn(c, Event::TcpCrAcked));
    p.handle(now, conn(c, open_event(peer_open())));
    p.handle(now, conn(c, Event::KeepAliveMsg));
    for k in 1..=2 {
        p.handle(now + secs(30 * k), conn(c, Event::KeepAliveMsg));
    }
    let later = now + secs(61);
    p.handle(later, conn(c, Event::TcpConnectionFails));
    assert_eq!(p.damping().failures(), 1);
    assert_eq!(p.idle_hold(), Some(later + secs(1)));
    // after the first failure the peer may come straight back (it may be restarting)
    let acts = p.handle(later, PeerEvent::TcpConnectionConfirmed);
    assert!(matches!(acts[0], Action::Accept { .. }), "{acts:?}");
}

#[test]
fn automatic_stop_backs_off_then_reconnects() {
    let now = t0();
    let mut p = peer(config());
    let c = establish(&mut p, now, open_from(PEER_ID, 90, None));
    let max_prefix = notif(6, 1);
    let acts = p.handle(now, PeerEvent::AutomaticStop(max_prefix.clone()));
    assert_eq!(
        effects(&acts),
        vec![
            Action::Send {
                conn: c,
                message: Message::Notification(max_prefix.clone())
            },
            Action::Drop { conn: c },
            Action::SessionDown {
                conn: c,
                reason: DownReason::AutomaticStop(max_prefix)
            },
            Action::Rib(RibAction::FlushAll),
        ]
    );
    assert_eq!(p.next_deadline(), Some(now + secs(1)));
    let acts = p.poll(now + secs(1));
    assert!(
        matches!(effects(&acts)[..], [Action::Connect { .. }]),
        "{acts:?}"
    );
}

#[test]
fn manual_stop_and_start() {
    let now = t0();
    let mut p = peer(config());
    let c = establish(&mut p, now, peer_open());
    let acts = p.handle(now, PeerEvent::ManualStop(Stop::shutdown("maintenance")));
    assert_eq!(rib(&acts), [RibAction::FlushAll]);
    assert!(matches!(&sent(&acts)[..],
        [Message::Notification(n)] if n.code == ErrorCode::new(6, 9)));
    assert_eq!(p.state(), State::Idle);
    assert_eq!(
        p.next_deadline(),
        None,
        "stopped: no idle hold, no reconnect"
    );
    assert_eq!(p.damping().failures(), 0);
    let acts = p.handle(now, PeerEvent::ManualStart);
    assert!(new_conn(&acts) > c, "connection ids are never reused");
}

#[test]
fn end_of_rib_after_the_initial_advertisement() {
    let now = t0();
    let mut p = peer(config());
    assert!(
        p.handle(now, PeerEvent::InitialAdvertisementComplete)
            .is_empty()
    );
    let c = establish(&mut p, now, peer_open());
    let acts = p.handle(now, PeerEvent::InitialAdvertisementComplete);
    assert_eq!(
        acts,
        vec![
            Action::Send {
                conn: c,
                message: Message::Update(Update::end_of_rib(V4))
            },
            Action::Send {
                conn: c,
                message: Message::Update(Update::end_of_rib(V6))
            },
        ]
    );
    assert!(
        p.handle(now, PeerEvent::InitialAdvertisementComplete)
            .is_empty(),
        "once per session"
    );
    // only the families both sides negotiated
    let mut p = peer(config());
    let v4_only = Open::new(
        PEER_AS,
        90,
        PEER_ID,
        vec![
            Capability::Multiprotocol(V4),
            Capability::FourOctetAs(PEER_AS),
        ],
    );
    let c = establish(&mut p, now, v4_only);
    assert_eq!(
        p.handle(now, PeerEvent::InitialAdvertisementComplete),
        vec![Action::Send {
            conn: c,
            message: Message::Update(Update::end_of_rib(V4))
        }]
    );
}

#[test]
fn route_refresh_both_ways() {
    let now = t0();
    let mut p = peer(config());
    assert_eq!(
        p.request_route_refresh(V4),
        Err(RefreshRequestError::NotEstablished)
    );
    let c = establish(&mut p, now, peer_open());
    assert_eq!(
        p.request_route_refresh(V6),
        Ok(Action::Send {
            conn: c,
            message: Message::RouteRefresh(RouteRefresh::new(V6))
        })
    );
    let other = AfiSafi::new(1, 128);
    assert_eq!(
        p.request_route_refresh(other).unwrap_err().to_string(),
        "route refresh: family afi 1 safi 128 was not negotiated"
    );
    assert_eq!(
        rib(&p.handle(now, conn(c, Event::RouteRefreshMsg(RouteRefresh::new(V4))))),
        [RibAction::ReAdvertise(V4)]
    );
    // a peer that did not advertise route refresh is not asked
    let mut p = peer(config());
    let no_rr = Open::new(PEER_AS, 90, PEER_ID, vec![Capability::FourOctetAs(PEER_AS)]);
    establish(&mut p, now, no_rr);
    assert_eq!(
        p.request_route_refresh(V4),
        Err(RefreshRequestError::NotSupported)
    );
    // and we do not honour one when we did not advertise it
    let mut cfg = config();
    cfg.route_refresh = false;
    let mut p = peer(cfg);
    let c = establish(&mut p, now, peer_open());
    assert!(rib(&p.handle(now, conn(c, Event::RouteRefreshMsg(RouteRefresh::new(V4))))).is_empty());
}

#[test]
fn config_errors_are_refused_at_construction() {
    let mut cfg = config();
    cfg.hold_time = 1;
    assert_eq!(Peer::new(cfg, false).unwrap_err(), ConfigError::HoldTime(1));
}

#[test]
fn a_tcp_success_nobody_waits_for_is_ignored() {
    // found by session_props: after its DelayOpen connection failed, an outgoing FSM in Active
    // took a stray Tcp_CR_Acked as a new connection and later dropped the same ConnId twice
    let now = t0();
    let mut cfg = config();
    cfg.delay_open = Some(secs(2));
    let mut p = peer(cfg);
    let c = new_conn(&p.handle(now, PeerEvent::ManualStart));
    p.handle(now, conn(c, Event::TcpCrAcked));
    let acts = p.handle(now, conn(c, Event::TcpConnectionFails));
    assert_eq!(effects(&acts), [Action::Drop { conn: c }]);
    assert_eq!(states(&p), [(c, Direction::Outgoing, State::Active)]);
    assert!(p.handle(now, conn(c, Event::TcpCrAcked)).is_empty());
    assert!(
        p.handle(now, conn(c, Event::TcpConnectionConfirmed))
            .is_empty()
    );
    let acts = p.handle(now, PeerEvent::ManualStop(Stop::default()));
    assert!(!acts.contains(&Action::Drop { conn: c }), "{acts:?}");
}

#[test]
fn failed_connection_attempts_of_ours_never_refuse_the_peers_connection() {
    // a peer that never listens (ExaBGP, many node speakers): our attempts fail at TCP
    let mut now = t0();
    let mut p = peer(config());
    let mut c = new_conn(&p.handle(now, PeerEvent::ManualStart));
    for _ in 0..4 {
        p.handle(now, conn(c, Event::TcpConnectionFails));
        now = p.idle_hold().unwrap();
        c = new_conn(&p.poll(now));
    }
    assert_eq!(p.damping().failures(), 4, "our retries still back off");
    p.handle(now, conn(c, Event::TcpConnectionFails));
    assert!(p.idle_hold().is_some());
    // its own connection is accepted all the same
    let acts = p.handle(now, PeerEvent::TcpConnectionConfirmed);
    assert!(matches!(acts[0], Action::Accept { .. }), "{acts:?}");
}
