//! Properties of the tracer on random rulesets and packets (no kernel): it never panics, every
//! path ends with a verdict, probabilities (explored plus unexplored) sum to 1, the path bound
//! holds, and the JSON form reads back equal.

mod common;

use common::node::{CALI, EXT1, NET, dut};
use dataplane::iptables::Ruleset;
use dataplane::node::Backend;
use dataplane::trace::{Trace, TraceOptions, trace_with};
use dataplane::{Family, Packet, Protocol};
use proptest::prelude::*;

const MATCHES: &[&str] = &[
    "",
    "-s 198.18.0.0/24",
    "! -s 198.18.64.0/18",
    "-d 198.18.65.2/32",
    "-d 198.19.0.0/16",
    "-p tcp -m tcp --dport 80",
    "-p udp -m udp --dport 53",
    "-p tcp -m multiport --dports 22,80",
    "-i eth0",
    "-m mark --mark 0x1/0x1",
    "-m conntrack --ctstate NEW",
    "-m conntrack --ctstate INVALID,UNTRACKED",
    "-m statistic --mode random --probability 0.50000000000",
    "-m statistic --mode nth --every 3 --packet 0",
    "-m addrtype --dst-type LOCAL",
    "-m recent --rcheck --seconds 60 --name L --mask 255.255.255.255 --rsource",
    "-m set --match-set nosuchset dst",
    "-m frobnicate --x 1",
];

const TARGETS: &[&str] = &[
    "-j ACCEPT",
    "-j DROP",
    "-j REJECT --reject-with icmp-port-unreachable",
    "-j RETURN",
    "-j A",
    "-g B",
    "-j MARK --set-xmark 0x1/0x1",
    "-j LOG",
    "",
    "-j DNAT --to-destination 198.18.65.3:8080",
    "-j MASQUERADE",
    "-j REDIRECT --to-ports 8080",
    "-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff",
    "-j NOTRACK",
];

fn table(name: &str, builtins: &[&str], rules: &[(String, usize, usize)]) -> String {
    let mut s = format!("*{name}\n");
    for b in builtins {
        s.push_str(&format!(":{b} ACCEPT [0:0]\n"));
    }
    s.push_str(":A - [0:0]\n:B - [0:0]\n");
    for (chain, m, t) in rules {
        let (m, t) = (MATCHES[*m], TARGETS[*t]);
        // as iptables allows: NAT targets in nat only, NOTRACK in raw only
        let nat_target = t.contains("NAT") || t.contains("MASQ") || t.contains("REDIRECT");
        if (nat_target && name != "nat") || (t.contains("NOTRACK") && name != "raw") {
            continue;
        }
        s.push_str(&format!("-A {chain} {m} {t}\n").replace("  ", " "));
    }
    s + "COMMIT\n"
}

fn rules() -> impl Strategy<Value = Vec<(String, usize, usize)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["X", "X", "A", "B"]),
            0..MATCHES.len(),
            0..TARGETS.len(),
        )
            .prop_map(|(c, m, t)| (c.to_string(), m, t)),
        0..10,
    )
}

fn check(t: &Trace, max: usize) -> Result<(), TestCaseError> {
    prop_assert!(!t.paths.is_empty());
    prop_assert!(t.paths.len() <= max, "{} paths", t.paths.len());
    let explored: f64 = t.paths.iter().map(|p| p.probability).sum();
    let cut = t
        .truncated
        .as_ref()
        .map_or(0.0, |c| c.unexplored_probability);
    prop_assert!(
        (explored + cut - 1.0).abs() < 1e-9,
        "{explored} + {cut}\n{t}"
    );
    let json = serde_json::to_string(t).unwrap();
    let back: Trace = serde_json::from_str(&json).unwrap();
    prop_assert_eq!(&back, t);
    let _ = t.to_string();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_rulesets_trace_cleanly(
        filter in rules(),
        nat in rules(),
        mangle in rules(),
        raw in rules(),
        legacy in any::<bool>(),
        dst in prop::sample::select(vec!["198.18.65.2", "198.19.0.10", "198.18.0.11", "198.18.200.1", "127.0.0.1"]),
        proto in prop::sample::select(vec![Protocol::Tcp, Protocol::Udp, Protocol::Icmp]),
        from in 0usize..4,
        max_paths in 1usize..8,
    ) {
        let chain = |rules: &[(String, usize, usize)], x: &str| -> Vec<(String, usize, usize)> {
            rules.iter().map(|(c, m, t)| (if c == "X" { x.to_string() } else { c.clone() }, *m, *t)).collect()
        };
        let mut text = table("filter", &["INPUT", "FORWARD", "OUTPUT"], &chain(&filter, "FORWARD"));
        text += &table("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], &chain(&nat, "PREROUTING"));
        text += &table("mangle", &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"], &chain(&mangle, "PREROUTING"));
        text += &table("raw", &["PREROUTING", "OUTPUT"], &chain(&raw, "PREROUTING"));
        let rs = Ruleset::parse(Family::V4, &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let backend = if legacy { Backend::Legacy } else { Backend::Nft };
        let node = dut().with_iptables(backend, rs);
        let (src, iif) = match from {
            0 => ("198.18.0.101", Some(NET)),
            1 => ("198.18.65.2", Some(CALI[0])),
            2 => ("198.18.1.2", Some(EXT1)),
            _ => ("0.0.0.0", None),
        };
        let mut p = Packet::with_proto(src.parse().unwrap(), dst.parse().unwrap(), proto, 80);
        if let Some(i) = iif {
            p = p.arriving_on(i);
        }
        let opts = TraceOptions { max_paths, ..TraceOptions::default() };
        let t = trace_with(&node, &p, &opts);
        check(&t, max_paths)?;
    }
}
