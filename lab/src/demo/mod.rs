//! `lab demo`: the whole toolkit on one machine. A cluster in network namespaces (a
//! control-plane host with the Kubernetes API server double, N nodes with one pod each, a
//! top-of-rack router running BIRD 2 or FRR), kube-proxy-rs and bgpd on every node, example
//! Services; then it shows them working, breaks two things and lets `diag` explain them, and
//! tears everything down (also on Ctrl-C), unless `--keep`.
//!
//! ```text
//!                  rack 198.18.0.0/24 (one bridge)
//!   tor .1 (BIRD, AS 65000) ── node1 .11 (AS 65001) ── node2 .12 ── node3 .13 ── cp .101 (API :6443)
//!                                │ pod1 198.18.65.2    │ pod2        │ pod3
//!   1 build   2 start daemons, apply objects   3 show it works   4 break it, diag explains   5 summary
//! ```
//! In: [`DemoOpts`], a cancel flag (set by SIGINT/SIGTERM). Out: the [`Reporter`]'s progress
//! lines and checks, a [`Summary`]; every namespace and process removed unless kept.

pub mod api;
pub mod cluster;
pub mod diag;
pub mod objects;
pub mod report;
pub mod router;
mod steps;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

pub use cluster::{Binaries, Node};
pub use report::{Check, Format, Reporter, Summary};
pub use router::{Router, RouterKind};

use crate::{Host, Lab, LabError, Process, SpawnOpts};
use objects::NodeInfo;
use router::{Neighbor, path_str, write};

/// What the demo can fail with (a check that does not hold is reported, then ends the run
/// with [`DemoError::CheckFailed`]).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A lab operation failed.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A binary the demo runs is not built.
    #[error(
        "missing binary {name}: expected {path} (build it with `cargo build --release --locked -p lab -p kube-proxy-rs -p bgpd -p diag`, or run scripts/demo.sh)",
        path = path.display()
    )]
    MissingBinary {
        /// The program.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A system program is not installed.
    #[error(
        "missing program {program} (install the {package} package, or run scripts/install-deps.sh)"
    )]
    MissingProgram {
        /// The program.
        program: String,
        /// The package that has it.
        package: String,
    },
    /// A daemon did not come up.
    #[error("{what} did not start:\n{logs}")]
    Start {
        /// Which daemon, where.
        what: String,
        /// Its logs.
        logs: String,
    },
    /// An operation of the demo failed.
    #[error("{what}")]
    Failed {
        /// What, with the reason.
        what: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// `write`, `create`, `run`.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A check did not hold (reported already).
    #[error("check {id} failed")]
    CheckFailed {
        /// The check's id.
        id: String,
    },
    /// SIGINT or SIGTERM arrived.
    #[error("interrupted")]
    Interrupted,
}

impl DemoError {
    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        DemoError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `lab demo`'s options.
#[derive(Debug, Clone)]
pub struct DemoOpts {
    /// The lab's id (namespaces are `lab-NAME-HOST`).
    pub name: String,
    /// Number of nodes (2 to 8).
    pub nodes: u8,
    /// The router's daemon.
    pub router: RouterKind,
    /// Leave the lab up at the end.
    pub keep: bool,
    /// The programs to run.
    pub bins: Binaries,
}

/// Everything the steps work on.
pub(crate) struct Demo<'a> {
    pub(crate) opts: &'a DemoOpts,
    pub(crate) cancel: &'a AtomicBool,
    pub(crate) out: &'a mut Reporter,
    pub(crate) lab: &'a Lab,
    pub(crate) tor: Host,
    pub(crate) cp: Host,
    pub(crate) nodes: Vec<Node>,
    pub(crate) router: Option<Router>,
    pub(crate) api: SocketAddr,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) procs: Vec<Process>,
}

impl Demo<'_> {
    /// Polls `cond` every 100 ms for up to `secs`; Err when interrupted.
    pub(crate) fn wait(
        &self,
        secs: u64,
        mut cond: impl FnMut() -> bool,
    ) -> Result<bool, DemoError> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            self.interrupted()?;
            if cond() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn interrupted(&self) -> Result<(), DemoError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(DemoError::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Reports `c`; a failed check ends the run (with the daemons' logs on stderr).
    pub(crate) fn check(&mut self, c: Check) -> Result<(), DemoError> {
        let id = c.id.clone();
        if self.out.check(c) {
            return Ok(());
        }
        let mut logs = String::new();
        if let Some(r) = &self.router {
            logs += &cluster::tail(&r.logs(), 30);
        }
        for n in &self.nodes {
            logs += &n.logs();
        }
        eprintln!("lab demo: check {id} failed; the daemons' last log lines:\n{logs}");
        Err(DemoError::CheckFailed { id })
    }

    fn spawned(&mut self, p: Process) {
        self.out.process(p.host(), p.name(), p.pid());
        self.procs.push(p);
    }
}

/// The programs the demo needs besides its own binaries.
fn check_programs(router: RouterKind) -> Result<(), DemoError> {
    let mut need: Vec<(&str, &str)> = vec![
        ("ip", "iproute2"),
        ("iptables-nft-restore", "iptables"),
        ("conntrack", "conntrack"),
    ];
    need.extend_from_slice(router.programs());
    for (prog, package) in need {
        let found = if prog.starts_with('/') {
            std::path::Path::new(prog).is_file()
        } else {
            std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        };
        if !found {
            return Err(DemoError::MissingProgram {
                program: prog.into(),
                package: package.into(),
            });
        }
    }
    Ok(())
}

/// Runs the demo. The lab is removed before this returns (also on error and when `cancel`
/// is set), unless `opts.keep` and every step passed.
pub fn run(opts: &DemoOpts, cancel: &AtomicBool, out: &mut Reporter) -> Result<Summary, DemoError> {
    crate::require_root()?;
    if !(2..=8).contains(&opts.nodes) {
        return Err(DemoError::Failed {
            what: format!("--nodes {}: expected 2 to 8", opts.nodes),
        });
    }
    check_programs(opts.router)?;
    let start = Instant::now();
    let lab = match Lab::named(&opts.name) {
        Err(LabError::Duplicate { .. }) => {
            return Err(DemoError::Failed {
                what: format!(
                    "lab `{0}` is already up (`lab down {0}`, or `--name` another)",
                    opts.name
                ),
            });
        }
        other => other?,
    };
    out.event(
        "lab",
        &format!(
            "lab {}: {} nodes, router {}, files in {}",
            lab.id(),
            opts.nodes,
            opts.router.as_str(),
            lab.dir().display()
        ),
        json!({"lab": lab.id(), "dir": lab.dir(), "nodes": opts.nodes,
               "router": opts.router.as_str()}),
    );
    // the daemons' handles outlive the steps: dropping one stops it, which `--keep` must not
    let mut held = Held::default();
    let result = build_and_run(opts, cancel, out, &lab, &mut held);
    let passed = out.checks().iter().filter(|c| c.ok).count();
    let failed = out.checks().iter().filter(|c| !c.ok).count();
    let id = lab.id().to_string();
    if let Err(e) = &result {
        match e {
            DemoError::Interrupted => out.progress("interrupted: tearing the lab down"),
            DemoError::CheckFailed { .. } => {}
            e => out.progress(&format!("error: {e}")),
        }
    }
    // a failed run is kept too (to look at it); an interrupted one never
    let kept = opts.keep && !matches!(result, Err(DemoError::Interrupted));
    if kept {
        let st = lab.keep()?;
        let router_cmd = match opts.router {
            RouterKind::Bird => format!(
                "birdc -s {} show route",
                st.dir.join("tor.bird.ctl").display()
            ),
            RouterKind::Frr => format!(
                "vtysh --vty_socket {} -c 'show ip route'",
                st.dir.join("tor.frr").display()
            ),
        };
        out.event(
            "kept",
            &format!(
                "the lab stays up ({} namespaces, {} processes): try `lab exec {id} pod1 -- socat - TCP:198.19.0.10:80`, `lab exec {id} tor -- {router_cmd}`, `lab exec {id} node1 -- iptables-nft-save -t nat`; remove it with `lab down {id}`",
                st.netns.len(),
                st.pids.len()
            ),
            json!({"lab": id, "netns": st.netns, "pids": st.pids.iter().map(|p| p.pid).collect::<Vec<_>>()}),
        );
    } else {
        teardown(out, lab);
    }
    drop(held);
    let summary = Summary {
        lab: id,
        passed,
        failed,
        seconds: start.elapsed().as_secs_f64(),
        kept,
    };
    out.summary(&summary);
    match result {
        Ok(()) => Ok(summary),
        Err(e) => Err(e),
    }
}

/// Removes the lab and checks that nothing of it is left: no namespace, no process.
fn teardown(out: &mut Reporter, lab: Lab) {
    let id = lab.id().to_string();
    let st = lab.state();
    let t0 = Instant::now();
    lab.down();
    let prefix = format!("lab-{id}-");
    let left_ns: Vec<String> = crate::netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    let left_pids: Vec<i32> = st
        .pids
        .iter()
        .filter(|p| crate::state::start_time(p.pid).is_some_and(|s| s == p.start))
        .map(|p| p.pid)
        .collect();
    out.check(Check {
        step: 5,
        id: "teardown".into(),
        ok: left_ns.is_empty() && left_pids.is_empty(),
        text: format!(
            "torn down in {:.1} s: {} namespaces and {} processes removed{}",
            t0.elapsed().as_secs_f64(),
            st.netns.len(),
            st.pids.len(),
            if left_ns.is_empty() && left_pids.is_empty() {
                String::new()
            } else {
                format!(" (left: {left_ns:?} {left_pids:?})")
            }
        ),
        detail: json!({"netns": st.netns, "pids": st.pids.iter().map(|p| p.pid).collect::<Vec<_>>(),
                       "left_netns": left_ns, "left_pids": left_pids}),
    });
}

/// What the steps started, kept until the lab is removed or kept.
#[derive(Default)]
struct Held {
    _procs: Vec<Process>,
    _nodes: Vec<Node>,
    _router: Option<Router>,
}

fn build_and_run(
    opts: &DemoOpts,
    cancel: &AtomicBool,
    out: &mut Reporter,
    lab: &Lab,
    held: &mut Held,
) -> Result<(), DemoError> {
    let stop = || {
        if cancel.load(Ordering::Relaxed) {
            Err(DemoError::Interrupted)
        } else {
            Ok(())
        }
    };
    out.step(1, "build the cluster in network namespaces");
    let tor = lab.router("tor")?;
    let mut hosts = vec![tor.clone()];
    let mut node_hosts = Vec::new();
    for k in 1..=opts.nodes {
        stop()?;
        let n = lab.node(&format!("node{k}"))?;
        hosts.push(n.clone());
        node_hosts.push(n);
    }
    let cp = lab.host("cp")?;
    hosts.push(cp.clone());
    let refs: Vec<&Host> = hosts.iter().collect();
    lab.segment("rack", &refs)?;
    stop()?;
    let tor_ip = tor.ipv4()?;
    let mut nodes = Vec::new();
    for (i, n) in node_hosts.into_iter().enumerate() {
        stop()?;
        let k = i + 1;
        let pod = lab.pod(&n, &format!("pod{k}"))?;
        // the demo cluster is IPv4-only (so are its Nodes' podCIDRs and the BGP sessions):
        // the pod's IPv6 address and host route would read as unreachable pods to diag
        if let Ok(p6) = pod.ipv6() {
            pod.ip(&["-6", "addr", "del", &format!("{p6}/128"), "dev", "eth0"])?;
            n.ip(&["-6", "route", "del", &format!("{p6}/128")])?;
        }
        // ClusterIPs without a rule (and of no Service) go to the router, as a default route
        // would send them; pod CIDRs come from BGP only
        n.add_route(&format!("198.19.0.0/16 via {tor_ip}"))?;
        let info = NodeInfo {
            name: n.name().to_string(),
            addr: n.ipv4()?,
            pod_cidr: n.pod_cidr4()?,
            pod: pod.name().to_string(),
            pod_addr: pod.ipv4()?,
        };
        nodes.push(Node {
            sock: lab.dir().join(format!("{}.bgpd.sock", info.name)),
            info,
            host: n,
            pod,
            bgpd: None,
            kube_proxy: None,
        });
    }
    let infos: Vec<NodeInfo> = nodes.iter().map(|n| n.info.clone()).collect();
    out.progress(&format!(
        "{} namespaces: tor {tor_ip}, {}, cp {}",
        lab.namespaces().len(),
        infos
            .iter()
            .map(|i| format!("{} {} ({} {})", i.name, i.addr, i.pod, i.pod_addr))
            .collect::<Vec<_>>()
            .join(", "),
        cp.ipv4()?
    ));
    let api = SocketAddr::new(IpAddr::V4(cp.ipv4()?), 6443);
    let mut d = Demo {
        opts,
        cancel,
        out,
        lab,
        tor,
        cp,
        nodes,
        router: None,
        api,
        kubeconfig: lab.dir().join("kubeconfig"),
        procs: Vec::new(),
    };
    let r = run_steps(&mut d, &infos);
    *held = Held {
        _procs: std::mem::take(&mut d.procs),
        _nodes: std::mem::take(&mut d.nodes),
        _router: d.router.take(),
    };
    r
}

fn run_steps(d: &mut Demo<'_>, infos: &[NodeInfo]) -> Result<(), DemoError> {
    let opts = d.opts;
    let api = d.api;
    start_support(d, infos)?;
    let c = Check {
        step: 1,
        id: "cluster_built".into(),
        ok: true,
        text: format!(
            "cluster up: API server double at {api}, {} nodes with a pod each, router {}",
            opts.nodes,
            opts.router.as_str()
        ),
        detail: json!({"api": api.to_string(), "nodes": infos.iter().map(|i| json!({
            "name": i.name, "addr": i.addr.to_string(), "pod_cidr": i.pod_cidr.to_string(),
            "pod": i.pod, "pod_addr": i.pod_addr.to_string()})).collect::<Vec<_>>()}),
    };
    d.check(c)?;
    steps::start_daemons(d)?;
    steps::show(d)?;
    steps::break_and_diagnose(d)?;
    Ok(())
}

/// The API server double, the pods' echo servers and the router.
fn start_support(d: &mut Demo<'_>, infos: &[NodeInfo]) -> Result<(), DemoError> {
    let dir = d.lab.dir().to_path_buf();
    let manifests = dir.join("objects.yaml");
    write(&manifests, &objects::to_yaml(&objects::all(infos)))?;
    let lab_exe = path_str(&d.opts.bins.lab);
    let p = d.cp.spawn_with(
        &[
            &lab_exe,
            "apiserver",
            "--listen",
            &d.api.to_string(),
            "--kubeconfig-out",
            &path_str(&d.kubeconfig),
            "--manifests",
            &path_str(&manifests),
            "--bookmark-interval",
            "5",
        ],
        &SpawnOpts {
            name: Some("apiserver".into()),
            ..SpawnOpts::default()
        },
    )?;
    d.spawned(p);
    let (cp, api, kc) = (d.cp.clone(), d.api, d.kubeconfig.clone());
    let up = d.wait(15, || {
        kc.exists()
            && cp
                .http_get(api.ip(), api.port(), "/version", Duration::from_millis(500))
                .is_ok()
    })?;
    if !up {
        return Err(DemoError::Start {
            what: "the API server double on cp".into(),
            logs: d.procs.last().map(|p| p.logs()).unwrap_or_default(),
        });
    }
    d.out.progress(&format!(
        "API server double on cp at http://{api} with {} objects (kubeconfig {})",
        objects::all(infos).len(),
        kc.display()
    ));
    for i in 0..d.nodes.len() {
        let pod = d.nodes[i].pod.clone();
        let port = objects::POD_PORT.to_string();
        let p = pod.spawn_with(
            &[
                &lab_exe,
                "echo",
                "--netns",
                pod.netns(),
                "--name",
                pod.name(),
                "--tcp",
                &port,
            ],
            &SpawnOpts {
                name: Some("echo".into()),
                ..SpawnOpts::default()
            },
        )?;
        d.spawned(p);
    }
    let nodes: Vec<(Host, Ipv4Addr)> = d
        .nodes
        .iter()
        .map(|n| (n.host.clone(), n.info.pod_addr))
        .collect();
    let echo_up = d.wait(10, || {
        nodes.iter().all(|(h, a)| {
            h.tcp_connect(
                IpAddr::V4(*a),
                objects::POD_PORT,
                Duration::from_millis(300),
            )
            .is_ok()
        })
    })?;
    if !echo_up {
        return Err(DemoError::Start {
            what: "the pods' echo servers".into(),
            logs: d.procs.iter().map(|p| p.logs()).collect(),
        });
    }
    d.out.progress(&format!(
        "every pod answers on TCP {} (an echo server naming the pod)",
        objects::POD_PORT
    ));
    let neighbors: Vec<Neighbor> = d
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Neighbor {
            name: n.info.name.clone(),
            addr: n.info.addr,
            asn: cluster::node_asn(i as u8 + 1),
        })
        .collect();
    let r = Router::start(d.opts.router, &d.tor, &dir, neighbors)?;
    for (name, pid) in r.pids() {
        d.out.process("tor", &name, pid);
    }
    d.out.progress(&format!(
        "{} on tor, AS {}, one eBGP session per node (node k: AS {})",
        d.opts.router.as_str(),
        router::ROUTER_ASN,
        "6500k"
    ));
    d.router = Some(r);
    Ok(())
}
