//! Differential test of the restore merge against the real `iptables-restore --noflush` and
//! `iptables-save`, in throwaway network namespaces. Needs root and iptables; skipped (with a
//! message) otherwise. Each namespace is deleted by a Drop guard, also when a test panics.

use std::io::Write;
use std::process::{Command, Stdio};

use dataplane::Family;
use dataplane::iptables::{RestoreMode, RestoreScript, Ruleset};

/// A network namespace removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        let name = format!("dp-ipt-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .ok()?
            .success();
        ok.then_some(Netns(name))
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
    let tools = Command::new("iptables-nft-restore")
        .arg("--version")
        .output()
        .is_ok()
        && Command::new("iptables-legacy-restore")
            .arg("--version")
            .output()
            .is_ok();
    if !(root && tools) {
        eprintln!("skipping kernel comparison: needs root and iptables-{{nft,legacy}}-restore");
    }
    root && tools
}

/// The rules and chain declarations of one table, as to_restore prints them.
fn table_text(rs: &Ruleset, table: &str) -> String {
    let mut one = Ruleset::new(rs.family);
    if let Some(t) = rs.table(table) {
        one.tables.push(t.clone());
    }
    one.to_restore()
}

const BASE: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A INPUT -j A
-A A -s 198.18.0.1/32 -j ACCEPT
-A A -m comment --comment \"two words\" -s 198.18.0.2 -j ACCEPT
-A B -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m comment --comment \"ns/a:p cluster IP\" -m tcp -p tcp -d 198.19.0.1 --dport 80 -j KUBE-SVC-AAAAAAAAAAAAAAAA
-A KUBE-SVC-AAAAAAAAAAAAAAAA -m comment --comment \"ns/a:p -> 198.18.64.2:80\" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-BBBBBBBBBBBBBBBB
-A KUBE-SEP-BBBBBBBBBBBBBBBB -s 198.18.64.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-BBBBBBBBBBBBBBBB -m recent --name KUBE-SEP-BBBBBBBBBBBBBBBB --set -m tcp -p tcp -j DNAT --to-destination 198.18.64.2:80
COMMIT
";

/// Scripts applied with --noflush on top of BASE; each either succeeds in both or fails in both.
const DELTAS: &[&str] = &[
    // partial sync: rewrite KUBE-SERVICES, add a service, delete the old one
    "*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-CCCCCCCCCCCCCCCC - [0:0]
:KUBE-SEP-DDDDDDDDDDDDDDDD - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]
-A KUBE-SERVICES -m comment --comment \"ns/c:p cluster IP\" -m udp -p udp -d 198.19.0.53 --dport 53 -j KUBE-SVC-CCCCCCCCCCCCCCCC
-A KUBE-SVC-CCCCCCCCCCCCCCCC -j KUBE-SEP-DDDDDDDDDDDDDDDD
-A KUBE-SEP-DDDDDDDDDDDDDDDD -p udp -j DNAT --to-destination 198.18.64.3:53
-X KUBE-SVC-AAAAAAAAAAAAAAAA
-X KUBE-SEP-BBBBBBBBBBBBBBBB
COMMIT
",
    // insert, delete by spec and by number, flush, new chain, policy
    "*filter
-I A -p tcp --dport 22 -j ACCEPT
-I A 3 -j LOG --log-prefix \"x: \"
-D A -s 198.18.0.1/32 -j ACCEPT
-D A 1
-N C
-A C -m conntrack --ctstate NEW -j REJECT
-F B
-P FORWARD DROP
-A B -j ACCEPT
COMMIT
",
    // deleting a chain that is still referenced
    "*filter\n:A - [0:0]\n-X A\nCOMMIT\n",
    // deleting a non-empty chain
    "*filter\n-X B\nCOMMIT\n",
    // jump to a chain that does not exist, after a good line
    "*filter\n:B - [0:0]\n-A B -j RETURN\n-A B -j NOPE\nCOMMIT\n",
    // -N of an existing chain
    "*nat\n-N KUBE-SERVICES\nCOMMIT\n",
    // delete a rule that is not there
    "*filter\n-D A -s 198.18.0.9/32 -j ACCEPT\nCOMMIT\n",
    // second table fails: the first stays committed
    "*filter\n:B - [0:0]\nCOMMIT\n*nat\n:X - [0:0]\n-A X -g NOPE\nCOMMIT\n",
];

#[test]
fn apply_restore_agrees_with_iptables_restore_noflush() {
    if !usable() {
        return;
    }
    for variant in ["nft", "legacy"] {
        for (i, delta) in DELTAS.iter().enumerate() {
            let Some(ns) = Netns::new(&format!("{variant}{i}")) else {
                eprintln!("skipping: cannot create a network namespace");
                return;
            };
            let restore = format!("iptables-{variant}-restore");
            let save = format!("iptables-{variant}-save");
            let (ok, _, err) = ns.run(&[&restore], BASE);
            assert!(ok, "{variant}: base failed: {err}");

            let mut model = Ruleset::new(Family::V4);
            let base = RestoreScript::parse(Family::V4, BASE).unwrap();
            model.apply_restore(&base, RestoreMode::default()).unwrap();

            let (kernel_ok, _, kernel_err) = ns.run(&[&restore, "--noflush"], delta);
            let script = RestoreScript::parse(Family::V4, delta).unwrap();
            let model_result = model.apply_restore(&script, RestoreMode { noflush: true });
            assert_eq!(
                kernel_ok,
                model_result.is_ok(),
                "{variant} delta {i}: kernel says {kernel_err:?}, model says {model_result:?}"
            );

            let (ok, saved, err) = ns.run(&[&save], "");
            assert!(ok, "{save}: {err}");
            let kernel = Ruleset::parse(Family::V4, &saved).unwrap();
            for table in ["filter", "nat"] {
                assert_eq!(
                    table_text(&model, table),
                    table_text(&kernel, table),
                    "{variant} delta {i} table {table}"
                );
            }
        }
    }
}

/// iptables-save prints a comment or log prefix that looks like an option without quotes
/// (`--comment -a`); iptables-restore takes it as the value, and so does the parser.
#[test]
fn free_text_values_that_look_like_options_parse_as_iptables_reads_them() {
    use dataplane::iptables::{Match, Target};
    if !usable() {
        return;
    }
    let texts = ["-a", "--dst", "-j"];
    for variant in ["nft", "legacy"] {
        let Some(ns) = Netns::new(&format!("free-{variant}")) else {
            eprintln!("skipping: cannot create a network namespace");
            return;
        };
        let iptables = format!("iptables-{variant}");
        for t in texts {
            let (ok, _, err) = ns.run(
                &[
                    &iptables,
                    "-A",
                    "INPUT",
                    "-m",
                    "comment",
                    "--comment",
                    t,
                    "-j",
                    "LOG",
                    "--log-prefix",
                    t,
                ],
                "",
            );
            assert!(ok, "{iptables} --comment {t}: {err}");
        }
        let save = format!("iptables-{variant}-save");
        let (ok, saved, err) = ns.run(&[&save, "-t", "filter"], "");
        assert!(ok, "{save}: {err}");
        assert!(saved.contains("--comment -a "), "unquoted in {saved}");
        let rs = Ruleset::parse(Family::V4, &saved).unwrap_or_else(|e| panic!("{e}\n{saved}"));
        let rules = &rs.table("filter").unwrap().chain("INPUT").unwrap().rules;
        assert_eq!(rules.len(), texts.len(), "{saved}");
        for (rule, t) in rules.iter().zip(texts) {
            assert_eq!(rule.matches(), &[Match::Comment(t.into())], "{saved}");
            let Some(Target::Log(log)) = rule.target() else {
                panic!("a LOG target: {:?}", rule.target());
            };
            assert_eq!(log.prefix.as_deref(), Some(t), "{saved}");
        }
        // What the model prints back, iptables-restore reads to the same rules.
        let (ok, _, err) = ns.run(&[&format!("{iptables}-restore")], &rs.to_restore());
        assert!(ok, "restore of the model: {err}");
        let (_, again, _) = ns.run(&[&save, "-t", "filter"], "");
        assert_eq!(
            Ruleset::parse(Family::V4, &again).unwrap().to_restore(),
            rs.to_restore()
        );
    }
}
