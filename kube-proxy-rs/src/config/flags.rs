//! The command line: kube-proxy's flag names and defaults, plus kube-proxy-rs's own.
//!
//! In: `argv`. Out: [`Flags`] (clap-derived) and which flags were given explicitly, so that
//! [`super::Config::load`] can let given flags override the `--config` file. An unknown
//! flag or a malformed value is clap's error, naming the flag.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use super::duration;

fn go_duration(s: &str) -> Result<Duration, String> {
    duration::parse(s).map_err(|e| e.to_string())
}

/// Go's `strconv.ParseBool`, which pflag boolean flags use (`--masquerade-all=false`).
fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?}, expected true or false")),
    }
}

/// kube-proxy-rs's command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kube-proxy-rs",
    version,
    about = "A drop-in kube-proxy: programs Services into iptables, nftables or IPVS.",
    long_about = None
)]
pub struct Flags {
    /// Path to a KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1). Flags given
    /// on the command line override its values.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Remove the rules of every proxy mode, then exit.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = go_bool, default_value = "false")]
    pub cleanup: bool,

    /// Which proxy mode to use: iptables, ipvs or nftables.
    #[arg(long, value_name = "MODE", default_value = "iptables")]
    pub proxy_mode: String,

    /// Path to a kubeconfig file (in-cluster configuration when unset).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The address of the Kubernetes API server (overrides any value in kubeconfig).
    #[arg(long, value_name = "URL")]
    pub master: Option<String>,

    /// The name of this Node, if not the host name.
    #[arg(long, value_name = "NAME")]
    pub hostname_override: Option<String>,

    /// The pods' CIDR range(s), a comma-separated dual-stack pair at most. Used by
    /// --detect-local-mode=ClusterCIDR.
    #[arg(long, value_name = "CIDRS")]
    pub cluster_cidr: Option<String>,

    /// How to tell local pod traffic: ClusterCIDR, NodeCIDR, BridgeInterface or
    /// InterfaceNamePrefix.
    #[arg(long, value_name = "MODE", default_value = "ClusterCIDR")]
    pub detect_local_mode: String,

    /// The bridge pods are attached to (--detect-local-mode=BridgeInterface).
    #[arg(long, value_name = "NAME")]
    pub pod_bridge_interface: Option<String>,

    /// The prefix of pod interface names (--detect-local-mode=InterfaceNamePrefix).
    #[arg(long, value_name = "PREFIX")]
    pub pod_interface_name_prefix: Option<String>,

    /// SNAT all traffic sent to Service cluster IPs.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = go_bool, default_value = "false")]
    pub masquerade_all: bool,

    /// The fwmark bit marking packets that need SNAT (0-31).
    #[arg(
        long,
        alias = "masquerade-bit",
        value_name = "BIT",
        default_value_t = 14
    )]
    pub iptables_masquerade_bit: i32,

    /// Allow NodePorts on localhost (iptables mode, IPv4 only).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = go_bool, default_value = "true")]
    pub iptables_localhost_nodeports: bool,

    /// CIDRs whose node IPs serve NodePorts, or 'primary' (the Node's primary IPs); all local
    /// IPs when unset (nftables mode: 'primary').
    #[arg(long, value_name = "CIDRS", value_delimiter = ',', action = ArgAction::Append)]
    pub nodeport_addresses: Vec<String>,

    /// Health check server address (/healthz, /livez); empty disables it.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:10256")]
    pub healthz_bind_address: String,

    /// Metrics server address (/metrics); empty disables it.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:10249")]
    pub metrics_bind_address: String,

    /// Cleanup and resync period, any mode (kube-proxy-rs; see --iptables-sync-period).
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "30s")]
    pub sync_period: Duration,

    /// Minimum period between rule syncs, any mode (kube-proxy-rs; see
    /// --iptables-min-sync-period). 0 syncs on every change.
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "1s")]
    pub min_sync_period: Duration,

    /// Cleanup and resync period in iptables and nftables mode.
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "30s")]
    pub iptables_sync_period: Duration,

    /// Minimum period between rule syncs in iptables and nftables mode.
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "1s")]
    pub iptables_min_sync_period: Duration,

    /// Cleanup and resync period in IPVS mode.
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "30s")]
    pub ipvs_sync_period: Duration,

    /// Minimum period between rule syncs in IPVS mode.
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "1s")]
    pub ipvs_min_sync_period: Duration,

    /// IPVS scheduler: rr (default), wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub ipvs_scheduler: String,

    /// Set arp_ignore=1 and arp_announce=2 (IPVS mode).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = go_bool, default_value = "false")]
    pub ipvs_strict_arp: bool,

    /// CIDRs whose IPVS services IPVS mode leaves alone.
    #[arg(long, value_name = "CIDRS", value_delimiter = ',', action = ArgAction::Append)]
    pub ipvs_exclude_cidrs: Vec<String>,

    /// Idle timeout of IPVS TCP connections, 0 leaves it as is.
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "0s")]
    pub ipvs_tcp_timeout: Duration,

    /// IPVS TCP timeout after a FIN, 0 leaves it as is.
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "0s")]
    pub ipvs_tcpfin_timeout: Duration,

    /// IPVS UDP timeout, 0 leaves it as is.
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "0s")]
    pub ipvs_udp_timeout: Duration,

    /// Conntrack entries to allow per CPU (0 leaves the limit as is).
    #[arg(long, value_name = "N", default_value_t = 32768)]
    pub conntrack_max_per_core: i32,

    /// Minimum conntrack entries, whatever --conntrack-max-per-core gives.
    #[arg(long, value_name = "N", default_value_t = 131072)]
    pub conntrack_min: i32,

    /// Idle timeout of established TCP conntrack entries (0 leaves it as is).
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "24h0m0s")]
    pub conntrack_tcp_timeout_established: Duration,

    /// Timeout of CLOSE_WAIT TCP conntrack entries (0 leaves it as is).
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "1h0m0s")]
    pub conntrack_tcp_timeout_close_wait: Duration,

    /// Set nf_conntrack_tcp_be_liberal=1 (and skip the INVALID drop rule).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = go_bool, default_value = "false")]
    pub conntrack_tcp_be_liberal: bool,

    /// Idle timeout of UNREPLIED UDP conntrack entries (0 leaves it as is).
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "0s")]
    pub conntrack_udp_timeout: Duration,

    /// Idle timeout of ASSURED UDP conntrack entries (0 leaves it as is).
    #[arg(long, value_name = "DURATION", value_parser = go_duration, default_value = "0s")]
    pub conntrack_udp_timeout_stream: Duration,

    /// Log verbosity (klog -v): 0-3 sync summaries and warnings, 4-5 per-object detail,
    /// 6+ everything (dependencies included). `RUST_LOG` overrides it.
    #[arg(short = 'v', long = "v", value_name = "LEVEL", default_value_t = 0)]
    pub verbosity: u8,

    /// Read Services, EndpointSlices and Nodes from this YAML/JSON file or directory
    /// instead of the API server; re-read when it changes (kube-proxy-rs).
    #[arg(long, value_name = "PATH")]
    pub manifests: Option<PathBuf>,

    /// Do one full sync, then exit 0 (kube-proxy-rs).
    #[arg(long)]
    pub once: bool,

    /// Print the rules that would be applied and touch nothing (kube-proxy-rs).
    #[arg(long)]
    pub dry_run: bool,

    /// iptables backend: auto (detect as upstream's wrapper does), legacy or nft
    /// (kube-proxy-rs).
    #[arg(long, value_name = "BACKEND", default_value = "auto")]
    pub iptables_backend: String,
}
