//! The demo's nodes: each runs bgpd (eBGP to the router, advertising its Node's pod CIDR
//! from the API) and kube-proxy-rs (iptables mode, watching the API through the kubeconfig).
//! In: the lab hosts and the binaries. Out: the running processes and what they report.
//!
//! ```text
//!   node1 ── bgpd --config node1.bgpd.yaml          bgpd --socket node1.bgpd.sock show neighbors --json
//!         ── kube-proxy-rs --kubeconfig ...         GET 127.0.0.1:10256/healthz
//!         ── ip -j route show proto bgp             the pod CIDRs learned over BGP
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::DemoError;
use super::objects::NodeInfo;
use super::router::{ROUTER_ASN, path_str, write};
use crate::{Host, Process, SpawnOpts};

/// Node k's AS: 65000 + k (one AS per node, RFC 7938 style).
pub fn node_asn(k: u8) -> u32 {
    65000 + u32::from(k)
}

/// The programs the demo runs, found next to the `lab` executable (`target/release`).
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `lab` itself (`lab apiserver`, `lab echo`).
    pub lab: PathBuf,
    /// kube-proxy-rs.
    pub kube_proxy: PathBuf,
    /// bgpd.
    pub bgpd: PathBuf,
    /// diag.
    pub diag: PathBuf,
}

impl Binaries {
    /// Finds kube-proxy-rs, bgpd and diag in `dir` (default: the directory of `lab_exe`), or
    /// names the first one missing and how to build it.
    pub fn locate(lab_exe: &Path, dir: Option<&Path>) -> Result<Binaries, DemoError> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => lab_exe
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        let find = |name: &str| -> Result<PathBuf, DemoError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(DemoError::MissingBinary {
                    name: name.to_string(),
                    path: p,
                })
            }
        };
        Ok(Binaries {
            lab: lab_exe.to_path_buf(),
            kube_proxy: find("kube-proxy-rs")?,
            bgpd: find("bgpd")?,
            diag: find("diag")?,
        })
    }
}

/// bgpd's configuration for node `n` (bgpd's YAML format, see bgpd/src/config.rs): one eBGP
/// peer, the router; the Node's pod CIDR from the API; learned pod CIDRs into the kernel.
pub fn bgpd_conf(
    n: &NodeInfo,
    asn: u32,
    router: Ipv4Addr,
    kubeconfig: &Path,
    sock: &Path,
) -> String {
    format!(
        "asn: {asn}
router_id: {addr}
listen: [{addr}]
node_name: {name}
kubeconfig: {kc}
control_socket: {sock}
import: [198.18.64.0/18 le 24]
peers:
  - {{ address: {router}, asn: {ROUTER_ASN}, description: tor, hold_time: 9, connect_retry: 1 }}
",
        addr = n.addr,
        name = n.name,
        kc = kubeconfig.display(),
        sock = sock.display(),
    )
}

/// kube-proxy-rs's flags on node `n` (iptables mode, the nft back end).
pub fn kube_proxy_args(n: &NodeInfo, kubeconfig: &Path) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--hostname-override={}", n.name),
        "--proxy-mode=iptables".into(),
        "--iptables-backend=nft".into(),
        "--cluster-cidr=198.18.64.0/18".into(),
        "--sync-period=10s".into(),
        "-v=2".into(),
    ]
}

/// A node with its daemons.
#[derive(Debug)]
pub struct Node {
    /// Addresses and names.
    pub info: NodeInfo,
    /// The node's host.
    pub host: Host,
    /// Its pod's host.
    pub pod: Host,
    /// bgpd's control socket.
    pub sock: PathBuf,
    /// bgpd.
    pub bgpd: Option<Process>,
    /// kube-proxy-rs.
    pub kube_proxy: Option<Process>,
}

impl Node {
    /// Starts bgpd; returns once its control socket answers.
    pub fn start_bgpd(
        &mut self,
        bins: &Binaries,
        dir: &Path,
        router: Ipv4Addr,
        kubeconfig: &Path,
    ) -> Result<(), DemoError> {
        let k: u8 = self
            .info
            .name
            .trim_start_matches("node")
            .parse()
            .unwrap_or(0);
        let conf = dir.join(format!("{}.bgpd.yaml", self.info.name));
        write(
            &conf,
            &bgpd_conf(&self.info, node_asn(k), router, kubeconfig, &self.sock),
        )?;
        let p = self.host.spawn_with(
            &[&path_str(&bins.bgpd), "--config", &path_str(&conf)],
            &SpawnOpts {
                name: Some("bgpd".into()),
                env: vec![("BGPD_LOG".into(), "info".into())],
                ..SpawnOpts::default()
            },
        )?;
        self.bgpd = Some(p);
        if !crate::wait_until(Duration::from_secs(15), || self.neighbors(bins).is_some()) {
            return Err(DemoError::Start {
                what: format!("bgpd on {}", self.info.name),
                logs: self.bgpd.as_ref().map(|p| p.logs()).unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// Starts kube-proxy-rs.
    pub fn start_kube_proxy(
        &mut self,
        bins: &Binaries,
        dir: &Path,
        kubeconfig: &Path,
    ) -> Result<(), DemoError> {
        let args = kube_proxy_args(&self.info, kubeconfig);
        let mut argv: Vec<String> = vec![path_str(&bins.kube_proxy)];
        argv.extend(args);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let lock = dir.join(format!("{}.xtables.lock", self.info.name));
        let p = self.host.spawn_with(
            &argv,
            &SpawnOpts {
                name: Some("kube-proxy-rs".into()),
                env: vec![("XTABLES_LOCKFILE".into(), path_str(&lock))],
                ..SpawnOpts::default()
            },
        )?;
        self.kube_proxy = Some(p);
        Ok(())
    }

    /// `bgpd show neighbors --json`, if bgpd answers.
    pub fn neighbors(&self, bins: &Binaries) -> Option<Value> {
        let o = self
            .host
            .output(&[
                &path_str(&bins.bgpd),
                "--socket",
                &path_str(&self.sock),
                "show",
                "neighbors",
                "--json",
            ])
            .ok()?;
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    /// bgpd's state of the session to `peer` (`Established`, `Active`, ...).
    pub fn session_state(&self, bins: &Binaries, peer: Ipv4Addr) -> String {
        let peer = peer.to_string();
        self.neighbors(bins)
            .and_then(|v| {
                v.as_array()?
                    .iter()
                    .find(|n| n["address"] == peer.as_str())
                    .and_then(|n| n["state"].as_str().map(str::to_string))
            })
            .unwrap_or_else(|| "unknown".into())
    }

    /// The routes bgpd installed (`ip -j route show proto bgp`): (prefix, gateway).
    pub fn bgp_routes(&self) -> Vec<(String, String)> {
        let text = self
            .host
            .ip(&["-j", "-4", "route", "show", "proto", "bgp"])
            .unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        let gw = r["gateway"]
                            .as_str()
                            .map(str::to_string)
                            .or_else(|| {
                                r["nexthops"].as_array().map(|n| {
                                    n.iter()
                                        .filter_map(|h| h["gateway"].as_str())
                                        .collect::<Vec<_>>()
                                        .join(",")
                                })
                            })
                            .unwrap_or_default();
                        (r["dst"].as_str().unwrap_or("").to_string(), gw)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether kube-proxy-rs's /healthz answers 200 (it has synced its rules).
    pub fn healthy(&self) -> bool {
        self.host
            .http_get(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                10256,
                "/healthz",
                Duration::from_millis(500),
            )
            .is_ok_and(|r| r.status == 200)
    }

    /// The daemons' logs (for a failure message).
    pub fn logs(&self) -> String {
        [&self.bgpd, &self.kube_proxy]
            .iter()
            .filter_map(|p| p.as_ref())
            .map(|p| {
                format!(
                    "--- {} on {}\n{}",
                    p.name(),
                    self.info.name,
                    tail(&p.logs(), 30)
                )
            })
            .collect()
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgpd_conf_peers_with_the_router() {
        let n = NodeInfo {
            name: "node2".into(),
            addr: Ipv4Addr::new(198, 18, 0, 12),
            pod_cidr: "198.18.66.0/24".parse().unwrap(),
            pod: "pod2".into(),
            pod_addr: Ipv4Addr::new(198, 18, 66, 2),
        };
        let c = bgpd_conf(
            &n,
            node_asn(2),
            Ipv4Addr::new(198, 18, 0, 1),
            Path::new("/k"),
            Path::new("/s"),
        );
        assert!(c.starts_with("asn: 65002\nrouter_id: 198.18.0.12\n"), "{c}");
        assert!(c.contains("address: 198.18.0.1, asn: 65000"), "{c}");
        assert!(c.contains("node_name: node2\n"), "{c}");
    }

    #[test]
    fn missing_binary_is_named() {
        let d = tempfile::tempdir().unwrap();
        let e = Binaries::locate(&d.path().join("lab"), None).unwrap_err();
        assert!(e.to_string().contains("kube-proxy-rs"), "{e}");
    }
}
