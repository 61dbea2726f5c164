//! Which conntrack entries are stale (pure): upstream's reconciler
//! (`conntrack.CleanStaleEntries`), extended to the cases its users reported as blackholes.
//!
//! ```text
//!   new ProxyState (+ the previous one) ──frontends()──> Frontends
//!        (IP, port, proto) and NodePort ──> serving endpoint IPs | no endpoints | deleted
//!   Frontends × [Entry] ──stale()──> [(entry index, service port, Why)]
//! ```
//! Only UDP and SCTP: TCP flows to a gone endpoint end with a reset or a timeout, but a UDP
//! (or SCTP) flow keeps its conntrack entry, and so its DNAT, as long as the client keeps
//! sending. An entry to a service frontend (ClusterIP, external IP, load-balancer IP, or a
//! local address at a NodePort) is stale when:
//! - the service has serving endpoints and the entry's reply source is none of them: the
//!   endpoint went away, or the flow was rejected while there were none (0 → N); upstream
//!   reconciles these;
//! - the service has no serving endpoint and the entry was DNATed (reply source ≠ original
//!   destination): it points at an endpoint that is gone (N → 0, upstream #139628);
//! - the service port was deleted and the entry was DNATed (upstream #141371).
//!
//! Traffic policies, topology and terminating state are ignored, as upstream: changes to a
//! Service do not cut existing flows to endpoints that still serve.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

use dataplane::Protocol;

use crate::model::{ProxyState, ServicePortName};

/// One direction of a conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 when the protocol has none).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// A conntrack entry (`conntrack -L`: original and reply tuples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    /// IP protocol number.
    pub proto: u8,
    /// The original direction (as the client sent it).
    pub orig: Tuple,
    /// The reply direction (as the server answers; `src` is the endpoint after DNAT).
    pub reply: Tuple,
}

impl Entry {
    /// Whether the entry's destination was translated (DNAT): the reply comes from another
    /// address than the one the client sent to.
    pub fn dnat(&self) -> bool {
        self.reply.src != self.orig.dst
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} src={} dst={} sport={} dport={} reply src={} dst={}",
            Protocol::from_number(self.proto),
            self.orig.src,
            self.orig.dst,
            self.orig.sport,
            self.orig.dport,
            self.reply.src,
            self.reply.dst
        )
    }
}

/// What a frontend should lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// These serving endpoint IPs.
    Endpoints(BTreeSet<IpAddr>),
    /// Nothing: the service has no serving endpoint (traffic is rejected).
    NoEndpoints,
    /// Nothing: the service port was deleted.
    Deleted,
}

/// Why an entry is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Why {
    /// Its reply source is not a serving endpoint of the service.
    NotAServingEndpoint,
    /// The service has no serving endpoint, and the entry was DNATed to a former one.
    NoEndpoints,
    /// The service port is gone, and the entry was DNATed to a former endpoint.
    ServiceDeleted,
}

impl Why {
    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::NotAServingEndpoint => "not a serving endpoint",
            Why::NoEndpoints => "service has no endpoints",
            Why::ServiceDeleted => "service deleted",
        }
    }
}

/// A frontend's service and what it should lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// The service port.
    pub service: ServicePortName,
    /// What traffic to it should reach.
    pub want: Want,
}

/// The UDP/SCTP frontends of one family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontends {
    /// (address, port, protocol) of ClusterIPs, external IPs and load-balancer IPs.
    pub by_addr: HashMap<(IpAddr, u16, u8), Frontend>,
    /// (NodePort, protocol).
    pub by_node_port: HashMap<(u16, u8), Frontend>,
    /// The node's own addresses: NodePort entries must be addressed to one of them (empty:
    /// any address, as upstream).
    pub local_ips: BTreeSet<IpAddr>,
}

fn tracked(p: Protocol) -> bool {
    matches!(p, Protocol::Udp | Protocol::Sctp)
}

impl Frontends {
    /// The frontends of `new`, plus those of `old` that `new` no longer has (as deleted).
    pub fn of(new: &ProxyState, old: Option<&ProxyState>, local_ips: &[IpAddr]) -> Frontends {
        let mut f = Frontends {
            local_ips: local_ips.iter().copied().collect(),
            ..Frontends::default()
        };
        if let Some(old) = old {
            for (name, port) in old.services.iter().filter(|(n, _)| tracked(n.protocol)) {
                f.add(name, port, Want::Deleted);
            }
        }
        for (name, port) in new.services.iter().filter(|(n, _)| tracked(n.protocol)) {
            let serving: BTreeSet<IpAddr> = new
                .endpoints
                .get(name)
                .into_iter()
                .flat_map(|set| set.entries.iter())
                .filter(|e| e.endpoint.serving)
                .map(|e| e.endpoint.ip)
                .collect();
            let want = if serving.is_empty() {
                Want::NoEndpoints
            } else {
                Want::Endpoints(serving)
            };
            f.add(name, port, want);
        }
        f
    }

    fn add(&mut self, name: &ServicePortName, port: &crate::model::ServicePort, want: Want) {
        let proto = name.protocol.number();
        let fe = Frontend {
            service: name.clone(),
            want,
        };
        let addrs = std::iter::once(port.cluster_ip)
            .chain(port.external_ips.iter().copied())
            .chain(port.load_balancer_ips.iter().copied());
        for ip in addrs {
            self.by_addr.insert((ip, port.port, proto), fe.clone());
        }
        if let Some(np) = port.node_port {
            self.by_node_port.insert((np, proto), fe);
        }
    }

    /// Whether there is nothing to reconcile.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty() && self.by_node_port.is_empty()
    }

    fn verdict(fe: &Frontend, e: &Entry) -> Option<Why> {
        match &fe.want {
            Want::Endpoints(ips) => {
                (!ips.contains(&e.reply.src)).then_some(Why::NotAServingEndpoint)
            }
            Want::NoEndpoints => e.dnat().then_some(Why::NoEndpoints),
            Want::Deleted => e.dnat().then_some(Why::ServiceDeleted),
        }
    }

    /// The stale entries among `entries`: (index, service port, why), in entry order.
    pub fn stale<'a>(&'a self, entries: &[Entry]) -> Vec<(usize, &'a ServicePortName, Why)> {
        let mut out = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.proto != Protocol::Udp.number() && e.proto != Protocol::Sctp.number() {
                continue;
            }
            let fe = match self.by_addr.get(&(e.orig.dst, e.orig.dport, e.proto)) {
                Some(fe) => Some(fe),
                None if self.local_ips.is_empty() || self.local_ips.contains(&e.orig.dst) => {
                    self.by_node_port.get(&(e.orig.dport, e.proto))
                }
                None => None,
            };
            if let Some(fe) = fe
                && let Some(why) = Self::verdict(fe, e)
            {
                out.push((i, &fe.service, why));
            }
        }
        out
    }
}
