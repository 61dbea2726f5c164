//! Connection-tracking entries as data: `conntrack -L` text parsed into entries, printed back,
//! and looked up by a packet's tuple, as the kernel's `nf_conntrack_find_get` does.
//!
//! ```text
//!   conntrack -L [-o extended] [-f ipv6] --Conntrack::parse--> Conntrack { entries } --to_text-->
//!   Conntrack::lookup(proto, zone, &Tuple) -> Option<Hit { index, entry, dir }>
//!        dir Original: the packet is the connection's original direction
//!        dir Reply:    it matches the reply tuple (the answer to a possibly NATed connection)
//! ```
//! A packet that finds an entry is not NEW for netfilter's NAT: it takes the entry's mapping
//! (the reply tuple says where the original direction was sent), which is how a stale UDP
//! entry keeps sending traffic for a Service to an endpoint that no longer exists.

mod entry;

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use entry::{ConntrackError, Entry, IcmpKey, Slot, Tuple, invert_icmp_type};

use crate::packet::Protocol;

/// Direction of a packet relative to its connection (`--ctdir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The direction of the first packet (`IP_CT_DIR_ORIGINAL`).
    Original,
    /// The answer (`IP_CT_DIR_REPLY`).
    Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    proto: u8,
    zone: u16,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    icmp: Option<(u8, u8)>,
}

impl Key {
    fn of(proto: Protocol, zone: u16, t: &Tuple) -> Key {
        Key {
            proto: proto.number(),
            zone,
            src: t.src,
            dst: t.dst,
            sport: t.sport,
            dport: t.dport,
            icmp: t.icmp.map(|k| (k.icmp_type, k.code)),
        }
    }
}

/// An entry found for a packet.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    /// Position of the entry in [`Conntrack::entries`].
    pub index: usize,
    /// The entry.
    pub entry: &'a Entry,
    /// Which of its tuples the packet matched.
    pub dir: Direction,
}

/// The conntrack table of a namespace: what `conntrack -L` (and `-f ipv6`) lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Entry>", into = "Vec<Entry>")]
pub struct Conntrack {
    entries: Vec<Entry>,
    index: HashMap<Key, (usize, Direction)>,
}

impl PartialEq for Conntrack {
    fn eq(&self, other: &Conntrack) -> bool {
        self.entries == other.entries
    }
}

impl From<Vec<Entry>> for Conntrack {
    fn from(entries: Vec<Entry>) -> Conntrack {
        let mut c = Conntrack::default();
        for e in entries {
            c.push(e);
        }
        c
    }
}

impl From<Conntrack> for Vec<Entry> {
    fn from(c: Conntrack) -> Vec<Entry> {
        c.entries
    }
}

impl Conntrack {
    /// An empty table.
    pub fn new() -> Conntrack {
        Conntrack::default()
    }

    /// Appends an entry (the first entry of a tuple wins lookups, as only one can exist in
    /// the kernel).
    pub fn push(&mut self, e: Entry) {
        let i = self.entries.len();
        let zone = e.zone.unwrap_or(0);
        self.index
            .entry(Key::of(e.proto, zone, &e.orig))
            .or_insert((i, Direction::Original));
        self.index
            .entry(Key::of(e.proto, zone, &e.reply))
            .or_insert((i, Direction::Reply));
        self.entries.push(e);
    }

    /// The entries in dump order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Parses `conntrack -L` output (one entry per line, with or without `-o extended`).
    /// Blank lines and conntrack's summary line (`conntrack v1.4.7 (conntrack-tools): 3 flow
    /// entries have been shown.`, printed on stderr) are skipped. Dumps of both families can be
    /// concatenated.
    pub fn parse(text: &str) -> Result<Conntrack, ConntrackError> {
        let mut c = Conntrack::new();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with("conntrack v") || t.starts_with('#') {
                continue;
            }
            c.push(Entry::parse(t, n + 1)?);
        }
        Ok(c)
    }

    /// The entries as `conntrack -L` prints them, one per line.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for e in &self.entries {
            s.push_str(&e.to_text());
            s.push('\n');
        }
        s
    }

    /// The entry a packet with this tuple belongs to, in conntrack zone `zone` (0 unless a
    /// `CT --zone` rule set one). ICMP ids are not compared (a packet model has none).
    pub fn lookup(&self, proto: Protocol, zone: u16, tuple: &Tuple) -> Option<Hit<'_>> {
        let (index, dir) = *self.index.get(&Key::of(proto, zone, tuple))?;
        Some(Hit {
            index,
            entry: &self.entries[index],
            dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
udp      17 29 src=198.18.0.101 dst=198.19.0.10 sport=40000 dport=53 [UNREPLIED] src=198.18.65.2 dst=198.18.0.101 sport=53 dport=40000 mark=0 use=1
tcp      6 431999 ESTABLISHED src=198.18.0.101 dst=198.18.65.3 sport=1234 dport=80 src=198.18.65.3 dst=198.18.0.101 sport=80 dport=1234 [ASSURED] mark=0 zone=2 use=1
conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.
";

    #[test]
    fn parses_and_prints_a_dump() {
        let c = Conntrack::parse(DUMP).unwrap();
        assert_eq!(c.len(), 2);
        let body: String = DUMP.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(c.to_text(), body);
        let json = serde_json::to_string(&c).unwrap();
        let back: Conntrack = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert!(
            back.lookup(Protocol::Udp, 0, &c.entries()[0].orig)
                .is_some()
        );
    }

    #[test]
    fn lookup_finds_both_directions_in_their_zone() {
        let c = Conntrack::parse(DUMP).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let orig = Tuple::new(ip("198.18.0.101"), ip("198.19.0.10"), 40000, 53);
        let hit = c.lookup(Protocol::Udp, 0, &orig).unwrap();
        assert_eq!((hit.index, hit.dir), (0, Direction::Original));
        let reply = Tuple::new(ip("198.18.65.2"), ip("198.18.0.101"), 53, 40000);
        assert_eq!(
            c.lookup(Protocol::Udp, 0, &reply).unwrap().dir,
            Direction::Reply
        );
        assert!(c.lookup(Protocol::Tcp, 0, &orig).is_none());
        let t = Tuple::new(ip("198.18.0.101"), ip("198.18.65.3"), 1234, 80);
        assert!(
            c.lookup(Protocol::Tcp, 0, &t).is_none(),
            "entry is in zone 2"
        );
        assert!(c.lookup(Protocol::Tcp, 2, &t).is_some());
    }

    #[test]
    fn errors_carry_the_line_number() {
        let e = Conntrack::parse("\ntcp 6 1 src=198.18.0.1\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
