//! The seam between the mode-independent sync loop and one proxy mode: a [`ModeProxier`]
//! is one family's proxier of one mode (iptables today; nftables and IPVS join through the
//! same trait). The [`Engine`](super::Engine) builds the model once and hands each
//! family's [`ProxyState`] to its proxier; the driver runs the engine and reports.
//!
//! ```text
//!   Engine ──sync(state, full)──> dyn ModeProxier ──(Applied, previous state) | SyncError
//!   Host   ──set_local_addresses──> (before each sync: NodePort addresses, localhost)
//!   Driver ──missing_canaries────> (periodically: someone flushed our rules → full sync)
//! ```
//! Contract every mode keeps:
//! - the first sync, a sync after [`ModeProxier::invalidate`] and a sync after a failure
//!   are full (the mode cannot know what the kernel holds);
//! - on success the kernel holds `state` and [`ModeProxier::applied`] returns it; the state
//!   held before is handed back for conntrack reconciliation;
//! - on failure the previous rules stay as far as the kernel allows, `applied()` is `None`.

use std::net::IpAddr;

use dataplane::Family;

use super::proxier::{Applied, SyncError};
use crate::apply::ApplyError;
use crate::model::ProxyState;

/// One family's proxier of one proxy mode (upstream's per-family `Proxier` of
/// pkg/proxy/{iptables,nftables,ipvs}, driven by the MetaProxier).
pub trait ModeProxier: Send {
    /// The mode's name as `--proxy-mode` spells it (`iptables`, `nftables`, `ipvs`).
    fn mode(&self) -> &'static str;

    /// The family this proxier serves.
    fn family(&self) -> Family;

    /// Writes `state` into the kernel: fully when `full` or when what the kernel holds is
    /// unknown, else only what changed. On success returns what was done and the state the
    /// kernel held before (`None` when unknown).
    fn sync(
        &mut self,
        state: &ProxyState,
        full: bool,
    ) -> Result<(Applied, Option<ProxyState>), SyncError>;

    /// The state the kernel holds, if known.
    fn applied(&self) -> Option<&ProxyState>;

    /// Forgets what the kernel holds: the next sync is full.
    fn invalidate(&mut self);

    /// This host's addresses of the proxier's family (refreshed before each sync; used for
    /// `--nodeport-addresses` CIDRs).
    fn set_local_addresses(&mut self, addrs: Vec<IpAddr>);

    /// The names of this mode's canaries that are gone (a table or chain someone flushed);
    /// non-empty makes the next sync full. Modes without canaries return nothing.
    fn missing_canaries(&mut self) -> Result<Vec<&'static str>, ApplyError>;
}

impl<P: ModeProxier + ?Sized> ModeProxier for Box<P> {
    fn mode(&self) -> &'static str {
        (**self).mode()
    }
    fn family(&self) -> Family {
        (**self).family()
    }
    fn sync(
        &mut self,
        state: &ProxyState,
        full: bool,
    ) -> Result<(Applied, Option<ProxyState>), SyncError> {
        (**self).sync(state, full)
    }
    fn applied(&self) -> Option<&ProxyState> {
        (**self).applied()
    }
    fn invalidate(&mut self) {
        (**self).invalidate()
    }
    fn set_local_addresses(&mut self, addrs: Vec<IpAddr>) {
        (**self).set_local_addresses(addrs)
    }
    fn missing_canaries(&mut self) -> Result<Vec<&'static str>, ApplyError> {
        (**self).missing_canaries()
    }
}

/// A boxed proxier of any mode (what the daemon's [`Host`](super::driver::Host) holds).
pub type DynProxier = Box<dyn ModeProxier>;
