//! Changes to the demo's objects while it runs, sent to the API server double (a process in
//! the control-plane host) the way kubectl sends them: `POST` to the collection, `DELETE` to
//! the object, JSON bodies, over plain HTTP/1.1 from a thread inside a lab host.
//!
//! ```text
//!   create(host, api, obj) ── POST /apis/discovery.k8s.io/v1/namespaces/demo/endpointslices
//!   delete(host, api, obj) ── DELETE .../endpointslices/web-1
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::DemoError;
use crate::Host;

/// The collection path of an object (`/api/v1/namespaces/NS/pods`), from its apiVersion,
/// kind and namespace. Only the kinds the demo changes.
pub fn collection(obj: &Value) -> Option<String> {
    let plural = match obj["kind"].as_str()? {
        "Service" => "services",
        "EndpointSlice" => "endpointslices",
        "Pod" => "pods",
        "Node" => "nodes",
        _ => return None,
    };
    let api = obj["apiVersion"].as_str()?;
    let base = if api.contains('/') {
        format!("/apis/{api}")
    } else {
        format!("/api/{api}")
    };
    Some(match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}"),
        None => format!("{base}/{plural}"),
    })
}

fn path_of(obj: &Value) -> Result<(String, String), DemoError> {
    let coll = collection(obj).ok_or_else(|| DemoError::Failed {
        what: format!("cannot send {}: unknown kind", obj["kind"]),
    })?;
    let name = obj["metadata"]["name"]
        .as_str()
        .ok_or_else(|| DemoError::Failed {
            what: "object without metadata.name".into(),
        })?;
    Ok((coll.clone(), format!("{coll}/{name}")))
}

/// Creates `obj` (`kubectl create`).
pub fn create(host: &Host, api: SocketAddr, obj: &Value) -> Result<(), DemoError> {
    let (coll, _) = path_of(obj)?;
    send(host, api, "POST", &coll, Some(obj)).map(|_| ())
}

/// Deletes `obj` (`kubectl delete`).
pub fn delete(host: &Host, api: SocketAddr, obj: &Value) -> Result<(), DemoError> {
    let (_, path) = path_of(obj)?;
    send(host, api, "DELETE", &path, None).map(|_| ())
}

/// One request; the body of a 2xx answer, or an error with the status and body.
fn send(
    host: &Host,
    api: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<String, DemoError> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let what = format!("{method} {path}");
    let resp = host.run(move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(req.as_bytes())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    })?;
    let resp = resp.map_err(|e| DemoError::Failed {
        what: format!("{what}: {e}"),
    })?;
    let status: u16 = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(DemoError::Failed {
            what: format!("{what}: HTTP {status}: {}", body.trim()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collections() {
        let s = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": "web-1", "namespace": "demo"}});
        assert_eq!(
            collection(&s).unwrap(),
            "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices"
        );
        let n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}});
        assert_eq!(collection(&n).unwrap(), "/api/v1/nodes");
        assert!(collection(&json!({"apiVersion": "v1", "kind": "Secret"})).is_none());
    }
}
