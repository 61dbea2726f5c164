//! Helpers for the tracer tests: the captured DUT node (`fixtures/trace/dut-node.json`, see
//! its header), rulesets loaded onto it, and a compact summary of a trace in the shape of
//! kube-proxy's `runPacketFlowTests` (`"198.18.65.2:8080, 198.18.65.3:8080"`, `DROP`, ...).

use std::net::IpAddr;
use std::path::Path;

use dataplane::Family;
use dataplane::iptables::Ruleset;
use dataplane::node::{Backend, NodeState};
use dataplane::route::{Route, strip_capture_header};
use dataplane::trace::{Trace, Verdict};

/// The DUT's interfaces in the fixture.
pub const NET: &str = "eth0";
/// Toward ext1 (198.18.1.2).
pub const EXT1: &str = "eth1";
/// Toward ext2 (198.18.2.2).
pub const EXT2: &str = "eth2";
/// The pods' node-side devices.
pub const CALI: [&str; 3] = ["calif56865fef77", "calic4d1e7d4193", "calib3d69e81980"];

/// A fixture file of `fixtures/trace`.
pub fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trace")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The captured DUT: eth0 198.18.0.11/24 (client 198.18.0.101), eth1 198.18.1.1 (ext1 .2),
/// eth2 198.18.2.1 (ext2 .2), eth3 198.18.3.1, pods 198.18.65.2-4 on cali devices,
/// 198.19.0.0/16 and 198.19.255.10 via ext1; plus 198.18.66.0/24 via node2 198.18.0.12.
pub fn dut() -> NodeState {
    let text = fixture("dut-node.json");
    let (_, body) = strip_capture_header(&text);
    let mut node: NodeState = serde_json::from_str(body).expect("dut-node.json");
    node.routes.routes.push(Route::unicast(
        "198.18.66.0/24".parse().unwrap(),
        Some(ip("198.18.0.12")),
        Some(NET),
    ));
    node.sync_route_settings();
    node
}

/// The DUT with a ruleset loaded by `backend`.
pub fn with(node: NodeState, backend: Backend, family: Family, save: &str) -> NodeState {
    node.with_iptables(
        backend,
        Ruleset::parse(family, save).unwrap_or_else(|e| panic!("ruleset: {e}\n{save}")),
    )
}

/// An address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("address {s}"))
}

/// kube-proxy's flow-test output: the distinct endpoints reached (`a:p, b:p`; local
/// delivery as `LOCAL a:p`), or `DROP` / `REJECT` / another verdict kind, joined with `; `
/// when paths differ.
pub fn output(t: &Trace) -> String {
    let mut eps = Vec::new();
    let mut other = Vec::new();
    for p in &t.paths {
        match &p.verdict {
            Verdict::Forwarded { dst, .. } => eps.push(dst.to_string()),
            Verdict::Delivered { to, .. } => eps.push(format!("LOCAL {to}")),
            Verdict::Dropped { .. } => other.push("DROP".to_string()),
            Verdict::Rejected { .. } => other.push("REJECT".to_string()),
            v => other.push(v.kind().to_uppercase()),
        }
    }
    eps.sort();
    eps.dedup();
    other.sort();
    other.dedup();
    let mut parts = Vec::new();
    if !eps.is_empty() {
        parts.push(eps.join(", "));
    }
    parts.extend(other);
    parts.join("; ")
}

/// Whether any forwarded or delivered path had its source rewritten.
pub fn masq(t: &Trace) -> bool {
    t.paths
        .iter()
        .filter(|p| p.verdict.endpoint().is_some())
        .any(|p| p.source_rewritten(&t.packet))
}
