//! The Linux data plane as data.
//!
//! ```text
//!   iptables-save / ipset save / ip -j ... / sysctl / conntrack -L / nft -j   (text from a node)
//!        | parse                                        ^ emit
//!        v                                              |
//!   typed models: iptables::Ruleset, ipset::Sets, nft::Ruleset, route::RouteState,
//!                 node::Sysctls, conntrack::Conntrack  --> node::NodeState (all of one node)
//!        |
//!        v
//!   trace::trace(&NodeState, &Packet) -> Trace { paths: [{ steps, verdict }], assumptions }
//! ```
//!
//! Three users share this crate: kube-proxy-rs renders into these models and writes their
//! text form; diag parses live dumps into them and explains packets; the tests trace packets
//! through what kube-proxy-rs rendered. Nothing here touches the kernel, a socket or a process.

pub mod conntrack;
pub mod ipset;
pub mod iptables;
pub mod ipvs;
pub mod netfilter;
pub mod nft;
pub mod node;
pub mod packet;
pub mod route;
pub mod trace;

pub use packet::{CtState, Family, Packet, Protocol};
