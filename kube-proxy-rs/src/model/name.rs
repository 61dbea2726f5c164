//! Names of the things the model is keyed by: [`ServicePortName`] and object references.
//!
//! In: a Service's namespace, name and one `spec.ports[]` entry. Out: the key every render,
//! chain-name hash and rule comment uses, printed exactly as upstream kube-proxy prints it.

use std::fmt;

use dataplane::Protocol;

/// Whether `s` is a DNS-1123 label (lowercase letters, digits and '-', starting and ending
/// with a letter or digit, at most 63 characters): what the API server requires of a
/// namespace, a Service's name and its port names. Objects from `--manifests` are not
/// validated by an API server, and these names go into rule comments and chain-name hashes
/// (found by fuzzing: a `"` in a name ended an iptables comment early).
pub(crate) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&b.len())
        && b.iter().all(inner)
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
}

/// One load-balanced port of one Service: upstream's `proxy.ServicePortName`.
///
/// Displayed as `namespace/name:portName`, or `namespace/name` when the port has no name
/// (upstream `ServicePortName.String()`). The protocol is part of the identity but not of
/// the display; chain-name hashes append it separately (see [`crate::names`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    /// `metadata.namespace` of the Service.
    pub namespace: String,
    /// `metadata.name` of the Service.
    pub name: String,
    /// `spec.ports[].name` (empty for the single unnamed port a Service may have).
    pub port_name: String,
    /// `spec.ports[].protocol`: TCP, UDP or SCTP.
    pub protocol: Protocol,
}

impl ServicePortName {
    /// A service port name from its parts.
    pub fn new(namespace: &str, name: &str, port_name: &str, protocol: Protocol) -> Self {
        ServicePortName {
            namespace: namespace.to_string(),
            name: name.to_string(),
            port_name: port_name.to_string(),
            protocol,
        }
    }

    /// The Service this port belongs to.
    pub fn service(&self) -> ServiceName {
        ServiceName {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Whether this port belongs to the given Service.
    pub fn is_of(&self, service: &ServiceName) -> bool {
        self.namespace == service.namespace && self.name == service.name
    }
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port_name.is_empty() {
            write!(f, ":{}", self.port_name)?;
        }
        Ok(())
    }
}

/// A Service by namespace and name (upstream `types.NamespacedName`), shown `ns/name`.
///
/// Partial syncs work per Service, as upstream's `UpdatedServices` set does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The kinds of API object the model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// `v1` Service.
    Service,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
    /// `v1` Node.
    Node,
}

impl ObjectKind {
    /// The API kind, as in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Service => "Service",
            ObjectKind::EndpointSlice => "EndpointSlice",
            ObjectKind::Node => "Node",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One API object, shown as `Service ns/name` (or `Node name` for cluster-scoped objects).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: ObjectKind,
    /// `metadata.namespace` (empty for Nodes).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectRef {
    /// A reference from a kind and the object's metadata.
    pub fn from_meta(
        kind: ObjectKind,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> ObjectRef {
        ObjectRef {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}
