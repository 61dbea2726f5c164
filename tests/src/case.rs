//! A differential case and its runner: load state into the DUT, capture it back, trace the
//! packet, send the real one, compare.
//!
//! ```text
//!   reset DUT (nft flush ruleset, legacy tables flushed, ipsets destroyed, conntrack flushed)
//!   -> setup (routes, rules, sysctls, MTU; undone afterwards) -> ipset restore
//!   -> *-restore / nft -f, in case order
//!   -> capture (iptables-save, nft -j, ip -j, sysctl, conntrack -L) -> NodeState
//!   -> trace(packet as the DUT sees it)                      -> predicted observations
//!   -> send the real packet N times (fresh source port each) -> observed
//!   -> agree? (outcome::agrees)
//! ```

use std::cell::Cell;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use dataplane::node::Backend;
use dataplane::packet::TcpFlags;
use dataplane::trace::{Trace, trace};
use dataplane::{Family, Packet};
use lab::{ConnOpts, Host};

use crate::capture::capture;
use crate::outcome::{Observed, Proto, agrees, classify, classify_err, expect};
use crate::probe;
use crate::topo::DutLab;

/// What loads a ruleset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// `<backend command>-restore FILE` (iptables-restore text).
    Restore(Backend),
    /// `nft -f FILE` (an nft script).
    Nft,
}

/// A ruleset to load, in case order (which is also the order nf_tables registers hooks in).
#[derive(Debug, Clone)]
pub struct Rules {
    /// Which tool loads it.
    pub loader: Loader,
    /// iptables or ip6tables (ignored by nft: the script names its families).
    pub family: Family,
    /// The text.
    pub text: String,
}

/// A change to the DUT made before a case and undone after it.
#[derive(Debug, Clone)]
pub enum Setup {
    /// A shell command and the command that undoes it.
    Cmd {
        /// Run before.
        run: String,
        /// Run after (errors ignored).
        undo: String,
    },
    /// A sysctl set for the case; the old value is restored.
    Sysctl {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
}

impl Setup {
    /// `ip route add SPEC` (undone by `ip route del SPEC`); `-6` when the spec has an IPv6
    /// address.
    pub fn route(spec: &str) -> Setup {
        let f = if spec.contains(':') { "-6 " } else { "" };
        Setup::Cmd {
            run: format!("ip {f}route add {spec}"),
            undo: format!("ip {f}route del {spec}"),
        }
    }

    /// `ip rule add SPEC` (undone by `ip rule del SPEC`); `-6` when IPv6.
    pub fn rule(spec: &str, v6: bool) -> Setup {
        let f = if v6 { "-6 " } else { "" };
        Setup::Cmd {
            run: format!("ip {f}rule add {spec}"),
            undo: format!("ip {f}rule del {spec}"),
        }
    }

    /// A sysctl for the case.
    pub fn sysctl(key: &str, value: &str) -> Setup {
        Setup::Sysctl {
            key: key.to_string(),
            value: value.to_string(),
        }
    }

    /// Any command pair.
    pub fn cmd(run: &str, undo: &str) -> Setup {
        Setup::Cmd {
            run: run.to_string(),
            undo: undo.to_string(),
        }
    }
}

/// Who sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The client, through the DUT's segment interface.
    Client,
    /// The DUT itself (local output).
    Dut,
    /// A pod of the DUT (index into `eps`).
    Pod(usize),
    /// ext1, through the DUT's eth1.
    Ext1,
}

/// The request of a case.
#[derive(Debug, Clone)]
pub struct Send {
    /// Sender.
    pub from: From,
    /// Kind of request.
    pub proto: Proto,
    /// Destination.
    pub dst: IpAddr,
    /// Destination port (ignored for ping).
    pub port: u16,
    /// A fixed source address.
    pub src: Option<IpAddr>,
    /// UDP payload size.
    pub payload: usize,
    /// How many attempts (statistic cases need many).
    pub repeats: usize,
}

impl Send {
    /// One attempt of `proto` from `from` to `dst:port`.
    pub fn new(from: From, proto: Proto, dst: IpAddr, port: u16) -> Send {
        Send {
            from,
            proto,
            dst,
            port,
            src: None,
            payload: 8,
            repeats: 1,
        }
    }
}

/// A differential case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Name, for reports.
    pub name: String,
    /// Rulesets to load.
    pub rules: Vec<Rules>,
    /// `ipset restore` text.
    pub ipsets: String,
    /// DUT changes for this case.
    pub setup: Vec<Setup>,
    /// The request.
    pub send: Send,
    /// The verdict kinds the tracer must give (`forwarded`, `rejected`, ...); empty: any.
    pub want: Vec<&'static str>,
    /// Rules loaded first, with one request sent (at the fixed source port) before the case's
    /// own rules replace them: leaves a conntrack entry behind.
    pub warmup: Vec<Rules>,
    /// A fixed source port for every request (else a fresh one each time).
    pub sport: Option<u16>,
}

impl Case {
    /// A case with nothing loaded.
    pub fn new(name: &str, send: Send) -> Case {
        Case {
            name: name.to_string(),
            rules: Vec::new(),
            ipsets: String::new(),
            setup: Vec::new(),
            send,
            want: Vec::new(),
            warmup: Vec::new(),
            sport: None,
        }
    }

    /// Loads `text` first and sends the request once at source port `sport`, then replaces
    /// the rules with the case's own (the conntrack entry stays).
    pub fn warmup(mut self, backend: Backend, text: &str, sport: u16) -> Case {
        self.warmup.push(Rules {
            loader: Loader::Restore(backend),
            family: Family::of(&self.send.dst),
            text: text.to_string(),
        });
        self.sport = Some(sport);
        self
    }

    /// Loads `text` with `backend` for the family of the destination.
    pub fn rules(mut self, backend: Backend, text: &str) -> Case {
        self.rules.push(Rules {
            loader: Loader::Restore(backend),
            family: Family::of(&self.send.dst),
            text: text.to_string(),
        });
        self
    }

    /// Loads the nft script `text` with `nft -f`.
    pub fn nft(mut self, text: &str) -> Case {
        self.rules.push(Rules {
            loader: Loader::Nft,
            family: Family::of(&self.send.dst),
            text: text.to_string(),
        });
        self
    }

    /// Adds DUT setup.
    pub fn setup(mut self, s: Setup) -> Case {
        self.setup.push(s);
        self
    }

    /// Sets the ipsets.
    pub fn ipsets(mut self, text: &str) -> Case {
        self.ipsets = text.to_string();
        self
    }

    /// The verdict kinds the trace must have.
    pub fn want(mut self, kinds: &[&'static str]) -> Case {
        self.want = kinds.to_vec();
        self
    }

    /// Repeats the request `n` times.
    pub fn repeat(mut self, n: usize) -> Case {
        self.send.repeats = n;
        self
    }
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct Report {
    /// The case name.
    pub name: String,
    /// Whether kernel and tracer agreed (and the trace had the wanted verdicts).
    pub ok: bool,
    /// Why not, or a summary.
    pub detail: String,
    /// The trace as text.
    pub trace: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs cases on one topology.
pub struct Runner<'l> {
    /// The topology.
    pub lab: &'l DutLab,
    /// How long to wait for an answer.
    pub timeout: Duration,
    sport: Cell<u16>,
    file_no: Cell<u32>,
}

const RESET: &str = r#"
nft flush ruleset
for fam in iptables ip6tables; do
  f=/proc/net/ip_tables_names; [ $fam = ip6tables ] && f=/proc/net/ip6_tables_names
  t=$(cat $f 2>/dev/null)
  [ -n "$t" ] && for x in $t; do
    echo "*$x"
    case $x in
      filter|security) c="INPUT FORWARD OUTPUT";;
      nat) c="PREROUTING INPUT OUTPUT POSTROUTING";;
      mangle) c="PREROUTING INPUT FORWARD OUTPUT POSTROUTING";;
      raw) c="PREROUTING OUTPUT";;
    esac
    for y in $c; do echo ":$y ACCEPT [0:0]"; done
    echo COMMIT
  done | ${fam}-legacy-restore
done
ipset destroy 2>/dev/null
conntrack -F >/dev/null 2>&1; conntrack -F -f ipv6 >/dev/null 2>&1
true
"#;

impl<'l> Runner<'l> {
    /// A runner with a 400 ms answer timeout.
    pub fn new(lab: &'l DutLab) -> Runner<'l> {
        Runner {
            lab,
            timeout: Duration::from_millis(400),
            sport: Cell::new(20000),
            file_no: Cell::new(0),
        }
    }

    fn next_sport(&self) -> u16 {
        let p = self.sport.get();
        self.sport.set(if p >= 60000 { 20000 } else { p + 1 });
        p
    }

    fn write(&self, text: &str) -> Result<String, String> {
        let n = self.file_no.get();
        self.file_no.set(n + 1);
        let path = self.lab.dir.join(format!("load-{n}.txt"));
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path.display().to_string())
    }

    fn dut_sh(&self, script: &str) -> Result<String, String> {
        self.lab.dut.sh(script).map_err(|e| e.to_string())
    }

    /// Clears every rule, set and conntrack entry of the DUT.
    pub fn reset(&self) -> Result<(), String> {
        self.dut_sh(RESET).map(drop)
    }

    /// Loads a case's state; returns the undo commands.
    fn load(&self, case: &Case, undo: &mut Vec<String>) -> Result<(), String> {
        for s in &case.setup {
            match s {
                Setup::Cmd { run, undo: u } => {
                    self.dut_sh(run)?;
                    undo.push(u.clone());
                }
                Setup::Sysctl { key, value } => {
                    let old = self.dut_sh(&format!("sysctl -n {key}"))?;
                    self.dut_sh(&format!("sysctl -qw {key}={value}"))?;
                    undo.push(format!("sysctl -qw {key}={}", old.trim()));
                }
            }
        }
        if !case.ipsets.is_empty() {
            let f = self.write(&case.ipsets)?;
            self.dut_sh(&format!("ipset restore -f {f}"))?;
        }
        if !case.warmup.is_empty() {
            self.restore(&case.warmup)?;
            let _ = self.send(&case.send, case.sport.unwrap_or(20000));
        }
        self.restore(&case.rules)
    }

    fn restore(&self, rules: &[Rules]) -> Result<(), String> {
        for r in rules {
            let f = self.write(&r.text)?;
            match r.loader {
                Loader::Restore(b) => {
                    self.dut_sh(&format!("{}-restore {f}", b.command(r.family)))?
                }
                Loader::Nft => self.dut_sh(&format!("nft -f {f}"))?,
            };
        }
        Ok(())
    }

    fn sender(&self, from: From) -> &Host {
        match from {
            From::Client => &self.lab.client,
            From::Dut => &self.lab.dut,
            From::Pod(i) => &self.lab.eps[i],
            From::Ext1 => &self.lab.ext1,
        }
    }

    /// The packet as the DUT sees it (arriving, or sent by the DUT).
    pub fn packet(&self, s: &Send, sport: u16) -> Result<Packet, String> {
        let v6 = s.dst.is_ipv6();
        let host = self.sender(s.from);
        let src = match (s.src, s.from) {
            (Some(a), _) => a,
            (None, From::Dut) if v6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            (None, From::Dut) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (None, _) if v6 => IpAddr::V6(host.ipv6().map_err(|e| e.to_string())?),
            (None, _) => IpAddr::V4(host.ipv4().map_err(|e| e.to_string())?),
        };
        let hdr: u16 = if v6 { 40 } else { 20 };
        let mut p = match s.proto {
            Proto::Tcp => Packet::tcp(src, s.dst, s.port).with_len(hdr + 40),
            Proto::SynAck => {
                let mut p = Packet::tcp(src, s.dst, s.port).with_len(hdr + 20);
                p.tcp_flags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
                p
            }
            Proto::Udp => Packet::udp(src, s.dst, s.port).with_len(hdr + 8 + s.payload as u16),
            Proto::Ping => Packet::ping(src, s.dst).with_len(hdr + 8 + 12),
        };
        if s.proto != Proto::Ping {
            p = p.with_sport(sport);
        }
        let iif = match s.from {
            From::Client => Some(self.lab.dut_if("net")),
            From::Dut => None,
            From::Pod(i) => Some(self.lab.dut_if(self.lab.eps[i].name())),
            From::Ext1 => Some(self.lab.dut_if("ext1")),
        };
        if let Some(i) = iif {
            p = p.arriving_on(i);
        }
        Ok(p)
    }

    fn send(&self, s: &Send, sport: u16) -> Observed {
        let host = self.sender(s.from);
        let mut opts = ConnOpts::new(self.timeout).src_port(sport);
        if let Some(a) = s.src {
            opts = opts.src_addr(a);
        }
        match s.proto {
            Proto::Tcp => classify(host.tcp_connect_with(s.dst, s.port, &opts)),
            Proto::Udp => {
                let payload = vec![b'x'; s.payload.max(1)];
                classify(host.udp_request_with(s.dst, s.port, &payload, &opts))
            }
            Proto::Ping => match host.ping(s.dst, self.timeout) {
                Ok(()) => Observed::EchoReply,
                Err(e) => classify_err(&e),
            },
            Proto::SynAck => {
                let src = s
                    .src
                    .or_else(|| host.ipv4().ok().map(IpAddr::V4))
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                let (dst, port, timeout) = (s.dst, s.port, self.timeout);
                host.run(move || probe::syn_ack(src, dst, sport, port, timeout))
                    .unwrap_or_else(|e| Observed::Other(e.to_string()))
            }
        }
    }

    /// Loads, captures and traces a case without sending anything.
    pub fn trace_case(&self, case: &Case) -> Result<(Trace, Vec<String>), (String, Vec<String>)> {
        let mut undo = Vec::new();
        if let Err(e) = self.reset().and_then(|()| self.load(case, &mut undo)) {
            return Err((format!("load: {e}"), undo));
        }
        let mut devs: Vec<String> = self.lab.dut.ifaces().into_iter().map(|i| i.name).collect();
        devs.push("lo".into());
        let cap = match capture(&self.lab.dut, &devs) {
            Ok(c) => c,
            Err(e) => return Err((e.to_string(), undo)),
        };
        let pkt = match self.packet(&case.send, case.sport.unwrap_or(self.sport.get())) {
            Ok(p) => p,
            Err(e) => return Err((e, undo)),
        };
        Ok((trace(&cap.node, &pkt), undo))
    }

    /// Runs one case.
    pub fn run(&self, case: &Case) -> Report {
        let start = Instant::now();
        let mut report = Report {
            name: case.name.clone(),
            ok: false,
            detail: String::new(),
            trace: String::new(),
            elapsed: Duration::ZERO,
        };
        let undo = match self.trace_case(case) {
            Ok((t, undo)) => {
                report.trace = t.to_string();
                report.detail = self.compare(case, &t);
                report.ok = report.detail.starts_with("ok");
                undo
            }
            Err((e, undo)) => {
                report.detail = e;
                undo
            }
        };
        for u in undo.iter().rev() {
            let _ = self.dut_sh(u);
        }
        report.elapsed = start.elapsed();
        report
    }

    fn compare(&self, case: &Case, t: &Trace) -> String {
        let kinds: BTreeSet<&str> = t.paths.iter().map(|p| p.verdict.kind()).collect();
        if !case.want.is_empty() {
            let want: BTreeSet<&str> = case.want.iter().copied().collect();
            if kinds != want {
                return format!("trace verdicts {kinds:?}, the case wants {want:?}");
            }
        }
        let local = case.send.from == From::Dut;
        let predicted = expect(self.lab, t, case.send.proto, local);
        let seen: Vec<Observed> = (0..case.send.repeats.max(1))
            .map(|_| {
                let sp = case.sport.unwrap_or_else(|| self.next_sport());
                self.send(&case.send, sp)
            })
            .collect();
        match agrees(&predicted, &seen) {
            Ok(()) => format!("ok: predicted {predicted:?}, seen {}", summary(&seen)),
            Err(why) => format!(
                "MISMATCH: {why}\n  predicted {predicted:?}\n  seen {}",
                summary(&seen)
            ),
        }
    }
}

fn summary(seen: &[Observed]) -> String {
    let mut counts: Vec<(Observed, usize)> = Vec::new();
    for o in seen {
        match counts.iter_mut().find(|(x, _)| x == o) {
            Some((_, n)) => *n += 1,
            None => counts.push((o.clone(), 1)),
        }
    }
    counts
        .iter()
        .map(|(o, n)| format!("{n}x {o:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
