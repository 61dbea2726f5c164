//! Service objects into [`ServicePort`]s, one per `spec.ports[]` entry and IP family.
//!
//! ```text
//!   v1 Service ──parse──> ParsedService (validated once; warnings) ──for_family(v4|v6)──> ServicePort*
//! ```
//!
//! Follows upstream `newBaseServiceInfo` / `serviceToServiceMap`: the cluster IP, external IPs,
//! load-balancer ingress IPs (`ipMode: Proxy` left out) and source ranges are split by family;
//! ExternalName and headless Services and those owned by another proxy are skipped. What the
//! API server would have rejected is skipped here with a [`Warning`] naming the field.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use dataplane::{Family, Protocol};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;

use super::addr::{parse_cidr, parse_ip};
use super::name::{ObjectKind, ObjectRef, ServiceName, ServicePortName, is_dns_label};
use super::{Effect, Skip, SkipReason, Warning};

/// Label marking objects that another service proxy implements (KEP-2447); kube-proxy's
/// informers exclude objects carrying it, whatever its value.
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Label on EndpointSlices of headless Services; excluded like upstream's informers do.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Annotation enabling topology aware routing (`Auto`), KEP-2433.
pub const ANNOTATION_TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";
/// The deprecated name of [`ANNOTATION_TOPOLOGY_MODE`].
pub const ANNOTATION_TOPOLOGY_AWARE_HINTS: &str = "service.kubernetes.io/topology-aware-hints";
/// The API server's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: u32 = 10800;
/// The largest affinity timeout the API server accepts (one day).
pub const MAX_AFFINITY_TIMEOUT_SECONDS: u32 = 86400;

/// `spec.type` of a Service the proxy programs (ExternalName Services are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceType {
    /// `ClusterIP` (the default).
    ClusterIp,
    /// `NodePort`.
    NodePort,
    /// `LoadBalancer`.
    LoadBalancer,
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        })
    }
}

/// `spec.externalTrafficPolicy` / `spec.internalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum TrafficPolicy {
    /// `Cluster`: any ready endpoint in the cluster (the default).
    #[default]
    Cluster,
    /// `Local`: only endpoints on this node.
    Local,
}

impl fmt::Display for TrafficPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrafficPolicy::Cluster => "Cluster",
            TrafficPolicy::Local => "Local",
        })
    }
}

/// `spec.sessionAffinity` with its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum SessionAffinity {
    /// `None`: every connection picks an endpoint afresh.
    #[default]
    None,
    /// `ClientIP`: a client IP sticks to its endpoint for `timeout_seconds` of idleness
    /// (iptables `-m recent --rcheck --seconds T --reap`, IPVS persistence, nft set timeout).
    ClientIp {
        /// `sessionAffinityConfig.clientIP.timeoutSeconds`, default 10800.
        timeout_seconds: u32,
    },
}

/// `spec.trafficDistribution` (KEP-4444), kept raw when not understood.
///
/// kube-proxy itself acts on the EndpointSlice hints the controller derives from this
/// field, not on the field; it is carried for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrafficDistribution {
    /// `PreferClose` (the original name of `PreferSameZone`).
    PreferClose,
    /// `PreferSameZone`.
    PreferSameZone,
    /// `PreferSameNode`.
    PreferSameNode,
    /// Any other value, as written.
    Other(String),
}

impl TrafficDistribution {
    fn parse(s: &str) -> TrafficDistribution {
        match s {
            "PreferClose" => TrafficDistribution::PreferClose,
            "PreferSameZone" => TrafficDistribution::PreferSameZone,
            "PreferSameNode" => TrafficDistribution::PreferSameNode,
            other => TrafficDistribution::Other(other.to_string()),
        }
    }
}

/// One port of one Service in one IP family: what every render needs to program it.
///
/// Upstream `BaseServicePortInfo`, with the traffic-policy helpers of the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The key: `ns/name:port` plus protocol.
    pub name: ServicePortName,
    /// `spec.type`.
    pub service_type: ServiceType,
    /// The cluster IP of this family (`spec.clusterIPs`).
    pub cluster_ip: IpAddr,
    /// `spec.ports[].port`.
    pub port: u16,
    /// `spec.ports[].protocol`.
    pub protocol: Protocol,
    /// `spec.ports[].nodePort`, if allocated.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` of this family, in the object's order.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip` of this family whose `ipMode` is VIP (or unset).
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.loadBalancerSourceRanges` of this family, masked (`KUBE-FW-*` allow list).
    pub load_balancer_source_ranges: Vec<IpNet>,
    /// `spec.sessionAffinity` and its timeout.
    pub session_affinity: SessionAffinity,
    /// `spec.externalTrafficPolicy` as written (default Cluster).
    pub external_traffic_policy: TrafficPolicy,
    /// `spec.internalTrafficPolicy` as written (default Cluster).
    pub internal_traffic_policy: TrafficPolicy,
    /// `spec.healthCheckNodePort`, only when the Service needs one (LoadBalancer with
    /// externalTrafficPolicy Local), as upstream `NeedsHealthCheck`.
    pub health_check_node_port: Option<u16>,
    /// `spec.trafficDistribution`.
    pub traffic_distribution: Option<TrafficDistribution>,
    /// The `service.kubernetes.io/topology-mode` annotation (or its deprecated name).
    pub topology_mode: Option<String>,
}

impl ServicePort {
    /// Upstream `ExternalPolicyLocal`: externalTrafficPolicy Local counts only for
    /// NodePort and LoadBalancer Services.
    pub fn external_policy_local(&self) -> bool {
        self.external_traffic_policy == TrafficPolicy::Local
            && matches!(
                self.service_type,
                ServiceType::NodePort | ServiceType::LoadBalancer
            )
    }

    /// Upstream `InternalPolicyLocal`.
    pub fn internal_policy_local(&self) -> bool {
        self.internal_traffic_policy == TrafficPolicy::Local
    }

    /// Upstream `ExternallyAccessible`: reachable by a NodePort, an external IP or a
    /// load-balancer IP, not only by the cluster IP.
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some()
            || !self.load_balancer_ips.is_empty()
            || !self.external_ips.is_empty()
    }

    /// Upstream `UsesClusterEndpoints`: internal policy Cluster, or any external access
    /// (even with eTP Local, cluster endpoints serve the short-circuit for local clients).
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_policy_local() || self.externally_accessible()
    }

    /// Upstream `UsesLocalEndpoints`.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_policy_local()
            || (self.external_policy_local() && self.externally_accessible())
    }
}

/// One validated `spec.ports[]` entry.
#[derive(Debug, Clone)]
struct ParsedPort {
    name: String,
    protocol: Protocol,
    port: u16,
    node_port: Option<u16>,
}

/// A Service validated once, before it is split by family.
#[derive(Debug, Clone)]
pub(crate) struct ParsedService {
    pub(crate) name: ServiceName,
    service_type: ServiceType,
    cluster_ips: Vec<IpAddr>,
    ports: Vec<ParsedPort>,
    external_ips: Vec<IpAddr>,
    load_balancer_ips: Vec<IpAddr>,
    source_ranges: Vec<IpNet>,
    session_affinity: SessionAffinity,
    external_traffic_policy: TrafficPolicy,
    internal_traffic_policy: TrafficPolicy,
    health_check_node_port: Option<u16>,
    traffic_distribution: Option<TrafficDistribution>,
    topology_mode: Option<String>,
}

/// Collects warnings about one object.
struct Checker<'a> {
    object: ObjectRef,
    warnings: &'a mut Vec<Warning>,
}

impl Checker<'_> {
    fn warn(&mut self, field: impl Into<String>, reason: impl Into<String>, effect: Effect) {
        self.warnings.push(Warning {
            object: self.object.clone(),
            field: field.into(),
            reason: reason.into(),
            effect,
        });
    }
}

/// Parses a protocol name as the API spells it (`TCP`, `UDP`, `SCTP`); `None` means TCP.
pub(crate) fn parse_protocol(p: Option<&str>) -> Option<Protocol> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        _ => None,
    }
}

/// A port number from the API: 1..=65535.
pub(crate) fn valid_port(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

impl ParsedService {
    /// Validates a Service. `Err(Some(skip))` for Services the proxy does not program by
    /// design (ExternalName, headless, another proxy's); `Err(None)` when invalid (the
    /// warning is pushed).
    pub(crate) fn parse(
        svc: &Service,
        warnings: &mut Vec<Warning>,
    ) -> Result<ParsedService, Option<Skip>> {
        let object = ObjectRef::from_meta(ObjectKind::Service, &svc.metadata);
        let mut ck = Checker {
            object: object.clone(),
            warnings,
        };
        if object.name.is_empty() || object.namespace.is_empty() {
            ck.warn(
                "metadata",
                "namespace and name are required",
                Effect::ObjectSkipped,
            );
            return Err(None);
        }
        for (field, v) in [
            ("metadata.namespace", &object.namespace),
            ("metadata.name", &object.name),
        ] {
            if !is_dns_label(v) {
                ck.warn(
                    field,
                    format!(
                        "invalid name {v:?}, expected a DNS-1123 label (a-z, 0-9 and '-', at most 63)"
                    ),
                    Effect::ObjectSkipped,
                );
                return Err(None);
            }
        }
        let skip = |reason| {
            Err(Some(Skip {
                object: object.clone(),
                reason,
            }))
        };
        let labels = svc.metadata.labels.as_ref();
        if let Some(v) = labels.and_then(|l| l.get(LABEL_SERVICE_PROXY_NAME)) {
            return skip(SkipReason::ServiceProxyName(v.clone()));
        }
        if labels.is_some_and(|l| l.contains_key(LABEL_HEADLESS)) {
            return skip(SkipReason::HeadlessLabel);
        }
        let Some(spec) = svc.spec.as_ref() else {
            ck.warn("spec", "missing", Effect::ObjectSkipped);
            return Err(None);
        };
        let service_type = match spec.type_.as_deref() {
            None | Some("ClusterIP") => ServiceType::ClusterIp,
            Some("NodePort") => ServiceType::NodePort,
            Some("LoadBalancer") => ServiceType::LoadBalancer,
            Some("ExternalName") => return skip(SkipReason::ExternalName),
            Some(other) => {
                ck.warn(
                    "spec.type",
                    format!(
                        "unknown type {other:?}, expected ClusterIP, NodePort, LoadBalancer or ExternalName"
                    ),
                    Effect::ObjectSkipped,
                );
                return Err(None);
            }
        };

        // Cluster IPs: `clusterIPs` (dual-stack) with `clusterIP` as its first element.
        let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
        let cluster_ips_raw: Vec<&str> = match spec.cluster_ips.as_deref() {
            Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
            _ if cluster_ip.is_empty() => Vec::new(),
            _ => vec![cluster_ip],
        };
        if cluster_ip == "None" || cluster_ips_raw.first() == Some(&"None") {
            return skip(SkipReason::Headless);
        }
        if cluster_ips_raw.is_empty() {
            ck.warn("spec.clusterIP", "no cluster IP set", Effect::ObjectSkipped);
            return Err(None);
        }
        let mut cluster_ips = Vec::new();
        for (i, raw) in cluster_ips_raw.iter().enumerate() {
            match parse_ip(raw) {
                Some(ip) => cluster_ips.push(ip),
                None => {
                    ck.warn(
                        format!("spec.clusterIPs[{i}]"),
                        format!("invalid IP address {raw:?}"),
                        Effect::ObjectSkipped,
                    );
                    return Err(None);
                }
            }
        }

        let mut ports = Vec::new();
        let mut seen_names = BTreeSet::new();
        let mut seen_ports = BTreeSet::new();
        for (i, p) in spec.ports.iter().flatten().enumerate() {
            let field = format!("spec.ports[{i}]");
            let Some(port) = valid_port(p.port) else {
                ck.warn(
                    format!("{field}.port"),
                    format!("invalid port {}, expected 1-65535", p.port),
                    Effect::PortSkipped,
                );
                continue;
            };
            let Some(protocol) = parse_protocol(p.protocol.as_deref()) else {
                ck.warn(
                    format!("{field}.protocol"),
                    format!(
                        "unknown protocol {:?}, expected TCP, UDP or SCTP",
                        p.protocol.as_deref().unwrap_or_default()
                    ),
                    Effect::PortSkipped,
                );
                continue;
            };
            let node_port = match p.node_port {
                None | Some(0) => None,
                Some(n) => match valid_port(n) {
                    Some(n) => Some(n),
                    None => {
                        ck.warn(
                            format!("{field}.nodePort"),
                            format!("invalid node port {n}, expected 1-65535"),
                            Effect::PortSkipped,
                        );
                        continue;
                    }
                },
            };
            let name = p.name.clone().unwrap_or_default();
            if !name.is_empty() && !is_dns_label(&name) {
                ck.warn(
                    format!("{field}.name"),
                    format!(
                        "invalid port name {name:?}, expected a DNS-1123 label (a-z, 0-9 and '-', at most 63)"
                    ),
                    Effect::PortSkipped,
                );
                continue;
            }
            if !seen_names.insert(name.clone()) {
                ck.warn(
                    format!("{field}.name"),
                    format!("duplicate port name {name:?}"),
                    Effect::PortSkipped,
                );
                continue;
            }
            if !seen_ports.insert((port, protocol)) {
                ck.warn(
                    format!("{field}.port"),
                    format!(
                        "duplicate port {port}/{}",
                        protocol.to_string().to_uppercase()
                    ),
                    Effect::PortSkipped,
                );
                continue;
            }
            ports.push(ParsedPort {
                name,
                protocol,
                port,
                node_port,
            });
        }

        let mut external_ips = Vec::new();
        for (i, raw) in spec.external_ips.iter().flatten().enumerate() {
            match parse_ip(raw) {
                Some(ip) => external_ips.push(ip),
                None => ck.warn(
                    format!("spec.externalIPs[{i}]"),
                    format!("invalid IP address {raw:?}"),
                    Effect::ValueIgnored,
                ),
            }
        }

        let mut source_ranges = Vec::new();
        for (i, raw) in spec
            .load_balancer_source_ranges
            .iter()
            .flatten()
            .enumerate()
        {
            // Validation lets whitespace padding through; upstream trims it.
            match parse_cidr(raw.trim()) {
                Some(net) => source_ranges.push(net),
                None => ck.warn(
                    format!("spec.loadBalancerSourceRanges[{i}]"),
                    format!("invalid CIDR {raw:?}"),
                    Effect::ValueIgnored,
                ),
            }
        }

        let mut load_balancer_ips = Vec::new();
        let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref());
        for (i, ing) in ingress
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("status.loadBalancer.ingress[{i}]");
            let Some(raw) = ing.ip.as_deref().filter(|s| !s.is_empty()) else {
                continue; // hostname-only ingress: nothing to program
            };
            match ing.ip_mode.as_deref() {
                None | Some("VIP") => {}
                Some("Proxy") => continue, // KEP-1860: traffic arrives from the LB, not to the VIP
                Some(other) => {
                    ck.warn(
                        format!("{field}.ipMode"),
                        format!("unknown ipMode {other:?}, expected VIP or Proxy"),
                        Effect::ValueIgnored,
                    );
                    continue;
                }
            }
            match parse_ip(raw) {
                Some(ip) => load_balancer_ips.push(ip),
                None => ck.warn(
                    format!("{field}.ip"),
                    format!("invalid IP address {raw:?}"),
                    Effect::ValueIgnored,
                ),
            }
        }

        let session_affinity = match spec.session_affinity.as_deref() {
            None | Some("None") => SessionAffinity::None,
            Some("ClientIP") => {
                let t = spec
                    .session_affinity_config
                    .as_ref()
                    .and_then(|c| c.client_ip.as_ref())
                    .and_then(|c| c.timeout_seconds);
                let timeout_seconds = match t {
                    None => DEFAULT_AFFINITY_TIMEOUT_SECONDS,
                    Some(t) => match u32::try_from(t) {
                        Ok(t) if (1..=MAX_AFFINITY_TIMEOUT_SECONDS).contains(&t) => t,
                        _ => {
                            ck.warn(
                                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                                format!("invalid timeout {t}, expected 1-86400"),
                                Effect::DefaultUsed,
                            );
                            DEFAULT_AFFINITY_TIMEOUT_SECONDS
                        }
                    },
                };
                SessionAffinity::ClientIp { timeout_seconds }
            }
            Some(other) => {
                ck.warn(
                    "spec.sessionAffinity",
                    format!("unknown session affinity {other:?}, expected None or ClientIP"),
                    Effect::DefaultUsed,
                );
                SessionAffinity::None
            }
        };

        let mut policy = |field: &str, v: Option<&str>| match v {
            None | Some("Cluster") => TrafficPolicy::Cluster,
            Some("Local") => TrafficPolicy::Local,
            Some(other) => {
                ck.warn(
                    field,
                    format!("unknown traffic policy {other:?}, expected Cluster or Local"),
                    Effect::DefaultUsed,
                );
                TrafficPolicy::Cluster
            }
        };
        let external_traffic_policy = policy(
            "spec.externalTrafficPolicy",
            spec.external_traffic_policy.as_deref(),
        );
        let internal_traffic_policy = policy(
            "spec.internalTrafficPolicy",
            spec.internal_traffic_policy.as_deref(),
        );

        // Upstream NeedsHealthCheck: LoadBalancer with externalTrafficPolicy Local.
        let health_check_node_port = if service_type == ServiceType::LoadBalancer
            && external_traffic_policy == TrafficPolicy::Local
        {
            match spec.health_check_node_port {
                None | Some(0) => {
                    ck.warn(
                        "spec.healthCheckNodePort",
                        "missing on a LoadBalancer Service with externalTrafficPolicy Local",
                        Effect::Degraded,
                    );
                    None
                }
                Some(n) => {
                    let p = valid_port(n);
                    if p.is_none() {
                        ck.warn(
                            "spec.healthCheckNodePort",
                            format!("invalid port {n}, expected 1-65535"),
                            Effect::Degraded,
                        );
                    }
                    p
                }
            }
        } else {
            None
        };

        let annotations = svc.metadata.annotations.as_ref();
        let topology_mode = annotations.and_then(|a| {
            a.get(ANNOTATION_TOPOLOGY_MODE)
                .or_else(|| a.get(ANNOTATION_TOPOLOGY_AWARE_HINTS))
                .cloned()
        });

        Ok(ParsedService {
            name: ServiceName {
                namespace: object.namespace.clone(),
                name: object.name.clone(),
            },
            service_type,
            cluster_ips,
            ports,
            external_ips,
            load_balancer_ips,
            source_ranges,
            session_affinity,
            external_traffic_policy,
            internal_traffic_policy,
            health_check_node_port,
            traffic_distribution: spec
                .traffic_distribution
                .as_deref()
                .map(TrafficDistribution::parse),
            topology_mode,
        })
    }

    /// The Service's ports in one family; none when it has no cluster IP of that family
    /// (upstream `GetClusterIPByFamily`).
    pub(crate) fn ports_for(&self, family: Family) -> Vec<ServicePort> {
        let Some(cluster_ip) = self.cluster_ips.iter().find(|ip| Family::of(ip) == family) else {
            return Vec::new();
        };
        let of_family = |ips: &[IpAddr]| -> Vec<IpAddr> {
            ips.iter()
                .filter(|ip| Family::of(ip) == family)
                .copied()
                .collect()
        };
        let external_ips = of_family(&self.external_ips);
        let load_balancer_ips = of_family(&self.load_balancer_ips);
        let load_balancer_source_ranges: Vec<IpNet> = self
            .source_ranges
            .iter()
            .filter(|n| Family::of(&n.addr()) == family)
            .copied()
            .collect();
        self.ports
            .iter()
            .map(|p| ServicePort {
                name: ServicePortName {
                    namespace: self.name.namespace.clone(),
                    name: self.name.name.clone(),
                    port_name: p.name.clone(),
                    protocol: p.protocol,
                },
                service_type: self.service_type,
                cluster_ip: *cluster_ip,
                port: p.port,
                protocol: p.protocol,
                node_port: p.node_port,
                external_ips: external_ips.clone(),
                load_balancer_ips: load_balancer_ips.clone(),
                load_balancer_source_ranges: load_balancer_source_ranges.clone(),
                session_affinity: self.session_affinity,
                external_traffic_policy: self.external_traffic_policy,
                internal_traffic_policy: self.internal_traffic_policy,
                health_check_node_port: self.health_check_node_port,
                traffic_distribution: self.traffic_distribution.clone(),
                topology_mode: self.topology_mode.clone(),
            })
            .collect()
    }
}
