//! Partial syncs against the stateful fake: for each change, the previous full sync is
//! applied to an empty node (jumps ensured, then the restore), the partial-sync input of the
//! new state is applied on top with `--noflush`, and the result must equal a fresh node
//! fully synced to the new state. The fake refuses what the kernel refuses (a jump to a
//! missing chain, `-X` of a referenced chain), so a partial sync that forgets a chain fails
//! here as it would on a node.

mod common;

use common::{ensure_jumps, tables_by_name};
use dataplane::Family;
use dataplane::iptables::{RestoreError, RestoreMode, RestoreScript, Ruleset};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_proxy_rs::model::{self, ChangeSet, ModelOptions, ProxyState};
use kube_proxy_rs::render::iptables::{RenderOptions, Rendered, render_iptables, render_partial};
use serde_json::{Value, json};

/// A small cluster as API objects, edited by the test cases.
#[derive(Clone)]
struct World {
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    zone: &'static str,
}

fn svc(name: &str, spec: Value, status: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "demo", "name": name},
        "spec": spec, "status": status,
    }))
    .unwrap()
}

/// An EndpointSlice for `name` with endpoints `(ip, node)` on port 8080 ("http").
fn eps(name: &str, endpoints: &[(&str, &str)]) -> EndpointSlice {
    let e: Vec<Value> = endpoints
        .iter()
        .map(|(ip, node)| json!({"addresses": [ip], "conditions": {"ready": true}, "nodeName": node}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "demo", "name": format!("{name}-1"),
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": e,
    }))
    .unwrap()
}

fn http(node_port: Option<u16>) -> Value {
    match node_port {
        Some(n) => json!([{"name": "http", "port": 80, "nodePort": n}]),
        None => json!([{"name": "http", "port": 80}]),
    }
}

fn world() -> World {
    World {
        services: vec![
            svc(
                "a",
                json!({"clusterIP": "198.19.2.1", "ports": http(None)}),
                json!({}),
            ),
            svc(
                "b",
                json!({"clusterIP": "198.19.2.2", "ports": http(None),
                       "sessionAffinity": "ClientIP"}),
                json!({}),
            ),
            svc(
                "c",
                json!({"type": "LoadBalancer", "clusterIP": "198.19.2.3", "ports": http(Some(30003)),
                       "loadBalancerSourceRanges": ["198.19.255.0/25"]}),
                json!({"loadBalancer": {"ingress": [{"ip": "198.19.255.3"}]}}),
            ),
            svc(
                "d",
                json!({"type": "NodePort", "clusterIP": "198.19.2.4", "ports": http(Some(30004)),
                       "externalTrafficPolicy": "Local"}),
                json!({}),
            ),
            svc(
                "e",
                json!({"clusterIP": "198.19.2.5", "ports": http(None)}),
                json!({}),
            ),
        ],
        slices: vec![
            eps("a", &[("198.18.64.1", "node-a"), ("198.18.65.1", "node-b")]),
            eps(
                "b",
                &[
                    ("198.18.64.2", "node-a"),
                    ("198.18.65.2", "node-b"),
                    ("198.18.66.2", "node-c"),
                ],
            ),
            eps("c", &[("198.18.65.3", "node-b")]),
            eps("d", &[("198.18.64.4", "node-a"), ("198.18.65.4", "node-b")]),
        ],
        zone: "z1",
    }
}

impl World {
    fn state(&self) -> ProxyState {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": self.zone}},
            "spec": {"podCIDRs": ["198.18.64.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "198.18.0.1"}]},
        }))
        .unwrap();
        let opts = ModelOptions {
            node_name: "node-a".into(),
            cluster_cidrs: vec!["198.18.64.0/18".parse().unwrap()],
            ..ModelOptions::default()
        };
        let b = model::build(&self.services, &self.slices, Some(&node), &opts);
        assert!(b.warnings.is_empty(), "{:#?}", b.warnings);
        b.ipv4
    }

    fn set_slice(&mut self, name: &str, endpoints: &[(&str, &str)]) {
        self.slices.retain(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(String::as_str)
                != Some(name)
        });
        if !endpoints.is_empty() {
            self.slices.push(eps(name, endpoints));
        }
    }

    fn remove_service(&mut self, name: &str) {
        self.services
            .retain(|s| s.metadata.name.as_deref() != Some(name));
        self.set_slice(name, &[]);
    }
}

fn render(state: &ProxyState) -> Rendered {
    render_iptables(state, &RenderOptions::default())
}

fn apply(node: &mut Ruleset, text: &str) -> Result<(), RestoreError> {
    let script = RestoreScript::parse(Family::V4, text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    node.apply_restore(&script, RestoreMode { noflush: true })
}

/// A fresh node after a full sync of `state`.
fn fully_synced(state: &ProxyState) -> Ruleset {
    let mut node = Ruleset::new(Family::V4);
    ensure_jumps(&mut node);
    apply(&mut node, &render(state).to_restore()).unwrap();
    node
}

fn nat_chains(node: &Ruleset) -> Vec<String> {
    node.table("nat")
        .unwrap()
        .chains()
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

/// Applies the partial sync from `node` (synced to `old`) to `new`; checks it equals a full
/// sync of `new`; returns the partial input.
fn partial_step(node: &mut Ruleset, old: &ProxyState, new: &ProxyState) -> String {
    let changes = new.diff(old);
    let existing = nat_chains(node);
    let existing: Vec<&str> = existing.iter().map(String::as_str).collect();
    let text = render_partial(new, &changes, &existing, &RenderOptions::default());
    apply(node, &text).unwrap_or_else(|e| panic!("partial restore refused: {e}\n{text}"));
    let want = fully_synced(new);
    assert_eq!(
        tables_by_name(node).to_save(),
        tables_by_name(&want).to_save(),
        "partial sync differs from a full sync; input was:\n{text}"
    );
    text
}

fn chain_of(state: &ProxyState, svc: &str, prefix: &str) -> String {
    let name = state.services.keys().find(|k| k.name == svc).unwrap();
    format!("{prefix}{}", kube_proxy_rs::names::port_proto_hash(name))
}

#[test]
fn nothing_changed_writes_only_top_level_chains() {
    let w = world();
    let s = w.state();
    let mut node = fully_synced(&s);
    let text = partial_step(&mut node, &s, &s);
    assert!(!text.contains(":KUBE-SVC-"), "{text}");
    assert!(!text.contains("-A KUBE-SVC-"), "{text}");
    assert!(!text.contains("-X "), "{text}");
    assert!(text.contains(":KUBE-SERVICES - [0:0]"));
}

#[test]
fn endpoint_change_rewrites_that_service_only() {
    let w0 = world();
    let mut w1 = w0.clone();
    w1.set_slice("a", &[("198.18.64.1", "node-a"), ("198.18.66.1", "node-c")]);
    let (s0, s1) = (w0.state(), w1.state());
    let mut node = fully_synced(&s0);
    let text = partial_step(&mut node, &s0, &s1);
    let a = chain_of(&s1, "a", "KUBE-SVC-");
    let b = chain_of(&s1, "b", "KUBE-SVC-");
    assert!(text.contains(&format!(":{a} - [0:0]")), "{text}");
    assert!(!text.contains(&format!(":{b}")), "{text}");
    assert!(!text.contains(&format!("-A {b}")), "{text}");
    assert_eq!(text.matches("-X KUBE-SEP-").count(), 1, "{text}");
}

#[test]
fn service_removal_deletes_its_chains() {
    let w0 = world();
    let mut w1 = w0.clone();
    w1.remove_service("c");
    let (s0, s1) = (w0.state(), w1.state());
    let mut node = fully_synced(&s0);
    let text = partial_step(&mut node, &s0, &s1);
    for prefix in ["KUBE-SVC-", "KUBE-EXT-", "KUBE-FW-"] {
        let c = chain_of(&s0, "c", prefix);
        assert!(text.contains(&format!("-X {c}\n")), "{prefix}: {text}");
    }
}

#[test]
fn endpoints_to_zero_and_back() {
    let w0 = world();
    let mut w1 = w0.clone();
    w1.set_slice("b", &[]);
    let (s0, s1, s2) = (w0.state(), w1.state(), w0.state());
    let mut node = fully_synced(&s0);
    let to_zero = partial_step(&mut node, &s0, &s1);
    assert!(
        to_zero.contains("demo/b:http has no endpoints"),
        "{to_zero}"
    );
    assert_eq!(to_zero.matches("-X KUBE-SEP-").count(), 3, "{to_zero}");
    let back = partial_step(&mut node, &s1, &s2);
    assert_eq!(back.matches("-A KUBE-SEP-").count(), 6, "{back}");
    assert!(!back.contains("-X "), "{back}");
}

#[test]
fn added_service_port_and_policy_changes() {
    let w0 = world();
    let mut w1 = w0.clone();
    w1.services.push(svc(
        "f",
        json!({"clusterIP": "198.19.2.6", "ports": http(None)}),
        json!({}),
    ));
    w1.slices.push(eps("f", &[("198.18.64.6", "node-a")]));
    let mut w2 = w1.clone();
    // d: Local → Cluster external policy; c: source ranges dropped.
    w2.services
        .retain(|s| !matches!(s.metadata.name.as_deref(), Some("c" | "d")));
    w2.services.push(svc(
        "c",
        json!({"type": "LoadBalancer", "clusterIP": "198.19.2.3", "ports": http(Some(30003))}),
        json!({"loadBalancer": {"ingress": [{"ip": "198.19.255.3"}]}}),
    ));
    w2.services.push(svc(
        "d",
        json!({"type": "NodePort", "clusterIP": "198.19.2.4", "ports": http(Some(30004))}),
        json!({}),
    ));
    let mut w3 = w2.clone();
    w3.zone = "z2"; // node labels changed: upstream forces a full sync
    let states = [w0.state(), w1.state(), w2.state(), w3.state()];
    let mut node = fully_synced(&states[0]);
    for pair in states.windows(2) {
        partial_step(&mut node, &pair[0], &pair[1]);
    }
    let p = render(&states[3]).partial(&states[3].diff(&states[2]), &[]);
    assert!(
        p.text.contains(":KUBE-SVC-"),
        "a node change writes every chain"
    );
}

#[test]
fn stale_chains_left_by_a_restart_are_deleted_by_a_full_sync() {
    let w0 = world();
    let mut w1 = w0.clone();
    w1.remove_service("a");
    w1.remove_service("b");
    let (s0, s1) = (w0.state(), w1.state());
    let mut node = fully_synced(&s0);
    let existing = nat_chains(&node);
    let existing: Vec<&str> = existing.iter().map(String::as_str).collect();
    let r = render(&s1);
    let stale = r.stale_chains(&existing);
    assert_eq!(stale.len(), 2 + 5, "{stale:?}");
    let mut text = Vec::new();
    r.write_restore(&mut text, &stale).unwrap();
    apply(&mut node, std::str::from_utf8(&text).unwrap()).unwrap();
    assert_eq!(
        tables_by_name(&node).to_save(),
        tables_by_name(&fully_synced(&s1)).to_save()
    );
}

/// The fake catches a partial sync that omits a changed service: the old KUBE-SVC chain
/// still jumps to an endpoint chain the partial input deletes.
#[test]
fn a_wrong_change_set_is_refused_like_the_kernel_would() {
    let w0 = world();
    let mut w1 = w0.clone();
    w1.set_slice("a", &[("198.18.66.1", "node-c")]);
    let (s0, s1) = (w0.state(), w1.state());
    let mut node = fully_synced(&s0);
    let existing = nat_chains(&node);
    let existing: Vec<&str> = existing.iter().map(String::as_str).collect();
    let p = render(&s1).partial(&ChangeSet::default(), &existing);
    let err = apply(&mut node, &p.text).unwrap_err();
    assert!(matches!(err, RestoreError::ChainReferenced { .. }), "{err}");
}

#[test]
fn partial_counts() {
    let w0 = world();
    let mut w1 = w0.clone();
    w1.set_slice("a", &[("198.18.66.1", "node-c")]);
    let (s0, s1) = (w0.state(), w1.state());
    let node = fully_synced(&s0);
    let existing = nat_chains(&node);
    let existing: Vec<&str> = existing.iter().map(String::as_str).collect();
    let r = render(&s1);
    let p = r.partial(&s1.diff(&s0), &existing);
    assert_eq!(p.deleted_chains, 2);
    let written = p.text.lines().filter(|l| l.starts_with("-A ")).count();
    assert_eq!(p.filter_rules + p.nat_rules, written);
    assert!(p.nat_rules < r.counts().nat_rules);
}
