//! Writing a [`Ruleset`] back as libnftables JSON, in the shape and order `nft -j list
//! ruleset` uses: per table the table, its objects, sets and maps, chains, then the rules of
//! each chain in chain order.
//!
//! ```text
//!   Ruleset --to_json()--> {"nftables": [metainfo, table, objects…, sets…, chains…, rules…, …]}
//! ```
//! A dump nft wrote reads back to the identical JSON value; raw parts are written as they came.

use serde_json::{Map, Value, json};

use super::expr::{Counter, Expr, Payload, Stmt, Verdict};
use super::model::{Chain, Object, Rule, Ruleset, Set, SetElem, SetType, Table};

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

fn one(kind: &str, body: Value) -> Value {
    obj(vec![(kind, body)])
}

/// nft's convention for flag lists in statements: one flag as a string, several as an array.
fn flags(f: &[String]) -> Value {
    match f {
        [one] => Value::String(one.clone()),
        many => Value::Array(many.iter().cloned().map(Value::String).collect()),
    }
}

fn strings(f: &[String]) -> Value {
    Value::Array(f.iter().cloned().map(Value::String).collect())
}

fn set_type(t: &SetType) -> Value {
    match t.0.as_slice() {
        [one] => Value::String(one.clone()),
        many => strings(many),
    }
}

fn extend(v: &mut Value, extra: &std::collections::BTreeMap<String, Value>) {
    if let Value::Object(m) = v {
        for (k, x) in extra {
            m.insert(k.clone(), x.clone());
        }
    }
}

fn insert_opt(v: &mut Value, key: &str, x: Option<Value>) {
    if let (Value::Object(m), Some(x)) = (v, x) {
        m.insert(key.to_string(), x);
    }
}

/// The JSON form of a verdict.
pub(crate) fn verdict_json(v: &Verdict) -> Value {
    match v {
        Verdict::Jump(t) | Verdict::Goto(t) => one(v.keyword(), json!({ "target": t })),
        _ => one(v.keyword(), Value::Null),
    }
}

/// The JSON form of an expression.
pub fn expr_json(e: &Expr) -> Value {
    match e {
        Expr::Number(n) => json!(n),
        Expr::String(s) => json!(s),
        Expr::Bool(b) => json!(b),
        Expr::SetRef(name) => json!(format!("@{name}")),
        Expr::List(items) => Value::Array(items.iter().map(expr_json).collect()),
        Expr::Prefix { addr, len } => one(
            "prefix",
            obj(vec![("addr", expr_json(addr)), ("len", json!(len))]),
        ),
        Expr::Range(a, b) => one("range", json!([expr_json(a), expr_json(b)])),
        Expr::Concat(parts) => one(
            "concat",
            Value::Array(parts.iter().map(expr_json).collect()),
        ),
        Expr::Set(items) => one("set", Value::Array(items.iter().map(elem_json).collect())),
        Expr::Map { key, data } => one(
            "map",
            obj(vec![("key", expr_json(key)), ("data", expr_json(data))]),
        ),
        Expr::Payload(Payload::Field { protocol, field }) => one(
            "payload",
            obj(vec![("protocol", json!(protocol)), ("field", json!(field))]),
        ),
        Expr::Payload(Payload::Raw { base, offset, len }) => one(
            "payload",
            obj(vec![
                ("base", json!(base)),
                ("offset", json!(offset)),
                ("len", json!(len)),
            ]),
        ),
        Expr::Meta { key } => one("meta", json!({ "key": key })),
        Expr::Ct(ct) => {
            let mut body = json!({ "key": ct.key });
            insert_opt(&mut body, "family", ct.family.clone().map(Value::String));
            insert_opt(&mut body, "dir", ct.dir.map(|d| json!(d.as_str())));
            one("ct", body)
        }
        Expr::Fib(f) => one(
            "fib",
            obj(vec![
                ("result", json!(f.result)),
                ("flags", strings(&f.flags)),
            ]),
        ),
        Expr::Numgen(n) => one(
            "numgen",
            obj(vec![
                (
                    "mode",
                    json!(match n.mode {
                        super::expr::NumgenMode::Random => "random",
                        super::expr::NumgenMode::Inc => "inc",
                    }),
                ),
                ("mod", json!(n.modulus)),
                ("offset", json!(n.offset)),
            ]),
        ),
        Expr::Binop(op, l, r) => one(op.symbol(), json!([expr_json(l), expr_json(r)])),
        Expr::Verdict(v) => verdict_json(v),
        Expr::Raw(v) => v.clone(),
        Expr::Null => Value::Null,
    }
}

fn counter_json(c: &Counter) -> Value {
    match c {
        Counter::Named(n) => json!(n),
        Counter::Anonymous {
            packets: None,
            bytes: None,
        } => Value::Null,
        Counter::Anonymous { packets, bytes } => {
            let mut body = json!({});
            insert_opt(&mut body, "packets", packets.map(|n| json!(n)));
            insert_opt(&mut body, "bytes", bytes.map(|n| json!(n)));
            body
        }
    }
}

/// The JSON form of a set element: the key, `{"elem": {…}}` when it has attributes, and
/// `[key, data]` for a map element.
pub(crate) fn elem_json(e: &SetElem) -> Value {
    let key = if e.has_attributes() {
        let mut body = json!({ "val": expr_json(&e.key) });
        insert_opt(&mut body, "timeout", e.timeout.map(|n| json!(n)));
        insert_opt(&mut body, "expires", e.expires.map(|n| json!(n)));
        insert_opt(&mut body, "counter", e.counter.as_ref().map(counter_json));
        insert_opt(&mut body, "comment", e.comment.clone().map(Value::String));
        extend(&mut body, &e.extra);
        one("elem", body)
    } else {
        expr_json(&e.key)
    };
    match &e.data {
        Some(d) => json!([key, expr_json(d)]),
        None => key,
    }
}

/// The JSON form of a statement.
pub fn stmt_json(s: &Stmt) -> Value {
    match s {
        Stmt::Match(m) => one(
            "match",
            obj(vec![
                ("op", json!(m.op.symbol())),
                ("left", expr_json(&m.left)),
                ("right", expr_json(&m.right)),
            ]),
        ),
        Stmt::Verdict(v) => verdict_json(v),
        Stmt::Vmap { key, data } => one(
            "vmap",
            obj(vec![("key", expr_json(key)), ("data", expr_json(data))]),
        ),
        Stmt::Counter(c) => one("counter", counter_json(c)),
        Stmt::Mangle { key, value } => one(
            "mangle",
            obj(vec![("key", expr_json(key)), ("value", expr_json(value))]),
        ),
        Stmt::Nat(n) => {
            let mut body = json!({});
            insert_opt(&mut body, "family", n.family.clone().map(Value::String));
            insert_opt(&mut body, "addr", n.addr.as_ref().map(expr_json));
            insert_opt(&mut body, "port", n.port.as_ref().map(expr_json));
            if !n.flags.is_empty() {
                insert_opt(&mut body, "flags", Some(flags(&n.flags)));
            }
            if !n.type_flags.is_empty() {
                insert_opt(&mut body, "type_flags", Some(flags(&n.type_flags)));
            }
            let empty = body.as_object().is_some_and(Map::is_empty);
            one(n.kind.keyword(), if empty { Value::Null } else { body })
        }
        Stmt::Reject(r) => {
            if r.kind.is_none() && r.code.is_none() {
                return one("reject", Value::Null);
            }
            let mut body = json!({});
            insert_opt(&mut body, "type", r.kind.map(|k| json!(k.as_str())));
            insert_opt(&mut body, "expr", r.code.clone().map(Value::String));
            one("reject", body)
        }
        Stmt::Log(l) => {
            let mut body = json!({});
            insert_opt(&mut body, "prefix", l.prefix.clone().map(Value::String));
            insert_opt(&mut body, "group", l.group.map(|n| json!(n)));
            insert_opt(&mut body, "snaplen", l.snaplen.map(|n| json!(n)));
            insert_opt(
                &mut body,
                "queue-threshold",
                l.queue_threshold.map(|n| json!(n)),
            );
            insert_opt(&mut body, "level", l.level.clone().map(Value::String));
            if !l.flags.is_empty() {
                insert_opt(&mut body, "flags", Some(flags(&l.flags)));
            }
            let empty = body.as_object().is_some_and(Map::is_empty);
            one("log", if empty { Value::Null } else { body })
        }
        Stmt::Limit(l) => {
            let mut body = json!({ "rate": l.rate });
            insert_opt(&mut body, "burst", l.burst.map(|n| json!(n)));
            insert_opt(&mut body, "per", Some(json!(l.per)));
            insert_opt(
                &mut body,
                "rate_unit",
                l.rate_unit.clone().map(Value::String),
            );
            insert_opt(
                &mut body,
                "burst_unit",
                l.burst_unit.clone().map(Value::String),
            );
            if l.inv {
                insert_opt(&mut body, "inv", Some(json!(true)));
            }
            one("limit", body)
        }
        Stmt::Quota(q) => {
            let mut body = json!({ "val": q.val, "val_unit": q.val_unit });
            insert_opt(&mut body, "used", q.used.map(|n| json!(n)));
            insert_opt(
                &mut body,
                "used_unit",
                q.used_unit.clone().map(Value::String),
            );
            if q.inv {
                insert_opt(&mut body, "inv", Some(json!(true)));
            }
            one("quota", body)
        }
        Stmt::Notrack => one("notrack", Value::Null),
        Stmt::Set(s) => {
            let mut body = obj(vec![
                ("op", json!(s.op.keyword())),
                ("elem", expr_json(&s.elem)),
                ("set", json!(format!("@{}", s.set))),
            ]);
            if !s.stmts.is_empty() {
                insert_opt(
                    &mut body,
                    "stmt",
                    Some(Value::Array(s.stmts.iter().map(stmt_json).collect())),
                );
            }
            one("set", body)
        }
        Stmt::Raw(v) => v.clone(),
    }
}

fn table_ref(t: &Table) -> Vec<(&'static str, Value)> {
    vec![
        ("family", json!(t.family.as_str())),
        ("table", json!(t.name)),
    ]
}

fn set_json(t: &Table, s: &Set) -> Value {
    let mut body = obj(vec![
        ("family", json!(t.family.as_str())),
        ("name", json!(s.name)),
        ("table", json!(t.name)),
        ("type", set_type(&s.key_type)),
    ]);
    insert_opt(&mut body, "handle", s.handle.map(|n| json!(n)));
    insert_opt(&mut body, "map", s.map.as_ref().map(set_type));
    if !s.flags.is_empty() {
        insert_opt(&mut body, "flags", Some(strings(&s.flags)));
    }
    insert_opt(&mut body, "timeout", s.timeout.map(|n| json!(n)));
    insert_opt(&mut body, "gc-interval", s.gc_interval.map(|n| json!(n)));
    insert_opt(&mut body, "size", s.size.map(|n| json!(n)));
    insert_opt(&mut body, "policy", s.policy.clone().map(Value::String));
    insert_opt(&mut body, "comment", s.comment.clone().map(Value::String));
    if !s.elements.is_empty() {
        insert_opt(
            &mut body,
            "elem",
            Some(Value::Array(s.elements.iter().map(elem_json).collect())),
        );
    }
    if !s.stmts.is_empty() {
        insert_opt(
            &mut body,
            "stmt",
            Some(Value::Array(s.stmts.iter().map(stmt_json).collect())),
        );
    }
    extend(&mut body, &s.extra);
    one(if s.is_map() { "map" } else { "set" }, body)
}

fn chain_json(t: &Table, c: &Chain) -> Value {
    let mut pairs = table_ref(t);
    pairs.push(("name", json!(c.name)));
    let mut body = obj(pairs);
    insert_opt(&mut body, "handle", c.handle.map(|n| json!(n)));
    if let Some(b) = &c.base {
        insert_opt(&mut body, "type", Some(json!(b.chain_type.as_str())));
        insert_opt(&mut body, "hook", Some(json!(b.hook.as_str())));
        insert_opt(&mut body, "prio", Some(json!(b.prio)));
        insert_opt(&mut body, "policy", b.policy.map(|p| json!(p.as_str())));
        if !b.devices.is_empty() {
            insert_opt(&mut body, "dev", Some(flags(&b.devices)));
        }
    }
    insert_opt(&mut body, "comment", c.comment.clone().map(Value::String));
    extend(&mut body, &c.extra);
    one("chain", body)
}

fn rule_json(t: &Table, c: &Chain, r: &Rule) -> Value {
    let mut pairs = table_ref(t);
    pairs.push(("chain", json!(c.name)));
    let mut body = obj(pairs);
    insert_opt(&mut body, "handle", r.handle.map(|n| json!(n)));
    insert_opt(&mut body, "comment", r.comment.clone().map(Value::String));
    insert_opt(
        &mut body,
        "expr",
        Some(Value::Array(r.stmts.iter().map(stmt_json).collect())),
    );
    extend(&mut body, &r.extra);
    one("rule", body)
}

fn table_json(t: &Table, out: &mut Vec<Value>) {
    let mut body = obj(vec![
        ("family", json!(t.family.as_str())),
        ("name", json!(t.name)),
    ]);
    insert_opt(&mut body, "handle", t.handle.map(|n| json!(n)));
    if !t.flags.is_empty() {
        insert_opt(&mut body, "flags", Some(strings(&t.flags)));
    }
    insert_opt(&mut body, "comment", t.comment.clone().map(Value::String));
    extend(&mut body, &t.extra);
    out.push(one("table", body));
    for o in &t.objects {
        out.push(match o {
            Object::Counter(c) => {
                let mut body = obj(vec![
                    ("family", json!(t.family.as_str())),
                    ("name", json!(c.name)),
                    ("table", json!(t.name)),
                ]);
                insert_opt(&mut body, "handle", c.handle.map(|n| json!(n)));
                insert_opt(&mut body, "comment", c.comment.clone().map(Value::String));
                insert_opt(&mut body, "packets", Some(json!(c.packets)));
                insert_opt(&mut body, "bytes", Some(json!(c.bytes)));
                extend(&mut body, &c.extra);
                one("counter", body)
            }
            Object::Raw { kind, body } => one(kind, body.clone()),
        });
    }
    for s in &t.sets {
        out.push(set_json(t, s));
    }
    for c in &t.chains {
        out.push(chain_json(t, c));
    }
    for c in &t.chains {
        for r in &c.rules {
            out.push(rule_json(t, c, r));
        }
    }
}

impl Ruleset {
    /// The ruleset as libnftables JSON (what `nft -j list ruleset` prints, and what `nft -j -f`
    /// reads).
    pub fn to_json(&self) -> Value {
        let mut out = Vec::new();
        if let Some(m) = &self.metainfo {
            let mut body = json!({});
            insert_opt(&mut body, "version", m.version.clone().map(Value::String));
            insert_opt(
                &mut body,
                "release_name",
                m.release_name.clone().map(Value::String),
            );
            insert_opt(
                &mut body,
                "json_schema_version",
                m.json_schema_version.map(|n| json!(n)),
            );
            extend(&mut body, &m.extra);
            out.push(one("metainfo", body));
        }
        // A top-level object that names one of the tables was kept at the top level because
        // it came before that table, and must again: it goes before the tables (found by
        // fuzzing: at the end it was attached to its table on reading back). The top-level
        // objects keep their order (found by fuzzing again), so everything up to the last
        // one that names a table goes before the tables, the rest after them, where `nft`
        // prints what it has no table for.
        let split = self
            .extra
            .iter()
            .rposition(|v| self.names_a_table(v))
            .map_or(0, |i| i + 1);
        out.extend(self.extra[..split].iter().cloned());
        for t in &self.tables {
            table_json(t, &mut out);
        }
        out.extend(self.extra[split..].iter().cloned());
        json!({ "nftables": out })
    }

    /// [`Ruleset::to_json`] as a compact string.
    pub fn to_json_string(&self) -> String {
        self.to_json().to_string()
    }

    /// Whether a top-level object (`{"KIND": {"family": …, "table": …}}`) names a table of
    /// this ruleset.
    fn names_a_table(&self, v: &Value) -> bool {
        let body = v
            .as_object()
            .and_then(|m| m.values().next())
            .and_then(Value::as_object);
        body.is_some_and(|b| {
            let fam = b.get("family").and_then(Value::as_str);
            let name = b.get("table").and_then(Value::as_str);
            self.tables
                .iter()
                .any(|t| Some(t.family.as_str()) == fam && Some(t.name.as_str()) == name)
        })
    }
}
