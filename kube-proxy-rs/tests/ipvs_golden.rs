//! Golden files of the IPVS render: the same case table as the iptables goldens
//! (`common::CASES`, run with `--proxy-mode=ipvs`), plus scheduler and strict-ARP variants,
//! per family, in tests/golden/ipvs/<case>-<family>.ipvs: the kube-ipvs0 addresses, the
//! virtual services (`ipvsadm -Sn`), the ipsets (`ipset save`) and the helper rules
//! (`iptables-restore` input). `UPDATE_GOLDEN=1` rewrites them. Every golden is also
//! checked: its `ipvsadm -Sn` part parses back to the plan, its sets parse as `ipset save`
//! text, and the rules load (after the jump rules) into the stateful iptables model.

mod common;

use common::{CASES, assert_golden, build_files, family_name, golden_path};
use dataplane::Family;
use dataplane::ipset::Sets;
use dataplane::iptables::{RestoreMode, RestoreScript, Ruleset};
use dataplane::ipvs::IpvsState;
use kube_proxy_rs::config::Config;
use kube_proxy_rs::render::ipvs::{IpvsOptions, IpvsPlan, jump_rules, render_ipvs};

/// The IPVS-only variants: (name, files, extra flags).
const EXTRA: &[(&str, &[&str], &[&str])] = &[
    (
        "scheduler-mh",
        &["manifests/clusterip.yaml", "manifests/nodeport.yaml"],
        &["--ipvs-scheduler=mh"],
    ),
    (
        "scheduler-wrr-strict-arp",
        &["manifests/clusterip.yaml", "manifests/affinity.yaml"],
        &["--ipvs-scheduler=wrr", "--ipvs-strict-arp"],
    ),
];

fn config(flags: &[&str]) -> Config {
    let mut args = vec![
        "kube-proxy-rs",
        "--proxy-mode=ipvs",
        "--hostname-override=node-a",
        "--cluster-cidr=198.18.64.0/18,2001:db8:40::/48",
    ];
    args.extend(flags);
    Config::from_args_and_file(args, None).unwrap_or_else(|e| panic!("{flags:?}: {e}"))
}

/// Every case: the shared table and the IPVS variants.
pub fn cases() -> Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)> {
    let mut out: Vec<_> = CASES
        .iter()
        .map(|c| (c.name, c.files.to_vec(), c.flags.to_vec()))
        .collect();
    out.extend(EXTRA.iter().map(|(n, f, x)| (*n, f.to_vec(), x.to_vec())));
    out
}

/// The plan of one case and family.
pub fn plan(files: &[&str], flags: &[&str], family: Family) -> IpvsPlan {
    let cfg = config(flags);
    let b = build_files(files, &cfg);
    render_ipvs(b.state(family), &IpvsOptions::from_config(&cfg))
}

fn header(name: &str, files: &[&str], flags: &[&str], family: Family) -> String {
    let mut all = vec!["manifests/00-nodes.yaml"];
    all.extend(files);
    format!(
        "# golden: kube-proxy-rs IPVS render, {} of tests/fixtures/{{{}}} on node-a ({name})\n\
         # flags: --proxy-mode=ipvs --cluster-cidr=198.18.64.0/18,2001:db8:40::/48 {}; regenerate: UPDATE_GOLDEN=1 cargo test -p kube-proxy-rs --test ipvs_golden\n",
        family_name(family),
        all.join(","),
        flags.join(" ")
    )
}

#[test]
fn golden_files() {
    for (name, files, flags) in cases() {
        for family in [Family::V4, Family::V6] {
            let file = format!("{name}-{}.ipvs", family_name(family));
            let p = plan(&files, &flags, family);
            let text = header(name, &files, &flags, family) + &p.to_text();
            assert_golden(&golden_path("ipvs", &file), &text);

            // ipvsadm -Sn round trip.
            let back = IpvsState::from_save(&p.ipvs.to_save())
                .unwrap_or_else(|e| panic!("{file}: ipvsadm -Sn: {e}"));
            assert_eq!(back, p.ipvs, "{file}: ipvsadm -Sn round trip");
            // ipset save text.
            let sets = Sets::parse(&p.ipset_text()).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(sets.sets().len(), p.sets.len(), "{file}: sets");
            // The rules load after the jump rules' chains exist.
            let mut rs = Ruleset::new(family);
            let mut pre = String::new();
            for t in ["nat", "filter"] {
                pre.push_str(&format!("*{t}\n"));
                let mut to: Vec<&str> = jump_rules()
                    .filter(|j| j.table == t)
                    .map(|j| j.to)
                    .collect();
                to.sort();
                to.dedup();
                for c in to {
                    pre.push_str(&format!("-N {c}\n"));
                }
                pre.push_str("COMMIT\n");
            }
            let noflush = RestoreMode { noflush: true };
            let script = RestoreScript::parse(family, &pre).unwrap();
            rs.apply_restore(&script, noflush).unwrap();
            let script =
                RestoreScript::parse(family, &p.rules).unwrap_or_else(|e| panic!("{file}: {e}"));
            rs.apply_restore(&script, noflush)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}

#[test]
fn render_is_deterministic_and_family_scoped() {
    for (name, files, flags) in cases() {
        for family in [Family::V4, Family::V6] {
            let a = plan(&files, &flags, family);
            let b = plan(&files, &flags, family);
            assert_eq!(a, b, "{name}");
            for s in &a.ipvs.services {
                assert_eq!(s.key.family(), family, "{name}: {}", s.key);
            }
            for v in &a.vips {
                assert_eq!(Family::of(v), family, "{name}: {v}");
            }
            let prefix = match family {
                Family::V4 => "KUBE-",
                Family::V6 => "KUBE-6-",
            };
            for s in &a.sets {
                assert!(s.name.starts_with(prefix), "{name}: {}", s.name);
            }
        }
    }
}
