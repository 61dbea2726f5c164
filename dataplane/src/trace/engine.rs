//! The walk itself: paths move through phases (hooks and routing decisions) until each has a
//! verdict; hooks run their stations in priority order.
//!
//! ```text
//!   work list of paths --phase--> Prerouting | RouteInput | Input | Forward | RouteOutput
//!                                 | Output | Postrouting | LoopbackIn
//!   a phase returns 0..n paths (forks), each with a new phase or a verdict
//!   finished paths --merge identical (verdict, final packet)--> Trace
//! ```

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::iptables::{Assumption as MatchAssumption, AssumptionKind};
use crate::nft::{NftFamily, TableIndex};
use crate::node::{Backend, NodeState};
use crate::packet::{CtState, Family, Packet};
use crate::route::{Assumption as RouteAssumption, Lookup, RouteState};

use super::TraceOptions;
use super::env::Env;
use super::ipvs::IpvsProgram;
use super::model::{
    Assumption, AssumptionCode, Effect, Endpoint, RuleRef, Trace, TracePath, Truncation, Verdict,
};
use super::nft::{self as nft_program, NftBaseChain};
use super::program::{Hook, IptablesTable, Program, Registration};
use super::routing;
use super::state::{PathState, Phase};
use super::track;

/// What runs at a hook, in priority order.
enum Station<'p> {
    Program(&'p dyn Program),
    Conntrack,
    Nat(Vec<&'p dyn Program>),
}

/// One trace in progress.
pub(crate) struct Tracer<'a> {
    pub(crate) node: &'a NodeState,
    pub(crate) opts: &'a TraceOptions,
    pub(crate) family: Family,
    /// The conntrack state the caller gave the packet (NEW unless told otherwise).
    pub(crate) requested_state: CtState,
    programs: Vec<Box<dyn Program + 'a>>,
    routes_known: bool,
    paths: Cell<usize>,
    lost: Cell<f64>,
    assumptions: RefCell<(Vec<Assumption>, HashSet<Assumption>)>,
}

impl<'a> Tracer<'a> {
    pub(crate) fn new(node: &'a NodeState, opts: &'a TraceOptions, pkt: &Packet) -> Tracer<'a> {
        let family = pkt.family();
        let own = match family {
            Family::V4 => NftFamily::Ip,
            Family::V6 => NftFamily::Ip6,
        };
        // Registration positions of nf_tables base chains: the dump lists tables and chains
        // in creation order.
        let mut positions: HashMap<(NftFamily, &str, &str), u64> = HashMap::new();
        if let Some(rs) = &node.nft {
            let mut n = 0u64;
            for t in &rs.tables {
                for c in &t.chains {
                    if c.base.is_some() {
                        positions.insert((t.family, t.name.as_str(), c.name.as_str()), n);
                    }
                    n += 1;
                }
            }
        }
        let mut programs: Vec<Box<dyn Program + 'a>> = Vec::new();
        for s in node.iptables(family) {
            for table in &s.ruleset.tables {
                let positions = if s.backend == Backend::Nft {
                    [
                        Hook::Prerouting,
                        Hook::Input,
                        Hook::Forward,
                        Hook::Output,
                        Hook::Postrouting,
                    ]
                    .into_iter()
                    .filter_map(|h| {
                        positions
                            .get(&(own, table.name.as_str(), h.name()))
                            .map(|p| (h, *p))
                    })
                    .collect()
                } else {
                    Vec::new()
                };
                programs.push(Box::new(IptablesTable {
                    backend: s.backend,
                    family,
                    table,
                    positions,
                }));
            }
        }
        let mut tr = Tracer {
            node,
            opts,
            family,
            requested_state: pkt.ct_state,
            programs: Vec::new(),
            routes_known: !node.routes.links.is_empty() || !node.routes.addresses.is_empty(),
            paths: Cell::new(1),
            lost: Cell::new(0.0),
            assumptions: RefCell::new((Vec::new(), HashSet::new())),
        };
        if node.both_backends_active(family) {
            tr.assume(
                AssumptionCode::BackendOrder,
                "netfilter",
                None,
                "both iptables-legacy and iptables-nft hold rules; the kernel runs both. At equal \
                 priority the table registered last runs first; legacy is assumed first"
                    .to_string(),
            );
        }
        tr.add_nft_programs(&mut programs, &positions);
        if let Some(table) = &node.ipvs {
            programs.push(Box::new(IpvsProgram { table, family }));
        }
        tr.programs = programs;
        tr
    }

    /// The base chains of the node's nft tables of the packet's family (and `inet`), less the
    /// tables iptables-nft made when its dump is walked instead.
    fn add_nft_programs(
        &self,
        programs: &mut Vec<Box<dyn Program + 'a>>,
        positions: &HashMap<(NftFamily, &str, &str), u64>,
    ) {
        let node: &'a NodeState = self.node;
        let Some(rs) = &node.nft else {
            return;
        };
        let own = match self.family {
            Family::V4 => NftFamily::Ip,
            Family::V6 => NftFamily::Ip6,
        };
        let compat = node.nft_compat_tables(self.family);
        for (i, extra) in &compat {
            let t = &rs.tables[*i];
            let text = if extra.is_empty() {
                format!(
                    "table {} {} is iptables-nft's: traced as iptables ({}), not again as nft",
                    t.family,
                    t.name,
                    Backend::Nft.command(self.family)
                )
            } else {
                format!(
                    "table {} {} is assumed to be iptables-nft's and is traced as iptables; its \
                     chains {} are not in the iptables-nft dump and are not traced",
                    t.family,
                    t.name,
                    extra.join(", ")
                )
            };
            self.assume(AssumptionCode::NftCompat, "netfilter", None, text);
        }
        for (i, t) in rs.tables.iter().enumerate() {
            if (t.family != own && t.family != NftFamily::Inet)
                || compat.iter().any(|(c, _)| *c == i)
            {
                continue;
            }
            let index = Rc::new(TableIndex::new(t));
            for c in &t.chains {
                let Some(base) = &c.base else { continue };
                let Some(hook) = nft_program::trace_hook(&base.hook) else {
                    if !c.rules.is_empty() {
                        self.assume(
                            AssumptionCode::UnknownTarget,
                            "netfilter",
                            None,
                            format!(
                                "{} {}/{}: hook {} is not modelled (assumed to let the packet pass \
                                 unchanged)",
                                t.family, t.name, c.name, base.hook
                            ),
                        );
                    }
                    continue;
                };
                programs.push(Box::new(NftBaseChain {
                    index: index.clone(),
                    chain: c,
                    base,
                    hook,
                    position: positions
                        .get(&(t.family, t.name.as_str(), c.name.as_str()))
                        .copied()
                        .unwrap_or(u64::MAX),
                    family: self.family,
                }));
            }
        }
    }

    /// The env of a rule evaluation on `st` at `hook`.
    pub(crate) fn env<'s>(&'s self, st: &'s PathState, hook: Hook) -> Env<'s> {
        Env {
            node: self.node,
            opts: self.opts,
            out_dev: if hook.has_out_dev() {
                st.route.as_ref().map(|r| r.dev.as_str())
            } else {
                None
            },
            ct: &st.ct,
            ct_info: std::cell::OnceCell::new(),
            routes_known: self.routes_known,
        }
    }

    /// Whether one more path may be made (the bound is `max_paths`).
    pub(crate) fn try_fork(&self) -> bool {
        let n = self.paths.get();
        if n < self.opts.max_paths.max(1) {
            self.paths.set(n + 1);
            true
        } else {
            false
        }
    }

    /// Records probability mass left unexplored by the bound.
    pub(crate) fn unexplored(&self, p: f64) {
        self.lost.set(self.lost.get() + p);
    }

    /// Records an assumption (once).
    pub(crate) fn assume(
        &self,
        code: AssumptionCode,
        stage: &str,
        rule: Option<&RuleRef>,
        text: String,
    ) {
        let a = Assumption {
            code,
            stage: stage.to_string(),
            rule: rule.cloned(),
            text,
        };
        let mut g = self.assumptions.borrow_mut();
        if g.1.insert(a.clone()) {
            g.0.push(a);
        }
    }

    /// Records the assumption an iptables match made.
    pub(crate) fn assume_match(&self, stage: &str, rule: &RuleRef, a: &MatchAssumption) {
        let code = match &a.kind {
            AssumptionKind::RecentHistory { .. } => AssumptionCode::RecentHistory,
            AssumptionKind::RateLimit => AssumptionCode::RateLimit,
            AssumptionKind::BridgePorts => AssumptionCode::BridgePorts,
            AssumptionKind::SocketOwner => AssumptionCode::SocketOwner,
            AssumptionKind::Conntrack { .. } => AssumptionCode::ConntrackField,
            AssumptionKind::AddrType { .. } => AssumptionCode::AddrType,
            AssumptionKind::Ipset { .. } => AssumptionCode::IpsetUnknown,
            AssumptionKind::UnknownMatch => AssumptionCode::UnknownMatch,
            AssumptionKind::NftSet { .. } => AssumptionCode::IpsetUnknown,
            AssumptionKind::Route { .. } => AssumptionCode::Route,
            AssumptionKind::Quota => AssumptionCode::RateLimit,
        };
        let mut text = a.to_string();
        if let AssumptionKind::RecentHistory { list } = &a.kind
            && self.opts.recent_listed.contains(list)
        {
            text = format!("{}: list {list} holds the address (as told)", a.match_text);
        }
        self.assume(code, stage, Some(rule), text);
    }

    /// Records what a routing lookup assumed.
    pub(crate) fn route_assumptions(&self, lk: &Lookup) {
        for a in &lk.assumptions {
            if matches!(a, RouteAssumption::Ipv6ForwardingOff) {
                continue; // the tracer turns it into a verdict
            }
            self.assume(AssumptionCode::Route, "routing", None, a.to_string());
        }
    }

    /// The sysctl that decides forwarding of packets arriving on `iif`.
    pub(crate) fn forwarding_key(&self, iif: &str) -> String {
        let per = format!("net.ipv4.conf.{}.forwarding", iif.replace('.', "/"));
        match self.family {
            Family::V6 => "net.ipv6.conf.all.forwarding".to_string(),
            Family::V4 if self.node.sysctls.get(&per).is_some() => per,
            Family::V4 => "net.ipv4.ip_forward".to_string(),
        }
    }

    /// The routing state as seen by a packet arriving on `iif`: IPv4 forwarding and
    /// `route_localnet` are per input device.
    pub(crate) fn input_routes(&self, iif: &str) -> Cow<'a, RouteState> {
        let routes = &self.node.routes;
        if self.family != Family::V4 {
            return Cow::Borrowed(routes);
        }
        let fwd = self.node.sysctls.forwarding(Family::V4, iif);
        let localnet = self.node.sysctls.route_localnet(Some(iif));
        let differs = |want: Option<bool>, have: Option<bool>| want.is_some() && want != have;
        if differs(fwd, routes.settings.ipv4_forwarding)
            || differs(localnet, routes.settings.route_localnet)
        {
            let mut r = routes.clone();
            if fwd.is_some() {
                r.settings.ipv4_forwarding = fwd;
            }
            if localnet.is_some() {
                r.settings.route_localnet = localnet;
            }
            Cow::Owned(r)
        } else {
            Cow::Borrowed(routes)
        }
    }

    /// Programs attached to `hook`, NAT ones or the others, in the order the kernel runs them:
    /// by priority, then [`Registration::tie_key`]. Records an assumption when two that act
    /// share a priority.
    fn ordered(&self, hook: Hook, nat: bool) -> Vec<(i32, &dyn Program)> {
        let mut v: Vec<(i32, &dyn Program)> = self
            .programs
            .iter()
            .filter(|p| p.is_nat() == nat)
            .filter_map(|p| p.priority(hook).map(|prio| (prio, p.as_ref())))
            .collect();
        v.sort_by_key(|(prio, p)| (*prio, p.registered(hook).tie_key()));
        for w in v.windows(2) {
            let ((pa, a), (pb, b)) = (w[0], w[1]);
            if pa == pb
                && a.acts_at(hook)
                && b.acts_at(hook)
                && a.registered(hook) != Registration::Legacy
            {
                self.assume(
                    AssumptionCode::BackendOrder,
                    &format!("{hook}"),
                    None,
                    format!(
                        "{} and {} have the same priority {pa}: the one registered last runs first \
                         (nf_hook_entries_grow); registration order is taken from the order of the \
                         nft dump (iptables-legacy tables and IPVS assumed first), so {} runs first",
                        a.name(),
                        b.name(),
                        a.name()
                    ),
                );
            }
        }
        v
    }

    fn stations(&self, hook: Hook) -> Vec<(i32, Station<'_>)> {
        let mut v: Vec<(i32, Station<'_>)> = self
            .ordered(hook, false)
            .into_iter()
            .map(|(prio, p)| (prio, Station::Program(p)))
            .collect();
        if hook.dst_manip() {
            v.push((-200, Station::Conntrack));
        }
        let nat_prio = match hook {
            Hook::Prerouting | Hook::Output => Some(-100),
            Hook::Input | Hook::Postrouting => Some(100),
            Hook::Forward => None,
        };
        if let Some(prio) = nat_prio {
            // nf_nat runs a hook's nat programs from one hook entry at the NAT priority, in
            // their own priority order (nf_nat_register_fn)
            let nats = self
                .ordered(hook, true)
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            v.push((prio, Station::Nat(nats)));
        }
        v.sort_by_key(|(p, _)| *p); // stable: programs keep their order
        v
    }

    /// Runs every station of `hook`. `loopback`: a locally sent packet coming back in through
    /// `lo`, which keeps its conntrack entry and NAT (no lookup, no nat table).
    fn run_hook(&self, hook: Hook, st: PathState, loopback: bool) -> Vec<PathState> {
        let mut live = vec![st];
        let mut done = Vec::new();
        for (_, station) in self.stations(hook) {
            let mut next = Vec::new();
            for s in live {
                if s.verdict.is_some() || s.leave.is_some() {
                    done.push(s);
                    continue;
                }
                let before = (s.pkt.mark, s.pkt.src, s.pkt.dst);
                let (outs, reroute_kind) = match &station {
                    Station::Program(p) => (p.run(self, hook, s), p.reroutes()),
                    // the packet has its conntrack entry already (looped back, or sent on by
                    // IPVS): nf_conntrack_in leaves it alone
                    Station::Conntrack if loopback || s.ct.looked_up => (vec![s], false),
                    Station::Conntrack => (track::conntrack(self, s), false),
                    Station::Nat(ps) if loopback => {
                        let mut s = s;
                        if ps.iter().any(|p| p.acts_at(hook)) {
                            s.note(
                                &format!("nat/{hook}"),
                                Effect::NatSkipped {
                                    reason: "looped-back packet: the connection's NAT was set up \
                                             in OUTPUT/POSTROUTING"
                                        .to_string(),
                                },
                            );
                        }
                        (vec![s], false)
                    }
                    Station::Nat(ps) => (track::nat(self, hook, ps, s), true),
                };
                for o in outs {
                    let changed = if matches!(station, Station::Nat(_)) {
                        o.pkt.dst != before.2
                    } else {
                        (o.pkt.mark, o.pkt.src, o.pkt.dst) != before
                    };
                    if hook == Hook::Output && reroute_kind && o.verdict.is_none() && changed {
                        next.extend(routing::reroute(self, o));
                    } else {
                        next.push(o);
                    }
                }
            }
            live = next;
        }
        done.extend(live);
        done
    }

    fn step_phase(&self, mut st: PathState) -> Vec<PathState> {
        match st.phase {
            Phase::Prerouting => self
                .run_hook(Hook::Prerouting, st, false)
                .into_iter()
                .map(|mut s| {
                    s.phase = Phase::RouteInput;
                    s
                })
                .collect(),
            Phase::RouteInput => routing::route_input(self, st),
            Phase::Input => self
                .run_hook(Hook::Input, st, false)
                .into_iter()
                .map(|mut s| {
                    if let Some(next) = s.leave.take() {
                        s.phase = next;
                    } else if s.verdict.is_none() {
                        let dev = s.pkt.iif.clone().unwrap_or_else(|| "lo".to_string());
                        let to = s.dst();
                        s.finish(Verdict::Delivered { dev, to });
                    }
                    s
                })
                .collect(),
            Phase::Forward => {
                if let Some(v) = routing::mtu_check(self, &st) {
                    st.finish(v);
                    return vec![st];
                }
                self.run_hook(Hook::Forward, st, false)
                    .into_iter()
                    .map(|mut s| {
                        s.phase = Phase::Postrouting;
                        s
                    })
                    .collect()
            }
            Phase::RouteOutput => routing::route_output(self, st),
            Phase::Output => self
                .run_hook(Hook::Output, st, false)
                .into_iter()
                .map(|mut s| {
                    s.phase = s.leave.take().unwrap_or(Phase::Postrouting);
                    s
                })
                .collect(),
            Phase::IpvsXmit => routing::route_ipvs(self, st),
            Phase::Postrouting => self
                .run_hook(Hook::Postrouting, st, false)
                .into_iter()
                .map(|mut s| {
                    if s.verdict.is_some() {
                        return s;
                    }
                    match s.route.clone() {
                        Some(r) if r.local => {
                            s.note("loopback", Effect::Loopback);
                            s.pkt.iif = Some("lo".to_string());
                            s.phase = Phase::LoopbackIn;
                        }
                        Some(r) => {
                            let v = Verdict::Forwarded {
                                next_hop: r.gateway.unwrap_or(s.pkt.dst),
                                via_gateway: r.gateway.is_some(),
                                out_dev: r.dev,
                                src: Endpoint::src_of(&s.pkt),
                                dst: Endpoint::dst_of(&s.pkt),
                            };
                            s.finish(v);
                        }
                        None => s.finish(Verdict::NotModelled {
                            stage: "POSTROUTING".to_string(),
                            what: "no route chosen".to_string(),
                        }),
                    }
                    s
                })
                .collect(),
            Phase::LoopbackIn => self
                .run_hook(Hook::Prerouting, st, true)
                .into_iter()
                .map(|mut s| {
                    s.phase = Phase::Input;
                    s
                })
                .collect(),
        }
    }

    /// Walks every path of `pkt` to its verdict.
    pub(crate) fn run(self, pkt: &Packet) -> Trace {
        let mut first = PathState::new(pkt.clone());
        // Before the conntrack hook a packet has no conntrack entry: -m conntrack sees INVALID.
        first.pkt.ct_state = CtState::Invalid;
        let mut work = vec![first];
        let mut finished: Vec<PathState> = Vec::new();
        while let Some(st) = work.pop() {
            if st.verdict.is_some() {
                finished.push(st);
            } else {
                work.extend(self.step_phase(st));
            }
        }
        let mut paths: Vec<TracePath> = finished
            .into_iter()
            .map(|s| TracePath {
                probability: s.prob,
                steps: s.steps,
                verdict: s.verdict.unwrap_or(Verdict::NotModelled {
                    stage: "trace".to_string(),
                    what: "path ended without a verdict".to_string(),
                }),
                final_packet: s.pkt,
                merged: 0,
            })
            .collect();
        paths.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        let mut merged: Vec<TracePath> = Vec::new();
        for p in paths {
            match merged
                .iter_mut()
                .find(|m| m.verdict == p.verdict && m.final_packet == p.final_packet)
            {
                Some(m) => {
                    m.probability += p.probability;
                    m.merged += 1 + p.merged;
                }
                None => merged.push(p),
            }
        }
        merged.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        let lost = self.lost.get();
        let truncated = (lost > 0.0).then_some(Truncation {
            max_paths: self.opts.max_paths,
            unexplored_probability: lost,
        });
        let assumptions = self.assumptions.into_inner().0;
        Trace {
            node: self.node.name.clone(),
            family: self.family,
            packet: pkt.clone(),
            paths: merged,
            assumptions,
            truncated,
        }
    }
}
