//! iptables mode vs nftables mode at scale, side by side in throwaway network namespaces
//! (a lab, removed at the end): a full sync of S Services × E endpoints, then a full sync
//! of N Services × 10 endpoints followed by the partial sync that adds one Service. Times are
//! the proxier's whole sync (render, diff, the kernel tool), one run each. Then first-packet
//! latency against the number of Services (KEP-3866's chart): for each count in COUNTS, a
//! node programmed with that many one-endpoint Services, a client pod opening new TCP
//! connections to random ClusterIPs (each a conntrack miss, so each SYN walks the nat rules),
//! median and p99 of connect() minus the median connect straight to the endpoint before any
//! rule was loaded.
//! iptables mode uses iptables-legacy throughout (`MODE_SCALE_IPTABLES=nft` for iptables-nft,
//! whose restore of 10k Services × 10 endpoints did not finish in 10 minutes here). Needs root,
//! iptables-legacy (or -nft) and nft. Not CI.
//!
//! `cargo run --release -p kube-proxy-rs --example mode_scale -- [S=5000] [E=50] [N=10000] [COUNTS=1000,10000,30000]`
//!
//! Besides the tables, tab-separated `BENCH mode_full|mode_add|first_packet key=value...`
//! lines (seconds, µs) for `benches/run.sh`.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use dataplane::Family;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_proxy_rs::apply::netns::{in_netns, named};
use kube_proxy_rs::apply::nftables::NftExec;
use kube_proxy_rs::apply::{Backend, IptablesExec};
use kube_proxy_rs::model::{ModelOptions, ProxyState, build};
use kube_proxy_rs::render::iptables::RenderOptions;
use kube_proxy_rs::render::nftables::NftOptions;
use kube_proxy_rs::sync::{ModeProxier, NftProxier, Proxier};
use serde_json::json;

/// `n` ClusterIP Services with `e` ready endpoints each (plus Service `extra` when asked).
fn state(n: usize, e: usize, extra: bool) -> ProxyState {
    let mut services = Vec::with_capacity(n + 1);
    let mut slices = Vec::with_capacity(n + 1);
    let total = n + usize::from(extra);
    for i in 0..total {
        services.push(
            serde_json::from_value::<Service>(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "bench", "name": format!("svc-{i}")},
                "spec": {"clusterIP": format!("198.19.{}.{}", i / 250, i % 250 + 1),
                         "ports": [{"name": "http", "port": 80}]},
            }))
            .expect("valid Service"),
        );
        let endpoints: Vec<_> = (0..e)
            .map(|j| {
                let k = i * e + j;
                let addr = format!("198.18.{}.{}", 64 + (k / 250) % 63, k % 250 + 1);
                json!({"addresses": [addr], "conditions": {"ready": true},
                       "nodeName": format!("node-{}", j % 7)})
            })
            .collect();
        // The model keys endpoints by ip:port; vary the port so addresses may repeat.
        let port = 8080 + (i * e / (250 * 63)) as u16;
        slices.push(
            serde_json::from_value::<EndpointSlice>(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"namespace": "bench", "name": format!("svc-{i}-1"),
                             "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
                "endpoints": endpoints,
            }))
            .expect("valid EndpointSlice"),
        );
    }
    let opts = ModelOptions {
        node_name: "node-0".into(),
        cluster_cidrs: vec!["198.18.64.0/18".parse().expect("literal")],
        ..ModelOptions::default()
    };
    build(&services, &slices, None, &opts).ipv4
}

fn timed<P: ModeProxier>(p: &mut P, s: &ProxyState, full: bool) -> Duration {
    let t = Instant::now();
    let (a, _) = p.sync(s, full).unwrap_or_else(|e| panic!("sync: {e}"));
    assert_eq!(a.full, full);
    t.elapsed()
}

fn iptables() -> Proxier<IptablesExec> {
    Proxier::new(
        IptablesExec::new(Family::V4, iptables_backend()),
        RenderOptions::default(),
    )
}

/// The iptables backend: legacy unless `MODE_SCALE_IPTABLES=nft`.
fn iptables_backend() -> Backend {
    match std::env::var("MODE_SCALE_IPTABLES").as_deref() {
        Ok("nft") => Backend::Nft,
        _ => Backend::Legacy,
    }
}

/// ClusterIP of first-packet Service `i` (198.19.0.0/16 holds 65k).
fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// `n` Services on port 80, each with the one endpoint `server:8080`.
fn one_endpoint_state(n: usize, server: Ipv4Addr) -> ProxyState {
    let mut services = Vec::with_capacity(n);
    let mut slices = Vec::with_capacity(n);
    for i in 0..n {
        services.push(
            serde_json::from_value::<Service>(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "bench", "name": format!("fp-{i}")},
                "spec": {"clusterIP": cluster_ip(i).to_string(),
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            }))
            .expect("valid Service"),
        );
        slices.push(
            serde_json::from_value::<EndpointSlice>(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"namespace": "bench", "name": format!("fp-{i}-1"),
                             "labels": {"kubernetes.io/service-name": format!("fp-{i}")}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                "endpoints": [{"addresses": [server.to_string()], "conditions": {"ready": true},
                               "nodeName": "node-0"}],
            }))
            .expect("valid EndpointSlice"),
        );
    }
    let opts = ModelOptions {
        node_name: "node-0".into(),
        cluster_cidrs: vec!["198.18.64.0/18".parse().expect("literal")],
        ..ModelOptions::default()
    };
    build(&services, &slices, None, &opts).ipv4
}

/// Connect times (µs) of `k` new TCP connections to `targets` in turn.
fn connects(targets: &[SocketAddr], k: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(k);
    for i in 0..k {
        let to = targets[i % targets.len()];
        let t = Instant::now();
        match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(c) => {
                out.push(t.elapsed().as_secs_f64() * 1e6);
                drop(c);
            }
            Err(e) => panic!("connect {to}: {e}"),
        }
    }
    out
}

/// The `q` quantile (0..=1) of `v` (sorted in place).
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// First-packet latency at `n` Services in `mode`: (median, p99) in µs of connect() through
/// a random ClusterIP, minus the median of connect() straight to the endpoint.
fn first_packet(lab: &lab::Lab, mode: &str, n: usize) -> (f64, f64, f64) {
    const K: usize = 2000;
    let tag = format!("{}{n}", &mode[..3]);
    let node = lab.node(&format!("fp-{tag}")).expect("node");
    let client = lab.pod(&node, &format!("c{tag}")).expect("client pod");
    let server = lab.pod(&node, &format!("s{tag}")).expect("server pod");
    let server_ip = server.ipv4().expect("server address");
    // accept and drop, forever (the lab's removal ends it with the namespace's sockets)
    let listener = server
        .run(|| TcpListener::bind("0.0.0.0:8080").expect("bind :8080"))
        .expect("netns");
    std::thread::spawn(move || {
        for c in listener.incoming() {
            match c {
                Ok(c) => drop(c),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
    let direct = [SocketAddr::new(IpAddr::V4(server_ip), 8080)];
    // the baseline: straight to the endpoint before any rule is loaded (afterwards this path
    // walks the nat rules too, without a match)
    let mut base = client
        .run(move || {
            connects(&direct, 200); // warm up: neighbours, caches
            connects(&direct, K)
        })
        .expect("netns");
    let st = one_endpoint_state(n, server_ip);
    let full = in_netns(&named(node.netns()), || match mode {
        "nftables" => timed(&mut nftables(), &st, true),
        _ => timed(&mut iptables(), &st, true),
    })
    .expect("netns");
    drop(st);
    // a fixed pseudo-random walk over the Services (the same for both modes)
    let targets: Vec<SocketAddr> = (0..K)
        .map(|i| {
            let j = (i * 7919 + 13) % n;
            SocketAddr::new(IpAddr::V4(cluster_ip(j)), 80)
        })
        .collect();
    let mut via = client.run(move || connects(&targets, K)).expect("netns");
    let base = quantile(&mut base, 0.5);
    let p50 = quantile(&mut via, 0.5) - base;
    let p99 = quantile(&mut via, 0.99) - base;
    eprintln!("    ({mode} {n}: full sync {:.2} s)", full.as_secs_f64());
    (p50, p99, base)
}

fn nftables() -> NftProxier<NftExec> {
    NftProxier::new(NftExec::new(Family::V4), NftOptions::default())
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    let counts: Vec<usize> = raw
        .get(3)
        .map(|c| c.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 30_000]);
    let s = args.first().copied().unwrap_or(5_000);
    let e = args.get(1).copied().unwrap_or(50);
    let n = args.get(2).copied().unwrap_or(10_000);
    let lab = lab::Lab::new("mode-scale").expect("a lab (needs root)");
    println!("iptables mode on the {:?} backend", iptables_backend());

    let big = state(s, e, false);
    println!(
        "full sync, {s} services x {e} endpoints ({} endpoints):",
        s * e
    );
    for (mode, host) in [("iptables", "ipt-full"), ("nftables", "nft-full")] {
        let h = lab.host(host).expect("host");
        let d = in_netns(&named(h.netns()), || match mode {
            "nftables" => timed(&mut nftables(), &big, true),
            _ => timed(&mut iptables(), &big, true),
        })
        .expect("netns");
        println!("  {mode:13} {:8.2} s", d.as_secs_f64());
        println!(
            "BENCH\tmode_full\tmode={mode}\tservices={s}\tendpoints={e}\tsync_s={:.6}",
            d.as_secs_f64()
        );
    }
    drop(big);

    let (before, after) = (state(n, 10, false), state(n, 10, true));
    println!("{n} services x 10 endpoints: full sync, then add one service (partial sync):");
    for (mode, host) in [("iptables", "ipt-add"), ("nftables", "nft-add")] {
        let h = lab.host(host).expect("host");
        let (full, add) = in_netns(&named(h.netns()), || match mode {
            "nftables" => {
                let mut p = nftables();
                (timed(&mut p, &before, true), timed(&mut p, &after, false))
            }
            _ => {
                let mut p = iptables();
                (timed(&mut p, &before, true), timed(&mut p, &after, false))
            }
        })
        .expect("netns");
        println!(
            "  {mode:13} full {:8.2} s   add one {:8.3} s",
            full.as_secs_f64(),
            add.as_secs_f64()
        );
        println!(
            "BENCH\tmode_add\tmode={mode}\tservices={n}\tfull_s={:.6}\tadd_s={:.6}",
            full.as_secs_f64(),
            add.as_secs_f64()
        );
    }

    println!(
        "first-packet latency (connect() via a random ClusterIP minus direct with no rules, µs):"
    );
    println!(
        "  {:>8} {:>16} {:>16} {:>16} {:>16}",
        "services", "iptables p50", "iptables p99", "nftables p50", "nftables p99"
    );
    for &n in &counts {
        let (ip50, ip99, _) = first_packet(&lab, "iptables", n);
        let (nf50, nf99, base) = first_packet(&lab, "nftables", n);
        println!(
            "  {n:>8} {ip50:>16.1} {ip99:>16.1} {nf50:>16.1} {nf99:>16.1}   (direct connect {base:.1} µs)"
        );
        println!(
            "BENCH\tfirst_packet\tservices={n}\tiptables_p50_us={ip50:.1}\tiptables_p99_us={ip99:.1}\t\
             nftables_p50_us={nf50:.1}\tnftables_p99_us={nf99:.1}\tdirect_us={base:.1}"
        );
    }
}
