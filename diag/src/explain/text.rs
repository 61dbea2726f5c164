//! Human text: the verdict on the first line, then the request, each path with one line per
//! step (node, stage, the rule or route as written, its effect), the endpoints with their
//! probabilities, and the assumptions.
//!
//! ```text
//!   DROPPED on node1 at filter/KUBE-SERVICES rule 2: "web/empty:http has no endpoints" (REJECT ...) [NETFILTER_DROP]
//!   request: tcp 198.18.65.2:32768 -> 198.19.0.11:80 (NEW) from web/a (198.18.65.2) to svc/web/empty (198.19.0.11) port http/80
//!   enters node1 on cali… (the pod's interface: 198.18.65.2 dev cali… scope link)
//!   path (p=1.000): DROPPED on node1 ...
//!     node1  conntrack              NEW
//!     node1  filter/KUBE-SERVICES   KUBE-SERVICES#2 -A KUBE-SERVICES ... => REJECT with icmp-port-unreachable
//!     node1  => rejected with icmp-port-unreachable by ...
//!   assumptions:
//!     - node1 filter/INPUT: ...
//! ```

use std::fmt::Write;

use crate::resolve::EntryHow;

use super::Report;

/// Renders a report as text.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", r.verdict.text);
    let q = &r.request;
    let port = match (&q.dst.port_name, q.dst.port) {
        (Some(n), Some(p)) => format!(" port {n}/{p}"),
        _ => String::new(),
    };
    let mut pkt = q.packet.clone();
    pkt.iif = None;
    let pkt = pkt.to_string();
    let pkt = pkt.trim_end_matches(" (local)");
    let _ = writeln!(
        s,
        "request: {pkt} ({}) from {} to {}{port}",
        q.ct_state,
        q.src.label(),
        q.dst.label()
    );
    let e = &q.entry;
    let how = match &e.how {
        EntryHow::PodInterface { route } => format!(
            "enters {} on {} (the pod's interface: {route})",
            e.node_name,
            e.iif.as_deref().unwrap_or("?")
        ),
        EntryHow::Local => format!("sent by a process on {}", e.node_name),
        EntryHow::RouteBack { route } => format!(
            "enters {} on {} (assumed: the route back to the source is {route})",
            e.node_name,
            e.iif.as_deref().unwrap_or("?")
        ),
        EntryHow::Given => format!(
            "enters {} on {} (given)",
            e.node_name,
            e.iif.as_deref().unwrap_or("?")
        ),
    };
    let _ = writeln!(s, "{how}");
    let width = r
        .paths
        .iter()
        .flat_map(|p| &p.hops)
        .map(|h| h.node.len())
        .max()
        .unwrap_or(0);
    let n = r.paths.len();
    for (i, p) in r.paths.iter().enumerate() {
        if n == 1 {
            let _ = writeln!(s, "path (p={:.3}): {}", p.probability, p.summary);
        } else {
            let _ = writeln!(
                s,
                "path {} of {n} (p={:.3}): {}",
                i + 1,
                p.probability,
                p.summary
            );
        }
        for (k, h) in p.hops.iter().enumerate() {
            if k > 0 {
                let _ = writeln!(
                    s,
                    "  {:<width$}  arrives on {}: {}",
                    h.node,
                    h.iif.as_deref().unwrap_or("?"),
                    h.packet_in
                );
            }
            for st in &h.steps {
                let _ = writeln!(s, "  {:<width$}  {st}", h.node);
            }
            let _ = writeln!(s, "  {:<width$}  => {}", h.node, h.verdict);
        }
    }
    if !r.endpoints.is_empty() {
        let _ = writeln!(s, "endpoints:");
        for ep in &r.endpoints {
            let who = ep
                .pod
                .as_deref()
                .map(|p| format!("  {p}"))
                .unwrap_or_default();
            let how = match ep.kind.as_str() {
                "delivered_to_pod" => format!("on {}", ep.node),
                "delivered_local" => format!("a socket on {}", ep.node),
                _ => format!("beyond {}", ep.node),
            };
            let masq = if ep.source_rewritten {
                "  (source rewritten)"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {}{who}  {how}  p={:.3}{masq}",
                ep.endpoint, ep.probability
            );
        }
    }
    if r.unexplored_probability > 1e-9 {
        let _ = writeln!(
            s,
            "unexplored: p={:.3} (more paths than the bound)",
            r.unexplored_probability
        );
    }
    if !r.assumptions.is_empty() {
        let _ = writeln!(s, "assumptions:");
        for a in &r.assumptions {
            let node = a
                .node
                .as_deref()
                .map(|n| format!("{n} "))
                .unwrap_or_default();
            let rule = a
                .rule
                .as_ref()
                .map(|r| format!(" [{}#{}]", r.chain, r.index))
                .unwrap_or_default();
            let _ = writeln!(s, "  - {node}{}: {}{rule}", a.stage, a.text);
        }
    }
    s
}
