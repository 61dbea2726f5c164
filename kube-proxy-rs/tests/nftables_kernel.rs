//! Kernel tests of nftables mode: every golden case loaded with the real `nft -f` (both
//! families) into a throwaway network namespace, and a chain of syncs (full, then partial
//! ones between golden cases, adding and removing Services, endpoints, affinity and
//! NodePorts) run by the proxier through `nft`. After each, `nft -j list table` is parsed with
//! `dataplane::nft` and must hold exactly the rendered table (rules, and set elements in any
//! order; the kernel's own additions — `size` of dynamic sets, `expires` — left out). Needs
//! root and nft; skipped (with a message) otherwise. Namespaces are removed by a Drop guard.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{CASES, build_files, case_named, config};
use dataplane::Family;
use dataplane::nft::{Ruleset, SetElem, Table};
use kube_proxy_rs::apply::netns::{in_netns, named};
use kube_proxy_rs::apply::nftables::{NftExec, NftWriter};
use kube_proxy_rs::render::nftables::{NftOptions, render_nftables};
use kube_proxy_rs::sync::{ModeProxier, NftProxier};

/// A network namespace removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("kpnft-{}-{tag}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }

    fn run(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn usable() -> bool {
    let ok = nix::unistd::geteuid().is_root()
        && Command::new("nft")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: needs root and nft");
    }
    ok
}

/// A table as comparable text: per chain its base spec and rules, per set its declaration
/// and sorted elements.
fn view(t: &Table) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for c in &t.chains {
        let mut v = vec![format!("{:?}", c.base)];
        v.extend(c.rules.iter().map(|r| r.to_text(t.family).unwrap()));
        out.insert(format!("chain {}", c.name), v);
    }
    for s in &t.sets {
        let mut elems: Vec<String> = s
            .elements
            .iter()
            .map(|e| {
                let e = SetElem {
                    expires: None,
                    ..e.clone()
                };
                s.element_text(&e, t.family).unwrap()
            })
            .collect();
        elems.sort();
        let mut flags = s.flags.clone();
        flags.retain(|f| f != "dynamic"); // nft 1.0.6's JSON omits it
        let mut v = vec![format!(
            "type {} map {:?} flags {flags:?} timeout {:?}",
            s.key_type, s.map, s.timeout
        )];
        v.extend(elems);
        out.insert(format!("set {}", s.name), v);
    }
    out
}

fn assert_same(what: &str, kernel: &Table, rendered: &Table) {
    let (k, r) = (view(kernel), view(rendered));
    if k != r {
        let mut diff = String::new();
        for (name, rv) in &r {
            match k.get(name) {
                None => diff.push_str(&format!("missing in the kernel: {name}\n")),
                Some(kv) if kv != rv => {
                    diff.push_str(&format!("{name}:\n  kernel   {kv:?}\n  rendered {rv:?}\n"))
                }
                _ => {}
            }
        }
        for name in k.keys().filter(|n| !r.contains_key(*n)) {
            diff.push_str(&format!("only in the kernel: {name}\n"));
        }
        panic!("{what}: the kernel's table differs from the render:\n{diff}");
    }
}

fn listed(ns: &Netns, family: &str) -> Table {
    let (ok, out, err) = ns.run(&["nft", "-j", "list", "table", family, "kube-proxy"], "");
    assert!(ok, "nft list: {err}");
    Ruleset::from_json(&out).unwrap().tables.remove(0)
}

#[test]
fn golden_cases_load_into_the_kernel() {
    if !usable() {
        return;
    }
    for case in CASES {
        let ns = Netns::new("load");
        let cfg = config(case);
        let b = build_files(case.files, &cfg);
        for (family, fam) in [(Family::V4, "ip"), (Family::V6, "ip6")] {
            let r = render_nftables(b.state(family), &NftOptions::from_config(&cfg));
            let (ok, _, err) = ns.run(&["nft", "-f", "-"], &r.to_text());
            assert!(ok, "{} {fam}: nft -f refused it: {err}", case.name);
            assert_same(&format!("{} {fam}", case.name), &listed(&ns, fam), &r.table);
        }
    }
}

#[test]
fn partial_syncs_leave_exactly_the_rendered_table() {
    if !usable() {
        return;
    }
    let ns = Netns::new("sync");
    let path = named(&ns.0);
    // A walk over cases that adds and removes Services, endpoints, affinity, NodePorts,
    // source ranges and node port addresses.
    let walk = [
        ("all", true),
        ("clusterip", false),
        ("all", false),
        ("affinity", false),
        ("lb-local", false),
        ("nodeport-addresses", false),
        ("loadbalancer", false),
        ("loadbalancer", true),
        ("no-endpoints", false),
        ("all", false),
    ];
    for family in [Family::V4, Family::V6] {
        let mut p = NftProxier::new(NftExec::new(family), NftOptions::default());
        for (i, (case, full)) in walk.iter().enumerate() {
            let c = case_named(case);
            let cfg = config(c);
            let state = build_files(c.files, &cfg).state(family).clone();
            let opts = NftOptions::from_config(&cfg);
            *p.options_mut() = opts.clone();
            let (a, table) = in_netns(&path, || {
                let (a, _) = p
                    .sync(&state, *full)
                    .unwrap_or_else(|e| panic!("step {i} {case}: {e}"));
                (a, NftExec::new(family).list_table().unwrap().unwrap())
            })
            .unwrap();
            assert_eq!(a.full, i == 0 || *full, "step {i}");
            let want = render_nftables(&state, &opts).table;
            assert_same(&format!("{family:?} step {i} ({case})"), &table, &want);
        }
    }
}
