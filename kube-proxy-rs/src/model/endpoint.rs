//! EndpointSlices into per-[`ServicePortName`] endpoint lists.
//!
//! ```text
//!   discovery.k8s.io/v1 EndpointSlice* ──parse──> ParsedSlice (validated once; warnings)
//!        ──merge(family, node)──> BTreeMap<ServicePortName, Vec<Endpoint>>  (sorted "ip:port")
//! ```
//!
//! Follows upstream's `EndpointSliceCache`: slices are grouped by their
//! `kubernetes.io/service-name` label, ports are matched to Service ports by name and
//! protocol, only the first address of an endpoint counts, a nil `ready`/`serving` condition
//! means true, and when two slices carry the same `ip:port` a non-terminating endpoint wins.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use dataplane::{Family, Protocol};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::addr::parse_ip;
use super::name::{ObjectKind, ObjectRef, ServiceName, ServicePortName};
use super::service::{LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME, parse_protocol, valid_port};
use super::{Effect, Skip, SkipReason, Warning};

/// The label naming an EndpointSlice's Service (`discovery.LabelServiceName`).
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// One backend of one service port, in one family: upstream `BaseEndpointInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `endpoints[].addresses[0]`, canonical form.
    pub ip: IpAddr,
    /// `ports[].port` of the slice port matching the service port.
    pub port: u16,
    /// `conditions.ready` (nil counts as true).
    pub ready: bool,
    /// `conditions.serving` (nil counts as true).
    pub serving: bool,
    /// `conditions.terminating` (nil counts as false).
    pub terminating: bool,
    /// `nodeName`, if set.
    pub node_name: Option<String>,
    /// `zone`, if set.
    pub zone: Option<String>,
    /// `hints.forZones[].name`.
    pub zone_hints: BTreeSet<String>,
    /// `hints.forNodes[].name` (PreferSameNode, KEP-3015).
    pub node_hints: BTreeSet<String>,
    /// Whether `nodeName` is this node's name (upstream `IsLocal`).
    pub is_local: bool,
}

impl Endpoint {
    /// `ip:port` as Go's `net.JoinHostPort` writes it (`[2001:db8::1]:80` for IPv6): the
    /// endpoint's identity, its sort key and part of its `KUBE-SEP-` hash.
    pub fn endpoint_string(&self) -> String {
        join_host_port(self.ip, self.port)
    }
}

/// Go's `net.JoinHostPort(ip, port)`: brackets around IPv6 addresses.
pub fn join_host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

#[derive(Debug, Clone)]
struct SlicePort {
    name: String,
    protocol: Protocol,
    port: u16,
}

#[derive(Debug, Clone)]
struct SliceEndpoint {
    ip: IpAddr,
    ready: bool,
    serving: bool,
    terminating: bool,
    node_name: Option<String>,
    zone: Option<String>,
    zone_hints: BTreeSet<String>,
    node_hints: BTreeSet<String>,
}

/// An EndpointSlice validated once.
#[derive(Debug, Clone)]
pub(crate) struct ParsedSlice {
    pub(crate) service: ServiceName,
    family: Family,
    ports: Vec<SlicePort>,
    endpoints: Vec<SliceEndpoint>,
}

impl ParsedSlice {
    /// Validates an EndpointSlice. `Err(Some(skip))` for slices skipped by design (FQDN,
    /// headless, another proxy's); `Err(None)` when invalid (the warning is pushed).
    pub(crate) fn parse(
        slice: &EndpointSlice,
        warnings: &mut Vec<Warning>,
    ) -> Result<ParsedSlice, Option<Skip>> {
        let object = ObjectRef::from_meta(ObjectKind::EndpointSlice, &slice.metadata);
        let mut warn = |field: String, reason: String, effect| {
            warnings.push(Warning {
                object: object.clone(),
                field,
                reason,
                effect,
            })
        };
        if object.name.is_empty() || object.namespace.is_empty() {
            warn(
                "metadata".into(),
                "namespace and name are required".into(),
                Effect::ObjectSkipped,
            );
            return Err(None);
        }
        let skip = |reason| {
            Err(Some(Skip {
                object: object.clone(),
                reason,
            }))
        };
        let labels = slice.metadata.labels.as_ref();
        if let Some(v) = labels.and_then(|l| l.get(LABEL_SERVICE_PROXY_NAME)) {
            return skip(SkipReason::ServiceProxyName(v.clone()));
        }
        if labels.is_some_and(|l| l.contains_key(LABEL_HEADLESS)) {
            return skip(SkipReason::HeadlessLabel);
        }
        let family = match slice.address_type.as_str() {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            "FQDN" => return skip(SkipReason::FqdnSlice),
            other => {
                warn(
                    "addressType".into(),
                    format!("unknown address type {other:?}, expected IPv4, IPv6 or FQDN"),
                    Effect::ObjectSkipped,
                );
                return Err(None);
            }
        };
        let Some(service) = labels
            .and_then(|l| l.get(LABEL_SERVICE_NAME))
            .filter(|s| !s.is_empty())
        else {
            warn(
                format!("metadata.labels[{LABEL_SERVICE_NAME}]"),
                "missing: the slice names no Service".into(),
                Effect::ObjectSkipped,
            );
            return Err(None);
        };

        let mut ports = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, p) in slice.ports.iter().flatten().enumerate() {
            let field = format!("ports[{i}]");
            let Some(name) = p.name.clone() else {
                warn(
                    format!("{field}.name"),
                    "missing; kube-proxy ignores ports without a name (use name: \"\" for an unnamed Service port)".into(),
                    Effect::PortSkipped,
                );
                continue;
            };
            let Some(port) = p.port.and_then(valid_port) else {
                warn(
                    format!("{field}.port"),
                    format!(
                        "invalid port {}, expected 1-65535",
                        p.port.map_or("<unset>".to_string(), |p| p.to_string())
                    ),
                    Effect::PortSkipped,
                );
                continue;
            };
            let Some(protocol) = parse_protocol(p.protocol.as_deref()) else {
                warn(
                    format!("{field}.protocol"),
                    format!(
                        "unknown protocol {:?}, expected TCP, UDP or SCTP",
                        p.protocol.as_deref().unwrap_or_default()
                    ),
                    Effect::PortSkipped,
                );
                continue;
            };
            if !seen.insert((name.clone(), protocol)) {
                warn(
                    format!("{field}.name"),
                    format!(
                        "duplicate port {name:?}/{}",
                        protocol.to_string().to_uppercase()
                    ),
                    Effect::PortSkipped,
                );
                continue;
            }
            ports.push(SlicePort {
                name,
                protocol,
                port,
            });
        }

        let mut endpoints = Vec::new();
        for (i, ep) in slice.endpoints.iter().flatten().enumerate() {
            let field = format!("endpoints[{i}].addresses[0]");
            let Some(raw) = ep.addresses.first() else {
                warn(field, "no address".into(), Effect::EndpointSkipped);
                continue;
            };
            let Some(ip) = parse_ip(raw) else {
                warn(
                    field,
                    format!("invalid IP address {raw:?}"),
                    Effect::EndpointSkipped,
                );
                continue;
            };
            if Family::of(&ip) != family {
                warn(
                    field,
                    format!(
                        "address {raw:?} is not of the slice's address type {}",
                        slice.address_type
                    ),
                    Effect::EndpointSkipped,
                );
                continue;
            }
            let c = ep.conditions.as_ref();
            let hints = ep.hints.as_ref();
            endpoints.push(SliceEndpoint {
                ip,
                ready: c.and_then(|c| c.ready).unwrap_or(true),
                serving: c.and_then(|c| c.serving).unwrap_or(true),
                terminating: c.and_then(|c| c.terminating).unwrap_or(false),
                node_name: ep.node_name.clone(),
                zone: ep.zone.clone(),
                zone_hints: hints
                    .and_then(|h| h.for_zones.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|z| z.name.clone())
                    .collect(),
                node_hints: hints
                    .and_then(|h| h.for_nodes.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|n| n.name.clone())
                    .collect(),
            });
        }

        Ok(ParsedSlice {
            service: ServiceName {
                namespace: object.namespace.clone(),
                name: service.clone(),
            },
            family,
            ports,
            endpoints,
        })
    }
}

/// Merges the slices of one family into endpoint lists keyed by service port, each sorted by
/// its `ip:port` string as upstream sorts them. `slices` must be in a stable order (by
/// namespace and name): when one `ip:port` appears twice the later non-terminating copy wins.
pub(crate) fn merge(
    slices: &[ParsedSlice],
    family: Family,
    node_name: &str,
) -> BTreeMap<ServicePortName, Vec<Endpoint>> {
    let mut by_port: BTreeMap<ServicePortName, BTreeMap<String, Endpoint>> = BTreeMap::new();
    for slice in slices.iter().filter(|s| s.family == family) {
        for port in &slice.ports {
            let key = ServicePortName {
                namespace: slice.service.namespace.clone(),
                name: slice.service.name.clone(),
                port_name: port.name.clone(),
                protocol: port.protocol,
            };
            let set = by_port.entry(key).or_default();
            for ep in &slice.endpoints {
                let endpoint = Endpoint {
                    ip: ep.ip,
                    port: port.port,
                    ready: ep.ready,
                    serving: ep.serving,
                    terminating: ep.terminating,
                    node_name: ep.node_name.clone(),
                    zone: ep.zone.clone(),
                    zone_hints: ep.zone_hints.clone(),
                    node_hints: ep.node_hints.clone(),
                    is_local: !node_name.is_empty() && ep.node_name.as_deref() == Some(node_name),
                };
                let key = endpoint.endpoint_string();
                if !set.contains_key(&key) || !endpoint.terminating {
                    set.insert(key, endpoint);
                }
            }
        }
    }
    by_port
        .into_iter()
        .map(|(name, set)| (name, set.into_values().collect()))
        .collect()
}
