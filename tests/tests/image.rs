//! The container image: `Dockerfile` and `.dockerignore` against what the manifests in
//! `deploy/` run (no Docker build: there is no registry access here).

#![allow(missing_docs)]

use std::collections::BTreeSet;

use system_tests::chart::{plain_objects, read, repo};
use system_tests::manifest::Object;

/// What is wrong with a Dockerfile (and .dockerignore) for manifests that run `binaries`
/// from /usr/local/bin, in a workspace with `members`.
fn image_problems(
    dockerfile: &str,
    dockerignore: &str,
    binaries: &BTreeSet<String>,
    members: &[String],
) -> Vec<String> {
    let mut p = Vec::new();
    // the default target is the last stage: the runtime every manifest uses
    let last = dockerfile.rsplit("\nFROM ").next().unwrap_or("");
    if !last.starts_with("debian:") {
        p.push(format!(
            "the last stage is not the Debian runtime: FROM {}",
            last.lines().next().unwrap_or("")
        ));
    }
    for tool in ["iptables", "ipset", "conntrack", "nftables", "iproute2"] {
        if !last.split_whitespace().any(|w| w == tool) {
            p.push(format!("the runtime does not install {tool}"));
        }
    }
    for b in binaries {
        let copied = last
            .lines()
            .filter(|l| l.starts_with("COPY --from=builder"))
            .any(|l| l.split_whitespace().any(|w| w == format!("/out/{b}")));
        if !copied {
            p.push(format!(
                "{b} is run by a manifest but not copied into the runtime"
            ));
        }
        if !dockerfile.contains(&format!("--bin {b}")) {
            p.push(format!("{b} is not built"));
        }
    }
    for line in dockerignore.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        for m in members {
            if line == m || line == format!("{m}/") || line == format!("/{m}") {
                p.push(format!(".dockerignore drops workspace member {m}"));
            }
        }
    }
    p
}

/// The programs the manifests run from /usr/local/bin (commands, init containers, probes).
fn binaries_run(objects: &[Object]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for o in objects {
        let Object::DaemonSet(d) = o else { continue };
        let pod = d.spec.template.spec.as_ref().unwrap();
        for c in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let probe = c
                .liveness_probe
                .iter()
                .chain(&c.readiness_probe)
                .filter_map(|p| p.exec.as_ref()?.command.clone())
                .flatten();
            for w in c.command.iter().flatten().cloned().chain(probe) {
                for word in w.split_whitespace() {
                    if let Some(b) = word.strip_prefix("/usr/local/bin/") {
                        out.insert(b.to_string());
                    }
                }
            }
            // the init script calls bgpd through PATH
            if c.command.iter().flatten().any(|w| w.contains("exec bgpd ")) {
                out.insert("bgpd".into());
            }
        }
    }
    out
}

#[test]
fn the_image_carries_what_the_manifests_run() {
    let objects = plain_objects().unwrap();
    let binaries = binaries_run(&objects);
    assert_eq!(
        binaries.iter().map(String::as_str).collect::<Vec<_>>(),
        ["bgpd", "kube-proxy-rs"]
    );
    let cargo = read(&repo().join("Cargo.toml"));
    let members: Vec<String> = cargo
        .lines()
        .find(|l| l.starts_with("members"))
        .unwrap()
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(members.contains(&"bgpd".to_string()), "{members:?}");
    let dockerfile = read(&repo().join("Dockerfile"));
    let dockerignore = read(&repo().join(".dockerignore"));
    let problems = image_problems(&dockerfile, &dockerignore, &binaries, &members);
    assert!(problems.is_empty(), "{problems:#?}");
    // negative: kube-proxy-rs not copied, nftables not installed, a member ignored
    let broken = dockerfile
        .replace("/out/kube-proxy-rs /out/bgpd", "/out/bgpd")
        .replace(" nftables ", " ");
    let problems = image_problems(&broken, "target\nbgpd\n", &binaries, &members);
    assert_eq!(
        problems,
        [
            "the runtime does not install nftables",
            "kube-proxy-rs is run by a manifest but not copied into the runtime",
            ".dockerignore drops workspace member bgpd"
        ]
    );
}
