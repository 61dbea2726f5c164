//! Answers to the control socket's `show` requests, built from the speaker's own state.

use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;

use super::Speaker;
use crate::api::{Neighbor, OwnPrefix, PathInfo, RouteInfo, Routes};
use crate::config::PeerAsn;
use crate::rib::decision::origin_name;
use crate::rib::{Route, RouteAttrs};
use crate::wire::{AfiSafi, NextHop};

fn next_hop(a: &RouteAttrs) -> IpAddr {
    match a.next_hop {
        NextHop::Ipv4(v4) => IpAddr::V4(v4),
        NextHop::Ipv6(v6) => IpAddr::V6(v6.global),
    }
}

fn route_info(r: &Route<'_>) -> RouteInfo {
    let decision = r.explain();
    let multipath = r.multipath_len();
    let paths = r
        .paths()
        .enumerate()
        .map(|(i, p)| PathInfo {
            peer: p.info.address,
            next_hop: next_hop(p.attrs),
            as_path: p.attrs.as_path.to_string(),
            origin: origin_name(p.attrs.origin).to_string(),
            med: p.attrs.med,
            local_pref: p.attrs.local_pref,
            communities: p
                .attrs
                .communities
                .iter()
                .map(|c| c.to_string())
                .chain(p.attrs.large_communities.iter().map(|c| c.to_string()))
                .collect(),
            originator_id: p.attrs.originator_id,
            cluster_list: p.attrs.cluster_list.clone(),
            stale: p.stale,
            best: i == 0,
            multipath: i < multipath,
        })
        .collect();
    RouteInfo {
        prefix: r.prefix,
        paths,
        reason: decision.reason.to_string(),
    }
}

impl Speaker {
    pub(super) fn show_neighbors(&self) -> Vec<Neighbor> {
        let now = Instant::now();
        self.peers
            .iter()
            .map(|(addr, ps)| {
                let s = ps.fsm.established();
                let fam = |f| self.rib.peer_routes(ps.id, f);
                let stale = |f| self.rib.peer_stale(ps.id, f);
                let accepted = fam(AfiSafi::Ipv4Unicast) + fam(AfiSafi::Ipv6Unicast);
                Neighbor {
                    address: *addr,
                    asn: match ps.cfg.asn {
                        PeerAsn::Number(n) => n.to_string(),
                        PeerAsn::Internal => "internal".into(),
                        PeerAsn::External => "external".into(),
                    },
                    description: ps.cfg.description.clone(),
                    state: ps.fsm.state().to_string(),
                    since_secs: now.saturating_duration_since(ps.since).as_secs(),
                    router_id: s.map(|s| s.peer_id),
                    hold_time: s.map(|s| s.hold_time),
                    families: s
                        .map(|s| s.families.iter().map(|f| f.to_string()).collect())
                        .unwrap_or_default(),
                    received: accepted + ps.filtered.len() as u64,
                    accepted,
                    stale: stale(AfiSafi::Ipv4Unicast) + stale(AfiSafi::Ipv6Unicast),
                    advertised: ps.out.as_ref().map_or(0, |o| o.len() as u64),
                    updates_received: ps.updates_in,
                    updates_sent: ps.updates_out,
                    md5: ps.cfg.password.is_some(),
                    graceful_restart: s.is_some_and(|s| s.peer_gr.is_some() && s.local_gr),
                    last_error: ps.last_error.clone(),
                }
            })
            .collect()
    }

    pub(super) fn show_routes(&self, prefix: Option<IpNet>) -> Result<Routes, String> {
        let own = self
            .own
            .iter()
            .filter(|p| prefix.is_none_or(|q| q.trunc() == **p))
            .map(|p| OwnPrefix {
                prefix: *p,
                source: if self.static_prefixes.contains(p) {
                    "static".into()
                } else {
                    "node".into()
                },
            })
            .collect::<Vec<_>>();
        let routes: Vec<RouteInfo> = match prefix {
            Some(p) => self.rib.route(p).iter().map(route_info).collect(),
            None => [AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast]
                .into_iter()
                .flat_map(|f| self.rib.routes(f))
                .map(|r| route_info(&r))
                .collect(),
        };
        if let Some(p) = prefix
            && routes.is_empty()
            && own.is_empty()
        {
            return Err(format!("no route for {p}"));
        }
        Ok(Routes { routes, own })
    }

    /// Seconds since the speaker started.
    pub fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}
