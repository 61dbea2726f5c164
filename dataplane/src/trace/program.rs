//! Netfilter programs attached to hooks, and the seam for more kinds of them.
//!
//! ```text
//!   hook (PREROUTING ...) --stations by priority--> [ raw -300 | conntrack -200 | mangle -150 |
//!                                                    nat -100 | filter 0 | security 50 | nat 100 ]
//!   a station is: one Program (an iptables table of one back end: IptablesTable),
//!                 the conntrack lookup, or the NAT group (every nat program of the hook, run
//!                 until one sets up a binding, as nf_nat_inet_fn does)
//! ```
//! An nftables base chain is another [`Program`] with its own priority per hook (`type filter
//! hook forward priority 0`, see `nft.rs`); nat-type chains join the NAT group through
//! [`Program::is_nat`], ordered inside it by their own priority. Programs of equal priority run
//! in the order [`Registration::tie_key`] gives (the kernel runs the last registered first).

use std::fmt;

use crate::iptables::{Policy, Table};
use crate::node::Backend;
use crate::packet::Family;

use super::engine::Tracer;
use super::model::{Culprit, Effect, Step, Verdict};
use super::state::PathState;

/// A netfilter hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    /// The built-in chain name (`PREROUTING`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }

    /// Whether the hook does destination NAT (the others with a nat table do source NAT).
    pub(crate) fn dst_manip(self) -> bool {
        matches!(self, Hook::Prerouting | Hook::Output)
    }

    /// Whether routing has chosen an output interface when the hook runs.
    pub(crate) fn has_out_dev(self) -> bool {
        matches!(self, Hook::Forward | Hook::Output | Hook::Postrouting)
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The priority of an iptables table at a hook (`NF_IP_PRI_*`, the same for IPv6), or `None`
/// when the table has no chain there.
pub(crate) fn table_priority(table: &str, hook: Hook) -> Option<i32> {
    use Hook::*;
    match (table, hook) {
        ("raw", Prerouting | Output) => Some(-300),
        ("mangle", _) => Some(-150),
        ("nat", Prerouting | Output) => Some(-100),
        ("nat", Input | Postrouting) => Some(100),
        ("filter", Input | Forward | Output) => Some(0),
        ("security", Input | Forward | Output) => Some(50),
        _ => None,
    }
}

/// When a program's hook was registered, which orders programs of equal priority: the kernel
/// (`nf_hook_entries_grow`) inserts a new hook before those of the same priority, so the one
/// registered last runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registration {
    /// An iptables-legacy table (x_tables): when it registered is not known; assumed first.
    Legacy,
    /// A kernel module's own hooks (IPVS, registered with its first service): assumed first.
    Module,
    /// An nf_tables base chain (native, or an iptables-nft table) at this position of the
    /// `nft list ruleset` dump, which lists tables and chains in creation order; `None`: not
    /// in the dump.
    NfTables(Option<u64>),
}

impl Registration {
    /// Sort key at equal priority (lower runs first): legacy first (an assumption), then
    /// nf_tables chains, the last registered first; chains missing from the dump last.
    pub(crate) fn tie_key(self) -> (u8, std::cmp::Reverse<u64>) {
        match self {
            Registration::Legacy | Registration::Module => (0, std::cmp::Reverse(0)),
            Registration::NfTables(Some(pos)) => (1, std::cmp::Reverse(pos)),
            Registration::NfTables(None) => (2, std::cmp::Reverse(0)),
        }
    }
}

/// A netfilter program: something attached to hooks that can look at and change a packet.
pub(crate) trait Program {
    /// A name for assumptions (`iptables-nft nat`, `nft inet filter/input`).
    fn name(&self) -> String;
    /// The priority at `hook`, or `None` when not attached there.
    fn priority(&self, hook: Hook) -> Option<i32>;
    /// Whether it is a NAT program (runs only for the first packet of a connection).
    fn is_nat(&self) -> bool;
    /// Whether a changed mark or address re-routes a locally sent packet after it (the mangle
    /// table, an nft `type route` chain: `ip_route_me_harder` at OUTPUT).
    fn reroutes(&self) -> bool;
    /// When its hook at `hook` was registered (orders programs of equal priority).
    fn registered(&self, hook: Hook) -> Registration;
    /// Whether it has anything at `hook` that could act (rules, or a DROP policy).
    fn acts_at(&self, hook: Hook) -> bool;
    /// Runs the program at `hook`. Each returned path either continues (`verdict` unset:
    /// accepted) or ended (dropped, rejected, not modelled).
    fn run(&self, tr: &Tracer<'_>, hook: Hook, st: PathState) -> Vec<PathState>;
}

/// One iptables table of one back end.
pub(crate) struct IptablesTable<'a> {
    pub(crate) backend: Backend,
    pub(crate) family: Family,
    pub(crate) table: &'a Table,
    /// iptables-nft: the dump positions of the table's base chains (by hook), when the node's
    /// nft dump holds them.
    pub(crate) positions: Vec<(Hook, u64)>,
}

impl Program for IptablesTable<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.backend, self.table.name)
    }

    fn reroutes(&self) -> bool {
        self.table.name == "mangle"
    }

    fn registered(&self, hook: Hook) -> Registration {
        match self.backend {
            Backend::Legacy => Registration::Legacy,
            Backend::Nft => Registration::NfTables(
                self.positions
                    .iter()
                    .find(|(h, _)| *h == hook)
                    .map(|(_, p)| *p),
            ),
        }
    }

    fn priority(&self, hook: Hook) -> Option<i32> {
        self.table.chain(hook.name())?;
        table_priority(&self.table.name, hook)
    }

    fn is_nat(&self) -> bool {
        self.table.name == "nat"
    }

    fn acts_at(&self, hook: Hook) -> bool {
        self.table
            .chain(hook.name())
            .is_some_and(|c| !c.rules.is_empty() || c.policy == Some(Policy::Drop))
    }

    fn run(&self, tr: &Tracer<'_>, hook: Hook, st: PathState) -> Vec<PathState> {
        let Some(chain) = self.table.chain(hook.name()) else {
            return vec![st];
        };
        let mut out = Vec::new();
        self.walk(tr, hook, chain, st, &mut out);
        let stage = format!("{}/{}", self.table.name, hook.name());
        out.into_iter()
            .map(|(mut s, end)| {
                if end == super::chain::End::Return {
                    let policy = chain.policy.unwrap_or(Policy::Accept);
                    if policy == Policy::Drop || !chain.rules.is_empty() {
                        s.steps.push(Step {
                            stage: stage.clone(),
                            backend: Some(self.backend),
                            table: Some(self.table.name.clone()),
                            chain: Some(chain.name.clone()),
                            rule: None,
                            probability: None,
                            effect: Effect::Policy {
                                policy: policy.as_str().to_string(),
                            },
                        });
                    }
                    if policy == Policy::Drop {
                        s.finish(Verdict::Dropped {
                            by: Culprit::Policy {
                                backend: Some(self.backend),
                                table: self.table.name.clone(),
                                chain: chain.name.clone(),
                            },
                            reason: super::model::DropReason::NetfilterDrop,
                        });
                    }
                }
                s
            })
            .collect()
    }
}
