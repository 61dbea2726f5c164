//! Helpers shared by the render tests: the golden cases (manifest fixtures + flags), golden
//! file comparison with `UPDATE_GOLDEN=1`, and our own versions of upstream's test checks
//! (`checkIPTablesRuleJumps`, `sortIPTablesRules`).

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dataplane::Family;
use dataplane::iptables::Ruleset;
use kube_proxy_rs::config::Config;
use kube_proxy_rs::model::{self, Build};
use kube_proxy_rs::render::iptables::{
    CANARY_CHAIN, RenderOptions, Rendered, chain_order, render_iptables,
};
use kube_proxy_rs::source::manifest;

/// One golden case: fixture files (under tests/fixtures), extra kube-proxy flags and a
/// tweak of the render options.
pub struct Case {
    pub name: &'static str,
    pub files: &'static [&'static str],
    pub flags: &'static [&'static str],
    pub tweak: fn(&mut RenderOptions),
}

fn no_tweak(_: &mut RenderOptions) {}

const fn case(name: &'static str, files: &'static [&'static str]) -> Case {
    Case {
        name,
        files,
        flags: &[],
        tweak: no_tweak,
    }
}

/// Every manifest fixture on its own (with the Nodes), everything together, and a few flag
/// variants. The node is node-a; `--cluster-cidr` covers all pod CIDRs.
pub const CASES: &[Case] = &[
    case("clusterip", &["manifests/clusterip.yaml"]),
    case("nodeport", &["manifests/nodeport.yaml"]),
    case("loadbalancer", &["manifests/loadbalancer.yaml"]),
    case("lb-local", &["manifests/lb-local.yaml"]),
    case("externalip", &["manifests/externalip.yaml"]),
    case("affinity", &["manifests/affinity.yaml"]),
    case("itp-local", &["manifests/itp-local.yaml"]),
    case("topology", &["manifests/topology.yaml"]),
    case("terminating", &["manifests/terminating.yaml"]),
    case("no-endpoints", &["manifests/no-endpoints.yaml"]),
    case("dns", &["manifests/dns.yaml"]),
    case("dualstack", &["manifests/dualstack.yaml"]),
    case("ipv6", &["manifests/ipv6.yaml"]),
    case("skipped", &["manifests/skipped.yaml"]),
    case("list", &["manifests/list.yaml"]),
    case("etp-local-remote", &["render/etp-local-remote.yaml"]),
    case("external-v6", &["render/external-v6.yaml"]),
    case("lb-node-blocked", &["render/lb-node-blocked.yaml"]),
    case("all", ALL_FILES),
    Case {
        name: "masquerade-all",
        files: &["manifests/clusterip.yaml", "manifests/nodeport.yaml"],
        flags: &["--masquerade-all"],
        tweak: no_tweak,
    },
    Case {
        name: "nodeport-addresses",
        files: &["manifests/nodeport.yaml", "manifests/lb-local.yaml"],
        flags: &["--nodeport-addresses=198.18.0.0/24,127.0.0.0/8,2001:db8::/64"],
        tweak: no_tweak,
    },
    Case {
        name: "node-cidr",
        files: &["manifests/lb-local.yaml", "manifests/clusterip.yaml"],
        flags: &["--detect-local-mode=NodeCIDR"],
        tweak: no_tweak,
    },
    Case {
        name: "no-localhost-nodeports",
        files: &["manifests/nodeport.yaml"],
        flags: &["--iptables-localhost-nodeports=false"],
        tweak: no_tweak,
    },
    Case {
        name: "large-cluster",
        files: &["manifests/clusterip.yaml", "manifests/affinity.yaml"],
        flags: &[],
        tweak: large,
    },
    Case {
        name: "host-variants",
        files: &["manifests/nodeport.yaml", "manifests/clusterip.yaml"],
        flags: &["--iptables-masquerade-bit=15"],
        tweak: host_variants,
    },
];

fn large(o: &mut RenderOptions) {
    o.large_cluster_threshold = 2;
}

fn host_variants(o: &mut RenderOptions) {
    o.random_fully = false;
    o.nfacct = true;
    o.conntrack_tcp_be_liberal = true;
}

/// Every manifest fixture file.
pub const ALL_FILES: &[&str] = &[
    "manifests/affinity.yaml",
    "manifests/clusterip.yaml",
    "manifests/dns.yaml",
    "manifests/dualstack.yaml",
    "manifests/externalip.yaml",
    "manifests/ipv6.yaml",
    "manifests/itp-local.yaml",
    "manifests/lb-local.yaml",
    "manifests/list.yaml",
    "manifests/loadbalancer.yaml",
    "manifests/no-endpoints.yaml",
    "manifests/nodeport.yaml",
    "manifests/skipped.yaml",
    "manifests/terminating.yaml",
    "manifests/topology.yaml",
];

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn case_named(name: &str) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// The configuration of a case (node-a, the fixtures' cluster CIDRs, the case's flags).
pub fn config(case: &Case) -> Config {
    let mut args = vec![
        "kube-proxy-rs",
        "--hostname-override=node-a",
        "--cluster-cidr=198.18.64.0/18,2001:db8:40::/48",
    ];
    args.extend(case.flags);
    Config::from_args_and_file(args, None).unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

/// The model of a case: its files plus the Nodes.
pub fn build_files(files: &[&str], cfg: &Config) -> Build {
    let dir = fixtures_dir();
    let mut paths = vec![dir.join("manifests/00-nodes.yaml")];
    paths.extend(files.iter().map(|f| dir.join(f)));
    let texts: Vec<(PathBuf, String)> = paths
        .into_iter()
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, t)
        })
        .collect();
    let m = manifest::parse_all(texts.iter().map(|(p, t)| (p.as_path(), t.as_str())))
        .expect("fixtures parse");
    let node_name = cfg.node_name("ignored").unwrap();
    model::build(
        &m.services,
        &m.endpoint_slices,
        m.node(&node_name),
        &cfg.model_options(&node_name),
    )
}

pub fn options(case: &Case, cfg: &Config) -> RenderOptions {
    let mut o = RenderOptions::from_config(cfg);
    (case.tweak)(&mut o);
    o
}

pub fn build_case(case: &Case) -> Build {
    build_files(case.files, &config(case))
}

/// The render of one family of a case.
pub fn render_case(case: &Case, family: Family) -> Rendered {
    let cfg = config(case);
    let b = build_files(case.files, &cfg);
    render_iptables(b.state(family), &options(case, &cfg))
}

pub fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

pub fn golden_path(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(dir)
        .join(name)
}

/// Compares `actual` with a golden file, printing a unified diff; `UPDATE_GOLDEN=1`
/// rewrites the file instead.
pub fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual);
        panic!(
            "{} differs (UPDATE_GOLDEN=1 rewrites it):\n{}",
            path.display(),
            diff.unified_diff()
                .context_radius(3)
                .header("golden", "rendered")
        );
    }
}

/// The tables of restore text: table name → lines between `*table` and `COMMIT`.
pub fn tables(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(t) = line.strip_prefix('*') {
            cur = Some((t.to_string(), Vec::new()));
        } else if line == "COMMIT" {
            let (t, l) = cur.take().expect("COMMIT outside a table");
            out.insert(t, l);
        } else {
            cur.as_mut()
                .expect("line outside a table")
                .1
                .push(line.to_string());
        }
    }
    out
}

/// The word after `flag ` in a line, for each occurrence.
fn words_after<'a>(line: &'a str, flag: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(flag) {
        let after = &rest[i + flag.len()..];
        let w = after.split(' ').next().unwrap_or("");
        out.push(w);
        rest = after;
    }
    out
}

const TARGETS: &[&str] = &[
    "ACCEPT",
    "REJECT",
    "DROP",
    "MARK",
    "RETURN",
    "DNAT",
    "SNAT",
    "MASQUERADE",
];

/// The chains kube-proxy always writes, exempt from the "created but not used" check.
pub const TOP_LEVEL: &[&str] = &[
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-FORWARD",
    "KUBE-MARK-MASQ",
    "KUBE-PROXY-FIREWALL",
    "KUBE-FIREWALL",
];

/// Upstream's `checkIPTablesRuleJumps` on restore input: every jumped-to chain is
/// declared and has rules (except KUBE-NODEPORTS), every chain with rules is declared,
/// and every declared chain (except the top-level ones) is jumped to.
pub fn check_rule_jumps(text: &str) -> Result<(), String> {
    for (table, lines) in tables(text) {
        let mut created: BTreeSet<&str> = BTreeSet::new();
        let mut deleted = BTreeSet::new();
        let mut filled = BTreeSet::new();
        let mut jumped = BTreeSet::new();
        for l in &lines {
            if let Some(d) = l.strip_prefix(':') {
                created.insert(d.split(' ').next().unwrap_or(""));
            } else if let Some(x) = l.strip_prefix("-X ") {
                deleted.insert(x.trim());
            } else if let Some(a) = l.strip_prefix("-A ") {
                filled.insert(a.split(' ').next().unwrap_or(""));
                for j in words_after(l, "-j ") {
                    if !TARGETS.contains(&j) {
                        jumped.insert(j);
                    }
                }
            }
        }
        for d in &deleted {
            created.remove(d);
        }
        let missing: Vec<_> = jumped
            .union(&filled)
            .filter(|c| !created.contains(*c))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "some chains in {table} are used but were not created: {missing:?}"
            ));
        }
        let empty: Vec<_> = jumped
            .difference(&filled)
            .filter(|c| **c != "KUBE-NODEPORTS")
            .collect();
        if !empty.is_empty() {
            return Err(format!(
                "some chains in {table} are jumped to but have no rules: {empty:?}"
            ));
        }
        let extra: Vec<_> = created
            .difference(&jumped)
            .filter(|c| !TOP_LEVEL.contains(*c))
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "some chains in {table} are created but not used: {extra:?}"
            ));
        }
    }
    Ok(())
}

/// The same rules on a loaded ruleset (the full dump): no per-service chain unused or
/// empty; every jump resolves (the load already refused dangling ones).
pub fn check_ruleset_chains(rs: &Ruleset) -> Result<(), String> {
    for t in &rs.tables {
        for c in t.chains() {
            if t.is_builtin(&c.name) || TOP_LEVEL.contains(&c.name.as_str()) {
                continue;
            }
            if c.name == CANARY_CHAIN {
                if !c.rules.is_empty() || !t.references_to(&c.name).is_empty() {
                    return Err(format!(
                        "{} {CANARY_CHAIN} must be empty and unused",
                        t.name
                    ));
                }
                continue;
            }
            if t.references_to(&c.name).is_empty() {
                return Err(format!("{} {} is not used", t.name, c.name));
            }
            if c.rules.is_empty() {
                return Err(format!("{} {} is jumped to but empty", t.name, c.name));
            }
        }
    }
    Ok(())
}

/// The comment of a rule line (unquoted), if any.
pub fn comment_of(line: &str) -> Option<&str> {
    let i = line.find("--comment ")?;
    let rest = &line[i + "--comment ".len()..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split(' ').next()
    }
}

/// Upstream's `sortIPTablesRules`: tables by name; chains KUBE-NODEPORTS, KUBE-SERVICES,
/// other KUBE-*, others, each group by name; rules grouped by chain; the KUBE-NODEPORTS and
/// KUBE-SERVICES rules stably sorted by the service name in their comment (the text up to the
/// first space or colon), nat KUBE-SERVICES' "must be the last rule" rule last; deleted
/// chains declared and then `-X`ed after all rules.
pub fn sort_like_upstream(text: &str) -> String {
    let mut out = String::new();
    for (table, lines) in tables(text) {
        let mut chains: Vec<String> = Vec::new();
        let mut rules: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut deleted = BTreeSet::new();
        for l in &lines {
            if let Some(d) = l.strip_prefix(':') {
                let name = d.split(' ').next().unwrap_or("").to_string();
                if !chains.contains(&name) {
                    chains.push(name);
                }
            } else if let Some(x) = l.strip_prefix("-X ") {
                deleted.insert(x.trim().to_string());
            } else if let Some(a) = l.strip_prefix("-A ") {
                let c = a.split(' ').next().unwrap_or("").to_string();
                rules.entry(c).or_default().push(l.clone());
            }
        }
        chains.sort_by(|a, b| chain_order(a, b));
        for (name, rs) in rules.iter_mut() {
            if name != "KUBE-NODEPORTS" && name != "KUBE-SERVICES" {
                continue;
            }
            let key = |l: &String| {
                let c = comment_of(l).unwrap_or("");
                let last = table == "nat"
                    && name == "KUBE-SERVICES"
                    && c.contains("must be the last rule");
                let svc = c.split([' ', ':']).next().unwrap_or("").to_string();
                (last, svc)
            };
            rs.sort_by_key(key);
        }
        out.push_str(&format!("*{table}\n"));
        for c in &chains {
            out.push_str(&format!(":{c} - [0:0]\n"));
        }
        for c in &chains {
            for r in rules.get(c).into_iter().flatten() {
                out.push_str(r);
                out.push('\n');
            }
        }
        for c in &chains {
            if deleted.contains(c) {
                out.push_str(&format!("-X {c}\n"));
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// What the sync layer does before a full sync's restore on a fresh node, on the fake:
/// `iptables -N` each jump target and the canaries, then `iptables -I CHAIN 1 …` each jump
/// rule in upstream's order.
pub fn ensure_jumps(rs: &mut Ruleset) {
    use dataplane::iptables::{RestoreMode, RestoreScript};
    use kube_proxy_rs::render::iptables::{CANARY_TABLES, JUMP_RULES};
    let mut run = |text: String| {
        let script = RestoreScript::parse(rs.family, &text).unwrap_or_else(|e| panic!("{e}"));
        rs.apply_restore(&script, RestoreMode { noflush: true })
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
    };
    for t in CANARY_TABLES {
        run(format!("*{t}\n-N {CANARY_CHAIN}\nCOMMIT\n"));
    }
    let mut created = BTreeSet::new();
    for j in JUMP_RULES {
        if created.insert((j.table, j.to)) {
            run(format!("*{}\n-N {}\nCOMMIT\n", j.table, j.to));
        }
        let line = j.restore_line().replacen("-A ", "-I ", 1);
        let line = line.replacen(j.from, &format!("{} 1", j.from), 1);
        run(format!("*{}\n{line}\nCOMMIT\n", j.table));
    }
}

/// A ruleset with its tables in name order (the kernel lists tables in no fixed order).
pub fn tables_by_name(rs: &Ruleset) -> Ruleset {
    let mut r = rs.clone();
    r.tables.sort_by(|a, b| a.name.cmp(&b.name));
    r
}
