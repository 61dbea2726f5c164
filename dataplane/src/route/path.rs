//! The input and output paths around the FIB lookup (`ip_route_output_key`,
//! `ip_route_input_slow`, `ip6_route_output`, `ip6_route_input`): martian checks, bound
//! devices, local / broadcast / multicast results, multipath and source addresses.
//!
//! ```text
//!   Flow --pre-checks--> rpdb walk --route--> Local | Broadcast | Multicast | Anycast
//!                            |                 | Unicast { hops with weights and sources }
//!                            +--no route / reject--> bound device? assume on link (IPv4 output)
//!                                                    else NoRoute / Blackhole / Unreachable ..
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::flow::Flow;
use super::lookup::{Assumption, Hop, Lookup, Martian, Outcome, SrcReason};
use super::names::{RouteType, Scope, TableId};
use super::routes::Route;
use super::rpdb::{Key, RulesResult};
use super::state::RouteState;
use crate::packet::Family;

impl RouteState {
    /// The routing decision for `flow`, as the kernel's `fib_lookup` (and `ip route get`)
    /// makes it, with every rule and route considered.
    pub fn lookup(&self, flow: &Flow) -> Lookup {
        let mut lk = Lookup {
            flow: flow.clone(),
            steps: Vec::new(),
            outcome: Outcome::NoRoute,
            assumptions: Vec::new(),
        };
        if Family::of(&flow.dst) != flow.family
            || flow.src.is_some_and(|s| Family::of(&s) != flow.family)
        {
            lk.outcome = Outcome::Martian {
                reason: Martian::BadSource,
            };
            return lk;
        }
        for dev in [&flow.iif, &flow.oif].into_iter().flatten() {
            if self.link(dev).is_none() && !self.links.is_empty() {
                lk.outcome = Outcome::Martian {
                    reason: Martian::NoDevice(dev.clone()),
                };
                return lk;
            }
        }
        if flow.uid.is_none()
            && flow.iif.is_none()
            && self.rules(flow.family).any(|r| r.uidrange.is_some())
        {
            lk.assumptions.push(Assumption::UidAssumedRoot);
        }
        lk.outcome = match (flow.family, flow.iif.is_some()) {
            (Family::V4, false) => self.output_v4(flow, &mut lk),
            (Family::V4, true) => self.input_v4(flow, &mut lk),
            (Family::V6, false) => self.output_v6(flow, &mut lk),
            (Family::V6, true) => self.input_v6(flow, &mut lk),
        };
        if let Outcome::Unicast { hops, .. } = &lk.outcome
            && hops.len() > 1
        {
            let n = hops.len();
            lk.assumptions.push(Assumption::Multipath { hops: n });
        }
        lk
    }

    /// Whether `addr` is an address of this host (`__ip_dev_find`: any interface address,
    /// secondary ones included, or a `local` route in the local table).
    pub fn is_local_address(&self, addr: IpAddr) -> bool {
        let on_iface = self
            .addresses
            .iter()
            .flat_map(|i| &i.addrs)
            .any(|a| a.local == addr);
        on_iface
            || self
                .routes
                .iter()
                .filter(|r| r.table == TableId::LOCAL && r.family == Family::of(&addr))
                .filter(|r| r.kind == RouteType::Local && r.dst.contains(&addr))
                .max_by_key(|r| r.dst.prefix_len())
                .is_some()
    }

    /// Builds the hops of a route found for output or forwarding.
    pub(crate) fn hops(
        &self,
        route: &Route,
        hop_idx: &[usize],
        key: &Key,
        src_given: Option<IpAddr>,
    ) -> Vec<Hop> {
        hop_idx
            .iter()
            .filter_map(|&i| route.nexthops.get(i))
            .map(|nh| {
                let dev = nh.dev.clone().unwrap_or_else(|| "lo".to_string());
                let gateway = nh.gateway.as_ref().and_then(|g| g.addr());
                let (src, src_reason) = match (src_given, route.prefsrc) {
                    (Some(s), _) => (Some(s), SrcReason::Flow),
                    (None, Some(p)) => (Some(p), SrcReason::Prefsrc),
                    (None, None) => match key.family {
                        Family::V4 => {
                            let near = match gateway {
                                Some(IpAddr::V4(g)) => Some(g),
                                _ => None,
                            };
                            self.select_v4(&dev, near, route.scope())
                        }
                        Family::V6 => self.select_v6(Some(&dev), key.dst, key.oif),
                    },
                };
                Hop {
                    dev,
                    gateway,
                    weight: nh.weight(),
                    src,
                    src_reason,
                    flags: nh.flags.clone(),
                }
            })
            .collect()
    }

    fn output_v4(&self, flow: &Flow, lk: &mut Lookup) -> Outcome {
        let dst = match flow.dst {
            IpAddr::V4(d) => d,
            IpAddr::V6(_) => return Outcome::NoRoute,
        };
        let mut key = Key::new(self, flow);
        let mut src = flow.src;
        if let Some(IpAddr::V4(s)) = flow.src {
            if s.is_multicast() || s.is_broadcast() || s.is_unspecified() {
                return Outcome::Martian {
                    reason: Martian::BadSource,
                };
            }
            if flow.oif.is_none() && (dst.is_multicast() || dst.is_broadcast()) {
                let Some(dev) = self.dev_of_address(IpAddr::V4(s)) else {
                    return Outcome::Martian {
                        reason: Martian::SourceNotLocal,
                    };
                };
                return self.make_special(dst, dev, None, src);
            }
            if !self.is_local_address(IpAddr::V4(s)) {
                return Outcome::Martian {
                    reason: Martian::SourceNotLocal,
                };
            }
        }
        if let Some(oif) = flow.oif.as_deref() {
            if self.link(oif).is_some_and(|l| !l.is_up()) {
                return Outcome::Martian {
                    reason: Martian::OifDown,
                };
            }
            if (dst.octets()[..3] == [224, 0, 0]) || dst.is_broadcast() || key.proto == 2 {
                let s = src.or_else(|| self.select_v4(oif, None, Scope::LINK).0);
                return self.make_special(dst, oif.to_string(), None, s);
            }
            if src.is_none() && dst.is_multicast() {
                src = self.select_v4(oif, None, Scope::GLOBAL).0;
            } else if src.is_none() && dst.is_unspecified() {
                src = self.select_v4(oif, None, Scope::HOST).0;
            }
        }
        if dst.is_unspecified() {
            return Outcome::Local {
                dev: "lo".to_string(),
                route: None,
                src: Some(src.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))),
            };
        }
        key.src = src;
        match self.walk_rules(&key, &mut lk.steps) {
            RulesResult::Route { route, hops } => {
                self.finish_output_v4(dst, &route, &hops, &key, src, flow, lk)
            }
            other => {
                if let Some(oif) = flow.oif.as_deref() {
                    // "Apparently, routing tables are wrong. Assume, that the destination is
                    // on link." (ip_route_output_key_hash_rcu)
                    let s = src.or_else(|| self.select_v4(oif, None, Scope::LINK).0);
                    return Outcome::Unicast {
                        hops: vec![Hop {
                            dev: oif.to_string(),
                            gateway: None,
                            weight: 1,
                            src: s,
                            src_reason: if flow.src.is_some() {
                                SrcReason::Flow
                            } else {
                                self.select_v4(oif, None, Scope::LINK).1
                            },
                            flags: Vec::new(),
                        }],
                        route: None,
                    };
                }
                Self::rules_failure(other)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_output_v4(
        &self,
        dst: Ipv4Addr,
        route: &Route,
        hops: &[usize],
        key: &Key,
        src: Option<IpAddr>,
        flow: &Flow,
        lk: &mut Lookup,
    ) -> Outcome {
        if route.kind == RouteType::Local {
            let s = src.or(route.prefsrc).or(Some(flow.dst));
            return Outcome::Local {
                dev: "lo".to_string(),
                route: Some(route.clone()),
                src: s,
            };
        }
        // fib_select_path: a bound lookup keeps the first usable next hop, otherwise every
        // live next hop of a multipath route is a candidate for the hash.
        let chosen: Vec<usize> = if flow.oif.is_some() || !route.multipath {
            hops.iter().take(1).copied().collect()
        } else {
            hops.to_vec()
        };
        if !route.multipath
            && flow.oif.is_none()
            && route.dst.prefix_len() == 0
            && route.kind == RouteType::Unicast
        {
            let defaults = self
                .routes
                .iter()
                .filter(|r| r.family == Family::V4 && r.table == route.table)
                .filter(|r| r.dst.prefix_len() == 0 && r.kind == RouteType::Unicast)
                .count();
            if defaults > 1 {
                lk.assumptions.push(Assumption::SeveralDefaultRoutes);
            }
        }
        let hops = self.hops(route, &chosen, key, src);
        let Some(first) = hops.first() else {
            return Outcome::NoRoute;
        };
        let out_is_lo = self.link(&first.dev).is_some_and(|l| l.is_loopback()) || first.dev == "lo";
        // __mkroute_output refuses a 127/8 source off loopback unless route_localnet is set
        // (checked in a netns: `ip route get X from 127.0.0.1` fails with 0, works with 1).
        let localnet = self.settings.route_localnet.unwrap_or(false);
        if !localnet
            && hops
                .iter()
                .any(|h| matches!(h.src, Some(IpAddr::V4(s)) if s.is_loopback()))
            && !out_is_lo
        {
            return Outcome::Martian {
                reason: Martian::LoopbackSource,
            };
        }
        let dev = first.dev.clone();
        let s = first.src;
        if dst.is_broadcast() || route.kind == RouteType::Broadcast {
            return Outcome::Broadcast {
                dev,
                route: Some(route.clone()),
                src: s,
            };
        }
        if dst.is_multicast() || route.kind == RouteType::Multicast {
            lk.assumptions.push(Assumption::MulticastMembership);
            return Outcome::Multicast {
                dev,
                route: Some(route.clone()),
                src: s,
            };
        }
        if dst.octets()[0] == 0 {
            return Outcome::Martian {
                reason: Martian::ZeroDestination,
            };
        }
        if route.kind == RouteType::Anycast {
            return Outcome::Anycast {
                dev,
                route: route.clone(),
                src: s,
            };
        }
        Outcome::Unicast {
            hops,
            route: Some(route.clone()),
        }
    }

    /// Broadcast or multicast output decided before the FIB (bound device or source).
    fn make_special(
        &self,
        dst: Ipv4Addr,
        dev: String,
        route: Option<Route>,
        src: Option<IpAddr>,
    ) -> Outcome {
        if dst.is_broadcast() {
            Outcome::Broadcast { dev, route, src }
        } else if dst.is_multicast() {
            Outcome::Multicast { dev, route, src }
        } else {
            Outcome::Unicast {
                hops: vec![Hop {
                    dev,
                    gateway: None,
                    weight: 1,
                    src,
                    src_reason: SrcReason::Flow,
                    flags: Vec::new(),
                }],
                route,
            }
        }
    }

    /// The device holding `addr` (`__ip_dev_find`).
    fn dev_of_address(&self, addr: IpAddr) -> Option<String> {
        self.addresses
            .iter()
            .find(|i| i.addrs.iter().any(|a| a.local == addr))
            .map(|i| i.ifname.clone())
    }

    fn forwarding(&self, family: Family, lk: &mut Lookup) -> bool {
        let known = match family {
            Family::V4 => self.settings.ipv4_forwarding,
            Family::V6 => self.settings.ipv6_forwarding,
        };
        known.unwrap_or_else(|| {
            lk.assumptions
                .push(Assumption::ForwardingAssumed { family });
            true
        })
    }

    fn input_v4(&self, flow: &Flow, lk: &mut Lookup) -> Outcome {
        let (IpAddr::V4(dst), src) = (
            flow.dst,
            flow.src.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ) else {
            return Outcome::NoRoute;
        };
        let IpAddr::V4(s) = src else {
            return Outcome::NoRoute;
        };
        let iif = flow.iif.clone().unwrap_or_default();
        let localnet = self.settings.route_localnet.unwrap_or(false);
        if dst.is_multicast() {
            lk.assumptions.push(Assumption::MulticastMembership);
            return Outcome::Multicast {
                dev: iif,
                route: None,
                src: Some(src),
            };
        }
        if s.is_multicast() || s.is_broadcast() {
            return Outcome::Martian {
                reason: Martian::BadSource,
            };
        }
        if dst.is_broadcast() || (s.is_unspecified() && dst.is_unspecified()) {
            return Outcome::Broadcast {
                dev: "lo".to_string(),
                route: None,
                src: Some(src),
            };
        }
        if s.octets()[0] == 0 {
            return Outcome::Martian {
                reason: Martian::BadSource,
            };
        }
        if dst.octets()[0] == 0 {
            return Outcome::Martian {
                reason: Martian::ZeroDestination,
            };
        }
        if (dst.is_loopback() || s.is_loopback()) && !localnet {
            return Outcome::Martian {
                reason: Martian::Loopback,
            };
        }
        let mut key = Key::new(self, flow);
        key.src = Some(src);
        let forwarding = self.forwarding(Family::V4, lk);
        match self.walk_rules(&key, &mut lk.steps) {
            RulesResult::Route { route, hops } => match route.kind {
                RouteType::Broadcast => Outcome::Broadcast {
                    dev: "lo".to_string(),
                    route: Some(route),
                    src: Some(src),
                },
                RouteType::Local => {
                    if self.is_local_address(src) {
                        return Outcome::Martian {
                            reason: Martian::LocalSource,
                        };
                    }
                    Outcome::Local {
                        dev: "lo".to_string(),
                        route: Some(route),
                        src: Some(src),
                    }
                }
                _ if !forwarding => Outcome::ForwardingDisabled,
                RouteType::Unicast => {
                    if self.is_local_address(src) {
                        return Outcome::Martian {
                            reason: Martian::LocalSource,
                        };
                    }
                    let hops = self.hops(&route, &hops, &key, Some(src));
                    Outcome::Unicast {
                        hops,
                        route: Some(route),
                    }
                }
                _ => Outcome::Martian {
                    reason: Martian::BadDestinationType,
                },
            },
            _ if !forwarding => Outcome::ForwardingDisabled,
            other => Self::rules_failure(other),
        }
    }

    fn output_v6(&self, flow: &Flow, lk: &mut Lookup) -> Outcome {
        let IpAddr::V6(dst) = flow.dst else {
            return Outcome::NoRoute;
        };
        let mut key = Key::new(self, flow);
        key.src = flow.src.filter(|s| !s.is_unspecified());
        key.strict_oif = need_strict(dst) || (flow.oif.is_some() && key.src.is_none());
        let forwarding = self.forwarding(Family::V6, lk);
        match self.walk_rules(&key, &mut lk.steps) {
            RulesResult::Route { route, hops } => {
                if !forwarding && route.nexthops.iter().any(|n| n.gateway.is_some()) {
                    lk.assumptions.push(Assumption::Ipv6RouterReachability);
                }
                self.finish_v6(&route, &hops, &key, key.src, false)
            }
            other => Self::rules_failure(other),
        }
    }

    fn input_v6(&self, flow: &Flow, lk: &mut Lookup) -> Outcome {
        let IpAddr::V6(dst) = flow.dst else {
            return Outcome::NoRoute;
        };
        let mut key = Key::new(self, flow);
        key.src = Some(flow.src.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
        key.strict_oif = need_strict(dst);
        key.prefer_dev = flow.iif.as_deref();
        let forwarding = self.forwarding(Family::V6, lk);
        match self.walk_rules(&key, &mut lk.steps) {
            RulesResult::Route { route, hops } => {
                let out = self.finish_v6(&route, &hops, &key, key.src, true);
                if !forwarding && matches!(out, Outcome::Unicast { .. }) {
                    lk.assumptions.push(Assumption::Ipv6ForwardingOff);
                }
                out
            }
            other => Self::rules_failure(other),
        }
    }

    fn finish_v6(
        &self,
        route: &Route,
        hops: &[usize],
        key: &Key,
        src: Option<IpAddr>,
        input: bool,
    ) -> Outcome {
        let chosen: Vec<usize> = if key.oif.is_some() {
            hops.iter().take(1).copied().collect()
        } else {
            hops.to_vec()
        };
        let src_given = if input {
            src
        } else {
            src.filter(|s| !s.is_unspecified())
        };
        match route.kind {
            RouteType::Local | RouteType::Anycast => {
                let s = src_given
                    .or(route.prefsrc)
                    .or_else(|| self.select_v6(route.dev(), key.dst, key.oif).0);
                if route.kind == RouteType::Anycast {
                    Outcome::Anycast {
                        dev: "lo".to_string(),
                        route: route.clone(),
                        src: s,
                    }
                } else {
                    Outcome::Local {
                        dev: "lo".to_string(),
                        route: Some(route.clone()),
                        src: s,
                    }
                }
            }
            RouteType::Multicast => {
                let hop = self.hops(route, &chosen, key, src_given);
                Outcome::Multicast {
                    dev: hop.first().map(|h| h.dev.clone()).unwrap_or_default(),
                    route: Some(route.clone()),
                    src: hop.first().and_then(|h| h.src),
                }
            }
            _ => Outcome::Unicast {
                hops: self.hops(route, &chosen, key, src_given),
                route: Some(route.clone()),
            },
        }
    }
}

/// rt6_need_strict: multicast, link-local and loopback destinations must use the bound device.
fn need_strict(dst: Ipv6Addr) -> bool {
    dst.is_multicast() || dst.is_loopback() || (dst.segments()[0] & 0xffc0) == 0xfe80
}
