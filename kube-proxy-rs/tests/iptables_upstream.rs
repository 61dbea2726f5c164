//! Cross-check against upstream: the Services and EndpointSlices of upstream's
//! `TestOverallIPTablesRules` (kubernetes/kubernetes pkg/proxy/iptables/proxier_test.go),
//! rebuilt here, run through our model and render with the settings of upstream's
//! `NewFakeProxier` (node `test-node` at 192.168.0.2, local traffic by 10.0.0.0/8, mark
//! written `0x4000`, localhost NodePorts on, nfacct counters present, no `--random-fully`).
//! Our text must equal upstream's expected dump after upstream's own normalisation
//! (`sortIPTablesRules`, our `sort_like_upstream`): the same chains, rules, option order,
//! comments and names. Upstream's addresses lie outside our address plan; this test never
//! touches the kernel.

mod common;

use common::{check_rule_jumps, sort_like_upstream};
use dataplane::Family;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_proxy_rs::model::{self, ModelOptions};
use kube_proxy_rs::render::iptables::{MarkStyle, RenderOptions, render_iptables};
use serde_json::{Value, json};

fn service(ns: &str, name: &str, spec: Value, status: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": spec, "status": status,
    }))
    .unwrap()
}

fn slice(ns: &str, svc: &str, endpoints: Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": format!("{svc}-1"),
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn p80(node_port: Option<i32>) -> Value {
    match node_port {
        Some(n) => json!([{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": n}]),
        None => json!([{"name": "p80", "port": 80, "protocol": "TCP", "targetPort": 80}]),
    }
}

/// The objects of upstream's TestOverallIPTablesRules.
fn objects() -> (Vec<Service>, Vec<EndpointSlice>, Node) {
    let services = vec![
        // ClusterIP.
        service(
            "ns1",
            "svc1",
            json!({"clusterIP": "172.30.0.41", "ports": p80(None)}),
            json!({}),
        ),
        // LoadBalancer, externalTrafficPolicy Local, an external IP.
        service(
            "ns2",
            "svc2",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                   "clusterIP": "172.30.0.42", "ports": p80(Some(3001)),
                   "externalIPs": ["192.168.99.22"], "healthCheckNodePort": 30000}),
            json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}),
        ),
        // NodePort.
        service(
            "ns3",
            "svc3",
            json!({"type": "NodePort", "clusterIP": "172.30.0.43", "ports": p80(Some(3003))}),
            json!({}),
        ),
        // NodePort type without a node port, with an external IP.
        service(
            "ns4",
            "svc4",
            json!({"type": "NodePort", "clusterIP": "172.30.0.44",
                   "externalIPs": ["192.168.99.33"], "ports": p80(None)}),
            json!({}),
        ),
        // LoadBalancer, Cluster policy, source ranges (with upstream's stray space), affinity.
        service(
            "ns5",
            "svc5",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
                   "clusterIP": "172.30.0.45", "ports": p80(Some(3002)),
                   "healthCheckNodePort": 30000,
                   "loadBalancerSourceRanges": [" 203.0.113.0/25"],
                   "sessionAffinity": "ClientIP",
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}}),
            json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}),
        ),
        // ClusterIP without endpoints.
        service(
            "ns6",
            "svc6",
            json!({"type": "ClusterIP", "clusterIP": "172.30.0.46", "ports": p80(None)}),
            json!({}),
        ),
    ];
    let slices = vec![
        slice("ns1", "svc1", json!([{"addresses": ["10.180.0.1"]}])),
        // No nodeName: not local, so svc2 has no local endpoint.
        slice("ns2", "svc2", json!([{"addresses": ["10.180.0.2"]}])),
        slice("ns3", "svc3", json!([{"addresses": ["10.180.0.3"]}])),
        slice(
            "ns4",
            "svc4",
            json!([{"addresses": ["10.180.0.4"]},
                   {"addresses": ["10.180.0.5"], "nodeName": "test-node"}]),
        ),
        slice("ns5", "svc5", json!([{"addresses": ["10.180.0.3"]}])),
    ];
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "test-node"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.2"}]},
    }))
    .unwrap();
    (services, slices, node)
}

fn upstream_expected() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upstream/overall-iptables-rules.txt");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn overall_rules_equal_upstreams_expected_dump() {
    let (services, slices, node) = objects();
    let opts = ModelOptions {
        node_name: "test-node".into(),
        cluster_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        ..ModelOptions::default()
    };
    let b = model::build(&services, &slices, Some(&node), &opts);
    assert!(b.warnings.is_empty(), "{:#?}", b.warnings);
    let render = RenderOptions {
        mark_style: MarkStyle::Short,
        random_fully: false,
        nfacct: true,
        ..RenderOptions::default()
    };
    let r = render_iptables(b.state(Family::V4), &render);
    let ours = r.to_restore();

    let expected = sort_like_upstream(&upstream_expected());
    check_rule_jumps(&expected).unwrap();
    if ours != expected {
        let diff = similar::TextDiff::from_lines(expected.as_str(), ours.as_str());
        panic!(
            "our render differs from upstream's expected dump:\n{}",
            diff.unified_diff().header("upstream", "ours")
        );
    }

    // Upstream's metric check: the nat rule count equals the rules in the dump.
    let nat_rules = common::tables(&ours)["nat"]
        .iter()
        .filter(|l| l.starts_with("-A "))
        .count();
    assert_eq!(r.counts().nat_rules, nat_rules);
    assert_eq!(r.counts().filter_rules, 10);
    assert_eq!(r.counts().no_local_endpoints_external, 1);
}
