//! The pure service model: API objects in, one [`ProxyState`] per IP family out.
//!
//! ```text
//!   Service*  ──┐
//!   EndpointSlice* ─┼─ build(…, &ModelOptions) ──> Build { ipv4: ProxyState, ipv6: ProxyState,
//!   Node (this one) ┘                                       warnings, skipped }
//!
//!   ProxyState { family, services:  BTreeMap<ServicePortName, ServicePort>,
//!                        endpoints: BTreeMap<ServicePortName, EndpointSet>, node: NodeInfo }
//!   new.diff(&old) -> ChangeSet { added, removed, changed, node_changed }
//! ```
//!
//! Dual-stack works as upstream's MetaProxier: each family is an independent proxier with its
//! own state. Maps are `BTreeMap`s so renders iterate in one order and emit byte-identical
//! text. `services` and `endpoints` have the same keys: a port without endpoints has an
//! empty [`EndpointSet`]. Nothing here does I/O, reads the clock or logs; what went wrong
//! is returned as [`Warning`]s and what was left out on purpose as [`Skip`]s.

mod addr;
mod diff;
mod endpoint;
mod name;
mod node;
mod service;
mod topology;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use dataplane::Family;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use addr::{parse_cidr, parse_ip};
pub use diff::ChangeSet;
pub use endpoint::{
    Endpoint, LABEL_SERVICE_NAME, MAX_SLICE_ENDPOINTS, MAX_SLICE_PORTS, join_host_port,
};
pub use name::{ObjectKind, ObjectRef, ServiceName, ServicePortName};
pub use node::{
    DetectLocalMode, LABEL_TOPOLOGY_ZONE, LocalTraffic, ModelOptions, NodeAddress, NodeInfo,
    NodePortAddress, NodePortAddresses, UndetectedReason,
};
pub use service::{
    ANNOTATION_TOPOLOGY_AWARE_HINTS, ANNOTATION_TOPOLOGY_MODE, DEFAULT_AFFINITY_TIMEOUT_SECONDS,
    LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME, MAX_AFFINITY_TIMEOUT_SECONDS, ServicePort,
    ServiceType, SessionAffinity, TrafficDistribution, TrafficPolicy,
};
pub use topology::{
    Choice, EndpointSet, Exclusion, Fallback, HintCheck, SelectedEndpoint, TopologyDecision,
    TopologyMode, categorize,
};

use endpoint::ParsedSlice;
use node::NodeFacts;
use service::ParsedService;

/// What a [`Warning`] cost: how much of the object was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// The whole object is ignored.
    ObjectSkipped,
    /// One port of it is ignored.
    PortSkipped,
    /// One endpoint of it is ignored.
    EndpointSkipped,
    /// One value (an IP, a range, ...) is ignored; the rest is programmed.
    ValueIgnored,
    /// The value is replaced by its default.
    DefaultUsed,
    /// Programmed without the feature this value enables.
    Degraded,
}

impl Effect {
    /// A short label, also usable as a metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::ObjectSkipped => "object skipped",
            Effect::PortSkipped => "port skipped",
            Effect::EndpointSkipped => "endpoint skipped",
            Effect::ValueIgnored => "value ignored",
            Effect::DefaultUsed => "default used",
            Effect::Degraded => "programmed without it",
        }
    }
}

/// Bad input found while building: which object, which field, what is wrong, what it cost.
///
/// Displayed as `Service ns/name: spec.ports[0].port: invalid port 0, expected 1-65535
/// (port skipped)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Warning {
    /// The object, e.g. `Service ns/name`.
    pub object: ObjectRef,
    /// The field path, e.g. `spec.ports[1].protocol`.
    pub field: String,
    /// What is wrong and what was expected.
    pub reason: String,
    /// What was left out because of it.
    pub effect: Effect,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {} ({})",
            self.object,
            self.field,
            self.reason,
            self.effect.as_str()
        )
    }
}

/// Why an object was left out on purpose (not an error).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// `spec.type: ExternalName` (DNS only).
    ExternalName,
    /// `spec.clusterIP: None` (headless).
    Headless,
    /// Carries `service.kubernetes.io/headless`.
    HeadlessLabel,
    /// Carries `service.kubernetes.io/service-proxy-name` (another proxy owns it).
    ServiceProxyName(String),
    /// `addressType: FQDN` EndpointSlice.
    FqdnSlice,
    /// A second object with the same namespace and name; the first one is used.
    Duplicate,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::ExternalName => f.write_str("type ExternalName"),
            SkipReason::Headless => f.write_str("headless (clusterIP None)"),
            SkipReason::HeadlessLabel => write!(f, "labelled {LABEL_HEADLESS}"),
            SkipReason::ServiceProxyName(v) => {
                write!(f, "labelled {LABEL_SERVICE_PROXY_NAME}={v}")
            }
            SkipReason::FqdnSlice => f.write_str("addressType FQDN"),
            SkipReason::Duplicate => f.write_str("duplicate of an earlier object"),
        }
    }
}

/// An object left out on purpose, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Skip {
    /// The object.
    pub object: ObjectRef,
    /// Why.
    pub reason: SkipReason,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: skipped: {}", self.object, self.reason)
    }
}

/// Everything one family's proxier programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyState {
    /// The family (`iptables` vs `ip6tables`, `ip` vs `ip6` table).
    pub family: Family,
    /// Every service port with a cluster IP of this family.
    pub services: BTreeMap<ServicePortName, ServicePort>,
    /// The categorized endpoints of every port in `services` (same keys).
    pub endpoints: BTreeMap<ServicePortName, EndpointSet>,
    /// This node.
    pub node: NodeInfo,
}

impl ProxyState {
    /// An empty state (no services) for a node.
    pub fn empty(family: Family, node: NodeInfo) -> ProxyState {
        ProxyState {
            family,
            services: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            node,
        }
    }

    /// The service ports of one Service, in order.
    pub fn ports_of<'a>(
        &'a self,
        service: &'a ServiceName,
    ) -> impl Iterator<Item = (&'a ServicePortName, &'a ServicePort)> + 'a {
        self.services.iter().filter(move |(k, _)| k.is_of(service))
    }

    /// The Services with ports in this state.
    pub fn service_names(&self) -> BTreeSet<ServiceName> {
        self.services.keys().map(ServicePortName::service).collect()
    }

    /// Ready endpoints on this node per Service, counting each IP once: what the
    /// health-check node port server reports (upstream `LocalReadyEndpoints`).
    pub fn local_ready_endpoints(&self) -> BTreeMap<ServiceName, usize> {
        let mut ips: BTreeMap<ServiceName, BTreeSet<std::net::IpAddr>> = BTreeMap::new();
        for (name, set) in &self.endpoints {
            for e in set
                .entries
                .iter()
                .filter(|e| e.endpoint.is_local && e.endpoint.ready)
            {
                ips.entry(name.service()).or_default().insert(e.endpoint.ip);
            }
        }
        ips.into_iter().map(|(k, v)| (k, v.len())).collect()
    }
}

/// The result of one [`build`]: both families, plus what was wrong or left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The IPv4 proxier's state.
    pub ipv4: ProxyState,
    /// The IPv6 proxier's state.
    pub ipv6: ProxyState,
    /// Bad input, once per problem (not once per family), in object order.
    pub warnings: Vec<Warning>,
    /// Objects left out on purpose.
    pub skipped: Vec<Skip>,
}

impl Build {
    /// The state of one family.
    pub fn state(&self, family: Family) -> &ProxyState {
        match family {
            Family::V4 => &self.ipv4,
            Family::V6 => &self.ipv6,
        }
    }

    /// Splits into the two states.
    pub fn into_states(self) -> (ProxyState, ProxyState) {
        (self.ipv4, self.ipv6)
    }
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// Builds both families' states from the current objects.
///
/// Objects may come in any order (a watcher's store, the file source); the result depends
/// only on their content. `node` is this node's Node object, when known.
pub fn build<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: Option<&Node>,
    opts: &ModelOptions,
) -> Build {
    let mut warnings = Vec::new();
    let mut skipped = Vec::new();

    let mut services: Vec<&Service> = services.into_iter().collect();
    services.sort_by(|a, b| key(&a.metadata).cmp(&key(&b.metadata)));
    let mut slices: Vec<&EndpointSlice> = slices.into_iter().collect();
    slices.sort_by(|a, b| key(&a.metadata).cmp(&key(&b.metadata)));

    let node_facts = NodeFacts::parse(node, &mut warnings);

    let mut parsed_services = Vec::new();
    let mut last = None;
    for svc in services {
        let k = key(&svc.metadata);
        if last == Some(k) {
            let object = ObjectRef::from_meta(ObjectKind::Service, &svc.metadata);
            skipped.push(Skip {
                object,
                reason: SkipReason::Duplicate,
            });
            continue;
        }
        last = Some(k);
        match ParsedService::parse(svc, &mut warnings) {
            Ok(p) => parsed_services.push(p),
            Err(Some(skip)) => skipped.push(skip),
            Err(None) => {}
        }
    }

    let mut parsed_slices = Vec::new();
    let mut last = None;
    for slice in slices {
        let k = key(&slice.metadata);
        if last == Some(k) {
            let object = ObjectRef::from_meta(ObjectKind::EndpointSlice, &slice.metadata);
            skipped.push(Skip {
                object,
                reason: SkipReason::Duplicate,
            });
            continue;
        }
        last = Some(k);
        match ParsedSlice::parse(slice, &mut warnings) {
            Ok(p) => parsed_slices.push(p),
            Err(Some(skip)) => skipped.push(skip),
            Err(None) => {}
        }
    }

    let state = |family| build_family(family, &parsed_services, &parsed_slices, &node_facts, opts);
    Build {
        ipv4: state(Family::V4),
        ipv6: state(Family::V6),
        warnings,
        skipped,
    }
}

fn build_family(
    family: Family,
    services: &[ParsedService],
    slices: &[ParsedSlice],
    node_facts: &NodeFacts,
    opts: &ModelOptions,
) -> ProxyState {
    let node = node_facts.for_family(family, opts);
    let slices = endpoint::by_service(slices, family);
    let mut state = ProxyState::empty(family, node);
    for svc in services {
        let svc_slices = slices.get(&svc.name).map_or(&[][..], Vec::as_slice);
        for port in svc.ports_for(family) {
            let name = &port.name;
            let endpoints = endpoint::endpoints_for(
                svc_slices,
                &name.port_name,
                name.protocol,
                &opts.node_name,
            );
            let set = categorize(
                &port,
                endpoints,
                &state.node.name,
                state.node.zone.as_deref(),
            );
            state.endpoints.insert(port.name.clone(), set);
            state.services.insert(port.name.clone(), port);
        }
    }
    state
}
