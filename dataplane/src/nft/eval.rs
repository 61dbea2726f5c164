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
//! the branch's packet at once, so later statements of the rule see the new mark. A `reject`
//! carries the protocol dependency nft adds and hides when listing (`with tcp reset`: TCP
//! only; `with icmp` / `with icmpv6`: that IP version only).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::expr::{Expr, Match, Nat, NatKind, Reject, RejectType, SetOp, Stmt, Verdict};
use super::index::TableIndex;
use super::model::{Rule, Table};
use super::read::{Cx, Lookup, Read, is_v4};
use super::types::{Const, DType, Datum, parse_const};
use crate::iptables::{Assumption, AssumptionKind, MatchEnv, MatchOutcome};
use crate::packet::{CtState, Packet, Protocol};

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

impl Match {
    /// Evaluates this match for `pkt`, in `table` (whose sets `@name` refers to).
    pub fn eval(&self, table: &Table, pkt: &Packet, env: &dyn MatchEnv) -> MatchOutcome {
        let cx = Cx {
            table,
            env,
            index: None,
        };
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
                // nft adds a protocol dependency for the reject type (and hides it when
                // listing): `with tcp reset` only for TCP, `with icmp` only for IPv4 and
                // `with icmpv6` only for IPv6 (in `inet` tables).
                let v4 = is_v4(&b.pkt);
                let applies = match r.kind {
                    Some(RejectType::TcpReset) => b.pkt.proto == Protocol::Tcp,
                    Some(RejectType::Icmp) => v4,
                    Some(RejectType::Icmpv6) => !v4,
                    _ => true,
                };
                if !applies {
                    done.push(b.close(false, None));
                    return;
                }
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
        self.eval_cx(
            &Cx {
                table,
                env,
                index: None,
            },
            pkt,
        )
    }

    /// [`Rule::eval`] with an index over the rule's table: set and map lookups hash their key
    /// instead of parsing every element (for evaluating many rules of one ruleset).
    pub fn eval_with(
        &self,
        index: &TableIndex<'_>,
        pkt: &Packet,
        env: &dyn MatchEnv,
    ) -> RuleOutcome {
        self.eval_cx(
            &Cx {
                table: index.table(),
                env,
                index: Some(index),
            },
            pkt,
        )
    }

    fn eval_cx(&self, cx: &Cx<'_>, pkt: &Packet) -> RuleOutcome {
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
