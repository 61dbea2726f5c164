//! Route selection inside one table: longest prefix first, then the kernel's order among
//! routes of the same prefix, skipping unusable next hops.
//!
//! ```text
//!   (table, Key)  -->  candidates covering dst, longest prefix first
//!                        IPv4 (fib_table_lookup): per prefix in alias order (tos, metric);
//!                          reject types end the search; a route with no usable next hop
//!                          is passed over (backtracking to shorter prefixes)
//!                        IPv6 (fib6_table_lookup / rt6_select): per (dst, src) node, the
//!                          lowest metric group scored by device match and router preference,
//!                          then higher metrics, then the parent node
//!                 -->  TableLookup { candidates with verdicts, result }
//! ```

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::lookup::{TableLookup, TableResult};
use super::names::{NhFlag, RouteType, Scope, TableId};
use super::routes::{Gateway, Nexthop, Route};
use super::rpdb::Key;
use super::state::RouteState;
use crate::packet::Family;

/// A route the table lookup looked at, and what it made of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The route (it covers the destination).
    pub route: Route,
    /// Why it was or was not taken.
    pub verdict: CandidateVerdict,
}

/// Why a covering route was or was not taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum CandidateVerdict {
    /// The route decides the lookup.
    Chosen,
    /// `tos` on the route differs from the flow's.
    TosMismatch {
        /// The route's TOS.
        route_tos: u8,
        /// The flow's TOS.
        flow_tos: u8,
    },
    /// An IPv6 source-specific route (`from PREFIX`) whose prefix does not cover the source.
    SourcePrefix {
        /// The route's source prefix.
        from: IpNet,
    },
    /// Every next hop is unusable.
    NoUsableNexthop {
        /// Why, per next hop.
        skips: Vec<NexthopSkip>,
    },
    /// IPv6: another route of the same node scored higher (lower metric, bound device,
    /// router preference).
    Outscored,
}

/// Why a next hop cannot be used.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NexthopSkip {
    /// Flagged `dead` (its device went down).
    Dead {
        /// The device.
        dev: Option<String>,
    },
    /// The device is administratively down (the kernel would have marked the next hop dead).
    DeviceDown {
        /// The device.
        dev: String,
    },
    /// No carrier (`linkdown`) and `ignore_routes_with_linkdown` is set.
    Linkdown {
        /// The device.
        dev: String,
    },
    /// The lookup is bound to another output device.
    OifMismatch {
        /// The next hop's device.
        dev: Option<String>,
        /// The device the lookup is bound to.
        oif: String,
    },
}

fn covers(net: &IpNet, addr: &IpAddr) -> bool {
    net.contains(addr)
}

impl RouteState {
    /// Why `nh` of `route` cannot be used for `key`, or `None` if it can.
    pub(crate) fn nexthop_skip(
        &self,
        route: &Route,
        nh: &Nexthop,
        key: &Key,
    ) -> Option<NexthopSkip> {
        if nh.has(&NhFlag::Dead) {
            return Some(NexthopSkip::Dead {
                dev: nh.dev.clone(),
            });
        }
        // Local routes (scope host) outlive their device going down; everything else is
        // marked dead (fib_sync_down_dev skips next hops of scope "nowhere").
        let host_scope = route.scope() == Scope::HOST || route.kind == RouteType::Local;
        let link = nh.dev.as_deref().and_then(|d| self.link(d));
        let mut linkdown = nh.has(&NhFlag::Linkdown);
        if let Some(link) = link {
            if !link.is_up() && !host_scope && !link.is_loopback() {
                return Some(NexthopSkip::DeviceDown {
                    dev: link.ifname.clone(),
                });
            }
            linkdown |= !link.has_carrier() && !host_scope;
        }
        if linkdown && key.ignore_linkdown && !key.ignore_linkstate {
            return Some(NexthopSkip::Linkdown {
                dev: nh.dev.clone().unwrap_or_default(),
            });
        }
        if key.family == Family::V4
            && let Some(oif) = key.oif
            && nh.dev.as_deref() != Some(oif)
        {
            return Some(NexthopSkip::OifMismatch {
                dev: nh.dev.clone(),
                oif: oif.to_string(),
            });
        }
        None
    }

    /// Looks `key.dst` up in `table`.
    pub(crate) fn table_lookup(&self, table: &TableId, key: &Key) -> TableLookup {
        let mut covering: Vec<&Route> = self
            .routes
            .iter()
            .filter(|r| r.family == key.family && r.table == *table && covers(&r.dst, &key.dst))
            .collect();
        match key.family {
            Family::V4 => {
                // Longest prefix first; within a prefix the kernel's alias order (tos
                // descending, then metric), which is also the dump order.
                covering.sort_by(|a, b| {
                    b.dst
                        .prefix_len()
                        .cmp(&a.dst.prefix_len())
                        .then(b.tos.unwrap_or(0).cmp(&a.tos.unwrap_or(0)))
                        .then(a.metric().cmp(&b.metric()))
                });
                self.choose_v4(table, covering, key)
            }
            Family::V6 => {
                covering.sort_by(|a, b| {
                    b.dst
                        .prefix_len()
                        .cmp(&a.dst.prefix_len())
                        .then(src_len(b).cmp(&src_len(a)))
                        .then(a.metric().cmp(&b.metric()))
                });
                self.choose_v6(table, covering, key)
            }
        }
    }

    fn choose_v4(&self, table: &TableId, covering: Vec<&Route>, key: &Key) -> TableLookup {
        let mut candidates = Vec::new();
        for route in covering {
            if let Some(rt) = route.tos
                && rt != key.tos
            {
                candidates.push(Candidate {
                    route: route.clone(),
                    verdict: CandidateVerdict::TosMismatch {
                        route_tos: rt,
                        flow_tos: key.tos,
                    },
                });
                continue;
            }
            if let Some(result) = self.terminal_type(route) {
                candidates.push(Candidate {
                    route: route.clone(),
                    verdict: CandidateVerdict::Chosen,
                });
                return TableLookup {
                    table: table.clone(),
                    candidates,
                    result,
                };
            }
            let (usable, skips) = self.usable_hops(route, key);
            if usable.is_empty() {
                candidates.push(Candidate {
                    route: route.clone(),
                    verdict: CandidateVerdict::NoUsableNexthop { skips },
                });
                continue;
            }
            candidates.push(Candidate {
                route: route.clone(),
                verdict: CandidateVerdict::Chosen,
            });
            return TableLookup {
                table: table.clone(),
                candidates,
                result: TableResult::Found {
                    route: route.clone(),
                    hops: usable,
                },
            };
        }
        TableLookup {
            table: table.clone(),
            candidates,
            result: TableResult::NoMatch,
        }
    }

    /// For route types that end the table search without looking at next hops: the result.
    fn terminal_type(&self, route: &Route) -> Option<TableResult> {
        match &route.kind {
            RouteType::Blackhole | RouteType::Unreachable | RouteType::Prohibit => {
                Some(TableResult::Reject {
                    route: route.clone(),
                })
            }
            RouteType::Throw => Some(TableResult::Throw {
                route: route.clone(),
            }),
            RouteType::Unicast
            | RouteType::Local
            | RouteType::Broadcast
            | RouteType::Anycast
            | RouteType::Multicast => {
                let raw_gateway = route
                    .nexthops
                    .iter()
                    .any(|n| matches!(n.gateway, Some(Gateway::Raw(_))));
                raw_gateway.then(|| TableResult::NotModelled {
                    route: route.clone(),
                    what: "a gateway of a family other than inet/inet6".to_string(),
                })
            }
            RouteType::Nat | RouteType::Xresolve | RouteType::Other(_) => {
                Some(TableResult::NotModelled {
                    route: route.clone(),
                    what: format!("route type `{}`", route.kind),
                })
            }
        }
    }

    fn usable_hops(&self, route: &Route, key: &Key) -> (Vec<usize>, Vec<NexthopSkip>) {
        let mut usable = Vec::new();
        let mut skips = Vec::new();
        for (i, nh) in route.nexthops.iter().enumerate() {
            match self.nexthop_skip(route, nh, key) {
                None => usable.push(i),
                Some(s) => skips.push(s),
            }
        }
        (usable, skips)
    }

    fn choose_v6(&self, table: &TableId, covering: Vec<&Route>, key: &Key) -> TableLookup {
        let mut candidates = Vec::new();
        let src = key
            .src
            .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
        // Group into fib6 nodes: same destination prefix and same source prefix.
        let mut nodes: Vec<Vec<&Route>> = Vec::new();
        for route in covering {
            if let Some(from) = &route.src
                && !from.contains(&src)
            {
                candidates.push(Candidate {
                    route: route.clone(),
                    verdict: CandidateVerdict::SourcePrefix { from: *from },
                });
                continue;
            }
            match nodes.last_mut() {
                Some(node) if node[0].dst == route.dst && node[0].src == route.src => {
                    node.push(route)
                }
                _ => nodes.push(vec![route]),
            }
        }
        for node in nodes {
            // rt6_select: the lowest metric first, then every other route of the node.
            let lowest = node[0].metric();
            let (first, rest): (Vec<&Route>, Vec<&Route>) =
                node.iter().partition(|r| r.metric() == lowest);
            let mut chosen = self.best_v6(&first, key);
            if chosen.is_none() {
                chosen = self.best_v6(&rest, key);
            }
            match chosen {
                None => {
                    for route in node {
                        let (_, skips) = self.usable_hops_v6(route, key);
                        candidates.push(Candidate {
                            route: route.clone(),
                            verdict: CandidateVerdict::NoUsableNexthop { skips },
                        });
                    }
                }
                Some((winner, hops)) => {
                    for route in &node {
                        let verdict = if std::ptr::eq(*route, winner) {
                            CandidateVerdict::Chosen
                        } else {
                            let (usable, skips) = self.usable_hops_v6(route, key);
                            if usable.is_empty() {
                                CandidateVerdict::NoUsableNexthop { skips }
                            } else {
                                CandidateVerdict::Outscored
                            }
                        };
                        candidates.push(Candidate {
                            route: (*route).clone(),
                            verdict,
                        });
                    }
                    let result = self
                        .terminal_type(winner)
                        .unwrap_or_else(|| TableResult::Found {
                            route: winner.clone(),
                            hops,
                        });
                    return TableLookup {
                        table: table.clone(),
                        candidates,
                        result,
                    };
                }
            }
        }
        TableLookup {
            table: table.clone(),
            candidates,
            result: TableResult::NoMatch,
        }
    }

    /// IPv6 next hops that find_match accepts, with the reasons for the others.
    fn usable_hops_v6(&self, route: &Route, key: &Key) -> (Vec<usize>, Vec<NexthopSkip>) {
        let mut usable = Vec::new();
        let mut skips = Vec::new();
        for (i, nh) in route.nexthops.iter().enumerate() {
            if let Some(s) = self.nexthop_skip(route, nh, key) {
                skips.push(s);
                continue;
            }
            if key.strict_oif
                && let Some(oif) = key.oif.or(key.prefer_dev)
                && nh.dev.as_deref() != Some(oif)
            {
                skips.push(NexthopSkip::OifMismatch {
                    dev: nh.dev.clone(),
                    oif: oif.to_string(),
                });
                continue;
            }
            usable.push(i);
        }
        (usable, skips)
    }

    /// rt6_score_route over a group of routes: the highest score, first one on ties.
    fn best_v6<'r>(&self, group: &[&'r Route], key: &Key) -> Option<(&'r Route, Vec<usize>)> {
        let mut best: Option<(u32, &Route, Vec<usize>)> = None;
        for route in group {
            let (usable, _) = self.usable_hops_v6(route, key);
            let Some(&first) = usable.first() else {
                continue;
            };
            let dev = route.nexthops[first].dev.as_deref();
            let bound = key.oif.or(key.prefer_dev);
            let mut score = match bound {
                None => 2,
                Some(b) if dev == Some(b) => 2,
                Some(_) => 0,
            };
            score |= router_pref(route) << 2;
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, route, usable));
            }
        }
        best.map(|(_, r, hops)| (r, hops))
    }
}

/// IPV6_DECODE_PREF of the route's `pref`: low 1, medium 2, high 3.
fn router_pref(route: &Route) -> u32 {
    match route.pref.as_deref() {
        Some("high") => 3,
        Some("low") => 1,
        _ => 2,
    }
}

fn src_len(r: &Route) -> u8 {
    r.src.map(|s| s.prefix_len()).unwrap_or(0)
}
