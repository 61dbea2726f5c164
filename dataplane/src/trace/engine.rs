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
use std::collections::HashSet;

use crate::iptables::{Assumption as MatchAssumption, AssumptionKind};
use crate::node::NodeState;
use crate::packet::{CtState, Family, Packet};
use crate::route::{Assumption as RouteAssumption, Lookup, RouteState};

use super::TraceOptions;
use super::env::Env;
use super::model::{
    Assumption, AssumptionCode, Effect, Endpoint, RuleRef, Trace, TracePath, Truncation, Verdict,
};
use super::program::{Hook, IptablesTable, Program};
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
        let mut programs: Vec<Box<dyn Program + 'a>> = Vec::new();
        for s in node.iptables(family) {
            for table in &s.ruleset.tables {
                programs.push(Box::new(IptablesTable {
                    backend: s.backend,
                    family,
                    table,
                }));
            }
        }
        // Seam: nftables base chains become more `Program`s here (see program.rs).
        let tr = Tracer {
            node,
            opts,
            family,
            requested_state: pkt.ct_state,
            programs,
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
                 priority the table registered first runs first; legacy is assumed first"
                    .to_string(),
            );
        }
        tr
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

    fn stations(&self, hook: Hook) -> Vec<(i32, Station<'_>)> {
        let mut v: Vec<(i32, Station<'_>)> = Vec::new();
        for p in &self.programs {
            if !p.is_nat()
                && let Some(prio) = p.priority(hook)
            {
                v.push((prio, Station::Program(p.as_ref())));
            }
        }
        if hook.dst_manip() {
            v.push((-200, Station::Conntrack));
        }
        let nat_prio = match hook {
            Hook::Prerouting | Hook::Output => Some(-100),
            Hook::Input | Hook::Postrouting => Some(100),
            Hook::Forward => None,
        };
        if let Some(prio) = nat_prio {
            let nats = self
                .programs
                .iter()
                .filter(|p| p.is_nat() && p.priority(hook).is_some())
                .map(|p| p.as_ref())
                .collect();
            v.push((prio, Station::Nat(nats)));
        }
        v.sort_by_key(|(p, _)| *p); // stable: legacy before nft at equal priority
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
                if s.verdict.is_some() {
                    done.push(s);
                    continue;
                }
                let before = (s.pkt.mark, s.pkt.src, s.pkt.dst);
                let (outs, reroute_kind) = match &station {
                    Station::Program(p) => (p.run(self, hook, s), p.table() == "mangle"),
                    Station::Conntrack if loopback => (vec![s], false),
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
                    if s.verdict.is_none() {
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
                    s.phase = Phase::Postrouting;
                    s
                })
                .collect(),
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
