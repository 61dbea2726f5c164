//! The sync loop: when to sync ([`debounce`], a pure state machine), the seam to a proxy
//! mode ([`mode::ModeProxier`]), what one family's iptables sync writes ([`proxier`]), both
//! families from one set of objects ([`engine`]), and the tokio layer that runs it all
//! ([`driver`]).
//!
//! ```text
//!   Feed ──changes──> driver ──(now, Event)──> Debouncer ──Action::Sync{full}──> driver
//!                       └── spawn_blocking ──> Engine ──> dyn ModeProxier (IPv4, IPv6)
//!                                                         ├─ iptables: Proxier ─ RuleWriter
//!                                                         └─ nftables: NftProxier ─ NftWriter
//! ```

pub mod debounce;
pub mod driver;
pub mod engine;
pub mod mode;
pub mod nft_proxier;
pub mod proxier;

pub use debounce::{Action, Debouncer, Event, FullReason, Timing, Trigger};
pub use engine::{Engine, FamilyOutcome, Report};
pub use mode::{DynProxier, ModeProxier};
pub use nft_proxier::NftProxier;
pub use proxier::{Applied, Proxier, SyncError, family_name};

#[cfg(test)]
mod tests;
