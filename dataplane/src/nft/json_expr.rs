//! Reading the expressions and statements of libnftables JSON (`man libnftables-json`,
//! EXPRESSIONS and STATEMENTS) into [`Expr`] and [`Stmt`].
//!
//! ```text
//!   {"match": {"op": "==", "left": {"payload": …}, "right": "198.19.0.10"}} -> Stmt::Match
//!   {"vmap": {"key": {"numgen": …}, "data": {"set": [[0, {"goto": …}], …]}}} -> Stmt::Vmap
//!   {"synproxy": …} / {"payload": {"protocol": "ip", "field": "x", "new": 1}} -> Raw
//! ```
//! A known kind with an unknown key or an unknown value (an operator, a numgen mode) is kept
//! whole as raw JSON; a known key holding the wrong JSON type is an error at its path.

use serde_json::Value;

use super::expr::{
    BinOp, Counter, CtDirection, CtExpr, Expr, Fib, Limit, Log, Match, MatchOp, Nat, NatKind,
    Numgen, NumgenMode, Payload, Quota, Reject, RejectType, SetOp, SetStmt, Stmt, Verdict,
};
use super::json_read::{Obj, Path, R, array, single, unexpected};
use super::model::SetElem;

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
pub(super) fn set_item(v: &Value, p: &Path) -> R<SetElem> {
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

pub(super) fn stmts(items: &[Value], p: &Path) -> R<Vec<Stmt>> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| stmt(v, &p.index(i)))
        .collect()
}
