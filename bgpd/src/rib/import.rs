//! One received UPDATE into the RIB: RFC 7606 treat-as-withdraw, End-of-RIB, withdrawals,
//! import policy, max-prefix, announcements.
//!
//! ```text
//!   Update ──is_end_of_rib?──> outcome.end_of_rib (the speaker sweeps stale routes)
//!     │  ──action() == TreatAsWithdraw?──> withdraw every prefix in it (RFC 7606 §2)
//!     v
//!   withdrawn routes + MP_UNREACH_NLRI ──> Rib::withdraw
//!   NLRI field (NEXT_HOP), MP_REACH_NLRI IPv4 / IPv6 (their next hop), each group:
//!     RouteAttrs (effective LOCAL_PREF) ─ check_path ─ check_prefix ─┬─ rejected: withdrawn
//!                                                                    │  too (implicit
//!                                                                    │  withdraw) + Rejected
//!                                                  max-prefix ───────┴─ accepted: announce
//! ```

use std::borrow::Cow;

use ipnet::IpNet;

use super::attrs::{AttrsError, RouteAttrs};
use super::{Change, PeerId, Rib, RibError};
use crate::policy::{ImportPolicy, MaxPrefixEvent, RejectReason, Rejected};
use crate::wire::{AfiSafi, Attr, ErrorAction, MpReach, MpUnreach, NextHop, Update, as4};

/// What applying one UPDATE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// The Loc-RIB delta.
    pub changes: Vec<Change>,
    /// Prefixes announced and accepted.
    pub accepted: usize,
    /// Prefixes withdrawn (withdrawn routes, MP_UNREACH_NLRI, treat-as-withdraw).
    pub withdrawn: usize,
    /// Prefixes refused by the import policy (each also withdrawn: an announcement replaces
    /// the previous route of the prefix, RFC 4271 §9).
    pub rejected: Vec<Rejected>,
    /// The UPDATE was handled as treat-as-withdraw (RFC 7606 §2); the findings are in
    /// `Update::errors`.
    pub treat_as_withdraw: bool,
    /// The UPDATE was an End-of-RIB marker for this family (RFC 4724 §2).
    pub end_of_rib: Option<AfiSafi>,
    /// Max-prefix warning, or the Cease to send.
    pub max_prefix: Option<MaxPrefixEvent>,
    /// Families with NLRI the RIB does not hold (ignored).
    pub ignored_families: Vec<AfiSafi>,
}

fn family_of(p: &IpNet) -> AfiSafi {
    match p {
        IpNet::V4(_) => AfiSafi::Ipv4Unicast,
        IpNet::V6(_) => AfiSafi::Ipv6Unicast,
    }
}

impl Rib {
    /// Apply an UPDATE received from `peer` (see the module documentation). `four_octet_as`:
    /// the session negotiated 4-octet ASNs; otherwise AS4_PATH is merged first (RFC 6793
    /// §4.2.3).
    pub fn apply_update(
        &mut self,
        peer: PeerId,
        update: &Update,
        policy: &ImportPolicy,
        four_octet_as: bool,
    ) -> Result<UpdateOutcome, RibError> {
        let info = self.peer(peer).ok_or(RibError::UnknownPeer(peer))?.clone();
        let mut out = UpdateOutcome::default();
        if let Some(f) = update.is_end_of_rib() {
            out.end_of_rib = Some(f);
            return Ok(out);
        }
        if update.action() == Some(ErrorAction::TreatAsWithdraw) {
            let w = update.treat_as_withdraw();
            let all: Vec<IpNet> = (w.ipv4.iter().map(|n| IpNet::V4(n.prefix)))
                .chain(w.ipv6.iter().map(|n| IpNet::V6(n.prefix)))
                .collect();
            out.withdrawn = all.len();
            out.changes = self.withdraw(peer, all);
            out.treat_as_withdraw = true;
            out.ignored_families = w.other;
            return Ok(out);
        }

        // withdrawals first (RFC 4271 §9: withdrawn routes, then NLRI)
        let mut gone: Vec<IpNet> = update.withdrawn.iter().map(|n| n.prefix.into()).collect();
        match update.mp_unreach() {
            Some(MpUnreach::Ipv4Unicast(v)) => gone.extend(v.iter().map(|n| IpNet::V4(n.prefix))),
            Some(MpUnreach::Ipv6Unicast(v)) => gone.extend(v.iter().map(|n| IpNet::V6(n.prefix))),
            Some(u @ MpUnreach::Other { .. }) => out.ignored_families.push(u.afi_safi()),
            None => {}
        }
        out.withdrawn = gone.len();
        out.changes = self.withdraw(peer, gone);

        let attrs: Cow<[crate::wire::PathAttr]> = if four_octet_as {
            Cow::Borrowed(&update.attrs)
        } else {
            Cow::Owned(as4::from_two_octet_peer(&update.attrs))
        };
        let local_pref = match (info.is_ebgp(), update.local_pref()) {
            (false, Some(lp)) => lp,
            _ => policy.local_pref,
        };
        // the groups of reachable prefixes, each with its next hop
        let mut groups: Vec<(NextHop, Vec<IpNet>)> = Vec::new();
        if !update.nlri.is_empty() {
            let prefixes = update.nlri.iter().map(|n| IpNet::V4(n.prefix)).collect();
            match update.next_hop() {
                Some(nh) => groups.push((NextHop::Ipv4(nh), prefixes)),
                None => self.reject_all(
                    peer,
                    &info.address,
                    prefixes,
                    RejectReason::MissingAttribute {
                        type_code: crate::wire::attr_type::NEXT_HOP,
                    },
                    &mut out,
                ),
            }
        }
        for a in attrs.iter() {
            match &a.attr {
                Attr::MpReach(MpReach::Ipv4Unicast { next_hop, nlri }) => groups.push((
                    *next_hop,
                    nlri.iter().map(|n| IpNet::V4(n.prefix)).collect(),
                )),
                Attr::MpReach(MpReach::Ipv6Unicast { next_hop, nlri }) => groups.push((
                    NextHop::Ipv6(*next_hop),
                    nlri.iter().map(|n| IpNet::V6(n.prefix)).collect(),
                )),
                Attr::MpReach(r @ MpReach::Other { .. }) => out.ignored_families.push(r.afi_safi()),
                _ => {}
            }
        }

        for (next_hop, prefixes) in groups {
            if prefixes.is_empty() {
                continue;
            }
            let route = match RouteAttrs::from_wire(&attrs, next_hop, local_pref) {
                Ok(r) => r,
                Err(AttrsError::Missing { type_code }) => {
                    self.reject_all(
                        peer,
                        &info.address,
                        prefixes,
                        RejectReason::MissingAttribute { type_code },
                        &mut out,
                    );
                    continue;
                }
            };
            if let Err(reason) = policy.check_originator(route.originator_id).and_then(|()| {
                policy.check_path(&route.as_path, &next_hop, info.asn, info.is_ebgp())
            }) {
                self.reject_all(peer, &info.address, prefixes, reason, &mut out);
                continue;
            }
            let mut accepted = Vec::with_capacity(prefixes.len());
            let mut refused = Vec::new();
            for p in prefixes {
                match policy.check_prefix(&p, &next_hop) {
                    Ok(()) => accepted.push(p),
                    Err(reason) => {
                        refused.push(p);
                        out.rejected.push(Rejected {
                            peer: info.address,
                            prefix: p,
                            reason,
                        });
                    }
                }
            }
            let c = self.withdraw(peer, refused);
            out.changes.extend(c);
            if accepted.is_empty() {
                continue;
            }
            if let Some(m) = &policy.max_prefix {
                let family = family_of(&accepted[0]);
                let before = self.peer_routes(peer, family);
                if before + accepted.len() as u64 > m.limit as u64 {
                    // exact count only when the cheap bound says it may be exceeded
                    let mut new: Vec<IpNet> = accepted
                        .iter()
                        .filter(|p| !self.has_path(peer, **p))
                        .copied()
                        .collect();
                    new.sort_unstable();
                    new.dedup();
                    let count = before + new.len() as u64;
                    if count > m.limit as u64 {
                        if !m.warning_only {
                            out.max_prefix = Some(MaxPrefixEvent::Exceeded {
                                family,
                                limit: m.limit,
                                count,
                                notification: m.notification(family),
                            });
                            // the session closes: nothing more from this UPDATE
                            return Ok(out);
                        }
                        out.max_prefix = Some(MaxPrefixEvent::Warning {
                            family,
                            limit: m.limit,
                            count,
                            crossed: before <= m.limit as u64,
                        });
                    }
                }
            }
            out.accepted += accepted.len();
            let c = self.announce(peer, route, accepted)?;
            out.changes.extend(c);
        }
        Ok(out)
    }

    fn reject_all(
        &mut self,
        peer: PeerId,
        address: &std::net::IpAddr,
        prefixes: Vec<IpNet>,
        reason: RejectReason,
        out: &mut UpdateOutcome,
    ) {
        out.rejected.extend(prefixes.iter().map(|p| Rejected {
            peer: *address,
            prefix: *p,
            reason: reason.clone(),
        }));
        let c = self.withdraw(peer, prefixes);
        out.changes.extend(c);
    }
}
