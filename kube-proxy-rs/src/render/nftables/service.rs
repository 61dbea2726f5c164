//! The chains, sets and map elements of one service port, as upstream's nftables
//! `syncProxyRules` writes them (pkg/proxy/nftables/proxier.go).
//!
//! ```text
//!   @cluster-ips            cluster IP
//!   @service-ips            cluster IP → service-|local-; external / LB IP → external-
//!   @service-nodeports      proto . node port → external-
//!   @firewall-ips           LB IP with source ranges → firewall- (drop other sources)
//!   @no-endpoint-services   no endpoints → goto reject-chain; no local endpoints → drop
//!   @no-endpoint-nodeports  the same for the node port
//!   external-  masquerade / short-circuit pod and local traffic, then → service-|local-
//!   service-, local-  [masquerade off-cluster sources] affinity checks, numgen → endpoint-
//!   endpoint-  hairpin masquerade, [update @affinity-…], dnat to ip:port
//! ```

use std::collections::HashSet;
use std::net::IpAddr;

use dataplane::Family;
use dataplane::nft::{
    Chain, Expr, Nat, NatKind, Numgen, NumgenMode, Rule, Set, SetElem, SetOp, SetStmt, SetType,
    Stmt, Table, Verdict,
};

use super::{addr, addr_type, daddr, names, saddr};
use crate::model::{
    EndpointSet, LocalTraffic, NodeInfo, ServicePort, ServicePortName, SessionAffinity,
};
use crate::names::{
    nft_affinity_set, nft_endpoint_chain, nft_external_chain, nft_firewall_chain, nft_local_chain,
    nft_service_chain,
};

/// What the render carries from one service port to the next.
pub(super) struct Cx<'a> {
    pub family: Family,
    pub opts: &'a super::NftOptions,
    pub node: &'a NodeInfo,
    pub no_local_internal: usize,
    pub no_local_external: usize,
    /// Keys already in a set or map (`set`, address, protocol, port): a key is written
    /// once, by the first service port (two Services claiming one external IP and port
    /// would otherwise make the whole transaction fail).
    pub seen: HashSet<(&'static str, Option<IpAddr>, String, u16)>,
}

impl Cx<'_> {
    /// Whether this key is new to `set` (and remembers it).
    fn first(&mut self, set: &'static str, ip: Option<IpAddr>, proto: &str, port: u16) -> bool {
        self.seen.insert((set, ip, proto.to_string(), port))
    }
}

fn set_idx(t: &Table, name: &str) -> usize {
    t.sets
        .iter()
        .position(|s| s.name == name)
        .unwrap_or_default()
}

fn add_elem(t: &mut Table, set: &str, elem: SetElem) {
    let i = set_idx(t, set);
    if let Some(s) = t.sets.get_mut(i) {
        s.elements.push(elem);
    }
}

fn key3(ip: IpAddr, proto: &str, port: u16) -> Expr {
    Expr::concat(vec![
        addr(ip),
        Expr::str(proto),
        Expr::Number(u64::from(port)),
    ])
}

fn key2(proto: &str, port: u16) -> Expr {
    Expr::concat(vec![Expr::str(proto), Expr::Number(u64::from(port))])
}

fn goto(chain: &str) -> Expr {
    Expr::Verdict(Verdict::Goto(chain.to_string()))
}

/// The local-traffic match (`ip saddr CIDR`, `iifname BR`, `iifname "PFX*"`) or its
/// negation; `None` when local traffic is not detected.
fn local_match(node: &NodeInfo, f: Family, local: bool) -> Option<Stmt> {
    let (left, right) = match &node.local_traffic {
        LocalTraffic::Cidr(c) => (saddr(f), Expr::prefix(*c)),
        LocalTraffic::BridgeInterface(b) => (Expr::meta("iifname"), Expr::str(b.clone())),
        LocalTraffic::InterfaceNamePrefix(p) => (Expr::meta("iifname"), Expr::str(format!("{p}*"))),
        LocalTraffic::Undetected(_) => return None,
    };
    Some(if local {
        Stmt::eq(left, right)
    } else {
        Stmt::ne(left, right)
    })
}

/// Writes every chain, set and element of one service port into `t`.
pub(super) fn write_port(
    t: &mut Table,
    cx: &mut Cx<'_>,
    name: &ServicePortName,
    svc: &ServicePort,
    eps: &EndpointSet,
) {
    let f = cx.family;
    let proto = svc.protocol.to_string();
    let p = proto.as_str();
    let s = name.to_string();
    let svc_chain = nft_service_chain(name);
    let local_chain = nft_local_chain(name);
    let ext_chain = nft_external_chain(name);
    let fw_chain = nft_firewall_chain(name);

    struct Target {
        ip: IpAddr,
        port: u16,
        chain: String,
    }
    let mut reachable = Vec::new();
    let (mut cluster, mut local) = (Vec::new(), Vec::new());
    for e in &eps.entries {
        let (c, l) = (e.cluster.is_used(), e.local.is_used());
        if !(c || l) {
            continue;
        }
        let ep = &e.endpoint;
        if c {
            cluster.push(reachable.len());
        }
        if l {
            local.push(reachable.len());
        }
        reachable.push(Target {
            ip: ep.ip,
            port: ep.port,
            chain: nft_endpoint_chain(name, ep.ip, ep.port),
        });
    }

    let has_endpoints = eps.has_endpoints;
    let uses_cluster_chain = !cluster.is_empty() && svc.uses_cluster_endpoints();
    let uses_local_chain = !local.is_empty() && svc.uses_local_endpoints();
    let internal_local = svc.internal_policy_local();
    let external_local = svc.external_policy_local();
    let internal_chain = if internal_local {
        &local_chain
    } else {
        &svc_chain
    };
    let has_internal = has_endpoints && !(internal_local && local.is_empty());
    let external_policy_chain = if external_local {
        &local_chain
    } else {
        &svc_chain
    };
    let has_external = has_endpoints && !(external_local && local.is_empty());
    let uses_ext_chain = has_endpoints && svc.externally_accessible();
    let uses_fw_chain = has_endpoints
        && !svc.load_balancer_ips.is_empty()
        && !svc.load_balancer_source_ranges.is_empty();
    let no_ep_verdict = if has_endpoints {
        Expr::Verdict(Verdict::Drop)
    } else {
        goto(names::REJECT_CHAIN)
    };
    if has_endpoints && !has_internal {
        cx.no_local_internal += 1;
    }
    if has_endpoints && !has_external {
        cx.no_local_external += 1;
    }
    let no_ep = |key: Expr| SetElem {
        comment: Some(s.clone()),
        ..SetElem::map(key, no_ep_verdict.clone())
    };

    if cx.first(names::CLUSTER_IPS, Some(svc.cluster_ip), "", 0) {
        add_elem(t, names::CLUSTER_IPS, SetElem::key(addr(svc.cluster_ip)));
    }
    let ck = key3(svc.cluster_ip, p, svc.port);
    if has_internal {
        if cx.first(names::SERVICE_IPS, Some(svc.cluster_ip), p, svc.port) {
            add_elem(
                t,
                names::SERVICE_IPS,
                SetElem::map(ck, goto(internal_chain)),
            );
        }
    } else if cx.first(
        names::NO_ENDPOINT_SERVICES,
        Some(svc.cluster_ip),
        p,
        svc.port,
    ) {
        add_elem(t, names::NO_ENDPOINT_SERVICES, no_ep(ck));
    }
    for &ip in svc.external_ips.iter().chain(&svc.load_balancer_ips) {
        let k = key3(ip, p, svc.port);
        if has_endpoints && cx.first(names::SERVICE_IPS, Some(ip), p, svc.port) {
            add_elem(
                t,
                names::SERVICE_IPS,
                SetElem::map(k.clone(), goto(&ext_chain)),
            );
        }
        if !has_external && cx.first(names::NO_ENDPOINT_SERVICES, Some(ip), p, svc.port) {
            add_elem(t, names::NO_ENDPOINT_SERVICES, no_ep(k));
        }
    }
    if uses_fw_chain {
        for &ip in &svc.load_balancer_ips {
            if !cx.first(names::FIREWALL_IPS, Some(ip), p, svc.port) {
                continue;
            }
            let k = key3(ip, p, svc.port);
            add_elem(
                t,
                names::FIREWALL_IPS,
                SetElem {
                    comment: Some(s.clone()),
                    ..SetElem::map(k, goto(&fw_chain))
                },
            );
        }
    }
    if let Some(np) = svc.node_port {
        if has_endpoints && cx.first(names::SERVICE_NODEPORTS, None, p, np) {
            add_elem(
                t,
                names::SERVICE_NODEPORTS,
                SetElem::map(key2(p, np), goto(&ext_chain)),
            );
        }
        if !has_external && cx.first(names::NO_ENDPOINT_NODEPORTS, None, p, np) {
            add_elem(t, names::NO_ENDPOINT_NODEPORTS, no_ep(key2(p, np)));
        }
    }

    let mfm = || Stmt::jump(names::MARK_FOR_MASQUERADE);

    // loadBalancerSourceRanges: drop what comes from elsewhere.
    if uses_fw_chain {
        // Sorted by address, and an LB IP only when no range covers it: the kernel keeps
        // an interval set sorted and refuses overlaps.
        let mut nets: Vec<ipnet::IpNet> = svc.load_balancer_source_ranges.clone();
        // A VIP-like load balancer puts the VIP on the node: its requests loop back with
        // the VIP as source.
        if cx.node.primary_ip.is_some_and(|ip| {
            svc.load_balancer_source_ranges
                .iter()
                .any(|c| c.contains(&ip))
        }) {
            for ip in &svc.load_balancer_ips {
                if !nets.iter().any(|c| c.contains(ip)) {
                    nets.push(ipnet::IpNet::from(*ip));
                }
            }
        }
        nets.sort_by_key(|n| (n.network(), n.prefix_len()));
        nets.dedup();
        let mut sources: Vec<Expr> = nets
            .iter()
            .map(|n| {
                if n.prefix_len() == n.max_prefix_len() {
                    addr(n.addr())
                } else {
                    Expr::prefix(n.trunc())
                }
            })
            .collect();
        // One range is written as a value, not a one-element set: nft lists `{ x }` as `x`,
        // and the render must equal the kernel's listing.
        let allowed = if sources.len() == 1 {
            sources.remove(0)
        } else {
            Expr::Set(sources.into_iter().map(SetElem::key).collect())
        };
        t.chains.push(Chain::regular(
            fw_chain.clone(),
            vec![Rule::new(vec![
                Stmt::ne(saddr(f), allowed),
                Stmt::Verdict(Verdict::Drop),
            ])],
        ));
    }

    // External destinations.
    if uses_ext_chain {
        let mut rules = Vec::new();
        if !external_local {
            rules.push(Rule::new(vec![mfm()]));
        } else if uses_cluster_chain {
            if let Some(m) = local_match(cx.node, f, true) {
                rules.push(
                    Rule::new(vec![m, Stmt::goto(svc_chain.clone())])
                        .with_comment("short-circuit pod traffic"),
                );
            }
            rules.push(
                Rule::new(vec![super::fib_local("saddr"), mfm()])
                    .with_comment("masquerade local traffic"),
            );
            rules.push(
                Rule::new(vec![
                    super::fib_local("saddr"),
                    Stmt::goto(svc_chain.clone()),
                ])
                .with_comment("short-circuit local traffic"),
            );
        }
        if has_external {
            rules.push(Rule::new(vec![Stmt::goto(external_policy_chain.clone())]));
        }
        t.chains.push(Chain::regular(ext_chain.clone(), rules));
    }

    // Policy chains.
    for (used, chain, members) in [
        (uses_cluster_chain, &svc_chain, &cluster),
        (uses_local_chain, &local_chain, &local),
    ] {
        if !used {
            continue;
        }
        let mut rules = Vec::new();
        if has_internal && chain == internal_chain {
            let cond = if cx.opts.masquerade_all {
                Some(None)
            } else {
                local_match(cx.node, f, false).map(Some)
            };
            if let Some(cond) = cond {
                let mut st = vec![
                    Stmt::eq(daddr(f), addr(svc.cluster_ip)),
                    Stmt::eq(Expr::payload(p, "dport"), Expr::Number(u64::from(svc.port))),
                ];
                st.extend(cond);
                st.push(mfm());
                rules.push(Rule::new(st));
            }
        }
        if matches!(svc.session_affinity, SessionAffinity::ClientIp { .. }) {
            for &i in members.iter() {
                let tg = &reachable[i];
                rules.push(Rule::new(vec![
                    Stmt::eq(
                        saddr(f),
                        Expr::set_ref(nft_affinity_set(name, tg.ip, tg.port)),
                    ),
                    Stmt::goto(tg.chain.clone()),
                ]));
            }
        }
        let targets: Vec<&str> = members
            .iter()
            .map(|&m| reachable[m].chain.as_str())
            .collect();
        rules.extend(balance(&targets));
        t.chains.push(Chain::regular(chain.clone(), rules));
    }

    // Endpoint chains (and their affinity sets).
    for tg in &reachable {
        let mut rules = vec![Rule::new(vec![Stmt::eq(saddr(f), addr(tg.ip)), mfm()])];
        if let SessionAffinity::ClientIp { timeout_seconds } = svc.session_affinity {
            let set_name = nft_affinity_set(name, tg.ip, tg.port);
            rules.push(Rule::new(vec![Stmt::Set(SetStmt {
                op: SetOp::Update,
                elem: saddr(f),
                set: set_name.clone(),
                stmts: Vec::new(),
            })]));
            t.sets.push(Set {
                name: set_name,
                key_type: SetType::one(addr_type(f)),
                flags: vec!["dynamic".into(), "timeout".into()],
                timeout: Some(u64::from(timeout_seconds)),
                ..Set::default()
            });
        }
        rules.push(Rule::new(vec![
            Stmt::eq(Expr::meta("l4proto"), Expr::str(p)),
            Stmt::Nat(Nat {
                addr: Some(addr(tg.ip)),
                port: Some(Expr::Number(u64::from(tg.port))),
                ..Nat::new(NatKind::Dnat)
            }),
        ]));
        t.chains.push(Chain::regular(tg.chain.clone(), rules));
    }
}

/// Most endpoints a policy chain picks from with a rule cascade; above it, one anonymous
/// `numgen random mod N vmap { … }` as upstream writes for every Service.
pub(super) const CASCADE_MAX: usize = 64;

/// The rules that pick one of `targets` (endpoint chains) uniformly at random.
///
/// Up to [`CASCADE_MAX`] targets: `numgen random mod (n-i) 0 goto target-i`, the last a plain
/// goto, so each target gets 1/n like iptables' `statistic --mode random` cascade. Upstream's
/// single anonymous vmap costs the kernel a scan of every set in the table when the set is
/// created (anonymous sets are named `__map%d` by searching the names in use), so a vmap per
/// Service makes a full load quadratic in the number of Services: 4,000 such chains load in
/// 4.3 s and 5,000 Services in 14 s on this project's test machine, against 0.7 s for 4,000
/// cascades (docs/performance.md). The cascade costs up to n-1 numgen matches on a
/// connection's first packet only, so large endpoint lists keep the vmap (few Services have
/// them, so few sets).
pub(super) fn balance(targets: &[&str]) -> Vec<Rule> {
    let n = targets.len();
    let numgen = |modulus: usize| {
        Expr::Numgen(Numgen {
            mode: NumgenMode::Random,
            modulus: u32::try_from(modulus).unwrap_or(u32::MAX),
            offset: 0,
        })
    };
    if n > CASCADE_MAX {
        let elems = targets
            .iter()
            .enumerate()
            .map(|(i, c)| SetElem::map(Expr::Number(i as u64), goto(c)))
            .collect();
        return vec![Rule::new(vec![Stmt::Vmap {
            key: numgen(n),
            data: Expr::Set(elems),
        }])];
    }
    targets
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let jump = Stmt::goto((*c).to_string());
            if i + 1 == n {
                Rule::new(vec![jump])
            } else {
                Rule::new(vec![Stmt::eq(numgen(n - i), Expr::Number(0)), jump])
            }
        })
        .collect()
}
