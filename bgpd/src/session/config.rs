//! What the session needs to know about a configured peer: the RFC 4271 §8 session attributes
//! (HoldTime, ConnectRetryTime, PassiveTcpEstablishment, DelayOpen, DampPeerOscillations,
//! CollisionDetectEstablishedState) and the capabilities we advertise.
//!
//! In: values from the config file (the speaker builds a [`PeerConfig`]). Out: the OPEN we
//! send ([`PeerConfig::local_open`]), the checks a peer's OPEN must pass
//! ([`PeerConfig::open_check`]), or a [`ConfigError`] naming the offending key.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{AfiSafi, Capability, ExtNextHop, GrFamily, GracefulRestart, Open, OpenCheck};

/// Largest restart time the 12-bit field carries (RFC 4724 §3).
pub const MAX_RESTART_TIME: u16 = 4095;

/// Which AS the peer must announce in its OPEN (RFC 4271 §6.2 Bad Peer AS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAs {
    /// Exactly this AS.
    Exact(u32),
    /// Our own AS (iBGP).
    Internal,
    /// Any AS but ours (eBGP).
    External,
    /// Any non-zero AS.
    Any,
}

/// Graceful restart (RFC 4724) and its NOTIFICATION extension (RFC 8538). Present means we
/// advertise the capability and act as a helper for peers that advertise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Restart Time we advertise: how long peers keep our routes while we are away
    /// (seconds, at most 4095). Default 120.
    pub restart_time: u16,
    /// N bit (RFC 8538): graceful restart also applies to NOTIFICATIONs and hold timer
    /// expiry; a Cease/Hard Reset (6/9) still flushes. Default true.
    pub notification: bool,
    /// Families whose forwarding state (kernel routes) survives a restart of the process: the
    /// F bit of each advertised family (RFC 4724 §3). List a family only when that is true,
    /// e.g. when its routes are installed and kept. Default IPv4 and IPv6 unicast.
    pub forwarding_preserved: Vec<AfiSafi>,
    /// Helper mode: upper bound on keeping a peer's stale routes after its session is back
    /// and before its End-of-RIB (RFC 4724 §4.2 "MAY support a (configurable) timer").
    /// Default 360 s.
    pub stale_routes_time: Duration,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        Self {
            restart_time: 120,
            notification: true,
            forwarding_preserved: vec![AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast],
            stale_routes_time: Duration::from_secs(360),
        }
    }
}

/// Peer oscillation damping (RFC 4271 §8.1.1 DampPeerOscillations, IdleHoldTime): after a
/// failure the peer stays Idle for `initial`, doubling with each further failure up to
/// `max`; a session that stayed Established for `stable` resets the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DampingConfig {
    /// IdleHoldTime after the first failure. Default 1 s.
    pub initial: Duration,
    /// Largest IdleHoldTime. Default 120 s.
    pub max: Duration,
    /// Established this long counts as stable. Default 60 s.
    pub stable: Duration,
}

impl Default for DampingConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(120),
            stable: Duration::from_secs(60),
        }
    }
}

/// One configured peering, as the session FSM sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// The AS the peer must announce.
    pub peer_as: PeerAs,
    /// HoldTime we propose (RFC 4271 §4.2): 0 (no keepalives) or at least 3. Default 90.
    pub hold_time: u16,
    /// ConnectRetryTime (RFC 4271 §10). The RFC suggests 120 s (the default); short values
    /// (1–5 s) suit a rack.
    pub connect_retry: Duration,
    /// PassiveTcpEstablishment: never connect, only accept.
    pub passive: bool,
    /// DelayOpen with its DelayOpenTime: wait this long for the peer's OPEN before sending ours.
    pub delay_open: Option<Duration>,
    /// Families we advertise with the multiprotocol capability (RFC 4760). Default IPv4 and
    /// IPv6 unicast.
    pub families: Vec<AfiSafi>,
    /// Advertise route refresh (RFC 2918). Default true.
    pub route_refresh: bool,
    /// Advertise extended next hop for IPv4 unicast over IPv6 (RFC 8950). Default false.
    pub extended_next_hop: bool,
    /// Graceful restart; `None` disables both our restart support and helper mode.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// CollisionDetectEstablishedState (RFC 4271 §8.1.1): resolve collisions against an
    /// Established session by BGP Identifier instead of refusing the new connection.
    pub collision_detect_established: bool,
    /// IdleHoldTimer back-off.
    pub damping: DampingConfig,
}

impl PeerConfig {
    /// A peering with the defaults listed on each field.
    pub fn new(local_as: u32, router_id: Ipv4Addr, peer_as: PeerAs) -> Self {
        Self {
            local_as,
            router_id,
            peer_as,
            hold_time: 90,
            connect_retry: Duration::from_secs(120),
            passive: false,
            delay_open: None,
            families: vec![AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast],
            route_refresh: true,
            extended_next_hop: false,
            graceful_restart: Some(GracefulRestartConfig::default()),
            collision_detect_established: false,
            damping: DampingConfig::default(),
        }
    }

    /// Check the values RFCs constrain; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.local_as == 0 {
            return Err(ConfigError::AsZero { key: "asn" });
        }
        if self.peer_as == PeerAs::Exact(0) {
            return Err(ConfigError::AsZero { key: "peers.asn" });
        }
        if self.router_id.is_unspecified() {
            return Err(ConfigError::RouterId);
        }
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if self.connect_retry.is_zero() {
            return Err(ConfigError::NotPositive {
                key: "connect_retry",
            });
        }
        if self.delay_open.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::NotPositive { key: "delay_open" });
        }
        if self.families.is_empty() {
            return Err(ConfigError::NoFamilies);
        }
        let d = &self.damping;
        if d.initial.is_zero() || d.max < d.initial {
            return Err(ConfigError::Damping {
                initial: d.initial,
                max: d.max,
            });
        }
        if let Some(gr) = &self.graceful_restart {
            if gr.restart_time > MAX_RESTART_TIME {
                return Err(ConfigError::RestartTime(gr.restart_time));
            }
            if gr.stale_routes_time.is_zero() {
                return Err(ConfigError::NotPositive {
                    key: "graceful_restart.stale_routes_time",
                });
            }
        }
        Ok(())
    }

    /// What a peer's OPEN must satisfy (RFC 4271 §6.2); `External` is checked on top of this
    /// by the FSM.
    pub fn open_check(&self) -> OpenCheck {
        OpenCheck {
            local_as: self.local_as,
            local_id: self.router_id,
            peer_as: match self.peer_as {
                PeerAs::Exact(a) => Some(a),
                PeerAs::Internal => Some(self.local_as),
                PeerAs::External | PeerAs::Any => None,
            },
        }
    }

    /// The OPEN we send (RFC 4271 §4.2): multiprotocol per family, route refresh, 4-octet AS,
    /// graceful restart (R bit when `restarting`, RFC 4724 §4.1; F bit per family as
    /// configured; N bit, RFC 8538) and extended next hop.
    pub fn local_open(&self, restarting: bool) -> Open {
        let mut caps: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        if self.route_refresh {
            caps.push(Capability::RouteRefresh);
        }
        caps.push(Capability::FourOctetAs(self.local_as));
        if let Some(gr) = &self.graceful_restart {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                restart_state: restarting,
                notification: gr.notification,
                restart_time: gr.restart_time,
                families: self
                    .families
                    .iter()
                    .map(|f| GrFamily {
                        afi_safi: *f,
                        forwarding_preserved: gr.forwarding_preserved.contains(f),
                    })
                    .collect(),
            }));
        }
        if self.extended_next_hop {
            caps.push(Capability::ExtendedNextHop(vec![ExtNextHop {
                afi_safi: AfiSafi::Ipv4Unicast,
                next_hop_afi: crate::wire::family::AFI_IPV6,
            }]));
        }
        Open::new(self.local_as, self.hold_time, self.router_id, caps)
    }
}

/// A peering configuration that RFCs forbid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// AS 0 is reserved (RFC 7607).
    #[error("{key}: AS 0 is reserved (RFC 7607)")]
    AsZero {
        /// The config key.
        key: &'static str,
    },
    /// 0.0.0.0 is not a BGP Identifier (RFC 6286 §2.1).
    #[error("router_id: 0.0.0.0 is not a valid BGP identifier (RFC 6286)")]
    RouterId,
    /// Hold time 1 or 2 (RFC 4271 §4.2).
    #[error("hold_time: {0} s is not allowed, use 0 or at least 3 (RFC 4271 §4.2)")]
    HoldTime(u16),
    /// A duration that must be positive is zero.
    #[error("{key}: must be positive")]
    NotPositive {
        /// The config key.
        key: &'static str,
    },
    /// No address family to advertise.
    #[error("families: at least one address family is needed")]
    NoFamilies,
    /// Damping bounds out of order.
    #[error("damping: initial {initial:?} must be positive and at most max {max:?}")]
    Damping {
        /// Configured initial IdleHoldTime.
        initial: Duration,
        /// Configured maximum.
        max: Duration,
    },
    /// Restart time beyond the 12-bit field (RFC 4724 §3).
    #[error("graceful_restart.restart_time: {0} s exceeds 4095 (RFC 4724 §3)")]
    RestartTime(u16),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PeerConfig {
        PeerConfig::new(65010, Ipv4Addr::new(198, 18, 0, 10), PeerAs::Exact(65000))
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(cfg().validate(), Ok(()));
        let mut c = cfg();
        c.hold_time = 2;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "hold_time: 2 s is not allowed, use 0 or at least 3 (RFC 4271 §4.2)"
        );
        let mut c = cfg();
        c.hold_time = 0;
        assert_eq!(c.validate(), Ok(()));
        let mut c = cfg();
        c.graceful_restart.as_mut().unwrap().restart_time = 4096;
        assert_eq!(c.validate(), Err(ConfigError::RestartTime(4096)));
        let mut c = cfg();
        c.damping.max = Duration::from_millis(500);
        assert!(matches!(c.validate(), Err(ConfigError::Damping { .. })));
        let mut c = cfg();
        c.connect_retry = Duration::ZERO;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "connect_retry: must be positive"
        );
        let mut c = cfg();
        c.peer_as = PeerAs::Exact(0);
        assert_eq!(c.validate(), Err(ConfigError::AsZero { key: "peers.asn" }));
    }

    #[test]
    fn local_open_carries_the_configured_capabilities() {
        let o = cfg().local_open(true);
        assert_eq!((o.my_as, o.hold_time, o.asn()), (65010, 90, 65010));
        assert_eq!(
            o.families(),
            vec![AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast]
        );
        let gr = o
            .capabilities()
            .find_map(|c| match c {
                Capability::GracefulRestart(g) => Some(g.clone()),
                _ => None,
            })
            .unwrap();
        assert!(gr.restart_state && gr.notification && gr.restart_time == 120);
        assert!(gr.families.iter().all(|f| f.forwarding_preserved));
        // the F bit per family
        let mut c = cfg();
        c.graceful_restart.as_mut().unwrap().forwarding_preserved = vec![AfiSafi::Ipv4Unicast];
        let f: Vec<bool> = c
            .local_open(false)
            .capabilities()
            .find_map(|c| match c {
                Capability::GracefulRestart(g) => Some(g.clone()),
                _ => None,
            })
            .unwrap()
            .families
            .iter()
            .map(|f| f.forwarding_preserved)
            .collect();
        assert_eq!(f, [true, false]);
        let mut c = cfg();
        c.graceful_restart = None;
        c.local_as = 4_200_000_001;
        let o = c.local_open(false);
        assert_eq!((o.my_as, o.asn()), (23456, 4_200_000_001));
        assert!(
            !o.capabilities()
                .any(|c| matches!(c, Capability::GracefulRestart(_)))
        );
    }
}
