//! The task that writes the kernel FIB: it executes batches of [`FibOp`]s in order over
//! rtnetlink and owns nothing of the speaker's state (the speaker computes the ops).
//!
//! ```text
//!   speaker ──FibCmd::Apply(ops)──────────────> netlink, in order; up to IN_FLIGHT requests
//!                                                wait for their ACKs at once, never two for
//!                                                the same prefix
//!           ──FibCmd::Resync{desired, mode}───> dump, fib::diff, apply     (after an error)
//!           <──FibEvent::Failed──────────────── (the speaker schedules a resync)
//! ```

use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use crate::fib::netlink::Netlink;
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

/// Run the FIB task. `initial` is the dump taken at startup (for the gauge).
pub fn spawn(
    nl: Netlink,
    cfg: FibConfig,
    initial: &[KernelRoute],
    metrics: Arc<Metrics>,
    events: mpsc::UnboundedSender<FibEvent>,
) -> mpsc::UnboundedSender<FibCmd> {
    let (tx, mut rx) = mpsc::unbounded_channel::<FibCmd>();
    let mut count = Count::of(initial, &cfg);
    metrics.routes_installed(count.v4, count.v6);
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                FibCmd::Apply(ops) => {
                    let failed = apply(&nl, &ops, &metrics, &mut count).await;
                    if failed {
                        let _ = events.send(FibEvent::Failed);
                    }
                }
                FibCmd::Resync {
                    desired,
                    mode,
                    done,
                } => {
                    match nl.dump(&cfg).await {
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
                            apply(&nl, &plan.ops, &metrics, &mut count).await;
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
    });
    tx
}

/// Requests sent before the first ACK is awaited (like `ip -batch` without the round trip per
/// route: the kernel handles one socket's requests in order).
const IN_FLIGHT: usize = 64;

async fn apply(nl: &Netlink, ops: &[FibOp], metrics: &Metrics, count: &mut Count) -> bool {
    use futures::StreamExt;
    let mut failed = false;
    let mut start = 0;
    while start < ops.len() {
        // a run of ops on distinct prefixes: no op waits for another one on its prefix
        let mut seen = std::collections::HashSet::new();
        let mut end = start;
        while end < ops.len() && seen.insert(ops[end].route().prefix) {
            end += 1;
        }
        let results: Vec<_> = futures::stream::iter(ops[start..end].to_vec())
            .map(|op| {
                let nl = nl.clone();
                async move { nl.apply(&op).await }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        for (op, r) in ops[start..end].iter().zip(results) {
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
        start = end;
    }
    failed
}
