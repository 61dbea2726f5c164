//! `lab down NAME` removes one lab; `lab down --all` removes every kept and every stale lab
//! (labs whose owner still runs, e.g. a test, are left alone unless `--force`).

use std::process::ExitCode;

/// Arguments of `lab down`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The lab to remove (optional when only one is up).
    #[arg(conflicts_with = "all")]
    name: Option<String>,
    /// Remove every kept lab and every stale one.
    #[arg(long)]
    all: bool,
    /// Also remove labs whose owner process still runs.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    lab::require_root()?;
    if !args.all {
        let id = match args.name {
            Some(n) => n,
            None => super::only_lab()?.id,
        };
        let st = lab::down(&id, args.force)?;
        println!("lab {} removed ({} namespaces)", st.id, st.netns.len());
        return Ok(ExitCode::SUCCESS);
    }
    for id in lab::sweep_stale()? {
        println!("lab {id} removed (stale)");
    }
    for (_, st) in lab::list_labs() {
        let Ok(st) = st else { continue };
        if st.kept || args.force {
            lab::down(&st.id, true)?;
            println!("lab {} removed", st.id);
        } else {
            println!(
                "lab {} left up: in use by pid {} (`--force` removes it)",
                st.id, st.owner_pid
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
