//! Policy routing rules (the RPDB) as `ip -j rule show` / `ip -j -6 rule show` print them.
//!
//! ```text
//!   {"priority":100,"src":"198.18.0.0","srclen":24,"fwmark":"0x10","fwmask":"0xff","iif":"va",
//!    "table":"100"}
//!        | Rule::parse_doc(family, text)       ^ to_value         ^ Display (`ip rule show` line)
//!        v                                     |                  |
//!   Rule { priority, not, src, dst, tos, fwmark/fwmask, iif, oif, uidrange, ipproto,
//!          sport, dport, l3mdev, action, suppress_*, protocol, extra }
//! ```
//!
//! A selector this crate does not know (`tun_id`, a newer `dport_mask`, ...) stays in `extra`;
//! the lookup then stops at that rule and reports it instead of guessing whether it matches.

use std::fmt;

use ipnet::IpNet;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::json::{Document, Obj, ParseError, parse_array};
use super::names::{
    RouteProtocol, TableId, c_hex, dsfield_name, dsfield_number, ip_proto_name, ip_proto_number,
    parse_u32_text,
};
use super::routes::parse_prefix;
use crate::packet::Family;

/// An inclusive port range (`sport 1000`, `dport 80-90`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port.
    pub end: u16,
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// What a matching rule does (`FR_ACT_*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// `lookup TABLE` (`FR_ACT_TO_TBL`). An `l3mdev` rule without a table has
    /// [`TableId::UNSPEC`]: the table is the VRF's.
    Table(TableId),
    /// `goto PRIORITY` (`FR_ACT_GOTO`): continue at the rule with exactly that priority.
    Goto(u32),
    /// `nop` (`FR_ACT_NOP`): do nothing, continue with the next rule.
    Nop,
    /// `blackhole` (`FR_ACT_BLACKHOLE`): drop silently (`EINVAL`).
    Blackhole,
    /// `unreachable` (`FR_ACT_UNREACHABLE`): `ENETUNREACH`.
    Unreachable,
    /// `prohibit` (`FR_ACT_PROHIBIT`): `EACCES`.
    Prohibit,
    /// Any other action word, kept raw; the lookup reports it as not modelled.
    Other(String),
}

/// A policy routing rule (`ip rule add ...`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Address family (which document it came from).
    pub family: Family,
    /// Priority (`pref`); lower runs first.
    pub priority: u32,
    /// `not`: the selector as a whole is inverted (`FIB_RULE_INVERT`).
    pub not: bool,
    /// `from PREFIX`; `None` is `from all`.
    pub src: Option<IpNet>,
    /// `to PREFIX`.
    pub dst: Option<IpNet>,
    /// `tos` / `dsfield`.
    pub tos: Option<u8>,
    /// `fwmark MARK[/MASK]`: the mark.
    pub fwmark: Option<u32>,
    /// The mask (`None` is 0xffffffff, which `ip` does not print).
    pub fwmask: Option<u32>,
    /// `iif NAME`.
    pub iif: Option<String>,
    /// The `iif` device does not exist (`[detached]`): the selector never matches.
    pub iif_detached: bool,
    /// `oif NAME`.
    pub oif: Option<String>,
    /// The `oif` device does not exist.
    pub oif_detached: bool,
    /// `l3mdev`: look up the table of the flow's L3 master device (VRF).
    pub l3mdev: bool,
    /// `uidrange START-END`.
    pub uidrange: Option<(u32, u32)>,
    /// `ipproto PROTO` (number).
    pub ipproto: Option<u8>,
    /// `sport PORT[-PORT]`.
    pub sport: Option<PortRange>,
    /// `dport PORT[-PORT]`.
    pub dport: Option<PortRange>,
    /// What the rule does.
    pub action: RuleAction,
    /// A `goto` whose target priority has no rule (`[unresolved]`), as the kernel reported.
    pub unresolved: bool,
    /// `suppress_prefixlength N`: reject table results with a prefix length `<= N`.
    pub suppress_prefixlen: Option<u8>,
    /// `suppress_ifgroup GROUP`: reject table results whose device is in that group.
    pub suppress_ifgroup: Option<String>,
    /// `protocol` (who installed the rule).
    pub protocol: Option<RouteProtocol>,
    /// Fields this crate does not interpret, kept raw.
    pub extra: Map<String, Value>,
}

/// Extra keys that do not take part in matching (realms classify, they do not select).
pub(crate) const NON_SELECTOR_EXTRA: &[&str] = &["flow_from", "flow_to"];

impl Rule {
    /// A rule `PRIORITY: from all lookup TABLE`.
    pub fn lookup(family: Family, priority: u32, table: TableId) -> Rule {
        Rule {
            family,
            priority,
            not: false,
            src: None,
            dst: None,
            tos: None,
            fwmark: None,
            fwmask: None,
            iif: None,
            iif_detached: false,
            oif: None,
            oif_detached: false,
            l3mdev: false,
            uidrange: None,
            ipproto: None,
            sport: None,
            dport: None,
            action: RuleAction::Table(table),
            unresolved: false,
            suppress_prefixlen: None,
            suppress_ifgroup: None,
            protocol: None,
            extra: Map::new(),
        }
    }

    /// The rules a fresh network namespace has: `0 local`, `32766 main` and, for IPv4 only,
    /// `32767 default`.
    pub fn defaults(family: Family) -> Vec<Rule> {
        let mut rules = vec![
            Rule::lookup(family, 0, TableId::LOCAL),
            Rule::lookup(family, 32766, TableId::MAIN),
        ];
        if family == Family::V4 {
            rules.push(Rule::lookup(family, 32767, TableId::DEFAULT));
        }
        rules
    }

    /// The effective fwmark mask.
    pub fn fwmask(&self) -> u32 {
        self.fwmask.unwrap_or(u32::MAX)
    }

    /// Keys in `extra` that may select packets (so the rule cannot be evaluated).
    pub fn unknown_selectors(&self) -> Vec<&str> {
        self.extra
            .keys()
            .map(String::as_str)
            .filter(|k| !NON_SELECTOR_EXTRA.contains(k))
            .collect()
    }

    /// Parses `ip -j rule show` (`family` V4) or `ip -j -6 rule show` (V6).
    pub fn parse_doc(family: Family, text: &str) -> Result<Vec<Rule>, ParseError> {
        Rule::from_values(family, parse_array(Document::Rule(family), text)?)
    }

    /// Parses the elements of an already decoded rule array.
    pub fn from_values(family: Family, items: Vec<Value>) -> Result<Vec<Rule>, ParseError> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| Rule::from_value(family, Obj::new(Document::Rule(family), i, v)?))
            .collect()
    }

    fn from_value(family: Family, mut o: Obj) -> Result<Rule, ParseError> {
        let priority = o.opt_u32("priority")?.unwrap_or(0);
        let not = o.flag("not")?;
        let src = parse_selector_prefix(&mut o, family, "src", "srclen")?;
        let dst = parse_selector_prefix(&mut o, family, "dst", "dstlen")?;
        let tos = match o.opt_str("tos")? {
            None => None,
            Some(t) => {
                Some(dsfield_number(&t).ok_or_else(|| o.bad("tos", "a TOS value", &t.into()))?)
            }
        };
        let fwmark = hex_field(&mut o, "fwmark")?;
        let fwmask = hex_field(&mut o, "fwmask")?;
        let iif = o.opt_str("iif")?;
        let iif_detached = o.flag("iif_detached")?;
        let oif = o.opt_str("oif")?;
        let oif_detached = o.flag("oif_detached")?;
        let l3mdev = o.flag("l3mdev")?;
        let uidrange = match (o.opt_u32("uid_start")?, o.opt_u32("uid_end")?) {
            (None, None) => None,
            (Some(a), Some(b)) if a <= b => Some((a, b)),
            (a, b) => {
                let found = serde_json::json!({"uid_start": a, "uid_end": b});
                return Err(o.bad("uid_start", "uid_start <= uid_end, both present", &found));
            }
        };
        let ipproto = match o.take("ipproto") {
            None => None,
            Some(Value::String(p)) => match ip_proto_number(&p) {
                Some(n) => Some(n),
                None => {
                    // A protocol name this crate does not know: kept raw as an unknown selector.
                    o.put_back("ipproto", Value::String(p));
                    None
                }
            },
            Some(other) => return Err(o.bad("ipproto", "a protocol name", &other)),
        };
        let sport = parse_ports(&mut o, "sport")?;
        let dport = parse_ports(&mut o, "dport")?;
        let unresolved = o.flag("unresolved")?;
        let action = if let Some(target) = o.opt_u32("goto")? {
            RuleAction::Goto(target)
        } else if o.flag("nop")? {
            RuleAction::Nop
        } else if let Some(a) = o.opt_str("action")? {
            match a.as_str() {
                "blackhole" => RuleAction::Blackhole,
                "unreachable" => RuleAction::Unreachable,
                "prohibit" => RuleAction::Prohibit,
                _ => RuleAction::Other(a),
            }
        } else if let Some(t) = o.opt_str("table")? {
            RuleAction::Table(TableId::parse(&t))
        } else if l3mdev {
            RuleAction::Table(TableId::UNSPEC)
        } else {
            return Err(o.missing("table", "an action: `table`, `goto`, `nop` or `action`"));
        };
        let suppress_prefixlen = match o.take("suppress_prefixlen") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) if n <= 128 => Some(n as u8),
                _ => return Err(o.bad("suppress_prefixlen", "a prefix length", &v)),
            },
        };
        let suppress_ifgroup = o.opt_str("suppress_ifgroup")?;
        let protocol = o.opt_str("protocol")?.map(|p| RouteProtocol::parse(&p));
        Ok(Rule {
            family,
            priority,
            not,
            src,
            dst,
            tos,
            fwmark,
            fwmask,
            iif,
            iif_detached,
            oif,
            oif_detached,
            l3mdev,
            uidrange,
            ipproto,
            sport,
            dport,
            action,
            unresolved,
            suppress_prefixlen,
            suppress_ifgroup,
            protocol,
            extra: o.rest(),
        })
    }

    /// The object `ip -j rule show` prints for this rule.
    pub fn to_value(&self) -> Value {
        let mut m = self.extra.clone();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put("priority", self.priority.into());
        if self.not {
            put("not", Value::Null);
        }
        match &self.src {
            None => put("src", "all".into()),
            Some(net) => {
                put("src", net.addr().to_string().into());
                if net.prefix_len() != net.max_prefix_len() {
                    put("srclen", net.prefix_len().into());
                }
            }
        }
        if let Some(net) = &self.dst {
            put("dst", net.addr().to_string().into());
            if net.prefix_len() != net.max_prefix_len() {
                put("dstlen", net.prefix_len().into());
            }
        }
        if let Some(t) = self.tos {
            put("tos", dsfield_name(t).into());
        }
        if let Some(mark) = self.fwmark {
            put("fwmark", c_hex(mark).into());
        }
        if let Some(mask) = self.fwmask {
            put("fwmask", c_hex(mask).into());
        }
        if let Some(i) = &self.iif {
            put("iif", i.clone().into());
        }
        if self.iif_detached {
            put("iif_detached", Value::Null);
        }
        if let Some(i) = &self.oif {
            put("oif", i.clone().into());
        }
        if self.oif_detached {
            put("oif_detached", Value::Null);
        }
        if self.l3mdev {
            put("l3mdev", Value::Null);
        }
        if let Some((a, b)) = self.uidrange {
            put("uid_start", a.into());
            put("uid_end", b.into());
        }
        if let Some(p) = self.ipproto {
            put("ipproto", ip_proto_name(p).into());
        }
        for (key, range) in [("sport", self.sport), ("dport", self.dport)] {
            if let Some(r) = range {
                if r.start == r.end {
                    put(key, r.start.into());
                } else {
                    put(&format!("{key}_start"), r.start.into());
                    put(&format!("{key}_end"), r.end.into());
                }
            }
        }
        match &self.action {
            RuleAction::Table(t) if self.l3mdev && *t == TableId::UNSPEC => {}
            RuleAction::Table(t) => put("table", t.to_string().into()),
            RuleAction::Goto(n) => put("goto", (*n).into()),
            RuleAction::Nop => put("nop", Value::Null),
            RuleAction::Blackhole => put("action", "blackhole".into()),
            RuleAction::Unreachable => put("action", "unreachable".into()),
            RuleAction::Prohibit => put("action", "prohibit".into()),
            RuleAction::Other(a) => put("action", a.clone().into()),
        }
        if self.unresolved {
            put("unresolved", Value::Null);
        }
        if let Some(n) = self.suppress_prefixlen {
            put("suppress_prefixlen", n.into());
        }
        if let Some(g) = &self.suppress_ifgroup {
            put("suppress_ifgroup", g.clone().into());
        }
        if let Some(p) = &self.protocol {
            put("protocol", p.to_string().into());
        }
        Value::Object(m)
    }

    /// The arguments `ip rule add` needs to recreate this rule (without the `rule add`).
    pub fn add_args(&self) -> String {
        let mut words = vec![format!("pref {}", self.priority)];
        self.words(&mut words, true);
        words.join(" ")
    }

    fn words(&self, w: &mut Vec<String>, for_add: bool) {
        if self.not {
            w.push("not".into());
        }
        match (&self.src, for_add) {
            (Some(net), _) => w.push(format!("from {}", rule_prefix(net))),
            (None, false) => w.push("from all".into()),
            (None, true) => {}
        }
        if let Some(net) = &self.dst {
            w.push(format!("to {}", rule_prefix(net)));
        }
        if let Some(t) = self.tos {
            w.push(format!("tos {}", dsfield_name(t)));
        }
        if self.fwmark.is_some() || self.fwmask.is_some() {
            let mark = c_hex(self.fwmark.unwrap_or(0));
            match self.fwmask {
                Some(mask) => w.push(format!("fwmark {mark}/{}", c_hex(mask))),
                // `ip rule add fwmark 0` would leave the mask at 0 (match all): be explicit.
                None if for_add => w.push(format!("fwmark {mark}/0xffffffff")),
                None => w.push(format!("fwmark {mark}")),
            }
        }
        if let Some(i) = &self.iif {
            w.push(format!("iif {i}"));
            if self.iif_detached && !for_add {
                w.push("[detached]".into());
            }
        }
        if let Some(o) = &self.oif {
            w.push(format!("oif {o}"));
            if self.oif_detached && !for_add {
                w.push("[detached]".into());
            }
        }
        if self.l3mdev && for_add {
            w.push("l3mdev".into());
        }
        if let Some((a, b)) = self.uidrange {
            w.push(format!("uidrange {a}-{b}"));
        }
        if let Some(p) = self.ipproto {
            w.push(format!("ipproto {}", ip_proto_name(p)));
        }
        if let Some(r) = self.sport {
            w.push(format!("sport {r}"));
        }
        if let Some(r) = self.dport {
            w.push(format!("dport {r}"));
        }
        for (k, v) in &self.extra {
            if NON_SELECTOR_EXTRA.contains(&k.as_str()) {
                continue;
            }
            match v {
                Value::Null => w.push(k.clone()),
                Value::String(s) => w.push(format!("{k} {s}")),
                other => w.push(format!("{k} {other}")),
            }
        }
        match &self.action {
            RuleAction::Table(t) if self.l3mdev && *t == TableId::UNSPEC => {
                if !for_add {
                    w.push("lookup [l3mdev-table]".into());
                }
            }
            RuleAction::Table(t) => w.push(format!("lookup {t}")),
            RuleAction::Goto(n) => {
                w.push(format!("goto {n}"));
                if self.unresolved && !for_add {
                    w.push("[unresolved]".into());
                }
            }
            RuleAction::Nop => w.push("nop".into()),
            RuleAction::Blackhole => w.push("blackhole".into()),
            RuleAction::Unreachable => w.push("unreachable".into()),
            RuleAction::Prohibit => w.push("prohibit".into()),
            RuleAction::Other(a) => w.push(a.clone()),
        }
        if let Some(n) = self.suppress_prefixlen {
            w.push(format!("suppress_prefixlength {n}"));
        }
        if let Some(g) = &self.suppress_ifgroup {
            w.push(format!("suppress_ifgroup {g}"));
        }
        let from = self.extra.get("flow_from").and_then(Value::as_str);
        let to = self.extra.get("flow_to").and_then(Value::as_str);
        match (from, to) {
            (Some(f), Some(t)) => w.push(format!("realms {f}/{t}")),
            (None, Some(t)) => w.push(format!("realms {t}")),
            _ => {}
        }
        if let Some(p) = &self.protocol {
            w.push(format!("proto {p}"));
        }
    }
}

/// An `ip rule show` line: `PRIORITY:\tSELECTOR ACTION`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Vec::new();
        self.words(&mut words, false);
        write!(f, "{}:\t{}", self.priority, words.join(" "))
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

fn rule_prefix(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        format!("{}/{}", net.addr(), net.prefix_len())
    }
}

fn parse_selector_prefix(
    o: &mut Obj,
    family: Family,
    key: &str,
    len_key: &str,
) -> Result<Option<IpNet>, ParseError> {
    let text = o.opt_str(key)?;
    let len = o.opt_u8(len_key)?;
    let Some(text) = text else {
        return match len {
            None => Ok(None),
            Some(l) => Err(o.bad(len_key, "no length without an address", &l.into())),
        };
    };
    if text == "all" {
        return Ok(None);
    }
    let net = parse_prefix(&text, family).ok_or_else(|| {
        o.bad(
            key,
            "`all` or an address of the document's family",
            &text.clone().into(),
        )
    })?;
    match len {
        None => Ok(Some(net)),
        Some(l) => IpNet::new(net.addr(), l)
            .map(Some)
            .map_err(|_| o.bad(len_key, "a prefix length for the family", &l.into())),
    }
}

fn hex_field(o: &mut Obj, key: &str) -> Result<Option<u32>, ParseError> {
    match o.opt_str(key)? {
        None => Ok(None),
        Some(t) => parse_u32_text(&t)
            .map(Some)
            .ok_or_else(|| o.bad(key, "a 32-bit number in hex (0x...) or decimal", &t.into())),
    }
}

fn parse_ports(o: &mut Obj, key: &str) -> Result<Option<PortRange>, ParseError> {
    let single = o.opt_u16(key)?;
    let start = o.opt_u16(&format!("{key}_start"))?;
    let end = o.opt_u16(&format!("{key}_end"))?;
    match (single, start, end) {
        (None, None, None) => Ok(None),
        (Some(p), None, None) => Ok(Some(PortRange { start: p, end: p })),
        (None, Some(a), Some(b)) if a <= b => Ok(Some(PortRange { start: a, end: b })),
        (s, a, b) => {
            let found = serde_json::json!({key: s, "start": a, "end": b});
            Err(o.bad(key, "a port or a start <= end pair", &found))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = r#"[{"priority":0,"src":"all","table":"local"},
{"priority":100,"src":"198.18.0.0","srclen":24,"fwmark":"0x10","fwmask":"0xff","iif":"va","table":"100"},
{"priority":200,"not":null,"src":"all","dst":"198.18.0.0","dstlen":16,"uid_start":100,"uid_end":200,"ipproto":"tcp","sport":1000,"dport_start":80,"dport_end":90,"goto":32766},
{"priority":300,"src":"all","tos":"0x10","action":"prohibit"},
{"priority":400,"src":"all","table":"main","suppress_prefixlen":0,"suppress_ifgroup":"5"},
{"priority":500,"src":"all","oif":"va","l3mdev":null},
{"priority":600,"src":"all","nop":null},
{"priority":601,"src":"all","iif":"nosuchdev","iif_detached":null,"action":"blackhole"},
{"priority":602,"src":"198.18.0.9","action":"unreachable"},
{"priority":603,"src":"all","dst":"198.18.1.0","dstlen":24,"table":"252","protocol":"bgp"},
{"priority":604,"src":"all","table":"100","flow_from":"3","flow_to":"4"},
{"priority":607,"src":"all","ipproto":"gre","table":"100"},
{"priority":608,"src":"all","ipproto":"udp","sport_start":1,"sport_end":100,"dport":53,"table":"100"},
{"priority":700,"src":"all","goto":750,"unresolved":null},
{"priority":701,"src":"all","fwmark":"0","table":"5"},
{"priority":702,"src":"all","fwmark":"0x3","fwmask":"0","table":"5"},
{"priority":707,"src":"all","tun_id":5,"table":"5"}]"#;

    #[test]
    fn parses_and_prints_like_ip_rule() {
        let rules = Rule::parse_doc(Family::V4, V4).unwrap();
        let text: Vec<String> = rules.iter().map(Rule::to_string).collect();
        assert_eq!(
            text,
            [
                "0:\tfrom all lookup local",
                "100:\tfrom 198.18.0.0/24 fwmark 0x10/0xff iif va lookup 100",
                "200:\tnot from all to 198.18.0.0/16 uidrange 100-200 ipproto tcp sport 1000 dport 80-90 goto 32766",
                "300:\tfrom all tos 0x10 prohibit",
                "400:\tfrom all lookup main suppress_prefixlength 0 suppress_ifgroup 5",
                "500:\tfrom all oif va lookup [l3mdev-table]",
                "600:\tfrom all nop",
                "601:\tfrom all iif nosuchdev [detached] blackhole",
                "602:\tfrom 198.18.0.9 unreachable",
                "603:\tfrom all to 198.18.1.0/24 lookup 252 proto bgp",
                "604:\tfrom all lookup 100 realms 3/4",
                "607:\tfrom all ipproto gre lookup 100",
                "608:\tfrom all ipproto udp sport 1-100 dport 53 lookup 100",
                "700:\tfrom all goto 750 [unresolved]",
                "701:\tfrom all fwmark 0 lookup 5",
                "702:\tfrom all fwmark 0x3/0 lookup 5",
                "707:\tfrom all tun_id 5 lookup 5",
            ]
        );
        assert_eq!(rules[16].unknown_selectors(), vec!["tun_id"]);
        assert!(rules[10].unknown_selectors().is_empty());
        assert_eq!(
            rules[2].add_args(),
            "pref 200 not to 198.18.0.0/16 uidrange 100-200 ipproto tcp sport 1000 dport 80-90 goto 32766"
        );
        assert_eq!(rules[5].add_args(), "pref 500 oif va l3mdev");
        let original: Value = serde_json::from_str(V4).unwrap();
        let emitted = Value::Array(rules.iter().map(Rule::to_value).collect());
        assert_eq!(emitted, original);
    }

    #[test]
    fn unknown_protocol_names_stay_raw() {
        let rules = Rule::parse_doc(
            Family::V6,
            r#"[{"priority":5,"src":"all","ipproto":"quic-ng","table":"5"}]"#,
        )
        .unwrap();
        assert_eq!(rules[0].ipproto, None);
        assert_eq!(rules[0].unknown_selectors(), vec!["ipproto"]);
        assert_eq!(rules[0].to_value()["ipproto"], "quic-ng");
    }

    #[test]
    fn errors_name_the_field() {
        let e = Rule::parse_doc(
            Family::V4,
            r#"[{"priority":5,"src":"all","fwmark":"0xzz","table":"5"}]"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`ip -j rule show`[0]: field `fwmark`: expected a 32-bit number in hex (0x...) or decimal, found \"0xzz\""
        );
        let e = Rule::parse_doc(Family::V4, r#"[{"priority":5,"src":"all"}]"#).unwrap_err();
        assert!(e.to_string().contains("missing field `table`"), "{e}");
        let e = Rule::parse_doc(
            Family::V6,
            r#"[{"priority":5,"src":"198.18.0.0","srclen":8,"table":"5"}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("field `src`"), "{e}");
    }
}
