//! Event → rule-in-kernel latency at scale: the Kubernetes API server double (in a `cp`
//! host of a throwaway lab) holds N ClusterIP Services × 10 endpoints (default 10,000), the
//! real kube-proxy-rs binary runs in `node1` against it (kube-runtime watchers, the sync
//! loop, `iptables-restore`), and each round replaces one endpoint of one Service through
//! the API and times until the new endpoint's KUBE-SEP chain is jumped to from the
//! Service's chain in the kernel. Also prints what one poll costs (the resolution).
//! Needs root and the iptables tools; the lab is removed at the end.
//!
//! ```text
//! cargo build --release -p kube-proxy-rs --bins --examples
//! target/release/examples/event_latency [services] [legacy|nft] [rounds] [-- extra kube-proxy-rs flags]
//! ```
//! The binary is looked up next to the example's directory (`target/release/kube-proxy-rs`)
//! unless `KUBE_PROXY_RS` names it. Also reports the daemon's VmRSS (`/proc/PID/status`)
//! once the first sync is in the kernel: its idle memory at N Services. Besides the
//! sentence, one tab-separated `BENCH event_latency key=value...` line for `benches/run.sh`
//! (p99 is the nearest-rank quantile: with fewer than 100 rounds it is the maximum).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dataplane::Protocol;
use kube_proxy_rs::model::ServicePortName;
use kube_proxy_rs::names::{sep_chain, svc_chain};
use lab::apiserver::{ApiServer, ApiServerOpts};
use lab::{Host, Lab, SpawnOpts};
use serde_json::{Value, json};

const NS: &str = "bench";

fn service(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": NS, "name": format!("svc-{i}")},
        "spec": {"clusterIP": format!("198.19.{}.{}", i / 250, i % 250 + 1),
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    })
}

/// Service `i`'s slice; `first` replaces its first endpoint.
fn slice(i: usize, first: Option<&str>) -> Value {
    let endpoints: Vec<_> = (0..10)
        .map(|j| {
            let k = i * 10 + j;
            let addr = match (j, first) {
                (0, Some(a)) => a.to_string(),
                _ => format!("198.18.{}.{}", 64 + (k / 250) % 63, k % 250 + 1),
            };
            json!({"addresses": [addr], "conditions": {"ready": true}, "nodeName": format!("node-{j}")})
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": NS, "name": format!("svc-{i}-1"),
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBE_PROXY_RS") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("own path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/examples");
    dir.join("kube-proxy-rs")
}

/// Whether Service `i`'s chain jumps to the endpoint chain of `addr:8080` now; and how
/// long the look took.
fn programmed(node: &Host, save: &str, svc: &str, sep: &str) -> (bool, Duration) {
    let t = Instant::now();
    let o = node
        .output(&[save, "-t", "nat", "-S", svc])
        .expect("iptables -S");
    let seen = String::from_utf8_lossy(&o.stdout).contains(&format!("-j {sep}"));
    (seen, t.elapsed())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The nearest-rank `q` quantile (0..=1) of `v` (sorted in place).
fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A `/proc/PID/status` field in MiB (0 when unreadable).
fn status_mib(pid: i32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let backend = match args.get(2).map(String::as_str) {
        Some("legacy") => "legacy",
        _ => "nft",
    };
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let extra: Vec<&str> = args
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .map(String::as_str)
        .collect();
    let bin = binary();
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release -p kube-proxy-rs --bins",
        bin.display()
    );

    let lab = Lab::new("evlat").expect("a lab (needs root)");
    let cp = lab.host("cp").expect("host");
    let node = lab.node("node1").expect("node");
    lab.segment("rack", &[&cp, &node]).expect("segment");
    let cp_ip: IpAddr = cp.ipv4().expect("cp address").into();
    let api = cp
        .run(move || {
            ApiServer::start(ApiServerOpts {
                listen: SocketAddr::new(cp_ip, 6443),
                ..ApiServerOpts::default()
            })
        })
        .expect("enter cp")
        .expect("API server double");
    let dir = lab.dir().to_path_buf();
    api.kubeconfig(&dir.join("kubeconfig")).expect("kubeconfig");
    api.apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .expect("namespace");
    api.apply(&json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node1", "labels": {"kubernetes.io/hostname": "node1"}},
        "spec": {"podCIDR": "198.18.65.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": node.ipv4().expect("node address").to_string()}]},
    }))
    .expect("node");
    let t = Instant::now();
    for i in 0..n {
        api.apply(&service(i)).expect("service");
        api.apply(&slice(i, None)).expect("slice");
    }
    eprintln!(
        "{n} services applied to the API double in {:.1?}",
        t.elapsed()
    );

    let save = format!("iptables-{backend}");
    let kubeconfig = dir.join("kubeconfig").to_string_lossy().into_owned();
    let lock = dir.join("xtables.lock").to_string_lossy().into_owned();
    let mut argv = vec![
        bin.to_str().expect("utf-8 path"),
        "--kubeconfig",
        &kubeconfig,
        "--hostname-override=node1",
        "--cluster-cidr=198.18.64.0/18",
    ];
    let backend_flag = format!("--iptables-backend={backend}");
    argv.push(&backend_flag);
    argv.extend(extra.iter().copied());
    let opts = SpawnOpts {
        name: Some("kube-proxy-rs".into()),
        env: vec![("XTABLES_LOCKFILE".into(), lock)],
        ..SpawnOpts::default()
    };
    let started = Instant::now();
    let daemon = node.spawn_with(&argv, &opts).expect("kube-proxy-rs");

    // The first sync is done when the last Service's chain jumps to its endpoints.
    let last = ServicePortName::new(NS, &format!("svc-{}", n - 1), "http", Protocol::Tcp);
    let last_ip: IpAddr = format!(
        "198.18.{}.{}",
        64 + (((n - 1) * 10) / 250) % 63,
        ((n - 1) * 10) % 250 + 1
    )
    .parse()
    .expect("address");
    let (svc, sep) = (svc_chain(&last), sep_chain(&last, last_ip, 8080));
    let deadline = Instant::now() + Duration::from_secs(600);
    while !programmed(&node, &save, &svc, &sep).0 {
        assert!(Instant::now() < deadline, "the first sync never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = started.elapsed();
    // idle memory with N Services programmed (after a breath, so the sync's buffers are freed)
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = status_mib(daemon.pid(), "VmRSS:");

    let (mut latency, mut poll) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let i = (r * 7919 + n / 2) % n;
        let name = ServicePortName::new(NS, &format!("svc-{i}"), "http", Protocol::Tcp);
        let addr = format!("198.18.127.{}", r % 250 + 1);
        let (svc, sep) = (
            svc_chain(&name),
            sep_chain(&name, addr.parse().expect("address"), 8080),
        );
        let t = Instant::now();
        api.apply(&slice(i, Some(&addr))).expect("changed slice");
        loop {
            let (seen, cost) = programmed(&node, &save, &svc, &sep);
            poll.push(cost);
            if seen {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "round {r} never landed"
            );
        }
        latency.push(t.elapsed());
        // let the daemon's min-sync-period window pass so rounds are independent
        std::thread::sleep(Duration::from_millis(1200));
    }
    let max = *latency.iter().max().expect("rounds");
    let p99 = quantile(&mut latency, 0.99);
    let hwm = status_mib(daemon.pid(), "VmHWM:");
    println!(
        "{n} services x 10 endpoints, iptables-{backend}, flags {extra:?}: first sync {:.2} s after start; \
         one EndpointSlice change -> rule in kernel: median {:.0} ms, max {:.0} ms over {rounds} rounds \
         (one poll costs median {:.0} ms)",
        first.as_secs_f64(),
        median(&mut latency).as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        median(&mut poll).as_secs_f64() * 1e3,
    );
    println!("kube-proxy-rs VmRSS idle after the first sync {idle_rss:.1} MiB, VmHWM {hwm:.1} MiB");
    println!(
        "BENCH\tevent_latency\tservices={n}\tbackend={backend}\trounds={rounds}\tfirst_sync_s={:.3}\t\
         p50_ms={:.1}\tp99_ms={:.1}\tmax_ms={:.1}\tpoll_ms={:.1}\trss_mib={idle_rss:.1}\thwm_mib={hwm:.1}",
        first.as_secs_f64(),
        median(&mut latency).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        median(&mut poll).as_secs_f64() * 1e3,
    );
    drop(daemon);
}
