//! `lab up --topology FILE [--name NAME]`: parse the file, build the lab (Ctrl-C tears down
//! what exists), mark it kept and print its hosts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

/// Arguments of `lab up`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The topology file (YAML).
    #[arg(long, short)]
    topology: PathBuf,
    /// The lab's name, part of every namespace name (default: the topology's `name`, else the
    /// file name).
    #[arg(long)]
    name: Option<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    lab::require_root()?;
    let text = std::fs::read_to_string(&args.topology)
        .with_context(|| format!("cannot read {}", args.topology.display()))?;
    let topo =
        lab::Topology::from_yaml(&text).with_context(|| args.topology.display().to_string())?;
    let stem = args
        .topology
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    let name = args
        .name
        .or_else(|| topo.name.clone())
        .or(stem)
        .unwrap_or_else(|| "lab".into());
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&cancel)).context("cannot handle Ctrl-C")?;
    }
    let lab = match lab::Lab::named(&name) {
        Err(lab::LabError::Duplicate { .. }) => {
            anyhow::bail!("lab `{name}` is already up (`lab down {name}`, or `--name` another)")
        }
        other => other?,
    };
    eprintln!("lab: building `{name}` from {}", args.topology.display());
    // on error (Ctrl-C included) `lab` is dropped here, which removes what was built
    lab.build(&topo, &cancel)?;
    let st = lab.keep()?;
    println!(
        "lab {} is up: {} hosts",
        st.id,
        st.hosts
            .iter()
            .filter(|h| h.kind != lab::HostKind::Switch)
            .count()
    );
    super::print_hosts(&st);
    println!(
        "enter a host with `lab exec {} HOST -- CMD`, remove it with `lab down {}`",
        st.id, st.id
    );
    Ok(ExitCode::SUCCESS)
}
