//! Evaluating a rule's matches against a packet, for the packet tracer.
//!
//! ```text
//!   Match::eval(&Packet, &dyn MatchEnv) -> MatchOutcome
//!       Match | NoMatch | Probability(p) | Assumed { matches, assumption }
//!   Rule::eval(&Packet, &dyn MatchEnv)  -> RuleOutcome { matches, probability, assumptions }
//! ```
//! The packet alone decides addresses, ports, protocol, marks, ct state, length and TTL. What it
//! cannot decide comes from [`MatchEnv`] (output interface, address types from the routing
//! tables, ipset membership, the conntrack entry, the sending socket). When neither can decide
//! (`recent` history, rate limits, bridge ports, unknown modules, a missing env answer), the
//! outcome is `Assumed` with the [`Assumption`] as data; the env may override the default guess
//! through [`MatchEnv::assume`]. Nothing unknown is ever reported as a plain `Match`.
//!
//! The env and the assumptions are shared with the nftables evaluator (`crate::nft`, which also
//! asks [`MatchEnv::route_oif`] for `fib … oif`), so one tracer env serves both front ends;
//! `crate::netfilter` re-exports them under a neutral name.

use std::fmt;
use std::net::IpAddr;

use super::match_ct::{CtDir, CtStates, CtStatus, RecentMode, Statistic};
use super::match_misc::{AddrTypes, PktType, SetDir};
use super::matches::Match;
use super::model::{RawSpec, Rule};
use super::parse::leading_basic;
use super::values::Iface;
use crate::packet::{Packet, Protocol};

/// One direction of a packet, as an ipset dimension sees it (`src` or `dst` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetKeyPart {
    /// The address of that side.
    pub addr: IpAddr,
    /// The port of that side (0 without ports).
    pub port: u16,
    /// The packet's protocol (ipset port entries are per protocol).
    pub proto: Protocol,
}

impl SetKeyPart {
    /// The part of `pkt` a `src` / `dst` flag selects.
    pub fn of(pkt: &Packet, dir: SetDir) -> SetKeyPart {
        match dir {
            SetDir::Src => SetKeyPart {
                addr: pkt.src,
                port: pkt.sport,
                proto: pkt.proto,
            },
            SetDir::Dst => SetKeyPart {
                addr: pkt.dst,
                port: pkt.dport,
                proto: pkt.proto,
            },
        }
    }
}

/// A connection tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtTuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// What is known about the packet's conntrack entry (`conntrack -L`'s view).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtInfo {
    /// Original-direction tuple.
    pub orig: Option<CtTuple>,
    /// Reply-direction tuple (differs from the reversed original after NAT).
    pub reply: Option<CtTuple>,
    /// Status flags (`--ctstatus` bits of [`CtStatus`]).
    pub status: Option<CtStatus>,
    /// The connection mark.
    pub mark: Option<u32>,
    /// Seconds left.
    pub expire: Option<u32>,
    /// Direction of this packet.
    pub dir: Option<CtDir>,
}

/// What a [`Match`] cannot know from the packet.
pub trait MatchEnv {
    /// The output interface once routing chose it; `None` before routing (PREROUTING,
    /// INPUT), where `-o` compares against an empty name as in the kernel.
    fn out_interface(&self) -> Option<&str> {
        None
    }
    /// Route types of `addr` (`ip route get`'s `type`, local table included), optionally
    /// limited to device `dev`; `None` when unknown.
    fn addr_type(&self, addr: IpAddr, dev: Option<&str>) -> Option<AddrTypes> {
        let _ = (addr, dev);
        None
    }
    /// Whether set `name` contains the key; `None` for an unknown set.
    fn ipset_lookup(&self, name: &str, key: &[SetKeyPart]) -> Option<bool> {
        let _ = (name, key);
        None
    }
    /// The packet's conntrack entry, if known.
    fn conntrack(&self) -> Option<&CtInfo> {
        None
    }
    /// uid and gid of the local socket that sent the packet, if known.
    fn socket_owner(&self) -> Option<(u32, u32)> {
        None
    }
    /// The interface a route lookup for `dst` (with firewall mark `mark`) leaves by, as
    /// `ip route get DST mark MARK` answers: `Some(Some(dev))`, `Some(None)` when there is no
    /// route, `None` when unknown. nft's `fib … oif` (reverse-path filters) asks this.
    fn route_oif(&self, dst: IpAddr, mark: u32) -> Option<Option<String>> {
        let _ = (dst, mark);
        None
    }
    /// The answer to an assumption; by default its `default_guess`.
    fn assume(&self, assumption: &Assumption) -> bool {
        assumption.default_guess
    }
}

/// An env that knows nothing beyond the packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl MatchEnv for NoEnv {}

/// What had to be assumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssumptionKind {
    /// `-m recent`: the list's history is not known (guess: the address is not listed).
    RecentHistory {
        /// The list name.
        list: String,
    },
    /// `-m limit`: the rate is not known (guess: under the limit).
    RateLimit,
    /// `-m physdev`: bridge ports are not modelled (guess: not a bridged packet).
    BridgePorts,
    /// `-m owner`: the sending socket is not known (guess: uid 0, gid 0).
    SocketOwner,
    /// `-m conntrack` / `-m connmark`: a field of the conntrack entry is not known (guess: the
    /// entry a new connection would have, built from the packet, mark 0).
    Conntrack {
        /// The field (`--ctorigdst`, `mark`, …).
        field: &'static str,
    },
    /// `-m addrtype` / `-m pkttype`: the type of an address is not known (guess: unicast,
    /// multicast or broadcast by the address alone, never LOCAL).
    AddrType {
        /// The address.
        addr: IpAddr,
    },
    /// `-m set`: the set is not known (guess: not a member).
    Ipset {
        /// The set name.
        set: String,
    },
    /// A module, or an option of a known module, that this code does not evaluate
    /// (guess: does not match). For nft: an expression or statement kept raw, or a header
    /// field that is not modelled.
    UnknownMatch,
    /// nft `@set` lookup of a set the ruleset does not hold (guess: not a member).
    NftSet {
        /// The set name.
        set: String,
    },
    /// nft `fib … oif`: the route to the address is not known (guess: it exists, via the
    /// interface the packet came in on, or the output interface).
    Route {
        /// The address looked up.
        addr: IpAddr,
    },
    /// nft `quota`: the bytes already counted are not known (guess: not exhausted).
    Quota,
}

/// An assumption a match outcome rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assumption {
    /// What was assumed.
    pub kind: AssumptionKind,
    /// The match, as iptables-save (or `nft list`, for nft rules) prints it.
    pub match_text: String,
    /// The outcome used unless [`MatchEnv::assume`] says otherwise.
    pub default_guess: bool,
}

impl fmt::Display for Assumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            AssumptionKind::RecentHistory { list } => format!("recent list {list} has no history"),
            AssumptionKind::RateLimit => "rate under the limit".to_string(),
            AssumptionKind::BridgePorts => "packet not bridged".to_string(),
            AssumptionKind::SocketOwner => "socket owner uid 0 gid 0".to_string(),
            AssumptionKind::Conntrack { field } => {
                format!("conntrack {field} as for a new connection")
            }
            AssumptionKind::AddrType { addr } => {
                format!("address type of {addr} guessed from the address")
            }
            AssumptionKind::Ipset { set } => format!("set {set} unknown, not a member"),
            AssumptionKind::UnknownMatch => "match not evaluated".to_string(),
            AssumptionKind::NftSet { set } => {
                format!("set @{set} not in the ruleset, not a member")
            }
            AssumptionKind::Route { addr } => {
                format!("route to {addr} not known, assumed via the expected interface")
            }
            AssumptionKind::Quota => "quota not exhausted".to_string(),
        };
        let verdict = if self.default_guess {
            "matches"
        } else {
            "does not match"
        };
        write!(f, "{}: {} ({})", self.match_text, what, verdict)
    }
}

/// The outcome of one match.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchOutcome {
    /// Definitely matches.
    Match,
    /// Definitely does not match.
    NoMatch,
    /// Matches with this probability (`statistic`: random, or nth as 1/every).
    Probability(f64),
    /// Decided by an assumption.
    Assumed {
        /// The outcome used.
        matches: bool,
        /// What was assumed.
        assumption: Assumption,
    },
}

impl MatchOutcome {
    fn definite(hit: bool) -> MatchOutcome {
        if hit {
            MatchOutcome::Match
        } else {
            MatchOutcome::NoMatch
        }
    }
}

/// The outcome of all matches of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOutcome {
    /// Whether the rule matches (on the assumptions listed).
    pub matches: bool,
    /// When it matches: the probability it does (1.0 unless `statistic` is involved).
    pub probability: f64,
    /// Assumptions the outcome rests on, in match order.
    pub assumptions: Vec<Assumption>,
}

fn iface_hit(i: &Iface, name: Option<&str>) -> bool {
    i.matches(name.unwrap_or(""))
}

fn guess_types(addr: IpAddr) -> AddrTypes {
    let multicast = addr.is_multicast();
    let bcast = matches!(addr, IpAddr::V4(a) if a.is_broadcast());
    AddrTypes(if multicast {
        AddrTypes::MULTICAST
    } else if bcast {
        AddrTypes::BROADCAST
    } else {
        AddrTypes::UNICAST
    })
}

impl Match {
    /// Evaluates this match for `pkt`.
    pub fn eval(&self, pkt: &Packet, env: &dyn MatchEnv) -> MatchOutcome {
        let assumed = |kind: AssumptionKind, guess: bool| {
            let assumption = Assumption {
                kind,
                match_text: self.to_text(pkt.family()),
                default_guess: guess,
            };
            MatchOutcome::Assumed {
                matches: env.assume(&assumption),
                assumption,
            }
        };
        let d = MatchOutcome::definite;
        match self {
            Match::Source(a) => d(a.apply(a.value.contains(&pkt.src))),
            Match::Destination(a) => d(a.apply(a.value.contains(&pkt.dst))),
            Match::InInterface(i) => d(i.apply(iface_hit(&i.value, pkt.iif.as_deref()))),
            Match::OutInterface(i) => d(i.apply(iface_hit(&i.value, env.out_interface()))),
            Match::Protocol(p) => {
                let hit = p.value.number == 0 || p.value.number == pkt.proto.number();
                d(p.apply(hit))
            }
            Match::Fragment { negated } => d(*negated), // modelled packets are never fragments
            Match::Tcp(m) | Match::Udp(m) | Match::Sctp(m) => {
                let proto = match self {
                    Match::Tcp(_) => Protocol::Tcp,
                    Match::Udp(_) => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                if pkt.proto != proto {
                    return MatchOutcome::NoMatch;
                }
                let sport = m
                    .sport
                    .as_ref()
                    .is_none_or(|p| p.apply(p.value.contains(pkt.sport)));
                let dport = m
                    .dport
                    .as_ref()
                    .is_none_or(|p| p.apply(p.value.contains(pkt.dport)));
                let flags = m
                    .tcp_flags
                    .as_ref()
                    .is_none_or(|f| f.apply(f.value.matches(pkt.tcp_flags.0)));
                d(sport && dport && flags)
            }
            Match::Multiport(m) => {
                if !pkt.proto.has_ports() {
                    return MatchOutcome::NoMatch;
                }
                let hit = match m.dir {
                    super::match_l4::MultiportDir::Source => m.contains(pkt.sport),
                    super::match_l4::MultiportDir::Destination => m.contains(pkt.dport),
                    super::match_l4::MultiportDir::Either => {
                        m.contains(pkt.sport) || m.contains(pkt.dport)
                    }
                };
                d(hit != m.negated)
            }
            Match::Comment(_) => MatchOutcome::Match,
            Match::Statistic(s) => {
                let negated = match s {
                    Statistic::Random { negated, .. } | Statistic::Nth { negated, .. } => *negated,
                };
                let mut p = s.hit_probability();
                if negated {
                    p = 1.0 - p;
                }
                if p >= 1.0 {
                    MatchOutcome::Match
                } else if p <= 0.0 {
                    MatchOutcome::NoMatch
                } else {
                    MatchOutcome::Probability(p)
                }
            }
            Match::Recent(r) => match r.mode {
                RecentMode::Set => d(!r.negated),
                _ => assumed(
                    AssumptionKind::RecentHistory {
                        list: r.list_name().to_string(),
                    },
                    r.negated,
                ),
            },
            Match::Mark(m) => d(m.hit(pkt.mark) != m.negated),
            Match::Connmark(m) => match env.conntrack().and_then(|c| c.mark) {
                Some(mark) => d(m.hit(mark) != m.negated),
                None => assumed(
                    AssumptionKind::Conntrack { field: "mark" },
                    m.hit(0) != m.negated,
                ),
            },
            Match::State(s) => d(s.0.apply(s.0.value.0 & CtStates::bit_of(pkt.ct_state) != 0)),
            Match::Conntrack(c) => self.eval_conntrack(c, pkt, env, &assumed),
            Match::AddrType(a) => {
                let dev = if a.limit_iface_in {
                    pkt.iif.as_deref()
                } else if a.limit_iface_out {
                    env.out_interface()
                } else {
                    None
                };
                let mut guessed = None;
                let mut hit = true;
                for (t, addr) in [(&a.src_type, pkt.src), (&a.dst_type, pkt.dst)] {
                    let Some(t) = t else { continue };
                    let types = env.addr_type(addr, dev).unwrap_or_else(|| {
                        guessed.get_or_insert(addr);
                        guess_types(addr)
                    });
                    hit &= t.apply(types.intersects(t.value));
                }
                match guessed {
                    Some(addr) => assumed(AssumptionKind::AddrType { addr }, hit),
                    None => d(hit),
                }
            }
            Match::Set(s) => {
                let key: Vec<SetKeyPart> =
                    s.dirs.iter().map(|dir| SetKeyPart::of(pkt, *dir)).collect();
                match env.ipset_lookup(&s.name, &key) {
                    Some(hit) => d(hit != s.negated),
                    None => assumed(
                        AssumptionKind::Ipset {
                            set: s.name.clone(),
                        },
                        s.negated,
                    ),
                }
            }
            Match::Physdev(p) => {
                let all_negated = [p.is_in, p.is_out, p.is_bridged]
                    .iter()
                    .flatten()
                    .all(|n| *n)
                    && [&p.physdev_in, &p.physdev_out]
                        .iter()
                        .copied()
                        .flatten()
                        .all(|i| i.negated);
                assumed(AssumptionKind::BridgePorts, all_negated)
            }
            Match::IpRange(r) => {
                let src = r
                    .src
                    .as_ref()
                    .is_none_or(|x| x.apply(x.value.contains(&pkt.src)));
                let dst = r
                    .dst
                    .as_ref()
                    .is_none_or(|x| x.apply(x.value.contains(&pkt.dst)));
                d(src && dst)
            }
            Match::Icmp(m) | Match::Icmp6(m) => {
                let want = if matches!(self, Match::Icmp(_)) {
                    Protocol::Icmp
                } else {
                    Protocol::Icmpv6
                };
                match (pkt.proto == want, pkt.icmp) {
                    (true, Some(h)) => d(m
                        .icmp_type
                        .apply(m.icmp_type.value.matches(h.icmp_type, h.code))),
                    _ => MatchOutcome::NoMatch,
                }
            }
            Match::Owner(o) => {
                let eval_with = |uid: u32, gid: u32| {
                    o.socket_exists.is_none_or(|neg| !neg)
                        && o.uid
                            .as_ref()
                            .is_none_or(|u| u.apply(u.value.0 <= uid && uid <= u.value.1))
                        && o.gid
                            .as_ref()
                            .is_none_or(|g| g.apply(g.value.0 <= gid && gid <= g.value.1))
                };
                if pkt.iif.is_some() {
                    // No local socket: matches only if every option given is negated.
                    let all_neg = o.socket_exists.is_none_or(|n| n)
                        && o.uid.as_ref().is_none_or(|u| u.negated)
                        && o.gid.as_ref().is_none_or(|g| g.negated);
                    return d(all_neg);
                }
                match env.socket_owner() {
                    Some((uid, gid)) => d(eval_with(uid, gid)),
                    None => assumed(AssumptionKind::SocketOwner, eval_with(0, 0)),
                }
            }
            Match::Limit(_) => assumed(AssumptionKind::RateLimit, true),
            Match::Length(l) => d(l.0.apply(l.0.value.0 <= pkt.len && pkt.len <= l.0.value.1)),
            Match::PktType(t) => {
                let known = env.addr_type(pkt.dst, None);
                let types = known.unwrap_or_else(|| guess_types(pkt.dst));
                let actual = if pkt.dst.is_multicast() {
                    PktType::Multicast
                } else if types.0 & AddrTypes::BROADCAST != 0 {
                    PktType::Broadcast
                } else {
                    PktType::Unicast
                };
                let hit = t.0.apply(actual == t.0.value);
                if known.is_some() || pkt.dst.is_multicast() {
                    d(hit)
                } else {
                    assumed(AssumptionKind::AddrType { addr: pkt.dst }, hit)
                }
            }
            Match::Ttl(t) | Match::Hl(t) => d(t.matches(pkt.ttl)),
            Match::Unknown { .. } => assumed(AssumptionKind::UnknownMatch, false),
        }
    }

    fn eval_conntrack(
        &self,
        c: &super::match_ct::Conntrack,
        pkt: &Packet,
        env: &dyn MatchEnv,
        assumed: &dyn Fn(AssumptionKind, bool) -> MatchOutcome,
    ) -> MatchOutcome {
        let info = env.conntrack();
        let from_pkt = CtTuple {
            src: pkt.src,
            dst: pkt.dst,
            sport: pkt.sport,
            dport: pkt.dport,
        };
        let mut missing: Option<&'static str> = None;
        fn need(
            missing: &mut Option<&'static str>,
            field: &'static str,
            v: Option<CtTuple>,
            dflt: CtTuple,
        ) -> CtTuple {
            v.unwrap_or_else(|| {
                missing.get_or_insert(field);
                dflt
            })
        }
        let orig = info.and_then(|i| i.orig);
        let reply = info.and_then(|i| i.reply);
        let mut hit = true;
        if let Some(s) = &c.state {
            let mut bits = CtStates::bit_of(pkt.ct_state);
            if s.value.0 & (CtStates::SNAT | CtStates::DNAT) != 0 {
                let o = need(&mut missing, "--ctstate", orig, from_pkt);
                let r = reply.unwrap_or(CtTuple {
                    src: o.dst,
                    dst: o.src,
                    sport: o.dport,
                    dport: o.sport,
                });
                if reply.is_none() {
                    missing.get_or_insert("--ctstate");
                }
                // DNAT: the reply comes from another address than the original destination;
                // SNAT: it goes to another address than the original source.
                if r.src != o.dst {
                    bits |= CtStates::DNAT;
                }
                if r.dst != o.src {
                    bits |= CtStates::SNAT;
                }
            }
            hit &= s.apply(s.value.0 & bits != 0);
        }
        if let Some(p) = &c.proto {
            hit &= p.apply(p.value.number == pkt.proto.number());
        }
        let o = if c.orig_src.is_some()
            || c.orig_dst.is_some()
            || c.orig_src_port.is_some()
            || c.orig_dst_port.is_some()
        {
            Some(need(&mut missing, "original tuple", orig, from_pkt))
        } else {
            None
        };
        let r = if c.repl_src.is_some()
            || c.repl_dst.is_some()
            || c.repl_src_port.is_some()
            || c.repl_dst_port.is_some()
        {
            let rev = CtTuple {
                src: from_pkt.dst,
                dst: from_pkt.src,
                sport: from_pkt.dport,
                dport: from_pkt.sport,
            };
            Some(reply.unwrap_or_else(|| {
                missing.get_or_insert("reply tuple");
                rev
            }))
        } else {
            None
        };
        if let Some(o) = o {
            hit &= c
                .orig_src
                .as_ref()
                .is_none_or(|a| a.apply(a.value.contains(&o.src)));
            hit &= c
                .orig_dst
                .as_ref()
                .is_none_or(|a| a.apply(a.value.contains(&o.dst)));
            hit &= c
                .orig_src_port
                .as_ref()
                .is_none_or(|p| p.apply(p.value.contains(o.sport)));
            hit &= c
                .orig_dst_port
                .as_ref()
                .is_none_or(|p| p.apply(p.value.contains(o.dport)));
        }
        if let Some(r) = r {
            hit &= c
                .repl_src
                .as_ref()
                .is_none_or(|a| a.apply(a.value.contains(&r.src)));
            hit &= c
                .repl_dst
                .as_ref()
                .is_none_or(|a| a.apply(a.value.contains(&r.dst)));
            hit &= c
                .repl_src_port
                .as_ref()
                .is_none_or(|p| p.apply(p.value.contains(r.sport)));
            hit &= c
                .repl_dst_port
                .as_ref()
                .is_none_or(|p| p.apply(p.value.contains(r.dport)));
        }
        if let Some(s) = &c.status {
            let status = info.and_then(|i| i.status).unwrap_or_else(|| {
                missing.get_or_insert("--ctstatus");
                CtStatus(CtStatus::NONE)
            });
            hit &= s.apply(s.value.0 & status.0 != 0);
        }
        if let Some(e) = &c.expire {
            let left = info.and_then(|i| i.expire).unwrap_or_else(|| {
                missing.get_or_insert("--ctexpire");
                0
            });
            hit &= e.apply(e.value.0 <= left && left <= e.value.1);
        }
        if let Some(dir) = c.dir {
            let actual = info.and_then(|i| i.dir).unwrap_or_else(|| {
                if pkt.ct_state != crate::packet::CtState::New {
                    missing.get_or_insert("--ctdir");
                }
                CtDir::Original
            });
            hit &= actual == dir;
        }
        match missing {
            // Guessed from the packet: a new connection's tuple is the packet's own (before NAT).
            Some(field) => assumed(AssumptionKind::Conntrack { field }, hit),
            None => MatchOutcome::definite(hit),
        }
    }
}

impl RawSpec {
    /// Whether the `-s`, `-d` and `-p` options written first (before any other option)
    /// already rule the packet out: read from the spec text without typing the rule (see
    /// [`leading_basic`]). These basic matches run before any module (`ip_packet_match`), so
    /// a rule they rule out has no other effect.
    pub(crate) fn quick_reject(&self, pkt: &Packet, env: &dyn MatchEnv) -> bool {
        let basic = self.basic.get_or_init(|| {
            let mut v = Vec::new();
            leading_basic(self.text(), |m| {
                v.push(m);
                true
            });
            v.into_boxed_slice()
        });
        basic
            .iter()
            .any(|m| matches!(m.eval(pkt, env), MatchOutcome::NoMatch))
    }
}

impl Rule {
    /// Evaluates all matches in order, stopping at the first that does not match, as the
    /// kernel does. A rule read lazily and not typed yet is first checked on its text
    /// ([`Rule::raw_spec`]): a rule its leading `-s`/`-d`/`-p` rule out stays untyped.
    pub fn eval(&self, pkt: &Packet, env: &dyn MatchEnv) -> RuleOutcome {
        let mut out = RuleOutcome {
            matches: true,
            probability: 1.0,
            assumptions: Vec::new(),
        };
        if !self.is_typed()
            && let Some(raw) = self.raw()
            && raw.quick_reject(pkt, env)
        {
            out.matches = false;
            return out;
        }
        for m in self.matches() {
            match m.eval(pkt, env) {
                MatchOutcome::Match => {}
                MatchOutcome::NoMatch => {
                    out.matches = false;
                    return out;
                }
                MatchOutcome::Probability(p) => out.probability *= p,
                MatchOutcome::Assumed {
                    matches,
                    assumption,
                } => {
                    out.assumptions.push(assumption);
                    if !matches {
                        out.matches = false;
                        return out;
                    }
                }
            }
        }
        out
    }
}
