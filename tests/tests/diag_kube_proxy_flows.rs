//! kube-proxy-rs' own output traced by diag: for every row of kube-proxy-rs' packet-flow table
//! (`kube-proxy-rs/tests/flow_table/mod.rs`, compiled in here so there is one table), the
//! golden rules of its case (`kube-proxy-rs/tests/golden/iptables/CASE-ipv{4,6}.rules`,
//! restored into a ruleset and printed as `iptables-save` prints it) go into a diag bundle for
//! that table's node-a (the same links, addresses, routes and sysctls, as `ip -j` and `sysctl`
//! print them); diag reads the bundle (`Snapshot::from_bundle`), traces the row's packet
//! through it (`diag::cluster::trace`), and must reach the endpoints the row expects, or drop
//! or reject it, masquerading exactly where the row says.
//!
//! node-a alone is the cluster, so a packet forwarded toward node-b or node-c leaves the known
//! nodes; its destination then is the endpoint.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use dataplane::iptables::{RestoreMode, RestoreScript, Ruleset};
use dataplane::trace::{Effect, Verdict};
use dataplane::{Family, Packet, Protocol};
use diag::bundle::{Bundle, FileEntry, FileStatus, Manifest, Part};
use diag::cluster::{self, Cluster, ClusterTrace, Outcome};
use diag::snapshot::Snapshot;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("address {s}"))
}

/// One row of the flow table.
#[derive(Debug)]
struct Row {
    case: String,
    name: String,
    src: String,
    proto: Protocol,
    dst: String,
    dport: u16,
    iif: Option<String>,
    output: String,
    masq: bool,
}

/// The flow table of kube-proxy-rs' tests, one copy: its module is compiled in here too.
#[path = "../../kube-proxy-rs/tests/flow_table/mod.rs"]
mod kube_proxy_flows;

/// Every row of kube-proxy-rs' flow table (`flow_table::FLOWS`), owned.
fn flow_table() -> Vec<Row> {
    kube_proxy_flows::FLOWS
        .iter()
        .map(|f| Row {
            case: f.case.to_string(),
            name: f.name.to_string(),
            src: f.src.to_string(),
            proto: f.proto,
            dst: f.dst.to_string(),
            dport: f.dport,
            iif: f.iif.map(str::to_string),
            output: f.output.to_string(),
            masq: f.masq,
        })
        .collect()
}

/// `sysctl -e` as diag collects it: forwarding on, loose rp_filter, route_localnet on.
const SYSCTL: &str = "net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.forwarding = 1\n\
    net.ipv6.conf.all.forwarding = 1\nnet.ipv4.conf.all.rp_filter = 2\n\
    net.ipv4.conf.all.route_localnet = 1\nnet.netfilter.nf_conntrack_tcp_be_liberal = 0\n";

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

/// A diag bundle of node-a holding the golden rules of `case` (iptables-nft, both families),
/// written to `dir` and read back as `diag --bundle` reads it.
fn bundle(case: &str, dir: &Path) -> Snapshot {
    let mut b = Bundle::new(Manifest::new("node-a", "2026-01-01T00:00:00Z"), "golden");
    for (family, fam, part) in [
        (Family::V4, "ipv4", Part::IptablesNftSave),
        (Family::V6, "ipv6", Part::Ip6tablesNftSave),
    ] {
        let path = repo().join(format!(
            "kube-proxy-rs/tests/golden/iptables/{case}-{fam}.rules"
        ));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let script = RestoreScript::parse(family, &text).unwrap();
        let mut rs = Ruleset::new(family);
        rs.apply_restore(&script, RestoreMode { noflush: false })
            .unwrap();
        put(&mut b, part, rs.to_save());
    }
    let d = kube_proxy_flows::routes().to_documents();
    for (part, doc) in [
        (Part::IpLink, &d.link),
        (Part::IpAddr, &d.addr),
        (Part::IpRoute4, &d.route4),
        (Part::IpRoute6, &d.route6),
        (Part::IpRule4, &d.rule4),
        (Part::IpRule6, &d.rule6),
    ] {
        put(&mut b, part, serde_json::to_string(doc).unwrap());
    }
    put(&mut b, Part::Sysctl, SYSCTL.to_string());
    let out = dir.join(case);
    b.write_dir(&out).unwrap();
    let read = Bundle::read(&out).unwrap();
    assert!(read.notes.is_empty(), "{:?}", read.notes);
    Snapshot::from_bundle(&read).unwrap_or_else(|e| panic!("{e}"))
}

/// The flow table's output words for a diag trace: the endpoints reached (a pod, or an
/// address beyond node-a: the packet's destination as it left), `LOCAL a:p`, `DROP`, `REJECT`.
fn output(t: &ClusterTrace) -> String {
    let mut eps = Vec::new();
    let mut other = Vec::new();
    for p in &t.paths {
        match &p.outcome {
            Outcome::DeliveredToPod { to, .. } => eps.push(to.to_string()),
            Outcome::LeftKnownNodes { dst, .. } => eps.push(dst.to_string()),
            Outcome::DeliveredLocal { to, .. } => eps.push(format!("LOCAL {to}")),
            Outcome::Dropped { .. } => other.push(
                match p.hops.last().map(|h| &h.verdict) {
                    Some(Verdict::Rejected { .. }) => "REJECT",
                    _ => "DROP",
                }
                .to_string(),
            ),
            o => other.push(o.kind().to_uppercase()),
        }
    }
    eps.sort();
    eps.dedup();
    other.sort();
    other.dedup();
    let mut parts = Vec::new();
    if !eps.is_empty() {
        parts.push(eps.join(", "));
    }
    parts.extend(other);
    parts.join("; ")
}

fn masqueraded(t: &ClusterTrace) -> bool {
    t.paths.iter().flat_map(|p| &p.hops).any(|h| {
        h.steps.iter().any(|s| {
            matches!(
                s.effect,
                Effect::Snat {
                    masquerade: true,
                    ..
                }
            )
        })
    })
}

#[test]
fn diag_verdicts_match_kube_proxy_rs_flow_table() {
    let rows = flow_table();
    assert!(rows.len() >= 40, "the flow table has {} rows", rows.len());
    let dir = tempfile::tempdir().unwrap();
    let mut clusters: BTreeMap<String, Cluster> = BTreeMap::new();
    let mut failures = Vec::new();
    for r in &rows {
        let c = clusters
            .entry(r.case.clone())
            .or_insert_with(|| Cluster::new(vec![bundle(&r.case, dir.path())], Default::default()));
        let mut p = Packet::with_proto(ip(&r.src), ip(&r.dst), r.proto, r.dport);
        if let Some(i) = &r.iif {
            p = p.arriving_on(i);
        }
        let t = cluster::trace(c, 0, &p, &Default::default());
        let (out, masq) = (output(&t), masqueraded(&t));
        if out != r.output || masq != r.masq {
            failures.push(format!(
                "{} / {}: diag gives {out:?} masq={masq}, the table {:?} masq={}",
                r.case, r.name, r.output, r.masq
            ));
        }
        let total: f64 =
            t.paths.iter().map(|p| p.probability).sum::<f64>() + t.unexplored_probability;
        assert!((total - 1.0).abs() < 1e-9, "{}: p sums to {total}", r.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows differ:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
