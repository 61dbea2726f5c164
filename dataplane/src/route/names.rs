//! The names `ip` prints for numbers: routing tables, route protocols, scopes, route types,
//! next-hop flags and IP protocols.
//!
//! ```text
//!   "main" / "254" / "100" / "bird" / "link" / "blackhole"   (text in `ip -j` output)
//!        | parse                                   ^ Display
//!        v                                         |
//!   TableId / RouteProtocol / Scope / RouteType / NhFlag / IpProto
//! ```
//!
//! The name tables are iproute2's built-in ones plus the files Debian ships in `/etc/iproute2`
//! (`rt_tables`, `rt_protos`, `rt_scopes`). A name this module does not know is kept as text
//! (`Named` / `Other`) so that it prints back unchanged; it is never mapped to a guess.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Serialize`/`Deserialize` as the text form (`Display` / `parse`).
macro_rules! text_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(<$t>::parse(&s))
            }
        }
    };
}

/// A routing table, as `ip route ... table T` and `ip rule ... lookup T` name it.
///
/// Numbers 253, 254 and 255 are `default`, `main` and `local` (`/etc/iproute2/rt_tables`).
/// A name that is not in iproute2's default `rt_tables` (a site-local name from
/// `/etc/iproute2/rt_tables.d`) is kept as [`TableId::Named`]: its number is unknown here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableId {
    /// A table by number (`RT_TABLE_MAIN` = 254, ...).
    Id(u32),
    /// A table by a name this crate cannot map to a number.
    Named(String),
}

impl TableId {
    /// `RT_TABLE_UNSPEC` (0).
    pub const UNSPEC: TableId = TableId::Id(0);
    /// `RT_TABLE_DEFAULT` (253), looked up by the last default IPv4 rule.
    pub const DEFAULT: TableId = TableId::Id(253);
    /// `RT_TABLE_MAIN` (254), where `ip route add` puts routes by default.
    pub const MAIN: TableId = TableId::Id(254);
    /// `RT_TABLE_LOCAL` (255): local, broadcast and anycast routes the kernel adds per address.
    pub const LOCAL: TableId = TableId::Id(255);

    /// Parses a table as `ip` prints it: `local`, `main`, `default`, `unspec`, a number, or
    /// another name (kept as [`TableId::Named`]).
    pub fn parse(s: &str) -> TableId {
        match s {
            "local" => TableId::LOCAL,
            "main" => TableId::MAIN,
            "default" => TableId::DEFAULT,
            "unspec" => TableId::UNSPEC,
            _ => match s.parse::<u32>() {
                Ok(n) => TableId::Id(n),
                Err(_) => TableId::Named(s.to_string()),
            },
        }
    }

    /// The table number, when known.
    pub fn number(&self) -> Option<u32> {
        match self {
            TableId::Id(n) => Some(*n),
            TableId::Named(_) => None,
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableId::Id(255) => f.write_str("local"),
            TableId::Id(254) => f.write_str("main"),
            TableId::Id(253) => f.write_str("default"),
            TableId::Id(0) => f.write_str("unspec"),
            TableId::Id(n) => write!(f, "{n}"),
            TableId::Named(s) => f.write_str(s),
        }
    }
}
text_serde!(TableId);

/// Who installed a route or rule (`rtm_protocol`, `ip route ... proto P`), as in
/// `/etc/iproute2/rt_protos`.
///
/// Debian's FRR package also names 196 `static` in `rt_protos.d/frr.conf`; the name `static`
/// is read as `RTPROT_STATIC` (4), the number iproute2's own table gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteProtocol {
    /// A protocol by number (`RTPROT_KERNEL` = 2, `RTPROT_BOOT` = 3, `RTPROT_BGP` = 186, ...).
    Id(u8),
    /// A name this crate does not map to a number, kept as printed.
    Named(String),
}

/// `(number, name)` of the route protocols iproute2 6.1 and Debian's FRR know.
const PROTOCOLS: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (18, "keepalived"),
    (42, "babel"),
    (99, "openr"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (190, "ripng"),
    (191, "nhrp"),
    (192, "eigrp"),
    (193, "ldp"),
    (194, "sharp"),
    (195, "pbr"),
    (197, "openfabric"),
];

impl RouteProtocol {
    /// `RTPROT_KERNEL` (2): routes the kernel adds for addresses.
    pub const KERNEL: RouteProtocol = RouteProtocol::Id(2);
    /// `RTPROT_BOOT` (3): what `ip route add` uses unless told otherwise.
    pub const BOOT: RouteProtocol = RouteProtocol::Id(3);
    /// `RTPROT_STATIC` (4).
    pub const STATIC: RouteProtocol = RouteProtocol::Id(4);
    /// `RTPROT_BIRD` (12).
    pub const BIRD: RouteProtocol = RouteProtocol::Id(12);
    /// `RTPROT_BGP` (186), what bgpd installs its routes with.
    pub const BGP: RouteProtocol = RouteProtocol::Id(186);

    /// Parses a protocol name or number as `ip` prints it.
    pub fn parse(s: &str) -> RouteProtocol {
        if let Some((n, _)) = PROTOCOLS.iter().find(|(_, name)| *name == s) {
            return RouteProtocol::Id(*n);
        }
        match s.parse::<u8>() {
            Ok(n) => RouteProtocol::Id(n),
            Err(_) => RouteProtocol::Named(s.to_string()),
        }
    }

    /// The protocol number, when known.
    pub fn number(&self) -> Option<u8> {
        match self {
            RouteProtocol::Id(n) => Some(*n),
            RouteProtocol::Named(_) => None,
        }
    }
}

impl fmt::Display for RouteProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteProtocol::Id(n) => match PROTOCOLS.iter().find(|(id, _)| id == n) {
                Some((_, name)) => f.write_str(name),
                None => write!(f, "{n}"),
            },
            RouteProtocol::Named(s) => f.write_str(s),
        }
    }
}
text_serde!(RouteProtocol);

/// Route and address scope (`rtm_scope`, `ifa_scope`), as in `/etc/iproute2/rt_scopes`.
///
/// Larger numbers are narrower: `global` (0) < `site` (200) < `link` (253) < `host` (254) <
/// `nowhere` (255).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(pub u8);

impl Scope {
    /// `RT_SCOPE_UNIVERSE` (0), printed `global`.
    pub const GLOBAL: Scope = Scope(0);
    /// `RT_SCOPE_SITE` (200).
    pub const SITE: Scope = Scope(200);
    /// `RT_SCOPE_LINK` (253): directly attached destinations.
    pub const LINK: Scope = Scope(253);
    /// `RT_SCOPE_HOST` (254): the host itself.
    pub const HOST: Scope = Scope(254);
    /// `RT_SCOPE_NOWHERE` (255).
    pub const NOWHERE: Scope = Scope(255);

    /// Parses a scope name or number; `None` for anything else.
    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "global" | "universe" => Scope::GLOBAL,
            "site" => Scope::SITE,
            "link" => Scope::LINK,
            "host" => Scope::HOST,
            "nowhere" => Scope::NOWHERE,
            _ => Scope(s.parse().ok()?),
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("global"),
            200 => f.write_str("site"),
            253 => f.write_str("link"),
            254 => f.write_str("host"),
            255 => f.write_str("nowhere"),
            n => write!(f, "{n}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Route type (`rtm_type`), the word `ip route` prints before the destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteType {
    /// `RTN_UNICAST`: a gateway or directly attached route (printed without a type).
    Unicast,
    /// `RTN_LOCAL`: the destination is an address of this host.
    Local,
    /// `RTN_BROADCAST`: a broadcast address, delivered locally and sent as broadcast.
    Broadcast,
    /// `RTN_ANYCAST`: an anycast address of this host (IPv6 subnet-router anycast).
    Anycast,
    /// `RTN_MULTICAST`.
    Multicast,
    /// `RTN_BLACKHOLE`: silently discard (`EINVAL` to a local sender).
    Blackhole,
    /// `RTN_UNREACHABLE`: discard, ICMP host unreachable (`EHOSTUNREACH`).
    Unreachable,
    /// `RTN_PROHIBIT`: discard, ICMP administratively prohibited (`EACCES`).
    Prohibit,
    /// `RTN_THROW`: stop looking in this table; policy routing continues with the next rule.
    Throw,
    /// `RTN_NAT` (obsolete stateless NAT).
    Nat,
    /// `RTN_XRESOLVE`.
    Xresolve,
    /// A type this crate does not know, kept as printed (a number or a name).
    Other(String),
}

impl RouteType {
    /// Parses the `type` word `ip` prints.
    pub fn parse(s: &str) -> RouteType {
        match s {
            "unicast" => RouteType::Unicast,
            "local" => RouteType::Local,
            "broadcast" => RouteType::Broadcast,
            "anycast" => RouteType::Anycast,
            "multicast" => RouteType::Multicast,
            "blackhole" => RouteType::Blackhole,
            "unreachable" => RouteType::Unreachable,
            "prohibit" => RouteType::Prohibit,
            "throw" => RouteType::Throw,
            "nat" => RouteType::Nat,
            "xresolve" => RouteType::Xresolve,
            other => RouteType::Other(other.to_string()),
        }
    }

    /// Whether the type rejects packets (blackhole, unreachable, prohibit, throw).
    pub fn is_reject(&self) -> bool {
        matches!(
            self,
            RouteType::Blackhole | RouteType::Unreachable | RouteType::Prohibit | RouteType::Throw
        )
    }
}

impl fmt::Display for RouteType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteType::Unicast => "unicast",
            RouteType::Local => "local",
            RouteType::Broadcast => "broadcast",
            RouteType::Anycast => "anycast",
            RouteType::Multicast => "multicast",
            RouteType::Blackhole => "blackhole",
            RouteType::Unreachable => "unreachable",
            RouteType::Prohibit => "prohibit",
            RouteType::Throw => "throw",
            RouteType::Nat => "nat",
            RouteType::Xresolve => "xresolve",
            RouteType::Other(s) => s,
        })
    }
}
text_serde!(RouteType);

/// A next-hop flag (`RTNH_F_*`) as `ip -j route` lists it in `flags`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NhFlag {
    /// `RTNH_F_DEAD`: the next hop's device went down; the kernel skips it.
    Dead,
    /// `RTNH_F_ONLINK`: the gateway is on link even without a covering prefix.
    Onlink,
    /// `RTNH_F_PERVASIVE`.
    Pervasive,
    /// `RTNH_F_OFFLOAD`.
    Offload,
    /// `RTNH_F_TRAP`.
    Trap,
    /// `RTM_F_NOTIFY`.
    Notify,
    /// `RTNH_F_LINKDOWN`: the device has no carrier; used unless
    /// `ignore_routes_with_linkdown` is set.
    Linkdown,
    /// `RTNH_F_UNRESOLVED`.
    Unresolved,
    /// Any other flag, kept as printed (`rt_offload`, `rt_trap`, ...).
    Other(String),
}

impl NhFlag {
    /// Parses a flag word.
    pub fn parse(s: &str) -> NhFlag {
        match s {
            "dead" => NhFlag::Dead,
            "onlink" => NhFlag::Onlink,
            "pervasive" => NhFlag::Pervasive,
            "offload" => NhFlag::Offload,
            "trap" => NhFlag::Trap,
            "notify" => NhFlag::Notify,
            "linkdown" => NhFlag::Linkdown,
            "unresolved" => NhFlag::Unresolved,
            other => NhFlag::Other(other.to_string()),
        }
    }
}

impl fmt::Display for NhFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NhFlag::Dead => "dead",
            NhFlag::Onlink => "onlink",
            NhFlag::Pervasive => "pervasive",
            NhFlag::Offload => "offload",
            NhFlag::Trap => "trap",
            NhFlag::Notify => "notify",
            NhFlag::Linkdown => "linkdown",
            NhFlag::Unresolved => "unresolved",
            NhFlag::Other(s) => s,
        })
    }
}
text_serde!(NhFlag);

/// IP protocol names from Debian's `/etc/protocols`, which `ip rule` prints for `ipproto`.
const IP_PROTOCOLS: &[(u8, &str)] = &[
    (0, "ip"),
    (1, "icmp"),
    (2, "igmp"),
    (3, "ggp"),
    (4, "ipencap"),
    (5, "st"),
    (6, "tcp"),
    (8, "egp"),
    (9, "igp"),
    (12, "pup"),
    (17, "udp"),
    (20, "hmp"),
    (22, "xns-idp"),
    (27, "rdp"),
    (29, "iso-tp4"),
    (33, "dccp"),
    (36, "xtp"),
    (37, "ddp"),
    (38, "idpr-cmtp"),
    (41, "ipv6"),
    (43, "ipv6-route"),
    (44, "ipv6-frag"),
    (45, "idrp"),
    (46, "rsvp"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (57, "skip"),
    (58, "ipv6-icmp"),
    (59, "ipv6-nonxt"),
    (60, "ipv6-opts"),
    (73, "rspf"),
    (81, "vmtp"),
    (88, "eigrp"),
    (89, "ospf"),
    (93, "ax.25"),
    (94, "ipip"),
    (97, "etherip"),
    (98, "encap"),
    (103, "pim"),
    (108, "ipcomp"),
    (112, "vrrp"),
    (115, "l2tp"),
    (124, "isis"),
    (132, "sctp"),
    (133, "fc"),
    (135, "mobility-header"),
    (136, "udplite"),
    (137, "mpls-in-ip"),
    (138, "manet"),
    (139, "hip"),
    (140, "shim6"),
    (141, "wesp"),
    (142, "rohc"),
    (143, "ethernet"),
];

/// An IP protocol number from the text `ip rule` prints for `ipproto`: a name from
/// `/etc/protocols`, `ipproto-N` (no name known) or a decimal number.
pub(crate) fn ip_proto_number(s: &str) -> Option<u8> {
    if let Some((n, _)) = IP_PROTOCOLS.iter().find(|(_, name)| *name == s) {
        return Some(*n);
    }
    let digits = s.strip_prefix("ipproto-").unwrap_or(s);
    digits.parse().ok()
}

/// The name `ip rule` prints for an IP protocol number.
pub(crate) fn ip_proto_name(n: u8) -> String {
    match IP_PROTOCOLS.iter().find(|(id, _)| *id == n) {
        Some((_, name)) => (*name).to_string(),
        None => format!("ipproto-{n}"),
    }
}

/// DS field names from Debian's `/etc/iproute2/rt_dsfield`, which `ip rule` prints for `tos`.
const DSFIELDS: &[(u8, &str)] = &[
    (0x00, "default"),
    (0x28, "AF11"),
    (0x30, "AF12"),
    (0x38, "AF13"),
    (0x48, "AF21"),
    (0x50, "AF22"),
    (0x58, "AF23"),
    (0x68, "AF31"),
    (0x70, "AF32"),
    (0x78, "AF33"),
    (0x88, "AF41"),
    (0x90, "AF42"),
    (0x98, "AF43"),
    (0x20, "CS1"),
    (0x40, "CS2"),
    (0x60, "CS3"),
    (0x80, "CS4"),
    (0xa0, "CS5"),
    (0xc0, "CS6"),
    (0xe0, "CS7"),
    (0xb8, "EF"),
];

/// A TOS / DS field value from `ip` text: `0x10`, a decimal number or an `rt_dsfield` name.
pub(crate) fn dsfield_number(s: &str) -> Option<u8> {
    if let Some((n, _)) = DSFIELDS.iter().find(|(_, name)| *name == s) {
        return Some(*n);
    }
    parse_u32_text(s).and_then(|n| u8::try_from(n).ok())
}

/// The text `ip` prints for a TOS / DS field value (`0x10`, or an `rt_dsfield` name).
pub(crate) fn dsfield_name(n: u8) -> String {
    match DSFIELDS.iter().find(|(id, _)| *id == n && n != 0) {
        Some((_, name)) => (*name).to_string(),
        None => format!("0x{n:02x}"),
    }
}

/// Prints a number as C's `%#x` does (`0` for zero, else `0x1f`), as `ip rule` prints marks.
pub(crate) fn c_hex(n: u32) -> String {
    if n == 0 {
        "0".to_string()
    } else {
        format!("{n:#x}")
    }
}

/// Parses `0x1f`, `0X1F` or `31` (what `ip` prints for marks, masks and TOS).
pub(crate) fn parse_u32_text(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u32::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_print_like_rt_tables() {
        for (text, id) in [
            ("local", TableId::LOCAL),
            ("main", TableId::MAIN),
            ("default", TableId::DEFAULT),
            ("100", TableId::Id(100)),
            ("4000000000", TableId::Id(4_000_000_000)),
            ("vrf-blue", TableId::Named("vrf-blue".into())),
        ] {
            assert_eq!(TableId::parse(text), id);
            assert_eq!(id.to_string(), text);
        }
        assert_eq!(TableId::parse("254"), TableId::MAIN);
    }

    #[test]
    fn protocols_names_and_numbers() {
        assert_eq!(RouteProtocol::parse("bird"), RouteProtocol::BIRD);
        assert_eq!(RouteProtocol::parse("186"), RouteProtocol::BGP);
        assert_eq!(RouteProtocol::BGP.to_string(), "bgp");
        assert_eq!(RouteProtocol::parse("242").to_string(), "242");
        assert_eq!(RouteProtocol::parse("static"), RouteProtocol::STATIC);
        assert_eq!(
            RouteProtocol::parse("mystery"),
            RouteProtocol::Named("mystery".into())
        );
    }

    #[test]
    fn scopes_types_and_numbers() {
        assert_eq!(Scope::parse("link"), Some(Scope::LINK));
        assert_eq!(Scope::parse("17").map(|s| s.to_string()), Some("17".into()));
        assert_eq!(Scope::parse("galaxy"), None);
        assert_eq!(RouteType::parse("throw"), RouteType::Throw);
        assert_eq!(RouteType::parse("12").to_string(), "12");
        assert_eq!(ip_proto_number("gre"), Some(47));
        assert_eq!(ip_proto_number("ipproto-17"), Some(17));
        assert_eq!(ip_proto_name(6), "tcp");
        assert_eq!(ip_proto_name(253), "ipproto-253");
        assert_eq!(dsfield_number("0x10"), Some(0x10));
        assert_eq!(dsfield_number("AF11"), Some(0x28));
        assert_eq!(dsfield_name(0x10), "0x10");
        assert_eq!(dsfield_name(0x04), "0x04");
        assert_eq!(c_hex(0), "0");
        assert_eq!(c_hex(0xff), "0xff");
        assert_eq!(parse_u32_text("0x"), None);
        assert_eq!(parse_u32_text("0xffffffff"), Some(u32::MAX));
    }
}
