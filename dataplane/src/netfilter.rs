//! The evaluation vocabulary both netfilter front ends share (`iptables` and `nft`): the
//! env a tracer implements once, the assumptions, and the per-match outcome.
//!
//! ```text
//!   tracer env: impl MatchEnv --> iptables::Rule::eval(&Packet, &dyn MatchEnv)
//!                             \-> nft::Rule::eval(&Table, &Packet, &dyn MatchEnv)
//!   both report MatchOutcome / Assumption { kind: AssumptionKind, match_text, default_guess }
//! ```
//! The items are defined in [`crate::iptables::eval`], which came first; this module names
//! them without the front end.

pub use crate::iptables::{
    AddrTypes, Assumption, AssumptionKind, CtDir, CtInfo, CtStatus, CtTuple, MatchEnv,
    MatchOutcome, NoEnv,
};
