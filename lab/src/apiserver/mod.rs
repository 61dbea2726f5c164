//! A Kubernetes API server double that speaks the real list/watch protocol over plain HTTP, so
//! kube-rs' watchers and reflectors and `kubectl` work against it unchanged. It serves
//! Namespaces, Nodes, Pods, Services (`v1`) and EndpointSlices (`discovery.k8s.io/v1`).
//!
//! ```text
//!   test / lab ──ApiServer (sync handle)──> apply/delete/get/list, compact, stop/restart,
//!        │                                  partition, cut_connections, request counts
//!        │                ┌───────────── own tokio runtime ─────────────┐
//!   kubeconfig ──> kube-rs / kubectl ──HTTP──> discovery, list, watch (bookmarks, 410 Gone),
//!   (http://ADDR)                             create, update, patch, delete, Table printing
//!                         └──────────── store: one resourceVersion, history ──┘
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::Service;
//! let api = lab::apiserver::ApiServer::start(Default::default())?;
//! api.kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! api.apply(&serde_json::json!({
//!     "apiVersion": "v1", "kind": "Service",
//!     "metadata": {"name": "web", "namespace": "default"},
//!     "spec": {"clusterIP": "198.19.0.10", "ports": [{"port": 80}]}
//! }))?;
//! assert!(api.get::<Service>("default", "web").is_some());
//! api.compact(); // watches resuming from an older resourceVersion now get 410 Gone
//! # Ok(()) }
//! ```
//! What it does not do: authentication, admission, protobuf, field ownership for server-side
//! apply, graceful deletion (deletes are immediate), validation of spec fields beyond their
//! types (so tests can feed clients malformed objects).

pub mod discovery;
mod http;
pub mod manifests;
pub mod object;
pub mod openapi;
mod ops;
pub mod patch;
pub mod query;
pub mod resource;
pub mod selector;
mod server;
pub mod status;
pub mod store;
pub mod table;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use manifests::ManifestError;
pub use object::ServiceRanges;
pub use resource::Kind;
pub use server::{RequestRecord, Verb};
pub use status::ApiError;

use server::{Listener, Shared};
use store::{ObjectKey, Store};

/// Errors of the API server handle.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The tokio runtime could not be built.
    #[error("cannot start the API server runtime: {0}")]
    Runtime(std::io::Error),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// An object given to the handle was refused (the message is the Status kube-apiserver
    /// would answer).
    #[error("{what}: {reason}: {message}")]
    Object {
        /// Which object (`Service default/web`, `initial object 3`).
        what: String,
        /// The Status reason (`Invalid`, `BadRequest`...).
        reason: &'static str,
        /// The Status message.
        message: String,
    },
    /// The kubeconfig could not be written.
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Manifests could not be loaded.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// How to start the double.
#[derive(Debug, Clone)]
pub struct ApiServerOpts {
    /// Where to listen (default `127.0.0.1:0`, a free loopback port).
    pub listen: SocketAddr,
    /// How often watch streams that asked for bookmarks get one (default 60 s, about what
    /// kube-apiserver does; tests use less).
    pub bookmark_interval: Duration,
    /// Objects to create at start (any served kind; their namespaces are created as needed).
    pub objects: Vec<Value>,
    /// Changes kept for watches and historical lists before the oldest are compacted away
    /// (default 100,000).
    pub history_limit: usize,
    /// ClusterIP and NodePort ranges for Services that do not name theirs.
    pub service_ranges: ServiceRanges,
}

impl Default for ApiServerOpts {
    fn default() -> Self {
        ApiServerOpts {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            bookmark_interval: Duration::from_secs(60),
            objects: Vec::new(),
            history_limit: 100_000,
            service_ranges: ServiceRanges::default(),
        }
    }
}

/// The namespaces every cluster starts with.
pub const DEFAULT_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Default)]
struct RunState {
    listener: Option<Listener>,
    stopped: bool,
    partitioned: bool,
}

/// A running API server double on its own runtime thread; stops when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
    shutdown: CancellationToken,
    addr: SocketAddr,
    run: Mutex<RunState>,
}

fn refused(what: String, e: ApiError) -> ApiServerError {
    ApiServerError::Object {
        what,
        reason: e.reason,
        message: e.message,
    }
}

impl ApiServer {
    /// Starts the double: builds its runtime, creates the default namespaces and the initial
    /// objects, and listens.
    pub fn start(opts: ApiServerOpts) -> Result<ApiServer, ApiServerError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lab-apiserver")
            .enable_all()
            .build()
            .map_err(ApiServerError::Runtime)?;
        let shared = Arc::new(Shared::new(
            Store::new(opts.history_limit),
            opts.bookmark_interval,
            opts.service_ranges.clone(),
        ));
        for ns in DEFAULT_NAMESPACES {
            let obj = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            shared
                .apply_direct(obj)
                .map_err(|e| refused(format!("namespace {ns}"), e))?;
        }
        for (i, obj) in opts.objects.into_iter().enumerate() {
            let what = format!("initial object {} ({})", i + 1, describe(&obj));
            shared.apply_direct(obj).map_err(|e| refused(what, e))?;
        }
        let shutdown = CancellationToken::new();
        let (addr, listener) = Self::listen_on(&rt, &shared, &shutdown, opts.listen)?;
        *shared.addr.lock().unwrap_or_else(|p| p.into_inner()) = addr;
        Ok(ApiServer {
            shared,
            rt: Some(rt),
            shutdown,
            addr,
            run: Mutex::new(RunState {
                listener: Some(listener),
                ..Default::default()
            }),
        })
    }

    fn listen_on(
        rt: &tokio::runtime::Runtime,
        shared: &Arc<Shared>,
        shutdown: &CancellationToken,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, Listener), ApiServerError> {
        let router = http::router(http::Ctx {
            shared: shared.clone(),
            shutdown: shutdown.clone(),
        });
        server::listen(rt.handle(), shared.clone(), addr, router, shutdown.clone())
            .map_err(|source| ApiServerError::Listen { addr, source })
    }

    fn run(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server (plain HTTP, no credentials), as YAML text.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab-apiserver\n  cluster:\n    server: {}\n\
             contexts:\n- name: lab-apiserver\n  context:\n    cluster: lab-apiserver\n    user: lab-apiserver\n    namespace: default\n\
             current-context: lab-apiserver\npreferences: {{}}\nusers:\n- name: lab-apiserver\n  user: {{}}\n",
            self.url()
        )
    }

    /// Writes [`ApiServer::kubeconfig_yaml`] to `path` (for `kubectl --kubeconfig` and
    /// kube-rs' `Config::from_custom_kubeconfig`).
    pub fn kubeconfig(&self, path: &Path) -> Result<(), ApiServerError> {
        std::fs::write(path, self.kubeconfig_yaml()).map_err(|source| ApiServerError::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Creates or replaces an object as given (any served kind, typed or JSON), bypassing
    /// HTTP: its namespace is created if missing, `status` is taken as given, system fields
    /// are stamped and defaults filled. Returns the stored object.
    pub fn apply(&self, obj: &impl serde::Serialize) -> Result<Value, ApiServerError> {
        let v = serde_json::to_value(obj).map_err(|e| ApiServerError::Object {
            what: "object".into(),
            reason: "BadRequest",
            message: e.to_string(),
        })?;
        let what = describe(&v);
        self.shared.apply_direct(v).map_err(|e| refused(what, e))
    }

    /// Deletes an object (a Namespace with everything in it); `false` if it did not exist.
    /// `namespace` is ignored for cluster-scoped kinds.
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<bool, ApiServerError> {
        match self
            .shared
            .delete(kind, namespace, name, &Value::Null, false)
        {
            Ok(_) => Ok(true),
            Err(e) if e.code == 404 => Ok(false),
            Err(e) => Err(refused(format!("{kind} {namespace}/{name}"), e)),
        }
    }

    /// One stored object as JSON.
    pub fn get_raw(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .store()
            .get(&ObjectKey::new(kind, namespace, name))
            .cloned()
    }

    /// One stored object as its k8s-openapi type (`api.get::<Service>("default", "web")`).
    pub fn get<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: k8s_openapi::Resource + serde::de::DeserializeOwned,
    {
        let kind = Kind::of::<K>()?;
        serde_json::from_value(self.get_raw(kind, namespace, name)?).ok()
    }

    /// The stored objects of `kind` (in one namespace or all), in key order.
    pub fn list_raw(&self, kind: Kind, namespace: Option<&str>) -> Vec<Value> {
        self.shared
            .store()
            .objects(kind, namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The stored objects of a k8s-openapi type (in one namespace or all).
    pub fn list<K>(&self, namespace: Option<&str>) -> Vec<K>
    where
        K: k8s_openapi::Resource + serde::de::DeserializeOwned,
    {
        let Some(kind) = Kind::of::<K>() else {
            return Vec::new();
        };
        self.list_raw(kind, namespace)
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version()
    }

    /// Drops the change history: a watch or an exact list from any older resourceVersion now
    /// gets `410 Gone` (reason `Expired`). Open watch streams keep going.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// Stops serving: the listening socket closes (connections are refused) and every open
    /// connection, watch streams included, is closed. The state is kept.
    pub fn stop(&self) {
        let mut run = self.run();
        if let Some(l) = run.listener.take() {
            l.stop();
        }
        run.stopped = true;
        self.shared.cut_connections();
    }

    /// Serves again on the same address with the same state (after [`ApiServer::stop`], or as
    /// a stop-and-start if running). Clears a partition. Clients resuming from an older
    /// resourceVersion get `410 Gone` only if [`ApiServer::compact`] was called meanwhile.
    pub fn restart(&self) -> Result<(), ApiServerError> {
        self.stop();
        self.shared.partitioned.send_replace(false);
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| ApiServerError::Runtime(std::io::Error::other("shut down")))?;
        let (_, listener) = Self::listen_on(rt, &self.shared, &self.shutdown, self.addr)?;
        let mut run = self.run();
        *run = RunState {
            listener: Some(listener),
            stopped: false,
            partitioned: false,
        };
        Ok(())
    }

    /// Whether the double accepts connections now.
    pub fn is_running(&self) -> bool {
        self.run().listener.is_some()
    }

    /// Partitions the double from its clients (`true`) or heals it (`false`). While
    /// partitioned, new connections are refused, and on open connections requests get no
    /// answer and watch streams deliver nothing (not even their close) — as if packets were
    /// lost. On healing, held requests are answered and streams deliver what they missed.
    /// Combine with [`ApiServer::cut_connections`] for a partition that also breaks the open
    /// connections.
    pub fn partition(&self, on: bool) -> Result<(), ApiServerError> {
        let mut run = self.run();
        if on == run.partitioned {
            return Ok(());
        }
        run.partitioned = on;
        if on {
            self.shared.partitioned.send_replace(true);
            if let Some(l) = run.listener.take() {
                l.stop();
            }
        } else {
            if !run.stopped {
                let rt = self
                    .rt
                    .as_ref()
                    .ok_or_else(|| ApiServerError::Runtime(std::io::Error::other("shut down")))?;
                let (_, listener) = Self::listen_on(rt, &self.shared, &self.shutdown, self.addr)?;
                run.listener = Some(listener);
            }
            self.shared.partitioned.send_replace(false);
        }
        Ok(())
    }

    /// Closes every open connection now (watch streams end abruptly, as on a server crash or a
    /// connection reset); new connections are served as before.
    pub fn cut_connections(&self) {
        self.shared.cut_connections();
    }

    /// Watch streams open now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` watch streams are open; `false` on timeout. For waiting until
    /// a client is watching before changing objects, not for timing assertions.
    pub fn wait_for_watches(&self, n: usize, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.open_watches() >= n)
    }

    /// The last requests answered (at most 10,000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recent()
    }

    /// How many requests of `verb` (on `kind`, or any) were answered since the start or the
    /// last [`ApiServer::clear_requests`].
    pub fn request_count(&self, verb: Verb, kind: Option<Kind>) -> u64 {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .count(verb, kind)
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(l) = self.run().listener.take() {
            l.stop();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// `Service default/web`, for messages.
fn describe(obj: &Value) -> String {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
    let ns = s("/metadata/namespace");
    let name = s("/metadata/name");
    if ns.is_empty() {
        format!("{} {name}", s("/kind"))
    } else {
        format!("{} {ns}/{name}", s("/kind"))
    }
}
