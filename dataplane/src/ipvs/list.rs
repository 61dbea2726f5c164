//! `ipvsadm -Ln` listings (plain, `--stats`, `--rate`, `--thresholds`, `--persistent-conn`,
//! `--tun-info`): the counters and connection counts the save format leaves out.
//!
//! ```text
//!   IP Virtual Server version 1.2.1 (size=4096)
//!   Prot LocalAddress:Port Scheduler Flags                                  <- columns of
//!     -> RemoteAddress:Port           Forward Weight ActiveConn InActConn   <- the listing
//!   TCP  198.19.0.10:80 rr persistent 60                -> ListedService { key, scheduler, .. }
//!     -> 198.18.64.2:8080             Masq    1      0          2  -> ListedServer { active, .. }
//!        | Listing::parse(text)
//!        v
//!   IpvsState::merge_listing(&listing): conns / counters / rates onto the saved table
//! ```
//! Columns are read by their header names, so every listing kind shares one reader. Large
//! numbers without `--exact` carry a K/M/G/T suffix (powers of 1000): they are scaled and the
//! listing is marked approximate.

use std::net::IpAddr;

use super::model::{
    ConnCounts, Counters, Forward, IpvsState, Netmask, Persistence, Rates, SchedFlags, Scheduler,
    ServiceKey,
};
use super::save::{IpvsError, parse_sockaddr};
use crate::packet::{Family, Protocol};

/// One real server line of a listing; each field is `Some` when the listing has its column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedServer {
    /// Address.
    pub addr: Option<IpAddr>,
    /// Port.
    pub port: u16,
    /// 1-based line number.
    pub line: usize,
    /// `Forward`.
    pub forward: Option<Forward>,
    /// `Weight`.
    pub weight: Option<i32>,
    /// `ActiveConn`.
    pub active: Option<u32>,
    /// `InActConn`.
    pub inactive: Option<u32>,
    /// `PersistConn`.
    pub persistent: Option<u32>,
    /// `Uthreshold`.
    pub u_threshold: Option<u32>,
    /// `Lthreshold`.
    pub l_threshold: Option<u32>,
    /// `TunnelInfo` as printed (`gue:6080:+c`, `ipip`, `n/a`).
    pub tunnel_info: Option<String>,
    /// `Conns InPkts OutPkts InBytes OutBytes`.
    pub counters: Option<Counters>,
    /// `CPS InPPS OutPPS InBPS OutBPS`.
    pub rates: Option<Rates>,
}

/// One service of a listing with its servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedService {
    /// The service.
    pub key: ServiceKey,
    /// 1-based line number.
    pub line: usize,
    /// Scheduler (listings with a `Scheduler Flags` column).
    pub scheduler: Option<Scheduler>,
    /// Scheduler flags, `(sh-fallback,sh-port)`.
    pub sched_flags: SchedFlags,
    /// `persistent N [mask M]`.
    pub persistence: Option<Persistence>,
    /// `pe NAME`.
    pub pe_name: Option<String>,
    /// `ops`.
    pub one_packet: bool,
    /// `--stats` columns.
    pub counters: Option<Counters>,
    /// `--rate` columns.
    pub rates: Option<Rates>,
    /// Real servers.
    pub servers: Vec<ListedServer>,
}

/// A parsed `ipvsadm -Ln [--stats|--rate|--thresholds|--persistent-conn|--tun-info]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// `IP Virtual Server version 1.2.1 (size=4096)`.
    pub version: Option<String>,
    /// Column names of service lines after `Prot LocalAddress:Port`.
    pub service_columns: Vec<String>,
    /// Column names of real server lines after `-> RemoteAddress:Port`.
    pub server_columns: Vec<String>,
    /// Services in the order listed.
    pub services: Vec<ListedService>,
    /// Whether some number was abbreviated (K/M/G/T without `--exact`).
    pub approximate: bool,
}

fn syntax(line: usize, found: &str, expected: &str) -> IpvsError {
    IpvsError::Syntax {
        line,
        found: if found.is_empty() {
            "end of line".into()
        } else {
            found.to_string()
        },
        expected: expected.to_string(),
    }
}

/// Reads `12345`, or `1234K` (x1000), `M`, `G`, `T`; the flag says a suffix was seen.
fn number(s: &str) -> Option<(u64, bool)> {
    let (digits, scale) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1_000),
        b'M' => (&s[..s.len() - 1], 1_000_000),
        b'G' => (&s[..s.len() - 1], 1_000_000_000),
        b'T' => (&s[..s.len() - 1], 1_000_000_000_000),
        _ => (s, 1),
    };
    let n: u64 = digits.parse().ok()?;
    Some((n.checked_mul(scale)?, scale != 1))
}

impl Listing {
    /// Parses a listing; lines after the column headers are services (`TCP  ADDR:PORT ...`,
    /// `FWM  MARK [IPv6] ...`) and their servers (`  -> ADDR:PORT ...`).
    pub fn parse(text: &str) -> Result<Listing, IpvsError> {
        let mut out = Listing::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if t.starts_with("IP Virtual Server") {
                out.version = Some(t.to_string());
                continue;
            }
            let words: Vec<&str> = t.split_whitespace().collect();
            if words[0] == "Prot" {
                out.service_columns = words.iter().skip(2).map(|s| s.to_string()).collect();
                continue;
            }
            if words[0] == "->" {
                if words.get(1) == Some(&"RemoteAddress:Port") {
                    out.server_columns = words.iter().skip(2).map(|s| s.to_string()).collect();
                    if out.server_columns.is_empty() {
                        // --stats / --rate / --thresholds / --persistent-conn: the service
                        // header's columns apply to both
                        out.server_columns = out.service_columns.clone();
                    }
                    continue;
                }
                if out.services.is_empty() {
                    return Err(syntax(line, t, "a service line before its real servers"));
                }
                let server = out.server_line(line, &words)?;
                if let Some(svc) = out.services.last_mut() {
                    svc.servers.push(server);
                }
                continue;
            }
            let svc = out.service_line(line, &words)?;
            out.services.push(svc);
        }
        Ok(out)
    }

    fn service_line(&mut self, line: usize, words: &[&str]) -> Result<ListedService, IpvsError> {
        let mut w = words.iter().copied();
        let proto = w.next().unwrap_or_default();
        let second = w.next().unwrap_or_default();
        let key = match proto {
            "FWM" => {
                let mark = second
                    .parse()
                    .map_err(|_| syntax(line, second, "a firewall mark"))?;
                let mut rest: Vec<&str> = w.collect();
                let family = if rest.first() == Some(&"IPv6") {
                    rest.remove(0);
                    Family::V6
                } else {
                    Family::V4
                };
                return self.service_rest(line, ServiceKey::Fwmark { family, mark }, &rest);
            }
            "TCP" | "UDP" | "SCTP" => {
                let (addr, port) = parse_sockaddr(second, 0)
                    .ok_or_else(|| syntax(line, second, "a service address ADDR:PORT"))?;
                let proto = match proto {
                    "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                ServiceKey::Addr { proto, addr, port }
            }
            other => return Err(syntax(line, other, "TCP, UDP, SCTP or FWM")),
        };
        let rest: Vec<&str> = w.collect();
        self.service_rest(line, key, &rest)
    }

    fn service_rest(
        &mut self,
        line: usize,
        key: ServiceKey,
        rest: &[&str],
    ) -> Result<ListedService, IpvsError> {
        let mut svc = ListedService {
            key,
            line,
            scheduler: None,
            sched_flags: SchedFlags::NONE,
            persistence: None,
            pe_name: None,
            one_packet: false,
            counters: None,
            rates: None,
            servers: Vec::new(),
        };
        // --stats and --rate print numbers on service lines; the others the scheduler and
        // its flags
        let numeric = matches!(
            self.service_columns.first().map(String::as_str),
            Some("Conns" | "CPS")
        );
        if numeric {
            let cols = self.service_columns.clone();
            let mut server = ListedServer::default();
            self.columns(line, &cols, rest, &mut server)?;
            svc.counters = server.counters;
            svc.rates = server.rates;
            return Ok(svc);
        }
        let family = svc.key.family();
        let mut w = rest.iter().copied();
        let sched = w
            .next()
            .ok_or_else(|| syntax(line, "", "a scheduler name"))?;
        svc.scheduler = Some(Scheduler::parse(sched));
        while let Some(word) = w.next() {
            match word {
                "persistent" => {
                    let t = w.next().unwrap_or_default();
                    svc.persistence = Some(Persistence {
                        timeout: t
                            .parse()
                            .map_err(|_| syntax(line, t, "a persistence timeout"))?,
                        netmask: Netmask::host(family),
                    });
                }
                "mask" => {
                    let m = w.next().unwrap_or_default();
                    let netmask = match family {
                        Family::V4 => m.parse().ok().map(Netmask::V4),
                        Family::V6 => m.parse().ok().map(Netmask::V6),
                    }
                    .ok_or_else(|| syntax(line, m, "a netmask"))?;
                    let p = svc
                        .persistence
                        .as_mut()
                        .ok_or_else(|| syntax(line, "mask", "mask after persistent"))?;
                    p.netmask = netmask;
                }
                "pe" => svc.pe_name = Some(w.next().unwrap_or_default().to_string()),
                "ops" => svc.one_packet = true,
                flags if flags.starts_with('(') && flags.ends_with(')') => {
                    for name in flags[1..flags.len() - 1].split(',') {
                        svc.sched_flags.0 |= SchedFlags::bit(name)
                            .ok_or_else(|| syntax(line, name, "a scheduler flag"))?;
                    }
                }
                other => return Err(syntax(line, other, "persistent, mask, pe, ops or (flags)")),
            }
        }
        Ok(svc)
    }

    fn server_line(&mut self, line: usize, words: &[&str]) -> Result<ListedServer, IpvsError> {
        let a = words.get(1).copied().unwrap_or_default();
        let (addr, port) =
            parse_sockaddr(a, 0).ok_or_else(|| syntax(line, a, "a real server ADDR:PORT"))?;
        let mut server = ListedServer {
            addr: Some(addr),
            port,
            line,
            ..ListedServer::default()
        };
        let cols = self.server_columns.clone();
        self.columns(line, &cols, &words[2..], &mut server)?;
        Ok(server)
    }

    /// Reads `values` by column name into `s`.
    fn columns(
        &mut self,
        line: usize,
        cols: &[String],
        values: &[&str],
        s: &mut ListedServer,
    ) -> Result<(), IpvsError> {
        if values.len() != cols.len() {
            let found = values.join(" ");
            return Err(syntax(
                line,
                &found,
                &format!("{} values ({})", cols.len(), cols.join(" ")),
            ));
        }
        for (col, v) in cols.iter().zip(values) {
            let num = |what: &str| -> Result<(u64, bool), IpvsError> {
                number(v).ok_or_else(|| syntax(line, v, &format!("a number ({what})")))
            };
            let small = |what: &str| -> Result<u32, IpvsError> {
                v.parse()
                    .map_err(|_| syntax(line, v, &format!("a number ({what})")))
            };
            match col.as_str() {
                "Forward" => {
                    s.forward =
                        Some(Forward::from_label(v).ok_or_else(|| {
                            syntax(line, v, "Masq, Local, Tunnel, Route or Bypass")
                        })?)
                }
                "Weight" => {
                    s.weight = Some(
                        v.parse()
                            .map_err(|_| syntax(line, v, "a number (Weight)"))?,
                    )
                }
                "ActiveConn" => s.active = Some(small(col)?),
                "InActConn" => s.inactive = Some(small(col)?),
                "PersistConn" => s.persistent = Some(small(col)?),
                "Uthreshold" => s.u_threshold = Some(small(col)?),
                "Lthreshold" => s.l_threshold = Some(small(col)?),
                "TunnelInfo" => s.tunnel_info = Some(v.to_string()),
                "Conns" | "InPkts" | "OutPkts" | "InBytes" | "OutBytes" => {
                    let (n, approx) = num(col)?;
                    self.approximate |= approx;
                    let c = s.counters.get_or_insert_with(Counters::default);
                    *match col.as_str() {
                        "Conns" => &mut c.conns,
                        "InPkts" => &mut c.in_pkts,
                        "OutPkts" => &mut c.out_pkts,
                        "InBytes" => &mut c.in_bytes,
                        _ => &mut c.out_bytes,
                    } = n;
                }
                "CPS" | "InPPS" | "OutPPS" | "InBPS" | "OutBPS" => {
                    let (n, approx) = num(col)?;
                    self.approximate |= approx;
                    let r = s.rates.get_or_insert_with(Rates::default);
                    *match col.as_str() {
                        "CPS" => &mut r.cps,
                        "InPPS" => &mut r.in_pps,
                        "OutPPS" => &mut r.out_pps,
                        "InBPS" => &mut r.in_bps,
                        _ => &mut r.out_bps,
                    } = n;
                }
                other => {
                    return Err(syntax(line, other, "a column ipvsadm -L prints"));
                }
            }
        }
        Ok(())
    }
}

impl IpvsState {
    /// Copies what a listing knows (connection counts, counters, rates) onto the matching
    /// services and real servers; returns what the listing has that the table does not
    /// (`TCP 198.19.0.10:80`, `TCP 198.19.0.10:80 -> 198.18.64.9:8080`).
    pub fn merge_listing(&mut self, listing: &Listing) -> Vec<String> {
        let mut unmatched = Vec::new();
        for ls in &listing.services {
            let Some(svc) = self.service_mut(&ls.key) else {
                unmatched.push(ls.key.to_string());
                continue;
            };
            if ls.counters.is_some() {
                svc.counters = ls.counters;
            }
            if ls.rates.is_some() {
                svc.rates = ls.rates;
            }
            for lr in &ls.servers {
                let Some(addr) = lr.addr else { continue };
                let Some(rs) = svc
                    .servers
                    .iter_mut()
                    .find(|r| r.addr == addr && r.port == lr.port)
                else {
                    unmatched.push(format!(
                        "{} -> {}",
                        ls.key,
                        super::model::SockAddr(addr, lr.port)
                    ));
                    continue;
                };
                if let (Some(active), Some(inactive)) = (lr.active, lr.inactive) {
                    let persistent = lr
                        .persistent
                        .or_else(|| rs.conns.and_then(|c| c.persistent));
                    rs.conns = Some(ConnCounts {
                        active,
                        inactive,
                        persistent,
                    });
                } else if let (Some(p), Some(c)) = (lr.persistent, rs.conns.as_mut()) {
                    c.persistent = Some(p);
                }
                if lr.counters.is_some() {
                    rs.counters = lr.counters;
                }
                if lr.rates.is_some() {
                    rs.rates = lr.rates;
                }
            }
        }
        unmatched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviated_numbers_scale_by_thousands() {
        assert_eq!(number("123"), Some((123, false)));
        assert_eq!(number("123K"), Some((123_000, true)));
        assert_eq!(number("7G"), Some((7_000_000_000, true)));
        assert_eq!(number("K"), None);
        assert_eq!(number("-1"), None);
    }

    #[test]
    fn errors_name_line_and_columns() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
                    Prot LocalAddress:Port Scheduler Flags\n\
                    \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
                    TCP  198.19.0.10:80 rr\n\
                    \x20 -> 198.18.64.2:8080             Masq    1      0\n";
        assert_eq!(
            Listing::parse(text).unwrap_err().to_string(),
            "line 5: expected 4 values (Forward Weight ActiveConn InActConn), found `Masq 1 0`"
        );
        let text = "Prot LocalAddress:Port Scheduler Flags\nICMP 198.19.0.10:80 rr\n";
        assert_eq!(
            Listing::parse(text).unwrap_err().to_string(),
            "line 2: expected TCP, UDP, SCTP or FWM, found `ICMP`"
        );
        let text = "Prot LocalAddress:Port Scheduler Flags\n  -> 198.18.64.2:80 Masq 1 0 0\n";
        assert!(
            Listing::parse(text)
                .unwrap_err()
                .to_string()
                .contains("a service line before its real servers")
        );
    }
}
