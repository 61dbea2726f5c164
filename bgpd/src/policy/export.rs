//! Export policy of one peer: which routes we advertise and what we attach to them.
//!
//! ```text
//!   own prefixes (config `prefixes`, the Node's podCIDRs) ──[prefixes filter]──> advertised
//!        with ORIGIN IGP, our communities / large communities, MED if set, LOCAL_PREF to iBGP
//!   learned routes ──[transit ranges, None by default]──> advertised (re-advertisement)
//! ```
//!
//! By default bgpd advertises only its own prefixes: a node is a leaf, not a transit router.
//! The pod CIDRs of other nodes that it learned from a ToR (or from the mesh) are not sent back
//! to the ToRs — they already have them from the nodes that own them, and a node re-advertising
//! them would offer itself as a detour for other nodes' pod traffic. `transit` turns
//! re-advertisement on for the given ranges (the rules for it are in `rib::adj_out`).

use super::prefix_list::PrefixList;
use crate::wire::{Community, LargeCommunity};

/// The export policy of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPolicy {
    /// Communities attached to our own prefixes (and added to transit routes).
    pub communities: Vec<Community>,
    /// Large communities attached likewise.
    pub large_communities: Vec<LargeCommunity>,
    /// MULTI_EXIT_DISC on our own prefixes (none by default).
    pub med: Option<u32>,
    /// LOCAL_PREF on our own prefixes toward iBGP peers (RFC 4271 §5.1.5). Default 100.
    pub local_pref: u32,
    /// Which own prefixes go to this peer; `None`: all of them.
    pub prefixes: Option<PrefixList>,
    /// Re-advertise learned routes inside these ranges; `None` (default): own prefixes only.
    pub transit: Option<PrefixList>,
}

impl Default for ExportPolicy {
    fn default() -> Self {
        Self {
            communities: Vec::new(),
            large_communities: Vec::new(),
            med: None,
            local_pref: 100,
            prefixes: None,
            transit: None,
        }
    }
}
