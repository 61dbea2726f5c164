//! Label and field selectors, parsed from the `labelSelector` and `fieldSelector` query
//! parameters and matched against stored objects, with kube-apiserver's grammar.
//!
//! ```text
//!   labelSelector:  key  !key  key=v  key==v  key!=v  key in (a,b)  key notin (a,b)  key>1  key<1
//!   fieldSelector:  field=v  field==v  field!=v   (values escape `\,` `\=` `\\`)
//! ```
//! In: selector text and a kind. Out: a [`LabelSelector`] / [`FieldSelector`] that matches a
//! JSON object, or a [`SelectorError`] naming the offending text (the server answers 400).
//! Field selectors accept only the fields kube-apiserver accepts for the kind; anything else
//! is refused, never treated as matching.

use serde_json::Value;

use super::resource::Kind;

/// A selector that cannot be parsed or names an unsupported field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector text is malformed.
    #[error("unable to parse requirement: {detail} in label selector `{selector}`")]
    Label {
        /// The whole selector.
        selector: String,
        /// What was wrong and where.
        detail: String,
    },
    /// A field selector term is malformed.
    #[error("invalid field selector `{selector}`: {detail}")]
    Field {
        /// The whole selector.
        selector: String,
        /// What was wrong.
        detail: String,
    },
    /// The field cannot be selected on for this kind.
    #[error("field label not supported: {field}")]
    UnsupportedField {
        /// The field path.
        field: String,
    },
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelReq {
    /// `key` : the label exists.
    Exists(String),
    /// `!key` : the label does not exist.
    NotExists(String),
    /// `key in (a,b)`, `key=a`, `key==a`.
    In(String, Vec<String>),
    /// `key notin (a,b)`, `key!=a` (also true when the label is absent).
    NotIn(String, Vec<String>),
    /// `key>n` : the label is an integer greater than n.
    Gt(String, i64),
    /// `key<n` : the label is an integer less than n.
    Lt(String, i64),
}

/// A parsed label selector: every requirement must hold. The empty selector matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelReq>);

impl LabelSelector {
    /// Parses `labelSelector` text (`app=web,!service.kubernetes.io/service-proxy-name`).
    pub fn parse(text: &str) -> Result<LabelSelector, SelectorError> {
        let err = |detail: String| SelectorError::Label {
            selector: text.to_string(),
            detail,
        };
        let mut lx = Lexer {
            s: text.as_bytes(),
            i: 0,
        };
        let mut reqs = Vec::new();
        lx.skip_ws();
        if lx.at_end() {
            return Ok(LabelSelector(reqs));
        }
        loop {
            lx.skip_ws();
            let negated = lx.eat("!");
            lx.skip_ws();
            let key = lx.word();
            check_key(&key).map_err(|e| err(format!("key `{key}`: {e}")))?;
            lx.skip_ws();
            let req = if negated {
                LabelReq::NotExists(key)
            } else if lx.at_end() || lx.peek() == Some(b',') {
                LabelReq::Exists(key)
            } else if lx.eat("==") || lx.eat("=") {
                LabelReq::In(key, vec![lx.value(&err)?])
            } else if lx.eat("!=") {
                LabelReq::NotIn(key, vec![lx.value(&err)?])
            } else if lx.eat(">") {
                LabelReq::Gt(key.clone(), lx.int(&key, &err)?)
            } else if lx.eat("<") {
                LabelReq::Lt(key.clone(), lx.int(&key, &err)?)
            } else {
                let op = lx.word();
                match op.as_str() {
                    "in" => LabelReq::In(key, lx.set(&err)?),
                    "notin" => LabelReq::NotIn(key, lx.set(&err)?),
                    _ => {
                        return Err(err(format!(
                            "found `{op}` at offset {}, expected one of `=`, `==`, `!=`, `in`, `notin`, `>`, `<`, `,`",
                            lx.i - op.len()
                        )));
                    }
                }
            };
            reqs.push(req);
            lx.skip_ws();
            if lx.at_end() {
                break;
            }
            if !lx.eat(",") {
                return Err(err(format!("expected `,` at offset {}", lx.i)));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    /// Whether the selector is empty (matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, tok: &str) -> bool {
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }
    /// A run of characters that can appear in a key or value.
    fn word(&mut self) -> String {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/'))
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn value(&mut self, err: &dyn Fn(String) -> SelectorError) -> Result<String, SelectorError> {
        self.skip_ws();
        let v = self.word();
        check_value(&v).map_err(|e| err(format!("value `{v}`: {e}")))?;
        Ok(v)
    }
    fn int(
        &mut self,
        key: &str,
        err: &dyn Fn(String) -> SelectorError,
    ) -> Result<i64, SelectorError> {
        self.skip_ws();
        let v = self.word();
        v.parse()
            .map_err(|_| err(format!("for `{key}`, `{v}` is not an integer")))
    }
    fn set(&mut self, err: &dyn Fn(String) -> SelectorError) -> Result<Vec<String>, SelectorError> {
        self.skip_ws();
        if !self.eat("(") {
            return Err(err(format!("expected `(` at offset {}", self.i)));
        }
        let mut vals = Vec::new();
        loop {
            vals.push(self.value(err)?);
            self.skip_ws();
            if self.eat(")") {
                return Ok(vals);
            }
            if !self.eat(",") {
                return Err(err(format!("expected `,` or `)` at offset {}", self.i)));
            }
        }
    }
}

/// A qualified name part: 1–63 characters, alphanumeric at both ends, `-_.` inside.
fn check_name_part(s: &str) -> Result<(), String> {
    let ok_inner = s
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    let ends = s.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if s.is_empty() || s.len() > 63 || !ok_inner || !ends {
        return Err(
            "must be 1-63 characters of [A-Za-z0-9-_.], beginning and ending with [A-Za-z0-9]"
                .into(),
        );
    }
    Ok(())
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain of at most 253 characters.
fn check_key(k: &str) -> Result<(), String> {
    match k.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !prefix_ok {
                return Err(format!("prefix `{prefix}` must be a DNS subdomain"));
            }
            check_name_part(name)
        }
        None => check_name_part(k),
    }
}

/// A label value: empty, or a name part.
fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        Ok(())
    } else {
        check_name_part(v)
    }
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReq {
    /// The field path (`metadata.name`).
    pub field: String,
    /// `false` for `=`/`==`, `true` for `!=`.
    pub negated: bool,
    /// The unescaped value.
    pub value: String,
}

/// A parsed field selector: every term must hold. The empty selector matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldReq>);

/// The fields kube-apiserver accepts in a field selector for `kind`, with their JSON pointers.
fn selectable_fields(kind: Kind) -> &'static [(&'static str, &'static str)] {
    match kind {
        Kind::Pod => &[
            ("metadata.name", "/metadata/name"),
            ("metadata.namespace", "/metadata/namespace"),
            ("spec.nodeName", "/spec/nodeName"),
            ("spec.restartPolicy", "/spec/restartPolicy"),
            ("spec.schedulerName", "/spec/schedulerName"),
            ("spec.serviceAccountName", "/spec/serviceAccountName"),
            ("spec.hostNetwork", "/spec/hostNetwork"),
            ("status.phase", "/status/phase"),
            ("status.podIP", "/status/podIP"),
            ("status.nominatedNodeName", "/status/nominatedNodeName"),
        ],
        Kind::Service => &[
            ("metadata.name", "/metadata/name"),
            ("metadata.namespace", "/metadata/namespace"),
            ("spec.clusterIP", "/spec/clusterIP"),
            ("spec.type", "/spec/type"),
        ],
        Kind::Node => &[
            ("metadata.name", "/metadata/name"),
            ("spec.unschedulable", "/spec/unschedulable"),
        ],
        Kind::Namespace => &[
            ("metadata.name", "/metadata/name"),
            ("status.phase", "/status/phase"),
        ],
        Kind::EndpointSlice => &[
            ("metadata.name", "/metadata/name"),
            ("metadata.namespace", "/metadata/namespace"),
            ("addressType", "/addressType"),
        ],
    }
}

impl FieldSelector {
    /// Parses `fieldSelector` text for `kind` (`metadata.name=node1`), refusing fields the
    /// kind cannot be selected on.
    pub fn parse(text: &str, kind: Kind) -> Result<FieldSelector, SelectorError> {
        let err = |detail: String| SelectorError::Field {
            selector: text.to_string(),
            detail,
        };
        let mut reqs = Vec::new();
        if text.trim().is_empty() {
            return Ok(FieldSelector(reqs));
        }
        for term in split_unescaped(text, ',') {
            let (field, negated, raw) = if let Some(at) = find_unescaped(&term, "!=") {
                (&term[..at], true, &term[at + 2..])
            } else if let Some(at) = find_unescaped(&term, "==") {
                (&term[..at], false, &term[at + 2..])
            } else if let Some(at) = find_unescaped(&term, "=") {
                (&term[..at], false, &term[at + 1..])
            } else {
                return Err(err(format!("`{term}` is not of the form field=value")));
            };
            let field = field.trim();
            if !selectable_fields(kind).iter().any(|(f, _)| *f == field) {
                return Err(SelectorError::UnsupportedField {
                    field: field.to_string(),
                });
            }
            reqs.push(FieldReq {
                field: field.to_string(),
                negated,
                value: unescape(raw).map_err(&err)?,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether an object of `kind` satisfies every term. Absent fields read as `""`, booleans
    /// as `true`/`false`, as kube-apiserver's field sets do.
    pub fn matches(&self, kind: Kind, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let pointer = selectable_fields(kind)
                .iter()
                .find(|(f, _)| *f == r.field)
                .map(|(_, p)| *p);
            let actual = match pointer.and_then(|p| obj.pointer(p)) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Null) | None => {
                    // Unset booleans read as false, as the server's field sets render them.
                    if r.field == "spec.hostNetwork" || r.field == "spec.unschedulable" {
                        "false".to_string()
                    } else {
                        String::new()
                    }
                }
                Some(other) => other.to_string(),
            };
            (actual == r.value) != r.negated
        })
    }

    /// Whether the selector is empty (matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == sep {
            out.push(std::mem::take(&mut cur));
            continue;
        }
        cur.push(c);
        if c == '\\' {
            cur.extend(chars.next());
        }
    }
    out.push(cur);
    out
}

fn find_unescaped(s: &str, op: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i..].starts_with(op.as_bytes()) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(format!("invalid escape sequence `\\{e}` in `{s}`")),
                None => return Err(format!("unterminated escape in `{s}`")),
            },
            ',' | '=' => return Err(format!("unescaped `{c}` in value `{s}`")),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "labels": labels}})
    }

    #[test]
    fn label_selectors_match_like_kube_apiserver() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let none = json!({"metadata": {"name": "x"}});
        let cases: &[(&str, bool, bool)] = &[
            // selector, matches o, matches an object without labels
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app = web", true, false),
            ("app!=web", false, true),
            ("app!=db", true, true),
            ("app", true, false),
            ("!app", false, true),
            ("!service.kubernetes.io/service-proxy-name", true, true),
            ("service.kubernetes.io/headless", false, false),
            ("app in (web, db)", true, false),
            ("app in (db)", false, false),
            ("app notin (db)", true, true),
            ("app notin (web,db)", false, true),
            ("app=web,tier=front", true, false),
            ("app=web,tier=back", false, false),
            (
                "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless",
                true,
                true,
            ),
            ("n>4", true, false),
            ("n<5", false, false),
            ("app=", false, false),
        ];
        for (sel, want_o, want_none) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&o), *want_o, "{sel} on labelled object");
            assert_eq!(s.matches(&none), *want_none, "{sel} on unlabelled object");
        }
    }

    #[test]
    fn bad_label_selectors_are_refused_with_the_text() {
        for sel in [
            "app=(",
            "app in web",
            "app in (web",
            "=web",
            "app ~ web",
            "app=web,",
            "-app",
            "app>x",
        ] {
            let e = LabelSelector::parse(sel).expect_err(sel);
            assert!(e.to_string().contains(sel), "{sel}: {e}");
        }
    }

    #[test]
    fn field_selectors_match_and_refuse_unknown_fields() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns1"},
                         "spec": {"nodeName": "node1"}, "status": {"phase": "Running"}});
        let cases = [
            ("spec.nodeName=node1", true),
            ("spec.nodeName==node1", true),
            ("spec.nodeName!=node1", false),
            ("spec.nodeName=node2", false),
            ("metadata.name=p,metadata.namespace=ns1", true),
            ("metadata.namespace!=ns1", false),
            ("status.phase=Running", true),
            ("spec.hostNetwork=false", true),
            ("status.podIP=", true),
        ];
        for (sel, want) in cases {
            let s = FieldSelector::parse(sel, Kind::Pod).unwrap();
            assert_eq!(s.matches(Kind::Pod, &pod), want, "{sel}");
        }
        let node = json!({"metadata": {"name": "node1"}});
        let s = FieldSelector::parse("metadata.name=node1", Kind::Node).unwrap();
        assert!(s.matches(Kind::Node, &node));
        assert_eq!(
            FieldSelector::parse("spec.nodeName=node1", Kind::Service),
            Err(SelectorError::UnsupportedField {
                field: "spec.nodeName".into()
            })
        );
        assert!(FieldSelector::parse("metadata.name", Kind::Node).is_err());
    }

    #[test]
    fn field_selector_values_unescape() {
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d", Kind::Node).unwrap();
        assert_eq!(s.0[0].value, r"a,b=c\d");
        assert!(s.matches(Kind::Node, &json!({"metadata": {"name": r"a,b=c\d"}})));
        assert!(FieldSelector::parse(r"metadata.name=a\x", Kind::Node).is_err());
    }
}
