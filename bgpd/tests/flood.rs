//! An UPDATE flood, small enough for CI (root; lab namespaces): 50,000 IPv4 /32s from one
//! peer, then all withdrawn, twice. After each step the kernel table (proto bgp) equals the
//! RIB (`bgpd show routes`), prefix by prefix with its next hops; after each withdraw-all
//! bgpd's RSS is back near its baseline (within a quarter of what the flood added, once the
//! allocator's decay ran: glibc's malloc failed this, jemalloc passes). The 1M version is
//! `examples/update_flood.rs`.
//!
//! ```text
//!   feed (our injector, AS 65100, 198.18.0.1) ──rack── node1 (bgpd, AS 65011, .11, passive)
//! ```

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::feed::{self, Feeder};
use support::{Bgpd, wait};

const N: u32 = 50_000;
const ROUNDS: usize = 2;

/// The Loc-RIB as prefix -> sorted next hops of the multipath set (what goes to the kernel).
fn rib(bgpd: &Bgpd) -> BTreeMap<String, Vec<String>> {
    let r = bgpd.try_show(&["routes"]).expect("show routes");
    let mut out = BTreeMap::new();
    for route in r["routes"].as_array().cloned().unwrap_or_default() {
        let prefix = route["prefix"].as_str().unwrap_or("").to_string();
        if prefix.contains(':') {
            continue;
        }
        let mut nhs: Vec<String> = route["paths"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|p| p["multipath"] == true)
            .filter_map(|p| p["next_hop"].as_str().map(str::to_string))
            .collect();
        nhs.sort();
        out.insert(prefix, nhs);
    }
    out
}

/// How far above its baseline bgpd's RSS may stay after withdraw-all (KiB): a quarter of what
/// the flood added, at least 4 MiB.
fn near_baseline(baseline: u64, loaded: u64) -> u64 {
    (loaded.saturating_sub(baseline) / 4).max(4096)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[test]
fn an_update_flood_announced_and_withdrawn_twice_leaves_kernel_equal_to_rib_and_memory_near_baseline()
 {
    let lab = support::lab("bgpd-flood");
    let node = lab.node("node1").unwrap();
    let feeder_host = lab.router("feed").unwrap();
    lab.segment("rack", &[&node, &feeder_host]).unwrap();
    let feed_ip = feeder_host.ipv4().unwrap();
    let yaml = format!(
        "asn: 65011
router_id: 198.18.0.11
listen: [198.18.0.11]
control_socket: {sock}
import: {import}
peers:
  - {{ address: {feed_ip}, asn: {asn}, passive: true, hold_time: 240 }}
",
        sock = Bgpd::socket_for(&lab, "node1").display(),
        import = feed::IMPORT,
        asn = feed::FEED_AS,
    );
    let bgpd = Bgpd::start(&lab, &node, "node1", &yaml);
    let pid = bgpd.proc.as_ref().unwrap().pid();
    let announce = feed::announce(N, feed_ip);
    let withdraw = feed::withdraw(N);
    let mut f = Feeder::open(&feeder_host, "198.18.0.11".parse().unwrap());
    assert!(wait(10, || bgpd.state(&feed_ip.to_string()) == "Established"));
    std::thread::sleep(Duration::from_secs(1));
    let baseline = feed::status_kib(pid, "VmRSS:");
    let expected: BTreeMap<String, Vec<String>> = (0..N)
        .map(|k| (feed::prefix(k).to_string(), vec![feed_ip.to_string()]))
        .collect();
    let mut after = Vec::new();
    for round in 1..=ROUNDS {
        let t = Instant::now();
        f.send(&announce);
        assert!(
            lab::wait_until(Duration::from_secs(240), || feed::kernel_count(&node)
                == N as usize),
            "round {round}: {} of {N} routes in the kernel\n{}",
            feed::kernel_count(&node),
            bgpd.logs()
        );
        let installed = t.elapsed();
        assert!(wait(30, || bgpd.neighbor(&feed_ip.to_string())["accepted"] == N));
        let (k, r) = (feed::kernel_prefixes(&node), rib(&bgpd));
        assert_eq!(k.len(), N as usize, "round {round}");
        assert!(
            k == r,
            "round {round}: kernel and RIB differ after the flood"
        );
        assert!(k == expected, "round {round}: not the prefixes sent");
        let loaded = feed::status_kib(pid, "VmRSS:");

        let t = Instant::now();
        f.send(&withdraw);
        assert!(
            lab::wait_until(Duration::from_secs(240), || feed::kernel_count(&node) == 0),
            "round {round}: {} routes left in the kernel",
            feed::kernel_count(&node)
        );
        let withdrawn = t.elapsed();
        assert!(wait(30, || bgpd.neighbor(&feed_ip.to_string())["accepted"] == 0));
        assert!(
            rib(&bgpd).is_empty(),
            "round {round}: routes left in the RIB"
        );
        assert!(feed::kernel_prefixes(&node).is_empty());
        // the allocator gives freed pages back after its decay time (jemalloc: 10 s)
        let near = |rss: u64| rss.saturating_sub(baseline) <= near_baseline(baseline, loaded);
        let t = Instant::now();
        lab::wait_until(Duration::from_secs(40), || {
            near(feed::status_kib(pid, "VmRSS:"))
        });
        let rss = feed::status_kib(pid, "VmRSS:");
        println!(
            "round {round}: {N} installed in {:.2} s, withdrawn in {:.2} s; VmRSS baseline {:.1} MiB, loaded {:.1} MiB, after {:.1} MiB ({:.1} s after the withdraw)",
            installed.as_secs_f64(),
            withdrawn.as_secs_f64(),
            mib(baseline),
            mib(loaded),
            mib(rss),
            t.elapsed().as_secs_f64()
        );
        after.push((loaded, rss));
    }
    println!("VmHWM {:.1} MiB", mib(feed::status_kib(pid, "VmHWM:")));
    for (round, (loaded, rss)) in after.iter().enumerate() {
        assert!(
            rss.saturating_sub(baseline) <= near_baseline(baseline, *loaded),
            "round {}: VmRSS {:.1} MiB after withdraw-all, baseline {:.1} MiB, loaded {:.1} MiB",
            round + 1,
            mib(*rss),
            mib(baseline),
            mib(*loaded)
        );
    }
    assert_eq!(bgpd.state(&feed_ip.to_string()), "Established");
}
