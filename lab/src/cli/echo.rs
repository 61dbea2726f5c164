//! `lab echo --netns NS --name NAME [--tcp PORT]... [--udp PORT]... [--http PORT]...`: the
//! lab's echo server as a process (the demo's pods run it, so a kept lab keeps answering),
//! until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

/// Arguments of `lab echo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The namespace to serve in (`lab-ID-HOST`).
    #[arg(long)]
    netns: String,
    /// The name to answer with.
    #[arg(long)]
    name: String,
    /// TCP ports (greeting line, then close).
    #[arg(long)]
    tcp: Vec<u16>,
    /// UDP ports (one reply per datagram).
    #[arg(long)]
    udp: Vec<u16>,
    /// HTTP ports (200 with the greeting as body).
    #[arg(long)]
    http: Vec<u16>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot handle signals")?;
    }
    let spec = lab::EchoSpec {
        tcp: args.tcp,
        udp: args.udp,
        http: args.http,
        name: Some(args.name.clone()),
    };
    let server = lab::EchoServer::start(&args.netns, args.name, &spec)?;
    eprintln!("lab echo: serving as {} in {}", server.name(), args.netns);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    Ok(ExitCode::SUCCESS)
}
