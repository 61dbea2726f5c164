//! Renders: one family's [`ProxyState`](crate::model::ProxyState) in, the kernel
//! configuration that implements it out, as plain values and text. Pure: no clock, no
//! client, no process; the same state gives byte-identical output.
//!
//! ```text
//!   ProxyState ──iptables::render_iptables──> Rendered ──to_restore()──> iptables-restore input
//!                                                      ──partial(..)───> partial-sync input
//!   ProxyState ──ipvs::render_ipvs──> IpvsPlan { virtual services, kube-ipvs0 VIPs, ipsets,
//!                                                helper rules }
//!   ProxyState ──nftables::render_nftables──> NftRender (typed table) ──transaction(..)──> nft -f input
//! ```

pub mod iptables;
pub mod ipvs;
pub mod nftables;
