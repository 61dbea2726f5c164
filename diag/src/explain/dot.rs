//! A Graphviz digraph of the paths: the source, one box per node visit (the node, where it
//! arrived, what changed the packet, how it left), one ellipse per outcome; edges carry the
//! probability when below 1. Identical node visits shared by several paths are drawn once.
//!
//! ```text
//!   digraph diag_trace {
//!     src [label="web/a\n198.18.65.2", shape=ellipse];
//!     h0 [label="node1\nin cali…\nDNAT 198.19.0.10:80 -> 198.18.66.2:8080\nforwarded ... out eth0"];
//!     o0 [label="DELIVERED to web/b (198.18.66.2:8080) on node2", shape=ellipse, color=darkgreen];
//!     src -> h0; h0 -> h1 [label="p=0.500"]; h1 -> o0;
//!   }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write;

use dataplane::trace::Effect;

use crate::cluster::Hop;

use super::Report;

/// Escapes a string for a double-quoted DOT label (lines joined with `\n`).
pub fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn hop_label(h: &Hop) -> String {
    let mut lines = vec![h.node.clone()];
    lines.push(match &h.iif {
        Some(i) => format!("in {i}"),
        None => "sent locally".to_string(),
    });
    for st in &h.steps {
        match &st.effect {
            Effect::Dnat { .. }
            | Effect::Snat { .. }
            | Effect::NatFromConntrack { .. }
            | Effect::Reject { .. }
            | Effect::Drop => lines.push(format!("{} {}", st.stage, st.effect)),
            Effect::Route { route: Some(r), .. } => lines.push(format!("route {r}")),
            _ => {}
        }
    }
    lines.push(h.verdict.to_string());
    lines.join("\n")
}

/// Renders a report as a Graphviz digraph.
pub fn render(r: &Report) -> String {
    let mut s = String::from(
        "digraph diag_trace {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    let _ = writeln!(s, "  label=\"{}\";\n  labelloc=t;", escape(&r.verdict.text));
    let _ = writeln!(
        s,
        "  src [label=\"{}\", shape=ellipse];",
        escape(&if r.request.src.input == r.request.src.addr.to_string() {
            r.request.src.input.clone()
        } else {
            format!("{}\n{}", r.request.src.input, r.request.src.addr)
        })
    );
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut edges: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (outcome, p) in r.paths.iter().enumerate() {
        let mut prev = "src".to_string();
        let mut key = String::new();
        for h in &p.hops {
            // a visit is identified by everything before it and itself
            key.push_str(&format!(
                "|{}|{:?}|{}|{}",
                h.node, h.iif, h.packet_in, h.packet_out
            ));
            let id = match ids.get(&key) {
                Some(id) => id.clone(),
                None => {
                    let id = format!("h{}", ids.len());
                    let _ = writeln!(s, "  {id} [label=\"{}\"];", escape(&hop_label(h)));
                    ids.insert(key.clone(), id.clone());
                    id
                }
            };
            edges.insert((prev.clone(), id.clone()), h.probability);
            prev = id;
        }
        let oid = format!("o{outcome}");
        let color = if p.outcome.is_delivered() {
            "darkgreen"
        } else if p.outcome.is_failure() {
            "red"
        } else {
            "gray40"
        };
        let _ = writeln!(
            s,
            "  {oid} [label=\"{}\", shape=ellipse, color={color}];",
            escape(&format!("{}\np={:.3}", p.summary, p.probability))
        );
        edges.insert((prev, oid), 1.0);
    }
    for ((a, b), p) in &edges {
        if *p < 1.0 - 1e-9 {
            let _ = writeln!(s, "  {a} -> {b} [label=\"p={p:.3}\"];");
        } else {
            let _ = writeln!(s, "  {a} -> {b};");
        }
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_labels() {
        assert_eq!(escape("a \"b\"\nc\\d"), "a \\\"b\\\"\\nc\\\\d");
    }
}
