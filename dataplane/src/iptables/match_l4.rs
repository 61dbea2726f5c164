//! Layer-4 matches: `tcp`, `udp`, `sctp` (ports, TCP flags), `multiport`, `icmp` and `icmp6`.
//!
//! In: the options of one `-m MODULE` group. Out: a typed match that prints back the form
//! iptables-save prints (`-m tcp --sport 1000:2000 ! --dport 80 --tcp-flags SYN,RST,ACK SYN`).

use super::matches::{Opt, one};
use super::values::{Neg, PortRange};
use crate::packet::Family;

/// `-m tcp` / `-m udp` / `-m sctp` (or the implicit module of `-p tcp --dport 80`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PortMatch {
    /// `--sport a[:b]`.
    pub sport: Option<Neg<PortRange>>,
    /// `--dport a[:b]`.
    pub dport: Option<Neg<PortRange>>,
    /// `--tcp-flags MASK COMP` or `--syn` (tcp only).
    pub tcp_flags: Option<Neg<TcpFlagsMatch>>,
    /// Written without `-m tcp` (loaded implicitly by `-p tcp`); iptables-save always prints it.
    pub implicit: bool,
}

/// `--tcp-flags MASK COMP`: the flags in `mask` must equal `comp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpFlagsMatch {
    /// Flags examined (FIN=0x01 … URG=0x20).
    pub mask: u8,
    /// Flags that must be set among those examined.
    pub comp: u8,
    /// Written as `--syn` (= `--tcp-flags FIN,SYN,RST,ACK SYN`).
    pub syn_form: bool,
}

const TCP_FLAG_NAMES: [(u8, &str); 6] = [
    (0x01, "FIN"),
    (0x02, "SYN"),
    (0x04, "RST"),
    (0x08, "PSH"),
    (0x10, "ACK"),
    (0x20, "URG"),
];

fn parse_tcp_flags(s: &str) -> Option<u8> {
    let mut v = 0u8;
    for part in s.split(',') {
        v |= match part.to_ascii_uppercase().as_str() {
            "ALL" => 0x3f,
            "NONE" => 0,
            n => TCP_FLAG_NAMES.iter().find(|(_, name)| *name == n)?.0,
        };
    }
    Some(v)
}

fn write_tcp_flags(out: &mut String, v: u8) {
    if v == 0 {
        out.push_str("NONE");
        return;
    }
    let mut first = true;
    for (bit, name) in TCP_FLAG_NAMES {
        if v & bit != 0 {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
        }
    }
}

impl TcpFlagsMatch {
    /// `--syn`: SYN set, ACK, RST and FIN clear.
    pub const SYN: TcpFlagsMatch = TcpFlagsMatch {
        mask: 0x17,
        comp: 0x02,
        syn_form: true,
    };

    /// Whether a packet with `flags` matches.
    pub fn matches(&self, flags: u8) -> bool {
        flags & self.mask == self.comp
    }
}

impl PortMatch {
    pub(crate) fn parse(opts: &[Opt<'_>], tcp: bool) -> Option<PortMatch> {
        let mut m = PortMatch::default();
        for o in opts {
            match o.name {
                "--sport" | "--source-port" if m.sport.is_none() => {
                    m.sport = Some(o.neg(PortRange::parse_sep(one(o)?, ':')?));
                }
                "--dport" | "--destination-port" if m.dport.is_none() => {
                    m.dport = Some(o.neg(PortRange::parse_sep(one(o)?, ':')?));
                }
                "--tcp-flags" if tcp && m.tcp_flags.is_none() && o.vals.len() == 2 => {
                    let mask = parse_tcp_flags(&o.vals[0].value)?;
                    let comp = parse_tcp_flags(&o.vals[1].value)?;
                    m.tcp_flags = Some(o.neg(TcpFlagsMatch {
                        mask,
                        comp,
                        syn_form: false,
                    }));
                }
                "--syn" if tcp && m.tcp_flags.is_none() && o.vals.is_empty() => {
                    m.tcp_flags = Some(o.neg(TcpFlagsMatch::SYN));
                }
                _ => return None,
            }
        }
        Some(m)
    }

    pub(crate) fn write(&self, out: &mut String, module: &str) {
        if !self.implicit {
            out.push_str(" -m ");
            out.push_str(module);
        }
        if let Some(p) = &self.sport {
            out.push(' ');
            out.push_str(p.bang());
            out.push_str("--sport ");
            p.value.write_sep(out, ':');
        }
        if let Some(p) = &self.dport {
            out.push(' ');
            out.push_str(p.bang());
            out.push_str("--dport ");
            p.value.write_sep(out, ':');
        }
        if let Some(f) = &self.tcp_flags {
            out.push(' ');
            out.push_str(f.bang());
            if f.value.syn_form {
                out.push_str("--syn");
            } else {
                out.push_str("--tcp-flags ");
                write_tcp_flags(out, f.value.mask);
                out.push(' ');
                write_tcp_flags(out, f.value.comp);
            }
        }
    }

    pub(crate) fn canonical(&self) -> PortMatch {
        let mut m = self.clone();
        m.implicit = false;
        if let Some(f) = &mut m.tcp_flags {
            f.value.syn_form = false;
        }
        m
    }
}

/// Which ports `-m multiport` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MultiportDir {
    /// `--sports` (source port).
    Source,
    /// `--dports` (destination port).
    Destination,
    /// `--ports` (either port).
    Either,
}

/// `-m multiport --dports 80,443,8000:8080` (up to 15 ports, a range counts twice).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Multiport {
    /// Which port(s) to compare.
    pub dir: MultiportDir,
    /// `!` before the option.
    pub negated: bool,
    /// Ports and ranges, in the order written.
    pub ports: Vec<PortRange>,
}

impl Multiport {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<Multiport> {
        let [o] = opts else { return None };
        let dir = match o.name {
            "--sports" | "--source-ports" => MultiportDir::Source,
            "--dports" | "--destination-ports" => MultiportDir::Destination,
            "--ports" => MultiportDir::Either,
            _ => return None,
        };
        let ports = one(o)?
            .split(',')
            .map(|p| PortRange::parse_sep(p, ':'))
            .collect::<Option<Vec<_>>>()?;
        Some(Multiport {
            dir,
            negated: o.negated,
            ports,
        })
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str(" -m multiport ");
        if self.negated {
            out.push_str("! ");
        }
        out.push_str(match self.dir {
            MultiportDir::Source => "--sports ",
            MultiportDir::Destination => "--dports ",
            MultiportDir::Either => "--ports ",
        });
        for (i, p) in self.ports.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            p.write_sep(out, ':');
        }
    }

    /// Whether a port is listed.
    pub fn contains(&self, port: u16) -> bool {
        self.ports.iter().any(|r| r.contains(port))
    }
}

/// An ICMP or ICMPv6 type as `--icmp-type` / `--icmpv6-type` take it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IcmpType {
    /// The text as written (`8`, `3/3`, `echo-request`, `any`).
    pub text: String,
    /// The type; `None` for `any`.
    pub icmp_type: Option<u8>,
    /// Lowest code matched.
    pub code_min: u8,
    /// Highest code matched.
    pub code_max: u8,
}

const ICMP4_NAMES: &[(&str, u8, Option<u8>)] = &[
    ("echo-reply", 0, None),
    ("pong", 0, None),
    ("destination-unreachable", 3, None),
    ("network-unreachable", 3, Some(0)),
    ("host-unreachable", 3, Some(1)),
    ("protocol-unreachable", 3, Some(2)),
    ("port-unreachable", 3, Some(3)),
    ("fragmentation-needed", 3, Some(4)),
    ("source-route-failed", 3, Some(5)),
    ("network-unknown", 3, Some(6)),
    ("host-unknown", 3, Some(7)),
    ("network-prohibited", 3, Some(9)),
    ("host-prohibited", 3, Some(10)),
    ("TOS-network-unreachable", 3, Some(11)),
    ("TOS-host-unreachable", 3, Some(12)),
    ("communication-prohibited", 3, Some(13)),
    ("host-precedence-violation", 3, Some(14)),
    ("precedence-cutoff", 3, Some(15)),
    ("source-quench", 4, None),
    ("redirect", 5, None),
    ("network-redirect", 5, Some(0)),
    ("host-redirect", 5, Some(1)),
    ("TOS-network-redirect", 5, Some(2)),
    ("TOS-host-redirect", 5, Some(3)),
    ("echo-request", 8, None),
    ("ping", 8, None),
    ("router-advertisement", 9, None),
    ("router-solicitation", 10, None),
    ("time-exceeded", 11, None),
    ("ttl-exceeded", 11, None),
    ("ttl-zero-during-transit", 11, Some(0)),
    ("ttl-zero-during-reassembly", 11, Some(1)),
    ("parameter-problem", 12, None),
    ("ip-header-bad", 12, Some(0)),
    ("required-option-missing", 12, Some(1)),
    ("timestamp-request", 13, None),
    ("timestamp-reply", 14, None),
    ("address-mask-request", 17, None),
    ("address-mask-reply", 18, None),
];

const ICMP6_NAMES: &[(&str, u8, Option<u8>)] = &[
    ("destination-unreachable", 1, None),
    ("no-route", 1, Some(0)),
    ("communication-prohibited", 1, Some(1)),
    ("beyond-scope", 1, Some(2)),
    ("address-unreachable", 1, Some(3)),
    ("port-unreachable", 1, Some(4)),
    ("failed-policy", 1, Some(5)),
    ("reject-route", 1, Some(6)),
    ("packet-too-big", 2, None),
    ("time-exceeded", 3, None),
    ("ttl-exceeded", 3, None),
    ("ttl-zero-during-transit", 3, Some(0)),
    ("ttl-zero-during-reassembly", 3, Some(1)),
    ("parameter-problem", 4, None),
    ("bad-header", 4, Some(0)),
    ("unknown-header-type", 4, Some(1)),
    ("unknown-option", 4, Some(2)),
    ("echo-request", 128, None),
    ("ping", 128, None),
    ("echo-reply", 129, None),
    ("pong", 129, None),
    ("router-solicitation", 133, None),
    ("router-advertisement", 134, None),
    ("neighbour-solicitation", 135, None),
    ("neighbor-solicitation", 135, None),
    ("neighbour-advertisement", 136, None),
    ("neighbor-advertisement", 136, None),
    ("redirect", 137, None),
];

impl IcmpType {
    /// Parses a type for `family` (names from iptables' tables, `T`, `T/C`, `any`).
    pub fn parse(s: &str, family: Family) -> Option<IcmpType> {
        let names = match family {
            Family::V4 => ICMP4_NAMES,
            Family::V6 => ICMP6_NAMES,
        };
        let (t, code) = if s == "any" {
            return Some(IcmpType {
                text: s.into(),
                icmp_type: None,
                code_min: 0,
                code_max: 255,
            });
        } else if let Some((_, t, c)) = names.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(s)) {
            (*t, *c)
        } else {
            let (t, c) = match s.split_once('/') {
                Some((t, c)) => (t, Some(c)),
                None => (s, None),
            };
            let num = |x: &str| -> Option<u8> {
                if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                x.parse().ok()
            };
            (
                num(t)?,
                match c {
                    Some(c) => Some(num(c)?),
                    None => None,
                },
            )
        };
        let (code_min, code_max) = code.map_or((0, 255), |c| (c, c));
        Some(IcmpType {
            text: s.into(),
            icmp_type: Some(t),
            code_min,
            code_max,
        })
    }

    /// Whether a packet's type and code match.
    pub fn matches(&self, icmp_type: u8, code: u8) -> bool {
        match self.icmp_type {
            None => true,
            Some(t) => t == icmp_type && self.code_min <= code && code <= self.code_max,
        }
    }

    /// The form iptables-save prints: numbers, `T/C` when one code is selected.
    pub fn canonical(&self) -> IcmpType {
        let text = match self.icmp_type {
            None => "any".to_string(),
            Some(t) if self.code_min == 0 && self.code_max == 255 => t.to_string(),
            Some(t) => format!("{}/{}", t, self.code_min),
        };
        IcmpType {
            text,
            ..self.clone()
        }
    }
}

/// `-m icmp --icmp-type T` (IPv4) or `-m icmp6 --icmpv6-type T` (IPv6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IcmpMatch {
    /// The type, with `!`.
    pub icmp_type: Neg<IcmpType>,
    /// Written without `-m icmp` (implicit with `-p icmp`).
    pub implicit: bool,
}

impl IcmpMatch {
    pub(crate) fn parse(opts: &[Opt<'_>], family: Family) -> Option<IcmpMatch> {
        let [o] = opts else { return None };
        let want = match family {
            Family::V4 => "--icmp-type",
            Family::V6 => "--icmpv6-type",
        };
        if o.name != want {
            return None;
        }
        Some(IcmpMatch {
            icmp_type: o.neg(IcmpType::parse(one(o)?, family)?),
            implicit: false,
        })
    }

    pub(crate) fn write(&self, out: &mut String, family: Family) {
        let (module, opt) = match family {
            Family::V4 => ("icmp", "--icmp-type "),
            Family::V6 => ("icmp6", "--icmpv6-type "),
        };
        if !self.implicit {
            out.push_str(" -m ");
            out.push_str(module);
        }
        out.push(' ');
        out.push_str(self.icmp_type.bang());
        out.push_str(opt);
        out.push_str(&self.icmp_type.value.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_names_and_numbers() {
        let t = IcmpType::parse("port-unreachable", Family::V4).unwrap();
        assert_eq!(t.canonical().text, "3/3");
        assert!(t.matches(3, 3) && !t.matches(3, 1));
        assert_eq!(
            IcmpType::parse("echo-reply", Family::V4)
                .unwrap()
                .canonical()
                .text,
            "0"
        );
        assert_eq!(
            IcmpType::parse("neighbour-solicitation", Family::V6)
                .unwrap()
                .canonical()
                .text,
            "135"
        );
        assert!(IcmpType::parse("any", Family::V4).unwrap().matches(42, 7));
        assert!(IcmpType::parse("3/x", Family::V4).is_none());
        assert!(IcmpType::parse("nonsense", Family::V6).is_none());
    }

    #[test]
    fn tcp_flags_print_like_iptables_save() {
        let mut s = String::new();
        write_tcp_flags(&mut s, parse_tcp_flags("ALL").unwrap());
        assert_eq!(s, "FIN,SYN,RST,PSH,ACK,URG");
        assert!(TcpFlagsMatch::SYN.matches(0x02));
        assert!(!TcpFlagsMatch::SYN.matches(0x12));
    }
}
