//! kube-rs' real client code against the API server double, through a kubeconfig file as
//! kube-proxy-rs will use it: watchers and reflectors on Services, EndpointSlices and Nodes,
//! paginated initial lists, streaming lists, bookmarks, the selectors kube-proxy uses, and
//! recovery from a restart, a compaction (410 Gone, relist) and a partition. Loopback only.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Config, ResourceExt};
use lab::apiserver::{ApiServer, ApiServerOpts, Kind, Verb};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn svc(name: &str, ip: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default", "labels": labels},
           "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
}

fn slice(name: &str, service: &str, addrs: &[&str]) -> Value {
    let endpoints: Vec<Value> = addrs
        .iter()
        .map(|a| json!({"addresses": [a], "conditions": {"ready": true}, "nodeName": "node1"}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": endpoints})
}

fn node(name: &str, ip: &str, cidr: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
           "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
           "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
}

/// The double, plus a kube client built from the kubeconfig it wrote.
async fn setup(opts: ApiServerOpts) -> (ApiServer, Client, tempfile::TempDir) {
    let api = ApiServer::start(opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    api.kubeconfig(&path).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    (api, Client::try_from(config).unwrap(), dir)
}

fn fast_bookmarks() -> ApiServerOpts {
    ApiServerOpts {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

async fn next<S: Stream + Unpin>(s: &mut S) -> S::Item {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("no event in time")
        .expect("stream ended")
}

/// Describes a watcher event as `Init`, `InitApply name`, `Apply name`...
fn ev<K: ResourceExt>(e: &Event<K>) -> String {
    match e {
        Event::Init => "Init".into(),
        Event::InitApply(o) => format!("InitApply {}", o.name_any()),
        Event::InitDone => "InitDone".into(),
        Event::Apply(o) => format!("Apply {}", o.name_any()),
        Event::Delete(o) => format!("Delete {}", o.name_any()),
    }
}

async fn next_ok<K: ResourceExt, S: Stream<Item = watcher::Result<Event<K>>> + Unpin>(
    s: &mut S,
) -> Event<K> {
    loop {
        match next(s).await {
            Ok(e) => return e,
            Err(e) => eprintln!("watcher error (retried): {e}"),
        }
    }
}

/// Waits until the reflector store holds exactly `names`.
async fn converge<K>(store: &Store<K>, names: &[&str]) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    tokio::time::timeout(WAIT, async {
        loop {
            let have: BTreeSet<String> = store.state().iter().map(|o| o.name_any()).collect();
            if have == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok()
}

/// Runs a reflector in the background, recording the watcher's errors.
fn reflect<K>(api: Api<K>, cfg: watcher::Config) -> (Store<K>, Arc<Mutex<Vec<String>>>)
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default,
{
    let (reader, writer) = reflector::store();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let errs = errors.clone();
    let stream = reflector::reflector(writer, watcher::watcher(api, cfg)).default_backoff();
    tokio::spawn(stream.for_each(move |r| {
        if let Err(e) = r {
            errs.lock().unwrap().push(e.to_string());
        }
        futures::future::ready(())
    }));
    (reader, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_list_then_follow_services_slices_and_nodes() {
    let (api, client, _dir) = setup(fast_bookmarks()).await;
    for (name, ip) in [
        ("a", "198.19.0.10"),
        ("b", "198.19.0.11"),
        ("c", "198.19.0.12"),
    ] {
        api.apply(&svc(name, ip, json!({}))).unwrap();
    }
    api.apply(&slice("a-1", "a", &["198.18.65.2"])).unwrap();
    api.apply(&node("node1", "198.18.0.11", "198.18.65.0/24"))
        .unwrap();

    // Services with a small page size: the initial list takes two pages.
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let mut w = watcher::watcher(services, watcher::Config::default().page_size(2)).boxed();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("InitDone") {
        seen.push(ev(&next_ok(&mut w).await));
    }
    assert_eq!(
        seen,
        [
            "Init",
            "InitApply a",
            "InitApply b",
            "InitApply c",
            "InitDone"
        ]
    );
    let list = api
        .requests()
        .into_iter()
        .filter(|r| r.verb == Verb::List && r.kind == Some(Kind::Service))
        .count();
    assert_eq!(list, 2, "two pages");
    // The watcher resumes from the list's resourceVersion when polled: changes made before it
    // watches come from the history, in order.
    api.apply(&svc("d", "198.19.0.13", json!({}))).unwrap();
    let mut d = svc("d", "198.19.0.13", json!({}));
    d["spec"]["ports"][0]["port"] = json!(81);
    api.apply(&d).unwrap();
    api.delete(Kind::Service, "default", "d").unwrap();
    assert_eq!(ev(&next_ok(&mut w).await), "Apply d");
    match next_ok(&mut w).await {
        Event::Apply(s) => assert_eq!(s.spec.unwrap().ports.unwrap()[0].port, 81),
        other => panic!("expected the modification, got {}", ev(&other)),
    }
    assert_eq!(ev(&next_ok(&mut w).await), "Delete d");

    // EndpointSlices and Nodes through reflectors.
    let (slices, _) = reflect(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    );
    let (nodes, _) = reflect(Api::<Node>::all(client.clone()), watcher::Config::default());
    slices.wait_until_ready().await.unwrap();
    nodes.wait_until_ready().await.unwrap();
    assert!(converge(&slices, &["a-1"]).await && converge(&nodes, &["node1"]).await);
    assert!(api.wait_for_watches(3, WAIT));
    api.apply(&slice("a-1", "a", &["198.18.65.2", "198.18.66.2"]))
        .unwrap();
    api.apply(&slice("b-1", "b", &["198.18.66.3"])).unwrap();
    api.apply(&node("node2", "198.18.0.12", "198.18.66.0/24"))
        .unwrap();
    assert!(
        converge(&slices, &["a-1", "b-1"]).await && converge(&nodes, &["node1", "node2"]).await
    );
    let a1 = slices
        .state()
        .into_iter()
        .find(|s| s.name_any() == "a-1")
        .unwrap();
    assert_eq!(a1.endpoints.as_ref().map(Vec::len), Some(2));
    api.delete(Kind::EndpointSlice, "default", "a-1").unwrap();
    api.delete(Kind::Node, "", "node1").unwrap();
    assert!(converge(&slices, &["b-1"]).await && converge(&nodes, &["node2"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watches_get_bookmarks_and_streaming_lists_work() {
    let (api, client, _dir) = setup(fast_bookmarks()).await;
    api.apply(&svc("a", "198.19.0.10", json!({}))).unwrap();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let list = services.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.clone().unwrap();
    assert_eq!(rv, api.resource_version().to_string());
    let mut stream = services
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let mut bookmarks = 0;
    while bookmarks < 2 {
        match next(&mut stream).await.unwrap() {
            WatchEvent::Bookmark(b) => {
                assert_eq!(b.metadata.resource_version, rv);
                bookmarks += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The streaming-list strategy (sendInitialEvents) as a watcher: no list call at all.
    api.clear_requests();
    let mut w = watcher::watcher(services, watcher::Config::default().streaming_lists()).boxed();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("InitDone") {
        seen.push(ev(&next_ok(&mut w).await));
    }
    assert_eq!(seen, ["Init", "InitApply a", "InitDone"]);
    assert_eq!(api.request_count(Verb::List, None), 0);
    api.apply(&svc("b", "198.19.0.11", json!({}))).unwrap();
    assert_eq!(ev(&next_ok(&mut w).await), "Apply b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_proxy_selectors() {
    let (api, client, _dir) = setup(ApiServerOpts::default()).await;
    api.apply(&svc("plain", "198.19.0.10", json!({}))).unwrap();
    api.apply(&svc(
        "other-proxy",
        "198.19.0.11",
        json!({"service.kubernetes.io/service-proxy-name": "cilium"}),
    ))
    .unwrap();
    api.apply(&node("node1", "198.18.0.11", "198.18.65.0/24"))
        .unwrap();
    api.apply(&node("node2", "198.18.0.12", "198.18.66.0/24"))
        .unwrap();
    let cfg = watcher::Config::default()
        .labels("!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless");
    let (services, _) = reflect(Api::<Service>::all(client.clone()), cfg);
    let (nodes, _) = reflect(
        Api::<Node>::all(client.clone()),
        watcher::Config::default().fields("metadata.name=node1"),
    );
    services.wait_until_ready().await.unwrap();
    nodes.wait_until_ready().await.unwrap();
    assert!(converge(&services, &["plain"]).await);
    assert!(converge(&nodes, &["node1"]).await);
    assert!(api.wait_for_watches(2, WAIT));
    // A Service that gains the label leaves the selection (a DELETED on the watch).
    api.apply(&svc(
        "plain",
        "198.19.0.10",
        json!({"service.kubernetes.io/headless": ""}),
    ))
    .unwrap();
    api.apply(&svc("new", "198.19.0.12", json!({}))).unwrap();
    assert!(converge(&services, &["new"]).await);
    let mut n1 = node("node1", "198.18.0.11", "198.18.65.0/24");
    n1["metadata"]["labels"] = json!({"topology.kubernetes.io/zone": "a"});
    api.apply(&n1).unwrap();
    api.apply(&node("node3", "198.18.0.13", "198.18.67.0/24"))
        .unwrap();
    let labelled = || {
        nodes
            .get(&reflector::ObjectRef::new("node1"))
            .is_some_and(|n| n.labels().contains_key("topology.kubernetes.io/zone"))
    };
    assert!(
        tokio::time::timeout(WAIT, async {
            while !labelled() {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
        })
        .await
        .is_ok()
    );
    assert!(converge(&nodes, &["node1"]).await);
    let watch_queries: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.verb == Verb::Watch)
        .map(|r| r.query)
        .collect();
    assert!(
        watch_queries
            .iter()
            .any(|q| q.contains("fieldSelector=metadata.name%3Dnode1")),
        "{watch_queries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reconnects_without_relisting() {
    let (api, client, _dir) = setup(ApiServerOpts::default()).await;
    api.apply(&svc("a", "198.19.0.10", json!({}))).unwrap();
    let (store, _) = reflect(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    store.wait_until_ready().await.unwrap();
    assert!(api.wait_for_watches(1, WAIT));
    assert_eq!(api.request_count(Verb::List, Some(Kind::Service)), 1);
    api.stop();
    api.apply(&svc("b", "198.19.0.11", json!({}))).unwrap();
    api.delete(Kind::Service, "default", "a").unwrap();
    api.restart().unwrap();
    assert!(converge(&store, &["b"]).await, "{:?}", store.state());
    // The watcher resumed from its resourceVersion: the history covered the gap.
    assert_eq!(api.request_count(Verb::List, Some(Kind::Service)), 1);
    assert!(api.request_count(Verb::Watch, Some(Kind::Service)) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_makes_watchers_relist() {
    let (api, client, _dir) = setup(ApiServerOpts::default()).await;
    api.apply(&svc("a", "198.19.0.10", json!({}))).unwrap();
    api.apply(&slice("a-1", "a", &["198.18.65.2"])).unwrap();
    let (services, svc_errors) = reflect(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let (slices, _) = reflect(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    );
    services.wait_until_ready().await.unwrap();
    slices.wait_until_ready().await.unwrap();
    assert!(api.wait_for_watches(2, WAIT));
    // Restarted with its history compacted: every resumed watch is too old.
    api.stop();
    api.delete(Kind::Service, "default", "a").unwrap();
    api.apply(&svc("b", "198.19.0.11", json!({}))).unwrap();
    api.apply(&slice("b-1", "b", &["198.18.66.2"])).unwrap();
    api.compact();
    api.restart().unwrap();
    assert!(converge(&services, &["b"]).await, "{:?}", services.state());
    assert!(converge(&slices, &["a-1", "b-1"]).await);
    assert!(
        api.request_count(Verb::List, Some(Kind::Service)) >= 2,
        "relisted after 410"
    );
    assert!(api.request_count(Verb::List, Some(Kind::EndpointSlice)) >= 2);
    let errors = svc_errors.lock().unwrap().clone();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("too old resource version")),
        "{errors:?}"
    );
    // Connections broken by a partition, the history compacted meanwhile: relist again.
    assert!(api.wait_for_watches(2, WAIT));
    let lists = api.request_count(Verb::List, Some(Kind::Service));
    api.partition(true).unwrap();
    api.cut_connections();
    api.apply(&svc("c", "198.19.0.12", json!({}))).unwrap();
    api.compact();
    api.partition(false).unwrap();
    assert!(
        converge(&services, &["b", "c"]).await,
        "{:?}",
        services.state()
    );
    assert!(api.request_count(Verb::List, Some(Kind::Service)) > lists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_holds_the_watch_then_delivers() {
    let (api, client, _dir) = setup(ApiServerOpts::default()).await;
    api.apply(&svc("a", "198.19.0.10", json!({}))).unwrap();
    let (store, _) = reflect(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    store.wait_until_ready().await.unwrap();
    assert!(api.wait_for_watches(1, WAIT));
    api.partition(true).unwrap();
    api.apply(&svc("b", "198.19.0.11", json!({}))).unwrap();
    // Nothing gets through a partition, however long one waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.state().len(), 1);
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let held = tokio::time::timeout(Duration::from_millis(500), services.get("a")).await;
    assert!(
        !matches!(held, Ok(Ok(_))),
        "a request during a partition gets no answer"
    );
    api.partition(false).unwrap();
    assert!(converge(&store, &["a", "b"]).await);
    assert_eq!(
        api.request_count(Verb::List, Some(Kind::Service)),
        1,
        "the held stream resumed: no relist"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_client() {
    let (api, client, _dir) = setup(ApiServerOpts::default()).await;
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let s: Service = serde_json::from_value(svc("web", "198.19.0.10", json!({}))).unwrap();
    let created = services.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let err = services
        .create(&PostParams::default(), &s)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409 && e.reason == "AlreadyExists"),
        "{err}"
    );
    let mut stale = created.clone();
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    stale.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 81;
    let err = services
        .replace("web", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409 && e.reason == "Conflict"),
        "{err}"
    );
    let ssa = PatchParams::apply("lab-test");
    let applied = services
        .patch("web", &ssa, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80, "targetPort": 9090}]}})))
        .await
        .unwrap();
    assert_eq!(applied.labels().get("x").map(String::as_str), Some("y"));
    services.delete("web", &Default::default()).await.unwrap();
    assert!(services.get_opt("web").await.unwrap().is_none());
    assert!(api.get::<Service>("default", "web").is_none());
}
