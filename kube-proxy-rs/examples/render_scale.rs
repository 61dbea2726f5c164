//! Times the iptables render at scale (default 10,000 Services × 10 endpoints):
//! `cargo run --release -p kube-proxy-rs --example render_scale [services]`.
//!
//! Prints the best of 5 (`ROUNDS=n` to change) for: render (ProxyState → Rendered) into
//! fresh and into reused buffers, emit (full restore text into a buffer), and a
//! one-Service partial sync (render + partial text), with the text size and rule counts.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_proxy_rs::model::{ModelOptions, build};
use kube_proxy_rs::render::iptables::{
    RenderOptions, Table, render_iptables, render_iptables_reusing,
};
use serde_json::json;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mut services = Vec::with_capacity(n);
    let mut slices = Vec::with_capacity(n);
    for i in 0..n {
        let cluster_ip = format!("198.19.{}.{}", i / 250, i % 250 + 1);
        services.push(
            serde_json::from_value::<Service>(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "bench", "name": format!("svc-{i}")},
                "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80}]},
            }))
            .expect("valid Service"),
        );
        let endpoints: Vec<_> = (0..10)
            .map(|j| {
                let k = i * 10 + j;
                json!({
                    "addresses": [format!("198.18.{}.{}", 64 + (k / 250) % 64, k % 250 + 1)],
                    "conditions": {"ready": true},
                    "nodeName": format!("node-{j}"),
                })
            })
            .collect();
        slices.push(
            serde_json::from_value::<EndpointSlice>(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"namespace": "bench", "name": format!("svc-{i}-1"),
                             "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": endpoints,
            }))
            .expect("valid EndpointSlice"),
        );
    }
    let model_opts = ModelOptions {
        node_name: "node-0".into(),
        cluster_cidrs: vec!["198.18.64.0/18".parse().expect("literal")],
        ..ModelOptions::default()
    };
    let state = build(&services, &slices, None, &model_opts).ipv4;

    // One Service changes an endpoint, for the partial sync.
    if let Some(e) = slices[n / 2].endpoints.as_mut().and_then(|e| e.first_mut()) {
        e.addresses = vec!["198.18.127.254".into()];
    }
    let changed = build(&services, &slices, None, &model_opts).ipv4;
    let changes = changed.diff(&state);

    let opts = RenderOptions::default();
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let best = |f: &mut dyn FnMut()| {
        let mut best = Duration::MAX;
        for _ in 0..rounds {
            let t = Instant::now();
            f();
            best = best.min(t.elapsed());
        }
        best
    };
    // A fresh render allocates (and first-touches) its buffers; a sync loop reuses them.
    let fresh = best(&mut || drop(render_iptables(&state, &opts)));
    let mut previous = Some(render_iptables(&state, &opts));
    let reused = best(&mut || {
        let p = previous.take().expect("kept");
        previous = Some(render_iptables_reusing(&state, &opts, p));
    });
    let r = previous.take().expect("kept");
    let mut out = Vec::with_capacity(64 << 20);
    let emit = best(&mut || {
        out.clear();
        r.write_restore(&mut out, &[]).expect("write to memory");
    });
    let bytes = out.len();
    let c = r.counts();
    let existing: Vec<String> = r.chain_names(Table::Nat).map(str::to_string).collect();
    let existing: Vec<&str> = existing.iter().map(String::as_str).collect();
    let mut partial_bytes = 0;
    let mut previous = Some(r);
    let partial = best(&mut || {
        let p = previous.take().expect("kept");
        let r = render_iptables_reusing(&changed, &opts, p);
        partial_bytes = r.partial(&changes, &existing).text.len();
        previous = Some(r);
    });
    println!(
        "{n} services x 10 endpoints ({} nat + {} filter rules, {} nat chains, {:.1} MB): \
         render {fresh:?} (fresh buffers) / {reused:?} (reused), emit {emit:?}, \
         render+emit {:?}; one-service partial sync (render + partial text) {partial:?}, \
         {partial_bytes} bytes (best of {rounds})",
        c.nat_rules,
        c.filter_rules,
        c.nat_chains,
        bytes as f64 / 1e6,
        fresh + emit,
    );
}
