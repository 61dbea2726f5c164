//! bgpd: a BGP speaker for Kubernetes nodes.
//!
//! ```text
//!   peers (TCP 179) <--bytes--> wire (codec) <--Message--> session FSM
//!                                                 │ Update
//!                                                 v
//!                       policy (import) ──> rib (Adj-RIB-In, Loc-RIB, decision, multipath)
//!                                                 │ Change                │ Change
//!                                                 v                       v
//!                       fib (desired routes, diff → ops)    rib::adj_out (export policy,
//!                                                            UPDATEs to each peer)
//! ```
//!
//! [`wire`] is our own BGP-4 codec with RFC 7606 error handling (see design.md for why we own
//! it); [`session`] is the session FSM with collision handling, damping and graceful restart;
//! [`rib`], [`policy`] and [`fib`] are pure: values in, values out, no I/O and no clock.
//!
//! The daemon around them: [`config`] (the YAML file), [`transport`] (TCP, MD5, GTSM, one
//! task per connection), [`speaker`] (the one task that owns the state), [`fib::netlink`]
//! (kernel routes), [`source`] (the Node's pod CIDRs), [`api`] (control socket) and
//! [`metrics`]. The daemon is the default cargo feature `daemon`; without it only the pure
//! modules and the file parsers build (the fuzz targets' configuration, see docs/fuzzing.md).

#[cfg(feature = "daemon")]
pub mod api;
pub mod config;
pub mod fib;
#[cfg(feature = "daemon")]
pub mod metrics;
pub mod policy;
pub mod rib;
pub mod session;
pub mod source;
#[cfg(feature = "daemon")]
pub mod speaker;
#[cfg(feature = "daemon")]
pub mod transport;
pub mod wire;
