//! `lab list`: every lab under /run/lab with its state, hosts and addresses.

use std::process::ExitCode;

/// Arguments of `lab list`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only the lab ids, one per line.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let labs = lab::list_labs();
    if labs.is_empty() && !args.quiet {
        println!("no lab is up");
    }
    for (path, st) in labs {
        match st {
            Ok(st) if args.quiet => println!("{}", st.id),
            Ok(st) => {
                let how = if st.kept {
                    "kept".to_string()
                } else if st.owner_alive() {
                    format!("in use by pid {}", st.owner_pid)
                } else {
                    "stale (owner died; `lab down --all` removes it)".to_string()
                };
                println!(
                    "{} ({}): {how}, {} namespaces, {} processes",
                    st.id,
                    st.name,
                    st.netns.len(),
                    st.pids.len()
                );
                super::print_hosts(&st);
            }
            Err(e) => eprintln!("lab: {}: {e}", path.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
