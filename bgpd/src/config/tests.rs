use super::*;

const GOOD: &str = "\
asn: 65010
router_id: 198.18.0.11
listen: [198.18.0.11, \"[2001:db8::11]:1179\"]
node_name: node1
manifests: /tmp/nodes.yaml
prefixes: [198.18.65.0/24, 2001:db8:64:1::/64]
route_metric: 30
import:
  - 198.18.64.0/18 le 24
  - 2001:db8:64::/48 le 64
peers:
  - address: 198.18.0.1
    asn: 65000
    password: s3cret-key
    hold_time: 9
    export:
      communities: [\"65010:100\"]
      large_communities: [\"65010:1:2\"]
    max_prefix: 100
  - address: 2001:db8::2
    asn: external
    passive: true
    ttl_security: true
    max_prefix: { limit: 10, warning_only: true }
";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("bgpd.yaml"))
}

#[test]
fn a_full_file_parses_into_the_core_types() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.asn, 65010);
    assert_eq!(
        c.listen_addrs(),
        vec![
            "198.18.0.11:179".parse::<SocketAddr>().unwrap(),
            "[2001:db8::11]:1179".parse().unwrap()
        ]
    );
    assert_eq!(c.fib_config().metric, 30);
    assert_eq!(c.fib_config().protocol, 186);
    let p = &c.peers[0];
    let pc = c.peer_config(p);
    assert_eq!((pc.hold_time, pc.peer_as), (9, PeerAs::Exact(65000)));
    assert!(pc.graceful_restart.is_some());
    let own = c.static_prefixes();
    let imp = c.import_policy(p, &own);
    assert!(imp.ranges.matches(&"198.18.66.0/24".parse().unwrap()));
    assert!(!imp.ranges.matches(&"10.0.0.0/8".parse().unwrap()));
    assert_eq!(imp.max_prefix.unwrap().limit, 100);
    let exp = c.export_policy(p);
    assert_eq!(exp.communities, vec![Community((65010 << 16) | 100)]);
    assert_eq!(exp.large_communities[0].local_data2, 2);
    assert_eq!(c.peers[1].asn, PeerAsn::External);
    assert!(c.peers[1].max_prefix.unwrap().warning_only);
    // defaults
    assert_eq!(c.control_socket, PathBuf::from("/run/bgpd.sock"));
    assert!(c.install_routes);
    assert_eq!(c.route_table, 254);
    assert_eq!(
        parse("asn: 1\nrouter_id: 198.18.0.1\n")
            .unwrap()
            .listen_addrs()
            .len(),
        2
    );
}

#[test]
fn unknown_keys_name_the_key_and_line() {
    let text = GOOD.replace("    passive: true", "    pasive: true");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key(), Some("peers[1]"), "{e}");
    assert_eq!(e.line(), Some(22), "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with("bgpd.yaml:22:"), "{msg}");
    assert!(msg.contains("unknown field `pasive`"), "{msg}");
    let e = parse("asn: 1\nrouter_id: 198.18.0.1\nlisten_prot: 1179\n").unwrap_err();
    assert!(e.to_string().contains("listen_prot"), "{e}");
    assert_eq!(e.line(), Some(3));
}

#[test]
fn type_errors_name_the_key_and_line() {
    let text = GOOD.replace("hold_time: 9", "hold_time: nine");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key(), Some("peers[0].hold_time"), "{e}");
    assert_eq!(e.line(), Some(15));
    let text = GOOD.replace("hold_time: 9", "hold_time: 2");
    let e = parse(&text).unwrap_err();
    assert!(e.to_string().contains("at least 3 seconds"), "{e}");
    assert_eq!(
        (e.key(), e.line()),
        (Some("peers[0].hold_time"), Some(15)),
        "{e}"
    );
    let e = parse("asn: 1\nrouter_id: 198.18.0.300\n").unwrap_err();
    assert_eq!((e.key(), e.line()), (Some("router_id"), Some(2)), "{e}");
    let text = GOOD.replace("198.18.64.0/18 le 24", "198.18.64.0/18 le 12");
    let e = parse(&text).unwrap_err();
    assert_eq!((e.key(), e.line()), (Some("import"), Some(9)), "{e}");
    assert!(e.to_string().contains("ge <= le"), "{e}");
    let text = GOOD.replace("\"65010:100\"", "\"65010:100000\"");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key(), Some("peers[0].export.communities"), "{e}");
    assert_eq!(e.line(), Some(17));
    let e = parse("asn: 1\nrouter_id: 198.18.0.1\npeers:\n  - address: 198.18.0.1\n    asn: 0\n")
        .unwrap_err();
    assert!(e.to_string().contains("RFC 7607"), "{e}");
    assert_eq!(e.line(), Some(5));
}

#[test]
fn checks_across_keys_name_the_key_and_line() {
    let text = GOOD.replace("2001:db8::2", "198.18.0.1");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key(), Some("peers[1].address"));
    assert_eq!(e.line(), Some(20), "{e}");
    assert!(e.to_string().contains("listed twice"));
    let text = GOOD.replace(
        "    ttl_security: true",
        "    ttl_security: true\n    multihop: 3",
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(
        (e.key(), e.line()),
        (Some("peers[1].ttl_security"), Some(23)),
        "{e}"
    );
    let e = parse("asn: 1\nrouter_id: 0.0.0.0\n").unwrap_err();
    assert_eq!((e.key(), e.line()), (Some("router_id"), Some(2)), "{e}");
    let e = parse("asn: 1\nrouter_id: 198.18.0.1\nmanifests: /x\n").unwrap_err();
    assert_eq!(e.key(), Some("node_name"));
}

#[test]
fn passwords_are_never_printed() {
    let c = parse(GOOD).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(debug.contains("<redacted>"));
    let yaml = serde_yaml::to_string(&c).unwrap();
    assert!(!yaml.contains("s3cret"), "{yaml}");
    let json = serde_json::to_string(&c).unwrap();
    assert!(!json.contains("s3cret"));
    assert_eq!(
        c.peers[0].password.as_ref().unwrap().expose(),
        b"s3cret-key"
    );
    // a bad password is refused without echoing it
    let long = "x".repeat(81);
    let e = parse(&GOOD.replace("s3cret-key", &long)).unwrap_err();
    assert!(!e.to_string().contains(&long), "{e}");
    assert!(e.to_string().contains("at most 80"), "{e}");
    assert!(e.to_string().contains("peer 198.18.0.1"), "{e}");
    assert_eq!(e.key(), Some("peers[0].password"));
}

#[test]
fn diff_resets_only_the_changed_peer() {
    let old = parse(GOOD).unwrap();
    assert!(diff(&old, &old).is_empty());
    // hold time of peer 0: reset it, not peer 1
    let new = parse(&GOOD.replace("hold_time: 9", "hold_time: 30")).unwrap();
    let d = diff(&old, &new);
    assert_eq!(d.reset, vec!["198.18.0.1".parse::<IpAddr>().unwrap()]);
    assert!(d.added.is_empty() && d.removed.is_empty() && d.policy.is_empty());
    // a password change resets
    let new = parse(&GOOD.replace("s3cret-key", "other")).unwrap();
    assert_eq!(diff(&old, &new).reset.len(), 1);
    // export communities: policy only
    let new = parse(&GOOD.replace("65010:100", "65010:200")).unwrap();
    let d = diff(&old, &new);
    assert!(d.reset.is_empty());
    assert_eq!(d.policy, vec!["198.18.0.1".parse::<IpAddr>().unwrap()]);
    // the global import list is policy for both peers
    let new = parse(&GOOD.replace("le 24", "le 25")).unwrap();
    assert_eq!(diff(&old, &new).policy.len(), 2);
    // prefixes
    let new = parse(&GOOD.replace("198.18.65.0/24, ", "")).unwrap();
    let d = diff(&old, &new);
    assert!(d.prefixes_changed && d.reset.is_empty() && d.policy.is_empty());
    // removal and addition
    let new = parse(&GOOD.replace("2001:db8::2", "2001:db8::3")).unwrap();
    let d = diff(&old, &new);
    assert_eq!(d.added, vec!["2001:db8::3".parse::<IpAddr>().unwrap()]);
    assert_eq!(d.removed, vec!["2001:db8::2".parse::<IpAddr>().unwrap()]);
    // our AS: every peer
    let new = parse(&GOOD.replace("asn: 65010", "asn: 65011")).unwrap();
    assert_eq!(diff(&old, &new).reset.len(), 2);
    let new = parse(&GOOD.replace("route_metric: 30", "route_metric: 31")).unwrap();
    assert_eq!(
        diff(&old, &new).needs_restart,
        vec!["route_table/route_metric"]
    );
}

#[test]
fn service_advertisement_and_node_mesh() {
    let text = format!(
        "{GOOD}service_advertisement:
  cluster_ip_ranges: [198.19.0.0/16]
  external_ip_ranges: [198.19.255.0/24]
node_mesh: {{ hold_time: 9, password: mesh-key }}
"
    );
    let c = parse(&text).unwrap();
    // the ClusterIP range is advertised as a static prefix
    assert!(
        c.static_prefixes()
            .contains(&"198.19.0.0/16".parse().unwrap())
    );
    assert_eq!(c.service_advertisement.ranges().external.len(), 1);
    // one iBGP peer per other Node, a configured peer keeps its own settings
    let mesh: BTreeSet<IpAddr> = ["198.18.0.12", "198.18.0.1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let m = c.with_mesh(&mesh);
    assert_eq!(m.peers.len(), 3);
    let p = m.peer("198.18.0.12".parse().unwrap()).unwrap();
    assert_eq!((p.asn, p.hold_time.0), (PeerAsn::Internal, 9));
    assert!(p.password.is_some());
    assert_eq!(
        m.peer("198.18.0.1".parse().unwrap()),
        c.peer("198.18.0.1".parse().unwrap())
    );
    // a mesh Node going away removes its peer only
    let d = diff(&m, &c.with_mesh(&BTreeSet::new()));
    assert_eq!(d.removed, vec!["198.18.0.12".parse::<IpAddr>().unwrap()]);
    assert!(d.reset.is_empty() && d.policy.is_empty());
    // a mesh key the kernel would refuse is refused here, without echoing it
    let long = "k".repeat(81);
    let e = parse(&text.replace("mesh-key", &long)).unwrap_err();
    assert_eq!(e.key(), Some("node_mesh.password"), "{e}");
    assert!(!e.to_string().contains(&long), "{e}");
    // without node_name there is no mesh and no Service watch
    let e = parse(&text.replace("node_name: node1\nmanifests: /tmp/nodes.yaml\n", "")).unwrap_err();
    assert_eq!(e.key(), Some("node_mesh"), "{e}");
}
