//! The guest kernel: Debian's packaged `linux-image-6.1.0-N-cloud-amd64` (it ships `ip_vs`,
//! `dummy`, `veth`, nf_tables and the xtables matches as modules), fetched with apt and kept in
//! a cache shared by every test process.
//!
//! ```text
//!   apt-cache search '^linux-image-6\.1\.0-N-cloud-amd64$'  -> newest N
//!   CACHE/lock (flock)                                       -> one builder at a time
//!   CACHE/<kver>/ missing?  apt-get download; dpkg-deb -x; depmod -b  -> CACHE/<kver>/.complete
//!   -> Kernel { version, vmlinuz, root }; modules.dep -> Kernel::resolve(names) with their deps
//! ```
//! When neither the apt index nor the cache has a kernel, `apt-get update` runs once.
//! The cache is `$K8S_DATAPLANE_VM_CACHE`, else `/var/cache/k8s-dataplane-vm` when it can be
//! created, else `$TMPDIR/k8s-dataplane-vm-<uid>`. Without network, the newest kernel already in
//! the cache is used.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

use super::{VmError, cmd_output, run_checked};

/// The apt package name pattern of the guest kernel.
pub const KERNEL_PACKAGE_PATTERN: &str = r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64$";

/// An extracted guest kernel with its modules and `modules.dep`.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// `uname -r` of the guest, e.g. `6.1.0-56-cloud-amd64`.
    pub version: String,
    /// The bootable image (`boot/vmlinuz-<version>`).
    pub vmlinuz: PathBuf,
    /// The extracted package root (holds `lib/modules/<version>`).
    pub root: PathBuf,
}

/// The directory the kernel cache lives in (see the module doc).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("K8S_DATAPLANE_VM_CACHE") {
        return PathBuf::from(dir);
    }
    let system = PathBuf::from("/var/cache/k8s-dataplane-vm");
    if fs::create_dir_all(&system).is_ok() && writable(&system) {
        return system;
    }
    std::env::temp_dir().join(format!(
        "k8s-dataplane-vm-{}",
        nix::unistd::geteuid().as_raw()
    ))
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    let ok = File::create(&probe).is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

/// The ABI number `N` of `linux-image-6.1.0-N-cloud-amd64` or of a version `6.1.0-N-cloud-amd64`.
fn abi(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("linux-image-").unwrap_or(name);
    rest.strip_prefix("6.1.0-")?
        .strip_suffix("-cloud-amd64")?
        .parse()
        .ok()
}

/// The newest cloud kernel package in `apt-cache search` output.
fn newest_package(search_output: &str) -> Option<String> {
    search_output
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| abi(name).map(|n| (n, name.to_string())))
        .max()
        .map(|(_, name)| name)
}

/// The newest complete kernel in the cache.
fn newest_cached(cache: &Path) -> Option<String> {
    fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|v| cache.join(v).join(".complete").exists())
        .filter_map(|v| abi(&v).map(|n| (n, v)))
        .max()
        .map(|(_, v)| v)
}

impl Kernel {
    /// Finds the newest cloud kernel in the apt index and makes sure it is extracted (with
    /// `modules.dep`) in the cache; safe when several test processes call it at once.
    pub fn ensure() -> Result<Kernel, VmError> {
        let cache = cache_dir();
        fs::create_dir_all(&cache).map_err(|e| VmError::io("create", &cache, e))?;
        let lock_path = cache.join("lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| VmError::io("open", &lock_path, e))?;
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| VmError::io("flock", &lock_path, std::io::Error::from(errno)))?;

        let search = || {
            let mut c = Command::new("apt-cache");
            c.args(["search", "--names-only", KERNEL_PACKAGE_PATTERN]);
            cmd_output(c)
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| newest_package(&String::from_utf8_lossy(&o.stdout)))
        };
        let cached = newest_cached(&cache);
        let mut wanted = search();
        if wanted.is_none() && cached.is_none() {
            // a fresh machine's apt index may not list the kernel yet
            let mut update = Command::new("apt-get");
            update.args(["update", "-qq"]);
            if run_checked(update).is_ok() {
                wanted = search();
            }
        }
        let version = match (wanted, cached) {
            (Some(pkg), cached) => {
                let version = pkg.trim_start_matches("linux-image-").to_string();
                if cache.join(&version).join(".complete").exists() {
                    version
                } else {
                    match fetch(&cache, &pkg, &version) {
                        Ok(()) => version,
                        // offline: an older cached kernel does the job
                        Err(e) => cached.ok_or(e)?,
                    }
                }
            }
            (None, Some(cached)) => cached,
            (None, None) => {
                return Err(VmError::NoKernel {
                    why: format!(
                        "no package matches {KERNEL_PACKAGE_PATTERN} in the apt index and none \
                         is cached in {} (run `apt-get update`)",
                        cache.display()
                    ),
                });
            }
        };
        let root = cache.join(&version);
        Ok(Kernel {
            vmlinuz: root.join("boot").join(format!("vmlinuz-{version}")),
            root,
            version,
        })
    }

    /// `lib/modules/<version>` in the extracted tree.
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.version)
    }

    /// The module files (paths relative to [`Kernel::modules_dir`]) needed to load `names`
    /// (`-` and `_` are the same in module names), dependencies first, and the names that
    /// the kernel does not ship.
    pub fn resolve(&self, names: &[String]) -> Result<(Vec<String>, Vec<String>), VmError> {
        let dep_path = self.modules_dir().join("modules.dep");
        let text = fs::read_to_string(&dep_path).map_err(|e| VmError::io("read", &dep_path, e))?;
        Ok(resolve_deps(&parse_modules_dep(&text), names))
    }
}

/// `apt-get download` + `dpkg-deb -x` + `depmod -b` into `cache/<version>`.
fn fetch(cache: &Path, pkg: &str, version: &str) -> Result<(), VmError> {
    let tmp = cache.join(format!("{version}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| VmError::io("create", &tmp, e))?;
    let result = (|| {
        let mut dl = Command::new("apt-get");
        dl.args(["download", "-q", pkg]).current_dir(&tmp);
        run_checked(dl)?;
        let deb = fs::read_dir(&tmp)
            .map_err(|e| VmError::io("read dir", &tmp, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| VmError::NoKernel {
                why: format!("apt-get download {pkg} left no .deb in {}", tmp.display()),
            })?;
        let root = tmp.join("root");
        let mut x = Command::new("dpkg-deb");
        x.arg("-x").arg(&deb).arg(&root);
        run_checked(x)?;
        let mut depmod = Command::new("depmod");
        depmod.arg("-b").arg(&root).arg(version);
        run_checked(depmod)?;
        let complete = root.join(".complete");
        fs::write(&complete, pkg).map_err(|e| VmError::io("write", &complete, e))?;
        let dest = cache.join(version);
        let _ = fs::remove_dir_all(&dest);
        fs::rename(&root, &dest).map_err(|e| VmError::io("rename", &dest, e))
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}

/// `modules.dep`: module name -> (its path, the paths it depends on).
type ModulesDep = BTreeMap<String, (String, Vec<String>)>;

/// The module name of a path in `modules.dep` (`kernel/net/netfilter/ipvs/ip_vs_rr.ko` ->
/// `ip_vs_rr`; compressed modules too).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let base = file.split(".ko").next().unwrap_or(file);
    base.replace('-', "_")
}

fn parse_modules_dep(text: &str) -> ModulesDep {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(path, deps)| {
            (
                module_name(path),
                (
                    path.trim().to_string(),
                    deps.split_whitespace().map(str::to_string).collect(),
                ),
            )
        })
        .collect()
}

/// The files for `names` and their dependencies (each once, dependencies first), and the
/// names not found.
fn resolve_deps(dep: &ModulesDep, names: &[String]) -> (Vec<String>, Vec<String>) {
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    let mut missing = Vec::new();
    for name in names {
        let key = name.replace('-', "_");
        let Some((path, deps)) = dep.get(&key) else {
            missing.push(name.clone());
            continue;
        };
        // modules.dep lists the full closure of a module's dependencies
        for f in deps.iter().rev().chain(std::iter::once(path)) {
            if seen.insert(f.clone()) {
                files.push(f.clone());
            }
        }
    }
    (files, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_abi_numerically() {
        let out = "linux-image-6.1.0-9-cloud-amd64 - Linux 6.1\n\
                   linux-image-6.1.0-56-cloud-amd64 - Linux 6.1\n\
                   linux-image-6.1.0-100-cloud-amd64-dbg - debug\n\
                   linux-image-6.1.0-47-cloud-amd64 - Linux 6.1\n";
        assert_eq!(
            newest_package(out).as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        assert_eq!(newest_package(""), None);
    }

    #[test]
    fn resolves_dependency_closures_once_each() {
        let dep = parse_modules_dep(
            "kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko\n\
             kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko\n\
             kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko\n\
             kernel/lib/libcrc32c.ko:\n\
             kernel/drivers/net/dummy.ko.xz:\n",
        );
        let names = ["ip_vs_rr", "ip-vs", "dummy", "ip_vs_nope"].map(String::from);
        let (files, missing) = resolve_deps(&dep, &names);
        assert_eq!(
            files,
            [
                "kernel/lib/libcrc32c.ko",
                "kernel/net/netfilter/nf_conntrack.ko",
                "kernel/net/netfilter/ipvs/ip_vs.ko",
                "kernel/net/netfilter/ipvs/ip_vs_rr.ko",
                "kernel/drivers/net/dummy.ko.xz",
            ]
        );
        assert_eq!(missing, ["ip_vs_nope"]);
    }
}
