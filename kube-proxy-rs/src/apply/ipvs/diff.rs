//! The IPVS table diff (pure): the plan's virtual services against the kernel's dump in,
//! the operations that turn one into the other out, with graceful termination of real
//! servers that leave.
//!
//! ```text
//!   want (IpvsPlan.ipvs) ─┐
//!   have (netlink dump)  ─┴─ diff ──> [IpvsOp]   AddService, EditService, DelService,
//!                                               AddDest, EditDest, DelDest
//!   a real server gone from `want`:  UDP ─> DelDest at once
//!                                    TCP/SCTP, weight > 0 ─> EditDest weight 0 (draining)
//!                                    weight 0, active + inactive = 0 ─> DelDest
//!                                    weight 0, connections left ─> kept (checked next sync)
//! ```
//! Services in `have` that the plan does not have are deleted, except those whose address
//! is in `--ipvs-exclude-cidrs` (someone else's) and fwmark services (never ours).

use std::fmt;

use dataplane::Protocol;
use dataplane::ipvs::{IpvsState, RealServer, Service, ServiceKey, SockAddr};
use ipnet::IpNet;

/// One change to the kernel's IPVS table (`ipvsadm -A/-E/-D/-a/-e/-d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsOp {
    /// `ipvsadm -A`: a new virtual service (its real servers follow as [`IpvsOp::AddDest`]).
    AddService(Service),
    /// `ipvsadm -E`: scheduler, persistence or flags changed.
    EditService(Service),
    /// `ipvsadm -D`.
    DelService(ServiceKey),
    /// `ipvsadm -a`.
    AddDest(ServiceKey, RealServer),
    /// `ipvsadm -e` (weight 0: draining).
    EditDest(ServiceKey, RealServer),
    /// `ipvsadm -d`.
    DelDest(ServiceKey, RealServer),
}

impl fmt::Display for IpvsOp {
    /// As the `ipvsadm` command that does the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpvsOp::AddService(s) => write!(f, "ipvsadm -A {}", s.key.to_ipvsadm()),
            IpvsOp::EditService(s) => write!(f, "ipvsadm -E {}", s.key.to_ipvsadm()),
            IpvsOp::DelService(k) => write!(f, "ipvsadm -D {}", k.to_ipvsadm()),
            IpvsOp::AddDest(k, r) => write!(
                f,
                "ipvsadm -a {} -r {} -w {}",
                k.to_ipvsadm(),
                SockAddr(r.addr, r.port),
                r.weight
            ),
            IpvsOp::EditDest(k, r) => write!(
                f,
                "ipvsadm -e {} -r {} -w {}",
                k.to_ipvsadm(),
                SockAddr(r.addr, r.port),
                r.weight
            ),
            IpvsOp::DelDest(k, r) => write!(
                f,
                "ipvsadm -d {} -r {}",
                k.to_ipvsadm(),
                SockAddr(r.addr, r.port)
            ),
        }
    }
}

/// What the diff decided besides the operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffSummary {
    /// Real servers left in place at weight 0 because they still have connections.
    pub draining: Vec<(ServiceKey, RealServer)>,
}

fn same_config(a: &Service, b: &Service) -> bool {
    a.scheduler == b.scheduler
        && a.persistence == b.persistence
        && a.one_packet == b.one_packet
        && a.sched_flags == b.sched_flags
        && a.pe_name == b.pe_name
}

fn excluded(key: &ServiceKey, exclude: &[IpNet]) -> bool {
    match key {
        ServiceKey::Addr { addr, .. } => exclude.iter().any(|c| c.contains(addr)),
        ServiceKey::Fwmark { .. } => true,
    }
}

fn proto(key: &ServiceKey) -> Option<Protocol> {
    match key {
        ServiceKey::Addr { proto, .. } => Some(*proto),
        ServiceKey::Fwmark { .. } => None,
    }
}

/// The operations that make `have` (a dump with connection counts) into `want`, in an
/// order the kernel accepts: new and changed services and servers first, removals last.
pub fn diff(want: &IpvsState, have: &IpvsState, exclude: &[IpNet]) -> (Vec<IpvsOp>, DiffSummary) {
    let mut ops = Vec::new();
    let mut removals = Vec::new();
    let mut summary = DiffSummary::default();
    for w in &want.services {
        let Some(h) = have.service(&w.key) else {
            let mut s = w.clone();
            s.servers.clear();
            ops.push(IpvsOp::AddService(s));
            for rs in &w.servers {
                ops.push(IpvsOp::AddDest(w.key.clone(), rs.config()));
            }
            continue;
        };
        if !same_config(w, h) {
            let mut s = w.clone();
            s.servers.clear();
            ops.push(IpvsOp::EditService(s));
        }
        for rs in &w.servers {
            match h.server(rs.addr, rs.port) {
                None => ops.push(IpvsOp::AddDest(w.key.clone(), rs.config())),
                Some(cur) if cur.weight != rs.weight || cur.forward != rs.forward => {
                    ops.push(IpvsOp::EditDest(w.key.clone(), rs.config()))
                }
                Some(_) => {}
            }
        }
        for cur in &h.servers {
            if w.server(cur.addr, cur.port).is_some() {
                continue;
            }
            let conns = cur
                .conns
                .map_or(0, |c| u64::from(c.active) + u64::from(c.inactive));
            if proto(&w.key) == Some(Protocol::Udp) || (cur.weight == 0 && conns == 0) {
                removals.push(IpvsOp::DelDest(w.key.clone(), cur.config()));
            } else if cur.weight != 0 {
                ops.push(IpvsOp::EditDest(w.key.clone(), cur.config().with_weight(0)));
                summary
                    .draining
                    .push((w.key.clone(), cur.config().with_weight(0)));
            } else {
                summary.draining.push((w.key.clone(), cur.config()));
            }
        }
    }
    for h in &have.services {
        if want.service(&h.key).is_none() && !excluded(&h.key, exclude) {
            removals.push(IpvsOp::DelService(h.key.clone()));
        }
    }
    ops.extend(removals);
    (ops, summary)
}

/// Applies `ops` to a table as the kernel would (the stateful fake's model): an error names
/// the operation the kernel would refuse (`EEXIST`, `ENOENT`).
pub fn apply_ops(state: &mut IpvsState, ops: &[IpvsOp]) -> Result<(), String> {
    for op in ops {
        let refuse = |why: &str| Err(format!("{op}: {why}"));
        match op {
            IpvsOp::AddService(s) => {
                if state.service(&s.key).is_some() {
                    return refuse("service exists (EEXIST)");
                }
                state.services.push(s.clone());
            }
            IpvsOp::EditService(s) => match state.service_mut(&s.key) {
                Some(cur) => {
                    let servers = std::mem::take(&mut cur.servers);
                    *cur = s.clone();
                    cur.servers = servers;
                }
                None => return refuse("no such service (ESRCH)"),
            },
            IpvsOp::DelService(k) => {
                let before = state.services.len();
                state.services.retain(|s| &s.key != k);
                if state.services.len() == before {
                    return refuse("no such service (ESRCH)");
                }
            }
            IpvsOp::AddDest(k, rs) => match state.service_mut(k) {
                Some(s) if s.server(rs.addr, rs.port).is_some() => {
                    return refuse("destination exists (EEXIST)");
                }
                Some(s) => s.servers.push(rs.clone()),
                None => return refuse("no such service (ESRCH)"),
            },
            IpvsOp::EditDest(k, rs) => {
                let Some(s) = state.service_mut(k) else {
                    return refuse("no such service (ESRCH)");
                };
                let Some(cur) = s
                    .servers
                    .iter_mut()
                    .find(|c| c.addr == rs.addr && c.port == rs.port)
                else {
                    return refuse("no such destination (ENOENT)");
                };
                let conns = cur.conns;
                *cur = rs.clone();
                cur.conns = conns;
            }
            IpvsOp::DelDest(k, rs) => {
                let Some(s) = state.service_mut(k) else {
                    return refuse("no such service (ESRCH)");
                };
                let before = s.servers.len();
                s.servers
                    .retain(|c| !(c.addr == rs.addr && c.port == rs.port));
                if s.servers.len() == before {
                    return refuse("no such destination (ENOENT)");
                }
            }
        }
    }
    Ok(())
}
