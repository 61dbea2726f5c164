//! The attributes of the IPVS generic netlink family (`include/uapi/linux/ip_vs.h`), typed, with
//! unknown ones kept raw and the nested flag of each nest kept as received (libnl sets
//! `NLA_F_NESTED` on requests, the kernel does not on replies), so decode -> encode gives the
//! same bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, Emitable, ErrorContext, NLA_F_NESTED, NLA_TYPE_MASK, Nla, NlaBuffer, NlasIterator,
    Parseable, emit_u16, emit_u16_be, emit_u32, emit_u64, parse_string, parse_u8, parse_u16,
    parse_u16_be, parse_u32, parse_u64,
};

/// `AF_INET`, as the kernel's `IPVS_SVC_ATTR_AF` / `IPVS_DEST_ATTR_ADDR_FAMILY` carry it.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// An attribute the code does not know: its type (with the nested / byte-order flag bits as
/// received) and value bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttr {
    /// `nla_type`, flag bits included.
    pub kind: u16,
    /// The value.
    pub value: Vec<u8>,
}

impl Nla for RawAttr {
    fn value_len(&self) -> usize {
        self.value.len()
    }
    fn kind(&self) -> u16 {
        self.kind
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.value);
    }
}

pub(super) fn raw(buf: &NlaBuffer<&[u8]>) -> RawAttr {
    let mut kind = buf.kind();
    if buf.nested_flag() {
        kind |= NLA_F_NESTED;
    }
    if buf.network_byte_order_flag() {
        kind |= netlink_packet_core::NLA_F_NET_BYTEORDER;
    }
    RawAttr {
        kind,
        value: buf.value().to_vec(),
    }
}

/// A nested attribute's contents and whether it carried `NLA_F_NESTED`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nest<T> {
    /// The attributes inside, in order.
    pub attrs: Vec<T>,
    /// Whether the `NLA_F_NESTED` bit was (is to be) set.
    pub flagged: bool,
}

impl<T> Nest<T> {
    /// A nest flagged as libnl sends it.
    pub fn new(attrs: Vec<T>) -> Nest<T> {
        Nest {
            attrs,
            flagged: true,
        }
    }
}

impl<T: Nla> Nest<T> {
    fn len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
    fn kind(&self, kind: u16) -> u16 {
        if self.flagged {
            kind | NLA_F_NESTED
        } else {
            kind
        }
    }
}

pub(super) fn parse_nest<T>(
    buf: &NlaBuffer<&[u8]>,
    what: &str,
    item: impl Fn(&NlaBuffer<&[u8]>) -> Result<T, DecodeError>,
) -> Result<Nest<T>, DecodeError> {
    let attrs = NlasIterator::new(buf.value())
        .map(|nla| nla.and_then(|nla| item(&nla)))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("in {what}"))?;
    Ok(Nest {
        attrs,
        flagged: buf.nested_flag(),
    })
}

/// Checks a fixed value length.
fn exact(buf: &NlaBuffer<&[u8]>, len: usize, what: &str) -> Result<(), DecodeError> {
    if buf.value().len() == len {
        Ok(())
    } else {
        Err(DecodeError::from(format!(
            "{what}: expected {len} bytes, found {}",
            buf.value().len()
        )))
    }
}

/// An address as `union nf_inet_addr` bytes (16 for both families when ipvsadm or the kernel
/// send it; an IPv4 address is the first 4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InetAddr(pub Vec<u8>);

impl InetAddr {
    /// The 16-byte form of `ip`.
    pub fn from_ip(ip: IpAddr) -> InetAddr {
        let mut b = vec![0u8; 16];
        match ip {
            IpAddr::V4(a) => b[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => b.copy_from_slice(&a.octets()),
        }
        InetAddr(b)
    }

    /// The address for an `AF_INET` / `AF_INET6` family; `None` for another family or too
    /// few bytes.
    pub fn to_ip(&self, af: u16) -> Option<IpAddr> {
        match af {
            AF_INET => {
                let b: [u8; 4] = self.0.get(..4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(b)))
            }
            AF_INET6 => {
                let b: [u8; 16] = self.0.get(..16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => None,
        }
    }
}

/// `IPVS_STATS_ATTR_*` counters and rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsField {
    /// `IPVS_STATS_ATTR_CONNS` (1).
    Conns,
    /// `IPVS_STATS_ATTR_INPKTS` (2).
    InPkts,
    /// `IPVS_STATS_ATTR_OUTPKTS` (3).
    OutPkts,
    /// `IPVS_STATS_ATTR_INBYTES` (4).
    InBytes,
    /// `IPVS_STATS_ATTR_OUTBYTES` (5).
    OutBytes,
    /// `IPVS_STATS_ATTR_CPS` (6).
    Cps,
    /// `IPVS_STATS_ATTR_INPPS` (7).
    InPps,
    /// `IPVS_STATS_ATTR_OUTPPS` (8).
    OutPps,
    /// `IPVS_STATS_ATTR_INBPS` (9).
    InBps,
    /// `IPVS_STATS_ATTR_OUTBPS` (10).
    OutBps,
}

impl StatsField {
    const ALL: [StatsField; 10] = [
        StatsField::Conns,
        StatsField::InPkts,
        StatsField::OutPkts,
        StatsField::InBytes,
        StatsField::OutBytes,
        StatsField::Cps,
        StatsField::InPps,
        StatsField::OutPps,
        StatsField::InBps,
        StatsField::OutBps,
    ];

    /// The attribute type.
    pub fn kind(self) -> u16 {
        Self::ALL.iter().position(|f| *f == self).unwrap_or(0) as u16 + 1
    }

    fn from_kind(kind: u16) -> Option<StatsField> {
        Self::ALL.get(usize::from(kind).checked_sub(1)?).copied()
    }
}

/// `IPVS_STATS_ATTR_PAD`.
const STATS_PAD: u16 = 11;

/// An attribute of `IPVS_{SVC,DEST}_ATTR_STATS` (32-bit values, bytes 64-bit) or `..._STATS64`
/// (all 64-bit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StatsAttr {
    /// A counter or rate; `wide` when it is carried in 8 bytes.
    Value {
        /// Which one.
        field: StatsField,
        /// Its value.
        value: u64,
        /// 8 bytes (else 4).
        wide: bool,
    },
    /// Alignment padding (`IPVS_STATS_ATTR_PAD`).
    Pad(Vec<u8>),
    /// Anything else.
    Unknown(RawAttr),
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        match self {
            StatsAttr::Value { wide: true, .. } => 8,
            StatsAttr::Value { wide: false, .. } => 4,
            StatsAttr::Pad(p) => p.len(),
            StatsAttr::Unknown(r) => r.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            StatsAttr::Value { field, .. } => field.kind(),
            StatsAttr::Pad(_) => STATS_PAD,
            StatsAttr::Unknown(r) => r.kind,
        }
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            StatsAttr::Value {
                value, wide: true, ..
            } => {
                let _ = emit_u64(buffer, *value);
            }
            StatsAttr::Value {
                value, wide: false, ..
            } => {
                // a 32-bit counter holds the low 32 bits, as the kernel sends it
                let _ = emit_u32(buffer, *value as u32);
            }
            StatsAttr::Pad(p) => buffer.copy_from_slice(p),
            StatsAttr::Unknown(r) => r.emit_value(buffer),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for StatsAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match StatsField::from_kind(buf.kind()) {
            Some(field) => match v.len() {
                4 => StatsAttr::Value {
                    field,
                    value: u64::from(parse_u32(v)?),
                    wide: false,
                },
                8 => StatsAttr::Value {
                    field,
                    value: parse_u64(v)?,
                    wide: true,
                },
                n => {
                    return Err(DecodeError::from(format!(
                        "IPVS_STATS_ATTR {field:?}: expected 4 or 8 bytes, found {n}"
                    )));
                }
            },
            None if buf.kind() == STATS_PAD => StatsAttr::Pad(v.to_vec()),
            None => StatsAttr::Unknown(raw(buf)),
        })
    }
}

/// Attributes of `IPVS_CMD_ATTR_SERVICE` (`IPVS_SVC_ATTR_*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SvcAttr {
    /// `IPVS_SVC_ATTR_AF` (1): `AF_INET` / `AF_INET6`.
    Af(u16),
    /// `IPVS_SVC_ATTR_PROTOCOL` (2): IP protocol number.
    Protocol(u16),
    /// `IPVS_SVC_ATTR_ADDR` (3).
    Addr(InetAddr),
    /// `IPVS_SVC_ATTR_PORT` (4), network byte order on the wire.
    Port(u16),
    /// `IPVS_SVC_ATTR_FWMARK` (5).
    Fwmark(u32),
    /// `IPVS_SVC_ATTR_SCHED_NAME` (6).
    SchedName(String),
    /// `IPVS_SVC_ATTR_FLAGS` (7): `struct ip_vs_flags { flags, mask }`.
    Flags {
        /// `IP_VS_SVC_F_*` bits.
        flags: u32,
        /// Which bits to change (requests).
        mask: u32,
    },
    /// `IPVS_SVC_ATTR_TIMEOUT` (8): persistence timeout, seconds.
    Timeout(u32),
    /// `IPVS_SVC_ATTR_NETMASK` (9): for IPv4 the mask's bytes in network order read as a
    /// host-order u32, for IPv6 the prefix length.
    Netmask(u32),
    /// `IPVS_SVC_ATTR_STATS` (10).
    Stats(Nest<StatsAttr>),
    /// `IPVS_SVC_ATTR_PE_NAME` (11).
    PeName(String),
    /// `IPVS_SVC_ATTR_STATS64` (12).
    Stats64(Nest<StatsAttr>),
    /// Anything else.
    Unknown(RawAttr),
}

fn string_len(s: &str) -> usize {
    s.len() + 1
}

fn emit_string(buffer: &mut [u8], s: &str) {
    buffer[..s.len()].copy_from_slice(s.as_bytes());
    buffer[s.len()] = 0;
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        match self {
            SvcAttr::Af(_) | SvcAttr::Protocol(_) | SvcAttr::Port(_) => 2,
            SvcAttr::Addr(a) => a.0.len(),
            SvcAttr::Fwmark(_) | SvcAttr::Timeout(_) | SvcAttr::Netmask(_) => 4,
            SvcAttr::SchedName(s) | SvcAttr::PeName(s) => string_len(s),
            SvcAttr::Flags { .. } => 8,
            SvcAttr::Stats(n) | SvcAttr::Stats64(n) => n.len(),
            SvcAttr::Unknown(r) => r.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            SvcAttr::Af(_) => 1,
            SvcAttr::Protocol(_) => 2,
            SvcAttr::Addr(_) => 3,
            SvcAttr::Port(_) => 4,
            SvcAttr::Fwmark(_) => 5,
            SvcAttr::SchedName(_) => 6,
            SvcAttr::Flags { .. } => 7,
            SvcAttr::Timeout(_) => 8,
            SvcAttr::Netmask(_) => 9,
            SvcAttr::Stats(n) => n.kind(10),
            SvcAttr::PeName(_) => 11,
            SvcAttr::Stats64(n) => n.kind(12),
            SvcAttr::Unknown(r) => r.kind,
        }
    }
    fn emit_value(&self, b: &mut [u8]) {
        let _ = match self {
            SvcAttr::Af(v) | SvcAttr::Protocol(v) => emit_u16(b, *v),
            SvcAttr::Port(v) => emit_u16_be(b, *v),
            SvcAttr::Addr(a) => {
                b.copy_from_slice(&a.0);
                Ok(())
            }
            SvcAttr::Fwmark(v) | SvcAttr::Timeout(v) | SvcAttr::Netmask(v) => emit_u32(b, *v),
            SvcAttr::SchedName(s) | SvcAttr::PeName(s) => {
                emit_string(b, s);
                Ok(())
            }
            SvcAttr::Flags { flags, mask } => {
                emit_u32(&mut b[..4], *flags).and_then(|()| emit_u32(&mut b[4..], *mask))
            }
            SvcAttr::Stats(n) | SvcAttr::Stats64(n) => {
                n.emit(b);
                Ok(())
            }
            SvcAttr::Unknown(r) => {
                r.emit_value(b);
                Ok(())
            }
        };
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for SvcAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() & NLA_TYPE_MASK {
            1 => SvcAttr::Af(parse_u16(v).context("IPVS_SVC_ATTR_AF")?),
            2 => SvcAttr::Protocol(parse_u16(v).context("IPVS_SVC_ATTR_PROTOCOL")?),
            3 => SvcAttr::Addr(InetAddr(v.to_vec())),
            4 => SvcAttr::Port(parse_u16_be(v).context("IPVS_SVC_ATTR_PORT")?),
            5 => SvcAttr::Fwmark(parse_u32(v).context("IPVS_SVC_ATTR_FWMARK")?),
            6 => SvcAttr::SchedName(parse_string(v).context("IPVS_SVC_ATTR_SCHED_NAME")?),
            7 => {
                exact(buf, 8, "IPVS_SVC_ATTR_FLAGS")?;
                SvcAttr::Flags {
                    flags: parse_u32(&v[..4])?,
                    mask: parse_u32(&v[4..])?,
                }
            }
            8 => SvcAttr::Timeout(parse_u32(v).context("IPVS_SVC_ATTR_TIMEOUT")?),
            9 => SvcAttr::Netmask(parse_u32(v).context("IPVS_SVC_ATTR_NETMASK")?),
            10 => SvcAttr::Stats(parse_nest(
                buf,
                "IPVS_SVC_ATTR_STATS",
                |b: &NlaBuffer<&[u8]>| StatsAttr::parse(b),
            )?),
            11 => SvcAttr::PeName(parse_string(v).context("IPVS_SVC_ATTR_PE_NAME")?),
            12 => SvcAttr::Stats64(parse_nest(
                buf,
                "IPVS_SVC_ATTR_STATS64",
                |b: &NlaBuffer<&[u8]>| StatsAttr::parse(b),
            )?),
            _ => SvcAttr::Unknown(raw(buf)),
        })
    }
}

/// Attributes of `IPVS_CMD_ATTR_DEST` (`IPVS_DEST_ATTR_*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DestAttr {
    /// `IPVS_DEST_ATTR_ADDR` (1).
    Addr(InetAddr),
    /// `IPVS_DEST_ATTR_PORT` (2), network byte order on the wire.
    Port(u16),
    /// `IPVS_DEST_ATTR_FWD_METHOD` (3): `IP_VS_CONN_F_*` forwarding bits.
    FwdMethod(u32),
    /// `IPVS_DEST_ATTR_WEIGHT` (4).
    Weight(u32),
    /// `IPVS_DEST_ATTR_U_THRESH` (5).
    UThresh(u32),
    /// `IPVS_DEST_ATTR_L_THRESH` (6).
    LThresh(u32),
    /// `IPVS_DEST_ATTR_ACTIVE_CONNS` (7).
    ActiveConns(u32),
    /// `IPVS_DEST_ATTR_INACT_CONNS` (8).
    InactConns(u32),
    /// `IPVS_DEST_ATTR_PERSIST_CONNS` (9).
    PersistConns(u32),
    /// `IPVS_DEST_ATTR_STATS` (10).
    Stats(Nest<StatsAttr>),
    /// `IPVS_DEST_ATTR_ADDR_FAMILY` (11).
    AddrFamily(u16),
    /// `IPVS_DEST_ATTR_STATS64` (12).
    Stats64(Nest<StatsAttr>),
    /// `IPVS_DEST_ATTR_TUN_TYPE` (13).
    TunType(u8),
    /// `IPVS_DEST_ATTR_TUN_PORT` (14), network byte order on the wire.
    TunPort(u16),
    /// `IPVS_DEST_ATTR_TUN_FLAGS` (15).
    TunFlags(u16),
    /// Anything else.
    Unknown(RawAttr),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            DestAttr::Addr(a) => a.0.len(),
            DestAttr::Port(_)
            | DestAttr::AddrFamily(_)
            | DestAttr::TunPort(_)
            | DestAttr::TunFlags(_) => 2,
            DestAttr::TunType(_) => 1,
            DestAttr::FwdMethod(_)
            | DestAttr::Weight(_)
            | DestAttr::UThresh(_)
            | DestAttr::LThresh(_)
            | DestAttr::ActiveConns(_)
            | DestAttr::InactConns(_)
            | DestAttr::PersistConns(_) => 4,
            DestAttr::Stats(n) | DestAttr::Stats64(n) => n.len(),
            DestAttr::Unknown(r) => r.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            DestAttr::Addr(_) => 1,
            DestAttr::Port(_) => 2,
            DestAttr::FwdMethod(_) => 3,
            DestAttr::Weight(_) => 4,
            DestAttr::UThresh(_) => 5,
            DestAttr::LThresh(_) => 6,
            DestAttr::ActiveConns(_) => 7,
            DestAttr::InactConns(_) => 8,
            DestAttr::PersistConns(_) => 9,
            DestAttr::Stats(n) => n.kind(10),
            DestAttr::AddrFamily(_) => 11,
            DestAttr::Stats64(n) => n.kind(12),
            DestAttr::TunType(_) => 13,
            DestAttr::TunPort(_) => 14,
            DestAttr::TunFlags(_) => 15,
            DestAttr::Unknown(r) => r.kind,
        }
    }
    fn emit_value(&self, b: &mut [u8]) {
        let _ = match self {
            DestAttr::Addr(a) => {
                b.copy_from_slice(&a.0);
                Ok(())
            }
            DestAttr::Port(v) | DestAttr::TunPort(v) => emit_u16_be(b, *v),
            DestAttr::AddrFamily(v) | DestAttr::TunFlags(v) => emit_u16(b, *v),
            DestAttr::TunType(v) => {
                b[0] = *v;
                Ok(())
            }
            DestAttr::FwdMethod(v)
            | DestAttr::Weight(v)
            | DestAttr::UThresh(v)
            | DestAttr::LThresh(v)
            | DestAttr::ActiveConns(v)
            | DestAttr::InactConns(v)
            | DestAttr::PersistConns(v) => emit_u32(b, *v),
            DestAttr::Stats(n) | DestAttr::Stats64(n) => {
                n.emit(b);
                Ok(())
            }
            DestAttr::Unknown(r) => {
                r.emit_value(b);
                Ok(())
            }
        };
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() & NLA_TYPE_MASK {
            1 => DestAttr::Addr(InetAddr(v.to_vec())),
            2 => DestAttr::Port(parse_u16_be(v).context("IPVS_DEST_ATTR_PORT")?),
            3 => DestAttr::FwdMethod(parse_u32(v).context("IPVS_DEST_ATTR_FWD_METHOD")?),
            4 => DestAttr::Weight(parse_u32(v).context("IPVS_DEST_ATTR_WEIGHT")?),
            5 => DestAttr::UThresh(parse_u32(v).context("IPVS_DEST_ATTR_U_THRESH")?),
            6 => DestAttr::LThresh(parse_u32(v).context("IPVS_DEST_ATTR_L_THRESH")?),
            7 => DestAttr::ActiveConns(parse_u32(v).context("IPVS_DEST_ATTR_ACTIVE_CONNS")?),
            8 => DestAttr::InactConns(parse_u32(v).context("IPVS_DEST_ATTR_INACT_CONNS")?),
            9 => DestAttr::PersistConns(parse_u32(v).context("IPVS_DEST_ATTR_PERSIST_CONNS")?),
            10 => DestAttr::Stats(parse_nest(
                buf,
                "IPVS_DEST_ATTR_STATS",
                |b: &NlaBuffer<&[u8]>| StatsAttr::parse(b),
            )?),
            11 => DestAttr::AddrFamily(parse_u16(v).context("IPVS_DEST_ATTR_ADDR_FAMILY")?),
            12 => DestAttr::Stats64(parse_nest(
                buf,
                "IPVS_DEST_ATTR_STATS64",
                |b: &NlaBuffer<&[u8]>| StatsAttr::parse(b),
            )?),
            13 => DestAttr::TunType(parse_u8(v).context("IPVS_DEST_ATTR_TUN_TYPE")?),
            14 => DestAttr::TunPort(parse_u16_be(v).context("IPVS_DEST_ATTR_TUN_PORT")?),
            15 => DestAttr::TunFlags(parse_u16(v).context("IPVS_DEST_ATTR_TUN_FLAGS")?),
            _ => DestAttr::Unknown(raw(buf)),
        })
    }
}

/// Attributes of `IPVS_CMD_ATTR_DAEMON` (`IPVS_DAEMON_ATTR_*`), the connection sync daemon.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DaemonAttr {
    /// `IPVS_DAEMON_ATTR_STATE` (1): master 1, backup 2.
    State(u32),
    /// `IPVS_DAEMON_ATTR_MCAST_IFN` (2).
    McastIfn(String),
    /// `IPVS_DAEMON_ATTR_SYNC_ID` (3).
    SyncId(u32),
    /// `IPVS_DAEMON_ATTR_SYNC_MAXLEN` (4).
    SyncMaxlen(u16),
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP` (5).
    McastGroup(Ipv4Addr),
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP6` (6).
    McastGroup6(Ipv6Addr),
    /// `IPVS_DAEMON_ATTR_MCAST_PORT` (7).
    McastPort(u16),
    /// `IPVS_DAEMON_ATTR_MCAST_TTL` (8).
    McastTtl(u8),
    /// Anything else.
    Unknown(RawAttr),
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        match self {
            DaemonAttr::State(_) | DaemonAttr::SyncId(_) | DaemonAttr::McastGroup(_) => 4,
            DaemonAttr::McastIfn(s) => string_len(s),
            DaemonAttr::SyncMaxlen(_) | DaemonAttr::McastPort(_) => 2,
            DaemonAttr::McastGroup6(_) => 16,
            DaemonAttr::McastTtl(_) => 1,
            DaemonAttr::Unknown(r) => r.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            DaemonAttr::State(_) => 1,
            DaemonAttr::McastIfn(_) => 2,
            DaemonAttr::SyncId(_) => 3,
            DaemonAttr::SyncMaxlen(_) => 4,
            DaemonAttr::McastGroup(_) => 5,
            DaemonAttr::McastGroup6(_) => 6,
            DaemonAttr::McastPort(_) => 7,
            DaemonAttr::McastTtl(_) => 8,
            DaemonAttr::Unknown(r) => r.kind,
        }
    }
    fn emit_value(&self, b: &mut [u8]) {
        let _ = match self {
            DaemonAttr::State(v) | DaemonAttr::SyncId(v) => emit_u32(b, *v),
            DaemonAttr::McastIfn(s) => {
                emit_string(b, s);
                Ok(())
            }
            DaemonAttr::SyncMaxlen(v) | DaemonAttr::McastPort(v) => emit_u16(b, *v),
            DaemonAttr::McastGroup(a) => {
                b.copy_from_slice(&a.octets());
                Ok(())
            }
            DaemonAttr::McastGroup6(a) => {
                b.copy_from_slice(&a.octets());
                Ok(())
            }
            DaemonAttr::McastTtl(v) => {
                b[0] = *v;
                Ok(())
            }
            DaemonAttr::Unknown(r) => {
                r.emit_value(b);
                Ok(())
            }
        };
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for DaemonAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() & NLA_TYPE_MASK {
            1 => DaemonAttr::State(parse_u32(v).context("IPVS_DAEMON_ATTR_STATE")?),
            2 => DaemonAttr::McastIfn(parse_string(v).context("IPVS_DAEMON_ATTR_MCAST_IFN")?),
            3 => DaemonAttr::SyncId(parse_u32(v).context("IPVS_DAEMON_ATTR_SYNC_ID")?),
            4 => DaemonAttr::SyncMaxlen(parse_u16(v).context("IPVS_DAEMON_ATTR_SYNC_MAXLEN")?),
            5 => {
                exact(buf, 4, "IPVS_DAEMON_ATTR_MCAST_GROUP")?;
                DaemonAttr::McastGroup(Ipv4Addr::new(v[0], v[1], v[2], v[3]))
            }
            6 => {
                exact(buf, 16, "IPVS_DAEMON_ATTR_MCAST_GROUP6")?;
                let mut b = [0u8; 16];
                b.copy_from_slice(v);
                DaemonAttr::McastGroup6(Ipv6Addr::from(b))
            }
            7 => DaemonAttr::McastPort(parse_u16(v).context("IPVS_DAEMON_ATTR_MCAST_PORT")?),
            8 => DaemonAttr::McastTtl(parse_u8(v).context("IPVS_DAEMON_ATTR_MCAST_TTL")?),
            _ => DaemonAttr::Unknown(raw(buf)),
        })
    }
}
