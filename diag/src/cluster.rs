//! A trace across nodes: run `dataplane::trace` on the entry node; a path that leaves the node
//! toward an address another snapshot owns continues there, arriving on the interface that
//! holds that address, until it reaches a pod, a local socket, a drop, or leaves the known
//! nodes. Pure.
//!
//! ```text
//!   Cluster { nodes: [Snapshot], objects }
//!   trace(cluster, packet, entry) ──> ClusterTrace { paths: [ClusterPath { probability,
//!                                       hops: [Hop { node, iif, steps, verdict }], outcome }] }
//!   per node path, by verdict:
//!     Forwarded out dev D to next hop N:
//!       N == dst and (a /32 route to dst via D, or a known pod has dst)  -> DeliveredToPod
//!       N owned by another snapshot (address on iface I)                 -> continue there, iif I
//!       otherwise                                                        -> LeftKnownNodes
//!     Delivered (local socket) -> DeliveredLocal;  NotModelled -> NotModelled;  else -> Dropped
//!   loop protection: a (node, iif, packet) seen before on the same path -> Loop; hop bound
//! ```
//! Marks do not cross nodes (they are skb metadata); the conntrack state to assume is the
//! request's on every node.

use std::collections::HashSet;
use std::net::IpAddr;

use dataplane::trace::{
    Assumption, DropReason, Endpoint, Step, TraceOptions, TracePath, Verdict, trace_with,
};
use dataplane::{CtState, Packet};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::objects::{self, Objects};
use crate::snapshot::Snapshot;

/// Every node known, and the objects that name things.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// The nodes' snapshots (one per bundle or live collection).
    pub nodes: Vec<Snapshot>,
    /// Kubernetes objects (manifests, bundles, API), merged.
    pub objects: Objects,
}

impl Cluster {
    /// A cluster of these snapshots; their saved objects are merged after `objects`.
    pub fn new(nodes: Vec<Snapshot>, mut objects: Objects) -> Cluster {
        for n in &nodes {
            objects.merge(n.objects.clone());
        }
        Cluster { nodes, objects }
    }

    /// The snapshot owning `addr` (an address on one of its interfaces, not `lo`), and that
    /// interface.
    pub fn owner_of(&self, addr: IpAddr) -> Option<(usize, String)> {
        self.nodes.iter().enumerate().find_map(|(i, s)| {
            s.node
                .routes
                .addresses
                .iter()
                .filter(|ia| ia.ifname != "lo")
                .find(|ia| ia.addrs.iter().any(|a| a.local == addr))
                .map(|ia| (i, ia.ifname.clone()))
        })
    }

    /// Whether `dev` on node `i` is the host side of a pod holding `addr`: the node has a host
    /// route (`/32`, `/128`) to `addr` through `dev`, or a known pod has `addr`.
    pub fn is_pod_iface(&self, i: usize, dev: &str, addr: IpAddr) -> bool {
        let host = IpNet::from(addr);
        let routed = self.nodes[i]
            .node
            .routes
            .routes
            .iter()
            .any(|r| r.dst == host && r.dev() == Some(dev));
        routed || self.objects.pod_by_ip(addr).is_some()
    }

    /// `ns/name` of the pod with `addr`, if known.
    pub fn pod_name(&self, addr: IpAddr) -> Option<String> {
        self.objects
            .pod_by_ip(addr)
            .map(|p| objects::ns_name(&p.metadata))
    }
}

/// One node's part of a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    /// The node.
    pub node: String,
    /// Where the packet arrived (`None`: sent by a local process).
    pub iif: Option<String>,
    /// The packet as it arrived.
    pub packet_in: Packet,
    /// What happened there, in order (the tracer's steps).
    pub steps: Vec<Step>,
    /// How it ended there (the tracer's verdict).
    pub verdict: Verdict,
    /// The packet as it left, was delivered, or was dropped.
    pub packet_out: Packet,
    /// Probability of this node-local path (given the packet arrived).
    pub probability: f64,
}

/// How a path through the cluster ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Forwarded out a pod's host-side interface to the pod's address.
    DeliveredToPod {
        /// The node.
        node: String,
        /// The pod interface.
        dev: String,
        /// The pod (`ns/name`), when known.
        pod: Option<String>,
        /// Address and port.
        to: Endpoint,
    },
    /// Delivered to a socket of the node.
    DeliveredLocal {
        /// The node.
        node: String,
        /// The interface it arrived on.
        dev: String,
        /// Address and port.
        to: Endpoint,
    },
    /// Dropped or refused.
    Dropped {
        /// The node.
        node: String,
        /// The kernel drop reason.
        reason: Option<DropReason>,
    },
    /// Sent toward an address no known node owns.
    LeftKnownNodes {
        /// The last known node.
        node: String,
        /// Output interface.
        out_dev: String,
        /// Next hop.
        next_hop: IpAddr,
        /// Destination as it left.
        dst: Endpoint,
    },
    /// It came back to a node and interface it had passed with the same packet.
    Loop {
        /// The node.
        node: String,
        /// The interface.
        iif: String,
    },
    /// More hops than the bound.
    HopLimit {
        /// The bound.
        max_hops: usize,
    },
    /// Something the tracer does not model decided.
    NotModelled {
        /// The node.
        node: String,
    },
}

impl Outcome {
    /// Whether the packet got where it was going (a pod or a local socket).
    pub fn is_delivered(&self) -> bool {
        matches!(
            self,
            Outcome::DeliveredToPod { .. } | Outcome::DeliveredLocal { .. }
        )
    }

    /// Whether the packet dies (a drop, a loop, the hop bound).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Dropped { .. } | Outcome::Loop { .. } | Outcome::HopLimit { .. }
        )
    }

    /// The short stable name (`delivered_to_pod`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::DeliveredToPod { .. } => "delivered_to_pod",
            Outcome::DeliveredLocal { .. } => "delivered_local",
            Outcome::Dropped { .. } => "dropped",
            Outcome::LeftKnownNodes { .. } => "left_known_nodes",
            Outcome::Loop { .. } => "loop",
            Outcome::HopLimit { .. } => "hop_limit",
            Outcome::NotModelled { .. } => "not_modelled",
        }
    }
}

/// One way through the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterPath {
    /// Probability (product of the node-local paths' probabilities).
    pub probability: f64,
    /// The nodes passed, in order.
    pub hops: Vec<Hop>,
    /// How it ends.
    pub outcome: Outcome,
}

/// An assumption made on a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeAssumption {
    /// The node (`None`: about the request itself).
    pub node: Option<String>,
    /// The tracer's assumption.
    pub assumption: Assumption,
}

/// Bounds of a cluster trace.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    /// Per-node trace options (path bound, ...).
    pub trace: TraceOptions,
    /// At most this many nodes on one path.
    pub max_hops: usize,
    /// At most this many paths in all.
    pub max_paths: usize,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            trace: TraceOptions::default(),
            max_hops: 16,
            max_paths: 256,
        }
    }
}

/// The result: every path, with the node-level assumptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterTrace {
    /// The packet as it entered the first node.
    pub packet: Packet,
    /// Paths, most probable first.
    pub paths: Vec<ClusterPath>,
    /// What the per-node traces assumed (deduplicated).
    pub assumptions: Vec<NodeAssumption>,
    /// Probability not explored (path bounds on a node, or the cluster's own bound).
    pub unexplored_probability: f64,
}

struct Work {
    node: usize,
    packet: Packet,
    probability: f64,
    hops: Vec<Hop>,
    seen: HashSet<(usize, String, String)>,
}

/// Traces `packet` entering node `entry` (its `iif` says how: `None` for locally generated).
pub fn trace(
    cluster: &Cluster,
    entry: usize,
    packet: &Packet,
    opts: &ClusterOptions,
) -> ClusterTrace {
    let mut out = ClusterTrace {
        packet: packet.clone(),
        paths: Vec::new(),
        assumptions: Vec::new(),
        unexplored_probability: 0.0,
    };
    let ct_state: CtState = packet.ct_state;
    let mut work = vec![Work {
        node: entry,
        packet: packet.clone(),
        probability: 1.0,
        hops: Vec::new(),
        seen: HashSet::new(),
    }];
    let mut seen_assumptions = HashSet::new();
    while let Some(w) = work.pop() {
        let snap = &cluster.nodes[w.node];
        let name = snap.name().to_string();
        let t = trace_with(&snap.node, &w.packet, &opts.trace);
        for a in t.assumptions {
            let na = NodeAssumption {
                node: Some(name.clone()),
                assumption: a,
            };
            if seen_assumptions.insert(na.clone()) {
                out.assumptions.push(na);
            }
        }
        if let Some(tr) = &t.truncated {
            out.unexplored_probability += w.probability * tr.unexplored_probability;
        }
        for p in t.paths {
            let probability = w.probability * p.probability;
            let mut hops = w.hops.clone();
            hops.push(hop(&name, &w.packet, &p));
            if out.paths.len() + work.len() >= opts.max_paths {
                out.unexplored_probability += probability;
                continue;
            }
            let finish = |outcome: Outcome| ClusterPath {
                probability,
                hops: hops.clone(),
                outcome,
            };
            let outcome = match &p.verdict {
                Verdict::Delivered { dev, to } => Outcome::DeliveredLocal {
                    node: name.clone(),
                    dev: dev.clone(),
                    to: *to,
                },
                Verdict::NotModelled { .. } => Outcome::NotModelled { node: name.clone() },
                Verdict::Forwarded {
                    out_dev,
                    next_hop,
                    dst,
                    ..
                } => {
                    if *next_hop == dst.addr && cluster.is_pod_iface(w.node, out_dev, dst.addr) {
                        Outcome::DeliveredToPod {
                            node: name.clone(),
                            dev: out_dev.clone(),
                            pod: cluster.pod_name(dst.addr),
                            to: *dst,
                        }
                    } else if let Some((j, iif)) =
                        cluster.owner_of(*next_hop).filter(|(j, _)| *j != w.node)
                    {
                        let mut next = p.final_packet.clone();
                        next.iif = Some(iif.clone());
                        next.mark = 0;
                        next.ct_state = ct_state;
                        let key = (j, iif.clone(), next.to_string());
                        if w.seen.contains(&key) {
                            Outcome::Loop {
                                node: cluster.nodes[j].name().to_string(),
                                iif,
                            }
                        } else if hops.len() >= opts.max_hops {
                            Outcome::HopLimit {
                                max_hops: opts.max_hops,
                            }
                        } else {
                            let mut seen = w.seen.clone();
                            seen.insert((
                                w.node,
                                w.packet.iif.clone().unwrap_or_default(),
                                w.packet.to_string(),
                            ));
                            seen.insert(key);
                            work.push(Work {
                                node: j,
                                packet: next,
                                probability,
                                hops,
                                seen,
                            });
                            continue;
                        }
                    } else {
                        Outcome::LeftKnownNodes {
                            node: name.clone(),
                            out_dev: out_dev.clone(),
                            next_hop: *next_hop,
                            dst: *dst,
                        }
                    }
                }
                v => Outcome::Dropped {
                    node: name.clone(),
                    reason: v.drop_reason(),
                },
            };
            out.paths.push(finish(outcome));
        }
    }
    out.paths.sort_by(|a, b| {
        b.probability
            .partial_cmp(&a.probability)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| path_key(a).cmp(&path_key(b)))
    });
    out
}

fn path_key(p: &ClusterPath) -> String {
    p.hops
        .last()
        .map(|h| h.packet_out.to_string())
        .unwrap_or_default()
}

fn hop(node: &str, packet_in: &Packet, p: &TracePath) -> Hop {
    Hop {
        node: node.to_string(),
        iif: packet_in.iif.clone(),
        packet_in: packet_in.clone(),
        steps: p.steps.clone(),
        verdict: p.verdict.clone(),
        packet_out: p.final_packet.clone(),
        probability: p.probability,
    }
}
