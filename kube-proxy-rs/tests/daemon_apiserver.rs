//! kube-proxy-rs against the Kubernetes API server double, once per iptables backend: the
//! double runs in-process inside a control-plane host (`cp`) of the lab, kube-proxy-rs in
//! node1 reaches it over the node network through a kubeconfig (kube-runtime watchers and
//! reflectors), and `kubectl` in `cp` is a second, independent client. Checked with real
//! traffic: nothing is programmed before every list came; a change through the API moves a
//! UDP flow within a second; the API server stopped, compacted (`410 Gone` on resume) and
//! restarted after a minute leaves the rules unchanged meanwhile and applies what changed after; Services
//! changed with `kubectl apply/patch/delete` are followed. Needs root; skipped otherwise.

mod daemon_lab;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use daemon_lab::*;
use lab::apiserver::{ApiServer, ApiServerOpts, Kind, Verb};
use lab::{ConnOpts, Greeting, Host};
use serde_json::json;

/// How long the API server stays down (with its history compacted meanwhile).
const OUTAGE: Duration = Duration::from_secs(60);

/// How long one probe connection may take. More than one SYN retransmission (1 s): over a
/// minute of back-to-back connections under load, about one in 4,000 needed one in
/// iptables-nft mode (with or without a fault); a connection that is refused or dropped
/// still fails.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Counts TCP connections from `host` to `addr:80` that work and that fail, until stopped.
struct Prober {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(host: &Host, addr: &str) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let thread = {
            let (h, stop, ok, failed, addr) = (
                host.clone(),
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failed),
                ip(addr),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match h.tcp_connect(addr, 80, PROBE_TIMEOUT) {
                        Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            eprintln!("{} probe of {addr}:80 failed: {e}", jiff::Timestamp::now());
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Prober {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    /// Stops; (worked, failed).
    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

/// `kubectl ARGS` in `cp` against the double; stdout, or a panic with stderr.
fn kubectl(w: &World, dir: &Path, args: &[&str]) -> String {
    let kc = dir.join("kubeconfig").to_string_lossy().into_owned();
    let cache = dir.join("kubectl-cache").to_string_lossy().into_owned();
    let mut argv = vec!["kubectl", "--kubeconfig", &kc, "--cache-dir", &cache];
    argv.extend_from_slice(args);
    let o = w.cp.output(&argv).unwrap();
    assert!(
        o.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn kubectl_usable() -> bool {
    let ok = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP kubectl part: kubectl is not installed");
    }
    ok
}

fn apiserver(backend: &'static str) {
    if !usable() {
        return;
    }
    let w = World::new("kpa", backend);
    let tag = w.tag();
    let dir = w.lab.dir().to_path_buf();
    let cp_ip = w.cp.ipv4().unwrap();
    let api =
        w.cp.run(move || {
            ApiServer::start(ApiServerOpts {
                listen: SocketAddr::new(cp_ip.into(), 6443),
                bookmark_interval: Duration::from_secs(1),
                ..ApiServerOpts::default()
            })
        })
        .unwrap()
        .unwrap();
    api.kubeconfig(&dir.join("kubeconfig")).unwrap();
    api.apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}))
        .unwrap();
    let mut objects = vec![node1()];
    objects.extend(web());
    objects.extend(flow("198.18.66.2"));
    for o in &objects {
        api.apply(o).unwrap();
    }

    // Started while the API server refuses connections: nothing is rendered (no rules, no
    // flush) until every watcher has its initial list.
    api.partition(true).unwrap();
    let kubeconfig = format!("--kubeconfig={}", dir.join("kubeconfig").display());
    let p = w.start(&[&kubeconfig]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(p.is_running(), "{}", p.logs());
    let rules = w.saves();
    assert!(
        !rules.contains("KUBE-"),
        "{tag} rules before the lists:\n{rules}"
    );
    assert!(!p.stderr().contains("synced"), "{}", p.logs());
    api.partition(false).unwrap();
    let ready = w.wait_synced(&p, "after the partition");
    eprintln!(
        "{tag} synced {} ms after the API server accepted connections",
        ready.as_millis()
    );
    let reached = hosts_reached(20, || {
        greeting(w.b.tcp_connect(ip("198.19.0.10"), 80, T), "web")
    });
    assert_eq!(reached, set(&["a", "c"]), "{tag}");

    // A change through the API: the UDP flow moves to the new endpoint within a second.
    let udp = || {
        w.b.udp_request_with(
            ip("198.19.0.54"),
            53,
            b"q",
            &ConnOpts::new(Duration::from_millis(200)).src_port(40054),
        )
    };
    assert_eq!(greeting(udp(), "udp flow").host, "c");
    // Let the sync rate limit (--min-sync-period 1 s, burst 2) refill after the start, so
    // what is measured is the way from the API to the kernel.
    std::thread::sleep(Duration::from_millis(1100));
    let t0 = Instant::now();
    for o in flow("198.18.66.3") {
        api.apply(&o).unwrap();
    }
    let moved = lab::wait_until(Duration::from_secs(5), || {
        udp()
            .ok()
            .and_then(|l| Greeting::parse(&l))
            .is_some_and(|g| g.host == "d")
    });
    let took = t0.elapsed();
    assert!(moved, "{tag} the UDP flow still goes to c\n{}", p.logs());
    eprintln!(
        "{tag} UDP flow moved {} ms after the EndpointSlice update",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "{tag} took {took:?}");
    let m = w.metrics();
    assert!(
        metric(&m, "kubeproxy_network_programming_duration_seconds_count")
            .is_some_and(|v| v >= 1.0),
        "{tag}\n{m}"
    );

    // The API server goes away, its history is compacted, it comes back: the rules stay
    // exactly as they were meanwhile and traffic keeps flowing; the watchers relist (their
    // resourceVersion is gone: 410) and what changed meanwhile is applied.
    std::thread::sleep(Duration::from_millis(500));
    let rules = w.saves();
    let prober = Prober::start(&w.b, "198.19.0.10");
    let lists = api.request_count(Verb::List, Some(Kind::Service));
    api.stop();
    wait_log(&p, "cannot connect to the API server");
    for o in simple("added", "198.19.0.30", &[("198.18.65.3", "node1")]) {
        api.apply(&o).unwrap();
    }
    api.compact();
    std::thread::sleep(OUTAGE);
    assert_eq!(
        w.saves(),
        rules,
        "{tag} rules changed while the API server was down"
    );
    api.restart().unwrap();
    let t0 = Instant::now();
    assert!(
        lab::wait_until(Duration::from_secs(30), || w
            .a
            .tcp_connect(ip("198.19.0.30"), 80, POLL)
            .is_ok()),
        "{tag} the service added meanwhile is not programmed\n{}",
        p.logs()
    );
    let took = t0.elapsed();
    eprintln!(
        "{tag} service added while the API server was down for {} s reachable {} ms after its restart",
        OUTAGE.as_secs(),
        took.as_millis()
    );
    // A connect attempt every kube_proxy_rs::connector::ATTEMPT_EVERY (500 ms), the relist and
    // one sync: about 1 s here, polled every POLL (300 ms); the margin is for a loaded host.
    assert!(took < Duration::from_millis(2500), "{tag} took {took:?}");
    let (ok, failed) = prober.finish();
    assert_eq!(
        failed,
        0,
        "{tag} connections failed around the API restart (the prober's stderr has when)\n{}",
        p.logs()
    );
    assert!(ok > 20, "{tag} {ok}");
    assert!(
        api.request_count(Verb::List, Some(Kind::Service)) > lists,
        "{tag} the watchers did not relist after the compaction"
    );
    wait_log(&p, "watch recovered");

    // kubectl, a second client: changes made with it are followed.
    if kubectl_usable() {
        let node1 = std::net::IpAddr::V4(w.n1.ipv4().unwrap());
        // patch: web gets an external IP; outside clients reach it.
        kubectl(
            &w,
            &dir,
            &[
                "-n",
                "demo",
                "patch",
                "service",
                "web",
                "--type=merge",
                "-p",
                r#"{"spec":{"externalIPs":["198.19.255.30"]}}"#,
            ],
        );
        let t0 = Instant::now();
        assert!(
            lab::wait_until(Duration::from_secs(5), || w
                .client
                .tcp_connect(ip("198.19.255.30"), 80, POLL)
                .is_ok()),
            "{tag} the external IP set with kubectl patch is not programmed\n{}",
            p.logs()
        );
        eprintln!(
            "{tag} kubectl patch followed in {} ms",
            t0.elapsed().as_millis()
        );
        let g = greeting(
            w.client.tcp_connect(ip("198.19.255.30"), 80, T),
            "externalIP",
        );
        assert_eq!(g.client.ip(), node1, "{tag} masqueraded");
        // apply: a new Service and its EndpointSlice.
        let file = dir.join("kubectl-made.yaml");
        std::fs::write(
            &file,
            yaml(&simple(
                "kubectl-made",
                "198.19.0.31",
                &[("198.18.66.3", "node2")],
            )),
        )
        .unwrap();
        kubectl(&w, &dir, &["apply", "-f", &file.to_string_lossy()]);
        assert!(
            lab::wait_until(Duration::from_secs(5), || w
                .b
                .tcp_connect(ip("198.19.0.31"), 80, POLL)
                .is_ok_and(|l| l.starts_with("d "))),
            "{tag} the Service created with kubectl apply is not programmed\n{}",
            p.logs()
        );
        let out = kubectl(&w, &dir, &["-n", "demo", "get", "services", "-o", "name"]);
        assert!(out.contains("service/kubectl-made"), "{out}");
        // delete: its rules go away.
        kubectl(
            &w,
            &dir,
            &["-n", "demo", "delete", "service", "kubectl-made"],
        );
        assert!(
            lab::wait_until(Duration::from_secs(5), || w
                .b
                .tcp_connect(ip("198.19.0.31"), 80, POLL)
                .is_err()),
            "{tag} the Service deleted with kubectl is still programmed\n{}",
            p.logs()
        );
        let nat = w.iptables("-t nat -S");
        assert!(!nat.contains("demo/kubectl-made"), "{tag}\n{nat}");
    }
    let logs = p.stderr();
    assert!(!logs.contains("ERROR"), "{tag} errors in the log:\n{logs}");
}

#[test]
fn apiserver_iptables_legacy() {
    apiserver("legacy");
}

#[test]
fn apiserver_iptables_nft() {
    apiserver("nft");
}
