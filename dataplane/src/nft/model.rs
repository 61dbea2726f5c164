//! The nftables ruleset model: tables, their named objects, sets and maps, chains and rules,
//! in the order `nft list ruleset` prints them.
//!
//! ```text
//!   Ruleset { metainfo, tables: [Table { family, name, objects: [counter …],
//!                                       sets: [Set { key_type, map, flags, elements }],
//!                                       chains: [Chain { base: Some(BaseChain { type, hook,
//!                                                prio, policy }), rules: [Rule { stmts }] }] }] }
//! ```
//! Fields the code does not know are kept per object in `extra` (JSON values) and written back.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::expr::{Counter, Expr, Stmt};

/// An nftables address family (`nft list tables`: `ip`, `ip6`, `inet`, `arp`, `bridge`,
/// `netdev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NftFamily {
    /// `ip`: IPv4 only.
    Ip,
    /// `ip6`: IPv6 only.
    Ip6,
    /// `inet`: IPv4 and IPv6 in one table.
    Inet,
    /// `arp`.
    Arp,
    /// `bridge`: frames crossing a bridge.
    Bridge,
    /// `netdev`: ingress/egress of one device.
    Netdev,
}

impl NftFamily {
    /// The family as nft writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            NftFamily::Ip => "ip",
            NftFamily::Ip6 => "ip6",
            NftFamily::Inet => "inet",
            NftFamily::Arp => "arp",
            NftFamily::Bridge => "bridge",
            NftFamily::Netdev => "netdev",
        }
    }

    /// Parses a family name.
    pub fn parse(s: &str) -> Option<NftFamily> {
        Some(match s {
            "ip" => NftFamily::Ip,
            "ip6" => NftFamily::Ip6,
            "inet" => NftFamily::Inet,
            "arp" => NftFamily::Arp,
            "bridge" => NftFamily::Bridge,
            "netdev" => NftFamily::Netdev,
            _ => return None,
        })
    }
}

impl fmt::Display for NftFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A netfilter hook a base chain attaches to (`hook prerouting`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `prerouting` (NF_INET_PRE_ROUTING).
    Prerouting,
    /// `input` (NF_INET_LOCAL_IN).
    Input,
    /// `forward` (NF_INET_FORWARD).
    Forward,
    /// `output` (NF_INET_LOCAL_OUT).
    Output,
    /// `postrouting` (NF_INET_POST_ROUTING).
    Postrouting,
    /// `ingress` (netdev, and inet since Linux 5.10).
    Ingress,
    /// `egress` (netdev).
    Egress,
    /// Any other hook name.
    Other(String),
}

impl Hook {
    /// The hook as nft writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
            Hook::Ingress => "ingress",
            Hook::Egress => "egress",
            Hook::Other(s) => s,
        }
    }

    /// Parses a hook name; unknown names are kept as [`Hook::Other`].
    pub fn parse(s: &str) -> Hook {
        match s {
            "prerouting" => Hook::Prerouting,
            "input" => Hook::Input,
            "forward" => Hook::Forward,
            "output" => Hook::Output,
            "postrouting" => Hook::Postrouting,
            "ingress" => Hook::Ingress,
            "egress" => Hook::Egress,
            other => Hook::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A base chain's type (`type filter|nat|route`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChainType {
    /// `filter`.
    Filter,
    /// `nat`: consulted for the first packet of a connection only.
    Nat,
    /// `route`: re-routes the packet when it changes mark or addresses (output hook).
    Route,
    /// Any other type name.
    Other(String),
}

impl ChainType {
    /// The type as nft writes it.
    pub fn as_str(&self) -> &str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
            ChainType::Other(s) => s,
        }
    }

    /// Parses a chain type; unknown names are kept as [`ChainType::Other`].
    pub fn parse(s: &str) -> ChainType {
        match s {
            "filter" => ChainType::Filter,
            "nat" => ChainType::Nat,
            "route" => ChainType::Route,
            other => ChainType::Other(other.to_string()),
        }
    }
}

/// A base chain's policy (`policy accept|drop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
}

impl Policy {
    /// The policy as nft writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        }
    }
}

/// What makes a chain a base chain: `type T hook H [device D] priority P; policy X;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// The chain type.
    pub chain_type: ChainType,
    /// The hook.
    pub hook: Hook,
    /// The priority as a number (`nft -j` prints numbers; see [`super::priority_text`]).
    pub prio: i32,
    /// The policy; `None` when the dump gives none.
    pub policy: Option<Policy>,
    /// Devices of a netdev (or inet ingress) chain. nft 1.0.6's JSON leaves them out.
    pub devices: Vec<String>,
}

/// A rule: statements evaluated left to right (`nft list ruleset` prints one per line).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rule {
    /// Kernel handle (`nft -a`), if known.
    pub handle: Option<u64>,
    /// `comment "…"`.
    pub comment: Option<String>,
    /// Statements in order.
    pub stmts: Vec<Stmt>,
    /// Unknown JSON fields, written back as they were.
    pub extra: BTreeMap<String, Value>,
}

impl Rule {
    /// A rule of these statements.
    pub fn new(stmts: Vec<Stmt>) -> Rule {
        Rule {
            stmts,
            ..Rule::default()
        }
    }

    /// The same rule with `comment "…"`.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Rule {
        self.comment = Some(comment.into());
        self
    }
}

/// A chain: a base chain (attached to a hook) or a regular chain (reached by jump/goto).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chain {
    /// Name.
    pub name: String,
    /// Kernel handle, if known.
    pub handle: Option<u64>,
    /// Hook attachment; `None` for a regular chain.
    pub base: Option<BaseChain>,
    /// `comment "…"` (nft 1.0.6 prints it in text only, not in JSON).
    pub comment: Option<String>,
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// Unknown JSON fields.
    pub extra: BTreeMap<String, Value>,
}

impl Chain {
    /// A regular chain with these rules.
    pub fn regular(name: impl Into<String>, rules: Vec<Rule>) -> Chain {
        Chain {
            name: name.into(),
            rules,
            ..Chain::default()
        }
    }

    /// A base chain with these rules.
    pub fn base(name: impl Into<String>, base: BaseChain, rules: Vec<Rule>) -> Chain {
        Chain {
            name: name.into(),
            base: Some(base),
            rules,
            ..Chain::default()
        }
    }
}

/// A set or map key/data type: one type name, or a concatenation (`ipv4_addr . inet_proto .
/// inet_service`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SetType(pub Vec<String>);

impl SetType {
    /// One type name.
    pub fn one(name: &str) -> SetType {
        SetType(vec![name.to_string()])
    }

    /// A concatenation of type names.
    pub fn concat(names: &[&str]) -> SetType {
        SetType(names.iter().map(|s| s.to_string()).collect())
    }
}

impl fmt::Display for SetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" . "))
    }
}

/// One element of a set or map, named or anonymous: the key, the mapped data for maps, and
/// per-element attributes (`timeout`, `expires`, `counter`, `comment`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SetElem {
    /// The key: a value, prefix, range or concatenation.
    pub key: Expr,
    /// The data of a map element (a verdict for verdict maps).
    pub data: Option<Expr>,
    /// Element timeout in seconds, when it differs from the set's.
    pub timeout: Option<u64>,
    /// Seconds until the element expires (what the dump saw).
    pub expires: Option<u64>,
    /// Per-element counter.
    pub counter: Option<Counter>,
    /// `comment "…"`.
    pub comment: Option<String>,
    /// Unknown attributes of the element (JSON keys of its `elem` object).
    pub extra: BTreeMap<String, Value>,
}

impl SetElem {
    /// A set element.
    pub fn key(key: Expr) -> SetElem {
        SetElem {
            key,
            ..SetElem::default()
        }
    }

    /// A map element `key : data`.
    pub fn map(key: Expr, data: Expr) -> SetElem {
        SetElem {
            key,
            data: Some(data),
            ..SetElem::default()
        }
    }

    /// Whether the element has attributes (JSON then wraps it in an `elem` object).
    pub fn has_attributes(&self) -> bool {
        self.timeout.is_some()
            || self.expires.is_some()
            || self.counter.is_some()
            || self.comment.is_some()
            || !self.extra.is_empty()
    }
}

/// A named set (`set NAME { … }`) or map (`map NAME { … }`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Set {
    /// Name (referenced as `@NAME`).
    pub name: String,
    /// Kernel handle, if known.
    pub handle: Option<u64>,
    /// Key type (`type …`; nft 1.0.6's JSON turns `typeof` into the type).
    pub key_type: SetType,
    /// For a map: the data type (`verdict`, `mark`, `ipv4_addr . inet_service`, …).
    pub map: Option<SetType>,
    /// `flags`: `constant`, `interval`, `timeout`, `dynamic` (nft 1.0.6's JSON omits
    /// `dynamic`).
    pub flags: Vec<String>,
    /// Default element timeout in seconds.
    pub timeout: Option<u64>,
    /// Garbage-collection interval in seconds.
    pub gc_interval: Option<u64>,
    /// Maximum number of elements.
    pub size: Option<u64>,
    /// `policy performance|memory`.
    pub policy: Option<String>,
    /// Statements attached to every element (`counter`).
    pub stmts: Vec<Stmt>,
    /// `comment "…"`.
    pub comment: Option<String>,
    /// Elements, in dump order.
    pub elements: Vec<SetElem>,
    /// Unknown JSON fields.
    pub extra: BTreeMap<String, Value>,
}

impl Set {
    /// Whether this is a map.
    pub fn is_map(&self) -> bool {
        self.map.is_some()
    }

    /// Whether the set has flag `flag` (`interval`, `timeout`, …).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// A named counter object (`counter NAME { packets P bytes B }`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamedCounter {
    /// Name (referenced by `counter name "NAME"`).
    pub name: String,
    /// Kernel handle, if known.
    pub handle: Option<u64>,
    /// `comment "…"`.
    pub comment: Option<String>,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
    /// Unknown JSON fields.
    pub extra: BTreeMap<String, Value>,
}

/// A stateful object of a table: a named counter, or any other kind kept raw (quota, limit,
/// ct helper, ct timeout, flowtable, …).
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// `counter NAME { … }`.
    Counter(NamedCounter),
    /// Any other object: its JSON kind (`quota`, `flowtable`, …) and body, written back as is.
    Raw {
        /// The JSON key (`quota`, `limit`, `ct helper`, `flowtable`, …).
        kind: String,
        /// The object body.
        body: Value,
    },
}

/// A table: named objects, sets and maps, and chains.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Family.
    pub family: NftFamily,
    /// Name.
    pub name: String,
    /// Kernel handle, if known.
    pub handle: Option<u64>,
    /// `flags` (`dormant`, `owner`).
    pub flags: Vec<String>,
    /// `comment "…"` (nft 1.0.6 prints it in text only, not in JSON).
    pub comment: Option<String>,
    /// Named objects in dump order.
    pub objects: Vec<Object>,
    /// Named sets and maps in dump order.
    pub sets: Vec<Set>,
    /// Chains in dump order.
    pub chains: Vec<Chain>,
    /// Unknown JSON fields.
    pub extra: BTreeMap<String, Value>,
}

impl Table {
    /// An empty table.
    pub fn new(family: NftFamily, name: impl Into<String>) -> Table {
        Table {
            family,
            name: name.into(),
            handle: None,
            flags: Vec::new(),
            comment: None,
            objects: Vec::new(),
            sets: Vec::new(),
            chains: Vec::new(),
            extra: BTreeMap::new(),
        }
    }

    /// The chain named `name`.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// The chain named `name`, mutably.
    pub fn chain_mut(&mut self, name: &str) -> Option<&mut Chain> {
        self.chains.iter_mut().find(|c| c.name == name)
    }

    /// The set or map named `name` (without the `@`).
    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// The set or map named `name`, mutably.
    pub fn set_mut(&mut self, name: &str) -> Option<&mut Set> {
        self.sets.iter_mut().find(|s| s.name == name)
    }

    /// The named counter `name`.
    pub fn counter(&self, name: &str) -> Option<&NamedCounter> {
        self.objects.iter().find_map(|o| match o {
            Object::Counter(c) if c.name == name => Some(c),
            _ => None,
        })
    }

    /// Number of rules in all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}

/// `metainfo` of a JSON dump: which nft wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaInfo {
    /// nft version (`1.0.6`).
    pub version: Option<String>,
    /// Release name.
    pub release_name: Option<String>,
    /// JSON schema version (1).
    pub json_schema_version: Option<u64>,
    /// Unknown fields.
    pub extra: BTreeMap<String, Value>,
}

/// A whole ruleset, as `nft list ruleset` shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ruleset {
    /// The dump's `metainfo`, if any.
    pub metainfo: Option<MetaInfo>,
    /// Tables in dump order.
    pub tables: Vec<Table>,
    /// Top-level JSON objects that belong to no known table and that the code does not know,
    /// written back after the tables.
    pub extra: Vec<Value>,
}

impl Ruleset {
    /// The table `family name`.
    pub fn table(&self, family: NftFamily, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.family == family && t.name == name)
    }

    /// The table `family name`, mutably.
    pub fn table_mut(&mut self, family: NftFamily, name: &str) -> Option<&mut Table> {
        self.tables
            .iter_mut()
            .find(|t| t.family == family && t.name == name)
    }

    /// Number of rules in all tables.
    pub fn rule_count(&self) -> usize {
        self.tables.iter().map(Table::rule_count).sum()
    }
}
