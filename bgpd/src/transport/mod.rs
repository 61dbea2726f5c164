//! TCP for BGP sessions: listeners, outgoing connections, and one task per connection that
//! frames and decodes what arrives and writes what the speaker sends.
//!
//! ```text
//!   Listener::spawn_accept ──Accepted { stream, remote, local }──> speaker (matches the peer)
//!   spawn_outgoing(params) ─ connect (MD5 key, TTL, GTSM set first) ─┐
//!   spawn_incoming(stream) ─ TTL, GTSM ───────────────────────────────┤
//!                                                                    v
//!     reader: bytes ─message_len─ frame ─Message::decode(cx)─ Event ──FromConn::Event──> speaker
//!     writer: <──ToConn::Send { bytes, open } ── speaker; ToConn::Close: flush, FIN, done
//! ```
//!
//! The decode context (4-octet AS, ADD-PATH, ...) follows from the two OPENs
//! ([`crate::wire::negotiate`]): the writer publishes ours before writing it, the reader sees
//! the peer's, so an UPDATE is never decoded with the context of before the OPEN exchange.
//! Reading and writing are separate tasks, so a peer that does not read cannot stop us from
//! reading (and the other way round).
//!
//! TCP MD5 fails closed (RFC 2385 and complaint C of the reference notes): when the key cannot
//! be set on the socket, the connection attempt fails with that error instead of going on
//! unsigned.

pub mod sockopt;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::config::Secret;
use crate::session::{ConnId, Event};
use crate::wire::{DecodeCx, MAX_MESSAGE_LEN, Message, Open, message_len, negotiate};

/// A connection of a peer: the peer's address, which configuration of the peer it belongs
/// to (a peer removed and added again starts its connection ids anew), and the FSM's
/// connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// The peer.
    pub peer: IpAddr,
    /// The peer's incarnation in the speaker.
    pub epoch: u64,
    /// The connection.
    pub conn: ConnId,
}

/// From the speaker to a connection.
#[derive(Debug)]
pub enum ToConn {
    /// Write these bytes; `open` is set when they are our OPEN (for the decode context).
    Send {
        /// An encoded message.
        bytes: Bytes,
        /// The OPEN it encodes, if it is one.
        open: Option<Box<Open>>,
    },
    /// Write what is queued, close our side and stop.
    Close,
}

/// From a connection to the speaker.
#[derive(Debug)]
pub enum FromConn {
    /// Our connection attempt succeeded (RFC 4271 event 16 Tcp_CR_Acked).
    Connected {
        /// The connection.
        key: ConnKey,
        /// Our address on it.
        local: SocketAddr,
    },
    /// Our connection attempt failed (event 18).
    ConnectFailed {
        /// The connection.
        key: ConnKey,
        /// Why, for `show neighbors`.
        error: String,
    },
    /// A message arrived (or could not be decoded): its FSM event.
    Event {
        /// The connection.
        key: ConnKey,
        /// The event.
        event: Event,
    },
    /// The connection closed or failed (event 18).
    Closed {
        /// The connection.
        key: ConnKey,
        /// Why, when it was an error.
        error: Option<String>,
    },
}

impl FromConn {
    /// The connection it is about.
    pub fn key(&self) -> ConnKey {
        match self {
            Self::Connected { key, .. }
            | Self::ConnectFailed { key, .. }
            | Self::Event { key, .. }
            | Self::Closed { key, .. } => *key,
        }
    }
}

/// A connection accepted by a listener, not yet matched to a peer.
#[derive(Debug)]
pub struct Accepted {
    /// The stream.
    pub stream: TcpStream,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// Our address and port.
    pub local: SocketAddr,
}

/// Per-peer socket settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketOpts {
    /// TCP MD5 key (RFC 2385).
    pub md5: Option<Secret>,
    /// TTL of our packets (`None`: the system default).
    pub ttl: Option<u8>,
    /// GTSM: drop packets with a TTL below this (RFC 5082).
    pub min_ttl: Option<u8>,
}

/// Why a socket could not be prepared or connected.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The MD5 key could not be set: no connection is made (fail closed).
    #[error("cannot set the TCP MD5 key for {peer} (RFC 2385), not connecting: {source}")]
    Md5 {
        /// The peer.
        peer: IpAddr,
        /// The kernel's answer.
        source: nix::Error,
    },
    /// GTSM or TTL could not be set.
    #[error("cannot set {what} for {peer}: {source}")]
    Ttl {
        /// `IP_TTL`, `IP_MINTTL`, ...
        what: &'static str,
        /// The peer.
        peer: IpAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Socket, bind or connect failed.
    #[error("{what} {addr}: {source}")]
    Io {
        /// What was done.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error(
        "connect to {addr}: no answer within {ms} ms{hint}",
        ms = after.as_millis()
    )]
    Timeout {
        /// The peer's address.
        addr: SocketAddr,
        /// How long we waited.
        after: Duration,
        /// A hint (MD5 mismatches drop SYNs silently).
        hint: &'static str,
    },
}

fn apply_ttl<F: std::os::fd::AsFd>(
    fd: &F,
    peer: IpAddr,
    opts: &SocketOpts,
) -> Result<(), TransportError> {
    let v6 = peer.is_ipv6();
    let sock = socket2::SockRef::from(fd);
    if let Some(ttl) = opts.ttl {
        sockopt::set_ttl(&sock, v6, ttl).map_err(|source| TransportError::Ttl {
            what: if v6 { "IPV6_UNICAST_HOPS" } else { "IP_TTL" },
            peer,
            source,
        })?;
    }
    if let Some(min) = opts.min_ttl {
        sockopt::set_min_ttl(fd, v6, min).map_err(|e| TransportError::Ttl {
            what: if v6 { "IPV6_MINHOPCOUNT" } else { "IP_MINTTL" },
            peer,
            source: std::io::Error::from(e),
        })?;
    }
    Ok(())
}

/// A listening socket. MD5 keys of peers are set on it ([`Listener::set_md5`]): the kernel
/// then answers SYNs from those peers only when they are signed with the key.
#[derive(Debug, Clone)]
pub struct Listener {
    addr: SocketAddr,
    sock: Arc<TcpListener>,
}

impl Listener {
    /// Bind and listen (SO_REUSEADDR; IPv6 sockets are IPv6-only, so `0.0.0.0` and `::` can
    /// both be listened on and each holds its family's keys).
    pub fn bind(addr: SocketAddr) -> Result<Self, TransportError> {
        let io = |what| move |source| TransportError::Io { what, addr, source };
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .map_err(io("socket for"))?;
        s.set_reuse_address(true).map_err(io("SO_REUSEADDR on"))?;
        if addr.is_ipv6() {
            s.set_only_v6(true).map_err(io("IPV6_V6ONLY on"))?;
        }
        s.set_nonblocking(true).map_err(io("O_NONBLOCK on"))?;
        s.bind(&addr.into()).map_err(io("bind"))?;
        s.listen(128).map_err(io("listen on"))?;
        let std: std::net::TcpListener = s.into();
        let sock = TcpListener::from_std(std).map_err(io("register"))?;
        let addr = sock.local_addr().unwrap_or(addr);
        Ok(Self {
            addr,
            sock: Arc::new(sock),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether `peer` can connect to this listener (same family).
    pub fn serves(&self, peer: IpAddr) -> bool {
        self.addr.is_ipv6() == peer.is_ipv6()
    }

    /// Set (`Some`) or remove (`None`) the MD5 key of `peer` on the listening socket.
    pub fn set_md5(&self, peer: IpAddr, key: Option<&Secret>) -> Result<(), TransportError> {
        let k = key.map(Secret::expose).unwrap_or(&[]);
        sockopt::set_md5_key(self.sock.as_ref(), peer, k)
            .map_err(|source| TransportError::Md5 { peer, source })
    }

    /// Accept connections until the receiver is gone; each goes to `tx`.
    pub fn spawn_accept(&self, tx: mpsc::Sender<Accepted>) -> tokio::task::JoinHandle<()> {
        let sock = Arc::clone(&self.sock);
        let addr = self.addr;
        tokio::spawn(async move {
            loop {
                match sock.accept().await {
                    Ok((stream, remote)) => {
                        let local = stream.local_addr().unwrap_or(addr);
                        if tx
                            .send(Accepted {
                                stream,
                                remote,
                                local,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(listen = %addr, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    }
}

/// How to reach a peer.
#[derive(Debug, Clone)]
pub struct ConnectParams {
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// Our source address.
    pub local: Option<IpAddr>,
    /// MD5, TTL, GTSM.
    pub opts: SocketOpts,
    /// Give up after this long.
    pub timeout: Duration,
}

/// Prepare a socket (MD5 key, TTL, GTSM, source address: all before the SYN) and connect.
pub async fn connect(p: &ConnectParams) -> Result<TcpStream, TransportError> {
    let addr = p.remote;
    let peer = addr.ip();
    let io = |what| move |source| TransportError::Io { what, addr, source };
    let sock = if addr.is_ipv6() {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(io("socket for"))?;
    if let Some(key) = &p.opts.md5 {
        sockopt::set_md5_key(&sock, peer, key.expose())
            .map_err(|source| TransportError::Md5 { peer, source })?;
    }
    apply_ttl(&sock, peer, &p.opts)?;
    if let Some(local) = p.local {
        sock.bind(SocketAddr::new(local, 0))
            .map_err(io("bind a source address for"))?;
    }
    match tokio::time::timeout(p.timeout, sock.connect(addr)).await {
        Ok(r) => {
            let s = r.map_err(io("connect to"))?;
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Err(_) => Err(TransportError::Timeout {
            addr,
            after: p.timeout,
            hint: if p.opts.md5.is_some() {
                " (with TCP MD5 a wrong or missing password on either side drops SYNs silently)"
            } else {
                ""
            },
        }),
    }
}

/// Start an outgoing connection: connect, report `Connected` or `ConnectFailed`, then run.
/// Dropping the returned sender (or sending `Close`) abandons the attempt.
pub fn spawn_outgoing(
    key: ConnKey,
    params: ConnectParams,
    events: mpsc::Sender<FromConn>,
) -> mpsc::UnboundedSender<ToConn> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let stream = tokio::select! {
            r = connect(&params) => r,
            // the speaker dropped the connection (ConnectRetryTimer, stop): give up
            _ = wait_close(&mut rx) => return,
        };
        match stream {
            Ok(stream) => {
                let local = stream.local_addr().unwrap_or(params.remote);
                if events
                    .send(FromConn::Connected { key, local })
                    .await
                    .is_err()
                {
                    return;
                }
                run(key, stream, rx, events).await;
            }
            Err(e) => {
                let _ = events
                    .send(FromConn::ConnectFailed {
                        key,
                        error: e.to_string(),
                    })
                    .await;
            }
        }
    });
    tx
}

/// Wait until the speaker closes the connection; messages queued before that are dropped
/// (none are sent before the connection is up).
async fn wait_close(rx: &mut mpsc::UnboundedReceiver<ToConn>) {
    loop {
        match rx.recv().await {
            None | Some(ToConn::Close) => return,
            Some(ToConn::Send { .. }) => {}
        }
    }
}

/// Run an accepted connection (TTL and GTSM set first; a failure closes it at once).
pub fn spawn_incoming(
    key: ConnKey,
    stream: TcpStream,
    opts: &SocketOpts,
    events: mpsc::Sender<FromConn>,
) -> mpsc::UnboundedSender<ToConn> {
    let (tx, rx) = mpsc::unbounded_channel();
    let prepared = apply_ttl(&stream, key.peer, opts);
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        if let Err(e) = prepared {
            let _ = events
                .send(FromConn::Closed {
                    key,
                    error: Some(e.to_string()),
                })
                .await;
            return;
        }
        run(key, stream, rx, events).await;
    });
    tx
}

async fn run(
    key: ConnKey,
    stream: TcpStream,
    mut rx: mpsc::UnboundedReceiver<ToConn>,
    events: mpsc::Sender<FromConn>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (open_tx, open_rx) = watch::channel::<Option<Box<Open>>>(None);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let writer = async move {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                ToConn::Send { bytes, open } => {
                    if let Some(o) = open {
                        open_tx.send_replace(Some(o));
                    }
                    if wr.write_all(&bytes).await.is_err() {
                        break; // the reader sees the failure too
                    }
                }
                ToConn::Close => break,
            }
        }
        let _ = wr.shutdown().await;
        let _ = stop_tx.send(true);
    };
    let ev = events.clone();
    let reader = async move {
        let mut reader = Reader::new(open_rx);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            let n = tokio::select! {
                r = rd.read_buf(&mut buf) => r,
                _ = stop_rx.changed() => return,
            };
            let error = match n {
                Ok(0) => None,
                Ok(_) => match reader.drain(&mut buf, key, &ev).await {
                    Ok(()) => continue,
                    Err(Stop::Speaker) => return,
                    Err(Stop::Framing) => {
                        // the FSM sends the NOTIFICATION and closes; read no further
                        let _ = stop_rx.changed().await;
                        return;
                    }
                },
                Err(e) => Some(e.to_string()),
            };
            let _ = ev.send(FromConn::Closed { key, error }).await;
            return;
        }
    };
    tokio::join!(writer, reader);
}

enum Stop {
    /// The speaker is gone.
    Speaker,
    /// The byte stream cannot be framed any more.
    Framing,
}

/// Framing and decoding state of one connection.
struct Reader {
    local: watch::Receiver<Option<Box<Open>>>,
    remote: Option<Open>,
    cx: Option<DecodeCx>,
}

impl Reader {
    fn new(local: watch::Receiver<Option<Box<Open>>>) -> Self {
        Self {
            local,
            remote: None,
            cx: None,
        }
    }

    /// The negotiated decode context once both OPENs are known (default until then).
    fn cx(&mut self) -> DecodeCx {
        if let Some(cx) = &self.cx {
            return cx.clone();
        }
        let local = self.local.borrow().clone();
        match (local, &self.remote) {
            (Some(l), Some(r)) => {
                let (_, dec) = negotiate(&l, r);
                self.cx = Some(dec.clone());
                dec
            }
            _ => DecodeCx::default(),
        }
    }

    async fn drain(
        &mut self,
        buf: &mut BytesMut,
        key: ConnKey,
        events: &mpsc::Sender<FromConn>,
    ) -> Result<(), Stop> {
        loop {
            let len = match message_len(buf, MAX_MESSAGE_LEN) {
                Ok(Some(len)) if buf.len() >= len => len,
                Ok(_) => return Ok(()),
                Err(e) => {
                    let event = Event::BgpHeaderErr(e);
                    events
                        .send(FromConn::Event { key, event })
                        .await
                        .map_err(|_| Stop::Speaker)?;
                    return Err(Stop::Framing);
                }
            };
            let frame = buf.split_to(len);
            let cx = self.cx();
            let decoded = Message::decode(&frame, &cx);
            if let Ok(Message::Open(o)) = &decoded {
                self.remote = Some(o.clone());
                self.cx = None;
            }
            let event = Event::from_message(decoded);
            events
                .send(FromConn::Event { key, event })
                .await
                .map_err(|_| Stop::Speaker)?;
        }
    }
}
