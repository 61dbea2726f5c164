//! Kernel vs tracer on nftables (NEEDS ROOT: builds a lab in network namespaces).
//!
//! The differential topology of `system_tests::topo`; each case loads kube-proxy-style
//! nftables rulesets (`system_tests::kube_nft`, upstream's nftables-mode layout) and plain
//! `inet` tables with `nft -f`, alone or beside iptables-nft rules, captures the DUT back
//! (`nft -j list ruleset` included), traces the request and sends it for real.
//! `CASE=text` runs the cases whose name contains it, `SHOW=1` prints every trace.

#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::node::Backend::Nft;
use system_tests::kube::{self, Svc};
use system_tests::kube_nft::{Layout, ruleset};
use system_tests::{Case, DutLab, From, Proto, Runner, Send};

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 10));
const LB: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 19, 255, 1));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x19, 0, 0, 0, 0, 0x10));
const PODS: &str = "198.18.64.0/18";
const PODS6: &str = "2001:db8:64::/48";
const SERVICES: &str = "198.19.0.0/16";
const SERVICES6: &str = "2001:db8:19::/64";

fn tcp(from: From, dst: IpAddr, port: u16) -> Send {
    Send::new(from, Proto::Tcp, dst, port)
}

fn udp(from: From, dst: IpAddr, port: u16) -> Send {
    Send::new(from, Proto::Udp, dst, port)
}

fn svc(id: &'static str, vip: IpAddr, port: u16, proto: &'static str, eps: &[IpAddr]) -> Svc {
    Svc {
        id,
        vip,
        port,
        proto,
        endpoints: eps
            .iter()
            .map(|a| (*a, if proto == "udp" { 5353 } else { 8080 }))
            .collect(),
        node_port: None,
    }
}

fn kp(services: Vec<Svc>) -> String {
    ruleset(&Layout::new(services, PODS, SERVICES))
}

/// An `inet` table `name` with one base chain at `hook`/`prio` and these rules.
fn inet(name: &str, hook: &str, prio: i32, policy: &str, rules: &[&str]) -> String {
    format!(
        "table inet {name} {{\n\tchain {hook} {{\n\t\ttype filter hook {hook} priority {prio}; policy {policy};\n{}\t}}\n}}\n",
        rules
            .iter()
            .map(|r| format!("\t\t{r}\n"))
            .collect::<String>()
    )
}

fn cases(ep: &[IpAddr], ep6: &[IpAddr], dut: IpAddr) -> Vec<Case> {
    let three = [ep[0], ep[1], ep[2]];
    let with_np = |mut s: Svc, np: u16| {
        s.node_port = Some(np);
        s
    };
    let est = "ct state established,related accept";
    vec![
        // ---- kube-proxy nftables mode -----------------------------------------------------
        Case::new("service-ips vmap hit: clusterIP, masqueraded", tcp(From::Client, VIP, 80))
            .nft(&kp(vec![svc("ONE", VIP, 80, "tcp", &three[..1])]))
            .want(&["forwarded"]),
        Case::new("numgen random mod 3 over 3 endpoints", tcp(From::Client, VIP, 80))
            .nft(&kp(vec![svc("THREE", VIP, 80, "tcp", &three)]))
            .want(&["forwarded"])
            .repeat(30),
        Case::new("numgen random mod 2, UDP", udp(From::Client, VIP, 53))
            .nft(&kp(vec![svc("DNS", VIP, 53, "udp", &three[1..])]))
            .want(&["forwarded"])
            .repeat(20),
        Case::new("clusterIP from a pod: no masquerade", tcp(From::Pod(1), VIP, 80))
            .nft(&kp(vec![svc("ONE", VIP, 80, "tcp", &three[..1])]))
            .want(&["forwarded"]),
        Case::new("hairpin: the endpoint to its own service, masqueraded", tcp(From::Pod(0), VIP, 80))
            .nft(&kp(vec![svc("ONE", VIP, 80, "tcp", &three[..1])]))
            .want(&["forwarded"]),
        Case::new("local-out clusterIP (nat-output), masqueraded", tcp(From::Dut, VIP, 80))
            .nft(&kp(vec![svc("ONE", VIP, 80, "tcp", &three[2..])]))
            .want(&["forwarded"]),
        Case::new("nodePort: fib daddr type local, service-nodeports vmap", tcp(From::Client, dut, 30080))
            .nft(&kp(vec![with_np(svc("NP", VIP, 80, "tcp", &three[1..2]), 30080)]))
            .want(&["forwarded"]),
        Case::new("no endpoints: goto reject-chain in filter-forward", tcp(From::Client, VIP, 80))
            .nft(&kp(vec![svc("EMPTY", VIP, 80, "tcp", &[])]))
            .want(&["rejected"]),
        Case::new("no endpoints, from the node: reject in filter-output", tcp(From::Dut, VIP, 80))
            .nft(&kp(vec![svc("EMPTY", VIP, 80, "tcp", &[])]))
            .want(&["rejected"]),
        Case::new("nodePort without endpoints: reject in filter-input", tcp(From::Client, dut, 30077))
            .nft(&kp(vec![with_np(svc("EMPTY", VIP, 80, "tcp", &[]), 30077)]))
            .want(&["rejected"]),
        Case::new("undefined port of a clusterIP: cluster-ips-check rejects", tcp(From::Client, VIP, 81))
            .nft(&kp(vec![svc("ONE", VIP, 80, "tcp", &three[..1])]))
            .want(&["rejected"]),
        Case::new("unallocated clusterIP: cluster-ips-check drops", tcp(From::Client, "198.19.0.99".parse().unwrap(), 80))
            .nft(&kp(vec![svc("ONE", VIP, 80, "tcp", &three[..1])]))
            .want(&["dropped"]),
        Case::new("load balancer IP from an allowed source range", tcp(From::Client, LB, 80))
            .nft(&ruleset(
                &Layout::new(vec![svc("LB", VIP, 80, "tcp", &three[..2])], PODS, SERVICES)
                    .load_balancer(0, LB, &["198.18.0.0/24"]),
            ))
            .want(&["forwarded"])
            .repeat(10),
        Case::new("load balancer IP from outside the source ranges: firewall drop", tcp(From::Ext1, LB, 80))
            .nft(&ruleset(
                &Layout::new(vec![svc("LB", VIP, 80, "tcp", &three[..2])], PODS, SERVICES)
                    .load_balancer(0, LB, &["198.18.0.0/24"]),
            ))
            .want(&["dropped"]),
        Case::new("IPv6 clusterIP, numgen mod 2", tcp(From::Client, VIP6, 80))
            .nft(&ruleset(&Layout::new(vec![svc("SIX", VIP6, 80, "tcp", &ep6[..2])], PODS6, SERVICES6)))
            .want(&["forwarded"])
            .repeat(20),
        // ---- plain nft tables ---------------------------------------------------------------
        Case::new("inet filter forward drop", tcp(From::Client, ep[0], 80))
            .nft(&inet("fw", "forward", 0, "accept", &[&format!("ip daddr {} tcp dport 80 counter drop", ep[0])]))
            .want(&["dropped"]),
        Case::new("policy drop; a jump, a return and an accept", tcp(From::Client, ep[0], 8080))
            .nft(&format!(
                "table inet fw {{\n\tchain forward {{\n\t\ttype filter hook forward priority 0; policy drop;\n\t\t{est}\n\t\tjump allow\n\t}}\n\
                 \tchain allow {{\n\t\ttcp dport 80 return\n\t\tip daddr {} accept\n\t}}\n}}\n",
                ep[0]
            ))
            .want(&["forwarded"]),
        Case::new("policy drop after a return", tcp(From::Client, ep[0], 80))
            .nft(&format!(
                "table inet fw {{\n\tchain forward {{\n\t\ttype filter hook forward priority 0; policy drop;\n\t\t{est}\n\t\tjump allow\n\t}}\n\
                 \tchain allow {{\n\t\ttcp dport 80 return\n\t\tip daddr {} accept\n\t}}\n}}\n",
                ep[0]
            ))
            .want(&["dropped"]),
        Case::new("reject with tcp reset in an inet input chain", tcp(From::Client, dut, 80))
            .nft(&inet("fw", "input", 0, "accept", &["tcp dport 80 reject with tcp reset"]))
            .want(&["rejected"]),
        Case::new("equal priority: the table created last runs first (no drop)", tcp(From::Client, ep[0], 80))
            .nft(&inet("a", "forward", 0, "accept", &["meta mark set 0x1"]))
            .nft(&inet("b", "forward", 0, "accept", &["meta mark 0x1 drop"]))
            .want(&["forwarded"]),
        Case::new("equal priority: the table created last runs first (drop)", tcp(From::Client, ep[0], 80))
            .nft(&inet("b", "forward", 0, "accept", &["meta mark 0x1 drop"]))
            .nft(&inet("a", "forward", 0, "accept", &["meta mark set 0x1"]))
            .want(&["dropped"]),
        // ---- iptables-nft and nft side by side ----------------------------------------------
        Case::new("coexisting: nft kube-proxy DNAT, iptables-nft REJECT in FORWARD", tcp(From::Client, VIP, 80))
            .nft(&kp(vec![svc("ONE", VIP, 80, "tcp", &three[..1])]))
            .rules(Nft, &kube::filter("ACCEPT", &[], &[&format!("-A FORWARD -d {} -j REJECT --reject-with icmp-host-prohibited", ep[0])]))
            .want(&["rejected"]),
        Case::new("coexisting: nft marks at -10, iptables-nft accepts the mark (policy DROP)", tcp(From::Client, ep[0], 80))
            .nft(&inet("marker", "forward", -10, "accept", &[&format!("ip daddr {} meta mark set 0x10", ep[0])]))
            .rules(Nft, &kube::filter("DROP", &[], &[
                "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A FORWARD -m mark --mark 0x10 -j ACCEPT",
            ]))
            .want(&["forwarded"]),
        Case::new("coexisting: unmarked traffic meets the iptables-nft policy", tcp(From::Client, ep[1], 80))
            .nft(&inet("marker", "forward", -10, "accept", &[&format!("ip daddr {} meta mark set 0x10", ep[0])]))
            .rules(Nft, &kube::filter("DROP", &[], &[
                "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A FORWARD -m mark --mark 0x10 -j ACCEPT",
            ]))
            .want(&["dropped"]),
        Case::new("coexisting: iptables-nft DNAT and an nft nat chain at -150 (nft binds first)", tcp(From::Client, VIP, 80))
            .rules(Nft, &kube::table("nat", &[&format!("-A PREROUTING -d {VIP}/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination {}:8080", ep[1])]))
            .nft(&format!(
                "table ip early {{\n\tchain pre {{\n\t\ttype nat hook prerouting priority -150; policy accept;\n\t\tip daddr {VIP} tcp dport 80 dnat to {}:8080\n\t}}\n}}\n",
                ep[2]
            ))
            .want(&["forwarded"]),
    ]
}

#[test]
fn kernel_differential_nft_cases() {
    let lab = DutLab::build("diffnft").expect("build the lab (needs root)");
    let ip4 = |h: &lab::Host| IpAddr::V4(h.ipv4().expect("ipv4"));
    let ip6 = |h: &lab::Host| IpAddr::V6(h.ipv6().expect("ipv6"));
    let ep: Vec<IpAddr> = lab.eps.iter().map(ip4).collect();
    let ep6: Vec<IpAddr> = lab.eps.iter().map(ip6).collect();
    let runner = Runner::new(&lab);
    let all = cases(&ep, &ep6, ip4(&lab.dut));
    assert!(all.len() >= 12, "{} cases", all.len());
    let only = std::env::var("CASE").ok();
    let mut failed = Vec::new();
    let start = std::time::Instant::now();
    for c in all
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| c.name.contains(o)))
    {
        let r = runner.run(c);
        println!(
            "{:>5} ms  {}  {}",
            r.elapsed.as_millis(),
            if r.ok { "ok  " } else { "FAIL" },
            r.name
        );
        if !r.ok || std::env::var("SHOW").is_ok() {
            println!("{}\n{}", r.detail, r.trace);
        }
        if !r.ok {
            failed.push(format!("{}: {}", r.name, r.detail));
        }
    }
    println!("{} cases in {:?}", all.len(), start.elapsed());
    assert!(
        failed.is_empty(),
        "{} mismatches:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
