//! kube-proxy-rs as a real process in a lab node, reading `--manifests`, with real traffic,
//! once per iptables backend (legacy and nft, in parallel: separate labs).
//!
//! ```text
//!            segment rack 198.18.0.0/24, 2001:db8::/64
//!   client .101 ──────── node1 .11 (kube-proxy-rs) ──────── node2 .12
//!                          ├ a 198.18.65.2                    ├ c 198.18.66.2
//!                          └ b 198.18.65.3                    └ d 198.18.66.3
//!   node1 ⇄ node2 route each other's pod CIDRs; pods echo on TCP 8080 and UDP 5353.
//! ```
//! Services (node1 is the node): `web` NodePort 30080 → a, c (dual-stack); `dns` UDP → c,
//! then d; `empty` without endpoints; `local` LoadBalancer eTP Local → c only (HCNP
//! 30501); `local-here` eTP Local → a (HCNP 30502). Each step asserts traffic and state;
//! timings are printed (`--nocapture`). Needs root and both iptables backends; skipped with
//! a message otherwise. The lab removes its namespaces on drop, also on panic.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lab::{ConnError, ConnOpts, EchoServer, EchoSpec, Greeting, Host, Lab, Process};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_kube-proxy-rs");
const T: Duration = Duration::from_secs(2);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn usable() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let tools = ["iptables-nft-restore", "iptables-legacy-restore"]
        .iter()
        .all(|t| {
            std::process::Command::new(t)
                .arg("--version")
                .output()
                .is_ok()
        });
    if !(root && tools) {
        eprintln!("skipping: needs root and iptables-{{nft,legacy}}-restore");
    }
    root && tools
}

struct World {
    _lab: Lab,
    n1: Host,
    client: Host,
    a: Host,
    b: Host,
    _echo: Vec<EchoServer>,
    dir: tempfile::TempDir,
    backend: &'static str,
}

fn world(backend: &'static str) -> World {
    let lab = Lab::new(&format!("kpd-{backend}")).unwrap();
    let n1 = lab.node("node1").unwrap();
    let n2 = lab.node("node2").unwrap();
    let client = lab.host("client").unwrap();
    let tor = lab.router("tor").unwrap();
    lab.segment("rack", &[&n1, &n2, &client, &tor]).unwrap();
    // Nodes route everything else (ClusterIPs included) to the rack's router, as in a
    // real cluster: without a route, a ClusterIP fails routing before the filter table.
    for n in [&n1, &n2] {
        n.add_route(&format!("default via {}", tor.ipv4().unwrap()))
            .unwrap();
        n.add_route(&format!("default via {}", tor.ipv6().unwrap()))
            .unwrap();
    }
    let a = lab.pod(&n1, "a").unwrap();
    let b = lab.pod(&n1, "b").unwrap();
    let c = lab.pod(&n2, "c").unwrap();
    let d = lab.pod(&n2, "d").unwrap();
    for (x, y) in [(&n1, &n2), (&n2, &n1)] {
        x.add_route(&format!(
            "{} via {}",
            y.pod_cidr4().unwrap(),
            y.ipv4().unwrap()
        ))
        .unwrap();
        x.add_route(&format!(
            "{} via {}",
            y.pod_cidr6().unwrap(),
            y.ipv6().unwrap()
        ))
        .unwrap();
    }
    let echo = [&a, &b, &c, &d]
        .iter()
        .map(|p| {
            p.echo_server(EchoSpec {
                tcp: vec![8080],
                udp: vec![5353],
                ..EchoSpec::default()
            })
            .unwrap()
        })
        .collect();
    World {
        _lab: lab,
        n1,
        client,
        a,
        b,
        _echo: echo,
        dir: tempfile::tempdir().unwrap(),
        backend,
    }
}

/// The manifests: `dns_ep` is the UDP service's endpoint; `extra` adds service `added`.
fn manifests(dns_ep: &str, dns_trigger: Option<&str>, extra: bool) -> String {
    let trigger = dns_trigger
        .map(|t| {
            format!(
                "  annotations: {{endpoints.kubernetes.io/last-change-trigger-time: \"{t}\"}}\n"
            )
        })
        .unwrap_or_default();
    let mut m = format!(
        r#"apiVersion: v1
kind: Node
metadata: {{name: node1}}
spec: {{podCIDRs: [198.18.65.0/24, "2001:db8:64:1::/64"]}}
status: {{addresses: [{{type: InternalIP, address: 198.18.0.11}}, {{type: InternalIP, address: "2001:db8::11"}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: demo}}
spec:
  type: NodePort
  ipFamilyPolicy: PreferDualStack
  clusterIP: 198.19.0.10
  clusterIPs: [198.19.0.10, "2001:db8:19::10"]
  ports: [{{name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-4, namespace: demo, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
- {{addresses: [198.18.65.2], conditions: {{ready: true}}, nodeName: node1}}
- {{addresses: [198.18.66.2], conditions: {{ready: true}}, nodeName: node2}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-6, namespace: demo, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv6
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
- {{addresses: ["2001:db8:64:1::2"], conditions: {{ready: true}}, nodeName: node1}}
- {{addresses: ["2001:db8:64:2::2"], conditions: {{ready: true}}, nodeName: node2}}
---
apiVersion: v1
kind: Service
metadata: {{name: dns, namespace: demo}}
spec:
  clusterIP: 198.19.0.53
  ports: [{{name: dns, port: 53, targetPort: 5353, protocol: UDP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dns-1
  namespace: demo
  labels: {{kubernetes.io/service-name: dns}}
{trigger}addressType: IPv4
ports: [{{name: dns, port: 5353, protocol: UDP}}]
endpoints:
- {{addresses: [{dns_ep}], conditions: {{ready: true}}, nodeName: node2}}
---
apiVersion: v1
kind: Service
metadata: {{name: empty, namespace: demo}}
spec:
  clusterIP: 198.19.0.20
  ports: [{{port: 80, protocol: TCP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: local, namespace: demo}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  healthCheckNodePort: 30501
  clusterIP: 198.19.0.21
  ports: [{{port: 80, targetPort: 8080, nodePort: 30081, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: local-1, namespace: demo, labels: {{kubernetes.io/service-name: local}}}}
addressType: IPv4
ports: [{{name: "", port: 8080, protocol: TCP}}]
endpoints:
- {{addresses: [198.18.66.2], conditions: {{ready: true}}, nodeName: node2}}
---
apiVersion: v1
kind: Service
metadata: {{name: local-here, namespace: demo}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  healthCheckNodePort: 30502
  clusterIP: 198.19.0.22
  ports: [{{port: 80, targetPort: 8080, nodePort: 30082, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: local-here-1, namespace: demo, labels: {{kubernetes.io/service-name: local-here}}}}
addressType: IPv4
ports: [{{name: "", port: 8080, protocol: TCP}}]
endpoints:
- {{addresses: [198.18.65.2], conditions: {{ready: true}}, nodeName: node1}}
"#
    );
    if extra {
        m.push_str(
            r#"---
apiVersion: v1
kind: Service
metadata: {name: added, namespace: demo}
spec:
  clusterIP: 198.19.0.30
  ports: [{port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: added-1, namespace: demo, labels: {kubernetes.io/service-name: added}}
addressType: IPv4
ports: [{name: "", port: 8080, protocol: TCP}]
endpoints:
- {addresses: [198.18.65.3], conditions: {ready: true}, nodeName: node1}
"#,
        );
    }
    m
}

/// Write-then-rename, as a careful editor does.
fn put(dir: &Path, text: &str) {
    let tmp = dir.join(".objects.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("objects.yaml")).unwrap();
}

impl World {
    fn start(&self) -> Process {
        let dir = self.dir.path().to_string_lossy().into_owned();
        self.n1
            .spawn(&[
                BIN,
                "--hostname-override=node1",
                &format!("--manifests={dir}"),
                "--cluster-cidr=198.18.64.0/18,2001:db8:64::/48",
                &format!("--iptables-backend={}", self.backend),
                "--sync-period=3s",
                "-v=2",
            ])
            .unwrap()
    }

    /// Both families' rules of both backends, comments (timestamps) removed.
    fn saves(&self) -> String {
        let mut out = String::new();
        for tool in [
            "iptables-legacy-save",
            "ip6tables-legacy-save",
            "iptables-nft-save",
            "ip6tables-nft-save",
        ] {
            let o = self.n1.output(&[tool]).unwrap();
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                if !l.starts_with('#') {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    fn healthz(&self) -> Option<lab::HttpResponse> {
        self.n1.http_get(ip("127.0.0.1"), 10256, "/healthz", T).ok()
    }

    fn wait_synced(&self, p: &Process, what: &str) -> Duration {
        let start = Instant::now();
        let ok = lab::wait_until(Duration::from_secs(15), || {
            self.healthz().is_some_and(|r| r.status == 200)
                && self
                    .b
                    .tcp_connect(ip("198.19.0.10"), 80, Duration::from_millis(300))
                    .is_ok()
        });
        assert!(ok, "{what}: not ready\n{}", p.logs());
        start.elapsed()
    }
}

fn greeting(r: Result<String, ConnError>, what: &str) -> Greeting {
    let line = r.unwrap_or_else(|e| panic!("{what}: {e}"));
    Greeting::parse(&line).unwrap_or_else(|| panic!("{what}: not a greeting: {line}"))
}

fn hosts_reached(n: usize, mut f: impl FnMut() -> Greeting) -> BTreeSet<String> {
    (0..n).map(|_| f().host).collect()
}

fn scenario(backend: &'static str) {
    if !usable() {
        return;
    }
    let w = world(backend);
    let tag = format!("[{backend}]");
    put(w.dir.path(), &manifests("198.18.66.2", None, false));

    // --dry-run prints the rules and touches nothing.
    let before = Sha256::digest(w.saves());
    let dir = w.dir.path().to_string_lossy().into_owned();
    let o =
        w.n1.exec(&[
            BIN,
            "--dry-run",
            "--hostname-override=node1",
            &format!("--manifests={dir}"),
            "--cluster-cidr=198.18.64.0/18,2001:db8:64::/48",
        ])
        .unwrap();
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("*nat") && printed.contains("-j KUBE-SVC-"),
        "{printed}"
    );
    assert_eq!(
        Sha256::digest(w.saves()),
        before,
        "{tag} --dry-run changed the rules"
    );

    // Start: the first sync programs everything.
    let p = w.start();
    let ready = w.wait_synced(&p, "start");
    eprintln!(
        "{tag} first sync: traffic flows {} ms after start",
        ready.as_millis()
    );

    // TCP through the ClusterIP to endpoints on this node and behind the route.
    let reached = hosts_reached(30, || {
        greeting(w.b.tcp_connect(ip("198.19.0.10"), 80, T), "web ClusterIP")
    });
    assert_eq!(reached, BTreeSet::from(["a".into(), "c".into()]), "{tag}");
    let g = greeting(w.b.tcp_connect(ip("198.19.0.10"), 80, T), "web ClusterIP");
    assert_eq!(
        g.client.ip(),
        w.b.ipv4().unwrap(),
        "{tag} pod traffic is not masqueraded"
    );
    assert_eq!(g.local.port(), 8080);
    // IPv6 ClusterIP.
    let reached6 = hosts_reached(30, || {
        greeting(
            w.b.tcp_connect(ip("2001:db8:19::10"), 80, T),
            "web IPv6 ClusterIP",
        )
    });
    assert_eq!(reached6, BTreeSet::from(["a".into(), "c".into()]), "{tag}");
    // UDP through the ClusterIP.
    let g = greeting(
        w.a.udp_request(ip("198.19.0.53"), 53, b"q", T),
        "dns ClusterIP",
    );
    assert_eq!((g.host.as_str(), g.local.port()), ("c", 5353), "{tag}");

    // NodePort from outside the node: masqueraded, so the backend sees the node.
    let node1 = IpAddr::V4(w.n1.ipv4().unwrap());
    let reached = hosts_reached(30, || {
        let g = greeting(w.client.tcp_connect(node1, 30080, T), "NodePort");
        assert_eq!(
            g.client.ip(),
            node1,
            "{tag} external NodePort traffic is masqueraded"
        );
        g
    });
    assert_eq!(reached, BTreeSet::from(["a".into(), "c".into()]), "{tag}");

    // A service without endpoints is refused at once, not left to time out.
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

    // eTP Local: no local endpoint -> dropped; HCNP 503. A local endpoint -> the client's
    // own address reaches it; HCNP 200.
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
    assert_eq!(v["service"]["name"], "local");
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
        "{tag} eTP Local keeps the source"
    );

    // /healthz and /metrics.
    let h = w.healthz().unwrap();
    assert_eq!(h.status, 200);
    let v: serde_json::Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(v["nodeEligible"], true);
    assert!(v["lastUpdated"].as_str().unwrap().ends_with("+0000 UTC"));

    // A UDP flow from a fixed source port moves to the new endpoint (conntrack cleanup).
    let udp = |w: &World| {
        w.b.udp_request_with(
            ip("198.19.0.53"),
            53,
            b"q",
            &ConnOpts::new(Duration::from_millis(300)).src_port(40053),
        )
    };
    assert_eq!(greeting(udp(&w), "udp flow").host, "c");
    let now = jiff::Timestamp::now().to_string();
    put(w.dir.path(), &manifests("198.18.66.3", Some(&now), false));
    let t0 = Instant::now();
    let moved = lab::wait_until(Duration::from_secs(5), || {
        udp(&w)
            .ok()
            .and_then(|l| Greeting::parse(&l))
            .is_some_and(|g| g.host == "d")
    });
    let took = t0.elapsed();
    assert!(moved, "{tag} the UDP flow still goes to c\n{}", p.logs());
    eprintln!(
        "{tag} UDP flow moved to the new endpoint {} ms after the manifest edit",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "{tag} took {took:?}");
    assert!(
        p.stderr().contains("deleted conntrack entry"),
        "{}",
        p.logs()
    );

    let m =
        w.n1.http_get(ip("127.0.0.1"), 10249, "/metrics", T)
            .unwrap();
    assert_eq!(m.status, 200);
    for want in [
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds ",
        "kubeproxy_sync_proxy_rules_iptables_total{table=\"nat\"} ",
        "kubeproxy_network_programming_duration_seconds_count 1",
        "kubeproxy_sync_proxy_rules_endpoint_changes_total 1",
        "kubeproxy_rs_conntrack_entries_deleted_total{reason=\"not a serving endpoint\"} ",
    ] {
        assert!(
            m.body.lines().any(|l| l.starts_with(want)),
            "{tag} no {want:?} in\n{}",
            m.body
        );
    }

    // Manifests edited: a new service is programmed.
    put(w.dir.path(), &manifests("198.18.66.3", None, true));
    let t0 = Instant::now();
    assert!(
        lab::wait_until(Duration::from_secs(5), || w
            .a
            .tcp_connect(ip("198.19.0.30"), 80, Duration::from_millis(300))
            .is_ok()),
        "{tag} added service not reachable\n{}",
        p.logs()
    );
    eprintln!(
        "{tag} added service reachable {} ms after the manifest edit",
        t0.elapsed().as_millis()
    );

    // Someone deletes the canary and empties web's service chain (which a partial sync
    // would not rewrite): the canary check finds out and a full resync restores it.
    let nat = w.n1.sh(&format!("iptables-{backend}-save -t nat")).unwrap();
    let web_svc = nat
        .lines()
        .find(|l| l.contains("demo/web:http cluster IP") && l.contains("-j KUBE-SVC-"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .to_string();
    w.n1.sh(&format!(
        "iptables-{backend} -t mangle -X KUBE-PROXY-CANARY && iptables-{backend} -t nat -F {web_svc}"
    ))
    .unwrap();
    assert!(
        w.b.tcp_connect(ip("198.19.0.10"), 80, T).is_err(),
        "{tag} the flush did not cut web"
    );
    let t0 = Instant::now();
    assert!(
        lab::wait_until(Duration::from_secs(8), || w
            .b
            .tcp_connect(ip("198.19.0.10"), 80, Duration::from_millis(300))
            .is_ok()),
        "{tag} rules not restored after the flush\n{}",
        p.logs()
    );
    eprintln!(
        "{tag} restored {} ms after a flush (sync period 3 s)",
        t0.elapsed().as_millis()
    );
    assert!(p.stderr().contains("canary chains gone"), "{}", p.logs());

    // kill -9 and restart: rules persist, traffic keeps flowing, no duplicate jumps.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let prober = {
        let (b, stop, ok, failed) = (
            w.b.clone(),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match b.tcp_connect(ip("198.19.0.10"), 80, Duration::from_secs(1)) {
                    Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                };
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    p.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(p.wait_timeout(Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        w.saves().contains("KUBE-SVC-"),
        "{tag} rules gone after kill -9"
    );
    let t0 = Instant::now();
    let p2 = w.start();
    assert!(
        lab::wait_until(Duration::from_secs(10), || p2
            .stderr()
            .contains("synced IPv4 full (start)")),
        "{}",
        p2.logs()
    );
    eprintln!(
        "{tag} restarted process synced {} ms after start",
        t0.elapsed().as_millis()
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    prober.join().unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "{tag} connections failed during the restart"
    );
    assert!(ok.load(Ordering::SeqCst) > 20);
    let input = w.n1.sh(&format!("iptables-{backend} -S INPUT")).unwrap();
    assert_eq!(
        input.matches("-j KUBE-").count(),
        4,
        "{tag} duplicate jumps:\n{input}"
    );
    assert!(w.a.tcp_connect(ip("198.19.0.30"), 80, T).is_ok());

    // --cleanup (backend detected) removes everything we created.
    drop(p2);
    w.n1.exec(&[BIN, "--cleanup"]).unwrap();
    let left = w.saves();
    assert!(
        !left.contains("KUBE-"),
        "{tag} left after --cleanup:\n{left}"
    );
}

#[test]
fn iptables_legacy_real_traffic() {
    scenario("legacy");
}

#[test]
fn iptables_nft_real_traffic() {
    scenario("nft");
}
