//! The `lab` command line: one module per subcommand, each taking its parsed arguments and
//! returning the exit code. A new subcommand (e.g. `demo`) is a variant here and a module.

mod apiserver;
mod demo;
mod down;
mod echo;
mod exec;
mod list;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Test hosts in network namespaces: nodes, pods, routers, segments.
#[derive(Debug, Parser)]
#[command(name = "lab", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a topology from a YAML file and leave it up.
    Up(up::Args),
    /// Run a command inside a host of a lab: `lab exec [NAME] HOST -- CMD...`.
    Exec(exec::Args),
    /// List the labs that are up, with their hosts and addresses.
    List(list::Args),
    /// Remove a lab (or `--all` kept and stale labs).
    Down(down::Args),
    /// Run the Kubernetes API server double until SIGINT/SIGTERM.
    Apiserver(apiserver::Args),
    /// The whole toolkit in a lab cluster: kube-proxy-rs, bgpd, a BGP router, diag.
    Demo(demo::Args),
    /// Run the lab's echo server in a namespace until SIGINT/SIGTERM (the demo's pods).
    #[command(hide = true)]
    Echo(echo::Args),
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(a) => up::run(a),
        Command::Exec(a) => exec::run(a),
        Command::List(a) => list::run(a),
        Command::Down(a) => down::run(a),
        Command::Apiserver(a) => apiserver::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Echo(a) => echo::run(a),
    }
}

/// The only lab that is up, or an error naming the candidates.
pub(crate) fn only_lab() -> anyhow::Result<lab::LabState> {
    let labs: Vec<lab::LabState> = lab::list_labs()
        .into_iter()
        .filter_map(|(_, st)| st.ok())
        .collect();
    match labs.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("no lab is up (start one with `lab up --topology FILE`)"),
        many => {
            let ids: Vec<&str> = many.iter().map(|l| l.id.as_str()).collect();
            anyhow::bail!("{} labs are up ({}): name one", ids.len(), ids.join(", "))
        }
    }
}

/// Prints a lab's hosts, one line each: name, kind, namespace, then `iface addr...`.
pub(crate) fn print_hosts(st: &lab::LabState) {
    for h in st.hosts.iter().filter(|h| h.kind != lab::HostKind::Switch) {
        let ifaces: Vec<String> = h
            .ifaces
            .iter()
            .map(|i| {
                let addrs: Vec<String> = i.addrs.iter().map(|a| a.to_string()).collect();
                format!("{} {}", i.name, addrs.join(" "))
            })
            .collect();
        println!(
            "  {:<12} {:<7} {:<28} {}",
            h.name,
            h.kind.as_str(),
            h.netns,
            ifaces.join("; ")
        );
    }
}
