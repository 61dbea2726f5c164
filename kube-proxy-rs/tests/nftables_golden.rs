//! Golden files of the nftables render: the same cases as iptables mode (tests/common
//! `CASES`), per family, in tests/golden/nftables/<case>-<family>.nft: the table as
//! `nft list table` prints it. `UPDATE_GOLDEN=1` rewrites them. Each golden is also checked:
//! the full-sync transaction on an empty node is exactly the table, the JSON form
//! round-trips through `dataplane::nft`'s parser to the same table, and every jump, goto
//! and map verdict names a chain of the table.

mod common;

use common::{CASES, assert_golden, build_files, config, family_name, golden_path};
use dataplane::Family;
use dataplane::nft::{Expr, Ruleset, Stmt, Table, Verdict};
use kube_proxy_rs::render::nftables::{NftOptions, NftRender, render_nftables, transaction};

fn render(case: &common::Case, family: Family) -> NftRender {
    let cfg = config(case);
    let b = build_files(case.files, &cfg);
    render_nftables(b.state(family), &NftOptions::from_config(&cfg))
}

fn header(case: &common::Case, family: Family) -> String {
    let mut files = vec!["manifests/00-nodes.yaml".to_string()];
    files.extend(case.files.iter().map(|f| f.to_string()));
    format!(
        "# golden: kube-proxy-rs nftables render, {} of tests/fixtures/{{{}}} on node-a\n\
         # flags: --proxy-mode=nftables --cluster-cidr=198.18.64.0/18,2001:db8:40::/48 {}; \
         regenerate: UPDATE_GOLDEN=1 cargo test -p kube-proxy-rs --test nftables_golden\n",
        family_name(family),
        files.join(","),
        case.flags.join(" ")
    )
}

/// Every chain a verdict (in a rule or a map element) names.
fn targets(t: &Table) -> Vec<String> {
    fn from_expr(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::Verdict(Verdict::Jump(c) | Verdict::Goto(c)) => out.push(c.clone()),
            Expr::Set(elems) => {
                for el in elems {
                    if let Some(d) = &el.data {
                        from_expr(d, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for c in &t.chains {
        for r in &c.rules {
            for s in &r.stmts {
                match s {
                    Stmt::Verdict(Verdict::Jump(c) | Verdict::Goto(c)) => out.push(c.clone()),
                    Stmt::Vmap { data, .. } => from_expr(data, &mut out),
                    _ => {}
                }
            }
        }
    }
    for s in &t.sets {
        for e in &s.elements {
            if let Some(d) = &e.data {
                from_expr(d, &mut out);
            }
        }
    }
    out
}

#[test]
fn golden_files() {
    for case in CASES {
        for family in [Family::V4, Family::V6] {
            let name = format!("{}-{}.nft", case.name, family_name(family));
            let r = render(case, family);
            let text = r.to_text();
            assert!(!text.is_empty(), "{name}: no text form");
            assert_golden(
                &golden_path("nftables", &name),
                &format!("{}{text}", header(case, family)),
            );

            // On an empty node, the full sync's transaction is the table alone.
            let tx = transaction(None, &Default::default(), &r.table).unwrap();
            assert_eq!(tx.text, text, "{name}: full transaction on an empty node");

            // JSON round trip through the dump parser.
            let rs = Ruleset {
                tables: vec![r.table.clone()],
                ..Ruleset::default()
            };
            let back = Ruleset::from_json(&rs.to_json_string()).unwrap();
            assert_eq!(
                back.tables[0].to_text().unwrap(),
                text,
                "{name}: JSON round trip"
            );

            // Every verdict names a chain of the table.
            for t in targets(&r.table) {
                assert!(r.table.chain(&t).is_some(), "{name}: no chain {t}");
            }
        }
    }
}
