//! One address family's destinations: prefix → the paths of every peer, best path first, and
//! the edit step that re-runs the decision for one destination and reports the Loc-RIB delta.
//!
//! ```text
//!   BTreeMap<P, Dest>            Dest (8 octets) = One(Path)          one peer has the prefix
//!                                                | Many(slot)         slot in `multi`: paths + mp
//!   Path (8 octets) = attribute id (u32), peer id (u16), stale (bool)
//!   paths of a destination are kept in decision order: [best, other multipath members, rest]
//! ```
//!
//! Layout decisions, measured with `examples/rib_load.rs` (1M IPv4 /24 from one peer):
//! - the Adj-RIB-In of every peer lives inside the destinations (like BIRD's per-net route
//!   list), so a prefix costs one map entry however many peers send it; the per-peer view is a
//!   filter, and flushing a peer is one pass over the table that re-runs the decision only for
//!   destinations that held a path of that peer;
//! - `BTreeMap` rather than `HashMap`: ~31 MB instead of ~37 MB for 1M entries, no transient
//!   doubling on growth (a `HashMap` peaks at ~54 MB while rehashing from 2^20 to 2^21 buckets),
//!   ordered iteration for `show` and FIB dumps, and faster for feeds that arrive in order;
//! - a destination with a single path stores it inline; only destinations with several paths
//!   use a slot of `multi` (the niche of `stale: bool` makes `Dest` 8 octets).

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;

use super::attrs::{AttrId, AttrStore};
use super::decision::{Candidate, RibOptions, decide};
use super::{Change, PeerId, PeerSlot, Selection};

/// One path in a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Path {
    pub(crate) attrs: AttrId,
    pub(crate) peer: PeerId,
    /// Kept from a session that went down with graceful restart (RFC 4724 §4.2).
    pub(crate) stale: bool,
}

impl Path {
    fn same_route(&self, other: &Path) -> bool {
        self.attrs == other.attrs && self.peer == other.peer
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Dest {
    One(Path),
    Many(u32),
}

const _: () = assert!(std::mem::size_of::<Dest>() == 8);

#[derive(Debug, Default)]
pub(crate) struct Multi {
    pub(crate) paths: Vec<Path>,
    /// Length of the multipath set at the front of `paths` (at least 1).
    pub(crate) mp: u8,
}

/// The destinations of one address family (see the module documentation for the layout).
#[derive(Debug)]
pub struct Table<P> {
    pub(crate) dests: BTreeMap<P, Dest>,
    pub(crate) multi: Slots,
}

impl<P> Default for Table<P> {
    fn default() -> Self {
        Self {
            dests: BTreeMap::new(),
            multi: Slots::default(),
        }
    }
}

/// Slots for destinations with several paths, with a free list.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    slots: Vec<Multi>,
    free: Vec<u32>,
}

impl Slots {
    /// The paths of a destination (best first) and the multipath set length.
    pub(crate) fn paths<'a>(&'a self, d: &'a Dest) -> (&'a [Path], usize) {
        match d {
            Dest::One(p) => (std::slice::from_ref(p), 1),
            Dest::Many(i) => {
                let m = &self.slots[*i as usize];
                (&m.paths, m.mp as usize)
            }
        }
    }

    fn paths_mut<'a>(&'a mut self, d: &'a mut Dest) -> &'a mut [Path] {
        match d {
            Dest::One(p) => std::slice::from_mut(p),
            Dest::Many(i) => &mut self.slots[*i as usize].paths,
        }
    }

    /// Write `paths` (non-empty, decision order) back into `d`.
    fn store(&mut self, d: &mut Dest, paths: &[Path], mp: usize) {
        if let [one] = paths {
            if let Dest::Many(i) = *d {
                self.release(i);
            }
            *d = Dest::One(*one);
            return;
        }
        let i = match *d {
            Dest::Many(i) => i,
            Dest::One(_) => match self.free.pop() {
                Some(i) => i,
                None => {
                    self.slots.push(Multi::default());
                    self.slots.len() as u32 - 1
                }
            },
        };
        let m = &mut self.slots[i as usize];
        m.paths.clear();
        m.paths.extend_from_slice(paths);
        m.mp = mp as u8;
        *d = Dest::Many(i);
    }

    fn release(&mut self, i: u32) {
        self.slots[i as usize] = Multi::default();
        self.free.push(i);
        if self.free.len() == self.slots.len() {
            // the last multi-path destination went away: give the memory back
            *self = Slots::default();
        }
    }

    /// Slots in use.
    pub(crate) fn in_use(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// What to do to one peer's path of one destination.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Edit {
    /// Announce with these attributes (implicit withdraw of the previous ones; clears stale).
    Upsert(AttrId),
    /// Withdraw.
    Remove,
    /// Withdraw if stale (graceful restart sweep).
    RemoveStale,
    /// Nothing changed in the paths; re-run the decision (options or peer identity changed).
    Redecide,
}

/// Counter deltas of one edit, applied by the caller to the peer's counts.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Delta {
    pub(crate) routes: i64,
    pub(crate) stale: i64,
}

/// Everything an edit needs besides the table.
pub(crate) struct EditCx<'a> {
    pub(crate) attrs: &'a mut AttrStore,
    pub(crate) peers: &'a [Option<PeerSlot>],
    pub(crate) opts: &'a RibOptions,
    pub(crate) scratch: &'a mut Vec<Path>,
    pub(crate) before: &'a mut Vec<Path>,
}

impl EditCx<'_> {
    fn selection(&self, members: &[Path]) -> Option<Selection> {
        let best = members.first()?;
        Some(Selection {
            peer: best.peer,
            attrs: Arc::clone(self.attrs.get(best.attrs)),
            multipath: members.len() as u8,
        })
    }

    /// Put `paths` in decision order; returns the multipath set length.
    fn order(&self, paths: &mut Vec<Path>) -> usize {
        if paths.len() == 1 {
            return 1;
        }
        let cands: Vec<Candidate> = paths
            .iter()
            .map(|p| Candidate {
                peer: p.peer,
                info: &self.peers[p.peer.0 as usize]
                    .as_ref()
                    .expect("a path's peer is registered until flushed")
                    .info,
                attrs: self.attrs.get(p.attrs),
            })
            .collect();
        let Some(d) = decide(&cands, self.opts) else {
            return 0;
        };
        drop(cands);
        let mut ordered: Vec<Path> = d.multipath.iter().map(|&i| paths[i]).collect();
        for (i, p) in paths.iter().enumerate() {
            if !d.multipath.contains(&i) {
                ordered.push(*p);
            }
        }
        *paths = ordered;
        d.multipath.len()
    }
}

/// Apply `edit` for `peer` to one destination. Returns the Loc-RIB change (if the best path or
/// the multipath set changed), whether the destination is now empty (the caller removes it),
/// and the counter deltas. Reference counts of attribute sets are kept exact.
pub(crate) fn edit_dest(
    cx: &mut EditCx,
    slots: &mut Slots,
    prefix: IpNet,
    dest: &mut Dest,
    peer: PeerId,
    edit: Edit,
) -> (Option<Change>, bool, Delta) {
    let mut delta = Delta::default();
    // fast paths that change no decision input
    {
        let paths = slots.paths_mut(dest);
        let pos = paths.iter().position(|p| p.peer == peer);
        match (edit, pos) {
            (Edit::Upsert(id), Some(i)) if paths[i].attrs == id => {
                if paths[i].stale {
                    paths[i].stale = false;
                    delta.stale = -1;
                }
                return (None, false, delta);
            }
            (Edit::Remove | Edit::RemoveStale, None) => return (None, false, delta),
            (Edit::RemoveStale, Some(i)) if !paths[i].stale => return (None, false, delta),
            _ => {}
        }
    }
    cx.scratch.clear();
    cx.before.clear();
    let (paths, mp) = slots.paths(dest);
    cx.scratch.extend_from_slice(paths);
    cx.before.extend_from_slice(&paths[..mp]);
    let pos = cx.scratch.iter().position(|p| p.peer == peer);
    let mut release = None;
    match (edit, pos) {
        (Edit::Upsert(id), Some(i)) => {
            cx.attrs.retain(id);
            release = Some(cx.scratch[i].attrs);
            if cx.scratch[i].stale {
                delta.stale = -1;
            }
            cx.scratch[i] = Path {
                attrs: id,
                peer,
                stale: false,
            };
        }
        (Edit::Upsert(id), None) => {
            cx.attrs.retain(id);
            cx.scratch.push(Path {
                attrs: id,
                peer,
                stale: false,
            });
            delta.routes = 1;
        }
        (Edit::Remove | Edit::RemoveStale, Some(i)) => {
            let p = cx.scratch.remove(i);
            release = Some(p.attrs);
            delta.routes = -1;
            if p.stale {
                delta.stale = -1;
            }
        }
        (Edit::Redecide, _) | (Edit::Remove | Edit::RemoveStale, None) => {}
    }
    let mut scratch = std::mem::take(cx.scratch);
    let (change, empty) = if scratch.is_empty() {
        let old = cx.selection(cx.before);
        (
            Some(Change {
                prefix,
                old,
                new: None,
            }),
            true,
        )
    } else {
        let mp = cx.order(&mut scratch);
        let new_members = &scratch[..mp];
        let same = new_members.len() == cx.before.len()
            && new_members
                .iter()
                .zip(cx.before.iter())
                .all(|(a, b)| a.same_route(b));
        let change = (!same).then(|| Change {
            prefix,
            old: cx.selection(cx.before),
            new: cx.selection(new_members),
        });
        slots.store(dest, &scratch, mp);
        (change, false)
    };
    if empty && let Dest::Many(i) = *dest {
        slots.release(i);
    }
    *cx.scratch = scratch;
    if let Some(id) = release {
        cx.attrs.release(id);
    }
    (change, empty, delta)
}

/// Whether a destination holds a path of `peer` (stale only, if `stale_only`).
pub(crate) fn has_path(slots: &Slots, dest: &Dest, peer: PeerId, stale_only: bool) -> bool {
    slots
        .paths(dest)
        .0
        .iter()
        .any(|p| p.peer == peer && (p.stale || !stale_only))
}

/// Mark the path of `peer` stale; returns whether a fresh path was marked.
pub(crate) fn mark_stale(slots: &mut Slots, dest: &mut Dest, peer: PeerId) -> bool {
    match slots.paths_mut(dest).iter_mut().find(|p| p.peer == peer) {
        Some(p) if !p.stale => {
            p.stale = true;
            true
        }
        _ => false,
    }
}
