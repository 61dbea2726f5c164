//! kube-proxy-rs's life on a node, once per iptables backend, with real traffic: `--dry-run`
//! touches nothing; `--once` programs and exits; the daemon adopts those rules; backend
//! auto-detection follows kubelet's hint chain; a UDP flow moves to the new endpoint within
//! a second of its endpoint being replaced (conntrack cleanup); the xtables lock is waited
//! for (legacy); a restore the kernel refuses keeps the old rules and is retried as a full
//! sync; a flushed canary triggers a full resync; kill -9 and a restart keep traffic
//! flowing; `--cleanup` removes everything. Needs root; skipped with a message otherwise.

mod daemon_lab;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use daemon_lab::*;
use lab::{ConnOpts, Greeting};

fn lifecycle(backend: &'static str) {
    if !usable() {
        return;
    }
    let w = World::new("kpl", backend);
    let tag = w.tag();
    let dir = w.lab.dir().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    let mut objects = vec![node1()];
    objects.extend(web());
    objects.extend(flow("198.18.66.2"));
    put(&dir, &objects);
    let manifests = format!("--manifests={}", dir.display());
    // Auto-detection (no --iptables-backend): kubelet's hint chain names the backend.
    w.iptables("-t mangle -N KUBE-IPTABLES-HINT");
    let auto: Vec<String> = w
        .base_flags()
        .into_iter()
        .filter(|f| !f.starts_with("--iptables-backend"))
        .collect();

    // --dry-run prints the restore input and changes nothing.
    let before = w.saves();
    let o = w.run(&auto, &["--dry-run", &manifests]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("*nat") && printed.contains("-j KUBE-SVC-") && printed.contains("*filter"),
        "{printed}"
    );
    assert_eq!(w.saves(), before, "{tag} --dry-run changed the rules");

    // --once: one full sync, exit 0; the rules work without a daemon.
    let o = w.run(&auto, &["--once", &manifests]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{tag} --once failed:\n{err}");
    assert!(
        err.contains(&format!("iptables backend {backend} (kubelet's chains")),
        "{tag} backend not detected from the hint chain:\n{err}"
    );
    let reached = hosts_reached(20, || {
        greeting(
            w.b.tcp_connect(ip("198.19.0.10"), 80, T),
            "web after --once",
        )
    });
    assert_eq!(reached, set(&["a", "c"]), "{tag}");
    let after_once = w.saves();

    // The daemon adopts them: its first (full) sync writes the same rules.
    let p = w.start_raw(&auto, &[&manifests]);
    assert!(
        lab::wait_until(Duration::from_secs(10), || p
            .stderr()
            .contains("synced IPv4 full (start)")),
        "{}",
        p.logs()
    );
    w.wait_synced(&p, "start");
    assert_eq!(
        w.saves(),
        after_once,
        "{tag} the daemon's first sync differs from --once"
    );

    // A UDP flow (fixed source port, as a resolver's) moves to the new endpoint when its
    // endpoint is replaced: the stale conntrack entry is deleted.
    let udp = || {
        w.b.udp_request_with(
            ip("198.19.0.54"),
            53,
            b"q",
            &ConnOpts::new(Duration::from_millis(200)).src_port(40053),
        )
    };
    assert_eq!(greeting(udp(), "udp flow").host, "c");
    let mut moved_objects = vec![node1()];
    moved_objects.extend(web());
    moved_objects.extend(flow("198.18.66.3"));
    put(&dir, &moved_objects);
    let t0 = Instant::now();
    let moved = lab::wait_until(Duration::from_secs(5), || {
        udp()
            .ok()
            .and_then(|l| Greeting::parse(&l))
            .is_some_and(|g| g.host == "d")
    });
    let took = t0.elapsed();
    assert!(moved, "{tag} the UDP flow still goes to c\n{}", p.logs());
    eprintln!(
        "{tag} UDP flow moved to the new endpoint {} ms after the manifest edit",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "{tag} took {took:?}");
    wait_log(
        &p,
        "deleted conntrack entry udp src=198.18.65.3 dst=198.19.0.54 sport=40053",
    );
    let m = w.metrics();
    for want in [
        "kubeproxy_network_programming_duration_seconds_count 1",
        "kubeproxy_sync_proxy_rules_endpoint_changes_total 1",
    ] {
        assert!(m.lines().any(|l| l == want), "{tag} no {want:?} in\n{m}");
    }
    assert!(
        metric(
            &m,
            "kubeproxy_rs_conntrack_entries_deleted_total{reason=\"not a serving endpoint\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "{m}"
    );

    // Legacy: another program holds the xtables lock; the sync waits for it, then applies.
    if backend == "legacy" {
        let holder =
            w.n1.spawn(&["flock", &w.lock_file.to_string_lossy(), "sleep", "1.5"])
                .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut edited = moved_objects.clone();
        edited.extend(simple("added", "198.19.0.30", &[("198.18.65.3", "node1")]));
        put(&dir, &edited);
        let t0 = Instant::now();
        assert!(
            lab::wait_until(Duration::from_secs(8), || w
                .a
                .tcp_connect(ip("198.19.0.30"), 80, POLL)
                .is_ok()),
            "{tag} added service not reachable\n{}",
            p.logs()
        );
        eprintln!(
            "{tag} added service reachable {} ms after the edit, the lock held 1.5 s",
            t0.elapsed().as_millis()
        );
        assert!(
            t0.elapsed() > Duration::from_millis(1000),
            "{tag} the lock was not waited for"
        );
        assert!(
            p.stderr()
                .contains("another program holds the xtables lock"),
            "{}",
            p.logs()
        );
        drop(holder);
    }

    // A restore the kernel refuses: someone empties KUBE-SERVICES and deletes flow's service
    // chain, so the next partial sync (its KUBE-SERVICES jumps there) fails. The failing line
    // is logged and a full sync repairs everything.
    let flow_svc = w.chain_of("demo/flow:dns cluster IP");
    w.iptables(&format!(
        "-t nat -F KUBE-SERVICES && iptables-{backend} -w 5 -t nat -F {flow_svc} && iptables-{backend} -w 5 -t nat -X {flow_svc}"
    ));
    assert!(
        w.b.tcp_connect(ip("198.19.0.10"), 80, POLL).is_err(),
        "{tag} the flush did not cut web"
    );
    let t0 = Instant::now();
    assert!(
        lab::wait_until(Duration::from_secs(10), || w
            .b
            .tcp_connect(ip("198.19.0.10"), 80, POLL)
            .is_ok()),
        "{tag} not repaired\n{}",
        p.logs()
    );
    eprintln!(
        "{tag} repaired {} ms after {flow_svc} was deleted (sync period 3 s)",
        t0.elapsed().as_millis()
    );
    let logs = wait_log(&p, "full (previous sync failed)");
    let failure = logs
        .lines()
        .find(|l| l.contains("sync failed, the previous rules stay"))
        .unwrap_or_else(|| panic!("{tag} no failure logged:\n{logs}"));
    assert!(
        failure.contains("partial restore") && failure.contains(&format!("-j {flow_svc}")),
        "{tag} the failing line is not named: {failure}"
    );
    assert_eq!(greeting(udp(), "udp flow after the repair").host, "d");
    let m = w.metrics();
    assert_eq!(
        metric(
            &m,
            "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total"
        ),
        Some(1.0),
        "{m}"
    );

    // Someone flushes a chain a partial sync does not rewrite and deletes the canary: the
    // canary check notices and a full resync restores the chain.
    let web_svc = w.chain_of("demo/web:http cluster IP");
    w.iptables(&format!(
        "-t mangle -X KUBE-PROXY-CANARY && iptables-{backend} -w 5 -t nat -F {web_svc}"
    ));
    assert!(
        w.b.tcp_connect(ip("198.19.0.10"), 80, POLL).is_err(),
        "{tag} the flush did not cut web"
    );
    let t0 = Instant::now();
    assert!(
        lab::wait_until(Duration::from_secs(8), || w
            .b
            .tcp_connect(ip("198.19.0.10"), 80, POLL)
            .is_ok()),
        "{tag} rules not restored after the flush\n{}",
        p.logs()
    );
    eprintln!(
        "{tag} restored {} ms after a flush (sync period 3 s)",
        t0.elapsed().as_millis()
    );
    wait_log(&p, "canary chains gone");

    // kill -9 and restart: the rules stay, traffic keeps flowing, no duplicate jumps.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let prober = {
        let (b, stop, ok, failed) = (
            w.b.clone(),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match b.tcp_connect(ip("198.19.0.10"), 80, Duration::from_secs(1)) {
                    Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                };
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let rules = w.saves();
    p.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(p.wait_timeout(Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.saves(), rules, "{tag} rules changed after kill -9");
    let t0 = Instant::now();
    let p2 = w.start_raw(&auto, &[&manifests]);
    assert!(
        lab::wait_until(Duration::from_secs(10), || p2
            .stderr()
            .contains("synced IPv4 full (start)")),
        "{}",
        p2.logs()
    );
    eprintln!(
        "{tag} restarted process synced {} ms after start",
        t0.elapsed().as_millis()
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    prober.join().unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "{tag} connections failed during the restart"
    );
    assert!(ok.load(Ordering::SeqCst) > 20);
    assert_eq!(
        w.saves(),
        rules,
        "{tag} the restarted process changed the rules"
    );
    let input = w.iptables("-S INPUT");
    assert_eq!(
        input.matches("-j KUBE-").count(),
        4,
        "{tag} duplicate jumps:\n{input}"
    );

    // --cleanup (backend detected) removes everything kube-proxy-rs created, and only that.
    drop(p2);
    let o = w.run(&[], &["--cleanup"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let left = w.saves();
    let kube: Vec<&str> = left
        .lines()
        .filter(|l| l.contains("KUBE-") && !l.contains("KUBE-IPTABLES-HINT"))
        .collect();
    assert!(kube.is_empty(), "{tag} left after --cleanup:\n{left}");
    assert!(
        left.contains(":KUBE-IPTABLES-HINT"),
        "{tag} kubelet's chain was removed"
    );
}

#[test]
fn lifecycle_iptables_legacy() {
    lifecycle("legacy");
}

#[test]
fn lifecycle_iptables_nft() {
    lifecycle("nft");
}
