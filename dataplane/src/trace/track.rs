//! The conntrack hook (priority -200 in PREROUTING and OUTPUT) and the NAT hooks (-100 for
//! destination NAT, 100 for source NAT).
//!
//! ```text
//!   conntrack: NOTRACK'd -> UNTRACKED
//!              entry found (orig dir) -> NEW if [UNREPLIED] else ESTABLISHED; NAT from the entry
//!              entry found (reply dir) -> ESTABLISHED; the entry's NAT undone
//!              none -> NEW (TCP: SYN, or a bare ACK with tcp_loose), else INVALID
//!                      (RST, FIN, SYN+ACK without an entry); table full -> dropped
//!   nat:       binding set up (entry, earlier rule, null binding) -> apply it
//!              NEW -> run the hook's nat programs until one sets a binding, else a null binding
//!              INVALID / UNTRACKED -> not consulted
//! ```

use crate::conntrack::Direction;
use crate::packet::{CtState, Protocol, TcpFlags};

use super::engine::Tracer;
use super::model::{AssumptionCode, Culprit, DropReason, Effect, Verdict};
use super::program::{Hook, Program};
use super::state::{PathState, tuple_of};

/// TCP states after which a SYN starts a new connection over the old entry.
const CLOSED_TCP: &[&str] = &["TIME_WAIT", "CLOSE"];

/// The state conntrack gives a TCP packet without an entry (`tcp_new`).
fn tcp_new_state(tr: &Tracer<'_>, flags: TcpFlags) -> CtState {
    if flags.has(TcpFlags::RST) {
        CtState::Invalid
    } else if flags.has(TcpFlags::SYN) {
        if flags.has(TcpFlags::ACK) {
            CtState::Invalid
        } else {
            CtState::New
        }
    } else if flags.has(TcpFlags::FIN) {
        CtState::Invalid
    } else if flags.has(TcpFlags::ACK) {
        match tr.node.sysctls.conntrack_tcp_loose() {
            Some(false) => CtState::Invalid,
            known => {
                if known.is_none() {
                    tr.assume(
                        AssumptionCode::Conntrack,
                        "conntrack",
                        None,
                        "nf_conntrack_tcp_loose unknown: 1 assumed (a mid-stream ACK starts a connection)"
                            .to_string(),
                    );
                }
                CtState::New
            }
        }
    } else {
        CtState::Invalid
    }
}

/// The conntrack hook.
pub(crate) fn conntrack(tr: &Tracer<'_>, mut st: PathState) -> Vec<PathState> {
    st.ct.looked_up = true;
    if st.ct.notrack {
        st.ct.state = CtState::Untracked;
        st.pkt.ct_state = CtState::Untracked;
        st.note(
            "conntrack",
            Effect::Conntrack {
                state: CtState::Untracked,
                entry: None,
                dir: None,
            },
        );
        return vec![st];
    }
    let requested = tr.requested_state;
    let tuple = tuple_of(&st.pkt);
    let hit = tr
        .node
        .conntrack
        .lookup(st.pkt.proto, st.ct.zone, &tuple)
        .filter(|h| {
            // A SYN over a closed TCP entry starts a new connection (tcp_packet).
            !(st.pkt.proto == Protocol::Tcp
                && h.dir == Direction::Original
                && st.pkt.tcp_flags.has(TcpFlags::SYN)
                && !st.pkt.tcp_flags.has(TcpFlags::ACK)
                && h.entry
                    .state
                    .as_deref()
                    .is_some_and(|s| CLOSED_TCP.contains(&s)))
        });
    let state;
    match hit {
        Some(h) => {
            let e = h.entry;
            st.ct.entry = Some(h.index);
            st.ct.dir = h.dir;
            st.ct.orig = Some(e.orig);
            st.ct.reply = Some(e.reply);
            st.ct.dst_init = true;
            st.ct.src_init = true;
            st.ct.mark = e.mark.unwrap_or(0);
            st.ct.expire = Some(e.timeout);
            st.ct.assured = e.assured;
            st.ct.seen_reply = !e.unreplied;
            let found = match h.dir {
                Direction::Original if e.unreplied => CtState::New,
                _ => CtState::Established,
            };
            state = if requested != CtState::New && requested != found {
                tr.assume(
                    AssumptionCode::Conntrack,
                    "conntrack",
                    None,
                    format!("the packet's conntrack state was given as {requested}; the entry found would make it {found}"),
                );
                requested
            } else {
                found
            };
            st.note(
                "conntrack",
                Effect::Conntrack {
                    state,
                    entry: Some(e.to_text()),
                    dir: Some(h.dir),
                },
            );
        }
        None => {
            state = if requested != CtState::New {
                if matches!(requested, CtState::Established | CtState::Related) {
                    tr.assume(
                        AssumptionCode::Conntrack,
                        "conntrack",
                        None,
                        format!("the packet is {requested} as given, but no conntrack entry matches it: no NAT mapping is applied"),
                    );
                }
                requested
            } else if st.pkt.proto == Protocol::Tcp {
                tcp_new_state(tr, st.pkt.tcp_flags)
            } else {
                CtState::New
            };
            if state == CtState::New
                && let (Some(max), Some(count)) = (
                    tr.node.sysctls.conntrack_max(),
                    tr.node.sysctls.conntrack_count(),
                )
                && max > 0
                && count >= max
            {
                tr.assume(
                    AssumptionCode::Conntrack,
                    "conntrack",
                    None,
                    "conntrack table full: early_drop is assumed to find no unassured entry to evict"
                        .to_string(),
                );
                st.pkt.ct_state = CtState::New;
                st.finish(Verdict::Dropped {
                    by: Culprit::Conntrack {
                        why: format!(
                            "table full (nf_conntrack_count {count} >= nf_conntrack_max {max})"
                        ),
                    },
                    reason: DropReason::NetfilterDrop,
                });
                return vec![st];
            }
            if state != CtState::Invalid {
                st.ct.orig = Some(tuple);
                st.ct.reply = Some(tuple.inverted());
            }
            st.note(
                "conntrack",
                Effect::Conntrack {
                    state,
                    entry: None,
                    dir: None,
                },
            );
        }
    }
    st.ct.state = state;
    st.pkt.ct_state = state;
    vec![st]
}

/// Applies an already set-up binding of the manip type of `hook` (no-op for a null binding).
fn apply_binding(hook: Hook, st: &mut PathState) {
    let (Some(orig), Some(reply)) = (st.ct.orig, st.ct.reply) else {
        return;
    };
    // The packet leaves the hook looking like the inverse of the other direction's tuple.
    let other = match st.ct.dir {
        Direction::Original => reply,
        Direction::Reply => orig,
    };
    let from = if hook.dst_manip() { st.dst() } else { st.src() };
    let ports = st.pkt.proto.has_ports();
    if hook.dst_manip() {
        st.pkt.dst = other.src;
        if ports {
            st.pkt.dport = other.sport;
        }
    } else {
        st.pkt.src = other.dst;
        if ports {
            st.pkt.sport = other.dport;
        }
    }
    let to = if hook.dst_manip() { st.dst() } else { st.src() };
    if from != to {
        st.note(
            &format!("nat/{hook}"),
            Effect::NatFromConntrack { from, to },
        );
    }
}

/// The NAT hook: the nat programs of `hook`, as `nf_nat_inet_fn` runs them.
pub(crate) fn nat(
    tr: &Tracer<'_>,
    hook: Hook,
    progs: &[&dyn Program],
    mut st: PathState,
) -> Vec<PathState> {
    let stage = format!("nat/{hook}");
    let acts = progs.iter().any(|p| p.acts_at(hook));
    if !st.ct.nat_capable() {
        if acts {
            let why = match st.ct.state {
                CtState::Untracked => "the packet is not tracked (NOTRACK)",
                _ => "the packet is INVALID (no conntrack entry)",
            };
            st.note(
                &stage,
                Effect::NatSkipped {
                    reason: why.to_string(),
                },
            );
        }
        return vec![st];
    }
    let init = if hook.dst_manip() {
        st.ct.dst_init
    } else {
        st.ct.src_init
    };
    if init {
        if acts && st.ct.entry.is_some() {
            st.note(
                &stage,
                Effect::NatSkipped {
                    reason: "the packet belongs to an existing conntrack entry".to_string(),
                },
            );
        }
        apply_binding(hook, &mut st);
        return vec![st];
    }
    if st.ct.state != CtState::New {
        if acts {
            st.note(
                &stage,
                Effect::NatSkipped {
                    reason: format!("the packet is {} without a conntrack entry", st.ct.state),
                },
            );
        }
        return vec![st];
    }
    let bound = |s: &PathState| {
        if hook.dst_manip() {
            s.ct.dst_init
        } else {
            s.ct.src_init
        }
    };
    let mut done = Vec::new();
    let mut live = vec![st];
    for p in progs {
        let mut next = Vec::new();
        for s in live {
            for r in p.run(tr, hook, s) {
                if r.verdict.is_some() || bound(&r) {
                    done.push(r);
                } else {
                    next.push(r);
                }
            }
        }
        live = next;
    }
    // Paths no rule gave a mapping get a null binding (the connection keeps its addresses).
    live.into_iter()
        .chain(done)
        .map(|mut s| {
            if hook.dst_manip() {
                s.ct.dst_init = true;
            } else {
                s.ct.src_init = true;
            }
            s
        })
        .collect()
}
