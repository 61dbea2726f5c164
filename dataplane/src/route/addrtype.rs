//! Address types (what `-m addrtype` matches) and reverse-path filtering (`rp_filter`).
//!
//! ```text
//!   addr_type(ip)          IPv4: inet_addr_type = 0/8 and 255.255.255.255 -> BROADCAST,
//!                          224/4 -> MULTICAST, else the type of the local-table route
//!                          (UNICAST when none, or when it is a reject route, as the kernel's
//!                          fib_table_lookup returns an error for those);
//!                          IPv6: a routing lookup (xt_addrtype's match_lookup_rt6)
//!   reverse_path(src, dst, iif, mode)   __fib_validate_source: look the source up as a
//!                          destination (iif lo); strict wants the arrival interface among
//!                          the route's devices, loose any unicast route
//! ```

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::flow::Flow;
use super::lookup::{Cause, Outcome, RuleStep};
use super::names::{RouteType, TableId};
use super::routes::Route;
use super::rpdb::{Key, RulesResult};
use super::state::RouteState;
use crate::packet::Family;

/// An address type, as `iptables -m addrtype --src-type/--dst-type` names them (`RTN_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AddrType {
    /// `UNSPEC`.
    Unspec,
    /// `UNICAST`.
    Unicast,
    /// `LOCAL`: an address of this host.
    Local,
    /// `BROADCAST`.
    Broadcast,
    /// `ANYCAST`.
    Anycast,
    /// `MULTICAST`.
    Multicast,
    /// `BLACKHOLE`.
    Blackhole,
    /// `UNREACHABLE`.
    Unreachable,
    /// `PROHIBIT`.
    Prohibit,
    /// `THROW`.
    Throw,
    /// `NAT`.
    Nat,
    /// `XRESOLVE`.
    Xresolve,
}

impl AddrType {
    /// Parses the name `iptables` prints (`LOCAL`, ...).
    pub fn parse(s: &str) -> Option<AddrType> {
        Some(match s {
            "UNSPEC" => AddrType::Unspec,
            "UNICAST" => AddrType::Unicast,
            "LOCAL" => AddrType::Local,
            "BROADCAST" => AddrType::Broadcast,
            "ANYCAST" => AddrType::Anycast,
            "MULTICAST" => AddrType::Multicast,
            "BLACKHOLE" => AddrType::Blackhole,
            "UNREACHABLE" => AddrType::Unreachable,
            "PROHIBIT" => AddrType::Prohibit,
            "THROW" => AddrType::Throw,
            "NAT" => AddrType::Nat,
            "XRESOLVE" => AddrType::Xresolve,
            _ => return None,
        })
    }

    fn of_route_type(t: &RouteType) -> AddrType {
        match t {
            RouteType::Unicast => AddrType::Unicast,
            RouteType::Local => AddrType::Local,
            RouteType::Broadcast => AddrType::Broadcast,
            RouteType::Anycast => AddrType::Anycast,
            RouteType::Multicast => AddrType::Multicast,
            RouteType::Blackhole => AddrType::Blackhole,
            RouteType::Unreachable => AddrType::Unreachable,
            RouteType::Prohibit => AddrType::Prohibit,
            RouteType::Throw => AddrType::Throw,
            RouteType::Nat => AddrType::Nat,
            RouteType::Xresolve => AddrType::Xresolve,
            RouteType::Other(_) => AddrType::Unspec,
        }
    }
}

impl fmt::Display for AddrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrType::Unspec => "UNSPEC",
            AddrType::Unicast => "UNICAST",
            AddrType::Local => "LOCAL",
            AddrType::Broadcast => "BROADCAST",
            AddrType::Anycast => "ANYCAST",
            AddrType::Multicast => "MULTICAST",
            AddrType::Blackhole => "BLACKHOLE",
            AddrType::Unreachable => "UNREACHABLE",
            AddrType::Prohibit => "PROHIBIT",
            AddrType::Throw => "THROW",
            AddrType::Nat => "NAT",
            AddrType::Xresolve => "XRESOLVE",
        })
    }
}

/// The reverse-path filter mode (`net.ipv4.conf.{all,IFACE}.rp_filter`; the kernel uses the
/// larger of the two values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpFilter {
    /// 0: no source validation (beyond the martian local-source check).
    Off,
    /// 1: strict (RFC 3704): the route back to the source must use the arrival interface.
    Strict,
    /// 2: loose: any route back to the source.
    Loose,
}

impl RpFilter {
    /// The mode for a sysctl value (anything above 2 behaves as loose).
    pub fn from_sysctl(value: u8) -> RpFilter {
        match value {
            0 => RpFilter::Off,
            1 => RpFilter::Strict,
            _ => RpFilter::Loose,
        }
    }
}

/// The verdict of the reverse-path check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum RpVerdict {
    /// The source is acceptable.
    Pass,
    /// The source is one of our addresses, or its route is not unicast (`EINVAL`, martian).
    Martian {
        /// Why.
        reason: String,
    },
    /// The reverse-path test failed (drop reason `IP_RPFILTER`; `EXDEV` "Invalid cross-device
    /// link" in the kernel, which `ip route get` reports as `EINVAL` since Linux 6.13 turned
    /// input route errors into drop reasons).
    Fail {
        /// Why.
        reason: String,
    },
}

/// The result of [`RouteState::reverse_path`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RpCheck {
    /// The verdict.
    pub verdict: RpVerdict,
    /// The route the reverse lookup found, if any.
    pub route: Option<Route>,
    /// The rules the reverse lookup went through.
    pub steps: Vec<RuleStep>,
}

impl RouteState {
    /// The address type of `addr` (`inet_addr_type` for IPv4; a routing lookup for IPv6).
    pub fn addr_type(&self, addr: IpAddr) -> AddrType {
        self.addr_type_on(addr, None)
    }

    /// The address type of `addr` as seen for device `dev` (`--limit-iface-in/out`):
    /// `inet_dev_addr_type`, which only reports the local-table type when its route uses `dev`.
    pub fn addr_type_on(&self, addr: IpAddr, dev: Option<&str>) -> AddrType {
        match addr {
            IpAddr::V4(a) => {
                if a.octets()[0] == 0 || a.is_broadcast() {
                    return AddrType::Broadcast;
                }
                if a.is_multicast() {
                    return AddrType::Multicast;
                }
                let flow = Flow::to(addr);
                let key = Key::new(self, &flow);
                let tl = self.table_lookup(&TableId::LOCAL, &key);
                match tl.result {
                    super::lookup::TableResult::Found { route, .. } => {
                        if dev.is_none() || route.dev() == dev {
                            AddrType::of_route_type(&route.kind)
                        } else {
                            AddrType::Unicast
                        }
                    }
                    _ => AddrType::Unicast,
                }
            }
            IpAddr::V6(a) => {
                if a.is_multicast() {
                    return AddrType::Multicast;
                }
                if a.is_unspecified() {
                    return AddrType::Unspec;
                }
                let mut flow = Flow::to(addr);
                flow.oif = dev.map(str::to_string);
                match self.lookup(&flow).outcome {
                    Outcome::Local { .. } => AddrType::Local,
                    Outcome::Anycast { .. } => AddrType::Anycast,
                    Outcome::Unicast { .. } | Outcome::Broadcast { .. } => AddrType::Unicast,
                    Outcome::Multicast { .. } => AddrType::Multicast,
                    _ => AddrType::Unreachable,
                }
            }
        }
    }

    /// Whether `-m addrtype --{src,dst}-type WANT` matches `addr` (`dev` for `--limit-iface-*`).
    ///
    /// IPv6 follows xt_addrtype's `match_type6`: UNICAST and MULTICAST come from the address
    /// itself; LOCAL, ANYCAST and UNREACHABLE from a routing lookup; PROHIBIT never matches.
    pub fn addrtype_matches(&self, addr: IpAddr, want: AddrType, dev: Option<&str>) -> bool {
        match addr {
            IpAddr::V4(_) => self.addr_type_on(addr, dev) == want,
            IpAddr::V6(a) => match want {
                AddrType::Multicast => a.is_multicast(),
                AddrType::Unicast => !a.is_multicast() && !a.is_unspecified(),
                AddrType::Unspec => a.is_unspecified(),
                AddrType::Local | AddrType::Anycast | AddrType::Unreachable => {
                    let t = self.addr_type_on(addr, dev);
                    t == want
                        || (want == AddrType::Local && dev.is_some() && self.v6_on_dev(addr, dev))
                }
                AddrType::Prohibit => false,
                _ => true,
            },
        }
    }

    fn v6_on_dev(&self, addr: IpAddr, dev: Option<&str>) -> bool {
        self.addresses
            .iter()
            .filter(|i| Some(i.ifname.as_str()) == dev)
            .flat_map(|i| &i.addrs)
            .any(|a| a.local == addr)
    }

    /// The reverse-path check of a received packet (`flow` with `src` and `iif`)
    /// (`fib_validate_source` / `__fib_validate_source`), for rp_filter mode `mode`.
    ///
    /// `out_dev` is the output device of the forward route (`FIB_RES_OIF`) for a forwarded
    /// packet, `None` for local delivery: the reverse lookup (addresses and ports swapped)
    /// is made as if the packet arrived on it (on `lo` when `None`), which matters for `iif`
    /// rules. The packet's mark takes part only when `src_valid_mark` is set.
    pub fn reverse_path(
        &self,
        flow: &Flow,
        out_dev: Option<&str>,
        mode: RpFilter,
        src_valid_mark: bool,
    ) -> RpCheck {
        let iif = flow.iif.as_deref().unwrap_or("lo");
        let Some(src) = flow.src else {
            return RpCheck {
                verdict: RpVerdict::Martian {
                    reason: "no source address".to_string(),
                },
                route: None,
                steps: Vec::new(),
            };
        };
        if mode == RpFilter::Off {
            let verdict = if self.is_local_address(src) {
                RpVerdict::Martian {
                    reason: format!("source {src} is a local address"),
                }
            } else {
                RpVerdict::Pass
            };
            return RpCheck {
                verdict,
                route: None,
                steps: Vec::new(),
            };
        }
        let reverse = Flow {
            family: flow.family,
            dst: src,
            src: Some(flow.dst),
            iif: out_dev.map(str::to_string),
            oif: None,
            mark: if src_valid_mark { flow.mark } else { 0 },
            proto: flow.proto,
            sport: flow.dport,
            dport: flow.sport,
            tos: flow.tos,
            uid: None,
        };
        let mut key = Key::new(self, &reverse);
        key.src = Some(flow.dst);
        let mut steps = Vec::new();
        let result = self.walk_rules(&key, &mut steps);
        let fail = |reason: String, route: Option<Route>, steps: Vec<RuleStep>| RpCheck {
            verdict: RpVerdict::Fail { reason },
            route,
            steps,
        };
        let (route, _) = match result {
            RulesResult::Route { route, hops } => (route, hops),
            RulesResult::Reject(cause) => {
                let what = match &cause {
                    Cause::Route(r) => format!("route `{r}`"),
                    Cause::Rule(r) => format!("rule `{}`", r.to_string().replace('\t', " ")),
                };
                return fail(format!("no route back to {src}: {what}"), None, steps);
            }
            RulesResult::NoRoute | RulesResult::NotModelled(_) => {
                return fail(format!("no route back to {src}"), None, steps);
            }
        };
        if route.kind != RouteType::Unicast {
            return RpCheck {
                verdict: RpVerdict::Martian {
                    reason: format!("the route back to {src} is of type {}", route.kind),
                },
                route: Some(route),
                steps,
            };
        }
        if route.nexthops.iter().any(|n| n.dev.as_deref() == Some(iif)) {
            return RpCheck {
                verdict: RpVerdict::Pass,
                route: Some(route),
                steps,
            };
        }
        let has_addr = self
            .addresses
            .iter()
            .filter(|i| i.ifname == iif)
            .flat_map(|i| &i.addrs)
            .any(|a| a.family == Family::V4 || flow.family == Family::V6);
        if !has_addr {
            return fail(format!("{iif} has no address"), Some(route), steps);
        }
        match mode {
            RpFilter::Strict => {
                let devs: Vec<&str> = route
                    .nexthops
                    .iter()
                    .filter_map(|n| n.dev.as_deref())
                    .collect();
                fail(
                    format!(
                        "strict: the route back to {src} leaves by {}, not {iif}",
                        devs.join(", ")
                    ),
                    Some(route),
                    steps,
                )
            }
            _ => RpCheck {
                verdict: RpVerdict::Pass,
                route: Some(route),
                steps,
            },
        }
    }
}
