//! The tracer's output: [`Trace`] with its paths, steps, verdicts, drop reasons and
//! assumptions. Every type is serde-serializable; field names and the `SCREAMING_SNAKE` codes
//! are a stable interface (diag prints them as text, JSON and DOT).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::conntrack::Direction;
use crate::node::Backend;
use crate::packet::{CtState, Family, Packet};
use crate::route::RpFilter;

/// A rule of a ruleset, as `iptables -L --line-numbers` and `iptables-save` name it; for a
/// native nftables rule as `nft -a list ruleset` does (backend `None`, table `FAMILY NAME`,
/// the rule's handle); for an IPVS virtual service as `ipvsadm -Sn` does (table `ipvs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RuleRef {
    /// The iptables back end holding it (`None`: native nftables, IPVS).
    pub backend: Option<Backend>,
    /// Table (`nat`; nftables: `ip kube-proxy`; `ipvs`).
    pub table: String,
    /// Chain (`KUBE-SERVICES`; IPVS: the service, `TCP 198.19.0.10:80`).
    pub chain: String,
    /// 1-based position in the chain (`iptables -L --line-numbers`).
    pub index: usize,
    /// The rule as iptables-save prints it (`-A CHAIN ...`), as `nft list` prints it, or the
    /// service as `ipvsadm -Sn` prints it.
    pub text: String,
    /// The nftables rule handle (`nft -a`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}#{}: {}",
            self.table, self.chain, self.index, self.text
        )
    }
}

/// An address and port (port 0: the protocol has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// Address.
    pub addr: IpAddr,
    /// Port (0 when not applicable).
    pub port: u16,
}

impl Endpoint {
    /// The destination of a packet.
    pub fn dst_of(p: &Packet) -> Endpoint {
        Endpoint {
            addr: p.dst,
            port: if p.proto.has_ports() { p.dport } else { 0 },
        }
    }

    /// The source of a packet.
    pub fn src_of(p: &Packet) -> Endpoint {
        Endpoint {
            addr: p.src,
            port: if p.proto.has_ports() { p.sport } else { 0 },
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.addr, self.port) {
            (a, 0) => write!(f, "{a}"),
            (IpAddr::V6(a), p) => write!(f, "[{a}]:{p}"),
            (a, p) => write!(f, "{a}:{p}"),
        }
    }
}

/// How a REJECT answers (`--reject-with`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RejectKind {
    /// The iptables name (`icmp-port-unreachable`, `tcp-reset`, `icmp6-adm-prohibited`), or
    /// nft's words for an nft `reject` (`tcp reset`, `icmpx port-unreachable`).
    pub name: String,
    /// ICMP / ICMPv6 type and code sent; `None` for a TCP RST.
    pub icmp: Option<(u8, u8)>,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    /// `-j CHAIN`.
    Jump {
        /// The chain entered.
        chain: String,
    },
    /// `-g CHAIN`: when it returns, the caller of the current chain continues.
    Goto {
        /// The chain entered.
        chain: String,
    },
    /// `-j RETURN`.
    Return,
    /// The end of a user chain: implicit return to the caller.
    EndOfChain,
    /// No rule decided: the built-in chain's policy.
    Policy {
        /// `ACCEPT` or `DROP`.
        policy: String,
    },
    /// `-j ACCEPT`.
    Accept,
    /// `-j DROP`.
    Drop,
    /// `-j REJECT`.
    Reject {
        /// What is sent back.
        with: RejectKind,
    },
    /// The rule matched and has no target (counters only).
    Counted,
    /// `-j LOG` / `-j TRACE` / `-j NFLOG`: logged, nothing changed.
    Log,
    /// The firewall mark changed (`MARK`, `CONNMARK --restore-mark`).
    Mark {
        /// Before.
        old: u32,
        /// After.
        new: u32,
    },
    /// The connection mark changed (`CONNMARK --set-*` / `--save-mark`).
    Connmark {
        /// Before.
        old: u32,
        /// After.
        new: u32,
    },
    /// Destination NAT (`DNAT`, `REDIRECT`): the packet's destination changed.
    Dnat {
        /// Before.
        from: Endpoint,
        /// After.
        to: Endpoint,
        /// The range written, when more than one address or port was possible.
        range: Option<String>,
    },
    /// Source NAT (`SNAT`, `MASQUERADE`): the packet's source changed.
    Snat {
        /// Before.
        from: Endpoint,
        /// After.
        to: Endpoint,
        /// The range written, when more than one address or port was possible.
        range: Option<String>,
        /// Chosen by MASQUERADE from the output interface.
        masquerade: bool,
    },
    /// `-j NOTRACK` / `-j CT --notrack`: the packet will not be tracked.
    NoTrack,
    /// `-j CT --zone N`.
    CtZone {
        /// The zone.
        zone: u16,
    },
    /// A `statistic` (or other probabilistic) rule was not taken on this path.
    BranchNotTaken {
        /// Probability of not taking it.
        probability: f64,
    },
    /// A target this crate does not model, assumed to continue without changing the packet.
    Continue {
        /// The target.
        target: String,
    },
    /// Connection tracking looked the packet up.
    Conntrack {
        /// The state the packet has from here on.
        state: CtState,
        /// The existing entry it belongs to (`conntrack -L` line), if any.
        entry: Option<String>,
        /// Which direction of that entry.
        dir: Option<Direction>,
    },
    /// NAT applied from the connection (an existing entry, or a binding made earlier).
    NatFromConntrack {
        /// Before.
        from: Endpoint,
        /// After.
        to: Endpoint,
    },
    /// The nat table was not consulted.
    NatSkipped {
        /// Why (`conntrack entry exists`, `packet is INVALID`, ...).
        reason: String,
    },
    /// A routing decision.
    Route {
        /// `ip route get`-like outcome text.
        outcome: String,
        /// The table the route came from.
        table: Option<String>,
        /// The route, as `ip route` prints it.
        route: Option<String>,
        /// Output device.
        dev: Option<String>,
        /// Gateway.
        gateway: Option<IpAddr>,
        /// Whether this is a re-route after mangle/nat changed the packet.
        reroute: bool,
    },
    /// Reverse-path filter passed.
    RpFilter {
        /// The effective mode.
        mode: RpFilter,
    },
    /// The packet is looped back to this host through `lo`.
    Loopback,
    /// `add|update|delete @set { elem }`: a dynamic set changes for later packets (nft
    /// affinity); this trace does not see the change.
    SetUpdate {
        /// The set.
        set: String,
        /// `add`, `update` or `delete`.
        op: String,
        /// The element, as computed from the packet.
        elem: String,
    },
    /// IPVS scheduled a new connection of a virtual service to a real server.
    Ipvs {
        /// The service (`TCP 198.19.0.10:80`).
        service: String,
        /// The scheduler (`rr`).
        scheduler: String,
        /// The real server chosen on this path.
        server: Endpoint,
        /// Forwarding method (`masq`, `local`, `route`, `tunnel`).
        forward: String,
    },
}

/// One thing that happened to the packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Where: `raw/PREROUTING`, `conntrack`, `nat/PREROUTING`, `routing`, `rp_filter`,
    /// `filter/FORWARD`, `loopback`, ...
    pub stage: String,
    /// The iptables back end, for netfilter steps.
    pub backend: Option<Backend>,
    /// The table, for netfilter steps.
    pub table: Option<String>,
    /// The chain the step happened in.
    pub chain: Option<String>,
    /// The rule that acted, if any.
    pub rule: Option<RuleRef>,
    /// The probability with which this rule matched (`statistic`), when below 1.
    pub probability: Option<f64>,
    /// What happened (JSON: `{"kind": "jump", "chain": ...}`).
    pub effect: Effect,
}

/// Stable drop reason codes, named after the kernel's `enum skb_drop_reason` where one fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DropReason {
    /// A netfilter rule or chain policy dropped it (`NETFILTER_DROP`).
    #[serde(rename = "NETFILTER_DROP")]
    NetfilterDrop,
    /// No route for a locally generated packet (`IP_OUTNOROUTES`).
    #[serde(rename = "IP_OUTNOROUTES")]
    IpOutNoRoutes,
    /// No route for a received packet (`IP_INNOROUTES`).
    #[serde(rename = "IP_INNOROUTES")]
    IpInNoRoutes,
    /// Host unreachable, or forwarding disabled (IPv4 on the input device, IPv6 for all), on
    /// input (`IP_INADDRERRORS`).
    #[serde(rename = "IP_INADDRERRORS")]
    IpInAddrErrors,
    /// Reverse-path filter (`IP_RPFILTER`).
    #[serde(rename = "IP_RPFILTER")]
    IpRpFilter,
    /// Bigger than the output MTU with DF set (`PKT_TOO_BIG`).
    #[serde(rename = "PKT_TOO_BIG")]
    PktTooBig,
    /// Martian source (`IP_INVALID_SOURCE`).
    #[serde(rename = "IP_INVALID_SOURCE")]
    IpInvalidSource,
    /// Received with one of our own addresses as source (`IP_LOCAL_SOURCE`).
    #[serde(rename = "IP_LOCAL_SOURCE")]
    IpLocalSource,
    /// Martian destination (`IP_INVALID_DEST`).
    #[serde(rename = "IP_INVALID_DEST")]
    IpInvalidDest,
    /// 127/8 off loopback without route_localnet (`IP_LOCALNET`).
    #[serde(rename = "IP_LOCALNET")]
    IpLocalnet,
    /// No specific kernel reason (blackhole and prohibit routes: `NOT_SPECIFIED`).
    #[serde(rename = "NOT_SPECIFIED")]
    NotSpecified,
}

impl DropReason {
    /// The code (`NETFILTER_DROP`).
    pub fn code(self) -> &'static str {
        match self {
            DropReason::NetfilterDrop => "NETFILTER_DROP",
            DropReason::IpOutNoRoutes => "IP_OUTNOROUTES",
            DropReason::IpInNoRoutes => "IP_INNOROUTES",
            DropReason::IpInAddrErrors => "IP_INADDRERRORS",
            DropReason::IpRpFilter => "IP_RPFILTER",
            DropReason::PktTooBig => "PKT_TOO_BIG",
            DropReason::IpInvalidSource => "IP_INVALID_SOURCE",
            DropReason::IpLocalSource => "IP_LOCAL_SOURCE",
            DropReason::IpInvalidDest => "IP_INVALID_DEST",
            DropReason::IpLocalnet => "IP_LOCALNET",
            DropReason::NotSpecified => "NOT_SPECIFIED",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Who dropped a packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Culprit {
    /// A rule (`-j DROP`, or a NAT target that found no address).
    Rule {
        /// The rule.
        rule: RuleRef,
    },
    /// A built-in chain's policy.
    Policy {
        /// The back end.
        backend: Option<Backend>,
        /// Table.
        table: String,
        /// Chain.
        chain: String,
    },
    /// Connection tracking (table full).
    Conntrack {
        /// Why.
        why: String,
    },
}

impl fmt::Display for Culprit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Culprit::Rule { rule } => write!(f, "rule {rule}"),
            Culprit::Policy { table, chain, .. } => write!(f, "{table}/{chain} policy DROP"),
            Culprit::Conntrack { why } => write!(f, "conntrack: {why}"),
        }
    }
}

/// Where a path ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Handed to a local socket (`ip_local_deliver`).
    Delivered {
        /// The interface it arrived on (`lo` for a looped-back local packet).
        dev: String,
        /// Local address and port it is delivered to (after NAT).
        to: Endpoint,
    },
    /// Leaves the node (forwarded, or sent by a local process) on `out_dev` toward `next_hop`.
    Forwarded {
        /// Output interface.
        out_dev: String,
        /// The neighbour it is sent to: the gateway, or the destination itself on-link.
        next_hop: IpAddr,
        /// Whether the route has a gateway.
        via_gateway: bool,
        /// Source as it leaves (after SNAT/MASQUERADE).
        src: Endpoint,
        /// Destination as it leaves (after DNAT).
        dst: Endpoint,
    },
    /// Dropped silently.
    Dropped {
        /// Who dropped it.
        by: Culprit,
        /// Why, as a kernel drop reason.
        reason: DropReason,
    },
    /// Refused by a REJECT rule, which answers with an ICMP error or a TCP RST.
    Rejected {
        /// The rule.
        by: RuleRef,
        /// What it answers with.
        with: RejectKind,
    },
    /// No route (`ENETUNREACH`; a forwarding node answers ICMP net unreachable).
    NoRoute {
        /// The destination looked up.
        dst: IpAddr,
        /// Whether the packet was sent locally (drop reason `IP_OUTNOROUTES`).
        local: bool,
    },
    /// A `blackhole` route or rule: dropped silently (locally: `EINVAL`).
    RouteBlackhole {
        /// The route or rule, as `ip` prints it.
        cause: String,
    },
    /// An `unreachable` route or rule: ICMP host (route) or net (rule) unreachable.
    RouteUnreachable {
        /// The route or rule.
        cause: String,
    },
    /// A `prohibit` route or rule: ICMP communication administratively prohibited (`EACCES`).
    RouteProhibit {
        /// The route or rule.
        cause: String,
    },
    /// The reverse-path filter dropped it (`IP_RPFILTER`).
    RpFilter {
        /// Input interface.
        iif: String,
        /// The source checked.
        src: IpAddr,
        /// The effective mode.
        mode: RpFilter,
        /// Why it failed.
        reason: String,
    },
    /// Forwarding is off for the input interface (or `net.ipv6.conf.all.forwarding`).
    ForwardingDisabled {
        /// Input interface.
        iif: String,
        /// The sysctl that decided.
        sysctl: String,
    },
    /// Bigger than the output MTU with DF set: ICMP fragmentation needed / packet too big.
    MtuExceeded {
        /// Output interface.
        out_dev: String,
        /// Its MTU (or the route's).
        mtu: u32,
        /// The packet length.
        len: u16,
    },
    /// A martian source or destination.
    Martian {
        /// Why.
        reason: String,
        /// The drop reason.
        drop_reason: DropReason,
    },
    /// Something this tracer does not model decides the packet's fate.
    NotModelled {
        /// Where.
        stage: String,
        /// What.
        what: String,
    },
}

impl Verdict {
    /// The kernel drop reason this verdict corresponds to, if the packet is not delivered or
    /// forwarded.
    pub fn drop_reason(&self) -> Option<DropReason> {
        Some(match self {
            Verdict::Delivered { .. } | Verdict::Forwarded { .. } | Verdict::NotModelled { .. } => {
                return None;
            }
            Verdict::Dropped { reason, .. } => *reason,
            Verdict::Rejected { .. } => DropReason::NetfilterDrop,
            Verdict::NoRoute { local: true, .. } => DropReason::IpOutNoRoutes,
            Verdict::NoRoute { local: false, .. } => DropReason::IpInNoRoutes,
            Verdict::RouteBlackhole { .. } | Verdict::RouteProhibit { .. } => {
                DropReason::NotSpecified
            }
            // an `unreachable` rule answers ENETUNREACH, a route EHOSTUNREACH (ip_error)
            Verdict::RouteUnreachable { cause } if cause.starts_with("rule") => {
                DropReason::IpInNoRoutes
            }
            Verdict::RouteUnreachable { .. } => DropReason::IpInAddrErrors,
            Verdict::RpFilter { .. } => DropReason::IpRpFilter,
            Verdict::ForwardingDisabled { .. } => DropReason::IpInAddrErrors,
            Verdict::MtuExceeded { .. } => DropReason::PktTooBig,
            Verdict::Martian { drop_reason, .. } => *drop_reason,
        })
    }

    /// A short stable name of the variant (`delivered`, `forwarded`, `dropped`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Delivered { .. } => "delivered",
            Verdict::Forwarded { .. } => "forwarded",
            Verdict::Dropped { .. } => "dropped",
            Verdict::Rejected { .. } => "rejected",
            Verdict::NoRoute { .. } => "no_route",
            Verdict::RouteBlackhole { .. } => "route_blackhole",
            Verdict::RouteUnreachable { .. } => "route_unreachable",
            Verdict::RouteProhibit { .. } => "route_prohibit",
            Verdict::RpFilter { .. } => "rp_filter",
            Verdict::ForwardingDisabled { .. } => "forwarding_disabled",
            Verdict::MtuExceeded { .. } => "mtu_exceeded",
            Verdict::Martian { .. } => "martian",
            Verdict::NotModelled { .. } => "not_modelled",
        }
    }

    /// Where the packet ends up, for delivered and forwarded paths.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            Verdict::Delivered { to, .. } => Some(*to),
            Verdict::Forwarded { dst, .. } => Some(*dst),
            _ => None,
        }
    }
}

/// Stable assumption codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssumptionCode {
    /// `-m recent`: the list's history is unknown.
    RecentHistory,
    /// `-m limit`: the rate is unknown.
    RateLimit,
    /// `-m physdev`: bridging is not modelled.
    BridgePorts,
    /// `-m owner`: the sending socket is unknown.
    SocketOwner,
    /// A conntrack field was not known.
    ConntrackField,
    /// An address type was guessed.
    AddrType,
    /// An ipset is unknown.
    IpsetUnknown,
    /// A match this crate does not evaluate.
    UnknownMatch,
    /// A target this crate does not model.
    UnknownTarget,
    /// Both iptables back ends hold rules; their order at equal priority is assumed.
    BackendOrder,
    /// A NAT range: the first address/port was taken.
    NatRangeFirst,
    /// A NAT target randomizes the port.
    NatPortRandom,
    /// The DF bit is assumed set.
    DontFragment,
    /// A routing assumption (multipath, unknown forwarding sysctl, ...).
    Route,
    /// A sysctl the trace needed is unknown; the kernel default was used.
    SysctlUnknown,
    /// A conntrack decision rests on defaults (tcp_loose, early drop, state given by caller).
    Conntrack,
    /// nftables tables that iptables-nft created were traced through the iptables-nft dump
    /// (or, without it, as native nftables).
    NftCompat,
    /// A dynamic set update (`update @affinity-…`) is not applied to the set the trace reads.
    SetUpdate,
    /// An IPVS decision rests on what the dump does not say (connection table, persistence,
    /// live counts, `net.ipv4.vs.*` sysctls).
    Ipvs,
}

/// Something the trace could not know and assumed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assumption {
    /// The kind.
    pub code: AssumptionCode,
    /// Where (`filter/INPUT`, `routing`, ...).
    pub stage: String,
    /// The rule it concerns, if any.
    pub rule: Option<RuleRef>,
    /// What was assumed, in words.
    pub text: String,
}

impl fmt::Display for Assumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.text)?;
        if let Some(r) = &self.rule {
            write!(f, " [{}#{}]", r.chain, r.index)?;
        }
        Ok(())
    }
}

/// One way the packet can go, with its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracePath {
    /// Probability of this path (1.0 unless `statistic` rules or multipath routes branch).
    pub probability: f64,
    /// What happened, in order.
    pub steps: Vec<Step>,
    /// Where it ends.
    pub verdict: Verdict,
    /// The packet as it leaves, is delivered, or was when it was dropped.
    pub final_packet: Packet,
    /// How many other paths with the same verdict and final packet were merged into this one
    /// (their steps differ only in branches taken; this path's steps are the most probable).
    pub merged: usize,
}

impl TracePath {
    /// Whether the source address was rewritten (SNAT or MASQUERADE).
    pub fn source_rewritten(&self, original: &Packet) -> bool {
        self.final_packet.src != original.src
    }
}

/// The exploration was cut by the path bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truncation {
    /// The bound (`TraceOptions::max_paths`).
    pub max_paths: usize,
    /// Probability mass of the branches not explored.
    pub unexplored_probability: f64,
}

/// The result of [`trace`](super::trace): every path the packet can take through the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The node's name.
    pub node: String,
    /// Address family.
    pub family: Family,
    /// The packet traced, as given.
    pub packet: Packet,
    /// Paths, most probable first.
    pub paths: Vec<TracePath>,
    /// What was assumed along any path.
    pub assumptions: Vec<Assumption>,
    /// Set when the path bound cut the exploration.
    pub truncated: Option<Truncation>,
}

/// A destination the packet reaches, with the probability it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointShare {
    /// Where (after NAT).
    pub endpoint: Endpoint,
    /// `delivered` or `forwarded`.
    pub kind: String,
    /// Summed probability.
    pub probability: f64,
    /// Whether the source was rewritten on (some of) the paths.
    pub source_rewritten: bool,
}

impl Trace {
    /// The distinct delivered/forwarded destinations with their summed probability, sorted by
    /// endpoint (kube-proxy's tracer answers `"10.180.0.4:80, 10.180.0.5:80"`).
    pub fn endpoints(&self) -> Vec<EndpointShare> {
        let mut out: Vec<EndpointShare> = Vec::new();
        for p in &self.paths {
            let Some(ep) = p.verdict.endpoint() else {
                continue;
            };
            let rewritten = p.source_rewritten(&self.packet);
            match out
                .iter_mut()
                .find(|e| e.endpoint == ep && e.kind == p.verdict.kind())
            {
                Some(e) => {
                    e.probability += p.probability;
                    e.source_rewritten |= rewritten;
                }
                None => out.push(EndpointShare {
                    endpoint: ep,
                    kind: p.verdict.kind().to_string(),
                    probability: p.probability,
                    source_rewritten: rewritten,
                }),
            }
        }
        out.sort_by_key(|a| a.endpoint);
        out
    }

    /// One line: each distinct verdict with its probability, most probable first
    /// (`forwarded to 198.18.65.2:8080 via eth1 (p=0.50); dropped NETFILTER_DROP ... (p=0.50)`).
    pub fn verdict_summary(&self) -> String {
        let parts: Vec<String> = self
            .paths
            .iter()
            .map(|p| {
                if (p.probability - 1.0).abs() < 1e-9 {
                    p.verdict.to_string()
                } else {
                    format!("{} (p={:.3})", p.verdict, p.probability)
                }
            })
            .collect();
        let mut s = parts.join("; ");
        if let Some(t) = &self.truncated {
            s.push_str(&format!(
                "; unexplored (p={:.3}, more than {} paths)",
                t.unexplored_probability, t.max_paths
            ));
        }
        s
    }

    /// The single verdict when every path ends the same way.
    pub fn verdict(&self) -> Option<&Verdict> {
        let first = &self.paths.first()?.verdict;
        self.paths
            .iter()
            .all(|p| p.verdict == *first)
            .then_some(first)
    }
}
