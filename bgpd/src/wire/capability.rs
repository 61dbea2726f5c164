//! Capabilities advertised in OPEN (RFC 5492): multiprotocol (RFC 4760), route refresh
//! (RFC 2918), enhanced route refresh (RFC 7313), 4-octet AS (RFC 6793), graceful restart
//! (RFC 4724, RFC 8538 N bit), extended next hop (RFC 8950). Everything else, and any of these in
//! a non-canonical form (reserved bits set, odd lengths), is kept as `Unknown` with its raw value,
//! so that decode → encode gives back the same bytes.
//!
//! ```text
//!   capability: code(1) length(1) value(length)
//! ```

use bytes::{BufMut, BytesMut};

use super::family::AfiSafi;

/// Capability codes (IANA "Capability Codes").
pub mod code {
    /// RFC 4760.
    pub const MULTIPROTOCOL: u8 = 1;
    /// RFC 2918.
    pub const ROUTE_REFRESH: u8 = 2;
    /// RFC 8950.
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    /// RFC 8654.
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// RFC 4724.
    pub const GRACEFUL_RESTART: u8 = 64;
    /// RFC 6793.
    pub const FOUR_OCTET_AS: u8 = 65;
    /// RFC 7911.
    pub const ADD_PATH: u8 = 69;
    /// RFC 7313.
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
}

/// Per-family entry of the graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrFamily {
    /// The family.
    pub afi_safi: AfiSafi,
    /// F bit: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// Graceful restart capability value (RFC 4724 §3, RFC 8538 §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted.
    pub restart_state: bool,
    /// N bit (RFC 8538): the sender supports graceful restart for NOTIFICATIONs.
    pub notification: bool,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Families whose routes the sender keeps across a restart.
    pub families: Vec<GrFamily>,
}

/// One entry of the extended next hop capability (RFC 8950 §3): NLRI of `afi_safi` may carry a
/// next hop of `next_hop_afi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtNextHop {
    /// The NLRI family.
    pub afi_safi: AfiSafi,
    /// The next hop's AFI (2 for IPv6).
    pub next_hop_afi: u16,
}

/// A capability (RFC 5492 §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Code 1: the sender can exchange routes of this family.
    Multiprotocol(AfiSafi),
    /// Code 2: ROUTE-REFRESH supported.
    RouteRefresh,
    /// Code 70: enhanced route refresh (BoRR/EoRR) supported.
    EnhancedRouteRefresh,
    /// Code 65: the sender's real (4-octet) AS.
    FourOctetAs(u32),
    /// Code 64.
    GracefulRestart(GracefulRestart),
    /// Code 5.
    ExtendedNextHop(Vec<ExtNextHop>),
    /// Any other code (add-path, FQDN, LLGR, ...) or a non-canonical value, as received.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Self::Multiprotocol(_) => code::MULTIPROTOCOL,
            Self::RouteRefresh => code::ROUTE_REFRESH,
            Self::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Self::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Self::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Self::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Self::Unknown { code, .. } => *code,
        }
    }

    /// Decode one capability value. Never fails: what does not parse is `Unknown`.
    pub fn decode(code: u8, v: &[u8]) -> Self {
        Self::decode_typed(code, v).unwrap_or_else(|| Self::Unknown {
            code,
            value: v.to_vec(),
        })
    }

    fn decode_typed(c: u8, v: &[u8]) -> Option<Self> {
        Some(match (c, v) {
            (code::MULTIPROTOCOL, [a0, a1, 0, safi]) => {
                Self::Multiprotocol(AfiSafi::new(u16::from_be_bytes([*a0, *a1]), *safi))
            }
            (code::ROUTE_REFRESH, []) => Self::RouteRefresh,
            (code::ENHANCED_ROUTE_REFRESH, []) => Self::EnhancedRouteRefresh,
            (code::FOUR_OCTET_AS, [a, b, c, d]) => {
                Self::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d]))
            }
            (code::GRACEFUL_RESTART, [hi, lo, rest @ ..]) => {
                if hi & 0x30 != 0 || rest.len() % 4 != 0 {
                    return None;
                }
                let mut families = Vec::new();
                for e in rest.chunks_exact(4) {
                    if e[3] & 0x7f != 0 {
                        return None;
                    }
                    families.push(GrFamily {
                        afi_safi: AfiSafi::new(u16::from_be_bytes([e[0], e[1]]), e[2]),
                        forwarding_preserved: e[3] & 0x80 != 0,
                    });
                }
                Self::GracefulRestart(GracefulRestart {
                    restart_state: hi & 0x80 != 0,
                    notification: hi & 0x40 != 0,
                    restart_time: u16::from_be_bytes([hi & 0x0f, *lo]),
                    families,
                })
            }
            (code::EXTENDED_NEXT_HOP, v) if !v.is_empty() && v.len() % 6 == 0 => {
                let mut out = Vec::new();
                for e in v.chunks_exact(6) {
                    if e[2] != 0 {
                        return None;
                    }
                    out.push(ExtNextHop {
                        afi_safi: AfiSafi::new(u16::from_be_bytes([e[0], e[1]]), e[3]),
                        next_hop_afi: u16::from_be_bytes([e[4], e[5]]),
                    });
                }
                Self::ExtendedNextHop(out)
            }
            _ => return None,
        })
    }

    /// Encode as code, length, value (values over 255 octets are cut; none of the typed ones
    /// can be that long in a 4096-octet OPEN).
    pub fn encode(&self, out: &mut BytesMut) {
        let mut v = BytesMut::new();
        match self {
            Self::Multiprotocol(f) => {
                v.put_u16(f.afi());
                v.put_u8(0);
                v.put_u8(f.safi());
            }
            Self::RouteRefresh | Self::EnhancedRouteRefresh => {}
            Self::FourOctetAs(asn) => v.put_u32(*asn),
            Self::GracefulRestart(gr) => {
                let mut hi = ((gr.restart_time >> 8) & 0x0f) as u8;
                if gr.restart_state {
                    hi |= 0x80;
                }
                if gr.notification {
                    hi |= 0x40;
                }
                v.put_u8(hi);
                v.put_u8(gr.restart_time as u8);
                for f in &gr.families {
                    v.put_u16(f.afi_safi.afi());
                    v.put_u8(f.afi_safi.safi());
                    v.put_u8(if f.forwarding_preserved { 0x80 } else { 0 });
                }
            }
            Self::ExtendedNextHop(entries) => {
                for e in entries {
                    v.put_u16(e.afi_safi.afi());
                    v.put_u16(e.afi_safi.safi() as u16);
                    v.put_u16(e.next_hop_afi);
                }
            }
            Self::Unknown { value, .. } => v.put_slice(value),
        }
        let len = v.len().min(255);
        out.put_u8(self.code());
        out.put_u8(len as u8);
        out.put_slice(&v[..len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(code: u8, v: &[u8]) -> Capability {
        let c = Capability::decode(code, v);
        let mut out = BytesMut::new();
        c.encode(&mut out);
        assert_eq!(out[0], code);
        assert_eq!(&out[2..], v, "{c:?}");
        c
    }

    #[test]
    fn typed_capabilities() {
        assert_eq!(
            round_trip(1, &[0, 2, 0, 1]),
            Capability::Multiprotocol(AfiSafi::Ipv6Unicast)
        );
        assert_eq!(
            round_trip(65, &[0xfa, 0x56, 0xea, 0x01]),
            Capability::FourOctetAs(4200000001)
        );
        assert_eq!(round_trip(70, &[]), Capability::EnhancedRouteRefresh);
        let gr = round_trip(64, &[0xc0, 0x78, 0, 1, 1, 0x80, 0, 2, 1, 0]);
        let Capability::GracefulRestart(gr) = gr else {
            panic!("{gr:?}")
        };
        assert!(gr.restart_state && gr.notification);
        assert_eq!(gr.restart_time, 120);
        assert!(gr.families[0].forwarding_preserved && !gr.families[1].forwarding_preserved);
        assert_eq!(
            round_trip(5, &[0, 1, 0, 1, 0, 2]),
            Capability::ExtendedNextHop(vec![ExtNextHop {
                afi_safi: AfiSafi::Ipv4Unicast,
                next_hop_afi: 2
            }])
        );
    }

    #[test]
    fn non_canonical_values_stay_raw() {
        // reserved octet set, route refresh with a value, GR with reserved flag bits
        for (code, v) in [
            (1, &[0, 1, 9, 1][..]),
            (2, &[0][..]),
            (64, &[0x10, 0][..]),
            (69, &[0, 1, 1, 3][..]),
        ] {
            assert!(
                matches!(round_trip(code, v), Capability::Unknown { .. }),
                "{code}"
            );
        }
    }
}
