//! Reading expressions for one packet (header fields, meta, conntrack, routes, numgen, the
//! table's sets and maps) and comparing them with a match's right side.
//!
//! ```text
//!   Cx::read(&Expr, &Packet) -> Read::Vals([(probability, [part, …])]) | Read::Break
//!   Cx::lookup(@set | { … }, parts) -> Found(data) | NotFound | Unknown(assumption)
//!   Cx::eval_match(&Match, &Packet) -> MatchOutcome
//! ```
//! A value the packet, the env and the table cannot give is `None` (unknown) or a guess
//! recorded as an `AssumptionKind`; a header the packet lacks is `Break`, which ends the rule
//! as the kernel's implicit protocol dependency does.

use std::net::IpAddr;

use super::expr::{BinOp, Expr, Match, MatchOp, Payload};
use super::index::{Hit, TableIndex};
use super::model::{Set, Table};
use super::types::{Const, DType, Datum, FIB_ADDRTYPE, Tri, parse_const};
use crate::iptables::{AddrTypes, Assumption, AssumptionKind, CtStatus, MatchEnv, MatchOutcome};
use crate::packet::{CtState, Family, Packet, Protocol};

/// What reading an expression gives: alternatives with probabilities (numgen gives N, all
/// else one), each the parts of a value (one part unless a concatenation; `None` for a part
/// that is not known). `Break`: the expression has no value for this packet (a header the
/// packet does not have), which ends the rule as in the kernel.
pub(super) enum Read {
    Break,
    Vals(Vec<(f64, Vec<Option<Datum>>)>),
}

impl Read {
    pub(super) fn one(d: Datum) -> Read {
        Read::Vals(vec![(1.0, vec![Some(d)])])
    }

    pub(super) fn unknown() -> Read {
        Read::Vals(vec![(1.0, vec![None])])
    }
}

/// The outcome of a set or map lookup.
pub(super) enum Lookup<'e> {
    Found(Option<&'e Expr>),
    NotFound,
    Unknown(AssumptionKind),
}

/// Evaluation context: the table (for its sets), the env, and an index over the table's sets
/// when the caller keeps one.
pub(super) struct Cx<'a> {
    pub(super) table: &'a Table,
    pub(super) env: &'a dyn MatchEnv,
    pub(super) index: Option<&'a TableIndex<'a>>,
}

pub(super) fn is_v4(pkt: &Packet) -> bool {
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
    /// The named set `name` (through the index when there is one).
    pub(super) fn named_set(&self, name: &str) -> Option<&Set> {
        match self.index {
            Some(ix) => ix.set(name),
            None => self.table.set(name),
        }
    }

    /// Reads an expression from the packet, the conntrack entry, the routes, or the table's
    /// maps. Guessed values push their assumption to `assumed`.
    pub(super) fn read(&self, e: &Expr, pkt: &Packet, assumed: &mut Vec<AssumptionKind>) -> Read {
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
    pub(super) fn map_value(
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
                .named_set(name)
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
    pub(super) fn lookup<'e>(
        &'e self,
        set: &'e Expr,
        key_ty: &DType,
        parts: &[Option<Datum>],
    ) -> Lookup<'e> {
        if let Some(ix) = self.index {
            let (elems, hit) = match set {
                Expr::SetRef(name) => match ix.named_elems(name) {
                    Some((s, e)) => (s.elements.as_slice(), e.lookup(parts)),
                    None => return Lookup::Unknown(AssumptionKind::NftSet { set: name.clone() }),
                },
                Expr::Set(items) => (
                    items.as_slice(),
                    ix.anonymous_elems(items, key_ty).lookup(parts),
                ),
                _ => return Lookup::Unknown(AssumptionKind::UnknownMatch),
            };
            return match hit {
                Hit::Found(i) => Lookup::Found(elems.get(i).and_then(|e| e.data.as_ref())),
                Hit::NotFound => Lookup::NotFound,
                Hit::Unknown => Lookup::Unknown(AssumptionKind::UnknownMatch),
            };
        }
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

    pub(super) fn assumption(
        &self,
        kind: AssumptionKind,
        text: String,
        guess: bool,
    ) -> (bool, Assumption) {
        let a = Assumption {
            kind,
            match_text: text,
            default_guess: guess,
        };
        (self.env.assume(&a), a)
    }

    pub(super) fn eval_match(
        &self,
        m: &Match,
        pkt: &Packet,
        text: impl Fn() -> String,
    ) -> MatchOutcome {
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
