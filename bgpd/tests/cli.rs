//! The `bgpd` command line without a daemon: configuration errors name the key and the line
//! and exit 2; a control socket nobody answers on exits 2; bad usage exits 2.

use std::process::Command;

fn bgpd(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_bgpd"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn config_errors_exit_2_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bgpd.yaml");
    std::fs::write(
        &f,
        "asn: 65011\nrouter_id: 198.18.0.11\npeers:\n  - address: 198.18.0.1\n    asn: 65000\n    hold_tme: 9\n",
    )
    .unwrap();
    let (code, _, err) = bgpd(&["--config", f.to_str().unwrap(), "check"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bgpd.yaml:6:"), "{err}");
    assert!(
        err.contains("peers[0]") && err.contains("hold_tme"),
        "{err}"
    );
    // the daemon refuses to start with it, the same way
    let (code, _, err2) = bgpd(&["--config", f.to_str().unwrap()]);
    assert_eq!((code, err2), (2, err));
    std::fs::write(&f, "asn: 65011\nrouter_id: 198.18.0.11\n").unwrap();
    assert_eq!(bgpd(&["--config", f.to_str().unwrap(), "check"]).0, 0);
}

#[test]
fn no_daemon_and_bad_usage_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let (code, _, err) = bgpd(&["--socket", sock.to_str().unwrap(), "show", "neighbors"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("none.sock"), "{err}");
    assert_eq!(bgpd(&["show", "bogus"]).0, 2);
    assert_eq!(bgpd(&["show", "routes", "not-a-prefix"]).0, 2);
    assert_eq!(bgpd(&[]).0, 2, "the daemon needs --config");
}
