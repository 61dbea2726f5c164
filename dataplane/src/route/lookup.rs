//! The routing decision for a [`Flow`], as `ip route get` computes it, with its reasons.
//!
//! ```text
//!   Flow ──> pre-checks (martian source/destination, bound device)        ip_route_output_key /
//!        ──> rules by priority: selector match? ──no──> next rule          ip_route_input_slow
//!                 │ yes                                                   (IPv6: ip6_route_output /
//!                 ├─ goto N / nop ──> continue                             ip6_route_input)
//!                 ├─ blackhole / unreachable / prohibit ──> Outcome
//!                 └─ lookup TABLE ──> select.rs (longest prefix, usable next hops)
//!                        ├─ no route / throw / suppressed ──> next rule
//!                        └─ route ──> Outcome { Unicast | Local | Broadcast | .. | reject }
//!        ──> source address (source.rs) and multipath next hops
//!   Lookup { flow, steps: [RuleStep { rule, verdict }], outcome, assumptions }
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Serialize;

use super::flow::Flow;
use super::names::{NhFlag, RouteType, Scope, TableId};
use super::routes::Route;
use super::rule::{PortRange, Rule, RuleAction};
use super::select::Candidate;
use super::state::RouteState;
use crate::packet::Family;

/// The result of [`RouteState::lookup`]: every rule considered, the outcome and what was
/// assumed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lookup {
    /// The flow looked up.
    pub flow: Flow,
    /// Policy rules in the order they were considered (a `goto` skips rules, which are not
    /// listed).
    pub steps: Vec<RuleStep>,
    /// Where the packet goes, or why it does not.
    pub outcome: Outcome,
    /// What the lookup could not know and assumed, or caveats about the result.
    pub assumptions: Vec<Assumption>,
}

impl Lookup {
    /// The step of the rule that decided the lookup (the last one considered).
    pub fn deciding_step(&self) -> Option<&RuleStep> {
        self.steps.last()
    }

    /// The table whose route decided the lookup.
    pub fn table(&self) -> Option<&TableId> {
        match &self.deciding_step()?.verdict {
            RuleVerdict::Lookup(t) => Some(&t.table),
            _ => None,
        }
    }
}

/// One policy rule considered by the lookup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStep {
    /// The rule.
    pub rule: Rule,
    /// What it did.
    pub verdict: RuleVerdict,
}

/// What a rule did for the flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum RuleVerdict {
    /// The selector did not match.
    NoMatch {
        /// The first selector that failed (or `Inverted` for a `not` rule that matched).
        why: Mismatch,
    },
    /// `goto`: continue at the rule with that priority (if `resolved`), else with the next rule.
    Goto {
        /// The target priority.
        target: u32,
        /// Whether a rule with exactly that priority exists.
        resolved: bool,
    },
    /// `nop`: continue with the next rule.
    Nop,
    /// A table was looked up.
    Lookup(Box<TableLookup>),
    /// The rule's action (blackhole, unreachable, prohibit) ended the lookup.
    Action,
    /// The rule has a selector or action this crate does not model; the lookup stops here.
    NotModelled {
        /// What is not modelled.
        what: String,
    },
}

/// Why a rule's selector did not match.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "selector", rename_all = "snake_case")]
pub enum Mismatch {
    /// `from PREFIX`: the source is outside (or unknown: the lookup has no source yet).
    From {
        /// The rule's prefix.
        want: IpNet,
        /// The flow's source.
        got: Option<IpAddr>,
    },
    /// `to PREFIX`.
    To {
        /// The rule's prefix.
        want: IpNet,
    },
    /// `tos`.
    Tos {
        /// The rule's TOS.
        want: u8,
        /// The flow's TOS.
        got: u8,
    },
    /// `fwmark MARK/MASK`.
    Fwmark {
        /// The rule's mark.
        mark: u32,
        /// The rule's mask.
        mask: u32,
        /// The flow's mark.
        got: u32,
    },
    /// `iif DEV` (a locally sent packet has `iif lo`).
    Iif {
        /// The rule's device.
        want: String,
        /// The flow's input device (`lo` for local output).
        got: String,
    },
    /// `oif DEV` (only lookups bound to a device have one).
    Oif {
        /// The rule's device.
        want: String,
        /// The device the lookup is bound to.
        got: Option<String>,
    },
    /// The rule's `iif`/`oif` device does not exist (`[detached]`): never matches.
    Detached {
        /// The missing device.
        dev: String,
    },
    /// `l3mdev`: neither device of the flow is a VRF or enslaved to one.
    L3mdev,
    /// `uidrange`.
    Uid {
        /// The rule's range.
        want: (u32, u32),
        /// The flow's UID.
        got: u32,
    },
    /// `ipproto`.
    IpProto {
        /// The rule's protocol number.
        want: u8,
        /// The flow's protocol number (0 when unset).
        got: u8,
    },
    /// `sport`.
    Sport {
        /// The rule's range.
        want: PortRange,
        /// The flow's port (0 when unset).
        got: u16,
    },
    /// `dport`.
    Dport {
        /// The rule's range.
        want: PortRange,
        /// The flow's port (0 when unset).
        got: u16,
    },
    /// `not`: every selector matched, so the inverted rule does not.
    Inverted,
}

/// A table lookup made for a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableLookup {
    /// The table.
    pub table: TableId,
    /// Covering routes examined, in the kernel's order, with what was made of each.
    pub candidates: Vec<Candidate>,
    /// What the table gave.
    pub result: TableResult,
}

/// What a table lookup gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum TableResult {
    /// No usable route covers the destination: continue with the next rule.
    NoMatch,
    /// A route with usable next hops (their indexes in `route.nexthops`).
    Found {
        /// The route.
        route: Route,
        /// Indexes of the usable next hops.
        hops: Vec<usize>,
    },
    /// A `throw` route: continue with the next rule.
    Throw {
        /// The route.
        route: Route,
    },
    /// A blackhole, unreachable or prohibit route: the lookup ends with its error.
    Reject {
        /// The route.
        route: Route,
    },
    /// The rule's `suppress_prefixlength` / `suppress_ifgroup` refused the route: continue.
    Suppressed {
        /// The refused route.
        route: Route,
        /// Why.
        why: Suppression,
    },
    /// A route this crate cannot evaluate (unknown type, gateway family): the lookup stops.
    NotModelled {
        /// The route.
        route: Route,
        /// What is not modelled.
        what: String,
    },
}

/// Why a rule's suppressor refused a route.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Suppression {
    /// The route's prefix length is `<= suppress_prefixlength`.
    Prefixlen {
        /// The route's prefix length.
        len: u8,
        /// The rule's limit.
        max: u8,
    },
    /// The route's device is in the `suppress_ifgroup` group.
    Ifgroup {
        /// The device.
        dev: String,
        /// The group.
        group: String,
    },
}

/// What sent a packet nowhere: a route or a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A route of type blackhole, unreachable or prohibit.
    Route(Route),
    /// A rule with that action.
    Rule(Rule),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Route(r) => write!(f, "route `{r}`"),
            Cause::Rule(r) => write!(f, "rule `{}`", r.to_string().replace('\t', " ")),
        }
    }
}

/// One next hop of a unicast result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    /// Output device.
    pub dev: String,
    /// Gateway; `None` when the destination is directly attached.
    pub gateway: Option<IpAddr>,
    /// Multipath weight (1 for a single path).
    pub weight: u16,
    /// Source address the kernel uses on this path.
    pub src: Option<IpAddr>,
    /// How the source address was chosen.
    pub src_reason: SrcReason,
    /// Next-hop flags (`onlink`, `linkdown`, ...).
    pub flags: Vec<NhFlag>,
}

/// How the source address was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum SrcReason {
    /// Given by the flow (`from`), or the packet already had one (forwarding).
    Flow,
    /// The route's preferred source (`src` / `prefsrc`).
    Prefsrc,
    /// The destination itself (a local route without `prefsrc`).
    Destination,
    /// IPv4 `inet_select_addr`: the first primary address of the device with a scope no
    /// narrower than the route's, preferring one whose subnet holds the gateway/destination.
    DeviceAddress {
        /// The device whose address was taken.
        dev: String,
        /// Whether its subnet holds the gateway (or destination).
        in_subnet: bool,
    },
    /// IPv4 `inet_select_addr` fallback: no suitable address on the device, so the first
    /// primary non-link-scope address of another device (in interface order).
    OtherDevice {
        /// The device whose address was taken.
        dev: String,
    },
    /// IPv6 `ipv6_dev_get_saddr` (RFC 6724 section 5): the rule that decided.
    Rfc6724 {
        /// The device the address is on.
        dev: String,
        /// The deciding rule (`same address`, `scope`, `preferred`, `outgoing interface`,
        /// `label`, `public`, `longest prefix`, `first`).
        rule: String,
    },
    /// No usable address.
    None,
}

/// Why a flow is invalid before or after routing (the kernel's martian checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Martian {
    /// A local sender used a source that is not a local address (`ENETUNREACH`).
    SourceNotLocal,
    /// Source is multicast, limited broadcast or 0.0.0.0 (`EINVAL`).
    BadSource,
    /// A 127/8 source leaving on a non-loopback device (`EINVAL`).
    LoopbackSource,
    /// A 127/8 destination or source on a non-loopback input without `route_localnet`.
    Loopback,
    /// A received packet whose source is one of our own addresses (`EINVAL`).
    LocalSource,
    /// A 0/8 destination (`EINVAL`).
    ZeroDestination,
    /// A received packet whose route is not unicast, local or broadcast (`EINVAL`).
    BadDestinationType,
    /// The bound output device is down (`ENETUNREACH`).
    OifDown,
    /// The named device does not exist (`ENODEV`).
    NoDevice(String),
}

/// Where the packet goes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Sent (or forwarded) out of one or more next hops. Multipath routes list every usable
    /// next hop with its weight: the kernel hashes each flow onto one of them.
    Unicast {
        /// The next hops.
        hops: Vec<Hop>,
        /// The route; `None` when a device-bound lookup found no route and the kernel
        /// assumed the destination on link.
        route: Option<Route>,
    },
    /// Delivered to this host (a `local` route: dev `lo`).
    Local {
        /// The delivering device (`lo`).
        dev: String,
        /// The route (absent for 0.0.0.0, which the kernel maps to loopback itself).
        route: Option<Route>,
        /// The source address (chosen for local output).
        src: Option<IpAddr>,
    },
    /// A broadcast address: delivered locally and sent as a link broadcast.
    Broadcast {
        /// The device.
        dev: String,
        /// The route, if one matched (limited broadcast needs none).
        route: Option<Route>,
        /// The source address.
        src: Option<IpAddr>,
    },
    /// A multicast destination.
    Multicast {
        /// The device.
        dev: String,
        /// The route, if one matched.
        route: Option<Route>,
        /// The source address.
        src: Option<IpAddr>,
    },
    /// An anycast address of this host (IPv6), delivered locally.
    Anycast {
        /// The device.
        dev: String,
        /// The route.
        route: Route,
    },
    /// Dropped silently by a blackhole route or rule (`EINVAL` to a local sender).
    Blackhole {
        /// The route or rule.
        cause: Cause,
    },
    /// Unreachable route (`EHOSTUNREACH`, ICMP host unreachable) or rule (`ENETUNREACH`).
    Unreachable {
        /// The route or rule.
        cause: Cause,
    },
    /// Prohibit route or rule (`EACCES`, ICMP administratively prohibited).
    Prohibit {
        /// The route or rule.
        cause: Cause,
    },
    /// No rule produced a route (no match, or only `throw`): `ENETUNREACH`.
    NoRoute,
    /// The received packet would be forwarded but IPv4 forwarding is off (`EHOSTUNREACH`).
    ForwardingDisabled,
    /// The kernel's sanity checks reject the flow.
    Martian {
        /// Which check.
        reason: Martian,
    },
    /// Something this crate does not model decided the lookup.
    NotModelled {
        /// What.
        what: String,
    },
}

/// An errno `ip route get` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Errno {
    /// `ENETUNREACH`: "Network is unreachable".
    Enetunreach,
    /// `EHOSTUNREACH`: "No route to host".
    Ehostunreach,
    /// `EACCES`: "Permission denied".
    Eacces,
    /// `EINVAL`: "Invalid argument".
    Einval,
    /// `ENODEV`: "No such device".
    Enodev,
}

impl Errno {
    /// The text `strerror` gives (what `ip` prints after `RTNETLINK answers:`).
    pub fn message(self) -> &'static str {
        match self {
            Errno::Enetunreach => "Network is unreachable",
            Errno::Ehostunreach => "No route to host",
            Errno::Eacces => "Permission denied",
            Errno::Einval => "Invalid argument",
            Errno::Enodev => "No such device",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl Outcome {
    /// The error `ip route get` would report, or `None` if it prints a route.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Outcome::Blackhole { .. } => Some(Errno::Einval),
            Outcome::Unreachable {
                cause: Cause::Route(_),
            } => Some(Errno::Ehostunreach),
            Outcome::Unreachable {
                cause: Cause::Rule(_),
            } => Some(Errno::Enetunreach),
            Outcome::Prohibit { .. } => Some(Errno::Eacces),
            Outcome::NoRoute => Some(Errno::Enetunreach),
            Outcome::ForwardingDisabled => Some(Errno::Ehostunreach),
            Outcome::Martian { reason } => Some(match reason {
                Martian::SourceNotLocal | Martian::OifDown => Errno::Enetunreach,
                Martian::NoDevice(_) => Errno::Enodev,
                _ => Errno::Einval,
            }),
            _ => None,
        }
    }

    /// The route type word `ip route get` prints (`unicast`, `local`, ...), if a route results.
    pub fn route_type(&self) -> Option<RouteType> {
        match self {
            Outcome::Unicast { .. } => Some(RouteType::Unicast),
            Outcome::Local { .. } => Some(RouteType::Local),
            Outcome::Broadcast { .. } => Some(RouteType::Broadcast),
            Outcome::Multicast { .. } => Some(RouteType::Multicast),
            Outcome::Anycast { .. } => Some(RouteType::Anycast),
            _ => None,
        }
    }
}

/// Something the lookup could not know, or a caveat about its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "assumption", rename_all = "snake_case")]
pub enum Assumption {
    /// Several next hops: the kernel hashes the flow onto one (fib_multipath_hash_policy);
    /// all are reported.
    Multipath {
        /// How many usable next hops.
        hops: usize,
    },
    /// The forwarding sysctl is unknown; forwarding was assumed on.
    ForwardingAssumed {
        /// Family.
        family: Family,
    },
    /// IPv6 forwarding is off: `ip -6 route get` finds this route, but ip6_forward drops
    /// the packet.
    Ipv6ForwardingOff,
    /// IPv6 with forwarding off prefers routers whose neighbour entry is reachable; neighbour
    /// state is not modelled.
    Ipv6RouterReachability,
    /// Several default routes in the table: the kernel may skip a gateway whose neighbour
    /// entry failed (fib_select_default); the first is reported.
    SeveralDefaultRoutes,
    /// The UID of the flow is unknown; 0 was used for `uidrange` rules.
    UidAssumedRoot,
    /// Multicast delivery depends on group membership, which is not modelled.
    MulticastMembership,
}

impl fmt::Display for Assumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Assumption::Multipath { hops } => write!(
                f,
                "multipath: the kernel hashes each flow onto one of {hops} next hops; all are listed"
            ),
            Assumption::ForwardingAssumed { family } => {
                write!(f, "{family} forwarding sysctl unknown: assumed enabled")
            }
            Assumption::Ipv6ForwardingOff => f.write_str(
                "net.ipv6.conf.all.forwarding is 0: the route exists but ip6_forward drops the packet",
            ),
            Assumption::Ipv6RouterReachability => f.write_str(
                "IPv6 router selection with forwarding off depends on neighbour reachability (not modelled)",
            ),
            Assumption::SeveralDefaultRoutes => f.write_str(
                "several default routes: the kernel may pick another one if this gateway's neighbour failed",
            ),
            Assumption::UidAssumedRoot => f.write_str("socket UID unknown: uidrange rules see UID 0"),
            Assumption::MulticastMembership => {
                f.write_str("multicast group membership is not modelled")
            }
        }
    }
}

/// The keys of one FIB lookup (the kernel's flowi after the pre-checks).
#[derive(Debug, Clone)]
pub(crate) struct Key<'a> {
    pub(crate) family: Family,
    pub(crate) dst: IpAddr,
    pub(crate) src: Option<IpAddr>,
    /// The input device as rules see it (`lo` for local output).
    pub(crate) iif: &'a str,
    pub(crate) oif: Option<&'a str>,
    pub(crate) mark: u32,
    pub(crate) tos: u8,
    pub(crate) proto: u8,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) uid: u32,
    /// IPv6 `RT6_LOOKUP_F_IFACE`: routes must use the bound device.
    pub(crate) strict_oif: bool,
    /// IPv6 input: routes through this device score higher (rt6_score_route).
    pub(crate) prefer_dev: Option<&'a str>,
    pub(crate) ignore_linkdown: bool,
    /// `FIB_LOOKUP_IGNORE_LINKSTATE` (the second rp_filter lookup).
    pub(crate) ignore_linkstate: bool,
}

impl<'a> Key<'a> {
    pub(crate) fn new(state: &RouteState, flow: &'a Flow) -> Key<'a> {
        Key {
            family: flow.family,
            dst: flow.dst,
            src: flow.src,
            iif: flow.iif.as_deref().unwrap_or("lo"),
            oif: flow.oif.as_deref(),
            mark: flow.mark,
            tos: flow.tos,
            proto: flow.proto.map(|p| p.number()).unwrap_or(0),
            sport: flow.sport.unwrap_or(0),
            dport: flow.dport.unwrap_or(0),
            uid: flow.uid.unwrap_or(0),
            strict_oif: false,
            prefer_dev: None,
            ignore_linkdown: state.settings.ignore_routes_with_linkdown.unwrap_or(false),
            ignore_linkstate: false,
        }
    }
}

/// What walking the rules gave.
#[derive(Debug, Clone)]
pub(crate) enum RulesResult {
    Route { route: Route, hops: Vec<usize> },
    Reject(Cause),
    NoRoute,
    NotModelled(String),
}

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

    /// Walks the rules of `key.family` (fib_rules_lookup), recording each step.
    pub(crate) fn walk_rules(&self, key: &Key, steps: &mut Vec<RuleStep>) -> RulesResult {
        let mut rules: Vec<&Rule> = self.rules(key.family).collect();
        rules.sort_by_key(|r| r.priority);
        let mut i = 0;
        while i < rules.len() {
            let rule = rules[i];
            i += 1;
            let unknown = rule.unknown_selectors();
            if !unknown.is_empty() {
                steps.push(RuleStep {
                    rule: rule.clone(),
                    verdict: RuleVerdict::NotModelled {
                        what: format!("selector `{}`", unknown.join("`, `")),
                    },
                });
                return RulesResult::NotModelled(format!(
                    "rule `{}` has selector `{}`",
                    rule.to_string().replace('\t', " "),
                    unknown.join("`, `")
                ));
            }
            let l3_table = if rule.l3mdev {
                self.l3mdev_table(key)
            } else {
                None
            };
            let matched = match self.rule_mismatch(rule, key, l3_table.is_some()) {
                Some(why) if !rule.not => Err(why),
                Some(_) => Ok(()),
                None if rule.not => Err(Mismatch::Inverted),
                None => Ok(()),
            };
            if let Err(why) = matched {
                steps.push(RuleStep {
                    rule: rule.clone(),
                    verdict: RuleVerdict::NoMatch { why },
                });
                continue;
            }
            match &rule.action {
                RuleAction::Goto(target) => {
                    let at = rules
                        .iter()
                        .position(|r| r.priority == *target)
                        .filter(|&j| j >= i);
                    steps.push(RuleStep {
                        rule: rule.clone(),
                        verdict: RuleVerdict::Goto {
                            target: *target,
                            resolved: at.is_some(),
                        },
                    });
                    if let Some(j) = at {
                        i = j;
                    }
                }
                RuleAction::Nop => steps.push(RuleStep {
                    rule: rule.clone(),
                    verdict: RuleVerdict::Nop,
                }),
                RuleAction::Blackhole | RuleAction::Unreachable | RuleAction::Prohibit => {
                    steps.push(RuleStep {
                        rule: rule.clone(),
                        verdict: RuleVerdict::Action,
                    });
                    return RulesResult::Reject(Cause::Rule(rule.clone()));
                }
                RuleAction::Other(a) => {
                    steps.push(RuleStep {
                        rule: rule.clone(),
                        verdict: RuleVerdict::NotModelled {
                            what: format!("action `{a}`"),
                        },
                    });
                    return RulesResult::NotModelled(format!("rule action `{a}`"));
                }
                RuleAction::Table(t) => {
                    let table = match l3_table {
                        Some(vrf) if rule.l3mdev && *t == TableId::UNSPEC => TableId::Id(vrf),
                        _ => t.clone(),
                    };
                    let mut tl = self.table_lookup(&table, key);
                    if let TableResult::Found { route, .. } = &tl.result
                        && let Some(why) = self.suppressed(rule, route)
                    {
                        tl.result = TableResult::Suppressed {
                            route: route.clone(),
                            why,
                        };
                    }
                    let result = match &tl.result {
                        TableResult::Found { route, hops } => Some(RulesResult::Route {
                            route: route.clone(),
                            hops: hops.clone(),
                        }),
                        TableResult::Reject { route } => {
                            Some(RulesResult::Reject(Cause::Route(route.clone())))
                        }
                        TableResult::NotModelled { what, .. } => {
                            Some(RulesResult::NotModelled(what.clone()))
                        }
                        TableResult::NoMatch
                        | TableResult::Throw { .. }
                        | TableResult::Suppressed { .. } => None,
                    };
                    steps.push(RuleStep {
                        rule: rule.clone(),
                        verdict: RuleVerdict::Lookup(Box::new(tl)),
                    });
                    if let Some(r) = result {
                        return r;
                    }
                }
            }
        }
        RulesResult::NoRoute
    }

    /// fib_rule_match + fib4/6_rule_match: the first selector that fails, if any.
    fn rule_mismatch(&self, rule: &Rule, key: &Key, l3_ok: bool) -> Option<Mismatch> {
        if let Some(dev) = &rule.iif {
            if rule.iif_detached {
                return Some(Mismatch::Detached { dev: dev.clone() });
            }
            if dev != key.iif {
                return Some(Mismatch::Iif {
                    want: dev.clone(),
                    got: key.iif.to_string(),
                });
            }
        }
        if let Some(dev) = &rule.oif {
            if rule.oif_detached {
                return Some(Mismatch::Detached { dev: dev.clone() });
            }
            if Some(dev.as_str()) != key.oif {
                return Some(Mismatch::Oif {
                    want: dev.clone(),
                    got: key.oif.map(str::to_string),
                });
            }
        }
        if rule.fwmark.is_some() || rule.fwmask.is_some() {
            let (mark, mask) = (rule.fwmark.unwrap_or(0), rule.fwmask());
            if (mark ^ key.mark) & mask != 0 {
                return Some(Mismatch::Fwmark {
                    mark,
                    mask,
                    got: key.mark,
                });
            }
        }
        if rule.l3mdev && !l3_ok {
            return Some(Mismatch::L3mdev);
        }
        if let Some((a, b)) = rule.uidrange
            && !(a..=b).contains(&key.uid)
        {
            return Some(Mismatch::Uid {
                want: (a, b),
                got: key.uid,
            });
        }
        if let Some(want) = &rule.src {
            // IPv6 rules with a source prefix only match lookups that carry a source
            // (RT6_LOOKUP_F_HAS_SADDR); IPv4 compares 0.0.0.0 when there is none.
            let got = key.src.or(match key.family {
                Family::V4 => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                Family::V6 => None,
            });
            if !got.is_some_and(|s| want.contains(&s)) {
                return Some(Mismatch::From {
                    want: *want,
                    got: key.src,
                });
            }
        }
        if let Some(want) = &rule.dst
            && !want.contains(&key.dst)
        {
            return Some(Mismatch::To { want: *want });
        }
        if let Some(t) = rule.tos
            && t & 0xfc != key.tos & 0xfc
        {
            return Some(Mismatch::Tos {
                want: t,
                got: key.tos,
            });
        }
        if let Some(p) = rule.ipproto
            && p != key.proto
        {
            return Some(Mismatch::IpProto {
                want: p,
                got: key.proto,
            });
        }
        if let Some(r) = rule.sport
            && !r.contains(key.sport)
        {
            return Some(Mismatch::Sport {
                want: r,
                got: key.sport,
            });
        }
        if let Some(r) = rule.dport
            && !r.contains(key.dport)
        {
            return Some(Mismatch::Dport {
                want: r,
                got: key.dport,
            });
        }
        None
    }

    /// The VRF table of the flow's output or input device (l3mdev_fib_rule_match).
    fn l3mdev_table(&self, key: &Key) -> Option<u32> {
        let vrf_of = |dev: &str| {
            let link = self.link(dev)?;
            link.vrf_table()
                .or_else(|| self.link(link.master.as_deref()?)?.vrf_table())
        };
        key.oif.and_then(vrf_of).or_else(|| vrf_of(key.iif))
    }

    /// fib4_rule_suppress / fib6_rule_suppress.
    fn suppressed(&self, rule: &Rule, route: &Route) -> Option<Suppression> {
        if let Some(max) = rule.suppress_prefixlen
            && route.dst.prefix_len() <= max
        {
            return Some(Suppression::Prefixlen {
                len: route.dst.prefix_len(),
                max,
            });
        }
        if let Some(group) = &rule.suppress_ifgroup {
            let dev = route.dev()?;
            let link = self.link(dev)?;
            let want = match group.as_str() {
                "default" => Some(0),
                g => g.parse::<u32>().ok(),
            };
            let same = match want {
                Some(n) => link.group_id() == Some(n),
                None => link.group.as_deref() == Some(group.as_str()),
            };
            if same {
                return Some(Suppression::Ifgroup {
                    dev: dev.to_string(),
                    group: group.clone(),
                });
            }
        }
        None
    }

    /// The outcome for a reject cause.
    pub(crate) fn reject_outcome(cause: Cause) -> Outcome {
        let kind = match &cause {
            Cause::Route(r) => match r.kind {
                RouteType::Blackhole => RuleAction::Blackhole,
                RouteType::Prohibit => RuleAction::Prohibit,
                _ => RuleAction::Unreachable,
            },
            Cause::Rule(r) => r.action.clone(),
        };
        match kind {
            RuleAction::Blackhole => Outcome::Blackhole { cause },
            RuleAction::Prohibit => Outcome::Prohibit { cause },
            _ => Outcome::Unreachable { cause },
        }
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
        if hops
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

    pub(crate) fn rules_failure(r: RulesResult) -> Outcome {
        match r {
            RulesResult::Reject(cause) => Self::reject_outcome(cause),
            RulesResult::NotModelled(what) => Outcome::NotModelled { what },
            RulesResult::NoRoute | RulesResult::Route { .. } => Outcome::NoRoute,
        }
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
                dev: iif,
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
                    dev: iif,
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
