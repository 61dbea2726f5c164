//! The alert rules in `deploy/monitoring/alerts.yaml` and the metric names in the docs, against
//! what the programs really expose (no root, no daemons: the programs' own registries).
//!
//! ```text
//!   kube_proxy_rs::metrics::Metrics ─┐ one series in every labelled family (an empty family
//!   bgpd::metrics::Metrics ──────────┤ is not encoded at all), then encode(): the /metrics text
//!                                    └─> series names (name_total, name, name_bucket|_sum|_count)
//!                                        and the label names of each
//!   alerts.yaml ──serde (unknown keys refused)──> every rule's expr ──tokens kubeproxy_* / bgpd_*
//!        and their {label=...} matchers ──┐
//!   docs/{kube-proxy-rs,bgpd,operations}.md ──tokens kubeproxy_* / bgpd_*──┴─> each must be exposed
//! ```
//! The registries are the ones `/metrics` encodes, so a metric renamed, removed or never
//! registered in the code fails here, as does a typo in a rule. bgpd's label names come from
//! its typed label sets; kube-proxy-rs's labelled families take label pairs from the sync
//! driver, so the pairs below repeat the driver's (`table`, `traffic_policy`, `code`, `kind`,
//! `reason`).

#![allow(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use system_tests::chart::repo;

/// A Prometheus rule file (`rule_files:`), alerting rules only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The series names an exposition text offers to queries, from its `# TYPE` lines, each with
/// the label names its samples carry (`le` and `quantile` left out).
fn exposed(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let series: Vec<String> = match kind {
            "counter" => vec![format!("{name}_total")],
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect(),
            _ => vec![name.to_string()],
        };
        for s in series {
            out.entry(s).or_default();
        }
    }
    // label names of the samples
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some(labels) = out.get_mut(name) else {
            continue;
        };
        let body = rest.split_once('}').map_or("", |(b, _)| b);
        for pair in body.split(',') {
            if let Some((k, _)) = pair.split_once('=')
                && k != "le"
                && k != "quantile"
            {
                labels.insert(k.to_string());
            }
        }
    }
    out
}

/// kube-proxy-rs's metrics with one series in each labelled family, as the sync driver and the
/// health server label them.
fn kube_proxy_text() -> String {
    use kube_proxy_rs::metrics::{Metrics, label};
    let m = Metrics::new();
    m.iptables_total
        .get_or_create(&label("table", "nat"))
        .set(1);
    m.iptables_last.get_or_create(&label("table", "nat")).set(1);
    m.no_local_endpoints
        .get_or_create(&label("traffic_policy", "external"))
        .set(1);
    m.healthz.get_or_create(&label("code", "200")).inc();
    m.livez.get_or_create(&label("code", "200")).inc();
    m.skipped_objects
        .get_or_create(&vec![
            ("kind".into(), "Service".into()),
            ("reason".into(), "object skipped".into()),
        ])
        .inc();
    m.conntrack_deleted
        .get_or_create(&label("reason", "service deleted"))
        .inc();
    m.encode()
}

/// bgpd's metrics with one series in each labelled family, through its own methods.
fn bgpd_text() -> String {
    let m = bgpd::metrics::Metrics::new();
    let p: std::net::IpAddr = "198.18.0.1".parse().unwrap();
    use bgpd::session::State;
    m.session_state(p, State::Established);
    m.transition(p, State::OpenConfirm, State::Established);
    m.prefixes(p, 3, 2, 1);
    m.prefixes_stale(p, 1);
    m.kernel_routes_stale(1);
    m.update_received(p);
    m.updates_sent(p, 1);
    m.rejected(p, "not_in_import_ranges");
    m.update_error(p, "treat-as-withdraw");
    m.route_refresh(p, true);
    m.routes_installed(1, 1);
    m.fib_op("add", true);
    m.encode()
}

/// Both programs' series and their label names.
fn all_exposed() -> BTreeMap<String, BTreeSet<String>> {
    let mut names = exposed(&kube_proxy_text());
    names.extend(exposed(&bgpd_text()));
    names
}

/// The metric-like tokens of a text: identifiers starting with `kubeproxy_` or `bgpd_`
/// (a trailing `_`, as in `kubeproxy_rs_*`, is a family prefix, not a name).
fn metric_tokens(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("kubeproxy_") || t.starts_with("bgpd_"))
        .filter(|t| !t.ends_with('_'))
        .map(str::to_string)
        .collect()
}

/// The label names of the `{...}` matchers written right after `metric` in `expr`.
fn matcher_labels(expr: &str, metric: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find(metric) {
        let after = &rest[i + metric.len()..];
        let boundary_before = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        if boundary_before
            && let Some(body) = after.strip_prefix('{')
            && let Some((inner, _)) = body.split_once('}')
        {
            for m in inner.split(',') {
                let name: String = m
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
        rest = after;
    }
    out
}

/// Names in `used` that are not exposed, with where they were used.
fn unknown(
    used: &BTreeMap<String, BTreeSet<String>>,
    have: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    used.iter()
        .filter(|(name, _)| !have.contains_key(*name))
        .map(|(name, at)| {
            format!(
                "{name} (in {})",
                at.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect()
}

fn rules() -> RuleFile {
    let path = repo().join("deploy/monitoring/alerts.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `30s`, `5m`, `1h30m`: Prometheus durations.
fn is_duration(s: &str) -> bool {
    let mut digits = false;
    let mut units = 0;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits = true;
            continue;
        }
        if !digits {
            return false;
        }
        match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
            }
            's' | 'm' | 'h' | 'd' | 'w' | 'y' => {}
            _ => return false,
        }
        digits = false;
        units += 1;
    }
    units > 0 && !digits
}

#[test]
fn the_registries_expose_what_the_docs_say() {
    let have = all_exposed();
    for name in [
        "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
        "bgpd_session_established",
        "bgpd_fsm_transitions_total",
        "bgpd_prefixes_stale",
        "bgpd_kernel_routes_stale",
    ] {
        assert!(
            have.contains_key(name),
            "{name} not exposed; have {have:#?}"
        );
    }
    // the parser itself: a counter is queried with _total, never bare
    assert!(!have.contains_key("bgpd_fsm_transitions"));
    // and label names are read from the samples
    assert_eq!(
        have["bgpd_session_established"],
        BTreeSet::from(["peer".to_string()])
    );
    assert_eq!(
        have["bgpd_fib_operations_total"],
        BTreeSet::from(["op".to_string(), "result".to_string()])
    );
    assert!(have["kubeproxy_sync_proxy_rules_duration_seconds_bucket"].is_empty());
}

#[test]
fn every_alert_uses_only_exposed_metrics_and_is_complete() {
    let file = rules();
    let have = all_exposed();
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut alerts = BTreeSet::new();
    let mut problems = Vec::new();
    for g in &file.groups {
        assert!(!g.rules.is_empty(), "group {} has no rules", g.name);
        if let Some(i) = &g.interval {
            assert!(is_duration(i), "group {}: interval {i:?}", g.name);
        }
        for r in &g.rules {
            if !alerts.insert(r.alert.clone()) {
                problems.push(format!("{}: listed twice", r.alert));
            }
            let tokens = metric_tokens(&r.expr);
            if tokens.is_empty() {
                problems.push(format!(
                    "{}: expr names no kubeproxy_/bgpd_ metric",
                    r.alert
                ));
            }
            for t in tokens {
                if let Some(known) = have.get(&t) {
                    for l in matcher_labels(&r.expr, &t) {
                        if !known.contains(&l) {
                            problems.push(format!(
                                "{}: {t} has no label {l:?} (it has {known:?})",
                                r.alert
                            ));
                        }
                    }
                }
                used.entry(t).or_default().insert(r.alert.clone());
            }
            if let Some(f) = &r.for_
                && !is_duration(f)
            {
                problems.push(format!("{}: for {f:?} is not a duration", r.alert));
            }
            match r.labels.get("severity").map(String::as_str) {
                Some("critical" | "warning" | "info") => {}
                other => problems.push(format!("{}: severity {other:?}", r.alert)),
            }
            if r.annotations
                .get("summary")
                .is_none_or(|s| s.trim().is_empty())
            {
                problems.push(format!("{}: no summary", r.alert));
            }
        }
    }
    problems.extend(
        unknown(&used, &have)
            .into_iter()
            .map(|u| format!("metric not exposed by kube-proxy-rs or bgpd: {u}")),
    );
    assert!(
        problems.is_empty(),
        "deploy/monitoring/alerts.yaml:\n{}",
        problems.join("\n")
    );
    // what docs/operations.md promises to alert on
    for a in [
        "KubeProxyRsSyncFailing",
        "KubeProxyRsSyncStale",
        "BgpdSessionDown",
        "BgpdPrefixesDropped",
        "BgpdStaleRoutesKept",
    ] {
        assert!(alerts.contains(a), "no alert {a}");
    }
}

#[test]
fn metric_names_in_the_docs_are_exposed() {
    let have = all_exposed();
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for doc in [
        "docs/kube-proxy-rs.md",
        "docs/bgpd.md",
        "docs/operations.md",
    ] {
        let text =
            std::fs::read_to_string(repo().join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"));
        let tokens = metric_tokens(&text);
        assert!(!tokens.is_empty(), "{doc} names no metric");
        for t in tokens {
            used.entry(t).or_default().insert(doc.to_string());
        }
    }
    // a doc may name a histogram by its family name
    used.retain(|name, _| !have.contains_key(&format!("{name}_bucket")));
    let bad = unknown(&used, &have);
    assert!(
        bad.is_empty(),
        "metrics the docs name but no program exposes:\n{}",
        bad.join("\n")
    );
}

#[test]
fn a_misspelled_or_unregistered_name_is_caught() {
    let have = all_exposed();
    let expr = "bgpd_session_establishd == 0 or rate(bgpd_fsm_transitions[5m]) > 0 \
                or kubeproxy_sync_proxy_rules_last_timestamp_seconds > 0";
    let mut used = BTreeMap::new();
    for t in metric_tokens(expr) {
        used.insert(t, BTreeSet::from(["test".to_string()]));
    }
    let bad = unknown(&used, &have);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].starts_with("bgpd_fsm_transitions "), "{bad:?}");
    assert!(bad[1].starts_with("bgpd_session_establishd "), "{bad:?}");
    // a matcher on a label the metric does not have
    let e = "increase(bgpd_fib_operations_total{reslt=\"error\"}[10m]) > 0";
    assert_eq!(
        matcher_labels(e, "bgpd_fib_operations_total"),
        BTreeSet::from(["reslt".to_string()])
    );
    assert!(!have["bgpd_fib_operations_total"].contains("reslt"));
    assert!(matcher_labels("bgpd_session_established == 0", "bgpd_session_established").is_empty());
    // label selectors and functions are not metric names
    assert_eq!(
        metric_tokens("sum by (peer) (increase(bgpd_updates_sent_total{peer=\"198.18.0.1\"}[5m]))"),
        BTreeSet::from(["bgpd_updates_sent_total".to_string()])
    );
    assert!(is_duration("5m") && is_duration("1h30m") && is_duration("500ms"));
    assert!(!is_duration("5") && !is_duration("m5") && !is_duration("5 m"));
}
