//! diag, bgpd and deploy/ agree on where bgpd's control socket is: diag looks first where bgpd
//! puts it by default, and also everywhere the manifests put it (the DaemonSet's
//! `control_socket`, the liveness probe's `--socket`), so `diag collect` on a node finds it.
//! A change to bgpd's default or to the manifests' path that diag does not follow fails here.

use std::path::Path;

/// Every `….sock` path naming bgpd in the files under `dir` (config keys, probe arguments).
fn socket_paths(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            socket_paths(&p, out);
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        for w in text.split(|c: char| c.is_whitespace() || "\"',[]=".contains(c)) {
            if w.starts_with('/') && w.ends_with(".sock") && w.contains("bgpd") {
                out.push((p.display().to_string(), w.to_string()));
            }
        }
    }
}

#[test]
fn diag_looks_where_bgpd_and_the_manifests_put_the_socket() {
    let sockets = diag::collect::BGPD_SOCKETS;
    assert_eq!(
        sockets[0],
        bgpd::config::DEFAULT_CONTROL_SOCKET,
        "diag looks first at bgpd's default"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut found = Vec::new();
    socket_paths(&root, &mut found);
    assert!(
        found.iter().any(|(f, _)| f.ends_with("bgpd/config.yaml")),
        "the manifests set bgpd's control_socket: {found:?}"
    );
    for (file, path) in &found {
        assert!(
            sockets.contains(&path.as_str()),
            "{file} puts bgpd's socket at {path}, where diag collect does not look ({sockets:?})"
        );
    }
    // what the shipped config says is what bgpd's own parser reads
    let cm: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("bgpd/config.yaml")).unwrap())
            .unwrap();
    let data = cm["data"]
        .as_mapping()
        .and_then(|m| m.values().next())
        .and_then(|v| v.as_str())
        .expect("the ConfigMap holds bgpd's config");
    // the init container fills these in on each node
    let data = data
        .replace("${NODE_IPV4}", "198.18.0.11")
        .replace("${NODE_NAME}", "node1");
    let c = bgpd::config::Config::parse(&data, Path::new("bgpd.yaml"))
        .expect("bgpd parses the shipped config");
    assert!(
        sockets.contains(&c.control_socket.to_str().unwrap()),
        "{}",
        c.control_socket.display()
    );
}
