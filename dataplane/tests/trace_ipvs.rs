//! The tracer through kube-proxy's IPVS mode: the helper iptables rules and ipsets
//! (`fixtures/trace/kube-proxy-ipvs.{rules,ipset}`) and the virtual servers
//! (`kube-proxy-ipvs.ipvs`) on the captured DUT node, its VIPs bound on a `kube-ipvs0` dummy.
//! A packet-flow table (endpoints reached or REJECT/DROP, masqueraded or not), then the
//! shape of a trace through IPVS: the hook it runs at, shares per scheduler, the way out.
//!
//! The DUT (see `common::node`): eth0 198.18.0.11/24 (client 198.18.0.101), pods 198.18.65.2-4
//! on cali devices.

mod common;

use common::node::{CALI, NET, dut, fixture, ip, masq, output, with};
use dataplane::Family;
use dataplane::ipset::Sets;
use dataplane::ipvs::IpvsState;
use dataplane::node::{Backend, NodeState};
use dataplane::route::{Route, RouteType, Scope, TableId, strip_capture_header};
use dataplane::trace::{AssumptionCode, Effect, Trace, Verdict, trace};
use dataplane::{Packet, Protocol, packet::TcpFlags};

const VIPS: &[&str] = &[
    "198.19.0.10",
    "198.19.0.20",
    "198.19.0.30",
    "198.19.0.53",
    "198.19.0.77",
];

fn body(name: &str) -> String {
    strip_capture_header(&fixture(name)).1.to_string()
}

/// The DUT with the VIPs on kube-ipvs0 (local routes, as the kernel adds them) and, when
/// `rules`, kube-proxy's iptables rules and ipsets; always the IPVS table.
fn node(rules: bool) -> NodeState {
    let mut n = dut();
    for v in VIPS {
        let mut r = Route::unicast(format!("{v}/32").parse().unwrap(), None, Some("kube-ipvs0"));
        r.kind = RouteType::Local;
        r.table = TableId::LOCAL;
        r.scope = Some(Scope::HOST);
        r.prefsrc = Some(ip(v));
        n.routes.routes.push(r);
    }
    n.sysctls.set("net.ipv4.vs.conntrack", "1");
    let n = n.with_ipvs(IpvsState::from_save(&body("kube-proxy-ipvs.ipvs")).unwrap());
    if !rules {
        return n;
    }
    with(
        n,
        Backend::Nft,
        Family::V4,
        &fixture("kube-proxy-ipvs.rules"),
    )
    .with_ipsets(Sets::parse(&body("kube-proxy-ipvs.ipset")).unwrap())
}

fn send(src: &str, proto: Protocol, dst: &str, port: u16, iif: Option<&str>) -> Packet {
    let mut p = Packet::with_proto(ip(src), ip(dst), proto, port);
    if let Some(i) = iif {
        p = p.arriving_on(i);
    }
    p
}

const CLIENT: &str = "198.18.0.101";
const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;

/// name, source, protocol, destination, port, arrival interface (`None`: sent by the node),
/// expected output, masqueraded.
type Flow = (
    &'static str,
    &'static str,
    Protocol,
    &'static str,
    u16,
    Option<&'static str>,
    &'static str,
    bool,
);

const FLOWS: &[Flow] = &[
    (
        "clusterIP from outside: rr over 2, masqueraded (KUBE-CLUSTER-IP)",
        CLIENT,
        TCP,
        "198.19.0.10",
        80,
        Some(NET),
        "198.18.65.2:8080, 198.18.65.3:8080",
        true,
    ),
    (
        "clusterIP from a pod: no masquerade",
        "198.18.65.4",
        TCP,
        "198.19.0.10",
        80,
        Some(CALI[2]),
        "198.18.65.2:8080, 198.18.65.3:8080",
        false,
    ),
    (
        "hairpin: KUBE-LOOP-BACK masquerades the path back to the sender",
        "198.18.65.2",
        TCP,
        "198.19.0.10",
        80,
        Some(CALI[0]),
        "198.18.65.2:8080, 198.18.65.3:8080",
        true,
    ),
    (
        "clusterIP from the node: IPVS at LOCAL_OUT",
        "0.0.0.0",
        TCP,
        "198.19.0.10",
        80,
        None,
        "198.18.65.2:8080, 198.18.65.3:8080",
        true,
    ),
    (
        "wrr: a weight-0 (terminating) server takes nothing",
        CLIENT,
        TCP,
        "198.19.0.20",
        80,
        Some(NET),
        "198.18.65.3:8080",
        true,
    ),
    (
        "no real servers: IPVS answers port unreachable",
        CLIENT,
        TCP,
        "198.19.0.77",
        80,
        Some(NET),
        "REJECT",
        false,
    ),
    (
        "a port the VIP does not serve: KUBE-IPVS-FILTER rejects",
        CLIENT,
        TCP,
        "198.19.0.10",
        81,
        Some(NET),
        "REJECT",
        false,
    ),
    (
        "nodePort: a virtual server on the node IP (KUBE-NODE-PORT-TCP marks)",
        CLIENT,
        TCP,
        "198.18.0.11",
        30080,
        Some(NET),
        "198.18.65.4:8080",
        true,
    ),
    (
        "UDP service",
        CLIENT,
        UDP,
        "198.19.0.53",
        53,
        Some(NET),
        "198.18.65.3:5353",
        true,
    ),
    (
        "a node port without a virtual server is the node's",
        CLIENT,
        TCP,
        "198.18.0.11",
        22,
        Some(NET),
        "LOCAL 198.18.0.11:22",
        false,
    ),
    (
        "non-service traffic passes",
        CLIENT,
        TCP,
        "198.18.65.3",
        22,
        Some(NET),
        "198.18.65.3:22",
        false,
    ),
];

#[test]
fn kube_proxy_ipvs_flows() {
    let node = node(true);
    let mut failures = Vec::new();
    for (name, src, proto, dst, port, iif, want, want_masq) in FLOWS {
        let t = trace(&node, &send(src, *proto, dst, *port, *iif));
        let (out, m) = (output(&t), masq(&t));
        if out != *want || m != *want_masq {
            failures.push(format!(
                "{name}: got {out:?} masq={m}, want {want:?} masq={want_masq}\n{t}"
            ));
        }
        let total: f64 = t.paths.iter().map(|p| p.probability).sum();
        assert!((total - 1.0).abs() < 1e-9, "{name}: probabilities {total}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn stages(t: &Trace, path: usize) -> Vec<String> {
    t.paths[path]
        .steps
        .iter()
        .map(|s| s.stage.clone())
        .collect()
}

#[test]
fn ipvs_runs_after_filter_input_and_sends_through_output_and_postrouting() {
    let t = trace(
        &node(true),
        &send(CLIENT, TCP, "198.19.0.10", 80, Some(NET)),
    );
    assert_eq!(t.paths.len(), 2, "{t}");
    for (i, p) in t.paths.iter().enumerate() {
        assert!((p.probability - 0.5).abs() < 1e-9, "{t}");
        let st = stages(&t, i);
        let pos = |s: &str| st.iter().position(|x| x == s).unwrap_or(usize::MAX);
        let ipvs = pos("ipvs");
        // filter INPUT (KUBE-IPVS-FILTER) before IPVS; OUTPUT and POSTROUTING after it
        assert!(pos("filter/INPUT") < ipvs, "{st:?}");
        assert!(ipvs < pos("filter/OUTPUT"), "{st:?}");
        assert!(pos("filter/OUTPUT") < pos("nat/POSTROUTING"), "{st:?}");
        // a second routing decision: to the real server
        assert_eq!(st.iter().filter(|s| *s == "routing").count(), 2, "{st:?}");
        let Verdict::Forwarded { src, .. } = &p.verdict else {
            panic!("{t}")
        };
        assert_eq!(src.addr, ip("198.18.0.11"), "masqueraded to the node: {t}");
        let ipvs_step = p
            .steps
            .iter()
            .find(|s| matches!(s.effect, Effect::Ipvs { .. }))
            .unwrap();
        let r = ipvs_step.rule.as_ref().unwrap();
        assert_eq!(
            (r.table.as_str(), r.chain.as_str(), r.text.as_str()),
            ("ipvs", "-t 198.19.0.10:80", "-A -t 198.19.0.10:80 -s rr")
        );
        assert_eq!(ipvs_step.probability, Some(0.5));
    }
    let text = t.to_string();
    assert!(
        text.contains("IPVS -t 198.19.0.10:80 (rr) -> 198.18.65.2:8080 (Masq)"),
        "{text}"
    );
}

#[test]
fn ipvs_needs_the_vip_to_be_local() {
    // without kube-ipvs0's addresses the VIP is routed on (to ext1): IPVS never sees it
    let mut n = node(false);
    n.routes.routes.retain(|r| r.dev() != Some("kube-ipvs0"));
    let t = trace(&n, &send(CLIENT, TCP, "198.19.0.10", 80, Some(NET)));
    assert_eq!(output(&t), "198.19.0.10:80", "{t}");
    assert!(
        !t.paths[0]
            .steps
            .iter()
            .any(|s| matches!(s.effect, Effect::Ipvs { .. }))
    );
}

#[test]
fn without_rules_ipvs_still_schedules_and_nothing_masquerades() {
    let t = trace(
        &node(false),
        &send(CLIENT, TCP, "198.19.0.10", 80, Some(NET)),
    );
    assert_eq!(output(&t), "198.18.65.2:8080, 198.18.65.3:8080", "{t}");
    assert!(!masq(&t), "{t}");
}

#[test]
fn persistence_and_unknown_sysctl_are_assumptions() {
    let mut n = node(true);
    n.sysctls = dataplane::node::Sysctls::new();
    let t = trace(&n, &send(CLIENT, TCP, "198.19.0.30", 80, Some(NET)));
    assert_eq!(output(&t), "198.18.65.4:8080", "{t}");
    let ipvs: Vec<&str> = t
        .assumptions
        .iter()
        .filter(|a| a.code == AssumptionCode::Ipvs)
        .map(|a| a.text.as_str())
        .collect();
    assert!(
        ipvs.iter().any(|a| a.contains("persistence 10800s")),
        "{ipvs:?}"
    );
    assert!(
        ipvs.iter().any(|a| a.contains("net.ipv4.vs.conntrack")),
        "{ipvs:?}"
    );
}

#[test]
fn vs_conntrack_off_leaves_the_packet_untracked_and_unmasqueraded() {
    let mut n = node(true);
    n.sysctls.set("net.ipv4.vs.conntrack", "0");
    let t = trace(&n, &send(CLIENT, TCP, "198.19.0.10", 80, Some(NET)));
    assert_eq!(output(&t), "198.18.65.2:8080, 198.18.65.3:8080", "{t}");
    assert!(!masq(&t), "MASQUERADE needs a conntrack entry: {t}");
}

#[test]
fn a_segment_without_syn_is_not_scheduled() {
    let mut p = send(CLIENT, TCP, "198.19.0.10", 80, Some(NET));
    p.tcp_flags = TcpFlags(TcpFlags::ACK);
    let t = trace(&node(false), &p);
    assert_eq!(output(&t), "LOCAL 198.19.0.10:80", "{t}");
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::Ipvs && a.text.contains("SYN")),
        "{t}"
    );
}

#[test]
fn direct_routing_sends_the_packet_unchanged_to_the_server() {
    let mut n = node(false);
    let ipvs = n.ipvs.as_mut().unwrap();
    ipvs.services = IpvsState::from_save(
        "-A -t 198.19.0.10:80 -s rr\n-a -t 198.19.0.10:80 -r 198.18.66.7:80 -g -w 1\n",
    )
    .unwrap()
    .services;
    let t = trace(&n, &send(CLIENT, TCP, "198.19.0.10", 80, Some(NET)));
    let Verdict::Forwarded {
        next_hop,
        dst,
        out_dev,
        ..
    } = &t.paths[0].verdict
    else {
        panic!("{t}")
    };
    // 198.18.66.0/24 is via node2 198.18.0.12 in the fixture: the route's gateway is the hop
    assert_eq!(
        (*next_hop, dst.addr, out_dev.as_str()),
        (ip("198.18.0.12"), ip("198.19.0.10"), NET),
        "{t}"
    );
}

#[test]
fn local_real_server_is_delivered_here() {
    let mut n = node(false);
    n.ipvs = Some(
        IpvsState::from_save(
            "-A -t 198.19.0.10:80 -s rr\n-a -t 198.19.0.10:80 -r 198.18.0.11:8080 -m -w 1\n",
        )
        .unwrap(),
    );
    let t = trace(&n, &send(CLIENT, TCP, "198.19.0.10", 80, Some(NET)));
    assert_eq!(output(&t), "LOCAL 198.18.0.11:8080", "{t}");
}

#[test]
fn trace_with_ipvs_round_trips_as_json() {
    let t = trace(
        &node(true),
        &send(CLIENT, TCP, "198.19.0.77", 80, Some(NET)),
    );
    let Verdict::Rejected { by, with } = &t.paths[0].verdict else {
        panic!("{t}")
    };
    assert_eq!((by.table.as_str(), with.icmp), ("ipvs", Some((3, 3))));
    let back: Trace = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
    assert_eq!(back, t);
}
