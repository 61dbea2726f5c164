//! Kernel vs tracer on generated rulesets (NEEDS ROOT: builds a lab in network namespaces).
//!
//! proptest draws a small filter table (FORWARD, INPUT, two user chains; see
//! `system_tests::generate`) and a request; each case is loaded into the DUT, captured, traced and
//! sent for real. 48 cases from a fixed seed (`PROPTEST_CASES` and `SEED` change them); a
//! failure is shrunk and printed with its ruleset and trace.

#![allow(missing_docs)]

use std::net::IpAddr;

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use system_tests::generate::{self, Pool};
use system_tests::{DutLab, From, Runner};

#[test]
fn kernel_differential_generated() {
    let lab = DutLab::build("diffprop").expect("build the lab (needs root)");
    let ip4 = |h: &lab::Host| IpAddr::V4(h.ipv4().expect("ipv4"));
    let ep: Vec<IpAddr> = lab.eps.iter().map(ip4).collect();
    let (dut, ext1, ext2) = (ip4(&lab.dut), ip4(&lab.ext1), ip4(&lab.ext2));
    let client = ip4(&lab.client);
    let pool = Pool {
        nets: vec![
            format!("{client}/32"),
            "198.18.0.0/24".into(),
            "198.18.64.0/18".into(),
            format!("{}/32", ep[0]),
            format!("{}/32", ep[1]),
            format!("{ext1}/32"),
            "198.18.0.0/15".into(),
        ],
        in_ifs: vec![
            lab.dut_if("net"),
            lab.dut_if("ep1"),
            lab.dut_if("ext1"),
            "cali+".into(),
        ],
        out_ifs: vec![
            lab.dut_if("ep2"),
            lab.dut_if("ext2"),
            "cali+".into(),
            lab.dut_if("ext1"),
        ],
        targets: vec![
            (From::Client, ep[0]),
            (From::Client, ep[1]),
            (From::Client, ep[2]),
            (From::Client, ext1),
            (From::Client, ext2),
            (From::Client, dut),
            (From::Pod(0), ep[1]),
            (From::Ext1, ep[2]),
            (From::Ext1, dut),
        ],
    };
    let sets = generate::ipsets(&ep, ext1);
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let seed: u8 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let r = Runner::new(&lab);
    let start = std::time::Instant::now();
    let n = std::cell::Cell::new(0u32);
    let result = runner.run(
        &(generate::ruleset(&pool), generate::request(&pool)),
        |(g, req)| {
            n.set(n.get() + 1);
            let case = req.case(&g, &sets);
            let rep = r.run(&case);
            if std::env::var("SHOW").is_ok() {
                println!(
                    "--- {:?} {}\n{}{}\n",
                    rep.elapsed,
                    rep.detail,
                    g.text(),
                    rep.trace
                );
            }
            if rep.ok {
                Ok(())
            } else {
                Err(TestCaseError::fail(format!(
                    "{}\n--- ruleset ({:?})\n{}--- trace\n{}",
                    rep.detail,
                    g.backend,
                    g.text(),
                    rep.trace
                )))
            }
        },
    );
    println!(
        "{} generated cases (shrinking included) in {:?}",
        n.get(),
        start.elapsed()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
