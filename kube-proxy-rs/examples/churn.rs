//! kube-proxy-rs under churn (issue 8's load bench): the Kubernetes API server double (in a
//! `cp` host of a throwaway lab) holds N ClusterIP Services × 10 endpoints (default 10,000);
//! the real kube-proxy-rs binary runs in `node1` against it; then RATE Service/EndpointSlice
//! changes a second (default 50) go through the API for MINUTES (default 10): four in five
//! replace one endpoint of a Service, one in five creates a new Service with its slice or
//! deletes the oldest one created. Meanwhile:
//! - the daemon's RSS and open file descriptors are sampled every 5 s (`/proc/PID/status`,
//!   `/proc/PID/fd`);
//! - one endpoint change at a time is followed into the kernel (its KUBE-SEP chain jumped to
//!   from the Service's chain): change → rule latency, p50 and p99;
//! - at the end: the RSS and fd series, and whether they are flat: fds when the last
//!   minute's maximum is within `FLAT_PCT` % of the first minute's; RSS when what stays
//!   resident between syncs (the last minute's minimum) is within `FLAT_PCT` % of the second
//!   minute's (the peaks, a sync's transient buffers, are printed beside it).
//!
//! Needs root and the iptables tools; the lab is removed at the end.
//!
//! ```text
//! cargo build --release -p kube-proxy-rs --bins --examples
//! target/release/examples/churn [services] [minutes] [rate] [legacy|nft]
//! ```
//! The binary is looked up next to the example's directory (`target/release/kube-proxy-rs`)
//! unless `KUBE_PROXY_RS` names it. Exit status 1 if RSS or fds are not flat.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dataplane::Protocol;
use kube_proxy_rs::model::ServicePortName;
use kube_proxy_rs::names::{sep_chain, svc_chain};
use lab::apiserver::{ApiServer, ApiServerOpts, Kind};
use lab::{Host, Lab, SpawnOpts};
use serde_json::{Value, json};

const NS: &str = "bench";
/// How much a series may grow and still be flat, in percent (see `flat` and `floor_flat`).
const FLAT_PCT: f64 = 10.0;
/// Between RSS/fd samples.
const SAMPLE: Duration = Duration::from_secs(5);

fn service(name: &str, i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": NS, "name": name},
        "spec": {"clusterIP": format!("198.19.{}.{}", i / 250, i % 250 + 1),
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    })
}

/// Service `name`'s (number `i`) slice; `first` replaces its first endpoint.
fn slice(name: &str, i: usize, first: Option<&str>) -> Value {
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
        "metadata": {"namespace": NS, "name": format!("{name}-1"),
                     "labels": {"kubernetes.io/service-name": name}},
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

/// Whether chain `svc` jumps to `sep` in the kernel now.
fn programmed(node: &Host, tool: &str, svc: &str, sep: &str) -> bool {
    let o = node
        .output(&[tool, "-w", "5", "-t", "nat", "-S", svc])
        .expect("iptables -S");
    String::from_utf8_lossy(&o.stdout).contains(&format!("-j {sep}"))
}

/// (RSS in KiB, open fds) of `pid`.
fn usage(pid: i32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    (rss, fds)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Whether the last minute's maximum is within [`FLAT_PCT`] % of the first minute's.
fn flat(series: &[(Duration, f64)], total: Duration) -> (bool, f64, f64) {
    let minute = Duration::from_secs(60);
    let first = max_in(series, Duration::ZERO, minute);
    let last = max_in(series, total.saturating_sub(minute), total);
    (last <= first * (1.0 + FLAT_PCT / 100.0), first, last)
}

/// The largest value of `series` between `from` and `to`.
fn max_in(series: &[(Duration, f64)], from: Duration, to: Duration) -> f64 {
    in_window(series, from, to).fold(0.0, f64::max)
}

/// The smallest value of `series` between `from` and `to`.
fn min_in(series: &[(Duration, f64)], from: Duration, to: Duration) -> f64 {
    in_window(series, from, to).fold(f64::INFINITY, f64::min)
}

fn in_window(
    series: &[(Duration, f64)],
    from: Duration,
    to: Duration,
) -> impl Iterator<Item = f64> + '_ {
    series
        .iter()
        .filter(move |(t, _)| *t >= from && *t <= to)
        .map(|(_, v)| *v)
}

/// RSS is flat when what stays resident between syncs does not grow: the smallest sample of
/// the last minute within `FLAT_PCT` % of the smallest of the second minute (the first is
/// the warm-up: the daemon's caches fill with the first changes). The peaks are a sync's
/// transient buffers (the restore text, the save output read back), bigger when a sync
/// batches more changes; they are reported, not judged. Returns (flat, floor of minute 2,
/// floor of the last minute).
fn floor_flat(series: &[(Duration, f64)], total: Duration) -> (bool, f64, f64) {
    let minute = Duration::from_secs(60);
    let second = min_in(series, minute, 2 * minute);
    let last = min_in(series, total.saturating_sub(minute), total);
    (last <= second * (1.0 + FLAT_PCT / 100.0), second, last)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let minutes: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10.0);
    let rate: u32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(50);
    let backend = match args.get(4).map(String::as_str) {
        Some("legacy") => "legacy",
        _ => "nft",
    };
    let bin = binary();
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release -p kube-proxy-rs --bins",
        bin.display()
    );

    let lab = Lab::new("churn").expect("a lab (needs root)");
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
    for i in 0..n {
        let name = format!("svc-{i}");
        api.apply(&service(&name, i)).expect("service");
        api.apply(&slice(&name, i, None)).expect("slice");
    }

    let tool = format!("iptables-{backend}");
    let kubeconfig = dir.join("kubeconfig").to_string_lossy().into_owned();
    let lock = dir.join("xtables.lock").to_string_lossy().into_owned();
    let backend_flag = format!("--iptables-backend={backend}");
    let argv = vec![
        bin.to_str().expect("utf-8 path"),
        "--kubeconfig",
        &kubeconfig,
        "--hostname-override=node1",
        "--cluster-cidr=198.18.64.0/18",
        &backend_flag,
    ];
    let opts = SpawnOpts {
        name: Some("kube-proxy-rs".into()),
        env: vec![("XTABLES_LOCKFILE".into(), lock)],
        ..SpawnOpts::default()
    };
    let started = Instant::now();
    let daemon = node.spawn_with(&argv, &opts).expect("kube-proxy-rs");
    let pid = daemon.pid();
    let last = ServicePortName::new(NS, &format!("svc-{}", n - 1), "http", Protocol::Tcp);
    let last_ip: IpAddr = format!(
        "198.18.{}.{}",
        64 + (((n - 1) * 10) / 250) % 63,
        ((n - 1) * 10) % 250 + 1
    )
    .parse()
    .expect("address");
    let deadline = Instant::now() + Duration::from_secs(600);
    while !programmed(
        &node,
        &tool,
        &svc_chain(&last),
        &sep_chain(&last, last_ip, 8080),
    ) {
        assert!(Instant::now() < deadline, "the first sync never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{n} services: first sync {:.1} s after start; churning {rate}/s for {minutes} min",
        started.elapsed().as_secs_f64()
    );

    let total = Duration::from_secs_f64(minutes * 60.0);
    let stop = AtomicBool::new(false);
    // The change being followed into the kernel: (Service, its chain, the new SEP chain,
    // when it was applied).
    let pending: Mutex<Option<(String, String, String, Instant)>> = Mutex::new(None);
    let latencies: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    let samples: Mutex<Vec<(Duration, u64, usize)>> = Mutex::new(Vec::new());
    let t0 = Instant::now();
    let mut changes = 0u64;
    std::thread::scope(|s| {
        // RSS and fds.
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let (rss, fds) = usage(pid);
                samples.lock().unwrap().push((t0.elapsed(), rss, fds));
                std::thread::sleep(SAMPLE);
            }
        });
        // Follows one change at a time into the kernel.
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let p = pending.lock().unwrap().clone();
                match p {
                    Some((_, svc, sep, at)) if programmed(&node, &tool, &svc, &sep) => {
                        latencies.lock().unwrap().push(at.elapsed());
                        *pending.lock().unwrap() = None;
                    }
                    Some((name, _, _, at)) if at.elapsed() > Duration::from_secs(120) => {
                        eprintln!("change to {name} not in the kernel after 120 s");
                        *pending.lock().unwrap() = None;
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        // The churn.
        let period = Duration::from_secs(1) / rate.max(1);
        let mut created: std::collections::VecDeque<usize> = Default::default();
        let mut next_new = n;
        while t0.elapsed() < total {
            let due = t0 + period * changes as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let k = changes as usize;
            if k % 5 == 4 {
                // create, or delete the oldest created once 100 exist
                if created.len() >= 100 && k % 10 == 9 {
                    let i = created.pop_front().expect("created");
                    let name = format!("svc-{i}");
                    api.delete(Kind::EndpointSlice, NS, &format!("{name}-1"))
                        .expect("delete slice");
                    api.delete(Kind::Service, NS, &name)
                        .expect("delete service");
                } else {
                    let i = next_new;
                    next_new += 1;
                    let name = format!("svc-{i}");
                    api.apply(&service(&name, i % 60_000)).expect("service");
                    api.apply(&slice(&name, i, None)).expect("slice");
                    created.push_back(i);
                }
            } else {
                let i = (k * 7919) % n;
                let name = format!("svc-{i}");
                let addr = format!("198.18.127.{}", k % 250 + 1);
                let follow = pending.lock().unwrap().is_none();
                let at = Instant::now();
                api.apply(&slice(&name, i, Some(&addr)))
                    .expect("changed slice");
                if follow {
                    let spn = ServicePortName::new(NS, &name, "http", Protocol::Tcp);
                    *pending.lock().unwrap() = Some((
                        name,
                        svc_chain(&spn),
                        sep_chain(&spn, addr.parse().expect("address"), 8080),
                        at,
                    ));
                }
            }
            changes += 1;
        }
        stop.store(true, Ordering::SeqCst);
    });
    let elapsed = t0.elapsed();
    assert!(
        daemon.is_running(),
        "kube-proxy-rs died:\n{}",
        daemon.logs()
    );

    let samples = samples.into_inner().unwrap();
    let mut lat = latencies.into_inner().unwrap();
    lat.sort();
    println!("t_s rss_mib fds");
    for (t, rss, fds) in &samples {
        println!("{:.0} {:.1} {fds}", t.as_secs_f64(), *rss as f64 / 1024.0);
    }
    let rss: Vec<(Duration, f64)> = samples.iter().map(|(t, r, _)| (*t, *r as f64)).collect();
    let fds: Vec<(Duration, f64)> = samples.iter().map(|(t, _, f)| (*t, *f as f64)).collect();
    let (rss_flat, rss_floor2, rss_floor_last) = floor_flat(&rss, elapsed);
    let (_, rss_first, rss_last) = flat(&rss, elapsed);
    let (fds_flat, fds_first, fds_last) = flat(&fds, elapsed);
    println!(
        "{n} services x 10 endpoints, iptables-{backend}: {changes} changes in {:.0} s ({:.1}/s); \
         change -> rule in kernel over {} sampled changes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        elapsed.as_secs_f64(),
        changes as f64 / elapsed.as_secs_f64(),
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "RSS between syncs (minimum) {:.1} MiB in minute 2, {:.1} MiB in the last minute: {}; \
         peaks (maximum) {:.1} MiB in the first minute, {:.1} MiB in the last; \
         fds {fds_first} -> {fds_last}: {} (flat = within {FLAT_PCT} %)",
        rss_floor2 / 1024.0,
        rss_floor_last / 1024.0,
        if rss_flat { "flat" } else { "GROWING" },
        rss_first / 1024.0,
        rss_last / 1024.0,
        if fds_flat { "flat" } else { "GROWING" },
    );
    drop(daemon);
    if !(rss_flat && fds_flat) {
        std::process::exit(1);
    }
}
