//! Reading `ip -j` documents: which document, which array element, which field, and what was
//! expected; plus the fixture header convention.
//!
//! ```text
//!   text of `ip -j ... show`  --serde_json-->  Value  --Obj::take_*-->  typed fields + extra
//!        (line:column on bad JSON)                 (Document[index].field on bad values)
//! ```
//!
//! Every `take_*` removes the key it reads, so what is left in an object after the typed fields
//! are read is exactly what this crate does not understand; it is kept as `extra` and printed
//! back unchanged.

use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::packet::Family;

/// Which `ip -j` output a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Document {
    /// `ip -j -d link show`.
    Link,
    /// `ip -j addr show`.
    Addr,
    /// `ip -j -4 route show table all` or `ip -j -6 route show table all`.
    Route(Family),
    /// `ip -j rule show` or `ip -j -6 rule show`.
    Rule(Family),
    /// The combined [`RouteState`](super::RouteState) JSON.
    State,
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Document::Link => f.write_str("`ip -j -d link show`"),
            Document::Addr => f.write_str("`ip -j addr show`"),
            Document::Route(Family::V4) => f.write_str("`ip -j -4 route show table all`"),
            Document::Route(Family::V6) => f.write_str("`ip -j -6 route show table all`"),
            Document::Rule(Family::V4) => f.write_str("`ip -j rule show`"),
            Document::Rule(Family::V6) => f.write_str("`ip -j -6 rule show`"),
            Document::State => f.write_str("route state JSON"),
        }
    }
}

/// A document that could not be read, with where and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is not JSON.
    #[error("{doc}: invalid JSON at line {line} column {column}: {message}")]
    Json {
        /// The document.
        doc: Document,
        /// 1-based line of the error, as serde_json reports it.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's message.
        message: String,
    },
    /// The JSON is not shaped like the document (wrong top-level type).
    #[error("{doc}: expected {expected} at the top level, found {found}")]
    Shape {
        /// The document.
        doc: Document,
        /// What was expected.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// An element or one of its fields has the wrong type or value.
    #[error("{doc}[{index}]: field `{field}`: expected {expected}, found {found}")]
    Field {
        /// The document.
        doc: Document,
        /// Index of the element in the top-level array.
        index: usize,
        /// Path of the field inside the element (`addr_info[1].prefixlen`).
        field: String,
        /// What was expected.
        expected: &'static str,
        /// The value found, as JSON text (shortened).
        found: String,
    },
    /// A required field is absent.
    #[error("{doc}[{index}]: missing field `{field}` ({expected})")]
    Missing {
        /// The document.
        doc: Document,
        /// Index of the element in the top-level array.
        index: usize,
        /// Path of the missing field.
        field: String,
        /// What the field should hold.
        expected: &'static str,
    },
}

/// The name of a JSON value's type, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shorten(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let mut cut = 57;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Parses document text into its top-level array.
pub(crate) fn parse_array(doc: Document, text: &str) -> Result<Vec<Value>, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::Json {
        doc,
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    into_array(doc, value)
}

/// Takes the top-level array out of a parsed document.
pub(crate) fn into_array(doc: Document, value: Value) -> Result<Vec<Value>, ParseError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(ParseError::Shape {
            doc,
            expected: "an array",
            found: type_name(&other),
        }),
    }
}

/// One JSON object being read field by field, knowing where it sits for error messages.
pub(crate) struct Obj {
    doc: Document,
    index: usize,
    prefix: String,
    map: Map<String, Value>,
}

impl Obj {
    /// The element `index` of document `doc`; errors if it is not an object.
    pub(crate) fn new(doc: Document, index: usize, value: Value) -> Result<Obj, ParseError> {
        Obj::nested(doc, index, String::new(), value)
    }

    /// An object nested inside an element, at path `prefix` (for example `nexthops[1]`).
    pub(crate) fn nested(
        doc: Document,
        index: usize,
        prefix: String,
        value: Value,
    ) -> Result<Obj, ParseError> {
        match value {
            Value::Object(map) => Ok(Obj {
                doc,
                index,
                prefix,
                map,
            }),
            other => Err(ParseError::Field {
                doc,
                index,
                field: if prefix.is_empty() {
                    "(element)".to_string()
                } else {
                    prefix
                },
                expected: "an object",
                found: shorten(&other),
            }),
        }
    }

    /// The path of `key` inside the element.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// An error for `key` holding `found` where `expected` was wanted.
    pub(crate) fn bad(&self, key: &str, expected: &'static str, found: &Value) -> ParseError {
        ParseError::Field {
            doc: self.doc,
            index: self.index,
            field: self.path(key),
            expected,
            found: shorten(found),
        }
    }

    /// An error for a missing `key`.
    pub(crate) fn missing(&self, key: &str, expected: &'static str) -> ParseError {
        ParseError::Missing {
            doc: self.doc,
            index: self.index,
            field: self.path(key),
            expected,
        }
    }

    /// The document this object belongs to.
    pub(crate) fn doc(&self) -> Document {
        self.doc
    }

    /// The index of the top-level element.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Whether `key` is present.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Removes and returns `key`'s raw value.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// Puts a raw value back (a value that could not be interpreted and stays in `extra`).
    pub(crate) fn put_back(&mut self, key: &str, value: Value) {
        self.map.insert(key.to_string(), value);
    }

    /// Removes a string field.
    pub(crate) fn opt_str(&mut self, key: &str) -> Result<Option<String>, ParseError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.bad(key, "a string", &other)),
        }
    }

    /// Removes a required string field.
    pub(crate) fn req_str(&mut self, key: &str) -> Result<String, ParseError> {
        self.opt_str(key)?
            .ok_or_else(|| self.missing(key, "a string"))
    }

    /// Removes an unsigned integer field that must fit `max`.
    pub(crate) fn opt_uint(&mut self, key: &str, max: u64) -> Result<Option<u64>, ParseError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= max => Ok(Some(n)),
                _ => Err(self.bad(key, "an unsigned integer in range", &v)),
            },
        }
    }

    /// Removes a `u32` field.
    pub(crate) fn opt_u32(&mut self, key: &str) -> Result<Option<u32>, ParseError> {
        Ok(self.opt_uint(key, u32::MAX.into())?.map(|n| n as u32))
    }

    /// Removes a required `u32` field.
    pub(crate) fn req_u32(&mut self, key: &str) -> Result<u32, ParseError> {
        self.opt_u32(key)?
            .ok_or_else(|| self.missing(key, "an unsigned integer"))
    }

    /// Removes a `u16` field.
    pub(crate) fn opt_u16(&mut self, key: &str) -> Result<Option<u16>, ParseError> {
        Ok(self.opt_uint(key, u16::MAX.into())?.map(|n| n as u16))
    }

    /// Removes a `u8` field.
    pub(crate) fn opt_u8(&mut self, key: &str) -> Result<Option<u8>, ParseError> {
        Ok(self.opt_uint(key, u8::MAX.into())?.map(|n| n as u8))
    }

    /// Removes an IP address field (of either family).
    pub(crate) fn opt_ip(&mut self, key: &str) -> Result<Option<IpAddr>, ParseError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => match s.parse::<IpAddr>() {
                Ok(ip) => Ok(Some(ip)),
                Err(_) => Err(self.bad(key, "an IP address", &Value::String(s))),
            },
            Some(other) => Err(self.bad(key, "an IP address string", &other)),
        }
    }

    /// Removes an IP address field that must be of `family`.
    pub(crate) fn opt_ip_of(
        &mut self,
        key: &str,
        family: Family,
    ) -> Result<Option<IpAddr>, ParseError> {
        let ip = self.opt_ip(key)?;
        match ip {
            Some(addr) if Family::of(&addr) != family => Err(self.bad(
                key,
                match family {
                    Family::V4 => "an IPv4 address",
                    Family::V6 => "an IPv6 address",
                },
                &Value::String(addr.to_string()),
            )),
            _ => Ok(ip),
        }
    }

    /// Removes a presence flag: `"key": null` or `"key": true` (how `ip -j` prints flags such
    /// as `not`, `l3mdev`, `secondary`); `false` or absent reads as not set.
    pub(crate) fn flag(&mut self, key: &str) -> Result<bool, ParseError> {
        match self.map.remove(key) {
            None | Some(Value::Bool(false)) => Ok(false),
            Some(Value::Null) | Some(Value::Bool(true)) => Ok(true),
            Some(other) => Err(self.bad(key, "null or a boolean (a flag)", &other)),
        }
    }

    /// Removes an array-of-strings field.
    pub(crate) fn opt_strings(&mut self, key: &str) -> Result<Option<Vec<String>>, ParseError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s),
                        other => {
                            return Err(self.bad(&format!("{key}[{i}]"), "a string", &other));
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(other) => Err(self.bad(key, "an array of strings", &other)),
        }
    }

    /// Removes an array field.
    pub(crate) fn opt_array(&mut self, key: &str) -> Result<Option<Vec<Value>>, ParseError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.bad(key, "an array", &other)),
        }
    }

    /// What is left: the fields this crate does not interpret, kept raw.
    pub(crate) fn rest(self) -> Map<String, Value> {
        self.map
    }
}

/// Splits a fixture into its capture header and the JSON document.
///
/// Captured fixtures (`dataplane/tests/fixtures/route/*/*.json`) start with one or more lines
/// beginning with `#` that say how they were captured (command, iproute2 version, kernel),
/// since JSON has no comments. This returns those lines (without the `#`) and the rest.
pub fn strip_capture_header(text: &str) -> (Vec<&str>, &str) {
    let mut header = Vec::new();
    let mut rest = text;
    while let Some(line) = rest.strip_prefix('#') {
        let (first, tail) = match line.find('\n') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, ""),
        };
        header.push(first.trim());
        rest = tail;
    }
    (header, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_are_split_off() {
        let (h, body) = strip_capture_header("# ip -j rule show\n# iproute2-6.1.0\n[]\n");
        assert_eq!(h, vec!["ip -j rule show", "iproute2-6.1.0"]);
        assert_eq!(body, "[]\n");
        let (h, body) = strip_capture_header("[1]");
        assert!(h.is_empty());
        assert_eq!(body, "[1]");
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let e = parse_array(Document::Rule(Family::V4), "[\n {\"priority\": }]").unwrap_err();
        match &e {
            ParseError::Json { line, column, .. } => assert_eq!((*line, *column), (2, 15)),
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string()
                .starts_with("`ip -j rule show`: invalid JSON at line 2")
        );
        let e = parse_array(Document::Link, "{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`ip -j -d link show`: expected an array at the top level, found an object"
        );
    }
}
