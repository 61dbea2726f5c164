//! Path attributes as the RIB keeps them, and the store that keeps each distinct set once.
//!
//! ```text
//!   Update.attrs (wire) ──RouteAttrs::from_wire(attrs, next hop, local pref)──> RouteAttrs
//!   RouteAttrs ──AttrStore::intern──> AttrId (u32) ──get──> &Arc<RouteAttrs>
//!        one slot per distinct set, with a count of the paths that use it;
//!        the slot is freed when the last path using it goes away
//! ```
//!
//! Why interning: a peer sends many prefixes with identical attributes (a ToR announces every
//! node's pod CIDR with the same AS_PATH, communities and next hop; a full table has a few
//! hundred thousand distinct sets for a million prefixes). A path in the table is then 8 octets
//! (attribute id, peer id, stale flag) instead of a copy of the attributes. This is what BIRD's
//! `rta` cache does, and what keeps a million prefixes within BIRD-like memory.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::wire::{AsPath, Attr, Community, LargeCommunity, NextHop, Origin, PathAttr, attr_type};

/// The attributes of one path, as used by the decision process (RFC 4271 §9.1) and by export.
///
/// NEXT_HOP, MP_REACH_NLRI and MP_UNREACH_NLRI are not kept as attributes: the next hop of the
/// path's family is [`RouteAttrs::next_hop`], and the NLRI are the table keys. LOCAL_PREF is the
/// *effective* degree of preference (RFC 4271 §9.1.1): the received value for iBGP, the
/// configured import value for eBGP (whose LOCAL_PREF is discarded, RFC 7606 §7.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// ORIGIN (RFC 4271 §5.1.1).
    pub origin: Origin,
    /// AS_PATH with 4-octet ASNs (AS4_PATH already merged for 2-octet peers, RFC 6793 §4.2.3).
    pub as_path: AsPath,
    /// The next hop for this path's family: NEXT_HOP for the IPv4 NLRI field, the MP_REACH_NLRI
    /// next hop otherwise (an IPv6 one for IPv4 NLRI with RFC 8950).
    pub next_hop: NextHop,
    /// MULTI_EXIT_DISC (RFC 4271 §5.1.4).
    pub med: Option<u32>,
    /// Effective LOCAL_PREF (see the type's documentation).
    pub local_pref: u32,
    /// COMMUNITIES (RFC 1997), as received.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITIES (RFC 8092), as received.
    pub large_communities: Vec<LargeCommunity>,
    /// ORIGINATOR_ID (RFC 4456 §8), used instead of the peer's BGP identifier in the decision.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456 §8).
    pub cluster_list: Vec<Ipv4Addr>,
    /// Every other attribute as received (ATOMIC_AGGREGATE, AGGREGATOR, EXTENDED_COMMUNITIES,
    /// unknown optional ones), in wire order, for passing on when transit is enabled.
    pub other: Vec<PathAttr>,
}

/// Why received attributes cannot form a route. The wire decoder already turns a missing
/// well-known attribute into treat-as-withdraw (RFC 7606 §3 (d)); this is the RIB's own guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttrsError {
    /// A well-known mandatory attribute is absent (RFC 4271 §6.3).
    #[error("missing well-known attribute {type_code}")]
    Missing {
        /// The attribute type code (1 ORIGIN, 2 AS_PATH).
        type_code: u8,
    },
}

impl RouteAttrs {
    /// Attributes of a path from an UPDATE's attribute list (already converted to 4-octet
    /// ASNs), the next hop of its family and the effective LOCAL_PREF.
    pub fn from_wire(
        attrs: &[PathAttr],
        next_hop: NextHop,
        local_pref: u32,
    ) -> Result<Self, AttrsError> {
        let mut origin = None;
        let mut as_path = None;
        let mut out = RouteAttrs {
            origin: Origin::Incomplete,
            as_path: AsPath::default(),
            next_hop,
            med: None,
            local_pref,
            communities: Vec::new(),
            large_communities: Vec::new(),
            originator_id: None,
            cluster_list: Vec::new(),
            other: Vec::new(),
        };
        for a in attrs {
            match &a.attr {
                Attr::Origin(o) => origin = Some(*o),
                Attr::AsPath(p) => as_path = Some(p.clone()),
                Attr::Med(m) => out.med = Some(*m),
                Attr::Communities(c) => out.communities = c.clone(),
                Attr::LargeCommunities(c) => out.large_communities = c.clone(),
                Attr::OriginatorId(id) => out.originator_id = Some(*id),
                Attr::ClusterList(c) => out.cluster_list = c.clone(),
                // carried elsewhere (next hop, table keys, effective LOCAL_PREF) or merged already
                Attr::NextHop(_)
                | Attr::MpReach(_)
                | Attr::MpUnreach(_)
                | Attr::LocalPref(_)
                | Attr::As4Path(_)
                | Attr::As4Aggregator(_) => {}
                _ => out.other.push(a.clone()),
            }
        }
        out.origin = origin.ok_or(AttrsError::Missing {
            type_code: attr_type::ORIGIN,
        })?;
        out.as_path = as_path.ok_or(AttrsError::Missing {
            type_code: attr_type::AS_PATH,
        })?;
        Ok(out)
    }

    /// The neighbouring AS for MED comparison (RFC 4271 §9.1.2.2 (c)): the first AS of a leading
    /// AS_SEQUENCE; `local_as` when the path is empty or starts with an AS_SET (a route our own
    /// AS originated or aggregated).
    pub fn neighbour_as(&self, local_as: u32) -> u32 {
        self.as_path.first_as().unwrap_or(local_as)
    }
}

/// Index of an interned attribute set in an [`AttrStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttrId(pub(crate) u32);

#[derive(Debug)]
struct Slot {
    attrs: Option<Arc<RouteAttrs>>,
    /// Number of paths (in all tables) that use this set.
    refs: u32,
}

/// Interned attribute sets with reference counts.
///
/// Invariant kept by the RIB: a slot's count equals the number of table paths naming its id,
/// and slots with a zero count are freed at the end of every RIB operation, so after every
/// route is withdrawn the store is empty ([`AttrStore::len`] is 0).
#[derive(Debug, Default)]
pub struct AttrStore {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashMap<Arc<RouteAttrs>, AttrId>,
}

impl AttrStore {
    /// The id of `attrs`, adding it with a zero count if new. The caller must either
    /// [`retain`](Self::retain) it or call [`release_unused`](Self::release_unused).
    pub(crate) fn intern(&mut self, attrs: RouteAttrs) -> AttrId {
        if let Some(id) = self.index.get(&attrs) {
            return *id;
        }
        let attrs = Arc::new(attrs);
        let slot = Slot {
            attrs: Some(attrs.clone()),
            refs: 0,
        };
        let id = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                AttrId(i)
            }
            None => {
                self.slots.push(slot);
                AttrId(self.slots.len() as u32 - 1)
            }
        };
        self.index.insert(attrs, id);
        id
    }

    /// One more path uses `id`.
    pub(crate) fn retain(&mut self, id: AttrId) {
        self.slots[id.0 as usize].refs += 1;
    }

    /// One path less uses `id`; the set is freed when none is left.
    pub(crate) fn release(&mut self, id: AttrId) {
        let slot = &mut self.slots[id.0 as usize];
        slot.refs -= 1;
        if slot.refs == 0 {
            self.free_slot(id);
        }
    }

    /// Free `id` if no path uses it (after an interned set turned out not to be needed).
    pub(crate) fn release_unused(&mut self, id: AttrId) {
        if self.slots[id.0 as usize].refs == 0 {
            self.free_slot(id);
        }
    }

    fn free_slot(&mut self, id: AttrId) {
        if let Some(a) = self.slots[id.0 as usize].attrs.take() {
            self.index.remove(&a);
            self.free.push(id.0);
        }
        if self.index.is_empty() {
            // the last set went away: give the memory back (after an UPDATE flood)
            *self = AttrStore::default();
        }
    }

    /// The attributes of a live id. Ids come only from this store and live while a path uses
    /// them, so a dead id is a RIB bug.
    pub(crate) fn get(&self, id: AttrId) -> &Arc<RouteAttrs> {
        self.slots[id.0 as usize]
            .attrs
            .as_ref()
            .expect("attribute id of a live path")
    }

    /// The number of paths that use `id` (0 for a freed id).
    pub fn refs(&self, id: AttrId) -> u32 {
        self.slots.get(id.0 as usize).map_or(0, |s| s.refs)
    }

    /// Distinct attribute sets held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No attribute set held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Sum of all reference counts (equals the number of paths in the RIB).
    pub fn total_refs(&self) -> u64 {
        self.slots.iter().map(|s| s.refs as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(med: u32) -> RouteAttrs {
        RouteAttrs::from_wire(
            &[
                PathAttr::new(Attr::Origin(Origin::Igp)),
                PathAttr::new(Attr::AsPath(AsPath::sequence([65001]))),
                PathAttr::new(Attr::NextHop("198.18.0.1".parse().unwrap())),
                PathAttr::new(Attr::Med(med)),
                PathAttr::new(Attr::LocalPref(300)),
                PathAttr::new(Attr::AtomicAggregate),
            ],
            NextHop::Ipv4("198.18.0.1".parse().unwrap()),
            100,
        )
        .unwrap()
    }

    #[test]
    fn from_wire_keeps_what_the_decision_and_export_need() {
        let a = attrs(5);
        assert_eq!(a.origin, Origin::Igp);
        assert_eq!(a.med, Some(5));
        assert_eq!(
            a.local_pref, 100,
            "the effective value, not the received one"
        );
        assert_eq!(a.other, vec![PathAttr::new(Attr::AtomicAggregate)]);
        assert_eq!(a.neighbour_as(65000), 65001);
        let e = RouteAttrs::from_wire(
            &[PathAttr::new(Attr::Origin(Origin::Igp))],
            NextHop::Ipv4("198.18.0.1".parse().unwrap()),
            100,
        );
        assert_eq!(e, Err(AttrsError::Missing { type_code: 2 }));
    }

    #[test]
    fn interning_shares_and_frees() {
        let mut s = AttrStore::default();
        let a = s.intern(attrs(1));
        let b = s.intern(attrs(1));
        let c = s.intern(attrs(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        s.retain(a);
        s.retain(a);
        s.release_unused(c);
        assert_eq!(s.len(), 1);
        s.release(a);
        assert_eq!(s.refs(a), 1);
        s.release(a);
        assert!(s.is_empty());
        // the freed slot is reused
        let d = s.intern(attrs(3));
        assert!(d.0 == a.0 || d.0 == c.0);
        assert_eq!(s.len(), 1);
    }
}
