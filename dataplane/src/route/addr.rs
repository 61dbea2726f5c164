//! Interface addresses as `ip -j addr show` prints them.
//!
//! ```text
//!   [{"ifindex":2,"ifname":"eth0",..,"addr_info":[{"family":"inet","local":"198.18.0.1",
//!     "prefixlen":24,"scope":"global","secondary":true,..}]}, ..]
//!        | InterfaceAddrs::parse_doc                         ^ to_value
//!        v                                                   |
//!   Vec<InterfaceAddrs { ifindex, ifname, addrs: Vec<Address>, extra }>
//! ```
//!
//! The order of `addr_info` is the kernel's own list order (IPv4: primaries by scope, then
//! secondaries; IPv6: global before link-local, newest first), which source address selection
//! depends on, so it is kept as is.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::json::{Document, Obj, ParseError, parse_array};
use super::names::Scope;
use crate::packet::Family;

/// An address flag (`IFA_F_*`) as `ip -j addr` prints it: a key set to `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddrFlag {
    /// `secondary`: an IPv4 address in the same subnet as an earlier (primary) one.
    Secondary,
    /// `temporary`: an IPv6 privacy address (same bit as `secondary`).
    Temporary,
    /// `nodad`: no duplicate address detection.
    Nodad,
    /// `optimistic`: optimistic DAD.
    Optimistic,
    /// `dadfailed`: DAD found a duplicate; the address is unusable.
    Dadfailed,
    /// `home`: Mobile IPv6 home address.
    Home,
    /// `deprecated`: preferred lifetime expired; avoided as a source.
    Deprecated,
    /// `tentative`: DAD in progress; not usable as a source yet.
    Tentative,
    /// `permanent` (printed only by some versions).
    Permanent,
    /// `dynamic`: not permanent (autoconfigured or with a lifetime).
    Dynamic,
    /// `mngtmpaddr`.
    Mngtmpaddr,
    /// `noprefixroute`: no prefix route was added for this address.
    Noprefixroute,
    /// `autojoin`.
    Autojoin,
    /// `stable-privacy`.
    StablePrivacy,
}

const ADDR_FLAGS: &[(AddrFlag, &str)] = &[
    (AddrFlag::Secondary, "secondary"),
    (AddrFlag::Temporary, "temporary"),
    (AddrFlag::Nodad, "nodad"),
    (AddrFlag::Optimistic, "optimistic"),
    (AddrFlag::Dadfailed, "dadfailed"),
    (AddrFlag::Home, "home"),
    (AddrFlag::Deprecated, "deprecated"),
    (AddrFlag::Tentative, "tentative"),
    (AddrFlag::Permanent, "permanent"),
    (AddrFlag::Dynamic, "dynamic"),
    (AddrFlag::Mngtmpaddr, "mngtmpaddr"),
    (AddrFlag::Noprefixroute, "noprefixroute"),
    (AddrFlag::Autojoin, "autojoin"),
    (AddrFlag::StablePrivacy, "stable-privacy"),
];

impl AddrFlag {
    /// The key `ip -j` uses for the flag.
    pub fn name(self) -> &'static str {
        ADDR_FLAGS
            .iter()
            .find(|(f, _)| *f == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }
}

impl fmt::Display for AddrFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One address of an interface (`ip addr add LOCAL/PREFIXLEN dev IFNAME`).
#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    /// `inet` or `inet6`.
    pub family: Family,
    /// The address itself.
    pub local: IpAddr,
    /// Prefix length of the subnet.
    pub prefixlen: u8,
    /// The peer address of a point-to-point address (`address` when it differs from `local`).
    pub peer: Option<IpAddr>,
    /// IPv4 broadcast address (`brd`).
    pub broadcast: Option<Ipv4Addr>,
    /// Scope (`global`, `link`, `host`, ...).
    pub scope: Scope,
    /// IPv4 label (`eth0:1`).
    pub label: Option<String>,
    /// Flags set on the address.
    pub flags: BTreeSet<AddrFlag>,
    /// Valid lifetime in seconds (4294967295 = forever).
    pub valid_life_time: Option<u64>,
    /// Preferred lifetime in seconds.
    pub preferred_life_time: Option<u64>,
    /// Fields this crate does not interpret, kept raw.
    pub extra: Map<String, Value>,
}

impl Address {
    /// A permanent global address (for hand-built states and tests).
    pub fn new(local: IpAddr, prefixlen: u8) -> Address {
        Address {
            family: Family::of(&local),
            local,
            prefixlen,
            peer: None,
            broadcast: None,
            scope: Scope::GLOBAL,
            label: None,
            flags: BTreeSet::new(),
            valid_life_time: None,
            preferred_life_time: None,
            extra: Map::new(),
        }
    }

    /// Whether the flag is set.
    pub fn has(&self, flag: AddrFlag) -> bool {
        self.flags.contains(&flag)
    }

    /// Whether the kernel treats this as a secondary IPv4 address (never chosen as a source).
    pub fn is_secondary(&self) -> bool {
        self.family == Family::V4 && self.has(AddrFlag::Secondary)
    }

    /// Whether the address can be used as a source (not tentative, not failed DAD).
    pub fn is_usable_source(&self) -> bool {
        !(self.has(AddrFlag::Tentative) || self.has(AddrFlag::Dadfailed))
            || self.has(AddrFlag::Optimistic)
    }

    /// The subnet the address is in (`local/prefixlen`, host bits cleared), or the peer's
    /// subnet for a point-to-point address.
    pub fn subnet(&self) -> IpNet {
        let base = self.peer.unwrap_or(self.local);
        IpNet::new(base, self.prefixlen)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(base))
    }

    fn from_value(mut o: Obj) -> Result<Address, ParseError> {
        let family_text = o.req_str("family")?;
        let family = match family_text.as_str() {
            "inet" => Family::V4,
            "inet6" => Family::V6,
            other => {
                return Err(o.bad("family", "inet or inet6", &Value::from(other)));
            }
        };
        let local = o
            .opt_ip_of("local", family)?
            .ok_or_else(|| o.missing("local", "an IP address"))?;
        let max = match family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        let prefixlen = match o.opt_u8("prefixlen")? {
            Some(p) if p <= max => p,
            Some(p) => return Err(o.bad("prefixlen", "a prefix length for the family", &p.into())),
            None => return Err(o.missing("prefixlen", "a prefix length")),
        };
        let peer = o.opt_ip_of("address", family)?;
        let broadcast = match o.opt_ip_of("broadcast", Family::V4)? {
            Some(IpAddr::V4(b)) => Some(b),
            _ => None,
        };
        let scope = match o.opt_str("scope")? {
            None => Scope::GLOBAL,
            Some(s) => Scope::parse(&s).ok_or_else(|| o.bad("scope", "a scope", &s.into()))?,
        };
        let label = o.opt_str("label")?;
        let mut flags = BTreeSet::new();
        for (flag, name) in ADDR_FLAGS {
            if o.has(name) && o.flag(name)? {
                flags.insert(*flag);
            }
        }
        let valid_life_time = o.opt_uint("valid_life_time", u64::MAX)?;
        let preferred_life_time = o.opt_uint("preferred_life_time", u64::MAX)?;
        Ok(Address {
            family,
            local,
            prefixlen,
            peer,
            broadcast,
            scope,
            label,
            flags,
            valid_life_time,
            preferred_life_time,
            extra: o.rest(),
        })
    }

    /// The `addr_info` object `ip -j addr show` prints for this address.
    pub fn to_value(&self) -> Value {
        let mut m = self.extra.clone();
        let family = match self.family {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        };
        m.insert("family".into(), family.into());
        m.insert("local".into(), self.local.to_string().into());
        m.insert("prefixlen".into(), self.prefixlen.into());
        if let Some(p) = self.peer {
            m.insert("address".into(), p.to_string().into());
        }
        if let Some(b) = self.broadcast {
            m.insert("broadcast".into(), b.to_string().into());
        }
        m.insert("scope".into(), self.scope.to_string().into());
        if let Some(l) = &self.label {
            m.insert("label".into(), l.clone().into());
        }
        for flag in &self.flags {
            m.insert(flag.name().into(), true.into());
        }
        if let Some(v) = self.valid_life_time {
            m.insert("valid_life_time".into(), v.into());
        }
        if let Some(v) = self.preferred_life_time {
            m.insert("preferred_life_time".into(), v.into());
        }
        Value::Object(m)
    }
}

/// The addresses of one interface, in kernel order, with the link fields `ip addr` repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceAddrs {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub ifname: String,
    /// IPv4 and IPv6 addresses, in the order `ip addr` lists them.
    pub addrs: Vec<Address>,
    /// `addr_info` entries of other families, kept raw.
    pub other_addrs: Vec<Value>,
    /// The link fields `ip addr` prints around `addr_info` (flags, mtu, ...), kept raw.
    pub extra: Map<String, Value>,
}

impl InterfaceAddrs {
    /// Parses the output of `ip -j addr show`.
    pub fn parse_doc(text: &str) -> Result<Vec<InterfaceAddrs>, ParseError> {
        InterfaceAddrs::from_values(parse_array(Document::Addr, text)?)
    }

    /// Parses the elements of an already decoded `ip -j addr show` array.
    pub fn from_values(items: Vec<Value>) -> Result<Vec<InterfaceAddrs>, ParseError> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| InterfaceAddrs::from_value(Obj::new(Document::Addr, i, v)?))
            .collect()
    }

    fn from_value(mut o: Obj) -> Result<InterfaceAddrs, ParseError> {
        let ifindex = o.req_u32("ifindex")?;
        let ifname = o.req_str("ifname")?;
        let mut addrs = Vec::new();
        let mut other_addrs = Vec::new();
        for (i, item) in o
            .opt_array("addr_info")?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let is_ip = matches!(
                item.get("family").and_then(Value::as_str),
                Some("inet") | Some("inet6")
            );
            if is_ip {
                let a = Obj::nested(o.doc(), o.index(), format!("addr_info[{i}]"), item)?;
                addrs.push(Address::from_value(a)?);
            } else if item.is_object() && item.get("family").is_some_and(Value::is_string) {
                other_addrs.push(item);
            } else {
                return Err(o.bad(
                    &format!("addr_info[{i}]"),
                    "an object with a string `family`",
                    &item,
                ));
            }
        }
        Ok(InterfaceAddrs {
            ifindex,
            ifname,
            addrs,
            other_addrs,
            extra: o.rest(),
        })
    }

    /// The object `ip -j addr show` prints for this interface.
    pub fn to_value(&self) -> Value {
        let mut m = self.extra.clone();
        m.insert("ifindex".into(), self.ifindex.into());
        m.insert("ifname".into(), self.ifname.clone().into());
        let mut info: Vec<Value> = self.addrs.iter().map(Address::to_value).collect();
        info.extend(self.other_addrs.iter().cloned());
        m.insert("addr_info".into(), Value::Array(info));
        Value::Object(m)
    }
}

impl Serialize for InterfaceAddrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"[{"ifindex":2,"ifname":"va","flags":["UP"],"addr_info":[{"family":"inet","local":"198.18.0.1","prefixlen":24,"broadcast":"198.18.0.255","scope":"global","label":"va","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet","local":"198.18.0.5","prefixlen":24,"scope":"global","secondary":true,"label":"va"},{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link","tentative":true,"dadfailed":true}]}]"#;

    #[test]
    fn parses_flags_scopes_and_round_trips() {
        let ifs = InterfaceAddrs::parse_doc(DOC).unwrap();
        let a = &ifs[0].addrs;
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].broadcast, Some("198.18.0.255".parse().unwrap()));
        assert!(!a[0].is_secondary() && a[1].is_secondary());
        assert_eq!(a[1].subnet().to_string(), "198.18.0.0/24");
        assert_eq!(a[2].scope, Scope::LINK);
        assert!(!a[2].is_usable_source());
        let original: Value = serde_json::from_str(DOC).unwrap();
        assert_eq!(Value::Array(vec![ifs[0].to_value()]), original);
    }

    #[test]
    fn errors_point_into_addr_info() {
        let bad = r#"[{"ifindex":2,"ifname":"va","addr_info":[{"family":"inet","local":"2001:db8::1","prefixlen":24}]}]"#;
        assert_eq!(
            InterfaceAddrs::parse_doc(bad).unwrap_err().to_string(),
            "`ip -j addr show`[0]: field `addr_info[0].local`: expected an IPv4 address, found \"2001:db8::1\""
        );
        let bad = r#"[{"ifindex":2,"ifname":"va","addr_info":[{"family":"inet","local":"198.18.0.1","prefixlen":33}]}]"#;
        assert!(
            InterfaceAddrs::parse_doc(bad)
                .unwrap_err()
                .to_string()
                .contains("addr_info[0].prefixlen")
        );
    }
}
