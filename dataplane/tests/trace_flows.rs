//! Packet-flow tables for the tracer on a kube-proxy-shaped dump (`fixtures/trace/
//! kube-proxy.rules`) loaded onto the captured DUT node: source, destination, protocol ->
//! expected endpoints (with probabilities) or DROP / REJECT, masqueraded or not. The same
//! shape as kube-proxy's own `runPacketFlowTests`.

mod common;

use common::node::{CALI, EXT1, NET, dut, fixture, ip, masq, output, with};
use dataplane::node::Backend;
use dataplane::trace::{AssumptionCode, TraceOptions, trace, trace_with};
use dataplane::{Family, Packet, Protocol};

struct Flow {
    name: &'static str,
    src: &'static str,
    proto: Protocol,
    dst: &'static str,
    dport: u16,
    /// Arrival interface; `None`: sent by the node itself.
    iif: Option<&'static str>,
    output: &'static str,
    masq: bool,
}

#[allow(clippy::too_many_arguments)] // one argument per table column
const fn flow(
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

const CLIENT: &str = "198.18.0.101";
const POD: &str = "198.18.65.2"; // ep1, behind CALI[0]
const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;

const FLOWS: &[Flow] = &[
    flow(
        "clusterIP from outside the cluster",
        CLIENT,
        TCP,
        "198.19.0.41",
        80,
        Some(NET),
        "198.18.65.2:8080, 198.18.65.3:8080, 198.18.65.4:8080",
        true,
    ),
    flow(
        "clusterIP from a pod",
        POD,
        TCP,
        "198.19.0.41",
        80,
        Some(CALI[0]),
        "198.18.65.2:8080, 198.18.65.3:8080, 198.18.65.4:8080",
        true, /* hairpin to itself */
    ),
    flow(
        "clusterIP, wrong port",
        CLIENT,
        TCP,
        "198.19.0.41",
        81,
        Some(NET),
        "198.19.0.41:81",
        false,
    ),
    flow(
        "clusterIP from the node",
        "0.0.0.0",
        TCP,
        "198.19.0.41",
        80,
        None,
        "198.18.65.2:8080, 198.18.65.3:8080, 198.18.65.4:8080",
        true,
    ),
    flow(
        "remote endpoint",
        CLIENT,
        TCP,
        "198.19.0.42",
        80,
        Some(NET),
        "198.18.66.2:8080",
        true,
    ),
    flow(
        "nodePort on the node IP",
        CLIENT,
        TCP,
        "198.18.0.11",
        30002,
        Some(NET),
        "198.18.66.2:8080",
        true,
    ),
    flow(
        "nodePort on another local IP",
        CLIENT,
        TCP,
        "198.18.1.1",
        30002,
        Some(NET),
        "198.18.66.2:8080",
        true,
    ),
    flow(
        "nodePort on a non-local IP",
        CLIENT,
        TCP,
        "198.18.65.3",
        30002,
        Some(NET),
        "198.18.65.3:30002",
        false,
    ),
    flow(
        "nodePort, wrong port",
        CLIENT,
        TCP,
        "198.18.0.11",
        30009,
        Some(NET),
        "LOCAL 198.18.0.11:30009",
        false,
    ),
    flow(
        "service without endpoints",
        CLIENT,
        TCP,
        "198.19.0.43",
        80,
        Some(NET),
        "REJECT",
        false,
    ),
    flow(
        "service without endpoints, from the node",
        "0.0.0.0",
        TCP,
        "198.19.0.43",
        80,
        None,
        "REJECT",
        false,
    ),
    flow(
        "nodePort of a service without endpoints",
        CLIENT,
        TCP,
        "198.18.0.11",
        30003,
        Some(NET),
        "REJECT",
        false,
    ),
    flow(
        "UDP service",
        CLIENT,
        UDP,
        "198.19.0.53",
        53,
        Some(NET),
        "198.18.65.2:5353, 198.18.65.3:5353",
        true,
    ),
    flow(
        "UDP service from a pod",
        "198.18.65.4",
        UDP,
        "198.19.0.53",
        53,
        Some(CALI[2]),
        "198.18.65.2:5353, 198.18.65.3:5353",
        false,
    ),
    flow(
        "TCP to the UDP service",
        CLIENT,
        TCP,
        "198.19.0.53",
        53,
        Some(NET),
        "198.19.0.53:53",
        false,
    ),
    flow(
        "session affinity, no history",
        CLIENT,
        TCP,
        "198.19.0.45",
        80,
        Some(NET),
        "198.18.65.2:8080, 198.18.65.3:8080",
        true,
    ),
    flow(
        "external IP",
        CLIENT,
        TCP,
        "198.19.255.46",
        80,
        Some(NET),
        "198.18.65.4:8080",
        true,
    ),
    flow(
        "external IP from a pod (still masqueraded)",
        "198.18.65.3",
        TCP,
        "198.19.255.46",
        80,
        Some(CALI[1]),
        "198.18.65.4:8080",
        true,
    ),
    flow(
        "non-service traffic passes",
        CLIENT,
        TCP,
        "198.18.65.3",
        22,
        Some(NET),
        "198.18.65.3:22",
        false,
    ),
    flow(
        "no route",
        "198.18.1.2",
        TCP,
        "198.18.200.1",
        80,
        Some(EXT1),
        "NO_ROUTE",
        false,
    ),
];

#[test]
fn kube_proxy_dump_round_trips() {
    let text = fixture("kube-proxy.rules");
    let rs = dataplane::iptables::Ruleset::parse(Family::V4, &text).unwrap();
    assert_eq!(rs.to_save(), text);
}

#[test]
fn kube_proxy_flows() {
    let node = with(
        dut(),
        Backend::Nft,
        Family::V4,
        &fixture("kube-proxy.rules"),
    );
    let mut failures = Vec::new();
    for f in FLOWS {
        let mut p = Packet::with_proto(ip(f.src), ip(f.dst), f.proto, f.dport);
        if let Some(i) = f.iif {
            p = p.arriving_on(i);
        }
        let t = trace(&node, &p);
        let (out, m) = (output(&t), masq(&t));
        if out != f.output || m != f.masq {
            failures.push(format!(
                "{}: got {out:?} masq={m}, want {:?} masq={}\n{t}",
                f.name, f.output, f.masq
            ));
        }
        let total: f64 = t.paths.iter().map(|p| p.probability).sum();
        assert!(
            (total - 1.0).abs() < 1e-9,
            "{}: probabilities sum to {total}",
            f.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn statistic_gives_each_endpoint_its_share() {
    let node = with(
        dut(),
        Backend::Nft,
        Family::V4,
        &fixture("kube-proxy.rules"),
    );
    let p = Packet::tcp(ip(CLIENT), ip("198.19.0.41"), 80).arriving_on(NET);
    let t = trace(&node, &p);
    let eps = t.endpoints();
    assert_eq!(eps.len(), 3);
    for e in &eps {
        assert!((e.probability - 1.0 / 3.0).abs() < 1e-6, "{e:?}");
        assert!(e.source_rewritten);
        assert_eq!(e.kind, "forwarded");
    }
    // the masquerade picks eth0's address toward the pod's on-link hop? no: the pod devices
    // have no IPv4 address, so the first global address of another device (eth0's).
    assert!(
        t.paths
            .iter()
            .all(|p| p.final_packet.src == ip("198.18.0.11"))
    );
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::NatPortRandom)
    );
}

#[test]
fn hairpin_masquerades_only_the_path_back_to_the_sender() {
    let node = with(
        dut(),
        Backend::Nft,
        Family::V4,
        &fixture("kube-proxy.rules"),
    );
    let p = Packet::tcp(ip(POD), ip("198.19.0.41"), 80).arriving_on(CALI[0]);
    let t = trace(&node, &p);
    for path in &t.paths {
        let back_to_sender = path.final_packet.dst == ip(POD);
        assert_eq!(
            path.source_rewritten(&t.packet),
            back_to_sender,
            "{}",
            path.verdict
        );
    }
}

#[test]
fn session_affinity_follows_the_recent_list_when_told() {
    let node = with(
        dut(),
        Backend::Nft,
        Family::V4,
        &fixture("kube-proxy.rules"),
    );
    let p = Packet::tcp(ip(CLIENT), ip("198.19.0.45"), 80).arriving_on(NET);
    let t = trace(&node, &p);
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::RecentHistory && a.text.contains("no history")),
        "{t}"
    );
    let mut opts = TraceOptions::default();
    opts.recent_listed
        .insert("KUBE-SEP-UKSFD7AGPMPPLUHC".to_string());
    let t = trace_with(&node, &p, &opts);
    assert_eq!(output(&t), "198.18.65.3:8080", "{t}");
    assert!(
        t.assumptions.iter().any(|a| a.text.contains("as told")),
        "{t}"
    );
}

#[test]
fn ipv6_dump_in_the_same_layout() {
    let v6 = fixture("kube-proxy.rules")
        .split("*nat")
        .nth(1)
        .map(|nat| {
            format!("*nat{nat}")
                .replace("198.19.0.41/32", "2001:db8:19::41/128")
                .replace("198.18.64.0/18", "2001:db8:64::/48")
                .replace("198.18.65.2/32", "2001:db8:64:1::2/128")
                .replace("198.18.65.2:8080", "[2001:db8:64:1::2]:8080")
                .replace("198.18.65.3/32", "2001:db8:64:1::3/128")
                .replace("198.18.65.3:8080", "[2001:db8:64:1::3]:8080")
                .replace("198.18.65.4/32", "2001:db8:64:1::4/128")
                .replace("198.18.65.4:8080", "[2001:db8:64:1::4]:8080")
        })
        .unwrap();
    let v6: String = v6
        .lines()
        .filter(|l| !l.contains("198."))
        .map(|l| format!("{l}\n"))
        .collect();
    let node = with(dut(), Backend::Legacy, Family::V6, &v6);
    let p = Packet::tcp(ip("2001:db8::101"), ip("2001:db8:19::41"), 80).arriving_on(NET);
    let t = trace(&node, &p);
    assert_eq!(
        output(&t),
        "[2001:db8:64:1::2]:8080, [2001:db8:64:1::3]:8080, [2001:db8:64:1::4]:8080",
        "{t}"
    );
    assert!(masq(&t), "{t}");
}
