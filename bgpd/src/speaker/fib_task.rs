//! The task that writes the kernel FIB, on a thread of its own: it executes [`FibOp`]s in
//! order in batches ([`FibWriter`]) and owns nothing of the speaker's state (the speaker
//! computes the ops).
//!
//! ```text
//!   speaker ──FibCmd::Apply(ops)──────────────> FibWriter: in order, in batches of BATCH
//!                                                requests per send (Applies queued meanwhile
//!                                                join the batch)
//!           ──FibCmd::Resync{desired, mode}───> dump, fib::diff, apply     (after an error)
//!           <──FibEvent::Failed──────────────── (the speaker schedules a resync)
//! ```

use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use crate::fib::netlink::{Netlink, NetlinkError};
use crate::fib::writer::{BATCH, FibWriter};
use crate::fib::{Desired, DiffMode, FibConfig, FibOp, KernelRoute, diff};
use crate::metrics::Metrics;

/// Work for the FIB task.
#[derive(Debug)]
pub enum FibCmd {
    /// Execute these operations in order.
    Apply(Vec<FibOp>),
    /// Dump the kernel, compare with `desired` and fix the differences; `done` when finished.
    Resync {
        /// What the RIB wants.
        desired: Desired,
        /// Keep or delete our routes the RIB does not want.
        mode: DiffMode,
        /// Signalled when done.
        done: Option<oneshot::Sender<()>>,
    },
}

/// What the FIB task reports.
#[derive(Debug)]
pub enum FibEvent {
    /// An operation failed (the kernel may differ from the RIB): resync later.
    Failed,
}

fn op_name(op: &FibOp) -> &'static str {
    match op {
        FibOp::Add(_) => "add",
        FibOp::Replace(_) => "replace",
        FibOp::Delete(_) => "delete",
    }
}

fn is_v4(r: &KernelRoute) -> bool {
    matches!(r.prefix, IpNet::V4(_))
}

/// Routes of ours in the kernel, per family (for the `routes_installed` gauge).
#[derive(Debug, Default)]
struct Count {
    v4: i64,
    v6: i64,
}

impl Count {
    fn of(routes: &[KernelRoute], cfg: &FibConfig) -> Self {
        let mut c = Self::default();
        for r in routes.iter().filter(|r| r.protocol == cfg.protocol) {
            c.add(r, 1);
        }
        c
    }

    fn add(&mut self, r: &KernelRoute, n: i64) {
        if is_v4(r) {
            self.v4 = (self.v4 + n).max(0);
        } else {
            self.v6 = (self.v6 + n).max(0);
        }
    }
}

/// Start the FIB task on a thread of its own (its writes block on the kernel). `initial` is the
/// dump taken at startup (for the gauge). Resync dumps go through `nl` on the runtime.
pub fn spawn(
    nl: Netlink,
    cfg: FibConfig,
    initial: &[KernelRoute],
    metrics: Arc<Metrics>,
    events: mpsc::UnboundedSender<FibEvent>,
) -> Result<mpsc::UnboundedSender<FibCmd>, NetlinkError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<FibCmd>();
    let mut count = Count::of(initial, &cfg);
    metrics.routes_installed(count.v4, count.v6);
    let mut writer = FibWriter::open()?;
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("bgpd-fib".into())
        .spawn(move || {
            let mut next = None;
            while let Some(cmd) = next.take().or_else(|| rx.blocking_recv()) {
                match cmd {
                    FibCmd::Apply(mut ops) => {
                        // what queued up meanwhile goes in the same batches
                        while ops.len() < 16 * BATCH {
                            match rx.try_recv() {
                                Ok(FibCmd::Apply(more)) => ops.extend(more),
                                Ok(other) => {
                                    next = Some(other);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        if apply(&mut writer, &ops, &metrics, &mut count) {
                            let _ = events.send(FibEvent::Failed);
                        }
                    }
                    FibCmd::Resync {
                        desired,
                        mode,
                        done,
                    } => {
                        match rt.block_on(nl.dump(&cfg)) {
                            Ok(current) => {
                                let plan = diff(&desired, &current, &cfg, None, mode);
                                for c in &plan.conflicts {
                                    tracing::warn!(
                                        prefix = %c.wanted.prefix,
                                        protocol = c.existing.protocol,
                                        "route not installed: a route of another protocol holds the prefix at our metric"
                                    );
                                }
                                if !plan.ops.is_empty() {
                                    tracing::info!(ops = plan.ops.len(), "FIB resync");
                                }
                                count = Count::of(&current, &cfg);
                                apply(&mut writer, &plan.ops, &metrics, &mut count);
                            }
                            Err(e) => tracing::warn!(error = %e, "FIB resync: dump failed"),
                        }
                        if let Some(d) = done {
                            let _ = d.send(());
                        }
                    }
                }
                metrics.routes_installed(count.v4, count.v6);
            }
        })
        .map_err(NetlinkError::Connect)?;
    Ok(tx)
}

/// Execute `ops` in order (in batches); true when one failed.
fn apply(writer: &mut FibWriter, ops: &[FibOp], metrics: &Metrics, count: &mut Count) -> bool {
    let mut failed = false;
    for (op, r) in ops.iter().zip(writer.apply(ops)) {
        metrics.fib_op(op_name(op), r.is_ok());
        match (&r, op) {
            (Ok(()), FibOp::Add(route)) => count.add(route, 1),
            (Ok(()), FibOp::Delete(route)) => count.add(route, -1),
            (Ok(()), FibOp::Replace(_)) => {}
            (Err(e), _) => {
                failed = true;
                tracing::warn!(error = %e, "kernel route operation failed");
            }
        }
    }
    failed
}
