//! Wiring between hosts: point-to-point veths, shared segments (a bridge in a switch
//! namespace, one veth port per member) and pods (a veth to their node, Calico style). Both
//! ends of every veth are created inside their namespaces, never in the root namespace.
//!
//! ```text
//!   link(a, b):       a:eth<N> <----veth----> b:eth<M>            198.18.X.1/24 <-> .2/24
//!   segment(s, [..]): host:eth<N> <--veth--> sw-s:<host> -- br0  (one port per member)
//!   pod(node, p):     node:cali<hash> (fe80::1, proxy_arp) <--veth--> p:eth0 (/32, /128)
//!                     node: 198.18.65.2/32 dev cali..; p: default via 169.254.1.1 / fe80::1
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use sha2::{Digest, Sha256};

use crate::error::{LabError, Result};
use crate::host::{Host, HostKind, Iface, Peer};
use crate::lab::{Lab, SegRec, Shared, check_name};
use crate::netns;
use crate::plan::{self, PlanError};

/// Overrides for a pod's addresses (default: the next free ones in its node's pod CIDRs).
#[derive(Debug, Clone, Default)]
pub struct PodOpts {
    /// The pod's IPv4 address (configured as a /32).
    pub addr4: Option<Ipv4Addr>,
    /// The pod's IPv6 address (configured as a /128).
    pub addr6: Option<Ipv6Addr>,
}

/// Overrides for one end of a link or a segment port.
#[derive(Debug, Clone, Default)]
pub struct IfaceOpts {
    /// The interface name inside the host (default `eth<N>`, the next free number).
    pub name: Option<String>,
    /// The addresses to configure instead of the allocated ones (empty: none at all).
    pub addrs: Option<Vec<IpNet>>,
}

/// Overrides for a point-to-point link.
#[derive(Debug, Clone, Default)]
pub struct LinkOpts {
    /// The IPv4 subnet (default: the next 198.18.X.0/24); `a` gets .1, `b` gets .2.
    pub subnet4: Option<Ipv4Net>,
    /// The IPv6 subnet (default: 2001:db8:0:X::/64).
    pub subnet6: Option<Ipv6Net>,
    /// Overrides for the `a` end.
    pub a: IfaceOpts,
    /// Overrides for the `b` end.
    pub b: IfaceOpts,
}

/// Overrides for a segment.
#[derive(Debug, Clone, Default)]
pub struct SegmentOpts {
    /// The IPv4 subnet (default: the node network for the first segment, then 198.18.X.0/24).
    pub subnet4: Option<Ipv4Net>,
    /// The IPv6 subnet.
    pub subnet6: Option<Ipv6Net>,
}

/// The two ends of a point-to-point link.
#[derive(Debug, Clone)]
pub struct Link {
    /// The `a` host's end.
    pub a: Iface,
    /// The `b` host's end.
    pub b: Iface,
}

/// A shared L2 segment: a bridge in its own switch namespace, one veth port per member.
#[derive(Clone)]
pub struct Segment {
    pub(crate) sh: Arc<Shared>,
    pub(crate) name: String,
    pub(crate) subnet4: Ipv4Net,
    pub(crate) subnet6: Ipv6Net,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("subnet4", &self.subnet4)
            .finish()
    }
}

impl Segment {
    /// The segment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its IPv4 subnet.
    pub fn subnet4(&self) -> Ipv4Net {
        self.subnet4
    }

    /// Its IPv6 subnet.
    pub fn subnet6(&self) -> Ipv6Net {
        self.subnet6
    }

    /// The switch namespace holding the bridge `br0` (for `bridge fdb`, tcpdump on a port).
    pub fn switch(&self) -> Result<Host> {
        Shared::handle(&self.sh, &switch_name(&self.name)).ok_or_else(|| LabError::Unknown {
            what: "segment",
            name: self.name.clone(),
            lab: self.sh.id.clone(),
        })
    }
}

/// The MAC of every node-side pod veth (Calico uses the same), the pods' gateway MAC.
pub const POD_GATEWAY_MAC: &str = "ee:ee:ee:ee:ee:ee";

impl Lab {
    /// A pod on `node`, Calico style: a namespace with `eth0` (a /32 and a /128 from the node's
    /// pod CIDRs, default routes via 169.254.1.1 and fe80::1), the node-side veth `cali<hash>`
    /// with proxy_arp and fe80::1, and the node's /32 and /128 routes to the pod over it.
    pub fn pod(&self, node: &Host, name: &str) -> Result<Host> {
        self.pod_with(node, name, &PodOpts::default())
    }

    /// [`Lab::pod`] with fixed addresses.
    pub fn pod_with(&self, node: &Host, name: &str, opts: &PodOpts) -> Result<Host> {
        check_name("host", name, 32)?;
        if node.kind() != HostKind::Node {
            return Err(LabError::WrongKind {
                host: node.name().into(),
                kind: node.kind().as_str(),
                why: "pods live on nodes",
            });
        }
        if self.get(name).is_ok() {
            return Err(LabError::Duplicate {
                what: "host",
                name: name.into(),
                lab: self.sh.id.clone(),
            });
        }
        let (k, j, cidrs) = {
            let mut st = self.sh.lock();
            let n = st
                .hosts
                .iter_mut()
                .find(|h| h.name == node.name())
                .ok_or_else(|| self.unknown("host", node.name()))?;
            let j = n.next_pod;
            n.next_pod = n.next_pod.saturating_add(1);
            (n.index, j, n.pod_cidrs)
        };
        let (c4, c6) = cidrs.ok_or(LabError::WrongKind {
            host: node.name().into(),
            kind: "node",
            why: "it has no pod CIDR",
        })?;
        let (d4, d6) = plan::pod_addrs(k, j)?;
        // with an overridden pod CIDR, the j-th address of that CIDR
        let a4 = opts.addr4.unwrap_or_else(|| {
            if c4.contains(&d4.addr()) {
                d4.addr()
            } else {
                Ipv4Addr::from(u32::from(c4.network()) + u32::from(j) + 2)
            }
        });
        let a6 = opts.addr6.unwrap_or_else(|| {
            if c6.contains(&d6.addr()) {
                d6.addr()
            } else {
                Ipv6Addr::from(u128::from(c6.network()) + u128::from(j) + 2)
            }
        });
        let p4 = Ipv4Net::new(a4, 32).map_err(|_| PlanError::OutsidePlan {
            addr: a4.to_string(),
        })?;
        let p6 = Ipv6Net::new(a6, 128).map_err(|_| PlanError::OutsidePlan {
            addr: a6.to_string(),
        })?;
        plan::check_net(&IpNet::V4(p4))?;
        plan::check_net(&IpNet::V6(p6))?;

        let mut rec = self.new_rec(name, HostKind::Pod, 0, None, None);
        rec.node = Some(node.name().to_string());
        rec.primary4 = Some(a4);
        rec.primary6 = Some(a6);
        let pod = self.make_ns(rec, false)?;
        {
            let mut st = self.sh.lock();
            if let Some(n) = st.hosts.iter_mut().find(|h| h.name == node.name()) {
                n.pods.push(name.to_string());
            }
        }
        let cali = cali_name(name);
        let gw6 = IpNet::V6(Ipv6Net::new_assert(plan::POD_GATEWAY6, 64));
        netns::ip(
            node.netns(),
            &[
                "link",
                "add",
                &cali,
                "address",
                POD_GATEWAY_MAC,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                pod.netns(),
            ],
        )?;
        self.push_iface(
            node.name(),
            Iface {
                name: cali.clone(),
                addrs: vec![gw6],
                peer: Peer::Host {
                    host: name.into(),
                    iface: "eth0".into(),
                },
            },
        );
        self.push_iface(
            name,
            Iface {
                name: "eth0".into(),
                addrs: vec![IpNet::V4(p4), IpNet::V6(p6)],
                peer: Peer::Host {
                    host: node.name().into(),
                    iface: cali.clone(),
                },
            },
        );
        self.sh.save()?;
        netns::sysctls(
            node.netns(),
            &[
                (format!("net.ipv4.conf.{cali}.proxy_arp"), "1".into()),
                (format!("net.ipv4.neigh.{cali}.proxy_delay"), "0".into()),
            ],
        )?;
        netns::ip_batch(
            node.netns(),
            &[
                format!("link set {cali} up"),
                format!("addr add {gw6} dev {cali} nodad"),
                format!("route add {p4} dev {cali} scope link"),
                format!("route add {p6} dev {cali}"),
            ],
        )?;
        netns::ip_batch(
            pod.netns(),
            &[
                format!("addr add {p4} dev eth0"),
                format!("addr add {p6} dev eth0 nodad"),
                "link set eth0 up".to_string(),
                // the gateway's MAC is the node side's fixed one: no dependence on proxy ARP,
                // which only answers when the node has a route to 169.254.1.1 itself
                format!(
                    "neigh replace {} lladdr {POD_GATEWAY_MAC} dev eth0 nud permanent",
                    plan::POD_GATEWAY4
                ),
                format!("route add {} dev eth0 scope link", plan::POD_GATEWAY4),
                format!("route add default via {} dev eth0", plan::POD_GATEWAY4),
                format!("route add ::/0 via {} dev eth0", plan::POD_GATEWAY6),
            ],
        )?;
        Ok(pod)
    }

    // ---- links and segments ---------------------------------------------------------------

    /// A point-to-point veth between `a` and `b` (`eth<N>` on each side), on the next link
    /// subnet: `a` gets .1, `b` gets .2 (and `::1`, `::2`).
    pub fn link(&self, a: &Host, b: &Host) -> Result<Link> {
        self.link_with(a, b, &LinkOpts::default())
    }

    /// [`Lab::link`] with a chosen subnet, interface names or addresses.
    pub fn link_with(&self, a: &Host, b: &Host, opts: &LinkOpts) -> Result<Link> {
        if a.name() == b.name() {
            return Err(LabError::WrongKind {
                host: a.name().into(),
                kind: a.kind().as_str(),
                why: "a link needs two different hosts",
            });
        }
        let (s4, s6) = match (opts.subnet4, opts.subnet6) {
            (Some(s4), Some(s6)) => (s4, s6),
            (s4, s6) => {
                let (d4, d6) = self.next_link_subnets()?;
                (s4.unwrap_or(d4), s6.unwrap_or(d6))
            }
        };
        plan::check_net(&IpNet::V4(s4))?;
        plan::check_net(&IpNet::V6(s6))?;
        let a_addrs = ends_addrs(&opts.a, s4, s6, 1)?;
        let b_addrs = ends_addrs(&opts.b, s4, s6, 2)?;
        let an = self.iface_name(a, &opts.a)?;
        let bn = self.iface_name(b, &opts.b)?;
        netns::ip(
            a.netns(),
            &[
                "link",
                "add",
                &an,
                "type",
                "veth",
                "peer",
                "name",
                &bn,
                "netns",
                b.netns(),
            ],
        )?;
        let ai = Iface {
            name: an.clone(),
            addrs: a_addrs,
            peer: Peer::Host {
                host: b.name().into(),
                iface: bn.clone(),
            },
        };
        let bi = Iface {
            name: bn.clone(),
            addrs: b_addrs,
            peer: Peer::Host {
                host: a.name().into(),
                iface: an.clone(),
            },
        };
        self.push_iface(a.name(), ai.clone());
        self.push_iface(b.name(), bi.clone());
        self.sh.save()?;
        configure(a.netns(), &ai)?;
        configure(b.netns(), &bi)?;
        Ok(Link { a: ai, b: bi })
    }

    fn iface_name(&self, h: &Host, o: &IfaceOpts) -> Result<String> {
        match &o.name {
            Some(n) => {
                check_ifname(n)?;
                if h.ifaces().iter().any(|i| i.name == *n) {
                    return Err(LabError::Duplicate {
                        what: "interface",
                        name: format!("{n} on {}", h.name()),
                        lab: self.sh.id.clone(),
                    });
                }
                Ok(n.clone())
            }
            None => Ok(self.next_eth(h.name())),
        }
    }

    /// A shared segment (a bridge in namespace `lab-<id>-sw-<name>`) with `members` attached.
    /// The first segment of a lab is the node network 198.18.0.0/24 (nodes, routers and hosts
    /// get their role addresses there); later ones get the next 198.18.X.0/24.
    pub fn segment(&self, name: &str, members: &[&Host]) -> Result<Segment> {
        self.segment_with(name, members, &SegmentOpts::default())
    }

    /// [`Lab::segment`] with a chosen subnet.
    pub fn segment_with(
        &self,
        name: &str,
        members: &[&Host],
        opts: &SegmentOpts,
    ) -> Result<Segment> {
        check_name("segment", name, 28)?;
        if self.sh.lock().segments.iter().any(|s| s.name == name) {
            return Err(LabError::Duplicate {
                what: "segment",
                name: name.into(),
                lab: self.sh.id.clone(),
            });
        }
        let (s4, s6, node_net) = match (opts.subnet4, opts.subnet6) {
            (None, None) if !self.sh.lock().node_net_taken => {
                (plan::NODE_NET4, plan::NODE_NET6, true)
            }
            (s4, s6) => {
                let node_net = s4 == Some(plan::NODE_NET4);
                let (d4, d6) = if node_net {
                    (plan::NODE_NET4, plan::NODE_NET6)
                } else {
                    self.next_link_subnets()?
                };
                (s4.unwrap_or(d4), s6.unwrap_or(d6), node_net)
            }
        };
        plan::check_net(&IpNet::V4(s4))?;
        plan::check_net(&IpNet::V6(s6))?;
        let sw = self.new_rec(&switch_name(name), HostKind::Switch, 0, None, None);
        {
            let mut st = self.sh.lock();
            st.node_net_taken |= node_net;
            st.segments.push(SegRec {
                name: name.into(),
                subnet4: s4,
                subnet6: s6,
                node_net,
                members: 0,
            });
        }
        let sw = self.make_ns(sw, false)?;
        netns::ip_batch(
            sw.netns(),
            &[
                "link add br0 type bridge mcast_snooping 0".into(),
                "link set br0 up".into(),
            ],
        )?;
        let seg = Segment {
            sh: Arc::clone(&self.sh),
            name: name.into(),
            subnet4: s4,
            subnet6: s6,
        };
        for m in members {
            self.attach(&seg, m)?;
        }
        Ok(seg)
    }

    /// Attaches `host` to `seg` with a new `eth<N>` and its address on the segment.
    pub fn attach(&self, seg: &Segment, host: &Host) -> Result<Iface> {
        self.attach_with(seg, host, &IfaceOpts::default())
    }

    /// [`Lab::attach`] with a chosen interface name or addresses.
    pub fn attach_with(&self, seg: &Segment, host: &Host, opts: &IfaceOpts) -> Result<Iface> {
        if matches!(host.kind(), HostKind::Pod | HostKind::Switch) {
            return Err(LabError::WrongKind {
                host: host.name().into(),
                kind: host.kind().as_str(),
                why: "it cannot join a segment",
            });
        }
        if host.iface_on(seg).is_ok() {
            return Err(LabError::Duplicate {
                what: "member",
                name: format!("{} of segment {}", host.name(), seg.name()),
                lab: self.sh.id.clone(),
            });
        }
        let (node_net, nth) = {
            let mut st = self.sh.lock();
            let s = st
                .segments
                .iter_mut()
                .find(|s| s.name == seg.name)
                .ok_or_else(|| self.unknown("segment", &seg.name))?;
            s.members += 1;
            (s.node_net, s.members)
        };
        let addrs = match &opts.addrs {
            Some(a) => {
                for n in a {
                    plan::check_net(n)?;
                }
                a.clone()
            }
            None if node_net => {
                let (a4, a6) = self
                    .sh
                    .with_host(host.name(), |h| h.node_net)
                    .flatten()
                    .ok_or_else(|| self.unknown("host", host.name()))?;
                vec![IpNet::V4(a4), IpNet::V6(a6)]
            }
            None => {
                let (a4, a6) = plan::nth_addrs(seg.subnet4, seg.subnet6, nth)?;
                vec![IpNet::V4(a4), IpNet::V6(a6)]
            }
        };
        let ifname = self.iface_name(host, opts)?;
        let port = if host.name().len() <= 15 {
            host.name().to_string()
        } else {
            format!("port{nth}")
        };
        let sw_ns = format!("lab-{}-{}", self.sh.id, switch_name(&seg.name));
        netns::ip(
            &sw_ns,
            &[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                &ifname,
                "netns",
                host.netns(),
            ],
        )?;
        let iface = Iface {
            name: ifname,
            addrs,
            peer: Peer::Segment {
                segment: seg.name.clone(),
                port: port.clone(),
            },
        };
        self.push_iface(host.name(), iface.clone());
        if node_net {
            let mut st = self.sh.lock();
            if let Some(h) = st.hosts.iter_mut().find(|h| h.name == host.name()) {
                h.primary4 = h.primary4.or(iface.ipv4());
                h.primary6 = h.primary6.or(iface.ipv6());
            }
        }
        self.sh.save()?;
        netns::ip_batch(
            &sw_ns,
            &[
                format!("link set {port} master br0"),
                format!("link set {port} up"),
            ],
        )?;
        configure(host.netns(), &iface)?;
        Ok(iface)
    }
}

/// Adds an interface's addresses and brings it up.
fn configure(ns: &str, iface: &Iface) -> Result<()> {
    let mut lines: Vec<String> = iface
        .addrs
        .iter()
        .map(|a| match a {
            IpNet::V4(_) => format!("addr add {a} dev {}", iface.name),
            IpNet::V6(_) => format!("addr add {a} dev {} nodad", iface.name),
        })
        .collect();
    lines.push(format!("link set {} up", iface.name));
    netns::ip_batch(ns, &lines)
}

fn ends_addrs(o: &IfaceOpts, s4: Ipv4Net, s6: Ipv6Net, i: u32) -> Result<Vec<IpNet>> {
    match &o.addrs {
        Some(a) => {
            for n in a {
                plan::check_net(n)?;
            }
            Ok(a.clone())
        }
        None => {
            let (a4, a6) = plan::nth_addrs(s4, s6, i)?;
            Ok(vec![IpNet::V4(a4), IpNet::V6(a6)])
        }
    }
}

/// `sw-<segment>`: the switch host of a segment.
pub(crate) fn switch_name(segment: &str) -> String {
    format!("sw-{segment}")
}

/// The node-side veth of a pod: `cali` and 11 hex digits of SHA-256(pod name), as Calico
/// names its host-side interfaces.
pub fn cali_name(pod: &str) -> String {
    let h = Sha256::digest(pod.as_bytes());
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("cali{}", &hex[..11])
}

fn check_ifname(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 15
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(LabError::BadName {
            what: "interface",
            name: n.into(),
            why: "expected 1 to 15 of [A-Za-z0-9-_.]",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("a-very-long-interface").is_err());
        assert!(check_ifname("a b").is_err());
    }

    #[test]
    fn cali_names_are_calico_shaped_and_stable() {
        let n = cali_name("web-1");
        assert_eq!(n.len(), 15);
        assert!(n.starts_with("cali"));
        assert_eq!(n, cali_name("web-1"));
        assert_ne!(n, cali_name("web-2"));
    }
}
