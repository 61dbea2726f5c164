//! Which service ports changed between two [`ProxyState`]s, for partial syncs.
//!
//! In: the state last applied and the new one. Out: a [`ChangeSet`] of added, removed and
//! changed [`ServicePortName`]s (service data or endpoint data, including each endpoint's
//! selection), and whether this node's info changed (upstream forces a full sync then).
//! One ordered merge walk over the two maps: O(n) comparisons, no hashing.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::{ProxyState, ServiceName, ServicePortName};

/// The difference between two states of one family.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSet {
    /// Ports present only in the new state.
    pub added: BTreeSet<ServicePortName>,
    /// Ports present only in the old state.
    pub removed: BTreeSet<ServicePortName>,
    /// Ports in both whose service or endpoint data differ.
    pub changed: BTreeSet<ServicePortName>,
    /// This node's info (labels, zone, pod CIDRs, addresses, ...) differs.
    pub node_changed: bool,
}

impl ChangeSet {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && !self.node_changed
    }

    /// Every Service with an added, removed or changed port: the unit upstream's partial
    /// sync rewrites (`UpdatedServices`).
    pub fn services(&self) -> BTreeSet<ServiceName> {
        self.added
            .iter()
            .chain(&self.removed)
            .chain(&self.changed)
            .map(ServicePortName::service)
            .collect()
    }
}

impl ProxyState {
    /// What changed from `old` to `self`.
    pub fn diff(&self, old: &ProxyState) -> ChangeSet {
        let mut cs = ChangeSet {
            node_changed: self.node != old.node,
            ..ChangeSet::default()
        };
        let mut new_it = self.services.iter().peekable();
        let mut old_it = old.services.iter().peekable();
        loop {
            let ord = match (new_it.peek(), old_it.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((n, _)), Some((o, _))) => n.cmp(o),
            };
            match ord {
                Ordering::Less => {
                    let (n, _) = new_it.next().expect("peeked");
                    cs.added.insert(n.clone());
                }
                Ordering::Greater => {
                    let (o, _) = old_it.next().expect("peeked");
                    cs.removed.insert(o.clone());
                }
                Ordering::Equal => {
                    let (name, new_svc) = new_it.next().expect("peeked");
                    let (_, old_svc) = old_it.next().expect("peeked");
                    if new_svc != old_svc || self.endpoints.get(name) != old.endpoints.get(name) {
                        cs.changed.insert(name.clone());
                    }
                }
            }
        }
        cs
    }
}
