//! Measures parsing of a generated kube-proxy-style `iptables-save` dump (about 300k rules),
//! lazily (what diag and the tracer use) and strictly (every spec typed and checked):
//! `cargo run --release -p dataplane --example parse_300k [RULES]`. Prints the figures; not a
//! test (no timing assertions), and not a criterion bench (those live in benches/).

use std::time::{Duration, Instant};

use dataplane::Family;
use dataplane::iptables::{RestoreMode, RestoreScript, Ruleset};

#[path = "support/kube300k.rs"]
mod kube300k;

use kube300k::{generate, name};

/// CPU time this thread has run (user + system, from `/proc/thread-self/stat`, 10 ms ticks):
/// on a loaded machine the wall time also counts waiting for a core.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // fields after the command name: state is field 3, utime 14, stime 15
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn main() {
    let target: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300_000);
    let (text, services) = generate(target);
    println!(
        "generated {} services, {:.1} MB",
        services,
        text.len() as f64 / 1e6
    );
    let runs = 11;
    let mut lazy = Vec::new();
    let mut cpu = Duration::ZERO;
    let mut drop_cpu = Duration::ZERO;
    for _ in 0..runs {
        let (c, t) = (cpu_time(), Instant::now());
        let r = Ruleset::parse_lazy(Family::V4, &text).expect("parse_lazy");
        lazy.push(t.elapsed());
        cpu += cpu_time() - c;
        let c = cpu_time();
        drop(r);
        drop_cpu += cpu_time() - c;
    }
    let rs = Ruleset::parse_lazy(Family::V4, &text).expect("parse_lazy");
    lazy.sort();
    println!(
        "parse_lazy (one pass, specs typed on use): median {:?} of {runs} (best {:?}, worst {:?}); \
         CPU {:?} a run (dropping the ruleset: {:?}) for {} rules",
        lazy[runs / 2],
        lazy[0],
        lazy[runs - 1],
        cpu / runs as u32,
        drop_cpu / runs as u32,
        rs.rule_count()
    );
    let t = Instant::now();
    rs.validate().expect("validate");
    println!("validate (types every spec): {:?}", t.elapsed());
    let t = Instant::now();
    let strict = Ruleset::parse(Family::V4, &text).expect("parse");
    let parse = t.elapsed();
    assert_eq!(strict.rule_count(), rs.rule_count());
    let nat = rs.table("nat").unwrap();
    println!(
        "parse (strict: parse_lazy + validate): {:?} for {} rules in {} chains",
        parse,
        rs.rule_count(),
        nat.chains().len()
    );
    let fresh = Ruleset::parse_lazy(Family::V4, &text).expect("parse_lazy");
    let t = Instant::now();
    let out = fresh.to_save();
    println!(
        "to_save of the lazy ruleset: {:?} (identical: {})",
        t.elapsed(),
        out == text
    );
    let t = Instant::now();
    let out = strict.to_save();
    println!(
        "to_save of the typed ruleset: {:?} (identical: {})",
        t.elapsed(),
        out == text
    );
    let t = Instant::now();
    let mut hits = 0;
    for s in 0..services {
        hits += usize::from(nat.chain(&name("SVC", s)).is_some());
    }
    println!(
        "{} chain lookups: {:?} ({hits} found)",
        services,
        t.elapsed()
    );
    // A partial sync touching one service, merged into the big table.
    let svc = name("SVC", 7);
    let delta = format!(
        "*nat\n:KUBE-SERVICES - [0:0]\n:{svc} - [0:0]\n-A {svc} -j KUBE-MARK-MASQ\nCOMMIT\n"
    );
    let script = RestoreScript::parse(Family::V4, &delta).unwrap();
    let mut rs = rs;
    let t = Instant::now();
    rs.apply_restore(&script, RestoreMode { noflush: true })
        .unwrap();
    println!(
        "apply_restore --noflush of a 1-service delta: {:?}",
        t.elapsed()
    );
}
