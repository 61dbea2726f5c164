//! Reading a host's live state back into a [`NodeState`], with the same commands diag's
//! collector uses, so every parser runs on what the kernel really prints.
//!
//! ```text
//!   ip netns exec NS sh -c '
//!     iptables-nft-save; ip6tables-nft-save; iptables-legacy-save; ip6tables-legacy-save;
//!     ipset save; ip -j -d link show; ip -j addr show; ip -j -4|-6 route show table all;
//!     ip -j [-6] rule show; sysctl -e KEYS...; conntrack -L; conntrack -L -f ipv6;
//!     nft -j list ruleset; ipvsadm -Sn (empty without IPVS)'
//!   (one process, sections split by a marker line)  --NodeState::from_dumps--> NodeState
//! ```

use dataplane::Family;
use dataplane::node::{Backend, NodeDumps, NodeError, NodeState, Sysctls};
use dataplane::route::IpDocuments;
use lab::Host;

const MARK: &str = "@@@@ capture section @@@@";

/// What capturing a host's state can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The capture commands failed.
    #[error("capture in {host}: {source}")]
    Lab {
        /// The host.
        host: String,
        /// The error.
        source: lab::LabError,
    },
    /// The output had the wrong number of sections.
    #[error("capture in {host}: expected {expected} sections, got {got}")]
    Sections {
        /// The host.
        host: String,
        /// Expected count.
        expected: usize,
        /// Found.
        got: usize,
    },
    /// A dump did not parse.
    #[error("capture in {host}: {source}")]
    Parse {
        /// The host.
        host: String,
        /// The parse error (names the document and line).
        source: NodeError,
    },
}

/// The raw text of every section (for fixtures and failure reports).
#[derive(Debug, Clone)]
pub struct Captured {
    /// The parsed state.
    pub node: NodeState,
    /// The section texts, in capture order, with their command.
    pub sections: Vec<(String, String)>,
}

/// Captures `host`'s state; `devs` are the interfaces whose sysctls matter.
pub fn capture(host: &Host, devs: &[String]) -> Result<Captured, CaptureError> {
    let dev_refs: Vec<&str> = devs.iter().map(String::as_str).collect();
    let keys = Sysctls::keys_for(&dev_refs).join(" ");
    let cmds: Vec<String> = vec![
        "iptables-nft-save".into(),
        "ip6tables-nft-save".into(),
        "iptables-legacy-save".into(),
        "ip6tables-legacy-save".into(),
        "ipset save".into(),
        "ip -j -d link show".into(),
        "ip -j addr show".into(),
        "ip -j -4 route show table all".into(),
        "ip -j -6 route show table all".into(),
        "ip -j rule show".into(),
        "ip -j -6 rule show".into(),
        format!("sysctl -e {keys}"),
        "conntrack -L 2>/dev/null; conntrack -L -f ipv6 2>/dev/null".into(),
        "nft -j list ruleset".into(),
        // this host kernel has no IPVS: ipvsadm fails and the section stays empty
        "ipvsadm -Sn 2>/dev/null".into(),
    ];
    let script: String = cmds
        .iter()
        .map(|c| format!("{c}; echo '{MARK}'\n"))
        .collect();
    let out = host.sh(&script).map_err(|source| CaptureError::Lab {
        host: host.name().to_string(),
        source,
    })?;
    let mut parts: Vec<&str> = out.split(&format!("{MARK}\n")).collect();
    if parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    if parts.len() != cmds.len() {
        return Err(CaptureError::Sections {
            host: host.name().to_string(),
            expected: cmds.len(),
            got: parts.len(),
        });
    }
    let dumps = NodeDumps {
        name: host.name(),
        iptables: vec![
            (Backend::Nft, Family::V4, parts[0]),
            (Backend::Nft, Family::V6, parts[1]),
            (Backend::Legacy, Family::V4, parts[2]),
            (Backend::Legacy, Family::V6, parts[3]),
        ],
        ipset: parts[4],
        ip: IpDocuments {
            link: parts[5],
            addr: parts[6],
            route4: parts[7],
            route6: parts[8],
            rule4: parts[9],
            rule6: parts[10],
        },
        sysctl: parts[11],
        conntrack: parts[12],
        nft: parts[13],
        ipvs: parts[14],
    };
    let node = NodeState::from_dumps(&dumps).map_err(|source| CaptureError::Parse {
        host: host.name().to_string(),
        source,
    })?;
    Ok(Captured {
        node,
        sections: cmds
            .iter()
            .zip(&parts)
            .map(|(c, p)| (c.clone(), p.to_string()))
            .collect(),
    })
}
