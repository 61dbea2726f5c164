//! The Kubernetes API client bgpd's watchers use: a kubeconfig (or in-cluster config) in, a
//! `kube::Client` out, on a connector that notices a dead API server connection.
//!
//! kube-rs' own `Client::try_from` uses a plain connector: a watch on a connection whose
//! packets are silently dropped (a partition, a load balancer that forgot the flow) waits for
//! its 295 s idle timeout, and a Node created meanwhile is not peered with. Here TCP keepalive
//! probes an idle connection after [`KEEPALIVE_IDLE`] and `TCP_USER_TIMEOUT` gives up on
//! unacknowledged data after [`DEAD_AFTER`], so the watcher errors and retries within seconds.
//! kube-proxy-rs builds its client the same way (its `watch` module); the two are kept apart
//! because the crates share no daemon code (dataplane is pure).

use std::path::PathBuf;
use std::time::Duration;

use super::SourceError;

/// TCP keepalive probes start after this much silence on an API server connection.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// Between keepalive probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// A connection whose sent data (or keepalive probes) stays unacknowledged this long is
/// closed (`TCP_USER_TIMEOUT`).
pub const DEAD_AFTER: Duration = Duration::from_secs(10);
/// Connecting to the API server gives up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A client from the kubeconfig file, or in-cluster / `KUBECONFIG` when `None`.
pub(crate) async fn kube_client(kubeconfig: Option<PathBuf>) -> Result<kube::Client, SourceError> {
    let config = match &kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .map_err(|e| SourceError::Kube(format!("{}: {e}", p.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| SourceError::Kube(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| SourceError::Kube(e.to_string()))?,
    };
    connect(config).map_err(|e| SourceError::Kube(e.to_string()))
}

/// The client on a keepalive connector (TLS by rustls, auth and headers from `config`).
fn connect(config: kube::Config) -> Result<kube::Client, kube::Error> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use kube::client::ConfigExt;

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_keepalive(Some(KEEPALIVE_IDLE));
    http.set_keepalive_interval(Some(KEEPALIVE_INTERVAL));
    http.set_tcp_user_timeout(Some(DEAD_AFTER));
    let https = config.rustls_https_connector_with_connector(http)?;
    let hyper: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace))
}
