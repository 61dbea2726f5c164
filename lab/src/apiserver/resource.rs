//! The kinds the API server double serves and the REST paths that name them.
//!
//! ```text
//!   /api/v1/{plural}[/{name}[/status]]                          cluster-scoped, or all namespaces
//!   /api/v1/namespaces/{ns}/{plural}[/{name}[/status]]          namespaced
//!   /apis/discovery.k8s.io/v1/...                               the same shapes for EndpointSlices
//! ```
//! In: a request path. Out: a [`ResourcePath`] (kind, namespace, name, subresource), or `None`
//! when the path names nothing served (the server answers 404 as kube-apiserver does).

use serde::Serialize;

/// A kind served by the double (`kubectl api-resources` would list exactly these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    /// `v1` Namespace (cluster-scoped, short name `ns`).
    Namespace,
    /// `v1` Node (cluster-scoped, short name `no`).
    Node,
    /// `v1` Pod (short name `po`).
    Pod,
    /// `v1` Service (short name `svc`).
    Service,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
}

/// Static facts about a served kind, as discovery (`/api/v1`, `/apis/...`) reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// The kind's name (`Service`).
    pub kind: &'static str,
    /// Resource name in paths (`services`).
    pub plural: &'static str,
    /// Singular resource name (`service`).
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// `kubectl` short names (`svc`).
    pub short_names: &'static [&'static str],
    /// Discovery categories (`all`).
    pub categories: &'static [&'static str],
    /// Whether the kind has a `/status` subresource.
    pub status: bool,
}

/// Verbs on a collection or item of a served kind, as discovery lists them.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Verbs on a `/status` subresource.
pub const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

impl Kind {
    /// Every served kind, core group first (the order discovery lists them in).
    pub const ALL: [Kind; 5] = [
        Kind::Namespace,
        Kind::Node,
        Kind::Pod,
        Kind::Service,
        Kind::EndpointSlice,
    ];

    /// The kind's static facts.
    pub fn info(self) -> &'static KindInfo {
        const fn core(
            kind: &'static str,
            plural: &'static str,
            singular: &'static str,
            namespaced: bool,
            short_names: &'static [&'static str],
            categories: &'static [&'static str],
        ) -> KindInfo {
            KindInfo {
                group: "",
                version: "v1",
                kind,
                plural,
                singular,
                namespaced,
                short_names,
                categories,
                status: true,
            }
        }
        static NAMESPACE: KindInfo =
            core("Namespace", "namespaces", "namespace", false, &["ns"], &[]);
        static NODE: KindInfo = core("Node", "nodes", "node", false, &["no"], &[]);
        static POD: KindInfo = core("Pod", "pods", "pod", true, &["po"], &["all"]);
        static SERVICE: KindInfo = core("Service", "services", "service", true, &["svc"], &["all"]);
        static ENDPOINT_SLICE: KindInfo = KindInfo {
            group: "discovery.k8s.io",
            version: "v1",
            kind: "EndpointSlice",
            plural: "endpointslices",
            singular: "endpointslice",
            namespaced: true,
            short_names: &[],
            categories: &[],
            status: false,
        };
        match self {
            Kind::Namespace => &NAMESPACE,
            Kind::Node => &NODE,
            Kind::Pod => &POD,
            Kind::Service => &SERVICE,
            Kind::EndpointSlice => &ENDPOINT_SLICE,
        }
    }

    /// `apiVersion` of the kind's objects (`v1`, `discovery.k8s.io/v1`).
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            _ => "v1",
        }
    }

    /// The kind of the list (`ServiceList`).
    pub fn list_kind(self) -> String {
        format!("{}List", self.info().kind)
    }

    /// The served kind with this `apiVersion` and `kind`, if any.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.api_version() == api_version && k.info().kind == kind)
    }

    /// The served kind with this group, version and plural resource name, if any.
    pub fn from_plural(group: &str, version: &str, plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| {
            let i = k.info();
            i.group == group && i.version == version && i.plural == plural
        })
    }

    /// The served kind of a k8s-openapi type (`Kind::of::<Service>()`).
    pub fn of<K: k8s_openapi::Resource>() -> Option<Kind> {
        Kind::from_type(K::API_VERSION, K::KIND)
    }

    /// The path prefix of the kind's group version (`/api/v1`, `/apis/discovery.k8s.io/v1`).
    pub fn group_version_path(self) -> String {
        let i = self.info();
        if i.group.is_empty() {
            format!("/api/{}", i.version)
        } else {
            format!("/apis/{}/{}", i.group, i.version)
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.info().kind)
    }
}

/// A subresource of an object path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: reads the object, writes only its `status`.
    Status,
}

/// A parsed resource path: a collection (`name` is `None`) or one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// The kind addressed.
    pub kind: Kind,
    /// The namespace from the path (`None`: cluster-scoped kind, or all namespaces).
    pub namespace: Option<String>,
    /// The object's name, for item paths.
    pub name: Option<String>,
    /// The subresource, if any.
    pub subresource: Option<Subresource>,
}

impl ResourcePath {
    /// Parses a request path (without the query). `None` when nothing served matches, including
    /// a namespace in the path of a cluster-scoped kind and unknown subresources.
    pub fn parse(path: &str) -> Option<ResourcePath> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        // segs[0] is "" (the path starts with '/').
        let (group, version, rest) = match segs.get(1..)? {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        if rest.iter().any(|s| s.is_empty()) {
            return None;
        }
        let item = |kind: Kind, ns: Option<&str>, tail: &[&str]| -> Option<ResourcePath> {
            if kind.info().namespaced != ns.is_some() && !(ns.is_none() && tail.is_empty()) {
                return None;
            }
            let (name, subresource) = match tail {
                [] => (None, None),
                [name] => (Some(*name), None),
                [name, "status"] if kind.info().status => (Some(*name), Some(Subresource::Status)),
                _ => return None,
            };
            Some(ResourcePath {
                kind,
                namespace: ns.map(str::to_string),
                name: name.map(str::to_string),
                subresource,
            })
        };
        match rest {
            // /api/v1/namespaces/{ns}/{plural}/...: a namespaced resource. A core-group
            // `/api/v1/namespaces/{name}[/status]` is the Namespace object itself.
            ["namespaces", ns, plural, tail @ ..] if !(group.is_empty() && *plural == "status") => {
                let kind = Kind::from_plural(group, version, plural)?;
                if !kind.info().namespaced {
                    return None;
                }
                item(kind, Some(ns), tail)
            }
            [plural, tail @ ..] => {
                let kind = Kind::from_plural(group, version, plural)?;
                item(kind, None, tail)
            }
            [] => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kind: Kind, ns: Option<&str>, name: Option<&str>, status: bool) -> Option<ResourcePath> {
        Some(ResourcePath {
            kind,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: status.then_some(Subresource::Status),
        })
    }

    #[test]
    fn paths_parse() {
        let cases = [
            ("/api/v1/services", p(Kind::Service, None, None, false)),
            (
                "/api/v1/namespaces/default/services",
                p(Kind::Service, Some("default"), None, false),
            ),
            (
                "/api/v1/namespaces/default/services/",
                p(Kind::Service, Some("default"), None, false),
            ),
            (
                "/api/v1/namespaces/d/services/web",
                p(Kind::Service, Some("d"), Some("web"), false),
            ),
            (
                "/api/v1/namespaces/d/services/web/status",
                p(Kind::Service, Some("d"), Some("web"), true),
            ),
            ("/api/v1/nodes", p(Kind::Node, None, None, false)),
            (
                "/api/v1/nodes/node1",
                p(Kind::Node, None, Some("node1"), false),
            ),
            (
                "/api/v1/nodes/node1/status",
                p(Kind::Node, None, Some("node1"), true),
            ),
            ("/api/v1/namespaces", p(Kind::Namespace, None, None, false)),
            (
                "/api/v1/namespaces/kube-system",
                p(Kind::Namespace, None, Some("kube-system"), false),
            ),
            (
                "/api/v1/namespaces/x/status",
                p(Kind::Namespace, None, Some("x"), true),
            ),
            (
                "/api/v1/namespaces/x/pods",
                p(Kind::Pod, Some("x"), None, false),
            ),
            (
                "/apis/discovery.k8s.io/v1/endpointslices",
                p(Kind::EndpointSlice, None, None, false),
            ),
            (
                "/apis/discovery.k8s.io/v1/namespaces/d/endpointslices/web-abc",
                p(Kind::EndpointSlice, Some("d"), Some("web-abc"), false),
            ),
            // Not served: unknown kinds, subresources, scopes and groups.
            ("/api/v1/endpoints", None),
            (
                "/apis/discovery.k8s.io/v1/namespaces/d/endpointslices/x/status",
                None,
            ),
            ("/api/v1/namespaces/d/nodes", None),
            ("/api/v1/services/web", None),
            ("/api/v1/namespaces/d/services/web/proxy", None),
            ("/api/v2/services", None),
            ("/apis/apps/v1/deployments", None),
            ("/api//services", None),
            ("/", None),
        ];
        for (path, want) in cases {
            assert_eq!(ResourcePath::parse(path), want, "{path}");
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_type(k.api_version(), k.info().kind), Some(k));
            let i = k.info();
            assert_eq!(Kind::from_plural(i.group, i.version, i.plural), Some(k));
        }
        assert_eq!(
            Kind::of::<k8s_openapi::api::core::v1::Service>(),
            Some(Kind::Service)
        );
        assert_eq!(
            Kind::of::<k8s_openapi::api::discovery::v1::EndpointSlice>(),
            Some(Kind::EndpointSlice)
        );
        assert_eq!(Kind::of::<k8s_openapi::api::core::v1::Endpoints>(), None);
        assert_eq!(
            Kind::EndpointSlice.group_version_path(),
            "/apis/discovery.k8s.io/v1"
        );
    }
}
