//! Property tests for the nft JSON reader: arbitrary bytes and arbitrary JSON never panic it;
//! JSON shaped like an nft dump, when accepted, writes back to JSON that reads to the same
//! model, prints as text or refuses cleanly, and evaluates every rule without panicking, with
//! branch probabilities summing to 1.

use dataplane::Packet;
use dataplane::iptables::NoEnv;
use dataplane::nft::Ruleset;
use proptest::prelude::*;
use serde_json::{Value, json};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u32>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const KINDS: &[&str] = &[
    "match",
    "vmap",
    "counter",
    "mangle",
    "dnat",
    "snat",
    "masquerade",
    "redirect",
    "reject",
    "log",
    "limit",
    "quota",
    "notrack",
    "set",
    "accept",
    "drop",
    "jump",
    "goto",
    "return",
    "continue",
    "payload",
    "meta",
    "ct",
    "fib",
    "numgen",
    "concat",
    "prefix",
    "range",
    "map",
    "elem",
    "&",
    "|",
    "^",
    "<<",
    ">>",
    "rt",
    "osf",
];
const KEYS: &[&str] = &[
    "op", "left", "right", "key", "data", "protocol", "field", "mode", "mod", "offset", "result",
    "flags", "addr", "port", "family", "val", "len", "target", "set", "elem", "type", "expr",
    "rate", "per", "timeout", "expires", "comment", "dir", "packets", "bytes",
];
const STRINGS: &[&str] = &[
    "==",
    "!=",
    "in",
    "<",
    ">=",
    "ip",
    "ip6",
    "tcp",
    "udp",
    "th",
    "saddr",
    "daddr",
    "dport",
    "sport",
    "l4proto",
    "mark",
    "state",
    "new",
    "established",
    "random",
    "inc",
    "type",
    "oif",
    "local",
    "198.18.0.1",
    "198.18.0.0",
    "2001:db8::1",
    "@s",
    "@m",
    "x",
    "eth*",
    "lo",
    "original",
    "flags",
    "syn",
    "icmp",
    "echo-request",
    "icmpx",
    "port-unreachable",
    "update",
    "add",
    "second",
    "fully-random",
];

/// JSON built from nft's vocabulary, to reach deep into the reader and the evaluator.
fn nftish() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u64..70000).prop_map(|n| json!(n)),
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            (prop::sample::select(KINDS), inner.clone()).prop_map(|(k, v)| json!({ k: v })),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..4).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// A well-formed nft expression with random parts.
fn expr() -> impl Strategy<Value = Value> {
    let proto =
        prop::sample::select(&["ip", "ip6", "tcp", "udp", "th", "icmp", "icmpv6", "sctp"][..]);
    let field = prop::sample::select(
        &[
            "saddr", "daddr", "dport", "sport", "protocol", "type", "flags", "nexthdr", "dscp",
        ][..],
    );
    let meta = prop::sample::select(
        &[
            "l4proto", "mark", "iifname", "oifname", "iif", "oif", "nfproto", "pkttype", "skuid",
            "cpu",
        ][..],
    );
    let ct = prop::sample::select(
        &[
            "state",
            "status",
            "mark",
            "direction",
            "ip daddr",
            "ip6 saddr",
            "proto-dst",
            "expiration",
        ][..],
    );
    let leaf = prop_oneof![
        (0u64..70000).prop_map(|n| json!(n)),
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
        any::<bool>().prop_map(Value::Bool),
        (proto, field).prop_map(|(p, f)| json!({"payload": {"protocol": p, "field": f}})),
        meta.prop_map(|k| json!({"meta": {"key": k}})),
        (
            ct,
            prop::option::of(prop::sample::select(&["original", "reply"][..]))
        )
            .prop_map(|(k, d)| match d {
                Some(d) => json!({"ct": {"key": k, "dir": d}}),
                None => json!({"ct": {"key": k}}),
            }),
        (
            prop::sample::select(&["type", "oif", "oifname"][..]),
            prop::collection::vec(
                prop::sample::select(&["saddr", "daddr", "iif", "oif", "mark"][..]),
                1..3
            )
        )
            .prop_map(|(r, f)| json!({"fib": {"result": r, "flags": f}})),
        (
            prop::sample::select(&["random", "inc"][..]),
            0u32..5,
            0u32..3
        )
            .prop_map(|(m, n, o)| json!({"numgen": {"mode": m, "mod": n, "offset": o}})),
        (
            prop::sample::select(&["198.18.0.0", "2001:db8::", "x"][..]),
            0u32..140
        )
            .prop_map(|(a, l)| json!({"prefix": {"addr": a, "len": l}})),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"concat": v})),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"set": v})),
            prop::collection::vec((inner.clone(), inner.clone()), 1..3).prop_map(
                |v| json!({"set": v.into_iter().map(|(k, d)| json!([k, d])).collect::<Vec<_>>()})
            ),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| json!({"range": [a, b]})),
            (
                prop::sample::select(&["&", "|", "^", "<<", ">>"][..]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, a, b)| json!({ op: [a, b] })),
            (inner.clone(), inner.clone()).prop_map(|(k, d)| json!({"map": {"key": k, "data": d}})),
            (inner.clone(), 0u64..100).prop_map(|(v, t)| json!({"elem": {"val": v, "timeout": t}})),
            prop::sample::select(&["accept", "drop", "return", "continue"][..])
                .prop_map(|v| json!({ v: null })),
            prop::sample::select(&["c", "nowhere"][..])
                .prop_map(|t| json!({"goto": {"target": t}})),
            prop::collection::vec(inner, 0..3).prop_map(Value::Array),
        ]
    })
}

/// A well-formed nft statement with random parts, or noise.
fn stmt() -> impl Strategy<Value = Value> {
    let op = prop::sample::select(&["==", "!=", "in", "<", ">", "<=", ">="][..]);
    prop_oneof![
        4 => (op, expr(), expr()).prop_map(|(op, l, r)| json!({"match": {"op": op, "left": l, "right": r}})),
        2 => (expr(), expr()).prop_map(|(k, d)| json!({"vmap": {"key": k, "data": d}})),
        1 => (expr(), expr()).prop_map(|(k, v)| json!({"mangle": {"key": k, "value": v}})),
        1 => (prop::sample::select(&["dnat", "snat", "masquerade", "redirect"][..]),
              prop::option::of(expr()), prop::option::of(expr()))
            .prop_map(|(k, a, p)| {
                let mut body = serde_json::Map::new();
                if let Some(a) = a { body.insert("addr".into(), a); }
                if let Some(p) = p { body.insert("port".into(), p); }
                json!({ k: body })
            }),
        1 => (prop::sample::select(&["add", "update", "delete"][..]), expr(), prop::sample::select(&["@s", "@m", "@none"][..]))
            .prop_map(|(op, e, s)| json!({"set": {"op": op, "elem": e, "set": s}})),
        1 => prop::sample::select(vec![
            json!({"counter": {"packets": 1, "bytes": 2}}), json!({"counter": "n"}),
            json!({"reject": {"type": "icmpx", "expr": "port-unreachable"}}), json!({"reject": null}),
            json!({"log": {"prefix": "p", "flags": "all"}}), json!({"notrack": null}),
            json!({"limit": {"rate": 5, "per": "second", "inv": true}}),
            json!({"quota": {"val": 5, "val_unit": "mbytes"}}), json!({"jump": {"target": "c"}}),
            json!({"accept": null}),
        ]),
        1 => nftish(),
    ]
}

fn dump(exprs: Vec<Value>, elems: Vec<Value>) -> Value {
    json!({"nftables": [
        {"table": {"family": "inet", "name": "t"}},
        {"set": {"family": "inet", "table": "t", "name": "s", "type": "ipv4_addr", "elem": elems.clone()}},
        {"map": {"family": "inet", "table": "t", "name": "m", "type": ["ipv4_addr", "inet_service"],
                 "map": "verdict", "elem": elems}},
        {"chain": {"family": "inet", "table": "t", "name": "c", "type": "filter", "hook": "input", "prio": 0}},
        {"rule": {"family": "inet", "table": "t", "chain": "c", "expr": exprs}},
    ]})
}

fn packets() -> Vec<Packet> {
    let v4 = |s: &str| s.parse().unwrap();
    vec![
        Packet::tcp(v4("198.18.0.1"), v4("198.18.0.2"), 80).arriving_on("eth0"),
        Packet::udp(v4("2001:db8::1"), v4("2001:db8::2"), 53),
        Packet::ping(v4("198.18.0.1"), v4("198.18.0.0")).arriving_on("lo"),
    ]
}

fn exercise(v: &Value) {
    let Ok(rs) = Ruleset::from_json_value(v) else {
        return;
    };
    let back = Ruleset::from_json_value(&rs.to_json()).expect("our own JSON reads back");
    assert_eq!(back, rs);
    let _ = rs.to_text();
    for t in &rs.tables {
        for c in &t.chains {
            for r in &c.rules {
                let _ = r.to_text(t.family);
                for pkt in packets() {
                    let out = r.eval(t, &pkt, &NoEnv);
                    let total: f64 = out.branches.iter().map(|b| b.probability).sum();
                    assert!((total - 1.0).abs() < 1e-6, "probabilities sum to {total}");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = Ruleset::from_json(&s);
    }

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        let _ = Ruleset::from_json(&v.to_string());
        exercise(&json!({"nftables": [v]}));
    }

    #[test]
    fn nft_shaped_json_round_trips_and_evaluates(
        exprs in prop::collection::vec(stmt(), 0..5),
        elems in prop::collection::vec(expr(), 0..4),
    ) {
        exercise(&dump(exprs, elems));
    }
}

#[test]
fn the_fixtures_survive_the_same_checks() {
    for name in ["kube-proxy.json", "firewall.json"] {
        let path = format!("{}/tests/fixtures/nft/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(text.split_once('\n').unwrap().1).unwrap();
        exercise(&v);
    }
}
