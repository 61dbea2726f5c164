//! Source address selection when the flow has none.
//!
//! ```text
//!   IPv4: inet_select_addr(dev, near, scope)
//!     1. the device's primary (non-secondary) addresses in kernel order whose scope is not
//!        narrower than the route's scope (host-scope 127/8 only for host routes); the first
//!        whose subnet holds `near` (the gateway) wins, else the first such address;
//!     2. otherwise the first primary address, not of link scope, of any interface in
//!        interface order (loopback first).
//!   IPv6: ipv6_dev_get_saddr (RFC 6724 section 5), candidates = non-tentative addresses of
//!     the output device (link-local or multicast destinations) or of every device; compared
//!     rule by rule: same address, appropriate scope, not deprecated, home address, on the
//!     outgoing interface, matching label (default policy table), public over temporary,
//!     longest matching prefix; the first candidate wins ties.
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::addr::{AddrFlag, Address};
use super::lookup::SrcReason;
use super::names::Scope;
use super::state::RouteState;
use crate::packet::Family;

impl RouteState {
    /// Interfaces with their addresses, in interface order (as the kernel walks devices).
    fn ifaces_in_order(&self) -> Vec<(&str, &[Address])> {
        let mut out: Vec<(u32, &str, &[Address])> = self
            .addresses
            .iter()
            .map(|i| (i.ifindex, i.ifname.as_str(), i.addrs.as_slice()))
            .collect();
        out.sort_by_key(|(idx, _, _)| *idx);
        out.into_iter().map(|(_, n, a)| (n, a)).collect()
    }

    fn addrs_of(&self, dev: &str) -> &[Address] {
        self.addresses
            .iter()
            .find(|i| i.ifname == dev)
            .map(|i| i.addrs.as_slice())
            .unwrap_or(&[])
    }

    /// IPv4 `inet_select_addr(dev, near, scope)`.
    pub(crate) fn select_v4(
        &self,
        dev: &str,
        near: Option<Ipv4Addr>,
        scope: Scope,
    ) -> (Option<IpAddr>, SrcReason) {
        let localnet = if self.settings.route_localnet.unwrap_or(false) {
            Scope::LINK
        } else {
            Scope::HOST
        };
        let mut first: Option<&Address> = None;
        for a in self.addrs_of(dev).iter().filter(|a| a.family == Family::V4) {
            if a.is_secondary() || a.scope.min(localnet) > scope {
                continue;
            }
            let in_subnet = near.is_some_and(|n| a.subnet().contains(&IpAddr::V4(n)));
            if near.is_none() || in_subnet {
                return (
                    Some(a.local),
                    SrcReason::DeviceAddress {
                        dev: dev.to_string(),
                        in_subnet,
                    },
                );
            }
            first.get_or_insert(a);
        }
        if let Some(a) = first {
            return (
                Some(a.local),
                SrcReason::DeviceAddress {
                    dev: dev.to_string(),
                    in_subnet: false,
                },
            );
        }
        for (name, addrs) in self.ifaces_in_order() {
            for a in addrs.iter().filter(|a| a.family == Family::V4) {
                if !a.is_secondary() && a.scope != Scope::LINK && a.scope <= scope {
                    return (
                        Some(a.local),
                        SrcReason::OtherDevice {
                            dev: name.to_string(),
                        },
                    );
                }
            }
        }
        (None, SrcReason::None)
    }

    /// IPv6 `ipv6_dev_get_saddr(dst_dev, dst)`.
    pub(crate) fn select_v6(
        &self,
        dst_dev: Option<&str>,
        dst: IpAddr,
        _oif: Option<&str>,
    ) -> (Option<IpAddr>, SrcReason) {
        let IpAddr::V6(dst) = dst else {
            return (None, SrcReason::None);
        };
        let dst_scope = v6_scope(dst);
        let oif_only = dst.is_multicast() || dst_scope <= 2;
        let mut cands: Vec<(&str, &Address, [i64; 8])> = Vec::new();
        for (name, addrs) in self.ifaces_in_order() {
            if oif_only && Some(name) != dst_dev {
                continue;
            }
            for a in addrs.iter().filter(|a| a.family == Family::V6) {
                let IpAddr::V6(local) = a.local else { continue };
                if !a.is_usable_source() || local.is_unspecified() || local.is_multicast() {
                    continue;
                }
                cands.push((
                    name,
                    a,
                    v6_score(a, local, dst, dst_scope, Some(name) == dst_dev),
                ));
            }
        }
        let mut best: Option<usize> = None;
        for (i, c) in cands.iter().enumerate() {
            if best.is_none_or(|b| c.2 > cands[b].2) {
                best = Some(i);
            }
        }
        let Some(b) = best else {
            return (None, SrcReason::None);
        };
        let runner_up = cands
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != b)
            .map(|(_, c)| c.2)
            .max();
        const RULES: [&str; 8] = [
            "same address",
            "scope",
            "preferred",
            "home address",
            "outgoing interface",
            "label",
            "public",
            "longest prefix",
        ];
        let rule = match runner_up {
            None => "only candidate".to_string(),
            Some(r) => (0..8)
                .find(|&k| cands[b].2[k] != r[k])
                .map(|k| RULES[k].to_string())
                .unwrap_or_else(|| "first".to_string()),
        };
        (
            Some(cands[b].1.local),
            SrcReason::Rfc6724 {
                dev: cands[b].0.to_string(),
                rule,
            },
        )
    }
}

/// The scope value of an IPv6 address (`__ipv6_addr_src_scope`): 1 node, 2 link, 5 site,
/// 14 global; multicast carries its own.
fn v6_scope(a: Ipv6Addr) -> i64 {
    let s0 = a.segments()[0];
    if a.is_multicast() {
        i64::from(s0 & 0x000f)
    } else if a.is_loopback() {
        1
    } else if s0 & 0xffc0 == 0xfe80 {
        2
    } else if s0 & 0xffc0 == 0xfec0 {
        5
    } else {
        14
    }
}

/// The label of the default address selection policy table (RFC 6724 section 2.1 as Linux
/// ships it).
fn v6_label(a: Ipv6Addr) -> i64 {
    const TABLE: [(u128, u8, i64); 10] = [
        (1, 128, 0),                                         // ::1/128
        (0xffff_0000_0000, 96, 4),                           // ::ffff:0:0/96
        (0, 96, 3),                                          // ::/96
        (0x2001_0000_0000_0000_0000_0000_0000_0000, 32, 6),  // 2001::/32
        (0x2001_0010_0000_0000_0000_0000_0000_0000, 28, 7),  // 2001:10::/28
        (0x2002_0000_0000_0000_0000_0000_0000_0000, 16, 2),  // 2002::/16
        (0x3ffe_0000_0000_0000_0000_0000_0000_0000, 16, 12), // 3ffe::/16
        (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10, 11), // fec0::/10
        (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7, 5),   // fc00::/7
        (0, 0, 1),                                           // ::/0
    ];
    let x = u128::from(a);
    TABLE
        .iter()
        .filter(|(p, len, _)| {
            *len == 0 || (x >> (128 - u32::from(*len))) == (p >> (128 - u32::from(*len)))
        })
        .max_by_key(|(_, len, _)| *len)
        .map(|(_, _, l)| *l)
        .unwrap_or(1)
}

fn common_prefix(a: Ipv6Addr, b: Ipv6Addr) -> i64 {
    i64::from((u128::from(a) ^ u128::from(b)).leading_zeros())
}

fn v6_score(a: &Address, local: Ipv6Addr, dst: Ipv6Addr, dst_scope: i64, on_oif: bool) -> [i64; 8] {
    let cs = v6_scope(local);
    let scope = if cs >= dst_scope { -cs } else { cs - 128 };
    let preferred =
        local.is_loopback() || !(a.has(AddrFlag::Deprecated) || a.has(AddrFlag::Optimistic));
    [
        i64::from(local == dst),
        scope,
        i64::from(preferred),
        i64::from(a.has(AddrFlag::Home)),
        i64::from(on_oif),
        i64::from(v6_label(local) == v6_label(dst)),
        i64::from(!a.has(AddrFlag::Temporary)),
        common_prefix(local, dst).min(i64::from(a.prefixlen)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_default_policy_table() {
        assert_eq!(v6_label("::1".parse().unwrap()), 0);
        assert_eq!(v6_label("2001:db8::1".parse().unwrap()), 1);
        assert_eq!(v6_label("2001::1".parse().unwrap()), 6);
        assert_eq!(v6_label("fd00::1".parse().unwrap()), 5);
        assert_eq!(v6_label("::ffff:198.18.0.1".parse().unwrap()), 4);
        assert_eq!(v6_scope("fe80::1".parse().unwrap()), 2);
        assert_eq!(v6_scope("ff02::1".parse().unwrap()), 2);
        assert_eq!(v6_scope("2001:db8::1".parse().unwrap()), 14);
    }
}
