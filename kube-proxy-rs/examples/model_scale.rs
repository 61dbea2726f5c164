//! Times `model::build` and `ProxyState::diff` at scale (default 10,000 Services × 10
//! endpoints): `cargo run --release -p kube-proxy-rs --example model_scale [services]`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_proxy_rs::model::{ModelOptions, build};
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
    let opts = ModelOptions {
        node_name: "node-0".into(),
        ..ModelOptions::default()
    };
    let (mut best_build, mut best_diff) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let t = Instant::now();
        let a = build(&services, &slices, None, &opts);
        best_build = best_build.min(t.elapsed());
        let b = build(&services, &slices, None, &opts);
        let t = Instant::now();
        assert!(b.ipv4.diff(&a.ipv4).is_empty());
        best_diff = best_diff.min(t.elapsed());
    }
    println!(
        "{n} services x 10 endpoints: build {best_build:?}, diff (unchanged) {best_diff:?} (best of 5)"
    );
}
