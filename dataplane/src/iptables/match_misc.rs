//! Other typed matches: `addrtype`, `set`, `physdev`, `iprange`, `owner`, `limit`, `length`,
//! `pkttype`, `ttl` and `hl`.
//!
//! In: the options of one `-m MODULE` group. Out: typed values that print back in
//! iptables-save's option order.

use std::fmt::Write;
use std::net::IpAddr;

use super::matches::{Opt, one};
use super::values::{Iface, Neg, ip_bits};

/// Route types `-m addrtype` tests (`RTN_*`), as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AddrTypes(pub u16);

impl AddrTypes {
    /// UNSPEC.
    pub const UNSPEC: u16 = 1 << 0;
    /// UNICAST.
    pub const UNICAST: u16 = 1 << 1;
    /// LOCAL (an address of this host).
    pub const LOCAL: u16 = 1 << 2;
    /// BROADCAST.
    pub const BROADCAST: u16 = 1 << 3;
    /// ANYCAST.
    pub const ANYCAST: u16 = 1 << 4;
    /// MULTICAST.
    pub const MULTICAST: u16 = 1 << 5;
    /// BLACKHOLE.
    pub const BLACKHOLE: u16 = 1 << 6;
    /// UNREACHABLE.
    pub const UNREACHABLE: u16 = 1 << 7;
    /// PROHIBIT.
    pub const PROHIBIT: u16 = 1 << 8;
    /// THROW.
    pub const THROW: u16 = 1 << 9;
    /// NAT.
    pub const NAT: u16 = 1 << 10;
    /// XRESOLVE.
    pub const XRESOLVE: u16 = 1 << 11;

    const NAMES: [(u16, &'static str); 12] = [
        (1, "UNSPEC"),
        (2, "UNICAST"),
        (4, "LOCAL"),
        (8, "BROADCAST"),
        (16, "ANYCAST"),
        (32, "MULTICAST"),
        (64, "BLACKHOLE"),
        (128, "UNREACHABLE"),
        (256, "PROHIBIT"),
        (512, "THROW"),
        (1024, "NAT"),
        (2048, "XRESOLVE"),
    ];

    /// Parses a comma list of type names.
    pub fn parse(s: &str) -> Option<AddrTypes> {
        let mut v = 0;
        for part in s.split(',') {
            v |= Self::NAMES
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(part))?
                .0;
        }
        Some(AddrTypes(v))
    }

    /// Whether any type of `other` is in this set.
    pub fn intersects(self, other: AddrTypes) -> bool {
        self.0 & other.0 != 0
    }

    fn write(self, out: &mut String) {
        let mut first = true;
        for (bit, name) in Self::NAMES {
            if self.0 & bit != 0 {
                if !first {
                    out.push(',');
                }
                out.push_str(name);
                first = false;
            }
        }
    }
}

/// `-m addrtype --src-type T --dst-type T [--limit-iface-in|--limit-iface-out]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AddrType {
    /// `--src-type`.
    pub src_type: Option<Neg<AddrTypes>>,
    /// `--dst-type`.
    pub dst_type: Option<Neg<AddrTypes>>,
    /// `--limit-iface-in`: look the address up on the input interface only.
    pub limit_iface_in: bool,
    /// `--limit-iface-out`.
    pub limit_iface_out: bool,
}

impl AddrType {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<AddrType> {
        let mut a = AddrType::default();
        for o in opts {
            match o.name {
                "--src-type" if a.src_type.is_none() => {
                    a.src_type = Some(o.neg(AddrTypes::parse(one(o)?)?))
                }
                "--dst-type" if a.dst_type.is_none() => {
                    a.dst_type = Some(o.neg(AddrTypes::parse(one(o)?)?))
                }
                "--limit-iface-in" if o.flag() && !a.limit_iface_in => a.limit_iface_in = true,
                "--limit-iface-out" if o.flag() && !a.limit_iface_out => a.limit_iface_out = true,
                _ => return None,
            }
        }
        if a.limit_iface_in && a.limit_iface_out {
            return None;
        }
        Some(a)
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str(" -m addrtype");
        if let Some(t) = &self.src_type {
            let _ = write!(out, " {}--src-type ", t.bang());
            t.value.write(out);
        }
        if let Some(t) = &self.dst_type {
            let _ = write!(out, " {}--dst-type ", t.bang());
            t.value.write(out);
        }
        if self.limit_iface_in {
            out.push_str(" --limit-iface-in");
        }
        if self.limit_iface_out {
            out.push_str(" --limit-iface-out");
        }
    }
}

/// One direction flag of `--match-set NAME src,dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetDir {
    /// `src`: the packet's source address / port.
    Src,
    /// `dst`: the packet's destination address / port.
    Dst,
}

/// `-m set [!] --match-set NAME FLAGS [--return-nomatch] [! --update-counters]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetMatch {
    /// `!` before `--match-set`.
    pub negated: bool,
    /// The set name.
    pub name: String,
    /// One flag per dimension of the set.
    pub dirs: Vec<SetDir>,
    /// `--return-nomatch`.
    pub return_nomatch: bool,
    /// `! --update-counters`.
    pub no_update_counters: bool,
    /// `! --update-subcounters`.
    pub no_update_subcounters: bool,
}

impl SetMatch {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<SetMatch> {
        let (first, rest) = opts.split_first()?;
        if first.name != "--match-set" || first.vals.len() != 2 {
            return None;
        }
        let dirs = first.vals[1]
            .value
            .split(',')
            .map(|d| match d {
                "src" => Some(SetDir::Src),
                "dst" => Some(SetDir::Dst),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let mut m = SetMatch {
            negated: first.negated,
            name: first.vals[0].value.to_string(),
            dirs,
            return_nomatch: false,
            no_update_counters: false,
            no_update_subcounters: false,
        };
        for o in rest {
            match (o.name, o.negated, o.flag()) {
                ("--return-nomatch", false, true) if !m.return_nomatch => m.return_nomatch = true,
                ("--update-counters", true, true) if !m.no_update_counters => {
                    m.no_update_counters = true
                }
                ("--update-subcounters", true, true) if !m.no_update_subcounters => {
                    m.no_update_subcounters = true
                }
                _ => return None,
            }
        }
        Some(m)
    }

    pub(crate) fn write(&self, out: &mut String) {
        let bang = if self.negated { "! " } else { "" };
        let _ = write!(out, " -m set {bang}--match-set {} ", self.name);
        for (i, d) in self.dirs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(match d {
                SetDir::Src => "src",
                SetDir::Dst => "dst",
            });
        }
        if self.return_nomatch {
            out.push_str(" --return-nomatch");
        }
        if self.no_update_counters {
            out.push_str(" ! --update-counters");
        }
        if self.no_update_subcounters {
            out.push_str(" ! --update-subcounters");
        }
    }
}

/// `-m physdev`: the bridge ports of a bridged packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Physdev {
    /// `--physdev-is-in`.
    pub is_in: Option<bool>,
    /// `--physdev-in NAME`.
    pub physdev_in: Option<Neg<Iface>>,
    /// `--physdev-is-out`.
    pub is_out: Option<bool>,
    /// `--physdev-out NAME`.
    pub physdev_out: Option<Neg<Iface>>,
    /// `--physdev-is-bridged`.
    pub is_bridged: Option<bool>,
}

impl Physdev {
    /// For the `is_*` flags: `Some(negated)` when present.
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<Physdev> {
        let mut p = Physdev::default();
        for o in opts {
            match o.name {
                "--physdev-in" if p.physdev_in.is_none() => {
                    p.physdev_in = Some(o.neg(Iface(one(o)?.to_string())))
                }
                "--physdev-out" if p.physdev_out.is_none() => {
                    p.physdev_out = Some(o.neg(Iface(one(o)?.to_string())))
                }
                "--physdev-is-in" if o.flag() && p.is_in.is_none() => p.is_in = Some(o.negated),
                "--physdev-is-out" if o.flag() && p.is_out.is_none() => p.is_out = Some(o.negated),
                "--physdev-is-bridged" if o.flag() && p.is_bridged.is_none() => {
                    p.is_bridged = Some(o.negated)
                }
                _ => return None,
            }
        }
        Some(p)
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str(" -m physdev");
        let flag = |out: &mut String, v: Option<bool>, name: &str| {
            if let Some(neg) = v {
                let _ = write!(out, " {}{}", if neg { "! " } else { "" }, name);
            }
        };
        flag(out, self.is_in, "--physdev-is-in");
        if let Some(i) = &self.physdev_in {
            let _ = write!(out, " {}--physdev-in {}", i.bang(), i.value);
        }
        flag(out, self.is_out, "--physdev-is-out");
        if let Some(i) = &self.physdev_out {
            let _ = write!(out, " {}--physdev-out {}", i.bang(), i.value);
        }
        flag(out, self.is_bridged, "--physdev-is-bridged");
    }
}

/// An inclusive address range `a-b` (`-m iprange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrRange {
    /// First address.
    pub lo: IpAddr,
    /// Last address.
    pub hi: IpAddr,
}

impl AddrRange {
    /// Parses `a-b` (or a single address).
    pub fn parse(s: &str) -> Option<AddrRange> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let lo: IpAddr = a.parse().ok()?;
        let hi: IpAddr = b.parse().ok()?;
        (lo.is_ipv4() == hi.is_ipv4()).then_some(AddrRange { lo, hi })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        ip.is_ipv4() == self.lo.is_ipv4() && {
            let v = ip_bits(ip);
            ip_bits(&self.lo) <= v && v <= ip_bits(&self.hi)
        }
    }
}

impl std::fmt::Display for AddrRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

/// `-m iprange --src-range a-b --dst-range a-b`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IpRange {
    /// `--src-range`.
    pub src: Option<Neg<AddrRange>>,
    /// `--dst-range`.
    pub dst: Option<Neg<AddrRange>>,
}

impl IpRange {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<IpRange> {
        let mut r = IpRange::default();
        for o in opts {
            match o.name {
                "--src-range" if r.src.is_none() => r.src = Some(o.neg(AddrRange::parse(one(o)?)?)),
                "--dst-range" if r.dst.is_none() => r.dst = Some(o.neg(AddrRange::parse(one(o)?)?)),
                _ => return None,
            }
        }
        Some(r)
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str(" -m iprange");
        if let Some(s) = &self.src {
            let _ = write!(out, " {}--src-range {}", s.bang(), s.value);
        }
        if let Some(d) = &self.dst {
            let _ = write!(out, " {}--dst-range {}", d.bang(), d.value);
        }
    }
}

/// An inclusive id range `a[-b]` (`--uid-owner`, `--gid-owner`).
pub type IdRange = (u32, u32);

fn parse_id_range(s: &str) -> Option<IdRange> {
    let num = |x: &str| -> Option<u32> {
        (!x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse().ok())
            .flatten()
    };
    match s.split_once('-') {
        Some((a, b)) => Some((num(a)?, num(b)?)),
        None => {
            let a = num(s)?;
            Some((a, a))
        }
    }
}

fn write_id_range(out: &mut String, r: IdRange) {
    if r.0 == r.1 {
        let _ = write!(out, "{}", r.0);
    } else {
        let _ = write!(out, "{}-{}", r.0, r.1);
    }
}

/// `-m owner` (locally generated packets: the sending socket's owner).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Owner {
    /// `--socket-exists`: `Some(negated)`.
    pub socket_exists: Option<bool>,
    /// `--uid-owner a[-b]` (numeric, as iptables-save prints).
    pub uid: Option<Neg<IdRange>>,
    /// `--gid-owner a[-b]`.
    pub gid: Option<Neg<IdRange>>,
    /// `--suppl-groups`: also match supplementary groups.
    pub suppl_groups: bool,
}

impl Owner {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<Owner> {
        let mut w = Owner::default();
        for o in opts {
            match o.name {
                "--socket-exists" if o.flag() && w.socket_exists.is_none() => {
                    w.socket_exists = Some(o.negated)
                }
                "--uid-owner" if w.uid.is_none() => w.uid = Some(o.neg(parse_id_range(one(o)?)?)),
                "--gid-owner" if w.gid.is_none() => w.gid = Some(o.neg(parse_id_range(one(o)?)?)),
                "--suppl-groups" if o.flag() && !o.negated && !w.suppl_groups => {
                    w.suppl_groups = true
                }
                _ => return None,
            }
        }
        Some(w)
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str(" -m owner");
        if let Some(neg) = self.socket_exists {
            out.push_str(if neg {
                " ! --socket-exists"
            } else {
                " --socket-exists"
            });
        }
        if let Some(u) = &self.uid {
            let _ = write!(out, " {}--uid-owner ", u.bang());
            write_id_range(out, u.value);
        }
        if let Some(g) = &self.gid {
            let _ = write!(out, " {}--gid-owner ", g.bang());
            write_id_range(out, g.value);
        }
        if self.suppl_groups {
            out.push_str(" --suppl-groups");
        }
    }
}

/// `-m limit --limit RATE --limit-burst N` (token bucket).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Limit {
    /// `--limit N/unit` as written (default `3/hour`).
    pub rate: Option<String>,
    /// `--limit-burst N` (default 5).
    pub burst: Option<u32>,
}

impl Limit {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<Limit> {
        let mut l = Limit::default();
        for o in opts {
            if o.negated {
                return None;
            }
            match o.name {
                "--limit" if l.rate.is_none() => {
                    let v = one(o)?;
                    let (n, unit) = v.split_once('/').unwrap_or((v, "sec"));
                    n.parse::<u32>().ok()?;
                    Self::unit(unit)?;
                    l.rate = Some(v.to_string());
                }
                "--limit-burst" if l.burst.is_none() => l.burst = Some(one(o)?.parse().ok()?),
                _ => return None,
            }
        }
        Some(l)
    }

    fn unit(u: &str) -> Option<&'static str> {
        Some(match u {
            "s" | "sec" | "second" => "sec",
            "m" | "min" | "minute" => "min",
            "h" | "hour" => "hour",
            "d" | "day" => "day",
            _ => return None,
        })
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str(" -m limit");
        if let Some(r) = &self.rate {
            let _ = write!(out, " --limit {r}");
        }
        if let Some(b) = self.burst {
            let _ = write!(out, " --limit-burst {b}");
        }
    }

    pub(crate) fn canonical(&self) -> Limit {
        let rate = self.rate.as_deref().unwrap_or("3/hour");
        let (n, unit) = rate.split_once('/').unwrap_or((rate, "sec"));
        Limit {
            rate: Some(format!("{}/{}", n, Self::unit(unit).unwrap_or("sec"))),
            burst: self.burst.filter(|b| *b != 5),
        }
    }
}

/// `-m length --length a[:b]` (IP total length).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Length(pub Neg<(u16, u16)>);

impl Length {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<Length> {
        let [o] = opts else { return None };
        (o.name == "--length").then_some(())?;
        let v = one(o)?;
        let r = match v.split_once(':') {
            Some((a, b)) => (
                if a.is_empty() { 0 } else { a.parse().ok()? },
                if b.is_empty() {
                    u16::MAX
                } else {
                    b.parse().ok()?
                },
            ),
            None => {
                let a = v.parse().ok()?;
                (a, a)
            }
        };
        Some(Length(o.neg(r)))
    }

    pub(crate) fn write(&self, out: &mut String) {
        let (a, b) = self.0.value;
        let _ = write!(out, " -m length {}--length {a}", self.0.bang());
        if a != b {
            let _ = write!(out, ":{b}");
        }
    }
}

/// `-m pkttype --pkt-type T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PktType {
    /// `unicast` (to this host).
    Unicast,
    /// `broadcast`.
    Broadcast,
    /// `multicast`.
    Multicast,
}

/// `-m pkttype`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PktTypeMatch(pub Neg<PktType>);

impl PktTypeMatch {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<PktTypeMatch> {
        let [o] = opts else { return None };
        (o.name == "--pkt-type").then_some(())?;
        let t = match one(o)? {
            "unicast" | "host" => PktType::Unicast,
            "broadcast" => PktType::Broadcast,
            "multicast" => PktType::Multicast,
            _ => return None,
        };
        Some(PktTypeMatch(o.neg(t)))
    }

    pub(crate) fn write(&self, out: &mut String) {
        let t = match self.0.value {
            PktType::Unicast => "unicast",
            PktType::Broadcast => "broadcast",
            PktType::Multicast => "multicast",
        };
        let _ = write!(out, " -m pkttype {}--pkt-type {t}", self.0.bang());
    }
}

/// Comparison of `-m ttl` / `-m hl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TtlOp {
    /// `--ttl-eq` / `--hl-eq` (negatable).
    Eq,
    /// `--ttl-lt` / `--hl-lt`.
    Lt,
    /// `--ttl-gt` / `--hl-gt`.
    Gt,
}

/// `-m ttl --ttl-eq N` (IPv4) or `-m hl --hl-eq N` (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TtlMatch {
    /// The comparison.
    pub op: TtlOp,
    /// `!` (only with `eq`).
    pub negated: bool,
    /// The value.
    pub value: u8,
}

impl TtlMatch {
    pub(crate) fn parse(opts: &[Opt<'_>], prefix: &str) -> Option<TtlMatch> {
        let [o] = opts else { return None };
        let op = match o.name.strip_prefix(prefix)? {
            "-eq" => TtlOp::Eq,
            "-lt" if !o.negated => TtlOp::Lt,
            "-gt" if !o.negated => TtlOp::Gt,
            _ => return None,
        };
        Some(TtlMatch {
            op,
            negated: o.negated,
            value: one(o)?.parse().ok()?,
        })
    }

    pub(crate) fn write(&self, out: &mut String, module: &str) {
        let op = match self.op {
            TtlOp::Eq => "eq",
            TtlOp::Lt => "lt",
            TtlOp::Gt => "gt",
        };
        let bang = if self.negated { "! " } else { "" };
        let _ = write!(out, " -m {module} {bang}--{module}-{op} {}", self.value);
    }

    /// Whether a TTL / hop limit matches (with `!`).
    pub fn matches(&self, ttl: u8) -> bool {
        let hit = match self.op {
            TtlOp::Eq => ttl == self.value,
            TtlOp::Lt => ttl < self.value,
            TtlOp::Gt => ttl > self.value,
        };
        hit != self.negated
    }
}
