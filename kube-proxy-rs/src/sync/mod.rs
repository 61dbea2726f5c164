//! The sync loop: when to sync ([`debounce`], a pure state machine), what one family's
//! sync writes ([`proxier`]), both families from one set of objects ([`engine`]), and the
//! tokio layer that runs it all ([`driver`]).
//!
//! ```text
//!   Feed ──changes──> driver ──(now, Event)──> Debouncer ──Action::Sync{full}──> driver
//!                       └── spawn_blocking ──> Engine ──> Proxier(IPv4), Proxier(IPv6)
//!                                                         └─ RuleWriter (apply)
//! ```

pub mod debounce;
pub mod driver;
pub mod engine;
pub mod proxier;

pub use debounce::{Action, Debouncer, Event, FullReason, Timing, Trigger};
pub use engine::{Engine, FamilyOutcome, Report};
pub use proxier::{Applied, Proxier, SyncError, family_name};

#[cfg(test)]
mod tests;
