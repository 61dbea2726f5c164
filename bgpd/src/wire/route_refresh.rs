//! ROUTE-REFRESH (RFC 2918 §3) with the Message Subtype of enhanced route refresh (RFC 7313 §3.2).
//!
//! ```text
//!   AFI(2) subtype(1) SAFI(1) [ORF entries, RFC 5291, subtype 0 only]
//! ```

use bytes::{BufMut, BytesMut};

use super::HEADER_LEN;
use super::error::{DecodeError, ErrorKind};
use super::family::AfiSafi;

/// Message Subtype (RFC 7313 §3.2; the reserved octet of RFC 2918).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteRefreshSubtype {
    /// 0: a plain route refresh request.
    Normal,
    /// 1: Beginning of Route Refresh (BoRR).
    BeginningOfRouteRefresh,
    /// 2: End of Route Refresh (EoRR).
    EndOfRouteRefresh,
    /// 3..=255: reserved; RFC 7313 says the message is ignored.
    Reserved(u8),
}

impl RouteRefreshSubtype {
    /// From the wire value.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Normal,
            1 => Self::BeginningOfRouteRefresh,
            2 => Self::EndOfRouteRefresh,
            x => Self::Reserved(x),
        }
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Normal => 0,
            Self::BeginningOfRouteRefresh => 1,
            Self::EndOfRouteRefresh => 2,
            Self::Reserved(x) => x,
        }
    }
}

/// A ROUTE-REFRESH message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub afi_safi: AfiSafi,
    /// Normal, BoRR or EoRR.
    pub subtype: RouteRefreshSubtype,
    /// Octets after the SAFI (ORF entries of RFC 5291 with subtype 0, or anything after a
    /// reserved subtype), as received.
    pub trailing: Vec<u8>,
}

impl RouteRefresh {
    /// A plain request for a family.
    pub fn new(afi_safi: AfiSafi) -> Self {
        Self {
            afi_safi,
            subtype: RouteRefreshSubtype::Normal,
            trailing: Vec::new(),
        }
    }

    /// Decode the body (at least 4 octets, which framing guarantees). BoRR/EoRR with a body other
    /// than 4 octets is ROUTE-REFRESH Message Error / Invalid Message Length with the whole
    /// message as data (RFC 7313 §5); `message` is the whole message for that purpose.
    pub fn decode_body(body: &[u8], message: &[u8]) -> Result<Self, DecodeError> {
        let length = message.len() as u16;
        let bad = || {
            DecodeError::new(ErrorKind::RouteRefreshLength { length }, HEADER_LEN)
                .with_data(message)
        };
        let Some(b) = body.get(..4) else {
            return Err(bad());
        };
        let subtype = RouteRefreshSubtype::from_u8(b[2]);
        let trailing = body[4..].to_vec();
        if !trailing.is_empty()
            && matches!(
                subtype,
                RouteRefreshSubtype::BeginningOfRouteRefresh
                    | RouteRefreshSubtype::EndOfRouteRefresh
            )
        {
            return Err(bad());
        }
        Ok(Self {
            afi_safi: AfiSafi::new(u16::from_be_bytes([b[0], b[1]]), b[3]),
            subtype,
            trailing,
        })
    }

    /// Encode the body.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.afi_safi.afi());
        out.put_u8(self.subtype.to_u8());
        out.put_u8(self.afi_safi.safi());
        out.put_slice(&self.trailing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borr_with_extra_octets_is_invalid_length() {
        let mut msg = vec![0xff; 16];
        msg.extend_from_slice(&[0, 24, 5, 0, 1, 1, 1, 9]);
        let e = RouteRefresh::decode_body(&msg[19..], &msg).unwrap_err();
        assert_eq!(e.kind, ErrorKind::RouteRefreshLength { length: 24 });
        assert_eq!(e.data, msg);
        // subtype 0 keeps trailing ORF octets
        let r = RouteRefresh::decode_body(&[0, 2, 0, 1, 7, 7], &[]).unwrap();
        assert_eq!(
            (r.afi_safi, r.subtype, r.trailing),
            (
                AfiSafi::Ipv6Unicast,
                RouteRefreshSubtype::Normal,
                vec![7, 7]
            )
        );
    }
}
