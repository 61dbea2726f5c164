//! The tracer's semantics, case by case, on the captured DUT node: chain walking (jump, goto,
//! RETURN, policies, loops), marks and policy routing, NAT and conntrack (entries, stale
//! mappings, the reply direction, INVALID, NOTRACK, a full table), routing verdicts,
//! rp_filter, forwarding, MTU, loopback, multipath, the path bound and assumptions.

mod common;

use common::node::{CALI, EXT1, EXT2, NET, dut, ip, output, with};
use dataplane::conntrack::Conntrack;
use dataplane::node::{Backend, NodeState};
use dataplane::packet::TcpFlags;
use dataplane::route::{Nexthop, Route, RouteType, RpFilter, Rule, TableId};
use dataplane::trace::{
    AssumptionCode, Culprit, DropReason, Effect, TraceOptions, Verdict, trace, trace_with,
};
use dataplane::{CtState, Family, Packet};

const CLIENT: &str = "198.18.0.101";
const EP1: &str = "198.18.65.2";
const EP2: &str = "198.18.65.3";

fn filter(forward_policy: &str, chains: &[&str], lines: &[&str]) -> String {
    let mut s = format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD {forward_policy} [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    );
    for c in chains {
        s.push_str(&format!(":{c} - [0:0]\n"));
    }
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s + "COMMIT\n"
}

fn table(name: &str, builtins: &[&str], lines: &[&str]) -> String {
    let mut s = format!("*{name}\n");
    for c in builtins {
        s.push_str(&format!(":{c} ACCEPT [0:0]\n"));
    }
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s + "COMMIT\n"
}

fn nat(lines: &[&str]) -> String {
    table(
        "nat",
        &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        lines,
    )
}

fn to_ep1() -> Packet {
    Packet::tcp(ip(CLIENT), ip(EP1), 80).arriving_on(NET)
}

fn nft(save: &str) -> NodeState {
    with(dut(), Backend::Nft, Family::V4, save)
}

fn effects(t: &dataplane::trace::Trace) -> Vec<String> {
    t.paths[0]
        .steps
        .iter()
        .map(|s| s.effect.to_string())
        .collect()
}

#[test]
fn goto_returns_past_its_caller_jump_returns_to_it() {
    let lines = |how: &str| {
        filter(
            "ACCEPT",
            &["A", "B"],
            &[
                "-A FORWARD -j A",
                "-A FORWARD -j REJECT --reject-with icmp-host-prohibited",
                &format!("-A A {how} B"),
                "-A A -j ACCEPT",
                "-A B -p tcp -j RETURN",
            ],
        )
    };
    let t = trace(&nft(&lines("-g")), &to_ep1());
    assert_eq!(output(&t), "REJECT", "{t}");
    assert_eq!(
        effects(&t)[2..],
        [
            "jump A",
            "goto B",
            "return",
            "REJECT with icmp-host-prohibited"
        ]
    );
    let t = trace(&nft(&lines("-j")), &to_ep1());
    assert_eq!(output(&t), "198.18.65.2:80", "{t}");
    assert_eq!(effects(&t)[2..], ["jump A", "jump B", "return", "ACCEPT"]);
}

#[test]
fn user_chains_fall_off_and_builtins_use_their_policy() {
    let t = trace(
        &nft(&filter(
            "DROP",
            &["A"],
            &["-A FORWARD -j A", "-A A -p udp -j ACCEPT"],
        )),
        &to_ep1(),
    );
    assert_eq!(
        effects(&t)[2..],
        ["jump A", "end of chain, return", "policy DROP"]
    );
    match &t.paths[0].verdict {
        Verdict::Dropped {
            by:
                Culprit::Policy {
                    table,
                    chain,
                    backend,
                },
            reason: DropReason::NetfilterDrop,
        } => {
            assert_eq!((table.as_str(), chain.as_str()), ("filter", "FORWARD"));
            assert_eq!(*backend, Some(Backend::Nft));
        }
        v => panic!("{v:?}"),
    }
    // RETURN in a built-in chain applies the policy too
    let t = trace(
        &nft(&filter("DROP", &[], &["-A FORWARD -j RETURN"])),
        &to_ep1(),
    );
    assert_eq!(output(&t), "DROP");
}

#[test]
fn counters_and_log_are_steps_without_effect() {
    let t = trace(
        &nft(&filter(
            "ACCEPT",
            &[],
            &["-A FORWARD -p tcp", "-A FORWARD -j LOG --log-prefix \"x \""],
        )),
        &to_ep1(),
    );
    assert_eq!(effects(&t)[2..4], ["counted (no target)", "logged"]);
    let rule = t.paths[0].steps[3].rule.clone().unwrap();
    assert_eq!((rule.chain.as_str(), rule.index), ("FORWARD", 2));
    assert_eq!(rule.text, "-A FORWARD -j LOG --log-prefix \"x \"");
    assert_eq!(output(&t), "198.18.65.2:80");
}

#[test]
fn a_chain_loop_is_reported_not_followed_forever() {
    let t = trace(
        &nft(&filter("ACCEPT", &["A"], &["-A FORWARD -j A", "-A A -j A"])),
        &to_ep1(),
    );
    assert!(
        matches!(t.paths[0].verdict, Verdict::NotModelled { .. }),
        "{t}"
    );
}

#[test]
fn unknown_matches_are_assumptions_never_silent_matches() {
    let save = filter(
        "ACCEPT",
        &[],
        &["-A FORWARD -m frobnicate --level 3 -j DROP"],
    );
    let t = trace(&nft(&save), &to_ep1());
    assert_eq!(output(&t), "198.18.65.2:80");
    let a = t
        .assumptions
        .iter()
        .find(|a| a.code == AssumptionCode::UnknownMatch)
        .unwrap();
    assert_eq!(a.rule.as_ref().unwrap().index, 1);
    assert!(a.text.contains("does not match"), "{a}");
}

#[test]
fn owner_match_uses_the_socket_when_told() {
    let save = filter("ACCEPT", &[], &[]).replace(
        "COMMIT",
        "-A OUTPUT -m owner --uid-owner 1000 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT",
    );
    let node = nft(&save);
    let p = Packet::tcp(ip("0.0.0.0"), ip(EP1), 80);
    let t = trace(&node, &p);
    assert_eq!(output(&t), "198.18.65.2:80");
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::SocketOwner)
    );
    let opts = TraceOptions {
        socket_owner: Some((1000, 1000)),
        ..TraceOptions::default()
    };
    let t = trace_with(&node, &p, &opts);
    assert_eq!(output(&t), "REJECT");
    assert!(t.assumptions.is_empty(), "{t}");
}

#[test]
fn both_backends_run_legacy_first_and_say_so() {
    let node = with(
        nft(&filter("ACCEPT", &[], &["-A FORWARD -j LOG"])),
        Backend::Legacy,
        Family::V4,
        &filter("ACCEPT", &[], &["-A FORWARD -p tcp"]),
    );
    let t = trace(&node, &to_ep1());
    let mut backends: Vec<_> = t.paths[0].steps.iter().filter_map(|s| s.backend).collect();
    backends.dedup();
    assert_eq!(backends, [Backend::Legacy, Backend::Nft]);
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::BackendOrder)
    );
    // an ACCEPT in one back end does not skip the other's DROP
    let node = with(
        nft(&filter("ACCEPT", &[], &["-A FORWARD -j DROP"])),
        Backend::Legacy,
        Family::V4,
        &filter("ACCEPT", &[], &["-A FORWARD -j ACCEPT"]),
    );
    assert_eq!(output(&trace(&node, &to_ep1())), "DROP");
}

#[test]
fn a_mark_set_in_mangle_steers_policy_routing() {
    let save = table(
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        &["-A PREROUTING -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x10/0xffffffff"],
    );
    let mut node = nft(&save);
    let mut rule = Rule::lookup(Family::V4, 100, TableId::Id(100));
    rule.fwmark = Some(0x10);
    node.routes.rules.insert(1, rule);
    node.routes.routes.push(
        Route::unicast(
            "198.19.255.10/32".parse().unwrap(),
            Some(ip("198.18.2.2")),
            Some(EXT2),
        )
        .in_table(TableId::Id(100)),
    );
    let p = |port| Packet::tcp(ip(CLIENT), ip("198.19.255.10"), port).arriving_on(NET);
    let t = trace(&node, &p(80));
    match &t.paths[0].verdict {
        Verdict::Forwarded {
            out_dev, next_hop, ..
        } => {
            assert_eq!(
                (out_dev.as_str(), *next_hop),
                (EXT2, ip("198.18.2.2")),
                "{t}"
            )
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(t.paths[0].final_packet.mark, 0x10);
    let t = trace(&node, &p(8080));
    assert!(
        matches!(&t.paths[0].verdict, Verdict::Forwarded { out_dev, .. } if out_dev == EXT1),
        "{t}"
    );
}

#[test]
fn connmark_save_and_restore() {
    let save = table(
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        &[
            "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff",
            "-A PREROUTING -m mark --mark 0x0 -j MARK --set-xmark 0x7/0xffffffff",
            "-A PREROUTING -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff",
            "-A FORWARD -m connmark --mark 0x7 -j MARK --set-xmark 0x9/0xffffffff",
        ],
    );
    let t = trace(&nft(&save), &to_ep1());
    let e = effects(&t);
    assert_eq!(
        e[1..4],
        ["mark 0x0 -> 0x0", "mark 0x0 -> 0x7", "ct mark 0x0 -> 0x7"]
    );
    assert_eq!(t.paths[0].final_packet.mark, 0x9, "{t}");
}

#[test]
fn a_stale_conntrack_entry_keeps_the_old_endpoint() {
    // the rules now send the service to ep2, but the UDP entry still maps to ep1
    let save = nat(&[
        "-A PREROUTING -d 198.19.0.53/32 -p udp -m udp --dport 53 -j DNAT --to-destination 198.18.65.3:5353",
    ]);
    let ct = Conntrack::parse(
        "udp      17 29 src=198.18.0.101 dst=198.19.0.53 sport=40000 dport=53 src=198.18.65.2 dst=198.18.0.101 sport=5353 dport=40000 mark=0 use=1\n",
    )
    .unwrap();
    let node = nft(&save).with_conntrack(ct);
    let p = Packet::udp(ip(CLIENT), ip("198.19.0.53"), 53)
        .with_sport(40000)
        .arriving_on(NET);
    let t = trace(&node, &p);
    assert_eq!(output(&t), "198.18.65.2:5353", "{t}");
    let steps = &t.paths[0].steps;
    assert!(matches!(
        &steps[0].effect,
        Effect::Conntrack {
            state: CtState::Established,
            entry: Some(_),
            ..
        }
    ));
    assert!(matches!(&steps[1].effect, Effect::NatSkipped { .. }));
    // another source port is a new connection: the rules decide
    let t = trace(&node, &p.clone().with_sport(40001));
    assert_eq!(output(&t), "198.18.65.3:5353", "{t}");
    // the answer, in the reply direction, is un-NATed back to the service address
    let reply = Packet::udp(ip(EP1), ip(CLIENT), 40000)
        .with_sport(5353)
        .arriving_on(CALI[0]);
    let t = trace(&node, &reply);
    match &t.paths[0].verdict {
        Verdict::Forwarded {
            src, dst, out_dev, ..
        } => {
            assert_eq!(src.to_string(), "198.19.0.53:53");
            assert_eq!(dst.to_string(), "198.18.0.101:40000");
            assert_eq!(out_dev, NET);
        }
        v => panic!("{v:?}\n{t}"),
    }
}

#[test]
fn unreplied_entries_stay_new_and_syn_reopens_time_wait() {
    let ct = Conntrack::parse(
        "udp      17 29 src=198.18.0.101 dst=198.18.65.2 sport=1 dport=53 [UNREPLIED] src=198.18.65.2 dst=198.18.0.101 sport=53 dport=1 mark=0 use=1\n\
         tcp      6 100 TIME_WAIT src=198.18.0.101 dst=198.18.65.2 sport=2 dport=80 src=198.18.65.2 dst=198.18.0.101 sport=80 dport=2 [ASSURED] mark=0 use=1\n",
    )
    .unwrap();
    let node = dut().with_conntrack(ct);
    let t = trace(
        &node,
        &Packet::udp(ip(CLIENT), ip(EP1), 53)
            .with_sport(1)
            .arriving_on(NET),
    );
    assert_eq!(t.paths[0].final_packet.ct_state, CtState::New);
    let t = trace(
        &node,
        &Packet::tcp(ip(CLIENT), ip(EP1), 80)
            .with_sport(2)
            .arriving_on(NET),
    );
    assert!(
        matches!(
            &t.paths[0].steps[0].effect,
            Effect::Conntrack {
                entry: None,
                state: CtState::New,
                ..
            }
        ),
        "{t}"
    );
}

#[test]
fn tcp_flags_without_an_entry_decide_new_or_invalid() {
    let save = filter(
        "ACCEPT",
        &[],
        &["-A FORWARD -m conntrack --ctstate INVALID -j DROP"],
    );
    let node = nft(&save);
    for (flags, want) in [
        (TcpFlags::SYN, "198.18.65.2:80"),
        (TcpFlags::SYN | TcpFlags::ACK, "DROP"),
        (TcpFlags::RST, "DROP"),
        (TcpFlags::FIN, "DROP"),
        (TcpFlags::ACK, "198.18.65.2:80"),
    ] {
        let mut p = to_ep1();
        p.tcp_flags = TcpFlags(flags);
        assert_eq!(output(&trace(&node, &p)), want, "flags {flags:#x}");
    }
}

#[test]
fn notrack_skips_conntrack_and_nat() {
    let raw = table(
        "raw",
        &["PREROUTING", "OUTPUT"],
        &["-A PREROUTING -p tcp -j NOTRACK"],
    );
    let node = with(
        nft(&raw),
        Backend::Legacy,
        Family::V4,
        &nat(&["-A PREROUTING -p tcp -j DNAT --to-destination 198.18.65.3"]),
    );
    let t = trace(&node, &to_ep1());
    assert_eq!(output(&t), "198.18.65.2:80", "{t}");
    assert_eq!(t.paths[0].final_packet.ct_state, CtState::Untracked);
    assert!(
        t.paths[0]
            .steps
            .iter()
            .any(|s| matches!(s.effect, Effect::NatSkipped { .. }))
    );
}

#[test]
fn a_full_conntrack_table_drops_new_connections() {
    let mut node = dut();
    node.sysctls.set("net.netfilter.nf_conntrack_max", "100");
    node.sysctls.set("net.netfilter.nf_conntrack_count", "100");
    let t = trace(&node, &to_ep1());
    assert!(
        matches!(
            &t.paths[0].verdict,
            Verdict::Dropped {
                by: Culprit::Conntrack { .. },
                ..
            }
        ),
        "{t}"
    );
}

#[test]
fn nat_ranges_take_the_first_and_say_so() {
    let node = nft(&nat(&[
        "-A PREROUTING -d 198.19.0.9/32 -p tcp -j DNAT --to-destination 198.18.65.2-198.18.65.4:8080-8090",
    ]));
    let t = trace(
        &node,
        &Packet::tcp(ip(CLIENT), ip("198.19.0.9"), 80).arriving_on(NET),
    );
    assert_eq!(output(&t), "198.18.65.2:8080");
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::NatRangeFirst)
    );
    let dnat = t.paths[0].steps.iter().find_map(|s| match &s.effect {
        Effect::Dnat { range, .. } => Some(range.clone()),
        _ => None,
    });
    assert_eq!(
        dnat,
        Some(Some("198.18.65.2-198.18.65.4:8080-8090".to_string()))
    );
}

#[test]
fn masquerade_picks_the_out_interface_address_or_drops() {
    let node = nft(&nat(&[&format!("-A POSTROUTING -o {EXT1} -j MASQUERADE")]));
    let t = trace(
        &node,
        &Packet::tcp(ip(CLIENT), ip("198.18.1.2"), 80).arriving_on(NET),
    );
    assert_eq!(t.paths[0].final_packet.src, ip("198.18.1.1"), "{t}");
    // no IPv4 address anywhere to masquerade to
    let mut bare = node.clone();
    for i in &mut bare.routes.addresses {
        i.addrs
            .retain(|a| a.family == Family::V6 || i.ifname == "lo");
    }
    let t = trace(
        &bare,
        &Packet::tcp(ip(CLIENT), ip("198.18.1.2"), 80).arriving_on(NET),
    );
    assert!(
        matches!(
            &t.paths[0].verdict,
            Verdict::Dropped {
                by: Culprit::Rule { .. },
                ..
            }
        ),
        "{t}"
    );
}

#[test]
fn minus_o_never_matches_in_prerouting() {
    let save = table(
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        &[
            &format!(
                "-A PREROUTING -o {} -j MARK --set-xmark 0x1/0xffffffff",
                CALI[0]
            ),
            &format!(
                "-A FORWARD -o {} -j MARK --set-xmark 0x2/0xffffffff",
                CALI[0]
            ),
        ],
    );
    let t = trace(&nft(&save), &to_ep1());
    assert_eq!(t.paths[0].final_packet.mark, 0x2, "{t}");
}

#[test]
fn route_verdicts_carry_kernel_reasons() {
    let mut node = dut();
    for (kind, net) in [
        (RouteType::Blackhole, "198.19.1.0/24"),
        (RouteType::Unreachable, "198.19.2.0/24"),
        (RouteType::Prohibit, "198.19.3.0/24"),
    ] {
        node.routes
            .routes
            .push(Route::of_type(kind, net.parse().unwrap()));
    }
    let cases = [
        ("198.19.1.5", "route_blackhole", DropReason::NotSpecified),
        (
            "198.19.2.5",
            "route_unreachable",
            DropReason::IpInAddrErrors,
        ),
        ("198.19.3.5", "route_prohibit", DropReason::NotSpecified),
        ("198.18.200.1", "no_route", DropReason::IpInNoRoutes),
    ];
    for (dst, kind, reason) in cases {
        let t = trace(
            &node,
            &Packet::tcp(ip(CLIENT), ip(dst), 80).arriving_on(NET),
        );
        assert_eq!(t.paths[0].verdict.kind(), kind, "{t}");
        assert_eq!(t.paths[0].verdict.drop_reason(), Some(reason));
    }
    let t = trace(&node, &Packet::tcp(ip("0.0.0.0"), ip("198.18.200.1"), 80));
    assert_eq!(
        t.paths[0].verdict.drop_reason(),
        Some(DropReason::IpOutNoRoutes)
    );
}

#[test]
fn rp_filter_strict_drops_the_asymmetric_path_loose_does_not() {
    let mut node = dut();
    node.routes.routes.push(Route::unicast(
        "198.18.9.0/24".parse().unwrap(),
        Some(ip("198.18.3.2")),
        Some("eth3"),
    ));
    let p = Packet::tcp(ip("198.18.9.1"), ip(EP1), 80).arriving_on(NET);
    node.sysctls.set("net.ipv4.conf.eth0.rp_filter", "1");
    let t = trace(&node, &p);
    match &t.paths[0].verdict {
        Verdict::RpFilter {
            iif, mode, reason, ..
        } => {
            assert_eq!((iif.as_str(), *mode), (NET, RpFilter::Strict));
            assert!(reason.contains("eth3"), "{reason}");
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(
        t.paths[0].verdict.drop_reason(),
        Some(DropReason::IpRpFilter)
    );
    node.sysctls.set("net.ipv4.conf.eth0.rp_filter", "2");
    assert_eq!(output(&trace(&node, &p)), "198.18.65.2:80");
    // max(all, dev): all=1 makes eth0 strict even though eth0 says 0
    node.sysctls.set("net.ipv4.conf.eth0.rp_filter", "0");
    node.sysctls.set("net.ipv4.conf.all.rp_filter", "1");
    assert_eq!(trace(&node, &p).paths[0].verdict.kind(), "rp_filter");
}

#[test]
fn forwarding_is_per_input_device() {
    let mut node = dut();
    node.sysctls.set("net.ipv4.conf.eth0.forwarding", "0");
    node.sync_route_settings();
    let t = trace(&node, &to_ep1());
    match &t.paths[0].verdict {
        Verdict::ForwardingDisabled { sysctl, .. } => {
            assert_eq!(sysctl, "net.ipv4.conf.eth0.forwarding")
        }
        v => panic!("{v:?}"),
    }
    // the same packet from ext1 is forwarded, and local delivery is unaffected
    let p = Packet::tcp(ip("198.18.1.2"), ip(EP1), 80).arriving_on(EXT1);
    assert_eq!(output(&trace(&node, &p)), "198.18.65.2:80");
    let p = Packet::tcp(ip(CLIENT), ip("198.18.0.11"), 80).arriving_on(NET);
    assert_eq!(output(&trace(&node, &p)), "LOCAL 198.18.0.11:80");
    // IPv6 looks at conf.all only
    node.sysctls.set("net.ipv6.conf.all.forwarding", "0");
    node.sync_route_settings();
    let p = Packet::tcp(ip("2001:db8::101"), ip("2001:db8:64:1::2"), 80).arriving_on(NET);
    let t = trace(&node, &p);
    assert_eq!(
        t.paths[0].verdict.drop_reason(),
        Some(DropReason::IpInAddrErrors),
        "{t}"
    );
    assert!(matches!(&t.paths[0].verdict,
        Verdict::ForwardingDisabled { sysctl, .. } if sysctl == "net.ipv6.conf.all.forwarding"));
}

#[test]
fn mtu_is_checked_before_the_forward_hook() {
    let mut node = nft(&filter("DROP", &[], &[]));
    for l in &mut node.routes.links {
        if l.ifname == EXT2 {
            l.mtu = Some(1280);
        }
    }
    let p = Packet::udp(ip(CLIENT), ip("198.18.2.2"), 53)
        .with_len(1428)
        .arriving_on(NET);
    let t = trace(&node, &p);
    assert!(
        matches!(
            t.paths[0].verdict,
            Verdict::MtuExceeded {
                mtu: 1280,
                len: 1428,
                ..
            }
        ),
        "{t}"
    );
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::DontFragment)
    );
    assert_eq!(output(&trace(&node, &p.with_len(1280))), "DROP");
}

#[test]
fn local_redirect_loops_back_without_nat_prerouting() {
    let node = nft(&nat(&[
        "-A PREROUTING -j DNAT --to-destination 198.18.65.4",
        "-A OUTPUT -d 198.19.0.20/32 -p tcp -j REDIRECT --to-ports 8080",
    ]));
    let t = trace(&node, &Packet::tcp(ip("0.0.0.0"), ip("198.19.0.20"), 80));
    assert_eq!(output(&t), "LOCAL 127.0.0.1:8080", "{t}");
    let p = &t.paths[0];
    assert!(p.steps.iter().any(|s| s.effect == Effect::Loopback));
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(&s.effect, Effect::Route { reroute: true, .. }))
    );
    assert!(
        p.steps
            .iter()
            .any(|s| s.stage == "nat/PREROUTING" && matches!(s.effect, Effect::NatSkipped { .. }))
    );
    assert!(matches!(&p.verdict, Verdict::Delivered { dev, .. } if dev == "lo"));
}

#[test]
fn multipath_routes_fork_by_weight() {
    let mut node = dut();
    let mut r = Route::unicast("198.19.7.0/24".parse().unwrap(), None, None);
    let mut a = Nexthop::new(Some(ip("198.18.1.2")), Some(EXT1));
    a.weight = Some(1);
    let mut b = Nexthop::new(Some(ip("198.18.2.2")), Some(EXT2));
    b.weight = Some(3);
    r.nexthops = vec![a, b];
    r.multipath = true;
    node.routes.routes.push(r);
    let t = trace(
        &node,
        &Packet::tcp(ip(CLIENT), ip("198.19.7.1"), 80).arriving_on(NET),
    );
    assert_eq!(t.paths.len(), 2, "{t}");
    assert!((t.paths[0].probability - 0.75).abs() < 1e-9);
    assert!(matches!(&t.paths[0].verdict, Verdict::Forwarded { out_dev, .. } if out_dev == EXT2));
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::Route)
    );
}

#[test]
fn the_path_bound_reports_what_it_cut() {
    let mut lines = Vec::new();
    for i in 0..10 {
        lines.push(format!(
            "-A PREROUTING -m statistic --mode random --probability {:.11} -j DNAT --to-destination 198.19.1.{}",
            1.0 / (10 - i) as f64,
            10 + i
        ));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let node = nft(&nat(&refs));
    let p = Packet::tcp(ip(CLIENT), ip("198.19.0.9"), 80).arriving_on(NET);
    let t = trace(&node, &p);
    assert_eq!(t.paths.len(), 10, "the last rule has probability 1\n{t}");
    assert!(
        t.paths.iter().all(|p| (p.probability - 0.1).abs() < 1e-6),
        "{t}"
    );
    assert!(t.truncated.is_none());
    let opts = TraceOptions {
        max_paths: 4,
        ..TraceOptions::default()
    };
    let t = trace_with(&node, &p, &opts);
    let cut = t.truncated.as_ref().expect("truncated");
    let explored: f64 = t.paths.iter().map(|p| p.probability).sum();
    assert!(t.paths.len() <= 4);
    assert!(
        (explored + cut.unexplored_probability - 1.0).abs() < 1e-9,
        "{explored} + {cut:?}"
    );
    assert!(t.verdict_summary().contains("unexplored"));
}

#[test]
fn identical_outcomes_merge() {
    // a random LOG does not change where the packet goes: one path, p = 1
    let save = filter(
        "ACCEPT",
        &[],
        &["-A FORWARD -m statistic --mode random --probability 0.50000000000 -j LOG"],
    );
    let t = trace(&nft(&save), &to_ep1());
    assert_eq!(t.paths.len(), 1, "{t}");
    assert_eq!(t.paths[0].merged, 1);
    assert!((t.paths[0].probability - 1.0).abs() < 1e-9);
}

#[test]
fn json_uses_stable_tags_and_codes() {
    let t = trace(&nft(&filter("DROP", &[], &[])), &to_ep1());
    let v = serde_json::to_value(&t).unwrap();
    let verdict = &v["paths"][0]["verdict"];
    assert_eq!(verdict["verdict"], "dropped");
    assert_eq!(verdict["reason"], "NETFILTER_DROP");
    assert_eq!(verdict["by"]["kind"], "policy");
    assert_eq!(v["paths"][0]["steps"][0]["effect"]["kind"], "conntrack");
    assert_eq!(v["paths"][0]["steps"][0]["effect"]["state"], "NEW");
    assert_eq!(v["paths"][0]["steps"][2]["chain"], "FORWARD");
    let back: dataplane::trace::Trace = serde_json::from_value(v).unwrap();
    assert_eq!(back, t);
}

#[test]
fn reject_kinds_name_their_icmp() {
    for (with, icmp) in [
        ("icmp-port-unreachable", Some((3, 3))),
        ("icmp-host-prohibited", Some((3, 10))),
        ("tcp-reset", None),
    ] {
        let save = filter(
            "ACCEPT",
            &[],
            &[&format!("-A FORWARD -p tcp -j REJECT --reject-with {with}")],
        );
        match &trace(&nft(&save), &to_ep1()).paths[0].verdict {
            Verdict::Rejected { with: k, by } => {
                assert_eq!((k.name.as_str(), k.icmp), (with, icmp));
                assert_eq!(by.index, 1);
            }
            v => panic!("{v:?}"),
        }
    }
    let t = trace(
        &with(
            dut(),
            Backend::Nft,
            Family::V6,
            &filter("ACCEPT", &[], &["-A FORWARD -j REJECT"]),
        ),
        &Packet::tcp(ip("2001:db8::101"), ip("2001:db8:64:1::2"), 80).arriving_on(NET),
    );
    assert!(
        matches!(&t.paths[0].verdict, Verdict::Rejected { with, .. } if with.icmp == Some((1, 4))),
        "{t}"
    );
}

#[test]
fn addrtype_limit_iface_in_uses_the_input_device() {
    let save = table(
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        &[
            "-A PREROUTING -m addrtype --dst-type LOCAL --limit-iface-in -j MARK --set-xmark 0x1/0xffffffff",
            "-A PREROUTING -m addrtype --dst-type LOCAL -j MARK --set-xmark 0x2/0x2",
        ],
    );
    let node = nft(&save);
    // 198.18.1.1 is local, but on eth1: limited to eth0 it is not LOCAL
    let t = trace(
        &node,
        &Packet::tcp(ip(CLIENT), ip("198.18.1.1"), 80).arriving_on(NET),
    );
    assert_eq!(t.paths[0].final_packet.mark, 0x2, "{t}");
    let t = trace(
        &node,
        &Packet::tcp(ip(CLIENT), ip("198.18.0.11"), 80).arriving_on(NET),
    );
    assert_eq!(t.paths[0].final_packet.mark, 0x3, "{t}");
}

#[test]
fn ipsets_decide_set_matches() {
    let sets = dataplane::ipset::Sets::parse(
        "create blocked hash:ip family inet hashsize 1024 maxelem 65536\nadd blocked 198.18.65.3\n",
    )
    .unwrap();
    let node = nft(&filter(
        "ACCEPT",
        &[],
        &["-A FORWARD -m set --match-set blocked dst -j DROP"],
    ))
    .with_ipsets(sets);
    assert_eq!(output(&trace(&node, &to_ep1())), "198.18.65.2:80");
    let p = Packet::tcp(ip(CLIENT), ip(EP2), 80).arriving_on(NET);
    assert_eq!(output(&trace(&node, &p)), "DROP");
    // a set the node does not have: an assumption, not a match
    let node = nft(&filter(
        "ACCEPT",
        &[],
        &["-A FORWARD -m set --match-set missing dst -j DROP"],
    ));
    let t = trace(&node, &p);
    assert_eq!(output(&t), "198.18.65.3:80");
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::IpsetUnknown)
    );
}
