//! Import policy of one peer: what may enter the Adj-RIB-In, and why not, and max-prefix.
//!
//! ```text
//!   per path (once per UPDATE and family):     per prefix:
//!     AS loop          our AS in AS_PATH         default route   0.0.0.0/0, ::/0 unless allowed
//!     originator       ORIGINATOR_ID is our
//!                      router ID (RFC 4456 §8)
//!     first AS         eBGP path must start      own prefix      equal to or inside one of ours
//!                      with the peer's AS        import ranges   default deny outside them
//!     next hop         usable address            expected next   node X's pod CIDR must come
//!                                                hop             with X's address as next hop
//!   -> Ok, or a RejectReason; with the prefix and the peer: Rejected, printed as
//!      "filtered: 10.0.0.0/8 not in import ranges of peer 198.18.0.1"
//! ```
//!
//! Max-prefix (RFC 4486): the Adj-RIB-In of the peer may hold at most `limit` prefixes per
//! family; past it the session sends Cease / Maximum Number of Prefixes Reached with the data
//! AFI, SAFI, limit ([`MaxPrefix::notification`]), or only warns.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::prefix_list::PrefixList;
use crate::wire::{AfiSafi, AsPath, CeaseReason, ErrorCode, NextHop, Notification};

/// A covering prefix whose routes must carry one of these next hops (node mesh: node X's pod
/// CIDR comes only with X's address as next hop, so a peer cannot draw another node's pod
/// traffic to itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedNextHop {
    /// The covering prefix (e.g. node X's pod CIDR).
    pub prefix: IpNet,
    /// The acceptable next hops (e.g. node X's addresses).
    pub next_hops: Vec<IpAddr>,
}

/// Max-prefix setting of a peer, per family (RFC 4486 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPrefix {
    /// Most prefixes accepted per family.
    pub limit: u32,
    /// Only warn (log and count) instead of closing the session.
    pub warning_only: bool,
}

impl MaxPrefix {
    /// Cease / Maximum Number of Prefixes Reached (6/1) with the RFC 4486 §4 data: AFI (2
    /// octets), SAFI (1), prefix upper bound (4).
    pub fn notification(&self, family: AfiSafi) -> Notification {
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&family.afi().to_be_bytes());
        data.push(family.safi());
        data.extend_from_slice(&self.limit.to_be_bytes());
        Notification {
            code: ErrorCode::Cease(CeaseReason::MaximumPrefixesReached),
            shutdown_communication: None,
            data,
        }
    }
}

/// What max-prefix says about an UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaxPrefixEvent {
    /// The limit would be exceeded: the announcements were not applied; the session must send
    /// `notification` and close (and the peer's routes be flushed).
    Exceeded {
        /// The family.
        family: AfiSafi,
        /// The limit.
        limit: u32,
        /// Prefixes the peer would have had.
        count: u64,
        /// Cease 6/1 with AFI/SAFI/limit.
        notification: Notification,
    },
    /// Above the limit in warning-only mode: applied anyway.
    Warning {
        /// The family.
        family: AfiSafi,
        /// The limit.
        limit: u32,
        /// Prefixes the peer has now.
        count: u64,
        /// This UPDATE took the count over the limit (log once per crossing).
        crossed: bool,
    },
}

/// Why a route was not accepted. `label()` names it for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Our AS is in the AS_PATH (RFC 4271 §9.1.2: loop).
    AsPathLoop {
        /// Our AS.
        asn: u32,
    },
    /// A route reflector sent back a route we originated: its ORIGINATOR_ID is our BGP
    /// identifier (RFC 4456 §8).
    OriginatorIsUs {
        /// Our router ID.
        router_id: Ipv4Addr,
    },
    /// An eBGP path that does not start with the peer's AS (RFC 4271 §6.3).
    FirstAsMismatch {
        /// The first AS of the path, if it starts with an AS_SEQUENCE.
        first: Option<u32>,
        /// The peer's AS.
        peer_as: u32,
    },
    /// The next hop cannot be forwarded to (unspecified, loopback, multicast, broadcast).
    InvalidNextHop {
        /// The next hop.
        next_hop: IpAddr,
    },
    /// 0.0.0.0/0 or ::/0 without `allow_default_route`.
    DefaultRoute,
    /// Equal to or inside one of our own prefixes.
    OwnPrefix {
        /// Our prefix.
        own: IpNet,
    },
    /// Outside the peer's import ranges (default deny).
    NotInImportRanges,
    /// Inside a prefix with expected next hops, with another next hop.
    WrongNextHop {
        /// The covering prefix.
        owner: IpNet,
        /// The acceptable next hops.
        expected: Vec<IpAddr>,
        /// The received next hop.
        got: IpAddr,
    },
    /// A well-known mandatory attribute is absent (RFC 4271 §6.3).
    MissingAttribute {
        /// Its type code.
        type_code: u8,
    },
}

impl RejectReason {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::AsPathLoop { .. } => "as_path_loop",
            Self::OriginatorIsUs { .. } => "originator_is_us",
            Self::FirstAsMismatch { .. } => "first_as_mismatch",
            Self::InvalidNextHop { .. } => "invalid_next_hop",
            Self::DefaultRoute => "default_route",
            Self::OwnPrefix { .. } => "own_prefix",
            Self::NotInImportRanges => "not_in_import_ranges",
            Self::WrongNextHop { .. } => "wrong_next_hop",
            Self::MissingAttribute { .. } => "missing_attribute",
        }
    }
}

/// A rejected route: which prefix from which peer, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rejected {
    /// The peer's address.
    pub peer: IpAddr,
    /// The prefix.
    pub prefix: IpNet,
    /// Why.
    pub reason: RejectReason,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, peer) = (self.prefix, self.peer);
        write!(f, "filtered: {p} ")?;
        match &self.reason {
            RejectReason::AsPathLoop { asn } => {
                write!(
                    f,
                    "has our AS {asn} in its AS_PATH (loop), from peer {peer}"
                )
            }
            RejectReason::OriginatorIsUs { router_id } => write!(
                f,
                "has our router ID {router_id} as ORIGINATOR_ID (reflected back), from peer {peer}"
            ),
            RejectReason::FirstAsMismatch { first, peer_as } => {
                match first {
                    Some(a) => write!(f, "has an AS_PATH starting with AS {a}")?,
                    None => write!(f, "has an AS_PATH not starting with an AS_SEQUENCE")?,
                }
                write!(f, ", not with the AS {peer_as} of peer {peer}")
            }
            RejectReason::InvalidNextHop { next_hop } => {
                write!(
                    f,
                    "has next hop {next_hop}, not a usable address, from peer {peer}"
                )
            }
            RejectReason::DefaultRoute => {
                write!(f, "is a default route, not allowed from peer {peer}")
            }
            RejectReason::OwnPrefix { own } => {
                write!(f, "overlaps our own prefix {own}, from peer {peer}")
            }
            RejectReason::NotInImportRanges => write!(f, "not in import ranges of peer {peer}"),
            RejectReason::WrongNextHop {
                owner,
                expected,
                got,
            } => {
                write!(
                    f,
                    "has next hop {got}, but routes in {owner} must have next hop "
                )?;
                for (i, e) in expected.iter().enumerate() {
                    write!(f, "{}{e}", if i > 0 { " or " } else { "" })?;
                }
                write!(f, ", from peer {peer}")
            }
            RejectReason::MissingAttribute { type_code } => write!(
                f,
                "lacks well-known attribute {type_code}, from peer {peer}"
            ),
        }
    }
}

/// The import policy of one peer. The default accepts nothing (empty ranges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPolicy {
    /// Our AS, for loop detection.
    pub local_as: u32,
    /// Our BGP identifier: a route reflected back to us with it as ORIGINATOR_ID is ignored
    /// (RFC 4456 §8, for route reflector clients).
    pub router_id: Option<Ipv4Addr>,
    /// Accepted prefixes; anything outside is rejected (default deny).
    pub ranges: PrefixList,
    /// Accept 0.0.0.0/0 and ::/0 (never accepted otherwise, whatever the ranges say).
    pub allow_default_route: bool,
    /// Our own prefixes (static and the Node's podCIDRs): rejected when they come back, as are
    /// more specific prefixes inside them (they would draw our own pods' traffic away).
    pub own_prefixes: Vec<IpNet>,
    /// Prefixes whose routes must have particular next hops (node mesh).
    pub expected_next_hops: Vec<ExpectedNextHop>,
    /// Check that eBGP paths start with the peer's AS (RFC 4271 §6.3; FRR `enforce-first-as`).
    pub enforce_first_as: bool,
    /// The degree of preference given to eBGP routes, and to iBGP routes without LOCAL_PREF
    /// (RFC 4271 §9.1.1; BIRD `default bgp_local_pref`). Default 100.
    pub local_pref: u32,
    /// Max-prefix.
    pub max_prefix: Option<MaxPrefix>,
}

impl Default for ImportPolicy {
    fn default() -> Self {
        Self {
            local_as: 0,
            router_id: None,
            ranges: PrefixList::default(),
            allow_default_route: false,
            own_prefixes: Vec::new(),
            expected_next_hops: Vec::new(),
            enforce_first_as: true,
            local_pref: 100,
            max_prefix: None,
        }
    }
}

/// The address a next hop is forwarded to (the global one for IPv6).
pub fn next_hop_addr(nh: &NextHop) -> IpAddr {
    match nh {
        NextHop::Ipv4(a) => IpAddr::V4(*a),
        NextHop::Ipv6(v6) => IpAddr::V6(v6.global),
    }
}

fn usable(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            !(a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast())
        }
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_loopback() || a.is_multicast()),
    }
}

impl ImportPolicy {
    /// A route reflector's loop check on the route's ORIGINATOR_ID (RFC 4456 §8).
    pub fn check_originator(&self, originator_id: Option<Ipv4Addr>) -> Result<(), RejectReason> {
        match (originator_id, self.router_id) {
            (Some(o), Some(us)) if o == us => Err(RejectReason::OriginatorIsUs { router_id: us }),
            _ => Ok(()),
        }
    }

    /// Checks on the attributes shared by all prefixes of an UPDATE's family: loop, first AS,
    /// next hop. `peer_as` and `ebgp` describe the session.
    pub fn check_path(
        &self,
        as_path: &AsPath,
        next_hop: &NextHop,
        peer_as: u32,
        ebgp: bool,
    ) -> Result<(), RejectReason> {
        if as_path.contains(self.local_as) {
            return Err(RejectReason::AsPathLoop { asn: self.local_as });
        }
        if ebgp && self.enforce_first_as && as_path.first_as() != Some(peer_as) {
            return Err(RejectReason::FirstAsMismatch {
                first: as_path.first_as(),
                peer_as,
            });
        }
        let addr = next_hop_addr(next_hop);
        if !usable(addr) {
            return Err(RejectReason::InvalidNextHop { next_hop: addr });
        }
        Ok(())
    }

    /// Checks of one prefix with the path's next hop.
    pub fn check_prefix(&self, prefix: &IpNet, next_hop: &NextHop) -> Result<(), RejectReason> {
        if prefix.prefix_len() == 0 {
            return if self.allow_default_route {
                Ok(())
            } else {
                Err(RejectReason::DefaultRoute)
            };
        }
        if let Some(own) = self.own_prefixes.iter().find(|o| o.contains(prefix)) {
            return Err(RejectReason::OwnPrefix { own: *own });
        }
        if !self.ranges.matches(prefix) {
            return Err(RejectReason::NotInImportRanges);
        }
        let got = next_hop_addr(next_hop);
        let link_local = match next_hop {
            NextHop::Ipv6(v6) => v6.link_local.map(IpAddr::V6),
            NextHop::Ipv4(_) => None,
        };
        for e in &self.expected_next_hops {
            if e.prefix.contains(prefix)
                && !e
                    .next_hops
                    .iter()
                    .any(|x| *x == got || Some(*x) == link_local)
            {
                return Err(RejectReason::WrongNextHop {
                    owner: e.prefix,
                    expected: e.next_hops.clone(),
                    got,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ipv6NextHop;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn v4(s: &str) -> NextHop {
        NextHop::Ipv4(s.parse().unwrap())
    }
    const PEER: &str = "198.18.0.1";

    fn policy() -> ImportPolicy {
        ImportPolicy {
            local_as: 65000,
            ranges: PrefixList::parse(&["198.18.64.0/18 le 24", "2001:db8:1000::/36 le 64"])
                .unwrap(),
            own_prefixes: vec![net("198.18.64.0/24")],
            expected_next_hops: vec![ExpectedNextHop {
                prefix: net("198.18.65.0/24"),
                next_hops: vec!["198.18.0.3".parse().unwrap()],
            }],
            ..ImportPolicy::default()
        }
    }

    fn show(prefix: &str, r: Result<(), RejectReason>) -> String {
        match r {
            Ok(()) => "accepted".into(),
            Err(reason) => Rejected {
                peer: PEER.parse().unwrap(),
                prefix: net(prefix),
                reason,
            }
            .to_string(),
        }
    }

    #[test]
    fn prefix_checks_table() {
        let p = policy();
        let rows = [
            ("198.18.66.0/24", "198.18.0.9", "accepted"),
            ("198.18.64.0/18", "198.18.0.9", "accepted"),
            (
                "198.18.66.0/25",
                "198.18.0.9",
                "filtered: 198.18.66.0/25 not in import ranges of peer 198.18.0.1",
            ),
            (
                "10.0.0.0/8",
                "198.18.0.9",
                "filtered: 10.0.0.0/8 not in import ranges of peer 198.18.0.1",
            ),
            (
                "0.0.0.0/0",
                "198.18.0.9",
                "filtered: 0.0.0.0/0 is a default route, not allowed from peer 198.18.0.1",
            ),
            (
                "198.18.64.0/24",
                "198.18.0.9",
                "filtered: 198.18.64.0/24 overlaps our own prefix 198.18.64.0/24, from peer 198.18.0.1",
            ),
            (
                "198.18.64.128/25",
                "198.18.0.9",
                "filtered: 198.18.64.128/25 overlaps our own prefix 198.18.64.0/24, from peer 198.18.0.1",
            ),
            ("198.18.65.0/24", "198.18.0.3", "accepted"),
            (
                "198.18.65.0/24",
                "198.18.0.9",
                "filtered: 198.18.65.0/24 has next hop 198.18.0.9, but routes in 198.18.65.0/24 must have next hop 198.18.0.3, from peer 198.18.0.1",
            ),
        ];
        for (prefix, nh, want) in rows {
            assert_eq!(show(prefix, p.check_prefix(&net(prefix), &v4(nh))), want);
        }
        // the default route only when explicitly allowed, whatever the ranges
        let mut open = policy();
        open.ranges = PrefixList::parse(&["0.0.0.0/0 le 32"]).unwrap();
        assert_eq!(
            open.check_prefix(&net("0.0.0.0/0"), &v4("198.18.0.9")),
            Err(RejectReason::DefaultRoute)
        );
        open.allow_default_route = true;
        assert_eq!(
            open.check_prefix(&net("0.0.0.0/0"), &v4("198.18.0.9")),
            Ok(())
        );
        let v6_default = NextHop::Ipv6(Ipv6NextHop {
            global: "2001:db8::1".parse().unwrap(),
            link_local: None,
        });
        assert_eq!(
            policy().check_prefix(&net("::/0"), &v6_default),
            Err(RejectReason::DefaultRoute)
        );
    }

    #[test]
    fn expected_next_hop_accepts_the_link_local_one() {
        let mut p = policy();
        p.expected_next_hops = vec![ExpectedNextHop {
            prefix: net("2001:db8:1000::/64"),
            next_hops: vec!["fe80::3".parse().unwrap()],
        }];
        let nh = |ll: Option<&str>| {
            NextHop::Ipv6(Ipv6NextHop {
                global: "2001:db8::3".parse().unwrap(),
                link_local: ll.map(|s| s.parse().unwrap()),
            })
        };
        assert_eq!(
            p.check_prefix(&net("2001:db8:1000::/64"), &nh(Some("fe80::3"))),
            Ok(())
        );
        assert!(matches!(
            p.check_prefix(&net("2001:db8:1000::/64"), &nh(None)),
            Err(RejectReason::WrongNextHop { .. })
        ));
    }

    #[test]
    fn path_checks_table() {
        let p = policy();
        let nh = v4("198.18.0.9");
        let seq = |a: &[u32]| AsPath::sequence(a.iter().copied());
        assert_eq!(p.check_path(&seq(&[65001]), &nh, 65001, true), Ok(()));
        assert_eq!(
            p.check_path(&seq(&[65001, 65000, 65002]), &nh, 65001, true),
            Err(RejectReason::AsPathLoop { asn: 65000 })
        );
        // iBGP paths start with whatever AS the route came from
        assert_eq!(p.check_path(&seq(&[]), &nh, 65000, false), Ok(()));
        assert_eq!(
            p.check_path(&seq(&[65002]), &nh, 65001, true),
            Err(RejectReason::FirstAsMismatch {
                first: Some(65002),
                peer_as: 65001
            })
        );
        // ORIGINATOR_ID: ours is a reflected-back route; another's, or none, is fine
        let mut rr = policy();
        rr.router_id = Some("198.18.0.11".parse().unwrap());
        assert_eq!(
            rr.check_originator(Some("198.18.0.11".parse().unwrap())),
            Err(RejectReason::OriginatorIsUs {
                router_id: "198.18.0.11".parse().unwrap()
            })
        );
        assert_eq!(
            rr.check_originator(Some("198.18.0.12".parse().unwrap())),
            Ok(())
        );
        assert_eq!(rr.check_originator(None), Ok(()));
        assert_eq!(
            policy().check_originator(Some("198.18.0.11".parse().unwrap())),
            Ok(())
        );
        let mut lax = policy();
        lax.enforce_first_as = false;
        assert_eq!(lax.check_path(&seq(&[65002]), &nh, 65001, true), Ok(()));
        for bad in ["0.0.0.0", "127.0.0.1", "224.0.0.5", "255.255.255.255"] {
            assert_eq!(
                p.check_path(&seq(&[65001]), &v4(bad), 65001, true),
                Err(RejectReason::InvalidNextHop {
                    next_hop: bad.parse().unwrap()
                })
            );
        }
        let r = Rejected {
            peer: PEER.parse().unwrap(),
            prefix: net("198.18.66.0/24"),
            reason: RejectReason::AsPathLoop { asn: 65000 },
        };
        assert_eq!(
            r.to_string(),
            "filtered: 198.18.66.0/24 has our AS 65000 in its AS_PATH (loop), from peer 198.18.0.1"
        );
    }

    #[test]
    fn max_prefix_cease_carries_afi_safi_limit() {
        let m = MaxPrefix {
            limit: 1000,
            warning_only: false,
        };
        let n = m.notification(AfiSafi::Ipv6Unicast);
        assert_eq!(n.code.to_pair(), (6, 1));
        assert_eq!(n.data, vec![0, 2, 1, 0, 0, 0x03, 0xe8]);
        let mut out = bytes::BytesMut::new();
        n.encode_body(&mut out);
        assert_eq!(&out[..], &[6, 1, 0, 2, 1, 0, 0, 0x03, 0xe8]);
        assert_eq!(
            n.code.to_string(),
            "cease/maximum number of prefixes reached (6/1)"
        );
    }
}
