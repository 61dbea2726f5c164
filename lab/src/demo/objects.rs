//! The demo's Kubernetes objects, as JSON values for the API server double: the Nodes (with
//! their pod CIDRs, which bgpd advertises), one Pod per node (the echo server in it), and the
//! example Services with their EndpointSlices. Pure: addresses in, objects out.
//!
//! ```text
//!   web            ClusterIP 198.19.0.10:80      -> pods on node2 and node3 (:8080)
//!   web-nodeport   NodePort  :30080 (198.19.0.11) -> pods on node2 and node3
//!   web-local      NodePort  :30081 (198.19.0.12), externalTrafficPolicy Local -> pod on node2
//!   empty          ClusterIP 198.19.0.13:80      -> no endpoints (REJECT)
//! ```

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{Value, json};

/// The namespace of every demo object.
pub const NAMESPACE: &str = "demo";
/// The port every pod's echo server listens on (TCP).
pub const POD_PORT: u16 = 8080;
/// `web`'s ClusterIP.
pub const WEB_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
/// `web-nodeport`'s ClusterIP.
pub const NODEPORT_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);
/// `web-nodeport`'s node port.
pub const NODEPORT: u16 = 30080;
/// `web-local`'s ClusterIP.
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 12);
/// `web-local`'s node port (externalTrafficPolicy: Local).
pub const LOCAL_NODEPORT: u16 = 30081;
/// `empty`'s ClusterIP (a Service without endpoints).
pub const EMPTY_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 13);
/// The Service port of every example Service.
pub const SERVICE_PORT: u16 = 80;

/// A node of the demo cluster as the objects see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `node1`, `node2`, ...
    pub name: String,
    /// Its address on the rack network.
    pub addr: Ipv4Addr,
    /// Its pod CIDR (`spec.podCIDRs`).
    pub pod_cidr: Ipv4Net,
    /// Its pod (`pod1` on `node1`, ...).
    pub pod: String,
    /// The pod's address.
    pub pod_addr: Ipv4Addr,
}

/// The Namespace.
pub fn namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
}

/// A Node object (`kubectl get node NAME -o json`, the fields kube-proxy, bgpd and diag read).
pub fn node(n: &NodeInfo) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": n.name, "labels": {"kubernetes.io/hostname": n.name}},
        "spec": {"podCIDR": n.pod_cidr.to_string(), "podCIDRs": [n.pod_cidr.to_string()]},
        "status": {"addresses": [
            {"type": "InternalIP", "address": n.addr.to_string()},
            {"type": "Hostname", "address": n.name},
        ]},
    })
}

/// The Pod running on `n` (Running, with its address), labelled `app: web`.
pub fn pod(n: &NodeInfo) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": n.pod, "namespace": NAMESPACE, "labels": {"app": "web"}},
        "spec": {"nodeName": n.name, "containers": [{"name": "echo", "image": "lab/echo",
                 "ports": [{"containerPort": POD_PORT, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "hostIP": n.addr.to_string(),
                   "podIP": n.pod_addr.to_string(), "podIPs": [{"ip": n.pod_addr.to_string()}]},
    })
}

fn service(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    })
}

fn port(node_port: Option<u16>) -> Value {
    let mut p = json!({"name": "http", "port": SERVICE_PORT, "targetPort": POD_PORT,
                       "protocol": "TCP"});
    if let Some(np) = node_port {
        p["nodePort"] = json!(np);
    }
    json!([p])
}

/// The EndpointSlice `SVC-1` of Service `svc` with these pods as ready endpoints (none:
/// the Service scaled to zero).
pub fn slice(svc: &str, pods: &[&NodeInfo]) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": slice_name(svc), "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}],
        "endpoints": pods.iter().map(|n| json!({
            "addresses": [n.pod_addr.to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": n.name,
            "targetRef": {"kind": "Pod", "namespace": NAMESPACE, "name": n.pod},
        })).collect::<Vec<_>>(),
    })
}

/// The name of `svc`'s EndpointSlice.
pub fn slice_name(svc: &str) -> String {
    format!("{svc}-1")
}

/// The nodes whose pods back `web` and `web-nodeport`: node2 and node3 (node2 alone in a
/// two-node cluster).
pub fn web_backends(nodes: &[NodeInfo]) -> Vec<&NodeInfo> {
    nodes.iter().skip(1).take(2).collect()
}

/// Every object of the demo, in the order they are created.
pub fn all(nodes: &[NodeInfo]) -> Vec<Value> {
    let mut v = vec![namespace()];
    v.extend(nodes.iter().map(node));
    v.extend(nodes.iter().map(pod));
    let backends = web_backends(nodes);
    v.push(service(
        "web",
        json!({"type": "ClusterIP", "clusterIP": WEB_IP.to_string(),
               "clusterIPs": [WEB_IP.to_string()], "ports": port(None)}),
    ));
    v.push(slice("web", &backends));
    v.push(service(
        "web-nodeport",
        json!({"type": "NodePort", "clusterIP": NODEPORT_IP.to_string(),
               "clusterIPs": [NODEPORT_IP.to_string()], "ports": port(Some(NODEPORT))}),
    ));
    v.push(slice("web-nodeport", &backends));
    v.push(service(
        "web-local",
        json!({"type": "NodePort", "externalTrafficPolicy": "Local",
               "clusterIP": LOCAL_IP.to_string(), "clusterIPs": [LOCAL_IP.to_string()],
               "ports": port(Some(LOCAL_NODEPORT))}),
    ));
    v.push(slice("web-local", &backends[..1.min(backends.len())]));
    v.push(service(
        "empty",
        json!({"type": "ClusterIP", "clusterIP": EMPTY_IP.to_string(),
               "clusterIPs": [EMPTY_IP.to_string()], "ports": port(None)}),
    ));
    v
}

/// Objects as one multi-document YAML file (JSON is YAML), for `lab apiserver --manifests`.
pub fn to_yaml(objects: &[Value]) -> String {
    objects.iter().map(|o| format!("---\n{o}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: u8) -> Vec<NodeInfo> {
        (1..=n)
            .map(|k| NodeInfo {
                name: format!("node{k}"),
                addr: Ipv4Addr::new(198, 18, 0, 10 + k),
                pod_cidr: format!("198.18.{}.0/24", 64 + k).parse().unwrap(),
                pod: format!("pod{k}"),
                pod_addr: Ipv4Addr::new(198, 18, 64 + k, 2),
            })
            .collect()
    }

    fn endpoints(objs: &[Value], slice: &str) -> Vec<String> {
        let s = objs
            .iter()
            .find(|o| o["metadata"]["name"] == slice)
            .unwrap();
        s["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["nodeName"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn web_is_backed_by_node2_and_node3() {
        let objs = all(&nodes(3));
        assert_eq!(endpoints(&objs, "web-1"), ["node2", "node3"]);
        assert_eq!(endpoints(&objs, "web-local-1"), ["node2"]);
        assert!(!objs.iter().any(|o| o["metadata"]["name"] == "empty-1"));
        // two nodes: node2 alone
        assert_eq!(endpoints(&all(&nodes(2)), "web-1"), ["node2"]);
    }

    #[test]
    fn every_object_has_a_kind_and_a_name() {
        for o in all(&nodes(4)) {
            assert!(o["kind"].is_string(), "{o}");
            assert!(o["metadata"]["name"].is_string(), "{o}");
        }
        let y = to_yaml(&[namespace()]);
        assert!(y.starts_with("---\n{"), "{y}");
    }
}
