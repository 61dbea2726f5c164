//! Which virtual service a packet hits and which real servers it may go to, with each one's
//! share of new connections: the tracer's IPVS step (IPVS hooks LOCAL_IN for the VIP, schedules
//! there, and DNATs for masquerading servers).
//!
//! ```text
//!   IpvsState::lookup(&Packet)  fwmark service (family, mark) -> proto+addr+port -> port 0
//!   Service::select(&Packet) -> Selection { candidates: [Candidate { server, share, excluded }],
//!                                           unreachable, assumptions }
//! ```
//! Shares by scheduler (eligible = weight > 0 and not over its upper threshold):
//! rr, lc: equal; wrr, wlc, sed, nq, lblc, lblcr, twos, mh: by weight; sh, dh: by the buckets
//! of their 256-entry table (each server takes max(weight, 1) buckets in turn), unavailable
//! buckets falling back to the others with `sh-fallback` and refused without; fo: the heaviest
//! server; ovf: the heaviest not full. When no server is eligible the kernel answers ICMP port
//! unreachable and drops (`ip_vs_leave`). What the model cannot know (live connection counts,
//! source hashes, persistence templates, connections already in the IPVS table) is listed as
//! assumptions.

use std::fmt;

use serde::Serialize;

use super::model::{IpvsState, Netmask, RealServer, Scheduler, Service, ServiceKey};
use crate::packet::{CtState, Packet, Protocol};

/// Entries of the sh / dh bucket table (`IP_VS_SH_TAB_SIZE`, `IP_VS_DH_TAB_SIZE`).
pub const HASH_TABLE_SIZE: u32 = 256;

/// Why a real server takes no share of new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// Weight 0: kept for its existing connections (graceful termination), none new.
    ZeroWeight,
    /// Active + inactive connections reached its upper threshold (`-x`).
    Overloaded,
    /// fo / ovf send everything to one server, and it is another one.
    NotChosen,
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exclusion::ZeroWeight => "weight 0: no new connections",
            Exclusion::Overloaded => "over its upper connection threshold",
            Exclusion::NotChosen => "the scheduler picks another server",
        })
    }
}

/// A real server a new connection may go to.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    /// The server.
    pub server: &'a RealServer,
    /// Its share of new connections, 0..=1.
    pub share: f64,
    /// Why its share is 0.
    pub excluded: Option<Exclusion>,
}

/// What the selection could not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "assumption", rename_all = "snake_case")]
pub enum IpvsAssumption {
    /// The packet belongs to a connection IPVS already tracks: its entry, not the scheduler,
    /// picks the server (the table of connections is not modelled).
    ExistingConnection,
    /// Persistence: the shares hold for a client's first connection; later ones within the
    /// timeout go to the same server (client = source address under the netmask).
    Persistence {
        /// Seconds.
        timeout: u32,
        /// Client granularity, as ipvsadm prints it.
        netmask: String,
    },
    /// sh / mh / dh pick one server per hash of the packet; every server is listed with its
    /// share of the hash space.
    Hashed {
        /// The scheduler.
        scheduler: String,
        /// What is hashed (`source address`, `source address and port`, `destination address`).
        by: &'static str,
    },
    /// The pick depends on live connection counts; the shares are the long-run split.
    LoadDependent {
        /// The scheduler.
        scheduler: String,
    },
    /// Servers with an upper threshold whose connection counts are unknown were assumed not
    /// overloaded.
    ThresholdsUnknown,
    /// A scheduler this code does not model: equal shares were assumed.
    UnknownScheduler {
        /// Its name.
        name: String,
    },
    /// The service or a server has options this code does not know.
    UnknownOptions {
        /// The words, as written.
        words: Vec<String>,
    },
}

impl fmt::Display for IpvsAssumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpvsAssumption::ExistingConnection => f.write_str(
                "packet of an existing connection: the IPVS connection table (not modelled) picks the server",
            ),
            IpvsAssumption::Persistence { timeout, netmask } => write!(
                f,
                "persistence {timeout}s (mask {netmask}): shares hold for a client's first connection, later ones stick to its server"
            ),
            IpvsAssumption::Hashed { scheduler, by } => write!(
                f,
                "{scheduler} hashes the {by} onto one server: all are listed with their share of the hash space"
            ),
            IpvsAssumption::LoadDependent { scheduler } => write!(
                f,
                "{scheduler} picks by live connection counts: shares are the long-run split"
            ),
            IpvsAssumption::ThresholdsUnknown => f.write_str(
                "connection counts unknown: servers with an upper threshold assumed not overloaded",
            ),
            IpvsAssumption::UnknownScheduler { name } => {
                write!(f, "scheduler {name} not modelled: equal shares assumed")
            }
            IpvsAssumption::UnknownOptions { words } => {
                write!(f, "options not modelled: {}", words.join(" "))
            }
        }
    }
}

/// The outcome of scheduling a new connection on a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection<'a> {
    /// The service hit.
    pub service: &'a Service,
    /// Every real server, in the service's order, with its share.
    pub candidates: Vec<Candidate<'a>>,
    /// Share of new connections no server takes: the kernel answers ICMP port unreachable and
    /// drops them.
    pub unreachable: f64,
    /// What the shares rest on.
    pub assumptions: Vec<IpvsAssumption>,
}

impl Selection<'_> {
    /// The candidates with a share above 0.
    pub fn chosen(&self) -> impl Iterator<Item = &Candidate<'_>> {
        self.candidates.iter().filter(|c| c.share > 0.0)
    }
}

/// Whether `key` takes the packet by protocol, address and port (`port == 0` matches all).
fn addr_match(key: &ServiceKey, pkt: &Packet, port: u16) -> bool {
    matches!(key, ServiceKey::Addr { proto, addr, port: p }
        if *proto == pkt.proto && *addr == pkt.dst && *p == port)
}

impl IpvsState {
    /// The service a packet hits, in the kernel's order (`ip_vs_service_find`): a fwmark
    /// service for the packet's mark and family, then protocol + address + port, then the
    /// same address with port 0. Only TCP, UDP and SCTP are scheduled. (The FTP helper's
    /// data-port lookup is not modelled.)
    pub fn lookup(&self, pkt: &Packet) -> Option<&Service> {
        if !matches!(pkt.proto, Protocol::Tcp | Protocol::Udp | Protocol::Sctp) {
            return None;
        }
        let family = pkt.family();
        if pkt.mark != 0
            && let Some(s) = self.services.iter().find(|s| {
                matches!(s.key, ServiceKey::Fwmark { family: f, mark } if f == family && mark == pkt.mark)
            })
        {
            return Some(s);
        }
        self.services
            .iter()
            .find(|s| addr_match(&s.key, pkt, pkt.dport))
            .or_else(|| self.services.iter().find(|s| addr_match(&s.key, pkt, 0)))
    }

    /// [`IpvsState::lookup`] then [`Service::select`].
    pub fn select(&self, pkt: &Packet) -> Option<Selection<'_>> {
        self.lookup(pkt).map(|s| s.select(pkt))
    }
}

impl Service {
    /// The real servers a new connection of `pkt` may go to, with their shares.
    pub fn select(&self, pkt: &Packet) -> Selection<'_> {
        let mut assumptions = Vec::new();
        if pkt.ct_state != CtState::New {
            assumptions.push(IpvsAssumption::ExistingConnection);
        }
        if let Some(p) = self.persistence {
            assumptions.push(IpvsAssumption::Persistence {
                timeout: p.timeout,
                netmask: match p.netmask {
                    Netmask::V4(m) => m.to_string(),
                    Netmask::V6(len) => len.to_string(),
                },
            });
        }
        let mut unknown = self.unknown.clone();
        for s in &self.servers {
            unknown.extend(s.unknown.iter().cloned());
        }
        if !unknown.is_empty() {
            assumptions.push(IpvsAssumption::UnknownOptions { words: unknown });
        }
        if self
            .servers
            .iter()
            .any(|s| s.u_threshold > 0 && s.overloaded().is_none())
        {
            assumptions.push(IpvsAssumption::ThresholdsUnknown);
        }

        // why each server is unavailable, if it is
        let unavailable: Vec<Option<Exclusion>> = self
            .servers
            .iter()
            .map(|s| {
                if s.weight <= 0 {
                    Some(Exclusion::ZeroWeight)
                } else if s.overloaded() == Some(true) {
                    Some(Exclusion::Overloaded)
                } else {
                    None
                }
            })
            .collect();
        let weight = |i: usize| f64::from(self.servers[i].weight.max(0));
        let equal = |_: usize| 1.0;
        let sched = self.scheduler.name().to_string();
        let (raw, unreachable): (Vec<f64>, f64) = match &self.scheduler {
            Scheduler::Rr => (proportional(&unavailable, equal), 0.0),
            Scheduler::Lc => {
                assumptions.push(IpvsAssumption::LoadDependent { scheduler: sched });
                (proportional(&unavailable, equal), 0.0)
            }
            Scheduler::Wrr => (proportional(&unavailable, weight), 0.0),
            Scheduler::Wlc
            | Scheduler::Sed
            | Scheduler::Nq
            | Scheduler::Lblc
            | Scheduler::Lblcr
            | Scheduler::Twos => {
                assumptions.push(IpvsAssumption::LoadDependent { scheduler: sched });
                (proportional(&unavailable, weight), 0.0)
            }
            Scheduler::Mh => {
                assumptions.push(IpvsAssumption::Hashed {
                    scheduler: sched,
                    by: self.hashed_by(),
                });
                let shares = proportional(&unavailable, weight);
                // without mh-fallback, a hash landing on an unavailable server is refused
                // (mh leaves weight-0 servers out of its table, so only overloaded ones count)
                let lost = if self.sched_flags.falls_back() {
                    0.0
                } else {
                    overloaded_share(&unavailable, weight)
                };
                (scale(shares, 1.0 - lost), lost)
            }
            Scheduler::Sh | Scheduler::Dh => {
                let by = if self.scheduler == Scheduler::Dh {
                    "destination address"
                } else {
                    self.hashed_by()
                };
                assumptions.push(IpvsAssumption::Hashed {
                    scheduler: sched,
                    by,
                });
                let buckets = bucket_shares(&self.servers);
                let falls_back = self.scheduler == Scheduler::Sh && self.sched_flags.falls_back();
                split_buckets(&buckets, &unavailable, falls_back)
            }
            Scheduler::Fo => (one_heaviest(&self.servers, &unavailable), 0.0),
            Scheduler::Ovf => {
                assumptions.push(IpvsAssumption::LoadDependent { scheduler: sched });
                (one_heaviest(&self.servers, &unavailable), 0.0)
            }
            Scheduler::Other(name) => {
                assumptions.push(IpvsAssumption::UnknownScheduler { name: name.clone() });
                (proportional(&unavailable, equal), 0.0)
            }
        };
        let total: f64 = raw.iter().sum();
        let unreachable = if total <= 0.0 { 1.0 } else { unreachable };
        let candidates = self
            .servers
            .iter()
            .zip(raw)
            .zip(&unavailable)
            .map(|((server, share), why)| Candidate {
                server,
                share,
                excluded: if share > 0.0 {
                    None
                } else {
                    Some(why.unwrap_or(Exclusion::NotChosen))
                },
            })
            .collect();
        Selection {
            service: self,
            candidates,
            unreachable,
            assumptions,
        }
    }

    fn hashed_by(&self) -> &'static str {
        if self.sched_flags.hashes_port() {
            "source address and port"
        } else {
            "source address"
        }
    }
}

/// Shares proportional to `w` over the available servers.
fn proportional(unavailable: &[Option<Exclusion>], w: impl Fn(usize) -> f64) -> Vec<f64> {
    let raw: Vec<f64> = (0..unavailable.len())
        .map(|i| if unavailable[i].is_none() { w(i) } else { 0.0 })
        .collect();
    let total: f64 = raw.iter().sum();
    if total <= 0.0 {
        return vec![0.0; raw.len()];
    }
    raw.into_iter().map(|x| x / total).collect()
}

fn scale(shares: Vec<f64>, by: f64) -> Vec<f64> {
    shares.into_iter().map(|s| s * by).collect()
}

/// The weight share of overloaded servers among servers with a weight.
fn overloaded_share(unavailable: &[Option<Exclusion>], w: impl Fn(usize) -> f64) -> f64 {
    let total: f64 = (0..unavailable.len())
        .filter(|i| unavailable[*i] != Some(Exclusion::ZeroWeight))
        .map(&w)
        .sum();
    if total <= 0.0 {
        return 0.0;
    }
    (0..unavailable.len())
        .filter(|i| unavailable[*i] == Some(Exclusion::Overloaded))
        .map(&w)
        .sum::<f64>()
        / total
}

/// How many of the sh/dh table's buckets each server holds: servers take max(weight, 1)
/// consecutive buckets in turn until the table is full (`ip_vs_sh_reassign`).
pub fn bucket_shares(servers: &[RealServer]) -> Vec<u32> {
    let mut buckets = vec![0u32; servers.len()];
    if servers.is_empty() {
        return buckets;
    }
    let (mut i, mut count) = (0usize, 0i64);
    for _ in 0..HASH_TABLE_SIZE {
        buckets[i] += 1;
        count += 1;
        if count >= i64::from(servers[i].weight) {
            i = (i + 1) % servers.len();
            count = 0;
        }
    }
    buckets
}

/// Shares from bucket counts: an unavailable server's buckets go to the others in proportion
/// (fallback) or are refused.
fn split_buckets(
    buckets: &[u32],
    unavailable: &[Option<Exclusion>],
    falls_back: bool,
) -> (Vec<f64>, f64) {
    let size = f64::from(HASH_TABLE_SIZE);
    let mut shares: Vec<f64> = buckets
        .iter()
        .zip(unavailable)
        .map(|(b, u)| {
            if u.is_none() {
                f64::from(*b) / size
            } else {
                0.0
            }
        })
        .collect();
    let lost: f64 = buckets
        .iter()
        .zip(unavailable)
        .filter(|(_, u)| u.is_some())
        .map(|(b, _)| f64::from(*b) / size)
        .sum();
    let kept: f64 = shares.iter().sum();
    if falls_back && kept > 0.0 {
        shares = shares.into_iter().map(|s| s / kept).collect();
        (shares, 0.0)
    } else {
        (shares, lost)
    }
}

/// fo / ovf: all to the first available server of the highest weight.
fn one_heaviest(servers: &[RealServer], unavailable: &[Option<Exclusion>]) -> Vec<f64> {
    let mut best: Option<usize> = None;
    for (i, s) in servers.iter().enumerate() {
        if unavailable[i].is_none() && best.is_none_or(|b| s.weight > servers[b].weight) {
            best = Some(i);
        }
    }
    (0..servers.len())
        .map(|i| if Some(i) == best { 1.0 } else { 0.0 })
        .collect()
}
