//! The ipsets of IPVS mode (upstream `pkg/proxy/ipvs/ipset.go`: names, types, comments) as
//! plain values, and their `ipset save` / `ipset restore` text.
//!
//! ```text
//!   SetName::ALL ──> SetPlan { name (KUBE-… / KUBE-6-…), kind, entries } ──> `create` + `add` lines
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;

use dataplane::Family;

/// The longest set name ipset takes (`IPSET_MAXNAMELEN` - 1).
pub const MAX_SET_NAME: usize = 31;

/// One ipset kube-proxy's IPVS mode keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetName {
    /// `KUBE-LOOP-BACK` (hash:ip,port,ip): endpoint ip,proto:port,ip, for hairpin masquerade.
    LoopBack,
    /// `KUBE-CLUSTER-IP` (hash:ip,port): every cluster IP and port.
    ClusterIp,
    /// `KUBE-EXTERNAL-IP` (hash:ip,port): external IPs with externalTrafficPolicy Cluster.
    ExternalIp,
    /// `KUBE-EXTERNAL-IP-LOCAL` (hash:ip,port): external IPs with externalTrafficPolicy Local.
    ExternalIpLocal,
    /// `KUBE-LOAD-BALANCER` (hash:ip,port): every load-balancer IP and port.
    LoadBalancer,
    /// `KUBE-LOAD-BALANCER-LOCAL` (hash:ip,port): those with externalTrafficPolicy Local.
    LoadBalancerLocal,
    /// `KUBE-LOAD-BALANCER-FW` (hash:ip,port): those with loadBalancerSourceRanges.
    LoadBalancerFw,
    /// `KUBE-LOAD-BALANCER-SOURCE-IP` (hash:ip,port,ip): allowed single sources.
    LoadBalancerSourceIp,
    /// `KUBE-LOAD-BALANCER-SOURCE-CIDR` (hash:ip,port,net): allowed source ranges.
    LoadBalancerSourceCidr,
    /// `KUBE-NODE-PORT-TCP` (bitmap:port).
    NodePortTcp,
    /// `KUBE-NODE-PORT-LOCAL-TCP` (bitmap:port): externalTrafficPolicy Local.
    NodePortLocalTcp,
    /// `KUBE-NODE-PORT-UDP` (bitmap:port).
    NodePortUdp,
    /// `KUBE-NODE-PORT-LOCAL-UDP` (bitmap:port).
    NodePortLocalUdp,
    /// `KUBE-NODE-PORT-SCTP-HASH` (hash:ip,port): node IP,sctp:port.
    NodePortSctp,
    /// `KUBE-NODE-PORT-LOCAL-SCTP-HASH` (hash:ip,port).
    NodePortLocalSctp,
    /// `KUBE-HEALTH-CHECK-NODE-PORT` (bitmap:port).
    HealthCheckNodePort,
    /// `KUBE-IPVS-IPS` (hash:ip): every address bound to `kube-ipvs0`.
    IpvsIps,
}

impl SetName {
    /// Every set, in the order they are written.
    pub const ALL: [SetName; 17] = [
        SetName::LoopBack,
        SetName::ClusterIp,
        SetName::ExternalIp,
        SetName::ExternalIpLocal,
        SetName::LoadBalancer,
        SetName::LoadBalancerLocal,
        SetName::LoadBalancerFw,
        SetName::LoadBalancerSourceIp,
        SetName::LoadBalancerSourceCidr,
        SetName::NodePortTcp,
        SetName::NodePortLocalTcp,
        SetName::NodePortUdp,
        SetName::NodePortLocalUdp,
        SetName::NodePortSctp,
        SetName::NodePortLocalSctp,
        SetName::HealthCheckNodePort,
        SetName::IpvsIps,
    ];

    /// The name without the family prefix (`CLUSTER-IP` for `KUBE-CLUSTER-IP`).
    fn suffix(self) -> &'static str {
        match self {
            SetName::LoopBack => "LOOP-BACK",
            SetName::ClusterIp => "CLUSTER-IP",
            SetName::ExternalIp => "EXTERNAL-IP",
            SetName::ExternalIpLocal => "EXTERNAL-IP-LOCAL",
            SetName::LoadBalancer => "LOAD-BALANCER",
            SetName::LoadBalancerLocal => "LOAD-BALANCER-LOCAL",
            SetName::LoadBalancerFw => "LOAD-BALANCER-FW",
            SetName::LoadBalancerSourceIp => "LOAD-BALANCER-SOURCE-IP",
            SetName::LoadBalancerSourceCidr => "LOAD-BALANCER-SOURCE-CIDR",
            SetName::NodePortTcp => "NODE-PORT-TCP",
            SetName::NodePortLocalTcp => "NODE-PORT-LOCAL-TCP",
            SetName::NodePortUdp => "NODE-PORT-UDP",
            SetName::NodePortLocalUdp => "NODE-PORT-LOCAL-UDP",
            SetName::NodePortSctp => "NODE-PORT-SCTP-HASH",
            SetName::NodePortLocalSctp => "NODE-PORT-LOCAL-SCTP-HASH",
            SetName::HealthCheckNodePort => "HEALTH-CHECK-NODE-PORT",
            SetName::IpvsIps => "IPVS-IPS",
        }
    }

    /// The set's name in a family: `KUBE-CLUSTER-IP`, `KUBE-6-CLUSTER-IP` (upstream's IPv6
    /// proxier prefixes every set with `KUBE-6-` and cuts the name to ipset's 31
    /// characters: `KUBE-6-LOAD-BALANCER-SOURCE-CID`).
    pub fn name(self, family: Family) -> String {
        match family {
            Family::V4 => format!("KUBE-{}", self.suffix()),
            Family::V6 => {
                let mut n = format!("KUBE-6-{}", self.suffix());
                n.truncate(MAX_SET_NAME);
                n
            }
        }
    }

    /// The ipset type (`ipset create NAME TYPE`).
    pub fn kind(self) -> &'static str {
        match self {
            SetName::LoopBack | SetName::LoadBalancerSourceIp => "hash:ip,port,ip",
            SetName::LoadBalancerSourceCidr => "hash:ip,port,net",
            SetName::NodePortTcp
            | SetName::NodePortLocalTcp
            | SetName::NodePortUdp
            | SetName::NodePortLocalUdp
            | SetName::HealthCheckNodePort => "bitmap:port",
            SetName::IpvsIps => "hash:ip",
            _ => "hash:ip,port",
        }
    }

    /// Upstream's comment for the set (what it is for).
    pub fn comment(self) -> &'static str {
        match self {
            SetName::LoopBack => {
                "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"
            }
            SetName::ClusterIp => "Kubernetes service cluster ip + port for masquerade purpose",
            SetName::ExternalIp => {
                "Kubernetes service external ip + port for masquerade and filter purpose"
            }
            SetName::ExternalIpLocal => {
                "Kubernetes service external ip + port with externalTrafficPolicy=local"
            }
            SetName::LoadBalancer => "Kubernetes service lb portal",
            SetName::LoadBalancerLocal => {
                "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"
            }
            SetName::LoadBalancerFw => {
                "Kubernetes service load balancer ip + port for load balancer with sourceRange"
            }
            SetName::LoadBalancerSourceIp => {
                "Kubernetes service load balancer ip + port + source IP for packet filter purpose"
            }
            SetName::LoadBalancerSourceCidr => {
                "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"
            }
            SetName::NodePortTcp => "Kubernetes nodeport TCP port for masquerade purpose",
            SetName::NodePortLocalTcp => {
                "Kubernetes nodeport TCP port with externalTrafficPolicy=local"
            }
            SetName::NodePortUdp => "Kubernetes nodeport UDP port for masquerade purpose",
            SetName::NodePortLocalUdp => {
                "Kubernetes nodeport UDP port with externalTrafficPolicy=local"
            }
            SetName::NodePortSctp => "Kubernetes nodeport SCTP port for masquerade purpose",
            SetName::NodePortLocalSctp => {
                "Kubernetes nodeport SCTP port with externalTrafficPolicy=local"
            }
            SetName::HealthCheckNodePort => "Kubernetes health check node port",
            SetName::IpvsIps => "Kubernetes service IP list",
        }
    }

    /// The `ipset create` line (without the leading `create NAME `): the type and, for hash
    /// sets, the family, as `ipset save` prints them.
    pub fn create_options(self, family: Family) -> String {
        let kind = self.kind();
        if kind == "bitmap:port" {
            return format!("{kind} range 0-65535");
        }
        let fam = match family {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        };
        format!("{kind} family {fam} hashsize 1024 maxelem 65536")
    }
}

/// One set with the entries it should hold (`ipset add NAME ENTRY` words, as `ipset save`
/// prints them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPlan {
    /// Which set.
    pub set: SetName,
    /// Its name in the plan's family.
    pub name: String,
    /// `ipset create NAME …` options.
    pub create: String,
    /// The entries.
    pub entries: BTreeSet<String>,
}

/// `ipset save` text of `sets` (also `ipset restore` input for an empty node).
pub fn save_text(sets: &[SetPlan]) -> String {
    let mut out = String::new();
    for s in sets {
        let _ = writeln!(out, "create {} {}", s.name, s.create);
        for e in &s.entries {
            let _ = writeln!(out, "add {} {e}", s.name);
        }
    }
    out
}
