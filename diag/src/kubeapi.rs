//! Reading Pods, Services, EndpointSlices and Nodes from the Kubernetes API (kubeconfig or
//! in-cluster), list calls only: diag never writes to the API.
//!
//! ```text
//!   --kubeconfig PATH | $KUBECONFIG | ~/.kube/config | in-cluster service account
//!     --kube::Client--> GET /api/v1/pods, /api/v1/services, /apis/discovery.k8s.io/v1/endpointslices,
//!                       /api/v1/nodes  --> Objects (trace name resolution) | bundle k8s-*.json
//! ```
//! The only code of diag that uses tokio: a current-thread runtime for the four lists.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::bundle::Bundle;
use crate::collect;
use crate::objects::Objects;

/// Reading the API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No kubeconfig given or found and not in a cluster.
    #[error("no kubeconfig (give --kubeconfig, set KUBECONFIG, or run in a cluster)")]
    NoConfig,
    /// The kubeconfig could not be loaded.
    #[error("kubeconfig: {0}")]
    Config(String),
    /// A list request failed.
    #[error("listing {what}: {message}")]
    Request {
        /// What was listed.
        what: &'static str,
        /// The client's error.
        message: String,
    },
    /// The runtime could not start.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

fn default_config_exists() -> bool {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return true;
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".kube/config").exists())
        .unwrap_or(false)
}

async fn config(kubeconfig: Option<&Path>) -> Result<Config, ApiError> {
    let mut c = match kubeconfig {
        Some(p) => {
            let kc = Kubeconfig::read_from(p).map_err(|e| ApiError::Config(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| ApiError::Config(e.to_string()))?
        }
        None if !default_config_exists() => return Err(ApiError::NoConfig),
        None => Config::infer()
            .await
            .map_err(|e| ApiError::Config(e.to_string()))?,
    };
    c.connect_timeout = Some(Duration::from_secs(5));
    c.read_timeout = Some(Duration::from_secs(20));
    Ok(c)
}

async fn list_all(kubeconfig: Option<&Path>) -> Result<Objects, ApiError> {
    let client =
        Client::try_from(config(kubeconfig).await?).map_err(|e| ApiError::Config(e.to_string()))?;
    let lp = ListParams::default();
    let req = |what: &'static str| {
        move |e: kube::Error| ApiError::Request {
            what,
            message: e.to_string(),
        }
    };
    let pods = Api::<Pod>::all(client.clone())
        .list(&lp)
        .await
        .map_err(req("pods"))?;
    let services = Api::<Service>::all(client.clone())
        .list(&lp)
        .await
        .map_err(req("services"))?;
    let slices = Api::<EndpointSlice>::all(client.clone())
        .list(&lp)
        .await
        .map_err(req("endpointslices"))?;
    let nodes = Api::<Node>::all(client)
        .list(&lp)
        .await
        .map_err(req("nodes"))?;
    Ok(Objects {
        pods: pods.items,
        services: services.items,
        endpoint_slices: slices.items,
        nodes: nodes.items,
        ignored: Vec::new(),
    })
}

/// Lists the four kinds from the API.
pub fn fetch(kubeconfig: Option<&Path>) -> Result<Objects, ApiError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ApiError::Runtime)?;
    rt.block_on(list_all(kubeconfig))
}

/// Adds the objects to a bundle when the API is reachable; otherwise records why not.
pub fn add_objects(b: &mut Bundle, kubeconfig: Option<&Path>) {
    let how = |path: &str| {
        format!(
            "kube-rs list {path} (kubeconfig {})",
            match kubeconfig {
                Some(p) => p.display().to_string(),
                None => "default".into(),
            }
        )
    };
    let paths = [
        "/api/v1/pods",
        "/api/v1/services",
        "/apis/discovery.k8s.io/v1/endpointslices",
        "/api/v1/nodes",
    ];
    match fetch(kubeconfig) {
        Ok(objects) => {
            for ((part, list), path) in objects.to_lists().into_iter().zip(paths) {
                let bytes = serde_json::to_vec_pretty(&list).unwrap_or_default();
                collect::add_k8s(b, part, how(path), Ok(bytes));
            }
        }
        Err(e) => {
            for ((part, _), path) in Objects::default().to_lists().into_iter().zip(paths) {
                collect::add_k8s(b, part, how(path), Err(e.to_string()));
            }
        }
    }
}
