//! The manifest fixtures (tests/fixtures/manifests) read as `--manifests DIR` and built into
//! the model for node-a: every feature file lands where it should, with no warning.

use std::collections::BTreeSet;
use std::path::Path;

use kube_proxy_rs::config::Config;
use kube_proxy_rs::model::{self, Exclusion, ServicePortName, SessionAffinity, TopologyMode};
use kube_proxy_rs::names;
use kube_proxy_rs::source::FileSource;

fn fixtures() -> model::Build {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests");
    let m = FileSource::new(&dir).read().expect("fixtures parse");
    let cfg = Config::from_args_and_file(
        [
            "kube-proxy-rs",
            "--hostname-override=node-a",
            "--cluster-cidr=198.18.64.0/18,2001:db8:40::/48",
        ],
        None,
    )
    .unwrap();
    let node_name = cfg.node_name("ignored").unwrap();
    let opts = cfg.model_options(&node_name);
    let ignored: Vec<_> = m
        .ignored
        .iter()
        .map(|i| (i.kind.as_str(), i.name.as_str()))
        .collect();
    assert_eq!(ignored, [("ConfigMap", "listed-config")]);
    model::build(&m.services, &m.endpoint_slices, m.node(&node_name), &opts)
}

fn key(name: &str) -> ServicePortName {
    // "ns/svc:port/PROTO"
    let (rest, proto) = name.rsplit_once('/').unwrap();
    let (nn, port) = rest.split_once(':').unwrap();
    let (ns, svc) = nn.split_once('/').unwrap();
    ServicePortName::new(ns, svc, port, proto.parse().unwrap())
}

#[test]
fn fixtures_build_without_warnings() {
    let b = fixtures();
    assert!(b.warnings.is_empty(), "{:#?}", b.warnings);
    let skipped: Vec<String> = b.skipped.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        skipped,
        [
            "Service demo/external-db: skipped: type ExternalName",
            "Service demo/headless: skipped: headless (clusterIP None)",
            "Service demo/other-proxy: skipped: labelled service.kubernetes.io/service-proxy-name=another-proxy",
            "EndpointSlice demo/external-db-fqdn: skipped: addressType FQDN",
            "EndpointSlice demo/headless-1: skipped: labelled service.kubernetes.io/headless",
        ]
    );
    let v4: BTreeSet<String> = b
        .ipv4
        .services
        .keys()
        .map(|k| format!("{k}/{}", k.protocol))
        .collect();
    let expect: BTreeSet<String> = [
        "demo/draining:http/tcp",
        "demo/ds:http/tcp",
        "demo/empty:http/tcp",
        "demo/ext:http/tcp",
        "demo/itp:http/tcp",
        "demo/lb-local:http/tcp",
        "demo/lb:https/tcp",
        "demo/listed:http/tcp",
        "demo/np:http/tcp",
        "demo/pernode:http/tcp",
        "demo/sticky:http/tcp",
        "demo/web:http/tcp",
        "demo/zonal:http/tcp",
        "kube-system/kube-dns:dns-tcp/tcp",
        "kube-system/kube-dns:dns/udp",
        "kube-system/kube-dns:metrics/tcp",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(v4, expect);
    let v6: Vec<String> = b.ipv6.services.keys().map(|k| k.to_string()).collect();
    assert_eq!(v6, ["demo/ds:http", "demo/v6only:http"]);
}

#[test]
fn fixtures_carry_each_feature() {
    let b = fixtures();
    let s = &b.ipv4;
    let port = |k: &str| &s.services[&key(k)];
    let eps = |k: &str| &s.endpoints[&key(k)];

    assert_eq!(s.node.zone.as_deref(), Some("z1"));
    assert_eq!(s.node.primary_ip, Some("198.18.0.1".parse().unwrap()));
    assert_eq!(b.ipv6.node.primary_ip, Some("2001:db8::a".parse().unwrap()));

    let web = eps("demo/web:http/tcp");
    assert_eq!(web.cluster_endpoints().count(), 2);
    assert_eq!(
        web.entries.iter().filter(|e| e.endpoint.is_local).count(),
        1
    );
    assert_eq!(
        names::svc_chain(&key("demo/web:http/tcp")).len(),
        "KUBE-SVC-".len() + 16
    );

    assert_eq!(port("demo/np:http/tcp").node_port, Some(30080));

    let lb = port("demo/lb:https/tcp");
    assert_eq!(
        lb.load_balancer_ips,
        ["198.19.255.12".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(lb.load_balancer_source_ranges.len(), 2);

    let lbl = port("demo/lb-local:http/tcp");
    assert!(lbl.external_policy_local() && lbl.health_check_node_port == Some(32014));
    assert_eq!(eps("demo/lb-local:http/tcp").local_endpoints().count(), 1);

    assert_eq!(port("demo/ext:http/tcp").external_ips.len(), 1);
    assert_eq!(
        port("demo/sticky:http/tcp").session_affinity,
        SessionAffinity::ClientIp {
            timeout_seconds: 600
        }
    );

    let itp = eps("demo/itp:http/tcp");
    assert_eq!(itp.cluster_endpoints().count(), 0);
    assert_eq!(itp.local_endpoints().count(), 1);

    let zonal = eps("demo/zonal:http/tcp");
    assert_eq!(zonal.topology.mode, TopologyMode::PreferSameZone);
    let used: Vec<String> = zonal
        .cluster_endpoints()
        .map(|e| e.endpoint_string())
        .collect();
    assert_eq!(used, ["198.18.66.18:8080"]);
    assert_eq!(
        eps("demo/pernode:http/tcp").topology.mode,
        TopologyMode::PreferSameNode
    );

    let draining = eps("demo/draining:http/tcp");
    assert!(draining.fallback.cluster && draining.has_endpoints);
    let why: Vec<String> = draining
        .exclusions()
        .map(|(e, p, x)| format!("{} {p}: {x}", e.endpoint_string()))
        .collect();
    assert_eq!(why, ["198.18.65.19:8080 Cluster: not serving"]);
    assert!(matches!(
        draining.exclusions().next().unwrap().2,
        Exclusion::NotServing
    ));

    assert!(!eps("demo/empty:http/tcp").has_endpoints);

    // kube-dns: UDP and TCP ports matched by name and protocol.
    for k in [
        "kube-system/kube-dns:dns/udp",
        "kube-system/kube-dns:dns-tcp/tcp",
    ] {
        assert_eq!(eps(k).cluster_endpoints().count(), 2, "{k}");
    }

    let ds6 = &b.ipv6.endpoints[&key("demo/ds:http/tcp")];
    assert_eq!(
        ds6.cluster_endpoints().next().unwrap().endpoint_string(),
        "[2001:db8:40:a::21]:8080"
    );
}
