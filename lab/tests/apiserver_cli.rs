//! `lab apiserver` as a process: serves the manifests it was given on the address it was told,
//! writes a working kubeconfig, stops cleanly on SIGTERM, and names the bad document of a
//! broken manifest. Loopback only; no root needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_lab");

#[test]
fn serves_manifests_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("m");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(
        manifests.join("svc.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 198.19.0.10, ports: [{port: 80}]}\n\
         ---\napiVersion: v1\nkind: Node\nmetadata: {name: node1}\n",
    )
    .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(BIN)
        .args([
            "apiserver",
            "--listen",
            "127.0.0.1:0",
            "--bookmark-interval",
            "1",
        ])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .arg("--manifests")
        .arg(&manifests)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("lab apiserver: serving http://127.0.0.1:")
            && first.contains("(2 objects)"),
        "{first}"
    );
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    let server = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: http://"))
        .unwrap()
        .to_string();
    assert!(first.contains(&server), "{first} vs {config}");

    let mut s = TcpStream::connect(&server).unwrap();
    s.write_all(b"GET /api/v1/namespaces/default/services/web HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"clusterIP\":\"198.19.0.10\""), "{resp}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        TcpStream::connect(&server).is_err(),
        "the port is closed after exit"
    );
}

#[test]
fn a_bad_manifest_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Node\nmetadata: {name: ok}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n").unwrap();
    let out = Command::new(BIN)
        .args(["apiserver", "--listen", "127.0.0.1:0", "--manifests"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml: document 2: no kind \"Deployment\""),
        "{err}"
    );
}
