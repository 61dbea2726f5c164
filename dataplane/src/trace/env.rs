//! What a rule's matches ask beyond the packet, answered from the node's state: the output
//! interface (once routing chose one), address types from the routing tables, ipset
//! membership, the conntrack entry, the sending socket; and the answers to assumptions the
//! caller fixed in [`TraceOptions`](super::TraceOptions).

use std::cell::OnceCell;
use std::net::IpAddr;

use crate::iptables::{AddrTypes, Assumption, AssumptionKind, CtInfo, MatchEnv, SetKeyPart};
use crate::node::NodeState;
use crate::route::AddrType;

use super::TraceOptions;
use super::state::Ct;

/// The env of one rule evaluation.
pub(crate) struct Env<'a> {
    pub(crate) node: &'a NodeState,
    pub(crate) opts: &'a TraceOptions,
    /// Output interface (FORWARD, OUTPUT, POSTROUTING); `None` before routing and in INPUT.
    pub(crate) out_dev: Option<&'a str>,
    /// The path's conntrack view.
    pub(crate) ct: &'a Ct,
    /// What `-m conntrack` sees, built on first use.
    pub(crate) ct_info: OnceCell<Option<CtInfo>>,
    /// Whether the routing state knows any interface (else address types are guessed).
    pub(crate) routes_known: bool,
}

fn bit(t: AddrType) -> u16 {
    let n = match t {
        AddrType::Unspec => 0,
        AddrType::Unicast => 1,
        AddrType::Local => 2,
        AddrType::Broadcast => 3,
        AddrType::Anycast => 4,
        AddrType::Multicast => 5,
        AddrType::Blackhole => 6,
        AddrType::Unreachable => 7,
        AddrType::Prohibit => 8,
        AddrType::Throw => 9,
        AddrType::Nat => 10,
        AddrType::Xresolve => 11,
    };
    1 << n
}

impl MatchEnv for Env<'_> {
    fn out_interface(&self) -> Option<&str> {
        self.out_dev
    }

    /// IPv4: `inet_dev_addr_type` (one type). IPv6: xt_addrtype's `match_type6`, which
    /// combines UNICAST/MULTICAST/UNSPEC from the address with LOCAL/ANYCAST/UNREACHABLE from a
    /// routing lookup.
    fn addr_type(&self, addr: IpAddr, dev: Option<&str>) -> Option<AddrTypes> {
        if !self.routes_known {
            return None;
        }
        let t = self.node.routes.addr_type_on(addr, dev);
        match addr {
            IpAddr::V4(_) => Some(AddrTypes(bit(t))),
            IpAddr::V6(a) => {
                let base = if a.is_multicast() {
                    AddrTypes::MULTICAST
                } else if a.is_unspecified() {
                    AddrTypes::UNSPEC
                } else {
                    AddrTypes::UNICAST
                };
                let routed = match t {
                    AddrType::Local | AddrType::Anycast | AddrType::Unreachable => bit(t),
                    _ => 0,
                };
                Some(AddrTypes(base | routed))
            }
        }
    }

    fn ipset_lookup(&self, name: &str, key: &[SetKeyPart]) -> Option<bool> {
        self.node.ipsets.contains(name, key)
    }

    fn conntrack(&self) -> Option<&CtInfo> {
        self.ct_info.get_or_init(|| self.ct.info()).as_ref()
    }

    fn socket_owner(&self) -> Option<(u32, u32)> {
        self.opts.socket_owner
    }

    fn assume(&self, a: &Assumption) -> bool {
        match &a.kind {
            AssumptionKind::RecentHistory { list } if self.opts.recent_listed.contains(list) => {
                !a.default_guess
            }
            _ => a.default_guess,
        }
    }
}
