//! Configuration: kube-proxy's flags and `KubeProxyConfiguration` file into one validated
//! [`Config`].
//!
//! ```text
//!   argv ──clap──> Flags (+ which were given) ─┐
//!                                              ├─ merge: given flag > file > default ─> Config
//!   --config FILE ──serde_yaml──> KubeProxyConfiguration ─┘       (validated)
//! ```
//!
//! Precedence: a flag given on the command line wins over the file, the file wins over the
//! flag's default. (Upstream kube-proxy ignores most flags when `--config` is set, except
//! `--hostname-override` and `-v`; kube-proxy-rs honours every flag given.) Sync periods:
//! a mode-specific flag for the active mode (`--iptables-*` outside IPVS mode, `--ipvs-*` in
//! it) wins over `--sync-period` / `--min-sync-period`, which win over the file's section of
//! the active mode (`iptables`, `ipvs` or `nftables`, as upstream's v1alpha1 conversion).
//! As upstream's v1alpha1 defaulting does, empty strings, nulls and zero sync periods in the
//! file mean "unset" (so `healthzBindAddress: ""` is 0.0.0.0:10256; only an empty flag value
//! disables a server).

pub mod duration;
pub mod file;
pub mod flags;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use dataplane::Family;
use ipnet::IpNet;

use crate::model::{DetectLocalMode, ModelOptions, NodePortAddress, parse_cidr, parse_ip};
pub use file::{FileError, KubeProxyConfiguration};
pub use flags::Flags;

/// `--proxy-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProxyMode {
    /// `iptables` (the default): `iptables-restore` of `KUBE-*` chains.
    #[default]
    Iptables,
    /// `ipvs`: IPVS virtual servers, ipsets and helper iptables rules.
    Ipvs,
    /// `nftables`: the `ip kube-proxy` / `ip6 kube-proxy` tables.
    Nftables,
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyMode::Iptables => "iptables",
            ProxyMode::Ipvs => "ipvs",
            ProxyMode::Nftables => "nftables",
        })
    }
}

/// `--iptables-backend`: which iptables binaries to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IptablesBackend {
    /// Detect as upstream's iptables wrapper does (whichever backend has more rules).
    #[default]
    Auto,
    /// `iptables-legacy` (x_tables).
    Legacy,
    /// `iptables-nft` (nf_tables).
    Nft,
}

/// IPVS-mode settings (`ipvs` section, `--ipvs-*` flags).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpvsConfig {
    /// Scheduler name; `rr` when unset.
    pub scheduler: String,
    /// Set `arp_ignore=1`, `arp_announce=2`.
    pub strict_arp: bool,
    /// IPVS services in these CIDRs are never removed.
    pub exclude_cidrs: Vec<IpNet>,
    /// `ipvsadm --set` TCP timeout; zero leaves it.
    pub tcp_timeout: Duration,
    /// `ipvsadm --set` TCP FIN timeout; zero leaves it.
    pub tcp_fin_timeout: Duration,
    /// `ipvsadm --set` UDP timeout; zero leaves it.
    pub udp_timeout: Duration,
}

/// Conntrack sysctls (`conntrack` section, `--conntrack-*` flags). Zero leaves a value as is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConntrackConfig {
    /// Entries per CPU (`nf_conntrack_max` = max(this × CPUs, `min`)).
    pub max_per_core: u32,
    /// Lower bound for `nf_conntrack_max`.
    pub min: u32,
    /// `nf_conntrack_tcp_timeout_established`.
    pub tcp_established_timeout: Duration,
    /// `nf_conntrack_tcp_timeout_close_wait`.
    pub tcp_close_wait_timeout: Duration,
    /// `nf_conntrack_tcp_be_liberal=1`.
    pub tcp_be_liberal: bool,
    /// `nf_conntrack_udp_timeout`.
    pub udp_timeout: Duration,
    /// `nf_conntrack_udp_timeout_stream`.
    pub udp_stream_timeout: Duration,
}

impl ConntrackConfig {
    /// The conntrack sysctls to write on a node with `cpus` CPUs, as upstream's
    /// `kube-proxy` server does before its proxier starts: `nf_conntrack_max` =
    /// max(`max_per_core` × CPUs, `min`) (none when `max_per_core` is 0), the TCP
    /// established/close-wait and UDP timeouts in whole seconds when non-zero, and
    /// `nf_conntrack_tcp_be_liberal=1` when asked for. Keys are paths under `/proc/sys`.
    pub fn sysctls(&self, cpus: usize) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_per_core > 0 {
            let cpus = u64::try_from(cpus).unwrap_or(u64::MAX);
            let max = (u64::from(self.max_per_core).saturating_mul(cpus)).max(u64::from(self.min));
            out.push(("net/netfilter/nf_conntrack_max", max.to_string()));
        }
        for (key, d) in [
            (
                "net/netfilter/nf_conntrack_tcp_timeout_established",
                self.tcp_established_timeout,
            ),
            (
                "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
                self.tcp_close_wait_timeout,
            ),
            ("net/netfilter/nf_conntrack_udp_timeout", self.udp_timeout),
            (
                "net/netfilter/nf_conntrack_udp_timeout_stream",
                self.udp_stream_timeout,
            ),
        ] {
            if !d.is_zero() {
                out.push((key, d.as_secs().to_string()));
            }
        }
        if self.tcp_be_liberal {
            out.push(("net/netfilter/nf_conntrack_tcp_be_liberal", "1".to_string()));
        }
        out
    }
}

/// Everything kube-proxy-rs was told, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The proxy mode.
    pub mode: ProxyMode,
    /// `--config`, if given.
    pub config_file: Option<PathBuf>,
    /// `--cleanup`: remove rules of every mode and exit.
    pub cleanup: bool,
    /// `--kubeconfig` / `clientConnection.kubeconfig`; in-cluster config when unset.
    pub kubeconfig: Option<PathBuf>,
    /// `--master`.
    pub master: Option<String>,
    /// `--hostname-override` / `hostnameOverride`, trimmed and lower-cased.
    pub hostname_override: Option<String>,
    /// `--cluster-cidr` / `clusterCIDR`: at most one CIDR per family.
    pub cluster_cidrs: Vec<IpNet>,
    /// `--detect-local-mode` with its interface parameter.
    pub detect_local_mode: DetectLocalMode,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// `--iptables-masquerade-bit` (0-31); the mark is `1 << bit` (0x4000 by default).
    pub masquerade_bit: u8,
    /// `--iptables-localhost-nodeports`.
    pub localhost_node_ports: bool,
    /// `--nodeport-addresses`; empty means every local address.
    pub node_port_addresses: Vec<NodePortAddress>,
    /// `--healthz-bind-address`; `None` disables the server.
    pub healthz_bind_address: Option<SocketAddr>,
    /// `--metrics-bind-address`; `None` disables the server.
    pub metrics_bind_address: Option<SocketAddr>,
    /// Period of full resyncs and cleanups.
    pub sync_period: Duration,
    /// Minimum time between syncs.
    pub min_sync_period: Duration,
    /// IPVS settings.
    pub ipvs: IpvsConfig,
    /// Conntrack settings.
    pub conntrack: ConntrackConfig,
    /// `-v` / `logging.verbosity`.
    pub verbosity: u32,
    /// `--manifests`: read objects from files instead of the API server.
    pub manifests: Option<PathBuf>,
    /// `--once`.
    pub once: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--iptables-backend`.
    pub iptables_backend: IptablesBackend,
    /// `featureGates` from the file (accepted, recorded, not acted on).
    pub feature_gates: BTreeMap<String, bool>,
}

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Bad command line (unknown flag, malformed value), or `--help` / `--version`: clap's
    /// error, whose `exit()` prints it as clap does.
    #[error(transparent)]
    Args(#[from] clap::Error),
    /// The `--config` file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `--config` file could not be decoded.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: FileError,
    },
    /// A value that decodes but is not acceptable.
    #[error("invalid {setting} {value:?}: {reason}")]
    Invalid {
        /// The flag (`--cluster-cidr`) or file field (`clusterCIDR in PATH`).
        setting: String,
        /// The value given.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// Settings that cannot be used together.
    #[error("{0}")]
    Conflict(String),
}

/// Where a value came from, for error messages.
struct Origin<'a> {
    matches: &'a ArgMatches,
    file_path: Option<&'a Path>,
}

impl Origin<'_> {
    fn given(&self, id: &str) -> bool {
        self.matches.value_source(id) == Some(ValueSource::CommandLine)
    }

    fn flag(id: &str) -> String {
        format!("--{}", id.replace('_', "-"))
    }

    fn field(&self, field: &str) -> String {
        match self.file_path {
            Some(p) => format!("{field} in {}", p.display()),
            None => field.to_string(),
        }
    }

    /// Given flag > file value > flag default, with the name of the source.
    fn pick<T>(&self, id: &str, flag: T, field: &str, file: Option<T>) -> (T, String) {
        if self.given(id) {
            return (flag, Origin::flag(id));
        }
        match file {
            Some(v) => (v, self.field(field)),
            None => (flag, Origin::flag(id)),
        }
    }
}

fn invalid(setting: String, value: impl fmt::Display, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

fn parse_bind_address(
    raw: &str,
    default_port: u16,
    setting: String,
) -> Result<Option<SocketAddr>, ConfigError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(sa) = raw.parse::<SocketAddr>() {
        return Ok(Some(sa));
    }
    match parse_ip(raw) {
        Some(ip) => Ok(Some(SocketAddr::new(ip, default_port))),
        None => Err(invalid(
            setting,
            raw,
            "expected IP:PORT, [IPv6]:PORT, an IP, or empty",
        )),
    }
}

fn parse_cidrs(raw: &[String], setting: &str) -> Result<Vec<IpNet>, ConfigError> {
    raw.iter()
        .map(|c| {
            parse_cidr(c).ok_or_else(|| {
                invalid(
                    setting.to_string(),
                    c,
                    "expected a CIDR such as 198.18.64.0/18",
                )
            })
        })
        .collect()
}

fn non_negative(v: i32, setting: String) -> Result<u32, ConfigError> {
    u32::try_from(v).map_err(|_| invalid(setting, v, "must not be negative"))
}

const IPVS_SCHEDULERS: [&str; 12] = [
    "", "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh",
];

impl Config {
    /// Parses the command line (`args[0]` is the program name) and reads `--config`.
    pub fn load<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Flags::command().try_get_matches_from(args)?;
        let flags = Flags::from_arg_matches(&matches)?;
        let file = match &flags.config {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some(Self::parse_file(path, &text)?)
            }
        };
        Self::merge(&matches, &flags, file.as_ref())
    }

    /// Decodes a `--config` file's text (errors name `path`, line and column).
    pub fn parse_file(path: &Path, text: &str) -> Result<KubeProxyConfiguration, ConfigError> {
        KubeProxyConfiguration::parse(text).map_err(|source| ConfigError::File {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses a command line and merges it with an already decoded file (no I/O).
    pub fn from_args_and_file<I, T>(
        args: I,
        file: Option<&KubeProxyConfiguration>,
    ) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Flags::command().try_get_matches_from(args)?;
        let flags = Flags::from_arg_matches(&matches)?;
        Self::merge(&matches, &flags, file)
    }

    fn merge(
        matches: &ArgMatches,
        f: &Flags,
        file: Option<&KubeProxyConfiguration>,
    ) -> Result<Config, ConfigError> {
        let o = Origin {
            matches,
            file_path: f.config.as_deref(),
        };
        let d = KubeProxyConfiguration::default();
        let k = file.unwrap_or(&d);
        let ipt = k.iptables.clone().unwrap_or_default();
        let ipvs = k.ipvs.clone().unwrap_or_default();
        let nft = k.nftables.clone().unwrap_or_default();
        let ct = k.conntrack.clone().unwrap_or_default();
        let dl = k.detect_local.clone().unwrap_or_default();

        let (mode_raw, src) = o.pick(
            "proxy_mode",
            f.proxy_mode.clone(),
            "mode",
            non_empty(&k.mode),
        );
        let mode = match mode_raw.as_str() {
            "" | "iptables" => ProxyMode::Iptables,
            "ipvs" => ProxyMode::Ipvs,
            "nftables" => ProxyMode::Nftables,
            _ => {
                return Err(invalid(
                    src,
                    mode_raw,
                    "expected iptables, ipvs or nftables",
                ));
            }
        };

        // Sync periods: mode-specific flag > generic flag > file section of the mode > default.
        let (section, sp_file, msp_file) = match mode {
            ProxyMode::Iptables => ("iptables", ipt.sync_period, ipt.min_sync_period),
            ProxyMode::Ipvs => ("ipvs", ipvs.sync_period, ipvs.min_sync_period),
            ProxyMode::Nftables => ("nftables", nft.sync_period, nft.min_sync_period),
        };
        let (sp_id, msp_id) = match mode {
            ProxyMode::Ipvs => ("ipvs_sync_period", "ipvs_min_sync_period"),
            _ => ("iptables_sync_period", "iptables_min_sync_period"),
        };
        let (sp_flag, msp_flag) = match mode {
            ProxyMode::Ipvs => (f.ipvs_sync_period, f.ipvs_min_sync_period),
            _ => (f.iptables_sync_period, f.iptables_min_sync_period),
        };
        let period = |specific_id: &str,
                      specific: Duration,
                      generic_id: &str,
                      generic: Duration,
                      field: &str,
                      file: Option<file::GoDuration>| {
            if o.given(specific_id) {
                (specific, Origin::flag(specific_id))
            } else {
                // Upstream's v1alpha1 defaulting treats a zero period in the file as unset.
                let file = file.map(|g| g.0).filter(|d| !d.is_zero());
                o.pick(generic_id, generic, &format!("{section}.{field}"), file)
            }
        };
        let (sync_period, sync_src) = period(
            sp_id,
            sp_flag,
            "sync_period",
            f.sync_period,
            "syncPeriod",
            sp_file,
        );
        let (min_sync_period, _) = period(
            msp_id,
            msp_flag,
            "min_sync_period",
            f.min_sync_period,
            "minSyncPeriod",
            msp_file,
        );
        if sync_period.is_zero() {
            return Err(invalid(sync_src, "0s", "must be greater than 0"));
        }

        let (hostname, src) = o.pick(
            "hostname_override",
            f.hostname_override.clone(),
            "hostnameOverride",
            non_empty(&k.hostname_override).map(Some),
        );
        let hostname_override = match hostname {
            None => None,
            Some(h) if h.trim().is_empty() => {
                return Err(invalid(src, h, "must not be empty"));
            }
            Some(h) => Some(h.trim().to_lowercase()),
        };

        let (cidrs_raw, src) = o.pick(
            "cluster_cidr",
            f.cluster_cidr.clone(),
            "clusterCIDR",
            non_empty(&k.cluster_cidr).map(Some),
        );
        let cidr_list: Vec<String> = cidrs_raw
            .filter(|s| !s.is_empty())
            .map(|s| s.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let cluster_cidrs = parse_cidrs(&cidr_list, &src)?;
        let families: Vec<Family> = cluster_cidrs
            .iter()
            .map(|c| Family::of(&c.addr()))
            .collect();
        if cluster_cidrs.len() > 2 || (cluster_cidrs.len() == 2 && families[0] == families[1]) {
            return Err(invalid(
                src,
                cidr_list.join(","),
                "expected one CIDR or a dual-stack pair",
            ));
        }

        let (dlm, src) = o.pick(
            "detect_local_mode",
            f.detect_local_mode.clone(),
            "detectLocalMode",
            non_empty(&k.detect_local_mode),
        );
        let (bridge, bridge_src) = o.pick(
            "pod_bridge_interface",
            f.pod_bridge_interface.clone(),
            "detectLocal.bridgeInterface",
            non_empty(&dl.bridge_interface).map(Some),
        );
        let (prefix, prefix_src) = o.pick(
            "pod_interface_name_prefix",
            f.pod_interface_name_prefix.clone(),
            "detectLocal.interfaceNamePrefix",
            non_empty(&dl.interface_name_prefix).map(Some),
        );
        let need = |v: Option<String>, s: String, m: &str| {
            v.filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(s, "", format!("required with detect-local-mode {m}")))
        };
        let detect_local_mode = match dlm.as_str() {
            "" | "ClusterCIDR" => DetectLocalMode::ClusterCidr,
            "NodeCIDR" => DetectLocalMode::NodeCidr,
            "BridgeInterface" => {
                DetectLocalMode::BridgeInterface(need(bridge, bridge_src, "BridgeInterface")?)
            }
            "InterfaceNamePrefix" => DetectLocalMode::InterfaceNamePrefix(need(
                prefix,
                prefix_src,
                "InterfaceNamePrefix",
            )?),
            _ => {
                return Err(invalid(
                    src,
                    dlm,
                    "expected ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix",
                ));
            }
        };

        let (masq_all_file, masq_bit_file, masq_section) = match mode {
            ProxyMode::Nftables => (nft.masquerade_all, nft.masquerade_bit, "nftables"),
            _ => (ipt.masquerade_all, ipt.masquerade_bit, "iptables"),
        };
        let (masquerade_all, _) = o.pick(
            "masquerade_all",
            f.masquerade_all,
            &format!("{masq_section}.masqueradeAll"),
            masq_all_file,
        );
        let (bit, src) = o.pick(
            "iptables_masquerade_bit",
            f.iptables_masquerade_bit,
            &format!("{masq_section}.masqueradeBit"),
            masq_bit_file,
        );
        let masquerade_bit = u8::try_from(bit)
            .ok()
            .filter(|b| *b <= 31)
            .ok_or_else(|| invalid(src, bit, "expected 0-31"))?;
        let (localhost_node_ports, _) = o.pick(
            "iptables_localhost_nodeports",
            f.iptables_localhost_nodeports,
            "iptables.localhostNodePorts",
            ipt.localhost_node_ports,
        );

        let npa_file = k.node_port_addresses.clone().filter(|v| !v.is_empty());
        let (npa_raw, src) = o.pick(
            "nodeport_addresses",
            f.nodeport_addresses.clone(),
            "nodePortAddresses",
            npa_file,
        );
        let mut node_port_addresses = Vec::new();
        for raw in npa_raw.iter().filter(|s| !s.is_empty()) {
            node_port_addresses.push(match raw.as_str() {
                "primary" => NodePortAddress::Primary,
                "localhost" => NodePortAddress::Localhost,
                "all" => NodePortAddress::All,
                c => NodePortAddress::Cidr(parse_cidr(c).ok_or_else(|| {
                    invalid(
                        src.clone(),
                        c,
                        "expected a CIDR, 'primary', 'localhost' or 'all'",
                    )
                })?),
            });
        }
        if node_port_addresses.is_empty() && mode == ProxyMode::Nftables {
            node_port_addresses.push(NodePortAddress::Primary); // upstream's nftables default
        }

        let (raw, src) = o.pick(
            "healthz_bind_address",
            f.healthz_bind_address.clone(),
            "healthzBindAddress",
            non_empty(&k.healthz_bind_address),
        );
        let healthz_bind_address = parse_bind_address(&raw, 10256, src)?;
        let (raw, src) = o.pick(
            "metrics_bind_address",
            f.metrics_bind_address.clone(),
            "metricsBindAddress",
            non_empty(&k.metrics_bind_address),
        );
        let metrics_bind_address = parse_bind_address(&raw, 10249, src)?;

        let (scheduler, src) = o.pick(
            "ipvs_scheduler",
            f.ipvs_scheduler.clone(),
            "ipvs.scheduler",
            ipvs.scheduler.clone(),
        );
        if !IPVS_SCHEDULERS.contains(&scheduler.as_str()) {
            return Err(invalid(
                src,
                scheduler,
                format!("expected one of {}", IPVS_SCHEDULERS[1..].join(", ")),
            ));
        }
        let (exclude_raw, src) = o.pick(
            "ipvs_exclude_cidrs",
            f.ipvs_exclude_cidrs.clone(),
            "ipvs.excludeCIDRs",
            ipvs.exclude_cidrs.clone(),
        );
        let dur = |id: &str, flag: Duration, field: &str, file: Option<file::GoDuration>| {
            o.pick(id, flag, field, file.map(|g| g.0)).0
        };
        let ipvs_cfg = IpvsConfig {
            scheduler,
            strict_arp: o
                .pick(
                    "ipvs_strict_arp",
                    f.ipvs_strict_arp,
                    "ipvs.strictARP",
                    ipvs.strict_arp,
                )
                .0,
            exclude_cidrs: parse_cidrs(&exclude_raw, &src)?,
            tcp_timeout: dur(
                "ipvs_tcp_timeout",
                f.ipvs_tcp_timeout,
                "ipvs.tcpTimeout",
                ipvs.tcp_timeout,
            ),
            tcp_fin_timeout: dur(
                "ipvs_tcpfin_timeout",
                f.ipvs_tcpfin_timeout,
                "ipvs.tcpFinTimeout",
                ipvs.tcp_fin_timeout,
            ),
            udp_timeout: dur(
                "ipvs_udp_timeout",
                f.ipvs_udp_timeout,
                "ipvs.udpTimeout",
                ipvs.udp_timeout,
            ),
        };

        let (mpc, src) = o.pick(
            "conntrack_max_per_core",
            f.conntrack_max_per_core,
            "conntrack.maxPerCore",
            ct.max_per_core,
        );
        let max_per_core = non_negative(mpc, src)?;
        let (min, src) = o.pick("conntrack_min", f.conntrack_min, "conntrack.min", ct.min);
        let conntrack = ConntrackConfig {
            max_per_core,
            min: non_negative(min, src)?,
            tcp_established_timeout: dur(
                "conntrack_tcp_timeout_established",
                f.conntrack_tcp_timeout_established,
                "conntrack.tcpEstablishedTimeout",
                ct.tcp_established_timeout,
            ),
            tcp_close_wait_timeout: dur(
                "conntrack_tcp_timeout_close_wait",
                f.conntrack_tcp_timeout_close_wait,
                "conntrack.tcpCloseWaitTimeout",
                ct.tcp_close_wait_timeout,
            ),
            tcp_be_liberal: o
                .pick(
                    "conntrack_tcp_be_liberal",
                    f.conntrack_tcp_be_liberal,
                    "conntrack.tcpBeLiberal",
                    ct.tcp_be_liberal,
                )
                .0,
            udp_timeout: dur(
                "conntrack_udp_timeout",
                f.conntrack_udp_timeout,
                "conntrack.udpTimeout",
                ct.udp_timeout,
            ),
            udp_stream_timeout: dur(
                "conntrack_udp_timeout_stream",
                f.conntrack_udp_timeout_stream,
                "conntrack.udpStreamTimeout",
                ct.udp_stream_timeout,
            ),
        };

        let verbosity = o
            .pick(
                "verbosity",
                u32::from(f.verbosity),
                "logging.verbosity",
                k.logging.as_ref().and_then(|l| l.verbosity),
            )
            .0;
        let file_kubeconfig = k
            .client_connection
            .as_ref()
            .and_then(|c| non_empty(&c.kubeconfig))
            .map(|p| Some(PathBuf::from(p)));
        let (kubeconfig, _) = o.pick(
            "kubeconfig",
            f.kubeconfig.clone(),
            "clientConnection.kubeconfig",
            file_kubeconfig,
        );

        let iptables_backend = match f.iptables_backend.as_str() {
            "auto" => IptablesBackend::Auto,
            "legacy" => IptablesBackend::Legacy,
            "nft" => IptablesBackend::Nft,
            other => {
                return Err(invalid(
                    "--iptables-backend".into(),
                    other,
                    "expected auto, legacy or nft",
                ));
            }
        };
        if f.manifests.is_some() && (o.given("kubeconfig") || f.master.is_some()) {
            return Err(ConfigError::Conflict(
                "--manifests reads objects from files; it cannot be combined with --kubeconfig or --master"
                    .into(),
            ));
        }

        Ok(Config {
            mode,
            config_file: f.config.clone(),
            cleanup: f.cleanup,
            kubeconfig,
            master: f.master.clone(),
            hostname_override,
            cluster_cidrs,
            detect_local_mode,
            masquerade_all,
            masquerade_bit,
            localhost_node_ports,
            node_port_addresses,
            healthz_bind_address,
            metrics_bind_address,
            sync_period,
            min_sync_period,
            ipvs: ipvs_cfg,
            conntrack,
            verbosity,
            manifests: f.manifests.clone(),
            once: f.once,
            dry_run: f.dry_run,
            iptables_backend,
            feature_gates: k.feature_gates.clone().unwrap_or_default(),
        })
    }

    /// This node's name: `--hostname-override` if set, else the host name given (trimmed,
    /// lower-cased, as upstream `GetHostname`).
    pub fn node_name(&self, os_hostname: &str) -> Result<String, ConfigError> {
        let name = match &self.hostname_override {
            Some(h) => h.clone(),
            None => os_hostname.trim().to_lowercase(),
        };
        if name.is_empty() {
            return Err(invalid(
                "host name".into(),
                os_hostname,
                "must not be empty",
            ));
        }
        Ok(name)
    }

    /// The mark kube-proxy sets on packets to masquerade (`0x4000` for bit 14).
    pub fn masquerade_mark(&self) -> u32 {
        1u32 << self.masquerade_bit
    }

    /// The model's view of this configuration, for node `node_name`.
    pub fn model_options(&self, node_name: &str) -> ModelOptions {
        ModelOptions {
            node_name: node_name.to_string(),
            detect_local_mode: self.detect_local_mode.clone(),
            cluster_cidrs: self.cluster_cidrs.clone(),
            node_port_addresses: self.node_port_addresses.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
