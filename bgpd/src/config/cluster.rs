//! Config keys for the cluster sources (`source::cluster`): which Service addresses are
//! advertised (Calico's BGPConfiguration `serviceClusterIPs`, `serviceExternalIPs`,
//! `serviceLoadBalancerIPs`) and the node full mesh (every other Node as an iBGP peer).
//!
//! ```text
//!   service_advertisement.cluster_ip_ranges ──> advertised as they are (static)
//!   service_advertisement.external_ip_ranges / load_balancer_ip_ranges ──> ServiceRanges
//!   node_mesh ──> Config::with_mesh(addresses) adds one peer per other Node
//! ```

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    Config, ExportCfg, HoldTime, PeerAsn, PeerCfg, Secret, default_connect_retry, default_port, yes,
};
use crate::source::cluster::ServiceRanges;

/// Service addresses to advertise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAdvertisementCfg {
    /// The Service ClusterIP ranges, advertised as they are (Calico `serviceClusterIPs`).
    #[serde(default)]
    pub cluster_ip_ranges: Vec<IpNet>,
    /// Services' `spec.externalIPs` inside these ranges are advertised as host routes
    /// (Calico `serviceExternalIPs`), withdrawn when the Service goes.
    #[serde(default)]
    pub external_ip_ranges: Vec<IpNet>,
    /// Services' `status.loadBalancer.ingress[].ip` inside these ranges, as host routes
    /// (Calico `serviceLoadBalancerIPs`).
    #[serde(default)]
    pub load_balancer_ip_ranges: Vec<IpNet>,
}

impl ServiceAdvertisementCfg {
    /// The ranges that need a Service watch.
    pub fn ranges(&self) -> ServiceRanges {
        ServiceRanges {
            external: self.external_ip_ranges.iter().map(|n| n.trunc()).collect(),
            load_balancer: self
                .load_balancer_ip_ranges
                .iter()
                .map(|n| n.trunc())
                .collect(),
        }
    }
}

/// The node full mesh: an iBGP session with every other Node (its InternalIP), found in the
/// API or the manifests. Peers listed under `peers:` keep their own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeMeshCfg {
    /// The other Nodes' BGP port. Default 179.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Hold time (RFC 4271 §4.2). Default 90.
    #[serde(default)]
    pub hold_time: HoldTime,
    /// ConnectRetryTime in seconds. Default 5.
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u64,
    /// TCP MD5 password on every mesh session (RFC 2385).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Graceful restart with the other Nodes (RFC 4724). Default on.
    #[serde(default = "yes")]
    pub graceful_restart: bool,
}

impl NodeMeshCfg {
    /// The peer entry for a Node at `address`: iBGP (our AS), defaults otherwise.
    pub fn peer(&self, address: IpAddr) -> PeerCfg {
        PeerCfg {
            address,
            asn: PeerAsn::Internal,
            port: self.port,
            description: Some("node mesh".into()),
            password: self.password.clone(),
            passive: false,
            hold_time: self.hold_time,
            connect_retry: self.connect_retry,
            multihop: None,
            ttl_security: false,
            graceful_restart: self.graceful_restart,
            import: None,
            allow_default_route: false,
            export: ExportCfg::default(),
            max_prefix: None,
            local_address: None,
            next_hop_ipv4: None,
            next_hop_ipv6: None,
        }
    }
}

impl Config {
    /// This configuration with a peer for each of `mesh` (the other Nodes) not already
    /// listed under `peers:`; itself when the mesh is off.
    pub fn with_mesh(&self, mesh: &BTreeSet<IpAddr>) -> Config {
        let mut c = self.clone();
        if let Some(m) = &self.node_mesh {
            for a in mesh {
                if c.peer(*a).is_none() {
                    c.peers.push(m.peer(*a));
                }
            }
        }
        c
    }
}
