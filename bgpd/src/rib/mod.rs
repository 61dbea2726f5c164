//! The routing information bases (RFC 4271 §3.2, §9): Adj-RIB-In of every peer, the Loc-RIB
//! with the decision process and multipath, and the Adj-RIB-Out of every peer. Pure: no I/O,
//! no clock.
//!
//! ```text
//!   Update (wire) ──Rib::apply_update(peer, &update, &ImportPolicy)──> UpdateOutcome
//!        │            treat-as-withdraw, End-of-RIB, import policy, max-prefix   { changes,
//!        │                                                                       rejected, .. }
//!        v
//!   Rib::announce / withdraw / mark_stale / sweep_stale / flush ──> Vec<Change>
//!        │   per prefix: every peer's path (= the Adj-RIB-Ins), best first,     (Loc-RIB delta:
//!        │   then the rest of the multipath set (decision::decide)               best path or
//!        │                                                                      multipath set)
//!        ├──> fib::FibSync::apply(&rib, &changes)       kernel route ops
//!        └──> AdjRibOut::recompute(&rib, own, prefixes) UPDATEs to each peer (export policy)
//!   Rib::explain(prefix) ──> the decision with its BestPathReason (for show and logs)
//! ```
//!
//! The Adj-RIB-In holds routes *after* import policy: a rejected route is not kept (BIRD's
//! default; FRR keeps them only with `soft-reconfiguration inbound`). A policy change is
//! applied by asking the peer for a ROUTE-REFRESH. Own prefixes are not in the Loc-RIB: they
//! are originated straight into the Adj-RIB-Outs and never installed in the FIB.
//!
//! Graceful restart (RFC 4724 §4.2): when a peer's session goes down with GR, its paths are
//! marked stale ([`Rib::mark_stale`]) and keep forwarding unchanged (the decision process does
//! not look at the flag); a re-announcement clears the flag; at the peer's End-of-RIB (or when
//! its restart time runs out) [`Rib::sweep_stale`] removes what was not re-learned.

pub mod adj_out;
pub mod attrs;
pub mod decision;
pub mod import;
mod pack;
mod table;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use adj_out::{AdjRibOut, OutRoute, OutSession};
pub use attrs::{AttrId, AttrStore, AttrsError, RouteAttrs};
pub use decision::{BestPathReason, Candidate, Decision, DecisionStep, RibOptions, decide};
pub use import::UpdateOutcome;
pub use table::Table;

use crate::wire::AfiSafi;
use table::{Delta, Dest, Edit, EditCx, Path, Slots, edit_dest, has_path};

/// A peer's index in the RIB (at most 65535 peers: it is 2 octets of every path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u16);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// What the decision process needs to know about a peer (RFC 4271 §9.1.2.2 (d), (f), (g)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's address (the session's remote address).
    pub address: IpAddr,
    /// The peer's AS.
    pub asn: u32,
    /// Our AS on this session (eBGP when it differs from `asn`).
    pub local_as: u32,
    /// The peer's BGP Identifier from its OPEN (0.0.0.0 until the session is established).
    pub router_id: Ipv4Addr,
    /// The interface the session runs over, when known (needed to install IPv6 link-local next
    /// hops).
    pub ifindex: Option<u32>,
}

impl PeerInfo {
    /// An external peer.
    pub fn is_ebgp(&self) -> bool {
        self.asn != self.local_as
    }
}

#[derive(Debug)]
pub(crate) struct PeerSlot {
    pub(crate) info: PeerInfo,
    /// Paths held per family (IPv4, IPv6 unicast).
    routes: [u64; 2],
    /// Of which stale.
    stale: [u64; 2],
}

/// The Loc-RIB entry of a prefix on one side of a [`Change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The peer of the best path.
    pub peer: PeerId,
    /// The best path's attributes.
    pub attrs: Arc<RouteAttrs>,
    /// Length of the multipath set (1 without ECMP).
    pub multipath: u8,
}

/// A change of the Loc-RIB for one prefix: best path or multipath set added, changed or
/// removed. Consumers read the new multipath set from the [`Rib`] ([`Rib::route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The prefix.
    pub prefix: IpNet,
    /// Before (`None`: the prefix was not in the Loc-RIB).
    pub old: Option<Selection>,
    /// After (`None`: the prefix left the Loc-RIB).
    pub new: Option<Selection>,
}

/// What kind of [`Change`] it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The prefix is new in the Loc-RIB.
    Added,
    /// The prefix left the Loc-RIB.
    Removed,
    /// Another best path (another peer or other attributes).
    BestChanged,
    /// Same best path, other multipath set.
    MultipathChanged,
}

impl Change {
    /// The kind.
    pub fn kind(&self) -> ChangeKind {
        match (&self.old, &self.new) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            (Some(o), Some(n))
                if o.peer != n.peer || !(Arc::ptr_eq(&o.attrs, &n.attrs) || o.attrs == n.attrs) =>
            {
                ChangeKind::BestChanged
            }
            _ => ChangeKind::MultipathChanged,
        }
    }
}

/// RIB errors (caller mistakes, not peer input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    /// Every one of the 65535 peer ids is in use.
    #[error("too many peers (limit 65535)")]
    TooManyPeers,
    /// The peer id was never added or was removed.
    #[error("unknown {0}")]
    UnknownPeer(PeerId),
}

/// A path as seen from outside the RIB.
#[derive(Debug, Clone, Copy)]
pub struct PathView<'a> {
    /// The peer it was learned from.
    pub peer: PeerId,
    /// That peer.
    pub info: &'a PeerInfo,
    /// Its attributes.
    pub attrs: &'a Arc<RouteAttrs>,
    /// Kept from before the peer's restart, not re-learned yet.
    pub stale: bool,
}

/// A Loc-RIB entry: all paths of a prefix in decision order.
#[derive(Clone, Copy)]
pub struct Route<'a> {
    /// The prefix.
    pub prefix: IpNet,
    paths: &'a [Path],
    multipath: usize,
    rib: &'a Rib,
}

impl fmt::Debug for Route<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("prefix", &self.prefix)
            .field("paths", &self.paths().collect::<Vec<_>>())
            .field("multipath", &self.multipath)
            .finish()
    }
}

impl<'a> Route<'a> {
    fn view(&self, p: &Path) -> PathView<'a> {
        let rib = self.rib;
        PathView {
            peer: p.peer,
            info: rib.peer_info(p.peer),
            attrs: rib.attrs.get(p.attrs),
            stale: p.stale,
        }
    }

    /// The best path.
    pub fn best(&self) -> PathView<'a> {
        self.view(&self.paths[0])
    }

    /// The multipath set, best first.
    pub fn multipath(&self) -> impl Iterator<Item = PathView<'a>> + 'a {
        let me = *self;
        self.paths[..self.multipath].iter().map(move |p| me.view(p))
    }

    /// Length of the multipath set.
    pub fn multipath_len(&self) -> usize {
        self.multipath
    }

    /// Every path (each peer's Adj-RIB-In entry), in decision order.
    pub fn paths(&self) -> impl Iterator<Item = PathView<'a>> + 'a {
        let me = *self;
        self.paths.iter().map(move |p| me.view(p))
    }

    /// Re-run the decision process on this entry's paths, for its reason ([`Decision`] indices
    /// follow [`Route::paths`]). The same function chose the stored order, so the answer is what
    /// decided.
    pub fn explain(&self) -> Decision {
        let views: Vec<PathView> = self.paths().collect();
        let cands: Vec<Candidate> = views
            .iter()
            .map(|v| Candidate {
                peer: v.peer,
                info: v.info,
                attrs: v.attrs,
            })
            .collect();
        decide(&cands, &self.rib.opts).unwrap_or(Decision {
            best: 0,
            runner_up: None,
            reason: BestPathReason::OnlyPath,
            multipath: vec![0],
        })
    }
}

/// Sizes, for tests, metrics and the memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RibStats {
    /// Prefixes in the IPv4 unicast table.
    pub ipv4_prefixes: usize,
    /// Prefixes in the IPv6 unicast table.
    pub ipv6_prefixes: usize,
    /// Paths (sum over all peers' Adj-RIB-Ins).
    pub paths: u64,
    /// Distinct attribute sets.
    pub attr_sets: usize,
    /// Destinations with more than one path.
    pub multi_path_slots: usize,
}

/// Table index of a family (IPv4, IPv6 unicast); `None` for families the RIB does not hold.
fn fam_index(f: AfiSafi) -> Option<usize> {
    match f {
        AfiSafi::Ipv4Unicast => Some(0),
        AfiSafi::Ipv6Unicast => Some(1),
        AfiSafi::Other { .. } => None,
    }
}

fn wants(family: Option<AfiSafi>, f: AfiSafi) -> bool {
    family.is_none_or(|x| x == f)
}

/// The RIBs of the speaker (see the module documentation).
#[derive(Debug)]
pub struct Rib {
    opts: RibOptions,
    peers: Vec<Option<PeerSlot>>,
    attrs: AttrStore,
    v4: Table<Ipv4Net>,
    v6: Table<Ipv6Net>,
    scratch: Vec<Path>,
    before: Vec<Path>,
}

macro_rules! edit_cx {
    ($s:ident) => {
        EditCx {
            attrs: &mut $s.attrs,
            peers: &$s.peers,
            opts: &$s.opts,
            scratch: &mut $s.scratch,
            before: &mut $s.before,
        }
    };
}

fn upsert<P: Ord + Copy + Into<IpNet>>(
    t: &mut Table<P>,
    cx: &mut EditCx,
    prefix: P,
    peer: PeerId,
    id: AttrId,
) -> (Option<Change>, Delta) {
    use std::collections::btree_map::Entry;
    match t.dests.entry(prefix) {
        Entry::Vacant(v) => {
            cx.attrs.retain(id);
            v.insert(Dest::One(Path {
                attrs: id,
                peer,
                stale: false,
            }));
            let change = Change {
                prefix: prefix.into(),
                old: None,
                new: Some(Selection {
                    peer,
                    attrs: Arc::clone(cx.attrs.get(id)),
                    multipath: 1,
                }),
            };
            (
                Some(change),
                Delta {
                    routes: 1,
                    stale: 0,
                },
            )
        }
        Entry::Occupied(mut o) => {
            let (c, empty, d) = edit_dest(
                cx,
                &mut t.multi,
                prefix.into(),
                o.get_mut(),
                peer,
                Edit::Upsert(id),
            );
            if empty {
                o.remove();
            }
            (c, d)
        }
    }
}

fn remove<P: Ord + Copy + Into<IpNet>>(
    t: &mut Table<P>,
    cx: &mut EditCx,
    prefix: P,
    peer: PeerId,
) -> (Option<Change>, Delta) {
    let Some(dest) = t.dests.get_mut(&prefix) else {
        return (None, Delta::default());
    };
    let (c, empty, d) = edit_dest(cx, &mut t.multi, prefix.into(), dest, peer, Edit::Remove);
    if empty {
        t.dests.remove(&prefix);
    }
    (c, d)
}

/// One pass over a table applying `edit` to the destinations that hold a path of `peer`
/// (all destinations when `peer` is `None`).
fn scan<P: Ord + Copy + Into<IpNet>>(
    t: &mut Table<P>,
    cx: &mut EditCx,
    peer: Option<PeerId>,
    edit: Edit,
    changes: &mut Vec<Change>,
) -> Delta {
    let Table { dests, multi } = t;
    let mut total = Delta::default();
    let stale_only = matches!(edit, Edit::RemoveStale);
    dests.retain(|prefix, dest| {
        let who = match peer {
            Some(p) if has_path(multi, dest, p, stale_only) => p,
            Some(_) => return true,
            None => PeerId(u16::MAX),
        };
        let (c, empty, d) = edit_dest(cx, multi, (*prefix).into(), dest, who, edit);
        changes.extend(c);
        total.routes += d.routes;
        total.stale += d.stale;
        !empty
    });
    total
}

impl Rib {
    /// An empty RIB.
    pub fn new(opts: RibOptions) -> Self {
        Self {
            opts,
            peers: Vec::new(),
            attrs: AttrStore::default(),
            v4: Table::default(),
            v6: Table::default(),
            // allocated up front, not in the middle of a load: a small long-lived allocation
            // made after the table's nodes would keep glibc from returning their memory
            scratch: Vec::with_capacity(16),
            before: Vec::with_capacity(16),
        }
    }

    /// The decision options.
    pub fn options(&self) -> &RibOptions {
        &self.opts
    }

    /// Change the decision options; every destination is decided again.
    pub fn set_options(&mut self, opts: RibOptions) -> Vec<Change> {
        self.opts = opts;
        let mut changes = Vec::new();
        let mut cx = edit_cx!(self);
        scan(&mut self.v4, &mut cx, None, Edit::Redecide, &mut changes);
        scan(&mut self.v6, &mut cx, None, Edit::Redecide, &mut changes);
        changes
    }

    /// Register a peer.
    pub fn add_peer(&mut self, info: PeerInfo) -> Result<PeerId, RibError> {
        let slot = PeerSlot {
            info,
            routes: [0; 2],
            stale: [0; 2],
        };
        if let Some(i) = self.peers.iter().position(Option::is_none) {
            self.peers[i] = Some(slot);
            return Ok(PeerId(i as u16));
        }
        if self.peers.len() >= u16::MAX as usize {
            return Err(RibError::TooManyPeers);
        }
        self.peers.push(Some(slot));
        Ok(PeerId(self.peers.len() as u16 - 1))
    }

    /// A registered peer.
    pub fn peer(&self, id: PeerId) -> Option<&PeerInfo> {
        self.peers.get(id.0 as usize)?.as_ref().map(|s| &s.info)
    }

    fn peer_info(&self, id: PeerId) -> &PeerInfo {
        self.peer(id)
            .expect("a path's peer is registered until flushed")
    }

    /// Registered peers.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &PeerInfo)> {
        self.peers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((PeerId(i as u16), &s.as_ref()?.info)))
    }

    /// Replace what the RIB knows of a peer (its BGP identifier once the session is up, a new
    /// AS); destinations holding its paths are decided again.
    pub fn update_peer(&mut self, id: PeerId, info: PeerInfo) -> Result<Vec<Change>, RibError> {
        let slot = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(RibError::UnknownPeer(id))?;
        if slot.info == info {
            return Ok(Vec::new());
        }
        slot.info = info;
        let mut changes = Vec::new();
        let mut cx = edit_cx!(self);
        scan(
            &mut self.v4,
            &mut cx,
            Some(id),
            Edit::Redecide,
            &mut changes,
        );
        scan(
            &mut self.v6,
            &mut cx,
            Some(id),
            Edit::Redecide,
            &mut changes,
        );
        Ok(changes)
    }

    /// Flush a peer and forget it; its id may be given to the next [`Rib::add_peer`].
    pub fn remove_peer(&mut self, id: PeerId) -> Vec<Change> {
        let changes = self.flush(id, None);
        if let Some(s) = self.peers.get_mut(id.0 as usize) {
            *s = None;
        }
        changes
    }

    /// An emptied `BTreeMap` keeps its root node; drop it so that a table that held a million
    /// prefixes and lost them all holds no memory at all.
    fn shrink_empty(&mut self) {
        if self.v4.dests.is_empty() {
            self.v4.dests = Default::default();
        }
        if self.v6.dests.is_empty() {
            self.v6.dests = Default::default();
        }
    }

    fn apply_delta(&mut self, peer: PeerId, fam: usize, d: Delta) {
        if let Some(Some(s)) = self.peers.get_mut(peer.0 as usize) {
            s.routes[fam] = (s.routes[fam] as i64 + d.routes) as u64;
            s.stale[fam] = (s.stale[fam] as i64 + d.stale) as u64;
        }
    }

    /// Announce `prefixes` from `peer` with one attribute set (one UPDATE's worth): each
    /// replaces that peer's previous path for the prefix (implicit withdraw, RFC 4271 §9) and
    /// clears its stale flag. Host bits of the prefixes are cleared.
    pub fn announce(
        &mut self,
        peer: PeerId,
        attrs: RouteAttrs,
        prefixes: impl IntoIterator<Item = IpNet>,
    ) -> Result<Vec<Change>, RibError> {
        if self.peer(peer).is_none() {
            return Err(RibError::UnknownPeer(peer));
        }
        let id = self.attrs.intern(attrs);
        let mut changes = Vec::new();
        let mut deltas = [Delta::default(); 2];
        let mut cx = edit_cx!(self);
        for p in prefixes {
            let (c, d, f) = match p.trunc() {
                IpNet::V4(n) => {
                    let (c, d) = upsert(&mut self.v4, &mut cx, n, peer, id);
                    (c, d, 0)
                }
                IpNet::V6(n) => {
                    let (c, d) = upsert(&mut self.v6, &mut cx, n, peer, id);
                    (c, d, 1)
                }
            };
            changes.extend(c);
            deltas[f].routes += d.routes;
            deltas[f].stale += d.stale;
        }
        self.attrs.release_unused(id);
        for (f, d) in deltas.into_iter().enumerate() {
            self.apply_delta(peer, f, d);
        }
        Ok(changes)
    }

    /// Withdraw `prefixes` of `peer` (those it does not have are ignored).
    pub fn withdraw(
        &mut self,
        peer: PeerId,
        prefixes: impl IntoIterator<Item = IpNet>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut deltas = [Delta::default(); 2];
        let mut cx = edit_cx!(self);
        for p in prefixes {
            let (c, d, f) = match p.trunc() {
                IpNet::V4(n) => {
                    let (c, d) = remove(&mut self.v4, &mut cx, n, peer);
                    (c, d, 0)
                }
                IpNet::V6(n) => {
                    let (c, d) = remove(&mut self.v6, &mut cx, n, peer);
                    (c, d, 1)
                }
            };
            changes.extend(c);
            deltas[f].routes += d.routes;
            deltas[f].stale += d.stale;
        }
        for (f, d) in deltas.into_iter().enumerate() {
            self.apply_delta(peer, f, d);
        }
        self.shrink_empty();
        changes
    }

    /// Mark every path of `peer` (in `family`, or all) stale: its session went down with
    /// graceful restart (RFC 4724 §4.2). The Loc-RIB does not change. Returns the number of
    /// paths newly marked.
    pub fn mark_stale(&mut self, peer: PeerId, family: Option<AfiSafi>) -> u64 {
        let mut marked = [0u64; 2];
        if wants(family, AfiSafi::Ipv4Unicast) {
            let Table { dests, multi } = &mut self.v4;
            for d in dests.values_mut() {
                marked[0] += table::mark_stale(multi, d, peer) as u64;
            }
        }
        if wants(family, AfiSafi::Ipv6Unicast) {
            let Table { dests, multi } = &mut self.v6;
            for d in dests.values_mut() {
                marked[1] += table::mark_stale(multi, d, peer) as u64;
            }
        }
        for (f, n) in marked.iter().enumerate() {
            self.apply_delta(
                peer,
                f,
                Delta {
                    routes: 0,
                    stale: *n as i64,
                },
            );
        }
        marked.iter().sum()
    }

    fn scan_peer(&mut self, peer: PeerId, family: Option<AfiSafi>, edit: Edit) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut deltas = [Delta::default(); 2];
        let mut cx = edit_cx!(self);
        if wants(family, AfiSafi::Ipv4Unicast) {
            deltas[0] = scan(&mut self.v4, &mut cx, Some(peer), edit, &mut changes);
        }
        if wants(family, AfiSafi::Ipv6Unicast) {
            deltas[1] = scan(&mut self.v6, &mut cx, Some(peer), edit, &mut changes);
        }
        for (f, d) in deltas.into_iter().enumerate() {
            self.apply_delta(peer, f, d);
        }
        self.shrink_empty();
        changes
    }

    /// Remove the stale paths of `peer` (in `family`, or all): its End-of-RIB arrived or its
    /// restart time ran out (RFC 4724 §4.2).
    pub fn sweep_stale(&mut self, peer: PeerId, family: Option<AfiSafi>) -> Vec<Change> {
        self.scan_peer(peer, family, Edit::RemoveStale)
    }

    /// Remove every path of `peer` (in `family`, or all): its session went down without
    /// graceful restart. One pass over the table; the decision runs only where the peer had a
    /// path.
    pub fn flush(&mut self, peer: PeerId, family: Option<AfiSafi>) -> Vec<Change> {
        self.scan_peer(peer, family, Edit::Remove)
    }

    /// The Loc-RIB entry of a prefix (exact match).
    pub fn route(&self, prefix: IpNet) -> Option<Route<'_>> {
        let (dest, slots) = match prefix.trunc() {
            IpNet::V4(n) => (self.v4.dests.get(&n)?, &self.v4.multi),
            IpNet::V6(n) => (self.v6.dests.get(&n)?, &self.v6.multi),
        };
        Some(self.make_route(prefix.trunc(), dest, slots))
    }

    fn make_route<'a>(&'a self, prefix: IpNet, dest: &'a Dest, slots: &'a Slots) -> Route<'a> {
        let (paths, multipath) = slots.paths(dest);
        Route {
            prefix,
            paths,
            multipath,
            rib: self,
        }
    }

    /// The Loc-RIB of a family, in prefix order (IPv4 and IPv6 unicast; other families are
    /// empty).
    pub fn routes(&self, family: AfiSafi) -> impl Iterator<Item = Route<'_>> {
        let v4 = (family == AfiSafi::Ipv4Unicast)
            .then(|| {
                self.v4
                    .dests
                    .iter()
                    .map(|(p, d)| self.make_route((*p).into(), d, &self.v4.multi))
            })
            .into_iter()
            .flatten();
        let v6 = (family == AfiSafi::Ipv6Unicast)
            .then(|| {
                self.v6
                    .dests
                    .iter()
                    .map(|(p, d)| self.make_route((*p).into(), d, &self.v6.multi))
            })
            .into_iter()
            .flatten();
        v4.chain(v6)
    }

    /// The Adj-RIB-In of `peer` for a family (after import policy), in prefix order.
    pub fn adj_rib_in(
        &self,
        peer: PeerId,
        family: AfiSafi,
    ) -> impl Iterator<Item = (IpNet, PathView<'_>)> {
        self.routes(family).filter_map(move |r| {
            let p = r.paths().find(|p| p.peer == peer)?;
            Some((r.prefix, p))
        })
    }

    /// Paths held from `peer` in a family (what max-prefix counts).
    pub fn peer_routes(&self, peer: PeerId, family: AfiSafi) -> u64 {
        match (self.peers.get(peer.0 as usize), fam_index(family)) {
            (Some(Some(s)), Some(f)) => s.routes[f],
            _ => 0,
        }
    }

    /// Of those, how many are stale.
    pub fn peer_stale(&self, peer: PeerId, family: AfiSafi) -> u64 {
        match (self.peers.get(peer.0 as usize), fam_index(family)) {
            (Some(Some(s)), Some(f)) => s.stale[f],
            _ => 0,
        }
    }

    /// Whether `peer` has a path for `prefix`.
    pub fn has_path(&self, peer: PeerId, prefix: IpNet) -> bool {
        self.route(prefix)
            .is_some_and(|r| r.paths().any(|p| p.peer == peer))
    }

    /// Sizes of the internal structures.
    pub fn stats(&self) -> RibStats {
        RibStats {
            ipv4_prefixes: self.v4.dests.len(),
            ipv6_prefixes: self.v6.dests.len(),
            paths: self.attrs.total_refs(),
            attr_sets: self.attrs.len(),
            multi_path_slots: self.v4.multi.in_use() + self.v6.multi.in_use(),
        }
    }

    /// The attribute store (read-only).
    pub fn attr_store(&self) -> &AttrStore {
        &self.attrs
    }
}

#[cfg(test)]
pub(crate) mod tests;
