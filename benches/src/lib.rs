//! Inputs shared by the benchmarks in `benches/`: generated kube-proxy-style dumps and the
//! captured node they are loaded onto. Run the benchmarks with `cargo bench -p benches`
//! (`-- BENCH_NAME` for one); figures are noted on the issues and in docs/performance.md, never
//! asserted in tests.

use std::net::IpAddr;

use dataplane::route::{Route, strip_capture_header};

#[path = "../../dataplane/examples/support/kube300k.rs"]
#[allow(unreachable_pub, dead_code)]
mod kube300k;

/// An `iptables-save` dump of about `rules` rules in kube-proxy's layout (nat table:
/// KUBE-SERVICES, one KUBE-SVC chain per service with 4 endpoints, KUBE-SEP chains with DNAT,
/// and the final NodePort `addrtype LOCAL` rule), and the number of services in it. Service `i`
/// has ClusterIP [`service_vip`]`(i)`, port 80.
pub fn kube_dump(rules: usize) -> (String, usize) {
    let (text, services) = kube300k::generate(rules);
    let text = text.replace(
        "COMMIT\n",
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\nCOMMIT\n",
    );
    (text, services)
}

/// The ClusterIP the generator gives service `i` (198.19.0.0/16).
pub fn service_vip(i: usize) -> IpAddr {
    IpAddr::from([198, 19, ((i >> 8) & 0xff) as u8, (i & 0xff) as u8])
}

/// The captured DUT node of dataplane's trace fixtures (`ip -j` dumps, sysctls), with the pod
/// range routed to a neighbour so forwarded packets have somewhere to go.
pub fn captured_node() -> dataplane::node::NodeState {
    let raw = include_str!("../../dataplane/tests/fixtures/trace/dut-node.json");
    let (_, body) = strip_capture_header(raw);
    let mut node: dataplane::node::NodeState =
        serde_json::from_str(body).expect("the captured node fixture parses");
    node.routes.routes.push(Route::unicast(
        "198.18.64.0/18".parse().expect("net"),
        Some(IpAddr::from([198, 18, 0, 12])),
        Some("eth0"),
    ));
    node
}
