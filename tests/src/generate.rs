//! proptest strategies for the differential suite: small random filter rulesets (FORWARD and
//! INPUT, two user chains) and random requests through the DUT.
//!
//! ```text
//!   Generated { backend, policies, FORWARD rules, INPUT rules, U1 rules, U2 rules } + Request
//!   rule  = 0..3 matches (-s/-d/-p with ports or multiport, -i/-o, mark, set, ctstate)
//!           + a target (ACCEPT, DROP, REJECT --reject-with ..., RETURN, -j/-g U1|U2, MARK, none)
//!   FORWARD starts with `-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT` so answers
//!   come back whatever the random rules say about the request.
//! ```
//! Only rulesets iptables-restore accepts are generated (`-o` never in INPUT, tcp-reset only
//! with `-p tcp`, ports only with a protocol; U1 may call U2, U2 calls nothing, only FORWARD
//! calls user chains).

use std::fmt::Write;
use std::net::IpAddr;

use dataplane::node::Backend;
use proptest::prelude::*;

use crate::case::{Case, From, Send};
use crate::outcome::Proto;

/// What the generators draw from: addresses and interface names of the topology.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Addresses and prefixes for `-s` / `-d` (host addresses as /32).
    pub nets: Vec<String>,
    /// Input interfaces for `-i`.
    pub in_ifs: Vec<String>,
    /// Output interfaces for `-o`.
    pub out_ifs: Vec<String>,
    /// Requests (sender, destination).
    pub targets: Vec<(From, IpAddr)>,
}

/// The ipsets every generated case loads.
pub fn ipsets(ep: &[IpAddr], ext1: IpAddr) -> String {
    format!(
        "create S1 hash:ip family inet hashsize 1024 maxelem 65536\nadd S1 {}\nadd S1 {ext1}\n\
         create S2 hash:net family inet hashsize 1024 maxelem 65536\nadd S2 198.18.0.0/24\n\
         create S3 hash:ip,port family inet hashsize 1024 maxelem 65536\nadd S3 {},tcp:8080\n",
        ep[1], ep[0]
    )
}

/// Where a rule lives (what it may contain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Forward,
    Input,
    U1,
    U2,
}

/// A generated rule.
#[derive(Debug, Clone)]
pub struct GenRule {
    matches: Vec<String>,
    target: String,
}

/// A generated filter table.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The back end loading it.
    pub backend: Backend,
    forward_policy: &'static str,
    input_policy: &'static str,
    forward: Vec<GenRule>,
    input: Vec<GenRule>,
    u1: Vec<GenRule>,
    u2: Vec<GenRule>,
}

impl Generated {
    /// The iptables-restore text.
    pub fn text(&self) -> String {
        let mut s = format!(
            "*filter\n:INPUT {} [0:0]\n:FORWARD {} [0:0]\n:OUTPUT ACCEPT [0:0]\n:U1 - [0:0]\n:U2 - [0:0]\n",
            self.input_policy, self.forward_policy
        );
        s.push_str("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
        for (chain, rules) in [
            ("FORWARD", &self.forward),
            ("INPUT", &self.input),
            ("U1", &self.u1),
            ("U2", &self.u2),
        ] {
            for r in rules {
                let _ = write!(s, "-A {chain}");
                for m in &r.matches {
                    let _ = write!(s, " {m}");
                }
                if !r.target.is_empty() {
                    let _ = write!(s, " {}", r.target);
                }
                s.push('\n');
            }
        }
        s.push_str("COMMIT\n");
        s
    }
}

/// A generated request.
#[derive(Debug, Clone)]
pub struct Request {
    from: From,
    dst: IpAddr,
    proto: Proto,
    port: u16,
}

impl Request {
    /// The case for this request and ruleset.
    pub fn case(&self, g: &Generated, sets: &str) -> Case {
        Case::new(
            "generated",
            Send::new(self.from, self.proto, self.dst, self.port),
        )
        .ipsets(sets)
        .rules(g.backend, &g.text())
    }
}

const PORTS: &[u16] = &[53, 80, 8080, 5353, 9999];

fn proto_part() -> impl Strategy<Value = (Option<&'static str>, Option<String>)> {
    let port = prop::sample::select(PORTS);
    prop_oneof![
        2 => Just((None, None)),
        1 => Just((Some("icmp"), None)),
        3 => (prop::sample::select(&["tcp", "udp"][..]), prop_oneof![
            Just(None),
            port.clone().prop_map(|p| Some(format!("--dport {p}"))),
            port.clone().prop_map(|p| Some(format!("! --dport {p}"))),
            Just(Some("--sport 20000:30000".to_string())),
            (port.clone(), port).prop_map(|(a, b)| Some(format!("MULTI{a},{b}"))),
        ]).prop_map(|(p, m)| (Some(p), m)),
    ]
}

fn addr_match(pool: &Pool) -> impl Strategy<Value = String> + use<> {
    (
        prop::sample::select(&["-s", "-d"][..]),
        any::<bool>(),
        prop::sample::select(pool.nets.clone()),
    )
        .prop_map(|(o, neg, n)| {
            if neg {
                format!("! {o} {n}")
            } else {
                format!("{o} {n}")
            }
        })
}

fn other_match(pool: &Pool, place: Place) -> BoxedStrategy<String> {
    let mut options: Vec<BoxedStrategy<String>> = vec![
        addr_match(pool).boxed(),
        (any::<bool>(), prop::sample::select(pool.in_ifs.clone()))
            .prop_map(|(neg, i)| format!("{}-i {i}", if neg { "! " } else { "" }))
            .boxed(),
        prop::sample::select(&["0x1/0x1", "0x2/0x2", "0x0/0x3", "0x3"][..])
            .prop_map(|m| format!("-m mark --mark {m}"))
            .boxed(),
        prop::sample::select(&["S1 dst", "S2 src", "S3 dst,dst", "! S1 dst"][..])
            .prop_map(|s| match s.strip_prefix("! ") {
                Some(rest) => format!("-m set ! --match-set {rest}"),
                None => format!("-m set --match-set {s}"),
            })
            .boxed(),
        prop::sample::select(&["NEW", "INVALID", "ESTABLISHED", "NEW,RELATED"][..])
            .prop_map(|s| format!("-m conntrack --ctstate {s}"))
            .boxed(),
    ];
    if place != Place::Input {
        options.push(
            (any::<bool>(), prop::sample::select(pool.out_ifs.clone()))
                .prop_map(|(neg, i)| format!("{}-o {i}", if neg { "! " } else { "" }))
                .boxed(),
        );
    }
    prop::strategy::Union::new(options).boxed()
}

fn target(place: Place, tcp: bool) -> BoxedStrategy<String> {
    let mut t: Vec<(u32, BoxedStrategy<String>)> = vec![
        (3, Just("-j ACCEPT".to_string()).boxed()),
        (3, Just("-j DROP".to_string()).boxed()),
        (
            3,
            prop::sample::select(
                &[
                    "icmp-port-unreachable",
                    "icmp-host-unreachable",
                    "icmp-net-unreachable",
                    "icmp-host-prohibited",
                    "icmp-admin-prohibited",
                ][..],
            )
            .prop_map(|w| format!("-j REJECT --reject-with {w}"))
            .boxed(),
        ),
        (1, Just("-j RETURN".to_string()).boxed()),
        (
            2,
            prop::sample::select(&["--set-mark 0x1", "--or-mark 0x2", "--set-xmark 0x3/0x3"][..])
                .prop_map(|m| format!("-j MARK {m}"))
                .boxed(),
        ),
        (1, Just(String::new()).boxed()),
    ];
    if tcp {
        t.push((
            2,
            Just("-j REJECT --reject-with tcp-reset".to_string()).boxed(),
        ));
    }
    match place {
        Place::Forward => t.push((
            4,
            prop::sample::select(&["-j U1", "-j U2", "-g U1", "-g U2"][..])
                .prop_map(str::to_string)
                .boxed(),
        )),
        Place::U1 => t.push((
            3,
            prop::sample::select(&["-j U2", "-g U2"][..])
                .prop_map(str::to_string)
                .boxed(),
        )),
        _ => {}
    }
    prop::strategy::Union::new_weighted(t).boxed()
}

fn rule(pool: &Pool, place: Place) -> impl Strategy<Value = GenRule> + use<> {
    let others = prop::collection::vec(other_match(pool, place), 0..3);
    (proto_part(), others).prop_flat_map(move |((proto, l4), others)| {
        let mut matches = Vec::new();
        let tcp = proto == Some("tcp");
        if let Some(p) = proto {
            matches.push(format!("-p {p}"));
            match l4 {
                Some(m) if m.starts_with("MULTI") => {
                    matches.push(format!("-m multiport --dports {}", &m[5..]))
                }
                Some(m) => matches.push(format!("-m {p} {m}")),
                None => {}
            }
        }
        // one each of -s, -d, -i, -o (iptables refuses repeats of basic options)
        let mut seen = Vec::new();
        for m in others {
            let key = m
                .trim_start_matches("! ")
                .split(' ')
                .next()
                .unwrap_or("")
                .to_string();
            if key.starts_with("-m") || !seen.contains(&key) {
                seen.push(key);
                matches.push(m);
            }
        }
        target(place, tcp).prop_map(move |target| GenRule {
            matches: matches.clone(),
            target,
        })
    })
}

/// A random filter table.
pub fn ruleset(pool: &Pool) -> impl Strategy<Value = Generated> + use<> {
    (
        prop::sample::select(&[Backend::Nft, Backend::Legacy][..]),
        prop::sample::select(&["ACCEPT", "DROP"][..]),
        prop::sample::select(&["ACCEPT", "ACCEPT", "DROP"][..]),
        prop::collection::vec(rule(pool, Place::Forward), 0..6),
        prop::collection::vec(rule(pool, Place::Input), 0..3),
        prop::collection::vec(rule(pool, Place::U1), 0..3),
        prop::collection::vec(rule(pool, Place::U2), 0..3),
    )
        .prop_map(|(backend, fp, ip, forward, input, u1, u2)| Generated {
            backend,
            forward_policy: fp,
            input_policy: ip,
            forward,
            input,
            u1,
            u2,
        })
}

/// A random request through (or to) the DUT.
pub fn request(pool: &Pool) -> impl Strategy<Value = Request> + use<> {
    (
        prop::sample::select(pool.targets.clone()),
        prop::sample::select(&[Proto::Tcp, Proto::Tcp, Proto::Udp, Proto::Udp, Proto::Ping][..]),
        prop::sample::select(PORTS),
    )
        .prop_map(|((from, dst), proto, port)| Request {
            from,
            dst,
            proto,
            port,
        })
}
