//! The lab the daemon tests share: kube-proxy-rs as a real process in node1's namespace,
//! pods with echo servers, outside clients and a router, and the Kubernetes objects as
//! JSON (written as `--manifests` or applied to the API server double).
//!
//! ```text
//!                 rack 198.18.0.0/24, 2001:db8::/64 (tor is every node's default route)
//!   tor .1 ── node1 .11 (kube-proxy-rs) ── node2 .12 ── client .101 ── client2 .102 ── cp .103
//!               ├ a 198.18.65.2                 ├ c 198.18.66.2
//!               └ b 198.18.65.3                 └ d 198.18.66.3
//!   node1 ⇄ node2 route each other's pod CIDRs; clients route 198.19.255.0/24 (LB and
//!   external IPs) to node1; pods echo on TCP 8080 and UDP 5353.
//! ```
//! Every test builds its own lab (unique namespaces, removed on drop, also on panic) and runs
//! the daemon with its own xtables lock file, so tests run in parallel.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::{ConnError, EchoServer, EchoSpec, Greeting, Host, Lab, Process, SpawnOpts};
use serde_json::{Value, json};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kube-proxy-rs");
/// Timeout of one connection attempt expected to work.
pub const T: Duration = Duration::from_secs(2);
/// Timeout of one attempt while polling for a change.
pub const POLL: Duration = Duration::from_millis(300);

/// An address literal.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Whether this machine can run the tests (root, both iptables backends); prints why not.
pub fn usable() -> bool {
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
        eprintln!("SKIP: needs root and iptables-{{nft,legacy}}-restore");
    }
    root && tools
}

/// The hosts of one test.
pub struct World {
    pub lab: Lab,
    pub n1: Host,
    pub n2: Host,
    pub tor: Host,
    pub client: Host,
    pub client2: Host,
    pub cp: Host,
    pub a: Host,
    pub b: Host,
    pub c: Host,
    pub d: Host,
    _echo: Vec<EchoServer>,
    /// `iptables-legacy` or `iptables-nft`.
    pub backend: &'static str,
    /// This lab's xtables lock file (legacy writers of this lab serialise on it).
    pub lock_file: PathBuf,
}

impl World {
    /// Builds the topology above; `backend` is `legacy` or `nft`.
    pub fn new(test: &str, backend: &'static str) -> World {
        let lab = Lab::new(&format!("{test}-{backend}")).unwrap();
        let tor = lab.router("tor").unwrap();
        let n1 = lab.node("node1").unwrap();
        let n2 = lab.node("node2").unwrap();
        let client = lab.host("client").unwrap();
        let client2 = lab.host("client2").unwrap();
        let cp = lab.host("cp").unwrap();
        lab.segment("rack", &[&tor, &n1, &n2, &client, &client2, &cp])
            .unwrap();
        let a = lab.pod(&n1, "a").unwrap();
        let b = lab.pod(&n1, "b").unwrap();
        let c = lab.pod(&n2, "c").unwrap();
        let d = lab.pod(&n2, "d").unwrap();
        // Nodes route everything else (ClusterIPs of no service included) to the router, as
        // in a real cluster; without a route a packet fails routing before the filter table.
        for n in [&n1, &n2] {
            n.add_route(&format!("default via {}", tor.ipv4().unwrap()))
                .unwrap();
            n.add_route(&format!("default via {}", tor.ipv6().unwrap()))
                .unwrap();
        }
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
        // LB and external IPs are attracted to node1 (as MetalLB's L2 mode would).
        for h in [&client, &client2] {
            h.add_route(&format!("198.19.255.0/24 via {}", n1.ipv4().unwrap()))
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
        let lock_file = lab.dir().join("xtables.lock");
        World {
            n1,
            n2,
            tor,
            client,
            client2,
            cp,
            a,
            b,
            c,
            d,
            _echo: echo,
            backend,
            lock_file,
            lab,
        }
    }

    /// `[legacy]` / `[nft]`, for messages.
    pub fn tag(&self) -> String {
        format!("[{}]", self.backend)
    }

    /// The flags every run gets (node1, the cluster CIDRs, the backend).
    pub fn base_flags(&self) -> Vec<String> {
        vec![
            "--hostname-override=node1".into(),
            "--cluster-cidr=198.18.64.0/18,2001:db8:64::/48".into(),
            format!("--iptables-backend={}", self.backend),
            "--sync-period=3s".into(),
            "-v=2".into(),
        ]
    }

    /// Starts kube-proxy-rs in node1 with the base flags and `extra`.
    pub fn start(&self, extra: &[&str]) -> Process {
        self.start_raw(&self.base_flags(), extra)
    }

    /// Starts kube-proxy-rs in node1 with exactly these flags.
    pub fn start_raw(&self, flags: &[String], extra: &[&str]) -> Process {
        let mut argv: Vec<&str> = vec![BIN];
        argv.extend(flags.iter().map(String::as_str));
        argv.extend_from_slice(extra);
        let opts = SpawnOpts {
            name: Some("kube-proxy-rs".into()),
            env: vec![(
                "XTABLES_LOCKFILE".into(),
                self.lock_file.to_string_lossy().into_owned(),
            )],
            ..SpawnOpts::default()
        };
        self.n1.spawn_with(&argv, &opts).unwrap()
    }

    /// Runs kube-proxy-rs to completion in node1 (`--once`, `--dry-run`, `--cleanup`).
    pub fn run(&self, flags: &[String], extra: &[&str]) -> std::process::Output {
        let mut argv: Vec<&str> = vec!["env"];
        let lock = format!("XTABLES_LOCKFILE={}", self.lock_file.display());
        argv.push(&lock);
        argv.push(BIN);
        argv.extend(flags.iter().map(String::as_str));
        argv.extend_from_slice(extra);
        self.n1.output(&argv).unwrap()
    }

    /// `iptables-{backend} ARGS` in node1.
    pub fn iptables(&self, args: &str) -> String {
        self.n1
            .sh(&format!("iptables-{} -w 5 {args}", self.backend))
            .unwrap()
    }

    /// node1's rules, both families of both backends, without comments and counters: what
    /// must not change while nothing changed.
    pub fn saves(&self) -> String {
        let mut out = String::new();
        for tool in [
            "iptables-legacy-save",
            "ip6tables-legacy-save",
            "iptables-nft-save",
            "ip6tables-nft-save",
        ] {
            let o = self.n1.output(&[tool]).unwrap();
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                if l.starts_with('#') {
                    continue;
                }
                // Chain lines carry packet counters: `:INPUT ACCEPT [12:720]`.
                let l = match l.rfind(" [") {
                    Some(i) if l.starts_with(':') => &l[..i],
                    _ => l,
                };
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// The name of the chain `comment`'s rule in nat KUBE-SERVICES jumps to.
    pub fn chain_of(&self, comment: &str) -> String {
        let nat = self
            .n1
            .sh(&format!("iptables-{}-save -t nat", self.backend))
            .unwrap();
        nat.lines()
            .find(|l| l.starts_with("-A KUBE-SERVICES") && l.contains(comment))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no rule for {comment:?} in\n{nat}"))
            .to_string()
    }

    /// `GET /healthz` on node1.
    pub fn healthz(&self) -> Option<lab::HttpResponse> {
        self.n1.http_get(ip("127.0.0.1"), 10256, "/healthz", T).ok()
    }

    /// `GET /metrics` on node1.
    pub fn metrics(&self) -> String {
        let m = self
            .n1
            .http_get(ip("127.0.0.1"), 10249, "/metrics", T)
            .unwrap();
        assert_eq!(m.status, 200);
        m.body
    }

    /// Waits until /healthz says 200 and web's ClusterIP answers; the time it took.
    pub fn wait_synced(&self, p: &Process, what: &str) -> Duration {
        let start = Instant::now();
        let ok = lab::wait_until(Duration::from_secs(20), || {
            self.healthz().is_some_and(|r| r.status == 200)
                && self.b.tcp_connect(ip("198.19.0.10"), 80, POLL).is_ok()
        });
        assert!(ok, "{} {what}: not ready\n{}", self.tag(), p.logs());
        start.elapsed()
    }
}

/// Waits (up to 5 s) until the process logged a line containing `needle`; the logs.
pub fn wait_log(p: &Process, needle: &str) -> String {
    let ok = lab::wait_until(Duration::from_secs(5), || p.stderr().contains(needle));
    assert!(ok, "no {needle:?} in the log:\n{}", p.logs());
    p.stderr()
}

/// The value of a metric line `NAME{LABELS} VALUE` (first match of the prefix).
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The greeting of a successful exchange, or a panic saying what failed.
pub fn greeting(r: Result<String, ConnError>, what: &str) -> Greeting {
    let line = r.unwrap_or_else(|e| panic!("{what}: {e}"));
    Greeting::parse(&line).unwrap_or_else(|| panic!("{what}: not a greeting: {line}"))
}

/// The hosts that answered `n` exchanges.
pub fn hosts_reached(n: usize, mut f: impl FnMut() -> Greeting) -> BTreeSet<String> {
    (0..n).map(|_| f().host).collect()
}

/// A set of host names.
pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

// ---- objects ------------------------------------------------------------------------------

/// node1's Node object.
pub fn node1() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node1", "labels": {"kubernetes.io/hostname": "node1"}},
        "spec": {"podCIDR": "198.18.65.0/24", "podCIDRs": ["198.18.65.0/24", "2001:db8:64:1::/64"]},
        "status": {"addresses": [
            {"type": "InternalIP", "address": "198.18.0.11"},
            {"type": "InternalIP", "address": "2001:db8::11"},
        ]},
    })
}

/// A Service in namespace `demo`.
pub fn service(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": spec,
    })
}

/// A Service of type LoadBalancer with these ingress IPs in its status.
pub fn lb_service(name: &str, spec: Value, ingress: &[&str]) -> Value {
    let mut s = service(name, spec);
    s["spec"]["type"] = json!("LoadBalancer");
    s["status"] = json!({"loadBalancer": {"ingress":
        ingress.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>()}});
    s
}

/// An EndpointSlice of Service `svc` (named `svc-SUFFIX`) with one port and ready
/// endpoints `(address, node)`.
pub fn slice(svc: &str, suffix: &str, port: Value, endpoints: &[(&str, &str)]) -> Value {
    let family = if endpoints.iter().any(|(a, _)| a.contains(':')) {
        "IPv6"
    } else {
        "IPv4"
    };
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{svc}-{suffix}"), "namespace": "demo",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": family,
        "ports": [port],
        "endpoints": endpoints.iter().map(|(a, n)| json!({
            "addresses": [a], "conditions": {"ready": true}, "nodeName": n,
        })).collect::<Vec<_>>(),
    })
}

/// Sets the EndpointSlice controller's trigger-time annotation to now.
pub fn triggered_now(mut slice: Value) -> Value {
    slice["metadata"]["annotations"] = json!({
        "endpoints.kubernetes.io/last-change-trigger-time": jiff::Timestamp::now().to_string(),
    });
    slice
}

const HTTP: &str = r#"{"name": "http", "port": 8080, "protocol": "TCP"}"#;
const UNNAMED: &str = r#"{"name": "", "port": 8080, "protocol": "TCP"}"#;
const DNS: &str = r#"{"name": "dns", "port": 5353, "protocol": "UDP"}"#;

fn port(p: &str) -> Value {
    serde_json::from_str(p).unwrap()
}

/// Web's Service and slices: NodePort 30080, dual-stack, on a (node1) and c (node2).
pub fn web() -> Vec<Value> {
    vec![
        service(
            "web",
            json!({"type": "NodePort", "ipFamilyPolicy": "PreferDualStack",
                   "clusterIP": "198.19.0.10", "clusterIPs": ["198.19.0.10", "2001:db8:19::10"],
                   "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}]}),
        ),
        slice(
            "web",
            "v4",
            port(HTTP),
            &[("198.18.65.2", "node1"), ("198.18.66.2", "node2")],
        ),
        slice(
            "web",
            "v6",
            port(HTTP),
            &[("2001:db8:64:1::2", "node1"), ("2001:db8:64:2::2", "node2")],
        ),
    ]
}

/// UDP Service `flow` (198.19.0.54:53) with one endpoint, the one a flow is moved off.
pub fn flow(endpoint: &str) -> Vec<Value> {
    let node = if endpoint.starts_with("198.18.65.") {
        "node1"
    } else {
        "node2"
    };
    vec![
        service(
            "flow",
            json!({"clusterIP": "198.19.0.54",
                   "ports": [{"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]}),
        ),
        triggered_now(slice("flow", "1", port(DNS), &[(endpoint, node)])),
    ]
}

/// A ClusterIP Service `name` on port 80 → 8080 with these endpoints (unnamed port).
pub fn simple(name: &str, cluster_ip: &str, endpoints: &[(&str, &str)]) -> Vec<Value> {
    vec![
        service(
            name,
            json!({"clusterIP": cluster_ip, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}),
        ),
        slice(name, "1", port(UNNAMED), endpoints),
    ]
}

/// Every feature the traffic test checks (besides web and flow):
/// - `udp` 198.19.0.53:53 → a, c (UDP to a local and a routed endpoint);
/// - `empty` 198.19.0.20 without endpoints (REJECT);
/// - `local` LB eTP Local → c only (dropped on node1; HCNP 30501 says 503), NodePort 30081;
/// - `local-here` LB eTP Local → a (HCNP 30502 says 200), NodePort 30082;
/// - `lb` LB ingress 198.19.255.10 + externalIP 198.19.255.11 → a, c;
/// - `ranged` LB ingress 198.19.255.20, loadBalancerSourceRanges client only → a, c;
/// - `sticky` 198.19.0.42 sessionAffinity ClientIP → a, c;
/// - `hairpin` 198.19.0.43 → a only;
/// - `bad` with an invalid clusterIP (skipped with a warning).
pub fn features() -> Vec<Value> {
    let both = [("198.18.65.2", "node1"), ("198.18.66.2", "node2")];
    let tcp80 = |np: Option<u16>| {
        let mut p = json!({"port": 80, "targetPort": 8080, "protocol": "TCP"});
        if let Some(np) = np {
            p["nodePort"] = json!(np);
        }
        json!([p])
    };
    let mut v = vec![
        service(
            "udp",
            json!({"clusterIP": "198.19.0.53",
                   "ports": [{"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]}),
        ),
        slice("udp", "1", port(DNS), &both),
        service(
            "empty",
            json!({"clusterIP": "198.19.0.20", "ports": tcp80(None)}),
        ),
        lb_service(
            "local",
            json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 30501,
                   "clusterIP": "198.19.0.21", "ports": tcp80(Some(30081))}),
            &[],
        ),
        slice("local", "1", port(UNNAMED), &[("198.18.66.2", "node2")]),
        lb_service(
            "local-here",
            json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 30502,
                   "clusterIP": "198.19.0.22", "ports": tcp80(Some(30082))}),
            &[],
        ),
        slice(
            "local-here",
            "1",
            port(UNNAMED),
            &[("198.18.65.2", "node1")],
        ),
        lb_service(
            "lb",
            json!({"clusterIP": "198.19.0.40", "externalIPs": ["198.19.255.11"],
                   "ports": tcp80(Some(30090))}),
            &["198.19.255.10"],
        ),
        slice("lb", "1", port(UNNAMED), &both),
        lb_service(
            "ranged",
            json!({"clusterIP": "198.19.0.41", "loadBalancerSourceRanges": ["198.18.0.101/32"],
                   "ports": tcp80(Some(30091))}),
            &["198.19.255.20"],
        ),
        slice("ranged", "1", port(UNNAMED), &both),
        service(
            "sticky",
            json!({"clusterIP": "198.19.0.42", "sessionAffinity": "ClientIP",
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                   "ports": tcp80(None)}),
        ),
        slice("sticky", "1", port(UNNAMED), &both),
        service(
            "bad",
            json!({"clusterIP": "198.19.0.999", "ports": tcp80(None)}),
        ),
    ];
    v.extend(simple(
        "hairpin",
        "198.19.0.43",
        &[("198.18.65.2", "node1")],
    ));
    v
}

/// Objects as a multi-document YAML file (JSON is YAML).
pub fn yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| format!("---\n{o}\n"))
        .collect::<String>()
}

/// Writes the manifest file the daemon reads (write, then rename, as a careful editor does).
pub fn put(dir: &Path, objects: &[Value]) {
    let tmp = dir.join(".objects.yaml.tmp");
    std::fs::write(&tmp, yaml(objects)).unwrap();
    std::fs::rename(&tmp, dir.join("objects.yaml")).unwrap();
}
