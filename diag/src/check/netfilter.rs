//! Checks that read iptables rules: Services kube-proxy rejects for lack of endpoints, the
//! externalTrafficPolicy: Local drop, two back ends holding rules, and ports claimed twice (a
//! NodePort and a hostPort, or two hostPorts: a "wormhole"). Pure.
//!
//! ```text
//!   rules(node) ── REJECT "… has no endpoints"        ──> service-no-endpoints
//!   nft maps no-endpoint-services|-nodeports:
//!               ── ELEM comment "ns/svc:port" : goto reject-chain ──> service-no-endpoints
//!               ── ELEM comment "ns/svc:port" : drop              ──> etp-local-no-local-endpoints
//!   ipvsadm -Sn ── -A without -a (or all -w 0)         ──> service-no-endpoints
//!               ── DROP   "… has no local endpoints"  ──> etp-local-no-local-endpoints
//!   NodeState::both_backends_active                    ──> iptables-both-backends
//!   KUBE-NODEPORTS --dport N + DNAT --dport N elsewhere ──> port-collision (+ a probe trace:
//!                                                            who gets node:N)
//! ```

use std::collections::BTreeMap;

use dataplane::ipvs::SockAddr;
use dataplane::nft;
use dataplane::node::{Backend, NodeState};
use dataplane::trace::{Effect, Verdict};
use dataplane::{Family, Protocol};

use super::facts::RuleAt;
use super::flows::probe_to_node;
use super::{Cx, Evidence, EvidenceKind, Finding, Severity};

/// Check id.
pub const SERVICE_NO_ENDPOINTS: &str = "service-no-endpoints";
/// Check id.
pub const ETP_LOCAL_NO_LOCAL_ENDPOINTS: &str = "etp-local-no-local-endpoints";
/// Check id.
pub const IPTABLES_BOTH_BACKENDS: &str = "iptables-both-backends";
/// Check id.
pub const PORT_COLLISION: &str = "port-collision";

fn service_of(comment: &str) -> String {
    comment.split_whitespace().next().unwrap_or("?").to_string()
}

/// Rules kube-proxy writes for a Service port with no ready endpoint:
/// `-m comment --comment "NS/SVC:PORT has no endpoints" ... -j REJECT`; in nftables mode an
/// element of the `no-endpoint-services` (`no-endpoint-nodeports`) verdict map that jumps to
/// a chain that rejects (kube-proxy's `goto reject-chain`); and IPVS virtual services
/// (`ipvsadm -Sn`) with no real server, or only servers of weight 0.
pub fn service_no_endpoints(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        let Some(ipvs) = &s.node.ipvs else { continue };
        for svc in &ipvs.services {
            if svc.servers.iter().any(|r| r.weight > 0) {
                continue;
            }
            let key = svc.key.to_ipvsadm();
            let mut evidence = vec![Evidence::new(
                EvidenceKind::Note,
                format!("ipvsadm -Sn: -A {key} -s {}", svc.scheduler.name()),
            )];
            evidence.extend(svc.servers.iter().map(|r| {
                Evidence::new(
                    EvidenceKind::Note,
                    format!("ipvsadm -Sn: -a {key} -r {} -w 0", SockAddr(r.addr, r.port)),
                )
            }));
            out.push(Finding {
                check: SERVICE_NO_ENDPOINTS.into(),
                severity: Severity::Error,
                node: Some(cx.node_name(i)),
                summary: format!(
                    "IPVS virtual service {key} has {}: new connections to it fail",
                    if svc.servers.is_empty() {
                        "no real server"
                    } else {
                        "only real servers of weight 0 (terminating)"
                    }
                ),
                evidence,
                fix: "check the Service's selector and its pods' readiness (kubectl get \
                      endpointslices -l kubernetes.io/service-name=NAME)"
                    .into(),
            });
        }
    }
    for i in 0..cx.cluster.nodes.len() {
        let mut by_svc: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &cx.facts.rules[i] {
            let Some(c) = r.comment() else { continue };
            if c.ends_with("has no endpoints") && r.target() == Some("REJECT") {
                by_svc.entry(service_of(&c)).or_default().push(r.evidence());
            }
        }
        for e in no_endpoint_elements(&cx.cluster.nodes[i].node) {
            if e.rejects {
                by_svc.entry(e.service).or_default().push(e.evidence);
            }
        }
        for (svc, ev) in by_svc {
            out.push(Finding {
                check: SERVICE_NO_ENDPOINTS.into(),
                severity: Severity::Error,
                node: Some(cx.node_name(i)),
                summary: format!(
                    "Service port {svc} has no ready endpoints: kube-proxy rejects its traffic \
                     (clients see connection refused / host unreachable)"
                ),
                evidence: ev
                    .into_iter()
                    .map(|t| Evidence::new(EvidenceKind::Rule, t))
                    .collect(),
                fix: format!(
                    "check the Service's selector and its pods' readiness: kubectl get \
                     endpointslices -l kubernetes.io/service-name={} -n {}",
                    svc.split(['/', ':']).nth(1).unwrap_or("NAME"),
                    svc.split('/').next().unwrap_or("NS")
                ),
            });
        }
    }
    out
}

/// Rules kube-proxy writes for an `externalTrafficPolicy: Local` Service on a node with no
/// local endpoint: `--comment "NS/SVC:PORT has no local endpoints" ... -j DROP`; in nftables
/// mode a `drop` element of the `no-endpoint-services` (`no-endpoint-nodeports`) map.
pub fn etp_local_no_local_endpoints(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for i in 0..cx.cluster.nodes.len() {
        let mut by_svc: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &cx.facts.rules[i] {
            let Some(c) = r.comment() else { continue };
            if c.ends_with("has no local endpoints") && r.target() == Some("DROP") {
                by_svc.entry(service_of(&c)).or_default().push(r.evidence());
            }
        }
        for e in no_endpoint_elements(&cx.cluster.nodes[i].node) {
            if !e.rejects {
                by_svc.entry(e.service).or_default().push(e.evidence);
            }
        }
        for (svc, ev) in by_svc {
            out.push(Finding {
                check: ETP_LOCAL_NO_LOCAL_ENDPOINTS.into(),
                severity: Severity::Warning,
                node: Some(cx.node_name(i)),
                summary: format!(
                    "{svc} has externalTrafficPolicy: Local and no endpoint on this node: \
                     external traffic (NodePort, LoadBalancer, external IPs) arriving here is \
                     dropped"
                ),
                evidence: ev
                    .into_iter()
                    .map(|t| Evidence::new(EvidenceKind::Rule, t))
                    .collect(),
                fix: "send external traffic only to nodes with a ready endpoint (the load \
                      balancer's health check on healthCheckNodePort does this), run an \
                      endpoint on this node, or use externalTrafficPolicy: Cluster"
                    .into(),
            });
        }
    }
    out
}

/// Both `iptables-legacy` and `iptables-nft` hold rules for one family: the kernel runs both,
/// and stale chains in one (often kube-proxy's from before a switch) still act.
pub fn iptables_both_backends(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        for family in [Family::V4, Family::V6] {
            if !s.node.both_backends_active(family) {
                continue;
            }
            let mut evidence = Vec::new();
            for st in s.node.iptables(family) {
                let n: usize = st
                    .ruleset
                    .tables
                    .iter()
                    .flat_map(|t| t.chains())
                    .map(|c| c.rules.len())
                    .sum();
                let kube = st
                    .ruleset
                    .tables
                    .iter()
                    .flat_map(|t| t.chains())
                    .filter(|c| c.name.starts_with("KUBE-"))
                    .count();
                let drops: Vec<String> = st
                    .ruleset
                    .tables
                    .iter()
                    .flat_map(|t| t.chains().iter().map(move |c| (t, c)))
                    .filter(|(_, c)| c.policy == Some(dataplane::iptables::Policy::Drop))
                    .map(|(t, c)| format!("{}/{} policy DROP", t.name, c.name))
                    .collect();
                let mut text = format!(
                    "{}-save: {n} rules, {kube} KUBE-* chains",
                    st.backend.command(family)
                );
                if !drops.is_empty() {
                    text.push_str(&format!(", {}", drops.join(", ")));
                }
                evidence.push(Evidence::new(EvidenceKind::Note, text));
            }
            let legacy = Backend::Legacy.command(family);
            out.push(Finding {
                check: IPTABLES_BOTH_BACKENDS.into(),
                severity: Severity::Warning,
                node: Some(cx.node_name(i)),
                summary: format!(
                    "both iptables back ends hold {} rules: the kernel runs both, so rules left \
                     in one (stale KUBE-SERVICES, a DROP policy) still act",
                    match family {
                        Family::V4 => "IPv4",
                        Family::V6 => "IPv6",
                    }
                ),
                evidence,
                fix: format!(
                    "use one back end everywhere (the one kube-proxy and the CNI use; \
                     update-alternatives --display iptables) and flush the other: \
                     {legacy}-save shows what the legacy side holds"
                ),
            });
        }
    }
    out
}

struct Claim<'a> {
    rule: RuleAt<'a>,
    what: String,
    nodeport: bool,
}

/// Ports claimed twice on a node: a NodePort (`KUBE-NODEPORTS --dport N`) and a DNAT rule
/// outside kube-proxy's chains for the same port (a CNI `portmap` hostPort), or two such DNATs
/// to different destinations. A probe to the node's address on that port shows which wins.
pub fn port_collision(cx: &Cx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cx.cluster.nodes.iter().enumerate() {
        let mut claims: BTreeMap<(Family, Protocol, u16), Vec<Claim<'_>>> = BTreeMap::new();
        for r in &cx.facts.rules[i] {
            if r.table != "nat" {
                continue;
            }
            let (Some(proto), Some(port)) = (r.proto(), r.dport()) else {
                continue;
            };
            let key = (r.family, proto, port);
            if r.chain == "KUBE-NODEPORTS" {
                let svc = r.comment().map(|c| service_of(&c)).unwrap_or_default();
                claims.entry(key).or_default().push(Claim {
                    what: format!("NodePort of {svc}"),
                    rule: r.clone(),
                    nodeport: true,
                });
            } else if !r.chain.starts_with("KUBE-") && r.target() == Some("DNAT") {
                let to = r.opt("--to-destination").unwrap_or("?").to_string();
                if claims
                    .get(&key)
                    .is_some_and(|v| v.iter().any(|c| !c.nodeport && c.what.ends_with(&to)))
                {
                    continue;
                }
                claims.entry(key).or_default().push(Claim {
                    what: format!("a DNAT (hostPort) to {to}"),
                    rule: r.clone(),
                    nodeport: false,
                });
            }
        }
        for ((family, proto, port), cl) in claims {
            if cl.len() < 2 {
                continue;
            }
            let whats: Vec<&str> = cl.iter().map(|c| c.what.as_str()).collect();
            let mut evidence: Vec<Evidence> = cl
                .iter()
                .map(|c| Evidence::new(EvidenceKind::Rule, c.rule.evidence()))
                .collect();
            let mut severity = Severity::Warning;
            let mut result = String::new();
            let addr = crate::resolve::node_primary_addr(s, Some(family));
            if let Some(t) = addr.and_then(|a| probe_to_node(cx, i, a, proto, port)) {
                for p in &t.paths {
                    let dnat = p
                        .hops
                        .iter()
                        .flat_map(|h| &h.steps)
                        .find(|st| matches!(st.effect, Effect::Dnat { .. }));
                    let Some(st) = dnat else { continue };
                    let Effect::Dnat { to, .. } = &st.effect else {
                        continue;
                    };
                    let by_kube = st.chain.as_deref().is_some_and(|c| c.starts_with("KUBE-"));
                    if !by_kube {
                        severity = Severity::Error;
                    }
                    if let Some(r) = &st.rule {
                        evidence.push(Evidence::new(
                            EvidenceKind::Trace,
                            format!(
                                "probe to {}:{port}/{proto}: DNAT to {to} by {}/{}#{}: {}{}",
                                addr.map(|a| a.to_string()).unwrap_or_default(),
                                r.table,
                                r.chain,
                                r.index,
                                r.text,
                                match &p.hops.last().map(|h| &h.verdict) {
                                    Some(Verdict::Forwarded { out_dev, .. }) =>
                                        format!(" -> forwarded out {out_dev}"),
                                    _ => String::new(),
                                }
                            ),
                        ));
                    }
                    result = if by_kube {
                        format!(
                            "; traffic to the node's port goes to the Service ({to}), the other claim never sees it"
                        )
                    } else {
                        format!(
                            "; traffic to the node's port goes to {to}, not to the Service's endpoints"
                        )
                    };
                    break;
                }
            }
            out.push(Finding {
                check: PORT_COLLISION.into(),
                severity,
                node: Some(cx.node_name(i)),
                summary: format!(
                    "{proto} port {port} is claimed by {}{result}",
                    whats.join(" and by ")
                ),
                evidence,
                fix: "give the hostPort pod another port or move it (hostPorts and NodePorts \
                      share the node's port space); remove stale CNI-HOSTPORT/CNI-DN rules of \
                      deleted pods; keep NodePorts inside --service-node-port-range"
                    .into(),
            });
        }
    }
    out
}

/// An element of kube-proxy's nftables `no-endpoint-services` / `no-endpoint-nodeports`
/// verdict maps.
struct NoEndpointElement {
    /// `ns/svc:port` (the element's comment), else the key as written.
    service: String,
    /// Whether it rejects (`goto reject-chain`: no endpoints at all) rather than drops
    /// (`drop`: externalTrafficPolicy Local without a local endpoint).
    rejects: bool,
    /// `nft ip kube-proxy map no-endpoint-services: KEY comment "…" : goto reject-chain`.
    evidence: String,
}

/// The elements of every table's `no-endpoint-services` and `no-endpoint-nodeports` maps
/// whose verdict drops, or jumps to a chain whose rules reject.
fn no_endpoint_elements(node: &NodeState) -> Vec<NoEndpointElement> {
    let Some(rs) = &node.nft else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in &rs.tables {
        for set in &t.sets {
            if !set.is_map()
                || !matches!(
                    set.name.as_str(),
                    "no-endpoint-services" | "no-endpoint-nodeports"
                )
            {
                continue;
            }
            for e in &set.elements {
                let Some(nft::Expr::Verdict(v)) = &e.data else {
                    continue;
                };
                let rejects = match v {
                    nft::Verdict::Drop => false,
                    nft::Verdict::Goto(c) | nft::Verdict::Jump(c) => {
                        let Some(chain) = t.chain(c) else { continue };
                        if !chain
                            .rules
                            .iter()
                            .any(|r| r.stmts.iter().any(|s| matches!(s, nft::Stmt::Reject(_))))
                        {
                            continue;
                        }
                        true
                    }
                    _ => continue,
                };
                let key = elem_key_text(&e.key);
                let comment = e
                    .comment
                    .as_ref()
                    .map(|c| format!(" comment {c:?}"))
                    .unwrap_or_default();
                let verdict = match v.target() {
                    Some(c) => format!("{} {c}", v.keyword()),
                    None => v.keyword().to_string(),
                };
                out.push(NoEndpointElement {
                    service: e.comment.clone().unwrap_or_else(|| key.clone()),
                    rejects,
                    evidence: format!(
                        "nft {} {} map {}: {key}{comment} : {verdict}",
                        t.family.as_str(),
                        t.name,
                        set.name
                    ),
                });
            }
        }
    }
    out
}

/// A set element's key as `nft list` prints it (`198.19.0.20 . tcp . 80`).
fn elem_key_text(e: &nft::Expr) -> String {
    match e {
        nft::Expr::Concat(parts) => parts
            .iter()
            .map(elem_key_text)
            .collect::<Vec<_>>()
            .join(" . "),
        nft::Expr::String(s) => s.clone(),
        nft::Expr::Number(n) => n.to_string(),
        nft::Expr::Prefix { addr, len } => format!("{}/{len}", elem_key_text(addr)),
        nft::Expr::Range(a, b) => format!("{}-{}", elem_key_text(a), elem_key_text(b)),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Bundle, FileEntry, FileStatus, Manifest, Part};
    use crate::check::Facts;
    use crate::cluster::Cluster;
    use crate::snapshot::Snapshot;

    #[test]
    fn ipvs_services_without_servers() {
        let mut b = Bundle::new(Manifest::new("n1", "t"), "B");
        b.put(
            FileEntry {
                part: Part::IpvsadmSave,
                file: None,
                command: "ipvsadm -Sn".into(),
                status: FileStatus::Ok,
                exit_code: Some(0),
                note: None,
                bytes: None,
                sha256: None,
                truncated: None,
            },
            Some(
                b"-A -t 198.19.0.10:80 -s rr\n-A -t 198.19.0.11:80 -s rr\n\
                  -a -t 198.19.0.11:80 -r 198.18.65.2:8080 -m -w 0\n\
                  -A -u 198.19.0.12:53 -s rr\n-a -u 198.19.0.12:53 -r 198.18.65.3:53 -m -w 1\n"
                    .to_vec(),
            ),
        );
        let c = Cluster::new(vec![Snapshot::from_bundle(&b).unwrap()], Default::default());
        let cx = Cx {
            cluster: &c,
            facts: Facts::new(&c, &[]),
        };
        let f = service_no_endpoints(&cx);
        let s: Vec<&str> = f.iter().map(|f| f.summary.as_str()).collect();
        assert_eq!(
            s,
            [
                "IPVS virtual service -t 198.19.0.10:80 has no real server: new connections to it fail",
                "IPVS virtual service -t 198.19.0.11:80 has only real servers of weight 0 (terminating): new connections to it fail"
            ]
        );
    }

    #[test]
    fn nft_no_endpoint_maps() {
        // kube-proxy's nftables mode as captured (dataplane's fixture): ns4/empty:http has no
        // endpoints (goto reject-chain), ns6/local:http no local endpoints (drop)
        let captured = include_str!("../../../dataplane/tests/fixtures/nft/kube-proxy.json");
        let json = captured.split_once('\n').unwrap().1;
        let mut b = Bundle::new(Manifest::new("n1", "t"), "B");
        b.put(
            FileEntry {
                part: Part::NftRuleset,
                file: None,
                command: "nft -j list ruleset".into(),
                status: FileStatus::Ok,
                exit_code: Some(0),
                note: None,
                bytes: None,
                sha256: None,
                truncated: None,
            },
            Some(json.as_bytes().to_vec()),
        );
        let c = Cluster::new(vec![Snapshot::from_bundle(&b).unwrap()], Default::default());
        let cx = Cx {
            cluster: &c,
            facts: Facts::new(&c, &[]),
        };
        let f = service_no_endpoints(&cx);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].summary
                .starts_with("Service port ns4/empty:http has no ready endpoints")
        );
        let ev: Vec<&str> = f[0].evidence.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            ev,
            [
                "nft ip kube-proxy map no-endpoint-services: 198.19.0.77 . tcp . 80 comment \"ns4/empty:http\" : goto reject-chain",
                "nft ip kube-proxy map no-endpoint-nodeports: tcp . 30077 comment \"ns4/empty:http\" : goto reject-chain",
                "nft ip6 kube-proxy map no-endpoint-services: 2001:db8:ffff::77 . tcp . 80 comment \"ns4/empty:http\" : goto reject-chain",
            ]
        );
        let f = etp_local_no_local_endpoints(&cx);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].summary
                .starts_with("ns6/local:http has externalTrafficPolicy: Local")
        );
        assert_eq!(f[0].evidence.len(), 2, "{:?}", f[0].evidence);
        assert!(
            f[0].evidence[1]
                .text
                .ends_with("tcp . 31000 comment \"ns6/local:http\" : drop")
        );
    }
}
