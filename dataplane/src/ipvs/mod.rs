//! IPVS as data: virtual services, schedulers and real servers; the `ipvsadm -Sn` save format
//! (parse and write back), `ipvsadm -Ln` listings (counters), the IPVS generic netlink messages
//! (pure bytes, no socket), and the scheduling step of the tracer.
//!
//! ```text
//!   ipvsadm -Sn ----------- IpvsState::from_save / to_save ------+
//!   ipvsadm -Ln [--stats] - Listing::parse -> merge_listing -----+--> IpvsState { services }
//!   netlink dump --------- netlink::decode + service_from_attrs -+        |
//!                                                                         v
//!   packet at LOCAL_IN for a VIP -> IpvsState::lookup -> Service::select -> Selection
//!                                   { candidates with shares, unreachable, assumptions }
//! ```
//! A tracer calls [`IpvsState::select`] where IPVS hooks the packet (LOCAL_IN, for an address
//! the node owns, e.g. on `kube-ipvs0`); masquerading servers mean a DNAT to the server there.

mod list;
mod model;
pub mod netlink;
mod save;
mod select;

pub use list::{ListedServer, ListedService, Listing};
pub use model::{
    ConnCounts, Counters, DEFAULT_PERSISTENT_TIMEOUT, Forward, IpvsState, Netmask, Persistence,
    Rates, RealServer, SchedFlags, Scheduler, Service, ServiceKey, SockAddr, TunType, Tunnel,
    svc_flags, tun_flags,
};
pub use save::IpvsError;
pub use select::{Candidate, Exclusion, HASH_TABLE_SIZE, IpvsAssumption, Selection, bucket_shares};
