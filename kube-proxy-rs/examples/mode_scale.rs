//! iptables mode vs nftables mode at scale, side by side in throwaway network namespaces
//! (a lab, removed at the end): a full sync of S Services × E endpoints, then a full sync
//! of N Services × 10 endpoints followed by the partial sync that adds one Service. Times are
//! the proxier's whole sync (render, diff, the kernel tool), one run each. Needs root,
//! iptables-nft and nft. Not part of CI.
//!
//! `cargo run --release -p kube-proxy-rs --example mode_scale -- [S=5000] [E=50] [N=10000]`

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
        IptablesExec::new(Family::V4, Backend::Nft),
        RenderOptions::default(),
    )
}

fn nftables() -> NftProxier<NftExec> {
    NftProxier::new(NftExec::new(Family::V4), NftOptions::default())
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let s = args.first().copied().unwrap_or(5_000);
    let e = args.get(1).copied().unwrap_or(50);
    let n = args.get(2).copied().unwrap_or(10_000);
    let lab = lab::Lab::new("mode-scale").expect("a lab (needs root)");

    let big = state(s, e, false);
    println!(
        "full sync, {s} services x {e} endpoints ({} endpoints):",
        s * e
    );
    for (mode, host) in [("iptables-nft", "ipt-full"), ("nftables", "nft-full")] {
        let h = lab.host(host).expect("host");
        let d = in_netns(&named(h.netns()), || match mode {
            "nftables" => timed(&mut nftables(), &big, true),
            _ => timed(&mut iptables(), &big, true),
        })
        .expect("netns");
        println!("  {mode:13} {:8.2} s", d.as_secs_f64());
    }
    drop(big);

    let (before, after) = (state(n, 10, false), state(n, 10, true));
    println!("{n} services x 10 endpoints: full sync, then add one service (partial sync):");
    for (mode, host) in [("iptables-nft", "ipt-add"), ("nftables", "nft-add")] {
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
    }
}
