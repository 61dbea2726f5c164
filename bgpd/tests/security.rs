//! Security of bgpd in a rack (root; lab namespaces, removed on success and on failure).
//! The wrong-key MD5 rows are in every row of `interop.rs` (and `bird_interop.rs`),
//! max-prefix Cease too, and default deny outside the import ranges in `interop.rs`; here:
//!
//! ```text
//!   node1 (bgpd, .11) ──┬── tor1 (BIRD, key)      node1 has no key      never up
//!                       ├── tor2 (BIRD, no key)   node1 and node2 have  never up
//!   node2 (bgpd, .12) ──┤                         a key (node2 cannot set it: fail closed)
//!                       └── tor3 (BIRD, no key)   nobody has a key      up (the control)
//! ```
//! - MD5 missing on either side never establishes; a key the kernel refuses (node2's
//!   `net.core.optmem_max` is too small for it, as on a node with ~900 MD5 peers) means no
//!   connection and an error naming the peer, even though the peer has no key and an
//!   unsigned session would come up; a key longer than 80 bytes is refused at start and on
//!   reload, naming the peer. No password in logs, `show` (table and JSON) or metrics.
//! - Import: a node of the mesh announcing another node's pod CIDR (or a part of it) with
//!   its own next hop, or a default route, is filtered and logged; the rest is installed.
//! - The control socket is 0600 and root's, a non-root client is refused; bgpd listens on
//!   the configured BGP and metrics addresses only.

mod support;

use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use lab::{Host, Lab};
use support::router::{Kind, Router, RouterSpec};
use support::{Bgpd, kernel_route, wait};

const N1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const N2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);

fn manifests(lab: &Lab, nodes: &[(&str, &str, &str)]) {
    let docs: Vec<String> = nodes
        .iter()
        .map(|(name, ip, cidr)| {
            format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{ name: {name} }}\nspec: {{ podCIDRs: [{cidr}] }}\nstatus: {{ addresses: [{{ type: InternalIP, address: {ip} }}] }}\n"
            )
        })
        .collect();
    std::fs::write(lab.dir().join("nodes.yaml"), docs.join("---\n")).unwrap();
}

/// bgpd of `name` at `addr` (AS 65011 + n) with `extra` top-level lines and `peers` lines.
fn conf(lab: &Lab, name: &str, addr: Ipv4Addr, extra: &str, peers: &str) -> String {
    format!(
        "asn: {asn}
router_id: {addr}
listen: [{addr}]
node_name: {name}
manifests: {dir}/nodes.yaml
control_socket: {sock}
import: [198.18.64.0/18 le 24]
{extra}peers:
{peers}",
        asn = 65000 + addr.octets()[3] as u32,
        dir = lab.dir().display(),
        sock = Bgpd::socket_for(lab, name).display(),
    )
}

fn peer(addr: &str, extra: &str) -> String {
    format!("  - address: {addr}\n    asn: 65000\n    hold_time: 3\n    connect_retry: 1\n{extra}")
}

/// `bgpd show ARGS` as a table (no `--json`).
fn table(host: &Host, lab: &Lab, name: &str, args: &[&str]) -> String {
    let sock = Bgpd::socket_for(lab, name);
    let mut argv = vec![
        env!("CARGO_BIN_EXE_bgpd"),
        "--socket",
        sock.to_str().unwrap(),
        "show",
    ];
    argv.extend_from_slice(args);
    let o = host.output(&argv).unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The TCP sockets `pid` listens on in `host` (`ss -Htlnp`), as local addresses.
fn listening(host: &Host, pid: i32) -> Vec<String> {
    let o = host.output(&["ss", "-Htlnp"]).unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect();
    v.sort();
    v
}

#[test]
fn md5_keys_missing_or_impossible_never_establish_and_passwords_are_never_shown() {
    let lab = support::lab("bgpd-sec-md5");
    let n1 = lab.node("node1").unwrap();
    let n2 = lab.node("node2").unwrap();
    let tors: Vec<Host> = (1..=3)
        .map(|i| lab.router(&format!("tor{i}")).unwrap())
        .collect();
    lab.segment("rack", &[&n1, &n2, &tors[0], &tors[1], &tors[2]])
        .unwrap();
    manifests(&lab, &[("node1", "198.18.0.11", "198.18.65.0/24")]);
    let spec = |nbrs: &[(Ipv4Addr, u32)], key: Option<&str>, prefix: &str| {
        let mut s = RouterSpec::new(Kind::Bird, nbrs);
        s.hold_time = 3;
        s.password = key.map(str::to_string);
        s.announce4 = vec![prefix.to_string()];
        s
    };
    let both = [(N1, 65011), (N2, 65012)];
    let t1 = Router::start(
        &lab,
        &tors[0],
        "tor1",
        spec(&both[..1], Some("tor1-key"), "198.18.67.0/24"),
    );
    let t2 = Router::start(&lab, &tors[1], "tor2", spec(&both, None, "198.18.68.0/24"));
    let t3 = Router::start(&lab, &tors[2], "tor3", spec(&both, None, "198.18.69.0/24"));
    // node2 cannot hold an MD5 key: the kernel charges keys to optmem_max (per namespace)
    n2.sysctl("net.core.optmem_max", "64").unwrap();

    let n1_peers = [
        peer("198.18.0.1", ""),
        peer("198.18.0.2", "    password: node1-key\n"),
        peer("198.18.0.3", ""),
    ]
    .concat();
    let n1_conf = conf(
        &lab,
        "node1",
        N1,
        "metrics_bind_address: 127.0.0.1:9179\n",
        &n1_peers,
    );
    let b1 = Bgpd::start(&lab, &n1, "node1", &n1_conf);
    let b2 = Bgpd::start(
        &lab,
        &n2,
        "node2",
        &conf(
            &lab,
            "node2",
            N2,
            "",
            &[
                peer("198.18.0.2", "    password: node2-key\n"),
                peer("198.18.0.3", ""),
            ]
            .concat(),
        ),
    );
    // the control: no keys anywhere, up on both nodes
    assert!(
        wait(30, || b1.state("198.18.0.3") == "Established"
            && b2.state("198.18.0.3") == "Established"
            && t3.established(N1)
            && t3.established(N2)),
        "{}\n{}",
        b1.logs(),
        b2.logs()
    );
    // the others never, over five hold times
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        assert_ne!(b1.state("198.18.0.1"), "Established", "node1 without key");
        assert_ne!(b1.state("198.18.0.2"), "Established", "tor2 without key");
        assert_ne!(b2.state("198.18.0.2"), "Established", "node2 failed open");
        assert!(!t1.established(N1) && !t2.established(N1) && !t2.established(N2));
        std::thread::sleep(Duration::from_millis(250));
    }
    for p in ["198.18.67.0/24", "198.18.68.0/24"] {
        assert_eq!(kernel_route(&n1, p), None, "{p}");
        assert_eq!(kernel_route(&n2, p), None, "{p}");
    }
    assert!(kernel_route(&n2, "198.18.69.0/24").is_some());
    // node2 says why, naming the peer; nothing was sent to it
    let n = b2.neighbor("198.18.0.2");
    let why = n["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("cannot set the TCP MD5 key for 198.18.0.2"),
        "{n}\n{}",
        b2.logs()
    );
    let logs2 = b2.logs();
    assert!(
        logs2.contains("cannot set the TCP MD5 key for 198.18.0.2"),
        "{logs2}"
    );

    // a key longer than TCP_MD5SIG_MAXKEYLEN (80): refused at start, naming the peer and
    // not the key
    let long = "L".repeat(81);
    let bad = lab.dir().join("bad.yaml");
    std::fs::write(
        &bad,
        conf(
            &lab,
            "bad",
            N1,
            "",
            &peer("198.18.0.2", &format!("    password: {long}\n")),
        ),
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_bgpd");
    for argv in [
        &["timeout", "10", bin, "--config", bad][..],
        &[bin, "--config", bad, "check"],
    ] {
        let o = n1.output(argv).unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{argv:?}: {err}");
        assert!(
            err.contains("peers[0].password") && err.contains("peer 198.18.0.2"),
            "{err}"
        );
        assert!(err.contains("at most 80") && !err.contains(&long), "{err}");
    }
    // and on reload: the running configuration stays, sessions too
    let sid = t3.session_id(N1);
    b1.rewrite(&n1_conf.replace("node1-key", &long));
    assert!(
        wait(10, || b1.logs().contains("configuration not reloaded")),
        "{}",
        b1.logs()
    );
    assert_eq!(t3.session_id(N1), sid);
    assert_eq!(b1.state("198.18.0.3"), "Established");

    // no password anywhere we print
    let mut shown = vec![b1.logs(), b2.logs()];
    for (h, name, b) in [(&n1, "node1", &b1), (&n2, "node2", &b2)] {
        for args in [&["neighbors"][..], &["routes"], &["config"]] {
            shown.push(table(h, &lab, name, args));
            shown.push(b.try_show(args).unwrap().to_string());
        }
    }
    shown.push(
        n1.http_get([127, 0, 0, 1], 9179, "/metrics", Duration::from_secs(5))
            .unwrap()
            .body,
    );
    for s in &shown {
        for pw in ["node1-key", "node2-key", long.as_str()] {
            assert!(!s.contains(pw), "{pw} shown:\n{s}");
        }
    }
    assert!(shown.iter().any(|s| s.contains("<redacted>")));
}

#[test]
fn import_filters_foreign_pod_cidrs_and_default_routes_and_the_control_surface_is_closed() {
    let lab = support::lab("bgpd-sec-import");
    let n1 = lab.node("node1").unwrap();
    let n2 = lab.node("node2").unwrap();
    let n3 = lab.node("node3").unwrap();
    lab.segment("rack", &[&n1, &n2, &n3]).unwrap();
    manifests(
        &lab,
        &[
            ("node1", "198.18.0.11", "198.18.65.0/24"),
            ("node2", "198.18.0.12", "198.18.66.0/24"),
            ("node3", "198.18.0.13", "198.18.67.0/24"),
        ],
    );
    // node2 and node3 are mesh peers played by ExaBGP (iBGP, AS 65011): node2 honest, node3
    // tries to draw node2's pods' traffic and to be everybody's default route
    let exa = |host: &Host, name: &str, cidr: &str| {
        let mut s = RouterSpec::new(Kind::ExaBgp, &[(N1, 65011)]);
        s.asn = 65011;
        s.announce4 = vec![cidr.to_string()];
        Router::start(&lab, host, name, s)
    };
    let x2 = exa(&n2, "node2", "198.18.66.0/24");
    let x3 = exa(&n3, "node3", "198.18.67.0/24");
    let yaml = format!(
        "asn: 65011
router_id: {N1}
listen: [{N1}]
node_name: node1
manifests: {dir}/nodes.yaml
control_socket: {sock}
metrics_bind_address: 127.0.0.1:9179
import: [198.18.64.0/18 le 25, 0.0.0.0/0, \"::/0\", \"2001:db8:64::/48 le 64\"]
node_mesh: {{ hold_time: 9, connect_retry: 1 }}
peers: []
",
        dir = lab.dir().display(),
        sock = Bgpd::socket_for(&lab, "node1").display(),
    );
    let b1 = Bgpd::start(&lab, &n1, "node1", &yaml);
    assert!(
        wait(40, || b1.state("198.18.0.12") == "Established"
            && b1.state("198.18.0.13") == "Established"
            && x2.established(N1)
            && x3.established(N1)),
        "{}\n{}",
        b1.try_show(&["neighbors"]).unwrap_or_default(),
        b1.logs()
    );
    let via = |a: &str| Some(vec![a.to_string()]);
    assert!(
        wait(15, || kernel_route(&n1, "198.18.66.0/24")
            == via("198.18.0.12")
            && kernel_route(&n1, "198.18.67.0/24") == via("198.18.0.13")),
        "{:?}\n{}",
        support::kernel_routes(&n1, false),
        b1.logs()
    );
    let rejected = |reason: &str| {
        b1.metric(
            9179,
            &format!("bgpd_prefixes_rejected_total{{peer=\"198.18.0.13\",reason=\"{reason}\"}}"),
        )
    };
    // one UPDATE at a time, each filtered, counted and logged
    let bad = [
        (
            "announce route 198.18.66.0/24 next-hop 198.18.0.13",
            "wrong_next_hop",
            1.0,
        ),
        (
            "announce route 198.18.66.128/25 next-hop 198.18.0.13",
            "wrong_next_hop",
            2.0,
        ),
        (
            "announce route 0.0.0.0/0 next-hop 198.18.0.13",
            "default_route",
            1.0,
        ),
        (
            "announce route ::/0 next-hop 2001:db8::13",
            "default_route",
            2.0,
        ),
        (
            "announce route 198.19.255.0/24 next-hop 198.18.0.13",
            "not_in_import_ranges",
            1.0,
        ),
    ];
    for (cmd, reason, n) in bad {
        x3.exabgp_command(cmd);
        assert!(
            wait(10, || rejected(reason) >= n),
            "{cmd}: {reason} {}\n{}",
            rejected(reason),
            b1.logs()
        );
    }
    let logs = b1.logs();
    for line in [
        "filtered: 198.18.66.0/24 has next hop 198.18.0.13, but routes in 198.18.66.0/24 must have next hop 198.18.0.12, from peer 198.18.0.13",
        "filtered: 198.18.66.128/25 has next hop 198.18.0.13, but routes in 198.18.66.0/24 must have next hop 198.18.0.12",
        "filtered: 0.0.0.0/0 is a default route, not allowed from peer 198.18.0.13",
        "filtered: ::/0 is a default route, not allowed from peer 198.18.0.13",
        "filtered: 198.19.255.0/24 not in import ranges of peer 198.18.0.13",
    ] {
        assert!(logs.contains(line), "no {line:?}\n{logs}");
    }
    // the kernel: node2's pods still through node2, nothing else of node3's but its own
    assert_eq!(kernel_route(&n1, "198.18.66.0/24"), via("198.18.0.12"));
    assert_eq!(kernel_route(&n1, "198.18.67.0/24"), via("198.18.0.13"));
    for p in ["198.18.66.128/25", "0.0.0.0/0", "::/0", "198.19.255.0/24"] {
        assert_eq!(kernel_route(&n1, p), None, "{p}");
    }
    let v4 = support::kernel_routes(&n1, false);
    assert!(!v4.iter().any(|(d, _)| d == "default"), "{v4:?}");
    assert!(support::kernel_routes(&n1, true).is_empty());
    // node2 itself stays trusted for its own CIDR, and the sessions stay up
    assert_eq!(b1.state("198.18.0.13"), "Established");
    assert!(x2.notifications_received(N1).is_empty());

    // the control socket: 0600, root's; another user cannot even connect
    let sock = Bgpd::socket_for(&lab, "node1");
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    let o = n1
        .output(&[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_bgpd"),
            "--socket",
            sock.to_str().unwrap(),
            "show",
            "neighbors",
        ])
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(!o.status.success(), "nobody could use the control socket");
    assert!(err.contains("permission denied"), "{err}");
    // bgpd listens on BGP at its address and metrics where configured, nowhere else
    let pid = b1.proc.as_ref().unwrap().pid();
    assert_eq!(
        listening(&n1, pid),
        ["127.0.0.1:9179", "198.18.0.11:179"],
        "{}",
        String::from_utf8_lossy(&n1.output(&["ss", "-Htlnp"]).unwrap().stdout)
    );
    let udp = n1.output(&["ss", "-Hulnp"]).unwrap();
    let udp = String::from_utf8_lossy(&udp.stdout);
    assert!(!udp.contains(&format!("pid={pid},")), "{udp}");
    let h = n1
        .http_get([127, 0, 0, 1], 9179, "/healthz", Duration::from_secs(5))
        .unwrap();
    assert_eq!(h.body.trim(), "ok");
    // the metrics port is not reachable from the rack
    let other = n2.tcp_connect(N1, 9179, Duration::from_secs(2));
    assert!(other.is_err(), "{other:?}");
}
