//! Checks that read routes, policy routing rules, sysctls, links and conntrack counters:
//! missing routes to other nodes' pods, blackhole/unreachable/prohibit routes, rules to empty
//! tables, forwarding off, a path MTU below the pod interface's, a nearly full conntrack
//! table. Pure.
//!
//! ```text
//!   RouteState::lookup(to pod of another node)   ──> pod-route-missing (no route, wrong node)
//!   routes/rules of type blackhole|unreachable|prohibit (+ which known addresses they catch)
//!                                                ──> route-blackhole
//!   ip rule ... lookup T, table T has no routes  ──> rule-empty-table (not local, default)
//!   net.ipv4.ip_forward, conf.DEV.forwarding, net.ipv6.conf.all.forwarding ──> forwarding-off
//!   mtu(pod device) > mtu(route or device toward other nodes' pods)         ──> mtu-mismatch
//!   nf_conntrack_count / nf_conntrack_max >= 75 % / 90 %                     ──> conntrack-full
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

use dataplane::Family;
use dataplane::route::{Cause, Flow, Outcome, RouteProtocol, RouteType, RuleAction, TableId};
use ipnet::IpNet;

use super::{Cx, Evidence, EvidenceKind, Finding, Severity};
use crate::objects;
use crate::snapshot::Snapshot;

/// Check id.
pub const POD_ROUTE_MISSING: &str = "pod-route-missing";
/// Check id.
pub const ROUTE_BLACKHOLE: &str = "route-blackhole";
/// Check id.
pub const RULE_EMPTY_TABLE: &str = "rule-empty-table";
/// Check id.
pub const FORWARDING_OFF: &str = "forwarding-off";
/// Check id.
pub const MTU_MISMATCH: &str = "mtu-mismatch";
/// Check id.
pub const CONNTRACK_FULL: &str = "conntrack-full";

/// Addresses other nodes' pods have (host routes of other snapshots, and the first address of
/// every Node object's podCIDRs), with the node they belong to.
fn remote_pod_targets(cx: &Cx<'_>, i: usize) -> Vec<(IpAddr, String)> {
    let me = cx.cluster.nodes[i].name();
    let mut out: Vec<(IpAddr, String)> = Vec::new();
    for p in &cx.facts.pods {
        if p.node != i {
            out.push((p.addr, cx.node_name(p.node)));
        }
    }
    for n in &cx.cluster.objects.nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        let is_me = name == me
            || objects::node_addrs(n)
                .iter()
                .any(|a| cx.cluster.nodes[i].node.routes.is_local_address(*a));
        if is_me {
            continue;
        }
        let cidrs = n
            .spec
            .as_ref()
            .and_then(|s| {
                s.pod_cidrs
                    .clone()
                    .or_else(|| s.pod_cidr.clone().map(|c| vec![c]))
            })
            .unwrap_or_default();
        for c in cidrs {
            let Ok(net) = c.parse::<IpNet>() else {
                continue;
            };
            let Some(first) = net.hosts().next() else {
                continue;
            };
            if !out.iter().any(|(a, _)| net.contains(a)) {
                out.push((first, name.clone()));
            }
        }
    }
    out
}

fn bgpd_evidence(s: &Snapshot) -> Vec<Evidence> {
    match s.bgpd.as_ref().and_then(|b| b.neighbors.as_ref()) {
        Some(n) => sessions_down(n),
        None => Vec::new(),
    }
}

/// The sessions of `bgpd show neighbors --json` that are not Established.
fn sessions_down(n: &serde_json::Value) -> Vec<Evidence> {
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<Evidence>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(st) = m.get("state").and_then(|x| x.as_str())
                    && st != "Established"
                {
                    let peer = m
                        .get("address")
                        .or_else(|| m.get("peer"))
                        .or_else(|| m.get("name"))
                        .map(|p| {
                            p.as_str()
                                .map(String::from)
                                .unwrap_or_else(|| p.to_string())
                        })
                        .unwrap_or_else(|| "?".into());
                    out.push(Evidence::new(
                        EvidenceKind::Note,
                        format!("bgpd: neighbor {peer} is {st}"),
                    ));
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(n, &mut out);
    out
}

/// Another node's pods that this node cannot route to: no route at all, or a route whose next
/// hop is a third node.
pub fn pod_route_missing(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        let mut by_node: BTreeMap<String, Vec<Evidence>> = BTreeMap::new();
        for (addr, owner) in remote_pod_targets(cx, i) {
            let lk = s.node.routes.lookup(&Flow::to(addr));
            let text = match &lk.outcome {
                Outcome::NoRoute => format!("ip route get {addr}: no route (network unreachable)"),
                Outcome::Unicast { hops, route } => {
                    let via = hops.first().and_then(|h| h.gateway).unwrap_or(addr);
                    match cx.cluster.owner_of(via) {
                        Some((k, _)) if cx.node_name(k) != owner && k != i => format!(
                            "ip route get {addr}: {} leads to {} (the pod is on {owner})",
                            route
                                .as_ref()
                                .map(|r| r.to_string())
                                .unwrap_or_else(|| lk.outcome.to_string()),
                            cx.node_name(k)
                        ),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            by_node
                .entry(owner)
                .or_default()
                .push(Evidence::new(EvidenceKind::Route, text));
        }
        for (owner, mut evidence) in by_node {
            evidence.extend(bgpd_evidence(s));
            out.push(Finding {
                check: POD_ROUTE_MISSING.into(),
                severity: Severity::Error,
                node: Some(cx.node_name(i)),
                summary: format!("no usable route to the pods of {owner}"),
                evidence,
                fix: format!(
                    "install a route to {owner}'s pod CIDR via {owner}'s address (bgpd: check \
                     the session to the ToR or mesh with `bgpd show neighbors`, and that the \
                     route reached the kernel with `ip route show proto bgp`)"
                ),
            });
        }
    }
    out
}

fn kernel_v6_default_unreachable(r: &dataplane::route::Route) -> bool {
    r.family == Family::V6
        && r.dst.prefix_len() == 0
        && r.protocol() == RouteProtocol::Id(2)
        && r.kind == RouteType::Unreachable
}

/// Routes of type `blackhole`, `unreachable` or `prohibit`, and ip rules with those actions;
/// an error when one of them catches a known pod, node or Service address.
pub fn route_blackhole(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        let mut known: Vec<(IpAddr, String)> = remote_pod_targets(cx, i);
        known.extend(
            cx.facts
                .pods_of(i)
                .map(|p| (p.addr, format!("pod {}", p.label()))),
        );
        for (k, other) in cx.cluster.nodes.iter().enumerate() {
            if k != i
                && let Some(a) = crate::resolve::node_primary_addr(other, None)
            {
                known.push((a, format!("node {}", other.name())));
            }
        }
        known.extend(
            cx.facts
                .services
                .iter()
                .filter(|sp| sp.node == i)
                .map(|sp| (sp.vip, format!("Service {}", sp.label()))),
        );
        let mut caught: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (addr, what) in &known {
            let lk = s.node.routes.lookup(&Flow::to(*addr));
            let cause = match &lk.outcome {
                Outcome::Blackhole { cause }
                | Outcome::Unreachable { cause }
                | Outcome::Prohibit { cause } => cause,
                _ => continue,
            };
            let key = match cause {
                Cause::Route(r) => r.to_string(),
                Cause::Rule(r) => r.to_string().replace('\t', " "),
            };
            let w = if what.contains(' ') {
                format!("{what} ({addr})")
            } else {
                format!("{addr} (pods of {what})")
            };
            caught.entry(key).or_default().push(w);
        }
        let kinds = [
            RouteType::Blackhole,
            RouteType::Unreachable,
            RouteType::Prohibit,
        ];
        for r in &s.node.routes.routes {
            if !kinds.contains(&r.kind) || kernel_v6_default_unreachable(r) {
                continue;
            }
            let text = r.to_string();
            let hits = caught.remove(&text).unwrap_or_default();
            out.push(finding_for(
                cx,
                i,
                &format!("{} route", r.kind),
                &text,
                &hits,
            ));
        }
        for rule in &s.node.routes.rules {
            if !matches!(
                rule.action,
                RuleAction::Blackhole | RuleAction::Unreachable | RuleAction::Prohibit
            ) {
                continue;
            }
            let text = rule.to_string().replace('\t', " ");
            let hits = caught.remove(&text).unwrap_or_default();
            out.push(finding_for(cx, i, "policy rule", &text, &hits));
        }
    }
    out
}

fn finding_for(cx: &Cx<'_>, i: usize, what: &str, text: &str, hits: &[String]) -> Finding {
    let (severity, summary) = if hits.is_empty() {
        (
            Severity::Warning,
            format!("{what} `{text}` silently drops what it covers"),
        )
    } else {
        (
            Severity::Error,
            format!("{what} `{text}` drops traffic to {}", hits.join(", ")),
        )
    };
    Finding {
        check: ROUTE_BLACKHOLE.into(),
        severity,
        node: Some(cx.node_name(i)),
        summary,
        evidence: vec![Evidence::new(
            if what == "policy rule" {
                EvidenceKind::IpRule
            } else {
                EvidenceKind::Route
            },
            text.to_string(),
        )],
        fix: "if an IPAM block's blackhole route (proto bird) is meant to sit under per-pod \
              routes, the pod's more specific route is missing: recreate it (restart the CNI \
              agent on this node); otherwise delete the route (`ip route del TYPE PREFIX table \
              T`) or the rule (`ip rule del pref N`)"
            .into(),
    }
}

/// `ip rule ... lookup T` where table T holds no route of the rule's family: the lookup falls
/// through to the next rules, so traffic meant for that table takes another path.
pub fn rule_empty_table(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        for rule in &s.node.routes.rules {
            let RuleAction::Table(t) = &rule.action else {
                continue;
            };
            if *t == TableId::LOCAL || *t == TableId::UNSPEC || *t == TableId::DEFAULT {
                continue;
            }
            let n = s
                .node
                .routes
                .routes
                .iter()
                .filter(|r| r.family == rule.family && r.table == *t)
                .count();
            if n > 0 {
                continue;
            }
            let text = rule.to_string().replace('\t', " ");
            let main = *t == TableId::MAIN;
            out.push(Finding {
                check: RULE_EMPTY_TABLE.into(),
                severity: if main {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                node: Some(cx.node_name(i)),
                summary: format!(
                    "policy rule `{text}` looks up table {t}, which has no {} routes: matching \
                     traffic falls through to the next rules{}",
                    match rule.family {
                        Family::V4 => "IPv4",
                        Family::V6 => "IPv6",
                    },
                    if main {
                        " (the main table is empty)"
                    } else {
                        ""
                    }
                ),
                evidence: vec![
                    Evidence::new(EvidenceKind::IpRule, text),
                    Evidence::new(
                        EvidenceKind::Route,
                        format!("ip route show table {t}: (empty)"),
                    ),
                ],
                fix: format!(
                    "restore table {t}'s routes (restart the agent that owns them), or delete \
                     the rule: ip rule del pref {}",
                    rule.priority
                ),
            });
        }
    }
    out
}

/// `net.ipv4.ip_forward = 0`, `conf.DEV.forwarding = 0` on an interface that is up, or
/// `net.ipv6.conf.all.forwarding = 0` on a node routing IPv6 pods.
pub fn forwarding_off(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let fix = "sysctl -w net.ipv4.ip_forward=1 (and conf.DEV.forwarding=1) and make it persist \
               (sysctl.d; systemd-networkd resets it unless the .network file has \
               IPForward=yes)";
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        let sys = &s.node.sysctls;
        if sys.ipv4_forwarding() == Some(false) {
            out.push(Finding {
                check: FORWARDING_OFF.into(),
                severity: Severity::Error,
                node: Some(cx.node_name(i)),
                summary: "IPv4 forwarding is off: the node routes nothing for its pods or \
                          other nodes"
                    .into(),
                evidence: vec![Evidence::new(
                    EvidenceKind::Sysctl,
                    "net.ipv4.ip_forward = 0",
                )],
                fix: fix.into(),
            });
        } else {
            let mut devs = Vec::new();
            for l in &s.node.routes.links {
                if l.is_loopback() || !l.is_up() {
                    continue;
                }
                let key = format!("net.ipv4.conf.{}.forwarding", l.ifname);
                if sys.num(&key) == Some(0) {
                    devs.push(Evidence::new(EvidenceKind::Sysctl, format!("{key} = 0")));
                }
            }
            if !devs.is_empty() {
                let names: Vec<String> = devs
                    .iter()
                    .map(|e| {
                        e.text
                            .trim_start_matches("net.ipv4.conf.")
                            .trim_end_matches(".forwarding = 0")
                            .to_string()
                    })
                    .collect();
                out.push(Finding {
                    check: FORWARDING_OFF.into(),
                    severity: Severity::Error,
                    node: Some(cx.node_name(i)),
                    summary: format!(
                        "forwarding is off on {}: packets arriving there are not forwarded",
                        names.join(", ")
                    ),
                    evidence: devs,
                    fix: fix.into(),
                });
            }
        }
        let v6_pods = cx
            .facts
            .pods_of(i)
            .any(|p| Family::of(&p.addr) == Family::V6);
        if v6_pods && sys.ipv6_forwarding() == Some(false) {
            out.push(Finding {
                check: FORWARDING_OFF.into(),
                severity: Severity::Error,
                node: Some(cx.node_name(i)),
                summary: "IPv6 forwarding is off but the node routes IPv6 pods".into(),
                evidence: vec![Evidence::new(
                    EvidenceKind::Sysctl,
                    "net.ipv6.conf.all.forwarding = 0",
                )],
                fix: "sysctl -w net.ipv6.conf.all.forwarding=1 and make it persist".into(),
            });
        }
    }
    out
}

/// A pod interface whose MTU is larger than the MTU toward other nodes' pods or the probe
/// addresses (the route's `mtu`, else the output device's): full-size packets with DF set are
/// dropped on the way (PKT_TOO_BIG), and a path MTU black hole follows when the ICMP error
/// does not get back.
pub fn mtu_mismatch(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        let routes = &s.node.routes;
        let mut targets: Vec<IpAddr> = remote_pod_targets(cx, i).into_iter().map(|t| t.0).collect();
        targets.extend(cx.facts.probes.iter().copied());
        let mut seen: BTreeMap<(String, String), Finding> = BTreeMap::new();
        for pod in cx.facts.pods_of(i) {
            let Some(pod_mtu) = routes.link(&pod.dev).and_then(|l| l.mtu) else {
                continue;
            };
            for t in &targets {
                if Family::of(t) != Family::of(&pod.addr) {
                    continue;
                }
                let lk = routes.lookup(&Flow::to(*t).from(pod.addr).iif(&pod.dev));
                let Outcome::Unicast { hops, route } = &lk.outcome else {
                    continue;
                };
                let Some(h) = hops.first() else { continue };
                let dev_mtu = routes.link(&h.dev).and_then(|l| l.mtu);
                let route_mtu = route.as_ref().and_then(|r| r.mtu());
                let Some(path) = route_mtu.or(dev_mtu) else {
                    continue;
                };
                if path >= pod_mtu {
                    continue;
                }
                let key = (pod.dev.clone(), h.dev.clone());
                if seen.contains_key(&key) {
                    continue;
                }
                let route_text = route
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| lk.outcome.to_string());
                let mut evidence = vec![
                    Evidence::new(EvidenceKind::Link, format!("{} mtu {pod_mtu}", pod.dev)),
                    Evidence::new(
                        EvidenceKind::Route,
                        format!(
                            "ip route get {t} from {} iif {}: {route_text}",
                            pod.addr, pod.dev
                        ),
                    ),
                ];
                if let Some(m) = dev_mtu {
                    evidence.push(Evidence::new(
                        EvidenceKind::Link,
                        format!("{} mtu {m}", h.dev),
                    ));
                }
                seen.insert(
                    key,
                    Finding {
                        check: MTU_MISMATCH.into(),
                        severity: Severity::Warning,
                        node: Some(cx.node_name(i)),
                        summary: format!(
                            "pod interface {} has MTU {pod_mtu} but the path out {} allows {path}: \
                             packets over {path} bytes with DF set are dropped (PKT_TOO_BIG)",
                            pod.dev, h.dev
                        ),
                        evidence,
                        fix: format!(
                            "set the pods' MTU (the CNI's mtu setting, and the host-side veth) to \
                             at most {path}, minus any tunnel overhead; or raise {}'s MTU to \
                             match the network",
                            h.dev
                        ),
                    },
                );
            }
        }
        out.extend(seen.into_values());
    }
    out
}

/// `nf_conntrack_count` at 75 % (warning) or 90 % (error) of `nf_conntrack_max`.
pub fn conntrack_full(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        let sys = &s.node.sysctls;
        let (Some(count), Some(max)) = (sys.conntrack_count(), sys.conntrack_max()) else {
            continue;
        };
        if max == 0 {
            continue;
        }
        let pct = count * 100 / max;
        let severity = match pct {
            90.. => Severity::Error,
            75.. => Severity::Warning,
            _ => continue,
        };
        out.push(Finding {
            check: CONNTRACK_FULL.into(),
            severity,
            node: Some(cx.node_name(i)),
            summary: format!(
                "the conntrack table is {}: new connections are dropped when it is full \
                 (\"nf_conntrack: table full, dropping packet\")",
                if pct >= 90 {
                    "nearly full"
                } else {
                    "filling up"
                }
            ),
            evidence: vec![
                Evidence::new(
                    EvidenceKind::Sysctl,
                    format!("net.netfilter.nf_conntrack_count = {count}"),
                ),
                Evidence::new(
                    EvidenceKind::Sysctl,
                    format!("net.netfilter.nf_conntrack_max = {max}"),
                ),
            ],
            fix: "raise net.netfilter.nf_conntrack_max (kube-proxy --conntrack-max-per-core), \
                  find what opens so many flows (conntrack -L | sort by source), shorten UDP \
                  timeouts, or NOTRACK high-volume traffic that needs no NAT"
                .into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgpd_sessions_not_established_are_evidence() {
        let v: serde_json::Value = serde_json::from_str(
            r#"[{"address": "198.18.0.1", "asn": "65000", "state": "Active", "since_secs": 3},
                {"address": "198.18.0.2", "asn": "65000", "state": "Established", "since_secs": 9}]"#,
        )
        .unwrap();
        let e = sessions_down(&v);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].text, "bgpd: neighbor 198.18.0.1 is Active");
    }
}
