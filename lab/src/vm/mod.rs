//! The VM tier: boot Debian's cloud kernel under QEMU (TCG) with a generated initramfs, run a
//! shell script inside, and read back what it printed. For what this host kernel lacks (IPVS,
//! the dummy link type, loadable modules). Nothing in the host's network namespaces is
//! touched: the guest has no NIC, only a serial console.
//!
//! ```text
//!   VmImage::prepare(workdir)  (kernel cache + initramfs, see `image`)
//!        |
//!   Vm::run(&image, script, timeout)
//!        |  initrd = image + a second cpio holding /vm/script.sh
//!        v
//!   qemu-system-x86_64 -accel tcg -cpu max -machine q35 -m 512 -nographic -no-reboot -nic none
//!        |  serial console (stdout): @@BOOT, @@READY, @@RESULT k=v, @@BEGIN/@@END blocks, @@EXIT
//!        v
//!   VmOutput { console, results, blocks, exit_code, boot_time, wall_time }
//! ```
//! qemu is killed by PID when the timeout passes or when the run unwinds. Scripts get the
//! helpers of `/etc/vm-lib.sh`: `result NAME VALUE`, `check NAME CMD...`, `block NAME CMD...`,
//! `http_get HOST PORT [PATH]`, and an `ip` function that calls iproute2 instead of the busybox
//! applet. busybox `wget` crashes in this initramfs; use `http_get` (busybox `nc`).

mod cpio;
mod image;
mod kernel;
pub mod probe;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use cpio::Archive;
pub use image::{DEFAULT_MODULES, DEFAULT_PRELOAD, ImageBuilder, VmImage};
pub use kernel::{KERNEL_PACKAGE_PATTERN, Kernel, cache_dir};

/// Errors of the VM tier.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// No usable guest kernel.
    #[error("no guest kernel: {why}")]
    NoKernel {
        /// What was tried.
        why: String,
    },
    /// A host program the image needs is not installed.
    #[error(
        "`{tool}` not found on this host (apt-get install {package}, or scripts/install-deps.sh)"
    )]
    MissingTool {
        /// The program.
        tool: String,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// The kernel does not ship a module the image cannot do without.
    #[error("kernel {kernel} has no module {name}")]
    Module {
        /// The module.
        name: String,
        /// The kernel version.
        kernel: String,
    },
    /// A command could not be started.
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command exited non-zero.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// Its stderr, trimmed.
        stderr: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The guest did not get to run the script (qemu failed, the kernel panicked).
    #[error("the guest did not boot ({why}); console tail:\n{tail}")]
    Boot {
        /// qemu's exit status and stderr.
        why: String,
        /// The last lines of the serial console.
        tail: String,
    },
    /// The guest ran the script but never reported its end (a crash or a hang).
    #[error("the guest stopped before the script ended ({why}); console tail:\n{tail}")]
    Incomplete {
        /// qemu's exit status.
        why: String,
        /// The last lines of the serial console.
        tail: String,
    },
    /// The run took longer than allowed; qemu was killed.
    #[error("the guest did not finish within {after:?} (qemu killed); console tail:\n{tail}")]
    Timeout {
        /// The timeout.
        after: Duration,
        /// The last lines of the serial console.
        tail: String,
    },
}

impl VmError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VmError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

fn cmdline(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command to completion whatever its status.
pub(crate) fn cmd_output(mut cmd: Command) -> Result<Output, VmError> {
    cmd.stdin(Stdio::null());
    cmd.output().map_err(|source| VmError::Spawn {
        cmd: cmdline(&cmd),
        source,
    })
}

/// Runs a command and fails unless it exits 0.
pub(crate) fn run_checked(cmd: Command) -> Result<(), VmError> {
    let line = cmdline(&cmd);
    let out = cmd_output(cmd)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(VmError::Command {
            cmd: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A block of output a script framed with `block NAME CMD...`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    /// The command's stdout, lines joined with `\n` (with a final `\n` when not empty).
    pub text: String,
    /// Its exit code.
    pub rc: Option<i32>,
    /// Its stderr lines.
    pub stderr: String,
}

/// What a run printed, with its markers parsed.
#[derive(Debug, Clone, Default)]
pub struct VmOutput {
    /// The serial console, carriage returns removed.
    pub console: String,
    /// `@@RESULT name=value` lines, in order.
    pub results: Vec<(String, String)>,
    /// `@@BEGIN name` .. `@@END name rc=N` blocks by name (a repeated name keeps the last).
    pub blocks: BTreeMap<String, Block>,
    /// The script's exit code (`@@EXIT code=N`); `None` if the guest stopped before.
    pub exit_code: Option<i32>,
    /// The guest kernel's `uname -r`.
    pub kernel: Option<String>,
    /// Modules `modprobe` could not load at boot.
    pub failed_modules: Vec<String>,
    /// Guest uptime (seconds) when the script started.
    pub ready_uptime: Option<f64>,
    /// Host wall time from starting qemu to the script's start (`@@READY`).
    pub boot_time: Option<Duration>,
    /// Host wall time of the whole run, qemu start to exit.
    pub wall_time: Duration,
}

impl VmOutput {
    /// Parses the markers out of a console transcript.
    pub fn parse(console: &str) -> VmOutput {
        let mut out = VmOutput {
            console: console.replace('\r', ""),
            ..VmOutput::default()
        };
        let mut open: Option<(String, Vec<String>)> = None;
        let console = out.console.clone();
        for line in console.lines() {
            if let Some((name, lines)) = &mut open {
                let end = format!("@@END {name} rc=");
                if let Some(rc) = line.find(&end).map(|i| &line[i + end.len()..]) {
                    let mut text = lines.join("\n");
                    if !lines.is_empty() {
                        text.push('\n');
                    }
                    out.blocks.insert(
                        name.clone(),
                        Block {
                            text,
                            rc: rc.trim().parse().ok(),
                            stderr: String::new(),
                        },
                    );
                    open = None;
                } else {
                    lines.push(line.to_string());
                }
                continue;
            }
            let Some(i) = line.find("@@") else { continue };
            let marker = &line[i + 2..];
            let (word, rest) = marker.split_once(' ').unwrap_or((marker, ""));
            match word {
                "RESULT" => {
                    let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                    out.results.push((k.to_string(), v.to_string()));
                }
                "BEGIN" => open = Some((rest.trim().to_string(), Vec::new())),
                "STDERR" => {
                    if let Some((name, text)) = rest.split_once(": ")
                        && let Some(b) = out.blocks.get_mut(name)
                    {
                        b.stderr.push_str(text);
                        b.stderr.push('\n');
                    }
                }
                "BOOT" => out.kernel = field(rest, "kernel").map(str::to_string),
                "READY" => out.ready_uptime = field(rest, "uptime").and_then(|u| u.parse().ok()),
                "EXIT" => out.exit_code = field(rest, "code").and_then(|c| c.parse().ok()),
                "MODPROBE-FAILED" => out.failed_modules.push(rest.trim().to_string()),
                _ => {}
            }
        }
        out
    }

    /// The value of the first `@@RESULT name=...`.
    pub fn result(&self, name: &str) -> Option<&str> {
        self.results
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The stdout of block `name`.
    pub fn block(&self, name: &str) -> Option<&str> {
        self.blocks.get(name).map(|b| b.text.as_str())
    }

    /// The `check` lines that failed (value `fail rc=N`) among the results named `prefix*`.
    pub fn failed_checks(&self, prefix: &str) -> Vec<(String, String)> {
        self.results
            .iter()
            .filter(|(k, v)| k.starts_with(prefix) && v.starts_with("fail rc="))
            .cloned()
            .collect()
    }

    /// The last `n` lines of the console.
    pub fn tail(&self, n: usize) -> String {
        tail(&self.console, n)
    }
}

fn field<'a>(rest: &'a str, key: &str) -> Option<&'a str> {
    rest.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Kill qemu after this long.
    pub timeout: Duration,
    /// Extra kernel command line words.
    pub append: String,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            memory_mib: 512,
            timeout: Duration::from_secs(120),
            append: String::new(),
        }
    }
}

/// Boots guests; see the module doc.
#[derive(Debug)]
pub struct Vm;

/// qemu, killed (by PID, while still our unreaped child) and reaped when dropped.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

impl Vm {
    /// Boots `image`, runs `script` (as `/bin/sh`, helpers sourced) and powers off; fails if
    /// the guest does not finish the script within `timeout`.
    pub fn run(image: &VmImage, script: &str, timeout: Duration) -> Result<VmOutput, VmError> {
        Vm::run_with(
            image,
            script,
            &RunOpts {
                timeout,
                ..RunOpts::default()
            },
        )
    }

    /// [`Vm::run`] with options.
    pub fn run_with(image: &VmImage, script: &str, opts: &RunOpts) -> Result<VmOutput, VmError> {
        let dir = image.workdir.join(format!(
            "run-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| VmError::io("create", &dir, e))?;
        let initrd = dir.join("initrd.cpio");
        write_run_initrd(&image.initrd, script, &initrd)?;
        let err_path = dir.join("qemu.stderr");
        let err_file =
            std::fs::File::create(&err_path).map_err(|e| VmError::io("create", &err_path, e))?;

        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-accel", "tcg", "-cpu", "max", "-machine", "q35", "-smp", "1",
        ])
        .args(["-m", &opts.memory_mib.to_string()])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&image.kernel.vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet loglevel=1 {}",
            opts.append
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err_file);
        let line = cmdline(&cmd);
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|source| VmError::Spawn { cmd: line, source })?;
        let stdout = child.stdout.take();
        let mut qemu = Qemu(child);

        let (tx, rx) = mpsc::channel::<(Instant, String)>();
        let reader = std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            while let Ok(n) = r.read_until(b'\n', &mut buf) {
                if n == 0
                    || tx
                        .send((Instant::now(), String::from_utf8_lossy(&buf).into_owned()))
                        .is_err()
                {
                    break;
                }
                buf.clear();
            }
        });

        let deadline = start + opts.timeout;
        let mut console = String::new();
        let mut ready_at = None;
        let timed_out = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((at, line)) => {
                    if ready_at.is_none() && line.contains("@@READY") {
                        ready_at = Some(at - start);
                    }
                    console.push_str(&line);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break false,
                Err(mpsc::RecvTimeoutError::Timeout) => break true,
            }
        };
        // on a timeout, dropping the guard kills qemu
        let status = if timed_out { None } else { qemu.0.wait().ok() };
        drop(qemu);
        let _ = reader.join();
        let wall_time = start.elapsed();
        let _ = std::fs::write(dir.join("console.log"), &console);
        let _ = std::fs::remove_file(&initrd);

        let mut out = VmOutput::parse(&console);
        out.boot_time = ready_at;
        out.wall_time = wall_time;
        let why = || {
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            format!(
                "qemu {}; {}",
                status.map_or("killed".to_string(), |s| s.to_string()),
                stderr.trim()
            )
        };
        if timed_out {
            return Err(VmError::Timeout {
                after: opts.timeout,
                tail: out.tail(40),
            });
        }
        if ready_at.is_none() {
            return Err(VmError::Boot {
                why: why(),
                tail: out.tail(40),
            });
        }
        if out.exit_code.is_none() {
            return Err(VmError::Incomplete {
                why: why(),
                tail: out.tail(40),
            });
        }
        Ok(out)
    }
}

/// The image's initramfs followed by an archive holding the run's script.
fn write_run_initrd(base: &Path, script: &str, dest: &Path) -> Result<(), VmError> {
    let mut out = std::fs::File::create(dest).map_err(|e| VmError::io("create", dest, e))?;
    let mut src = std::fs::File::open(base).map_err(|e| VmError::io("open", base, e))?;
    std::io::copy(&mut src, &mut out).map_err(|e| VmError::io("write", dest, e))?;
    let mut a = Archive::new();
    a.file("/vm/script.sh", script.as_bytes().to_vec(), 0o755);
    a.write_to(&mut out)
        .map_err(|e| VmError::io("write", dest, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_parsed_from_a_console() {
        let console = "SeaBIOS\r\n\x1b[2J@@BOOT kernel=6.1.0-56-cloud-amd64 uptime=1.02\r\n\
            @@MODPROBE-FAILED ip_vs_twos\r\n\
            @@READY uptime=2.50\r\n\
            @@RESULT vip-get=ok\r\n\
            @@RESULT answer=hello via ipvs\r\n\
            @@BEGIN save\r\n-A -t 198.19.0.10:80 -s rr\r\n@@END save rc=0\r\n\
            @@STDERR save: warning\r\n\
            @@BEGIN empty\r\n@@END empty rc=3\r\n\
            @@RESULT bad=fail rc=1\r\n\
            @@EXIT code=0 uptime=4.1\r\n";
        let out = VmOutput::parse(console);
        assert_eq!(out.kernel.as_deref(), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(out.failed_modules, ["ip_vs_twos"]);
        assert_eq!(out.ready_uptime, Some(2.5));
        assert_eq!(out.result("answer"), Some("hello via ipvs"));
        assert_eq!(out.block("save"), Some("-A -t 198.19.0.10:80 -s rr\n"));
        assert_eq!(out.blocks["save"].rc, Some(0));
        assert_eq!(out.blocks["save"].stderr, "warning\n");
        assert_eq!(out.block("empty"), Some(""));
        assert_eq!(out.blocks["empty"].rc, Some(3));
        assert_eq!(
            out.failed_checks(""),
            [("bad".to_string(), "fail rc=1".to_string())]
        );
        assert!(out.failed_checks("vip").is_empty());
        assert_eq!(out.exit_code, Some(0));
        assert!(!out.console.contains('\r'));
    }

    #[test]
    fn a_run_without_exit_has_no_code() {
        let out = VmOutput::parse("@@READY uptime=1\nKernel panic\n");
        assert_eq!(out.exit_code, None);
        assert_eq!(out.tail(1), "Kernel panic");
    }
}
