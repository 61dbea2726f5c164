//! Where the objects come from: kube-runtime watchers and reflectors on the API server, or
//! the `--manifests` file source. Both feed the sync loop the same way: a generation
//! counter that moves when anything changed, and a snapshot read at sync time.
//!
//! ```text
//!   API server ──watcher(Services  !service.kubernetes.io/service-proxy-name)──> Store ─┐
//!              ──watcher(EndpointSlices  !service.kubernetes.io/headless)─────> Store ─┼─> Feed
//!              ──watcher(Node  metadata.name=NODE)────────────────────────────> Store ─┘  { changes: watch<u64>,
//!   --manifests ──FileSource::watch (poll)──> Snapshot ──────────────────────────────────>   snapshot() -> Objects }
//! ```
//! The generation stays 0 until every store has its initial list, so nothing is rendered
//! from a partial view. Reconnects, `410 Gone` relists and bookmarks are the watcher's
//! business: a relist swaps the store's content atomically when its list is complete, so
//! the rules are never rendered from (or flushed for) an empty store meanwhile.
//!
//! A dead connection (the API server's host gone, a partition that drops packets without a
//! reset) is noticed by TCP keepalive within [`crate::connector::DEAD_AFTER`] rather than by
//! kube-runtime's idle timeout (295 s). Requests that fail are retried after [`RETRY_MAX`] at
//! most; connects keep trying every [`crate::connector::ATTEMPT_EVERY`] until the API server
//! answers, so a returning API server is followed within about a second.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::config::Config;
use crate::model::{LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME};
use crate::source::{FileSource, FileWatch, Manifests};

/// The objects one sync reads.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// Services (those another proxy owns are already filtered out by the API source).
    pub services: Vec<Arc<Service>>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// This node's Node object, if it exists.
    pub node: Option<Arc<Node>>,
}

impl Objects {
    /// The objects of a manifest set, with the Node named `node_name`.
    pub fn from_manifests(m: &Manifests, node_name: &str) -> Objects {
        Objects {
            services: m.services.iter().cloned().map(Arc::new).collect(),
            endpoint_slices: m.endpoint_slices.iter().cloned().map(Arc::new).collect(),
            node: m.node(node_name).cloned().map(Arc::new),
        }
    }
}

/// Why a source could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The kubeconfig or in-cluster configuration could not be loaded.
    #[error("kubernetes client configuration: {0}")]
    Config(String),
    /// The client could not be built.
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

enum Reader {
    File {
        rx: watch::Receiver<crate::source::Snapshot>,
        node_name: String,
        cache: Mutex<Option<(u64, Arc<Objects>)>>,
        _watch: FileWatch,
    },
    Kube {
        services: Store<Service>,
        slices: Store<EndpointSlice>,
        nodes: Store<Node>,
    },
}

/// A source of objects for the sync loop.
pub struct Feed {
    /// Moves to a new value whenever the objects changed; 0 until they are complete.
    pub changes: watch::Receiver<u64>,
    reader: Reader,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("generation", &*self.changes.borrow())
            .finish()
    }
}

impl Feed {
    /// The current objects, or `None` before the initial lists are complete.
    pub fn snapshot(&self) -> Option<Arc<Objects>> {
        if *self.changes.borrow() == 0 {
            return None;
        }
        match &self.reader {
            Reader::File {
                rx,
                node_name,
                cache,
                ..
            } => {
                let snap = rx.borrow().clone();
                let manifests = snap.manifests?;
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((g, o)) = cache.as_ref()
                    && *g == snap.generation
                {
                    return Some(Arc::clone(o));
                }
                let o = Arc::new(Objects::from_manifests(&manifests, node_name));
                *cache = Some((snap.generation, Arc::clone(&o)));
                Some(o)
            }
            Reader::Kube {
                services,
                slices,
                nodes,
            } => Some(Arc::new(Objects {
                services: services.state(),
                endpoint_slices: slices.state(),
                node: nodes.state().into_iter().next(),
            })),
        }
    }

    /// Marks the current generation as seen, then takes the snapshot: a change that lands
    /// after this call wakes [`Feed::changed`] again, one already in the snapshot does not.
    pub fn take(&mut self) -> Option<Arc<Objects>> {
        self.changes.borrow_and_update();
        self.snapshot()
    }

    /// Waits until the objects changed (or the source ended: then never returns).
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            futures::future::pending::<()>().await;
        }
    }
}

/// Watches `--manifests`: every poll re-reads the files; a change moves the generation, a
/// file that stops parsing is logged and the last good objects stay.
pub fn file_feed(path: &std::path::Path, node_name: &str, poll: Duration) -> Feed {
    let fw = FileSource::new(path).watch(poll);
    let mut rx = fw.subscribe();
    let (tx, changes) = watch::channel(0u64);
    let report = |s: &crate::source::Snapshot, tx: &watch::Sender<u64>| {
        if let Some(e) = &s.error {
            tracing::error!("manifests: {e} (keeping the last objects that parsed)");
        }
        if s.manifests.is_some() {
            tx.send_modify(|g| *g += 1);
        }
    };
    report(&rx.borrow_and_update(), &tx);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let s = rx.borrow_and_update().clone();
            report(&s, &tx);
        }
    });
    Feed {
        changes,
        reader: Reader::File {
            rx: fw.subscribe(),
            node_name: node_name.to_string(),
            cache: Mutex::new(None),
            _watch: fw,
        },
    }
}

/// The kube client: `--kubeconfig` (with `--master` overriding its server), `--master`
/// alone, or the in-cluster service account.
pub async fn client(cfg: &Config) -> Result<Client, WatchError> {
    let err = |e: &dyn std::fmt::Display| WatchError::Config(e.to_string());
    let mut config = match &cfg.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| err(&e))?
        }
        None if cfg.master.is_some() => {
            let url = cfg.master.as_deref().unwrap_or_default();
            kube::Config::new(url.parse().map_err(|e| err(&e))?)
        }
        None => kube::Config::incluster().map_err(|e| err(&e))?,
    };
    if let (Some(_), Some(master)) = (&cfg.kubeconfig, &cfg.master) {
        config.cluster_url = master.parse().map_err(|e| err(&e))?;
    }
    connect(config)
}

/// The first retry of a failed watch or list comes after about this long...
pub const RETRY_MIN: Duration = Duration::from_millis(250);
/// ...doubling up to this (client-go's reflector goes to 30 s; a node proxy that missed
/// changes should not wait that long once the API server is back). Jittered to half of it.
pub const RETRY_MAX: Duration = Duration::from_secs(2);

/// The kube client on [`crate::connector::Connector`]: TCP keepalive, a user timeout, and
/// connects that persist until the API server answers (kube-rs' own `Client::try_from` uses
/// a plain connector: a watch on a connection whose packets are dropped would wait for its
/// 295 s idle timeout).
fn connect(config: kube::Config) -> Result<Client, WatchError> {
    use kube::client::ConfigExt;

    let https = config.rustls_https_connector_with_connector(crate::connector::Connector::new())?;
    let hyper: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(service, config.default_namespace))
}

/// The watchers' retry delays: doubling from [`RETRY_MIN`] to [`RETRY_MAX`], each drawn
/// between half and all of the step (so nodes that lost the API server together do not
/// retry in lockstep); back to the start after a success.
struct RetryBackoff {
    step: Duration,
    seed: u64,
}

impl RetryBackoff {
    fn new(kind: &str) -> RetryBackoff {
        use std::hash::BuildHasher;
        RetryBackoff {
            step: RETRY_MIN,
            seed: std::collections::hash_map::RandomState::new().hash_one(kind),
        }
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // splitmix64: enough randomness for jitter, no dependency.
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let step = self.step;
        self.step = (self.step * 2).min(RETRY_MAX);
        let half = step / 2;
        Some(half + half.mul_f64((z % 1024) as f64 / 1024.0))
    }
}

impl kube::runtime::utils::Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.step = RETRY_MIN;
    }
}

/// Which stores have had their first complete list.
type Ready = Arc<[std::sync::atomic::AtomicBool; 3]>;

/// Runs one reflector (store `index` of [`Ready`]), bumping the shared generation after each
/// change once every store is ready.
fn spawn_reflector<K>(
    kind: &'static str,
    api: Api<K>,
    config: watcher::Config,
    ready: (Ready, usize),
    tx: watch::Sender<u64>,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    use std::sync::atomic::Ordering;
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, config).backoff(RetryBackoff::new(kind)),
    );
    let (flags, index) = ready;
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        let mut failing = false;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(
                    e @ (watcher::Event::Apply(_)
                    | watcher::Event::Delete(_)
                    | watcher::Event::InitDone),
                ) => {
                    if failing {
                        tracing::info!(kind, "watch recovered");
                        failing = false;
                    }
                    if matches!(e, watcher::Event::InitDone) {
                        tracing::debug!(kind, "listed");
                        flags[index].store(true, Ordering::SeqCst);
                    }
                    if flags.iter().all(|f| f.load(Ordering::SeqCst)) {
                        tx.send_modify(|g| *g += 1);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    // The watcher retries with backoff; the store keeps its content.
                    if !failing {
                        tracing::warn!(
                            kind,
                            "watch failed, retrying (rules stay as they are): {e}"
                        );
                    }
                    failing = true;
                }
            }
        }
    });
    reader
}

/// Starts the three watchers. Generation 0 until each has listed once.
pub fn kube_feed(client: Client, node_name: &str) -> Feed {
    let (tx, changes) = watch::channel(0u64);
    let ready: Ready = Arc::default();
    let services = spawn_reflector(
        "Service",
        Api::<Service>::all(client.clone()),
        watcher::Config::default().labels(&format!("!{LABEL_SERVICE_PROXY_NAME}")),
        (Arc::clone(&ready), 0),
        tx.clone(),
    );
    let slices = spawn_reflector(
        "EndpointSlice",
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("!{LABEL_HEADLESS}")),
        (Arc::clone(&ready), 1),
        tx.clone(),
    );
    let nodes = spawn_reflector(
        "Node",
        Api::<Node>::all(client),
        watcher::Config::default().fields(&format!("metadata.name={node_name}")),
        (ready, 2),
        tx,
    );
    Feed {
        changes,
        reader: Reader::Kube {
            services,
            slices,
            nodes,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;

    #[test]
    fn retry_backoff_doubles_to_its_cap_jittered_and_resets() {
        let mut b = RetryBackoff::new("Service");
        let mut step = RETRY_MIN;
        for _ in 0..10 {
            let d = b.next().unwrap();
            assert!(
                d >= step / 2 && d <= step,
                "{d:?} outside {step:?}/2..{step:?}"
            );
            step = (step * 2).min(RETRY_MAX);
        }
        let capped: Vec<Duration> = (0..50).map(|_| b.next().unwrap()).collect();
        assert!(
            capped
                .iter()
                .all(|d| *d >= RETRY_MAX / 2 && *d <= RETRY_MAX)
        );
        // jittered: not all the same
        assert!(capped.iter().any(|d| *d != capped[0]), "{capped:?}");
        b.reset();
        assert!(b.next().unwrap() <= RETRY_MIN);
    }
}
