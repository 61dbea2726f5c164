//! Install bench (by hand, root, not in CI): one feed of N IPv4 prefixes, sent by our own
//! injector over a real BGP session, received and installed in the kernel by bgpd, BIRD 2 and
//! FRR (bgpd + zebra), and received by GoBGP (RIB only: it has no kernel FIB of its own), one
//! receiver after the other in the same run; `ip -batch` inserting the same routes is the
//! ceiling. For each: time from the first UPDATE until all N routes are in the kernel (the
//! RIB for GoBGP), peak memory (VmHWM) and VmRSS when loaded and after the feed is withdrawn.
//!
//! ```text
//!   feed (injector, AS 65100, 198.18.0.1) ──segment── rx-bgpd .2 │ rx-bird .3 │ rx-frr .4 │ rx-gobgp .5
//!     OPEN, then N prefixes in UPDATEs of ≤ 4096 octets, End-of-RIB; later withdraws them all
//!   rx-ipbatch .6: `ip -batch` with `route add PREFIX via 198.18.0.1` x N
//! ```
//!
//!     cargo run --release -p bgpd --example install_bench -- [N] [--v6] [--only bgpd,bird,frr,gobgp,ipbatch]
//!
//! Besides the markdown table, one tab-separated `BENCH install key=value...` line per
//! receiver (seconds, MiB; `nan` where not measured) for `benches/run.sh`.
//!
//! N defaults to 100000. IPv4: at most 114688, the prefixes are /32s from the lab's address
//! plan outside its links (198.18.64.0/18, 198.18.128.0/17, 198.19.0.0/16), so 1M IPv4
//! prefixes do not fit (a /15 holds 2^17 addresses). `--v6`: /64s from 2001:db8:1000::/36 in
//! MP_REACH_NLRI (up to 4M), next hop the feed's 2001:db8::1. The feed is pre-encoded with
//! bgpd::wire.
//!
//! The kernel receivers are counted from route notifications (`RouteWatch`, a netlink socket
//! in the receiver's namespace joined to the IPv4/IPv6 route groups), checked by one dump at
//! the end; GoBGP's RIB is polled with `gobgp global rib summary` every 100 ms. Earlier runs
//! (the tables below) polled the kernel with `ip route show proto P | wc -l` every 100 ms: at
//! 1M IPv6 routes each dump held the IPv6 table lock the receiver was waiting for, which
//! slowed every kernel receiver (most of all bgpd, whose 64 requests in flight all queued
//! behind it).
//!
//! Measured 2026-11-22 on the 2-vCPU dev machine (shared with other builds; install time is
//! polled every 100 ms with `ip route show proto P | wc -l`, so ±0.2 s):
//!
//! | feed | receiver | install s | routes/s | VmRSS loaded | VmHWM | withdraw s | VmRSS after |
//! |---|---|---|---|---|---|---|---|
//! | 100k v4 | ip -batch | 1.39 | 71.7k | | | 1.28 | |
//! | 100k v4 | bgpd | 2.13 | 46.9k | 24.6 MiB | 30.1 MiB | 1.97 | 24.6 MiB |
//! | 100k v4 | BIRD 2.0.12 | 1.79 | 55.9k | 13.9 MiB | 13.7 MiB | 1.00 | 9.2 MiB |
//! | 100k v4 | FRR 8.4 bgpd+zebra | 4.26 | 23.5k | 171 MiB | 174 MiB | 3.10 | 148 MiB |
//! | 100k v4 | GoBGP 3.10 (RIB) | 2.42 | 41.4k | 143 MiB | 188 MiB | 1.92 | 72 MiB |
//! | 1M v6 | ip -batch | 19.2 | 52.0k | | | 13.0 | |
//! | 1M v6 | bgpd | 71.2 | 14.0k | 178 MiB | 178 MiB | 21.5 | 178 MiB |
//! | 1M v6 | BIRD 2.0.12 | 21.1 | 47.3k | 110 MiB | 110 MiB | 8.4 | 21 MiB |
//! | 1M v6 | FRR 8.4 bgpd+zebra | 80.2 | 12.5k | 1330 MiB | 1338 MiB | 31.3 | 1172 MiB |
//! | 1M v6 | GoBGP 3.10 (RIB) | 71.2 | 14.1k | 1228 MiB | 1683 MiB | 36.7 | 1021 MiB |
//!
//!
//! The bgpd rows above waited for each route's ACK before sending the next. With up to 64
//! requests in flight (`speaker::fib_task`), a later run (`--only ipbatch,bgpd`) gave:
//! 100k v4 bgpd 1.44 s (69.6k/s; ip -batch 1.34 s), VmRSS 25.3 MiB, withdraw 1.06 s;
//! 1M v6 bgpd 53.3 s (18.8k/s; ip -batch 14.3 s), VmRSS 179 MiB, VmHWM 223 MiB, withdraw
//! 16.5 s, VmRSS after withdraw 219 MiB. At 1M the speaker, not the kernel, is the limit.
//!
//! bgpd's RSS does not go down after the withdraw: glibc keeps the freed heap for reuse
//! (BIRD's own allocator gives it back). Not worth `malloc_trim` or another allocator for
//! pod-CIDR tables (hundreds of routes); worth a look only if bgpd is fed full tables.

// the feed (prefixes, pre-encoded UPDATEs, the injector's session) is the flood tests' own
#[path = "../tests/support/feed.rs"]
#[allow(dead_code)]
mod feed;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::net::Ipv6Addr;

use feed::{FEED_AS, Feeder, MAX_N, MAX_N6, prefix, prefix6};
use lab::{Host, Lab, Process, SpawnOpts};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::sys::{Socket, constants::NETLINK_ROUTE};

const FEED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const FEED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

fn status(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// (VmRSS, VmHWM, RssAnon) in MiB summed over `pids`. RssAnon leaves out the file-backed
/// pages (the program's code, shared with the page cache): bgpd's 80 MB binary (it links the
/// Kubernetes client) keeps about 9 MiB of code resident, BIRD about 4 MiB.
fn mem(pids: &[i32]) -> (f64, f64, f64) {
    let sum = |f| pids.iter().map(|p| status(*p, f)).sum::<u64>() as f64 / 1024.0;
    (sum("VmRSS:"), sum("VmHWM:"), sum("RssAnon:"))
}

fn count_kernel(host: &Host, proto: &str, v6: bool) -> u64 {
    let f = if v6 { "-6" } else { "-4" };
    host.sh(&format!("ip {f} route show proto {proto} | wc -l"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The routes of one protocol in a host's kernel, counted from route notifications: a netlink
/// socket in the host's namespace joined to the IPv4 and IPv6 route groups, read by a thread
/// that keeps the set of destinations. Nothing is dumped while a receiver installs. If the
/// socket overflows (ENOBUFS: notifications were lost), `overflowed` says so and the count is
/// no longer trusted (`wait_kernel` falls back to dumps).
struct RouteWatch {
    count: Arc<AtomicU64>,
    overflowed: Arc<AtomicBool>,
}

const RTNLGRP_IPV4_ROUTE: u32 = 7;
/// `rtm_protocol` of bgpd's and zebra's routes (`bgp` in rt_protos) and of BIRD's.
const PROTO_BGP: u8 = 186;
const PROTO_BIRD: u8 = 12;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// (family, destination, prefix length) of a route notification of protocol `proto`.
fn route_key(m: &RouteMessage, proto: u8) -> Option<(u8, u128, u8)> {
    if u8::from(m.header.protocol) != proto {
        return None;
    }
    let dst = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some((4, u32::from(*a) as u128)),
        RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some((6, u128::from(*a))),
        _ => None,
    })?;
    Some((dst.0, dst.1, m.header.destination_prefix_length))
}

impl RouteWatch {
    fn start(host: &Host, proto: u8) -> RouteWatch {
        let sock = host
            .run(|| -> std::io::Result<Socket> {
                let mut s = Socket::new(NETLINK_ROUTE)?;
                s.bind_auto()?;
                s.add_membership(RTNLGRP_IPV4_ROUTE)?;
                s.add_membership(RTNLGRP_IPV6_ROUTE)?;
                // 256 MiB (root may exceed rmem_max): 1M notifications arrive in seconds
                nix::sys::socket::setsockopt(
                    &s,
                    nix::sys::socket::sockopt::RcvBufForce,
                    &(256 << 20),
                )?;
                Ok(s)
            })
            .expect("enter the receiver's namespace")
            .expect("route notification socket");
        let count = Arc::new(AtomicU64::new(0));
        let overflowed = Arc::new(AtomicBool::new(false));
        let (c, o) = (count.clone(), overflowed.clone());
        std::thread::spawn(move || {
            let mut routes = HashSet::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match sock.recv(&mut &mut buf[..], 0) {
                    Ok(n) => n,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        o.store(true, Ordering::SeqCst);
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        eprintln!("  route notifications: {e}; counting by dump");
                        o.store(true, Ordering::SeqCst);
                        return;
                    }
                };
                let mut at = 0;
                while at + 16 <= n {
                    let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
                    if len < 16 || at + len > n {
                        break;
                    }
                    if let Ok(m) =
                        NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..at + len])
                    {
                        match m.payload {
                            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) => {
                                if let Some(k) = route_key(&r, proto) {
                                    routes.insert(k);
                                }
                            }
                            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(r)) => {
                                if let Some(k) = route_key(&r, proto) {
                                    routes.remove(&k);
                                }
                            }
                            _ => {}
                        }
                    }
                    at += (len + 3) & !3;
                }
                c.store(routes.len() as u64, Ordering::SeqCst);
            }
        });
        RouteWatch { count, overflowed }
    }

    /// The count from notifications. Once notifications were lost, or when the count has
    /// not moved for a second (a receiver that stopped short, or notifications lost without
    /// an error), a dump says (at most one a second), and the disagreement is printed.
    fn counter<'a>(&'a self, host: &'a Host, proto: &'a str, v6: bool) -> impl Fn() -> u64 + 'a {
        // (when the notification count last moved, its value, when we last dumped, the dump)
        let state = std::sync::Mutex::new((Instant::now(), u64::MAX, Instant::now(), None));
        move || {
            let now = self.count.load(Ordering::SeqCst);
            let mut st = state.lock().unwrap();
            if now != st.1 {
                *st = (Instant::now(), now, st.2, st.3);
            }
            let lost = self.overflowed.load(Ordering::SeqCst);
            if !lost && st.0.elapsed() < Duration::from_secs(1) {
                return now;
            }
            if st.3.is_none() || st.2.elapsed() >= Duration::from_secs(1) {
                let dumped = count_kernel(host, proto, v6);
                if dumped != now {
                    eprintln!(
                        "  {proto}: {now} routes by notification{}, {dumped} by dump",
                        if lost { " (some lost)" } else { "" }
                    );
                }
                st.2 = Instant::now();
                st.3 = Some(dumped);
            }
            st.3.unwrap_or(now)
        }
    }
}

fn count_gobgp(host: &Host, v6: bool) -> u64 {
    let f = if v6 { "ipv6" } else { "ipv4" };
    let s = host
        .sh(&format!("gobgp -p 50051 global rib summary -a {f}"))
        .unwrap_or_default();
    s.lines()
        .find_map(|l| {
            l.strip_prefix("Destination: ")
                .and_then(|r| r.split(',').next()?.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn spawn(host: &Host, name: &str, argv: &[&str]) -> Process {
    host.spawn_with(
        argv,
        &SpawnOpts {
            name: Some(name.into()),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

struct Row {
    who: String,
    install: f64,
    rss: f64,
    hwm: f64,
    anon: f64,
    withdraw: f64,
    rss_after: f64,
    note: String,
}

/// The `--only` name of a receiver row (the `receiver=` of the `BENCH` line).
fn receiver_key(who: &str) -> &'static str {
    match who {
        "ip -batch" => "ipbatch",
        "bgpd" => "bgpd",
        w if w.starts_with("BIRD") => "bird",
        w if w.starts_with("FRR") => "frr",
        w if w.starts_with("GoBGP") => "gobgp",
        _ => "unknown",
    }
}

fn wait_count_every(
    f: impl Fn() -> u64,
    want: u64,
    limit: Duration,
    every: Duration,
) -> Option<Duration> {
    let t = Instant::now();
    let mut last = 0;
    while t.elapsed() < limit {
        last = f();
        if last == want {
            return Some(t.elapsed());
        }
        std::thread::sleep(every);
    }
    eprintln!("  gave up after {limit:?}: {last} of {want}");
    None
}

/// The feed: the injector's host and the pre-encoded UPDATEs.
struct Feed<'a> {
    host: &'a Host,
    announce: &'a [u8],
    withdraw: &'a [u8],
    n: u64,
}

/// How a receiver's routes are counted.
struct Count<'a> {
    /// The number of routes now.
    now: &'a dyn Fn() -> u64,
    /// Between two looks at `now`.
    every: Duration,
    /// A dump that must agree once `now` says all are in (the kernel receivers).
    check: Option<&'a dyn Fn() -> u64>,
}

/// A kernel receiver's count: route notifications, checked by a dump.
fn kernel_count<'a>(counter: &'a dyn Fn() -> u64, dump: &'a dyn Fn() -> u64) -> Count<'a> {
    Count {
        now: counter,
        every: Duration::from_millis(5),
        check: Some(dump),
    }
}

/// Feed a receiver, wait for its count to reach n, withdraw, wait for 0.
fn run_feed(who: &str, feed: &Feed, addr: Ipv4Addr, pids: &[i32], count: Count, note: &str) -> Row {
    let (feed_host, announce, withdraw, n) = (feed.host, feed.announce, feed.withdraw, feed.n);
    let mut s = Feeder::open(feed_host, addr);
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    s.send(announce);
    let sent = t.elapsed();
    let limit = Duration::from_secs((n / 1000).max(60));
    let install = wait_count_every(count.now, n, limit, count.every)
        .map_or(f64::NAN, |d| (d + sent).as_secs_f64());
    if let Some(dump) = count.check {
        let d = dump();
        if d != n {
            eprintln!("  {who}: notifications counted {n} routes but the kernel holds {d}");
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let (rss, _, anon) = mem(pids);
    let t = Instant::now();
    s.send(withdraw);
    let gone = wait_count_every(count.now, 0, limit, count.every);
    let withdraw_s = gone.map_or(f64::NAN, |_| t.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(2));
    // VmHWM is the peak over the whole run (load and withdraw)
    let (rss_after, hwm, _) = mem(pids);
    eprintln!(
        "{who}: installed in {install:.2} s (sent in {:.2} s), withdrawn in {withdraw_s:.2} s",
        sent.as_secs_f64()
    );
    Row {
        who: who.into(),
        install,
        rss,
        hwm,
        anon,
        withdraw: withdraw_s,
        rss_after,
        note: note.into(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u32 = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<u32>().is_ok())
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let v6 = args.iter().any(|a| a == "--v6");
    if !v6 && n > MAX_N {
        eprintln!(
            "N = {n}: at most {MAX_N} IPv4 /32s fit in the lab's address plan (use --v6 for more)"
        );
        std::process::exit(2);
    }
    if n > MAX_N6 {
        eprintln!("N = {n}: at most {MAX_N6}");
        std::process::exit(2);
    }
    let only: Vec<String> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| {
            ["ipbatch", "bgpd", "bird", "frr", "gobgp"]
                .map(str::to_string)
                .to_vec()
        });
    lab::require_root().expect("root needed (network namespaces)");
    let lab = Lab::new("bgpd-bench").expect("lab");
    let feed_host = lab.router("feed").unwrap();
    let names = ["bgpd", "bird", "frr", "gobgp", "ipbatch"];
    let rx: Vec<Host> = names
        .iter()
        .map(|n| lab.router(&format!("rx-{n}")).unwrap())
        .collect();
    let mut members = vec![&feed_host];
    members.extend(rx.iter());
    lab.segment("net", &members).unwrap();
    let addr = |i: usize| rx[i].ipv4().unwrap();
    assert_eq!(feed_host.ipv4().unwrap(), FEED);
    assert_eq!(feed_host.ipv6().unwrap(), FEED6);

    let t = Instant::now();
    let (announce, withdraw) = if v6 {
        (feed::announce6(n, FEED6), feed::withdraw6(n))
    } else {
        (feed::announce(n, FEED), feed::withdraw(n))
    };
    eprintln!(
        "feed: {n} prefixes, {:.1} MiB of UPDATEs, encoded in {:.2} s",
        announce.len() as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let feed = Feed {
        host: &feed_host,
        announce: &announce,
        withdraw: &withdraw,
        n: n as u64,
    };
    let dir = lab.dir().to_path_buf();
    let import = "[198.18.64.0/18 le 32, 198.18.128.0/17 le 32, 198.19.0.0/16 le 32, \"2001:db8:1000::/36 le 64\"]";
    let mut rows = Vec::new();
    let want = |w: &str| only.iter().any(|o| o == w);

    if want("ipbatch") {
        let h = &rx[4];
        let mut add = String::new();
        let mut del = String::new();
        for k in 0..n {
            let (p, via) = if v6 {
                (prefix6(k).to_string(), FEED6.to_string())
            } else {
                (prefix(k).to_string(), FEED.to_string())
            };
            add += &format!("route add {p} via {via} proto static\n");
            del += &format!("route del {p} via {via} proto static\n");
        }
        std::fs::write(dir.join("add.batch"), add).unwrap();
        std::fs::write(dir.join("del.batch"), del).unwrap();
        let t = Instant::now();
        h.exec(&["ip", "-batch", dir.join("add.batch").to_str().unwrap()])
            .expect("ip -batch add");
        let install = t.elapsed().as_secs_f64();
        assert_eq!(count_kernel(h, "static", v6), n as u64);
        let t = Instant::now();
        h.exec(&["ip", "-batch", dir.join("del.batch").to_str().unwrap()])
            .expect("ip -batch del");
        rows.push(Row {
            who: "ip -batch".into(),
            install,
            rss: f64::NAN,
            hwm: f64::NAN,
            anon: f64::NAN,
            withdraw: t.elapsed().as_secs_f64(),
            rss_after: f64::NAN,
            note: "one RTM_NEWROUTE + ACK per route".into(),
        });
    }

    if want("bgpd") {
        let h = &rx[0];
        let watch = RouteWatch::start(h, PROTO_BGP);
        let conf = dir.join("bgpd.yaml");
        std::fs::write(
            &conf,
            format!(
                "asn: 65011\nrouter_id: {a}\nlisten: [{a}]\ncontrol_socket: {d}/bgpd.sock\nimport: {import}\npeers:\n  - {{ address: {FEED}, asn: {FEED_AS}, passive: true, hold_time: 240 }}\n",
                a = addr(0),
                d = dir.display()
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
        let p = h
            .spawn_with(
                &[&bin, "--config", conf.to_str().unwrap()],
                &SpawnOpts {
                    name: Some("bgpd".into()),
                    env: vec![("BGPD_LOG".into(), "warn".into())],
                    ..Default::default()
                },
            )
            .expect("bgpd (build it: cargo build --release -p bgpd)");
        std::thread::sleep(Duration::from_secs(1));
        rows.push(run_feed(
            "bgpd",
            &feed,
            addr(0),
            &[p.pid()],
            kernel_count(&watch.counter(h, "bgp", v6), &|| count_kernel(h, "bgp", v6)),
            "kernel (proto bgp)",
        ));
        drop(p);
    }

    if want("bird") {
        let h = &rx[1];
        let watch = RouteWatch::start(h, PROTO_BIRD);
        let conf = dir.join("bird.conf");
        std::fs::write(
            &conf,
            format!(
                "router id {a};\nprotocol device {{}}\nprotocol kernel {{ ipv4 {{ export all; }}; }}\nprotocol kernel {{ ipv6 {{ export all; }}; }}\nprotocol bgp feed {{ local {a} as 65012; neighbor {FEED} as {FEED_AS}; passive on; hold time 240; ipv4 {{ import all; export none; }}; ipv6 {{ import all; export none; }}; }}\n",
                a = addr(1)
            ),
        )
        .unwrap();
        let ctl = dir.join("bird.ctl");
        let p = spawn(
            h,
            "bird",
            &[
                "bird",
                "-f",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                ctl.to_str().unwrap(),
            ],
        );
        std::thread::sleep(Duration::from_secs(1));
        rows.push(run_feed(
            "BIRD 2",
            &feed,
            addr(1),
            &[p.pid()],
            kernel_count(&watch.counter(h, "bird", v6), &|| {
                count_kernel(h, "bird", v6)
            }),
            "kernel (proto bird)",
        ));
        drop(p);
    }

    if want("frr") {
        let h = &rx[2];
        let watch = RouteWatch::start(h, PROTO_BGP);
        let run = dir.join("frr");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("zebra.conf"), "hostname zebra\n").unwrap();
        std::fs::write(
            run.join("bgpd.conf"),
            format!(
                "frr defaults datacenter\nrouter bgp 65013\n bgp router-id {a}\n no bgp ebgp-requires-policy\n neighbor {FEED} remote-as {FEED_AS}\n neighbor {FEED} passive\n neighbor {FEED} timers 80 240\n address-family ipv6 unicast\n  neighbor {FEED} activate\n exit-address-family\n",
                a = addr(2)
            ),
        )
        .unwrap();
        let r = run.to_str().unwrap().to_string();
        std::process::Command::new("chown")
            .args(["-R", "frr:frr", &r])
            .status()
            .unwrap();
        let z = spawn(
            h,
            "zebra",
            &[
                "/usr/lib/frr/zebra",
                "-u",
                "frr",
                "-g",
                "frr",
                "-f",
                &format!("{r}/zebra.conf"),
                "-i",
                &format!("{r}/zebra.pid"),
                "-z",
                &format!("{r}/zserv.api"),
                "--vty_socket",
                &r,
                "-P",
                "0",
            ],
        );
        std::thread::sleep(Duration::from_secs(1));
        let b = spawn(
            h,
            "frr-bgpd",
            &[
                "/usr/lib/frr/bgpd",
                "-u",
                "frr",
                "-g",
                "frr",
                "-f",
                &format!("{r}/bgpd.conf"),
                "-i",
                &format!("{r}/bgpd.pid"),
                "-z",
                &format!("{r}/zserv.api"),
                "--vty_socket",
                &r,
                "-P",
                "0",
            ],
        );
        std::thread::sleep(Duration::from_secs(2));
        rows.push(run_feed(
            "FRR (bgpd+zebra)",
            &feed,
            addr(2),
            &[b.pid(), z.pid()],
            kernel_count(&watch.counter(h, "bgp", v6), &|| count_kernel(h, "bgp", v6)),
            "kernel via zebra; memory is bgpd + zebra",
        ));
        drop(b);
        drop(z);
    }

    if want("gobgp") {
        let h = &rx[3];
        let conf = dir.join("gobgp.toml");
        std::fs::write(
            &conf,
            format!(
                "[global.config]\n  as = 65014\n  router-id = \"{a}\"\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{FEED}\"\n    peer-as = {FEED_AS}\n  [neighbors.transport.config]\n    passive-mode = true\n  [neighbors.timers.config]\n    hold-time = 240\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv6-unicast\"\n",
                a = addr(3)
            ),
        )
        .unwrap();
        let p = spawn(
            h,
            "gobgpd",
            &[
                "gobgpd",
                "-f",
                conf.to_str().unwrap(),
                "-p",
                "--api-hosts",
                "127.0.0.1:50051",
                "--pprof-disable",
            ],
        );
        std::thread::sleep(Duration::from_secs(2));
        rows.push(run_feed(
            "GoBGP",
            &feed,
            addr(3),
            &[p.pid()],
            Count {
                now: &|| count_gobgp(h, v6),
                every: Duration::from_millis(100),
                check: None,
            },
            "RIB only (no kernel FIB)",
        ));
        drop(p);
    }

    let fam = if v6 { "IPv6 /64" } else { "IPv4 /32" };
    println!("\n{n} {fam} prefixes from one peer (one receiver at a time, 2 vCPU)\n");
    println!(
        "| receiver | install s | routes/s | VmRSS loaded MiB | VmHWM MiB | RssAnon loaded MiB | withdraw s | VmRSS after withdraw MiB | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {} |",
            r.who,
            r.install,
            n as f64 / r.install,
            r.rss,
            r.hwm,
            r.anon,
            r.withdraw,
            r.rss_after,
            r.note
        );
    }
    println!();
    for r in &rows {
        println!(
            "BENCH\tinstall\tprefixes={n}\tfamily={}\treceiver={}\tinstall_s={:.3}\trss_mib={:.1}\t\
             hwm_mib={:.1}\tanon_mib={:.1}\twithdraw_s={:.3}\trss_after_mib={:.1}",
            if v6 { "v6" } else { "v4" },
            receiver_key(&r.who),
            r.install,
            r.rss,
            r.hwm,
            r.anon,
            r.withdraw,
            r.rss_after,
        );
    }
}
