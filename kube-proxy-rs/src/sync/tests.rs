//! The sync layer on the stateful fake: what the kernel would hold after each sync, and
//! what it refuses.

use std::path::Path;

use dataplane::Family;
use serde_json::{Value, json};

use super::*;
use crate::apply::{self, ApplyError, FakeWriter, RuleWriter};
use crate::model::ModelOptions;
use crate::render::iptables::{RenderOptions, render_iptables};
use crate::watch::Objects;

fn service(name: &str, ip: &str, extra: Value) -> Value {
    let mut spec = json!({"clusterIP": ip, "ports": [{"name": "http", "port": 80}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"namespace": "demo", "name": name}, "spec": spec})
}

fn slice(name: &str, ips: &[&str]) -> Value {
    let eps: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}, "nodeName": "node1"}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"namespace": "demo", "name": format!("{name}-1"),
                        "labels": {"kubernetes.io/service-name": name}},
           "addressType": "IPv4",
           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
           "endpoints": eps})
}

fn objects(items: &[Value]) -> Objects {
    let text = items
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n");
    let m = crate::source::manifest::parse(Path::new("test.yaml"), &text).unwrap();
    Objects::from_manifests(&m, "node1")
}

fn model() -> ModelOptions {
    ModelOptions {
        node_name: "node1".into(),
        cluster_cidrs: vec!["198.18.64.0/18".parse().unwrap()],
        ..ModelOptions::default()
    }
}

fn engine() -> Engine<Proxier<FakeWriter>> {
    Engine::new(
        vec![
            Proxier::new(FakeWriter::new(Family::V4), RenderOptions::default()),
            Proxier::new(FakeWriter::new(Family::V6), RenderOptions::default()),
        ],
        model(),
    )
}

fn v4(e: &Engine<Proxier<FakeWriter>>) -> &FakeWriter {
    e.proxier(Family::V4).unwrap().writer()
}

/// What a fresh node holds after a full sync of `objs` (jumps, canaries, chains).
fn fresh(objs: &Objects) -> FakeWriter {
    let mut e = engine();
    let r = e.sync(objs, true);
    assert!(r.ok());
    v4(&e).clone()
}

/// The tables kube-proxy writes, as iptables-save shows them.
fn tables(w: &FakeWriter) -> String {
    ["mangle", "filter", "nat"]
        .iter()
        .map(|t| {
            let mut w = w.clone();
            w.save(t).unwrap()
        })
        .collect()
}

fn applied(r: &Report, f: Family) -> &Applied {
    r.families
        .iter()
        .find(|o| o.family == f)
        .unwrap()
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn two_services(b_ips: &[&str]) -> Objects {
    objects(&[
        service("a", "198.19.0.1", json!({})),
        slice("a", &["198.18.65.2"]),
        service("b", "198.19.0.2", json!({})),
        slice("b", b_ips),
    ])
}

#[test]
fn first_sync_is_full_and_leaves_what_upstream_leaves_on_a_fresh_node() {
    let mut e = engine();
    let objs = two_services(&["198.18.65.3"]);
    let r = e.sync(&objs, false);
    let a = applied(&r, Family::V4);
    assert!(a.full, "the first sync is full even when not asked");
    assert_eq!(
        a.jumps_inserted,
        apply::ensure_jump_rules(&mut FakeWriter::new(Family::V4)).unwrap()
    );
    let b = r.build.state(Family::V4);
    let expected = render_iptables(b, &RenderOptions::default())
        .to_ruleset()
        .unwrap();
    let fake = &v4(&e).ruleset;
    for t in ["mangle", "filter", "nat"] {
        assert_eq!(fake.table(t), expected.table(t), "table {t}");
    }
    // IPv6 has no services but its static chains, jumps and canaries.
    let v6 = &e.proxier(Family::V6).unwrap().writer().ruleset;
    assert!(v6.chain("nat", "KUBE-SERVICES").is_some());
    assert!(v6.chain("mangle", "KUBE-PROXY-CANARY").is_some());
}

#[test]
fn endpoint_change_is_a_partial_restore_equal_to_a_full_sync() {
    let mut e = engine();
    assert!(e.sync(&two_services(&["198.18.65.3"]), false).ok());
    let next = two_services(&["198.18.65.3", "198.18.65.4"]);
    let r = e.sync(&next, false);
    let a = applied(&r, Family::V4);
    assert!(!a.full);
    assert_eq!(a.changes.services().len(), 1);
    let input = v4(&e).restores.last().unwrap().clone();
    // Only b's chains are written; a's are left as they are.
    let a_svc = crate::names::svc_chain(r.build.ipv4.services.keys().next().unwrap());
    // (KUBE-SERVICES, rewritten in full, still jumps to it.)
    assert!(!input.contains(&format!(":{a_svc} ")), "{input}");
    assert!(!input.contains(&format!("-A {a_svc} ")), "{input}");
    assert!(input.contains(":KUBE-SERVICES - [0:0]"));
    assert_eq!(tables(v4(&e)), tables(&fresh(&next)));
    // No change at all: still a restore of the top-level chains, nothing else.
    let r = e.sync(&next, false);
    assert!(applied(&r, Family::V4).changes.is_empty());
    assert_eq!(tables(v4(&e)), tables(&fresh(&next)));
}

#[test]
fn removed_service_chains_are_deleted_by_a_partial_sync() {
    let mut e = engine();
    assert!(e.sync(&two_services(&["198.18.65.3"]), false).ok());
    let only_a = objects(&[
        service("a", "198.19.0.1", json!({})),
        slice("a", &["198.18.65.2"]),
    ]);
    let r = e.sync(&only_a, false);
    let a = applied(&r, Family::V4);
    assert!(!a.full);
    assert_eq!(a.deleted_chains.len(), 2, "{:?}", a.deleted_chains); // SVC + SEP of b
    assert_eq!(tables(v4(&e)), tables(&fresh(&only_a)));
}

#[test]
fn failed_restore_keeps_the_rules_and_the_retry_is_full() {
    let mut e = engine();
    let first = two_services(&["198.18.65.3"]);
    assert!(e.sync(&first, false).ok());
    let before = tables(v4(&e));
    e.proxier_mut(Family::V4)
        .unwrap()
        .writer_mut()
        .fail_next_restores(1);
    let next = two_services(&["198.18.65.4"]);
    let r = e.sync(&next, false);
    let err = r.families[0].result.as_ref().unwrap_err();
    assert!(err.to_string().contains("IPv4 partial restore"), "{err}");
    assert_eq!(tables(v4(&e)), before, "the previous rules stay");
    assert!(r.families[1].result.is_ok(), "IPv6 is not blocked by IPv4");
    assert!(e.proxier(Family::V4).unwrap().applied().is_none());
    let r = e.sync(&next, false);
    assert!(
        applied(&r, Family::V4).full,
        "after a failure the next sync is full"
    );
    assert_eq!(tables(v4(&e)), tables(&fresh(&next)));
}

#[test]
fn chain_deleted_behind_our_back_fails_the_partial_sync_naming_the_line_then_full_repairs() {
    let mut e = engine();
    let first = two_services(&["198.18.65.3"]);
    let r = e.sync(&first, false);
    let a_name = r.build.ipv4.services.keys().next().unwrap().clone();
    let a_svc = crate::names::svc_chain(&a_name);
    // Someone removes a's service chain (and the rule jumping to it, so -X works).
    let w = e.proxier_mut(Family::V4).unwrap().writer_mut();
    let save = w.save("nat").unwrap();
    let jump = save
        .lines()
        .find(|l| l.starts_with("-A KUBE-SERVICES") && l.ends_with(&a_svc))
        .unwrap()
        .replacen("-A ", "-D ", 1);
    w.restore(&format!("*nat\n{jump}\n-F {a_svc}\n-X {a_svc}\nCOMMIT\n"))
        .unwrap();
    // A change to b: the partial sync rewrites KUBE-SERVICES, which jumps to a's chain.
    let next = two_services(&["198.18.65.4"]);
    let r = e.sync(&next, false);
    let Err(SyncError::Restore {
        source: ApplyError::Restore(f),
        ..
    }) = &r.families[0].result
    else {
        panic!("{:?}", r.families[0].result)
    };
    let line = f.line_text.as_deref().unwrap();
    assert!(
        line.starts_with("-A KUBE-SERVICES") && line.ends_with(&a_svc),
        "{f}"
    );
    let r = e.sync(&next, false);
    assert!(applied(&r, Family::V4).full);
    assert_eq!(tables(v4(&e)), tables(&fresh(&next)));
}

#[test]
fn canary_removal_is_seen_and_a_full_sync_restores_it() {
    let mut e = engine();
    let objs = two_services(&["198.18.65.3"]);
    assert!(e.sync(&objs, false).ok());
    assert!(e.missing_canaries().unwrap().is_empty());
    // firewalld-style flush of the mangle table.
    e.proxier_mut(Family::V4)
        .unwrap()
        .writer_mut()
        .restore("*mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n")
        .unwrap();
    assert_eq!(e.missing_canaries().unwrap(), [(Family::V4, "mangle")]);
    assert!(e.sync(&objs, true).ok());
    assert!(e.missing_canaries().unwrap().is_empty());
}

#[test]
fn bad_service_is_skipped_with_a_named_warning_and_the_others_are_programmed() {
    let mut e = engine();
    let objs = objects(&[
        service("good", "198.19.0.1", json!({})),
        slice("good", &["198.18.65.2"]),
        service("bad-ip", "198.19.0.300", json!({})),
        service(
            "bad-port",
            "198.19.0.3",
            json!({"ports": [{"name": "http", "port": 0}]}),
        ),
    ]);
    let r = e.sync(&objs, false);
    assert!(r.ok());
    let text: Vec<String> = r.build.warnings.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|w| w.starts_with("Service demo/bad-ip: spec.clusterIP")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|w| w.starts_with("Service demo/bad-port: spec.ports[0].port")),
        "{text:?}"
    );
    let names: Vec<String> = r
        .build
        .ipv4
        .services
        .keys()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(names, ["demo/good:http"]);
    let good = crate::names::svc_chain(r.build.ipv4.services.keys().next().unwrap());
    assert!(v4(&e).ruleset.chain("nat", &good).is_some());
}

#[test]
fn health_check_ports_and_local_endpoints_come_from_both_families() {
    let mut e = engine();
    let objs = objects(&[
        service(
            "lb",
            "198.19.0.9",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                   "healthCheckNodePort": 30500,
                   "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        ),
        slice("lb", &["198.18.65.2", "198.18.65.3"]),
    ]);
    let r = e.sync(&objs, false);
    let ports: Vec<(String, u16)> = r
        .health_check_ports()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(ports, [("demo/lb".to_string(), 30500)]);
    assert_eq!(
        r.local_endpoints().values().copied().collect::<Vec<_>>(),
        [2]
    );
}

fn ipv4_state(objs: &Objects) -> crate::model::ProxyState {
    crate::model::build(
        objs.services.iter().map(|s| &**s),
        objs.endpoint_slices.iter().map(|s| &**s),
        objs.node.as_deref(),
        &model(),
    )
    .ipv4
}

#[test]
fn bench_entry_points_full_then_one_service_partial_with_the_inputs_kept() {
    let one = ipv4_state(&two_services(&["198.18.65.3"]));
    let two = ipv4_state(&two_services(&["198.18.65.3", "198.18.65.4"]));
    let mut p = Proxier::new(FakeWriter::new(Family::V4), RenderOptions::default());
    assert!(p.last_input().is_none());
    p.keep_input(true);
    let full = p.sync_full(&one).unwrap();
    assert!(full.full);
    let full_input = p.last_input().unwrap().to_string();
    assert_eq!(full_input.len(), full.input_bytes);
    // The full input on its own, into a node that has the jump rules and canaries, is the
    // same kernel state (what a bench's "iptables-restore alone" baseline replays).
    let mut replay = FakeWriter::new(Family::V4);
    apply::ensure_jump_rules(&mut replay).unwrap();
    apply::ensure_canaries(&mut replay).unwrap();
    replay.restore(&full_input).unwrap();
    assert_eq!(tables(&replay), tables(p.writer()));

    let partial = p.sync_changes(&two).unwrap();
    assert!(!partial.full);
    assert_eq!(partial.changes.services().len(), 1);
    let partial_input = p.last_input().unwrap();
    assert!(partial_input.len() < full_input.len());
    replay.restore(partial_input).unwrap();
    assert_eq!(tables(&replay), tables(p.writer()));
    p.keep_input(false);
    assert!(p.last_input().is_none());
}
