//! The rendered rules of one family and the texts written from them.
//!
//! ```text
//!   Rendered { filter: [ChainText], nat: [ChainText], text }     chains in output order
//!     .write_restore(out, stale)   full sync:    *filter … COMMIT *nat … [-X stale] COMMIT
//!     .partial(&changed, existing) partial sync: top-level chains + changed services' chains
//!     .full_dump()                 a fresh node after a full sync: + built-in chain jumps,
//!                                  canaries (what iptables-save would show; golden files)
//!     .to_ruleset()                the full dump as a dataplane::iptables::Ruleset
//! ```
//! Output order is upstream's test normalisation (`sortIPTablesRules`): chains
//! `KUBE-NODEPORTS`, `KUBE-SERVICES`, then the other `KUBE-*` chains by name; rules grouped
//! by chain; the top-level chains' rules ordered by service name; deleted chains declared
//! and then removed with `-X` after all rules.

use std::fmt::Write as _;
use std::io;

use dataplane::Family;
use dataplane::iptables::{RestoreError, RestoreMode, RestoreScript, Ruleset, builtin_chains};

use super::jumps::{CANARY_CHAIN, CANARY_TABLES, JumpRule};
use super::text::{ChainName, chain_order, chain_order_bytes};
use crate::model::{ChangeSet, ServiceName};
use crate::names::{EXT_PREFIX, FW_PREFIX, SEP_PREFIX, SVC_PREFIX, SVL_PREFIX};

/// The two tables kube-proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `*filter`.
    Filter,
    /// `*nat`.
    Nat,
}

impl Table {
    /// `filter` / `nat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
        }
    }
}

/// One chain's rules: a byte range of [`Rendered`]'s text, one `-A` line per rule.
#[derive(Debug, Clone)]
pub(super) struct ChainText {
    pub name: ChainName,
    pub start: usize,
    pub end: usize,
    pub rules: u32,
    /// The Service (index into `Rendered::services`) a per-service chain belongs to;
    /// `None` for top-level chains.
    pub service: Option<u32>,
}

/// Rule and chain counts of a full render: upstream's `sync_proxy_rules_iptables_total`
/// gauge per table, and `sync_proxy_rules_no_local_endpoints_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleCounts {
    /// Rules in the filter table's kube-proxy chains.
    pub filter_rules: usize,
    /// Chains kube-proxy writes in the filter table.
    pub filter_chains: usize,
    /// Rules in the nat table's kube-proxy chains.
    pub nat_rules: usize,
    /// Chains kube-proxy writes in the nat table.
    pub nat_chains: usize,
    /// Service ports with internalTrafficPolicy Local and no local endpoint.
    pub no_local_endpoints_internal: usize,
    /// Service ports with externalTrafficPolicy Local and no local endpoint.
    pub no_local_endpoints_external: usize,
}

/// A partial-sync restore input and what it writes (upstream
/// `sync_proxy_rules_iptables_last` counts these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialRestore {
    /// The `iptables-restore --noflush` input.
    pub text: String,
    /// Filter rules written (the whole filter table: all of it is top-level).
    pub filter_rules: usize,
    /// Nat rules written.
    pub nat_rules: usize,
    /// Stale chains deleted with `-X`.
    pub deleted_chains: usize,
}

/// The rules of one family, ready to be written.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// IPv4 (`iptables-restore`) or IPv6 (`ip6tables-restore`).
    pub family: Family,
    /// More endpoints than the large-cluster threshold: per-endpoint comments left out,
    /// and (upstream) stale chains cleaned up at most once per sync period.
    pub large_cluster_mode: bool,
    pub(super) text: String,
    pub(super) filter: Vec<ChainText>,
    pub(super) nat: Vec<ChainText>,
    pub(super) services: Vec<ServiceName>,
    pub(super) counts: RuleCounts,
}

/// Whether a chain name is one of kube-proxy's per-service chains (upstream
/// `isServiceChainName`): the only chains stale-chain cleanup may delete.
pub fn is_service_chain(name: &str) -> bool {
    [SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX]
        .iter()
        .any(|p| name.starts_with(p))
}

impl Rendered {
    /// Rule and chain counts.
    pub fn counts(&self) -> RuleCounts {
        self.counts
    }

    /// The chains of a table in output order.
    pub fn chain_names(&self, table: Table) -> impl Iterator<Item = &str> {
        self.chains(table).iter().map(|c| c.name.as_str())
    }

    /// The rule lines (`-A …`) of one chain, if the render writes it.
    pub fn chain_rules(&self, table: Table, chain: &str) -> Option<&str> {
        self.chains(table)
            .iter()
            .find(|c| c.name.as_str() == chain)
            .map(|c| &self.text[c.start..c.end])
    }

    fn chains(&self, table: Table) -> &[ChainText] {
        match table {
            Table::Filter => &self.filter,
            Table::Nat => &self.nat,
        }
    }

    /// The per-service nat chains in `existing` (chain names from `iptables-save -t nat`)
    /// this render does not write: what a sync deletes.
    pub fn stale_chains<'a>(&self, existing: &[&'a str]) -> Vec<&'a str> {
        // self.nat is sorted by chain order: binary search, no set to build.
        let active = |n: &str| {
            self.nat
                .binary_search_by(|c| chain_order_bytes(c.name.as_bytes(), n.as_bytes()))
                .is_ok()
        };
        let mut stale: Vec<&'a str> = existing
            .iter()
            .copied()
            .filter(|n| is_service_chain(n) && !active(n))
            .collect();
        stale.sort_by(|a, b| chain_order(a, b));
        stale.dedup();
        stale
    }

    /// The full-sync input for `iptables-restore --noflush`, deleting no chain.
    pub fn to_restore(&self) -> String {
        let mut out = Vec::with_capacity(self.text.len() + 4096);
        // Writing into a Vec cannot fail.
        let _ = self.write_restore(&mut out, &[]);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Streams the full-sync input (every chain), declaring and then deleting the `stale`
    /// chains (see [`Rendered::stale_chains`]).
    pub fn write_restore(&self, out: &mut impl io::Write, stale: &[&str]) -> io::Result<()> {
        self.write_tables(out, stale, |_| true)
    }

    /// The partial-sync input: the top-level chains in full, the per-service chains of the
    /// Services in `changed` (all of them when this node changed), and the deletion of the
    /// per-service chains in `existing` that no Service uses any more. Applied with
    /// `--noflush` on top of the previous sync's rules, it leaves the same rules as a full
    /// sync of this render.
    pub fn partial(&self, changed: &ChangeSet, existing: &[&str]) -> PartialRestore {
        let all = changed.node_changed;
        let names = changed.services();
        let write: Vec<bool> = self
            .services
            .iter()
            .map(|s| all || names.contains(s))
            .collect();
        let include = |c: &ChainText| match c.service {
            None => true,
            Some(i) => write.get(i as usize).copied().unwrap_or(true),
        };
        let stale = self.stale_chains(existing);
        let mut out = Vec::with_capacity(self.text.len() / 8 + 4096);
        let _ = self.write_tables(&mut out, &stale, include);
        let nat_rules = self
            .nat
            .iter()
            .filter(|c| include(c))
            .map(|c| c.rules as usize)
            .sum();
        PartialRestore {
            text: String::from_utf8(out).unwrap_or_default(),
            filter_rules: self.counts.filter_rules,
            nat_rules,
            deleted_chains: stale.len(),
        }
    }

    fn write_tables(
        &self,
        out: &mut impl io::Write,
        stale: &[&str],
        include: impl Fn(&ChainText) -> bool,
    ) -> io::Result<()> {
        for (table, chains) in [(Table::Filter, &self.filter), (Table::Nat, &self.nat)] {
            writeln!(out, "*{}", table.as_str())?;
            let chains: Vec<&ChainText> = chains.iter().filter(|c| include(c)).collect();
            let stale: &[&str] = if table == Table::Nat { stale } else { &[] };
            // Declarations in output order, the deleted chains among them.
            let (mut i, mut j) = (0, 0);
            while i < chains.len() || j < stale.len() {
                let take_chain = match (chains.get(i), stale.get(j)) {
                    (Some(c), Some(s)) => chain_order(c.name.as_str(), s).is_le(),
                    (Some(_), None) => true,
                    _ => false,
                };
                let name = if take_chain {
                    i += 1;
                    chains[i - 1].name.as_str()
                } else {
                    j += 1;
                    stale[j - 1]
                };
                out.write_all(b":")?;
                out.write_all(name.as_bytes())?;
                out.write_all(b" - [0:0]\n")?;
            }
            for c in &chains {
                out.write_all(&self.text.as_bytes()[c.start..c.end])?;
            }
            for s in stale {
                writeln!(out, "-X {s}")?;
            }
            out.write_all(b"COMMIT\n")?;
        }
        Ok(())
    }

    /// What `iptables-save` shows on a fresh node after a full sync of this render, as
    /// restore input (upstream's tests show the same "full dump"): the canary chains, each
    /// table's built-in chains with the jump rules in the order `iptables -I` leaves them,
    /// and the kube-proxy chains in output order. `header` lines (without `# `) come first.
    pub fn full_dump(&self, header: &[&str]) -> String {
        let mut out = String::with_capacity(self.text.len() + 8192);
        for h in header {
            let _ = writeln!(out, "# {h}");
        }
        for table in ["mangle", "filter", "nat"] {
            let builtins = builtin_chains(table).unwrap_or(&[]);
            let ours: &[ChainText] = match table {
                "filter" => &self.filter,
                "nat" => &self.nat,
                _ => &[],
            };
            let mut names: Vec<&str> = ours.iter().map(|c| c.name.as_str()).collect();
            for j in super::jumps::JUMP_RULES.iter().filter(|j| j.table == table) {
                names.push(j.to);
            }
            if CANARY_TABLES.contains(&table) {
                names.push(CANARY_CHAIN);
            }
            names.sort_by(|a, b| chain_order(a, b));
            names.dedup();
            let _ = writeln!(out, "*{table}");
            for b in builtins {
                let _ = writeln!(out, ":{b} ACCEPT [0:0]");
            }
            for n in &names {
                let _ = writeln!(out, ":{n} - [0:0]");
            }
            for b in builtins {
                for j in JumpRule::in_chain(table, b) {
                    out.push_str(&j.restore_line());
                    out.push('\n');
                }
            }
            for c in ours {
                out.push_str(&self.text[c.start..c.end]);
            }
            out.push_str("COMMIT\n");
        }
        out
    }

    /// [`Rendered::full_dump`] loaded into a [`Ruleset`] the way the kernel would hold it
    /// (canonical rule forms, chains in iptables-save order).
    pub fn to_ruleset(&self) -> Result<Ruleset, RestoreError> {
        let script = RestoreScript::parse(self.family, &self.full_dump(&[]))?;
        let mut rs = Ruleset::new(self.family);
        rs.apply_restore(&script, RestoreMode { noflush: false })?;
        Ok(rs)
    }
}
