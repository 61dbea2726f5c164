//! EndpointSlices into per-[`ServicePortName`] endpoint lists.
//!
//! ```text
//!   discovery.k8s.io/v1 EndpointSlice* ──parse──> ParsedSlice (validated once; warnings)
//!        ──by_service(family)──endpoints_for(port, node)──> Vec<Endpoint>  (sorted "ip:port")
//! ```
//!
//! Follows upstream's `EndpointSliceCache`: slices are grouped by their
//! `kubernetes.io/service-name` label, ports are matched to Service ports by name and
//! protocol, only the first address of an endpoint counts, a nil `ready`/`serving` condition
//! means true, and when two slices carry the same `ip:port` a non-terminating endpoint wins.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use dataplane::{Family, Protocol};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::addr::parse_ip;
use super::name::{ObjectKind, ObjectRef, ServiceName};
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

/// Most endpoints one EndpointSlice may carry (`maxEndpoints` in the API's validation of
/// `discovery.k8s.io/v1`).
pub const MAX_SLICE_ENDPOINTS: usize = 1000;
/// Most ports one EndpointSlice may carry (`maxPorts`).
pub const MAX_SLICE_PORTS: usize = 100;

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
        // What the API server's validation refuses (at most 1,000 endpoints and 100 ports a
        // slice): a slice past that did not come from a real EndpointSlice controller.
        let n = slice.endpoints.iter().flatten().count();
        if n > MAX_SLICE_ENDPOINTS {
            warn(
                "endpoints".into(),
                format!("{n} endpoints, the API allows at most {MAX_SLICE_ENDPOINTS} a slice"),
                Effect::ObjectSkipped,
            );
            return Err(None);
        }
        let n = slice.ports.iter().flatten().count();
        if n > MAX_SLICE_PORTS {
            warn(
                "ports".into(),
                format!("{n} ports, the API allows at most {MAX_SLICE_PORTS} a slice"),
                Effect::ObjectSkipped,
            );
            return Err(None);
        }

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

/// The slices of one family, grouped by the Service they name (in slice order).
pub(crate) fn by_service(
    slices: &[ParsedSlice],
    family: Family,
) -> BTreeMap<&ServiceName, Vec<&ParsedSlice>> {
    let mut out: BTreeMap<&ServiceName, Vec<&ParsedSlice>> = BTreeMap::new();
    for s in slices.iter().filter(|s| s.family == family) {
        out.entry(&s.service).or_default().push(s);
    }
    out
}

/// `ip:port` as [`join_host_port`] writes it, on the stack: the sort key of endpoints,
/// ordered as the string is (byte-wise, like Go's string comparison).
struct HostPortKey {
    len: usize,
    buf: [u8; 48], // "[" + 39 + "]:" + 5 fits
}

impl HostPortKey {
    fn new(ip: IpAddr, port: u16) -> HostPortKey {
        use std::io::Write;
        let mut buf = [0u8; 48];
        let mut w = &mut buf[..];
        let _ = match ip {
            IpAddr::V4(v4) => write!(w, "{v4}:{port}"),
            IpAddr::V6(v6) => write!(w, "[{v6}]:{port}"),
        };
        let len = 48 - w.len();
        HostPortKey { len, buf }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl PartialEq for HostPortKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for HostPortKey {}

impl PartialOrd for HostPortKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HostPortKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// The endpoints of one service port, merged from its slices (in a stable order: by
/// namespace and name) and sorted by their `ip:port` string as upstream sorts them. When one
/// `ip:port` appears twice, a later non-terminating copy replaces an earlier one.
pub(crate) fn endpoints_for(
    slices: &[&ParsedSlice],
    port_name: &str,
    protocol: Protocol,
    node_name: &str,
) -> Vec<Endpoint> {
    let mut set: HashMap<(IpAddr, u16), Endpoint> = HashMap::new();
    for slice in slices {
        let Some(port) = slice
            .ports
            .iter()
            .find(|p| p.name == port_name && p.protocol == protocol)
        else {
            continue;
        };
        for ep in &slice.endpoints {
            let key = (ep.ip, port.port);
            if set.contains_key(&key) && ep.terminating {
                continue;
            }
            set.insert(
                key,
                Endpoint {
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
                },
            );
        }
    }
    let mut out: Vec<Endpoint> = set.into_values().collect();
    out.sort_by_cached_key(|e| HostPortKey::new(e.ip, e.port));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_key_is_the_endpoint_string() {
        for (ip, port) in [
            ("198.18.64.9", 80),
            ("2001:db8:1111:2222:3333:4444:5555:6666", 65535),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                HostPortKey::new(ip, port).as_bytes(),
                join_host_port(ip, port).as_bytes()
            );
        }
        // String order, as upstream: "198.18.64.10:80" < "198.18.64.9:80".
        let k = |s: &str| HostPortKey::new(s.parse().unwrap(), 80);
        assert!(k("198.18.64.10") < k("198.18.64.9"));
    }
}
