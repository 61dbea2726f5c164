//! Property tests: no parser panics on arbitrary input, and generated models survive
//! emit -> parse unchanged.

use dataplane::Family;
use dataplane::conntrack::Conntrack;
use dataplane::ipset::Sets;
use dataplane::iptables::{
    AddrMask, Chain, Iface, MarkMatch, Match, Multiport, MultiportDir, Nat, NatRange, Neg, Policy,
    PortMatch, PortRange, ProtoSpec, RestoreScript, Rule, Ruleset, Statistic, Table, Target,
};
use dataplane::node::Sysctls;
use proptest::prelude::*;

const WORDS: &[&str] = &[
    "*filter",
    "*nat",
    ":",
    ":A",
    "- [0:0]",
    "ACCEPT",
    "DROP",
    "COMMIT",
    "-A",
    "-I",
    "-D",
    "-X",
    "-N",
    "-F",
    "-P",
    "A",
    "B",
    "INPUT",
    "-j",
    "-g",
    "-m",
    "tcp",
    "udp",
    "comment",
    "--comment",
    "\"",
    "\"x y\"",
    "!",
    "-s",
    "-d",
    "198.18.0.1/32",
    "2001:db8::/64",
    "-p",
    "--dport",
    "80",
    "1:2",
    "--probability",
    "statistic",
    "--mode",
    "random",
    "recent",
    "--rcheck",
    "--name",
    "[1:2]",
    "-c",
    "DNAT",
    "--to-destination",
    "[2001:db8::1]:80",
    "create",
    "add",
    "hash:ip",
    "hash:net",
    "family",
    "inet6",
    "nomatch",
    "timeout",
    "\\",
    "#",
    "\n",
    " ",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 0..60).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Ruleset::parse(Family::V4, &text);
        let _ = Ruleset::parse(Family::V6, &text);
        let _ = RestoreScript::parse(Family::V4, &text);
        let _ = Rule::parse_spec(Family::V4, &text);
        let _ = Sets::parse(&text);
        let _ = Conntrack::parse(&text);
        let _ = Sysctls::parse(&text);
    }

    #[test]
    fn token_soup_never_panics(a in soup(), b in soup()) {
        let text = format!("*filter\n:A - [0:0]\n{a}\n{b}\nCOMMIT\n");
        for fam in [Family::V4, Family::V6] {
            if let Ok(rs) = Ruleset::parse(fam, &text) {
                // Whatever parses prints back and parses again to the same model.
                prop_assert_eq!(Ruleset::parse(fam, &rs.to_save()).unwrap(), rs);
            }
            if let Ok(script) = RestoreScript::parse(fam, &text) {
                let mut rs = Ruleset::new(fam);
                let _ = rs.apply_restore(&script, Default::default());
            }
            let _ = Rule::parse_spec(fam, &a);
        }
        let _ = Sets::parse(&format!("create S hash:ip\n{a}\n{b}"));
    }
}

fn addr4() -> impl Strategy<Value = AddrMask> {
    (any::<[u8; 4]>(), 0u8..=32)
        .prop_map(|(o, l)| AddrMask::prefix(std::net::Ipv4Addr::from(o).into(), l))
}

fn ports() -> impl Strategy<Value = PortRange> {
    (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange {
        lo: a.min(b),
        hi: a.max(b),
    })
}

fn matches() -> impl Strategy<Value = Match> {
    prop_oneof![
        (any::<bool>(), addr4()).prop_map(|(n, a)| Match::Source(Neg {
            negated: n,
            value: a
        })),
        (any::<bool>(), addr4()).prop_map(|(n, a)| Match::Destination(Neg {
            negated: n,
            value: a
        })),
        (any::<bool>(), "[a-z]{1,8}\\+?").prop_map(|(n, i)| Match::InInterface(Neg {
            negated: n,
            value: Iface(i)
        })),
        (
            any::<bool>(),
            prop::sample::select(vec!["tcp", "udp", "icmp", "gre", "47"])
        )
            .prop_map(|(n, p)| Match::Protocol(Neg {
                negated: n,
                value: ProtoSpec::parse(p).unwrap()
            })),
        (
            proptest::option::of((any::<bool>(), ports())),
            proptest::option::of((any::<bool>(), ports()))
        )
            .prop_map(|(s, d)| {
                Match::Tcp(PortMatch {
                    sport: s.map(|(n, p)| Neg {
                        negated: n,
                        value: p,
                    }),
                    dport: d.map(|(n, p)| Neg {
                        negated: n,
                        value: p,
                    }),
                    tcp_flags: None,
                    implicit: false,
                })
            }),
        (any::<bool>(), prop::collection::vec(ports(), 1..5)).prop_map(|(n, p)| Match::Multiport(
            Multiport {
                dir: MultiportDir::Destination,
                negated: n,
                ports: p
            }
        )),
        "[ -~]{0,30}".prop_map(Match::Comment),
        (any::<bool>(), 0u32..=1_000_000).prop_map(|(n, p)| Match::Statistic(Statistic::Random {
            negated: n,
            probability: format!("{:.11}", f64::from(p) / 1e6),
        })),
        (
            any::<bool>(),
            any::<u32>(),
            proptest::option::of(any::<u32>())
        )
            .prop_map(|(n, v, m)| Match::Mark(MarkMatch {
                negated: n,
                value: v,
                mask: m
            })),
        (
            "[a-z]{1,6}",
            // Option names start with x so that none is a rule-level option (--dst, --src,
            // --match, --jump, --goto...), which iptables takes as the rule's, never the module's.
            prop::collection::vec("--x[a-z]{0,5}( [a-z0-9]{1,4})?", 0..3)
        )
            .prop_map(|(m, a)| Match::Unknown {
                module: format!("x{m}"),
                args: a
                    .join(" ")
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }),
    ]
}

fn target() -> impl Strategy<Value = Option<Target>> {
    proptest::option::of(prop_oneof![
        Just(Target::Accept),
        Just(Target::Drop),
        Just(Target::Return),
        Just(Target::Jump("B".into())),
        Just(Target::Goto("B".into())),
        (
            any::<[u8; 4]>(),
            proptest::option::of(ports()),
            any::<bool>()
        )
            .prop_map(|(a, p, r)| {
                let ip = std::net::Ipv4Addr::from(a).into();
                Target::Dnat(Nat {
                    to: Some(NatRange {
                        addrs: Some((ip, ip)),
                        ports: p,
                    }),
                    random: r,
                    ..Nat::default()
                })
            }),
    ])
}

fn ruleset() -> impl Strategy<Value = Ruleset> {
    prop::collection::vec((prop::collection::vec(matches(), 0..5), target()), 0..12).prop_map(
        |rules| {
            let mut t = Table::new("filter");
            t.header.push("# Generated by proptest".into());
            t.add_chain(Chain::builtin("INPUT", Policy::Accept))
                .unwrap();
            t.add_chain(Chain::user("B")).unwrap();
            t.chain_mut("INPUT").unwrap().rules =
                rules.into_iter().map(|(m, t)| Rule::new(m, t)).collect();
            let mut rs = Ruleset::new(Family::V4);
            rs.tables.push(t);
            rs
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_models_survive_emit_and_parse(rs in ruleset()) {
        let text = rs.to_save();
        let back = Ruleset::parse(Family::V4, &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, rs);
    }
}
