//! Kernel vs tracer, hand-written cases (NEEDS ROOT: builds a lab in network namespaces).
//!
//! One topology (see `system_tests::topo`), every case loaded into the DUT, captured back,
//! traced, and sent for real; the test fails with every mismatch listed. The tracer follows the
//! request; a case whose rules could drop the answer on its way back accepts ESTABLISHED
//! traffic first, as real rulesets do. `CASE=text` runs the cases whose name contains it,
//! `SHOW=1` prints every trace.

#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::node::Backend::{Legacy, Nft};
use system_tests::kube::{self, Svc};
use system_tests::topo::{ANYCAST4, ANYCAST6, CLIENT_ALT4};
use system_tests::{Case, DutLab, From, Proto, Runner, Send, Setup};

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 10));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x19, 0, 0, 0, 0, 0x10));
const PODS: &str = "198.18.64.0/18";
const PODS6: &str = "2001:db8:64::/48";

struct Net {
    ep: Vec<IpAddr>,
    ep6: Vec<IpAddr>,
    dut: IpAddr,
    ext1: IpAddr,
    ext2: IpAddr,
    ext2_6: IpAddr,
    if_net: String,
    if_ext1: String,
    if_ext2: String,
}

fn tcp(from: From, dst: IpAddr, port: u16) -> Send {
    Send::new(from, Proto::Tcp, dst, port)
}

fn udp(from: From, dst: IpAddr, port: u16) -> Send {
    Send::new(from, Proto::Udp, dst, port)
}

fn svc(
    id: &'static str,
    vip: IpAddr,
    port: u16,
    proto: &'static str,
    eps: &[IpAddr],
    np: Option<u16>,
) -> Svc {
    Svc {
        id,
        vip,
        port,
        proto,
        endpoints: eps
            .iter()
            .map(|a| (*a, if proto == "udp" { 5353 } else { 8080 }))
            .collect(),
        node_port: np,
    }
}

fn cases(n: &Net) -> Vec<Case> {
    let a = ANYCAST4.into();
    let a6: IpAddr = ANYCAST6.into();
    let fwd_reject = |dst: IpAddr, with: &str| {
        kube::filter(
            "ACCEPT",
            &[],
            &[&format!(
                "-A FORWARD -d {dst} -j REJECT --reject-with {with}"
            )],
        )
    };
    let to_ext2 = |table: u32| Setup::route(&format!("{ANYCAST4} via {} table {table}", n.ext2));
    let three = [n.ep[0], n.ep[1], n.ep[2]];
    vec![
        // ---- kube-proxy NAT ------------------------------------------------------------
        Case::new("clusterip 1 endpoint, masqueraded", tcp(From::Client, VIP, 80))
            .rules(Nft, &kube::nat(&[svc("ONE", VIP, 80, "tcp", &three[..1], None)], PODS))
            .want(&["forwarded"]),
        Case::new("clusterip 3 endpoints (statistic), nft", tcp(From::Client, VIP, 80))
            .rules(Nft, &kube::nat(&[svc("THREE", VIP, 80, "tcp", &three, None)], PODS))
            .want(&["forwarded"])
            .repeat(30),
        Case::new("clusterip 3 endpoints UDP, legacy", udp(From::Client, VIP, 53))
            .rules(Legacy, &kube::nat(&[svc("DNS", VIP, 53, "udp", &three, None)], PODS))
            .want(&["forwarded"])
            .repeat(30),
        Case::new("clusterip from a pod: no masquerade", tcp(From::Pod(1), VIP, 80))
            .rules(Nft, &kube::nat(&[svc("ONE", VIP, 80, "tcp", &three[..1], None)], PODS))
            .want(&["forwarded"]),
        Case::new("hairpin: pod to its own service", tcp(From::Pod(0), VIP, 80))
            .rules(Nft, &kube::nat(&[svc("ONE", VIP, 80, "tcp", &three[..1], None)], PODS))
            .want(&["forwarded"]),
        Case::new("nodeport via addrtype LOCAL", tcp(From::Client, n.dut, 30080))
            .rules(Nft, &kube::nat(&[svc("NP", VIP, 80, "tcp", &three[1..2], Some(30080))], PODS))
            .want(&["forwarded"]),
        Case::new("service without endpoints: REJECT", tcp(From::Client, VIP, 80))
            .rules(Nft, &kube::no_endpoints(VIP, 80, "tcp"))
            .want(&["rejected"]),
        Case::new("local-out DNAT (nat OUTPUT) with masquerade", tcp(From::Dut, VIP, 80))
            .rules(Nft, &kube::nat(&[svc("ONE", VIP, 80, "tcp", &three[2..3], None)], PODS))
            .want(&["forwarded"]),
        Case::new("stale UDP conntrack entry pins a deleted endpoint", udp(From::Client, VIP, 53))
            .warmup(Nft, &kube::nat(&[svc("DNS", VIP, 53, "udp", &three[..1], None)], PODS), 45053)
            .rules(Nft, &kube::nat(&[svc("DNS", VIP, 53, "udp", &three[1..2], None)], PODS))
            .want(&["forwarded"]),
        Case::new("local-out REDIRECT loops back through lo", tcp(From::Dut, "198.19.0.20".parse().unwrap(), 80))
            .rules(Nft, &kube::table("nat", &["-A OUTPUT -d 198.19.0.20/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 80"]))
            .want(&["delivered"]),
        Case::new("SNAT to the uplink address", udp(From::Client, n.ext1, 53))
            .rules(Nft, &kube::table("nat", &[&format!("-A POSTROUTING -o {} -j SNAT --to-source {}", n.if_ext1, "198.18.1.1")]))
            .want(&["forwarded"]),
        // ---- REJECT variants -----------------------------------------------------------
        Case::new("REJECT icmp-port-unreachable (UDP)", udp(From::Client, n.ep[0], 53))
            .rules(Nft, &fwd_reject(n.ep[0], "icmp-port-unreachable"))
            .want(&["rejected"]),
        Case::new("REJECT icmp-host-prohibited", tcp(From::Client, n.ep[0], 80))
            .rules(Nft, &fwd_reject(n.ep[0], "icmp-host-prohibited"))
            .want(&["rejected"]),
        Case::new("REJECT icmp-net-unreachable", tcp(From::Client, n.ep[0], 80))
            .rules(Legacy, &fwd_reject(n.ep[0], "icmp-net-unreachable"))
            .want(&["rejected"]),
        Case::new("REJECT tcp-reset", tcp(From::Client, n.ep[0], 80))
            .rules(Nft, &kube::filter("ACCEPT", &[], &[&format!("-A FORWARD -d {} -p tcp -j REJECT --reject-with tcp-reset", n.ep[0])]))
            .want(&["rejected"]),
        Case::new("REJECT icmp-host-unreachable in INPUT", tcp(From::Client, n.dut, 80))
            .rules(Nft, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-host-unreachable\nCOMMIT\n")
            .want(&["rejected"]),
        Case::new("ICMP echo rejected with icmp-net-prohibited", Send::new(From::Client, Proto::Ping, n.ep[1], 0))
            .rules(Nft, &kube::filter("ACCEPT", &[], &["-A FORWARD -p icmp -j REJECT --reject-with icmp-net-prohibited"]))
            .want(&["rejected"]),
        Case::new("ICMP echo forwarded", Send::new(From::Client, Proto::Ping, n.ep[1], 0)).want(&["forwarded"]),
        // ---- FORWARD policy ------------------------------------------------------------
        Case::new("FORWARD policy DROP, no accept", tcp(From::Client, n.ep[0], 80))
            .rules(Nft, &kube::filter("DROP", &[], &[]))
            .want(&["dropped"]),
        Case::new("FORWARD policy DROP with an ACCEPT for pods", tcp(From::Client, n.ep[0], 80))
            .rules(Nft, &kube::filter("DROP", &[], &[
                "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                &format!("-A FORWARD -d {PODS} -j ACCEPT"),
            ]))
            .want(&["forwarded"]),
        Case::new("legacy DROP wins over nft ACCEPT (both back ends)", tcp(From::Client, n.ep[0], 80))
            .rules(Nft, &kube::filter("ACCEPT", &[], &[&format!("-A FORWARD -d {} -j ACCEPT", n.ep[0])]))
            .rules(Legacy, &kube::filter("ACCEPT", &[], &[&format!("-A FORWARD -d {} -j DROP", n.ep[0])]))
            .want(&["dropped"]),
        // ---- marks and policy routing ------------------------------------------------------
        Case::new("mangle mark -> fwmark rule -> table 100", tcp(From::Client, a, 80))
            .rules(Nft, &kube::table("mangle", &[&format!("-A PREROUTING -d {ANYCAST4}/32 -p tcp -m tcp --dport 80 -j MARK --set-mark 0x10")]))
            .setup(to_ext2(100))
            .setup(Setup::rule("fwmark 0x10 lookup 100 pref 100", false))
            .want(&["forwarded"]),
        Case::new("mark not set for another port: main table", tcp(From::Client, a, 8080))
            .rules(Nft, &kube::table("mangle", &[&format!("-A PREROUTING -d {ANYCAST4}/32 -p tcp -m tcp --dport 80 -j MARK --set-mark 0x10")]))
            .setup(to_ext2(100))
            .setup(Setup::rule("fwmark 0x10 lookup 100 pref 100", false))
            .want(&["forwarded"]),
        Case::new("CONNMARK restore/save and fwmark routing", tcp(From::Client, a, 80))
            .rules(Legacy, &kube::table("mangle", &[
                "-A PREROUTING -j CONNMARK --restore-mark",
                "-A PREROUTING -m mark --mark 0x0 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x20/0xffffffff",
                "-A PREROUTING -j CONNMARK --save-mark",
            ]))
            .setup(to_ext2(100))
            .setup(Setup::rule("fwmark 0x20 lookup 100 pref 100", false))
            .want(&["forwarded"]),
        Case::new("mangle OUTPUT mark re-routes a local packet", tcp(From::Dut, a, 80))
            .rules(Nft, &kube::table("mangle", &[&format!("-A OUTPUT -d {ANYCAST4}/32 -j MARK --set-mark 0x10")]))
            .setup(to_ext2(100))
            .setup(Setup::rule("fwmark 0x10 lookup 100 pref 100", false))
            .want(&["forwarded"]),
        Case::new("policy routing by source", tcp(From::Client, a, 80))
            .setup(Setup::route(&format!("{ANYCAST4} via {} table 101", n.ext2)))
            .setup(Setup::rule(&format!("from {CLIENT_ALT4} lookup 101 pref 101"), false))
            .with_src(CLIENT_ALT4.into())
            .want(&["forwarded"]),
        // ---- routes ---------------------------------------------------------------------
        Case::new("blackhole route", tcp(From::Client, "198.19.1.5".parse().unwrap(), 80))
            .setup(Setup::route("blackhole 198.19.1.0/24"))
            .want(&["route_blackhole"]),
        Case::new("unreachable route", tcp(From::Client, "198.19.2.5".parse().unwrap(), 80))
            .setup(Setup::route("unreachable 198.19.2.0/24"))
            .want(&["route_unreachable"]),
        Case::new("prohibit route", udp(From::Client, "198.19.3.5".parse().unwrap(), 53))
            .setup(Setup::route("prohibit 198.19.3.0/24"))
            .want(&["route_prohibit"]),
        Case::new("throw falls through to the next rule's table", tcp(From::Client, a, 80))
            .setup(Setup::route(&format!("throw {ANYCAST4} table 102")))
            .setup(to_ext2(103))
            .setup(Setup::rule(&format!("to {ANYCAST4} lookup 102 pref 102"), false))
            .setup(Setup::rule(&format!("to {ANYCAST4} lookup 103 pref 103"), false))
            .want(&["forwarded"]),
        Case::new("unreachable rule", tcp(From::Client, "198.19.5.5".parse().unwrap(), 80))
            .setup(Setup::rule("to 198.19.5.0/24 unreachable pref 105", false))
            .want(&["route_unreachable"]),
        Case::new("local-out: no route", tcp(From::Dut, "198.18.200.1".parse().unwrap(), 80))
            .want(&["no_route"]),
        Case::new("local-out: blackhole route", udp(From::Dut, "198.19.1.5".parse().unwrap(), 53))
            .setup(Setup::route("blackhole 198.19.1.0/24"))
            .want(&["route_blackhole"]),
        Case::new("local-out: prohibit route", tcp(From::Dut, "198.19.3.5".parse().unwrap(), 80))
            .setup(Setup::route("prohibit 198.19.3.0/24"))
            .want(&["route_prohibit"]),
        // ---- sysctls ---------------------------------------------------------------------
        Case::new("ip_forward off", tcp(From::Client, n.ep[0], 80))
            .setup(Setup::sysctl("net.ipv4.ip_forward", "0"))
            .want(&["forwarding_disabled"]),
        Case::new("forwarding off on the input interface only", tcp(From::Client, n.ep[0], 80))
            .setup(Setup::sysctl(&format!("net.ipv4.conf.{}.forwarding", n.if_net), "0"))
            .want(&["forwarding_disabled"]),
        Case::new("strict rp_filter on an asymmetric path", tcp(From::Client, n.ep[0], 80))
            .setup(Setup::sysctl(&format!("net.ipv4.conf.{}.rp_filter", n.if_net), "1"))
            .with_src(CLIENT_ALT4.into())
            .want(&["rp_filter"]),
        Case::new("loose rp_filter on the same path", tcp(From::Client, n.ep[0], 80))
            .setup(Setup::sysctl(&format!("net.ipv4.conf.{}.rp_filter", n.if_net), "2"))
            .with_src(CLIENT_ALT4.into())
            .want(&["forwarded"]),
        Case::new("MTU: DF packet bigger than the out link", udp(From::Client, n.ext2, 53))
            .setup(Setup::cmd(&format!("ip link set dev {} mtu 1280", n.if_ext2), &format!("ip link set dev {} mtu 1500", n.if_ext2)))
            .with_payload(1400)
            .want(&["mtu_exceeded"]),
        Case::new("MTU: a packet that fits", udp(From::Client, n.ext2, 53))
            .setup(Setup::cmd(&format!("ip link set dev {} mtu 1280", n.if_ext2), &format!("ip link set dev {} mtu 1500", n.if_ext2)))
            .with_payload(1000)
            .want(&["forwarded"]),
        // ---- matches and chain semantics ---------------------------------------------------
        Case::new("multiport match", tcp(From::Client, n.ep[2], 80))
            .rules(Nft, &kube::filter("ACCEPT", &[], &["-A FORWARD -p tcp -m multiport --dports 22,80,443 -j REJECT --reject-with tcp-reset"]))
            .want(&["rejected"]),
        Case::new("multiport miss", tcp(From::Client, n.ep[2], 8080))
            .rules(Nft, &kube::filter("ACCEPT", &[], &["-A FORWARD -p tcp -m multiport --dports 22,80,443 -j REJECT --reject-with tcp-reset"]))
            .want(&["forwarded"]),
        Case::new("conntrack INVALID dropped (SYN-ACK out of the blue)", Send::new(From::Client, Proto::SynAck, n.ep[0], 80))
            .rules(Nft, &kube::filter("ACCEPT", &[], &["-A FORWARD -m conntrack --ctstate INVALID -j DROP"]))
            .want(&["dropped"]),
        Case::new("conntrack INVALID not dropped: the server resets", Send::new(From::Client, Proto::SynAck, n.ep[0], 80))
            .rules(Nft, &kube::filter("ACCEPT", &[], &["-A FORWARD -m conntrack --ctstate NEW -j LOG"]))
            .want(&["forwarded"]),
        Case::new("NOTRACK in raw, UNTRACKED rejected", udp(From::Client, n.ep[0], 53))
            .rules(Nft, &kube::table("raw", &["-A PREROUTING -p udp -m udp --dport 53 -j NOTRACK"]))
            .rules(Nft, &kube::filter("ACCEPT", &[], &["-A FORWARD -m conntrack --ctstate UNTRACKED -j REJECT --reject-with icmp-host-prohibited"]))
            .want(&["rejected"]),
        Case::new("ipset member rejected", tcp(From::Client, n.ep[1], 80))
            .ipsets("create blocked hash:ip family inet hashsize 1024 maxelem 65536\nadd blocked 198.18.65.3\n")
            .rules(Nft, &kube::filter("ACCEPT", &[], &["-A FORWARD -m set --match-set blocked dst -j REJECT --reject-with icmp-admin-prohibited"]))
            .want(&["rejected"]),
        Case::new("ipset non-member passes", tcp(From::Client, n.ep[0], 80))
            .ipsets("create blocked hash:ip family inet hashsize 1024 maxelem 65536\nadd blocked 198.18.65.3\n")
            .rules(Nft, &kube::filter("ACCEPT", &[], &["-A FORWARD -m set --match-set blocked dst -j REJECT --reject-with icmp-admin-prohibited"]))
            .want(&["forwarded"]),
        Case::new("goto: RETURN goes back past the caller", tcp(From::Client, n.ep[0], 80))
            .rules(Nft, &kube::filter("ACCEPT", &["CHAIN-A", "CHAIN-B"], &[
                "-A FORWARD -j CHAIN-A",
                "-A FORWARD -j REJECT --reject-with icmp-host-prohibited",
                "-A CHAIN-A -g CHAIN-B",
                "-A CHAIN-A -j ACCEPT",
                "-A CHAIN-B -p tcp -j RETURN",
            ]))
            .want(&["rejected"]),
        Case::new("jump: RETURN comes back to the caller", tcp(From::Client, n.ep[0], 80))
            .rules(Nft, &kube::filter("ACCEPT", &["CHAIN-A", "CHAIN-B"], &[
                "-A FORWARD -j CHAIN-A",
                "-A FORWARD -j REJECT --reject-with icmp-host-prohibited",
                "-A CHAIN-A -j CHAIN-B",
                "-A CHAIN-A -j ACCEPT",
                "-A CHAIN-B -p tcp -j RETURN",
            ]))
            .want(&["forwarded"]),
        Case::new("RETURN from nested chains", tcp(From::Client, n.ep[0], 80))
            .rules(Legacy, &kube::filter("DROP", &["L1", "L2", "L3"], &[
                "-A FORWARD -j L1",
                "-A L1 -j L2",
                &format!("-A L1 -d {} -j ACCEPT", n.ep[0]),
                "-A L1 -j DROP",
                "-A L2 -j L3",
                "-A L2 -j DROP",
                "-A L3 -p tcp -j RETURN",
            ]))
            .want(&["dropped"]),
        Case::new("user chain falls off its end", tcp(From::Client, n.ep[0], 80))
            .rules(Legacy, &kube::filter("DROP", &["L1", "L2"], &[
                "-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT",
                "-A FORWARD -j L1",
                &format!("-A FORWARD -d {} -j ACCEPT", n.ep[0]),
                "-A L1 -j L2",
                "-A L2 -p udp -j DROP",
            ]))
            .want(&["forwarded"]),
        // ---- IPv6 -------------------------------------------------------------------------
        Case::new("IPv6 REJECT icmp6-adm-prohibited", tcp(From::Client, n.ep6[0], 80))
            .rules(Nft, &fwd_reject(n.ep6[0], "icmp6-adm-prohibited"))
            .want(&["rejected"]),
        Case::new("IPv6 REJECT icmp6-port-unreachable (UDP)", udp(From::Client, n.ep6[1], 53))
            .rules(Legacy, &fwd_reject(n.ep6[1], "icmp6-port-unreachable"))
            .want(&["rejected"]),
        Case::new("IPv6 ClusterIP DNAT, 2 endpoints", tcp(From::Client, VIP6, 80))
            .rules(Nft, &kube::nat(&[svc("SIX", VIP6, 80, "tcp", &n.ep6[..2], None)], PODS6))
            .want(&["forwarded"])
            .repeat(20),
        Case::new("IPv6 forwarding off", tcp(From::Client, n.ep6[0], 80))
            .setup(Setup::sysctl("net.ipv6.conf.all.forwarding", "0"))
            .want(&["forwarding_disabled"]),
        Case::new("IPv6 unreachable route", tcp(From::Client, "2001:db8:19:0:1::5".parse().unwrap(), 80))
            .setup(Setup::route("unreachable 2001:db8:19:0:1::/80"))
            .want(&["route_unreachable"]),
        Case::new("IPv6 policy routing by mark", tcp(From::Client, a6, 80))
            .rules(Nft, &kube::table("mangle", &[&format!("-A PREROUTING -d {ANYCAST6}/128 -j MARK --set-mark 0x10")]))
            .setup(Setup::route(&format!("{ANYCAST6} via {} table 100", n.ext2_6)))
            .setup(Setup::rule("fwmark 0x10 lookup 100 pref 100", true))
            .want(&["forwarded"]),
    ]
}

trait CaseExt {
    fn with_src(self, a: IpAddr) -> Case;
    fn with_payload(self, n: usize) -> Case;
}

impl CaseExt for Case {
    fn with_src(mut self, a: IpAddr) -> Case {
        self.send.src = Some(a);
        self
    }

    fn with_payload(mut self, n: usize) -> Case {
        self.send.payload = n;
        self
    }
}

#[test]
fn kernel_differential_cases() {
    let lab = DutLab::build("diffcases").expect("build the lab (needs root)");
    let ip4 = |h: &lab::Host| IpAddr::V4(h.ipv4().expect("ipv4"));
    let ip6 = |h: &lab::Host| IpAddr::V6(h.ipv6().expect("ipv6"));
    let n = Net {
        ep: lab.eps.iter().map(ip4).collect(),
        ep6: lab.eps.iter().map(ip6).collect(),
        dut: ip4(&lab.dut),
        ext1: ip4(&lab.ext1),
        ext2: ip4(&lab.ext2),
        ext2_6: ip6(&lab.ext2),
        if_net: lab.dut_if("net"),
        if_ext1: lab.dut_if("ext1"),
        if_ext2: lab.dut_if("ext2"),
    };
    let runner = Runner::new(&lab);
    let all = cases(&n);
    assert!(all.len() >= 30, "{} cases", all.len());
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
