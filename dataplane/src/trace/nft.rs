//! nftables base chains as tracer programs: each base chain of an `ip`/`ip6`/`inet` table
//! runs at its hook and priority; `nat`-type chains join the hook's NAT group.
//!
//! ```text
//!   cursor { path, chain, rule i, return points } -- work list of cursors, no recursion
//!     Rule::eval_with(&TableIndex, packet, env) -> branches (numgen: one per value, with p)
//!       most probable branch continues the cursor, the others fork (while the bound allows)
//!     effects in statement order: meta mark set, ct mark set, notrack, counter, log,
//!       dnat/snat/masquerade/redirect (then accept), update @set (an assumption), reject
//!     verdicts: accept (ends the base chain), drop, continue, return,
//!       jump X (push i+1), goto X (push nothing); the end of a regular chain returns,
//!       the end of the base chain applies its policy (accept unless `policy drop`)
//! ```
//! Steps name the rule as `nft list` prints it, its 1-based position and its handle. Each
//! table is indexed once per trace ([`TableIndex`]): chains by name, set elements parsed on
//! first lookup and hashed.

use std::rc::Rc;

use crate::iptables::{Nat, NatRange, PortMap, PortRange, Target};
use crate::nft::{
    self, ChainType, DType, NatEffect, NatKind, NftFamily, Reject, RejectType, RuleBranch,
    TableIndex,
};
use crate::packet::{CtState, Family};

use super::chain::End;
use super::engine::Tracer;
use super::model::{
    AssumptionCode, Culprit, DropReason, Effect, RejectKind, RuleRef, Step, Verdict,
};
use super::nat;
use super::program::{Hook, Program, Registration};
use super::state::PathState;

/// Nesting bound (the kernel's jump stack holds 16; deeper means a loop or a refused load).
const MAX_DEPTH: usize = 64;

/// Bound on chain entries along one path, which catches `goto` loops.
const MAX_ENTRIES: usize = 4096;

/// The tracer's hook for an nft hook; `None` for hooks the tracer does not walk.
pub(crate) fn trace_hook(h: &nft::Hook) -> Option<Hook> {
    Some(match h {
        nft::Hook::Prerouting => Hook::Prerouting,
        nft::Hook::Input => Hook::Input,
        nft::Hook::Forward => Hook::Forward,
        nft::Hook::Output => Hook::Output,
        nft::Hook::Postrouting => Hook::Postrouting,
        _ => return None,
    })
}

/// One base chain of a table.
pub(crate) struct NftBaseChain<'a> {
    /// The table, indexed.
    pub(crate) index: Rc<TableIndex<'a>>,
    /// The base chain.
    pub(crate) chain: &'a nft::Chain,
    /// Its hook attachment.
    pub(crate) base: &'a nft::BaseChain,
    /// The tracer hook it runs at.
    pub(crate) hook: Hook,
    /// Its position in the dump (tables and chains in creation order): registration order.
    pub(crate) position: u64,
    /// The packet's family.
    pub(crate) family: Family,
}

/// Where one path is in the walk.
#[derive(Clone)]
struct Cursor<'t> {
    st: PathState,
    chain: &'t nft::Chain,
    i: usize,
    stack: Vec<(&'t nft::Chain, usize)>,
    entries: usize,
}

/// What a rule did to a cursor.
enum Flow {
    Next,
    End(End),
}

/// `reject [with TYPE CODE]` as the kernel answers it for a packet of `family` in a table of
/// `table_family` (a bare `reject` is `icmp`/`icmpv6`/`icmpx port-unreachable` by table).
pub(crate) fn reject_kind(r: &Reject, table_family: NftFamily, family: Family) -> RejectKind {
    let kind = r.kind.unwrap_or(match table_family {
        NftFamily::Ip => RejectType::Icmp,
        NftFamily::Ip6 => RejectType::Icmpv6,
        _ => RejectType::Icmpx,
    });
    let code = r.code.as_deref().unwrap_or("port-unreachable");
    let num = |ty: DType| {
        nft::symbol_value(&ty, code)
            .or_else(|| nft::parse_number(code))
            .and_then(|n| u8::try_from(n).ok())
    };
    let (name, icmp) = match kind {
        RejectType::TcpReset => ("tcp reset".to_string(), None),
        RejectType::Icmp => (format!("icmp {code}"), num(DType::IcmpCode).map(|c| (3, c))),
        RejectType::Icmpv6 => (
            format!("icmpv6 {code}"),
            num(DType::Icmpv6Code).map(|c| (1, c)),
        ),
        RejectType::Icmpx => {
            // nft_reject's icmp_code_v4 / icmp_code_v6 tables
            let (v4, v6) = match code {
                "no-route" => (0, 0),
                "host-unreachable" => (1, 3),
                "admin-prohibited" => (13, 1),
                _ => (3, 4),
            };
            let icmp = match family {
                Family::V4 => (3, v4),
                Family::V6 => (1, v6),
            };
            (format!("icmpx {code}"), Some(icmp))
        }
    };
    RejectKind { name, icmp }
}

/// The iptables target that does what an nft NAT statement does (the tracer's NAT code
/// serves both).
fn nat_target(n: &NatEffect) -> Target {
    let ports = n.port.map(|(lo, hi)| PortRange { lo, hi });
    let flag = |f: &str| n.flags.iter().any(|x| x == f);
    let to = Some(NatRange {
        addrs: n.addr,
        ports,
    });
    match n.kind {
        NatKind::Dnat => Target::Dnat(Nat {
            to,
            random: flag("random"),
            random_fully: flag("fully-random"),
            persistent: flag("persistent"),
        }),
        NatKind::Snat => Target::Snat(Nat {
            to,
            random: flag("random"),
            random_fully: flag("fully-random"),
            persistent: flag("persistent"),
        }),
        NatKind::Masquerade => Target::Masquerade(PortMap {
            to_ports: ports,
            random: flag("random"),
            random_fully: flag("fully-random"),
        }),
        NatKind::Redirect => Target::Redirect(PortMap {
            to_ports: ports,
            random: flag("random"),
            random_fully: false,
        }),
    }
}

impl<'a> NftBaseChain<'a> {
    fn table(&self) -> &'a nft::Table {
        self.index.table()
    }

    /// `inet filter`.
    fn table_name(&self) -> String {
        format!("{} {}", self.table().family, self.table().name)
    }

    /// `inet filter/input`.
    fn stage(&self) -> String {
        format!("{}/{}", self.table_name(), self.chain.name)
    }

    fn rule_ref(&self, chain: &nft::Chain, i: usize) -> RuleRef {
        let rule = &chain.rules[i];
        let text = rule
            .to_text(self.table().family)
            .unwrap_or_else(|e| format!("<{e}>"));
        RuleRef {
            backend: None,
            table: self.table_name(),
            chain: chain.name.clone(),
            index: i + 1,
            text,
            handle: rule.handle,
        }
    }

    fn step(
        &self,
        chain: &nft::Chain,
        rule: Option<RuleRef>,
        probability: Option<f64>,
        effect: Effect,
    ) -> Step {
        Step {
            stage: self.stage(),
            backend: None,
            table: Some(self.table_name()),
            chain: Some(chain.name.clone()),
            rule,
            probability,
            effect,
        }
    }

    fn walk(&self, tr: &Tracer<'_>, hook: Hook, st: PathState) -> Vec<(PathState, End)> {
        let mut out = Vec::new();
        let mut work = vec![Cursor {
            st,
            chain: self.chain,
            i: 0,
            stack: Vec::new(),
            entries: 0,
        }];
        while let Some(c) = work.pop() {
            self.run_cursor(tr, hook, c, &mut work, &mut out);
        }
        out
    }

    fn run_cursor(
        &self,
        tr: &Tracer<'_>,
        hook: Hook,
        mut c: Cursor<'a>,
        work: &mut Vec<Cursor<'a>>,
        out: &mut Vec<(PathState, End)>,
    ) {
        loop {
            if c.i >= c.chain.rules.len() {
                if c.chain.base.is_none() {
                    let step = self.step(c.chain, None, None, Effect::EndOfChain);
                    c.st.steps.push(step);
                }
                match c.stack.pop() {
                    Some((chain, i)) => {
                        c.chain = chain;
                        c.i = i;
                        continue;
                    }
                    None => {
                        out.push((c.st, End::Return));
                        return;
                    }
                }
            }
            let rule = &c.chain.rules[c.i];
            let outcome = {
                let env = tr.env(&c.st, hook);
                rule.eval_with(&self.index, &c.st.pkt, &env)
            };
            let mut branches = outcome.branches;
            if branches.iter().any(|b| !b.assumptions.is_empty()) {
                let r = self.rule_ref(c.chain, c.i);
                for b in &branches {
                    for a in &b.assumptions {
                        tr.assume_match(&self.stage(), &r, a);
                    }
                }
            }
            if let [b] = branches.as_slice()
                && !b.matched
                && b.effects.is_empty()
            {
                c.i += 1;
                continue;
            }
            let forked = branches.len() > 1;
            branches.sort_by(|a, b| b.probability.total_cmp(&a.probability));
            let mut rest = branches.into_iter();
            let Some(first) = rest.next() else {
                c.i += 1;
                continue;
            };
            for b in rest {
                if tr.try_fork() {
                    let mut alt = c.clone();
                    alt.st.prob *= b.probability;
                    match self.apply(tr, hook, &b, forked, &mut alt) {
                        Flow::Next => work.push(alt),
                        Flow::End(end) => out.push((alt.st, end)),
                    }
                } else {
                    tr.unexplored(c.st.prob * b.probability);
                }
            }
            c.st.prob *= first.probability;
            match self.apply(tr, hook, &first, forked, &mut c) {
                Flow::Next => {}
                Flow::End(end) => {
                    out.push((c.st, end));
                    return;
                }
            }
        }
    }

    /// Applies one effect that does not end the rule.
    fn effect(
        &self,
        tr: &Tracer<'_>,
        chain: &nft::Chain,
        rref: &RuleRef,
        p: Option<f64>,
        e: &nft::Effect,
        st: &mut PathState,
    ) {
        let step = |effect: Effect| self.step(chain, Some(rref.clone()), p, effect);
        match e {
            nft::Effect::MetaMark(m) => {
                let old = st.pkt.mark;
                st.pkt.mark = *m;
                st.steps.push(step(Effect::Mark { old, new: *m }));
            }
            nft::Effect::CtMark(m) => {
                if st.ct.nat_capable() {
                    let old = st.ct.mark;
                    st.ct.mark = *m;
                    st.steps.push(step(Effect::Connmark { old, new: *m }));
                } else {
                    st.steps.push(step(Effect::Continue {
                        target: "ct mark set (packet not tracked: no effect)".to_string(),
                    }));
                }
            }
            nft::Effect::SetElem { set, op, key } => {
                tr.assume(
                    AssumptionCode::SetUpdate,
                    &self.stage(),
                    Some(rref),
                    format!(
                        "{} @{set} {{ {key} }}: later packets see the element (affinity); this \
                         trace reads @{set} as dumped",
                        op.keyword()
                    ),
                );
                st.steps.push(step(Effect::SetUpdate {
                    set: set.clone(),
                    op: op.keyword().to_string(),
                    elem: key.to_string(),
                }));
            }
            nft::Effect::Counter(_) => st.steps.push(step(Effect::Counted)),
            nft::Effect::Log(_) => st.steps.push(step(Effect::Log)),
            nft::Effect::Notrack => {
                if !st.ct.looked_up {
                    st.ct.notrack = true;
                    st.pkt.ct_state = CtState::Untracked;
                }
                st.steps.push(step(Effect::NoTrack));
            }
            nft::Effect::Mangle(text) => {
                tr.assume(
                    AssumptionCode::UnknownTarget,
                    &self.stage(),
                    Some(rref),
                    format!("{text}: not modelled, assumed to change nothing the trace looks at"),
                );
                st.steps.push(step(Effect::Continue {
                    target: text.clone(),
                }));
            }
            // ended by the caller
            nft::Effect::Nat(_) | nft::Effect::Reject(_) => {}
        }
    }

    /// Applies a branch of the rule at the cursor.
    fn apply(
        &self,
        tr: &Tracer<'_>,
        hook: Hook,
        b: &RuleBranch,
        forked: bool,
        c: &mut Cursor<'a>,
    ) -> Flow {
        let chain = c.chain;
        let rref = self.rule_ref(chain, c.i);
        let p = (b.probability < 1.0).then_some(b.probability);
        let step = |effect: Effect| self.step(chain, Some(rref.clone()), p, effect);
        let stop = |st: &mut PathState, v: Verdict| {
            st.finish(v);
            Flow::End(End::Stop)
        };
        // Effects before a match that failed still happened (`meta mark set … ip saddr x`).
        for e in &b.effects {
            self.effect(tr, chain, &rref, p, e, &mut c.st);
        }
        if !b.matched {
            if forked {
                c.st.steps.push(step(Effect::BranchNotTaken {
                    probability: b.probability,
                }));
            }
            c.i += 1;
            return Flow::Next;
        }
        let st = &mut c.st;
        let nat = b.effects.iter().find_map(|e| match e {
            nft::Effect::Nat(n) => Some(n),
            _ => None,
        });
        if let Some(n) = nat {
            if n.addr.is_none()
                && n.port.is_none()
                && matches!(n.kind, NatKind::Dnat | NatKind::Snat)
            {
                return stop(
                    st,
                    Verdict::NotModelled {
                        stage: self.stage(),
                        what: format!("{}: the NAT address could not be evaluated", rref.text),
                    },
                );
            }
            let target = nat_target(n);
            return match nat::apply_target(tr, hook, &target, self.family, st) {
                Ok((effect, notes)) => {
                    for (code, text) in notes {
                        tr.assume(code, &self.stage(), Some(&rref), text);
                    }
                    st.steps.push(step(effect));
                    Flow::End(End::Accept)
                }
                Err(why) => {
                    st.steps.push(step(Effect::Drop));
                    tr.assume(
                        AssumptionCode::UnknownTarget,
                        &self.stage(),
                        Some(&rref),
                        why,
                    );
                    stop(
                        st,
                        Verdict::Dropped {
                            by: Culprit::Rule { rule: rref.clone() },
                            reason: DropReason::NetfilterDrop,
                        },
                    )
                }
            };
        }
        let reject = b.effects.iter().find_map(|e| match e {
            nft::Effect::Reject(r) => Some(r),
            _ => None,
        });
        match &b.verdict {
            None | Some(nft::Verdict::Continue) => {
                if b.effects.is_empty() {
                    st.steps.push(step(Effect::Counted));
                }
                c.i += 1;
                Flow::Next
            }
            Some(nft::Verdict::Accept) => {
                st.steps.push(step(Effect::Accept));
                Flow::End(End::Accept)
            }
            Some(nft::Verdict::Drop) => match reject {
                Some(r) => {
                    let with = reject_kind(r, self.table().family, self.family);
                    st.steps.push(step(Effect::Reject { with: with.clone() }));
                    stop(
                        st,
                        Verdict::Rejected {
                            by: rref.clone(),
                            with,
                        },
                    )
                }
                None => {
                    st.steps.push(step(Effect::Drop));
                    stop(
                        st,
                        Verdict::Dropped {
                            by: Culprit::Rule { rule: rref.clone() },
                            reason: DropReason::NetfilterDrop,
                        },
                    )
                }
            },
            Some(nft::Verdict::Return) => {
                st.steps.push(step(Effect::Return));
                match c.stack.pop() {
                    Some((ch, i)) => {
                        c.chain = ch;
                        c.i = i;
                        Flow::Next
                    }
                    None => Flow::End(End::Return),
                }
            }
            Some(v @ (nft::Verdict::Jump(name) | nft::Verdict::Goto(name))) => {
                let goto = matches!(v, nft::Verdict::Goto(_));
                let Some(sub) = self.index.chain(name) else {
                    return stop(
                        st,
                        Verdict::NotModelled {
                            stage: self.stage(),
                            what: format!("{} jumps to missing chain {name}", rref.text),
                        },
                    );
                };
                c.entries += 1;
                if c.stack.len() >= MAX_DEPTH || c.entries > MAX_ENTRIES {
                    return stop(
                        st,
                        Verdict::NotModelled {
                            stage: self.stage(),
                            what: format!(
                                "chains nested deeper than {MAX_DEPTH} or entered more than \
                                 {MAX_ENTRIES} times at {} (a loop?)",
                                rref.text
                            ),
                        },
                    );
                }
                st.steps.push(step(if goto {
                    Effect::Goto {
                        chain: name.clone(),
                    }
                } else {
                    Effect::Jump {
                        chain: name.clone(),
                    }
                }));
                if !goto {
                    c.stack.push((c.chain, c.i + 1));
                }
                c.chain = sub;
                c.i = 0;
                Flow::Next
            }
        }
    }
}

impl Program for NftBaseChain<'_> {
    fn name(&self) -> String {
        format!("nft {}", self.stage())
    }

    fn priority(&self, hook: Hook) -> Option<i32> {
        (hook == self.hook).then_some(self.base.prio)
    }

    fn is_nat(&self) -> bool {
        self.base.chain_type == ChainType::Nat
    }

    fn reroutes(&self) -> bool {
        self.base.chain_type == ChainType::Route
    }

    fn registered(&self, _hook: Hook) -> Registration {
        Registration::NfTables(Some(self.position))
    }

    fn acts_at(&self, hook: Hook) -> bool {
        hook == self.hook
            && (!self.chain.rules.is_empty() || self.base.policy == Some(nft::Policy::Drop))
    }

    fn run(&self, tr: &Tracer<'_>, hook: Hook, st: PathState) -> Vec<PathState> {
        if hook != self.hook {
            return vec![st];
        }
        let policy = self.base.policy.unwrap_or(nft::Policy::Accept);
        self.walk(tr, hook, st)
            .into_iter()
            .map(|(mut s, end)| {
                if end == End::Return {
                    if policy == nft::Policy::Drop || !self.chain.rules.is_empty() {
                        let step = self.step(
                            self.chain,
                            None,
                            None,
                            Effect::Policy {
                                policy: policy.as_str().to_string(),
                            },
                        );
                        s.steps.push(step);
                    }
                    if policy == nft::Policy::Drop {
                        s.finish(Verdict::Dropped {
                            by: Culprit::Policy {
                                backend: None,
                                table: self.table_name(),
                                chain: self.chain.name.clone(),
                            },
                            reason: DropReason::NetfilterDrop,
                        });
                    }
                }
                s
            })
            .collect()
    }
}
