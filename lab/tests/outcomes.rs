//! Refused, unreachable, prohibited, blackholed and silent requests are told apart for real:
//! each outcome is produced by an iptables rule or a route in a lab namespace, and the traffic
//! helpers must report exactly that outcome, with the ICMP sender when there is one.
//!
//! client --(link)-- tor --(link)-- server (echo on many ports, extra /32s on lo)

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lab::{ConnError, EchoSpec, Host, Icmp, Lab};

const OK: Duration = Duration::from_secs(2);
const SILENT: Duration = Duration::from_millis(300);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Net {
    _lab: Lab,
    client: Host,
    tor: Host,
    server: Host,
}

fn net(name: &str) -> Net {
    lab::require_root().unwrap();
    let lab = Lab::new(name).unwrap();
    let client = lab.host("client").unwrap();
    let tor = lab.router("tor").unwrap();
    let server = lab.host("server").unwrap();
    let up = lab.link(&client, &tor).unwrap();
    let down = lab.link(&tor, &server).unwrap();
    client
        .add_route(&format!("default via {}", up.b.ipv4().unwrap()))
        .unwrap();
    client
        .add_route(&format!("default via {}", up.b.ipv6().unwrap()))
        .unwrap();
    server
        .add_route(&format!("default via {}", down.a.ipv4().unwrap()))
        .unwrap();
    server
        .add_route(&format!("default via {}", down.a.ipv6().unwrap()))
        .unwrap();
    // extra server addresses, routed by tor
    server
        .add_addr("lo", "198.18.200.1/32".parse().unwrap())
        .unwrap();
    tor.add_route(&format!("198.18.200.0/24 via {}", down.b.ipv4().unwrap()))
        .unwrap();
    Net {
        _lab: lab,
        client,
        tor,
        server,
    }
}

fn icmp_from(e: &ConnError) -> Option<Icmp> {
    match e {
        ConnError::Refused { icmp }
        | ConnError::HostUnreachable { icmp }
        | ConnError::NetUnreachable { icmp }
        | ConnError::Prohibited { icmp } => *icmp,
        _ => None,
    }
}

#[test]
fn each_outcome_is_reported_as_what_caused_it() {
    let n = net("outcomes");
    let (c, tor, srv) = (&n.client, &n.tor, &n.server);
    let _echo = srv
        .echo_server(EchoSpec {
            tcp: (7000..=7006).collect(),
            udp: vec![7001, 7007],
            ..Default::default()
        })
        .unwrap();
    let s4 = IpAddr::V4(srv.ipv4().unwrap());
    let tor_c4 = IpAddr::V4(tor.iface_to(c).unwrap().ipv4().unwrap());
    tor.sh(
        "iptables -A FORWARD -p tcp --dport 7002 -j REJECT --reject-with icmp-host-unreachable
         iptables -A FORWARD -p tcp --dport 7003 -j REJECT --reject-with icmp-net-unreachable
         iptables -A FORWARD -p tcp --dport 7004 -j REJECT --reject-with icmp-admin-prohibited
         iptables -A FORWARD -p tcp --dport 7005 -j DROP
         iptables -A FORWARD -p tcp --dport 7006 -j REJECT --reject-with tcp-reset
         iptables -A FORWARD -p udp --dport 7007 -j REJECT --reject-with icmp-port-unreachable",
    )
    .unwrap();

    // answered, and refused by the server's kernel (RST / ICMP port unreachable)
    assert!(
        c.tcp_connect(s4, 7000, OK)
            .unwrap()
            .starts_with("server tcp")
    );
    let e = c.tcp_connect(s4, 7999, OK).unwrap_err();
    assert!(matches!(e, ConnError::Refused { icmp: None }), "{e}");
    let e = c.udp_request(s4, 7999, b"x", OK).unwrap_err();
    assert!(matches!(e, ConnError::Refused { .. }), "{e}");
    assert_eq!(
        icmp_from(&e),
        Some(Icmp {
            from: s4,
            icmp_type: 3,
            code: 3
        }),
        "{e}"
    );

    // REJECT variants and DROP in tor's FORWARD chain
    let e = c.tcp_connect(s4, 7002, OK).unwrap_err();
    assert!(matches!(e, ConnError::HostUnreachable { .. }), "{e}");
    assert_eq!(
        icmp_from(&e),
        Some(Icmp {
            from: tor_c4,
            icmp_type: 3,
            code: 1
        })
    );
    let e = c.tcp_connect(s4, 7003, OK).unwrap_err();
    assert!(matches!(e, ConnError::NetUnreachable { .. }), "{e}");
    assert_eq!(icmp_from(&e).map(|i| i.code), Some(0));
    let e = c.tcp_connect(s4, 7004, OK).unwrap_err();
    assert!(matches!(e, ConnError::Prohibited { .. }), "{e}");
    assert_eq!(icmp_from(&e).map(|i| (i.from, i.code)), Some((tor_c4, 13)));
    let e = c.tcp_connect(s4, 7005, SILENT).unwrap_err();
    assert!(matches!(e, ConnError::Timeout), "{e}");
    let e = c.tcp_connect(s4, 7006, OK).unwrap_err();
    assert!(matches!(e, ConnError::Refused { icmp: None }), "{e}");
    let e = c.udp_request(s4, 7007, b"x", OK).unwrap_err();
    assert_eq!(
        icmp_from(&e),
        Some(Icmp {
            from: tor_c4,
            icmp_type: 3,
            code: 3
        }),
        "{e}"
    );
    // the server's own address on lo still answers: the rules, not the path, did it
    assert!(c.tcp_connect(ip("198.18.200.1"), 7000, OK).is_ok());
    assert!(c.udp_request(s4, 7001, b"x", OK).is_ok());
}

#[test]
fn routes_blackhole_unreachable_prohibit_and_missing() {
    let n = net("routes");
    let (c, tor) = (&n.client, &n.tor);
    let tor_c4 = IpAddr::V4(tor.iface_to(c).unwrap().ipv4().unwrap());
    // on the router: packets die one hop away
    tor.add_route("blackhole 198.18.201.0/24").unwrap();
    tor.add_route("unreachable 198.18.202.0/24").unwrap();
    tor.add_route("prohibit 198.18.203.0/24").unwrap();
    let e = c.tcp_connect(ip("198.18.201.1"), 80, SILENT).unwrap_err();
    assert!(
        matches!(e, ConnError::Timeout),
        "blackhole on the router is silence: {e}"
    );
    let e = c.tcp_connect(ip("198.18.202.1"), 80, OK).unwrap_err();
    assert!(matches!(e, ConnError::HostUnreachable { .. }), "{e}");
    assert_eq!(
        icmp_from(&e),
        Some(Icmp {
            from: tor_c4,
            icmp_type: 3,
            code: 1
        })
    );
    let e = c.udp_request(ip("198.18.203.1"), 53, b"x", OK).unwrap_err();
    assert!(matches!(e, ConnError::Prohibited { .. }), "{e}");
    assert_eq!(icmp_from(&e).map(|i| i.code), Some(13));
    let e = c.tcp_connect(ip("198.18.204.1"), 80, OK).unwrap_err();
    assert!(
        matches!(e, ConnError::NetUnreachable { .. }),
        "no route on the router: {e}"
    );
    assert_eq!(icmp_from(&e).map(|i| (i.from, i.code)), Some((tor_c4, 0)));
    // on the client itself: the socket call fails at once, no ICMP
    c.add_route("blackhole 198.18.210.0/24").unwrap();
    c.add_route("unreachable 198.18.211.0/24").unwrap();
    c.add_route("prohibit 198.18.212.0/24").unwrap();
    let e = c.tcp_connect(ip("198.18.210.1"), 80, OK).unwrap_err();
    assert!(matches!(e, ConnError::Blackhole), "{e}");
    let e = c.tcp_connect(ip("198.18.211.1"), 80, OK).unwrap_err();
    assert!(
        matches!(e, ConnError::HostUnreachable { icmp: None }),
        "{e}"
    );
    let e = c.udp_request(ip("198.18.212.1"), 80, b"x", OK).unwrap_err();
    assert!(matches!(e, ConnError::Prohibited { icmp: None }), "{e}");
    // a pod-style ping gets the same classification
    let e = c.ping(ip("198.18.202.1"), OK).unwrap_err();
    assert!(matches!(e, ConnError::HostUnreachable { .. }), "{e}");
    assert!(c.ping(Ipv4Addr::new(198, 18, 200, 1), OK).is_ok());
}

#[test]
fn ipv6_outcomes() {
    let n = net("outcomes6");
    let (c, tor, srv) = (&n.client, &n.tor, &n.server);
    let _echo = srv
        .echo_server(EchoSpec {
            tcp: vec![7000, 7004, 7005],
            udp: vec![7001],
            ..Default::default()
        })
        .unwrap();
    let s6 = IpAddr::V6(srv.ipv6().unwrap());
    let tor_c6 = IpAddr::V6(tor.iface_to(c).unwrap().ipv6().unwrap());
    tor.sh(
        "ip6tables -A FORWARD -p tcp --dport 7004 -j REJECT --reject-with icmp6-adm-prohibited
         ip6tables -A FORWARD -p tcp --dport 7005 -j DROP",
    )
    .unwrap();
    assert!(
        c.tcp_connect(s6, 7000, OK)
            .unwrap()
            .starts_with("server tcp")
    );
    let e = c.tcp_connect(s6, 7999, OK).unwrap_err();
    assert!(matches!(e, ConnError::Refused { icmp: None }), "{e}");
    let e = c.udp_request(s6, 7999, b"x", OK).unwrap_err();
    assert_eq!(
        icmp_from(&e),
        Some(Icmp {
            from: s6,
            icmp_type: 1,
            code: 4
        }),
        "{e}"
    );
    let e = c.tcp_connect(s6, 7004, OK).unwrap_err();
    assert!(matches!(e, ConnError::Prohibited { .. }), "{e}");
    assert_eq!(
        icmp_from(&e),
        Some(Icmp {
            from: tor_c6,
            icmp_type: 1,
            code: 1
        })
    );
    let e = c.tcp_connect(s6, 7005, SILENT).unwrap_err();
    assert!(matches!(e, ConnError::Timeout), "{e}");
}
