//! The packet tracer: `trace(&NodeState, &Packet) -> Trace`, every way a packet can go through
//! one node's netfilter and routing, as data with reasons.
//!
//! The walk follows the kernel's hook order (IPv4 and IPv6 alike; priorities are
//! `NF_IP_PRI_*`):
//!
//! ```text
//!  arriving on iif                                                  sent by a local process
//!        |                                                                  |
//!   PREROUTING: raw(-300) conntrack(-200) mangle(-150) nat(-100, NEW)    routing decision
//!        |                                                             (output lookup, source
//!   routing decision: input lookup (iif, mark, DNATed dst)             address selection)
//!     rp_filter (max(all, iif)), martians, forwarding (per iif)             |
//!        |                          |                              OUTPUT: raw conntrack mangle
//!      local                     forward                             [mark/addr changed: re-route]
//!        |                          |                                nat(-100) [dst changed: re-route]
//!   INPUT: mangle filter      MTU check (DF) -> PKT_TOO_BIG          IPVS(-98) filter security
//!     security IPVS(99)       FORWARD: mangle filter security              |
//!     nat(100)                      |                                      |
//!        |                          |                                      |
//!    Delivered                      +------------> POSTROUTING: mangle nat(100, SNAT/MASQUERADE)
//!        ^                                                   |
//!        |                                          local route? --yes--> loopback through lo:
//!        |                                                   |            raw + mangle PREROUTING
//!        |                                                   no           (conntrack entry and NAT
//!        |                                                   |             kept: no lookup, no nat),
//!        +-------------------------------------------------- | ---------- INPUT hooks
//!                                                        Forwarded { out dev, next hop }
//! ```
//! IPVS (when the node has virtual servers) schedules a new connection to a VIP this host
//! owns at INPUT, or a locally sent one at OUTPUT: every real server forks the path with its
//! scheduler share; masquerading servers DNAT the packet, which IPVS then sends on itself: a
//! route to the server, the whole OUTPUT hook again, POSTROUTING (see `ipvs.rs`).
//!
//! Netfilter programs are iptables tables per back end (`iptables-legacy` and `iptables-nft`
//! both run when both hold rules: an assumption orders them) and the base chains of native
//! nftables tables (`ip`, `ip6`, `inet`), each at its hook and priority; at equal priority
//! the chain registered last runs first (`nf_hook_entries_grow`), registration order read from
//! the nft dump. nat-type chains and iptables nat tables run together from the one NAT hook in
//! their own priority order. Tables iptables-nft made are walked once, from the iptables-nft
//! dump. nft chains follow `nft_do_chain`: jump/goto/return, verdict maps and set lookups
//! (`ip daddr . meta l4proto . th dport vmap @service-ips`), `numgen random mod N` forking
//! every branch with its share, `meta mark set`, NAT, `reject`, counters and logs as steps,
//! the base chain's policy at its end. iptables chains follow `ipt_do_table`: jumps, gotos, RETURN, policies,
//! the implicit return of user chains, marks and connection marks, NAT targets rewriting the
//! packet and the connection's reply tuple, REJECT with its ICMP or RST, LOG and counter-only
//! rules as steps without effect, NOTRACK / CT. A `statistic` match forks the path (every
//! endpoint with its probability, as kube-proxy's test tracer collects them); multipath
//! routes fork by weight. Forks stop at [`TraceOptions::max_paths`]; the unexplored
//! probability is reported. Paths with the same verdict and final packet are merged.
//!
//! Matches that cannot be decided (`recent` history, `owner` without a socket, `physdev`,
//! `limit`, unknown modules, unknown sets) are decided by a stated guess and listed in
//! [`Trace::assumptions`], never silently treated as matching.
//!
//! Drop reasons ([`DropReason`]) carry the kernel's `skb_drop_reason` names:
//!
//! | code | when |
//! |---|---|
//! | `NETFILTER_DROP` | a DROP rule, a DROP policy, a REJECT, a NAT target without an address, conntrack table full |
//! | `IP_OUTNOROUTES` | no route for a locally sent packet |
//! | `IP_INNOROUTES` | no route (or an `unreachable` rule) for a received packet (ICMP net unreachable) |
//! | `IP_INADDRERRORS` | `unreachable` route (ICMP host unreachable); forwarding off (IPv4: the input device's `forwarding`, IPv6: `conf.all.forwarding`) |
//! | `IP_RPFILTER` | reverse-path filter |
//! | `PKT_TOO_BIG` | bigger than the output MTU with DF set (ICMP fragmentation needed) |
//! | `IP_INVALID_SOURCE`, `IP_LOCAL_SOURCE`, `IP_INVALID_DEST`, `IP_LOCALNET` | martians |
//! | `NOT_SPECIFIED` | `blackhole` and `prohibit` routes (the kernel gives no specific reason) |
//!
//! ```
//! use dataplane::{Family, Packet};
//! use dataplane::iptables::Ruleset;
//! use dataplane::node::{Backend, NodeState};
//! use dataplane::trace::{trace, Verdict};
//!
//! let rules = Ruleset::parse(Family::V4, "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n\
//!     :OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n").unwrap();
//! let node = NodeState::new("n1").with_iptables(Backend::Nft, rules);
//! let pkt = Packet::tcp("198.18.0.1".parse().unwrap(), "198.18.0.11".parse().unwrap(), 80)
//!     .arriving_on("eth0");
//! let t = trace(&node, &pkt);
//! // No routes are known here, so the node's addresses are unknown: the lookup finds no route.
//! assert!(matches!(t.paths[0].verdict, Verdict::NoRoute { .. }));
//! ```

mod chain;
mod display;
mod engine;
mod env;
mod ipvs;
pub mod model;
mod nat;
mod nft;
mod program;
mod routing;
mod state;
mod track;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use model::{
    Assumption, AssumptionCode, Culprit, DropReason, Effect, Endpoint, EndpointShare, RejectKind,
    RuleRef, Step, Trace, TracePath, Truncation, Verdict,
};

use crate::node::NodeState;
use crate::packet::Packet;

/// What the caller knows that the node state does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceOptions {
    /// Bound on the number of paths (forks of `statistic` rules and multipath routes).
    pub max_paths: usize,
    /// `recent` lists that hold the packet's address (the rest are assumed empty).
    pub recent_listed: BTreeSet<String>,
    /// uid and gid of the sending socket, for `-m owner` and `uidrange` rules (local packets).
    pub socket_owner: Option<(u32, u32)>,
}

impl Default for TraceOptions {
    fn default() -> TraceOptions {
        TraceOptions {
            max_paths: 256,
            recent_listed: BTreeSet::new(),
            socket_owner: None,
        }
    }
}

/// Every path `pkt` can take through `node`, with default options.
///
/// A packet with `iif` set arrives on that interface; without, a local process sends it (an
/// unspecified source address lets the routing decision choose one). Its `ct_state` is the
/// state to assume when no conntrack entry matches (NEW by default).
pub fn trace(node: &NodeState, pkt: &Packet) -> Trace {
    trace_with(node, pkt, &TraceOptions::default())
}

/// [`trace`] with options.
pub fn trace_with(node: &NodeState, pkt: &Packet, opts: &TraceOptions) -> Trace {
    engine::Tracer::new(node, opts, pkt).run(pkt)
}
