//! Measures `trace` on a generated kube-proxy-style dump of about 300k rules, loaded onto the
//! captured DUT node (`tests/fixtures/trace/dut-node.json`):
//! `cargo run --release -p dataplane --example trace_300k [RULES]`. Prints the figures; not a
//! test (no timing assertions).
//!
//! Packets: to the first, the middle and the last service (KUBE-SERVICES is walked up to that
//! service's rule), and to a non-service address (the whole chain, then the NodePort
//! `addrtype LOCAL` rule).

#[path = "support/kube300k.rs"]
mod kube300k;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dataplane::iptables::Ruleset;
use dataplane::node::{Backend, NodeState};
use dataplane::route::{Route, strip_capture_header};
use dataplane::trace::trace;
use dataplane::{Family, Packet};
use kube300k::{generate, name};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn main() {
    let target: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300_000);
    let (text, services) = generate(target);
    // kube-proxy's last KUBE-SERVICES rule: NodePorts on local addresses
    let text = text.replace(
        "COMMIT\n",
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\nCOMMIT\n",
    );
    let t = Instant::now();
    let rs = Ruleset::parse_lazy(Family::V4, &text).expect("parse");
    println!(
        "parse_lazy: {:?} for {} rules, {} services ({} is the first SVC chain)",
        t.elapsed(),
        rs.rule_count(),
        services,
        name("SVC", 0)
    );
    let fixture = format!(
        "{}/tests/fixtures/trace/dut-node.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read_to_string(&fixture).expect("dut-node.json");
    let (_, body) = strip_capture_header(&raw);
    let mut node: NodeState = serde_json::from_str(body).expect("node");
    node.routes.routes.push(Route::unicast(
        "198.18.64.0/18".parse().unwrap(),
        Some(ip("198.18.0.12")),
        Some("eth0"),
    ));
    let node = node.with_iptables(Backend::Nft, rs);
    let vip = |s: usize| format!("198.19.{}.{}", (s >> 8) & 0xff, s & 0xff);
    let cases = [
        ("first service", vip(0)),
        ("middle service", vip(services / 2)),
        ("last service", vip(services - 1)),
        ("no service", "198.18.0.11".to_string()),
    ];
    for (what, dst) in cases {
        let p = Packet::tcp(ip("198.18.0.101"), ip(&dst), 80).arriving_on("eth0");
        let s = Instant::now();
        let first = trace(&node, &p);
        let cold = s.elapsed();
        let n = 20u32;
        let mut best = Duration::MAX;
        let t = Instant::now();
        for _ in 0..n {
            let s = Instant::now();
            let tr = trace(&node, &p);
            best = best.min(s.elapsed());
            assert_eq!(tr.paths.len(), first.paths.len());
        }
        println!(
            "trace {what:<15} {dst:<14} {} paths: first {cold:?}, then mean {:?}, best {:?}  [{}]",
            first.paths.len(),
            t.elapsed() / n,
            best,
            first.verdict_summary().chars().take(90).collect::<String>()
        );
    }
}
