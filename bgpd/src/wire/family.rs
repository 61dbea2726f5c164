//! Address families (AFI/SAFI, RFC 4760) and NLRI prefixes (RFC 4271 §4.3), optionally with an
//! ADD-PATH path identifier (RFC 7911 §3).
//!
//! ```text
//!   [path id(4)]? length(1) prefix(ceil(length/8))
//! ```
//!
//! Trailing bits after the prefix length are irrelevant (RFC 4271 §4.3): decode clears them
//! (`Ipv4Net::trunc`), encode writes zeros. A peer that sets them gets a different (equivalent)
//! encoding back; the fixtures from BIRD, FRR, GoBGP and ExaBGP never set them.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};

/// AFI for IPv4 (IANA address family numbers).
pub const AFI_IPV4: u16 = 1;
/// AFI for IPv6.
pub const AFI_IPV6: u16 = 2;
/// SAFI for unicast forwarding (RFC 4760 §6).
pub const SAFI_UNICAST: u8 = 1;

/// An address family and subsequent address family (RFC 4760 §5). IPv4 and IPv6 unicast are
/// typed; the rest are kept as numbers. Build with [`AfiSafi::new`] so that (1, 1) is always
/// `Ipv4Unicast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AfiSafi {
    /// AFI 1, SAFI 1.
    Ipv4Unicast,
    /// AFI 2, SAFI 1.
    Ipv6Unicast,
    /// Any other pair.
    Other {
        /// Address family identifier.
        afi: u16,
        /// Subsequent address family identifier.
        safi: u8,
    },
}

impl AfiSafi {
    /// From wire numbers.
    pub fn new(afi: u16, safi: u8) -> Self {
        match (afi, safi) {
            (AFI_IPV4, SAFI_UNICAST) => Self::Ipv4Unicast,
            (AFI_IPV6, SAFI_UNICAST) => Self::Ipv6Unicast,
            _ => Self::Other { afi, safi },
        }
    }

    /// The AFI.
    pub fn afi(self) -> u16 {
        match self {
            Self::Ipv4Unicast => AFI_IPV4,
            Self::Ipv6Unicast => AFI_IPV6,
            Self::Other { afi, .. } => afi,
        }
    }

    /// The SAFI.
    pub fn safi(self) -> u8 {
        match self {
            Self::Ipv4Unicast | Self::Ipv6Unicast => SAFI_UNICAST,
            Self::Other { safi, .. } => safi,
        }
    }
}

impl fmt::Display for AfiSafi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipv4Unicast => f.write_str("ipv4-unicast"),
            Self::Ipv6Unicast => f.write_str("ipv6-unicast"),
            Self::Other { afi, safi } => write!(f, "afi {afi} safi {safi}"),
        }
    }
}

/// One NLRI entry: a prefix and, on ADD-PATH sessions (RFC 7911), its path identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nlri<P> {
    /// The prefix, host bits cleared.
    pub prefix: P,
    /// The path identifier when ADD-PATH is negotiated for this family in this direction.
    pub path_id: Option<u32>,
}

impl<P> Nlri<P> {
    /// A prefix without a path identifier.
    pub fn new(prefix: P) -> Self {
        Self {
            prefix,
            path_id: None,
        }
    }
}

impl<P> From<P> for Nlri<P> {
    fn from(prefix: P) -> Self {
        Self::new(prefix)
    }
}

/// A prefix type this codec carries in NLRI.
pub trait Prefix: Sized + Copy {
    /// Longest prefix length of the family (32 or 128).
    const MAX_LEN: u8;
    /// Build from leading address octets (zero-padded) and a length <= `MAX_LEN`; clears host bits.
    fn from_octets(octets: &[u8], len: u8) -> Self;
    /// Prefix length.
    fn bits(&self) -> u8;
    /// Address octets (4 or 16).
    fn octets(&self) -> [u8; 16];
}

impl Prefix for Ipv4Net {
    const MAX_LEN: u8 = 32;
    fn from_octets(octets: &[u8], len: u8) -> Self {
        let mut a = [0u8; 4];
        a[..octets.len()].copy_from_slice(octets);
        Ipv4Net::new(Ipv4Addr::from(a), len)
            .map(|n| n.trunc())
            .unwrap_or_default()
    }
    fn bits(&self) -> u8 {
        self.prefix_len()
    }
    fn octets(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&self.network().octets());
        a
    }
}

impl Prefix for Ipv6Net {
    const MAX_LEN: u8 = 128;
    fn from_octets(octets: &[u8], len: u8) -> Self {
        let mut a = [0u8; 16];
        a[..octets.len()].copy_from_slice(octets);
        Ipv6Net::new(Ipv6Addr::from(a), len)
            .map(|n| n.trunc())
            .unwrap_or_default()
    }
    fn bits(&self) -> u8 {
        self.prefix_len()
    }
    fn octets(&self) -> [u8; 16] {
        self.network().octets()
    }
}

/// Why an NLRI field could not be parsed, and where (offset inside the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PrefixError {
    pub(crate) at: usize,
    pub(crate) reason: &'static str,
}

/// Decode a whole NLRI / Withdrawn Routes field (RFC 4271 §4.3, RFC 7911 §3).
pub(crate) fn decode_prefixes<P: Prefix>(
    buf: &[u8],
    add_path: bool,
) -> Result<Vec<Nlri<P>>, PrefixError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        let start = i;
        let path_id = if add_path {
            let Some(b) = buf.get(i..i + 4) else {
                return Err(PrefixError {
                    at: start,
                    reason: "path identifier overruns the field",
                });
            };
            i += 4;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            None
        };
        let Some(&len) = buf.get(i) else {
            return Err(PrefixError {
                at: start,
                reason: "prefix length missing",
            });
        };
        if len > P::MAX_LEN {
            return Err(PrefixError {
                at: i,
                reason: "prefix length exceeds the address family",
            });
        }
        i += 1;
        let n = (len as usize).div_ceil(8);
        let Some(octets) = buf.get(i..i + n) else {
            return Err(PrefixError {
                at: start,
                reason: "prefix overruns the field",
            });
        };
        i += n;
        out.push(Nlri {
            prefix: P::from_octets(octets, len),
            path_id,
        });
    }
    Ok(out)
}

/// Encode NLRI entries; path identifiers are written iff `add_path` (0 when absent).
pub(crate) fn encode_prefixes<P: Prefix>(nlri: &[Nlri<P>], add_path: bool, out: &mut BytesMut) {
    for n in nlri {
        if add_path {
            out.put_u32(n.path_id.unwrap_or(0));
        }
        let len = n.prefix.bits();
        out.put_u8(len);
        out.put_slice(&n.prefix.octets()[..(len as usize).div_ceil(8)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_round_trip_and_clear_trailing_bits() {
        let got =
            decode_prefixes::<Ipv4Net>(&[24, 198, 18, 64, 20, 198, 18, 0x1f, 0], false).unwrap();
        assert_eq!(got[0].prefix, "198.18.64.0/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(got[1].prefix, "198.18.16.0/20".parse::<Ipv4Net>().unwrap());
        assert_eq!(got[2].prefix, "0.0.0.0/0".parse::<Ipv4Net>().unwrap());
        let mut out = BytesMut::new();
        encode_prefixes(&got, false, &mut out);
        assert_eq!(&out[..], &[24, 198, 18, 64, 20, 198, 18, 0x10, 0]);
    }

    #[test]
    fn bad_prefixes_are_rejected_with_position() {
        let e = decode_prefixes::<Ipv4Net>(&[24, 1, 2, 3, 33, 1, 2, 3, 4, 5], false).unwrap_err();
        assert_eq!(e.at, 4);
        let e = decode_prefixes::<Ipv6Net>(&[64, 0x20, 0x01], false).unwrap_err();
        assert_eq!(e.reason, "prefix overruns the field");
        let e = decode_prefixes::<Ipv4Net>(&[0, 0, 0], true).unwrap_err();
        assert_eq!(e.reason, "path identifier overruns the field");
    }

    #[test]
    fn add_path_identifiers() {
        let buf = [0, 0, 0, 7, 16, 198, 18];
        let got = decode_prefixes::<Ipv4Net>(&buf, true).unwrap();
        assert_eq!(got[0].path_id, Some(7));
        let mut out = BytesMut::new();
        encode_prefixes(&got, true, &mut out);
        assert_eq!(&out[..], &buf);
    }
}
