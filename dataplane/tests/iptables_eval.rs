//! Match evaluation for the tracer: definite outcomes, probabilities, and assumptions as data.

use std::net::IpAddr;

use dataplane::iptables::eval::NoEnv;
use dataplane::iptables::{
    AddrTypes, Assumption, AssumptionKind, CtInfo, CtTuple, MatchEnv, MatchOutcome, Rule,
    SetKeyPart, TargetEffect,
};
use dataplane::{CtState, Family, Packet};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rule(spec: &str) -> Rule {
    let fam = if spec.contains("2001:") {
        Family::V6
    } else {
        Family::V4
    };
    Rule::parse_spec(fam, spec).unwrap()
}

/// The outcome of the first (only) match of `spec`.
fn one(spec: &str, pkt: &Packet, env: &dyn MatchEnv) -> MatchOutcome {
    let r = rule(spec);
    assert_eq!(r.matches().len(), 1, "{spec}");
    r.matches()[0].eval(pkt, env)
}

fn syn() -> Packet {
    Packet::tcp(ip("198.18.64.2"), ip("198.19.0.10"), 80).arriving_on("eth0")
}

#[test]
fn addresses_interfaces_protocols() {
    let p = syn();
    let m = |spec: &str| one(spec, &p, &NoEnv);
    assert_eq!(m("-s 198.18.64.0/24"), MatchOutcome::Match);
    assert_eq!(m("! -s 198.18.64.0/24"), MatchOutcome::NoMatch);
    assert_eq!(m("-d 198.19.0.10/32"), MatchOutcome::Match);
    assert_eq!(m("-d 198.19.0.0/255.255.0.255"), MatchOutcome::NoMatch); // non-contiguous mask
    assert_eq!(m("-d 198.0.0.10/255.0.255.255"), MatchOutcome::Match);
    assert_eq!(m("-s 2001:db8::/32"), MatchOutcome::NoMatch); // other family
    assert_eq!(m("-i eth+"), MatchOutcome::Match);
    assert_eq!(m("-i veth+"), MatchOutcome::NoMatch);
    assert_eq!(m("! -i eth1"), MatchOutcome::Match);
    assert_eq!(m("-o eth0"), MatchOutcome::NoMatch); // before routing: no output interface
    assert_eq!(m("! -o eth0"), MatchOutcome::Match);
    assert_eq!(m("-p tcp"), MatchOutcome::Match);
    assert_eq!(m("! -p udp"), MatchOutcome::Match);
    assert_eq!(m("-p all"), MatchOutcome::Match);
    assert_eq!(m("-f"), MatchOutcome::NoMatch);
    struct Out;
    impl MatchEnv for Out {
        fn out_interface(&self) -> Option<&str> {
            Some("veth7")
        }
    }
    assert_eq!(one("-o veth+", &p, &Out), MatchOutcome::Match);
    let v6 = Packet::udp(ip("2001:db8:40::2"), ip("2001:db8:ffff::10"), 53);
    assert_eq!(one("-s 2001:db8:40::/64", &v6, &NoEnv), MatchOutcome::Match);
    assert_eq!(
        one("-d 2001:db8:ffff::/ffff:ffff:0:ffff::", &v6, &NoEnv),
        MatchOutcome::Match
    );
    assert_eq!(
        one("! -s 2001:db8:40::2", &v6, &NoEnv),
        MatchOutcome::NoMatch
    );
}

#[test]
fn ports_flags_multiport_icmp() {
    let p = syn();
    let m = |spec: &str| rule(spec).eval(&p, &NoEnv).matches;
    assert!(m("-p tcp -m tcp --dport 80"));
    assert!(!m("-p tcp -m tcp ! --dport 80"));
    assert!(m("-p tcp -m tcp --dport 1:1024 --sport 32768"));
    assert!(!m("-p udp -m udp --dport 80"));
    assert!(m("-p tcp -m tcp --syn"));
    assert!(!m("-p tcp -m tcp ! --syn"));
    assert!(m("-p tcp -m multiport --dports 22,80,8000:8080"));
    assert!(!m("-p tcp -m multiport ! --ports 80"));
    let ping = Packet::ping(ip("198.18.0.1"), ip("198.18.0.2"));
    assert!(
        rule("-p icmp -m icmp --icmp-type echo-request")
            .eval(&ping, &NoEnv)
            .matches
    );
    assert!(
        !rule("-p icmp -m icmp --icmp-type 3/3")
            .eval(&ping, &NoEnv)
            .matches
    );
    let ping6 = Packet::ping(ip("2001:db8::1"), ip("2001:db8::2"));
    assert!(
        rule("-p ipv6-icmp -m icmp6 --icmpv6-type 128 -s 2001:db8::1")
            .eval(&ping6, &NoEnv)
            .matches
    );
}

#[test]
fn marks_state_length_ttl() {
    let p = syn().with_mark(0x4001).with_ct_state(CtState::Established);
    let m = |spec: &str| one(spec, &p, &NoEnv);
    assert_eq!(m("-m mark --mark 0x4000/0x4000"), MatchOutcome::Match);
    assert_eq!(m("-m mark ! --mark 0x4000/0x4000"), MatchOutcome::NoMatch);
    assert_eq!(m("-m mark --mark 0x4000"), MatchOutcome::NoMatch);
    assert_eq!(
        m("-m state --state RELATED,ESTABLISHED"),
        MatchOutcome::Match
    );
    assert_eq!(m("-m conntrack ! --ctstate NEW"), MatchOutcome::Match);
    assert_eq!(m("-m length --length 0:100"), MatchOutcome::Match);
    assert_eq!(m("-m ttl --ttl-gt 63"), MatchOutcome::Match);
    assert_eq!(m("-m comment --comment x"), MatchOutcome::Match);
}

#[test]
fn statistic_gives_probabilities() {
    let p = syn();
    assert_eq!(
        one(
            "-m statistic --mode random --probability 0.50000000000",
            &p,
            &NoEnv
        ),
        MatchOutcome::Probability(0.5)
    );
    match one(
        "-m statistic --mode random ! --probability 0.25",
        &p,
        &NoEnv,
    ) {
        MatchOutcome::Probability(x) => assert!((x - 0.75).abs() < 1e-9),
        o => panic!("{o:?}"),
    }
    match one("-m statistic --mode nth --every 3 --packet 0", &p, &NoEnv) {
        MatchOutcome::Probability(x) => assert!((x - 1.0 / 3.0).abs() < 1e-9),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        one("-m statistic --mode random --probability 1.0", &p, &NoEnv),
        MatchOutcome::Match
    );
    let r =
        rule("-m comment --comment x -m statistic --mode random --probability 0.5 -j KUBE-SEP-A")
            .eval(&p, &NoEnv);
    assert!(r.matches && (r.probability - 0.5).abs() < 1e-12 && r.assumptions.is_empty());
}

#[test]
fn state_the_packet_cannot_show_is_an_assumption() {
    let p = syn();
    let assumed = |spec: &str| match one(spec, &p, &NoEnv) {
        MatchOutcome::Assumed {
            matches,
            assumption,
        } => (matches, assumption),
        o => panic!("{spec}: {o:?}"),
    };
    let (hit, a) = assumed("-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X");
    assert!(!hit);
    assert_eq!(
        a.kind,
        AssumptionKind::RecentHistory {
            list: "KUBE-SEP-X".into()
        }
    );
    assert_eq!(
        a.match_text,
        "-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X"
    );
    assert!(
        a.to_string()
            .contains("recent list KUBE-SEP-X has no history"),
        "{a}"
    );
    assert!(assumed("-m recent ! --rcheck --name X").0);
    assert_eq!(
        one("-m recent --set --name X", &p, &NoEnv),
        MatchOutcome::Match
    );
    assert!(assumed("-m limit --limit 5/min").0);
    assert!(!assumed("-m physdev --physdev-is-bridged").0);
    assert!(assumed("-m physdev ! --physdev-is-in").0);
    assert!(!assumed("-m set --match-set KUBE-CLUSTER-IP dst,dst").0);
    assert!(assumed("-m set ! --match-set KUBE-CLUSTER-IP dst,dst").0);
    let (hit, a) = assumed("-m addrtype --dst-type LOCAL");
    assert!(!hit);
    assert_eq!(
        a.kind,
        AssumptionKind::AddrType {
            addr: ip("198.19.0.10")
        }
    );
    let (hit, a) = assumed("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name foo");
    assert!(!hit, "unknown modules never silently match");
    assert_eq!(a.kind, AssumptionKind::UnknownMatch);
    assert!(!assumed("-m connmark --mark 0x1").0);
    assert!(assumed("-m conntrack --ctorigdst 198.19.0.10 --ctorigdstport 80").0);
    let (_, a) = assumed("-m conntrack --ctstate DNAT");
    assert!(matches!(a.kind, AssumptionKind::Conntrack { .. }));
    // Locally generated: owner is assumed; forwarded: there is no socket, definitely.
    let local = Packet::tcp(ip("198.18.0.1"), ip("198.19.0.10"), 80);
    assert!(matches!(
        one("-m owner --uid-owner 0", &local, &NoEnv),
        MatchOutcome::Assumed { matches: true, .. }
    ));
    assert_eq!(
        one("-m owner --uid-owner 0", &p, &NoEnv),
        MatchOutcome::NoMatch
    );
    assert_eq!(
        one("-m owner ! --uid-owner 0", &p, &NoEnv),
        MatchOutcome::Match
    );
}

struct Node;

impl MatchEnv for Node {
    fn addr_type(&self, addr: IpAddr, _dev: Option<&str>) -> Option<AddrTypes> {
        Some(AddrTypes(
            if addr == "198.18.0.1".parse::<IpAddr>().unwrap() {
                AddrTypes::LOCAL
            } else {
                AddrTypes::UNICAST
            },
        ))
    }
    fn ipset_lookup(&self, name: &str, key: &[SetKeyPart]) -> Option<bool> {
        (name == "KUBE-CLUSTER-IP").then(|| {
            key.len() == 2
                && key[0].addr == "198.19.0.10".parse::<IpAddr>().unwrap()
                && key[1].port == 80
        })
    }
    fn conntrack(&self) -> Option<&CtInfo> {
        static CT: std::sync::OnceLock<CtInfo> = std::sync::OnceLock::new();
        Some(CT.get_or_init(|| CtInfo {
            orig: Some(CtTuple {
                src: "198.18.64.2".parse().unwrap(),
                dst: "198.19.0.10".parse().unwrap(),
                sport: 32768,
                dport: 80,
            }),
            reply: Some(CtTuple {
                src: "198.18.65.2".parse().unwrap(),
                dst: "198.18.64.2".parse().unwrap(),
                sport: 80,
                dport: 32768,
            }),
            mark: Some(1),
            ..CtInfo::default()
        }))
    }
    fn assume(&self, a: &Assumption) -> bool {
        // This node knows its rate limits are exceeded.
        if a.kind == AssumptionKind::RateLimit {
            false
        } else {
            a.default_guess
        }
    }
}

#[test]
fn the_env_answers_what_it_knows() {
    let p = syn();
    assert_eq!(
        one("-m set --match-set KUBE-CLUSTER-IP dst,dst", &p, &Node),
        MatchOutcome::Match
    );
    assert_eq!(
        one("-m set --match-set KUBE-CLUSTER-IP src,dst", &p, &Node),
        MatchOutcome::NoMatch
    );
    assert_eq!(
        one("-m addrtype --dst-type LOCAL", &p, &Node),
        MatchOutcome::NoMatch
    );
    let to_node = Packet::tcp(ip("198.18.64.2"), ip("198.18.0.1"), 30080).arriving_on("eth0");
    assert_eq!(
        one("-m addrtype --dst-type LOCAL", &to_node, &Node),
        MatchOutcome::Match
    );
    assert_eq!(
        one("-m conntrack --ctstate DNAT", &p, &Node),
        MatchOutcome::Match
    );
    assert_eq!(
        one(
            "-m conntrack --ctorigdst 198.19.0.10 --ctorigdstport 80",
            &p,
            &Node
        ),
        MatchOutcome::Match
    );
    assert_eq!(
        one("-m connmark --mark 0x1", &p, &Node),
        MatchOutcome::Match
    );
    assert!(matches!(
        one("-m limit --limit 1/sec", &p, &Node),
        MatchOutcome::Assumed { matches: false, .. }
    ));
}

#[test]
fn rule_eval_stops_at_the_first_non_match_and_lists_assumptions() {
    let p = syn();
    let r = rule("-m recent --rcheck --name X -s 198.18.64.2 -j ACCEPT").eval(&p, &NoEnv);
    assert!(!r.matches);
    assert_eq!(r.assumptions.len(), 1);
    let r = rule("-s 198.18.99.0/24 -m recent --rcheck --name X -j ACCEPT").eval(&p, &NoEnv);
    assert!(!r.matches && r.assumptions.is_empty());
    let r =
        rule("-m limit -m statistic --mode random --probability 0.25 -j ACCEPT").eval(&p, &NoEnv);
    assert!(r.matches && (r.probability - 0.25).abs() < 1e-9 && r.assumptions.len() == 1);
}

#[test]
fn targets_describe_their_effect() {
    let t = |spec: &str| rule(spec).target().cloned().unwrap();
    assert_eq!(
        t("-j MARK --or-mark 0x4000").effect(Family::V4),
        TargetEffect::SetMark {
            value: 0x4000,
            mask: 0x4000
        }
    );
    match t("-j MARK --xor-mark 0x4000") {
        dataplane::iptables::Target::Mark(op) => assert_eq!(op.apply(0x4001), 0x1),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        t("-j REJECT").effect(Family::V6),
        TargetEffect::Reject(dataplane::iptables::RejectWith::Icmp6PortUnreachable)
    );
    assert_eq!(
        t("-j KUBE-SVC-X").effect(Family::V4),
        TargetEffect::Jump("KUBE-SVC-X".into())
    );
    assert!(!t("-j KUBE-SVC-X").is_terminating());
    assert!(t("-g KUBE-SVC-X").is_terminating());
    assert!(!t("-j LOG").is_terminating());
    assert!(t("-j MASQUERADE --random-fully").is_terminating());
    assert_eq!(
        t("-j NFLOG --nflog-group 1").effect(Family::V4),
        TargetEffect::Unknown("NFLOG".into())
    );
    assert_eq!(
        t("-j CT --notrack").effect(Family::V4),
        TargetEffect::NoTrack
    );
}
