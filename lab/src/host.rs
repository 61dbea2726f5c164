//! A host of a lab (node, router, pod, plain host, segment switch): its addresses and
//! interfaces as data, and ways to act inside its network namespace: commands, long-lived
//! processes, Rust closures on a `setns` thread, and the traffic helpers.
//!
//! ```text
//!   Host ──exec/sh/output──> ip netns exec NS CMD          -> Output
//!        ──spawn──────────> Process (logs in the lab dir, killed on drop)
//!        ──run(|| ..)─────> thread in NS -> T              (sockets, netlink)
//!        ──tcp_connect / udp_request / http_get / ping ──> Ok(greeting) | Err(ConnError)
//!        ──echo_server────> EchoServer (threads in NS, stopped on drop)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::echo::{EchoServer, EchoSpec};
use crate::error::{LabError, Result};
use crate::lab::Shared;
use crate::link::Segment;
use crate::netns;
use crate::plan;
use crate::process::{Process, SpawnOpts};
use crate::traffic::{self, ConnError, ConnOpts, HttpResponse};

/// What part a host plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    /// A Kubernetes node: ip_forward on, an address on the node network, a pod CIDR.
    Node,
    /// A router (ToR): ip_forward on, the low addresses of the node network.
    Router,
    /// A pod: one veth to its node, a /32 and a /128, default route via 169.254.1.1 / fe80::1.
    Pod,
    /// A plain host (a client, an external server): no forwarding.
    Host,
    /// The namespace holding a segment's bridge.
    Switch,
}

impl HostKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            HostKind::Node => "node",
            HostKind::Router => "router",
            HostKind::Pod => "pod",
            HostKind::Host => "host",
            HostKind::Switch => "switch",
        }
    }
}

/// What is on the other end of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Peer {
    /// The other end of a veth, in another host.
    Host {
        /// The other host.
        host: String,
        /// Its interface.
        iface: String,
    },
    /// A port of a segment's bridge.
    Segment {
        /// The segment.
        segment: String,
        /// The bridge port (in the switch namespace).
        port: String,
    },
    /// Nothing: the loopback interface (extra addresses).
    Loopback,
}

/// An interface of a host, as `ip addr show` would list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iface {
    /// The interface name inside the host's namespace (`eth0`, `cali1a2b...`, `lo`).
    pub name: String,
    /// Its addresses (global and the explicit link-locals), in the order they were added.
    pub addrs: Vec<IpNet>,
    /// What it connects to.
    pub peer: Peer,
}

impl Iface {
    /// The first IPv4 address.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.net4().map(|n| n.addr())
    }

    /// The first IPv4 address with its prefix.
    pub fn net4(&self) -> Option<Ipv4Net> {
        self.addrs.iter().find_map(|a| match a {
            IpNet::V4(n) => Some(*n),
            IpNet::V6(_) => None,
        })
    }

    /// The first global (non link-local) IPv6 address.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.net6().map(|n| n.addr())
    }

    /// The first global IPv6 address with its prefix.
    pub fn net6(&self) -> Option<Ipv6Net> {
        self.addrs.iter().find_map(|a| match a {
            IpNet::V6(n) if (n.addr().segments()[0] & 0xffc0) != 0xfe80 => Some(*n),
            _ => None,
        })
    }
}

/// A handle on one host of a lab. Cheap to clone; every query reads the lab's current state.
/// Handles outliving their [`crate::Lab`] point at deleted namespaces and fail cleanly.
#[derive(Clone)]
pub struct Host {
    pub(crate) sh: Arc<Shared>,
    pub(crate) name: String,
    pub(crate) netns: String,
    pub(crate) kind: HostKind,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("netns", &self.netns)
            .finish()
    }
}

impl Host {
    /// The host's name in the lab (`node1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its network namespace (`lab-3fa2c1-node1`), for `ip netns exec`.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Its kind.
    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// Its interfaces, in creation order.
    pub fn ifaces(&self) -> Vec<Iface> {
        self.sh
            .with_host(&self.name, |h| h.ifaces.clone())
            .unwrap_or_default()
    }

    /// The interface called `name`.
    pub fn iface(&self, name: &str) -> Result<Iface> {
        self.ifaces()
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| self.unknown("interface", name))
    }

    /// The interface of this host on the veth to `other`.
    pub fn iface_to(&self, other: &Host) -> Result<Iface> {
        self.ifaces()
            .into_iter()
            .find(|i| matches!(&i.peer, Peer::Host { host, .. } if *host == other.name))
            .ok_or_else(|| self.unknown("link to", &other.name))
    }

    /// The interface of this host on segment `seg`.
    pub fn iface_on(&self, seg: &Segment) -> Result<Iface> {
        self.ifaces()
            .into_iter()
            .find(|i| matches!(&i.peer, Peer::Segment { segment, .. } if *segment == seg.name()))
            .ok_or_else(|| self.unknown("interface on segment", seg.name()))
    }

    /// Every address of the host (all interfaces).
    pub fn addrs(&self) -> Vec<IpNet> {
        self.ifaces().into_iter().flat_map(|i| i.addrs).collect()
    }

    /// The host's main IPv4 address: its node-network address, a pod's own address, else the
    /// first global one.
    pub fn ipv4(&self) -> Result<Ipv4Addr> {
        let primary = self.sh.with_host(&self.name, |h| h.primary4).flatten();
        primary
            .or_else(|| {
                self.ifaces().iter().find_map(|i| {
                    if i.peer == Peer::Loopback {
                        None
                    } else {
                        i.ipv4()
                    }
                })
            })
            .ok_or_else(|| LabError::NoAddress {
                host: self.name.clone(),
                family: "IPv4",
            })
    }

    /// The host's main IPv6 address (same rule as [`Host::ipv4`]).
    pub fn ipv6(&self) -> Result<Ipv6Addr> {
        let primary = self.sh.with_host(&self.name, |h| h.primary6).flatten();
        primary
            .or_else(|| {
                self.ifaces().iter().find_map(|i| {
                    if i.peer == Peer::Loopback {
                        None
                    } else {
                        i.ipv6()
                    }
                })
            })
            .ok_or_else(|| LabError::NoAddress {
                host: self.name.clone(),
                family: "IPv6",
            })
    }

    /// A node's IPv4 pod CIDR (198.18.(64+k).0/24).
    pub fn pod_cidr4(&self) -> Result<Ipv4Net> {
        self.sh
            .with_host(&self.name, |h| h.pod_cidrs.map(|c| c.0))
            .flatten()
            .ok_or_else(|| self.wrong_kind("only nodes have a pod CIDR"))
    }

    /// A node's IPv6 pod CIDR (2001:db8:64:k::/64).
    pub fn pod_cidr6(&self) -> Result<Ipv6Net> {
        self.sh
            .with_host(&self.name, |h| h.pod_cidrs.map(|c| c.1))
            .flatten()
            .ok_or_else(|| self.wrong_kind("only nodes have a pod CIDR"))
    }

    /// The pods of a node, in creation order.
    pub fn pods(&self) -> Vec<Host> {
        let names = self
            .sh
            .with_host(&self.name, |h| h.pods.clone())
            .unwrap_or_default();
        names
            .iter()
            .filter_map(|n| Shared::handle(&self.sh, n))
            .collect()
    }

    /// A pod's node.
    pub fn node(&self) -> Result<Host> {
        self.sh
            .with_host(&self.name, |h| h.node.clone())
            .flatten()
            .and_then(|n| Shared::handle(&self.sh, &n))
            .ok_or_else(|| self.wrong_kind("only pods have a node"))
    }

    /// A pod's veth end on its node (`cali...`, holds proxy_arp and the pod's /32 route).
    pub fn node_iface(&self) -> Result<Iface> {
        let node = self.node()?;
        node.iface_to(self)
    }

    fn unknown(&self, what: &'static str, name: &str) -> LabError {
        LabError::Unknown {
            what,
            name: format!("{name} (on {})", self.name),
            lab: self.sh.id.clone(),
        }
    }

    fn wrong_kind(&self, why: &'static str) -> LabError {
        LabError::WrongKind {
            host: self.name.clone(),
            kind: self.kind.as_str(),
            why,
        }
    }

    // ---- commands -------------------------------------------------------------------------

    /// Runs `argv` in the host (`ip netns exec NS argv...`) and fails unless it exits 0.
    pub fn exec(&self, argv: &[&str]) -> Result<Output> {
        let cmd = netns::exec_cmd(&self.netns, argv);
        netns::checked(cmd)
    }

    /// Runs `argv` in the host and returns its output whatever the exit status.
    pub fn output(&self, argv: &[&str]) -> Result<Output> {
        netns::output(netns::exec_cmd(&self.netns, argv))
    }

    /// Runs a shell script in the host (`sh -c`), fails unless it exits 0, returns stdout.
    pub fn sh(&self, script: &str) -> Result<String> {
        let out = self.exec(&["sh", "-c", script])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ip -n NS ARGS...`: stdout of an `ip` command inside the host.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        netns::ip(&self.netns, args)
    }

    /// Adds an address to an interface (`ip addr add NET dev IFACE`); `lo` is accepted.
    /// Refused outside the address plan.
    pub fn add_addr(&self, iface: &str, net: IpNet) -> Result<()> {
        plan::check_net(&net)?;
        let net_s = net.to_string();
        let mut args = vec!["addr", "add", net_s.as_str(), "dev", iface];
        if matches!(net, IpNet::V6(_)) {
            args.push("nodad");
        }
        self.ip(&args)?;
        self.sh.record_addr(&self.name, iface, net);
        Ok(())
    }

    /// Adds a route given as `ip route add` arguments (`198.18.66.0/24 via 198.18.0.12`).
    /// Every address in it must be in the plan.
    pub fn add_route(&self, spec: &str) -> Result<()> {
        let words = route_words(spec)?;
        let mut args: Vec<&str> = Vec::new();
        if words.iter().any(|w| w.contains(':')) {
            args.push("-6");
        }
        args.extend(["route", "add"]);
        args.extend(words.iter().map(|s| s.as_str()));
        self.ip(&args).map(drop)
    }

    /// Writes a `net.*` sysctl inside the host (`sysctl -w KEY=VALUE`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        netns::sysctls(&self.netns, &[(key.to_string(), value.to_string())])
    }

    /// Starts a long-lived program in the host. Its stdout and stderr go to files in the lab
    /// dir; it is stopped (SIGTERM, then SIGKILL after a grace period) when the returned
    /// [`Process`] or the lab is dropped.
    pub fn spawn(&self, argv: &[&str]) -> Result<Process> {
        self.spawn_with(argv, &SpawnOpts::default())
    }

    /// [`Host::spawn`] with a name, environment, working dir or grace period.
    pub fn spawn_with(&self, argv: &[&str], opts: &SpawnOpts) -> Result<Process> {
        crate::process::spawn(&self.sh, &self.name, &self.netns, argv, opts)
    }

    /// Runs `f` on a new thread inside the host's network namespace and returns its result.
    /// Sockets made there stay in the namespace; a panic in `f` is resumed here.
    pub fn run<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        netns::run_in(&self.netns, f)
    }

    // ---- traffic --------------------------------------------------------------------------

    /// Connects over TCP and returns the peer's greeting (an echo server's: `host proto
    /// client -> local`), or exactly how it failed.
    pub fn tcp_connect(
        &self,
        addr: impl Into<IpAddr>,
        port: u16,
        timeout: Duration,
    ) -> Result<String, ConnError> {
        self.tcp_connect_with(addr, port, &ConnOpts::new(timeout))
    }

    /// [`Host::tcp_connect`] with a fixed source port or address.
    pub fn tcp_connect_with(
        &self,
        addr: impl Into<IpAddr>,
        port: u16,
        opts: &ConnOpts,
    ) -> Result<String, ConnError> {
        let addr = addr.into();
        self.in_ns(|| traffic::tcp_connect(addr, port, opts))
    }

    /// Sends one UDP datagram from a connected socket and returns the first reply, or how it
    /// failed (ICMP port unreachable shows as [`ConnError::Refused`], silence as Timeout).
    pub fn udp_request(
        &self,
        addr: impl Into<IpAddr>,
        port: u16,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<String, ConnError> {
        self.udp_request_with(addr, port, payload, &ConnOpts::new(timeout))
    }

    /// [`Host::udp_request`] with a fixed source port or address.
    pub fn udp_request_with(
        &self,
        addr: impl Into<IpAddr>,
        port: u16,
        payload: &[u8],
        opts: &ConnOpts,
    ) -> Result<String, ConnError> {
        let addr = addr.into();
        self.in_ns(|| traffic::udp_request(addr, port, payload, opts))
    }

    /// `GET PATH` over HTTP/1.0; returns status and body.
    pub fn http_get(
        &self,
        addr: impl Into<IpAddr>,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<HttpResponse, ConnError> {
        let addr = addr.into();
        let opts = ConnOpts::new(timeout);
        self.in_ns(|| traffic::http_get(addr, port, path, &opts))
    }

    /// One ICMP echo request (ping socket); Ok when the reply came back.
    pub fn ping(&self, addr: impl Into<IpAddr>, timeout: Duration) -> Result<(), ConnError> {
        let addr = addr.into();
        self.in_ns(|| traffic::ping(addr, timeout))
    }

    /// Starts an echo server (TCP, UDP, HTTP) answering with this host's name and the client
    /// address it saw, on all addresses of the host. Stopped when dropped.
    pub fn echo_server(&self, spec: EchoSpec) -> Result<EchoServer> {
        let name = spec.name.clone().unwrap_or_else(|| self.name.clone());
        EchoServer::start(&self.netns, name, &spec)
    }

    fn in_ns<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, ConnError> + Send,
    ) -> Result<T, ConnError> {
        match self.run(f) {
            Ok(r) => r,
            Err(e) => Err(ConnError::Setup { why: e.to_string() }),
        }
    }
}

/// Splits a route spec into words and checks every address in it against the plan.
pub(crate) fn route_words(spec: &str) -> Result<Vec<String>> {
    let words: Vec<String> = spec.split_whitespace().map(str::to_string).collect();
    if words.is_empty() {
        return Err(LabError::BadSpec {
            what: "route",
            text: spec.into(),
            why: "empty".into(),
        });
    }
    for w in &words {
        let addr = w
            .parse::<IpNet>()
            .or_else(|_| w.parse::<IpAddr>().map(IpNet::from));
        if let Ok(net) = addr {
            plan::check_net(&net)?;
        }
    }
    if words[0] != "default"
        && words[0].parse::<IpNet>().is_err()
        && words[0].parse::<IpAddr>().is_err()
    {
        let types = [
            "blackhole",
            "unreachable",
            "prohibit",
            "throw",
            "local",
            "unicast",
        ];
        if !types.contains(&words[0].as_str()) {
            return Err(LabError::BadSpec {
                what: "route",
                text: spec.into(),
                why: "expected a prefix, `default`, or a route type and a prefix".into(),
            });
        }
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_words_are_checked_against_the_plan() {
        assert!(route_words("198.18.66.0/24 via 198.18.0.12").is_ok());
        assert!(route_words("default via 169.254.1.1 dev eth0").is_ok());
        assert!(route_words("blackhole 198.18.66.0/24").is_ok());
        assert!(route_words("2001:db8:64:2::/64 via 2001:db8::12").is_ok());
        let err = route_words("10.0.0.0/8 via 198.18.0.1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("10.0.0.0/8"), "{err}");
        assert!(route_words("198.18.66.0/24 via 192.168.0.1").is_err());
        assert!(route_words("").is_err());
        assert!(route_words("flush all").is_err());
    }
}
