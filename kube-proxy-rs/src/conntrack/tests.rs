use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use dataplane::Family;

use super::*;
use crate::model::{self, ModelOptions, ProxyState};
use crate::source::manifest;

/// A UDP ClusterIP+NodePort service `dns` (198.19.0.53:53, NodePort 30053) with the given
/// endpoint IPs, a TCP service `web` with one endpoint, and a UDP service `empty` without.
fn state(dns_endpoints: &[&str], with_empty: bool) -> ProxyState {
    let eps: String = dns_endpoints
        .iter()
        .map(|ip| format!("- addresses: [{ip}]\n  conditions: {{ready: true}}\n"))
        .collect();
    let eps = if eps.is_empty() {
        " []\n".to_string()
    } else {
        format!("\n{eps}")
    };
    let mut text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: dns, namespace: kube-system}}\n\
         spec: {{type: NodePort, clusterIP: 198.19.0.53, externalIPs: [198.19.255.53],\n  \
         ports: [{{name: dns, port: 53, protocol: UDP, nodePort: 30053}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: dns-1, namespace: kube-system, labels: {{kubernetes.io/service-name: dns}}}}\n\
         addressType: IPv4\nports: [{{name: dns, port: 5353, protocol: UDP}}]\nendpoints:{eps}\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: demo}}\n\
         spec: {{clusterIP: 198.19.0.80, ports: [{{port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: web-1, namespace: demo, labels: {{kubernetes.io/service-name: web}}}}\n\
         addressType: IPv4\nports: [{{name: \"\", port: 8080}}]\nendpoints:\n- addresses: [198.18.65.9]\n"
    );
    if with_empty {
        text.push_str(
            "---\napiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: demo}\n\
             spec: {clusterIP: 198.19.0.99, ports: [{port: 99, protocol: UDP}]}\n",
        );
    }
    let m = manifest::parse(Path::new("test.yaml"), &text).unwrap();
    let opts = ModelOptions {
        node_name: "node1".into(),
        ..ModelOptions::default()
    };
    let b = model::build(&m.services, &m.endpoint_slices, None, &opts);
    assert!(b.warnings.is_empty(), "{:?}", b.warnings);
    b.ipv4
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An entry from client `src:40000` to `dst:dport`, answered by `reply_src:reply_sport`.
fn entry(proto: u8, dst: &str, dport: u16, reply_src: &str, reply_sport: u16) -> Entry {
    Entry {
        proto,
        orig: Tuple {
            src: ip("198.18.65.2"),
            dst: ip(dst),
            sport: 40000,
            dport,
        },
        reply: Tuple {
            src: ip(reply_src),
            dst: ip("198.18.65.2"),
            sport: reply_sport,
            dport: 40000,
        },
    }
}

const UDP: u8 = 17;
const TCP: u8 = 6;
const NODE: &str = "198.18.0.11";

fn verdicts(f: &Frontends, entries: &[Entry]) -> Vec<(usize, String, &'static str)> {
    f.stale(entries)
        .into_iter()
        .map(|(i, s, w)| (i, s.to_string(), w.as_str()))
        .collect()
}

#[test]
fn entries_to_gone_endpoints_and_rejected_flows_are_stale_others_are_kept() {
    let old = state(&["198.18.66.2"], true);
    let new = state(&["198.18.66.3"], true);
    let f = Frontends::of(&new, Some(&old), &[ip(NODE), ip("127.0.0.1")]);
    let entries = [
        entry(UDP, "198.19.0.53", 53, "198.18.66.3", 5353), // 0: to the serving endpoint
        entry(UDP, "198.19.0.53", 53, "198.18.66.2", 5353), // 1: to the replaced endpoint
        entry(UDP, "198.19.0.53", 53, "198.19.0.53", 53),   // 2: rejected while 0 endpoints
        entry(UDP, "198.19.255.53", 53, "198.18.66.2", 5353), // 3: external IP, gone endpoint
        entry(UDP, NODE, 30053, "198.18.66.2", 5353),       // 4: NodePort, gone endpoint
        entry(UDP, "198.18.0.99", 30053, "198.18.0.99", 30053), // 5: not to this node
        entry(TCP, "198.19.0.80", 80, "198.18.66.7", 8080), // 6: TCP is left alone
        entry(UDP, "198.19.0.99", 99, "198.18.66.8", 99),   // 7: no endpoints, DNATed
        entry(UDP, "198.19.0.99", 99, "198.19.0.99", 99),   // 8: no endpoints, rejected
        entry(UDP, "198.19.0.54", 53, "198.18.66.2", 5353), // 9: not a service
    ];
    assert_eq!(
        verdicts(&f, &entries),
        [
            (1, "kube-system/dns:dns".into(), "not a serving endpoint"),
            (2, "kube-system/dns:dns".into(), "not a serving endpoint"),
            (3, "kube-system/dns:dns".into(), "not a serving endpoint"),
            (4, "kube-system/dns:dns".into(), "not a serving endpoint"),
            (7, "demo/empty".into(), "service has no endpoints"),
        ]
    );
}

#[test]
fn entries_of_deleted_and_emptied_services_are_stale_when_dnated() {
    let old = state(&["198.18.66.2"], true);
    let new = state(&[], false);
    let f = Frontends::of(&new, Some(&old), &[]);
    let entries = [
        entry(UDP, "198.19.0.53", 53, "198.18.66.2", 5353), // 0: N -> 0
        entry(UDP, "198.19.0.99", 99, "198.18.66.8", 99),   // 1: service deleted
        entry(UDP, "198.19.0.99", 99, "198.19.0.99", 99),   // 2: deleted, never DNATed
        // no local addresses given: NodePort entries to any address count (as upstream)
        entry(UDP, "198.18.0.99", 30053, "198.18.66.2", 5353), // 3
    ];
    assert_eq!(
        verdicts(&f, &entries),
        [
            (0, "kube-system/dns:dns".into(), "service has no endpoints"),
            (1, "demo/empty".into(), "service deleted"),
            (3, "kube-system/dns:dns".into(), "service has no endpoints"),
        ]
    );
}

/// A conntrack table in memory.
#[derive(Default)]
struct Table {
    entries: BTreeMap<u8, Vec<Entry>>,
}

impl ConntrackTable for Table {
    fn list(&mut self, _: Family) -> Result<Vec<Entry>, CtError> {
        Ok(self.entries.values().flatten().copied().collect())
    }

    fn delete(&mut self, _: Family, e: &Entry) -> Result<bool, CtError> {
        let v = self.entries.entry(e.proto).or_default();
        let before = v.len();
        v.retain(|x| x.orig != e.orig);
        Ok(v.len() < before)
    }
}

#[test]
fn reconcile_deletes_the_stale_entries_and_reports_them() {
    let new = state(&["198.18.66.3"], false);
    let f = Frontends::of(&new, None, &[]);
    let mut t = Table::default();
    t.entries.insert(
        UDP,
        vec![
            entry(UDP, "198.19.0.53", 53, "198.18.66.3", 5353),
            // The kernel keys entries by their original tuple: another client port.
            Entry {
                orig: Tuple {
                    sport: 40001,
                    ..entry(UDP, "198.19.0.53", 53, "198.18.66.2", 5353).orig
                },
                reply: Tuple {
                    dport: 40001,
                    ..entry(UDP, "198.19.0.53", 53, "198.18.66.2", 5353).reply
                },
                proto: UDP,
            },
        ],
    );
    let r = reconcile(&mut t, Family::V4, &f).unwrap();
    assert_eq!(r.listed, 2);
    assert_eq!(r.deleted.len(), 1);
    assert_eq!(r.deleted[0].0.reply.src, ip("198.18.66.2"));
    assert_eq!(t.list(Family::V4).unwrap().len(), 1);
    // Nothing UDP to reconcile: the table is not even listed.
    let none = Frontends::default();
    assert_eq!(
        reconcile(&mut t, Family::V4, &none).unwrap(),
        Reconciled::default()
    );
}
