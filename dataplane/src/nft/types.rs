//! nft's data types: what an expression yields, how its constants are spelled, how its values
//! print. Shared by the text emitter (a mark prints as `0x00004000`, an interface name
//! quoted) and the evaluator (`"tcp"` is protocol 6 when compared with `meta l4proto`).
//!
//! ```text
//!   DType::of(&Expr)          ip daddr -> Ipv4Addr, meta mark -> Mark, a . b -> Concat([..])
//!   DType::from_name("ct_state")
//!   parse_const(&DType, &Expr) -> Const { One | Range | Wild | Concat }   (RHS constants)
//!   Datum                      a value read from the packet (Addr, Int, Str, Bool, Concat)
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use super::expr::{Expr, Payload};

/// The data type of an expression or of a set key, after nft's datatype names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DType {
    /// `ipv4_addr`.
    Ipv4Addr,
    /// `ipv6_addr`.
    Ipv6Addr,
    /// `inet_service` (a port).
    InetService,
    /// `inet_proto` (an IP protocol number).
    InetProto,
    /// `mark` (printed in hex).
    Mark,
    /// `ifname` (an interface name, `*` wildcard at the end).
    IfName,
    /// `iface_index` (printed as a quoted name).
    IfIndex,
    /// `ct_state` (flags).
    CtState,
    /// `ct_status` (flags).
    CtStatus,
    /// `ct_dir`.
    CtDir,
    /// `nf_proto` (`ipv4`, `ipv6`).
    NfProto,
    /// `pkt_type`.
    PktType,
    /// `icmp_type`.
    IcmpType,
    /// `icmpv6_type`.
    Icmpv6Type,
    /// `icmp_code`.
    IcmpCode,
    /// `icmpv6_code`.
    Icmpv6Code,
    /// `icmpx_code`.
    IcmpxCode,
    /// `tcp_flag` (flags).
    TcpFlag,
    /// `fib_addrtype`.
    FibAddrType,
    /// `ether_type`.
    EtherType,
    /// `boolean` (`exists`, `missing`).
    Boolean,
    /// `verdict`.
    Verdict,
    /// `integer` and anything numeric without names.
    Integer,
    /// A concatenation.
    Concat(Vec<DType>),
    /// A type the code does not know.
    Unknown(String),
}

impl DType {
    /// The type of a set key or map data type name (`ipv4_addr`, `inet_service`, …).
    pub fn from_name(name: &str) -> DType {
        match name {
            "ipv4_addr" => DType::Ipv4Addr,
            "ipv6_addr" => DType::Ipv6Addr,
            "inet_service" => DType::InetService,
            "inet_proto" => DType::InetProto,
            "mark" => DType::Mark,
            "ifname" => DType::IfName,
            "iface_index" => DType::IfIndex,
            "ct_state" => DType::CtState,
            "ct_status" => DType::CtStatus,
            "ct_dir" => DType::CtDir,
            "nf_proto" => DType::NfProto,
            "pkt_type" => DType::PktType,
            "icmp_type" => DType::IcmpType,
            "icmpv6_type" => DType::Icmpv6Type,
            "icmp_code" => DType::IcmpCode,
            "icmpv6_code" => DType::Icmpv6Code,
            "icmpx_code" => DType::IcmpxCode,
            "tcp_flag" => DType::TcpFlag,
            "fib_addrtype" => DType::FibAddrType,
            "ether_type" => DType::EtherType,
            "boolean" => DType::Boolean,
            "verdict" => DType::Verdict,
            "integer" | "uid" | "gid" | "classid" | "time" | "day" | "hour" | "realm"
            | "devgroup" | "cgroupv2" => DType::Integer,
            other => DType::Unknown(other.to_string()),
        }
    }

    /// The type of a list of type names (one name, or a concatenation).
    pub fn from_names(names: &[String]) -> DType {
        match names {
            [one] => DType::from_name(one),
            many => DType::Concat(many.iter().map(|n| DType::from_name(n)).collect()),
        }
    }

    /// Whether values of the type are bit flags (compared with the implicit `in` operator).
    pub fn is_bitmask(&self) -> bool {
        matches!(self, DType::CtState | DType::CtStatus | DType::TcpFlag)
    }

    /// The type an expression yields (the type its constants are spelled in).
    pub fn of(e: &Expr) -> DType {
        match e {
            Expr::Payload(Payload::Field { protocol, field }) => payload_type(protocol, field),
            Expr::Meta { key } => match key.as_str() {
                "l4proto" => DType::InetProto,
                "mark" => DType::Mark,
                "iifname" | "oifname" | "bri_iifname" | "bri_oifname" => DType::IfName,
                "iif" | "oif" => DType::IfIndex,
                "nfproto" => DType::NfProto,
                "pkttype" => DType::PktType,
                "protocol" => DType::EtherType,
                _ => DType::Integer,
            },
            Expr::Ct(ct) => {
                let key = ct.key.as_str();
                let fam = ct.family.as_deref();
                match key {
                    "state" => DType::CtState,
                    "status" => DType::CtStatus,
                    "mark" => DType::Mark,
                    "direction" => DType::CtDir,
                    "l3proto" => DType::NfProto,
                    "protocol" => DType::InetProto,
                    "proto-src" | "proto-dst" => DType::InetService,
                    "ip saddr" | "ip daddr" => DType::Ipv4Addr,
                    "ip6 saddr" | "ip6 daddr" => DType::Ipv6Addr,
                    "saddr" | "daddr" => match fam {
                        Some("ip6") => DType::Ipv6Addr,
                        Some("ip") => DType::Ipv4Addr,
                        _ => DType::Unknown("ct address".to_string()),
                    },
                    _ => DType::Integer,
                }
            }
            Expr::Fib(f) => match f.result.as_str() {
                "type" => DType::FibAddrType,
                "oifname" => DType::IfName,
                _ => DType::IfIndex,
            },
            Expr::Numgen(_) => DType::Integer,
            Expr::Binop(_, l, _) => DType::of(l),
            Expr::Concat(parts) => DType::Concat(parts.iter().map(DType::of).collect()),
            Expr::Map { .. } => DType::Unknown("map".to_string()),
            _ => DType::Unknown(String::new()),
        }
    }
}

fn payload_type(protocol: &str, field: &str) -> DType {
    match (protocol, field) {
        ("ip", "saddr" | "daddr") => DType::Ipv4Addr,
        ("ip6", "saddr" | "daddr") => DType::Ipv6Addr,
        ("ip", "protocol") | ("ip6", "nexthdr") => DType::InetProto,
        ("tcp" | "udp" | "udplite" | "sctp" | "dccp" | "th", "sport" | "dport") => {
            DType::InetService
        }
        ("tcp", "flags") => DType::TcpFlag,
        ("icmp", "type") => DType::IcmpType,
        ("icmpv6", "type") => DType::Icmpv6Type,
        ("icmp", "code") => DType::IcmpCode,
        ("icmpv6", "code") => DType::Icmpv6Code,
        ("ether", "type") | ("vlan", "type") => DType::EtherType,
        _ => DType::Integer,
    }
}

/// A value read from a packet (or a constant of a rule), typed enough to compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Datum {
    /// An IPv4 or IPv6 address.
    Addr(IpAddr),
    /// A number: port, protocol, mark, flags, type code, numgen value.
    Int(u64),
    /// An interface name.
    Str(String),
    /// A boolean (`fib … oif exists`).
    Bool(bool),
    /// The parts of a concatenation.
    Concat(Vec<Datum>),
}

impl Datum {
    /// Order within one type: addresses of one family, numbers, names. `None` across types.
    pub fn cmp_same(&self, other: &Datum) -> Option<Ordering> {
        match (self, other) {
            (Datum::Addr(IpAddr::V4(a)), Datum::Addr(IpAddr::V4(b))) => Some(a.cmp(b)),
            (Datum::Addr(IpAddr::V6(a)), Datum::Addr(IpAddr::V6(b))) => Some(a.cmp(b)),
            (Datum::Int(a), Datum::Int(b)) => Some(a.cmp(b)),
            (Datum::Str(a), Datum::Str(b)) => Some(a.cmp(b)),
            (Datum::Bool(a), Datum::Bool(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_int(&self) -> Option<u64> {
        match self {
            Datum::Int(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Addr(a) => write!(f, "{a}"),
            Datum::Int(n) => write!(f, "{n}"),
            Datum::Str(s) => write!(f, "\"{s}\""),
            Datum::Bool(b) => f.write_str(if *b { "exists" } else { "missing" }),
            Datum::Concat(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" . ")?;
                    }
                    p.fmt(f)?;
                }
                Ok(())
            }
        }
    }
}

/// A constant of a rule or set, interpreted in the type of what it is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Const {
    /// One value.
    One(Datum),
    /// An inclusive range (ranges and prefixes).
    Range(Datum, Datum),
    /// An interface name ending in `*`: any name with this prefix.
    Wild(String),
    /// Per-part constants of a concatenation.
    Concat(Vec<Const>),
}

/// Three-valued comparison result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tri {
    Yes,
    No,
    Unknown,
}

impl Tri {
    pub(crate) fn from(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }

    pub(crate) fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Unknown,
        }
    }
}

impl Const {
    /// Whether `d` is within this constant; `None` in `d` (a part that is not known) gives
    /// `Unknown` unless another part already decides.
    pub(crate) fn contains(&self, d: &Option<Datum>) -> Tri {
        match (self, d) {
            (Const::Concat(cs), Some(Datum::Concat(ds))) if cs.len() == ds.len() => {
                cs.iter().zip(ds).fold(Tri::Yes, |acc, (c, d)| {
                    acc.and(c.contains(&Some(d.clone())))
                })
            }
            (Const::Concat(_), Some(_)) => Tri::No,
            (_, None) => Tri::Unknown,
            (Const::One(c), Some(d)) => Tri::from(c == d),
            (Const::Range(lo, hi), Some(d)) => Tri::from(
                matches!(lo.cmp_same(d), Some(Ordering::Less | Ordering::Equal))
                    && matches!(d.cmp_same(hi), Some(Ordering::Less | Ordering::Equal)),
            ),
            (Const::Wild(prefix), Some(Datum::Str(s))) => Tri::from(s.starts_with(prefix)),
            (Const::Wild(_), Some(_)) => Tri::No,
        }
    }

    /// Like [`Const::contains`] for a concatenation whose parts may be unknown.
    pub(crate) fn contains_parts(&self, parts: &[Option<Datum>]) -> Tri {
        match self {
            Const::Concat(cs) if cs.len() == parts.len() => cs
                .iter()
                .zip(parts)
                .fold(Tri::Yes, |acc, (c, d)| acc.and(c.contains(d))),
            Const::Concat(_) => Tri::No,
            single => match parts {
                [one] => single.contains(one),
                _ => Tri::No,
            },
        }
    }
}

const CT_STATE: &[(&str, u64)] = &[
    ("invalid", 1),
    ("established", 2),
    ("related", 4),
    ("new", 8),
    ("untracked", 64),
];
const CT_STATUS: &[(&str, u64)] = &[
    ("expected", 1),
    ("seen-reply", 2),
    ("assured", 4),
    ("confirmed", 8),
    ("snat", 16),
    ("dnat", 32),
    ("dying", 512),
];
const TCP_FLAG: &[(&str, u64)] = &[
    ("fin", 1),
    ("syn", 2),
    ("rst", 4),
    ("psh", 8),
    ("ack", 16),
    ("urg", 32),
    ("ecn", 64),
    ("cwr", 128),
];
const NF_PROTO: &[(&str, u64)] = &[("ipv4", 2), ("ipv6", 10)];
const PKT_TYPE: &[(&str, u64)] = &[
    ("host", 0),
    ("unicast", 0),
    ("broadcast", 1),
    ("multicast", 2),
    ("other", 3),
];
const ETHER_TYPE: &[(&str, u64)] = &[
    ("ip", 0x0800),
    ("arp", 0x0806),
    ("ip6", 0x86dd),
    ("vlan", 0x8100),
];
const CT_DIR: &[(&str, u64)] = &[("original", 0), ("reply", 1)];
/// `/etc/protocols` names nft prints for `inet_proto`.
const INET_PROTO: &[(&str, u64)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("tcp", 6),
    ("egp", 8),
    ("udp", 17),
    ("ipv6", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ospf", 89),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("udplite", 136),
    ("dccp", 33),
];
const ICMP_TYPE: &[(&str, u64)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("info-request", 15),
    ("info-reply", 16),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
];
const ICMPV6_TYPE: &[(&str, u64)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-listener-query", 130),
    ("mld-listener-report", 131),
    ("mld-listener-done", 132),
    ("mld-listener-reduction", 132),
    ("nd-router-solicit", 133),
    ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135),
    ("nd-neighbor-advert", 136),
    ("nd-redirect", 137),
    ("router-renumbering", 138),
    ("ind-neighbor-solicit", 141),
    ("ind-neighbor-advert", 142),
    ("mld2-listener-report", 143),
];
const ICMP_CODE: &[(&str, u64)] = &[
    ("net-unreachable", 0),
    ("host-unreachable", 1),
    ("prot-unreachable", 2),
    ("port-unreachable", 3),
    ("frag-needed", 4),
    ("net-prohibited", 9),
    ("host-prohibited", 10),
    ("admin-prohibited", 13),
];
const ICMPV6_CODE: &[(&str, u64)] = &[
    ("no-route", 0),
    ("admin-prohibited", 1),
    ("addr-unreachable", 3),
    ("port-unreachable", 4),
    ("policy-fail", 5),
    ("reject-route", 6),
];
const ICMPX_CODE: &[(&str, u64)] = &[
    ("no-route", 0),
    ("port-unreachable", 1),
    ("host-unreachable", 2),
    ("admin-prohibited", 3),
];
/// `fib … type` names: the kernel's route types (RTN_*), in number order.
pub(crate) const FIB_ADDRTYPE: &[(&str, u64)] = &[
    ("unspec", 0),
    ("unicast", 1),
    ("local", 2),
    ("broadcast", 3),
    ("anycast", 4),
    ("multicast", 5),
    ("blackhole", 6),
    ("unreachable", 7),
    ("prohibit", 8),
    ("throw", 9),
    ("nat", 10),
    ("xresolve", 11),
];

fn names(ty: &DType) -> &'static [(&'static str, u64)] {
    match ty {
        DType::CtState => CT_STATE,
        DType::CtStatus => CT_STATUS,
        DType::TcpFlag => TCP_FLAG,
        DType::NfProto => NF_PROTO,
        DType::PktType => PKT_TYPE,
        DType::EtherType => ETHER_TYPE,
        DType::CtDir => CT_DIR,
        DType::InetProto => INET_PROTO,
        DType::IcmpType => ICMP_TYPE,
        DType::Icmpv6Type => ICMPV6_TYPE,
        DType::IcmpCode => ICMP_CODE,
        DType::Icmpv6Code => ICMPV6_CODE,
        DType::IcmpxCode => ICMPX_CODE,
        DType::FibAddrType => FIB_ADDRTYPE,
        _ => &[],
    }
}

/// The number of a symbolic constant of type `ty` (`tcp` → 6, `new` → 8).
pub fn symbol_value(ty: &DType, name: &str) -> Option<u64> {
    names(ty).iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// A single (non-range) value of type `ty` from a string or number immediate.
fn datum(ty: &DType, e: &Expr) -> Option<Datum> {
    match (ty, e) {
        (DType::Ipv4Addr | DType::Ipv6Addr, Expr::String(s)) => {
            let a: IpAddr = s.parse().ok()?;
            let ok = matches!(
                (ty, a),
                (DType::Ipv4Addr, IpAddr::V4(_)) | (DType::Ipv6Addr, IpAddr::V6(_))
            );
            ok.then_some(Datum::Addr(a))
        }
        (DType::IfName | DType::IfIndex, Expr::String(s)) => Some(Datum::Str(s.clone())),
        (DType::Boolean, Expr::Bool(b)) => Some(Datum::Bool(*b)),
        (DType::Boolean, Expr::String(s)) => match s.as_str() {
            "exists" => Some(Datum::Bool(true)),
            "missing" => Some(Datum::Bool(false)),
            _ => None,
        },
        (DType::IfIndex, Expr::Bool(b)) => Some(Datum::Bool(*b)),
        (_, Expr::Number(n)) => Some(Datum::Int(*n)),
        (_, Expr::String(s)) => symbol_value(ty, s)
            .or_else(|| parse_number(s))
            .map(Datum::Int),
        (_, Expr::List(items)) if ty.is_bitmask() => {
            let mut bits = 0;
            for i in items {
                bits |= datum(ty, i)?.as_int()?;
            }
            Some(Datum::Int(bits))
        }
        _ => None,
    }
}

/// A decimal or `0x` hexadecimal number.
pub fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The lowest and highest address of `addr/len`.
fn prefix_bounds(addr: IpAddr, len: u32) -> Option<(IpAddr, IpAddr)> {
    match addr {
        IpAddr::V4(a) => {
            if len > 32 {
                return None;
            }
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let lo = u32::from(a) & mask;
            Some((IpAddr::V4(lo.into()), IpAddr::V4((lo | !mask).into())))
        }
        IpAddr::V6(a) => {
            if len > 128 {
                return None;
            }
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            let lo = u128::from(a) & mask;
            Some((IpAddr::V6(lo.into()), IpAddr::V6((lo | !mask).into())))
        }
    }
}

/// A constant of type `ty` (the right side of a match, a set element key); `None` when it is
/// not a constant or not spelled in a way the code knows.
pub(crate) fn parse_const(ty: &DType, e: &Expr) -> Option<Const> {
    match e {
        Expr::Prefix { addr, len } => {
            let Some(Datum::Addr(a)) = datum(ty, addr) else {
                return None;
            };
            let (lo, hi) = prefix_bounds(a, *len)?;
            Some(Const::Range(Datum::Addr(lo), Datum::Addr(hi)))
        }
        Expr::Range(a, b) => Some(Const::Range(datum(ty, a)?, datum(ty, b)?)),
        Expr::Concat(parts) => {
            let DType::Concat(tys) = ty else { return None };
            if tys.len() != parts.len() {
                return None;
            }
            parts
                .iter()
                .zip(tys)
                .map(|(p, t)| parse_const(t, p))
                .collect::<Option<Vec<_>>>()
                .map(Const::Concat)
        }
        Expr::String(s) if *ty == DType::IfName && s.ends_with('*') && !s.ends_with("\\*") => {
            Some(Const::Wild(s.trim_end_matches('*').to_string()))
        }
        other => datum(ty, other).map(Const::One),
    }
}

/// How nft prints a number of type `ty`: a mark in 8-digit hex, a named constant by name,
/// anything else in decimal.
pub(crate) fn number_text(ty: &DType, n: u64) -> String {
    match ty {
        DType::Mark => format!("{n:#010x}"),
        DType::CtState | DType::CtStatus | DType::TcpFlag => {
            let set: Vec<&str> = names(ty)
                .iter()
                .filter(|(_, bit)| n & bit != 0)
                .map(|(name, _)| *name)
                .collect();
            let covered: u64 = names(ty).iter().map(|(_, b)| b).fold(0, |a, b| a | b);
            if set.is_empty() || n & !covered != 0 {
                format!("{n:#x}")
            } else {
                set.join(",")
            }
        }
        _ => match names(ty).iter().find(|(_, v)| *v == n) {
            Some((name, _)) if *ty != DType::InetService => (*name).to_string(),
            _ => n.to_string(),
        },
    }
}

/// nft's time format from seconds (`10800` → `3h`, `7199` → `1h59m59s`).
pub fn time_text(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_take_the_type_of_the_left_side() {
        let c = parse_const(&DType::InetProto, &Expr::str("tcp")).unwrap();
        assert_eq!(c, Const::One(Datum::Int(6)));
        let c = parse_const(
            &DType::Ipv4Addr,
            &Expr::prefix("198.18.64.0/18".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(
            c.contains(&Some(Datum::Addr("198.18.127.255".parse().unwrap()))),
            Tri::Yes
        );
        assert_eq!(
            c.contains(&Some(Datum::Addr("198.18.128.0".parse().unwrap()))),
            Tri::No
        );
        // An IPv6 address is never an ipv4_addr constant.
        assert_eq!(
            parse_const(&DType::Ipv4Addr, &Expr::str("2001:db8::1")),
            None
        );
        let flags = Expr::List(vec![Expr::str("established"), Expr::str("related")]);
        assert_eq!(
            parse_const(&DType::CtState, &flags),
            Some(Const::One(Datum::Int(6)))
        );
        assert_eq!(
            parse_const(&DType::IfName, &Expr::str("eth*")),
            Some(Const::Wild("eth".into()))
        );
    }

    #[test]
    fn numbers_and_times_print_as_nft_does() {
        assert_eq!(number_text(&DType::Mark, 0x4000), "0x00004000");
        assert_eq!(number_text(&DType::CtState, 6), "established,related");
        assert_eq!(number_text(&DType::InetProto, 47), "gre");
        assert_eq!(number_text(&DType::InetService, 22), "22");
        assert_eq!(time_text(10800), "3h");
        assert_eq!(time_text(7199), "1h59m59s");
        assert_eq!(time_text(90061), "1d1h1m1s");
    }
}
