//! The control socket (`bgpd show ...`): a unix socket, mode 0600, answering one JSON request
//! per connection with one JSON response, and the readable tables printed from them.
//!
//! ```text
//!   bgpd show neighbors ──{"command":"show_neighbors"}\n──> /run/bgpd.sock ──> speaker task
//!                       <──{"neighbors":[...]}\n───────────  (it owns the state; the server
//!   print as a table like `birdc show protocols`, or --json      only relays over a channel)
//! ```
//!
//! Only root (or the daemon's own user) may connect: the socket file is 0600 and the server
//! checks the peer's credentials (`SO_PEERCRED`) as well.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Largest request line accepted.
pub const MAX_REQUEST: usize = 4096;

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Sessions (`birdc show protocols`).
    ShowNeighbors,
    /// The Loc-RIB, or one prefix of it (`birdc show route [PREFIX] all`).
    ShowRoutes {
        /// Only this prefix (exact match).
        #[serde(default)]
        prefix: Option<IpNet>,
    },
    /// The running configuration, passwords redacted.
    ShowConfig,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// For [`Request::ShowNeighbors`].
    Neighbors(Vec<Neighbor>),
    /// For [`Request::ShowRoutes`].
    Routes(Routes),
    /// For [`Request::ShowConfig`]: the configuration as JSON.
    Config(serde_json::Value),
    /// The request failed.
    Error(String),
}

/// One peer, as `show neighbors` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbor {
    /// The peer's address.
    pub address: IpAddr,
    /// Its configured AS (a number, `internal` or `external`).
    pub asn: String,
    /// Description from the config.
    pub description: Option<String>,
    /// FSM state (RFC 4271 §8.2.2 names).
    pub state: String,
    /// Seconds since the state last changed (between Established and not).
    pub since_secs: u64,
    /// Its BGP Identifier, once known.
    pub router_id: Option<Ipv4Addr>,
    /// Negotiated hold time while Established.
    pub hold_time: Option<u16>,
    /// Families negotiated.
    pub families: Vec<String>,
    /// Prefixes the peer announced that are held (accepted) or filtered now.
    pub received: u64,
    /// Prefixes accepted by import policy (in the Adj-RIB-In).
    pub accepted: u64,
    /// Of those, kept as stale (graceful restart helper).
    pub stale: u64,
    /// Prefixes we advertise to it.
    pub advertised: u64,
    /// UPDATE messages received and sent.
    pub updates_received: u64,
    /// UPDATE messages sent.
    pub updates_sent: u64,
    /// TCP MD5 is configured.
    pub md5: bool,
    /// Graceful restart negotiated (both sides advertised it).
    pub graceful_restart: bool,
    /// The last reason a session or connection failed (or a key could not be set).
    pub last_error: Option<String>,
}

/// One path of a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathInfo {
    /// The peer it came from.
    pub peer: IpAddr,
    /// Next hop.
    pub next_hop: IpAddr,
    /// AS_PATH as text.
    pub as_path: String,
    /// ORIGIN.
    pub origin: String,
    /// MED.
    pub med: Option<u32>,
    /// LOCAL_PREF (effective).
    pub local_pref: u32,
    /// Communities.
    pub communities: Vec<String>,
    /// ORIGINATOR_ID, set by a route reflector (RFC 4456): the router that first announced
    /// the route into the AS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originator_id: Option<std::net::Ipv4Addr>,
    /// CLUSTER_LIST, the reflection clusters the route passed through (RFC 4456).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_list: Vec<std::net::Ipv4Addr>,
    /// Kept from before the peer's restart.
    pub stale: bool,
    /// The best path.
    pub best: bool,
    /// In the multipath set (installed next hops).
    pub multipath: bool,
}

/// One Loc-RIB entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// The prefix.
    pub prefix: IpNet,
    /// Paths, best first.
    pub paths: Vec<PathInfo>,
    /// Why the best path won (RFC 4271 §9.1.2.2 step).
    pub reason: String,
}

/// The routes answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// Learned routes (Loc-RIB).
    pub routes: Vec<RouteInfo>,
    /// Our own prefixes, with their source (`static`, `node`).
    pub own: Vec<OwnPrefix>,
}

/// A prefix we originate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnPrefix {
    /// The prefix.
    pub prefix: IpNet,
    /// `static` or `node`.
    pub source: String,
}

/// A request from a client with the way back.
pub type Query = (Request, oneshot::Sender<Response>);

/// Why the control socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Socket setup failed.
    #[error("control socket {path}: {what}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What was done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// Bind the control socket with mode 0600 (a stale socket file is replaced; anything else at
/// the path is left alone and reported).
pub fn bind(path: &Path) -> Result<UnixListener, ApiError> {
    let err = |what| {
        move |source| ApiError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(err("exists and is not a socket")(io::Error::from(
                io::ErrorKind::AlreadyExists,
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err("another bgpd answers on it")(io::Error::from(
                io::ErrorKind::AddrInUse,
            )));
        }
        std::fs::remove_file(path).map_err(err("remove the stale socket"))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err("create its directory"))?;
    }
    // no window with a wider mode: umask for the bind, chmod to be sure
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = l.map_err(err("bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(err("chmod 0600"))?;
    Ok(l)
}

/// Serve clients until the speaker is gone.
pub async fn serve(listener: UnixListener, queries: mpsc::Sender<Query>) {
    let me = nix::unistd::geteuid().as_raw();
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // e.g. out of file descriptors: do not spin
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let allowed = stream
            .peer_cred()
            .map(|c| c.uid() == 0 || c.uid() == me)
            .unwrap_or(false);
        let q = queries.clone();
        tokio::spawn(async move {
            if allowed {
                let _ = answer(stream, q).await;
            } else {
                let mut s = stream;
                let _ = s
                    .write_all(b"{\"error\":\"permission denied: root only\"}\n")
                    .await;
            }
        });
    }
}

async fn answer(stream: UnixStream, queries: mpsc::Sender<Query>) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut rd = BufReader::new(rd).take(MAX_REQUEST as u64);
    // a client that never finishes its line does not hold a task forever
    tokio::time::timeout(std::time::Duration::from_secs(10), rd.read_line(&mut line))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let resp = match serde_json::from_str::<Request>(line.trim()) {
        Ok(req) => {
            let (tx, rx) = oneshot::channel();
            if queries.send((req, tx)).await.is_err() {
                Response::Error("bgpd is shutting down".into())
            } else {
                rx.await
                    .unwrap_or_else(|_| Response::Error("bgpd is shutting down".into()))
            }
        }
        Err(e) => Response::Error(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&resp).map_err(io::Error::other)?;
    out.push(b'\n');
    wr.write_all(&out).await?;
    wr.shutdown().await
}

/// Send one request and read the response (blocking; for the CLI).
pub fn query(path: &Path, req: &Request) -> io::Result<Response> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut resp = String::new();
    std::io::BufReader::new(s).read_line(&mut resp)?;
    serde_json::from_str(&resp).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad response {resp:?}: {e}"),
        )
    })
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m{}s", s / 60, s % 60),
        s if s < 172_800 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// `show neighbors` as a table (like `birdc show protocols`).
pub fn neighbors_table(n: &[Neighbor]) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "Peer".into(),
        "AS".into(),
        "State".into(),
        "Since".into(),
        "Rcvd/Acc/Adv".into(),
        "Info".into(),
        String::new(),
    ]];
    for x in n {
        let mut info = String::new();
        if x.md5 {
            info.push_str("md5 ");
        }
        if x.graceful_restart {
            info.push_str("gr ");
        }
        if x.stale > 0 {
            let _ = write!(info, "{} stale ", x.stale);
        }
        if let Some(d) = &x.description {
            let _ = write!(info, "\"{d}\" ");
        }
        rows.push([
            x.address.to_string(),
            x.asn.clone(),
            x.state.clone(),
            ago(x.since_secs),
            format!("{}/{}/{}", x.received, x.accepted, x.advertised),
            info.trim_end().to_string(),
            x.last_error
                .as_ref()
                .map(|e| format!("last error: {e}"))
                .unwrap_or_default(),
        ]);
    }
    table(&rows)
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut w = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<width$}  ", width = w[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `show routes` as text (like `birdc show route all`).
pub fn routes_text(r: &Routes) -> String {
    let mut out = String::new();
    for o in &r.own {
        let _ = writeln!(out, "{:<24} local ({})", o.prefix.to_string(), o.source);
    }
    for route in &r.routes {
        for (i, p) in route.paths.iter().enumerate() {
            let prefix = if i == 0 {
                route.prefix.to_string()
            } else {
                String::new()
            };
            let mark = match (p.best, p.multipath) {
                (true, _) => "*",
                (false, true) => "+",
                _ => " ",
            };
            let _ = write!(
                out,
                "{prefix:<24} {mark} via {} from {} as-path [{}] origin {} local-pref {}",
                p.next_hop, p.peer, p.as_path, p.origin, p.local_pref
            );
            if let Some(m) = p.med {
                let _ = write!(out, " med {m}");
            }
            if !p.communities.is_empty() {
                let _ = write!(out, " communities {}", p.communities.join(" "));
            }
            if let Some(o) = p.originator_id {
                let _ = write!(out, " originator {o}");
            }
            if !p.cluster_list.is_empty() {
                let l: Vec<String> = p.cluster_list.iter().map(|c| c.to_string()).collect();
                let _ = write!(out, " cluster-list [{}]", l.join(" "));
            }
            if p.stale {
                out.push_str(" (stale)");
            }
            out.push('\n');
        }
        let _ = writeln!(out, "{:<24}   best path: {}", "", route.reason);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neighbor() -> Neighbor {
        Neighbor {
            address: "198.18.0.1".parse().unwrap(),
            asn: "65000".into(),
            description: Some("tor1".into()),
            state: "Established".into(),
            since_secs: 75,
            router_id: Some("198.18.0.1".parse().unwrap()),
            hold_time: Some(9),
            families: vec!["ipv4 unicast".into()],
            received: 3,
            accepted: 2,
            stale: 0,
            advertised: 2,
            updates_received: 4,
            updates_sent: 2,
            md5: true,
            graceful_restart: true,
            last_error: None,
        }
    }

    #[test]
    fn requests_and_responses_have_a_stable_json_form() {
        assert_eq!(
            serde_json::to_string(&Request::ShowNeighbors).unwrap(),
            r#"{"command":"show_neighbors"}"#
        );
        let r: Request =
            serde_json::from_str(r#"{"command":"show_routes","prefix":"198.18.66.0/24"}"#).unwrap();
        assert_eq!(
            r,
            Request::ShowRoutes {
                prefix: Some("198.18.66.0/24".parse().unwrap())
            }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"command":"show_routes"}"#).unwrap(),
            Request::ShowRoutes { prefix: None }
        );
        assert!(serde_json::from_str::<Request>(r#"{"command":"reboot"}"#).is_err());
        let resp = Response::Neighbors(vec![neighbor()]);
        let text = serde_json::to_string(&resp).unwrap();
        assert!(text.starts_with(r#"{"neighbors":[{"address":"198.18.0.1","asn":"65000""#));
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), resp);
    }

    #[test]
    fn the_neighbor_table_reads_like_birdc() {
        let mut down = neighbor();
        down.address = "198.18.0.2".parse().unwrap();
        down.state = "Active".into();
        down.md5 = false;
        down.graceful_restart = false;
        down.description = None;
        down.last_error = Some("hold timer expired (RFC 4271 §6.5)".into());
        down.since_secs = 4000;
        let t = neighbors_table(&[neighbor(), down]);
        assert_eq!(
            t,
            "Peer        AS     State        Since   Rcvd/Acc/Adv  Info\n\
             198.18.0.1  65000  Established  75s     3/2/2         md5 gr \"tor1\"\n\
             198.18.0.2  65000  Active       66m40s  3/2/2                        \
             last error: hold timer expired (RFC 4271 §6.5)\n"
        );
    }

    #[tokio::test]
    async fn the_socket_is_0600_and_answers_one_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/bgpd.sock");
        let l = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (tx, mut rx) = mpsc::channel::<Query>(1);
        tokio::spawn(serve(l, tx));
        tokio::spawn(async move {
            while let Some((req, back)) = rx.recv().await {
                let _ = back.send(match req {
                    Request::ShowNeighbors => Response::Neighbors(vec![neighbor()]),
                    _ => Response::Error("no".into()),
                });
            }
        });
        let p = path.clone();
        let resp = tokio::task::spawn_blocking(move || query(&p, &Request::ShowNeighbors))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp, Response::Neighbors(vec![neighbor()]));
        // a second daemon cannot take the socket over
        assert!(bind(&path).is_err());
        // garbage gets an error, not a hang
        let p = path.clone();
        let resp = tokio::task::spawn_blocking(move || {
            use std::io::{BufRead, Write};
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            s.write_all(b"hello\n").unwrap();
            let mut line = String::new();
            std::io::BufReader::new(s).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        assert!(resp.starts_with(r#"{"error":"bad request"#), "{resp}");
    }
}
