//! Prometheus metrics with upstream kube-proxy's names (`pkg/proxy/metrics`), served on
//! `--metrics-bind-address` (`127.0.0.1:10249`) at `/metrics`, plus kube-proxy-rs's own
//! (`kubeproxy_rs_*`).
//!
//! ```text
//!   sync driver ──observe / set / inc──> Metrics (prometheus-client handles, shared)
//!   GET /metrics ──encode (OpenMetrics text)──> scraper
//!   GET /proxyMode ──> "iptables"
//! ```
//! prometheus-client writes counters with their `_total` suffix, so counters are registered
//! without it. Dual-stack: rule counts are the sums over both families (upstream's two
//! proxiers overwrite each other's gauges).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

/// Label pairs (`table="nat"`).
pub type Labels = Vec<(String, String)>;

/// One label pair.
pub fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

/// Every metric kube-proxy-rs exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// `kubeproxy_sync_proxy_rules_duration_seconds`: every sync of a family.
    pub sync_duration: Histogram,
    /// `kubeproxy_sync_full_proxy_rules_duration_seconds`.
    pub sync_full_duration: Histogram,
    /// `kubeproxy_sync_partial_proxy_rules_duration_seconds`.
    pub sync_partial_duration: Histogram,
    /// `kubeproxy_network_programming_duration_seconds`: EndpointSlice trigger time to
    /// rules in the kernel.
    pub network_programming: Histogram,
    /// `kubeproxy_sync_proxy_rules_last_timestamp_seconds`: the last successful sync.
    pub last_timestamp: Gauge<f64, AtomicU64>,
    /// `kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds`: the last change queued.
    pub last_queued_timestamp: Gauge<f64, AtomicU64>,
    /// `kubeproxy_sync_proxy_rules_iptables_total{table}`: rules kube-proxy holds.
    pub iptables_total: Family<Labels, Gauge>,
    /// `kubeproxy_sync_proxy_rules_iptables_last{table}`: rules written by the last sync.
    pub iptables_last: Family<Labels, Gauge>,
    /// `kubeproxy_sync_proxy_rules_iptables_restore_failures_total`.
    pub restore_failures: Counter,
    /// `kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total`.
    pub partial_restore_failures: Counter,
    /// `kubeproxy_sync_proxy_rules_endpoint_changes_total`.
    pub endpoint_changes: Counter,
    /// `kubeproxy_sync_proxy_rules_service_changes_total`.
    pub service_changes: Counter,
    /// `kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy}` (a gauge).
    pub no_local_endpoints: Family<Labels, Gauge>,
    /// `kubeproxy_proxy_healthz_total{code}`.
    pub healthz: Family<Labels, Counter>,
    /// `kubeproxy_proxy_livez_total{code}`.
    pub livez: Family<Labels, Counter>,
    /// `kubeproxy_rs_skipped_objects_total{kind,reason}`: bad Services / EndpointSlices (or
    /// parts of them) left out, counted when first seen.
    pub skipped_objects: Family<Labels, Counter>,
    /// `kubeproxy_rs_conntrack_entries_deleted_total{reason}`.
    pub conntrack_deleted: Family<Labels, Counter>,
    /// `kubeproxy_rs_conntrack_reconcile_failures_total`.
    pub conntrack_failures: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Upstream's sync latency buckets: 1 ms × 2^k, 15 of them.
fn sync_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Upstream's network programming buckets: 0, 0.25, 0.5, 1..59 s, 60..115 s, 2..5 min.
fn programming_buckets() -> Histogram {
    let b = std::iter::once(0.0)
        .chain(linear_buckets(0.25, 0.25, 2))
        .chain(linear_buckets(1.0, 1.0, 59))
        .chain(linear_buckets(60.0, 5.0, 12))
        .chain(linear_buckets(120.0, 30.0, 7));
    Histogram::new(b)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All metrics, registered, at zero.
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            sync_duration: sync_buckets(),
            sync_full_duration: sync_buckets(),
            sync_partial_duration: sync_buckets(),
            network_programming: programming_buckets(),
            last_timestamp: Gauge::default(),
            last_queued_timestamp: Gauge::default(),
            iptables_total: Family::default(),
            iptables_last: Family::default(),
            restore_failures: Counter::default(),
            partial_restore_failures: Counter::default(),
            endpoint_changes: Counter::default(),
            service_changes: Counter::default(),
            no_local_endpoints: Family::default(),
            healthz: Family::default(),
            livez: Family::default(),
            skipped_objects: Family::default(),
            conntrack_deleted: Family::default(),
            conntrack_failures: Counter::default(),
        };
        let k = "kubeproxy_";
        r.register(
            format!("{k}sync_proxy_rules_duration_seconds"),
            "SyncProxyRules latency in seconds",
            m.sync_duration.clone(),
        );
        r.register(
            format!("{k}sync_full_proxy_rules_duration_seconds"),
            "SyncProxyRules latency in seconds for full resyncs",
            m.sync_full_duration.clone(),
        );
        r.register(
            format!("{k}sync_partial_proxy_rules_duration_seconds"),
            "SyncProxyRules latency in seconds for partial resyncs",
            m.sync_partial_duration.clone(),
        );
        r.register(
            format!("{k}network_programming_duration_seconds"),
            "In Cluster Network Programming Latency in seconds",
            m.network_programming.clone(),
        );
        r.register(
            format!("{k}sync_proxy_rules_last_timestamp_seconds"),
            "The last time proxy rules were successfully synced",
            m.last_timestamp.clone(),
        );
        r.register(
            format!("{k}sync_proxy_rules_last_queued_timestamp_seconds"),
            "The last time a sync of proxy rules was queued",
            m.last_queued_timestamp.clone(),
        );
        r.register(
            format!("{k}sync_proxy_rules_iptables_total"),
            "Total number of iptables rules owned by kube-proxy",
            m.iptables_total.clone(),
        );
        r.register(
            format!("{k}sync_proxy_rules_iptables_last"),
            "Number of iptables rules written by kube-proxy in last sync",
            m.iptables_last.clone(),
        );
        r.register(
            format!("{k}sync_proxy_rules_iptables_restore_failures"),
            "Cumulative proxy iptables restore failures",
            m.restore_failures.clone(),
        );
        r.register(
            format!("{k}sync_proxy_rules_iptables_partial_restore_failures"),
            "Cumulative proxy iptables partial restore failures",
            m.partial_restore_failures.clone(),
        );
        r.register(
            format!("{k}sync_proxy_rules_endpoint_changes"),
            "Cumulative proxy rules Endpoint changes",
            m.endpoint_changes.clone(),
        );
        r.register(
            format!("{k}sync_proxy_rules_service_changes"),
            "Cumulative proxy rules Service changes",
            m.service_changes.clone(),
        );
        r.register(
            format!("{k}sync_proxy_rules_no_local_endpoints_total"),
            "Number of services with a Local traffic policy and no endpoints",
            m.no_local_endpoints.clone(),
        );
        r.register(
            format!("{k}proxy_healthz"),
            "Cumulative proxy healthz HTTP status",
            m.healthz.clone(),
        );
        r.register(
            format!("{k}proxy_livez"),
            "Cumulative proxy livez HTTP status",
            m.livez.clone(),
        );
        r.register(
            "kubeproxy_rs_skipped_objects",
            "Services and EndpointSlices (or parts of them) left out as invalid, by kind and effect",
            m.skipped_objects.clone(),
        );
        r.register(
            "kubeproxy_rs_conntrack_entries_deleted",
            "Stale UDP/SCTP conntrack entries deleted, by reason",
            m.conntrack_deleted.clone(),
        );
        r.register(
            "kubeproxy_rs_conntrack_reconcile_failures",
            "Conntrack reconciliations that failed",
            m.conntrack_failures.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// The metrics as Prometheus / OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics` and `/proxyMode` on `addr` until the task is dropped; a bind failure is
/// logged and retried every 5 s (as upstream).
pub async fn serve(addr: SocketAddr, metrics: Metrics, mode: &'static str) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.encode(),
                    )
                }
            }),
        )
        .route("/proxyMode", get(move || async move { mode }));
    crate::health::serve_forever("metrics", addr, app).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_upstreams() {
        let m = Metrics::new();
        m.restore_failures.inc();
        m.iptables_total
            .get_or_create(&label("table", "nat"))
            .set(7);
        m.no_local_endpoints
            .get_or_create(&label("traffic_policy", "external"))
            .set(1);
        m.sync_full_duration.observe(0.003);
        let text = m.encode();
        for line in [
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total 1",
            "kubeproxy_sync_proxy_rules_iptables_total{table=\"nat\"} 7",
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy=\"external\"} 1",
            "kubeproxy_sync_full_proxy_rules_duration_seconds_count 1",
            "kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{le=\"0.004\"} 1",
            "kubeproxy_network_programming_duration_seconds_bucket{le=\"0.25\"} 0",
            "kubeproxy_sync_proxy_rules_endpoint_changes_total 0",
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds 0.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
