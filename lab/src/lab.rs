//! A lab: a named set of hosts in network namespaces, joined by veth links and bridged
//! segments, with addresses from the plan; torn down on drop (also while unwinding).
//!
//! ```text
//!   Lab::new("t") ── node("n1") ── pod(&n1, "a")      lab-<id>-n1  <-veth->  lab-<id>-a
//!                 ── router("tor")                      lab-<id>-tor
//!                 ── segment("rack", [&n1, &n2, &tor])  lab-<id>-sw-rack: br0 + one port each
//!                 ── link(&client, &tor)                veth, ends created inside the namespaces
//!   drop ──> stop processes (by PID) ──> ip netns del each ──> rm temp dir ──> rm state file
//! ```
//! Every namespace is written to the state file before it is created, so a crash at any point
//! leaves something [`crate::sweep_stale`] can clean. Links, segments and pods: [`crate::link`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use sha2::{Digest, Sha256};

use crate::error::{LabError, Result};
use crate::host::{Host, HostKind, Iface, Peer};
use crate::link::Segment;
use crate::netns;
use crate::plan::{self, PlanError};
use crate::process::ProcEntry;
use crate::state::{self, HostRecord, LabState};

/// Overrides for a node, router or plain host. Unset fields are allocated from the plan.
#[derive(Debug, Clone, Default)]
pub struct HostOpts {
    /// The role index (node k, router r, host h), which fixes the default addresses.
    pub index: Option<u32>,
    /// The IPv4 address (with prefix) on the node network.
    pub addr4: Option<Ipv4Net>,
    /// The IPv6 address (with prefix) on the node network.
    pub addr6: Option<Ipv6Net>,
    /// A node's IPv4 pod CIDR.
    pub pod_cidr4: Option<Ipv4Net>,
    /// A node's IPv6 pod CIDR.
    pub pod_cidr6: Option<Ipv6Net>,
}

pub(crate) struct HostRec {
    pub(crate) name: String,
    pub(crate) kind: HostKind,
    pub(crate) netns: String,
    pub(crate) index: u8,
    pub(crate) ifaces: Vec<Iface>,
    pub(crate) next_eth: u32,
    /// Where this host sits on the node network, if it joins it.
    pub(crate) node_net: Option<(Ipv4Net, Ipv6Net)>,
    pub(crate) primary4: Option<Ipv4Addr>,
    pub(crate) primary6: Option<Ipv6Addr>,
    pub(crate) pod_cidrs: Option<(Ipv4Net, Ipv6Net)>,
    pub(crate) next_pod: u8,
    pub(crate) pods: Vec<String>,
    pub(crate) node: Option<String>,
}

pub(crate) struct SegRec {
    pub(crate) name: String,
    pub(crate) subnet4: Ipv4Net,
    pub(crate) subnet6: Ipv6Net,
    pub(crate) node_net: bool,
    pub(crate) members: u32,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) hosts: Vec<HostRec>,
    pub(crate) segments: Vec<SegRec>,
    used_nodes: Vec<u8>,
    used_routers: Vec<u8>,
    used_hosts: Vec<u8>,
    next_link: u8,
    pub(crate) node_net_taken: bool,
    pub(crate) netns: Vec<String>,
    pub(crate) procs: BTreeMap<i32, ProcEntry>,
    pub(crate) logs: Vec<(String, PathBuf)>,
    pub(crate) kept: bool,
    pub(crate) down: bool,
}

/// What the lab and its handles share.
pub(crate) struct Shared {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    owner_pid: i32,
    owner_start: u64,
    pub(crate) st: Mutex<State>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn with_host<R>(&self, name: &str, f: impl FnOnce(&HostRec) -> R) -> Option<R> {
        self.lock().hosts.iter().find(|h| h.name == name).map(f)
    }

    pub(crate) fn handle(sh: &Arc<Shared>, name: &str) -> Option<Host> {
        sh.with_host(name, |h| Host {
            sh: Arc::clone(sh),
            name: h.name.clone(),
            netns: h.netns.clone(),
            kind: h.kind,
        })
    }

    pub(crate) fn record_addr(&self, host: &str, iface: &str, net: IpNet) {
        let mut st = self.lock();
        if let Some(h) = st.hosts.iter_mut().find(|h| h.name == host) {
            match h.ifaces.iter_mut().find(|i| i.name == iface) {
                Some(i) => i.addrs.push(net),
                None => h.ifaces.push(Iface {
                    name: iface.to_string(),
                    addrs: vec![net],
                    peer: Peer::Loopback,
                }),
            }
        }
        drop(st);
        let _ = self.save();
    }

    /// A snapshot for the state file.
    pub(crate) fn snapshot(&self) -> LabState {
        let st = self.lock();
        LabState {
            id: self.id.clone(),
            name: self.name.clone(),
            owner_pid: self.owner_pid,
            owner_start: self.owner_start,
            kept: st.kept,
            dir: self.dir.clone(),
            netns: st.netns.clone(),
            pids: st.procs.values().map(|p| p.record.clone()).collect(),
            hosts: st
                .hosts
                .iter()
                .map(|h| HostRecord {
                    name: h.name.clone(),
                    kind: h.kind,
                    netns: h.netns.clone(),
                    ifaces: h.ifaces.clone(),
                })
                .collect(),
        }
    }

    pub(crate) fn save(&self) -> Result<()> {
        if self.lock().down {
            return Ok(());
        }
        self.snapshot().write()
    }
}

/// A lab: hosts in network namespaces named `lab-<id>-<host>`. Dropping it stops its
/// processes, deletes its namespaces (with their veths and bridges), its temp dir and its
/// state file, also while a test panics.
pub struct Lab {
    pub(crate) sh: Arc<Shared>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Lab {
    /// A new empty lab with a unique short id, so labs of parallel tests never collide.
    /// Sweeps stale labs of crashed runs first.
    pub fn new(name: &str) -> Result<Lab> {
        check_name("lab", name, 40)?;
        for _ in 0..16 {
            match Self::create(&fresh_id(), name) {
                Err(LabError::Duplicate { .. }) => continue,
                other => return other,
            }
        }
        Err(LabError::Duplicate {
            what: "lab",
            name: name.into(),
            lab: "(16 tries)".into(),
        })
    }

    /// A new empty lab with a chosen id (`lab up --name ID`): namespaces are `lab-ID-<host>`.
    pub fn named(id: &str) -> Result<Lab> {
        check_name("lab", id, 20)?;
        Self::create(id, id)
    }

    fn create(id: &str, name: &str) -> Result<Lab> {
        crate::require_root()?;
        state::ensure_dir()?;
        // best effort: a failing sweep must not stop a test
        let _ = state::sweep_stale();
        let path = LabState::path(id);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(LabError::Duplicate {
                    what: "lab",
                    name: id.into(),
                    lab: id.into(),
                });
            }
            Err(e) => return Err(LabError::io("create", &path, e)),
        }
        let dir = state::lab_dir(id);
        let owner_pid = std::process::id() as i32;
        let sh = Arc::new(Shared {
            id: id.to_string(),
            name: name.to_string(),
            dir: dir.clone(),
            owner_pid,
            owner_start: state::start_time(owner_pid).unwrap_or(0),
            st: Mutex::new(State {
                next_link: 1,
                ..State::default()
            }),
        });
        // from here on, dropping `lab` removes the state file again
        let lab = Lab { sh };
        // the reserved file is empty: fill it at once so no reader sees it empty for long
        lab.sh.save()?;
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io("create", &dir, e))?;
        Ok(lab)
    }

    /// The lab's id (`3fa2c1`, or the name given to [`Lab::named`]).
    pub fn id(&self) -> &str {
        &self.sh.id
    }

    /// The lab's human name.
    pub fn name(&self) -> &str {
        &self.sh.name
    }

    /// The lab's temp dir (process logs).
    pub fn dir(&self) -> &Path {
        &self.sh.dir
    }

    /// The namespace a host called `host` has (or would have) in this lab.
    pub fn netns_of(&self, host: &str) -> String {
        format!("lab-{}-{host}", self.sh.id)
    }

    /// Every namespace created so far.
    pub fn namespaces(&self) -> Vec<String> {
        self.sh.lock().netns.clone()
    }

    /// The host called `name`.
    pub fn get(&self, name: &str) -> Result<Host> {
        Shared::handle(&self.sh, name).ok_or_else(|| self.unknown("host", name))
    }

    /// Every host (switches excluded), in creation order.
    pub fn hosts(&self) -> Vec<Host> {
        let names: Vec<String> = self
            .sh
            .lock()
            .hosts
            .iter()
            .filter(|h| h.kind != HostKind::Switch)
            .map(|h| h.name.clone())
            .collect();
        names
            .iter()
            .filter_map(|n| Shared::handle(&self.sh, n))
            .collect()
    }

    /// The segment called `name`.
    pub fn segment_named(&self, name: &str) -> Result<Segment> {
        let st = self.sh.lock();
        let s = st
            .segments
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| self.unknown("segment", name))?;
        Ok(Segment {
            sh: Arc::clone(&self.sh),
            name: s.name.clone(),
            subnet4: s.subnet4,
            subnet6: s.subnet6,
        })
    }

    /// What the state file says about this lab right now.
    pub fn state(&self) -> LabState {
        self.sh.snapshot()
    }

    pub(crate) fn unknown(&self, what: &'static str, name: &str) -> LabError {
        LabError::Unknown {
            what,
            name: name.into(),
            lab: self.sh.id.clone(),
        }
    }

    // ---- hosts ----------------------------------------------------------------------------

    /// A Kubernetes node: forwarding on, node index k from the plan (address 198.18.0.(10+k)
    /// once it joins the node network, pod CIDR 198.18.(64+k).0/24 and 2001:db8:64:k::/64).
    pub fn node(&self, name: &str) -> Result<Host> {
        self.node_with(name, &HostOpts::default())
    }

    /// [`Lab::node`] with overrides.
    pub fn node_with(&self, name: &str, opts: &HostOpts) -> Result<Host> {
        self.role_host(name, HostKind::Node, opts)
    }

    /// A router (ToR): forwarding on, address 198.18.0.r on the node network.
    pub fn router(&self, name: &str) -> Result<Host> {
        self.router_with(name, &HostOpts::default())
    }

    /// [`Lab::router`] with overrides.
    pub fn router_with(&self, name: &str, opts: &HostOpts) -> Result<Host> {
        self.role_host(name, HostKind::Router, opts)
    }

    /// A plain host (client, external server): no forwarding, 198.18.0.(100+h) on the node
    /// network.
    pub fn host(&self, name: &str) -> Result<Host> {
        self.host_with(name, &HostOpts::default())
    }

    /// [`Lab::host`] with overrides.
    pub fn host_with(&self, name: &str, opts: &HostOpts) -> Result<Host> {
        self.role_host(name, HostKind::Host, opts)
    }

    fn role_host(&self, name: &str, kind: HostKind, opts: &HostOpts) -> Result<Host> {
        check_name("host", name, 32)?;
        for net in [
            opts.addr4.map(IpNet::V4),
            opts.addr6.map(IpNet::V6),
            opts.pod_cidr4.map(IpNet::V4),
            opts.pod_cidr6.map(IpNet::V6),
        ]
        .into_iter()
        .flatten()
        {
            plan::check_net(&net)?;
        }
        let index = {
            let mut st = self.sh.lock();
            if st.hosts.iter().any(|h| h.name == name) {
                return Err(LabError::Duplicate {
                    what: "host",
                    name: name.into(),
                    lab: self.sh.id.clone(),
                });
            }
            let (used, what, max) = match kind {
                HostKind::Node => (&mut st.used_nodes, "node", plan::MAX_NODES),
                HostKind::Router => (&mut st.used_routers, "router", plan::MAX_ROUTERS),
                _ => (&mut st.used_hosts, "host", plan::MAX_HOSTS),
            };
            let index = match opts.index {
                Some(i) => plan::check_index(what, i, max)?,
                None => (1..=max)
                    .find(|i| !used.contains(i))
                    .ok_or(PlanError::Exhausted { what, max })?,
            };
            if used.contains(&index) {
                return Err(LabError::Duplicate {
                    what: "index of",
                    name: format!("{what} {index}"),
                    lab: self.sh.id.clone(),
                });
            }
            used.push(index);
            index
        };
        let (a4, a6) = match kind {
            HostKind::Node => plan::node_addrs(index),
            HostKind::Router => plan::router_addrs(index),
            _ => plan::host_addrs(index),
        };
        let node_net = Some((opts.addr4.unwrap_or(a4), opts.addr6.unwrap_or(a6)));
        let pod_cidrs = (kind == HostKind::Node).then(|| {
            let (c4, c6) = plan::pod_cidrs(index);
            (opts.pod_cidr4.unwrap_or(c4), opts.pod_cidr6.unwrap_or(c6))
        });
        let rec = self.new_rec(name, kind, index, node_net, pod_cidrs);
        let forward = matches!(kind, HostKind::Node | HostKind::Router);
        self.make_ns(rec, forward)
    }

    pub(crate) fn new_rec(
        &self,
        name: &str,
        kind: HostKind,
        index: u8,
        node_net: Option<(Ipv4Net, Ipv6Net)>,
        pod_cidrs: Option<(Ipv4Net, Ipv6Net)>,
    ) -> HostRec {
        HostRec {
            name: name.to_string(),
            kind,
            netns: self.netns_of(name),
            index,
            ifaces: Vec::new(),
            next_eth: 0,
            node_net,
            primary4: None,
            primary6: None,
            pod_cidrs,
            next_pod: 0,
            pods: Vec::new(),
            node: None,
        }
    }

    /// Records the namespace, writes the state file, then creates and prepares it.
    pub(crate) fn make_ns(&self, rec: HostRec, forward: bool) -> Result<Host> {
        let ns = rec.netns.clone();
        let name = rec.name.clone();
        let kind = rec.kind;
        {
            let mut st = self.sh.lock();
            if st.hosts.iter().any(|h| h.name == rec.name) {
                return Err(LabError::Duplicate {
                    what: "host",
                    name: rec.name,
                    lab: self.sh.id.clone(),
                });
            }
            st.netns.push(ns.clone());
            st.hosts.push(rec);
        }
        self.sh.save()?;
        netns::add(&ns)?;
        let f = if forward { "1" } else { "0" };
        let mut kv = vec![
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv4.ping_group_range", "0 2147483647"),
            // every ICMP error a test provokes must come back, however fast tests run
            ("net.ipv4.icmp_ratelimit", "0"),
            ("net.ipv6.icmp.ratelimit", "0"),
            ("net.ipv4.ip_forward", f),
            ("net.ipv6.conf.all.forwarding", f),
        ];
        if kind == HostKind::Switch {
            kv.push(("net.ipv6.conf.default.disable_ipv6", "1"));
        }
        let kv: Vec<(String, String)> = kv
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        netns::sysctls(&ns, &kv)?;
        netns::ip(&ns, &["link", "set", "lo", "up"])?;
        Ok(Host {
            sh: Arc::clone(&self.sh),
            name,
            netns: ns,
            kind,
        })
    }

    pub(crate) fn push_iface(&self, host: &str, iface: Iface) {
        let mut st = self.sh.lock();
        if let Some(h) = st.hosts.iter_mut().find(|h| h.name == host) {
            h.ifaces.push(iface);
        }
    }

    pub(crate) fn next_eth(&self, host: &str) -> String {
        let mut st = self.sh.lock();
        match st.hosts.iter_mut().find(|h| h.name == host) {
            Some(h) => loop {
                let name = format!("eth{}", h.next_eth);
                h.next_eth += 1;
                if !h.ifaces.iter().any(|i| i.name == name) {
                    break name;
                }
            },
            None => "eth0".into(),
        }
    }

    pub(crate) fn next_link_subnets(&self) -> Result<(Ipv4Net, Ipv6Net)> {
        let mut st = self.sh.lock();
        let x = st.next_link;
        if x > plan::MAX_LINKS {
            return Err(PlanError::Exhausted {
                what: "link subnet",
                max: plan::MAX_LINKS,
            }
            .into());
        }
        st.next_link += 1;
        Ok(plan::link_subnets(x))
    }

    // ---- lifetime -------------------------------------------------------------------------

    /// Leaves the lab up after this value is gone (`lab up`): marks it kept in its state file
    /// and lets its processes run. `lab down` (or [`crate::down`]) removes it later.
    pub fn keep(self) -> Result<LabState> {
        self.sh.lock().kept = true;
        // the records of the processes stay in the file, for `lab down`
        let snap = self.sh.snapshot();
        snap.write()?;
        let mut st = self.sh.lock();
        st.down = true;
        // let the children run on: drop their handles without signalling them
        drop(std::mem::take(&mut st.procs));
        Ok(snap)
    }

    /// Tears the lab down now (what drop does).
    pub fn down(self) {
        self.teardown();
    }

    fn teardown(&self) {
        let (procs, nss, logs) = {
            let mut st = self.sh.lock();
            if st.down {
                return;
            }
            st.down = true;
            let procs: Vec<ProcEntry> = std::mem::take(&mut st.procs).into_values().collect();
            (procs, st.netns.clone(), st.logs.clone())
        };
        if std::thread::panicking() {
            crate::process::print_logs(&self.sh.id, &logs);
        }
        crate::process::terminate(procs);
        for ns in &nss {
            state::kill_all_in(ns);
        }
        for ns in &nss {
            if let Err(e) = netns::delete(ns) {
                eprintln!("lab {}: {e}", self.sh.id);
            }
        }
        let _ = std::fs::remove_dir_all(&self.sh.dir);
        let _ = std::fs::remove_file(LabState::path(&self.sh.id));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("id", &self.sh.id)
            .field("name", &self.sh.name)
            .finish()
    }
}

fn fresh_id() -> String {
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(now.as_nanos().to_le_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    let d = h.finalize();
    d.iter().take(3).map(|b| format!("{b:02x}")).collect()
}

/// Names: lowercase letters, digits and `-`, starting with a letter or digit.
pub(crate) fn check_name(what: &'static str, name: &str, max: usize) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let why = if name.is_empty() || name.len() > max {
        Some("expected 1 to 32 characters (a lab id at most 20)")
    } else if !ok_chars {
        Some("expected lowercase letters, digits and `-`")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("must not start or end with `-`")
    } else if what == "host" && name.starts_with("sw-") {
        Some("`sw-` is kept for segment switches")
    } else {
        None
    };
    match why {
        Some(why) => Err(LabError::BadName {
            what,
            name: name.into(),
            why,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("host", "node-1", 32).is_ok());
        assert!(check_name("host", "Node1", 32).is_err());
        assert!(check_name("host", "-x", 32).is_err());
        assert!(check_name("host", "sw-rack", 32).is_err());
        assert!(check_name("host", "a/b", 32).is_err());
        assert!(check_name("host", "", 32).is_err());
    }

    #[test]
    fn ids_are_short_and_distinct() {
        let a = fresh_id();
        let b = fresh_id();
        assert_eq!(a.len(), 6);
        assert_ne!(a, b);
    }
}
