//! A bundle parsed: [`Snapshot`] = the node's [`NodeState`] (what the tracer reads: iptables,
//! ipsets, routes, sysctls, conntrack, the nft ruleset and the IPVS table) plus what only
//! `check` and people read: neighbours, bgpd status and Kubernetes objects. Pure: a [`Bundle`]
//! in memory in, a snapshot or an error naming the file and line out.
//!
//! ```text
//!   Bundle ──Snapshot::from_bundle──> Snapshot { manifest, node: NodeState { .., nft, ipvs },
//!                                                neighbours, bgpd, objects, notes }
//!   errors: DIR/iptables-nft-save.txt:12: expected ..., found ...
//!   notes:  parts missing or failed at collection, conntrack truncated, files edited later
//! ```

use std::fmt;

use dataplane::Family;
use dataplane::conntrack::Conntrack;
use dataplane::ipset::Sets;
use dataplane::iptables::Ruleset;
use dataplane::ipvs::{IpvsError, IpvsState};
use dataplane::nft;
use dataplane::node::{NodeState, Sysctls};
use dataplane::route::{self, Document, IpDocuments, RouteState};
use serde::{Deserialize, Serialize};

use crate::bundle::{Bundle, FileStatus, Manifest, Part};
use crate::objects::Objects;

/// A bundle file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SnapshotError {
    /// The bundle (its path).
    pub bundle: String,
    /// The file in it.
    pub file: String,
    /// 1-based line, when the parser knows it.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.bundle, self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// bgpd's status as `bgpd show ... --json` printed it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BgpdStatus {
    /// `show neighbors --json`.
    pub neighbors: Option<serde_json::Value>,
    /// `show routes --json`.
    pub routes: Option<serde_json::Value>,
}

/// One node's state, parsed from a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The manifest.
    pub manifest: Manifest,
    /// Where the bundle came from (a path, or `live`).
    pub origin: String,
    /// What the tracer reads; `node.nft` is `nft -j list ruleset` (iptables-nft's tables
    /// too, which the tracer walks once, through the iptables-nft dump), `node.ipvs` the IPVS
    /// virtual services (`ipvsadm -Sn`).
    pub node: NodeState,
    /// `ip -j neigh show`, as printed.
    pub neighbours: Option<serde_json::Value>,
    /// bgpd's status, when it ran.
    pub bgpd: Option<BgpdStatus>,
    /// Kubernetes objects saved in the bundle.
    pub objects: Objects,
    /// What is missing or doubtful about the bundle (shown with a trace's assumptions).
    pub notes: Vec<String>,
}

impl Snapshot {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// Parses every part of a bundle.
    pub fn from_bundle(b: &Bundle) -> Result<Snapshot, SnapshotError> {
        let origin = b.origin.clone();
        let err = |part: Part, line: Option<usize>, message: String| SnapshotError {
            bundle: origin.clone(),
            file: b
                .manifest
                .entry(part)
                .and_then(|e| e.file.clone())
                .unwrap_or_else(|| part.file_name()),
            line,
            message,
        };
        let text = |part: Part| -> Option<String> {
            b.part(part)
                .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
        };
        let mut notes: Vec<String> = b.notes.clone();
        for e in &b.manifest.files {
            if e.status != FileStatus::Ok
                && !matches!(e.part, Part::IpvsadmSave)
                && !e.part.is_k8s()
                && !matches!(e.part, Part::BgpdNeighbors | Part::BgpdRoutes)
            {
                notes.push(format!(
                    "{}: {} at collection ({}){}",
                    e.part,
                    match e.status {
                        FileStatus::MissingTool => "tool missing",
                        FileStatus::Failed => "command failed",
                        _ => "not collected",
                    },
                    e.command,
                    e.note
                        .as_deref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                ));
            }
            if let Some(t) = &e.truncated {
                notes.push(format!(
                    "{}: only the first {} entries were collected{}; a connection may have an \
                     entry the trace does not see",
                    e.part,
                    t.limit,
                    t.total.map(|n| format!(" of {n}")).unwrap_or_default()
                ));
            }
        }

        let mut node = NodeState::new(b.manifest.node.clone());
        for part in Part::ALL {
            let Some((backend, family)) = part.iptables() else {
                continue;
            };
            let Some(t) = text(part) else { continue };
            let rs =
                Ruleset::parse(family, &t).map_err(|e| err(part, Some(e.line), e.to_string()))?;
            if !rs.tables.is_empty() {
                node.set_iptables(backend, rs);
            }
        }
        if let Some(t) = text(Part::IpsetSave) {
            node.ipsets =
                Sets::parse(&t).map_err(|e| err(Part::IpsetSave, Some(e.line), e.to_string()))?;
        }
        let docs: Vec<(Part, String)> = [
            Part::IpLink,
            Part::IpAddr,
            Part::IpRoute4,
            Part::IpRoute6,
            Part::IpRule4,
            Part::IpRule6,
        ]
        .into_iter()
        .map(|p| (p, text(p).unwrap_or_else(|| "[]".to_string())))
        .collect();
        let ip = IpDocuments {
            link: docs[0].1.as_str(),
            addr: docs[1].1.as_str(),
            route4: docs[2].1.as_str(),
            route6: docs[3].1.as_str(),
            rule4: docs[4].1.as_str(),
            rule6: docs[5].1.as_str(),
        };
        node.routes = RouteState::parse(&ip).map_err(|e| {
            let (doc, line) = match &e {
                route::ParseError::Json { doc, line, .. } => (*doc, Some(*line)),
                route::ParseError::Shape { doc, .. }
                | route::ParseError::Field { doc, .. }
                | route::ParseError::Missing { doc, .. } => (*doc, None),
            };
            let part = match doc {
                Document::Link | Document::State => Part::IpLink,
                Document::Addr => Part::IpAddr,
                Document::Route(Family::V4) => Part::IpRoute4,
                Document::Route(Family::V6) => Part::IpRoute6,
                Document::Rule(Family::V4) => Part::IpRule4,
                Document::Rule(Family::V6) => Part::IpRule6,
            };
            err(part, line, e.to_string())
        })?;
        if let Some(t) = text(Part::Sysctl) {
            node.sysctls =
                Sysctls::parse(&t).map_err(|e| err(Part::Sysctl, Some(e.line), e.to_string()))?;
        }
        if let Some(t) = text(Part::Conntrack) {
            node.conntrack = Conntrack::parse(&t)
                .map_err(|e| err(Part::Conntrack, Some(e.line), e.to_string()))?;
        }
        node.sync_route_settings();

        node.nft = match text(Part::NftRuleset) {
            Some(t) if !t.trim().is_empty() => Some(nft::Ruleset::from_json(&t).map_err(|e| {
                let line = match &e {
                    nft::NftParseError::Syntax { line, .. } => Some(*line),
                    _ => None,
                };
                err(Part::NftRuleset, line, e.to_string())
            })?),
            _ => None,
        };
        node.ipvs = match text(Part::IpvsadmSave) {
            Some(t) => Some(IpvsState::from_save(&t).map_err(|e| {
                let line = match &e {
                    IpvsError::Syntax { line, .. }
                    | IpvsError::UnknownService { line, .. }
                    | IpvsError::Duplicate { line, .. } => *line,
                };
                err(Part::IpvsadmSave, Some(line), e.to_string())
            })?),
            None => None,
        };
        let json = |part: Part| -> Result<Option<serde_json::Value>, SnapshotError> {
            match text(part) {
                None => Ok(None),
                Some(t) => serde_json::from_str(&t)
                    .map(Some)
                    .map_err(|e| err(part, Some(e.line()), format!("invalid JSON: {e}"))),
            }
        };
        let neighbours = json(Part::IpNeigh)?;
        let (bn, br) = (json(Part::BgpdNeighbors)?, json(Part::BgpdRoutes)?);
        let bgpd = (bn.is_some() || br.is_some()).then_some(BgpdStatus {
            neighbors: bn,
            routes: br,
        });
        let mut objects = Objects::default();
        for part in [
            Part::K8sPods,
            Part::K8sServices,
            Part::K8sEndpointSlices,
            Part::K8sNodes,
        ] {
            if let Some(t) = text(part) {
                let o = Objects::parse(&part.file_name(), &t)
                    .map_err(|e| err(part, Some(e.line), e.message))?;
                objects.merge(o);
            }
        }
        Ok(Snapshot {
            manifest: b.manifest.clone(),
            origin: b.origin.clone(),
            node,
            neighbours,
            bgpd,
            objects,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::FileEntry;

    fn bundle(parts: &[(Part, &str)]) -> Bundle {
        let mut b = Bundle::new(Manifest::new("n1", "t"), "B");
        for (p, t) in parts {
            b.put(
                FileEntry {
                    part: *p,
                    file: None,
                    command: p.name().into(),
                    status: FileStatus::Ok,
                    exit_code: Some(0),
                    note: None,
                    bytes: None,
                    sha256: None,
                    truncated: None,
                },
                Some(t.as_bytes().to_vec()),
            );
        }
        b
    }

    #[test]
    fn parses_parts_and_names_the_file_on_errors() {
        let b = bundle(&[
            (
                Part::IptablesNftSave,
                "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
            ),
            (Part::Sysctl, "net.ipv4.ip_forward = 1\n"),
            (
                Part::IpvsadmSave,
                "-A -t 198.19.0.10:80 -s rr\n-a -t 198.19.0.10:80 -r 198.18.66.2:8080 -m -w 1\n",
            ),
        ]);
        let s = Snapshot::from_bundle(&b).unwrap();
        assert_eq!(s.node.iptables.len(), 1);
        assert_eq!(s.node.routes.settings.ipv4_forwarding, Some(true));
        let ipvs = s.node.ipvs.as_ref().unwrap();
        assert_eq!(
            ipvs.services[0].servers[0].addr,
            "198.18.66.2".parse::<std::net::IpAddr>().unwrap()
        );

        let b = bundle(&[(
            Part::IptablesLegacySave,
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j\n",
        )]);
        let e = Snapshot::from_bundle(&b).unwrap_err();
        assert_eq!(e.file, "iptables-legacy-save.txt");
        assert_eq!(e.line, Some(3), "{e}");

        let b = bundle(&[(Part::IpRoute4, "[{\"dst\": \n")]);
        let e = Snapshot::from_bundle(&b).unwrap_err();
        assert_eq!(e.file, "ip-route-4.json");
        assert!(e.line.is_some(), "{e}");
        assert!(e.to_string().starts_with("B/ip-route-4.json:"), "{e}");

        let b = bundle(&[(
            Part::IpvsadmSave,
            "-a -t 198.19.0.11:80 -r 198.18.66.2:80\n",
        )]);
        let e = Snapshot::from_bundle(&b).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("ipvsadm-save.txt", Some(1)));
    }
}
