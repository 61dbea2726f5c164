//! Golden renderings of traces (the text diag prints, and the JSON), on the captured DUT with
//! `fixtures/trace/kube-proxy.rules` loaded. A mismatch shows a diff; `UPDATE_GOLDEN=1`
//! rewrites the files so a reviewer reads the change.

mod common;

use std::path::PathBuf;

use common::node::{CALI, NET, dut, fixture, ip, with};
use dataplane::conntrack::Conntrack;
use dataplane::node::{Backend, NodeState};
use dataplane::trace::trace;
use dataplane::{Family, Packet};

fn golden(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trace/golden")
        .join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    if want != got {
        let diff = similar::TextDiff::from_lines(want.as_str(), got)
            .unified_diff()
            .header("golden", "got")
            .to_string();
        panic!("{name} differs (UPDATE_GOLDEN=1 to accept):\n{diff}");
    }
}

fn kube() -> NodeState {
    with(
        dut(),
        Backend::Nft,
        Family::V4,
        &fixture("kube-proxy.rules"),
    )
}

#[test]
fn golden_clusterip_three_endpoints() {
    let p = Packet::tcp(ip("198.18.0.101"), ip("198.19.0.41"), 80).arriving_on(NET);
    golden("clusterip-3-endpoints.txt", &trace(&kube(), &p).to_string());
}

#[test]
fn golden_nodeport() {
    let p = Packet::tcp(ip("198.18.0.101"), ip("198.18.0.11"), 30002).arriving_on(NET);
    golden("nodeport.txt", &trace(&kube(), &p).to_string());
}

#[test]
fn golden_no_endpoints_reject_as_json() {
    let p = Packet::tcp(ip("198.18.0.101"), ip("198.19.0.43"), 80).arriving_on(NET);
    let t = trace(&kube(), &p);
    golden("no-endpoints-reject.txt", &t.to_string());
    let json = serde_json::to_string_pretty(&t).unwrap() + "\n";
    golden("no-endpoints-reject.json", &json);
}

#[test]
fn golden_hairpin() {
    let p = Packet::tcp(ip("198.18.65.2"), ip("198.19.0.41"), 80).arriving_on(CALI[0]);
    golden("hairpin.txt", &trace(&kube(), &p).to_string());
}

#[test]
fn golden_stale_udp_entry() {
    let ct = Conntrack::parse(
        "udp      17 29 src=198.18.0.101 dst=198.19.0.53 sport=40000 dport=53 src=198.18.65.9 dst=198.18.0.11 sport=5353 dport=61002 mark=0 use=1\n",
    )
    .unwrap();
    let node = kube().with_conntrack(ct);
    let p = Packet::udp(ip("198.18.0.101"), ip("198.19.0.53"), 53)
        .with_sport(40000)
        .arriving_on(NET);
    golden("stale-udp-entry.txt", &trace(&node, &p).to_string());
}

#[test]
fn golden_local_out_to_a_service() {
    let p = Packet::tcp(ip("0.0.0.0"), ip("198.19.0.42"), 80);
    golden("local-out-service.txt", &trace(&kube(), &p).to_string());
}
