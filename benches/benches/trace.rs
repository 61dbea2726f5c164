//! `cargo bench -p benches --bench trace`: `iptables-save` parse and packet trace on a generated
//! kube-proxy-style dump of 300k rules (issue 2's figure; issue 9's performance goals).

use std::hint::black_box;

use benches::{captured_node, kube_dump, service_vip};
use criterion::{Criterion, criterion_group, criterion_main};
use dataplane::iptables::Ruleset;
use dataplane::node::Backend;
use dataplane::trace::trace;
use dataplane::{Family, Packet};

fn parse_and_trace(c: &mut Criterion) {
    let (text, services) = kube_dump(300_000);
    let mut g = c.benchmark_group("iptables-300k");
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(30));
    g.bench_function("parse", |b| {
        b.iter(|| Ruleset::parse(Family::V4, black_box(&text)).expect("parse"))
    });
    let rs = Ruleset::parse(Family::V4, &text).expect("parse");
    let node = captured_node().with_iptables(Backend::Nft, rs);
    let src = "198.18.0.101".parse().expect("addr");
    for (what, dst) in [
        ("first-service", service_vip(0)),
        ("middle-service", service_vip(services / 2)),
        ("last-service", service_vip(services - 1)),
        ("no-service", "198.18.0.11".parse().expect("addr")),
    ] {
        let p = Packet::tcp(src, dst, 80).arriving_on("eth0");
        g.bench_function(format!("trace/{what}"), |b| {
            b.iter(|| trace(black_box(&node), black_box(&p)))
        });
    }
    g.finish();
}

criterion_group!(benches, parse_and_trace);
criterion_main!(benches);
