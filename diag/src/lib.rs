//! diag: explain where a packet goes on a Kubernetes node, and why it dies.
//!
//! ```text
//!   node (live) ──collect (read-only commands)──> Bundle ──write──> DIR/ | FILE.tar
//!                                                   │  ^──read── DIR/ | FILE.tar
//!                                                   v
//!                                     snapshot::Snapshot (NodeState + nft, IPVS, k8s objects)
//!   SRC DST ──resolve (IPs, NS/POD, svc/NS/NAME:PORT, node/NAME; objects from manifests,
//!             bundles or the API)──> entry node + packet
//!          ──cluster::trace (dataplane::trace per node, hop to the node owning the next hop)──>
//!             ClusterTrace ──explain──> text (verdict first) | JSON (docs/diag.md) | DOT
//!   snapshots ──check (the blackhole catalogue: rules, routes, sysctls, probe traces)──>
//!             findings (evidence, fix) ──> text | JSON
//! ```
//! Modules: [`bundle`] (format, dir/tar I/O), [`command`] (the read-only allow-list),
//! [`collect`], [`snapshot`], [`objects`] (Kubernetes objects), [`resolve`], [`cluster`],
//! [`explain`], [`check`] (the blackhole catalogue), [`redact`], [`kubeapi`] (list-only API
//! reads), [`cli`].
//! Exit codes: 0 delivered / no findings, 1 dropped / findings, 2 usage or input error.

pub mod bundle;
pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
pub mod cluster;
pub mod collect;
pub mod command;
pub mod explain;
#[cfg(feature = "cli")]
pub mod kubeapi;
pub mod objects;
pub mod redact;
pub mod resolve;
pub mod snapshot;
