//! Tests of the RIB: the decision process step by step, multipath sets, graceful restart,
//! flush, UPDATE import with policy and max-prefix, and memory after a flood.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::policy::{ImportPolicy, MaxPrefix, MaxPrefixEvent, PrefixList, RejectReason};
use crate::wire::{
    AsPath, Attr, DecodeCx, Ipv6NextHop, MpReach, MpUnreach, NextHop, Nlri, Origin, PathAttr,
    Segment, SegmentType, Update,
};

pub(crate) const LOCAL_AS: u32 = 65000;

pub(crate) fn peer(addr: &str, asn: u32) -> PeerInfo {
    PeerInfo {
        address: addr.parse().unwrap(),
        asn,
        local_as: LOCAL_AS,
        router_id: addr.parse().unwrap(),
        ifindex: None,
    }
}

/// eBGP peers e1, e2 in AS 65001 and e3 in AS 65002; iBGP peers i4, i5. Router IDs equal
/// their addresses.
fn e1() -> PeerInfo {
    peer("198.18.0.1", 65001)
}
fn e2() -> PeerInfo {
    peer("198.18.0.2", 65001)
}
fn e3() -> PeerInfo {
    peer("198.18.0.3", 65002)
}
fn i4() -> PeerInfo {
    peer("198.18.0.4", LOCAL_AS)
}
fn i5() -> PeerInfo {
    peer("198.18.0.5", LOCAL_AS)
}

pub(crate) fn attrs(path: &[u32], nh: &str) -> RouteAttrs {
    RouteAttrs {
        origin: Origin::Igp,
        as_path: AsPath::sequence(path.iter().copied()),
        next_hop: NextHop::Ipv4(nh.parse().unwrap()),
        med: None,
        local_pref: 100,
        communities: vec![],
        large_communities: vec![],
        originator_id: None,
        cluster_list: vec![],
        other: vec![],
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const P: &str = "198.18.66.0/24";

struct Row {
    name: &'static str,
    peers: [PeerInfo; 2],
    attrs: [RouteAttrs; 2],
    opts: RibOptions,
    best: usize,
    reason: BestPathReason,
}

fn rows() -> Vec<Row> {
    let d = RibOptions::default;
    let with = |f: fn(&mut RouteAttrs), mut a: RouteAttrs| {
        f(&mut a);
        a
    };
    let rr = |orig: &str, cl: &[&str], a: RouteAttrs| RouteAttrs {
        originator_id: Some(ip4(orig)),
        cluster_list: cl.iter().map(|s| ip4(s)).collect(),
        ..a
    };
    vec![
        Row {
            name: "higher LOCAL_PREF wins even over a shorter AS_PATH",
            peers: [i4(), i5()],
            attrs: [
                RouteAttrs {
                    local_pref: 200,
                    ..attrs(&[65001, 65002], "198.18.0.4")
                },
                attrs(&[], "198.18.0.5"),
            ],
            opts: d(),
            best: 0,
            reason: BestPathReason::LocalPref {
                best: 200,
                runner_up: 100,
            },
        },
        Row {
            name: "shorter AS_PATH",
            peers: [e1(), e2()],
            attrs: [
                attrs(&[65001, 65010], "198.18.0.1"),
                attrs(&[65001], "198.18.0.2"),
            ],
            opts: d(),
            best: 1,
            reason: BestPathReason::AsPathLength {
                best: 1,
                runner_up: 2,
            },
        },
        Row {
            name: "an AS_SET counts as one AS",
            peers: [e1(), e2()],
            attrs: [
                with(
                    |a| {
                        a.as_path.segments.push(Segment {
                            kind: SegmentType::Set,
                            asns: vec![65010, 65011, 65012],
                        })
                    },
                    attrs(&[65001], "198.18.0.1"),
                ),
                attrs(&[65001, 65010, 65011], "198.18.0.2"),
            ],
            opts: d(),
            best: 0,
            reason: BestPathReason::AsPathLength {
                best: 2,
                runner_up: 3,
            },
        },
        Row {
            name: "confederation segments count zero",
            peers: [i4(), i5()],
            attrs: [
                RouteAttrs {
                    as_path: AsPath {
                        segments: vec![
                            Segment {
                                kind: SegmentType::ConfedSequence,
                                asns: vec![64512, 64513],
                            },
                            Segment {
                                kind: SegmentType::Sequence,
                                asns: vec![65001],
                            },
                        ],
                    },
                    ..attrs(&[], "198.18.0.4")
                },
                attrs(&[65001, 65002], "198.18.0.5"),
            ],
            opts: d(),
            best: 0,
            reason: BestPathReason::AsPathLength {
                best: 1,
                runner_up: 2,
            },
        },
        Row {
            name: "lower ORIGIN",
            peers: [e1(), e2()],
            attrs: [
                RouteAttrs {
                    origin: Origin::Incomplete,
                    ..attrs(&[65001], "198.18.0.1")
                },
                attrs(&[65001], "198.18.0.2"),
            ],
            opts: d(),
            best: 1,
            reason: BestPathReason::Origin {
                best: Origin::Igp,
                runner_up: Origin::Incomplete,
            },
        },
        Row {
            name: "lower MED from the same neighbour AS",
            peers: [e1(), e2()],
            attrs: [
                RouteAttrs {
                    med: Some(20),
                    ..attrs(&[65001], "198.18.0.1")
                },
                RouteAttrs {
                    med: Some(10),
                    ..attrs(&[65001], "198.18.0.2")
                },
            ],
            opts: d(),
            best: 1,
            reason: BestPathReason::Med {
                best: 10,
                runner_up: 20,
            },
        },
        Row {
            name: "a missing MED is the lowest",
            peers: [e1(), e2()],
            attrs: [
                attrs(&[65001], "198.18.0.1"),
                RouteAttrs {
                    med: Some(5),
                    ..attrs(&[65001], "198.18.0.2")
                },
            ],
            opts: d(),
            best: 0,
            reason: BestPathReason::Med {
                best: 0,
                runner_up: 5,
            },
        },
        Row {
            name: "MED is not compared across neighbour ASes",
            peers: [e1(), e3()],
            attrs: [
                RouteAttrs {
                    med: Some(20),
                    ..attrs(&[65001], "198.18.0.1")
                },
                RouteAttrs {
                    med: Some(10),
                    ..attrs(&[65002], "198.18.0.3")
                },
            ],
            opts: d(),
            best: 0,
            reason: BestPathReason::RouterId {
                best: ip4("198.18.0.1"),
                runner_up: ip4("198.18.0.3"),
            },
        },
        Row {
            name: "always-compare-med compares across neighbour ASes",
            peers: [e1(), e3()],
            attrs: [
                RouteAttrs {
                    med: Some(20),
                    ..attrs(&[65001], "198.18.0.1")
                },
                RouteAttrs {
                    med: Some(10),
                    ..attrs(&[65002], "198.18.0.3")
                },
            ],
            opts: RibOptions {
                always_compare_med: true,
                ..d()
            },
            best: 1,
            reason: BestPathReason::Med {
                best: 10,
                runner_up: 20,
            },
        },
        Row {
            name: "eBGP over iBGP",
            peers: [i4(), e1()],
            attrs: [attrs(&[65001], "198.18.0.4"), attrs(&[65001], "198.18.0.1")],
            opts: d(),
            best: 1,
            reason: BestPathReason::EbgpOverIbgp,
        },
        Row {
            name: "lower router ID",
            peers: [e2(), e1()],
            attrs: [attrs(&[65001], "198.18.0.2"), attrs(&[65001], "198.18.0.1")],
            opts: d(),
            best: 1,
            reason: BestPathReason::RouterId {
                best: ip4("198.18.0.1"),
                runner_up: ip4("198.18.0.2"),
            },
        },
        Row {
            name: "ORIGINATOR_ID stands in for the router ID",
            peers: [i4(), i5()],
            attrs: [
                rr("198.18.1.9", &[], attrs(&[65001], "198.18.0.4")),
                rr("198.18.1.8", &[], attrs(&[65001], "198.18.0.5")),
            ],
            opts: d(),
            best: 1,
            reason: BestPathReason::RouterId {
                best: ip4("198.18.1.8"),
                runner_up: ip4("198.18.1.9"),
            },
        },
        Row {
            name: "shorter CLUSTER_LIST",
            peers: [i4(), i5()],
            attrs: [
                rr(
                    "198.18.1.9",
                    &["198.18.2.1", "198.18.2.2"],
                    attrs(&[65001], "198.18.0.4"),
                ),
                rr("198.18.1.9", &["198.18.2.1"], attrs(&[65001], "198.18.0.5")),
            ],
            opts: d(),
            best: 1,
            reason: BestPathReason::ClusterListLength {
                best: 1,
                runner_up: 2,
            },
        },
        Row {
            name: "lower peer address",
            peers: [i5(), i4()],
            attrs: [
                rr("198.18.1.9", &[], attrs(&[65001], "198.18.0.5")),
                rr("198.18.1.9", &[], attrs(&[65001], "198.18.0.4")),
            ],
            opts: d(),
            best: 1,
            reason: BestPathReason::PeerAddress {
                best: ip("198.18.0.4"),
                runner_up: ip("198.18.0.5"),
            },
        },
    ]
}

#[test]
fn decision_process_table() {
    for row in rows() {
        for order in [[0, 1], [1, 0]] {
            let mut rib = Rib::new(row.opts);
            let ids: Vec<PeerId> = row
                .peers
                .iter()
                .map(|p| rib.add_peer(p.clone()).unwrap())
                .collect();
            for i in order {
                rib.announce(ids[i], row.attrs[i].clone(), [net(P)])
                    .unwrap();
            }
            let r = rib.route(net(P)).unwrap();
            assert_eq!(r.best().peer, ids[row.best], "{}: best", row.name);
            let d = r.explain();
            assert_eq!(d.reason, row.reason, "{}", row.name);
            assert_eq!(d.best, 0, "{}: paths are kept best first", row.name);
            let runner_up = r.paths().nth(d.runner_up.unwrap()).unwrap().peer;
            assert_eq!(runner_up, ids[1 - row.best], "{}: runner-up", row.name);
        }
    }
}

#[test]
fn reason_display() {
    let shown: Vec<String> = rows().iter().map(|r| r.reason.to_string()).collect();
    assert_eq!(
        shown,
        [
            "higher LOCAL_PREF (200 over 100)",
            "shorter AS_PATH (1 over 2)",
            "shorter AS_PATH (2 over 3)",
            "shorter AS_PATH (1 over 2)",
            "lower ORIGIN (IGP over incomplete)",
            "lower MED (10 over 20)",
            "lower MED (0 over 5)",
            "lower router ID (198.18.0.1 over 198.18.0.3)",
            "lower MED (10 over 20)",
            "eBGP over iBGP",
            "lower router ID (198.18.0.1 over 198.18.0.2)",
            "lower router ID (198.18.1.8 over 198.18.1.9)",
            "shorter CLUSTER_LIST (1 over 2)",
            "lower peer address (198.18.0.4 over 198.18.0.5)",
        ]
    );
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(e1()).unwrap();
    rib.announce(a, attrs(&[65001], "198.18.0.1"), [net(P)])
        .unwrap();
    let d = rib.route(net(P)).unwrap().explain();
    assert_eq!((d.reason, d.runner_up), (BestPathReason::OnlyPath, None));
    assert_eq!(d.reason.to_string(), "only path");
}

#[test]
fn med_elimination_does_not_depend_on_arrival_order() {
    // A and B from AS 65001, C from AS 65002. Pairwise, A beats B (MED), C beats A (router
    // ID), B beats C (router ID): only elimination over the set gives one answer (C).
    let pa = peer("198.18.0.30", 65001);
    let pb = peer("198.18.0.10", 65001);
    let pc = peer("198.18.0.20", 65002);
    let aa = RouteAttrs {
        med: Some(10),
        ..attrs(&[65001], "198.18.0.30")
    };
    let ab = RouteAttrs {
        med: Some(20),
        ..attrs(&[65001], "198.18.0.10")
    };
    let ac = attrs(&[65002], "198.18.0.20");
    let all = [(pa, aa), (pb, ab), (pc, ac)];
    for perm in [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ] {
        let mut rib = Rib::new(RibOptions {
            max_paths: 1,
            ..RibOptions::default()
        });
        let ids: Vec<PeerId> = all
            .iter()
            .map(|(p, _)| rib.add_peer(p.clone()).unwrap())
            .collect();
        for i in perm {
            rib.announce(ids[i], all[i].1.clone(), [net(P)]).unwrap();
        }
        let r = rib.route(net(P)).unwrap();
        assert_eq!(r.best().peer, ids[2], "order {perm:?}");
        assert_eq!(
            r.explain().reason,
            BestPathReason::RouterId {
                best: ip4("198.18.0.20"),
                runner_up: ip4("198.18.0.30")
            }
        );
    }
}

fn multipath_peers(rib: &mut Rib, peers: &[PeerInfo], a: &[RouteAttrs]) -> Vec<PeerId> {
    let ids: Vec<PeerId> = peers
        .iter()
        .map(|p| rib.add_peer(p.clone()).unwrap())
        .collect();
    for (id, a) in ids.iter().zip(a) {
        rib.announce(*id, a.clone(), [net(P)]).unwrap();
    }
    ids
}

fn mp_set(rib: &Rib) -> Vec<PeerId> {
    rib.route(net(P))
        .unwrap()
        .multipath()
        .map(|p| p.peer)
        .collect()
}

#[test]
fn multipath_sets() {
    let peers = [e3(), e2(), e1()];
    let a = [
        attrs(&[65002], "198.18.0.3"),
        attrs(&[65001], "198.18.0.2"),
        attrs(&[65001], "198.18.0.1"),
    ];
    // default: same neighbour AS only, ordered by router ID
    let mut rib = Rib::new(RibOptions::default());
    let ids = multipath_peers(&mut rib, &peers, &a);
    assert_eq!(mp_set(&rib), [ids[2], ids[1]]);
    // relax: equal AS_PATH length from another AS joins
    let relax = RibOptions {
        multipath_relax: true,
        ..RibOptions::default()
    };
    let mut rib = Rib::new(relax);
    let ids = multipath_peers(&mut rib, &peers, &a);
    assert_eq!(mp_set(&rib), [ids[2], ids[1], ids[0]]);
    // max paths bounds the set, keeping the best
    let mut rib = Rib::new(RibOptions {
        max_paths: 2,
        ..relax
    });
    let ids = multipath_peers(&mut rib, &peers, &a);
    assert_eq!(mp_set(&rib), [ids[2], ids[1]]);
    let mut rib = Rib::new(RibOptions {
        max_paths: 1,
        ..relax
    });
    let ids = multipath_peers(&mut rib, &peers, &a);
    assert_eq!(mp_set(&rib), [ids[2]]);
    // relax still needs equal length
    let mut rib = Rib::new(relax);
    let longer = [
        attrs(&[65002, 65003], "198.18.0.3"),
        a[1].clone(),
        a[2].clone(),
    ];
    let ids = multipath_peers(&mut rib, &peers, &longer);
    assert_eq!(mp_set(&rib), [ids[2], ids[1]]);
}

#[test]
fn multipath_excludes_paths_that_lose_before_the_igp_step() {
    let mut rib = Rib::new(RibOptions::default());
    let ids = multipath_peers(
        &mut rib,
        &[e1(), e2(), i4()],
        &[
            attrs(&[65001], "198.18.0.1"),
            RouteAttrs {
                med: Some(10),
                ..attrs(&[65001], "198.18.0.2")
            },
            attrs(&[65001], "198.18.0.4"),
        ],
    );
    assert_eq!(mp_set(&rib), [ids[0]], "higher MED and iBGP are out");
    // iBGP paths form a multipath set among themselves
    let mut rib = Rib::new(RibOptions::default());
    let ids = multipath_peers(
        &mut rib,
        &[i5(), i4()],
        &[attrs(&[65001], "198.18.0.5"), attrs(&[65001], "198.18.0.4")],
    );
    assert_eq!(mp_set(&rib), [ids[1], ids[0]]);
}

#[test]
fn changes_report_best_and_multipath_deltas() {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(e1()).unwrap();
    let b = rib.add_peer(e2()).unwrap();
    let c = rib
        .announce(b, attrs(&[65001], "198.18.0.2"), [net(P)])
        .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].kind(), ChangeKind::Added);
    assert_eq!(c[0].new.as_ref().unwrap().multipath, 1);
    // an equal path from a peer with a lower router ID: new best, set of two
    let c = rib
        .announce(a, attrs(&[65001], "198.18.0.1"), [net(P)])
        .unwrap();
    assert_eq!(c[0].kind(), ChangeKind::BestChanged);
    assert_eq!(
        (
            c[0].old.as_ref().unwrap().peer,
            c[0].new.as_ref().unwrap().peer
        ),
        (b, a)
    );
    assert_eq!(c[0].new.as_ref().unwrap().multipath, 2);
    // the same announcement again changes nothing
    assert!(
        rib.announce(a, attrs(&[65001], "198.18.0.1"), [net(P)])
            .unwrap()
            .is_empty()
    );
    // b's path gets worse: same best, smaller set
    let c = rib
        .announce(
            b,
            RouteAttrs {
                med: Some(5),
                ..attrs(&[65001], "198.18.0.2")
            },
            [net(P)],
        )
        .unwrap();
    assert_eq!(c[0].kind(), ChangeKind::MultipathChanged);
    assert_eq!(c[0].new.as_ref().unwrap().multipath, 1);
    // options change: decided again
    let c = rib.set_options(RibOptions {
        max_paths: 1,
        ..RibOptions::default()
    });
    assert!(c.is_empty());
    let c = rib.withdraw(a, [net(P)]);
    assert_eq!(c[0].kind(), ChangeKind::BestChanged);
    let c = rib.withdraw(b, [net(P)]);
    assert_eq!(c[0].kind(), ChangeKind::Removed);
    assert!(rib.withdraw(b, [net(P)]).is_empty());
    assert_eq!(rib.stats(), RibStats::default());
}

#[test]
fn graceful_restart_stale_relearn_sweep() {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(e1()).unwrap();
    let b = rib.add_peer(e3()).unwrap();
    let pa = attrs(&[65001], "198.18.0.1");
    let v4 = ["198.18.66.0/24", "198.18.67.0/24", "198.18.68.0/24"].map(net);
    let v6 = net("2001:db8:66::/64");
    let pa6 = RouteAttrs {
        next_hop: NextHop::Ipv6(Ipv6NextHop {
            global: "2001:db8::1".parse().unwrap(),
            link_local: None,
        }),
        ..pa.clone()
    };
    rib.announce(a, pa.clone(), v4).unwrap();
    rib.announce(a, pa6.clone(), [v6]).unwrap();
    rib.announce(b, attrs(&[65002, 65003], "198.18.0.3"), [v4[2]])
        .unwrap();

    // only IPv6 first: family granularity
    assert_eq!(rib.mark_stale(a, Some(AfiSafi::Ipv6Unicast)), 1);
    assert_eq!(rib.peer_stale(a, AfiSafi::Ipv4Unicast), 0);
    assert_eq!(rib.mark_stale(a, None), 3, "IPv6 was already stale");
    assert_eq!(rib.peer_stale(a, AfiSafi::Ipv4Unicast), 3);
    assert!(rib.route(v4[0]).unwrap().best().stale);
    assert_eq!(rib.route(v4[2]).unwrap().best().peer, a, "stale still wins");

    // re-learned unchanged: stale cleared, no Loc-RIB change
    assert!(rib.announce(a, pa.clone(), [v4[0]]).unwrap().is_empty());
    assert!(!rib.route(v4[0]).unwrap().best().stale);
    // re-learned changed
    let c = rib
        .announce(a, RouteAttrs { med: Some(1), ..pa }, [v4[1]])
        .unwrap();
    assert_eq!(c[0].kind(), ChangeKind::BestChanged);
    assert_eq!(rib.peer_stale(a, AfiSafi::Ipv4Unicast), 1);

    // End-of-RIB for IPv4: the one not re-learned goes, b's path takes over
    let c = rib.sweep_stale(a, Some(AfiSafi::Ipv4Unicast));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].prefix, v4[2]);
    assert_eq!(c[0].new.as_ref().unwrap().peer, b);
    assert_eq!(rib.peer_routes(a, AfiSafi::Ipv4Unicast), 2);
    assert_eq!(rib.peer_stale(a, AfiSafi::Ipv4Unicast), 0);
    assert!(rib.route(v6).unwrap().best().stale, "IPv6 not swept yet");
    let c = rib.sweep_stale(a, None);
    assert_eq!((c.len(), c[0].kind()), (1, ChangeKind::Removed));
    assert_eq!(rib.peer_routes(a, AfiSafi::Ipv6Unicast), 0);
    assert!(rib.sweep_stale(a, None).is_empty());
}

#[test]
fn flush_removes_one_peer_and_hands_over() {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(e1()).unwrap();
    let b = rib.add_peer(e3()).unwrap();
    rib.announce(
        a,
        attrs(&[65001], "198.18.0.1"),
        [net("198.18.66.0/24"), net("198.18.67.0/24")],
    )
    .unwrap();
    rib.announce(
        b,
        attrs(&[65002, 65009], "198.18.0.3"),
        [net("198.18.67.0/24"), net("198.18.68.0/24")],
    )
    .unwrap();
    assert_eq!(rib.stats().multi_path_slots, 1);
    let mut c = rib.remove_peer(a);
    c.sort_by_key(|c| c.prefix);
    let kinds: Vec<(IpNet, ChangeKind)> = c.iter().map(|c| (c.prefix, c.kind())).collect();
    assert_eq!(
        kinds,
        [
            (net("198.18.66.0/24"), ChangeKind::Removed),
            (net("198.18.67.0/24"), ChangeKind::BestChanged),
        ]
    );
    assert_eq!(rib.peer(a), None);
    let s = rib.stats();
    assert_eq!((s.ipv4_prefixes, s.paths, s.attr_sets), (2, 2, 1));
    assert_eq!(s.multi_path_slots, 0);
    // the freed id is reused
    assert_eq!(rib.add_peer(e2()).unwrap(), a);
    assert_eq!(rib.adj_rib_in(a, AfiSafi::Ipv4Unicast).count(), 0);
    assert_eq!(rib.adj_rib_in(b, AfiSafi::Ipv4Unicast).count(), 2);
}

#[test]
fn update_peer_redecides_its_prefixes() {
    let mut rib = Rib::new(RibOptions {
        max_paths: 1,
        ..RibOptions::default()
    });
    let a = rib.add_peer(e1()).unwrap();
    let b = rib.add_peer(e2()).unwrap();
    rib.announce(a, attrs(&[65001], "198.18.0.1"), [net(P)])
        .unwrap();
    rib.announce(b, attrs(&[65001], "198.18.0.2"), [net(P)])
        .unwrap();
    assert_eq!(rib.route(net(P)).unwrap().best().peer, a);
    // a reconnects with a higher BGP identifier (GR kept its paths)
    let c = rib
        .update_peer(
            a,
            PeerInfo {
                router_id: ip4("198.18.0.9"),
                ..e1()
            },
        )
        .unwrap();
    assert_eq!(c[0].new.as_ref().unwrap().peer, b);
    assert_eq!(
        rib.update_peer(PeerId(7), e1()),
        Err(RibError::UnknownPeer(PeerId(7)))
    );
    assert_eq!(
        rib.announce(PeerId(7), attrs(&[1], "198.18.0.1"), [net(P)]),
        Err(RibError::UnknownPeer(PeerId(7)))
    );
}

// ---- UPDATE import ----

fn import_policy() -> ImportPolicy {
    ImportPolicy {
        local_as: LOCAL_AS,
        ranges: PrefixList::parse(&["198.18.64.0/18 le 24", "2001:db8:1000::/36 le 64"]).unwrap(),
        own_prefixes: vec![net("198.18.64.0/24")],
        local_pref: 150,
        ..ImportPolicy::default()
    }
}

fn update_v4(path: &[u32], nh: &str, prefixes: &[&str]) -> Update {
    Update {
        attrs: vec![
            PathAttr::new(Attr::Origin(Origin::Igp)),
            PathAttr::new(Attr::AsPath(AsPath::sequence(path.iter().copied()))),
            PathAttr::new(Attr::NextHop(nh.parse().unwrap())),
        ],
        nlri: prefixes
            .iter()
            .map(|p| Nlri::new(p.parse().unwrap()))
            .collect(),
        ..Update::default()
    }
}

#[test]
fn import_accepts_rejects_and_withdraws_implicitly() {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(e1()).unwrap();
    let pol = import_policy();
    let u = update_v4(
        &[65001],
        "198.18.0.1",
        &[
            "198.18.66.0/24",
            "10.0.0.0/8",
            "198.18.64.0/24",
            "0.0.0.0/0",
        ],
    );
    let out = rib.apply_update(a, &u, &pol, true).unwrap();
    assert_eq!(out.accepted, 1);
    let msgs: Vec<String> = out.rejected.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        msgs,
        [
            "filtered: 10.0.0.0/8 not in import ranges of peer 198.18.0.1",
            "filtered: 198.18.64.0/24 overlaps our own prefix 198.18.64.0/24, from peer 198.18.0.1",
            "filtered: 0.0.0.0/0 is a default route, not allowed from peer 198.18.0.1",
        ]
    );
    assert_eq!(out.changes.len(), 1);
    let best = rib.route(net("198.18.66.0/24")).unwrap().best();
    assert_eq!(
        best.attrs.local_pref, 150,
        "eBGP gets the configured preference"
    );

    // the same prefix again, now with our AS in the path: rejected, and the old route goes
    let looped = update_v4(&[65001, LOCAL_AS], "198.18.0.1", &["198.18.66.0/24"]);
    let out = rib.apply_update(a, &looped, &pol, true).unwrap();
    assert_eq!(
        out.rejected[0].reason,
        RejectReason::AsPathLoop { asn: LOCAL_AS }
    );
    assert_eq!(out.changes[0].kind(), ChangeKind::Removed);
    assert_eq!(rib.stats(), RibStats::default());
}

#[test]
fn import_handles_mp_reach_unreach_withdrawn_and_eor() {
    let mut rib = Rib::new(RibOptions::default());
    let b = rib.add_peer(i4()).unwrap();
    let pol = import_policy();
    let nh6 = Ipv6NextHop {
        global: "2001:db8::4".parse().unwrap(),
        link_local: Some("fe80::4".parse().unwrap()),
    };
    let u = Update {
        attrs: vec![
            PathAttr::new(Attr::Origin(Origin::Igp)),
            PathAttr::new(Attr::AsPath(AsPath::default())),
            PathAttr::new(Attr::NextHop(ip4("198.18.0.4"))),
            PathAttr::new(Attr::LocalPref(300)),
            PathAttr::new(Attr::MpReach(MpReach::Ipv6Unicast {
                next_hop: nh6,
                nlri: vec![Nlri::new("2001:db8:1000::/64".parse().unwrap())],
            })),
        ],
        nlri: vec![Nlri::new("198.18.70.0/24".parse().unwrap())],
        ..Update::default()
    };
    let out = rib.apply_update(b, &u, &pol, true).unwrap();
    assert_eq!((out.accepted, out.rejected.len()), (2, 0));
    let r6 = rib.route(net("2001:db8:1000::/64")).unwrap();
    assert_eq!(r6.best().attrs.next_hop, NextHop::Ipv6(nh6));
    assert_eq!(r6.best().attrs.local_pref, 300, "iBGP keeps LOCAL_PREF");
    assert_eq!(
        rib.route(net("198.18.70.0/24"))
            .unwrap()
            .best()
            .attrs
            .next_hop,
        NextHop::Ipv4(ip4("198.18.0.4"))
    );

    let w = Update {
        withdrawn: vec![Nlri::new("198.18.70.0/24".parse().unwrap())],
        attrs: vec![PathAttr::new(Attr::MpUnreach(MpUnreach::Ipv6Unicast(
            vec![Nlri::new("2001:db8:1000::/64".parse().unwrap())],
        )))],
        ..Update::default()
    };
    let out = rib.apply_update(b, &w, &pol, true).unwrap();
    assert_eq!((out.withdrawn, out.changes.len()), (2, 2));
    assert_eq!(rib.stats(), RibStats::default());

    for f in [AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast] {
        let out = rib
            .apply_update(b, &Update::end_of_rib(f), &pol, true)
            .unwrap();
        assert_eq!(out.end_of_rib, Some(f));
    }
}

#[test]
fn import_treat_as_withdraw_from_real_bytes() {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(e1()).unwrap();
    let pol = import_policy();
    rib.apply_update(
        a,
        &update_v4(&[65001], "198.18.0.1", &["198.18.66.0/24"]),
        &pol,
        true,
    )
    .unwrap();
    // ORIGIN 5 is undefined: RFC 7606 §7.1 treat-as-withdraw
    let body = [
        0, 0, // withdrawn length
        0, 20, // attributes length
        0x40, 1, 1, 5, // ORIGIN 5
        0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9, // AS_PATH [65001] (4-octet)
        0x40, 3, 4, 198, 18, 0, 1, // NEXT_HOP
        24, 198, 18, 66, // NLRI
    ];
    let cx = DecodeCx {
        four_octet_as: true,
        ebgp: true,
        ..DecodeCx::default()
    };
    let u = Update::decode_body(&body, &cx).unwrap();
    let out = rib.apply_update(a, &u, &pol, true).unwrap();
    assert!(out.treat_as_withdraw);
    assert_eq!(out.changes[0].kind(), ChangeKind::Removed);
    assert_eq!(rib.stats().ipv4_prefixes, 0);
}

#[test]
fn import_merges_as4_path_from_two_octet_peers() {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(peer("198.18.0.1", 23456)).unwrap();
    let mut pol = import_policy();
    pol.enforce_first_as = false;
    let mut u = update_v4(&[23456, 65009], "198.18.0.1", &["198.18.66.0/24"]);
    u.attrs.push(PathAttr::new(Attr::As4Path(AsPath::sequence([
        4_200_000_001,
        65009,
    ]))));
    rib.apply_update(a, &u, &pol, false).unwrap();
    let r = rib.route(net("198.18.66.0/24")).unwrap();
    assert_eq!(
        r.best().attrs.as_path,
        AsPath::sequence([4_200_000_001, 65009])
    );
}

#[test]
fn max_prefix_cease_and_warning() {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(e1()).unwrap();
    let mut pol = import_policy();
    pol.max_prefix = Some(MaxPrefix {
        limit: 2,
        warning_only: false,
    });
    let two = update_v4(
        &[65001],
        "198.18.0.1",
        &["198.18.66.0/24", "198.18.67.0/24"],
    );
    let out = rib.apply_update(a, &two, &pol, true).unwrap();
    assert_eq!(out.max_prefix, None);
    // re-announcing what is held does not count
    let out = rib.apply_update(a, &two, &pol, true).unwrap();
    assert_eq!(out.max_prefix, None);
    let third = update_v4(&[65001], "198.18.0.1", &["198.18.68.0/24"]);
    let out = rib.apply_update(a, &third, &pol, true).unwrap();
    let Some(MaxPrefixEvent::Exceeded {
        family,
        limit,
        count,
        notification,
    }) = out.max_prefix
    else {
        panic!("no cease: {:?}", out.max_prefix)
    };
    assert_eq!((family, limit, count), (AfiSafi::Ipv4Unicast, 2, 3));
    assert_eq!(notification.code.to_pair(), (6, 1));
    assert_eq!(notification.data, [0, 1, 1, 0, 0, 0, 2]);
    assert_eq!(rib.peer_routes(a, AfiSafi::Ipv4Unicast), 2, "not applied");

    pol.max_prefix = Some(MaxPrefix {
        limit: 2,
        warning_only: true,
    });
    let out = rib.apply_update(a, &third, &pol, true).unwrap();
    assert_eq!(
        out.max_prefix,
        Some(MaxPrefixEvent::Warning {
            family: AfiSafi::Ipv4Unicast,
            limit: 2,
            count: 3,
            crossed: true
        })
    );
    assert_eq!(rib.peer_routes(a, AfiSafi::Ipv4Unicast), 3);
}

/// The memory budget: announcing then withdrawing a million prefixes leaves every internal
/// structure empty (the UPDATE flood of issue 8 returns to baseline).
#[test]
fn million_prefixes_announced_and_withdrawn_leave_nothing() {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(e1()).unwrap();
    let b = rib.add_peer(e2()).unwrap();
    let prefix = |i: u32| IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(i << 8), 24).unwrap());
    const N: u32 = 1_000_000;
    for chunk in 0..(N / 1000) {
        let set = chunk % 4;
        let ps = (chunk * 1000..(chunk + 1) * 1000).map(prefix);
        rib.announce(
            a,
            RouteAttrs {
                med: Some(set),
                ..attrs(&[65001], "198.18.0.1")
            },
            ps,
        )
        .unwrap();
    }
    // a second peer on a tenth of them: multi-path destinations
    rib.announce(b, attrs(&[65001], "198.18.0.2"), (0..N / 10).map(prefix))
        .unwrap();
    let s = rib.stats();
    assert_eq!(
        (s.ipv4_prefixes, s.paths, s.attr_sets, s.multi_path_slots),
        (N as usize, (N + N / 10) as u64, 5, (N / 10) as usize)
    );
    rib.withdraw(b, (0..N / 10).map(prefix));
    rib.withdraw(a, (0..N).map(prefix));
    assert_eq!(rib.stats(), RibStats::default());
    assert!(rib.v4.dests.is_empty());
    assert_eq!(rib.v4.multi.in_use(), 0);
    assert!(rib.attrs.is_empty());
    assert_eq!(rib.attrs.total_refs(), 0);
    assert_eq!(
        (
            rib.peer_routes(a, AfiSafi::Ipv4Unicast),
            rib.peer_routes(b, AfiSafi::Ipv4Unicast)
        ),
        (0, 0)
    );
}
