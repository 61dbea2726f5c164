//! The `lab` binary: up, list, exec, down; exit codes; topology errors; Ctrl-C during `up`.
//! Needs root. Each test uses its own lab name.

use std::process::{Command, Output};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_lab");

fn lab(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn live_netns() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

/// A topology file in a temp dir removed when the returned guard drops.
fn topology_file(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn up_list_exec_down() {
    lab::require_root().unwrap();
    let (_dir, topo) = topology_file(
        "cli",
        "nodes:\n  - {name: node1, pods: 1}\nrouters:\n  - name: tor\nsegments:\n  - {name: rack, members: [node1, tor]}\n",
    );
    let name = format!("cli{}", std::process::id());
    let out = lab(&["up", "--topology", topo.to_str().unwrap(), "--name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("198.18.0.11/24"), "{}", text(&out));
    assert!(live_netns().contains(&format!("lab-{name}-node1")));

    let out = lab(&["list"]);
    assert!(
        text(&out).contains(&format!("{name} ({name}): kept")),
        "{}",
        text(&out)
    );

    let out = lab(&[
        "exec",
        &name,
        "node1-pod1",
        "--",
        "ip",
        "-br",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(
        out.status.success() && text(&out).contains("198.18.65.2/32"),
        "{}",
        text(&out)
    );
    let out = lab(&["exec", &name, "tor", "--", "sh", "-c", "exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "exec passes the command's exit code on"
    );
    let out = lab(&["exec", &name, "nohost", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no host `nohost`"), "{}", text(&out));

    let out = lab(&["up", "--topology", topo.to_str().unwrap(), "--name", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("already up"), "{}", text(&out));

    let out = lab(&["down", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!live_netns().contains(&format!("lab-{name}-")));
    let out = lab(&["down", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(&format!("no lab `{name}` is up")),
        "{}",
        text(&out)
    );
}

#[test]
fn usage_and_topology_errors() {
    assert_eq!(lab(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(lab(&["exec"]).status.code(), Some(2));
    assert_eq!(lab(&["up"]).status.code(), Some(2));
    let (_dir, bad) = topology_file("bad", "nodes:\n  - name: node1\n    pods: lots\n");
    let out = lab(&["up", "--topology", bad.to_str().unwrap(), "--name", "never"]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("topology line 3") && t.contains("nodes[0].pods"),
        "{t}"
    );
    assert!(!live_netns().contains("lab-never-"));
}

#[test]
fn ctrl_c_during_up_removes_what_was_built() {
    lab::require_root().unwrap();
    let pods: Vec<String> = (1..=40).map(|i| format!("p{i}")).collect();
    let (_dir, topo) = topology_file(
        "big",
        &format!("nodes:\n  - name: node1\n    pods: [{}]\n", pods.join(", ")),
    );
    let name = format!("int{}", std::process::id());
    let child = Command::new(BIN)
        .args(["up", "--topology", topo.to_str().unwrap(), "--name", &name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the build is under way, then interrupt it
    assert!(lab::wait_until(Duration::from_secs(10), || live_netns()
        .contains(&format!("lab-{name}-p3"))));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("interrupted"), "{}", text(&out));
    assert!(
        !live_netns().contains(&format!("lab-{name}-")),
        "{}",
        live_netns()
    );
    assert!(!lab::LabState::path(&name).exists());
}
