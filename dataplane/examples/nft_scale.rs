//! Measures the nft model at kube-proxy scale: builds an `ip kube-proxy` table with SERVICES
//! services of 4 endpoints each (service-ips map, numgen vmaps, endpoint chains), writes it
//! as JSON and text, reads the JSON back, and evaluates a packet through the service-ips
//! lookup. With `--json FILE`, parses that `nft -j list ruleset` dump instead and reports its
//! size. `cargo run --release -p dataplane --example nft_scale [SERVICES] [--text OUT]`.
//! Prints figures; not a test (no timing assertions).

use std::time::Instant;

use dataplane::Packet;
use dataplane::iptables::NoEnv;
use dataplane::nft::{
    BaseChain, Chain, ChainType, Expr, Hook, Nat, NatKind, NftFamily, Numgen, NumgenMode, Policy,
    Rule, Ruleset, Set, SetElem, SetType, Stmt, Table, Verdict,
};

fn addr(base: u32, n: usize) -> String {
    std::net::Ipv4Addr::from(base + n as u32).to_string()
}

fn generate(services: usize) -> Ruleset {
    const EPS: usize = 4;
    let mut t = Table::new(NftFamily::Ip, "kube-proxy");
    let mut map = Set {
        name: "service-ips".into(),
        key_type: SetType::concat(&["ipv4_addr", "inet_proto", "inet_service"]),
        map: Some(SetType::one("verdict")),
        ..Set::default()
    };
    let key = Expr::concat(vec![
        Expr::payload("ip", "daddr"),
        Expr::meta("l4proto"),
        Expr::payload("th", "dport"),
    ]);
    t.chains.push(Chain::base(
        "nat-prerouting",
        BaseChain {
            chain_type: ChainType::Nat,
            hook: Hook::Prerouting,
            prio: -100,
            policy: Some(Policy::Accept),
            devices: vec![],
        },
        vec![Rule::new(vec![Stmt::Vmap {
            key,
            data: Expr::set_ref("service-ips"),
        }])],
    ));
    t.chains.push(Chain::regular(
        "mark-for-masquerade",
        vec![Rule::new(vec![Stmt::Mangle {
            key: Expr::meta("mark"),
            value: Expr::binop(
                dataplane::nft::BinOp::Or,
                Expr::meta("mark"),
                Expr::Number(0x4000),
            ),
        }])],
    ));
    // ClusterIPs from 198.19.0.0, endpoints from 198.18.64.0 (wrapping inside /18 is fine).
    let cip = u32::from(std::net::Ipv4Addr::new(198, 19, 0, 0));
    let pod = u32::from(std::net::Ipv4Addr::new(198, 18, 64, 0));
    for s in 0..services {
        let svc = format!("service-{s:08}-ns/svc{s}/tcp/p80");
        map.elements.push(SetElem::map(
            Expr::concat(vec![
                Expr::str(addr(cip, s)),
                Expr::str("tcp"),
                Expr::Number(80),
            ]),
            Expr::Verdict(Verdict::Goto(svc.clone())),
        ));
        let mut vmap = Vec::new();
        for e in 0..EPS {
            let ep_ip = addr(pod, (s * EPS + e) % 16000);
            let ep = format!("endpoint-{s:08}-ns/svc{s}/tcp/p80__{ep_ip}/8080");
            vmap.push(SetElem::map(
                Expr::Number(e as u64),
                Expr::Verdict(Verdict::Goto(ep.clone())),
            ));
            let mut dnat = Nat::new(NatKind::Dnat);
            dnat.addr = Some(Expr::str(ep_ip.clone()));
            dnat.port = Some(Expr::Number(8080));
            t.chains.push(Chain::regular(
                ep,
                vec![
                    Rule::new(vec![
                        Stmt::eq(Expr::payload("ip", "saddr"), Expr::str(ep_ip)),
                        Stmt::jump("mark-for-masquerade"),
                    ]),
                    Rule::new(vec![
                        Stmt::eq(Expr::meta("l4proto"), Expr::str("tcp")),
                        Stmt::Nat(dnat),
                    ]),
                ],
            ));
        }
        t.chains.push(Chain::regular(
            svc,
            vec![
                Rule::new(vec![
                    Stmt::eq(Expr::payload("ip", "daddr"), Expr::str(addr(cip, s))),
                    Stmt::eq(Expr::payload("tcp", "dport"), Expr::Number(80)),
                    Stmt::ne(
                        Expr::payload("ip", "saddr"),
                        Expr::prefix("198.18.64.0/18".parse().unwrap()),
                    ),
                    Stmt::jump("mark-for-masquerade"),
                ]),
                Rule::new(vec![Stmt::Vmap {
                    key: Expr::Numgen(Numgen {
                        mode: NumgenMode::Random,
                        modulus: EPS as u32,
                        offset: 0,
                    }),
                    data: Expr::Set(vmap),
                }]),
            ],
        ));
    }
    t.sets.push(map);
    Ruleset {
        tables: vec![t],
        ..Ruleset::default()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--json") {
        let path = &args[i + 1];
        let text = std::fs::read_to_string(path).expect("read dump");
        let t0 = Instant::now();
        let rs = Ruleset::from_json(&text).expect("parse dump");
        println!(
            "parsed {path}: {} bytes, {} chains, {} rules in {:?}",
            text.len(),
            rs.tables.iter().map(|t| t.chains.len()).sum::<usize>(),
            rs.rule_count(),
            t0.elapsed()
        );
        return;
    }
    let services: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let t0 = Instant::now();
    let rs = generate(services);
    println!(
        "built {services} services: {} chains, {} rules in {:?}",
        rs.tables[0].chains.len(),
        rs.rule_count(),
        t0.elapsed()
    );
    let t0 = Instant::now();
    let v = rs.to_json();
    println!("to_json (value): {:?}", t0.elapsed());
    let t0 = Instant::now();
    let s = v.to_string();
    println!("value to string: {} bytes in {:?}", s.len(), t0.elapsed());
    let t0 = Instant::now();
    let v2: serde_json::Value = serde_json::from_str(&s).unwrap();
    println!("serde_json::from_str to Value: {:?}", t0.elapsed());
    drop(v2);
    let t0 = Instant::now();
    let json = rs.to_json_string();
    println!("to_json_string: {} bytes in {:?}", json.len(), t0.elapsed());
    let t0 = Instant::now();
    let back = Ruleset::from_json(&json).unwrap();
    println!("from_json: {:?}", t0.elapsed());
    assert_eq!(back, rs);
    let t0 = Instant::now();
    let text = rs.to_text().unwrap();
    println!("to_text: {} bytes in {:?}", text.len(), t0.elapsed());
    if let Some(i) = args.iter().position(|a| a == "--text") {
        std::fs::write(&args[i + 1], &text).expect("write text");
    }
    let t = &rs.tables[0];
    let rule = &t.chain("nat-prerouting").unwrap().rules[0];
    let last = std::net::Ipv4Addr::from(
        u32::from(std::net::Ipv4Addr::new(198, 19, 0, 0)) + services as u32 - 1,
    );
    let pkt = Packet::tcp("198.18.0.100".parse().unwrap(), last.into(), 80).arriving_on("eth0");
    let n = 20;
    let t0 = Instant::now();
    for _ in 0..n {
        let out = rule.eval(t, &pkt, &NoEnv);
        assert!(out.branches[0].verdict.is_some());
    }
    println!(
        "eval service-ips lookup (last of {services} elements): {:?} per packet",
        t0.elapsed() / n
    );
}
