//! Tests of the FIB diff: add / replace / delete, foreign routes untouched, conflicts, metric
//! changes, IPv6 ECMP dumps, next hop choice, startup and graceful-restart sweep.

use super::*;
use crate::rib::tests::{attrs, peer};
use crate::rib::{RibOptions, RouteAttrs};
use crate::wire::Ipv6NextHop;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn nh(gw: &str, dev: Option<u32>) -> FibNextHop {
    FibNextHop {
        gateway: gw.parse().unwrap(),
        ifindex: dev,
        weight: 1,
    }
}

fn kr(prefix: &str, table: u32, protocol: u8, metric: u32, nhs: &[FibNextHop]) -> KernelRoute {
    KernelRoute {
        prefix: net(prefix),
        table,
        protocol,
        metric,
        next_hops: nhs.to_vec(),
    }
}

const BGP: u8 = RTPROT_BGP;
const STATIC: u8 = 4; // RTPROT_STATIC
const KERNEL: u8 = 2; // RTPROT_KERNEL
const MAIN: u32 = RT_TABLE_MAIN;

fn ours(prefix: &str, nhs: &[FibNextHop]) -> KernelRoute {
    kr(prefix, MAIN, BGP, 20, nhs)
}

/// Show ops the way `ip route` would be invoked, for readable assertions.
fn show(ops: &[FibOp]) -> Vec<String> {
    ops.iter()
        .map(|op| {
            let (verb, r) = match op {
                FibOp::Add(r) => ("add", r),
                FibOp::Replace(r) => ("replace", r),
                FibOp::Delete(r) => ("del", r),
            };
            let mut s = format!("{verb} {} metric {}", r.prefix, r.metric);
            for n in &r.next_hops {
                s += &format!(" via {}", n.gateway);
            }
            s
        })
        .collect()
}

#[test]
fn diff_table() {
    let cfg = FibConfig::default();
    let mut desired = Desired::new();
    desired.insert(net("198.18.65.0/24"), vec![nh("198.18.0.1", None)]); // new
    desired.insert(
        net("198.18.66.0/24"),
        vec![nh("198.18.0.1", None), nh("198.18.0.2", None)],
    ); // next hops change
    desired.insert(net("198.18.67.0/24"), vec![nh("198.18.0.1", Some(3))]); // unchanged
    desired.insert(net("198.18.68.0/24"), vec![nh("198.18.0.1", None)]); // foreign at our metric
    desired.insert(net("198.18.69.0/24"), vec![nh("198.18.0.1", None)]); // ours at an old metric
    desired.insert(net("198.18.71.0/24"), vec![nh("198.18.0.1", None)]); // foreign, other metric
    let current = vec![
        ours("198.18.66.0/24", &[nh("198.18.0.1", Some(3))]),
        ours("198.18.67.0/24", &[nh("198.18.0.1", Some(3))]),
        kr(
            "198.18.68.0/24",
            MAIN,
            STATIC,
            20,
            &[nh("198.18.0.9", Some(3))],
        ),
        kr(
            "198.18.69.0/24",
            MAIN,
            BGP,
            32,
            &[nh("198.18.0.1", Some(3))],
        ),
        ours("198.18.70.0/24", &[nh("198.18.0.1", Some(3))]), // no longer wanted
        kr(
            "198.18.71.0/24",
            MAIN,
            STATIC,
            100,
            &[nh("198.18.0.9", Some(3))],
        ),
        kr("198.18.72.0/24", MAIN, KERNEL, 0, &[]), // foreign, not wanted: untouched
        kr("198.18.70.0/24", 100, BGP, 20, &[nh("198.18.0.1", Some(3))]), // other table
    ];
    let plan = diff(&desired, &current, &cfg, None, DiffMode::Full);
    assert_eq!(
        show(&plan.ops),
        [
            "add 198.18.65.0/24 metric 20 via 198.18.0.1",
            "replace 198.18.66.0/24 metric 20 via 198.18.0.1 via 198.18.0.2",
            "add 198.18.69.0/24 metric 20 via 198.18.0.1",
            "add 198.18.71.0/24 metric 20 via 198.18.0.1",
            "del 198.18.69.0/24 metric 32 via 198.18.0.1",
            "del 198.18.70.0/24 metric 20 via 198.18.0.1",
        ]
    );
    assert!(
        plan.ops
            .iter()
            .all(|op| op.route().protocol == BGP && op.route().table == MAIN)
    );
    assert_eq!(plan.conflicts.len(), 1);
    assert_eq!(plan.conflicts[0].existing.protocol, STATIC);
    assert_eq!(plan.conflicts[0].wanted.prefix, net("198.18.68.0/24"));

    // KeepStale: the unwanted route of ours stays
    let plan = diff(&desired, &current, &cfg, None, DiffMode::KeepStale);
    assert_eq!(plan.kept_stale, vec![current[4].clone()]);
    assert!(!show(&plan.ops).iter().any(|s| s.contains("198.18.70.0")));

    // family restriction
    let plan = diff(
        &desired,
        &current,
        &cfg,
        Some(AfiSafi::Ipv6Unicast),
        DiffMode::Full,
    );
    assert_eq!(plan, FibPlan::default());
}

#[test]
fn ipv6_ecmp_dumped_per_next_hop_is_one_route() {
    let cfg = FibConfig::default();
    let mut desired = Desired::new();
    desired.insert(
        net("2001:db8:66::/64"),
        vec![nh("2001:db8::1", None), nh("2001:db8::2", None)],
    );
    let current = vec![
        ours("2001:db8:66::/64", &[nh("2001:db8::2", Some(3))]),
        ours("2001:db8:66::/64", &[nh("2001:db8::1", Some(3))]),
    ];
    assert_eq!(
        diff(&desired, &current, &cfg, None, DiffMode::Full),
        FibPlan::default()
    );
}

#[test]
fn next_hops_of_multipath_routes() {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(peer("198.18.0.1", 65001)).unwrap();
    let b = rib.add_peer(peer("198.18.0.2", 65001)).unwrap();
    let p = net("198.18.66.0/24");
    rib.announce(a, attrs(&[65001], "198.18.0.1"), [p]).unwrap();
    rib.announce(b, attrs(&[65001], "198.18.0.2"), [p]).unwrap();
    let connected = Connected(vec![(net("198.18.0.0/24"), 3), (net("198.18.0.0/16"), 9)]);
    let want = vec![nh("198.18.0.1", Some(3)), nh("198.18.0.2", Some(3))];
    assert_eq!(next_hops(&rib.route(p).unwrap(), &connected), want);
    assert_eq!(desired(&rib, &connected).get(&p), Some(&want));

    // IPv6: global when on a connected network, else link-local over the session's device
    let mut rib = Rib::new(RibOptions::default());
    let c = rib
        .add_peer(crate::rib::PeerInfo {
            address: "fe80::3".parse().unwrap(),
            ifindex: Some(7),
            ..peer("198.18.0.3", 65001)
        })
        .unwrap();
    let six = |global: &str| RouteAttrs {
        next_hop: NextHop::Ipv6(Ipv6NextHop {
            global: global.parse().unwrap(),
            link_local: Some("fe80::3".parse().unwrap()),
        }),
        ..attrs(&[65001], "198.18.0.3")
    };
    let q = net("2001:db8:66::/64");
    rib.announce(c, six("2001:db8::3"), [q]).unwrap();
    let connected = Connected(vec![(net("2001:db8::/64"), 4)]);
    assert_eq!(
        next_hops(&rib.route(q).unwrap(), &connected),
        vec![nh("2001:db8::3", Some(4))]
    );
    assert_eq!(
        next_hops(&rib.route(q).unwrap(), &()),
        vec![nh("fe80::3", Some(7))]
    );
}

#[test]
fn startup_without_graceful_restart_deletes_only_our_routes() {
    let current = vec![
        ours("198.18.66.0/24", &[nh("198.18.0.1", Some(3))]),
        kr(
            "198.18.67.0/24",
            MAIN,
            STATIC,
            20,
            &[nh("198.18.0.9", Some(3))],
        ),
        kr("198.18.68.0/24", 100, BGP, 20, &[nh("198.18.0.9", Some(3))]),
    ];
    let (sync, ops) = FibSync::start(FibConfig::default(), &current, false);
    assert_eq!(show(&ops), ["del 198.18.66.0/24 metric 20 via 198.18.0.1"]);
    assert_eq!(sync.stale_count(), 0);
}

#[test]
fn graceful_restart_keeps_replaces_and_sweeps() {
    let cfg = FibConfig::default();
    let current = vec![
        ours("198.18.66.0/24", &[nh("198.18.0.1", Some(3))]),
        ours("198.18.67.0/24", &[nh("198.18.0.1", Some(3))]),
        ours("2001:db8:66::/64", &[nh("2001:db8::1", Some(3))]),
        kr(
            "198.18.68.0/24",
            MAIN,
            STATIC,
            20,
            &[nh("198.18.0.9", Some(3))],
        ),
    ];
    let (mut sync, ops) = FibSync::start(cfg, &current, true);
    assert!(ops.is_empty(), "routes keep forwarding: {ops:?}");
    assert_eq!(sync.stale_count(), 3);

    // the peer comes back and re-announces one prefix and a new one
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(peer("198.18.0.1", 65001)).unwrap();
    let changes = rib
        .announce(
            a,
            attrs(&[65001], "198.18.0.1"),
            [net("198.18.66.0/24"), net("198.18.70.0/24")],
        )
        .unwrap();
    let ops = sync.apply(&rib, &changes, &());
    assert_eq!(
        show(&ops),
        [
            "replace 198.18.66.0/24 metric 20 via 198.18.0.1",
            "add 198.18.70.0/24 metric 20 via 198.18.0.1",
        ]
    );
    assert_eq!(sync.stale_count(), 2);
    // End-of-RIB for IPv4: the stale IPv4 route that was not re-learned goes
    assert_eq!(
        show(&sync.sweep(Some(AfiSafi::Ipv4Unicast))),
        ["del 198.18.67.0/24 metric 20"]
    );
    assert_eq!(sync.stale_count(), 1);
    assert_eq!(show(&sync.sweep(None)), ["del 2001:db8:66::/64 metric 20"]);
    assert!(sync.sweep(None).is_empty());

    // withdrawn later: deleted
    let changes = rib.withdraw(a, [net("198.18.66.0/24")]);
    assert_eq!(
        show(&sync.apply(&rib, &changes, &())),
        ["del 198.18.66.0/24 metric 20"]
    );
}

#[test]
fn a_batch_that_adds_and_removes_a_prefix_gives_no_op() {
    let mut rib = Rib::new(RibOptions::default());
    let a = rib.add_peer(peer("198.18.0.1", 65001)).unwrap();
    let (mut sync, _) = FibSync::start(FibConfig::default(), &[], true);
    let p = net("198.18.66.0/24");
    let mut changes = rib.announce(a, attrs(&[65001], "198.18.0.1"), [p]).unwrap();
    changes.extend(rib.withdraw(a, [p]));
    assert!(sync.apply(&rib, &changes, &()).is_empty());
}
