//! Test support for system tests against real peers: start BIRD 2, FRR (bgpd alone or with
//! zebra), GoBGP, ExaBGP or bgpd itself in a lab host with a given configuration, ask them for
//! their state, and stop them by PID (the lab's [`lab::Process`] does that, also on panic).
//!
//! ```text
//!   Bird::start(&host, "tor1", conf) ─> bird -f -c tor1.conf -s tor1.ctl   (birdc -s tor1.ctl ...)
//!   Frr::start(&host, "tor1", conf, zebra) ─> /usr/lib/frr/[zebra+]bgpd   (vtysh --vty_socket ...)
//!   GoBgp::start(&host, "tor1", toml, api_port) ─> gobgpd -f tor1.toml   (gobgp -p PORT ...)
//!   ExaBgp::start(&host, "tor1", conf) ─> exabgp tor1.conf
//!   Bgpd::start(&host, "node1", yaml) ─> bgpd --config node1.yaml       (bgpd show ... --json)
//! ```
//! Invocations follow shared/reference/test-environment.md §3.
#![allow(dead_code)]

pub(crate) mod feed;
pub(crate) mod router;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lab::{Host, Lab, Process, SpawnOpts};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Poll `cond` every 100 ms for at most `secs` seconds.
pub(crate) fn wait(secs: u64, cond: impl FnMut() -> bool) -> bool {
    lab::wait_until(Duration::from_secs(secs), cond)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn out(host: &Host, argv: &[&str]) -> String {
    let o = host
        .output(argv)
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The test needs root (network namespaces).
pub(crate) fn lab(name: &str) -> Lab {
    lab::require_root().expect("these tests create network namespaces: run them as root");
    Lab::new(name).expect("lab")
}

/// A BIRD 2 instance.
pub(crate) struct Bird {
    /// The process.
    pub(crate) proc: Process,
    host: Host,
    conf: PathBuf,
    ctl: PathBuf,
}

impl Bird {
    /// Start `bird -f` with `conf` in `host`; waits until its control socket answers.
    pub(crate) fn start(lab: &Lab, host: &Host, name: &str, conf: &str) -> Bird {
        Self::start_with(lab, host, name, conf, &[])
    }

    /// [`Bird::start`] with more arguments (`-R`: graceful restart recovery).
    pub(crate) fn start_with(
        lab: &Lab,
        host: &Host,
        name: &str,
        conf: &str,
        extra: &[&str],
    ) -> Bird {
        let dir = lab.dir();
        let (cf, ctl, pid) = (
            dir.join(format!("{name}.bird.conf")),
            dir.join(format!("{name}.bird.ctl")),
            dir.join(format!("{name}.bird.pid")),
        );
        write(&cf, conf);
        let mut argv = vec![
            "bird",
            "-f",
            "-c",
            cf.to_str().unwrap(),
            "-s",
            ctl.to_str().unwrap(),
            "-P",
            pid.to_str().unwrap(),
        ];
        argv.extend_from_slice(extra);
        let proc = host
            .spawn_with(
                &argv,
                &SpawnOpts {
                    name: Some(format!("bird-{name}")),
                    ..Default::default()
                },
            )
            .expect("spawn bird");
        let b = Bird {
            proc,
            host: host.clone(),
            conf: cf,
            ctl,
        };
        assert!(
            wait(10, || b.birdc(&["show", "status"]).contains("Daemon is up")),
            "bird {name} did not start:\n{}",
            b.proc.logs()
        );
        b
    }

    /// `birdc -s CTL ARGS...`, stdout.
    pub(crate) fn birdc(&self, args: &[&str]) -> String {
        let mut argv = vec!["birdc", "-s", self.ctl.to_str().unwrap()];
        argv.extend_from_slice(args);
        out(&self.host, &argv)
    }

    /// The info column of `show protocols` for `proto` (`Established`, `Active`, ...); needs
    /// `timeformat protocol iso long ms` (the since column is two words).
    pub(crate) fn state(&self, proto: &str) -> Option<String> {
        self.protocol_line(proto)
            .and_then(|l| l.split_whitespace().nth(6).map(str::to_string))
    }

    /// The `show protocols` line of `proto`.
    pub(crate) fn protocol_line(&self, proto: &str) -> Option<String> {
        self.birdc(&["show", "protocols"])
            .lines()
            .find(|l| l.split_whitespace().next() == Some(proto))
            .map(str::to_string)
    }

    /// The "since" column of `show protocols` (needs `timeformat protocol iso long ms`).
    pub(crate) fn since(&self, proto: &str) -> Option<String> {
        self.protocol_line(proto).and_then(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.get(4..6).map(|x| x.join(" "))
        })
    }

    /// [`Self::since`] once it has stopped moving: BIRD stamps the protocol again as its
    /// channels come up, a millisecond or so after the session itself, so a value read right
    /// after establishment can change without any reset. Two equal reads 300 ms apart (at
    /// most 10 s).
    pub(crate) fn settled_since(&self, proto: &str) -> Option<String> {
        let mut last = self.since(proto);
        for _ in 0..33 {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let now = self.since(proto);
            if now == last {
                break;
            }
            last = now;
        }
        last
    }

    /// `show route PREFIX all` (empty when BIRD has no route for it).
    pub(crate) fn route(&self, prefix: &str) -> String {
        self.birdc(&["show", "route", prefix, "all"])
    }

    /// Whether BIRD has a route for `prefix` learned from protocol `proto`.
    pub(crate) fn has_route(&self, prefix: &str, proto: &str) -> bool {
        let r = self.birdc(&["show", "route", "for", prefix, "protocol", proto]);
        r.lines().any(|l| l.starts_with(prefix))
    }

    /// Replace the configuration and `birdc configure`.
    pub(crate) fn configure(&self, conf: &str) {
        write(&self.conf, conf);
        let r = self.birdc(&["configure"]);
        assert!(
            r.contains("Reconfigured") || r.contains("Reconfiguration"),
            "{r}"
        );
    }

    /// Logs so far.
    pub(crate) fn logs(&self) -> String {
        self.proc.logs()
    }
}

/// FRR's bgpd (and zebra when `zebra`) in a host, with its own run directory.
pub(crate) struct Frr {
    /// bgpd.
    pub(crate) bgpd: Process,
    /// zebra, when started.
    pub(crate) zebra: Option<Process>,
    host: Host,
    run: PathBuf,
}

impl Frr {
    /// Start FRR with `conf` (bgpd.conf text); `zebra` also installs its routes in the host.
    pub(crate) fn start(lab: &Lab, host: &Host, name: &str, conf: &str, zebra: bool) -> Frr {
        let run = lab.dir().join(format!("{name}.frr"));
        std::fs::create_dir_all(&run).unwrap();
        let cf = run.join("bgpd.conf");
        write(&cf, conf);
        let r = run.to_str().unwrap().to_string();
        let mut z = None;
        if zebra {
            let zc = run.join("zebra.conf");
            write(&zc, "hostname zebra\n");
            let _ = std::process::Command::new("chown")
                .args(["-R", "frr:frr", &r])
                .status();
            z = Some(
                host.spawn_with(
                    &[
                        "/usr/lib/frr/zebra",
                        "-u",
                        "frr",
                        "-g",
                        "frr",
                        "-f",
                        zc.to_str().unwrap(),
                        "-i",
                        &format!("{r}/zebra.pid"),
                        "-z",
                        &format!("{r}/zserv.api"),
                        "--vty_socket",
                        &r,
                        "-P",
                        "0",
                    ],
                    &SpawnOpts {
                        name: Some(format!("zebra-{name}")),
                        ..Default::default()
                    },
                )
                .expect("zebra"),
            );
            wait(5, || run.join("zserv.api").exists());
        }
        let mut argv = vec!["/usr/lib/frr/bgpd"];
        if !zebra {
            argv.extend(["-Z", "-S"]);
        } else {
            argv.extend(["-u", "frr", "-g", "frr"]);
        }
        let (pid, zs, log) = (
            format!("{r}/bgpd.pid"),
            format!("{r}/zserv.api"),
            format!("file:{r}/bgpd.log"),
        );
        argv.extend([
            "-f",
            cf.to_str().unwrap(),
            "-i",
            &pid,
            "-z",
            &zs,
            "--vty_socket",
            &r,
            "-P",
            "0",
            "--log",
            &log,
        ]);
        let bgpd = host
            .spawn_with(
                &argv,
                &SpawnOpts {
                    name: Some(format!("frr-{name}")),
                    ..Default::default()
                },
            )
            .expect("frr bgpd");
        Frr {
            bgpd,
            zebra: z,
            host: host.clone(),
            run,
        }
    }

    /// bgpd's log file.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.run.join("bgpd.log")
    }

    /// `vtysh -c L1 -c L2 ...` (a configuration session), stdout.
    pub(crate) fn vtysh_lines(&self, lines: &[&str]) -> String {
        let mut argv = vec!["vtysh", "--vty_socket", self.run.to_str().unwrap()];
        for l in lines {
            argv.extend(["-c", l]);
        }
        out(&self.host, &argv)
    }

    /// `vtysh -c CMD`, stdout.
    pub(crate) fn vtysh(&self, cmd: &str) -> String {
        out(
            &self.host,
            &[
                "vtysh",
                "--vty_socket",
                self.run.to_str().unwrap(),
                "-c",
                cmd,
            ],
        )
    }
}

/// A GoBGP daemon with its gRPC API on 127.0.0.1:`port` inside the host.
pub(crate) struct GoBgp {
    /// The process.
    pub(crate) proc: Process,
    host: Host,
    port: u16,
}

impl GoBgp {
    /// Start `gobgpd -f CONF.toml`.
    pub(crate) fn start(lab: &Lab, host: &Host, name: &str, toml: &str, port: u16) -> GoBgp {
        let cf = lab.dir().join(format!("{name}.gobgp.toml"));
        write(&cf, toml);
        let api = format!("127.0.0.1:{port}");
        let proc = host
            .spawn_with(
                &[
                    "gobgpd",
                    "-f",
                    cf.to_str().unwrap(),
                    "-p",
                    "--api-hosts",
                    &api,
                    "--pprof-disable",
                ],
                &SpawnOpts {
                    name: Some(format!("gobgp-{name}")),
                    ..Default::default()
                },
            )
            .expect("gobgpd");
        GoBgp {
            proc,
            host: host.clone(),
            port,
        }
    }

    /// `gobgp -p PORT ARGS...`, stdout.
    pub(crate) fn gobgp(&self, args: &[&str]) -> String {
        let p = self.port.to_string();
        let mut argv = vec!["gobgp", "-p", &p];
        argv.extend_from_slice(args);
        out(&self.host, &argv)
    }
}

/// An ExaBGP process.
pub(crate) struct ExaBgp {
    /// The process.
    pub(crate) proc: Process,
}

impl ExaBgp {
    /// Start `exabgp CONF` (root, API CLI off, logs to stdout).
    pub(crate) fn start(lab: &Lab, host: &Host, name: &str, conf: &str) -> ExaBgp {
        let cf = lab.dir().join(format!("{name}.exabgp.conf"));
        write(&cf, conf);
        let proc = host
            .spawn_with(
                &["exabgp", cf.to_str().unwrap()],
                &SpawnOpts {
                    name: Some(format!("exabgp-{name}")),
                    env: vec![
                        ("exabgp.daemon.user".into(), "root".into()),
                        ("exabgp.api.cli".into(), "false".into()),
                        ("exabgp.log.destination".into(), "stdout".into()),
                    ],
                    ..Default::default()
                },
            )
            .expect("exabgp");
        ExaBgp { proc }
    }
}

/// Our daemon in a host.
pub(crate) struct Bgpd {
    /// The process (None while stopped).
    pub(crate) proc: Option<Process>,
    host: Host,
    name: String,
    conf: PathBuf,
    sock: PathBuf,
}

impl Bgpd {
    /// The control socket path to put in the config for `name`.
    pub(crate) fn socket_for(lab: &Lab, name: &str) -> PathBuf {
        lab.dir().join(format!("{name}.bgpd.sock"))
    }

    /// Write `yaml` (which must set `control_socket: Bgpd::socket_for(..)`) and start.
    pub(crate) fn start(lab: &Lab, host: &Host, name: &str, yaml: &str) -> Bgpd {
        let conf = lab.dir().join(format!("{name}.bgpd.yaml"));
        write(&conf, yaml);
        let mut b = Bgpd {
            proc: None,
            host: host.clone(),
            name: name.into(),
            conf,
            sock: Self::socket_for(lab, name),
        };
        b.restart();
        b
    }

    /// Start again (after `kill`).
    pub(crate) fn restart(&mut self) {
        let p = self
            .host
            .spawn_with(
                &[
                    env!("CARGO_BIN_EXE_bgpd"),
                    "--config",
                    self.conf.to_str().unwrap(),
                ],
                &SpawnOpts {
                    name: Some(format!("bgpd-{}", self.name)),
                    env: vec![("BGPD_LOG".into(), "bgpd=debug,info".into())],
                    ..Default::default()
                },
            )
            .expect("spawn bgpd");
        self.proc = Some(p);
        assert!(
            wait(10, || self.try_show(&["neighbors"]).is_ok()),
            "bgpd did not answer on its control socket:\n{}",
            self.logs()
        );
    }

    /// SIGKILL, and reap.
    pub(crate) fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.signal(Signal::SIGKILL).unwrap();
            p.wait_timeout(Duration::from_secs(5));
            drop(p);
        }
    }

    /// Send a signal.
    pub(crate) fn signal(&self, s: Signal) {
        if let Some(p) = &self.proc {
            p.signal(s).unwrap();
        }
    }

    /// Replace the configuration file (the daemon reloads on file change and SIGHUP).
    pub(crate) fn rewrite(&self, yaml: &str) {
        write(&self.conf, yaml);
        self.signal(Signal::SIGHUP);
    }

    /// Replace the configuration file without a signal (the daemon sees the change within a
    /// second).
    pub(crate) fn write_config(&self, yaml: &str) {
        write(&self.conf, yaml);
    }

    /// `bgpd --socket S show ARGS... --json`, parsed, or the exit code and stderr.
    pub(crate) fn try_show(&self, args: &[&str]) -> Result<Value, (i32, String)> {
        let mut argv = vec![
            env!("CARGO_BIN_EXE_bgpd"),
            "--socket",
            self.sock.to_str().unwrap(),
            "show",
        ];
        argv.extend_from_slice(args);
        argv.push("--json");
        let o = self.host.output(&argv).map_err(|e| (-1, e.to_string()))?;
        if !o.status.success() {
            return Err((
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ));
        }
        serde_json::from_slice(&o.stdout).map_err(|e| (-1, e.to_string()))
    }

    /// The neighbor entry for `peer`.
    pub(crate) fn neighbor(&self, peer: &str) -> Value {
        let n = self.try_show(&["neighbors"]).expect("show neighbors");
        n.as_array()
            .and_then(|a| a.iter().find(|x| x["address"] == peer).cloned())
            .unwrap_or(Value::Null)
    }

    /// The state of `peer` (`Established`, ...).
    pub(crate) fn state(&self, peer: &str) -> String {
        self.neighbor(peer)["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Logs so far.
    pub(crate) fn logs(&self) -> String {
        self.proc.as_ref().map(|p| p.logs()).unwrap_or_default()
    }

    /// The value of the metric series `series` (name and labels as printed, e.g.
    /// `bgpd_session_state{peer="198.18.0.1"}`) from `GET /metrics` on 127.0.0.1:`port`;
    /// 0 when the series is absent.
    pub(crate) fn metric(&self, port: u16, series: &str) -> f64 {
        let m = self
            .host
            .http_get([127, 0, 0, 1], port, "/metrics", Duration::from_secs(5))
            .expect("GET /metrics");
        m.body
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

/// `ip [-6] -j route show proto bgp` in `host`, as (prefix, sorted gateways).
pub(crate) fn kernel_routes(host: &Host, v6: bool) -> Vec<(String, Vec<String>)> {
    let mut args = vec![];
    if v6 {
        args.push("-6");
    }
    args.extend(["-j", "route", "show", "proto", "bgp"]);
    let text = host.ip(&args).expect("ip route");
    let v: Value =
        serde_json::from_str(if text.trim().is_empty() { "[]" } else { &text }).expect("ip -j");
    let mut out = Vec::new();
    for r in v.as_array().cloned().unwrap_or_default() {
        let dst = r["dst"].as_str().unwrap_or("").to_string();
        let mut gws: Vec<String> = Vec::new();
        if let Some(g) = r["gateway"].as_str() {
            gws.push(g.into());
        }
        for nh in r["nexthops"].as_array().cloned().unwrap_or_default() {
            if let Some(g) = nh["gateway"].as_str() {
                gws.push(g.into());
            }
        }
        gws.sort();
        out.push((dst, gws));
    }
    out
}

/// The gateways of the kernel route `prefix` (proto bgp), `None` without one.
pub(crate) fn kernel_route(host: &Host, prefix: &str) -> Option<Vec<String>> {
    kernel_routes(host, prefix.contains(':'))
        .into_iter()
        .find(|(p, _)| p == prefix)
        .map(|(_, g)| g)
}
