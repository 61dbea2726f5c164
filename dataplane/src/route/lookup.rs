//! What a routing lookup answers: [`Lookup`] with its steps, [`Outcome`] and assumptions.
//!
//! ```text
//!   RouteState::lookup(&Flow)        (path.rs: input/output paths; rpdb.rs: the rule walk;
//!        |                             select.rs: per-table selection; source.rs: source)
//!        v
//!   Lookup { flow,
//!            steps: [RuleStep { rule, verdict: NoMatch{why} | Goto | Nop | Action
//!                                            | Lookup(TableLookup { candidates, result }) }],
//!            outcome: Unicast{hops} | Local | Broadcast | Multicast | Anycast | Blackhole
//!                     | Unreachable | Prohibit | NoRoute | ForwardingDisabled | Martian
//!                     | NotModelled,
//!            assumptions }
//! ```

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::flow::Flow;
use super::names::{NhFlag, RouteType, TableId};
use super::routes::Route;
use super::rule::{PortRange, Rule};
use super::select::Candidate;
use crate::packet::Family;

/// The result of [`RouteState::lookup`](super::RouteState::lookup): every rule considered, the outcome and what was
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
    /// A broadcast address: sent as a link broadcast (output) or delivered locally (input).
    Broadcast {
        /// The device (`lo` for a received broadcast, which is delivered locally).
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
        /// The source address.
        src: Option<IpAddr>,
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

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(g) = self.gateway {
            write!(f, "via {g} ")?;
        }
        write!(f, "dev {}", self.dev)?;
        if self.weight != 1 {
            write!(f, " weight {}", self.weight)?;
        }
        if let Some(s) = self.src {
            write!(f, " src {s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Martian {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Martian::SourceNotLocal => f.write_str("source address is not local"),
            Martian::BadSource => f.write_str("source is multicast, broadcast or 0/8"),
            Martian::LoopbackSource => f.write_str("127/8 source on a non-loopback device"),
            Martian::Loopback => f.write_str("127/8 address off loopback (route_localnet=0)"),
            Martian::LocalSource => f.write_str("received packet with a local source address"),
            Martian::ZeroDestination => f.write_str("0/8 destination"),
            Martian::BadDestinationType => f.write_str("destination route is not unicast"),
            Martian::OifDown => f.write_str("bound output device is down"),
            Martian::NoDevice(d) => write!(f, "no device {d}"),
        }
    }
}

/// One line: `unicast via 198.18.0.2 dev eth0 src 198.18.0.1`, `local dev lo src ..`,
/// `blackhole by route `..``, `no route`, ...; the errno follows in parentheses.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let src = |s: &Option<IpAddr>| s.map(|a| format!(" src {a}")).unwrap_or_default();
        match self {
            Outcome::Unicast { hops, .. } => {
                f.write_str("unicast ")?;
                for (i, h) in hops.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{h}")?;
                }
            }
            Outcome::Local { dev, src: s, .. } => write!(f, "local dev {dev}{}", src(s))?,
            Outcome::Broadcast { dev, src: s, .. } => write!(f, "broadcast dev {dev}{}", src(s))?,
            Outcome::Multicast { dev, src: s, .. } => write!(f, "multicast dev {dev}{}", src(s))?,
            Outcome::Anycast { dev, src: s, .. } => write!(f, "anycast dev {dev}{}", src(s))?,
            Outcome::Blackhole { cause } => write!(f, "blackhole by {cause}")?,
            Outcome::Unreachable { cause } => write!(f, "unreachable by {cause}")?,
            Outcome::Prohibit { cause } => write!(f, "prohibit by {cause}")?,
            Outcome::NoRoute => f.write_str("no route")?,
            Outcome::ForwardingDisabled => f.write_str("forwarding disabled")?,
            Outcome::Martian { reason } => write!(f, "martian: {reason}")?,
            Outcome::NotModelled { what } => write!(f, "not modelled: {what}")?,
        }
        if let Some(e) = self.errno() {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
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

    /// The route that decided, if any (reject routes included).
    pub fn route(&self) -> Option<&Route> {
        match self {
            Outcome::Unicast { route, .. }
            | Outcome::Local { route, .. }
            | Outcome::Broadcast { route, .. }
            | Outcome::Multicast { route, .. } => route.as_ref(),
            Outcome::Anycast { route, .. } => Some(route),
            Outcome::Blackhole {
                cause: Cause::Route(r),
            }
            | Outcome::Unreachable {
                cause: Cause::Route(r),
            }
            | Outcome::Prohibit {
                cause: Cause::Route(r),
            } => Some(r),
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
