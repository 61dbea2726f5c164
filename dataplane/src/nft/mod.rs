//! nftables rulesets as data: `nft -j list ruleset` parsed into a typed model, written back
//! as JSON or as `nft -f` text, and rules evaluated against a packet for the tracer.
//!
//! ```text
//!   nft -j list ruleset --Ruleset::from_json--> Ruleset --to_json()--> the same JSON value
//!                                                  |     --to_text()--> nft -f input
//!                                                  |                   (as nft list prints it)
//!   Ruleset::chains_for_hook(Family, &Hook) -> base chains by priority (ip/ip6 + inet)
//!   Rule::eval(&Table, &Packet, &dyn MatchEnv) -> RuleOutcome { branches: [verdict, effects,
//!                                                 probability, assumptions] }
//! ```
//! Typed expressions and statements cover what kube-proxy's nftables mode and common host
//! firewalls write (payload, meta, ct, fib, numgen, sets and maps, verdicts, NAT, marks,
//! counters, log, limit, quota, notrack, set updates); anything else is kept as raw JSON,
//! round-trips unchanged, and evaluates to an assumption. nft 1.0.6's JSON leaves out table
//! and chain comments, the `dynamic` set flag, `typeof` and netdev devices, which therefore
//! cannot survive a JSON round trip through the kernel.
//!
//! ```
//! use dataplane::Packet;
//! use dataplane::iptables::NoEnv;
//! use dataplane::nft::{NftFamily, Ruleset, Verdict};
//!
//! let dump = r#"{"nftables": [
//!   {"table": {"family": "ip", "name": "kube-proxy"}},
//!   {"chain": {"family": "ip", "table": "kube-proxy", "name": "svc"}},
//!   {"rule": {"family": "ip", "table": "kube-proxy", "chain": "svc", "expr": [
//!     {"vmap": {"key": {"numgen": {"mode": "random", "mod": 2, "offset": 0}},
//!               "data": {"set": [[0, {"goto": {"target": "ep-a"}}],
//!                                [1, {"goto": {"target": "ep-b"}}]]}}}]}}]}"#;
//! let rs = Ruleset::from_json(dump).unwrap();
//! let table = rs.table(NftFamily::Ip, "kube-proxy").unwrap();
//! let rule = &table.chain("svc").unwrap().rules[0];
//! assert_eq!(rule.to_text(NftFamily::Ip).unwrap(),
//!            "numgen random mod 2 vmap { 0 : goto ep-a, 1 : goto ep-b }");
//!
//! let pkt = Packet::tcp("198.18.64.2".parse().unwrap(), "198.19.0.10".parse().unwrap(), 80);
//! let out = rule.eval(table, &pkt, &NoEnv);
//! assert_eq!(out.branches.len(), 2);
//! assert_eq!(out.branches[0].verdict, Some(Verdict::Goto("ep-a".into())));
//! assert_eq!(out.branches[0].probability, 0.5);
//! ```

mod eval;
mod expr;
mod hooks;
mod index;
mod json_expr;
mod json_read;
mod json_write;
mod model;
mod read;
mod text;
mod types;

pub use eval::{Effect, NatEffect, RuleBranch, RuleOutcome};
pub use expr::{
    BinOp, Counter, CtDirection, CtExpr, Expr, Fib, Limit, Log, Match, MatchOp, Nat, NatKind,
    Numgen, NumgenMode, Payload, Quota, Reject, RejectType, SetOp, SetStmt, Stmt, Verdict,
};
pub use hooks::{
    HookedChain, PRIORITY_DSTNAT, PRIORITY_FILTER, PRIORITY_MANGLE, PRIORITY_RAW,
    PRIORITY_SECURITY, PRIORITY_SRCNAT, priority_text, standard_priority,
};
pub use index::TableIndex;
pub use json_read::NftParseError;
pub use json_write::{expr_json, stmt_json};
pub use model::{
    BaseChain, Chain, ChainType, Hook, MetaInfo, NamedCounter, NftFamily, Object, Policy, Rule,
    Ruleset, Set, SetElem, SetType, Table,
};
pub use text::TextError;
pub use types::{DType, Datum, parse_number, symbol_value, time_text};
