//! Names to addresses, and where a packet enters the cluster. Pure.
//!
//! ```text
//!   "198.18.65.2" | "NS/POD" | "svc/NS/NAME[:PORT]" | "node/NAME"  --Name::parse-->  Name
//!   Name + Objects (manifests, bundles, API)  --resolve_party-->  Party { addr, port, pod, node }
//!   source Party + the nodes' snapshots  --entry-->  Entry { node, iif, how }
//!     pod:      the node with a /32 (/128) route to the pod IP: iif = that route's device
//!     node:     locally generated on that node (no iif)
//!     external: the node's route back to the source gives the iif (an assumption, stated)
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use dataplane::route::{Flow, Outcome, RouteType};
use dataplane::{Family, Protocol};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::objects::{self, Objects};
use crate::snapshot::Snapshot;

/// A SRC or DST as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// An address.
    Ip(IpAddr),
    /// `NS/POD`.
    Pod {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// `svc/NS/NAME[:PORT]`.
    Service {
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// Port by name or number.
        port: Option<String>,
    },
    /// `node/NAME`.
    Node(String),
}

/// Something diag cannot find or decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Not one of the accepted forms.
    #[error("{0:?}: expected an IP address, NS/POD, svc/NS/NAME[:PORT] or node/NAME")]
    Syntax(String),
    /// The object is not known.
    #[error("{what} {name} not found in {sources}")]
    NotFound {
        /// `pod`, `service`, `node`.
        what: &'static str,
        /// Its name.
        name: String,
        /// Where diag looked.
        sources: String,
    },
    /// The object has no usable address.
    #[error("{what} {name} has no {family}address{why}")]
    NoAddress {
        /// `pod`, `service`, `node`.
        what: &'static str,
        /// Its name.
        name: String,
        /// `IPv4 ` / `IPv6 ` / empty.
        family: &'static str,
        /// More.
        why: String,
    },
    /// A service port that is not there or is ambiguous.
    #[error("service {name}: {problem}")]
    Port {
        /// The service.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// Source and destination are of different families.
    #[error("source {src} and destination {dst} are not of the same address family")]
    Family {
        /// Source.
        src: IpAddr,
        /// Destination.
        dst: IpAddr,
    },
    /// diag cannot tell where the packet enters.
    #[error("cannot tell where {src} enters the cluster: {why}")]
    Entry {
        /// The source.
        src: String,
        /// Why.
        why: String,
    },
}

impl FromStr for Name {
    type Err = ResolveError;

    fn from_str(s: &str) -> Result<Name, ResolveError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Name::Ip(ip));
        }
        let bad = || ResolveError::Syntax(s.to_string());
        let ok_word = |w: &str| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        };
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            ["node", n] if ok_word(n) => Ok(Name::Node(n.to_string())),
            ["svc" | "service", ns, rest] => {
                let (name, port) = match rest.split_once(':') {
                    Some((n, p)) if !p.is_empty() => (n, Some(p.to_string())),
                    Some(_) => return Err(bad()),
                    None => (*rest, None),
                };
                if ok_word(ns) && ok_word(name) {
                    Ok(Name::Service {
                        ns: ns.to_string(),
                        name: name.to_string(),
                        port,
                    })
                } else {
                    Err(bad())
                }
            }
            // `svc/NAME` and `service/NAME` lack the namespace; not a pod in namespace "svc"
            [ns, name] if ok_word(ns) && ok_word(name) && !matches!(*ns, "svc" | "service") => {
                Ok(Name::Pod {
                    ns: ns.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Ip(a) => write!(f, "{a}"),
            Name::Pod { ns, name } => write!(f, "{ns}/{name}"),
            Name::Service { ns, name, port } => {
                write!(f, "svc/{ns}/{name}")?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                Ok(())
            }
            Name::Node(n) => write!(f, "node/{n}"),
        }
    }
}

/// What kind of party an address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyKind {
    /// A pod (by name, or an address a known pod has).
    Pod,
    /// A Service's cluster IP.
    Service,
    /// A node's own address.
    Node,
    /// Any other address.
    Ip,
}

/// A resolved source or destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// As given on the command line.
    pub input: String,
    /// What it is.
    pub kind: PartyKind,
    /// The address used.
    pub addr: IpAddr,
    /// `NS/NAME` of the pod or service, the node's name.
    pub name: Option<String>,
    /// For a pod: the node it runs on (`spec.nodeName`).
    pub node: Option<String>,
    /// Port (a service port, resolved).
    pub port: Option<u16>,
    /// The service port's name.
    pub port_name: Option<String>,
    /// The service port's protocol.
    pub proto: Option<Protocol>,
}

impl Party {
    /// How it reads in text: `web/a (198.18.65.2)`, `198.19.255.5`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) if self.kind == PartyKind::Service => format!("svc/{n} ({})", self.addr),
            Some(n) => format!("{n} ({})", self.addr),
            None => self.addr.to_string(),
        }
    }
}

/// Where the Kubernetes objects came from, for messages.
pub fn sources_text(objects: &Objects) -> &'static str {
    if objects.is_empty() {
        "the known objects (none: give --manifests, bundles with k8s objects, or a kubeconfig)"
    } else {
        "the known objects (manifests, bundles, API)"
    }
}

fn pick(addrs: &[IpAddr], family: Option<Family>) -> Option<IpAddr> {
    match family {
        Some(f) => addrs.iter().copied().find(|a| Family::of(a) == f),
        None => addrs.first().copied(),
    }
}

fn fam_word(family: Option<Family>) -> &'static str {
    match family {
        Some(Family::V4) => "IPv4 ",
        Some(Family::V6) => "IPv6 ",
        None => "",
    }
}

/// Resolves a name to a party. `family` asks for an address of that family (the other side's).
/// `nodes` are the snapshots (for `node/NAME` without a Node object).
pub fn resolve_party(
    name: &Name,
    objects: &Objects,
    nodes: &[Snapshot],
    family: Option<Family>,
) -> Result<Party, ResolveError> {
    let input = name.to_string();
    let not_found = |what, name: String| ResolveError::NotFound {
        what,
        name,
        sources: sources_text(objects).to_string(),
    };
    match name {
        Name::Ip(ip) => {
            let mut p = Party {
                input,
                kind: PartyKind::Ip,
                addr: *ip,
                name: None,
                node: None,
                port: None,
                port_name: None,
                proto: None,
            };
            if let Some(pod) = objects.pod_by_ip(*ip) {
                p.kind = PartyKind::Pod;
                p.name = Some(objects::ns_name(&pod.metadata));
                p.node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            } else if let Some(svc) = objects.service_by_ip(*ip) {
                p.kind = PartyKind::Service;
                p.name = Some(objects::ns_name(&svc.metadata));
            } else if let Some(n) = objects.node_by_addr(*ip) {
                p.kind = PartyKind::Node;
                p.name = n.metadata.name.clone();
            } else if let Some(s) = nodes.iter().find(|s| s.node.routes.is_local_address(*ip)) {
                p.kind = PartyKind::Node;
                p.name = Some(s.name().to_string());
            }
            Ok(p)
        }
        Name::Pod { ns, name: n } => {
            let full = format!("{ns}/{n}");
            let pod = objects
                .pod(ns, n)
                .ok_or_else(|| not_found("pod", full.clone()))?;
            let addr =
                pick(&objects::pod_ips(pod), family).ok_or_else(|| ResolveError::NoAddress {
                    what: "pod",
                    name: full.clone(),
                    family: fam_word(family),
                    why: " (status.podIPs is empty: is it running?)".into(),
                })?;
            Ok(Party {
                input,
                kind: PartyKind::Pod,
                addr,
                name: Some(full),
                node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                port: None,
                port_name: None,
                proto: None,
            })
        }
        Name::Service { ns, name: n, port } => {
            let full = format!("{ns}/{n}");
            let svc = objects
                .service(ns, n)
                .ok_or_else(|| not_found("service", full.clone()))?;
            let addr = pick(&objects::cluster_ips(svc), family).ok_or_else(|| {
                ResolveError::NoAddress {
                    what: "service",
                    name: full.clone(),
                    family: fam_word(family),
                    why: " (spec.clusterIP is None or empty: a headless service has no \
                          virtual IP; trace to one of its pods)"
                        .into(),
                }
            })?;
            let ports: Vec<_> = svc
                .spec
                .as_ref()
                .and_then(|s| s.ports.clone())
                .unwrap_or_default();
            let names = || {
                ports
                    .iter()
                    .map(|p| match &p.name {
                        Some(n) => format!("{n}={}", p.port),
                        None => p.port.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let chosen = match port {
                Some(p) => ports
                    .iter()
                    .find(|sp| sp.name.as_deref() == Some(p.as_str()) || sp.port.to_string() == *p)
                    .ok_or_else(|| ResolveError::Port {
                        name: full.clone(),
                        problem: format!("has no port {p:?} (its ports: {})", names()),
                    })?,
                None if ports.len() == 1 => &ports[0],
                None => {
                    return Err(ResolveError::Port {
                        name: full.clone(),
                        problem: format!(
                            "has {} ports, say which: svc/{full}:PORT (its ports: {})",
                            ports.len(),
                            names()
                        ),
                    });
                }
            };
            let proto = match chosen.protocol.as_deref().unwrap_or("TCP") {
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            Ok(Party {
                input,
                kind: PartyKind::Service,
                addr,
                name: Some(full),
                node: None,
                port: u16::try_from(chosen.port).ok(),
                port_name: chosen.name.clone(),
                proto: Some(proto),
            })
        }
        Name::Node(n) => {
            if let Some(node) = objects.node(n) {
                let addrs = objects::node_addrs(node);
                if let Some(addr) = pick(&addrs, family) {
                    return Ok(Party {
                        input,
                        kind: PartyKind::Node,
                        addr,
                        name: Some(n.clone()),
                        node: Some(n.clone()),
                        port: None,
                        port_name: None,
                        proto: None,
                    });
                }
            }
            let snap = nodes
                .iter()
                .find(|s| s.name() == n)
                .ok_or_else(|| not_found("node", n.clone()))?;
            let addr = node_primary_addr(snap, family).ok_or_else(|| ResolveError::NoAddress {
                what: "node",
                name: n.clone(),
                family: fam_word(family),
                why: " on any interface but lo".into(),
            })?;
            Ok(Party {
                input,
                kind: PartyKind::Node,
                addr,
                name: Some(n.clone()),
                node: Some(n.clone()),
                port: None,
                port_name: None,
                proto: None,
            })
        }
    }
}

/// The first global address of a node (not on `lo`, not link-local), of `family` if given.
pub fn node_primary_addr(s: &Snapshot, family: Option<Family>) -> Option<IpAddr> {
    s.node
        .routes
        .addresses
        .iter()
        .filter(|i| i.ifname != "lo")
        .flat_map(|i| &i.addrs)
        .map(|a| a.local)
        .filter(|a| match a {
            IpAddr::V4(v) => !v.is_link_local() && !v.is_loopback(),
            IpAddr::V6(v) => (v.segments()[0] & 0xffc0) != 0xfe80 && !v.is_loopback(),
        })
        .find(|a| family.is_none_or(|f| Family::of(a) == f))
}

/// How the packet enters its first node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryHow {
    /// From a pod: arrives on the pod's host-side interface (the node's /32 or /128 route).
    PodInterface {
        /// The route found, as `ip route` prints it.
        route: String,
    },
    /// Sent by a process on the node.
    Local,
    /// From outside: arrives on the interface of the node's route back to the source.
    RouteBack {
        /// The route back, as `ip route get` prints it.
        route: String,
    },
    /// Given with `--iif`.
    Given,
}

/// Where the packet enters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Index of the node in the snapshot list.
    pub node: usize,
    /// Its name.
    pub node_name: String,
    /// The input interface (`None`: locally generated).
    pub iif: Option<String>,
    /// How it was decided.
    pub how: EntryHow,
}

impl Entry {
    /// The assumption text, for entries that are guesses.
    pub fn assumption(&self, src: &Party) -> Option<String> {
        match &self.how {
            EntryHow::RouteBack { route } => Some(format!(
                "{} is outside the known pods and nodes: assumed it arrives on {} on {} (the \
                 interface of the route back to it: {route})",
                src.addr,
                self.node_name,
                self.iif.as_deref().unwrap_or("?")
            )),
            _ => None,
        }
    }
}

/// The node (index) and device of a host route (`/32`, `/128`) to `addr` through a device other
/// than `lo` (how Calico-style CNIs reach a pod), preferring node `prefer`.
pub fn pod_route(
    nodes: &[Snapshot],
    addr: IpAddr,
    prefer: Option<&str>,
) -> Option<(usize, String, String)> {
    let host = IpNet::from(addr);
    let mut found: Vec<(usize, String, String)> = Vec::new();
    for (i, s) in nodes.iter().enumerate() {
        for r in &s.node.routes.routes {
            if r.dst != host || r.kind != RouteType::Unicast {
                continue;
            }
            let Some(dev) = r.dev() else { continue };
            if dev == "lo" {
                continue;
            }
            found.push((i, dev.to_string(), r.to_string()));
        }
    }
    found
        .iter()
        .find(|(i, ..)| Some(nodes[*i].name()) == prefer)
        .or(found.first())
        .cloned()
}

/// The node a Kubernetes node name refers to: a snapshot of that name, or the snapshot that
/// has one of the Node object's addresses.
pub fn node_index(nodes: &[Snapshot], objects: &Objects, name: &str) -> Option<usize> {
    nodes.iter().position(|s| s.name() == name).or_else(|| {
        let addrs = objects::node_addrs(objects.node(name)?);
        nodes
            .iter()
            .position(|s| addrs.iter().any(|a| s.node.routes.is_local_address(*a)))
    })
}

/// Decides where the packet from `src` to `dst` enters. `from_node` and `iif` are the
/// `--from-node` and `--iif` overrides.
pub fn entry(
    src: &Party,
    dst: &Party,
    nodes: &[Snapshot],
    objects: &Objects,
    from_node: Option<&str>,
    iif: Option<&str>,
) -> Result<Entry, ResolveError> {
    let fail = |why: String| ResolveError::Entry {
        src: src.label(),
        why,
    };
    if nodes.is_empty() {
        return Err(fail("no node state (no bundle, no live collection)".into()));
    }
    let named = match from_node {
        Some(n) => Some(
            node_index(nodes, objects, n)
                .ok_or_else(|| fail(format!("--from-node {n}: no bundle for that node")))?,
        ),
        None => None,
    };
    let mk = |node: usize, iif: Option<String>, how: EntryHow| Entry {
        node,
        node_name: nodes[node].name().to_string(),
        iif,
        how,
    };
    if let Some(dev) = iif {
        let node = named.unwrap_or(0);
        return Ok(mk(node, Some(dev.to_string()), EntryHow::Given));
    }
    // a node's own address (or node/NAME): locally generated there
    let local = named
        .filter(|i| nodes[*i].node.routes.is_local_address(src.addr))
        .or_else(|| {
            nodes
                .iter()
                .position(|s| s.node.routes.is_local_address(src.addr))
        });
    if let Some(i) = local {
        return Ok(mk(i, None, EntryHow::Local));
    }
    if src.kind == PartyKind::Node {
        let name = src.node.as_deref().or(src.name.as_deref()).unwrap_or("");
        if let Some(i) = named.or_else(|| node_index(nodes, objects, name)) {
            return Ok(mk(i, None, EntryHow::Local));
        }
        return Err(fail(format!("node {name} has no bundle")));
    }
    // a pod: the node with a host route to it
    let prefer = named.map(|i| nodes[i].name().to_string()).or_else(|| {
        src.node
            .as_deref()
            .and_then(|n| node_index(nodes, objects, n))
            .map(|i| nodes[i].name().to_string())
    });
    if let Some((i, dev, route)) = pod_route(nodes, src.addr, prefer.as_deref())
        && named.is_none_or(|n| n == i)
    {
        return Ok(mk(i, Some(dev), EntryHow::PodInterface { route }));
    }
    if src.kind == PartyKind::Pod {
        let on = src.node.as_deref().unwrap_or("an unknown node");
        return Err(fail(format!(
            "pod {} runs on {on}, and no bundle has a host route to {} (give that node's \
             bundle, or --from-node and --iif)",
            src.name.as_deref().unwrap_or("?"),
            src.addr
        )));
    }
    // outside: the node the source is directly attached to (an on-link route to it), else the
    // destination's node; then the route back
    let attached = nodes.iter().position(|s| {
        let lk = s.node.routes.lookup(&Flow::to(src.addr));
        matches!(&lk.outcome, Outcome::Unicast { hops, route: Some(r) }
            if r.dst.prefix_len() > 0 && hops.iter().all(|h| h.gateway.is_none()))
    });
    let node = named
        .or(attached)
        .or_else(|| {
            let n = dst.node.as_deref()?;
            node_index(nodes, objects, n)
        })
        .or_else(|| {
            (dst.kind == PartyKind::Node)
                .then(|| {
                    dst.name
                        .as_deref()
                        .and_then(|n| node_index(nodes, objects, n))
                })
                .flatten()
        })
        .or_else(|| pod_route(nodes, dst.addr, None).map(|(i, ..)| i))
        .unwrap_or(0);
    let lk = nodes[node].node.routes.lookup(&Flow::to(src.addr));
    match &lk.outcome {
        Outcome::Unicast { hops, route } if !hops.is_empty() => Ok(mk(
            node,
            Some(hops[0].dev.clone()),
            EntryHow::RouteBack {
                route: route
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| lk.outcome.to_string()),
            },
        )),
        other => Err(fail(format!(
            "node {} has no route back to it ({other}); give --iif",
            nodes[node].name()
        ))),
    }
}

/// The unspecified address of a family (a local sender whose source the routing picks).
pub fn unspecified(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(
            "198.18.65.2".parse::<Name>().unwrap(),
            Name::Ip("198.18.65.2".parse().unwrap())
        );
        assert_eq!(
            "2001:db8::1".parse::<Name>().unwrap(),
            Name::Ip("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            "web/a".parse::<Name>().unwrap(),
            Name::Pod {
                ns: "web".into(),
                name: "a".into()
            }
        );
        assert_eq!(
            "svc/web/front:http".parse::<Name>().unwrap(),
            Name::Service {
                ns: "web".into(),
                name: "front".into(),
                port: Some("http".into())
            }
        );
        assert_eq!(
            "node/node1".parse::<Name>().unwrap(),
            Name::Node("node1".into())
        );
        for bad in ["a/b/c", "svc/x", "svc/a/b:", "node/", "/x", "x", "a b/c"] {
            assert!(bad.parse::<Name>().is_err(), "{bad}");
        }
        assert_eq!(
            "svc/web/front:80".parse::<Name>().unwrap().to_string(),
            "svc/web/front:80"
        );
    }

    #[test]
    fn services_resolve_ports_by_name_or_number() {
        let o = Objects::parse(
            "m.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec:\n  \
             clusterIP: 198.19.0.10\n  ports:\n  - {name: http, port: 80, protocol: TCP}\n  \
             - {name: dns, port: 53, protocol: UDP}\n",
        )
        .unwrap();
        let p = resolve_party(&"svc/n/s:dns".parse().unwrap(), &o, &[], None).unwrap();
        assert_eq!((p.port, p.proto), (Some(53), Some(Protocol::Udp)));
        let p = resolve_party(&"svc/n/s:80".parse().unwrap(), &o, &[], None).unwrap();
        assert_eq!(p.port_name.as_deref(), Some("http"));
        let e = resolve_party(&"svc/n/s".parse().unwrap(), &o, &[], None).unwrap_err();
        assert!(e.to_string().contains("http=80, dns=53"), "{e}");
        let e = resolve_party(&"svc/n/s:99".parse().unwrap(), &o, &[], None).unwrap_err();
        assert!(e.to_string().contains("no port \"99\""), "{e}");
        let e = resolve_party(&"n/nopod".parse().unwrap(), &o, &[], None).unwrap_err();
        assert!(e.to_string().contains("pod n/nopod not found"), "{e}");
        let p = resolve_party(&"198.19.0.10".parse().unwrap(), &o, &[], None).unwrap();
        assert_eq!(p.kind, PartyKind::Service);
    }
}
