//! Property tests of the IPVS codecs: arbitrary text and bytes never panic the readers;
//! generated tables survive save -> parse and netlink encode -> decode -> model unchanged;
//! every selection's shares sum to 1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::ipvs::netlink::{
    self, IpvsMessage, requests, server_from_attrs, service_from_attrs,
};
use dataplane::ipvs::{
    Forward, IpvsState, Listing, Netmask, Persistence, RealServer, SchedFlags, Scheduler, Service,
    ServiceKey, TunType, Tunnel,
};
use dataplane::{Family, Packet, Protocol};
use netlink_packet_core::NetlinkPayload;
use proptest::prelude::*;

const WORDS: &[&str] = &[
    "-A",
    "-a",
    "-E",
    "-t",
    "-u",
    "--sctp-service",
    "-f",
    "-6",
    "-s",
    "rr",
    "sh",
    "-p",
    "-M",
    "--pe",
    "sip",
    "-o",
    "-b",
    "sh-port,mh-fallback",
    "flag-9",
    "-r",
    "-m",
    "-g",
    "-i",
    "-w",
    "-x",
    "-y",
    "--tun-type",
    "gue",
    "--tun-port",
    "--tun-csum",
    "198.19.0.10:80",
    "[2001:db8::1]:80",
    "198.18.64.2",
    "[2001:db8::2]",
    "80",
    "0",
    "-1",
    "255.255.255.0",
    "64",
    "99999999999",
    "TCP",
    "UDP",
    "FWM",
    "IPv6",
    "->",
    "Masq",
    "Route",
    "persistent",
    "mask",
    "ops",
    "(sh-port)",
    "Prot",
    "LocalAddress:Port",
    "Scheduler",
    "Flags",
    "RemoteAddress:Port",
    "Forward",
    "Weight",
    "ActiveConn",
    "InActConn",
    "Conns",
    "12K",
    "\n",
    "\n",
];

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 0..40).prop_map(|w| w.join(" "))
}

fn addr(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<u16>()
            .prop_map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)))
            .boxed()
    } else {
        any::<u8>()
            .prop_map(|n| IpAddr::V4(Ipv4Addr::new(198, 19, 0, n)))
            .boxed()
    }
}

fn server(v6: bool) -> impl Strategy<Value = RealServer> {
    (
        addr(v6),
        any::<u16>(),
        0..4u8,
        0..1000i32,
        prop_oneof![Just(0u32), 1..100u32],
        (0..3u8, any::<u16>(), 0..3u16),
    )
        .prop_map(|(a, port, fwd, weight, u, (tt, tp, tf))| {
            let forward = [
                Forward::Masq,
                Forward::Route,
                Forward::Tunnel,
                Forward::Bypass,
            ][usize::from(fwd)];
            let kind = TunType::from_number(tt);
            RealServer {
                forward,
                weight,
                u_threshold: u,
                l_threshold: u / 2,
                // what ipvsadm can say: gue has a port, ipip no flags
                tunnel: (forward == Forward::Tunnel).then_some(Tunnel {
                    kind,
                    port: if kind == TunType::Gue { tp } else { 0 },
                    flags: if kind == TunType::Ipip { 0 } else { tf },
                }),
                ..RealServer::masq(a, port)
            }
        })
}

fn service() -> impl Strategy<Value = Service> {
    any::<bool>().prop_flat_map(|v6| {
        (
            prop_oneof![
                (0..3u8, addr(v6), any::<u16>()).prop_map(|(p, addr, port)| ServiceKey::Addr {
                    proto: [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][usize::from(p)],
                    addr,
                    port
                }),
                (1..u32::MAX).prop_map(move |mark| ServiceKey::Fwmark {
                    family: if v6 { Family::V6 } else { Family::V4 },
                    mark
                }),
            ],
            prop::sample::select(vec!["rr", "wrr", "sh", "mh", "wlc", "fo", "lblcr"]),
            prop::option::of((1..100_000u32, 0..=32u8)),
            any::<bool>(),
            0..8u32,
            prop::option::of(Just("sip".to_string())),
            prop::collection::vec(server(v6), 0..4),
        )
            .prop_map(move |(key, sched, pers, ops, flags, pe, servers)| {
                let mut servers = servers;
                servers.sort_by_key(|s| (s.addr, s.port));
                servers.dedup_by_key(|s| (s.addr, s.port));
                Service {
                    persistence: pers.map(|(timeout, bits)| Persistence {
                        timeout,
                        netmask: if v6 {
                            Netmask::V6(bits * 4)
                        } else {
                            let m = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                            Netmask::V4(Ipv4Addr::from(m))
                        },
                    }),
                    one_packet: ops,
                    sched_flags: SchedFlags(flags << 3),
                    pe_name: pe,
                    servers,
                    ..Service::new(key, Scheduler::parse(sched))
                }
            })
    })
}

fn state() -> impl Strategy<Value = IpvsState> {
    prop::collection::vec(service(), 0..5).prop_map(|mut services| {
        services.sort_by(|a, b| a.key.ipvsadm_order(&b.key));
        services.dedup_by(|a, b| a.key == b.key);
        IpvsState { services }
    })
}

proptest! {
    #[test]
    fn text_readers_never_panic(t in text()) {
        let _ = IpvsState::from_save(&t);
        let _ = Listing::parse(&t);
    }

    #[test]
    fn netlink_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = netlink::decode(&bytes);
        let _ = netlink::family_replies(&bytes);
    }

    #[test]
    fn save_then_parse_is_identity(s in state()) {
        let text = s.to_save();
        let back = IpvsState::from_save(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, s);
    }

    /// A table sent as requests and read back as the kernel would dump it (same attributes)
    /// is the same table.
    #[test]
    fn netlink_requests_carry_the_whole_table(s in state()) {
        for svc in &s.services {
            let bytes = netlink::encode(requests::new_service(svc), 0x20, requests::ACK, 1);
            let msg = decoded(&bytes);
            let mut back = service_from_attrs(msg.service().unwrap()).unwrap();
            for rs in &svc.servers {
                let bytes = netlink::encode(requests::new_dest(&svc.key, rs), 0x20, requests::ACK, 2);
                let m = decoded(&bytes);
                back.servers.push(server_from_attrs(m.dest().unwrap(), svc.key.family()).unwrap());
            }
            prop_assert_eq!(&back, svc);
        }
    }

    #[test]
    fn shares_sum_to_one(s in state(), sport in any::<u16>(), ct in any::<bool>()) {
        for svc in &s.services {
            let dst = match &svc.key { ServiceKey::Addr { addr, .. } => *addr, _ => continue };
            let pkt = Packet::tcp("198.18.65.2".parse().unwrap(), dst, 80).with_sport(sport);
            let pkt = if ct { pkt.with_ct_state(dataplane::CtState::Established) } else { pkt };
            let sel = svc.select(&pkt);
            let total: f64 = sel.candidates.iter().map(|c| c.share).sum::<f64>() + sel.unreachable;
            prop_assert!((total - 1.0).abs() < 1e-9, "{} {}", svc.key, total);
            prop_assert!(sel.candidates.iter().all(|c| (0.0..=1.0).contains(&c.share)));
        }
    }
}

fn decoded(bytes: &[u8]) -> IpvsMessage {
    let msgs = netlink::decode(bytes).unwrap();
    match &msgs[0].payload {
        NetlinkPayload::InnerMessage(g) => g.payload.clone(),
        other => panic!("{other:?}"),
    }
}
