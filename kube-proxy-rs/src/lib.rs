//! kube-proxy-rs: a drop-in kube-proxy for Linux nodes.
//!
//! ```text
//!   Kubernetes API (watch) ──┐
//!                            ├─> Service, EndpointSlice, Node ──> model::build ──> ProxyState (per family)
//!   --manifests PATH ────────┘        (k8s-openapi types)          (pure)          │
//!   (source::file)                                                                 v
//!                                          render (iptables / nftables / IPVS) ──> apply
//! ```
//!
//! This crate holds the pure service model ([`model`]), upstream's chain names ([`names`]),
//! the command line and `KubeProxyConfiguration` ([`config`]), the manifest file source
//! ([`source`]) and the pure renders ([`render`]); on top of them the kernel layer
//! ([`apply`], [`conntrack`]), the sync loop ([`sync`]), the object sources ([`watch`]) and
//! the health and metrics servers ([`health`], [`metrics`]).

#[cfg(feature = "daemon")]
pub mod apply;
pub mod config;
#[cfg(feature = "daemon")]
pub mod connector;
#[cfg(feature = "daemon")]
pub mod conntrack;
#[cfg(feature = "daemon")]
pub mod health;
#[cfg(feature = "daemon")]
pub mod metrics;
pub mod model;
pub mod names;
pub mod render;
pub mod source;
#[cfg(feature = "daemon")]
pub mod sync;
#[cfg(feature = "daemon")]
pub mod watch;
