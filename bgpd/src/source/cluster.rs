//! Cluster-wide sources besides this Node's pod CIDRs: Service addresses to advertise (like
//! Calico's BGPConfiguration `serviceExternalIPs` / `serviceLoadBalancerIPs`) and the other
//! Nodes' addresses for a node full mesh.
//!
//! ```text
//!   Services ──service_prefixes(svc, ranges)──> /32 and /128 of spec.externalIPs and
//!                                               status.loadBalancer.ingress[].ip inside the
//!                                               configured ranges ─┐
//!   Nodes ────mesh_peers(nodes, me)───────────> InternalIP of every other Node ──┤
//!         ────mesh_nodes(nodes, me)───────────> their InternalIPs and podCIDRs ──┤
//!                                                                  v
//!   manifests file (polled) / API (kube-runtime watchers) ──> Cluster ──> speaker
//! ```
//! A Service that goes away takes its addresses with it; a Node that goes away leaves the
//! mesh. Addresses that do not parse are skipped with a typed error (the rest still counts).

#[cfg(feature = "daemon")]
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::IpAddr;
#[cfg(feature = "daemon")]
use std::path::PathBuf;
#[cfg(feature = "daemon")]
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
#[cfg(feature = "daemon")]
use tokio::sync::mpsc;

use super::SourceError;

/// Which Service addresses are advertised: an address is when it lies in one of the ranges of
/// its kind (Calico's `serviceExternalIPs` / `serviceLoadBalancerIPs` CIDR lists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRanges {
    /// Ranges for `spec.externalIPs`.
    pub external: Vec<IpNet>,
    /// Ranges for `status.loadBalancer.ingress[].ip`.
    pub load_balancer: Vec<IpNet>,
}

impl ServiceRanges {
    /// Whether no Service address can be advertised (no watch needed).
    pub fn is_empty(&self) -> bool {
        self.external.is_empty() && self.load_balancer.is_empty()
    }
}

/// What the cluster sources found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    /// Service addresses to advertise, as host prefixes.
    pub service_prefixes: BTreeSet<IpNet>,
    /// The other Nodes' addresses (node full mesh), when the mesh is on.
    pub mesh_peers: BTreeSet<IpAddr>,
    /// The other Nodes' addresses and pod CIDRs, when the mesh is on: a node peer may give
    /// us node X's pod CIDR only with X's address as next hop.
    pub mesh_nodes: Vec<MeshNode>,
}

/// Another Node as the node mesh sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshNode {
    /// Its `status.addresses` of type `InternalIP`.
    pub addresses: BTreeSet<IpAddr>,
    /// Its `spec.podCIDRs`.
    pub pod_cidrs: BTreeSet<IpNet>,
}

fn host_prefix(a: IpAddr) -> IpNet {
    IpNet::from(a)
}

/// The addresses of `svc` to advertise under `ranges`, and the values that did not parse.
pub fn service_prefixes(
    svc: &Service,
    ranges: &ServiceRanges,
) -> (BTreeSet<IpNet>, Vec<SourceError>) {
    let name = format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or("default"),
        svc.metadata.name.as_deref().unwrap_or("")
    );
    let mut out = BTreeSet::new();
    let mut errors = Vec::new();
    let mut take = |field: &str, value: &str, within: &[IpNet]| match value.parse::<IpAddr>() {
        Ok(a) => {
            if within.iter().any(|r| r.contains(&a)) {
                out.insert(host_prefix(a));
            }
        }
        Err(_) => errors.push(SourceError::BadServiceAddress {
            service: name.clone(),
            field: field.to_string(),
            value: value.to_string(),
        }),
    };
    if let Some(spec) = &svc.spec {
        for ip in spec.external_ips.iter().flatten() {
            take("spec.externalIPs", ip, &ranges.external);
        }
    }
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    for i in ingress.into_iter().flatten() {
        if let Some(ip) = &i.ip {
            take("status.loadBalancer.ingress.ip", ip, &ranges.load_balancer);
        }
    }
    (out, errors)
}

/// A Node's address for BGP: its first IPv4 `InternalIP`, else its first `InternalIP`.
pub fn node_address(node: &Node) -> Option<IpAddr> {
    let addrs: Vec<IpAddr> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
}

/// The node full mesh: the address of every Node but `me`.
pub fn mesh_peers<'a>(nodes: impl IntoIterator<Item = &'a Node>, me: &str) -> BTreeSet<IpAddr> {
    nodes
        .into_iter()
        .filter(|n| n.metadata.name.as_deref() != Some(me))
        .filter_map(node_address)
        .collect()
}

/// Every Node but `me` with an `InternalIP`: its addresses and pod CIDRs (a Node whose pod
/// CIDRs do not parse is kept with none, and the error returned).
pub fn mesh_nodes<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    me: &str,
) -> (Vec<MeshNode>, Vec<SourceError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for n in nodes
        .into_iter()
        .filter(|n| n.metadata.name.as_deref() != Some(me))
    {
        let addresses: BTreeSet<IpAddr> = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.parse().ok())
            .collect();
        if addresses.is_empty() {
            continue;
        }
        let pod_cidrs = super::pod_cidrs(n).unwrap_or_else(|e| {
            errors.push(e);
            BTreeSet::new()
        });
        out.push(MeshNode {
            addresses,
            pod_cidrs,
        });
    }
    (out, errors)
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct ClusterWants {
    /// This Node's name (left out of the mesh).
    pub me: String,
    /// Service ranges (no Service watch when empty).
    pub ranges: ServiceRanges,
    /// Build the node mesh.
    pub mesh: bool,
}

fn compute<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    nodes: impl IntoIterator<Item = &'a Node>,
    wants: &ClusterWants,
) -> Cluster {
    let mut c = Cluster::default();
    if !wants.ranges.is_empty() {
        for s in services {
            let (p, errs) = service_prefixes(s, &wants.ranges);
            for e in errs {
                tracing::warn!(error = %e, "Service address skipped");
            }
            c.service_prefixes.extend(p);
        }
    }
    if wants.mesh {
        let nodes: Vec<&Node> = nodes.into_iter().collect();
        c.mesh_peers = mesh_peers(nodes.iter().copied(), &wants.me);
        let (m, errs) = mesh_nodes(nodes, &wants.me);
        for e in errs {
            tracing::warn!(error = %e, "Node pod CIDRs skipped");
        }
        c.mesh_nodes = m;
    }
    c
}

/// Services and Nodes of a manifest file or directory (see [`super::read_manifests`]).
pub fn read_cluster(path: &std::path::Path, wants: &ClusterWants) -> Result<Cluster, SourceError> {
    let docs = super::manifest_objects(path)?;
    let mut services = Vec::new();
    let mut nodes = Vec::new();
    for (kind, value, file, doc) in docs {
        let err = |e: serde_yaml::Error| SourceError::Parse {
            path: file.clone(),
            document: doc,
            message: e.to_string(),
        };
        match kind.as_str() {
            "Service" => services.push(serde_yaml::from_value::<Service>(value).map_err(err)?),
            "Node" => nodes.push(serde_yaml::from_value::<Node>(value).map_err(err)?),
            _ => {}
        }
    }
    Ok(compute(&services, &nodes, wants))
}

#[cfg(feature = "daemon")]
/// Poll the manifests: send the cluster sources at start and whenever they change.
pub fn spawn_cluster_manifests(
    path: PathBuf,
    wants: ClusterWants,
    poll: Duration,
    tx: mpsc::Sender<Cluster>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<Cluster> = None;
        let mut last_error: Option<String> = None;
        loop {
            let (p, w) = (path.clone(), wants.clone());
            match tokio::task::spawn_blocking(move || read_cluster(&p, &w)).await {
                Ok(Ok(c)) => {
                    last_error = None;
                    if last.as_ref() != Some(&c) {
                        tracing::info!(services = ?c.service_prefixes, mesh = ?c.mesh_peers, "cluster sources from {}", path.display());
                        if tx.send(c.clone()).await.is_err() {
                            return;
                        }
                        last = Some(c);
                    }
                }
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    if last_error.as_ref() != Some(&msg) {
                        tracing::warn!(error = %msg, "manifests unreadable, keeping the last Services and mesh");
                        last_error = Some(msg);
                    }
                }
                Err(_) => return,
            }
            tokio::time::sleep(poll).await;
        }
    })
}

#[cfg(feature = "daemon")]
/// Objects by name, kept from a kube-runtime watcher's events; `None` until the first
/// complete list (so a relist never publishes a half-filled set).
struct Store<K> {
    items: BTreeMap<String, K>,
    init: Option<BTreeMap<String, K>>,
    ready: bool,
}

#[cfg(feature = "daemon")]
fn key<K: kube::Resource>(k: &K) -> String {
    format!(
        "{}/{}",
        k.meta().namespace.as_deref().unwrap_or(""),
        k.meta().name.as_deref().unwrap_or("")
    )
}

#[cfg(feature = "daemon")]
impl<K: kube::Resource + Clone> Store<K> {
    fn new() -> Self {
        Store {
            items: BTreeMap::new(),
            init: None,
            ready: false,
        }
    }

    /// Apply an event; true when the published set may have changed.
    fn apply(&mut self, ev: kube::runtime::watcher::Event<K>) -> bool {
        use kube::runtime::watcher::Event;
        match ev {
            Event::Init => {
                self.init = Some(BTreeMap::new());
                false
            }
            Event::InitApply(k) => {
                self.init
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key(&k), k);
                false
            }
            Event::InitDone => {
                self.items = self.init.take().unwrap_or_default();
                self.ready = true;
                true
            }
            Event::Apply(k) => {
                self.items.insert(key(&k), k);
                self.ready
            }
            Event::Delete(k) => {
                self.items.remove(&key(&k));
                self.ready
            }
        }
    }
}

#[cfg(feature = "daemon")]
/// Watch Services (all namespaces) and Nodes in the API as `wants` asks, and send the
/// cluster sources whenever they change.
pub async fn spawn_cluster_kube(
    kubeconfig: Option<PathBuf>,
    wants: ClusterWants,
    tx: mpsc::Sender<Cluster>,
) -> Result<tokio::task::JoinHandle<()>, SourceError> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let client = super::client::kube_client(kubeconfig).await?;
    let services: kube::Api<Service> = kube::Api::all(client.clone());
    let nodes: kube::Api<Node> = kube::Api::all(client);
    enum Ev {
        S(Box<Result<watcher::Event<Service>, watcher::Error>>),
        N(Box<Result<watcher::Event<Node>, watcher::Error>>),
    }
    let mut streams = Vec::new();
    if !wants.ranges.is_empty() {
        streams.push(
            watcher(services, watcher::Config::default())
                .default_backoff()
                .map(|e| Ev::S(Box::new(e)))
                .boxed(),
        );
    }
    if wants.mesh {
        streams.push(
            watcher(nodes, watcher::Config::default())
                .default_backoff()
                .map(|e| Ev::N(Box::new(e)))
                .boxed(),
        );
    }
    let want_s = !wants.ranges.is_empty();
    let want_n = wants.mesh;
    Ok(tokio::spawn(async move {
        let mut all = futures::stream::select_all(streams);
        let mut svc: Store<Service> = Store::new();
        let mut nod: Store<Node> = Store::new();
        let mut last: Option<Cluster> = None;
        while let Some(ev) = all.next().await {
            let failed = |e: watcher::Error| {
                tracing::warn!(error = %e, "cluster watch failed, retrying");
                false
            };
            let changed = match ev {
                Ev::S(e) => match *e {
                    Ok(e) => svc.apply(e),
                    Err(e) => failed(e),
                },
                Ev::N(e) => match *e {
                    Ok(e) => nod.apply(e),
                    Err(e) => failed(e),
                },
            };
            if !changed || (want_s && !svc.ready) || (want_n && !nod.ready) {
                continue;
            }
            let c = compute(svc.items.values(), nod.items.values(), &wants);
            if last.as_ref() != Some(&c) {
                tracing::info!(services = ?c.service_prefixes, mesh = ?c.mesh_peers, "cluster sources from the API");
                if tx.send(c.clone()).await.is_err() {
                    return;
                }
                last = Some(c);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS: &str = "\
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  type: LoadBalancer
  clusterIP: 198.19.0.10
  externalIPs: [198.19.255.7, 203.0.113.9, \"2001:db8:ff::7\", bogus]
status:
  loadBalancer:
    ingress: [{ ip: 198.19.255.20 }, { hostname: lb.example }]
---
apiVersion: v1
kind: Node
metadata: { name: node1 }
status:
  addresses: [{ type: Hostname, address: node1 }, { type: InternalIP, address: \"2001:db8::11\" }, { type: InternalIP, address: 198.18.0.11 }]
---
apiVersion: v1
kind: Node
metadata: { name: node2 }
spec: { podCIDRs: [198.18.66.0/24] }
status:
  addresses: [{ type: InternalIP, address: 198.18.0.12 }]
---
apiVersion: v1
kind: Node
metadata: { name: node3 }
status:
  addresses: [{ type: ExternalIP, address: 198.19.255.3 }]
";

    fn nets(v: &[&str]) -> BTreeSet<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn service_addresses_inside_the_ranges_and_the_mesh_from_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cluster.yaml");
        std::fs::write(&f, DOCS).unwrap();
        let wants = ClusterWants {
            me: "node1".into(),
            ranges: ServiceRanges {
                external: nets(&["198.19.255.0/24", "2001:db8:ff::/64"])
                    .into_iter()
                    .collect(),
                load_balancer: nets(&["198.19.255.0/24"]).into_iter().collect(),
            },
            mesh: true,
        };
        let c = read_cluster(&f, &wants).unwrap();
        // 203.0.113.9 is outside the ranges, the hostname ingress has no address
        assert_eq!(
            c.service_prefixes,
            nets(&["198.19.255.7/32", "198.19.255.20/32", "2001:db8:ff::7/128"])
        );
        // node1 is us; node3 has no InternalIP
        assert_eq!(
            c.mesh_peers,
            ["198.18.0.12".parse::<IpAddr>().unwrap()]
                .into_iter()
                .collect()
        );
        assert_eq!(
            c.mesh_nodes,
            [MeshNode {
                addresses: ["198.18.0.12".parse().unwrap()].into_iter().collect(),
                pod_cidrs: nets(&["198.18.66.0/24"]),
            }]
        );
        // only external IPs wanted, no mesh
        let c = read_cluster(
            &f,
            &ClusterWants {
                ranges: ServiceRanges {
                    external: nets(&["198.19.255.0/24"]).into_iter().collect(),
                    load_balancer: vec![],
                },
                mesh: false,
                ..wants.clone()
            },
        )
        .unwrap();
        assert_eq!(c.service_prefixes, nets(&["198.19.255.7/32"]));
        assert!(c.mesh_peers.is_empty() && c.mesh_nodes.is_empty());
    }

    #[test]
    fn a_bad_address_is_named_and_the_rest_still_counts() {
        let svc: Service = serde_yaml::from_str(DOCS.split("---").next().unwrap()).unwrap();
        let ranges = ServiceRanges {
            external: nets(&["198.19.255.0/24"]).into_iter().collect(),
            load_balancer: vec![],
        };
        let (p, errs) = service_prefixes(&svc, &ranges);
        assert_eq!(p, nets(&["198.19.255.7/32"]));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "Service shop/web: spec.externalIPs: \"bogus\" is not an IP address"
        );
    }

    #[test]
    fn the_node_address_prefers_ipv4_internal_ip() {
        let nodes: Vec<Node> = DOCS
            .split("---")
            .skip(1)
            .map(|d| serde_yaml::from_str(d).unwrap())
            .collect();
        assert_eq!(
            node_address(&nodes[0]),
            Some("198.18.0.11".parse().unwrap())
        );
        assert_eq!(node_address(&nodes[2]), None);
        assert_eq!(mesh_peers(&nodes, "node2").len(), 1);
        // both InternalIPs of node1; node3 (no InternalIP) is not in the mesh
        let (m, errs) = mesh_nodes(&nodes, "node2");
        assert!(errs.is_empty());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].addresses.len(), 2);
        // a Node with a bad pod CIDR is kept without pod CIDRs, the error names it
        let mut bad = nodes[1].clone();
        bad.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            pod_cidrs: Some(vec!["198.18.66.0/33".into()]),
            ..Default::default()
        });
        let (m, errs) = mesh_nodes([&bad], "node1");
        assert!(m[0].pod_cidrs.is_empty());
        assert_eq!(
            errs[0].to_string(),
            "Node node2: spec.podCIDRs: \"198.18.66.0/33\" is not a prefix"
        );
    }

    #[test]
    fn the_store_publishes_only_complete_lists() {
        use kube::runtime::watcher::Event;
        let n = |name: &str| Node {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut s: Store<Node> = Store::new();
        assert!(
            !s.apply(Event::Apply(n("a"))),
            "not ready before the first list"
        );
        assert!(!s.apply(Event::Init));
        assert!(!s.apply(Event::InitApply(n("b"))));
        assert!(s.apply(Event::InitDone));
        assert_eq!(s.items.len(), 1, "the list replaced what came before");
        assert!(s.apply(Event::Apply(n("c"))));
        assert!(s.apply(Event::Delete(n("b"))));
        assert_eq!(s.items.keys().collect::<Vec<_>>(), ["/c"]);
    }
}
