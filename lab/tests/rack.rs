//! Two nodes and a router on one segment, pods on each node: routing, the echo server, and
//! the addresses the lab hands out. Needs root; builds and removes its own namespaces.

use std::time::Duration;

use lab::{EchoSpec, Greeting, Host, Lab, Segment};

const T: Duration = Duration::from_secs(2);

struct Rack {
    lab: Lab,
    n1: Host,
    n2: Host,
    tor: Host,
    rack: Segment,
    a: Host,
    b: Host,
}

/// node1, node2 and tor on segment `rack`; pod a on node1, pod b on node2; nodes route
/// everything via tor, tor routes each pod CIDR to its node.
fn rack(name: &str) -> Rack {
    lab::require_root().unwrap();
    let lab = Lab::new(name).unwrap();
    let n1 = lab.node("node1").unwrap();
    let n2 = lab.node("node2").unwrap();
    let tor = lab.router("tor").unwrap();
    let rack = lab.segment("rack", &[&n1, &n2, &tor]).unwrap();
    let a = lab.pod(&n1, "a").unwrap();
    let b = lab.pod(&n2, "b").unwrap();
    for n in [&n1, &n2] {
        n.add_route(&format!("default via {}", tor.ipv4().unwrap()))
            .unwrap();
        n.add_route(&format!("default via {}", tor.ipv6().unwrap()))
            .unwrap();
        tor.add_route(&format!(
            "{} via {}",
            n.pod_cidr4().unwrap(),
            n.ipv4().unwrap()
        ))
        .unwrap();
        tor.add_route(&format!(
            "{} via {}",
            n.pod_cidr6().unwrap(),
            n.ipv6().unwrap()
        ))
        .unwrap();
    }
    Rack {
        lab,
        n1,
        n2,
        tor,
        rack,
        a,
        b,
    }
}

#[test]
fn addresses_follow_the_plan() {
    let r = rack("plan");
    assert_eq!(r.n1.ipv4().unwrap().to_string(), "198.18.0.11");
    assert_eq!(r.n2.ipv6().unwrap().to_string(), "2001:db8::12");
    assert_eq!(r.tor.ipv4().unwrap().to_string(), "198.18.0.1");
    assert_eq!(r.n2.pod_cidr4().unwrap().to_string(), "198.18.66.0/24");
    assert_eq!(r.a.ipv4().unwrap().to_string(), "198.18.65.2");
    assert_eq!(r.b.ipv6().unwrap().to_string(), "2001:db8:64:2::2");
    assert_eq!(r.rack.subnet4().to_string(), "198.18.0.0/24");
    assert_eq!(r.n1.iface_on(&r.rack).unwrap().name, "eth0");
    assert_eq!(r.a.node().unwrap().name(), "node1");
    assert_eq!(r.n1.pods().len(), 1);
    // what the kernel says matches what the lab says
    let cali = r.a.node_iface().unwrap();
    let routes = r.n1.ip(&["route", "show", "198.18.65.2"]).unwrap();
    assert!(routes.contains(&format!("dev {}", cali.name)), "{routes}");
    let addrs = r.a.ip(&["-br", "addr", "show", "eth0"]).unwrap();
    assert!(
        addrs.contains("198.18.65.2/32") && addrs.contains("2001:db8:64:1::2/128"),
        "{addrs}"
    );
    let proxy_arp =
        r.n1.sh(&format!(
            "cat /proc/sys/net/ipv4/conf/{}/proxy_arp",
            cali.name
        ))
        .unwrap();
    assert_eq!(proxy_arp.trim(), "1");
    // namespaces are the lab's own
    for ns in r.lab.namespaces() {
        assert!(ns.starts_with(&format!("lab-{}-", r.lab.id())), "{ns}");
    }
}

#[test]
fn pods_ping_across_nodes_through_the_router() {
    let r = rack("ping");
    r.a.ping(r.b.ipv4().unwrap(), T).unwrap();
    r.b.ping(r.a.ipv4().unwrap(), T).unwrap();
    r.a.ping(r.b.ipv6().unwrap(), T).unwrap();
    r.a.ping(r.n2.ipv4().unwrap(), T).unwrap();
    r.tor.ping(r.a.ipv4().unwrap(), T).unwrap();
}

#[test]
fn echo_server_names_the_host_that_answered() {
    let r = rack("echo");
    let _echo =
        r.b.echo_server(EchoSpec {
            tcp: vec![7000],
            udp: vec![7001],
            http: vec![8080],
            name: None,
        })
        .unwrap();
    let _other =
        r.n2.echo_server(EchoSpec {
            tcp: vec![7000],
            ..EchoSpec::default()
        })
        .unwrap();
    let (a4, b4) = (r.a.ipv4().unwrap(), r.b.ipv4().unwrap());

    let g = Greeting::parse(&r.a.tcp_connect(b4, 7000, T).unwrap()).unwrap();
    assert_eq!((g.host.as_str(), g.proto.as_str()), ("b", "tcp"));
    assert_eq!(g.client.ip(), a4, "no masquerade on the way");
    assert_eq!(g.local.to_string(), format!("{b4}:7000"));

    let g = Greeting::parse(&r.a.udp_request(b4, 7001, b"hi", T).unwrap()).unwrap();
    assert_eq!(
        (g.host.as_str(), g.proto.as_str(), g.client.ip()),
        ("b", "udp", a4.into())
    );

    let resp = r.a.http_get(b4, 8080, "/", T).unwrap();
    assert_eq!(resp.status, 200);
    let g = Greeting::parse(resp.body.trim()).unwrap();
    assert_eq!((g.host.as_str(), g.proto.as_str()), ("b", "http"));

    // the node answers for itself on the same port
    let g = Greeting::parse(&r.a.tcp_connect(r.n2.ipv4().unwrap(), 7000, T).unwrap()).unwrap();
    assert_eq!(g.host, "node2");

    // IPv6 end to end
    let g = Greeting::parse(&r.a.tcp_connect(r.b.ipv6().unwrap(), 7000, T).unwrap()).unwrap();
    assert_eq!(
        (g.host.as_str(), g.client.ip()),
        ("b", r.a.ipv6().unwrap().into())
    );
    let g = Greeting::parse(&r.a.udp_request(r.b.ipv6().unwrap(), 7001, b"x", T).unwrap()).unwrap();
    assert_eq!(g.host, "b");

    // a fixed source port is what the server sees
    let g = Greeting::parse(
        &r.a.tcp_connect_with(b4, 7000, &lab::ConnOpts::new(T).src_port(40001))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(g.client.port(), 40001);
    let g = Greeting::parse(
        &r.a.udp_request_with(b4, 7001, b"x", &lab::ConnOpts::new(T).src_port(40002))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(g.client.port(), 40002);
}

#[test]
fn second_segments_late_members_and_overrides() {
    lab::require_root().unwrap();
    let lab = Lab::new("wiring").unwrap();
    let r1 = lab.router("r1").unwrap();
    let r2 = lab.router("r2").unwrap();
    let h = lab.host("h1").unwrap();
    // a link first: it takes link subnet 1, not the node network
    let l = lab
        .link_with(
            &r1,
            &r2,
            &lab::LinkOpts {
                subnet4: Some("198.18.40.0/30".parse().unwrap()),
                a: lab::IfaceOpts {
                    name: Some("uplink".into()),
                    addrs: None,
                },
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(l.a.name, "uplink");
    assert_eq!(l.a.net4().unwrap().to_string(), "198.18.40.1/30");
    assert_eq!(l.b.net4().unwrap().to_string(), "198.18.40.2/30");
    assert_eq!(l.b.name, "eth0");
    // the first segment is the node network, the second a link subnet
    let lan = lab.segment("lan", &[&r1]).unwrap();
    let dmz = lab.segment("dmz", &[&r2]).unwrap();
    assert_eq!(lan.subnet4().to_string(), "198.18.0.0/24");
    assert_eq!(dmz.subnet4().to_string(), "198.18.2.0/24");
    assert_eq!(
        r2.iface_on(&dmz).unwrap().ipv4().unwrap().to_string(),
        "198.18.2.1"
    );
    // a member attached later gets the next address and a working port
    let iface = lab.attach(&dmz, &h).unwrap();
    assert_eq!(iface.ipv4().unwrap().to_string(), "198.18.2.2");
    assert_eq!(iface.ipv6().unwrap().to_string(), "2001:db8:0:2::2");
    h.ping(r2.iface_on(&dmz).unwrap().ipv4().unwrap(), T)
        .unwrap();
    h.ping(r2.iface_on(&dmz).unwrap().ipv6().unwrap(), T)
        .unwrap();
    let ports = dmz
        .switch()
        .unwrap()
        .ip(&["-br", "link", "show", "master", "br0"])
        .unwrap();
    assert!(ports.contains("r2@") && ports.contains("h1@"), "{ports}");
    // explicit addresses, and errors for what cannot be
    let extra = lab
        .attach_with(
            &lan,
            &h,
            &lab::IfaceOpts {
                name: None,
                addrs: Some(vec!["198.18.0.200/24".parse().unwrap()]),
            },
        )
        .unwrap();
    assert_eq!(extra.addrs.len(), 1);
    assert!(lab.attach(&lan, &h).is_err(), "already a member");
    assert!(lab.link(&h, &h).is_err());
}
