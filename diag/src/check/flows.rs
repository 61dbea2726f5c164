//! Checks that send probe packets through the tracer ([`crate::cluster::trace`]) and read
//! where they die: pod to pod (rp_filter, FORWARD policy), pod to its own Service (hairpin),
//! clients to LoadBalancer IPs (source ranges), pods to outside addresses (masquerade), and
//! UDP conntrack entries replayed as new flows (stale endpoints). Pure.
//!
//! ```text
//!   pods (≤ 4 per node) x pods (≤ 256 pairs) ──trace──> IpRpFilter on iif ──> rp-filter-asymmetric
//!                                     └─> filter/FORWARD policy DROP ──> forward-policy-drop
//!   pod -> own ClusterIP ──trace──> DNAT back to itself, source kept ──> hairpin-no-masquerade
//!   client (--probe, pods) -> LB IP ──trace──> dropped after KUBE-FW-* ──> lb-source-ranges
//!   pod -> --probe address ──trace──> leaves with the pod's source ──> masquerade-missing
//!   conntrack UDP entry (DNATed) ──trace as NEW without conntrack──> endpoint gone ──> stale-udp-conntrack
//! ```

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::route::{Flow, Outcome as RouteOutcome};
use dataplane::trace::{Culprit, Effect, Endpoint, Verdict};
use dataplane::{Family, Packet, Protocol};

use super::facts::{PROBE_SPORT, PodAddr, ServiceKind, probe_from_pod, probe_options};
use super::{Cx, Evidence, EvidenceKind, Finding, Severity};
use crate::cluster::{self, Cluster, ClusterPath, ClusterTrace, Outcome};
use crate::explain::outcome_words;

/// Check id.
pub const STALE_UDP_CONNTRACK: &str = "stale-udp-conntrack";
/// Check id.
pub const RP_FILTER_ASYMMETRIC: &str = "rp-filter-asymmetric";
/// Check id.
pub const FORWARD_POLICY_DROP: &str = "forward-policy-drop";
/// Check id.
pub const LB_SOURCE_RANGES: &str = "lb-source-ranges";
/// Check id.
pub const MASQUERADE_MISSING: &str = "masquerade-missing";
/// Check id.
pub const HAIRPIN_NO_MASQUERADE: &str = "hairpin-no-masquerade";

/// Pods per node the pod-to-pod probes start from and go to.
const PODS_PER_NODE: usize = 4;

/// At most this many pod-to-pod probes.
const MAX_PAIRS: usize = 256;

/// The port pod-to-pod probes use (TCP).
pub const PROBE_PORT: u16 = 80;

fn path_line(p: &ClusterPath) -> String {
    let (w, rest) = outcome_words(p);
    format!("{w} {rest}")
}

fn sample_pods<'a>(cx: &'a Cx<'_>) -> Vec<&'a PodAddr> {
    let mut out = Vec::new();
    for i in 0..cx.cluster.nodes.len() {
        out.extend(cx.facts.pods_of(i).take(PODS_PER_NODE));
    }
    out
}

/// Pod-to-pod probes: (from, to, trace).
fn pod_pairs<'a>(cx: &'a Cx<'_>) -> Vec<(&'a PodAddr, &'a PodAddr, ClusterTrace)> {
    let pods = sample_pods(cx);
    let mut out = Vec::new();
    for a in &pods {
        for b in &pods {
            if a.addr == b.addr || Family::of(&a.addr) != Family::of(&b.addr) {
                continue;
            }
            if out.len() >= MAX_PAIRS {
                return out;
            }
            let t = probe_from_pod(cx.cluster, a, b.addr, Protocol::Tcp, PROBE_PORT);
            out.push((*a, *b, t));
        }
    }
    out
}

fn last_verdict(p: &ClusterPath) -> Option<&Verdict> {
    p.hops.last().map(|h| &h.verdict)
}

/// Packets from a pod dropped by the reverse-path filter on a node they reach: strict mode
/// (1) and the route back to the source leaves by another interface.
pub fn rp_filter_asymmetric(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut seen = BTreeSet::new();
    for (a, b, t) in pod_pairs(cx) {
        for p in &t.paths {
            let Some(Verdict::RpFilter {
                iif, src, reason, ..
            }) = last_verdict(p)
            else {
                continue;
            };
            let Some(h) = p.hops.last() else { continue };
            if !seen.insert((h.node.clone(), iif.clone())) {
                continue;
            }
            let Some(s) = cx.cluster.nodes.iter().find(|s| s.name() == h.node) else {
                continue;
            };
            let sys = &s.node.sysctls;
            let mut evidence = Vec::new();
            for dev in ["all", iif.as_str()] {
                let key = format!("net.ipv4.conf.{dev}.rp_filter");
                if let Some(v) = sys.num(&key) {
                    evidence.push(Evidence::new(EvidenceKind::Sysctl, format!("{key} = {v}")));
                }
            }
            let back = s.node.routes.lookup(&Flow::to(*src));
            let back_text = match &back.outcome {
                RouteOutcome::Unicast { route: Some(r), .. } => format!("{r}"),
                o => o.to_string(),
            };
            evidence.push(Evidence::new(
                EvidenceKind::Route,
                format!("ip route get {src}: {back_text}"),
            ));
            evidence.push(Evidence::new(
                EvidenceKind::Trace,
                format!("probe {} -> {}: {}", a.label(), b.label(), path_line(p)),
            ));
            out.push(Finding {
                check: RP_FILTER_ASYMMETRIC.into(),
                severity: Severity::Error,
                node: Some(h.node.clone()),
                summary: format!(
                    "strict rp_filter drops packets from {src} arriving on {iif}: {reason}"
                ),
                evidence,
                fix: format!(
                    "make the path symmetric (a route back to {src} via {iif}), or use loose \
                     mode: sysctl -w net.ipv4.conf.{iif}.rp_filter=2 (and conf.all.rp_filter \
                     at most 2: the larger of the two applies)"
                ),
            });
        }
    }
    out
}

/// Pod traffic that a node forwards and that ends at a `filter/FORWARD` policy DROP (no rule
/// accepted it first).
pub fn forward_policy_drop(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut seen = BTreeSet::new();
    for (a, b, t) in pod_pairs(cx) {
        for p in &t.paths {
            let Some(Verdict::Dropped {
                by:
                    Culprit::Policy {
                        backend,
                        table,
                        chain,
                    },
                ..
            }) = last_verdict(p)
            else {
                continue;
            };
            if chain != "FORWARD" {
                continue;
            }
            let Some(h) = p.hops.last() else { continue };
            if !seen.insert(h.node.clone()) {
                continue;
            }
            let tool = backend
                .map(|b| b.command(Family::of(&a.addr)).to_string())
                .unwrap_or_else(|| "iptables".into());
            let rules = cx
                .cluster
                .nodes
                .iter()
                .position(|s| s.name() == h.node)
                .map(|k| {
                    cx.facts.rules[k]
                        .iter()
                        .filter(|r| r.table == table && r.chain == chain)
                        .count()
                })
                .unwrap_or(0);
            out.push(Finding {
                check: FORWARD_POLICY_DROP.into(),
                severity: Severity::Error,
                node: Some(h.node.clone()),
                summary: format!(
                    "the {table}/{chain} policy is DROP and none of its {rules} rules accepts pod \
                     traffic: {} -> {} is dropped",
                    a.label(),
                    b.label()
                ),
                evidence: vec![
                    Evidence::new(
                        EvidenceKind::Rule,
                        format!("{tool} {table}/{chain}: :{chain} DROP (policy)"),
                    ),
                    Evidence::new(
                        EvidenceKind::Trace,
                        format!("probe {} -> {}: {}", a.label(), b.label(), path_line(p)),
                    ),
                ],
                fix: "accept pod traffic in FORWARD (kube-proxy's KUBE-FORWARD accepts \
                      conntrack-tracked flows; the CNI should accept its pod CIDR: iptables -A \
                      FORWARD -s PODCIDR -j ACCEPT and -d PODCIDR -j ACCEPT), or find what set \
                      the policy (Docker >= 1.13 sets FORWARD DROP)"
                    .into(),
            });
        }
    }
    out
}

/// A pod that reaches itself through its own Service's ClusterIP keeps its own address as the
/// source: it receives a packet from itself (a martian) and the reply never matches the
/// connection. kube-proxy masquerades this case (`KUBE-SEP-… -s POD -j KUBE-MARK-MASQ`).
pub fn hairpin_no_masquerade(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, _) in cx.cluster.nodes.iter().enumerate() {
        for pod in cx.facts.pods_of(i) {
            for sp in cx
                .facts
                .services_to(i, pod.addr)
                .into_iter()
                .filter(|s| s.kind == ServiceKind::ClusterIp)
            {
                let t = probe_from_pod(cx.cluster, pod, sp.vip, sp.proto, sp.port);
                let mut share = 0.0;
                let mut ev = Vec::new();
                for p in &t.paths {
                    let Some(h) = p.hops.last() else { continue };
                    let back = matches!(&p.outcome, Outcome::DeliveredToPod { to, .. } if to.addr == pod.addr);
                    if !back || h.packet_out.src != pod.addr {
                        continue;
                    }
                    share += p.probability;
                    if let Some(st) = p
                        .hops
                        .iter()
                        .flat_map(|h| &h.steps)
                        .find(|st| matches!(st.effect, Effect::Dnat { .. }))
                        && let Some(r) = &st.rule
                    {
                        ev.push(Evidence::new(
                            EvidenceKind::Rule,
                            format!("{}/{}#{}: {}", r.table, r.chain, r.index, r.text),
                        ));
                    }
                }
                if share <= 0.0 {
                    continue;
                }
                ev.push(Evidence::new(
                    EvidenceKind::Trace,
                    format!(
                        "probe {} -> {}: DNAT back to {}, source still {} (p={share:.3})",
                        pod.label(),
                        sp.label(),
                        pod.addr,
                        pod.addr
                    ),
                ));
                out.push(Finding {
                    check: HAIRPIN_NO_MASQUERADE.into(),
                    severity: Severity::Error,
                    node: Some(cx.node_name(i)),
                    summary: format!(
                        "{} reaching its own Service {} is sent back to itself with its own \
                         source address (hairpin without masquerade): the connection fails \
                         {}",
                        pod.label(),
                        sp.label(),
                        if share < 1.0 - 1e-9 {
                            format!("whenever the Service picks it (p={share:.3})")
                        } else {
                            "always".into()
                        }
                    ),
                    evidence: ev,
                    fix: "masquerade hairpin traffic: kube-proxy's KUBE-SEP chain marks it \
                          (-s POD -j KUBE-MARK-MASQ) and KUBE-POSTROUTING masquerades marked \
                          packets; check that both are there (--masquerade-all also works), or \
                          for bridge CNIs set hairpin_mode on the pod ports"
                        .into(),
                });
            }
        }
    }
    out
}

/// An address in the node's first global subnet that the node does not own (a neighbour on
/// the node network), for probes from outside when no `--probe` address is given.
fn neighbour_address(cx: &Cx<'_>, i: usize, family: Family) -> Option<IpAddr> {
    let routes = &cx.cluster.nodes[i].node.routes;
    for ia in routes.addresses.iter().filter(|a| a.ifname != "lo") {
        for a in &ia.addrs {
            if Family::of(&a.local) != family {
                continue;
            }
            let net = a.subnet();
            if net.prefix_len() + 2 > net.max_prefix_len() {
                continue;
            }
            let candidate = match net {
                ipnet::IpNet::V4(n) => {
                    IpAddr::V4(Ipv4Addr::from(u32::from(n.broadcast()).wrapping_sub(1)))
                }
                ipnet::IpNet::V6(n) => {
                    IpAddr::V6(Ipv6Addr::from(u128::from(n.broadcast()).wrapping_sub(1)))
                }
            };
            if candidate.is_loopback() || candidate.is_unspecified() {
                continue;
            }
            if !routes.is_local_address(candidate) && cx.cluster.owner_of(candidate).is_none() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A packet from `src` (outside node `i`) to `dst`, arriving on node `i`'s interface of the
/// route back to `src`.
fn outside_packet(
    cluster: &Cluster,
    i: usize,
    src: IpAddr,
    dst: IpAddr,
    proto: Protocol,
    port: u16,
) -> Option<Packet> {
    let lk = cluster.nodes[i].node.routes.lookup(&Flow::to(src));
    let RouteOutcome::Unicast { hops, .. } = &lk.outcome else {
        return None;
    };
    let dev = hops.first()?.dev.clone();
    let mut p = Packet::with_proto(src, dst, proto, port).arriving_on(dev);
    if proto.has_ports() {
        p = p.with_sport(PROBE_SPORT);
    }
    Some(p)
}

/// Traces a packet from outside to `dst`:`port` on node `i`: from the first `--probe`
/// address of the family, else another node's address, else a neighbour on the node network.
pub fn probe_to_node(
    cx: &Cx<'_>,
    i: usize,
    dst: IpAddr,
    proto: Protocol,
    port: u16,
) -> Option<ClusterTrace> {
    let family = Family::of(&dst);
    let src = cx
        .facts
        .probes
        .iter()
        .copied()
        .find(|a| Family::of(a) == family)
        .or_else(|| {
            cx.cluster
                .nodes
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != i)
                .find_map(|(_, s)| crate::resolve::node_primary_addr(s, Some(family)))
        })
        .or_else(|| neighbour_address(cx, i, family))?;
    let pkt = outside_packet(cx.cluster, i, src, dst, proto, port)?;
    Some(cluster::trace(cx.cluster, i, &pkt, &probe_options()))
}

/// Clients (`--probe` addresses, and pods on the node) whose packets to a LoadBalancer IP are
/// dropped after kube-proxy's `KUBE-FW-…` chain (loadBalancerSourceRanges).
pub fn lb_source_ranges(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for i in 0..cx.cluster.nodes.len() {
        for sp in cx
            .facts
            .services
            .iter()
            .filter(|sp| sp.node == i && sp.kind == ServiceKind::LoadBalancer)
        {
            let family = Family::of(&sp.vip);
            let mut clients: Vec<(String, ClusterTrace)> = Vec::new();
            for c in cx.facts.probes.iter().filter(|a| Family::of(a) == family) {
                if let Some(pkt) = outside_packet(cx.cluster, i, *c, sp.vip, sp.proto, sp.port) {
                    clients.push((
                        c.to_string(),
                        cluster::trace(cx.cluster, i, &pkt, &probe_options()),
                    ));
                }
            }
            for pod in cx
                .facts
                .pods_of(i)
                .filter(|p| Family::of(&p.addr) == family)
                .take(PODS_PER_NODE)
            {
                clients.push((
                    pod.label(),
                    probe_from_pod(cx.cluster, pod, sp.vip, sp.proto, sp.port),
                ));
            }
            let allowed: Vec<String> = cx.facts.rules[i]
                .iter()
                .filter(|r| r.chain.starts_with("KUBE-FW-") && r.opt("-s").is_some())
                .filter(|r| {
                    r.comment()
                        .is_some_and(|c| sp.name.as_deref().is_some_and(|n| c.starts_with(n)))
                })
                .map(|r| r.opt("-s").unwrap_or_default().to_string())
                .collect();
            for (who, t) in clients {
                let blocked: Vec<&ClusterPath> = t
                    .paths
                    .iter()
                    .filter(|p| p.outcome.is_failure())
                    .filter(|p| {
                        p.hops.iter().flat_map(|h| &h.steps).any(|st| {
                            st.chain.as_deref().is_some_and(|c| {
                                c.starts_with("KUBE-FW-") || c == "KUBE-PROXY-FIREWALL"
                            })
                        })
                    })
                    .collect();
                let Some(p) = blocked.first() else { continue };
                let mut evidence = Vec::new();
                if let Some(Verdict::Dropped {
                    by: Culprit::Rule { rule },
                    ..
                }) = last_verdict(p)
                {
                    evidence.push(Evidence::new(
                        EvidenceKind::Rule,
                        format!(
                            "{}/{}#{}: {}",
                            rule.table, rule.chain, rule.index, rule.text
                        ),
                    ));
                }
                evidence.push(Evidence::new(
                    EvidenceKind::Trace,
                    format!("probe {who} -> {}: {}", sp.label(), path_line(p)),
                ));
                out.push(Finding {
                    check: LB_SOURCE_RANGES.into(),
                    severity: Severity::Error,
                    node: Some(cx.node_name(i)),
                    summary: format!(
                        "client {who} is blocked from LoadBalancer {} by its \
                         loadBalancerSourceRanges (allowed: {})",
                        sp.label(),
                        if allowed.is_empty() {
                            "none".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                    evidence,
                    fix: "add the client's range to the Service's \
                          spec.loadBalancerSourceRanges (clients inside the cluster need their \
                          pod CIDR or node addresses there too), or reach the Service by its \
                          ClusterIP from inside"
                        .into(),
                });
            }
        }
    }
    out
}

/// Pod traffic to an address outside the cluster (a `--probe` address) that leaves
/// the node with the pod's own source address: the outside needs a route back to the pod CIDR,
/// which only a routed pod network (BGP) gives.
pub fn masquerade_missing(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        let dests = &cx.facts.probes;
        let routed = s.bgpd.is_some();
        for &d in dests {
            if cx.facts.is_pod(d) || cx.cluster.owner_of(d).is_some() {
                continue;
            }
            let Some(pod) = cx
                .facts
                .pods_of(i)
                .find(|p| Family::of(&p.addr) == Family::of(&d))
            else {
                continue;
            };
            let t = probe_from_pod(cx.cluster, pod, d, Protocol::Tcp, PROBE_PORT);
            for p in &t.paths {
                let Outcome::LeftKnownNodes { out_dev, .. } = &p.outcome else {
                    continue;
                };
                let Some(h) = p.hops.last() else { continue };
                if h.packet_out.src != pod.addr {
                    continue;
                }
                let snat_rules = cx.facts.rules[i]
                    .iter()
                    .filter(|r| {
                        r.table == "nat" && matches!(r.target(), Some("MASQUERADE" | "SNAT"))
                    })
                    .count();
                out.push(Finding {
                    check: MASQUERADE_MISSING.into(),
                    severity: if routed {
                        Severity::Info
                    } else {
                        Severity::Warning
                    },
                    node: Some(cx.node_name(i)),
                    summary: format!(
                        "pod traffic to {d} leaves out {out_dev} with the pod's own source \
                         address {}: replies come back only if the network routes the pod CIDR{}",
                        pod.addr,
                        if routed {
                            " (bgpd runs here: fine if it advertises the pod CIDR)"
                        } else {
                            ""
                        }
                    ),
                    evidence: vec![
                        Evidence::new(
                            EvidenceKind::Trace,
                            format!("probe {} -> {d}: {}", pod.label(), path_line(p)),
                        ),
                        Evidence::new(
                            EvidenceKind::Note,
                            format!(
                                "nat: {snat_rules} MASQUERADE/SNAT rules, none matched {} -> {d}",
                                Endpoint::src_of(&h.packet_in),
                            ),
                        ),
                    ],
                    fix: "masquerade pod traffic to destinations outside the cluster (the CNI's \
                          natOutgoing / ip-masq-agent: iptables -t nat -A POSTROUTING -s \
                          PODCIDR ! -d CLUSTERCIDR -j MASQUERADE), or advertise the pod CIDR to \
                          the network (bgpd)"
                        .into(),
                });
                break;
            }
        }
    }
    out
}

/// UDP conntrack entries whose DNAT points at an endpoint a new flow with the same tuple would
/// no longer reach: the Service's endpoints changed and the entry (refreshed by every packet
/// of a steady UDP stream) keeps the flow on the old one.
pub fn stale_udp_conntrack(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        let entries: Vec<_> = s
            .node
            .conntrack
            .entries()
            .iter()
            .filter(|e| e.proto == Protocol::Udp && e.is_dnat())
            .collect();
        if entries.is_empty() {
            continue;
        }
        // the node as a new flow sees it: the same rules and routes, no conntrack entries
        let mut fresh = s.clone();
        fresh.node.conntrack = Default::default();
        let alone = Cluster::new(vec![fresh], cx.cluster.objects.clone());
        for e in entries {
            let (o, r) = (&e.orig, &e.reply);
            let pinned = Endpoint {
                addr: r.src,
                port: r.sport,
            };
            let pkt = match cx.facts.pods_of(i).find(|p| p.addr == o.src) {
                Some(pod) => Packet::udp(o.src, o.dst, o.dport)
                    .with_sport(o.sport)
                    .arriving_on(pod.dev.clone()),
                None if s.node.routes.is_local_address(o.src) => {
                    Packet::udp(o.src, o.dst, o.dport).with_sport(o.sport)
                }
                None => match outside_packet(&alone, 0, o.src, o.dst, Protocol::Udp, o.dport) {
                    Some(p) => p.with_sport(o.sport),
                    None => continue,
                },
            };
            let t = cluster::trace(&alone, 0, &pkt, &probe_options());
            let now: Vec<Endpoint> = t
                .paths
                .iter()
                .filter_map(|p| match last_verdict(p) {
                    Some(Verdict::Forwarded { dst, .. }) => Some(*dst),
                    Some(Verdict::Delivered { to, .. }) => Some(*to),
                    _ => None,
                })
                .collect();
            if now.contains(&pinned) {
                continue;
            }
            let now_text = if now.is_empty() {
                t.paths
                    .first()
                    .map(path_line)
                    .unwrap_or_else(|| "nothing".into())
            } else {
                now.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let orig = Endpoint {
                addr: o.dst,
                port: o.dport,
            };
            out.push(Finding {
                check: STALE_UDP_CONNTRACK.into(),
                severity: Severity::Error,
                node: Some(cx.node_name(i)),
                summary: format!(
                    "UDP flow {}:{} -> {orig} is pinned by conntrack to {pinned}, which the \
                     rules no longer send it to (a new flow would go to {now_text})",
                    o.src, o.sport
                ),
                evidence: vec![
                    Evidence::new(
                        EvidenceKind::Conntrack,
                        format!(
                            "udp src={} dst={} sport={} dport={} reply src={} dst={} sport={} \
                             dport={}",
                            o.src, o.dst, o.sport, o.dport, r.src, r.dst, r.sport, r.dport
                        ),
                    ),
                    Evidence::new(
                        EvidenceKind::Trace,
                        format!("the same packet as a new flow: {now_text}"),
                    ),
                ],
                fix: format!(
                    "delete the stale entry: conntrack -D -p udp --orig-dst {} --dst-nat {} \
                     (kube-proxy does this when an endpoint goes away; a steady one-way stream \
                     keeps the entry alive forever otherwise)",
                    o.dst, r.src
                ),
            });
        }
    }
    out
}
