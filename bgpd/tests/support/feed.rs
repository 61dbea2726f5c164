//! A fast BGP feeder for volume tests and the flood example: N IPv4 /32s (or IPv6 /64s in
//! MP_REACH_NLRI) pre-encoded with `bgpd::wire` into UPDATEs of at most 4096 octets, sent
//! over a real session from a lab host, and read back from the receiver's kernel.
//!
//! ```text
//!   Feeder::open(host, to) ── OPEN / KEEPALIVE ──> receiver (passive peer, AS FEED_AS)
//!     .send(&announce(n))   ── N prefixes in UPDATEs of 800 NLRI, End-of-RIB
//!     .send(&withdraw(n))   ── the same prefixes in withdrawn routes
//!   kernel_prefixes(host)  <── `ip -4 -j route show proto bgp`: prefix -> gateways
//! ```
//! Used by `tests/flood.rs` and (through `#[path]`) `examples/update_flood.rs`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgpd::wire::{
    AfiSafi, AsPath, Attr, Capability, DecodeCx, EncodeCx, Ipv6NextHop, Message, MpReach,
    MpUnreach, Nlri, Open, Origin, PathAttr, Update,
};
use ipnet::{Ipv4Net, Ipv6Net};
use lab::Host;
use std::net::Ipv6Addr;

/// The feeder's AS.
pub(crate) const FEED_AS: u32 = 65100;
/// How many IPv4 /32s fit in the lab's address plan outside its links (198.18.64.0/18,
/// 198.18.128.0/17, 198.19.0.0/16).
pub(crate) const MAX_N: u32 = 16384 + 32768 + 65536;
/// How many IPv6 /64s the feed has (2001:db8:1000::/36).
pub(crate) const MAX_N6: u32 = 1 << 22;
/// The import ranges that accept every prefix of the feed.
pub(crate) const IMPORT: &str = "[198.18.64.0/18 le 32, 198.18.128.0/17 le 32, 198.19.0.0/16 le 32, \"2001:db8:1000::/36 le 64\"]";

/// The k-th prefix of the IPv6 feed: a /64 in 2001:db8:1000::/36 (k < [`MAX_N6`]).
pub(crate) fn prefix6(k: u32) -> Ipv6Net {
    let a = Ipv6Addr::new(
        0x2001,
        0xdb8,
        0x1000 + (k >> 16) as u16,
        (k & 0xffff) as u16,
        0,
        0,
        0,
        0,
    );
    Ipv6Net::new(a, 64).expect("a /64")
}

fn encode6(n: u32, withdraw: bool, next_hop: Ipv6Addr) -> Vec<u8> {
    let cx = cx();
    let per_msg = 400; // 9 octets per /64
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let end = (i + per_msg).min(n);
        let nlri: Vec<Nlri<Ipv6Net>> = (i..end).map(|k| Nlri::new(prefix6(k))).collect();
        let attrs = if withdraw {
            vec![PathAttr::new(Attr::MpUnreach(MpUnreach::Ipv6Unicast(nlri)))]
        } else {
            vec![
                PathAttr::new(Attr::Origin(Origin::Igp)),
                PathAttr::new(Attr::AsPath(AsPath::sequence([FEED_AS]))),
                PathAttr::new(Attr::MpReach(MpReach::Ipv6Unicast {
                    next_hop: Ipv6NextHop {
                        global: next_hop,
                        link_local: None,
                    },
                    nlri,
                })),
            ]
        };
        let u = Update {
            attrs,
            ..Update::default()
        };
        let mut b = bytes::BytesMut::new();
        Message::Update(u)
            .encode_checked(&cx, &mut b)
            .expect("UPDATE within 4096 octets");
        out.extend_from_slice(&b);
        i = end;
    }
    if !withdraw {
        out.extend(Message::Update(Update::end_of_rib(AfiSafi::Ipv6Unicast)).to_bytes(&cx));
    }
    out
}

/// UPDATEs announcing the first `n` IPv6 prefixes with `next_hop`, then End-of-RIB.
pub(crate) fn announce6(n: u32, next_hop: Ipv6Addr) -> Vec<u8> {
    encode6(n, false, next_hop)
}

/// UPDATEs withdrawing the first `n` IPv6 prefixes.
pub(crate) fn withdraw6(n: u32) -> Vec<u8> {
    encode6(n, true, Ipv6Addr::UNSPECIFIED)
}

/// The k-th prefix of the feed (k < [`MAX_N`]).
pub(crate) fn prefix(k: u32) -> Ipv4Net {
    let base = if k < 16384 {
        u32::from(Ipv4Addr::new(198, 18, 64, 0)) + k
    } else if k < 16384 + 32768 {
        u32::from(Ipv4Addr::new(198, 18, 128, 0)) + (k - 16384)
    } else {
        u32::from(Ipv4Addr::new(198, 19, 0, 0)) + (k - 16384 - 32768)
    };
    Ipv4Net::new(Ipv4Addr::from(base), 32).expect("a /32")
}

/// The encoding both sides negotiate (4-octet AS, RFC 6793).
pub(crate) fn cx() -> EncodeCx {
    EncodeCx {
        four_octet_as: true,
        ..EncodeCx::default()
    }
}

fn encode(n: u32, withdraw: bool, next_hop: Ipv4Addr) -> Vec<u8> {
    let cx = cx();
    let per_msg = 800; // 5 octets per /32
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let end = (i + per_msg).min(n);
        let nlri: Vec<Nlri<Ipv4Net>> = (i..end).map(|k| Nlri::new(prefix(k))).collect();
        let u = if withdraw {
            Update {
                withdrawn: nlri,
                ..Update::default()
            }
        } else {
            Update {
                attrs: vec![
                    PathAttr::new(Attr::Origin(Origin::Igp)),
                    PathAttr::new(Attr::AsPath(AsPath::sequence([FEED_AS]))),
                    PathAttr::new(Attr::NextHop(next_hop)),
                ],
                nlri,
                ..Update::default()
            }
        };
        let mut b = bytes::BytesMut::new();
        Message::Update(u)
            .encode_checked(&cx, &mut b)
            .expect("UPDATE within 4096 octets");
        out.extend_from_slice(&b);
        i = end;
    }
    if !withdraw {
        out.extend(Message::Update(Update::end_of_rib(AfiSafi::Ipv4Unicast)).to_bytes(&cx));
    }
    out
}

/// UPDATEs announcing the first `n` prefixes with `next_hop`, then End-of-RIB.
pub(crate) fn announce(n: u32, next_hop: Ipv4Addr) -> Vec<u8> {
    encode(n, false, next_hop)
}

/// UPDATEs withdrawing the first `n` prefixes.
pub(crate) fn withdraw(n: u32) -> Vec<u8> {
    encode(n, true, Ipv4Addr::UNSPECIFIED)
}

fn read_msg(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut h = [0u8; 19];
    s.read_exact(&mut h)?;
    let len = u16::from_be_bytes([h[16], h[17]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(19)];
    s.read_exact(&mut body)?;
    let mut m = h.to_vec();
    m.extend(body);
    Ok(m)
}

/// A BGP session from the feed host, OPEN exchange done; a thread drains what the receiver
/// sends and one sends KEEPALIVEs (hold time 240 s).
///
/// Writers share the stream under a lock: a KEEPALIVE written while a slow receiver held up
/// `send`'s `write_all` would go in between two partial writes, inside an UPDATE (seen in
/// `examples/install_bench.rs`: BIRD closed the session).
pub(crate) struct Feeder {
    stream: Arc<Mutex<TcpStream>>,
}

impl Feeder {
    /// Connect from `host` (BGP Identifier: its address) to `to`:179 and exchange OPENs.
    pub(crate) fn open(host: &Host, to: Ipv4Addr) -> Feeder {
        let me = host.ipv4().expect("feed host address");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            let r = host
                .run(move || TcpStream::connect_timeout(&(to, 179).into(), Duration::from_secs(2)));
            match r {
                Ok(Ok(s)) => break s,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                e => panic!("connect to {to}: {e:?}"),
            }
        };
        s.set_nodelay(true).ok();
        let cx = cx();
        let open = Open::new(
            FEED_AS,
            240,
            me,
            vec![
                Capability::Multiprotocol(AfiSafi::Ipv4Unicast),
                Capability::Multiprotocol(AfiSafi::Ipv6Unicast),
                Capability::FourOctetAs(FEED_AS),
                Capability::RouteRefresh,
            ],
        );
        s.write_all(&Message::Open(open).to_bytes(&cx))
            .expect("send OPEN");
        let dcx = DecodeCx::default();
        loop {
            let m = read_msg(&mut s).expect("session with the receiver");
            match Message::decode(&m, &dcx) {
                Ok(Message::Open(_)) => {
                    s.write_all(&Message::Keepalive.to_bytes(&cx))
                        .expect("send KEEPALIVE");
                }
                Ok(Message::Keepalive) => break,
                Ok(Message::Notification(n)) => panic!("{to} sent NOTIFICATION {n}"),
                _ => {}
            }
        }
        let mut r = s.try_clone().expect("clone");
        std::thread::spawn(move || while read_msg(&mut r).is_ok() {});
        let stream = Arc::new(Mutex::new(s));
        let k = stream.clone();
        std::thread::spawn(move || {
            let ka = Message::Keepalive.to_bytes(&EncodeCx::default());
            loop {
                std::thread::sleep(Duration::from_secs(20));
                if k.lock().expect("feed stream").write_all(&ka).is_err() {
                    break;
                }
            }
        });
        Feeder { stream }
    }

    /// Send pre-encoded messages.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.stream
            .lock()
            .expect("feed stream")
            .write_all(bytes)
            .expect("send feed");
    }
}

/// The IPv4 routes of protocol bgp in `host`'s main table: prefix -> sorted gateways.
pub(crate) fn kernel_prefixes(host: &Host) -> BTreeMap<String, Vec<String>> {
    let text = host
        .ip(&["-4", "-j", "route", "show", "proto", "bgp"])
        .expect("ip route");
    let v: serde_json::Value =
        serde_json::from_str(if text.trim().is_empty() { "[]" } else { &text }).expect("ip -j");
    let mut out = BTreeMap::new();
    for r in v.as_array().cloned().unwrap_or_default() {
        let dst = r["dst"].as_str().unwrap_or("").to_string();
        let dst = if dst.contains('/') {
            dst
        } else {
            format!("{dst}/32")
        };
        let mut gws: Vec<String> = r["gateway"]
            .as_str()
            .map(|g| vec![g.into()])
            .unwrap_or_default();
        for nh in r["nexthops"].as_array().cloned().unwrap_or_default() {
            if let Some(g) = nh["gateway"].as_str() {
                gws.push(g.into());
            }
        }
        gws.sort();
        out.insert(dst, gws);
    }
    out
}

/// How many IPv4 routes of protocol bgp `host` has (`ip -4 route show proto bgp | wc -l`).
pub(crate) fn kernel_count(host: &Host) -> usize {
    kernel_count_of(host, false)
}

/// How many routes of protocol bgp `host` has in one family (`ip -4|-6 route show proto bgp`).
pub(crate) fn kernel_count_of(host: &Host, v6: bool) -> usize {
    let f = if v6 { "-6" } else { "-4" };
    host.sh(&format!("ip {f} route show proto bgp | wc -l"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`), 0 when absent.
pub(crate) fn status_kib(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
