//! The FIB, kernel half: dump the routes of our table, execute [`FibOp`]s over rtnetlink, and
//! read interface addresses (to resolve next hops to devices and find our own next hops).
//!
//! ```text
//!   Netlink::dump(cfg)       RTM_GETROUTE (v4, v6) ──> Vec<KernelRoute> of table cfg.table
//!                            (every protocol: foreign routes are needed to report conflicts)
//!   Netlink::apply(op)       Add     = RTM_NEWROUTE NLM_F_CREATE|NLM_F_EXCL     (`ip route add`)
//!                            Replace = RTM_NEWROUTE NLM_F_CREATE|NLM_F_REPLACE  (`ip route replace`)
//!                            Delete  = RTM_DELROUTE prefix proto table metric   (`ip route del`)
//!                            several next hops: RTA_MULTIPATH (`nexthop via A nexthop via B`)
//!   Netlink::addresses()     RTM_GETADDR ──> Vec<LocalAddr> (`ip -j addr`)
//! ```
//!
//! Only [`FibOp`]s reach the kernel, and [`crate::fib::diff`] / [`crate::fib::FibSync`] only
//! produce them for routes of our protocol in our table: routes of other protocols are never
//! touched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteNextHop, RouteProtocol, RouteType, RouteVia,
};
use rtnetlink::{Handle, RouteMessageBuilder, RouteNextHopBuilder};

use super::{Connected, FibConfig, FibNextHop, FibOp, KernelRoute};

/// A netlink failure, with the operation and the route.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket: {0}")]
    Connect(std::io::Error),
    /// A request failed.
    #[error("{what}: {source}")]
    Request {
        /// `ip route add 198.18.66.0/24 ...`, `dump routes`, ...
        what: String,
        /// rtnetlink's error (the kernel's errno inside).
        source: rtnetlink::Error,
    },
    /// The kernel refused a request of a batch ([`super::writer::FibWriter`]), or the batch's
    /// socket failed.
    #[error("{what}: {source}")]
    Kernel {
        /// `ip route add 198.18.66.0/24 ...`
        what: String,
        /// The kernel's errno.
        source: std::io::Error,
    },
    /// A route could not be expressed (bad family mix).
    #[error("{what}: {message}")]
    Invalid {
        /// The route.
        what: String,
        /// What is wrong.
        message: String,
    },
}

/// An address of a local interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr {
    /// The address with its prefix length (`198.18.0.11/24`).
    pub net: IpNet,
    /// The interface index.
    pub ifindex: u32,
}

impl LocalAddr {
    /// Whether the address is a global unicast one (not link-local, not loopback).
    pub fn is_global(&self) -> bool {
        match self.net.addr() {
            IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local(),
            IpAddr::V6(a) => !a.is_loopback() && (a.segments()[0] & 0xffc0) != 0xfe80,
        }
    }
}

/// The rtnetlink connection (its socket task runs on the tokio runtime).
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

pub(super) fn describe(op: &FibOp) -> String {
    let (verb, r) = match op {
        FibOp::Add(r) => ("add", r),
        FibOp::Replace(r) => ("replace", r),
        FibOp::Delete(r) => ("del", r),
    };
    let mut s = format!(
        "ip route {verb} {} proto {} table {} metric {}",
        r.prefix, r.protocol, r.table, r.metric
    );
    for nh in &r.next_hops {
        s.push_str(&format!(" nexthop via {}", nh.gateway));
        if let Some(i) = nh.ifindex {
            s.push_str(&format!(" dev #{i}"));
        }
        if nh.weight != 1 {
            s.push_str(&format!(" weight {}", nh.weight));
        }
    }
    s
}

fn next_hop_gateway(attrs: &[RouteAttribute]) -> Option<IpAddr> {
    attrs.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        RouteAttribute::Gateway(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        RouteAttribute::Via(RouteVia::Inet6(a)) => Some(IpAddr::V6(*a)),
        RouteAttribute::Via(RouteVia::Inet(a)) => Some(IpAddr::V4(*a)),
        _ => None,
    })
}

/// A dumped route message as a [`KernelRoute`]; `None` for routes without a gateway (connected,
/// blackhole, ...), which are never ours to manage, and for other address families.
pub fn kernel_route(m: &RouteMessage) -> Option<KernelRoute> {
    let len = m.header.destination_prefix_length;
    let dst = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    });
    let prefix = match (m.header.address_family, dst) {
        (_, Some(a)) => IpNet::new(a, len).ok()?,
        (AddressFamily::Inet, None) => IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).ok()?,
        (AddressFamily::Inet6, None) => IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).ok()?,
        _ => return None,
    };
    let table = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(m.header.table as u32);
    let metric = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0);
    let oif = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    });
    let mut next_hops = Vec::new();
    if let Some(g) = next_hop_gateway(&m.attributes) {
        next_hops.push(FibNextHop {
            gateway: g,
            ifindex: oif,
            weight: 1,
        });
    }
    for a in &m.attributes {
        if let RouteAttribute::MultiPath(hops) = a {
            for h in hops {
                if let Some(g) = next_hop_gateway(&h.attributes) {
                    next_hops.push(FibNextHop {
                        gateway: g,
                        ifindex: (h.interface_index != 0).then_some(h.interface_index),
                        weight: h.hops as u16 + 1,
                    });
                }
            }
        }
    }
    if next_hops.is_empty() && m.header.kind == RouteType::Unicast {
        return None;
    }
    Some(KernelRoute {
        prefix: prefix.trunc(),
        table,
        protocol: u8::from(m.header.protocol),
        metric,
        next_hops,
    })
}

/// The netlink message of a route (destination, table, protocol, metric, next hops).
pub fn route_message(r: &KernelRoute, with_next_hops: bool) -> Result<RouteMessage, String> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.prefix.addr(), r.prefix.prefix_len())
        .map_err(|e| e.to_string())?
        .table_id(r.table)
        .protocol(RouteProtocol::from(r.protocol))
        .priority(r.metric);
    if with_next_hops {
        match &r.next_hops[..] {
            [] => return Err("a route needs a next hop".into()),
            [one] if one.weight == 1 => {
                b = b.gateway(one.gateway).map_err(|e| e.to_string())?;
                if let Some(i) = one.ifindex {
                    b = b.output_interface(i);
                }
            }
            many => {
                let family = if r.prefix.addr().is_ipv4() {
                    AddressFamily::Inet
                } else {
                    AddressFamily::Inet6
                };
                let hops: Vec<RouteNextHop> = many
                    .iter()
                    .map(|nh| {
                        let mut h = RouteNextHopBuilder::new(family)
                            .via(nh.gateway)
                            .map_err(|e| e.to_string())?
                            .weight(nh.weight.clamp(1, 256).saturating_sub(1) as u8);
                        if let Some(i) = nh.ifindex {
                            h = h.interface(i);
                        }
                        Ok(h.build())
                    })
                    .collect::<Result<_, String>>()?;
                b = b.multipath(hops);
            }
        }
    }
    Ok(b.build())
}

impl Netlink {
    /// Open a netlink socket in the current network namespace.
    pub fn connect() -> Result<Self, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// Every route of `cfg.table` (IPv4 and IPv6), of any protocol.
    pub async fn dump(&self, cfg: &FibConfig) -> Result<Vec<KernelRoute>, NetlinkError> {
        let mut out = Vec::new();
        for msg in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let mut s = self.handle.route().get(msg).execute();
            while let Some(m) = s.try_next().await.map_err(|source| NetlinkError::Request {
                what: "dump routes".into(),
                source,
            })? {
                if let Some(r) = kernel_route(&m)
                    && r.table == cfg.table
                {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Execute one operation.
    pub async fn apply(&self, op: &FibOp) -> Result<(), NetlinkError> {
        let what = || describe(op);
        let invalid = |message| NetlinkError::Invalid {
            what: describe(op),
            message,
        };
        let req = |source| NetlinkError::Request {
            what: what(),
            source,
        };
        match op {
            FibOp::Add(r) => {
                let m = route_message(r, true).map_err(invalid)?;
                self.handle.route().add(m).execute().await.map_err(req)
            }
            FibOp::Replace(r) => {
                let m = route_message(r, true).map_err(invalid)?;
                self.handle
                    .route()
                    .add(m)
                    .replace()
                    .execute()
                    .await
                    .map_err(req)
            }
            FibOp::Delete(r) => {
                let m = route_message(r, false).map_err(invalid)?;
                self.handle.route().del(m).execute().await.map_err(req)
            }
        }
    }

    /// Addresses of all interfaces.
    pub async fn addresses(&self) -> Result<Vec<LocalAddr>, NetlinkError> {
        let mut out = Vec::new();
        let mut s = self.handle.address().get().execute();
        while let Some(m) = s.try_next().await.map_err(|source| NetlinkError::Request {
            what: "dump addresses".into(),
            source,
        })? {
            // IPv4: IFA_LOCAL is the address (IFA_ADDRESS the peer on point-to-point links)
            let local = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(a) => Some(*a),
                _ => None,
            });
            let addr = local.or_else(|| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(a) => Some(*a),
                    _ => None,
                })
            });
            if let Some(a) = addr
                && let Ok(net) = IpNet::new(a, m.header.prefix_len)
            {
                out.push(LocalAddr {
                    net,
                    ifindex: m.header.index,
                });
            }
        }
        Ok(out)
    }
}

/// Connected networks of `addrs`, for [`super::path_next_hop`].
pub fn connected(addrs: &[LocalAddr]) -> Connected {
    Connected(
        addrs
            .iter()
            .filter(|a| a.is_global())
            .map(|a| (a.net.trunc(), a.ifindex))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(next_hops: Vec<FibNextHop>) -> KernelRoute {
        KernelRoute {
            prefix: "198.18.66.0/24".parse().unwrap(),
            table: 254,
            protocol: 186,
            metric: 20,
            next_hops,
        }
    }

    fn nh(a: &str) -> FibNextHop {
        FibNextHop {
            gateway: a.parse().unwrap(),
            ifindex: Some(3),
            weight: 1,
        }
    }

    #[test]
    fn route_messages_read_back_as_the_same_route() {
        for r in [
            route(vec![nh("198.18.0.1")]),
            route(vec![nh("198.18.0.1"), nh("198.18.0.2")]),
        ] {
            let m = route_message(&r, true).unwrap();
            assert_eq!(kernel_route(&m), Some(r.clone()));
            assert_eq!(u8::from(m.header.protocol), 186);
        }
        let mut r6 = route(vec![nh("2001:db8::1"), nh("2001:db8::2")]);
        r6.prefix = "2001:db8:64:2::/64".parse().unwrap();
        r6.table = 1000;
        let m = route_message(&r6, true).unwrap();
        assert_eq!(kernel_route(&m), Some(r6));
        // an IPv4 route over an IPv6 next hop (RFC 8950) uses RTA_VIA
        let r = route(vec![nh("2001:db8::1")]);
        let m = route_message(&r, true).unwrap();
        assert!(
            m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Via(RouteVia::Inet6(_))))
        );
        assert_eq!(kernel_route(&m), Some(r));
        // a delete names prefix, table, protocol and metric, no next hop
        let m = route_message(&route(vec![]), false).unwrap();
        assert!(next_hop_gateway(&m.attributes).is_none());
        assert!(route_message(&route(vec![]), true).is_err());
        assert_eq!(
            describe(&FibOp::Replace(route(vec![nh("198.18.0.1")]))),
            "ip route replace 198.18.66.0/24 proto 186 table 254 metric 20 nexthop via 198.18.0.1 dev #3"
        );
    }
}
