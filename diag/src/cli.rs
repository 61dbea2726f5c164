//! The command line: `diag collect`, `diag trace`, `diag check` (and, as `kubectl-diag`,
//! `kubectl diag ...`).
//! Parses arguments with clap, reads bundles, manifests and the live node, runs the pure
//! modules, prints, and maps the outcome to the exit status.
//!
//! ```text
//!   exit 0: delivered (no path fails), collect done
//!   exit 1: some path is dropped, refused, loops or exceeds the hop bound; check: findings
//!   exit 2: usage or input error (bad arguments, unreadable bundle, unknown name)
//! ```

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use dataplane::{CtState, Family, Packet, Protocol};

use crate::bundle::{Bundle, BundleError};
use crate::check;
use crate::cluster::{self, Cluster, ClusterOptions};
use crate::collect::{self, CollectError, CollectOptions};
use crate::command::{NameError, Target};
use crate::explain::{self, Report};
use crate::kubeapi;
use crate::objects::{Objects, ObjectsError};
use crate::redact;
use crate::resolve::{self, Name, ResolveError};
use crate::snapshot::{Snapshot, SnapshotError};

/// Exit status: delivered / done.
pub const EXIT_OK: i32 = 0;
/// Exit status: dropped or unreachable (or findings, for `check`).
pub const EXIT_DROPPED: i32 = 1;
/// Exit status: usage or input error.
pub const EXIT_USAGE: i32 = 2;

/// Explain where a packet goes on Kubernetes nodes, and why it dies.
#[derive(Debug, Parser)]
#[command(name = "diag", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot this node (or a network namespace) into a bundle, read-only.
    Collect(CollectArgs),
    /// Trace a packet from SRC to DST, live or from bundles, across nodes.
    Trace(TraceArgs),
    /// Run the blackhole catalogue over nodes, live or from bundles.
    Check(CheckArgs),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    /// Human text, the verdict first.
    Text,
    /// JSON (schemas in docs/diag.md).
    Json,
    /// A Graphviz digraph (trace only).
    Dot,
}

/// `diag check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A bundle (directory or tar) per node; repeat for several nodes.
    #[arg(long = "bundle")]
    pub bundles: Vec<PathBuf>,
    /// Check live inside these network namespaces (NS or NS=NODE); repeat for several.
    #[arg(long = "netns")]
    pub netns: Vec<String>,
    /// Kubernetes manifests (YAML or JSON; files or directories).
    #[arg(long = "manifests")]
    pub manifests: Vec<PathBuf>,
    /// An address outside the cluster to probe from and to (a client, an upstream); repeat.
    #[arg(long = "probe")]
    pub probes: Vec<std::net::IpAddr>,
    /// Run only these checks (ids from `diag check --list`); repeat.
    #[arg(long = "only")]
    pub only: Vec<String>,
    /// List the catalogue and exit.
    #[arg(long)]
    pub list: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: OutputArg,
    /// Same as --output json.
    #[arg(long)]
    pub json: bool,
}

/// `diag collect` arguments.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Output directory (or archive with --tar); default: diag-bundle-NODE-TIME.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Collect inside this network namespace (`ip netns exec NAME ...`).
    #[arg(long)]
    pub netns: Option<String>,
    /// The node name to record (default: the netns name, else the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Write one tar archive instead of a directory.
    #[arg(long)]
    pub tar: bool,
    /// Replace secrets in the saved objects (see docs/diag.md, "Redaction").
    #[arg(long)]
    pub redact: bool,
    /// With --redact: also replace addresses outside the node's own networks by pseudonyms.
    #[arg(long, requires = "redact")]
    pub redact_addresses: bool,
    /// Keep at most this many conntrack entries.
    #[arg(long, default_value_t = collect::CONNTRACK_LIMIT)]
    pub conntrack_limit: usize,
    /// bgpd's control socket (default: the first of /run/bgpd.sock, bgpd's default, and
    /// /run/bgpd/bgpd.sock, where the DaemonSet puts it, that exists).
    #[arg(long)]
    pub bgpd_socket: Option<PathBuf>,
    /// Kubeconfig for saving Pods, Services, EndpointSlices and Nodes (default: $KUBECONFIG,
    /// ~/.kube/config, in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Do not read Kubernetes objects.
    #[arg(long)]
    pub no_k8s: bool,
}

/// Protocols `--proto` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtoArg {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP echo (ICMPv6 for IPv6).
    Icmp,
    /// SCTP.
    Sctp,
}

/// Conntrack states `--ct-state` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CtArg {
    /// A new connection.
    New,
    /// An established connection.
    Established,
    /// Related to one (ICMP errors, FTP data).
    Related,
    /// Invalid.
    Invalid,
    /// Not tracked.
    Untracked,
}

/// `diag trace` arguments.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Source: IP, NS/POD, svc/NS/NAME or node/NAME.
    pub src: String,
    /// Destination: IP, NS/POD, svc/NS/NAME[:PORT] or node/NAME.
    pub dst: String,
    /// Destination port (default: the service port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Protocol (default: the service port's, else tcp).
    #[arg(long, value_enum)]
    pub proto: Option<ProtoArg>,
    /// Source port.
    #[arg(long, default_value_t = dataplane::packet::DEFAULT_SPORT)]
    pub sport: u16,
    /// A bundle (directory or tar) per node; repeat for several nodes.
    #[arg(long = "bundle")]
    pub bundles: Vec<PathBuf>,
    /// Trace live inside these network namespaces (NS or NS=NODE); repeat for several.
    #[arg(long = "netns")]
    pub netns: Vec<String>,
    /// Kubernetes manifests (YAML or JSON; files or directories) naming pods, services, nodes.
    #[arg(long = "manifests")]
    pub manifests: Vec<PathBuf>,
    /// The conntrack state to assume where no entry matches.
    #[arg(long, value_enum, default_value = "NEW")]
    pub ct_state: CtArg,
    /// The node the packet enters (an external source; default: the destination's node).
    #[arg(long)]
    pub from_node: Option<String>,
    /// The interface it arrives on (default: decided from routes).
    #[arg(long)]
    pub iif: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: OutputArg,
    /// Same as --output json.
    #[arg(long, conflicts_with = "dot")]
    pub json: bool,
    /// Same as --output dot.
    #[arg(long)]
    pub dot: bool,
    /// At most this many paths.
    #[arg(long, default_value_t = 256)]
    pub max_paths: usize,
    /// Kubeconfig for resolving names that manifests and bundles do not know (default:
    /// $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Never ask the Kubernetes API.
    #[arg(long)]
    pub no_k8s: bool,
}

/// Why a command could not run (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bundle could not be read.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A bundle file did not parse.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A manifest did not parse.
    #[error(transparent)]
    Objects(#[from] ObjectsError),
    /// Live collection failed.
    #[error(transparent)]
    Collect(#[from] CollectError),
    /// A bad name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A name that does not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The Kubernetes API could not be read.
    #[error(transparent)]
    Api(#[from] kubeapi::ApiError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Arguments that do not fit together.
    #[error("{0}")]
    Usage(String),
}

/// Runs the program with these arguments (the first is the program name); returns the exit
/// status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    let mut out = std::io::stdout().lock();
    let r = match cli.command {
        Command::Collect(a) => run_collect(&a, &mut out),
        Command::Trace(a) => run_trace(&a, &mut out),
        Command::Check(a) => run_check(&a, &mut out),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("diag: {e}");
            EXIT_USAGE
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `diag collect`.
pub fn run_collect(a: &CollectArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let target = match &a.netns {
        Some(ns) => Target::netns(ns)?,
        None => Target::Here,
    };
    let opts = CollectOptions {
        target,
        node_name: a.node_name.clone(),
        conntrack_limit: a.conntrack_limit,
        bgpd_sockets: match &a.bgpd_socket {
            Some(p) => vec![p.clone()],
            None => collect::BGPD_SOCKETS.iter().map(PathBuf::from).collect(),
        },
    };
    let mut b = collect::collect(&opts)?;
    if !a.no_k8s {
        kubeapi::add_objects(&mut b, a.kubeconfig.as_deref());
    }
    if a.redact {
        redact::redact(&mut b, a.redact_addresses);
    }
    let stamp = b.manifest.time.replace([':', '.'], "");
    let name = format!("diag-bundle-{}-{}", b.manifest.node, stamp);
    let path = a.out.clone().unwrap_or_else(|| PathBuf::from(&name));
    if a.tar {
        let path = if path.extension().is_some_and(|e| e == "tar") {
            path
        } else {
            path.with_extension("tar")
        };
        b.write_tar(&path, &name)?;
        let _ = writeln!(out, "{}", path.display());
    } else {
        b.write_dir(&path)?;
        let _ = writeln!(out, "{}", path.display());
    }
    Ok(EXIT_OK)
}

fn read_manifests(paths: &[PathBuf]) -> Result<Objects, CliError> {
    let mut objects = Objects::default();
    for p in paths {
        let mut files = Vec::new();
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io_err(p))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension()
                        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
                })
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p.clone());
        }
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(io_err(&f))?;
            objects.merge(Objects::parse(&f.display().to_string(), &text)?);
        }
    }
    Ok(objects)
}

fn live_snapshot(target: Target, node_name: Option<String>) -> Result<Snapshot, CliError> {
    let b = collect::collect(&CollectOptions {
        target,
        node_name,
        ..CollectOptions::default()
    })?;
    Ok(Snapshot::from_bundle(&b)?)
}

/// Loads the snapshots a trace uses: bundles, live namespaces, or (neither) this node live.
pub fn load_snapshots(bundles: &[PathBuf], netns: &[String]) -> Result<Vec<Snapshot>, CliError> {
    // Each bundle is read and parsed on its own thread (a node of 300k rules takes most of a
    // second); the snapshots and the first error keep the order of the arguments.
    let read = |p: &PathBuf| -> Result<Snapshot, CliError> {
        let b = Bundle::read(p)?;
        Ok(Snapshot::from_bundle(&b)?)
    };
    let loaded: Vec<Result<Snapshot, CliError>> = std::thread::scope(|s| {
        let readers: Vec<_> = bundles.iter().map(|p| s.spawn(move || read(p))).collect();
        readers
            .into_iter()
            .map(|r| r.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut snaps = loaded.into_iter().collect::<Result<Vec<_>, _>>()?;
    for spec in netns {
        let (ns, node) = match spec.split_once('=') {
            Some((ns, node)) => (ns, Some(node.to_string())),
            None => (spec.as_str(), None),
        };
        snaps.push(live_snapshot(Target::netns(ns)?, node)?);
    }
    if snaps.is_empty() {
        snaps.push(live_snapshot(Target::Here, None)?);
    }
    let mut names: Vec<&str> = snaps.iter().map(|s| s.name()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(CliError::Usage(format!(
            "two snapshots are both named {:?}; give each node its own bundle (or NS=NODE)",
            w[0]
        )));
    }
    Ok(snaps)
}

fn proto_of(arg: Option<ProtoArg>, party: Option<Protocol>, family: Family) -> Protocol {
    match arg {
        Some(ProtoArg::Tcp) => Protocol::Tcp,
        Some(ProtoArg::Udp) => Protocol::Udp,
        Some(ProtoArg::Sctp) => Protocol::Sctp,
        Some(ProtoArg::Icmp) => match family {
            Family::V4 => Protocol::Icmp,
            Family::V6 => Protocol::Icmpv6,
        },
        None => party.unwrap_or(Protocol::Tcp),
    }
}

fn ct_of(a: CtArg) -> CtState {
    match a {
        CtArg::New => CtState::New,
        CtArg::Established => CtState::Established,
        CtArg::Related => CtState::Related,
        CtArg::Invalid => CtState::Invalid,
        CtArg::Untracked => CtState::Untracked,
    }
}

/// Builds the cluster, resolves SRC and DST, traces, and returns the report.
pub fn trace_report(a: &TraceArgs) -> Result<Report, CliError> {
    let src_name: Name = a.src.parse()?;
    let dst_name: Name = a.dst.parse()?;
    let mut objects = read_manifests(&a.manifests)?;
    let snaps = load_snapshots(&a.bundles, &a.netns)?;
    let mut cluster = Cluster::new(snaps, std::mem::take(&mut objects));

    let resolve_both = |c: &Cluster| -> Result<(resolve::Party, resolve::Party), ResolveError> {
        let fam = |n: &Name| match n {
            Name::Ip(ip) => Some(Family::of(ip)),
            _ => None,
        };
        let first_fam = fam(&dst_name).or(fam(&src_name));
        let src = resolve::resolve_party(&src_name, &c.objects, &c.nodes, first_fam)?;
        let dst =
            resolve::resolve_party(&dst_name, &c.objects, &c.nodes, Some(Family::of(&src.addr)))?;
        Ok((src, dst))
    };
    let (src, dst) = match resolve_both(&cluster) {
        Ok(x) => x,
        Err(e @ (ResolveError::NotFound { .. } | ResolveError::NoAddress { .. })) if !a.no_k8s => {
            // ask the API for what the offline sources do not know
            match kubeapi::fetch(a.kubeconfig.as_deref()) {
                Ok(api) => {
                    cluster.objects.merge(api);
                    resolve_both(&cluster)?
                }
                Err(kubeapi::ApiError::NoConfig) => return Err(e.into()),
                Err(api) => {
                    return Err(CliError::Usage(format!(
                        "{e}; and the Kubernetes API: {api}"
                    )));
                }
            }
        }
        Err(e) => return Err(e.into()),
    };
    if Family::of(&src.addr) != Family::of(&dst.addr) {
        return Err(ResolveError::Family {
            src: src.addr,
            dst: dst.addr,
        }
        .into());
    }
    let family = Family::of(&dst.addr);
    let proto = proto_of(a.proto, dst.proto, family);
    let dport = match (a.port, dst.port) {
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) if proto.has_ports() => {
            return Err(CliError::Usage(format!(
                "{} needs a destination port: --port N (or svc/NS/NAME:PORT)",
                proto
            )));
        }
        (None, None) => 0,
    };
    let entry = resolve::entry(
        &src,
        &dst,
        &cluster.nodes,
        &cluster.objects,
        a.from_node.as_deref(),
        a.iif.as_deref(),
    )?;
    let mut pkt =
        Packet::with_proto(src.addr, dst.addr, proto, dport).with_ct_state(ct_of(a.ct_state));
    if proto.has_ports() {
        pkt = pkt.with_sport(a.sport);
    }
    pkt.iif = entry.iif.clone();
    let mut opts = ClusterOptions {
        max_paths: a.max_paths,
        ..ClusterOptions::default()
    };
    opts.trace.max_paths = a.max_paths;
    let t = cluster::trace(&cluster, entry.node, &pkt, &opts);
    Ok(Report::new(&cluster, &t, &src, &dst, &entry))
}

/// `diag trace`.
pub fn run_trace(a: &TraceArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let report = trace_report(a)?;
    let text = if a.json || a.output == OutputArg::Json {
        report.to_json()
    } else if a.dot || a.output == OutputArg::Dot {
        explain::dot::render(&report)
    } else {
        explain::text::render(&report)
    };
    let _ = out.write_all(text.as_bytes());
    Ok(report.verdict.exit_code)
}

/// `diag check`.
pub fn run_check(a: &CheckArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    if a.list {
        for c in check::CATALOGUE {
            let _ = writeln!(out, "{:<30} {}  [{}]", c.id, c.title, c.seen_in);
        }
        return Ok(EXIT_OK);
    }
    if let Some(bad) = a
        .only
        .iter()
        .find(|o| !check::CATALOGUE.iter().any(|c| c.id == o.as_str()))
    {
        return Err(CliError::Usage(format!(
            "--only {bad}: no such check (see diag check --list)"
        )));
    }
    if a.output == OutputArg::Dot {
        return Err(CliError::Usage("diag check has no --output dot".into()));
    }
    let objects = read_manifests(&a.manifests)?;
    let snaps = load_snapshots(&a.bundles, &a.netns)?;
    let cluster = Cluster::new(snaps, objects);
    let report = check::run(&cluster, &a.probes, &a.only);
    let text = if a.json || a.output == OutputArg::Json {
        report.to_json()
    } else {
        report.to_text()
    };
    let _ = out.write_all(text.as_bytes());
    Ok(report.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        assert_eq!(main(["diag", "trace"].map(OsString::from)), EXIT_USAGE);
        assert_eq!(main(["diag", "nosuch"].map(OsString::from)), EXIT_USAGE);
        assert_eq!(main(["diag", "--help"].map(OsString::from)), EXIT_OK);
        assert_eq!(
            main(["diag", "trace", "a/b", "x y", "--bundle", "/nonexistent"].map(OsString::from)),
            EXIT_USAGE
        );
        assert_eq!(
            main(["diag", "trace", "a/b", "c/d", "--json", "--dot"].map(OsString::from)),
            EXIT_USAGE
        );
    }
}
