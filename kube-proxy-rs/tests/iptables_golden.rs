//! Golden files of the iptables render: one case per manifest fixture (plus everything
//! together and flag variants), per family, in tests/golden/iptables/<case>-<family>.rules.
//! Each file is the full dump a fresh node shows after a full sync (built-in chain jumps,
//! canaries, kube-proxy's chains); `UPDATE_GOLDEN=1` rewrites them. Every golden is
//! checked: it loads into the stateful fake, upstream's `checkIPTablesRuleJumps` rules hold,
//! it round-trips through iptables-save text, and it equals what the sync layer's steps
//! (ensure jumps, then restore) leave on an empty node.

mod common;

use common::{
    CASES, assert_golden, build_case, check_rule_jumps, check_ruleset_chains, ensure_jumps,
    family_name, golden_path, render_case, sort_like_upstream, tables_by_name,
};
use dataplane::Family;
use dataplane::iptables::{RestoreMode, RestoreScript, Ruleset};

fn header(case: &common::Case, family: Family) -> Vec<String> {
    let mut files = vec!["manifests/00-nodes.yaml".to_string()];
    files.extend(case.files.iter().map(|f| f.to_string()));
    vec![
        format!(
            "golden: kube-proxy-rs iptables render, {} of tests/fixtures/{{{}}} on node-a",
            family_name(family),
            files.join(",")
        ),
        format!(
            "flags: --cluster-cidr=198.18.64.0/18,2001:db8:40::/48 {}; regenerate: UPDATE_GOLDEN=1 cargo test -p kube-proxy-rs --test iptables_golden",
            case.flags.join(" ")
        ),
    ]
}

fn load(family: Family, text: &str) -> Ruleset {
    let script = RestoreScript::parse(family, text).unwrap_or_else(|e| panic!("{e}"));
    let mut rs = Ruleset::new(family);
    rs.apply_restore(&script, RestoreMode { noflush: true })
        .unwrap_or_else(|e| panic!("{e}"));
    rs
}

#[test]
fn fixtures_build_without_warnings() {
    for case in CASES {
        let b = build_case(case);
        assert!(b.warnings.is_empty(), "{}: {:#?}", case.name, b.warnings);
    }
}

#[test]
fn golden_files() {
    for case in CASES {
        for family in [Family::V4, Family::V6] {
            let name = format!("{}-{}.rules", case.name, family_name(family));
            let r = render_case(case, family);
            let h = header(case, family);
            let h: Vec<&str> = h.iter().map(String::as_str).collect();
            let dump = r.full_dump(&h);
            assert_golden(&golden_path("iptables", &name), &dump);

            let restore = r.to_restore();
            check_rule_jumps(&restore).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                sort_like_upstream(&restore),
                restore,
                "{name}: output is not in upstream's normal form"
            );

            // Loads into an empty ruleset, as the kernel would take it.
            let rs = load(family, &dump);
            check_ruleset_chains(&rs).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(rs, r.to_ruleset().unwrap(), "{name}: to_ruleset");

            // iptables-save text of the loaded rules parses back to the same rules.
            let save = rs.to_save();
            let back = Ruleset::parse(family, &save).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(back, rs, "{name}: save round trip");

            // The sync layer's steps on a fresh node leave exactly the golden's rules.
            let mut node = Ruleset::new(family);
            ensure_jumps(&mut node);
            let script = RestoreScript::parse(family, &restore).unwrap();
            node.apply_restore(&script, RestoreMode { noflush: true })
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                tables_by_name(&node).to_save(),
                tables_by_name(&rs).to_save(),
                "{name}: ensure + restore differs from the golden"
            );
        }
    }
}
