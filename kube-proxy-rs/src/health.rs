//! Health endpoints as upstream serves them (`pkg/proxy/healthcheck`): `/healthz` and
//! `/livez` on `--healthz-bind-address` (`0.0.0.0:10256`), and one health-check node port
//! server per `externalTrafficPolicy: Local` Service, which load balancers probe.
//!
//! ```text
//!   sync driver ──queued(family) / updated(family) / set_node(Node)──> ProxyHealth (pure)
//!   GET /healthz  200 | 503  {"lastUpdated": "…","currentTime": "…", "nodeEligible": true}
//!   GET /livez    200 | 503  {"lastUpdated": "…","currentTime": "…"}
//!   sync driver ──ServiceHealth::sync(ports, local endpoints)──> listeners opened / closed
//!   GET :HCNP/    200 if localEndpoints > 0 and the proxy is healthy, else 503
//!                 {"service": {"namespace": …, "name": …}, "localEndpoints": N, "serviceProxyHealthy": b}
//! ```
//! Healthy (upstream `isHealthy`): no family has had a change queued for longer than the
//! timeout (2 × `--sync-period`) without a successful sync since. `/healthz` is also 503
//! while the Node is being deleted or carries the `ToBeDeletedByClusterAutoscaler` taint
//! (KEP-3836); `/livez` ignores the Node. Times print as Go's `time.Time.String()` does.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use dataplane::Family;
use k8s_openapi::api::core::v1::Node;

use crate::metrics::{Metrics, label};
use crate::model::ServiceName;

/// The Cluster Autoscaler's taint on nodes it is about to delete.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// The proxier's health (upstream `ProxyHealthServer`), without the server.
#[derive(Debug, Clone)]
pub struct ProxyHealth {
    timeout: Duration,
    last_updated: HashMap<Family, SystemTime>,
    oldest_pending: HashMap<Family, SystemTime>,
    node_eligible: bool,
}

impl ProxyHealth {
    /// Healthy until a queued change stays unapplied for `timeout`.
    pub fn new(timeout: Duration) -> ProxyHealth {
        ProxyHealth {
            timeout,
            last_updated: HashMap::new(),
            oldest_pending: HashMap::new(),
            node_eligible: true,
        }
    }

    /// A change for `family` was queued (upstream `QueuedUpdate`): the oldest pending one
    /// is what counts.
    pub fn queued(&mut self, family: Family, now: SystemTime) {
        self.oldest_pending.entry(family).or_insert(now);
    }

    /// `family` applied everything queued (upstream `Updated`).
    pub fn updated(&mut self, family: Family, now: SystemTime) {
        self.oldest_pending.remove(&family);
        self.last_updated.insert(family, now);
    }

    /// Follows the Node: ineligible while being deleted or tainted for deletion.
    pub fn set_node(&mut self, node: Option<&Node>) {
        self.node_eligible = node.is_none_or(|n| {
            n.metadata.deletion_timestamp.is_none()
                && !n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|ts| ts.iter().any(|t| t.key == TO_BE_DELETED_TAINT))
        });
    }

    /// Whether the Node is eligible for traffic.
    pub fn node_eligible(&self) -> bool {
        self.node_eligible
    }

    /// Healthy, and the last update time (upstream `isHealthy`).
    pub fn healthy(&self, now: SystemTime) -> (bool, Option<SystemTime>) {
        let mut last = self.last_updated.values().max().copied();
        for (family, since) in &self.oldest_pending {
            let late = now
                .duration_since(*since)
                .is_ok_and(|waited| waited >= self.timeout);
            if late {
                last = self.last_updated.get(family).copied();
                return (false, last);
            }
        }
        (true, last)
    }
}

/// `t` as Go's `time.Time.String()` prints a UTC time: `2006-01-02 15:04:05.999999999 +0000
/// UTC` (trailing zeros of the fraction dropped); the zero time for `None`.
pub fn go_time(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    };
    let Ok(ts) = jiff::Timestamp::try_from(t) else {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    };
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let nanos = dt.subsec_nanosecond();
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{frac} +0000 UTC",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Go's `%q` of a string (what upstream's bodies use): JSON escaping is the same for the
/// names Kubernetes allows.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The `/healthz` answer (status, body) at `now`.
pub fn healthz(h: &ProxyHealth, now: SystemTime) -> (StatusCode, String) {
    let (healthy, last) = h.healthy(now);
    let healthy = healthy && h.node_eligible;
    // Upstream reports the current time as lastUpdated while healthy.
    let last = if healthy { Some(now) } else { last };
    let body = format!(
        "{{\"lastUpdated\": {},\"currentTime\": {}, \"nodeEligible\": {}}}",
        quoted(&go_time(last)),
        quoted(&go_time(Some(now))),
        h.node_eligible
    );
    (status(healthy), body)
}

/// The `/livez` answer (the Node does not count).
pub fn livez(h: &ProxyHealth, now: SystemTime) -> (StatusCode, String) {
    let (healthy, last) = h.healthy(now);
    let last = if healthy { Some(now) } else { last };
    let body = format!(
        "{{\"lastUpdated\": {},\"currentTime\": {}}}",
        quoted(&go_time(last)),
        quoted(&go_time(Some(now)))
    );
    (status(healthy), body)
}

/// A health-check node port's answer (upstream `hcHandler`): 200 when the Service has a
/// local endpoint and the proxy is healthy. The body is upstream's, tab-indented.
pub fn service_health(
    svc: &ServiceName,
    local: usize,
    proxy_healthy: bool,
) -> (StatusCode, String) {
    let body = format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\"localEndpoints\": {local},\n\t\"serviceProxyHealthy\": {proxy_healthy}\n}}",
        quoted(&svc.namespace),
        quoted(&svc.name)
    );
    (status(local > 0 && proxy_healthy), body)
}

fn status(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

fn json(code: StatusCode, body: String) -> axum::response::Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Shared health state.
pub type SharedHealth = Arc<Mutex<ProxyHealth>>;

fn lock(h: &SharedHealth) -> std::sync::MutexGuard<'_, ProxyHealth> {
    h.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves `/healthz` and `/livez` on `addr` until dropped.
pub async fn serve_healthz(addr: SocketAddr, health: SharedHealth, metrics: Metrics) {
    use axum::routing::get;
    let (h1, m1) = (Arc::clone(&health), metrics.clone());
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(move || {
                let (code, body) = healthz(&lock(&h1), SystemTime::now());
                m1.healthz
                    .get_or_create(&label("code", code.as_str()))
                    .inc();
                async move { json(code, body) }
            }),
        )
        .route(
            "/livez",
            get(move || {
                let (code, body) = livez(&lock(&health), SystemTime::now());
                metrics
                    .livez
                    .get_or_create(&label("code", code.as_str()))
                    .inc();
                async move { json(code, body) }
            }),
        );
    serve_forever("healthz", addr, app).await;
}

/// Binds `addr` (retrying every 5 s while it fails, as upstream) and serves `app`.
pub async fn serve_forever(what: &'static str, addr: SocketAddr, app: axum::Router) {
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!("{what} server listening on {addr}");
                if let Err(e) = axum::serve(l, app.clone()).await {
                    tracing::error!("{what} server on {addr} stopped: {e}");
                }
            }
            Err(e) => tracing::error!("cannot listen on {addr} for {what}: {e}; retrying in 5s"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// A dual-stack listener on `[::]:port` (falling back to `0.0.0.0` without IPv6), or on one
/// address.
fn listen(ip: Option<IpAddr>, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let (addr, dual) = match ip {
        Some(ip) => (SocketAddr::new(ip, port), false),
        None => (
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            true,
        ),
    };
    let make = |addr: SocketAddr, dual: bool| -> std::io::Result<std::net::TcpListener> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        if dual {
            s.set_only_v6(false)?;
        }
        s.set_reuse_address(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        s.listen(128)?;
        Ok(s.into())
    };
    let std = match make(addr, dual) {
        Ok(l) => l,
        Err(_) if dual => make(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port), false)?,
        Err(e) => return Err(e),
    };
    tokio::net::TcpListener::from_std(std)
}

struct Instance {
    port: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The health-check node port servers (upstream `ServiceHealthServer`).
pub struct ServiceHealth {
    health: SharedHealth,
    /// Where to listen: `None` for every address, else these addresses.
    addresses: Option<Vec<IpAddr>>,
    counts: Arc<Mutex<BTreeMap<ServiceName, usize>>>,
    servers: BTreeMap<ServiceName, Instance>,
}

impl std::fmt::Debug for ServiceHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHealth")
            .field("services", &self.servers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ServiceHealth {
    /// No servers yet.
    pub fn new(health: SharedHealth) -> ServiceHealth {
        ServiceHealth {
            health,
            addresses: None,
            counts: Arc::default(),
            servers: BTreeMap::new(),
        }
    }

    /// Listen on these addresses (from `--nodeport-addresses`) instead of all; applies to
    /// listeners opened from now on.
    pub fn set_addresses(&mut self, addresses: Option<Vec<IpAddr>>) {
        self.addresses = addresses;
    }

    /// The ports being served.
    pub fn ports(&self) -> BTreeMap<ServiceName, u16> {
        self.servers
            .iter()
            .map(|(k, v)| (k.clone(), v.port))
            .collect()
    }

    /// Opens listeners for new Services (or changed ports), closes those of Services gone,
    /// and publishes the local endpoint counts. Must run inside a tokio runtime.
    pub fn sync(
        &mut self,
        ports: &BTreeMap<ServiceName, u16>,
        local: &BTreeMap<ServiceName, usize>,
    ) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()) = local.clone();
        self.servers.retain(|svc, inst| {
            let keep = ports.get(svc) == Some(&inst.port);
            if !keep {
                tracing::info!(service = %svc, port = inst.port, "closing health check node port");
            }
            keep
        });
        for (svc, port) in ports {
            if self.servers.contains_key(svc) {
                continue;
            }
            match self.open(svc, *port) {
                Ok(inst) => {
                    tracing::info!(service = %svc, port, "serving health check node port");
                    self.servers.insert(svc.clone(), inst);
                }
                // Retried on the next sync (another process may hold the port).
                Err(e) => {
                    tracing::error!(service = %svc, port, "cannot open health check node port: {e}")
                }
            }
        }
    }

    fn open(&self, svc: &ServiceName, port: u16) -> std::io::Result<Instance> {
        use axum::routing::get;
        let ips: Vec<Option<IpAddr>> = match &self.addresses {
            None => vec![None],
            Some(list) => list.iter().copied().map(Some).collect(),
        };
        let mut tasks = Vec::new();
        for ip in ips {
            let listener = listen(ip, port)?;
            let (svc2, counts, health) = (
                svc.clone(),
                Arc::clone(&self.counts),
                Arc::clone(&self.health),
            );
            let handler = move || {
                let local = counts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&svc2)
                    .copied()
                    .unwrap_or(0);
                let healthy = lock(&health).healthy(SystemTime::now()).0;
                let (code, body) = service_health(&svc2, local, healthy);
                async move { json(code, body) }
            };
            let app = axum::Router::new().fallback(get(handler));
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        Ok(Instance { port, tasks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    #[test]
    fn healthy_until_a_queued_change_is_late() {
        let mut h = ProxyHealth::new(Duration::from_secs(60));
        assert_eq!(h.healthy(at(0)), (true, None)); // starting up
        h.queued(Family::V4, at(0));
        h.queued(Family::V4, at(30)); // the oldest pending counts
        assert!(h.healthy(at(59)).0);
        assert_eq!(h.healthy(at(60)), (false, None));
        h.updated(Family::V4, at(61));
        assert_eq!(h.healthy(at(62)), (true, Some(at(61))));
        h.queued(Family::V6, at(100));
        assert_eq!(h.healthy(at(170)), (false, None)); // IPv6 never updated
        let (code, body) = healthz(&h, at(170));
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "{\"lastUpdated\": \"0001-01-01 00:00:00 +0000 UTC\",\"currentTime\": \
             \"2023-11-14 22:16:10 +0000 UTC\", \"nodeEligible\": true}"
        );
    }

    #[test]
    fn node_being_deleted_fails_healthz_not_livez() {
        let mut h = ProxyHealth::new(Duration::from_secs(60));
        let mut node: Node = serde_json::from_str(
            r#"{"metadata":{"name":"n"},"spec":{"taints":[{"key":"ToBeDeletedByClusterAutoscaler","effect":"NoSchedule"}]}}"#,
        )
        .unwrap();
        h.set_node(Some(&node));
        assert_eq!(healthz(&h, at(0)).0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(livez(&h, at(0)).0, StatusCode::OK);
        node.spec = None;
        h.set_node(Some(&node));
        let (code, body) = healthz(&h, at(0));
        assert_eq!(code, StatusCode::OK);
        assert!(body.ends_with("\"nodeEligible\": true}"), "{body}");
    }

    #[test]
    fn go_time_trims_the_fraction() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(go_time(Some(t)), "2023-11-14 22:13:20.12 +0000 UTC");
    }

    #[test]
    fn service_health_body_is_upstreams() {
        let svc = ServiceName {
            namespace: "demo".into(),
            name: "web".into(),
        };
        let (code, body) = service_health(&svc, 2, true);
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            body,
            "{\n\t\"service\": {\n\t\t\"namespace\": \"demo\",\n\t\t\"name\": \"web\"\n\t},\n\t\
             \"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
        );
        assert_eq!(
            service_health(&svc, 0, true).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            service_health(&svc, 3, false).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["localEndpoints"], 2);
    }
}
