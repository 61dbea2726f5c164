//! The catalogue offline, without root: every scenario's bundles (captured by the kernel tests,
//! `tests/fixtures/catalogue/*/node{1,2}`) give the expected `diag check` text (golden
//! `check.txt`, rewritten with `UPDATE_GOLDEN=1`), with the scenario's check among the findings.

use std::path::Path;

use diag::bundle::Bundle;
use diag::check;
use diag::cluster::Cluster;
use diag::snapshot::Snapshot;

/// Scenario directory -> the check it must find (the healthy rack finds nothing).
const CASES: &[(&str, Option<&str>)] = &[
    ("healthy", None),
    ("noep", Some("service-no-endpoints")),
    ("etp", Some("etp-local-no-local-endpoints")),
    ("stale", Some("stale-udp-conntrack")),
    ("noroute", Some("pod-route-missing")),
    ("bh", Some("route-blackhole")),
    ("rule", Some("rule-empty-table")),
    ("fwd", Some("forwarding-off")),
    ("rpf", Some("rp-filter-asymmetric")),
    ("fwdrop", Some("forward-policy-drop")),
    ("both", Some("iptables-both-backends")),
    ("wormhole", Some("port-collision")),
    ("lbsr", Some("lb-source-ranges")),
    ("masq", Some("masquerade-missing")),
    ("mtu", Some("mtu-mismatch")),
    ("ctfull", Some("conntrack-full")),
    ("hairpin", Some("hairpin-no-masquerade")),
];

#[test]
fn every_scenario_bundle_gives_its_finding() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalogue");
    let mut failures = Vec::new();
    for (case, want) in CASES {
        let dir = root.join(case);
        let snaps: Vec<Snapshot> = ["node1", "node2"]
            .iter()
            .map(|n| {
                let b = Bundle::read(&dir.join(n)).unwrap_or_else(|e| panic!("{case}: {e}"));
                Snapshot::from_bundle(&b).unwrap_or_else(|e| panic!("{case}: {e}"))
            })
            .collect();
        let probes: Vec<std::net::IpAddr> = std::fs::read_to_string(dir.join("probes"))
            .unwrap_or_default()
            .split_whitespace()
            .map(|a| a.parse().unwrap())
            .collect();
        let only: Vec<String> = if *case == "ctfull" {
            vec!["conntrack-full".into()]
        } else {
            Vec::new()
        };
        let rep = check::run(&Cluster::new(snaps, Default::default()), &probes, &only);
        match want {
            None => assert!(rep.findings.is_empty(), "{case}: {}", rep.to_text()),
            Some(id) => assert!(
                rep.findings.iter().any(|f| f.check == *id),
                "{case}: no {id}: {}",
                rep.to_text()
            ),
        }
        let golden = dir.join("check.txt");
        let text = rep.to_text();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != text {
            let d = similar::TextDiff::from_lines(&expected, &text);
            failures.push(format!("{case}:\n{}", d.unified_diff().context_radius(2)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
