//! Adj-RIB-Out of one peer (RFC 4271 §3.2, §9.1.3): what we advertise to it after export
//! policy, and the UPDATE messages that bring the peer from what it has to what it should have.
//!
//! ```text
//!   own prefixes ─┐                           desired route per prefix       advertised
//!   Loc-RIB ──────┼─ export(prefix) ─> Option<OutRoute> ─> pending ─take_updates─> (what the
//!   ExportPolicy ─┘   next-hop-self, AS prepend (eBGP),    (differs from          peer has)
//!   OutSession        LOCAL_PREF (iBGP), communities,       advertised)   └─> Vec<Update>
//!                     split horizon, no iBGP→iBGP                              withdrawals,
//!                                                                              then announcements
//!   initial_updates: everything + End-of-RIB per family; refresh(family): everything again
//! ```
//!
//! Rules for learned routes (only with `ExportPolicy::transit`):
//! - split horizon: never back to the peer the best path came from;
//! - an iBGP-learned route is not sent to an iBGP peer (bgpd is no route reflector; at most a
//!   client);
//! - NO_ADVERTISE is sent to nobody, NO_EXPORT and NO_EXPORT_SUBCONFED not over eBGP (RFC
//!   1997); a path holding the eBGP peer's AS is not sent to it (it would drop it as a loop);
//! - eBGP: our AS prepended, LOCAL_PREF and the received MED removed (RFC 4271 §5.1.4, §5.1.5),
//!   ORIGINATOR_ID / CLUSTER_LIST not sent; iBGP: LOCAL_PREF set to the path's preference;
//! - unknown optional transitive attributes go on with the Partial bit, unknown
//!   non-transitive ones are dropped (RFC 4271 §5).
//!
//! The next hop is always our own address on the session (next-hop-self): nodes advertise
//! pod CIDRs that are reachable through themselves.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{PeerId, Rib, pack};
use crate::policy::ExportPolicy;
use crate::wire::{
    AfiSafi, AsPath, Attr, Community, EncodeCx, Ipv6NextHop, NextHop, Origin, PathAttr, Segment,
    SegmentType, Update, as4,
};

/// What the Adj-RIB-Out needs to know about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSession {
    /// The peer's id in the [`Rib`] (for split horizon).
    pub peer: PeerId,
    /// Our AS on this session.
    pub local_as: u32,
    /// The peer's AS.
    pub peer_as: u32,
    /// Next hop for IPv4 prefixes: our IPv4 address on the session (next-hop-self).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 prefixes (and IPv4 ones with RFC 8950): our global IPv6 address, plus
    /// the link-local one when the session runs over link-local addresses (RFC 2545 §3).
    pub next_hop_v6: Option<Ipv6NextHop>,
    /// Negotiated families (RFC 4760); others are not advertised.
    pub families: Vec<AfiSafi>,
    /// The peer accepts IPv4 NLRI with an IPv6 next hop (RFC 8950), used when `next_hop_v4` is
    /// `None`.
    pub extended_next_hop: bool,
    /// How UPDATEs are encoded (4-octet AS, ADD-PATH, size limit).
    pub encode: EncodeCx,
}

impl OutSession {
    /// External peer.
    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.peer_as
    }

    fn next_hop(&self, prefix: &IpNet) -> Option<NextHop> {
        match prefix {
            IpNet::V4(_) => match (self.next_hop_v4, self.next_hop_v6) {
                (Some(a), _) => Some(NextHop::Ipv4(a)),
                (None, Some(v6)) if self.extended_next_hop => Some(NextHop::Ipv6(v6)),
                _ => None,
            },
            IpNet::V6(_) => self.next_hop_v6.map(NextHop::Ipv6),
        }
    }
}

/// A route as advertised to one peer: the attributes (in type-code order, without NEXT_HOP and
/// MP_*) and the next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutRoute {
    /// Path attributes.
    pub attrs: Vec<PathAttr>,
    /// Next hop (written as NEXT_HOP or in MP_REACH_NLRI).
    pub next_hop: NextHop,
}

fn family_of(p: &IpNet) -> AfiSafi {
    match p {
        IpNet::V4(_) => AfiSafi::Ipv4Unicast,
        IpNet::V6(_) => AfiSafi::Ipv6Unicast,
    }
}

fn prepend(path: &AsPath, asn: u32) -> AsPath {
    let mut p = path.clone();
    match p.segments.first_mut() {
        Some(s) if s.kind == SegmentType::Sequence => s.asns.insert(0, asn),
        _ => p.segments.insert(
            0,
            Segment {
                kind: SegmentType::Sequence,
                asns: vec![asn],
            },
        ),
    }
    p
}

fn merged<T: Ord + Copy>(a: &[T], b: &[T]) -> Vec<T> {
    let s: BTreeSet<T> = a.iter().chain(b).copied().collect();
    s.into_iter().collect()
}

fn sorted(mut attrs: Vec<PathAttr>) -> Vec<PathAttr> {
    attrs.sort_by_key(|a| a.attr.type_code());
    attrs
}

/// The Adj-RIB-Out of one peer.
#[derive(Debug)]
pub struct AdjRibOut {
    session: OutSession,
    policy: ExportPolicy,
    advertised: BTreeMap<IpNet, Arc<OutRoute>>,
    pending: BTreeMap<IpNet, Option<Arc<OutRoute>>>,
    interned: HashSet<Arc<OutRoute>>,
    unsendable: u64,
}

impl AdjRibOut {
    /// Empty: nothing advertised yet.
    pub fn new(session: OutSession, policy: ExportPolicy) -> Self {
        Self {
            session,
            policy,
            advertised: BTreeMap::new(),
            pending: BTreeMap::new(),
            interned: HashSet::new(),
            unsendable: 0,
        }
    }

    /// The session.
    pub fn session(&self) -> &OutSession {
        &self.session
    }

    /// Replace the export policy; call [`AdjRibOut::recompute_all`] then
    /// [`AdjRibOut::take_updates`] to send the difference.
    pub fn set_policy(&mut self, policy: ExportPolicy) {
        self.policy = policy;
    }

    /// The route this peer should have for `prefix` (`own`: our own prefixes).
    pub fn export(&self, rib: &Rib, own: &BTreeSet<IpNet>, prefix: IpNet) -> Option<OutRoute> {
        let s = &self.session;
        if !s.families.contains(&family_of(&prefix)) {
            return None;
        }
        let next_hop = s.next_hop(&prefix)?;
        if own.contains(&prefix) {
            if let Some(f) = &self.policy.prefixes
                && !f.matches(&prefix)
            {
                return None;
            }
            return Some(self.own_route(next_hop));
        }
        self.transit_route(rib, prefix, next_hop)
    }

    fn own_route(&self, next_hop: NextHop) -> OutRoute {
        let (s, p) = (&self.session, &self.policy);
        let mut attrs = vec![
            PathAttr::new(Attr::Origin(Origin::Igp)),
            PathAttr::new(Attr::AsPath(if s.is_ebgp() {
                AsPath::sequence([s.local_as])
            } else {
                AsPath::default()
            })),
        ];
        if let Some(med) = p.med {
            attrs.push(PathAttr::new(Attr::Med(med)));
        }
        if !s.is_ebgp() {
            attrs.push(PathAttr::new(Attr::LocalPref(p.local_pref)));
        }
        if !p.communities.is_empty() {
            attrs.push(PathAttr::new(Attr::Communities(merged(
                &p.communities,
                &[],
            ))));
        }
        if !p.large_communities.is_empty() {
            attrs.push(PathAttr::new(Attr::LargeCommunities(merged(
                &p.large_communities,
                &[],
            ))));
        }
        OutRoute {
            attrs: sorted(attrs),
            next_hop,
        }
    }

    fn transit_route(&self, rib: &Rib, prefix: IpNet, next_hop: NextHop) -> Option<OutRoute> {
        let (s, p) = (&self.session, &self.policy);
        if !p.transit.as_ref()?.matches(&prefix) {
            return None;
        }
        let route = rib.route(prefix)?;
        let best = route.best();
        let a = best.attrs;
        if best.peer == s.peer || (!best.info.is_ebgp() && !s.is_ebgp()) {
            return None;
        }
        let has = |c: Community| a.communities.contains(&c);
        if has(Community::NO_ADVERTISE)
            || (s.is_ebgp() && (has(Community::NO_EXPORT) || has(Community::NO_EXPORT_SUBCONFED)))
            || (s.is_ebgp() && a.as_path.contains(s.peer_as))
        {
            return None;
        }
        let mut attrs = vec![PathAttr::new(Attr::Origin(a.origin))];
        if s.is_ebgp() {
            attrs.push(PathAttr::new(Attr::AsPath(prepend(&a.as_path, s.local_as))));
            if let Some(med) = p.med {
                attrs.push(PathAttr::new(Attr::Med(med)));
            }
        } else {
            attrs.push(PathAttr::new(Attr::AsPath(a.as_path.clone())));
            if let Some(med) = a.med {
                attrs.push(PathAttr::new(Attr::Med(med)));
            }
            attrs.push(PathAttr::new(Attr::LocalPref(a.local_pref)));
        }
        let comms = merged(&a.communities, &p.communities);
        if !comms.is_empty() {
            attrs.push(PathAttr::new(Attr::Communities(comms)));
        }
        let large = merged(&a.large_communities, &p.large_communities);
        if !large.is_empty() {
            attrs.push(PathAttr::new(Attr::LargeCommunities(large)));
        }
        attrs.extend(a.other.iter().filter_map(PathAttr::for_forwarding));
        Some(OutRoute {
            attrs: sorted(attrs),
            next_hop,
        })
    }

    fn intern(&mut self, r: OutRoute) -> Arc<OutRoute> {
        if let Some(a) = self.interned.get(&r) {
            return Arc::clone(a);
        }
        let a = Arc::new(r);
        self.interned.insert(Arc::clone(&a));
        a
    }

    fn stage(&mut self, prefix: IpNet, want: Option<OutRoute>) {
        let want = want.map(|r| self.intern(r));
        if self.advertised.get(&prefix) == want.as_ref() {
            self.pending.remove(&prefix);
        } else {
            self.pending.insert(prefix, want);
        }
    }

    /// Recompute the routes of `prefixes` (after Loc-RIB [`super::Change`]s or a change of our
    /// own prefixes); the differences wait for [`AdjRibOut::take_updates`].
    pub fn recompute(
        &mut self,
        rib: &Rib,
        own: &BTreeSet<IpNet>,
        prefixes: impl IntoIterator<Item = IpNet>,
    ) {
        for p in prefixes {
            let want = self.export(rib, own, p);
            self.stage(p, want);
        }
    }

    /// Recompute every prefix: own prefixes, the Loc-RIB when transit is on, and everything
    /// advertised now (so what is no longer wanted is withdrawn).
    pub fn recompute_all(&mut self, rib: &Rib, own: &BTreeSet<IpNet>) {
        let mut all: BTreeSet<IpNet> = own.iter().copied().collect();
        all.extend(self.advertised.keys().copied());
        if self.policy.transit.is_some() {
            for f in &self.session.families {
                all.extend(rib.routes(*f).map(|r| r.prefix));
            }
        }
        self.recompute(rib, own, all);
    }

    /// The UPDATEs for everything pending: withdrawals first, then announcements grouped by
    /// identical attributes, each message within the size limit. The pending routes count as
    /// advertised from here on.
    pub fn take_updates(&mut self) -> Vec<Update> {
        let pending = std::mem::take(&mut self.pending);
        let mut withdraw: [Vec<IpNet>; 2] = [Vec::new(), Vec::new()];
        let mut groups: Vec<(Arc<OutRoute>, [Vec<IpNet>; 2])> = Vec::new();
        let mut group_of: HashMap<Arc<OutRoute>, usize> = HashMap::new();
        for (prefix, want) in pending {
            let f = matches!(prefix, IpNet::V6(_)) as usize;
            match want {
                None => {
                    if self.advertised.remove(&prefix).is_some() {
                        withdraw[f].push(prefix);
                    }
                }
                Some(r) => {
                    let g = *group_of.entry(Arc::clone(&r)).or_insert_with(|| {
                        groups.push((Arc::clone(&r), [Vec::new(), Vec::new()]));
                        groups.len() - 1
                    });
                    groups[g].1[f].push(prefix);
                    self.advertised.insert(prefix, r);
                }
            }
        }
        let mut out = Vec::new();
        let cx = &self.session.encode;
        for (f, family) in [AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast]
            .into_iter()
            .enumerate()
        {
            out.extend(pack::withdrawals(family, &withdraw[f], cx));
        }
        for (route, by_family) in &groups {
            let attrs = if cx.four_octet_as {
                route.attrs.clone()
            } else {
                as4::to_two_octet_peer(&route.attrs)
            };
            for (f, family) in [AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast]
                .into_iter()
                .enumerate()
            {
                if by_family[f].is_empty() {
                    continue;
                }
                let (msgs, sent) =
                    pack::announcements(&attrs, &route.next_hop, family, &by_family[f], cx);
                out.extend(msgs);
                for p in &by_family[f][sent..] {
                    self.advertised.remove(p);
                    self.unsendable += 1;
                }
            }
        }
        drop(group_of);
        drop(groups);
        self.interned.retain(|a| Arc::strong_count(a) > 1);
        out
    }

    /// The first UPDATEs of a session: everything export allows, then End-of-RIB for every
    /// negotiated family (RFC 4724 §2; sent whether or not GR was negotiated, as BIRD and FRR
    /// do).
    pub fn initial_updates(&mut self, rib: &Rib, own: &BTreeSet<IpNet>) -> Vec<Update> {
        self.recompute_all(rib, own);
        let mut out = self.take_updates();
        out.extend(self.session.families.iter().map(|f| Update::end_of_rib(*f)));
        out
    }

    /// A ROUTE-REFRESH for `family` arrived (RFC 2918 §4): everything advertised in it, again.
    pub fn refresh(&mut self, family: AfiSafi) -> Vec<Update> {
        let again: Vec<(IpNet, Arc<OutRoute>)> = self
            .advertised
            .iter()
            .filter(|(p, _)| family_of(p) == family && !self.pending.contains_key(p))
            .map(|(p, r)| (*p, Arc::clone(r)))
            .collect();
        for (p, r) in again {
            self.advertised.remove(&p);
            self.pending.insert(p, Some(r));
        }
        self.take_updates()
    }

    /// The session went down: the peer has nothing of ours any more.
    pub fn reset(&mut self) {
        self.advertised.clear();
        self.pending.clear();
        self.interned.clear();
    }

    /// What the peer has from us, in prefix order.
    pub fn advertised(&self) -> impl Iterator<Item = (IpNet, &OutRoute)> {
        self.advertised.iter().map(|(p, r)| (*p, r.as_ref()))
    }

    /// Number of prefixes advertised.
    pub fn len(&self) -> usize {
        self.advertised.len()
    }

    /// Nothing advertised.
    pub fn is_empty(&self) -> bool {
        self.advertised.is_empty()
    }

    /// Prefixes that could not be sent because their attributes leave no room in a message.
    pub fn unsendable(&self) -> u64 {
        self.unsendable
    }
}
