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

use super::expr::{
    BinOp, Counter, CtDirection, CtExpr, Expr, Fib, Limit, Log, Match, MatchOp, Nat, NatKind,
    Numgen, NumgenMode, Payload, Quota, Reject, RejectType, SetOp, SetStmt, Stmt, Verdict,
};
use super::model::{
    BaseChain, Chain, ChainType, Hook, MetaInfo, NamedCounter, NftFamily, Object, Policy, Rule,
    Ruleset, Set, SetElem, SetType, Table,
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
struct Path<'a> {
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
    const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    fn key(&'a self, k: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Key(k),
        }
    }

    fn index(&'a self, i: usize) -> Path<'a> {
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

type R<T> = Result<T, NftParseError>;

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

fn unexpected<T>(p: &Path, expected: &'static str, v: &Value) -> R<T> {
    Err(NftParseError::Unexpected {
        path: p.to_string(),
        expected,
        found: short(v),
    })
}

/// Typed access to the fields of one JSON object.
struct Obj<'v, 'p> {
    map: &'v Map<String, Value>,
    path: &'p Path<'p>,
}

impl<'v, 'p> Obj<'v, 'p> {
    fn new(v: &'v Value, path: &'p Path<'p>, expected: &'static str) -> R<Obj<'v, 'p>> {
        match v {
            Value::Object(map) => Ok(Obj { map, path }),
            other => unexpected(path, expected, other),
        }
    }

    /// Whether every key is one of `known`.
    fn only(&self, known: &[&str]) -> bool {
        self.map.keys().all(|k| known.contains(&k.as_str()))
    }

    /// The keys not in `known`, for `extra`.
    fn extra(&self, known: &[&str]) -> BTreeMap<String, Value> {
        self.map
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn get(&self, k: &str) -> Option<&'v Value> {
        self.map.get(k)
    }

    fn req(&self, k: &'static str) -> R<&'v Value> {
        self.map.get(k).ok_or_else(|| NftParseError::Missing {
            path: self.path.to_string(),
            field: k,
        })
    }

    fn str_req(&self, k: &'static str) -> R<&'v str> {
        let v = self.req(k)?;
        v.as_str()
            .ok_or(())
            .or_else(|_| unexpected(&self.path.key(k), "a string", v))
    }

    fn str_opt(&self, k: &'static str) -> R<Option<String>> {
        match self.map.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => unexpected(&self.path.key(k), "a string", v),
        }
    }

    fn u64_opt(&self, k: &'static str) -> R<Option<u64>> {
        match self.map.get(k) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => unexpected(&self.path.key(k), "a non-negative integer", v),
            },
        }
    }

    fn u64_req(&self, k: &'static str) -> R<u64> {
        let v = self.req(k)?;
        v.as_u64()
            .ok_or(())
            .or_else(|_| unexpected(&self.path.key(k), "a non-negative integer", v))
    }

    fn u32_req(&self, k: &'static str) -> R<u32> {
        let v = self.req(k)?;
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(())
            .or_else(|_| unexpected(&self.path.key(k), "an integer from 0 to 4294967295", v))
    }

    fn bool_opt(&self, k: &'static str) -> R<bool> {
        match self.map.get(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => unexpected(&self.path.key(k), "true or false", v),
        }
    }

    /// A string or an array of strings (nft prints one flag as a string, several as an array).
    fn strings(&self, k: &'static str) -> R<Vec<String>> {
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
fn single(v: &Value) -> Option<(&str, &Value)> {
    match v {
        Value::Object(m) if m.len() == 1 => m.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

fn array<'v>(v: &'v Value, p: &Path, expected: &'static str) -> R<&'v [Value]> {
    match v {
        Value::Array(a) => Ok(a),
        other => unexpected(p, expected, other),
    }
}

/// Parses an expression. Unknown kinds, and known kinds with unknown keys or values, are
/// kept as [`Expr::Raw`].
fn expr(v: &Value, p: &Path) -> R<Expr> {
    Ok(match v {
        Value::Null => Expr::Null,
        Value::Bool(b) => Expr::Bool(*b),
        Value::Number(n) => match n.as_u64() {
            Some(n) => Expr::Number(n),
            None => Expr::Raw(v.clone()),
        },
        Value::String(s) => match s.strip_prefix('@') {
            Some(name) => Expr::SetRef(name.to_string()),
            None => Expr::String(s.clone()),
        },
        Value::Array(items) => Expr::List(exprs(items, p)?),
        Value::Object(_) => match single(v) {
            Some((kind, body)) => {
                let bp = p.key(kind);
                match expr_object(kind, body, &bp)? {
                    Some(e) => e,
                    None => Expr::Raw(v.clone()),
                }
            }
            None => Expr::Raw(v.clone()),
        },
    })
}

fn exprs(items: &[Value], p: &Path) -> R<Vec<Expr>> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| expr(v, &p.index(i)))
        .collect()
}

/// `{"KIND": BODY}` as a typed expression; `None` when it is to be kept raw.
fn expr_object(kind: &str, body: &Value, p: &Path) -> R<Option<Expr>> {
    if let Some(op) = BinOp::parse(kind) {
        let items = array(body, p, "an array [left, right]")?;
        if items.len() != 2 {
            return unexpected(p, "an array [left, right]", body);
        }
        return Ok(Some(Expr::binop(
            op,
            expr(&items[0], &p.index(0))?,
            expr(&items[1], &p.index(1))?,
        )));
    }
    if let Some(v) = verdict(kind, body, p)? {
        return Ok(Some(Expr::Verdict(v)));
    }
    Ok(Some(match kind {
        "concat" => Expr::Concat(exprs(array(body, p, "an array")?, p)?),
        "set" => match body {
            Value::Array(items) => Expr::Set(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| set_item(v, &p.index(i)))
                    .collect::<R<_>>()?,
            ),
            // nft writes a one-element anonymous set as the element itself.
            other => Expr::Set(vec![set_item(other, p)?]),
        },
        "map" => {
            let o = Obj::new(body, p, "an object {key, data}")?;
            if !o.only(&["key", "data"]) {
                return Ok(None);
            }
            Expr::Map {
                key: Box::new(expr(o.req("key")?, &p.key("key"))?),
                data: Box::new(expr(o.req("data")?, &p.key("data"))?),
            }
        }
        "prefix" => {
            let o = Obj::new(body, p, "an object {addr, len}")?;
            if !o.only(&["addr", "len"]) {
                return Ok(None);
            }
            Expr::Prefix {
                addr: Box::new(expr(o.req("addr")?, &p.key("addr"))?),
                len: o.u32_req("len")?,
            }
        }
        "range" => {
            let items = array(body, p, "an array [low, high]")?;
            if items.len() != 2 {
                return unexpected(p, "an array [low, high]", body);
            }
            Expr::Range(
                Box::new(expr(&items[0], &p.index(0))?),
                Box::new(expr(&items[1], &p.index(1))?),
            )
        }
        "payload" => {
            let o = Obj::new(body, p, "an object")?;
            if o.only(&["protocol", "field"]) {
                Expr::Payload(Payload::Field {
                    protocol: o.str_req("protocol")?.to_string(),
                    field: o.str_req("field")?.to_string(),
                })
            } else if o.only(&["base", "offset", "len"]) {
                Expr::Payload(Payload::Raw {
                    base: o.str_req("base")?.to_string(),
                    offset: o.u32_req("offset")?,
                    len: o.u32_req("len")?,
                })
            } else {
                return Ok(None);
            }
        }
        "meta" => {
            let o = Obj::new(body, p, "an object {key}")?;
            if !o.only(&["key"]) {
                return Ok(None);
            }
            Expr::Meta {
                key: o.str_req("key")?.to_string(),
            }
        }
        "ct" => {
            let o = Obj::new(body, p, "an object {key, …}")?;
            if !o.only(&["key", "family", "dir"]) {
                return Ok(None);
            }
            let dir = match o.str_opt("dir")?.as_deref() {
                None => None,
                Some("original") => Some(CtDirection::Original),
                Some("reply") => Some(CtDirection::Reply),
                Some(_) => return Ok(None),
            };
            Expr::Ct(CtExpr {
                key: o.str_req("key")?.to_string(),
                family: o.str_opt("family")?,
                dir,
            })
        }
        "fib" => {
            let o = Obj::new(body, p, "an object {result, flags}")?;
            if !o.only(&["result", "flags"]) {
                return Ok(None);
            }
            Expr::Fib(Fib {
                result: o.str_req("result")?.to_string(),
                flags: o.strings("flags")?,
            })
        }
        "numgen" => {
            let o = Obj::new(body, p, "an object {mode, mod, offset}")?;
            if !o.only(&["mode", "mod", "offset"]) {
                return Ok(None);
            }
            let mode = match o.str_req("mode")? {
                "random" => NumgenMode::Random,
                "inc" => NumgenMode::Inc,
                _ => return Ok(None),
            };
            Expr::Numgen(Numgen {
                mode,
                modulus: o.u32_req("mod")?,
                offset: match o.get("offset") {
                    None => 0,
                    Some(_) => o.u32_req("offset")?,
                },
            })
        }
        _ => return Ok(None),
    }))
}

/// A verdict object (`{"accept": null}`, `{"jump": {"target": "X"}}`); `None` if `kind` is not
/// a verdict.
fn verdict(kind: &str, body: &Value, p: &Path) -> R<Option<Verdict>> {
    let simple = match kind {
        "accept" => Some(Verdict::Accept),
        "drop" => Some(Verdict::Drop),
        "continue" => Some(Verdict::Continue),
        "return" => Some(Verdict::Return),
        "jump" | "goto" => None,
        _ => return Ok(None),
    };
    if let Some(v) = simple {
        return match body {
            Value::Null => Ok(Some(v)),
            Value::Object(m) if m.is_empty() => Ok(Some(v)),
            other => unexpected(p, "null", other),
        };
    }
    let o = Obj::new(body, p, "an object {target}")?;
    let target = o.str_req("target")?.to_string();
    Ok(Some(if kind == "jump" {
        Verdict::Jump(target)
    } else {
        Verdict::Goto(target)
    }))
}

/// An item of a set's `elem` list or of an anonymous set: `VALUE`, `{"elem": {…}}`, or a
/// map item `[KEY, DATA]`.
fn set_item(v: &Value, p: &Path) -> R<SetElem> {
    if let Value::Array(pair) = v {
        if pair.len() != 2 {
            return unexpected(p, "a map element [key, data]", v);
        }
        let mut e = elem_key(&pair[0], &p.index(0))?;
        e.data = Some(expr(&pair[1], &p.index(1))?);
        return Ok(e);
    }
    elem_key(v, p)
}

const ELEM_KEYS: &[&str] = &["val", "timeout", "expires", "comment", "counter"];

fn elem_key(v: &Value, p: &Path) -> R<SetElem> {
    let Some(("elem", body)) = single(v) else {
        return Ok(SetElem::key(expr(v, p)?));
    };
    let bp = p.key("elem");
    let o = Obj::new(body, &bp, "an object {val, …}")?;
    let counter = match o.get("counter") {
        None => None,
        Some(c) => Some(counter(c, &bp.key("counter"))?),
    };
    Ok(SetElem {
        key: expr(o.req("val")?, &bp.key("val"))?,
        data: None,
        timeout: o.u64_opt("timeout")?,
        expires: o.u64_opt("expires")?,
        counter,
        comment: o.str_opt("comment")?,
        extra: o.extra(ELEM_KEYS),
    })
}

fn counter(v: &Value, p: &Path) -> R<Counter> {
    match v {
        Value::Null => Ok(Counter::Anonymous {
            packets: None,
            bytes: None,
        }),
        Value::String(name) => Ok(Counter::Named(name.clone())),
        Value::Object(_) => {
            let o = Obj::new(v, p, "an object {packets, bytes}")?;
            Ok(Counter::Anonymous {
                packets: o.u64_opt("packets")?,
                bytes: o.u64_opt("bytes")?,
            })
        }
        other => unexpected(p, "null, a counter name or {packets, bytes}", other),
    }
}

/// Parses a statement. Unknown kinds, and known kinds with unknown keys or values, are kept
/// as [`Stmt::Raw`].
fn stmt(v: &Value, p: &Path) -> R<Stmt> {
    let Some((kind, body)) = single(v) else {
        return Ok(Stmt::Raw(v.clone()));
    };
    let bp = p.key(kind);
    Ok(stmt_object(kind, body, &bp)?.unwrap_or_else(|| Stmt::Raw(v.clone())))
}

fn stmt_object(kind: &str, body: &Value, p: &Path) -> R<Option<Stmt>> {
    if let Some(v) = verdict(kind, body, p)? {
        return Ok(Some(Stmt::Verdict(v)));
    }
    let obj_or_null = |expected: &'static str| -> R<Option<Obj>> {
        match body {
            Value::Null => Ok(None),
            _ => Obj::new(body, p, expected).map(Some),
        }
    };
    Ok(Some(match kind {
        "match" => {
            let o = Obj::new(body, p, "an object {op, left, right}")?;
            if !o.only(&["op", "left", "right"]) {
                return Ok(None);
            }
            let Some(op) = MatchOp::parse(o.str_req("op")?) else {
                return Ok(None);
            };
            Stmt::Match(Match {
                op,
                left: expr(o.req("left")?, &p.key("left"))?,
                right: expr(o.req("right")?, &p.key("right"))?,
            })
        }
        "vmap" => {
            let o = Obj::new(body, p, "an object {key, data}")?;
            if !o.only(&["key", "data"]) {
                return Ok(None);
            }
            Stmt::Vmap {
                key: expr(o.req("key")?, &p.key("key"))?,
                data: expr(o.req("data")?, &p.key("data"))?,
            }
        }
        "counter" => {
            if let Value::Object(m) = body
                && !m.keys().all(|k| k == "packets" || k == "bytes")
            {
                return Ok(None);
            }
            Stmt::Counter(counter(body, p)?)
        }
        "mangle" => {
            let o = Obj::new(body, p, "an object {key, value}")?;
            if !o.only(&["key", "value"]) {
                return Ok(None);
            }
            Stmt::Mangle {
                key: expr(o.req("key")?, &p.key("key"))?,
                value: expr(o.req("value")?, &p.key("value"))?,
            }
        }
        "snat" | "dnat" | "masquerade" | "redirect" => {
            let nat_kind = match kind {
                "snat" => NatKind::Snat,
                "dnat" => NatKind::Dnat,
                "masquerade" => NatKind::Masquerade,
                _ => NatKind::Redirect,
            };
            let mut nat = Nat::new(nat_kind);
            if let Some(o) = obj_or_null("an object {addr, port, flags, …} or null")? {
                if !o.only(&["family", "addr", "port", "flags", "type_flags"]) {
                    return Ok(None);
                }
                nat.family = o.str_opt("family")?;
                nat.addr = o.get("addr").map(|a| expr(a, &p.key("addr"))).transpose()?;
                nat.port = o.get("port").map(|a| expr(a, &p.key("port"))).transpose()?;
                nat.flags = o.strings("flags")?;
                nat.type_flags = o.strings("type_flags")?;
            }
            Stmt::Nat(nat)
        }
        "reject" => {
            let mut r = Reject::default();
            if let Some(o) = obj_or_null("an object {type, expr} or null")? {
                if !o.only(&["type", "expr"]) {
                    return Ok(None);
                }
                r.kind = match o.str_opt("type")?.as_deref() {
                    None => None,
                    Some("tcp reset") => Some(RejectType::TcpReset),
                    Some("icmp") => Some(RejectType::Icmp),
                    Some("icmpv6") => Some(RejectType::Icmpv6),
                    Some("icmpx") => Some(RejectType::Icmpx),
                    Some(_) => return Ok(None),
                };
                r.code = o.str_opt("expr")?;
            }
            Stmt::Reject(r)
        }
        "log" => {
            let mut l = Log::default();
            if let Some(o) = obj_or_null("an object {prefix, level, …} or null")? {
                if !o.only(&[
                    "prefix",
                    "group",
                    "snaplen",
                    "queue-threshold",
                    "level",
                    "flags",
                ]) {
                    return Ok(None);
                }
                l.prefix = o.str_opt("prefix")?;
                l.group = o.u64_opt("group")?;
                l.snaplen = o.u64_opt("snaplen")?;
                l.queue_threshold = o.u64_opt("queue-threshold")?;
                l.level = o.str_opt("level")?;
                l.flags = o.strings("flags")?;
            }
            Stmt::Log(l)
        }
        "limit" => {
            if !body.is_object() {
                return Ok(None); // a reference to a named limit
            }
            let o = Obj::new(body, p, "an object")?;
            if !o.only(&["rate", "per", "burst", "rate_unit", "burst_unit", "inv"]) {
                return Ok(None);
            }
            Stmt::Limit(Limit {
                rate: o.u64_req("rate")?,
                per: o.str_opt("per")?.unwrap_or_else(|| "second".to_string()),
                burst: o.u64_opt("burst")?,
                rate_unit: o.str_opt("rate_unit")?,
                burst_unit: o.str_opt("burst_unit")?,
                inv: o.bool_opt("inv")?,
            })
        }
        "quota" => {
            if !body.is_object() {
                return Ok(None); // a reference to a named quota
            }
            let o = Obj::new(body, p, "an object")?;
            if !o.only(&["val", "val_unit", "used", "used_unit", "inv"]) {
                return Ok(None);
            }
            Stmt::Quota(Quota {
                val: o.u64_req("val")?,
                val_unit: o
                    .str_opt("val_unit")?
                    .unwrap_or_else(|| "bytes".to_string()),
                used: o.u64_opt("used")?,
                used_unit: o.str_opt("used_unit")?,
                inv: o.bool_opt("inv")?,
            })
        }
        "notrack" => match body {
            Value::Null => Stmt::Notrack,
            _ => return Ok(None),
        },
        "set" => {
            let o = Obj::new(body, p, "an object {op, elem, set}")?;
            if !o.only(&["op", "elem", "set", "stmt"]) {
                return Ok(None);
            }
            let op = match o.str_req("op")? {
                "add" => SetOp::Add,
                "update" => SetOp::Update,
                "delete" => SetOp::Delete,
                _ => return Ok(None),
            };
            let set = o.str_req("set")?;
            let stmts = match o.get("stmt") {
                None => Vec::new(),
                Some(v) => stmts(array(v, &p.key("stmt"), "an array")?, &p.key("stmt"))?,
            };
            Stmt::Set(SetStmt {
                op,
                elem: expr(o.req("elem")?, &p.key("elem"))?,
                set: set.strip_prefix('@').unwrap_or(set).to_string(),
                stmts,
            })
        }
        _ => return Ok(None),
    }))
}

fn stmts(items: &[Value], p: &Path) -> R<Vec<Stmt>> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| stmt(v, &p.index(i)))
        .collect()
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
    tables: HashMap<(NftFamily, String), usize>,
    chains: HashMap<(usize, String), usize>,
}

impl Builder {
    fn table_of(&self, o: &Obj) -> R<usize> {
        let fam = family(o)?;
        let name = o.str_req("table")?;
        self.tables
            .get(&(fam, name.to_string()))
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
        if self.tables.contains_key(&(fam, name.clone())) {
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
        self.tables.insert((fam, name), self.rs.tables.len());
        self.rs.tables.push(t);
        Ok(())
    }

    fn chain(&mut self, o: &Obj) -> R<()> {
        let ti = self.table_of(o)?;
        let name = o.str_req("name")?.to_string();
        if self.chains.contains_key(&(ti, name.clone())) {
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
        self.chains.insert((ti, name), t.chains.len());
        t.chains.push(chain);
        Ok(())
    }

    fn rule(&mut self, o: &Obj) -> R<()> {
        let ti = self.table_of(o)?;
        let chain = o.str_req("chain")?;
        let Some(&ci) = self.chains.get(&(ti, chain.to_string())) else {
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
            self.tables.get(&(fam, name.to_string())).copied()
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
            chains: HashMap::new(),
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
