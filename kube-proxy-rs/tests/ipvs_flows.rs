//! The shared packet-flow table ([`flow_table::FLOWS`]) through IPVS mode: each packet is
//! traced with `dataplane::trace` through node-a (the same node as iptables_flows.rs, plus
//! `kube-ipvs0` holding the plan's VIPs as the kernel's `local` routes) carrying each case's
//! plan: the virtual services, the ipsets, and the helper rules after the jump rules, both
//! families, `net.ipv4.vs.conntrack=1`. Rows where IPVS mode differs on purpose, each with
//! its reason, are in [`flow_table::IPVS_DIFFERS`].

mod common;
mod flow_table;

use dataplane::Family;
use dataplane::Packet;
use dataplane::ipset::Sets;
use dataplane::iptables::{RestoreMode, RestoreScript, Ruleset};
use dataplane::ipvs::IpvsState;
use dataplane::node::{Backend, NodeState};
use dataplane::route::Link;
use dataplane::trace::trace;
use flow_table::{IPVS_DIFFERS, ip, local, output, routes, run_flows, sysctls};
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

#[test]
fn packet_flows_through_the_ipvs_plan() {
    run_flows(node, IPVS_DIFFERS);
}

/// The node's own connection to an LB IP whose source ranges leave the node out: IPVS
/// schedules it at LOCAL_OUT (it never meets INPUT's firewall), and KUBE-IPVS-OUT-FILTER
/// drops it on the connection's original destination (upstream #119656).
#[test]
fn the_out_filter_drops_the_node_outside_the_source_ranges() {
    let n = node("lb-node-blocked");
    let t = trace(&n, &Packet::tcp(ip("0.0.0.0"), ip("198.19.255.60"), 443));
    assert_eq!(output(&t), "DROP", "{t}");
    assert!(t.to_string().contains("KUBE-IPVS-OUT-FILTER"), "{t}");
    // With the node inside the ranges, the LB IP is reachable (loadbalancer case).
    let n = node("loadbalancer");
    let t = trace(&n, &Packet::tcp(ip("0.0.0.0"), ip("198.19.255.12"), 443));
    assert_eq!(output(&t), "198.18.65.12:8443", "{t}");
}
