//! Model <-> attributes: what a request carries for a [`Service`] or [`RealServer`] (in the
//! order ipvsadm sends them), and the model from the kernel's dump entries.

use std::net::{IpAddr, Ipv4Addr};

use super::attrs::{AF_INET, AF_INET6, DestAttr, InetAddr, StatsAttr, StatsField, SvcAttr};
use crate::ipvs::model::{
    ConnCounts, Counters, Forward, Netmask, Persistence, Rates, RealServer, SchedFlags, Scheduler,
    Service, ServiceKey, TunType, Tunnel, svc_flags,
};
use crate::packet::{Family, Protocol};

/// A dump entry that does not make a service or real server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A required attribute is missing.
    #[error("{what} missing")]
    Missing {
        /// The attribute (`IPVS_SVC_ATTR_AF`, ...).
        what: &'static str,
    },
    /// An address family other than AF_INET / AF_INET6.
    #[error("{what}: address family {af} is neither AF_INET (2) nor AF_INET6 (10)")]
    Family {
        /// The attribute.
        what: &'static str,
        /// The value.
        af: u16,
    },
    /// An address attribute too short for its family.
    #[error("{what}: {len} bytes do not hold an address of family {af}")]
    Address {
        /// The attribute.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The family.
        af: u16,
    },
}

fn af_of(f: Family) -> u16 {
    match f {
        Family::V4 => AF_INET,
        Family::V6 => AF_INET6,
    }
}

fn family_of(af: u16, what: &'static str) -> Result<Family, ModelError> {
    match af {
        AF_INET => Ok(Family::V4),
        AF_INET6 => Ok(Family::V6),
        af => Err(ModelError::Family { what, af }),
    }
}

fn netmask_value(n: Netmask) -> u32 {
    match n {
        Netmask::V4(m) => u32::from_ne_bytes(m.octets()),
        Netmask::V6(p) => u32::from(p),
    }
}

fn netmask_of(v: u32, family: Family) -> Netmask {
    match family {
        Family::V4 => Netmask::V4(Ipv4Addr::from(v.to_ne_bytes())),
        Family::V6 => Netmask::V6(u8::try_from(v).unwrap_or(128).min(128)),
    }
}

/// The attributes naming a service (what the kernel needs to find it): `AF` and `PROTOCOL`,
/// `ADDR`, `PORT`, or `AF` and `FWMARK`.
pub fn service_key_attrs(key: &ServiceKey) -> Vec<SvcAttr> {
    match key {
        ServiceKey::Addr { proto, addr, port } => vec![
            SvcAttr::Af(af_of(Family::of(addr))),
            SvcAttr::Protocol(u16::from(proto.number())),
            SvcAttr::Addr(InetAddr::from_ip(*addr)),
            SvcAttr::Port(*port),
        ],
        ServiceKey::Fwmark { family, mark } => {
            vec![SvcAttr::Af(af_of(*family)), SvcAttr::Fwmark(*mark)]
        }
    }
}

/// A whole service as `ipvsadm -A` sends it: the key, `SCHED_NAME`, `PE_NAME` (if any),
/// `FLAGS` (mask all ones), `TIMEOUT` and `NETMASK` (0 and the host mask when not persistent).
pub fn service_attrs(s: &Service) -> Vec<SvcAttr> {
    let family = s.key.family();
    let mut v = service_key_attrs(&s.key);
    v.push(SvcAttr::SchedName(s.scheduler.name().to_string()));
    if let Some(pe) = &s.pe_name {
        v.push(SvcAttr::PeName(pe.clone()));
    }
    v.push(SvcAttr::Flags {
        flags: s.flags(),
        mask: u32::MAX,
    });
    let (timeout, netmask) = match s.persistence {
        Some(p) => (p.timeout, p.netmask),
        None => (0, Netmask::host(family)),
    };
    v.push(SvcAttr::Timeout(timeout));
    v.push(SvcAttr::Netmask(netmask_value(netmask)));
    v
}

/// A real server as `ipvsadm -a` sends it: `ADDR_FAMILY`, `ADDR`, `PORT`, `FWD_METHOD`,
/// `WEIGHT`, `TUN_TYPE`, `TUN_PORT`, `TUN_FLAGS`, `U_THRESH`, `L_THRESH`.
pub fn dest_attrs(rs: &RealServer) -> Vec<DestAttr> {
    let t = rs.tunnel.unwrap_or(Tunnel {
        kind: TunType::Ipip,
        port: 0,
        flags: 0,
    });
    vec![
        DestAttr::AddrFamily(af_of(Family::of(&rs.addr))),
        DestAttr::Addr(InetAddr::from_ip(rs.addr)),
        DestAttr::Port(rs.port),
        DestAttr::FwdMethod(rs.forward.flags()),
        DestAttr::Weight(u32::try_from(rs.weight).unwrap_or(0)),
        DestAttr::TunType(t.kind.number()),
        DestAttr::TunPort(t.port),
        DestAttr::TunFlags(t.flags),
        DestAttr::UThresh(rs.u_threshold),
        DestAttr::LThresh(rs.l_threshold),
    ]
}

/// Counters from a `STATS` / `STATS64` nest.
pub fn counters_from_stats(stats: &[StatsAttr]) -> Counters {
    let mut c = Counters::default();
    for a in stats {
        if let StatsAttr::Value { field, value, .. } = a {
            match field {
                StatsField::Conns => c.conns = *value,
                StatsField::InPkts => c.in_pkts = *value,
                StatsField::OutPkts => c.out_pkts = *value,
                StatsField::InBytes => c.in_bytes = *value,
                StatsField::OutBytes => c.out_bytes = *value,
                _ => {}
            }
        }
    }
    c
}

/// Rates from a `STATS` / `STATS64` nest.
pub fn rates_from_stats(stats: &[StatsAttr]) -> Rates {
    let mut r = Rates::default();
    for a in stats {
        if let StatsAttr::Value { field, value, .. } = a {
            match field {
                StatsField::Cps => r.cps = *value,
                StatsField::InPps => r.in_pps = *value,
                StatsField::OutPps => r.out_pps = *value,
                StatsField::InBps => r.in_bps = *value,
                StatsField::OutBps => r.out_bps = *value,
                _ => {}
            }
        }
    }
    r
}

/// The stats to read: `STATS64` when present (64-bit everything), else `STATS`.
fn pick_stats<'a>(
    s64: Option<&'a [StatsAttr]>,
    s32: Option<&'a [StatsAttr]>,
) -> Option<&'a [StatsAttr]> {
    s64.or(s32)
}

fn unknown_word(kind: u16, value: &[u8]) -> String {
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    format!("nlattr({kind})={hex}")
}

/// A service from the attributes of a dump entry (`IPVS_CMD_NEW_SERVICE`). Unknown attributes
/// become `nlattr(KIND)=HEX` words in [`Service::unknown`].
pub fn service_from_attrs(attrs: &[SvcAttr]) -> Result<Service, ModelError> {
    let (mut af, mut proto, mut addr, mut port, mut mark) = (None, None, None, None, None);
    let (mut sched, mut flags, mut timeout, mut netmask, mut pe) = (None, 0, 0, None, None);
    let (mut s32, mut s64) = (None, None);
    let mut unknown = Vec::new();
    for a in attrs {
        match a {
            SvcAttr::Af(v) => af = Some(*v),
            SvcAttr::Protocol(v) => proto = Some(*v),
            SvcAttr::Addr(v) => addr = Some(v),
            SvcAttr::Port(v) => port = Some(*v),
            SvcAttr::Fwmark(v) => mark = Some(*v),
            SvcAttr::SchedName(v) => sched = Some(v.clone()),
            SvcAttr::Flags { flags: f, .. } => flags = *f,
            SvcAttr::Timeout(v) => timeout = *v,
            SvcAttr::Netmask(v) => netmask = Some(*v),
            SvcAttr::PeName(v) => pe = Some(v.clone()).filter(|p| !p.is_empty()),
            SvcAttr::Stats(n) => s32 = Some(n.attrs.as_slice()),
            SvcAttr::Stats64(n) => s64 = Some(n.attrs.as_slice()),
            SvcAttr::Unknown(r) => unknown.push(unknown_word(r.kind, &r.value)),
        }
    }
    let af = af.ok_or(ModelError::Missing {
        what: "IPVS_SVC_ATTR_AF",
    })?;
    let family = family_of(af, "IPVS_SVC_ATTR_AF")?;
    let key = match mark.filter(|m| *m != 0) {
        Some(mark) => ServiceKey::Fwmark { family, mark },
        None => {
            let a = addr.ok_or(ModelError::Missing {
                what: "IPVS_SVC_ATTR_ADDR",
            })?;
            ServiceKey::Addr {
                proto: Protocol::from_number(
                    u8::try_from(proto.ok_or(ModelError::Missing {
                        what: "IPVS_SVC_ATTR_PROTOCOL",
                    })?)
                    .unwrap_or(0),
                ),
                addr: a.to_ip(af).ok_or(ModelError::Address {
                    what: "IPVS_SVC_ATTR_ADDR",
                    len: a.0.len(),
                    af,
                })?,
                port: port.ok_or(ModelError::Missing {
                    what: "IPVS_SVC_ATTR_PORT",
                })?,
            }
        }
    };
    let scheduler = Scheduler::parse(&sched.ok_or(ModelError::Missing {
        what: "IPVS_SVC_ATTR_SCHED_NAME",
    })?);
    let persistence = (flags & svc_flags::PERSISTENT != 0).then(|| Persistence {
        timeout,
        netmask: netmask.map_or(Netmask::host(family), |v| netmask_of(v, family)),
    });
    let stats = pick_stats(s64, s32);
    Ok(Service {
        persistence,
        one_packet: flags & svc_flags::ONEPACKET != 0,
        sched_flags: SchedFlags(
            flags & (svc_flags::SCHED1 | svc_flags::SCHED2 | svc_flags::SCHED3),
        ),
        pe_name: pe,
        unknown,
        counters: stats.map(counters_from_stats),
        rates: stats.map(rates_from_stats),
        ..Service::new(key, scheduler)
    })
}

/// A real server from the attributes of a dump entry (`IPVS_CMD_NEW_DEST`); `family` is the
/// service's, used when the entry has no `ADDR_FAMILY`.
pub fn server_from_attrs(attrs: &[DestAttr], family: Family) -> Result<RealServer, ModelError> {
    let (mut af, mut addr, mut port, mut fwd, mut weight) = (None, None, None, 0, 0);
    let (mut u, mut l, mut active, mut inactive, mut persist) = (0, 0, None, None, None);
    let (mut tun_type, mut tun_port, mut tun_flags) = (0, 0, 0);
    let (mut s32, mut s64) = (None, None);
    let mut unknown = Vec::new();
    for a in attrs {
        match a {
            DestAttr::Addr(v) => addr = Some(v),
            DestAttr::Port(v) => port = Some(*v),
            DestAttr::FwdMethod(v) => fwd = *v,
            DestAttr::Weight(v) => weight = *v,
            DestAttr::UThresh(v) => u = *v,
            DestAttr::LThresh(v) => l = *v,
            DestAttr::ActiveConns(v) => active = Some(*v),
            DestAttr::InactConns(v) => inactive = Some(*v),
            DestAttr::PersistConns(v) => persist = Some(*v),
            DestAttr::Stats(n) => s32 = Some(n.attrs.as_slice()),
            DestAttr::AddrFamily(v) => af = Some(*v),
            DestAttr::Stats64(n) => s64 = Some(n.attrs.as_slice()),
            DestAttr::TunType(v) => tun_type = *v,
            DestAttr::TunPort(v) => tun_port = *v,
            DestAttr::TunFlags(v) => tun_flags = *v,
            DestAttr::Unknown(r) => unknown.push(unknown_word(r.kind, &r.value)),
        }
    }
    let af = af.unwrap_or(af_of(family));
    family_of(af, "IPVS_DEST_ATTR_ADDR_FAMILY")?;
    let a = addr.ok_or(ModelError::Missing {
        what: "IPVS_DEST_ATTR_ADDR",
    })?;
    let ip: IpAddr = a.to_ip(af).ok_or(ModelError::Address {
        what: "IPVS_DEST_ATTR_ADDR",
        len: a.0.len(),
        af,
    })?;
    let forward = Forward::from_flags(fwd);
    let stats = pick_stats(s64, s32);
    Ok(RealServer {
        forward,
        weight: i32::try_from(weight).unwrap_or(i32::MAX),
        u_threshold: u,
        l_threshold: l,
        tunnel: (forward == Forward::Tunnel).then_some(Tunnel {
            kind: TunType::from_number(tun_type),
            port: tun_port,
            flags: tun_flags,
        }),
        unknown,
        conns: match (active, inactive) {
            (Some(active), Some(inactive)) => Some(ConnCounts {
                active,
                inactive,
                persistent: persist,
            }),
            _ => None,
        },
        counters: stats.map(counters_from_stats),
        rates: stats.map(rates_from_stats),
        ..RealServer::masq(
            ip,
            port.ok_or(ModelError::Missing {
                what: "IPVS_DEST_ATTR_PORT",
            })?,
        )
    })
}
