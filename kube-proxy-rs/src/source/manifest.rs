//! Manifest text into Kubernetes objects: multi-document YAML (or JSON), `kind: List` and
//! typed lists (`ServiceList`, ...), keeping Services, EndpointSlices and Nodes.
//!
//! In: `(path, text)` pairs. Out: [`Manifests`], or a [`ManifestError`] naming the file, the
//! document (1-based, empty documents not counted), the line and column, and what was wrong.
//! Other kinds are listed in [`Manifests::ignored`], not dropped silently. Namespaced objects
//! without a namespace get `default`, as `kubectl apply` would give them.
//!
//! Each document is decoded twice: a header (`apiVersion`, `kind`, item kinds) picks the
//! type, then the document is decoded into the k8s-openapi type, so type errors carry
//! serde_yaml's line and column. Documents are split on `---` / `...` lines at column 0
//! (the YAML spec forbids those markers at the start of a line inside any scalar).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The objects read from a set of manifest files, in file and document order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifests {
    /// `v1` Services.
    pub services: Vec<Service>,
    /// `discovery.k8s.io/v1` EndpointSlices.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// `v1` Nodes.
    pub nodes: Vec<Node>,
    /// Objects of other kinds, noted and not used.
    pub ignored: Vec<Ignored>,
}

impl Manifests {
    /// The Node with this name, if the manifests hold it.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }

    /// Appends another file's objects.
    pub fn extend(&mut self, other: Manifests) {
        self.services.extend(other.services);
        self.endpoint_slices.extend(other.endpoint_slices);
        self.nodes.extend(other.nodes);
        self.ignored.extend(other.ignored);
    }
}

/// An object of a kind kube-proxy-rs does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The file.
    pub file: PathBuf,
    /// The document (1-based).
    pub document: usize,
    /// The index in the document's `items`, for lists.
    pub item: Option<usize>,
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`, if any.
    pub name: String,
}

/// Where in the input a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The document (1-based, empty documents not counted).
    pub document: usize,
    /// 1-based line in the file.
    pub line: usize,
    /// 1-based column (0 when only the line is known).
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if self.column > 0 {
            write!(f, ":{}", self.column)?;
        }
        write!(f, " (document {})", self.document)
    }
}

/// Manifest text that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not YAML, or a field of the wrong type (serde_yaml's message, with the field path).
    #[error("{at}: {message}")]
    Syntax {
        /// Where.
        at: Box<Location>,
        /// What.
        message: String,
    },
    /// A document that is not an object with `apiVersion` and `kind`.
    #[error("{at}: {what}: expected a Kubernetes object with apiVersion and kind")]
    NotAnObject {
        /// Where.
        at: Box<Location>,
        /// What is missing, e.g. `kind missing` or `items[2]: kind missing`.
        what: String,
    },
    /// A kind read here, at an `apiVersion` that is not supported.
    #[error("{at}: {item}{kind} apiVersion {api_version:?} is not supported, expected {expected}")]
    Version {
        /// Where.
        at: Box<Location>,
        /// `items[i]: ` for list items, else empty.
        item: String,
        /// The kind.
        kind: String,
        /// The apiVersion given.
        api_version: String,
        /// The supported apiVersion.
        expected: &'static str,
    },
}

#[derive(Debug, Deserialize)]
struct HeaderMeta {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemHeader {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<HeaderMeta>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<HeaderMeta>,
    items: Option<Vec<Option<ItemHeader>>>,
}

/// What one document or list item is decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service,
    EndpointSlice,
    Node,
    Other,
}

impl Kind {
    /// The kind and the apiVersion it must have.
    fn of(kind: &str) -> (Kind, &'static str) {
        match kind {
            "Service" => (Kind::Service, "v1"),
            "EndpointSlice" => (Kind::EndpointSlice, "discovery.k8s.io/v1"),
            "Node" => (Kind::Node, "v1"),
            _ => (Kind::Other, ""),
        }
    }
}

/// One decoded object.
enum Object {
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Node(Box<Node>),
    Skipped,
}

struct ObjectSeed(Kind);

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Object;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Object, D::Error> {
        Ok(match self.0 {
            Kind::Service => Object::Service(Box::new(Service::deserialize(d)?)),
            Kind::EndpointSlice => Object::EndpointSlice(Box::new(EndpointSlice::deserialize(d)?)),
            Kind::Node => Object::Node(Box::new(Node::deserialize(d)?)),
            Kind::Other => {
                IgnoredAny::deserialize(d)?;
                Object::Skipped
            }
        })
    }
}

/// Decodes a list document, each item as the kind its header named.
struct ListSeed(Vec<Kind>);

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Vec<Object>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Object>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Vec<Object>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a List")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Object>, A::Error> {
        let mut out = Vec::new();
        let mut kinds = Some(self.0);
        while let Some(key) = map.next_key::<String>()? {
            match (key.as_str(), kinds.take()) {
                ("items", Some(k)) => out = map.next_value_seed(ItemsSeed(k))?,
                (_, k) => {
                    kinds = k;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

struct ItemsSeed(Vec<Kind>);

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Vec<Object>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Object>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Vec<Object>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Object>, A::Error> {
        let mut out = Vec::with_capacity(self.0.len());
        for kind in self.0 {
            match seq.next_element_seed(ObjectSeed(kind))? {
                Some(o) => out.push(o),
                None => return Err(de::Error::custom("fewer items than announced")),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(out)
    }
}

/// One document of a file: its text and the 1-based line it starts on.
struct Piece<'a> {
    start_line: usize,
    text: std::borrow::Cow<'a, str>,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
}

/// Splits YAML text into documents on `---` and `...` lines.
fn split_documents(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut start = 0; // byte offset of the current piece
    let mut start_line = 1;
    let mut offset = 0;
    let mut inline: Option<String> = None; // text after `--- ` on the marker line
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let lineno = i + 1;
        let bare = line.trim_end_matches(['\n', '\r']);
        if is_marker(bare, "---") || is_marker(bare, "...") {
            let body = &text[start..offset];
            pieces.push(match inline.take() {
                Some(first) => Piece {
                    start_line,
                    text: format!("{first}{body}").into(),
                },
                None => Piece {
                    start_line,
                    text: body.into(),
                },
            });
            let rest = &line[3..];
            if bare.starts_with("---") && !rest.trim().is_empty() && !rest.trim().starts_with('#') {
                inline = Some(format!("   {rest}"));
                start_line = lineno;
            } else {
                start_line = lineno + 1;
            }
            start = offset + line.len();
        }
        offset += line.len();
    }
    let body = &text[start..];
    pieces.push(match inline {
        Some(first) => Piece {
            start_line,
            text: format!("{first}{body}").into(),
        },
        None => Piece {
            start_line,
            text: body.into(),
        },
    });
    pieces
}

/// Parses one file's text.
pub fn parse(file: &Path, text: &str) -> Result<Manifests, ManifestError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Manifests::default();
    let mut document = 0;
    for piece in split_documents(text) {
        let at = |line, column, document| {
            Box::new(Location {
                file: file.to_path_buf(),
                document,
                line,
                column,
            })
        };
        // Errors are located by re-decoding the piece padded to its place in the file, so
        // every line serde_yaml mentions, even inside its message, is a file line.
        let syntax = |err: serde_yaml::Error,
                      document,
                      decode: &dyn Fn(&str) -> Option<serde_yaml::Error>| {
            let padded = format!("{}{}", "\n".repeat(piece.start_line - 1), piece.text);
            let err = decode(&padded).unwrap_or(err);
            let (line, column) = err
                .location()
                .map_or((piece.start_line, 0), |l| (l.line(), l.column()));
            let message = err.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = message
                .strip_suffix(&suffix)
                .unwrap_or(&message)
                .to_string();
            ManifestError::Syntax {
                at: at(line, column, document),
                message,
            }
        };
        let header = match serde_yaml::from_str::<Option<Header>>(&piece.text) {
            Ok(None) => continue,
            Ok(Some(h)) => h,
            Err(e) => {
                document += 1;
                return Err(syntax(e, document, &|t| {
                    serde_yaml::from_str::<Option<Header>>(t).err()
                }));
            }
        };
        document += 1;
        let line_of = |key: &str| {
            piece
                .text
                .lines()
                .position(|l| l.starts_with(key))
                .map_or(piece.start_line, |i| piece.start_line + i)
        };
        let Some(kind) = header.kind.clone().filter(|k| !k.is_empty()) else {
            return Err(ManifestError::NotAnObject {
                at: at(piece.start_line, 0, document),
                what: "kind missing".into(),
            });
        };
        let api_version = header.api_version.clone().unwrap_or_default();
        let list_item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
        if let (true, Some(items)) = (kind.ends_with("List"), header.items.as_ref()) {
            // `kind: List` items carry their own kind; `ServiceList` items may omit it.
            let mut kinds = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let item_header = item.as_ref();
                let explicit = item_header
                    .and_then(|h| h.kind.clone())
                    .filter(|k| !k.is_empty());
                let item_kind = match (kind.as_str(), explicit) {
                    (_, Some(k)) => Some(k),
                    ("List", None) => None,
                    (_, None) => list_item_kind.map(str::to_string),
                };
                let Some(item_kind) = item_kind else {
                    return Err(ManifestError::NotAnObject {
                        at: at(line_of("items:"), 0, document),
                        what: format!("items[{i}]: kind missing"),
                    });
                };
                let item_version = item_header
                    .and_then(|h| h.api_version.clone())
                    .unwrap_or_else(|| api_version.clone());
                let (k, expected) = Kind::of(&item_kind);
                if k != Kind::Other && item_version != expected {
                    return Err(ManifestError::Version {
                        at: at(line_of("items:"), 0, document),
                        item: format!("items[{i}]: "),
                        kind: item_kind,
                        api_version: item_version,
                        expected,
                    });
                }
                if k == Kind::Other {
                    out.ignored.push(Ignored {
                        file: file.to_path_buf(),
                        document,
                        item: Some(i),
                        api_version: item_version,
                        kind: item_kind,
                        name: item_header
                            .and_then(|h| h.metadata.as_ref())
                            .and_then(|m| m.name.clone())
                            .unwrap_or_default(),
                    });
                }
                kinds.push(k);
            }
            let decode = |t: &str| {
                ListSeed(kinds.clone()).deserialize(serde_yaml::Deserializer::from_str(t))
            };
            let objects =
                decode(&piece.text).map_err(|e| syntax(e, document, &|t| decode(t).err()))?;
            for o in objects {
                push(&mut out, o);
            }
            continue;
        }
        let (k, expected) = Kind::of(&kind);
        if k == Kind::Other {
            out.ignored.push(Ignored {
                file: file.to_path_buf(),
                document,
                item: None,
                api_version,
                kind,
                name: header.metadata.and_then(|m| m.name).unwrap_or_default(),
            });
            continue;
        }
        if api_version != expected {
            return Err(ManifestError::Version {
                at: at(line_of("apiVersion:"), 0, document),
                item: String::new(),
                kind,
                api_version,
                expected,
            });
        }
        let decode = |t: &str| ObjectSeed(k).deserialize(serde_yaml::Deserializer::from_str(t));
        let object = decode(&piece.text).map_err(|e| syntax(e, document, &|t| decode(t).err()))?;
        push(&mut out, object);
    }
    Ok(out)
}

fn default_namespace(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    if meta.namespace.as_deref().unwrap_or_default().is_empty() {
        meta.namespace = Some("default".into());
    }
}

fn push(out: &mut Manifests, object: Object) {
    match object {
        Object::Service(mut s) => {
            default_namespace(&mut s.metadata);
            out.services.push(*s);
        }
        Object::EndpointSlice(mut s) => {
            default_namespace(&mut s.metadata);
            out.endpoint_slices.push(*s);
        }
        Object::Node(n) => out.nodes.push(*n),
        Object::Skipped => {}
    }
}

/// Parses several files' texts, in the order given.
pub fn parse_all<'a>(
    files: impl IntoIterator<Item = (&'a Path, &'a str)>,
) -> Result<Manifests, ManifestError> {
    let mut out = Manifests::default();
    for (path, text) in files {
        out.extend(parse(path, text)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
