//! The routing decisions of a path: input (after PREROUTING: local, forward, or why not, with
//! the reverse-path filter), output (before OUTPUT, with source selection), the re-route after
//! mangle/nat changed a locally sent packet, and the MTU check of a forwarded one.
//!
//! ```text
//!   input:  RouteState::lookup(flow with iif, mark, the DNATed destination)
//!             local/broadcast/anycast -> rp_filter (oif none) -> INPUT
//!             unicast -> [IPv6: forwarding on?] -> rp_filter (oif = route dev) -> FORWARD
//!             blackhole | unreachable | prohibit | no route | forwarding off | martian -> verdict
//!   output: lookup(flow without iif, src chosen unless given) -> OUTPUT (or the same verdicts)
//!   multipath: one path per next hop, probability weight / total weight
//! ```

use std::borrow::Cow;
use std::net::IpAddr;

use crate::packet::Family;
use crate::route::{Cause, Flow, Hop, Lookup, Martian, Outcome, RouteState, RpFilter, RpVerdict};

use super::engine::Tracer;
use super::model::{AssumptionCode, DropReason, Effect, Verdict};
use super::state::{PathState, Phase, RouteChoice};

fn martian_reason(m: &Martian) -> DropReason {
    match m {
        Martian::LocalSource => DropReason::IpLocalSource,
        Martian::ZeroDestination | Martian::BadDestinationType => DropReason::IpInvalidDest,
        Martian::Loopback => DropReason::IpLocalnet,
        _ => DropReason::IpInvalidSource,
    }
}

fn cause_text(c: &Cause) -> String {
    c.to_string()
}

/// The verdict of a failed lookup, `None` when the outcome is a route.
fn failure(
    outcome: &Outcome,
    dst: IpAddr,
    local: bool,
    iif: &str,
    tr: &Tracer<'_>,
) -> Option<Verdict> {
    Some(match outcome {
        Outcome::Blackhole { cause } => Verdict::RouteBlackhole {
            cause: cause_text(cause),
        },
        Outcome::Unreachable { cause } => Verdict::RouteUnreachable {
            cause: cause_text(cause),
        },
        Outcome::Prohibit { cause } => Verdict::RouteProhibit {
            cause: cause_text(cause),
        },
        Outcome::NoRoute => Verdict::NoRoute { dst, local },
        Outcome::ForwardingDisabled => Verdict::ForwardingDisabled {
            iif: iif.to_string(),
            sysctl: tr.forwarding_key(iif),
        },
        Outcome::Martian { reason } => Verdict::Martian {
            reason: reason.to_string(),
            drop_reason: martian_reason(reason),
        },
        Outcome::NotModelled { what } => Verdict::NotModelled {
            stage: "routing".to_string(),
            what: what.clone(),
        },
        Outcome::Multicast { .. } => Verdict::NotModelled {
            stage: "routing".to_string(),
            what: "multicast delivery".to_string(),
        },
        _ => return None,
    })
}

fn route_step(st: &mut PathState, lk: &Lookup, reroute: bool) {
    let route = lk.outcome.route().map(|r| r.to_string());
    let (dev, gateway) = match &lk.outcome {
        Outcome::Unicast { hops, .. } => (
            hops.first().map(|h| h.dev.clone()),
            hops.first().and_then(|h| h.gateway),
        ),
        Outcome::Local { dev, .. }
        | Outcome::Broadcast { dev, .. }
        | Outcome::Anycast { dev, .. }
        | Outcome::Multicast { dev, .. } => (Some(dev.clone()), None),
        _ => (None, None),
    };
    st.note(
        "routing",
        Effect::Route {
            outcome: lk.outcome.to_string(),
            table: lk.table().map(|t| t.to_string()),
            route,
            dev,
            gateway,
            reroute,
        },
    );
}

/// One path per next hop, with the hop's share of the probability.
fn per_hop(tr: &Tracer<'_>, st: PathState, hops: &[Hop]) -> Vec<(PathState, Hop)> {
    let total: f64 = hops.iter().map(|h| f64::from(h.weight.max(1))).sum();
    let mut out = Vec::new();
    let mut lost = 0.0;
    for (i, h) in hops.iter().enumerate() {
        let share = f64::from(h.weight.max(1)) / total;
        if i > 0 && !tr.try_fork() {
            lost += share;
            continue;
        }
        let mut s = st.clone();
        s.prob *= share;
        out.push((s, h.clone()));
    }
    if lost > 0.0 {
        tr.unexplored(st.prob * lost);
    }
    out
}

/// The reverse-path check of a received IPv4 packet; `Some(verdict)` when it fails.
fn rp_check(
    tr: &Tracer<'_>,
    routes: &RouteState,
    flow: &Flow,
    out_dev: Option<&str>,
    st: &mut PathState,
) -> Option<Verdict> {
    if flow.family != Family::V4 {
        return None;
    }
    let iif = flow.iif.clone().unwrap_or_default();
    let mode = match tr.node.sysctls.rp_filter(&iif) {
        Some(m) => m,
        None => {
            tr.assume(
                AssumptionCode::SysctlUnknown,
                "rp_filter",
                None,
                format!("rp_filter for {iif} unknown: 0 (off) assumed"),
            );
            RpFilter::Off
        }
    };
    let svm = tr.node.sysctls.src_valid_mark(&iif).unwrap_or(false);
    let chk = routes.reverse_path(flow, out_dev, mode, svm);
    match chk.verdict {
        RpVerdict::Pass => {
            if mode != RpFilter::Off {
                st.note("rp_filter", Effect::RpFilter { mode });
            }
            None
        }
        RpVerdict::Fail { reason } => Some(Verdict::RpFilter {
            iif,
            src: st.pkt.src,
            mode,
            reason,
        }),
        RpVerdict::Martian { reason } => {
            let local = routes.is_local_address(st.pkt.src);
            Some(Verdict::Martian {
                reason,
                drop_reason: if local {
                    DropReason::IpLocalSource
                } else {
                    DropReason::IpInvalidSource
                },
            })
        }
    }
}

/// The input routing decision of a received packet.
pub(crate) fn route_input(tr: &Tracer<'_>, mut st: PathState) -> Vec<PathState> {
    let iif = st.pkt.iif.clone().unwrap_or_default();
    let flow = Flow::of_packet(&st.pkt);
    let routes: Cow<'_, RouteState> = tr.input_routes(&iif);
    let lk = routes.lookup(&flow);
    tr.route_assumptions(&lk);
    route_step(&mut st, &lk, false);
    if let Some(v) = failure(&lk.outcome, st.pkt.dst, false, &iif, tr) {
        st.finish(v);
        return vec![st];
    }
    match &lk.outcome {
        Outcome::Unicast { hops, route } => {
            if flow.family == Family::V6 && !routes.settings.ipv6_forwarding.unwrap_or(true) {
                st.finish(Verdict::ForwardingDisabled {
                    iif,
                    sysctl: "net.ipv6.conf.all.forwarding".to_string(),
                });
                return vec![st];
            }
            let mtu = route.as_ref().and_then(|r| r.mtu());
            per_hop(tr, st, hops)
                .into_iter()
                .map(|(mut s, h)| {
                    if let Some(v) = rp_check(tr, &routes, &flow, Some(&h.dev), &mut s) {
                        s.finish(v);
                        return s;
                    }
                    s.route = Some(RouteChoice {
                        local: false,
                        dev: h.dev,
                        gateway: h.gateway,
                        mtu,
                    });
                    s.phase = Phase::Forward;
                    s
                })
                .collect()
        }
        _ => {
            // local, broadcast, anycast: delivered here
            if let Some(v) = rp_check(tr, &routes, &flow, None, &mut st) {
                st.finish(v);
                return vec![st];
            }
            st.route = Some(RouteChoice {
                local: true,
                dev: "lo".to_string(),
                gateway: None,
                mtu: None,
            });
            st.phase = Phase::Input;
            vec![st]
        }
    }
}

fn output_flow(tr: &Tracer<'_>, st: &PathState, fixed_src: bool) -> Flow {
    let mut flow = Flow::of_packet(&st.pkt);
    if !fixed_src && st.pkt.src.is_unspecified() {
        flow.src = None;
    }
    flow.uid = tr.opts.socket_owner.map(|(uid, _)| uid);
    flow
}

fn apply_output(tr: &Tracer<'_>, mut st: PathState, lk: &Lookup) -> Vec<PathState> {
    if let Some(v) = failure(&lk.outcome, st.pkt.dst, true, "", tr) {
        st.finish(v);
        return vec![st];
    }
    match &lk.outcome {
        Outcome::Unicast { hops, route } => {
            let mtu = route.as_ref().and_then(|r| r.mtu());
            per_hop(tr, st, hops)
                .into_iter()
                .map(|(mut s, h)| {
                    if s.pkt.src.is_unspecified()
                        && let Some(src) = h.src
                    {
                        s.pkt.src = src;
                    }
                    s.route = Some(RouteChoice {
                        local: false,
                        dev: h.dev,
                        gateway: h.gateway,
                        mtu,
                    });
                    s
                })
                .collect()
        }
        Outcome::Local { src, .. } | Outcome::Anycast { src, .. } => {
            if st.pkt.src.is_unspecified() {
                st.pkt.src = src.unwrap_or(st.pkt.dst);
            }
            st.route = Some(RouteChoice {
                local: true,
                dev: "lo".to_string(),
                gateway: None,
                mtu: None,
            });
            vec![st]
        }
        other => {
            st.finish(Verdict::NotModelled {
                stage: "routing".to_string(),
                what: format!("locally sent {other}"),
            });
            vec![st]
        }
    }
}

/// The output routing decision of a locally sent packet.
pub(crate) fn route_output(tr: &Tracer<'_>, mut st: PathState) -> Vec<PathState> {
    let flow = output_flow(tr, &st, false);
    let lk = tr.node.routes.lookup(&flow);
    tr.route_assumptions(&lk);
    route_step(&mut st, &lk, false);
    apply_output(tr, st, &lk)
        .into_iter()
        .map(|mut s| {
            s.phase = Phase::Output;
            s
        })
        .collect()
}

/// The route IPVS sends a scheduled packet on (`__ip_vs_get_out_rt`): an output lookup for
/// the real server (the destination after NAT; for direct routing the server as next hop),
/// without the packet's source or mark. Then the OUTPUT hook runs again.
pub(crate) fn route_ipvs(tr: &Tracer<'_>, mut st: PathState) -> Vec<PathState> {
    let via = st.ipvs_via;
    let mut flow = Flow::to(via.unwrap_or(st.pkt.dst));
    flow.proto = Some(st.pkt.proto);
    let lk = tr.node.routes.lookup(&flow);
    tr.route_assumptions(&lk);
    route_step(&mut st, &lk, false);
    apply_output(tr, st, &lk)
        .into_iter()
        .map(|mut s| {
            if let (Some(rs), Some(r)) = (via, s.route.as_mut()) {
                r.gateway = r.gateway.or(Some(rs));
            }
            s.phase = Phase::Output;
            s
        })
        .collect()
}

/// `ip_route_me_harder`: the route again, after mangle OUTPUT changed the mark or an address,
/// or nat OUTPUT the destination.
pub(crate) fn reroute(tr: &Tracer<'_>, mut st: PathState) -> Vec<PathState> {
    let flow = output_flow(tr, &st, true);
    let lk = tr.node.routes.lookup(&flow);
    tr.route_assumptions(&lk);
    route_step(&mut st, &lk, true);
    apply_output(tr, st, &lk)
}

/// The MTU check of a forwarded packet (`ip_forward` / `ip6_forward`, before the FORWARD
/// hook); `Some(verdict)` when it is too big.
pub(crate) fn mtu_check(tr: &Tracer<'_>, st: &PathState) -> Option<Verdict> {
    let r = st.route.as_ref()?;
    let mtu = r
        .mtu
        .or_else(|| tr.node.routes.link(&r.dev).and_then(|l| l.mtu))?;
    if u32::from(st.pkt.len) <= mtu {
        return None;
    }
    if st.pkt.family() == Family::V4 {
        tr.assume(
            AssumptionCode::DontFragment,
            "forward",
            None,
            "the DF bit is set (Linux sets it on TCP, UDP and ICMP by default, path MTU discovery)"
                .to_string(),
        );
    }
    Some(Verdict::MtuExceeded {
        out_dev: r.dev.clone(),
        mtu,
        len: st.pkt.len,
    })
}
