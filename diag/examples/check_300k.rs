//! Measures `diag check` and a cross-node `diag trace` on a generated kube-proxy-style node of
//! about 300k iptables rules (the generator dataplane's `trace_300k` uses), loaded onto the
//! captured DUT node: `cargo run --release -p diag --example check_300k [RULES]`. Prints the
//! figures; not a test (no timing assertions).

#[path = "../../dataplane/examples/support/kube300k.rs"]
mod kube300k;

use std::net::IpAddr;
use std::time::Instant;

use dataplane::iptables::Ruleset;
use dataplane::node::{Backend, NodeState};
use dataplane::route::{Route, strip_capture_header};
use dataplane::{Family, Packet};
use diag::bundle::Manifest;
use diag::cluster::{self, Cluster, ClusterOptions};
use diag::snapshot::Snapshot;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn main() {
    let target: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300_000);
    let (text, services) = kube300k::generate(target);
    let t = Instant::now();
    let rs = Ruleset::parse(Family::V4, &text).expect("parse");
    println!(
        "parse: {:?} for {} rules, {services} services",
        t.elapsed(),
        rs.rule_count()
    );
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dataplane/tests/fixtures/trace/dut-node.json"
    );
    let raw = std::fs::read_to_string(fixture).expect("dut-node.json");
    let (_, body) = strip_capture_header(&raw);
    let mut node: NodeState = serde_json::from_str(body).expect("node");
    node.routes.routes.push(Route::unicast(
        "198.18.64.0/18".parse().unwrap(),
        Some(ip("198.18.0.12")),
        Some("eth0"),
    ));
    let node = node.with_iptables(Backend::Nft, rs);
    let snap = Snapshot {
        manifest: Manifest::new(node.name.clone(), "generated"),
        origin: "generated".into(),
        node,
        neighbours: None,
        bgpd: None,
        objects: Default::default(),
        notes: Vec::new(),
    };
    let c = Cluster::new(vec![snap], Default::default());

    let probes = [ip("198.18.0.101")];
    let t = Instant::now();
    let cx = diag::check::Cx {
        cluster: &c,
        facts: diag::check::Facts::new(&c, &probes),
    };
    println!(
        "facts: {:?} ({} pods, {} service ports)",
        t.elapsed(),
        cx.facts.pods.len(),
        cx.facts.services.len()
    );
    for check in diag::check::CATALOGUE {
        let t = Instant::now();
        let n = (check.run)(&cx).len();
        println!("  {:<30} {:?}, {n} findings", check.id, t.elapsed());
    }
    let t = Instant::now();
    let rep = diag::check::run(&c, &probes, &[]);
    println!(
        "check: {:?} for {} checks, {} findings",
        t.elapsed(),
        rep.checks.len(),
        rep.findings.len()
    );
    let vip = |s: usize| format!("198.19.{}.{}", (s >> 8) & 0xff, s & 0xff);
    for (what, dst) in [
        ("first service", vip(0)),
        ("last service", vip(services - 1)),
    ] {
        let p = Packet::tcp(ip("198.18.0.101"), ip(&dst), 80).arriving_on("eth0");
        let t = Instant::now();
        let tr = cluster::trace(&c, 0, &p, &ClusterOptions::default());
        println!(
            "trace {what:<14} {dst:<14} {:?}, {} paths",
            t.elapsed(),
            tr.paths.len()
        );
    }
}
