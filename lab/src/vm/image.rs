//! The guest image: the cached kernel plus an initramfs built from this machine's Debian
//! binaries (busybox-static, iproute2, ipvsadm, iptables-nft, ipset, conntrack, nft, each with
//! the shared libraries `ldd` names), the kernel modules the data-plane tests need with their
//! dependencies, an `/init` that loads them, and whatever the caller adds.
//!
//! ```text
//!   VmImage::builder(workdir).binary(probe, "/usr/bin/ipvs-probe").data("/www/index.html", ..)
//!      .build() -> Kernel::ensure() + modules (modules.dep closure) + tools + ldd libs
//!      -> workdir/initramfs.cpio (newc, uncompressed) -> VmImage { kernel, initrd, modules }
//! ```
//! `/init` mounts proc, sys, dev, run and tmp, loads the modules, brings `lo` up, prints
//! `@@READY`, runs `/vm/script.sh` (added per run, see [`super::Vm::run`]) with the helpers of
//! `/etc/vm-lib.sh`, prints `@@EXIT code=N` and powers off.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::Archive;
use super::kernel::Kernel;
use super::{VmError, cmd_output};

/// Modules put in the image, by name: IPVS and its schedulers, the links the tests create, and
/// what iptables-nft, nft, ipset and conntrack use for kube-proxy-shaped rules.
pub const DEFAULT_MODULES: &[&str] = &[
    // IPVS and every scheduler the 6.1 kernel ships
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_sh",
    "ip_vs_mh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_dh",
    "ip_vs_fo",
    "ip_vs_ovf",
    "ip_vs_lblc",
    "ip_vs_lblcr",
    // links
    "dummy",
    "veth",
    // conntrack and NAT
    "nf_conntrack",
    "nf_conntrack_netlink",
    "nf_nat",
    "nf_reject_ipv4",
    "nf_reject_ipv6",
    // nf_tables and the expressions kube-proxy's nftables mode and iptables-nft use
    "nf_tables",
    "nft_compat",
    "nft_chain_nat",
    "nft_ct",
    "nft_nat",
    "nft_masq",
    "nft_redir",
    "nft_numgen",
    "nft_hash",
    "nft_limit",
    "nft_fib_ipv4",
    "nft_fib_ipv6",
    "nft_fib_inet",
    "nft_reject_ipv4",
    "nft_reject_ipv6",
    "nft_reject_inet",
    "nft_objref",
    // iptables (xtables) tables, matches and targets
    "ip_tables",
    "ip6_tables",
    "iptable_nat",
    "iptable_filter",
    "iptable_mangle",
    "iptable_raw",
    "ip6table_nat",
    "ip6table_filter",
    "ip6table_mangle",
    "ip6table_raw",
    "xt_comment",
    "xt_statistic",
    "xt_mark",
    "xt_conntrack",
    "xt_addrtype",
    "xt_multiport",
    "xt_recent",
    "xt_set",
    "xt_MASQUERADE",
    "xt_nat",
    "xt_REDIRECT",
    "xt_tcpudp",
    "xt_ipvs",
    "xt_state",
    "xt_CT",
    "xt_LOG",
    "xt_physdev",
    "ipt_REJECT",
    "ip6t_REJECT",
    // ipset
    "ip_set",
    "ip_set_hash_ip",
    "ip_set_hash_ipport",
    "ip_set_hash_ipportip",
    "ip_set_hash_ipportnet",
    "ip_set_hash_net",
    "ip_set_hash_netport",
    "ip_set_bitmap_port",
];

/// Modules loaded by `/init` before the script runs; the others in the image are loaded on
/// demand by the kernel (`request_module` runs busybox `modprobe`, which reads modules.alias).
pub const DEFAULT_PRELOAD: &[&str] = &["ip_vs", "dummy", "veth"];

/// Modules without which the image is useless: a build fails when the kernel lacks one.
const REQUIRED_MODULES: &[&str] = &["ip_vs", "dummy", "veth", "nf_tables"];

/// Host programs copied into the image: (guest path, host program name, Debian package).
const TOOLS: &[(&str, &str, &str)] = &[
    ("/sbin/ip", "ip", "iproute2"),
    ("/sbin/ipvsadm", "ipvsadm", "ipvsadm"),
    (
        "/usr/sbin/xtables-nft-multi",
        "xtables-nft-multi",
        "iptables",
    ),
    ("/sbin/ipset", "ipset", "ipset"),
    ("/sbin/conntrack", "conntrack", "conntrack"),
    ("/usr/sbin/nft", "nft", "nftables"),
];

/// Names `xtables-nft-multi` answers to (it dispatches on `argv[0]`).
const XTABLES_NAMES: &[&str] = &[
    "iptables",
    "iptables-save",
    "iptables-restore",
    "iptables-nft",
    "iptables-nft-save",
    "iptables-nft-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
    "ip6tables-nft",
    "ip6tables-nft-save",
    "ip6tables-nft-restore",
];

/// Where libxtables looks for its extensions (`libxt_*.so`), which `ldd` does not name.
const XTABLES_LIBDIR: &str = "/usr/lib/x86_64-linux-gnu/xtables";

/// Directories searched for host programs.
const HOST_PATH: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Shell helpers every script gets (sourced before it).
const VM_LIB: &str = r#"# helpers for VM test scripts (lab::vm); busybox applets shadow same-named programs in
# PATH, so iproute2 is reached through this function
ip() { /sbin/ip "$@"; }
# result NAME VALUE...   -> @@RESULT NAME=VALUE
result() { _n=$1; shift; echo "@@RESULT $_n=$*"; }
# check NAME CMD...      -> @@RESULT NAME=ok, or NAME=fail rc=N followed by the output
check() {
  _n=$1; shift
  if "$@" >/tmp/.check.out 2>&1; then echo "@@RESULT $_n=ok"
  else _rc=$?; echo "@@RESULT $_n=fail rc=$_rc"; sed 's/^/  | /' /tmp/.check.out; fi
}
# block NAME CMD...      -> @@BEGIN NAME, CMD's stdout, @@END NAME rc=N; stderr after it
block() {
  _n=$1; shift
  echo "@@BEGIN $_n"; "$@" 2>/tmp/.block.err; _rc=$?; echo "@@END $_n rc=$_rc"
  sed "s/^/@@STDERR $_n: /" /tmp/.block.err
}
# http_get HOST PORT [PATH] -> the response (busybox wget crashes in this initramfs)
http_get() { printf 'GET %s HTTP/1.0\r\n\r\n' "${3:-/}" | nc -w 5 "$1" "$2"; }
"#;

/// A bootable guest: kernel, initramfs and what it holds.
#[derive(Debug, Clone)]
pub struct VmImage {
    /// The kernel booted.
    pub kernel: Kernel,
    /// The initramfs (newc cpio, uncompressed).
    pub initrd: PathBuf,
    /// The directory the image and its runs' files live in.
    pub workdir: PathBuf,
    /// Modules in the image (with their dependencies).
    pub modules: Vec<String>,
    /// Modules loaded by `/init` at boot.
    pub preload: Vec<String>,
    /// Modules asked for that this kernel does not ship (optional ones only).
    pub missing_modules: Vec<String>,
    /// Bytes of file data in the initramfs.
    pub size: usize,
}

/// What the caller adds to an image.
#[derive(Debug, Clone)]
enum Extra {
    /// A program with its libraries (debug info stripped).
    Binary(PathBuf, String),
    /// A host file as is.
    File(PathBuf, String, u32),
    /// Bytes.
    Data(String, Vec<u8>, u32),
}

/// Builds a [`VmImage`]; see [`VmImage::builder`].
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    workdir: PathBuf,
    extras: Vec<Extra>,
    modules: Vec<String>,
    preload: Vec<String>,
}

impl VmImage {
    /// The default image in `workdir`: kernel from the cache, tools, default modules.
    pub fn prepare(workdir: impl AsRef<Path>) -> Result<VmImage, VmError> {
        VmImage::builder(workdir).build()
    }

    /// An image builder writing into `workdir` (created if missing).
    pub fn builder(workdir: impl AsRef<Path>) -> ImageBuilder {
        ImageBuilder {
            workdir: workdir.as_ref().to_path_buf(),
            extras: Vec::new(),
            modules: DEFAULT_MODULES.iter().map(|s| s.to_string()).collect(),
            preload: DEFAULT_PRELOAD.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl ImageBuilder {
    /// Adds a dynamically (or statically) linked program at `guest` with the libraries `ldd`
    /// names; debug info is stripped when `objcopy` is available.
    pub fn binary(mut self, host: impl AsRef<Path>, guest: &str) -> ImageBuilder {
        self.extras.push(Extra::Binary(
            host.as_ref().to_path_buf(),
            guest.to_string(),
        ));
        self
    }

    /// Adds a host file at `guest` with permission bits `perm`.
    pub fn file(mut self, host: impl AsRef<Path>, guest: &str, perm: u32) -> ImageBuilder {
        self.extras.push(Extra::File(
            host.as_ref().to_path_buf(),
            guest.to_string(),
            perm,
        ));
        self
    }

    /// Adds a file with contents `data` at `guest`.
    pub fn data(mut self, guest: &str, data: impl Into<Vec<u8>>, perm: u32) -> ImageBuilder {
        self.extras
            .push(Extra::Data(guest.to_string(), data.into(), perm));
        self
    }

    /// Also puts kernel module `name` (and its dependencies) in the image.
    pub fn module(mut self, name: &str) -> ImageBuilder {
        self.modules.push(name.to_string());
        self
    }

    /// Puts kernel module `name` in the image and loads it at boot.
    pub fn preload(mut self, name: &str) -> ImageBuilder {
        self.modules.push(name.to_string());
        self.preload.push(name.to_string());
        self
    }

    /// Loads every module of the image at boot (slower under TCG, but nothing is left to
    /// `request_module`).
    pub fn preload_all(mut self) -> ImageBuilder {
        self.preload = self.modules.clone();
        self
    }

    /// Fetches the kernel if needed and writes the initramfs.
    pub fn build(self) -> Result<VmImage, VmError> {
        fs::create_dir_all(&self.workdir).map_err(|e| VmError::io("create", &self.workdir, e))?;
        find_host("qemu-system-x86_64", "qemu-system-x86")?;
        let kernel = Kernel::ensure()?;
        let mut a = Archive::new();
        for d in [
            "/proc", "/sys", "/dev", "/run", "/tmp", "/vm", "/etc", "/root",
        ] {
            a.dir(d);
        }
        a.char_dev("/dev/console", 5, 1);

        // busybox: every applet as a link in /bin, /sbin/modprobe for the kernel's requests
        let busybox = find_host("busybox", "busybox-static")?;
        a.file("/bin/busybox", read(&busybox)?, 0o755);
        let list = cmd_output({
            let mut c = Command::new(&busybox);
            c.arg("--list");
            c
        })?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if !applet.is_empty() && applet != "busybox" {
                a.symlink(&format!("/bin/{applet}"), "busybox");
            }
        }
        a.symlink("/sbin/modprobe", "/bin/busybox");

        let mut libs = Libs::default();
        for (guest, name, pkg) in TOOLS {
            let host = find_host(name, pkg)?;
            libs.add(&host)?;
            a.file(guest, read(&host)?, 0o755);
        }
        for name in XTABLES_NAMES {
            a.symlink(&format!("/usr/sbin/{name}"), "xtables-nft-multi");
        }
        let xt = Path::new(XTABLES_LIBDIR);
        for entry in fs::read_dir(xt).map_err(|e| VmError::io("read dir", xt, e))? {
            let path = entry.map_err(|e| VmError::io("read dir", xt, e))?.path();
            if path.extension().is_some_and(|x| x == "so") {
                libs.add(&path)?;
                let guest = path.to_string_lossy().into_owned();
                a.file(&guest, read(&path)?, 0o644);
            }
        }
        for etc in ["/etc/protocols", "/etc/services", "/etc/ethertypes"] {
            if let Ok(data) = fs::read(etc) {
                a.file(etc, data, 0o644);
            }
        }
        a.file(
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
            0o644,
        );
        a.file("/etc/group", b"root:x:0:\n".to_vec(), 0o644);

        for extra in &self.extras {
            match extra {
                Extra::Binary(host, guest) => {
                    libs.add(host)?;
                    a.file(guest, stripped(host, &self.workdir)?, 0o755);
                }
                Extra::File(host, guest, perm) => {
                    a.file(guest, read(host)?, *perm);
                }
                Extra::Data(guest, data, perm) => {
                    a.file(guest, data.clone(), *perm);
                }
            }
        }
        for lib in &libs.paths {
            let guest = lib.to_string_lossy().into_owned();
            if !a.contains(&guest) {
                a.file(&guest, read(lib)?, 0o755);
            }
        }

        // modules with their dependencies and the modules.* index files
        let (files, missing) = kernel.resolve(&self.modules)?;
        if let Some(m) = missing
            .iter()
            .find(|m| REQUIRED_MODULES.contains(&m.as_str()))
        {
            return Err(VmError::Module {
                name: m.clone(),
                kernel: kernel.version.clone(),
            });
        }
        let moddir = kernel.modules_dir();
        let guest_moddir = format!("/lib/modules/{}", kernel.version);
        for f in files {
            a.file(
                &format!("{guest_moddir}/{f}"),
                read(&moddir.join(&f))?,
                0o644,
            );
        }
        for index in [
            "modules.dep",
            "modules.alias",
            "modules.symbols",
            "modules.builtin",
            "modules.builtin.modinfo",
            "modules.order",
        ] {
            if let Ok(data) = fs::read(moddir.join(index)) {
                a.file(&format!("{guest_moddir}/{index}"), data, 0o644);
            }
        }
        let modules: Vec<String> = self
            .modules
            .iter()
            .filter(|m| !missing.contains(m))
            .cloned()
            .collect();
        let preload: Vec<String> = self
            .preload
            .iter()
            .filter(|m| !missing.contains(m))
            .cloned()
            .collect();
        a.file("/init", init_script(&preload).into_bytes(), 0o755);
        a.file("/etc/vm-lib.sh", VM_LIB.as_bytes().to_vec(), 0o644);

        let initrd = self.workdir.join("initramfs.cpio");
        let tmp = self
            .workdir
            .join(format!(".initramfs.cpio.{}", std::process::id()));
        let mut out = std::io::BufWriter::new(
            fs::File::create(&tmp).map_err(|e| VmError::io("create", &tmp, e))?,
        );
        a.write_to(&mut out)
            .and_then(|()| std::io::Write::flush(&mut out))
            .map_err(|e| VmError::io("write", &tmp, e))?;
        drop(out);
        fs::rename(&tmp, &initrd).map_err(|e| VmError::io("rename", &initrd, e))?;
        Ok(VmImage {
            kernel,
            initrd,
            workdir: self.workdir,
            modules,
            preload,
            missing_modules: missing,
            size: a.data_len(),
        })
    }
}

/// The guest's `/init`.
fn init_script(modules: &[String]) -> String {
    format!(
        r#"#!/bin/sh
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
echo 1 > /proc/sys/kernel/printk
echo "@@BOOT kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in {mods}; do modprobe "$m" 2>/dev/null || echo "@@MODPROBE-FAILED $m"; done
echo "@@MODULES uptime=$(cut -d' ' -f1 /proc/uptime)"
/sbin/ip link set lo up
echo "@@READY uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ -f /vm/script.sh ]; then
  /bin/sh -c '. /etc/vm-lib.sh; . /vm/script.sh' </dev/null
  rc=$?
else
  rc=0
fi
echo "@@EXIT code=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
"#,
        mods = modules.join(" ")
    )
}

fn read(path: &Path) -> Result<Vec<u8>, VmError> {
    fs::read(path).map_err(|e| VmError::io("read", path, e))
}

/// The program's bytes without debug info (`objcopy --strip-debug`), or as is.
fn stripped(host: &Path, workdir: &Path) -> Result<Vec<u8>, VmError> {
    let out = workdir.join(format!(".strip.{}", std::process::id()));
    let mut cmd = Command::new("objcopy");
    cmd.arg("--strip-debug").arg(host).arg(&out);
    let data = match cmd_output(cmd) {
        Ok(o) if o.status.success() => read(&out)?,
        _ => read(host)?,
    };
    let _ = fs::remove_file(&out);
    Ok(data)
}

/// Finds a host program in [`HOST_PATH`].
fn find_host(name: &str, package: &'static str) -> Result<PathBuf, VmError> {
    HOST_PATH
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| VmError::MissingTool {
            tool: name.to_string(),
            package,
        })
}

/// Shared libraries (and the dynamic loader) the added programs need.
#[derive(Debug, Default)]
struct Libs {
    paths: std::collections::BTreeSet<PathBuf>,
}

impl Libs {
    fn add(&mut self, program: &Path) -> Result<(), VmError> {
        let mut cmd = Command::new("ldd");
        cmd.arg(program);
        let out = cmd_output(cmd)?;
        // "not a dynamic executable" (static programs) is not an error
        if !out.status.success() {
            return Ok(());
        }
        for path in ldd_paths(&String::from_utf8_lossy(&out.stdout)) {
            self.paths.insert(path);
        }
        Ok(())
    }
}

/// The library paths in `ldd` output (`libc.so.6 => /lib/.../libc.so.6 (0x..)` and the
/// loader's `/lib64/ld-linux-x86-64.so.2 (0x..)`; the vDSO has no file).
fn ldd_paths(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rhs)) => rhs.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_library_and_loader_paths() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibnl-3.so.200 => /lib/x86_64-linux-gnu/libnl-3.so.200 (0x00007f)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            ldd_paths(out),
            [
                "/lib/x86_64-linux-gnu/libnl-3.so.200",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(ldd_paths("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn init_loads_the_modules_and_reports_the_exit_code() {
        let init = init_script(&["ip_vs".into(), "dummy".into()]);
        assert!(init.contains("for m in ip_vs dummy; do modprobe"));
        assert!(init.contains("@@READY"));
        assert!(init.contains("@@EXIT code=$rc"));
        assert!(init.ends_with("poweroff -f\n"));
    }
}
