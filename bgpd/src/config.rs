//! The daemon's configuration file (YAML), read into typed values with errors that name the
//! key and the line, and the difference between two configurations for a reload.
//!
//! ```text
//!   bgpd.yaml ──Config::parse(text, path)──> Config ──peer_config / import_policy / ...──> core types
//!                 │ serde_yaml: unknown key, wrong type  -> ConfigError::Syntax { key, line, column }
//!                 └ checks across keys (duplicates, ...) -> ConfigError::Invalid { key, line, .. }
//!   old Config + new Config ──diff──> ConfigDiff { added, removed, reset, policy_only, prefixes, .. }
//! ```
//!
//! Passwords are [`Secret`]s: their `Debug` and `Serialize` print `<redacted>`, so neither a log
//! line, `bgpd show config` nor a panic message can carry one.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fib::{FibConfig, RTPROT_BGP};
use crate::policy::{ExportPolicy, ImportPolicy, MaxPrefix, PrefixList, PrefixRule};
use crate::rib::RibOptions;
use crate::session::{GracefulRestartConfig, PeerAs, PeerConfig};
use crate::wire::{AfiSafi, Community, LargeCommunity};

mod cluster;
pub use cluster::{NodeMeshCfg, ServiceAdvertisementCfg};

/// Default BGP port (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;
/// Default control socket path.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/bgpd.sock";
/// Longest TCP MD5 key the kernel accepts (`TCP_MD5SIG_MAXKEYLEN`, linux/tcp.h).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// A password. Never printed: `Debug`, `Display` and `Serialize` give `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a password.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The password's bytes, for the one place that needs them (the `TCP_MD5SIG` key).
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // checked in `Config::check`, where the error can name the key and line
        String::deserialize(d).map(Self)
    }
}

/// Values parsed with `FromStr` and written back with `Display` (prefix rules, communities,
/// listen addresses).
macro_rules! text_value {
    ($t:ty, $what:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse()
                    .map_err(|e| serde::de::Error::custom(format!("{s:?} is not {}: {e}", $what)))
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

/// A prefix rule `PREFIX [ge N] [le N]` (see [`PrefixRule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule(pub PrefixRule);

impl FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<PrefixRule>().map(Rule).map_err(|e| e.to_string())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
text_value!(Rule, "a prefix rule (PREFIX [ge N] [le N])");

/// A standard community `ASN:VALUE` (RFC 1997), or a well-known name such as `no-export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommunityValue(pub Community);

impl FromStr for CommunityValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let known = [
            ("no-export", Community::NO_EXPORT),
            ("no-advertise", Community::NO_ADVERTISE),
            ("no-export-subconfed", Community::NO_EXPORT_SUBCONFED),
            ("graceful-shutdown", Community::GRACEFUL_SHUTDOWN),
        ];
        if let Some((_, c)) = known.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(Self(*c));
        }
        let (a, b) = s.split_once(':').ok_or("expected ASN:VALUE")?;
        let a: u16 = a.parse().map_err(|_| "ASN must be 0..=65535")?;
        let b: u16 = b.parse().map_err(|_| "VALUE must be 0..=65535")?;
        Ok(Self(Community(((a as u32) << 16) | b as u32)))
    }
}

impl fmt::Display for CommunityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0.0 >> 16, self.0.0 & 0xffff)
    }
}
text_value!(CommunityValue, "a community (ASN:VALUE)");

/// A large community `GLOBAL:LOCAL1:LOCAL2` (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargeCommunityValue(pub LargeCommunity);

impl FromStr for LargeCommunityValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v: Vec<u32> = s
            .split(':')
            .map(|x| {
                x.parse::<u32>()
                    .map_err(|_| "each part must be 0..=4294967295")
            })
            .collect::<Result<_, _>>()?;
        match v[..] {
            [global_admin, local_data1, local_data2] => Ok(Self(LargeCommunity {
                global_admin,
                local_data1,
                local_data2,
            })),
            _ => Err("expected GLOBAL:LOCAL1:LOCAL2".into()),
        }
    }
}

impl fmt::Display for LargeCommunityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
text_value!(
    LargeCommunityValue,
    "a large community (GLOBAL:LOCAL1:LOCAL2)"
);

/// A listen address: `ADDR` (port from `listen_port`) or `ADDR:PORT` / `[V6]:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenAddr {
    /// Address to bind.
    pub addr: IpAddr,
    /// Port, when given with the address.
    pub port: Option<u16>,
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(Self { addr, port: None });
        }
        s.parse::<SocketAddr>()
            .map(|a| Self {
                addr: a.ip(),
                port: Some(a.port()),
            })
            .map_err(|_| "expected ADDR, ADDR:PORT or [IPV6]:PORT".into())
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => fmt::Display::fmt(&SocketAddr::new(self.addr, p), f),
            None => fmt::Display::fmt(&self.addr, f),
        }
    }
}
text_value!(ListenAddr, "a listen address");

/// The peer's AS: a number, `internal` (ours: iBGP) or `external` (any other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAsn {
    /// Exactly this AS.
    Number(u32),
    /// Our AS.
    Internal,
    /// Any AS but ours.
    External,
}

impl<'de> Deserialize<'de> for PeerAsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Self::Number(n)),
            Raw::S(s) if s == "internal" => Ok(Self::Internal),
            Raw::S(s) if s == "external" => Ok(Self::External),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "{s:?}: expected an AS number, `internal` or `external`"
            ))),
        }
    }
}

impl Serialize for PeerAsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(n) => s.serialize_u32(*n),
            Self::Internal => s.serialize_str("internal"),
            Self::External => s.serialize_str("external"),
        }
    }
}

/// A hold time in seconds: 0 (no keepalives) or 3..=65535 (RFC 4271 §4.2; checked in
/// `Config::check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HoldTime(pub u16);

impl Default for HoldTime {
    fn default() -> Self {
        Self(90)
    }
}

/// Max-prefix: a number, or `{ limit, warning_only }` (RFC 4486).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MaxPrefixCfg {
    /// Most prefixes per family.
    pub limit: u32,
    /// Only log and count.
    pub warning_only: bool,
}

impl<'de> Deserialize<'de> for MaxPrefixCfg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            limit: u32,
            #[serde(default)]
            warning_only: bool,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            F(Full),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a number or { limit: N, warning_only: BOOL }")
        })? {
            Raw::N(limit) => Ok(Self {
                limit,
                warning_only: false,
            }),
            Raw::F(f) => Ok(Self {
                limit: f.limit,
                warning_only: f.warning_only,
            }),
        }
    }
}

/// What we attach to the prefixes we advertise to a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportCfg {
    /// Communities on our prefixes (RFC 1997).
    #[serde(default)]
    pub communities: Vec<CommunityValue>,
    /// Large communities (RFC 8092).
    #[serde(default)]
    pub large_communities: Vec<LargeCommunityValue>,
    /// MULTI_EXIT_DISC on our prefixes.
    #[serde(default)]
    pub med: Option<u32>,
    /// Only these of our prefixes go to the peer (default: all).
    #[serde(default)]
    pub prefixes: Option<Vec<Rule>>,
}

fn yes() -> bool {
    true
}
fn default_port() -> u16 {
    BGP_PORT
}
fn default_connect_retry() -> u64 {
    5
}

/// One `peers:` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerCfg {
    /// The peer's address (sessions are matched to peers by it).
    pub address: IpAddr,
    /// The peer's AS.
    pub asn: PeerAsn,
    /// The peer's TCP port (we connect to it). Default 179.
    #[serde(default = "default_port")]
    pub port: u16,
    /// A free-text name shown by `bgpd show neighbors`.
    #[serde(default)]
    pub description: Option<String>,
    /// TCP MD5 signature password (RFC 2385). A key that cannot be set means no connection.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Never connect, only accept (RFC 4271 PassiveTcpEstablishment).
    #[serde(default)]
    pub passive: bool,
    /// Proposed hold time in seconds (RFC 4271 §4.2). Default 90.
    #[serde(default)]
    pub hold_time: HoldTime,
    /// ConnectRetryTime in seconds (RFC 4271 §10). Default 5.
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u64,
    /// eBGP multihop: the TTL of our packets (default 1 for eBGP, 64 for iBGP).
    #[serde(default)]
    pub multihop: Option<u8>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only TTL 255 (directly connected).
    #[serde(default)]
    pub ttl_security: bool,
    /// Graceful restart with this peer (RFC 4724). Default on when enabled globally.
    #[serde(default = "yes")]
    pub graceful_restart: bool,
    /// Import prefix rules (default: the global `import`); anything else is rejected.
    #[serde(default)]
    pub import: Option<Vec<Rule>>,
    /// Accept 0.0.0.0/0 and ::/0 from this peer.
    #[serde(default)]
    pub allow_default_route: bool,
    /// Export settings.
    #[serde(default)]
    pub export: ExportCfg,
    /// Max-prefix per family (RFC 4486).
    #[serde(default)]
    pub max_prefix: Option<MaxPrefixCfg>,
    /// Source address of our connections (and our next hop of that family).
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    /// Our IPv4 next hop on this session when it is not the session's address.
    #[serde(default)]
    pub next_hop_ipv4: Option<Ipv4Addr>,
    /// Our IPv6 next hop (needed on an IPv4 session carrying IPv6 prefixes, when the
    /// interface has no global IPv6 address to find).
    #[serde(default)]
    pub next_hop_ipv6: Option<Ipv6Addr>,
}

/// Graceful restart, globally (RFC 4724).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GracefulRestartCfg {
    /// Advertise the capability and keep kernel routes across our restarts. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Restart Time we advertise, seconds (at most 4095). Default 120.
    #[serde(default = "default_restart_time")]
    pub restart_time: u16,
    /// Selection_Deferral_Timer after our restart, seconds: stale kernel routes are swept
    /// after End-of-RIB from every GR peer, or after this. Default 360.
    #[serde(default = "default_deferral")]
    pub deferral: u64,
    /// Helper: upper bound for a restarting peer's stale routes once its session is back,
    /// seconds. Default 360.
    #[serde(default = "default_deferral")]
    pub stale_routes_time: u64,
}

fn default_restart_time() -> u16 {
    120
}
fn default_deferral() -> u64 {
    360
}

impl Default for GracefulRestartCfg {
    fn default() -> Self {
        Self {
            enabled: true,
            restart_time: default_restart_time(),
            deferral: default_deferral(),
            stale_routes_time: default_deferral(),
        }
    }
}

/// ECMP settings of the decision process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipathCfg {
    /// Largest multipath set installed (1: no ECMP). Default 8.
    #[serde(default = "default_max_paths")]
    pub max_paths: u8,
    /// Paths from different neighbour ASes may share a multipath set (two ToRs with their
    /// own ASNs). Default false.
    #[serde(default)]
    pub relax: bool,
}

fn default_max_paths() -> u8 {
    8
}

impl Default for MultipathCfg {
    fn default() -> Self {
        Self {
            max_paths: default_max_paths(),
            relax: false,
        }
    }
}

fn default_table() -> u32 {
    crate::fib::RT_TABLE_MAIN
}
fn default_metric() -> u32 {
    20
}
fn default_control_socket() -> PathBuf {
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Our AS.
    pub asn: u32,
    /// Our BGP Identifier (RFC 6286).
    pub router_id: Ipv4Addr,
    /// Addresses to accept connections on (default `0.0.0.0` and `::`; `[]` for none).
    #[serde(default)]
    pub listen: Option<Vec<ListenAddr>>,
    /// Port for listen addresses without one. Default 179.
    #[serde(default = "default_port")]
    pub listen_port: u16,
    /// This Node's name: its `spec.podCIDRs` are advertised.
    #[serde(default)]
    pub node_name: Option<String>,
    /// Kubeconfig for watching the Node (in-cluster config when `node_name` is set and
    /// neither this nor `manifests` is).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// A manifest file or directory holding the Node, instead of the API.
    #[serde(default)]
    pub manifests: Option<PathBuf>,
    /// Static prefixes to advertise.
    #[serde(default)]
    pub prefixes: Vec<IpNet>,
    /// Install learned routes in the kernel. Default true.
    #[serde(default = "yes")]
    pub install_routes: bool,
    /// Kernel table for learned routes. Default 254 (main).
    #[serde(default = "default_table")]
    pub route_table: u32,
    /// Metric of our kernel routes. Default 20.
    #[serde(default = "default_metric")]
    pub route_metric: u32,
    /// The control socket (`bgpd show ...`). Default /run/bgpd.sock.
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Prometheus metrics HTTP address (`/metrics`); none by default.
    #[serde(default)]
    pub metrics_bind_address: Option<SocketAddr>,
    /// Graceful restart.
    #[serde(default)]
    pub graceful_restart: GracefulRestartCfg,
    /// Default import ranges of every peer (nothing is accepted outside them).
    #[serde(default)]
    pub import: Vec<Rule>,
    /// ECMP.
    #[serde(default)]
    pub multipath: MultipathCfg,
    /// The peers.
    #[serde(default)]
    pub peers: Vec<PeerCfg>,
    /// Service addresses to advertise (Calico-like; needs `node_name` for the watch).
    #[serde(default)]
    pub service_advertisement: ServiceAdvertisementCfg,
    /// Peer with every other Node (iBGP full mesh; needs `node_name`).
    #[serde(default)]
    pub node_mesh: Option<NodeMeshCfg>,
}

/// A configuration that cannot be used, with where it went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not YAML of the expected shape (unknown key, wrong type, bad value).
    #[error("{path}:{line}:{column}: {key}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The key (`peers[1].hold_time`), or `(document)`.
        key: String,
        /// Line (1-based; 0 when unknown).
        line: usize,
        /// Column (1-based; 0 when unknown).
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// Well-formed, but the values do not fit together.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Line (1-based; 0 when unknown).
        line: usize,
        /// What was wrong.
        message: String,
    },
}

impl ConfigError {
    /// The key the error is about.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { key, .. } | Self::Invalid { key, .. } => Some(key),
        }
    }

    /// The line (1-based) the error is about, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { line, .. } | Self::Invalid { line, .. } => (*line > 0).then_some(*line),
        }
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `peers[1].hold_time` as steps.
fn steps_of(key: &str) -> Vec<Step> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            out.push(Step::Key(name.to_string()));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Step::Index(i));
            }
        }
    }
    out
}

/// The line of `path` in the YAML `text` (1-based), found with marked-yaml's spans.
fn locate(text: &str, path: &[Step]) -> usize {
    let Ok(root) = marked_yaml::parse_yaml(0, text) else {
        return 0;
    };
    let mut node = &root;
    let mut line = 0;
    for step in path {
        let next = match (step, node) {
            (Step::Key(k), marked_yaml::Node::Mapping(m)) => {
                let found = m.iter().find(|(key, _)| key.as_str() == k.as_str());
                if let Some((key, _)) = found {
                    line = key.span().start().map_or(line, |m| m.line());
                }
                found.map(|(_, v)| v)
            }
            (Step::Index(i), marked_yaml::Node::Sequence(s)) => {
                let v = s.get(*i);
                if let Some(v) = v {
                    line = v.span().start().map_or(line, |m| m.line());
                }
                v
            }
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    line
}

fn key_of(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// serde_yaml's message reads `peers[0].hold_time: invalid type ... at line 7 column 16`;
/// split it into the key and the message without the location.
fn split_serde_message(msg: &str) -> (String, String) {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    // a key path has no spaces before its colon
    match msg.split_once(": ") {
        Some((k, rest)) if !k.contains(' ') && !k.is_empty() => (k.to_string(), rest.to_string()),
        _ => ("(document)".to_string(), msg.to_string()),
    }
}

impl Config {
    /// Read and check a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and check `text` (read from `path`, for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = serde_yaml::from_str(text).map_err(|e| {
            let (key, message) = split_serde_message(&e.to_string());
            let (mut line, mut column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            // serde_yaml places errors raised by a value's own checks at the enclosing
            // mapping; the key's own line is more useful
            let at = locate(text, &steps_of(&key));
            if at > line {
                (line, column) = (at, 0);
            }
            ConfigError::Syntax {
                path: path.to_path_buf(),
                key,
                line,
                column,
                message,
            }
        })?;
        cfg.check()
            .map_err(|(steps, message)| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: key_of(&steps),
                line: locate(text, &steps),
                message,
            })?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), (Vec<Step>, String)> {
        use Step::Index;
        #[allow(non_snake_case)]
        let Key = |k: &str| Step::Key(k.to_string());
        if self.asn == 0 {
            return Err((vec![Key("asn")], "AS 0 is reserved (RFC 7607)".into()));
        }
        if self.router_id.is_unspecified() {
            return Err((
                vec![Key("router_id")],
                "0.0.0.0 is not a valid BGP identifier (RFC 6286)".into(),
            ));
        }
        if self.graceful_restart.restart_time > crate::session::config::MAX_RESTART_TIME {
            return Err((
                vec![Key("graceful_restart"), Key("restart_time")],
                "at most 4095 seconds (RFC 4724 §3)".into(),
            ));
        }
        if self.graceful_restart.deferral == 0 || self.graceful_restart.stale_routes_time == 0 {
            return Err((
                vec![Key("graceful_restart")],
                "deferral and stale_routes_time must be positive".into(),
            ));
        }
        if self.multipath.max_paths == 0 {
            return Err((
                vec![Key("multipath"), Key("max_paths")],
                "at least 1 (1 turns ECMP off)".into(),
            ));
        }
        if self.kubeconfig.is_some() && self.manifests.is_some() {
            return Err((
                vec![Key("manifests")],
                "set either kubeconfig or manifests, not both".into(),
            ));
        }
        if (self.kubeconfig.is_some() || self.manifests.is_some()) && self.node_name.is_none() {
            return Err((
                vec![Key("node_name")],
                "needed to find this Node's podCIDRs".into(),
            ));
        }
        if self.node_name.is_none() {
            if self.node_mesh.is_some() {
                return Err((
                    vec![Key("node_mesh")],
                    "needs node_name (this Node is left out of the mesh)".into(),
                ));
            }
            if !self.service_advertisement.ranges().is_empty() {
                return Err((
                    vec![Key("service_advertisement")],
                    "external and LoadBalancer IPs need node_name (and kubeconfig or manifests)"
                        .into(),
                ));
            }
        }
        if let Some(m) = &self.node_mesh
            && matches!(m.hold_time.0, 1 | 2)
        {
            return Err((
                vec![Key("node_mesh"), Key("hold_time")],
                "hold time must be 0 or at least 3 seconds (RFC 4271 §4.2)".into(),
            ));
        }
        if let Some(pw) = self.node_mesh.as_ref().and_then(|m| m.password.as_ref())
            && (pw.0.is_empty() || pw.0.len() > MD5_MAX_KEY_LEN)
        {
            return Err((
                vec![Key("node_mesh"), Key("password")],
                format!(
                    "password for the node mesh peers is {} bytes, TCP MD5 (RFC 2385) keys are 1 to {MD5_MAX_KEY_LEN}: no connection with a key that cannot be set",
                    pw.0.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, p) in self.peers.iter().enumerate() {
            let at = |k: &str| vec![Key("peers"), Index(i), Key(k)];
            if !seen.insert(p.address) {
                return Err((at("address"), format!("peer {} is listed twice", p.address)));
            }
            if p.address.is_unspecified() || p.address.is_multicast() {
                return Err((at("address"), "not a unicast address".into()));
            }
            if p.asn == PeerAsn::Number(0) {
                return Err((at("asn"), "AS 0 is reserved (RFC 7607)".into()));
            }
            if matches!(p.hold_time.0, 1 | 2) {
                return Err((
                    at("hold_time"),
                    "hold time must be 0 or at least 3 seconds (RFC 4271 §4.2)".into(),
                ));
            }
            if let Some(pw) = &p.password {
                if pw.0.is_empty() {
                    return Err((
                        at("password"),
                        format!(
                            "empty password for peer {}: remove the key for no authentication",
                            p.address
                        ),
                    ));
                }
                if pw.0.len() > MD5_MAX_KEY_LEN {
                    return Err((
                        at("password"),
                        format!(
                            "password for peer {} is {} bytes, TCP MD5 (RFC 2385) keys are at most {MD5_MAX_KEY_LEN}: no connection with a key that cannot be set",
                            p.address,
                            pw.0.len()
                        ),
                    ));
                }
            }
            if p.multihop.is_some() && p.ttl_security {
                return Err((
                    at("ttl_security"),
                    "ttl_security (GTSM, RFC 5082) and multihop exclude each other".into(),
                ));
            }
            if p.multihop == Some(0) {
                return Err((at("multihop"), "TTL must be 1..=255".into()));
            }
            if p.connect_retry == 0 {
                return Err((at("connect_retry"), "must be positive".into()));
            }
            if let Some(l) = p.local_address
                && l.is_ipv4() != p.address.is_ipv4()
            {
                return Err((
                    at("local_address"),
                    "must be of the same family as address".into(),
                ));
            }
        }
        Ok(())
    }

    /// The sockets to listen on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        let default = [
            ListenAddr {
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: None,
            },
            ListenAddr {
                addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                port: None,
            },
        ];
        let list: Vec<ListenAddr> = match &self.listen {
            Some(l) => l.clone(),
            None => default.to_vec(),
        };
        list.iter()
            .map(|l| SocketAddr::new(l.addr, l.port.unwrap_or(self.listen_port)))
            .collect()
    }

    /// Where and how learned routes go into the kernel.
    pub fn fib_config(&self) -> FibConfig {
        FibConfig {
            table: self.route_table,
            protocol: RTPROT_BGP,
            metric: self.route_metric,
        }
    }

    /// Decision and multipath options.
    pub fn rib_options(&self) -> RibOptions {
        RibOptions {
            max_paths: self.multipath.max_paths,
            multipath_relax: self.multipath.relax,
            ..RibOptions::default()
        }
    }

    /// The session settings of a peer (RFC 4271 §8 attributes and our capabilities).
    pub fn peer_config(&self, p: &PeerCfg) -> PeerConfig {
        let peer_as = match p.asn {
            PeerAsn::Number(n) => PeerAs::Exact(n),
            PeerAsn::Internal => PeerAs::Internal,
            PeerAsn::External => PeerAs::External,
        };
        let mut c = PeerConfig::new(self.asn, self.router_id, peer_as);
        c.hold_time = p.hold_time.0;
        c.connect_retry = Duration::from_secs(p.connect_retry);
        c.passive = p.passive;
        c.families = vec![AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast];
        c.graceful_restart = (self.graceful_restart.enabled && p.graceful_restart).then(|| {
            GracefulRestartConfig {
                restart_time: self.graceful_restart.restart_time,
                notification: true,
                // kernel routes survive our restart only when we install them
                forwarding_preserved: if self.install_routes {
                    vec![AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast]
                } else {
                    Vec::new()
                },
                stale_routes_time: Duration::from_secs(self.graceful_restart.stale_routes_time),
            }
        });
        c
    }

    /// Our own prefixes from the file (the Node's podCIDRs are added at run time).
    pub fn static_prefixes(&self) -> BTreeSet<IpNet> {
        self.prefixes
            .iter()
            .chain(&self.service_advertisement.cluster_ip_ranges)
            .map(|p| p.trunc())
            .collect()
    }

    /// The import policy of a peer, given our current own prefixes.
    pub fn import_policy(&self, p: &PeerCfg, own: &BTreeSet<IpNet>) -> ImportPolicy {
        let rules = p.import.as_ref().unwrap_or(&self.import);
        ImportPolicy {
            local_as: self.asn,
            router_id: Some(self.router_id),
            ranges: PrefixList::new(rules.iter().map(|r| r.0).collect()),
            allow_default_route: p.allow_default_route,
            own_prefixes: own.iter().copied().collect(),
            max_prefix: p.max_prefix.map(|m| MaxPrefix {
                limit: m.limit,
                warning_only: m.warning_only,
            }),
            ..ImportPolicy::default()
        }
    }

    /// The export policy of a peer.
    pub fn export_policy(&self, p: &PeerCfg) -> ExportPolicy {
        ExportPolicy {
            communities: p.export.communities.iter().map(|c| c.0).collect(),
            large_communities: p.export.large_communities.iter().map(|c| c.0).collect(),
            med: p.export.med,
            prefixes: p
                .export
                .prefixes
                .as_ref()
                .map(|r| PrefixList::new(r.iter().map(|r| r.0).collect())),
            ..ExportPolicy::default()
        }
    }

    /// The peer with this address.
    pub fn peer(&self, addr: IpAddr) -> Option<&PeerCfg> {
        self.peers.iter().find(|p| p.address == addr)
    }
}

/// What a reload changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// New peers: start them.
    pub added: Vec<IpAddr>,
    /// Peers no longer configured: stop them with Cease/Peer De-configured.
    pub removed: Vec<IpAddr>,
    /// Peers whose session parameters changed: reset only those.
    pub reset: Vec<IpAddr>,
    /// Peers whose import or export policy changed (no reset: route refresh and re-export).
    pub policy: Vec<IpAddr>,
    /// Static prefixes changed: re-advertise.
    pub prefixes_changed: bool,
    /// Keys that take effect only after a restart.
    pub needs_restart: Vec<&'static str>,
}

impl ConfigDiff {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The session-relevant part of a peer: a change here resets the session.
fn session_key(c: &Config, p: &PeerCfg) -> impl PartialEq {
    (
        c.peer_config(p),
        p.port,
        p.password.clone(),
        p.multihop,
        p.ttl_security,
        p.local_address,
        p.next_hop_ipv4,
        p.next_hop_ipv6,
    )
}

/// Compare two configurations (see [`ConfigDiff`]).
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff::default();
    let global_reset = old.asn != new.asn
        || old.router_id != new.router_id
        || old.graceful_restart != new.graceful_restart
        || old.install_routes != new.install_routes;
    for p in &new.peers {
        match old.peer(p.address) {
            None => d.added.push(p.address),
            Some(o) => {
                if global_reset || session_key(old, o) != session_key(new, p) {
                    d.reset.push(p.address);
                } else if o != p || old.import != new.import {
                    d.policy.push(p.address);
                }
            }
        }
    }
    for p in &old.peers {
        if new.peer(p.address).is_none() {
            d.removed.push(p.address);
        }
    }
    d.prefixes_changed = old.static_prefixes() != new.static_prefixes();
    if old.listen_addrs() != new.listen_addrs() {
        d.needs_restart.push("listen");
    }
    if old.route_table != new.route_table || old.route_metric != new.route_metric {
        d.needs_restart.push("route_table/route_metric");
    }
    if old.install_routes != new.install_routes {
        d.needs_restart.push("install_routes");
    }
    if old.control_socket != new.control_socket {
        d.needs_restart.push("control_socket");
    }
    if old.metrics_bind_address != new.metrics_bind_address {
        d.needs_restart.push("metrics_bind_address");
    }
    if (&old.node_name, &old.kubeconfig, &old.manifests)
        != (&new.node_name, &new.kubeconfig, &new.manifests)
    {
        d.needs_restart.push("node_name/kubeconfig/manifests");
    }
    if old.multipath != new.multipath {
        d.needs_restart.push("multipath");
    }
    if old.service_advertisement.ranges() != new.service_advertisement.ranges() {
        d.needs_restart.push("service_advertisement");
    }
    if old.node_mesh.is_some() != new.node_mesh.is_some() {
        d.needs_restart.push("node_mesh");
    }
    d
}

#[cfg(test)]
mod tests;
