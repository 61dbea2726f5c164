//! The `Match` enum: one entry per `-s/-d/-i/-o/-p/-f` option or `-m MODULE` group of a rule.
//!
//! ```text
//!   -s 198.18.0.1/32 -p tcp -m tcp --dport 80 -m foo --bar 1
//!   -> [Source, Protocol, Tcp(PortMatch), Unknown { module: "foo", args: ["--bar", "1"] }]
//! ```
//! In: option groups from the rule parser. Out: typed matches that print back the text
//! iptables-save prints. A module this code does not know, or a known module with an option or
//! value it does not understand, becomes `Match::Unknown` with its words kept raw.

use super::lexer::Word;
use super::match_ct::{Conntrack, MarkMatch, Recent, StateMatch, Statistic};
use super::match_l4::{IcmpMatch, Multiport, PortMatch};
use super::match_misc::{
    AddrType, IpRange, Length, Limit, Owner, Physdev, PktTypeMatch, SetMatch, TtlMatch,
};
use super::values::{AddrMask, Iface, Neg, ProtoSpec, write_quoted};
use crate::packet::Family;

/// One option of a module group, with its values (words up to the next option).
#[derive(Debug, Clone)]
pub(crate) struct Opt<'w> {
    /// `!` was written before the option.
    pub negated: bool,
    /// The option name (`--dport`).
    pub name: &'w str,
    /// The option's value words.
    pub vals: &'w [Word<'w>],
}

impl Opt<'_> {
    /// Wraps a value with this option's `!` flag.
    pub(crate) fn neg<T>(&self, value: T) -> Neg<T> {
        Neg {
            negated: self.negated,
            value,
        }
    }

    /// Whether the option takes no value.
    pub(crate) fn flag(&self) -> bool {
        self.vals.is_empty()
    }
}

/// The words of option groups exactly as written (`!`, names, raw values), for `Unknown`.
pub(crate) fn raw_words(opts: &[Opt<'_>]) -> Vec<String> {
    let mut raw = Vec::with_capacity(opts.len() * 2);
    for o in opts {
        if o.negated {
            raw.push("!".to_string());
        }
        raw.push(o.name.to_string());
        raw.extend(o.vals.iter().map(|v| v.raw.to_string()));
    }
    raw
}

/// The single value of an option, if it has exactly one.
pub(crate) fn one<'a>(o: &'a Opt<'_>) -> Option<&'a str> {
    match o.vals {
        [w] => Some(w.value.as_ref()),
        _ => None,
    }
}

/// A match of a rule: a basic option or a match extension (`-m MODULE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// `[!] -s ADDR[/MASK]`.
    Source(Neg<AddrMask>),
    /// `[!] -d ADDR[/MASK]`.
    Destination(Neg<AddrMask>),
    /// `[!] -i IFACE` (`eth+` is a prefix wildcard).
    InInterface(Neg<Iface>),
    /// `[!] -o IFACE`.
    OutInterface(Neg<Iface>),
    /// `[!] -p PROTO`.
    Protocol(Neg<ProtoSpec>),
    /// `[!] -f`: second and later fragments (IPv4). `true` when negated.
    Fragment {
        /// `! -f`.
        negated: bool,
    },
    /// `-m tcp`.
    Tcp(PortMatch),
    /// `-m udp`.
    Udp(PortMatch),
    /// `-m sctp` (ports only).
    Sctp(PortMatch),
    /// `-m multiport`.
    Multiport(Multiport),
    /// `-m comment --comment TEXT` (the text unescaped).
    Comment(String),
    /// `-m statistic`.
    Statistic(Statistic),
    /// `-m recent`.
    Recent(Recent),
    /// `-m mark --mark`.
    Mark(MarkMatch),
    /// `-m connmark --mark`.
    Connmark(MarkMatch),
    /// `-m conntrack`.
    Conntrack(Conntrack),
    /// `-m state --state`.
    State(StateMatch),
    /// `-m addrtype`.
    AddrType(AddrType),
    /// `-m set --match-set`.
    Set(SetMatch),
    /// `-m physdev`.
    Physdev(Physdev),
    /// `-m iprange`.
    IpRange(IpRange),
    /// `-m icmp --icmp-type` (IPv4).
    Icmp(IcmpMatch),
    /// `-m icmp6 --icmpv6-type` (IPv6).
    Icmp6(IcmpMatch),
    /// `-m owner`.
    Owner(Owner),
    /// `-m limit`.
    Limit(Limit),
    /// `-m length`.
    Length(Length),
    /// `-m pkttype`.
    PktType(PktTypeMatch),
    /// `-m ttl` (IPv4).
    Ttl(TtlMatch),
    /// `-m hl` (IPv6).
    Hl(TtlMatch),
    /// Anything else: the module name and its words exactly as written (quotes included).
    Unknown {
        /// The module name after `-m`.
        module: String,
        /// The words after `-m MODULE`, raw.
        args: Vec<String>,
    },
}

/// Option names each known module accepts (used to attach options written after other
/// options, as in `-m tcp -p tcp -d X --dport 80`).
pub(crate) fn module_knows(module: &str, opt: &str) -> bool {
    let names: &[&str] = match module {
        "tcp" => &[
            "--sport",
            "--source-port",
            "--dport",
            "--destination-port",
            "--tcp-flags",
            "--syn",
            "--tcp-option",
        ],
        "udp" => &["--sport", "--source-port", "--dport", "--destination-port"],
        "sctp" => &[
            "--sport",
            "--source-port",
            "--dport",
            "--destination-port",
            "--chunk-types",
        ],
        "multiport" => &[
            "--sports",
            "--source-ports",
            "--dports",
            "--destination-ports",
            "--ports",
        ],
        "comment" => &["--comment"],
        "statistic" => &["--mode", "--probability", "--every", "--packet"],
        "recent" => &[
            "--set",
            "--rcheck",
            "--update",
            "--remove",
            "--seconds",
            "--reap",
            "--hitcount",
            "--rttl",
            "--name",
            "--mask",
            "--rsource",
            "--rdest",
        ],
        "mark" | "connmark" => &["--mark"],
        "conntrack" => &[
            "--ctstate",
            "--ctproto",
            "--ctorigsrc",
            "--ctorigdst",
            "--ctreplsrc",
            "--ctrepldst",
            "--ctorigsrcport",
            "--ctorigdstport",
            "--ctreplsrcport",
            "--ctrepldstport",
            "--ctstatus",
            "--ctexpire",
            "--ctdir",
        ],
        "state" => &["--state"],
        "addrtype" => &[
            "--src-type",
            "--dst-type",
            "--limit-iface-in",
            "--limit-iface-out",
        ],
        "set" => &[
            "--match-set",
            "--return-nomatch",
            "--update-counters",
            "--update-subcounters",
            "--packets-eq",
            "--packets-lt",
            "--packets-gt",
            "--bytes-eq",
            "--bytes-lt",
            "--bytes-gt",
        ],
        "physdev" => &[
            "--physdev-in",
            "--physdev-out",
            "--physdev-is-in",
            "--physdev-is-out",
            "--physdev-is-bridged",
        ],
        "iprange" => &["--src-range", "--dst-range"],
        "icmp" => &["--icmp-type"],
        "icmp6" => &["--icmpv6-type"],
        "owner" => &[
            "--socket-exists",
            "--uid-owner",
            "--gid-owner",
            "--suppl-groups",
        ],
        "limit" => &["--limit", "--limit-burst"],
        "length" => &["--length"],
        "pkttype" => &["--pkt-type"],
        "ttl" => &["--ttl-eq", "--ttl-lt", "--ttl-gt"],
        "hl" => &["--hl-eq", "--hl-lt", "--hl-gt"],
        _ => return false,
    };
    names.contains(&opt)
}

impl Match {
    /// Builds a match from a `-m MODULE` group; falls back to `Unknown` with the raw words.
    pub(crate) fn from_module(module: &str, opts: &[Opt<'_>], family: Family) -> Match {
        let typed = match module {
            "tcp" => PortMatch::parse(opts, true).map(Match::Tcp),
            "udp" => PortMatch::parse(opts, false).map(Match::Udp),
            "sctp" => PortMatch::parse(opts, false).map(Match::Sctp),
            "multiport" => Multiport::parse(opts).map(Match::Multiport),
            "comment" => match opts {
                [o] if o.name == "--comment" && !o.negated => {
                    one(o).map(|c| Match::Comment(c.to_string()))
                }
                _ => None,
            },
            "statistic" => Statistic::parse(opts).map(Match::Statistic),
            "recent" => Recent::parse(opts).map(Match::Recent),
            "mark" => MarkMatch::parse(opts).map(Match::Mark),
            "connmark" => MarkMatch::parse(opts).map(Match::Connmark),
            "conntrack" => Conntrack::parse(opts).map(Match::Conntrack),
            "state" => StateMatch::parse(opts).map(Match::State),
            "addrtype" => AddrType::parse(opts).map(Match::AddrType),
            "set" => SetMatch::parse(opts).map(Match::Set),
            "physdev" => Physdev::parse(opts).map(Match::Physdev),
            "iprange" => IpRange::parse(opts).map(Match::IpRange),
            "icmp" if family == Family::V4 => IcmpMatch::parse(opts, family).map(Match::Icmp),
            "icmp6" if family == Family::V6 => IcmpMatch::parse(opts, family).map(Match::Icmp6),
            "owner" => Owner::parse(opts).map(Match::Owner),
            "limit" => Limit::parse(opts).map(Match::Limit),
            "length" => Length::parse(opts).map(Match::Length),
            "pkttype" => PktTypeMatch::parse(opts).map(Match::PktType),
            "ttl" if family == Family::V4 => TtlMatch::parse(opts, "--ttl").map(Match::Ttl),
            "hl" if family == Family::V6 => TtlMatch::parse(opts, "--hl").map(Match::Hl),
            _ => None,
        };
        typed.unwrap_or_else(|| Match::Unknown {
            module: module.to_string(),
            args: raw_words(opts),
        })
    }

    /// Appends ` TEXT` (with a leading space) as iptables-save prints it.
    pub(crate) fn write(&self, out: &mut String, family: Family) {
        use std::fmt::Write;
        match self {
            Match::Source(a) => {
                let _ = write!(out, " {}-s {}", a.bang(), a.value);
            }
            Match::Destination(a) => {
                let _ = write!(out, " {}-d {}", a.bang(), a.value);
            }
            Match::InInterface(i) => {
                let _ = write!(out, " {}-i {}", i.bang(), i.value);
            }
            Match::OutInterface(i) => {
                let _ = write!(out, " {}-o {}", i.bang(), i.value);
            }
            Match::Protocol(p) => {
                let _ = write!(out, " {}-p {}", p.bang(), p.value);
            }
            Match::Fragment { negated } => out.push_str(if *negated { " ! -f" } else { " -f" }),
            Match::Tcp(m) => m.write(out, "tcp"),
            Match::Udp(m) => m.write(out, "udp"),
            Match::Sctp(m) => m.write(out, "sctp"),
            Match::Multiport(m) => m.write(out),
            Match::Comment(c) => {
                out.push_str(" -m comment --comment ");
                write_quoted(out, c);
            }
            Match::Statistic(s) => s.write(out),
            Match::Recent(r) => r.write(out),
            Match::Mark(m) => m.write(out, "mark"),
            Match::Connmark(m) => m.write(out, "connmark"),
            Match::Conntrack(c) => c.write(out),
            Match::State(s) => s.write(out),
            Match::AddrType(a) => a.write(out),
            Match::Set(s) => s.write(out),
            Match::Physdev(p) => p.write(out),
            Match::IpRange(r) => r.write(out),
            Match::Icmp(i) => i.write(out, Family::V4),
            Match::Icmp6(i) => i.write(out, Family::V6),
            Match::Owner(o) => o.write(out),
            Match::Limit(l) => l.write(out),
            Match::Length(l) => l.write(out),
            Match::PktType(p) => p.write(out),
            Match::Ttl(t) => t.write(out, "ttl"),
            Match::Hl(t) => t.write(out, "hl"),
            Match::Unknown { module, args } => {
                let _ = write!(out, " -m {module}");
                for a in args {
                    out.push(' ');
                    out.push_str(a);
                }
            }
        }
        let _ = family;
    }

    /// The text of this match alone, as iptables-save prints it (`-m tcp --dport 80`).
    pub fn to_text(&self, family: Family) -> String {
        let mut s = String::new();
        self.write(&mut s, family);
        s.split_off(1.min(s.len()))
    }

    /// Whether this is one of the basic options (`-s -d -i -o -p -f`), which iptables-save
    /// prints before every `-m` group.
    pub fn is_basic(&self) -> bool {
        matches!(
            self,
            Match::Source(_)
                | Match::Destination(_)
                | Match::InInterface(_)
                | Match::OutInterface(_)
                | Match::Protocol(_)
                | Match::Fragment { .. }
        )
    }

    /// The module name after `-m` (`None` for basic options).
    pub fn module(&self) -> Option<&str> {
        Some(match self {
            Match::Source(_)
            | Match::Destination(_)
            | Match::InInterface(_)
            | Match::OutInterface(_)
            | Match::Protocol(_)
            | Match::Fragment { .. } => return None,
            Match::Tcp(_) => "tcp",
            Match::Udp(_) => "udp",
            Match::Sctp(_) => "sctp",
            Match::Multiport(_) => "multiport",
            Match::Comment(_) => "comment",
            Match::Statistic(_) => "statistic",
            Match::Recent(_) => "recent",
            Match::Mark(_) => "mark",
            Match::Connmark(_) => "connmark",
            Match::Conntrack(_) => "conntrack",
            Match::State(_) => "state",
            Match::AddrType(_) => "addrtype",
            Match::Set(_) => "set",
            Match::Physdev(_) => "physdev",
            Match::IpRange(_) => "iprange",
            Match::Icmp(_) => "icmp",
            Match::Icmp6(_) => "icmp6",
            Match::Owner(_) => "owner",
            Match::Limit(_) => "limit",
            Match::Length(_) => "length",
            Match::PktType(_) => "pkttype",
            Match::Ttl(_) => "ttl",
            Match::Hl(_) => "hl",
            Match::Unknown { module, .. } => module,
        })
    }

    /// The form the kernel keeps and iptables-save prints back: masked addresses with prefix
    /// lengths, numbers for ICMP names, `--tcp-flags` for `--syn`, defaults filled in (`recent`
    /// name/mask/side, `limit` rate), `-m tcp` made explicit. `None` for matches iptables-save
    /// omits (`-s 0.0.0.0/0`, `-o +`, `-p all`).
    pub fn canonical(&self, family: Family) -> Option<Match> {
        Some(match self {
            Match::Source(a) if !a.negated && a.value.is_any() => return None,
            Match::Destination(a) if !a.negated && a.value.is_any() => return None,
            Match::Source(a) => Match::Source(Neg {
                negated: a.negated,
                value: a.value.canonical(),
            }),
            Match::Destination(a) => Match::Destination(Neg {
                negated: a.negated,
                value: a.value.canonical(),
            }),
            Match::InInterface(i) | Match::OutInterface(i) if !i.negated && i.value.is_any() => {
                return None;
            }
            Match::Protocol(p) if !p.negated && p.value.number == 0 => return None,
            Match::Protocol(p) => Match::Protocol(Neg {
                negated: p.negated,
                value: ProtoSpec::canonical_number(p.value.number),
            }),
            Match::Tcp(m) => Match::Tcp(m.canonical()),
            Match::Udp(m) => Match::Udp(m.canonical()),
            Match::Sctp(m) => Match::Sctp(m.canonical()),
            Match::Statistic(s) => Match::Statistic(s.canonical()),
            Match::Recent(r) => Match::Recent(r.canonical(family)),
            Match::Mark(m) => Match::Mark(m.canonical()),
            Match::Connmark(m) => Match::Connmark(m.canonical()),
            Match::Conntrack(c) => Match::Conntrack(c.canonical()),
            Match::Icmp(i) | Match::Icmp6(i) => {
                let c = IcmpMatch {
                    icmp_type: Neg {
                        negated: i.icmp_type.negated,
                        value: i.icmp_type.value.canonical(),
                    },
                    implicit: false,
                };
                if matches!(self, Match::Icmp(_)) {
                    Match::Icmp(c)
                } else {
                    Match::Icmp6(c)
                }
            }
            Match::Limit(l) => Match::Limit(l.canonical()),
            m => m.clone(),
        })
    }
}
