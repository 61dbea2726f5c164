//! One conntrack entry, as a line of `conntrack -L` (or `conntrack -L -o extended`) prints it.
//!
//! ```text
//!   [ipv4     2 ]udp      17 29 src=198.18.0.101 dst=198.19.0.10 sport=40000 dport=53 [UNREPLIED]
//!        src=198.18.65.2 dst=198.18.0.101 sport=53 dport=40000 mark=0 zone=3 use=1
//!   -> Entry { family, proto, timeout, state, orig, reply, unreplied, assured, mark, zone, use_count }
//! ```
//! The field order is libnetfilter_conntrack's (`snprintf_default`): protocol, timeout, state,
//! original tuple, `[UNREPLIED]`, reply tuple, `[ASSURED]`, other flags, `mark=`, `zone=`,
//! `use=`. Tokens this code does not type (`secctx=`, `id=`, `delta-time=`, GRE keys, ...) are
//! kept raw after the field they followed, so a canonical line prints back unchanged.

use std::fmt::Write;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::packet::{Family, Protocol};

/// An ICMP / ICMPv6 tuple part (`type=8 code=0 id=1234`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IcmpKey {
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// Echo identifier.
    pub id: u16,
}

/// One direction of a connection (`src= dst= sport= dport=`, or `type= code= id=` for ICMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 when the protocol has none).
    pub sport: u16,
    /// Destination port (0 when the protocol has none).
    pub dport: u16,
    /// ICMP type, code and id, for ICMP and ICMPv6.
    pub icmp: Option<IcmpKey>,
}

impl Tuple {
    /// A tuple with ports.
    pub fn new(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Tuple {
        Tuple {
            src,
            dst,
            sport,
            dport,
            icmp: None,
        }
    }

    /// The tuple of the other direction before any NAT (`nf_ct_invert_tuple`).
    pub fn inverted(&self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            icmp: self.icmp.map(|k| IcmpKey {
                icmp_type: invert_icmp_type(k.icmp_type, self.src.is_ipv4()),
                ..k
            }),
        }
    }

    fn write(&self, out: &mut String) {
        let _ = write!(out, " src={} dst={}", self.src, self.dst);
        match self.icmp {
            Some(k) => {
                let _ = write!(out, " type={} code={} id={}", k.icmp_type, k.code, k.id);
            }
            None => {
                let _ = write!(out, " sport={} dport={}", self.sport, self.dport);
            }
        }
    }
}

/// The ICMP type of the answer to a query type (echo 8 <-> echo reply 0; ICMPv6 128 <-> 129).
pub fn invert_icmp_type(t: u8, v4: bool) -> u8 {
    match (v4, t) {
        (true, 8) => 0,
        (true, 0) => 8,
        (true, 13) => 14,
        (true, 14) => 13,
        (false, 128) => 129,
        (false, 129) => 128,
        (_, t) => t,
    }
}

/// Where an untyped token sat, so it prints back in place: after the named field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// After the original tuple (`zone-orig=`, GRE keys).
    Orig,
    /// After the reply tuple.
    Reply,
    /// After `[ASSURED]` and the other bracketed flags.
    Flags,
    /// After `mark=` (`secmark=`, `secctx=`).
    Mark,
    /// After `zone=` (`delta-time=`).
    Zone,
    /// After `use=` (`id=`, `labels=`).
    Use,
}

/// One conntrack entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Address family (from `-o extended`'s prefix, else from the addresses).
    pub family: Family,
    /// Whether the line had the `-o extended` prefix (`ipv4     2 `).
    pub extended: bool,
    /// Layer-4 protocol.
    pub proto: Protocol,
    /// Seconds until the entry expires.
    pub timeout: u32,
    /// Protocol state (`ESTABLISHED`, `TIME_WAIT`, ...; TCP, SCTP and DCCP only).
    pub state: Option<String>,
    /// Original-direction tuple (as the first packet looked when conntrack saw it).
    pub orig: Tuple,
    /// Reply-direction tuple (after NAT: differs from `orig.inverted()`).
    pub reply: Tuple,
    /// `[UNREPLIED]`: no packet seen in the reply direction.
    pub unreplied: bool,
    /// `[ASSURED]`.
    pub assured: bool,
    /// Other bracketed flags after `[ASSURED]` (`OFFLOAD`, `HW_OFFLOAD`), without brackets.
    pub flags: Vec<String>,
    /// The connection mark (`mark=`, printed in decimal).
    pub mark: Option<u32>,
    /// The conntrack zone (`zone=`; absent for the default zone 0).
    pub zone: Option<u16>,
    /// Reference count (`use=`).
    pub use_count: Option<u32>,
    /// Tokens kept raw, with the field they followed.
    pub extra: Vec<(Slot, String)>,
}

/// A `conntrack -L` line that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conntrack line {line}: expected {expected}, found {found:?}")]
pub struct ConntrackError {
    /// 1-based line number.
    pub line: usize,
    /// What was expected.
    pub expected: &'static str,
    /// What was found.
    pub found: String,
}

/// The protocol name conntrack prints (libnetfilter_conntrack's `proto2str`).
fn proto_name(p: Protocol) -> &'static str {
    match p.number() {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        47 => "gre",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        _ => "unknown",
    }
}

fn is_icmp(p: Protocol) -> bool {
    matches!(p, Protocol::Icmp | Protocol::Icmpv6)
}

#[derive(Default)]
struct TupleBuilder {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
    icmp_type: Option<u8>,
    code: Option<u8>,
    id: Option<u16>,
}

impl TupleBuilder {
    fn build(&self, proto: Protocol) -> Option<Tuple> {
        let (src, dst) = (self.src?, self.dst?);
        if src.is_ipv4() != dst.is_ipv4() {
            return None;
        }
        if is_icmp(proto) {
            Some(Tuple {
                src,
                dst,
                sport: 0,
                dport: 0,
                icmp: Some(IcmpKey {
                    icmp_type: self.icmp_type?,
                    code: self.code?,
                    id: self.id?,
                }),
            })
        } else {
            Some(Tuple::new(
                src,
                dst,
                self.sport.unwrap_or(0),
                self.dport.unwrap_or(0),
            ))
        }
    }

    /// Takes a tuple key; false if the key is not a tuple key.
    fn take(&mut self, key: &str, value: &str) -> Result<bool, &'static str> {
        match key {
            "src" => self.src = Some(value.parse().map_err(|_| "an address after src=")?),
            "dst" => self.dst = Some(value.parse().map_err(|_| "an address after dst=")?),
            "sport" => self.sport = Some(value.parse().map_err(|_| "a port after sport=")?),
            "dport" => self.dport = Some(value.parse().map_err(|_| "a port after dport=")?),
            "type" => self.icmp_type = Some(value.parse().map_err(|_| "a number after type=")?),
            "code" => self.code = Some(value.parse().map_err(|_| "a number after code=")?),
            "id" if self.icmp_type.is_some() => {
                self.id = Some(value.parse().map_err(|_| "a number after id=")?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Entry {
    /// An entry with the typed fields set and nothing raw: `conntrack -L` prints it as
    /// `PROTO NUM TIMEOUT [STATE] ORIG [UNREPLIED] REPLY [ASSURED] mark=0 use=1`.
    pub fn new(proto: Protocol, timeout: u32, orig: Tuple, reply: Tuple) -> Entry {
        Entry {
            family: Family::of(&orig.src),
            extended: false,
            proto,
            timeout,
            state: None,
            orig,
            reply,
            unreplied: false,
            assured: false,
            flags: Vec::new(),
            mark: Some(0),
            zone: None,
            use_count: Some(1),
            extra: Vec::new(),
        }
    }

    /// Parses one line of `conntrack -L [-o extended]` (`line` is its 1-based number, for errors).
    pub fn parse(text: &str, line: usize) -> Result<Entry, ConntrackError> {
        let err = |expected: &'static str, found: &str| ConntrackError {
            line,
            expected,
            found: found.chars().take(80).collect(),
        };
        let mut words = text.split_whitespace().peekable();
        let mut first = words.next().ok_or_else(|| err("a protocol name", text))?;
        let mut family = None;
        let mut extended = false;
        if first == "ipv4" || first == "ipv6" {
            let num = words.next().ok_or_else(|| err("the family number", text))?;
            let want = if first == "ipv4" { "2" } else { "10" };
            if num != want {
                return Err(err("2 after ipv4 or 10 after ipv6", num));
            }
            family = Some(if first == "ipv4" {
                Family::V4
            } else {
                Family::V6
            });
            extended = true;
            first = words.next().ok_or_else(|| err("a protocol name", text))?;
        }
        let num = words
            .next()
            .ok_or_else(|| err("the protocol number", text))?;
        let num: u8 = num.parse().map_err(|_| err("a protocol number", num))?;
        let proto = Protocol::from_number(num);
        if first != proto_name(proto) {
            return Err(err("a protocol name matching its number", first));
        }
        let t = words.next().ok_or_else(|| err("the timeout", text))?;
        let timeout: u32 = t.parse().map_err(|_| err("a timeout in seconds", t))?;
        let mut state = None;
        if let Some(w) = words.peek()
            && !w.contains('=')
            && !w.starts_with('[')
        {
            state = Some(w.to_string());
            words.next();
        }
        let (mut orig, mut reply) = (TupleBuilder::default(), TupleBuilder::default());
        let mut in_reply = false;
        let mut e = Entry {
            family: Family::V4,
            extended,
            proto,
            timeout,
            state,
            orig: Tuple::new(IpAddr::from([0, 0, 0, 0]), IpAddr::from([0, 0, 0, 0]), 0, 0),
            reply: Tuple::new(IpAddr::from([0, 0, 0, 0]), IpAddr::from([0, 0, 0, 0]), 0, 0),
            unreplied: false,
            assured: false,
            flags: Vec::new(),
            mark: None,
            zone: None,
            use_count: None,
            extra: Vec::new(),
        };
        let mut slot = Slot::Orig;
        for w in words {
            if let Some(flag) = w.strip_prefix('[').and_then(|f| f.strip_suffix(']')) {
                match flag {
                    "UNREPLIED" if !in_reply && !e.unreplied => e.unreplied = true,
                    "ASSURED" if in_reply && !e.assured && slot <= Slot::Flags => {
                        e.assured = true;
                        slot = Slot::Flags;
                    }
                    f if in_reply && slot <= Slot::Flags => {
                        e.flags.push(f.to_string());
                        slot = Slot::Flags;
                    }
                    _ => return Err(err("a flag in its place", w)),
                }
                continue;
            }
            let Some((k, v)) = w.split_once('=') else {
                return Err(err("key=value or [FLAG]", w));
            };
            if k == "src" && orig.src.is_some() && !in_reply {
                in_reply = true;
                slot = Slot::Reply;
            }
            let tb = if in_reply { &mut reply } else { &mut orig };
            let tuple_open = if in_reply {
                slot == Slot::Reply
            } else {
                slot == Slot::Orig
            };
            if tuple_open {
                match tb.take(k, v) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(expected) => return Err(err(expected, w)),
                }
            }
            match k {
                "mark" if in_reply && slot < Slot::Mark => {
                    e.mark = Some(
                        crate::iptables::parse_u32(v)
                            .ok_or_else(|| err("a number after mark=", w))?,
                    );
                    slot = Slot::Mark;
                }
                "zone" if in_reply && slot < Slot::Zone => {
                    e.zone = Some(v.parse().map_err(|_| err("a zone number", w))?);
                    slot = Slot::Zone;
                }
                "use" if in_reply && slot < Slot::Use => {
                    e.use_count = Some(v.parse().map_err(|_| err("a count after use=", w))?);
                    slot = Slot::Use;
                }
                _ => e.extra.push((slot, w.to_string())),
            }
        }
        e.orig = orig
            .build(proto)
            .ok_or_else(|| err("a complete original tuple (src= dst= ...)", text))?;
        e.reply = reply
            .build(proto)
            .ok_or_else(|| err("a complete reply tuple (src= dst= ...)", text))?;
        let fam = Family::of(&e.orig.src);
        if family.is_some_and(|f| f != fam) || Family::of(&e.reply.src) != fam {
            return Err(err("addresses of one family", text));
        }
        e.family = fam;
        Ok(e)
    }

    /// The line as `conntrack -L` prints it.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if self.extended {
            let (name, n) = match self.family {
                Family::V4 => ("ipv4", 2),
                Family::V6 => ("ipv6", 10),
            };
            let _ = write!(s, "{name:<8} {n} ");
        }
        let name = proto_name(self.proto);
        let _ = write!(s, "{name:<8} {} {}", self.proto.number(), self.timeout);
        if let Some(st) = &self.state {
            let _ = write!(s, " {st}");
        }
        let extras = |s: &mut String, slot: Slot| {
            for (_, t) in self.extra.iter().filter(|(x, _)| *x == slot) {
                s.push(' ');
                s.push_str(t);
            }
        };
        self.orig.write(&mut s);
        extras(&mut s, Slot::Orig);
        if self.unreplied {
            s.push_str(" [UNREPLIED]");
        }
        self.reply.write(&mut s);
        extras(&mut s, Slot::Reply);
        if self.assured {
            s.push_str(" [ASSURED]");
        }
        for f in &self.flags {
            let _ = write!(s, " [{f}]");
        }
        extras(&mut s, Slot::Flags);
        if let Some(m) = self.mark {
            let _ = write!(s, " mark={m}");
        }
        extras(&mut s, Slot::Mark);
        if let Some(z) = self.zone {
            let _ = write!(s, " zone={z}");
        }
        extras(&mut s, Slot::Zone);
        if let Some(u) = self.use_count {
            let _ = write!(s, " use={u}");
        }
        extras(&mut s, Slot::Use);
        s
    }

    /// Whether the entry's NAT changed the destination (`reply.src != orig.dst`, or the port).
    pub fn is_dnat(&self) -> bool {
        self.reply.src != self.orig.dst || self.reply.sport != self.orig.dport
    }

    /// Whether the entry's NAT changed the source.
    pub fn is_snat(&self) -> bool {
        self.reply.dst != self.orig.src || self.reply.dport != self.orig.sport
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        for line in [
            "udp      17 29 src=127.0.0.1 dst=127.0.0.3 sport=52960 dport=99 [UNREPLIED] src=127.0.0.3 dst=127.0.0.1 sport=99 dport=52960 mark=0 zone=3 use=1",
            "tcp      6 119 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=36126 dport=8080 src=127.0.0.1 dst=127.0.0.1 sport=8080 dport=36126 [ASSURED] mark=0 use=1",
            "ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.2 sport=38842 dport=53 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=5353 dport=38842 mark=0 use=1",
            "icmp     1 29 src=198.18.0.1 dst=198.18.0.2 type=8 code=0 id=7 src=198.18.0.2 dst=198.18.0.1 type=0 code=0 id=7 mark=0 use=1",
            "ipv6     10 tcp      6 431999 ESTABLISHED src=2001:db8::1 dst=2001:db8::2 sport=1 dport=2 src=2001:db8::2 dst=2001:db8::1 sport=2 dport=1 [ASSURED] [OFFLOAD] mark=16384 secctx=x use=2 id=99",
        ] {
            let e = Entry::parse(line, 1).unwrap();
            assert_eq!(e.to_text(), line);
        }
    }

    #[test]
    fn fields_are_typed() {
        let e = Entry::parse(
            "udp      17 29 src=198.18.0.101 dst=198.19.0.10 sport=40000 dport=53 [UNREPLIED] src=198.18.65.2 dst=198.18.0.101 sport=5353 dport=40000 mark=16384 use=1",
            1,
        )
        .unwrap();
        assert!(e.unreplied && !e.assured);
        assert_eq!(e.mark, Some(0x4000));
        assert!(e.is_dnat() && !e.is_snat());
        assert_eq!(e.reply.src, "198.18.65.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_lines_name_what_was_expected() {
        let e = Entry::parse("tcp 6 x src=1.2.3.4", 4).unwrap_err();
        assert_eq!(e.line, 4);
        assert_eq!(e.expected, "a timeout in seconds");
        let e = Entry::parse("tcp 6 10 src=198.18.0.1 dst=198.18.0.2", 2).unwrap_err();
        assert!(e.to_string().contains("reply tuple"), "{e}");
        let e = Entry::parse("tcp 6 10 src=198.18.0.1 dst=2001:db8::1 src=1.1.1.1", 2).unwrap_err();
        assert!(e.to_string().contains("original tuple"), "{e}");
        assert!(Entry::parse("udp 6 10", 1).is_err());
        assert!(Entry::parse("tcp 6 10 src=198.18.0.1 dport=x", 1).is_err());
    }
}
