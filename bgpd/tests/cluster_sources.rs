//! Cluster sources from the Kubernetes API double (root; lab namespaces): the node full mesh
//! follows the Nodes, and Service external/LoadBalancer IPs are advertised while the Service
//! exists (Calico-like), with the ClusterIP range advertised as it is.
//!
//! ```text
//!   cp (lab::apiserver, 198.18.0.101:6444) <── watch ── bgpd on node1 (.11) and node2 (.12), AS 65011
//!   node1 ══ iBGP mesh (from the Nodes) ══ node2        both ── eBGP ── tor (BIRD, AS 65000, .1)
//! ```

mod support;

use std::net::{Ipv4Addr, SocketAddr};

use lab::apiserver::{ApiServer, ApiServerOpts, Kind as ApiKind};
use support::router::{Kind, Router, RouterSpec};
use support::{Bgpd, kernel_route, wait};

fn node(name: &str, ip: &str, cidr: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name },
        "spec": { "podCIDRs": [cidr] },
        "status": { "addresses": [ { "type": "InternalIP", "address": ip } ] }
    })
}

fn conf(lab: &lab::Lab, name: &str, addr: &str) -> String {
    format!(
        "asn: 65011
router_id: {addr}
listen: [{addr}]
node_name: {name}
kubeconfig: {dir}/kubeconfig
control_socket: {sock}
import: [198.18.64.0/18 le 24]
service_advertisement:
  cluster_ip_ranges: [198.19.0.0/16]
  external_ip_ranges: [198.19.255.0/24]
  load_balancer_ip_ranges: [198.19.255.0/24]
node_mesh: {{ hold_time: 9, connect_retry: 1 }}
peers:
  - {{ address: 198.18.0.1, asn: 65000, hold_time: 9, connect_retry: 1 }}
",
        dir = lab.dir().display(),
        sock = Bgpd::socket_for(lab, name).display(),
    )
}

/// The API server double on `cp`:6444 (its kubeconfig in the lab's directory) holding
/// node1 and node2.
fn api_in(lab: &lab::Lab, cp: &lab::Host) -> ApiServer {
    let cp_ip = cp.ipv4().unwrap();
    let api = cp
        .run(move || {
            ApiServer::start(ApiServerOpts {
                listen: SocketAddr::new(cp_ip.into(), 6444),
                ..Default::default()
            })
        })
        .unwrap()
        .unwrap();
    api.kubeconfig(&lab.dir().join("kubeconfig")).unwrap();
    api.apply(&node("node1", "198.18.0.11", "198.18.65.0/24"))
        .unwrap();
    api.apply(&node("node2", "198.18.0.12", "198.18.66.0/24"))
        .unwrap();
    api
}

#[test]
fn node_mesh_and_service_addresses_follow_the_api() {
    let lab = support::lab("bgpd-cluster");
    let n1 = lab.node("node1").unwrap();
    let n2 = lab.node("node2").unwrap();
    let tor = lab.router("tor").unwrap();
    let cp = lab.host("cp").unwrap();
    lab.segment("rack", &[&n1, &n2, &tor, &cp]).unwrap();
    let api = api_in(&lab, &cp);

    let nodes = [
        (Ipv4Addr::new(198, 18, 0, 11), 65011),
        (Ipv4Addr::new(198, 18, 0, 12), 65011),
    ];
    let r = Router::start(&lab, &tor, "tor", RouterSpec::new(Kind::Bird, &nodes));
    let b1 = Bgpd::start(&lab, &n1, "node1", &conf(&lab, "node1", "198.18.0.11"));
    let b2 = Bgpd::start(&lab, &n2, "node2", &conf(&lab, "node2", "198.18.0.12"));

    // the mesh session from the Nodes, and the pod CIDRs over it (iBGP, next hop the node)
    assert!(
        wait(40, || b1.state("198.18.0.12") == "Established"
            && b2.state("198.18.0.11") == "Established"),
        "{}\n{}",
        b1.try_show(&["neighbors"]).unwrap_or_default(),
        b1.logs()
    );
    assert_eq!(b1.neighbor("198.18.0.12")["description"], "node mesh");
    assert!(
        wait(15, || kernel_route(&n1, "198.18.66.0/24")
            == Some(vec!["198.18.0.12".to_string()])),
        "{:?}\n{}",
        support::kernel_routes(&n1, false),
        b1.logs()
    );
    assert!(wait(15, || kernel_route(&n2, "198.18.65.0/24")
        == Some(vec!["198.18.0.11".to_string()])));
    // the ClusterIP range at the tor from both nodes
    for n in nodes {
        assert!(
            wait(15, || r.has_route("198.19.0.0/16", n.0)),
            "{}",
            r.summary()
        );
    }
    let ups = |b: &Bgpd| {
        b.logs()
            .lines()
            .filter(|l| l.contains("session established") && l.contains("198.18.0.12"))
            .count()
    };
    assert_eq!(ups(&b1), 1);

    // a Service with an external IP and a LoadBalancer IP: advertised while it exists
    api.apply(&serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": { "type": "LoadBalancer", "ports": [ { "port": 80 } ],
                  "externalIPs": ["198.19.255.7", "198.18.200.1"] },
        "status": { "loadBalancer": { "ingress": [ { "ip": "198.19.255.20" } ] } }
    }))
    .unwrap();
    for p in ["198.19.255.7/32", "198.19.255.20/32"] {
        for n in nodes {
            assert!(
                wait(15, || r.has_route(p, n.0)),
                "{p} from {}: {}\n{}",
                n.0,
                r.summary(),
                b1.logs()
            );
        }
    }
    // 198.18.200.1 is outside external_ip_ranges
    assert!(!r.has_route("198.18.200.1/32", nodes[0].0));
    api.delete(ApiKind::Service, "default", "web").unwrap();
    for p in ["198.19.255.7/32", "198.19.255.20/32"] {
        assert!(
            wait(15, || !r.has_route(p, nodes[0].0)),
            "{p} not withdrawn"
        );
    }

    // a third Node joins the mesh and leaves it; the node1-node2 session stays up
    api.apply(&node("node3", "198.18.0.13", "198.18.67.0/24"))
        .unwrap();
    assert!(
        wait(15, || !b1.neighbor("198.18.0.13").is_null()),
        "{}",
        b1.logs()
    );
    api.delete(ApiKind::Node, "", "node3").unwrap();
    assert!(wait(15, || b1.neighbor("198.18.0.13").is_null()));
    assert_eq!(b1.state("198.18.0.12"), "Established");
    assert_eq!(ups(&b1), 1, "the mesh session was reset\n{}", b1.logs());
    let logs = b1.logs();
    assert!(logs.contains("node mesh changed"), "{logs}");
}

/// The API server's packets dropped both ways in `cp` (an iptables-nft rule in the test's own
/// namespace), or let through again. The connections stay open on both ends.
fn blackhole(cp: &lab::Host, on: bool) {
    let op = if on { "-I" } else { "-D" };
    cp.sh(&format!(
        "iptables-nft -w 5 {op} INPUT -p tcp --dport 6444 -j DROP && \
         iptables-nft -w 5 {op} OUTPUT -p tcp --sport 6444 -j DROP"
    ))
    .unwrap();
}

/// A partition that silently drops the API server's packets: bgpd's watch connection is
/// noticed dead by TCP keepalive within seconds (kube-rs' plain connector would wait for its
/// 295 s idle timeout), and a Node added during the partition joins the mesh once it heals.
#[test]
fn a_silent_api_partition_is_noticed_and_healed() {
    let lab = support::lab("bgpd-apipart");
    let n1 = lab.node("node1").unwrap();
    let cp = lab.host("cp").unwrap();
    lab.segment("rack", &[&n1, &cp]).unwrap();
    let api = api_in(&lab, &cp);
    let b1 = Bgpd::start(&lab, &n1, "node1", &conf(&lab, "node1", "198.18.0.11"));
    assert!(
        wait(30, || !b1.neighbor("198.18.0.12").is_null()),
        "{}",
        b1.logs()
    );

    blackhole(&cp, true);
    let cut = std::time::Instant::now();
    api.apply(&node("node3", "198.18.0.13", "198.18.67.0/24"))
        .unwrap();
    // keepalive after 5 s idle, then TCP_USER_TIMEOUT 10 s (bgpd::source::client)
    assert!(
        wait(30, || b1.logs().contains("cluster watch failed, retrying")),
        "the dead watch connection was not noticed\n{}",
        b1.logs()
    );
    eprintln!(
        "dead watch noticed {} ms after the partition began",
        cut.elapsed().as_millis()
    );
    assert!(
        b1.neighbor("198.18.0.13").is_null(),
        "node3 joined during the partition"
    );

    blackhole(&cp, false);
    let healed = std::time::Instant::now();
    // kube-runtime's default backoff: at most 30 s between retries
    assert!(
        wait(45, || !b1.neighbor("198.18.0.13").is_null()),
        "node3 did not join after the partition healed\n{}",
        b1.logs()
    );
    eprintln!(
        "node added during the partition in the mesh {} ms after it healed",
        healed.elapsed().as_millis()
    );
    assert!(!b1.logs().contains("ERROR"), "{}", b1.logs());
}
