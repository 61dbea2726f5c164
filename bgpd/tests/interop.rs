//! The interop matrix: bgpd against BIRD 2, FRR (bgpd + zebra), GoBGP and ExaBGP, one
//! table-driven test per router kind through `support::router`, plus ECMP and config changes
//! with a mixed set of peers (root; every lab is removed on success and on failure). BIRD's
//! ECMP, MD5 good key, graceful restart and GTSM/multihop rows are in `bird_interop.rs`.
//!
//! ```text
//!   node1 (bgpd, AS 65011, 198.18.0.11) ──rack── tor1 (KIND, AS 65000, .1)  MD5 good key
//!                                             └── tor2 (KIND, AS 65000, .2)  MD5 wrong key
//!   node1's pod CIDRs 198.18.65.0/24, 2001:db8:64:1::/64 (Node manifest) go to the tors;
//!   tor1 announces 198.18.66.0/24, 2001:db8:64:2::/64 and 198.18.69.0/24 (denied at first).
//! ```
//! Rows, in order: session up; pod CIDRs advertised and withdrawn (both families); routes
//! learned, installed and withdrawn; ROUTE-REFRESH from the peer (we resend) and from us (an
//! import change: the peer resends); hold timer expiry with the peer SIGSTOPped; MD5 wrong key
//! never up; max-prefix Cease seen by the peer. Every row runs for every kind: the session
//! with tor1 is MD5-signed throughout (ExaBGP 4.2 too: its `md5-password` sets `TCP_MD5SIG`
//! on its connection, and our listener drops unsigned SYNs from a keyed peer).

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lab::{Host, Lab};
use nix::sys::signal::Signal;
use support::router::{Kind, Router, RouterSpec};
use support::{Bgpd, kernel_route, wait};

const NODE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const NODE_AS: u32 = 65011;
const METRICS: u16 = 9179;

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

/// One `peers:` entry (AS 65000) with `extra` lines (4 spaces indented).
fn peer(addr: &str, hold: u16, extra: &str) -> String {
    format!(
        "  - address: {addr}\n    asn: 65000\n    hold_time: {hold}\n    connect_retry: 1\n{extra}"
    )
}

fn bgpd_conf(lab: &Lab, prefixes: &[&str], peers: &[String]) -> String {
    format!(
        "asn: {NODE_AS}
router_id: {NODE}
listen: [{NODE}]
node_name: node1
manifests: {dir}/nodes.yaml
prefixes: [{prefixes}]
control_socket: {sock}
metrics_bind_address: 127.0.0.1:{METRICS}
import: [198.18.64.0/18 le 24, \"2001:db8:64::/48 le 64\", 198.19.255.0/24 le 32]
peers:
{peers}",
        dir = lab.dir().display(),
        prefixes = prefixes.join(", "),
        sock = Bgpd::socket_for(lab, "node1").display(),
        peers = peers.concat(),
    )
}

/// node1 and `n` routers on the rack segment.
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

fn up(bgpd: &Bgpd, r: &Router, addr: &str) -> bool {
    bgpd.state(addr) == "Established" && r.established(NODE)
}

fn expect_up(bgpd: &Bgpd, routers: &[(&Router, &str)], secs: u64) {
    assert!(
        wait(secs, || routers.iter().all(|(r, a)| up(bgpd, r, a))),
        "sessions not Established.\nbgpd: {}\n{}\nrouters:\n{}",
        bgpd.try_show(&["neighbors"]).unwrap_or_default(),
        bgpd.logs(),
        routers
            .iter()
            .map(|(r, _)| format!("{:?}: {}\n{}", r.kind(), r.summary(), r.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn has(r: &Router, prefix: &str, secs: u64, want: bool, bgpd: &Bgpd) {
    assert!(
        wait(secs, || r.has_route(prefix, NODE) == want),
        "{:?}: {prefix} expected {}\n{}\n--- bgpd\n{}",
        r.kind(),
        if want { "present" } else { "absent" },
        r.summary(),
        bgpd.logs()
    );
}

fn kernel(node: &Host, prefix: &str, want: Option<&[&str]>, bgpd: &Bgpd) {
    let want: Option<Vec<String>> = want.map(|w| w.iter().map(|s| s.to_string()).collect());
    assert!(
        wait(15, || kernel_route(node, prefix) == want),
        "kernel {prefix}: want {want:?}, have {:?}\n{}\n{}",
        kernel_route(node, prefix),
        bgpd.try_show(&["routes", prefix]).unwrap_or_default(),
        bgpd.logs()
    );
}

fn matrix(kind: Kind, lab_name: &str) {
    let started = Instant::now();
    let (lab, node, tors) = topology(lab_name, 2);
    node_manifest(&lab, &["198.18.65.0/24", "2001:db8:64:1::/64"]);
    let mut spec = RouterSpec::new(kind, &[(NODE, NODE_AS)]);
    spec.announce4 = vec!["198.18.66.0/24".into(), "198.18.69.0/24".into()];
    spec.announce6 = vec!["2001:db8:64:2::/64".into()];
    spec.hold_time = 6;
    spec.password = Some("good-key".into());
    let mut r1 = Router::start(&lab, &tors[0], "tor1", spec.clone());
    let mut s = spec.clone();
    s.password = Some("wrong-key".into());
    s.announce4 = vec!["198.18.67.0/24".into()];
    s.announce6 = Vec::new();
    let r2 = Router::start(&lab, &tors[1], "tor2", s);
    let pw = "    password: good-key\n";
    // tor1: 198.18.69.0/24 is outside its import list until the reload below
    let narrow = format!(
        "{pw}    max_prefix: 4\n    import: [198.18.66.0/24, 198.18.80.0/20 le 24, \"2001:db8:64::/48 le 64\"]\n"
    );
    let wide = format!(
        "{pw}    max_prefix: 4\n    import: [198.18.64.0/18 le 24, \"2001:db8:64::/48 le 64\"]\n"
    );
    let mut peers = vec![peer("198.18.0.1", 6, &narrow), peer("198.18.0.2", 6, pw)];
    let bgpd = Bgpd::start(&lab, &node, "node1", &bgpd_conf(&lab, &[], &peers));
    expect_up(&bgpd, &[(&r1, "198.18.0.1")], 40);
    let n = bgpd.neighbor("198.18.0.1");
    assert_eq!(n["hold_time"], 6, "{n}");
    assert_eq!(n["md5"], true, "{n}");

    // our pod CIDRs at the router, both families; withdrawn and advertised again
    for p in ["198.18.65.0/24", "2001:db8:64:1::/64"] {
        has(&r1, p, 15, true, &bgpd);
    }
    node_manifest(&lab, &[]);
    for p in ["198.18.65.0/24", "2001:db8:64:1::/64"] {
        has(&r1, p, 15, false, &bgpd);
    }
    node_manifest(&lab, &["198.18.65.0/24", "2001:db8:64:1::/64"]);
    for p in ["198.18.65.0/24", "2001:db8:64:1::/64"] {
        has(&r1, p, 15, true, &bgpd);
    }

    // the router's routes in node1's kernel (proto bgp), both families; the denied one not
    kernel(&node, "198.18.66.0/24", Some(&["198.18.0.1"]), &bgpd);
    kernel(&node, "2001:db8:64:2::/64", Some(&["2001:db8::1"]), &bgpd);
    assert_eq!(kernel_route(&node, "198.18.69.0/24"), None);
    assert!(
        bgpd.metric(
            METRICS,
            "bgpd_prefixes_rejected_total{peer=\"198.18.0.1\",reason=\"not_in_import_ranges\"}"
        ) >= 1.0,
        "{}",
        bgpd.logs()
    );
    // the router withdraws its IPv6 route
    r1.withdraw("2001:db8:64:2::/64");
    kernel(&node, "2001:db8:64:2::/64", None, &bgpd);
    let sid = r1.session_id(NODE);

    // ROUTE-REFRESH from the router: we send our routes again. GoBGP 3.10 keeps every
    // Adj-RIB-In and its `softresetin` re-applies policy without asking (checked by hand:
    // FRR counted no ROUTE-REFRESH from it), so it cannot ask.
    if r1.can_request_refresh() {
        let before = r1.updates_received(NODE);
        r1.refresh_in(NODE);
        let rr_in = "bgpd_route_refresh_total{peer=\"198.18.0.1\",direction=\"received\"}";
        assert!(
            wait(10, || bgpd.metric(METRICS, rr_in) >= 1.0
                && r1.updates_received(NODE) > before),
            "{kind:?} asked for a refresh: rr {} updates {} -> {}\n{}",
            bgpd.metric(METRICS, rr_in),
            before,
            r1.updates_received(NODE),
            bgpd.logs()
        );
        assert!(bgpd.logs().contains("ROUTE-REFRESH received"));
        has(&r1, "198.18.65.0/24", 5, true, &bgpd);
    }

    // ROUTE-REFRESH from us: a wider import list is applied without a reset
    let before = r1.refresh_received(NODE);
    peers[0] = peer("198.18.0.1", 6, &wide);
    bgpd.rewrite(&bgpd_conf(&lab, &[], &peers));
    kernel(&node, "198.18.69.0/24", Some(&["198.18.0.1"]), &bgpd);
    assert!(
        wait(5, || r1.refresh_received(NODE) > before),
        "{kind:?} saw no ROUTE-REFRESH\n{}",
        r1.logs()
    );
    assert!(
        bgpd.metric(
            METRICS,
            "bgpd_route_refresh_total{peer=\"198.18.0.1\",direction=\"sent\"}"
        ) >= 1.0
    );
    assert_eq!(
        r1.session_id(NODE),
        sid,
        "the import change reset the session"
    );
    assert_eq!(bgpd.state("198.18.0.1"), "Established");

    // hold timer: the router stops answering; we give up after 6 s with Hold Timer Expired
    // and take its routes out of the kernel; it comes back after SIGCONT
    r1.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let down = wait(20, || {
        bgpd.state("198.18.0.1") != "Established"
            && kernel_route(&node, "198.18.66.0/24").is_none()
            && kernel_route(&node, "198.18.69.0/24").is_none()
    });
    let held = stopped.elapsed();
    let why = bgpd.neighbor("198.18.0.1")["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    r1.signal(Signal::SIGCONT);
    assert!(down, "{kind:?} stopped: session not down\n{}", bgpd.logs());
    assert!(why.contains("hold timer expired"), "{why}\n{}", bgpd.logs());
    assert!(
        held >= Duration::from_secs(3),
        "down after {held:?}, before the hold time"
    );
    assert!(bgpd.logs().contains("sending NOTIFICATION"));
    expect_up(&bgpd, &[(&r1, "198.18.0.1")], 40);
    kernel(&node, "198.18.66.0/24", Some(&["198.18.0.1"]), &bgpd);
    kernel(&node, "198.18.69.0/24", Some(&["198.18.0.1"]), &bgpd);
    // MD5: the wrong key never came up, on either side, for the whole test (> 3 hold times)
    while started.elapsed() < Duration::from_secs(20) {
        assert_ne!(bgpd.state("198.18.0.2"), "Established");
        assert!(!r2.established(NODE));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        bgpd.metric(
            METRICS,
            "bgpd_fsm_transitions_total{peer=\"198.18.0.2\",from=\"OpenConfirm\",to=\"Established\"}"
        ),
        0.0
    );
    assert_eq!(kernel_route(&node, "198.18.67.0/24"), None);

    // max-prefix (4): 2 accepted + 5 more is over; Cease / Maximum Number of Prefixes
    // Reached (RFC 4486 subcode 1) reaches the router and its routes leave the kernel
    for i in 80..85 {
        r1.announce(&format!("198.18.{i}.0/24"));
    }
    assert!(
        wait(15, || r1
            .notifications_received(NODE)
            .iter()
            .any(|n| n.split_whitespace().next() == Some("6/1"))),
        "{kind:?} saw no Cease/1: {:?}\n{}",
        r1.notifications_received(NODE),
        bgpd.logs()
    );
    kernel(&node, "198.18.66.0/24", None, &bgpd);
    assert!(bgpd.logs().contains("maximum prefixes exceeded"));
    println!("{kind:?} matrix: {:?}", started.elapsed());
}

#[test]
fn interop_matrix_bird() {
    matrix(Kind::Bird, "bgpd-mx-bird");
}

#[test]
fn interop_matrix_frr() {
    matrix(Kind::Frr, "bgpd-mx-frr");
}

#[test]
fn interop_matrix_gobgp() {
    matrix(Kind::GoBgp, "bgpd-mx-gobgp");
}

#[test]
fn interop_matrix_exabgp() {
    matrix(Kind::ExaBgp, "bgpd-mx-exabgp");
}

/// RFC 7606 with malformed UPDATEs that ExaBGP sends (hand-made attributes through its API):
/// treat-as-withdraw keeps the session and removes the route, attribute discard keeps the
/// route, and only an error the RFC keeps as "session reset" sends a NOTIFICATION.
#[test]
fn malformed_updates_from_exabgp_are_handled_per_rfc7606() {
    let (lab, node, tors) = topology("bgpd-7606", 1);
    node_manifest(&lab, &["198.18.65.0/24"]);
    let mut spec = RouterSpec::new(Kind::ExaBgp, &[(NODE, NODE_AS)]);
    spec.announce4 = vec!["198.18.66.0/24".into()];
    let r = Router::start(&lab, &tors[0], "tor1", spec);
    let bgpd = Bgpd::start(
        &lab,
        &node,
        "node1",
        &bgpd_conf(&lab, &[], &[peer("198.18.0.1", 9, "")]),
    );
    expect_up(&bgpd, &[(&r, "198.18.0.1")], 30);
    kernel(&node, "198.18.66.0/24", Some(&["198.18.0.1"]), &bgpd);
    let sid = r.session_id(NODE);
    let errors = |action: &str| {
        bgpd.metric(
            METRICS,
            &format!("bgpd_update_errors_total{{peer=\"198.18.0.1\",action=\"{action}\"}}"),
        )
    };
    // ExaBGP's generic attribute: `attribute [ TYPE-CODE FLAGS VALUE ]`
    let send = |route: &str, attr: &str| {
        r.exabgp_command(&format!(
            "announce route {route} next-hop 198.18.0.1 attribute [ {attr} ]"
        ))
    };

    // ORIGIN value 5 replaces a valid route: treat-as-withdraw (RFC 7606 §7.1)
    r.exabgp_command("announce route 198.18.70.0/24 next-hop 198.18.0.1");
    kernel(&node, "198.18.70.0/24", Some(&["198.18.0.1"]), &bgpd);
    send("198.18.70.0/24", "0x01 0x40 0x05");
    kernel(&node, "198.18.70.0/24", None, &bgpd);
    assert!(wait(5, || errors("treat-as-withdraw") >= 1.0));
    // COMMUNITIES of 3 octets (§7.8): treat-as-withdraw, never installed
    send("198.18.71.0/24", "0x08 0xc0 0x010203");
    assert!(
        wait(10, || errors("treat-as-withdraw") >= 2.0),
        "{}",
        bgpd.logs()
    );
    assert_eq!(kernel_route(&node, "198.18.71.0/24"), None);
    // AGGREGATOR of 5 octets (§7.7): attribute discard, the route is used without it
    send("198.18.72.0/24", "0x07 0xc0 0x0102030405");
    kernel(&node, "198.18.72.0/24", Some(&["198.18.0.1"]), &bgpd);
    assert!(wait(5, || errors("attribute-discard") >= 1.0));
    let shown = bgpd.try_show(&["routes", "198.18.72.0/24"]).unwrap();
    assert!(
        !shown.to_string().to_lowercase().contains("aggregator"),
        "{shown}"
    );
    // none of these touched the session
    assert_eq!(r.session_id(NODE), sid, "{}", bgpd.logs());
    assert_eq!(bgpd.state("198.18.0.1"), "Established");
    assert!(r.notifications_received(NODE).is_empty());
    kernel(&node, "198.18.66.0/24", Some(&["198.18.0.1"]), &bgpd);
    let logs = bgpd.logs();
    assert!(
        logs.contains("malformed UPDATE treated as withdraw"),
        "{logs}"
    );
    assert!(logs.contains("UPDATE error handled per RFC 7606"), "{logs}");

    // an unrecognized well-known attribute (RFC 4271 §6.3, kept by RFC 7606 §3): session
    // reset with UPDATE Message Error / Unrecognized Well-known Attribute (3/2)
    send("198.18.73.0/24", "0x63 0x40 0x07");
    assert!(
        wait(10, || r
            .notifications_received(NODE)
            .iter()
            .any(|n| n == "3/2")),
        "ExaBGP got no 3/2: {:?}\n{}",
        r.notifications_received(NODE),
        bgpd.logs()
    );
    assert!(errors("session-reset") >= 1.0);
    // the bad route goes from ExaBGP's table; the session comes back with the good routes
    r.exabgp_command("withdraw route 198.18.73.0/24 next-hop 198.18.0.1");
    assert!(
        wait(40, || r.session_id(NODE) != sid
            && up(&bgpd, &r, "198.18.0.1")),
        "{}\n{}",
        bgpd.logs(),
        r.logs()
    );
    kernel(&node, "198.18.72.0/24", Some(&["198.18.0.1"]), &bgpd);
    kernel(&node, "198.18.66.0/24", Some(&["198.18.0.1"]), &bgpd);
    assert_eq!(kernel_route(&node, "198.18.73.0/24"), None);
}

/// FRR, GoBGP and ExaBGP announce the same prefixes (ECMP over the three, both families);
/// BIRD beside them with a prefix of its own and ExaBGP with one more. Config changes reset
/// only the peer whose session parameters changed.
#[test]
fn ecmp_over_frr_and_gobgp_and_config_changes_with_mixed_peers() {
    let (lab, node, tors) = topology("bgpd-mixed", 4);
    node_manifest(&lab, &["198.18.65.0/24", "2001:db8:64:1::/64"]);
    let spec = |kind: Kind, v4: &[&str], v6: &[&str]| {
        let mut s = RouterSpec::new(kind, &[(NODE, NODE_AS)]);
        s.announce4 = v4.iter().map(|s| s.to_string()).collect();
        s.announce6 = v6.iter().map(|s| s.to_string()).collect();
        s
    };
    let shared4 = ["198.18.66.0/24"];
    let shared6 = ["2001:db8:64:2::/64"];
    let frr = Router::start(&lab, &tors[0], "tor1", spec(Kind::Frr, &shared4, &shared6));
    let gobgp = Router::start(
        &lab,
        &tors[1],
        "tor2",
        spec(Kind::GoBgp, &shared4, &shared6),
    );
    let bird = Router::start(
        &lab,
        &tors[2],
        "tor3",
        spec(Kind::Bird, &["198.18.67.0/24"], &[]),
    );
    let exa = Router::start(
        &lab,
        &tors[3],
        "tor4",
        spec(
            Kind::ExaBgp,
            &["198.18.66.0/24", "198.18.68.0/24"],
            &shared6,
        ),
    );
    let all = [
        (&frr, "198.18.0.1"),
        (&gobgp, "198.18.0.2"),
        (&bird, "198.18.0.3"),
        (&exa, "198.18.0.4"),
    ];
    let peers = |hold4: u16, gobgp_import: &str, with_bird: bool| {
        let mut v = vec![
            peer("198.18.0.1", 9, ""),
            peer("198.18.0.2", 9, gobgp_import),
        ];
        if with_bird {
            v.push(peer("198.18.0.3", 9, ""));
        }
        v.push(peer("198.18.0.4", hold4, ""));
        v
    };
    let bgpd = Bgpd::start(
        &lab,
        &node,
        "node1",
        &bgpd_conf(&lab, &[], &peers(9, "", true)),
    );
    expect_up(&bgpd, &all, 40);
    // ECMP over FRR, GoBGP and ExaBGP, both families
    let three4 = ["198.18.0.1", "198.18.0.2", "198.18.0.4"];
    let three6 = ["2001:db8::1", "2001:db8::2", "2001:db8::4"];
    kernel(&node, "198.18.66.0/24", Some(&three4), &bgpd);
    kernel(&node, "2001:db8:64:2::/64", Some(&three6), &bgpd);
    kernel(&node, "198.18.67.0/24", Some(&["198.18.0.3"]), &bgpd);
    kernel(&node, "198.18.68.0/24", Some(&["198.18.0.4"]), &bgpd);
    for (r, _) in &all {
        has(r, "198.18.65.0/24", 15, true, &bgpd);
    }
    let ids = |rs: &[(&Router, &str)]| {
        rs.iter()
            .map(|(r, _)| r.session_id(NODE))
            .collect::<Vec<_>>()
    };
    let before = ids(&all);
    std::thread::sleep(Duration::from_millis(1100)); // GoBGP's uptime has 1 s resolution

    // ExaBGP's hold time changes: its session alone is reset
    bgpd.rewrite(&bgpd_conf(&lab, &[], &peers(12, "", true)));
    assert!(
        wait(30, || exa.session_id(NODE) != before[3]
            && up(&bgpd, &exa, "198.18.0.4")),
        "ExaBGP not reset\n{}",
        bgpd.logs()
    );
    assert_eq!(ids(&all[..3]), before[..3].to_vec(), "{}", bgpd.logs());
    // its next hop is back in the ECMP routes
    kernel(&node, "198.18.66.0/24", Some(&three4), &bgpd);
    kernel(&node, "2001:db8:64:2::/64", Some(&three6), &bgpd);
    let before = ids(&all);

    // a new static prefix goes to every peer, no reset
    bgpd.rewrite(&bgpd_conf(&lab, &["198.19.255.1/32"], &peers(12, "", true)));
    for (r, _) in &all {
        has(r, "198.19.255.1/32", 15, true, &bgpd);
    }
    // GoBGP may no longer give us 198.18.66.0/24 (import change: ROUTE-REFRESH, no reset):
    // ECMP falls back to FRR and ExaBGP
    let narrow = "    import: [198.18.67.0/24, \"2001:db8:64::/48 le 64\"]\n";
    bgpd.rewrite(&bgpd_conf(
        &lab,
        &["198.19.255.1/32"],
        &peers(12, narrow, true),
    ));
    kernel(
        &node,
        "198.18.66.0/24",
        Some(&["198.18.0.1", "198.18.0.4"]),
        &bgpd,
    );
    kernel(&node, "2001:db8:64:2::/64", Some(&three6), &bgpd);
    assert_eq!(ids(&all), before, "{}", bgpd.logs());

    // BIRD removed: Cease / Peer De-configured, its route goes, the others stay up
    bgpd.rewrite(&bgpd_conf(
        &lab,
        &["198.19.255.1/32"],
        &peers(12, narrow, false),
    ));
    kernel(&node, "198.18.67.0/24", None, &bgpd);
    assert!(wait(10, || !bird.established(NODE)));
    assert!(
        wait(5, || bird
            .notifications_received(NODE)
            .iter()
            .any(|n| n.contains("de-configured"))),
        "{:?}",
        bird.notifications_received(NODE)
    );
    let kept = [all[0], all[1], all[3]];
    assert_eq!(
        ids(&kept),
        vec![before[0].clone(), before[1].clone(), before[3].clone()],
        "{}",
        bgpd.logs()
    );
    kernel(&node, "198.18.68.0/24", Some(&["198.18.0.4"]), &bgpd);
}
