//! The FIB writer against the real kernel (root; a lab namespace): batches of route
//! operations, with the kernel's refusals reported per route and the rest of the batch done.
//!
//! ```text
//!   node1 198.18.0.11 ── rack ── tor 198.18.0.1      routes written in node1's namespace
//! ```

mod support;

use std::net::{IpAddr, Ipv4Addr};

use bgpd::fib::writer::{BATCH, FibWriter};
use bgpd::fib::{FibNextHop, FibOp, KernelRoute, RT_TABLE_MAIN, RTPROT_BGP};
use ipnet::IpNet;
use support::kernel_routes;

fn route(prefix: &str, gateways: &[Ipv4Addr]) -> KernelRoute {
    KernelRoute {
        prefix: prefix.parse::<IpNet>().unwrap(),
        table: RT_TABLE_MAIN,
        protocol: RTPROT_BGP,
        metric: 20,
        next_hops: gateways
            .iter()
            .map(|g| FibNextHop {
                gateway: IpAddr::V4(*g),
                ifindex: None,
                weight: 1,
            })
            .collect(),
    }
}

/// /32s in 198.19.0.0/16 (the lab's links are in 198.18.0.0/24).
fn prefix(i: u32) -> String {
    format!(
        "{}/32",
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i)
    )
}

#[test]
fn batches_install_every_route_and_name_each_one_the_kernel_refused() {
    let lab = support::lab("bgpd-fibw");
    let n1 = lab.node("node1").unwrap();
    let tor = lab.router("tor").unwrap();
    let tor2 = lab.router("tor2").unwrap();
    lab.segment("rack", &[&n1, &tor, &tor2]).unwrap();
    let gw = Ipv4Addr::new(198, 18, 0, 1);
    let gw2 = Ipv4Addr::new(198, 18, 0, 2);
    let n = 3 * BATCH as u32 + 7;
    // more than three batches; one route via a gateway on no link (ENETUNREACH) in the middle
    // of the second batch, and one added twice (EEXIST) in the third
    let mut ops: Vec<FibOp> = (0..n)
        .map(|i| FibOp::Add(route(&prefix(i), &[gw])))
        .collect();
    let unreachable = route("198.18.250.0/24", &[Ipv4Addr::new(198, 18, 200, 1)]);
    ops.insert(BATCH + 10, FibOp::Add(unreachable.clone()));
    ops.insert(2 * BATCH + 20, FibOp::Add(route(&prefix(5), &[gw])));
    let results = n1
        .run(|| {
            let mut w = FibWriter::open().expect("netlink socket");
            w.apply(&ops)
        })
        .unwrap();
    assert_eq!(results.len(), ops.len());
    let refused: Vec<(usize, String)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e.to_string())))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].0, BATCH + 10);
    assert!(
        refused[0].1.contains("198.18.250.0/24") && refused[0].1.contains("unreachable"),
        "{refused:?}"
    );
    assert_eq!(refused[1].0, 2 * BATCH + 20);
    assert!(
        refused[1].1.contains(&prefix(5)) && refused[1].1.contains("exists"),
        "{refused:?}"
    );
    let installed = kernel_routes(&n1, false);
    assert_eq!(
        installed.len(),
        n as usize,
        "every other route is in the kernel"
    );
    assert!(
        installed
            .iter()
            .all(|(_, gws)| gws == &vec!["198.18.0.1".to_string()])
    );

    // replace: two next hops (ECMP) for the first route; then delete everything
    let ecmp = route(&prefix(0), &[gw, gw2]);
    let mut more = vec![FibOp::Replace(ecmp)];
    let results = n1.run(|| FibWriter::open().unwrap().apply(&more)).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // `ip` prints a /32 without its length
    let mut hops = support::kernel_route(&n1, prefix(0).trim_end_matches("/32")).unwrap();
    hops.sort();
    assert_eq!(hops, vec!["198.18.0.1", "198.18.0.2"]);
    more = (0..n)
        .map(|i| FibOp::Delete(route(&prefix(i), &[])))
        .collect();
    let results = n1.run(|| FibWriter::open().unwrap().apply(&more)).unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert!(kernel_routes(&n1, false).is_empty());
    // deleting again: each one is refused by name (ESRCH), none is lost in the batch
    let results = n1
        .run(|| FibWriter::open().unwrap().apply(&more[..3]))
        .unwrap();
    assert!(
        results.iter().all(|r| r
            .as_ref()
            .is_err_and(|e| e.to_string().contains("No such process"))),
        "{results:?}"
    );
}
