//! The kernel's conntrack table over ctnetlink (`NETLINK_NETFILTER`, subsystem
//! `NFNL_SUBSYS_CTNETLINK`), the same calls `conntrack -L` / `conntrack -D` make, without
//! running the tool.
//!
//! ```text
//!   list(family)  ──IPCTNL_MSG_CT_GET, NLM_F_DUMP, nfgenmsg.family──> kernel
//!                 <──one IPCTNL_MSG_CT_NEW per entry … NLMSG_DONE──  ──> [Entry]
//!   delete(entry) ──IPCTNL_MSG_CT_DELETE { CTA_TUPLE_ORIG }, NLM_F_ACK──> ACK | ENOENT (gone)
//! ```
//! The messages are `netlink-packet-netfilter` 0.4's typed conntrack codec (tuples, protocol
//! numbers, ports); the socket is `netlink-sys`. A dump message the codec cannot decode (a
//! protocol-specific attribute it does not know) is skipped and counted, not fatal.

use std::net::IpAddr;
use std::os::fd::AsFd;

use dataplane::Family;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol as CtProto, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::plan::{Entry, Tuple as CtTuple};

/// Why a conntrack call failed.
#[derive(Debug, thiserror::Error)]
pub enum CtError {
    /// The netlink socket could not be opened or used.
    #[error("ctnetlink {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The kernel answered with an error.
    #[error("ctnetlink {op}: kernel error {errno}")]
    Kernel {
        /// What was being done.
        op: &'static str,
        /// The (positive) errno.
        errno: i32,
    },
    /// The kernel's answer did not decode as netlink.
    #[error("ctnetlink {op}: undecodable answer: {message}")]
    Decode {
        /// What was being done.
        op: &'static str,
        /// The decoder's message.
        message: String,
    },
}

/// A ctnetlink socket.
pub struct Ctnetlink {
    socket: Socket,
    seq: u32,
    /// Dump messages skipped because they did not decode.
    pub undecodable: u64,
}

impl std::fmt::Debug for Ctnetlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctnetlink").field("seq", &self.seq).finish()
    }
}

fn nf_family(f: Family) -> NetfilterProtoFamily {
    match f {
        Family::V4 => NetfilterProtoFamily::IPv4,
        Family::V6 => NetfilterProtoFamily::IPv6,
    }
}

fn tuple_of(parts: &[Tuple]) -> Option<(CtTuple, u8)> {
    let (mut src, mut dst, mut proto) = (None, None, None);
    let (mut sport, mut dport) = (0, 0);
    for p in parts {
        match p {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(ps) => {
                for x in ps {
                    match x {
                        ProtoTuple::Protocol(n) => proto = Some(u8::from(*n)),
                        ProtoTuple::SourcePort(p) => sport = *p,
                        ProtoTuple::DestinationPort(p) => dport = *p,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some((
        CtTuple {
            src: src?,
            dst: dst?,
            sport,
            dport,
        },
        proto?,
    ))
}

fn entry_of(attrs: &[ConntrackAttribute]) -> Option<Entry> {
    let mut orig = None;
    let mut reply = None;
    for a in attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => orig = tuple_of(t),
            ConntrackAttribute::CtaTupleReply(t) => reply = tuple_of(t),
            _ => {}
        }
    }
    let (orig, proto) = orig?;
    let (reply, _) = reply?;
    Some(Entry { proto, orig, reply })
}

fn orig_tuple(e: &Entry) -> Vec<Tuple> {
    let mut proto = vec![ProtoTuple::Protocol(CtProto::from(e.proto))];
    if matches!(e.proto, 6 | 17 | 132 | 33 | 136) {
        proto.push(ProtoTuple::SourcePort(e.orig.sport));
        proto.push(ProtoTuple::DestinationPort(e.orig.dport));
    }
    vec![
        Tuple::Ip(vec![
            IPTuple::SourceAddress(e.orig.src),
            IPTuple::DestinationAddress(e.orig.dst),
        ]),
        Tuple::Proto(proto),
    ]
}

impl Ctnetlink {
    /// Opens a ctnetlink socket in the current network namespace.
    pub fn open() -> Result<Ctnetlink, CtError> {
        let io = |op| move |source| CtError::Io { op, source };
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("socket"))?;
        socket.bind_auto().map_err(io("bind"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(io("connect"))?;
        // Never hang the sync loop on a kernel that does not answer.
        nix::sys::socket::setsockopt(
            &socket.as_fd(),
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(5, 0),
        )
        .map_err(|e| CtError::Io {
            op: "setsockopt",
            source: std::io::Error::from(e),
        })?;
        Ok(Ctnetlink {
            socket,
            seq: 0,
            undecodable: 0,
        })
    }

    fn send(&mut self, family: Family, msg: ConntrackMessage, flags: u16) -> Result<u32, CtError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let nf = NetfilterMessage::new(NetfilterHeader::new(nf_family(family), 0, 0), msg);
        let mut m = NetlinkMessage::new(header, NetlinkPayload::from(nf));
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|source| CtError::Io { op: "send", source })?;
        Ok(self.seq)
    }

    /// Receives until `on_message` returns `true` (done) for answers to `seq`.
    fn receive(
        &mut self,
        op: &'static str,
        seq: u32,
        mut on_message: impl FnMut(&mut Self, NetlinkMessage<NetfilterMessage>) -> Result<bool, CtError>,
    ) -> Result<(), CtError> {
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            buf.clear();
            self.socket
                .recv(&mut buf, 0)
                .map_err(|source| CtError::Io { op, source })?;
            let mut offset = 0;
            while offset < buf.len() {
                let nl =
                    NetlinkBuffer::new_checked(&buf[offset..]).map_err(|e| CtError::Decode {
                        op,
                        message: e.to_string(),
                    })?;
                let len = (nl.length() as usize).max(16);
                let (msg_seq, raw) = (
                    nl.sequence_number(),
                    &buf[offset..offset + len.min(buf.len() - offset)],
                );
                offset += (len + 3) & !3;
                if msg_seq != seq {
                    continue; // a late answer to an earlier request
                }
                match NetlinkMessage::<NetfilterMessage>::deserialize(raw) {
                    Ok(m) => {
                        if on_message(self, m)? {
                            return Ok(());
                        }
                    }
                    Err(_) => self.undecodable += 1,
                }
            }
        }
    }

    /// Every conntrack entry of `family`.
    pub fn list(&mut self, family: Family) -> Result<Vec<Entry>, CtError> {
        let seq = self.send(
            family,
            ConntrackMessage::Get(vec![]),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        let mut entries = Vec::new();
        self.receive("dump", seq, |_, m| match m.payload {
            NetlinkPayload::Done(_) => Ok(true),
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => Err(CtError::Kernel {
                    op: "dump",
                    errno: -code.get(),
                }),
                None => Ok(true),
            },
            NetlinkPayload::InnerMessage(NetfilterMessage {
                inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)),
                ..
            }) => {
                entries.extend(entry_of(&attrs));
                Ok(false)
            }
            _ => Ok(false),
        })?;
        Ok(entries)
    }

    /// Deletes one entry (by its original tuple); `Ok(false)` if it was already gone.
    pub fn delete(&mut self, family: Family, e: &Entry) -> Result<bool, CtError> {
        let seq = self.send(
            family,
            ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(orig_tuple(e))]),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        let mut deleted = false;
        self.receive("delete", seq, |_, m| match m.payload {
            NetlinkPayload::Error(err) => match err.code {
                None => {
                    deleted = true;
                    Ok(true)
                }
                Some(code) if -code.get() == libc_enoent() => Ok(true),
                Some(code) => Err(CtError::Kernel {
                    op: "delete",
                    errno: -code.get(),
                }),
            },
            NetlinkPayload::Done(_) => Ok(true),
            _ => Ok(false),
        })?;
        Ok(deleted)
    }
}

fn libc_enoent() -> i32 {
    nix::errno::Errno::ENOENT as i32
}

/// The addresses of an entry as `ip`'s family (for logs).
pub fn family_of(e: &Entry) -> Family {
    match e.orig.src {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}
