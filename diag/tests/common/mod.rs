//! Kernel-tier harness for diag: a rack of two nodes with pods, a top-of-rack router and a
//! client, all in network namespaces the lab creates and removes; and helpers that run the
//! real `diag` binary live inside those namespaces and offline on the bundles it collected.
//!
//! ```text
//!               lab-<id>-sw-rack (br0)
//!             /          |           \
//!     node1 .11       node2 .12        tor .1 ── client 198.18.1.2
//!      cali… a  .65.2   cali… b .66.2
//!      cali… c  .65.3
//! ```
//! node1 and node2 route each other's pod CIDR directly and default via tor; tor routes both
//! pod CIDRs; the client's default route is tor. Every live diag command is checked to
//! change nothing in the namespaces it reads ([`readonly`]).

#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use diag::check::{CheckReport, Finding};
use diag::explain::Report;
use lab::{EchoServer, EchoSpec, Host, Lab};

pub mod readonly;

/// How long a real probe waits.
pub const T: Duration = Duration::from_millis(1500);

/// The rack.
pub struct Rack {
    pub lab: Lab,
    pub n1: Host,
    pub n2: Host,
    pub tor: Host,
    pub client: Host,
    pub a: Host,
    pub c: Host,
    pub b: Host,
    pub dir: tempfile::TempDir,
    pub echoes: Vec<EchoServer>,
}

fn ip4(h: &Host) -> IpAddr {
    IpAddr::V4(h.ipv4().expect("ipv4"))
}

impl Rack {
    /// Builds the rack; echo servers answer on the pods (TCP 80, 8080; UDP 53).
    pub fn new(name: &str) -> Rack {
        lab::require_root().expect("diag kernel tests need root");
        let lab = Lab::new(name).expect("lab");
        let n1 = lab.node("node1").unwrap();
        let n2 = lab.node("node2").unwrap();
        let tor = lab.router("tor").unwrap();
        lab.segment("rack", &[&n1, &n2, &tor]).unwrap();
        let client = lab.host("client").unwrap();
        let l = lab.link(&tor, &client).unwrap();
        let a = lab.pod(&n1, "a").unwrap();
        let c = lab.pod(&n1, "c").unwrap();
        let b = lab.pod(&n2, "b").unwrap();
        let (p1, p2) = (n1.pod_cidr4().unwrap(), n2.pod_cidr4().unwrap());
        n1.add_route(&format!("{p2} via {}", n2.ipv4().unwrap()))
            .unwrap();
        n2.add_route(&format!("{p1} via {}", n1.ipv4().unwrap()))
            .unwrap();
        let (q1, q2) = (n1.pod_cidr6().unwrap(), n2.pod_cidr6().unwrap());
        n1.add_route(&format!("{q2} via {}", n2.ipv6().unwrap()))
            .unwrap();
        n2.add_route(&format!("{q1} via {}", n1.ipv6().unwrap()))
            .unwrap();
        let gw = tor.ipv4().unwrap();
        n1.add_route(&format!("default via {gw}")).unwrap();
        n2.add_route(&format!("default via {gw}")).unwrap();
        tor.add_route(&format!("{p1} via {}", n1.ipv4().unwrap()))
            .unwrap();
        tor.add_route(&format!("{p2} via {}", n2.ipv4().unwrap()))
            .unwrap();
        let tor_side =
            l.a.addrs
                .iter()
                .find(|n| n.addr().is_ipv4())
                .unwrap()
                .addr();
        client
            .add_route(&format!("default via {tor_side}"))
            .unwrap();
        let mut echoes = Vec::new();
        for h in [&a, &c, &b] {
            echoes.push(
                h.echo_server(EchoSpec {
                    tcp: vec![80, 8080],
                    udp: vec![53],
                    ..Default::default()
                })
                .unwrap(),
            );
        }
        echoes.push(
            client
                .echo_server(EchoSpec {
                    tcp: vec![80],
                    ..Default::default()
                })
                .unwrap(),
        );
        Rack {
            lab,
            n1,
            n2,
            tor,
            client,
            a,
            c,
            b,
            dir: tempfile::tempdir().unwrap(),
            echoes,
        }
    }

    pub fn a4(&self) -> IpAddr {
        ip4(&self.a)
    }
    pub fn b4(&self) -> IpAddr {
        ip4(&self.b)
    }
    pub fn c4(&self) -> IpAddr {
        ip4(&self.c)
    }
    pub fn n1_4(&self) -> IpAddr {
        ip4(&self.n1)
    }
    pub fn n2_4(&self) -> IpAddr {
        ip4(&self.n2)
    }
    pub fn client4(&self) -> IpAddr {
        ip4(&self.client)
    }

    /// The nodes as `--netns NS=NAME` arguments.
    pub fn netns_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        for n in [&self.n1, &self.n2] {
            v.push("--netns".into());
            v.push(format!("{}={}", n.netns(), n.name()));
        }
        v
    }

    /// Collects both nodes into bundles (directories) with the real binary; returns the
    /// `--bundle` arguments.
    pub fn collect(&self, tag: &str) -> Vec<String> {
        let mut v = Vec::new();
        for n in [&self.n1, &self.n2] {
            let out = self.dir.path().join(format!("{tag}-{}", n.name()));
            let (code, stdout, stderr) = diag(&[
                "collect",
                "--netns",
                n.netns(),
                "--node-name",
                n.name(),
                "--no-k8s",
                "--conntrack-limit",
                "200",
                "--out",
                out.to_str().unwrap(),
            ]);
            assert_eq!(code, 0, "collect {}: {stdout}{stderr}", n.name());
            // DIAG_CAPTURE=DIR keeps the bundles as fixtures (tests/fixtures/catalogue)
            if let Some(dir) = std::env::var_os("DIAG_CAPTURE") {
                let to = PathBuf::from(dir).join(tag).join(n.name());
                std::fs::create_dir_all(&to).unwrap();
                for e in std::fs::read_dir(&out).unwrap() {
                    let e = e.unwrap();
                    std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
                }
            }
            v.push("--bundle".into());
            v.push(out.display().to_string());
        }
        v
    }

    /// `diag check` live (inside the namespaces) and offline (on bundles collected right after),
    /// asserting that both give the same findings; returns the offline report.
    pub fn check(&self, tag: &str, extra: &[&str]) -> CheckReport {
        let mut live_args: Vec<String> = vec!["check".into(), "--json".into()];
        live_args.extend(self.netns_args());
        live_args.extend(extra.iter().map(|s| s.to_string()));
        let live = run_check(&live_args);
        let mut off_args: Vec<String> = vec!["check".into(), "--json".into()];
        off_args.extend(self.collect(tag));
        off_args.extend(extra.iter().map(|s| s.to_string()));
        let offline = run_check(&off_args);
        assert_eq!(
            live.findings, offline.findings,
            "live and offline checks disagree"
        );
        assert_eq!(live.exit_code, offline.exit_code);
        offline
    }

    /// `diag trace` live and offline; asserts the verdicts agree; returns the offline report.
    pub fn trace(&self, tag: &str, args: &[&str]) -> Report {
        let mut live_args: Vec<String> = vec!["trace".into(), "--json".into(), "--no-k8s".into()];
        live_args.extend(args.iter().map(|s| s.to_string()));
        live_args.extend(self.netns_args());
        let live = run_trace(&live_args);
        let mut off_args: Vec<String> = vec!["trace".into(), "--json".into(), "--no-k8s".into()];
        off_args.extend(args.iter().map(|s| s.to_string()));
        off_args.extend(self.collect(tag));
        let offline = run_trace(&off_args);
        assert_eq!(
            live.verdict, offline.verdict,
            "live and offline traces disagree"
        );
        assert_eq!(live.endpoints, offline.endpoints);
        offline
    }
}

/// Runs the real `diag` binary; returns (exit code, stdout, stderr). A live command (one
/// naming `--netns`) must leave each namespace it names as it was: checked before and after
/// with [`readonly::netns_state`], a change panics with a diff.
pub fn diag<S: AsRef<str>>(args: &[S]) -> (i32, String, String) {
    let live = readonly::live_namespaces(args);
    let t0 = std::time::Instant::now();
    let before: Vec<readonly::State> = live.iter().map(|ns| readonly::netns_state(ns)).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_diag"))
        .args(args.iter().map(|s| s.as_ref()))
        .env_remove("KUBECONFIG")
        .output()
        .expect("run diag");
    for (ns, before) in live.iter().zip(&before) {
        let argv: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        readonly::assert_unchanged(
            &format!("diag {} in {ns}", argv.join(" ")),
            before,
            &readonly::netns_state(ns),
            t0.elapsed(),
        );
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_check(args: &[String]) -> CheckReport {
    let (code, stdout, stderr) = diag(args);
    assert!(
        code == 0 || code == 1,
        "diag {args:?}: exit {code}: {stderr}"
    );
    let r: CheckReport = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("diag {args:?}: {e}: {stdout}{stderr}"));
    assert_eq!(r.exit_code, code);
    r
}

fn run_trace(args: &[String]) -> Report {
    let (code, stdout, stderr) = diag(args);
    assert!(
        code == 0 || code == 1,
        "diag {args:?}: exit {code}: {stderr}"
    );
    let r: Report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("diag {args:?}: {e}: {stdout}{stderr}"));
    assert_eq!(r.verdict.exit_code, code);
    r
}

/// The findings of one check (on one node when given); panics with the report when none.
pub fn findings<'a>(r: &'a CheckReport, check: &str, node: Option<&str>) -> Vec<&'a Finding> {
    let f: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.check == check && (node.is_none() || f.node.as_deref() == node))
        .collect();
    assert!(
        !f.is_empty(),
        "no {check} finding on {node:?}; report:\n{}",
        r.to_text()
    );
    f
}

/// Loads iptables-restore text into a host with `iptables-restore` (nft back end).
pub fn restore(h: &Host, text: &str) {
    restore_with(h, "iptables-restore", text);
}

/// Loads iptables-restore text with a given restore program.
pub fn restore_with(h: &Host, prog: &str, text: &str) {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "diag-test-{}-{}.rules",
        std::process::id(),
        h.netns()
    ));
    std::fs::write(&path, text).unwrap();
    let out = h
        .sh(&format!("{prog} < {}", path.display()))
        .unwrap_or_else(|e| panic!("{prog} in {}: {e}", h.name()));
    let _ = out;
    let _ = std::fs::remove_file(&path);
}

/// The text of a file.
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}
