//! The lab's lifetime: processes stopped by PID, namespaces removed on drop and on panic,
//! stale labs of a crashed owner swept, kept labs left alone until `down`, parallel labs
//! kept apart. Needs root.

use std::io::{BufRead, BufReader};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::time::Duration;

use lab::state::start_time;
use lab::{EchoSpec, Greeting, Lab, LabError, LabState, SpawnOpts};

const T: Duration = Duration::from_secs(2);

fn live_netns() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_panic_inside_a_test_still_removes_everything() {
    lab::require_root().unwrap();
    let mut seen = (Vec::new(), Vec::new(), None, String::new());
    let r = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new("panics").unwrap();
        let n1 = lab.node("node1").unwrap();
        let tor = lab.router("tor").unwrap();
        lab.segment("rack", &[&n1, &tor]).unwrap();
        let pod = lab.pod(&n1, "a").unwrap();
        let _echo = pod.echo_server(EchoSpec::tcp_udp(&[7000])).unwrap();
        let kept_handle = n1.spawn(&["sleep", "60"]).unwrap();
        let forgotten = tor
            .spawn(&["sh", "-c", "echo started; exec sleep 60"])
            .unwrap();
        seen = (
            lab.namespaces(),
            vec![kept_handle.pid(), forgotten.pid()],
            Some(lab.dir().to_path_buf()),
            lab.id().to_string(),
        );
        assert!(lab::wait_until(T, || forgotten
            .stdout()
            .contains("started")));
        // only the lab knows this one now: its drop must stop it
        std::mem::forget(forgotten);
        assert!(seen.0.iter().all(|n| live_netns().contains(n)));
        panic!("a failing test");
    }));
    assert!(r.is_err());
    let (nss, pids, dir, id) = seen;
    assert_eq!(nss.len(), 4, "node1, tor, sw-rack, a: {nss:?}");
    let live = live_netns();
    for ns in &nss {
        assert!(!live.contains(ns), "{ns} left behind");
    }
    for pid in pids {
        assert_eq!(start_time(pid), None, "process {pid} left running");
    }
    assert!(!dir.unwrap().exists(), "temp dir left behind");
    assert!(!LabState::path(&id).exists(), "state file left behind");
}

/// Not a test on its own: the child process of `the_sweeper_removes_a_lab_whose_owner_died`.
/// It builds a lab, starts a process in it, prints the lab id and waits to be killed.
#[test]
#[ignore = "helper, run by the_sweeper_removes_a_lab_whose_owner_died"]
fn crashed_owner_helper() {
    if std::env::var("LAB_CRASH_HELPER").is_err() {
        return;
    }
    let lab = Lab::new("crashes").unwrap();
    let h = lab.host("h1").unwrap();
    let r = lab.router("r1").unwrap();
    lab.link(&h, &r).unwrap();
    let p = h.spawn(&["sleep", "60"]).unwrap();
    // on a line of its own: libtest has printed "test crashed_owner_helper ... " already
    println!("\nLAB {} {}", lab.id(), p.pid());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn the_sweeper_removes_a_lab_whose_owner_died() {
    lab::require_root().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crashed_owner_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LAB_CRASH_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !line.starts_with("LAB ") {
        // libtest's own output comes first
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "helper ended without a lab"
        );
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let (id, sleeper): (String, i32) = (words[1].to_string(), words[2].parse().unwrap());
    let st = LabState::load(&id).unwrap();
    assert_eq!(st.owner_pid, child.id() as i32);
    assert_eq!(st.netns.len(), 2);
    assert_eq!(st.pids.len(), 1);

    // owner alive: not stale, the sweeper leaves it alone
    lab::sweep_stale().unwrap();
    assert!(st.netns.iter().all(|n| live_netns().contains(n)));
    assert!(!LabState::load(&id).unwrap().is_stale());

    // the owner crashes (SIGKILL: no destructor runs)
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(start_time(sleeper).is_some(), "its process outlives it");
    lab::sweep_stale().unwrap();
    let live = live_netns();
    assert!(
        st.netns.iter().all(|n| !live.contains(n)),
        "{:?} still in {live:?}",
        st.netns
    );
    assert!(
        lab::wait_until(T, || start_time(sleeper).is_none()),
        "sleeper {sleeper} still runs"
    );
    assert!(!LabState::path(&id).exists());
    assert!(!st.dir.exists());
}

#[test]
fn a_kept_lab_stays_until_down() {
    lab::require_root().unwrap();
    let lab = Lab::new("kept").unwrap();
    let h = lab.host("h1").unwrap();
    let p = h.spawn(&["sleep", "60"]).unwrap();
    let pid = p.pid();
    let st = lab.keep().unwrap();
    drop(p); // the handle goes, the process stays: the lab is kept
    assert!(st.kept);
    assert!(lab::state::pid_alive(pid));
    lab::sweep_stale().unwrap();
    assert!(
        live_netns().contains(&st.netns[0]),
        "a kept lab is not stale"
    );
    let gone = lab::down(&st.id, false).unwrap();
    assert_eq!(gone.id, st.id);
    assert!(!live_netns().contains(&st.netns[0]));
    // a zombie until this test process exits: its parent (us) dropped the handle
    assert!(lab::wait_until(T, || !lab::state::pid_alive(pid)));
    assert!(matches!(
        lab::down(&st.id, false),
        Err(LabError::NoLab { .. })
    ));
}

#[test]
fn processes_log_and_stop_by_pid() {
    lab::require_root().unwrap();
    let lab = Lab::new("procs").unwrap();
    let h = lab.host("h1").unwrap();
    let r = lab.router("r1").unwrap();
    lab.link(&h, &r).unwrap();
    // it runs inside the host's namespace
    let p = h
        .spawn(&[
            "sh",
            "-c",
            "ip -br addr show eth0; echo oops >&2; exec sleep 60",
        ])
        .unwrap();
    assert!(
        lab::wait_until(T, || p.stdout().contains("198.18.1.1/24")),
        "{}",
        p.logs()
    );
    assert!(
        lab::wait_until(T, || p.stderr().contains("oops")),
        "{}",
        p.logs()
    );
    assert!(p.is_running());
    let st = lab.state();
    assert_eq!(st.pids.iter().map(|r| r.pid).collect::<Vec<_>>(), [p.pid()]);
    let status = p.stop().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
    assert!(lab.state().pids.is_empty());

    // SIGTERM ignored: SIGKILL after the grace period
    let opts = SpawnOpts {
        grace: Duration::from_millis(200),
        name: Some("stubborn".into()),
        ..SpawnOpts::default()
    };
    let p = h
        .spawn_with(&["sh", "-c", "trap '' TERM; echo ready; sleep 60"], &opts)
        .unwrap();
    assert!(lab::wait_until(T, || p.stdout().contains("ready")));
    assert_eq!(p.name(), "stubborn");
    let status = p.stop().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    // one-shot commands
    let out = r.exec(&["ip", "-br", "addr", "show", "eth0"]).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("198.18.1.2/24"));
    let e = r.sh("echo bad >&2; exit 3").unwrap_err();
    assert!(
        matches!(&e, LabError::Command { stderr, .. } if stderr == "bad"),
        "{e}"
    );
    assert!(!r.output(&["false"]).unwrap().status.success());
    // run(): a closure on a thread inside the namespace
    let ifaces = r
        .run(|| std::fs::read_to_string("/proc/net/dev").unwrap())
        .unwrap();
    assert!(ifaces.contains("eth0:"), "{ifaces}");
}

#[test]
fn parallel_labs_do_not_collide() {
    lab::require_root().unwrap();
    let results: Vec<(String, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                s.spawn(move || {
                    let lab = Lab::new("parallel").unwrap();
                    let n1 = lab.node("node1").unwrap();
                    let n2 = lab.node("node2").unwrap();
                    lab.segment("rack", &[&n1, &n2]).unwrap();
                    let a = lab.pod(&n1, "a").unwrap();
                    let b = lab.pod(&n2, "b").unwrap();
                    n1.add_route(&format!(
                        "{} via {}",
                        n2.pod_cidr4().unwrap(),
                        n2.ipv4().unwrap()
                    ))
                    .unwrap();
                    n2.add_route(&format!(
                        "{} via {}",
                        n1.pod_cidr4().unwrap(),
                        n1.ipv4().unwrap()
                    ))
                    .unwrap();
                    let _e = b
                        .echo_server(EchoSpec {
                            tcp: vec![7000],
                            name: Some(format!("b{i}")),
                            ..Default::default()
                        })
                        .unwrap();
                    let g = Greeting::parse(&a.tcp_connect(b.ipv4().unwrap(), 7000, T).unwrap())
                        .unwrap();
                    assert_eq!(g.host, format!("b{i}"), "each lab reaches its own pod");
                    (lab.id().to_string(), lab.namespaces())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<String> = results.iter().flat_map(|(_, n)| n.clone()).collect();
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "namespace names collide");
    assert_eq!(count, 4 * 5);
    let live = live_netns();
    assert!(all.iter().all(|n| !live.contains(n)));
}
