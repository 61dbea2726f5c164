//! NOTIFICATION (RFC 4271 §4.5) with named codes and subcodes (RFC 4271, 4486, 6608, 7313, 8538,
//! 9234, 9384) and the shutdown communication of Cease subcodes 2 and 4 (RFC 8203, RFC 9003).
//!
//! ```text
//!   body: code(1) subcode(1) data(*)
//!   Cease/Administrative Shutdown|Reset data: len(1) UTF-8(len <= 255) [trailing]
//! ```
//!
//! In: a NOTIFICATION body, or a [`DecodeError`] (`Notification::from(&err)`). Out: the body.

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::error::DecodeError;

macro_rules! subcodes {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:literal => $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value this codec does not name, kept as received.
            Other(u8),
        }
        impl $name {
            /// The subcode for a wire value (unnamed values become `Other`).
            pub fn from_u8(v: u8) -> Self {
                match v { $($val => Self::$var,)* o => Self::Other(o) }
            }
            /// The wire value.
            pub fn to_u8(self) -> u8 {
                match self { $(Self::$var => $val,)* Self::Other(o) => o }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self { $(Self::$var => f.write_str($text),)* Self::Other(o) => write!(f, "subcode {o}") }
            }
        }
    };
}

subcodes! {
    /// Message Header Error subcodes (RFC 4271 §4.5).
    HeaderError {
        /// 0: no more specific subcode.
        Unspecific = 0 => "unspecific",
        /// 1: the marker is not all ones.
        ConnectionNotSynchronized = 1 => "connection not synchronized",
        /// 2: length out of range; data is the length.
        BadMessageLength = 2 => "bad message length",
        /// 3: unknown type; data is the type.
        BadMessageType = 3 => "bad message type",
    }
}

subcodes! {
    /// OPEN Message Error subcodes (RFC 4271 §4.5, RFC 5492, RFC 9234).
    OpenError {
        /// 0: no more specific subcode.
        Unspecific = 0 => "unspecific",
        /// 1: data is the largest version we support (2 octets).
        UnsupportedVersionNumber = 1 => "unsupported version number",
        /// 2.
        BadPeerAs = 2 => "bad peer AS",
        /// 3.
        BadBgpIdentifier = 3 => "bad BGP identifier",
        /// 4.
        UnsupportedOptionalParameter = 4 => "unsupported optional parameter",
        /// 6: hold time 1 or 2 (or below local policy).
        UnacceptableHoldTime = 6 => "unacceptable hold time",
        /// 7: RFC 5492; data lists the capabilities.
        UnsupportedCapability = 7 => "unsupported capability",
        /// 11: RFC 9234.
        RoleMismatch = 11 => "role mismatch",
    }
}

subcodes! {
    /// UPDATE Message Error subcodes (RFC 4271 §4.5).
    UpdateError {
        /// 0: no more specific subcode.
        Unspecific = 0 => "unspecific",
        /// 1.
        MalformedAttributeList = 1 => "malformed attribute list",
        /// 2: data is the attribute.
        UnrecognizedWellKnownAttribute = 2 => "unrecognized well-known attribute",
        /// 3: data is the type code.
        MissingWellKnownAttribute = 3 => "missing well-known attribute",
        /// 4: data is the attribute.
        AttributeFlagsError = 4 => "attribute flags error",
        /// 5: data is the attribute.
        AttributeLengthError = 5 => "attribute length error",
        /// 6: data is the attribute.
        InvalidOriginAttribute = 6 => "invalid ORIGIN attribute",
        /// 8: data is the attribute.
        InvalidNextHopAttribute = 8 => "invalid NEXT_HOP attribute",
        /// 9: data is the attribute.
        OptionalAttributeError = 9 => "optional attribute error",
        /// 10.
        InvalidNetworkField = 10 => "invalid network field",
        /// 11.
        MalformedAsPath = 11 => "malformed AS_PATH",
    }
}

subcodes! {
    /// Finite State Machine Error subcodes (RFC 6608).
    FsmError {
        /// 0.
        Unspecified = 0 => "unspecified",
        /// 1.
        UnexpectedMessageInOpenSent = 1 => "unexpected message in OpenSent",
        /// 2.
        UnexpectedMessageInOpenConfirm = 2 => "unexpected message in OpenConfirm",
        /// 3.
        UnexpectedMessageInEstablished = 3 => "unexpected message in Established",
    }
}

subcodes! {
    /// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
    CeaseReason {
        /// 0.
        Unspecific = 0 => "unspecific",
        /// 1: data may hold AFI(2) SAFI(1) upper bound(4).
        MaximumPrefixesReached = 1 => "maximum number of prefixes reached",
        /// 2: data may hold a shutdown communication (RFC 8203/9003).
        AdministrativeShutdown = 2 => "administrative shutdown",
        /// 3.
        PeerDeconfigured = 3 => "peer de-configured",
        /// 4: data may hold a shutdown communication (RFC 8203/9003).
        AdministrativeReset = 4 => "administrative reset",
        /// 5.
        ConnectionRejected = 5 => "connection rejected",
        /// 6.
        OtherConfigurationChange = 6 => "other configuration change",
        /// 7.
        ConnectionCollisionResolution = 7 => "connection collision resolution",
        /// 8.
        OutOfResources = 8 => "out of resources",
        /// 9: RFC 8538; data holds the inner code/subcode.
        HardReset = 9 => "hard reset",
        /// 10: RFC 9384.
        BfdDown = 10 => "BFD down",
    }
}

subcodes! {
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
    RouteRefreshError {
        /// 0.
        Reserved = 0 => "reserved",
        /// 1: data is the whole ROUTE-REFRESH message.
        InvalidMessageLength = 1 => "invalid message length",
    }
}

/// A NOTIFICATION error code with its subcode (RFC 4271 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: Message Header Error.
    MessageHeader(HeaderError),
    /// 2: OPEN Message Error.
    Open(OpenError),
    /// 3: UPDATE Message Error.
    Update(UpdateError),
    /// 4: Hold Timer Expired (subcode 0).
    HoldTimerExpired,
    /// 5: Finite State Machine Error.
    Fsm(FsmError),
    /// 6: Cease.
    Cease(CeaseReason),
    /// 7: ROUTE-REFRESH Message Error (RFC 7313).
    RouteRefresh(RouteRefreshError),
    /// A code this codec does not name (or Hold Timer Expired with a non-zero subcode).
    Other {
        /// Error code.
        code: u8,
        /// Error subcode.
        subcode: u8,
    },
}

impl ErrorCode {
    /// From the wire code and subcode.
    pub fn new(code: u8, subcode: u8) -> Self {
        match code {
            1 => Self::MessageHeader(HeaderError::from_u8(subcode)),
            2 => Self::Open(OpenError::from_u8(subcode)),
            3 => Self::Update(UpdateError::from_u8(subcode)),
            4 if subcode == 0 => Self::HoldTimerExpired,
            5 => Self::Fsm(FsmError::from_u8(subcode)),
            6 => Self::Cease(CeaseReason::from_u8(subcode)),
            7 => Self::RouteRefresh(RouteRefreshError::from_u8(subcode)),
            _ => Self::Other { code, subcode },
        }
    }

    /// The wire (code, subcode).
    pub fn to_pair(self) -> (u8, u8) {
        match self {
            Self::MessageHeader(s) => (1, s.to_u8()),
            Self::Open(s) => (2, s.to_u8()),
            Self::Update(s) => (3, s.to_u8()),
            Self::HoldTimerExpired => (4, 0),
            Self::Fsm(s) => (5, s.to_u8()),
            Self::Cease(s) => (6, s.to_u8()),
            Self::RouteRefresh(s) => (7, s.to_u8()),
            Self::Other { code, subcode } => (code, subcode),
        }
    }

    /// Whether the data may carry an RFC 8203/9003 shutdown communication (Cease 2 and 4).
    pub fn has_shutdown_communication(self) -> bool {
        matches!(
            self,
            Self::Cease(CeaseReason::AdministrativeShutdown | CeaseReason::AdministrativeReset)
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, s) = self.to_pair();
        match self {
            Self::MessageHeader(x) => write!(f, "message header error/{x}")?,
            Self::Open(x) => write!(f, "OPEN message error/{x}")?,
            Self::Update(x) => write!(f, "UPDATE message error/{x}")?,
            Self::HoldTimerExpired => f.write_str("hold timer expired")?,
            Self::Fsm(x) => write!(f, "finite state machine error/{x}")?,
            Self::Cease(x) => write!(f, "cease/{x}")?,
            Self::RouteRefresh(x) => write!(f, "ROUTE-REFRESH message error/{x}")?,
            Self::Other { .. } => f.write_str("error")?,
        }
        write!(f, " ({c}/{s})")
    }
}

/// Longest shutdown communication (RFC 9003 §2).
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// A NOTIFICATION message (RFC 4271 §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code and subcode.
    pub code: ErrorCode,
    /// For Cease/Administrative Shutdown or Reset: the operator's message (RFC 8203, RFC 9003),
    /// when the data holds a well-formed one (length octet, UTF-8). `None` otherwise; malformed
    /// communications stay in `data`, as received.
    pub shutdown_communication: Option<String>,
    /// The data field; after the shutdown communication when there is one (normally empty).
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with no data.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            shutdown_communication: None,
            data: Vec::new(),
        }
    }

    /// Cease with a shutdown communication (RFC 9003). Longer text is cut at a character boundary
    /// to fit 255 octets.
    pub fn shutdown(reason: CeaseReason, message: &str) -> Self {
        let mut end = message.len().min(MAX_SHUTDOWN_COMMUNICATION);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            code: ErrorCode::Cease(reason),
            shutdown_communication: Some(message[..end].to_string()),
            data: Vec::new(),
        }
    }

    /// Decode a NOTIFICATION body (after the 19-octet header; at least 2 octets, which framing
    /// guarantees). Never fails: unknown codes and malformed communications are kept raw.
    pub fn decode_body(body: &[u8]) -> Self {
        let (Some(&c), Some(&s)) = (body.first(), body.get(1)) else {
            return Self::new(ErrorCode::Other {
                code: 0,
                subcode: 0,
            });
        };
        let code = ErrorCode::new(c, s);
        let data = &body[2..];
        if code.has_shutdown_communication()
            && let Some((&len, rest)) = data.split_first()
            && let Some(text) = rest.get(..len as usize)
            && let Ok(text) = std::str::from_utf8(text)
        {
            return Self {
                code,
                shutdown_communication: Some(text.to_string()),
                data: rest[len as usize..].to_vec(),
            };
        }
        Self {
            code,
            shutdown_communication: None,
            data: data.to_vec(),
        }
    }

    /// Encode the body (code, subcode, data).
    pub fn encode_body(&self, out: &mut BytesMut) {
        let (c, s) = self.code.to_pair();
        out.put_u8(c);
        out.put_u8(s);
        if let Some(text) = &self.shutdown_communication {
            let mut end = text.len().min(MAX_SHUTDOWN_COMMUNICATION);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            out.put_u8(end as u8);
            out.put_slice(&text.as_bytes()[..end]);
        }
        out.put_slice(&self.data);
    }
}

impl From<&DecodeError> for Notification {
    fn from(e: &DecodeError) -> Self {
        Self {
            code: e.code(),
            shutdown_communication: None,
            data: e.data.clone(),
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(t) = &self.shutdown_communication {
            write!(f, " \"{}\"", t.escape_debug())?;
        }
        if !self.data.is_empty() {
            f.write_str(" data ")?;
            for b in &self.data {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: &Notification) -> Vec<u8> {
        let mut out = BytesMut::new();
        n.encode_body(&mut out);
        out.to_vec()
    }

    #[test]
    fn shutdown_communication_rfc9003() {
        let n = Notification::decode_body(b"\x06\x02\x05hello");
        assert_eq!(
            n.code,
            ErrorCode::Cease(CeaseReason::AdministrativeShutdown)
        );
        assert_eq!(n.shutdown_communication.as_deref(), Some("hello"));
        assert_eq!(body(&n), b"\x06\x02\x05hello");
        // malformed communications stay raw: length overrun, invalid UTF-8
        for raw in [&b"\x06\x04\x09hello"[..], &b"\x06\x02\x02\xff\xfe"[..]] {
            let n = Notification::decode_body(raw);
            assert_eq!(
                (n.shutdown_communication.as_deref(), &n.data[..]),
                (None, &raw[2..])
            );
            assert_eq!(body(&n), raw);
        }
        // other codes never carry one
        let n = Notification::decode_body(b"\x06\x03\x05hello");
        assert_eq!(n.shutdown_communication, None);
        // 255 octets at most, cut at a character boundary
        let long = "ä".repeat(200);
        let n = Notification::shutdown(CeaseReason::AdministrativeReset, &long);
        let b = body(&n);
        assert_eq!((b[2], b.len()), (254, 3 + 254));
        assert!(
            n.to_string()
                .starts_with("cease/administrative reset (6/4) \"")
        );
    }

    #[test]
    fn codes_round_trip_and_name_themselves() {
        for c in 0..=8u8 {
            for s in 0..=12u8 {
                assert_eq!(ErrorCode::new(c, s).to_pair(), (c, s));
            }
        }
        assert_eq!(ErrorCode::new(4, 0), ErrorCode::HoldTimerExpired);
        assert_eq!(ErrorCode::new(6, 9).to_string(), "cease/hard reset (6/9)");
        assert_eq!(
            ErrorCode::new(2, 6).to_string(),
            "OPEN message error/unacceptable hold time (2/6)"
        );
    }
}
