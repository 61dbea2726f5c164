//! IPVS mode in the mode-generic sync engine: [`IpvsProxier`] as a
//! [`ModeProxier`](crate::sync::ModeProxier).
//!
//! ```text
//!   Engine ──sync(state, full)──> IpvsProxier::sync ──> Applied { nat_rules_written = IPVS
//!                                                        operations, counts of the helper
//!                                                        rules, changes since last sync }
//!                                           error ──> SyncError::Mode { mode: "ipvs" }
//! ```
//! Destinations that drain (weight 0, connections left) are removed by a later sync: the
//! engine's periodic one (`--sync-period`) at the latest, as upstream checks every minute.

use std::net::IpAddr;

use dataplane::Family;

use super::{IpvsKernel, IpvsProxier, SetWriter, VipLink};
use crate::apply::{ApplyError, RuleWriter};
use crate::model::{ChangeSet, ProxyState};
use crate::render::iptables::RuleCounts;
use crate::sync::mode::ModeProxier;
use crate::sync::{Applied, SyncError, family_name};

/// The rules and chains of the helper restore input, per table.
fn counts(rules: &str) -> RuleCounts {
    let mut c = RuleCounts::default();
    let mut nat = true;
    for l in rules.lines() {
        match l {
            "*nat" => nat = true,
            "*filter" => nat = false,
            _ if l.starts_with(':') => {
                if nat {
                    c.nat_chains += 1
                } else {
                    c.filter_chains += 1
                }
            }
            _ if l.starts_with("-A ") => {
                if nat {
                    c.nat_rules += 1
                } else {
                    c.filter_rules += 1
                }
            }
            _ => {}
        }
    }
    c
}

impl<K, L, S, W> ModeProxier for IpvsProxier<K, L, S, W>
where
    K: IpvsKernel + Send,
    L: VipLink + Send,
    S: SetWriter + Send,
    W: RuleWriter + Send,
{
    fn mode(&self) -> &'static str {
        "ipvs"
    }

    fn family(&self) -> Family {
        IpvsProxier::family(self)
    }

    fn sync(
        &mut self,
        state: &ProxyState,
        full: bool,
    ) -> Result<(Applied, Option<ProxyState>), SyncError> {
        let kind = if full || self.applied().is_none() {
            "full"
        } else {
            "partial"
        };
        let family = family_name(IpvsProxier::family(self));
        match IpvsProxier::sync(self, state, full) {
            Ok((a, old)) => {
                let changes = match &old {
                    Some(o) => state.diff(o),
                    None => ChangeSet {
                        added: state.services.keys().cloned().collect(),
                        node_changed: true,
                        ..ChangeSet::default()
                    },
                };
                let rules = self.last_plan().map_or("", |p| p.rules.as_str());
                let counts = counts(rules);
                Ok((
                    Applied {
                        full: a.full,
                        filter_rules_written: counts.filter_rules,
                        nat_rules_written: a.ops.len(),
                        counts,
                        deleted_chains: Vec::new(),
                        jumps_inserted: 0,
                        changes,
                        input_bytes: rules.len() + a.ipset_bytes,
                    },
                    old,
                ))
            }
            Err(e) => Err(SyncError::Mode {
                family,
                mode: "ipvs",
                kind,
                source: Box::new(e),
            }),
        }
    }

    fn applied(&self) -> Option<&ProxyState> {
        IpvsProxier::applied(self)
    }

    fn invalidate(&mut self) {
        IpvsProxier::invalidate(self)
    }

    /// The proxier reads the node's addresses itself (every link but `kube-ipvs0`, whose
    /// VIPs must not get NodePort services), so the host's list is not needed.
    fn set_local_addresses(&mut self, _addrs: Vec<IpAddr>) {}

    /// Upstream's IPVS proxier monitors the same `KUBE-PROXY-CANARY` chains as its iptables
    /// one: a flush of the tables (firewalld, `iptables -F -X`) also removed the jumps from
    /// the built-in chains, which only a full sync restores.
    fn missing_canaries(&mut self) -> Result<Vec<&'static str>, ApplyError> {
        crate::apply::missing_canaries(&mut self.rules)
    }
}
