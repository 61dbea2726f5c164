//! The blackhole catalogue, for real: every test builds the broken condition in network
//! namespaces (a rack of two nodes, a ToR router and a client), shows with real traffic that
//! it is broken, and asserts that `diag check` names it both live (inside the namespaces) and
//! offline (from bundles `diag collect` wrote), with the same findings. A healthy rack is the
//! control: traffic flows and diag finds nothing. Needs root.

mod common;

use common::{Rack, T, findings, restore};
use diag::check::Severity;
use lab::ConnError;

#[test]
fn healthy_rack_has_no_findings_and_traces_across_nodes() {
    let r = Rack::new("diag-healthy");
    let g = r.a.tcp_connect(r.b4(), 8080, T).expect("a -> b works");
    assert!(g.starts_with("b tcp"), "{g}");
    let rep = r.check("healthy", &[]);
    assert!(rep.findings.is_empty(), "{}", rep.to_text());
    assert_eq!(rep.exit_code, 0);

    // pod to pod across nodes, live and offline
    let (a, b) = (r.a4().to_string(), r.b4().to_string());
    let t = r.trace("t1", &[&a, &b, "--port", "8080"]);
    assert_eq!(t.verdict.exit_code, 0, "{}", t.verdict.text);
    assert!(
        t.verdict
            .text
            .starts_with(&format!("DELIVERED to {b}:8080 on node2")),
        "{}",
        t.verdict.text
    );
    let hops: Vec<&str> = t.paths[0].hops.iter().map(|h| h.node.as_str()).collect();
    assert_eq!(hops, ["node1", "node2"]);
}

#[test]
fn service_no_endpoints() {
    let r = Rack::new("diag-noep");
    restore(
        &r.n1,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :KUBE-SERVICES - [0:0]\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A KUBE-SERVICES -d 198.19.0.20/32 -p tcp -m comment --comment \"demo/empty:http has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable\n\
         COMMIT\n",
    );
    let e =
        r.a.tcp_connect("198.19.0.20".parse::<std::net::IpAddr>().unwrap(), 80, T);
    assert!(
        matches!(e, Err(ConnError::Refused { .. })),
        "expected a refusal, got {e:?}"
    );
    let rep = r.check("noep", &[]);
    let f = findings(&rep, "service-no-endpoints", Some("node1"));
    assert_eq!(f[0].severity, Severity::Error);
    assert!(f[0].summary.contains("demo/empty:http"), "{}", f[0].summary);
    assert!(
        f[0].evidence[0].text.contains("-j REJECT"),
        "{:?}",
        f[0].evidence
    );

    let a = r.a4().to_string();
    let t = r.trace("t", &[&a, "198.19.0.20", "--port", "80"]);
    assert_eq!(t.verdict.exit_code, 1);
    assert!(
        t.verdict.text.starts_with(
            "DROPPED on node1 at filter/KUBE-SERVICES rule 1: \"demo/empty:http has no endpoints\""
        ),
        "{}",
        t.verdict.text
    );
}

#[test]
fn forwarding_off_on_an_interface() {
    let r = Rack::new("diag-fwd");
    let dev =
        r.n2.iface_to(&r.n1)
            .map(|i| i.name)
            .unwrap_or_else(|_| "eth0".into());
    r.n2.sysctl(&format!("net.ipv4.conf.{dev}.forwarding"), "0")
        .unwrap();
    assert!(
        r.a.tcp_connect(r.b4(), 8080, T).is_err(),
        "a -> b still works"
    );
    let rep = r.check("fwd", &[]);
    let f = findings(&rep, "forwarding-off", Some("node2"));
    assert!(
        f[0].evidence[0].text == format!("net.ipv4.conf.{dev}.forwarding = 0"),
        "{:?}",
        f[0].evidence
    );
}

#[test]
fn route_blackhole() {
    let r = Rack::new("diag-bh");
    let p2 = r.n2.pod_cidr4().unwrap();
    r.n1.sh(&format!("ip route replace blackhole {p2} proto bird"))
        .unwrap();
    assert!(
        r.a.tcp_connect(r.b4(), 8080, T).is_err(),
        "a -> b still works"
    );
    let rep = r.check("bh", &[]);
    let f = findings(&rep, "route-blackhole", Some("node1"));
    assert_eq!(f[0].severity, Severity::Error);
    assert!(
        f[0].summary.contains(&r.b4().to_string()),
        "{}",
        f[0].summary
    );
}

const NAT_HEAD: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
fn etp_local_without_local_endpoints() {
    let r = Rack::new("diag-etp");
    let _echo =
        r.n1.echo_server(lab::EchoSpec {
            tcp: vec![30110],
            ..Default::default()
        })
        .unwrap();
    assert!(
        r.client.tcp_connect(r.n1_4(), 30110, T).is_ok(),
        "control: the port answers"
    );
    restore(
        &r.n1,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :KUBE-EXTERNAL-SERVICES - [0:0]\n\
         -A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n\
         -A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment \"edge/remote-only:http has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp --dport 30110 -j DROP\n\
         COMMIT\n",
    );
    assert!(
        matches!(
            r.client.tcp_connect(r.n1_4(), 30110, T),
            Err(ConnError::Timeout)
        ),
        "the NodePort still answers"
    );
    let rep = r.check("etp", &[]);
    let f = findings(&rep, "etp-local-no-local-endpoints", Some("node1"));
    assert!(
        f[0].summary.contains("edge/remote-only:http"),
        "{}",
        f[0].summary
    );
}

#[test]
fn stale_udp_conntrack() {
    let r = Rack::new("diag-stale");
    let rules = |to: std::net::IpAddr| {
        format!(
            "{NAT_HEAD}:KUBE-SERVICES - [0:0]\n:KUBE-SVC-DNS - [0:0]\n:KUBE-SEP-EP - [0:0]\n\
             -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A KUBE-SERVICES -d 198.19.0.53/32 -p udp -m comment --comment \"demo/dns:dns cluster IP\" -m udp --dport 53 -j KUBE-SVC-DNS\n\
             -A KUBE-SVC-DNS -m comment --comment \"demo/dns:dns -> {to}:53\" -j KUBE-SEP-EP\n\
             -A KUBE-SEP-EP -p udp -m comment --comment \"demo/dns:dns\" -m udp -j DNAT --to-destination {to}:53\n\
             COMMIT\n"
        )
    };
    restore(&r.n1, &rules(r.b4()));
    let vip = ip("198.19.0.53");
    let pinned = lab::ConnOpts::new(T).src_port(40053);
    let g =
        r.a.udp_request_with(vip, 53, b"q", &pinned)
            .expect("dns via b");
    assert!(g.starts_with("b "), "{g}");
    // the endpoint moves to c; b goes away (its route with it)
    restore(&r.n1, &rules(r.c4()));
    r.n2.sh(&format!("ip route del {}/32", r.b4())).unwrap();
    let fresh = lab::ConnOpts::new(T).src_port(40054);
    let g =
        r.a.udp_request_with(vip, 53, b"q", &fresh)
            .expect("a new flow reaches c");
    assert!(g.starts_with("c "), "{g}");
    assert!(
        r.a.udp_request_with(vip, 53, b"q", &pinned).is_err(),
        "the old flow still gets answers"
    );
    let rep = r.check("stale", &[]);
    let f = findings(&rep, "stale-udp-conntrack", Some("node1"));
    assert_eq!(f.len(), 1, "{}", rep.to_text());
    assert!(
        f[0].summary
            .contains(&format!("pinned by conntrack to {}:53", r.b4()))
            && f[0].summary.contains(&format!("{}:53", r.c4())),
        "{}",
        f[0].summary
    );
}

#[test]
fn pod_route_missing() {
    let r = Rack::new("diag-noroute");
    let p2 = r.n2.pod_cidr4().unwrap();
    r.n1.sh(&format!("ip route del {p2}; ip route del default"))
        .unwrap();
    assert!(
        matches!(
            r.a.tcp_connect(r.b4(), 8080, T),
            Err(ConnError::NetUnreachable { .. })
        ),
        "a -> b still works"
    );
    let rep = r.check("noroute", &[]);
    let f = findings(&rep, "pod-route-missing", Some("node1"));
    assert!(f[0].summary.contains("node2"), "{}", f[0].summary);
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.text == format!("ip route get {}: no route (network unreachable)", r.b4())),
        "{:?}",
        f[0].evidence
    );
}

#[test]
fn rule_to_an_empty_table() {
    let r = Rack::new("diag-rule");
    let p2 = r.n2.pod_cidr4().unwrap();
    r.n1.sh(&format!(
        "ip route del {p2}; ip route del default; ip rule add to {p2} lookup 100 pref 100"
    ))
    .unwrap();
    assert!(
        r.a.tcp_connect(r.b4(), 8080, T).is_err(),
        "a -> b still works"
    );
    let rep = r.check("rule", &[]);
    let f = findings(&rep, "rule-empty-table", Some("node1"));
    assert!(f[0].summary.contains("table 100"), "{}", f[0].summary);
    findings(&rep, "pod-route-missing", Some("node1"));
}

#[test]
fn strict_rp_filter_on_an_asymmetric_path() {
    let r = Rack::new("diag-rpf");
    let l = r.lab.link(&r.n1, &r.n2).unwrap();
    let n2_link =
        l.b.addrs
            .iter()
            .find(|n| n.addr().is_ipv4())
            .unwrap()
            .addr();
    let p2 = r.n2.pod_cidr4().unwrap();
    // node1 sends node2's pods over the direct link; node2 answers over the rack
    r.n1.sh(&format!("ip route replace {p2} via {n2_link}"))
        .unwrap();
    assert!(
        r.a.tcp_connect(r.b4(), 8080, T).is_ok(),
        "control: loose path works"
    );
    r.n2.sysctl("net.ipv4.conf.all.rp_filter", "1").unwrap();
    assert!(
        r.a.tcp_connect(r.b4(), 8080, T).is_err(),
        "a -> b still works"
    );
    let rep = r.check("rpf", &[]);
    let f = findings(&rep, "rp-filter-asymmetric", Some("node2"));
    assert!(f[0].summary.contains(&l.b.name), "{}", f[0].summary);
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.text == "net.ipv4.conf.all.rp_filter = 1"),
        "{:?}",
        f[0].evidence
    );
}

#[test]
fn forward_policy_drop() {
    let r = Rack::new("diag-fwdrop");
    r.n1.sh("iptables -P FORWARD DROP").unwrap();
    assert!(
        r.a.tcp_connect(r.b4(), 8080, T).is_err(),
        "a -> b still works"
    );
    let rep = r.check("fwdrop", &[]);
    let f = findings(&rep, "forward-policy-drop", Some("node1"));
    assert!(
        f[0].evidence[0].text.contains(":FORWARD DROP"),
        "{:?}",
        f[0].evidence
    );
}

#[test]
fn iptables_legacy_and_nft_both_hold_rules() {
    let r = Rack::new("diag-both");
    // nft accepts pod traffic; a leftover legacy FORWARD policy drops it anyway
    r.n1.sh(
        "iptables-nft -A FORWARD -s 198.18.64.0/18 -j ACCEPT && iptables-legacy -P FORWARD DROP",
    )
    .unwrap();
    assert!(
        r.a.tcp_connect(r.b4(), 8080, T).is_err(),
        "a -> b still works"
    );
    let rep = r.check("both", &[]);
    let f = findings(&rep, "iptables-both-backends", Some("node1"));
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.text.contains("iptables-legacy-save")
                && e.text.contains("filter/FORWARD policy DROP")),
        "{:?}",
        f[0].evidence
    );
    findings(&rep, "forward-policy-drop", Some("node1"));
}

#[test]
fn hostport_shadows_a_nodeport() {
    let r = Rack::new("diag-wormhole");
    restore(
        &r.n1,
        &format!(
            "{NAT_HEAD}:CNI-HOSTPORT-DNAT - [0:0]\n:CNI-DN-C - [0:0]\n:KUBE-SERVICES - [0:0]\n\
             :KUBE-NODEPORTS - [0:0]\n:KUBE-EXT-WEB - [0:0]\n:KUBE-SVC-WEB - [0:0]\n:KUBE-SEP-B - [0:0]\n\
             -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n\
             -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: cbr0 id: c\" -m multiport --dports 30080 -j CNI-DN-C\n\
             -A CNI-DN-C -p tcp -m tcp --dport 30080 -j DNAT --to-destination {c}:8080\n\
             -A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n\
             -A KUBE-NODEPORTS -p tcp -m comment --comment \"demo/web:http\" -m tcp --dport 30080 -j KUBE-EXT-WEB\n\
             -A KUBE-EXT-WEB -j KUBE-SVC-WEB\n\
             -A KUBE-SVC-WEB -m comment --comment \"demo/web:http -> {b}:8080\" -j KUBE-SEP-B\n\
             -A KUBE-SEP-B -p tcp -m comment --comment \"demo/web:http\" -m tcp -j DNAT --to-destination {b}:8080\n\
             COMMIT\n",
            c = r.c4(),
            b = r.b4()
        ),
    );
    let g = r
        .client
        .tcp_connect(r.n1_4(), 30080, T)
        .expect("the node port answers");
    assert!(
        g.starts_with("c tcp"),
        "the Service's pod b should answer, got {g}"
    );
    let rep = r.check("wormhole", &[]);
    let f = findings(&rep, "port-collision", Some("node1"));
    assert_eq!(f[0].severity, Severity::Error, "{}", rep.to_text());
    assert!(
        f[0].summary.contains(&format!("goes to {}:8080", r.c4())),
        "{}",
        f[0].summary
    );
    let (client, n1) = (r.client4().to_string(), r.n1_4().to_string());
    let t = r.trace("t", &[&client, &n1, "--port", "30080"]);
    assert!(
        t.endpoints.iter().all(|e| e.endpoint.addr == r.c4()),
        "{:?}",
        t.endpoints
    );
}

#[test]
fn load_balancer_source_ranges_block_a_client() {
    let r = Rack::new("diag-lbsr");
    r.tor
        .add_route(&format!("198.19.255.12/32 via {}", r.n1_4()))
        .unwrap();
    restore(
        &r.n1,
        &format!(
            "{NAT_HEAD}:KUBE-SERVICES - [0:0]\n:KUBE-FW-LB - [0:0]\n:KUBE-EXT-LB - [0:0]\n\
             :KUBE-SVC-LB - [0:0]\n:KUBE-SEP-B - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n\
             -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
             -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
             -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n\
             -A KUBE-POSTROUTING -j MASQUERADE\n\
             -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n\
             -A KUBE-EXT-LB -m comment --comment \"masquerade traffic for demo/lb:http external destinations\" -j KUBE-MARK-MASQ\n\
             -A KUBE-SERVICES -d 198.19.255.12/32 -p tcp -m comment --comment \"demo/lb:http loadbalancer IP\" -m tcp --dport 80 -j KUBE-FW-LB\n\
             -A KUBE-FW-LB -s 198.18.0.0/24 -m comment --comment \"demo/lb:http loadbalancer IP\" -j KUBE-EXT-LB\n\
             -A KUBE-EXT-LB -j KUBE-SVC-LB\n\
             -A KUBE-SVC-LB -m comment --comment \"demo/lb:http -> {b}:8080\" -j KUBE-SEP-B\n\
             -A KUBE-SEP-B -p tcp -m comment --comment \"demo/lb:http\" -m tcp -j DNAT --to-destination {b}:8080\n\
             COMMIT\n\
             *filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n\
             -A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
             -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
             -A KUBE-PROXY-FIREWALL -d 198.19.255.12/32 -p tcp -m comment --comment \"demo/lb:http traffic not accepted by KUBE-FW-LB\" -m tcp --dport 80 -j DROP\n\
             COMMIT\n",
            b = r.b4()
        ),
    );
    assert!(
        r.client.tcp_connect(ip("198.19.255.12"), 80, T).is_err(),
        "the client is not blocked"
    );
    let g =
        r.n2.tcp_connect(ip("198.19.255.12"), 80, T)
            .expect("node2 is allowed");
    assert!(g.starts_with("b tcp"), "{g}");
    let client = r.client4().to_string();
    let rep = r.check("lbsr", &["--probe", &client]);
    let f = findings(&rep, "lb-source-ranges", Some("node1"));
    assert!(
        f.iter().any(
            |f| f.summary.contains(&format!("client {client} is blocked"))
                && f.summary.contains("allowed: 198.18.0.0/24")
        ),
        "{}",
        rep.to_text()
    );
}

#[test]
fn masquerade_missing_for_traffic_leaving_the_cluster() {
    let r = Rack::new("diag-masq");
    let (p1, p2) = (r.n1.pod_cidr4().unwrap(), r.n2.pod_cidr4().unwrap());
    r.tor
        .sh(&format!("ip route del {p1}; ip route del {p2}"))
        .unwrap();
    assert!(
        r.a.tcp_connect(r.client4(), 80, T).is_err(),
        "a -> client still works"
    );
    let client = r.client4().to_string();
    let rep = r.check("masq", &["--probe", &client]);
    let f = findings(&rep, "masquerade-missing", Some("node1"));
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(
        f[0].summary.contains(&r.a4().to_string()),
        "{}",
        f[0].summary
    );
}

#[test]
fn mtu_smaller_on_the_path_than_on_the_pod_interface() {
    let r = Rack::new("diag-mtu");
    let dev =
        r.n1.iface_to(&r.n2)
            .map(|i| i.name)
            .unwrap_or_else(|_| "eth0".into());
    r.n1.sh(&format!("ip link set {dev} mtu 1400")).unwrap();
    let b = r.b4().to_string();
    let ping = |size: &str| {
        r.a.output(&["ping", "-c", "1", "-W", "1", "-M", "do", "-s", size, &b])
            .unwrap()
            .status
            .success()
    };
    assert!(ping("1300"), "control: small packets pass");
    assert!(!ping("1472"), "full-size DF packets pass");
    let rep = r.check("mtu", &[]);
    let f = findings(&rep, "mtu-mismatch", Some("node1"));
    assert!(
        f.iter().any(|f| f.summary.contains("MTU 1500")
            && f.summary.contains(&format!("out {dev} allows 1400"))),
        "{}",
        rep.to_text()
    );
}

#[test]
fn hairpin_without_masquerade() {
    let r = Rack::new("diag-hairpin");
    restore(
        &r.n1,
        &format!(
            "{NAT_HEAD}:KUBE-SERVICES - [0:0]\n:KUBE-SVC-H - [0:0]\n:KUBE-SEP-A - [0:0]\n\
             -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A KUBE-SERVICES -d 198.19.0.30/32 -p tcp -m comment --comment \"demo/self:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-H\n\
             -A KUBE-SVC-H -m comment --comment \"demo/self:http -> {a}:80\" -j KUBE-SEP-A\n\
             -A KUBE-SEP-A -p tcp -m comment --comment \"demo/self:http\" -m tcp -j DNAT --to-destination {a}:80\n\
             COMMIT\n",
            a = r.a4()
        ),
    );
    let vip = ip("198.19.0.30");
    let g =
        r.c.tcp_connect(vip, 80, T)
            .expect("another pod reaches the Service");
    assert!(g.starts_with("a tcp"), "{g}");
    assert!(
        r.a.tcp_connect(vip, 80, T).is_err(),
        "hairpin works without masquerade"
    );
    let rep = r.check("hairpin", &[]);
    let f = findings(&rep, "hairpin-no-masquerade", Some("node1"));
    assert_eq!(f.len(), 1, "{}", rep.to_text());
    assert!(
        f[0].summary.contains(&r.a4().to_string()),
        "{}",
        f[0].summary
    );
}

#[test]
fn conntrack_table_nearly_full() {
    let r = Rack::new("diag-ctfull");
    // conntrack runs in node1's namespace once a rule needs it
    r.n1.sh("iptables -A OUTPUT -m conntrack --ctstate NEW -j ACCEPT")
        .unwrap();
    // The unreplied UDP entries must outlive the live check (whose read-only framing lists
    // the whole table before and after) and the collect after it: 30 s is too short.
    r.n1.sh("sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600")
        .unwrap();
    let max: u64 =
        r.n1.sh("cat /proc/sys/net/netfilter/nf_conntrack_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    let want = max * 92 / 100;
    let dst = r.n2_4();
    r.n1.run(move || {
        let socks: Vec<std::net::UdpSocket> = (0..((want / 60_000) + 1))
            .map(|_| std::net::UdpSocket::bind("0.0.0.0:0").unwrap())
            .collect();
        let mut sent = 0u64;
        'out: for s in &socks {
            for port in 1..=60_000u16 {
                if sent >= want {
                    break 'out;
                }
                let _ = s.send_to(b"x", (dst, port));
                sent += 1;
            }
        }
    })
    .unwrap();
    let count: u64 =
        r.n1.sh("cat /proc/sys/net/netfilter/nf_conntrack_count")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    assert!(count * 100 >= max * 90, "only {count} of {max} entries");
    let rep = r.check("ctfull", &["--only", "conntrack-full"]);
    let f = findings(&rep, "conntrack-full", Some("node1"));
    assert_eq!(f[0].severity, Severity::Error);
}

#[test]
fn service_trace_across_nodes_by_name() {
    let r = Rack::new("diag-svc");
    restore(
        &r.n1,
        &format!(
            "{NAT_HEAD}:KUBE-SERVICES - [0:0]\n:KUBE-SVC-W - [0:0]\n:KUBE-SEP-B - [0:0]\n\
             -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A KUBE-SERVICES -d 198.19.0.10/32 -p tcp -m comment --comment \"demo/web:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-W\n\
             -A KUBE-SVC-W -m comment --comment \"demo/web:http -> {b}:8080\" -j KUBE-SEP-B\n\
             -A KUBE-SEP-B -p tcp -m comment --comment \"demo/web:http\" -m tcp -j DNAT --to-destination {b}:8080\n\
             COMMIT\n",
            b = r.b4()
        ),
    );
    let g =
        r.a.tcp_connect(ip("198.19.0.10"), 80, T)
            .expect("a -> Service");
    assert!(g.starts_with("b tcp"), "{g}");
    let manifests = r.dir.path().join("objects.yaml");
    std::fs::write(
        &manifests,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: a, namespace: demo}}\nspec: {{nodeName: node1, containers: [{{name: x, image: x}}]}}\nstatus: {{podIP: {a}, podIPs: [{{ip: {a}}}]}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: b, namespace: demo}}\nspec: {{nodeName: node2, containers: [{{name: x, image: x}}]}}\nstatus: {{podIP: {b}, podIPs: [{{ip: {b}}}]}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: demo}}\nspec: {{clusterIP: 198.19.0.10, ports: [{{name: http, port: 80, protocol: TCP, targetPort: 8080}}]}}\n",
            a = r.a4(),
            b = r.b4()
        ),
    )
    .unwrap();
    let m = manifests.to_str().unwrap();
    let t = r.trace("svc", &["demo/a", "svc/demo/web:http", "--manifests", m]);
    assert_eq!(
        t.verdict.text,
        format!("DELIVERED to demo/b ({}:8080) on node2", r.b4())
    );
    let hops: Vec<&str> = t.paths[0].hops.iter().map(|h| h.node.as_str()).collect();
    assert_eq!(hops, ["node1", "node2"]);
    // the text names the DNAT rule on node1 and the arrival on node2
    let mut args: Vec<String> = [
        "trace",
        "demo/a",
        "svc/demo/web:http",
        "--manifests",
        m,
        "--no-k8s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(r.netns_args());
    let (code, text, err) = common::diag(&args);
    assert_eq!(code, 0, "{text}{err}");
    assert!(
        text.contains(&format!("DNAT 198.19.0.10:80 -> {}:8080", r.b4()))
            && text.contains("node2  arrives on eth0"),
        "{text}"
    );
}
