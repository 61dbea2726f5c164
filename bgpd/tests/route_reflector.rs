//! bgpd as a route reflector client (RFC 4456; root; lab namespaces): the nodes peer over
//! iBGP with two route reflectors instead of with each other, and the reflected routes keep
//! the originating node as their next hop.
//!
//! ```text
//!   pod a ── node1 (bgpd AS 65000, .11) ──┐
//!                                         rack ── rr1 (BIRD,   AS 65000, .1, rr client)
//!   pod b ── node2 (bgpd AS 65000, .12) ──┤    ── rr2 (FRR,    AS 65000, .2, route-reflector-client)
//!                                         └──── rr3 (ExaBGP, AS 65000, .3, hand-made ORIGINATOR_IDs)
//! ```
//! - node1's pod CIDRs (both families) reach node2's kernel through both reflectors with
//!   node1's address as the one next hop (not a reflector's), and the reverse; a ping from
//!   pod a to pod b goes through.
//! - One reflector stopped (SIGKILL): the other still carries the routes, the kernel keeps
//!   them.
//! - A route whose ORIGINATOR_ID is our own router ID (a reflector sent us back our own route)
//!   is ignored and counted as `originator_is_us` (RFC 4456 §8); another node's is installed.
//! - node1's pod CIDR withdrawn at its source leaves node2's kernel.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use lab::Lab;
use nix::sys::signal::Signal;
use support::router::{Kind, Router, RouterSpec};
use support::{Bgpd, kernel_route, wait};

const AS: u32 = 65000;
const METRICS: u16 = 9179;

fn manifests(lab: &Lab, node1_cidrs: &str) {
    std::fs::write(
        lab.dir().join("nodes.yaml"),
        format!(
            "apiVersion: v1
kind: Node
metadata: {{ name: node1 }}
spec: {{ podCIDRs: [{node1_cidrs}] }}
---
apiVersion: v1
kind: Node
metadata: {{ name: node2 }}
spec: {{ podCIDRs: [198.18.66.0/24, \"2001:db8:64:2::/64\"] }}
"
        ),
    )
    .unwrap();
}

fn bgpd_conf(lab: &Lab, name: &str, addr: &str) -> String {
    let peer =
        |a: &str| format!("  - {{ address: {a}, asn: {AS}, hold_time: 9, connect_retry: 1 }}\n");
    format!(
        "asn: {AS}
router_id: {addr}
listen: [{addr}]
node_name: {name}
manifests: {dir}/nodes.yaml
control_socket: {sock}
metrics_bind_address: 127.0.0.1:{METRICS}
import: [198.18.64.0/18 le 24, \"2001:db8:64::/48 le 64\"]
peers:
{p1}{p2}{p3}",
        dir = lab.dir().display(),
        sock = Bgpd::socket_for(lab, name).display(),
        p1 = peer("198.18.0.1"),
        p2 = peer("198.18.0.2"),
        p3 = peer("198.18.0.3"),
    )
}

fn hops(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

#[test]
fn nodes_reach_each_others_pods_through_routes_reflected_by_bird_and_frr() {
    let lab = support::lab("bgpd-rr");
    let n1 = lab.node("node1").unwrap();
    let n2 = lab.node("node2").unwrap();
    let hosts: Vec<_> = ["rr1", "rr2", "rr3"]
        .iter()
        .map(|n| lab.router(n).unwrap())
        .collect();
    lab.segment("rack", &[&n1, &n2, &hosts[0], &hosts[1], &hosts[2]])
        .unwrap();
    let a = lab.pod(&n1, "a").unwrap();
    let b = lab.pod(&n2, "b").unwrap();
    manifests(&lab, "198.18.65.0/24, \"2001:db8:64:1::/64\"");
    let clients = [
        (Ipv4Addr::new(198, 18, 0, 11), AS),
        (Ipv4Addr::new(198, 18, 0, 12), AS),
    ];
    let mut rrs = Vec::new();
    for (i, kind) in [Kind::Bird, Kind::Frr, Kind::ExaBgp]
        .into_iter()
        .enumerate()
    {
        let mut spec = RouterSpec::new(kind, &clients);
        spec.route_reflector = kind != Kind::ExaBgp;
        rrs.push(Router::start(
            &lab,
            &hosts[i],
            &format!("rr{}", i + 1),
            spec,
        ));
    }
    let b1 = Bgpd::start(&lab, &n1, "node1", &bgpd_conf(&lab, "node1", "198.18.0.11"));
    let b2 = Bgpd::start(&lab, &n2, "node2", &bgpd_conf(&lab, "node2", "198.18.0.12"));
    let learned = || {
        kernel_route(&n2, "198.18.65.0/24") == hops(&["198.18.0.11"])
            && kernel_route(&n1, "198.18.66.0/24") == hops(&["198.18.0.12"])
            && kernel_route(&n2, "2001:db8:64:1::/64") == hops(&["2001:db8::11"])
            && kernel_route(&n1, "2001:db8:64:2::/64") == hops(&["2001:db8::12"])
    };
    assert!(
        wait(40, learned),
        "reflected routes not in the kernels: {:?} {:?} {:?} {:?}\n{}\n{}\n{}\n{}",
        support::kernel_routes(&n1, false),
        support::kernel_routes(&n2, false),
        support::kernel_routes(&n1, true),
        support::kernel_routes(&n2, true),
        b1.logs(),
        b2.logs(),
        rrs[0].logs(),
        rrs[1].logs()
    );
    // node2 holds node1's pod CIDR from both reflectors, each with node1 as ORIGINATOR_ID
    let show = || b2.try_show(&["routes", "198.18.65.0/24"]).unwrap();
    let from = |show: &serde_json::Value| {
        let mut v: Vec<String> = show["routes"][0]["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["peer"].as_str().unwrap_or_default().to_string())
            .collect();
        v.sort();
        v
    };
    assert!(
        wait(20, || from(&show()) == ["198.18.0.1", "198.18.0.2"]),
        "{:#}\n{}",
        show(),
        rrs[1].logs()
    );
    let show = show();
    let paths = show["routes"][0]["paths"].as_array().unwrap();
    for p in paths {
        assert_eq!(p["next_hop"], "198.18.0.11", "{show:#}");
        assert_eq!(p["originator_id"], "198.18.0.11", "{show:#}");
        assert_eq!(p["cluster_list"][0], p["peer"], "{show:#}");
    }
    a.ping(b.ipv4().unwrap(), Duration::from_secs(5))
        .expect("pod a reaches pod b over reflected routes");

    // BIRD goes away: FRR's copy keeps the routes (and the kernel) as they are
    rrs[0].signal(Signal::SIGKILL);
    assert!(
        wait(20, || b2.state("198.18.0.1") != "Established"),
        "{}",
        b2.logs()
    );
    assert!(learned(), "{}\n{}", b1.logs(), b2.logs());
    a.ping(b.ipv4().unwrap(), Duration::from_secs(5))
        .expect("pod a reaches pod b through FRR's reflection alone");

    // ExaBGP reflects two routes to both nodes, one originated by each node (its ORIGINATOR_ID):
    // each node ignores the one with its own router ID and installs the other's
    for (prefix, originator) in [
        ("198.18.70.0/24", "198.18.0.11"),
        ("198.18.71.0/24", "198.18.0.12"),
    ] {
        rrs[2].exabgp_command(&format!(
            "announce route {prefix} next-hop {originator} originator-id {originator} cluster-list [ 198.18.0.3 ]"
        ));
    }
    assert!(
        wait(15, || kernel_route(&n1, "198.18.71.0/24")
            == hops(&["198.18.0.12"])
            && kernel_route(&n2, "198.18.70.0/24")
                == hops(&["198.18.0.11"])),
        "{:?} {:?}\n{}\n{}",
        support::kernel_routes(&n1, false),
        support::kernel_routes(&n2, false),
        b1.logs(),
        b2.logs()
    );
    let ours = "bgpd_prefixes_rejected_total{peer=\"198.18.0.3\",reason=\"originator_is_us\"}";
    for (b, id) in [(&b1, "198.18.0.11"), (&b2, "198.18.0.12")] {
        assert_eq!(b.metric(METRICS, ours), 1.0, "{}", b.logs());
        assert!(
            b.logs().contains(&format!(
                "has our router ID {id} as ORIGINATOR_ID (reflected back), from peer 198.18.0.3"
            )),
            "{}",
            b.logs()
        );
    }
    assert_eq!(kernel_route(&n1, "198.18.70.0/24"), None);
    assert_eq!(kernel_route(&n2, "198.18.71.0/24"), None);

    // node1's pod CIDR withdrawn at its source: gone from node2's kernel, node2's stays at node1
    manifests(&lab, "\"2001:db8:64:1::/64\"");
    assert!(
        wait(15, || kernel_route(&n2, "198.18.65.0/24").is_none()),
        "{}",
        b2.logs()
    );
    assert_eq!(kernel_route(&n1, "198.18.66.0/24"), hops(&["198.18.0.12"]));
    assert_eq!(
        kernel_route(&n2, "2001:db8:64:1::/64"),
        hops(&["2001:db8::11"])
    );
}
