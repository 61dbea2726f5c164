//! The API server double's HTTP protocol, spoken by hand over a TCP socket (no Kubernetes
//! client in between): discovery, pagination, resourceVersion semantics, 410 after compaction,
//! watch events and bookmarks, writes and their conflicts. Loopback only; no root needed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lab::apiserver::{ApiServer, ApiServerOpts, Kind, Verb};
use serde_json::{Value, json};

struct Resp {
    code: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// A watch body: one JSON event per line.
    fn events(&self) -> Vec<Value> {
        self.body
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn dechunk(mut raw: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        raw = &rest[n + 2..];
    }
    out
}

/// One HTTP/1.1 request on a fresh connection; reads until the server closes it.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        && !body.is_empty()
    {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let code = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp {
        code,
        headers,
        body,
    }
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    http(addr, "GET", path, &[], None)
}

fn svc(ns: &str, name: &str, ip: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns, "labels": labels},
           "spec": {"clusterIP": ip, "ports": [{"port": 80, "targetPort": 8080}]}})
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn start() -> ApiServer {
    ApiServer::start(ApiServerOpts {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn discovery_documents() {
    let api = start();
    let a = api.addr();
    let v = get(a, "/version").json();
    assert_eq!(
        (v["major"].as_str(), v["minor"].as_str()),
        (Some("1"), Some("33"))
    );
    let core = get(a, "/api").json();
    assert_eq!(core["versions"], json!(["v1"]));
    let agg = http(
        a,
        "GET",
        "/api",
        &[(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )],
        None,
    );
    assert_eq!(
        agg.header("content-type"),
        Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    );
    assert_eq!(agg.json()["kind"], "APIGroupDiscoveryList");
    // An older kubectl asks for v2beta1 first: it gets the plain documents and falls back.
    let old = http(
        a,
        "GET",
        "/apis",
        &[(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
        )],
        None,
    );
    assert_eq!(old.json()["kind"], "APIGroupList");
    let res = get(a, "/apis/discovery.k8s.io/v1").json();
    assert_eq!(res["resources"][0]["name"], "endpointslices");
    assert_eq!(
        get(a, "/api/v1").json()["resources"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    assert_eq!(get(a, "/apis/apps/v1").code, 404);
    let missing = get(a, "/api/v1/endpoints");
    assert_eq!(
        (missing.code, missing.json()["reason"].as_str()),
        (404, Some("NotFound"))
    );
    assert_eq!(get(a, "/openapi/v2").code, 404);
    let oa = get(a, "/openapi/v3").json();
    let url = oa["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(a, &url).json()["openapi"], "3.0.0");
    assert_eq!(api.request_count(Verb::Discovery, None), 10);
}

#[test]
fn lists_are_sorted_paginated_and_consistent() {
    let api = start();
    let a = api.addr();
    for (ns, name, ip) in [
        ("b", "s3", "198.19.0.3"),
        ("a", "s2", "198.19.0.2"),
        ("a", "s1", "198.19.0.1"),
        ("b", "s4", "198.19.0.4"),
        ("c", "s5", "198.19.0.5"),
    ] {
        api.apply(&svc(ns, name, ip, json!({"app": name}))).unwrap();
    }
    let all = get(a, "/api/v1/services").json();
    assert_eq!(names(&all), ["s1", "s2", "s3", "s4", "s5"]);
    assert_eq!(rv(&all), api.resource_version());
    assert!(
        all["items"][0].get("kind").is_none(),
        "list items carry no kind, as upstream"
    );
    assert_eq!(
        names(&get(a, "/api/v1/namespaces/a/services").json()),
        ["s1", "s2"]
    );

    let p1 = get(a, "/api/v1/services?limit=2").json();
    assert_eq!(names(&p1), ["s1", "s2"]);
    assert_eq!(p1["metadata"]["remainingItemCount"], 3);
    let snapshot = rv(&p1);
    // Changes after the first page do not show in later pages: they read the same snapshot.
    api.delete(Kind::Service, "b", "s3").unwrap();
    let mut moved = svc("b", "s4", "198.19.0.4", json!({"app": "moved"}));
    moved["spec"]["ports"][0]["port"] = json!(81);
    api.apply(&moved).unwrap();
    let tok = p1["metadata"]["continue"].as_str().unwrap();
    let p2 = get(a, &format!("/api/v1/services?limit=2&continue={tok}")).json();
    assert_eq!(names(&p2), ["s3", "s4"]);
    assert_eq!(p2["items"][1]["spec"]["ports"][0]["port"], 80);
    assert_eq!(rv(&p2), snapshot);
    let tok = p2["metadata"]["continue"].as_str().unwrap();
    let p3 = get(a, &format!("/api/v1/services?limit=2&continue={tok}")).json();
    assert_eq!(names(&p3), ["s5"]);
    assert!(p3["metadata"].get("continue").is_none());

    // Selectors page over the selected objects only, without a remaining count.
    let sel = get(
        a,
        "/api/v1/services?limit=1&labelSelector=app%20in%20(s1,s5)",
    )
    .json();
    assert_eq!(names(&sel), ["s1"]);
    assert!(sel["metadata"].get("remainingItemCount").is_none());
    let tok = sel["metadata"]["continue"].as_str().unwrap();
    assert_eq!(
        names(
            &get(
                a,
                &format!(
                    "/api/v1/services?limit=1&labelSelector=app%20in%20(s1,s5)&continue={tok}"
                )
            )
            .json()
        ),
        ["s5"]
    );
    assert_eq!(
        names(
            &get(
                a,
                "/api/v1/services?fieldSelector=metadata.namespace%3Da,metadata.name!%3Ds1"
            )
            .json()
        ),
        ["s2"]
    );
    assert_eq!(
        names(&get(a, "/api/v1/services?labelSelector=!app").json()),
        Vec::<String>::new()
    );
    let bad = get(a, "/api/v1/services?fieldSelector=spec.nodeName%3Dx");
    assert_eq!(
        (bad.code, bad.json()["message"].as_str()),
        (400, Some("field label not supported: spec.nodeName"))
    );
    assert_eq!(
        get(a, "/api/v1/services?labelSelector=a%20in%20b").code,
        400
    );
    // resourceVersion=0 is served from the cache, which ignores limit.
    assert_eq!(
        names(&get(a, "/api/v1/services?resourceVersion=0&limit=1").json()).len(),
        4
    );
}

#[test]
fn resource_versions_history_and_410_after_compaction() {
    let api = start();
    let a = api.addr();
    let created = api
        .apply(&svc("d", "web", "198.19.0.10", json!({})))
        .unwrap();
    let v1 = rv(&created);
    let mut changed = svc("d", "web", "198.19.0.10", json!({}));
    changed["spec"]["ports"][0]["port"] = json!(8080);
    api.apply(&changed).unwrap();
    // An exact read at the older version sees the older object.
    let old = get(
        a,
        &format!("/api/v1/namespaces/d/services?resourceVersion={v1}&resourceVersionMatch=Exact"),
    )
    .json();
    assert_eq!(
        (
            rv(&old),
            old["items"][0]["spec"]["ports"][0]["port"].as_i64()
        ),
        (v1, Some(80))
    );
    let not_older = get(
        a,
        &format!(
            "/api/v1/namespaces/d/services?resourceVersion={v1}&resourceVersionMatch=NotOlderThan"
        ),
    )
    .json();
    assert_eq!(not_older["items"][0]["spec"]["ports"][0]["port"], 8080);
    let exact_zero = get(
        a,
        "/api/v1/services?resourceVersion=0&resourceVersionMatch=Exact",
    );
    assert_eq!(exact_zero.code, 400);
    api.apply(&svc("d", "other", "198.19.0.11", json!({})))
        .unwrap();
    let page = get(a, "/api/v1/services?limit=1").json();
    let tok = page["metadata"]["continue"].as_str().unwrap().to_string();
    api.apply(&svc("d", "third", "198.19.0.12", json!({})))
        .unwrap();

    api.compact();
    let gone = get(
        a,
        &format!("/api/v1/namespaces/d/services?resourceVersion={v1}&resourceVersionMatch=Exact"),
    );
    assert_eq!(
        (gone.code, gone.json()["reason"].as_str()),
        (410, Some("Expired"))
    );
    let stale_continue = get(a, &format!("/api/v1/services?limit=1&continue={tok}"));
    assert_eq!(
        (
            stale_continue.code,
            stale_continue.json()["reason"].as_str()
        ),
        (410, Some("Expired"))
    );
    // A watch from before the compaction gets the cacher's answer: HTTP 200, one ERROR event.
    let w = get(
        a,
        &format!("/api/v1/namespaces/d/services?watch=true&resourceVersion={v1}&timeoutSeconds=1"),
    );
    assert_eq!(w.code, 200);
    let ev = w.events();
    assert_eq!(ev.len(), 1, "{:?}", ev);
    assert_eq!(ev[0]["type"], "ERROR");
    assert_eq!(
        (
            ev[0]["object"]["code"].as_i64(),
            ev[0]["object"]["reason"].as_str()
        ),
        (Some(410), Some("Expired"))
    );
    assert!(
        ev[0]["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version")
    );
    // A version from the future is waited for, then refused.
    let future = api.resource_version() + 100;
    let r = get(a, &format!("/api/v1/services?resourceVersion={future}"));
    assert_eq!(
        (r.code, r.json()["reason"].as_str()),
        (504, Some("Timeout"))
    );
}

#[test]
fn watch_streams_changes_bookmarks_and_initial_events() {
    let api = start();
    let a = api.addr();
    api.apply(&svc("d", "keep", "198.19.0.9", json!({"app": "web"})))
        .unwrap();
    let from = api.resource_version();
    api.apply(&svc("d", "web", "198.19.0.10", json!({"app": "web"})))
        .unwrap();
    let mut v = svc("d", "web", "198.19.0.10", json!({"app": "web"}));
    v["spec"]["ports"][0]["port"] = json!(81);
    api.apply(&v).unwrap();
    api.apply(&svc("d", "web", "198.19.0.10", json!({"app": "db"})))
        .unwrap(); // leaves app=web
    api.apply(&svc("e", "elsewhere", "198.19.0.11", json!({"app": "web"})))
        .unwrap();
    api.delete(Kind::Service, "d", "web").unwrap();
    let end = api.resource_version();

    let w = get(
        a,
        &format!(
            "/api/v1/namespaces/d/services?watch=true&resourceVersion={from}&timeoutSeconds=1&allowWatchBookmarks=true"
        ),
    );
    let ev = w.events();
    let kinds: Vec<&str> = ev
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .filter(|t| *t != "BOOKMARK")
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]);
    let rvs: Vec<u64> = ev
        .iter()
        .filter(|e| e["type"] != "BOOKMARK")
        .map(|e| rv(&e["object"]))
        .collect();
    assert!(
        rvs.windows(2).all(|w| w[0] < w[1]) && rvs[3] == end,
        "{rvs:?}"
    );
    assert_eq!(ev[0]["object"]["kind"], "Service");
    let bookmarks: Vec<&Value> = ev.iter().filter(|e| e["type"] == "BOOKMARK").collect();
    assert!(
        !bookmarks.is_empty(),
        "a 1 s watch with 100 ms bookmarks gets some"
    );
    assert_eq!(rv(&bookmarks[0]["object"]), end);

    // With a selector, leaving the selection is a DELETED carrying the last selected state.
    let w = get(
        a,
        &format!(
            "/api/v1/namespaces/d/services?watch=true&resourceVersion={from}&timeoutSeconds=1&labelSelector=app%3Dweb"
        ),
    );
    let ev: Vec<(String, String)> = w
        .events()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["object"]["metadata"]["labels"]["app"]
                    .as_str()
                    .unwrap()
                    .into(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [("ADDED", "web"), ("MODIFIED", "web"), ("DELETED", "web")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(ev, want);

    // No resourceVersion: synthetic ADDED for what exists, then live changes.
    let w = get(a, "/api/v1/services?watch=true&timeoutSeconds=1");
    let added: Vec<String> = w
        .events()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(added, ["ADDED keep", "ADDED elsewhere"]);
    // Streaming lists (sendInitialEvents) end their initial events with an annotated bookmark.
    let w = get(
        a,
        "/api/v1/namespaces/d/services?watch=true&timeoutSeconds=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0&allowWatchBookmarks=true",
    );
    let ev = w.events();
    assert_eq!(
        (ev[0]["type"].as_str(), ev[1]["type"].as_str()),
        (Some("ADDED"), Some("BOOKMARK"))
    );
    assert_eq!(
        ev[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(rv(&ev[1]["object"]), end);
    // Table watches (kubectl get -w): one-row Tables, headers only in the first event.
    let w = http(
        a,
        "GET",
        &format!(
            "/api/v1/namespaces/d/services?watch=true&resourceVersion={from}&timeoutSeconds=1"
        ),
        &[(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )],
        None,
    );
    let ev = w.events();
    assert_eq!(ev[0]["object"]["kind"], "Table");
    assert!(
        ev[0]["object"]["columnDefinitions"].is_array()
            && ev[1]["object"].get("columnDefinitions").is_none()
    );
    assert_eq!(ev[0]["object"]["rows"][0]["cells"][0], "web");
    assert!(api.request_count(Verb::Watch, Some(Kind::Service)) >= 5);
}

#[test]
fn writes_conflicts_status_and_deletes() {
    let api = start();
    let a = api.addr();
    let body = svc("default", "web", "198.19.0.10", json!({"app": "web"}));
    let created = http(
        a,
        "POST",
        "/api/v1/namespaces/default/services",
        &[],
        Some(&body),
    );
    assert_eq!(created.code, 201, "{}", created.body);
    let obj = created.json();
    assert_eq!(
        (
            obj["metadata"]["generation"].as_i64(),
            obj["spec"]["type"].as_str()
        ),
        (Some(1), Some("ClusterIP"))
    );
    let again = http(
        a,
        "POST",
        "/api/v1/namespaces/default/services",
        &[],
        Some(&body),
    );
    assert_eq!(
        (again.code, again.json()["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    let nowhere = http(
        a,
        "POST",
        "/api/v1/namespaces/nope/services",
        &[],
        Some(&svc("nope", "x", "198.19.0.20", json!({}))),
    );
    assert_eq!(
        (nowhere.code, nowhere.json()["message"].as_str()),
        (404, Some("namespaces \"nope\" not found"))
    );
    let mut bad_name = body.clone();
    bad_name["metadata"]["name"] = json!("Web_1");
    assert_eq!(
        http(
            a,
            "POST",
            "/api/v1/namespaces/default/services",
            &[],
            Some(&bad_name)
        )
        .code,
        422
    );
    let mut unknown = body.clone();
    unknown["metadata"]["name"] = json!("strict");
    unknown["spec"]["bogus"] = json!(1);
    let strict = http(
        a,
        "POST",
        "/api/v1/namespaces/default/services?fieldValidation=Strict",
        &[],
        Some(&unknown),
    );
    assert_eq!(strict.code, 400);
    assert!(
        strict.body.contains("unknown field \\\"spec.bogus\\\""),
        "{}",
        strict.body
    );

    // Replace: a stale resourceVersion conflicts; the current one wins and bumps generation.
    let mut upd = obj.clone();
    upd["spec"]["ports"][0]["port"] = json!(81);
    upd["metadata"]["resourceVersion"] = json!((rv(&obj) - 1).to_string());
    let stale = http(
        a,
        "PUT",
        "/api/v1/namespaces/default/services/web",
        &[],
        Some(&upd),
    );
    assert_eq!(
        (stale.code, stale.json()["reason"].as_str()),
        (409, Some("Conflict"))
    );
    upd["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"].clone();
    let put = http(
        a,
        "PUT",
        "/api/v1/namespaces/default/services/web",
        &[],
        Some(&upd),
    )
    .json();
    assert_eq!(
        (
            put["metadata"]["generation"].as_i64(),
            put["metadata"]["uid"].clone()
        ),
        (Some(2), obj["metadata"]["uid"].clone())
    );
    assert!(rv(&put) > rv(&obj));
    let noop = http(
        a,
        "PUT",
        "/api/v1/namespaces/default/services/web",
        &[],
        Some(&put),
    )
    .json();
    assert_eq!(
        rv(&noop),
        rv(&put),
        "an update that changes nothing commits nothing"
    );

    // Patches: merge, strategic (ports merged by port), JSON patch; a status-only update.
    let merge = http(
        a,
        "PATCH",
        "/api/v1/namespaces/default/services/web",
        &[("Content-Type", "application/merge-patch+json")],
        Some(&json!({"metadata": {"labels": {"tier": "front"}}})),
    )
    .json();
    assert_eq!(
        merge["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );
    let smp = http(
        a,
        "PATCH",
        "/api/v1/namespaces/default/services/web",
        &[("Content-Type", "application/strategic-merge-patch+json")],
        Some(&json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}})),
    )
    .json();
    let ports: Vec<i64> = smp["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [81, 443]);
    let jp = http(
        a,
        "PATCH",
        "/api/v1/namespaces/default/services/web",
        &[("Content-Type", "application/json-patch+json")],
        Some(&json!([{"op": "remove", "path": "/metadata/labels/tier"}])),
    )
    .json();
    assert_eq!(jp["metadata"]["labels"], json!({"app": "web"}));
    let wrong_type = http(
        a,
        "PATCH",
        "/api/v1/namespaces/default/services/web",
        &[("Content-Type", "text/plain")],
        Some(&json!({})),
    );
    assert_eq!(wrong_type.code, 415);
    let stale_patch = http(
        a,
        "PATCH",
        "/api/v1/namespaces/default/services/web",
        &[("Content-Type", "application/merge-patch+json")],
        Some(&json!({"metadata": {"resourceVersion": "1"}})),
    );
    assert_eq!(stale_patch.code, 409);
    let status = http(a, "PATCH", "/api/v1/namespaces/default/services/web/status", &[("Content-Type", "application/merge-patch+json")],
        Some(&json!({"spec": {"type": "NodePort"}, "status": {"loadBalancer": {"ingress": [{"ip": "198.19.255.1"}]}}}))).json();
    assert_eq!(
        (
            status["spec"]["type"].as_str(),
            status["status"]["loadBalancer"]["ingress"][0]["ip"].as_str()
        ),
        (Some("ClusterIP"), Some("198.19.255.1"))
    );
    let mut main = status.clone();
    main["status"] = json!({});
    let kept = http(
        a,
        "PUT",
        "/api/v1/namespaces/default/services/web",
        &[],
        Some(&main),
    )
    .json();
    assert_eq!(
        kept["status"], status["status"],
        "the main resource cannot change status"
    );

    // Table and metadata-only reads.
    let t = http(
        a,
        "GET",
        "/api/v1/namespaces/default/services/web",
        &[("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
        None,
    )
    .json();
    assert_eq!(
        (t["kind"].as_str(), t["rows"][0]["cells"][4].as_str()),
        (Some("Table"), Some("81/TCP,443/TCP"))
    );
    let m = http(
        a,
        "GET",
        "/api/v1/namespaces/default/services",
        &[(
            "Accept",
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        )],
        None,
    )
    .json();
    assert_eq!(m["kind"], "PartialObjectMetadataList");
    assert!(m["items"][0].get("spec").is_none());

    // Deletes: a wrong precondition conflicts; then a Status of success; then 404.
    let pre = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}});
    assert_eq!(
        http(
            a,
            "DELETE",
            "/api/v1/namespaces/default/services/web",
            &[],
            Some(&pre)
        )
        .code,
        409
    );
    let del = http(
        a,
        "DELETE",
        "/api/v1/namespaces/default/services/web",
        &[],
        None,
    )
    .json();
    assert_eq!(
        (del["status"].as_str(), del["details"]["name"].as_str()),
        (Some("Success"), Some("web"))
    );
    let gone = get(a, "/api/v1/namespaces/default/services/web");
    assert_eq!(
        (gone.code, gone.json()["message"].as_str()),
        (404, Some("services \"web\" not found"))
    );
    // A namespace takes its objects with it.
    api.apply(&svc("team", "a", "198.19.0.30", json!({})))
        .unwrap();
    assert_eq!(
        http(a, "DELETE", "/api/v1/namespaces/team", &[], None).code,
        200
    );
    assert!(api.list_raw(Kind::Service, Some("team")).is_empty());
    assert_eq!(api.request_count(Verb::Delete, None), 3);
}

#[test]
fn stop_restart_and_partition_refuse_connections() {
    let api = start();
    let a = api.addr();
    api.apply(&svc("d", "web", "198.19.0.10", json!({})))
        .unwrap();
    api.stop();
    assert!(!api.is_running());
    assert!(
        TcpStream::connect(a).is_err(),
        "a stopped server refuses connections"
    );
    api.apply(&svc("d", "while-down", "198.19.0.11", json!({})))
        .unwrap();
    api.restart().unwrap();
    assert_eq!(api.addr(), a);
    assert_eq!(
        names(&get(a, "/api/v1/services").json()),
        ["web", "while-down"]
    );
    api.partition(true).unwrap();
    assert!(
        TcpStream::connect(a).is_err(),
        "a partitioned server refuses connections"
    );
    api.partition(false).unwrap();
    assert_eq!(get(a, "/api/v1/services").code, 200);
}
