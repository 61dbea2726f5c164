//! Receive-path load test of the pure pipeline: N IPv4 /24 prefixes from one peer with a
//! handful of attribute sets, as a peer would send them (UPDATEs of up to 4096 octets),
//! through decode → import policy → RIB → FIB ops, then withdrawn again. Prints time and
//! memory (VmRSS and the peak VmHWM from /proc/self/status).
//!
//!     cargo run --release -p bgpd --example rib_load [N] [PEERS]  # N defaults to 1000000
//!
//! With PEERS = 2 a second peer (same AS, another next hop) sends the same feed after the
//! first, so every prefix ends with a two-path ECMP set.
//!
//! Everything stays in memory: the prefixes (from 16.0.0.0/4, which holds 2^20 /24s) are never
//! installed anywhere. The FIB ops are produced and dropped; the kernel's own insert rate is a
//! separate measurement (issue 9).

use std::net::Ipv4Addr;
use std::time::Instant;

use bgpd::fib::{FibConfig, FibSync};
use bgpd::policy::{ImportPolicy, PrefixList};
use bgpd::rib::{PeerInfo, Rib, RibOptions};
use bgpd::wire::{
    AsPath, Attr, Community, DecodeCx, EncodeCx, Message, Nlri, Origin, PathAttr, Update,
};
use ipnet::Ipv4Net;

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn mem(label: &str) -> u64 {
    let (rss, hwm) = (status("VmRSS:"), status("VmHWM:"));
    println!(
        "{label:<28} VmRSS {:>7.1} MiB   VmHWM {:>7.1} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    rss
}

const LOCAL_AS: u32 = 65000;
const PEER_AS: u32 = 65001;
const SETS: u32 = 8;

/// The feed: UPDATE messages as bytes, each with one of SETS attribute sets and as many /24s
/// as fit in 4096 octets.
fn feed(n: u32, next_hop: Ipv4Addr, cx: &EncodeCx) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let per_msg = 1000; // 4 octets per /24: 4000 octets of NLRI plus ~60 of attributes
    let mut i = 0;
    while i < n {
        let end = (i + per_msg).min(n);
        let set = (i / per_msg) % SETS;
        let u = Update {
            attrs: vec![
                PathAttr::new(Attr::Origin(Origin::Igp)),
                PathAttr::new(Attr::AsPath(AsPath::sequence([PEER_AS, 65100 + set]))),
                PathAttr::new(Attr::NextHop(next_hop)),
                PathAttr::new(Attr::Med(set * 10)),
                PathAttr::new(Attr::Communities(vec![Community::new(65001, set as u16)])),
            ],
            nlri: (i..end)
                .map(|k| {
                    Nlri::new(Ipv4Net::new(Ipv4Addr::from(0x1000_0000 + (k << 8)), 24).unwrap())
                })
                .collect(),
            ..Update::default()
        };
        let mut buf = bytes::BytesMut::new();
        Message::Update(u)
            .encode_checked(cx, &mut buf)
            .expect("feed UPDATE within 4096 octets");
        out.push(buf.to_vec());
        i = end;
    }
    out
}

fn withdrawals(n: u32, cx: &EncodeCx) -> Vec<Vec<u8>> {
    let per_msg = 1000;
    (0..n.div_ceil(per_msg))
        .map(|m| {
            let u = Update {
                withdrawn: (m * per_msg..((m + 1) * per_msg).min(n))
                    .map(|k| {
                        Nlri::new(Ipv4Net::new(Ipv4Addr::from(0x1000_0000 + (k << 8)), 24).unwrap())
                    })
                    .collect(),
                ..Update::default()
            };
            Message::Update(u).to_bytes(cx)
        })
        .collect()
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
        .min(1 << 20);
    let npeers: u8 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .clamp(1, 2);
    mem("start");
    let ecx = EncodeCx {
        four_octet_as: true,
        ..EncodeCx::default()
    };
    let dcx = DecodeCx {
        four_octet_as: true,
        ebgp: true,
        ..DecodeCx::default()
    };
    let feeds: Vec<Vec<Vec<u8>>> = (1..=npeers)
        .map(|k| feed(n, Ipv4Addr::new(198, 18, 0, k), &ecx))
        .collect();
    let feed_bytes: usize = feeds.iter().flatten().map(Vec::len).sum();
    println!(
        "feed: {n} prefixes from {npeers} peer(s) in {} UPDATEs, {:.1} MiB",
        feeds.iter().map(Vec::len).sum::<usize>(),
        feed_bytes as f64 / 1048576.0
    );
    let base = mem("feed encoded (baseline)");

    let mut rib = Rib::new(RibOptions::default());
    let peers: Vec<_> = (1..=npeers)
        .map(|k| {
            let a = Ipv4Addr::new(198, 18, 0, k);
            rib.add_peer(PeerInfo {
                address: a.into(),
                asn: PEER_AS,
                local_as: LOCAL_AS,
                router_id: a,
                ifindex: None,
            })
            .unwrap()
        })
        .collect();
    let policy = ImportPolicy {
        local_as: LOCAL_AS,
        ranges: PrefixList::parse(&["16.0.0.0/4 le 24"]).unwrap(),
        own_prefixes: vec!["198.18.64.0/24".parse().unwrap()],
        ..ImportPolicy::default()
    };
    let (mut fib, _) = FibSync::start(FibConfig::default(), &[], false);

    let t = Instant::now();
    let mut ops = 0usize;
    for (peer, msgs) in peers.iter().zip(&feeds) {
        for m in msgs {
            let Ok(Message::Update(u)) = Message::decode(m, &dcx) else {
                panic!("feed message does not decode")
            };
            let out = rib.apply_update(*peer, &u, &policy, true).unwrap();
            ops += fib.apply(&rib, &out.changes, &()).len();
        }
    }
    let load = t.elapsed();
    println!(
        "load: {} paths in {:.3} s ({:.0} paths/s), {ops} FIB ops",
        n as u64 * npeers as u64,
        load.as_secs_f64(),
        (n as u64 * npeers as u64) as f64 / load.as_secs_f64()
    );
    let s = rib.stats();
    println!(
        "rib: {} prefixes, {} paths, {} attribute sets, {} multi-path destinations",
        s.ipv4_prefixes, s.paths, s.attr_sets, s.multi_path_slots
    );
    let loaded = mem("loaded");
    println!(
        "     {:.1} bytes per prefix above baseline (VmRSS)",
        (loaded.saturating_sub(base)) as f64 * 1024.0 / n as f64
    );

    let w = withdrawals(n, &ecx);
    let t = Instant::now();
    let mut ops = 0usize;
    for peer in &peers {
        for m in &w {
            let Ok(Message::Update(u)) = Message::decode(m, &dcx) else {
                panic!("withdrawal does not decode")
            };
            let out = rib.apply_update(*peer, &u, &policy, true).unwrap();
            ops += fib.apply(&rib, &out.changes, &()).len();
        }
    }
    let unload = t.elapsed();
    drop(w);
    println!(
        "withdraw: {n} prefixes from each peer in {:.3} s, {ops} FIB ops",
        unload.as_secs_f64()
    );
    let s = rib.stats();
    println!(
        "rib: {} prefixes, {} paths, {} attribute sets",
        s.ipv4_prefixes, s.paths, s.attr_sets
    );
    mem("withdrawn");
}
