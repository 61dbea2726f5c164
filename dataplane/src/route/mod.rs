//! Links, addresses, routes and policy rules of one network namespace, and the kernel's
//! routing decision over them.
//!
//! ```text
//!   ip -j -d link show ─┐
//!   ip -j addr show ────┤ RouteState::parse(IpDocuments)      RouteState::to_documents() / to_json()
//!   ip -j -4|-6 route ──┼──────────────────────────────────>  RouteState ──────────────────────────>
//!   ip -j [-6] rule ────┘                                       │   │      to_ip_batch(): `ip -batch`
//!                                                               │   └──>   lines to recreate it
//!                      Flow { dst, src, iif, oif, mark, .. } ──>│ lookup()
//!                                                               v
//!                     Lookup { steps (rule by rule, table by table), outcome, assumptions }
//! ```
//!
//! Nothing here touches the kernel: the documents are text a caller captured (diag collects them
//! live, tests read fixtures), and the lookup re-implements `fib_lookup` / `ip route get`.

mod addr;
mod addrtype;
mod flow;
mod json;
mod link;
mod lookup;
mod names;
mod path;
mod routes;
mod rpdb;
mod rule;
mod select;
mod source;
mod state;

pub use addr::{AddrFlag, Address, InterfaceAddrs};
pub use addrtype::{AddrType, RpCheck, RpFilter, RpVerdict};
pub use flow::Flow;
pub use json::{Document, ParseError, strip_capture_header};
pub use link::{Link, LinkKind};
pub use lookup::{
    Assumption, Cause, Errno, Hop, Lookup, Martian, Mismatch, Outcome, RuleStep, RuleVerdict,
    SrcReason, Suppression, TableLookup, TableResult,
};
pub use names::{NhFlag, RouteProtocol, RouteType, Scope, TableId};
pub use routes::{Gateway, Nexthop, Route, parse_prefix, prefix_text};
pub use rule::{PortRange, Rule, RuleAction};
pub use select::{Candidate, CandidateVerdict, NexthopSkip};
pub use state::{IpBatch, IpDocuments, RouteSettings, RouteState};
