//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for, with the
//! columns kube-apiserver's printers give each kind (pkg/printers/internalversion).
//!
//! ```text
//!   NAME   TYPE        CLUSTER-IP    EXTERNAL-IP   PORT(S)   AGE      Service
//!   NAME   ADDRESSTYPE PORTS  ENDPOINTS            AGE                EndpointSlice
//!   NAME   STATUS      ROLES  AGE    VERSION                          Node
//!   NAME   READY       STATUS RESTARTS  AGE                           Pod
//!   NAME   STATUS      AGE                                            Namespace
//! ```
//! In: objects, the kind, the current time. Out: a Table JSON value (kubectl adds NAMESPACE
//! itself from each row's object metadata). No I/O; `now` is a parameter.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::query::IncludeObject;
use super::resource::Kind;

/// One column: (name, type, priority, description). Priority 1 columns show with `-o wide`.
type Column = (&'static str, &'static str, u8, &'static str);

fn columns(kind: Kind) -> &'static [Column] {
    const NAME: Column = (
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    const AGE: Column = (
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match kind {
        Kind::Service => &[
            NAME,
            (
                "Type",
                "string",
                0,
                "Type determines how the Service is exposed.",
            ),
            (
                "Cluster-IP",
                "string",
                0,
                "ClusterIP is the IP address of the service.",
            ),
            (
                "External-IP",
                "string",
                0,
                "List of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            (
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            AGE,
            (
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        Kind::EndpointSlice => &[
            NAME,
            ("AddressType", "string", 0, "The IP protocol for this slice"),
            ("Ports", "string", 0, "The ports exposed by this slice"),
            (
                "Endpoints",
                "string",
                0,
                "The endpoints that are part of this slice",
            ),
            AGE,
        ],
        Kind::Node => &[
            NAME,
            ("Status", "string", 0, "The status of the node"),
            ("Roles", "string", 0, "The roles of the node"),
            AGE,
            (
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            (
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            (
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            (
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release.",
            ),
            (
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r'.",
            ),
            (
                "Container-Runtime",
                "string",
                1,
                "Container Runtime Version reported by the node through runtime remote API.",
            ),
        ],
        Kind::Pod => &[
            NAME,
            (
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            (
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            (
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            (
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            (
                "Node",
                "string",
                1,
                "NodeName is a request to schedule this pod onto a specific node.",
            ),
            (
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
            ),
            (
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        Kind::Namespace => &[
            NAME,
            ("Status", "string", 0, "The status of the namespace"),
            AGE,
        ],
    }
}

/// The column definitions of `kind`'s Table.
pub fn column_definitions(kind: Kind) -> Value {
    let cols: Vec<Value> = columns(kind)
        .iter()
        .map(|(name, ty, priority, description)| {
            let mut c = json!({"name": name, "type": ty, "format": "", "description": description, "priority": priority});
            if *name == "Name" {
                c["format"] = json!("name");
            }
            c
        })
        .collect();
    Value::Array(cols)
}

/// A Table of `objects` at `resource_version`. `headers` false omits the column definitions
/// (watch events after the first, as kube-apiserver sends them).
pub fn table(
    kind: Kind,
    objects: &[&Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    headers: bool,
    now: Timestamp,
) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| row(kind, o, include, now)).collect();
    let mut meta = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": if headers { column_definitions(kind) } else { Value::Null },
        "rows": rows,
    });
    if !headers && let Some(m) = t.as_object_mut() {
        m.remove("columnDefinitions");
    }
    t
}

/// The `metadata`-only view of an object (`PartialObjectMetadata`).
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn row(kind: Kind, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let cells = cells(kind, obj, now);
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = partial_metadata(obj),
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// The cells of one object's row, as kube-apiserver prints them.
pub fn cells(kind: Kind, obj: &Value, now: Timestamp) -> Vec<Value> {
    let name = json!(s(obj, "/metadata/name"));
    let age = json!(age(s(obj, "/metadata/creationTimestamp"), now));
    match kind {
        Kind::Service => {
            let spec = &obj["spec"];
            let ty = spec["type"].as_str().unwrap_or("ClusterIP");
            let cluster_ip = match spec["clusterIP"].as_str() {
                Some(ip) if !ip.is_empty() && ty != "ExternalName" => ip.to_string(),
                _ => "<none>".into(),
            };
            let external: Vec<String> = spec["externalIPs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect();
            let external = match ty {
                "ExternalName" => spec["externalName"].as_str().unwrap_or("").to_string(),
                "LoadBalancer" => {
                    let mut ips: Vec<String> = obj
                        .pointer("/status/loadBalancer/ingress")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                        .map(String::from)
                        .collect();
                    ips.extend(external);
                    if ips.is_empty() {
                        "<pending>".into()
                    } else {
                        ips.join(",")
                    }
                }
                _ => external.join(","),
            };
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64().filter(|n| *n != 0) {
                        Some(np) => format!("{}:{np}/{proto}", p["port"]),
                        None => format!("{}/{proto}", p["port"]),
                    }
                })
                .collect();
            let selector: Vec<String> = spec["selector"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            vec![
                name,
                json!(ty),
                json!(cluster_ip),
                json!(or_none(external)),
                json!(or_none(ports.join(","))),
                age,
                json!(or_none(selector.join(","))),
            ]
        }
        Kind::EndpointSlice => {
            let ports: Vec<String> = obj["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| match p["port"].as_i64() {
                    Some(n) => n.to_string(),
                    None => "<unset>".into(),
                })
                .collect();
            let addrs: Vec<&str> = obj["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| e["addresses"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            let endpoints = match addrs.len() {
                0 => "<unset>".to_string(),
                n if n > 3 => format!("{} + {} more...", addrs[..3].join(","), n - 3),
                _ => addrs.join(","),
            };
            let ports = if ports.is_empty() {
                "<unset>".into()
            } else {
                ports.join(",")
            };
            vec![
                name,
                json!(s(obj, "/addressType")),
                json!(ports),
                json!(endpoints),
                age,
            ]
        }
        Kind::Node => {
            let ready = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .map(|c| match c["status"].as_str() {
                    Some("True") => "Ready",
                    Some("False") => "NotReady",
                    _ => "Unknown",
                })
                .unwrap_or("Unknown");
            let mut status = ready.to_string();
            if obj.pointer("/spec/unschedulable") == Some(&json!(true)) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<&str> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .collect();
            let addr = |ty: &str| -> String {
                let a = obj
                    .pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == ty)
                    .and_then(|a| a["address"].as_str())
                    .unwrap_or("");
                or_none(a.to_string())
            };
            let info = |k: &str| -> String {
                let v = s(obj, &format!("/status/nodeInfo/{k}"));
                if v.is_empty() {
                    "<unknown>".into()
                } else {
                    v.into()
                }
            };
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                age,
                json!(s(obj, "/status/nodeInfo/kubeletVersion")),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                json!(info("osImage")),
                json!(info("kernelVersion")),
                json!(info("containerRuntimeVersion")),
            ]
        }
        Kind::Pod => {
            let statuses: Vec<&Value> = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect();
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c["ready"] == json!(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|c| c["restartCount"].as_i64())
                .sum();
            let mut status = s(obj, "/status/reason").to_string();
            if status.is_empty() {
                status = s(obj, "/status/phase").to_string();
            }
            if obj
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|v| !v.is_null())
            {
                status = "Terminating".into();
            }
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age,
                json!(or_none(s(obj, "/status/podIP").to_string())),
                json!(or_none(s(obj, "/spec/nodeName").to_string())),
                json!(or_none(s(obj, "/status/nominatedNodeName").to_string())),
                json!(readiness_gates(obj)),
            ]
        }
        Kind::Namespace => vec![name, json!(s(obj, "/status/phase")), age],
    }
}

/// `READINESS GATES`: `ready/total` of the gates the pod declares, `<none>` without any.
fn readiness_gates(obj: &Value) -> String {
    let gates: Vec<&str> = obj
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g["conditionType"].as_str())
        .collect();
    if gates.is_empty() {
        return "<none>".into();
    }
    let conditions = obj.pointer("/status/conditions").and_then(Value::as_array);
    let ready = gates
        .iter()
        .filter(|g| {
            conditions
                .into_iter()
                .flatten()
                .any(|c| c["type"] == **g && c["status"] == "True")
        })
        .count();
    format!("{ready}/{}", gates.len())
}

/// The AGE column: the time since `created` (RFC 3339) in kubectl's short form.
fn age(created: &str, now: Timestamp) -> String {
    match created.parse::<Timestamp>() {
        Ok(t) => human_duration(now.as_second() - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

/// A duration in seconds the way `k8s.io/apimachinery/pkg/util/duration.HumanDuration`
/// prints it: `45s`, `3m20s`, `15m`, `5h3m`, `2d5h`, `40d`, `2y30d`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        match d % 365 {
            0 => format!("{y}y"),
            dd => format!("{y}y{dd}d"),
        }
    } else {
        format!("{}y", d / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T01:00:00Z".parse().unwrap()
    }

    #[test]
    fn durations_print_like_kubectl() {
        for (secs, want) in [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (200, "3m20s"),
            (180, "3m"),
            (900, "15m"),
            (3 * 3600 + 180, "3h3m"),
            (8 * 3600, "8h"),
            (50 * 3600, "2d2h"),
            (40 * 86400, "40d"),
            (800 * 86400, "2y70d"),
            (3000 * 86400, "8y"),
            (-5, "<invalid>"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn service_rows() {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:55:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "198.19.0.10", "selector": {"app": "web"},
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            cells(Kind::Service, &svc, now()),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("198.19.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("5m"),
                json!("app=web")
            ]
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "198.19.0.11"}});
        let c = cells(Kind::Service, &lb, now());
        assert_eq!(
            (&c[3], &c[4], &c[5]),
            (&json!("<pending>"), &json!("<none>"), &json!("<unknown>"))
        );
    }

    #[test]
    fn endpoint_slice_node_pod_rows() {
        let eps = json!({"metadata": {"name": "web-abc", "creationTimestamp": "2026-01-01T00:59:30Z"}, "addressType": "IPv4",
            "ports": [{"port": 8080}], "endpoints": [{"addresses": ["198.18.65.2"]}, {"addresses": ["198.18.65.3"]},
            {"addresses": ["198.18.66.2"]}, {"addresses": ["198.18.66.3"]}]});
        assert_eq!(
            cells(Kind::EndpointSlice, &eps, now()),
            vec![
                json!("web-abc"),
                json!("IPv4"),
                json!("8080"),
                json!("198.18.65.2,198.18.65.3,198.18.66.2 + 1 more..."),
                json!("30s")
            ]
        );
        let node = json!({"metadata": {"name": "node1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"},
                       "addresses": [{"type": "InternalIP", "address": "198.18.0.11"}]}});
        let c = cells(Kind::Node, &node, now());
        assert_eq!(
            &c[..5],
            &[
                json!("node1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane"),
                json!("<unknown>"),
                json!("v1.33.0")
            ]
        );
        assert_eq!(c[5], json!("198.18.0.11"));
        let pod = json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c"}, {"name": "d"}], "nodeName": "node1"},
            "status": {"phase": "Running", "podIP": "198.18.65.2",
                       "containerStatuses": [{"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1}]}});
        assert_eq!(
            cells(Kind::Pod, &pod, now()),
            vec![
                json!("a"),
                json!("1/2"),
                json!("Running"),
                json!("3"),
                json!("<unknown>"),
                json!("198.18.65.2"),
                json!("node1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn every_row_has_one_cell_per_column() {
        for kind in Kind::ALL {
            let empty = json!({"metadata": {"name": "x"}});
            assert_eq!(
                cells(kind, &empty, now()).len(),
                columns(kind).len(),
                "{kind}"
            );
        }
    }

    #[test]
    fn tables_carry_columns_rows_and_metadata() {
        let ns =
            json!({"metadata": {"name": "default", "uid": "u"}, "status": {"phase": "Active"}});
        let t = table(
            Kind::Namespace,
            &[&ns],
            "7",
            Some("tok"),
            IncludeObject::Metadata,
            true,
            now(),
        );
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "7", "continue": "tok"})
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 3);
        assert_eq!(t["rows"][0]["object"]["metadata"]["uid"], "u");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let bare = table(
            Kind::Namespace,
            &[&ns],
            "7",
            None,
            IncludeObject::None,
            false,
            now(),
        );
        assert!(bare.get("columnDefinitions").is_none() && bare["rows"][0].get("object").is_none());
    }
}
