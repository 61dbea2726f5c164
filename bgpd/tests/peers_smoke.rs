//! bgpd with FRR, GoBGP and ExaBGP at once (root; lab namespaces): each session comes up,
//! each peer's prefix is installed in node1's kernel, and FRR and GoBGP learn node1's pod
//! CIDR. A smoke test of the harness in `support` that the interop suite builds on.
//!
//! ```text
//!   node1 (bgpd, AS 65011, .11) ── rack ── tor1 FRR bgpd (-Z)  .1  announces 198.18.66.0/24
//!                                     ├─── tor2 GoBGP        .2  announces 198.18.67.0/24
//!                                     └─── tor3 ExaBGP       .3  announces 198.18.68.0/24
//! ```

mod support;

use support::{Bgpd, ExaBgp, Frr, GoBgp, kernel_route, wait};

#[test]
fn frr_gobgp_and_exabgp_sessions_and_routes() {
    let lab = support::lab("bgpd-peers");
    let node = lab.node("node1").unwrap();
    let tors: Vec<_> = (1..=3)
        .map(|i| lab.router(&format!("tor{i}")).unwrap())
        .collect();
    lab.segment("rack", &[&node, &tors[0], &tors[1], &tors[2]])
        .unwrap();

    let frr = Frr::start(
        &lab,
        &tors[0],
        "tor1",
        "frr defaults datacenter
hostname tor1
router bgp 65000
 bgp router-id 198.18.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 198.18.0.11 remote-as 65011
 neighbor 198.18.0.11 timers 3 9
 neighbor 198.18.0.11 timers connect 1
 address-family ipv4 unicast
  network 198.18.66.0/24
 exit-address-family
",
        false,
    );
    let gobgp = GoBgp::start(
        &lab,
        &tors[1],
        "tor2",
        r#"[global.config]
  as = 65000
  router-id = "198.18.0.2"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "198.18.0.11"
    peer-as = 65011
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
    idle-hold-time-after-reset = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#,
        50061,
    );
    let _exa = ExaBgp::start(
        &lab,
        &tors[2],
        "tor3",
        "neighbor 198.18.0.11 {
  router-id 198.18.0.3;
  local-address 198.18.0.3;
  local-as 65000;
  peer-as 65011;
  hold-time 9;
  family { ipv4 unicast; }
  static { route 198.18.68.0/24 next-hop 198.18.0.3; }
}
",
    );
    let yaml = format!(
        "asn: 65011
router_id: 198.18.0.11
listen: [198.18.0.11]
prefixes: [198.18.65.0/24]
control_socket: {sock}
import: [198.18.64.0/18 le 24]
peers:
  - {{ address: 198.18.0.1, asn: 65000, hold_time: 9, connect_retry: 1 }}
  - {{ address: 198.18.0.2, asn: 65000, hold_time: 9, connect_retry: 1 }}
  - {{ address: 198.18.0.3, asn: 65000, hold_time: 9, connect_retry: 1 }}
",
        sock = Bgpd::socket_for(&lab, "node1").display()
    );
    let bgpd = Bgpd::start(&lab, &node, "node1", &yaml);
    let peers = ["198.18.0.1", "198.18.0.2", "198.18.0.3"];
    assert!(
        wait(40, || peers.iter().all(|p| bgpd.state(p) == "Established")),
        "{}\n{}",
        bgpd.try_show(&["neighbors"]).unwrap_or_default(),
        bgpd.logs()
    );
    gobgp.gobgp(&[
        "global",
        "rib",
        "add",
        "-a",
        "ipv4",
        "198.18.67.0/24",
        "nexthop",
        "198.18.0.2",
    ]);
    for (prefix, via) in [
        ("198.18.66.0/24", "198.18.0.1"),
        ("198.18.67.0/24", "198.18.0.2"),
        ("198.18.68.0/24", "198.18.0.3"),
    ] {
        assert!(
            wait(15, || kernel_route(&node, prefix)
                == Some(vec![via.to_string()])),
            "{prefix}: {:?}\n{}",
            support::kernel_routes(&node, false),
            bgpd.logs()
        );
    }
    assert!(
        wait(10, || frr
            .vtysh("show bgp ipv4 unicast 198.18.65.0/24")
            .contains("198.18.0.11")),
        "{}",
        frr.vtysh("show bgp ipv4 unicast")
    );
    assert!(
        wait(10, || gobgp
            .gobgp(&["global", "rib", "-a", "ipv4"])
            .contains("198.18.65.0/24")),
        "{}",
        gobgp.gobgp(&["global", "rib", "-a", "ipv4"])
    );
}
