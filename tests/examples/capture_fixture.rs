//! Captures the differential suite's DUT (no rules loaded) as a `NodeState` JSON fixture for
//! the tracer's unit tests: `cargo run -p system-tests --example capture_fixture [OUT]`
//! (needs root; default OUT is dataplane/tests/fixtures/trace/dut-node.json). The file starts
//! with `#` lines saying how it was captured.

use std::io::Write;

use system_tests::DutLab;
use system_tests::capture::capture;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).unwrap_or_else(|| {
        format!(
            "{}/../dataplane/tests/fixtures/trace/dut-node.json",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let lab = DutLab::build("fixture")?;
    let mut devs: Vec<String> = lab.dut.ifaces().into_iter().map(|i| i.name).collect();
    devs.push("lo".into());
    let cap = capture(&lab.dut, &devs)?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let ip = lab.dut.sh("ip -V")?;
    let mut f = std::fs::File::create(&out)?;
    writeln!(
        f,
        "# captured by `cargo run -p system-tests --example capture_fixture` (needs root): the DUT of\n\
         # system_tests::topo (client segment eth0, ext1 eth1, ext2 eth2, client link eth3, pods ep1-3),\n\
         # no rules loaded; sections: {}\n# {} ; kernel {}",
        cap.sections
            .iter()
            .map(|(c, _)| c.split(' ').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(", "),
        ip.trim(),
        kernel.trim()
    )?;
    serde_json::to_writer_pretty(&mut f, &cap.node)?;
    writeln!(f)?;
    println!("wrote {out}");
    Ok(())
}
