//! The thin tokio layer around the [`Debouncer`]: turns source changes and one timer into
//! events, runs each sync on a blocking thread (the iptables tools and ctnetlink block),
//! and reports what happened to the logs, the metrics, `/healthz` and the health-check
//! node port servers.
//!
//! ```text
//!   Feed.changed() ──Changed / NodeChanged──┐
//!   sleep_until(wake) ──Timer───────────────┼──> Debouncer ──Sync──> spawn_blocking(Host::sync)
//!   Host::check_canaries ──CanaryGone───────┘                 <──Synced{full, ok}── Report
//!                                                   Report ──> metrics, health, HCNP, logs
//! ```

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dataplane::Family;
use k8s_openapi::api::core::v1::Node;

use super::debounce::{Action, Debouncer, Event, FullReason, Trigger};
use super::engine::{Engine, Report};
use super::mode::{DynProxier, ModeProxier};
use super::proxier::family_name;
use crate::apply::ApplyError;
use crate::conntrack::{self, Ctnetlink, Frontends, Reconciled};
use crate::health::{ServiceHealth, SharedHealth};
use crate::metrics::{Metrics, label};
use crate::model::{ProxyState, Warning};
use crate::watch::{Feed, Objects};

/// The annotation the EndpointSlice controller sets to the time of the change that caused
/// the slice's last update.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Everything that touches the kernel, moved to a blocking thread for each sync.
pub struct Host {
    /// Both families' proxiers, of the configured mode.
    pub engine: Engine<DynProxier>,
    /// The conntrack table (`None`: ctnetlink unavailable; stale entries stay).
    pub conntrack: Option<Ctnetlink>,
}

/// What one sync on the host did.
pub struct HostSync {
    /// The engine's report.
    pub report: Report,
    /// Conntrack reconciliation per family that synced.
    pub conntrack: Vec<(Family, Result<Reconciled, conntrack::CtError>)>,
    /// Wall time of the whole sync.
    pub took: Duration,
}

/// This host's addresses (for `--nodeport-addresses` CIDRs and NodePort conntrack entries).
pub fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = addrs
        .filter_map(|a| a.address)
        .filter_map(|s| {
            s.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

impl Host {
    /// One sync: both families, then conntrack reconciliation of those that applied.
    pub fn sync(&mut self, objects: &Objects, full: bool) -> HostSync {
        let start = Instant::now();
        let local = local_addresses();
        for p in self.engine.proxiers_mut() {
            let family = p.family();
            p.set_local_addresses(
                local
                    .iter()
                    .copied()
                    .filter(|ip| Family::of(ip) == family)
                    .collect(),
            );
        }
        let report = self.engine.sync(objects, full);
        let mut ct = Vec::new();
        if let Some(table) = self.conntrack.as_mut() {
            for f in &report.families {
                if f.result.is_err() {
                    continue;
                }
                let state = report.build.state(f.family);
                let mut ips: Vec<IpAddr> = local
                    .iter()
                    .copied()
                    .filter(|ip| Family::of(ip) == f.family)
                    .collect();
                ips.extend(state.node.addresses.iter().map(|a| a.ip));
                let fe = Frontends::of(state, f.previous.as_ref(), &ips);
                ct.push((f.family, conntrack::reconcile(table, f.family, &fe)));
            }
        }
        HostSync {
            report,
            conntrack: ct,
            took: start.elapsed(),
        }
    }

    /// The canary chains that are gone, as `IPv4 mangle`, ...
    pub fn missing_canaries(&mut self) -> Result<Vec<String>, ApplyError> {
        Ok(self
            .engine
            .missing_canaries()?
            .into_iter()
            .map(|(f, t)| format!("{} {t}", family_name(f)))
            .collect())
    }
}

/// A digest of the Node fields the rules depend on (labels, pod CIDRs, addresses) and of
/// those `/healthz` follows (deletion, taints).
fn node_key(node: Option<&Node>) -> String {
    node.map(|n| {
        serde_json::json!([
            n.metadata.labels,
            n.metadata.deletion_timestamp,
            n.spec
                .as_ref()
                .map(|s| (&s.pod_cidr, &s.pod_cidrs, &s.taints)),
            n.status.as_ref().map(|s| &s.addresses),
        ])
        .to_string()
    })
    .unwrap_or_default()
}

/// The sync loop's state.
pub struct Driver {
    feed: Feed,
    host: Option<Host>,
    debouncer: Debouncer,
    metrics: Metrics,
    health: SharedHealth,
    service_health: ServiceHealth,
    families: Vec<Family>,
    node_key: Option<String>,
    /// Last trigger time seen per EndpointSlice (`ns/name`).
    trigger_times: HashMap<String, String>,
    synced_once: bool,
    warned: BTreeSet<Warning>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("families", &self.families)
            .finish()
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Driver {
    /// A driver; nothing runs until [`Driver::run`].
    pub fn new(
        feed: Feed,
        host: Host,
        debouncer: Debouncer,
        metrics: Metrics,
        health: SharedHealth,
        service_health: ServiceHealth,
    ) -> Driver {
        let families = host.engine.proxiers().iter().map(|p| p.family()).collect();
        Driver {
            feed,
            host: Some(host),
            debouncer,
            metrics,
            health,
            service_health,
            families,
            node_key: None,
            trigger_times: HashMap::new(),
            synced_once: false,
            warned: BTreeSet::new(),
        }
    }

    fn queued(&self) {
        let now = SystemTime::now();
        self.metrics.last_queued_timestamp.set(unix_seconds(now));
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        for f in &self.families {
            h.queued(*f, now);
        }
    }

    /// The event a source change is: `NodeChanged` when this node's fields moved.
    fn classify_change(&mut self) -> Option<Event> {
        let objects = self.feed.snapshot()?;
        let key = node_key(objects.node.as_deref());
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_node(objects.node.as_deref());
        let node_changed = self.node_key.as_ref().is_some_and(|k| *k != key);
        self.node_key = Some(key);
        Some(if node_changed {
            Event::NodeChanged
        } else {
            Event::Changed
        })
    }

    /// Runs forever (until the task is dropped).
    pub async fn run(mut self) {
        // Wait for the initial lists (the first sync reads whatever came until it starts).
        while *self.feed.changes.borrow_and_update() == 0 {
            self.feed.changed().await;
        }
        let _ = self.classify_change();
        self.queued();
        let mut events: VecDeque<Event> = VecDeque::from([Event::Start]);
        let mut wake: Option<Instant> = None;
        loop {
            while let Some(ev) = events.pop_front() {
                for action in self.debouncer.handle(Instant::now(), ev) {
                    match action {
                        Action::WakeAt(t) => wake = Some(t),
                        Action::CheckCanaries => {
                            if let Some(e) = self.check_canaries().await {
                                events.push_back(e);
                            }
                        }
                        Action::Sync { full, trigger } => {
                            events.push_back(self.sync(full, trigger).await);
                        }
                    }
                }
            }
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => futures::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = self.feed.changed() => {
                    if let Some(ev) = self.classify_change() {
                        self.queued();
                        events.push_back(ev);
                    }
                }
                _ = sleep => {
                    wake = None;
                    events.push_back(Event::Timer);
                }
            }
        }
    }

    async fn on_host<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Host) -> T + Send + 'static,
    ) -> T {
        let mut host = self.host.take().expect("the host is back after each call");
        let (host, out) = tokio::task::spawn_blocking(move || {
            let out = f(&mut host);
            (host, out)
        })
        .await
        .expect("a sync does not panic");
        self.host = Some(host);
        out
    }

    async fn check_canaries(&mut self) -> Option<Event> {
        match self.on_host(|h| h.missing_canaries()).await {
            Ok(missing) if missing.is_empty() => None,
            Ok(missing) => {
                tracing::warn!(
                    "canary chains gone ({}): someone flushed the tables; full resync",
                    missing.join(", ")
                );
                Some(Event::CanaryGone)
            }
            Err(e) => {
                tracing::warn!("cannot check the canary chains: {e}");
                None
            }
        }
    }

    async fn sync(&mut self, full: Option<FullReason>, trigger: Trigger) -> Event {
        let Some(objects) = self.feed.take() else {
            return Event::Synced {
                full: false,
                ok: false,
            };
        };
        let want_full = full.is_some();
        let objects2 = Arc::clone(&objects);
        let done = self.on_host(move |h| h.sync(&objects2, want_full)).await;
        let ok = done.report.ok();
        let did_full = done.report.full();
        self.report(&objects, &done, full, trigger);
        Event::Synced { full: did_full, ok }
    }

    fn report(
        &mut self,
        objects: &Objects,
        done: &HostSync,
        full: Option<FullReason>,
        trigger: Trigger,
    ) {
        let now = SystemTime::now();
        let m = &self.metrics;
        let report = &done.report;

        // Bad input: each warning logged once while it lasts, and counted when first seen.
        let current: BTreeSet<Warning> = report.build.warnings.iter().cloned().collect();
        for w in current.difference(&self.warned) {
            tracing::warn!("{w}");
            m.skipped_objects
                .get_or_create(&vec![
                    ("kind".into(), w.object.kind.as_str().into()),
                    ("reason".into(), w.effect.as_str().into()),
                ])
                .inc();
        }
        self.warned = current;

        let (mut filter_total, mut nat_total, mut filter_last, mut nat_last) = (0, 0, 0, 0);
        let (mut no_local_int, mut no_local_ext) = (0, 0);
        for f in &report.families {
            let name = family_name(f.family);
            match &f.result {
                Ok(a) => {
                    let secs = done.took.as_secs_f64();
                    m.sync_duration.observe(secs);
                    if a.full {
                        m.sync_full_duration.observe(secs);
                    } else {
                        m.sync_partial_duration.observe(secs);
                    }
                    filter_total += a.counts.filter_rules;
                    nat_total += a.counts.nat_rules;
                    filter_last += a.filter_rules_written;
                    nat_last += a.nat_rules_written;
                    no_local_int += a.counts.no_local_endpoints_internal;
                    no_local_ext += a.counts.no_local_endpoints_external;
                    let (svc, eps) =
                        change_counts(report.build.state(f.family), f.previous.as_ref(), a);
                    m.service_changes.inc_by(svc);
                    m.endpoint_changes.inc_by(eps);
                    self.health
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .updated(f.family, now);
                    let kind = match (a.full, full) {
                        (true, Some(r)) => format!("full ({})", r.as_str()),
                        (true, None) => "full".to_string(),
                        (false, _) => format!("partial ({})", trigger.as_str()),
                    };
                    let changed = a.changes.services().len();
                    let msg = format!(
                        "synced {name} {kind}: {} service ports, {changed} services changed, \
                         {} filter + {} nat rules written, {} stale chains deleted, in {} ms",
                        report.build.state(f.family).services.len(),
                        a.filter_rules_written,
                        a.nat_rules_written,
                        a.deleted_chains.len(),
                        done.took.as_millis()
                    );
                    if a.full || changed > 0 {
                        tracing::info!("{msg}");
                    } else {
                        tracing::debug!("{msg}");
                    }
                    if a.jumps_inserted > 0 && self.synced_once {
                        tracing::warn!(
                            "{name}: {} jump rules were missing and were re-inserted",
                            a.jumps_inserted
                        );
                    }
                }
                Err(e) => {
                    m.restore_failures.inc();
                    if e.is_partial() {
                        m.partial_restore_failures.inc();
                    }
                    tracing::error!(
                        "sync failed, the previous rules stay; retrying with a full sync: {e}"
                    );
                }
            }
        }
        if report.ok() {
            m.last_timestamp.set(unix_seconds(now));
        }
        m.iptables_total
            .get_or_create(&label("table", "filter"))
            .set(filter_total as i64);
        m.iptables_total
            .get_or_create(&label("table", "nat"))
            .set(nat_total as i64);
        m.iptables_last
            .get_or_create(&label("table", "filter"))
            .set(filter_last as i64);
        m.iptables_last
            .get_or_create(&label("table", "nat"))
            .set(nat_last as i64);
        m.no_local_endpoints
            .get_or_create(&label("traffic_policy", "internal"))
            .set(no_local_int as i64);
        m.no_local_endpoints
            .get_or_create(&label("traffic_policy", "external"))
            .set(no_local_ext as i64);

        for (family, r) in &done.conntrack {
            match r {
                Ok(r) => {
                    for (e, svc, why) in &r.deleted {
                        tracing::info!(service = %svc, "deleted conntrack entry {e} ({})", why.as_str());
                        m.conntrack_deleted
                            .get_or_create(&label("reason", why.as_str()))
                            .inc();
                    }
                }
                Err(e) => {
                    m.conntrack_failures.inc();
                    tracing::warn!(
                        "{} conntrack reconciliation failed: {e}",
                        family_name(*family)
                    );
                }
            }
        }

        // Network programming latency: slices whose trigger time is new since the last sync.
        if report.ok() {
            let mut seen = HashMap::with_capacity(objects.endpoint_slices.len());
            for s in &objects.endpoint_slices {
                let Some(t) = s
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(TRIGGER_TIME_ANNOTATION))
                else {
                    continue;
                };
                let key = format!(
                    "{}/{}",
                    s.metadata.namespace.as_deref().unwrap_or_default(),
                    s.metadata.name.as_deref().unwrap_or_default()
                );
                if self.synced_once
                    && self.trigger_times.get(&key) != Some(t)
                    && let Ok(ts) = t.parse::<jiff::Timestamp>()
                {
                    let since = jiff::Timestamp::try_from(now)
                        .ok()
                        .and_then(|n| n.duration_since(ts).try_into().ok())
                        .map(|d: Duration| d.as_secs_f64());
                    if let Some(secs) = since {
                        m.network_programming.observe(secs);
                    }
                }
                seen.insert(key, t.clone());
            }
            self.trigger_times = seen;
            self.synced_once = true;
        }

        // Health-check node ports follow the Services (listening even when a family failed).
        let mut addresses: Option<Vec<IpAddr>> = None;
        for st in [&report.build.ipv4, &report.build.ipv6] {
            let npa = &st.node.node_port_addresses;
            if !npa.match_all {
                let local = local_addresses();
                addresses.get_or_insert_with(Vec::new).extend(
                    local
                        .into_iter()
                        .filter(|ip| Family::of(ip) == st.family)
                        .filter(|ip| npa.cidrs.iter().any(|c| c.contains(ip))),
                );
            }
        }
        self.service_health.set_addresses(addresses);
        self.service_health
            .sync(&report.health_check_ports(), &report.local_endpoints());
    }
}

/// (service changes, endpoint changes) in a sync: a port added or removed, or whose
/// Service data changed, is a service change; one whose endpoints alone changed is an
/// endpoint change.
fn change_counts(
    new: &ProxyState,
    old: Option<&ProxyState>,
    a: &super::proxier::Applied,
) -> (u64, u64) {
    let Some(old) = old else {
        return (0, 0); // the first sync is no change
    };
    let mut svc = (a.changes.added.len() + a.changes.removed.len()) as u64;
    let mut eps = 0;
    for name in &a.changes.changed {
        if new.services.get(name) != old.services.get(name) {
            svc += 1;
        } else {
            eps += 1;
        }
    }
    (svc, eps)
}
