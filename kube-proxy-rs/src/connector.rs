//! The TCP connector under the API client: a URI in, a connected socket out, for as long as
//! it takes.
//!
//! kube-runtime's watcher sleeps its backoff after every failed request, so a client whose
//! connects fail fast (refused: the API server restarting) or slowly (a SYN into a partition)
//! learns that the API server is back only at its next retry: up to the backoff cap plus a
//! SYN retransmission (1 s, then 2 s) later. Here a connect is not a single attempt: a fresh
//! attempt starts every [`ATTEMPT_EVERY`] (each alive up to [`CONNECT_TIMEOUT`], so a slow
//! handshake over a long path still completes) until one succeeds, and the request waits for
//! it. The first SYN that gets through after an outage is at most [`ATTEMPT_EVERY`] late, and
//! the watcher then relists and the proxy syncs at once. While nothing gets through, the
//! API server sees SYNs only (its kernel answers or drops them), never a request: requests
//! that reach it and fail still go through the watcher's backoff.
//!
//! Established connections get TCP keepalive and `TCP_USER_TIMEOUT`, so a connection into a
//! partition is noticed dead after [`DEAD_AFTER`] (`crate::watch` names the figures).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::{BoxError, Service, ServiceExt};

/// TCP keepalive probes start after this much silence on an API server connection (an idle
/// watch included: the peer's kernel answers them, the API server does not need to).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// Between keepalive probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// A connection that received nothing (data, ACKs of probes) for this long is broken
/// (`TCP_USER_TIMEOUT`, which also bounds data left unacknowledged).
pub const DEAD_AFTER: Duration = Duration::from_secs(10);
/// One connect attempt gives up after this long (a SYN into a partition).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// While no attempt has succeeded, a new one starts this often.
pub const ATTEMPT_EVERY: Duration = Duration::from_millis(500);
/// While the API server stays unreachable, a warning with the last error at the first
/// failure and then this often.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

/// The connector: [`HttpConnector`] (no TLS: the caller wraps it) with keepalive, a user
/// timeout and staggered attempts.
#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
}

impl Connector {
    /// A connector with the constants of this module.
    pub fn new() -> Connector {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_keepalive(Some(KEEPALIVE_IDLE));
        http.set_keepalive_interval(Some(KEEPALIVE_INTERVAL));
        http.set_tcp_user_timeout(Some(DEAD_AFTER));
        Connector { http }
    }
}

impl Default for Connector {
    fn default() -> Connector {
        Connector::new()
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl Service<http::Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each call clones the HttpConnector, which is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Connecting {
        let http = self.http.clone();
        Box::pin(persist(http, uri))
    }
}

/// Attempts started every [`ATTEMPT_EVERY`], the first to connect wins (the others are
/// dropped, closing their sockets).
async fn persist(http: HttpConnector, uri: http::Uri) -> Result<TokioIo<TcpStream>, BoxError> {
    let began = Instant::now();
    let mut warned: Option<Instant> = None;
    let mut attempts = FuturesUnordered::new();
    let mut tick = tokio::time::interval(ATTEMPT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                attempts.push(http.clone().oneshot(uri.clone()));
            }
            Some(r) = attempts.next(), if !attempts.is_empty() => match r {
                Ok(io) => {
                    if failures > 0 {
                        tracing::info!(
                            api = %uri, failures,
                            "connected to the API server after {} ms",
                            began.elapsed().as_millis()
                        );
                    }
                    return Ok(io);
                }
                Err(e) => {
                    failures += 1;
                    if warned.is_none_or(|w| w.elapsed() >= WARN_EVERY) {
                        warned = Some(Instant::now());
                        tracing::warn!(
                            api = %uri, failures,
                            "cannot connect to the API server (for {} ms), retrying every {} ms: {e}",
                            began.elapsed().as_millis(),
                            ATTEMPT_EVERY.as_millis()
                        );
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refused connects (nothing listens yet) are retried, not returned: the connect
    /// completes when a listener appears (loopback only).
    #[tokio::test]
    async fn a_connect_waits_for_the_listener_instead_of_failing() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
        let conn = tokio::spawn(Connector::new().oneshot(uri));
        tokio::time::sleep(ATTEMPT_EVERY * 3).await;
        assert!(!conn.is_finished(), "the connect gave up while refused");
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (io, accepted) = tokio::join!(conn, listener.accept());
        let io = io.unwrap().expect("connected");
        let (_, peer) = accepted.unwrap();
        assert_eq!(io.inner().local_addr().unwrap(), peer);
    }
}
