//! Property tests of the RIB and the FIB diff.
//!
//! - Random sequences of announce / withdraw / flush / mark-stale / sweep / option changes from
//!   several peers: after every step the Loc-RIB equals a brute-force recomputation (the
//!   decision process run from scratch over a plain model of all Adj-RIB-Ins), the reported
//!   changes are exactly the prefixes whose best path or multipath set differ, each change's
//!   `old` is what the previous changes said, and counters and the attribute store agree with
//!   the model. At the end everything is flushed and the RIB is empty.
//! - The decision does not depend on the order of the candidates.
//! - FIB: the ops of `diff(desired, current)` applied to a simulated kernel give `desired` for
//!   our protocol and table and leave every other route untouched.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use bgpd::fib::{
    self, Desired, DiffMode, FibConfig, FibNextHop, FibOp, KernelRoute, RT_TABLE_MAIN, RTPROT_BGP,
};
use bgpd::rib::{
    BestPathReason, Candidate, PeerId, PeerInfo, Rib, RibOptions, RibStats, RouteAttrs, decide,
};
use bgpd::wire::{AfiSafi, AsPath, Ipv6NextHop, NextHop, Origin};
use ipnet::IpNet;
use proptest::prelude::*;

const LOCAL_AS: u32 = 65000;

fn peers() -> Vec<PeerInfo> {
    [
        ("198.18.0.1", 65001),
        ("198.18.0.2", 65001),
        ("198.18.0.3", 65002),
        ("198.18.0.4", LOCAL_AS),
        ("198.18.0.5", LOCAL_AS),
    ]
    .iter()
    .map(|(a, asn)| PeerInfo {
        address: a.parse().unwrap(),
        asn: *asn,
        local_as: LOCAL_AS,
        router_id: a.parse().unwrap(),
        ifindex: None,
    })
    .collect()
}

const PREFIXES: [&str; 9] = [
    "198.18.64.0/24",
    "198.18.65.0/24",
    "198.18.66.0/24",
    "198.18.67.0/24",
    "198.18.64.0/18",
    "198.18.68.0/25",
    "2001:db8:64::/64",
    "2001:db8:65::/64",
    "2001:db8::/48",
];

fn prefix(i: usize) -> IpNet {
    PREFIXES[i].parse().unwrap()
}

const SETS: usize = 8;

/// Attribute set `set` as sent by `peer` for the family of `p`: the first AS is the peer's
/// (eBGP) or one of two outside ASes (iBGP), so MED groups and multipath get exercised.
fn attrs(peer: &PeerInfo, set: usize, p: &IpNet) -> RouteAttrs {
    let first = if peer.asn != LOCAL_AS {
        peer.asn
    } else {
        65001 + (set as u32 % 2)
    };
    let mut path = vec![first];
    if set % 4 == 3 {
        path.push(65010);
    }
    let next_hop = match p {
        IpNet::V4(_) => match peer.address {
            IpAddr::V4(a) => NextHop::Ipv4(a),
            IpAddr::V6(_) => unreachable!(),
        },
        IpNet::V6(_) => NextHop::Ipv6(Ipv6NextHop {
            global: format!("2001:db8::{}", set + 1).parse().unwrap(),
            link_local: None,
        }),
    };
    RouteAttrs {
        origin: if set == 5 {
            Origin::Incomplete
        } else {
            Origin::Igp
        },
        as_path: AsPath::sequence(path),
        next_hop,
        med: [None, Some(5), Some(10), None][set % 4],
        local_pref: if set == 6 { 200 } else { 100 },
        communities: vec![],
        large_communities: vec![],
        originator_id: (set == 7).then(|| Ipv4Addr::new(198, 18, 1, 1)),
        cluster_list: vec![],
        other: vec![],
    }
}

#[derive(Debug, Clone)]
enum Op {
    Announce {
        peer: usize,
        set: usize,
        prefixes: Vec<usize>,
    },
    Withdraw {
        peer: usize,
        prefixes: Vec<usize>,
    },
    Flush {
        peer: usize,
        family: Option<AfiSafi>,
    },
    MarkStale {
        peer: usize,
        family: Option<AfiSafi>,
    },
    Sweep {
        peer: usize,
        family: Option<AfiSafi>,
    },
    Options(RibOptions),
}

fn family() -> impl Strategy<Value = Option<AfiSafi>> {
    prop_oneof![
        Just(None),
        Just(Some(AfiSafi::Ipv4Unicast)),
        Just(Some(AfiSafi::Ipv6Unicast))
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let prefixes = || proptest::collection::vec(0..PREFIXES.len(), 1..5);
    prop_oneof![
        6 => (0..5usize, 0..SETS, prefixes()).prop_map(|(peer, set, prefixes)| Op::Announce { peer, set, prefixes }),
        3 => (0..5usize, prefixes()).prop_map(|(peer, prefixes)| Op::Withdraw { peer, prefixes }),
        1 => (0..5usize, family()).prop_map(|(peer, family)| Op::Flush { peer, family }),
        1 => (0..5usize, family()).prop_map(|(peer, family)| Op::MarkStale { peer, family }),
        1 => (0..5usize, family()).prop_map(|(peer, family)| Op::Sweep { peer, family }),
        1 => (any::<bool>(), 1..4u8, any::<bool>()).prop_map(|(m, n, r)| Op::Options(RibOptions {
            always_compare_med: m,
            max_paths: n,
            multipath_relax: r,
        })),
    ]
}

/// The plain model: (peer, prefix) -> (attribute set, stale).
type Model = BTreeMap<(usize, usize), (usize, bool)>;

fn fam(p: &IpNet) -> AfiSafi {
    match p {
        IpNet::V4(_) => AfiSafi::Ipv4Unicast,
        IpNet::V6(_) => AfiSafi::Ipv6Unicast,
    }
}

/// Brute force: prefix -> [(peer, attrs)] of the multipath set, best first.
fn loc_rib(model: &Model, opts: &RibOptions) -> BTreeMap<IpNet, Vec<(usize, RouteAttrs)>> {
    let ps = peers();
    let mut out = BTreeMap::new();
    for i in 0..PREFIXES.len() {
        let p = prefix(i);
        let paths: Vec<(usize, RouteAttrs)> = model
            .iter()
            .filter(|((_, q), _)| *q == i)
            .map(|((peer, _), (set, _))| (*peer, attrs(&ps[*peer], *set, &p)))
            .collect();
        let cands: Vec<Candidate> = paths
            .iter()
            .map(|(peer, a)| Candidate {
                peer: PeerId(*peer as u16),
                info: &ps[*peer],
                attrs: a,
            })
            .collect();
        if let Some(d) = decide(&cands, opts) {
            out.insert(p, d.multipath.iter().map(|&k| paths[k].clone()).collect());
        }
    }
    out
}

fn apply_model(model: &mut Model, op: &Op) {
    let in_fam = |i: usize, f: &Option<AfiSafi>| f.is_none_or(|f| f == fam(&prefix(i)));
    match op {
        Op::Announce {
            peer,
            set,
            prefixes,
        } => {
            for &i in prefixes {
                model.insert((*peer, i), (*set, false));
            }
        }
        Op::Withdraw { peer, prefixes } => {
            for &i in prefixes {
                model.remove(&(*peer, i));
            }
        }
        Op::Flush { peer, family } => model.retain(|(p, i), _| !(p == peer && in_fam(*i, family))),
        Op::MarkStale { peer, family } => {
            for ((p, i), (_, stale)) in model.iter_mut() {
                if p == peer && in_fam(*i, family) {
                    *stale = true;
                }
            }
        }
        Op::Sweep { peer, family } => {
            model.retain(|(p, i), (_, stale)| !(p == peer && in_fam(*i, family) && *stale))
        }
        Op::Options(_) => {}
    }
}

fn apply_rib(rib: &mut Rib, ids: &[PeerId], op: &Op) -> Vec<bgpd::rib::Change> {
    let ps = peers();
    match op {
        Op::Announce {
            peer,
            set,
            prefixes,
        } => {
            // one call per family, as an UPDATE carries one next hop per family
            let mut changes = Vec::new();
            for v6 in [false, true] {
                let these: Vec<IpNet> = prefixes
                    .iter()
                    .map(|&i| prefix(i))
                    .filter(|p| matches!(p, IpNet::V6(_)) == v6)
                    .collect();
                if let Some(p) = these.first() {
                    let a = attrs(&ps[*peer], *set, p);
                    changes.extend(rib.announce(ids[*peer], a, these).unwrap());
                }
            }
            changes
        }
        Op::Withdraw { peer, prefixes } => {
            rib.withdraw(ids[*peer], prefixes.iter().map(|&i| prefix(i)))
        }
        Op::Flush { peer, family } => rib.flush(ids[*peer], *family),
        Op::MarkStale { peer, family } => {
            rib.mark_stale(ids[*peer], *family);
            Vec::new()
        }
        Op::Sweep { peer, family } => rib.sweep_stale(ids[*peer], *family),
        Op::Options(o) => rib.set_options(*o),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn loc_rib_matches_brute_force(ops in proptest::collection::vec(op(), 1..60)) {
        let ps = peers();
        let mut opts = RibOptions::default();
        let mut rib = Rib::new(opts);
        let ids: Vec<PeerId> = ps.iter().map(|p| rib.add_peer(p.clone()).unwrap()).collect();
        let mut model = Model::new();
        let mut mirror: BTreeMap<IpNet, (PeerId, RouteAttrs, u8)> = BTreeMap::new();
        for op in &ops {
            let before = loc_rib(&model, &opts);
            apply_model(&mut model, op);
            if let Op::Options(o) = op {
                opts = *o;
            }
            let after = loc_rib(&model, &opts);
            let changes = apply_rib(&mut rib, &ids, op);

            // the changes are exactly the prefixes whose multipath set (best first) changed
            let changed: BTreeSet<IpNet> = changes.iter().map(|c| c.prefix).collect();
            prop_assert_eq!(changed.len(), changes.len(), "one change per prefix: {:?}", changes);
            let differ: BTreeSet<IpNet> = before
                .keys()
                .chain(after.keys())
                .filter(|p| before.get(p) != after.get(p))
                .copied()
                .collect();
            prop_assert_eq!(&changed, &differ, "op {:?}", op);
            // each change starts where the previous ones left off
            for c in &changes {
                let old = c.old.as_ref().map(|s| (s.peer, (*s.attrs).clone(), s.multipath));
                prop_assert_eq!(mirror.get(&c.prefix).cloned(), old, "{:?}", c);
                match &c.new {
                    Some(s) => mirror.insert(c.prefix, (s.peer, (*s.attrs).clone(), s.multipath)),
                    None => mirror.remove(&c.prefix),
                };
            }

            // the Loc-RIB itself
            for i in 0..PREFIXES.len() {
                let p = prefix(i);
                let want = after.get(&p);
                let got = rib.route(p);
                prop_assert_eq!(got.is_some(), want.is_some(), "{}", p);
                let (Some(got), Some(want)) = (got, want) else { continue };
                let got_mp: Vec<(usize, RouteAttrs)> = got
                    .multipath()
                    .map(|v| (v.peer.0 as usize, (**v.attrs).clone()))
                    .collect();
                prop_assert_eq!(&got_mp, want, "{}", p);
                let m = mirror.get(&p).unwrap();
                prop_assert_eq!((m.0.0 as usize, &m.1, m.2 as usize), (want[0].0, &want[0].1, want.len()));
                // every Adj-RIB-In entry, with its stale flag
                let mut paths: Vec<(usize, bool)> = got.paths().map(|v| (v.peer.0 as usize, v.stale)).collect();
                paths.sort();
                let model_paths: Vec<(usize, bool)> = model
                    .iter()
                    .filter(|((_, q), _)| *q == i)
                    .map(|((peer, _), (_, stale))| (*peer, *stale))
                    .collect();
                prop_assert_eq!(paths, model_paths);
                // the reason names the runner-up's values consistently
                let d = got.explain();
                prop_assert_eq!(d.best, 0);
                prop_assert_eq!(d.runner_up.is_none(), d.reason == BestPathReason::OnlyPath);
            }
            prop_assert_eq!(mirror.len(), after.len());

            // counters and the attribute store
            for (k, id) in ids.iter().enumerate() {
                for f in [AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast] {
                    let held = model.iter().filter(|((p, i), _)| *p == k && fam(&prefix(*i)) == f);
                    let stale = held.clone().filter(|(_, (_, s))| *s).count() as u64;
                    prop_assert_eq!(rib.peer_routes(*id, f), held.count() as u64);
                    prop_assert_eq!(rib.peer_stale(*id, f), stale);
                }
            }
            let distinct: HashSet<RouteAttrs> = model
                .iter()
                .map(|((peer, i), (set, _))| attrs(&ps[*peer], *set, &prefix(*i)))
                .collect();
            let s = rib.stats();
            prop_assert_eq!(s.paths, model.len() as u64);
            prop_assert_eq!(s.attr_sets, distinct.len());
        }
        for id in &ids {
            rib.remove_peer(*id);
        }
        prop_assert_eq!(rib.stats(), RibStats::default());
    }

    #[test]
    fn decision_does_not_depend_on_candidate_order(
        cands in proptest::collection::btree_map(0..5usize, 0..SETS, 1..6),
        v6 in any::<bool>(),
        rotate in 0..5usize,
        relax in any::<bool>(),
        med in any::<bool>(),
    ) {
        let ps = peers();
        let p = prefix(if v6 { 6 } else { 0 });
        let opts = RibOptions { always_compare_med: med, max_paths: 3, multipath_relax: relax };
        let list: Vec<(usize, RouteAttrs)> = cands.iter().map(|(peer, set)| (*peer, attrs(&ps[*peer], *set, &p))).collect();
        let run = |order: &[(usize, RouteAttrs)]| {
            let c: Vec<Candidate> = order
                .iter()
                .map(|(peer, a)| Candidate { peer: PeerId(*peer as u16), info: &ps[*peer], attrs: a })
                .collect();
            let d = decide(&c, &opts).unwrap();
            let mp: Vec<usize> = d.multipath.iter().map(|&i| order[i].0).collect();
            (order[d.best].0, d.runner_up.map(|i| order[i].0), d.reason, mp)
        };
        let mut other = list.clone();
        other.reverse();
        let n = other.len();
        other.rotate_left(rotate % n);
        prop_assert_eq!(run(&list), run(&other));
    }
}

// ---- FIB ----

const FIB_PREFIXES: [&str; 6] = [
    "198.18.64.0/24",
    "198.18.65.0/24",
    "198.18.66.0/24",
    "198.18.67.0/24",
    "2001:db8:64::/64",
    "2001:db8:65::/64",
];

fn fib_prefix(i: usize) -> IpNet {
    FIB_PREFIXES[i].parse().unwrap()
}

fn gw(p: &IpNet, k: u8) -> IpAddr {
    match p {
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::new(198, 18, 0, k)),
        IpNet::V6(_) => format!("2001:db8::{k}").parse().unwrap(),
    }
}

fn next_hops(p: &IpNet, gws: &BTreeSet<u8>, dev: Option<u32>) -> Vec<FibNextHop> {
    gws.iter()
        .map(|k| FibNextHop {
            gateway: gw(p, *k),
            ifindex: dev,
            weight: 1,
        })
        .collect()
}

type Kernel = BTreeMap<(u32, IpNet, u32), KernelRoute>;

/// Kernel semantics of the ops: add fails if the key exists, replace and delete need the key
/// to exist and (for our safety claim) to be ours.
fn apply_ops(kernel: &mut Kernel, ops: &[FibOp], cfg: &FibConfig) -> Result<(), String> {
    for op in ops {
        let r = op.route();
        let key = (r.table, r.prefix, r.metric);
        match op {
            FibOp::Add(r) => {
                if let Some(e) = kernel.get(&key) {
                    return Err(format!("add over an existing route {e:?}"));
                }
                kernel.insert(key, r.clone());
            }
            FibOp::Replace(r) | FibOp::Delete(r) => {
                match kernel.get(&key) {
                    Some(e) if e.protocol == cfg.protocol => {}
                    other => return Err(format!("{op:?} on {other:?}")),
                }
                if matches!(op, FibOp::Replace(_)) {
                    kernel.insert(key, r.clone());
                } else {
                    kernel.remove(&key);
                }
            }
        }
    }
    Ok(())
}

fn kernel_entry() -> impl Strategy<Value = (usize, u32, u8, u32, BTreeSet<u8>)> {
    (
        0..FIB_PREFIXES.len(),
        prop_oneof![Just(RT_TABLE_MAIN), Just(100u32)],
        prop_oneof![Just(RTPROT_BGP), Just(4u8), Just(2u8)],
        prop_oneof![Just(20u32), Just(32), Just(1024)],
        proptest::collection::btree_set(1..4u8, 1..3),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn fib_diff_applied_to_current_gives_desired(
        want in proptest::collection::btree_map(0..FIB_PREFIXES.len(), proptest::collection::btree_set(1..4u8, 1..3), 0..6),
        current in proptest::collection::vec(kernel_entry(), 0..12),
        family in family(),
    ) {
        let cfg = FibConfig::default();
        let desired: Desired = want
            .iter()
            .map(|(i, gws)| (fib_prefix(*i), next_hops(&fib_prefix(*i), gws, None)))
            .collect();
        let mut kernel = Kernel::new();
        for (i, table, proto, metric, gws) in current {
            let p = fib_prefix(i);
            kernel.insert((table, p, metric), KernelRoute {
                prefix: p,
                table,
                protocol: proto,
                metric,
                next_hops: next_hops(&p, &gws, Some(3)),
            });
        }
        let dump: Vec<KernelRoute> = kernel.values().cloned().collect();
        let plan = fib::diff(&desired, &dump, &cfg, family, DiffMode::Full);
        let before = kernel.clone();
        apply_ops(&mut kernel, &plan.ops, &cfg).map_err(TestCaseError::fail)?;

        let in_family = |p: &IpNet| family.is_none_or(|f| f == fam(p));
        let ours = |r: &KernelRoute| r.table == cfg.table && r.protocol == cfg.protocol;
        // every route that is not ours, or outside the family, is untouched
        let untouched = |k: &Kernel| -> Vec<KernelRoute> {
            k.values().filter(|r| !ours(r) || !in_family(&r.prefix)).cloned().collect()
        };
        prop_assert_eq!(untouched(&kernel), untouched(&before));
        // ours in the family: exactly the desired routes, except those blocked by a conflict
        let blocked: BTreeSet<IpNet> = plan.conflicts.iter().map(|c| c.wanted.prefix).collect();
        for c in &plan.conflicts {
            prop_assert!(c.existing.protocol != cfg.protocol);
            prop_assert_eq!((c.existing.table, c.existing.metric), (cfg.table, cfg.metric));
        }
        let got: BTreeMap<IpNet, Vec<IpAddr>> = kernel
            .values()
            .filter(|r| ours(r) && in_family(&r.prefix))
            .map(|r| {
                prop_assert_eq!(r.metric, cfg.metric);
                Ok((r.prefix, r.next_hops.iter().map(|n| n.gateway).collect()))
            })
            .collect::<Result<_, TestCaseError>>()?;
        let expect: BTreeMap<IpNet, Vec<IpAddr>> = desired
            .iter()
            .filter(|(p, _)| in_family(p) && !blocked.contains(p))
            .map(|(p, n)| (*p, n.iter().map(|n| n.gateway).collect()))
            .collect();
        prop_assert_eq!(got, expect);
        // and a second diff finds nothing left to do
        let dump: Vec<KernelRoute> = kernel.values().cloned().collect();
        let again = fib::diff(&desired, &dump, &cfg, family, DiffMode::Full);
        prop_assert!(again.ops.is_empty(), "{:?}", again.ops);
    }
}
