//! Kubernetes manifests as the deployment test reads them: YAML documents into k8s-openapi
//! types with unknown fields refused, the RBAC they grant, and the resource kinds a program's
//! source uses.
//!
//! ```text
//!   file text ──documents──> [(index, serde_json::Value)]
//!     ──typed──> Object (k8s-openapi; serde_path_to_error names the path of a bad value)
//!        └ typed value serialized back and compared with the input: a field the input has
//!          and the type does not is ManifestError::UnknownField { path }
//!   [Object] ──grants_of(ServiceAccount)──> {(apiGroup, resource, verb)} via ClusterRoleBindings
//!   program source ──kinds_used──> {k8s_openapi::api::GROUP::VERSION::Kind} ──resource_of──> (group, plural)
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;

/// Why a manifest file is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not YAML.
    #[error("{file}: document {document}: not YAML: {message}")]
    Yaml {
        /// The file.
        file: PathBuf,
        /// 1-based document number.
        document: usize,
        /// serde_yaml's message (with line and column).
        message: String,
    },
    /// A document without `apiVersion` and `kind`, or of a kind this test does not know.
    #[error("{file}: document {document}: unsupported object {api_version}/{kind}")]
    Kind {
        /// The file.
        file: PathBuf,
        /// 1-based document number.
        document: usize,
        /// `apiVersion`.
        api_version: String,
        /// `kind`.
        kind: String,
    },
    /// A value of the wrong type or shape.
    #[error("{file}: document {document} ({kind}): {path}: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based document number.
        document: usize,
        /// `kind`.
        kind: String,
        /// Where, e.g. `spec.template.spec.containers[0].ports[0].containerPort`.
        path: String,
        /// What serde said.
        message: String,
    },
    /// A field the Kubernetes type does not have (the API server would drop or refuse it).
    #[error("{file}: document {document} ({kind}): unknown field {path}")]
    UnknownField {
        /// The file.
        file: PathBuf,
        /// 1-based document number.
        document: usize,
        /// `kind`.
        kind: String,
        /// Where, e.g. `spec.template.spec.hostNetwrok`.
        path: String,
    },
}

/// One object of the kinds the deployment uses.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Object {
    DaemonSet(Box<DaemonSet>),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    Secret(Secret),
}

impl Object {
    /// `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::DaemonSet(_) => "DaemonSet",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::ClusterRole(_) => "ClusterRole",
            Object::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Object::Role(_) => "Role",
            Object::RoleBinding(_) => "RoleBinding",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        let m = match self {
            Object::DaemonSet(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::ClusterRole(o) => &o.metadata,
            Object::ClusterRoleBinding(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        };
        m.name.as_deref().unwrap_or("")
    }
}

/// The non-empty YAML documents of `text`, numbered from 1, as JSON values.
pub fn documents(file: &Path, text: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| ManifestError::Yaml {
            file: file.to_path_buf(),
            document: i + 1,
            message: e.to_string(),
        })?;
        if !v.is_null() {
            out.push((i + 1, v));
        }
    }
    Ok(out)
}

/// The first field of `input` (a path such as `spec.template.metadata.labelz`) that is not
/// in `typed`, the same object after a round trip through its Kubernetes type. Null values
/// count as absent.
pub fn unknown_field(input: &Value, typed: &Value) -> Option<String> {
    fn walk(input: &Value, typed: &Value, path: &str) -> Option<String> {
        match (input, typed) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in a {
                    if v.is_null() {
                        continue;
                    }
                    let here = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match b.get(k) {
                        None => return Some(here),
                        Some(t) => {
                            if let Some(p) = walk(v, t, &here) {
                                return Some(p);
                            }
                        }
                    }
                }
                None
            }
            (Value::Array(a), Value::Array(b)) => a
                .iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| walk(x, y, &format!("{path}[{i}]"))),
            _ => None,
        }
    }
    walk(input, typed, "")
}

fn typed_as<T>(file: &Path, document: usize, kind: &str, v: &Value) -> Result<T, ManifestError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let t: T = serde_path_to_error::deserialize(v.clone()).map_err(|e| ManifestError::Invalid {
        file: file.to_path_buf(),
        document,
        kind: kind.to_string(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    let back = serde_json::to_value(&t).map_err(|e| ManifestError::Invalid {
        file: file.to_path_buf(),
        document,
        kind: kind.to_string(),
        path: ".".into(),
        message: e.to_string(),
    })?;
    if let Some(path) = unknown_field(v, &back) {
        return Err(ManifestError::UnknownField {
            file: file.to_path_buf(),
            document,
            kind: kind.to_string(),
            path,
        });
    }
    Ok(t)
}

/// Document `document` of `file` as its Kubernetes type, refusing unknown fields.
pub fn typed(file: &Path, document: usize, v: &Value) -> Result<Object, ManifestError> {
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    Ok(match (api_version, kind) {
        ("apps/v1", "DaemonSet") => Object::DaemonSet(Box::new(typed_as(file, document, kind, v)?)),
        ("v1", "ServiceAccount") => Object::ServiceAccount(typed_as(file, document, kind, v)?),
        ("v1", "ConfigMap") => Object::ConfigMap(typed_as(file, document, kind, v)?),
        ("v1", "Secret") => Object::Secret(typed_as(file, document, kind, v)?),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            Object::ClusterRole(typed_as(file, document, kind, v)?)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            Object::ClusterRoleBinding(typed_as(file, document, kind, v)?)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => {
            Object::Role(typed_as(file, document, kind, v)?)
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            Object::RoleBinding(typed_as(file, document, kind, v)?)
        }
        _ => {
            return Err(ManifestError::Kind {
                file: file.to_path_buf(),
                document,
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            });
        }
    })
}

/// One permission: `verb` on `resource` of `group` (`""` is the core group).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    /// API group.
    pub group: String,
    /// Resource (plural, e.g. `endpointslices`).
    pub resource: String,
    /// Verb.
    pub verb: String,
}

impl Grant {
    /// A grant from string slices.
    pub fn new(group: &str, resource: &str, verb: &str) -> Grant {
        Grant {
            group: group.into(),
            resource: resource.into(),
            verb: verb.into(),
        }
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {}.{}", self.verb, self.resource, g)
    }
}

/// Why a set of rules cannot be reduced to grants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RbacError {
    /// A `*` in groups, resources or verbs: never minimal.
    #[error("ClusterRole {role}: wildcard `*` in {field}")]
    Wildcard {
        /// The role.
        role: String,
        /// `apiGroups`, `resources` or `verbs`.
        field: &'static str,
    },
    /// `nonResourceURLs` or `resourceNames`, which this check does not model.
    #[error("ClusterRole {role}: {field} is not modelled by this check")]
    Unmodelled {
        /// The role.
        role: String,
        /// The field.
        field: &'static str,
    },
    /// A binding to a ClusterRole that is not in the manifests.
    #[error("ClusterRoleBinding {binding}: ClusterRole {role} is not defined")]
    MissingRole {
        /// The binding.
        binding: String,
        /// The role it names.
        role: String,
    },
}

/// The grants of a ClusterRole's rules.
pub fn rule_grants(role: &str, rules: &[PolicyRule]) -> Result<BTreeSet<Grant>, RbacError> {
    let mut out = BTreeSet::new();
    for r in rules {
        let groups = r.api_groups.clone().unwrap_or_default();
        let resources = r.resources.clone().unwrap_or_default();
        for (field, list) in [
            ("apiGroups", &groups),
            ("resources", &resources),
            ("verbs", &r.verbs),
        ] {
            if list.iter().any(|x| x.contains('*')) {
                return Err(RbacError::Wildcard {
                    role: role.into(),
                    field,
                });
            }
        }
        if r.non_resource_urls.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(RbacError::Unmodelled {
                role: role.into(),
                field: "nonResourceURLs",
            });
        }
        if r.resource_names.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(RbacError::Unmodelled {
                role: role.into(),
                field: "resourceNames",
            });
        }
        for g in &groups {
            for res in &resources {
                for v in &r.verbs {
                    out.insert(Grant::new(g, res, v));
                }
            }
        }
    }
    Ok(out)
}

/// The ClusterRole named `name`.
pub fn cluster_role<'a>(objects: &'a [Object], name: &str) -> Option<&'a ClusterRole> {
    objects.iter().find_map(|o| match o {
        Object::ClusterRole(r) if r.metadata.name.as_deref() == Some(name) => Some(r),
        _ => None,
    })
}

/// Everything cluster-wide that ServiceAccount `namespace/name` may do, through the
/// ClusterRoleBindings in `objects` (RoleBindings grant only in one namespace and do not
/// count for programs that watch the whole cluster).
pub fn grants_of(
    objects: &[Object],
    namespace: &str,
    name: &str,
) -> Result<BTreeSet<Grant>, RbacError> {
    let mut out = BTreeSet::new();
    for o in objects {
        let Object::ClusterRoleBinding(b) = o else {
            continue;
        };
        let bound = b.subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == name
                && s.namespace.as_deref() == Some(namespace)
        });
        if !bound || b.role_ref.kind != "ClusterRole" {
            continue;
        }
        let role =
            cluster_role(objects, &b.role_ref.name).ok_or_else(|| RbacError::MissingRole {
                binding: b.metadata.name.clone().unwrap_or_default(),
                role: b.role_ref.name.clone(),
            })?;
        out.extend(rule_grants(
            &b.role_ref.name,
            &role.rules.clone().unwrap_or_default(),
        )?);
    }
    Ok(out)
}

/// A Kubernetes type a Rust source file names as `k8s_openapi::api::GROUP::VERSION::Kind`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KindRef {
    /// The module path below `k8s_openapi::api`, e.g. `discovery::v1`.
    pub module: String,
    /// The type, e.g. `EndpointSlice`.
    pub kind: String,
}

/// Every `k8s_openapi::api::G::V::Name` and `k8s_openapi::api::G::V::{A, B}` in the `.rs`
/// files under `dir` (whether or not they are resources; see [`resource_of`]).
pub fn kinds_used(dir: &Path) -> std::io::Result<BTreeSet<KindRef>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.extend(kinds_in(&std::fs::read_to_string(&p)?));
            }
        }
    }
    Ok(out)
}

/// The `k8s_openapi::api::...` types named in one source text.
pub fn kinds_in(src: &str) -> BTreeSet<KindRef> {
    const PREFIX: &str = "k8s_openapi::api::";
    let mut out = BTreeSet::new();
    for (at, _) in src.match_indices(PREFIX) {
        let rest = &src[at + PREFIX.len()..];
        let mut parts = rest.splitn(3, "::");
        let (Some(group), Some(version), Some(tail)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let module = format!("{group}::{version}");
        let names: Vec<&str> = match tail.strip_prefix('{') {
            Some(list) => list
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .collect(),
            None => vec![tail],
        };
        for n in names {
            let ident: String = n
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if ident.starts_with(|c: char| c.is_ascii_uppercase()) {
                out.insert(KindRef {
                    module: module.clone(),
                    kind: ident,
                });
            }
        }
    }
    out
}

/// (module, kind, group, plural) of the top-level resources a node program could read, from
/// k8s-openapi's own `Resource` constants. Types not listed (`ServicePort`,
/// `EndpointConditions`, ...) are parts of objects, not resources one watches.
fn resource_table() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    macro_rules! table {
        ($($g:ident::$v:ident => $($ty:ident),+;)+) => {
            vec![$($(
                res::<k8s_openapi::api::$g::$v::$ty>(
                    concat!(stringify!($g), "::", stringify!($v)),
                ),
            )+)+]
        };
    }
    fn res<T: k8s_openapi::Resource>(
        module: &'static str,
    ) -> (&'static str, &'static str, &'static str, &'static str) {
        (module, T::KIND, T::GROUP, T::URL_PATH_SEGMENT)
    }
    table! {
        core::v1 => ConfigMap, Endpoints, Event, Namespace, Node, PersistentVolume,
            PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount;
        discovery::v1 => EndpointSlice;
        networking::v1 => IPAddress, Ingress, NetworkPolicy, ServiceCIDR;
        coordination::v1 => Lease;
        events::v1 => Event;
    }
}

/// The (API group, plural resource) of a type, if it is a top-level resource.
pub fn resource_of(k: &KindRef) -> Option<(&'static str, &'static str)> {
    resource_table()
        .into_iter()
        .find(|(m, kind, _, _)| *m == k.module && *kind == k.kind)
        .map(|(_, _, g, r)| (g, r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_with_their_path() {
        let input = json!({"spec": {"a": 1, "l": [{"x": 1}, {"x": 1, "y": 2}], "n": null}});
        let typed = json!({"spec": {"a": 1, "l": [{"x": 1}, {"x": 1}]}});
        assert_eq!(
            unknown_field(&input, &typed).as_deref(),
            Some("spec.l[1].y")
        );
        assert_eq!(unknown_field(&typed, &typed), None);
    }

    #[test]
    fn kinds_in_source() {
        let src = "use k8s_openapi::api::core::v1::{Node, Service};\n\
                   let a: Api<k8s_openapi::api::discovery::v1::EndpointSlice>;\n\
                   use k8s_openapi::api::core::v1::ServicePort;";
        let k: Vec<String> = kinds_in(src)
            .into_iter()
            .map(|k| format!("{}::{}", k.module, k.kind))
            .collect();
        assert_eq!(
            k,
            [
                "core::v1::Node",
                "core::v1::Service",
                "core::v1::ServicePort",
                "discovery::v1::EndpointSlice"
            ]
        );
        let r = |m: &str, k: &str| {
            resource_of(&KindRef {
                module: m.into(),
                kind: k.into(),
            })
        };
        assert_eq!(
            r("discovery::v1", "EndpointSlice"),
            Some(("discovery.k8s.io", "endpointslices"))
        );
        assert_eq!(r("core::v1", "Node"), Some(("", "nodes")));
        assert_eq!(r("core::v1", "ServicePort"), None);
    }
}
