//! bgpd against real BIRD 2 routers in network namespaces (root; every lab is removed on
//! success and on failure):
//!
//! ```text
//!   node1 (bgpd, AS 65011, 198.18.0.11) ──rack 198.18.0.0/24── tor1 (BIRD, AS 65000, .1)
//!                                                         └─── tor2 (BIRD, AS 65000, .2)
//!   node1 advertises its pod CIDRs 198.18.65.0/24, 2001:db8:64:1::/64 (from a Node manifest);
//!   the tors announce 198.18.66.0/24 and 2001:db8:64:2::/64 (node2's), installed with ECMP.
//! ```

mod support;

use std::time::{Duration, Instant};

use lab::{Host, Lab};
use nix::sys::signal::Signal;
use support::{Bgpd, Bird, kernel_route, wait};

const NODE_AS: u32 = 65011;
const TOR_AS: u32 = 65000;

/// A BIRD config for a tor peering with node1 (198.18.0.11). `s4`/`s6` are the prefixes of
/// the static protocols `s4`/`s6` it announces; `extra` goes into the BGP protocol.
fn bird_conf(tor: &Host, s4: &[&str], s6: &[&str], extra: &str) -> String {
    let id = tor.ipv4().unwrap();
    let v6 = tor.ipv6().unwrap();
    let routes = |v: &[&str]| -> String {
        v.iter()
            .map(|p| format!("  route {p} unreachable;\n"))
            .collect()
    };
    format!(
        "router id {id};
timeformat protocol iso long ms;
log stderr all;
protocol device {{ scan time 1; }}
protocol static s4 {{
  ipv4;
{r4}}}
protocol static s6 {{
  ipv6;
{r6}}}
protocol bgp node1 {{
  local {id} as {TOR_AS};
  neighbor 198.18.0.11 as {NODE_AS};
  hold time 9; keepalive time 3;
  connect delay time 1; connect retry time 1; error wait time 1, 3;
  graceful restart on;
{extra}
  ipv4 {{ import all; export where proto = \"s4\"; next hop self; }};
  ipv6 {{ import all; export where proto = \"s6\"; next hop address {v6}; }};
}}
",
        r4 = routes(s4),
        r6 = routes(s6)
    )
}

/// One peer entry of bgpd's config.
fn peer(addr: &str, extra: &str) -> String {
    format!(
        "  - address: {addr}\n    asn: {TOR_AS}\n    hold_time: 9\n    connect_retry: 1\n{extra}"
    )
}

fn bgpd_conf(lab: &Lab, prefixes: &[&str], peers: &[String]) -> String {
    format!(
        "asn: {NODE_AS}
router_id: 198.18.0.11
listen: [198.18.0.11]
node_name: node1
manifests: {dir}/nodes.yaml
prefixes: [{prefixes}]
control_socket: {sock}
metrics_bind_address: 127.0.0.1:9179
graceful_restart: {{ deferral: 30 }}
import: [198.18.64.0/18 le 24, \"2001:db8:64::/48 le 64\"]
peers:
{peers}",
        dir = lab.dir().display(),
        prefixes = prefixes.join(", "),
        sock = Bgpd::socket_for(lab, "node1").display(),
        peers = peers.concat(),
    )
}

fn node_manifest(lab: &Lab, cidrs: &[&str]) {
    let list = cidrs
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        lab.dir().join("nodes.yaml"),
        format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{ name: node1 }}\nspec:\n  podCIDRs: [{list}]\n"
        ),
    )
    .unwrap();
}

/// node1 and `n` tors on the rack segment.
fn topology(name: &str, n: usize) -> (Lab, Host, Vec<Host>) {
    let lab = support::lab(name);
    let node = lab.node("node1").unwrap();
    let tors: Vec<Host> = (1..=n)
        .map(|i| lab.router(&format!("tor{i}")).unwrap())
        .collect();
    let mut members = vec![&node];
    members.extend(tors.iter());
    lab.segment("rack", &members).unwrap();
    (lab, node, tors)
}

fn established(bgpd: &Bgpd, birds: &[(&Bird, &str)]) -> bool {
    birds.iter().all(|(b, addr)| {
        bgpd.state(addr) == "Established" && b.state("node1").as_deref() == Some("Established")
    })
}

fn expect_established(bgpd: &Bgpd, birds: &[(&Bird, &str)]) {
    assert!(
        wait(30, || established(bgpd, birds)),
        "sessions not Established.\nbgpd: {}\n{}\nbird: {:?}",
        serde_json::to_string_pretty(&bgpd.try_show(&["neighbors"]).unwrap_or_default()).unwrap(),
        bgpd.logs(),
        birds
            .iter()
            .map(|(b, _)| b.birdc(&["show", "protocols", "all", "node1"]))
            .collect::<Vec<_>>()
    );
}

#[test]
fn sessions_routes_ecmp_withdrawal_and_reload_with_two_bird_routers() {
    let (lab, node, tors) = topology("bgpd-bird", 2);
    node_manifest(&lab, &["198.18.65.0/24", "2001:db8:64:1::/64"]);
    let announce4 = ["198.18.66.0/24"];
    let announce6 = ["2001:db8:64:2::/64"];
    let b1 = Bird::start(
        &lab,
        &tors[0],
        "tor1",
        &bird_conf(&tors[0], &announce4, &announce6, ""),
    );
    let b2 = Bird::start(
        &lab,
        &tors[1],
        "tor2",
        &bird_conf(&tors[1], &announce4, &announce6, ""),
    );
    let peers = [peer("198.18.0.1", ""), peer("198.18.0.2", "")];
    let bgpd = Bgpd::start(
        &lab,
        &node,
        "node1",
        &bgpd_conf(&lab, &["198.19.255.1/32"], &peers),
    );
    expect_established(&bgpd, &[(&b1, "198.18.0.1"), (&b2, "198.18.0.2")]);

    // our pod CIDRs (from the Node manifest) and the static prefix at both BIRDs, via us
    for b in [&b1, &b2] {
        for p in ["198.18.65.0/24", "2001:db8:64:1::/64", "198.19.255.1/32"] {
            assert!(
                wait(10, || b.has_route(p, "node1")),
                "{p} not at BIRD:\n{}",
                b.birdc(&["show", "route", "all"])
            );
        }
        assert!(b.route("198.18.65.0/24").contains("198.18.0.11"));
        assert!(b.route("2001:db8:64:1::/64").contains("2001:db8::11"));
        assert!(b.route("198.18.65.0/24").contains(&NODE_AS.to_string()));
    }

    // BIRD's routes in node1's kernel, proto bgp, with both routers as next hops (ECMP)
    assert!(
        wait(10, || kernel_route(&node, "198.18.66.0/24")
            == Some(vec!["198.18.0.1".into(), "198.18.0.2".into()])),
        "{:?}\n{}",
        support::kernel_routes(&node, false),
        bgpd.logs()
    );
    assert!(
        wait(10, || kernel_route(&node, "2001:db8:64:2::/64")
            == Some(vec!["2001:db8::1".into(), "2001:db8::2".into()])),
        "{:?}",
        support::kernel_routes(&node, true)
    );
    // show routes explains the choice; show neighbors counts
    let r = bgpd.try_show(&["routes", "198.18.66.0/24"]).unwrap();
    let paths = r["routes"][0]["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 2);
    assert!(paths.iter().all(|p| p["multipath"] == true), "{r}");
    assert!(!r["routes"][0]["reason"].as_str().unwrap().is_empty());
    let n = bgpd.neighbor("198.18.0.1");
    assert_eq!(
        (n["accepted"].as_u64(), n["advertised"].as_u64()),
        (Some(2), Some(3)),
        "{n}"
    );
    assert_eq!(
        bgpd.try_show(&["routes", "198.18.99.0/24"]).unwrap_err().0,
        1,
        "no route: exit code 1"
    );
    // metrics
    let m = node
        .http_get([127, 0, 0, 1], 9179, "/metrics", Duration::from_secs(5))
        .unwrap();
    assert!(
        m.body.contains("bgpd_session_state{peer=\"198.18.0.1\"} 6"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("bgpd_prefixes_accepted{peer=\"198.18.0.2\"} 2")
    );

    // the config file changes (no SIGHUP): reloaded without the static prefix, which is
    // withdrawn at BIRD, sessions untouched
    let (since1, since2) = (b1.settled_since("node1"), b2.settled_since("node1"));
    bgpd.write_config(&bgpd_conf(&lab, &[], &peers));
    for b in [&b1, &b2] {
        assert!(
            wait(10, || !b.has_route("198.19.255.1/32", "node1")),
            "198.19.255.1/32 still at BIRD after the reload\n{}",
            bgpd.logs()
        );
    }
    assert_eq!(
        (b1.since("node1"), b2.since("node1")),
        (since1.clone(), since2.clone())
    );
    assert!(
        bgpd.logs().contains("changed: reloading"),
        "{}",
        bgpd.logs()
    );
    assert!(!bgpd.logs().contains("SIGHUP"), "{}", bgpd.logs());
    // the Node loses its IPv6 pod CIDR: withdrawn
    node_manifest(&lab, &["198.18.65.0/24"]);
    assert!(wait(10, || !b1.has_route("2001:db8:64:1::/64", "node1")));
    assert!(b1.has_route("198.18.65.0/24", "node1"));

    // BIRD withdraws: tor2 first (one next hop left), then tor1 (the route goes)
    b2.birdc(&["disable", "s4"]);
    assert!(
        wait(10, || kernel_route(&node, "198.18.66.0/24")
            == Some(vec!["198.18.0.1".into()])),
        "{:?}",
        support::kernel_routes(&node, false)
    );
    b1.birdc(&["disable", "s4"]);
    assert!(wait(10, || kernel_route(&node, "198.18.66.0/24").is_none()));
    for b in [&b1, &b2] {
        b.birdc(&["disable", "s6"]);
    }
    assert!(wait(10, || kernel_route(&node, "2001:db8:64:2::/64").is_none()));
    // a route of another protocol is never touched
    assert!(
        node.ip(&["route", "show", "198.18.0.0/24"])
            .unwrap()
            .contains("proto kernel")
    );
    assert_eq!((b1.since("node1"), b2.since("node1")), (since1, since2));
}

#[test]
fn md5_matching_password_establishes_and_a_wrong_one_never_does() {
    let (lab, node, tors) = topology("bgpd-md5", 2);
    node_manifest(&lab, &["198.18.65.0/24"]);
    let b1 = Bird::start(
        &lab,
        &tors[0],
        "tor1",
        &bird_conf(
            &tors[0],
            &["198.18.66.0/24"],
            &[],
            "  password \"good-key\";",
        ),
    );
    let b2 = Bird::start(
        &lab,
        &tors[1],
        "tor2",
        &bird_conf(
            &tors[1],
            &["198.18.67.0/24"],
            &[],
            "  password \"wrong-key\";",
        ),
    );
    let peers = [
        peer("198.18.0.1", "    password: good-key\n"),
        peer("198.18.0.2", "    password: good-key\n    hold_time: 3\n")
            .replace("    hold_time: 9\n", ""),
    ];
    let bgpd = Bgpd::start(&lab, &node, "node1", &bgpd_conf(&lab, &[], &peers));
    expect_established(&bgpd, &[(&b1, "198.18.0.1")]);
    assert!(wait(10, || kernel_route(&node, "198.18.66.0/24").is_some()));
    // the wrong key: never Established, on either side, over several hold times (3 s)
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(12) {
        assert_ne!(bgpd.state("198.18.0.2"), "Established");
        assert_ne!(b2.state("node1").as_deref(), Some("Established"));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(kernel_route(&node, "198.18.67.0/24").is_none());
    let n = bgpd.neighbor("198.18.0.2");
    assert_eq!(n["md5"], true);
    let why = n["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        why.contains("MD5"),
        "show neighbors should say why: {n}\n{}",
        bgpd.logs()
    );
    // the table says it too; the password is nowhere
    let table = node
        .output(&[
            env!("CARGO_BIN_EXE_bgpd"),
            "--socket",
            Bgpd::socket_for(&lab, "node1").to_str().unwrap(),
            "show",
            "neighbors",
        ])
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("198.18.0.2") && table.contains("MD5"),
        "{table}"
    );
    let cfg = bgpd.try_show(&["config"]).unwrap().to_string();
    assert!(
        !cfg.contains("good-key") && cfg.contains("<redacted>"),
        "{cfg}"
    );
    assert!(!bgpd.logs().contains("good-key"));
    assert!(!table.contains("good-key"));
}

#[test]
fn graceful_restart_after_sigkill_keeps_kernel_routes_and_sweeps_stale_ones() {
    let (lab, node, tors) = topology("bgpd-gr", 1);
    node_manifest(&lab, &["198.18.65.0/24"]);
    let conf = |s4: &[&str]| bird_conf(&tors[0], s4, &[], "");
    let b1 = Bird::start(
        &lab,
        &tors[0],
        "tor1",
        &conf(&["198.18.66.0/24", "198.18.67.0/24"]),
    );
    let peers = [peer("198.18.0.1", "")];
    let mut bgpd = Bgpd::start(&lab, &node, "node1", &bgpd_conf(&lab, &[], &peers));
    expect_established(&bgpd, &[(&b1, "198.18.0.1")]);
    for p in ["198.18.66.0/24", "198.18.67.0/24"] {
        assert!(wait(10, || kernel_route(&node, p).is_some()), "{p}");
    }

    bgpd.kill();
    // the kernel routes stay, and BIRD keeps ours (GR helper)
    std::thread::sleep(Duration::from_secs(1));
    assert!(kernel_route(&node, "198.18.66.0/24").is_some());
    assert!(kernel_route(&node, "198.18.67.0/24").is_some());
    // while we are away, tor1 stops announcing 198.18.67.0/24
    b1.configure(&conf(&["198.18.66.0/24"]));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        b1.has_route("198.18.65.0/24", "node1"),
        "BIRD flushed our routes"
    );
    assert!(kernel_route(&node, "198.18.67.0/24").is_some());

    bgpd.restart();
    // the re-learned route never leaves the kernel; the stale one goes after End-of-RIB
    let ok = wait(30, || {
        assert!(
            kernel_route(&node, "198.18.66.0/24").is_some(),
            "198.18.66.0/24 left the kernel during the restart\n{}",
            bgpd.logs()
        );
        bgpd.state("198.18.0.1") == "Established" && kernel_route(&node, "198.18.67.0/24").is_none()
    });
    assert!(ok, "stale route not swept\n{}", bgpd.logs());
    let logs = bgpd.logs();
    assert!(
        logs.contains("graceful restart: keeping our kernel routes"),
        "{logs}"
    );
    assert!(
        logs.contains("stale kernel routes not re-learned are removed"),
        "{logs}"
    );
    assert!(b1.has_route("198.18.65.0/24", "node1"));
    assert_eq!(
        kernel_route(&node, "198.18.66.0/24"),
        Some(vec!["198.18.0.1".into()])
    );
    bgpd.signal(Signal::SIGTERM);
}

#[test]
fn a_config_change_resets_only_the_changed_peer() {
    let (lab, node, tors) = topology("bgpd-reload", 2);
    node_manifest(&lab, &["198.18.65.0/24"]);
    let b1 = Bird::start(
        &lab,
        &tors[0],
        "tor1",
        &bird_conf(&tors[0], &["198.18.66.0/24"], &[], ""),
    );
    let b2 = Bird::start(
        &lab,
        &tors[1],
        "tor2",
        &bird_conf(&tors[1], &["198.18.67.0/24"], &[], ""),
    );
    let peers = [peer("198.18.0.1", ""), peer("198.18.0.2", "")];
    let bgpd = Bgpd::start(&lab, &node, "node1", &bgpd_conf(&lab, &[], &peers));
    expect_established(&bgpd, &[(&b1, "198.18.0.1"), (&b2, "198.18.0.2")]);
    let since1 = b1.settled_since("node1");
    let since2 = b2.settled_since("node1");
    std::thread::sleep(Duration::from_millis(1100));

    // tor2's hold time changes: its session is reset, tor1's is not
    let changed = [
        peer("198.18.0.1", ""),
        peer("198.18.0.2", "").replace("hold_time: 9", "hold_time: 12"),
    ];
    bgpd.rewrite(&bgpd_conf(&lab, &[], &changed));
    assert!(
        wait(30, || b2.since("node1") != since2
            && established(&bgpd, &[(&b2, "198.18.0.2")])),
        "tor2 was not reset\n{}",
        bgpd.logs()
    );
    assert_eq!(b1.since("node1"), since1, "tor1's session was reset");
    assert_eq!(bgpd.neighbor("198.18.0.2")["hold_time"], 9); // min(12, BIRD's 9)
    assert!(kernel_route(&node, "198.18.66.0/24").is_some());
    assert!(wait(10, || kernel_route(&node, "198.18.67.0/24").is_some()));

    // tor2 removed: Cease / Peer De-configured, its routes go, tor1 untouched
    bgpd.rewrite(&bgpd_conf(&lab, &[], &changed[..1]));
    assert!(wait(10, || kernel_route(&node, "198.18.67.0/24").is_none()));
    assert!(wait(10, || b2.state("node1").as_deref() != Some("Established")));
    let info = b2.birdc(&["show", "protocols", "all", "node1"]);
    assert!(
        info.contains("de-configured") || info.contains("Hard reset"),
        "{info}"
    );
    assert!(bgpd.neighbor("198.18.0.2").is_null());
    assert_eq!(b1.since("node1"), since1, "tor1's session was reset");
    assert!(kernel_route(&node, "198.18.66.0/24").is_some());
}

#[test]
fn gtsm_and_multihop_sessions_with_bird() {
    let (lab, node, tors) = topology("bgpd-ttl", 3);
    node_manifest(&lab, &["198.18.65.0/24"]);
    // tor1: GTSM on both sides; tor2: multihop 2 on both sides; tor3: GTSM only on our side
    let b1 = Bird::start(
        &lab,
        &tors[0],
        "tor1",
        &bird_conf(&tors[0], &["198.18.66.0/24"], &[], "  ttl security on;"),
    );
    let b2 = Bird::start(
        &lab,
        &tors[1],
        "tor2",
        &bird_conf(&tors[1], &["198.18.67.0/24"], &[], "  multihop 2;"),
    );
    let b3 = Bird::start(
        &lab,
        &tors[2],
        "tor3",
        &bird_conf(&tors[2], &["198.18.68.0/24"], &[], ""),
    );
    let peers = [
        peer("198.18.0.1", "    ttl_security: true\n"),
        peer("198.18.0.2", "    multihop: 2\n"),
        peer("198.18.0.3", "    ttl_security: true\n"),
    ];
    let bgpd = Bgpd::start(&lab, &node, "node1", &bgpd_conf(&lab, &[], &peers));
    expect_established(&bgpd, &[(&b1, "198.18.0.1"), (&b2, "198.18.0.2")]);
    assert!(wait(10, || kernel_route(&node, "198.18.66.0/24").is_some()));
    assert!(wait(10, || kernel_route(&node, "198.18.67.0/24").is_some()));
    // tor3 sends with TTL 1 (directly connected eBGP): GTSM drops it, for several hold times
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        assert_ne!(bgpd.state("198.18.0.3"), "Established");
        assert_ne!(b3.state("node1").as_deref(), Some("Established"));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(kernel_route(&node, "198.18.68.0/24").is_none());
}
