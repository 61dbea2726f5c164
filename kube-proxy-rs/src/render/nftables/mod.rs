//! The nftables render: one family's [`ProxyState`] in, the table `ip kube-proxy` (or
//! `ip6 kube-proxy`) upstream's nftables mode writes out, as a typed
//! [`dataplane::nft::Table`], and the `nft -f` transactions that load it.
//!
//! ```text
//!   ProxyState + NftOptions ──render_nftables──> NftRender { table, counts }
//!   transaction(None, &new)              full sync: flush what exists, declare everything,
//!                                        delete stale chains and sets
//!   transaction(Some(&old), &new)        partial sync: changed chains flushed and refilled,
//!                                        map elements added / deleted, gone chains deleted
//! ```
//! Table layout (upstream pkg/proxy/nftables/proxier.go):
//! ```text
//!   filter-prerouting (dstnat-10)   ct state new ─> firewall-check ─ vmap @firewall-ips ─> firewall-…
//!   filter-input/forward/output     ct state new ─> service-endpoints-check (vmap @no-endpoint-services),
//!     (-110), filter-output-post-dnat nodeport-endpoints-check (vmap @no-endpoint-nodeports),
//!     (-90)                          cluster-ips-check (reject @cluster-ips)
//!   nat-prerouting / nat-output ─> services ─ vmap @service-ips ──────> service-… | external-…
//!                                          └ node IPs: vmap @service-nodeports ─> external-…
//!     external-… ─> [masquerade, short-circuit] ─> service-… | local-…
//!     service-… / local-… ─ [affinity sets] numgen random mod N vmap ─> endpoint-… (dnat)
//!   nat-postrouting ─> masquerading (what mark-for-masquerade marked)
//! ```
//! Pure: the same state gives the same table and the same text.

mod service;
pub mod tx;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use dataplane::Family;
use dataplane::nft::{
    BaseChain, BinOp, Chain, ChainType, Expr, Fib, Hook, Match, MatchOp, Nat, NatKind, NftFamily,
    Policy, Rule, Set, SetType, Stmt, Table, Verdict,
};

pub use tx::{Transaction, TxError, transaction};

use crate::config::Config;
use crate::model::ProxyState;
use crate::render::iptables::RuleCounts;

/// The table's name in both families (upstream `kubeProxyTable`).
pub const TABLE: &str = "kube-proxy";

/// The table's comment.
pub const TABLE_COMMENT: &str = "rules for kube-proxy";

/// Options of [`render_nftables`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftOptions {
    /// `--masquerade-all`: masquerade all traffic to cluster IPs.
    pub masquerade_all: bool,
    /// The fwmark bit for masquerading (`--iptables-masquerade-bit`, default `0x4000`).
    pub masquerade_mark: u32,
    /// This node's addresses of the family (for `--nodeport-addresses` CIDRs: the members
    /// of `@nodeport-ips`). Empty: the Node object's addresses.
    pub local_addresses: Vec<IpAddr>,
}

impl Default for NftOptions {
    fn default() -> Self {
        NftOptions {
            masquerade_all: false,
            masquerade_mark: 1 << 14,
            local_addresses: Vec::new(),
        }
    }
}

impl NftOptions {
    /// The options kube-proxy's configuration sets.
    pub fn from_config(cfg: &Config) -> NftOptions {
        NftOptions {
            masquerade_all: cfg.masquerade_all,
            masquerade_mark: cfg.masquerade_mark(),
            local_addresses: Vec::new(),
        }
    }
}

/// A rendered table and its counts.
#[derive(Debug, Clone, PartialEq)]
pub struct NftRender {
    /// The whole table as it should be after the sync.
    pub table: Table,
    /// Rule and chain counts (everything counted as `nat`; `no_local_*` as in iptables mode).
    pub counts: RuleCounts,
}

impl NftRender {
    /// The whole table as `nft -f` text (what `nft list table` prints).
    pub fn to_text(&self) -> String {
        // Every name and value the render writes has a text form.
        self.table.to_text().unwrap_or_default()
    }
}

/// The nft family of an address family.
pub fn nft_family(f: Family) -> NftFamily {
    match f {
        Family::V4 => NftFamily::Ip,
        Family::V6 => NftFamily::Ip6,
    }
}

/// Names of the fixed chains, sets and maps (upstream's constants).
pub mod names {
    /// `service-ips` verdict map: ClusterIP, external IP, LB IP . proto . port.
    pub const SERVICE_IPS: &str = "service-ips";
    /// `service-nodeports` verdict map: proto . node port.
    pub const SERVICE_NODEPORTS: &str = "service-nodeports";
    /// `no-endpoint-services` verdict map (drop / goto reject-chain).
    pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
    /// `no-endpoint-nodeports` verdict map.
    pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
    /// `firewall-ips` verdict map: LB IP . proto . port with source ranges.
    pub const FIREWALL_IPS: &str = "firewall-ips";
    /// `cluster-ips` set.
    pub const CLUSTER_IPS: &str = "cluster-ips";
    /// `nodeport-ips` set (with `--nodeport-addresses` CIDRs).
    pub const NODEPORT_IPS: &str = "nodeport-ips";
    /// The chain marking packets for masquerade.
    pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
    /// The chain masquerading marked packets.
    pub const MASQUERADING: &str = "masquerading";
    /// The chain dispatching on destination.
    pub const SERVICES: &str = "services";
    /// The chain rejecting traffic to services without endpoints.
    pub const REJECT_CHAIN: &str = "reject-chain";
}

pub(crate) fn ip_kw(f: Family) -> &'static str {
    match f {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

pub(crate) fn saddr(f: Family) -> Expr {
    Expr::payload(ip_kw(f), "saddr")
}

pub(crate) fn daddr(f: Family) -> Expr {
    Expr::payload(ip_kw(f), "daddr")
}

pub(crate) fn addr(ip: IpAddr) -> Expr {
    Expr::str(ip.to_string())
}

pub(crate) fn addr_type(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    }
}

fn mark() -> Expr {
    Expr::meta("mark")
}

fn ct_new() -> Stmt {
    Stmt::flags(Expr::ct("state"), Expr::str("new"))
}

fn fib_local(which: &str) -> Stmt {
    Stmt::eq(
        Expr::Fib(Fib {
            result: "type".into(),
            flags: vec![which.into()],
        }),
        Expr::str("local"),
    )
}

fn proto_port() -> Expr {
    Expr::concat(vec![Expr::meta("l4proto"), Expr::payload("th", "dport")])
}

fn addr_proto_port(f: Family) -> Expr {
    Expr::concat(vec![
        daddr(f),
        Expr::meta("l4proto"),
        Expr::payload("th", "dport"),
    ])
}

fn vmap(key: Expr, map: &str) -> Stmt {
    Stmt::Vmap {
        key,
        data: Expr::set_ref(map),
    }
}

fn base(name: &str, ty: ChainType, hook: Hook, prio: i32, rules: Vec<Rule>) -> Chain {
    Chain::base(
        name,
        BaseChain {
            chain_type: ty,
            hook,
            prio,
            policy: Some(Policy::Accept),
            devices: Vec::new(),
        },
        rules,
    )
}

fn r(stmts: Vec<Stmt>) -> Rule {
    Rule::new(stmts)
}

fn set(name: &str, key: SetType, map: Option<SetType>, comment: &str) -> Set {
    Set {
        name: name.into(),
        key_type: key,
        map,
        comment: Some(comment.into()),
        ..Set::default()
    }
}

/// Renders one family's table (upstream `syncProxyRules` of the nftables proxier, without
/// the I/O).
pub fn render_nftables(state: &ProxyState, opts: &NftOptions) -> NftRender {
    use names::*;
    let f = state.family;
    let mut t = Table::new(nft_family(f), TABLE);
    t.comment = Some(TABLE_COMMENT.into());
    let at = addr_type(f);
    let verdict = Some(SetType::one("verdict"));
    let apt = SetType::concat(&[at, "inet_proto", "inet_service"]);
    let pt = SetType::concat(&["inet_proto", "inet_service"]);
    t.sets = vec![
        set(CLUSTER_IPS, SetType::one(at), None, "Active ClusterIPs"),
        set(
            NO_ENDPOINT_SERVICES,
            apt.clone(),
            verdict.clone(),
            "vmap to drop or reject packets to services with no endpoints",
        ),
        set(
            NO_ENDPOINT_NODEPORTS,
            pt.clone(),
            verdict.clone(),
            "vmap to drop or reject packets to service nodeports with no endpoints",
        ),
        set(
            FIREWALL_IPS,
            apt.clone(),
            verdict.clone(),
            "destinations that are subject to LoadBalancerSourceRanges",
        ),
        set(
            SERVICE_IPS,
            apt,
            verdict.clone(),
            "ClusterIP, ExternalIP and LoadBalancer IP traffic",
        ),
        set(SERVICE_NODEPORTS, pt, verdict, "NodePort traffic"),
    ];

    // Which destinations are NodePort destinations: every local address except loopback,
    // or the local addresses in --nodeport-addresses (upstream has no localhost NodePorts
    // in nftables mode).
    let npa = &state.node.node_port_addresses;
    let nodeport_dst: Vec<Stmt> = if npa.match_all {
        let lo = match f {
            Family::V4 => Expr::prefix("127.0.0.0/8".parse().expect("literal")),
            Family::V6 => Expr::str("::1"),
        };
        vec![fib_local("daddr"), Stmt::ne(daddr(f), lo)]
    } else {
        let mut ips: Vec<IpAddr> = if opts.local_addresses.is_empty() {
            state.node.addresses.iter().map(|a| a.ip).collect()
        } else {
            opts.local_addresses.clone()
        };
        ips.retain(|ip| {
            Family::of(ip) == f && !ip.is_loopback() && npa.cidrs.iter().any(|c| c.contains(ip))
        });
        ips.sort();
        ips.dedup();
        let mut s = set(
            NODEPORT_IPS,
            SetType::one(at),
            None,
            "IPs that accept NodePort traffic",
        );
        s.elements = ips
            .into_iter()
            .map(|ip| dataplane::nft::SetElem::key(addr(ip)))
            .collect();
        t.sets.insert(1, s);
        vec![Stmt::eq(daddr(f), Expr::set_ref(NODEPORT_IPS))]
    };

    let m = u64::from(opts.masquerade_mark);
    let with = |mut pre: Vec<Stmt>, last: Stmt| {
        pre.push(last);
        r(pre)
    };
    t.chains = vec![
        base(
            "filter-prerouting",
            ChainType::Filter,
            Hook::Prerouting,
            -110,
            vec![r(vec![ct_new(), Stmt::jump("firewall-check")])],
        ),
        base(
            "filter-input",
            ChainType::Filter,
            Hook::Input,
            -110,
            vec![
                r(vec![ct_new(), Stmt::jump("nodeport-endpoints-check")]),
                r(vec![ct_new(), Stmt::jump("service-endpoints-check")]),
            ],
        ),
        base(
            "filter-forward",
            ChainType::Filter,
            Hook::Forward,
            -110,
            vec![
                r(vec![ct_new(), Stmt::jump("service-endpoints-check")]),
                r(vec![ct_new(), Stmt::jump("cluster-ips-check")]),
            ],
        ),
        base(
            "filter-output",
            ChainType::Filter,
            Hook::Output,
            -110,
            vec![
                r(vec![ct_new(), Stmt::jump("service-endpoints-check")]),
                r(vec![ct_new(), Stmt::jump("firewall-check")]),
            ],
        ),
        base(
            "filter-output-post-dnat",
            ChainType::Filter,
            Hook::Output,
            -90,
            vec![r(vec![ct_new(), Stmt::jump("cluster-ips-check")])],
        ),
        base(
            "nat-prerouting",
            ChainType::Nat,
            Hook::Prerouting,
            -100,
            vec![r(vec![Stmt::jump(SERVICES)])],
        ),
        base(
            "nat-output",
            ChainType::Nat,
            Hook::Output,
            -100,
            vec![r(vec![Stmt::jump(SERVICES)])],
        ),
        base(
            "nat-postrouting",
            ChainType::Nat,
            Hook::Postrouting,
            100,
            vec![r(vec![Stmt::jump(MASQUERADING)])],
        ),
        Chain::regular(
            "cluster-ips-check",
            vec![
                r(vec![
                    Stmt::eq(daddr(f), Expr::set_ref(CLUSTER_IPS)),
                    Stmt::Reject(Default::default()),
                ])
                .with_comment("Reject traffic to invalid ports of ClusterIPs"),
            ],
        ),
        Chain::regular(
            "firewall-check",
            vec![r(vec![vmap(addr_proto_port(f), FIREWALL_IPS)])],
        ),
        Chain {
            comment: Some("helper for @no-endpoint-services / @no-endpoint-nodeports".into()),
            ..Chain::regular(
                REJECT_CHAIN,
                vec![r(vec![Stmt::Reject(Default::default())])],
            )
        },
        Chain::regular(
            MARK_FOR_MASQUERADE,
            vec![r(vec![Stmt::Mangle {
                key: mark(),
                value: Expr::binop(BinOp::Or, mark(), Expr::Number(m)),
            }])],
        ),
        Chain::regular(
            MASQUERADING,
            vec![
                r(vec![
                    Stmt::Match(Match {
                        op: MatchOp::Eq,
                        left: Expr::binop(BinOp::And, mark(), Expr::Number(m)),
                        right: Expr::Number(0),
                    }),
                    Stmt::Verdict(Verdict::Return),
                ]),
                r(vec![Stmt::Mangle {
                    key: mark(),
                    value: Expr::binop(BinOp::Xor, mark(), Expr::Number(m)),
                }]),
                r(vec![Stmt::Nat(Nat {
                    flags: vec!["fully-random".into()],
                    ..Nat::new(NatKind::Masquerade)
                })]),
            ],
        ),
        Chain::regular(
            SERVICES,
            vec![
                r(vec![vmap(addr_proto_port(f), SERVICE_IPS)]),
                with(nodeport_dst.clone(), vmap(proto_port(), SERVICE_NODEPORTS)),
            ],
        ),
        Chain::regular(
            "service-endpoints-check",
            vec![r(vec![vmap(addr_proto_port(f), NO_ENDPOINT_SERVICES)])],
        ),
        Chain::regular(
            "nodeport-endpoints-check",
            vec![with(
                nodeport_dst,
                vmap(proto_port(), NO_ENDPOINT_NODEPORTS),
            )],
        ),
    ];

    let mut cx = service::Cx {
        family: f,
        opts,
        node: &state.node,
        no_local_internal: 0,
        no_local_external: 0,
        seen: Default::default(),
    };
    let empty = Default::default();
    for (name, svc) in &state.services {
        let eps = state.endpoints.get(name).unwrap_or(&empty);
        service::write_port(&mut t, &mut cx, name, svc, eps);
    }
    let rules = t.rule_count();
    let counts = RuleCounts {
        nat_rules: rules,
        nat_chains: t.chains.len(),
        no_local_endpoints_internal: cx.no_local_internal,
        no_local_endpoints_external: cx.no_local_external,
        ..RuleCounts::default()
    };
    NftRender { table: t, counts }
}
