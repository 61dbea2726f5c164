//! Packet-flow tables through the IPVS render, in the shape of iptables_flows.rs: per
//! golden case, rows of (source, protocol, destination, port, arriving interface or the
//! node itself) -> the endpoints reached, `DROP`, `REJECT` or local delivery, and whether
//! the packet is masqueraded. Each packet is traced with `dataplane::trace` through node-a
//! (the same hand-built node as iptables_flows.rs, plus `kube-ipvs0` holding the plan's
//! VIPs as the kernel's `local` routes) carrying the plan: the virtual services, the ipsets,
//! and the helper rules after the jump rules, both families, `net.ipv4.vs.conntrack=1`.
//!
//! Where IPVS mode differs from iptables mode on purpose, the row says so: external
//! services (node ports, LB and external IPs) use the external policy's endpoints whoever
//! the client is, because IPVS has one virtual service per address and port.

mod common;
mod flow_table;

use dataplane::ipset::Sets;
use dataplane::iptables::{RestoreMode, RestoreScript, Ruleset};
use dataplane::ipvs::IpvsState;
use dataplane::node::{Backend, NodeState};
use dataplane::route::Link;
use dataplane::trace::trace;
use dataplane::{Family, Packet};
use flow_table::{
    ETH0, Flow, LOCAL, NODE, OUTSIDE, OUTSIDE6, POD, POD6, PODS, TCP, UDP, ip, local, masqueraded,
    output, routes, row, sysctls,
};
use kube_proxy_rs::config::Config;
use kube_proxy_rs::render::ipvs::{IpvsOptions, IpvsPlan, jump_rules, render_ipvs};

/// The node's interface addresses (what the sync layer reads from the kernel).
const NODE_ADDRESSES: &[&str] = &["198.18.0.1", "198.18.1.1", "2001:db8::a"];

/// The plan of a golden case (the shared table, `--proxy-mode=ipvs`) for a family.
fn plan(case: &str, family: Family) -> IpvsPlan {
    let c = common::case_named(case);
    let mut args = vec![
        "kube-proxy-rs",
        "--proxy-mode=ipvs",
        "--hostname-override=node-a",
        "--cluster-cidr=198.18.64.0/18,2001:db8:40::/48",
    ];
    args.extend(c.flags);
    let cfg = Config::from_args_and_file(args, None).unwrap();
    let b = common::build_files(c.files, &cfg);
    let mut opts = IpvsOptions::from_config(&cfg);
    opts.local_addresses = NODE_ADDRESSES.iter().map(|a| ip(a)).collect();
    render_ipvs(b.state(family), &opts)
}

/// node-a carrying both families' plans of `case`.
fn node(case: &str) -> NodeState {
    let mut routes = routes();
    routes
        .links
        .push(Link::new(5, "kube-ipvs0", &["BROADCAST", "NOARP"]));
    let mut ipvs = IpvsState::default();
    let mut sets = String::new();
    let mut rulesets = Vec::new();
    for family in [Family::V4, Family::V6] {
        let p = plan(case, family);
        for v in &p.vips {
            let len = if v.is_ipv4() { 32 } else { 128 };
            routes
                .routes
                .push(local(&format!("{v}/{len}"), "kube-ipvs0", &v.to_string()));
        }
        ipvs.services.extend(p.ipvs.services.clone());
        sets.push_str(&p.ipset_text());
        let mut rs = Ruleset::new(family);
        let noflush = RestoreMode { noflush: true };
        let mut pre = String::new();
        for t in ["nat", "filter"] {
            pre.push_str(&format!("*{t}\n"));
            let mut to: Vec<&str> = jump_rules()
                .filter(|j| j.table == t)
                .map(|j| j.to)
                .collect();
            to.sort();
            to.dedup();
            for c in to {
                pre.push_str(&format!("-N {c}\n"));
            }
            pre.push_str("COMMIT\n");
        }
        for text in [pre, p.rules.clone()] {
            let script = RestoreScript::parse(family, &text).unwrap();
            rs.apply_restore(&script, noflush).unwrap();
        }
        // The jump rules, as `iptables -I CHAIN 1` leaves them (last inserted first).
        let mut jumps = String::new();
        for t in ["nat", "filter"] {
            jumps.push_str(&format!("*{t}\n"));
            for j in jump_rules().filter(|j| j.table == t) {
                jumps.push_str(&j.restore_line().replacen("-A ", "-I ", 1).replacen(
                    j.from,
                    &format!("{} 1", j.from),
                    1,
                ));
                jumps.push('\n');
            }
            jumps.push_str("COMMIT\n");
        }
        let script = RestoreScript::parse(family, &jumps).unwrap();
        rs.apply_restore(&script, noflush).unwrap();
        rulesets.push(rs);
    }
    let mut s = sysctls();
    s.set("net.ipv4.vs.conntrack", "1");
    let mut n = NodeState::new("node-a").with_sysctls(s).with_routes(routes);
    for rs in rulesets {
        n.set_iptables(Backend::Nft, rs);
    }
    n.with_ipvs(ipvs).with_ipsets(Sets::parse(&sets).unwrap())
}

#[rustfmt::skip]
const FLOWS: &[Flow] = &[
    // ClusterIP: an endpoint here and one on node-b.
    row("clusterip", "cluster IP from a local pod",
        POD, TCP, "198.19.0.10", 80, PODS, "198.18.64.10:8080, 198.18.65.10:8080", false),
    row("clusterip", "cluster IP from the node",
        NODE, TCP, "198.19.0.10", 80, LOCAL, "198.18.64.10:8080, 198.18.65.10:8080", true),
    row("clusterip", "cluster IP from outside the cluster",
        OUTSIDE, TCP, "198.19.0.10", 80, ETH0, "198.18.64.10:8080, 198.18.65.10:8080", true),
    row("clusterip", "hairpin: an endpoint to its own service",
        "198.18.64.10", TCP, "198.19.0.10", 80, PODS, "198.18.64.10:8080, 198.18.65.10:8080", true),
    row("clusterip", "cluster IP, another port: REJECT (KUBE-IPVS-FILTER)",
        POD, TCP, "198.19.0.10", 81, PODS, "REJECT", false),
    // NodePort, externalTrafficPolicy Cluster.
    row("nodeport", "node port on the node IP",
        OUTSIDE, TCP, "198.18.0.1", 30080, ETH0, "198.18.64.11:8080", true),
    row("nodeport", "node port on a second local address",
        OUTSIDE, TCP, "198.18.1.1", 30080, ETH0, "198.18.64.11:8080", true),
    row("nodeport", "node port number on a remote address",
        OUTSIDE, TCP, "198.18.0.77", 30080, ETH0, "198.18.0.77:30080", false),
    // No virtual service on 127.0.0.1: delivered to the node (KUBE-NODE-PORT still marks it
    // for masquerade by port, as upstream; MASQUERADE on lo keeps 127.0.0.1).
    row("nodeport", "no localhost node ports in IPVS mode",
        "127.0.0.1", TCP, "127.0.0.1", 30080, LOCAL, "LOCAL 127.0.0.1:30080", true),
    row("nodeport-addresses", "node port on an address in --nodeport-addresses",
        OUTSIDE, TCP, "198.18.0.1", 30080, ETH0, "198.18.64.11:8080", true),
    row("nodeport-addresses", "node port on a local address outside --nodeport-addresses",
        OUTSIDE, TCP, "198.18.1.1", 30080, ETH0, "LOCAL 198.18.1.1:30080", false),
    // LoadBalancer with externalTrafficPolicy Local, an endpoint here and one on node-b.
    row("lb-local", "LB IP from outside: local endpoint, source kept",
        OUTSIDE, TCP, "198.19.255.14", 80, ETH0, "198.18.64.14:8080", false),
    row("lb-local", "node port from outside: local endpoint, source kept",
        OUTSIDE, TCP, "198.18.0.1", 30014, ETH0, "198.18.64.14:8080", false),
    row("lb-local", "LB IP from a local pod: local endpoint (one virtual service per IP)",
        POD, TCP, "198.19.255.14", 80, PODS, "198.18.64.14:8080", false),
    row("lb-local", "health check node port is accepted",
        OUTSIDE, TCP, "198.18.0.1", 32014, ETH0, "LOCAL 198.18.0.1:32014", false),
    row("lb-local", "cluster IP from outside uses every endpoint",
        OUTSIDE, TCP, "198.19.0.14", 80, ETH0, "198.18.64.14:8080, 198.18.65.14:8080", true),
    // externalTrafficPolicy Local with endpoints only on other nodes: DROP, no fallback.
    row("etp-local-remote", "node port without local endpoints: DROP",
        OUTSIDE, TCP, "198.18.0.1", 30110, ETH0, "DROP", false),
    row("etp-local-remote", "LB IP without local endpoints: DROP",
        OUTSIDE, TCP, "198.19.255.111", 80, ETH0, "DROP", false),
    row("etp-local-remote", "external IP without local endpoints: DROP",
        OUTSIDE, TCP, "198.19.255.110", 80, ETH0, "DROP", false),
    // loadBalancerSourceRanges 198.19.255.128/25 and 198.18.0.0/24.
    row("loadbalancer", "LB IP from an allowed range",
        "198.19.255.200", TCP, "198.19.255.12", 443, ETH0, "198.18.65.12:8443", true),
    row("loadbalancer", "LB IP from the node network (allowed)",
        "198.18.0.50", TCP, "198.19.255.12", 443, ETH0, "198.18.65.12:8443", true),
    row("loadbalancer", "LB IP from a blocked source: DROP",
        OUTSIDE, TCP, "198.19.255.12", 443, ETH0, "DROP", false),
    row("loadbalancer", "node port ignores source ranges",
        OUTSIDE, TCP, "198.18.0.1", 30443, ETH0, "198.18.65.12:8443", true),
    row("loadbalancer", "ipMode Proxy ingress is not captured",
        OUTSIDE, TCP, "198.19.255.13", 443, ETH0, "198.19.255.13:443", false),
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
];

#[test]
fn packet_flows_through_the_ipvs_plan() {
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
        let t = trace(n, &p);
        let (out, masq) = (output(&t), masqueraded(&t));
        if out != f.output || masq != f.masq {
            failures.push(format!(
                "{} / {}: got {out:?} masq={masq}, want {:?} masq={}\n{t}",
                f.case, f.name, f.output, f.masq
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} flows differ:\n\n{}",
        failures.len(),
        FLOWS.len(),
        failures.join("\n\n")
    );
}
