//! diag never writes: every live `diag` command a test runs (one naming `--netns`) is framed
//! by a snapshot of each namespace it names, before and after, and a difference fails the
//! test with a diff. The snapshot is what a node's own tools print of everything diag could
//! change: both iptables backends and families, the nft ruleset, ipsets, routes of all
//! tables, policy rules, addresses, links, neighbours, the sysctls diag reads (all of
//! `net.ipv4`, `net.ipv6`, `net.netfilter`, `net.core`, `net.bridge`), the conntrack table
//! and its count (which may only lose entries whose timers ran out).

/// What the snapshot runs, in the namespace.
const STATE: &[&str] = &[
    "iptables-nft-save",
    "ip6tables-nft-save",
    "iptables-legacy-save",
    "ip6tables-legacy-save",
    "nft list ruleset",
    "ipset save",
    "ip -j -4 route show table all",
    "ip -j -6 route show table all",
    "ip -j -4 rule show",
    "ip -j -6 rule show",
    "ip -j addr show",
    "ip -j -d link show",
    "ip -j neigh show",
    "sysctl -a --pattern '^net\\.(ipv4|ipv6|netfilter|core|bridge)' 2>/dev/null",
    "conntrack -L -o extended 2>/dev/null",
    "conntrack -C 2>/dev/null",
    "cat /proc/net/ip_tables_names /proc/net/ip6_tables_names 2>/dev/null; true",
];

/// One snapshot: (command, normalised output).
pub type State = Vec<(String, String)>;

/// Everything diag could change in network namespace `ns`: counters and the neighbour
/// cache's NUD state (which age on the kernel's clock) left out; conntrack timers kept for
/// [`assert_unchanged`].
pub fn netns_state(ns: &str) -> State {
    STATE
        .iter()
        .map(|c| {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", ns, "sh", "-c", c])
                .output()
                .unwrap_or_else(|e| panic!("{c} in {ns}: {e}"));
            let out = String::from_utf8_lossy(&out.stdout);
            let text: String = out
                .lines()
                .filter(|l| !l.starts_with("# Generated") && !l.starts_with("# Completed"))
                .map(|l| normalise(c, l))
                .collect::<Vec<_>>()
                .join("\n");
            (c.to_string(), text)
        })
        .collect()
}

fn normalise(cmd: &str, l: &str) -> String {
    if cmd.starts_with("sysctl") && l.starts_with("net.netfilter.nf_conntrack_count") {
        // counts down as entries expire; compared as `conntrack -C` is
        String::new()
    } else if cmd.starts_with("ip -j neigh") {
        // the NUD state ages on the kernel's timers (REACHABLE -> STALE after reachable_time,
        // 15-45 s): compare the entries without it
        match serde_json::from_str::<Vec<serde_json::Value>>(l) {
            Ok(mut v) => {
                for e in &mut v {
                    if let Some(o) = e.as_object_mut() {
                        o.remove("state");
                    }
                }
                serde_json::to_string(&v).unwrap_or_else(|_| l.to_string())
            }
            Err(_) => l.to_string(),
        }
    } else if cmd.contains("-save") && l.starts_with(':') {
        // chain lines carry packet counters: `:INPUT ACCEPT [12:720]`
        match l.rfind(" [") {
            Some(i) => l[..i].to_string(),
            None => l.to_string(),
        }
    } else if cmd.starts_with("nft") && l.contains("counter packets") {
        match l.find("counter packets") {
            Some(i) => l[..i].to_string(),
            None => l.to_string(),
        }
    } else {
        l.to_string()
    }
}

/// A conntrack entry without its timer, and the timer (seconds left).
fn ct_entry(l: &str) -> (String, u64) {
    // ipv4 2 tcp 6 <timeout> ...
    let mut w: Vec<&str> = l.split_whitespace().collect();
    let timer = if w.len() > 4 { w.remove(4) } else { "0" };
    (w.join(" "), timer.parse().unwrap_or(0))
}

/// Whether the conntrack table `after` can follow from `before` by expiry alone within
/// `elapsed`: no entry added or changed, an entry gone only if its timer could have run out.
fn ct_problem(before: &str, after: &str, elapsed: std::time::Duration) -> Option<String> {
    let old: std::collections::BTreeMap<String, u64> = before.lines().map(ct_entry).collect();
    let new: std::collections::BTreeSet<String> = after.lines().map(|l| ct_entry(l).0).collect();
    if let Some(e) = new.iter().find(|e| !old.contains_key(*e)) {
        return Some(format!("entry added or changed: {e}"));
    }
    let limit = elapsed.as_secs() + 2;
    old.iter()
        .find(|(e, timer)| !new.contains(*e) && **timer > limit)
        .map(|(e, timer)| format!("entry with {timer} s left gone after {elapsed:?}: {e}"))
}

/// Panics with a diff of the first command whose output differs. Conntrack may only lose
/// entries whose timers ran out meanwhile (`elapsed` since `before` was taken).
pub fn assert_unchanged(what: &str, before: &State, after: &State, elapsed: std::time::Duration) {
    for ((cmd, x), (_, y)) in before.iter().zip(after) {
        if cmd.starts_with("conntrack -L") {
            if let Some(p) = ct_problem(x, y, elapsed) {
                panic!("{what}: `{cmd}`: {p}");
            }
            continue;
        }
        if cmd.starts_with("conntrack -C") {
            let n = |t: &str| t.trim().parse::<u64>().unwrap_or(0);
            assert!(n(y) <= n(x), "{what}: conntrack count grew from {x} to {y}");
            continue;
        }
        if x != y {
            let d = similar::TextDiff::from_lines(x, y);
            panic!(
                "{what}: `{cmd}` changed:\n{}",
                d.unified_diff().context_radius(2)
            );
        }
    }
}

/// The namespaces a diag command line works in live: the `NS` of each `--netns NS[=NODE]`.
pub fn live_namespaces<S: AsRef<str>>(args: &[S]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(a) = it.next() {
        let v = match a.strip_prefix("--netns") {
            Some("") => it.next(),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        if let Some(v) = v {
            let ns = v.split('=').next().unwrap_or(v).to_string();
            if !out.contains(&ns) {
                out.push(ns);
            }
        }
    }
    out
}
