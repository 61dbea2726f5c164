//! Focused checks of the IPVS render's decisions (the golden files show the whole output).

use std::net::IpAddr;

use dataplane::ipvs::{Scheduler, ServiceKey, svc_flags};
use dataplane::{Family, Protocol};

use super::*;
use crate::model::{
    Endpoint, LocalTraffic, NodeInfo, NodePortAddresses, ServicePort, ServicePortName, ServiceType,
    TrafficPolicy, categorize,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node() -> NodeInfo {
    NodeInfo {
        name: "node-a".into(),
        known: true,
        labels: Default::default(),
        zone: None,
        pod_cidrs: Vec::new(),
        addresses: Vec::new(),
        primary_ip: Some(ip("198.18.0.1")),
        local_traffic: LocalTraffic::Cidr("198.18.64.0/18".parse().unwrap()),
        node_port_addresses: NodePortAddresses::resolve(Family::V4, &[], None),
    }
}

fn svc(name: &str, vip: &str) -> ServicePort {
    ServicePort {
        name: ServicePortName::new("ns", name, "", Protocol::Tcp),
        service_type: ServiceType::NodePort,
        cluster_ip: ip(vip),
        port: 80,
        protocol: Protocol::Tcp,
        node_port: Some(30080),
        external_ips: Vec::new(),
        load_balancer_ips: Vec::new(),
        load_balancer_source_ranges: Vec::new(),
        session_affinity: SessionAffinity::None,
        external_traffic_policy: TrafficPolicy::Cluster,
        internal_traffic_policy: TrafficPolicy::Cluster,
        health_check_node_port: None,
        traffic_distribution: None,
        topology_mode: None,
    }
}

fn ep(addr: &str, node: &str) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        node_name: Some(node.into()),
        zone: None,
        zone_hints: Default::default(),
        node_hints: Default::default(),
        is_local: node == "node-a",
    }
}

fn state(ports: Vec<(ServicePort, Vec<Endpoint>)>) -> ProxyState {
    let mut s = ProxyState::empty(Family::V4, node());
    for (p, eps) in ports {
        let set = categorize(&p, eps, "node-a", None);
        s.endpoints.insert(p.name.clone(), set);
        s.services.insert(p.name.clone(), p);
    }
    s
}

fn opts() -> IpvsOptions {
    IpvsOptions {
        local_addresses: vec![ip("198.18.0.1"), ip("127.0.0.1")],
        ..IpvsOptions::default()
    }
}

fn key(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip(addr),
        port,
    }
}

#[test]
fn cluster_ip_and_node_port_services_with_masquerading_servers() {
    let p = render_ipvs(
        &state(vec![(
            svc("web", "198.19.0.10"),
            vec![ep("198.18.64.2", "node-a"), ep("198.18.65.2", "node-b")],
        )]),
        &opts(),
    );
    assert_eq!(
        p.ipvs.to_save(),
        "-A -t 198.18.0.1:30080 -s rr\n\
         -a -t 198.18.0.1:30080 -r 198.18.64.2:8080 -m -w 1\n\
         -a -t 198.18.0.1:30080 -r 198.18.65.2:8080 -m -w 1\n\
         -A -t 198.19.0.10:80 -s rr\n\
         -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n\
         -a -t 198.19.0.10:80 -r 198.18.65.2:8080 -m -w 1\n"
    );
    assert_eq!(p.vips.iter().collect::<Vec<_>>(), [&ip("198.19.0.10")]);
    let loopback = &p.set(SetName::LoopBack).unwrap().entries;
    assert!(loopback.contains("198.18.64.2,tcp:8080,198.18.64.2"));
    assert!(p.rules.contains("! -s 198.18.64.0/18"), "{}", p.rules);
}

#[test]
fn scheduler_and_affinity() {
    let mut s = svc("web", "198.19.0.10");
    s.session_affinity = SessionAffinity::ClientIp {
        timeout_seconds: 60,
    };
    let o = IpvsOptions {
        scheduler: Scheduler::Mh,
        ..opts()
    };
    let p = render_ipvs(&state(vec![(s, vec![ep("198.18.64.2", "node-a")])]), &o);
    let v = p.ipvs.service(&key("198.19.0.10", 80)).unwrap();
    assert_eq!(v.scheduler, Scheduler::Mh);
    assert_eq!(v.flags() & svc_flags::SCHED2, svc_flags::SCHED2, "mh-port");
    assert_eq!(v.persistence.unwrap().timeout, 60);
}

#[test]
fn etp_local_without_local_endpoints_drops_instead_of_falling_back() {
    let mut s = svc("web", "198.19.0.10");
    s.external_traffic_policy = TrafficPolicy::Local;
    let p = render_ipvs(
        &state(vec![(s, vec![ep("198.18.65.2", "node-b")])]),
        &opts(),
    );
    // The cluster IP still reaches the remote endpoint; the node port has no server.
    assert_eq!(
        p.ipvs
            .service(&key("198.19.0.10", 80))
            .unwrap()
            .servers
            .len(),
        1
    );
    assert!(
        p.ipvs
            .service(&key("198.18.0.1", 30080))
            .unwrap()
            .servers
            .is_empty()
    );
    assert!(
        p.rules.contains(
            "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"ns/web has no local endpoints\" \
             -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j DROP"
        ),
        "{}",
        p.rules
    );
    assert!(
        p.set(SetName::NodePortLocalTcp)
            .unwrap()
            .entries
            .contains("30080")
    );
}

#[test]
fn no_endpoints_are_rejected_by_iptables() {
    let p = render_ipvs(&state(vec![(svc("web", "198.19.0.10"), vec![])]), &opts());
    assert!(
        p.ipvs
            .service(&key("198.19.0.10", 80))
            .unwrap()
            .servers
            .is_empty()
    );
    for want in [
        "-A KUBE-SERVICES -m comment --comment \"ns/web has no endpoints\" -m tcp -p tcp -d 198.19.0.10/32 --dport 80 -j REJECT",
        "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"ns/web has no endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT",
    ] {
        assert!(p.rules.contains(want), "{want}\n{}", p.rules);
    }
}

#[test]
fn ipv6_sets_are_prefixed() {
    assert_eq!(SetName::ClusterIp.name(Family::V6), "KUBE-6-CLUSTER-IP");
    for s in SetName::ALL {
        for f in [Family::V4, Family::V6] {
            assert!(s.name(f).len() <= MAX_SET_NAME, "{}", s.name(f));
        }
    }
    assert_eq!(
        SetName::LoadBalancerSourceCidr.name(Family::V6),
        "KUBE-6-LOAD-BALANCER-SOURCE-CID"
    );
    assert_eq!(
        SetName::ClusterIp.create_options(Family::V6),
        "hash:ip,port family inet6 hashsize 1024 maxelem 65536"
    );
    assert_eq!(
        SetName::NodePortTcp.create_options(Family::V6),
        "bitmap:port range 0-65535"
    );
}
