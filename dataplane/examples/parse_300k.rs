//! Measures parsing of a generated kube-proxy-style `iptables-save` dump (about 300k rules):
//! `cargo run --release -p dataplane --example parse_300k [RULES]`. Prints the figures; not a
//! test (no timing assertions), and not a criterion bench (those live in benches/).

use std::time::Instant;

use dataplane::Family;
use dataplane::iptables::{RestoreMode, RestoreScript, Ruleset};

#[path = "support/kube300k.rs"]
mod kube300k;

use kube300k::{generate, name};

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
    let t = Instant::now();
    let mut n = 0usize;
    for line in text.lines() {
        if line.starts_with("-A") {
            n += dataplane::iptables::Rule::parse_spec(
                Family::V4,
                line.split_once(' ')
                    .map_or("", |x| x.1)
                    .split_once(' ')
                    .map_or("", |x| x.1),
            )
            .map(|r| r.matches.len())
            .unwrap_or(0);
        }
    }
    println!("rule specs alone: {:?} ({n} matches)", t.elapsed());
    let t = Instant::now();
    let rs = Ruleset::parse(Family::V4, &text).expect("parse");
    let parse = t.elapsed();
    let nat = rs.table("nat").unwrap();
    println!(
        "parse: {:?} for {} rules in {} chains",
        parse,
        rs.rule_count(),
        nat.chains().len()
    );
    let t = Instant::now();
    let out = rs.to_save();
    println!("to_save: {:?} (identical: {})", t.elapsed(), out == text);
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
