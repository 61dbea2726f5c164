//! Flags, the configuration file, and how they combine.

use std::time::Duration;

use clap::error::ErrorKind;

use super::*;

fn args(extra: &[&str]) -> Vec<String> {
    std::iter::once("kube-proxy-rs")
        .chain(extra.iter().copied())
        .map(String::from)
        .collect()
}

fn cfg(extra: &[&str]) -> Config {
    Config::from_args_and_file(args(extra), None).unwrap()
}

fn err(extra: &[&str]) -> String {
    Config::from_args_and_file(args(extra), None)
        .unwrap_err()
        .to_string()
}

fn with_file(extra: &[&str], yaml: &str) -> Result<Config, ConfigError> {
    let path = Path::new("/etc/kube-proxy/config.yaml");
    let file = Config::parse_file(path, yaml)?;
    let mut a = args(extra);
    a.push(format!("--config={}", path.display()));
    Config::from_args_and_file(a, Some(&file))
}

#[test]
fn defaults_are_upstreams() {
    let c = cfg(&[]);
    assert_eq!(c.mode, ProxyMode::Iptables);
    assert_eq!(c.masquerade_bit, 14);
    assert_eq!(c.masquerade_mark(), 0x4000);
    assert!(!c.masquerade_all);
    assert!(c.localhost_node_ports);
    assert_eq!(
        c.healthz_bind_address,
        Some("0.0.0.0:10256".parse().unwrap())
    );
    assert_eq!(
        c.metrics_bind_address,
        Some("127.0.0.1:10249".parse().unwrap())
    );
    assert_eq!(c.sync_period, Duration::from_secs(30));
    assert_eq!(c.min_sync_period, Duration::from_secs(1));
    assert_eq!(c.detect_local_mode, DetectLocalMode::ClusterCidr);
    assert!(c.node_port_addresses.is_empty());
    assert_eq!(c.conntrack.max_per_core, 32768);
    assert_eq!(c.conntrack.min, 131072);
    assert_eq!(
        c.conntrack.tcp_established_timeout,
        Duration::from_secs(86400)
    );
    assert_eq!(
        c.conntrack.tcp_close_wait_timeout,
        Duration::from_secs(3600)
    );
    assert_eq!(c.iptables_backend, IptablesBackend::Auto);
    assert_eq!(c.verbosity, 0);
    // nftables mode serves NodePorts on the primary IPs by default, as upstream.
    assert_eq!(
        cfg(&["--proxy-mode=nftables"]).node_port_addresses,
        [NodePortAddress::Primary]
    );
}

#[test]
fn flags_parse() {
    let c = cfg(&[
        "--proxy-mode",
        "ipvs",
        "--hostname-override= Node-A ",
        "--cluster-cidr=198.18.64.0/18,2001:db8:40::/48",
        "--detect-local-mode=NodeCIDR",
        "--masquerade-all",
        "--masquerade-bit=15",
        "--nodeport-addresses=198.18.0.0/24,primary",
        "--nodeport-addresses=2001:db8::/64",
        "--healthz-bind-address=[::]:10256",
        "--metrics-bind-address=",
        "--ipvs-min-sync-period=500ms",
        "--ipvs-sync-period=1m30s",
        "--ipvs-scheduler=mh",
        "--ipvs-strict-arp=true",
        "--conntrack-tcp-be-liberal",
        "--iptables-localhost-nodeports=false",
        "-v",
        "4",
        "--manifests=/srv/manifests",
        "--once",
        "--dry-run",
        "--iptables-backend=nft",
    ]);
    assert_eq!(c.mode, ProxyMode::Ipvs);
    assert_eq!(c.hostname_override.as_deref(), Some("node-a"));
    assert_eq!(c.node_name("ignored").unwrap(), "node-a");
    assert_eq!(c.cluster_cidrs.len(), 2);
    assert_eq!(c.detect_local_mode, DetectLocalMode::NodeCidr);
    assert!(c.masquerade_all);
    assert_eq!(c.masquerade_mark(), 0x8000);
    assert_eq!(
        c.node_port_addresses,
        [
            NodePortAddress::Cidr("198.18.0.0/24".parse().unwrap()),
            NodePortAddress::Primary,
            NodePortAddress::Cidr("2001:db8::/64".parse().unwrap()),
        ]
    );
    assert_eq!(c.healthz_bind_address, Some("[::]:10256".parse().unwrap()));
    assert_eq!(c.metrics_bind_address, None);
    assert_eq!(c.min_sync_period, Duration::from_millis(500));
    assert_eq!(c.sync_period, Duration::from_secs(90));
    assert_eq!(c.ipvs.scheduler, "mh");
    assert!(c.ipvs.strict_arp && c.conntrack.tcp_be_liberal && !c.localhost_node_ports);
    assert_eq!(c.verbosity, 4);
    assert_eq!(c.manifests.as_deref(), Some(Path::new("/srv/manifests")));
    assert!(c.once && c.dry_run);
    assert_eq!(c.iptables_backend, IptablesBackend::Nft);
    let m = c.model_options("node-a");
    assert_eq!(m.node_name, "node-a");
    assert_eq!(m.cluster_cidrs, c.cluster_cidrs);
}

#[test]
fn sync_period_flags_by_mode() {
    // --iptables-* applies outside IPVS mode and wins over the generic flags.
    let c = cfg(&[
        "--iptables-min-sync-period=2s",
        "--min-sync-period=5s",
        "--sync-period=1m",
    ]);
    assert_eq!(c.min_sync_period, Duration::from_secs(2));
    assert_eq!(c.sync_period, Duration::from_secs(60));
    let c = cfg(&["--proxy-mode=nftables", "--iptables-sync-period=45s"]);
    assert_eq!(c.sync_period, Duration::from_secs(45));
    // ... and is ignored in IPVS mode, as upstream.
    let c = cfg(&["--proxy-mode=ipvs", "--iptables-sync-period=45s"]);
    assert_eq!(c.sync_period, Duration::from_secs(30));
    assert_eq!(
        cfg(&["--min-sync-period=0"]).min_sync_period,
        Duration::ZERO
    );
}

#[test]
fn bad_flags_are_clear_errors() {
    let e = Config::from_args_and_file(args(&["--no-such-flag"]), None).unwrap_err();
    match e {
        ConfigError::Args(e) => assert_eq!(e.kind(), ErrorKind::UnknownArgument),
        other => panic!("{other}"),
    }
    assert!(err(&["--sync-period=10"]).contains("missing unit"));
    assert!(err(&["--sync-period=1d"]).contains("invalid duration \"1d\""));
    assert_eq!(
        err(&["--sync-period=0s"]),
        "invalid --sync-period \"0s\": must be greater than 0"
    );
    assert_eq!(
        err(&["--proxy-mode=userspace"]),
        "invalid --proxy-mode \"userspace\": expected iptables, ipvs or nftables"
    );
    assert_eq!(
        err(&["--cluster-cidr=198.18.64.0/18,198.19.0.0/16"]),
        "invalid --cluster-cidr \"198.18.64.0/18,198.19.0.0/16\": expected one CIDR or a dual-stack pair"
    );
    assert_eq!(
        err(&["--cluster-cidr=198.18.64.0"]),
        "invalid --cluster-cidr \"198.18.64.0\": expected a CIDR such as 198.18.64.0/18"
    );
    assert_eq!(
        err(&["--masquerade-bit=32"]),
        "invalid --iptables-masquerade-bit \"32\": expected 0-31"
    );
    assert_eq!(
        err(&["--detect-local-mode=BridgeInterface"]),
        "invalid --pod-bridge-interface \"\": required with detect-local-mode BridgeInterface"
    );
    assert_eq!(
        err(&["--nodeport-addresses=eth0"]),
        "invalid --nodeport-addresses \"eth0\": expected a CIDR, 'primary', 'localhost' or 'all'"
    );
    assert!(err(&["--masquerade-all=maybe"]).contains("invalid boolean \"maybe\""));
    assert!(err(&["--manifests=/srv", "--kubeconfig=/k"]).contains("cannot be combined"));
    assert!(
        err(&["--healthz-bind-address=localhost:1"]).starts_with("invalid --healthz-bind-address")
    );
    assert!(err(&["--hostname-override=  "]).contains("must not be empty"));
    assert_eq!(
        cfg(&[
            "--detect-local-mode=InterfaceNamePrefix",
            "--pod-interface-name-prefix=veth"
        ])
        .detect_local_mode,
        DetectLocalMode::InterfaceNamePrefix("veth".into())
    );
}

/// A file as kubeadm writes it (fields kube-proxy-rs does not act on included).
const KUBEADM: &str = r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 198.18.64.0/18
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: true
  masqueradeBit: null
  minSyncPeriod: 2s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 2
metricsBindAddress: 0.0.0.0:10249
mode: ""
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
"#;

#[test]
fn kubeadm_file_loads() {
    let c = with_file(&[], KUBEADM).unwrap();
    assert_eq!(c.mode, ProxyMode::Iptables);
    assert_eq!(
        c.kubeconfig.as_deref(),
        Some(Path::new("/var/lib/kube-proxy/kubeconfig.conf"))
    );
    assert_eq!(
        c.cluster_cidrs,
        vec!["198.18.64.0/18".parse::<IpNet>().unwrap()]
    );
    assert!(c.masquerade_all);
    assert_eq!(c.min_sync_period, Duration::from_secs(2));
    assert_eq!(
        c.metrics_bind_address,
        Some("0.0.0.0:10249".parse().unwrap())
    );
    // Empty in the file means unset (upstream defaulting), not disabled.
    assert_eq!(
        c.healthz_bind_address,
        Some("0.0.0.0:10256".parse().unwrap())
    );
    assert_eq!(c.sync_period, Duration::from_secs(30));
    assert_eq!(c.verbosity, 2);
    assert_eq!(c.masquerade_bit, 14);
}

#[test]
fn given_flags_override_the_file() {
    let yaml = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
                mode: nftables\nclusterCIDR: 198.18.64.0/18\nhostnameOverride: From-File\n\
                nftables:\n  masqueradeBit: 3\n  syncPeriod: 1m\n  minSyncPeriod: 100ms\n";
    let c = with_file(&[], yaml).unwrap();
    assert_eq!(c.mode, ProxyMode::Nftables);
    assert_eq!(c.masquerade_bit, 3);
    assert_eq!(c.sync_period, Duration::from_secs(60));
    assert_eq!(c.min_sync_period, Duration::from_millis(100));
    assert_eq!(c.hostname_override.as_deref(), Some("from-file"));
    let c = with_file(
        &[
            "--proxy-mode=iptables",
            "--hostname-override=flag",
            "--cluster-cidr=2001:db8:40::/48",
        ],
        yaml,
    )
    .unwrap();
    assert_eq!(c.mode, ProxyMode::Iptables);
    // In iptables mode the file's iptables section (absent here) applies, not nftables'.
    assert_eq!(c.masquerade_bit, 14);
    assert_eq!(c.sync_period, Duration::from_secs(30));
    assert_eq!(c.hostname_override.as_deref(), Some("flag"));
    assert_eq!(
        c.cluster_cidrs,
        vec!["2001:db8:40::/48".parse::<IpNet>().unwrap()]
    );
}

#[test]
fn file_errors_name_file_line_and_field() {
    let yaml = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
                iptables:\n  masqueradeBit: 14\n  masqueradeBits: 15\n";
    let e = with_file(&[], yaml).unwrap_err();
    let ConfigError::File {
        path,
        source:
            FileError::Syntax {
                line,
                column,
                message,
            },
    } = &e
    else {
        panic!("{e}");
    };
    assert_eq!(path, Path::new("/etc/kube-proxy/config.yaml"));
    assert_eq!((*line, *column), (5, 3));
    assert!(
        message.contains("unknown field `masqueradeBits`"),
        "{message}"
    );
    assert!(
        e.to_string().starts_with(
            "/etc/kube-proxy/config.yaml: line 5 column 3: iptables: unknown field `masqueradeBits`"
        ),
        "{e}"
    );

    let e = with_file(
        &[],
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nfoo: 1\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("line 3 column 1: unknown field `foo`"), "{e}");

    let e = with_file(
        &[],
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables:\n  syncPeriod: 30\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("line 4") && e.contains("missing unit"), "{e}");

    let e = with_file(&[], "apiVersion: v1\nkind: ConfigMap\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("apiVersion \"v1\" kind \"ConfigMap\" is not supported"),
        "{e}"
    );

    let e = with_file(
        &[],
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ebpf\n",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "invalid mode in /etc/kube-proxy/config.yaml \"ebpf\": expected iptables, ipvs or nftables"
    );
}

#[test]
fn load_reads_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, KUBEADM).unwrap();
    let c = Config::load(args(&[&format!("--config={}", path.display())])).unwrap();
    assert!(c.masquerade_all);
    assert_eq!(c.config_file.as_deref(), Some(path.as_path()));
    let missing = dir.path().join("nope.yaml");
    let e = Config::load(args(&[&format!("--config={}", missing.display())])).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
}

#[test]
fn clap_definition_is_consistent() {
    Flags::command().debug_assert();
    assert_eq!(cfg(&["--v=3"]).verbosity, 3);
    let help = Flags::command().render_long_help().to_string();
    for flag in [
        "--proxy-mode",
        "--iptables-min-sync-period",
        "--manifests",
        "[default: 0.0.0.0:10256]",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn conntrack_sysctls_follow_upstream() {
    // upstream's defaults: 32768 per core, at least 131072, 24h established, 1h close-wait
    let c = cfg(&[]).conntrack;
    let got = c.sysctls(8);
    assert_eq!(
        got,
        vec![
            ("net/netfilter/nf_conntrack_max", "262144".to_string()),
            (
                "net/netfilter/nf_conntrack_tcp_timeout_established",
                "86400".to_string()
            ),
            (
                "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
                "3600".to_string()
            ),
        ]
    );
    // the floor wins on a small node; zero leaves a value as is
    assert_eq!(c.sysctls(2)[0].1, "131072");
    let c = cfg(&[
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0s",
        "--conntrack-tcp-timeout-close-wait=0s",
        "--conntrack-udp-timeout=30s",
        "--conntrack-tcp-be-liberal",
    ])
    .conntrack;
    assert_eq!(
        c.sysctls(8),
        vec![
            ("net/netfilter/nf_conntrack_udp_timeout", "30".to_string()),
            ("net/netfilter/nf_conntrack_tcp_be_liberal", "1".to_string()),
        ]
    );
}

/// Fuzz finding (kube_proxy_config): an error serde_yaml reports without a position (an
/// anchor that never ends) was "line 0 column 0"; lines count from 1.
#[test]
fn a_syntax_error_without_a_position_names_line_1() {
    let e = crate::config::file::KubeProxyConfiguration::parse(
        "&pibridge_interface999999999999999999a99999999999999999999]999999999999999999apiV",
    )
    .unwrap_err();
    let FileError::Syntax { line, column, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!((*line, *column), (1, 1), "{e}");
}
