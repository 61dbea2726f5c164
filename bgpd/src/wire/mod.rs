//! Our own BGP-4 codec (RFC 4271 and the extensions a node speaker needs). No I/O.
//!
//! ```text
//!   TCP bytes ──message_len()──> one message ──Message::decode(buf, &DecodeCx)──> Message
//!       (framing errors:                         │ Err(DecodeError) ─> Notification::from(&err)
//!        Connection Not Synchronized,            └ Update.errors: RFC 7606 attribute-discard /
//!        Bad Message Length/Type)                               treat-as-withdraw findings
//!   Message ──encode(&EncodeCx, &mut BytesMut)──> bytes
//!
//!   header: marker(16 x 0xff) length(2, 19..=4096) type(1)
//! ```
//!
//! The contexts carry what the OPEN exchange negotiated ([`negotiate`]): 4-octet AS numbers,
//! ADD-PATH families, extended next hop, and the message size limit. Unknown capabilities,
//! optional parameters, attributes, address families and NOTIFICATION codes are kept raw, and
//! every known item keeps what is needed to re-encode the same bytes (attribute flags, the
//! grouping of capabilities into parameters, the RFC 9072 parameter format). Differences that
//! remain: trailing bits after a prefix length are cleared (RFC 4271 §4.3 calls them
//! irrelevant), the reserved octet of MP_REACH_NLRI is written as 0, and the unused low four
//! bits of attribute flags are written as 0.

pub mod as4;
pub mod aspath;
pub mod attr;
pub mod capability;
pub mod error;
pub mod family;
pub mod notification;
pub mod open;
pub mod route_refresh;
pub mod update;

use bytes::{BufMut, BytesMut};

pub use aspath::{AS_TRANS, AsPath, Segment, SegmentType};
pub use attr::{
    Aggregator, Attr, AttrFlags, Community, ExtCommunity, Ipv6NextHop, LargeCommunity, MpReach,
    MpUnreach, NextHop, Origin, PathAttr, attr_type,
};
pub use capability::{Capability, ExtNextHop, GrFamily, GracefulRestart};
pub use error::{DecodeError, EncodeError, ErrorAction, ErrorKind};
pub use family::{AfiSafi, Nlri};
pub use notification::{
    CeaseReason, ErrorCode, FsmError, HeaderError, Notification, OpenError, RouteRefreshError,
    UpdateError,
};
pub use open::{Open, OpenCheck, OptParam, negotiate};
pub use route_refresh::{RouteRefresh, RouteRefreshSubtype};
pub use update::{Update, Withdrawn};

/// Length of the message header (RFC 4271 §4.1).
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended message capability (RFC 4271 §4.1; RFC 8654 raises it
/// to 65535 when negotiated).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// How to decode messages on a session (negotiated in the OPEN exchange, see [`negotiate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeCx {
    /// Both sides sent the 4-octet AS capability: AS_PATH and AGGREGATOR carry 4-octet ASNs and
    /// AS4_PATH / AS4_AGGREGATOR are discarded (RFC 6793 §4.1, §6).
    pub four_octet_as: bool,
    /// The peer is external: LOCAL_PREF is discarded (RFC 7606 §7.5).
    pub ebgp: bool,
    /// Families for which we accept an IPv6 next hop for IPv4 NLRI (RFC 8950), i.e. those we
    /// advertised the extended next hop capability for.
    pub extended_next_hop: Vec<AfiSafi>,
    /// Families whose NLRI carry a path identifier toward us (RFC 7911).
    pub add_path: Vec<AfiSafi>,
    /// Largest acceptable message (4096; up to 65535 with RFC 8654).
    pub max_message_len: usize,
}

impl Default for DecodeCx {
    /// RFC 4271 without extensions: 2-octet AS, no ADD-PATH, 4096-octet messages.
    fn default() -> Self {
        Self {
            four_octet_as: false,
            ebgp: false,
            extended_next_hop: Vec::new(),
            add_path: Vec::new(),
            max_message_len: MAX_MESSAGE_LEN,
        }
    }
}

/// How to encode messages on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeCx {
    /// Write 4-octet ASNs in AS_PATH and AGGREGATOR (else AS_TRANS for large ones; pair with
    /// [`as4::to_two_octet_peer`]).
    pub four_octet_as: bool,
    /// Families whose NLRI we send with a path identifier (RFC 7911).
    pub add_path: Vec<AfiSafi>,
    /// Largest message [`Message::encode_checked`] accepts.
    pub max_message_len: usize,
}

impl Default for EncodeCx {
    /// RFC 4271 without extensions.
    fn default() -> Self {
        Self {
            four_octet_as: false,
            add_path: Vec::new(),
            max_message_len: MAX_MESSAGE_LEN,
        }
    }
}

impl From<&DecodeCx> for EncodeCx {
    /// The encoding that a decoder with `cx` reads back (for tests and for re-encoding what was
    /// received).
    fn from(cx: &DecodeCx) -> Self {
        Self {
            four_octet_as: cx.four_octet_as,
            add_path: cx.add_path.clone(),
            max_message_len: cx.max_message_len,
        }
    }
}

/// Message types (RFC 4271 §4.1, RFC 2918).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1.
    Open = 1,
    /// 2.
    Update = 2,
    /// 3.
    Notification = 3,
    /// 4.
    Keepalive = 4,
    /// 5.
    RouteRefresh = 5,
}

impl MessageType {
    /// From the header's type octet.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Open,
            2 => Self::Update,
            3 => Self::Notification,
            4 => Self::Keepalive,
            5 => Self::RouteRefresh,
            _ => return None,
        })
    }

    /// Shortest valid message of this type (RFC 4271 §6.1, RFC 2918 §3).
    pub fn min_len(self) -> usize {
        match self {
            Self::Open => 29,
            Self::Update | Self::RouteRefresh => 23,
            Self::Notification => 21,
            Self::Keepalive => 19,
        }
    }
}

/// Framing for a stream reader (RFC 4271 §4.1, §6.1): given the bytes received so far, the total
/// length of the first message once its header is complete (`Ok(None)` before that), or the
/// header error. The caller waits until it holds that many bytes, then calls
/// [`Message::decode`] on exactly them.
pub fn message_len(buf: &[u8], max_len: usize) -> Result<Option<usize>, DecodeError> {
    if let Some(i) = buf.iter().take(16).position(|&b| b != 0xff) {
        return Err(DecodeError::new(ErrorKind::ConnectionNotSynchronized, i));
    }
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let length = u16::from_be_bytes([h[16], h[17]]);
    let bad_len = || {
        DecodeError::new(ErrorKind::BadMessageLength { length }, 16).with_data(length.to_be_bytes())
    };
    if (length as usize) < HEADER_LEN || length as usize > max_len {
        return Err(bad_len());
    }
    let Some(t) = MessageType::from_u8(h[18]) else {
        return Err(
            DecodeError::new(ErrorKind::BadMessageType { msg_type: h[18] }, 18).with_data([h[18]]),
        );
    };
    if (length as usize) < t.min_len()
        || (t == MessageType::Keepalive && length as usize != HEADER_LEN)
    {
        return Err(bad_len());
    }
    Ok(Some(length as usize))
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN (RFC 4271 §4.2).
    Open(Open),
    /// UPDATE (RFC 4271 §4.3).
    Update(Update),
    /// NOTIFICATION (RFC 4271 §4.5).
    Notification(Notification),
    /// KEEPALIVE (RFC 4271 §4.4).
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918, RFC 7313).
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Open(_) => MessageType::Open,
            Self::Update(_) => MessageType::Update,
            Self::Notification(_) => MessageType::Notification,
            Self::Keepalive => MessageType::Keepalive,
            Self::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Decode exactly one message, header included. An `Err` means session reset with
    /// `Notification::from(&err)`; non-fatal UPDATE findings are in [`Update::errors`].
    pub fn decode(buf: &[u8], cx: &DecodeCx) -> Result<Message, DecodeError> {
        let len = match message_len(buf, cx.max_message_len)? {
            Some(len) => len,
            None => {
                let length = buf.len() as u16;
                return Err(DecodeError::new(ErrorKind::BadMessageLength { length }, 0)
                    .with_data(length.to_be_bytes()));
            }
        };
        if len != buf.len() {
            let length = len as u16;
            return Err(DecodeError::new(ErrorKind::BadMessageLength { length }, 16)
                .with_data(length.to_be_bytes()));
        }
        let body = &buf[HEADER_LEN..];
        Ok(match MessageType::from_u8(buf[18]) {
            Some(MessageType::Open) => Message::Open(Open::decode_body(body)?),
            Some(MessageType::Update) => Message::Update(Update::decode_body(body, cx)?),
            Some(MessageType::Notification) => {
                Message::Notification(Notification::decode_body(body))
            }
            Some(MessageType::Keepalive) => Message::Keepalive,
            Some(MessageType::RouteRefresh) => {
                Message::RouteRefresh(RouteRefresh::decode_body(body, buf)?)
            }
            None => {
                return Err(
                    DecodeError::new(ErrorKind::BadMessageType { msg_type: buf[18] }, 18)
                        .with_data([buf[18]]),
                );
            }
        })
    }

    /// Append the encoded message (header included). Does not check the length limit: a caller
    /// packing UPDATEs uses [`Message::encode_checked`] or keeps within `cx.max_message_len`.
    pub fn encode(&self, cx: &EncodeCx, out: &mut BytesMut) {
        let start = out.len();
        out.put_slice(&[0xff; 16]);
        out.put_u16(0);
        out.put_u8(self.message_type() as u8);
        match self {
            Self::Open(o) => o.encode_body(out),
            Self::Update(u) => u.encode_body(cx, out),
            Self::Notification(n) => n.encode_body(out),
            Self::Keepalive => {}
            Self::RouteRefresh(r) => r.encode_body(out),
        }
        let len = (out.len() - start).min(u16::MAX as usize) as u16;
        out[start + 16..start + 18].copy_from_slice(&len.to_be_bytes());
    }

    /// Like [`Message::encode`], but leaves `out` unchanged and fails if the message would exceed
    /// `cx.max_message_len`.
    pub fn encode_checked(&self, cx: &EncodeCx, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        self.encode(cx, out);
        let length = out.len() - start;
        if length > cx.max_message_len {
            out.truncate(start);
            return Err(EncodeError::TooLong {
                length,
                max: cx.max_message_len,
            });
        }
        Ok(())
    }

    /// The encoded bytes, for tests and logs.
    pub fn to_bytes(&self, cx: &EncodeCx) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.encode(cx, &mut out);
        out.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_names_each_header_error() {
        let mut m = vec![0xff; 16];
        assert_eq!(message_len(&m, 4096), Ok(None));
        m.extend_from_slice(&[0, 19, 4]);
        assert_eq!(message_len(&m, 4096), Ok(Some(19)));
        let mut bad = m.clone();
        bad[3] = 0;
        assert_eq!(
            message_len(&bad, 4096).unwrap_err().kind,
            ErrorKind::ConnectionNotSynchronized
        );
        let mut bad = m.clone();
        bad[17] = 20; // KEEPALIVE of 20
        let e = message_len(&bad, 4096).unwrap_err();
        assert_eq!(
            (e.kind.clone(), e.data.clone()),
            (ErrorKind::BadMessageLength { length: 20 }, vec![0, 20])
        );
        assert_eq!(
            Notification::from(&e).to_string(),
            "message header error/bad message length (1/2) data 0014"
        );
        let mut bad = m.clone();
        bad[16] = 0x10;
        bad[17] = 1; // 4097
        bad[18] = 2;
        assert!(matches!(
            message_len(&bad, 4096).unwrap_err().kind,
            ErrorKind::BadMessageLength { length: 4097 }
        ));
        assert_eq!(message_len(&bad, 65535), Ok(Some(4097)));
        let mut bad = m.clone();
        bad[18] = 6;
        let e = message_len(&bad, 4096).unwrap_err();
        assert_eq!(
            (e.kind, e.data),
            (ErrorKind::BadMessageType { msg_type: 6 }, vec![6])
        );
        let mut bad = m;
        bad[17] = 22;
        bad[18] = 1; // OPEN shorter than 29
        assert!(matches!(
            message_len(&bad, 4096).unwrap_err().kind,
            ErrorKind::BadMessageLength { length: 22 }
        ));
    }

    #[test]
    fn encode_checked_refuses_oversized_messages() {
        let u = Update {
            nlri: (0..2000u32)
                .map(|i| {
                    Nlri::new(ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(i << 8), 24).unwrap())
                })
                .collect(),
            ..Update::default()
        };
        let mut out = BytesMut::from(&b"x"[..]);
        let e = Message::Update(u)
            .encode_checked(&EncodeCx::default(), &mut out)
            .unwrap_err();
        assert!(matches!(
            e,
            EncodeError::TooLong {
                length: 8023,
                max: 4096
            }
        ));
        assert_eq!(&out[..], b"x");
    }
}
