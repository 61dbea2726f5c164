//! `lab apiserver --listen ADDR --kubeconfig-out FILE [--manifests PATH]`: run the Kubernetes
//! API server double as a process (in a lab host's namespace, for example) until SIGINT or
//! SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use lab::apiserver::{ApiServer, ApiServerOpts, manifests};

/// Arguments of `lab apiserver`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (`0.0.0.0:6443`, `198.18.0.2:6443`, `127.0.0.1:0` for any port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write a kubeconfig pointing at the server (plain HTTP, no credentials).
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Initial objects: a YAML/JSON file or a directory of them.
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 60)]
    bookmark_interval: u64,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot handle signals")?;
    }
    let objects = match &args.manifests {
        Some(p) => manifests::load(p)?,
        None => Vec::new(),
    };
    let count = objects.len();
    let api = ApiServer::start(ApiServerOpts {
        listen: args.listen,
        bookmark_interval: Duration::from_secs(args.bookmark_interval.max(1)),
        objects,
        ..Default::default()
    })?;
    if let Some(path) = &args.kubeconfig_out {
        api.kubeconfig(path)?;
    }
    // A supervisor may stop reading stdout: a closed pipe must not stop the server.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "lab apiserver: serving {} ({count} objects)",
        api.url()
    );
    if let Some(path) = &args.kubeconfig_out {
        let _ = writeln!(
            out,
            "lab apiserver: kubeconfig written to {}",
            path.display()
        );
    }
    let _ = out.flush();
    drop(out);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("lab apiserver: stopping");
    drop(api);
    Ok(ExitCode::SUCCESS)
}
