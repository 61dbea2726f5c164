//! Walking an iptables chain the way `ipt_do_table` does: rules in order, the first matching
//! rule's target decides; `-j` pushes a return point, `-g` does not, `RETURN` (or the end of a
//! user chain) pops it; a built-in chain that returns applies its policy.
//!
//! ```text
//!   walk(chain, from rule i, path)
//!     rule matches with probability p < 1 (statistic): fork
//!         (1-p) -> walk(chain, i+1, copy)          "not taken"
//!         p     -> apply the target
//!     -j X: walk(X) ; each path that returns continues at i+1, the others end
//!     -g X: walk(X) ; each path that returns, returns from this chain
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

/// Nesting bound: deeper means a loop the kernel would have refused.
const MAX_DEPTH: usize = 128;

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

enum Flow {
    Next(Box<PathState>),
    Done,
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

    /// Walks `chain` from rule `start`, pushing every path's end onto `out`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn walk(
        &self,
        tr: &Tracer<'_>,
        hook: Hook,
        chain: &Chain,
        start: usize,
        mut st: PathState,
        depth: usize,
        out: &mut Vec<(PathState, End)>,
    ) {
        if depth > MAX_DEPTH {
            st.finish(Verdict::NotModelled {
                stage: self.stage(hook),
                what: format!(
                    "chains nested deeper than {MAX_DEPTH} at {} (a loop?)",
                    chain.name
                ),
            });
            out.push((st, End::Stop));
            return;
        }
        let mut i = start;
        while i < chain.rules.len() {
            let rule = &chain.rules[i];
            let outcome = {
                let env = tr.env(&st, hook);
                rule.eval(&st.pkt, &env)
            };
            if !outcome.assumptions.is_empty() {
                let r = self.rule_ref(chain, i);
                for a in &outcome.assumptions {
                    tr.assume_match(&self.stage(hook), &r, a);
                }
            }
            if !outcome.matches {
                i += 1;
                continue;
            }
            let mut taken = None;
            let p = outcome.probability;
            if p < 1.0 {
                let not_taken = |s: &mut PathState| {
                    s.steps.push(self.step(
                        hook,
                        chain,
                        Some(self.rule_ref(chain, i)),
                        None,
                        Effect::BranchNotTaken {
                            probability: 1.0 - p,
                        },
                    ));
                };
                if tr.try_fork() {
                    let mut alt = st.clone();
                    alt.prob *= 1.0 - p;
                    not_taken(&mut alt);
                    self.walk(tr, hook, chain, i + 1, alt, depth, out);
                    st.prob *= p;
                    taken = Some(p);
                } else if p >= 0.5 {
                    tr.unexplored(st.prob * (1.0 - p));
                    st.prob *= p;
                    taken = Some(p);
                } else {
                    tr.unexplored(st.prob * p);
                    st.prob *= 1.0 - p;
                    not_taken(&mut st);
                    i += 1;
                    continue;
                }
            }
            match self.apply(tr, hook, chain, i, rule, taken, st, depth, out) {
                Flow::Next(s) => {
                    st = *s;
                    i += 1;
                }
                Flow::Done => return,
            }
        }
        if !self.table.is_builtin(&chain.name) {
            st.steps
                .push(self.step(hook, chain, None, None, Effect::EndOfChain));
        }
        out.push((st, End::Return));
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        tr: &Tracer<'_>,
        hook: Hook,
        chain: &Chain,
        i: usize,
        rule: &Rule,
        taken: Option<f64>,
        mut st: PathState,
        depth: usize,
        out: &mut Vec<(PathState, End)>,
    ) -> Flow {
        let rref = self.rule_ref(chain, i);
        let step = |effect: Effect| self.step(hook, chain, Some(rref.clone()), taken, effect);
        let stop = |mut s: PathState, v: Verdict, out: &mut Vec<(PathState, End)>| {
            s.finish(v);
            out.push((s, End::Stop));
            Flow::Done
        };
        let Some(target) = &rule.target else {
            st.steps.push(step(Effect::Counted));
            return Flow::Next(Box::new(st));
        };
        match target {
            Target::Accept => {
                st.steps.push(step(Effect::Accept));
                out.push((st, End::Accept));
                Flow::Done
            }
            Target::Drop => {
                st.steps.push(step(Effect::Drop));
                stop(
                    st,
                    Verdict::Dropped {
                        by: Culprit::Rule { rule: rref.clone() },
                        reason: DropReason::NetfilterDrop,
                    },
                    out,
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
                    out,
                )
            }
            Target::Return => {
                st.steps.push(step(Effect::Return));
                out.push((st, End::Return));
                Flow::Done
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
                        out,
                    );
                };
                st.steps.push(step(if goto {
                    Effect::Goto {
                        chain: name.clone(),
                    }
                } else {
                    Effect::Jump {
                        chain: name.clone(),
                    }
                }));
                let mut sub_out = Vec::new();
                self.walk(tr, hook, sub, 0, st, depth + 1, &mut sub_out);
                for (s, end) in sub_out {
                    if end == End::Return && !goto {
                        self.walk(tr, hook, chain, i + 1, s, depth, out);
                    } else {
                        out.push((s, end));
                    }
                }
                Flow::Done
            }
            Target::Dnat(_) | Target::Snat(_) | Target::Masquerade(_) | Target::Redirect(_) => {
                match nat::apply_target(tr, hook, target, self.family, &mut st) {
                    Ok((effect, notes)) => {
                        for (code, text) in notes {
                            tr.assume(code, &self.stage(hook), Some(&rref), text);
                        }
                        st.steps.push(step(effect));
                        out.push((st, End::Accept));
                    }
                    Err(why) => {
                        st.steps.push(step(Effect::Drop));
                        tr.assume(
                            AssumptionCode::UnknownTarget,
                            &self.stage(hook),
                            Some(&rref),
                            why,
                        );
                        st.finish(Verdict::Dropped {
                            by: Culprit::Rule { rule: rref.clone() },
                            reason: DropReason::NetfilterDrop,
                        });
                        out.push((st, End::Stop));
                    }
                }
                Flow::Done
            }
            Target::Mark(m) => {
                let old = st.pkt.mark;
                st.pkt.mark = m.apply(old);
                st.steps.push(step(Effect::Mark {
                    old,
                    new: st.pkt.mark,
                }));
                Flow::Next(Box::new(st))
            }
            Target::Connmark(c) => {
                if !st.ct.nat_capable() {
                    st.steps.push(step(Effect::Continue {
                        target: "CONNMARK (packet not tracked: no effect)".to_string(),
                    }));
                    return Flow::Next(Box::new(st));
                }
                match *c {
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
                Flow::Next(Box::new(st))
            }
            Target::Log(_) | Target::Trace => {
                st.steps.push(step(Effect::Log));
                Flow::Next(Box::new(st))
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
                Flow::Next(Box::new(st))
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
                Flow::Next(Box::new(st))
            }
            Target::Queue => stop(
                st,
                Verdict::NotModelled {
                    stage: self.stage(hook),
                    what: format!("{} queues the packet to user space", rref.text),
                },
                out,
            ),
            Target::Unknown { name, .. } => {
                if LOGGING.contains(&name.as_str()) {
                    st.steps.push(step(Effect::Log));
                    Flow::Next(Box::new(st))
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
                    Flow::Next(Box::new(st))
                } else {
                    stop(
                        st,
                        Verdict::NotModelled {
                            stage: self.stage(hook),
                            what: format!("target {name} ({})", rref.text),
                        },
                        out,
                    )
                }
            }
        }
    }
}
