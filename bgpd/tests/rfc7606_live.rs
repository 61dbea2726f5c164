//! Malformed messages over real sessions: a raw test peer (a TCP socket in its own lab host,
//! speaking BGP byte by byte) sends bgpd every malformed UPDATE class of the RFC 7606 table
//! (`rfc7606_rows`) and a set of malformed OPENs and headers, while BIRD holds a second
//! session. Checked on the wire and in bgpd's RIB, not in the decoder:
//! - treat-as-withdraw: no NOTIFICATION, the session stays, the UPDATE's prefixes leave the RIB;
//! - attribute discard and clean rows: no NOTIFICATION, the route stays;
//! - session reset: the NOTIFICATION the RFC names (code, subcode and data), then the close;
//! - malformed OPENs and headers (RFC 4271 §6.1, §6.2): the named NOTIFICATION, never
//!   Established;
//! - BIRD's session is never reset (one transition to Established in the whole test), its
//!   route stays in the kernel, and bgpd still answers.
//!
//! ```text
//!   raw (198.18.0.200-.239, AS 65000, passive peers of bgpd) ─┐
//!   tor1 (BIRD, AS 65000, 198.18.0.1, announces 198.18.70.0/24) ─┼─rack── node1 (bgpd, AS 65011)
//! ```
//! The rows' NEXT_HOP (198.18.0.1) is rewritten to the sending peer's address; each row is
//! expected to do what bgpd's decoder says for the session (eBGP, 2- or 4-octet AS as the row
//! asks), and where that session matches the row's own context, what the table says.

mod rfc7606_rows;
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use lab::{Host, Lab};
use rfc7606_rows::*;
use socket2::{Domain, Socket, Type};
use support::router::{Kind, Router, RouterSpec};
use support::{Bgpd, kernel_route, wait};

const NODE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const NODE_AS: u32 = 65011;
const METRICS: u16 = 9181;
/// Raw peer addresses: 198.18.0.(FIRST_RAW + i).
const FIRST_RAW: u8 = 200;
const RAW_PEERS: u8 = 40;

fn raw_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, FIRST_RAW + i)
}

fn conf(lab: &Lab) -> String {
    let mut peers = String::from(
        "  - address: 198.18.0.1\n    asn: 65000\n    hold_time: 9\n    connect_retry: 1\n",
    );
    for i in 0..RAW_PEERS {
        peers.push_str(&format!(
            "  - address: {}\n    asn: 65000\n    passive: true\n    hold_time: 90\n",
            raw_addr(i)
        ));
    }
    format!(
        "asn: {NODE_AS}
router_id: {NODE}
listen: [{NODE}]
node_name: node1
prefixes: [198.18.65.0/24]
control_socket: {sock}
metrics_bind_address: 127.0.0.1:{METRICS}
import: [198.18.64.0/18 le 24, \"2001:db8:64::/48 le 64\"]
peers:
{peers}",
        sock = Bgpd::socket_for(lab, "node1").display(),
    )
}

/// A malformed OPEN or header case: name, the bytes from a peer address, the NOTIFICATION
/// code and subcode (0: any).
type OpenCase = (&'static str, Box<dyn Fn(Ipv4Addr) -> Vec<u8>>, u8, u8);

/// A BGP message as (type, body after the 19-octet header).
type Msg = (u8, Vec<u8>);

/// The raw test peer: one TCP connection from `addr` to bgpd.
struct Raw {
    addr: Ipv4Addr,
    sock: TcpStream,
}

impl Raw {
    /// Connects from `addr` (in `host`'s namespace) to bgpd's port 179.
    fn connect(host: &Host, addr: Ipv4Addr) -> Raw {
        let sock = host
            .run(move || -> std::io::Result<TcpStream> {
                let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
                s.bind(&SocketAddr::from((addr, 0)).into())?;
                s.connect_timeout(
                    &SocketAddr::from((NODE, 179)).into(),
                    Duration::from_secs(5),
                )?;
                Ok(s.into())
            })
            .expect("netns")
            .unwrap_or_else(|e| panic!("{addr}: connect to bgpd: {e}"));
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Raw { addr, sock }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.sock
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{}: send: {e}", self.addr));
    }

    /// The next message; `None` on close or when nothing came within the read timeout.
    fn recv(&mut self) -> Option<Msg> {
        let mut head = [0u8; 19];
        self.sock.read_exact(&mut head).ok()?;
        let len = usize::from(u16::from_be_bytes([head[16], head[17]]));
        let mut body = vec![0u8; len.checked_sub(19)?];
        self.sock.read_exact(&mut body).ok()?;
        Some((head[18], body))
    }

    /// Messages until a NOTIFICATION (its body) or the end of the stream (`None`).
    fn notification(&mut self) -> Option<Vec<u8>> {
        while let Some((t, body)) = self.recv() {
            if t == 3 {
                return Some(body);
            }
        }
        None
    }

    /// OPEN (with `four_octet` AS), KEEPALIVEs both ways: Established.
    fn establish(host: &Host, addr: Ipv4Addr, four_octet: bool) -> Raw {
        let mut r = Raw::connect(host, addr);
        r.send(&open(4, 65000, 90, addr, four_octet, &[]));
        let (t, _) = r
            .recv()
            .unwrap_or_else(|| panic!("{addr}: no OPEN from bgpd"));
        assert_eq!(t, 1, "{addr}: first message from bgpd");
        r.send(&keepalive());
        let (t, body) = r.recv().unwrap_or_else(|| panic!("{addr}: no KEEPALIVE"));
        assert_eq!(t, 4, "{addr}: expected KEEPALIVE, got type {t} {body:?}");
        r
    }

    /// Reads for `d`: Ok unless a NOTIFICATION or anything but UPDATEs and KEEPALIVEs came
    /// (bgpd's own advertisements are UPDATEs).
    fn quiet_for(&mut self, d: Duration) -> Result<(), Msg> {
        self.sock.set_read_timeout(Some(d)).unwrap();
        let got = loop {
            match self.recv() {
                Some((2 | 4, _)) => continue,
                Some(m) => break Err(m),
                None => break Ok(()),
            }
        };
        self.sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        got
    }
}

/// A message with a correct header.
fn frame(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(t);
    m.extend_from_slice(body);
    m
}

fn keepalive() -> Vec<u8> {
    frame(4, &[])
}

/// OPEN: version, AS, hold time, identifier, capabilities IPv4 + IPv6 unicast (and 4-octet
/// AS when asked), then `extra` optional parameters.
fn open(version: u8, asn: u16, hold: u16, id: Ipv4Addr, four_octet: bool, extra: &[u8]) -> Vec<u8> {
    let mut caps = vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1];
    if four_octet {
        caps.extend_from_slice(&[65, 4, 0, 0, 0xfd, 0xe8]);
    }
    let mut params = vec![2, caps.len() as u8];
    params.extend_from_slice(&caps);
    params.extend_from_slice(extra);
    let mut b = vec![version];
    b.extend_from_slice(&asn.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id.octets());
    b.push(params.len() as u8);
    b.extend_from_slice(&params);
    frame(1, &b)
}

/// `msg` with the NEXT_HOP attribute's 198.18.0.1 replaced by `nh` (same length).
fn with_next_hop(msg: &[u8], nh: Ipv4Addr) -> Vec<u8> {
    let mut m = msg.to_vec();
    if let Some(i) = m.windows(NEXT_HOP.len()).position(|w| w == NEXT_HOP) {
        m[i + 3..i + 7].copy_from_slice(&nh.octets());
    }
    m
}

/// What bgpd's decoder makes of `msg` on the session: the action and, for an error, the
/// NOTIFICATION body it maps to; the prefixes the UPDATE names.
fn expect(msg: &[u8], cx: &DecodeCx) -> (Option<ErrorAction>, Option<Vec<u8>>, Vec<String>) {
    match Message::decode(msg, cx) {
        Err(e) => {
            let n = Message::Notification(Notification::from(&e)).to_bytes(&EncodeCx::default());
            (Some(e.action), Some(n[19..].to_vec()), Vec::new())
        }
        Ok(Message::Update(u)) => {
            let w = u.treat_as_withdraw();
            let mut prefixes: Vec<String> = w.ipv4.iter().map(|n| n.prefix.to_string()).collect();
            prefixes.extend(w.ipv6.iter().map(|n| n.prefix.to_string()));
            let err = u.errors.iter().max_by_key(|e| e.action);
            let body = err.map(|e| {
                Message::Notification(Notification::from(e)).to_bytes(&EncodeCx::default())[19..]
                    .to_vec()
            });
            (u.action(), body, prefixes)
        }
        Ok(other) => panic!("not an UPDATE: {other:?}"),
    }
}

/// Whether bgpd's RIB holds a path for `prefix` from `peer`.
fn in_rib(bgpd: &Bgpd, prefix: &str, peer: Ipv4Addr) -> bool {
    let Ok(r) = bgpd.try_show(&["routes", prefix]) else {
        return false;
    };
    r["routes"].as_array().into_iter().flatten().any(|route| {
        route["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["peer"] == peer.to_string())
    })
}

/// A valid UPDATE announcing `prefix` (IPv4 in NLRI, IPv6 in MP_REACH via 2001:db8::1).
fn announce(prefix: &str, nh: Ipv4Addr, four_octet: bool) -> Vec<u8> {
    let as_path: &[u8] = if four_octet {
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8]
    } else {
        AS_PATH2
    };
    let (ip, len) = prefix.split_once('/').unwrap();
    let len: u8 = len.parse().unwrap();
    let nh_attr = [
        0x40,
        3,
        4,
        nh.octets()[0],
        nh.octets()[1],
        nh.octets()[2],
        nh.octets()[3],
    ];
    match ip.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(a) => {
            let mut nlri = vec![len];
            nlri.extend_from_slice(&a.octets()[..usize::from(len).div_ceil(8)]);
            message(&[], &[ORIGIN, as_path, &nh_attr], &nlri)
        }
        std::net::IpAddr::V6(a) => {
            let bytes = &a.octets()[..usize::from(len).div_ceil(8)];
            let mut mp = vec![0x80, 14, 0, 0, 2, 1, 16];
            mp.extend_from_slice(
                &"2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            );
            mp.push(0);
            mp.push(len);
            mp.extend_from_slice(bytes);
            mp[2] = (mp.len() - 3) as u8;
            message(&[], &[ORIGIN, as_path, &mp], &[])
        }
    }
}

#[test]
fn malformed_updates_and_opens_over_real_sessions() {
    let lab = support::lab("bgpd-7606-live");
    let node = lab.node("node1").unwrap();
    let tor = lab.router("tor1").unwrap();
    let raw = lab.host("raw").unwrap();
    let rack = lab.segment("rack", &[&node, &tor, &raw]).unwrap();
    let iface = raw.iface_on(&rack).unwrap().name;
    for i in 0..RAW_PEERS {
        raw.add_addr(&iface, format!("{}/24", raw_addr(i)).parse().unwrap())
            .unwrap();
    }
    let mut spec = RouterSpec::new(Kind::Bird, &[(NODE, NODE_AS)]);
    spec.announce4 = vec!["198.18.70.0/24".into()];
    let bird = Router::start(&lab, &tor, "tor1", spec);
    let bgpd = Bgpd::start(&lab, &node, "node1", &conf(&lab));
    assert!(
        wait(40, || bgpd.state("198.18.0.1") == "Established"
            && bird.established(NODE)),
        "BIRD's session not up\n{}",
        bgpd.logs()
    );
    assert!(wait(15, || kernel_route(&node, "198.18.70.0/24").is_some()));
    let bird_up =
        "bgpd_fsm_transitions_total{peer=\"198.18.0.1\",from=\"OpenConfirm\",to=\"Established\"}";
    assert_eq!(bgpd.metric(METRICS, bird_up), 1.0);

    let mut failures = Vec::new();
    let mut next_peer = 0u8;
    let mut fresh = || {
        let a = raw_addr(next_peer);
        next_peer += 1;
        assert!(next_peer <= RAW_PEERS, "more raw peers needed");
        a
    };
    // one lasting session per AS width for the rows that must not reset it
    let mut sessions: Vec<(bool, Raw)> = Vec::new();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for r in rows() {
        let four = r.cx.four_octet_as;
        let cx = DecodeCx {
            four_octet_as: four,
            ebgp: true,
            ..DecodeCx::default()
        };
        let reset_expected = {
            let probe = with_next_hop(&r.msg, raw_addr(0));
            expect(&probe, &cx).0 == Some(ErrorAction::SessionReset)
        };
        let mut own;
        let (addr, s) = if reset_expected {
            let a = fresh();
            own = Raw::establish(&raw, a, four);
            (a, &mut own)
        } else {
            if !sessions.iter().any(|(f, _)| *f == four) {
                let a = fresh();
                sessions.push((four, Raw::establish(&raw, a, four)));
            }
            let s = &mut sessions.iter_mut().find(|(f, _)| *f == four).unwrap().1;
            (s.addr, s)
        };
        let msg = with_next_hop(&r.msg, addr);
        let (action, notification, prefixes) = expect(&msg, &cx);
        *seen.entry(format!("{action:?}")).or_default() += 1;
        if cx == r.cx && action != r.action {
            failures.push(format!(
                "{}: decoder says {action:?}, table {:?}",
                r.class, r.action
            ));
        }
        // the prefixes are in the RIB first (from this peer), so a withdraw shows
        for p in &prefixes {
            s.send(&announce(p, addr, four));
        }
        for p in &prefixes {
            if !wait(5, || in_rib(&bgpd, p, addr)) {
                failures.push(format!(
                    "{}: valid announcement of {p} not in the RIB",
                    r.class
                ));
            }
        }
        s.send(&msg);
        match action {
            Some(ErrorAction::SessionReset) => {
                let got = s.notification();
                if got != notification {
                    failures.push(format!(
                        "{}: NOTIFICATION {got:?}, want {notification:?}",
                        r.class
                    ));
                }
                if s.recv().is_some() {
                    failures.push(format!(
                        "{}: session not closed after the NOTIFICATION",
                        r.class
                    ));
                }
            }
            _ => {
                s.send(&keepalive());
                if let Err(m) = s.quiet_for(Duration::from_millis(700)) {
                    failures.push(format!("{}: session answered {m:?}", r.class));
                    continue;
                }
                let gone = action == Some(ErrorAction::TreatAsWithdraw);
                for p in &prefixes {
                    if !wait(5, || in_rib(&bgpd, p, addr) != gone) {
                        failures.push(format!(
                            "{}: {p} {} the RIB after {action:?}",
                            r.class,
                            if gone { "still in" } else { "not in" }
                        ));
                    }
                }
                if bgpd.state(&addr.to_string()) != "Established" {
                    failures.push(format!("{}: session {addr} not Established", r.class));
                }
            }
        }
    }
    // every class of action came up
    for a in [
        "Some(TreatAsWithdraw)",
        "Some(AttributeDiscard)",
        "Some(SessionReset)",
        "None",
    ] {
        assert!(
            seen.get(a).copied().unwrap_or(0) > 0,
            "no row with {a}: {seen:?}"
        );
    }

    // malformed OPENs and headers: (case, bytes, NOTIFICATION code, subcode; 0: any)
    let mut cases: Vec<OpenCase> = vec![
        (
            "OPEN version 3",
            Box::new(move |a| open(3, 65000, 90, a, false, &[])),
            2,
            1,
        ),
        (
            "OPEN wrong peer AS",
            Box::new(move |a| open(4, 65001, 90, a, false, &[])),
            2,
            2,
        ),
        (
            "OPEN identifier 0.0.0.0",
            Box::new(|_| open(4, 65000, 90, Ipv4Addr::UNSPECIFIED, false, &[])),
            2,
            3,
        ),
        (
            "OPEN hold time 1",
            Box::new(|a| open(4, 65000, 1, a, false, &[])),
            2,
            6,
        ),
        (
            "OPEN unsupported optional parameter 9",
            Box::new(|a| open(4, 65000, 90, a, false, &[9, 2, 0, 0])),
            2,
            4,
        ),
        (
            "OPEN optional parameters overrun",
            Box::new(|a| {
                let mut m = open(4, 65000, 90, a, false, &[]);
                m[28] += 5;
                m
            }),
            2,
            0,
        ),
        (
            "header marker not all ones",
            Box::new(|a| {
                let mut m = open(4, 65000, 90, a, false, &[]);
                m[3] = 0;
                m
            }),
            1,
            1,
        ),
        (
            "header length 18",
            Box::new(|a| {
                let mut m = open(4, 65000, 90, a, false, &[]);
                m[16..18].copy_from_slice(&18u16.to_be_bytes());
                m
            }),
            1,
            2,
        ),
        ("header type 9", Box::new(|_| frame(9, &[0; 10])), 1, 3),
        (
            "UPDATE before OPEN",
            Box::new(|a| announce("198.18.71.0/24", a, false)),
            5,
            0,
        ),
    ];
    for (case, bytes, code, subcode) in cases.drain(..) {
        let a = fresh();
        let mut s = Raw::connect(&raw, a);
        s.send(&bytes(a));
        match s.notification() {
            Some(b) if b.len() >= 2 && b[0] == code && (subcode == 0 || b[1] == subcode) => {}
            got => failures.push(format!(
                "{case}: NOTIFICATION {got:?}, want {code}/{subcode}"
            )),
        }
        if bgpd.state(&a.to_string()) == "Established" {
            failures.push(format!("{case}: {a} Established"));
        }
    }

    // the other peer never noticed; bgpd still answers
    assert_eq!(bgpd.state("198.18.0.1"), "Established", "{}", bgpd.logs());
    assert_eq!(
        bgpd.metric(METRICS, bird_up),
        1.0,
        "BIRD's session was reset"
    );
    assert!(bird.established(NODE));
    assert!(kernel_route(&node, "198.18.70.0/24").is_some());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n--- bgpd\n{}",
        failures.len(),
        failures.join("\n"),
        bgpd.logs()
    );
}
