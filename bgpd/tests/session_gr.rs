//! Graceful restart (RFC 4724, RFC 8538) as the RIB sees it: which session ends keep a
//! peer's routes (stale) and which flush them, F bit and End-of-RIB per family, the restart and
//! stale timers, consecutive restarts, a peer reconnecting while still Established, our own
//! graceful stop, the R bit, the restarting speaker's selection deferral, and two nodes that
//! restart at once, wired back to back through the codec.

mod session_support;

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Instant;

use bgpd::session::*;
use bgpd::wire::*;
use session_support::*;

fn peer(cfg: PeerConfig) -> Peer {
    Peer::new(cfg, false).unwrap()
}

fn stale_both() -> Vec<RibAction> {
    vec![RibAction::MarkStale(V4), RibAction::MarkStale(V6)]
}

/// Established with the router (GR 120 s, N, F for both), then `event` on the connection.
fn down_with(cfg: PeerConfig, open: Open, event: Event) -> (Peer, Vec<Action>, Instant) {
    let now = t0();
    let mut p = peer(cfg);
    let c = establish(&mut p, now, open);
    let acts = p.handle(now + secs(10), conn(c, event));
    assert!(p.established().is_none(), "{acts:?}");
    (p, acts, now + secs(10))
}

#[test]
fn which_session_ends_keep_the_routes() {
    let no_n = || {
        open_from(
            PEER_ID,
            90,
            Some(gr_cap(120, false, &[(V4, true), (V6, true)])),
        )
    };
    let hard_reset = Notification {
        data: vec![6, 2],
        ..notif(6, 9)
    };
    let no_local_gr = {
        let mut c = config();
        c.graceful_restart = None;
        c
    };
    let zero_restart = open_from(PEER_ID, 90, Some(gr_cap(0, true, &[(V4, true)])));
    let flush = vec![RibAction::FlushAll];
    // (case, our config, the router's OPEN, event, RIB actions)
    let rows: Vec<(&str, PeerConfig, Open, Event, Vec<RibAction>)> = vec![
        (
            "TCP closed",
            config(),
            peer_open(),
            Event::TcpConnectionFails,
            stale_both(),
        ),
        (
            "TCP closed, no N",
            config(),
            no_n(),
            Event::TcpConnectionFails,
            stale_both(),
        ),
        (
            "soft NOTIFICATION with N (RFC 8538 §4)",
            config(),
            peer_open(),
            Event::NotifMsg(notif(6, 4)),
            stale_both(),
        ),
        (
            "Hard Reset with N (RFC 8538 §3)",
            config(),
            peer_open(),
            Event::NotifMsg(hard_reset),
            flush.clone(),
        ),
        (
            "NOTIFICATION without N (RFC 4724 §4)",
            config(),
            no_n(),
            Event::NotifMsg(notif(6, 4)),
            flush.clone(),
        ),
        (
            "hold timer with N",
            config(),
            peer_open(),
            Event::HoldTimerExpires,
            stale_both(),
        ),
        (
            "hold timer without N",
            config(),
            no_n(),
            Event::HoldTimerExpires,
            flush.clone(),
        ),
        (
            "UPDATE error with N: our NOTIFICATION is not a Hard Reset",
            config(),
            peer_open(),
            Event::UpdateMsgErr(update_error()),
            stale_both(),
        ),
        (
            "UPDATE error without N",
            config(),
            no_n(),
            Event::UpdateMsgErr(update_error()),
            flush.clone(),
        ),
        (
            "peer without GR",
            config(),
            open_from(PEER_ID, 90, None),
            Event::TcpConnectionFails,
            flush.clone(),
        ),
        (
            "GR disabled here",
            no_local_gr,
            peer_open(),
            Event::TcpConnectionFails,
            flush.clone(),
        ),
        (
            "restart time 0",
            config(),
            zero_restart,
            Event::TcpConnectionFails,
            flush.clone(),
        ),
        (
            "family not in the peer's capability",
            config(),
            open_from(PEER_ID, 90, Some(gr_cap(120, true, &[(V4, false)]))),
            Event::TcpConnectionFails,
            vec![RibAction::MarkStale(V4), RibAction::Flush(V6)],
        ),
    ];
    let mut failures = vec![];
    for (case, cfg, open, event, expect) in rows {
        let (_, acts, _) = down_with(cfg, open, event);
        if rib(&acts) != expect {
            failures.push(format!("{case}: expected {expect:?}, got {:?}", rib(&acts)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn max_prefix_with_n_is_a_hard_reset_and_flushes() {
    let now = t0();
    let mut p = peer(config());
    let c = establish(&mut p, now, peer_open());
    let acts = p.handle(now, PeerEvent::AutomaticStop(notif(6, 1)));
    assert!(matches!(&sent(&acts)[..],
        [Message::Notification(n)] if n.code == ErrorCode::new(6, 9) && n.data == [6, 1]));
    assert_eq!(rib(&acts), [RibAction::FlushAll]);
    assert!(acts.contains(&Action::Drop { conn: c }));
}

#[test]
fn back_with_f_bit_keeps_stale_until_end_of_rib_per_family() {
    let (mut p, acts, t1) = down_with(config(), peer_open(), Event::TcpConnectionFails);
    assert_eq!(rib(&acts), stale_both());
    assert_eq!(p.helper().restart_deadline(), Some(t1 + secs(120)));
    // it comes back (first failure: accepted at once), F bit for IPv4 only this time
    let t2 = t1 + secs(20);
    let c = new_conn(&p.handle(t2, PeerEvent::TcpConnectionConfirmed));
    let back = open_from(
        PEER_ID,
        90,
        Some(gr_cap(120, true, &[(V4, true), (V6, false)])),
    );
    p.handle(t2, conn(c, open_event(back)));
    let acts = p.handle(t2, conn(c, Event::KeepAliveMsg));
    assert_eq!(rib(&acts), [RibAction::SweepStale(V6)]);
    assert_eq!(p.helper().stale().collect::<Vec<_>>(), [V4]);
    assert_eq!(p.helper().restart_deadline(), None);
    assert_eq!(p.helper().stale_deadline(), Some(t2 + secs(360)));
    // routes arrive, then End-of-RIB for IPv4: what is still stale goes
    let acts = p.handle(t2, conn(c, update_event(update())));
    assert_eq!(rib(&acts), [RibAction::Update(Box::new(update()))]);
    let acts = p.handle(t2, conn(c, update_event(Update::end_of_rib(V4))));
    assert_eq!(
        rib(&acts),
        [RibAction::EndOfRib(V4), RibAction::SweepStale(V4)]
    );
    assert_eq!(p.helper().next_deadline(), None);
    // a second End-of-RIB changes nothing
    let acts = p.handle(t2, conn(c, update_event(Update::end_of_rib(V4))));
    assert_eq!(rib(&acts), [RibAction::EndOfRib(V4)]);
}

#[test]
fn back_without_the_capability_sweeps_everything() {
    let (mut p, _, t1) = down_with(config(), peer_open(), Event::TcpConnectionFails);
    let c = new_conn(&p.handle(t1, PeerEvent::TcpConnectionConfirmed));
    p.handle(t1, conn(c, open_event(open_from(PEER_ID, 90, None))));
    let acts = p.handle(t1, conn(c, Event::KeepAliveMsg));
    assert_eq!(
        rib(&acts),
        [RibAction::SweepStale(V4), RibAction::SweepStale(V6)]
    );
}

#[test]
fn restart_timer_expiry_flushes() {
    let (mut p, _, t1) = down_with(config(), peer_open(), Event::TcpConnectionFails);
    // meanwhile we keep trying to connect (idle hold, then ConnectRetry); collect RIB work
    let mut seen = vec![];
    let mut now = t1;
    while now < t1 + secs(120) {
        now = p.next_deadline().unwrap();
        let acts = p.poll(now);
        for r in rib(&acts) {
            seen.push((now - t1, r));
        }
    }
    assert_eq!(seen, [(secs(120), RibAction::FlushAll)]);
    assert_eq!(p.helper().stale().count(), 0);
}

#[test]
fn stale_timer_sweeps_when_end_of_rib_never_comes() {
    let (mut p, _, t1) = down_with(config(), peer_open(), Event::TcpConnectionFails);
    let c = new_conn(&p.handle(t1, PeerEvent::TcpConnectionConfirmed));
    p.handle(t1, conn(c, open_event(peer_open())));
    assert!(rib(&p.handle(t1, conn(c, Event::KeepAliveMsg))).is_empty());
    let mut swept = vec![];
    let mut now = t1;
    while swept.is_empty() {
        now = p.next_deadline().unwrap();
        let acts = p.poll(now);
        if sent(&acts).contains(&Message::Keepalive) {
            p.handle(now, conn(c, Event::KeepAliveMsg)); // the peer keeps the session up
        }
        swept = rib(&acts);
    }
    assert_eq!(now - t1, secs(360));
    assert_eq!(
        swept,
        [RibAction::SweepStale(V4), RibAction::SweepStale(V6)]
    );
}

#[test]
fn consecutive_restarts_delete_the_previously_stale_routes() {
    let (mut p, _, t1) = down_with(config(), peer_open(), Event::TcpConnectionFails);
    let c = new_conn(&p.handle(t1, PeerEvent::TcpConnectionConfirmed));
    p.handle(t1, conn(c, open_event(peer_open())));
    p.handle(t1, conn(c, Event::KeepAliveMsg));
    p.handle(t1, conn(c, update_event(Update::end_of_rib(V6))));
    assert_eq!(p.helper().stale().collect::<Vec<_>>(), [V4]);
    // down again before End-of-RIB for IPv4: IPv4 routes still stale are deleted first
    let acts = p.handle(t1 + secs(5), conn(c, Event::TcpConnectionFails));
    assert_eq!(
        rib(&acts),
        [
            RibAction::SweepStale(V4),
            RibAction::MarkStale(V4),
            RibAction::MarkStale(V6)
        ]
    );
    assert_eq!(p.helper().restart_deadline(), Some(t1 + secs(125)));
}

#[test]
fn a_new_connection_while_established_means_the_peer_restarted() {
    // RFC 4724 §4.2: close the old connection, keep the new one, treat it as a restart.
    let now = t0();
    let mut p = peer(config());
    let old = establish(&mut p, now, peer_open());
    let acts = p.handle(now, PeerEvent::TcpConnectionConfirmed);
    let new = new_conn(&acts);
    assert!(
        matches!(acts[0], Action::Accept { .. }),
        "not refused: {acts:?}"
    );
    let mut restarted = peer_open();
    if let Some(OptParam::Capabilities(caps)) = restarted.params.first_mut() {
        for c in caps {
            if let Capability::GracefulRestart(g) = c {
                g.restart_state = true;
            }
        }
    }
    let acts = p.handle(now, conn(new, open_event(restarted)));
    assert_eq!(
        effects(&acts),
        vec![
            Action::Drop { conn: old },
            Action::SessionDown {
                conn: old,
                reason: DownReason::PeerRestarted
            },
            Action::Rib(RibAction::MarkStale(V4)),
            Action::Rib(RibAction::MarkStale(V6)),
            Action::Send {
                conn: new,
                message: Message::Keepalive
            },
        ],
        "no NOTIFICATION on the old connection"
    );
    p.handle(now, conn(new, Event::KeepAliveMsg));
    assert_eq!(p.established().map(|s| s.conn), Some(new));
    assert!(
        p.established()
            .unwrap()
            .peer_gr
            .as_ref()
            .unwrap()
            .restart_state
    );
    assert_eq!(p.damping().failures(), 0, "a restart is not a failure");
}

#[test]
fn a_connection_that_collided_with_the_session_is_not_a_restart() {
    // Both sides connect at once after the router restarted: its connection reaches
    // Established while ours is still in OpenSent. Ours is closed (RFC 4271 §6.8, Cease 6/7);
    // its OPEN must never be taken for another restart (RFC 4724 §4.2), which would end the
    // session and sweep the routes still stale from the restart.
    let now = t0();
    let mut p = peer(config());
    let ours = new_conn(&p.handle(now, PeerEvent::ManualStart));
    let theirs = new_conn(&p.handle(now, PeerEvent::TcpConnectionConfirmed));
    p.handle(now, conn(theirs, open_event(peer_open())));
    p.handle(now, conn(ours, Event::TcpCrAcked));
    let acts = p.handle(now, conn(theirs, Event::KeepAliveMsg));
    assert_eq!(p.established().map(|s| s.conn), Some(theirs), "{acts:?}");
    assert!(
        acts.iter().any(|a| matches!(a,
            Action::Send { conn, message: Message::Notification(n) }
                if *conn == ours && n.code == ErrorCode::new(6, 7))),
        "our colliding connection is closed with Cease/Collision: {acts:?}"
    );
    let acts = p.handle(now, conn(ours, open_event(peer_open())));
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::SessionDown { .. } | Action::Rib(_))),
        "{acts:?}"
    );
    assert_eq!(p.established().map(|s| s.conn), Some(theirs));
    // with collision detection in Established configured, the BGP Identifiers decide
    // (RFC 4271 §6.8), still no restart
    let mut cfg = config();
    cfg.collision_detect_established = true;
    let mut p = peer(cfg);
    let ours = new_conn(&p.handle(now, PeerEvent::ManualStart));
    let theirs = new_conn(&p.handle(now, PeerEvent::TcpConnectionConfirmed));
    p.handle(now, conn(theirs, open_event(peer_open())));
    p.handle(now, conn(ours, Event::TcpCrAcked));
    p.handle(now, conn(theirs, Event::KeepAliveMsg));
    let acts = p.handle(now, conn(ours, open_event(peer_open())));
    assert!(
        !acts.iter().any(|a| matches!(
            a,
            Action::SessionDown {
                reason: DownReason::PeerRestarted,
                ..
            }
        )),
        "{acts:?}"
    );
}

#[test]
fn our_graceful_stop_keeps_routes_and_our_plain_stop_flushes() {
    let now = t0();
    let mut p = peer(config());
    establish(&mut p, now, peer_open());
    let acts = p.handle(now, PeerEvent::ManualStop(Stop::graceful()));
    assert!(rib(&acts).is_empty(), "{acts:?}");
    assert_eq!(*p.helper(), Default::default());
    // a stop while we are helping a peer that is down ends the wait
    for (stop, expect) in [
        (Stop::shutdown("bye"), vec![RibAction::FlushAll]),
        (Stop::graceful(), vec![]),
    ] {
        let (mut p, _, t1) = down_with(config(), peer_open(), Event::TcpConnectionFails);
        let acts = p.handle(t1, PeerEvent::ManualStop(stop));
        assert_eq!(rib(&acts), expect);
        assert_eq!(p.next_deadline(), None);
    }
}

fn gr_of(o: &Open) -> GracefulRestart {
    o.capabilities()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn r_bit_until_the_first_session_after_the_restart() {
    let now = t0();
    let mut p = Peer::new(config(), true).unwrap();
    let c = new_conn(&p.handle(now, PeerEvent::ManualStart));
    let acts = p.handle(now, conn(c, Event::TcpCrAcked));
    let [Message::Open(o)] = &sent(&acts)[..] else {
        panic!("{acts:?}")
    };
    let gr = gr_of(o);
    assert!(gr.restart_state && gr.notification && gr.restart_time == 120);
    assert!(gr.families.iter().all(|f| f.forwarding_preserved));
    p.handle(now, conn(c, open_event(peer_open())));
    p.handle(now, conn(c, Event::KeepAliveMsg));
    assert!(!p.restarting());
    p.handle(now, conn(c, Event::TcpConnectionFails));
    let c = new_conn(&p.poll(now + secs(1)));
    let acts = p.handle(now + secs(1), conn(c, Event::TcpCrAcked));
    let [Message::Open(o)] = &sent(&acts)[..] else {
        panic!("{acts:?}")
    };
    assert!(
        !gr_of(o).restart_state,
        "RFC 4724 §4.2: only after a restart"
    );
}

/// Sessions as the deferral sees them: from a peer established with `open`.
fn session(open: Open) -> Established {
    let mut p = peer(config());
    establish(&mut p, t0(), open);
    p.established().unwrap().clone()
}

fn with_r(mut gr: GracefulRestart) -> GracefulRestart {
    gr.restart_state = true;
    gr
}

#[test]
fn selection_deferral_waits_for_end_of_rib_from_helpers_only() {
    let now = t0();
    let ready = |family, reason| SelectionReady { family, reason };
    let mut d = SelectionDeferral::new(now, secs(120), [V4, V6], ["tor-a", "tor-b", "node-c"]);
    assert!(d.poll(now).is_empty());
    assert_eq!(d.next_deadline(), Some(now + secs(120)));
    // tor-a helps (GR, no R): awaited for both families
    assert!(d.established(&"tor-a", &session(peer_open())).is_empty());
    // tor-b has no GR and node-c restarted too (R bit): neither is awaited
    assert!(
        d.established(&"tor-b", &session(open_from(PEER_ID, 90, None)))
            .is_empty()
    );
    let restarting = open_from(
        PEER_ID,
        90,
        Some(with_r(gr_cap(120, true, &[(V4, true), (V6, true)]))),
    );
    assert!(d.established(&"node-c", &session(restarting)).is_empty());
    assert_eq!(
        d.pending().map(|(f, w)| (f, w.len())).collect::<Vec<_>>(),
        [(V4, 1), (V6, 1)]
    );
    assert_eq!(
        d.end_of_rib(&"tor-a", V6),
        [ready(V6, DeferralEnd::AllEndOfRib)]
    );
    assert!(d.poll(now + secs(119)).is_empty());
    assert_eq!(
        d.poll(now + secs(120)),
        [ready(V4, DeferralEnd::TimerExpired)]
    );
    assert!(d.is_complete());
    assert_eq!(d.next_deadline(), None);
    assert!(d.end_of_rib(&"tor-a", V4).is_empty());
}

#[test]
fn selection_deferral_edge_cases() {
    let now = t0();
    // no peers: ready at the first poll
    let mut d = SelectionDeferral::<u32>::new(now, secs(120), [V4], []);
    assert_eq!(d.next_deadline(), Some(now));
    assert_eq!(d.poll(now).len(), 1);
    // a removed peer is no longer awaited
    let mut d = SelectionDeferral::new(now, secs(120), [V4], [1, 2]);
    d.end_of_rib(&1, V4);
    assert_eq!(d.peer_removed(&2).len(), 1);
    // a family the session did not negotiate is not awaited from it
    let v4_only = Open::new(
        PEER_AS,
        90,
        PEER_ID,
        vec![
            Capability::Multiprotocol(V4),
            Capability::FourOctetAs(PEER_AS),
            Capability::GracefulRestart(gr_cap(120, true, &[(V4, true)])),
        ],
    );
    let mut d = SelectionDeferral::new(now, secs(120), [V4, V6], [1]);
    assert_eq!(
        d.established(&1, &session(v4_only)),
        [SelectionReady {
            family: V6,
            reason: DeferralEnd::AllEndOfRib
        }]
    );
}

// ── Two nodes, back to back ─────────────────────────────────────────────────────────────

/// Two peers joined by simulated TCP: a Connect becomes a SYN that reaches the other side
/// later (TcpConnectionConfirmed there, Tcp_CR_Acked or TcpConnectionFails here), messages go
/// through encode and decode in order, Drop is TcpConnectionFails on the far end.
struct Wire {
    peers: [Peer; 2],
    links: BTreeMap<(usize, ConnId), ConnId>,
    queue: VecDeque<Item>,
    log: Vec<(usize, Action)>,
}

enum Item {
    Event(usize, PeerEvent),
    Syn(usize, ConnId),
}

impl Wire {
    fn new(a: Peer, b: Peer) -> Self {
        Self {
            peers: [a, b],
            links: BTreeMap::new(),
            queue: VecDeque::new(),
            log: vec![],
        }
    }

    /// Process `event` and everything it causes, until the wire is quiet.
    fn run(&mut self, now: Instant, side: usize, event: PeerEvent) {
        self.queue.push_back(Item::Event(side, event));
        while let Some(item) = self.queue.pop_front() {
            match item {
                Item::Event(side, event) => {
                    let acts = self.peers[side].handle(now, event);
                    self.route(side, acts);
                }
                Item::Syn(side, c) => {
                    let far = 1 - side;
                    let answer = self.peers[far].handle(now, PeerEvent::TcpConnectionConfirmed);
                    let accepted = answer.iter().find_map(|a| match a {
                        Action::Accept { conn } => Some(*conn),
                        _ => None,
                    });
                    let outcome = match accepted {
                        Some(fc) => {
                            self.links.insert((side, c), fc);
                            self.links.insert((far, fc), c);
                            Event::TcpCrAcked
                        }
                        None => Event::TcpConnectionFails,
                    };
                    let acts = self.peers[side].handle(now, conn(c, outcome));
                    self.route(side, acts);
                    self.route(far, answer);
                }
            }
        }
    }

    fn route(&mut self, side: usize, acts: Vec<Action>) {
        let far = 1 - side;
        for a in acts {
            self.log.push((side, a.clone()));
            match a {
                Action::Connect { conn: c } => self.queue.push_back(Item::Syn(side, c)),
                Action::Send { conn: c, message } => {
                    if let Some(&fc) = self.links.get(&(side, c)) {
                        let bytes = message.to_bytes(&EncodeCx::default());
                        let decoded = Message::decode(&bytes, &DecodeCx::default());
                        self.queue
                            .push_back(Item::Event(far, conn(fc, Event::from_message(decoded))));
                    }
                }
                Action::Drop { conn: c } => {
                    if let Some(fc) = self.links.remove(&(side, c)) {
                        self.links.remove(&(far, fc));
                        self.queue
                            .push_back(Item::Event(far, conn(fc, Event::TcpConnectionFails)));
                    }
                }
                Action::Established(_) => self
                    .queue
                    .push_back(Item::Event(side, PeerEvent::InitialAdvertisementComplete)),
                _ => {}
            }
        }
    }
}

fn node(id: u8, restarting: bool) -> Peer {
    let mut c = PeerConfig::new(LOCAL_AS, Ipv4Addr::new(198, 18, 0, id), PeerAs::Internal);
    c.connect_retry = secs(5);
    Peer::new(c, restarting).unwrap()
}

#[test]
fn two_nodes_restarting_at_once_converge_without_waiting_for_each_other() {
    let now = t0();
    let mut w = Wire::new(node(10, true), node(11, true));
    // both start at the same instant: each connects to the other, the connections collide
    w.queue.push_back(Item::Event(1, PeerEvent::ManualStart));
    w.run(now, 0, PeerEvent::ManualStart);
    let (a, b) = (&w.peers[0], &w.peers[1]);
    let (sa, sb) = (a.established().unwrap(), b.established().unwrap());
    // one TCP connection survives, the same on both sides: the one .11 (higher) initiated
    assert_eq!(w.links.get(&(0, sa.conn)), Some(&sb.conn));
    assert_eq!(
        (sa.direction, sb.direction),
        (Direction::Incoming, Direction::Outgoing)
    );
    assert_eq!(a.connections().count(), 1);
    assert_eq!(b.connections().count(), 1);
    let collisions = w
        .log
        .iter()
        .filter(|(_, a)| {
            matches!(a, Action::Send { message: Message::Notification(n), .. }
            if n.code == ErrorCode::new(6, 7))
        })
        .count();
    assert!(collisions >= 1, "Cease 6/7 on the losing connection");
    // both restarted: each sees the other's R bit, so neither waits for the other's EoR
    assert!(sa.peer_gr.as_ref().unwrap().restart_state);
    assert!(sb.peer_gr.as_ref().unwrap().restart_state);
    for s in [sa, sb] {
        let mut d = SelectionDeferral::new(now, secs(120), [V4, V6], ["other"]);
        assert_eq!(d.established(&"other", s).len(), 2);
    }
    // End-of-RIB went both ways
    let eors = w
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Rib(RibAction::EndOfRib(_))))
        .count();
    assert_eq!(eors, 4);
    // neither counts a failure, and the next OPENs will not carry R
    assert!(!a.restarting() && !b.restarting());
    assert_eq!(a.damping().failures() + b.damping().failures(), 0);
}

#[test]
fn two_nodes_one_restarting_keeps_the_others_routes_stale_then_sweeps() {
    let now = t0();
    let mut w = Wire::new(node(10, false), node(11, false));
    w.queue.push_back(Item::Event(1, PeerEvent::ManualStart));
    w.run(now, 0, PeerEvent::ManualStart);
    assert!(w.peers[0].established().is_some());
    // node .11 restarts: graceful stop (no Hard Reset), then a new process with R bit
    w.log.clear();
    w.run(now, 1, PeerEvent::ManualStop(Stop::graceful()));
    let rib_a: Vec<RibAction> = w
        .log
        .iter()
        .filter(|(s, _)| *s == 0)
        .filter_map(|(_, a)| match a {
            Action::Rib(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(rib_a, stale_both(), "node .10 keeps .11's routes");
    w.peers[1] = node(11, true);
    w.log.clear();
    let t1 = now + secs(5);
    w.run(t1, 1, PeerEvent::ManualStart);
    assert!(w.peers[0].established().is_some() && w.peers[1].established().is_some());
    let rib_a: Vec<RibAction> = w
        .log
        .iter()
        .filter(|(s, _)| *s == 0)
        .filter_map(|(_, a)| match a {
            Action::Rib(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        rib_a,
        [
            RibAction::EndOfRib(V4),
            RibAction::SweepStale(V4),
            RibAction::EndOfRib(V6),
            RibAction::SweepStale(V6)
        ]
    );
}
