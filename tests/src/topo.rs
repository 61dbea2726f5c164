//! The differential suite's topology: one device under test (a node) between a client and
//! servers, built once and reused by every case.
//!
//! ```text
//!                 segment "net" 198.18.0.0/24, 2001:db8::/64
//!   client .101 ───────────────────────────────── eth0 .11  dut (node1)
//!   client eth1 198.18.3.2 ──── link3 ──────────── eth3 198.18.3.1     (asymmetric return path)
//!                                                  eth1 198.18.1.1 ── ext1 198.18.1.2, lo 198.19.255.10
//!                                                  eth2 198.18.2.1 ── ext2 198.18.2.2, lo 198.19.255.10
//!                                                  cali… ── ep1 198.18.65.2, ep2 .3, ep3 .4 (pods)
//! ```
//! The DUT routes the service ranges 198.19.0.0/16 and 2001:db8:19::/64 to ext1 (as a default
//! route would).
//! Echo servers answer with their host's name and the client address they saw: pods and the
//! ext hosts on TCP 80, 8080 and UDP 53, 5353; the DUT itself on TCP 80 and UDP 53. The DUT
//! routes 198.19.255.10 (and 2001:db8:ff::10) to ext1; cases add routes and rules to send it
//! to ext2 instead.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use lab::{EchoServer, EchoSpec, Host, Lab};

/// The shared address on ext1's and ext2's loopback (which one answers shows the path).
pub const ANYCAST4: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 10);
/// The IPv6 shared address.
pub const ANYCAST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0x10);
/// The ClusterIP range, routed by the DUT to ext1.
pub const SERVICES4: &str = "198.19.0.0/16";
/// The IPv6 service range, routed by the DUT to ext1.
pub const SERVICES6: &str = "2001:db8:19::/64";
/// An extra client source address, routed back by the DUT over link3 (not the segment).
pub const CLIENT_ALT4: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 1);

/// Ports the pods and ext hosts listen on.
pub const SERVER_TCP: &[u16] = &[80, 8080];
/// UDP ports the pods and ext hosts answer on.
pub const SERVER_UDP: &[u16] = &[53, 5353];
/// TCP ports the DUT listens on.
pub const DUT_TCP: &[u16] = &[80];
/// UDP ports the DUT answers on.
pub const DUT_UDP: &[u16] = &[53];

/// Who listens where, and which host owns which address.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// Address -> host name (every address of every host, loopback extras included).
    pub owners: BTreeMap<IpAddr, String>,
    /// Host -> (TCP ports, UDP ports).
    pub listeners: BTreeMap<String, (Vec<u16>, Vec<u16>)>,
}

impl World {
    /// The host owning `addr`.
    pub fn owner(&self, addr: IpAddr) -> Option<&str> {
        self.owners.get(&addr).map(String::as_str)
    }

    /// Whether `host` listens on `port` (TCP when `tcp`, else UDP).
    pub fn listens(&self, host: &str, tcp: bool, port: u16) -> bool {
        self.listeners.get(host).is_some_and(|(t, u)| {
            if tcp {
                t.contains(&port)
            } else {
                u.contains(&port)
            }
        })
    }
}

/// The built topology.
pub struct DutLab {
    /// The lab (dropping it removes every namespace).
    pub lab: Lab,
    /// The client host.
    pub client: Host,
    /// The device under test.
    pub dut: Host,
    /// Server host behind the DUT's eth1.
    pub ext1: Host,
    /// Server host behind the DUT's eth2.
    pub ext2: Host,
    /// Pods of the DUT.
    pub eps: Vec<Host>,
    /// Addresses and listeners.
    pub world: World,
    /// The DUT's interfaces, by role: `net` (segment), `ext1`, `ext2`, `client` (link3), and
    /// each pod's cali device.
    pub ifs: BTreeMap<String, String>,
    /// A scratch directory inside the lab dir.
    pub dir: PathBuf,
    _echo: Vec<EchoServer>,
}

/// Errors building or driving the lab.
pub type Result<T> = std::result::Result<T, lab::LabError>;

impl DutLab {
    /// Builds the topology (needs root).
    pub fn build(name: &str) -> Result<DutLab> {
        lab::require_root()?;
        let lab = Lab::new(name)?;
        let dut = lab.node("dut")?;
        let client = lab.host("client")?;
        let net = lab.segment("net", &[&dut, &client])?;
        let ext1 = lab.host("ext1")?;
        let ext2 = lab.host("ext2")?;
        let l1 = lab.link(&dut, &ext1)?;
        let l2 = lab.link(&dut, &ext2)?;
        let l3 = lab.link(&dut, &client)?;
        let mut eps = Vec::new();
        for i in 1..=3 {
            eps.push(lab.pod(&dut, &format!("ep{i}"))?);
        }
        let v4 = |i: &lab::Iface| {
            i.ipv4()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        };
        let v6 = |i: &lab::Iface| {
            i.ipv6()
                .map(IpAddr::V6)
                .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        };
        // The kernel rate-limits ICMP errors (per peer: a burst of 6, then one a second; and a
        // global budget). Cases run back to back from the same client, so an unreachable could go
        // unsent and look like a silent drop. No ICMP type is rate-limited in these hosts.
        for h in [&dut, &client, &ext1, &ext2] {
            h.sysctl("net.ipv4.icmp_ratemask", "0")?;
            h.sysctl("net.ipv6.icmp.ratemask", "")?;
            h.sysctl("net.ipv6.icmp.ratelimit", "0")?;
        }
        let dut4 = dut.ipv4()?;
        let dut6 = dut.ipv6()?;
        client.add_route(&format!("198.18.0.0/15 via {dut4}"))?;
        client.add_route(&format!("2001:db8::/32 via {dut6}"))?;
        client.add_addr("lo", format!("{CLIENT_ALT4}/32").parse().expect("net"))?;
        for (ext, l) in [(&ext1, &l1), (&ext2, &l2)] {
            ext.add_route(&format!("198.18.0.0/15 via {}", v4(&l.a)))?;
            ext.add_route(&format!("2001:db8::/32 via {}", v6(&l.a)))?;
            ext.add_addr("lo", format!("{ANYCAST4}/32").parse().expect("net"))?;
            ext.add_addr("lo", format!("{ANYCAST6}/128").parse().expect("net"))?;
        }
        dut.add_route(&format!("{ANYCAST4}/32 via {}", v4(&l1.b)))?;
        dut.add_route(&format!("{ANYCAST6}/128 via {}", v6(&l1.b)))?;
        dut.add_route(&format!("{CLIENT_ALT4}/32 via {}", v4(&l3.b)))?;
        // Service ranges are routed somewhere (a node's default route would do it).
        dut.add_route(&format!("{SERVICES4} via {}", v4(&l1.b)))?;
        dut.add_route(&format!("{SERVICES6} via {}", v6(&l1.b)))?;
        let mut ifs = BTreeMap::new();
        ifs.insert("net".to_string(), dut.iface_on(&net)?.name);
        ifs.insert("ext1".to_string(), l1.a.name.clone());
        ifs.insert("ext2".to_string(), l2.a.name.clone());
        ifs.insert("client".to_string(), l3.a.name.clone());
        for ep in &eps {
            ifs.insert(ep.name().to_string(), ep.node_iface()?.name);
        }
        let server = EchoSpec {
            tcp: SERVER_TCP.to_vec(),
            udp: SERVER_UDP.to_vec(),
            ..EchoSpec::default()
        };
        let mut echo = Vec::new();
        let mut world = World::default();
        for h in eps.iter().chain([&ext1, &ext2]) {
            echo.push(h.echo_server(server.clone())?);
            world.listeners.insert(
                h.name().to_string(),
                (SERVER_TCP.to_vec(), SERVER_UDP.to_vec()),
            );
        }
        echo.push(dut.echo_server(EchoSpec {
            tcp: DUT_TCP.to_vec(),
            udp: DUT_UDP.to_vec(),
            ..EchoSpec::default()
        })?);
        world
            .listeners
            .insert("dut".to_string(), (DUT_TCP.to_vec(), DUT_UDP.to_vec()));
        for h in lab.hosts() {
            for a in h.addrs() {
                world.owners.entry(a.addr()).or_insert(h.name().to_string());
            }
        }
        // both ext hosts own the shared address: the next hop decides who answers
        world.owners.remove(&IpAddr::V4(ANYCAST4));
        world.owners.remove(&IpAddr::V6(ANYCAST6));
        let dir = lab.dir().join("cases");
        std::fs::create_dir_all(&dir).map_err(|e| lab::LabError::Io {
            op: "create",
            path: dir.clone(),
            source: e,
        })?;
        Ok(DutLab {
            lab,
            client,
            dut,
            ext1,
            ext2,
            eps,
            world,
            ifs,
            dir,
            _echo: echo,
        })
    }

    /// The DUT's interface for a role (`net`, `ext1`, `ext2`, `client`, `ep1`...).
    pub fn dut_if(&self, role: &str) -> String {
        self.ifs
            .get(role)
            .cloned()
            .unwrap_or_else(|| role.to_string())
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        [&self.client, &self.dut, &self.ext1, &self.ext2]
            .into_iter()
            .chain(self.eps.iter())
            .find(|h| h.name() == name)
    }

    /// Whether `host` owns `addr` (the shared address belongs to both ext hosts).
    pub fn owns(&self, host: &str, addr: IpAddr) -> bool {
        if addr == IpAddr::V4(ANYCAST4) || addr == IpAddr::V6(ANYCAST6) {
            return host == "ext1" || host == "ext2";
        }
        self.world.owner(addr) == Some(host)
    }
}
