//! Times the sync layer in throwaway network namespaces, as the benches will: a full sync of
//! N Services × 10 endpoints (default 1,000) and a one-Service partial sync, each next to
//! `iptables-restore --noflush` of the same text alone in a namespace in the same state, then
//! a full resync of the populated node (`resync_s`: what every later full sync costs).
//! Needs root and the iptables tools; the namespaces (a lab) are removed at the end.
//!
//! `cargo run --release -p kube-proxy-rs --example sync_netns -- [services] [legacy|nft]`
//!
//! Besides the sentence, one tab-separated `BENCH sync_netns key=value...` line (seconds,
//! KiB) for `benches/run.sh`.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::Family;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_proxy_rs::apply::netns::{in_netns, named};
use kube_proxy_rs::apply::{self, Backend, IptablesExec};
use kube_proxy_rs::model::{ModelOptions, ProxyState, build};
use kube_proxy_rs::render::iptables::RenderOptions;
use kube_proxy_rs::sync::Proxier;
use serde_json::json;

/// N ClusterIP Services with 10 ready endpoints each; `moved` changes one endpoint of
/// Service N/2 (the one-Service change).
fn state(n: usize, moved: bool) -> ProxyState {
    let mut services = Vec::with_capacity(n);
    let mut slices = Vec::with_capacity(n);
    for i in 0..n {
        services.push(
            serde_json::from_value::<Service>(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "bench", "name": format!("svc-{i}")},
                "spec": {"clusterIP": format!("198.19.{}.{}", i / 250, i % 250 + 1),
                         "ports": [{"name": "http", "port": 80}]},
            }))
            .expect("valid Service"),
        );
        let endpoints: Vec<_> = (0..10)
            .map(|j| {
                let k = i * 10 + j;
                let addr = if moved && i == n / 2 && j == 0 {
                    "198.18.127.254".to_string()
                } else {
                    format!("198.18.{}.{}", 64 + (k / 250) % 63, k % 250 + 1)
                };
                json!({"addresses": [addr], "conditions": {"ready": true}, "nodeName": format!("node-{j}")})
            })
            .collect();
        slices.push(
            serde_json::from_value::<EndpointSlice>(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"namespace": "bench", "name": format!("svc-{i}-1"),
                             "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                "endpoints": endpoints,
            }))
            .expect("valid EndpointSlice"),
        );
    }
    let opts = ModelOptions {
        node_name: "node-0".into(),
        cluster_cidrs: vec!["198.18.64.0/18".parse().expect("literal")],
        ..ModelOptions::default()
    };
    build(&services, &slices, None, &opts).ipv4
}

/// `iptables-restore --noflush --counters` of `text` in the calling thread's namespace.
fn restore_alone(backend: Backend, text: &str) -> Duration {
    let t = Instant::now();
    let mut child = Command::new(format!("iptables-{backend}-restore"))
        .args(["-w", "5", "--noflush", "--counters"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("iptables-restore runs");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("stdin");
    }
    assert!(child.wait().expect("waited").success(), "restore failed");
    t.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let backend = match args.get(2).map(String::as_str) {
        Some("legacy") => Backend::Legacy,
        _ => Backend::Nft,
    };
    let (before, after) = (state(n, false), state(n, true));
    let lab = lab::Lab::new("sync-netns").expect("a lab (needs root)");
    let ours = lab.host("ours").expect("host");
    let alone = lab.host("alone").expect("host");

    let mut p = Proxier::new(
        IptablesExec::new(Family::V4, backend),
        RenderOptions::default(),
    );
    p.keep_input(true);
    let (full, partial, resync, full_text, partial_text) = in_netns(&named(ours.netns()), || {
        let t = Instant::now();
        let a = p.sync_full(&before).expect("full sync");
        let full = t.elapsed();
        let full_text = p.last_input().unwrap_or_default().to_string();
        let t = Instant::now();
        let b = p.sync_changes(&after).expect("partial sync");
        let partial = t.elapsed();
        let partial_text = p.last_input().unwrap_or_default().to_string();
        // a full sync on the node that holds the rules (the periodic, canary or node-change
        // resync): its checks of the jump rules and canaries read populated tables
        let t = Instant::now();
        let c = p.sync_full(&after).expect("full resync");
        let resync = t.elapsed();
        assert!(a.full && !b.full && c.full && c.jumps_inserted == 0);
        (full, partial, resync, full_text, partial_text)
    })
    .expect("enter the namespace");
    let (full_alone, partial_alone) = in_netns(&named(alone.netns()), || {
        let mut w = IptablesExec::new(Family::V4, backend);
        apply::ensure_jump_rules(&mut w).expect("jumps");
        apply::ensure_canaries(&mut w).expect("canaries");
        (
            restore_alone(backend, &full_text),
            restore_alone(backend, &partial_text),
        )
    })
    .expect("enter the namespace");
    println!(
        "{n} services x 10 endpoints, iptables-{backend}: full sync {:.3} s ({} KB) = {:.2} x restore alone {:.3} s; \
         one-service partial sync {:.3} s ({} KB) = {:.2} x restore alone {:.3} s; \
         full resync of the populated node {:.3} s",
        full.as_secs_f64(),
        full_text.len() / 1024,
        full.as_secs_f64() / full_alone.as_secs_f64(),
        full_alone.as_secs_f64(),
        partial.as_secs_f64(),
        partial_text.len() / 1024,
        partial.as_secs_f64() / partial_alone.as_secs_f64(),
        partial_alone.as_secs_f64(),
        resync.as_secs_f64(),
    );
    println!(
        "BENCH\tsync_netns\tservices={n}\tbackend={backend}\tfull_s={:.6}\tfull_alone_s={:.6}\t\
         partial_s={:.6}\tpartial_alone_s={:.6}\tresync_s={:.6}\tfull_kib={}\tpartial_kib={}",
        full.as_secs_f64(),
        full_alone.as_secs_f64(),
        partial.as_secs_f64(),
        partial_alone.as_secs_f64(),
        resync.as_secs_f64(),
        full_text.len() / 1024,
        partial_text.len() / 1024,
    );
}
