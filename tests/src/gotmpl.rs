//! A renderer for the small subset of Go's `text/template` (as Helm runs it) that the chart in
//! `deploy/helm/k8s-dataplane` uses. Helm cannot be installed here, so the deployment test
//! renders the chart with this and checks the output; anything outside the subset is an
//! error naming the template and line, never skipped.
//!
//! ```text
//!   template text ──lex──> Text | Action (with {{- / -}} trimming) ──parse──> Node tree
//!   Node tree + root value {Values, Release, Chart} ──render──> text
//! ```
//!
//! The subset: `{{ .A.b }}`, `{{ $.A.b }}`, `{{ . }}`, string/number/bool literals, pipelines
//! `x | f`, `if` / `else if` / `else` / `end`, `range` over a list (with `else`), comments
//! `{{/* */}}`, and the functions `toYaml`, `nindent`, `indent`, `quote`, `eq`, `ne`, `not`,
//! `default`. Printing follows Helm where it bites: values come from YAML as float64, so
//! Helm prints an integer of 1e6 or more as `1e+06`; this renderer refuses to print such a
//! number (use `toYaml`, which Helm renders as plain digits). Printing a missing value, a
//! list or a map is refused too (Helm would print `<no value>` or Go syntax).

use serde_json::Value;

/// A template that could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{template}:{line}: {message}")]
pub struct TemplateError {
    /// The template's name (its path in the chart).
    pub template: String,
    /// 1-based line of the action.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Text(String),
    Action { body: String, line: usize },
}

/// Splits `text` into text and actions, applying `{{-` / `-}}` trimming and dropping
/// comments.
fn lex(name: &str, text: &str) -> Result<Vec<Token>, TemplateError> {
    let mut out: Vec<Token> = Vec::new();
    let mut rest = text;
    let mut line = 1;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut before = rest[..start].to_string();
        if trim_next {
            before = before.trim_start().to_string();
        }
        line += rest[..start].matches('\n').count();
        let after = &rest[start + 2..];
        let left_trim = after.starts_with("- ")
            || after.starts_with("-\t")
            || after.starts_with("-\n")
            || after.starts_with("-/*");
        let inner_start = if left_trim { 1 } else { 0 };
        let end = find_close(&after[inner_start..]).ok_or_else(|| TemplateError {
            template: name.to_string(),
            line,
            message: "unclosed action: `{{` without `}}`".into(),
        })? + inner_start;
        let mut body = &after[inner_start..end];
        let right_trim = body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("*/-");
        if right_trim {
            body = &body[..body.len() - 1];
        }
        if left_trim {
            before = before.trim_end().to_string();
        }
        if !before.is_empty() {
            out.push(Token::Text(before));
        }
        let trimmed = body.trim();
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return Err(TemplateError {
                    template: name.to_string(),
                    line,
                    message: "comment must end with `*/}}`".into(),
                });
            }
        } else {
            out.push(Token::Action {
                body: trimmed.to_string(),
                line,
            });
        }
        line += after[..end].matches('\n').count();
        rest = &after[end + 2..];
        trim_next = right_trim;
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    if !tail.is_empty() {
        out.push(Token::Text(tail.to_string()));
    }
    Ok(out)
}

/// The index of the `}}` closing an action, outside string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i + 1 < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'}' if !in_str && b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Path { root: bool, fields: Vec<String> },
    Str(String),
    Num(f64),
    Bool(bool),
    Func(String),
}

type Command = Vec<Arg>;
type Pipeline = Vec<Command>;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Print(Pipeline, usize),
    If {
        branches: Vec<(Pipeline, usize, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    Range {
        over: Pipeline,
        line: usize,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

struct Parser<'a> {
    name: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

/// How a block ended.
enum Terminator {
    End,
    Else,
    ElseIf(Pipeline, usize),
    Eof,
}

impl Parser<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            template: self.name.to_string(),
            line,
            message: message.into(),
        }
    }

    fn block(&mut self) -> Result<(Vec<Node>, Terminator, usize), TemplateError> {
        let mut nodes = Vec::new();
        while self.pos < self.tokens.len() {
            let tok = self.tokens[self.pos].clone();
            self.pos += 1;
            match tok {
                Token::Text(t) => nodes.push(Node::Text(t)),
                Token::Action { body, line } => {
                    let (word, rest) = match body.split_once(char::is_whitespace) {
                        Some((w, r)) => (w, r.trim()),
                        None => (body.as_str(), ""),
                    };
                    match word {
                        "end" => return Ok((nodes, Terminator::End, line)),
                        "else" if rest.is_empty() => return Ok((nodes, Terminator::Else, line)),
                        "else" => match rest.strip_prefix("if ") {
                            Some(cond) => {
                                let p = self.pipeline(cond, line)?;
                                return Ok((nodes, Terminator::ElseIf(p, line), line));
                            }
                            None => return Err(self.err(line, format!("unsupported `{body}`"))),
                        },
                        "if" => nodes.push(self.if_node(rest, line)?),
                        "range" => nodes.push(self.range_node(rest, line)?),
                        "with" | "define" | "template" | "include" | "block" | "break"
                        | "continue" => {
                            return Err(
                                self.err(line, format!("`{word}` is outside the supported subset"))
                            );
                        }
                        _ => nodes.push(Node::Print(self.pipeline(&body, line)?, line)),
                    }
                }
            }
        }
        Ok((nodes, Terminator::Eof, 0))
    }

    fn if_node(&mut self, cond: &str, line: usize) -> Result<Node, TemplateError> {
        let mut branches = vec![(self.pipeline(cond, line)?, line, Vec::new())];
        loop {
            let (nodes, term, at) = self.block()?;
            if let Some(last) = branches.last_mut() {
                last.2 = nodes;
            }
            match term {
                Terminator::End => {
                    return Ok(Node::If {
                        branches,
                        otherwise: Vec::new(),
                    });
                }
                Terminator::ElseIf(p, l) => branches.push((p, l, Vec::new())),
                Terminator::Else => {
                    let (otherwise, term, at) = self.block()?;
                    return match term {
                        Terminator::End => Ok(Node::If {
                            branches,
                            otherwise,
                        }),
                        _ => Err(self.err(at.max(line), "`if ... else` must close with `end`")),
                    };
                }
                Terminator::Eof => return Err(self.err(at.max(line), "`if` without `end`")),
            }
        }
    }

    fn range_node(&mut self, over: &str, line: usize) -> Result<Node, TemplateError> {
        if over.contains(":=") {
            return Err(self.err(line, "range variables are outside the supported subset"));
        }
        let over = self.pipeline(over, line)?;
        let (body, term, _) = self.block()?;
        let otherwise = match term {
            Terminator::End => Vec::new(),
            Terminator::Else => match self.block()? {
                (o, Terminator::End, _) => o,
                _ => return Err(self.err(line, "`range ... else` must close with `end`")),
            },
            _ => return Err(self.err(line, "`range` without `end`")),
        };
        Ok(Node::Range {
            over,
            line,
            body,
            otherwise,
        })
    }

    fn pipeline(&self, text: &str, line: usize) -> Result<Pipeline, TemplateError> {
        let mut cmds = Vec::new();
        for part in split_outside_quotes(text, '|') {
            let words = words(part).map_err(|m| self.err(line, m))?;
            if words.is_empty() {
                return Err(self.err(line, format!("empty command in `{text}`")));
            }
            let mut cmd = Vec::new();
            for (i, w) in words.iter().enumerate() {
                let arg = parse_arg(w).map_err(|m| self.err(line, m))?;
                if matches!(arg, Arg::Func(_)) && i > 0 {
                    return Err(self.err(
                        line,
                        format!("function `{w}` as an argument needs parentheses, unsupported"),
                    ));
                }
                cmd.push(arg);
            }
            if !matches!(cmd[0], Arg::Func(_)) && cmd.len() > 1 {
                return Err(self.err(line, format!("`{part}`: a value cannot take arguments")));
            }
            cmds.push(cmd);
        }
        Ok(cmds)
    }
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_str = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_str => escaped = true,
            '"' => in_str = !in_str,
            c if c == sep && !in_str => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_str = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                cur.push(c);
                in_str = !in_str;
            }
            '\\' if in_str => {
                cur.push(c);
                cur.extend(chars.next());
            }
            '(' | ')' if !in_str => {
                return Err("parentheses are outside the supported subset".into());
            }
            c if c.is_whitespace() && !in_str => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if in_str {
        return Err(format!("unterminated string in `{s}`"));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

const FUNCS: [&str; 8] = [
    "toYaml", "nindent", "indent", "quote", "eq", "ne", "not", "default",
];

fn parse_arg(w: &str) -> Result<Arg, String> {
    if let Some(inner) = w.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| format!("bad string {w}"))?;
        return serde_json::from_str::<String>(&format!("\"{inner}\""))
            .map(Arg::Str)
            .map_err(|e| format!("bad string {w}: {e}"));
    }
    if w == "true" || w == "false" {
        return Ok(Arg::Bool(w == "true"));
    }
    if w == "." || w == "$" {
        return Ok(Arg::Path {
            root: w == "$",
            fields: Vec::new(),
        });
    }
    let (root, path) = match w.strip_prefix("$.") {
        Some(p) => (true, Some(p)),
        None => (false, w.strip_prefix('.')),
    };
    if let Some(path) = path {
        let fields: Vec<String> = path.split('.').map(str::to_string).collect();
        if fields
            .iter()
            .any(|f| f.is_empty() || !f.chars().all(|c| c.is_alphanumeric() || c == '_'))
        {
            return Err(format!("bad field path {w}"));
        }
        return Ok(Arg::Path { root, fields });
    }
    if let Ok(n) = w.parse::<f64>() {
        return Ok(Arg::Num(n));
    }
    if FUNCS.contains(&w) {
        return Ok(Arg::Func(w.to_string()));
    }
    Err(format!("`{w}` is not a supported function or value"))
}

/// Go template truthiness: false, 0, nil and empty strings, lists and maps are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `toYaml`: YAML without the trailing newline, as Helm's (which marshals through JSON, so
/// map keys come out sorted; serde_json's map is sorted too).
fn to_yaml(v: &Value) -> Result<String, String> {
    let s = serde_yaml::to_string(v).map_err(|e| e.to_string())?;
    Ok(s.strip_suffix('\n').unwrap_or(&s).to_string())
}

fn indent_lines(n: usize, s: &str) -> String {
    let pad = " ".repeat(n);
    s.split('\n')
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text Helm would print for a value, or why it would print something wrong.
fn print(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 || f.abs() >= 1e6 {
                Err(format!(
                    "Helm prints the number {n} in Go's %g form (values are float64); use toYaml or a string"
                ))
            } else {
                Ok(format!("{}", f as i64))
            }
        }
        Value::Null => Err("the value is missing (Helm would print nothing)".into()),
        Value::Array(_) | Value::Object(_) => {
            Err("a list or map cannot be printed; use toYaml".into())
        }
    }
}

fn as_int(v: &Value) -> Result<usize, String> {
    v.as_u64()
        .map(|n| n as usize)
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as usize)
        })
        .ok_or_else(|| format!("expected a non-negative integer, got {v}"))
}

fn text_of(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => print(other),
    }
}

fn call(f: &str, args: &[Value]) -> Result<Value, String> {
    let n = |want: usize| {
        if args.len() == want {
            Ok(())
        } else {
            Err(format!("{f} takes {want} arguments, got {}", args.len()))
        }
    };
    match f {
        "toYaml" => {
            n(1)?;
            to_yaml(&args[0]).map(Value::String)
        }
        "nindent" | "indent" => {
            n(2)?;
            let s = indent_lines(as_int(&args[0])?, &text_of(&args[1])?);
            Ok(Value::String(if f == "nindent" {
                format!("\n{s}")
            } else {
                s
            }))
        }
        "quote" => {
            n(1)?;
            let s = text_of(&args[0])?;
            serde_json::to_string(&s)
                .map(Value::String)
                .map_err(|e| e.to_string())
        }
        "eq" | "ne" => {
            n(2)?;
            let same = match (&args[0], &args[1]) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                (a, b) if std::mem::discriminant(a) == std::mem::discriminant(b) => a == b,
                (a, b) => return Err(format!("{f}: incompatible types {a} and {b}")),
            };
            Ok(Value::Bool(same == (f == "eq")))
        }
        "not" => {
            n(1)?;
            Ok(Value::Bool(!truthy(&args[0])))
        }
        "default" => {
            n(2)?;
            Ok(if truthy(&args[1]) {
                args[1].clone()
            } else {
                args[0].clone()
            })
        }
        other => Err(format!("unknown function {other}")),
    }
}

struct Renderer<'a> {
    name: &'a str,
    root: &'a Value,
}

impl Renderer<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            template: self.name.to_string(),
            line,
            message: message.into(),
        }
    }

    fn lookup(&self, dot: &Value, root: bool, fields: &[String]) -> Result<Value, String> {
        let mut v = if root { self.root } else { dot };
        let mut walked = String::new();
        for f in fields {
            walked.push('.');
            walked.push_str(f);
            v = match v {
                Value::Object(m) => match m.get(f) {
                    Some(x) => x,
                    None => return Ok(Value::Null),
                },
                Value::Null => {
                    return Err(format!("nil pointer evaluating {walked}"));
                }
                other => return Err(format!("{walked}: cannot take a field of {other}")),
            };
        }
        Ok(v.clone())
    }

    fn eval(&self, p: &Pipeline, dot: &Value, line: usize) -> Result<Value, TemplateError> {
        let mut piped: Option<Value> = None;
        for cmd in p {
            let mut vals = Vec::new();
            for a in &cmd[if matches!(cmd[0], Arg::Func(_)) { 1 } else { 0 }..] {
                vals.push(match a {
                    Arg::Path { root, fields } => self
                        .lookup(dot, *root, fields)
                        .map_err(|m| self.err(line, m))?,
                    Arg::Str(s) => Value::String(s.clone()),
                    Arg::Num(n) => serde_json::Number::from_f64(*n)
                        .map(Value::Number)
                        .unwrap_or(Value::Null),
                    Arg::Bool(b) => Value::Bool(*b),
                    Arg::Func(f) => return Err(self.err(line, format!("misplaced function {f}"))),
                });
            }
            if let Some(prev) = piped.take() {
                vals.push(prev);
            }
            piped = Some(match &cmd[0] {
                Arg::Func(f) => call(f, &vals).map_err(|m| self.err(line, m))?,
                _ if vals.len() == 1 => vals.remove(0),
                _ => return Err(self.err(line, "a value cannot take a piped argument")),
            });
        }
        piped.ok_or_else(|| self.err(line, "empty pipeline"))
    }

    fn render(&self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Print(p, line) => {
                    let v = self.eval(p, dot, *line)?;
                    out.push_str(&print(&v).map_err(|m| self.err(*line, m))?);
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let mut taken = false;
                    for (cond, line, body) in branches {
                        if truthy(&self.eval(cond, dot, *line)?) {
                            self.render(body, dot, out)?;
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.render(otherwise, dot, out)?;
                    }
                }
                Node::Range {
                    over,
                    line,
                    body,
                    otherwise,
                } => match self.eval(over, dot, *line)? {
                    Value::Array(items) if !items.is_empty() => {
                        for item in &items {
                            self.render(body, item, out)?;
                        }
                    }
                    Value::Array(_) | Value::Null => self.render(otherwise, dot, out)?,
                    other => {
                        return Err(self.err(*line, format!("range over {other}: only lists")));
                    }
                },
            }
        }
        Ok(())
    }
}

/// Renders template `text` (named `name` in errors) with `root` as `.` and `$`.
pub fn render(name: &str, text: &str, root: &Value) -> Result<String, TemplateError> {
    let tokens = lex(name, text)?;
    let mut parser = Parser {
        name,
        tokens,
        pos: 0,
    };
    let (nodes, term, line) = parser.block()?;
    if !matches!(term, Terminator::Eof) {
        return Err(parser.err(line, "`end` or `else` without a matching `if` or `range`"));
    }
    let mut out = String::new();
    Renderer { name, root }.render(&nodes, root, &mut out)?;
    Ok(out)
}

/// Helm's value merge (`-f` / `--set` over `values.yaml`): maps merge key by key, anything
/// else is replaced.
pub fn merge_values(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge_values(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: Value) -> Result<String, TemplateError> {
        render("t.yaml", t, &v)
    }

    #[test]
    fn values_and_trimming() {
        let v = json!({"Values": {"a": {"b": "x"}, "n": 3}});
        assert_eq!(r("k: {{ .Values.a.b }}\n", v.clone()).unwrap(), "k: x\n");
        assert_eq!(r("a\n  {{- .Values.n }}\nb", v.clone()).unwrap(), "a3\nb");
        assert_eq!(r("a {{ .Values.n -}}\n  b", v.clone()).unwrap(), "a 3b");
        assert_eq!(r("a{{/* note */}}b", v.clone()).unwrap(), "ab");
        assert_eq!(r("a\n{{- /* note */ -}}\nb", v).unwrap(), "ab");
    }

    #[test]
    fn if_else_range() {
        let v = json!({"Values": {"on": true, "mode": "ipvs", "l": ["a", "b"], "e": []}});
        let t = "{{ if .Values.on }}y{{ else }}n{{ end }}";
        assert_eq!(r(t, v.clone()).unwrap(), "y");
        let t = "{{ if eq .Values.mode \"iptables\" }}1{{ else if eq .Values.mode \"ipvs\" }}2{{ else }}3{{ end }}";
        assert_eq!(r(t, v.clone()).unwrap(), "2");
        let t = "{{ range .Values.l }}[{{ . }} {{ $.Values.mode }}]{{ end }}";
        assert_eq!(r(t, v.clone()).unwrap(), "[a ipvs][b ipvs]");
        let t = "{{ range .Values.e }}x{{ else }}none{{ end }}";
        assert_eq!(r(t, v.clone()).unwrap(), "none");
        let t = "{{ if .Values.missing }}y{{ else }}n{{ end }}";
        assert_eq!(r(t, v).unwrap(), "n");
    }

    #[test]
    fn functions() {
        let v = json!({"Values": {"m": {"b": 1, "a": [1, 2]}, "s": "x\"y", "big": 4200000000u64}});
        let t = "k:{{ toYaml .Values.m | nindent 2 }}";
        assert_eq!(r(t, v.clone()).unwrap(), "k:\n  a:\n  - 1\n  - 2\n  b: 1");
        assert_eq!(
            r("{{ .Values.s | quote }}", v.clone()).unwrap(),
            "\"x\\\"y\""
        );
        assert_eq!(
            r("{{ toYaml .Values.big }}", v.clone()).unwrap(),
            "4200000000"
        );
        assert_eq!(
            r("{{ .Values.no | default \"d\" }}", v.clone()).unwrap(),
            "d"
        );
        assert_eq!(r("{{ not .Values.no }}", v).unwrap(), "true");
    }

    #[test]
    fn refusals_name_the_line() {
        let v = json!({"Values": {"big": 4200000000u64, "m": {}}});
        let e = r("a\nb: {{ .Values.big }}", v.clone()).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("%g"), "{e}");
        assert!(r("{{ .Values.nope }}", v.clone()).is_err());
        assert!(r("{{ .Values.nope.deeper }}", v.clone()).is_err());
        assert!(r("{{ .Values.m }}", v.clone()).is_err());
        assert!(r("{{ include \"x\" . }}", v.clone()).is_err());
        assert!(r("{{ upper .Values.m }}", v.clone()).is_err());
        assert!(r("{{ if .Values.m }}x", v.clone()).is_err());
        assert!(r("x{{ end }}", v.clone()).is_err());
        assert!(r("{{ .Values.m", v).is_err());
    }

    #[test]
    fn merge_is_helms() {
        let mut base = json!({"a": {"b": 1, "c": [1]}, "d": 1});
        merge_values(&mut base, &json!({"a": {"c": [2, 3]}, "e": true}));
        assert_eq!(base, json!({"a": {"b": 1, "c": [2, 3]}, "d": 1, "e": true}));
    }
}
