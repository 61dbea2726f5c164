//! The Kubernetes objects diag reads to name things: Pods, Services, EndpointSlices and Nodes,
//! from manifest files (`--manifests`), from bundles (`k8s-*.json`), or from the API. Pure:
//! text in, [`Objects`] out.
//!
//! ```text
//!   YAML or JSON text: documents split on `---`, each a Pod / Service / EndpointSlice / Node,
//!   a `List` or a typed list (`PodList`, ...)  --Objects::parse(file, text)-->  Objects
//!   errors: FILE:LINE[:COLUMN]: what (other kinds are counted in `ignored`, not dropped silently)
//!   Objects::pod_by_ip / service / node_by_addr ...  (what name resolution asks)
//! ```

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Deserialize;

/// Objects read from manifests, bundles or the API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Objects {
    /// Pods.
    pub pods: Vec<Pod>,
    /// Services.
    pub services: Vec<Service>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// `kind` of each object of another kind, noted and not used.
    pub ignored: Vec<String>,
}

/// Manifest text that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}{}: {message}", column.map(|c| format!(":{c}")).unwrap_or_default())]
pub struct ObjectsError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    items: Option<Vec<serde_yaml::Value>>,
}

fn key(ns: Option<&String>, name: Option<&String>) -> (String, String) {
    (
        ns.cloned().unwrap_or_else(|| "default".to_string()),
        name.cloned().unwrap_or_default(),
    )
}

/// A pod's addresses (`status.podIPs`, else `status.podIP`).
pub fn pod_ips(p: &Pod) -> Vec<IpAddr> {
    let Some(st) = &p.status else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = st
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|i| i.ip.parse().ok())
        .collect();
    if out.is_empty()
        && let Some(ip) = st.pod_ip.as_deref().and_then(|s| s.parse().ok())
    {
        out.push(ip);
    }
    out
}

/// `namespace/name` of an object's metadata.
pub fn ns_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    let (ns, n) = key(meta.namespace.as_ref(), meta.name.as_ref());
    format!("{ns}/{n}")
}

/// A node's addresses (`status.addresses`, every type that parses as an IP).
pub fn node_addrs(n: &Node) -> Vec<IpAddr> {
    n.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// A Service's cluster IPs (`spec.clusterIPs`, else `spec.clusterIP`; `None` is skipped).
pub fn cluster_ips(s: &Service) -> Vec<IpAddr> {
    let Some(spec) = &s.spec else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = spec
        .cluster_ips
        .iter()
        .flatten()
        .filter_map(|i| i.parse().ok())
        .collect();
    if out.is_empty()
        && let Some(ip) = spec.cluster_ip.as_deref().and_then(|s| s.parse().ok())
    {
        out.push(ip);
    }
    out
}

/// Splits multi-document YAML on `---` / `...` lines at column 0; each piece with its 1-based
/// first line.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 1;
    // each line keeps its own ending: a last line without one stays without (libyaml counts
    // a trailing NEL as a line break, and an added LF put errors a line past the end)
    for (i, chunk) in text.split_inclusive('\n').enumerate() {
        let line = chunk.strip_suffix('\n').unwrap_or(chunk);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let marker = line == "---" || line.starts_with("--- ") || line == "...";
        if marker {
            if !cur.trim().is_empty() {
                out.push((start, std::mem::take(&mut cur)));
            }
            cur.clear();
            start = i + 2;
            continue;
        }
        cur.push_str(chunk);
    }
    if !cur.trim().is_empty() {
        out.push((start, cur));
    }
    out
}

impl Objects {
    /// Parses one file (`file` names it in errors).
    pub fn parse(file: &str, text: &str) -> Result<Objects, ObjectsError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            return Self::parse_json(file, text);
        }
        let mut out = Objects::default();
        for (start, piece) in documents(text) {
            // pad so that serde_yaml's locations are lines of the file
            let padded = format!("{}{}", "\n".repeat(start - 1), piece);
            let err = |e: serde_yaml::Error, what: &str| {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), Some(l.column())))
                    .unwrap_or((start, None));
                ObjectsError {
                    file: file.to_string(),
                    line,
                    column,
                    message: format!("{what}{e}"),
                }
            };
            let header: Option<Header> = serde_yaml::from_str(&padded).map_err(|e| err(e, ""))?;
            let Some(header) = header else { continue };
            let kind = header.kind.clone().ok_or_else(|| ObjectsError {
                file: file.to_string(),
                line: start,
                column: None,
                message: "expected a Kubernetes object with apiVersion and kind".into(),
            })?;
            if let Some(item_kind) = kind.strip_suffix("List") {
                for (i, item) in header.items.into_iter().flatten().enumerate() {
                    let k = item
                        .get("kind")
                        .and_then(|v| v.as_str())
                        .unwrap_or(item_kind)
                        .to_string();
                    out.add(&k, item)
                        .map_err(|e| err(e, &format!("items[{i}] ({k}): ")))?;
                }
                continue;
            }
            let _ = header.api_version;
            out.add(&kind, serde_yaml::Deserializer::from_str(&padded))
                .map_err(|e| err(e, &format!("{kind}: ")))?;
        }
        out.default_namespaces();
        Ok(out)
    }

    /// A JSON text (a bundle's `k8s-*.json`, `kubectl get -o json`), read as JSON. YAML reads
    /// most JSON but not all of it: a key longer than 1024 characters (YAML's limit on implicit
    /// keys), NEL, LINE SEPARATOR or PARAGRAPH SEPARATOR raw in a string (line breaks to YAML),
    /// DEL, C1 controls or U+FFFE raw (not printable to YAML). serde_json and the API server
    /// write all of these raw, and fuzzing found each in `to_lists`' output failing to read
    /// back. Errors carry serde_json's line and column.
    fn parse_json(file: &str, text: &str) -> Result<Objects, ObjectsError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct JsonHeader {
            kind: Option<String>,
            #[serde(default)]
            items: Option<Vec<serde_json::Value>>,
        }
        let err = |line: usize, column: Option<usize>, message: String| ObjectsError {
            file: file.to_string(),
            line: line.max(1),
            column,
            message,
        };
        let located = |e: serde_json::Error, what: &str| {
            err(e.line(), Some(e.column()), format!("{what}{e}"))
        };
        let mut out = Objects::default();
        let header: Option<JsonHeader> = serde_json::from_str(text).map_err(|e| located(e, ""))?;
        let Some(header) = header else {
            return Ok(out);
        };
        let kind = header.kind.clone().ok_or_else(|| {
            err(
                1,
                None,
                "expected a Kubernetes object with apiVersion and kind".into(),
            )
        })?;
        if let Some(item_kind) = kind.strip_suffix("List") {
            for (i, item) in header.items.into_iter().flatten().enumerate() {
                let k = item
                    .get("kind")
                    .and_then(|v| v.as_str())
                    .unwrap_or(item_kind)
                    .to_string();
                out.add(&k, item)
                    .map_err(|e| err(1, None, format!("items[{i}] ({k}): {e}")))?;
            }
        } else {
            out.add(&kind, &mut serde_json::Deserializer::from_str(text))
                .map_err(|e| located(e, &format!("{kind}: ")))?;
        }
        out.default_namespaces();
        Ok(out)
    }

    /// One object of `kind` from `d` (a YAML or JSON text, or a list item's value); kinds diag
    /// does not use are only counted.
    fn add<'de, D: serde::Deserializer<'de>>(&mut self, kind: &str, d: D) -> Result<(), D::Error> {
        match kind {
            "Pod" => self.pods.push(Pod::deserialize(d)?),
            "Service" => self.services.push(Service::deserialize(d)?),
            "EndpointSlice" => self.endpoint_slices.push(EndpointSlice::deserialize(d)?),
            "Node" => self.nodes.push(Node::deserialize(d)?),
            other => self.ignored.push(other.to_string()),
        }
        Ok(())
    }

    /// Namespaced objects without a namespace get `default` (as `kubectl apply` gives them).
    fn default_namespaces(&mut self) {
        let fix = |m: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            if m.namespace.is_none() {
                m.namespace = Some("default".into());
            }
        };
        self.pods.iter_mut().for_each(|p| fix(&mut p.metadata));
        self.services.iter_mut().for_each(|p| fix(&mut p.metadata));
        self.endpoint_slices
            .iter_mut()
            .for_each(|p| fix(&mut p.metadata));
    }

    /// Appends another source's objects (objects already known by namespace and name are kept,
    /// the newcomers dropped: the first source wins).
    pub fn merge(&mut self, other: Objects) {
        fn add<T>(
            into: &mut Vec<T>,
            from: Vec<T>,
            meta: impl Fn(&T) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        ) {
            for o in from {
                let k = ns_name(meta(&o));
                if !into.iter().any(|x| ns_name(meta(x)) == k) {
                    into.push(o);
                }
            }
        }
        add(&mut self.pods, other.pods, |o| &o.metadata);
        add(&mut self.services, other.services, |o| &o.metadata);
        add(&mut self.endpoint_slices, other.endpoint_slices, |o| {
            &o.metadata
        });
        add(&mut self.nodes, other.nodes, |o| &o.metadata);
        self.ignored.extend(other.ignored);
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
            && self.services.is_empty()
            && self.endpoint_slices.is_empty()
            && self.nodes.is_empty()
    }

    /// The Pod `ns/name`.
    pub fn pod(&self, ns: &str, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| {
            p.metadata.namespace.as_deref() == Some(ns) && p.metadata.name.as_deref() == Some(name)
        })
    }

    /// The (non host-network) Pod that has address `ip`.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Pod> {
        self.pods.iter().find(|p| {
            let host_net = p
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false);
            !host_net && pod_ips(p).contains(&ip)
        })
    }

    /// The Service `ns/name`.
    pub fn service(&self, ns: &str, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
        })
    }

    /// The Service with cluster IP `ip`.
    pub fn service_by_ip(&self, ip: IpAddr) -> Option<&Service> {
        self.services.iter().find(|s| cluster_ips(s).contains(&ip))
    }

    /// The Node `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }

    /// The Node that has address `ip`.
    pub fn node_by_addr(&self, ip: IpAddr) -> Option<&Node> {
        self.nodes.iter().find(|n| node_addrs(n).contains(&ip))
    }

    /// Objects as JSON `List` documents per kind, for a bundle (`PodList`, ...).
    pub fn to_lists(&self) -> [(crate::bundle::Part, serde_json::Value); 4] {
        use crate::bundle::Part;
        let list = |kind: &str, items: serde_json::Value| serde_json::json!({"apiVersion": "v1", "kind": kind, "items": items});
        let v = |x: serde_json::Result<serde_json::Value>| x.unwrap_or(serde_json::Value::Null);
        [
            (
                Part::K8sPods,
                list("PodList", v(serde_json::to_value(&self.pods))),
            ),
            (
                Part::K8sServices,
                list("ServiceList", v(serde_json::to_value(&self.services))),
            ),
            (
                Part::K8sEndpointSlices,
                serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
                    "items": v(serde_json::to_value(&self.endpoint_slices))}),
            ),
            (
                Part::K8sNodes,
                list("NodeList", v(serde_json::to_value(&self.nodes))),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: web}
spec: {nodeName: node1, containers: [{name: c, image: x}]}
status: {podIP: 198.18.65.2, podIPs: [{ip: 198.18.65.2}]}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  clusterIP: 198.19.0.10
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: node1}
  status: {addresses: [{type: InternalIP, address: 198.18.0.11}]}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: x}
";

    #[test]
    fn parses_documents_and_lists() {
        let o = Objects::parse("m.yaml", YAML).unwrap();
        let a = o.pod("web", "a").unwrap();
        assert_eq!(pod_ips(a), vec!["198.18.65.2".parse::<IpAddr>().unwrap()]);
        assert!(o.pod_by_ip("198.18.65.2".parse().unwrap()).is_some());
        let s = o.service("default", "svc").unwrap();
        assert_eq!(
            cluster_ips(s),
            vec!["198.19.0.10".parse::<IpAddr>().unwrap()]
        );
        assert!(o.node_by_addr("198.18.0.11".parse().unwrap()).is_some());
        assert_eq!(o.ignored, vec!["ConfigMap".to_string()]);
        // the JSON lists a bundle holds read back the same
        for (_, list) in o.to_lists() {
            let back = Objects::parse("l.json", &list.to_string()).unwrap();
            assert!(!back.is_empty() || list["items"].as_array().unwrap().is_empty());
        }
    }

    #[test]
    fn errors_name_file_and_line() {
        let bad = YAML.replace("clusterIP: 198.19.0.10", "clusterIP: [1, 2]");
        let e = Objects::parse("m.yaml", &bad).unwrap_err();
        assert_eq!(e.line, 11, "{e}");
        assert!(e.to_string().starts_with("m.yaml:11:"), "{e}");
        let e = Objects::parse("m.yaml", "a: [\n").unwrap_err();
        assert_eq!(e.file, "m.yaml");
        let e = Objects::parse("m.yaml", "---\nfoo: 1\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}"); // found by fuzzing: a last line ending in NEL (a line break to libyaml) and no LF;
        // an LF added after it put the error on line 5 of a four-line text
        let e = Objects::parse(
            "m.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: a\u{85}",
        )
        .unwrap_err();
        assert_eq!(e.line, 4, "{e}");
    }

    /// Found by fuzzing: JSON (as `to_lists` and the API server write it) holding NEL or LINE
    /// SEPARATOR raw in a string read back through the YAML parser failed.
    #[test]
    fn json_with_yaml_line_breaks_in_strings_reads_back() {
        let json = "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"a\",\
                    \"namespace\":\"d\",\"annotations\":{\"note\":\"x\u{85}y\u{2028}z\u{9f}\"}},\
                    \"spec\":{\"clusterIP\":\"198.19.0.10\"}}";
        let o = Objects::parse("k8s-services.json", json).unwrap();
        let ann = o.services[0].metadata.annotations.as_ref().unwrap();
        assert_eq!(ann["note"], "x\u{85}y\u{2028}z\u{9f}");
        let [_, (_, list), _, _] = o.to_lists();
        let back = Objects::parse("k8s-services.json", &list.to_string()).unwrap();
        assert_eq!(back.services, o.services);
    }

    #[test]
    fn a_label_key_longer_than_yamls_1024_character_limit_reads_back_from_json() {
        // a plain YAML key of 600 characters, each `"` of which JSON writes as `\"`: 1200
        // characters as a JSON key, past YAML's limit on implicit keys (found by fuzzing)
        let long = format!("k{}", "\"".repeat(600));
        let yaml =
            format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {{{long}: v}}\n");
        let o = Objects::parse("nodes.yaml", &yaml).unwrap();
        let [_, _, _, (_, list)] = o.to_lists();
        let json = list.to_string();
        assert!(json.contains(&"\\\"".repeat(600)), "{json}");
        let back = Objects::parse("k8s-nodes.json", &json).unwrap();
        assert_eq!(back.nodes, o.nodes);
    }

    #[test]
    fn json_errors_name_the_file_line_and_object() {
        let json = "{\"apiVersion\": \"v1\", \"kind\": \"Service\",\n \"spec\": {\"ports\": 7}}";
        let e = Objects::parse("svc.json", json).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("svc.json", 2), "{e}");
        assert!(e.to_string().contains("Service: invalid type"), "{e}");
    }
}
