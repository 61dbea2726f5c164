//! The FIB, kernel half: [`FibOp`]s written to the kernel in batches, on a netlink socket of
//! the writer's own.
//!
//! ```text
//!   ops ──chunks of ≤ BATCH (≤ BATCH_BYTES)──> one buffer: RTM_NEWROUTE/RTM_DELROUTE seq s..s+n
//!                                              only the last carries NLM_F_ACK
//!       ──one send()──> kernel: handles the messages in order; answers each failed one with
//!                       NLMSG_ERROR (seq, errno) ACK or not, and the last one with its ACK
//!       <──recv() until the last seq is answered: every request of the batch is done
//! ```
//!
//! Why not rtnetlink's handle (which [`super::netlink::Netlink`] uses for dumps and addresses):
//! it sends one request per message and wakes a future per ACK, through a channel to its
//! connection task. Installing 100k routes, that machinery (futures, channels, wakeups across
//! threads, one syscall each way per route) cost about as much CPU as the kernel's own work
//! (perf on `install_bench`). The messages themselves are still built and parsed with
//! netlink-packet-route; only the batching is ours.
//!
//! Blocking: the FIB task runs it on a thread of its own.

use std::num::NonZeroI32;

use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{Socket, SocketAddr, constants::NETLINK_ROUTE};

use super::FibOp;
use super::netlink::{NetlinkError, describe, route_message};

/// Requests per send.
pub const BATCH: usize = 256;
/// Bytes per send (the kernel refuses a datagram larger than the socket's send buffer, 208 KiB
/// by default).
const BATCH_BYTES: usize = 64 << 10;
/// How long to wait for the kernel's answer to a batch before giving up on it.
const ANSWER_TIMEOUT_S: i64 = 30;

/// Writes [`FibOp`]s in batches (module docs).
pub struct FibWriter {
    sock: Socket,
    seq: u32,
    out: Vec<u8>,
    answers: Vec<u8>,
}

impl FibWriter {
    /// A netlink socket of its own in the current network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Connect)?;
        sock.bind_auto().map_err(NetlinkError::Connect)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Connect)?;
        nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(ANSWER_TIMEOUT_S, 0),
        )
        .map_err(|e| NetlinkError::Connect(e.into()))?;
        Ok(Self {
            sock,
            seq: 0,
            out: Vec::with_capacity(BATCH_BYTES + 4096),
            answers: vec![0; 64 << 10],
        })
    }

    /// Execute `ops` in order; one result per op, in the same order.
    pub fn apply(&mut self, ops: &[FibOp]) -> Vec<Result<(), NetlinkError>> {
        let mut results: Vec<Result<(), NetlinkError>> = Vec::with_capacity(ops.len());
        let mut start = 0;
        while start < ops.len() {
            let mut batch: Vec<(usize, NetlinkMessage<RouteNetlinkMessage>)> = Vec::new();
            let mut bytes = 0;
            let mut end = start;
            while end < ops.len() && batch.len() < BATCH && bytes < BATCH_BYTES {
                results.push(Ok(()));
                match message(&ops[end]) {
                    Ok(m) => {
                        bytes += m.buffer_len();
                        batch.push((end, m));
                    }
                    Err(message) => {
                        results[end] = Err(NetlinkError::Invalid {
                            what: describe(&ops[end]),
                            message,
                        });
                    }
                }
                end += 1;
            }
            match self.exchange(&mut batch) {
                Ok(refused) => {
                    for (k, code) in refused {
                        let i = batch[k].0;
                        results[i] = Err(NetlinkError::Kernel {
                            what: describe(&ops[i]),
                            source: std::io::Error::from_raw_os_error(-code.get()),
                        });
                    }
                }
                Err(e) => {
                    for (i, _) in &batch {
                        results[*i] = Err(NetlinkError::Kernel {
                            what: describe(&ops[*i]),
                            source: std::io::Error::new(e.kind(), e.to_string()),
                        });
                    }
                }
            }
            start = end;
        }
        results
    }

    /// Send `batch` (numbered from the next sequence number, the last asking for an ACK) and
    /// read the answers: the requests the kernel refused (index in `batch`, errno < 0).
    fn exchange(
        &mut self,
        batch: &mut [(usize, NetlinkMessage<RouteNetlinkMessage>)],
    ) -> std::io::Result<Vec<(usize, NonZeroI32)>> {
        let Some(last) = batch.len().checked_sub(1) else {
            return Ok(Vec::new());
        };
        let mut refused = Vec::new();
        let first = self.seq.wrapping_add(1);
        self.out.clear();
        for (k, (_, m)) in batch.iter_mut().enumerate() {
            self.seq = self.seq.wrapping_add(1);
            m.header.sequence_number = self.seq;
            if k == last {
                m.header.flags |= NLM_F_ACK;
            }
            m.finalize();
            let at = self.out.len();
            self.out.resize(at + m.buffer_len(), 0);
            m.serialize(&mut self.out[at..]);
        }
        let last_seq = self.seq;
        self.sock.send(&self.out, 0)?;
        loop {
            let n = self.sock.recv(&mut &mut self.answers[..], 0)?;
            let mut at = 0;
            while at + 16 <= n {
                let len = u32::from_ne_bytes(self.answers[at..at + 4].try_into().unwrap_or([0; 4]))
                    as usize;
                if len < 16 || at + len > n {
                    break;
                }
                if let Ok(NetlinkMessage {
                    header,
                    payload: NetlinkPayload::Error(e),
                    ..
                }) =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.answers[at..at + len])
                {
                    let k = header.sequence_number.wrapping_sub(first) as usize;
                    if let Some(code) = e.code
                        && k < batch.len()
                    {
                        refused.push((k, code));
                    }
                    if header.sequence_number == last_seq {
                        return Ok(refused);
                    }
                }
                at += (len + 3) & !3;
            }
        }
    }
}

/// The netlink request of one op, without its sequence number.
fn message(op: &FibOp) -> Result<NetlinkMessage<RouteNetlinkMessage>, String> {
    let (payload, flags) = match op {
        FibOp::Add(r) => (
            RouteNetlinkMessage::NewRoute(route_message(r, true)?),
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL,
        ),
        FibOp::Replace(r) => (
            RouteNetlinkMessage::NewRoute(route_message(r, true)?),
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
        ),
        FibOp::Delete(r) => (
            RouteNetlinkMessage::DelRoute(route_message(r, false)?),
            NLM_F_REQUEST,
        ),
    };
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    Ok(NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(payload),
    ))
}
