//! Stale UDP/SCTP conntrack entries: which ones ([`plan`], pure) and their removal through
//! ctnetlink ([`netlink`]), reconciled against the desired state after every sync.
//!
//! ```text
//!   after a family's sync:  Frontends::of(new state, previous state, node addresses)
//!                              │
//!   ConntrackTable::list(family) ──> [Entry] ──Frontends::stale──> delete each (by orig tuple)
//! ```

pub mod netlink;
pub mod plan;

use dataplane::Family;

use crate::model::ServicePortName;

pub use netlink::{CtError, Ctnetlink};
pub use plan::{Entry, Frontend, Frontends, Tuple, Want, Why};

/// A conntrack table: the kernel's ([`Ctnetlink`]) or a test's.
pub trait ConntrackTable {
    /// Every entry of a family (`conntrack -L -f ipv4`).
    fn list(&mut self, family: Family) -> Result<Vec<Entry>, CtError>;
    /// Deletes one entry (`conntrack -D` with its original tuple); false if already gone.
    fn delete(&mut self, family: Family, entry: &Entry) -> Result<bool, CtError>;
}

impl ConntrackTable for Ctnetlink {
    fn list(&mut self, family: Family) -> Result<Vec<Entry>, CtError> {
        Ctnetlink::list(self, family)
    }

    fn delete(&mut self, family: Family, entry: &Entry) -> Result<bool, CtError> {
        Ctnetlink::delete(self, family, entry)
    }
}

/// What one reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Entries listed.
    pub listed: usize,
    /// Entries deleted, with their service port and the reason.
    pub deleted: Vec<(Entry, ServicePortName, Why)>,
}

/// Lists `family`'s entries and deletes the stale ones (see [`plan`]).
pub fn reconcile(
    table: &mut dyn ConntrackTable,
    family: Family,
    frontends: &Frontends,
) -> Result<Reconciled, CtError> {
    if frontends.is_empty() {
        return Ok(Reconciled::default());
    }
    let entries = table.list(family)?;
    let mut done = Reconciled {
        listed: entries.len(),
        ..Reconciled::default()
    };
    for (i, service, why) in frontends.stale(&entries) {
        let e = entries[i];
        if table.delete(family, &e)? {
            done.deleted.push((e, service.clone(), why));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
