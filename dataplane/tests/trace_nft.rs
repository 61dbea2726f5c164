//! The tracer on native nftables: the captured kube-proxy nftables ruleset
//! (`fixtures/nft/kube-proxy.json`, scripts/fixtures/capture-nft.sh) loaded onto the captured
//! DUT node, as a packet-flow table in the shape of kube-proxy's `runPacketFlowTests`; then
//! hook order against iptables tables, chain walking (jump/goto/return, policies, counters),
//! and what is not understood showing up as assumptions.
//!
//! The DUT (see `common::node`): eth0 198.18.0.11/24 (client 198.18.0.101), eth1 198.18.1.1
//! (ext1 .2), pods 198.18.65.2-4 on cali devices; here also 198.18.64.0/18 via node2
//! 198.18.0.12 (the fixture's endpoints live there) and 2001:db8:40::/44 via 2001:db8::12
//! and 2001:db8:ffff::/64 via ext1.

mod common;

use common::node::{CALI, EXT1, NET, dut, ip, masq, output, with};
use dataplane::nft::{self, NftFamily};
use dataplane::node::{Backend, NodeState};
use dataplane::route::Route;
use dataplane::trace::{AssumptionCode, Culprit, Effect, Trace, Verdict, trace};
use dataplane::{Family, Packet, Protocol};

fn nft_fixture(name: &str) -> nft::Ruleset {
    let path = format!("{}/tests/fixtures/nft/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    nft::Ruleset::from_json(text.split_once('\n').unwrap().1).unwrap()
}

/// A ruleset from `nft -j`-shaped JSON objects (the `{"nftables": [...]}` wrapper added).
fn nft_json(objects: &str) -> nft::Ruleset {
    nft::Ruleset::from_json(&format!("{{\"nftables\": [{objects}]}}"))
        .unwrap_or_else(|e| panic!("{e}\n{objects}"))
}

/// The DUT with routes to the fixture's endpoints (no rules).
fn node() -> NodeState {
    let mut n = dut();
    n.routes.routes.push(Route::unicast(
        "198.18.64.0/18".parse().unwrap(),
        Some(ip("198.18.0.12")),
        Some(NET),
    ));
    n.routes.routes.push(Route::unicast(
        "2001:db8:40::/44".parse().unwrap(),
        Some(ip("2001:db8::12")),
        Some(NET),
    ));
    n.routes.routes.push(Route::unicast(
        "2001:db8:ffff::/64".parse().unwrap(),
        Some(ip("2001:db8:0:1::2")),
        Some(EXT1),
    ));
    n
}

fn kube_proxy() -> NodeState {
    node().with_nft(nft_fixture("kube-proxy.json"))
}

fn send(src: &str, proto: Protocol, dst: &str, port: u16, iif: Option<&str>) -> Packet {
    let mut p = Packet::with_proto(ip(src), ip(dst), proto, port);
    if let Some(i) = iif {
        p = p.arriving_on(i);
    }
    p
}

const CLIENT: &str = "198.18.0.101";
const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;

/// name, source, protocol, destination, port, arrival interface (`None`: sent by the node),
/// expected output, masqueraded.
type Flow = (
    &'static str,
    &'static str,
    Protocol,
    &'static str,
    u16,
    Option<&'static str>,
    &'static str,
    bool,
);

const FLOWS: &[Flow] = &[
    (
        "clusterIP from outside: service-ips vmap, numgen mod 2",
        CLIENT,
        TCP,
        "198.19.0.10",
        80,
        Some(NET),
        "198.18.64.2:8080, 198.18.65.2:8080",
        true,
    ),
    (
        "clusterIP from a pod: no masquerade",
        "198.18.65.3",
        TCP,
        "198.19.0.10",
        80,
        Some(CALI[1]),
        "198.18.64.2:8080, 198.18.65.2:8080",
        false,
    ),
    (
        "hairpin: the endpoint to its own service",
        "198.18.65.2",
        TCP,
        "198.19.0.10",
        80,
        Some(CALI[0]),
        "198.18.64.2:8080, 198.18.65.2:8080",
        true,
    ),
    (
        "UDP service, numgen mod 3",
        CLIENT,
        UDP,
        "198.19.0.53",
        53,
        Some(NET),
        "198.18.64.3:53, 198.18.65.3:53, 198.18.66.3:53",
        true,
    ),
    (
        "clusterIP from the node (nat-output)",
        "0.0.0.0",
        TCP,
        "198.19.0.44",
        443,
        None,
        "198.18.64.4:8443",
        true,
    ),
    (
        "no endpoints: goto reject-chain (filter-forward)",
        CLIENT,
        TCP,
        "198.19.0.77",
        80,
        Some(NET),
        "REJECT",
        false,
    ),
    (
        "no endpoints, from the node (filter-output)",
        "0.0.0.0",
        TCP,
        "198.19.0.77",
        80,
        None,
        "REJECT",
        false,
    ),
    (
        "eTP Local without local endpoints: drop",
        CLIENT,
        TCP,
        "198.19.255.2",
        80,
        Some(NET),
        "DROP",
        false,
    ),
    (
        "clusterIP, undefined port: reject",
        CLIENT,
        TCP,
        "198.19.0.10",
        81,
        Some(NET),
        "REJECT",
        false,
    ),
    (
        "unallocated clusterIP: drop",
        CLIENT,
        TCP,
        "198.19.0.99",
        80,
        Some(NET),
        "DROP",
        false,
    ),
    (
        "nodePort: service-nodeports vmap",
        CLIENT,
        TCP,
        "198.18.0.11",
        30443,
        Some(NET),
        "198.18.64.4:8443",
        true,
    ),
    (
        "nodePort without endpoints: reject (filter-input)",
        CLIENT,
        TCP,
        "198.18.0.11",
        30077,
        Some(NET),
        "REJECT",
        false,
    ),
    (
        "nodePort, eTP Local from outside: local endpoint only, source kept",
        CLIENT,
        TCP,
        "198.18.0.11",
        30080,
        Some(NET),
        "198.18.64.8:80",
        false,
    ),
    (
        "nodePort, eTP Local from the node: every endpoint, masqueraded",
        "0.0.0.0",
        TCP,
        "198.18.0.11",
        30080,
        None,
        "198.18.64.8:80, 198.18.65.8:80",
        true,
    ),
    (
        "nodePort, unused port: delivered",
        CLIENT,
        TCP,
        "198.18.0.11",
        30009,
        Some(NET),
        "LOCAL 198.18.0.11:30009",
        false,
    ),
    (
        "load balancer IP from an allowed source range",
        CLIENT,
        TCP,
        "198.19.255.1",
        80,
        Some(NET),
        "198.18.65.5:80",
        true,
    ),
    (
        "load balancer IP from outside the source ranges: firewall drop",
        "198.18.1.2",
        TCP,
        "198.19.255.1",
        80,
        Some(EXT1),
        "DROP",
        false,
    ),
    (
        "session affinity: a client in the affinity set keeps its endpoint",
        "198.18.0.21",
        TCP,
        "198.19.0.70",
        80,
        Some(NET),
        "198.18.64.7:80",
        true,
    ),
    (
        "session affinity: a new client is balanced",
        CLIENT,
        TCP,
        "198.19.0.70",
        80,
        Some(NET),
        "198.18.64.7:80, 198.18.65.7:80",
        true,
    ),
    (
        "TCP to the UDP service: cluster-ips-check rejects",
        CLIENT,
        TCP,
        "198.19.0.53",
        53,
        Some(NET),
        "REJECT",
        false,
    ),
    (
        "non-service traffic passes",
        CLIENT,
        TCP,
        "198.18.65.3",
        22,
        Some(NET),
        "198.18.65.3:22",
        false,
    ),
    (
        "IPv6 clusterIP",
        "2001:db8::101",
        TCP,
        "2001:db8:ffff::10",
        80,
        Some(NET),
        "[2001:db8:40::2]:8080",
        true,
    ),
    (
        "IPv6 service without endpoints",
        "2001:db8::101",
        TCP,
        "2001:db8:ffff::77",
        80,
        Some(NET),
        "REJECT",
        false,
    ),
];

#[test]
fn kube_proxy_nftables_flows() {
    let node = kube_proxy();
    let mut failures = Vec::new();
    for (name, src, proto, dst, port, iif, want, want_masq) in FLOWS {
        let t = trace(&node, &send(src, *proto, dst, *port, *iif));
        let (out, m) = (output(&t), masq(&t));
        if out != *want || m != *want_masq {
            failures.push(format!(
                "{name}: got {out:?} masq={m}, want {want:?} masq={want_masq}\n{t}"
            ));
        }
        let total: f64 = t.paths.iter().map(|p| p.probability).sum();
        assert!((total - 1.0).abs() < 1e-9, "{name}: probabilities {total}");
        assert!(t.truncated.is_none(), "{name}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn shares(t: &Trace) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = t
        .endpoints()
        .into_iter()
        .map(|e| (e.endpoint.to_string(), e.probability))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn numgen_gives_each_endpoint_its_share() {
    let t = trace(
        &kube_proxy(),
        &send(CLIENT, UDP, "198.19.0.53", 53, Some(NET)),
    );
    let s = shares(&t);
    assert_eq!(s.len(), 3, "{t}");
    for (_, p) in &s {
        assert!((p - 1.0 / 3.0).abs() < 1e-9, "{s:?}");
    }
    // each path names the numgen rule with its branch probability
    let text = t.to_string();
    assert!(
        text.contains("numgen random mod 3 vmap") && text.contains("(p=0.333)"),
        "{text}"
    );
}

#[test]
fn steps_name_table_chain_rule_and_handle() {
    let t = trace(
        &kube_proxy(),
        &send(CLIENT, TCP, "198.19.0.77", 80, Some(NET)),
    );
    let p = &t.paths[0];
    let Verdict::Rejected { by, with } = &p.verdict else {
        panic!("{t}");
    };
    assert_eq!(by.backend, None);
    assert_eq!(by.table, "ip kube-proxy");
    assert_eq!(by.chain, "reject-chain");
    assert_eq!(by.index, 1);
    assert_eq!(by.text, "reject");
    assert!(by.handle.is_some());
    assert_eq!(with.icmp, Some((3, 3)), "port unreachable");
    let stages: Vec<&str> = p.steps.iter().map(|s| s.stage.as_str()).collect();
    assert!(
        stages.contains(&"ip kube-proxy/filter-forward"),
        "{stages:?}"
    );
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(&s.effect, Effect::Goto { chain } if chain == "reject-chain")),
        "{t}"
    );
    // the trace survives JSON
    let back: Trace = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
    assert_eq!(back, t);
}

#[test]
fn affinity_update_is_an_effect_and_an_assumption() {
    let t = trace(
        &kube_proxy(),
        &send("198.18.0.21", TCP, "198.19.0.70", 80, Some(NET)),
    );
    assert!(
        t.paths[0]
            .steps
            .iter()
            .any(|s| matches!(&s.effect, Effect::SetUpdate { op, elem, .. }
                if op == "update" && elem == "198.18.0.21")),
        "{t}"
    );
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::SetUpdate),
        "{t}"
    );
}

// ---- hook order, chain walk, policies -----------------------------------------------------

fn table(family: &str, name: &str) -> String {
    format!(r#"{{"table": {{"family": "{family}", "name": "{name}"}}}}"#)
}

fn base(
    family: &str,
    t: &str,
    name: &str,
    ty: &str,
    hook: &str,
    prio: i32,
    policy: &str,
) -> String {
    format!(
        r#"{{"chain": {{"family": "{family}", "table": "{t}", "name": "{name}", "type": "{ty}", "hook": "{hook}", "prio": {prio}, "policy": "{policy}"}}}}"#
    )
}

fn chain(family: &str, t: &str, name: &str) -> String {
    format!(r#"{{"chain": {{"family": "{family}", "table": "{t}", "name": "{name}"}}}}"#)
}

fn rule(family: &str, t: &str, chain: &str, handle: u64, expr: &str) -> String {
    format!(
        r#"{{"rule": {{"family": "{family}", "table": "{t}", "chain": "{chain}", "handle": {handle}, "expr": [{expr}]}}}}"#
    )
}

const DPORT_22: &str = r#"{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}"#;

fn fwd(dst: &str, port: u16) -> Packet {
    send(CLIENT, TCP, dst, port, Some(NET))
}

#[test]
fn jump_goto_return_and_policy() {
    // forward: jump a (return for port 22, else mark), goto b, never back in forward;
    // b: counter only; base policy drop.
    let objs = [
        table("inet", "fw"),
        base("inet", "fw", "forward", "filter", "forward", 0, "drop"),
        chain("inet", "fw", "a"),
        chain("inet", "fw", "b"),
        rule("inet", "fw", "forward", 1, r#"{"jump": {"target": "a"}}"#),
        rule("inet", "fw", "forward", 2, r#"{"goto": {"target": "b"}}"#),
        rule("inet", "fw", "forward", 3, r#"{"accept": null}"#),
        rule(
            "inet",
            "fw",
            "a",
            4,
            &format!(r#"{DPORT_22}, {{"return": null}}"#),
        ),
        rule(
            "inet",
            "fw",
            "a",
            5,
            r#"{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 7}}"#,
        ),
        rule("inet", "fw", "b", 6, r#"{"counter": {"packets": 9, "bytes": 9}}"#),
        rule(
            "inet",
            "fw",
            "b",
            7,
            r#"{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 7}}, {"accept": null}"#,
        ),
    ]
    .join(",");
    let n = node().with_nft(nft_json(&objs));
    // port 80: marked in a, accepted in b (after goto: the accept in forward is never reached)
    let t = trace(&n, &fwd("198.18.65.3", 80));
    assert_eq!(output(&t), "198.18.65.3:80", "{t}");
    assert_eq!(t.paths[0].final_packet.mark, 7);
    let rules: Vec<(String, usize)> = t.paths[0]
        .steps
        .iter()
        .filter_map(|s| s.rule.as_ref().map(|r| (r.chain.clone(), r.index)))
        .collect();
    assert_eq!(
        rules,
        [("forward", 1), ("a", 2), ("forward", 2), ("b", 1), ("b", 2)]
            .map(|(c, i)| (c.to_string(), i))
            .to_vec(),
        "{t}"
    );
    // the counter rule is a step that changes nothing
    assert!(
        t.paths[0].steps.iter().any(|s| s
            .rule
            .as_ref()
            .is_some_and(|r| r.chain == "b" && r.index == 1)
            && s.effect == Effect::Counted),
        "{t}"
    );
    // port 22: returns from a unmarked, goto b, no rule of b accepts, b ends: back to the
    // base chain's caller: the policy (goto does not come back to forward#3)
    let t = trace(&n, &fwd("198.18.65.3", 22));
    assert_eq!(output(&t), "DROP", "{t}");
    let Verdict::Dropped { by, .. } = &t.paths[0].verdict else {
        panic!("{t}")
    };
    assert_eq!(by.to_string(), "inet fw/forward policy DROP", "{t}");
}

#[test]
fn nft_and_iptables_nft_tables_run_in_priority_order() {
    // iptables filter FORWARD (priority 0) drops port 8080; an nft chain at -10 marks and one
    // at +10 accepts marked packets: the mark is set before iptables runs, the drop happens
    // before the +10 chain sees the packet.
    let ipt = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
               -A FORWARD -p tcp -m tcp --dport 8080 -j DROP\n\
               -A FORWARD -m mark --mark 0x5 -j ACCEPT\nCOMMIT\n";
    let objs = [
        table("ip", "early"),
        base("ip", "early", "fwd", "filter", "forward", -10, "accept"),
        rule(
            "ip",
            "early",
            "fwd",
            1,
            r#"{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 5}}"#,
        ),
        table("inet", "late"),
        base("inet", "late", "fwd", "filter", "forward", 10, "drop"),
    ]
    .join(",");
    let n = with(node(), Backend::Nft, Family::V4, ipt).with_nft(nft_json(&objs));
    let t = trace(&n, &fwd("198.18.65.3", 8080));
    assert_eq!(output(&t), "DROP", "{t}");
    let Verdict::Dropped { by, .. } = &t.paths[0].verdict else {
        panic!("{t}")
    };
    assert_eq!(
        by.to_string(),
        "rule filter/FORWARD#1: -A FORWARD -p tcp -m tcp --dport 8080 -j DROP"
    );
    let stages: Vec<&str> = t.paths[0].steps.iter().map(|s| s.stage.as_str()).collect();
    let early = stages.iter().position(|s| *s == "ip early/fwd").unwrap();
    let ipt = stages
        .iter()
        .position(|s| s.starts_with("filter/"))
        .unwrap();
    assert!(early < ipt, "{stages:?}");
    // port 80: iptables ACCEPTs (mark 5), and the later chain's drop policy still applies:
    // an accept ends one base chain only
    let t = trace(&n, &fwd("198.18.65.3", 80));
    let Verdict::Dropped { by, .. } = &t.paths[0].verdict else {
        panic!("{t}")
    };
    assert_eq!(by.to_string(), "inet late/fwd policy DROP", "{t}");
}

#[test]
fn equal_priority_runs_the_last_registered_first() {
    // Two tables at the same priority; `b` was created after `a` (later in the dump), so the
    // kernel inserted its hook before a's: b's drop-marked rule sees no mark from a.
    let objs = [
        table("inet", "a"),
        base("inet", "a", "out", "filter", "forward", 0, "accept"),
        rule(
            "inet",
            "a",
            "out",
            1,
            r#"{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 1}}"#,
        ),
        table("inet", "b"),
        base("inet", "b", "out", "filter", "forward", 0, "accept"),
        rule(
            "inet",
            "b",
            "out",
            2,
            r#"{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}}, {"drop": null}"#,
        ),
    ]
    .join(",");
    let n = node().with_nft(nft_json(&objs));
    let t = trace(&n, &fwd("198.18.65.3", 80));
    assert_eq!(output(&t), "198.18.65.3:80", "{t}");
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::BackendOrder && a.text.contains("inet b/out")),
        "{t}"
    );
}

#[test]
fn iptables_nft_tables_in_the_nft_dump_are_walked_once() {
    // iptables-nft's `ip filter` appears in both dumps: traced as iptables only (one drop
    // step, not two), with an assumption saying so.
    let ipt = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
               -A FORWARD -p tcp -m tcp --dport 8080 -j DROP\nCOMMIT\n";
    let objs = [
        table("ip", "filter"),
        base("ip", "filter", "FORWARD", "filter", "forward", 0, "accept"),
        rule(
            "ip",
            "filter",
            "FORWARD",
            1,
            r#"{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}"#,
        ),
    ]
    .join(",");
    let n = with(node(), Backend::Nft, Family::V4, ipt).with_nft(nft_json(&objs));
    let t = trace(&n, &fwd("198.18.65.3", 8080));
    let Verdict::Dropped { by, .. } = &t.paths[0].verdict else {
        panic!("{t}")
    };
    assert!(
        matches!(by, Culprit::Rule { rule } if rule.backend == Some(Backend::Nft)),
        "{t}"
    );
    assert!(
        !t.paths[0]
            .steps
            .iter()
            .any(|s| s.stage.starts_with("ip filter")),
        "{t}"
    );
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::NftCompat),
        "{t}"
    );
    // without the iptables-nft dump the same table is traced as nft
    let n = node().with_nft(nft_json(&objs));
    let t = trace(&n, &fwd("198.18.65.3", 8080));
    let Verdict::Dropped { by, .. } = &t.paths[0].verdict else {
        panic!("{t}")
    };
    assert!(
        matches!(by, Culprit::Rule { rule } if rule.table == "ip filter" && rule.backend.is_none()),
        "{t}"
    );
    assert_eq!(NftFamily::Ip.to_string(), "ip");
}

#[test]
fn unknown_expressions_are_assumptions_never_matches() {
    let objs = [
        table("inet", "fw"),
        base("inet", "fw", "forward", "filter", "forward", 0, "accept"),
        rule(
            "inet",
            "fw",
            "forward",
            1,
            r#"{"match": {"op": "==", "left": {"osf": {"key": "name"}}, "right": "Linux"}}, {"drop": null}"#,
        ),
    ]
    .join(",");
    let n = node().with_nft(nft_json(&objs));
    let t = trace(&n, &fwd("198.18.65.3", 80));
    assert_eq!(output(&t), "198.18.65.3:80", "{t}");
    assert!(
        t.assumptions
            .iter()
            .any(|a| a.code == AssumptionCode::UnknownMatch && a.text.contains("osf")),
        "{t}"
    );
}

#[test]
fn nat_chains_join_the_nat_hook_in_their_own_order() {
    // iptables nat PREROUTING (priority -100) and an nft nat chain at -150: both run from the
    // one NAT hook at -100, the nft chain first (lower priority); the first to bind wins.
    let ipt = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
               :POSTROUTING ACCEPT [0:0]\n\
               -A PREROUTING -d 198.19.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.65.3:80\n\
               COMMIT\n";
    let objs = [
        table("ip", "n"),
        base("ip", "n", "pre", "nat", "prerouting", -150, "accept"),
        rule(
            "ip",
            "n",
            "pre",
            1,
            r#"{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.19.0.10"}}, {"dnat": {"addr": "198.18.65.4", "port": 80}}"#,
        ),
    ]
    .join(",");
    let n = with(node(), Backend::Nft, Family::V4, ipt).with_nft(nft_json(&objs));
    let t = trace(&n, &fwd("198.19.0.10", 80));
    assert_eq!(output(&t), "198.18.65.4:80", "{t}");
}
