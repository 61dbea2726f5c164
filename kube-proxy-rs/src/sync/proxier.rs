//! One family's sync (upstream's iptables `Proxier.syncProxyRules`, minus the model): a
//! [`ProxyState`] in, one `iptables-restore --noflush` out through a [`RuleWriter`].
//!
//! ```text
//!   ProxyState ─render─> Rendered ─┬─ full:    iptables-save of mangle, filter, nat: jumps +
//!                                  │           canaries ensured where missing, stale chains
//!                                  │           ─> whole restore input
//!                                  └─ partial: diff with the state the kernel holds ─>
//!                                              top-level chains + changed services' chains
//!   ─> writer.restore(input) ── ok: the kernel holds `state` now
//!                            └─ refused: nothing of the failing table changed; the state
//!                               held is unknown from now on, so the next sync is full
//! ```
//! A partial sync needs to know what the kernel holds: the state of the last successful
//! restore and the per-service chains it left. Anything else (start, a failure, a canary
//! gone, a node change) makes the sync full.

use std::net::IpAddr;

use dataplane::Family;

use super::mode::ModeProxier;
use crate::apply::{self, ApplyError, RuleWriter};
use crate::model::{ChangeSet, ProxyState};
use crate::render::iptables::{
    RenderOptions, Rendered, RuleCounts, Table, is_service_chain, render_iptables,
    render_iptables_reusing,
};

/// What one successful sync did (any mode: modes without iptables' two tables count their
/// rules and chains as `nat`, their rules written as `nat_rules_written`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// It was a full sync.
    pub full: bool,
    /// Rule and chain counts of the whole render (upstream `sync_proxy_rules_iptables_total`).
    pub counts: RuleCounts,
    /// Filter rules written by this restore (upstream `sync_proxy_rules_iptables_last`).
    pub filter_rules_written: usize,
    /// Nat rules written by this restore.
    pub nat_rules_written: usize,
    /// Stale per-service chains deleted.
    pub deleted_chains: Vec<String>,
    /// Jump rules that had to be inserted (full syncs; 0 when all were there).
    pub jumps_inserted: usize,
    /// What changed since the previous successful sync (everything on the first one).
    pub changes: ChangeSet,
    /// Bytes of restore input.
    pub input_bytes: usize,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Creating chains, inserting jump rules or reading the rules failed.
    #[error("{family} preparing the sync: {source}")]
    Prepare {
        /// `IPv4` / `IPv6`.
        family: &'static str,
        /// The writer's error.
        source: ApplyError,
    },
    /// The restore was refused (the error names the line and shows it).
    #[error("{family} {kind} restore: {source}")]
    Restore {
        /// `IPv4` / `IPv6`.
        family: &'static str,
        /// `full` / `partial`.
        kind: &'static str,
        /// The writer's error.
        source: ApplyError,
    },
    /// A mode whose kernel interface is not iptables (nftables, IPVS) failed to apply.
    #[error("{family} {kind} {mode} sync: {source}")]
    Mode {
        /// `IPv4` / `IPv6`.
        family: &'static str,
        /// The mode (`nftables`, `ipvs`).
        mode: &'static str,
        /// `full` / `partial`.
        kind: &'static str,
        /// The mode's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl SyncError {
    /// Whether a partial sync failed (upstream counts these apart).
    pub fn is_partial(&self) -> bool {
        matches!(
            self,
            SyncError::Restore {
                kind: "partial",
                ..
            } | SyncError::Mode {
                kind: "partial",
                ..
            }
        )
    }
}

/// The family's name for logs (`IPv4`, `IPv6`).
pub fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// One family's proxier.
#[derive(Debug)]
pub struct Proxier<W> {
    writer: W,
    opts: RenderOptions,
    /// The state the kernel holds (the last restore that succeeded); `None`: unknown.
    applied: Option<ProxyState>,
    /// The per-service nat chains the kernel holds after that restore.
    chains: Vec<String>,
    /// The previous render, whose buffers the next render reuses.
    previous: Option<Rendered>,
    /// Keep the last restore input (benches feed it to `iptables-restore` alone).
    keep_input: bool,
    last_input: Option<String>,
}

impl<W: RuleWriter> Proxier<W> {
    /// A proxier writing through `writer`; the first sync is full.
    pub fn new(writer: W, opts: RenderOptions) -> Proxier<W> {
        Proxier {
            writer,
            opts,
            applied: None,
            chains: Vec::new(),
            previous: None,
            keep_input: false,
            last_input: None,
        }
    }

    /// Keeps the restore input of each sync, for [`Proxier::last_input`] (off by default: a
    /// full sync's input is tens of MB at 10k services).
    pub fn keep_input(&mut self, keep: bool) {
        self.keep_input = keep;
        if !keep {
            self.last_input = None;
        }
    }

    /// The restore input of the last sync (applied or refused), when kept.
    pub fn last_input(&self) -> Option<&str> {
        self.last_input.as_deref()
    }

    /// A full sync of `state` (render, jump rules and canaries checked in one `iptables-save`
    /// per table, whose nat one also tells the stale chains, one `iptables-restore`): what a sync at start or after a failure costs.
    pub fn sync_full(&mut self, state: &ProxyState) -> Result<Applied, SyncError> {
        self.sync(state, true).map(|(applied, _)| applied)
    }

    /// A partial sync to `state` from the state the last sync applied: only the chains of
    /// the services that differ, plus the top-level chains (full when that state is unknown).
    /// After a [`Proxier::sync_full`] of a state, a `state` with one Service changed is the
    /// one-service partial sync.
    pub fn sync_changes(&mut self, state: &ProxyState) -> Result<Applied, SyncError> {
        self.sync(state, false).map(|(applied, _)| applied)
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.writer.family()
    }

    /// The writer (tests look at the fake's rules through it).
    pub fn writer(&self) -> &W {
        &self.writer
    }

    /// The writer, mutable (to check canaries, or to inject a fault in tests).
    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.writer
    }

    /// The state the kernel holds, if known.
    pub fn applied(&self) -> Option<&ProxyState> {
        self.applied.as_ref()
    }

    /// Forgets what the kernel holds: the next sync is full.
    pub fn invalidate(&mut self) {
        self.applied = None;
    }

    /// The render options (host facts may be refreshed between syncs).
    pub fn options_mut(&mut self) -> &mut RenderOptions {
        &mut self.opts
    }

    /// Writes `state` into the kernel: fully when `full` or when what the kernel holds is
    /// not known, else only what changed. On success the kernel holds `state` and the
    /// previous state is returned beside what was done (conntrack cleanup compares them).
    pub fn sync(
        &mut self,
        state: &ProxyState,
        full: bool,
    ) -> Result<(Applied, Option<ProxyState>), SyncError> {
        let family = family_name(self.family());
        let full = full || self.applied.is_none();
        let rendered = match self.previous.take() {
            Some(prev) => render_iptables_reusing(state, &self.opts, prev),
            None => render_iptables(state, &self.opts),
        };
        let changes = match &self.applied {
            Some(old) if !full => state.diff(old),
            _ => everything(state, self.applied.as_ref()),
        };
        let prepare = |source| SyncError::Prepare { family, source };

        let (input, filter_written, nat_written, deleted, jumps_inserted) = if full {
            let (jumps, save) =
                apply::ensure_jumps_and_canaries(&mut self.writer).map_err(prepare)?;
            let existing = apply::declared_chains(&save);
            let stale = rendered.stale_chains(&existing);
            let mut out = Vec::with_capacity(64 * 1024);
            // Writing into a Vec cannot fail.
            let _ = rendered.write_restore(&mut out, &stale);
            let counts = rendered.counts();
            (
                String::from_utf8(out).unwrap_or_default(),
                counts.filter_rules,
                counts.nat_rules,
                stale.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                jumps,
            )
        } else {
            let existing: Vec<&str> = self.chains.iter().map(String::as_str).collect();
            let stale: Vec<String> = rendered
                .stale_chains(&existing)
                .into_iter()
                .map(str::to_string)
                .collect();
            let p = rendered.partial(&changes, &existing);
            (p.text, p.filter_rules, p.nat_rules, stale, 0)
        };

        let result = self.writer.restore(&input);
        let input_bytes = input.len();
        if self.keep_input {
            self.last_input = Some(input);
        }
        let counts = rendered.counts();
        let chains: Vec<String> = rendered
            .chain_names(Table::Nat)
            .filter(|c| is_service_chain(c))
            .map(str::to_string)
            .collect();
        self.previous = Some(rendered);
        match result {
            Ok(()) => {
                self.chains = chains;
                let old = self.applied.replace(state.clone());
                Ok((
                    Applied {
                        full,
                        counts,
                        filter_rules_written: filter_written,
                        nat_rules_written: nat_written,
                        deleted_chains: deleted,
                        jumps_inserted,
                        changes,
                        input_bytes,
                    },
                    old,
                ))
            }
            Err(source) => {
                // A table before the failing one may have been committed: what the kernel
                // holds is unknown now.
                self.applied = None;
                Err(SyncError::Restore {
                    family,
                    kind: if full { "full" } else { "partial" },
                    source,
                })
            }
        }
    }
}

/// The change set of a full sync: every port of `state` added (or changed, when it was in
/// the previous state), every port of the previous state that is gone removed.
pub(crate) fn everything(state: &ProxyState, old: Option<&ProxyState>) -> ChangeSet {
    match old {
        Some(old) => {
            let mut cs = state.diff(old);
            cs.node_changed = true;
            cs
        }
        None => ChangeSet {
            added: state.services.keys().cloned().collect(),
            node_changed: true,
            ..ChangeSet::default()
        },
    }
}

impl<W: RuleWriter + Send> ModeProxier for Proxier<W> {
    fn mode(&self) -> &'static str {
        "iptables"
    }
    fn family(&self) -> Family {
        Proxier::family(self)
    }
    fn sync(
        &mut self,
        state: &ProxyState,
        full: bool,
    ) -> Result<(Applied, Option<ProxyState>), SyncError> {
        Proxier::sync(self, state, full)
    }
    fn applied(&self) -> Option<&ProxyState> {
        Proxier::applied(self)
    }
    fn invalidate(&mut self) {
        Proxier::invalidate(self)
    }
    fn set_local_addresses(&mut self, addrs: Vec<IpAddr>) {
        self.opts.local_addresses = addrs;
    }
    fn missing_canaries(&mut self) -> Result<Vec<&'static str>, ApplyError> {
        apply::missing_canaries(&mut self.writer)
    }
}
