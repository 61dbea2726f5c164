//! The speaker: one tokio task that owns the RIB, every peer's FSM and Adj-RIB-Out, the FIB
//! sync state and the graceful-restart deferral. Everything else talks to it over channels.
//!
//! ```text
//!   listeners ──Accepted──────────┐
//!   connections ──FromConn────────┤                        ┌──ToConn (bytes)──> connections
//!   control socket ──Query────────┤   ┌────────────────┐   ├──FibCmd──────────> FIB task
//!   Node source ──pod CIDRs───────┼──>│ Speaker::run   │───┤
//!   SIGHUP / file change ──Config─┤   │ (select! loop) │   └──Response───────> control socket
//!   FIB task ──FibEvent───────────┤   └────────────────┘
//!   timers: sleep_until(min(next_deadline of every Peer, deferral, resync))
//! ```
//!
//! Every session change is logged with the peer and its RFC reason (the `Transition`
//! `Display`). Graceful restart across our own restart: at start our kernel routes are kept
//! and marked stale ([`FibSync::start`]), the OPENs carry the R bit, and after End-of-RIB
//! from every GR peer (or the deferral timer, [`SelectionDeferral`]) the stale routes that
//! were not re-learned are swept. Our own End-of-RIB to a peer waits until the sources of
//! our own prefixes (the Node's pod CIDRs, Service addresses) have reported once
//! ([`OwnSource`]): a helper flushes what we advertised before the restart at our End-of-RIB
//! (RFC 4724 §4.2), so an End-of-RIB sent before our pod CIDR would withdraw it from the
//! fabric for as long as the source takes to read.

pub mod fib_task;
mod peers;
mod show;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::{Query, Request, Response};
use crate::config::{Config, ConfigError, PeerCfg};
use crate::fib::netlink::{LocalAddr, Netlink, connected};
use crate::fib::{DiffMode, FibOp, FibSync};
use crate::metrics::Metrics;
use crate::policy::{ExpectedNextHop, ExportPolicy, ImportPolicy};
use crate::rib::{AdjRibOut, PeerId, Rib};
use crate::session::{ConnId, Peer, SelectionDeferral, State};
use crate::source::cluster::MeshNode;
use crate::transport::{Accepted, FromConn, Listener, ToConn};
use crate::wire::AfiSafi;
use fib_task::{FibCmd, FibEvent};

/// Capacity of the channel from connections: a full channel stops reading from sockets
/// (TCP back-pressure on the peers) instead of buffering without bound.
pub const CONN_CHANNEL: usize = 1024;

/// Why the speaker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error(transparent)]
    Listen(#[from] crate::transport::TransportError),
    /// Netlink failed.
    #[error(transparent)]
    Netlink(#[from] crate::fib::netlink::NetlinkError),
    /// The RIB has no room for another peer.
    #[error("peer {peer}: {source}")]
    Rib {
        /// The peer.
        peer: IpAddr,
        /// The RIB's error.
        source: crate::rib::RibError,
    },
    /// A peer's session settings are invalid.
    #[error("peer {peer}: {source}")]
    Peer {
        /// The peer.
        peer: IpAddr,
        /// What is wrong.
        source: crate::session::ConfigError,
    },
}

/// Control input besides connections and queries.
#[derive(Debug)]
pub enum Control {
    /// A new configuration (SIGHUP or file change), already parsed and checked.
    Reload(Box<Config>),
    /// The configuration file could not be read on reload (logged, the old one stays).
    ReloadFailed(ConfigError),
    /// This Node's pod CIDRs changed.
    NodePrefixes(BTreeSet<IpNet>),
    /// Service addresses or the other Nodes (mesh) changed.
    Cluster(crate::source::cluster::Cluster),
    /// Stop: `graceful` keeps kernel routes and lets peers keep ours (RFC 4724); `done` is
    /// signalled once sessions are closed and the FIB is settled.
    Shutdown {
        /// Graceful restart stop.
        graceful: bool,
        /// Signalled when done.
        done: oneshot::Sender<()>,
    },
}

/// A source of our own prefixes that End-of-RIB waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OwnSource {
    /// This Node's pod CIDRs (manifests or the API).
    Node,
    /// Service addresses (service advertisement ranges are configured).
    Services,
}

/// The own-prefix sources that have not reported yet, and until when End-of-RIB waits for
/// them (the selection deferral time: a source that never reports does not hold it back for
/// ever; until then the peers keep our earlier routes as stale).
#[derive(Debug, Default)]
struct OwnWait {
    pending: BTreeSet<OwnSource>,
    until: Option<Instant>,
}

/// One connection of a peer.
#[derive(Debug)]
struct Conn {
    tx: mpsc::UnboundedSender<ToConn>,
    local: Option<SocketAddr>,
}

/// Everything the speaker keeps about one configured peer.
#[derive(Debug)]
struct PeerState {
    cfg: PeerCfg,
    /// Distinguishes this incarnation of the peer from an earlier one (reload).
    epoch: u64,
    fsm: Peer,
    id: PeerId,
    conns: HashMap<ConnId, Conn>,
    out: Option<AdjRibOut>,
    import: ImportPolicy,
    export: ExportPolicy,
    /// Prefixes the peer announced that import policy refused (for "received").
    filtered: HashSet<IpNet>,
    state: State,
    since: Instant,
    last_error: Option<String>,
    updates_in: u64,
    updates_out: u64,
    /// The listener refused the MD5 key: incoming connections from the peer are refused
    /// (they would be unauthenticated).
    listen_key_error: Option<String>,
}

/// The speaker's state (owned by its task).
pub struct Speaker {
    cfg: Config,
    peers: BTreeMap<IpAddr, PeerState>,
    rib: Rib,
    static_prefixes: BTreeSet<IpNet>,
    node_prefixes: BTreeSet<IpNet>,
    /// Service addresses from the cluster sources.
    service_prefixes: BTreeSet<IpNet>,
    /// The configuration as read from the file (`cfg` adds the mesh peers).
    file_cfg: Config,
    /// The other Nodes, when the node mesh is on.
    mesh: BTreeSet<IpAddr>,
    /// The other Nodes' addresses and pod CIDRs, when the node mesh is on.
    mesh_nodes: Vec<MeshNode>,
    own: BTreeSet<IpNet>,
    own_wait: OwnWait,
    fib: Option<FibSync>,
    fib_tx: Option<mpsc::UnboundedSender<FibCmd>>,
    deferral: Option<SelectionDeferral<IpAddr>>,
    resync_at: Option<Instant>,
    listeners: Vec<Listener>,
    conn_tx: mpsc::Sender<FromConn>,
    addrs: watch::Receiver<Vec<LocalAddr>>,
    metrics: Arc<Metrics>,
    started: Instant,
    next_epoch: u64,
}

/// The channels the speaker task reads.
pub struct Inputs {
    /// From connections.
    pub conns: mpsc::Receiver<FromConn>,
    /// From listeners.
    pub accepted: mpsc::Receiver<Accepted>,
    /// From the control socket.
    pub queries: mpsc::Receiver<Query>,
    /// Reloads, pod CIDRs, shutdown.
    pub control: mpsc::Receiver<Control>,
    /// From the FIB task.
    pub fib: mpsc::UnboundedReceiver<FibEvent>,
}

/// What `start` hands back besides the speaker.
pub struct Handles {
    /// Send reloads, pod CIDRs and shutdown here.
    pub control: mpsc::Sender<Control>,
    /// Send control-socket queries here.
    pub queries: mpsc::Sender<Query>,
}

/// Poll interface addresses (next hops of our own, devices of gateways) and publish changes.
fn spawn_addresses(nl: Netlink, first: Vec<LocalAddr>) -> watch::Receiver<Vec<LocalAddr>> {
    let (tx, rx) = watch::channel(first);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            match nl.addresses().await {
                Ok(a) => {
                    tx.send_if_modified(|old| {
                        let changed = *old != a;
                        if changed {
                            *old = a;
                        }
                        changed
                    });
                }
                Err(e) => tracing::warn!(error = %e, "address dump failed"),
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}

impl Speaker {
    /// Set everything up (netlink dump, listeners, peers) and return the speaker with its
    /// inputs. Call [`Speaker::run`] next.
    pub async fn start(
        cfg: Config,
        metrics: Arc<Metrics>,
    ) -> Result<(Speaker, Inputs, Handles), StartError> {
        let now = Instant::now();
        let nl = Netlink::connect()?;
        let addrs = spawn_addresses(nl.clone(), nl.addresses().await?);
        let (fib_ev_tx, fib_ev_rx) = mpsc::unbounded_channel();
        let mut restarting = false;
        let (fib, fib_tx) = if cfg.install_routes {
            let fcfg = cfg.fib_config();
            let dump = nl.dump(&fcfg).await?;
            let graceful = cfg.graceful_restart.enabled;
            let (sync, ops) = FibSync::start(fcfg, &dump, graceful);
            restarting = graceful && sync.stale_count() > 0;
            metrics.kernel_routes_stale(sync.stale_count());
            if restarting {
                tracing::info!(
                    stale = sync.stale_count(),
                    "graceful restart: keeping our kernel routes as stale until End-of-RIB (RFC 4724 §4.1)"
                );
            } else if !ops.is_empty() {
                tracing::info!(
                    routes = ops.len(),
                    "removing kernel routes left by an earlier run"
                );
            }
            let tx = fib_task::spawn(nl.clone(), fcfg, &dump, Arc::clone(&metrics), fib_ev_tx)?;
            if !ops.is_empty() {
                let _ = tx.send(FibCmd::Apply(ops));
            }
            (Some(sync), Some(tx))
        } else {
            (None, None)
        };
        let mut listeners = Vec::new();
        for a in cfg.listen_addrs() {
            let l = Listener::bind(a)?;
            tracing::info!(listen = %l.addr(), "listening for BGP connections");
            listeners.push(l);
        }
        let (acc_tx, acc_rx) = mpsc::channel(64);
        for l in &listeners {
            l.spawn_accept(acc_tx.clone());
        }
        let (conn_tx, conn_rx) = mpsc::channel(CONN_CHANNEL);
        let (q_tx, q_rx) = mpsc::channel(16);
        let (c_tx, c_rx) = mpsc::channel(16);
        let deferral = restarting.then(|| {
            let gr_peers = cfg
                .peers
                .iter()
                .filter(|p| p.graceful_restart)
                .map(|p| p.address);
            SelectionDeferral::new(
                now,
                Duration::from_secs(cfg.graceful_restart.deferral),
                [AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast],
                gr_peers,
            )
        });
        let static_prefixes = cfg.static_prefixes();
        let mut sp = Speaker {
            rib: Rib::new(cfg.rib_options()),
            own: static_prefixes.clone(),
            own_wait: OwnWait::default(),
            static_prefixes,
            node_prefixes: BTreeSet::new(),
            service_prefixes: BTreeSet::new(),
            file_cfg: cfg.clone(),
            mesh: BTreeSet::new(),
            mesh_nodes: Vec::new(),
            peers: BTreeMap::new(),
            fib,
            fib_tx,
            deferral,
            resync_at: None,
            listeners,
            conn_tx,
            addrs,
            metrics,
            started: now,
            next_epoch: 1,
            cfg,
        };
        for p in sp.cfg.peers.clone() {
            sp.add_peer(p, restarting)?;
        }
        Ok((
            sp,
            Inputs {
                conns: conn_rx,
                accepted: acc_rx,
                queries: q_rx,
                control: c_rx,
                fib: fib_ev_rx,
            },
            Handles {
                control: c_tx,
                queries: q_tx,
            },
        ))
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.fsm.next_deadline())
            .chain(self.deferral.as_ref().and_then(|d| d.next_deadline()))
            .chain(self.resync_at)
            .chain(self.own_wait.until)
            .min()
    }

    /// End-of-RIB to every peer waits until each of `sources` has reported our own prefixes
    /// once (or the selection deferral time has passed). Call before [`Speaker::run`].
    pub fn await_own_sources(&mut self, sources: impl IntoIterator<Item = OwnSource>) {
        self.own_wait.pending = sources.into_iter().collect();
        if !self.own_wait.pending.is_empty() {
            self.own_wait.until =
                Some(self.started + Duration::from_secs(self.cfg.graceful_restart.deferral));
        }
    }

    /// Whether End-of-RIB may go out (every own-prefix source has reported).
    pub(super) fn own_known(&self) -> bool {
        self.own_wait.pending.is_empty()
    }

    /// `source` reported our own prefixes (already exported); when it was the last one
    /// awaited, the sessions that are up get their End-of-RIB.
    fn own_reported(&mut self, source: OwnSource) {
        if self.own_wait.pending.remove(&source) && self.own_wait.pending.is_empty() {
            self.own_wait.until = None;
            self.release_end_of_rib();
        }
    }

    /// End-of-RIB to every Established peer that has not had it (the FSM sends it once).
    fn release_end_of_rib(&mut self) {
        tracing::info!("own prefixes known: End-of-RIB to the peers that are up");
        let now = Instant::now();
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for a in addrs {
            let acts = match self.peers.get_mut(&a) {
                Some(p) if p.out.is_some() => p
                    .fsm
                    .handle(now, crate::session::PeerEvent::InitialAdvertisementComplete),
                _ => continue,
            };
            self.execute(a, acts, None);
        }
    }

    /// Run until shut down.
    pub async fn run(mut self, mut inp: Inputs) {
        loop {
            let deadline = self.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(c) = inp.control.recv() => {
                    if let Control::Shutdown { graceful, done } = c {
                        self.shutdown(graceful).await;
                        let _ = done.send(());
                        return;
                    }
                    self.control(c);
                }
                Some(ev) = inp.conns.recv() => self.conn_event(ev),
                Some(acc) = inp.accepted.recv() => self.accepted(acc),
                Some((req, back)) = inp.queries.recv() => {
                    let _ = back.send(self.query(req));
                }
                Some(FibEvent::Failed) = inp.fib.recv() => {
                    if self.resync_at.is_none() {
                        self.resync_at = Some(Instant::now() + Duration::from_secs(2));
                    }
                }
                _ = sleep => self.timers(Instant::now()),
            }
        }
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Reload(new) => self.reload(*new),
            Control::ReloadFailed(e) => {
                tracing::error!(error = %e, "configuration not reloaded, the running one stays");
            }
            Control::NodePrefixes(set) => {
                self.node_prefixes = set;
                self.update_own();
                self.own_reported(OwnSource::Node);
            }
            Control::Cluster(c) => {
                if c.service_prefixes != self.service_prefixes {
                    self.service_prefixes = c.service_prefixes;
                    self.update_own();
                }
                self.own_reported(OwnSource::Services);
                if c.mesh_nodes != self.mesh_nodes {
                    self.mesh_nodes = c.mesh_nodes;
                    self.refresh_import();
                }
                if c.mesh_peers != self.mesh {
                    tracing::info!(nodes = ?c.mesh_peers, "node mesh changed");
                    self.mesh = c.mesh_peers;
                    self.reload(self.file_cfg.clone());
                }
            }
            Control::Shutdown { .. } => {}
        }
    }

    fn query(&self, req: Request) -> Response {
        match req {
            Request::ShowNeighbors => Response::Neighbors(self.show_neighbors()),
            Request::ShowRoutes { prefix } => match self.show_routes(prefix) {
                Ok(r) => Response::Routes(r),
                Err(e) => Response::Error(e),
            },
            Request::ShowConfig => match serde_json::to_value(&self.cfg) {
                Ok(v) => Response::Config(v),
                Err(e) => Response::Error(e.to_string()),
            },
        }
    }

    fn timers(&mut self, now: Instant) {
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for a in addrs {
            let due = self.peers[&a].fsm.next_deadline().is_some_and(|d| d <= now);
            if due {
                let acts = self
                    .peers
                    .get_mut(&a)
                    .map(|p| p.fsm.poll(now))
                    .unwrap_or_default();
                self.execute(a, acts, None);
            }
        }
        if let Some(d) = &mut self.deferral {
            let ready = d.poll(now);
            self.selection_ready(ready);
        }
        if self.resync_at.is_some_and(|t| t <= now) {
            self.resync_at = None;
            self.resync(None);
        }
        if self.own_wait.until.is_some_and(|t| t <= now) {
            tracing::warn!(
                waiting_for = ?self.own_wait.pending,
                "own prefix sources did not report within the selection deferral time: sending End-of-RIB without them"
            );
            self.own_wait = OwnWait::default();
            self.release_end_of_rib();
        }
    }

    /// Compare the kernel with the RIB and fix the difference (after a failed operation).
    fn resync(&mut self, done: Option<oneshot::Sender<()>>) {
        let (Some(tx), Some(_)) = (&self.fib_tx, &self.fib) else {
            if let Some(d) = done {
                let _ = d.send(());
            }
            return;
        };
        let resolver = connected(&self.addrs.borrow());
        let desired = crate::fib::desired(&self.rib, &resolver);
        let mode = if self.deferral.as_ref().is_some_and(|d| !d.is_complete()) {
            DiffMode::KeepStale
        } else {
            DiffMode::Full
        };
        let _ = tx.send(FibCmd::Resync {
            desired,
            mode,
            done,
        });
    }

    fn fib_apply(&mut self, changes: &[crate::rib::Change]) {
        if changes.is_empty() {
            return;
        }
        if let (Some(sync), Some(tx)) = (&mut self.fib, &self.fib_tx) {
            let resolver = connected(&self.addrs.borrow());
            let ops = sync.apply(&self.rib, changes, &resolver);
            self.metrics.kernel_routes_stale(sync.stale_count());
            if !ops.is_empty() {
                let _ = tx.send(FibCmd::Apply(ops));
            }
        }
    }

    fn selection_ready(&mut self, ready: Vec<crate::session::SelectionReady>) {
        for r in ready {
            let Some(sync) = &mut self.fib else { continue };
            let ops: Vec<FibOp> = sync.sweep(Some(r.family));
            self.metrics.kernel_routes_stale(sync.stale_count());
            tracing::info!(
                family = %r.family,
                reason = ?r.reason,
                swept = ops.len(),
                "graceful restart: route selection done, stale kernel routes not re-learned are removed (RFC 4724 §4.1)"
            );
            if let Some(tx) = &self.fib_tx
                && !ops.is_empty()
            {
                let _ = tx.send(FibCmd::Apply(ops));
            }
        }
        if self.deferral.as_ref().is_some_and(|d| d.is_complete()) {
            self.deferral = None;
        }
    }

    /// Own prefixes = static ∪ the Node's pod CIDRs: re-advertise what changed.
    /// The import policy of a peer: the configured one; for a peer that is another Node (its
    /// address is a Node's InternalIP) also the other Nodes' pod CIDRs, each only with its
    /// Node's address as next hop (of the CIDR's family): a node cannot draw another node's
    /// pod traffic to itself.
    pub(super) fn import_for(&self, p: &PeerCfg) -> ImportPolicy {
        let mut pol = self.cfg.import_policy(p, &self.own);
        if self
            .mesh_nodes
            .iter()
            .any(|n| n.addresses.contains(&p.address))
        {
            pol.expected_next_hops = self
                .mesh_nodes
                .iter()
                .flat_map(|n| {
                    n.pod_cidrs.iter().filter_map(|c| {
                        let next_hops: Vec<IpAddr> = n
                            .addresses
                            .iter()
                            .filter(|a| a.is_ipv4() == matches!(c, IpNet::V4(_)))
                            .copied()
                            .collect();
                        (!next_hops.is_empty()).then_some(ExpectedNextHop {
                            prefix: *c,
                            next_hops,
                        })
                    })
                })
                .collect();
        }
        pol
    }

    /// New import policies for every peer (the Nodes changed); they apply to the routes
    /// received from now on.
    fn refresh_import(&mut self) {
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for a in addrs {
            let import = self.import_for(&self.peers[&a].cfg);
            if let Some(ps) = self.peers.get_mut(&a) {
                ps.import = import;
            }
        }
    }

    fn update_own(&mut self) {
        let new: BTreeSet<IpNet> = self
            .static_prefixes
            .iter()
            .chain(&self.node_prefixes)
            .chain(&self.service_prefixes)
            .copied()
            .collect();
        if new == self.own {
            return;
        }
        let changed: Vec<IpNet> = new.symmetric_difference(&self.own).copied().collect();
        tracing::info!(prefixes = ?new, "own prefixes changed");
        self.own = new;
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for a in addrs {
            let import = self.import_for(&self.peers[&a].cfg);
            if let Some(ps) = self.peers.get_mut(&a) {
                ps.import = import;
            }
            self.export_prefixes(a, &changed);
        }
    }

    async fn shutdown(&mut self, graceful: bool) {
        let now = Instant::now();
        let graceful = graceful && self.cfg.graceful_restart.enabled;
        tracing::info!(graceful, "shutting down");
        let stop = if graceful {
            crate::session::Stop::graceful()
        } else {
            crate::session::Stop::shutdown("bgpd stopped")
        };
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for a in addrs {
            let acts = match self.peers.get_mut(&a) {
                Some(p) => p
                    .fsm
                    .handle(now, crate::session::PeerEvent::ManualStop(stop.clone())),
                None => continue,
            };
            self.execute(a, acts, None);
        }
        // let the connections flush their NOTIFICATIONs
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !graceful && self.fib_tx.is_some() {
            // no graceful restart: our routes go with us
            let (tx, rx) = oneshot::channel();
            if let Some(fib_tx) = &self.fib_tx {
                let _ = fib_tx.send(FibCmd::Resync {
                    desired: Default::default(),
                    mode: DiffMode::Full,
                    done: Some(tx),
                });
            }
            let _ = tokio::time::timeout(Duration::from_secs(30), rx).await;
        }
    }
}
