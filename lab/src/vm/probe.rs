//! What `ipvs-probe` (the lab's IPVS-over-netlink test program, `src/bin/ipvs-probe.rs`)
//! prints, so a test can build the same text from ipvsadm's view and compare.
//!
//! ```text
//!   SVC <-t|-u|--sctp-service ADDR:PORT | -f MARK [-6]> conns inpkts outpkts inbytes outbytes
//!   RS <service> ADDR:PORT active inactive persistent conns inpkts outpkts inbytes outbytes
//! ```

use std::fmt::Write;

use dataplane::ipvs::{IpvsState, SockAddr};

/// Where VM images put the probe.
pub const PROBE_GUEST_PATH: &str = "/usr/bin/ipvs-probe";

/// The `ipvs-probe counters` text of a table (unknown counters print as 0).
pub fn counters_text(state: &IpvsState) -> String {
    let mut out = String::new();
    for svc in &state.services {
        let c = svc.counters.unwrap_or_default();
        let key = svc.key.to_ipvsadm();
        let _ = writeln!(
            out,
            "SVC {key} {} {} {} {} {}",
            c.conns, c.in_pkts, c.out_pkts, c.in_bytes, c.out_bytes
        );
        for rs in &svc.servers {
            let c = rs.counters.unwrap_or_default();
            let n = rs.conns.unwrap_or_default();
            let _ = writeln!(
                out,
                "RS {key} {} {} {} {} {} {} {} {} {}",
                SockAddr(rs.addr, rs.port),
                n.active,
                n.inactive,
                n.persistent.unwrap_or(0),
                c.conns,
                c.in_pkts,
                c.out_pkts,
                c.in_bytes,
                c.out_bytes
            );
        }
    }
    out
}
