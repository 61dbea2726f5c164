//! Routes of every table and type, as `ip -j -4|-6 route show table all` prints them.
//!
//! ```text
//!   {"type":"blackhole","dst":"198.18.65.0/24","table":"100","flags":[]}
//!   {"dst":"198.18.66.0/24","nexthops":[{"gateway":"198.18.0.2","dev":"va","weight":2,..},..]}
//!        | Route::parse_doc(family, text)          ^ to_value            ^ Display
//!        v                                         |                     |
//!   Route { kind, dst, table, protocol, scope, prefsrc, metric, nexthops, .., extra }
//!                                                   "198.18.66.0/24 nexthop via 198.18.0.2 dev va weight 2 ..."
//! ```
//!
//! A single-path route has one [`Nexthop`] (gateway, dev and the route's `flags`); a multipath
//! route has `multipath = true` and one per `nexthops` element. Fields `ip` omits when they
//! hold the default (`type` unicast, `table` main, `protocol` boot, `scope` global) stay
//! `None`/default here and are omitted again on output.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::json::{Document, Obj, ParseError, parse_array};
use super::names::{
    NhFlag, RouteProtocol, RouteType, Scope, TableId, dsfield_name, dsfield_number,
};
use crate::packet::Family;

/// The gateway of a next hop.
#[derive(Debug, Clone, PartialEq)]
pub enum Gateway {
    /// `gateway` (`RTA_GATEWAY`): an address of the route's family.
    Inet(IpAddr),
    /// `via {family, host}` (`RTA_VIA`): an IPv6 gateway for an IPv4 route (RFC 5549).
    Via(IpAddr),
    /// A `via` of another family (MPLS, ...), kept raw; the lookup reports it as not modelled.
    Raw(Value),
}

impl Gateway {
    /// The gateway address, unless it is of a family this crate does not model.
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            Gateway::Inet(a) | Gateway::Via(a) => Some(*a),
            Gateway::Raw(_) => None,
        }
    }
}

/// One next hop of a route (`nexthop via GW dev DEV weight W`).
#[derive(Debug, Clone, PartialEq)]
pub struct Nexthop {
    /// Where to send the packet; `None` for a directly attached destination.
    pub gateway: Option<Gateway>,
    /// Output device.
    pub dev: Option<String>,
    /// Multipath weight (`weight`, 1 to 256); `None` for a single-path route.
    pub weight: Option<u16>,
    /// Next-hop flags (`onlink`, `linkdown`, `dead`, ...).
    pub flags: Vec<NhFlag>,
    /// Fields of the next hop this crate does not interpret, kept raw.
    pub extra: Map<String, Value>,
}

impl Nexthop {
    /// A next hop through `dev`, via `gateway` if given.
    pub fn new(gateway: Option<IpAddr>, dev: Option<&str>) -> Nexthop {
        Nexthop {
            gateway: gateway.map(Gateway::Inet),
            dev: dev.map(str::to_string),
            weight: None,
            flags: Vec::new(),
            extra: Map::new(),
        }
    }

    /// Whether the flag is set.
    pub fn has(&self, flag: &NhFlag) -> bool {
        self.flags.contains(flag)
    }

    /// The effective weight (1 when none is printed).
    pub fn weight(&self) -> u16 {
        self.weight.unwrap_or(1)
    }
}

/// A route in some table (`ip route add [TYPE] DST ... table T`).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Address family (which document it came from).
    pub family: Family,
    /// Route type (`type`; unicast when absent).
    pub kind: RouteType,
    /// Destination prefix (`default` is the zero-length prefix).
    pub dst: IpNet,
    /// Source prefix of an IPv6 source-specific route (`from`).
    pub src: Option<IpNet>,
    /// IPv4 TOS selector (`tos`).
    pub tos: Option<u8>,
    /// Table (main when absent).
    pub table: TableId,
    /// Protocol (`proto`); `None` when not printed, which means `boot`.
    pub protocol: Option<RouteProtocol>,
    /// Scope; `None` when not printed, which means `global`.
    pub scope: Option<Scope>,
    /// Preferred source address (`src` in `ip route`, `prefsrc` in JSON).
    pub prefsrc: Option<IpAddr>,
    /// Metric / priority; `None` when not printed (0 for IPv4).
    pub metric: Option<u32>,
    /// The next hops: exactly one unless `multipath`.
    pub nexthops: Vec<Nexthop>,
    /// Whether the route was printed with a `nexthops` array.
    pub multipath: bool,
    /// Route-level flags of a multipath route (single-path flags are on the next hop).
    pub flags: Vec<NhFlag>,
    /// IPv6 router preference (`pref`: `low`, `medium`, `high`).
    pub pref: Option<String>,
    /// Fields this crate does not interpret (`metrics`, `expires`, `nhid`, `encap`, ...), raw.
    pub extra: Map<String, Value>,
}

/// Parses a prefix as `ip` prints it: `default`, a bare address (host prefix) or `addr/len`.
pub fn parse_prefix(text: &str, family: Family) -> Option<IpNet> {
    if text == "default" {
        return Some(match family {
            Family::V4 => IpNet::V4(ipnet::Ipv4Net::default()),
            Family::V6 => IpNet::V6(ipnet::Ipv6Net::default()),
        });
    }
    let net = match text.split_once('/') {
        Some((addr, len)) => {
            let addr: IpAddr = addr.parse().ok()?;
            let len: u8 = len.parse().ok()?;
            IpNet::new(addr, len).ok()?
        }
        None => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    (Family::of(&net.addr()) == family).then_some(net)
}

/// Prints a prefix as `ip` does: `default`, a bare address for a host prefix, else `addr/len`.
pub fn prefix_text(net: &IpNet) -> String {
    if net.prefix_len() == 0 && net.addr().is_unspecified() {
        "default".to_string()
    } else if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "inet",
        Family::V6 => "inet6",
    }
}

impl Route {
    /// A unicast route in the main table through one next hop.
    pub fn unicast(dst: IpNet, gateway: Option<IpAddr>, dev: Option<&str>) -> Route {
        Route {
            family: Family::of(&dst.addr()),
            kind: RouteType::Unicast,
            dst,
            src: None,
            tos: None,
            table: TableId::MAIN,
            protocol: None,
            scope: None,
            prefsrc: None,
            metric: None,
            nexthops: vec![Nexthop::new(gateway, dev)],
            multipath: false,
            flags: Vec::new(),
            pref: None,
            extra: Map::new(),
        }
    }

    /// A route of type `kind` (blackhole, unreachable, ...) with no next hop device.
    pub fn of_type(kind: RouteType, dst: IpNet) -> Route {
        Route {
            kind,
            nexthops: vec![Nexthop::new(None, None)],
            ..Route::unicast(dst, None, None)
        }
    }

    /// The same route in table `table`.
    pub fn in_table(mut self, table: TableId) -> Route {
        self.table = table;
        self
    }

    /// The same route with metric `metric`.
    pub fn with_metric(mut self, metric: u32) -> Route {
        self.metric = Some(metric);
        self
    }

    /// The effective protocol (`boot` when none is printed).
    pub fn protocol(&self) -> RouteProtocol {
        self.protocol.clone().unwrap_or(RouteProtocol::BOOT)
    }

    /// The effective scope (`global` when none is printed).
    pub fn scope(&self) -> Scope {
        self.scope.unwrap_or(Scope::GLOBAL)
    }

    /// The effective metric (0 when none is printed).
    pub fn metric(&self) -> u32 {
        self.metric.unwrap_or(0)
    }

    /// The MTU from `metrics`, if set.
    pub fn mtu(&self) -> Option<u32> {
        let metrics = self.extra.get("metrics")?.as_array()?;
        metrics
            .iter()
            .find_map(|m| m.get("mtu")?.as_u64())
            .and_then(|n| u32::try_from(n).ok())
    }

    /// The device of the first next hop.
    pub fn dev(&self) -> Option<&str> {
        self.nexthops.first()?.dev.as_deref()
    }

    /// Parses `ip -j -4 route show table all` (`family` V4) or `ip -j -6 ...` (V6).
    pub fn parse_doc(family: Family, text: &str) -> Result<Vec<Route>, ParseError> {
        Route::from_values(family, parse_array(Document::Route(family), text)?)
    }

    /// Parses the elements of an already decoded route array.
    pub fn from_values(family: Family, items: Vec<Value>) -> Result<Vec<Route>, ParseError> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| Route::from_value(family, Obj::new(Document::Route(family), i, v)?))
            .collect()
    }

    fn from_value(family: Family, mut o: Obj) -> Result<Route, ParseError> {
        let kind = o
            .opt_str("type")?
            .map(|t| RouteType::parse(&t))
            .unwrap_or(RouteType::Unicast);
        let dst_text = o.req_str("dst")?;
        let dst = parse_prefix(&dst_text, family)
            .ok_or_else(|| o.bad("dst", "a prefix of the document's family", &dst_text.into()))?;
        let src = match o.opt_str("from")? {
            None => None,
            Some(t) => Some(
                parse_prefix(&t, family)
                    .ok_or_else(|| o.bad("from", "a prefix of the route's family", &t.into()))?,
            ),
        };
        let tos = match o.opt_str("tos")? {
            None => None,
            Some(t) => {
                Some(dsfield_number(&t).ok_or_else(|| o.bad("tos", "a TOS value", &t.into()))?)
            }
        };
        let table = o
            .opt_str("table")?
            .map(|t| TableId::parse(&t))
            .unwrap_or(TableId::MAIN);
        let protocol = o.opt_str("protocol")?.map(|p| RouteProtocol::parse(&p));
        let scope = match o.opt_str("scope")? {
            None => None,
            Some(s) => Some(Scope::parse(&s).ok_or_else(|| o.bad("scope", "a scope", &s.into()))?),
        };
        let prefsrc = o.opt_ip_of("prefsrc", family)?;
        let metric = o.opt_u32("metric")?;
        let pref = o.opt_str("pref")?;
        let flags = parse_flags(&mut o, "flags")?;
        let (nexthops, multipath, flags) = match o.opt_array("nexthops")? {
            Some(items) => {
                let mut hops = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let mut n = Obj::nested(o.doc(), o.index(), format!("nexthops[{i}]"), item)?;
                    hops.push(parse_nexthop(&mut n, family, true)?);
                    let extra = n.rest();
                    if let Some(last) = hops.last_mut() {
                        last.extra = extra;
                    }
                }
                (hops, true, flags)
            }
            None => {
                let mut nh = parse_nexthop(&mut o, family, false)?;
                nh.flags = flags;
                (vec![nh], false, Vec::new())
            }
        };
        Ok(Route {
            family,
            kind,
            dst,
            src,
            tos,
            table,
            protocol,
            scope,
            prefsrc,
            metric,
            nexthops,
            multipath,
            flags,
            pref,
            extra: o.rest(),
        })
    }

    /// The object `ip -j route show table all` prints for this route.
    pub fn to_value(&self) -> Value {
        let mut m = self.extra.clone();
        let put = |m: &mut Map<String, Value>, k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        if self.kind != RouteType::Unicast {
            put(&mut m, "type", self.kind.to_string().into());
        }
        put(&mut m, "dst", prefix_text(&self.dst).into());
        if let Some(src) = &self.src {
            put(&mut m, "from", prefix_text(src).into());
        }
        if let Some(tos) = self.tos {
            put(&mut m, "tos", dsfield_name(tos).into());
        }
        if self.table != TableId::MAIN {
            put(&mut m, "table", self.table.to_string().into());
        }
        if let Some(p) = &self.protocol {
            put(&mut m, "protocol", p.to_string().into());
        }
        if let Some(s) = self.scope {
            put(&mut m, "scope", s.to_string().into());
        }
        if let Some(p) = self.prefsrc {
            put(&mut m, "prefsrc", p.to_string().into());
        }
        if let Some(metric) = self.metric {
            put(&mut m, "metric", metric.into());
        }
        if let Some(p) = &self.pref {
            put(&mut m, "pref", p.clone().into());
        }
        if self.multipath {
            put(&mut m, "flags", flags_value(&self.flags));
            let hops = self
                .nexthops
                .iter()
                .map(|nh| {
                    let mut hm = nh.extra.clone();
                    write_nexthop(&mut hm, nh, self.family);
                    if let Some(w) = nh.weight {
                        hm.insert("weight".into(), w.into());
                    }
                    hm.insert("flags".into(), flags_value(&nh.flags));
                    Value::Object(hm)
                })
                .collect();
            put(&mut m, "nexthops", Value::Array(hops));
        } else if let Some(nh) = self.nexthops.first() {
            write_nexthop(&mut m, nh, self.family);
            put(&mut m, "flags", flags_value(&nh.flags));
        }
        Value::Object(m)
    }

    /// The arguments `ip route add` needs to recreate this route (without the `route add`).
    ///
    /// Flags the kernel sets by itself (`linkdown`, `dead`, `offload`, ...) are left out, and
    /// so is a nexthop object id (`nhid`): the gateway and device it resolved to are used.
    pub fn add_args(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out, true);
        out
    }

    fn write_text(&self, out: &mut String, for_add: bool) {
        use std::fmt::Write as _;
        let mut w = |s: &str| {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(s);
        };
        if self.kind != RouteType::Unicast {
            w(&self.kind.to_string());
        }
        w(&prefix_text(&self.dst));
        if let Some(src) = &self.src {
            w(&format!("from {}", prefix_text(src)));
        }
        if let Some(tos) = self.tos {
            w(&format!("tos {}", dsfield_name(tos)));
        }
        if !for_add && let Some(id) = self.extra.get("nhid") {
            w(&format!("nhid {id}"));
        }
        if !self.multipath
            && let Some(nh) = self.nexthops.first()
        {
            nexthop_words(nh, self.family, &mut w);
        }
        if self.table != TableId::MAIN {
            w(&format!("table {}", self.table));
        }
        if let Some(p) = &self.protocol
            && (*p != RouteProtocol::BOOT || for_add)
        {
            w(&format!("proto {p}"));
        }
        if let Some(s) = self.scope
            && (s != Scope::GLOBAL || for_add)
        {
            w(&format!("scope {s}"));
        }
        if let Some(p) = self.prefsrc {
            w(&format!("src {p}"));
        }
        if let Some(metric) = self.metric {
            w(&format!("metric {metric}"));
        }
        let flags = if self.multipath {
            &self.flags
        } else {
            self.nexthops
                .first()
                .map(|n| &n.flags)
                .unwrap_or(&self.flags)
        };
        for f in flags.iter().filter(|f| !for_add || **f == NhFlag::Onlink) {
            w(&f.to_string());
        }
        if let Some(flow) = self.extra.get("flow") {
            let to = flow.get("to").and_then(Value::as_str);
            let from = flow.get("from").and_then(Value::as_str);
            match (from, to) {
                (Some(f), Some(t)) => w(&format!("realms {f}/{t}")),
                (None, Some(t)) => w(&format!("realm {t}")),
                _ => {}
            }
        }
        if !for_add && let Some(e) = self.extra.get("expires").and_then(Value::as_u64) {
            w(&format!("expires {e}sec"));
        }
        if let Some(metrics) = self.extra.get("metrics").and_then(Value::as_array) {
            for m in metrics.iter().filter_map(Value::as_object) {
                let mut keys: Vec<(&String, &Value)> = m.iter().collect();
                keys.sort_by_key(|(k, _)| {
                    RTAX_ORDER
                        .iter()
                        .position(|o| o == k)
                        .unwrap_or(RTAX_ORDER.len())
                });
                for (k, v) in keys {
                    match v {
                        Value::Number(n) => w(&format!("{k} {n}")),
                        Value::String(s) => w(&format!("{k} {s}")),
                        Value::Array(parts) => {
                            let mut s = k.clone();
                            for p in parts {
                                let _ = match p {
                                    Value::String(t) => write!(s, " {t}"),
                                    other => write!(s, " {other}"),
                                };
                            }
                            w(&s);
                        }
                        _ => {}
                    }
                }
            }
        }
        if let Some(p) = &self.pref {
            w(&format!("pref {p}"));
        }
        if self.multipath {
            for nh in &self.nexthops {
                w("nexthop");
                nexthop_words(nh, self.family, &mut w);
                if let Some(weight) = nh.weight {
                    w(&format!("weight {weight}"));
                }
                for f in nh
                    .flags
                    .iter()
                    .filter(|f| !for_add || **f == NhFlag::Onlink)
                {
                    w(&f.to_string());
                }
            }
        }
    }
}

/// `ip route show` text on one line: the multipath `nexthop` lines are joined with spaces,
/// which is also the syntax `ip route add` accepts. `table` is printed unless it is main, as
/// `ip route show table all` does.
impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_text(&mut out, false);
        f.write_str(&out)
    }
}

impl Serialize for Route {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

/// The order iproute2 prints route metrics in (`RTAX_*`).
const RTAX_ORDER: &[&str] = &[
    "lock",
    "mtu",
    "window",
    "rtt",
    "rttvar",
    "ssthresh",
    "cwnd",
    "advmss",
    "reordering",
    "hoplimit",
    "initcwnd",
    "features",
    "rto_min",
    "initrwnd",
    "quickack",
    "congctl",
    "fastopen_no_cookie",
];

fn nexthop_words(nh: &Nexthop, family: Family, w: &mut impl FnMut(&str)) {
    match &nh.gateway {
        Some(Gateway::Inet(a)) if Family::of(a) == family => w(&format!("via {a}")),
        Some(Gateway::Inet(a)) | Some(Gateway::Via(a)) => {
            w(&format!("via {} {a}", family_name(Family::of(a))))
        }
        Some(Gateway::Raw(v)) => w(&format!("via {v}")),
        None => {}
    }
    if let Some(dev) = &nh.dev {
        w(&format!("dev {dev}"));
    }
}

fn flags_value(flags: &[NhFlag]) -> Value {
    Value::Array(flags.iter().map(|f| f.to_string().into()).collect())
}

fn parse_flags(o: &mut Obj, key: &str) -> Result<Vec<NhFlag>, ParseError> {
    Ok(o.opt_strings(key)?
        .unwrap_or_default()
        .iter()
        .map(|f| NhFlag::parse(f))
        .collect())
}

fn parse_nexthop(o: &mut Obj, family: Family, in_array: bool) -> Result<Nexthop, ParseError> {
    let mut gateway = o.opt_ip_of("gateway", family)?.map(Gateway::Inet);
    if let Some(via) = o.take("via") {
        let family_text = via.get("family").and_then(Value::as_str);
        let host = via.get("host").and_then(Value::as_str);
        let parsed = match (family_text, host) {
            (Some("inet"), Some(h)) | (Some("inet6"), Some(h)) => match h.parse::<IpAddr>() {
                Ok(a) if (family_text == Some("inet")) == a.is_ipv4() => Some(Gateway::Via(a)),
                _ => return Err(o.bad("via", "{family, host} with a matching address", &via)),
            },
            (Some(_), Some(_)) => None,
            _ => return Err(o.bad("via", "an object with `family` and `host`", &via)),
        };
        if gateway.is_some() {
            return Err(o.bad("via", "either `gateway` or `via`, not both", &via));
        }
        gateway = Some(parsed.unwrap_or(Gateway::Raw(via)));
    }
    let dev = o.opt_str("dev")?;
    let (weight, flags) = if in_array {
        let weight = match o.opt_u16("weight")? {
            Some(w) if (1..=256).contains(&w) => Some(w),
            Some(w) => return Err(o.bad("weight", "a weight from 1 to 256", &w.into())),
            None => None,
        };
        (weight, parse_flags(o, "flags")?)
    } else {
        (None, Vec::new())
    };
    Ok(Nexthop {
        gateway,
        dev,
        weight,
        flags,
        extra: Map::new(),
    })
}

fn write_nexthop(m: &mut Map<String, Value>, nh: &Nexthop, family: Family) {
    match &nh.gateway {
        Some(Gateway::Inet(a)) => {
            m.insert("gateway".into(), a.to_string().into());
        }
        Some(Gateway::Via(a)) => {
            let mut via = Map::new();
            via.insert("family".into(), family_name(Family::of(a)).into());
            via.insert("host".into(), a.to_string().into());
            m.insert("via".into(), Value::Object(via));
        }
        Some(Gateway::Raw(v)) => {
            m.insert("via".into(), v.clone());
        }
        None => {}
    }
    let _ = family;
    if let Some(dev) = &nh.dev {
        m.insert("dev".into(), dev.clone().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = r#"[
{"dst":"198.18.64.0/24","gateway":"198.18.0.2","dev":"va","table":"100","protocol":"bird","metric":10,"flags":[]},
{"type":"throw","dst":"198.18.68.0/24","table":"100","flags":[]},
{"dst":"198.18.84.0/24","dev":"vc","table":"200","protocol":"static","scope":"link","prefsrc":"198.18.1.1","metric":5,"flags":["linkdown"]},
{"type":"blackhole","dst":"198.18.65.0/24","flags":[]},
{"dst":"198.18.66.0/24","flags":[],"nexthops":[{"gateway":"198.18.0.2","dev":"va","weight":2,"flags":[]},{"gateway":"198.18.0.3","dev":"va","weight":1,"flags":["dead"]}]},
{"dst":"198.18.67.0/24","via":{"family":"inet6","host":"2001:db8:1::2"},"dev":"va","flags":[]},
{"dst":"198.18.80.0/24","gateway":"198.18.1.2","dev":"vc","flags":["linkdown"],"metrics":[{"mtu":1400,"advmss":1300}]},
{"dst":"198.18.81.0/24","tos":"0x10","gateway":"198.18.9.9","dev":"va","flags":["onlink"]},
{"dst":"198.18.83.0/24","nhid":10,"gateway":"198.18.0.2","dev":"va","flags":[]},
{"dst":"198.18.85.0/24","gateway":"198.18.0.2","dev":"va","flags":[],"flow":{"to":"5"}},
{"type":"local","dst":"198.18.0.1","dev":"va","table":"local","protocol":"kernel","scope":"host","prefsrc":"198.18.0.1","flags":[]},
{"dst":"default","gateway":"198.18.0.254","dev":"va","flags":[]}
]"#;

    #[test]
    fn parses_every_kind_and_prints_like_ip_route() {
        let routes = Route::parse_doc(Family::V4, V4).unwrap();
        let text: Vec<String> = routes.iter().map(Route::to_string).collect();
        assert_eq!(
            text,
            [
                "198.18.64.0/24 via 198.18.0.2 dev va table 100 proto bird metric 10",
                "throw 198.18.68.0/24 table 100",
                "198.18.84.0/24 dev vc table 200 proto static scope link src 198.18.1.1 metric 5 linkdown",
                "blackhole 198.18.65.0/24",
                "198.18.66.0/24 nexthop via 198.18.0.2 dev va weight 2 nexthop via 198.18.0.3 dev va weight 1 dead",
                "198.18.67.0/24 via inet6 2001:db8:1::2 dev va",
                "198.18.80.0/24 via 198.18.1.2 dev vc linkdown mtu 1400 advmss 1300",
                "198.18.81.0/24 tos 0x10 via 198.18.9.9 dev va onlink",
                "198.18.83.0/24 nhid 10 via 198.18.0.2 dev va",
                "198.18.85.0/24 via 198.18.0.2 dev va realm 5",
                "local 198.18.0.1 dev va table local proto kernel scope host src 198.18.0.1",
                "default via 198.18.0.254 dev va",
            ]
        );
        assert_eq!(routes[1].kind, RouteType::Throw);
        assert_eq!(routes[4].nexthops[0].weight(), 2);
        assert_eq!(routes[6].mtu(), Some(1400));
        assert_eq!(routes[11].dst.prefix_len(), 0);
        assert_eq!(
            routes[4].add_args(),
            "198.18.66.0/24 nexthop via 198.18.0.2 dev va weight 2 nexthop via 198.18.0.3 dev va weight 1"
        );
        assert_eq!(routes[8].add_args(), "198.18.83.0/24 via 198.18.0.2 dev va");
        let original: Value = serde_json::from_str(V4).unwrap();
        let emitted = Value::Array(routes.iter().map(Route::to_value).collect());
        assert_eq!(emitted, original);
    }

    #[test]
    fn prefixes_follow_ip_conventions() {
        assert_eq!(
            parse_prefix("2001:db8::1", Family::V6).unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert_eq!(
            parse_prefix("default", Family::V6).unwrap().to_string(),
            "::/0"
        );
        assert_eq!(parse_prefix("198.18.0.0/33", Family::V4), None);
        assert_eq!(parse_prefix("198.18.0.0/24", Family::V6), None);
        assert_eq!(prefix_text(&"0.0.0.0/0".parse().unwrap()), "default");
        assert_eq!(prefix_text(&"198.18.0.9/32".parse().unwrap()), "198.18.0.9");
    }

    #[test]
    fn errors_name_field_and_element() {
        let e =
            Route::parse_doc(Family::V6, r#"[{"dst":"198.18.0.0/24","flags":[]}]"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`ip -j -6 route show table all`[0]: field `dst`: expected a prefix of the document's family, found \"198.18.0.0/24\""
        );
        let e = Route::parse_doc(
            Family::V4,
            r#"[{"dst":"default","nexthops":[{"gateway":"198.18.0.1","weight":0}]}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("`nexthops[0].weight`"), "{e}");
    }
}
