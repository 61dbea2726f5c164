//! Kernel round trip of the text emitter: model -> `nft -f` text -> loaded by the real nft in
//! a throwaway network namespace -> `nft -j list ruleset` -> the same model. Needs root and
//! nft; skipped (with a message) otherwise. Each namespace is deleted by a Drop guard, also
//! when a test panics.

use std::io::Write;
use std::process::{Command, Stdio};

use dataplane::nft::{
    BaseChain, Chain, ChainType, Expr, Hook, Nat, NatKind, NftFamily, Object, Policy, Rule,
    Ruleset, Set, SetElem, SetType, Stmt, Table, Verdict,
};

/// A network namespace removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        let name = format!("dp-nft-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .ok()?
            .success();
        ok.then_some(Netns(name))
    }

    fn nft(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec nft");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Loads `text` with `nft -f -` and reads the ruleset back with `nft -j list ruleset`.
    fn load_and_list(&self, text: &str) -> Ruleset {
        let (ok, _, err) = self.nft(&["-f", "-"], text);
        assert!(ok, "nft -f refused our text: {err}\n{text}");
        let (ok, json, err) = self.nft(&["-j", "list", "ruleset"], "");
        assert!(ok, "nft -j list ruleset: {err}");
        Ruleset::from_json(&json).unwrap()
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
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let nft = Command::new("nft").arg("--version").output().is_ok();
    if !(root && nft) {
        eprintln!("skipping kernel round trip: needs root and nft");
    }
    root && nft
}

fn fixture(name: &str) -> Ruleset {
    let path = format!("{}/tests/fixtures/nft/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let (_, json) = text.split_once('\n').unwrap();
    Ruleset::from_json(json).unwrap()
}

/// What the kernel assigns or time changes: handles, element expiry, metainfo.
fn normalise(mut rs: Ruleset) -> Ruleset {
    rs.metainfo = None;
    for t in &mut rs.tables {
        t.handle = None;
        for o in &mut t.objects {
            if let Object::Counter(c) = o {
                c.handle = None;
            }
        }
        for s in &mut t.sets {
            s.handle = None;
            for e in &mut s.elements {
                e.expires = None;
            }
        }
        for c in &mut t.chains {
            c.handle = None;
            for r in &mut c.rules {
                r.handle = None;
            }
        }
    }
    rs
}

/// The ruleset without the parts that have no text form (raw objects and rules holding raw
/// statements or expressions).
fn printable(mut rs: Ruleset) -> Ruleset {
    for t in &mut rs.tables {
        let fam = t.family;
        t.objects.retain(|o| !matches!(o, Object::Raw { .. }));
        for c in &mut t.chains {
            c.rules.retain(|r| r.to_text(fam).is_ok());
        }
    }
    rs
}

#[test]
fn captured_rulesets_survive_text_through_the_kernel() {
    if !usable() {
        return;
    }
    for name in ["kube-proxy.json", "firewall.json"] {
        let ns = Netns::new("rt").expect("ip netns add");
        let want = normalise(printable(fixture(name)));
        let text = want.to_text().unwrap();
        let got = normalise(ns.load_and_list(&text));
        assert_eq!(got.tables.len(), want.tables.len(), "{name}");
        for (g, w) in got.tables.iter().zip(&want.tables) {
            assert_eq!(g.sets, w.sets, "{name}: sets of {} {}", w.family, w.name);
            for (gc, wc) in g.chains.iter().zip(&w.chains) {
                assert_eq!(gc, wc, "{name}: chain {}", wc.name);
            }
            assert_eq!(g, w, "{name}: table {} {}", w.family, w.name);
        }
        // A second pass is a fixed point.
        let again = normalise(ns.load_and_list(&format!("flush ruleset\n{text}")));
        assert_eq!(again, got, "{name}: second load");
    }
}

/// A ruleset built in code the way kube-proxy-rs renders one, with names and flags the JSON
/// dump cannot show (comments, `dynamic`): it loads, and reads back as built minus those.
#[test]
fn a_rendered_ruleset_loads_and_reads_back() {
    if !usable() {
        return;
    }
    let mut t = Table::new(NftFamily::Ip, "kube-proxy");
    t.comment = Some("rules for kube-proxy".into());
    t.sets.push(Set {
        name: "affinity-X".into(),
        key_type: SetType::one("ipv4_addr"),
        flags: vec!["dynamic".into(), "timeout".into()],
        timeout: Some(10800),
        ..Set::default()
    });
    t.sets.push(Set {
        name: "service-ips".into(),
        key_type: SetType::concat(&["ipv4_addr", "inet_proto", "inet_service"]),
        map: Some(SetType::one("verdict")),
        comment: Some("ClusterIP traffic".into()),
        elements: vec![SetElem::map(
            Expr::concat(vec![
                Expr::str("198.19.0.10"),
                Expr::str("tcp"),
                Expr::Number(80),
            ]),
            Expr::Verdict(Verdict::Goto("svc".into())),
        )],
        ..Set::default()
    });
    let base = BaseChain {
        chain_type: ChainType::Nat,
        hook: Hook::Prerouting,
        prio: -100,
        policy: Some(Policy::Accept),
        devices: vec![],
    };
    let services = Expr::concat(vec![
        Expr::payload("ip", "daddr"),
        Expr::meta("l4proto"),
        Expr::payload("th", "dport"),
    ]);
    t.chains.push(Chain::base(
        "nat-prerouting",
        base,
        vec![Rule::new(vec![Stmt::Vmap {
            key: services,
            data: Expr::set_ref("service-ips"),
        }])],
    ));
    let mut dnat = Nat::new(NatKind::Dnat);
    dnat.addr = Some(Expr::str("198.18.64.2"));
    dnat.port = Some(Expr::Number(8080));
    t.chains.push(Chain::regular(
        "svc",
        vec![
            Rule::new(vec![Stmt::Set(dataplane::nft::SetStmt {
                op: dataplane::nft::SetOp::Update,
                elem: Expr::payload("ip", "saddr"),
                set: "affinity-X".into(),
                stmts: vec![],
            })]),
            Rule::new(vec![
                Stmt::eq(Expr::meta("l4proto"), Expr::str("tcp")),
                Stmt::Nat(dnat),
            ])
            .with_comment("ns1/svc1:p80 -> 198.18.64.2:8080"),
        ],
    ));
    let rs = Ruleset {
        tables: vec![t],
        ..Ruleset::default()
    };
    let text = rs.to_text().unwrap();
    let ns = Netns::new("render").expect("ip netns add");
    let got = normalise(ns.load_and_list(&text));
    let mut want = rs.clone();
    let t = &mut want.tables[0];
    t.comment = None; // not in nft 1.0.6's JSON
    t.sets[0].flags = vec!["timeout".into()]; // `dynamic` neither
    t.sets[0].size = Some(65535); // the kernel's default size for a dynamic set
    assert_eq!(got, want, "text was:\n{text}");
}
