//! The top-of-rack router: BIRD 2 (default) or FRR (bgpd + zebra), one eBGP session per node,
//! learned routes re-advertised to the other nodes and installed in the router's kernel.
//!
//! ```text
//!   tor 198.18.0.1 AS 65000 ── eBGP ── node1 198.18.0.11 AS 65001
//!                           ── eBGP ── node2 198.18.0.12 AS 65002 ...
//!   BIRD: bird -f -c tor.bird.conf -s tor.bird.ctl     birdc -s tor.bird.ctl show protocols
//!   FRR:  zebra + bgpd -f bgpd.conf --vty_socket DIR   vtysh --vty_socket DIR -c 'show bgp summary'
//! ```
//! The session to a node is named after the node (`protocol bgp node1`); shutting it is
//! `birdc disable node3` (`neighbor 198.18.0.13 shutdown` in FRR).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::DemoError;
use crate::{Host, Process, SpawnOpts};

/// The router's AS.
pub const ROUTER_ASN: u32 = 65000;

/// Which BGP daemon runs on the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterKind {
    /// BIRD 2.
    Bird,
    /// FRR's bgpd with zebra.
    Frr,
}

impl RouterKind {
    /// `bird` or `frr`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouterKind::Bird => "bird",
            RouterKind::Frr => "frr",
        }
    }

    /// The programs it needs, with the package that has them.
    pub fn programs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            RouterKind::Bird => &[("bird", "bird2"), ("birdc", "bird2")],
            RouterKind::Frr => &[
                ("/usr/lib/frr/bgpd", "frr"),
                ("/usr/lib/frr/zebra", "frr"),
                ("vtysh", "frr"),
            ],
        }
    }
}

/// A BGP neighbour of the router: a node.
#[derive(Debug, Clone)]
pub struct Neighbor {
    /// The node's name (also the BIRD protocol's name).
    pub name: String,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its AS.
    pub asn: u32,
}

/// BIRD 2's configuration for the router (`bird.conf(5)`, BIRD 2 user's guide §6.1 BGP).
pub fn bird_conf(id: Ipv4Addr, neighbors: &[Neighbor]) -> String {
    let mut c = format!(
        "router id {id};
log stderr {{ info, remote, warning, error, auth, fatal, bug }};
protocol device {{ scan time 2; }}
# learned routes go to the kernel, so traffic between nodes may flow through the router
protocol kernel {{ ipv4 {{ export where source = RTS_BGP; }}; merge paths on; }}
template bgp node {{
  local {id} as {ROUTER_ASN};
  hold time 9; keepalive time 3;
  connect delay time 1; connect retry time 1; error wait time 1, 3;
  ipv4 {{ import all; export where source = RTS_BGP; }};
}}
"
    );
    for n in neighbors {
        c += &format!(
            "protocol bgp {} from node {{ neighbor {} as {}; }}\n",
            n.name, n.addr, n.asn
        );
    }
    c
}

/// FRR's bgpd configuration for the router (FRR user guide, "BGP").
pub fn frr_conf(id: Ipv4Addr, neighbors: &[Neighbor]) -> String {
    let mut c = format!(
        "frr defaults datacenter
hostname tor
log stdout informational
router bgp {ROUTER_ASN}
 bgp router-id {id}
 no bgp ebgp-requires-policy
 no bgp network import-check
"
    );
    for n in neighbors {
        c += &format!(
            " neighbor {a} remote-as {asn}\n neighbor {a} timers 3 9\n neighbor {a} timers connect 1\n",
            a = n.addr,
            asn = n.asn
        );
    }
    c += " address-family ipv4 unicast\n";
    for n in neighbors {
        c += &format!("  neighbor {} activate\n", n.addr);
    }
    c += " exit-address-family\n";
    c
}

/// The running router daemon.
#[derive(Debug)]
pub struct Router {
    kind: RouterKind,
    host: Host,
    /// BIRD: the control socket; FRR: the run directory (vty sockets).
    ctl: PathBuf,
    neighbors: Vec<Neighbor>,
    procs: Vec<Process>,
}

impl Router {
    /// Writes the configuration into `dir` and starts the daemon(s) in `host`; returns once
    /// the control socket answers.
    pub fn start(
        kind: RouterKind,
        host: &Host,
        dir: &Path,
        neighbors: Vec<Neighbor>,
    ) -> Result<Router, DemoError> {
        let id = host.ipv4()?;
        let mut r = Router {
            kind,
            host: host.clone(),
            ctl: PathBuf::new(),
            neighbors,
            procs: Vec::new(),
        };
        match kind {
            RouterKind::Bird => {
                let cf = dir.join("tor.bird.conf");
                r.ctl = dir.join("tor.bird.ctl");
                write(&cf, &bird_conf(id, &r.neighbors))?;
                let pidf = dir.join("tor.bird.pid");
                let p = host.spawn_with(
                    &[
                        "bird",
                        "-f",
                        "-c",
                        &path_str(&cf),
                        "-s",
                        &path_str(&r.ctl),
                        "-P",
                        &path_str(&pidf),
                    ],
                    &named("bird"),
                )?;
                r.procs.push(p);
            }
            RouterKind::Frr => {
                let run = dir.join("tor.frr");
                std::fs::create_dir_all(&run).map_err(|e| DemoError::io("create", &run, e))?;
                r.ctl = run.clone();
                let (cf, zc) = (run.join("bgpd.conf"), run.join("zebra.conf"));
                write(&cf, &frr_conf(id, &r.neighbors))?;
                write(&zc, "hostname tor\n")?;
                let rs = path_str(&run);
                // FRR's daemons drop to the frr user: it must own its run directory
                host.exec(&["chown", "-R", "frr:frr", &rs])?;
                let (zpid, zapi) = (format!("{rs}/zebra.pid"), format!("{rs}/zserv.api"));
                let z = host.spawn_with(
                    &[
                        "/usr/lib/frr/zebra",
                        "-u",
                        "frr",
                        "-g",
                        "frr",
                        "-f",
                        &path_str(&zc),
                        "-i",
                        &zpid,
                        "-z",
                        &zapi,
                        "--vty_socket",
                        &rs,
                        "-P",
                        "0",
                    ],
                    &named("zebra"),
                )?;
                r.procs.push(z);
                crate::wait_until(Duration::from_secs(10), || run.join("zserv.api").exists());
                let bpid = format!("{rs}/bgpd.pid");
                let b = host.spawn_with(
                    &[
                        "/usr/lib/frr/bgpd",
                        "-u",
                        "frr",
                        "-g",
                        "frr",
                        "-f",
                        &path_str(&cf),
                        "-i",
                        &bpid,
                        "-z",
                        &zapi,
                        "--vty_socket",
                        &rs,
                        "-P",
                        "0",
                    ],
                    &named("frr-bgpd"),
                )?;
                r.procs.push(b);
            }
        }
        let up = crate::wait_until(Duration::from_secs(15), || r.status_ok());
        if !up {
            return Err(DemoError::Start {
                what: format!("{} on tor", kind.as_str()),
                logs: r.logs(),
            });
        }
        Ok(r)
    }

    /// The daemon(s): (name, PID).
    pub fn pids(&self) -> Vec<(String, i32)> {
        self.procs
            .iter()
            .map(|p| (p.name().to_string(), p.pid()))
            .collect()
    }

    fn status_ok(&self) -> bool {
        match self.kind {
            RouterKind::Bird => self.birdc(&["show", "status"]).contains("Daemon is up"),
            RouterKind::Frr => self.vtysh(&["show bgp summary json"]).contains('{'),
        }
    }

    fn birdc(&self, args: &[&str]) -> String {
        let ctl = path_str(&self.ctl);
        let mut argv = vec!["birdc", "-s", &ctl];
        argv.extend_from_slice(args);
        self.out(&argv)
    }

    fn vtysh(&self, lines: &[&str]) -> String {
        let run = path_str(&self.ctl);
        let mut argv = vec!["vtysh", "--vty_socket", &run];
        for l in lines {
            argv.extend(["-c", l]);
        }
        self.out(&argv)
    }

    fn out(&self, argv: &[&str]) -> String {
        match self.host.output(argv) {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(_) => String::new(),
        }
    }

    /// The command that shows the sessions, and its output (`birdc show protocols`,
    /// `vtysh -c 'show bgp summary'`).
    pub fn show_sessions(&self) -> (String, String) {
        match self.kind {
            RouterKind::Bird => (
                "birdc show protocols".into(),
                self.birdc(&["show", "protocols"]),
            ),
            RouterKind::Frr => (
                "vtysh -c 'show bgp summary'".into(),
                self.vtysh(&["show bgp summary"]),
            ),
        }
    }

    /// The router's view of the session to each node: (node, state), `Established` when up.
    pub fn sessions(&self) -> Vec<(String, String)> {
        match self.kind {
            RouterKind::Bird => {
                let text = self.birdc(&["show", "protocols"]);
                self.neighbors
                    .iter()
                    .map(|n| {
                        let state = text
                            .lines()
                            .find(|l| l.split_whitespace().next() == Some(n.name.as_str()))
                            .map(bird_info)
                            .unwrap_or_else(|| "missing".into());
                        (n.name.clone(), state)
                    })
                    .collect()
            }
            RouterKind::Frr => {
                let v: Value = serde_json::from_str(&self.vtysh(&["show bgp summary json"]))
                    .unwrap_or(Value::Null);
                let peers = &v["ipv4Unicast"]["peers"];
                self.neighbors
                    .iter()
                    .map(|n| {
                        let s = peers[n.addr.to_string()]["state"]
                            .as_str()
                            .unwrap_or("missing")
                            .to_string();
                        (n.name.clone(), s)
                    })
                    .collect()
            }
        }
    }

    /// Shuts the session to `node` (administratively down), or brings it back.
    pub fn set_session(&self, node: &str, up: bool) -> Result<String, DemoError> {
        let n = self
            .neighbors
            .iter()
            .find(|n| n.name == node)
            .ok_or_else(|| DemoError::Failed {
                what: format!("no BGP neighbor {node} on the router"),
            })?;
        Ok(match self.kind {
            RouterKind::Bird => {
                let verb = if up { "enable" } else { "disable" };
                let out = self.birdc(&[verb, &n.name]);
                format!("birdc {verb} {}: {}", n.name, last_line(&out))
            }
            RouterKind::Frr => {
                let no = if up { "no " } else { "" };
                let cmd = format!("{no}neighbor {} shutdown", n.addr);
                self.vtysh(&[
                    "configure terminal",
                    &format!("router bgp {ROUTER_ASN}"),
                    &cmd,
                ]);
                format!("vtysh: router bgp {ROUTER_ASN} / {cmd}")
            }
        })
    }

    /// The daemons' logs (for a failure message).
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("--- {}\n{}", p.name(), p.logs()))
            .collect()
    }
}

/// The Info column of a `birdc show protocols` line (`Established`, `Active Socket: ...`;
/// `down` for a disabled protocol, which has none).
fn bird_info(line: &str) -> String {
    // Name Proto Table State Since Info (the default time format: one word)
    let w: Vec<&str> = line.split_whitespace().collect();
    if w.get(3) == Some(&"down") {
        return "down".into();
    }
    w.get(5..).map(|i| i.join(" ")).unwrap_or_default()
}

fn last_line(s: &str) -> String {
    s.trim_end().lines().last().unwrap_or("").trim().to_string()
}

fn named(name: &str) -> SpawnOpts {
    SpawnOpts {
        name: Some(name.into()),
        ..SpawnOpts::default()
    }
}

pub(crate) fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), DemoError> {
    std::fs::write(path, text).map_err(|e| DemoError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nbrs() -> Vec<Neighbor> {
        vec![Neighbor {
            name: "node1".into(),
            addr: Ipv4Addr::new(198, 18, 0, 11),
            asn: 65001,
        }]
    }

    #[test]
    fn bird_conf_names_one_protocol_per_node() {
        let c = bird_conf(Ipv4Addr::new(198, 18, 0, 1), &nbrs());
        assert!(c.contains("protocol bgp node1 from node { neighbor 198.18.0.11 as 65001; }"));
        assert!(c.contains("local 198.18.0.1 as 65000;"));
    }

    #[test]
    fn frr_conf_activates_every_neighbor() {
        let c = frr_conf(Ipv4Addr::new(198, 18, 0, 1), &nbrs());
        assert!(c.contains(" neighbor 198.18.0.11 remote-as 65001\n"));
        assert!(c.contains("  neighbor 198.18.0.11 activate\n"));
    }

    #[test]
    fn bird_info_column() {
        assert_eq!(
            bird_info("node1      BGP        ---        up     18:01:02.123  Established"),
            "Established"
        );
        assert_eq!(
            bird_info("node3      BGP        ---        down   18:01:02.123"),
            "down"
        );
        assert_eq!(
            bird_info(
                "node2      BGP        ---        start  18:01:02.123  Active        Socket: Connection refused"
            ),
            "Active Socket: Connection refused"
        );
    }
}
