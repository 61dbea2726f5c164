//! The FIB, pure half: the kernel routes the Loc-RIB wants, and the operations that bring the
//! kernel there. The netlink half ([`netlink`]) dumps `current` and executes [`FibOp`]s.
//!
//! ```text
//!   Rib ──desired(rib, resolver)──> Desired: prefix → next hops (gateway, device, weight)
//!   Desired + kernel dump ──diff(.., DiffMode)──> FibPlan { ops, kept_stale, conflicts }
//!   Vec<Change> ──FibSync::apply──> ops        (incremental, one UPDATE at a time)
//!   startup: FibSync::start(dump, graceful)    graceful: our kernel routes stay, marked stale
//!   End-of-RIB: FibSync::sweep(family)         delete stale routes that were not re-learned
//! ```
//!
//! Ownership (complaint D of the reference notes: one owner of kernel routes, no private
//! cache that can drift): bgpd's routes are exactly the routes with our protocol
//! (`proto bgp`, RTPROT_BGP 186) in our table. Routes of any other protocol or table are never
//! the subject of an op; a foreign route occupying the same prefix and metric in our table is
//! reported as a conflict instead of being replaced (`ip route replace` would overwrite it).
//! No copy of the installed routes is kept: after startup only the set of stale prefixes is
//! (GR), and a periodic or post-error [`diff`] against a fresh dump repairs any divergence.
//!
//! Op semantics for the netlink half: `Add` = `ip route add` (NLM_F_CREATE|NLM_F_EXCL: fails
//! if anything holds the prefix and metric, and never appends a next hop to a foreign IPv6
//! route), `Replace` = `ip route replace` (NLM_F_CREATE|NLM_F_REPLACE) of a route we own,
//! `Delete` = `ip route del PREFIX proto bgp table T metric M`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::rib::{Change, PeerInfo, Rib, Route, RouteAttrs};
use crate::wire::{AfiSafi, NextHop};

#[cfg(feature = "daemon")]
pub mod netlink;
#[cfg(feature = "daemon")]
pub mod writer;

/// `RTPROT_BGP` (linux/rtnetlink.h), printed as `proto bgp` by `ip route`.
pub const RTPROT_BGP: u8 = 186;
/// `RT_TABLE_MAIN`.
pub const RT_TABLE_MAIN: u32 = 254;

/// Where and how bgpd installs routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FibConfig {
    /// Routing table (`table`), main by default.
    pub table: u32,
    /// Protocol (`proto`), RTPROT_BGP by default.
    pub protocol: u8,
    /// Metric (`metric`), 20 by default like FRR's zebra for eBGP.
    pub metric: u32,
}

impl Default for FibConfig {
    fn default() -> Self {
        Self {
            table: RT_TABLE_MAIN,
            protocol: RTPROT_BGP,
            metric: 20,
        }
    }
}

/// One next hop of a kernel route (`nexthop via GW dev DEV weight W`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FibNextHop {
    /// Gateway (`via`); an IPv6 one for IPv4 routes with RFC 8950 (`via inet6`).
    pub gateway: IpAddr,
    /// Output interface index (`dev`), when known; the kernel resolves it otherwise.
    pub ifindex: Option<u32>,
    /// ECMP weight (`weight`, 1..=256 as `ip` prints it).
    pub weight: u16,
}

/// A route as the kernel reports it (a dump of `ip route show table T`, one entry per
/// prefix and metric, ECMP next hops together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    /// Destination.
    pub prefix: IpNet,
    /// Table.
    pub table: u32,
    /// Protocol number.
    pub protocol: u8,
    /// Metric (priority).
    pub metric: u32,
    /// Next hops.
    pub next_hops: Vec<FibNextHop>,
}

/// A kernel operation (see the module documentation for the netlink flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibOp {
    /// Install a route the kernel does not have.
    Add(KernelRoute),
    /// Change the next hops of a route of ours.
    Replace(KernelRoute),
    /// Remove a route of ours.
    Delete(KernelRoute),
}

impl FibOp {
    /// The route.
    pub fn route(&self) -> &KernelRoute {
        match self {
            Self::Add(r) | Self::Replace(r) | Self::Delete(r) => r,
        }
    }
}

/// A prefix bgpd wants but cannot install: another protocol's route holds it at our metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// What we wanted.
    pub wanted: KernelRoute,
    /// What is there.
    pub existing: KernelRoute,
}

/// The outcome of [`diff`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FibPlan {
    /// Operations: adds and replaces first, then deletes, each in prefix order.
    pub ops: Vec<FibOp>,
    /// Our routes not wanted but kept ([`DiffMode::KeepStale`]).
    pub kept_stale: Vec<KernelRoute>,
    /// Wanted routes blocked by foreign routes.
    pub conflicts: Vec<Conflict>,
}

/// How [`diff`] treats routes of ours that the RIB does not want.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffMode {
    /// Delete them (reconciliation, the GR sweep, startup without GR).
    Full,
    /// Keep them as stale (startup with GR: they forward until re-learned or swept).
    KeepStale,
}

/// Resolves the device of a gateway (a connected network containing it).
pub trait Resolve {
    /// The interface index for `gateway`, if on a connected network.
    fn ifindex(&self, gateway: IpAddr) -> Option<u32>;
}

/// No device information: the kernel resolves gateways itself.
impl Resolve for () {
    fn ifindex(&self, _: IpAddr) -> Option<u32> {
        None
    }
}

/// Connected networks and their interfaces (from `ip -j addr`), longest match wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connected(pub Vec<(IpNet, u32)>);

impl Resolve for Connected {
    fn ifindex(&self, gateway: IpAddr) -> Option<u32> {
        self.0
            .iter()
            .filter(|(n, _)| n.contains(&gateway))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, i)| *i)
    }
}

fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// The kernel next hop of one path. An IPv6 next hop uses the global address when it is on a
/// connected network, else the link-local one over the session's interface (as zebra does for
/// unnumbered sessions).
pub fn path_next_hop(attrs: &RouteAttrs, peer: &PeerInfo, resolver: &dyn Resolve) -> FibNextHop {
    let (gateway, ifindex) = match attrs.next_hop {
        NextHop::Ipv4(a) => (IpAddr::V4(a), resolver.ifindex(IpAddr::V4(a))),
        NextHop::Ipv6(v6) => {
            let g = IpAddr::V6(v6.global);
            match (resolver.ifindex(g), v6.link_local, peer.ifindex) {
                _ if is_link_local(g) => (g, peer.ifindex),
                (Some(i), _, _) => (g, Some(i)),
                (None, Some(ll), Some(i)) => (IpAddr::V6(ll), Some(i)),
                (None, _, _) => (g, None),
            }
        }
    };
    FibNextHop {
        gateway,
        ifindex,
        weight: 1,
    }
}

/// The next hops of a Loc-RIB entry: one per multipath member ([`path_next_hop`]),
/// deduplicated, sorted.
pub fn next_hops(route: &Route, resolver: &dyn Resolve) -> Vec<FibNextHop> {
    let mut out: Vec<FibNextHop> = route
        .multipath()
        .map(|p| path_next_hop(p.attrs, p.info, resolver))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The desired FIB: prefix → next hops.
pub type Desired = BTreeMap<IpNet, Vec<FibNextHop>>;

/// The desired FIB of the whole Loc-RIB (IPv4 and IPv6 unicast).
pub fn desired(rib: &Rib, resolver: &dyn Resolve) -> Desired {
    [AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast]
        .into_iter()
        .flat_map(|f| rib.routes(f))
        .map(|r| (r.prefix, next_hops(&r, resolver)))
        .collect()
}

fn family_of(p: &IpNet) -> AfiSafi {
    match p {
        IpNet::V4(_) => AfiSafi::Ipv4Unicast,
        IpNet::V6(_) => AfiSafi::Ipv6Unicast,
    }
}

/// Whether the kernel's next hops are what we want (a wanted next hop without a device matches
/// any device).
fn same_next_hops(want: &[FibNextHop], have: &[FibNextHop]) -> bool {
    let mut have = have.to_vec();
    have.sort();
    want.len() == have.len()
        && want.iter().zip(&have).all(|(w, h)| {
            w.gateway == h.gateway
                && w.weight == h.weight
                && (w.ifindex.is_none() || w.ifindex == h.ifindex)
        })
}

impl FibConfig {
    fn ours(&self, r: &KernelRoute) -> bool {
        r.table == self.table && r.protocol == self.protocol
    }

    fn route(&self, prefix: IpNet, next_hops: Vec<FibNextHop>) -> KernelRoute {
        KernelRoute {
            prefix,
            table: self.table,
            protocol: self.protocol,
            metric: self.metric,
            next_hops,
        }
    }
}

/// The operations that turn `current` (a dump; routes of other tables and protocols may be in
/// it) into `desired`, restricted to `family` if given. Only routes of our protocol in our
/// table are touched.
pub fn diff(
    desired: &Desired,
    current: &[KernelRoute],
    cfg: &FibConfig,
    family: Option<AfiSafi>,
    mode: DiffMode,
) -> FibPlan {
    let in_family = |p: &IpNet| family.is_none_or(|f| f == family_of(p));
    let mut ours: BTreeMap<IpNet, Vec<&KernelRoute>> = BTreeMap::new();
    let mut foreign: BTreeMap<(IpNet, u32), &KernelRoute> = BTreeMap::new();
    for r in current.iter().filter(|r| in_family(&r.prefix)) {
        if cfg.ours(r) {
            ours.entry(r.prefix.trunc()).or_default().push(r);
        } else if r.table == cfg.table {
            foreign.insert((r.prefix.trunc(), r.metric), r);
        }
    }
    let mut plan = FibPlan::default();
    let mut deletes = Vec::new();
    for (prefix, want) in desired.iter().filter(|(p, _)| in_family(p)) {
        let mine = ours.remove(prefix).unwrap_or_default();
        // several entries at our metric (IPv6 ECMP dumped per next hop) are one route
        let mut have: Vec<FibNextHop> = Vec::new();
        let mut at_metric = false;
        for r in &mine {
            if r.metric == cfg.metric {
                at_metric = true;
                have.extend_from_slice(&r.next_hops);
            } else {
                deletes.push(FibOp::Delete((*r).clone()));
            }
        }
        let wanted = cfg.route(*prefix, want.clone());
        if at_metric {
            if !same_next_hops(want, &have) {
                plan.ops.push(FibOp::Replace(wanted));
            }
        } else if let Some(existing) = foreign.get(&(*prefix, cfg.metric)) {
            plan.conflicts.push(Conflict {
                wanted,
                existing: (*existing).clone(),
            });
        } else {
            plan.ops.push(FibOp::Add(wanted));
        }
    }
    for (_, rs) in ours {
        for r in rs {
            match mode {
                DiffMode::Full => deletes.push(FibOp::Delete(r.clone())),
                DiffMode::KeepStale => plan.kept_stale.push(r.clone()),
            }
        }
    }
    plan.ops.extend(deletes);
    plan
}

/// Incremental FIB upkeep with graceful-restart stale tracking (see the module diagram).
#[derive(Debug, Clone)]
pub struct FibSync {
    cfg: FibConfig,
    /// Our kernel routes found at startup with GR (prefix, metric), sorted.
    stale: Vec<(IpNet, u32)>,
    /// Whether each `stale` entry has been re-learned (then it is no longer stale).
    relearned: Vec<bool>,
}

impl FibSync {
    /// Start with a dump of the kernel. With `graceful` (we restarted with GR, RFC 4724 §4.1:
    /// forwarding state preserved), our routes stay and are stale until re-learned or swept;
    /// without it they are deleted now (the RIB is empty at startup).
    pub fn start(cfg: FibConfig, current: &[KernelRoute], graceful: bool) -> (Self, Vec<FibOp>) {
        let mode = if graceful {
            DiffMode::KeepStale
        } else {
            DiffMode::Full
        };
        let plan = diff(&Desired::new(), current, &cfg, None, mode);
        let mut stale: Vec<(IpNet, u32)> = plan
            .kept_stale
            .iter()
            .map(|r| (r.prefix.trunc(), r.metric))
            .collect();
        stale.sort_unstable();
        stale.dedup();
        let relearned = vec![false; stale.len()];
        (
            Self {
                cfg,
                stale,
                relearned,
            },
            plan.ops,
        )
    }

    /// The configuration.
    pub fn config(&self) -> &FibConfig {
        &self.cfg
    }

    /// Mark the stale entries of `prefix` re-learned; whether one was at our metric (so the
    /// kernel holds a route of ours there).
    fn relearn(&mut self, prefix: &IpNet) -> bool {
        let start = self.stale.partition_point(|(p, _)| p < prefix);
        let mut at_metric = false;
        let mut i = start;
        while i < self.stale.len() && self.stale[i].0 == *prefix {
            if !self.relearned[i] && self.stale[i].1 == self.cfg.metric {
                at_metric = true;
            }
            i += 1;
        }
        // entries at another metric stay stale: the sweep deletes them
        for j in start..i {
            if self.stale[j].1 == self.cfg.metric {
                self.relearned[j] = true;
            }
        }
        at_metric
    }

    /// Kernel operations for a batch of Loc-RIB changes, in the order the RIB returned them:
    /// per prefix, the first change says whether the kernel had a route of ours before the
    /// batch and the last one what it should have now (a prefix changed twice gives one op).
    /// A single-path route takes its next hop from the change; a multipath one reads the set
    /// from the RIB.
    pub fn apply(&mut self, rib: &Rib, changes: &[Change], resolver: &dyn Resolve) -> Vec<FibOp> {
        let mut order: Vec<usize> = (0..changes.len()).collect();
        order.sort_by_key(|&i| changes[i].prefix); // stable: equal prefixes stay in order
        let mut ops = Vec::with_capacity(changes.len());
        let mut k = 0;
        while k < order.len() {
            let first = &changes[order[k]];
            let mut j = k;
            while j + 1 < order.len() && changes[order[j + 1]].prefix == first.prefix {
                j += 1;
            }
            let last = &changes[order[j]];
            k = j + 1;
            let prefix = first.prefix;
            let had_before = first.old.is_some();
            let stale_here = self.relearn(&prefix);
            let next_hops = match &last.new {
                Some(sel) if sel.multipath <= 1 => match rib.peer(sel.peer) {
                    Some(info) => vec![path_next_hop(&sel.attrs, info, resolver)],
                    None => continue,
                },
                Some(_) => match rib.route(prefix) {
                    Some(r) => next_hops(&r, resolver),
                    None => continue,
                },
                None => {
                    if had_before {
                        ops.push(FibOp::Delete(self.cfg.route(prefix, Vec::new())));
                    }
                    continue;
                }
            };
            let route = self.cfg.route(prefix, next_hops);
            ops.push(if had_before || stale_here {
                FibOp::Replace(route)
            } else {
                FibOp::Add(route)
            });
        }
        ops
    }

    /// Delete the stale routes (of `family`, or all) that were not re-learned: the End-of-RIB
    /// of every peer arrived, or the restart time ran out (RFC 4724 §4.2).
    pub fn sweep(&mut self, family: Option<AfiSafi>) -> Vec<FibOp> {
        let mut ops = Vec::new();
        let mut keep = Vec::new();
        let mut keep_relearned = Vec::new();
        for (i, (prefix, metric)) in self.stale.iter().enumerate() {
            if family.is_none_or(|f| f == family_of(prefix)) {
                if !self.relearned[i] {
                    ops.push(FibOp::Delete(KernelRoute {
                        prefix: *prefix,
                        table: self.cfg.table,
                        protocol: self.cfg.protocol,
                        metric: *metric,
                        next_hops: Vec::new(),
                    }));
                }
            } else {
                keep.push((*prefix, *metric));
                keep_relearned.push(self.relearned[i]);
            }
        }
        self.stale = keep;
        self.relearned = keep_relearned;
        ops
    }

    /// Stale routes not re-learned yet.
    pub fn stale_count(&self) -> usize {
        self.relearned.iter().filter(|r| !**r).count()
    }
}

#[cfg(test)]
mod tests;
