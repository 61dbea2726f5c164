//! Walking an iptables chain the way `ipt_do_table` does: rules in order, the first matching
//! rule's target decides; `-j` pushes a return point, `-g` does not, `RETURN` (or the end of a
//! user chain) pops it; a built-in chain that returns applies its policy.
//!
//! ```text
//!   cursor { path, chain, rule i, return points } -- work list of cursors, no recursion
//!     rule matches with probability p < 1 (statistic): fork
//!         (1-p) -> a copy of the cursor at i+1              "not taken"
//!         p     -> apply the target
//!     -j X: push (chain, i+1), continue at X[0]      -g X: continue at X[0], push nothing
//!     RETURN / end of a user chain: pop a return point (none left: the built-in's policy)
//!     MARK / CONNMARK / LOG / CT / NOTRACK: change the path, go on with i+1
//!     ACCEPT / DROP / REJECT / DNAT / SNAT / MASQUERADE / REDIRECT: end the chain walk
//! ```
//! Paths are forked only while the tracer's path bound allows; past it the more probable
//! branch is kept and the other's probability is reported as unexplored.

use crate::iptables::{Chain, Connmark, RejectWith, Rule, Target};

use super::engine::Tracer;
use super::model::{
    AssumptionCode, Culprit, DropReason, Effect, RejectKind, RuleRef, Step, Verdict,
};
use super::nat;
use super::program::{Hook, IptablesTable};
use super::state::PathState;

/// How a chain walk ended for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// `RETURN`, or the end of the chain: the caller continues (a built-in chain: policy).
    Return,
    /// A terminal accept (`ACCEPT`, or a NAT target).
    Accept,
    /// The path has a verdict (dropped, rejected, not modelled).
    Stop,
}

/// Nesting bound: deeper means a loop the kernel would have refused at load time.
const MAX_DEPTH: usize = 128;

/// Bound on chain entries (jumps and gotos) along one path, which catches `-g` loops.
const MAX_ENTRIES: usize = 4096;

/// Unknown targets that only log or tweak fields this model does not look at.
const CONTINUING: &[&str] = &[
    "TCPMSS",
    "CHECKSUM",
    "DSCP",
    "TOS",
    "TTL",
    "HL",
    "ECN",
    "CLASSIFY",
    "SECMARK",
    "CONNSECMARK",
    "IDLETIMER",
    "LED",
    "RATEEST",
    "SET",
    "TEE",
    "TCPOPTSTRIP",
    "HMARK",
    "MARK",
    "CONNMARK",
    "CT",
];

/// Unknown targets that only log.
const LOGGING: &[&str] = &["LOG", "NFLOG", "ULOG", "AUDIT", "TRACE"];

/// Where one path is in the walk: the chain and rule it is at and its return points
/// (`-j` pushes one, `-g` does not), as `ipt_do_table`'s jump stack.
#[derive(Clone)]
struct Cursor<'t> {
    st: PathState,
    chain: &'t Chain,
    i: usize,
    stack: Vec<(&'t Chain, usize)>,
    entries: usize,
}

/// What a rule's target did to a cursor.
enum Flow {
    /// Go on with the rule the cursor now points at.
    Next,
    /// The walk of this path ended this way (`Stop`: the path has its verdict).
    End(End),
}

impl IptablesTable<'_> {
    fn rule_ref(&self, chain: &Chain, i: usize) -> RuleRef {
        let spec = chain.rules[i].spec(self.family);
        let text = if spec.is_empty() {
            format!("-A {}", chain.name)
        } else {
            format!("-A {} {spec}", chain.name)
        };
        RuleRef {
            backend: Some(self.backend),
            table: self.table.name.clone(),
            chain: chain.name.clone(),
            index: i + 1,
            text,
            handle: None,
        }
    }

    fn stage(&self, hook: Hook) -> String {
        format!("{}/{}", self.table.name, hook.name())
    }

    fn step(
        &self,
        hook: Hook,
        chain: &Chain,
        rule: Option<RuleRef>,
        probability: Option<f64>,
        effect: Effect,
    ) -> Step {
        Step {
            stage: self.stage(hook),
            backend: Some(self.backend),
            table: Some(self.table.name.clone()),
            chain: Some(chain.name.clone()),
            rule,
            probability,
            effect,
        }
    }

    /// Walks the built-in chain `chain` for `st`, pushing every path's end onto `out`.
    pub(crate) fn walk(
        &self,
        tr: &Tracer<'_>,
        hook: Hook,
        chain: &Chain,
        st: PathState,
        out: &mut Vec<(PathState, End)>,
    ) {
        let mut work = vec![Cursor {
            st,
            chain,
            i: 0,
            stack: Vec::new(),
            entries: 0,
        }];
        while let Some(c) = work.pop() {
            self.run_cursor(tr, hook, c, &mut work, out);
        }
    }

    /// Runs one cursor until its path ends or forks (forks are pushed onto `work`).
    fn run_cursor<'t>(
        &'t self,
        tr: &Tracer<'_>,
        hook: Hook,
        mut c: Cursor<'t>,
        work: &mut Vec<Cursor<'t>>,
        out: &mut Vec<(PathState, End)>,
    ) {
        loop {
            if c.i >= c.chain.rules.len() {
                if !self.table.is_builtin(&c.chain.name) {
                    let step = self.step(hook, c.chain, None, None, Effect::EndOfChain);
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
                rule.eval(&c.st.pkt, &env)
            };
            if !outcome.assumptions.is_empty() {
                let r = self.rule_ref(c.chain, c.i);
                for a in &outcome.assumptions {
                    tr.assume_match(&self.stage(hook), &r, a);
                }
            }
            if !outcome.matches {
                c.i += 1;
                continue;
            }
            let mut taken = None;
            let p = outcome.probability;
            if p < 1.0 {
                let not_taken = |c: &mut Cursor<'_>| {
                    let step = self.step(
                        hook,
                        c.chain,
                        Some(self.rule_ref(c.chain, c.i)),
                        None,
                        Effect::BranchNotTaken {
                            probability: 1.0 - p,
                        },
                    );
                    c.st.steps.push(step);
                    c.i += 1;
                };
                if tr.try_fork() {
                    let mut alt = c.clone();
                    alt.st.prob *= 1.0 - p;
                    not_taken(&mut alt);
                    work.push(alt);
                    c.st.prob *= p;
                    taken = Some(p);
                } else if p >= 0.5 {
                    tr.unexplored(c.st.prob * (1.0 - p));
                    c.st.prob *= p;
                    taken = Some(p);
                } else {
                    tr.unexplored(c.st.prob * p);
                    c.st.prob *= 1.0 - p;
                    not_taken(&mut c);
                    continue;
                }
            }
            match self.apply(tr, hook, rule, taken, &mut c) {
                Flow::Next => {}
                Flow::End(end) => {
                    out.push((c.st, end));
                    return;
                }
            }
        }
    }

    /// Applies the target of the matching rule at the cursor.
    fn apply<'t>(
        &'t self,
        tr: &Tracer<'_>,
        hook: Hook,
        rule: &Rule,
        taken: Option<f64>,
        c: &mut Cursor<'t>,
    ) -> Flow {
        let rref = self.rule_ref(c.chain, c.i);
        let chain = c.chain;
        let step = |effect: Effect| self.step(hook, chain, Some(rref.clone()), taken, effect);
        let stop = |st: &mut PathState, v: Verdict| {
            st.finish(v);
            Flow::End(End::Stop)
        };
        let st = &mut c.st;
        let Some(target) = rule.target() else {
            st.steps.push(step(Effect::Counted));
            c.i += 1;
            return Flow::Next;
        };
        match target {
            Target::Accept => {
                st.steps.push(step(Effect::Accept));
                Flow::End(End::Accept)
            }
            Target::Drop => {
                st.steps.push(step(Effect::Drop));
                stop(
                    st,
                    Verdict::Dropped {
                        by: Culprit::Rule { rule: rref.clone() },
                        reason: DropReason::NetfilterDrop,
                    },
                )
            }
            Target::Reject(r) => {
                let w = r.unwrap_or(RejectWith::default_for(self.family));
                let with = RejectKind {
                    name: w.name().to_string(),
                    icmp: w.icmp(),
                };
                st.steps.push(step(Effect::Reject { with: with.clone() }));
                stop(
                    st,
                    Verdict::Rejected {
                        by: rref.clone(),
                        with,
                    },
                )
            }
            Target::Return => {
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
            Target::Jump(name) | Target::Goto(name) => {
                let goto = matches!(target, Target::Goto(_));
                let Some(sub) = self.table.chain(name) else {
                    return stop(
                        st,
                        Verdict::NotModelled {
                            stage: self.stage(hook),
                            what: format!("{} jumps to missing chain {name}", rref.text),
                        },
                    );
                };
                c.entries += 1;
                if c.stack.len() >= MAX_DEPTH || c.entries > MAX_ENTRIES {
                    return stop(
                        st,
                        Verdict::NotModelled {
                            stage: self.stage(hook),
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
            Target::Dnat(_) | Target::Snat(_) | Target::Masquerade(_) | Target::Redirect(_) => {
                match nat::apply_target(tr, hook, target, self.family, st) {
                    Ok((effect, notes)) => {
                        for (code, text) in notes {
                            tr.assume(code, &self.stage(hook), Some(&rref), text);
                        }
                        st.steps.push(step(effect));
                        Flow::End(End::Accept)
                    }
                    Err(why) => {
                        st.steps.push(step(Effect::Drop));
                        tr.assume(
                            AssumptionCode::UnknownTarget,
                            &self.stage(hook),
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
                }
            }
            Target::Mark(m) => {
                let old = st.pkt.mark;
                st.pkt.mark = m.apply(old);
                st.steps.push(step(Effect::Mark {
                    old,
                    new: st.pkt.mark,
                }));
                c.i += 1;
                Flow::Next
            }
            Target::Connmark(cm) => {
                if !st.ct.nat_capable() {
                    st.steps.push(step(Effect::Continue {
                        target: "CONNMARK (packet not tracked: no effect)".to_string(),
                    }));
                    c.i += 1;
                    return Flow::Next;
                }
                match *cm {
                    Connmark::Set(op) => {
                        let old = st.ct.mark;
                        st.ct.mark = op.apply(old);
                        st.steps.push(step(Effect::Connmark {
                            old,
                            new: st.ct.mark,
                        }));
                    }
                    Connmark::Save { nfmask, ctmask } => {
                        let (nf, ctm) = (nfmask.unwrap_or(u32::MAX), ctmask.unwrap_or(u32::MAX));
                        let old = st.ct.mark;
                        st.ct.mark = (old & !ctm) ^ (st.pkt.mark & nf);
                        st.steps.push(step(Effect::Connmark {
                            old,
                            new: st.ct.mark,
                        }));
                    }
                    Connmark::Restore { nfmask, ctmask } => {
                        let (nf, ctm) = (nfmask.unwrap_or(u32::MAX), ctmask.unwrap_or(u32::MAX));
                        let old = st.pkt.mark;
                        st.pkt.mark = (old & !nf) ^ (st.ct.mark & ctm);
                        st.steps.push(step(Effect::Mark {
                            old,
                            new: st.pkt.mark,
                        }));
                    }
                }
                c.i += 1;
                Flow::Next
            }
            Target::Log(_) | Target::Trace => {
                st.steps.push(step(Effect::Log));
                c.i += 1;
                Flow::Next
            }
            Target::Notrack | Target::Ct { notrack: true, .. } => {
                if let Target::Ct { zone: Some(z), .. } = target {
                    st.ct.zone = *z;
                }
                if !st.ct.looked_up {
                    st.ct.notrack = true;
                    st.pkt.ct_state = crate::packet::CtState::Untracked;
                }
                st.steps.push(step(Effect::NoTrack));
                c.i += 1;
                Flow::Next
            }
            Target::Ct { zone, .. } => {
                if let Some(z) = zone
                    && !st.ct.looked_up
                {
                    st.ct.zone = *z;
                }
                st.steps.push(step(Effect::CtZone {
                    zone: zone.unwrap_or(0),
                }));
                c.i += 1;
                Flow::Next
            }
            Target::Queue => stop(
                st,
                Verdict::NotModelled {
                    stage: self.stage(hook),
                    what: format!("{} queues the packet to user space", rref.text),
                },
            ),
            Target::Unknown { name, .. } => {
                if LOGGING.contains(&name.as_str()) {
                    st.steps.push(step(Effect::Log));
                    c.i += 1;
                    Flow::Next
                } else if CONTINUING.contains(&name.as_str()) {
                    tr.assume(
                        AssumptionCode::UnknownTarget,
                        &self.stage(hook),
                        Some(&rref),
                        format!(
                            "target {name} is not modelled: assumed to continue without changing \
                             what the trace looks at (marks, addresses, ports)"
                        ),
                    );
                    st.steps.push(step(Effect::Continue {
                        target: name.clone(),
                    }));
                    c.i += 1;
                    Flow::Next
                } else {
                    stop(
                        st,
                        Verdict::NotModelled {
                            stage: self.stage(hook),
                            what: format!("target {name} ({})", rref.text),
                        },
                    )
                }
            }
        }
    }
}
