//! Captures the IPVS fixtures of `dataplane` inside the lab VM: ipvsadm's save and list formats,
//! and the netlink messages ipvsadm and the kernel exchange (from strace hex dumps).
//!
//! ```text
//!   cargo run -p lab --example capture_ipvs -- OUTDIR   (scripts/fixtures/capture-ipvs.sh)
//!   guest: capture_ipvs.sh (ipvsadm under strace) -> blocks -> OUTDIR/{save,list,stats,..}.txt
//!                                                           -> OUTDIR/netlink.txt
//! ```
//! `netlink.txt` holds one netlink message a line, `CASE send|recv HEX`; the generic netlink
//! controller's messages (family lookup) are left out.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use lab::vm::{Vm, VmImage};

const SCRIPT: &str = include_str!("capture_ipvs.sh");

/// Text fixtures: block name -> file name.
const TEXT: &[(&str, &str)] = &[
    ("save", "save.txt"),
    ("save-restored", "save-restored.txt"),
    ("list", "list.txt"),
    ("stats", "list-stats.txt"),
    ("stats-exact", "list-stats-exact.txt"),
    ("rate", "list-rate.txt"),
    ("thresholds", "list-thresholds.txt"),
    ("persistent-conn", "list-persistent-conn.txt"),
    ("tun-info", "list-tun-info.txt"),
    ("timeout", "list-timeout.txt"),
];

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: capture_ipvs OUTDIR")?,
    );
    std::fs::create_dir_all(&out_dir)?;
    let work = std::env::temp_dir().join(format!("capture-ipvs-{}", std::process::id()));
    let strace = ["/usr/bin/strace", "/bin/strace"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .context("strace is needed (apt-get install strace)")?;
    let image = VmImage::builder(&work)
        .binary(strace, "/usr/bin/strace")
        .module("ip_vs_pe_sip")
        .build()?;
    let out = Vm::run(&image, SCRIPT, Duration::from_secs(600))?;
    let _ = std::fs::remove_dir_all(&work);
    if let Some((k, v)) = out.results.iter().find(|(k, _)| k == "setup-failed") {
        let at = out.console.find(&format!("{k}={v}")).unwrap_or(0);
        let after: String = out.console[at..]
            .lines()
            .take(6)
            .collect::<Vec<_>>()
            .join("\n");
        bail!("guest setup failed: {after}");
    }
    let version = out
        .block("version")
        .map(|v| v.trim().to_string())
        .context("no ipvsadm version")?;
    let kernel = out.kernel.clone().unwrap_or_default();
    let provenance = |what: &str| {
        format!(
            "# captured: {what} in the lab::vm guest (Linux {kernel}; {version}) by \
             scripts/fixtures/capture-ipvs.sh (lab/examples/capture_ipvs.sh)\n"
        )
    };
    for (block, file) in TEXT {
        let b = out
            .blocks
            .get(*block)
            .with_context(|| format!("no block {block}:\n{}", out.tail(30)))?;
        let cmd = SCRIPT
            .lines()
            .find_map(|l| l.strip_prefix(&format!("block {block} ")))
            .unwrap_or(block);
        std::fs::write(out_dir.join(file), provenance(cmd) + &b.text)?;
    }

    let mut netlink = provenance("netlink messages of ipvsadm (strace -e write=all -e read=all)");
    netlink
        .push_str("# CASE DIRECTION HEX (one netlink message a line; nlctrl messages left out)\n");
    for line in SCRIPT.lines() {
        if let Some(rest) = line.strip_prefix("st ")
            && let Some((case, cmd)) = rest.split_once(' ')
        {
            let _ = writeln!(netlink, "# {case}: {cmd}");
        }
    }
    let mut count = 0;
    for (name, block) in &out.blocks {
        let Some(case) = name.strip_prefix("strace:") else {
            continue;
        };
        for (dir, bytes) in
            strace_buffers(&block.text).with_context(|| format!("strace output of {case}"))?
        {
            for msg in split_messages(&bytes).with_context(|| format!("messages of {case}"))? {
                let ty = u16::from_le_bytes([msg[4], msg[5]]);
                if ty == 0x10 {
                    continue; // GENL_ID_CTRL
                }
                let hex = msg.iter().fold(String::new(), |mut s, b| {
                    let _ = write!(s, "{b:02x}");
                    s
                });
                let _ = writeln!(netlink, "{case} {dir} {hex}");
                count += 1;
            }
        }
    }
    std::fs::write(out_dir.join("netlink.txt"), netlink)?;
    let gets: Vec<_> = out
        .results
        .iter()
        .filter(|(k, _)| k.starts_with("get-"))
        .collect();
    eprintln!(
        "wrote {} text fixtures and {count} netlink messages to {}; traffic: {gets:?}; boot {:.1?}, wall {:.1?}",
        TEXT.len(),
        out_dir.display(),
        out.boot_time,
        out.wall_time
    );
    Ok(())
}

/// The buffers of `sendmsg`/`recvmsg` calls in strace output with `-e write=all -e read=all`:
/// a call line, ` * N bytes in buffer 0`, then hex dump lines ` | 00000  30 00 .. |ascii|`.
fn strace_buffers(text: &str) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut dir = None;
    let mut left = 0usize;
    for line in text.lines() {
        if line.starts_with("sendmsg(") {
            dir = Some("send");
        } else if line.starts_with("recvmsg(") {
            dir = (!line.contains("MSG_PEEK")).then_some("recv");
        } else if let Some(rest) = line.trim_start().strip_prefix("* ") {
            let n: usize = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("bad size line {line:?}"))?;
            if let Some(d) = dir {
                out.push((d, Vec::with_capacity(n)));
                left = n;
            }
        } else if line.starts_with(" | ") && left > 0 {
            let buf = &mut out.last_mut().context("dump without a call")?.1;
            let bytes = line.as_bytes();
            for i in 0..left.min(16) {
                let at = 10 + 3 * i + usize::from(i >= 8);
                let hex = bytes
                    .get(at..at + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .with_context(|| format!("bad hex dump line {line:?}"))?;
                buf.push(hex);
            }
            left -= left.min(16);
        }
    }
    Ok(out)
}

/// Splits a buffer into netlink messages by `nlmsg_len` (4-byte aligned).
fn split_messages(buf: &[u8]) -> anyhow::Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len < 16 || at + len > buf.len() {
            bail!("bad nlmsg_len {len} at {at} of {}", buf.len());
        }
        out.push(&buf[at..at + len]);
        at += len.div_ceil(4) * 4;
    }
    Ok(out)
}
