//! `lab exec [NAME] HOST -- CMD...`: run a command in a host's namespace with the terminal
//! attached; the exit code is the command's.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};

use anyhow::Context;

/// Arguments of `lab exec`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// `[NAME] HOST`: the lab (optional when only one is up) and the host.
    #[arg(num_args = 1..=2, required = true, value_name = "[NAME] HOST")]
    target: Vec<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    cmd: Vec<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    lab::require_root()?;
    let (st, host) = match args.target.as_slice() {
        [host] => (super::only_lab()?, host),
        [name, host] => (lab::LabState::load(name)?, host),
        _ => anyhow::bail!("expected `[NAME] HOST`"),
    };
    let Some(h) = st.host(host) else {
        let names: Vec<&str> = st
            .hosts
            .iter()
            .filter(|h| h.kind != lab::HostKind::Switch)
            .map(|h| h.name.as_str())
            .collect();
        anyhow::bail!(
            "no host `{host}` in lab {} (hosts: {})",
            st.id,
            names.join(", ")
        );
    };
    let status = Command::new("ip")
        .args(["netns", "exec", &h.netns])
        .args(&args.cmd)
        .status()
        .with_context(|| format!("cannot run ip netns exec {}", h.netns))?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
