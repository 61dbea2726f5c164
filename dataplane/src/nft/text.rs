//! Writing a [`Ruleset`] as `nft -f` text, laid out as `nft list ruleset` prints it (nft
//! 1.0.6): one statement per line, blocks separated by a blank line, marks in 8-digit hex,
//! standard priority names, set elements wrapped the way nft wraps them.
//!
//! ```text
//!   Ruleset --to_text()--> "table ip kube-proxy {\n\tset cluster-ips {\n\t\ttype ipv4_addr\n…"
//!   Stmt::to_text(family)   one statement, as it appears in a rule
//! ```
//! nft 1.0.6 refuses a one-line body (`chain x { stmt; stmt }` fails with "unexpected '}'"),
//! so every statement and declaration gets its own line. Raw JSON has no text form: a ruleset
//! holding a raw statement, expression or object is refused with [`TextError`].

use std::fmt::Write as _;

use super::expr::{
    BinOp, Counter, Expr, Log, Match, MatchOp, Nat, Payload, Reject, RejectType, Stmt, Verdict,
};
use super::hooks::priority_text;
use super::model::{Chain, NftFamily, Object, Rule, Ruleset, Set, SetElem, Table};
use super::types::{DType, number_text, time_text};

/// A part of the model that has no nft text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: cannot write as nft text: {what}")]
pub struct TextError {
    /// Where (`table ip t chain c rule 3`).
    pub location: String,
    /// What (the raw JSON, shortened).
    pub what: String,
}

type R = Result<(), String>;

fn raw_err(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        let mut end = 80;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("raw JSON {}…", &s[..end])
    } else {
        format!("raw JSON {s}")
    }
}

/// A name (table, chain, set, object) as nft 1.0.6 reads it: its scanner takes
/// `[A-Za-z_.][A-Za-z0-9/_.-]*` and refuses quoted names in declarations, so anything else
/// has no text form.
pub(crate) fn ident(s: &str) -> Result<&str, String> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
    if first_ok && rest_ok {
        Ok(s)
    } else {
        Err(format!(
            "name {s:?} is not an nft identifier ([A-Za-z_.][A-Za-z0-9/_.-]*)"
        ))
    }
}

/// A quoted string (comment, prefix, interface): nft has no escape for `"`.
fn quoted(s: &str) -> Result<String, String> {
    if s.contains('"') || s.contains('\n') {
        return Err(format!(
            "string {s:?} holds a quote or a newline, which nft cannot read"
        ));
    }
    Ok(format!("\"{s}\""))
}

/// A string value in the type it is compared with: interface names quoted, symbols and
/// addresses bare.
fn string_text(ty: &DType, s: &str) -> Result<String, String> {
    match ty {
        DType::IfName | DType::IfIndex => quoted(s),
        _ => {
            let bare = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:/*".contains(c));
            if bare { Ok(s.to_string()) } else { quoted(s) }
        }
    }
}

/// Context of one table: its family decides a few spellings.
#[derive(Clone, Copy)]
struct Cx {
    family: NftFamily,
}

/// Writes an expression that reads something (a left-hand side).
fn lhs(e: &Expr, cx: Cx, out: &mut String) -> R {
    value(e, &DType::of(e), cx, out)
}

/// Writes any expression; constants are spelled in type `ty`.
fn value(e: &Expr, ty: &DType, cx: Cx, out: &mut String) -> R {
    match e {
        Expr::Number(n) => out.push_str(&number_text(ty, *n)),
        Expr::String(s) => out.push_str(&string_text(ty, s)?),
        Expr::Bool(b) => out.push_str(if *b { "exists" } else { "missing" }),
        Expr::SetRef(name) => {
            out.push('@');
            out.push_str(ident(name)?);
        }
        Expr::List(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value(item, ty, cx, out)?;
            }
        }
        Expr::Prefix { addr, len } => {
            value(addr, ty, cx, out)?;
            let _ = write!(out, "/{len}");
        }
        Expr::Range(a, b) => {
            value(a, ty, cx, out)?;
            out.push('-');
            value(b, ty, cx, out)?;
        }
        Expr::Concat(parts) => {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push_str(" . ");
                }
                let part_ty = match ty {
                    DType::Concat(tys) => tys.get(i).cloned().unwrap_or_else(|| DType::of(p)),
                    _ => DType::of(p),
                };
                value(p, &part_ty, cx, out)?;
            }
        }
        Expr::Set(items) => {
            out.push_str("{ ");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                elem(item, ty, &DType::Verdict, cx, out)?;
            }
            out.push_str(" }");
        }
        Expr::Map { key, data } => {
            lhs(key, cx, out)?;
            out.push_str(" map ");
            match &**data {
                Expr::Set(items) => {
                    out.push_str("{ ");
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        elem(item, &DType::of(key), ty, cx, out)?;
                    }
                    out.push_str(" }");
                }
                other => value(other, ty, cx, out)?,
            }
        }
        Expr::Payload(Payload::Field { protocol, field }) => {
            let _ = write!(out, "{protocol} {field}");
        }
        Expr::Payload(Payload::Raw { base, offset, len }) => {
            let _ = write!(out, "@{base},{offset},{len}");
        }
        Expr::Meta { key } => {
            let unqualified = matches!(
                key.as_str(),
                "iif" | "oif" | "iifname" | "oifname" | "iifgroup" | "oifgroup"
            );
            if !unqualified {
                out.push_str("meta ");
            }
            out.push_str(key);
        }
        Expr::Ct(ct) => {
            out.push_str("ct ");
            if let Some(d) = ct.dir {
                out.push_str(d.as_str());
                out.push(' ');
            }
            if let Some(f) = &ct.family {
                out.push_str(f);
                out.push(' ');
            }
            out.push_str(&ct.key);
        }
        Expr::Fib(f) => {
            let _ = write!(out, "fib {} {}", f.flags.join(" . "), f.result);
        }
        Expr::Numgen(n) => {
            let mode = match n.mode {
                super::expr::NumgenMode::Random => "random",
                super::expr::NumgenMode::Inc => "inc",
            };
            let _ = write!(out, "numgen {mode} mod {}", n.modulus);
            if n.offset != 0 {
                let _ = write!(out, " offset {}", n.offset);
            }
        }
        Expr::Binop(op, l, r) => binop(*op, l, r, cx, out)?,
        Expr::Verdict(v) => verdict(v, out)?,
        Expr::Raw(v) => return Err(raw_err(v)),
        Expr::Null => return Err("an empty expression".to_string()),
    }
    Ok(())
}

fn binop(op: BinOp, l: &Expr, r: &Expr, cx: Cx, out: &mut String) -> R {
    lhs(l, cx, out)?;
    let _ = write!(out, " {} ", op.symbol());
    let ty = DType::of(l);
    match r {
        Expr::Binop(..) => {
            out.push('(');
            value(r, &ty, cx, out)?;
            out.push(')');
        }
        Expr::List(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(" | ");
                }
                value(item, &ty, cx, out)?;
            }
            out.push(')');
        }
        other => value(other, &ty, cx, out)?,
    }
    Ok(())
}

fn verdict(v: &Verdict, out: &mut String) -> R {
    out.push_str(v.keyword());
    if let Some(t) = v.target() {
        out.push(' ');
        out.push_str(ident(t)?);
    }
    Ok(())
}

/// Writes a set element: key, counter, timeout, expires, comment, then ` : data` for maps.
fn elem(e: &SetElem, key_ty: &DType, data_ty: &DType, cx: Cx, out: &mut String) -> R {
    value(&e.key, key_ty, cx, out)?;
    if let Some(c) = &e.counter {
        out.push(' ');
        counter(c, out)?;
    }
    if let Some(t) = e.timeout {
        let _ = write!(out, " timeout {}", time_text(t));
    }
    if let Some(t) = e.expires {
        let _ = write!(out, " expires {}", time_text(t));
    }
    if let Some(c) = &e.comment {
        let _ = write!(out, " comment {}", quoted(c)?);
    }
    if let Some((k, v)) = e.extra.iter().next() {
        return Err(format!("element attribute {k}: {}", raw_err(v)));
    }
    if let Some(d) = &e.data {
        out.push_str(" : ");
        value(d, data_ty, cx, out)?;
    }
    Ok(())
}

fn counter(c: &Counter, out: &mut String) -> R {
    match c {
        Counter::Named(n) => {
            let _ = write!(out, "counter name {}", quoted(n)?);
        }
        Counter::Anonymous { packets, bytes } => {
            out.push_str("counter");
            if packets.is_some() || bytes.is_some() {
                let _ = write!(
                    out,
                    " packets {} bytes {}",
                    packets.unwrap_or(0),
                    bytes.unwrap_or(0)
                );
            }
        }
    }
    Ok(())
}

fn match_text(m: &Match, cx: Cx, out: &mut String) -> R {
    // `tcp flags syn / fin,syn,rst,ack`: a masked flag comparison.
    if m.op == MatchOp::Eq
        && let Expr::Binop(BinOp::And, inner, mask) = &m.left
    {
        let ty = DType::of(inner);
        if ty.is_bitmask() && !matches!(**mask, Expr::Binop(..)) {
            lhs(inner, cx, out)?;
            out.push(' ');
            value(&m.right, &ty, cx, out)?;
            out.push_str(" / ");
            return value(mask, &ty, cx, out);
        }
    }
    lhs(&m.left, cx, out)?;
    let ty = DType::of(&m.left);
    let op = match m.op {
        MatchOp::In => "",
        MatchOp::Eq => {
            let single = matches!(m.right, Expr::String(_) | Expr::Number(_));
            if matches!(m.left, Expr::Binop(..)) || (ty.is_bitmask() && single) {
                "== "
            } else {
                ""
            }
        }
        other => match other {
            MatchOp::Ne => "!= ",
            MatchOp::Lt => "< ",
            MatchOp::Gt => "> ",
            MatchOp::Le => "<= ",
            _ => ">= ",
        },
    };
    out.push(' ');
    out.push_str(op);
    value(&m.right, &ty, cx, out)
}

fn nat_addr_type(n: &Nat, cx: Cx) -> DType {
    match (n.family.as_deref(), cx.family) {
        (Some("ip6"), _) | (None, NftFamily::Ip6) => DType::Ipv6Addr,
        _ => DType::Ipv4Addr,
    }
}

fn nat_text(n: &Nat, cx: Cx, out: &mut String) -> R {
    out.push_str(n.kind.keyword());
    if let Some(f) = &n.family {
        out.push(' ');
        out.push_str(f);
    }
    for t in &n.type_flags {
        out.push(' ');
        out.push_str(t);
    }
    let ty = nat_addr_type(n, cx);
    if n.addr.is_some() || n.port.is_some() {
        out.push_str(" to ");
        let v6 = ty == DType::Ipv6Addr;
        if let Some(a) = &n.addr {
            let bracket = v6 && n.port.is_some() && !matches!(a, Expr::Map { .. });
            if bracket {
                out.push('[');
            }
            match a {
                Expr::Map { .. } | Expr::Concat(_) => lhs(a, cx, out)?,
                other => value(other, &ty, cx, out)?,
            }
            if bracket {
                out.push(']');
            }
        }
        if let Some(p) = &n.port {
            out.push(':');
            value(p, &DType::InetService, cx, out)?;
        }
    }
    if !n.flags.is_empty() {
        out.push(' ');
        out.push_str(&n.flags.join(","));
    }
    Ok(())
}

fn reject_text(r: &Reject, cx: Cx, out: &mut String) {
    out.push_str("reject");
    let Some(kind) = r.kind else { return };
    if kind == RejectType::TcpReset {
        out.push_str(" with tcp reset");
        return;
    }
    let default_kind = match cx.family {
        NftFamily::Ip => RejectType::Icmp,
        NftFamily::Ip6 => RejectType::Icmpv6,
        _ => RejectType::Icmpx,
    };
    let code = r.code.as_deref().unwrap_or("port-unreachable");
    if kind == default_kind && code == "port-unreachable" {
        return;
    }
    let _ = write!(out, " with {} {code}", kind.as_str());
}

fn log_text(l: &Log, out: &mut String) -> R {
    out.push_str("log");
    if let Some(p) = &l.prefix {
        let _ = write!(out, " prefix {}", quoted(p)?);
    }
    if let Some(g) = l.group {
        let _ = write!(out, " group {g}");
    }
    if let Some(s) = l.snaplen {
        let _ = write!(out, " snaplen {s}");
    }
    if let Some(q) = l.queue_threshold {
        let _ = write!(out, " queue-threshold {q}");
    }
    if let Some(lv) = &l.level {
        let _ = write!(out, " level {lv}");
    }
    if !l.flags.is_empty() {
        let _ = write!(out, " flags {}", l.flags.join(","));
    }
    Ok(())
}

fn stmt_text(s: &Stmt, cx: Cx, out: &mut String) -> R {
    match s {
        Stmt::Match(m) => match_text(m, cx, out)?,
        Stmt::Verdict(v) => verdict(v, out)?,
        Stmt::Vmap { key, data } => {
            lhs(key, cx, out)?;
            out.push_str(" vmap ");
            match data {
                Expr::Set(items) => {
                    out.push_str("{ ");
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        elem(item, &DType::of(key), &DType::Verdict, cx, out)?;
                    }
                    out.push_str(" }");
                }
                other => value(other, &DType::Verdict, cx, out)?,
            }
        }
        Stmt::Counter(c) => counter(c, out)?,
        Stmt::Mangle { key, value: v } => {
            lhs(key, cx, out)?;
            out.push_str(" set ");
            value(v, &DType::of(key), cx, out)?;
        }
        Stmt::Nat(n) => nat_text(n, cx, out)?,
        Stmt::Reject(r) => reject_text(r, cx, out),
        Stmt::Log(l) => log_text(l, out)?,
        Stmt::Limit(l) => {
            out.push_str("limit rate ");
            if l.inv {
                out.push_str("over ");
            }
            let _ = write!(out, "{}", l.rate);
            match &l.rate_unit {
                Some(u) if u != "packets" => {
                    let _ = write!(out, " {u}/{}", l.per);
                    if let Some(b) = l.burst.filter(|b| *b != 0) {
                        let unit = l.burst_unit.as_deref().unwrap_or("bytes");
                        let _ = write!(out, " burst {b} {unit}");
                    }
                }
                _ => {
                    let _ = write!(out, "/{}", l.per);
                    if let Some(b) = l.burst.filter(|b| *b != 5) {
                        let _ = write!(out, " burst {b} packets");
                    }
                }
            }
        }
        Stmt::Quota(q) => {
            out.push_str("quota ");
            if q.inv {
                out.push_str("over ");
            }
            let _ = write!(out, "{} {}", q.val, q.val_unit);
            if let Some(u) = q.used {
                let _ = write!(
                    out,
                    " used {u} {}",
                    q.used_unit.as_deref().unwrap_or("bytes")
                );
            }
        }
        Stmt::Notrack => out.push_str("notrack"),
        Stmt::Set(st) => {
            let _ = write!(out, "{} @{} {{ ", st.op.keyword(), ident(&st.set)?);
            lhs(&st.elem, cx, out)?;
            for s in &st.stmts {
                out.push(' ');
                stmt_text(s, cx, out)?;
            }
            out.push_str(" }");
        }
        Stmt::Raw(v) => return Err(raw_err(v)),
    }
    Ok(())
}

impl Stmt {
    /// The statement as `nft list` prints it in a table of `family`.
    pub fn to_text(&self, family: NftFamily) -> Result<String, TextError> {
        let mut out = String::new();
        stmt_text(self, Cx { family }, &mut out).map_err(|what| TextError {
            location: "statement".to_string(),
            what,
        })?;
        Ok(out)
    }
}

impl Rule {
    /// The rule as one line of `nft list` (statements, then `comment "…"`).
    pub fn to_text(&self, family: NftFamily) -> Result<String, TextError> {
        let mut out = String::new();
        rule_text(self, Cx { family }, &mut out).map_err(|what| TextError {
            location: "rule".to_string(),
            what,
        })?;
        Ok(out)
    }
}

impl Set {
    /// One element of this set or map as `nft add element` / `delete element` take it
    /// between braces (`198.19.0.10 . tcp . 80 : goto service-…`), spelled with this set's
    /// key and data types.
    pub fn element_text(&self, e: &SetElem, family: NftFamily) -> Result<String, TextError> {
        let key_ty = DType::from_names(&self.key_type.0);
        let data_ty = self
            .map
            .as_ref()
            .map(|d| DType::from_names(&d.0))
            .unwrap_or(DType::Verdict);
        let mut out = String::new();
        elem(e, &key_ty, &data_ty, Cx { family }, &mut out).map_err(|what| TextError {
            location: format!("set {} element", self.name),
            what,
        })?;
        Ok(out)
    }
}

fn rule_text(r: &Rule, cx: Cx, out: &mut String) -> R {
    for (i, s) in r.stmts.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        stmt_text(s, cx, out)?;
    }
    if let Some(c) = &r.comment {
        if !r.stmts.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "comment {}", quoted(c)?);
    }
    Ok(())
}

/// nft's element separator after `count` elements of a named set with key type `ty`: short
/// values share a line (2 addresses, 16 numbers), anything else gets its own line.
fn elem_delim(ty: &DType, count: &mut usize) -> &'static str {
    const NEWLINE: &str = ",\n\t\t\t     ";
    let per_line = match ty {
        DType::NfProto
        | DType::Integer
        | DType::InetProto
        | DType::InetService
        | DType::TcpFlag
        | DType::Mark
        | DType::IfIndex
        | DType::CtDir => 16,
        DType::Ipv4Addr | DType::CtState | DType::CtStatus | DType::PktType => 2,
        _ => 0,
    };
    if *count < per_line {
        return ", ";
    }
    *count = 0;
    NEWLINE
}

/// A failure inside a block, with where it happened.
struct Located {
    location: String,
    what: String,
}

type RL = Result<(), Located>;

fn at(location: impl Into<String>) -> impl FnOnce(String) -> Located {
    let location = location.into();
    move |what| Located { location, what }
}

fn set_text(s: &Set, cx: Cx, out: &mut String) -> RL {
    let here = || at(format!("set {}", s.name));
    let kind = if s.is_map() { "map" } else { "set" };
    let _ = writeln!(out, "\t{kind} {} {{", ident(&s.name).map_err(here())?);
    let _ = write!(out, "\t\ttype {}", s.key_type);
    if let Some(d) = &s.map {
        let _ = write!(out, " : {d}");
    }
    out.push('\n');
    if let Some(p) = &s.policy {
        let _ = writeln!(out, "\t\tpolicy {p}");
    }
    if let Some(n) = s.size {
        let _ = writeln!(out, "\t\tsize {n}");
    }
    if !s.flags.is_empty() {
        let _ = writeln!(out, "\t\tflags {}", s.flags.join(","));
    }
    for st in &s.stmts {
        out.push_str("\t\t");
        stmt_text(st, cx, out).map_err(here())?;
        out.push('\n');
    }
    if let Some(t) = s.timeout {
        let _ = writeln!(out, "\t\ttimeout {}", time_text(t));
    }
    if let Some(t) = s.gc_interval {
        let _ = writeln!(out, "\t\tgc-interval {}", time_text(t));
    }
    if let Some(c) = &s.comment {
        let _ = writeln!(out, "\t\tcomment {}", quoted(c).map_err(here())?);
    }
    if let Some((k, v)) = s.extra.iter().next() {
        return Err(here()(format!("set field {k}: {}", raw_err(v))));
    }
    if !s.elements.is_empty() {
        let key_ty = DType::from_names(&s.key_type.0);
        let data_ty = s
            .map
            .as_ref()
            .map(|d| DType::from_names(&d.0))
            .unwrap_or(DType::Verdict);
        out.push_str("\t\telements = { ");
        let mut count = 0;
        for (i, e) in s.elements.iter().enumerate() {
            if i > 0 {
                out.push_str(elem_delim(&key_ty, &mut count));
            }
            elem(e, &key_ty, &data_ty, cx, out).map_err(here())?;
            count += 1;
        }
        out.push_str(" }\n");
    }
    out.push_str("\t}\n");
    Ok(())
}

fn chain_text(t: &Table, c: &Chain, out: &mut String) -> RL {
    let cx = Cx { family: t.family };
    let here = || at(format!("chain {}", c.name));
    let _ = writeln!(out, "\tchain {} {{", ident(&c.name).map_err(here())?);
    if let Some(b) = &c.base {
        let _ = write!(out, "\t\ttype {} hook {}", b.chain_type.as_str(), b.hook);
        match b.devices.as_slice() {
            [] => {}
            [one] => {
                let _ = write!(out, " device {}", quoted(one).map_err(here())?);
            }
            many => {
                let list = many
                    .iter()
                    .map(|d| quoted(d))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(here())?;
                let _ = write!(out, " devices = {{ {} }}", list.join(", "));
            }
        }
        let _ = write!(
            out,
            " priority {};",
            priority_text(t.family, &b.hook, b.prio)
        );
        if let Some(p) = b.policy {
            let _ = write!(out, " policy {};", p.as_str());
        }
        out.push('\n');
    }
    if let Some(cm) = &c.comment {
        let _ = writeln!(out, "\t\tcomment {}", quoted(cm).map_err(here())?);
    }
    for (i, r) in c.rules.iter().enumerate() {
        out.push_str("\t\t");
        rule_text(r, cx, out).map_err(at(format!("chain {} rule {}", c.name, i + 1)))?;
        out.push('\n');
    }
    out.push_str("\t}\n");
    Ok(())
}

fn table_text(t: &Table, out: &mut String) -> Result<(), TextError> {
    let wrap = |e: Located| TextError {
        location: format!("table {} {} {}", t.family, t.name, e.location),
        what: e.what,
    };
    let whole = || {
        move |what: String| TextError {
            location: format!("table {} {}", t.family, t.name),
            what,
        }
    };
    let cx = Cx { family: t.family };
    let _ = writeln!(
        out,
        "table {} {} {{",
        t.family,
        ident(&t.name).map_err(whole())?
    );
    if !t.flags.is_empty() {
        let _ = writeln!(out, "\tflags {}", t.flags.join(","));
    }
    if let Some(c) = &t.comment {
        let _ = writeln!(out, "\tcomment {}", quoted(c).map_err(whole())?);
    }
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push('\n');
        }
        first = false;
    };
    for o in &t.objects {
        sep(out);
        match o {
            Object::Counter(c) => {
                let here = || at(format!("counter {}", c.name));
                let _ = writeln!(
                    out,
                    "\tcounter {} {{",
                    ident(&c.name).map_err(|e| wrap(here()(e)))?
                );
                if let Some(cm) = &c.comment {
                    let _ = writeln!(
                        out,
                        "\t\tcomment {}",
                        quoted(cm).map_err(|e| wrap(here()(e)))?
                    );
                }
                let _ = writeln!(out, "\t\tpackets {} bytes {}", c.packets, c.bytes);
                out.push_str("\t}\n");
            }
            Object::Raw { kind, body } => {
                return Err(wrap(Located {
                    location: format!("object {kind}"),
                    what: raw_err(body),
                }));
            }
        }
    }
    for s in &t.sets {
        sep(out);
        set_text(s, cx, out).map_err(wrap)?;
    }
    for c in &t.chains {
        sep(out);
        chain_text(t, c, out).map_err(wrap)?;
    }
    out.push_str("}\n");
    Ok(())
}

impl Table {
    /// The table as an `nft -f` block (`table FAMILY NAME { … }`).
    pub fn to_text(&self) -> Result<String, TextError> {
        let mut out = String::new();
        table_text(self, &mut out)?;
        Ok(out)
    }
}

impl Ruleset {
    /// The ruleset as `nft list ruleset` prints it, which `nft -f` reads back. Fails on raw
    /// parts, which have no text form.
    pub fn to_text(&self) -> Result<String, TextError> {
        let mut out = String::new();
        for t in &self.tables {
            table_text(t, &mut out)?;
        }
        if let Some(v) = self.extra.first() {
            return Err(TextError {
                location: "ruleset".to_string(),
                what: raw_err(v),
            });
        }
        Ok(out)
    }
}
