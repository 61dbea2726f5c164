//! One interface over the four router kinds of the interop matrix, so a test is written once
//! and run against BIRD 2, FRR (bgpd + zebra), GoBGP and ExaBGP:
//!
//! ```text
//!   RouterSpec { kind, asn, neighbors, announce4/6, password, hold_time, graceful_restart,
//!                route_reflector }
//!        │ Router::start
//!        v
//!   Router ── established(n) / has_route(p) / session_id(n) / notifications(n)   (their CLIs)
//!          ── announce(p) / withdraw(p) / refresh_in(n) / signal(SIGSTOP)       (their CLIs)
//! ```
//! ExaBGP has no CLI here: a small relay (`exabgp-relay.py`, an ExaBGP API process) copies the
//! lines appended to a command file to ExaBGP and ExaBGP's JSON events to a file that the
//! queries read.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use lab::{Host, Lab};
use nix::sys::signal::Signal;
use serde_json::Value;

use super::{Bird, ExaBgp, Frr, GoBgp, wait, write};

/// A router implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// BIRD 2.
    Bird,
    /// FRR bgpd with zebra (routes installed in the router's kernel).
    Frr,
    /// GoBGP.
    GoBgp,
    /// ExaBGP (API relay).
    ExaBgp,
}

/// What a router is configured with.
#[derive(Debug, Clone)]
pub(crate) struct RouterSpec {
    /// Implementation.
    pub(crate) kind: Kind,
    /// Its AS.
    pub(crate) asn: u32,
    /// Neighbours: (address, AS).
    pub(crate) neighbors: Vec<(Ipv4Addr, u32)>,
    /// IPv4 prefixes announced from the start (next hop: the router).
    pub(crate) announce4: Vec<String>,
    /// IPv6 prefixes announced from the start (next hop: the router's global address).
    pub(crate) announce6: Vec<String>,
    /// TCP MD5 key toward every neighbour.
    pub(crate) password: Option<String>,
    /// Hold time offered (keepalive a third).
    pub(crate) hold_time: u16,
    /// Graceful restart with this Restart Time (RFC 4724), off when `None`.
    pub(crate) graceful_restart: Option<u16>,
    /// A route reflector (RFC 4456; BIRD and FRR) with every neighbour a client, in the
    /// cluster of its router ID: reflected routes keep their next hop.
    pub(crate) route_reflector: bool,
}

impl RouterSpec {
    /// A router of `kind` in AS 65000 peering with `neighbors` (AS 65011 ...).
    pub(crate) fn new(kind: Kind, neighbors: &[(Ipv4Addr, u32)]) -> RouterSpec {
        RouterSpec {
            kind,
            asn: 65000,
            neighbors: neighbors.to_vec(),
            announce4: Vec::new(),
            announce6: Vec::new(),
            password: None,
            hold_time: 9,
            graceful_restart: None,
            route_reflector: false,
        }
    }
}

enum Daemon {
    Bird(Bird),
    Frr(Frr),
    GoBgp(GoBgp),
    ExaBgp {
        exa: ExaBgp,
        cmd: PathBuf,
        events: PathBuf,
    },
}

/// A running router.
pub(crate) struct Router {
    /// Its spec (announce lists follow `announce`/`withdraw`).
    pub(crate) spec: RouterSpec,
    host: Host,
    name: String,
    daemon: Daemon,
    lab_dir: PathBuf,
}

const GOBGP_PORT: u16 = 50051;

/// The relay between ExaBGP's API and two files.
const EXABGP_RELAY: &str = r#"
import sys, threading, time
cmd, events = sys.argv[1], sys.argv[2]
def rx():
    with open(events, 'a') as f:
        for line in sys.stdin:
            f.write(line)
            f.flush()
threading.Thread(target=rx, daemon=True).start()
pos = 0
while True:
    try:
        with open(cmd, 'rb') as f:
            f.seek(pos)
            for line in f:
                if not line.endswith(b'\n'):
                    break
                sys.stdout.write(line.decode())
                sys.stdout.flush()
                pos += len(line)
    except FileNotFoundError:
        pass
    time.sleep(0.05)
"#;

fn bird_proto(addr: Ipv4Addr) -> String {
    format!("n{}", addr.octets()[3])
}

/// `code/subcode` of a NOTIFICATION as BIRD 2 logs it (its `bgp_msg_table` texts; RFC 4271
/// §4.5, RFC 4486), for the ones the tests look for.
fn bird_notification_code(text: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("Hold timer expired", "4/0"),
        ("Maximum number of prefixes reached", "6/1"),
        ("Administrative shutdown", "6/2"),
        ("Peer de-configured", "6/3"),
        ("Administrative reset", "6/4"),
        ("Connection rejected", "6/5"),
        ("Other configuration change", "6/6"),
    ];
    TABLE
        .iter()
        .find(|(t, _)| text.trim_start().starts_with(t))
        .map(|(_, c)| *c)
}

impl Router {
    /// Start a router named `name` (file names, BIRD's protocol names) in `host`.
    pub(crate) fn start(lab: &Lab, host: &Host, name: &str, spec: RouterSpec) -> Router {
        let daemon = match spec.kind {
            Kind::Bird => Daemon::Bird(Bird::start(lab, host, name, &bird_conf(host, &spec))),
            Kind::Frr => Daemon::Frr(Frr::start(lab, host, name, &frr_conf(host, &spec), true)),
            Kind::GoBgp => {
                let g = GoBgp::start(lab, host, name, &gobgp_conf(host, &spec), GOBGP_PORT);
                assert!(
                    wait(10, || host
                        .output(&["gobgp", "-p", &GOBGP_PORT.to_string(), "global"])
                        .is_ok_and(|o| o.status.success())),
                    "gobgpd API not up:\n{}",
                    g.proc.logs()
                );
                Daemon::GoBgp(g)
            }
            Kind::ExaBgp => {
                let dir = lab.dir();
                let relay = dir.join("exabgp-relay.py");
                write(&relay, EXABGP_RELAY);
                let cmd = dir.join(format!("{name}.exabgp.cmd"));
                let events = dir.join(format!("{name}.exabgp.events"));
                write(&cmd, "");
                let exa = ExaBgp::start(
                    lab,
                    host,
                    name,
                    &exabgp_conf(host, &spec, &relay, &cmd, &events),
                );
                Daemon::ExaBgp { exa, cmd, events }
            }
        };
        let r = Router {
            spec,
            host: host.clone(),
            name: name.to_string(),
            daemon,
            lab_dir: lab.dir().to_path_buf(),
        };
        if r.spec.kind == Kind::GoBgp {
            let (a4, a6) = (r.spec.announce4.clone(), r.spec.announce6.clone());
            for p in a4.iter().chain(&a6) {
                r.gobgp_rib("add", p);
            }
        }
        r
    }

    /// The host it runs in.
    pub(crate) fn host(&self) -> &Host {
        &self.host
    }

    /// Its kind.
    pub(crate) fn kind(&self) -> Kind {
        self.spec.kind
    }

    fn v4(&self) -> Ipv4Addr {
        self.host.ipv4().unwrap()
    }

    fn v6(&self) -> String {
        self.host.ipv6().unwrap().to_string()
    }

    fn gobgp_rib(&self, op: &str, prefix: &str) {
        let Daemon::GoBgp(g) = &self.daemon else {
            return;
        };
        let (fam, nh) = if prefix.contains(':') {
            ("ipv6", self.v6())
        } else {
            ("ipv4", self.v4().to_string())
        };
        let mut args = vec!["global", "rib", op, "-a", fam, prefix];
        if op == "add" {
            // as FRR's and BIRD's static routes (GoBGP's default is incomplete)
            args.extend(["nexthop", &nh, "origin", "igp"]);
        }
        let o = g.gobgp(&args);
        assert!(!o.contains("rpc error"), "gobgp {args:?}: {o}");
    }

    fn exa_cmd(&self, line: &str) {
        let Daemon::ExaBgp { cmd, .. } = &self.daemon else {
            return;
        };
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(cmd).unwrap();
        writeln!(f, "{line}").unwrap();
    }

    /// Send a raw ExaBGP API command (ExaBGP only), e.g. a route with a hand-made attribute
    /// `announce route P next-hop N attribute [ 0x01 0x40 0x05 ]`.
    pub(crate) fn exabgp_command(&self, line: &str) {
        assert_eq!(self.kind(), Kind::ExaBgp);
        self.exa_cmd(line);
    }

    /// ExaBGP's API events (JSON lines), ExaBGP only.
    fn exa_events(&self) -> Vec<Value> {
        let Daemon::ExaBgp { events, .. } = &self.daemon else {
            return Vec::new();
        };
        std::fs::read_to_string(events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    // ExaBGP 4.2 quotes the AFI/SAFI of ROUTE-REFRESH twice (`""ipv4""`)
                    .or_else(|| serde_json::from_str(&l.replace("\"\"", "\"")).ok())
            })
            .collect()
    }

    fn exa_events_of(&self, nbr: Ipv4Addr, ty: &str) -> Vec<Value> {
        let peer = nbr.to_string();
        self.exa_events()
            .into_iter()
            .filter(|e| e["type"] == ty && e["neighbor"]["address"]["peer"] == peer.as_str())
            .collect()
    }

    fn frr_neighbor(&self, nbr: Ipv4Addr) -> Value {
        let Daemon::Frr(f) = &self.daemon else {
            return Value::Null;
        };
        let t = f.vtysh(&format!("show bgp neighbors {nbr} json"));
        serde_json::from_str::<Value>(&t).unwrap_or_default()[nbr.to_string()].clone()
    }

    fn gobgp_neighbor(&self, nbr: Ipv4Addr) -> Value {
        let Daemon::GoBgp(g) = &self.daemon else {
            return Value::Null;
        };
        serde_json::from_str(&g.gobgp(&["neighbor", &nbr.to_string(), "-j"])).unwrap_or_default()
    }

    /// Whether the session with `nbr` is Established, as the router sees it.
    pub(crate) fn established(&self, nbr: Ipv4Addr) -> bool {
        match &self.daemon {
            Daemon::Bird(b) => b.state(&bird_proto(nbr)).as_deref() == Some("Established"),
            Daemon::Frr(_) => self.frr_neighbor(nbr)["bgpState"] == "Established",
            Daemon::GoBgp(_) => self.gobgp_neighbor(nbr)["state"]["session_state"] == 6,
            Daemon::ExaBgp { .. } => self
                .exa_events_of(nbr, "state")
                .last()
                .is_some_and(|e| e["neighbor"]["state"] == "up"),
        }
    }

    /// Something that changes each time the session with `nbr` is (re-)established.
    pub(crate) fn session_id(&self, nbr: Ipv4Addr) -> String {
        match &self.daemon {
            Daemon::Bird(b) => b.since(&bird_proto(nbr)).unwrap_or_default(),
            // (bgpTimerUpEstablishedEpoch is computed from the uptime: it jitters by a second)
            Daemon::Frr(_) => self.frr_neighbor(nbr)["connectionsEstablished"].to_string(),
            Daemon::GoBgp(_) => {
                self.gobgp_neighbor(nbr)["timers"]["state"]["uptime"]["seconds"].to_string()
            }
            Daemon::ExaBgp { .. } => {
                let ups = self
                    .exa_events_of(nbr, "state")
                    .into_iter()
                    .filter(|e| e["neighbor"]["state"] == "up")
                    .count();
                ups.to_string()
            }
        }
    }

    /// Whether the router holds `prefix` learned from `nbr` (its Loc-RIB / Adj-RIB-In).
    pub(crate) fn has_route(&self, prefix: &str, nbr: Ipv4Addr) -> bool {
        let fam = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        match &self.daemon {
            Daemon::Bird(b) => b.has_route(prefix, &bird_proto(nbr)),
            Daemon::Frr(f) => {
                let v: Value = serde_json::from_str(
                    &f.vtysh(&format!("show bgp {fam} unicast {prefix} json")),
                )
                .unwrap_or_default();
                v["paths"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["peer"]["peerId"] == nbr.to_string().as_str())
                })
            }
            Daemon::GoBgp(g) => {
                let v: Value = serde_json::from_str(&g.gobgp(&[
                    "neighbor",
                    &nbr.to_string(),
                    "adj-in",
                    prefix,
                    "-a",
                    fam,
                    "-j",
                ]))
                .unwrap_or_default();
                v.as_object().is_some_and(|m| m.contains_key(prefix))
            }
            Daemon::ExaBgp { .. } => {
                let mut present = false;
                for e in self.exa_events_of(nbr, "update") {
                    let u = &e["neighbor"]["message"]["update"];
                    let key = format!("{fam} unicast");
                    if u["withdraw"][&key]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x["nlri"] == prefix))
                    {
                        present = false;
                    }
                    if let Some(by_nh) = u["announce"][&key].as_object()
                        && by_nh.values().any(|a| {
                            a.as_array()
                                .is_some_and(|a| a.iter().any(|x| x["nlri"] == prefix))
                        })
                    {
                        present = true;
                    }
                }
                present
            }
        }
    }

    /// UPDATE messages received from `nbr` so far (BIRD: routes received, its "Import
    /// updates" of every channel: it counts no messages).
    pub(crate) fn updates_received(&self, nbr: Ipv4Addr) -> u64 {
        match &self.daemon {
            Daemon::Bird(b) => b
                .birdc(&["show", "protocols", "all", &bird_proto(nbr)])
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Import updates:"))
                .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .sum(),
            Daemon::Frr(_) => self.frr_neighbor(nbr)["messageStats"]["updatesRecv"]
                .as_u64()
                .unwrap_or(0),
            Daemon::GoBgp(_) => self.gobgp_neighbor(nbr)["state"]["messages"]["received"]["update"]
                .as_u64()
                .unwrap_or(0),
            Daemon::ExaBgp { .. } => self.exa_events_of(nbr, "update").len() as u64,
        }
    }

    /// ROUTE-REFRESH messages received from `nbr` so far (BIRD: its packet trace).
    pub(crate) fn refresh_received(&self, nbr: Ipv4Addr) -> u64 {
        match &self.daemon {
            Daemon::Bird(b) => {
                let needle = format!("{}: Got ROUTE-REFRESH", bird_proto(nbr));
                b.logs().lines().filter(|l| l.contains(&needle)).count() as u64
            }
            Daemon::Frr(_) => self.frr_neighbor(nbr)["messageStats"]["routeRefreshRecv"]
                .as_u64()
                .unwrap_or(0),
            Daemon::GoBgp(_) => {
                self.gobgp_neighbor(nbr)["state"]["messages"]["received"]["refresh"]
                    .as_u64()
                    .unwrap_or(0)
            }
            Daemon::ExaBgp { .. } => self.exa_events_of(nbr, "refresh").len() as u64,
        }
    }

    /// NOTIFICATIONs received from `nbr`, as `code/subcode` strings, oldest first.
    pub(crate) fn notifications_received(&self, nbr: Ipv4Addr) -> Vec<String> {
        match &self.daemon {
            Daemon::Bird(b) => {
                // BIRD logs each as text ("n11: Received: Peer de-configured"): `code/subcode
                // text` from its message table, the text alone when not in ours
                let needle = format!("{}: Received: ", bird_proto(nbr));
                b.logs()
                    .lines()
                    .filter_map(|l| l.split_once(&needle))
                    .map(|(_, text)| match bird_notification_code(text) {
                        Some(code) => format!("{code} {text}"),
                        None => text.to_string(),
                    })
                    .collect()
            }
            Daemon::Frr(f) => {
                let log = std::fs::read_to_string(f.log_path()).unwrap_or_default();
                let needle = format!("received from neighbor {nbr} ");
                log.lines()
                    .filter_map(|l| l.split_once(&needle))
                    .filter_map(|(_, rest)| rest.split_whitespace().next())
                    .map(str::to_string)
                    .collect()
            }
            Daemon::GoBgp(g) => {
                let key = format!("Key={nbr}");
                g.proc
                    .logs()
                    .lines()
                    .filter(|l| l.contains("received notification") && l.contains(&key))
                    .map(|l| {
                        let field = |k: &str| {
                            l.split_whitespace()
                                .find_map(|w| w.strip_prefix(k))
                                .unwrap_or("?")
                                .to_string()
                        };
                        format!("{}/{}", field("Code="), field("Subcode="))
                    })
                    .collect()
            }
            Daemon::ExaBgp { .. } => self
                .exa_events_of(nbr, "notification")
                .iter()
                .map(|e| {
                    let n = &e["neighbor"]["notification"];
                    format!("{}/{}", n["code"], n["subcode"])
                })
                .collect(),
        }
    }

    /// Announce `prefix` (next hop: the router) to every neighbour.
    pub(crate) fn announce(&mut self, prefix: &str) {
        let v6 = prefix.contains(':');
        let list = if v6 {
            &mut self.spec.announce6
        } else {
            &mut self.spec.announce4
        };
        if !list.iter().any(|p| p == prefix) {
            list.push(prefix.to_string());
        }
        self.apply(prefix, true);
    }

    /// Withdraw `prefix`.
    pub(crate) fn withdraw(&mut self, prefix: &str) {
        self.spec.announce4.retain(|p| p != prefix);
        self.spec.announce6.retain(|p| p != prefix);
        self.apply(prefix, false);
    }

    fn apply(&self, prefix: &str, add: bool) {
        let v6 = prefix.contains(':');
        match &self.daemon {
            Daemon::Bird(b) => b.configure(&bird_conf(&self.host, &self.spec)),
            Daemon::Frr(f) => {
                let fam = if v6 { "ipv6" } else { "ipv4" };
                let no = if add { "" } else { "no " };
                f.vtysh_lines(&[
                    "configure terminal",
                    &format!("router bgp {}", self.spec.asn),
                    &format!("address-family {fam} unicast"),
                    &format!("{no}network {prefix}"),
                ]);
            }
            Daemon::GoBgp(_) => self.gobgp_rib(if add { "add" } else { "del" }, prefix),
            Daemon::ExaBgp { .. } => {
                let nh = if v6 { self.v6() } else { self.v4().to_string() };
                let verb = if add { "announce" } else { "withdraw" };
                self.exa_cmd(&format!("{verb} route {prefix} next-hop {nh}"));
            }
        }
    }

    /// Whether the router's CLI can send a ROUTE-REFRESH (GoBGP's `softresetin` only
    /// re-applies policy to the Adj-RIB-In it keeps).
    pub(crate) fn can_request_refresh(&self) -> bool {
        self.kind() != Kind::GoBgp
    }

    /// Ask `nbr` to send its routes again (ROUTE-REFRESH, RFC 2918), both families.
    pub(crate) fn refresh_in(&self, nbr: Ipv4Addr) {
        match &self.daemon {
            Daemon::Bird(b) => {
                b.birdc(&["reload", "in", &bird_proto(nbr)]);
            }
            Daemon::Frr(f) => {
                for fam in ["ipv4", "ipv6"] {
                    f.vtysh(&format!("clear bgp {fam} unicast {nbr} soft in"));
                }
            }
            Daemon::GoBgp(g) => {
                g.gobgp(&["neighbor", &nbr.to_string(), "softresetin"]);
            }
            Daemon::ExaBgp { .. } => {
                self.exa_cmd("announce route-refresh ipv4 unicast");
                self.exa_cmd("announce route-refresh ipv6 unicast");
            }
        }
    }

    /// Send `sig` to the BGP daemon (FRR: bgpd).
    pub(crate) fn signal(&self, sig: Signal) {
        let p = match &self.daemon {
            Daemon::Bird(b) => &b.proc,
            Daemon::Frr(f) => &f.bgpd,
            Daemon::GoBgp(g) => &g.proc,
            Daemon::ExaBgp { exa, .. } => &exa.proc,
        };
        p.signal(sig).unwrap();
    }

    /// Kill the BGP daemon with SIGKILL (BIRD only) and start it again with graceful
    /// restart recovery (`bird -R`) once `before_start` returned.
    pub(crate) fn kill_and_restart(&mut self, lab: &Lab, before_start: impl FnOnce(&mut Self)) {
        let Daemon::Bird(b) = &self.daemon else {
            panic!("kill_and_restart: BIRD only");
        };
        b.proc.signal(Signal::SIGKILL).unwrap();
        b.proc.wait_timeout(Duration::from_secs(5));
        before_start(self);
        let b = Bird::start_with(
            lab,
            &self.host,
            &self.name,
            &bird_conf(&self.host, &self.spec),
            &["-R"],
        );
        self.daemon = Daemon::Bird(b);
    }

    /// Logs of the daemon so far (FRR: bgpd's log file).
    pub(crate) fn logs(&self) -> String {
        match &self.daemon {
            Daemon::Bird(b) => b.logs(),
            Daemon::Frr(f) => std::fs::read_to_string(f.log_path()).unwrap_or_default(),
            Daemon::GoBgp(g) => g.proc.logs(),
            Daemon::ExaBgp { exa, events, .. } => format!(
                "{}\n--- events\n{}",
                exa.proc.logs(),
                std::fs::read_to_string(events).unwrap_or_default()
            ),
        }
    }

    /// The router's session summary (for failure messages).
    pub(crate) fn summary(&self) -> String {
        match &self.daemon {
            Daemon::Bird(b) => b.birdc(&["show", "protocols", "all"]),
            Daemon::Frr(f) => f.vtysh("show bgp neighbors"),
            Daemon::GoBgp(g) => g.gobgp(&["neighbor"]),
            Daemon::ExaBgp { .. } => self.logs(),
        }
    }

    /// The directory of the lab it runs in.
    pub(crate) fn lab_dir(&self) -> &PathBuf {
        &self.lab_dir
    }
}

fn bird_conf(host: &Host, s: &RouterSpec) -> String {
    let id = host.ipv4().unwrap();
    let v6 = host.ipv6().unwrap();
    let routes = |v: &[String]| -> String {
        v.iter()
            .map(|p| format!("  route {p} unreachable;\n"))
            .collect()
    };
    let gr = match s.graceful_restart {
        Some(t) => format!("graceful restart on; graceful restart time {t};"),
        None => "graceful restart off;".to_string(),
    };
    let ka = (s.hold_time / 3).max(1);
    // a reflector passes next hops on (iBGP: BIRD would otherwise resolve them recursively
    // through an IGP table this router does not have)
    let (rr, nh4, nh6) = if s.route_reflector {
        (
            format!("  direct; rr client; rr cluster id {id};\n"),
            "gateway direct;".to_string(),
            "gateway direct;".to_string(),
        )
    } else {
        (
            String::new(),
            "next hop self;".to_string(),
            format!("next hop address {v6};"),
        )
    };
    let mut protos = String::new();
    for (addr, asn) in &s.neighbors {
        let pw = s
            .password
            .as_ref()
            .map(|p| format!("  password \"{p}\";\n"))
            .unwrap_or_default();
        protos += &format!(
            "protocol bgp {name} {{
  local {id} as {my};
  neighbor {addr} as {asn};
  hold time {hold}; keepalive time {ka};
  connect delay time 1; connect retry time 1; error wait time 1, 3;
  debug {{ packets }};
  {gr}
{rr}{pw}  ipv4 {{ import all; export where proto = \"s4\" || source = RTS_BGP; {nh4} }};
  ipv6 {{ import all; export where proto = \"s6\" || source = RTS_BGP; {nh6} }};
}}
",
            name = bird_proto(*addr),
            my = s.asn,
            hold = s.hold_time,
        );
    }
    format!(
        "router id {id};
timeformat protocol iso long ms;
log stderr all;
protocol device {{ scan time 1; }}
protocol kernel {{ ipv4 {{ export where source = RTS_BGP; }}; merge paths on; }}
protocol kernel {{ ipv6 {{ export where source = RTS_BGP; }}; merge paths on; }}
protocol static s4 {{
  ipv4;
{r4}}}
protocol static s6 {{
  ipv6;
{r6}}}
{protos}",
        r4 = routes(&s.announce4),
        r6 = routes(&s.announce6),
    )
}

fn frr_conf(host: &Host, s: &RouterSpec) -> String {
    let id = host.ipv4().unwrap();
    let ka = (s.hold_time / 3).max(1);
    let mut c = format!(
        "frr defaults datacenter
hostname {name}
router bgp {asn}
 bgp router-id {id}
 no bgp ebgp-requires-policy
 no bgp network import-check
",
        name = host.name(),
        asn = s.asn
    );
    match s.graceful_restart {
        Some(t) => c += &format!(" bgp graceful-restart\n bgp graceful-restart restart-time {t}\n"),
        None => c += " bgp graceful-restart-disable\n",
    }
    for (addr, asn) in &s.neighbors {
        c += &format!(
            " neighbor {addr} remote-as {asn}
 neighbor {addr} timers {ka} {hold}
 neighbor {addr} timers connect 1
",
            hold = s.hold_time
        );
        if let Some(p) = &s.password {
            c += &format!(" neighbor {addr} password {p}\n");
        }
    }
    if s.route_reflector {
        c += &format!(" bgp cluster-id {id}\n");
    }
    let client = |c: &mut String| {
        if s.route_reflector {
            for (addr, _) in &s.neighbors {
                *c += &format!("  neighbor {addr} route-reflector-client\n");
            }
        }
    };
    c += " address-family ipv4 unicast\n";
    client(&mut c);
    for p in &s.announce4 {
        c += &format!("  network {p}\n");
    }
    c += " exit-address-family\n address-family ipv6 unicast\n";
    for (addr, _) in &s.neighbors {
        c += &format!("  neighbor {addr} activate\n");
    }
    client(&mut c);
    for p in &s.announce6 {
        c += &format!("  network {p}\n");
    }
    c += " exit-address-family\n";
    c
}

fn gobgp_conf(host: &Host, s: &RouterSpec) -> String {
    let id = host.ipv4().unwrap();
    let ka = (s.hold_time / 3).max(1);
    let mut c = format!(
        "[global.config]\n  as = {}\n  router-id = \"{id}\"\n",
        s.asn
    );
    for (addr, asn) in &s.neighbors {
        c += &format!(
            "[[neighbors]]
  [neighbors.config]
    neighbor-address = \"{addr}\"
    peer-as = {asn}
"
        );
        if let Some(p) = &s.password {
            c += &format!("    auth-password = \"{p}\"\n");
        }
        c += &format!(
            "  [neighbors.timers.config]
    connect-retry = 1
    hold-time = {hold}
    keepalive-interval = {ka}
    idle-hold-time-after-reset = 1
",
            hold = s.hold_time
        );
        if let Some(t) = s.graceful_restart {
            c += &format!(
                "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = {t}\n"
            );
        }
        for fam in ["ipv4-unicast", "ipv6-unicast"] {
            c += &format!(
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{fam}\"\n"
            );
            if s.graceful_restart.is_some() {
                c += "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n";
            }
        }
    }
    c
}

fn exabgp_conf(
    host: &Host,
    s: &RouterSpec,
    relay: &std::path::Path,
    cmd: &std::path::Path,
    events: &std::path::Path,
) -> String {
    let id = host.ipv4().unwrap();
    let v6 = host.ipv6().unwrap();
    let mut c = format!(
        "process relay {{
  run /usr/bin/python3 {} {} {};
  encoder json;
}}
",
        relay.display(),
        cmd.display(),
        events.display()
    );
    for (addr, asn) in &s.neighbors {
        let mut statics = String::new();
        for p in &s.announce4 {
            statics += &format!("    route {p} next-hop {id};\n");
        }
        for p in &s.announce6 {
            statics += &format!("    route {p} next-hop {v6};\n");
        }
        let pw = s
            .password
            .as_ref()
            .map(|p| format!("  md5-password \"{p}\";\n"))
            .unwrap_or_default();
        let gr = s
            .graceful_restart
            .map(|t| format!("  capability {{ graceful-restart {t}; route-refresh; }}\n"))
            .unwrap_or_else(|| "  capability { route-refresh; }\n".to_string());
        c += &format!(
            "neighbor {addr} {{
  router-id {id};
  local-address {id};
  local-as {my};
  peer-as {asn};
  hold-time {hold};
{pw}{gr}  family {{ ipv4 unicast; ipv6 unicast; }}
  api {{ processes [ relay ]; neighbor-changes; receive {{ parsed; update; notification; refresh; }} }}
  static {{
{statics}  }}
}}
",
            my = s.asn,
            hold = s.hold_time,
        );
    }
    c
}

/// `ip -j route show PREFIX` in `host` as (gateways, protocol), for any protocol.
pub(crate) fn route_any(host: &Host, prefix: &str) -> Option<(Vec<String>, String)> {
    let mut args = vec![];
    if prefix.contains(':') {
        args.push("-6");
    }
    args.extend(["-j", "route", "show", prefix]);
    let text = host.ip(&args).ok()?;
    let v: Value = serde_json::from_str(if text.trim().is_empty() { "[]" } else { &text }).ok()?;
    let r = v.as_array()?.first()?.clone();
    let mut gws: Vec<String> = r["gateway"]
        .as_str()
        .map(|g| vec![g.to_string()])
        .unwrap_or_default();
    for nh in r["nexthops"].as_array().cloned().unwrap_or_default() {
        if let Some(g) = nh["gateway"].as_str() {
            gws.push(g.into());
        }
    }
    gws.sort();
    Some((gws, r["protocol"].as_str().unwrap_or("").to_string()))
}
