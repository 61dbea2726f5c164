//! The shared packet-flow table ([`flow_table::FLOWS`]) through nftables mode: each case's
//! rendered tables (both families) written as `nft -j` JSON, parsed back with
//! `dataplane::nft` (as diag reads a node's `nft -j list ruleset`), and traced with
//! `dataplane::trace` through node-a. Rows where nftables mode differs on purpose are in
//! [`flow_table::NFT_DIFFERS`].

mod common;
mod flow_table;

use common::{build_files, case_named, config};
use dataplane::nft::Ruleset;
use dataplane::node::NodeState;
use dataplane::trace::trace;
use dataplane::{Family, Packet};
use flow_table::*;
use kube_proxy_rs::render::nftables::{NftOptions, render_nftables};

/// node-a with nftables mode's tables of `case`.
fn node(case: &str) -> NodeState {
    let c = case_named(case);
    let cfg = config(c);
    let b = build_files(c.files, &cfg);
    let opts = NftOptions::from_config(&cfg);
    let rs = Ruleset {
        tables: [Family::V4, Family::V6]
            .into_iter()
            .map(|f| render_nftables(b.state(f), &opts).table)
            .collect(),
        ..Ruleset::default()
    };
    let parsed = Ruleset::from_json(&rs.to_json_string()).unwrap();
    base_node().with_nft(parsed)
}

#[test]
fn packet_flows_through_the_nftables_rules() {
    run_flows(node, NFT_DIFFERS);
}

/// Each endpoint of a 3-endpoint service gets a third of new connections (numgen mod 3).
#[test]
fn endpoints_share_the_traffic_evenly() {
    let n = node("external-v6");
    let p = Packet::tcp(ip(OUTSIDE6), ip("2001:db8::a"), 30120).arriving_on("eth0");
    let eps = trace(&n, &p).endpoints();
    assert_eq!(eps.len(), 3);
    for e in eps {
        assert!((e.probability - 1.0 / 3.0).abs() < 1e-9, "{e:?}");
    }
}

/// nftables mode has no localhost NodePorts (upstream: route_localnet is not used).
#[test]
fn no_localhost_node_ports() {
    let n = node("nodeport");
    let t = trace(&n, &Packet::tcp(ip("127.0.0.1"), ip("127.0.0.1"), 30080));
    assert_eq!(output(&t), "LOCAL 127.0.0.1:30080", "{t}");
}
