//! The ipset model and its `ipset save` codec.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::IpAddr;

use crate::iptables::lexer::words;
use crate::iptables::{AddrMask, IcmpType, PortRange};
use crate::packet::{Family, Protocol};

/// A set type (`ipset create NAME TYPE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SetType {
    /// `hash:ip`.
    HashIp,
    /// `hash:ip,port`.
    HashIpPort,
    /// `hash:ip,port,ip`.
    HashIpPortIp,
    /// `hash:ip,port,net`.
    HashIpPortNet,
    /// `hash:net`.
    HashNet,
    /// `hash:net,port`.
    HashNetPort,
    /// `bitmap:port`.
    BitmapPort,
    /// `list:set`.
    ListSet,
    /// Any other type, kept by name (entries keep their text; membership unknown).
    Other(String),
}

/// What one dimension of an element holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    Ip,
    Net,
    Port,
    BarePort,
    SetName,
}

impl SetType {
    /// Parses a type name.
    pub fn parse(s: &str) -> SetType {
        match s {
            "hash:ip" => SetType::HashIp,
            "hash:ip,port" => SetType::HashIpPort,
            "hash:ip,port,ip" => SetType::HashIpPortIp,
            "hash:ip,port,net" => SetType::HashIpPortNet,
            "hash:net" => SetType::HashNet,
            "hash:net,port" => SetType::HashNetPort,
            "bitmap:port" => SetType::BitmapPort,
            "list:set" => SetType::ListSet,
            other => SetType::Other(other.to_string()),
        }
    }

    /// The type name.
    pub fn name(&self) -> &str {
        match self {
            SetType::HashIp => "hash:ip",
            SetType::HashIpPort => "hash:ip,port",
            SetType::HashIpPortIp => "hash:ip,port,ip",
            SetType::HashIpPortNet => "hash:ip,port,net",
            SetType::HashNet => "hash:net",
            SetType::HashNetPort => "hash:net,port",
            SetType::BitmapPort => "bitmap:port",
            SetType::ListSet => "list:set",
            SetType::Other(s) => s,
        }
    }

    fn dims(&self) -> Option<&'static [Dim]> {
        Some(match self {
            SetType::HashIp => &[Dim::Ip],
            SetType::HashIpPort => &[Dim::Ip, Dim::Port],
            SetType::HashIpPortIp => &[Dim::Ip, Dim::Port, Dim::Ip],
            SetType::HashIpPortNet => &[Dim::Ip, Dim::Port, Dim::Net],
            SetType::HashNet => &[Dim::Net],
            SetType::HashNetPort => &[Dim::Net, Dim::Port],
            SetType::BitmapPort => &[Dim::BarePort],
            SetType::ListSet => &[Dim::SetName],
            SetType::Other(_) => return None,
        })
    }

    /// Number of dimensions (`src,dst` flags a match gives), when modelled.
    pub fn dimensions(&self) -> Option<usize> {
        self.dims().map(<[Dim]>::len)
    }
}

/// An option of `ipset create`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CreateOption {
    /// `family inet|inet6`.
    Family(Family),
    /// `hashsize N`.
    Hashsize(u32),
    /// `maxelem N`.
    Maxelem(u32),
    /// `timeout N` (default entry timeout, seconds).
    Timeout(u32),
    /// `range A-B` (bitmap types), as written.
    Range(String),
    /// `size N` (list:set).
    Size(u32),
    /// `counters`.
    Counters,
    /// `comment`.
    Comment,
    /// `skbinfo`.
    Skbinfo,
    /// `forceadd`.
    Forceadd,
    /// Any other `key value` pair (`bucketsize 12`, `initval 0x…`, `netmask 24`), raw.
    KeyValue(String, String),
}

/// A part of an element (one dimension).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ElemPart {
    /// An address.
    Ip(IpAddr),
    /// A network (`198.18.0.0/15`; a bare address is a host network).
    Net(AddrMask),
    /// A port (range) with its protocol (`tcp:80`; `80` alone is TCP).
    Port {
        /// Protocol.
        proto: Protocol,
        /// Ports.
        ports: PortRange,
    },
    /// An ICMP / ICMPv6 type (`icmp:echo-request`, `icmpv6:128/0`).
    Icmp {
        /// Protocol (Icmp or Icmpv6).
        proto: Protocol,
        /// Type and codes.
        icmp: IcmpType,
    },
    /// A port of a bitmap:port set (range allowed).
    BarePort(PortRange),
    /// A member set name (list:set).
    Set(String),
}

/// An element: its text as written (printed back unchanged) and, for modelled types, its parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Element {
    /// The text as written.
    pub text: String,
    /// The parsed dimensions (`None` for unmodelled set types).
    pub parts: Option<Vec<ElemPart>>,
}

/// An option of `add NAME ELEM …`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryOption {
    /// `timeout N`.
    Timeout(u32),
    /// `nomatch`: excluded (hash:net types), overriding less specific entries.
    Nomatch,
    /// `comment "TEXT"` (unquoted text).
    Comment(String),
    /// `packets N`.
    Packets(u64),
    /// `bytes N`.
    Bytes(u64),
    /// Any other `key value` pair (`skbmark 0x1`), raw.
    KeyValue(String, String),
}

/// An entry of a set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The element.
    pub elem: Element,
    /// Options in the order written.
    pub options: Vec<EntryOption>,
}

impl Entry {
    /// Whether the entry carries `nomatch`.
    pub fn nomatch(&self) -> bool {
        self.options.contains(&EntryOption::Nomatch)
    }
}

/// One set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSet {
    /// Set name.
    pub name: String,
    /// Set type.
    pub set_type: SetType,
    /// Create options in the order written.
    pub options: Vec<CreateOption>,
    /// Entries in the order written.
    pub entries: Vec<Entry>,
}

impl IpSet {
    /// The set's family (`inet` unless `family inet6`).
    pub fn family(&self) -> Family {
        self.options
            .iter()
            .find_map(|o| match o {
                CreateOption::Family(f) => Some(*f),
                _ => None,
            })
            .unwrap_or(Family::V4)
    }

    /// The default timeout, if the set has timeouts.
    pub fn timeout(&self) -> Option<u32> {
        self.options.iter().find_map(|o| match o {
            CreateOption::Timeout(t) => Some(*t),
            _ => None,
        })
    }

    /// Parses an element of this set's type.
    pub fn parse_element(&self, text: &str) -> Option<Element> {
        let parts = match self.set_type.dims() {
            None => None,
            Some(dims) => Some(parse_parts(text, dims, self.family())?),
        };
        Some(Element {
            text: text.to_string(),
            parts,
        })
    }
}

fn parse_parts(text: &str, dims: &[Dim], family: Family) -> Option<Vec<ElemPart>> {
    let raw: Vec<&str> = if dims == [Dim::SetName] {
        vec![text]
    } else {
        text.split(',').collect()
    };
    if raw.len() != dims.len() {
        return None;
    }
    let addr_ok = |a: &IpAddr| Family::of(a) == family;
    raw.iter()
        .zip(dims)
        .map(|(s, d)| -> Option<ElemPart> {
            match d {
                Dim::Ip => {
                    let a: IpAddr = s.parse().ok()?;
                    addr_ok(&a).then_some(ElemPart::Ip(a))
                }
                Dim::Net => {
                    let n = AddrMask::parse(s)?;
                    if matches!(n.mask, crate::iptables::Mask::Bits(_)) || !addr_ok(&n.addr) {
                        return None;
                    }
                    Some(ElemPart::Net(n))
                }
                Dim::Port => {
                    let (proto, port) = match s.split_once(':') {
                        Some((p, port)) => (p, port),
                        None => ("tcp", *s),
                    };
                    let proto: Protocol = proto.parse().ok()?;
                    match proto {
                        Protocol::Icmp | Protocol::Icmpv6 => {
                            let fam = if proto == Protocol::Icmp {
                                Family::V4
                            } else {
                                Family::V6
                            };
                            Some(ElemPart::Icmp {
                                proto,
                                icmp: IcmpType::parse(port, fam)?,
                            })
                        }
                        _ => Some(ElemPart::Port {
                            proto,
                            ports: PortRange::parse_sep(port, '-')?,
                        }),
                    }
                }
                Dim::BarePort => Some(ElemPart::BarePort(PortRange::parse_sep(s, '-')?)),
                Dim::SetName => (!s.is_empty()).then(|| ElemPart::Set(s.to_string())),
            }
        })
        .collect()
}

/// An `ipset save` line that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: expected {expected}, found {found:?}")]
pub struct IpsetError {
    /// 1-based line number.
    pub line: usize,
    /// What was expected.
    pub expected: &'static str,
    /// What was found.
    pub found: String,
}

/// All sets of an `ipset save` dump.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sets {
    sets: Vec<IpSet>,
    index: HashMap<String, usize>,
}

fn num<T: std::str::FromStr>(s: Option<&str>) -> Option<T> {
    let s = s?;
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl Sets {
    /// No sets.
    pub fn new() -> Sets {
        Sets::default()
    }

    /// Sets in the order created.
    pub fn sets(&self) -> &[IpSet] {
        &self.sets
    }

    /// The set named `name`.
    pub fn get(&self, name: &str) -> Option<&IpSet> {
        self.index.get(name).map(|&i| &self.sets[i])
    }

    /// Adds a set; returns it back if the name is taken.
    pub fn insert(&mut self, set: IpSet) -> Result<(), IpSet> {
        if self.index.contains_key(&set.name) {
            return Err(set);
        }
        self.index.insert(set.name.clone(), self.sets.len());
        self.sets.push(set);
        Ok(())
    }

    /// Parses `ipset save` output (`create …` and `add …` lines).
    pub fn parse(text: &str) -> Result<Sets, IpsetError> {
        let mut sets = Sets::new();
        for (n, line) in text.lines().enumerate() {
            let lineno = n + 1;
            let err = |expected: &'static str, found: &str| IpsetError {
                line: lineno,
                expected,
                found: found.chars().take(80).collect(),
            };
            // every trailing CR: `lines` keeps a bare one at the end of the text, and a value
            // ending in CR would not survive `to_save` (its line ends "\r\n", read as the end)
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let ws = words(line).map_err(|_| err("a closing double quote", line))?;
            let w = |i: usize| ws.get(i).map(|w| w.value.as_ref());
            match w(0) {
                Some("create") | Some("-N") | Some("new") => {
                    let name = w(1)
                        .filter(|s| !s.is_empty() && s.len() <= 31)
                        .ok_or_else(|| err("a set name (at most 31 characters)", line))?;
                    let set_type = SetType::parse(w(2).ok_or_else(|| err("a set type", line))?);
                    let mut options = Vec::new();
                    let mut i = 3;
                    while i < ws.len() {
                        let key = ws[i].value.as_ref();
                        let val = w(i + 1);
                        let (opt, used) = match key {
                            "family" => (
                                CreateOption::Family(match val {
                                    Some("inet") => Family::V4,
                                    Some("inet6") => Family::V6,
                                    _ => return Err(err("family inet or inet6", line)),
                                }),
                                2,
                            ),
                            "hashsize" => (
                                CreateOption::Hashsize(
                                    num(val).ok_or_else(|| err("a number after hashsize", line))?,
                                ),
                                2,
                            ),
                            "maxelem" => (
                                CreateOption::Maxelem(
                                    num(val).ok_or_else(|| err("a number after maxelem", line))?,
                                ),
                                2,
                            ),
                            "timeout" => (
                                CreateOption::Timeout(
                                    num(val).ok_or_else(|| err("a number after timeout", line))?,
                                ),
                                2,
                            ),
                            "size" => (
                                CreateOption::Size(
                                    num(val).ok_or_else(|| err("a number after size", line))?,
                                ),
                                2,
                            ),
                            "range" => (
                                CreateOption::Range(
                                    val.ok_or_else(|| err("a range", line))?.to_string(),
                                ),
                                2,
                            ),
                            "counters" => (CreateOption::Counters, 1),
                            "comment" => (CreateOption::Comment, 1),
                            "skbinfo" => (CreateOption::Skbinfo, 1),
                            "forceadd" => (CreateOption::Forceadd, 1),
                            k => match val {
                                Some(v) => {
                                    (CreateOption::KeyValue(k.to_string(), v.to_string()), 2)
                                }
                                None => return Err(err("a value after the option", line)),
                            },
                        };
                        options.push(opt);
                        i += used;
                    }
                    let set = IpSet {
                        name: name.to_string(),
                        set_type,
                        options,
                        entries: Vec::new(),
                    };
                    sets.insert(set)
                        .map_err(|_| err("a set name not created before", line))?;
                }
                Some("add") | Some("-A") => {
                    let name = w(1).ok_or_else(|| err("a set name", line))?;
                    let idx = *sets
                        .index
                        .get(name)
                        .ok_or_else(|| err("a set created before", name))?;
                    let text = w(2).ok_or_else(|| err("an element", line))?;
                    let set = &sets.sets[idx];
                    let elem = set
                        .parse_element(text)
                        .ok_or_else(|| err("an element of the set's type and family", text))?;
                    let mut options = Vec::new();
                    let mut i = 3;
                    while i < ws.len() {
                        let key = ws[i].value.as_ref();
                        let val = w(i + 1);
                        let (opt, used) = match key {
                            "nomatch" => (EntryOption::Nomatch, 1),
                            "timeout" => (
                                EntryOption::Timeout(
                                    num(val).ok_or_else(|| err("a number after timeout", line))?,
                                ),
                                2,
                            ),
                            "packets" => (
                                EntryOption::Packets(
                                    num(val).ok_or_else(|| err("a number after packets", line))?,
                                ),
                                2,
                            ),
                            "bytes" => (
                                EntryOption::Bytes(
                                    num(val).ok_or_else(|| err("a number after bytes", line))?,
                                ),
                                2,
                            ),
                            "comment" => (
                                EntryOption::Comment(
                                    val.ok_or_else(|| err("a comment", line))?.to_string(),
                                ),
                                2,
                            ),
                            k => match val {
                                Some(v) => (EntryOption::KeyValue(k.to_string(), v.to_string()), 2),
                                None => return Err(err("a value after the option", line)),
                            },
                        };
                        options.push(opt);
                        i += used;
                    }
                    sets.sets[idx].entries.push(Entry { elem, options });
                }
                _ => return Err(err("a \"create\" or \"add\" line", line)),
            }
        }
        Ok(sets)
    }

    /// The sets as `ipset save` prints them.
    pub fn to_save(&self) -> String {
        let mut out = String::new();
        for s in &self.sets {
            let _ = write!(out, "create {} {}", word(&s.name), word(s.set_type.name()));
            for o in &s.options {
                let _ = match o {
                    CreateOption::Family(Family::V4) => write!(out, " family inet"),
                    CreateOption::Family(Family::V6) => write!(out, " family inet6"),
                    CreateOption::Hashsize(n) => write!(out, " hashsize {n}"),
                    CreateOption::Maxelem(n) => write!(out, " maxelem {n}"),
                    CreateOption::Timeout(n) => write!(out, " timeout {n}"),
                    CreateOption::Size(n) => write!(out, " size {n}"),
                    CreateOption::Range(r) => write!(out, " range {}", word(r)),
                    CreateOption::Counters => write!(out, " counters"),
                    CreateOption::Comment => write!(out, " comment"),
                    CreateOption::Skbinfo => write!(out, " skbinfo"),
                    CreateOption::Forceadd => write!(out, " forceadd"),
                    CreateOption::KeyValue(k, v) => write!(out, " {} {}", word(k), word(v)),
                };
            }
            out.push('\n');
            for e in &s.entries {
                let _ = write!(out, "add {} {}", word(&s.name), word(&e.elem.text));
                for o in &e.options {
                    let _ = match o {
                        EntryOption::Nomatch => write!(out, " nomatch"),
                        EntryOption::Timeout(n) => write!(out, " timeout {n}"),
                        EntryOption::Packets(n) => write!(out, " packets {n}"),
                        EntryOption::Bytes(n) => write!(out, " bytes {n}"),
                        EntryOption::Comment(c) => write!(out, " comment {}", quoted(c)),
                        EntryOption::KeyValue(k, v) => write!(out, " {} {}", word(k), word(v)),
                    };
                }
                out.push('\n');
            }
        }
        out
    }
}

/// `s` as one word of a save line: as it is, or in double quotes with `"` and `\\` escaped
/// when it is empty or holds a blank, a quote, a backslash or a CR (one at the end of a line
/// would be read as part of the line ending): what [`words`] reads back.
fn word(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.is_empty() && !s.contains([' ', '\t', '"', '\\', '\r']) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(quoted(s))
}

/// `s` in double quotes, `"` and `\\` escaped (a comment, as `ipset save` writes it).
fn quoted(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}
