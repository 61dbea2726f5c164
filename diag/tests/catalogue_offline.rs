//! The catalogue offline, without root: every scenario's bundles (captured by the kernel tests,
//! `tests/fixtures/catalogue/*/node{1,2}`) give the expected `diag check` text (golden
//! `check.txt`, rewritten with `UPDATE_GOLDEN=1`), with the scenario's check among the findings.

use std::path::Path;

use clap::Parser;
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

/// `diag trace` from a pod to a Service whose endpoint is on the other node, from the two
/// bundles of the kernel test `service_trace_across_nodes_by_name` (golden `trace.txt`, and the
/// JSON report reads back as the same value).
#[test]
fn pod_to_service_across_two_bundles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalogue/svc");
    let mut args: Vec<String> = [
        "diag",
        "trace",
        "198.18.65.2",
        "198.19.0.10",
        "--port",
        "80",
        "--no-k8s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in ["node1", "node2"] {
        args.push("--bundle".into());
        args.push(dir.join(n).display().to_string());
    }
    let trace_args = match diag::cli::Cli::try_parse_from(&args).unwrap().command {
        diag::cli::Command::Trace(a) => a,
        _ => unreachable!(),
    };
    let report = diag::cli::trace_report(&trace_args).unwrap();
    assert_eq!(report.verdict.exit_code, 0);
    let hops: Vec<&str> = report.paths[0]
        .hops
        .iter()
        .map(|h| h.node.as_str())
        .collect();
    assert_eq!(hops, ["node1", "node2"]);
    let json = report.to_json();
    let back: diag::explain::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);

    let text = diag::explain::text::render(&report);
    // bundle paths differ per checkout: only the text, which does not print them
    let golden = dir.join("trace.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    if expected != text {
        let d = similar::TextDiff::from_lines(&expected, &text);
        panic!("trace.txt:\n{}", d.unified_diff().context_radius(2));
    }
}
