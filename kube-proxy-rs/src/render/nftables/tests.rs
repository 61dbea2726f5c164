//! Unit tests of the nftables render and its transactions on small hand-built states.

use dataplane::Family;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::tx::Existing;
use super::*;
use crate::model::{DetectLocalMode, ModelOptions, ProxyState, build};

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "t", "name": name}, "spec": spec,
    }))
    .unwrap()
}

fn slice(name: &str, endpoints: &[(&str, &str)]) -> EndpointSlice {
    let e: Vec<Value> = endpoints
        .iter()
        .map(|(ip, node)| json!({"addresses": [ip], "nodeName": node}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "t", "name": format!("{name}-1"),
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
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

/// `n` ClusterIP services `s0..`, each with two endpoints, plus what `extra` adds.
fn state(n: usize, extra: &[(Service, EndpointSlice)]) -> ProxyState {
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for i in 0..n {
        let name = format!("s{i}");
        services.push(service(
            &name,
            json!({"clusterIP": format!("198.19.1.{i}"), "ports": [{"name": "p", "port": 80}]}),
        ));
        slices.push(slice(
            &name,
            &[
                (&format!("198.18.64.{i}"), "node-a"),
                (&format!("198.18.65.{i}"), "node-b"),
            ],
        ));
    }
    for (s, e) in extra {
        services.push(s.clone());
        slices.push(e.clone());
    }
    let opts = ModelOptions {
        node_name: "node-a".into(),
        detect_local_mode: DetectLocalMode::ClusterCidr,
        cluster_cidrs: vec!["198.18.64.0/18".parse().unwrap()],
        node_port_addresses: Vec::new(),
    };
    let n = node();
    build(services.iter(), slices.iter(), Some(&n), &opts)
        .state(Family::V4)
        .clone()
}

fn text(s: &ProxyState) -> String {
    render_nftables(s, &NftOptions::default()).to_text()
}

#[test]
fn cluster_ip_service_layout() {
    let t = text(&state(1, &[]));
    for want in [
        "table ip kube-proxy {",
        "198.19.1.0 . tcp . 80 : goto service-",
        "ip daddr 198.19.1.0 tcp dport 80 ip saddr != 198.18.64.0/18 jump mark-for-masquerade",
        "numgen random mod 2 0 goto endpoint-",
        "meta l4proto tcp dnat to 198.18.64.0:8080",
        "ip daddr . meta l4proto . th dport vmap @service-ips",
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
        "meta mark set meta mark | 0x00004000",
        "masquerade fully-random",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
}

#[test]
fn render_is_deterministic() {
    let s = state(3, &[]);
    assert_eq!(text(&s), text(&s));
}

#[test]
fn no_endpoints_rejects_and_affinity_uses_sets() {
    let extra = [
        (
            service(
                "empty",
                json!({"clusterIP": "198.19.2.1", "type": "NodePort",
                       "ports": [{"name": "p", "port": 80, "nodePort": 30100}]}),
            ),
            slice("empty", &[]),
        ),
        (
            service(
                "sticky",
                json!({"clusterIP": "198.19.2.2", "sessionAffinity": "ClientIP",
                       "ports": [{"name": "p", "port": 80}]}),
            ),
            slice("sticky", &[("198.18.64.9", "node-a")]),
        ),
    ];
    let t = text(&state(0, &extra));
    for want in [
        "198.19.2.1 . tcp . 80 comment \"t/empty:p\" : goto reject-chain",
        "tcp . 30100 comment \"t/empty:p\" : goto reject-chain",
        "flags dynamic,timeout",
        "timeout 3h",
        "update @affinity-",
        "ip saddr @affinity-",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
    assert!(!t.contains("198.19.2.1 . tcp . 80 : goto"), "{t}");
}

#[test]
fn full_transaction_flushes_what_exists_and_deletes_stale() {
    let old = render_nftables(&state(2, &[]), &NftOptions::default()).table;
    let new = render_nftables(&state(1, &[]), &NftOptions::default()).table;
    let tx = transaction(None, &Existing::of(&old), &new).unwrap();
    assert!(tx.text.contains("flush chain ip kube-proxy services\n"));
    assert!(tx.text.contains("flush map ip kube-proxy service-ips\n"));
    let gone = crate::names::nft_service_chain(&crate::model::ServicePortName::new(
        "t",
        "s1",
        "p",
        dataplane::Protocol::Tcp,
    ));
    assert!(
        tx.text
            .contains(&format!("delete chain ip kube-proxy {gone}\n")),
        "{}",
        tx.text
    );
    assert_eq!(tx.deleted_chains.len(), 3, "{:?}", tx.deleted_chains);
}

#[test]
fn partial_transaction_touches_only_the_changed_service() {
    let old = render_nftables(&state(50, &[]), &NftOptions::default()).table;
    let extra = [(
        service(
            "new",
            json!({"clusterIP": "198.19.2.9", "ports": [{"name": "p", "port": 80}]}),
        ),
        slice("new", &[("198.18.64.200", "node-a")]),
    )];
    let new = render_nftables(&state(50, &extra), &NftOptions::default()).table;
    let tx = transaction(Some(&old), &Existing::default(), &new).unwrap();
    assert!(!tx.text.contains("flush"), "{}", tx.text);
    assert!(!tx.text.contains("delete"), "{}", tx.text);
    // service chain + endpoint chain
    assert_eq!(tx.written_chains, 2, "{}", tx.text);
    // cluster-ips + service-ips elements
    assert_eq!(tx.elements_written, 2, "{}", tx.text);
    assert!(tx.text.contains("198.19.2.9 . tcp . 80 : goto service-"));

    // And back: the elements are deleted, the chains flushed and deleted.
    let back = transaction(Some(&new), &Existing::default(), &old).unwrap();
    assert!(
        back.text
            .starts_with("delete element ip kube-proxy cluster-ips { 198.19.2.9 }\n")
            || back
                .text
                .contains("delete element ip kube-proxy service-ips { 198.19.2.9 . tcp . 80 }"),
        "{}",
        back.text
    );
    assert_eq!(back.deleted_chains.len(), 2);
    assert_eq!(back.rules_written, 0);

    // Nothing changed: an empty transaction.
    let same = transaction(Some(&new), &Existing::default(), &new).unwrap();
    assert!(same.text.is_empty(), "{}", same.text);
}

#[test]
fn endpoint_change_rewrites_the_service_chain_only() {
    let old = state(3, &[]);
    let mut new = old.clone();
    let name = new.endpoints.keys().next().unwrap().clone();
    new.endpoints.get_mut(&name).unwrap().entries.pop();
    let o = render_nftables(&old, &NftOptions::default()).table;
    let n = render_nftables(&new, &NftOptions::default()).table;
    let tx = transaction(Some(&o), &Existing::default(), &n).unwrap();
    let svc = crate::names::nft_service_chain(&name);
    assert!(
        tx.text
            .contains(&format!("flush chain ip kube-proxy {svc}\n")),
        "{}",
        tx.text
    );
    assert_eq!(tx.deleted_chains.len(), 1, "{}", tx.text);
    assert_eq!(tx.written_chains, 1, "{}", tx.text);
    assert!(tx.text.contains("goto endpoint-"), "{}", tx.text);
}

/// The endpoint pick: a cascade whose rule i takes 1/(n-i) of what reaches it (so 1/n of
/// all), the last a plain goto; above [`service::CASCADE_MAX`] one anonymous numgen vmap.
#[test]
fn endpoint_pick_is_a_uniform_cascade_and_a_vmap_for_large_lists() {
    use dataplane::nft::NftFamily;
    let names: Vec<String> = (0..=service::CASCADE_MAX)
        .map(|i| format!("ep{i}"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let lines = |targets: &[&str]| -> Vec<String> {
        service::balance(targets)
            .iter()
            .map(|r| r.to_text(NftFamily::Ip).unwrap())
            .collect()
    };
    assert_eq!(
        lines(&refs[..3]),
        [
            "numgen random mod 3 0 goto ep0",
            "numgen random mod 2 0 goto ep1",
            "goto ep2"
        ]
    );
    assert_eq!(lines(&refs[..1]), ["goto ep0"]);
    // each target's share: what reaches its rule times 1/modulus (all of it at the last)
    let n = service::CASCADE_MAX;
    let cascade = lines(&refs[..n]);
    assert_eq!(cascade.len(), n);
    let mut left = 1.0_f64;
    for (i, line) in cascade.iter().enumerate() {
        let modulus: f64 = match line.strip_prefix("numgen random mod ") {
            Some(rest) => rest.split(' ').next().unwrap().parse().unwrap(),
            None => 1.0,
        };
        assert!(line.ends_with(&format!("goto ep{i}")), "{line}");
        let share = left / modulus;
        assert!((share - 1.0 / n as f64).abs() < 1e-12, "{line}: {share}");
        left -= share;
    }
    let big = lines(&refs);
    assert_eq!(big.len(), 1, "{big:?}");
    assert!(
        big[0].starts_with(&format!(
            "numgen random mod {} vmap {{ 0 : goto ep0, 1 : goto ep1",
            n + 1
        )),
        "{}",
        big[0]
    );
}
