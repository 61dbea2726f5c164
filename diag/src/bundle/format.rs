//! The bundle format: which parts a bundle holds, under which file names, and the
//! `manifest.json` that says how each was produced. Pure data; see `docs/diag.md`.
//!
//! ```text
//!   bundle/                                   manifest.json
//!     manifest.json                             {"format": "diag-bundle", "version": 1,
//!     iptables-nft-save.txt  ...                 "node", "netns", "hostname", "kernel", "time",
//!     ip-route-4.json  ...                       "collector", "tools": {tool: version},
//!     k8s-pods.json  ...                         "files": [{"part", "file", "command", "status",
//!                                                           "exit_code", "note", "bytes",
//!                                                           "sha256", "truncated"}],
//!                                                "redaction"}
//! ```

use std::collections::BTreeMap;
use std::fmt;

use dataplane::Family;
use dataplane::node::Backend;
use serde::{Deserialize, Serialize};

/// The `format` value of every bundle manifest.
pub const FORMAT: &str = "diag-bundle";

/// The bundle format version this diag writes and reads.
pub const VERSION: u32 = 1;

/// The manifest's file name inside a bundle.
pub const MANIFEST: &str = "manifest.json";

/// One part of a node snapshot. The serde names are the `part` values of the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// `iptables-nft-save`.
    IptablesNftSave,
    /// `ip6tables-nft-save`.
    #[serde(rename = "ip6tables-nft-save")]
    Ip6tablesNftSave,
    /// `iptables-legacy-save`.
    IptablesLegacySave,
    /// `ip6tables-legacy-save`.
    #[serde(rename = "ip6tables-legacy-save")]
    Ip6tablesLegacySave,
    /// `nft -j list ruleset`.
    NftRuleset,
    /// `ipset save`.
    IpsetSave,
    /// `ipvsadm -Sn`.
    IpvsadmSave,
    /// `ip -j -d link show`.
    IpLink,
    /// `ip -j addr show`.
    IpAddr,
    /// `ip -j -4 route show table all`.
    #[serde(rename = "ip-route-4")]
    IpRoute4,
    /// `ip -j -6 route show table all`.
    #[serde(rename = "ip-route-6")]
    IpRoute6,
    /// `ip -j -4 rule show`.
    #[serde(rename = "ip-rule-4")]
    IpRule4,
    /// `ip -j -6 rule show`.
    #[serde(rename = "ip-rule-6")]
    IpRule6,
    /// `ip -j neigh show`.
    IpNeigh,
    /// `sysctl -e KEY...`.
    Sysctl,
    /// `conntrack -L -o extended` (both families), bounded.
    Conntrack,
    /// `bgpd show neighbors --json`.
    BgpdNeighbors,
    /// `bgpd show routes --json`.
    BgpdRoutes,
    /// Pods (a `v1` `PodList` as JSON).
    #[serde(rename = "k8s-pods")]
    K8sPods,
    /// Services (`ServiceList`).
    #[serde(rename = "k8s-services")]
    K8sServices,
    /// EndpointSlices (`discovery.k8s.io/v1` `EndpointSliceList`).
    #[serde(rename = "k8s-endpointslices")]
    K8sEndpointSlices,
    /// Nodes (`NodeList`).
    #[serde(rename = "k8s-nodes")]
    K8sNodes,
}

impl Part {
    /// Every part, in collection order.
    pub const ALL: [Part; 22] = [
        Part::IptablesNftSave,
        Part::Ip6tablesNftSave,
        Part::IptablesLegacySave,
        Part::Ip6tablesLegacySave,
        Part::NftRuleset,
        Part::IpsetSave,
        Part::IpvsadmSave,
        Part::IpLink,
        Part::IpAddr,
        Part::IpRoute4,
        Part::IpRoute6,
        Part::IpRule4,
        Part::IpRule6,
        Part::IpNeigh,
        Part::Sysctl,
        Part::Conntrack,
        Part::BgpdNeighbors,
        Part::BgpdRoutes,
        Part::K8sPods,
        Part::K8sServices,
        Part::K8sEndpointSlices,
        Part::K8sNodes,
    ];

    /// The manifest name (`iptables-nft-save`).
    pub fn name(self) -> &'static str {
        match self {
            Part::IptablesNftSave => "iptables-nft-save",
            Part::Ip6tablesNftSave => "ip6tables-nft-save",
            Part::IptablesLegacySave => "iptables-legacy-save",
            Part::Ip6tablesLegacySave => "ip6tables-legacy-save",
            Part::NftRuleset => "nft-ruleset",
            Part::IpsetSave => "ipset-save",
            Part::IpvsadmSave => "ipvsadm-save",
            Part::IpLink => "ip-link",
            Part::IpAddr => "ip-addr",
            Part::IpRoute4 => "ip-route-4",
            Part::IpRoute6 => "ip-route-6",
            Part::IpRule4 => "ip-rule-4",
            Part::IpRule6 => "ip-rule-6",
            Part::IpNeigh => "ip-neigh",
            Part::Sysctl => "sysctl",
            Part::Conntrack => "conntrack",
            Part::BgpdNeighbors => "bgpd-neighbors",
            Part::BgpdRoutes => "bgpd-routes",
            Part::K8sPods => "k8s-pods",
            Part::K8sServices => "k8s-services",
            Part::K8sEndpointSlices => "k8s-endpointslices",
            Part::K8sNodes => "k8s-nodes",
        }
    }

    /// The file name a collector gives it (`iptables-nft-save.txt`, `ip-link.json`).
    pub fn file_name(self) -> String {
        let ext = if self.is_json() { "json" } else { "txt" };
        format!("{}.{ext}", self.name())
    }

    /// Whether the part is a JSON document.
    pub fn is_json(self) -> bool {
        !matches!(
            self,
            Part::IptablesNftSave
                | Part::Ip6tablesNftSave
                | Part::IptablesLegacySave
                | Part::Ip6tablesLegacySave
                | Part::IpsetSave
                | Part::IpvsadmSave
                | Part::Sysctl
                | Part::Conntrack
        )
    }

    /// The iptables back end and family of an iptables-save part.
    pub fn iptables(self) -> Option<(Backend, Family)> {
        Some(match self {
            Part::IptablesNftSave => (Backend::Nft, Family::V4),
            Part::Ip6tablesNftSave => (Backend::Nft, Family::V6),
            Part::IptablesLegacySave => (Backend::Legacy, Family::V4),
            Part::Ip6tablesLegacySave => (Backend::Legacy, Family::V6),
            _ => return None,
        })
    }

    /// Whether the part is a Kubernetes object list.
    pub fn is_k8s(self) -> bool {
        matches!(
            self,
            Part::K8sPods | Part::K8sServices | Part::K8sEndpointSlices | Part::K8sNodes
        )
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a part came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// The command ran and its output is the file.
    Ok,
    /// The tool is not installed (nothing ran).
    MissingTool,
    /// Not applicable here (no IPVS in the kernel, no bgpd socket, no Kubernetes API).
    Skipped,
    /// The command ran and failed; `note` holds its stderr.
    Failed,
}

/// Output cut at a bound (conntrack).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncated {
    /// The bound (entries kept).
    pub limit: u64,
    /// How many there were, when known (`nf_conntrack_count`).
    pub total: Option<u64>,
}

/// One part's record in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Which part.
    pub part: Part,
    /// The file in the bundle (present when `status` is `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The exact command that produced it, as a shell would show it
    /// (`ip netns exec NS iptables-nft-save`), or how objects were read (`GET /api/v1/pods`).
    pub command: String,
    /// How it came out.
    pub status: FileStatus,
    /// The command's exit code, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it was skipped or failed (stderr, shortened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Size of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// SHA-256 of the file as written, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Set when the output was cut at a bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
}

/// What `--redact` changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Redaction {
    /// Secret-bearing values replaced by `REDACTED` (count).
    pub secrets: u64,
    /// Whether addresses outside the node's own networks were replaced by pseudonyms.
    pub addresses: bool,
    /// How many distinct addresses were replaced.
    pub addresses_replaced: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// The node's name (Kubernetes node name; default: the host name, or the netns name).
    pub node: String,
    /// The network namespace collected, if not the collector's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// `uname -n` of the collecting host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Kernel release (`uname -r`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// When it was collected (RFC 3339, UTC).
    pub time: String,
    /// The collecting program and version (`diag 0.1.0`).
    pub collector: String,
    /// Tool versions (`iptables` -> `iptables v1.8.9 (nf_tables)`); missing tools say `missing`.
    #[serde(default)]
    pub tools: BTreeMap<String, String>,
    /// Every part, in collection order.
    pub files: Vec<FileEntry>,
    /// Set when the bundle was redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<Redaction>,
}

impl Manifest {
    /// An empty manifest for `node` collected at `time`.
    pub fn new(node: impl Into<String>, time: impl Into<String>) -> Manifest {
        Manifest {
            format: FORMAT.to_string(),
            version: VERSION,
            node: node.into(),
            netns: None,
            hostname: None,
            kernel: None,
            time: time.into(),
            collector: format!("diag {}", env!("CARGO_PKG_VERSION")),
            tools: BTreeMap::new(),
            files: Vec::new(),
            redaction: None,
        }
    }

    /// The entry of a part.
    pub fn entry(&self, part: Part) -> Option<&FileEntry> {
        self.files.iter().find(|e| e.part == part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_are_the_serde_names_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for p in Part::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert!(seen.insert(p.file_name()), "{p}");
        }
        assert_eq!(Part::IpLink.file_name(), "ip-link.json");
        assert_eq!(Part::Conntrack.file_name(), "conntrack.txt");
    }
}
