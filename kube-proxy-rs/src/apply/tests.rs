use dataplane::Family;

use super::exec::locate_failed_line;
use super::*;

const INPUT: &str = "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-MISSING\nCOMMIT\n";

#[test]
fn failed_line_is_found_in_both_backends_messages() {
    // Captured from iptables 1.8.9 in a throwaway netns with INPUT above.
    let legacy = "iptables-restore v1.8.9 (legacy): Couldn't load target `KUBE-SVC-MISSING':No such file or directory\n\nError occurred at line: 3\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.";
    let nft = "iptables-nft-restore v1.8.9 (nf_tables): Chain 'KUBE-SVC-MISSING' does not exist\nError occurred at line: 4\nTry `iptables-nft-restore -h' or 'iptables-nft-restore --help' for more information.";
    assert_eq!(locate_failed_line(INPUT, legacy), Some(3));
    // nft names the COMMIT; the line jumping to the missing chain is the real culprit.
    assert_eq!(locate_failed_line(INPUT, nft), Some(3));
    assert_eq!(
        locate_failed_line(INPUT, "iptables-restore: line 2 failed"),
        Some(2)
    );
    assert_eq!(locate_failed_line(INPUT, "something else"), None);
    let f = RestoreFailure {
        program: "iptables-nft-restore".into(),
        line: Some(3),
        line_text: None,
        message: "Chain 'KUBE-SVC-MISSING' does not exist".into(),
    }
    .with_input(INPUT);
    assert_eq!(
        f.to_string(),
        "iptables-nft-restore refused the input at line 3 (\"-A KUBE-SERVICES -j KUBE-SVC-MISSING\"): \
         Chain 'KUBE-SVC-MISSING' does not exist"
    );
}

#[test]
fn fake_refuses_a_dangling_jump_naming_the_line_and_keeps_the_table() {
    let mut w = FakeWriter::new(Family::V4);
    w.restore("*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n")
        .unwrap();
    let before = w.save_all();
    let e = w.restore(INPUT).unwrap_err();
    let ApplyError::Restore(f) = e else {
        panic!("{e}")
    };
    assert_eq!(f.line, Some(3));
    assert_eq!(
        f.line_text.as_deref(),
        Some("-A KUBE-SERVICES -j KUBE-SVC-MISSING")
    );
    assert_eq!(w.save_all(), before);
    assert_eq!(w.refused, 1);
}

#[test]
fn jump_rules_and_canaries_are_ensured_once() {
    let mut w = FakeWriter::new(Family::V4);
    assert_eq!(ensure_jump_rules(&mut w).unwrap(), JUMP_RULES.len());
    ensure_canaries(&mut w).unwrap();
    let once = w.save_all();
    assert_eq!(ensure_jump_rules(&mut w).unwrap(), 0);
    ensure_canaries(&mut w).unwrap();
    assert_eq!(w.save_all(), once);
    // Inserted at the top, so the last of the list comes first (as upstream on a fresh node).
    let input = w.ruleset.chain("filter", "INPUT").unwrap();
    let targets: Vec<String> = input
        .rules
        .iter()
        .map(|r| r.spec(Family::V4).rsplit(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        targets,
        [
            "KUBE-FIREWALL",
            "KUBE-PROXY-FIREWALL",
            "KUBE-NODEPORTS",
            "KUBE-EXTERNAL-SERVICES"
        ]
    );
    assert!(missing_canaries(&mut w).unwrap().is_empty());
    w.restore("*mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n")
        .unwrap();
    assert_eq!(missing_canaries(&mut w).unwrap(), ["mangle"]);
}

#[test]
fn cleanup_removes_our_chains_and_jumps_and_nothing_else() {
    let mut w = FakeWriter::new(Family::V4);
    w.restore(
        "*nat\n:OTHER - [0:0]\n-A OTHER -j RETURN\n-A PREROUTING -j OTHER\nCOMMIT\n\
         *filter\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n",
    )
    .unwrap();
    let foreign = w.save("nat").unwrap() + &w.save("filter").unwrap();
    ensure_jump_rules(&mut w).unwrap();
    ensure_canaries(&mut w).unwrap();
    w.restore(
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n\
         :KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]\n\
         -A KUBE-SERVICES -d 198.19.0.10/32 -j KUBE-SVC-AAAAAAAAAAAAAAAA\n\
         -A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-BBBBBBBBBBBBBBBB\n\
         -A KUBE-SEP-BBBBBBBBBBBBBBBB -p tcp -j DNAT --to-destination 198.18.65.2:80\nCOMMIT\n",
    )
    .unwrap();
    let done = cleanup(&mut w).unwrap();
    assert_eq!(done.jump_rules, JUMP_RULES.len());
    assert!(
        done.chains
            .contains(&"nat/KUBE-SEP-BBBBBBBBBBBBBBBB".to_string())
    );
    assert!(
        done.chains
            .contains(&"mangle/KUBE-PROXY-CANARY".to_string())
    );
    let left = w.save("nat").unwrap() + &w.save("filter").unwrap();
    assert_eq!(left, foreign, "only foreign rules are left");
    assert!(
        declared_chains(&w.save("mangle").unwrap())
            .iter()
            .all(|c| !c.starts_with("KUBE-"))
    );
    // A second cleanup finds nothing to do.
    assert_eq!(cleanup(&mut w).unwrap(), Cleanup::default());
}

/// A [`FakeWriter`] that counts the `iptables` processes a real writer would run.
struct Counting {
    w: FakeWriter,
    calls: Vec<String>,
}

impl RuleWriter for Counting {
    fn family(&self) -> Family {
        self.w.family()
    }
    fn save(&mut self, table: &str) -> Result<String, ApplyError> {
        self.calls.push(format!("save {table}"));
        self.w.save(table)
    }
    fn restore(&mut self, input: &str) -> Result<(), ApplyError> {
        self.calls.push("restore".into());
        self.w.restore(input)
    }
    fn ensure_chain(&mut self, table: &str, chain: &str) -> Result<bool, ApplyError> {
        self.calls.push(format!("-t {table} -N {chain}"));
        self.w.ensure_chain(table, chain)
    }
    fn ensure_rule_first(
        &mut self,
        table: &str,
        chain: &str,
        args: &[&str],
    ) -> Result<bool, ApplyError> {
        self.calls.push(format!("-t {table} -C/-I {chain}"));
        self.w.ensure_rule_first(table, chain, args)
    }
    fn delete_rule(&mut self, table: &str, chain: &str, args: &[&str]) -> Result<bool, ApplyError> {
        self.calls.push(format!("-t {table} -D {chain}"));
        self.w.delete_rule(table, chain, args)
    }
    fn chain_exists(&mut self, table: &str, chain: &str) -> Result<bool, ApplyError> {
        self.calls.push(format!("-t {table} -S {chain}"));
        self.w.chain_exists(table, chain)
    }
}

/// Each table's save (the fake lists tables in the order they were first written).
fn by_table(w: &mut FakeWriter) -> Vec<String> {
    ["filter", "nat", "mangle"]
        .iter()
        .map(|t| w.save(t).unwrap())
        .collect()
}

#[test]
fn jumps_and_canaries_are_checked_in_one_save_per_table() {
    for family in [Family::V4, Family::V6] {
        // a fresh node: the same rules as one check per chain and rule would leave
        let mut reference = FakeWriter::new(family);
        ensure_jump_rules(&mut reference).unwrap();
        ensure_canaries(&mut reference).unwrap();
        let mut c = Counting {
            w: FakeWriter::new(family),
            calls: Vec::new(),
        };
        let (inserted, _) = ensure_jumps_and_canaries(&mut c).unwrap();
        assert_eq!(inserted, JUMP_RULES.len());
        assert_eq!(by_table(&mut c.w), by_table(&mut reference));

        // a node that has them all: three saves, nothing else, nothing changed
        c.calls.clear();
        let (inserted, nat) = ensure_jumps_and_canaries(&mut c).unwrap();
        assert_eq!(inserted, 0);
        assert_eq!(c.calls, ["save mangle", "save filter", "save nat"]);
        assert_eq!(by_table(&mut c.w), by_table(&mut reference));
        assert!(nat.contains(":KUBE-SERVICES "), "{nat}");

        // someone deleted one jump and a canary: only those are put back, where they were
        c.w.restore(
            "*nat\n-D PREROUTING -m comment --comment \"kubernetes service portals\" \
             -j KUBE-SERVICES\nCOMMIT\n*mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n",
        )
        .unwrap();
        c.calls.clear();
        let (inserted, _) = ensure_jumps_and_canaries(&mut c).unwrap();
        assert_eq!(inserted, 1);
        assert_eq!(
            c.calls,
            [
                "save mangle",
                "-t mangle -N KUBE-PROXY-CANARY",
                "save filter",
                "save nat",
                "-t nat -C/-I PREROUTING"
            ]
        );
        assert_eq!(by_table(&mut c.w), by_table(&mut reference));
    }
}
