//! Graceful restart end to end (RFC 4724; root; lab namespaces):
//!
//! ```text
//!   pod a 198.18.65.2 ── node1 (bgpd AS 65011, .11) ──┐
//!                                                     rack ── tor (BIRD AS 65000, .1, GR)
//!   pod b 198.18.66.2 ── node2 (bgpd AS 65012, .12) ──┘
//! ```
//! - Restarting speaker: a ping from pod a to pod b every 20 ms loses nothing while node1's
//!   bgpd is SIGKILLed and started again (the kernel routes stay, the tor keeps node1's routes
//!   as a GR helper); a route the tor stopped announcing meanwhile is swept after End-of-RIB.
//! - Two nodes at once: node1's and node2's bgpd are SIGKILLed together and restarted
//!   together; the same ping loses nothing, the tor keeps both nodes' routes meanwhile.
//! - Late source: node1's bgpd restarts while its manifests file is away for 3 s; its
//!   End-of-RIB waits for the pod CIDR, so the tor and node2 keep node1's route throughout.
//! - Helper: the tor's BIRD is SIGKILLed and restarted with `-R`; we keep its routes for its
//!   Restart Time, sweep what it did not announce again, and drop everything when it stays
//!   away longer than that.

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lab::{Lab, SpawnOpts};
use nix::sys::signal::Signal;
use support::router::{Kind, Router, RouterSpec};
use support::{Bgpd, kernel_route, wait};

fn manifests(lab: &Lab) {
    std::fs::write(
        lab.dir().join("nodes.yaml"),
        "apiVersion: v1
kind: Node
metadata: { name: node1 }
spec: { podCIDRs: [198.18.65.0/24] }
---
apiVersion: v1
kind: Node
metadata: { name: node2 }
spec: { podCIDRs: [198.18.66.0/24] }
",
    )
    .unwrap();
}

fn bgpd_conf(lab: &Lab, name: &str, addr: &str, asn: u32) -> String {
    format!(
        "asn: {asn}
router_id: {addr}
listen: [{addr}]
node_name: {name}
manifests: {dir}/nodes.yaml
control_socket: {sock}
graceful_restart: {{ restart_time: 30, deferral: 20 }}
import: [198.18.64.0/18 le 24]
peers:
  - {{ address: 198.18.0.1, asn: 65000, hold_time: 9, connect_retry: 1 }}
",
        dir = lab.dir().display(),
        sock = Bgpd::socket_for(lab, name).display(),
    )
}

/// `ping` statistics from its summary: (transmitted, received).
fn ping_stats(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let nums: Vec<u64> = line
        .split(',')
        .filter_map(|f| f.split_whitespace().next()?.parse().ok())
        .collect();
    Some((*nums.first()?, *nums.get(1)?))
}

#[test]
fn a_ping_between_pods_loses_nothing_while_bgpd_is_sigkilled_and_restarted() {
    let lab = support::lab("bgpd-gr-ping");
    let n1 = lab.node("node1").unwrap();
    let n2 = lab.node("node2").unwrap();
    let tor = lab.router("tor").unwrap();
    lab.segment("rack", &[&n1, &n2, &tor]).unwrap();
    let a = lab.pod(&n1, "a").unwrap();
    let b = lab.pod(&n2, "b").unwrap();
    manifests(&lab);
    let mut spec = RouterSpec::new(
        Kind::Bird,
        &[
            (Ipv4Addr::new(198, 18, 0, 11), 65011),
            (Ipv4Addr::new(198, 18, 0, 12), 65012),
        ],
    );
    spec.graceful_restart = Some(60);
    spec.announce4 = vec!["198.18.67.0/24".into()];
    let mut r = Router::start(&lab, &tor, "tor", spec);
    let mut b1 = Bgpd::start(
        &lab,
        &n1,
        "node1",
        &bgpd_conf(&lab, "node1", "198.18.0.11", 65011),
    );
    let b2 = Bgpd::start(
        &lab,
        &n2,
        "node2",
        &bgpd_conf(&lab, "node2", "198.18.0.12", 65012),
    );
    let via_tor = Some(vec!["198.18.0.1".to_string()]);
    assert!(
        wait(40, || kernel_route(&n1, "198.18.66.0/24") == via_tor
            && kernel_route(&n2, "198.18.65.0/24") == via_tor
            && kernel_route(&n1, "198.18.67.0/24") == via_tor),
        "routes not learned: {:?} {:?}\n{}\n{}\n{}",
        support::kernel_routes(&n1, false),
        support::kernel_routes(&n2, false),
        b1.logs(),
        b2.logs(),
        r.summary()
    );
    let b_ip = b.ipv4().unwrap().to_string();
    a.ping(b.ipv4().unwrap(), Duration::from_secs(5))
        .expect("pod a reaches pod b");

    let ping = a
        .spawn_with(
            &["ping", "-n", "-i", "0.02", &b_ip],
            &SpawnOpts {
                name: Some("ping-a-b".into()),
                ..Default::default()
            },
        )
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    b1.kill();
    let killed = Instant::now();
    // while node1's bgpd is away the tor stops announcing 198.18.67.0/24
    r.withdraw("198.18.67.0/24");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        kernel_route(&n1, "198.18.67.0/24"),
        via_tor,
        "stale route kept until EoR"
    );
    assert_eq!(
        kernel_route(&n2, "198.18.65.0/24"),
        via_tor,
        "the tor kept node1's route"
    );
    b1.restart();
    let ok = wait(40, || {
        assert_eq!(
            kernel_route(&n1, "198.18.66.0/24"),
            via_tor,
            "198.18.66.0/24 left node1's kernel during the restart\n{}",
            b1.logs()
        );
        b1.state("198.18.0.1") == "Established" && kernel_route(&n1, "198.18.67.0/24").is_none()
    });
    assert!(ok, "stale route not swept\n{}", b1.logs());
    let restarted = killed.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    ping.signal(Signal::SIGINT).unwrap();
    ping.wait_timeout(Duration::from_secs(5));
    let out = ping.stdout();
    let (sent, received) = ping_stats(&out).unwrap_or_else(|| panic!("no ping summary:\n{out}"));
    println!(
        "ping every 20 ms: {sent} sent, {received} received; bgpd down and back with the stale route swept in {restarted:?}"
    );
    assert!(sent >= 100, "{out}");
    assert_eq!(sent, received, "packets lost during the restart:\n{out}");
    let logs = b1.logs();
    assert!(
        logs.contains("graceful restart: keeping our kernel routes"),
        "{logs}"
    );
    assert_eq!(kernel_route(&n2, "198.18.65.0/24"), via_tor);
}

#[test]
fn helper_mode_keeps_a_restarting_routers_routes_for_its_restart_time() {
    let lab = support::lab("bgpd-gr-helper");
    let node = lab.node("node1").unwrap();
    let tor = lab.router("tor").unwrap();
    lab.segment("rack", &[&node, &tor]).unwrap();
    manifests(&lab);
    let mut spec = RouterSpec::new(Kind::Bird, &[(Ipv4Addr::new(198, 18, 0, 11), 65011)]);
    // Restart Time 60 s for the first restart: BIRD must be Established again within it (the
    // 2 s below, its start, its connect delay: with 8 s that was a race on a loaded machine);
    // the restarted BIRD offers 8 s, and the helper must use that one for the second death.
    spec.graceful_restart = Some(60);
    spec.announce4 = vec!["198.18.67.0/24".into(), "198.18.68.0/24".into()];
    let mut r = Router::start(&lab, &tor, "tor", spec);
    let bgpd = Bgpd::start(
        &lab,
        &node,
        "node1",
        &bgpd_conf(&lab, "node1", "198.18.0.11", 65011),
    );
    let via = Some(vec!["198.18.0.1".to_string()]);
    assert!(
        wait(30, || kernel_route(&node, "198.18.67.0/24") == via
            && kernel_route(&node, "198.18.68.0/24") == via),
        "{}\n{}",
        bgpd.logs(),
        r.summary()
    );
    let n = bgpd.neighbor("198.18.0.1");
    assert_eq!(n["state"], "Established", "{n}");

    // BIRD is killed and comes back (with -R) without 198.18.68.0/24
    r.kill_and_restart(&lab, |r| {
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(kernel_route(&node, "198.18.67.0/24"), via);
        assert_eq!(kernel_route(&node, "198.18.68.0/24"), via);
        r.spec.announce4.retain(|p| p != "198.18.68.0/24");
        r.spec.graceful_restart = Some(8);
    });
    let ok = wait(30, || {
        assert_eq!(
            kernel_route(&node, "198.18.67.0/24"),
            via,
            "198.18.67.0/24 left the kernel during the router's restart\n{}",
            bgpd.logs()
        );
        bgpd.state("198.18.0.1") == "Established" && kernel_route(&node, "198.18.68.0/24").is_none()
    });
    assert!(ok, "stale route not swept\n{}\n{}", bgpd.logs(), r.logs());
    let logs = bgpd.logs();
    assert!(
        logs.contains("graceful restart helper: keeping the peer's routes as stale"),
        "{logs}"
    );
    assert!(logs.contains("stale routes of the peer swept"), "{logs}");

    // killed again and not back within its Restart Time (8 s): the routes go after it
    r.signal(Signal::SIGKILL);
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        kernel_route(&node, "198.18.67.0/24"),
        via,
        "dropped before the restart time"
    );
    assert!(
        wait(20, || kernel_route(&node, "198.18.67.0/24").is_none()),
        "{}",
        bgpd.logs()
    );
    let gone = killed.elapsed();
    println!("router's routes kept {gone:?} after it died (Restart Time 8 s)");
    assert!(gone >= Duration::from_secs(7), "{gone:?}");
}

/// Two nodes restart at once (a rollout of the DaemonSet, a power event): both bgpds are
/// SIGKILLed together and come back together; the tor is a GR helper for both, the kernel
/// routes stay on both nodes, and a ping from pod a to pod b every 20 ms loses nothing.
#[test]
fn two_nodes_restarting_at_once_lose_no_packets_between_their_pods() {
    let lab = support::lab("bgpd-gr-two");
    let n1 = lab.node("node1").unwrap();
    let n2 = lab.node("node2").unwrap();
    let tor = lab.router("tor").unwrap();
    lab.segment("rack", &[&n1, &n2, &tor]).unwrap();
    let a = lab.pod(&n1, "a").unwrap();
    let b = lab.pod(&n2, "b").unwrap();
    manifests(&lab);
    let mut spec = RouterSpec::new(
        Kind::Bird,
        &[
            (Ipv4Addr::new(198, 18, 0, 11), 65011),
            (Ipv4Addr::new(198, 18, 0, 12), 65012),
        ],
    );
    spec.graceful_restart = Some(60);
    let r = Router::start(&lab, &tor, "tor", spec);
    let mut b1 = Bgpd::start(
        &lab,
        &n1,
        "node1",
        &bgpd_conf(&lab, "node1", "198.18.0.11", 65011),
    );
    let mut b2 = Bgpd::start(
        &lab,
        &n2,
        "node2",
        &bgpd_conf(&lab, "node2", "198.18.0.12", 65012),
    );
    let via_tor = Some(vec!["198.18.0.1".to_string()]);
    let both = |b1: &Bgpd, b2: &Bgpd| {
        assert_eq!(
            (
                kernel_route(&n1, "198.18.66.0/24"),
                kernel_route(&n2, "198.18.65.0/24")
            ),
            (via_tor.clone(), via_tor.clone()),
            "a pod route left a kernel\n{}\n{}",
            b1.logs(),
            b2.logs()
        );
    };
    assert!(
        wait(40, || kernel_route(&n1, "198.18.66.0/24") == via_tor
            && kernel_route(&n2, "198.18.65.0/24") == via_tor),
        "routes not learned\n{}\n{}\n{}",
        b1.logs(),
        b2.logs(),
        r.summary()
    );
    let b_ip = b.ipv4().unwrap().to_string();
    a.ping(b.ipv4().unwrap(), Duration::from_secs(5))
        .expect("pod a reaches pod b");
    let ping = a
        .spawn_with(
            &["ping", "-n", "-i", "0.02", &b_ip],
            &SpawnOpts {
                name: Some("ping-a-b".into()),
                ..Default::default()
            },
        )
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    b1.kill();
    b2.kill();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    both(&b1, &b2);
    // the tor kept both nodes' routes as a helper (and so its own kernel routes)
    for p in ["198.18.65.0/24", "198.18.66.0/24"] {
        assert!(
            support::router::route_any(&tor, p).is_some(),
            "the tor dropped {p}\n{}",
            r.logs()
        );
    }
    b1.restart();
    b2.restart();
    let ok = wait(40, || {
        both(&b1, &b2);
        b1.state("198.18.0.1") == "Established" && b2.state("198.18.0.1") == "Established"
    });
    assert!(ok, "not Established again\n{}\n{}", b1.logs(), b2.logs());
    // the restarted speakers finish their selection deferral on the tor's End-of-RIB and
    // keep their routes (re-learned, not swept)
    assert!(
        wait(30, || [&b1, &b2].iter().all(|b| b
            .logs()
            .contains("stale kernel routes not re-learned are removed"))),
        "{}\n{}",
        b1.logs(),
        b2.logs()
    );
    both(&b1, &b2);
    let restarted = killed.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    ping.signal(Signal::SIGINT).unwrap();
    ping.wait_timeout(Duration::from_secs(5));
    let out = ping.stdout();
    let (sent, received) = ping_stats(&out).unwrap_or_else(|| panic!("no ping summary:\n{out}"));
    println!(
        "two nodes restarted at once: ping every 20 ms {sent} sent, {received} received; both back in {restarted:?}"
    );
    assert!(sent >= 100, "{out}");
    assert_eq!(sent, received, "packets lost during the restarts:\n{out}");
    for b in [&b1, &b2] {
        assert!(
            b.logs()
                .contains("graceful restart: keeping our kernel routes"),
            "{}",
            b.logs()
        );
    }
}

#[test]
fn a_restarted_node_whose_pod_cidr_source_is_late_keeps_its_route_at_the_tor() {
    // A helper flushes our stale routes at our End-of-RIB (RFC 4724 §4.2): the End-of-RIB
    // must wait until the Node's pod CIDR is known again, or the fabric drops the node's pods
    // for as long as the source takes (here 3 s: the manifests file is away at the restart).
    let lab = support::lab("bgpd-gr-late");
    let n1 = lab.node("node1").unwrap();
    let n2 = lab.node("node2").unwrap();
    let tor = lab.router("tor").unwrap();
    lab.segment("rack", &[&n1, &n2, &tor]).unwrap();
    manifests(&lab);
    let mut spec = RouterSpec::new(
        Kind::Bird,
        &[
            (Ipv4Addr::new(198, 18, 0, 11), 65011),
            (Ipv4Addr::new(198, 18, 0, 12), 65012),
        ],
    );
    spec.graceful_restart = Some(60);
    let r = Router::start(&lab, &tor, "tor", spec);
    let mut b1 = Bgpd::start(
        &lab,
        &n1,
        "node1",
        &bgpd_conf(&lab, "node1", "198.18.0.11", 65011),
    );
    let b2 = Bgpd::start(
        &lab,
        &n2,
        "node2",
        &bgpd_conf(&lab, "node2", "198.18.0.12", 65012),
    );
    let via_tor = Some(vec!["198.18.0.1".to_string()]);
    assert!(
        wait(40, || kernel_route(&n2, "198.18.65.0/24") == via_tor),
        "node1's pod CIDR not learned by node2\n{}\n{}\n{}",
        b1.logs(),
        b2.logs(),
        r.summary()
    );
    b1.kill();
    let nodes = lab.dir().join("nodes.yaml");
    let away = lab.dir().join("nodes.yaml.away");
    std::fs::rename(&nodes, &away).unwrap();
    b1.restart();
    assert!(
        wait(20, || b1.state("198.18.0.1") == "Established"),
        "not Established again\n{}",
        b1.logs()
    );
    // the source is late: the tor keeps node1's route (stale) and node2 keeps it
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(
            support::router::route_any(&tor, "198.18.65.0/24").is_some(),
            "the tor dropped node1's pod CIDR before node1 knew it again\n{}\n{}",
            b1.logs(),
            r.logs()
        );
        assert_eq!(
            kernel_route(&n2, "198.18.65.0/24"),
            via_tor,
            "node2 lost node1's pod CIDR\n{}",
            b1.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        b1.logs()
            .contains("End-of-RIB waits until our own prefixes are known"),
        "{}",
        b1.logs()
    );
    std::fs::rename(&away, &nodes).unwrap();
    // the pod CIDR is read, advertised, and then End-of-RIB goes out: the tor keeps the route
    // (re-learned, no longer stale) for good
    assert!(
        wait(20, || r.logs().matches("n11: Got END-OF-RIB").count() >= 4),
        "no End-of-RIB from node1 after its source reported\n{}\n{}",
        b1.logs(),
        r.logs()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        support::router::route_any(&tor, "198.18.65.0/24").is_some(),
        "{}",
        r.logs()
    );
    assert_eq!(kernel_route(&n2, "198.18.65.0/24"), via_tor);
}
