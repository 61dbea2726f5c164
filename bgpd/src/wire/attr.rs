//! Path attributes (RFC 4271 §4.3, §5) and the per-attribute error rules of RFC 7606 §7.
//!
//! ```text
//!   attribute: flags(1) type(1) length(1, or 2 with Extended Length) value
//!   flags: O(ptional) T(ransitive) P(artial) E(xtended length) 0 0 0 0
//! ```
//!
//! In: one attribute's flags, type and value plus the session context. Out: a typed [`Attr`] or
//! a fault naming the NOTIFICATION subcode and the RFC 7606 action. Known attributes keep their
//! received Partial and Extended Length bits in [`PathAttr::flags`] so re-encoding gives the same
//! bytes; the four unused low bits are dropped (RFC 4271: sent as 0, ignored when received).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};

use super::aspath::AsPath;
use super::error::{ErrorAction, ErrorKind};
use super::family::{AfiSafi, Nlri, decode_prefixes, encode_prefixes};
use super::{DecodeCx, EncodeCx};

/// Path attribute type codes (IANA "BGP Path Attributes").
pub mod attr_type {
    /// RFC 4271.
    pub const ORIGIN: u8 = 1;
    /// RFC 4271.
    pub const AS_PATH: u8 = 2;
    /// RFC 4271.
    pub const NEXT_HOP: u8 = 3;
    /// RFC 4271 (MULTI_EXIT_DISC).
    pub const MED: u8 = 4;
    /// RFC 4271.
    pub const LOCAL_PREF: u8 = 5;
    /// RFC 4271.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// RFC 4271.
    pub const AGGREGATOR: u8 = 7;
    /// RFC 1997.
    pub const COMMUNITIES: u8 = 8;
    /// RFC 4456.
    pub const ORIGINATOR_ID: u8 = 9;
    /// RFC 4456.
    pub const CLUSTER_LIST: u8 = 10;
    /// RFC 4760.
    pub const MP_REACH_NLRI: u8 = 14;
    /// RFC 4760.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// RFC 4360.
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// RFC 6793.
    pub const AS4_PATH: u8 = 17;
    /// RFC 6793.
    pub const AS4_AGGREGATOR: u8 = 18;
    /// RFC 8092.
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// Attribute flags octet (RFC 4271 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AttrFlags(pub u8);

impl AttrFlags {
    /// Optional (1) or well-known (0).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: some speaker on the path did not recognise this optional transitive attribute.
    pub const PARTIAL: u8 = 0x20;
    /// The length field is 2 octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;

    /// Optional bit.
    pub fn optional(self) -> bool {
        self.0 & Self::OPTIONAL != 0
    }
    /// Transitive bit.
    pub fn transitive(self) -> bool {
        self.0 & Self::TRANSITIVE != 0
    }
    /// Partial bit.
    pub fn partial(self) -> bool {
        self.0 & Self::PARTIAL != 0
    }
    /// Extended Length bit.
    pub fn extended_length(self) -> bool {
        self.0 & Self::EXTENDED_LENGTH != 0
    }
}

/// ORIGIN (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// 0.
    Igp,
    /// 1.
    Egp,
    /// 2.
    Incomplete,
}

/// AGGREGATOR / AS4_AGGREGATOR value (RFC 4271 §5.1.7, RFC 6793).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The AS that formed the aggregate.
    pub asn: u32,
    /// The IP address (BGP Identifier) of the speaker that formed it.
    pub address: Ipv4Addr,
}

/// A standard community (RFC 1997); well-known values have names ([`Community::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl Community {
    /// GRACEFUL_SHUTDOWN (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Self = Self(0xffff_0000);
    /// ACCEPT_OWN (RFC 7611).
    pub const ACCEPT_OWN: Self = Self(0xffff_0001);
    /// LLGR_STALE (RFC 9494).
    pub const LLGR_STALE: Self = Self(0xffff_0006);
    /// NO_LLGR (RFC 9494).
    pub const NO_LLGR: Self = Self(0xffff_0007);
    /// BLACKHOLE (RFC 7999).
    pub const BLACKHOLE: Self = Self(0xffff_029a);
    /// NO_EXPORT (RFC 1997).
    pub const NO_EXPORT: Self = Self(0xffff_ff01);
    /// NO_ADVERTISE (RFC 1997).
    pub const NO_ADVERTISE: Self = Self(0xffff_ff02);
    /// NO_EXPORT_SUBCONFED (RFC 1997).
    pub const NO_EXPORT_SUBCONFED: Self = Self(0xffff_ff03);
    /// NOPEER (RFC 3765).
    pub const NO_PEER: Self = Self(0xffff_ff04);

    /// From "ASN:value" halves.
    pub fn new(asn: u16, value: u16) -> Self {
        Self(((asn as u32) << 16) | value as u32)
    }

    /// The well-known name, if any.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::GRACEFUL_SHUTDOWN => "graceful-shutdown",
            Self::ACCEPT_OWN => "accept-own",
            Self::LLGR_STALE => "llgr-stale",
            Self::NO_LLGR => "no-llgr",
            Self::BLACKHOLE => "blackhole",
            Self::NO_EXPORT => "no-export",
            Self::NO_ADVERTISE => "no-advertise",
            Self::NO_EXPORT_SUBCONFED => "no-export-subconfed",
            Self::NO_PEER => "no-peer",
            _ => return None,
        })
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff),
        }
    }
}

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    /// Global Administrator (an ASN).
    pub global_admin: u32,
    /// Local Data Part 1.
    pub local_data1: u32,
    /// Local Data Part 2.
    pub local_data2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data1, self.local_data2
        )
    }
}

/// An extended community (RFC 4360), kept as its 8 octets with typed accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtCommunity(pub [u8; 8]);

impl ExtCommunity {
    /// Type high octet (bit 0x40 clear: transitive across ASes).
    pub fn type_high(self) -> u8 {
        self.0[0]
    }
    /// Sub-type octet (meaningful for extended types).
    pub fn subtype(self) -> u8 {
        self.0[1]
    }
    /// The 6 (or 7) value octets after type and sub-type.
    pub fn value(self) -> [u8; 6] {
        let mut v = [0; 6];
        v.copy_from_slice(&self.0[2..]);
        v
    }
}

/// An IPv6 next hop: global, optionally with link-local (RFC 2545 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6NextHop {
    /// Global address.
    pub global: Ipv6Addr,
    /// Link-local address, when the next hop field is 32 octets.
    pub link_local: Option<Ipv6Addr>,
}

/// The next hop of IPv4 NLRI in MP_REACH_NLRI: IPv4, or IPv6 with extended next hop (RFC 8950).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// 4 octets.
    Ipv4(Ipv4Addr),
    /// 16 or 32 octets (RFC 8950 §3).
    Ipv6(Ipv6NextHop),
}

/// MP_REACH_NLRI (RFC 4760 §3). The reserved octet is written as 0 and ignored on receipt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpReach {
    /// AFI 1 SAFI 1.
    Ipv4Unicast {
        /// Next hop.
        next_hop: NextHop,
        /// Reachable prefixes.
        nlri: Vec<Nlri<Ipv4Net>>,
    },
    /// AFI 2 SAFI 1.
    Ipv6Unicast {
        /// Next hop.
        next_hop: Ipv6NextHop,
        /// Reachable prefixes.
        nlri: Vec<Nlri<Ipv6Net>>,
    },
    /// Any other family, raw.
    Other {
        /// AFI.
        afi: u16,
        /// SAFI.
        safi: u8,
        /// Next hop octets.
        next_hop: Vec<u8>,
        /// NLRI octets.
        nlri: Vec<u8>,
    },
}

impl MpReach {
    /// The family.
    pub fn afi_safi(&self) -> AfiSafi {
        match self {
            Self::Ipv4Unicast { .. } => AfiSafi::Ipv4Unicast,
            Self::Ipv6Unicast { .. } => AfiSafi::Ipv6Unicast,
            Self::Other { afi, safi, .. } => AfiSafi::new(*afi, *safi),
        }
    }
}

/// MP_UNREACH_NLRI (RFC 4760 §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpUnreach {
    /// AFI 1 SAFI 1.
    Ipv4Unicast(Vec<Nlri<Ipv4Net>>),
    /// AFI 2 SAFI 1.
    Ipv6Unicast(Vec<Nlri<Ipv6Net>>),
    /// Any other family, raw.
    Other {
        /// AFI.
        afi: u16,
        /// SAFI.
        safi: u8,
        /// Withdrawn routes octets.
        withdrawn: Vec<u8>,
    },
}

impl MpUnreach {
    /// The family.
    pub fn afi_safi(&self) -> AfiSafi {
        match self {
            Self::Ipv4Unicast(_) => AfiSafi::Ipv4Unicast,
            Self::Ipv6Unicast(_) => AfiSafi::Ipv6Unicast,
            Self::Other { afi, safi, .. } => AfiSafi::new(*afi, *safi),
        }
    }

    /// No withdrawn routes (as in an End-of-RIB marker, RFC 4724 §2).
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Ipv4Unicast(v) => v.is_empty(),
            Self::Ipv6Unicast(v) => v.is_empty(),
            Self::Other { withdrawn, .. } => withdrawn.is_empty(),
        }
    }
}

/// A path attribute value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attr {
    /// 1, well-known mandatory.
    Origin(Origin),
    /// 2, well-known mandatory; ASNs as 2 or 4 octets per the session.
    AsPath(AsPath),
    /// 3, well-known mandatory when the NLRI field is not empty.
    NextHop(Ipv4Addr),
    /// 4, optional non-transitive (MULTI_EXIT_DISC).
    Med(u32),
    /// 5, well-known (iBGP).
    LocalPref(u32),
    /// 6, well-known discretionary.
    AtomicAggregate,
    /// 7, optional transitive; AS as 2 or 4 octets per the session.
    Aggregator(Aggregator),
    /// 8, optional transitive.
    Communities(Vec<Community>),
    /// 9, optional non-transitive (RFC 4456).
    OriginatorId(Ipv4Addr),
    /// 10, optional non-transitive (RFC 4456).
    ClusterList(Vec<Ipv4Addr>),
    /// 14, optional non-transitive.
    MpReach(MpReach),
    /// 15, optional non-transitive.
    MpUnreach(MpUnreach),
    /// 16, optional transitive.
    ExtendedCommunities(Vec<ExtCommunity>),
    /// 17, optional transitive; only between a 2-octet and a 4-octet speaker.
    As4Path(AsPath),
    /// 18, optional transitive; only between a 2-octet and a 4-octet speaker.
    As4Aggregator(Aggregator),
    /// 32, optional transitive.
    LargeCommunities(Vec<LargeCommunity>),
    /// Any optional attribute this codec does not know, as received (flags in [`PathAttr`]).
    Unknown {
        /// Type code.
        type_code: u8,
        /// Value.
        value: Vec<u8>,
    },
}

impl Attr {
    /// The type code.
    pub fn type_code(&self) -> u8 {
        use attr_type::*;
        match self {
            Self::Origin(_) => ORIGIN,
            Self::AsPath(_) => AS_PATH,
            Self::NextHop(_) => NEXT_HOP,
            Self::Med(_) => MED,
            Self::LocalPref(_) => LOCAL_PREF,
            Self::AtomicAggregate => ATOMIC_AGGREGATE,
            Self::Aggregator(_) => AGGREGATOR,
            Self::Communities(_) => COMMUNITIES,
            Self::OriginatorId(_) => ORIGINATOR_ID,
            Self::ClusterList(_) => CLUSTER_LIST,
            Self::MpReach(_) => MP_REACH_NLRI,
            Self::MpUnreach(_) => MP_UNREACH_NLRI,
            Self::ExtendedCommunities(_) => EXTENDED_COMMUNITIES,
            Self::As4Path(_) => AS4_PATH,
            Self::As4Aggregator(_) => AS4_AGGREGATOR,
            Self::LargeCommunities(_) => LARGE_COMMUNITIES,
            Self::Unknown { type_code, .. } => *type_code,
        }
    }
}

/// The Optional and Transitive bits a known attribute type must carry; `None` for unknown types.
pub fn expected_flags(type_code: u8) -> Option<u8> {
    use attr_type::*;
    const WK: u8 = AttrFlags::TRANSITIVE;
    const OT: u8 = AttrFlags::OPTIONAL | AttrFlags::TRANSITIVE;
    const ON: u8 = AttrFlags::OPTIONAL;
    Some(match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => WK,
        MED | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => ON,
        AGGREGATOR | COMMUNITIES | EXTENDED_COMMUNITIES | AS4_PATH | AS4_AGGREGATOR
        | LARGE_COMMUNITIES => OT,
        _ => return None,
    })
}

/// RFC 7606 §7 (and RFC 6793 §6, RFC 8092 §6): what to do when a known attribute is malformed.
pub fn malformed_action(type_code: u8) -> ErrorAction {
    use attr_type::*;
    match type_code {
        ATOMIC_AGGREGATE | AGGREGATOR | AS4_PATH | AS4_AGGREGATOR => ErrorAction::AttributeDiscard,
        MP_REACH_NLRI | MP_UNREACH_NLRI => ErrorAction::SessionReset,
        _ => ErrorAction::TreatAsWithdraw,
    }
}

/// The flags this codec writes for an attribute of `type_code` given the flags it holds: for
/// known types the canonical Optional/Transitive bits, Partial only on optional transitive
/// ones, and Extended Length as held; for unknown types the held O/T/P/E bits. The four unused
/// low bits are always 0. The decoder stores exactly this, so decode → encode → decode is stable.
pub fn wire_flags(type_code: u8, held: u8) -> u8 {
    let held = held & 0xf0;
    match expected_flags(type_code) {
        Some(ot) if ot == AttrFlags::OPTIONAL | AttrFlags::TRANSITIVE => {
            ot | (held & (AttrFlags::PARTIAL | AttrFlags::EXTENDED_LENGTH))
        }
        Some(ot) => ot | (held & AttrFlags::EXTENDED_LENGTH),
        None => held,
    }
}

/// A path attribute with its flags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathAttr {
    /// Flags as received (or canonical, from [`PathAttr::new`]). For known types the encoder
    /// writes the canonical Optional/Transitive bits, keeps Partial on optional transitive ones
    /// and keeps Extended Length (and sets it when the value needs it).
    pub flags: AttrFlags,
    /// The value.
    pub attr: Attr,
}

impl PathAttr {
    /// With canonical flags for a known type; an `Unknown` gets Optional|Transitive.
    pub fn new(attr: Attr) -> Self {
        let flags =
            expected_flags(attr.type_code()).unwrap_or(AttrFlags::OPTIONAL | AttrFlags::TRANSITIVE);
        Self {
            flags: AttrFlags(flags),
            attr,
        }
    }

    /// How to pass this attribute on to another peer (RFC 4271 §5, §9.1.3): an unrecognised
    /// optional transitive attribute goes with the Partial bit set; an unrecognised optional
    /// non-transitive one is not passed (`None`). Known attributes are returned unchanged: which
    /// of them to send (MED, LOCAL_PREF, ...) is the RIB's decision.
    pub fn for_forwarding(&self) -> Option<PathAttr> {
        match self.attr {
            Attr::Unknown { .. } if !self.flags.transitive() => None,
            Attr::Unknown { .. } => Some(PathAttr {
                flags: AttrFlags(self.flags.0 | AttrFlags::PARTIAL),
                attr: self.attr.clone(),
            }),
            _ => Some(self.clone()),
        }
    }

    /// Encode flags, type, length and value.
    pub fn encode(&self, cx: &EncodeCx, out: &mut BytesMut) {
        let mut v = BytesMut::new();
        encode_value(&self.attr, cx, &mut v);
        let mut flags = wire_flags(self.attr.type_code(), self.flags.0);
        if v.len() > 255 {
            flags |= AttrFlags::EXTENDED_LENGTH;
        }
        out.put_u8(flags);
        out.put_u8(self.attr.type_code());
        if flags & AttrFlags::EXTENDED_LENGTH != 0 {
            out.put_u16(v.len() as u16);
        } else {
            out.put_u8(v.len() as u8);
        }
        out.put_slice(&v);
    }
}

impl From<Attr> for PathAttr {
    fn from(attr: Attr) -> Self {
        Self::new(attr)
    }
}

/// Why one attribute's value is unusable: the error and the action for this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) kind: ErrorKind,
    pub(crate) action: ErrorAction,
    /// Offset inside the value where the problem is (0 when it is the whole value).
    pub(crate) at: usize,
}

fn fault(type_code: u8, kind: ErrorKind) -> Fault {
    Fault {
        kind,
        action: malformed_action(type_code),
        at: 0,
    }
}

fn u32_at(v: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]])
}

fn ipv4_at(v: &[u8], i: usize) -> Ipv4Addr {
    Ipv4Addr::new(v[i], v[i + 1], v[i + 2], v[i + 3])
}

fn ipv6_at(v: &[u8], i: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&v[i..i + 16]);
    Ipv6Addr::from(a)
}

/// Decode a known attribute's value (flags already checked). `None` for unknown type codes.
pub(crate) fn decode_value(type_code: u8, v: &[u8], cx: &DecodeCx) -> Option<Result<Attr, Fault>> {
    use attr_type::*;
    let len_err = || {
        fault(
            type_code,
            ErrorKind::AttributeLength {
                length: v.len() as u16,
            },
        )
    };
    let multiple_of = |n: usize| !v.is_empty() && v.len().is_multiple_of(n);
    Some(match type_code {
        ORIGIN => match v {
            [0] => Ok(Attr::Origin(Origin::Igp)),
            [1] => Ok(Attr::Origin(Origin::Egp)),
            [2] => Ok(Attr::Origin(Origin::Incomplete)),
            [x] => Err(fault(type_code, ErrorKind::InvalidOrigin { value: *x })),
            _ => Err(len_err()),
        },
        AS_PATH | AS4_PATH => {
            let four = type_code == AS4_PATH || cx.four_octet_as;
            match AsPath::decode(v, four) {
                Ok(p) if type_code == AS_PATH => Ok(Attr::AsPath(p)),
                Ok(p) => Ok(Attr::As4Path(p)),
                Err(reason) => Err(fault(type_code, ErrorKind::MalformedAsPath { reason })),
            }
        }
        NEXT_HOP if v.len() == 4 => Ok(Attr::NextHop(ipv4_at(v, 0))),
        MED if v.len() == 4 => Ok(Attr::Med(u32_at(v, 0))),
        LOCAL_PREF if v.len() == 4 => Ok(Attr::LocalPref(u32_at(v, 0))),
        ATOMIC_AGGREGATE if v.is_empty() => Ok(Attr::AtomicAggregate),
        AGGREGATOR | AS4_AGGREGATOR => {
            let four = type_code == AS4_AGGREGATOR || cx.four_octet_as;
            let agg = match (four, v.len()) {
                (true, 8) => Aggregator {
                    asn: u32_at(v, 0),
                    address: ipv4_at(v, 4),
                },
                (false, 6) => Aggregator {
                    asn: u16::from_be_bytes([v[0], v[1]]) as u32,
                    address: ipv4_at(v, 2),
                },
                _ => return Some(Err(len_err())),
            };
            if agg.asn == 0 {
                // RFC 7607 §2
                Err(fault(
                    type_code,
                    ErrorKind::OptionalAttribute {
                        reason: "AS 0 in aggregator",
                    },
                ))
            } else if type_code == AGGREGATOR {
                Ok(Attr::Aggregator(agg))
            } else {
                Ok(Attr::As4Aggregator(agg))
            }
        }
        COMMUNITIES if multiple_of(4) => Ok(Attr::Communities(
            v.chunks_exact(4).map(|c| Community(u32_at(c, 0))).collect(),
        )),
        ORIGINATOR_ID if v.len() == 4 => Ok(Attr::OriginatorId(ipv4_at(v, 0))),
        CLUSTER_LIST if multiple_of(4) => Ok(Attr::ClusterList(
            v.chunks_exact(4).map(|c| ipv4_at(c, 0)).collect(),
        )),
        EXTENDED_COMMUNITIES if multiple_of(8) => Ok(Attr::ExtendedCommunities(
            v.chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    ExtCommunity(a)
                })
                .collect(),
        )),
        LARGE_COMMUNITIES if multiple_of(12) => Ok(Attr::LargeCommunities(
            v.chunks_exact(12)
                .map(|c| LargeCommunity {
                    global_admin: u32_at(c, 0),
                    local_data1: u32_at(c, 4),
                    local_data2: u32_at(c, 8),
                })
                .collect(),
        )),
        MP_REACH_NLRI => decode_mp_reach(v, cx).map(Attr::MpReach),
        MP_UNREACH_NLRI => decode_mp_unreach(v, cx).map(Attr::MpUnreach),
        NEXT_HOP | MED | LOCAL_PREF | ATOMIC_AGGREGATE | COMMUNITIES | ORIGINATOR_ID
        | CLUSTER_LIST | EXTENDED_COMMUNITIES | LARGE_COMMUNITIES => Err(len_err()),
        _ => return None,
    })
}

fn mp_fault(reason: &'static str, at: usize) -> Fault {
    Fault {
        kind: ErrorKind::OptionalAttribute { reason },
        action: ErrorAction::SessionReset,
        at,
    }
}

/// RFC 4760 §3; any structural problem is a session reset (RFC 7606 §7.11: the NLRI cannot be
/// located reliably).
fn decode_mp_reach(v: &[u8], cx: &DecodeCx) -> Result<MpReach, Fault> {
    if v.len() < 5 {
        return Err(mp_fault("MP_REACH_NLRI shorter than 5 octets", 0));
    }
    let afi_safi = AfiSafi::new(u16::from_be_bytes([v[0], v[1]]), v[2]);
    let nh_len = v[3] as usize;
    let Some(nh) = v.get(4..4 + nh_len) else {
        return Err(mp_fault("next hop overruns MP_REACH_NLRI", 3));
    };
    // reserved octet (formerly the SNPA count) is ignored (RFC 4760 §3)
    let Some(nlri) = v.get(4 + nh_len + 1..) else {
        return Err(mp_fault(
            "reserved octet missing in MP_REACH_NLRI",
            4 + nh_len,
        ));
    };
    let nlri_at = 5 + nh_len;
    let add_path = cx.add_path.contains(&afi_safi);
    let v6_next_hop = |nh: &[u8]| match nh.len() {
        16 => Some(Ipv6NextHop {
            global: ipv6_at(nh, 0),
            link_local: None,
        }),
        32 => Some(Ipv6NextHop {
            global: ipv6_at(nh, 0),
            link_local: Some(ipv6_at(nh, 16)),
        }),
        _ => None,
    };
    let bad_nlri = |e: super::family::PrefixError| mp_fault(e.reason, nlri_at + e.at);
    Ok(match afi_safi {
        AfiSafi::Ipv4Unicast => {
            let next_hop = match nh.len() {
                4 => NextHop::Ipv4(ipv4_at(nh, 0)),
                16 | 32 if cx.extended_next_hop.contains(&AfiSafi::Ipv4Unicast) => {
                    NextHop::Ipv6(v6_next_hop(nh).ok_or_else(|| mp_fault("bad next hop", 3))?)
                }
                16 | 32 => return Err(mp_fault("IPv6 next hop without extended next hop", 3)),
                _ => return Err(mp_fault("next hop length wrong for IPv4 unicast", 3)),
            };
            MpReach::Ipv4Unicast {
                next_hop,
                nlri: decode_prefixes(nlri, add_path).map_err(bad_nlri)?,
            }
        }
        AfiSafi::Ipv6Unicast => MpReach::Ipv6Unicast {
            next_hop: v6_next_hop(nh)
                .ok_or_else(|| mp_fault("next hop length wrong for IPv6 unicast", 3))?,
            nlri: decode_prefixes(nlri, add_path).map_err(bad_nlri)?,
        },
        AfiSafi::Other { afi, safi } => MpReach::Other {
            afi,
            safi,
            next_hop: nh.to_vec(),
            nlri: nlri.to_vec(),
        },
    })
}

/// RFC 4760 §4.
fn decode_mp_unreach(v: &[u8], cx: &DecodeCx) -> Result<MpUnreach, Fault> {
    if v.len() < 3 {
        return Err(mp_fault("MP_UNREACH_NLRI shorter than 3 octets", 0));
    }
    let afi_safi = AfiSafi::new(u16::from_be_bytes([v[0], v[1]]), v[2]);
    let add_path = cx.add_path.contains(&afi_safi);
    let bad = |e: super::family::PrefixError| mp_fault(e.reason, 3 + e.at);
    Ok(match afi_safi {
        AfiSafi::Ipv4Unicast => {
            MpUnreach::Ipv4Unicast(decode_prefixes(&v[3..], add_path).map_err(bad)?)
        }
        AfiSafi::Ipv6Unicast => {
            MpUnreach::Ipv6Unicast(decode_prefixes(&v[3..], add_path).map_err(bad)?)
        }
        AfiSafi::Other { afi, safi } => MpUnreach::Other {
            afi,
            safi,
            withdrawn: v[3..].to_vec(),
        },
    })
}

fn put_v6_next_hop(nh: &Ipv6NextHop, v: &mut BytesMut) {
    v.put_u8(if nh.link_local.is_some() { 32 } else { 16 });
    v.put_slice(&nh.global.octets());
    if let Some(ll) = nh.link_local {
        v.put_slice(&ll.octets());
    }
}

fn put_aggregator(a: &Aggregator, four: bool, v: &mut BytesMut) {
    if four {
        v.put_u32(a.asn);
    } else {
        v.put_u16(u16::try_from(a.asn).unwrap_or(super::aspath::AS_TRANS as u16));
    }
    v.put_slice(&a.address.octets());
}

/// Encode an attribute value per the session (2/4-octet ASNs, ADD-PATH path identifiers).
pub(crate) fn encode_value(attr: &Attr, cx: &EncodeCx, v: &mut BytesMut) {
    match attr {
        Attr::Origin(o) => v.put_u8(*o as u8),
        Attr::AsPath(p) => p.encode(cx.four_octet_as, v),
        Attr::As4Path(p) => p.encode(true, v),
        Attr::NextHop(a) | Attr::OriginatorId(a) => v.put_slice(&a.octets()),
        Attr::Med(x) | Attr::LocalPref(x) => v.put_u32(*x),
        Attr::AtomicAggregate => {}
        Attr::Aggregator(a) => put_aggregator(a, cx.four_octet_as, v),
        Attr::As4Aggregator(a) => put_aggregator(a, true, v),
        Attr::Communities(c) => c.iter().for_each(|c| v.put_u32(c.0)),
        Attr::ClusterList(c) => c.iter().for_each(|a| v.put_slice(&a.octets())),
        Attr::ExtendedCommunities(c) => c.iter().for_each(|c| v.put_slice(&c.0)),
        Attr::LargeCommunities(c) => c.iter().for_each(|c| {
            v.put_u32(c.global_admin);
            v.put_u32(c.local_data1);
            v.put_u32(c.local_data2);
        }),
        Attr::MpReach(r) => {
            let f = r.afi_safi();
            v.put_u16(f.afi());
            v.put_u8(f.safi());
            let add_path = cx.add_path.contains(&f);
            match r {
                MpReach::Ipv4Unicast { next_hop, nlri } => {
                    match next_hop {
                        NextHop::Ipv4(a) => {
                            v.put_u8(4);
                            v.put_slice(&a.octets());
                        }
                        NextHop::Ipv6(nh) => put_v6_next_hop(nh, v),
                    }
                    v.put_u8(0);
                    encode_prefixes(nlri, add_path, v);
                }
                MpReach::Ipv6Unicast { next_hop, nlri } => {
                    put_v6_next_hop(next_hop, v);
                    v.put_u8(0);
                    encode_prefixes(nlri, add_path, v);
                }
                MpReach::Other { next_hop, nlri, .. } => {
                    v.put_u8(next_hop.len() as u8);
                    v.put_slice(next_hop);
                    v.put_u8(0);
                    v.put_slice(nlri);
                }
            }
        }
        Attr::MpUnreach(u) => {
            let f = u.afi_safi();
            v.put_u16(f.afi());
            v.put_u8(f.safi());
            let add_path = cx.add_path.contains(&f);
            match u {
                MpUnreach::Ipv4Unicast(n) => encode_prefixes(n, add_path, v),
                MpUnreach::Ipv6Unicast(n) => encode_prefixes(n, add_path, v),
                MpUnreach::Other { withdrawn, .. } => v.put_slice(withdrawn),
            }
        }
        Attr::Unknown { value, .. } => v.put_slice(value),
    }
}
