//! OPEN (RFC 4271 §4.2) with optional parameters, including the extended optional parameters
//! length of RFC 9072, the OPEN checks of RFC 4271 §6.2, and capability negotiation into the
//! decode/encode contexts.
//!
//! ```text
//!   version(1) my AS(2) hold time(2) BGP identifier(4) opt len(1) params
//!   param: type(1) len(1) value            RFC 9072: opt len = 255, type = 255, ext len(2),
//!                                                    then params as type(1) len(2) value
//! ```

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::capability::{Capability, code};
use super::error::{DecodeError, ErrorKind};
use super::family::AfiSafi;
use super::{DecodeCx, EncodeCx, HEADER_LEN, MAX_MESSAGE_LEN};
use crate::wire::aspath::AS_TRANS;

/// The BGP version we speak.
pub const BGP_VERSION: u8 = 4;
/// Optional parameter type: Capabilities (RFC 5492).
pub const PARAM_CAPABILITIES: u8 = 2;

/// An optional parameter (RFC 4271 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OptParam {
    /// Type 2: one or more capabilities (speakers differ: BIRD sends one parameter with all of
    /// them, FRR one per capability; both are kept as received).
    Capabilities(Vec<Capability>),
    /// Any other type (deprecated authentication, ...), as received; [`Open::validate`] rejects it.
    Unknown {
        /// Parameter type.
        param_type: u8,
        /// Parameter value.
        value: Vec<u8>,
    },
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Open {
    /// Version (4).
    pub version: u8,
    /// My Autonomous System; AS_TRANS when the real AS needs 4 octets (RFC 6793 §4.1).
    pub my_as: u16,
    /// Proposed hold time in seconds (0 or >= 3).
    pub hold_time: u16,
    /// BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// Optional parameters in wire order.
    pub params: Vec<OptParam>,
    /// The parameters were (or are to be) sent in the RFC 9072 extended format. Encoding also
    /// switches to it when the parameters do not fit 255 octets.
    pub extended_params: bool,
}

/// What the local configuration expects of a peer's OPEN (RFC 4271 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCheck {
    /// Our AS (to tell iBGP from eBGP for the identifier check).
    pub local_as: u32,
    /// Our BGP Identifier.
    pub local_id: Ipv4Addr,
    /// The configured peer AS; `None` accepts any (non-zero) AS.
    pub peer_as: Option<u32>,
}

impl Open {
    /// An OPEN for `asn` with one Capabilities parameter holding `caps` (include
    /// `Capability::FourOctetAs(asn)` yourself; `my_as` is AS_TRANS when `asn` needs 4 octets).
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, caps: Vec<Capability>) -> Self {
        Self {
            version: BGP_VERSION,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS as u16),
            hold_time,
            bgp_id,
            params: if caps.is_empty() {
                vec![]
            } else {
                vec![OptParam::Capabilities(caps)]
            },
            extended_params: false,
        }
    }

    /// All capabilities, across parameters.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.params.iter().flat_map(|p| match p {
            OptParam::Capabilities(c) => c.as_slice(),
            OptParam::Unknown { .. } => &[],
        })
    }

    /// The sender's AS: the 4-octet AS capability if present (RFC 6793 §4.1), else `my_as`.
    pub fn asn(&self) -> u32 {
        self.capabilities()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(self.my_as as u32)
    }

    /// Whether the 4-octet AS capability is present.
    pub fn four_octet_as(&self) -> bool {
        self.capabilities()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
    }

    /// Multiprotocol families advertised (RFC 4760 §8: none means IPv4 unicast only).
    pub fn families(&self) -> Vec<AfiSafi> {
        let v: Vec<AfiSafi> = self
            .capabilities()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if v.is_empty() {
            vec![AfiSafi::Ipv4Unicast]
        } else {
            v
        }
    }

    /// Decode an OPEN body (after the header). Only the version is checked here, because the
    /// layout of other versions is unknown; the rest of RFC 4271 §6.2 is [`Open::validate`].
    pub fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let at = |i: usize| HEADER_LEN + i;
        let (Some(&version), Some(fixed)) = (body.first(), body.get(..10)) else {
            return Err(DecodeError::new(
                ErrorKind::MalformedOpen {
                    reason: "OPEN too short",
                },
                at(0),
            ));
        };
        if version != BGP_VERSION {
            return Err(
                DecodeError::new(ErrorKind::UnsupportedVersion { version }, at(0))
                    .with_data([0, BGP_VERSION]),
            );
        }
        let my_as = u16::from_be_bytes([fixed[1], fixed[2]]);
        let hold_time = u16::from_be_bytes([fixed[3], fixed[4]]);
        let bgp_id = Ipv4Addr::new(fixed[5], fixed[6], fixed[7], fixed[8]);
        let opt_len = fixed[9] as usize;
        let mut rest = &body[10..];
        let mut extended_params = false;
        let mut off = 10;
        let malformed = |reason, i| DecodeError::new(ErrorKind::MalformedOpen { reason }, at(i));
        if opt_len == 255 && rest.first() == Some(&255) {
            // RFC 9072 §2
            let Some(l) = rest.get(1..3) else {
                return Err(malformed("extended parameters length missing", off));
            };
            let ext_len = u16::from_be_bytes([l[0], l[1]]) as usize;
            rest = &rest[3..];
            off += 3;
            extended_params = true;
            if rest.len() != ext_len {
                return Err(malformed(
                    "extended parameters length disagrees with the message",
                    off,
                ));
            }
        } else if rest.len() != opt_len {
            return Err(malformed(
                "optional parameters length disagrees with the message",
                off,
            ));
        }
        let hdr = if extended_params { 3 } else { 2 };
        let mut params = Vec::new();
        while !rest.is_empty() {
            let Some(h) = rest.get(..hdr) else {
                return Err(malformed("truncated optional parameter header", off));
            };
            let len = if extended_params {
                u16::from_be_bytes([h[1], h[2]]) as usize
            } else {
                h[1] as usize
            };
            let Some(value) = rest.get(hdr..hdr + len) else {
                return Err(malformed("optional parameter overruns the parameters", off));
            };
            params.push(if h[0] == PARAM_CAPABILITIES {
                let mut caps = Vec::new();
                let mut v = value;
                while !v.is_empty() {
                    let (Some(&c), Some(&l)) = (v.first(), v.get(1)) else {
                        return Err(malformed("truncated capability", off));
                    };
                    let Some(cv) = v.get(2..2 + l as usize) else {
                        return Err(malformed("capability overruns its parameter", off));
                    };
                    caps.push(Capability::decode(c, cv));
                    v = &v[2 + l as usize..];
                }
                OptParam::Capabilities(caps)
            } else {
                OptParam::Unknown {
                    param_type: h[0],
                    value: value.to_vec(),
                }
            });
            rest = &rest[hdr + len..];
            off += hdr + len;
        }
        Ok(Self {
            version,
            my_as,
            hold_time,
            bgp_id,
            params,
            extended_params,
        })
    }

    /// Encode the body.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.version);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_id.octets());
        let values: Vec<(u8, BytesMut)> = self
            .params
            .iter()
            .map(|p| match p {
                OptParam::Capabilities(caps) => {
                    let mut v = BytesMut::new();
                    caps.iter().for_each(|c| c.encode(&mut v));
                    (PARAM_CAPABILITIES, v)
                }
                OptParam::Unknown { param_type, value } => {
                    (*param_type, BytesMut::from(&value[..]))
                }
            })
            .collect();
        let short_len: usize = values.iter().map(|(_, v)| 2 + v.len()).sum();
        let extended =
            self.extended_params || short_len > 255 || values.iter().any(|(_, v)| v.len() > 255);
        if extended {
            out.put_u8(255);
            out.put_u8(255);
            out.put_u16(values.iter().map(|(_, v)| 3 + v.len()).sum::<usize>() as u16);
            for (t, v) in values {
                out.put_u8(t);
                out.put_u16(v.len() as u16);
                out.put_slice(&v);
            }
        } else {
            out.put_u8(short_len as u8);
            for (t, v) in values {
                out.put_u8(t);
                out.put_u8(v.len() as u8);
                out.put_slice(&v);
            }
        }
    }

    /// The checks of RFC 4271 §6.2 that need local configuration (the version is checked by the
    /// decoder): peer AS (RFC 6793 §4.1: the 4-octet capability when present; 0 is never valid,
    /// RFC 7607), hold time 1 or 2, BGP Identifier 0 or ours on iBGP (RFC 6286 §2.2), and
    /// optional parameters other than Capabilities. Errors carry offsets into the message.
    pub fn validate(&self, check: &OpenCheck) -> Result<(), DecodeError> {
        let asn = self.asn();
        if asn == 0 || self.my_as == 0 || check.peer_as.is_some_and(|p| p != asn) {
            return Err(DecodeError::new(
                ErrorKind::BadPeerAs { asn },
                HEADER_LEN + 1,
            ));
        }
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(DecodeError::new(
                ErrorKind::UnacceptableHoldTime {
                    hold_time: self.hold_time,
                },
                HEADER_LEN + 3,
            ));
        }
        if self.bgp_id.is_unspecified() || (asn == check.local_as && self.bgp_id == check.local_id)
        {
            return Err(DecodeError::new(
                ErrorKind::BadBgpIdentifier { id: self.bgp_id },
                HEADER_LEN + 5,
            ));
        }
        if let Some(OptParam::Unknown { param_type, .. }) = self
            .params
            .iter()
            .find(|p| matches!(p, OptParam::Unknown { .. }))
        {
            return Err(DecodeError::new(
                ErrorKind::UnsupportedOptionalParameter {
                    param_type: *param_type,
                },
                HEADER_LEN + 10,
            ));
        }
        Ok(())
    }
}

/// The add-path families of an OPEN (RFC 7911 §4; kept as `Capability::Unknown` code 69) with
/// their send/receive bits (1 receive, 2 send, 3 both).
fn add_path(open: &Open) -> Vec<(AfiSafi, u8)> {
    open.capabilities()
        .filter_map(|c| match c {
            Capability::Unknown {
                code: code::ADD_PATH,
                value,
            } => Some(value),
            _ => None,
        })
        .flat_map(|v| v.chunks_exact(4))
        .map(|e| (AfiSafi::new(u16::from_be_bytes([e[0], e[1]]), e[2]), e[3]))
        .collect()
}

fn ext_next_hop_ipv6(open: &Open) -> Vec<AfiSafi> {
    open.capabilities()
        .filter_map(|c| match c {
            Capability::ExtendedNextHop(e) => Some(e),
            _ => None,
        })
        .flatten()
        .filter(|e| e.next_hop_afi == super::family::AFI_IPV6)
        .map(|e| e.afi_safi)
        .collect()
}

/// Negotiated session parameters from both OPENs (RFC 5492 §3): 4-octet AS if both sent it
/// (RFC 6793), ADD-PATH where one side sends and the other receives (RFC 7911), IPv6 next hops
/// for the families we advertised extended next hop for (RFC 8950), eBGP if the ASes differ.
pub fn negotiate(local: &Open, remote: &Open) -> (EncodeCx, DecodeCx) {
    let four = local.four_octet_as() && remote.four_octet_as();
    let (ours, theirs) = (add_path(local), add_path(remote));
    let pairs = |we: u8, they: u8| -> Vec<AfiSafi> {
        ours.iter()
            .filter(|(f, m)| m & we != 0 && theirs.iter().any(|(g, n)| g == f && n & they != 0))
            .map(|(f, _)| *f)
            .collect()
    };
    let enc = EncodeCx {
        four_octet_as: four,
        add_path: pairs(2, 1),
        max_message_len: MAX_MESSAGE_LEN,
    };
    let dec = DecodeCx {
        four_octet_as: four,
        ebgp: local.asn() != remote.asn(),
        extended_next_hop: ext_next_hop_ipv6(local),
        add_path: pairs(1, 2),
        max_message_len: MAX_MESSAGE_LEN,
    };
    (enc, dec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Open {
        Open::new(
            4200000001,
            90,
            Ipv4Addr::new(198, 18, 0, 1),
            vec![
                Capability::FourOctetAs(4200000001),
                Capability::RouteRefresh,
            ],
        )
    }

    fn check() -> OpenCheck {
        OpenCheck {
            local_as: 65010,
            local_id: Ipv4Addr::new(198, 18, 0, 2),
            peer_as: Some(4200000001),
        }
    }

    #[test]
    fn validate_names_each_rfc4271_6_2_error() {
        assert_eq!(open().validate(&check()), Ok(()));
        let mut o = open();
        o.hold_time = 2;
        assert_eq!(
            o.validate(&check()).unwrap_err().kind,
            ErrorKind::UnacceptableHoldTime { hold_time: 2 }
        );
        let e = open()
            .validate(&OpenCheck {
                peer_as: Some(65001),
                ..check()
            })
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadPeerAs { asn: 4200000001 });
        let mut o = open();
        o.bgp_id = Ipv4Addr::UNSPECIFIED;
        assert!(matches!(
            o.validate(&check()).unwrap_err().kind,
            ErrorKind::BadBgpIdentifier { .. }
        ));
        // iBGP with our own identifier
        let ibgp = OpenCheck {
            local_as: 4200000001,
            local_id: Ipv4Addr::new(198, 18, 0, 1),
            ..check()
        };
        assert!(matches!(
            open().validate(&ibgp).unwrap_err().kind,
            ErrorKind::BadBgpIdentifier { .. }
        ));
        let mut o = open();
        o.params.push(OptParam::Unknown {
            param_type: 1,
            value: vec![0],
        });
        assert_eq!(
            o.validate(&check()).unwrap_err().kind,
            ErrorKind::UnsupportedOptionalParameter { param_type: 1 }
        );
    }

    #[test]
    fn version_and_extended_parameters() {
        let e = Open::decode_body(&[3, 0, 1, 0, 90, 1, 1, 1, 1, 0]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnsupportedVersion { version: 3 });
        assert_eq!(e.data, vec![0, 4]);
        let mut o = open();
        o.extended_params = true;
        let mut out = BytesMut::new();
        o.encode_body(&mut out);
        assert_eq!(&out[9..13], &[255, 255, 0, 11]);
        assert_eq!(Open::decode_body(&out).unwrap(), o);
    }

    #[test]
    fn negotiation() {
        let mut local = open();
        local.params.push(OptParam::Capabilities(vec![
            Capability::Unknown {
                code: code::ADD_PATH,
                value: vec![0, 1, 1, 3],
            },
            Capability::ExtendedNextHop(vec![super::super::capability::ExtNextHop {
                afi_safi: AfiSafi::Ipv4Unicast,
                next_hop_afi: 2,
            }]),
        ]));
        let mut remote = Open::new(65010, 90, Ipv4Addr::new(198, 18, 0, 2), vec![]);
        let (enc, dec) = negotiate(&local, &remote);
        assert!(!enc.four_octet_as && !dec.four_octet_as && dec.ebgp);
        assert!(dec.add_path.is_empty());
        assert_eq!(dec.extended_next_hop, vec![AfiSafi::Ipv4Unicast]);
        remote.params = vec![OptParam::Capabilities(vec![
            Capability::FourOctetAs(65010),
            Capability::Unknown {
                code: code::ADD_PATH,
                value: vec![0, 1, 1, 2],
            },
        ])];
        let (enc, dec) = negotiate(&local, &remote);
        assert!(enc.four_octet_as && dec.four_octet_as);
        assert_eq!(dec.add_path, vec![AfiSafi::Ipv4Unicast]);
        assert!(enc.add_path.is_empty());
    }
}
