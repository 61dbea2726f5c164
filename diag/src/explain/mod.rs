//! The answer, in the shape people and programs read: [`Report`] (the documented JSON schema,
//! `diag.trace/v1`), rendered as text (verdict first), JSON or a Graphviz digraph. Pure.
//!
//! ```text
//!   ClusterTrace + request (parties, entry) + node notes ──Report::new──> Report
//!      Report ──text::render──> "DROPPED on node1 at filter/KUBE-SERVICES rule 3: ..."
//!             ──serde_json────> {"schema": "diag.trace/v1", "verdict": {...}, "paths": [...]}
//!             ──dot::render───> digraph diag_trace { ... }
//! ```
//! Field names are a stable interface (docs/diag.md lists them); drop reason codes are the
//! kernel's `skb_drop_reason` names from `dataplane::trace::DropReason`.

pub mod dot;
pub mod text;

use std::collections::BTreeMap;

use dataplane::trace::{Culprit, Endpoint, RuleRef, Verdict};
use dataplane::{CtState, Packet};
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, ClusterPath, ClusterTrace, Hop, Outcome};
use crate::resolve::{Entry, Party};
use crate::snapshot::Snapshot;

/// The schema name and version of [`Report`] JSON.
pub const SCHEMA: &str = "diag.trace/v1";

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// Every path reaches a pod or a node's socket.
    Delivered,
    /// Every path is dropped, refused, loops or exceeds the hop bound.
    Dropped,
    /// Every path leaves the known nodes (no bundle for the next hop).
    LeftKnownNodes,
    /// Something not modelled decides every path.
    NotModelled,
    /// Paths end in different ways.
    Mixed,
}

/// The first line, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The kind.
    pub kind: VerdictKind,
    /// The drop reason code when every failing path has the same one.
    pub code: Option<String>,
    /// The first line of the text output.
    pub text: String,
    /// The exit status diag returns (0: no path fails, 1: some path fails).
    pub exit_code: i32,
}

/// What was traced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The source.
    pub src: Party,
    /// The destination.
    pub dst: Party,
    /// Protocol (`tcp`, `udp`, `icmp`).
    pub proto: String,
    /// Source port (0 for ICMP).
    pub sport: u16,
    /// Destination port (0 for ICMP).
    pub dport: u16,
    /// The conntrack state assumed where no entry matches.
    pub ct_state: CtState,
    /// Where it enters.
    pub entry: Entry,
    /// The packet as it enters the first node.
    pub packet: Packet,
}

/// One way through the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportPath {
    /// Probability.
    pub probability: f64,
    /// How it ends.
    pub outcome: Outcome,
    /// The outcome in one line (`DELIVERED to web/b (198.18.66.2:8080) on node2`).
    pub summary: String,
    /// The nodes passed, with the tracer's steps and verdict on each.
    pub hops: Vec<Hop>,
}

/// A destination the packet reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportEndpoint {
    /// Address and port (after NAT).
    pub endpoint: Endpoint,
    /// The pod there (`ns/name`), when known.
    pub pod: Option<String>,
    /// The node it is delivered on, or the last known node it leaves.
    pub node: String,
    /// The outcome kind (`delivered_to_pod`, `delivered_local`, `left_known_nodes`).
    pub kind: String,
    /// Summed probability.
    pub probability: f64,
    /// Whether the source address was rewritten (SNAT / MASQUERADE) on the way.
    pub source_rewritten: bool,
}

/// Something the trace assumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAssumption {
    /// The node (`None`: about the request).
    pub node: Option<String>,
    /// Code: the tracer's (`RECENT_HISTORY`, `CONNTRACK`, ...), `ENTRY` (where the packet was
    /// assumed to enter) or `BUNDLE` (a part missing, truncated or edited).
    pub code: String,
    /// Where (`filter/INPUT`, `routing`, `entry`, a bundle part).
    pub stage: String,
    /// The rule it concerns.
    pub rule: Option<RuleRef>,
    /// In words.
    pub text: String,
}

/// A node the trace used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// Where its state came from (a bundle path, `live`).
    pub origin: String,
    /// When it was collected.
    pub time: String,
    /// Kernel release.
    pub kernel: Option<String>,
}

impl NodeInfo {
    /// The facts of a snapshot.
    pub fn of(s: &Snapshot) -> NodeInfo {
        NodeInfo {
            name: s.name().to_string(),
            origin: s.origin.clone(),
            time: s.manifest.time.clone(),
            kernel: s.manifest.kernel.clone(),
        }
    }
}

/// `diag trace` output (`--json` prints exactly this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: String,
    /// The verdict (the first line).
    pub verdict: Summary,
    /// What was traced.
    pub request: Request,
    /// Every path, most probable first.
    pub paths: Vec<ReportPath>,
    /// Where the packet ends up, with probabilities (a Service's endpoints).
    pub endpoints: Vec<ReportEndpoint>,
    /// What was assumed.
    pub assumptions: Vec<ReportAssumption>,
    /// Probability not explored (path bound).
    pub unexplored_probability: f64,
    /// The nodes known.
    pub nodes: Vec<NodeInfo>,
}

/// The `--comment` of an iptables rule as written (`-m comment --comment "a b"`).
pub fn rule_comment(text: &str) -> Option<String> {
    let at = text.find("--comment ")? + "--comment ".len();
    let rest = &text[at..];
    if let Some(r) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = r.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        Some(out)
    } else {
        rest.split_whitespace().next().map(String::from)
    }
}

/// The target of a rule as written (`REJECT --reject-with icmp-port-unreachable`).
fn rule_target(text: &str) -> Option<String> {
    let at = text.rfind(" -j ")? + 4;
    Some(text[at..].trim().to_string())
}

fn rule_at(rule: &RuleRef) -> String {
    let what = match rule_comment(&rule.text) {
        Some(c) => format!("\"{c}\""),
        None => rule.text.clone(),
    };
    format!(
        "at {}/{} rule {}: {what}",
        rule.table, rule.chain, rule.index
    )
}

/// Where and why a node-local path ended without delivery, after `at` (`at filter/KUBE-SERVICES
/// rule 3: "..." (REJECT icmp-port-unreachable)`), with the reason code.
fn failure_detail(v: &Verdict) -> String {
    let mut s = match v {
        Verdict::Rejected { by, with } => format!("{} (REJECT {})", rule_at(by), with.name),
        Verdict::Dropped { by, .. } => match by {
            Culprit::Rule { rule } => {
                let t = rule_target(&rule.text).unwrap_or_else(|| "DROP".into());
                format!("{} ({t})", rule_at(rule))
            }
            Culprit::Policy { table, chain, .. } => {
                format!("at {table}/{chain}: chain policy DROP")
            }
            Culprit::Conntrack { why } => format!("at conntrack: {why}"),
        },
        Verdict::RpFilter { .. } => format!("at rp_filter: {v}"),
        Verdict::MtuExceeded { .. } => format!("at the MTU check: {v}"),
        v => format!("at routing: {v}"),
    };
    if let Some(r) = v.drop_reason()
        && !s.contains(r.code())
    {
        s.push_str(&format!(" [{r}]"));
    }
    s
}

/// The outcome of a path as (WORD, rest): `("DELIVERED", "to web/b (198.18.66.2:8080) on node2")`.
pub fn outcome_words(path: &ClusterPath) -> (&'static str, String) {
    let last = path.hops.last();
    match &path.outcome {
        Outcome::DeliveredToPod { node, dev, pod, to } => match pod {
            Some(p) => ("DELIVERED", format!("to {p} ({to}) on {node}")),
            None => ("DELIVERED", format!("to {to} on {node} (out {dev})")),
        },
        Outcome::DeliveredLocal { node, to, .. } => {
            ("DELIVERED", format!("to a socket on {node} at {to}"))
        }
        Outcome::Dropped { node, .. } => {
            let d = last.map(|h| failure_detail(&h.verdict)).unwrap_or_default();
            ("DROPPED", format!("on {node} {d}"))
        }
        Outcome::LeftKnownNodes {
            node,
            out_dev,
            next_hop,
            dst,
        } => (
            "LEFT",
            format!(
                "the known nodes: {node} sends it to {dst} out {out_dev} via {next_hop}, which no \
                 bundle owns"
            ),
        ),
        Outcome::Loop { node, iif } => (
            "LOOP",
            format!("back on {node} at {iif} with the same packet"),
        ),
        Outcome::HopLimit { max_hops } => ("HOP LIMIT", format!("more than {max_hops} nodes")),
        Outcome::NotModelled { node } => (
            "NOT MODELLED",
            format!(
                "on {node}: {}",
                last.map(|h| h.verdict.to_string()).unwrap_or_default()
            ),
        ),
    }
}

fn summary_line(path: &ClusterPath) -> String {
    let (w, rest) = outcome_words(path);
    format!("{w} {rest}")
}

fn summarize(paths: &[ClusterPath], unexplored: f64) -> Summary {
    let kinds: Vec<VerdictKind> = paths
        .iter()
        .map(|p| match &p.outcome {
            o if o.is_delivered() => VerdictKind::Delivered,
            o if o.is_failure() => VerdictKind::Dropped,
            Outcome::LeftKnownNodes { .. } => VerdictKind::LeftKnownNodes,
            _ => VerdictKind::NotModelled,
        })
        .collect();
    let kind = match kinds.first() {
        Some(k) if kinds.iter().all(|x| x == k) => *k,
        Some(_) => VerdictKind::Mixed,
        None => VerdictKind::NotModelled,
    };
    let failing: Vec<String> = paths
        .iter()
        .filter(|p| p.outcome.is_failure())
        .map(|p| match &p.outcome {
            Outcome::Dropped { reason, .. } => reason.map(|r| r.to_string()).unwrap_or_default(),
            o => o.kind().to_uppercase(),
        })
        .collect();
    let code = failing
        .first()
        .filter(|c| !c.is_empty() && failing.iter().all(|x| x == *c))
        .cloned();
    // group paths by their line, keeping the most probable first
    let mut groups: Vec<(&'static str, String, f64)> = Vec::new();
    for p in paths {
        let (w, rest) = outcome_words(p);
        match groups.iter_mut().find(|g| g.0 == w && g.1 == rest) {
            Some(g) => g.2 += p.probability,
            None => groups.push((w, rest, p.probability)),
        }
    }
    let mut text = match groups.as_slice() {
        [] => "NOTHING traced".to_string(),
        [(w, rest, _)] => format!("{w} {rest}"),
        _ if kind != VerdictKind::Mixed => {
            let parts: Vec<String> = groups
                .iter()
                .map(|(_, rest, p)| format!("{rest} (p={p:.3})"))
                .collect();
            format!(
                "{} ({} ways): {}",
                groups[0].0,
                groups.len(),
                parts.join("; ")
            )
        }
        _ => {
            let parts: Vec<String> = groups
                .iter()
                .map(|(w, rest, p)| format!("{w} {rest} (p={p:.3})"))
                .collect();
            format!("MIXED: {}", parts.join("; "))
        }
    };
    if unexplored > 1e-9 {
        text.push_str(&format!("; unexplored p={unexplored:.3}"));
    }
    let fails = paths
        .iter()
        .any(|p| p.outcome.is_failure() && p.probability > 0.0);
    Summary {
        kind,
        code,
        text,
        exit_code: i32::from(fails),
    }
}

impl Report {
    /// Builds the report of a cluster trace.
    pub fn new(
        cluster: &Cluster,
        trace: &ClusterTrace,
        src: &Party,
        dst: &Party,
        entry: &Entry,
    ) -> Report {
        let paths: Vec<ReportPath> = trace
            .paths
            .iter()
            .map(|p| ReportPath {
                probability: p.probability,
                outcome: p.outcome.clone(),
                summary: summary_line(p),
                hops: p.hops.clone(),
            })
            .collect();
        let mut eps: BTreeMap<(Endpoint, String), ReportEndpoint> = BTreeMap::new();
        for p in &trace.paths {
            let (to, node, pod) = match &p.outcome {
                Outcome::DeliveredToPod { node, pod, to, .. } => (*to, node, pod.clone()),
                Outcome::DeliveredLocal { node, to, .. } => (*to, node, None),
                Outcome::LeftKnownNodes { node, dst, .. } => {
                    (*dst, node, cluster.pod_name(dst.addr))
                }
                _ => continue,
            };
            let rewritten = p
                .hops
                .last()
                .is_some_and(|h| h.packet_out.src != trace.packet.src);
            let e = eps
                .entry((to, p.outcome.kind().to_string()))
                .or_insert_with(|| ReportEndpoint {
                    endpoint: to,
                    pod,
                    node: node.clone(),
                    kind: p.outcome.kind().to_string(),
                    probability: 0.0,
                    source_rewritten: false,
                });
            e.probability += p.probability;
            e.source_rewritten |= rewritten;
        }
        let mut assumptions: Vec<ReportAssumption> = Vec::new();
        if let Some(t) = entry.assumption(src) {
            assumptions.push(ReportAssumption {
                node: Some(entry.node_name.clone()),
                code: "ENTRY".into(),
                stage: "entry".into(),
                rule: None,
                text: t,
            });
        }
        for na in &trace.assumptions {
            let a = &na.assumption;
            let code = serde_json::to_value(a.code)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            assumptions.push(ReportAssumption {
                node: na.node.clone(),
                code,
                stage: a.stage.clone(),
                rule: a.rule.clone(),
                text: a.text.clone(),
            });
        }
        for s in &cluster.nodes {
            for n in &s.notes {
                assumptions.push(ReportAssumption {
                    node: Some(s.name().to_string()),
                    code: "BUNDLE".into(),
                    stage: "bundle".into(),
                    rule: None,
                    text: n.clone(),
                });
            }
        }
        let p = &trace.packet;
        Report {
            schema: SCHEMA.to_string(),
            verdict: summarize(&trace.paths, trace.unexplored_probability),
            request: Request {
                src: src.clone(),
                dst: dst.clone(),
                proto: p.proto.to_string(),
                sport: if p.proto.has_ports() { p.sport } else { 0 },
                dport: if p.proto.has_ports() { p.dport } else { 0 },
                ct_state: p.ct_state,
                entry: entry.clone(),
                packet: p.clone(),
            },
            paths,
            endpoints: eps.into_values().collect(),
            assumptions,
            unexplored_probability: trace.unexplored_probability,
            nodes: cluster.nodes.iter().map(NodeInfo::of).collect(),
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_targets() {
        let t = "-A KUBE-SERVICES -d 198.19.0.10/32 -p tcp -m comment --comment \"web/front:http has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable";
        assert_eq!(
            rule_comment(t).as_deref(),
            Some("web/front:http has no endpoints")
        );
        assert_eq!(
            rule_target(t).as_deref(),
            Some("REJECT --reject-with icmp-port-unreachable")
        );
        assert_eq!(
            rule_comment("-A X -m comment --comment plain -j DROP").as_deref(),
            Some("plain")
        );
        assert_eq!(rule_comment("-A X -j DROP"), None);
    }
}
