//! Property tests: the `ip -j` parsers never panic on garbage and round-trip what they
//! accept; the lookup never panics and agrees with a brute-force longest-prefix oracle.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::Family;
use dataplane::route::{
    Flow, InterfaceAddrs, Link, Outcome, Route, RouteState, RouteType, Rule, RuleAction, TableId,
};
use ipnet::IpNet;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Field names the parsers look at, so random objects reach the typed code paths.
const KEYS: &[&str] = &[
    "ifindex",
    "ifname",
    "flags",
    "mtu",
    "operstate",
    "link_type",
    "address",
    "master",
    "group",
    "link",
    "link_index",
    "link_netnsid",
    "linkinfo",
    "info_kind",
    "info_slave_kind",
    "info_data",
    "addr_info",
    "family",
    "local",
    "prefixlen",
    "broadcast",
    "scope",
    "label",
    "secondary",
    "valid_life_time",
    "type",
    "dst",
    "from",
    "tos",
    "table",
    "protocol",
    "prefsrc",
    "metric",
    "gateway",
    "via",
    "host",
    "dev",
    "weight",
    "nexthops",
    "pref",
    "metrics",
    "priority",
    "not",
    "src",
    "srclen",
    "dstlen",
    "fwmark",
    "fwmask",
    "iif",
    "oif",
    "iif_detached",
    "l3mdev",
    "uid_start",
    "uid_end",
    "ipproto",
    "sport",
    "sport_start",
    "sport_end",
    "dport",
    "goto",
    "nop",
    "action",
    "suppress_prefixlen",
    "suppress_ifgroup",
    "unresolved",
    "links",
    "routes",
    "rules",
    "addresses",
    "ipv4",
    "ipv6",
    "settings",
];

const WORDS: &[&str] = &[
    "all",
    "default",
    "main",
    "local",
    "100",
    "inet",
    "inet6",
    "198.18.0.1",
    "198.18.0.0/24",
    "2001:db8::1",
    "2001:db8::/64",
    "0x10",
    "0xff",
    "0x",
    "link",
    "host",
    "global",
    "bird",
    "tcp",
    "gre",
    "ipproto-17",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "veth",
    "UP",
    "LOWER_UP",
    "lo",
    "eth0",
    "",
    "\u{1f600}",
    "-1",
    "300",
    "198.18.0.0/33",
    "::/129",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u64..300).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        proptest::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..10).prop_map(
                |kv| {
                    let mut m = Map::new();
                    for (k, v) in kv {
                        m.insert(k.to_string(), v);
                    }
                    Value::Object(m)
                }
            ),
        ]
    })
}

fn documents() -> impl Strategy<Value = Value> {
    prop_oneof![
        value(),
        proptest::collection::vec(value(), 0..5).prop_map(Value::Array),
    ]
}

/// Parses with every parser; whatever is accepted must round-trip through its emitter.
fn parse_everything(text: &str) {
    if let Ok(links) = Link::parse_doc(text) {
        let again = Value::Array(links.iter().map(Link::to_value).collect()).to_string();
        assert_eq!(Link::parse_doc(&again).unwrap(), links);
    }
    if let Ok(addrs) = InterfaceAddrs::parse_doc(text) {
        let again = Value::Array(addrs.iter().map(InterfaceAddrs::to_value).collect()).to_string();
        assert_eq!(InterfaceAddrs::parse_doc(&again).unwrap(), addrs);
    }
    for family in [Family::V4, Family::V6] {
        if let Ok(routes) = Route::parse_doc(family, text) {
            let again = Value::Array(routes.iter().map(Route::to_value).collect()).to_string();
            assert_eq!(Route::parse_doc(family, &again).unwrap(), routes, "{again}");
            for r in &routes {
                let _ = (r.to_string(), r.add_args());
            }
        }
        if let Ok(rules) = Rule::parse_doc(family, text) {
            let again = Value::Array(rules.iter().map(Rule::to_value).collect()).to_string();
            assert_eq!(Rule::parse_doc(family, &again).unwrap(), rules, "{again}");
            for r in &rules {
                let _ = (r.to_string(), r.add_args());
            }
        }
    }
    if let Ok(state) = RouteState::from_json_str(text) {
        let again = state.to_json().to_string();
        assert_eq!(RouteState::from_json_str(&again).unwrap(), state);
        let _ = state.to_ip_batch();
        for dst in ["198.18.0.1", "2001:db8::1", "0.0.0.0", "255.255.255.255"] {
            let _ = state.lookup(&Flow::to(dst.parse().unwrap()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        parse_everything(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_json_shapes_never_panic(doc in documents()) {
        parse_everything(&doc.to_string());
    }
}

/// A random route of the main table inside 198.18.0.0/16 (IPv4) or 2001:db8::/48 (IPv6).
fn route(family: Family) -> impl Strategy<Value = Route> {
    let kind = prop_oneof![
        4 => Just(RouteType::Unicast),
        1 => Just(RouteType::Blackhole),
        1 => Just(RouteType::Unreachable),
        1 => Just(RouteType::Prohibit),
        1 => Just(RouteType::Throw),
    ];
    (any::<u32>(), 0u8..=16, kind, 0u32..4, 0usize..2).prop_map(
        move |(bits, extra, kind, metric, dev)| {
            let dst = match family {
                Family::V4 => {
                    let len = 16 + extra;
                    let addr = Ipv4Addr::from(0xc612_0000 | (bits & 0xffff));
                    IpNet::new(IpAddr::V4(addr), len).unwrap().trunc()
                }
                Family::V6 => {
                    let len = 48 + extra;
                    let addr = Ipv6Addr::from(
                        (0x2001_0db8_0000u128 << 80) | (u128::from(bits & 0xffff) << 64),
                    );
                    IpNet::new(IpAddr::V6(addr), len).unwrap().trunc()
                }
            };
            let dev = ["eth0", "eth1"][dev];
            let mut r = if kind == RouteType::Unicast {
                Route::unicast(dst, None, Some(dev))
            } else {
                Route::of_type(kind, dst)
            };
            r.metric = Some(metric);
            r
        },
    )
}

fn state_with(routes: Vec<Route>) -> RouteState {
    let mut rules = Rule::defaults(Family::V4);
    rules.extend(Rule::defaults(Family::V6));
    RouteState {
        links: vec![
            Link::new(1, "lo", &["LOOPBACK", "UP", "LOWER_UP"]),
            Link::new(2, "eth0", &["UP", "LOWER_UP"]),
            Link::new(3, "eth1", &["UP", "LOWER_UP"]),
        ],
        routes,
        rules,
        ..RouteState::default()
    }
}

/// Longest prefix, then lowest metric, then the first one listed.
fn oracle(routes: &[Route], dst: IpAddr) -> Option<&Route> {
    let mut best: Option<&Route> = None;
    for r in routes.iter().filter(|r| r.dst.contains(&dst)) {
        let better = match best {
            None => true,
            Some(b) => {
                r.dst.prefix_len() > b.dst.prefix_len()
                    || (r.dst.prefix_len() == b.dst.prefix_len() && r.metric() < b.metric())
            }
        };
        if better {
            best = Some(r);
        }
    }
    best
}

fn check_against_oracle(routes: Vec<Route>, dst: IpAddr) -> Result<(), TestCaseError> {
    let state = state_with(routes);
    let lookup = state.lookup(&Flow::to(dst));
    let expected = oracle(&state.routes, dst);
    match (expected, &lookup.outcome) {
        (None, Outcome::NoRoute) => {}
        (Some(r), Outcome::NoRoute) if r.kind == RouteType::Throw => {}
        (
            Some(r),
            Outcome::Unicast {
                route: Some(got), ..
            },
        ) if r.kind == RouteType::Unicast => {
            prop_assert_eq!(got, r);
        }
        (
            Some(r),
            Outcome::Blackhole { .. } | Outcome::Unreachable { .. } | Outcome::Prohibit { .. },
        ) if r.kind.is_reject() => {
            prop_assert_eq!(lookup.outcome.route(), Some(r));
        }
        (e, o) => prop_assert!(false, "oracle {:?}, lookup {}", e.map(|r| r.to_string()), o),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn ipv4_lookup_is_longest_prefix_then_metric(
        routes in proptest::collection::vec(route(Family::V4), 0..24),
        low in any::<u16>(),
    ) {
        let dst = IpAddr::V4(Ipv4Addr::from(0xc612_0000 | u32::from(low)));
        check_against_oracle(routes, dst)?;
    }

    #[test]
    fn ipv6_lookup_is_longest_prefix_then_metric(
        routes in proptest::collection::vec(route(Family::V6), 0..24),
        low in any::<u16>(),
        iid in any::<u64>(),
    ) {
        let dst = IpAddr::V6(Ipv6Addr::from(
            (0x2001_0db8_0000u128 << 80) | (u128::from(low) << 64) | u128::from(iid),
        ));
        check_against_oracle(routes, dst)?;
    }

    #[test]
    fn random_rules_never_panic(
        routes in proptest::collection::vec(route(Family::V4), 0..12),
        rules in proptest::collection::vec((0u32..40, 0u32..6, any::<bool>(), 0u32..4, 0u8..33), 0..12),
        low in any::<u16>(),
        mark in 0u32..4,
    ) {
        let mut state = state_with(routes);
        for (prio, action, not, fwmark, srclen) in rules {
            let mut r = Rule::lookup(Family::V4, prio, TableId::Id(100 + action % 3));
            r.not = not;
            r.action = match action {
                0 => RuleAction::Goto(prio.saturating_add(fwmark)),
                1 => RuleAction::Nop,
                2 => RuleAction::Blackhole,
                3 => RuleAction::Table(TableId::MAIN),
                4 => RuleAction::Goto(prio / 2),
                _ => RuleAction::Unreachable,
            };
            r.fwmark = (fwmark > 0).then_some(fwmark);
            r.src = (srclen > 0).then(|| IpNet::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)), srclen).unwrap());
            state.rules.push(r);
        }
        let dst = IpAddr::V4(Ipv4Addr::from(0xc612_0000 | u32::from(low)));
        let lookup = state.lookup(&Flow::to(dst).mark(mark));
        prop_assert!(lookup.steps.len() <= state.rules.len() * 2 + 4);
        let _ = lookup.outcome.to_string();
    }
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

/// Plausible `ip -j -4 route` objects (with an unknown field): all must parse and round-trip.
fn plausible_route() -> impl Strategy<Value = Value> {
    let types = proptest::sample::select(vec![
        "unicast",
        "local",
        "broadcast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
        "anycast",
        "multicast",
        "nat",
        "17",
    ]);
    let flags = proptest::sample::subsequence(
        vec!["onlink", "linkdown", "dead", "offload", "rt_trap"],
        0..3,
    );
    let hop = (any::<u8>(), opt(1u16..=256), flags.clone()).prop_map(|(g, w, f)| {
        let mut m =
            serde_json::json!({"gateway": format!("198.18.0.{g}"), "dev": "eth0", "flags": f});
        if let Some(w) = w {
            m["weight"] = w.into();
        }
        m
    });
    (
        (
            opt(types),
            any::<u32>(),
            0u8..=32,
            opt(any::<u8>()),
            opt(proptest::sample::select(vec![
                "main",
                "local",
                "100",
                "4000000000",
                "blue",
            ])),
        ),
        (
            opt(proptest::sample::select(vec![
                "kernel", "bird", "bgp", "242", "sharp",
            ])),
            opt(proptest::sample::select(vec![
                "link", "host", "global", "200",
            ])),
        ),
        (
            opt(any::<u32>()),
            flags,
            opt(proptest::collection::vec(hop, 0..4)),
            opt(value()),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((t, bits, len, gw, table), (proto, scope), (metric, flags, hops, extra, tos))| {
                let dst = IpNet::new(IpAddr::V4(Ipv4Addr::from(bits)), len)
                    .unwrap()
                    .trunc();
                let mut m =
                    serde_json::json!({"dst": dataplane::route::prefix_text(&dst), "flags": flags});
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        m[k] = v;
                    }
                };
                put("type", t.map(Value::from));
                put("table", table.map(Value::from));
                put("protocol", proto.map(Value::from));
                put("scope", scope.map(Value::from));
                put("metric", metric.map(Value::from));
                put("tos", tos.then(|| Value::from("0x10")));
                put("x_unknown", extra);
                match hops {
                    Some(h) => put("nexthops", Some(Value::Array(h))),
                    None => {
                        put("gateway", gw.map(|g| Value::from(format!("198.18.1.{g}"))));
                        put("dev", Some("eth1".into()));
                    }
                }
                m
            },
        )
}

/// Plausible `ip -j rule` objects: all must parse and round-trip.
fn plausible_rule() -> impl Strategy<Value = Value> {
    (
        (
            any::<u32>(),
            any::<bool>(),
            opt((any::<u32>(), 0u8..=32)),
            opt((any::<u32>(), 1u8..=32)),
        ),
        (
            opt(any::<u32>()),
            opt(any::<u32>()),
            opt(proptest::sample::select(vec!["lo", "eth0"])),
            any::<bool>(),
        ),
        (
            opt(proptest::sample::select(vec![
                "tcp",
                "udp",
                "gre",
                "ipproto-200",
            ])),
            opt((any::<u16>(), any::<u16>())),
            opt(any::<u16>()),
        ),
        (
            0u8..6,
            opt(0u8..=128),
            opt(proptest::sample::select(vec!["default", "7"])),
        ),
    )
        .prop_map(
            |(
                (prio, not, src, dst),
                (mark, mask, iif, detached),
                (proto, sport, dport),
                (action, spl, sig),
            )| {
                let mut m = serde_json::json!({"priority": prio, "src": "all"});
                if not {
                    m["not"] = Value::Null;
                }
                if let Some((a, l)) = src {
                    let n = IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), l)
                        .unwrap()
                        .trunc();
                    if l > 0 {
                        m["src"] = n.addr().to_string().into();
                        if l < 32 {
                            m["srclen"] = l.into();
                        }
                    }
                }
                if let Some((a, l)) = dst {
                    let n = IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), l)
                        .unwrap()
                        .trunc();
                    m["dst"] = n.addr().to_string().into();
                    if l < 32 {
                        m["dstlen"] = l.into();
                    }
                }
                if let Some(v) = mark {
                    m["fwmark"] = format!("{v:#x}").into();
                }
                if let Some(v) = mask {
                    m["fwmask"] = format!("{v:#x}").into();
                }
                if let Some(i) = iif {
                    m["iif"] = i.into();
                    if detached {
                        m["iif_detached"] = Value::Null;
                    }
                }
                if let Some(p) = proto {
                    m["ipproto"] = p.into();
                }
                if let Some((a, b)) = sport {
                    m["sport_start"] = a.min(b).into();
                    m["sport_end"] = a.max(b).into();
                }
                if let Some(p) = dport {
                    m["dport"] = p.into();
                }
                match action {
                    0 => m["table"] = "main".into(),
                    1 => m["goto"] = prio.saturating_add(1).into(),
                    2 => m["nop"] = Value::Null,
                    3 => m["action"] = "blackhole".into(),
                    4 => m["action"] = "prohibit".into(),
                    _ => m["table"] = "100".into(),
                }
                if let Some(n) = spl {
                    m["suppress_prefixlen"] = n.into();
                }
                if let Some(g) = sig {
                    m["suppress_ifgroup"] = g.into();
                }
                m
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn plausible_routes_parse_and_round_trip(objs in proptest::collection::vec(plausible_route(), 0..6)) {
        let text = Value::Array(objs).to_string();
        let routes = Route::parse_doc(Family::V4, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let again = Value::Array(routes.iter().map(Route::to_value).collect()).to_string();
        prop_assert_eq!(&Route::parse_doc(Family::V4, &again).unwrap(), &routes);
        let state = state_with(routes);
        let _ = state.to_ip_batch();
        let _ = state.lookup(&Flow::to("198.18.0.9".parse().unwrap()).oif("eth0"));
        let _ = state.lookup(&Flow::to("198.18.0.9".parse().unwrap()).from("198.18.0.1".parse().unwrap()).iif("eth1"));
    }

    #[test]
    fn plausible_rules_parse_and_round_trip(objs in proptest::collection::vec(plausible_rule(), 0..8)) {
        let text = Value::Array(objs).to_string();
        let rules = Rule::parse_doc(Family::V4, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let again = Value::Array(rules.iter().map(Rule::to_value).collect()).to_string();
        prop_assert_eq!(&Rule::parse_doc(Family::V4, &again).unwrap(), &rules);
        let mut state = state_with(Vec::new());
        state.rules.extend(rules);
        let _ = state.lookup(&Flow::to("198.18.0.9".parse().unwrap()).iif("lo"));
    }
}
