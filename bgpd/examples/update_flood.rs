//! UPDATE flood (by hand, root, not in CI; issue 8 "load"): one peer announces N prefixes,
//! then withdraws them all, R times; bgpd installs and removes them in its kernel. Per round:
//! the time until the kernel holds all N (and 0 again), and bgpd's VmRSS at the baseline,
//! loaded, and after the withdraw-all; at the end the kernel table must match the RIB (both
//! empty) and VmRSS be back near the baseline. The CI-sized version is `tests/flood.rs`.
//!
//! ```text
//!   feed (our injector, AS 65100, 198.18.0.1) ──net── rx (bgpd AS 65011, 198.18.0.2, passive)
//! ```
//!
//!     cargo build --release -p bgpd --example update_flood --bin bgpd
//!     sudo target/release/examples/update_flood [N] [--rounds R] [--v6]
//!
//! N defaults to 1,000,000 with `--v6` (IPv6 /64s in MP_REACH_NLRI), at most 114,688 IPv4
//! /32s without (the lab's address plan). R defaults to 3. bgpd is `target/release/bgpd` next
//! to the example's directory, or `$BGPD_BIN`.

#[path = "../tests/support/feed.rs"]
#[allow(dead_code)]
mod feed;

use std::time::{Duration, Instant};

use lab::{Host, Lab, SpawnOpts};

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn wait_count(host: &Host, v6: bool, want: usize, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if feed::kernel_count_of(host, v6) == want {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// `bgpd show neighbors --json`: the feed's accepted prefixes.
fn accepted(host: &Host, bin: &str, sock: &str) -> Option<u64> {
    let o = host
        .output(&[bin, "--socket", sock, "show", "neighbors", "--json"])
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v.as_array()?.first()?["accepted"].as_u64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let v6 = args.iter().any(|a| a == "--v6");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u32>().ok())
    };
    let rounds = value("--rounds").unwrap_or(3) as usize;
    let n: u32 = args
        .iter()
        .enumerate()
        .find(|(i, a)| a.parse::<u32>().is_ok() && (*i == 0 || args[i - 1] != "--rounds"))
        .and_then(|(_, a)| a.parse().ok())
        .unwrap_or(if v6 { 1_000_000 } else { feed::MAX_N });
    if (!v6 && n > feed::MAX_N) || n > feed::MAX_N6 {
        eprintln!(
            "N = {n}: at most {} IPv4 /32s (use --v6 for up to {})",
            feed::MAX_N,
            feed::MAX_N6
        );
        std::process::exit(2);
    }
    lab::require_root().expect("root needed (network namespaces)");
    let lab = Lab::new("bgpd-flood").expect("lab");
    let feed_host = lab.router("feed").unwrap();
    let rx = lab.router("rx").unwrap();
    lab.segment("net", &[&feed_host, &rx]).unwrap();
    let (feed4, feed6) = (feed_host.ipv4().unwrap(), feed_host.ipv6().unwrap());
    let addr = rx.ipv4().unwrap();
    let t = Instant::now();
    let (announce, withdraw) = if v6 {
        (feed::announce6(n, feed6), feed::withdraw6(n))
    } else {
        (feed::announce(n, feed4), feed::withdraw(n))
    };
    eprintln!(
        "feed: {n} prefixes, {:.1} MiB of UPDATEs, encoded in {:.2} s",
        announce.len() as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let dir = lab.dir().to_path_buf();
    let sock = dir.join("bgpd.sock");
    let conf = dir.join("bgpd.yaml");
    std::fs::write(
        &conf,
        format!(
            "asn: 65011\nrouter_id: {addr}\nlisten: [{addr}]\ncontrol_socket: {s}\nimport: {import}\npeers:\n  - {{ address: {feed4}, asn: {asn}, passive: true, hold_time: 240 }}\n",
            s = sock.display(),
            import = feed::IMPORT,
            asn = feed::FEED_AS,
        ),
    )
    .unwrap();
    let bin = std::env::var("BGPD_BIN").unwrap_or_else(|_| {
        let exe = std::env::current_exe().unwrap();
        exe.parent()
            .and_then(|p| p.parent())
            .unwrap()
            .join("bgpd")
            .to_string_lossy()
            .into_owned()
    });
    let p = rx
        .spawn_with(
            &[&bin, "--config", conf.to_str().unwrap()],
            &SpawnOpts {
                name: Some("bgpd".into()),
                env: vec![("BGPD_LOG".into(), "warn".into())],
                ..Default::default()
            },
        )
        .expect("bgpd (build it: cargo build --release -p bgpd)");
    let pid = p.pid();
    let sock = sock.to_str().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let mut f = feed::Feeder::open(&feed_host, addr);
    std::thread::sleep(Duration::from_secs(1));
    let baseline = feed::status_kib(pid, "VmRSS:");
    let limit = Duration::from_secs((n as u64 / 1000).max(60) * 3);
    println!(
        "\n{n} {} prefixes from one peer, {rounds} rounds (bgpd {bin})\n",
        if v6 { "IPv6 /64" } else { "IPv4 /32" }
    );
    println!(
        "| round | install s | routes/s | VmRSS baseline MiB | VmRSS loaded MiB | withdraw s | VmRSS after MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut last_after = 0;
    for round in 1..=rounds {
        let t = Instant::now();
        f.send(&announce);
        wait_count(&rx, v6, n as usize, limit)
            .unwrap_or_else(|| panic!("round {round}: not all {n} routes installed"));
        let install = t.elapsed();
        std::thread::sleep(Duration::from_secs(1));
        let loaded = feed::status_kib(pid, "VmRSS:");
        assert_eq!(accepted(&rx, &bin, sock), Some(n as u64), "RIB != kernel");
        let t = Instant::now();
        f.send(&withdraw);
        wait_count(&rx, v6, 0, limit)
            .unwrap_or_else(|| panic!("round {round}: routes left after the withdraw"));
        let withdraw_s = t.elapsed();
        std::thread::sleep(Duration::from_secs(5));
        assert_eq!(accepted(&rx, &bin, sock), Some(0), "RIB not empty");
        let after = feed::status_kib(pid, "VmRSS:");
        last_after = after;
        println!(
            "| {round} | {:.2} | {:.0} | {:.1} | {:.1} | {:.2} | {:.1} |",
            install.as_secs_f64(),
            n as f64 / install.as_secs_f64(),
            mib(baseline),
            mib(loaded),
            withdraw_s.as_secs_f64(),
            mib(after)
        );
    }
    println!(
        "\nVmHWM {:.1} MiB; kernel routes at the end: {} (RIB: {:?})",
        mib(feed::status_kib(pid, "VmHWM:")),
        feed::kernel_count_of(&rx, v6),
        accepted(&rx, &bin, sock)
    );
    println!(
        "VmRSS after the last withdraw-all: {:.1} MiB over the baseline",
        mib(last_after.saturating_sub(baseline))
    );
    drop(p);
}
