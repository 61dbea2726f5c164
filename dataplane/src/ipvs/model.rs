//! The IPVS model: virtual services with their scheduler, flags and real servers, and the
//! counters the kernel keeps for them (`ipvsadm -Ln`, `--stats`, `--rate`, netlink dumps).

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::packet::{Family, Protocol};

/// What identifies a virtual service (`-t|-u|--sctp-service ADDR:PORT`, or `-f MARK [-6]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// A protocol, address and port (`-t 198.19.0.10:80`); port 0 matches every port.
    Addr {
        /// TCP, UDP or SCTP.
        proto: Protocol,
        /// The virtual address.
        addr: IpAddr,
        /// The virtual port.
        port: u16,
    },
    /// A firewall mark (`-f 100`, `-f 100 -6` for IPv6).
    Fwmark {
        /// The family of the packets it takes.
        family: Family,
        /// The mark.
        mark: u32,
    },
}

impl ServiceKey {
    /// The address family of the service.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(addr),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }

    /// The `ipvsadm` words naming the service: `-t 198.19.0.10:80`, `--sctp-service [2001:db8::1]:80`,
    /// `-f 100`, `-f 100 -6`.
    pub fn to_ipvsadm(&self) -> String {
        match self {
            ServiceKey::Addr { proto, addr, port } => {
                let opt = match proto {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    _ => "--sctp-service",
                };
                format!("{opt} {}", SockAddr(*addr, *port))
            }
            ServiceKey::Fwmark { family, mark } => match family {
                Family::V4 => format!("-f {mark}"),
                Family::V6 => format!("-f {mark} -6"),
            },
        }
    }

    /// The order `ipvsadm -S` and `-L` list services in: address services before fwmark ones,
    /// then by family, protocol number, address and port (fwmark ones by mark, then family).
    pub fn ipvsadm_order(&self, other: &ServiceKey) -> Ordering {
        fn rank(k: &ServiceKey) -> (u32, u8, u8, IpAddr, u16) {
            let fam = |f: Family| match f {
                Family::V4 => 0,
                Family::V6 => 1,
            };
            match k {
                ServiceKey::Addr { proto, addr, port } => {
                    (0, fam(Family::of(addr)), proto.number(), *addr, *port)
                }
                ServiceKey::Fwmark { family, mark } => {
                    (*mark, fam(*family), 0, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
                }
            }
        }
        rank(self).cmp(&rank(other))
    }
}

impl fmt::Display for ServiceKey {
    /// As `ipvsadm -Ln` names it: `TCP 198.19.0.10:80`, `FWM 100`, `FWM 200 IPv6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { proto, addr, port } => {
                write!(f, "{} {}", proto_label(*proto), SockAddr(*addr, *port))
            }
            ServiceKey::Fwmark { family, mark } => match family {
                Family::V4 => write!(f, "FWM {mark}"),
                Family::V6 => write!(f, "FWM {mark} IPv6"),
            },
        }
    }
}

/// `TCP`, `UDP`, `SCTP` as `ipvsadm -L` prints them.
pub(crate) fn proto_label(p: Protocol) -> String {
    match p {
        Protocol::Tcp => "TCP".into(),
        Protocol::Udp => "UDP".into(),
        Protocol::Sctp => "SCTP".into(),
        other => other.to_string().to_uppercase(),
    }
}

/// An address and port printed as ipvsadm does: `198.18.64.2:8080`, `[2001:db8::2]:8080`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockAddr(pub IpAddr, pub u16);

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// A scheduler (`-s NAME`); names the code does not know are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheduler {
    /// `rr`: round robin.
    Rr,
    /// `wrr`: weighted round robin.
    Wrr,
    /// `lc`: least connection.
    Lc,
    /// `wlc`: weighted least connection (ipvsadm's default).
    Wlc,
    /// `lblc`: locality-based least connection.
    Lblc,
    /// `lblcr`: locality-based least connection with replication.
    Lblcr,
    /// `dh`: destination hashing.
    Dh,
    /// `sh`: source hashing.
    Sh,
    /// `sed`: shortest expected delay.
    Sed,
    /// `nq`: never queue.
    Nq,
    /// `fo`: weighted failover.
    Fo,
    /// `ovf`: weighted overflow.
    Ovf,
    /// `mh`: Maglev hashing.
    Mh,
    /// `twos`: weighted random twos choice.
    Twos,
    /// Any other name.
    Other(String),
}

impl Scheduler {
    /// The scheduler of a name.
    pub fn parse(name: &str) -> Scheduler {
        match name {
            "rr" => Scheduler::Rr,
            "wrr" => Scheduler::Wrr,
            "lc" => Scheduler::Lc,
            "wlc" => Scheduler::Wlc,
            "lblc" => Scheduler::Lblc,
            "lblcr" => Scheduler::Lblcr,
            "dh" => Scheduler::Dh,
            "sh" => Scheduler::Sh,
            "sed" => Scheduler::Sed,
            "nq" => Scheduler::Nq,
            "fo" => Scheduler::Fo,
            "ovf" => Scheduler::Ovf,
            "mh" => Scheduler::Mh,
            "twos" => Scheduler::Twos,
            other => Scheduler::Other(other.to_string()),
        }
    }

    /// The name (`ip_vs_<name>` is its kernel module).
    pub fn name(&self) -> &str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
            Scheduler::Twos => "twos",
            Scheduler::Other(s) => s,
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Service flag bits of `include/uapi/linux/ip_vs.h` (`IP_VS_SVC_F_*`).
pub mod svc_flags {
    /// `IP_VS_SVC_F_PERSISTENT` (`-p`).
    pub const PERSISTENT: u32 = 0x0001;
    /// `IP_VS_SVC_F_HASHED`: set by the kernel on every service in its tables.
    pub const HASHED: u32 = 0x0002;
    /// `IP_VS_SVC_F_ONEPACKET` (`-o`).
    pub const ONEPACKET: u32 = 0x0004;
    /// `IP_VS_SVC_F_SCHED1`: `sh-fallback` / `mh-fallback` / `flag-1`.
    pub const SCHED1: u32 = 0x0008;
    /// `IP_VS_SVC_F_SCHED2`: `sh-port` / `mh-port` / `flag-2`.
    pub const SCHED2: u32 = 0x0010;
    /// `IP_VS_SVC_F_SCHED3`: `flag-3`.
    pub const SCHED3: u32 = 0x0020;
}

/// Scheduler flags (`-b`): the `IP_VS_SVC_F_SCHED1..3` bits, whose names depend on the
/// scheduler (`sh-fallback,sh-port` for sh, `mh-fallback,mh-port` for mh, `flag-N` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SchedFlags(pub u32);

impl SchedFlags {
    /// No flags.
    pub const NONE: SchedFlags = SchedFlags(0);
    const BITS: [u32; 3] = [svc_flags::SCHED1, svc_flags::SCHED2, svc_flags::SCHED3];

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses one `-b` word (any scheduler's names are accepted, as ipvsadm does).
    pub fn bit(name: &str) -> Option<u32> {
        Some(match name {
            "sh-fallback" | "mh-fallback" | "flag-1" => svc_flags::SCHED1,
            "sh-port" | "mh-port" | "flag-2" => svc_flags::SCHED2,
            "flag-3" => svc_flags::SCHED3,
            _ => return None,
        })
    }

    /// The names for `scheduler`, in bit order (`sh-fallback,sh-port`).
    pub fn names(self, scheduler: &Scheduler) -> Vec<&'static str> {
        let names: [&'static str; 3] = match scheduler {
            Scheduler::Sh => ["sh-fallback", "sh-port", "flag-3"],
            Scheduler::Mh => ["mh-fallback", "mh-port", "flag-3"],
            _ => ["flag-1", "flag-2", "flag-3"],
        };
        Self::BITS
            .iter()
            .zip(names)
            .filter(|(bit, _)| self.0 & **bit != 0)
            .map(|(_, n)| n)
            .collect()
    }

    /// sh/mh: the port takes part in the hash (`sh-port`, `mh-port`).
    pub fn hashes_port(self) -> bool {
        self.0 & svc_flags::SCHED2 != 0
    }

    /// sh/mh: an unavailable server's share falls back to the others (`*-fallback`).
    pub fn falls_back(self) -> bool {
        self.0 & svc_flags::SCHED1 != 0
    }
}

/// The persistence granularity (`-M`): a mask for IPv4, a prefix length for IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Netmask {
    /// `-M 255.255.255.0`.
    V4(Ipv4Addr),
    /// `-M 64`.
    V6(u8),
}

impl Netmask {
    /// The kernel's default: one client address (`255.255.255.255` or `128`).
    pub fn host(family: Family) -> Netmask {
        match family {
            Family::V4 => Netmask::V4(Ipv4Addr::BROADCAST),
            Family::V6 => Netmask::V6(128),
        }
    }

    /// Whether this is the default for `family`.
    pub fn is_host(self, family: Family) -> bool {
        self == Netmask::host(family)
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::V4(m) => write!(f, "{m}"),
            Netmask::V6(p) => write!(f, "{p}"),
        }
    }
}

/// Persistence (`-p TIMEOUT [-M NETMASK]`): a client (address under the netmask) keeps its
/// real server for `timeout` seconds after its last connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Persistence {
    /// Seconds.
    pub timeout: u32,
    /// Client granularity.
    pub netmask: Netmask,
}

/// ipvsadm's timeout for `-p` without a value (seconds).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 300;

/// Connection counters of a service or real server (`ipvsadm -Ln --stats`, netlink STATS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets in.
    pub in_pkts: u64,
    /// Packets out.
    pub out_pkts: u64,
    /// Bytes in.
    pub in_bytes: u64,
    /// Bytes out.
    pub out_bytes: u64,
}

/// Rate estimates of a service or real server (`ipvsadm -Ln --rate`, netlink STATS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second in.
    pub in_pps: u64,
    /// Packets per second out.
    pub out_pps: u64,
    /// Bytes per second in.
    pub in_bps: u64,
    /// Bytes per second out.
    pub out_bps: u64,
}

/// How IPVS forwards to a real server (`IP_VS_CONN_F_FWD_MASK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forward {
    /// `-m`, `Masq`: NAT (DNAT to the server, un-NAT on the way back).
    Masq,
    /// `Local`: the server address is local (the kernel sets this for local addresses).
    Local,
    /// `-i`, `Tunnel`: IP-in-IP / GUE / GRE encapsulation.
    Tunnel,
    /// `-g`, `Route`: direct routing (MAC rewrite, no NAT).
    Route,
    /// `Bypass`: cache bypass.
    Bypass,
    /// Another value of the method field.
    Other(u32),
}

impl Forward {
    /// The method of `IP_VS_CONN_F_*` flags.
    pub fn from_flags(flags: u32) -> Forward {
        match flags & 0x7 {
            0 => Forward::Masq,
            1 => Forward::Local,
            2 => Forward::Tunnel,
            3 => Forward::Route,
            4 => Forward::Bypass,
            n => Forward::Other(n),
        }
    }

    /// The `IP_VS_CONN_F_*` value.
    pub fn flags(self) -> u32 {
        match self {
            Forward::Masq => 0,
            Forward::Local => 1,
            Forward::Tunnel => 2,
            Forward::Route => 3,
            Forward::Bypass => 4,
            Forward::Other(n) => n,
        }
    }

    /// The name `ipvsadm -L` prints (`Masq`, `Route`, ...).
    pub fn label(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Local => "Local",
            Forward::Tunnel => "Tunnel",
            Forward::Route => "Route",
            Forward::Bypass => "Bypass",
            Forward::Other(_) => "Unknown",
        }
    }

    /// The method of a `-L` label.
    pub fn from_label(s: &str) -> Option<Forward> {
        Some(match s {
            "Masq" => Forward::Masq,
            "Local" => Forward::Local,
            "Tunnel" => Forward::Tunnel,
            "Route" => Forward::Route,
            "Bypass" => Forward::Bypass,
            _ => return None,
        })
    }

    /// Whether the destination address (and port) of the packet is rewritten.
    pub fn is_nat(self) -> bool {
        self == Forward::Masq
    }
}

/// The encapsulation of a tunnel real server (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunType {
    /// `ipip` (the default).
    Ipip,
    /// `gue`.
    Gue,
    /// `gre`.
    Gre,
    /// Another `IP_VS_CONN_F_TUNNEL_TYPE_*` value.
    Other(u8),
}

impl TunType {
    /// The type of its number.
    pub fn from_number(n: u8) -> TunType {
        match n {
            0 => TunType::Ipip,
            1 => TunType::Gue,
            2 => TunType::Gre,
            n => TunType::Other(n),
        }
    }

    /// Its number.
    pub fn number(self) -> u8 {
        match self {
            TunType::Ipip => 0,
            TunType::Gue => 1,
            TunType::Gre => 2,
            TunType::Other(n) => n,
        }
    }

    /// Its `--tun-type` name.
    pub fn name(self) -> String {
        match self {
            TunType::Ipip => "ipip".into(),
            TunType::Gue => "gue".into(),
            TunType::Gre => "gre".into(),
            TunType::Other(n) => format!("{n}"),
        }
    }
}

/// Tunnel checksum flags (`IP_VS_TUNNEL_ENCAP_FLAG_*`): 0 no checksum, 1 checksum, 2 remote
/// checksum offload.
pub mod tun_flags {
    /// `--tun-nocsum`.
    pub const NOCSUM: u16 = 0;
    /// `--tun-csum`.
    pub const CSUM: u16 = 1;
    /// `--tun-remcsum`.
    pub const REMCSUM: u16 = 2;
}

/// Tunnel parameters of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tunnel {
    /// Encapsulation.
    pub kind: TunType,
    /// Destination port of the encapsulation (GUE).
    pub port: u16,
    /// Checksum flags ([`tun_flags`]).
    pub flags: u16,
}

/// Connection counts of a real server (`ipvsadm -Ln`: ActiveConn, InActConn; PersistConn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnCounts {
    /// Established (TCP) connections.
    pub active: u32,
    /// Other connections (TCP not established, UDP).
    pub inactive: u32,
    /// Persistence templates, when known.
    pub persistent: Option<u32>,
}

/// A real server (`-a SERVICE -r ADDR:PORT -m|-g|-i -w WEIGHT [-x U] [-y L]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RealServer {
    /// Its address.
    pub addr: IpAddr,
    /// Its port (0 for fwmark services: the packet's port is kept).
    pub port: u16,
    /// Forwarding method.
    pub forward: Forward,
    /// Weight; 0 takes no new connections (graceful termination).
    pub weight: i32,
    /// Upper connection threshold (`-x`), 0 for none.
    pub u_threshold: u32,
    /// Lower connection threshold (`-y`), 0 for none.
    pub l_threshold: u32,
    /// Tunnel parameters, for [`Forward::Tunnel`].
    pub tunnel: Option<Tunnel>,
    /// Options of a saved line the code does not know, kept as written.
    pub unknown: Vec<String>,
    /// Connection counts, when read from the kernel.
    pub conns: Option<ConnCounts>,
    /// Counters, when read from the kernel.
    pub counters: Option<Counters>,
    /// Rates, when read from the kernel.
    pub rates: Option<Rates>,
}

impl RealServer {
    /// A masqueraded real server of weight 1 (kube-proxy's kind).
    pub fn masq(addr: IpAddr, port: u16) -> RealServer {
        RealServer {
            addr,
            port,
            forward: Forward::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: None,
            unknown: Vec::new(),
            conns: None,
            counters: None,
            rates: None,
        }
    }

    /// The same server with weight `w`.
    pub fn with_weight(mut self, w: i32) -> RealServer {
        self.weight = w;
        self
    }

    /// The same server without counters (its configuration only).
    pub fn config(&self) -> RealServer {
        RealServer {
            conns: None,
            counters: None,
            rates: None,
            ..self.clone()
        }
    }

    /// Whether the server is over its upper threshold, when its connection counts are known
    /// (the kernel marks it overloaded when active + inactive reach `-x`).
    pub fn overloaded(&self) -> Option<bool> {
        if self.u_threshold == 0 {
            return Some(false);
        }
        let c = self.conns?;
        Some(u64::from(c.active) + u64::from(c.inactive) >= u64::from(self.u_threshold))
    }
}

/// A virtual service (`-A SERVICE -s SCHED [-p T] [-M MASK] [--pe NAME] [-o] [-b FLAGS]`) and
/// its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    /// What it matches.
    pub key: ServiceKey,
    /// How it picks a real server.
    pub scheduler: Scheduler,
    /// Client persistence, if any.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`-o`): each UDP datagram is scheduled on its own.
    pub one_packet: bool,
    /// Scheduler flags (`-b`).
    pub sched_flags: SchedFlags,
    /// Persistence engine (`--pe sip`).
    pub pe_name: Option<String>,
    /// Real servers, in the order they were listed.
    pub servers: Vec<RealServer>,
    /// Options of a saved line the code does not know, kept as written.
    pub unknown: Vec<String>,
    /// Counters, when read from the kernel.
    pub counters: Option<Counters>,
    /// Rates, when read from the kernel.
    pub rates: Option<Rates>,
}

impl Service {
    /// A service with scheduler `scheduler` and no servers.
    pub fn new(key: ServiceKey, scheduler: Scheduler) -> Service {
        Service {
            key,
            scheduler,
            persistence: None,
            one_packet: false,
            sched_flags: SchedFlags::NONE,
            pe_name: None,
            servers: Vec::new(),
            unknown: Vec::new(),
            counters: None,
            rates: None,
        }
    }

    /// The `IP_VS_SVC_F_*` flags of the service (persistent, one-packet, scheduler flags).
    pub fn flags(&self) -> u32 {
        let mut f = self.sched_flags.0;
        if self.persistence.is_some() {
            f |= svc_flags::PERSISTENT;
        }
        if self.one_packet {
            f |= svc_flags::ONEPACKET;
        }
        f
    }

    /// The real server at `addr:port`.
    pub fn server(&self, addr: IpAddr, port: u16) -> Option<&RealServer> {
        self.servers
            .iter()
            .find(|s| s.addr == addr && s.port == port)
    }

    /// The same service without counters (its configuration only).
    pub fn config(&self) -> Service {
        Service {
            counters: None,
            rates: None,
            servers: self.servers.iter().map(RealServer::config).collect(),
            ..self.clone()
        }
    }
}

/// The IPVS table of a node (`ipvsadm -Sn`, or a netlink dump).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct IpvsState {
    /// Virtual services, in the order read.
    pub services: Vec<Service>,
}

impl IpvsState {
    /// The service with key `key`.
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.iter().find(|s| &s.key == key)
    }

    /// The service with key `key`, mutable.
    pub fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| &s.key == key)
    }

    /// The same table without counters (configuration only), for comparing a dump with what
    /// was asked for.
    pub fn config(&self) -> IpvsState {
        IpvsState {
            services: self.services.iter().map(Service::config).collect(),
        }
    }

    /// Sorts services and their real servers in the order `ipvsadm -S` / `-L` prints them
    /// ([`ServiceKey::ipvsadm_order`]; servers by address, then port). Kernel dumps come in
    /// hash order; sorting makes them comparable with ipvsadm's output.
    pub fn sort_like_ipvsadm(&mut self) {
        self.services.sort_by(|a, b| a.key.ipvsadm_order(&b.key));
        for s in &mut self.services {
            s.servers.sort_by_key(|a| (a.addr, a.port));
        }
    }
}
