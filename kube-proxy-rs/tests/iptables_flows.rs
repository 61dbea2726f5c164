//! The shared packet-flow table ([`flow_table::FLOWS`]) through iptables mode's golden
//! rules (iptables-nft), traced with `dataplane::trace` through node-a.
//!
//! "Masqueraded" means a MASQUERADE happened on some path (KUBE-POSTROUTING acting on
//! KUBE-MARK-MASQ's mark), the effect upstream's tracer approximates by "reached
//! KUBE-MARK-MASQ". `-m recent` has no history (first packet of a connection).

mod common;
mod flow_table;

use common::golden_path;
use dataplane::iptables::{RestoreMode, RestoreScript, Ruleset};
use dataplane::node::{Backend, NodeState};
use dataplane::trace::trace;
use dataplane::{Family, Packet};
use flow_table::*;

/// node-a with the golden rules of `case` for `family` (both families' goldens loaded, so
/// each packet meets the ruleset of its own family).
fn node(case: &str) -> NodeState {
    let mut n = base_node();
    for (family, name) in [(Family::V4, "ipv4"), (Family::V6, "ipv6")] {
        let path = golden_path("iptables", &format!("{case}-{name}.rules"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let script = RestoreScript::parse(family, &text).unwrap();
        let mut rs = Ruleset::new(family);
        rs.apply_restore(&script, RestoreMode { noflush: false })
            .unwrap();
        n.set_iptables(Backend::Nft, rs);
    }
    n
}

#[test]
fn packet_flows_through_the_golden_rules() {
    run_flows(node, &[]);
}

/// Each endpoint of a 3-endpoint service gets a third of new connections.
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

/// A localhost NodePort from the node: DNATed in nat OUTPUT to a pod, re-routed with source
/// 127.0.0.1 out of the pod device, which the kernel allows with `route_localnet=1`
/// (`__mkroute_output` skips the 127/8-source check when `IN_DEV_ROUTE_LOCALNET`; checked
/// with `ip route get 198.18.64.11 from 127.0.0.1` in a netns: EINVAL with 0, a route with
/// 1), then MASQUERADE rewrites the source.
#[test]
fn localhost_node_port_from_the_node() {
    let n = node("nodeport");
    let p = Packet::tcp(ip("127.0.0.1"), ip("127.0.0.1"), 30080);
    let t = trace(&n, &p);
    assert_eq!(output(&t), "198.18.64.11:8080", "{t}");
    assert!(masqueraded(&t), "{t}");
}
