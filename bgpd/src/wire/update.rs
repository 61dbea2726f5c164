//! UPDATE (RFC 4271 §4.3) with the revised error handling of RFC 7606, and End-of-RIB (RFC 4724
//! §2).
//!
//! ```text
//!   withdrawn len(2) withdrawn routes | total attr len(2) path attributes | NLRI (rest)
//!
//!   decode ──> Err(DecodeError)               session reset: lengths inconsistent with the
//!          │                                  message, NLRI/withdrawn unparsable, MP_* malformed
//!          │                                  or repeated, unrecognised well-known attribute
//!          └─> Ok(Update { errors, .. })      errors empty: fine
//!                                             errors' strongest action (Update::action):
//!                                               AttributeDiscard: offending attributes removed
//!                                               TreatAsWithdraw: withdraw every prefix in it
//! ```
//!
//! In treat-as-withdraw the returned UPDATE still holds every prefix that could be parsed (NLRI
//! field, withdrawn routes, MP_REACH/MP_UNREACH); [`Update::treat_as_withdraw`] lists them.
//! RFC 7606's "AFI/SAFI disable" is not offered: where it applies, this decoder resets.

use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};

use super::HEADER_LEN;
use super::aspath::AsPath;
use super::attr::{
    Attr, AttrFlags, Community, LargeCommunity, MpReach, MpUnreach, Origin, PathAttr, attr_type,
    decode_value, expected_flags, wire_flags,
};
use super::error::{DecodeError, ErrorAction, ErrorKind};
use super::family::{AfiSafi, Nlri, decode_prefixes, encode_prefixes};
use super::{DecodeCx, EncodeCx};

/// An UPDATE message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 unicast routes.
    pub withdrawn: Vec<Nlri<Ipv4Net>>,
    /// Path attributes in wire order (malformed ones removed; see `errors`).
    pub attrs: Vec<PathAttr>,
    /// Reachable IPv4 unicast routes (the NLRI field).
    pub nlri: Vec<Nlri<Ipv4Net>>,
    /// RFC 7606 findings that did not reset the session; empty for locally built messages and
    /// ignored when encoding.
    pub errors: Vec<DecodeError>,
}

/// Every prefix of an UPDATE handled as "treat-as-withdraw" (RFC 7606 §2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Withdrawn {
    /// IPv4 unicast prefixes (withdrawn field, NLRI field, MP_REACH and MP_UNREACH).
    pub ipv4: Vec<Nlri<Ipv4Net>>,
    /// IPv6 unicast prefixes (MP_REACH and MP_UNREACH).
    pub ipv6: Vec<Nlri<Ipv6Net>>,
    /// Other families that had NLRI in the message (kept raw, so not listed by prefix).
    pub other: Vec<AfiSafi>,
}

impl Update {
    /// The End-of-RIB marker for a family (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an
    /// UPDATE with only an empty MP_UNREACH_NLRI otherwise.
    pub fn end_of_rib(family: AfiSafi) -> Self {
        let unreach = match family {
            AfiSafi::Ipv4Unicast => return Self::default(),
            AfiSafi::Ipv6Unicast => MpUnreach::Ipv6Unicast(Vec::new()),
            AfiSafi::Other { afi, safi } => MpUnreach::Other {
                afi,
                safi,
                withdrawn: Vec::new(),
            },
        };
        Self {
            attrs: vec![PathAttr::new(Attr::MpUnreach(unreach))],
            ..Self::default()
        }
    }

    /// The family this UPDATE marks End-of-RIB for, if it is such a marker (RFC 4724 §2).
    pub fn is_end_of_rib(&self) -> Option<AfiSafi> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() || !self.errors.is_empty() {
            return None;
        }
        match self.attrs.as_slice() {
            [] => Some(AfiSafi::Ipv4Unicast),
            [
                PathAttr {
                    attr: Attr::MpUnreach(u),
                    ..
                },
            ] if u.is_empty() => Some(u.afi_safi()),
            _ => None,
        }
    }

    /// The strongest RFC 7606 action among `errors` (`None` when there are none).
    pub fn action(&self) -> Option<ErrorAction> {
        self.errors.iter().map(|e| e.action).max()
    }

    /// Every prefix in the message, for "treat-as-withdraw" (RFC 7606 §2).
    pub fn treat_as_withdraw(&self) -> Withdrawn {
        let mut w = Withdrawn {
            ipv4: self.withdrawn.clone(),
            ..Withdrawn::default()
        };
        w.ipv4.extend_from_slice(&self.nlri);
        for a in &self.attrs {
            match &a.attr {
                Attr::MpReach(MpReach::Ipv4Unicast { nlri, .. }) => w.ipv4.extend_from_slice(nlri),
                Attr::MpReach(MpReach::Ipv6Unicast { nlri, .. }) => w.ipv6.extend_from_slice(nlri),
                Attr::MpUnreach(MpUnreach::Ipv4Unicast(n)) => w.ipv4.extend_from_slice(n),
                Attr::MpUnreach(MpUnreach::Ipv6Unicast(n)) => w.ipv6.extend_from_slice(n),
                Attr::MpReach(r @ MpReach::Other { .. }) => w.other.push(r.afi_safi()),
                Attr::MpUnreach(u @ MpUnreach::Other { .. }) => w.other.push(u.afi_safi()),
                _ => {}
            }
        }
        w
    }

    /// The first attribute of a type.
    pub fn get(&self, type_code: u8) -> Option<&Attr> {
        self.attrs
            .iter()
            .map(|a| &a.attr)
            .find(|a| a.type_code() == type_code)
    }

    /// ORIGIN.
    pub fn origin(&self) -> Option<Origin> {
        match self.get(attr_type::ORIGIN) {
            Some(Attr::Origin(o)) => Some(*o),
            _ => None,
        }
    }

    /// AS_PATH.
    pub fn as_path(&self) -> Option<&AsPath> {
        match self.get(attr_type::AS_PATH) {
            Some(Attr::AsPath(p)) => Some(p),
            _ => None,
        }
    }

    /// NEXT_HOP (IPv4 NLRI field).
    pub fn next_hop(&self) -> Option<std::net::Ipv4Addr> {
        match self.get(attr_type::NEXT_HOP) {
            Some(Attr::NextHop(a)) => Some(*a),
            _ => None,
        }
    }

    /// MULTI_EXIT_DISC.
    pub fn med(&self) -> Option<u32> {
        match self.get(attr_type::MED) {
            Some(Attr::Med(m)) => Some(*m),
            _ => None,
        }
    }

    /// LOCAL_PREF.
    pub fn local_pref(&self) -> Option<u32> {
        match self.get(attr_type::LOCAL_PREF) {
            Some(Attr::LocalPref(m)) => Some(*m),
            _ => None,
        }
    }

    /// COMMUNITIES (empty if absent).
    pub fn communities(&self) -> &[Community] {
        match self.get(attr_type::COMMUNITIES) {
            Some(Attr::Communities(c)) => c,
            _ => &[],
        }
    }

    /// LARGE_COMMUNITIES (empty if absent).
    pub fn large_communities(&self) -> &[LargeCommunity] {
        match self.get(attr_type::LARGE_COMMUNITIES) {
            Some(Attr::LargeCommunities(c)) => c,
            _ => &[],
        }
    }

    /// MP_REACH_NLRI.
    pub fn mp_reach(&self) -> Option<&MpReach> {
        match self.get(attr_type::MP_REACH_NLRI) {
            Some(Attr::MpReach(r)) => Some(r),
            _ => None,
        }
    }

    /// MP_UNREACH_NLRI.
    pub fn mp_unreach(&self) -> Option<&MpUnreach> {
        match self.get(attr_type::MP_UNREACH_NLRI) {
            Some(Attr::MpUnreach(u)) => Some(u),
            _ => None,
        }
    }

    /// Decode an UPDATE body (after the 19-octet header) per RFC 4271 §6.3 as revised by
    /// RFC 7606. Offsets in errors count from the start of the message.
    pub fn decode_body(body: &[u8], cx: &DecodeCx) -> Result<Self, DecodeError> {
        let at = |i: usize| HEADER_LEN + i;
        let list =
            |reason, i| DecodeError::new(ErrorKind::MalformedAttributeList { reason }, at(i));
        let Some(w) = body.get(..2) else {
            return Err(list("UPDATE shorter than 4 octets", 0));
        };
        let wd_len = u16::from_be_bytes([w[0], w[1]]) as usize;
        let Some(wd) = body.get(2..2 + wd_len) else {
            return Err(list("withdrawn routes length overruns the message", 0));
        };
        let p = 2 + wd_len;
        let Some(t) = body.get(p..p + 2) else {
            return Err(list("total path attribute length overruns the message", p));
        };
        let attr_len = u16::from_be_bytes([t[0], t[1]]) as usize;
        let Some(attr_buf) = body.get(p + 2..p + 2 + attr_len) else {
            return Err(list("total path attribute length overruns the message", p));
        };
        let nlri_at = p + 2 + attr_len;
        let v4_add_path = cx.add_path.contains(&AfiSafi::Ipv4Unicast);
        let net = |reason, i| DecodeError::new(ErrorKind::InvalidNetworkField { reason }, at(i));
        let withdrawn = decode_prefixes(wd, v4_add_path).map_err(|e| net(e.reason, 2 + e.at))?;
        let nlri = decode_prefixes(&body[nlri_at..], v4_add_path)
            .map_err(|e| net(e.reason, nlri_at + e.at))?;

        let mut attrs = Vec::new();
        let mut errors = Vec::new();
        let mut seen = [false; 256];
        let mut i = 0;
        while i < attr_buf.len() {
            let rest = &attr_buf[i..];
            let off = at(p + 2 + i);
            let hdr = if rest[0] & AttrFlags::EXTENDED_LENGTH != 0 {
                4
            } else {
                3
            };
            // RFC 7606 §4: an attribute that does not fit makes the UPDATE treat-as-withdraw;
            // the Total Path Attribute Length still locates the NLRI field.
            let Some(h) = rest.get(..hdr) else {
                errors.push(
                    DecodeError::new(
                        ErrorKind::MalformedAttributeList {
                            reason: "too few octets left for an attribute",
                        },
                        off,
                    )
                    .with_data(rest)
                    .with_action(ErrorAction::TreatAsWithdraw),
                );
                break;
            };
            // the four unused low bits are ignored on receipt (RFC 4271 §4.3) and written as 0
            let (flags, t) = (h[0] & 0xf0, h[1]);
            let len = if hdr == 4 {
                u16::from_be_bytes([h[2], h[3]]) as usize
            } else {
                h[2] as usize
            };
            let Some(raw) = rest.get(..hdr + len) else {
                errors.push(
                    DecodeError::new(
                        ErrorKind::MalformedAttributeList {
                            reason: "attribute overruns the path attributes",
                        },
                        off,
                    )
                    .with_attr(t, rest)
                    .with_action(ErrorAction::TreatAsWithdraw),
                );
                break;
            };
            let value = &raw[hdr..];
            i += hdr + len;
            let is_mp = t == attr_type::MP_REACH_NLRI || t == attr_type::MP_UNREACH_NLRI;
            if seen[t as usize] {
                // RFC 7606 §3 (g)
                if is_mp {
                    return Err(DecodeError::new(
                        ErrorKind::MalformedAttributeList {
                            reason: "MP_REACH_NLRI or MP_UNREACH_NLRI repeated",
                        },
                        off,
                    )
                    .with_attr(t, raw));
                }
                errors.push(
                    DecodeError::new(ErrorKind::DuplicateAttribute, off)
                        .with_attr(t, raw)
                        .with_action(ErrorAction::AttributeDiscard),
                );
                continue;
            }
            seen[t as usize] = true;
            let attr_err = |kind, action| {
                DecodeError::new(kind, off)
                    .with_attr(t, raw)
                    .with_action(action)
            };
            let mut flags_ok = true;
            match expected_flags(t) {
                None if flags & AttrFlags::OPTIONAL == 0 => {
                    return Err(attr_err(
                        ErrorKind::UnrecognizedWellKnown,
                        ErrorAction::SessionReset,
                    ));
                }
                None => {}
                Some(ot) if flags & (AttrFlags::OPTIONAL | AttrFlags::TRANSITIVE) != ot => {
                    // RFC 7606 §3 (c): treat-as-withdraw; RFC 6793 §6 makes AS4_* discardable
                    let action = match t {
                        attr_type::AS4_PATH | attr_type::AS4_AGGREGATOR => {
                            ErrorAction::AttributeDiscard
                        }
                        _ => ErrorAction::TreatAsWithdraw,
                    };
                    errors.push(attr_err(ErrorKind::AttributeFlags { flags }, action));
                    if !is_mp {
                        continue;
                    }
                    // MP_* are still parsed: their prefixes are needed to withdraw them
                    flags_ok = false;
                }
                Some(_) => {}
            }
            if t == attr_type::LOCAL_PREF && cx.ebgp {
                errors.push(attr_err(
                    ErrorKind::LocalPrefFromExternal,
                    ErrorAction::AttributeDiscard,
                ));
                continue;
            }
            if (t == attr_type::AS4_PATH || t == attr_type::AS4_AGGREGATOR) && cx.four_octet_as {
                errors.push(attr_err(
                    ErrorKind::UnexpectedAs4Attribute,
                    ErrorAction::AttributeDiscard,
                ));
                continue;
            }
            match decode_value(t, value, cx) {
                None => attrs.push(PathAttr {
                    flags: AttrFlags(flags),
                    attr: Attr::Unknown {
                        type_code: t,
                        value: value.to_vec(),
                    },
                }),
                Some(Ok(attr)) => attrs.push(PathAttr {
                    flags: AttrFlags(if flags_ok {
                        wire_flags(t, flags)
                    } else {
                        expected_flags(t).unwrap_or(flags)
                    }),
                    attr,
                }),
                Some(Err(f)) => {
                    let e =
                        DecodeError::new(f.kind, if f.at == 0 { off } else { off + hdr + f.at })
                            .with_attr(t, raw)
                            .with_action(f.action);
                    if f.action == ErrorAction::SessionReset {
                        return Err(e);
                    }
                    errors.push(e);
                }
            }
        }

        // RFC 4271 §6.3 / RFC 7606 §3 (d): mandatory attributes when there is reachable NLRI
        let reachable = !nlri.is_empty() || seen[attr_type::MP_REACH_NLRI as usize];
        let mut required = Vec::new();
        if reachable {
            required.extend([attr_type::ORIGIN, attr_type::AS_PATH]);
        }
        if !nlri.is_empty() {
            required.push(attr_type::NEXT_HOP);
        }
        for t in required {
            if !seen[t as usize] {
                errors.push(
                    DecodeError::new(ErrorKind::MissingWellKnown { type_code: t }, at(p))
                        .with_data([t])
                        .with_action(ErrorAction::TreatAsWithdraw),
                );
            }
        }
        Ok(Self {
            withdrawn,
            attrs,
            nlri,
            errors,
        })
    }

    /// Encode the body. Path identifiers are written for the families in `cx.add_path`.
    pub fn encode_body(&self, cx: &EncodeCx, out: &mut BytesMut) {
        let v4_add_path = cx.add_path.contains(&AfiSafi::Ipv4Unicast);
        let start = out.len();
        out.put_u16(0);
        encode_prefixes(&self.withdrawn, v4_add_path, out);
        let wd_len = out.len() - start - 2;
        out[start..start + 2].copy_from_slice(&(wd_len as u16).to_be_bytes());
        let start = out.len();
        out.put_u16(0);
        for a in &self.attrs {
            a.encode(cx, out);
        }
        let attr_len = out.len() - start - 2;
        out[start..start + 2].copy_from_slice(&(attr_len as u16).to_be_bytes());
        encode_prefixes(&self.nlri, v4_add_path, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_rib_markers() {
        for f in [
            AfiSafi::Ipv4Unicast,
            AfiSafi::Ipv6Unicast,
            AfiSafi::new(1, 128),
        ] {
            let u = Update::end_of_rib(f);
            assert_eq!(u.is_end_of_rib(), Some(f));
            let mut out = BytesMut::new();
            u.encode_body(&EncodeCx::default(), &mut out);
            let back = Update::decode_body(&out, &DecodeCx::default()).unwrap();
            assert_eq!(back.is_end_of_rib(), Some(f));
        }
        let mut out = BytesMut::new();
        Update::end_of_rib(AfiSafi::Ipv6Unicast).encode_body(&EncodeCx::default(), &mut out);
        assert_eq!(&out[..], &[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]);
        let not = Update {
            nlri: vec![Nlri::new("198.18.0.0/24".parse().unwrap())],
            ..Update::default()
        };
        assert_eq!(not.is_end_of_rib(), None);
    }

    #[test]
    fn flags_are_stored_as_they_will_be_written() {
        // found by the fuzzer: Partial (and low bits) on non-transitive MP_UNREACH_NLRI
        let body = [0, 0, 0, 11, 0xbe, 15, 0, 7, 0, 1, 1, 24, 198, 18, 81];
        let u = Update::decode_body(&body, &DecodeCx::default()).unwrap();
        assert_eq!(u.attrs[0].flags, AttrFlags(0x90));
        let mut out = BytesMut::new();
        u.encode_body(&EncodeCx::default(), &mut out);
        assert_eq!(Update::decode_body(&out, &DecodeCx::default()).unwrap(), u);
    }
}
