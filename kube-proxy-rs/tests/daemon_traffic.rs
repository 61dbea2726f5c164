//! Real traffic through the rules kube-proxy-rs programs, in iptables mode once per iptables
//! backend and in nftables mode: the daemon runs in node1 reading `--manifests`, clients are
//! pods, outside hosts and node1 itself. Every Service feature gets a connection (see
//! `daemon_lab::features`); nftables mode also gets a partial sync (a Service added, one
//! removed) under traffic. Needs root; skipped with a message otherwise.

mod daemon_lab;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use daemon_lab::*;
use lab::{ConnError, Greeting};

fn traffic(backend: &'static str, mode: &str) {
    if !usable() {
        return;
    }
    let w = World::new(if mode == "nftables" { "kptn" } else { "kpt" }, backend);
    let tag = format!("{} {mode}", w.tag());
    let dir = w.lab.dir().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    let mut objects = vec![node1()];
    objects.extend(web());
    objects.extend(features());
    put(&dir, &objects);
    let p = w.start(&[
        &format!("--manifests={}", dir.display()),
        &format!("--proxy-mode={mode}"),
    ]);
    let ready = w.wait_synced(&p, "start");
    eprintln!("{tag} traffic flows {} ms after start", ready.as_millis());

    let node1 = IpAddr::V4(w.n1.ipv4().unwrap());
    let b_ip = IpAddr::V4(w.b.ipv4().unwrap());

    // ClusterIP, TCP: from a pod to endpoints on this node (a) and behind the route (c);
    // pod traffic keeps its source.
    let reached = hosts_reached(30, || {
        let g = greeting(w.b.tcp_connect(ip("198.19.0.10"), 80, T), "web");
        assert_eq!(g.client.ip(), b_ip, "{tag} pod traffic is not masqueraded");
        assert_eq!(g.local.port(), 8080);
        g
    });
    assert_eq!(reached, set(&["a", "c"]), "{tag} web ClusterIP");
    // From the node itself (OUTPUT path).
    let reached = hosts_reached(20, || {
        greeting(w.n1.tcp_connect(ip("198.19.0.10"), 80, T), "web from node1")
    });
    assert_eq!(
        reached,
        set(&["a", "c"]),
        "{tag} web ClusterIP from the node"
    );
    // IPv6 ClusterIP. Neighbour discovery toward each endpoint happens on first use and can
    // outlast one attempt's timeout on a loaded machine: both endpoints answer once first.
    let mut warm = BTreeSet::new();
    lab::wait_until(Duration::from_secs(10), || {
        if let Some(g) =
            w.b.tcp_connect(ip("2001:db8:19::10"), 80, T)
                .ok()
                .and_then(|g| Greeting::parse(&g))
        {
            warm.insert(g.host);
        }
        warm.len() == 2
    });
    let reached = hosts_reached(30, || {
        greeting(w.b.tcp_connect(ip("2001:db8:19::10"), 80, T), "web IPv6")
    });
    assert_eq!(reached, set(&["a", "c"]), "{tag} web IPv6 ClusterIP");
    // ClusterIP, UDP, local and routed endpoints (a new flow per request: a new source port).
    let reached = hosts_reached(30, || {
        let g = greeting(w.b.udp_request(ip("198.19.0.53"), 53, b"q", T), "udp");
        assert_eq!(g.local.port(), 5353);
        g
    });
    assert_eq!(reached, set(&["a", "c"]), "{tag} udp ClusterIP");

    // NodePort from outside the node: masqueraded, so the backend sees node1.
    let reached = hosts_reached(30, || {
        let g = greeting(w.client.tcp_connect(node1, 30080, T), "NodePort");
        assert_eq!(
            g.client.ip(),
            node1,
            "{tag} outside NodePort traffic is masqueraded"
        );
        g
    });
    assert_eq!(reached, set(&["a", "c"]), "{tag} web NodePort");

    // LoadBalancer ingress IP and external IP, from outside.
    for (addr, what) in [("198.19.255.10", "LB IP"), ("198.19.255.11", "external IP")] {
        let reached = hosts_reached(20, || {
            let g = greeting(w.client.tcp_connect(ip(addr), 80, T), what);
            assert_eq!(g.client.ip(), node1, "{tag} {what} traffic is masqueraded");
            g
        });
        assert_eq!(reached, set(&["a", "c"]), "{tag} {what}");
    }

    // loadBalancerSourceRanges: client is allowed, client2 is dropped.
    greeting(
        w.client.tcp_connect(ip("198.19.255.20"), 80, T),
        "ranged from client",
    );
    match w
        .client2
        .tcp_connect(ip("198.19.255.20"), 80, Duration::from_millis(700))
    {
        Err(ConnError::Timeout) => {}
        other => panic!("{tag} ranged from client2 (not in the ranges): {other:?}"),
    }

    // sessionAffinity ClientIP: one endpoint, every time.
    let reached = hosts_reached(20, || {
        greeting(w.b.tcp_connect(ip("198.19.0.42"), 80, T), "sticky")
    });
    assert_eq!(reached.len(), 1, "{tag} affinity: {reached:?}");

    // Hairpin: a reaches itself through the ClusterIP, masqueraded (else a's reply would
    // skip the node and never be un-DNATed).
    let g = greeting(w.a.tcp_connect(ip("198.19.0.43"), 80, T), "hairpin");
    assert_eq!(g.host, "a");
    assert_ne!(
        g.client.ip(),
        IpAddr::V4(w.a.ipv4().unwrap()),
        "{tag} hairpin masquerade"
    );

    // A service without endpoints is refused at once (ICMP port unreachable), not left to time
    // out.
    let t0 = Instant::now();
    match w
        .b
        .tcp_connect(ip("198.19.0.20"), 80, Duration::from_secs(3))
    {
        Err(ConnError::Refused { icmp: Some(i) }) => assert_eq!((i.icmp_type, i.code), (3, 3)),
        other => panic!("{tag} empty service: {other:?}"),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "{tag} REJECT took {:?}",
        t0.elapsed()
    );

    // eTP Local without a local endpoint: dropped (not rejected), HCNP says 503 with
    // upstream's body; with a local endpoint: the client's own address reaches it, HCNP 200.
    match w
        .client
        .tcp_connect(node1, 30081, Duration::from_millis(700))
    {
        Err(ConnError::Timeout) => {}
        other => panic!("{tag} eTP Local without local endpoints: {other:?}"),
    }
    let r = w.client.http_get(node1, 30501, "/", T).unwrap();
    assert_eq!(r.status, 503, "{tag} {}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        v["service"],
        serde_json::json!({"namespace": "demo", "name": "local"})
    );
    assert_eq!(v["localEndpoints"], 0);
    let r = w.client.http_get(node1, 30502, "/", T).unwrap();
    assert_eq!(r.status, 200, "{tag} {}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (
            v["localEndpoints"].as_u64(),
            v["serviceProxyHealthy"].as_bool()
        ),
        (Some(1), Some(true))
    );
    let g = greeting(w.client.tcp_connect(node1, 30082, T), "eTP Local NodePort");
    assert_eq!(g.host, "a");
    assert_eq!(
        g.client.ip(),
        IpAddr::V4(w.client.ipv4().unwrap()),
        "{tag} eTP Local keeps the client's address"
    );

    // /healthz, /livez and the metrics.
    for path in ["/healthz", "/livez"] {
        let h = w.n1.http_get(ip("127.0.0.1"), 10256, path, T).unwrap();
        assert_eq!(h.status, 200, "{tag} {path}: {}", h.body);
        let v: serde_json::Value = serde_json::from_str(&h.body).unwrap();
        assert!(v["lastUpdated"].as_str().unwrap().ends_with("+0000 UTC"));
    }
    // The bad Service is skipped with a warning naming it, and counted; all others work.
    let logs = p.stderr();
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("demo/bad") && l.contains("clusterIP")),
        "{tag} no warning for demo/bad:\n{logs}"
    );
    let m = w.metrics();
    assert!(
        metric(&m, "kubeproxy_rs_skipped_objects_total{kind=\"Service\"").is_some_and(|v| v >= 1.0),
        "{tag}\n{m}"
    );
    assert!(
        metric(
            &m,
            "kubeproxy_sync_proxy_rules_iptables_total{table=\"nat\"}"
        )
        .is_some_and(|v| v > 50.0)
    );
    assert!(
        metric(&m, "kubeproxy_sync_proxy_rules_last_timestamp_seconds").is_some_and(|v| v > 1e9)
    );
    assert_eq!(
        metric(
            &m,
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy=\"external\"}"
        ),
        Some(1.0),
        "{tag} `local` has no local endpoint\n{m}"
    );
    assert!(!logs.contains("ERROR"), "{tag} errors in the log:\n{logs}");

    if mode == "nftables" {
        partial_sync(&w, &p, &dir, objects);
    }
}

/// nftables mode: a Service added and one removed are applied by partial syncs that touch
/// only their chains and elements; the others keep working.
fn partial_sync(
    w: &World,
    p: &lab::Process,
    dir: &std::path::Path,
    mut objects: Vec<serde_json::Value>,
) {
    let before = w.n1.sh("nft list table ip kube-proxy").unwrap();
    assert!(before.contains("chain service-"), "{before}");
    objects.extend(simple("added", "198.19.0.60", &[("198.18.66.2", "node2")]));
    objects.retain(|o| o["metadata"]["name"] != "hairpin");
    put(dir, &objects);
    let ok = lab::wait_until(Duration::from_secs(10), || {
        w.b.tcp_connect(ip("198.19.0.60"), 80, POLL).is_ok()
    });
    assert!(ok, "added service never answered\n{}", p.logs());
    let g = greeting(w.b.tcp_connect(ip("198.19.0.60"), 80, T), "added");
    assert_eq!(g.host, "c");
    // The removed Service's address is now a ClusterIP of nothing: routed away, not DNATed.
    let ok = lab::wait_until(Duration::from_secs(5), || {
        !w.n1
            .sh("nft list map ip kube-proxy service-ips")
            .unwrap()
            .contains("198.19.0.43")
    });
    assert!(ok, "hairpin's element stayed");
    let table = w.n1.sh("nft list table ip kube-proxy").unwrap();
    assert!(
        !table.contains("demo/hairpin"),
        "stale hairpin chains:\n{table}"
    );
    let logs = p.stderr();
    assert!(
        logs.lines()
            .any(|l| l.contains("synced IPv4 partial") && l.contains("services changed")),
        "no partial sync of the two services:\n{logs}"
    );
    // Others still work.
    greeting(
        w.b.tcp_connect(ip("198.19.0.10"), 80, T),
        "web after the partial sync",
    );
    assert!(!logs.contains("ERROR"), "errors in the log:\n{logs}");
}

#[test]
fn traffic_iptables_legacy() {
    traffic("legacy", "iptables");
}

#[test]
fn traffic_iptables_nft() {
    traffic("nft", "iptables");
}

#[test]
fn traffic_nftables() {
    traffic("nft", "nftables");
}
