//! `kubectl diag`: the plugin wrapper `deploy/kubectl-diag` run directly and through kubectl
//! (no root, no cluster: a stand-in `diag` prints what it was given).

#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;

use system_tests::chart::repo;

struct PluginRig {
    dir: tempfile::TempDir,
}

impl PluginRig {
    /// A fake `diag` that prints its arguments, $KUBECONFIG and that file's current-context,
    /// and a kubeconfig with two contexts.
    fn new() -> PluginRig {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(
            bin.join("diag"),
            "#!/bin/sh\nfor a in \"$@\"; do echo \"arg:$a\"; done\n\
             echo \"KUBECONFIG=${KUBECONFIG:-}\"\n\
             if [ -f \"${KUBECONFIG:-}\" ]; then grep '^current-context' \"$KUBECONFIG\"; fi\n\
             exit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(
            bin.join("diag"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("kubeconfig"),
            "apiVersion: v1\nkind: Config\ncurrent-context: one\n\
             clusters:\n- name: c1\n  cluster: {server: \"https://198.18.0.2:6443\"}\n\
             - name: c2\n  cluster: {server: \"https://198.18.0.3:6443\"}\n\
             contexts:\n- name: one\n  context: {cluster: c1, user: u}\n\
             - name: two\n  context: {cluster: c2, user: u}\n\
             users:\n- name: u\n  user: {token: t}\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        PluginRig { dir }
    }

    fn path(&self) -> String {
        format!(
            "{}:{}:/usr/bin:/bin",
            self.dir.path().join("bin").display(),
            repo().join("deploy").display()
        )
    }

    /// Runs `program args` with the rig's PATH, HOME, TMPDIR and (if given) KUBECONFIG;
    /// returns (exit code, stdout lines, stderr).
    fn run(&self, program: &str, args: &[&str], kubeconfig: bool) -> (i32, Vec<String>, String) {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", self.path())
            .env("HOME", self.dir.path())
            .env("TMPDIR", self.dir.path().join("tmp"));
        if kubeconfig {
            cmd.env("KUBECONFIG", self.dir.path().join("kubeconfig"));
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("{program}: {e}"));
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        (
            out.status.code().unwrap_or(-1),
            lines,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn leftovers(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("tmp"))
            .unwrap()
            .count()
    }
}

#[test]
fn kubectl_diag_passes_arguments_and_the_cluster_through() {
    let rig = PluginRig::new();
    let plugin = repo().join("deploy/kubectl-diag");
    let plugin = plugin.to_str().unwrap();
    let kc = rig.dir.path().join("kubeconfig").display().to_string();

    // the words as given, the environment's kubeconfig untouched, diag's exit status kept
    let (code, out, err) = rig.run(plugin, &["trace", "a b", "--json"], true);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        out,
        [
            "arg:trace",
            "arg:a b",
            "arg:--json",
            &format!("KUBECONFIG={kc}"),
            "current-context: one"
        ]
    );

    // --context: a private kubeconfig of that context, removed afterwards
    let (code, out, err) = rig.run(plugin, &["trace", "--context", "two", "a", "b"], true);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out[..3], ["arg:trace", "arg:a", "arg:b"]);
    assert!(
        out[3].starts_with("KUBECONFIG=") && out[3].contains("kubectl-diag."),
        "{out:?}"
    );
    assert_eq!(out[4], "current-context: two");
    assert_eq!(rig.leftovers(), 0, "temporary kubeconfig left behind");

    // --kubeconfig=PATH becomes $KUBECONFIG; after `--` nothing is taken
    let (_, out, _) = rig.run(
        plugin,
        &["collect", "--kubeconfig=/k/c", "--", "--context", "x"],
        false,
    );
    assert_eq!(
        out,
        ["arg:collect", "arg:--context", "arg:x", "KUBECONFIG=/k/c"]
    );

    // negative: a flag without its value is an error, and diag does not run
    let (code, out, err) = rig.run(plugin, &["trace", "--context"], true);
    assert_eq!((code, out.len()), (2, 0));
    assert!(err.contains("--context needs a value"), "{err}");
    let (code, _, err) = rig.run(plugin, &["trace", "--context", "nope"], true);
    assert_ne!(code, 0, "an unknown context must fail: {err}");
    assert_eq!(rig.leftovers(), 0);
}

#[test]
fn kubectl_finds_the_plugin_on_path() {
    if !Path::new("/usr/bin/kubectl").exists()
        && Command::new("kubectl").arg("version").output().is_err()
    {
        eprintln!("SKIPPED: no kubectl on this machine");
        return;
    }
    let rig = PluginRig::new();
    let (code, out, err) = rig.run("kubectl", &["plugin", "list"], false);
    assert_eq!(code, 0, "{err}");
    let listed = repo().join("deploy/kubectl-diag").display().to_string();
    assert!(out.contains(&listed), "{listed} not in {out:?} ({err})");
    let (code, out, err) = rig.run("kubectl", &["diag", "trace", "a", "b"], true);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out[..3], ["arg:trace", "arg:a", "arg:b"]);
    assert_eq!(out[4], "current-context: one");
    // negative: a plugin name that is not installed
    let (code, _, err) = rig.run("kubectl", &["diagx", "trace"], true);
    assert_ne!(code, 0, "{err}");
}
