//! `lab demo [--nodes N] [--router bird|frr] [--keep] [--name NAME] [--json] [--bin-dir DIR]`:
//! the whole toolkit in a lab cluster (see `lab::demo`). SIGINT and SIGTERM tear it down.
//! Exit codes: 0 every check passed, 1 a check or step failed, 130 interrupted.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use lab::demo::{self, Binaries, DemoError, DemoOpts, Format, Reporter, RouterKind};

/// The router's daemon.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RouterArg {
    Bird,
    Frr,
}

/// Arguments of `lab demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Number of nodes (2 to 8).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=8))]
    nodes: u8,
    /// The top-of-rack router's BGP daemon.
    #[arg(long, value_enum, default_value = "bird")]
    router: RouterArg,
    /// Leave the lab up at the end (`lab exec NAME HOST -- CMD`, `lab down NAME`).
    #[arg(long)]
    keep: bool,
    /// The lab's name (namespaces are `lab-NAME-HOST`).
    #[arg(long, default_value = "demo")]
    name: String,
    /// Print JSON lines on stdout (progress text goes to stderr).
    #[arg(long)]
    json: bool,
    /// Where kube-proxy-rs, bgpd and diag are (default: next to this executable).
    #[arg(long)]
    bin_dir: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    lab::require_root()?;
    let exe = std::env::current_exe().context("cannot find the lab executable")?;
    let bins = Binaries::locate(&exe, args.bin_dir.as_deref())?;
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&cancel)).context("cannot handle Ctrl-C")?;
    }
    let opts = DemoOpts {
        name: args.name,
        nodes: args.nodes,
        router: match args.router {
            RouterArg::Bird => RouterKind::Bird,
            RouterArg::Frr => RouterKind::Frr,
        },
        keep: args.keep,
        bins,
    };
    let mut out = Reporter::new(if args.json {
        Format::Json
    } else {
        Format::Text
    });
    match demo::run(&opts, &cancel, &mut out) {
        Ok(s) if s.failed == 0 => Ok(ExitCode::SUCCESS),
        Ok(_) | Err(DemoError::CheckFailed { .. }) => Ok(ExitCode::from(1)),
        Err(DemoError::Interrupted) => {
            eprintln!("lab demo: interrupted; the lab was removed");
            Ok(ExitCode::from(130))
        }
        Err(e) => Err(e.into()),
    }
}
