//! Figures for the API server double at kube-proxy scale: load N Services plus one
//! EndpointSlice each, time a full list (raw JSON and kube-rs pages), a reflector's initial
//! sync, and change -> reflector latency.
//!
//!     cargo run --release -p lab --example apiserver_scale -- [N] [CHANGES]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use lab::apiserver::{ApiServer, ApiServerOpts};
use serde_json::json;

fn svc(i: usize, port: u16) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": format!("svc-{i}"), "namespace": "default"},
           "spec": {"clusterIP": format!("198.19.{}.{}", i / 250, 1 + i % 250), "selector": {"app": format!("a{i}")},
                    "ports": [{"name": "http", "port": port, "targetPort": 8080}]}})
}

fn slice(i: usize) -> serde_json::Value {
    let endpoints: Vec<_> = (0..10)
        .map(|e| json!({"addresses": [format!("198.18.{}.{}", 65 + e, 2 + i % 250)], "conditions": {"ready": true}}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("svc-{i}-1"), "namespace": "default", "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints})
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let changes = args.get(1).copied().unwrap_or(200);
    let api = ApiServer::start(ApiServerOpts::default()).unwrap();

    let t = Instant::now();
    for i in 0..n {
        api.apply(&svc(i, 80)).unwrap();
        api.apply(&slice(i)).unwrap();
    }
    println!(
        "load {n} services + {n} endpointslices (10 endpoints) via the handle: {:?}",
        t.elapsed()
    );

    let t = Instant::now();
    let mut s = TcpStream::connect(api.addr()).unwrap();
    s.write_all(b"GET /api/v1/services HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    println!(
        "GET /api/v1/services (one page, raw HTTP): {:?}, {} bytes",
        t.elapsed(),
        body.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.kubeconfig(&kc).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kc).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let services: Api<Service> = Api::all(client.clone());
    let t = Instant::now();
    let mut lp = ListParams::default().limit(500);
    let mut count = 0;
    loop {
        let page = services.list(&lp).await.unwrap();
        count += page.items.len();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    println!(
        "kube-rs list in pages of 500: {count} services in {:?}",
        t.elapsed()
    );

    let (reader, writer) = reflector::store();
    let t = Instant::now();
    let rf = reflector::reflector(
        writer,
        watcher::watcher(services, watcher::Config::default()),
    )
    .default_backoff();
    tokio::spawn(rf.for_each(|_| futures::future::ready(())));
    reader.wait_until_ready().await.unwrap();
    println!(
        "kube-rs reflector initial sync of {} services: {:?}",
        reader.state().len(),
        t.elapsed()
    );
    api.wait_for_watches(1, Duration::from_secs(10));

    let mut lat = Vec::new();
    for c in 0..changes {
        let i = c * 37 % n;
        let port = 1000 + c as u16;
        let t = Instant::now();
        api.apply(&svc(i, port)).unwrap();
        let key = reflector::ObjectRef::new(&format!("svc-{i}")).within("default");
        loop {
            let seen = reader
                .get(&key)
                .and_then(|s| s.spec.clone())
                .and_then(|s| s.ports)
                .is_some_and(|p| p[0].port == i32::from(port));
            if seen {
                break;
            }
            tokio::task::yield_now().await;
        }
        lat.push(t.elapsed());
    }
    println!(
        "change -> reflector store, {changes} changes at {n} services: p50 {:?}, p99 {:?}, max {:?}",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );
}
