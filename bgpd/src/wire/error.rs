//! Decode errors and the RFC 7606 action each one calls for.
//!
//! ```text
//!   bytes --decode--> Err(DecodeError)            session reset: send Notification::from(&err)
//!                 \-> Ok(Update{ errors, .. })    errors[i].action: attribute discard / treat-as-withdraw
//! ```
//!
//! Every [`DecodeError`] names its NOTIFICATION code and subcode ([`ErrorKind::code`]), carries the
//! NOTIFICATION data (RFC 4271 §6), the byte offset in the message where the problem starts (counted
//! from the first marker byte) and, for path attribute errors, the attribute type code.

use std::fmt;

use super::notification::{ErrorCode, HeaderError, OpenError, RouteRefreshError, UpdateError};

/// What a receiver does about a malformed UPDATE (RFC 7606 §2), weakest first.
///
/// Ordered so that `max()` over several errors gives the strongest action (RFC 7606 §3 (j)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorAction {
    /// "Attribute discard": the attribute was removed; the UPDATE is otherwise processed.
    AttributeDiscard,
    /// "Treat-as-withdraw": every prefix in the UPDATE (reachable or not) is withdrawn.
    TreatAsWithdraw,
    /// "Session reset": send the NOTIFICATION and close the session (RFC 4271 §6).
    SessionReset,
}

impl fmt::Display for ErrorAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AttributeDiscard => "attribute-discard",
            Self::TreatAsWithdraw => "treat-as-withdraw",
            Self::SessionReset => "session-reset",
        })
    }
}

/// What is wrong, with the RFC's name for it. [`ErrorKind::code`] maps it to NOTIFICATION
/// code/subcode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The 16-octet marker is not all ones (RFC 4271 §6.1): Connection Not Synchronized.
    #[error("marker is not all ones")]
    ConnectionNotSynchronized,
    /// The header's length is out of range for the message type (RFC 4271 §6.1).
    #[error("bad message length {length}")]
    BadMessageLength {
        /// The Length field as received.
        length: u16,
    },
    /// The header's type is not one of OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH.
    #[error("bad message type {msg_type}")]
    BadMessageType {
        /// The Type field as received.
        msg_type: u8,
    },
    /// OPEN version is not 4 (RFC 4271 §6.2); data is our version as 2 octets.
    #[error("unsupported BGP version {version} (we speak 4)")]
    UnsupportedVersion {
        /// The version the peer bid.
        version: u8,
    },
    /// OPEN's (or the 4-octet AS capability's) AS is not the configured peer AS, or is 0.
    #[error("bad peer AS {asn}")]
    BadPeerAs {
        /// The AS the peer announced.
        asn: u32,
    },
    /// BGP Identifier is 0 or equals ours on an iBGP session (RFC 4271 §6.2, RFC 6286 §2.2).
    #[error("bad BGP identifier {id}")]
    BadBgpIdentifier {
        /// The identifier the peer announced.
        id: std::net::Ipv4Addr,
    },
    /// An optional parameter other than Capabilities (RFC 4271 §6.2, RFC 5492).
    #[error("unsupported optional parameter type {param_type}")]
    UnsupportedOptionalParameter {
        /// The parameter type.
        param_type: u8,
    },
    /// Hold time 1 or 2 seconds (RFC 4271 §6.2).
    #[error("unacceptable hold time {hold_time}")]
    UnacceptableHoldTime {
        /// The hold time the peer proposed.
        hold_time: u16,
    },
    /// Optional parameters that overrun the OPEN or their declared length.
    #[error("malformed optional parameters: {reason}")]
    MalformedOpen {
        /// What did not fit.
        reason: &'static str,
    },
    /// Withdrawn Routes Length or Total Path Attribute Length inconsistent with the message, an
    /// attribute overrunning the attribute field, or a repeated MP_REACH/MP_UNREACH (RFC 4271 §6.3,
    /// RFC 7606 §3 (g), §4).
    #[error("malformed attribute list: {reason}")]
    MalformedAttributeList {
        /// What was inconsistent.
        reason: &'static str,
    },
    /// A well-known attribute this codec does not know (RFC 4271 §6.3).
    #[error("unrecognized well-known attribute")]
    UnrecognizedWellKnown,
    /// ORIGIN, AS_PATH (or NEXT_HOP when the NLRI field is not empty) missing while the UPDATE
    /// carries reachable NLRI (RFC 4271 §6.3, RFC 7606 §3 (d)).
    #[error("missing well-known attribute {type_code}")]
    MissingWellKnown {
        /// The missing attribute's type code.
        type_code: u8,
    },
    /// Optional or Transitive bit in conflict with the attribute type (RFC 7606 §3 (c)).
    #[error("attribute flags {flags:#04x} conflict with the attribute type")]
    AttributeFlags {
        /// The flags as received.
        flags: u8,
    },
    /// The attribute's length is wrong for its type (RFC 4271 §6.3, RFC 7606 §7).
    #[error("attribute length {length} is wrong for its type")]
    AttributeLength {
        /// The Attribute Length as received.
        length: u16,
    },
    /// ORIGIN value not 0, 1 or 2 (RFC 4271 §6.3).
    #[error("invalid ORIGIN value {value}")]
    InvalidOrigin {
        /// The value received.
        value: u8,
    },
    /// A malformed optional attribute (MP_REACH/MP_UNREACH structure, AS 0 in AGGREGATOR, ...).
    #[error("malformed optional attribute: {reason}")]
    OptionalAttribute {
        /// What was wrong.
        reason: &'static str,
    },
    /// A prefix with a length beyond the address family or overrunning its field (RFC 7606 §5.3).
    #[error("invalid network field: {reason}")]
    InvalidNetworkField {
        /// What was wrong.
        reason: &'static str,
    },
    /// AS_PATH (or AS4_PATH) segments malformed (RFC 7606 §7.2, RFC 7607).
    #[error("malformed AS path: {reason}")]
    MalformedAsPath {
        /// What was wrong.
        reason: &'static str,
    },
    /// A repeated attribute other than MP_REACH/MP_UNREACH; later copies are discarded
    /// (RFC 7606 §3 (g)).
    #[error("duplicate attribute, later copy discarded")]
    DuplicateAttribute,
    /// LOCAL_PREF from an external peer is discarded (RFC 7606 §7.5).
    #[error("LOCAL_PREF from an external peer discarded")]
    LocalPrefFromExternal,
    /// AS4_PATH / AS4_AGGREGATOR from a peer that negotiated 4-octet AS is discarded (RFC 6793 §6).
    #[error("AS4_PATH/AS4_AGGREGATOR from a 4-octet AS peer discarded")]
    UnexpectedAs4Attribute,
    /// ROUTE-REFRESH of the wrong length (RFC 7313 §5); data is the whole message.
    #[error("invalid ROUTE-REFRESH length {length}")]
    RouteRefreshLength {
        /// The message length.
        length: u16,
    },
}

impl ErrorKind {
    /// The NOTIFICATION error code and subcode this error calls for (RFC 4271 §4.5, §6).
    pub fn code(&self) -> ErrorCode {
        use ErrorKind::*;
        match self {
            ConnectionNotSynchronized => {
                ErrorCode::MessageHeader(HeaderError::ConnectionNotSynchronized)
            }
            BadMessageLength { .. } => ErrorCode::MessageHeader(HeaderError::BadMessageLength),
            BadMessageType { .. } => ErrorCode::MessageHeader(HeaderError::BadMessageType),
            UnsupportedVersion { .. } => ErrorCode::Open(OpenError::UnsupportedVersionNumber),
            BadPeerAs { .. } => ErrorCode::Open(OpenError::BadPeerAs),
            BadBgpIdentifier { .. } => ErrorCode::Open(OpenError::BadBgpIdentifier),
            UnsupportedOptionalParameter { .. } => {
                ErrorCode::Open(OpenError::UnsupportedOptionalParameter)
            }
            UnacceptableHoldTime { .. } => ErrorCode::Open(OpenError::UnacceptableHoldTime),
            MalformedOpen { .. } => ErrorCode::Open(OpenError::Unspecific),
            MalformedAttributeList { .. } | DuplicateAttribute => {
                ErrorCode::Update(UpdateError::MalformedAttributeList)
            }
            UnrecognizedWellKnown => ErrorCode::Update(UpdateError::UnrecognizedWellKnownAttribute),
            MissingWellKnown { .. } => ErrorCode::Update(UpdateError::MissingWellKnownAttribute),
            AttributeFlags { .. } => ErrorCode::Update(UpdateError::AttributeFlagsError),
            AttributeLength { .. } => ErrorCode::Update(UpdateError::AttributeLengthError),
            InvalidOrigin { .. } => ErrorCode::Update(UpdateError::InvalidOriginAttribute),
            OptionalAttribute { .. } | UnexpectedAs4Attribute => {
                ErrorCode::Update(UpdateError::OptionalAttributeError)
            }
            InvalidNetworkField { .. } => ErrorCode::Update(UpdateError::InvalidNetworkField),
            MalformedAsPath { .. } => ErrorCode::Update(UpdateError::MalformedAsPath),
            LocalPrefFromExternal => ErrorCode::Update(UpdateError::Unspecific),
            RouteRefreshLength { .. } => {
                ErrorCode::RouteRefresh(RouteRefreshError::InvalidMessageLength)
            }
        }
    }
}

/// A decode failure or RFC 7606 finding: what, where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What is wrong; names the NOTIFICATION code/subcode.
    pub kind: ErrorKind,
    /// Byte offset in the message (from the first marker octet) where the offending item starts.
    pub offset: usize,
    /// The path attribute type code, for attribute errors.
    pub attr_type: Option<u8>,
    /// The NOTIFICATION data (RFC 4271 §6): the offending attribute, length, version, ...
    pub data: Vec<u8>,
    /// What the receiver does: always [`ErrorAction::SessionReset`] for an `Err` from a decoder;
    /// weaker actions appear in [`super::Update::errors`].
    pub action: ErrorAction,
}

impl DecodeError {
    /// A session-reset error at `offset` with no data.
    pub fn new(kind: ErrorKind, offset: usize) -> Self {
        Self {
            kind,
            offset,
            attr_type: None,
            data: Vec::new(),
            action: ErrorAction::SessionReset,
        }
    }

    pub(crate) fn with_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    pub(crate) fn with_attr(mut self, type_code: u8, raw_attr: &[u8]) -> Self {
        self.attr_type = Some(type_code);
        self.data = raw_attr.to_vec();
        self
    }

    pub(crate) fn with_action(mut self, action: ErrorAction) -> Self {
        self.action = action;
        self
    }

    /// The NOTIFICATION error code and subcode.
    pub fn code(&self) -> ErrorCode {
        self.kind.code()
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)?;
        if let Some(t) = self.attr_type {
            write!(f, " in attribute type {t}")?;
        }
        write!(f, " ({}, {})", self.code(), self.action)
    }
}

impl std::error::Error for DecodeError {}

/// Encoding failed a limit the caller asked to check ([`super::Message::encode_checked`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed the negotiated maximum (4096, RFC 4271 §4.1; RFC 8654).
    #[error("message of {length} octets exceeds the maximum {max}")]
    TooLong {
        /// The encoded length.
        length: usize,
        /// The limit.
        max: usize,
    },
}
