//! Evaluating nft rules against a packet, for the packet tracer (the nft counterpart of
//! `iptables::Rule::eval`, with the same env and assumptions).
//!
//! ```text
//!   Match::eval(&Table, &Packet, &dyn MatchEnv) -> MatchOutcome
//!       Match | NoMatch | Probability(p) | Assumed { matches, assumption }
//!   Rule::eval(&Table, &Packet, &dyn MatchEnv)  -> RuleOutcome { branches: [RuleBranch {
//!       probability, matched, verdict, effects: [Nat, MetaMark, SetElem, Reject, …],
//!       assumptions, packet }] }
//! ```
//! A rule usually has one branch. `numgen random mod N` splits it: a numgen vmap gives one
//! branch per target with probability (values mapping there)/N, a numgen match two branches.
//! Named sets and maps are looked up in the table's elements as the dump shows them (dynamic
//! sets such as kube-proxy's affinity sets included); a set the table lacks is an
//! assumption. `numgen inc` is treated like `random` (uniform over the packets), as the
//! iptables evaluator treats `statistic --mode nth`.
//!
//! Terminal statements end the rule as the kernel does: NAT ends the base chain with
//! `accept`, `reject` with `drop` (plus the reject effect). A `meta mark set` is applied to
//! the branch's packet at once, so later statements of the rule see the new mark.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::expr::{
    BinOp, Expr, Match, MatchOp, Nat, NatKind, Payload, Reject, SetOp, Stmt, Verdict,
};
use super::model::{Rule, Table};
use super::types::{Const, DType, Datum, FIB_ADDRTYPE, Tri, parse_const};
use crate::iptables::{AddrTypes, Assumption, AssumptionKind, CtStatus, MatchEnv, MatchOutcome};
use crate::packet::{CtState, Family, Packet, Protocol};

/// The address translation a NAT statement sets up.
#[derive(Debug, Clone, PartialEq)]
pub struct NatEffect {
    /// `snat`, `dnat`, `masquerade` or `redirect`.
    pub kind: NatKind,
    /// The new address range (first, last); `None` for masquerade/redirect without one, or
    /// when it could not be evaluated (an assumption says so).
    pub addr: Option<(IpAddr, IpAddr)>,
    /// The new port range.
    pub port: Option<(u16, u16)>,
    /// `random`, `fully-random`, `persistent`.
    pub flags: Vec<String>,
}

/// What a statement does besides matching, as data.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// NAT is set up (the chain then ends with `accept`).
    Nat(NatEffect),
    /// `meta mark set …`: the packet's new mark.
    MetaMark(u32),
    /// `ct mark set …`: the connection's new mark.
    CtMark(u32),
    /// `add|update|delete @set { … }` with the key computed from the packet.
    SetElem {
        /// Set name.
        set: String,
        /// Operation.
        op: SetOp,
        /// The element.
        key: Datum,
    },
    /// `counter` (named counter's name, if any).
    Counter(Option<String>),
    /// `log` (its prefix, if any).
    Log(Option<String>),
    /// `notrack`: the packet is not tracked.
    Notrack,
    /// `reject`: an ICMP error or a TCP RST goes back (the packet is dropped).
    Reject(Reject),
    /// Another header or meta write, not modelled (`ip dscp set …`); its text.
    Mangle(String),
}

impl Effect {
    /// Applies what the effect changes in the packet: the mark, DNAT/SNAT/redirect to one
    /// address or port, `notrack`. Masquerade (the output interface's address) and redirect
    /// (a local address) leave the address alone: the tracer knows the interfaces.
    pub fn apply(&self, pkt: &mut Packet) {
        match self {
            Effect::MetaMark(m) => pkt.mark = *m,
            Effect::Notrack => pkt.ct_state = CtState::Untracked,
            Effect::Nat(n) => {
                let one_port = n.port.filter(|(a, b)| a == b).map(|(a, _)| a);
                let one_addr = n.addr.filter(|(a, b)| a == b).map(|(a, _)| a);
                match n.kind {
                    NatKind::Dnat | NatKind::Redirect => {
                        if let Some(a) = one_addr {
                            pkt.dst = a;
                        }
                        if let Some(p) = one_port {
                            pkt.dport = p;
                        }
                    }
                    NatKind::Snat | NatKind::Masquerade => {
                        if let Some(a) = one_addr {
                            pkt.src = a;
                        }
                        if let Some(p) = one_port {
                            pkt.sport = p;
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// One way a rule can end for a packet.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleBranch {
    /// Probability of this branch (the branches of a rule sum to 1).
    pub probability: f64,
    /// Whether every match held and every lookup found an element.
    pub matched: bool,
    /// The verdict the rule gives; `None`: evaluation goes on with the next rule.
    pub verdict: Option<Verdict>,
    /// Effects, in statement order (also those before a match that failed, such as a
    /// counter).
    pub effects: Vec<Effect>,
    /// Assumptions this branch rests on.
    pub assumptions: Vec<Assumption>,
    /// The packet as the rule leaves it (mark changes applied; NAT is not, see
    /// [`Effect::apply`]).
    pub packet: Packet,
}

/// All the ways a rule can end for a packet.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOutcome {
    /// Branches, with probabilities summing to 1.
    pub branches: Vec<RuleBranch>,
}

impl RuleOutcome {
    /// The probability that the rule matches.
    pub fn match_probability(&self) -> f64 {
        self.branches
            .iter()
            .filter(|b| b.matched)
            .map(|b| b.probability)
            .sum()
    }

    /// Whether the rule surely matches.
    pub fn matches(&self) -> bool {
        self.branches.iter().all(|b| b.matched)
    }
}

/// What reading an expression gives: alternatives with probabilities (numgen gives N, all
/// else one), each the parts of a value (one part unless a concatenation; `None` for a part
/// that is not known). `Break`: the expression has no value for this packet (a header the
/// packet does not have), which ends the rule as in the kernel.
enum Read {
    Break,
    Vals(Vec<(f64, Vec<Option<Datum>>)>),
}

impl Read {
    fn one(d: Datum) -> Read {
        Read::Vals(vec![(1.0, vec![Some(d)])])
    }

    fn unknown() -> Read {
        Read::Vals(vec![(1.0, vec![None])])
    }
}

/// The outcome of a set or map lookup.
enum Lookup<'e> {
    Found(Option<&'e Expr>),
    NotFound,
    Unknown(AssumptionKind),
}

/// Evaluation context: the table (for its sets) and the env.
struct Cx<'a> {
    table: &'a Table,
    env: &'a dyn MatchEnv,
}

fn is_v4(pkt: &Packet) -> bool {
    pkt.family() == Family::V4
}

fn ct_state_bits(s: CtState) -> u64 {
    match s {
        CtState::Invalid => 1,
        CtState::Established => 2,
        CtState::Related => 4,
        CtState::New => 8,
        CtState::Untracked => 64,
    }
}

/// The `fib … type` of an address from its route types.
fn fib_type(types: AddrTypes) -> u64 {
    const ORDER: [u16; 12] = [
        AddrTypes::LOCAL,
        AddrTypes::BROADCAST,
        AddrTypes::MULTICAST,
        AddrTypes::ANYCAST,
        AddrTypes::BLACKHOLE,
        AddrTypes::UNREACHABLE,
        AddrTypes::PROHIBIT,
        AddrTypes::THROW,
        AddrTypes::NAT,
        AddrTypes::XRESOLVE,
        AddrTypes::UNICAST,
        AddrTypes::UNSPEC,
    ];
    let bit = ORDER
        .iter()
        .find(|b| types.0 & **b != 0)
        .copied()
        .unwrap_or(AddrTypes::UNSPEC);
    // AddrTypes bit i is route type i (RTN_UNSPEC = 0 … RTN_XRESOLVE = 11).
    FIB_ADDRTYPE
        .iter()
        .find(|(_, n)| 1u16 << n == bit)
        .map_or(0, |(_, n)| *n)
}

fn guess_types(addr: IpAddr) -> AddrTypes {
    AddrTypes(if addr.is_multicast() {
        AddrTypes::MULTICAST
    } else if matches!(addr, IpAddr::V4(a) if a.is_broadcast()) {
        AddrTypes::BROADCAST
    } else {
        AddrTypes::UNICAST
    })
}

impl Cx<'_> {
    /// Reads an expression from the packet, the conntrack entry, the routes, or the table's
    /// maps. Guessed values push their assumption to `assumed`.
    fn read(&self, e: &Expr, pkt: &Packet, assumed: &mut Vec<AssumptionKind>) -> Read {
        match e {
            Expr::Payload(Payload::Field { protocol, field }) => self.payload(protocol, field, pkt),
            Expr::Meta { key } => self.meta(key, pkt, assumed),
            Expr::Ct(ct) => self.ct(ct, pkt, assumed),
            Expr::Fib(f) => self.fib(f, pkt, assumed),
            Expr::Numgen(n) => {
                if n.modulus == 0 || n.modulus > 65_536 {
                    return Read::unknown();
                }
                let p = 1.0 / f64::from(n.modulus);
                Read::Vals(
                    (0..n.modulus)
                        .map(|i| {
                            (
                                p,
                                vec![Some(Datum::Int(u64::from(n.offset) + u64::from(i)))],
                            )
                        })
                        .collect(),
                )
            }
            Expr::Binop(op, l, r) => {
                let Read::Vals(alts) = self.read(l, pkt, assumed) else {
                    return Read::Break;
                };
                let rhs = match parse_const(&DType::of(l), r) {
                    Some(Const::One(Datum::Int(n))) => Some(n),
                    _ => None,
                };
                Read::Vals(
                    alts.into_iter()
                        .map(|(p, parts)| {
                            let v = match (parts.as_slice(), rhs) {
                                ([Some(Datum::Int(a))], Some(b)) => Some(Datum::Int(match op {
                                    BinOp::And => a & b,
                                    BinOp::Or => a | b,
                                    BinOp::Xor => a ^ b,
                                    BinOp::Lshift => a.checked_shl(b as u32).unwrap_or(0),
                                    BinOp::Rshift => a.checked_shr(b as u32).unwrap_or(0),
                                })),
                                _ => None,
                            };
                            (p, vec![v])
                        })
                        .collect(),
                )
            }
            Expr::Concat(parts) => {
                let mut acc: Vec<(f64, Vec<Option<Datum>>)> = vec![(1.0, Vec::new())];
                for part in parts {
                    let Read::Vals(alts) = self.read(part, pkt, assumed) else {
                        return Read::Break;
                    };
                    let mut next = Vec::with_capacity(acc.len() * alts.len());
                    for (p, prefix) in &acc {
                        for (q, vals) in &alts {
                            let mut v = prefix.clone();
                            v.extend(vals.iter().cloned());
                            next.push((p * q, v));
                        }
                    }
                    acc = next;
                }
                Read::Vals(acc)
            }
            Expr::Map { key, data } => self.map_value(key, data, None, pkt, assumed),
            _ => Read::unknown(),
        }
    }

    /// A `KEY map DATA` lookup giving a value of type `want` (or the named map's data type).
    fn map_value(
        &self,
        key: &Expr,
        data: &Expr,
        want: Option<&DType>,
        pkt: &Packet,
        assumed: &mut Vec<AssumptionKind>,
    ) -> Read {
        let Read::Vals(alts) = self.read(key, pkt, assumed) else {
            return Read::Break;
        };
        let data_ty = match (data, want) {
            (Expr::SetRef(name), _) => self
                .table
                .set(name)
                .and_then(|s| s.map.as_ref())
                .map(|t| DType::from_names(&t.0)),
            (_, w) => w.cloned(),
        };
        let mut out = Vec::new();
        for (p, parts) in alts {
            match self.lookup(data, &DType::of(key), &parts) {
                Lookup::Found(Some(d)) => {
                    let v =
                        data_ty
                            .as_ref()
                            .and_then(|t| parse_const(t, d))
                            .and_then(|c| match c {
                                Const::One(d) => Some(d),
                                _ => None,
                            });
                    out.push((p, vec![v]));
                }
                Lookup::Found(None) | Lookup::NotFound => return Read::Break,
                Lookup::Unknown(k) => {
                    assumed.push(k);
                    out.push((p, vec![None]));
                }
            }
        }
        Read::Vals(out)
    }

    fn payload(&self, protocol: &str, field: &str, pkt: &Packet) -> Read {
        let v4 = is_v4(pkt);
        match protocol {
            "ip" | "ip6" => {
                if (protocol == "ip") != v4 {
                    return Read::Break;
                }
                match field {
                    "saddr" => Read::one(Datum::Addr(pkt.src)),
                    "daddr" => Read::one(Datum::Addr(pkt.dst)),
                    "protocol" | "nexthdr" => Read::one(Datum::Int(pkt.proto.number().into())),
                    "ttl" | "hoplimit" => Read::one(Datum::Int(pkt.ttl.into())),
                    "length" | "payload_len" => Read::one(Datum::Int(pkt.len.into())),
                    _ => Read::unknown(),
                }
            }
            "tcp" | "udp" | "sctp" => {
                let want: Protocol = protocol.parse().unwrap_or(Protocol::Other(0));
                if pkt.proto != want {
                    return Read::Break;
                }
                match field {
                    "sport" => Read::one(Datum::Int(pkt.sport.into())),
                    "dport" => Read::one(Datum::Int(pkt.dport.into())),
                    "flags" if want == Protocol::Tcp => {
                        Read::one(Datum::Int(pkt.tcp_flags.0.into()))
                    }
                    _ => Read::unknown(),
                }
            }
            "th" => match (field, pkt.proto.has_ports(), pkt.icmp) {
                ("sport", true, _) => Read::one(Datum::Int(pkt.sport.into())),
                ("dport", true, _) => Read::one(Datum::Int(pkt.dport.into())),
                // The first 16 bits of an ICMP header are its type and code.
                ("sport", false, Some(h)) => Read::one(Datum::Int(
                    (u64::from(h.icmp_type) << 8) | u64::from(h.code),
                )),
                _ => Read::unknown(),
            },
            "icmp" | "icmpv6" => {
                let want = if protocol == "icmp" {
                    Protocol::Icmp
                } else {
                    Protocol::Icmpv6
                };
                if pkt.proto != want {
                    return Read::Break;
                }
                match (field, pkt.icmp) {
                    ("type", Some(h)) => Read::one(Datum::Int(h.icmp_type.into())),
                    ("code", Some(h)) => Read::one(Datum::Int(h.code.into())),
                    _ => Read::unknown(),
                }
            }
            _ => Read::unknown(),
        }
    }

    fn meta(&self, key: &str, pkt: &Packet, assumed: &mut Vec<AssumptionKind>) -> Read {
        let v4 = is_v4(pkt);
        match key {
            "l4proto" => Read::one(Datum::Int(pkt.proto.number().into())),
            "nfproto" => Read::one(Datum::Int(if v4 { 2 } else { 10 })),
            "protocol" => Read::one(Datum::Int(if v4 { 0x0800 } else { 0x86dd })),
            "mark" => Read::one(Datum::Int(pkt.mark.into())),
            "length" => Read::one(Datum::Int(pkt.len.into())),
            // No device: the kernel stores an empty name (and index 0).
            "iifname" | "iif" => Read::one(Datum::Str(pkt.iif.clone().unwrap_or_default())),
            "oifname" | "oif" => Read::one(Datum::Str(
                self.env.out_interface().unwrap_or_default().to_string(),
            )),
            "skuid" | "skgid" => {
                if pkt.iif.is_some() {
                    return Read::Break; // no local socket
                }
                let (uid, gid) = self.env.socket_owner().unwrap_or_else(|| {
                    assumed.push(AssumptionKind::SocketOwner);
                    (0, 0)
                });
                Read::one(Datum::Int(if key == "skuid" { uid } else { gid }.into()))
            }
            "pkttype" => {
                let known = self.env.addr_type(pkt.dst, None);
                let types = known.unwrap_or_else(|| guess_types(pkt.dst));
                if known.is_none() && !pkt.dst.is_multicast() {
                    assumed.push(AssumptionKind::AddrType { addr: pkt.dst });
                }
                let t = if pkt.dst.is_multicast() {
                    2
                } else if types.0 & AddrTypes::BROADCAST != 0 {
                    1
                } else {
                    0
                };
                Read::one(Datum::Int(t))
            }
            _ => Read::unknown(),
        }
    }

    fn ct(
        &self,
        ct: &super::expr::CtExpr,
        pkt: &Packet,
        assumed: &mut Vec<AssumptionKind>,
    ) -> Read {
        let info = self.env.conntrack();
        let orig = info.and_then(|i| i.orig);
        let reply = info.and_then(|i| i.reply);
        let from_pkt = crate::iptables::CtTuple {
            src: pkt.src,
            dst: pkt.dst,
            sport: pkt.sport,
            dport: pkt.dport,
        };
        match ct.key.as_str() {
            "state" => Read::one(Datum::Int(ct_state_bits(pkt.ct_state))),
            "l3proto" => Read::one(Datum::Int(if is_v4(pkt) { 2 } else { 10 })),
            "protocol" => Read::one(Datum::Int(pkt.proto.number().into())),
            "mark" => Read::one(Datum::Int(
                info.and_then(|i| i.mark)
                    .unwrap_or_else(|| {
                        assumed.push(AssumptionKind::Conntrack { field: "mark" });
                        0
                    })
                    .into(),
            )),
            "direction" => {
                let dir = info.and_then(|i| i.dir).unwrap_or_else(|| {
                    if pkt.ct_state != CtState::New {
                        assumed.push(AssumptionKind::Conntrack { field: "direction" });
                    }
                    crate::iptables::CtDir::Original
                });
                Read::one(Datum::Int(match dir {
                    crate::iptables::CtDir::Original => 0,
                    crate::iptables::CtDir::Reply => 1,
                }))
            }
            "expiration" => match info.and_then(|i| i.expire) {
                Some(s) => Read::one(Datum::Int(u64::from(s) * 1000)),
                None => Read::unknown(),
            },
            "status" => {
                let mut bits = 0;
                match info.and_then(|i| i.status) {
                    Some(s) => {
                        for (ipt, nft) in [
                            (CtStatus::EXPECTED, 1),
                            (CtStatus::SEEN_REPLY, 2),
                            (CtStatus::ASSURED, 4),
                            (CtStatus::CONFIRMED, 8),
                        ] {
                            if s.0 & ipt != 0 {
                                bits |= nft;
                            }
                        }
                    }
                    None => assumed.push(AssumptionKind::Conntrack { field: "status" }),
                }
                match (orig, reply) {
                    (Some(o), Some(r)) => {
                        if r.src != o.dst {
                            bits |= 32; // dnat
                        }
                        if r.dst != o.src {
                            bits |= 16; // snat
                        }
                    }
                    _ => assumed.push(AssumptionKind::Conntrack { field: "status" }),
                }
                Read::one(Datum::Int(bits))
            }
            key => {
                let (fam, field) = match key.split_once(' ') {
                    Some((f, rest)) => (Some(f), rest),
                    None => (ct.family.as_deref(), key),
                };
                if let Some(f) = fam
                    && (f == "ip") != is_v4(pkt)
                {
                    return Read::Break;
                }
                let reply_dir = ct.dir == Some(super::expr::CtDirection::Reply);
                let tuple = if reply_dir {
                    reply.unwrap_or_else(|| {
                        assumed.push(AssumptionKind::Conntrack {
                            field: "reply tuple",
                        });
                        crate::iptables::CtTuple {
                            src: from_pkt.dst,
                            dst: from_pkt.src,
                            sport: from_pkt.dport,
                            dport: from_pkt.sport,
                        }
                    })
                } else {
                    orig.unwrap_or_else(|| {
                        assumed.push(AssumptionKind::Conntrack {
                            field: "original tuple",
                        });
                        from_pkt
                    })
                };
                match field {
                    "saddr" => Read::one(Datum::Addr(tuple.src)),
                    "daddr" => Read::one(Datum::Addr(tuple.dst)),
                    "proto-src" => Read::one(Datum::Int(tuple.sport.into())),
                    "proto-dst" => Read::one(Datum::Int(tuple.dport.into())),
                    _ => Read::unknown(),
                }
            }
        }
    }

    fn fib(&self, f: &super::expr::Fib, pkt: &Packet, assumed: &mut Vec<AssumptionKind>) -> Read {
        let has = |x: &str| f.flags.iter().any(|g| g == x);
        let addr = if has("saddr") {
            pkt.src
        } else if has("daddr") {
            pkt.dst
        } else {
            return Read::unknown();
        };
        match f.result.as_str() {
            "type" => {
                let dev = if has("iif") {
                    pkt.iif.as_deref()
                } else if has("oif") {
                    self.env.out_interface()
                } else {
                    None
                };
                let types = self.env.addr_type(addr, dev).unwrap_or_else(|| {
                    assumed.push(AssumptionKind::AddrType { addr });
                    guess_types(addr)
                });
                Read::one(Datum::Int(fib_type(types)))
            }
            "oif" | "oifname" => {
                let mark = if has("mark") { pkt.mark } else { 0 };
                let expected = if has("iif") {
                    pkt.iif.clone()
                } else {
                    self.env.out_interface().map(str::to_string)
                };
                let dev = match self.env.route_oif(addr, mark) {
                    Some(dev) => dev,
                    None => {
                        assumed.push(AssumptionKind::Route { addr });
                        expected.clone().or_else(|| Some(String::new()))
                    }
                };
                // With `iif`, a route leaving by another interface counts as missing (the
                // reverse-path check).
                let dev = match (dev, has("iif")) {
                    (Some(d), true) if Some(&d) != expected.as_ref() => None,
                    (d, _) => d,
                };
                Read::one(match dev {
                    Some(d) => Datum::Str(d),
                    None => Datum::Bool(false),
                })
            }
            _ => Read::unknown(),
        }
    }

    /// Looks `parts` up in a set or map expression (`@name` or anonymous), whose keys have
    /// type `key_ty` (a named set's own type wins).
    fn lookup<'e>(&'e self, set: &'e Expr, key_ty: &DType, parts: &[Option<Datum>]) -> Lookup<'e> {
        let (elems, ty) = match set {
            Expr::SetRef(name) => match self.table.set(name) {
                Some(s) => (&s.elements, DType::from_names(&s.key_type.0)),
                None => return Lookup::Unknown(AssumptionKind::NftSet { set: name.clone() }),
            },
            Expr::Set(items) => (items, key_ty.clone()),
            _ => return Lookup::Unknown(AssumptionKind::UnknownMatch),
        };
        let mut unknown = false;
        for e in elems {
            let Some(c) = parse_const(&ty, &e.key) else {
                unknown = true;
                continue;
            };
            match c.contains_parts(parts) {
                Tri::Yes => return Lookup::Found(e.data.as_ref()),
                Tri::Unknown => unknown = true,
                Tri::No => {}
            }
        }
        if unknown {
            Lookup::Unknown(AssumptionKind::UnknownMatch)
        } else {
            Lookup::NotFound
        }
    }

    /// Compares one read value with the right side of a match.
    fn compare(
        &self,
        m: &Match,
        ty: &DType,
        parts: &[Option<Datum>],
    ) -> (Tri, Option<AssumptionKind>) {
        let set_like = matches!(m.right, Expr::SetRef(_) | Expr::Set(_));
        let (hit, kind) = if set_like {
            match self.lookup(&m.right, ty, parts) {
                Lookup::Found(_) => (Tri::Yes, None),
                Lookup::NotFound => (Tri::No, None),
                Lookup::Unknown(k) => (Tri::Unknown, Some(k)),
            }
        } else {
            let Some(c) = parse_const(ty, &m.right) else {
                return (Tri::Unknown, Some(AssumptionKind::UnknownMatch));
            };
            let t = match (m.op, &c, parts) {
                (MatchOp::In, Const::One(Datum::Int(bits)), [Some(Datum::Int(v))])
                    if ty.is_bitmask() =>
                {
                    Tri::from(v & bits != 0)
                }
                (
                    MatchOp::Lt | MatchOp::Gt | MatchOp::Le | MatchOp::Ge,
                    Const::One(b),
                    [Some(a)],
                ) => match a.cmp_same(b) {
                    Some(o) => Tri::from(match m.op {
                        MatchOp::Lt => o.is_lt(),
                        MatchOp::Gt => o.is_gt(),
                        MatchOp::Le => o.is_le(),
                        _ => o.is_ge(),
                    }),
                    None => Tri::No,
                },
                (MatchOp::Lt | MatchOp::Gt | MatchOp::Le | MatchOp::Ge, _, _) => Tri::Unknown,
                (_, Const::One(Datum::Bool(b)), [Some(Datum::Str(_))]) => Tri::from(*b),
                _ => c.contains_parts(parts),
            };
            (
                t,
                (t == Tri::Unknown).then_some(AssumptionKind::UnknownMatch),
            )
        };
        let hit = match (m.op, hit) {
            (MatchOp::Ne, Tri::Yes) => Tri::No,
            (MatchOp::Ne, Tri::No) => Tri::Yes,
            (_, t) => t,
        };
        (hit, kind)
    }

    fn assumption(&self, kind: AssumptionKind, text: String, guess: bool) -> (bool, Assumption) {
        let a = Assumption {
            kind,
            match_text: text,
            default_guess: guess,
        };
        (self.env.assume(&a), a)
    }

    fn eval_match(&self, m: &Match, pkt: &Packet, text: impl Fn() -> String) -> MatchOutcome {
        let mut assumed = Vec::new();
        let Read::Vals(alts) = self.read(&m.left, pkt, &mut assumed) else {
            return MatchOutcome::NoMatch;
        };
        let ty = DType::of(&m.left);
        let mut p_yes = 0.0;
        let mut unknown: Option<AssumptionKind> = None;
        for (p, parts) in &alts {
            let (t, kind) = self.compare(m, &ty, parts);
            match t {
                Tri::Yes => p_yes += p,
                Tri::No => {}
                Tri::Unknown => {
                    unknown.get_or_insert(kind.unwrap_or(AssumptionKind::UnknownMatch));
                }
            }
        }
        if let Some(kind) = unknown {
            let kind = assumed.into_iter().next().unwrap_or(kind);
            let (matches, assumption) = self.assumption(kind, text(), false);
            return MatchOutcome::Assumed {
                matches,
                assumption,
            };
        }
        if let Some(kind) = assumed.into_iter().next() {
            let (matches, assumption) = self.assumption(kind, text(), p_yes > 0.0);
            return MatchOutcome::Assumed {
                matches,
                assumption,
            };
        }
        if p_yes >= 1.0 - 1e-12 {
            MatchOutcome::Match
        } else if p_yes <= 1e-12 {
            MatchOutcome::NoMatch
        } else {
            MatchOutcome::Probability(p_yes)
        }
    }
}

impl Match {
    /// Evaluates this match for `pkt`, in `table` (whose sets `@name` refers to).
    pub fn eval(&self, table: &Table, pkt: &Packet, env: &dyn MatchEnv) -> MatchOutcome {
        let cx = Cx { table, env };
        cx.eval_match(self, pkt, || stmt_text(&Stmt::Match(self.clone()), table))
    }
}

fn stmt_text(s: &Stmt, table: &Table) -> String {
    s.to_text(table.family).unwrap_or_else(|_| match s {
        Stmt::Raw(v) => v.to_string(),
        other => format!("{other:?}"),
    })
}

/// A branch being evaluated.
struct Open {
    p: f64,
    pkt: Packet,
    effects: Vec<Effect>,
    assumptions: Vec<Assumption>,
}

impl Open {
    fn close(self, matched: bool, verdict: Option<Verdict>) -> RuleBranch {
        RuleBranch {
            probability: self.p,
            matched,
            verdict,
            effects: self.effects,
            assumptions: self.assumptions,
            packet: self.pkt,
        }
    }

    fn fork(&self, p: f64) -> Open {
        Open {
            p,
            pkt: self.pkt.clone(),
            effects: self.effects.clone(),
            assumptions: self.assumptions.clone(),
        }
    }
}

fn one_value(parts: &[Option<Datum>]) -> Option<Datum> {
    match parts {
        [one] => one.clone(),
        many => many
            .iter()
            .cloned()
            .collect::<Option<Vec<_>>>()
            .map(Datum::Concat),
    }
}

impl Cx<'_> {
    /// Applies a match outcome to a branch: it stays open (possibly split) or closes.
    fn apply_outcome(
        &self,
        mut b: Open,
        outcome: MatchOutcome,
        open: &mut Vec<Open>,
        done: &mut Vec<RuleBranch>,
    ) {
        match outcome {
            MatchOutcome::Match => open.push(b),
            MatchOutcome::NoMatch => done.push(b.close(false, None)),
            MatchOutcome::Probability(q) => {
                let miss = b.fork(b.p * (1.0 - q));
                b.p *= q;
                open.push(b);
                done.push(miss.close(false, None));
            }
            MatchOutcome::Assumed {
                matches,
                assumption,
            } => {
                b.assumptions.push(assumption);
                if matches {
                    open.push(b);
                } else {
                    done.push(b.close(false, None));
                }
            }
        }
    }

    /// Evaluates `value` as a number of type `ty` for a write (`meta mark set …`).
    fn write_value(
        &self,
        value: &Expr,
        ty: &DType,
        pkt: &Packet,
        assumed: &mut Vec<AssumptionKind>,
    ) -> Read {
        if let Some(Const::One(d)) = parse_const(ty, value) {
            return Read::one(d);
        }
        match value {
            Expr::Map { key, data } => self.map_value(key, data, Some(ty), pkt, assumed),
            other => self.read(other, pkt, assumed),
        }
    }

    fn nat(&self, n: &Nat, pkt: &Packet, assumed: &mut Vec<AssumptionKind>) -> NatEffect {
        let v6 = match n.family.as_deref() {
            Some("ip6") => true,
            Some(_) => false,
            None => !is_v4(pkt),
        };
        let ty = if v6 { DType::Ipv6Addr } else { DType::Ipv4Addr };
        let addr = n.addr.as_ref().and_then(|a| {
            let got = match parse_const(&ty, a) {
                Some(Const::One(Datum::Addr(x))) => Some((x, x)),
                Some(Const::Range(Datum::Addr(x), Datum::Addr(y))) => Some((x, y)),
                _ => match self.write_value(a, &ty, pkt, assumed) {
                    Read::Vals(v) => match v.as_slice() {
                        [(_, parts)] => match one_value(parts) {
                            Some(Datum::Addr(x)) => Some((x, x)),
                            _ => None,
                        },
                        _ => None,
                    },
                    Read::Break => None,
                },
            };
            if got.is_none() {
                assumed.push(AssumptionKind::UnknownMatch);
            }
            got
        });
        let port = n.port.as_ref().and_then(|p| {
            let as_port = |d: &Datum| d.as_int().and_then(|n| u16::try_from(n).ok());
            match parse_const(&DType::InetService, p) {
                Some(Const::One(d)) => as_port(&d).map(|x| (x, x)),
                Some(Const::Range(a, b)) => Some((as_port(&a)?, as_port(&b)?)),
                _ => {
                    assumed.push(AssumptionKind::UnknownMatch);
                    None
                }
            }
        });
        NatEffect {
            kind: n.kind,
            addr,
            port,
            flags: n.flags.clone(),
        }
    }

    /// Evaluates one statement on an open branch.
    fn stmt(&self, s: &Stmt, mut b: Open, open: &mut Vec<Open>, done: &mut Vec<RuleBranch>) {
        let text = || stmt_text(s, self.table);
        match s {
            Stmt::Match(m) => {
                let outcome = self.eval_match(m, &b.pkt, text);
                self.apply_outcome(b, outcome, open, done);
            }
            Stmt::Verdict(v) => done.push(b.close(true, Some(v.clone()))),
            Stmt::Vmap { key, data } => {
                let mut assumed = Vec::new();
                let Read::Vals(alts) = self.read(key, &b.pkt, &mut assumed) else {
                    done.push(b.close(false, None));
                    return;
                };
                for kind in assumed {
                    let (_, a) = self.assumption(kind, text(), true);
                    b.assumptions.push(a);
                }
                // Group the alternatives by outcome, keeping first-seen order.
                let mut groups: Vec<(Option<Verdict>, f64, Option<AssumptionKind>)> = Vec::new();
                for (p, parts) in alts {
                    let (v, kind) = match self.lookup(data, &DType::of(key), &parts) {
                        Lookup::Found(Some(Expr::Verdict(v))) => (Some(v.clone()), None),
                        Lookup::Found(_) => (None, Some(AssumptionKind::UnknownMatch)),
                        Lookup::NotFound => (None, None),
                        Lookup::Unknown(k) => (None, Some(k)),
                    };
                    match groups.iter_mut().find(|g| g.0 == v && g.2 == kind) {
                        Some(g) => g.1 += p,
                        None => groups.push((v, p, kind)),
                    }
                }
                for (v, p, kind) in groups {
                    let mut nb = b.fork(b.p * p);
                    if let Some(k) = kind {
                        // The element a lookup would find cannot be named: guess none.
                        let (_, a) = self.assumption(k, text(), false);
                        nb.assumptions.push(a);
                    }
                    let matched = v.is_some();
                    done.push(nb.close(matched, v));
                }
            }
            Stmt::Counter(c) => {
                b.effects.push(Effect::Counter(match c {
                    super::expr::Counter::Named(n) => Some(n.clone()),
                    _ => None,
                }));
                open.push(b);
            }
            Stmt::Mangle { key, value } => {
                let mut assumed = Vec::new();
                let ty = DType::of(key);
                let target = match key {
                    Expr::Meta { key } if key == "mark" => Some(true),
                    Expr::Ct(ct) if ct.key == "mark" && ct.dir.is_none() => Some(false),
                    _ => None,
                };
                let Some(is_meta) = target else {
                    // A header write needs the header (nft's implicit protocol dependency).
                    if let Expr::Payload(_) = key
                        && let Read::Break = self.read(key, &b.pkt, &mut Vec::new())
                    {
                        done.push(b.close(false, None));
                        return;
                    }
                    b.effects.push(Effect::Mangle(text()));
                    open.push(b);
                    return;
                };
                let read = self.write_value(value, &ty, &b.pkt, &mut assumed);
                let guessed = !assumed.is_empty();
                for kind in assumed {
                    let (_, a) = self.assumption(kind, text(), true);
                    b.assumptions.push(a);
                }
                let Read::Vals(alts) = read else {
                    done.push(b.close(false, None)); // a map without the key: the rule breaks
                    return;
                };
                for (p, parts) in alts {
                    let mut nb = b.fork(b.p * p);
                    match one_value(&parts).and_then(|d| d.as_int()) {
                        Some(v) => {
                            let v = v as u32;
                            if is_meta {
                                nb.pkt.mark = v;
                                nb.effects.push(Effect::MetaMark(v));
                            } else {
                                nb.effects.push(Effect::CtMark(v));
                            }
                        }
                        None if !guessed => {
                            let (_, a) =
                                self.assumption(AssumptionKind::UnknownMatch, text(), true);
                            nb.assumptions.push(a);
                            nb.effects.push(Effect::Mangle(text()));
                        }
                        None => nb.effects.push(Effect::Mangle(text())),
                    }
                    open.push(nb);
                }
            }
            Stmt::Nat(n) => {
                let mut assumed = Vec::new();
                let effect = self.nat(n, &b.pkt, &mut assumed);
                for kind in assumed {
                    let (_, a) = self.assumption(kind, text(), true);
                    b.assumptions.push(a);
                }
                b.effects.push(Effect::Nat(effect));
                done.push(b.close(true, Some(Verdict::Accept)));
            }
            Stmt::Reject(r) => {
                b.effects.push(Effect::Reject(r.clone()));
                done.push(b.close(true, Some(Verdict::Drop)));
            }
            Stmt::Log(l) => {
                b.effects.push(Effect::Log(l.prefix.clone()));
                open.push(b);
            }
            Stmt::Notrack => {
                b.effects.push(Effect::Notrack);
                b.pkt.ct_state = CtState::Untracked;
                open.push(b);
            }
            Stmt::Limit(l) => {
                let (matches, assumption) =
                    self.assumption(AssumptionKind::RateLimit, text(), !l.inv);
                let outcome = MatchOutcome::Assumed {
                    matches,
                    assumption,
                };
                self.apply_outcome(b, outcome, open, done);
            }
            Stmt::Quota(q) => {
                let (matches, assumption) = self.assumption(AssumptionKind::Quota, text(), !q.inv);
                let outcome = MatchOutcome::Assumed {
                    matches,
                    assumption,
                };
                self.apply_outcome(b, outcome, open, done);
            }
            Stmt::Set(st) => {
                let mut assumed = Vec::new();
                let read = self.read(&st.elem, &b.pkt, &mut assumed);
                for kind in assumed {
                    let (_, a) = self.assumption(kind, text(), true);
                    b.assumptions.push(a);
                }
                let Read::Vals(alts) = read else {
                    done.push(b.close(false, None));
                    return;
                };
                match alts.as_slice() {
                    [(_, parts)] if one_value(parts).is_some() => {
                        if let Some(key) = one_value(parts) {
                            b.effects.push(Effect::SetElem {
                                set: st.set.clone(),
                                op: st.op,
                                key,
                            });
                        }
                    }
                    _ => {
                        let (_, a) = self.assumption(AssumptionKind::UnknownMatch, text(), true);
                        b.assumptions.push(a);
                    }
                }
                open.push(b);
            }
            Stmt::Raw(_) => {
                let (matches, assumption) =
                    self.assumption(AssumptionKind::UnknownMatch, text(), false);
                let outcome = MatchOutcome::Assumed {
                    matches,
                    assumption,
                };
                self.apply_outcome(b, outcome, open, done);
            }
        }
    }
}

impl Rule {
    /// Evaluates the rule's statements in order for `pkt`, in `table` (whose sets and maps the
    /// rule may name), as the kernel does: a failed match or a lookup that finds nothing ends
    /// the rule; a verdict, NAT or reject ends it with a verdict.
    pub fn eval(&self, table: &Table, pkt: &Packet, env: &dyn MatchEnv) -> RuleOutcome {
        let cx = Cx { table, env };
        let mut open = vec![Open {
            p: 1.0,
            pkt: pkt.clone(),
            effects: Vec::new(),
            assumptions: Vec::new(),
        }];
        let mut done = Vec::new();
        for s in &self.stmts {
            let mut next = Vec::new();
            for b in open {
                cx.stmt(s, b, &mut next, &mut done);
            }
            open = next;
            if open.is_empty() {
                break;
            }
        }
        done.extend(open.into_iter().map(|b| b.close(true, None)));
        RuleOutcome {
            branches: merge(done),
        }
    }
}

/// Merges branches that ended the same way with the same effects (a numgen match split that
/// rejoined), keeping first-seen order.
fn merge(branches: Vec<RuleBranch>) -> Vec<RuleBranch> {
    let mut out: Vec<RuleBranch> = Vec::with_capacity(branches.len());
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for b in branches {
        let key = format!(
            "{}|{:?}|{:?}|{:?}|{}",
            b.matched, b.verdict, b.effects, b.assumptions, b.packet
        );
        match index.get(&key) {
            Some(&i) => out[i].probability += b.probability,
            None => {
                index.insert(key, out.len());
                out.push(b);
            }
        }
    }
    out
}
