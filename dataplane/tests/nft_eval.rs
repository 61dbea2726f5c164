//! Evaluation of single rules, per expression and statement, on the rules of the captured
//! `inet filter` fixture (scripts/fixtures/capture-nft.sh): packet -> outcome tables.
//! Outcomes read `VERDICT +EFFECT… [assumed: KIND]` per branch, `|` between branches.

use std::collections::HashMap;
use std::net::IpAddr;

use dataplane::iptables::{AddrTypes, AssumptionKind, CtInfo, CtTuple, MatchEnv};
use dataplane::nft::{Effect, NftFamily, RuleOutcome, Ruleset, Table, Verdict};
use dataplane::{CtState, Packet, Protocol};

fn firewall() -> Ruleset {
    let path = format!(
        "{}/tests/fixtures/nft/firewall.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    Ruleset::from_json(text.split_once('\n').unwrap().1).unwrap()
}

/// What a test node knows: local addresses, routes, the output interface, the conntrack
/// entry, the socket owner.
#[derive(Default)]
struct Env {
    local: Vec<IpAddr>,
    routes: HashMap<IpAddr, Option<String>>,
    out: Option<String>,
    ct: Option<CtInfo>,
    owner: Option<(u32, u32)>,
}

impl MatchEnv for Env {
    fn out_interface(&self) -> Option<&str> {
        self.out.as_deref()
    }
    fn addr_type(&self, addr: IpAddr, _dev: Option<&str>) -> Option<AddrTypes> {
        if self.local.is_empty() {
            return None;
        }
        let bcast = matches!(addr, IpAddr::V4(a) if a.is_broadcast());
        Some(AddrTypes(if self.local.contains(&addr) {
            AddrTypes::LOCAL
        } else if bcast {
            AddrTypes::BROADCAST
        } else {
            AddrTypes::UNICAST
        }))
    }
    fn route_oif(&self, dst: IpAddr, _mark: u32) -> Option<Option<String>> {
        self.routes.get(&dst).cloned()
    }
    fn conntrack(&self) -> Option<&CtInfo> {
        self.ct.as_ref()
    }
    fn socket_owner(&self) -> Option<(u32, u32)> {
        self.owner
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, dst: &str, dport: u16) -> Packet {
    Packet::tcp(ip(src), ip(dst), dport).arriving_on("eth0")
}

fn udp(src: &str, dst: &str, dport: u16) -> Packet {
    Packet::udp(ip(src), ip(dst), dport).arriving_on("eth0")
}

fn ping(src: &str, dst: &str) -> Packet {
    Packet::ping(ip(src), ip(dst)).arriving_on("eth0")
}

fn kind(k: &AssumptionKind) -> &'static str {
    match k {
        AssumptionKind::RateLimit => "rate",
        AssumptionKind::Quota => "quota",
        AssumptionKind::UnknownMatch => "unknown",
        AssumptionKind::Route { .. } => "route",
        AssumptionKind::Conntrack { .. } => "ct",
        AssumptionKind::AddrType { .. } => "addrtype",
        AssumptionKind::NftSet { .. } => "set",
        AssumptionKind::SocketOwner => "owner",
        _ => "other",
    }
}

fn summary(out: &RuleOutcome) -> String {
    let mut branches = Vec::new();
    for b in &out.branches {
        let mut s = match (&b.verdict, b.matched) {
            (Some(v), _) => match v.target() {
                Some(t) => format!("{} {t}", v.keyword()),
                None => v.keyword().to_string(),
            },
            (None, true) => "next".to_string(),
            (None, false) => "no match".to_string(),
        };
        for e in &b.effects {
            s.push_str(&match e {
                Effect::Nat(n) => {
                    let mut t = format!(" +{}", n.kind.keyword());
                    if let Some((a, z)) = n.addr {
                        t.push_str(&if a == z {
                            format!(" {a}")
                        } else {
                            format!(" {a}-{z}")
                        });
                    }
                    if let Some((a, z)) = n.port {
                        t.push_str(&if a == z {
                            format!(":{a}")
                        } else {
                            format!(":{a}-{z}")
                        });
                    }
                    if !n.flags.is_empty() {
                        t.push_str(&format!(" {}", n.flags.join(",")));
                    }
                    t
                }
                Effect::MetaMark(m) => format!(" +mark {m:#x}"),
                Effect::CtMark(m) => format!(" +ctmark {m:#x}"),
                Effect::SetElem { set, op, key } => format!(" +{} @{set} {key}", op.keyword()),
                Effect::Counter(None) => " +counter".to_string(),
                Effect::Counter(Some(n)) => format!(" +counter {n}"),
                Effect::Log(_) => " +log".to_string(),
                Effect::Notrack => " +notrack".to_string(),
                Effect::Reject(_) => " +reject".to_string(),
                Effect::Mangle(t) => format!(" +mangle {t}"),
            });
        }
        if (b.probability - 1.0).abs() > 1e-9 {
            s.push_str(&format!(" p={}", b.probability));
        }
        for a in &b.assumptions {
            s.push_str(&format!(" [assumed: {}]", kind(&a.kind)));
        }
        branches.push(s);
    }
    branches.join(" | ")
}

/// Evaluates the rule of `chain` whose text is `rule` for each packet.
fn check(rs: &Ruleset, chain: &str, rule: &str, cases: &[(Packet, &Env, &str)]) {
    let t: &Table = &rs.tables[0];
    let c = t.chain(chain).unwrap_or_else(|| panic!("no chain {chain}"));
    let r = c
        .rules
        .iter()
        .find(|r| r.to_text(NftFamily::Inet).is_ok_and(|x| x == rule))
        .unwrap_or_else(|| panic!("no rule {rule:?} in {chain}"));
    for (pkt, env, want) in cases {
        let got = summary(&r.eval(t, pkt, *env));
        assert_eq!(got, *want, "{chain}: {rule}\n  packet {pkt}");
    }
}

#[test]
fn conntrack_state_status_mark_and_tuple() {
    let rs = firewall();
    let none = Env::default();
    let est = tcp("198.18.0.9", "198.18.0.1", 22).with_ct_state(CtState::Established);
    check(
        &rs,
        "input",
        "ct state established,related accept",
        &[
            (est.clone(), &none, "accept"),
            (tcp("198.18.0.9", "198.18.0.1", 22), &none, "no match"),
        ],
    );
    check(
        &rs,
        "input",
        "ct state invalid counter packets 0 bytes 0 drop",
        &[
            (
                est.clone().with_ct_state(CtState::Invalid),
                &none,
                "drop +counter",
            ),
            (est.clone(), &none, "no match"),
        ],
    );
    check(
        &rs,
        "input",
        "ct state vmap { invalid : drop, established : accept, related : accept }",
        &[
            (est.clone(), &none, "accept"),
            (est.clone().with_ct_state(CtState::Related), &none, "accept"),
            (tcp("198.18.0.9", "198.18.0.1", 22), &none, "no match"),
        ],
    );
    let dnat = Env {
        ct: Some(CtInfo {
            orig: Some(CtTuple {
                src: ip("198.18.0.9"),
                dst: ip("198.19.0.10"),
                sport: 40000,
                dport: 80,
            }),
            reply: Some(CtTuple {
                src: ip("198.18.64.2"),
                dst: ip("198.18.0.9"),
                sport: 8080,
                dport: 40000,
            }),
            mark: Some(5),
            ..CtInfo::default()
        }),
        ..Env::default()
    };
    let after = tcp("198.18.0.9", "198.18.64.2", 8080).with_ct_state(CtState::Established);
    check(
        &rs,
        "input",
        "ct status dnat accept",
        &[
            (after.clone(), &dnat, "accept [assumed: ct]"), // status bits themselves unknown
            (after.clone(), &none, "no match [assumed: ct]"),
        ],
    );
    check(
        &rs,
        "input",
        "ct original ip daddr 198.19.0.10 accept",
        &[
            (after.clone(), &dnat, "accept"),
            (after.clone(), &none, "no match [assumed: ct]"),
            (tcp("2001:db8::9", "2001:db8::1", 80), &dnat, "no match"),
        ],
    );
    check(
        &rs,
        "prerouting-mangle",
        "ct mark != 0x00000000 meta mark set ct mark",
        &[
            (after.clone(), &dnat, "next +mark 0x5"),
            (after.clone(), &none, "no match [assumed: ct]"),
        ],
    );
}

#[test]
fn interfaces_and_reverse_path() {
    let rs = firewall();
    let none = Env::default();
    let lo = Packet::tcp(ip("127.0.0.1"), ip("127.0.0.1"), 80).arriving_on("lo");
    let local = Packet::tcp(ip("198.18.0.1"), ip("198.18.0.2"), 80);
    check(
        &rs,
        "input",
        "iifname \"lo\" accept",
        &[
            (lo.clone(), &none, "accept"),
            (tcp("198.18.0.9", "198.18.0.1", 80), &none, "no match"),
            (local.clone(), &none, "no match"),
        ],
    );
    check(&rs, "input", "iif \"lo\" accept", &[(lo, &none, "accept")]);
    let rp = "fib saddr . iif oif missing counter packets 0 bytes 0 log prefix \"rpfilter: \" drop";
    let routed = Env {
        routes: HashMap::from([(ip("198.18.0.9"), Some("eth0".to_string()))]),
        ..Env::default()
    };
    let no_route = Env {
        routes: HashMap::from([(ip("198.18.0.9"), None)]),
        ..Env::default()
    };
    check(
        &rs,
        "input",
        rp,
        &[
            (tcp("198.18.0.9", "198.18.0.1", 80), &routed, "no match"),
            // The route back leaves by eth0, the packet came in on eth1: reverse path fails.
            (
                tcp("198.18.0.9", "198.18.0.1", 80).arriving_on("eth1"),
                &routed,
                "drop +counter +log",
            ),
            (
                tcp("198.18.0.9", "198.18.0.1", 80),
                &no_route,
                "drop +counter +log",
            ),
            (
                tcp("198.18.0.9", "198.18.0.1", 80),
                &none,
                "no match [assumed: route]",
            ),
        ],
    );
    let out_eth = Env {
        out: Some("eth1".into()),
        ..Env::default()
    };
    let out_veth = Env {
        out: Some("veth3".into()),
        ..Env::default()
    };
    let pod = tcp("198.18.64.5", "198.51.100.1", 80).arriving_on("veth3");
    check(
        &rs,
        "forward",
        "oifname \"eth*\" ip saddr 198.18.64.0/18 jump to-world",
        &[
            (pod.clone(), &out_eth, "jump to-world"),
            (pod.clone(), &out_veth, "no match"),
            (pod.clone(), &none, "no match"),
        ],
    );
    let out_lo = Env {
        out: Some("lo".into()),
        ..Env::default()
    };
    check(
        &rs,
        "forward",
        "iifname != \"veth0\" oif \"lo\" continue",
        &[
            (pod.clone(), &out_lo, "continue"),
            (pod.clone().arriving_on("veth0"), &out_lo, "no match"),
        ],
    );
}

#[test]
fn payload_prefixes_ranges_sets_and_concatenations() {
    let rs = firewall();
    let none = Env::default();
    check(
        &rs,
        "input",
        "tcp dport 22 ip saddr @allowed-ssh accept",
        &[
            (tcp("198.18.1.15", "198.18.0.1", 22), &none, "accept"),
            (tcp("198.18.1.21", "198.18.0.1", 22), &none, "no match"),
            (tcp("198.18.0.200", "198.18.0.1", 22), &none, "accept"),
            (tcp("198.18.3.3", "198.18.0.1", 22), &none, "accept"),
            (tcp("198.18.3.3", "198.18.0.1", 23), &none, "no match"),
            (udp("198.18.3.3", "198.18.0.1", 22), &none, "no match"),
            (tcp("2001:db8::5", "2001:db8::1", 22), &none, "no match"),
        ],
    );
    check(
        &rs,
        "input",
        "tcp dport @admin-ports ip saddr 198.18.0.0/24 accept",
        &[
            (tcp("198.18.0.7", "198.18.0.1", 8040), &none, "accept"),
            (tcp("198.18.0.7", "198.18.0.1", 8081), &none, "no match"),
            (tcp("198.18.1.7", "198.18.0.1", 22), &none, "no match"),
        ],
    );
    check(
        &rs,
        "input",
        "ip saddr . tcp dport @dyn-block drop",
        &[
            (tcp("198.18.5.5", "198.18.0.1", 22), &none, "drop"),
            (tcp("198.18.5.5", "198.18.0.1", 80), &none, "no match"),
            (tcp("198.18.5.6", "198.18.0.1", 80), &none, "drop"),
        ],
    );
    check(
        &rs,
        "input",
        "udp dport { 53, 67-68 } accept",
        &[
            (udp("198.18.0.7", "198.18.0.1", 68), &none, "accept"),
            (udp("198.18.0.7", "198.18.0.1", 69), &none, "no match"),
            (udp("198.18.0.7", "198.18.0.1", 53), &none, "accept"),
        ],
    );
    check(
        &rs,
        "input",
        "ip6 saddr @blocked6 drop",
        &[
            (tcp("2001:db8:dead::5", "2001:db8::1", 80), &none, "drop"),
            (tcp("2001:db8:beef::2", "2001:db8::1", 80), &none, "drop"),
            (
                tcp("2001:db8:beef::3", "2001:db8::1", 80),
                &none,
                "no match",
            ),
            (tcp("198.18.0.7", "198.18.0.1", 80), &none, "no match"),
        ],
    );
    check(
        &rs,
        "input",
        "ip6 daddr 2001:db8::/32 ip6 nexthdr tcp tcp dport 8443 accept",
        &[
            (tcp("2001:db8:1::5", "2001:db8::1", 8443), &none, "accept"),
            (udp("2001:db8:1::5", "2001:db8::1", 8443), &none, "no match"),
        ],
    );
    check(
        &rs,
        "forward",
        "ip daddr 198.19.0.0-198.19.0.255 accept",
        &[
            (tcp("198.18.0.7", "198.19.0.255", 1), &none, "accept"),
            (tcp("198.18.0.7", "198.19.1.0", 1), &none, "no match"),
        ],
    );
    check(
        &rs,
        "forward",
        "ip daddr < 198.18.0.10 tcp dport > 1023 accept",
        &[
            (tcp("198.18.1.7", "198.18.0.9", 1024), &none, "accept"),
            (tcp("198.18.1.7", "198.18.0.10", 1024), &none, "no match"),
            (tcp("198.18.1.7", "198.18.0.9", 1023), &none, "no match"),
        ],
    );
    check(
        &rs,
        "input",
        "ip protocol gre accept",
        &[
            (
                Packet::with_proto(ip("198.18.0.7"), ip("198.18.0.1"), Protocol::Other(47), 0),
                &none,
                "accept",
            ),
            (tcp("198.18.0.7", "198.18.0.1", 1), &none, "no match"),
        ],
    );
    check(
        &rs,
        "to-world",
        "meta l4proto { tcp, udp } th dport 25 drop",
        &[
            (udp("198.18.64.7", "198.51.100.1", 25), &none, "drop"),
            (tcp("198.18.64.7", "198.51.100.1", 25), &none, "drop"),
            (ping("198.18.64.7", "198.51.100.1"), &none, "no match"),
        ],
    );
}

#[test]
fn icmp_tcp_flags_and_set_updates() {
    let rs = firewall();
    let none = Env::default();
    check(
        &rs,
        "input",
        "icmp type { destination-unreachable, echo-request } limit rate 10/second accept",
        &[
            (
                ping("198.18.0.7", "198.18.0.1"),
                &none,
                "accept [assumed: rate]",
            ),
            (ping("2001:db8::7", "2001:db8::1"), &none, "no match"),
            (tcp("198.18.0.7", "198.18.0.1", 1), &none, "no match"),
        ],
    );
    check(
        &rs,
        "input",
        "icmpv6 type { echo-request, nd-neighbor-solicit, nd-neighbor-advert } accept",
        &[
            (ping("2001:db8::7", "2001:db8::1"), &none, "accept"),
            (ping("198.18.0.7", "198.18.0.1"), &none, "no match"),
        ],
    );
    let mut synack = tcp("198.18.0.7", "198.18.0.1", 80);
    synack.tcp_flags.0 |= dataplane::packet::TcpFlags::ACK;
    check(
        &rs,
        "input",
        "tcp flags syn / fin,syn,rst,ack tcp dport 80 add @dyn-block { ip saddr . tcp dport } accept",
        &[
            (
                tcp("198.18.0.7", "198.18.0.1", 80),
                &none,
                "accept +add @dyn-block 198.18.0.7 . 80",
            ),
            (synack.clone(), &none, "no match"),
        ],
    );
    // The implicit flag operator: any of the bits.
    check(
        &rs,
        "input",
        "tcp flags syn tcp dport 443 accept",
        &[
            (tcp("198.18.0.7", "198.18.0.1", 443), &none, "accept"),
            (
                {
                    let mut p = synack.clone();
                    p.dport = 443;
                    p
                },
                &none,
                "accept",
            ),
        ],
    );
}

#[test]
fn meta_keys_marks_and_mangles() {
    let rs = firewall();
    let none = Env::default();
    check(
        &rs,
        "input",
        "meta mark 0x00004000 accept",
        &[
            (
                tcp("198.18.0.7", "198.18.0.1", 1).with_mark(0x4000),
                &none,
                "accept",
            ),
            (
                tcp("198.18.0.7", "198.18.0.1", 1).with_mark(0x4001),
                &none,
                "no match",
            ),
        ],
    );
    let node = Env {
        local: vec![ip("198.18.0.1")],
        ..Env::default()
    };
    check(
        &rs,
        "input",
        "meta pkttype broadcast drop",
        &[
            // pkttype comes from the link layer: without the env's answer, a guess.
            (
                udp("198.18.0.7", "255.255.255.255", 67),
                &none,
                "drop [assumed: addrtype]",
            ),
            (udp("198.18.0.7", "255.255.255.255", 67), &node, "drop"),
            (udp("198.18.0.7", "198.18.0.1", 67), &node, "no match"),
            (
                udp("198.18.0.7", "198.18.0.1", 67),
                &none,
                "no match [assumed: addrtype]",
            ),
        ],
    );
    let root = Env {
        owner: Some((0, 0)),
        ..Env::default()
    };
    let user = Env {
        owner: Some((1000, 1000)),
        ..Env::default()
    };
    let local = Packet::tcp(ip("198.18.0.1"), ip("198.18.0.2"), 80);
    check(
        &rs,
        "output",
        "meta skuid 0 accept",
        &[
            (local.clone(), &root, "accept"),
            (local.clone(), &user, "no match"),
            (local.clone(), &none, "accept [assumed: owner]"),
            // A forwarded packet has no socket: the expression breaks the rule.
            (tcp("198.18.0.7", "198.18.0.2", 80), &root, "no match"),
        ],
    );
    check(
        &rs,
        "prerouting-mangle",
        "meta mark & 0x000000ff == 0x00000001 ct mark set meta mark",
        &[
            (
                tcp("198.18.0.7", "198.18.0.1", 1).with_mark(0x101),
                &none,
                "next +ctmark 0x101",
            ),
            (
                tcp("198.18.0.7", "198.18.0.1", 1).with_mark(0x102),
                &none,
                "no match",
            ),
        ],
    );
    check(
        &rs,
        "prerouting-mangle",
        "meta mark set meta mark & 0xffff02ff | 0x00000200",
        &[(
            tcp("198.18.0.7", "198.18.0.1", 1).with_mark(0x1ff),
            &none,
            "next +mark 0x2ff", // 0x1ff & 0xffff02ff = 0xff, | 0x200
        )],
    );
    check(
        &rs,
        "prerouting-mangle",
        "ct mark set 0x00000007",
        &[(
            tcp("198.18.0.7", "198.18.0.1", 1),
            &none,
            "next +ctmark 0x7",
        )],
    );
    check(
        &rs,
        "prerouting-mangle",
        "ip6 dscp set cs1",
        &[
            (
                tcp("2001:db8::7", "2001:db8::1", 1),
                &none,
                "next +mangle ip6 dscp set cs1",
            ),
            (tcp("198.18.0.7", "198.18.0.1", 1), &none, "no match"),
        ],
    );
    check(
        &rs,
        "prerouting-raw",
        "meta mark set tcp dport map @port-mark",
        &[
            (
                tcp("198.18.0.7", "198.18.0.1", 443),
                &none,
                "next +mark 0x20",
            ),
            (tcp("198.18.0.7", "198.18.0.1", 22), &none, "no match"),
            (udp("198.18.0.7", "198.18.0.1", 443), &none, "no match"),
        ],
    );
    check(
        &rs,
        "prerouting-raw",
        "udp dport 123 notrack",
        &[(udp("198.18.0.7", "198.18.0.1", 123), &none, "next +notrack")],
    );
}

#[test]
fn nat_reject_log_counter_limit_quota_and_raw() {
    let rs = firewall();
    let none = Env::default();
    let nat = |rule: &str, cases: &[(Packet, &Env, &str)]| check(&rs, "nat-pre", rule, cases);
    nat(
        "tcp dport 8080 redirect to :80",
        &[(
            tcp("198.18.0.7", "198.18.0.1", 8080),
            &none,
            "accept +redirect:80",
        )],
    );
    nat(
        "ip daddr 198.19.0.99 tcp dport 80 dnat ip to 198.18.64.9:80",
        &[(
            tcp("198.18.0.7", "198.19.0.99", 80),
            &none,
            "accept +dnat 198.18.64.9:80",
        )],
    );
    nat(
        "ip6 daddr 2001:db8:ffff::99 tcp dport 80 dnat ip6 to [2001:db8:40::9]:80",
        &[(
            tcp("2001:db8::7", "2001:db8:ffff::99", 80),
            &none,
            "accept +dnat 2001:db8:40::9:80",
        )],
    );
    nat(
        "ip daddr 198.19.0.98 tcp dport 80 dnat ip to 198.18.64.3-198.18.64.5:80-90",
        &[(
            tcp("198.18.0.7", "198.19.0.98", 80),
            &none,
            "accept +dnat 198.18.64.3-198.18.64.5:80-90",
        )],
    );
    nat(
        "ip daddr 198.19.0.97 numgen inc mod 2 0 dnat ip to 198.18.64.20",
        &[(
            tcp("198.18.0.7", "198.19.0.97", 80),
            &none,
            "no match p=0.5 | accept +dnat 198.18.64.20 p=0.5",
        )],
    );
    nat(
        "ip daddr 198.19.0.96 dnat ip to ip saddr map { 198.18.0.0/24 : 198.18.64.21, 198.18.1.0/24 : 198.18.64.22 }",
        &[
            (
                tcp("198.18.1.7", "198.19.0.96", 80),
                &none,
                "accept +dnat 198.18.64.22",
            ),
            (
                tcp("198.18.0.7", "198.19.0.96", 80),
                &none,
                "accept +dnat 198.18.64.21",
            ),
        ],
    );
    check(
        &rs,
        "nat-post",
        "ip saddr 198.18.2.0/24 meta l4proto tcp masquerade to :1000-2000 random,persistent",
        &[(
            tcp("198.18.2.7", "198.51.100.1", 80),
            &none,
            "accept +masquerade:1000-2000 random,persistent",
        )],
    );
    check(
        &rs,
        "nat-post",
        "oifname \"eth0\" ip saddr 198.18.64.0/18 snat ip to 198.18.0.1",
        &[(
            tcp("198.18.64.7", "198.51.100.1", 80),
            &Env {
                out: Some("eth0".into()),
                ..Env::default()
            },
            "accept +snat 198.18.0.1",
        )],
    );
    let t = tcp("198.18.0.7", "198.18.0.1", 9);
    check(
        &rs,
        "input",
        "tcp dport 9 reject with tcp reset",
        &[(t.clone(), &none, "drop +reject")],
    );
    // nft adds (and hides when listing) the dependency of the reject type: `with icmp` only
    // for IPv4, `with icmpv6` only for IPv6 (inet tables)
    check(
        &rs,
        "input",
        "udp dport 9 reject with icmp host-unreachable",
        &[
            (udp("198.18.0.7", "198.18.0.1", 9), &none, "drop +reject"),
            (udp("2001:db8::7", "2001:db8::1", 9), &none, "no match"),
        ],
    );
    check(
        &rs,
        "input",
        "udp dport 10 reject with icmpv6 admin-prohibited",
        &[
            (udp("2001:db8::7", "2001:db8::1", 10), &none, "drop +reject"),
            (udp("198.18.0.7", "198.18.0.1", 10), &none, "no match"),
        ],
    );
    check(
        &rs,
        "input",
        "counter name \"dropped-input\"",
        &[(t.clone(), &none, "next +counter dropped-input")],
    );
    check(
        &rs,
        "input",
        "log prefix \"drop: \" level info flags all",
        &[(t.clone(), &none, "next +log")],
    );
    check(
        &rs,
        "input",
        "reject with icmpx admin-prohibited",
        &[(t.clone(), &none, "drop +reject")],
    );
    check(
        &rs,
        "input",
        "meta l4proto tcp quota over 100 mbytes drop",
        &[(t.clone(), &none, "no match [assumed: quota]")],
    );
    check(
        &rs,
        "to-world",
        "limit rate over 1000/second burst 50 packets drop",
        &[(t.clone(), &none, "no match [assumed: rate]")],
    );
    // The ct helper statement is kept raw: never a silent match.
    let input = rs.tables[0].chain("input").unwrap();
    let raw = input
        .rules
        .iter()
        .find(|r| r.to_text(NftFamily::Inet).is_err())
        .unwrap();
    let out = raw.eval(&rs.tables[0], &tcp("198.18.0.7", "198.18.0.1", 21), &none);
    assert_eq!(summary(&out), "no match [assumed: unknown]");
    assert_eq!(
        out.branches[0].assumptions[0].match_text,
        "{\"ct helper\":\"ftp-std\"}"
    );
    assert_eq!(out.branches[0].verdict, None::<Verdict>);
}
