//! Prometheus metrics (`prometheus-client`) and their HTTP endpoint (`GET /metrics`,
//! `GET /healthz`). Labels carry peer addresses, states, families and reason names: nothing
//! secret.
//!
//! ```text
//!   speaker task ──Metrics::{session_state, transition, prefixes, ...}──> atomics
//!   FIB task     ──Metrics::{fib_op, routes_installed}─────────────────> atomics
//!   GET /metrics ──encode(registry)──> text exposition format
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::session::State;

/// `peer="198.18.0.1"`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    /// The peer's address.
    pub peer: String,
}

/// An FSM transition.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// The peer.
    pub peer: String,
    /// State before.
    pub from: String,
    /// State after.
    pub to: String,
}

/// A rejected prefix.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// The peer.
    pub peer: String,
    /// `RejectReason::label()`.
    pub reason: String,
}

/// An UPDATE error, by its RFC 7606 action.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpdateErrorLabels {
    /// The peer.
    pub peer: String,
    /// `attribute-discard`, `treat-as-withdraw` or `session-reset` (RFC 7606 §2).
    pub action: String,
}

/// A ROUTE-REFRESH message.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabels {
    /// The peer.
    pub peer: String,
    /// `received` (the peer asked us) or `sent` (we asked the peer).
    pub direction: String,
}

/// `family="ipv4"`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FamilyLabel {
    /// `ipv4` or `ipv6`.
    pub family: String,
}

/// A kernel operation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// `add`, `replace`, `delete`.
    pub op: String,
    /// `ok` or `error`.
    pub result: String,
}

/// Every metric of the daemon.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    session_state: Family<PeerLabel, Gauge>,
    session_established: Family<PeerLabel, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    prefixes_received: Family<PeerLabel, Gauge>,
    prefixes_accepted: Family<PeerLabel, Gauge>,
    prefixes_advertised: Family<PeerLabel, Gauge>,
    prefixes_stale: Family<PeerLabel, Gauge>,
    kernel_routes_stale: Gauge,
    updates_received: Family<PeerLabel, Counter>,
    updates_sent: Family<PeerLabel, Counter>,
    rejected: Family<RejectLabels, Counter>,
    update_errors: Family<UpdateErrorLabels, Counter>,
    route_refresh: Family<RefreshLabels, Counter>,
    routes_installed: Family<FamilyLabel, Gauge>,
    fib_ops: Family<OpLabels, Counter>,
}

/// RFC 4273 bgpPeerState: idle(1), connect(2), active(3), opensent(4), openconfirm(5),
/// established(6).
pub fn state_number(s: State) -> i64 {
    match s {
        State::Idle => 1,
        State::Connect => 2,
        State::Active => 3,
        State::OpenSent => 4,
        State::OpenConfirm => 5,
        State::Established => 6,
    }
}

fn peer(p: IpAddr) -> PeerLabel {
    PeerLabel {
        peer: p.to_string(),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All metrics, registered.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("bgpd");
        let m = Self {
            session_state: Family::default(),
            session_established: Family::default(),
            transitions: Family::default(),
            prefixes_received: Family::default(),
            prefixes_accepted: Family::default(),
            prefixes_advertised: Family::default(),
            prefixes_stale: Family::default(),
            kernel_routes_stale: Gauge::default(),
            updates_received: Family::default(),
            updates_sent: Family::default(),
            rejected: Family::default(),
            update_errors: Family::default(),
            route_refresh: Family::default(),
            routes_installed: Family::default(),
            fib_ops: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "session_state",
            "BGP FSM state of the peer (RFC 4273 bgpPeerState: 1 idle .. 6 established)",
            m.session_state.clone(),
        );
        r.register(
            "session_established",
            "1 while the session with the peer is Established",
            m.session_established.clone(),
        );
        r.register(
            "fsm_transitions",
            "BGP FSM state changes (RFC 4271 §8.2.2)",
            m.transitions.clone(),
        );
        r.register(
            "prefixes_received",
            "Prefixes the peer announced that are held now (accepted or filtered)",
            m.prefixes_received.clone(),
        );
        r.register(
            "prefixes_accepted",
            "Prefixes of the peer accepted by import policy (Adj-RIB-In)",
            m.prefixes_accepted.clone(),
        );
        r.register(
            "prefixes_advertised",
            "Prefixes advertised to the peer (Adj-RIB-Out)",
            m.prefixes_advertised.clone(),
        );
        r.register(
            "prefixes_stale",
            "Routes of the peer kept as stale while it restarts (RFC 4724 §4.2 helper)",
            m.prefixes_stale.clone(),
        );
        r.register(
            "kernel_routes_stale",
            "Kernel routes kept from before our restart, neither re-learned nor swept yet (RFC 4724 §4.1)",
            m.kernel_routes_stale.clone(),
        );
        r.register(
            "updates_received",
            "UPDATE messages received",
            m.updates_received.clone(),
        );
        r.register(
            "updates_sent",
            "UPDATE messages sent",
            m.updates_sent.clone(),
        );
        r.register(
            "prefixes_rejected",
            "Prefixes refused by import policy, by reason",
            m.rejected.clone(),
        );
        r.register(
            "update_errors",
            "Malformed UPDATEs, by the RFC 7606 action taken",
            m.update_errors.clone(),
        );
        r.register(
            "route_refresh",
            "ROUTE-REFRESH messages (RFC 2918), received from or sent to the peer",
            m.route_refresh.clone(),
        );
        r.register(
            "routes_installed",
            "Routes bgpd holds in the kernel (proto bgp, its table)",
            m.routes_installed.clone(),
        );
        r.register(
            "fib_operations",
            "Kernel route operations, by kind and result",
            m.fib_ops.clone(),
        );
        Self { registry: r, ..m }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// A peer's state now.
    pub fn session_state(&self, p: IpAddr, s: State) {
        self.session_state
            .get_or_create(&peer(p))
            .set(state_number(s));
        self.session_established
            .get_or_create(&peer(p))
            .set((s == State::Established) as i64);
    }

    /// A transition happened.
    pub fn transition(&self, p: IpAddr, from: State, to: State) {
        self.transitions
            .get_or_create(&TransitionLabels {
                peer: p.to_string(),
                from: from.to_string(),
                to: to.to_string(),
            })
            .inc();
    }

    /// Prefix counts of a peer.
    pub fn prefixes(&self, p: IpAddr, received: u64, accepted: u64, advertised: u64) {
        let l = peer(p);
        self.prefixes_received
            .get_or_create(&l)
            .set(received as i64);
        self.prefixes_accepted
            .get_or_create(&l)
            .set(accepted as i64);
        self.prefixes_advertised
            .get_or_create(&l)
            .set(advertised as i64);
    }

    /// Routes of a peer held as stale (graceful restart helper).
    pub fn prefixes_stale(&self, p: IpAddr, stale: u64) {
        self.prefixes_stale
            .get_or_create(&peer(p))
            .set(stale as i64);
    }

    /// Our kernel routes still stale after our own restart.
    pub fn kernel_routes_stale(&self, n: usize) {
        self.kernel_routes_stale.set(n as i64);
    }

    /// UPDATEs received from a peer.
    pub fn update_received(&self, p: IpAddr) {
        self.updates_received.get_or_create(&peer(p)).inc();
    }

    /// UPDATEs sent to a peer.
    pub fn updates_sent(&self, p: IpAddr, n: u64) {
        self.updates_sent.get_or_create(&peer(p)).inc_by(n);
    }

    /// A prefix was rejected.
    pub fn rejected(&self, p: IpAddr, reason: &str) {
        self.rejected
            .get_or_create(&RejectLabels {
                peer: p.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// A malformed UPDATE was handled with `action` (RFC 7606 §2 names).
    pub fn update_error(&self, p: IpAddr, action: &str) {
        self.update_errors
            .get_or_create(&UpdateErrorLabels {
                peer: p.to_string(),
                action: action.to_string(),
            })
            .inc();
    }

    /// A ROUTE-REFRESH was received (`sent == false`) or sent.
    pub fn route_refresh(&self, p: IpAddr, sent: bool) {
        self.route_refresh
            .get_or_create(&RefreshLabels {
                peer: p.to_string(),
                direction: if sent { "sent" } else { "received" }.to_string(),
            })
            .inc();
    }

    /// Routes in the kernel now.
    pub fn routes_installed(&self, v4: i64, v6: i64) {
        for (f, n) in [("ipv4", v4), ("ipv6", v6)] {
            self.routes_installed
                .get_or_create(&FamilyLabel { family: f.into() })
                .set(n);
        }
    }

    /// A kernel operation finished.
    pub fn fib_op(&self, op: &str, ok: bool) {
        self.fib_ops
            .get_or_create(&OpLabels {
                op: op.into(),
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }

    /// A peer was removed from the configuration: drop its series.
    pub fn forget_peer(&self, p: IpAddr) {
        let l = peer(p);
        for f in [
            &self.session_state,
            &self.session_established,
            &self.prefixes_received,
            &self.prefixes_accepted,
            &self.prefixes_advertised,
            &self.prefixes_stale,
        ] {
            f.remove(&l);
        }
        self.updates_received.remove(&l);
        self.updates_sent.remove(&l);
    }
}

/// Serve `/metrics` and `/healthz` on `addr`.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = Arc::clone(&metrics);
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
        .route("/healthz", get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_and_labels() {
        let m = Metrics::new();
        let p: IpAddr = "198.18.0.1".parse().unwrap();
        m.session_state(p, State::Established);
        m.transition(p, State::OpenConfirm, State::Established);
        m.prefixes(p, 3, 2, 1);
        m.prefixes_stale(p, 2);
        m.kernel_routes_stale(5);
        m.update_received(p);
        m.updates_sent(p, 2);
        m.rejected(p, "not_in_import_ranges");
        m.routes_installed(2, 1);
        m.fib_op("add", true);
        m.update_error(p, "treat-as-withdraw");
        m.route_refresh(p, false);
        let text = m.encode();
        for line in [
            "bgpd_session_state{peer=\"198.18.0.1\"} 6",
            "bgpd_session_established{peer=\"198.18.0.1\"} 1",
            "bgpd_fsm_transitions_total{peer=\"198.18.0.1\",from=\"OpenConfirm\",to=\"Established\"} 1",
            "bgpd_prefixes_received{peer=\"198.18.0.1\"} 3",
            "bgpd_prefixes_accepted{peer=\"198.18.0.1\"} 2",
            "bgpd_prefixes_advertised{peer=\"198.18.0.1\"} 1",
            "bgpd_prefixes_stale{peer=\"198.18.0.1\"} 2",
            "bgpd_kernel_routes_stale 5",
            "bgpd_updates_received_total{peer=\"198.18.0.1\"} 1",
            "bgpd_updates_sent_total{peer=\"198.18.0.1\"} 2",
            "bgpd_prefixes_rejected_total{peer=\"198.18.0.1\",reason=\"not_in_import_ranges\"} 1",
            "bgpd_routes_installed{family=\"ipv4\"} 2",
            "bgpd_fib_operations_total{op=\"add\",result=\"ok\"} 1",
            "bgpd_update_errors_total{peer=\"198.18.0.1\",action=\"treat-as-withdraw\"} 1",
            "bgpd_route_refresh_total{peer=\"198.18.0.1\",direction=\"received\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        m.forget_peer(p);
        assert!(!m.encode().contains("bgpd_session_state{"));
    }
}
