//! The iptables render: one family's [`ProxyState`] in, the `iptables-restore` input
//! kube-proxy writes out, with upstream's chain names, rule layout and comments.
//!
//! ```text
//!   ProxyState + RenderOptions ──render_iptables──> Rendered
//!        Rendered.to_restore()              *filter … COMMIT *nat … COMMIT   (full sync)
//!        Rendered.partial(&changes, chains) top-level + changed services, -X stale
//!        Rendered.full_dump()               + jumps from built-in chains, canaries
//!        JUMP_RULES, CANARY_CHAIN           what the sync layer ensures with iptables -I / -N
//! ```
//! Rules are written as text in kube-proxy's option order (`-m comment --comment "…" -m tcp
//! -p tcp -d 198.19.0.10 --dport 80 -j KUBE-SVC-…`); the kernel keeps them in its canonical
//! form, which `iptables-save` prints (`-d 198.19.0.10/32 -p tcp -m comment … -m tcp
//! --dport 80`). [`Rendered::to_ruleset`] gives that form as a typed
//! [`dataplane::iptables::Ruleset`]. One pass over the service ports writes every rule once
//! into the buffer of its chain; nothing is allocated per rule.
//!
//! Chain layout (upstream pkg/proxy/iptables/proxier.go):
//! ```text
//!   nat    PREROUTING, OUTPUT ─> KUBE-SERVICES ─┬─> KUBE-SVC-… / KUBE-SVL-… ─> KUBE-SEP-… (DNAT)
//!                                               ├─> KUBE-EXT-… ─> KUBE-SVC-… / KUBE-SVL-…
//!                                               ├─> KUBE-FW-…  ─> KUBE-EXT-…
//!                                               └─> KUBE-NODEPORTS ─> KUBE-EXT-…
//!          POSTROUTING ─> KUBE-POSTROUTING (MASQUERADE what KUBE-MARK-MASQ marked)
//!   filter INPUT/FORWARD/OUTPUT ─> KUBE-SERVICES, KUBE-EXTERNAL-SERVICES (REJECT / DROP),
//!          KUBE-NODEPORTS (health check ACCEPT), KUBE-PROXY-FIREWALL, KUBE-FORWARD, KUBE-FIREWALL
//! ```

mod build;
mod jumps;
mod options;
mod output;
mod service;
mod text;

#[cfg(test)]
mod tests;

pub use build::{NFACCT_CT_INVALID, NFACCT_LOCALHOST_NODEPORTS};
pub use jumps::{CANARY_CHAIN, CANARY_TABLES, JUMP_RULES, JumpRule};
pub use options::{MarkStyle, RenderOptions};
pub use output::{PartialRestore, Rendered, RuleCounts, Table, is_service_chain};
pub use text::{ChainName, chain_order};

use crate::model::{ChangeSet, ProxyState};

/// Renders one family's rules (upstream `syncProxyRules`, without the I/O).
pub fn render_iptables(state: &ProxyState, opts: &RenderOptions) -> Rendered {
    build::render(state, opts, None)
}

/// [`render_iptables`] writing into the buffers of the previous render (same output; what
/// a sync loop uses, as upstream reuses its buffers between syncs).
pub fn render_iptables_reusing(
    state: &ProxyState,
    opts: &RenderOptions,
    previous: Rendered,
) -> Rendered {
    build::render(state, opts, Some(previous))
}

/// The partial-sync input for `state` after `changed` (from `state.diff(&last_applied)`),
/// given the chains `iptables-save -t nat` lists now (see [`Rendered::partial`]).
pub fn render_partial(
    state: &ProxyState,
    changed: &ChangeSet,
    existing_chains: &[&str],
    opts: &RenderOptions,
) -> String {
    render_iptables(state, opts)
        .partial(changed, existing_chains)
        .text
}
