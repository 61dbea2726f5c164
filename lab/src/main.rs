//! `lab`: build, enter, list and remove lab topologies (hosts in network namespaces).
//!
//! ```text
//!   lab up --topology FILE [--name NAME]   build and keep a lab; prints hosts and addresses
//!   lab exec [NAME] HOST -- CMD...          run CMD in HOST's namespace (NAME optional if one lab)
//!   lab list                                labs under /run/lab, their hosts and addresses
//!   lab down [NAME | --all]                 remove a lab, or every kept and stale one
//!   lab apiserver --listen ADDR --kubeconfig-out FILE [--manifests PATH]
//!                                           run the Kubernetes API server double
//!   lab demo [--nodes N] [--router bird|frr] [--keep] [--name NAME] [--json]
//!                                           the whole toolkit in a lab cluster, then down
//! ```
//! Exit codes: 0 ok, 1 failure, 2 usage (`lab exec` passes on the command's own code).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lab: {e:#}");
            ExitCode::from(1)
        }
    }
}
