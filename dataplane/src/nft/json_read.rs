//! Reading `nft -j list ruleset` (libnftables JSON schema 1, `man libnftables-json`) into a
//! [`Ruleset`].
//!
//! ```text
//!   {"nftables": [ {"metainfo": …}, {"table": …}, {"counter": …}, {"set"|"map": …},
//!                  {"chain": …}, …, {"rule": {…, "expr": [stmt, …]}}, … ]}
//!        | serde_json::from_str (syntax errors: line, column)
//!        v
//!   serde_json::Value --walk, with a JSON path for every error--> Ruleset
//! ```
//! Why not the `nftables` crate's serde types: checked on nft 1.0.6's output here (see
//! `scripts/fixtures/capture-nft.sh`), nftables 0.6.3 rejects every verdict map kube-proxy
//! writes (`[{"elem": {"val": …, "comment": …}}, {"drop": null}]` and `[{"concat": …},
//! {"goto": …}]` items) and `{"masquerade": {"flags": "fully-random"}}`, drops the `comment` of
//! counter objects and the `stmt` of sets when writing back, and has no place for statements
//! it does not know, so a dump with one unknown statement fails as a whole. Its untagged enums
//! also report errors without a location. So the walk is ours: unknown objects, keys and
//! values are kept raw, and malformed input gets an error naming its JSON path.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Value};

use super::json_expr::{set_item, stmts};
use super::model::{
    BaseChain, Chain, ChainType, Hook, MetaInfo, NamedCounter, NftFamily, Object, Policy, Rule,
    Ruleset, Set, SetType, Table,
};

/// Why a JSON ruleset could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NftParseError {
    /// Not JSON at all (serde_json's message, 1-based line and column).
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// What serde_json says.
        message: String,
    },
    /// A value of the wrong kind.
    #[error("{path}: expected {expected}, found {found}")]
    Unexpected {
        /// JSON path (`nftables[12].rule.expr[0].match.op`).
        path: String,
        /// What was expected.
        expected: &'static str,
        /// What was found (shortened JSON).
        found: String,
    },
    /// A required field is absent.
    #[error("{path}: missing field {field:?}")]
    Missing {
        /// JSON path of the object.
        path: String,
        /// The field.
        field: &'static str,
    },
    /// An object refers to a table or chain that the dump has not declared before it.
    #[error("{path}: {what} {name:?} does not exist{context}")]
    NotFound {
        /// JSON path of the object.
        path: String,
        /// `table` or `chain`.
        what: &'static str,
        /// The name.
        name: String,
        /// ` in table FAMILY NAME`, or empty.
        context: String,
    },
    /// The same table, chain or set twice.
    #[error("{path}: duplicate {what} {name:?}")]
    Duplicate {
        /// JSON path of the second one.
        path: String,
        /// `table`, `chain` or `set`.
        what: &'static str,
        /// The name.
        name: String,
    },
}

/// A position in the JSON document, rendered as `nftables[3].rule.expr[1]`.
#[derive(Clone, Copy)]
pub(super) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    pub(super) const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    pub(super) fn key(&'a self, k: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Key(k),
        }
    }

    pub(super) fn index(&'a self, i: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.parent {
            p.fmt(f)?;
        }
        match self.seg {
            Seg::Root => f.write_str("$"),
            Seg::Key(k) => write!(f, ".{k}"),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

pub(super) type R<T> = Result<T, NftParseError>;

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 80 {
        return s;
    }
    let mut end = 80;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub(super) fn unexpected<T>(p: &Path, expected: &'static str, v: &Value) -> R<T> {
    Err(NftParseError::Unexpected {
        path: p.to_string(),
        expected,
        found: short(v),
    })
}

/// Typed access to the fields of one JSON object.
pub(super) struct Obj<'v, 'p> {
    map: &'v Map<String, Value>,
    pub(super) path: &'p Path<'p>,
}

impl<'v, 'p> Obj<'v, 'p> {
    pub(super) fn new(v: &'v Value, path: &'p Path<'p>, expected: &'static str) -> R<Obj<'v, 'p>> {
        match v {
            Value::Object(map) => Ok(Obj { map, path }),
            other => unexpected(path, expected, other),
        }
    }

    /// Whether every key is one of `known`.
    pub(super) fn only(&self, known: &[&str]) -> bool {
        self.map.keys().all(|k| known.contains(&k.as_str()))
    }

    /// The keys not in `known`, for `extra`.
    pub(super) fn extra(&self, known: &[&str]) -> BTreeMap<String, Value> {
        self.map
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub(super) fn get(&self, k: &str) -> Option<&'v Value> {
        self.map.get(k)
    }

    pub(super) fn req(&self, k: &'static str) -> R<&'v Value> {
        self.map.get(k).ok_or_else(|| NftParseError::Missing {
            path: self.path.to_string(),
            field: k,
        })
    }

    pub(super) fn str_req(&self, k: &'static str) -> R<&'v str> {
        let v = self.req(k)?;
        v.as_str()
            .ok_or(())
            .or_else(|_| unexpected(&self.path.key(k), "a string", v))
    }

    pub(super) fn str_opt(&self, k: &'static str) -> R<Option<String>> {
        match self.map.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => unexpected(&self.path.key(k), "a string", v),
        }
    }

    pub(super) fn u64_opt(&self, k: &'static str) -> R<Option<u64>> {
        match self.map.get(k) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => unexpected(&self.path.key(k), "a non-negative integer", v),
            },
        }
    }

    pub(super) fn u64_req(&self, k: &'static str) -> R<u64> {
        let v = self.req(k)?;
        v.as_u64()
            .ok_or(())
            .or_else(|_| unexpected(&self.path.key(k), "a non-negative integer", v))
    }

    pub(super) fn u32_req(&self, k: &'static str) -> R<u32> {
        let v = self.req(k)?;
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(())
            .or_else(|_| unexpected(&self.path.key(k), "an integer from 0 to 4294967295", v))
    }

    pub(super) fn bool_opt(&self, k: &'static str) -> R<bool> {
        match self.map.get(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => unexpected(&self.path.key(k), "true or false", v),
        }
    }

    /// A string or an array of strings (nft prints one flag as a string, several as an array).
    pub(super) fn strings(&self, k: &'static str) -> R<Vec<String>> {
        let p = self.path.key(k);
        match self.map.get(k) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => unexpected(&p.index(i), "a string", other),
                })
                .collect(),
            Some(v) => unexpected(&p, "a string or an array of strings", v),
        }
    }
}

/// The single key of a `{"KIND": BODY}` object.
pub(super) fn single(v: &Value) -> Option<(&str, &Value)> {
    match v {
        Value::Object(m) if m.len() == 1 => m.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

pub(super) fn array<'v>(v: &'v Value, p: &Path, expected: &'static str) -> R<&'v [Value]> {
    match v {
        Value::Array(a) => Ok(a),
        other => unexpected(p, expected, other),
    }
}

/// A set's `type` or a map's data type: a name or an array of names.
fn set_type(v: &Value, p: &Path) -> R<SetType> {
    match v {
        Value::String(s) => Ok(SetType(vec![s.clone()])),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => unexpected(&p.index(i), "a type name", other),
            })
            .collect::<R<Vec<_>>>()
            .map(SetType),
        other => unexpected(p, "a type name or an array of type names", other),
    }
}

fn family(o: &Obj) -> R<NftFamily> {
    let s = o.str_req("family")?;
    NftFamily::parse(s).ok_or_else(|| NftParseError::Unexpected {
        path: o.path.key("family").to_string(),
        expected: "ip, ip6, inet, arp, bridge or netdev",
        found: format!("{s:?}"),
    })
}

const TABLE_KEYS: &[&str] = &["family", "name", "handle", "flags", "comment"];
const CHAIN_KEYS: &[&str] = &[
    "family", "table", "name", "handle", "type", "hook", "prio", "policy", "dev", "comment",
];
const RULE_KEYS: &[&str] = &["family", "table", "chain", "handle", "comment", "expr"];
const SET_KEYS: &[&str] = &[
    "family",
    "table",
    "name",
    "handle",
    "type",
    "map",
    "flags",
    "timeout",
    "gc-interval",
    "size",
    "policy",
    "stmt",
    "comment",
    "elem",
];
const COUNTER_KEYS: &[&str] = &[
    "family", "table", "name", "handle", "comment", "packets", "bytes",
];

/// Builds a [`Ruleset`] while walking the `nftables` array.
struct Builder {
    rs: Ruleset,
    /// Table index by family, then name.
    tables: HashMap<NftFamily, HashMap<String, usize>>,
    /// Chain index by table index, then name.
    chains: Vec<HashMap<String, usize>>,
}

impl Builder {
    fn table_of(&self, o: &Obj) -> R<usize> {
        let fam = family(o)?;
        let name = o.str_req("table")?;
        self.tables
            .get(&fam)
            .and_then(|m| m.get(name))
            .copied()
            .ok_or_else(|| NftParseError::NotFound {
                path: o.path.to_string(),
                what: "table",
                name: name.to_string(),
                context: format!(" (family {fam})"),
            })
    }

    fn table(&mut self, o: &Obj) -> R<()> {
        let fam = family(o)?;
        let name = o.str_req("name")?.to_string();
        if self.tables.get(&fam).is_some_and(|m| m.contains_key(&name)) {
            return Err(NftParseError::Duplicate {
                path: o.path.to_string(),
                what: "table",
                name,
            });
        }
        let mut t = Table::new(fam, name.clone());
        t.handle = o.u64_opt("handle")?;
        t.flags = o.strings("flags")?;
        t.comment = o.str_opt("comment")?;
        t.extra = o.extra(TABLE_KEYS);
        self.tables
            .entry(fam)
            .or_default()
            .insert(name, self.rs.tables.len());
        self.chains.push(HashMap::new());
        self.rs.tables.push(t);
        Ok(())
    }

    fn chain(&mut self, o: &Obj) -> R<()> {
        let ti = self.table_of(o)?;
        let name = o.str_req("name")?.to_string();
        if self.chains[ti].contains_key(&name) {
            return Err(NftParseError::Duplicate {
                path: o.path.to_string(),
                what: "chain",
                name,
            });
        }
        let base = if o.get("hook").is_some() || o.get("type").is_some() {
            let prio = o.req("prio")?;
            let prio = prio
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or(())
                .or_else(|_| unexpected(&o.path.key("prio"), "an integer priority", prio))?;
            let policy = match o.str_opt("policy")?.as_deref() {
                None => None,
                Some("accept") => Some(Policy::Accept),
                Some("drop") => Some(Policy::Drop),
                Some(other) => {
                    return Err(NftParseError::Unexpected {
                        path: o.path.key("policy").to_string(),
                        expected: "accept or drop",
                        found: format!("{other:?}"),
                    });
                }
            };
            Some(BaseChain {
                chain_type: ChainType::parse(o.str_req("type")?),
                hook: Hook::parse(o.str_req("hook")?),
                prio,
                policy,
                devices: o.strings("dev")?,
            })
        } else {
            None
        };
        let chain = Chain {
            name: name.clone(),
            handle: o.u64_opt("handle")?,
            base,
            comment: o.str_opt("comment")?,
            rules: Vec::new(),
            extra: o.extra(CHAIN_KEYS),
        };
        let t = &mut self.rs.tables[ti];
        self.chains[ti].insert(name, t.chains.len());
        t.chains.push(chain);
        Ok(())
    }

    fn rule(&mut self, o: &Obj) -> R<()> {
        let ti = self.table_of(o)?;
        let chain = o.str_req("chain")?;
        let Some(&ci) = self.chains[ti].get(chain) else {
            let t = &self.rs.tables[ti];
            return Err(NftParseError::NotFound {
                path: o.path.to_string(),
                what: "chain",
                name: chain.to_string(),
                context: format!(" in table {} {}", t.family, t.name),
            });
        };
        let ep = o.path.key("expr");
        let stmts = stmts(array(o.req("expr")?, &ep, "an array of statements")?, &ep)?;
        let rule = Rule {
            handle: o.u64_opt("handle")?,
            comment: o.str_opt("comment")?,
            stmts,
            extra: o.extra(RULE_KEYS),
        };
        self.rs.tables[ti].chains[ci].rules.push(rule);
        Ok(())
    }

    fn set(&mut self, o: &Obj, is_map: bool) -> R<()> {
        let ti = self.table_of(o)?;
        let name = o.str_req("name")?.to_string();
        if self.rs.tables[ti].set(&name).is_some() {
            return Err(NftParseError::Duplicate {
                path: o.path.to_string(),
                what: "set",
                name,
            });
        }
        let map = if is_map {
            Some(set_type(o.req("map")?, &o.path.key("map"))?)
        } else {
            None
        };
        let elements = match o.get("elem") {
            None => Vec::new(),
            Some(v) => {
                let ep = o.path.key("elem");
                array(v, &ep, "an array of elements")?
                    .iter()
                    .enumerate()
                    .map(|(i, v)| set_item(v, &ep.index(i)))
                    .collect::<R<_>>()?
            }
        };
        let set_stmts = match o.get("stmt") {
            None => Vec::new(),
            Some(v) => {
                let sp = o.path.key("stmt");
                stmts(array(v, &sp, "an array of statements")?, &sp)?
            }
        };
        let mut extra = o.extra(SET_KEYS);
        if !is_map && let Some(m) = o.get("map") {
            // A "set" object with a "map" key is not what nft writes; keep it as it came.
            extra.insert("map".to_string(), m.clone());
        }
        let set = Set {
            name,
            handle: o.u64_opt("handle")?,
            key_type: set_type(o.req("type")?, &o.path.key("type"))?,
            map,
            flags: o.strings("flags")?,
            timeout: o.u64_opt("timeout")?,
            gc_interval: o.u64_opt("gc-interval")?,
            size: o.u64_opt("size")?,
            policy: o.str_opt("policy")?,
            stmts: set_stmts,
            comment: o.str_opt("comment")?,
            elements,
            extra,
        };
        self.rs.tables[ti].sets.push(set);
        Ok(())
    }

    fn counter(&mut self, o: &Obj) -> R<()> {
        let ti = self.table_of(o)?;
        let c = NamedCounter {
            name: o.str_req("name")?.to_string(),
            handle: o.u64_opt("handle")?,
            comment: o.str_opt("comment")?,
            packets: o.u64_opt("packets")?.unwrap_or(0),
            bytes: o.u64_opt("bytes")?.unwrap_or(0),
            extra: o.extra(COUNTER_KEYS),
        };
        self.rs.tables[ti].objects.push(Object::Counter(c));
        Ok(())
    }

    fn metainfo(&mut self, o: &Obj) -> R<()> {
        self.rs.metainfo = Some(MetaInfo {
            version: o.str_opt("version")?,
            release_name: o.str_opt("release_name")?,
            json_schema_version: o.u64_opt("json_schema_version")?,
            extra: o.extra(&["version", "release_name", "json_schema_version"]),
        });
        Ok(())
    }

    /// An object kind the code does not model: attached to its table when it names one, else
    /// kept at the top level.
    fn other(&mut self, whole: &Value, kind: &str, body: &Value) {
        let table = body.as_object().and_then(|m| {
            let fam = NftFamily::parse(m.get("family")?.as_str()?)?;
            let name = m.get("table")?.as_str()?;
            self.tables.get(&fam)?.get(name).copied()
        });
        match table {
            Some(ti) => self.rs.tables[ti].objects.push(Object::Raw {
                kind: kind.to_string(),
                body: body.clone(),
            }),
            None => self.rs.extra.push(whole.clone()),
        }
    }
}

impl Ruleset {
    /// Parses the output of `nft -j list ruleset` (or `nft -j list table …`).
    pub fn from_json(text: &str) -> Result<Ruleset, NftParseError> {
        let v: Value = serde_json::from_str(text).map_err(|e| NftParseError::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        Ruleset::from_json_value(&v)
    }

    /// Parses an already decoded JSON document.
    pub fn from_json_value(v: &Value) -> Result<Ruleset, NftParseError> {
        let root = Obj::new(v, &Path::ROOT, "an object {\"nftables\": […]}")?;
        let np = Path::ROOT.key("nftables");
        let items = array(root.req("nftables")?, &np, "an array of objects")?;
        let mut b = Builder {
            rs: Ruleset::default(),
            tables: HashMap::new(),
            chains: Vec::new(),
        };
        for (i, item) in items.iter().enumerate() {
            let ip = np.index(i);
            let Some((kind, body)) = single(item) else {
                return unexpected(&ip, "an object with one key (table, chain, rule, …)", item);
            };
            let kp = ip.key(kind);
            let known = [
                "metainfo", "table", "chain", "rule", "set", "map", "counter",
            ];
            if !known.contains(&kind) {
                b.other(item, kind, body);
                continue;
            }
            let o = Obj::new(body, &kp, "an object")?;
            match kind {
                "metainfo" => b.metainfo(&o)?,
                "table" => b.table(&o)?,
                "chain" => b.chain(&o)?,
                "rule" => b.rule(&o)?,
                "set" => b.set(&o, false)?,
                "map" => b.set(&o, true)?,
                _ => b.counter(&o)?,
            }
        }
        Ok(b.rs)
    }
}
