//! This node, as the renders need it per family: name, zone, pod CIDRs, addresses, how
//! local traffic is detected and which addresses serve NodePorts.
//!
//! ```text
//!   v1 Node (optional) + ModelOptions ──parse──> NodeFacts ──for_family──> NodeInfo
//! ```
//!
//! Detect-local follows upstream `getLocalDetector`: ClusterCIDR uses the first
//! `--cluster-cidr` of the family, NodeCIDR the first `spec.podCIDRs` entry of the family;
//! without one, local traffic is not detected for that family. NodePort addresses follow
//! upstream `NewNodePortAddresses`: the CIDRs of the family, or all addresses when none is of
//! the family; `primary` is the node's primary IP of the family.

use std::collections::BTreeMap;
use std::net::IpAddr;

use dataplane::Family;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

use super::addr::{parse_cidr, parse_ip};
use super::name::{ObjectKind, ObjectRef};
use super::{Effect, Warning};

/// The node label naming its zone (`v1.LabelTopologyZone`).
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// `--detect-local-mode`: how traffic from local pods is told apart (it is masqueraded only
/// when it is not local).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DetectLocalMode {
    /// `ClusterCIDR`: source in `--cluster-cidr` (upstream's default).
    #[default]
    ClusterCidr,
    /// `NodeCIDR`: source in this node's `spec.podCIDRs`.
    NodeCidr,
    /// `BridgeInterface`: arrived on this bridge (`--pod-bridge-interface`).
    BridgeInterface(String),
    /// `InterfaceNamePrefix`: arrived on an interface with this prefix
    /// (`--pod-interface-name-prefix`).
    InterfaceNamePrefix(String),
}

/// One `--nodeport-addresses` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePortAddress {
    /// A CIDR: node IPs inside it serve NodePorts.
    Cidr(IpNet),
    /// `primary`: the node's primary IP of each family (from the Node object).
    Primary,
    /// `localhost`: 127.0.0.0/8 and ::1/128.
    Localhost,
    /// `all`: 0.0.0.0/0 and ::/0.
    All,
}

/// What the model needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelOptions {
    /// This node's name (`--hostname-override`, else the host name): endpoints whose
    /// `nodeName` equals it are local.
    pub node_name: String,
    /// `--detect-local-mode` with its interface parameter.
    pub detect_local_mode: DetectLocalMode,
    /// `--cluster-cidr` (both families).
    pub cluster_cidrs: Vec<IpNet>,
    /// `--nodeport-addresses`; empty means all addresses.
    pub node_port_addresses: Vec<NodePortAddress>,
}

/// How local (pod-originated) traffic is recognised in one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalTraffic {
    /// Source address in this CIDR (`-s CIDR` / `! -s CIDR`).
    Cidr(IpNet),
    /// Input interface is this bridge (`-i BRIDGE`).
    BridgeInterface(String),
    /// Input interface name starts with this prefix (`-i PREFIX+`).
    InterfaceNamePrefix(String),
    /// Not detected: no masquerade shortcut for local traffic (upstream's no-op detector).
    Undetected(UndetectedReason),
}

/// Why local traffic is not detected in a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndetectedReason {
    /// ClusterCIDR mode without a `--cluster-cidr` of this family.
    NoClusterCidr,
    /// NodeCIDR mode but the Node has no pod CIDR of this family (or is not known yet).
    NoPodCidr,
}

/// Which node addresses serve NodePorts in one family (upstream `NodePortAddresses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePortAddresses {
    /// The CIDRs; a single zero CIDR when `match_all`.
    pub cidrs: Vec<IpNet>,
    /// Every local address serves NodePorts (`-m addrtype --dst-type LOCAL`).
    pub match_all: bool,
    /// Some CIDR covers 127.0.0.0/8 (IPv4 localhost NodePorts, `route_localnet`).
    pub contains_ipv4_loopback: bool,
}

impl NodePortAddresses {
    /// Resolves `--nodeport-addresses` for one family.
    pub fn resolve(
        family: Family,
        entries: &[NodePortAddress],
        primary_ip: Option<IpAddr>,
    ) -> Self {
        let zero: IpNet = match family {
            Family::V4 => "0.0.0.0/0".parse().expect("literal"),
            Family::V6 => "::/0".parse().expect("literal"),
        };
        let mut cidrs = Vec::new();
        for e in entries {
            match e {
                NodePortAddress::Cidr(c) => cidrs.push(*c),
                NodePortAddress::Primary => cidrs.extend(primary_ip.map(IpNet::from)),
                NodePortAddress::Localhost => cidrs.extend([
                    "127.0.0.0/8".parse::<IpNet>().expect("literal"),
                    "::1/128".parse::<IpNet>().expect("literal"),
                ]),
                NodePortAddress::All => cidrs.push(zero),
            }
        }
        cidrs.retain(|c| Family::of(&c.addr()) == family);
        if cidrs.is_empty() || cidrs.iter().any(|c| c.prefix_len() == 0) {
            cidrs = vec![zero];
        }
        let loopback: IpAddr = "127.0.0.0".parse().expect("literal");
        NodePortAddresses {
            match_all: cidrs == [zero],
            contains_ipv4_loopback: cidrs.iter().any(|c| c.contains(&loopback)),
            cidrs,
        }
    }
}

/// One `status.addresses[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// `type`: `InternalIP`, `ExternalIP`, ...
    pub kind: String,
    /// The address.
    pub ip: IpAddr,
}

/// This node in one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node name endpoints are compared with.
    pub name: String,
    /// Whether a Node object was seen (otherwise only the name is known).
    pub known: bool,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The `topology.kubernetes.io/zone` label.
    pub zone: Option<String>,
    /// `spec.podCIDRs` of this family.
    pub pod_cidrs: Vec<IpNet>,
    /// `status.addresses` of this family (IP addresses only), in the object's order.
    pub addresses: Vec<NodeAddress>,
    /// The primary IP of this family: the first InternalIP, else the first ExternalIP
    /// (upstream `GetNodeHostIPs`).
    pub primary_ip: Option<IpAddr>,
    /// How local traffic is detected.
    pub local_traffic: LocalTraffic,
    /// Which addresses serve NodePorts.
    pub node_port_addresses: NodePortAddresses,
}

/// A Node validated once.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeFacts {
    known: bool,
    labels: BTreeMap<String, String>,
    pod_cidrs: Vec<IpNet>,
    addresses: Vec<NodeAddress>,
}

impl NodeFacts {
    pub(crate) fn parse(node: Option<&Node>, warnings: &mut Vec<Warning>) -> NodeFacts {
        let Some(node) = node else {
            return NodeFacts::default();
        };
        let object = ObjectRef::from_meta(ObjectKind::Node, &node.metadata);
        let mut warn = |field: String, reason: String| {
            warnings.push(Warning {
                object: object.clone(),
                field,
                reason,
                effect: Effect::ValueIgnored,
            })
        };
        let spec = node.spec.as_ref();
        let (field, raw): (&str, Vec<String>) = match spec.and_then(|s| s.pod_cidrs.clone()) {
            Some(v) if !v.is_empty() => ("spec.podCIDRs", v),
            _ => (
                "spec.podCIDR",
                spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect(),
            ),
        };
        let mut pod_cidrs = Vec::new();
        for (i, c) in raw.iter().enumerate() {
            match parse_cidr(c) {
                Some(net) => pod_cidrs.push(net),
                None => warn(format!("{field}[{i}]"), format!("invalid CIDR {c:?}")),
            }
        }
        let mut addresses = Vec::new();
        let status_addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
        for (i, a) in status_addresses.into_iter().flatten().enumerate() {
            if !matches!(a.type_.as_str(), "InternalIP" | "ExternalIP") {
                continue; // Hostname, InternalDNS, ExternalDNS carry names
            }
            match parse_ip(&a.address) {
                Some(ip) => addresses.push(NodeAddress {
                    kind: a.type_.clone(),
                    ip,
                }),
                None => warn(
                    format!("status.addresses[{i}].address"),
                    format!("invalid IP address {:?}", a.address),
                ),
            }
        }
        NodeFacts {
            known: true,
            labels: node.metadata.labels.clone().unwrap_or_default(),
            pod_cidrs,
            addresses,
        }
    }

    pub(crate) fn for_family(&self, family: Family, opts: &ModelOptions) -> NodeInfo {
        let pod_cidrs: Vec<IpNet> = self
            .pod_cidrs
            .iter()
            .filter(|c| Family::of(&c.addr()) == family)
            .copied()
            .collect();
        let addresses: Vec<NodeAddress> = self
            .addresses
            .iter()
            .filter(|a| Family::of(&a.ip) == family)
            .cloned()
            .collect();
        let primary_ip = ["InternalIP", "ExternalIP"]
            .iter()
            .find_map(|k| addresses.iter().find(|a| a.kind == *k))
            .map(|a| a.ip);
        let local_traffic = match &opts.detect_local_mode {
            DetectLocalMode::ClusterCidr => opts
                .cluster_cidrs
                .iter()
                .find(|c| Family::of(&c.addr()) == family)
                .map_or(
                    LocalTraffic::Undetected(UndetectedReason::NoClusterCidr),
                    |c| LocalTraffic::Cidr(*c),
                ),
            DetectLocalMode::NodeCidr => pod_cidrs
                .first()
                .map_or(LocalTraffic::Undetected(UndetectedReason::NoPodCidr), |c| {
                    LocalTraffic::Cidr(*c)
                }),
            DetectLocalMode::BridgeInterface(b) => LocalTraffic::BridgeInterface(b.clone()),
            DetectLocalMode::InterfaceNamePrefix(p) => LocalTraffic::InterfaceNamePrefix(p.clone()),
        };
        let zone = self.labels.get(LABEL_TOPOLOGY_ZONE).cloned();
        NodeInfo {
            name: opts.node_name.clone(),
            known: self.known,
            labels: self.labels.clone(),
            zone,
            node_port_addresses: NodePortAddresses::resolve(
                family,
                &opts.node_port_addresses,
                primary_ip,
            ),
            pod_cidrs,
            addresses,
            primary_ip,
            local_traffic,
        }
    }
}
