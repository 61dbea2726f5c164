//! What a request asks for beyond its path: list/watch query parameters, write options, continue
//! tokens, and the response format negotiated from the `Accept` header.
//!
//! ```text
//!   ?labelSelector=&fieldSelector=&limit=&continue=&resourceVersion=&resourceVersionMatch=
//!    &watch=&allowWatchBookmarks=&timeoutSeconds=&sendInitialEvents=      -> ListOptions
//!   ?dryRun=All&fieldManager=&fieldValidation=                            -> WriteOptions
//!   Accept: application/json;as=Table;g=meta.k8s.io;v=v1, application/json -> Format::Table
//! ```
//! Errors are the 400 answers kube-apiserver gives for the same mistakes. Unknown parameters
//! are ignored, as kube-apiserver ignores them.

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};

use super::resource::Kind;
use super::selector::{FieldSelector, LabelSelector, SelectorError};

/// A malformed query (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A selector did not parse.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// A parameter has a malformed value.
    #[error("invalid value {value:?} for {param}: {expected}")]
    Value {
        /// The parameter.
        param: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        expected: &'static str,
    },
    /// A combination kube-apiserver forbids.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The continue token cannot be decoded.
    #[error("continue key is not valid: {0}")]
    Continue(String),
}

/// The `resourceVersion` parameter of a list or watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResourceVersion {
    /// Not given: the most recent state.
    #[default]
    Unset,
    /// `"0"`: any state (the double always serves the most recent).
    Any,
    /// A specific version.
    At(u64),
}

/// `resourceVersionMatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionMatch {
    /// `NotOlderThan`: at least as new as the given version.
    NotOlderThan,
    /// `Exact`: exactly the given version (from the history).
    Exact,
}

/// Options of a list or watch request.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: LabelSelector,
    /// `fieldSelector`.
    pub field_selector: FieldSelector,
    /// `limit` (page size); `None` or 0 means everything.
    pub limit: Option<usize>,
    /// The decoded `continue` token.
    pub continue_token: Option<ContinueToken>,
    /// `resourceVersion`.
    pub resource_version: ResourceVersion,
    /// `resourceVersionMatch`.
    pub version_match: Option<VersionMatch>,
    /// `watch=true` (or `1`).
    pub watch: bool,
    /// `allowWatchBookmarks=true`.
    pub allow_watch_bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `includeObject` for Table output (`None`, `Metadata` default, `Object`).
    pub include_object: IncludeObject,
}

/// What a Table row's `object` carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// Options of a write (create, update, patch, delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, but store nothing.
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields are an error (otherwise they are dropped).
    pub strict: bool,
}

fn pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (decode_component(k), decode_component(v))
    })
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
fn decode_component(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_bool(param: &'static str, v: &str) -> Result<bool, QueryError> {
    match v {
        "true" | "1" | "True" | "TRUE" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "" => Ok(false),
        _ => Err(QueryError::Value {
            param,
            value: v.into(),
            expected: "true or false",
        }),
    }
}

impl ListOptions {
    /// Parses the query string of a list or watch of `kind`, with kube-apiserver's checks.
    pub fn parse(query: &str, kind: Kind) -> Result<ListOptions, QueryError> {
        let mut o = ListOptions::default();
        for (k, v) in pairs(query) {
            match k.as_str() {
                "labelSelector" => o.label_selector = LabelSelector::parse(&v)?,
                "fieldSelector" => o.field_selector = FieldSelector::parse(&v, kind)?,
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| QueryError::Value {
                        param: "limit",
                        value: v.clone(),
                        expected: "an integer",
                    })?;
                    o.limit = usize::try_from(n).ok().filter(|n| *n > 0);
                }
                "continue" if !v.is_empty() => o.continue_token = Some(ContinueToken::decode(&v)?),
                "resourceVersion" => {
                    o.resource_version = match v.as_str() {
                        "" => ResourceVersion::Unset,
                        "0" => ResourceVersion::Any,
                        n => ResourceVersion::At(n.parse().map_err(|_| QueryError::Value {
                            param: "resourceVersion",
                            value: v.clone(),
                            expected: "a resource version from this server",
                        })?),
                    }
                }
                "resourceVersionMatch" => {
                    o.version_match = match v.as_str() {
                        "" => None,
                        "NotOlderThan" => Some(VersionMatch::NotOlderThan),
                        "Exact" => Some(VersionMatch::Exact),
                        _ => {
                            return Err(QueryError::Value {
                                param: "resourceVersionMatch",
                                value: v.clone(),
                                expected: "NotOlderThan or Exact",
                            });
                        }
                    }
                }
                "watch" => o.watch = parse_bool("watch", &v)?,
                "allowWatchBookmarks" => {
                    o.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", &v)?
                }
                "sendInitialEvents" => {
                    o.send_initial_events = Some(parse_bool("sendInitialEvents", &v)?)
                }
                "timeoutSeconds" => {
                    o.timeout_seconds = Some(v.parse().map_err(|_| QueryError::Value {
                        param: "timeoutSeconds",
                        value: v.clone(),
                        expected: "a number of seconds",
                    })?)
                }
                "includeObject" => {
                    o.include_object = match v.as_str() {
                        "None" => IncludeObject::None,
                        "Metadata" | "" => IncludeObject::Metadata,
                        "Object" => IncludeObject::Object,
                        _ => {
                            return Err(QueryError::Value {
                                param: "includeObject",
                                value: v.clone(),
                                expected: "None, Metadata or Object",
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        o.check()?;
        Ok(o)
    }

    fn check(&self) -> Result<(), QueryError> {
        use QueryError::Forbidden;
        if self.version_match.is_some() && self.resource_version == ResourceVersion::Unset {
            return Err(Forbidden(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if self.version_match == Some(VersionMatch::Exact)
            && self.resource_version == ResourceVersion::Any
        {
            return Err(Forbidden(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        if self.continue_token.is_some() && self.version_match.is_some() {
            return Err(Forbidden(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if self.continue_token.is_some() && matches!(self.resource_version, ResourceVersion::At(_))
        {
            return Err(Forbidden(
                "specifying resource version is not allowed when using continue",
            ));
        }
        if self.watch {
            if self.send_initial_events == Some(true) {
                if self.version_match != Some(VersionMatch::NotOlderThan) {
                    return Err(Forbidden(
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    ));
                }
                if !self.allow_watch_bookmarks {
                    return Err(Forbidden(
                        "sendInitialEvents requires allowWatchBookmarks=true",
                    ));
                }
            } else if self.version_match.is_some() && self.send_initial_events.is_none() {
                return Err(Forbidden(
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
        } else if self.send_initial_events.is_some() {
            return Err(Forbidden("sendInitialEvents is forbidden for list"));
        }
        Ok(())
    }

    /// Whether any selector is set (the list then reports no `remainingItemCount`).
    pub fn has_selectors(&self) -> bool {
        !self.label_selector.is_empty() || !self.field_selector.is_empty()
    }
}

impl WriteOptions {
    /// Parses the query string of a write.
    pub fn parse(query: &str) -> Result<WriteOptions, QueryError> {
        let mut o = WriteOptions::default();
        for (k, v) in pairs(query) {
            match k.as_str() {
                "dryRun" => match v.as_str() {
                    "All" => o.dry_run = true,
                    "" => {}
                    _ => {
                        return Err(QueryError::Value {
                            param: "dryRun",
                            value: v,
                            expected: "All",
                        });
                    }
                },
                "fieldValidation" => match v.as_str() {
                    "Strict" => o.strict = true,
                    "Warn" | "Ignore" | "" => {}
                    _ => {
                        return Err(QueryError::Value {
                            param: "fieldValidation",
                            value: v,
                            expected: "Strict, Warn or Ignore",
                        });
                    }
                },
                _ => {}
            }
        }
        Ok(o)
    }
}

/// A `continue` token: the snapshot's resourceVersion and the last key returned, encoded as
/// kube-apiserver does (base64url of `{"v":"meta.k8s.io/v1","rv":N,"start":"ns/name\u0000"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueToken {
    /// The resourceVersion of the list's first page; later pages read the same snapshot.
    pub rv: u64,
    /// Namespace of the last object returned (empty for cluster-scoped kinds).
    pub namespace: String,
    /// Name of the last object returned.
    pub name: String,
}

#[derive(Serialize, Deserialize)]
struct TokenJson {
    v: String,
    rv: u64,
    start: String,
}

impl ContinueToken {
    /// The token's text.
    pub fn encode(&self) -> String {
        let start = format!("{}/{}\u{0}", self.namespace, self.name);
        let json = serde_json::to_vec(&TokenJson {
            v: "meta.k8s.io/v1".into(),
            rv: self.rv,
            start,
        })
        .unwrap_or_default();
        BASE64URL_NOPAD.encode(&json)
    }

    /// Decodes a token made by [`ContinueToken::encode`].
    pub fn decode(text: &str) -> Result<ContinueToken, QueryError> {
        let bytes = BASE64URL_NOPAD
            .decode(text.trim_end_matches('=').as_bytes())
            .map_err(|e| QueryError::Continue(e.to_string()))?;
        let t: TokenJson =
            serde_json::from_slice(&bytes).map_err(|e| QueryError::Continue(e.to_string()))?;
        if t.v != "meta.k8s.io/v1" {
            return Err(QueryError::Continue(format!("unknown version {:?}", t.v)));
        }
        let start = t.start.strip_suffix('\u{0}').unwrap_or(&t.start);
        let (namespace, name) = start
            .split_once('/')
            .ok_or_else(|| QueryError::Continue(format!("bad start key {start:?}")))?;
        Ok(ContinueToken {
            rv: t.rv,
            namespace: namespace.into(),
            name: name.into(),
        })
    }
}

/// The response format a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain JSON objects and lists.
    Json,
    /// `meta.k8s.io/v1` Table (server-side printing, as `kubectl get` asks).
    Table,
    /// `meta.k8s.io/v1` PartialObjectMetadata(List) (kube-rs metadata watchers).
    Metadata,
    /// `apidiscovery.k8s.io/v2` APIGroupDiscoveryList (kubectl's aggregated discovery).
    AggregatedDiscovery,
}

/// A media range of an `Accept` header: `type/subtype;param=value...`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaRange {
    mime: String,
    params: Vec<(String, String)>,
}

impl MediaRange {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn media_ranges(accept: &str) -> Vec<MediaRange> {
    accept
        .split(',')
        .filter_map(|r| {
            let mut parts = r.split(';').map(str::trim);
            let mime = parts.next().filter(|m| !m.is_empty())?.to_ascii_lowercase();
            let params = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                .collect();
            Some(MediaRange { mime, params })
        })
        .collect()
}

/// Picks the first format in the client's `Accept` list that `allowed` contains. A missing or
/// empty header means JSON. `None`: nothing acceptable (HTTP 406).
pub fn negotiate(accept: Option<&str>, allowed: &[Format]) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Format::Json);
    };
    for r in media_ranges(accept) {
        let json = matches!(
            r.mime.as_str(),
            "application/json" | "application/*" | "*/*"
        );
        if !json {
            continue;
        }
        let wanted = match (r.param("as"), r.param("g"), r.param("v")) {
            (None, _, _) => Format::Json,
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) => Format::Table,
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1"),
            ) => Format::Metadata,
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2")) => {
                Format::AggregatedDiscovery
            }
            _ => continue,
        };
        if allowed.contains(&wanted) {
            return Some(wanted);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_options_as_kube_runtime_sends_them() {
        let o = ListOptions::parse(
            "labelSelector=%21service.kubernetes.io%2Fservice-proxy-name&limit=500",
            Kind::Service,
        )
        .unwrap();
        assert_eq!(
            o.label_selector,
            LabelSelector::parse("!service.kubernetes.io/service-proxy-name").unwrap()
        );
        assert_eq!(o.limit, Some(500));
        assert!(!o.watch);
        let w = ListOptions::parse(
            "&watch=true&timeoutSeconds=290&fieldSelector=metadata.name%3Dnode1&allowWatchBookmarks=true&resourceVersion=42",
            Kind::Node,
        )
        .unwrap();
        assert!(w.watch && w.allow_watch_bookmarks);
        assert_eq!(
            (w.timeout_seconds, w.resource_version),
            (Some(290), ResourceVersion::At(42))
        );
        assert_eq!(w.field_selector.0[0].value, "node1");
        let s = ListOptions::parse(
            "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=0",
            Kind::Pod,
        )
        .unwrap();
        assert_eq!(s.send_initial_events, Some(true));
        assert_eq!(
            ListOptions::parse("resourceVersion=0", Kind::Pod)
                .unwrap()
                .resource_version,
            ResourceVersion::Any
        );
    }

    #[test]
    fn forbidden_combinations_are_refused() {
        let tok = ContinueToken {
            rv: 5,
            namespace: "d".into(),
            name: "x".into(),
        }
        .encode();
        for q in [
            "resourceVersionMatch=Exact".to_string(),
            "resourceVersion=0&resourceVersionMatch=Exact".into(),
            format!("continue={tok}&resourceVersion=3"),
            format!("continue={tok}&resourceVersion=0&resourceVersionMatch=NotOlderThan"),
            "watch=true&sendInitialEvents=true&resourceVersion=0&resourceVersionMatch=NotOlderThan"
                .into(),
            "watch=true&resourceVersion=1&resourceVersionMatch=NotOlderThan".into(),
            "sendInitialEvents=true".into(),
            "limit=x".into(),
            "resourceVersion=abc".into(),
            "labelSelector=a+in+b".into(),
            "fieldSelector=spec.nodeName%3Dx".into(),
            "continue=%%%".into(),
        ] {
            assert!(ListOptions::parse(&q, Kind::Service).is_err(), "{q}");
        }
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = ContinueToken {
            rv: 17,
            namespace: "kube-system".into(),
            name: "dns".into(),
        };
        let text = t.encode();
        assert!(!text.contains('=') && !text.contains('+'));
        assert_eq!(ContinueToken::decode(&text).unwrap(), t);
        let nodes = ContinueToken {
            rv: 3,
            namespace: String::new(),
            name: "node1".into(),
        };
        assert_eq!(ContinueToken::decode(&nodes.encode()).unwrap(), nodes);
        assert!(ContinueToken::decode("bm9wZQ").is_err());
    }

    #[test]
    fn accept_headers_negotiate() {
        use Format::*;
        let all = [Json, Table, Metadata];
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl_get), &all), Some(Table));
        assert_eq!(negotiate(Some(kubectl_get), &[Json]), Some(Json));
        assert_eq!(negotiate(None, &all), Some(Json));
        assert_eq!(negotiate(Some("*/*"), &all), Some(Json));
        assert_eq!(
            negotiate(
                Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
                &all
            ),
            Some(Metadata)
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf"), &all),
            None
        );
        let discovery = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            negotiate(Some(discovery), &[Json, AggregatedDiscovery]),
            Some(AggregatedDiscovery)
        );
        let old = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            negotiate(Some(old), &[Json, AggregatedDiscovery]),
            Some(Json)
        );
    }

    #[test]
    fn write_options() {
        assert_eq!(
            WriteOptions::parse(
                "dryRun=All&fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
            )
            .unwrap(),
            WriteOptions {
                dry_run: true,
                strict: true
            }
        );
        assert!(WriteOptions::parse("dryRun=Some").is_err());
    }

    #[test]
    fn components_decode() {
        assert_eq!(decode_component("a%3Db+c%2"), "a=b c%2");
        assert_eq!(decode_component("%zz"), "%zz");
    }
}
