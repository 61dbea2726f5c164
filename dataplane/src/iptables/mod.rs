//! iptables / ip6tables rulesets as data.
//!
//! ```text
//!   iptables-save text --Ruleset::parse--> Ruleset --to_save()----> the same text
//!                     --Ruleset::parse_lazy-->  |   --to_restore()--> iptables-restore input
//!                       (specs typed on use)
//!   iptables-restore text --RestoreScript::parse--> RestoreScript
//!   Ruleset::apply_restore(&script, RestoreMode) : the kernel's merge, atomic per table
//!   Match::eval(&Packet, &dyn MatchEnv) -> MatchOutcome ; Target::effect() -> TargetEffect
//! ```
//! Typed matches and targets cover what kube-proxy and common node firewalls write; anything
//! else is kept raw (`Match::Unknown`, `Target::Unknown`) and prints back unchanged.
//!
//! ```
//! use dataplane::{Family, Packet};
//! use dataplane::iptables::{NoEnv, RestoreMode, RestoreScript, Ruleset};
//!
//! let save = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-X - [0:0]\n\
//!             -A PREROUTING -d 198.19.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X\nCOMMIT\n";
//! let mut rs = Ruleset::parse(Family::V4, save).unwrap();
//! assert_eq!(rs.to_save(), save);
//!
//! let pkt = Packet::tcp("198.18.64.2".parse().unwrap(), "198.19.0.10".parse().unwrap(), 80);
//! let rule = &rs.chain("nat", "PREROUTING").unwrap().rules[0];
//! assert!(rule.eval(&pkt, &NoEnv).matches);
//!
//! // The kernel refuses a jump to a chain that does not exist, and so does the merge.
//! let bad = RestoreScript::parse(Family::V4, "*nat\n-A KUBE-SVC-X -j KUBE-SEP-Y\nCOMMIT\n").unwrap();
//! let err = rs.apply_restore(&bad, RestoreMode { noflush: true }).unwrap_err();
//! assert_eq!(err.to_string(), "line 2: rule jumps to chain \"KUBE-SEP-Y\", which does not exist in table nat");
//! ```

mod emit;
pub mod eval;
pub(crate) mod lexer;
mod match_ct;
mod match_l4;
mod match_misc;
mod matches;
mod model;
mod parse;
pub mod restore;
mod targets;
mod values;

pub use eval::{
    Assumption, AssumptionKind, CtInfo, CtTuple, MatchEnv, MatchOutcome, NoEnv, RuleOutcome,
    SetKeyPart,
};
pub use match_ct::{
    Conntrack, CtDir, CtStates, CtStatus, MarkMatch, Recent, RecentMode, RecentSide, StateMatch,
    Statistic,
};
pub use match_l4::{IcmpMatch, IcmpType, Multiport, MultiportDir, PortMatch, TcpFlagsMatch};
pub use match_misc::{
    AddrRange, AddrType, AddrTypes, IdRange, IpRange, Length, Limit, Owner, Physdev, PktType,
    PktTypeMatch, SetDir, SetMatch, TtlMatch, TtlOp,
};
pub use matches::Match;
pub use model::{Chain, Counters, DuplicateChain, Policy, Rule, Ruleset, Table, builtin_chains};
pub use parse::{FREE_TEXT_OPTIONS, ParseError};
pub use restore::{
    RestoreCommand, RestoreError, RestoreMode, RestoreOp, RestoreScript, RestoreTable,
};
pub use targets::{
    Connmark, Log, MarkOp, MarkOpKind, Nat, NatRange, PortMap, RejectWith, Target, TargetEffect,
};
pub use values::{AddrMask, Iface, Mask, Neg, PortRange, ProtoSpec, parse_u32};
