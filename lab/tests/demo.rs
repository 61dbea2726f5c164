//! `lab demo` end to end, non-interactively (`--json`): every step's outcome is asserted from
//! the JSON lines it prints (which endpoint answered, diag's verdict and finding, the
//! teardown's leftovers), and a demo interrupted with SIGINT leaves no namespace, state file
//! or process behind. Needs root, BIRD 2 and iptables-nft; the test builds kube-proxy-rs, bgpd
//! and diag next to the `lab` binary under test (`cargo build --bins`, a no-op when fresh).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lab");

fn usable() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let tools = ["bird", "iptables-nft-restore"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !(root && tools) {
        eprintln!("SKIP: needs root, bird and iptables-nft");
    }
    root && tools
}

/// Builds the demo's other binaries into the directory of the `lab` under test.
fn build_binaries() {
    let dir = Path::new(BIN).parent().unwrap();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build",
        "--bins",
        "-p",
        "kube-proxy-rs",
        "-p",
        "bgpd",
        "-p",
        "diag",
    ]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    // the target dir is the parent of the profile dir
    if let Some(t) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", t);
    }
    let st = cmd.status().expect("run cargo build");
    assert!(st.success(), "cargo build of the demo's binaries failed");
    for b in ["kube-proxy-rs", "bgpd", "diag"] {
        assert!(dir.join(b).is_file(), "{b} not in {}", dir.display());
    }
}

fn demo(name: &str) -> (Child, mpsc::Receiver<Value>) {
    let mut child = Command::new(BIN)
        .args(["demo", "--json", "--nodes", "3", "--name", name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line: {line}: {e}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_exit(child: &mut Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        if Instant::now() >= deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let st = child.wait().unwrap();
            panic!("lab demo still running after {within:?} (stopped: {st})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every line left, until the demo's stdout closes.
fn drain(rx: &mpsc::Receiver<Value>) -> Vec<Value> {
    let mut v = Vec::new();
    while let Ok(e) = rx.recv_timeout(Duration::from_secs(10)) {
        v.push(e);
    }
    v
}

fn leftover_netns(name: &str) -> Vec<String> {
    let prefix = format!("lab-{name}-");
    lab::netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

fn pids(events: &[Value]) -> Vec<(i32, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "process")
        .map(|e| {
            (
                e["pid"].as_i64().unwrap() as i32,
                e["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_nothing_left(name: &str, events: &[Value]) {
    assert_eq!(
        leftover_netns(name),
        Vec::<String>::new(),
        "namespaces left"
    );
    let procs = pids(events);
    assert!(!procs.is_empty(), "no process events");
    for (pid, what) in procs {
        assert!(!lab::state::pid_alive(pid), "{what} (pid {pid}) still runs");
    }
    assert!(
        !lab::LabState::path(name).exists(),
        "state file of {name} left"
    );
}

#[test]
fn demo_runs_every_step_and_leaves_nothing() {
    if !usable() {
        return;
    }
    build_binaries();
    let name = format!("dt{}", std::process::id());
    let (mut child, rx) = demo(&name);
    let code = wait_exit(&mut child, Duration::from_secs(240));
    let events = drain(&rx);
    let checks: BTreeMap<String, Value> = events
        .iter()
        .filter(|e| e["event"] == "check")
        .map(|e| (e["id"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    let failed: Vec<&Value> = checks.values().filter(|c| c["ok"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    assert_eq!(code, 0, "exit code");
    for id in [
        "cluster_built",
        "kube_proxy_synced",
        "bgp_established",
        "pod_routes",
        "clusterip",
        "nodeport",
        "etp_local",
        "no_endpoints",
        "scaled_to_zero",
        "diag_trace_reject",
        "scaled_back",
        "bgp_shut",
        "diag_check_route_missing",
        "bgp_restored",
        "teardown",
    ] {
        assert!(checks.contains_key(id), "no check {id}: {events:#?}");
    }
    let d = |id: &str| checks[id]["detail"].clone();

    // both views of every session
    for n in ["node1", "node2", "node3"] {
        assert_eq!(d("bgp_established")["bgpd"][n], "Established");
        assert!(
            d("bgp_established")["router"][n]
                .as_str()
                .unwrap()
                .starts_with("Established")
        );
    }
    // every node learned the other two pod CIDRs over BGP
    let routes = d("pod_routes");
    for (n, others) in [
        ("node1", ["198.18.66.0/24", "198.18.67.0/24"]),
        ("node2", ["198.18.65.0/24", "198.18.67.0/24"]),
        ("node3", ["198.18.65.0/24", "198.18.66.0/24"]),
    ] {
        let r: Vec<&str> = routes[n]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        for o in others {
            assert!(r.iter().any(|x| x.starts_with(o)), "{n}: {r:?}");
        }
    }
    // the ClusterIP from node1 is answered by both endpoints (node2, node3), never node1's
    let answered: Vec<String> = d("clusterip")["answered"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(answered, ["pod2", "pod3"]);
    // NodePort from the router: masqueraded to node1's address
    let np = d("nodeport");
    assert!(["pod2", "pod3"].contains(&np["answered_by"].as_str().unwrap()));
    assert_eq!(np["client_seen"], "198.18.0.11");
    // eTP Local: the local node keeps the client address, the other drops
    let l = d("etp_local");
    assert_eq!(l["local"]["answered_by"], "pod2");
    assert_eq!(l["local"]["client_seen"], "198.18.0.1");
    assert_eq!(l["remote"]["error"], "timed out");
    assert!(
        d("no_endpoints")["error"]
            .as_str()
            .unwrap()
            .contains("refused")
    );
    // diag names the REJECT rule of the scaled-down Service
    let t = d("diag_trace_reject");
    assert_eq!(t["verdict"]["kind"], "dropped");
    let rule = t["rule"].as_str().unwrap();
    assert!(
        rule.contains("REJECT") && rule.contains("demo/web"),
        "{rule}"
    );
    // and the missing route after the session was shut
    let f = &d("diag_check_route_missing")["finding"];
    assert_eq!(f["check"], "pod-route-missing");
    assert!(f["summary"].as_str().unwrap().contains("node3"), "{f}");
    assert!(
        f["evidence"]
            .to_string()
            .contains("ip route get 198.18.67."),
        "{f}"
    );
    let sum = events.iter().find(|e| e["event"] == "summary").unwrap();
    assert_eq!(sum["failed"], 0);
    assert_eq!(sum["kept"], false);
    let td = d("teardown");
    assert!(td["left_netns"].as_array().unwrap().is_empty());
    assert!(td["left_pids"].as_array().unwrap().is_empty());
    assert_nothing_left(&name, &events);
}

#[test]
fn interrupted_demo_leaves_nothing() {
    if !usable() {
        return;
    }
    build_binaries();
    let name = format!("di{}", std::process::id());
    let (mut child, rx) = demo(&name);
    // interrupt once the daemons run (step 2 started kube-proxy-rs somewhere)
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let e = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no kube-proxy-rs started in time");
        let started = e["event"] == "process" && e["name"] == "kube-proxy-rs";
        events.push(e);
        if started {
            break;
        }
    }
    assert!(!leftover_netns(&name).is_empty(), "the lab is not up");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let code = wait_exit(&mut child, Duration::from_secs(60));
    events.extend(drain(&rx));
    assert_eq!(code, 130, "exit code after SIGINT");
    let td = events
        .iter()
        .find(|e| e["event"] == "check" && e["id"] == "teardown")
        .expect("a teardown check");
    assert_eq!(td["ok"], true, "{td}");
    assert_nothing_left(&name, &events);
}
