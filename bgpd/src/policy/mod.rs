//! Routing policy: prefix lists, the import policy of a peer (default deny, default route,
//! own prefixes, AS loop, expected next hops, max-prefix) and its export policy (own prefixes
//! with communities, optional transit). Pure: values in, verdicts with reasons out.
//!
//! ```text
//!   received path + prefix ──ImportPolicy::check_path / check_prefix──> Ok | RejectReason
//!   Adj-RIB-In count      ──MaxPrefix──────────────────────────────> Cease 6/1 (RFC 4486)
//!   own prefixes, Loc-RIB ──ExportPolicy (applied in rib::adj_out)───> routes to advertise
//! ```

pub mod export;
pub mod import;
pub mod prefix_list;

pub use export::ExportPolicy;
pub use import::{
    ExpectedNextHop, ImportPolicy, MaxPrefix, MaxPrefixEvent, RejectReason, Rejected, next_hop_addr,
};
pub use prefix_list::{PrefixList, PrefixListError, PrefixRule};
