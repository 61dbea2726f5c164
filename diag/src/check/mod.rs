//! `diag check`: the blackhole catalogue. Each check is a pure function over the snapshots (and
//! the facts derived from them) returning [`Finding`]s: what is wrong, on which node, the
//! evidence as the node shows it (a rule as `iptables-save` prints it, a route as `ip route`
//! does, a sysctl line, a conntrack entry, a probe trace's verdict) and what to do.
//!
//! ```text
//!   Cluster (snapshots + objects) + --probe addresses
//!     ──Facts::new──> pods (host routes), Service ports (KUBE-SERVICES), rules
//!     ──CATALOGUE[i].run(&Cx)──> [Finding { check, severity, node, summary, evidence, fix }]
//!     ──CheckReport──> text | JSON (diag.check/v1, docs/diag.md)
//! ```
//! Checks by what they read: [`netfilter`] (rules), [`routing`] (routes, ip rules, sysctls,
//! links, conntrack counters), [`flows`] (probe traces: a pod to another pod, to a Service, to
//! an outside address). Sources of the catalogue: `shared/reference/packet-tracing.md` §4b.

pub mod facts;
pub mod flows;
pub mod netfilter;
pub mod routing;

use std::fmt::Write;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::explain::NodeInfo;
pub use facts::Facts;

/// The schema name and version of [`CheckReport`] JSON.
pub const SCHEMA: &str = "diag.check/v1";

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing is dropped because of it.
    Info,
    /// Traffic may be dropped or misdelivered in some cases.
    Warning,
    /// Traffic is dropped or misdelivered.
    Error,
}

impl Severity {
    /// `INFO`, `WARNING`, `ERROR`.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
        }
    }
}

/// What kind of thing a piece of evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// An iptables rule (`iptables-save` text) or a chain policy.
    Rule,
    /// A route (`ip route` text) or a route lookup.
    Route,
    /// A policy routing rule (`ip rule` text).
    IpRule,
    /// A sysctl (`key = value`).
    Sysctl,
    /// A conntrack entry (tuples, without the timer).
    Conntrack,
    /// A link (`ip link` facts: MTU).
    Link,
    /// A probe trace's outcome.
    Trace,
    /// Anything else (counts, bgpd status).
    Note,
}

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Evidence {
    /// What it is.
    pub kind: EvidenceKind,
    /// As the node shows it.
    pub text: String,
}

impl Evidence {
    /// Evidence of a kind.
    pub fn new(kind: EvidenceKind, text: impl Into<String>) -> Evidence {
        Evidence {
            kind,
            text: text.into(),
        }
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Finding {
    /// The check's id (`forwarding-off`).
    pub check: String,
    /// How bad.
    pub severity: Severity,
    /// The node (`None`: about several).
    pub node: Option<String>,
    /// What is wrong, in one line.
    pub summary: String,
    /// The rules, routes, sysctls or entries that show it.
    pub evidence: Vec<Evidence>,
    /// What to do.
    pub fix: String,
}

/// What a check reads.
pub struct Cx<'a> {
    /// The snapshots and objects.
    pub cluster: &'a Cluster,
    /// Derived facts.
    pub facts: Facts<'a>,
}

impl Cx<'_> {
    /// The name of node `i`.
    pub fn node_name(&self, i: usize) -> String {
        self.cluster.nodes[i].name().to_string()
    }
}

/// A check of the catalogue.
pub struct Check {
    /// Stable id (`service-no-endpoints`).
    pub id: &'static str,
    /// What it looks for.
    pub title: &'static str,
    /// Where the catalogue entry comes from (issue numbers of real cases).
    pub seen_in: &'static str,
    /// The check.
    pub run: fn(&Cx<'_>) -> Vec<Finding>,
}

/// Every check, in the order they run and print.
pub const CATALOGUE: &[Check] = &[
    Check {
        id: netfilter::SERVICE_NO_ENDPOINTS,
        title: "Service without endpoints: kube-proxy rejects its traffic",
        seen_in: "kubernetes#17359, #97360; calico#2024",
        run: netfilter::service_no_endpoints,
    },
    Check {
        id: netfilter::ETP_LOCAL_NO_LOCAL_ENDPOINTS,
        title: "externalTrafficPolicy: Local on a node without a local endpoint",
        seen_in: "kubernetes pkg/proxy (\"has no local endpoints\" DROP)",
        run: netfilter::etp_local_no_local_endpoints,
    },
    Check {
        id: flows::STALE_UDP_CONNTRACK,
        title: "UDP conntrack entry pinned to an endpoint the Service no longer has",
        seen_in: "kubernetes#19029, #48370, #125467, #139628",
        run: flows::stale_udp_conntrack,
    },
    Check {
        id: routing::POD_ROUTE_MISSING,
        title: "No route to another node's pods (BGP down, route not installed)",
        seen_in: "calico#2612, #8751",
        run: routing::pod_route_missing,
    },
    Check {
        id: routing::ROUTE_BLACKHOLE,
        title: "blackhole / unreachable / prohibit route",
        seen_in: "calico#2457, #2612, #8751, calicoctl#1822",
        run: routing::route_blackhole,
    },
    Check {
        id: routing::RULE_EMPTY_TABLE,
        title: "Policy routing rule to an empty table",
        seen_in: "kubeskoop e2e (ip route flush table)",
        run: routing::rule_empty_table,
    },
    Check {
        id: routing::FORWARDING_OFF,
        title: "IP forwarding off (ip_forward, conf.<if>.forwarding)",
        seen_in: "systemd#1411; calico#4779; openshift/origin#9931",
        run: routing::forwarding_off,
    },
    Check {
        id: flows::RP_FILTER_ASYMMETRIC,
        title: "Strict rp_filter on an asymmetric path",
        seen_in: "cilium#13130, #19761; projectcalico/felix#2082",
        run: flows::rp_filter_asymmetric,
    },
    Check {
        id: flows::FORWARD_POLICY_DROP,
        title: "filter FORWARD policy DROP without an accept for pod traffic",
        seen_in: "kubernetes#40182; moby PR #28257; flannel PR #872",
        run: flows::forward_policy_drop,
    },
    Check {
        id: netfilter::IPTABLES_BOTH_BACKENDS,
        title: "iptables-legacy and iptables-nft both hold rules",
        seen_in: "kubernetes#71305, #82361, #112477",
        run: netfilter::iptables_both_backends,
    },
    Check {
        id: netfilter::PORT_COLLISION,
        title: "hostPort / NodePort collision (a wormhole)",
        seen_in: "kube-router#612; kubernetes#58336; cilium#18227",
        run: netfilter::port_collision,
    },
    Check {
        id: flows::LB_SOURCE_RANGES,
        title: "loadBalancerSourceRanges blocking a client",
        seen_in: "kubernetes pkg/proxy KUBE-FW / KUBE-PROXY-FIREWALL",
        run: flows::lb_source_ranges,
    },
    Check {
        id: flows::MASQUERADE_MISSING,
        title: "Pod traffic leaving the cluster without masquerade",
        seen_in: "kubernetes ip-masq-agent; calico natOutgoing",
        run: flows::masquerade_missing,
    },
    Check {
        id: routing::MTU_MISMATCH,
        title: "Path MTU smaller than the pod interface's MTU",
        seen_in: "calico#8953, #7651, #1709",
        run: routing::mtu_mismatch,
    },
    Check {
        id: routing::CONNTRACK_FULL,
        title: "Conntrack table nearly full",
        seen_in: "kubernetes#18604",
        run: routing::conntrack_full,
    },
    Check {
        id: flows::HAIRPIN_NO_MASQUERADE,
        title: "Hairpin (a pod to its own Service) without masquerade",
        seen_in: "kubernetes#13375, #20475, #43966; kube-router#189",
        run: flows::hairpin_no_masquerade,
    },
];

/// `diag check` output (`--json` prints exactly this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// [`SCHEMA`].
    pub schema: String,
    /// The nodes checked.
    pub nodes: Vec<NodeInfo>,
    /// The ids of the checks run.
    pub checks: Vec<String>,
    /// What was found, most severe first.
    pub findings: Vec<Finding>,
    /// What the snapshots lack (parts missing at collection, truncated conntrack).
    pub notes: Vec<String>,
    /// 0 when no finding is a warning or an error, else 1.
    pub exit_code: i32,
}

/// Runs `checks` (all of [`CATALOGUE`] when empty) over the cluster.
pub fn run(cluster: &Cluster, probes: &[IpAddr], only: &[String]) -> CheckReport {
    let cx = Cx {
        cluster,
        facts: Facts::new(cluster, probes),
    };
    let mut findings = Vec::new();
    let mut checks = Vec::new();
    for c in CATALOGUE {
        if !only.is_empty() && !only.iter().any(|o| o == c.id) {
            continue;
        }
        checks.push(c.id.to_string());
        let mut f = (c.run)(&cx);
        f.sort();
        f.dedup();
        findings.extend(f);
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let exit_code = i32::from(findings.iter().any(|f| f.severity >= Severity::Warning));
    CheckReport {
        schema: SCHEMA.to_string(),
        nodes: cluster.nodes.iter().map(NodeInfo::of).collect(),
        checks,
        findings,
        notes: cluster
            .nodes
            .iter()
            .flat_map(|s| s.notes.iter().map(move |n| format!("{}: {n}", s.name())))
            .collect(),
        exit_code,
    }
}

impl CheckReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Human text: a count line, then each finding with its evidence and fix.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let count = |sev| self.findings.iter().filter(|f| f.severity == sev).count();
        let nodes: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        if self.findings.is_empty() {
            let _ = writeln!(
                s,
                "OK: no findings ({} checks on {})",
                self.checks.len(),
                nodes.join(", ")
            );
        } else {
            let _ = writeln!(
                s,
                "FINDINGS: {} error, {} warning, {} info ({} checks on {})",
                count(Severity::Error),
                count(Severity::Warning),
                count(Severity::Info),
                self.checks.len(),
                nodes.join(", ")
            );
        }
        for f in &self.findings {
            let node = f
                .node
                .as_deref()
                .map(|n| format!(" {n}:"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "\n{} [{}]{node} {}",
                f.severity.word(),
                f.check,
                f.summary
            );
            for e in &f.evidence {
                let _ = writeln!(s, "  {:?}: {}", e.kind, e.text);
            }
            let _ = writeln!(s, "  fix: {}", f.fix);
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\nnotes:");
            for n in &self.notes {
                let _ = writeln!(s, "  - {n}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_ids_are_unique_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for c in CATALOGUE {
            assert!(seen.insert(c.id), "{}", c.id);
            assert!(
                c.id.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'),
                "{}",
                c.id
            );
        }
        assert_eq!(CATALOGUE.len(), 16);
    }
}
