//! Stateful matches: `conntrack`, `state`, `mark`, `connmark`, `recent`, `statistic`.
//!
//! In: the options of one `-m MODULE` group. Out: typed values that print back in the option
//! order iptables-save uses (`-m recent --rcheck --seconds 10800 --reap --name X --mask
//! 255.255.255.255 --rsource`).

use std::fmt::Write;
use std::net::IpAddr;

use super::matches::{Opt, one};
use super::values::{AddrMask, Neg, PortRange, ProtoSpec, parse_mark_mask, parse_u32};
use crate::packet::{CtState, Family};

/// A set of conntrack states, as `--ctstate` / `--state` take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtStates(pub u8);

impl CtStates {
    /// INVALID.
    pub const INVALID: u8 = 1 << 0;
    /// NEW.
    pub const NEW: u8 = 1 << 1;
    /// RELATED.
    pub const RELATED: u8 = 1 << 2;
    /// ESTABLISHED.
    pub const ESTABLISHED: u8 = 1 << 3;
    /// UNTRACKED.
    pub const UNTRACKED: u8 = 1 << 4;
    /// SNAT (conntrack only: the connection's reply source differs from its original destination).
    pub const SNAT: u8 = 1 << 5;
    /// DNAT (conntrack only).
    pub const DNAT: u8 = 1 << 6;

    const NAMES: [(u8, &'static str); 7] = [
        (Self::INVALID, "INVALID"),
        (Self::NEW, "NEW"),
        (Self::RELATED, "RELATED"),
        (Self::ESTABLISHED, "ESTABLISHED"),
        (Self::UNTRACKED, "UNTRACKED"),
        (Self::SNAT, "SNAT"),
        (Self::DNAT, "DNAT"),
    ];

    /// Parses a comma list of state names.
    pub fn parse(s: &str, allow_nat: bool) -> Option<CtStates> {
        let mut v = 0;
        for part in s.split(',') {
            let (bit, _) = Self::NAMES
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(part))?;
            if !allow_nat && *bit >= Self::SNAT {
                return None;
            }
            v |= bit;
        }
        Some(CtStates(v))
    }

    /// The bit of a packet's state.
    pub fn bit_of(state: CtState) -> u8 {
        match state {
            CtState::Invalid => Self::INVALID,
            CtState::New => Self::NEW,
            CtState::Related => Self::RELATED,
            CtState::Established => Self::ESTABLISHED,
            CtState::Untracked => Self::UNTRACKED,
        }
    }

    fn write(&self, out: &mut String) {
        write_bits(
            out,
            self.0.into(),
            &Self::NAMES.map(|(b, n)| (u16::from(b), n)),
        );
    }
}

fn write_bits(out: &mut String, v: u16, names: &[(u16, &str)]) {
    let mut first = true;
    for (bit, name) in names {
        if v & bit != 0 {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
        }
    }
}

/// `--ctstatus` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtStatus(pub u8);

impl CtStatus {
    /// NONE (no flag set).
    pub const NONE: u8 = 1 << 0;
    /// EXPECTED.
    pub const EXPECTED: u8 = 1 << 1;
    /// SEEN_REPLY.
    pub const SEEN_REPLY: u8 = 1 << 2;
    /// ASSURED.
    pub const ASSURED: u8 = 1 << 3;
    /// CONFIRMED.
    pub const CONFIRMED: u8 = 1 << 4;
    const NAMES: [(u16, &'static str); 5] = [
        (1, "NONE"),
        (2, "EXPECTED"),
        (4, "SEEN_REPLY"),
        (8, "ASSURED"),
        (16, "CONFIRMED"),
    ];

    fn parse(s: &str) -> Option<CtStatus> {
        let mut v = 0;
        for part in s.split(',') {
            v |= Self::NAMES
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(part))?
                .0 as u8;
        }
        Some(CtStatus(v))
    }
}

/// `--ctdir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtDir {
    /// ORIGINAL.
    Original,
    /// REPLY.
    Reply,
}

/// `-m conntrack`: state, status and the original/reply tuple of the connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Conntrack {
    /// `--ctstate`.
    pub state: Option<Neg<CtStates>>,
    /// `--ctproto`.
    pub proto: Option<Neg<ProtoSpec>>,
    /// `--ctorigsrc`.
    pub orig_src: Option<Neg<AddrMask>>,
    /// `--ctorigdst`.
    pub orig_dst: Option<Neg<AddrMask>>,
    /// `--ctreplsrc`.
    pub repl_src: Option<Neg<AddrMask>>,
    /// `--ctrepldst`.
    pub repl_dst: Option<Neg<AddrMask>>,
    /// `--ctorigsrcport`.
    pub orig_src_port: Option<Neg<PortRange>>,
    /// `--ctorigdstport`.
    pub orig_dst_port: Option<Neg<PortRange>>,
    /// `--ctreplsrcport`.
    pub repl_src_port: Option<Neg<PortRange>>,
    /// `--ctrepldstport`.
    pub repl_dst_port: Option<Neg<PortRange>>,
    /// `--ctstatus`.
    pub status: Option<Neg<CtStatus>>,
    /// `--ctexpire a[:b]` (seconds left).
    pub expire: Option<Neg<(u32, u32)>>,
    /// `--ctdir`.
    pub dir: Option<CtDir>,
}

impl Conntrack {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<Conntrack> {
        let mut c = Conntrack::default();
        fn set<T>(slot: &mut Option<T>, v: T) -> Option<()> {
            if slot.is_some() {
                return None;
            }
            *slot = Some(v);
            Some(())
        }
        for o in opts {
            let v = one(o)?;
            let port = || PortRange::parse_sep(v, ':');
            match o.name {
                "--ctstate" => set(&mut c.state, o.neg(CtStates::parse(v, true)?))?,
                "--ctproto" => set(&mut c.proto, o.neg(ProtoSpec::parse(v)?))?,
                "--ctorigsrc" => set(&mut c.orig_src, o.neg(AddrMask::parse(v)?))?,
                "--ctorigdst" => set(&mut c.orig_dst, o.neg(AddrMask::parse(v)?))?,
                "--ctreplsrc" => set(&mut c.repl_src, o.neg(AddrMask::parse(v)?))?,
                "--ctrepldst" => set(&mut c.repl_dst, o.neg(AddrMask::parse(v)?))?,
                "--ctorigsrcport" => set(&mut c.orig_src_port, o.neg(port()?))?,
                "--ctorigdstport" => set(&mut c.orig_dst_port, o.neg(port()?))?,
                "--ctreplsrcport" => set(&mut c.repl_src_port, o.neg(port()?))?,
                "--ctrepldstport" => set(&mut c.repl_dst_port, o.neg(port()?))?,
                "--ctstatus" => set(&mut c.status, o.neg(CtStatus::parse(v)?))?,
                "--ctexpire" => {
                    let (a, b) = match v.split_once(':') {
                        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                        None => {
                            let a = v.parse().ok()?;
                            (a, a)
                        }
                    };
                    set(&mut c.expire, o.neg((a, b)))?
                }
                "--ctdir" if !o.negated => set(
                    &mut c.dir,
                    match v.to_ascii_uppercase().as_str() {
                        "ORIGINAL" => CtDir::Original,
                        "REPLY" => CtDir::Reply,
                        _ => return None,
                    },
                )?,
                _ => return None,
            }
        }
        Some(c)
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str(" -m conntrack");
        if let Some(s) = &self.state {
            let _ = write!(out, " {}--ctstate ", s.bang());
            s.value.write(out);
        }
        if let Some(p) = &self.proto {
            let _ = write!(out, " {}--ctproto {}", p.bang(), p.value);
        }
        for (name, a) in [
            ("--ctorigsrc", &self.orig_src),
            ("--ctorigdst", &self.orig_dst),
            ("--ctreplsrc", &self.repl_src),
            ("--ctrepldst", &self.repl_dst),
        ] {
            if let Some(a) = a {
                let _ = write!(out, " {}{} {}", a.bang(), name, a.value);
            }
        }
        for (name, p) in [
            ("--ctorigsrcport", &self.orig_src_port),
            ("--ctorigdstport", &self.orig_dst_port),
            ("--ctreplsrcport", &self.repl_src_port),
            ("--ctrepldstport", &self.repl_dst_port),
        ] {
            if let Some(p) = p {
                let _ = write!(out, " {}{} ", p.bang(), name);
                p.value.write_sep(out, ':');
            }
        }
        if let Some(s) = &self.status {
            let _ = write!(out, " {}--ctstatus ", s.bang());
            write_bits(out, s.value.0.into(), &CtStatus::NAMES);
        }
        if let Some(e) = &self.expire {
            let (a, b) = e.value;
            if a == b {
                let _ = write!(out, " {}--ctexpire {}", e.bang(), a);
            } else {
                let _ = write!(out, " {}--ctexpire {}:{}", e.bang(), a, b);
            }
        }
        if let Some(d) = self.dir {
            out.push_str(match d {
                CtDir::Original => " --ctdir ORIGINAL",
                CtDir::Reply => " --ctdir REPLY",
            });
        }
    }

    pub(crate) fn canonical(&self) -> Conntrack {
        let mut c = self.clone();
        if let Some(p) = &mut c.proto {
            p.value.text = p.value.number.to_string();
        }
        for a in [
            &mut c.orig_src,
            &mut c.orig_dst,
            &mut c.repl_src,
            &mut c.repl_dst,
        ]
        .into_iter()
        .flatten()
        {
            a.value = a.value.canonical_host_bare();
        }
        c
    }
}

/// `-m state --state LIST`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateMatch(pub Neg<CtStates>);

impl StateMatch {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<StateMatch> {
        let [o] = opts else { return None };
        (o.name == "--state").then_some(())?;
        Some(StateMatch(o.neg(CtStates::parse(one(o)?, false)?)))
    }

    pub(crate) fn write(&self, out: &mut String) {
        let _ = write!(out, " -m state {}--state ", self.0.bang());
        self.0.value.write(out);
    }
}

/// `-m mark --mark V[/M]` and `-m connmark --mark V[/M]`: `(mark & M) == V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MarkMatch {
    /// `!` before `--mark`.
    pub negated: bool,
    /// Value compared.
    pub value: u32,
    /// Mask; `None` is all ones (printed without `/M`).
    pub mask: Option<u32>,
}

impl MarkMatch {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<MarkMatch> {
        let [o] = opts else { return None };
        (o.name == "--mark").then_some(())?;
        let (value, mask) = parse_mark_mask(one(o)?)?;
        Some(MarkMatch {
            negated: o.negated,
            value,
            mask,
        })
    }

    pub(crate) fn write(&self, out: &mut String, module: &str) {
        let bang = if self.negated { "! " } else { "" };
        let _ = write!(out, " -m {module} {bang}--mark {:#x}", self.value);
        if let Some(m) = self.mask {
            let _ = write!(out, "/{m:#x}");
        }
    }

    /// Whether a mark matches (before `!`).
    pub fn hit(&self, mark: u32) -> bool {
        mark & self.mask.unwrap_or(u32::MAX) == self.value
    }

    pub(crate) fn canonical(&self) -> MarkMatch {
        MarkMatch {
            mask: self.mask.filter(|m| *m != u32::MAX),
            ..*self
        }
    }
}

/// `-m statistic`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Statistic {
    /// `--mode random [!] --probability P`; `P` is kept as written (`0.33333333349`).
    Random {
        /// `!` before `--probability`.
        negated: bool,
        /// The probability text.
        probability: String,
    },
    /// `--mode nth [!] --every N --packet P`.
    Nth {
        /// `!` before `--every`.
        negated: bool,
        /// N.
        every: u32,
        /// P (0-based packet index).
        packet: u32,
    },
}

impl Statistic {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<Statistic> {
        let mut mode = None;
        let (mut prob, mut every, mut packet) = (None, None, None);
        for o in opts {
            match o.name {
                "--mode" if !o.negated && mode.is_none() => mode = Some(one(o)?),
                "--probability" if prob.is_none() => {
                    let v = one(o)?;
                    let p: f64 = v.parse().ok()?;
                    if !(0.0..=1.0).contains(&p) {
                        return None;
                    }
                    prob = Some((o.negated, v.to_string()));
                }
                "--every" if every.is_none() => {
                    let n: u32 = one(o)?.parse().ok()?;
                    if n == 0 {
                        return None;
                    }
                    every = Some((o.negated, n));
                }
                "--packet" if !o.negated && packet.is_none() => {
                    packet = Some(one(o)?.parse().ok()?)
                }
                _ => return None,
            }
        }
        match (mode?, prob, every, packet) {
            ("random", Some((negated, probability)), None, None) => Some(Statistic::Random {
                negated,
                probability,
            }),
            ("nth", None, Some((negated, every)), Some(packet)) if packet < every => {
                Some(Statistic::Nth {
                    negated,
                    every,
                    packet,
                })
            }
            _ => None,
        }
    }

    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Statistic::Random {
                negated,
                probability,
            } => {
                let bang = if *negated { "! " } else { "" };
                let _ = write!(
                    out,
                    " -m statistic --mode random {bang}--probability {probability}"
                );
            }
            Statistic::Nth {
                negated,
                every,
                packet,
            } => {
                let bang = if *negated { "! " } else { "" };
                let _ = write!(
                    out,
                    " -m statistic --mode nth {bang}--every {every} --packet {packet}"
                );
            }
        }
    }

    /// The probability that a packet matches (before `!`), as the kernel computes it: random
    /// mode keeps `round(P * 2^31)` as a 31-bit threshold; nth mode matches 1 in `every`.
    pub fn hit_probability(&self) -> f64 {
        match self {
            Statistic::Random { probability, .. } => {
                let p: f64 = probability.parse().unwrap_or(0.0);
                Self::threshold(p) as f64 / 2147483648.0
            }
            Statistic::Nth { every, .. } => 1.0 / f64::from(*every),
        }
    }

    fn threshold(p: f64) -> u32 {
        (p.clamp(0.0, 1.0) * 2147483648.0).round() as u32
    }

    pub(crate) fn canonical(&self) -> Statistic {
        match self {
            Statistic::Random {
                negated,
                probability,
            } => {
                let p: f64 = probability.parse().unwrap_or(0.0);
                let t = Self::threshold(p);
                Statistic::Random {
                    negated: *negated,
                    probability: format!("{:.11}", f64::from(t) / 2147483648.0),
                }
            }
            n => n.clone(),
        }
    }
}

/// What `-m recent` does with its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecentMode {
    /// `--set`: add the address; always matches.
    Set,
    /// `--rcheck`: matches if the address is in the list.
    Rcheck,
    /// `--update`: like `--rcheck`, and refreshes the entry.
    Update,
    /// `--remove`: matches if the address was in the list, and removes it.
    Remove,
}

/// Which address `-m recent` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecentSide {
    /// `--rsource` (the default).
    Source,
    /// `--rdest`.
    Dest,
}

/// `-m recent` (kube-proxy's ClientIP session affinity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recent {
    /// The mode option.
    pub mode: RecentMode,
    /// `!` before the mode option.
    pub negated: bool,
    /// `--seconds N`.
    pub seconds: Option<u32>,
    /// `--reap`.
    pub reap: bool,
    /// `--hitcount N`.
    pub hitcount: Option<u32>,
    /// `--rttl`.
    pub rttl: bool,
    /// `--name NAME` (default `DEFAULT`).
    pub name: Option<String>,
    /// `--mask ADDR` (default all ones).
    pub mask: Option<IpAddr>,
    /// `--rsource` / `--rdest`.
    pub side: Option<RecentSide>,
}

impl Recent {
    pub(crate) fn parse(opts: &[Opt<'_>]) -> Option<Recent> {
        let mut mode = None;
        let mut r = Recent {
            mode: RecentMode::Set,
            negated: false,
            seconds: None,
            reap: false,
            hitcount: None,
            rttl: false,
            name: None,
            mask: None,
            side: None,
        };
        for o in opts {
            let flag = o.vals.is_empty();
            let m = match o.name {
                "--set" => Some(RecentMode::Set),
                "--rcheck" => Some(RecentMode::Rcheck),
                "--update" => Some(RecentMode::Update),
                "--remove" => Some(RecentMode::Remove),
                _ => None,
            };
            if let Some(m) = m {
                if mode.is_some() || !flag {
                    return None;
                }
                mode = Some(m);
                r.negated = o.negated;
                continue;
            }
            if o.negated {
                return None;
            }
            match o.name {
                "--seconds" if r.seconds.is_none() => r.seconds = Some(one(o)?.parse().ok()?),
                "--hitcount" if r.hitcount.is_none() => r.hitcount = Some(one(o)?.parse().ok()?),
                "--reap" if flag && !r.reap => r.reap = true,
                "--rttl" if flag && !r.rttl => r.rttl = true,
                "--name" if r.name.is_none() => r.name = Some(one(o)?.to_string()),
                "--mask" if r.mask.is_none() => r.mask = Some(one(o)?.parse().ok()?),
                "--rsource" if flag && r.side.is_none() => r.side = Some(RecentSide::Source),
                "--rdest" if flag && r.side.is_none() => r.side = Some(RecentSide::Dest),
                _ => return None,
            }
        }
        r.mode = mode?;
        Some(r)
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str(" -m recent ");
        if self.negated {
            out.push_str("! ");
        }
        out.push_str(match self.mode {
            RecentMode::Set => "--set",
            RecentMode::Rcheck => "--rcheck",
            RecentMode::Update => "--update",
            RecentMode::Remove => "--remove",
        });
        if let Some(s) = self.seconds {
            let _ = write!(out, " --seconds {s}");
        }
        if self.reap {
            out.push_str(" --reap");
        }
        if let Some(h) = self.hitcount {
            let _ = write!(out, " --hitcount {h}");
        }
        if self.rttl {
            out.push_str(" --rttl");
        }
        if let Some(n) = &self.name {
            let _ = write!(out, " --name {n}");
        }
        if let Some(m) = &self.mask {
            let _ = write!(out, " --mask {m}");
        }
        match self.side {
            Some(RecentSide::Source) => out.push_str(" --rsource"),
            Some(RecentSide::Dest) => out.push_str(" --rdest"),
            None => {}
        }
    }

    pub(crate) fn canonical(&self, family: Family) -> Recent {
        let mut r = self.clone();
        r.name.get_or_insert_with(|| "DEFAULT".into());
        r.mask.get_or_insert(match family {
            Family::V4 => IpAddr::V4(u32::MAX.into()),
            Family::V6 => IpAddr::V6(u128::MAX.into()),
        });
        r.side.get_or_insert(RecentSide::Source);
        r
    }

    /// The list name (`DEFAULT` when not given).
    pub fn list_name(&self) -> &str {
        self.name.as_deref().unwrap_or("DEFAULT")
    }
}

/// Parses a decimal or hexadecimal mark (re-exported helper for targets).
pub(crate) fn mark(s: &str) -> Option<u32> {
    parse_u32(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistic_probability_is_the_kernels_threshold() {
        let s = Statistic::Random {
            negated: false,
            probability: "0.5".into(),
        };
        assert_eq!(
            s.canonical(),
            Statistic::Random {
                negated: false,
                probability: "0.50000000000".into()
            }
        );
        let third = Statistic::Random {
            negated: false,
            probability: "0.3333333333".into(),
        };
        assert_eq!(
            third.canonical(),
            Statistic::Random {
                negated: false,
                probability: "0.33333333349".into()
            }
        );
        assert!((third.hit_probability() - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn ct_states_print_in_kernel_bit_order() {
        let mut s = String::new();
        CtStates::parse("DNAT,ESTABLISHED,RELATED", true)
            .unwrap()
            .write(&mut s);
        assert_eq!(s, "RELATED,ESTABLISHED,DNAT");
        assert!(CtStates::parse("SNAT", false).is_none());
        assert_eq!(mark("0x10"), Some(16));
    }
}
