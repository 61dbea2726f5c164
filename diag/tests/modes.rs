//! diag on the other kube-proxy modes, for real: a node whose Services are implemented in
//! nftables (a ruleset written by hand in the shape kube-proxy's nftables mode programs:
//! `service-ips` verdict map, `numgen` per Service, `dnat` per endpoint, the
//! `no-endpoint-services` map with `goto reject-chain`, masquerading by mark) traced live and
//! offline, the kernel agreeing with a real packet; the catalogue on that node (no-endpoint
//! reject found in nft, a missing route found as before); and an IPVS node offline: a bundle
//! with an `ipvsadm -Sn` table traced to a real server. Needs root.
//!
//! The host kernel has no IPVS (see design.md, VM tier), so the IPVS bundle is the rack's own
//! bundle with the virtual services added in `ipvsadm -Sn`'s captured format (the VIP is
//! bound locally on a `kube-ipvs0` device, as kube-proxy's IPVS mode binds it); the path after
//! the IPVS DNAT (node1 to the real server on node2) is checked with a real packet.

mod common;

use std::net::IpAddr;

use common::{Rack, T, findings};
use diag::bundle::{Bundle, FileEntry, FileStatus, Part};
use diag::check::Severity;
use lab::{ConnError, Host};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A kube-proxy nftables-mode ruleset (`table ip kube-proxy`) for two Services:
/// `demo/web:http` at 198.19.0.10:80 with one endpoint `ep`:8080, and `demo/empty:http` at
/// 198.19.0.20:80 with none (rejected). Pod CIDR for masquerade decisions: 198.18.64.0/18.
fn kube_proxy_nft(ep: IpAddr) -> String {
    format!(
        r#"table ip kube-proxy {{
	comment "rules for kube-proxy"
	set cluster-ips {{
		type ipv4_addr
		comment "Active ClusterIPs"
		elements = {{ 198.19.0.10, 198.19.0.20 }}
	}}
	map no-endpoint-services {{
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to services with no endpoints"
		elements = {{ 198.19.0.20 . tcp . 80 comment "demo/empty:http" : goto reject-chain }}
	}}
	map no-endpoint-nodeports {{
		type inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to service nodeports with no endpoints"
	}}
	map service-ips {{
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = {{ 198.19.0.10 . tcp . 80 : goto service-W3BQ5MXE-demo/web/tcp/http }}
	}}
	map service-nodeports {{
		type inet_proto . inet_service : verdict
		comment "NodePort traffic"
	}}
	chain filter-input {{
		type filter hook input priority -110; policy accept;
		ct state new jump nodeport-endpoints-check
		ct state new jump service-endpoints-check
	}}
	chain filter-forward {{
		type filter hook forward priority -110; policy accept;
		ct state new jump service-endpoints-check
		ct state new jump cluster-ips-check
	}}
	chain filter-output {{
		type filter hook output priority -110; policy accept;
		ct state new jump service-endpoints-check
	}}
	chain filter-output-post-dnat {{
		type filter hook output priority -90; policy accept;
		ct state new jump cluster-ips-check
	}}
	chain nat-prerouting {{
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}}
	chain nat-output {{
		type nat hook output priority -100; policy accept;
		jump services
	}}
	chain nat-postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		jump masquerading
	}}
	chain cluster-ips-check {{
		ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
		ip daddr 198.19.0.0/16 drop comment "Drop traffic to unallocated ClusterIPs"
	}}
	chain reject-chain {{
		comment "helper for @no-endpoint-services / @no-endpoint-nodeports"
		reject
	}}
	chain mark-for-masquerade {{
		meta mark set meta mark | 0x00004000
	}}
	chain masquerading {{
		meta mark & 0x00004000 == 0x00000000 return
		meta mark set meta mark ^ 0x00004000
		masquerade fully-random
	}}
	chain services {{
		ip daddr . meta l4proto . th dport vmap @service-ips
		fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
	}}
	chain service-endpoints-check {{
		ip daddr . meta l4proto . th dport vmap @no-endpoint-services
	}}
	chain nodeport-endpoints-check {{
		fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports
	}}
	chain service-W3BQ5MXE-demo/web/tcp/http {{
		ip daddr 198.19.0.10 tcp dport 80 ip saddr != 198.18.64.0/18 jump mark-for-masquerade
		numgen random mod 1 vmap {{ 0 : goto endpoint-5XJ2MQ3R-demo/web/tcp/http__{ep}/8080 }}
	}}
	chain endpoint-5XJ2MQ3R-demo/web/tcp/http__{ep}/8080 {{
		ip saddr {ep} jump mark-for-masquerade
		meta l4proto tcp dnat to {ep}:8080
	}}
}}
"#
    )
}

/// Loads an nft script into a host (`nft -f`).
fn nft_load(h: &Host, script: &str) {
    let path = std::env::temp_dir().join(format!(
        "diag-modes-{}-{}.nft",
        std::process::id(),
        h.netns()
    ));
    std::fs::write(&path, script).unwrap();
    h.sh(&format!("nft -f {}", path.display()))
        .unwrap_or_else(|e| panic!("nft -f in {}: {e}", h.name()));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn nft_mode_service_traced_live_and_offline_and_the_kernel_agrees() {
    let r = Rack::new("diag-nftsvc");
    nft_load(&r.n1, &kube_proxy_nft(r.b4()));
    // the node has no iptables rules at all: the Service lives in nftables only
    let save = r.n1.sh("iptables-nft-save; iptables-legacy-save").unwrap();
    assert!(!save.contains("-A "), "{save}");

    // the kernel: a reaches the Service's endpoint b, and the empty Service is refused
    let g =
        r.a.tcp_connect(ip("198.19.0.10"), 80, T)
            .expect("a -> Service");
    assert!(g.starts_with("b tcp"), "{g}");
    let e = r.a.tcp_connect(ip("198.19.0.20"), 80, T);
    assert!(
        matches!(e, Err(ConnError::Refused { .. })),
        "expected a refusal, got {e:?}"
    );

    // diag, live and offline (Rack::trace asserts that both agree)
    let a = r.a4().to_string();
    let t = r.trace("nftsvc", &[&a, "198.19.0.10", "--port", "80"]);
    assert_eq!(t.verdict.exit_code, 0, "{}", t.verdict.text);
    assert!(
        t.verdict
            .text
            .starts_with(&format!("DELIVERED to {}:8080 on node2", r.b4())),
        "{}",
        t.verdict.text
    );
    let hops: Vec<&str> = t.paths[0].hops.iter().map(|h| h.node.as_str()).collect();
    assert_eq!(hops, ["node1", "node2"]);
    let steps = serde_json::to_string(&t.paths[0].hops[0].steps).unwrap();
    assert!(
        steps.contains("service-W3BQ5MXE-demo/web/tcp/http")
            && steps.contains(&format!("dnat to {}:8080", r.b4())),
        "{steps}"
    );
    assert_eq!(t.endpoints.len(), 1);

    let t = r.trace("nftnoep", &[&a, "198.19.0.20", "--port", "80"]);
    assert_eq!(t.verdict.exit_code, 1, "{}", t.verdict.text);
    assert_eq!(
        t.verdict.text,
        "DROPPED on node1 at ip kube-proxy/reject-chain rule 1: reject (REJECT icmp \
         port-unreachable) [NETFILTER_DROP]"
    );
    let steps = serde_json::to_string(&t.paths[0].hops[0].steps).unwrap();
    assert!(
        steps.contains("no-endpoint-services") && steps.contains("reject-chain"),
        "{steps}"
    );

    // the catalogue reads the nft ruleset: the empty Service is found, live and offline
    let rep = r.check("nftnoep", &[]);
    let f = findings(&rep, "service-no-endpoints", Some("node1"));
    assert_eq!(f.len(), 1, "{}", rep.to_text());
    assert_eq!(f[0].severity, Severity::Error);
    assert!(f[0].summary.contains("demo/empty:http"), "{}", f[0].summary);
    assert!(
        f[0].evidence.iter().any(|e| e
            .text
            .contains("198.19.0.20 . tcp . 80 comment \"demo/empty:http\" : goto reject-chain")),
        "{:?}",
        f[0].evidence
    );
}

#[test]
fn nft_mode_missing_route_is_found_as_in_iptables_mode() {
    let r = Rack::new("diag-nftroute");
    nft_load(&r.n1, &kube_proxy_nft(r.b4()));
    let p2 = r.n2.pod_cidr4().unwrap();
    r.n1.sh(&format!("ip route del {p2}; ip route del default"))
        .unwrap();
    assert!(
        matches!(
            r.a.tcp_connect(ip("198.19.0.10"), 80, T),
            Err(ConnError::NetUnreachable { .. }) | Err(ConnError::Timeout)
        ),
        "a -> Service still works"
    );
    let rep = r.check("nftroute", &[]);
    let f = findings(&rep, "pod-route-missing", Some("node1"));
    assert!(f[0].summary.contains("node2"), "{}", f[0].summary);
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.text == format!("ip route get {}: no route (network unreachable)", r.b4())),
        "{:?}",
        f[0].evidence
    );
    // the Service's DNAT happens in nftables, then routing has nothing for the endpoint
    let a = r.a4().to_string();
    let t = r.trace("nftroute-t", &[&a, "198.19.0.10", "--port", "80"]);
    assert_eq!(t.verdict.exit_code, 1, "{}", t.verdict.text);
    assert_eq!(
        t.verdict.code.as_deref(),
        Some("IP_INNOROUTES"),
        "{}",
        t.verdict.text
    );
    let steps = serde_json::to_string(&t.paths[0].hops[0].steps).unwrap();
    assert!(
        steps.contains(&format!("dnat to {}:8080", r.b4())),
        "{steps}"
    );
}

#[test]
fn ipvs_bundle_traced_offline_to_a_real_server() {
    let r = Rack::new("diag-ipvs");
    // kube-proxy's IPVS mode binds every ClusterIP on the dummy device kube-ipvs0 (down);
    // this kernel has no dummy links, so an empty bridge of that name stands in
    r.n1.sh("ip link add kube-ipvs0 type bridge && ip addr add 198.19.0.10/32 dev kube-ipvs0")
        .unwrap();
    let bundles = r.collect("ipvs");
    let node1 = std::path::PathBuf::from(&bundles[1]);
    let mut b = Bundle::read(&node1).unwrap();
    // `ipvsadm -Sn` as captured (dataplane/tests/fixtures/ipvs/save.txt's format): one
    // masquerading real server on node2, and a virtual service without servers
    let ipvs = format!(
        "-A -t 198.19.0.10:80 -s rr\n-a -t 198.19.0.10:80 -r {}:8080 -m -w 1\n\
         -A -t 198.19.0.10:81 -s rr\n",
        r.b4()
    );
    b.put(
        FileEntry {
            part: Part::IpvsadmSave,
            file: None,
            command: format!("ip netns exec {} ipvsadm -Sn", r.n1.netns()),
            status: FileStatus::Ok,
            exit_code: Some(0),
            note: None,
            bytes: None,
            sha256: None,
            truncated: None,
        },
        Some(ipvs.into_bytes()),
    );
    b.write_dir(&node1).unwrap();

    let a = r.a4().to_string();
    let mut args: Vec<String> = [
        "trace",
        "--json",
        "--no-k8s",
        &a,
        "198.19.0.10",
        "--port",
        "80",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(bundles.iter().cloned());
    let (code, out, err) = common::diag(&args);
    assert_eq!(code, 0, "{out}{err}");
    let t: diag::explain::Report = serde_json::from_str(&out).unwrap();
    assert!(
        t.verdict
            .text
            .starts_with(&format!("DELIVERED to {}:8080 on node2", r.b4())),
        "{}",
        t.verdict.text
    );
    let hops: Vec<&str> = t.paths[0].hops.iter().map(|h| h.node.as_str()).collect();
    assert_eq!(hops, ["node1", "node2"]);
    let steps = serde_json::to_string(&t.paths[0].hops[0].steps).unwrap();
    assert!(steps.to_lowercase().contains("ipvs"), "{steps}");

    // the real server answers on the address and port IPVS sends the connection to
    let g = r.a.tcp_connect(r.b4(), 8080, T).expect("a -> real server");
    assert!(g.starts_with("b tcp"), "{g}");

    // the virtual service without a real server: refused, and found by check
    let mut args: Vec<String> = [
        "trace",
        "--json",
        "--no-k8s",
        &a,
        "198.19.0.10",
        "--port",
        "81",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(bundles.iter().cloned());
    let (code, out, err) = common::diag(&args);
    assert_eq!(code, 1, "{out}{err}");
    let t: diag::explain::Report = serde_json::from_str(&out).unwrap();
    assert!(
        t.verdict.text.starts_with("DROPPED on node1"),
        "{}",
        t.verdict.text
    );
    let mut args: Vec<String> = vec!["check".into(), "--json".into()];
    args.extend(bundles.iter().cloned());
    let (code, out, err) = common::diag(&args);
    assert_eq!(code, 1, "{out}{err}");
    let rep: diag::check::CheckReport = serde_json::from_str(&out).unwrap();
    let f = findings(&rep, "service-no-endpoints", Some("node1"));
    assert!(
        f[0].summary.contains("TCP 198.19.0.10:81") || f[0].summary.contains("198.19.0.10:81"),
        "{}",
        f[0].summary
    );
}
