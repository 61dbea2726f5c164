//! Table-driven tests of the model: one row per feature, each row's expectation written as
//! the summary a person would read (see `summarize`).

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::*;

const NODE: &str = "node-a";

fn service(ns: &str, name: &str, spec: Value) -> Service {
    service_full(ns, name, json!({}), spec, json!({}))
}

fn service_full(ns: &str, name: &str, meta: Value, spec: Value, status: Value) -> Service {
    let mut metadata = json!({"namespace": ns, "name": name});
    metadata
        .as_object_mut()
        .unwrap()
        .extend(meta.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata, "spec": spec, "status": status,
    }))
    .unwrap()
}

fn slice(
    ns: &str,
    name: &str,
    svc: &str,
    family: &str,
    ports: Value,
    endpoints: Value,
) -> EndpointSlice {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": family, "ports": ports, "endpoints": endpoints,
    }))
    .unwrap()
}

fn node(zone: Option<&str>) -> Node {
    let labels = match zone {
        Some(z) => json!({"topology.kubernetes.io/zone": z}),
        None => json!({}),
    };
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "labels": labels},
        "spec": {"podCIDRs": ["198.18.64.0/24", "2001:db8:40::/64"]},
        "status": {"addresses": [
            {"type": "Hostname", "address": NODE},
            {"type": "InternalIP", "address": "198.18.0.1"},
            {"type": "InternalIP", "address": "2001:db8::1"},
        ]},
    }))
    .unwrap()
}

/// An endpoint entry: `(ip, node, conditions)` with conditions like `"ready"`,
/// `"serving,terminating"`, `"none"` (all false) or `"nil"` (no conditions at all).
fn ep(ip: &str, node: &str, conditions: &str) -> Value {
    let mut e = json!({"addresses": [ip], "nodeName": node});
    let c = match conditions {
        "nil" => return e,
        "ready" => json!({"ready": true, "serving": true, "terminating": false}),
        "serving,terminating" => json!({"ready": false, "serving": true, "terminating": true}),
        "terminating" => json!({"ready": false, "serving": false, "terminating": true}),
        "none" => json!({"ready": false, "serving": false, "terminating": false}),
        other => panic!("unknown conditions {other}"),
    };
    e["conditions"] = c;
    e
}

fn with_hints(mut e: Value, zones: &[&str], nodes: &[&str]) -> Value {
    let z: Vec<Value> = zones.iter().map(|z| json!({"name": z})).collect();
    let n: Vec<Value> = nodes.iter().map(|n| json!({"name": n})).collect();
    e["hints"] = json!({"forZones": z, "forNodes": n});
    e
}

fn http_ports() -> Value {
    json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
}

fn opts() -> ModelOptions {
    ModelOptions {
        node_name: NODE.to_string(),
        cluster_cidrs: vec!["198.18.64.0/18".parse().unwrap()],
        ..ModelOptions::default()
    }
}

fn choice(c: &Choice) -> String {
    match c {
        Choice::PolicyUnused => "-".into(),
        Choice::Used => "used".into(),
        Choice::Excluded(x) => format!("no ({x})"),
    }
}

/// The build as a person would read it: one block per service port and family, then the
/// warnings and skips.
fn summarize(b: &Build) -> String {
    let mut out = String::new();
    for state in [&b.ipv4, &b.ipv6] {
        for (name, sp) in &state.services {
            write!(
                out,
                "{} {name} {} {} {}",
                state.family,
                sp.protocol,
                join_host_port(sp.cluster_ip, sp.port),
                sp.service_type
            )
            .unwrap();
            if let Some(np) = sp.node_port {
                write!(out, " nodePort={np}").unwrap();
            }
            let list = |v: Vec<String>| v.join(",");
            if !sp.external_ips.is_empty() {
                write!(
                    out,
                    " externalIPs={}",
                    list(sp.external_ips.iter().map(|i| i.to_string()).collect())
                )
                .unwrap();
            }
            if !sp.load_balancer_ips.is_empty() {
                write!(
                    out,
                    " lbIPs={}",
                    list(sp.load_balancer_ips.iter().map(|i| i.to_string()).collect())
                )
                .unwrap();
            }
            if !sp.load_balancer_source_ranges.is_empty() {
                write!(
                    out,
                    " sourceRanges={}",
                    list(
                        sp.load_balancer_source_ranges
                            .iter()
                            .map(|i| i.to_string())
                            .collect()
                    )
                )
                .unwrap();
            }
            if let SessionAffinity::ClientIp { timeout_seconds } = sp.session_affinity {
                write!(out, " affinity=ClientIP/{timeout_seconds}s").unwrap();
            }
            if sp.external_traffic_policy == TrafficPolicy::Local {
                write!(out, " eTP=Local").unwrap();
            }
            if sp.internal_traffic_policy == TrafficPolicy::Local {
                write!(out, " iTP=Local").unwrap();
            }
            if let Some(h) = sp.health_check_node_port {
                write!(out, " hcnp={h}").unwrap();
            }
            if let Some(td) = &sp.traffic_distribution {
                write!(out, " trafficDistribution={td:?}").unwrap();
            }
            let set = &state.endpoints[name];
            write!(out, "\n  has_endpoints={}", set.has_endpoints).unwrap();
            if set.topology.mode != TopologyMode::None {
                write!(out, " topology={}", set.topology.mode).unwrap();
            }
            if set.fallback.cluster {
                write!(out, " fallback=cluster").unwrap();
            }
            if set.fallback.local {
                write!(out, " fallback=local").unwrap();
            }
            out.push('\n');
            for e in &set.entries {
                let ep = &e.endpoint;
                writeln!(
                    out,
                    "  {}{} cluster={} local={}",
                    ep.endpoint_string(),
                    if ep.is_local { " (local)" } else { "" },
                    choice(&e.cluster),
                    choice(&e.local)
                )
                .unwrap();
            }
        }
    }
    for w in &b.warnings {
        writeln!(out, "warning: {w}").unwrap();
    }
    for s in &b.skipped {
        writeln!(out, "{s}").unwrap();
    }
    out
}

struct Case {
    name: &'static str,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    zone: Option<&'static str>,
    expect: &'static str,
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let n = node(c.zone);
        let b = build(&c.services, &c.slices, Some(&n), &opts());
        let got = summarize(&b);
        let want = c.expect.trim_start_matches('\n');
        if got != want {
            failures.push(format!("--- case {}:\nwant:\n{want}\ngot:\n{got}", c.name));
        }
        // Input order never matters.
        let mut rs = c.services.clone();
        rs.reverse();
        let mut rl = c.slices.clone();
        rl.reverse();
        assert_eq!(
            build(&rs, &rl, Some(&n), &opts()),
            b,
            "case {}: order-dependent",
            c.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn cluster_ip(ip: &str) -> Value {
    json!({"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80, "targetPort": 8080}]})
}

#[test]
fn service_types_and_addresses() {
    run(vec![
        Case {
            name: "ClusterIP with a local and a remote endpoint; nil conditions mean ready",
            services: vec![service("ns", "web", cluster_ip("198.19.0.10"))],
            slices: vec![slice("ns", "web-1", "web", "IPv4", http_ports(), json!([
                ep("198.18.64.5", NODE, "ready"),
                ep("198.18.65.5", "node-b", "nil"),
            ]))],
            zone: None,
            expect: "
ipv4 ns/web:http tcp 198.19.0.10:80 ClusterIP
  has_endpoints=true
  198.18.64.5:8080 (local) cluster=used local=-
  198.18.65.5:8080 cluster=used local=-
",
        },
        Case {
            name: "NodePort, unnamed port, protocol defaults to TCP",
            services: vec![service("ns", "np", json!({
                "type": "NodePort", "clusterIP": "198.19.0.11",
                "ports": [{"port": 80, "nodePort": 30080}],
            }))],
            slices: vec![slice("ns", "np-1", "np", "IPv4", json!([{"name": "", "port": 8080}]), json!([
                ep("198.18.64.6", NODE, "ready"),
            ]))],
            zone: None,
            expect: "
ipv4 ns/np tcp 198.19.0.11:80 NodePort nodePort=30080
  has_endpoints=true
  198.18.64.6:8080 (local) cluster=used local=-
",
        },
        Case {
            name: "LoadBalancer: VIP ingress kept, ipMode Proxy and hostname-only skipped, ranges split by family",
            services: vec![service_full("ns", "lb", json!({}), json!({
                "type": "LoadBalancer", "clusterIP": "198.19.0.12",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "nodePort": 30443}],
                "loadBalancerSourceRanges": [" 198.19.255.0/25 ", "2001:db8:ff::/48", "not-a-cidr"],
            }), json!({"loadBalancer": {"ingress": [
                {"ip": "198.19.255.1"},
                {"ip": "198.19.255.2", "ipMode": "VIP"},
                {"ip": "198.19.255.3", "ipMode": "Proxy"},
                {"hostname": "lb.example"},
            ]}}))],
            slices: vec![],
            zone: None,
            expect: "
ipv4 ns/lb:https tcp 198.19.0.12:443 LoadBalancer nodePort=30443 lbIPs=198.19.255.1,198.19.255.2 sourceRanges=198.19.255.0/25
  has_endpoints=false
warning: Service ns/lb: spec.loadBalancerSourceRanges[2]: invalid CIDR \"not-a-cidr\" (value ignored)
",
        },
        Case {
            name: "externalIPs of this family only; an invalid one is ignored with a warning",
            services: vec![service("ns", "ext", json!({
                "clusterIP": "198.19.0.13",
                "externalIPs": ["198.19.255.10", "2001:db8:ff::10", "198.19.255.300"],
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
            }))],
            slices: vec![],
            zone: None,
            expect: "
ipv4 ns/ext:dns udp 198.19.0.13:53 ClusterIP externalIPs=198.19.255.10
  has_endpoints=false
warning: Service ns/ext: spec.externalIPs[2]: invalid IP address \"198.19.255.300\" (value ignored)
",
        },
        Case {
            name: "sessionAffinity ClientIP: default and explicit timeouts",
            services: vec![
                service("ns", "a1", json!({"clusterIP": "198.19.0.14", "sessionAffinity": "ClientIP",
                    "ports": [{"name": "http", "port": 80}]})),
                service("ns", "a2", json!({"clusterIP": "198.19.0.15", "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                    "ports": [{"name": "http", "port": 80}]})),
            ],
            slices: vec![],
            zone: None,
            expect: "
ipv4 ns/a1:http tcp 198.19.0.14:80 ClusterIP affinity=ClientIP/10800s
  has_endpoints=false
ipv4 ns/a2:http tcp 198.19.0.15:80 ClusterIP affinity=ClientIP/60s
  has_endpoints=false
",
        },
        Case {
            name: "dual-stack: one ProxyState per family, slices by addressType",
            services: vec![service("ns", "ds", json!({
                "clusterIP": "198.19.0.16", "clusterIPs": ["198.19.0.16", "2001:db8:c::16"],
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack",
                "externalIPs": ["198.19.255.16", "2001:db8:ff::16"],
                "ports": [{"name": "http", "port": 80}],
            }))],
            slices: vec![
                slice("ns", "ds-v4", "ds", "IPv4", http_ports(), json!([ep("198.18.64.16", NODE, "ready")])),
                slice("ns", "ds-v6", "ds", "IPv6", http_ports(), json!([ep("2001:db8:40::16", NODE, "ready")])),
            ],
            zone: None,
            expect: "
ipv4 ns/ds:http tcp 198.19.0.16:80 ClusterIP externalIPs=198.19.255.16
  has_endpoints=true
  198.18.64.16:8080 (local) cluster=used local=-
ipv6 ns/ds:http tcp [2001:db8:c::16]:80 ClusterIP externalIPs=2001:db8:ff::16
  has_endpoints=true
  [2001:db8:40::16]:8080 (local) cluster=used local=-
",
        },
        Case {
            name: "skipped on purpose: ExternalName, headless, another proxy's, headless and FQDN slices",
            services: vec![
                service("ns", "en", json!({"type": "ExternalName", "externalName": "db.example"})),
                service("ns", "hl", json!({"clusterIP": "None", "ports": [{"port": 80}]})),
                service_full("ns", "other", json!({"labels": {"service.kubernetes.io/service-proxy-name": "cilium"}}),
                    json!({"clusterIP": "198.19.0.17", "ports": [{"port": 80}]}), json!({})),
            ],
            slices: vec![
                {
                    let mut s = slice("ns", "hl-1", "hl", "IPv4", http_ports(), json!([ep("198.18.64.17", NODE, "ready")]));
                    s.metadata.labels.as_mut().unwrap().insert(LABEL_HEADLESS.into(), String::new());
                    s
                },
                slice("ns", "en-1", "en", "FQDN", http_ports(), json!([{"addresses": ["db.example"]}])),
            ],
            zone: None,
            expect: "
Service ns/en: skipped: type ExternalName
Service ns/hl: skipped: headless (clusterIP None)
Service ns/other: skipped: labelled service.kubernetes.io/service-proxy-name=cilium
EndpointSlice ns/en-1: skipped: addressType FQDN
EndpointSlice ns/hl-1: skipped: labelled service.kubernetes.io/headless
",
        },
    ]);
}

#[test]
fn traffic_policies() {
    run(vec![
        Case {
            name: "eTP Local LoadBalancer: cluster endpoints for short-circuit, local ones for external traffic",
            services: vec![service_full("ns", "lbl", json!({}), json!({
                "type": "LoadBalancer", "clusterIP": "198.19.0.20", "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 32000,
                "ports": [{"name": "http", "port": 80, "nodePort": 30020}],
            }), json!({"loadBalancer": {"ingress": [{"ip": "198.19.255.20"}]}}))],
            slices: vec![slice("ns", "lbl-1", "lbl", "IPv4", http_ports(), json!([
                ep("198.18.64.20", NODE, "ready"),
                ep("198.18.65.20", "node-b", "ready"),
            ]))],
            zone: None,
            expect: "
ipv4 ns/lbl:http tcp 198.19.0.20:80 LoadBalancer nodePort=30020 lbIPs=198.19.255.20 eTP=Local hcnp=32000
  has_endpoints=true
  198.18.64.20:8080 (local) cluster=used local=used
  198.18.65.20:8080 cluster=used local=no (on node node-b, not this node (traffic policy Local))
",
        },
        Case {
            name: "eTP Local without local endpoints; missing healthCheckNodePort is reported",
            services: vec![service("ns", "nolocal", json!({
                "type": "LoadBalancer", "clusterIP": "198.19.0.21", "externalTrafficPolicy": "Local",
                "ports": [{"name": "http", "port": 80, "nodePort": 30021}],
            }))],
            slices: vec![slice("ns", "nolocal-1", "nolocal", "IPv4", http_ports(), json!([
                ep("198.18.65.21", "node-b", "ready"),
            ]))],
            zone: None,
            expect: "
ipv4 ns/nolocal:http tcp 198.19.0.21:80 LoadBalancer nodePort=30021 eTP=Local
  has_endpoints=true
  198.18.65.21:8080 cluster=used local=no (on node node-b, not this node (traffic policy Local))
warning: Service ns/nolocal: spec.healthCheckNodePort: missing on a LoadBalancer Service with externalTrafficPolicy Local (programmed without it)
",
        },
        Case {
            name: "eTP Local on a ClusterIP Service has no effect (upstream ExternalPolicyLocal)",
            services: vec![service("ns", "cipl", json!({
                "clusterIP": "198.19.0.22", "externalTrafficPolicy": "Local",
                "externalIPs": ["198.19.255.22"], "ports": [{"name": "http", "port": 80}],
            }))],
            slices: vec![slice("ns", "cipl-1", "cipl", "IPv4", http_ports(), json!([ep("198.18.65.22", "node-b", "ready")]))],
            zone: None,
            expect: "
ipv4 ns/cipl:http tcp 198.19.0.22:80 ClusterIP externalIPs=198.19.255.22 eTP=Local
  has_endpoints=true
  198.18.65.22:8080 cluster=used local=-
",
        },
        Case {
            name: "iTP Local ClusterIP: only local endpoints; has_endpoints counts remote ones",
            services: vec![service("ns", "itp", json!({
                "clusterIP": "198.19.0.23", "internalTrafficPolicy": "Local",
                "ports": [{"name": "http", "port": 80}],
            }))],
            slices: vec![slice("ns", "itp-1", "itp", "IPv4", http_ports(), json!([
                ep("198.18.64.23", NODE, "ready"),
                ep("198.18.65.23", "node-b", "ready"),
            ]))],
            zone: None,
            expect: "
ipv4 ns/itp:http tcp 198.19.0.23:80 ClusterIP iTP=Local
  has_endpoints=true
  198.18.64.23:8080 (local) cluster=- local=used
  198.18.65.23:8080 cluster=- local=no (on node node-b, not this node (traffic policy Local))
",
        },
    ]);
}

#[test]
fn topology_hints_and_traffic_distribution() {
    let zone_slice = |name: &str, svc: &str| {
        slice(
            "ns",
            name,
            svc,
            "IPv4",
            http_ports(),
            json!([
                with_hints(ep("198.18.64.30", NODE, "ready"), &["z1"], &[]),
                with_hints(ep("198.18.65.30", "node-b", "ready"), &["z2"], &[]),
                with_hints(ep("198.18.66.30", "node-c", "ready"), &["z1"], &[]),
            ]),
        )
    };
    let node_slice = |name: &str, svc: &str| {
        slice(
            "ns",
            name,
            svc,
            "IPv4",
            http_ports(),
            json!([
                with_hints(ep("198.18.64.31", NODE, "ready"), &["z1"], &[NODE]),
                with_hints(ep("198.18.65.31", "node-b", "ready"), &["z1"], &["node-b"]),
            ]),
        )
    };
    let td = |name: &str, ip: &str, v: &str| {
        service(
            "ns",
            name,
            json!({"clusterIP": ip, "trafficDistribution": v, "ports": [{"name": "http", "port": 80}]}),
        )
    };
    run(vec![
        Case {
            name: "zone hints for this node's zone: PreferSameZone",
            services: vec![service("ns", "zh", cluster_ip("198.19.0.30"))],
            slices: vec![zone_slice("zh-1", "zh")],
            zone: Some("z1"),
            expect: "
ipv4 ns/zh:http tcp 198.19.0.30:80 ClusterIP
  has_endpoints=true topology=PreferSameZone
  198.18.64.30:8080 (local) cluster=used local=-
  198.18.65.30:8080 cluster=no (hinted for other zones than z1 (topology)) local=-
  198.18.66.30:8080 cluster=used local=-
",
        },
        Case {
            name: "zone hints but none for this zone, or node without zone label: all endpoints",
            services: vec![service("ns", "zh", cluster_ip("198.19.0.30"))],
            slices: vec![zone_slice("zh-1", "zh")],
            zone: Some("z9"),
            expect: "
ipv4 ns/zh:http tcp 198.19.0.30:80 ClusterIP
  has_endpoints=true
  198.18.64.30:8080 (local) cluster=used local=-
  198.18.65.30:8080 cluster=used local=-
  198.18.66.30:8080 cluster=used local=-
",
        },
        Case {
            name: "one ready endpoint without a hint: hints ignored",
            services: vec![service("ns", "partial", cluster_ip("198.19.0.32"))],
            slices: vec![slice(
                "ns",
                "partial-1",
                "partial",
                "IPv4",
                http_ports(),
                json!([
                    with_hints(ep("198.18.64.32", NODE, "ready"), &["z1"], &[]),
                    ep("198.18.65.32", "node-b", "ready"),
                ]),
            )],
            zone: Some("z1"),
            expect: "
ipv4 ns/partial:http tcp 198.19.0.32:80 ClusterIP
  has_endpoints=true
  198.18.64.32:8080 (local) cluster=used local=-
  198.18.65.32:8080 cluster=used local=-
",
        },
        Case {
            name: "node hints for this node: PreferSameNode",
            services: vec![service("ns", "nh", cluster_ip("198.19.0.31"))],
            slices: vec![node_slice("nh-1", "nh")],
            zone: Some("z1"),
            expect: "
ipv4 ns/nh:http tcp 198.19.0.31:80 ClusterIP
  has_endpoints=true topology=PreferSameNode
  198.18.64.31:8080 (local) cluster=used local=-
  198.18.65.31:8080 cluster=no (hinted for other nodes (topology)) local=-
",
        },
        Case {
            name: "trafficDistribution PreferClose / PreferSameZone act through zone hints",
            services: vec![
                td("pc", "198.19.0.33", "PreferClose"),
                td("psz", "198.19.0.34", "PreferSameZone"),
            ],
            slices: vec![zone_slice("pc-1", "pc"), zone_slice("psz-1", "psz")],
            zone: Some("z2"),
            expect: "
ipv4 ns/pc:http tcp 198.19.0.33:80 ClusterIP trafficDistribution=PreferClose
  has_endpoints=true topology=PreferSameZone
  198.18.64.30:8080 (local) cluster=no (hinted for other zones than z2 (topology)) local=-
  198.18.65.30:8080 cluster=used local=-
  198.18.66.30:8080 cluster=no (hinted for other zones than z2 (topology)) local=-
ipv4 ns/psz:http tcp 198.19.0.34:80 ClusterIP trafficDistribution=PreferSameZone
  has_endpoints=true topology=PreferSameZone
  198.18.64.30:8080 (local) cluster=no (hinted for other zones than z2 (topology)) local=-
  198.18.65.30:8080 cluster=used local=-
  198.18.66.30:8080 cluster=no (hinted for other zones than z2 (topology)) local=-
",
        },
        Case {
            name: "trafficDistribution PreferSameNode acts through node hints; without hints it changes nothing",
            services: vec![
                td("psn", "198.19.0.35", "PreferSameNode"),
                td("nohints", "198.19.0.36", "PreferSameNode"),
            ],
            slices: vec![
                node_slice("psn-1", "psn"),
                slice(
                    "ns",
                    "nohints-1",
                    "nohints",
                    "IPv4",
                    http_ports(),
                    json!([
                        ep("198.18.64.36", NODE, "ready"),
                        ep("198.18.65.36", "node-b", "ready"),
                    ]),
                ),
            ],
            zone: Some("z1"),
            expect: "
ipv4 ns/nohints:http tcp 198.19.0.36:80 ClusterIP trafficDistribution=PreferSameNode
  has_endpoints=true
  198.18.64.36:8080 (local) cluster=used local=-
  198.18.65.36:8080 cluster=used local=-
ipv4 ns/psn:http tcp 198.19.0.35:80 ClusterIP trafficDistribution=PreferSameNode
  has_endpoints=true topology=PreferSameNode
  198.18.64.31:8080 (local) cluster=used local=-
  198.18.65.31:8080 cluster=no (hinted for other nodes (topology)) local=-
",
        },
        Case {
            name: "hints do not narrow Local policy",
            services: vec![service(
                "ns",
                "lh",
                json!({
                    "clusterIP": "198.19.0.37", "internalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80}],
                }),
            )],
            slices: vec![slice(
                "ns",
                "lh-1",
                "lh",
                "IPv4",
                http_ports(),
                json!([with_hints(
                    ep("198.18.64.37", NODE, "ready"),
                    &["z2"],
                    &["node-b"]
                ),]),
            )],
            zone: Some("z1"),
            expect: "
ipv4 ns/lh:http tcp 198.19.0.37:80 ClusterIP iTP=Local
  has_endpoints=true
  198.18.64.37:8080 (local) cluster=- local=used
",
        },
    ]);
}

#[test]
fn terminating_fallback() {
    run(vec![
        Case {
            name: "no ready endpoint: serving terminating ones are used",
            services: vec![service("ns", "t1", cluster_ip("198.19.0.40"))],
            slices: vec![slice(
                "ns",
                "t1-1",
                "t1",
                "IPv4",
                http_ports(),
                json!([
                    ep("198.18.64.40", NODE, "serving,terminating"),
                    ep("198.18.64.41", NODE, "terminating"),
                    ep("198.18.64.42", NODE, "none"),
                ]),
            )],
            zone: None,
            expect: "
ipv4 ns/t1:http tcp 198.19.0.40:80 ClusterIP
  has_endpoints=true fallback=cluster
  198.18.64.40:8080 (local) cluster=used local=-
  198.18.64.41:8080 (local) cluster=no (not serving) local=-
  198.18.64.42:8080 (local) cluster=no (not serving) local=-
",
        },
        Case {
            name: "ready endpoints exist: terminating ones are left out",
            services: vec![service("ns", "t2", cluster_ip("198.19.0.41"))],
            slices: vec![slice(
                "ns",
                "t2-1",
                "t2",
                "IPv4",
                http_ports(),
                json!([
                    ep("198.18.64.43", NODE, "serving,terminating"),
                    ep("198.18.65.43", "node-b", "ready"),
                    ep("198.18.65.44", "node-b", "none"),
                ]),
            )],
            zone: None,
            expect: "
ipv4 ns/t2:http tcp 198.19.0.41:80 ClusterIP
  has_endpoints=true
  198.18.64.43:8080 (local) cluster=no (terminating (ready endpoints are preferred)) local=-
  198.18.65.43:8080 cluster=used local=-
  198.18.65.44:8080 cluster=no (not ready) local=-
",
        },
        Case {
            name: "fallback decided independently for Cluster and Local",
            services: vec![service(
                "ns",
                "t3",
                json!({
                    "type": "NodePort", "clusterIP": "198.19.0.42", "externalTrafficPolicy": "Local",
                    "ports": [{"name": "http", "port": 80, "nodePort": 30042}],
                }),
            )],
            slices: vec![slice(
                "ns",
                "t3-1",
                "t3",
                "IPv4",
                http_ports(),
                json!([
                    ep("198.18.64.45", NODE, "serving,terminating"),
                    ep("198.18.65.45", "node-b", "ready"),
                ]),
            )],
            zone: None,
            expect: "
ipv4 ns/t3:http tcp 198.19.0.42:80 NodePort nodePort=30042 eTP=Local
  has_endpoints=true fallback=local
  198.18.64.45:8080 (local) cluster=no (terminating (ready endpoints are preferred)) local=used
  198.18.65.45:8080 cluster=used local=no (on node node-b, not this node (traffic policy Local))
",
        },
        Case {
            name: "nothing usable anywhere: no endpoints (REJECT)",
            services: vec![service("ns", "t4", cluster_ip("198.19.0.43"))],
            slices: vec![slice(
                "ns",
                "t4-1",
                "t4",
                "IPv4",
                http_ports(),
                json!([ep("198.18.64.46", NODE, "none")]),
            )],
            zone: None,
            expect: "
ipv4 ns/t4:http tcp 198.19.0.43:80 ClusterIP
  has_endpoints=false fallback=cluster
  198.18.64.46:8080 (local) cluster=no (not serving) local=-
",
        },
    ]);
}

#[test]
fn endpoint_merging() {
    run(vec![
        Case {
            name: "slices merged; same ip:port in two slices: the non-terminating copy wins; sorted as strings",
            services: vec![service(
                "ns",
                "m",
                json!({"clusterIP": "198.19.0.50",
                "ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]}),
            )],
            slices: vec![
                slice(
                    "ns",
                    "m-a",
                    "m",
                    "IPv4",
                    http_ports(),
                    json!([
                        ep("198.18.64.9", NODE, "ready"),
                        ep("198.18.64.10", NODE, "serving,terminating"),
                    ]),
                ),
                slice(
                    "ns",
                    "m-b",
                    "m",
                    "IPv4",
                    http_ports(),
                    json!([ep("198.18.64.10", NODE, "ready"),]),
                ),
                slice(
                    "ns",
                    "m-c",
                    "m",
                    "IPv4",
                    json!([{"name": "metrics", "port": 9100}, {"name": "unused", "port": 1}]),
                    json!([ep("198.18.64.9", NODE, "ready"),]),
                ),
            ],
            zone: None,
            expect: "
ipv4 ns/m:http tcp 198.19.0.50:80 ClusterIP
  has_endpoints=true
  198.18.64.10:8080 (local) cluster=used local=-
  198.18.64.9:8080 (local) cluster=used local=-
ipv4 ns/m:metrics tcp 198.19.0.50:9090 ClusterIP
  has_endpoints=true
  198.18.64.9:9100 (local) cluster=used local=-
",
        },
        Case {
            name: "endpoint ports matched by name and protocol",
            services: vec![service(
                "ns",
                "dns",
                json!({"clusterIP": "198.19.0.53", "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ]}),
            )],
            slices: vec![slice(
                "ns",
                "dns-1",
                "dns",
                "IPv4",
                json!([
                    {"name": "dns", "port": 5353, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 5353, "protocol": "UDP"},
                ]),
                json!([ep("198.18.64.53", NODE, "ready")]),
            )],
            zone: None,
            expect: "
ipv4 ns/dns:dns udp 198.19.0.53:53 ClusterIP
  has_endpoints=true
  198.18.64.53:5353 (local) cluster=used local=-
ipv4 ns/dns:dns-tcp tcp 198.19.0.53:53 ClusterIP
  has_endpoints=false
",
        },
    ]);
}

#[test]
fn malformed_objects_are_skipped_with_named_warnings_and_the_rest_stays() {
    run(vec![Case {
        name: "bad Services and EndpointSlices",
        services: vec![
            service("ns", "good", cluster_ip("198.19.0.60")),
            service("ns", "badip", cluster_ip("198.19.0.999")),
            service("ns", "noip", json!({"ports": [{"port": 80}]})),
            service("ns", "badtype", json!({"type": "Weird", "clusterIP": "198.19.0.61"})),
            service("ns", "ports", json!({"clusterIP": "198.19.0.62", "ports": [
                {"name": "zero", "port": 0},
                {"name": "big", "port": 70000},
                {"name": "icmp", "port": 1, "protocol": "ICMP"},
                {"name": "ok", "port": 80},
                {"name": "ok", "port": 81},
                {"name": "dup", "port": 80},
                {"name": "np", "port": 82, "nodePort": 99999},
                {"name": "a\"b", "port": 83},
            ]})),
            // found by fuzzing: a quote in a name ended the rules' comments early
            service("ns", "we\"6", cluster_ip("198.19.0.63")),
        ],
        slices: vec![
            slice("ns", "good-1", "good", "IPv4", http_ports(), json!([
                ep("198.18.64.60", NODE, "ready"),
                ep("not-an-ip", NODE, "ready"),
                ep("2001:db8::60", NODE, "ready"),
                {"addresses": []},
            ])),
            slice("ns", "good-2", "good", "IPv4", json!([
                {"port": 8080},
                {"name": "http", "port": 0},
                {"name": "http", "port": 8080, "protocol": "XTP"},
            ]), json!([ep("198.18.64.61", NODE, "ready")])),
            slice("ns", "weird", "good", "IPv5", http_ports(), json!([])),
            // past the API's 1,000 endpoints a slice: all of it skipped
            slice("ns", "huge", "good", "IPv4", http_ports(), Value::Array(
                (0..1001).map(|i| ep(&format!("198.18.70.{}", i % 250 + 1), NODE, "ready")).collect(),
            )),
            serde_json::from_value(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"namespace": "ns", "name": "orphan"},
                "addressType": "IPv4", "endpoints": [],
            })).unwrap(),
        ],
        zone: None,
        expect: "
ipv4 ns/good:http tcp 198.19.0.60:80 ClusterIP
  has_endpoints=true
  198.18.64.60:8080 (local) cluster=used local=-
ipv4 ns/ports:ok tcp 198.19.0.62:80 ClusterIP
  has_endpoints=false
warning: Service ns/badip: spec.clusterIPs[0]: invalid IP address \"198.19.0.999\" (object skipped)
warning: Service ns/badtype: spec.type: unknown type \"Weird\", expected ClusterIP, NodePort, LoadBalancer or ExternalName (object skipped)
warning: Service ns/noip: spec.clusterIP: no cluster IP set (object skipped)
warning: Service ns/ports: spec.ports[0].port: invalid port 0, expected 1-65535 (port skipped)
warning: Service ns/ports: spec.ports[1].port: invalid port 70000, expected 1-65535 (port skipped)
warning: Service ns/ports: spec.ports[2].protocol: unknown protocol \"ICMP\", expected TCP, UDP or SCTP (port skipped)
warning: Service ns/ports: spec.ports[4].name: duplicate port name \"ok\" (port skipped)
warning: Service ns/ports: spec.ports[5].port: duplicate port 80/TCP (port skipped)
warning: Service ns/ports: spec.ports[6].nodePort: invalid node port 99999, expected 1-65535 (port skipped)
warning: Service ns/ports: spec.ports[7].name: invalid port name \"a\\\"b\", expected a DNS-1123 label (a-z, 0-9 and '-', at most 63) (port skipped)
warning: Service ns/we\"6: metadata.name: invalid name \"we\\\"6\", expected a DNS-1123 label (a-z, 0-9 and '-', at most 63) (object skipped)
warning: EndpointSlice ns/good-1: endpoints[1].addresses[0]: invalid IP address \"not-an-ip\" (endpoint skipped)
warning: EndpointSlice ns/good-1: endpoints[2].addresses[0]: address \"2001:db8::60\" is not of the slice's address type IPv4 (endpoint skipped)
warning: EndpointSlice ns/good-1: endpoints[3].addresses[0]: no address (endpoint skipped)
warning: EndpointSlice ns/good-2: ports[0].name: missing; kube-proxy ignores ports without a name (use name: \"\" for an unnamed Service port) (port skipped)
warning: EndpointSlice ns/good-2: ports[1].port: invalid port 0, expected 1-65535 (port skipped)
warning: EndpointSlice ns/good-2: ports[2].protocol: unknown protocol \"XTP\", expected TCP, UDP or SCTP (port skipped)
warning: EndpointSlice ns/huge: endpoints: 1001 endpoints, the API allows at most 1000 a slice (object skipped)
warning: EndpointSlice ns/orphan: metadata.labels[kubernetes.io/service-name]: missing: the slice names no Service (object skipped)
warning: EndpointSlice ns/weird: addressType: unknown address type \"IPv5\", expected IPv4, IPv6 or FQDN (object skipped)
",
    }]);
}

#[test]
fn node_info_per_family() {
    let n = node(Some("z1"));
    let mut o = opts();
    o.cluster_cidrs.push("2001:db8:40::/48".parse().unwrap());
    o.node_port_addresses = vec![NodePortAddress::Primary];
    let b = build([], [], Some(&n), &o);
    let v4 = &b.ipv4.node;
    assert_eq!(v4.name, NODE);
    assert_eq!(v4.zone.as_deref(), Some("z1"));
    assert_eq!(v4.pod_cidrs, vec!["198.18.64.0/24".parse().unwrap()]);
    assert_eq!(v4.primary_ip, Some("198.18.0.1".parse().unwrap()));
    assert_eq!(
        v4.local_traffic,
        LocalTraffic::Cidr("198.18.64.0/18".parse().unwrap())
    );
    assert_eq!(
        v4.node_port_addresses.cidrs,
        vec!["198.18.0.1/32".parse().unwrap()]
    );
    assert!(!v4.node_port_addresses.match_all);
    let v6 = &b.ipv6.node;
    assert_eq!(v6.primary_ip, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(
        v6.local_traffic,
        LocalTraffic::Cidr("2001:db8:40::/48".parse().unwrap())
    );
    assert_eq!(
        v6.node_port_addresses.cidrs,
        vec!["2001:db8::1/128".parse().unwrap()]
    );

    // NodeCIDR mode reads the node's podCIDRs; an unknown node leaves it undetected.
    o.detect_local_mode = DetectLocalMode::NodeCidr;
    let b = build([], [], Some(&n), &o);
    assert_eq!(
        b.ipv6.node.local_traffic,
        LocalTraffic::Cidr("2001:db8:40::/64".parse().unwrap())
    );
    let b = build([], [], None, &o);
    assert!(!b.ipv4.node.known);
    assert_eq!(
        b.ipv4.node.local_traffic,
        LocalTraffic::Undetected(UndetectedReason::NoPodCidr)
    );
    // No primary IP known: no CIDR of the family, so every address (upstream's rule).
    assert!(b.ipv4.node.node_port_addresses.match_all);

    // ClusterCIDR mode without a CIDR of the family.
    o.detect_local_mode = DetectLocalMode::ClusterCidr;
    o.cluster_cidrs.truncate(1);
    let b = build([], [], Some(&n), &o);
    assert_eq!(
        b.ipv6.node.local_traffic,
        LocalTraffic::Undetected(UndetectedReason::NoClusterCidr)
    );
}

#[test]
fn node_port_addresses_follow_upstream() {
    use dataplane::Family::{V4, V6};
    let cidr = |s: &str| NodePortAddress::Cidr(s.parse().unwrap());
    let r = NodePortAddresses::resolve(V4, &[], None);
    assert!(r.match_all);
    assert_eq!(r.cidrs, vec!["0.0.0.0/0".parse().unwrap()]);
    let entries = [cidr("198.18.0.0/24"), cidr("127.0.0.0/8")];
    let r = NodePortAddresses::resolve(V4, &entries, None);
    assert!(!r.match_all && r.contains_ipv4_loopback);
    // Only IPv4 CIDRs given: IPv6 serves NodePorts on every address.
    assert!(NodePortAddresses::resolve(V6, &entries, None).match_all);
    let r = NodePortAddresses::resolve(V6, &[NodePortAddress::Localhost], None);
    assert_eq!(r.cidrs, vec!["::1/128".parse().unwrap()]);
    assert!(
        NodePortAddresses::resolve(V4, &[cidr("198.18.0.0/24"), NodePortAddress::All], None)
            .match_all
    );
}

#[test]
fn diff_names_added_removed_and_changed_ports() {
    let n = node(Some("z1"));
    let svcs = vec![
        service("ns", "a", cluster_ip("198.19.0.70")),
        service("ns", "b", cluster_ip("198.19.0.71")),
        service("ns", "c", cluster_ip("198.19.0.72")),
    ];
    let slices = vec![
        slice(
            "ns",
            "a-1",
            "a",
            "IPv4",
            http_ports(),
            json!([ep("198.18.64.70", NODE, "ready")]),
        ),
        slice(
            "ns",
            "b-1",
            "b",
            "IPv4",
            http_ports(),
            json!([ep("198.18.64.71", NODE, "ready")]),
        ),
    ];
    let old = build(&svcs, &slices, Some(&n), &opts());
    assert!(old.ipv4.diff(&old.ipv4).is_empty());

    // a: endpoint becomes not ready; b: unchanged; c: removed; d: added.
    let mut svcs2 = svcs[..2].to_vec();
    svcs2.push(service("ns", "d", cluster_ip("198.19.0.73")));
    let slices2 = vec![
        slice(
            "ns",
            "a-1",
            "a",
            "IPv4",
            http_ports(),
            json!([ep("198.18.64.70", NODE, "none")]),
        ),
        slices[1].clone(),
    ];
    let new = build(&svcs2, &slices2, Some(&n), &opts());
    let cs = new.ipv4.diff(&old.ipv4);
    let names = |s: &std::collections::BTreeSet<ServicePortName>| {
        s.iter().map(|n| n.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(names(&cs.added), ["ns/d:http"]);
    assert_eq!(names(&cs.removed), ["ns/c:http"]);
    assert_eq!(names(&cs.changed), ["ns/a:http"]);
    assert!(!cs.node_changed);
    let services: Vec<String> = cs.services().iter().map(|s| s.to_string()).collect();
    assert_eq!(services, ["ns/a", "ns/c", "ns/d"]);
    // IPv6 has no services either time.
    assert!(new.ipv6.diff(&old.ipv6).is_empty());

    // A zone label change is a node change (upstream: full sync).
    let moved = build(&svcs, &slices, Some(&node(Some("z2"))), &opts());
    let cs = moved.ipv4.diff(&old.ipv4);
    assert!(cs.node_changed && cs.changed.is_empty());
}

#[test]
fn local_ready_endpoints_count_ips_once_per_service() {
    let svc = service(
        "ns",
        "h",
        json!({"clusterIP": "198.19.0.80",
        "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}),
    );
    let s = slice(
        "ns",
        "h-1",
        "h",
        "IPv4",
        json!([{"name": "http", "port": 8080}, {"name": "https", "port": 8443}]),
        json!([
            ep("198.18.64.80", NODE, "ready"),
            ep("198.18.64.81", NODE, "serving,terminating"),
            ep("198.18.65.80", "node-b", "ready"),
        ]),
    );
    let b = build([&svc], [&s], Some(&node(None)), &opts());
    let counts = b.ipv4.local_ready_endpoints();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts.values().next(), Some(&1));
}

#[test]
fn duplicate_objects_keep_the_first() {
    let a = service("ns", "dup", cluster_ip("198.19.0.90"));
    let b = service("ns", "dup", cluster_ip("198.19.0.91"));
    let out = build([&a, &b], [], None, &opts());
    assert_eq!(out.ipv4.services.len(), 1);
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(
        out.skipped[0].to_string(),
        "Service ns/dup: skipped: duplicate of an earlier object"
    );
}
