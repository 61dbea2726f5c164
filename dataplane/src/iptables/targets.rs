//! Targets: what a rule does when it matches (`-j ACCEPT`, `-j KUBE-SVC-X`, `-g CHAIN`,
//! `-j DNAT --to-destination 198.18.64.2:80`, …).
//!
//! In: the name after `-j` and its option group. Out: a typed `Target` that prints back as
//! iptables-save prints it, and `Target::effect()`, a plain description of what the target
//! does to the packet for a tracer to apply. Unknown targets, or known ones with options this
//! code does not understand, are kept raw in `Target::Unknown`.

use std::fmt::Write;
use std::net::IpAddr;

use super::match_ct::mark;
use super::matches::{Opt, one, raw_words};
use super::values::{PortRange, parse_mark_mask, write_quoted};
use crate::packet::Family;

/// Names of target extensions (never chain names: the kernel refuses a chain named like a
/// target). A name after `-j` that is not here and has no options is a jump to a chain.
pub(crate) const TARGET_NAMES: &[&str] = &[
    "ACCEPT",
    "DROP",
    "RETURN",
    "QUEUE",
    "REJECT",
    "DNAT",
    "SNAT",
    "MASQUERADE",
    "REDIRECT",
    "MARK",
    "CONNMARK",
    "LOG",
    "NOTRACK",
    "CT",
    "TRACE",
    "AUDIT",
    "CHECKSUM",
    "CLASSIFY",
    "CLUSTERIP",
    "CONNSECMARK",
    "DSCP",
    "ECN",
    "HL",
    "HMARK",
    "IDLETIMER",
    "LED",
    "NETMAP",
    "NFLOG",
    "NFQUEUE",
    "RATEEST",
    "SECMARK",
    "SET",
    "SYNPROXY",
    "TCPMSS",
    "TCPOPTSTRIP",
    "TEE",
    "TOS",
    "TPROXY",
    "TTL",
    "ULOG",
    "MIRROR",
    "DNPT",
    "SNPT",
];

/// How `-j REJECT` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectWith {
    /// `icmp-net-unreachable` (ICMP 3/0).
    IcmpNetUnreachable,
    /// `icmp-host-unreachable` (3/1).
    IcmpHostUnreachable,
    /// `icmp-port-unreachable` (3/3), the IPv4 default.
    IcmpPortUnreachable,
    /// `icmp-proto-unreachable` (3/2).
    IcmpProtoUnreachable,
    /// `icmp-net-prohibited` (3/9).
    IcmpNetProhibited,
    /// `icmp-host-prohibited` (3/10).
    IcmpHostProhibited,
    /// `icmp-admin-prohibited` (3/13).
    IcmpAdminProhibited,
    /// `tcp-reset` (a TCP RST).
    TcpReset,
    /// `icmp6-no-route` (ICMPv6 1/0).
    Icmp6NoRoute,
    /// `icmp6-adm-prohibited` (1/1).
    Icmp6AdmProhibited,
    /// `icmp6-addr-unreachable` (1/3).
    Icmp6AddrUnreachable,
    /// `icmp6-port-unreachable` (1/4), the IPv6 default.
    Icmp6PortUnreachable,
    /// `icmp6-policy-fail` (1/5).
    Icmp6PolicyFail,
    /// `icmp6-reject-route` (1/6).
    Icmp6RejectRoute,
}

const REJECT_NAMES: &[(RejectWith, &str, &[&str])] = &[
    (
        RejectWith::IcmpNetUnreachable,
        "icmp-net-unreachable",
        &["net-unreach"],
    ),
    (
        RejectWith::IcmpHostUnreachable,
        "icmp-host-unreachable",
        &["host-unreach"],
    ),
    (
        RejectWith::IcmpPortUnreachable,
        "icmp-port-unreachable",
        &["port-unreach"],
    ),
    (
        RejectWith::IcmpProtoUnreachable,
        "icmp-proto-unreachable",
        &["proto-unreach"],
    ),
    (
        RejectWith::IcmpNetProhibited,
        "icmp-net-prohibited",
        &["net-prohib"],
    ),
    (
        RejectWith::IcmpHostProhibited,
        "icmp-host-prohibited",
        &["host-prohib"],
    ),
    (
        RejectWith::IcmpAdminProhibited,
        "icmp-admin-prohibited",
        &["admin-prohib"],
    ),
    (RejectWith::TcpReset, "tcp-reset", &["tcp-rst"]),
    (RejectWith::Icmp6NoRoute, "icmp6-no-route", &["no-route"]),
    (
        RejectWith::Icmp6AdmProhibited,
        "icmp6-adm-prohibited",
        &["adm-prohibited"],
    ),
    (
        RejectWith::Icmp6AddrUnreachable,
        "icmp6-addr-unreachable",
        &["addr-unreach"],
    ),
    (
        RejectWith::Icmp6PortUnreachable,
        "icmp6-port-unreachable",
        &["port-unreach"],
    ),
    (
        RejectWith::Icmp6PolicyFail,
        "icmp6-policy-fail",
        &["policy-fail"],
    ),
    (
        RejectWith::Icmp6RejectRoute,
        "icmp6-reject-route",
        &["reject-route"],
    ),
];

impl RejectWith {
    fn parse(s: &str, family: Family) -> Option<RejectWith> {
        REJECT_NAMES
            .iter()
            .find(|(r, name, aliases)| r.family_ok(family) && (*name == s || aliases.contains(&s)))
            .map(|(r, _, _)| *r)
    }

    fn family_ok(self, family: Family) -> bool {
        let v6 = matches!(
            self,
            RejectWith::Icmp6NoRoute
                | RejectWith::Icmp6AdmProhibited
                | RejectWith::Icmp6AddrUnreachable
                | RejectWith::Icmp6PortUnreachable
                | RejectWith::Icmp6PolicyFail
                | RejectWith::Icmp6RejectRoute
        );
        self == RejectWith::TcpReset || v6 == (family == Family::V6)
    }

    /// The name iptables-save prints.
    pub fn name(self) -> &'static str {
        REJECT_NAMES
            .iter()
            .find(|(r, _, _)| *r == self)
            .map(|(_, n, _)| *n)
            .unwrap_or("icmp-port-unreachable")
    }

    /// The default of `-j REJECT` for a family.
    pub fn default_for(family: Family) -> RejectWith {
        match family {
            Family::V4 => RejectWith::IcmpPortUnreachable,
            Family::V6 => RejectWith::Icmp6PortUnreachable,
        }
    }

    /// The ICMP (or ICMPv6) type and code sent, or `None` for a TCP reset.
    pub fn icmp(self) -> Option<(u8, u8)> {
        Some(match self {
            RejectWith::IcmpNetUnreachable => (3, 0),
            RejectWith::IcmpHostUnreachable => (3, 1),
            RejectWith::IcmpProtoUnreachable => (3, 2),
            RejectWith::IcmpPortUnreachable => (3, 3),
            RejectWith::IcmpNetProhibited => (3, 9),
            RejectWith::IcmpHostProhibited => (3, 10),
            RejectWith::IcmpAdminProhibited => (3, 13),
            RejectWith::TcpReset => return None,
            RejectWith::Icmp6NoRoute => (1, 0),
            RejectWith::Icmp6AdmProhibited => (1, 1),
            RejectWith::Icmp6AddrUnreachable => (1, 3),
            RejectWith::Icmp6PortUnreachable => (1, 4),
            RejectWith::Icmp6PolicyFail => (1, 5),
            RejectWith::Icmp6RejectRoute => (1, 6),
        })
    }
}

/// A NAT destination: `[ADDR[-ADDR]][:PORT[-PORT]]` (IPv6: `[ADDR[-ADDR]]:PORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NatRange {
    /// First and last address (`None`: keep the address, only map ports).
    pub addrs: Option<(IpAddr, IpAddr)>,
    /// Port range (`None`: keep the port).
    pub ports: Option<PortRange>,
}

impl NatRange {
    /// Parses `--to-destination` / `--to-source` text.
    pub fn parse(s: &str) -> Option<NatRange> {
        let (addr_part, port_part) = if let Some(rest) = s.strip_prefix('[') {
            let (a, after) = rest.split_once(']')?;
            match after {
                "" => (a, None),
                p => (a, Some(p.strip_prefix(':')?)),
            }
        } else if s.matches(':').count() > 1 {
            (s, None) // bare IPv6 address(es)
        } else {
            match s.split_once(':') {
                Some((a, p)) => (a, Some(p)),
                None => (s, None),
            }
        };
        let addrs = if addr_part.is_empty() {
            None
        } else {
            let (lo, hi) = addr_part.split_once('-').unwrap_or((addr_part, addr_part));
            let lo: IpAddr = lo.parse().ok()?;
            let hi: IpAddr = hi.parse().ok()?;
            if lo.is_ipv4() != hi.is_ipv4() {
                return None;
            }
            Some((lo, hi))
        };
        let ports = match port_part {
            Some(p) => Some(PortRange::parse_sep(p, '-')?),
            None => None,
        };
        if addrs.is_none() && ports.is_none() {
            return None;
        }
        Some(NatRange { addrs, ports })
    }

    fn write(&self, out: &mut String) {
        let v6 = matches!(self.addrs, Some((IpAddr::V6(_), _)));
        let bracket = v6 && self.ports.is_some();
        if bracket {
            out.push('[');
        }
        if let Some((lo, hi)) = self.addrs {
            let _ = write!(out, "{lo}");
            if lo != hi {
                let _ = write!(out, "-{hi}");
            }
        }
        if bracket {
            out.push(']');
        }
        if let Some(p) = self.ports {
            out.push(':');
            p.write_sep(out, '-');
        }
    }
}

/// DNAT/SNAT options.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Nat {
    /// `--to-destination` / `--to-source` (absent: only valid for some kernels).
    pub to: Option<NatRange>,
    /// `--random`.
    pub random: bool,
    /// `--random-fully` (SNAT only).
    pub random_fully: bool,
    /// `--persistent`.
    pub persistent: bool,
}

/// MASQUERADE / REDIRECT options.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PortMap {
    /// `--to-ports P[-Q]`.
    pub to_ports: Option<PortRange>,
    /// `--random`.
    pub random: bool,
    /// `--random-fully` (MASQUERADE only).
    pub random_fully: bool,
}

/// How a MARK / CONNMARK value option was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkOpKind {
    /// `--set-xmark V/M`: `mark = (mark & ~M) ^ V` (what iptables-save prints).
    SetXmark,
    /// `--set-mark V[/M]`: `mark = (mark & ~M) | V`.
    SetMark,
    /// `--and-mark V`.
    AndMark,
    /// `--or-mark V`.
    OrMark,
    /// `--xor-mark V`.
    XorMark,
}

/// A mark change as written (`--or-mark 0x4000`), convertible to the kernel's xmark form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MarkOp {
    /// The option used.
    pub kind: MarkOpKind,
    /// Its value.
    pub value: u32,
    /// Its mask, if written (`--set-xmark` / `--set-mark` only).
    pub mask: Option<u32>,
}

impl MarkOp {
    fn parse(name: &str, v: &str) -> Option<MarkOp> {
        let kind = match name {
            "--set-xmark" => MarkOpKind::SetXmark,
            "--set-mark" => MarkOpKind::SetMark,
            "--and-mark" => MarkOpKind::AndMark,
            "--or-mark" => MarkOpKind::OrMark,
            "--xor-mark" => MarkOpKind::XorMark,
            _ => return None,
        };
        let (value, mask) = parse_mark_mask(v)?;
        if mask.is_some() && !matches!(kind, MarkOpKind::SetXmark | MarkOpKind::SetMark) {
            return None;
        }
        Some(MarkOp { kind, value, mask })
    }

    /// The kernel's `(value, mask)`: `mark = (mark & ~mask) ^ value`.
    pub fn xmark(&self) -> (u32, u32) {
        match self.kind {
            MarkOpKind::SetXmark => (self.value, self.mask.unwrap_or(u32::MAX)),
            MarkOpKind::SetMark => {
                let m = self.mask.unwrap_or(u32::MAX);
                (self.value, m | self.value)
            }
            MarkOpKind::AndMark => (0, !self.value),
            MarkOpKind::OrMark => (self.value, self.value),
            MarkOpKind::XorMark => (self.value, 0),
        }
    }

    /// The new mark.
    pub fn apply(&self, old: u32) -> u32 {
        let (v, m) = self.xmark();
        (old & !m) ^ v
    }

    fn write(&self, out: &mut String) {
        let name = match self.kind {
            MarkOpKind::SetXmark => "--set-xmark",
            MarkOpKind::SetMark => "--set-mark",
            MarkOpKind::AndMark => "--and-mark",
            MarkOpKind::OrMark => "--or-mark",
            MarkOpKind::XorMark => "--xor-mark",
        };
        let _ = write!(out, " {name} {:#x}", self.value);
        if let Some(m) = self.mask {
            let _ = write!(out, "/{m:#x}");
        }
    }

    fn canonical(&self) -> MarkOp {
        let (value, mask) = self.xmark();
        MarkOp {
            kind: MarkOpKind::SetXmark,
            value,
            mask: Some(mask),
        }
    }
}

/// `-j CONNMARK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Connmark {
    /// Change the connection mark.
    Set(MarkOp),
    /// `--save-mark [--nfmask M] [--ctmask M]`: ctmark = (ctmark & ~ctmask) ^ (mark & nfmask).
    Save {
        /// `--nfmask`.
        nfmask: Option<u32>,
        /// `--ctmask`.
        ctmask: Option<u32>,
    },
    /// `--restore-mark [--nfmask M] [--ctmask M]`: mark = (mark & ~nfmask) ^ (ctmark & ctmask).
    Restore {
        /// `--nfmask`.
        nfmask: Option<u32>,
        /// `--ctmask`.
        ctmask: Option<u32>,
    },
}

/// `-j LOG`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Log {
    /// `--log-prefix` (unescaped).
    pub prefix: Option<String>,
    /// `--log-level` as written (`4`, `debug`).
    pub level: Option<String>,
    /// `--log-tcp-sequence`.
    pub tcp_sequence: bool,
    /// `--log-tcp-options`.
    pub tcp_options: bool,
    /// `--log-ip-options`.
    pub ip_options: bool,
    /// `--log-uid`.
    pub uid: bool,
    /// `--log-macdecode`.
    pub macdecode: bool,
}

const LOG_LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
];

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `-j ACCEPT`.
    Accept,
    /// `-j DROP`.
    Drop,
    /// `-j RETURN`.
    Return,
    /// `-j QUEUE`.
    Queue,
    /// `-j CHAIN`: continue in CHAIN, come back after it.
    Jump(String),
    /// `-g CHAIN`: continue in CHAIN, never come back here.
    Goto(String),
    /// `-j REJECT [--reject-with T]`.
    Reject(Option<RejectWith>),
    /// `-j DNAT`.
    Dnat(Nat),
    /// `-j SNAT`.
    Snat(Nat),
    /// `-j MASQUERADE`.
    Masquerade(PortMap),
    /// `-j REDIRECT`.
    Redirect(PortMap),
    /// `-j MARK`.
    Mark(MarkOp),
    /// `-j CONNMARK`.
    Connmark(Connmark),
    /// `-j LOG`.
    Log(Log),
    /// `-j NOTRACK`.
    Notrack,
    /// `-j CT [--notrack] [--zone N]`.
    Ct {
        /// `--notrack`.
        notrack: bool,
        /// `--zone N`.
        zone: Option<u16>,
    },
    /// `-j TRACE`.
    Trace,
    /// Any other target, with its words exactly as written.
    Unknown {
        /// The name after `-j`.
        name: String,
        /// The words after `-j NAME`, raw.
        args: Vec<String>,
    },
}

/// What a target does to the packet, as data for a tracer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetEffect {
    /// Stop traversal of this hook: the packet is accepted.
    Accept,
    /// Drop silently.
    Drop,
    /// Drop and answer with an ICMP error or a TCP reset.
    Reject(RejectWith),
    /// Hand to a userspace queue (the packet leaves the kernel path).
    Queue,
    /// Return to the calling chain (or the policy, at a built-in chain).
    Return,
    /// Continue in a chain and come back.
    Jump(String),
    /// Continue in a chain and do not come back.
    Goto(String),
    /// Rewrite the destination (and stop traversal of the nat chain).
    Dnat(NatRange),
    /// Rewrite the source to a given range.
    Snat(NatRange),
    /// Rewrite the source to the outgoing interface's address (optionally a port range).
    Masquerade(Option<PortRange>),
    /// Rewrite the destination to a local address of the incoming interface.
    Redirect(Option<PortRange>),
    /// Change the packet mark: `mark = (mark & !mask) ^ value`; traversal continues.
    SetMark {
        /// XOR value.
        value: u32,
        /// Bits cleared first.
        mask: u32,
    },
    /// Change the connection mark; traversal continues.
    Connmark(Connmark),
    /// No change to the packet (LOG, TRACE); traversal continues.
    Continue,
    /// The connection is not tracked (NOTRACK, CT --notrack); traversal continues.
    NoTrack,
    /// A target this code does not model; the tracer must say so.
    Unknown(String),
}

impl Target {
    /// Builds a target from `-j NAME` and its options; unknown ones stay raw.
    pub(crate) fn from_jump(name: &str, opts: &[Opt<'_>], family: Family) -> Target {
        let typed = Self::typed(name, opts, family);
        match typed {
            Some(t) => t,
            None if opts.is_empty() && !TARGET_NAMES.contains(&name) => {
                Target::Jump(name.to_string())
            }
            None => Target::Unknown {
                name: name.to_string(),
                args: raw_words(opts),
            },
        }
    }

    fn typed(name: &str, opts: &[Opt<'_>], family: Family) -> Option<Target> {
        if opts.iter().any(|o| o.negated) {
            return None;
        }
        let bare = opts.is_empty();
        match name {
            "ACCEPT" if bare => Some(Target::Accept),
            "DROP" if bare => Some(Target::Drop),
            "RETURN" if bare => Some(Target::Return),
            "QUEUE" if bare => Some(Target::Queue),
            "NOTRACK" if bare => Some(Target::Notrack),
            "TRACE" if bare => Some(Target::Trace),
            "REJECT" => match opts {
                [] => Some(Target::Reject(None)),
                [o] if o.name == "--reject-with" => {
                    Some(Target::Reject(Some(RejectWith::parse(one(o)?, family)?)))
                }
                _ => None,
            },
            "DNAT" | "SNAT" => {
                let to_opt = if name == "DNAT" {
                    "--to-destination"
                } else {
                    "--to-source"
                };
                let mut n = Nat::default();
                for o in opts {
                    match o.name {
                        x if x == to_opt && n.to.is_none() => {
                            n.to = Some(NatRange::parse(one(o)?)?)
                        }
                        "--random" if o.flag() && !n.random => n.random = true,
                        "--random-fully" if name == "SNAT" && o.flag() && !n.random_fully => {
                            n.random_fully = true
                        }
                        "--persistent" if o.flag() && !n.persistent => n.persistent = true,
                        _ => return None,
                    }
                }
                Some(if name == "DNAT" {
                    Target::Dnat(n)
                } else {
                    Target::Snat(n)
                })
            }
            "MASQUERADE" | "REDIRECT" => {
                let mut p = PortMap::default();
                for o in opts {
                    match o.name {
                        "--to-ports" if p.to_ports.is_none() => {
                            p.to_ports = Some(PortRange::parse_sep(one(o)?, '-')?)
                        }
                        "--random" if o.flag() && !p.random => p.random = true,
                        "--random-fully" if name == "MASQUERADE" && o.flag() && !p.random_fully => {
                            p.random_fully = true
                        }
                        _ => return None,
                    }
                }
                Some(if name == "MASQUERADE" {
                    Target::Masquerade(p)
                } else {
                    Target::Redirect(p)
                })
            }
            "MARK" => match opts {
                [o] => Some(Target::Mark(MarkOp::parse(o.name, one(o)?)?)),
                _ => None,
            },
            "CONNMARK" => Self::connmark(opts).map(Target::Connmark),
            "LOG" => {
                let mut l = Log::default();
                for o in opts {
                    match o.name {
                        "--log-prefix" if l.prefix.is_none() => {
                            l.prefix = Some(one(o)?.to_string())
                        }
                        "--log-level" if l.level.is_none() => {
                            let v = one(o)?;
                            let ok = v.parse::<u8>().is_ok_and(|n| n < 8)
                                || LOG_LEVELS.contains(&v)
                                || v == "warn"
                                || v == "err"
                                || v == "panic";
                            if !ok {
                                return None;
                            }
                            l.level = Some(v.to_string());
                        }
                        "--log-tcp-sequence" if o.flag() && !l.tcp_sequence => {
                            l.tcp_sequence = true
                        }
                        "--log-tcp-options" if o.flag() && !l.tcp_options => l.tcp_options = true,
                        "--log-ip-options" if o.flag() && !l.ip_options => l.ip_options = true,
                        "--log-uid" if o.flag() && !l.uid => l.uid = true,
                        "--log-macdecode" if o.flag() && !l.macdecode => l.macdecode = true,
                        _ => return None,
                    }
                }
                Some(Target::Log(l))
            }
            "CT" => {
                let (mut notrack, mut zone) = (false, None);
                for o in opts {
                    match o.name {
                        "--notrack" if o.flag() && !notrack => notrack = true,
                        "--zone" if zone.is_none() => zone = Some(one(o)?.parse().ok()?),
                        _ => return None,
                    }
                }
                if !notrack && zone.is_none() {
                    return None;
                }
                Some(Target::Ct { notrack, zone })
            }
            _ => None,
        }
    }

    fn connmark(opts: &[Opt<'_>]) -> Option<Connmark> {
        let (first, rest) = opts.split_first()?;
        match first.name {
            "--save-mark" | "--restore-mark" if first.flag() => {
                let (mut nf, mut ct) = (None, None);
                for o in rest {
                    let v = mark(one(o)?)?;
                    match o.name {
                        "--nfmask" if nf.is_none() => nf = Some(v),
                        "--ctmask" if ct.is_none() => ct = Some(v),
                        "--mask" if nf.is_none() && ct.is_none() => {
                            nf = Some(v);
                            ct = Some(v);
                        }
                        _ => return None,
                    }
                }
                Some(if first.name == "--save-mark" {
                    Connmark::Save {
                        nfmask: nf,
                        ctmask: ct,
                    }
                } else {
                    Connmark::Restore {
                        nfmask: nf,
                        ctmask: ct,
                    }
                })
            }
            _ if rest.is_empty() => Some(Connmark::Set(MarkOp::parse(first.name, one(first)?)?)),
            _ => None,
        }
    }

    /// Appends ` -j …` / ` -g …` (with a leading space).
    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Target::Accept => out.push_str(" -j ACCEPT"),
            Target::Drop => out.push_str(" -j DROP"),
            Target::Return => out.push_str(" -j RETURN"),
            Target::Queue => out.push_str(" -j QUEUE"),
            Target::Notrack => out.push_str(" -j NOTRACK"),
            Target::Trace => out.push_str(" -j TRACE"),
            Target::Jump(c) => {
                let _ = write!(out, " -j {c}");
            }
            Target::Goto(c) => {
                let _ = write!(out, " -g {c}");
            }
            Target::Reject(r) => {
                out.push_str(" -j REJECT");
                if let Some(r) = r {
                    let _ = write!(out, " --reject-with {}", r.name());
                }
            }
            Target::Dnat(n) | Target::Snat(n) => {
                let (name, opt) = if matches!(self, Target::Dnat(_)) {
                    ("DNAT", "--to-destination")
                } else {
                    ("SNAT", "--to-source")
                };
                let _ = write!(out, " -j {name}");
                if let Some(to) = &n.to {
                    let _ = write!(out, " {opt} ");
                    to.write(out);
                }
                if n.random {
                    out.push_str(" --random");
                }
                if n.random_fully {
                    out.push_str(" --random-fully");
                }
                if n.persistent {
                    out.push_str(" --persistent");
                }
            }
            Target::Masquerade(p) | Target::Redirect(p) => {
                out.push_str(if matches!(self, Target::Masquerade(_)) {
                    " -j MASQUERADE"
                } else {
                    " -j REDIRECT"
                });
                if let Some(r) = p.to_ports {
                    out.push_str(" --to-ports ");
                    r.write_sep(out, '-');
                }
                if p.random {
                    out.push_str(" --random");
                }
                if p.random_fully {
                    out.push_str(" --random-fully");
                }
            }
            Target::Mark(m) => {
                out.push_str(" -j MARK");
                m.write(out);
            }
            Target::Connmark(c) => {
                out.push_str(" -j CONNMARK");
                match c {
                    Connmark::Set(m) => m.write(out),
                    Connmark::Save { nfmask, ctmask } | Connmark::Restore { nfmask, ctmask } => {
                        out.push_str(if matches!(c, Connmark::Save { .. }) {
                            " --save-mark"
                        } else {
                            " --restore-mark"
                        });
                        if let Some(m) = nfmask {
                            let _ = write!(out, " --nfmask {m:#x}");
                        }
                        if let Some(m) = ctmask {
                            let _ = write!(out, " --ctmask {m:#x}");
                        }
                    }
                }
            }
            Target::Log(l) => {
                out.push_str(" -j LOG");
                if let Some(p) = &l.prefix {
                    out.push_str(" --log-prefix ");
                    write_quoted(out, p);
                }
                if let Some(v) = &l.level {
                    let _ = write!(out, " --log-level {v}");
                }
                for (on, name) in [
                    (l.tcp_sequence, " --log-tcp-sequence"),
                    (l.tcp_options, " --log-tcp-options"),
                    (l.ip_options, " --log-ip-options"),
                    (l.uid, " --log-uid"),
                    (l.macdecode, " --log-macdecode"),
                ] {
                    if on {
                        out.push_str(name);
                    }
                }
            }
            Target::Ct { notrack, zone } => {
                out.push_str(" -j CT");
                if *notrack {
                    out.push_str(" --notrack");
                }
                if let Some(z) = zone {
                    let _ = write!(out, " --zone {z}");
                }
            }
            Target::Unknown { name, args } => {
                let _ = write!(out, " -j {name}");
                for a in args {
                    out.push(' ');
                    out.push_str(a);
                }
            }
        }
    }

    /// The text of the target alone (`-j DNAT --to-destination 198.18.64.2:80`).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s.split_off(1.min(s.len()))
    }

    /// The form iptables-save prints back: MARK/CONNMARK as `--set-xmark V/M`, CONNMARK masks
    /// filled in, REJECT's default named, LOG's default level dropped and names as numbers.
    pub fn canonical(&self, family: Family) -> Target {
        match self {
            Target::Reject(None) => Target::Reject(Some(RejectWith::default_for(family))),
            Target::Mark(m) => Target::Mark(m.canonical()),
            Target::Connmark(Connmark::Set(m)) => Target::Connmark(Connmark::Set(m.canonical())),
            Target::Connmark(Connmark::Save { nfmask, ctmask }) => {
                Target::Connmark(Connmark::Save {
                    nfmask: Some(nfmask.unwrap_or(u32::MAX)),
                    ctmask: Some(ctmask.unwrap_or(u32::MAX)),
                })
            }
            Target::Connmark(Connmark::Restore { nfmask, ctmask }) => {
                Target::Connmark(Connmark::Restore {
                    nfmask: Some(nfmask.unwrap_or(u32::MAX)),
                    ctmask: Some(ctmask.unwrap_or(u32::MAX)),
                })
            }
            Target::Log(l) => {
                let level = l.level.as_deref().map(|v| {
                    let n = match v {
                        "warn" => 4,
                        "err" => 3,
                        "panic" => 0,
                        v => LOG_LEVELS
                            .iter()
                            .position(|n| *n == v)
                            .unwrap_or_else(|| v.parse().unwrap_or(4)),
                    };
                    n.to_string()
                });
                Target::Log(Log {
                    level: level.filter(|n| n != "4"),
                    ..l.clone()
                })
            }
            t => t.clone(),
        }
    }

    /// Whether traversal of the current chain stops here when the rule matches (a verdict,
    /// NAT, or goto); false for jumps (they come back), MARK, LOG, and the like.
    pub fn is_terminating(&self) -> bool {
        matches!(
            self,
            Target::Accept
                | Target::Drop
                | Target::Return
                | Target::Queue
                | Target::Goto(_)
                | Target::Reject(_)
                | Target::Dnat(_)
                | Target::Snat(_)
                | Target::Masquerade(_)
                | Target::Redirect(_)
        )
    }

    /// The chain this target continues in (`-j CHAIN` or `-g CHAIN`).
    pub fn chain(&self) -> Option<&str> {
        match self {
            Target::Jump(c) | Target::Goto(c) => Some(c),
            _ => None,
        }
    }

    /// What the target does to the packet.
    pub fn effect(&self, family: Family) -> TargetEffect {
        match self {
            Target::Accept => TargetEffect::Accept,
            Target::Drop => TargetEffect::Drop,
            Target::Return => TargetEffect::Return,
            Target::Queue => TargetEffect::Queue,
            Target::Jump(c) => TargetEffect::Jump(c.clone()),
            Target::Goto(c) => TargetEffect::Goto(c.clone()),
            Target::Reject(r) => TargetEffect::Reject(r.unwrap_or(RejectWith::default_for(family))),
            Target::Dnat(n) => TargetEffect::Dnat(n.to.unwrap_or_default()),
            Target::Snat(n) => TargetEffect::Snat(n.to.unwrap_or_default()),
            Target::Masquerade(p) => TargetEffect::Masquerade(p.to_ports),
            Target::Redirect(p) => TargetEffect::Redirect(p.to_ports),
            Target::Mark(m) => {
                let (value, mask) = m.xmark();
                TargetEffect::SetMark { value, mask }
            }
            Target::Connmark(c) => TargetEffect::Connmark(*c),
            Target::Log(_) | Target::Trace => TargetEffect::Continue,
            Target::Notrack => TargetEffect::NoTrack,
            Target::Ct { notrack: true, .. } => TargetEffect::NoTrack,
            Target::Ct { .. } => TargetEffect::Continue,
            Target::Unknown { name, .. } => TargetEffect::Unknown(name.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_ops_convert_like_iptables() {
        let op = |k, v, m| MarkOp {
            kind: k,
            value: v,
            mask: m,
        };
        assert_eq!(
            op(MarkOpKind::OrMark, 0x4000, None).xmark(),
            (0x4000, 0x4000)
        );
        assert_eq!(op(MarkOpKind::XorMark, 0x4000, None).xmark(), (0x4000, 0));
        assert_eq!(op(MarkOpKind::AndMark, 0x10, None).xmark(), (0, 0xffffffef));
        assert_eq!(
            op(MarkOpKind::SetMark, 0x10, None).xmark(),
            (0x10, 0xffffffff)
        );
        assert_eq!(op(MarkOpKind::SetMark, 0x3, Some(0x7)).xmark(), (0x3, 0x7));
        assert_eq!(op(MarkOpKind::OrMark, 0x4000, None).apply(0x1), 0x4001);
        assert_eq!(op(MarkOpKind::XorMark, 0x4000, None).apply(0x4001), 0x1);
    }

    #[test]
    fn nat_ranges() {
        for s in [
            "198.18.64.2:80",
            "198.18.64.3-198.18.64.5:80-90",
            ":80",
            "198.18.0.1",
            "[2001:db8:1::5]:8080",
            "[2001:db8:1::5-2001:db8:1::9]:80-90",
            "2001:db8:1::5",
        ] {
            let r = NatRange::parse(s).unwrap();
            let mut o = String::new();
            r.write(&mut o);
            assert_eq!(o, s);
        }
        assert!(NatRange::parse("").is_none());
        assert!(NatRange::parse("[2001:db8::1").is_none());
        assert!(NatRange::parse("198.18.0.1-2001:db8::1").is_none());
    }
}
