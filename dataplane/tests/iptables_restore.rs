//! The restore merge as the kernel does it (behaviour checked with iptables 1.8.9 in a netns;
//! `iptables_kernel.rs` compares against the real tool).

use dataplane::Family;
use dataplane::iptables::{Policy, RestoreError, RestoreMode, RestoreScript, Ruleset};

const BASE: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A INPUT -j A
-A A -s 198.18.0.1/32 -j ACCEPT
-A A -s 198.18.0.2/32 -j ACCEPT
-A B -j DROP
COMMIT
";

const NOFLUSH: RestoreMode = RestoreMode { noflush: true };

fn base() -> Ruleset {
    let mut rs = Ruleset::new(Family::V4);
    let script = RestoreScript::parse(Family::V4, BASE).unwrap();
    rs.apply_restore(&script, RestoreMode::default()).unwrap();
    rs
}

fn apply(rs: &mut Ruleset, text: &str, mode: RestoreMode) -> Result<(), RestoreError> {
    let script = RestoreScript::parse(Family::V4, text).map_err(RestoreError::from)?;
    rs.apply_restore(&script, mode)
}

/// The rules of a table, one `-A` line each, without declarations.
fn rules(rs: &Ruleset, table: &str) -> Vec<String> {
    let mut one = Ruleset::new(rs.family);
    one.tables.push(rs.table(table).unwrap().clone());
    one.to_restore()
        .lines()
        .filter(|l| l.starts_with("-A"))
        .map(String::from)
        .collect()
}

fn chains(rs: &Ruleset, table: &str) -> Vec<String> {
    rs.table(table)
        .unwrap()
        .chains()
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

#[test]
fn noflush_declaration_flushes_only_that_chain() {
    let mut rs = base();
    apply(
        &mut rs,
        "*filter\n:A - [0:0]\n-A A -j RETURN\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap();
    assert_eq!(
        rules(&rs, "filter"),
        ["-A INPUT -j A", "-A A -j RETURN", "-A B -j DROP"]
    );
}

#[test]
fn noflush_adds_a_chain_and_appends_to_an_undeclared_existing_one() {
    let mut rs = base();
    apply(
        &mut rs,
        "*filter\n:C - [0:0]\n-A C -j RETURN\n-A B -j RETURN\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap();
    assert_eq!(
        chains(&rs, "filter"),
        ["INPUT", "FORWARD", "OUTPUT", "A", "B", "C"]
    );
    assert_eq!(
        rules(&rs, "filter"),
        [
            "-A INPUT -j A",
            "-A A -s 198.18.0.1/32 -j ACCEPT",
            "-A A -s 198.18.0.2/32 -j ACCEPT",
            "-A B -j DROP",
            "-A B -j RETURN",
            "-A C -j RETURN"
        ]
    );
}

#[test]
fn builtin_declaration_sets_the_policy_without_flushing() {
    let mut rs = base();
    apply(
        &mut rs,
        "*filter\n:INPUT DROP [0:0]\n:OUTPUT - [0:0]\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap();
    assert_eq!(
        rs.chain("filter", "INPUT").unwrap().policy,
        Some(Policy::Drop)
    );
    assert_eq!(
        rs.chain("filter", "OUTPUT").unwrap().policy,
        Some(Policy::Accept)
    );
    assert_eq!(rules(&rs, "filter").len(), 4);
}

#[test]
fn without_noflush_the_table_is_replaced() {
    let mut rs = base();
    apply(&mut rs, "*filter\n:INPUT DROP [0:0]\nCOMMIT\n", NOFLUSH).unwrap();
    apply(
        &mut rs,
        "*filter\n:Y - [0:0]\n-A FORWARD -j Y\nCOMMIT\n",
        RestoreMode::default(),
    )
    .unwrap();
    assert_eq!(chains(&rs, "filter"), ["INPUT", "FORWARD", "OUTPUT", "Y"]);
    assert_eq!(rules(&rs, "filter"), ["-A FORWARD -j Y"]);
    // As iptables-nft does: built-in policies not declared go back to ACCEPT.
    assert_eq!(
        rs.chain("filter", "INPUT").unwrap().policy,
        Some(Policy::Accept)
    );
}

#[test]
fn delete_chain_insert_delete_rules() {
    let mut rs = base();
    apply(
        &mut rs,
        "*filter\n-X B\n-I A -j LOG\n-I A 2 -j RETURN\n-D A -s 198.18.0.2 -j ACCEPT\n-D A 1\n-N C\n-A C -j DROP\n-F C\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap_err(); // B is not empty: the kernel refuses -X
    assert_eq!(rules(&rs, "filter").len(), 4, "state unchanged");
    apply(
        &mut rs,
        "*filter\n:B - [0:0]\n-X B\n-I A -j LOG\n-I A 2 -j RETURN\n-D A -s 198.18.0.2 -j ACCEPT\n-D A 1\n-N C\n-A C -j DROP\n-F C\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap();
    assert_eq!(
        chains(&rs, "filter"),
        ["INPUT", "FORWARD", "OUTPUT", "A", "C"]
    );
    assert_eq!(
        rules(&rs, "filter"),
        [
            "-A INPUT -j A",
            "-A A -j RETURN",
            "-A A -s 198.18.0.1/32 -j ACCEPT"
        ]
    );
}

#[test]
fn dangling_jump_is_rejected_with_its_line_and_nothing_changes() {
    let mut rs = base();
    let before = rs.clone();
    let err = apply(
        &mut rs,
        "*filter\n:A - [0:0]\n-A A -j RETURN\n-A A -j NOPE\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap_err();
    assert_eq!(
        err,
        RestoreError::DanglingJump {
            line: 4,
            table: "filter".into(),
            target: "NOPE".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "line 4: rule jumps to chain \"NOPE\", which does not exist in table filter"
    );
    assert_eq!(rs, before);
    let err = apply(
        &mut rs,
        "*filter\n:A - [0:0]\n-A A -g NOPE\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap_err();
    assert!(
        matches!(err, RestoreError::DanglingJump { line: 3, .. }),
        "{err}"
    );
    assert_eq!(rs, before);
}

#[test]
fn deleting_a_referenced_or_builtin_chain_is_rejected() {
    let mut rs = base();
    let before = rs.clone();
    let err = apply(&mut rs, "*filter\n:A - [0:0]\n-X A\nCOMMIT\n", NOFLUSH).unwrap_err();
    assert_eq!(
        err,
        RestoreError::ChainReferenced {
            line: 3,
            chain: "A".into(),
            from: "INPUT".into()
        }
    );
    let err = apply(&mut rs, "*filter\n-X INPUT\nCOMMIT\n", NOFLUSH).unwrap_err();
    assert_eq!(
        err,
        RestoreError::BuiltinChain {
            line: 2,
            chain: "INPUT".into()
        }
    );
    let err = apply(&mut rs, "*filter\n-X NOPE\nCOMMIT\n", NOFLUSH).unwrap_err();
    assert!(matches!(err, RestoreError::NoSuchChain { line: 2, .. }));
    // Referenced by a rule of the script itself.
    let err = apply(
        &mut rs,
        "*filter\n:C - [0:0]\n:D - [0:0]\n-A C -j D\n-X D\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap_err();
    assert!(
        matches!(err, RestoreError::ChainReferenced { line: 5, .. }),
        "{err}"
    );
    assert_eq!(rs, before);
    // Unreferenced after the script removes the jump: allowed.
    apply(
        &mut rs,
        "*filter\n:A - [0:0]\n-D INPUT -j A\n-X A\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap();
    assert_eq!(chains(&rs, "filter"), ["INPUT", "FORWARD", "OUTPUT", "B"]);
}

#[test]
fn other_kernel_refusals() {
    let mut rs = base();
    let before = rs.clone();
    type Check = fn(&RestoreError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("*bogus\nCOMMIT\n", |e| {
            matches!(e, RestoreError::UnknownTable { line: 1, .. })
        }),
        ("*filter\n-N B\nCOMMIT\n", |e| {
            matches!(e, RestoreError::ChainExists { line: 2, .. })
        }),
        ("*filter\n-A C -j RETURN\nCOMMIT\n", |e| {
            matches!(e, RestoreError::NoSuchChain { line: 2, .. })
        }),
        ("*filter\n-I A 9 -j RETURN\nCOMMIT\n", |e| {
            matches!(
                e,
                RestoreError::BadIndex {
                    line: 2,
                    index: 9,
                    len: 2,
                    ..
                }
            )
        }),
        ("*filter\n-D A -s 198.18.0.9 -j ACCEPT\nCOMMIT\n", |e| {
            matches!(e, RestoreError::NoSuchRule { line: 2, .. })
        }),
        ("*filter\n:C ACCEPT [0:0]\nCOMMIT\n", |e| {
            matches!(e, RestoreError::BadPolicy { line: 2, .. })
        }),
        ("*filter\n:ACCEPT - [0:0]\nCOMMIT\n", |e| {
            matches!(e, RestoreError::BadChainName { line: 2, .. })
        }),
        (
            "*filter\n:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA - [0:0]\nCOMMIT\n",
            |e| matches!(e, RestoreError::BadChainName { line: 2, .. }),
        ),
        ("*filter\n-P A DROP\nCOMMIT\n", |e| {
            matches!(e, RestoreError::BadPolicy { line: 2, .. })
        }),
        (
            "*filter\n:INPUT RETURN [0:0]\nCOMMIT\n",
            |e| matches!(e, RestoreError::Parse(p) if p.line == 2),
        ),
        (
            "*filter\n:C - [0:0]\n",
            |e| matches!(e, RestoreError::Parse(p) if p.expected == "COMMIT"),
        ),
    ];
    for (script, ok) in cases {
        let err = apply(&mut rs, script, NOFLUSH).unwrap_err();
        assert!(ok(&err), "{script:?}: {err}");
        assert_eq!(rs, before, "{script:?} changed the state");
    }
    // A failing script in replace mode leaves no trace either, also for a table it would create.
    let err = apply(
        &mut rs,
        "*mangle\n:X - [0:0]\n-A X -j NOPE\nCOMMIT\n",
        RestoreMode::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RestoreError::DanglingJump { line: 3, .. }));
    let err = apply(
        &mut rs,
        "*filter\n-A A -j ACCEPT\nCOMMIT\n",
        RestoreMode::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RestoreError::NoSuchChain { line: 2, .. }));
    assert_eq!(rs, before);
    // Declaring a chain twice is accepted (it is just flushed twice).
    apply(
        &mut rs,
        "*filter\n:C - [0:0]\n:C - [0:0]\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap();
}

#[test]
fn tables_before_a_failing_one_stay_committed() {
    let mut rs = base();
    let err = apply(
        &mut rs,
        "*filter\n:A - [0:0]\nCOMMIT\n*nat\n:X - [0:0]\n-A X -j NOPE\nCOMMIT\n",
        NOFLUSH,
    )
    .unwrap_err();
    assert!(matches!(err, RestoreError::DanglingJump { line: 6, .. }));
    assert_eq!(
        rules(&rs, "filter"),
        ["-A INPUT -j A", "-A B -j DROP"],
        "filter committed"
    );
    assert!(rs.table("nat").is_none(), "nat not created");
}

#[test]
fn kube_proxy_partial_sync_deletes_stale_chains() {
    let mut rs = Ruleset::new(Family::V4);
    let full = "*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -m comment --comment \"ns/a:p cluster IP\" -m tcp -p tcp -d 198.19.0.1 --dport 80 -j KUBE-SVC-AAAAAAAAAAAAAAAA
-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-BBBBBBBBBBBBBBBB
-A KUBE-SEP-BBBBBBBBBBBBBBBB -m tcp -p tcp -j DNAT --to-destination 198.18.64.2:80
COMMIT
";
    apply(&mut rs, full, NOFLUSH).unwrap();
    // The service goes away: KUBE-SERVICES is rewritten, the stale chains flushed and deleted.
    let partial = "*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]
-X KUBE-SVC-AAAAAAAAAAAAAAAA
-X KUBE-SEP-BBBBBBBBBBBBBBBB
COMMIT
";
    apply(&mut rs, partial, NOFLUSH).unwrap();
    assert_eq!(
        chains(&rs, "nat"),
        [
            "PREROUTING",
            "INPUT",
            "OUTPUT",
            "POSTROUTING",
            "KUBE-SERVICES"
        ]
    );
    // Forgetting to flush the SVC chain before deleting the SEP chain fails like the kernel.
    apply(&mut rs, full, NOFLUSH).unwrap();
    let bad = "*nat\n:KUBE-SERVICES - [0:0]\n-X KUBE-SEP-BBBBBBBBBBBBBBBB\nCOMMIT\n";
    let err = apply(&mut rs, bad, NOFLUSH).unwrap_err();
    assert!(
        matches!(err, RestoreError::ChainNotEmpty { line: 3, .. }),
        "{err}"
    );
}

#[test]
fn save_parse_errors_name_the_line() {
    for (text, line, expected) in [
        (
            "*filter\n:INPUT ACCEPT [0:0]\nbogus\nCOMMIT\n",
            3,
            "a chain declaration \":NAME POLICY [p:b]\", a rule \"-A CHAIN …\" or COMMIT",
        ),
        (
            "*filter\n:INPUT ACCEPT [x:0]\nCOMMIT\n",
            2,
            "counters [packets:bytes]",
        ),
        (
            "*filter\n-A NOPE -j ACCEPT\nCOMMIT\n",
            2,
            "a chain declared in this table",
        ),
        ("*filter\n:INPUT ACCEPT [0:0]\n", 2, "COMMIT"),
        (":INPUT ACCEPT [0:0]\n", 1, "a table \"*NAME\" or a comment"),
        ("*filter\n*nat\n", 2, "COMMIT before the next table"),
        (
            "*filter\n:A - [0:0]\n:A - [0:0]\nCOMMIT\n",
            3,
            "each chain declared once",
        ),
        (
            "*filter\n:A - [0:0]\n[1:2 -A A\nCOMMIT\n",
            3,
            "counters [packets:bytes]",
        ),
    ] {
        let e = Ruleset::parse(Family::V4, text).unwrap_err();
        assert_eq!(
            (e.line, e.expected.as_ref()),
            (line, expected),
            "{text:?}: {e}"
        );
    }
    let e =
        Ruleset::parse(Family::V4, "*filter\n:INPUT ACCEPT [0:0]\nbogus\nCOMMIT\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 3, word 1: expected a chain declaration \":NAME POLICY [p:b]\", a rule \"-A CHAIN …\" or COMMIT, found \"bogus\""
    );
}
