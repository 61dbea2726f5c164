//! Test hosts in network namespaces: nodes, pods, routers and plain hosts joined by veth links
//! and bridged segments, with addresses from the project's plan; commands, long-lived
//! processes and Rust closures inside a host; traffic helpers that report precisely how a
//! request failed; and an echo server that names the host that answered.
//!
//! ```text
//!            lab-<id>-sw-rack (br0)
//!          /         |          \
//!   lab-<id>-node1  lab-<id>-node2  lab-<id>-tor        198.18.0.11 / .12 / .1
//!        |  cali...      |  cali...
//!   lab-<id>-a      lab-<id>-b                          198.18.65.2/32, 198.18.66.2/32
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! let lab = lab::Lab::new("example")?;
//! let (n1, n2, tor) = (lab.node("node1")?, lab.node("node2")?, lab.router("tor")?);
//! lab.segment("rack", &[&n1, &n2, &tor])?;
//! let (a, b) = (lab.pod(&n1, "a")?, lab.pod(&n2, "b")?);
//! n1.add_route(&format!("{} via {}", n2.pod_cidr4()?, n2.ipv4()?))?;
//! n2.add_route(&format!("{} via {}", n1.pod_cidr4()?, n1.ipv4()?))?;
//! let _echo = b.echo_server(lab::EchoSpec { tcp: vec![8080], ..Default::default() })?;
//! let greeting = a.tcp_connect(b.ipv4()?, 8080, Duration::from_secs(1))?;
//! assert!(greeting.starts_with("b tcp"));
//! # Ok(()) }
//! ```
//! Dropping the lab (also while a test panics) stops its processes and deletes its
//! namespaces; [`sweep_stale`] removes what crashed runs left behind.

pub mod apiserver;
pub mod demo;
pub mod echo;
pub mod error;
pub mod host;
pub mod lab;
pub mod link;
pub mod netns;
pub mod plan;
pub mod process;
pub mod state;
pub mod topology;
pub mod traffic;
pub mod vm;

pub use echo::{EchoServer, EchoSpec, Greeting};
pub use error::{LabError, Result};
pub use host::{Host, HostKind, Iface, Peer};
pub use lab::{HostOpts, Lab};
pub use link::{IfaceOpts, Link, LinkOpts, PodOpts, Segment, SegmentOpts};
pub use process::{Process, SpawnOpts};
pub use state::{LabState, down, list_labs, sweep_stale};
pub use topology::{Topology, TopologyError};
pub use traffic::{ConnError, ConnOpts, HttpResponse, Icmp};

/// Fails with a clear message unless the process runs as root (the lab creates namespaces).
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
/// For waiting on a daemon (a BGP session, a listening socket), not for timing assertions.
pub fn wait_until(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
