//! System tests that need a real kernel: the kernel-vs-tracer differential harness.
//!
//! ```text
//!   topo::DutLab        client -> DUT -> pods / ext hosts, in network namespaces (lab crate)
//!   case::Case          rules + routes + sysctls + one request
//!   case::Runner        load into the DUT -> capture::capture (live state -> NodeState)
//!                       -> dataplane::trace -> outcome::expect  ==?  send -> outcome::classify
//!   generate              proptest strategies: small random rulesets and packets
//! ```
//! Every namespace belongs to the lab and is removed when it is dropped, also on panic.
//! Needs root (the tests say so and fail clearly without it).

pub mod capture;
pub mod case;
pub mod chart;
pub mod generate;
pub mod gotmpl;
pub mod kube;
pub mod kube_nft;
pub mod manifest;
pub mod outcome;
pub mod probe;
pub mod topo;

pub use case::{Case, From, Loader, Report, Runner, Send, Setup};
pub use outcome::{Observed, Proto};
pub use topo::DutLab;
