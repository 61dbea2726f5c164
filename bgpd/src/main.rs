//! `bgpd --config FILE` runs the speaker; `bgpd show neighbors|routes [PREFIX]|config [--json]`
//! asks a running one over its control socket.
//!
//! Exit codes: 0 success; 1 the daemon failed or answered with an error (e.g. no such route);
//! 2 usage, configuration or connection error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bgpd::api::{self, Request, Response};
use bgpd::config::{Config, DEFAULT_CONTROL_SOCKET};
use bgpd::metrics::Metrics;
use bgpd::source::cluster::{self, ClusterWants};
use bgpd::speaker::{Control, OwnSource, Speaker};
use clap::{Parser, Subcommand};
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

/// jemalloc, with its background thread purging freed pages after `dirty_decay_ms` (1 s, set
/// in `.cargo/config.toml`):
/// after a peer withdraws a large table bgpd's RSS goes back near where it was. glibc's
/// malloc kept the peak of every UPDATE flood (per-thread arenas, freed chunks in the middle
/// of the heap): 50k prefixes announced and withdrawn left 28 MiB of a 14 MiB baseline
/// resident, 42 MiB after a second round (`tests/flood.rs`).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "bgpd", version, about = "BGP speaker for Kubernetes nodes")]
struct Cli {
    /// The configuration file (YAML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The control socket (default: the config's `control_socket`, else /run/bgpd.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Ask the running daemon.
    Show {
        #[command(subcommand)]
        what: Show,
    },
    /// Check the configuration file and exit.
    Check,
}

#[derive(Subcommand)]
enum Show {
    /// Sessions, like `birdc show protocols`.
    Neighbors {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Learned routes with their best-path reason, and our own prefixes.
    Routes {
        /// Only this prefix.
        prefix: Option<IpNet>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The running configuration (passwords redacted).
    Config {
        /// JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Some(Cmd::Show { what }) => show(&cli.config, &cli.socket, what),
        Some(Cmd::Check) => match cli.config.as_deref().map(Config::load) {
            Some(Ok(_)) => ExitCode::SUCCESS,
            Some(Err(e)) => {
                eprintln!("bgpd: {e}");
                ExitCode::from(2)
            }
            None => {
                eprintln!("bgpd: check needs --config FILE");
                ExitCode::from(2)
            }
        },
        None => {
            let Some(path) = cli.config else {
                eprintln!("bgpd: --config FILE is required to run the daemon");
                return ExitCode::from(2);
            };
            let cfg = match Config::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("bgpd: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logs();
            match daemon(path, cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("bgpd: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BGPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn socket_path(config: &Option<PathBuf>, socket: &Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(s) = socket {
        return Ok(s.clone());
    }
    match config {
        Some(c) => Config::load(c)
            .map(|c| c.control_socket)
            .map_err(|e| e.to_string()),
        None => Ok(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
    }
}

fn show(config: &Option<PathBuf>, socket: &Option<PathBuf>, what: Show) -> ExitCode {
    let path = match socket_path(config, socket) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bgpd: {e}");
            return ExitCode::from(2);
        }
    };
    let (req, json) = match &what {
        Show::Neighbors { json } => (Request::ShowNeighbors, *json),
        Show::Routes { prefix, json } => (Request::ShowRoutes { prefix: *prefix }, *json),
        Show::Config { json } => (Request::ShowConfig, *json),
    };
    let resp = match api::query(&path, &req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bgpd: control socket {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if let Response::Error(e) = &resp {
        eprintln!("bgpd: {e}");
        return ExitCode::from(1);
    }
    if json {
        let v = match &resp {
            Response::Neighbors(n) => serde_json::to_string_pretty(n),
            Response::Routes(r) => serde_json::to_string_pretty(r),
            Response::Config(c) => serde_json::to_string_pretty(c),
            Response::Error(_) => Ok(String::new()),
        };
        match v {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("bgpd: {e}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    match resp {
        Response::Neighbors(n) => print!("{}", api::neighbors_table(&n)),
        Response::Routes(r) => print!("{}", api::routes_text(&r)),
        Response::Config(c) => match serde_yaml::to_string(&c) {
            Ok(s) => print!("{s}"),
            Err(e) => {
                eprintln!("bgpd: {e}");
                return ExitCode::from(1);
            }
        },
        Response::Error(_) => {}
    }
    ExitCode::SUCCESS
}

fn daemon(path: PathBuf, cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(run(path, cfg))
}

async fn run(path: PathBuf, cfg: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let metrics = Arc::new(Metrics::new());
    let control_path = cfg.control_socket.clone();
    let metrics_addr = cfg.metrics_bind_address;
    let source = (
        cfg.node_name.clone(),
        cfg.manifests.clone(),
        cfg.kubeconfig.clone(),
    );
    let cluster = cfg.node_name.clone().map(|me| ClusterWants {
        me,
        ranges: cfg.service_advertisement.ranges(),
        mesh: cfg.node_mesh.is_some(),
    });
    let api_listener = api::bind(&control_path).context("control socket")?;
    let (mut speaker, inputs, handles) = match Speaker::start(cfg, Arc::clone(&metrics)).await {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&control_path);
            return Err(e).context("starting");
        }
    };
    tokio::spawn(api::serve(api_listener, handles.queries.clone()));
    if let Some(addr) = metrics_addr {
        let m = Arc::clone(&metrics);
        tokio::spawn(async move {
            if let Err(e) = bgpd::metrics::serve(addr, m).await {
                tracing::error!(%addr, error = %e, "metrics endpoint failed");
            }
        });
    }
    let mut own_sources = Vec::new();
    if start_source(source.clone(), handles.control.clone()).await {
        own_sources.push(OwnSource::Node);
    }
    if let Some(w) = cluster.filter(|w| w.mesh || !w.ranges.is_empty()) {
        let services = !w.ranges.is_empty();
        if start_cluster(w, source.1, source.2, handles.control.clone()).await && services {
            own_sources.push(OwnSource::Services);
        }
    }
    speaker.await_own_sources(own_sources);
    let control = handles.control.clone();
    tokio::spawn(watch_config(path.clone(), control.clone()));
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let sp = tokio::spawn(speaker.run(inputs));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading {}", path.display());
                let _ = control.send(reload_msg(&path)).await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let (tx, rx) = oneshot::channel();
    let _ = control
        .send(Control::Shutdown {
            graceful: true,
            done: tx,
        })
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(35), rx).await;
    let _ = sp.await;
    let _ = std::fs::remove_file(&control_path);
    Ok(())
}

fn reload_msg(path: &Path) -> Control {
    match Config::load(path) {
        Ok(c) => Control::Reload(Box::new(c)),
        Err(e) => Control::ReloadFailed(e),
    }
}

/// Reload when the file's content changes (checked every second).
async fn watch_config(path: PathBuf, control: mpsc::Sender<Control>) {
    let mut last = std::fs::read(&path).ok();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = std::fs::read(&path).ok();
        if now.is_some() && now != last {
            tracing::info!("{} changed: reloading", path.display());
            last = now;
            if control.send(reload_msg(&path)).await.is_err() {
                return;
            }
        }
    }
}

/// Service addresses and the node mesh, from the manifests or the API. False when there is
/// no watch.
async fn start_cluster(
    wants: ClusterWants,
    manifests: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    control: mpsc::Sender<Control>,
) -> bool {
    let (tx, mut rx) = mpsc::channel(4);
    match manifests {
        Some(m) => {
            cluster::spawn_cluster_manifests(m, wants, Duration::from_secs(1), tx);
        }
        None => {
            if let Err(e) = cluster::spawn_cluster_kube(kubeconfig, wants, tx).await {
                tracing::error!(error = %e, "no Service/Node watch: no Service addresses, no node mesh");
                return false;
            }
        }
    }
    tokio::spawn(async move {
        while let Some(c) = rx.recv().await {
            if control.send(Control::Cluster(c)).await.is_err() {
                return;
            }
        }
    });
    true
}

async fn start_source(
    (node, manifests, kubeconfig): (Option<String>, Option<PathBuf>, Option<PathBuf>),
    control: mpsc::Sender<Control>,
) -> bool {
    let Some(node) = node else { return false };
    let (tx, mut rx) = mpsc::channel(4);
    match manifests {
        Some(m) => {
            bgpd::source::spawn_manifests(m, node, Duration::from_secs(1), tx);
        }
        None => {
            if let Err(e) = bgpd::source::spawn_kube(kubeconfig, node, tx).await {
                tracing::error!(error = %e, "no Node watch: only static prefixes are advertised");
                return false;
            }
        }
    }
    tokio::spawn(async move {
        while let Some(set) = rx.recv().await {
            if control.send(Control::NodePrefixes(set)).await.is_err() {
                return;
            }
        }
    });
    true
}
