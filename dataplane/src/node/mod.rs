//! [`NodeState`]: everything the packet tracer needs to know about one node, as one value.
//!
//! ```text
//!   iptables-nft-save / iptables-legacy-save (v4, v6) ─┐
//!   ipset save ─────────────────────────────────────────┤
//!   ip -j link|addr|route|rule (RouteState) ────────────┼─ NodeState::from_dumps ─> NodeState
//!   sysctl KEY... (Sysctls) ────────────────────────────┤      (serde: the same texts in JSON)
//!   conntrack -L [-f ipv6] (Conntrack) ─────────────────┤
//!   nft -j list ruleset (nft::Ruleset) ─────────────────┤
//!   ipvsadm -Sn (ipvs::IpvsState) ──────────────────────┘
//! ```
//! Both iptables back ends can hold rules at once (the kernel runs both: `iptables-nft` rules
//! live in nf_tables, `iptables-legacy` rules in x_tables); each is kept with its back end.
//! The sysctls feed the routing lookup's settings ([`Sysctls::route_settings`]). The nft dump
//! holds every nf_tables table, those iptables-nft made included; the tracer walks those
//! through the iptables-nft dump when it has one (see [`NodeState::nft_compat_tables`]).
//! Rulesets from dumps are read with [`Ruleset::parse_lazy`]: a rule's spec is typed when a
//! trace first looks into it (a spec that does not parse stays one unknown match, never a
//! silent match); [`NodeState::validate`] types every rule and names the first bad line.

mod sysctl;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use sysctl::{SysctlError, Sysctls};

use crate::conntrack::{Conntrack, ConntrackError};
use crate::ipset::{IpsetError, Sets};
use crate::iptables::{ParseError, Policy, Ruleset};
use crate::ipvs::{IpvsError, IpvsState};
use crate::nft::{self, NftFamily, NftParseError};
use crate::packet::Family;
use crate::route::{self, IpDocuments, RouteState};

/// Which iptables implementation holds a ruleset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Backend {
    /// `iptables-legacy` (x_tables, `/proc/net/ip_tables_names`).
    #[serde(rename = "iptables-legacy")]
    Legacy,
    /// `iptables-nft` (xtables rules in nf_tables tables `ip filter`, `ip nat`, ...).
    #[serde(rename = "iptables-nft")]
    Nft,
}

impl Backend {
    /// The command name (`iptables-nft`, `iptables-legacy`; `ip6tables-…` for IPv6).
    pub fn command(self, family: Family) -> &'static str {
        match (self, family) {
            (Backend::Legacy, Family::V4) => "iptables-legacy",
            (Backend::Nft, Family::V4) => "iptables-nft",
            (Backend::Legacy, Family::V6) => "ip6tables-legacy",
            (Backend::Nft, Family::V6) => "ip6tables-nft",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Legacy => "iptables-legacy",
            Backend::Nft => "iptables-nft",
        })
    }
}

/// One iptables ruleset of a node: a back end and a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesState {
    /// Which implementation holds it.
    pub backend: Backend,
    /// The ruleset (its family is `ruleset.family`).
    pub ruleset: Ruleset,
}

impl IptablesState {
    /// Whether the ruleset can change a packet's fate: it has a rule, or a built-in chain
    /// whose policy is not ACCEPT.
    pub fn is_active(&self) -> bool {
        self.ruleset.tables.iter().any(|t| {
            t.chains()
                .iter()
                .any(|c| !c.rules.is_empty() || c.policy == Some(Policy::Drop))
        })
    }
}

/// What a node dump could not be read from.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// An iptables-save dump.
    #[error("{command}-save: {source}")]
    Iptables {
        /// The command whose output it was.
        command: &'static str,
        /// The parse error (with its line).
        source: ParseError,
    },
    /// The `ipset save` dump.
    #[error("ipset save: {0}")]
    Ipset(#[from] IpsetError),
    /// An `ip -j` document.
    #[error("{0}")]
    Route(#[from] route::ParseError),
    /// The sysctl listing.
    #[error("{0}")]
    Sysctl(#[from] SysctlError),
    /// The conntrack listing.
    #[error("{0}")]
    Conntrack(#[from] ConntrackError),
    /// The `nft -j list ruleset` dump.
    #[error("nft -j list ruleset: {0}")]
    Nft(#[from] NftParseError),
    /// The `ipvsadm -Sn` dump.
    #[error("ipvsadm -Sn: {0}")]
    Ipvs(#[from] IpvsError),
}

/// The text dumps of a node, as the commands print them (empty text for what is absent).
#[derive(Debug, Clone)]
pub struct NodeDumps<'a> {
    /// The node's name.
    pub name: &'a str,
    /// `iptables-save` outputs per back end and family.
    pub iptables: Vec<(Backend, Family, &'a str)>,
    /// `ipset save`.
    pub ipset: &'a str,
    /// The `ip -j` documents.
    pub ip: IpDocuments<&'a str>,
    /// `sysctl KEY...` output.
    pub sysctl: &'a str,
    /// `conntrack -L` (both families concatenated).
    pub conntrack: &'a str,
    /// `nft -j list ruleset` (empty: not collected).
    pub nft: &'a str,
    /// `ipvsadm -Sn` (empty: no IPVS services, or not collected).
    pub ipvs: &'a str,
}

/// Everything the tracer needs about one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeState {
    /// The node's name.
    pub name: String,
    /// iptables rulesets per back end and family.
    pub iptables: Vec<IptablesState>,
    /// ipsets (`ipset save`).
    pub ipsets: Sets,
    /// Links, addresses, routes and rules; its `settings` come from `sysctls`.
    pub routes: RouteState,
    /// Kernel settings.
    pub sysctls: Sysctls,
    /// Connection-tracking entries.
    pub conntrack: Conntrack,
    /// The nftables ruleset (`nft -j list ruleset`), if collected: native tables and those
    /// iptables-nft made.
    pub nft: Option<nft::Ruleset>,
    /// The IPVS table (`ipvsadm -Sn`), if the node has IPVS services.
    pub ipvs: Option<IpvsState>,
}

impl NodeState {
    /// A node with nothing known but its name.
    pub fn new(name: impl Into<String>) -> NodeState {
        NodeState {
            name: name.into(),
            ..NodeState::default()
        }
    }

    /// Adds (or replaces) the ruleset of `backend` for the ruleset's family.
    pub fn with_iptables(mut self, backend: Backend, ruleset: Ruleset) -> NodeState {
        self.set_iptables(backend, ruleset);
        self
    }

    /// Adds (or replaces) the ruleset of `backend` for the ruleset's family.
    pub fn set_iptables(&mut self, backend: Backend, ruleset: Ruleset) {
        let family = ruleset.family;
        self.iptables
            .retain(|s| !(s.backend == backend && s.ruleset.family == family));
        self.iptables.push(IptablesState { backend, ruleset });
        self.iptables.sort_by_key(|s| (s.ruleset.family, s.backend));
    }

    /// With these ipsets.
    pub fn with_ipsets(mut self, sets: Sets) -> NodeState {
        self.ipsets = sets;
        self
    }

    /// With these links, addresses, routes and rules. The routing settings are taken from the
    /// sysctls when any are known.
    pub fn with_routes(mut self, routes: RouteState) -> NodeState {
        self.routes = routes;
        self.sync_route_settings();
        self
    }

    /// With these sysctls (the routing settings follow).
    pub fn with_sysctls(mut self, sysctls: Sysctls) -> NodeState {
        self.sysctls = sysctls;
        self.sync_route_settings();
        self
    }

    /// With these conntrack entries.
    pub fn with_conntrack(mut self, conntrack: Conntrack) -> NodeState {
        self.conntrack = conntrack;
        self
    }

    /// With this nftables ruleset.
    pub fn with_nft(mut self, ruleset: nft::Ruleset) -> NodeState {
        self.nft = Some(ruleset);
        self
    }

    /// With this IPVS table.
    pub fn with_ipvs(mut self, ipvs: IpvsState) -> NodeState {
        self.ipvs = Some(ipvs);
        self
    }

    /// Copies the routing-relevant sysctls into `routes.settings` (when any sysctl is known).
    pub fn sync_route_settings(&mut self) {
        if !self.sysctls.values.is_empty() {
            self.routes.settings = self.sysctls.route_settings();
        }
    }

    /// Parses every dump of a node.
    pub fn from_dumps(d: &NodeDumps<'_>) -> Result<NodeState, NodeError> {
        let mut node = NodeState::new(d.name);
        for (backend, family, text) in &d.iptables {
            let rs = Ruleset::parse_lazy(*family, text).map_err(|source| NodeError::Iptables {
                command: backend.command(*family),
                source,
            })?;
            if !rs.tables.is_empty() {
                node.set_iptables(*backend, rs);
            }
        }
        node.ipsets = Sets::parse(d.ipset)?;
        node.routes = RouteState::parse(&d.ip)?;
        node.sysctls = Sysctls::parse(d.sysctl)?;
        node.conntrack = Conntrack::parse(d.conntrack)?;
        if !d.nft.trim().is_empty() {
            node.nft = Some(nft::Ruleset::from_json(d.nft)?);
        }
        if !d.ipvs.trim().is_empty() {
            node.ipvs = Some(IpvsState::from_save(d.ipvs)?);
        }
        node.sync_route_settings();
        Ok(node)
    }

    /// Types every iptables rule read lazily; the first spec that does not parse, with its
    /// back end and line (`iptables-nft-save: line 7, word 4: …`).
    pub fn validate(&self) -> Result<(), NodeError> {
        for s in &self.iptables {
            s.ruleset.validate().map_err(|source| NodeError::Iptables {
                command: s.backend.command(s.ruleset.family),
                source,
            })?;
        }
        Ok(())
    }

    /// The nft tables that iptables-nft made for `family` and that its dump already holds
    /// (so the tracer walks them once, as iptables), by position in [`NodeState::nft`], each
    /// with the chains the iptables-nft dump does not show (when any, which one holds the
    /// rules is ambiguous).
    ///
    /// A table counts as iptables-nft's when it is an `ip` (IPv4) or `ip6` (IPv6) table named
    /// like an iptables table (`filter`, `nat`, `mangle`, `raw`, `security`) and the
    /// iptables-nft dump of that family has a table of that name.
    pub fn nft_compat_tables(&self, family: Family) -> Vec<(usize, Vec<String>)> {
        let Some(rs) = &self.nft else {
            return Vec::new();
        };
        let own = match family {
            Family::V4 => NftFamily::Ip,
            Family::V6 => NftFamily::Ip6,
        };
        let Some(ipt) = self.iptables(family).find(|s| s.backend == Backend::Nft) else {
            return Vec::new();
        };
        rs.tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.family == own && crate::iptables::builtin_chains(&t.name).is_some())
            .filter_map(|(i, t)| {
                let it = ipt.ruleset.table(&t.name)?;
                let extra = t
                    .chains
                    .iter()
                    .filter(|c| it.chain(&c.name).is_none())
                    .map(|c| c.name.clone())
                    .collect();
                Some((i, extra))
            })
            .collect()
    }

    /// The rulesets of one family, legacy first.
    pub fn iptables(&self, family: Family) -> impl Iterator<Item = &IptablesState> {
        self.iptables
            .iter()
            .filter(move |s| s.ruleset.family == family)
    }

    /// Whether both back ends hold active rulesets for `family` (the kernel runs both).
    pub fn both_backends_active(&self, family: Family) -> bool {
        let active = |b: Backend| {
            self.iptables(family)
                .any(|s| s.backend == b && s.is_active())
        };
        active(Backend::Legacy) && active(Backend::Nft)
    }
}

#[derive(Serialize, Deserialize)]
struct IptablesRepr {
    backend: Backend,
    family: Family,
    save: String,
}

#[derive(Serialize)]
struct NodeReprRef<'a> {
    name: &'a str,
    iptables: Vec<IptablesRepr>,
    ipsets: String,
    routes: &'a RouteState,
    sysctls: &'a Sysctls,
    conntrack: &'a Conntrack,
    #[serde(skip_serializing_if = "Option::is_none")]
    nft: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipvs: Option<String>,
}

#[derive(Deserialize)]
struct NodeRepr {
    name: String,
    #[serde(default)]
    iptables: Vec<IptablesRepr>,
    #[serde(default)]
    ipsets: String,
    #[serde(default)]
    routes: RouteState,
    #[serde(default)]
    sysctls: Sysctls,
    #[serde(default)]
    conntrack: Conntrack,
    #[serde(default)]
    nft: Option<serde_json::Value>,
    #[serde(default)]
    ipvs: Option<String>,
}

/// JSON: `{"name", "iptables": [{"backend", "family", "save": "<iptables-save text>"}],
/// "ipsets": "<ipset save text>", "routes": {..RouteState..}, "sysctls": {key: value},
/// "conntrack": [entries], "nft": {<nft -j list ruleset>}, "ipvs": "<ipvsadm -Sn text>"}`
/// (`nft` and `ipvs` only when known; IPVS counters are not kept).
impl Serialize for NodeState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        NodeReprRef {
            name: &self.name,
            iptables: self
                .iptables
                .iter()
                .map(|i| IptablesRepr {
                    backend: i.backend,
                    family: i.ruleset.family,
                    save: i.ruleset.to_save(),
                })
                .collect(),
            ipsets: self.ipsets.to_save(),
            routes: &self.routes,
            sysctls: &self.sysctls,
            conntrack: &self.conntrack,
            nft: self.nft.as_ref().map(nft::Ruleset::to_json),
            ipvs: self.ipvs.as_ref().map(IpvsState::to_save),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for NodeState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NodeState, D::Error> {
        use serde::de::Error;
        let r = NodeRepr::deserialize(d)?;
        let mut node = NodeState::new(r.name);
        for i in r.iptables {
            let rs = Ruleset::parse_lazy(i.family, &i.save).map_err(|e| {
                D::Error::custom(format!("{}-save: {e}", i.backend.command(i.family)))
            })?;
            node.set_iptables(i.backend, rs);
        }
        node.ipsets =
            Sets::parse(&r.ipsets).map_err(|e| D::Error::custom(format!("ipsets: {e}")))?;
        node.routes = r.routes;
        node.sysctls = r.sysctls;
        node.conntrack = r.conntrack;
        if let Some(v) = r.nft {
            node.nft = Some(
                nft::Ruleset::from_json_value(&v)
                    .map_err(|e| D::Error::custom(format!("nft: {e}")))?,
            );
        }
        if let Some(text) = r.ipvs {
            node.ipvs = Some(
                IpvsState::from_save(&text).map_err(|e| D::Error::custom(format!("ipvs: {e}")))?,
            );
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_every_part() {
        let rs = Ruleset::parse(
            Family::V4,
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
        )
        .unwrap();
        let node = NodeState::new("n1")
            .with_iptables(Backend::Nft, rs)
            .with_sysctls(Sysctls::parse("net.ipv4.ip_forward = 0\n").unwrap())
            .with_conntrack(
                Conntrack::parse("udp      17 29 src=198.18.0.1 dst=198.18.0.2 sport=1 dport=2 [UNREPLIED] src=198.18.0.2 dst=198.18.0.1 sport=2 dport=1 mark=0 use=1\n")
                    .unwrap(),
            );
        assert_eq!(node.routes.settings.ipv4_forwarding, Some(false));
        assert!(node.iptables[0].is_active());
        let json = serde_json::to_string(&node).unwrap();
        let back: NodeState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, node);
        assert!(!node.both_backends_active(Family::V4));
        assert!(
            !json.contains("\"nft\"") && !json.contains("\"ipvs\""),
            "{json}"
        );

        let nft = r#"{"nftables": [{"table": {"family": "inet", "name": "fw", "handle": 1}},
            {"chain": {"family": "inet", "table": "fw", "name": "in", "handle": 1,
             "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}]}"#;
        let ipvs = "-A -t 198.19.0.10:80 -s rr\n-a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1\n";
        let node = node
            .with_nft(nft::Ruleset::from_json(nft).unwrap())
            .with_ipvs(IpvsState::from_save(ipvs).unwrap());
        let json = serde_json::to_string(&node).unwrap();
        let back: NodeState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, node);
        assert_eq!(back.ipvs.unwrap().to_save(), ipvs);
    }

    #[test]
    fn dumps_with_nft_and_ipvs() {
        let ip = IpDocuments {
            link: "[]",
            addr: "[]",
            route4: "[]",
            route6: "[]",
            rule4: "[]",
            rule6: "[]",
        };
        let nft = r#"{"nftables": [{"table": {"family": "ip", "name": "filter", "handle": 1}},
            {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1,
             "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
            {"chain": {"family": "ip", "table": "filter", "name": "extra", "handle": 2}},
            {"table": {"family": "ip", "name": "kube-proxy", "handle": 2}},
            {"table": {"family": "ip6", "name": "filter", "handle": 3}}]}"#;
        let mut d = NodeDumps {
            name: "n1",
            iptables: vec![(
                Backend::Nft,
                Family::V4,
                "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
            )],
            ipset: "",
            ip,
            sysctl: "",
            conntrack: "",
            nft,
            ipvs: "-A -u 198.19.0.53:53 -s rr\n",
        };
        let node = NodeState::from_dumps(&d).unwrap();
        assert_eq!(node.nft.as_ref().unwrap().tables.len(), 3);
        assert_eq!(node.ipvs.as_ref().unwrap().services.len(), 1);
        // ip filter is iptables-nft's (its dump has *filter); `extra` is not in that dump;
        // ip6 filter is not (no ip6tables-nft dump), kube-proxy is not an iptables table
        assert_eq!(
            node.nft_compat_tables(Family::V4),
            vec![(0, vec!["extra".to_string()])]
        );
        assert!(node.nft_compat_tables(Family::V6).is_empty());

        d.nft = "{\"nftables\": [{\"table\": 7}]}";
        let e = NodeState::from_dumps(&d).unwrap_err().to_string();
        assert!(e.starts_with("nft -j list ruleset: "), "{e}");
        d.nft = "";
        d.ipvs = "-A -t 198.19.0.10:80 -s rr\n-a -t 198.19.0.10:80 -r\n";
        let e = NodeState::from_dumps(&d).unwrap_err().to_string();
        assert!(e.starts_with("ipvsadm -Sn: line 2"), "{e}");
    }

    #[test]
    fn dump_errors_name_the_document() {
        let ip = IpDocuments {
            link: "[]",
            addr: "[]",
            route4: "[]",
            route6: "[]",
            rule4: "[]",
            rule6: "[]",
        };
        let mut d = NodeDumps {
            name: "n1",
            iptables: vec![(Backend::Legacy, Family::V6, "*filter\n-A X\n")],
            ipset: "",
            ip,
            sysctl: "",
            conntrack: "",
            nft: "",
            ipvs: "",
        };
        let e = NodeState::from_dumps(&d).unwrap_err().to_string();
        assert!(e.starts_with("ip6tables-legacy-save: line 2"), "{e}");

        // a rule spec is typed on use: from_dumps accepts it, validate names it
        d.iptables = vec![(
            Backend::Nft,
            Family::V4,
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 300.1.1.1 -j DROP\nCOMMIT\n",
        )];
        let node = NodeState::from_dumps(&d).unwrap();
        let e = node.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "iptables-nft-save: line 3, word 4: expected an address[/mask], found \"300.1.1.1\""
        );
        // and never matches: it is one unknown match
        let rule = &node.iptables[0]
            .ruleset
            .chain("filter", "INPUT")
            .unwrap()
            .rules[0];
        assert!(matches!(
            rule.matches(),
            [crate::iptables::Match::Unknown { .. }]
        ));
        assert_eq!(rule.target(), None);
    }
}
