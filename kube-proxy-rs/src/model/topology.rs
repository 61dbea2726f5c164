//! Which endpoints a service port uses, and why the others are left out.
//!
//! ```text
//!   ServicePort + [Endpoint] + this node (name, zone)
//!       ──categorize──> EndpointSet { per endpoint: cluster Choice, local Choice;
//!                                     topology decision; fallbacks; has_endpoints }
//! ```
//!
//! The same decisions as upstream `CategorizeEndpoints` (pkg/proxy/topology.go):
//! - Cluster endpoints (when the port uses Cluster policy): ready endpoints, narrowed by
//!   topology hints (PreferSameNode when every ready endpoint has a node hint and one is
//!   for this node; else PreferSameZone when every ready endpoint has a zone hint and one is
//!   for this node's zone; else all). With no ready endpoint anywhere: serving and
//!   terminating ones.
//! - Local endpoints (when the port uses Local policy): ready endpoints on this node; if
//!   none, serving and terminating ones on this node. Topology hints do not apply.
//! - All reachable = the union; `has_endpoints` = a usable endpoint exists somewhere.
//!
//! Every endpoint left out carries an [`Exclusion`] so logs and diag can say why.

use std::fmt;

use super::endpoint::Endpoint;
use super::service::ServicePort;

/// How topology narrowed a port's cluster endpoints (upstream `topologyMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum TopologyMode {
    /// No narrowing: every ready endpoint.
    #[default]
    None,
    /// Only endpoints hinted for this node's zone (`hints.forZones`).
    PreferSameZone,
    /// Only endpoints hinted for this node (`hints.forNodes`).
    PreferSameNode,
}

impl fmt::Display for TopologyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopologyMode::None => "none",
            TopologyMode::PreferSameZone => "PreferSameZone",
            TopologyMode::PreferSameNode => "PreferSameNode",
        })
    }
}

/// What the hints of one kind (node or zone) said for this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum HintCheck {
    /// Not looked at: the port uses no cluster endpoints, or no endpoint is ready.
    #[default]
    NotChecked,
    /// At least one ready endpoint has no hint of this kind, so hints are ignored.
    Incomplete,
    /// Every ready endpoint has a hint, but none names this node / zone.
    NoneForThisNode,
    /// Zone hints are complete but this node has no `topology.kubernetes.io/zone` label.
    NodeHasNoZone,
    /// Some ready endpoint is hinted for this node / zone.
    Matched,
}

/// The topology decision for one service port, with what each hint kind said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopologyDecision {
    /// The mode used to narrow cluster endpoints.
    pub mode: TopologyMode,
    /// What `hints.forNodes` said.
    pub node_hints: HintCheck,
    /// What `hints.forZones` said.
    pub zone_hints: HintCheck,
}

/// Why an endpoint is not used for one traffic policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    /// `ready` is false and the endpoint is not serving-and-terminating.
    NotReady,
    /// No ready endpoint exists, the fallback uses serving terminating ones, and this one
    /// is not serving.
    NotServing,
    /// Serving and terminating, but ready endpoints exist and are preferred.
    TerminatingReadyPreferred,
    /// Local traffic policy: the endpoint runs on another node (or names none).
    NotLocal {
        /// The endpoint's `nodeName`.
        node: Option<String>,
    },
    /// PreferSameZone: the endpoint's zone hints do not include this node's zone.
    HintedForOtherZones {
        /// This node's zone.
        zone: String,
    },
    /// PreferSameNode: the endpoint's node hints do not include this node.
    HintedForOtherNodes,
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::NotReady => f.write_str("not ready"),
            Exclusion::NotServing => f.write_str("not serving"),
            Exclusion::TerminatingReadyPreferred => {
                f.write_str("terminating (ready endpoints are preferred)")
            }
            Exclusion::NotLocal { node: Some(n) } => {
                write!(f, "on node {n}, not this node (traffic policy Local)")
            }
            Exclusion::NotLocal { node: None } => {
                f.write_str("names no node (traffic policy Local)")
            }
            Exclusion::HintedForOtherZones { zone } => {
                write!(f, "hinted for other zones than {zone} (topology)")
            }
            Exclusion::HintedForOtherNodes => f.write_str("hinted for other nodes (topology)"),
        }
    }
}

/// Whether an endpoint is used for one traffic policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The port does not use this policy (e.g. Local for a plain ClusterIP port).
    PolicyUnused,
    /// Used.
    Used,
    /// Left out, with the reason.
    Excluded(Exclusion),
}

impl Choice {
    /// Whether the endpoint is used.
    pub fn is_used(&self) -> bool {
        matches!(self, Choice::Used)
    }
}

/// One endpoint with its choices under the two traffic policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Under Cluster policy (`KUBE-SVC-*`, `service-*`).
    pub cluster: Choice,
    /// Under Local policy (`KUBE-SVL-*`, `local-*`).
    pub local: Choice,
}

/// Whether the serving-terminating fallback (KEP-1669) is in use, per policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fallback {
    /// No ready endpoint anywhere: cluster endpoints are the serving terminating ones.
    pub cluster: bool,
    /// No ready local endpoint: local endpoints are the serving terminating local ones.
    pub local: bool,
}

/// A service port's endpoints, categorized.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointSet {
    /// Every endpoint of the port, sorted by `ip:port` string as upstream does.
    pub entries: Vec<SelectedEndpoint>,
    /// The topology decision for cluster endpoints.
    pub topology: TopologyDecision,
    /// Where the serving-terminating fallback applies.
    pub fallback: Fallback,
    /// Upstream `hasAnyEndpoints`: a usable endpoint exists somewhere in the cluster (true
    /// even when none is reachable from this node). False means REJECT.
    pub has_endpoints: bool,
}

impl EndpointSet {
    /// Endpoints for Cluster policy, in order (upstream `clusterEndpoints`).
    pub fn cluster_endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.entries
            .iter()
            .filter(|e| e.cluster.is_used())
            .map(|e| &e.endpoint)
    }

    /// Endpoints for Local policy, in order (upstream `localEndpoints`).
    pub fn local_endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.entries
            .iter()
            .filter(|e| e.local.is_used())
            .map(|e| &e.endpoint)
    }

    /// Every endpoint reachable from this node under either policy, in order (upstream
    /// `allReachableEndpoints`): the `KUBE-SEP-*` / `endpoint-*` chains to create.
    pub fn all_reachable(&self) -> impl Iterator<Item = &Endpoint> {
        self.entries
            .iter()
            .filter(|e| e.cluster.is_used() || e.local.is_used())
            .map(|e| &e.endpoint)
    }

    /// Every endpoint left out under some policy, with the policy name and the reason.
    pub fn exclusions(&self) -> impl Iterator<Item = (&Endpoint, &'static str, &Exclusion)> {
        self.entries.iter().flat_map(|e| {
            let c = match &e.cluster {
                Choice::Excluded(x) => Some((&e.endpoint, "Cluster", x)),
                _ => None,
            };
            let l = match &e.local {
                Choice::Excluded(x) => Some((&e.endpoint, "Local", x)),
                _ => None,
            };
            c.into_iter().chain(l)
        })
    }

    /// Number of ready endpoints on this node: the count the health-check node port
    /// reports (upstream `LocalReadyEndpoints`, which counts ready local endpoints only).
    pub fn local_ready_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.endpoint.is_local && e.endpoint.ready)
            .count()
    }
}

fn serving_terminating(ep: &Endpoint) -> bool {
    ep.serving && ep.terminating
}

/// Why an endpoint is unusable when ready endpoints are being selected.
fn ready_mode_exclusion(ep: &Endpoint) -> Exclusion {
    if serving_terminating(ep) {
        Exclusion::TerminatingReadyPreferred
    } else {
        Exclusion::NotReady
    }
}

/// Why an endpoint is unusable when the serving-terminating fallback applies.
fn fallback_exclusion(ep: &Endpoint) -> Exclusion {
    if !ep.serving {
        Exclusion::NotServing
    } else {
        Exclusion::NotReady
    }
}

fn topology_decision(
    endpoints: &[Endpoint],
    node_name: &str,
    zone: Option<&str>,
) -> TopologyDecision {
    let ready: Vec<&Endpoint> = endpoints.iter().filter(|e| e.ready).collect();
    if ready.is_empty() {
        return TopologyDecision::default();
    }
    let node_hints = if ready.iter().any(|e| e.node_hints.is_empty()) {
        HintCheck::Incomplete
    } else if ready.iter().any(|e| e.node_hints.contains(node_name)) {
        HintCheck::Matched
    } else {
        HintCheck::NoneForThisNode
    };
    let zone_hints = if ready.iter().any(|e| e.zone_hints.is_empty()) {
        HintCheck::Incomplete
    } else if zone.is_some_and(|z| ready.iter().any(|e| e.zone_hints.contains(z))) {
        HintCheck::Matched
    } else if zone.unwrap_or_default().is_empty() {
        HintCheck::NodeHasNoZone
    } else {
        HintCheck::NoneForThisNode
    };
    let mode = if node_hints == HintCheck::Matched {
        TopologyMode::PreferSameNode
    } else if zone_hints == HintCheck::Matched {
        TopologyMode::PreferSameZone
    } else {
        TopologyMode::None
    };
    TopologyDecision {
        mode,
        node_hints,
        zone_hints,
    }
}

/// Categorizes one port's endpoints (sorted, deduplicated) for this node.
pub fn categorize(
    svc: &ServicePort,
    endpoints: Vec<Endpoint>,
    node_name: &str,
    zone: Option<&str>,
) -> EndpointSet {
    let mut set = EndpointSet::default();
    if endpoints.is_empty() {
        return set;
    }
    let n = endpoints.len();
    let mut cluster = vec![Choice::PolicyUnused; n];
    let mut local = vec![Choice::PolicyUnused; n];

    if svc.uses_cluster_endpoints() {
        let topo = topology_decision(&endpoints, node_name, zone);
        let topology_excludes = |ep: &Endpoint| match topo.mode {
            TopologyMode::None => None,
            TopologyMode::PreferSameNode => {
                (!ep.node_hints.contains(node_name)).then_some(Exclusion::HintedForOtherNodes)
            }
            TopologyMode::PreferSameZone => {
                let z = zone.unwrap_or_default();
                (!ep.zone_hints.contains(z)).then(|| Exclusion::HintedForOtherZones {
                    zone: z.to_string(),
                })
            }
        };
        for (i, ep) in endpoints.iter().enumerate() {
            cluster[i] = if !ep.ready {
                Choice::Excluded(ready_mode_exclusion(ep))
            } else if let Some(x) = topology_excludes(ep) {
                Choice::Excluded(x)
            } else {
                Choice::Used
            };
        }
        // A topology mode is only chosen when a ready endpoint matches it, so an empty
        // set here means no endpoint is ready anywhere.
        if !cluster.iter().any(Choice::is_used) {
            set.fallback.cluster = true;
            for (i, ep) in endpoints.iter().enumerate() {
                cluster[i] = if serving_terminating(ep) {
                    Choice::Used
                } else {
                    Choice::Excluded(fallback_exclusion(ep))
                };
            }
        }
        set.has_endpoints = cluster.iter().any(Choice::is_used);
        set.topology = topo;
    }

    if svc.uses_local_endpoints() {
        let any_ready = endpoints.iter().any(|e| e.ready);
        let any_st = endpoints.iter().any(|e| !e.ready && serving_terminating(e));
        set.has_endpoints |= any_ready || any_st;
        let local_ready = endpoints.iter().any(|e| e.is_local && e.ready);
        let local_st = endpoints
            .iter()
            .any(|e| e.is_local && !e.ready && serving_terminating(e));
        set.fallback.local = !local_ready && local_st;
        for (i, ep) in endpoints.iter().enumerate() {
            let usable = if local_ready {
                ep.ready
            } else if local_st {
                serving_terminating(ep)
            } else {
                false
            };
            local[i] = if usable && ep.is_local {
                Choice::Used
            } else if usable || ((ep.ready || serving_terminating(ep)) && !ep.is_local) {
                Choice::Excluded(Exclusion::NotLocal {
                    node: ep.node_name.clone(),
                })
            } else if local_st {
                Choice::Excluded(fallback_exclusion(ep))
            } else {
                Choice::Excluded(ready_mode_exclusion(ep))
            };
        }
    }

    set.entries = endpoints
        .into_iter()
        .zip(cluster.into_iter().zip(local))
        .map(|(endpoint, (cluster, local))| SelectedEndpoint {
            endpoint,
            cluster,
            local,
        })
        .collect();
    set
}
