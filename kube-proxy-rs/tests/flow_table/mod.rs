//! The packet-flow table every proxy mode is checked against, in the shape of upstream's
//! `runPacketFlowTests`: per golden case, rows of (source, protocol, destination, port,
//! arriving interface or the node itself) → the endpoints reached (`ip:port, ...`), `DROP`,
//! `REJECT`, or local delivery, and whether the packet is masqueraded. A mode's test builds
//! node-a ([`base_node`]: links, addresses, routes, sysctls) with its golden rules, traces each
//! row with `dataplane::trace` and compares; rows where a mode deliberately differs from
//! upstream iptables mode are listed per mode (e.g. [`NFT_DIFFERS`]).
//!
//! node-a: eth0 198.18.0.1/24 and 2001:db8::a/64 toward the node network and a router
//! (.254 / ::fe), eth1 198.18.1.1/24 (a second local address), the local pods on `cali-pods`,
//! the other nodes' pod CIDRs via node-b (.2) and node-c (.3), forwarding on,
//! `route_localnet=1`, rp_filter loose.

#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;

use dataplane::node::{NodeState, Sysctls};
use dataplane::route::{
    Address, InterfaceAddrs, Link, Route, RouteProtocol, RouteState, RouteType, Rule, Scope,
    TableId,
};
use dataplane::trace::{Effect, Trace, Verdict, trace};
use dataplane::{Family, Packet, Protocol};

pub const POD_DEV: &str = "cali-pods";

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("address {s}"))
}

pub fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap_or_else(|_| panic!("prefix {s}"))
}

/// A connected route as the kernel adds it for an address.
pub fn connected(prefix: &str, dev: &str, src: &str) -> Route {
    let mut r = Route::unicast(net(prefix), None, Some(dev));
    r.protocol = Some(RouteProtocol::KERNEL);
    r.scope = Some(Scope::LINK);
    r.prefsrc = Some(ip(src));
    r
}

/// A `local` route of the local table, as the kernel adds it for an address.
pub fn local(prefix: &str, dev: &str, src: &str) -> Route {
    let mut r = Route::of_type(RouteType::Local, net(prefix)).in_table(TableId::LOCAL);
    r.nexthops = vec![dataplane::route::Nexthop::new(None, Some(dev))];
    r.protocol = Some(RouteProtocol::KERNEL);
    r.scope = Some(Scope::HOST);
    r.prefsrc = Some(ip(src));
    r
}

pub fn via(prefix: &str, gw: &str) -> Route {
    Route::unicast(net(prefix), Some(ip(gw)), Some("eth0"))
}

pub fn addrs(ifindex: u32, name: &str, list: &[(&str, u8, Scope)]) -> InterfaceAddrs {
    InterfaceAddrs {
        ifindex,
        ifname: name.into(),
        addrs: list
            .iter()
            .map(|(a, len, scope)| {
                let mut ad = Address::new(ip(a), *len);
                ad.scope = *scope;
                ad
            })
            .collect(),
        other_addrs: Vec::new(),
        extra: Default::default(),
    }
}

/// node-a's links, addresses and routes (see the module docs).
pub fn routes() -> RouteState {
    let mut rules = Rule::defaults(Family::V4);
    rules.extend(Rule::defaults(Family::V6));
    RouteState {
        links: vec![
            Link::new(1, "lo", &["LOOPBACK", "UP", "LOWER_UP"]),
            Link::new(2, "eth0", &["BROADCAST", "UP", "LOWER_UP"]),
            Link::new(3, "eth1", &["BROADCAST", "UP", "LOWER_UP"]),
            Link::new(4, POD_DEV, &["BROADCAST", "UP", "LOWER_UP"]),
        ],
        addresses: vec![
            addrs(
                1,
                "lo",
                &[("127.0.0.1", 8, Scope::HOST), ("::1", 128, Scope::HOST)],
            ),
            addrs(
                2,
                "eth0",
                &[
                    ("198.18.0.1", 24, Scope::GLOBAL),
                    ("2001:db8::a", 64, Scope::GLOBAL),
                ],
            ),
            addrs(3, "eth1", &[("198.18.1.1", 24, Scope::GLOBAL)]),
        ],
        routes: vec![
            connected("198.18.0.0/24", "eth0", "198.18.0.1"),
            connected("198.18.1.0/24", "eth1", "198.18.1.1"),
            Route::unicast(net("198.18.64.0/24"), None, Some(POD_DEV)),
            via("198.18.65.0/24", "198.18.0.2"),
            via("198.18.66.0/24", "198.18.0.3"),
            via("0.0.0.0/0", "198.18.0.254"),
            connected("2001:db8::/64", "eth0", "2001:db8::a"),
            Route::unicast(net("2001:db8:40:a::/64"), None, Some(POD_DEV)),
            via("2001:db8:40:b::/64", "2001:db8::b"),
            via("2001:db8:40:c::/64", "2001:db8::c"),
            via("::/0", "2001:db8::fe"),
            local("127.0.0.0/8", "lo", "127.0.0.1"),
            local("127.0.0.1/32", "lo", "127.0.0.1"),
            local("198.18.0.1/32", "eth0", "198.18.0.1"),
            local("198.18.1.1/32", "eth1", "198.18.1.1"),
            local("::1/128", "lo", "::1"),
            local("2001:db8::a/128", "eth0", "2001:db8::a"),
        ],
        rules,
        ..RouteState::default()
    }
}

pub fn sysctls() -> Sysctls {
    let mut s = Sysctls::new();
    for (k, v) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.forwarding", "1"),
        ("net.ipv6.conf.all.forwarding", "1"),
        ("net.ipv4.conf.all.rp_filter", "2"),
        ("net.ipv4.conf.all.route_localnet", "1"),
        ("net.netfilter.nf_conntrack_tcp_be_liberal", "0"),
    ] {
        s.set(k, v);
    }
    s
}

/// upstream's flow-test output: the distinct endpoints reached (`a:p, b:p`; local delivery
/// as `LOCAL a:p`), or `DROP` / `REJECT` / another verdict kind, joined with `; ` when paths
/// differ.
pub fn output(t: &Trace) -> String {
    let mut eps = Vec::new();
    let mut other = Vec::new();
    for p in &t.paths {
        match &p.verdict {
            Verdict::Forwarded { dst, .. } => eps.push(dst.to_string()),
            Verdict::Delivered { to, .. } => eps.push(format!("LOCAL {to}")),
            Verdict::Dropped { .. } => other.push("DROP".to_string()),
            Verdict::Rejected { .. } => other.push("REJECT".to_string()),
            v => other.push(v.kind().to_uppercase()),
        }
    }
    eps.sort();
    eps.dedup();
    other.sort();
    other.dedup();
    let mut parts = Vec::new();
    if !eps.is_empty() {
        parts.push(eps.join(", "));
    }
    parts.extend(other);
    parts.join("; ")
}

/// Whether a MASQUERADE rewrote the source on some path.
pub fn masqueraded(t: &Trace) -> bool {
    t.paths.iter().any(|p| {
        p.steps.iter().any(|s| {
            matches!(
                s.effect,
                Effect::Snat {
                    masquerade: true,
                    ..
                }
            )
        })
    })
}

/// One row: a packet and what should become of it.
pub struct Flow {
    pub case: &'static str,
    pub name: &'static str,
    pub src: &'static str,
    pub proto: Protocol,
    pub dst: &'static str,
    pub dport: u16,
    /// Arriving interface; `None`: sent by the node itself.
    pub iif: Option<&'static str>,
    pub output: &'static str,
    pub masq: bool,
}

pub const TCP: Protocol = Protocol::Tcp;
pub const UDP: Protocol = Protocol::Udp;
/// A client outside the cluster, behind the router.
pub const OUTSIDE: &str = "198.18.200.7";
pub const OUTSIDE6: &str = "2001:db8:200::7";
/// A pod on node-a (not an endpoint).
pub const POD: &str = "198.18.64.99";
pub const POD6: &str = "2001:db8:40:a::99";
pub const NODE: &str = "0.0.0.0";
pub const NODE6: &str = "::";

#[allow(clippy::too_many_arguments)] // one argument per column
pub const fn row(
    case: &'static str,
    name: &'static str,
    src: &'static str,
    proto: Protocol,
    dst: &'static str,
    dport: u16,
    iif: Option<&'static str>,
    output: &'static str,
    masq: bool,
) -> Flow {
    Flow {
        case,
        name,
        src,
        proto,
        dst,
        dport,
        iif,
        output,
        masq,
    }
}

pub const ETH0: Option<&str> = Some("eth0");
pub const PODS: Option<&str> = Some(POD_DEV);
pub const LOCAL: Option<&str> = None;

#[rustfmt::skip]
pub const FLOWS: &[Flow] = &[
    // ClusterIP: an endpoint here and one on node-b.
    row("clusterip", "cluster IP from a local pod",
        POD, TCP, "198.19.0.10", 80, PODS, "198.18.64.10:8080, 198.18.65.10:8080", false),
    row("clusterip", "cluster IP from the node",
        NODE, TCP, "198.19.0.10", 80, LOCAL, "198.18.64.10:8080, 198.18.65.10:8080", true),
    row("clusterip", "cluster IP from outside the cluster",
        OUTSIDE, TCP, "198.19.0.10", 80, ETH0, "198.18.64.10:8080, 198.18.65.10:8080", true),
    row("clusterip", "hairpin: an endpoint to its own service",
        "198.18.64.10", TCP, "198.19.0.10", 80, PODS, "198.18.64.10:8080, 198.18.65.10:8080", true),
    row("clusterip", "cluster IP, another port: not a service",
        POD, TCP, "198.19.0.10", 81, PODS, "198.19.0.10:81", false),
    // NodePort, externalTrafficPolicy Cluster.
    row("nodeport", "node port on the node IP",
        OUTSIDE, TCP, "198.18.0.1", 30080, ETH0, "198.18.64.11:8080", true),
    row("nodeport", "node port on a second local address",
        OUTSIDE, TCP, "198.18.1.1", 30080, ETH0, "198.18.64.11:8080", true),
    row("nodeport", "node port number on a remote address",
        OUTSIDE, TCP, "198.18.0.77", 30080, ETH0, "198.18.0.77:30080", false),
    row("no-localhost-nodeports", "localhost node ports off",
        "127.0.0.1", TCP, "127.0.0.1", 30080, LOCAL, "LOCAL 127.0.0.1:30080", false),
    row("nodeport-addresses", "node port on an address in --nodeport-addresses",
        OUTSIDE, TCP, "198.18.0.1", 30080, ETH0, "198.18.64.11:8080", true),
    row("nodeport-addresses", "node port on a local address outside --nodeport-addresses",
        OUTSIDE, TCP, "198.18.1.1", 30080, ETH0, "LOCAL 198.18.1.1:30080", false),
    // LoadBalancer with externalTrafficPolicy Local, an endpoint here and one on node-b.
    row("lb-local", "LB IP from outside: local endpoint, source kept",
        OUTSIDE, TCP, "198.19.255.14", 80, ETH0, "198.18.64.14:8080", false),
    row("lb-local", "node port from outside: local endpoint, source kept",
        OUTSIDE, TCP, "198.18.0.1", 30014, ETH0, "198.18.64.14:8080", false),
    row("lb-local", "LB IP from a local pod: short-circuit to all endpoints",
        POD, TCP, "198.19.255.14", 80, PODS, "198.18.64.14:8080, 198.18.65.14:8080", false),
    row("lb-local", "LB IP from the node: all endpoints, masqueraded",
        NODE, TCP, "198.19.255.14", 80, LOCAL, "198.18.64.14:8080, 198.18.65.14:8080", true),
    row("lb-local", "health check node port is accepted",
        OUTSIDE, TCP, "198.18.0.1", 32014, ETH0, "LOCAL 198.18.0.1:32014", false),
    row("lb-local", "cluster IP from outside uses every endpoint",
        OUTSIDE, TCP, "198.19.0.14", 80, ETH0, "198.18.64.14:8080, 198.18.65.14:8080", true),
    // externalTrafficPolicy Local with endpoints only on other nodes.
    row("etp-local-remote", "node port without local endpoints: DROP",
        OUTSIDE, TCP, "198.18.0.1", 30110, ETH0, "DROP", false),
    row("etp-local-remote", "LB IP without local endpoints: DROP",
        OUTSIDE, TCP, "198.19.255.111", 80, ETH0, "DROP", false),
    row("etp-local-remote", "external IP without local endpoints: DROP",
        OUTSIDE, TCP, "198.19.255.110", 80, ETH0, "DROP", false),
    row("etp-local-remote", "LB IP from a local pod still works",
        POD, TCP, "198.19.255.111", 80, PODS, "198.18.65.110:8080, 198.18.66.110:8080", false),
    row("etp-local-remote", "external IP from the node still works, masqueraded",
        NODE, TCP, "198.19.255.110", 80, LOCAL, "198.18.65.110:8080, 198.18.66.110:8080", true),
    // loadBalancerSourceRanges 198.19.255.128/25 and 198.18.0.0/24.
    row("loadbalancer", "LB IP from an allowed range",
        "198.19.255.200", TCP, "198.19.255.12", 443, ETH0, "198.18.65.12:8443", true),
    row("loadbalancer", "LB IP from the node network (allowed)",
        "198.18.0.50", TCP, "198.19.255.12", 443, ETH0, "198.18.65.12:8443", true),
    row("loadbalancer", "LB IP from the node (its address is in the ranges)",
        NODE, TCP, "198.19.255.12", 443, LOCAL, "198.18.65.12:8443", true),
    row("loadbalancer", "LB IP from a blocked source: DROP",
        OUTSIDE, TCP, "198.19.255.12", 443, ETH0, "DROP", false),
    row("loadbalancer", "node port ignores source ranges",
        OUTSIDE, TCP, "198.18.0.1", 30443, ETH0, "198.18.65.12:8443", true),
    row("loadbalancer", "ipMode Proxy ingress is not captured",
        OUTSIDE, TCP, "198.19.255.13", 443, ETH0, "198.19.255.13:443", false),
    // loadBalancerSourceRanges 198.19.255.128/25 only: not the node's own address.
    row("lb-node-blocked", "LB IP from the node, its address not in the ranges: DROP",
        NODE, TCP, "198.19.255.60", 443, LOCAL, "DROP", false),
    row("lb-node-blocked", "LB IP from an allowed range",
        "198.19.255.200", TCP, "198.19.255.60", 443, ETH0, "198.18.65.60:8443", true),
    // externalIPs, affinity, no endpoints.
    row("externalip", "external IP from outside",
        OUTSIDE, TCP, "198.19.255.15", 80, ETH0, "198.18.65.15:8080", true),
    row("affinity", "ClientIP affinity, first packet: any endpoint",
        OUTSIDE, TCP, "198.19.0.16", 80, ETH0, "198.18.64.16:8080, 198.18.65.16:8080", true),
    row("no-endpoints", "no endpoints: REJECT from a pod",
        POD, TCP, "198.19.0.20", 80, PODS, "REJECT", false),
    row("no-endpoints", "no endpoints: REJECT from the node",
        NODE, TCP, "198.19.0.20", 80, LOCAL, "REJECT", false),
    // internalTrafficPolicy Local.
    row("itp-local", "iTP Local from a pod: local endpoint only",
        POD, TCP, "198.19.0.17", 80, PODS, "198.18.64.17:8080", false),
    row("itp-local", "iTP Local from outside: local endpoint, masqueraded",
        OUTSIDE, TCP, "198.19.0.17", 80, ETH0, "198.18.64.17:8080", true),
    // Topology, terminating fallback, DNS over UDP.
    row("topology", "zone hints: the endpoint hinted for z1",
        POD, TCP, "198.19.0.18", 80, PODS, "198.18.66.18:8080", false),
    row("topology", "node hints: the endpoint hinted for node-a",
        POD, TCP, "198.19.0.28", 80, PODS, "198.18.64.28:8080", false),
    row("terminating", "only serving-terminating endpoints: used",
        POD, TCP, "198.19.0.19", 80, PODS, "198.18.64.19:8080", false),
    row("dns", "DNS over UDP from a pod",
        POD, UDP, "198.19.0.53", 53, PODS, "198.18.64.53:53, 198.18.66.53:53", false),
    row("dns", "DNS over TCP from a pod",
        POD, TCP, "198.19.0.53", 53, PODS, "198.18.64.53:53, 198.18.66.53:53", false),
    // --masquerade-all.
    row("masquerade-all", "masquerade-all: pod traffic too",
        POD, TCP, "198.19.0.10", 80, PODS, "198.18.64.10:8080, 198.18.65.10:8080", true),
    // IPv6.
    row("ipv6", "IPv6 cluster IP from a local pod",
        POD6, TCP, "2001:db8:c::22", 80, PODS, "[2001:db8:40:b::22]:8080", false),
    row("ipv6", "IPv6 cluster IP from outside",
        OUTSIDE6, TCP, "2001:db8:c::22", 80, ETH0, "[2001:db8:40:b::22]:8080", true),
    row("dualstack", "dual-stack: IPv4 side",
        POD, TCP, "198.19.0.21", 80, PODS, "198.18.64.21:8080", false),
    row("external-v6", "IPv6 LB IP from an allowed range",
        "2001:db8::50", TCP, "2001:db8:ff::121", 443, ETH0, "[2001:db8:40:a::120]:8443, [2001:db8:40:b::120]:8443, [2001:db8:40:c::120]:8443", true),
    row("external-v6", "IPv6 LB IP from a blocked source: DROP",
        OUTSIDE6, TCP, "2001:db8:ff::121", 443, ETH0, "DROP", false),
    row("external-v6", "IPv6 node port",
        OUTSIDE6, TCP, "2001:db8::a", 30120, ETH0, "[2001:db8:40:a::120]:8443, [2001:db8:40:b::120]:8443, [2001:db8:40:c::120]:8443", true),
    row("external-v6", "IPv6 external IP from the node",
        NODE6, TCP, "2001:db8:ff::120", 443, LOCAL, "[2001:db8:40:a::120]:8443, [2001:db8:40:b::120]:8443, [2001:db8:40:c::120]:8443", true),
    row("external-v6", "no IPv6 localhost node ports",
        "::1", TCP, "::1", 30120, LOCAL, "LOCAL [::1]:30120", false),
];

/// node-a without rules: links, addresses, routes and sysctls.
pub fn base_node() -> NodeState {
    NodeState::new("node-a")
        .with_sysctls(sysctls())
        .with_routes(routes())
}

/// A row a mode answers differently from the table, on purpose: (case, row name, output,
/// masqueraded).
pub type Override = (&'static str, &'static str, &'static str, bool);

/// Where nftables mode differs from iptables mode (as upstream's nftables mode does).
pub const NFT_DIFFERS: &[Override] = &[
    // cluster-ips-check: traffic to a ClusterIP on a port no Service has is rejected
    // (iptables mode lets it leave toward the default route).
    (
        "clusterip",
        "cluster IP, another port: not a service",
        "REJECT",
        false,
    ),
    // filter-output (dstnat-10) checks @no-endpoint-services before nat-output's DNAT, so
    // the node's own connection to an eTP Local external IP without local endpoints meets
    // the drop element first (upstream's chain priorities; iptables mode only checks
    // KUBE-EXTERNAL-SERVICES on INPUT and FORWARD).
    (
        "etp-local-remote",
        "external IP from the node still works, masqueraded",
        "DROP",
        false,
    ),
];

/// Where IPVS mode differs from iptables mode on purpose, each with its reason.
pub const IPVS_DIFFERS: &[Override] = &[
    // KUBE-IPVS-FILTER rejects new connections to an address on kube-ipvs0 on a port no
    // Service has (upstream #72236; nftables mode rejects them too).
    (
        "clusterip",
        "cluster IP, another port: not a service",
        "REJECT",
        false,
    ),
    // IPVS has one virtual service per address and port, so an external address uses the
    // external policy's endpoints whoever the client is: with eTP Local, the local endpoint
    // only, and the node's own connection is not masqueraded (KUBE-LOAD-BALANCER-LOCAL
    // returns before KUBE-MARK-MASQ), as upstream's IPVS mode.
    (
        "lb-local",
        "LB IP from a local pod: short-circuit to all endpoints",
        "198.18.64.14:8080",
        false,
    ),
    (
        "lb-local",
        "LB IP from the node: all endpoints, masqueraded",
        "198.18.64.14:8080",
        false,
    ),
    // eTP Local without a local endpoint: the external virtual services have no real
    // server and new connections are refused for every client, pods and the node too (no
    // fallback to the other nodes' endpoints, on purpose: upstream falls back for everyone,
    // #97081, which breaks external clients). A pod's connection meets KUBE-EXTERNAL-SERVICES'
    // DROP in INPUT; the node's own meets the empty virtual service first, at LOCAL_OUT
    // before filter OUTPUT, and IPVS answers port unreachable (`ip_vs_leave`).
    (
        "etp-local-remote",
        "LB IP from a local pod still works",
        "DROP",
        false,
    ),
    (
        "etp-local-remote",
        "external IP from the node still works, masqueraded",
        "REJECT",
        false,
    ),
];

/// Traces every row of [`FLOWS`] through the node `node(case)` gives (built once per case),
/// with the expected answers of `overrides` replacing the table's; panics listing every row
/// that differs.
pub fn run_flows(mut node: impl FnMut(&str) -> NodeState, overrides: &[Override]) {
    let mut failures = Vec::new();
    let mut nodes: Vec<(&str, NodeState)> = Vec::new();
    for f in FLOWS {
        if !nodes.iter().any(|(c, _)| *c == f.case) {
            nodes.push((f.case, node(f.case)));
        }
        let n = &nodes.iter().find(|(c, _)| *c == f.case).unwrap().1;
        let mut p = Packet::with_proto(ip(f.src), ip(f.dst), f.proto, f.dport);
        if let Some(i) = f.iif {
            p = p.arriving_on(i);
        }
        let (want, want_masq) = overrides
            .iter()
            .find(|o| o.0 == f.case && o.1 == f.name)
            .map(|o| (o.2, o.3))
            .unwrap_or((f.output, f.masq));
        let t = trace(n, &p);
        let (out, masq) = (output(&t), masqueraded(&t));
        if out != want || masq != want_masq {
            failures.push(format!(
                "{} / {}: got {out:?} masq={masq}, want {want:?} masq={want_masq}\n{t}",
                f.case, f.name
            ));
        }
        let total: f64 = t.paths.iter().map(|p| p.probability).sum();
        assert!((total - 1.0).abs() < 1e-9, "{}: p sums to {total}", f.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} flows differ:\n\n{}",
        failures.len(),
        FLOWS.len(),
        failures.join("\n\n")
    );
}
