//! The API server double where the lab demo runs it: on a control-plane host in its own network
//! namespace, reached by clients on the nodes over the node network, both as the `lab
//! apiserver` process and in-process (started inside the namespace, restarted from the test
//! thread). Needs root; builds and removes its own namespaces.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use lab::apiserver::{ApiServer, ApiServerOpts};
use lab::{Host, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_lab");

/// `GET path` from inside `host`; the status line and body.
fn get_from(host: &Host, server: SocketAddr, path: &str) -> String {
    let path = path.to_string();
    host.run(move || {
        let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        resp
    })
    .unwrap()
}

fn node_manifest(name: &str, cidr: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{podCIDR: {cidr}, podCIDRs: [{cidr}]}}\n---\n"
    )
}

#[test]
fn control_plane_host_serves_the_nodes() {
    lab::require_root().unwrap();
    let lab = Lab::new("apisrv").unwrap();
    let cp = lab.host("cp").unwrap();
    let n1 = lab.node("node1").unwrap();
    let n2 = lab.node("node2").unwrap();
    lab.segment("rack", &[&cp, &n1, &n2]).unwrap();
    let cp_ip = cp.ipv4().unwrap();

    // The process, as `lab demo` runs it.
    let manifests = lab.dir().join("nodes.yaml");
    let text = node_manifest("node1", &n1.pod_cidr4().unwrap().to_string())
        + &node_manifest("node2", &n2.pod_cidr4().unwrap().to_string());
    std::fs::write(&manifests, text).unwrap();
    let kubeconfig = lab.dir().join("kubeconfig");
    let listen = format!("{cp_ip}:6443");
    let _server = cp
        .spawn(&[
            BIN,
            "apiserver",
            "--listen",
            &listen,
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
            "--manifests",
            manifests.to_str().unwrap(),
        ])
        .unwrap();
    assert!(
        lab::wait_until(Duration::from_secs(20), || kubeconfig.exists()),
        "the server wrote no kubeconfig"
    );
    let server: SocketAddr = listen.parse().unwrap();
    let resp = get_from(&n1, server, "/api/v1/nodes/node2");
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.contains("\"podCIDR\":\"198.18.66.0/24\""),
        "{resp}"
    );
    let cache = lab.dir().join("kubectl-cache");
    match n2.output(&[
        "kubectl",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "get",
        "nodes",
        "-o",
        "name",
    ]) {
        Ok(out) if out.status.success() => assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "node/node1\nnode/node2\n"
        ),
        Ok(out) => panic!("kubectl failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => eprintln!("SKIP kubectl part: {e}"),
    }

    // In-process: started inside the control-plane namespace, restarted from this thread.
    let api = cp
        .run(move || {
            ApiServer::start(ApiServerOpts {
                listen: SocketAddr::new(cp_ip.into(), 6444),
                ..Default::default()
            })
        })
        .unwrap()
        .unwrap();
    api.apply(
        &serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}}),
    )
    .unwrap();
    assert!(get_from(&n2, api.addr(), "/api/v1/nodes").contains("\"name\":\"node1\""));
    api.stop();
    api.restart().unwrap();
    assert!(
        get_from(&n2, api.addr(), "/api/v1/nodes/node1").starts_with("HTTP/1.1 200"),
        "restarted in the namespace"
    );
    // kube-rs from a node's namespace, through the kubeconfig, as kube-proxy-rs will run.
    let kc_path = lab.dir().join("kubeconfig-inproc");
    api.kubeconfig(&kc_path).unwrap();
    let names = n1
        .run(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let kc = Kubeconfig::read_from(&kc_path).unwrap();
                let config =
                    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                        .await
                        .unwrap();
                let nodes: Api<Node> = Api::all(kube::Client::try_from(config).unwrap());
                let list = nodes.list(&ListParams::default()).await.unwrap();
                list.items
                    .into_iter()
                    .filter_map(|n| n.metadata.name)
                    .collect::<Vec<_>>()
            })
        })
        .unwrap();
    assert_eq!(names, ["node1"]);
}
