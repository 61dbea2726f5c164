//! Kernel smoke test of the render: every golden case is loaded with the real
//! `iptables-restore` / `ip6tables-restore`, nft and legacy back ends, each into a throwaway
//! network namespace; the kernel's `iptables-save` must parse to exactly the ruleset our
//! stateful fake holds after loading the same text, and the full sync's jump-rule check must
//! find every jump rule in each table's real `iptables-save -t TABLE`. Needs root and both iptables back ends;
//! skipped (with a message) otherwise. Namespaces are removed by a Drop guard, also when a
//! test panics. The nfacct match is left out (its counters need `nfacct add`, which this
//! host lacks).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{CASES, config, family_name, options, tables_by_name};
use dataplane::Family;
use dataplane::iptables::Ruleset;
use kube_proxy_rs::render::iptables::render_iptables;

/// A network namespace removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("kprender-{}-{tag}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }

    /// Runs a command in the namespace with `stdin`; (success, stdout, stderr).
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
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let tools = ["iptables-nft-restore", "iptables-legacy-restore"]
        .iter()
        .all(|t| Command::new(t).arg("--version").output().is_ok());
    if !(root && tools) {
        eprintln!("skipping kernel test: needs root and iptables-{{nft,legacy}}-restore");
    }
    root && tools
}

/// The tables our text holds, from a ruleset, as restore text (no comments, no counters).
fn comparable(rs: &Ruleset, tables: &[&str]) -> String {
    let mut only = Ruleset::new(rs.family);
    for t in tables {
        if let Some(t) = rs.table(t) {
            only.tables.push(t.clone());
        }
    }
    tables_by_name(&only).to_restore()
}

#[test]
fn goldens_load_into_the_kernel_as_the_fake_holds_them() {
    if !usable() {
        return;
    }
    let mut checked = 0;
    for (i, case) in CASES.iter().enumerate() {
        let cfg = config(case);
        let mut opts = options(case, &cfg);
        opts.nfacct = false;
        let b = common::build_files(case.files, &cfg);
        for backend in ["nft", "legacy"] {
            let ns = Netns::new(&format!("{i}-{backend}"));
            for family in [Family::V4, Family::V6] {
                let r = render_iptables(b.state(family), &opts);
                let dump = r.full_dump(&[]);
                let tool = match family {
                    Family::V4 => "iptables",
                    Family::V6 => "ip6tables",
                };
                let what = format!("{} {} {backend}", case.name, family_name(family));
                let (ok, _, err) = ns.run(&[&format!("{tool}-{backend}-restore")], &dump);
                assert!(ok, "{what}: restore refused: {err}\n{dump}");
                let (ok, save, err) = ns.run(&[&format!("{tool}-{backend}-save")], "");
                assert!(ok, "{what}: save: {err}");
                let kernel = Ruleset::parse(family, &save)
                    .unwrap_or_else(|e| panic!("{what}: kernel dump does not parse: {e}\n{save}"));
                // the jump rules as the real iptables-save prints them are found by the full
                // sync's check (else it would run `iptables -C` for each on every full sync)
                for t in ["filter", "nat", "mangle"] {
                    let (ok, one, err) = ns.run(&[&format!("{tool}-{backend}-save"), "-t", t], "");
                    assert!(ok, "{what}: save -t {t}: {err}");
                    let missing = kube_proxy_rs::apply::missing_jump_rules(family, t, &one);
                    assert!(
                        missing.is_empty(),
                        "{what}: {missing:?} not found in\n{one}"
                    );
                }
                let fake = r.to_ruleset().unwrap();
                let tables = ["filter", "mangle", "nat"];
                let (k, f) = (comparable(&kernel, &tables), comparable(&fake, &tables));
                if k != f {
                    let diff = similar::TextDiff::from_lines(f.as_str(), k.as_str());
                    panic!(
                        "{what}: kernel differs from the fake:\n{}",
                        diff.unified_diff().header("fake", "kernel")
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, CASES.len() * 4);
}
