//! Unit tests of the iptables render on small hand-built states: options the golden cases
//! do not vary, the API around the text, and determinism.

use dataplane::Family;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::*;
use crate::model::{DetectLocalMode, ModelOptions, NodePortAddress, ProxyState, build};

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "t", "name": name}, "spec": spec,
    }))
    .unwrap()
}

fn slice(name: &str, protocol: &str, endpoints: &[(&str, &str)]) -> EndpointSlice {
    let e: Vec<Value> = endpoints
        .iter()
        .map(|(ip, node)| json!({"addresses": [ip], "nodeName": node}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "t", "name": format!("{name}-1"),
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "p", "port": 8080, "protocol": protocol}],
        "endpoints": e,
    }))
    .unwrap()
}

fn node() -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-a"},
        "spec": {"podCIDRs": ["198.18.64.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "198.18.0.1"}]},
    }))
    .unwrap()
}

/// A NodePort Service with externalTrafficPolicy Local and a local and a remote endpoint,
/// plus an SCTP ClusterIP Service.
fn state(mode: DetectLocalMode, cluster_cidr: bool, npa: Vec<NodePortAddress>) -> ProxyState {
    let services = [
        service(
            "np",
            json!({"type": "NodePort", "clusterIP": "198.19.3.1", "externalTrafficPolicy": "Local",
                   "ports": [{"name": "p", "port": 80, "nodePort": 30001}]}),
        ),
        service(
            "sctp",
            json!({"clusterIP": "198.19.3.2", "ports": [{"name": "p", "port": 9, "protocol": "SCTP"}]}),
        ),
    ];
    let slices = [
        slice(
            "np",
            "TCP",
            &[("198.18.64.5", "node-a"), ("198.18.65.5", "node-b")],
        ),
        slice("sctp", "SCTP", &[("198.18.65.6", "node-b")]),
    ];
    let opts = ModelOptions {
        node_name: "node-a".into(),
        detect_local_mode: mode,
        cluster_cidrs: if cluster_cidr {
            vec!["198.18.64.0/18".parse().unwrap()]
        } else {
            Vec::new()
        },
        node_port_addresses: npa,
    };
    let b = build(&services, &slices, Some(&node()), &opts);
    assert!(b.warnings.is_empty(), "{:#?}", b.warnings);
    b.ipv4
}

fn default_state() -> ProxyState {
    state(DetectLocalMode::ClusterCidr, true, Vec::new())
}

fn nat(r: &Rendered, chain: &str) -> String {
    r.chain_rules(Table::Nat, chain)
        .unwrap_or_default()
        .to_string()
}

fn chain_with(r: &Rendered, prefix: &str) -> String {
    r.chain_names(Table::Nat)
        .find(|c| c.starts_with(prefix))
        .unwrap()
        .to_string()
}

#[test]
fn interface_based_local_detection() {
    let s = state(
        DetectLocalMode::BridgeInterface("cbr0".into()),
        false,
        Vec::new(),
    );
    let r = render_iptables(&s, &RenderOptions::default());
    let svc = chain_with(&r, "KUBE-SVC-");
    assert!(
        nat(&r, &svc).contains(" ! -i cbr0 -j KUBE-MARK-MASQ\n"),
        "{}",
        nat(&r, &svc)
    );
    let ext = chain_with(&r, "KUBE-EXT-");
    assert!(nat(&r, &ext).contains("external destinations\" -i cbr0 -j KUBE-SVC-"));

    let s = state(
        DetectLocalMode::InterfaceNamePrefix("veth".into()),
        false,
        Vec::new(),
    );
    let r = render_iptables(&s, &RenderOptions::default());
    let ext = chain_with(&r, "KUBE-EXT-");
    assert!(
        nat(&r, &ext).contains(" -i veth+ -j KUBE-SVC-"),
        "{}",
        nat(&r, &ext)
    );
}

#[test]
fn undetected_local_traffic_drops_the_rules_that_need_it() {
    let s = state(DetectLocalMode::ClusterCidr, false, Vec::new());
    let r = render_iptables(&s, &RenderOptions::default());
    let text = r.to_restore();
    assert!(!text.contains("pod traffic for"), "{text}");
    assert!(!text.contains("cluster IP\" -m tcp -p tcp -d 198.19.3.1 --dport 80 !"));
    // With --masquerade-all the masquerade rule comes back, unconditional.
    let all = RenderOptions {
        masquerade_all: true,
        ..RenderOptions::default()
    };
    let r = render_iptables(&s, &all);
    let svc = chain_with(&r, "KUBE-SVC-");
    assert!(
        nat(&r, &svc).contains("-d 198.19.3.1 --dport 80 -j KUBE-MARK-MASQ\n"),
        "{}",
        nat(&r, &svc)
    );
}

#[test]
fn sctp_rules_load_the_sctp_match() {
    let r = render_iptables(&default_state(), &RenderOptions::default());
    assert!(
        nat(&r, "KUBE-SERVICES").contains("-m sctp -p sctp -d 198.19.3.2 --dport 9 -j KUBE-SVC-")
    );
}

#[test]
fn nodeport_addresses_use_the_interface_addresses_given() {
    let s = state(
        DetectLocalMode::ClusterCidr,
        true,
        vec![NodePortAddress::Cidr("198.18.0.0/16".parse().unwrap())],
    );
    let opts = RenderOptions {
        local_addresses: vec![
            "198.18.1.7".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
            "2001:db8::a".parse().unwrap(),
        ],
        ..RenderOptions::default()
    };
    let r = render_iptables(&s, &opts);
    let services = nat(&r, "KUBE-SERVICES");
    let tail: Vec<&str> = services
        .lines()
        .filter(|l| l.contains("must be the last rule"))
        .map(|l| l.split(" -d ").nth(1).unwrap_or(""))
        .collect::<Vec<_>>();
    assert_eq!(
        tail,
        [
            "198.18.0.1 -j KUBE-NODEPORTS",
            "198.18.1.7 -j KUBE-NODEPORTS"
        ]
    );
    // No 127.0.0.0/8 in the CIDRs: no localhost NodePorts, so no KUBE-FIREWALL rule.
    assert!(r.chain_rules(Table::Filter, "KUBE-FIREWALL").is_none());
}

#[test]
fn large_cluster_threshold_is_exclusive() {
    let s = default_state(); // 3 endpoints
    let at = RenderOptions {
        large_cluster_threshold: 3,
        ..RenderOptions::default()
    };
    let r = render_iptables(&s, &at);
    assert!(!r.large_cluster_mode);
    assert!(r.to_restore().contains(" -> 198.18.64.5:8080"));
    let above = RenderOptions {
        large_cluster_threshold: 2,
        ..RenderOptions::default()
    };
    let r = render_iptables(&s, &above);
    assert!(r.large_cluster_mode);
    let text = r.to_restore();
    assert!(!text.contains(" -> "), "{text}");
    let sep = chain_with(&r, "KUBE-SEP-");
    assert!(!nat(&r, &sep).contains("--comment"), "{}", nat(&r, &sep));
    // The cluster IP and external chains keep their comments.
    assert!(text.contains("cluster IP\" -m tcp"));
}

#[test]
fn renders_are_deterministic_and_reuse_gives_the_same_text() {
    let s = default_state();
    let other = state(DetectLocalMode::NodeCidr, true, Vec::new());
    let opts = RenderOptions::default();
    let a = render_iptables(&s, &opts);
    assert_eq!(a.to_restore(), render_iptables(&s, &opts).to_restore());
    let b = render_iptables_reusing(&other, &opts, a);
    assert_eq!(b.to_restore(), render_iptables(&other, &opts).to_restore());
    let c = render_iptables_reusing(&s, &opts, b);
    assert_eq!(c.to_restore(), render_iptables(&s, &opts).to_restore());
}

#[test]
fn counts_match_the_text() {
    let r = render_iptables(&default_state(), &RenderOptions::default());
    let text = r.to_restore();
    let (mut filter, mut nat) = (0, 0);
    let mut table = "";
    for l in text.lines() {
        if let Some(t) = l.strip_prefix('*') {
            table = if t == "filter" { "filter" } else { "nat" };
        } else if l.starts_with("-A ") {
            if table == "filter" {
                filter += 1;
            } else {
                nat += 1;
            }
        }
    }
    let c = r.counts();
    assert_eq!((c.filter_rules, c.nat_rules), (filter, nat));
    assert_eq!(c.nat_chains, r.chain_names(Table::Nat).count());
    assert_eq!(c.no_local_endpoints_external, 0);
    assert_eq!(r.family, Family::V4);
}

#[test]
fn stale_chains_are_only_service_chains_not_rendered() {
    let r = render_iptables(&default_state(), &RenderOptions::default());
    let live = chain_with(&r, "KUBE-SEP-");
    let stale = r.stale_chains(&[
        "KUBE-SEP-AAAAAAAAAAAAAAAA",
        &live,
        "KUBE-SERVICES",
        "DOCKER",
        "KUBE-SVC-BBBBBBBBBBBBBBBB",
        "KUBE-SEP-AAAAAAAAAAAAAAAA",
    ]);
    assert_eq!(
        stale,
        ["KUBE-SEP-AAAAAAAAAAAAAAAA", "KUBE-SVC-BBBBBBBBBBBBBBBB"]
    );
    let mut out = Vec::new();
    r.write_restore(&mut out, &stale).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(":KUBE-SEP-AAAAAAAAAAAAAAAA - [0:0]\n"));
    assert!(text.ends_with("-X KUBE-SEP-AAAAAAAAAAAAAAAA\n-X KUBE-SVC-BBBBBBBBBBBBBBBB\nCOMMIT\n"));
}
