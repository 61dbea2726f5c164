//! [`RouteState`]: the five `ip -j` documents of a namespace as one value, its JSON form and
//! the `ip -batch` text that recreates its routes and rules.
//!
//! ```text
//!   IpDocuments<&str> --parse--> RouteState --to_documents--> IpDocuments<Value>
//!                                    |  ^
//!                          to_json   v  | from_json     (serde: the same JSON)
//!             {"links":[..],"addresses":[..],"routes":{"ipv4":[..],"ipv6":[..]},"rules":{..}}
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::addr::InterfaceAddrs;
use super::json::{Document, ParseError, into_array, type_name};
use super::link::Link;
use super::names::RouteProtocol;
use super::routes::Route;
use super::rule::Rule;
use crate::packet::Family;

/// The `ip -j` documents of one namespace (text to parse, or values emitted).
#[derive(Debug, Clone, PartialEq)]
pub struct IpDocuments<T> {
    /// `ip -j -d link show`.
    pub link: T,
    /// `ip -j addr show`.
    pub addr: T,
    /// `ip -j -4 route show table all`.
    pub route4: T,
    /// `ip -j -6 route show table all`.
    pub route6: T,
    /// `ip -j rule show`.
    pub rule4: T,
    /// `ip -j -6 rule show`.
    pub rule6: T,
}

/// Kernel settings (sysctls) the routing decision depends on. `None` means unknown: the lookup
/// then uses the value named in the field's doc and lists that as an assumption.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSettings {
    /// `net.ipv4.ip_forward` (`conf/all/forwarding`); assumed 1 (a Kubernetes node forwards).
    pub ipv4_forwarding: Option<bool>,
    /// `net.ipv6.conf.all.forwarding`; assumed 1.
    pub ipv6_forwarding: Option<bool>,
    /// `net.ipv4.conf.all.ignore_routes_with_linkdown`; assumed 0 (kernel default: next hops
    /// without carrier are still used).
    pub ignore_routes_with_linkdown: Option<bool>,
    /// `net.ipv4.conf.all.route_localnet`; assumed 0 (127/8 is martian off loopback).
    pub route_localnet: Option<bool>,
}

/// Links, addresses, routes of every table (both families) and policy rules of a namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteState {
    /// Interfaces (`ip -d link show`), in index order as dumped.
    pub links: Vec<Link>,
    /// Addresses per interface (`ip addr show`), in kernel order.
    pub addresses: Vec<InterfaceAddrs>,
    /// Routes of all tables, IPv4 then IPv6, in dump order.
    pub routes: Vec<Route>,
    /// Policy rules of both families, in dump (priority) order.
    pub rules: Vec<Rule>,
    /// Sysctls the lookup depends on (not part of the `ip -j` documents).
    pub settings: RouteSettings,
}

/// `ip -batch` text per family: run `ip -4 -batch FILE` and `ip -6 -batch FILE` (a batch line
/// cannot carry `-6`, and a rule without addresses needs the family from the command line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpBatch {
    /// Lines for `ip -4 -batch`.
    pub ipv4: String,
    /// Lines for `ip -6 -batch`.
    pub ipv6: String,
}

impl RouteState {
    /// Parses the six `ip -j` outputs of a namespace.
    pub fn parse(docs: &IpDocuments<&str>) -> Result<RouteState, ParseError> {
        let mut routes = Route::parse_doc(Family::V4, docs.route4)?;
        routes.extend(Route::parse_doc(Family::V6, docs.route6)?);
        let mut rules = Rule::parse_doc(Family::V4, docs.rule4)?;
        rules.extend(Rule::parse_doc(Family::V6, docs.rule6)?);
        Ok(RouteState {
            links: Link::parse_doc(docs.link)?,
            addresses: InterfaceAddrs::parse_doc(docs.addr)?,
            routes,
            rules,
            settings: RouteSettings::default(),
        })
    }

    /// The six documents as `ip -j` would print them for this state.
    pub fn to_documents(&self) -> IpDocuments<Value> {
        let routes = |f: Family| {
            Value::Array(
                self.routes
                    .iter()
                    .filter(|r| r.family == f)
                    .map(Route::to_value)
                    .collect(),
            )
        };
        let rules = |f: Family| {
            Value::Array(
                self.rules
                    .iter()
                    .filter(|r| r.family == f)
                    .map(Rule::to_value)
                    .collect(),
            )
        };
        IpDocuments {
            link: Value::Array(self.links.iter().map(Link::to_value).collect()),
            addr: Value::Array(
                self.addresses
                    .iter()
                    .map(InterfaceAddrs::to_value)
                    .collect(),
            ),
            route4: routes(Family::V4),
            route6: routes(Family::V6),
            rule4: rules(Family::V4),
            rule6: rules(Family::V6),
        }
    }

    /// The state as one JSON object:
    /// `{"links", "addresses", "routes": {"ipv4", "ipv6"}, "rules": {"ipv4", "ipv6"}, "settings"}`,
    /// each array holding objects exactly as `ip -j` prints them.
    pub fn to_json(&self) -> Value {
        let d = self.to_documents();
        serde_json::json!({
            "links": d.link,
            "addresses": d.addr,
            "routes": {"ipv4": d.route4, "ipv6": d.route6},
            "rules": {"ipv4": d.rule4, "ipv6": d.rule6},
            "settings": serde_json::to_value(&self.settings).unwrap_or(Value::Null),
        })
    }

    /// Reads the JSON form [`to_json`](RouteState::to_json) writes.
    pub fn from_json(value: &Value) -> Result<RouteState, ParseError> {
        let shape = |expected: &'static str, v: &Value| ParseError::Shape {
            doc: Document::State,
            expected,
            found: type_name(v),
        };
        let obj = value
            .as_object()
            .ok_or_else(|| shape("an object with links, addresses, routes, rules", value))?;
        let get = |k: &str| obj.get(k).cloned().unwrap_or(Value::Array(Vec::new()));
        let per_family = |k: &str| -> Result<(Value, Value), ParseError> {
            match obj.get(k) {
                None => Ok((Value::Array(Vec::new()), Value::Array(Vec::new()))),
                Some(Value::Object(m)) => Ok((
                    m.get("ipv4").cloned().unwrap_or(Value::Array(Vec::new())),
                    m.get("ipv6").cloned().unwrap_or(Value::Array(Vec::new())),
                )),
                Some(other) => Err(shape("`ipv4` and `ipv6` arrays", other)),
            }
        };
        let (r4, r6) = per_family("routes")?;
        let (u4, u6) = per_family("rules")?;
        let mut routes =
            Route::from_values(Family::V4, into_array(Document::Route(Family::V4), r4)?)?;
        routes.extend(Route::from_values(
            Family::V6,
            into_array(Document::Route(Family::V6), r6)?,
        )?);
        let mut rules = Rule::from_values(Family::V4, into_array(Document::Rule(Family::V4), u4)?)?;
        rules.extend(Rule::from_values(
            Family::V6,
            into_array(Document::Rule(Family::V6), u6)?,
        )?);
        let settings = match obj.get("settings") {
            None | Some(Value::Null) => RouteSettings::default(),
            Some(v) => {
                serde_json::from_value(v.clone()).map_err(|_| shape("settings object", v))?
            }
        };
        Ok(RouteState {
            links: Link::from_values(into_array(Document::Link, get("links"))?)?,
            addresses: InterfaceAddrs::from_values(into_array(Document::Addr, get("addresses"))?)?,
            routes,
            rules,
            settings,
        })
    }

    /// Parses the JSON text [`to_json`](RouteState::to_json) writes.
    pub fn from_json_str(text: &str) -> Result<RouteState, ParseError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ParseError::Json {
            doc: Document::State,
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        RouteState::from_json(&value)
    }

    /// The rules of one family, in priority order as dumped.
    pub fn rules(&self, family: Family) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.family == family)
    }

    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.ifname == name)
    }

    /// `ip -batch` lines that recreate this state's routes and rules in a namespace whose links
    /// and addresses already exist.
    ///
    /// Routes with `proto kernel` are left out (the kernel adds them for addresses and links);
    /// routes without a gateway come first so that gateways resolve; a route sharing table,
    /// prefix, TOS and metric with an earlier one is `route append`ed. Rules equal to a default
    /// rule (`0 local`, `32766 main`, `32767 default`) are left out, and a default rule the
    /// state lacks is deleted.
    pub fn to_ip_batch(&self) -> IpBatch {
        let mut batch = IpBatch::default();
        for family in [Family::V4, Family::V6] {
            let out = match family {
                Family::V4 => &mut batch.ipv4,
                Family::V6 => &mut batch.ipv6,
            };
            let mine: Vec<&Rule> = self.rules(family).collect();
            for default in Rule::defaults(family) {
                if !mine.iter().any(|r| **r == default) {
                    out.push_str(&format!("rule del {}\n", default.add_args()));
                }
            }
            let defaults = Rule::defaults(family);
            for rule in mine.iter().filter(|r| !defaults.contains(r)) {
                out.push_str(&format!("rule add {}\n", rule.add_args()));
            }
            let routes: Vec<&Route> = self
                .routes
                .iter()
                .filter(|r| r.family == family && r.protocol != Some(RouteProtocol::KERNEL))
                .collect();
            let has_gateway = |r: &Route| r.nexthops.iter().any(|n| n.gateway.is_some());
            // A second route with the same table, prefix, source, TOS and metric is refused
            // by `route add` (NLM_F_EXCL); `route append` puts it after the first.
            let mut seen = std::collections::BTreeSet::new();
            let ordered = routes
                .iter()
                .filter(|r| !has_gateway(r))
                .chain(routes.iter().filter(|r| has_gateway(r)));
            for route in ordered {
                let key = (
                    route.table.clone(),
                    route.dst,
                    route.src,
                    route.tos,
                    route.metric(),
                );
                let verb = if seen.insert(key) { "add" } else { "append" };
                out.push_str(&format!("route {verb} {}\n", route.add_args()));
            }
        }
        batch
    }
}

impl Serialize for RouteState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for RouteState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RouteState, D::Error> {
        let value = Value::deserialize(d)?;
        RouteState::from_json(&value).map_err(serde::de::Error::custom)
    }
}
