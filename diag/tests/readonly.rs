//! diag only reads: `diag collect`, `diag trace` and `diag check`, run live inside the rack's
//! namespaces, leave every node's rules, nft ruleset, ipsets, routes, policy rules, addresses,
//! links, neighbours, sysctls and conntrack table byte-identical (conntrack compared without
//! its count-down timers, iptables-save without its `# Generated` date lines and counters),
//! across the whole test and around each command (`common::readonly`, which frames every live
//! diag command of every diag test). Also: a tar bundle traces like
//! the live node, and a garbled bundle is an input error naming the file and line. Needs root.

mod common;

use common::{Rack, diag, restore};
use lab::Host;

/// Everything diag could change on a node, as the node's own tools print it.
fn state(h: &Host) -> common::readonly::State {
    common::readonly::netns_state(h.netns())
}

#[test]
fn collect_trace_and_check_change_nothing() {
    let r = Rack::new("diag-ro");
    restore(
        &r.n1,
        &format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
             :KUBE-SERVICES - [0:0]\n:KUBE-SVC-W - [0:0]\n:KUBE-SEP-B - [0:0]\n:KUBE-SEP-C - [0:0]\n\
             -A PREROUTING -j KUBE-SERVICES\n-A OUTPUT -j KUBE-SERVICES\n\
             -A KUBE-SERVICES -d 198.19.0.10/32 -p tcp -m comment --comment \"demo/web:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-W\n\
             -A KUBE-SVC-W -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-B\n\
             -A KUBE-SVC-W -j KUBE-SEP-C\n\
             -A KUBE-SEP-B -p tcp -m tcp -j DNAT --to-destination {b}:8080\n\
             -A KUBE-SEP-C -p tcp -m tcp -j DNAT --to-destination {c}:8080\n\
             COMMIT\n\
             *filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             -A FORWARD -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n",
            b = r.b4(),
            c = r.c4()
        ),
    );
    r.n1.sh("nft add table inet diagtest && nft add chain inet diagtest c '{ type filter hook forward priority 10; }' && nft add rule inet diagtest c counter accept")
        .unwrap();
    r.n1.sh("ipset create diag-test hash:ip && ipset add diag-test 198.18.65.2")
        .unwrap();
    // live connections in conntrack
    for _ in 0..4 {
        r.a.tcp_connect(
            "198.19.0.10".parse::<std::net::IpAddr>().unwrap(),
            80,
            common::T,
        )
        .expect("service");
    }
    let t0 = std::time::Instant::now();
    let before: Vec<_> = [&r.n1, &r.n2].iter().map(|h| state(h)).collect();

    let out = r.dir.path().join("ro.tar");
    let (code, _, err) = diag(&[
        "collect",
        "--netns",
        r.n1.netns(),
        "--node-name",
        "node1",
        "--no-k8s",
        "--tar",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let bundles = r.collect("ro");
    let (a, b) = (r.a4().to_string(), r.b4().to_string());
    let mut live = vec![
        "trace".to_string(),
        a.clone(),
        "198.19.0.10".into(),
        "--port".into(),
        "80".into(),
        "--no-k8s".into(),
    ];
    live.extend(r.netns_args());
    let (code, text, err) = diag(&live);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.starts_with("DELIVERED (2 ways)"), "{text}");
    let mut chk = vec!["check".to_string()];
    chk.extend(r.netns_args());
    let (code, text, err) = diag(&chk);
    // (these rules lack kube-proxy's hairpin masquerade: check reports it, exit 1)
    assert_eq!(code, 1, "{text}{err}");
    assert!(text.contains("[hairpin-no-masquerade]"), "{text}");
    let (code, _, _) = diag(
        &["trace", &a, &b, "--port", "8080", "--no-k8s"]
            .iter()
            .map(|s| s.to_string())
            .chain(r.netns_args())
            .collect::<Vec<_>>(),
    );
    assert_eq!(code, 0);

    // (common::diag also compared each namespace a command named before and after it)
    let after: Vec<_> = [&r.n1, &r.n2].iter().map(|h| state(h)).collect();
    for (node, (x, y)) in before.iter().zip(&after).enumerate() {
        common::readonly::assert_unchanged(&format!("node{}", node + 1), x, y, t0.elapsed());
    }

    // the tar bundle traces like the live node
    let (code, text, err) = diag(&[
        "trace",
        &a,
        "198.19.0.10",
        "--port",
        "80",
        "--no-k8s",
        "--bundle",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}{err}");
    // one node's bundle: the endpoint on node2 is beyond what it knows
    assert!(
        text.starts_with(&format!("MIXED: DELIVERED to {}:8080 on node1", r.c4()))
            && text.contains(&format!("LEFT the known nodes: node1 sends it to {b}:8080")),
        "{text}"
    );

    // a garbled file is an input error naming the file and line
    let dir = std::path::PathBuf::from(&bundles[1]);
    let f = dir.join("iptables-nft-save.txt");
    let mut t = common::read(&f);
    t = t.replacen("-A KUBE-SVC-W -j KUBE-SEP-C", "-A KUBE-SVC-W -j", 1);
    std::fs::write(&f, t).unwrap();
    let (code, _, err) = diag(&["check", "--bundle", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("iptables-nft-save.txt:") && err.contains("expected a value"),
        "{err}"
    );
}
