//! Boots the test VM once and runs a script in it: for trying scripts by hand.
//!
//! ```text
//!   cargo run -p lab --example vm_run -- [--workdir DIR] [--bin HOST:GUEST]... SCRIPT
//! ```
//! Prints the serial console, then the boot and wall times.

use std::time::Duration;

use anyhow::Context;
use lab::vm::{Vm, VmImage};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut workdir = std::env::temp_dir().join(format!("vm-run-{}", std::process::id()));
    let mut builder_bins = Vec::new();
    let mut script = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--workdir" => workdir = args.next().context("--workdir DIR")?.into(),
            "--bin" => {
                let spec = args.next().context("--bin HOST:GUEST")?;
                let (h, g) = spec.split_once(':').context("--bin HOST:GUEST")?;
                builder_bins.push((h.to_string(), g.to_string()));
            }
            s => script = Some(s.to_string()),
        }
    }
    let script = std::fs::read_to_string(script.context("usage: vm_run [--bin H:G].. SCRIPT")?)?;
    let t = std::time::Instant::now();
    let mut b = VmImage::builder(&workdir);
    for (h, g) in &builder_bins {
        b = b.binary(h, g);
    }
    let image = b.build()?;
    eprintln!(
        "image: kernel {}, {} modules ({} missing: {:?}), {} MB, built in {:.1?}",
        image.kernel.version,
        image.modules.len(),
        image.missing_modules.len(),
        image.missing_modules,
        image.size / 1_000_000,
        t.elapsed()
    );
    let out = Vm::run(&image, &script, Duration::from_secs(300))?;
    print!("{}", out.console);
    eprintln!(
        "exit {:?}; boot (to @@READY) {:.2?} (guest uptime {:?} s); wall {:.2?}; failed modules {:?}",
        out.exit_code, out.boot_time, out.ready_uptime, out.wall_time, out.failed_modules
    );
    let _ = std::fs::remove_dir_all(&workdir);
    Ok(())
}
