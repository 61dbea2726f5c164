//! The lab's address plan: which prefixes exist, who gets which address, and the guard that
//! refuses anything outside the plan. Pure: numbers in, addresses out.
//!
//! ```text
//!   IPv4 198.18.0.0/15                         IPv6 2001:db8::/32
//!   198.18.0.0/24     node network (rack)      2001:db8::/64        same host digits
//!     .1-.9   routers, .11-.73 nodes (10+k), .101-.249 plain hosts
//!   198.18.X.0/24     links, X = 1..63         2001:db8:0:X::/64    (X written in the same digits)
//!   198.18.64.0/18    pod space                2001:db8:64::/48
//!   198.18.(64+k).0/24  pod CIDR of node k     2001:db8:64:k::/64   pods .2, .3, ...
//!   198.19.0.0/16     ClusterIPs (not allocated by the lab)
//!   198.19.255.0/24   external / LoadBalancer IPs (not allocated by the lab)
//!   169.254.1.1 / fe80::1  the pods' gateway on the node side of each pod veth (Calico style)
//! ```
//!
//! IPv6 addresses repeat the IPv4 digits, so `198.18.0.11` pairs with `2001:db8::11` and pod
//! `198.18.66.3` with `2001:db8:64:2::3`: the decimal digits are read as hex digits.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The whole IPv4 plan: 198.18.0.0/15 (RFC 2544 benchmarking range).
pub const V4_PLAN: Ipv4Net = net4([198, 18, 0, 0], 15);
/// The whole IPv6 plan: 2001:db8::/32 (RFC 3849 documentation range).
pub const V6_PLAN: Ipv6Net = net6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32);
/// The node network (the "rack" segment): 198.18.0.0/24.
pub const NODE_NET4: Ipv4Net = net4([198, 18, 0, 0], 24);
/// The node network, IPv6: 2001:db8::/64.
pub const NODE_NET6: Ipv6Net = net6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 64);
/// All pod CIDRs: 198.18.64.0/18, a /24 per node.
pub const POD_SPACE4: Ipv4Net = net4([198, 18, 64, 0], 18);
/// All pod CIDRs, IPv6: 2001:db8:64::/48, a /64 per node.
pub const POD_SPACE6: Ipv6Net = net6([0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 0], 48);
/// ClusterIPs (Service VIPs): 198.19.0.0/16. The lab never allocates these; kube-proxy-rs does.
pub const CLUSTER_IPS4: Ipv4Net = net4([198, 19, 0, 0], 16);
/// External and LoadBalancer IPs: 198.19.255.0/24. Not allocated by the lab.
pub const EXTERNAL_IPS4: Ipv4Net = net4([198, 19, 255, 0], 24);
/// The pods' IPv4 default gateway, answered by proxy ARP on the node side (Calico's 169.254.1.1).
pub const POD_GATEWAY4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pods' IPv6 default gateway: a link-local address on the node side of the pod veth.
pub const POD_GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// Highest node index (pod CIDRs 198.18.65.0/24 ..= 198.18.127.0/24).
pub const MAX_NODES: u8 = 63;
/// Highest router index (node-network addresses .1 ..= .9).
pub const MAX_ROUTERS: u8 = 9;
/// Highest plain-host index (node-network addresses .101 ..= .249).
pub const MAX_HOSTS: u8 = 149;
/// Highest link subnet index (198.18.1.0/24 ..= 198.18.63.0/24).
pub const MAX_LINKS: u8 = 63;

const fn net4(o: [u8; 4], len: u8) -> Ipv4Net {
    match Ipv4Net::new(Ipv4Addr::new(o[0], o[1], o[2], o[3]), len) {
        Ok(n) => n,
        Err(_) => panic!("bad constant prefix"),
    }
}

const fn net6(s: [u16; 8], len: u8) -> Ipv6Net {
    match Ipv6Net::new(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    ) {
        Ok(n) => n,
        Err(_) => panic!("bad constant prefix"),
    }
}

/// Errors of the plan: an address outside it, or an exhausted pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The address is not in 198.18.0.0/15, 2001:db8::/32, link-local or loopback.
    #[error(
        "address {addr} is outside the lab's plan (198.18.0.0/15, 2001:db8::/32, link-local, loopback)"
    )]
    OutsidePlan {
        /// The refused address or prefix, as given.
        addr: String,
    },
    /// All indices of a role are taken.
    #[error("no free {what} index (at most {max})")]
    Exhausted {
        /// The role: node, router, host, link or pod.
        what: &'static str,
        /// Its maximum.
        max: u8,
    },
    /// An explicit index is out of range.
    #[error("{what} index {index} is out of range 1..={max}")]
    BadIndex {
        /// The role: node, router, host, link or pod.
        what: &'static str,
        /// The index asked for.
        index: u32,
        /// Its maximum.
        max: u8,
    },
}

/// Whether `addr` is one the lab may configure: 198.18.0.0/15, 2001:db8::/32, IPv4 or IPv6
/// link-local (169.254.0.0/16, fe80::/10), or loopback.
pub fn in_plan(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => V4_PLAN.contains(&a) || a.is_link_local() || a.is_loopback(),
        IpAddr::V6(a) => {
            V6_PLAN.contains(&a) || a.is_loopback() || (a.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Refuses a prefix unless its whole range lies in the plan (see [`in_plan`]).
pub fn check_net(net: &IpNet) -> Result<(), PlanError> {
    let whole = match net {
        IpNet::V4(n) => {
            let range_ok = |outer: Ipv4Net| outer.contains(n);
            range_ok(V4_PLAN)
                || range_ok(net4([169, 254, 0, 0], 16))
                || range_ok(net4([127, 0, 0, 0], 8))
        }
        IpNet::V6(n) => {
            let range_ok = |outer: Ipv6Net| outer.contains(n);
            range_ok(V6_PLAN)
                || range_ok(net6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10))
                || (n.prefix_len() == 128 && n.addr().is_loopback())
        }
    };
    if whole {
        Ok(())
    } else {
        Err(PlanError::OutsidePlan {
            addr: net.to_string(),
        })
    }
}

/// Refuses an address outside the plan (see [`in_plan`]).
pub fn check_addr(addr: IpAddr) -> Result<(), PlanError> {
    if in_plan(addr) {
        Ok(())
    } else {
        Err(PlanError::OutsidePlan {
            addr: addr.to_string(),
        })
    }
}

/// Reads the decimal digits of `n` as hex digits: 11 -> 0x11, so IPv6 addresses repeat the
/// IPv4 digits (`198.18.0.11` <-> `2001:db8::11`).
pub fn digits(n: u8) -> u16 {
    let (h, t, o) = (
        u16::from(n / 100),
        u16::from(n / 10 % 10),
        u16::from(n % 10),
    );
    (h << 8) | (t << 4) | o
}

/// The address of node `k` (1-based) on the node network: 198.18.0.(10+k)/24 and
/// 2001:db8::(10+k)/64.
pub fn node_addrs(k: u8) -> (Ipv4Net, Ipv6Net) {
    on_node_net(10 + k)
}

/// The address of router `r` (1-based) on the node network: 198.18.0.r/24, 2001:db8::r/64.
pub fn router_addrs(r: u8) -> (Ipv4Net, Ipv6Net) {
    on_node_net(r)
}

/// The address of plain host `h` (1-based) on the node network: 198.18.0.(100+h)/24.
pub fn host_addrs(h: u8) -> (Ipv4Net, Ipv6Net) {
    on_node_net(100 + h)
}

fn on_node_net(octet: u8) -> (Ipv4Net, Ipv6Net) {
    let v4 = Ipv4Addr::new(198, 18, 0, octet);
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, digits(octet));
    (net4(v4.octets(), 24), Ipv6Net::new_assert(v6, 64))
}

/// The pod CIDRs of node `k` (1-based): 198.18.(64+k).0/24 and 2001:db8:64:k::/64.
pub fn pod_cidrs(k: u8) -> (Ipv4Net, Ipv6Net) {
    let v4 = net4([198, 18, 64 + k, 0], 24);
    let v6 = net6([0x2001, 0xdb8, 0x64, digits(k), 0, 0, 0, 0], 64);
    (v4, v6)
}

/// The addresses of the `j`-th pod (0-based) of node `k`: host part .(j+2) in the node's pod
/// CIDRs, as a /32 and a /128 (Calico's point-to-point style).
pub fn pod_addrs(k: u8, j: u8) -> Result<(Ipv4Net, Ipv6Net), PlanError> {
    if j > 252 {
        return Err(PlanError::Exhausted {
            what: "pod",
            max: 253,
        });
    }
    let octet = j + 2;
    let v4 = Ipv4Addr::new(198, 18, 64 + k, octet);
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0x64, digits(k), 0, 0, 0, digits(octet));
    Ok((net4(v4.octets(), 32), Ipv6Net::new_assert(v6, 128)))
}

/// Link subnet `x` (1-based): 198.18.x.0/24 and 2001:db8:0:x::/64.
pub fn link_subnets(x: u8) -> (Ipv4Net, Ipv6Net) {
    (
        net4([198, 18, x, 0], 24),
        net6([0x2001, 0xdb8, 0, digits(x), 0, 0, 0, 0], 64),
    )
}

/// The `i`-th host address (1-based) of a subnet pair, with the subnets' prefix lengths:
/// `(198.18.5.0/24, 2001:db8:0:5::/64), 2` gives `198.18.5.2/24` and `2001:db8:0:5::2/64`.
/// For a non-/24 IPv4 subnet the IPv6 host part is `i` in hex.
pub fn nth_addrs(
    subnet4: Ipv4Net,
    subnet6: Ipv6Net,
    i: u32,
) -> Result<(Ipv4Net, Ipv6Net), PlanError> {
    let size4 = 1u64 << (32 - u32::from(subnet4.prefix_len()));
    if u64::from(i) + 1 >= size4 {
        return Err(PlanError::Exhausted {
            what: "address in subnet",
            max: u8::MAX,
        });
    }
    let v4 = Ipv4Addr::from(u32::from(subnet4.network()) + i);
    let host6 = match u8::try_from(i) {
        Ok(b) if subnet4.prefix_len() >= 24 => u128::from(digits(b)),
        _ => u128::from(i),
    };
    let v6 = Ipv6Addr::from(u128::from(subnet6.network()) + host6);
    let n4 = Ipv4Net::new(v4, subnet4.prefix_len()).map_err(|_| PlanError::OutsidePlan {
        addr: v4.to_string(),
    })?;
    let n6 = Ipv6Net::new(v6, subnet6.prefix_len()).map_err(|_| PlanError::OutsidePlan {
        addr: v6.to_string(),
    })?;
    Ok((n4, n6))
}

/// Checks an explicit index against its role's range.
pub fn check_index(what: &'static str, index: u32, max: u8) -> Result<u8, PlanError> {
    match u8::try_from(index) {
        Ok(i) if (1..=max).contains(&i) => Ok(i),
        _ => Err(PlanError::BadIndex { what, index, max }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_repeat_decimal_as_hex() {
        assert_eq!(digits(0), 0);
        assert_eq!(digits(11), 0x11);
        assert_eq!(digits(254), 0x254);
        assert_eq!(digits(63), 0x63);
    }

    #[test]
    fn node_router_host_addresses_follow_the_plan() {
        let (v4, v6) = node_addrs(1);
        assert_eq!(v4.to_string(), "198.18.0.11/24");
        assert_eq!(v6.to_string(), "2001:db8::11/64");
        assert_eq!(router_addrs(1).0.to_string(), "198.18.0.1/24");
        assert_eq!(host_addrs(3).1.to_string(), "2001:db8::103/64");
    }

    #[test]
    fn pod_cidrs_and_pod_addresses() {
        let (v4, v6) = pod_cidrs(2);
        assert_eq!(v4.to_string(), "198.18.66.0/24");
        assert_eq!(v6.to_string(), "2001:db8:64:2::/64");
        assert!(POD_SPACE4.contains(&v4) && POD_SPACE6.contains(&v6));
        let (p4, p6) = pod_addrs(2, 1).unwrap();
        assert_eq!(p4.to_string(), "198.18.66.3/32");
        assert_eq!(p6.to_string(), "2001:db8:64:2::3/128");
        assert!(v4.contains(&p4) && v6.contains(&p6));
        assert_eq!(pod_cidrs(MAX_NODES).0.to_string(), "198.18.127.0/24");
        assert!(POD_SPACE4.contains(&pod_cidrs(MAX_NODES).0));
    }

    #[test]
    fn link_subnets_and_nth() {
        let (s4, s6) = link_subnets(5);
        assert_eq!(
            (s4.to_string(), s6.to_string()),
            ("198.18.5.0/24".into(), "2001:db8:0:5::/64".into())
        );
        let (a4, a6) = nth_addrs(s4, s6, 2).unwrap();
        assert_eq!(
            (a4.to_string(), a6.to_string()),
            ("198.18.5.2/24".into(), "2001:db8:0:5::2/64".into())
        );
        let small: Ipv4Net = "198.18.9.0/30".parse().unwrap();
        assert!(nth_addrs(small, s6, 2).is_ok());
        assert!(
            nth_addrs(small, s6, 3).is_err(),
            "the broadcast address is not handed out"
        );
    }

    #[test]
    fn guard_refuses_outside_the_plan() {
        for ok in [
            "198.18.0.1",
            "198.19.255.7",
            "2001:db8::1",
            "169.254.1.1",
            "fe80::1",
            "127.0.0.1",
            "::1",
        ] {
            assert!(check_addr(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "198.20.0.1",
            "2001:db9::1",
            "fd00::1",
        ] {
            let err = check_addr(bad.parse().unwrap()).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(check_net(&"198.18.0.0/15".parse().unwrap()).is_ok());
        assert!(
            check_net(&"198.16.0.0/12".parse().unwrap()).is_err(),
            "a wider prefix spills out"
        );
        assert!(check_net(&"0.0.0.0/0".parse().unwrap()).is_err());
    }

    #[test]
    fn index_ranges() {
        assert_eq!(check_index("node", 63, MAX_NODES), Ok(63));
        assert!(check_index("node", 64, MAX_NODES).is_err());
        assert!(check_index("node", 0, MAX_NODES).is_err());
    }
}
