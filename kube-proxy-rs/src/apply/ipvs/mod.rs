//! IPVS mode's kernel layer: the virtual services over generic netlink, the `kube-ipvs0`
//! addresses over rtnetlink, the ipsets through `ipset restore`, and the helper iptables
//! rules through the iptables [`RuleWriter`]. Each piece sits behind a small trait with a
//! stateful fake, so [`IpvsProxier`] runs in tests without root.
//!
//! ```text
//!   ProxyState ──render_ipvs──> IpvsPlan
//!     1. kube-ipvs0: ensure the dummy; node addresses (other links) -> NodePort services
//!     2. ipsets:   ipset save ──restore_input──> ipset restore -exist (create/del/add)
//!     3. rules:    iptables-restore --noflush (nat, filter); jump rules (-C / -I) and the
//!                  KUBE-PROXY-CANARY chains (mangle, nat, filter) on full syncs
//!     4. VIPs:     ip addr add what is missing on kube-ipvs0
//!     5. IPVS:     netlink dump ──diff──> ops (graceful: weight 0, delete at 0 connections)
//!     6. VIPs:     ip addr del what is no longer wanted (this family only)
//! ```
//! Both families share `kube-ipvs0` and the IPVS table: each proxier only looks at and
//! removes services and addresses of its own family.

pub mod cleanup;
mod diff;
mod link;
mod mode;
mod netlink;
mod sets;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;

use dataplane::Family;
use dataplane::ipvs::IpvsState;
use ipnet::IpNet;

use crate::apply::{ApplyError, RuleWriter};
use crate::model::ProxyState;
use crate::render::ipvs::{DUMMY_INTERFACE, IpvsOptions, IpvsPlan, jump_rules, render_ipvs};

pub use diff::{DiffSummary, IpvsOp, apply_ops, diff};
pub use link::RtLink;
pub use netlink::IpvsNetlink;
pub use sets::{FakeSets, IpsetExec, SetWriter, parse_save, restore_input};

/// Why an IPVS-mode kernel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    /// A socket call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The generic netlink family "IPVS" is not registered.
    #[error("the IPVS netlink family is missing (errno {errno}): is the ip_vs module loaded?")]
    NoFamily {
        /// The controller's errno (2: ENOENT).
        errno: i32,
    },
    /// The kernel refused a request.
    #[error("{op}: {}", std::io::Error::from_raw_os_error(*errno))]
    Kernel {
        /// The request, as the equivalent command (`ipvsadm -a -t …`, `ip addr add …`).
        op: String,
        /// The errno.
        errno: i32,
    },
    /// An answer did not decode.
    #[error("{op}: undecodable answer: {message}")]
    Decode {
        /// The request.
        op: String,
        /// The decoder's message.
        message: String,
    },
    /// A program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The error from exec.
        source: std::io::Error,
    },
    /// A program failed.
    #[error("`{cmd}` failed: {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its stderr.
        stderr: String,
    },
    /// The fake refused an operation the kernel would refuse.
    #[error("{0}")]
    Refused(String),
}

/// The kernel's IPVS table (`ipvsadm`'s calls).
pub trait IpvsKernel {
    /// The whole table with connection counts (`ipvsadm -Ln`).
    fn dump(&mut self) -> Result<IpvsState, IpvsError>;
    /// One change.
    fn apply(&mut self, op: &IpvsOp) -> Result<(), IpvsError>;
}

/// The dummy interface holding the VIPs, and the node's other addresses.
pub trait VipLink {
    /// Creates `kube-ipvs0` when missing.
    fn ensure(&mut self) -> Result<(), IpvsError>;
    /// The addresses on `kube-ipvs0`.
    fn vips(&mut self) -> Result<BTreeSet<IpAddr>, IpvsError>;
    /// The addresses of every other interface (NodePort virtual services bind to them).
    fn node_addresses(&mut self) -> Result<Vec<IpAddr>, IpvsError>;
    /// `ip addr add IP dev kube-ipvs0`.
    fn add(&mut self, ip: IpAddr) -> Result<(), IpvsError>;
    /// `ip addr del IP dev kube-ipvs0`.
    fn del(&mut self, ip: IpAddr) -> Result<(), IpvsError>;
    /// Whether `kube-ipvs0` exists (`ip link show kube-ipvs0`), without creating it.
    fn exists(&mut self) -> Result<bool, IpvsError>;
    /// `ip link del kube-ipvs0` if it exists (its addresses go with it); whether it did.
    fn delete(&mut self) -> Result<bool, IpvsError>;
}

/// [`VipLink`] over rtnetlink.
#[derive(Debug)]
pub struct KernelLink {
    rt: RtLink,
    index: Option<u32>,
}

impl KernelLink {
    /// Opens the rtnetlink socket.
    pub fn open() -> Result<KernelLink, IpvsError> {
        Ok(KernelLink {
            rt: RtLink::open()?,
            index: None,
        })
    }

    fn index(&mut self) -> Result<u32, IpvsError> {
        match self.index {
            Some(i) => Ok(i),
            None => {
                let i = self.rt.ensure_dummy(DUMMY_INTERFACE)?;
                self.index = Some(i);
                Ok(i)
            }
        }
    }
}

impl VipLink for KernelLink {
    fn ensure(&mut self) -> Result<(), IpvsError> {
        self.index = None;
        self.index().map(|_| ())
    }
    fn vips(&mut self) -> Result<BTreeSet<IpAddr>, IpvsError> {
        let i = self.index()?;
        Ok(self
            .rt
            .addresses()?
            .into_iter()
            .filter(|(x, _)| *x == i)
            .map(|(_, ip)| ip)
            .collect())
    }
    fn node_addresses(&mut self) -> Result<Vec<IpAddr>, IpvsError> {
        let i = self.index()?;
        Ok(self
            .rt
            .addresses()?
            .into_iter()
            .filter(|(x, _)| *x != i)
            .map(|(_, ip)| ip)
            .collect())
    }
    fn add(&mut self, ip: IpAddr) -> Result<(), IpvsError> {
        let i = self.index()?;
        self.rt.add_address(i, ip)
    }
    fn del(&mut self, ip: IpAddr) -> Result<(), IpvsError> {
        let i = self.index()?;
        self.rt.del_address(i, ip)
    }
    fn exists(&mut self) -> Result<bool, IpvsError> {
        Ok(self.rt.link_index(DUMMY_INTERFACE)?.is_some())
    }
    fn delete(&mut self) -> Result<bool, IpvsError> {
        self.index = None;
        self.rt.delete_link(DUMMY_INTERFACE)
    }
}

/// A stateful fake IPVS table (refuses what the kernel refuses, see [`apply_ops`]).
#[derive(Debug, Default, Clone)]
pub struct FakeIpvs {
    /// The table, with connection counts the test sets.
    pub state: IpvsState,
    /// Every operation applied, in order.
    pub ops: Vec<IpvsOp>,
}

impl IpvsKernel for FakeIpvs {
    fn dump(&mut self) -> Result<IpvsState, IpvsError> {
        let mut s = self.state.clone();
        s.sort_like_ipvsadm();
        Ok(s)
    }
    fn apply(&mut self, op: &IpvsOp) -> Result<(), IpvsError> {
        apply_ops(&mut self.state, std::slice::from_ref(op)).map_err(IpvsError::Refused)?;
        self.ops.push(op.clone());
        Ok(())
    }
}

/// A fake `kube-ipvs0` (refuses adding an address twice or deleting a missing one).
#[derive(Debug, Default, Clone)]
pub struct FakeLink {
    /// Whether the dummy exists.
    pub exists: bool,
    /// Its addresses.
    pub vips: BTreeSet<IpAddr>,
    /// The other interfaces' addresses.
    pub node_addresses: Vec<IpAddr>,
}

impl VipLink for FakeLink {
    fn ensure(&mut self) -> Result<(), IpvsError> {
        self.exists = true;
        Ok(())
    }
    fn vips(&mut self) -> Result<BTreeSet<IpAddr>, IpvsError> {
        Ok(self.vips.clone())
    }
    fn node_addresses(&mut self) -> Result<Vec<IpAddr>, IpvsError> {
        Ok(self.node_addresses.clone())
    }
    fn add(&mut self, ip: IpAddr) -> Result<(), IpvsError> {
        if !self.exists || !self.vips.insert(ip) {
            return Err(IpvsError::Refused(format!("ip addr add {ip}: exists")));
        }
        Ok(())
    }
    fn del(&mut self, ip: IpAddr) -> Result<(), IpvsError> {
        if !self.vips.remove(&ip) {
            return Err(IpvsError::Refused(format!("ip addr del {ip}: not there")));
        }
        Ok(())
    }
    fn exists(&mut self) -> Result<bool, IpvsError> {
        Ok(self.exists)
    }
    fn delete(&mut self) -> Result<bool, IpvsError> {
        let was = self.exists;
        self.exists = false;
        self.vips.clear();
        Ok(was)
    }
}

/// What one IPVS sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsApplied {
    /// It was a full sync (jump rules checked).
    pub full: bool,
    /// IPVS operations sent.
    pub ops: Vec<IpvsOp>,
    /// Real servers at weight 0 still holding connections (sync again to remove them).
    pub draining: usize,
    /// Addresses added to / removed from `kube-ipvs0`.
    pub vips_added: usize,
    /// Addresses removed.
    pub vips_removed: usize,
    /// Bytes of `ipset restore` input (0: the sets were already right).
    pub ipset_bytes: usize,
    /// Virtual services in the plan.
    pub services: usize,
}

/// Why an IPVS sync failed, and at which step.
#[derive(Debug, thiserror::Error)]
pub enum IpvsSyncError {
    /// The dummy interface, the VIPs, the ipsets or the IPVS table.
    #[error("{family} {step}: {source}")]
    Kernel {
        /// `IPv4` / `IPv6`.
        family: &'static str,
        /// The step (`ipsets`, `ipvs`, ...).
        step: &'static str,
        /// The error.
        source: IpvsError,
    },
    /// The helper iptables rules.
    #[error("{family} iptables: {source}")]
    Rules {
        /// `IPv4` / `IPv6`.
        family: &'static str,
        /// The writer's error.
        source: ApplyError,
    },
}

/// Removes what iptables mode left that IPVS mode does not use (a mode switch, as
/// upstream's cleanup of the other modes): the jump to `KUBE-NODEPORTS`, then the
/// per-service chains (`KUBE-SVC-…`, `KUBE-SEP-…`, …) and `KUBE-NODEPORTS` in nat and
/// filter. Runs after IPVS mode's restore rewrote `KUBE-SERVICES`, so nothing of ours
/// refers to them any more. Returns the chains removed, as `table/CHAIN`.
pub fn cleanup_iptables_mode(w: &mut dyn RuleWriter) -> Result<Vec<String>, ApplyError> {
    use crate::render::iptables::{JUMP_RULES, is_service_chain};
    for j in JUMP_RULES.iter().filter(|j| j.to == "KUBE-NODEPORTS") {
        while w.delete_rule(j.table, j.from, &j.args())? {}
    }
    let mut removed = Vec::new();
    for table in ["nat", "filter"] {
        let save = w.save(table)?;
        let stale: Vec<&str> = crate::apply::declared_chains(&save)
            .into_iter()
            .filter(|c| is_service_chain(c) || *c == "KUBE-NODEPORTS")
            .collect();
        if stale.is_empty() {
            continue;
        }
        let mut input = format!("*{table}\n");
        for c in &stale {
            input.push_str(&format!(":{c} - [0:0]\n"));
        }
        for c in &stale {
            input.push_str(&format!("-X {c}\n"));
        }
        input.push_str("COMMIT\n");
        w.restore(&input)?;
        removed.extend(stale.iter().map(|c| format!("{table}/{c}")));
    }
    Ok(removed)
}

/// One family's IPVS proxier.
#[derive(Debug)]
pub struct IpvsProxier<K, L, S, W> {
    /// The IPVS table.
    pub kernel: K,
    /// `kube-ipvs0`.
    pub link: L,
    /// The ipsets.
    pub sets: S,
    /// The helper rules.
    pub rules: W,
    opts: IpvsOptions,
    exclude: Vec<IpNet>,
    applied: Option<ProxyState>,
    last_plan: Option<IpvsPlan>,
}

fn fam(f: Family) -> &'static str {
    crate::sync::family_name(f)
}

impl<K: IpvsKernel, L: VipLink, S: SetWriter, W: RuleWriter> IpvsProxier<K, L, S, W> {
    /// A proxier over these handles; `exclude` is `--ipvs-exclude-cidrs`.
    pub fn new(
        kernel: K,
        link: L,
        sets: S,
        rules: W,
        opts: IpvsOptions,
        exclude: Vec<IpNet>,
    ) -> Self {
        IpvsProxier {
            kernel,
            link,
            sets,
            rules,
            opts,
            exclude,
            applied: None,
            last_plan: None,
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.rules.family()
    }

    /// The state the kernel holds, if known.
    pub fn applied(&self) -> Option<&ProxyState> {
        self.applied.as_ref()
    }

    /// The plan of the last sync.
    pub fn last_plan(&self) -> Option<&IpvsPlan> {
        self.last_plan.as_ref()
    }

    /// Forgets what the kernel holds: the next sync is full.
    pub fn invalidate(&mut self) {
        self.applied = None;
    }

    /// Writes `state` (every step diffs against the kernel, so a sync is always complete;
    /// `full` also re-checks the jump rules and creates the canary chains). On success, the previous state is returned.
    pub fn sync(
        &mut self,
        state: &ProxyState,
        full: bool,
    ) -> Result<(IpvsApplied, Option<ProxyState>), IpvsSyncError> {
        let family = self.family();
        let name = fam(family);
        let full = full || self.applied.is_none();
        let k = |step: &'static str| {
            move |source| IpvsSyncError::Kernel {
                family: name,
                step,
                source,
            }
        };
        let r = |source| IpvsSyncError::Rules {
            family: name,
            source,
        };
        // A failure part-way leaves the kernel somewhere between: the next sync is full.
        let old = self.applied.take();

        self.link.ensure().map_err(k("kube-ipvs0"))?;
        let mut opts = self.opts.clone();
        opts.local_addresses = self
            .link
            .node_addresses()
            .map_err(k("node addresses"))?
            .into_iter()
            .filter(|ip| Family::of(ip) == family)
            .collect();
        let plan = render_ipvs(state, &opts);

        let saved = self.sets.save().map_err(k("ipset save"))?;
        let input = restore_input(&plan.sets, &saved);
        if !input.is_empty() {
            self.sets.restore(&input).map_err(k("ipset restore"))?;
        }

        self.rules.restore(&plan.rules).map_err(r)?;
        if full {
            for j in jump_rules() {
                self.rules.ensure_chain(j.table, j.to).map_err(r)?;
                self.rules
                    .ensure_rule_first(j.table, j.from, &j.args())
                    .map_err(r)?;
            }
            crate::apply::ensure_canaries(&mut self.rules).map_err(r)?;
            cleanup_iptables_mode(&mut self.rules).map_err(r)?;
        }

        let have_vips: BTreeSet<IpAddr> = self
            .link
            .vips()
            .map_err(k("kube-ipvs0 addresses"))?
            .into_iter()
            .filter(|ip| Family::of(ip) == family)
            .collect();
        let mut vips_added = 0;
        for ip in plan.vips.difference(&have_vips) {
            self.link.add(*ip).map_err(k("kube-ipvs0 address"))?;
            vips_added += 1;
        }

        let mut have = self.kernel.dump().map_err(k("ipvs dump"))?;
        have.services.retain(|s| s.key.family() == family);
        let (ops, summary) = diff(&plan.ipvs, &have, &self.exclude);
        for op in &ops {
            self.kernel.apply(op).map_err(k("ipvs"))?;
        }

        let mut vips_removed = 0;
        for ip in have_vips.difference(&plan.vips) {
            if self.exclude.iter().any(|c| c.contains(ip)) {
                continue;
            }
            self.link.del(*ip).map_err(k("kube-ipvs0 address"))?;
            vips_removed += 1;
        }

        let applied = IpvsApplied {
            full,
            ops,
            draining: summary.draining.len(),
            vips_added,
            vips_removed,
            ipset_bytes: input.len(),
            services: plan.ipvs.services.len(),
        };
        self.last_plan = Some(plan);
        self.applied = Some(state.clone());
        Ok((applied, old))
    }
}
