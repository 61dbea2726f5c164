//! The running part: state shared by every request, the accept loop on its own tokio runtime,
//! and the connection bookkeeping that `stop`, `partition` and `cut_connections` act on.
//!
//! ```text
//!   ApiServer (sync handle) ── Arc<Shared> ── store (Mutex<Store>), rv (watch::Sender<u64>),
//!        │                                   partitioned (watch::Sender<bool>), request log
//!        └─ runtime ── accept loop (one per start; cancelled by stop/partition)
//!                        └─ one task per connection (hyper http1 + the axum router),
//!                           cancelled together by cut_connections/stop
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::object::ServiceRanges;
use super::resource::Kind;
use super::store::Store;

/// What a request did, in kube-apiserver's audit vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// `/version`, `/api`, `/apis`, `/openapi/...`: discovery.
    Discovery,
    /// Anything else (unknown paths, health checks).
    Other,
}

/// One request the double answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// What the request did.
    pub verb: Verb,
    /// The kind addressed, for resource requests.
    pub kind: Option<Kind>,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// HTTP status code of the answer (200 for a watch that started).
    pub code: u16,
}

/// Keeps the last requests and a count of every (verb, kind) ever seen.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    recent: std::collections::VecDeque<RequestRecord>,
    counts: BTreeMap<(Verb, Option<Kind>), u64>,
}

const RECENT_REQUESTS: usize = 10_000;

impl RequestLog {
    pub(crate) fn record(&mut self, r: RequestRecord) {
        *self.counts.entry((r.verb, r.kind)).or_default() += 1;
        self.recent.push_back(r);
        while self.recent.len() > RECENT_REQUESTS {
            self.recent.pop_front();
        }
    }
    pub(crate) fn recent(&self) -> Vec<RequestRecord> {
        self.recent.iter().cloned().collect()
    }
    pub(crate) fn count(&self, verb: Verb, kind: Option<Kind>) -> u64 {
        self.counts
            .iter()
            .filter(|((v, k), _)| *v == verb && (kind.is_none() || *k == kind))
            .map(|(_, n)| n)
            .sum()
    }
    pub(crate) fn clear(&mut self) {
        *self = RequestLog::default();
    }
}

/// State every request and the handle share.
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// The store's resourceVersion after each commit; watch streams wait on it.
    pub(crate) rv: watch::Sender<u64>,
    /// Whether the double is partitioned (requests and watch streams hold).
    pub(crate) partitioned: watch::Sender<bool>,
    /// How often watch streams that asked for bookmarks get one.
    pub(crate) bookmark_interval: Duration,
    /// ClusterIP and NodePort ranges for allocation.
    pub(crate) ranges: ServiceRanges,
    /// The address served (for `/api`'s serverAddressByClientCIDRs).
    pub(crate) addr: Mutex<SocketAddr>,
    pub(crate) log: Mutex<RequestLog>,
    pub(crate) open_watches: AtomicUsize,
    uid_seed: u64,
    uid_counter: AtomicU64,
    /// Cancelling it closes every open connection; replaced by a fresh token each time.
    conns: Mutex<CancellationToken>,
}

impl Shared {
    pub(crate) fn new(store: Store, bookmark_interval: Duration, ranges: ServiceRanges) -> Shared {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32);
        let rv = store.resource_version();
        Shared {
            store: Mutex::new(store),
            rv: watch::Sender::new(rv),
            partitioned: watch::Sender::new(false),
            bookmark_interval,
            ranges,
            addr: Mutex::new(SocketAddr::from(([127, 0, 0, 1], 0))),
            log: Mutex::new(RequestLog::default()),
            open_watches: AtomicUsize::new(0),
            uid_seed: seed,
            uid_counter: AtomicU64::new(0),
            conns: Mutex::new(CancellationToken::new()),
        }
    }

    /// The store, locked. A panic while it was held leaves it usable (every write is one
    /// `put`/`remove`, so the store is never half-updated).
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the watch streams after a commit.
    pub(crate) fn notify(&self, rv: u64) {
        self.rv.send_replace(rv);
    }

    /// A fresh UUID-shaped uid.
    pub(crate) fn new_uid(&self) -> String {
        let n = self.uid_counter.fetch_add(1, Ordering::Relaxed);
        let mut x = self
            .uid_seed
            .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let (a, b) = (next(), next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// Waits while the double is partitioned; `false` if the server shut down meanwhile.
    pub(crate) async fn pass_partition(&self, shutdown: &CancellationToken) -> bool {
        let mut rx = self.partitioned.subscribe();
        tokio::select! {
            r = rx.wait_for(|p| !*p) => r.is_ok(),
            _ = shutdown.cancelled() => false,
        }
    }

    /// The token whose cancellation closes the connections open now.
    pub(crate) fn conns_token(&self) -> CancellationToken {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Closes every open connection (watch streams included); later ones are unaffected.
    pub(crate) fn cut_connections(&self) {
        let old = std::mem::replace(
            &mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()),
            CancellationToken::new(),
        );
        old.cancel();
    }
}

/// A running accept loop; dropping it does not stop it, [`Listener::stop`] does.
pub(crate) struct Listener {
    stop: CancellationToken,
    done: std::sync::mpsc::Receiver<()>,
}

impl Listener {
    /// Stops accepting and waits until the listening socket is closed (new connections are
    /// refused from then on).
    pub(crate) fn stop(self) {
        self.stop.cancel();
        let _ = self.done.recv_timeout(Duration::from_secs(5));
    }
}

/// Binds `addr` and starts accepting on `rt`, serving `router`. The socket is bound on the
/// runtime's own threads, which live in the network namespace the server was started in, so a
/// restart from any thread binds there again.
pub(crate) fn listen(
    rt: &tokio::runtime::Handle,
    shared: Arc<Shared>,
    addr: SocketAddr,
    router: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, Listener)> {
    let stop = shutdown.child_token();
    let (done_tx, done) = std::sync::mpsc::channel();
    let (bound_tx, bound) = std::sync::mpsc::channel();
    let stop2 = stop.clone();
    rt.spawn(async move {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                let _ = bound_tx.send(Err(e));
                let _ = done_tx.send(());
                return;
            }
        };
        let _ = bound_tx.send(listener.local_addr());
        loop {
            tokio::select! {
                _ = stop2.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((sock, _peer)) => {
                        let _ = sock.set_nodelay(true);
                        let conns = shared.conns_token();
                        let shutdown = shutdown.clone();
                        let svc = TowerToHyperService::new(router.clone());
                        tokio::spawn(async move {
                            let conn = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(sock), svc);
                            tokio::select! {
                                _ = conn => {}
                                _ = conns.cancelled() => {}
                                _ = shutdown.cancelled() => {}
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!("apiserver: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
            }
        }
        drop(listener);
        let _ = done_tx.send(());
    });
    let local = bound
        .recv()
        .map_err(|_| std::io::Error::other("the API server runtime is gone"))??;
    Ok((local, Listener { stop, done }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_unique_and_uuid_shaped() {
        let s = Shared::new(
            Store::new(10),
            Duration::from_secs(1),
            ServiceRanges::default(),
        );
        let uids: std::collections::BTreeSet<String> = (0..1000).map(|_| s.new_uid()).collect();
        assert_eq!(uids.len(), 1000);
        for u in uids.iter().take(5) {
            let parts: Vec<usize> = u.split('-').map(str::len).collect();
            assert_eq!(parts, [8, 4, 4, 4, 12], "{u}");
            assert_eq!(&u[14..15], "4");
        }
    }

    #[test]
    fn request_counts_by_verb_and_kind() {
        let mut log = RequestLog::default();
        let r = |verb, kind| RequestRecord {
            verb,
            kind,
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            code: 200,
        };
        log.record(r(Verb::List, Some(Kind::Service)));
        log.record(r(Verb::List, Some(Kind::Node)));
        log.record(r(Verb::Watch, Some(Kind::Service)));
        assert_eq!(log.count(Verb::List, None), 2);
        assert_eq!(log.count(Verb::List, Some(Kind::Node)), 1);
        assert_eq!(log.count(Verb::Watch, Some(Kind::Node)), 0);
        assert_eq!(log.recent().len(), 3);
        log.clear();
        assert_eq!(log.count(Verb::List, None), 0);
    }
}
