//! Switching proxy modes on a node: each mode, when it starts, removes what the other left
//! (upstream's `CleanupLeftovers`), and `--cleanup` removes both. kube-proxy-rs runs
//! `--once` in node1's namespace with the lab's objects. Needs root; skipped otherwise.

mod daemon_lab;

use daemon_lab::*;

/// Our iptables chains in node1 (both families, both backends), as `table/CHAIN`.
fn kube_chains(w: &World) -> Vec<String> {
    let mut out = Vec::new();
    for tool in [
        "iptables-legacy-save",
        "ip6tables-legacy-save",
        "iptables-nft-save",
        "ip6tables-nft-save",
    ] {
        let o = w.n1.output(&[tool]).unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        let mut table = "";
        for l in text.lines() {
            if let Some(t) = l.strip_prefix('*') {
                table = t;
            }
            if let Some(c) = l.strip_prefix(":KUBE-") {
                out.push(format!(
                    "{tool} {table}/KUBE-{}",
                    c.split(' ').next().unwrap_or("")
                ));
            }
            if l.starts_with("-A ") && l.contains("-j KUBE-") && !l.starts_with("-A KUBE-") {
                out.push(format!("{tool} jump: {l}"));
            }
        }
    }
    out
}

/// The nft tables of kube-proxy in node1 (`ip kube-proxy`, `ip6 kube-proxy`).
fn nft_tables(w: &World) -> Vec<String> {
    w.n1.sh("nft list tables")
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(" kube-proxy"))
        .map(str::to_string)
        .collect()
}

#[test]
fn mode_switch_leaves_only_the_current_modes_rules() {
    if !usable() {
        return;
    }
    let w = World::new("kpms", "nft");
    let dir = w.lab.dir().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    let mut objects = vec![node1()];
    objects.extend(web());
    objects.extend(features());
    put(&dir, &objects);
    let manifests = format!("--manifests={}", dir.display());
    let once = |mode: &str| {
        let o = w.run(
            &w.base_flags(),
            &[&manifests, "--once", &format!("--proxy-mode={mode}")],
        );
        assert!(
            o.status.success(),
            "{mode} --once failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };

    once("iptables");
    assert!(!kube_chains(&w).is_empty(), "iptables mode wrote no chains");
    assert!(nft_tables(&w).is_empty());
    greeting(w.b.tcp_connect(ip("198.19.0.10"), 80, T), "iptables mode");

    once("nftables");
    assert_eq!(kube_chains(&w), Vec::<String>::new(), "iptables leftovers");
    assert_eq!(
        nft_tables(&w),
        vec!["table ip kube-proxy", "table ip6 kube-proxy"]
    );
    greeting(w.b.tcp_connect(ip("198.19.0.10"), 80, T), "nftables mode");

    once("iptables");
    assert!(
        nft_tables(&w).is_empty(),
        "nftables leftovers: {:?}",
        nft_tables(&w)
    );
    assert!(!kube_chains(&w).is_empty());
    greeting(
        w.b.tcp_connect(ip("198.19.0.10"), 80, T),
        "iptables mode again",
    );

    // --cleanup removes both modes' rules.
    once("nftables");
    let o = w.run(&w.base_flags(), &["--cleanup"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(nft_tables(&w).is_empty());
    assert_eq!(kube_chains(&w), Vec::<String>::new());
}
