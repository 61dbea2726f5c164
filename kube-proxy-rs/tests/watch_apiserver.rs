//! `watch::kube_feed` (kube-runtime reflectors for Services, EndpointSlices and this Node)
//! against the API server double on loopback, through a kubeconfig and `watch::client` as the
//! daemon builds it: no snapshot before every list came, upstream's label selectors and the
//! Node field selector, changes followed, and the objects kept (never emptied) while the
//! server is down, compacted (410 on resume) and restarted. No root needed.

use std::time::Duration;

use kube_proxy_rs::config::Config;
use kube_proxy_rs::watch::{self, Feed, Objects};
use lab::apiserver::{ApiServer, ApiServerOpts, Kind, Verb};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn svc(name: &str, ip: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "demo", "labels": labels},
           "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
}

fn slice(name: &str, service: &str, addr: &str, labels: Value) -> Value {
    let mut l = labels;
    l["kubernetes.io/service-name"] = json!(service);
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": "demo", "labels": l},
           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
           "endpoints": [{"addresses": [addr], "conditions": {"ready": true}}]})
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

fn names(o: &Objects) -> (Vec<String>, Vec<String>, Option<String>) {
    let mut s: Vec<String> = o
        .services
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let mut e: Vec<String> = o
        .endpoint_slices
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    s.sort();
    e.sort();
    (s, e, o.node.as_ref().and_then(|n| n.metadata.name.clone()))
}

/// Waits until the feed's objects satisfy `f`.
async fn until(feed: &mut Feed, f: impl Fn(&Objects) -> bool) -> bool {
    tokio::time::timeout(WAIT, async {
        loop {
            if feed.snapshot().is_some_and(|o| f(&o)) {
                return;
            }
            feed.changed().await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflectors_wait_for_every_list_filter_like_upstream_and_keep_objects_across_410() {
    let api = ApiServer::start(ApiServerOpts {
        bookmark_interval: Duration::from_millis(500),
        ..ApiServerOpts::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.kubeconfig(&kc).unwrap();
    for o in [
        svc("web", "198.19.0.10", json!({})),
        svc(
            "theirs",
            "198.19.0.11",
            json!({"service.kubernetes.io/service-proxy-name": "other"}),
        ),
        slice("web-1", "web", "198.18.65.2", json!({})),
        slice(
            "web-headless",
            "web",
            "198.18.65.3",
            json!({"service.kubernetes.io/headless": ""}),
        ),
        node("node1"),
        node("node2"),
    ] {
        api.apply(&o).unwrap();
    }

    // Partitioned: the watchers cannot list, so there is no snapshot at all.
    api.partition(true).unwrap();
    let cfg = Config::load(["kube-proxy-rs", &format!("--kubeconfig={}", kc.display())]).unwrap();
    let client = watch::client(&cfg).await.unwrap();
    let mut feed = watch::kube_feed(client, "node1");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(feed.snapshot().is_none(), "a snapshot before the lists");
    api.partition(false).unwrap();
    assert!(until(&mut feed, |_| true).await, "never listed");
    let o = feed.snapshot().unwrap();
    assert_eq!(
        names(&o),
        (
            vec!["web".into()],
            vec!["web-1".into()],
            Some("node1".into())
        ),
        "other proxies' Services, headless slices and other Nodes are not watched"
    );

    // A change is followed.
    api.apply(&slice("web-2", "web", "198.18.66.2", json!({})))
        .unwrap();
    assert!(until(&mut feed, |o| o.endpoint_slices.len() == 2).await);

    // Down, compacted while a Service was added, back up: the objects stay meanwhile, the
    // resumed watches get 410 and relist, and the snapshot then has the new Service.
    let lists = api.request_count(Verb::List, Some(Kind::Service));
    api.stop();
    api.apply(&svc("added", "198.19.0.12", json!({}))).unwrap();
    api.compact();
    let before = *feed.changes.borrow();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let o = feed.snapshot().unwrap();
    assert_eq!(
        names(&o).0,
        ["web"],
        "Services emptied while the server was down"
    );
    assert_eq!(o.endpoint_slices.len(), 2);
    assert_eq!(*feed.changes.borrow(), before, "no change while down");
    api.restart().unwrap();
    assert!(
        until(&mut feed, |o| o.services.len() == 2).await,
        "the Service added meanwhile never came"
    );
    assert!(api.request_count(Verb::List, Some(Kind::Service)) > lists);
    let o = feed.snapshot().unwrap();
    assert_eq!(names(&o).0, ["added", "web"]);
    assert_eq!(names(&o).2.as_deref(), Some("node1"));
    assert_eq!(o.endpoint_slices.len(), 2);
}
