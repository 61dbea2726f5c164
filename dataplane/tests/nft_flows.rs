//! Packet-flow table for the captured kube-proxy-shaped ruleset (scripts/fixtures/capture-nft.sh),
//! walked hook by hook and chain by chain with a tiny walker that lives in this test (the
//! product tracer is `dataplane::trace`). Each row: a packet, and every fate it can meet with
//! its probability: the endpoint it is DNATed to (`masq` when it leaves masqueraded), or
//! `reject` / `drop`.
//!
//! The node: 198.18.0.1 and 2001:db8::1 on eth0, pods 198.18.64.0/24 on veth*, everything
//! else routed out of eth0.

use std::net::IpAddr;

use dataplane::iptables::{AddrTypes, MatchEnv};
use dataplane::nft::{ChainType, Effect, Hook, NatKind, Ruleset, Table, Verdict};
use dataplane::{CtState, Packet};

fn ruleset() -> Ruleset {
    let path = format!(
        "{}/tests/fixtures/nft/kube-proxy.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    Ruleset::from_json(text.split_once('\n').unwrap().1).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn is_local(a: IpAddr) -> bool {
    a == ip("198.18.0.1") || a == ip("2001:db8::1") || a.is_loopback()
}

/// The node as the rules see it at one hook.
struct Env {
    out: Option<&'static str>,
}

impl MatchEnv for Env {
    fn out_interface(&self) -> Option<&str> {
        self.out
    }
    fn addr_type(&self, addr: IpAddr, _dev: Option<&str>) -> Option<AddrTypes> {
        Some(AddrTypes(if is_local(addr) {
            AddrTypes::LOCAL
        } else {
            AddrTypes::UNICAST
        }))
    }
}

/// Where a walk through chains ends.
#[derive(Clone, Debug, PartialEq)]
enum End {
    Accept,
    Drop { reject: bool },
    Return,
}

/// One path of the walk so far.
#[derive(Clone, Debug)]
struct Path {
    p: f64,
    pkt: Packet,
    masq: bool,
    notes: Vec<String>,
}

/// Runs `chain` of `t` from rule `from`; jumps recurse, gotos replace the chain.
fn run(t: &Table, chain: &str, from: usize, path: Path, env: &Env, depth: u32) -> Vec<(End, Path)> {
    assert!(depth < 32, "chain loop at {chain}");
    let c = t.chain(chain).unwrap_or_else(|| panic!("no chain {chain}"));
    for (i, rule) in c.rules.iter().enumerate().skip(from) {
        let out = rule.eval(t, &path.pkt, env);
        for b in &out.branches {
            assert!(b.assumptions.is_empty(), "{chain}: {:?}", b.assumptions);
        }
        if let [b] = out.branches.as_slice()
            && b.verdict.is_none()
            && b.effects.is_empty()
        {
            continue;
        }
        let mut ends = Vec::new();
        for b in out.branches {
            let mut next = path.clone();
            next.p *= b.probability;
            next.pkt = b.packet.clone();
            let mut reject = false;
            for e in &b.effects {
                e.apply(&mut next.pkt);
                match e {
                    Effect::Nat(n) if n.kind == NatKind::Masquerade => next.masq = true,
                    Effect::SetElem { set, op, key } => {
                        next.notes
                            .push(format!("{} @{} {key}", op.keyword(), &set[..17]))
                    }
                    Effect::Reject(_) => reject = true,
                    _ => {}
                }
            }
            match b.verdict {
                None | Some(Verdict::Continue) => {
                    ends.extend(run(t, chain, i + 1, next, env, depth + 1))
                }
                Some(Verdict::Accept) => ends.push((End::Accept, next)),
                Some(Verdict::Drop) => ends.push((End::Drop { reject }, next)),
                Some(Verdict::Return) => ends.push((End::Return, next)),
                Some(Verdict::Jump(target)) => {
                    for (end, after) in run(t, &target, 0, next, env, depth + 1) {
                        match end {
                            End::Return => ends.extend(run(t, chain, i + 1, after, env, depth + 1)),
                            other => ends.push((other, after)),
                        }
                    }
                }
                Some(Verdict::Goto(target)) => {
                    ends.extend(run(t, &target, 0, next, env, depth + 1))
                }
            }
        }
        return ends;
    }
    vec![(End::Return, path)]
}

/// Passes the base chains of one hook in priority order.
fn hook(rs: &Ruleset, h: Hook, paths: Vec<Path>, env: &Env) -> (Vec<Path>, Vec<(f64, String)>) {
    let mut alive = paths;
    let mut dead = Vec::new();
    for hc in rs.chains_for_hook(alive_family(&alive), &h) {
        if hc.base.chain_type == ChainType::Nat
            && alive.iter().all(|p| p.pkt.ct_state != CtState::New)
        {
            continue;
        }
        let mut next = Vec::new();
        for p in alive {
            for (end, after) in run(hc.table, &hc.chain.name, 0, p, env, 0) {
                match end {
                    End::Accept | End::Return => next.push(after),
                    End::Drop { reject } => {
                        dead.push((after.p, if reject { "reject" } else { "drop" }.to_string()))
                    }
                }
            }
        }
        alive = next;
    }
    (alive, dead)
}

fn alive_family(paths: &[Path]) -> dataplane::Family {
    paths
        .first()
        .map_or(dataplane::Family::V4, |p| p.pkt.family())
}

/// Every fate of `pkt`, as `FATE p=P` sorted, joined by `; `.
fn fates(rs: &Ruleset, pkt: Packet) -> String {
    let start = vec![Path {
        p: 1.0,
        pkt: pkt.clone(),
        masq: false,
        notes: Vec::new(),
    }];
    let mut dead = Vec::new();
    let alive = if pkt.iif.is_some() {
        let (pre, d) = hook(rs, Hook::Prerouting, start, &Env { out: None });
        dead.extend(d);
        let (local, fwd): (Vec<Path>, Vec<Path>) =
            pre.into_iter().partition(|p| is_local(p.pkt.dst));
        let (inp, d) = hook(rs, Hook::Input, local, &Env { out: None });
        dead.extend(d);
        let out = Env { out: Some("eth0") };
        let (f, d) = hook(rs, Hook::Forward, fwd, &out);
        dead.extend(d);
        let (post, d) = hook(rs, Hook::Postrouting, f, &out);
        dead.extend(d);
        inp.into_iter().chain(post).collect::<Vec<_>>()
    } else {
        let out = Env { out: Some("eth0") };
        let (o, d) = hook(rs, Hook::Output, start, &out);
        dead.extend(d);
        let (post, d) = hook(rs, Hook::Postrouting, o, &out);
        dead.extend(d);
        post
    };
    let mut all: Vec<(f64, String)> = dead;
    for p in alive {
        let mut s = match p.pkt.dst {
            IpAddr::V6(a) => format!("[{a}]:{}", p.pkt.dport),
            a => format!("{a}:{}", p.pkt.dport),
        };
        if p.masq {
            s.push_str(" masq");
        }
        for n in &p.notes {
            s.push_str(&format!(" {n}"));
        }
        all.push((p.p, s));
    }
    // Merge equal fates, then sort by text.
    let mut merged: Vec<(f64, String)> = Vec::new();
    for (p, s) in all {
        match merged.iter_mut().find(|(_, x)| *x == s) {
            Some(m) => m.0 += p,
            None => merged.push((p, s)),
        }
    }
    merged.sort_by(|a, b| a.1.cmp(&b.1));
    let total: f64 = merged.iter().map(|(p, _)| p).sum();
    assert!((total - 1.0).abs() < 1e-9, "probabilities sum to {total}");
    merged
        .iter()
        .map(|(p, s)| {
            if (p - 1.0).abs() < 1e-9 {
                s.clone()
            } else {
                format!("{s} p={:.3}", p)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn tcp(src: &str, dst: &str, dport: u16, iif: &str) -> Packet {
    Packet::tcp(ip(src), ip(dst), dport).arriving_on(iif)
}

fn udp(src: &str, dst: &str, dport: u16, iif: &str) -> Packet {
    Packet::udp(ip(src), ip(dst), dport).arriving_on(iif)
}

#[test]
fn kube_proxy_flow_table() {
    let rs = ruleset();
    let aff64 = "update @affinity-G26RM7FS";
    let aff65 = "update @affinity-LCUBXHIW";
    let flows: Vec<(&str, Packet, String)> = vec![
        (
            "pod to ClusterIP: two endpoints, no masquerade",
            tcp("198.18.64.50", "198.19.0.10", 80, "veth1"),
            "198.18.64.2:8080 p=0.500; 198.18.65.2:8080 p=0.500".into(),
        ),
        (
            "outside the pod CIDR to ClusterIP: masqueraded",
            tcp("198.18.0.100", "198.19.0.10", 80, "eth0"),
            "198.18.64.2:8080 masq p=0.500; 198.18.65.2:8080 masq p=0.500".into(),
        ),
        (
            "endpoint to its own service: hairpin masqueraded",
            tcp("198.18.64.2", "198.19.0.10", 80, "veth2"),
            "198.18.64.2:8080 masq p=0.500; 198.18.65.2:8080 p=0.500".into(),
        ),
        (
            "UDP DNS: three endpoints",
            udp("198.18.64.50", "198.19.0.53", 53, "veth1"),
            "198.18.64.3:53 p=0.333; 198.18.65.3:53 p=0.333; 198.18.66.3:53 p=0.333".into(),
        ),
        (
            "service without endpoints: reject",
            tcp("198.18.64.50", "198.19.0.77", 80, "veth1"),
            "reject".into(),
        ),
        (
            "ClusterIP, port not served: reject",
            tcp("198.18.64.50", "198.19.0.10", 81, "veth1"),
            "reject".into(),
        ),
        (
            "ping a ClusterIP: reject",
            Packet::ping(ip("198.18.64.50"), ip("198.19.0.10")).arriving_on("veth1"),
            "reject".into(),
        ),
        (
            "unallocated ClusterIP: drop",
            tcp("198.18.64.50", "198.19.0.99", 80, "veth1"),
            "drop".into(),
        ),
        (
            "NodePort (eTP Cluster): masqueraded",
            tcp("198.18.0.100", "198.18.0.1", 30443, "eth0"),
            "198.18.64.4:8443 masq".into(),
        ),
        (
            "NodePort without endpoints: reject",
            tcp("198.18.0.100", "198.18.0.1", 30077, "eth0"),
            "reject".into(),
        ),
        (
            "NodePort, eTP Local without local endpoints: drop",
            tcp("198.18.0.100", "198.18.0.1", 31000, "eth0"),
            "drop".into(),
        ),
        (
            "NodePort, eTP Local: local endpoint only, source kept",
            tcp("198.18.0.100", "198.18.0.1", 30080, "eth0"),
            "198.18.64.8:80".into(),
        ),
        (
            "NodePort, eTP Local, from the node itself: all endpoints, masqueraded",
            Packet::tcp(ip("198.18.0.1"), ip("198.18.0.1"), 30080),
            "198.18.64.8:80 masq p=0.500; 198.18.65.8:80 masq p=0.500".into(),
        ),
        (
            "LoadBalancer IP from an allowed source",
            tcp("198.18.0.100", "198.19.255.1", 80, "eth0"),
            "198.18.65.5:80 masq".into(),
        ),
        (
            "LoadBalancer IP from a source outside loadBalancerSourceRanges: drop",
            tcp("198.18.1.5", "198.19.255.1", 80, "eth0"),
            "drop".into(),
        ),
        (
            "affinity: a client in the affinity set sticks to its endpoint",
            tcp("198.18.0.21", "198.19.0.70", 80, "eth0"),
            format!("198.18.64.7:80 masq {aff64} 198.18.0.21"),
        ),
        (
            "affinity: a new client is balanced and recorded",
            tcp("198.18.0.22", "198.19.0.70", 80, "eth0"),
            format!(
                "198.18.64.7:80 masq {aff64} 198.18.0.22 p=0.500; 198.18.65.7:80 masq {aff65} 198.18.0.22 p=0.500"
            ),
        ),
        (
            "not a service: forwarded untouched",
            tcp("198.18.0.100", "198.18.65.9", 80, "eth0"),
            "198.18.65.9:80".into(),
        ),
        (
            "IPv6 ClusterIP from outside: masqueraded",
            tcp("2001:db8::100", "2001:db8:ffff::10", 80, "eth0"),
            "[2001:db8:40::2]:8080 masq".into(),
        ),
        (
            "IPv6 DNS from a pod: two endpoints",
            udp("2001:db8:40::9", "2001:db8:ffff::53", 53, "veth1"),
            "[2001:db8:40::3]:53 p=0.500; [2001:db8:41::3]:53 p=0.500".into(),
        ),
        (
            "IPv6 service without endpoints: reject",
            tcp("2001:db8:40::9", "2001:db8:ffff::77", 80, "veth1"),
            "reject".into(),
        ),
        (
            "an established connection skips the nat chains",
            tcp("198.18.64.50", "198.19.0.10", 80, "veth1").with_ct_state(CtState::Established),
            "198.19.0.10:80".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (what, pkt, want) in flows {
        let got = fates(&rs, pkt.clone());
        if got != want {
            failures.push(format!(
                "{what}\n  packet {pkt}\n  want   {want}\n  got    {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
