//! One family's nftables-mode sync (upstream pkg/proxy/nftables `syncProxyRules`): a
//! [`ProxyState`] in, one `nft -f -` transaction out through an [`NftWriter`].
//!
//! ```text
//!   ProxyState ─render_nftables─> Table ─┬─ full:    names the kernel holds (the last table
//!                                        │           loaded, or `nft -j list table` when
//!                                        │           unknown) ─> flush all, load all, delete stale
//!                                        └─ partial: diff with the last table loaded ─>
//!                                                    changed chains and elements only
//!   ─> writer.apply(script) ── ok: the kernel holds the table
//!                           └─ refused: nothing changed (nft transactions are atomic); the
//!                              next sync is full and lists the table first
//! ```

use std::net::IpAddr;

use dataplane::Family;
use dataplane::nft::Table;

use super::mode::ModeProxier;
use super::proxier::{Applied, SyncError, everything, family_name};
use crate::apply::ApplyError;
use crate::apply::nftables::NftWriter;
use crate::model::ProxyState;
use crate::render::nftables::{NftOptions, render_nftables, transaction, tx::Existing};

/// One family's nftables proxier.
#[derive(Debug)]
pub struct NftProxier<W> {
    writer: W,
    opts: NftOptions,
    /// The state the kernel holds; `None`: unknown.
    applied: Option<ProxyState>,
    /// The table the last successful transaction left; `None`: unknown (list it).
    table: Option<Table>,
    keep_input: bool,
    last_input: Option<String>,
}

impl<W: NftWriter> NftProxier<W> {
    /// A proxier writing through `writer`; the first sync is full.
    pub fn new(writer: W, opts: NftOptions) -> NftProxier<W> {
        NftProxier {
            writer,
            opts,
            applied: None,
            table: None,
            keep_input: false,
            last_input: None,
        }
    }

    /// Keeps the `nft -f` input of each sync for [`NftProxier::last_input`].
    pub fn keep_input(&mut self, keep: bool) {
        self.keep_input = keep;
        if !keep {
            self.last_input = None;
        }
    }

    /// The `nft -f` input of the last sync, when kept.
    pub fn last_input(&self) -> Option<&str> {
        self.last_input.as_deref()
    }

    /// The writer.
    pub fn writer(&self) -> &W {
        &self.writer
    }

    /// The writer, mutable.
    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.writer
    }

    /// The render options.
    pub fn options_mut(&mut self) -> &mut NftOptions {
        &mut self.opts
    }

    /// Forgets the table loaded as well: the next full sync lists the kernel's table.
    pub fn forget_table(&mut self) {
        self.table = None;
        self.applied = None;
    }

    fn sync_inner(
        &mut self,
        state: &ProxyState,
        full: bool,
    ) -> Result<(Applied, Option<ProxyState>), SyncError> {
        let family = family_name(self.writer.family());
        let full = full || self.applied.is_none() || self.table.is_none();
        let kind = if full { "full" } else { "partial" };
        let rendered = render_nftables(state, &self.opts);
        let changes = match &self.applied {
            Some(old) if !full => state.diff(old),
            _ => everything(state, self.applied.as_ref()),
        };
        let existing = if full {
            match &self.table {
                Some(t) => Existing::of(t),
                None => self
                    .writer
                    .list_table()
                    .map_err(|source| SyncError::Prepare { family, source })?
                    .map(|t| Existing::of(&t))
                    .unwrap_or_default(),
            }
        } else {
            Existing::default()
        };
        let old = if full { None } else { self.table.as_ref() };
        let tx = transaction(old, &existing, &rendered.table).map_err(|e| SyncError::Mode {
            family,
            mode: "nftables",
            kind,
            source: Box::new(e),
        })?;
        let result = if tx.text.is_empty() {
            Ok(())
        } else {
            self.writer.apply(&tx.text)
        };
        let input_bytes = tx.text.len();
        if self.keep_input {
            self.last_input = Some(tx.text);
        }
        match result {
            Ok(()) => {
                self.table = Some(rendered.table);
                let old = self.applied.replace(state.clone());
                Ok((
                    Applied {
                        full,
                        counts: rendered.counts,
                        filter_rules_written: 0,
                        nat_rules_written: tx.rules_written,
                        deleted_chains: tx.deleted_chains,
                        jumps_inserted: 0,
                        changes,
                        input_bytes,
                    },
                    old,
                ))
            }
            Err(source) => {
                // Nothing of the transaction was applied, but whoever made it fail may have
                // changed the table: list it before the next (full) sync.
                self.applied = None;
                self.table = None;
                Err(SyncError::Restore {
                    family,
                    kind,
                    source,
                })
            }
        }
    }
}

impl<W: NftWriter> ModeProxier for NftProxier<W> {
    fn mode(&self) -> &'static str {
        "nftables"
    }
    fn family(&self) -> Family {
        self.writer.family()
    }
    fn sync(
        &mut self,
        state: &ProxyState,
        full: bool,
    ) -> Result<(Applied, Option<ProxyState>), SyncError> {
        self.sync_inner(state, full)
    }
    fn applied(&self) -> Option<&ProxyState> {
        self.applied.as_ref()
    }
    fn invalidate(&mut self) {
        self.applied = None;
    }
    fn set_local_addresses(&mut self, addrs: Vec<IpAddr>) {
        self.opts.local_addresses = addrs;
    }
    fn missing_canaries(&mut self) -> Result<Vec<&'static str>, ApplyError> {
        if self.writer.table_exists()? {
            Ok(Vec::new())
        } else {
            // Gone: the next full sync must not trust the table it remembers.
            self.table = None;
            Ok(vec!["kube-proxy table"])
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    use super::*;
    use crate::apply::nftables::FakeNft;
    use crate::model::{ModelOptions, build};

    /// Services `s0..s{n}` with one endpoint each.
    fn state(n: usize) -> ProxyState {
        let services: Vec<Service> = (0..n)
            .map(|i| {
                serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"namespace": "t", "name": format!("s{i}")},
                    "spec": {"clusterIP": format!("198.19.1.{i}"), "ports": [{"name": "p", "port": 80}]},
                }))
                .unwrap()
            })
            .collect();
        let slices: Vec<EndpointSlice> = (0..n)
            .map(|i| {
                serde_json::from_value(json!({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"namespace": "t", "name": format!("s{i}-1"),
                                 "labels": {"kubernetes.io/service-name": format!("s{i}")}},
                    "addressType": "IPv4",
                    "ports": [{"name": "p", "port": 8080}],
                    "endpoints": [{"addresses": [format!("198.18.64.{i}")]}],
                }))
                .unwrap()
            })
            .collect();
        let opts = ModelOptions {
            node_name: "node-a".into(),
            ..ModelOptions::default()
        };
        build(&services, &slices, None, &opts).ipv4
    }

    fn proxier() -> NftProxier<FakeNft> {
        NftProxier::new(FakeNft::new(Family::V4), NftOptions::default())
    }

    #[test]
    fn first_sync_is_full_then_partial() {
        let mut p = proxier();
        let (a, prev) = ModeProxier::sync(&mut p, &state(3), false).unwrap();
        assert!(a.full && prev.is_none());
        assert_eq!(
            p.writer().lists,
            1,
            "a full sync without a record lists the table"
        );
        let (b, prev) = ModeProxier::sync(&mut p, &state(4), false).unwrap();
        assert!(!b.full);
        assert_eq!(prev.unwrap().services.len(), 3);
        assert_eq!(b.changes.added.len(), 1);
        let script = p.writer().scripts.last().unwrap();
        assert!(!script.contains("flush"), "{script}");
        assert!(
            script.contains("198.19.1.3 . tcp . 80 : goto service-"),
            "{script}"
        );
        // A periodic full sync uses the table it loaded: no listing.
        ModeProxier::sync(&mut p, &state(4), true).unwrap();
        assert_eq!(p.writer().lists, 1);
    }

    #[test]
    fn nothing_changed_writes_nothing() {
        let mut p = proxier();
        ModeProxier::sync(&mut p, &state(2), false).unwrap();
        let n = p.writer().scripts.len();
        let (a, _) = ModeProxier::sync(&mut p, &state(2), false).unwrap();
        assert!(!a.full && a.changes.is_empty());
        assert_eq!(p.writer().scripts.len(), n);
    }

    #[test]
    fn a_refused_transaction_makes_the_next_sync_full_and_listed() {
        let mut p = proxier();
        ModeProxier::sync(&mut p, &state(2), false).unwrap();
        p.writer_mut().fail_next = Some("boom".into());
        let e = ModeProxier::sync(&mut p, &state(3), false).unwrap_err();
        assert!(e.is_partial(), "{e}");
        assert!(ModeProxier::applied(&p).is_none());
        let (a, _) = ModeProxier::sync(&mut p, &state(3), false).unwrap();
        assert!(a.full);
        assert_eq!(p.writer().lists, 2);
    }
}
