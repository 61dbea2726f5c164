//! What kube-apiserver does to an object between the request body and storage: decode it as its
//! Go type would (k8s-openapi types here), check its metadata, stamp system fields, fill
//! defaults (Service ClusterIP and NodePort allocation included) and carry over what an update
//! may not change.
//!
//! ```text
//!   body ──decode (typed, pruned; Strict: unknown fields refused)──> check_meta ──> defaults
//!        ──create: uid, creationTimestamp, generation 1
//!        ──update: uid/creationTimestamp kept, status kept (or only status taken), generation+1
//!                  when anything outside metadata and status changed
//! ```
//! Spec fields are not validated beyond their types, so tests can feed clients the malformed
//! objects (port 0, bad IPs) a real server would refuse. No I/O; the clock and the set of
//! allocated addresses come in as arguments.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use super::resource::Kind;

/// An object the server refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The body does not decode as the kind (HTTP 400).
    #[error("{kind} in version \"{version}\" cannot be handled as a {kind}: {detail}")]
    Decode {
        /// The kind expected.
        kind: &'static str,
        /// Its version.
        version: &'static str,
        /// What did not decode.
        detail: String,
    },
    /// The object is semantically invalid (HTTP 422); each cause names a field.
    #[error("{kind} \"{name}\" is invalid: {}", causes.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join(", "))]
    Invalid {
        /// The kind.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// (field path, message) pairs.
        causes: Vec<(String, String)>,
    },
    /// The request cannot be served as sent (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// No address or port is left to allocate (HTTP 500, as the real allocators answer).
    #[error("failed to allocate a {what}: range is full")]
    Exhausted {
        /// `serviceIP` or `nodePort`.
        what: &'static str,
    },
}

/// The served kind an object declares with `apiVersion` and `kind`.
pub fn kind_of(obj: &Value) -> Result<Kind, ObjectError> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    Kind::from_type(api_version, kind).ok_or_else(|| {
        ObjectError::BadRequest(format!(
            "no kind \"{kind}\" is registered for version \"{api_version}\" on this server \
             (served: Namespace, Node, Pod, Service v1; EndpointSlice discovery.k8s.io/v1)"
        ))
    })
}

fn decode_as<K>(kind: Kind, obj: &Value) -> Result<Value, ObjectError>
where
    K: serde::de::DeserializeOwned + serde::Serialize,
{
    let err = |detail: String| ObjectError::Decode {
        kind: kind.info().kind,
        version: kind.api_version(),
        detail,
    };
    let typed: K = serde_json::from_value(obj.clone()).map_err(|e| err(e.to_string()))?;
    serde_json::to_value(typed).map_err(|e| err(e.to_string()))
}

/// Decodes `obj` as the Go type of `kind` would: the result keeps only the fields the type
/// knows (unknown ones are dropped, or refused with `strict`, as `fieldValidation=Strict`).
pub fn decode(kind: Kind, obj: &Value, strict: bool) -> Result<Value, ObjectError> {
    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::api::discovery::v1 as discovery;
    let pruned = match kind {
        Kind::Namespace => decode_as::<core::Namespace>(kind, obj)?,
        Kind::Node => decode_as::<core::Node>(kind, obj)?,
        Kind::Pod => decode_as::<core::Pod>(kind, obj)?,
        Kind::Service => decode_as::<core::Service>(kind, obj)?,
        Kind::EndpointSlice => decode_as::<discovery::EndpointSlice>(kind, obj)?,
    };
    if strict {
        let mut unknown = Vec::new();
        unknown_fields(obj, &pruned, "", &mut unknown);
        if !unknown.is_empty() {
            return Err(ObjectError::BadRequest(format!(
                "strict decoding error: {}",
                unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(pruned)
}

fn unknown_fields(given: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (given, known) {
        (Value::Object(g), Value::Object(k)) => {
            for (name, v) in g {
                let sub = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                match k.get(name) {
                    Some(kv) => unknown_fields(v, kv, &sub, out),
                    None if !v.is_null() => out.push(sub),
                    None => {}
                }
            }
        }
        (Value::Array(g), Value::Array(k)) => {
            for (i, (gv, kv)) in g.iter().zip(k).enumerate() {
                unknown_fields(gv, kv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Whether `s` is a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (dot-separated labels, at most 253 characters).
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Checks name and namespace: present, well-formed for the kind (Services and Namespaces are
/// DNS labels, Services starting with a letter; the rest DNS subdomains).
pub fn check_meta(kind: Kind, obj: &Value) -> Result<(), ObjectError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes = Vec::new();
    let (ok, rule) = match kind {
        Kind::Service => (
            is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
        ),
        Kind::Namespace => (
            is_dns_label(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ),
        _ => (
            is_dns_subdomain(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ),
    };
    if name.is_empty() {
        causes.push((
            "metadata.name".into(),
            "Required value: name or generateName is required".into(),
        ));
    } else if !ok {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": {rule}"),
        ));
    }
    if kind.info().namespaced {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !is_dns_label(ns) {
            causes.push((
                "metadata.namespace".into(),
                format!("Invalid value: \"{ns}\": must be a DNS label"),
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ObjectError::Invalid {
            kind: kind.info().kind,
            name: name.to_string(),
            causes,
        })
    }
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// Sets `apiVersion` and `kind`, and puts the object in `namespace` (or none, for
/// cluster-scoped kinds). A body naming another namespace than the request is refused.
pub fn place(kind: Kind, obj: &mut Value, namespace: Option<&str>) -> Result<(), ObjectError> {
    if !obj.is_object() {
        return Err(ObjectError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    obj["apiVersion"] = Value::String(kind.api_version().into());
    obj["kind"] = Value::String(kind.info().kind.into());
    let meta = meta_mut(obj);
    if kind.info().namespaced {
        let given = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        let ns = match (namespace, given) {
            (Some(url), "") => url.to_string(),
            (Some(url), body) if body != url => {
                return Err(ObjectError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            (_, "") => "default".to_string(),
            (_, body) => body.to_string(),
        };
        meta.insert("namespace".into(), Value::String(ns));
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

/// Stamps a new object: `uid`, `creationTimestamp` (`now`, RFC 3339), `generation` 1, a name
/// from `generateName` plus a suffix when no name is given; clears what clients may not set.
pub fn stamp_create(obj: &mut Value, uid: &str, now: &str) {
    let meta = meta_mut(obj);
    let unnamed = meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if let (true, Some(prefix)) = (unnamed, meta.get("generateName").and_then(Value::as_str)) {
        let name = format!("{prefix}{}", name_suffix(uid));
        meta.insert("name".into(), Value::String(name));
    }
    meta.insert("uid".into(), Value::String(uid.into()));
    meta.insert("creationTimestamp".into(), Value::String(now.into()));
    meta.insert("generation".into(), json!(1));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(k);
    }
}

/// Five characters from kube-apiserver's `generateName` alphabet, derived from `seed`.
fn name_suffix(seed: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    (0..5)
        .map(|i| ALPHABET[((h >> (i * 8)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// Which `status` an update stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFrom {
    /// The stored one (an update of the main resource: clients cannot change status there).
    Stored,
    /// The one given (test setup through the handle).
    Given,
    /// Only the given status; everything else stays as stored (the `/status` subresource).
    GivenOnly,
}

/// Carries system fields from the stored object into its replacement: `uid` and
/// `creationTimestamp`; `status` as `status` says; `generation` bumped when anything outside
/// metadata and status changed. Refuses a body whose `uid` differs (HTTP 409 in the caller).
pub fn carry_over(
    kind: Kind,
    new: &mut Value,
    old: &Value,
    status: StatusFrom,
) -> Result<(), String> {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if let (Some(given), Some(stored)) = (
        new.pointer("/metadata/uid").and_then(Value::as_str),
        old_meta.get("uid").and_then(Value::as_str),
    ) && given != stored
    {
        return Err(format!(
            "Precondition failed: UID in precondition: {given}, UID in object meta: {stored}"
        ));
    }
    if status == StatusFrom::GivenOnly {
        let status = new.get("status").cloned();
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        return Ok(());
    }
    if kind.info().status && status == StatusFrom::Stored {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    let spec_changed = without_meta_status(new) != without_meta_status(old);
    let generation = old_meta
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let meta = meta_mut(new);
    for k in ["uid", "creationTimestamp"] {
        match old_meta.get(k) {
            Some(v) => meta.insert(k.into(), v.clone()),
            None => meta.remove(k),
        };
    }
    meta.insert(
        "generation".into(),
        json!(generation + i64::from(spec_changed)),
    );
    meta.remove("resourceVersion");
    Ok(())
}

fn without_meta_status(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// Addresses and ports already taken, for Service allocation.
#[derive(Debug, Clone, Default)]
pub struct Allocated {
    /// ClusterIPs in use.
    pub cluster_ips: BTreeSet<IpAddr>,
    /// NodePorts (and health check node ports) in use.
    pub node_ports: BTreeSet<i64>,
}

impl Allocated {
    /// Collects what the given Services use.
    pub fn from_services<'a>(services: impl Iterator<Item = &'a Value>) -> Allocated {
        let mut a = Allocated::default();
        for s in services {
            a.note(s);
        }
        a
    }

    fn note(&mut self, svc: &Value) {
        let spec = &svc["spec"];
        let ips = spec["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&spec["clusterIP"]));
        self.cluster_ips.extend(
            ips.filter_map(Value::as_str)
                .filter_map(|s| s.parse::<IpAddr>().ok()),
        );
        let ports = spec["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| &p["nodePort"]);
        self.node_ports.extend(
            ports
                .chain(std::iter::once(&spec["healthCheckNodePort"]))
                .filter_map(Value::as_i64),
        );
    }
}

/// Where Services get their addresses: the ClusterIP ranges (one per family) and the NodePort
/// range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRanges {
    /// ClusterIP ranges, IPv4 first (`--service-cluster-ip-range`).
    pub cluster_ip: Vec<IpNet>,
    /// NodePort range, inclusive (`--service-node-port-range`).
    pub node_port: (i64, i64),
}

impl Default for ServiceRanges {
    /// 198.19.0.0/16 and 2001:db8:19::/112 (the project's ClusterIP plan), ports 30000-32767.
    fn default() -> Self {
        ServiceRanges {
            cluster_ip: vec![
                "198.19.0.0/16".parse().expect("a constant network"),
                "2001:db8:19::/112".parse().expect("a constant network"),
            ],
            node_port: (30000, 32767),
        }
    }
}

fn allocate_ip(range: &IpNet, used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    // Skip the network address and the first ten (the first is the `kubernetes` Service's).
    range.hosts().skip(10).find(|ip| !used.contains(ip))
}

fn allocate_port(range: (i64, i64), used: &BTreeSet<i64>) -> Option<i64> {
    (range.0..=range.1).find(|p| !used.contains(p))
}

/// Fills the defaults kube-apiserver fills for `kind`. Services get `type`, `sessionAffinity`,
/// port `protocol`/`targetPort`, a ClusterIP per requested family, NodePorts and a health check
/// node port as their type needs; values kept from `old` (an update) are not reallocated.
pub fn apply_defaults(
    kind: Kind,
    obj: &mut Value,
    old: Option<&Value>,
    ranges: &ServiceRanges,
    allocated: impl FnOnce() -> Allocated,
) -> Result<(), ObjectError> {
    match kind {
        Kind::Service => service_defaults(obj, old, ranges, allocated),
        Kind::EndpointSlice => {
            for p in obj["ports"].as_array_mut().into_iter().flatten() {
                default_str(p, "protocol", "TCP");
            }
            Ok(())
        }
        Kind::Pod => {
            let spec = ensure_object(obj, "spec");
            default_str(spec, "restartPolicy", "Always");
            default_str(spec, "dnsPolicy", "ClusterFirst");
            default_str(spec, "schedulerName", "default-scheduler");
            default_str(ensure_object(obj, "status"), "phase", "Pending");
            Ok(())
        }
        Kind::Namespace => {
            let spec = ensure_object(obj, "spec");
            if spec.get("finalizers").is_none() {
                spec["finalizers"] = json!(["kubernetes"]);
            }
            default_str(ensure_object(obj, "status"), "phase", "Active");
            Ok(())
        }
        Kind::Node => Ok(()),
    }
}

fn ensure_object<'a>(obj: &'a mut Value, field: &str) -> &'a mut Value {
    if !obj.get(field).is_some_and(Value::is_object) {
        obj[field] = json!({});
    }
    &mut obj[field]
}

fn default_str(obj: &mut Value, field: &str, value: &str) {
    if obj
        .get(field)
        .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    {
        obj[field] = Value::String(value.into());
    }
}

fn service_defaults(
    obj: &mut Value,
    old: Option<&Value>,
    ranges: &ServiceRanges,
    allocated: impl FnOnce() -> Allocated,
) -> Result<(), ObjectError> {
    let old_spec = old.map(|o| o["spec"].clone()).unwrap_or(Value::Null);
    let spec = ensure_object(obj, "spec");
    default_str(spec, "type", "ClusterIP");
    default_str(spec, "sessionAffinity", "None");
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    for p in spec["ports"].as_array_mut().into_iter().flatten() {
        default_str(p, "protocol", "TCP");
        if p.get("targetPort").is_none_or(Value::is_null) {
            p["targetPort"] = p["port"].clone();
        }
    }
    if ty == "ExternalName" {
        return Ok(());
    }
    default_str(spec, "internalTrafficPolicy", "Cluster");
    // An update keeps what was allocated when the new object leaves it out.
    for k in [
        "clusterIP",
        "clusterIPs",
        "ipFamilies",
        "ipFamilyPolicy",
        "healthCheckNodePort",
    ] {
        if spec.get(k).is_none_or(Value::is_null) && !old_spec[k].is_null() {
            spec[k] = old_spec[k].clone();
        }
    }
    for p in spec["ports"].as_array_mut().into_iter().flatten() {
        if p.get("nodePort").is_none_or(Value::is_null)
            && let Some(op) = old_spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|op| op["port"] == p["port"] && op["protocol"] == p["protocol"])
            && !op["nodePort"].is_null()
        {
            p["nodePort"] = op["nodePort"].clone();
        }
    }
    let mut lazy = LazyAllocated {
        make: Some(allocated),
        value: None,
    };
    // ClusterIPs: from clusterIP/clusterIPs/ipFamilies, allocating what is missing.
    let headless = spec["clusterIP"].as_str() == Some("None");
    let mut ips: Vec<String> = match spec["clusterIPs"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => spec["clusterIP"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
            .into_iter()
            .collect(),
    };
    let families: Vec<String> = spec["ipFamilies"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let dual = spec["ipFamilyPolicy"]
        .as_str()
        .is_some_and(|p| p != "SingleStack");
    if ips.is_empty() && !headless {
        let want: Vec<bool> = if families.is_empty() {
            if dual { vec![false, true] } else { vec![false] }
        } else {
            families.iter().map(|f| f == "IPv6").collect()
        };
        for v6 in want {
            let range = ranges
                .cluster_ip
                .iter()
                .find(|r| matches!(r, IpNet::V6(_)) == v6);
            if let Some(range) = range {
                let a = lazy.get();
                let ip = allocate_ip(range, &a.cluster_ips)
                    .ok_or(ObjectError::Exhausted { what: "serviceIP" })?;
                a.cluster_ips.insert(ip);
                ips.push(ip.to_string());
            }
        }
    }
    if headless && ips.is_empty() {
        ips.push("None".into());
    }
    if let Some(first) = ips.first() {
        spec["clusterIP"] = Value::String(first.clone());
        spec["clusterIPs"] = json!(ips);
    }
    if families.is_empty() {
        let fams: Vec<&str> = ips
            .iter()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| if ip.is_ipv6() { "IPv6" } else { "IPv4" })
            .collect();
        spec["ipFamilies"] = if fams.is_empty() {
            json!(["IPv4"])
        } else {
            json!(fams)
        };
    }
    let policy = if ips.len() > 1 {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    default_str(spec, "ipFamilyPolicy", policy);
    // NodePorts for NodePort and LoadBalancer Services.
    if ty == "NodePort" || ty == "LoadBalancer" {
        default_str(spec, "externalTrafficPolicy", "Cluster");
        if ty == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts").is_none() {
            spec["allocateLoadBalancerNodePorts"] = json!(true);
        }
        let want_ports = ty == "NodePort" || spec["allocateLoadBalancerNodePorts"] != json!(false);
        if want_ports {
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                if p.get("nodePort").is_none_or(Value::is_null) {
                    let a = lazy.get();
                    let port = allocate_port(ranges.node_port, &a.node_ports)
                        .ok_or(ObjectError::Exhausted { what: "nodePort" })?;
                    a.node_ports.insert(port);
                    p["nodePort"] = json!(port);
                }
            }
        }
        if ty == "LoadBalancer"
            && spec["externalTrafficPolicy"] == "Local"
            && spec["healthCheckNodePort"].is_null()
        {
            let a = lazy.get();
            let port = allocate_port(ranges.node_port, &a.node_ports)
                .ok_or(ObjectError::Exhausted { what: "nodePort" })?;
            a.node_ports.insert(port);
            spec["healthCheckNodePort"] = json!(port);
        }
    }
    if obj.get("status").is_none() {
        obj["status"] = json!({"loadBalancer": {}});
    }
    Ok(())
}

/// What is allocated, collected only when an allocation is needed.
struct LazyAllocated<F> {
    make: Option<F>,
    value: Option<Allocated>,
}

impl<F: FnOnce() -> Allocated> LazyAllocated<F> {
    fn get(&mut self) -> &mut Allocated {
        let make = &mut self.make;
        self.value
            .get_or_insert_with(|| make.take().map(|f| f()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn defaults(obj: &mut Value, old: Option<&Value>, taken: Allocated) -> Result<(), ObjectError> {
        apply_defaults(Kind::Service, obj, old, &ServiceRanges::default(), || taken)
    }

    #[test]
    fn decode_prunes_unknown_fields_or_refuses_them_when_strict() {
        let mut obj = svc(json!({"ports": [{"port": 80, "bogus": 1}], "selector": {"app": "web"}}));
        obj["extra"] = json!("x");
        let pruned = decode(Kind::Service, &obj, false).unwrap();
        assert_eq!(pruned["spec"]["ports"], json!([{"port": 80}]));
        assert!(pruned.get("extra").is_none());
        let e = decode(Kind::Service, &obj, true).unwrap_err().to_string();
        assert!(
            e.contains("unknown field \"extra\"")
                && e.contains("unknown field \"spec.ports[0].bogus\""),
            "{e}"
        );
        let bad = svc(json!({"ports": [{"port": "eighty"}]}));
        let e = decode(Kind::Service, &bad, false).unwrap_err();
        assert!(
            matches!(
                e,
                ObjectError::Decode {
                    kind: "Service",
                    ..
                }
            ),
            "{e}"
        );
        let wrong = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}});
        assert!(decode(Kind::Service, &wrong, false).is_err());
    }

    #[test]
    fn kinds_and_names_are_checked() {
        assert_eq!(kind_of(&svc(json!({}))).unwrap(), Kind::Service);
        let e = kind_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"})).unwrap_err();
        assert!(e.to_string().contains("no kind \"Deployment\""), "{e}");
        assert!(check_meta(Kind::Service, &svc(json!({}))).is_ok());
        for (kind, name, ok) in [
            (Kind::Service, "1web", false),
            (Kind::Service, "Web", false),
            (Kind::Pod, "web.v1", true),
            (Kind::Node, "node1.example", true),
            (Kind::Namespace, "a.b", false),
            (Kind::Pod, "", false),
        ] {
            let obj = json!({"metadata": {"name": name, "namespace": "default"}});
            assert_eq!(check_meta(kind, &obj).is_ok(), ok, "{kind} {name}");
        }
    }

    #[test]
    fn placement_follows_the_request_namespace() {
        let mut o = json!({"metadata": {"name": "web"}});
        place(Kind::Service, &mut o, Some("team")).unwrap();
        assert_eq!(
            (o["metadata"]["namespace"].as_str(), o["kind"].as_str()),
            (Some("team"), Some("Service"))
        );
        let mut o = json!({"metadata": {"name": "web", "namespace": "a"}});
        assert!(place(Kind::Service, &mut o, Some("b")).is_err());
        let mut n = json!({"metadata": {"name": "node1", "namespace": "a"}});
        place(Kind::Node, &mut n, None).unwrap();
        assert!(n["metadata"].get("namespace").is_none());
    }

    #[test]
    fn create_and_update_stamp_system_fields() {
        let mut o = svc(json!({"ports": [{"port": 80}]}));
        o["metadata"]["resourceVersion"] = json!("5");
        stamp_create(&mut o, "uid-1", "2026-01-01T00:00:00Z");
        assert_eq!(o["metadata"]["generation"], 1);
        assert!(o["metadata"].get("resourceVersion").is_none());
        o["status"] = json!({"loadBalancer": {"ingress": [{"ip": "198.19.255.1"}]}});
        // A label change keeps the generation; a spec change bumps it; status is kept.
        let mut relabelled = o.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        relabelled["status"] = json!({});
        carry_over(Kind::Service, &mut relabelled, &o, StatusFrom::Stored).unwrap();
        assert_eq!(relabelled["metadata"]["generation"], 1);
        assert_eq!(relabelled["status"], o["status"]);
        let mut changed = o.clone();
        changed["spec"]["ports"][0]["port"] = json!(81);
        changed["metadata"]["uid"] = Value::Null;
        changed["metadata"]["creationTimestamp"] = json!("2030-01-01T00:00:00Z");
        carry_over(Kind::Service, &mut changed, &o, StatusFrom::Stored).unwrap();
        assert_eq!(changed["metadata"]["generation"], 2);
        assert_eq!(changed["metadata"]["uid"], "uid-1");
        assert_eq!(
            changed["metadata"]["creationTimestamp"],
            "2026-01-01T00:00:00Z"
        );
        // /status takes only the status.
        let mut st = changed.clone();
        st["spec"]["ports"][0]["port"] = json!(9);
        st["status"] = json!({"loadBalancer": {}});
        carry_over(Kind::Service, &mut st, &o, StatusFrom::GivenOnly).unwrap();
        assert_eq!(st["spec"], o["spec"]);
        assert_eq!(st["status"], json!({"loadBalancer": {}}));
        let mut other = o.clone();
        other["metadata"]["uid"] = json!("uid-2");
        assert!(carry_over(Kind::Service, &mut other, &o, StatusFrom::Stored).is_err());
        let mut gen_named = json!({"metadata": {"generateName": "web-"}});
        stamp_create(&mut gen_named, "u", "t");
        let name = gen_named["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    }

    #[test]
    fn services_get_cluster_ips_and_node_ports() {
        let mut taken = Allocated::default();
        taken.cluster_ips.insert("198.19.0.11".parse().unwrap());
        taken.node_ports.insert(30000);
        let mut o = svc(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                               "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}),
        );
        defaults(&mut o, None, taken).unwrap();
        let spec = &o["spec"];
        assert_eq!(spec["clusterIP"], "198.19.0.12");
        assert_eq!(spec["clusterIPs"], json!(["198.19.0.12"]));
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(
            spec["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30001})
        );
        assert_eq!(spec["ports"][1]["nodePort"], 30002);
        assert_eq!(spec["ports"][1]["targetPort"], "dns");
        assert_eq!(spec["healthCheckNodePort"], 30003);
        assert_eq!(spec["sessionAffinity"], "None");
        // Dual stack gets one address per family; explicit addresses are kept as given.
        let mut d = svc(json!({"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}));
        defaults(&mut d, None, Allocated::default()).unwrap();
        assert_eq!(
            d["spec"]["clusterIPs"],
            json!(["198.19.0.11", "2001:db8:19::a"])
        );
        assert_eq!(d["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        let mut e = svc(json!({"clusterIP": "198.19.1.1", "ports": [{"port": 80}]}));
        defaults(&mut e, None, Allocated::default()).unwrap();
        assert_eq!(e["spec"]["clusterIPs"], json!(["198.19.1.1"]));
        let mut h = svc(json!({"clusterIP": "None"}));
        defaults(&mut h, None, Allocated::default()).unwrap();
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        // An update without the allocated values keeps the old ones.
        let mut upd = svc(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        let old = o.clone();
        let mut old_np = old.clone();
        old_np["spec"]["type"] = json!("NodePort");
        defaults(&mut upd, Some(&old_np), Allocated::default()).unwrap();
        assert_eq!(upd["spec"]["clusterIP"], "198.19.0.12");
        assert_eq!(upd["spec"]["ports"][0]["nodePort"], 30001);
        let allocated = Allocated::from_services([&o].into_iter());
        assert!(allocated.node_ports.contains(&30003) && allocated.cluster_ips.len() == 1);
    }
}
