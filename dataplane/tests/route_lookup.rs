//! Lookup tables: flow -> outcome, deciding rule, table and route text, on the captured
//! `policy` and `node` fixtures (whose kernel answers `route_fixtures` also checks) and on
//! small hand-built states for what the kernel here cannot show (VRFs, unknown selectors).

mod common;

use std::net::IpAddr;

use common::{load, parse_args};
use dataplane::Family;
use dataplane::route::{
    AddrType, Address, Assumption, CandidateVerdict, Flow, InterfaceAddrs, Link, LinkKind,
    Mismatch, NexthopSkip, Outcome, Route, RouteState, RouteType, RpFilter, RpVerdict, Rule,
    RuleAction, RuleVerdict, TableId, TableResult,
};
use serde_json::Map;

struct Case {
    flow: &'static str,
    outcome: &'static str,
    rule: Option<u32>,
    table: Option<&'static str>,
    route: Option<&'static str>,
}

const fn case(
    flow: &'static str,
    outcome: &'static str,
    rule: Option<u32>,
    table: Option<&'static str>,
    route: Option<&'static str>,
) -> Case {
    Case {
        flow,
        outcome,
        rule,
        table,
        route,
    }
}

const POLICY: &[Case] = &[
    case(
        "198.18.64.9",
        "unicast via 198.18.0.2 dev n-p0 src 198.18.0.1",
        Some(250),
        Some("main"),
        Some("198.18.64.0/24 via 198.18.0.2 dev n-p0 metric 10"),
    ),
    case(
        "198.18.64.9 from 198.18.1.1",
        "unicast via 198.18.1.2 dev n-q0 src 198.18.1.1",
        Some(100),
        Some("100"),
        Some("198.18.64.0/24 via 198.18.1.2 dev n-q0 table 100"),
    ),
    case(
        "198.18.64.9 mark 0x110",
        "unicast via 198.18.1.2 dev n-q0 src 198.18.1.1",
        Some(110),
        Some("100"),
        Some("198.18.64.0/24 via 198.18.1.2 dev n-q0 table 100"),
    ),
    case(
        "198.18.65.9",
        "unicast via 198.18.0.2 dev n-p0 weight 3 src 198.18.0.1, via 198.18.1.2 dev n-q0 src 198.18.1.1",
        Some(250),
        Some("main"),
        Some(
            "198.18.65.0/24 proto bgp nexthop via 198.18.0.2 dev n-p0 weight 3 nexthop via 198.18.1.2 dev n-q0 weight 1",
        ),
    ),
    case(
        "198.18.66.9",
        "unicast via 198.18.0.2 dev n-p0 src 198.18.0.1",
        Some(250),
        Some("main"),
        Some(
            "198.18.66.0/24 nexthop via 198.18.0.2 dev n-p0 weight 1 nexthop via 198.18.4.2 dev n-x0 weight 1 dead linkdown",
        ),
    ),
    case(
        "198.18.67.9",
        "blackhole by route `blackhole 198.18.67.0/24` (Invalid argument)",
        Some(250),
        Some("main"),
        Some("blackhole 198.18.67.0/24"),
    ),
    case(
        "198.18.68.9",
        "unreachable by route `unreachable 198.18.68.0/24` (No route to host)",
        Some(250),
        Some("main"),
        Some("unreachable 198.18.68.0/24"),
    ),
    case(
        "198.18.69.9",
        "prohibit by route `prohibit 198.18.69.0/24` (Permission denied)",
        Some(250),
        Some("main"),
        Some("prohibit 198.18.69.0/24"),
    ),
    case(
        "198.18.70.9",
        "unicast via 198.18.1.2 dev n-q0 src 198.18.1.1",
        Some(32767),
        Some("default"),
        Some("default via 198.18.1.2 dev n-q0 table default"),
    ),
    case(
        "198.18.71.9",
        "unicast dev n-ld src 198.18.3.1",
        Some(250),
        Some("main"),
        Some("198.18.71.0/24 dev n-ld scope link linkdown"),
    ),
    case(
        "198.18.72.9",
        "unicast via 198.18.0.2 dev n-p0 src 198.18.1.1",
        Some(250),
        Some("main"),
        Some("198.18.72.0/24 via 198.18.0.2 dev n-p0 src 198.18.1.1"),
    ),
    case(
        "198.18.73.9 tos 0x10",
        "unicast via 198.18.1.2 dev n-q0 src 198.18.1.1",
        Some(250),
        Some("main"),
        Some("198.18.73.0/24 tos 0x10 via 198.18.1.2 dev n-q0"),
    ),
    case(
        "198.18.75.9",
        "unicast via 2001:db8:0:1::2 dev n-p0 src 198.18.0.1",
        Some(250),
        Some("main"),
        Some("198.18.75.0/24 via inet6 2001:db8:0:1::2 dev n-p0"),
    ),
    case(
        "198.18.0.5",
        "local dev lo src 198.18.0.1",
        Some(0),
        Some("local"),
        Some("local 198.18.0.5 dev n-p0 table local proto kernel scope host src 198.18.0.1"),
    ),
    case(
        "198.18.0.255",
        "broadcast dev n-p0 src 198.18.0.1",
        Some(0),
        Some("local"),
        Some("broadcast 198.18.0.255 dev n-p0 table local proto kernel scope link src 198.18.0.1"),
    ),
    case(
        "198.19.254.7",
        "local dev lo src 198.19.254.7",
        Some(0),
        Some("local"),
        Some("local 198.19.254.0/24 dev lo table local scope host"),
    ),
    case(
        "198.19.3.9",
        "prohibit by rule `130: from all to 198.19.3.0/24 prohibit` (Permission denied)",
        Some(130),
        None,
        None,
    ),
    case(
        "198.19.4.9",
        "blackhole by rule `140: from all to 198.19.4.0/24 blackhole` (Invalid argument)",
        Some(140),
        None,
        None,
    ),
    case(
        "198.19.5.9",
        "unreachable by rule `150: from all to 198.19.5.0/24 unreachable` (Network is unreachable)",
        Some(150),
        None,
        None,
    ),
    case(
        "198.19.6.9",
        "unicast via 198.18.1.2 dev n-q0 src 198.18.1.1",
        Some(230),
        Some("100"),
        Some("198.19.0.0/16 via 198.18.1.2 dev n-q0 table 100"),
    ),
    case(
        "198.19.2.9 from 198.18.1.1",
        "blackhole by route `blackhole 198.19.2.0/24 table 100` (Invalid argument)",
        Some(100),
        Some("100"),
        Some("blackhole 198.19.2.0/24 table 100"),
    ),
    case(
        "198.19.8.9",
        "unicast via 198.18.0.2 dev n-p0 src 198.18.0.1",
        Some(255),
        Some("main"),
        Some("default via 198.18.0.2 dev n-p0"),
    ),
    case(
        "198.18.67.9 oif n-q0",
        "unicast dev n-q0 src 198.18.1.1",
        Some(250),
        Some("main"),
        None,
    ),
    case(
        "198.18.99.9 from 198.18.0.77",
        "martian: source address is not local (Network is unreachable)",
        None,
        None,
        None,
    ),
    case(
        "198.18.64.9 from 198.18.1.2 iif n-q0",
        "unicast via 198.18.1.2 dev n-q0 src 198.18.1.2",
        Some(100),
        Some("100"),
        Some("198.18.64.0/24 via 198.18.1.2 dev n-q0 table 100"),
    ),
    case(
        "198.18.0.1 from 198.18.0.5 iif n-p0",
        "martian: received packet with a local source address (Invalid argument)",
        Some(0),
        Some("local"),
        None,
    ),
    case(
        "2001:db8:64::9",
        "unicast via 2001:db8:0:1::2 dev n-p0 weight 2 src 2001:db8:0:1::1, via 2001:db8:0:2::2 dev n-q0 src 2001:db8:0:2::1",
        Some(250),
        Some("main"),
        Some(
            "2001:db8:64::/64 metric 1024 pref medium nexthop via 2001:db8:0:1::2 dev n-p0 weight 2 nexthop via 2001:db8:0:2::2 dev n-q0 weight 1",
        ),
    ),
    case(
        "2001:db8:72::9 from 2001:db8:0:2::1",
        "unicast via 2001:db8:0:2::2 dev n-q0 src 2001:db8:0:2::1",
        Some(250),
        Some("main"),
        Some(
            "2001:db8:72::/64 from 2001:db8:0:2::/64 via 2001:db8:0:2::2 dev n-q0 metric 1024 pref medium",
        ),
    ),
    case(
        "2001:db8:100:1::9 from 2001:db8:0:2::1",
        "unicast via 2001:db8:0:1::2 dev n-p0 src 2001:db8:0:2::1",
        Some(32766),
        Some("main"),
        Some("default via 2001:db8:0:1::2 dev n-p0 metric 1024 pref medium"),
    ),
    case(
        "2001:db8:5::9",
        "unreachable by rule `150: from all to 2001:db8:5::/64 unreachable` (Network is unreachable)",
        Some(150),
        None,
        None,
    ),
];

fn check(state: &RouteState, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let l = state.lookup(&parse_args(c.flow));
        let got = (
            l.outcome.to_string(),
            l.deciding_step().map(|s| s.rule.priority),
            l.table().map(|t| t.to_string()),
            l.outcome.route().map(|r| r.to_string()),
        );
        let want = (
            c.outcome.to_string(),
            c.rule,
            c.table.map(str::to_string),
            c.route.map(str::to_string),
        );
        if got != want {
            failures.push(format!("{}:\n  got  {got:?}\n  want {want:?}", c.flow));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn policy_fixture_lookup_table() {
    check(&load("policy"), POLICY);
}

#[test]
fn node_fixture_lookup_table() {
    check(
        &load("node"),
        &[
            // cali2 has no IPv4 address: inet_select_addr falls back to the first global
            // address in interface order, the LoadBalancer IP on lo (as the kernel answered).
            case(
                "198.18.64.2",
                "unicast dev cali2 src 198.19.255.10",
                Some(32766),
                Some("main"),
                Some("198.18.64.2 dev cali2 scope link"),
            ),
            case(
                "198.18.64.9",
                "blackhole by route `blackhole 198.18.64.0/24 proto bird` (Invalid argument)",
                Some(32766),
                Some("main"),
                Some("blackhole 198.18.64.0/24 proto bird"),
            ),
            case(
                "198.18.66.7 from 198.18.64.2 iif cali2",
                "unicast via 198.18.0.1 dev eth0 weight 3 src 198.18.64.2, via 198.18.1.1 dev eth1 src 198.18.64.2",
                Some(32766),
                Some("main"),
                Some(
                    "198.18.66.0/24 proto bgp metric 20 nexthop via 198.18.0.1 dev eth0 weight 3 nexthop via 198.18.1.1 dev eth1 weight 1",
                ),
            ),
            case(
                "198.19.0.10",
                "unicast via 198.18.0.1 dev eth0 src 198.18.0.10",
                Some(32766),
                Some("main"),
                Some("default via 198.18.0.1 dev eth0 metric 100"),
            ),
        ],
    );
}

#[test]
fn steps_explain_goto_not_and_suppression() {
    let state = load("policy");
    // 210 jumps over 220 (a blackhole) to 230.
    let l = state.lookup(&parse_args("198.19.6.9"));
    let prios: Vec<u32> = l.steps.iter().map(|s| s.rule.priority).collect();
    assert!(prios.contains(&210) && !prios.contains(&220), "{prios:?}");
    let goto = l.steps.iter().find(|s| s.rule.priority == 210).unwrap();
    assert_eq!(
        goto.verdict,
        RuleVerdict::Goto {
            target: 230,
            resolved: true
        }
    );
    // `not to 198.18.0.0/15`: the selector matched, so the inverted rule does not.
    let not = l.steps.iter().find(|s| s.rule.priority == 180).unwrap();
    assert_eq!(
        not.verdict,
        RuleVerdict::NoMatch {
            why: Mismatch::Inverted
        }
    );
    // 198.19.8.9: main's default route is refused by `suppress_prefixlength 0` at 250.
    let l = state.lookup(&parse_args("198.19.8.9"));
    let s250 = l.steps.iter().find(|s| s.rule.priority == 250).unwrap();
    match &s250.verdict {
        RuleVerdict::Lookup(t) => {
            assert!(matches!(t.result, TableResult::Suppressed { .. }), "{t:?}")
        }
        other => panic!("{other:?}"),
    }
    // An unresolved goto continues with the next rule.
    let s280 = l.steps.iter().find(|s| s.rule.priority == 280);
    assert!(s280.is_none(), "255 decided before 280");
    // mark 0x10 matches fwmark 0x10/0xff; mark 0x11 does not.
    let l = state.lookup(&parse_args("198.18.64.9 mark 0x11"));
    let s110 = l.steps.iter().find(|s| s.rule.priority == 110).unwrap();
    assert_eq!(
        s110.verdict,
        RuleVerdict::NoMatch {
            why: Mismatch::Fwmark {
                mark: 0x10,
                mask: 0xff,
                got: 0x11
            }
        }
    );
    // The dead next hop is reported as such.
    let l = state.lookup(&parse_args("198.18.66.9"));
    let Some(RuleVerdict::Lookup(t)) = l.deciding_step().map(|s| &s.verdict) else {
        panic!()
    };
    assert_eq!(t.candidates[0].verdict, CandidateVerdict::Chosen);
    assert!(l.assumptions.contains(&Assumption::UidAssumedRoot));
}

#[test]
fn addr_types_and_local_addresses() {
    let state = load("policy");
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(state.addr_type(ip("198.18.0.1")), AddrType::Local);
    assert_eq!(state.addr_type(ip("198.18.0.5")), AddrType::Local);
    assert_eq!(state.addr_type(ip("198.19.254.77")), AddrType::Local);
    assert_eq!(state.addr_type(ip("198.18.0.255")), AddrType::Broadcast);
    assert_eq!(state.addr_type(ip("255.255.255.255")), AddrType::Broadcast);
    assert_eq!(state.addr_type(ip("0.1.2.3")), AddrType::Broadcast);
    assert_eq!(state.addr_type(ip("224.0.0.1")), AddrType::Multicast);
    // A blackhole route does not make an IPv4 address BLACKHOLE for addrtype: the kernel's
    // local-table lookup fails and inet_addr_type answers UNICAST.
    assert_eq!(state.addr_type(ip("198.18.67.9")), AddrType::Unicast);
    assert_eq!(
        state.addr_type_on(ip("198.18.0.1"), Some("n-q0")),
        AddrType::Unicast
    );
    assert_eq!(state.addr_type(ip("2001:db8:0:1::1")), AddrType::Local);
    assert_eq!(state.addr_type(ip("2001:db8:68::1")), AddrType::Unreachable);
    assert_eq!(state.addr_type(ip("2001:db8:0:1::")), AddrType::Anycast);
    assert!(state.addrtype_matches(ip("2001:db8:0:1::7"), AddrType::Unicast, None));
    assert!(!state.addrtype_matches(ip("2001:db8:67::1"), AddrType::Prohibit, None));
    assert!(state.is_local_address(ip("198.19.255.1")));
    assert!(state.is_local_address(ip("2001:db8:0:1::9")));
    assert!(!state.is_local_address(ip("198.18.0.2")));
}

#[test]
fn reverse_path_strict_and_loose() {
    let state = load("policy");
    // From the n-p0 subnet, arriving on n-p0: the route back uses n-p0.
    let f = parse_args("198.18.99.9 from 198.18.0.2 iif n-p0");
    assert_eq!(
        state
            .reverse_path(&f, Some("n-p0"), RpFilter::Strict, false)
            .verdict,
        RpVerdict::Pass
    );
    // The same source arriving on n-q0: strict fails, loose passes.
    let f = parse_args("198.18.99.9 from 198.18.0.2 iif n-q0");
    assert!(matches!(
        state
            .reverse_path(&f, Some("n-p0"), RpFilter::Strict, false)
            .verdict,
        RpVerdict::Fail { .. }
    ));
    assert_eq!(
        state
            .reverse_path(&f, Some("n-p0"), RpFilter::Loose, false)
            .verdict,
        RpVerdict::Pass
    );
    // No route back at all (a blackhole): both modes fail; off passes.
    let f = parse_args("198.18.99.9 from 198.18.67.1 iif n-q0");
    assert!(matches!(
        state
            .reverse_path(&f, Some("n-p0"), RpFilter::Loose, false)
            .verdict,
        RpVerdict::Fail { .. }
    ));
    assert_eq!(
        state
            .reverse_path(&f, Some("n-p0"), RpFilter::Off, false)
            .verdict,
        RpVerdict::Pass
    );
    // Our own address as the source is martian whatever the mode.
    let f = parse_args("198.18.99.9 from 198.18.1.1 iif n-q0");
    assert!(matches!(
        state
            .reverse_path(&f, Some("n-p0"), RpFilter::Off, false)
            .verdict,
        RpVerdict::Martian { .. }
    ));
    assert_eq!(RpFilter::from_sysctl(2), RpFilter::Loose);
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

/// A small hand-built node: eth0 198.18.0.1/24 (up), eth1 (down), vrf-blue (table 10) with
/// port eth2.
fn small() -> RouteState {
    let mut vrf = Link::new(4, "vrf-blue", &["UP", "LOWER_UP"]);
    vrf.kind = Some(LinkKind::Vrf);
    let mut info = Map::new();
    info.insert("info_data".into(), serde_json::json!({"table": 10}));
    vrf.linkinfo_extra = info;
    let mut eth2 = Link::new(5, "eth2", &["UP", "LOWER_UP"]);
    eth2.master = Some("vrf-blue".into());
    let mut eth1 = Link::new(3, "eth1", &["BROADCAST"]);
    eth1.group = Some("default".into());
    let addrs = |idx, name: &str, a: &[(&str, u8)]| InterfaceAddrs {
        ifindex: idx,
        ifname: name.into(),
        addrs: a
            .iter()
            .map(|(ip, len)| Address::new(ip.parse().unwrap(), *len))
            .collect(),
        other_addrs: Vec::new(),
        extra: Map::new(),
    };
    let mut rules = Rule::defaults(Family::V4);
    let mut l3 = Rule::lookup(Family::V4, 1000, TableId::UNSPEC);
    l3.l3mdev = true;
    rules.push(l3);
    rules.sort_by_key(|r| r.priority);
    RouteState {
        links: vec![
            Link::new(1, "lo", &["LOOPBACK", "UP", "LOWER_UP"]),
            Link::new(2, "eth0", &["UP", "LOWER_UP"]),
            eth1,
            vrf,
            eth2,
        ],
        addresses: vec![
            addrs(1, "lo", &[("127.0.0.1", 8)]),
            addrs(2, "eth0", &[("198.18.0.1", 24)]),
            addrs(5, "eth2", &[("198.18.9.1", 24)]),
        ],
        routes: vec![
            Route::unicast(net("198.18.0.0/24"), None, Some("eth0")),
            Route::unicast(
                net("198.18.50.0/24"),
                Some("198.18.0.2".parse().unwrap()),
                Some("eth1"),
            )
            .with_metric(1),
            Route::unicast(
                net("198.18.50.0/24"),
                Some("198.18.0.3".parse().unwrap()),
                Some("eth0"),
            )
            .with_metric(9),
            Route::unicast(
                net("198.18.60.0/24"),
                Some("198.18.9.2".parse().unwrap()),
                Some("eth2"),
            )
            .in_table(TableId::Id(10)),
            Route::of_type(RouteType::Other("nat".into()), net("198.18.70.0/24")),
        ],
        rules,
        ..RouteState::default()
    }
}

#[test]
fn down_devices_and_vrfs_in_a_hand_built_state() {
    let state = small();
    // The metric-1 route goes through eth1, which is down: the kernel would have marked its
    // next hop dead, so the metric-9 route wins and the step says why.
    let l = state.lookup(&Flow::to("198.18.50.7".parse().unwrap()));
    assert_eq!(
        l.outcome.to_string(),
        "unicast via 198.18.0.3 dev eth0 src 198.18.0.1"
    );
    let Some(RuleVerdict::Lookup(t)) = l.deciding_step().map(|s| &s.verdict) else {
        panic!("{l:?}")
    };
    assert_eq!(
        t.candidates[0].verdict,
        CandidateVerdict::NoUsableNexthop {
            skips: vec![NexthopSkip::DeviceDown { dev: "eth1".into() }]
        }
    );
    // The l3mdev rule sends flows arriving on a VRF port to the VRF's table.
    let l = state.lookup(&parse_args("198.18.60.7 from 198.18.9.2 iif eth2"));
    assert_eq!(l.table(), Some(&TableId::Id(10)), "{l:?}");
    assert_eq!(l.deciding_step().unwrap().rule.priority, 1000);
    let l = state.lookup(&Flow::to("198.18.60.7".parse().unwrap()));
    assert_eq!(l.outcome.to_string(), "no route (Network is unreachable)");
    // An unknown route type is reported, not guessed.
    let l = state.lookup(&Flow::to("198.18.70.7".parse().unwrap()));
    assert!(matches!(l.outcome, Outcome::NotModelled { .. }), "{l:?}");
}

#[test]
fn unknown_selectors_and_actions_stop_the_lookup() {
    let mut state = small();
    let mut tun = Rule::lookup(Family::V4, 500, TableId::MAIN);
    tun.extra.insert("tun_id".into(), 5.into());
    state.rules.push(tun);
    let mut odd = Rule::lookup(Family::V4, 600, TableId::MAIN);
    odd.action = RuleAction::Other("nat".into());
    state.rules.push(odd);
    state.rules.sort_by_key(|r| r.priority);
    let l = state.lookup(&Flow::to("198.18.0.7".parse().unwrap()));
    assert_eq!(
        l.outcome.to_string(),
        "not modelled: rule `500: from all tun_id 5 lookup main` has selector `tun_id`"
    );
    state.rules.retain(|r| r.priority != 500);
    let l = state.lookup(&Flow::to("198.18.0.7".parse().unwrap()));
    assert_eq!(l.outcome.to_string(), "not modelled: rule action `nat`");
}

#[test]
fn ignore_routes_with_linkdown_is_honoured() {
    let mut state = load("policy");
    let flow = Flow::to("198.18.71.9".parse().unwrap());
    assert_eq!(
        state.lookup(&flow).outcome.to_string(),
        "unicast dev n-ld src 198.18.3.1"
    );
    state.settings.ignore_routes_with_linkdown = Some(true);
    // The only main route is skipped; 255 (main, suppress_ifgroup) finds none either, and
    // the default route is refused at 250 but taken at 255.
    assert_eq!(
        state.lookup(&flow).outcome.to_string(),
        "unicast via 198.18.0.2 dev n-p0 src 198.18.0.1"
    );
}

#[test]
fn forwarding_off_and_unknown() {
    let mut state = load("node");
    let flow = parse_args("198.19.0.10 from 198.18.64.2 iif cali2");
    state.settings.ipv4_forwarding = Some(false);
    assert_eq!(
        state.lookup(&flow).outcome.to_string(),
        "forwarding disabled (No route to host)"
    );
    state.settings.ipv4_forwarding = None;
    let l = state.lookup(&flow);
    assert!(matches!(l.outcome, Outcome::Unicast { .. }));
    assert!(
        l.assumptions
            .contains(&Assumption::ForwardingAssumed { family: Family::V4 })
    );
}
