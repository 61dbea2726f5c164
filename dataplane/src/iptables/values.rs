//! Value types shared by matches and targets: addresses with masks, interface names with
//! `+` wildcards, port ranges, marks, protocol specs, and the per-option `!` flag.
//!
//! ```text
//!   "198.18.0.0/16"  -> AddrMask { addr, mask: Prefix(16) }     (-s/-d, --ctorigsrc …)
//!   "eth+"           -> Iface("eth+")                            (-i/-o, --physdev-in …)
//!   "1000:2000"      -> PortRange { lo: 1000, hi: 2000 }          (--dport, multiport …)
//!   "0x4000/0x4000"  -> (value, Some(mask))                       (--mark)
//! ```
//! Each type parses the forms `iptables-save` prints (and the usual input forms) and prints
//! back the form it was given, so canonical text round-trips exactly.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{Family, Protocol};

/// A value with the `!` (invert) flag iptables allows in front of most options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Neg<T> {
    /// `true` when the option was written `! --opt value`.
    pub negated: bool,
    /// The option's value.
    pub value: T,
}

impl<T> Neg<T> {
    /// A value without `!`.
    pub fn new(value: T) -> Neg<T> {
        Neg {
            negated: false,
            value,
        }
    }

    /// A value with `!`.
    pub fn not(value: T) -> Neg<T> {
        Neg {
            negated: true,
            value,
        }
    }

    /// Applies the `!` flag to a test result.
    pub fn apply(&self, hit: bool) -> bool {
        hit != self.negated
    }

    /// The `"! "` prefix to print before the option, or `""`.
    pub(crate) fn bang(&self) -> &'static str {
        if self.negated { "! " } else { "" }
    }
}

/// How the mask of an address was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mask {
    /// No mask written (`198.18.0.1`): a single host.
    Host,
    /// A prefix length (`/16`).
    Prefix(u8),
    /// A mask written as an address (`/255.255.0.0`, `/ffff:ffff::`), as iptables-save prints
    /// non-contiguous masks.
    Bits(IpAddr),
}

/// An address with a mask: `-s`, `-d`, `--ctorigsrc` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrMask {
    /// The address as written (not necessarily masked).
    pub addr: IpAddr,
    /// The mask as written.
    pub mask: Mask,
}

/// The mask of a prefix length, as the kernel stores it.
fn prefix_bits(family: Family, len: u8) -> u128 {
    let width = match family {
        Family::V4 => 32u32,
        Family::V6 => 128,
    };
    let len = u32::from(len).min(width);
    if len == 0 {
        0
    } else {
        let ones = if len == 128 {
            u128::MAX
        } else {
            (1u128 << len) - 1
        };
        ones << (width - len)
    }
}

pub(crate) fn ip_bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn bits_ip(family: Family, bits: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

impl AddrMask {
    /// Parses `addr`, `addr/len` or `addr/mask-address`.
    pub fn parse(s: &str) -> Option<AddrMask> {
        let (a, m) = match s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let width = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let mask = match m {
            None => Mask::Host,
            Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => {
                let len: u8 = m.parse().ok()?;
                if len > width {
                    return None;
                }
                Mask::Prefix(len)
            }
            Some(m) => {
                let bits: IpAddr = m.parse().ok()?;
                if Family::of(&bits) != Family::of(&addr) {
                    return None;
                }
                Mask::Bits(bits)
            }
        };
        Some(AddrMask { addr, mask })
    }

    /// A whole prefix, e.g. `198.18.0.0/15`.
    pub fn prefix(addr: IpAddr, len: u8) -> AddrMask {
        AddrMask {
            addr,
            mask: Mask::Prefix(len),
        }
    }

    /// Family of the address.
    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    /// The mask as bits (right-aligned for IPv4).
    pub fn mask_bits(&self) -> u128 {
        let fam = self.family();
        match self.mask {
            Mask::Host => prefix_bits(fam, 128),
            Mask::Prefix(l) => prefix_bits(fam, l),
            Mask::Bits(b) => ip_bits(&b),
        }
    }

    /// The prefix length if the mask is contiguous.
    pub fn prefix_len(&self) -> Option<u8> {
        let bits = self.mask_bits();
        let width = match self.family() {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        (0..=width).find(|&l| prefix_bits(self.family(), l) == bits)
    }

    /// Whether `ip` falls under this address and mask (`ip & mask == addr & mask`).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        if Family::of(ip) != self.family() {
            return false;
        }
        let m = self.mask_bits();
        ip_bits(ip) & m == ip_bits(&self.addr) & m
    }

    /// Whether this matches every address (`0.0.0.0/0`).
    pub fn is_any(&self) -> bool {
        self.mask_bits() == 0
    }

    /// The form the kernel stores and iptables-save prints for `-s`/`-d`: the address masked,
    /// a prefix length when the mask is contiguous, the mask address otherwise.
    pub fn canonical(&self) -> AddrMask {
        let fam = self.family();
        let masked = bits_ip(fam, ip_bits(&self.addr) & self.mask_bits());
        let mask = match self.prefix_len() {
            Some(l) => Mask::Prefix(l),
            None => Mask::Bits(bits_ip(fam, self.mask_bits())),
        };
        AddrMask { addr: masked, mask }
    }

    /// The form `-m conntrack` prints: the address as given (the kernel keeps it unmasked),
    /// no mask for a single host, `/len` otherwise.
    pub fn canonical_host_bare(&self) -> AddrMask {
        let c = self.canonical();
        let full = match self.family() {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        let mask = if c.mask == Mask::Prefix(full) {
            Mask::Host
        } else {
            c.mask
        };
        AddrMask {
            addr: self.addr,
            mask,
        }
    }
}

impl fmt::Display for AddrMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mask {
            Mask::Host => write!(f, "{}", self.addr),
            Mask::Prefix(l) => write!(f, "{}/{}", self.addr, l),
            Mask::Bits(b) => write!(f, "{}/{}", self.addr, b),
        }
    }
}

/// An interface name as `-i`/`-o`/`--physdev-in` take it; a trailing `+` is a prefix wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Iface(pub String);

impl Iface {
    /// Whether `name` matches (`eth+` matches `eth0`; `+` matches everything).
    pub fn matches(&self, name: &str) -> bool {
        match self.0.strip_suffix('+') {
            Some(prefix) => name.starts_with(prefix),
            None => self.0 == name,
        }
    }

    /// Whether this is `+`, which matches every interface (iptables-save omits it).
    pub fn is_any(&self) -> bool {
        self.0 == "+"
    }
}

impl fmt::Display for Iface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An inclusive port range; a single port has `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
}

impl PortRange {
    /// One port.
    pub fn single(p: u16) -> PortRange {
        PortRange { lo: p, hi: p }
    }

    /// Whether `p` is in the range.
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    /// Parses `p`, `a:b`, `:b`, `a:` with separator `sep` (`:` for matches, `-` for NAT).
    pub fn parse_sep(s: &str, sep: char) -> Option<PortRange> {
        match s.split_once(sep) {
            None => parse_port(s).map(PortRange::single),
            Some((a, b)) => {
                let lo = if a.is_empty() { 0 } else { parse_port(a)? };
                let hi = if b.is_empty() {
                    u16::MAX
                } else {
                    parse_port(b)?
                };
                (lo <= hi).then_some(PortRange { lo, hi })
            }
        }
    }

    /// Prints `p` or `a<sep>b`.
    pub(crate) fn write_sep(&self, out: &mut String, sep: char) {
        use std::fmt::Write;
        if self.lo == self.hi {
            let _ = write!(out, "{}", self.lo);
        } else {
            let _ = write!(out, "{}{}{}", self.lo, sep, self.hi);
        }
    }

    /// The text with separator `sep`.
    pub fn to_string_sep(&self, sep: char) -> String {
        let mut s = String::new();
        self.write_sep(&mut s, sep);
        s
    }
}

/// A decimal port number (service names are not resolved: iptables-save prints numbers).
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an unsigned 32-bit number the way `strtoul(s, NULL, 0)` does: `0x` hex, leading-zero
/// octal, decimal.
pub fn parse_u32(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() {
            return None;
        }
        return u32::from_str_radix(h, 16).ok();
    }
    if s.len() > 1 && s.starts_with('0') {
        return u32::from_str_radix(&s[1..], 8).ok();
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `value[/mask]` as `--mark` and `--set-xmark` take it.
pub(crate) fn parse_mark_mask(s: &str) -> Option<(u32, Option<u32>)> {
    match s.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, Some(parse_u32(m)?))),
        None => Some((parse_u32(s)?, None)),
    }
}

/// A `-p` protocol as written: a name or a number, with the number it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProtoSpec {
    /// The text as written (`tcp`, `gre`, `47`, `all`).
    pub text: String,
    /// The protocol number; `0` is `all`.
    pub number: u8,
}

/// Protocol names iptables-save prints, by number (its own table, then `/etc/protocols`).
const PROTO_NAMES: &[(u8, &str)] = &[
    (1, "icmp"),
    (2, "igmp"),
    (4, "ipencap"),
    (6, "tcp"),
    (17, "udp"),
    (41, "ipv6"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (58, "ipv6-icmp"),
    (89, "ospf"),
    (103, "pim"),
    (112, "vrrp"),
    (132, "sctp"),
    (135, "mh"),
    (136, "udplite"),
];

impl ProtoSpec {
    /// Parses a protocol name or number (`all` is 0).
    pub fn parse(s: &str) -> Option<ProtoSpec> {
        let lower = s.to_ascii_lowercase();
        let number = match lower.as_str() {
            "all" => 0,
            "icmpv6" | "icmp6" => 58,
            "ipv6-mh" | "mobility-header" => 135,
            l => match PROTO_NAMES.iter().find(|(_, n)| *n == l) {
                Some((n, _)) => *n,
                None => {
                    if !l.bytes().all(|b| b.is_ascii_digit()) || l.is_empty() {
                        return None;
                    }
                    l.parse().ok()?
                }
            },
        };
        Some(ProtoSpec {
            text: s.to_string(),
            number,
        })
    }

    /// The spec for a protocol.
    pub fn of(p: Protocol) -> ProtoSpec {
        let mut s = ProtoSpec::canonical_number(p.number());
        if p == Protocol::Icmpv6 {
            s.text = "ipv6-icmp".into();
        }
        s
    }

    /// The name iptables-save prints for a number.
    pub fn canonical_number(number: u8) -> ProtoSpec {
        let text = match PROTO_NAMES.iter().find(|(n, _)| *n == number) {
            Some((_, name)) => name.to_string(),
            None if number == 0 => "all".to_string(),
            None => number.to_string(),
        };
        ProtoSpec { text, number }
    }

    /// The protocol, or `None` for `all`.
    pub fn protocol(&self) -> Option<Protocol> {
        (self.number != 0).then(|| Protocol::from_number(self.number))
    }
}

impl fmt::Display for ProtoSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Prints a string the way iptables-save prints `--comment` and `--log-prefix`: bare when
/// it is non-empty and only letters, digits, `-` and `_`; otherwise in double quotes with `\`
/// and `"` escaped by a backslash.
pub(crate) fn write_quoted(out: &mut String, s: &str) {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_masks_parse_and_canonicalise() {
        let a = AddrMask::parse("198.18.0.5/16").unwrap();
        assert_eq!(a.to_string(), "198.18.0.5/16");
        assert_eq!(a.canonical().to_string(), "198.18.0.0/16");
        let d = AddrMask::parse("198.18.0.0/255.255.0.0").unwrap();
        assert_eq!(d.canonical().to_string(), "198.18.0.0/16");
        let nc = AddrMask::parse("198.18.0.0/255.0.255.0").unwrap();
        assert_eq!(nc.canonical().to_string(), "198.0.0.0/255.0.255.0");
        assert!(nc.contains(&"198.99.0.7".parse().unwrap()));
        assert!(!nc.contains(&"199.18.0.7".parse().unwrap()));
        let h = AddrMask::parse("198.19.0.10").unwrap();
        assert_eq!(h.canonical().to_string(), "198.19.0.10/32");
        assert_eq!(h.canonical_host_bare().to_string(), "198.19.0.10");
        let v6 = AddrMask::parse("2001:db8::/ffff:ffff:0:ffff::").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/ffff:ffff:0:ffff::");
        assert!(
            AddrMask::parse("2001:db8::/64")
                .unwrap()
                .contains(&"2001:db8::9".parse().unwrap())
        );
        assert!(
            !AddrMask::parse("2001:db8::/64")
                .unwrap()
                .contains(&"198.18.0.1".parse().unwrap())
        );
        assert!(AddrMask::parse("198.18.0.0/33").is_none());
        assert!(AddrMask::parse("198.18.0.0/ffff::").is_none());
        assert!(AddrMask::parse("0.0.0.0/0").unwrap().is_any());
    }

    #[test]
    fn interface_wildcards() {
        assert!(Iface("eth+".into()).matches("eth0"));
        assert!(!Iface("eth+".into()).matches("veth0"));
        assert!(Iface("+".into()).matches("lo"));
        assert!(Iface("eth0".into()).matches("eth0"));
        assert!(!Iface("eth0".into()).matches("eth01"));
    }

    #[test]
    fn ports_and_numbers() {
        assert_eq!(
            PortRange::parse_sep(":100", ':'),
            Some(PortRange { lo: 0, hi: 100 })
        );
        assert_eq!(
            PortRange::parse_sep("1:", ':'),
            Some(PortRange { lo: 1, hi: 65535 })
        );
        assert_eq!(PortRange::parse_sep("9:1", ':'), None);
        assert_eq!(
            PortRange::parse_sep("80-90", '-')
                .unwrap()
                .to_string_sep(':'),
            "80:90"
        );
        assert_eq!(parse_u32("0x4000"), Some(0x4000));
        assert_eq!(parse_u32("010"), Some(8));
        assert_eq!(parse_u32("16384"), Some(16384));
        assert_eq!(parse_u32("0x"), None);
        assert_eq!(parse_mark_mask("0x1/0xff"), Some((1, Some(0xff))));
        assert_eq!(ProtoSpec::parse("47").unwrap().number, 47);
        assert_eq!(ProtoSpec::canonical_number(47).text, "gre");
        assert_eq!(ProtoSpec::parse("all").unwrap().protocol(), None);
    }
}
