//! `diag trace` and `diag check` on a generated node of about 300k iptables rules, and on
//! its nftables equivalent (the same Services in kube-proxy's nftables-mode shape: one
//! `service-ips` verdict-map element per Service, a `numgen` vmap per Service, a `dnat` chain
//! per endpoint). Both are written as diag bundles of the captured DUT node (its links,
//! addresses, routes and sysctls), and of two more nodes (copies of it with their own node
//! address and pod /24, the same rules, as kube-proxy programs every node alike), then the
//! commands run as the binary runs them (arguments parsed by clap, bundles read from disk,
//! output rendered), timed in process: `trace` and `check` on the DUT's bundle, and `check`
//! on the three nodes' bundles together:
//!
//! ```text
//! cargo run --release -p diag --example bench_300k [RULES] [DIR]
//! ```
//! DIR (default: a temporary directory, removed) keeps the bundles (DIR/iptables,
//! DIR/iptables-node2, DIR/iptables-node3, and the same for nft), so that
//! `time target/release/diag trace 198.18.0.101 198.19.83.179 --port 80 --bundle DIR/iptables`
//! repeats a figure by hand. Prints the figures; not a test (no timing assertions). Besides
//! the sentences, tab-separated `BENCH diag key=value...` lines (milliseconds) for
//! `benches/run.sh`.

#[path = "../../dataplane/examples/support/kube300k.rs"]
mod kube300k;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use dataplane::node::NodeState;
use dataplane::route::{Route, strip_capture_header};
use diag::bundle::{Bundle, FileEntry, FileStatus, Manifest, Part};
use diag::cli::{Cli, Command, run_check, run_trace};
use serde_json::{Value, json};

/// The binary's allocator (`src/main.rs`), so the figures are the binary's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const EPS: usize = 4;

fn vip(s: usize) -> String {
    format!("198.19.{}.{}", (s >> 8) & 0xff, s & 0xff)
}

fn endpoint(s: usize, e: usize) -> String {
    let n = s * EPS + e;
    format!("198.18.{}.{}", 64 + n / 250 % 64, 1 + n % 250)
}

/// The nftables equivalent of `kube300k::generate`'s Services, as `nft -j list ruleset`
/// prints kube-proxy's nftables mode; returns the JSON and its rule count.
fn nft_ruleset(services: usize) -> (String, usize) {
    let table = "kube-proxy";
    let chain = |name: &str| json!({"chain": {"family": "ip", "table": table, "name": name}});
    let rule = |chain: &str, expr: Value| json!({"rule": {"family": "ip", "table": table, "chain": chain, "expr": expr}});
    let base = |name: &str, kind: &str, hook: &str, prio: i32| {
        json!({"chain": {"family": "ip", "table": table, "name": name, "type": kind,
                         "hook": hook, "prio": prio, "policy": "accept"}})
    };
    let jump = |to: &str| json!({"jump": {"target": to}});
    let payload = |p: &str, f: &str| json!({"payload": {"protocol": p, "field": f}});
    let eq = |l: Value, r: Value| json!({"match": {"op": "==", "left": l, "right": r}});
    let ne = |l: Value, r: Value| json!({"match": {"op": "!=", "left": l, "right": r}});
    let svc_chain = |s: usize| format!("service-{:08}-ns{s}/svc/tcp/http", s);
    let ep_chain = |s: usize, e: usize| {
        format!(
            "endpoint-{:08}-ns{s}/svc/tcp/http__{}/8080",
            s * EPS + e,
            endpoint(s, e)
        )
    };

    let mut out = vec![
        json!({"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5",
                            "json_schema_version": 1}}),
        json!({"table": {"family": "ip", "name": table}}),
    ];
    let elems: Vec<Value> = (0..services)
        .map(|s| json!([{"concat": [vip(s), "tcp", 80]}, {"goto": {"target": svc_chain(s)}}]))
        .collect();
    out.push(
        json!({"map": {"family": "ip", "name": "service-ips", "table": table,
        "type": ["ipv4_addr", "inet_proto", "inet_service"], "map": "verdict",
        "comment": "ClusterIP, ExternalIP and LoadBalancer IP traffic", "elem": elems}}),
    );
    out.push(base("nat-prerouting", "nat", "prerouting", -100));
    out.push(base("nat-output", "nat", "output", -100));
    out.push(base("nat-postrouting", "nat", "postrouting", 100));
    for c in ["services", "mark-for-masquerade", "masquerading"] {
        out.push(chain(c));
    }
    for s in 0..services {
        out.push(chain(&svc_chain(s)));
        for e in 0..EPS {
            out.push(chain(&ep_chain(s, e)));
        }
    }
    let mut rules = vec![
        rule("nat-prerouting", json!([jump("services")])),
        rule("nat-output", json!([jump("services")])),
        rule("nat-postrouting", json!([jump("masquerading")])),
        rule(
            "services",
            json!([{"vmap": {"key": {"concat": [payload("ip", "daddr"), {"meta": {"key": "l4proto"}},
                payload("th", "dport")]}, "data": "@service-ips"}}]),
        ),
        rule(
            "mark-for-masquerade",
            json!([{"mangle": {"key": {"meta": {"key": "mark"}},
                "value": {"|": [{"meta": {"key": "mark"}}, 16384]}}}]),
        ),
        rule(
            "masquerading",
            json!([eq(json!({"&": [{"meta": {"key": "mark"}}, 16384]}), json!(0)), {"return": null}]),
        ),
        rule(
            "masquerading",
            json!([{"mangle": {"key": {"meta": {"key": "mark"}},
                "value": {"^": [{"meta": {"key": "mark"}}, 16384]}}},
                {"masquerade": {"flags": "fully-random"}}]),
        ),
    ];
    for s in 0..services {
        let sc = svc_chain(s);
        rules.push(rule(
            &sc,
            json!([
                eq(payload("ip", "daddr"), json!(vip(s))),
                eq(payload("tcp", "dport"), json!(80)),
                ne(
                    payload("ip", "saddr"),
                    json!({"prefix": {"addr": "198.18.64.0", "len": 18}})
                ),
                jump("mark-for-masquerade")
            ]),
        ));
        let arms: Vec<Value> = (0..EPS)
            .map(|e| json!([e, {"goto": {"target": ep_chain(s, e)}}]))
            .collect();
        rules.push(rule(
            &sc,
            json!([{"vmap": {"key": {"numgen": {"mode": "random", "mod": EPS, "offset": 0}},
                             "data": {"set": arms}}}]),
        ));
        for e in 0..EPS {
            let ec = ep_chain(s, e);
            let ep = endpoint(s, e);
            rules.push(rule(
                &ec,
                json!([
                    eq(payload("ip", "saddr"), json!(ep)),
                    jump("mark-for-masquerade")
                ]),
            ));
            rules.push(rule(
                &ec,
                json!([eq(json!({"meta": {"key": "l4proto"}}), json!("tcp")),
                       {"dnat": {"addr": ep, "port": 8080}}]),
            ));
        }
    }
    let n = rules.len();
    out.extend(rules);
    (json!({ "nftables": out }).to_string(), n)
}

fn put(b: &mut Bundle, part: Part, content: String) {
    b.put(
        FileEntry {
            part,
            file: None,
            command: part.name().into(),
            status: FileStatus::Ok,
            exit_code: Some(0),
            note: None,
            bytes: None,
            sha256: None,
            truncated: None,
        },
        Some(content.into_bytes()),
    );
}

/// The nodes of the cluster bundle: name, node address (eth0), pod /24 (third octet).
const NODES: [(&str, u8, u8); 3] = [("dut", 11, 65), ("node2", 12, 66), ("node3", 13, 67)];

/// A bundle of node `k` of `NODES` holding `rules` as `part`: the captured DUT node, moved
/// for k > 0 to its own node address and pod /24 (the same in IPv6), with routes to the other
/// nodes' pod CIDRs via their addresses and to the rest of the pod network (198.18.64.0/18,
/// where the Services' endpoints are) via the next node.
fn write_bundle(dir: &Path, k: usize, part: Part, rules: &str) {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dataplane/tests/fixtures/trace/dut-node.json"
    );
    let raw = std::fs::read_to_string(fixture).expect("dut-node.json");
    let (_, body) = strip_capture_header(&raw);
    let (name, addr, pods) = NODES[k];
    let body = body
        .replace("198.18.0.11\"", &format!("198.18.0.{addr}\""))
        .replace("2001:db8::11\"", &format!("2001:db8::{addr}\""))
        .replace("198.18.65.", &format!("198.18.{pods}."))
        .replace("2001:db8:64:1::", &format!("2001:db8:64:{}::", pods - 64));
    let mut node: NodeState = serde_json::from_str(&body).expect("node");
    let next = NODES[(k + 1) % NODES.len()].1;
    node.routes.routes.push(Route::unicast(
        "198.18.64.0/18".parse().expect("prefix"),
        Some(format!("198.18.0.{next}").parse().expect("address")),
        Some("eth0"),
    ));
    // and the other nodes' pod CIDRs via their addresses, as bgpd installs them
    for (j, (_, other, their_pods)) in NODES.iter().enumerate() {
        if j == k {
            continue;
        }
        for (dst, via) in [
            (
                format!("198.18.{their_pods}.0/24"),
                format!("198.18.0.{other}"),
            ),
            (
                format!("2001:db8:64:{}::/64", their_pods - 64),
                format!("2001:db8::{other}"),
            ),
        ] {
            node.routes.routes.push(Route::unicast(
                dst.parse().expect("prefix"),
                Some(via.parse().expect("address")),
                Some("eth0"),
            ));
        }
    }
    let mut b = Bundle::new(Manifest::new(name, "2026-11-22T12:00:00Z"), "generated");
    put(&mut b, part, rules.to_string());
    let d = node.routes.to_documents();
    for (p, doc) in [
        (Part::IpLink, &d.link),
        (Part::IpAddr, &d.addr),
        (Part::IpRoute4, &d.route4),
        (Part::IpRoute6, &d.route6),
        (Part::IpRule4, &d.rule4),
        (Part::IpRule6, &d.rule6),
    ] {
        put(&mut b, p, doc.to_string());
    }
    put(&mut b, Part::Sysctl, node.sysctls.to_text());
    b.write_dir(dir).expect("write bundle");
}

/// Runs `diag ARGS` in process (output discarded); returns the exit status and the time.
fn diag(args: &[&str]) -> (i32, Duration, usize) {
    let cli = Cli::try_parse_from(std::iter::once("diag").chain(args.iter().copied()))
        .expect("arguments");
    let mut out: Vec<u8> = Vec::new();
    let t = Instant::now();
    let code = match &cli.command {
        Command::Trace(a) => run_trace(a, &mut out),
        Command::Check(a) => run_check(a, &mut out),
        Command::Collect(_) => unreachable!("not timed"),
    }
    .expect("diag");
    (code, t.elapsed(), out.len())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let keep = args.next();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = keep
        .as_deref()
        .map(Path::new)
        .unwrap_or(tmp.path())
        .to_path_buf();

    let (ipt, services) = kube300k::generate(target);
    let ipt_rules = ipt.lines().filter(|l| l.starts_with("-A ")).count();
    let (nft, nft_rules) = nft_ruleset(services);
    let ipt_dir = root.join("iptables");
    let nft_dir = root.join("nft");
    let (ipt_len, nft_len) = (ipt.len(), nft.len());
    // one bundle per node: DIR/MODE is the DUT, DIR/MODE-node2 and DIR/MODE-node3 the others
    let node_dir = |dir: &Path, k: usize| match k {
        0 => dir.to_path_buf(),
        _ => dir.with_file_name(format!(
            "{}-{}",
            dir.file_name().and_then(|n| n.to_str()).expect("name"),
            NODES[k].0
        )),
    };
    for k in 0..NODES.len() {
        write_bundle(&node_dir(&ipt_dir, k), k, Part::IptablesNftSave, &ipt);
        write_bundle(&node_dir(&nft_dir, k), k, Part::NftRuleset, &nft);
    }
    drop((ipt, nft));
    let mut report = String::new();
    let mut bench = String::new();
    let _ = writeln!(
        report,
        "{services} Services, {EPS} endpoints each; iptables: {ipt_rules} rules ({} MB \
         iptables-nft-save.txt); nft: {nft_rules} rules ({} MB nft-ruleset.json)",
        ipt_len / 1_000_000,
        nft_len / 1_000_000
    );
    for (mode, dir, rules) in [
        ("iptables", &ipt_dir, ipt_rules),
        ("nft", &nft_dir, nft_rules),
    ] {
        let d = dir.to_str().expect("path");
        for (what, dst, key) in [
            ("first Service", vip(0), "trace_first"),
            ("last Service", vip(services - 1), "trace_last"),
        ] {
            let (code, t, n) = diag(&[
                "trace",
                "198.18.0.101",
                &dst,
                "--port",
                "80",
                "--no-k8s",
                "--bundle",
                d,
            ]);
            let _ = writeln!(
                report,
                "{mode:<8} diag trace 198.18.0.101 {dst}:80 ({what}): {t:.2?}, exit {code}, {n} bytes of output"
            );
            let _ = writeln!(
                bench,
                "BENCH\tdiag\tmode={mode}\tcommand={key}\trules={rules}\tms={:.3}\texit={code}",
                t.as_secs_f64() * 1e3
            );
        }
        let (code, t, n) = diag(&["check", "--bundle", d, "--probe", "198.18.0.101"]);
        let _ = writeln!(
            report,
            "{mode:<8} diag check --probe 198.18.0.101: {t:.2?}, exit {code}, {n} bytes of output"
        );
        let _ = writeln!(
            bench,
            "BENCH\tdiag\tmode={mode}\tcommand=check\trules={rules}\tms={:.3}\texit={code}",
            t.as_secs_f64() * 1e3
        );
        let dirs: Vec<String> = (0..NODES.len())
            .map(|k| node_dir(dir, k).to_str().expect("path").to_string())
            .collect();
        let mut args = vec!["check"];
        for d in &dirs {
            args.extend(["--bundle", d.as_str()]);
        }
        args.extend(["--probe", "198.18.0.101"]);
        let (code, t, n) = diag(&args);
        let _ = writeln!(
            report,
            "{mode:<8} diag check on {} nodes --probe 198.18.0.101: {t:.2?}, exit {code}, {n} bytes of output",
            NODES.len()
        );
        let _ = writeln!(
            bench,
            "BENCH\tdiag\tmode={mode}\tcommand=check{}\trules={rules}\tms={:.3}\texit={code}",
            NODES.len(),
            t.as_secs_f64() * 1e3
        );
    }
    print!("{report}{bench}");
    if keep.is_some() {
        println!("bundles kept in {}", root.display());
    }
}
