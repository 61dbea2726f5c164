//! The speaker's peer work: connections in, FSM actions out (sockets, RIB, FIB, Adj-RIB-Out),
//! adding, removing and re-configuring peers.
//!
//! ```text
//!   FromConn / Accepted ──Peer::handle──> Vec<Action> ──execute──> Connect/Accept/Send/Drop (sockets)
//!                                                              ├─> Established: Adj-RIB-Out, EoR
//!                                                              ├─> Rib(..): Rib ─> changes ─> FIB
//!                                                              └─> Transition: log + metrics
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ipnet::IpNet;

use super::{Conn, PeerState, Speaker, StartError};
use crate::config::{Config, PeerAsn, PeerCfg};
use crate::policy::MaxPrefixEvent;
use crate::rib::{AdjRibOut, Change, OutSession, PeerInfo};
use crate::session::{Action, DownReason, Established, PeerEvent, RibAction, State};
use crate::transport::{self, Accepted, ConnKey, ConnectParams, FromConn, SocketOpts, ToConn};
use crate::wire::{AfiSafi, CeaseReason, ErrorCode, Ipv6NextHop, Message, Notification, Update};

/// The address as the peer is configured: IPv4-mapped IPv6 addresses are IPv4.
fn canonical(a: IpAddr) -> IpAddr {
    a.to_canonical()
}

fn is_global6(a: &Ipv6Addr) -> bool {
    !a.is_loopback() && !a.is_unspecified() && (a.segments()[0] & 0xffc0) != 0xfe80
}

impl Speaker {
    fn is_ebgp(&self, p: &PeerCfg) -> bool {
        match p.asn {
            PeerAsn::Number(n) => n != self.cfg.asn,
            PeerAsn::Internal => false,
            PeerAsn::External => true,
        }
    }

    /// TTL settings of a peer: GTSM sends 255 and accepts 255 only (RFC 5082); multihop sends
    /// its TTL; a directly connected eBGP peer gets TTL 1; iBGP the system default.
    fn socket_opts(&self, p: &PeerCfg) -> SocketOpts {
        let (ttl, min_ttl) = if p.ttl_security {
            (Some(255), Some(255))
        } else if let Some(h) = p.multihop {
            (Some(h), None)
        } else if self.is_ebgp(p) {
            (Some(1), None)
        } else {
            (None, None)
        };
        SocketOpts {
            md5: p.password.clone(),
            ttl,
            min_ttl,
        }
    }

    /// Set (or remove) the peer's MD5 key on every listener of its family; the first error
    /// is kept (incoming connections from the peer are then refused: fail closed).
    fn listener_keys(&mut self, addr: IpAddr) -> Option<String> {
        let key = self.peers.get(&addr).and_then(|p| p.cfg.password.clone());
        let mut err = None;
        for l in self.listeners.iter().filter(|l| l.serves(addr)) {
            if let Err(e) = l.set_md5(addr, key.as_ref())
                && key.is_some()
            {
                tracing::error!(peer = %addr, listen = %l.addr(), error = %e, "incoming connections from this peer will be refused");
                err.get_or_insert(e.to_string());
            }
        }
        err
    }

    pub(super) fn add_peer(&mut self, cfg: PeerCfg, restarting: bool) -> Result<(), StartError> {
        let addr = cfg.address;
        let fsm = crate::session::Peer::new(self.cfg.peer_config(&cfg), restarting)
            .map_err(|source| StartError::Peer { peer: addr, source })?;
        let asn = match cfg.asn {
            PeerAsn::Number(n) => n,
            PeerAsn::Internal => self.cfg.asn,
            PeerAsn::External => 0,
        };
        let id = self
            .rib
            .add_peer(PeerInfo {
                address: addr,
                asn,
                local_as: self.cfg.asn,
                router_id: Ipv4Addr::UNSPECIFIED,
                ifindex: None,
            })
            .map_err(|source| StartError::Rib { peer: addr, source })?;
        let now = Instant::now();
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let ps = PeerState {
            epoch,
            import: self.import_for(&cfg),
            export: self.cfg.export_policy(&cfg),
            cfg,
            fsm,
            id,
            conns: HashMap::new(),
            out: None,
            filtered: HashSet::new(),
            state: State::Idle,
            since: now,
            last_error: None,
            updates_in: 0,
            updates_out: 0,
            listen_key_error: None,
        };
        self.peers.insert(addr, ps);
        let key_error = self.listener_keys(addr);
        if let Some(ps) = self.peers.get_mut(&addr) {
            ps.last_error = key_error.clone();
            ps.listen_key_error = key_error;
        }
        tracing::info!(peer = %addr, "peer configured, starting");
        self.metrics.session_state(addr, State::Idle);
        let acts = match self.peers.get_mut(&addr) {
            Some(ps) => ps.fsm.handle(now, PeerEvent::ManualStart),
            None => Vec::new(),
        };
        self.execute(addr, acts, None);
        Ok(())
    }

    /// Stop a peer with `n` (Cease), forget it and its routes.
    fn remove_peer(&mut self, addr: IpAddr, n: Notification) {
        let now = Instant::now();
        let acts = match self.peers.get_mut(&addr) {
            Some(ps) => ps.fsm.handle(now, PeerEvent::AutomaticStop(n)),
            None => return,
        };
        self.execute(addr, acts, None);
        let had_key = self
            .peers
            .get(&addr)
            .is_some_and(|p| p.cfg.password.is_some());
        let Some(ps) = self.peers.remove(&addr) else {
            return;
        };
        for c in ps.conns.values() {
            let _ = c.tx.send(ToConn::Close);
        }
        let changes = self.rib.remove_peer(ps.id);
        self.fib_apply(&changes);
        if had_key {
            for l in self.listeners.iter().filter(|l| l.serves(addr)) {
                let _ = l.set_md5(addr, None);
            }
        }
        self.metrics.forget_peer(addr);
        if let Some(d) = &mut self.deferral {
            let ready = d.peer_removed(&addr);
            self.selection_ready(ready);
        }
    }

    /// Apply a new configuration, changing only what changed (see [`crate::config::diff`]).
    pub(super) fn reload(&mut self, new: Config) {
        self.file_cfg = new.clone();
        let new = new.with_mesh(&self.mesh);
        let d = crate::config::diff(&self.cfg, &new);
        if d.is_empty() {
            tracing::info!("configuration reloaded: nothing to change");
            self.cfg = new;
            return;
        }
        for k in &d.needs_restart {
            tracing::warn!(
                key = k,
                "changed in the configuration; takes effect after a restart"
            );
        }
        tracing::info!(
            added = ?d.added, removed = ?d.removed, reset = ?d.reset, policy = ?d.policy,
            prefixes_changed = d.prefixes_changed,
            "configuration reloaded"
        );
        // keys that need a restart keep their running values
        let mut new = new;
        let old = &self.cfg;
        new.listen = old.listen.clone();
        new.listen_port = old.listen_port;
        new.route_table = old.route_table;
        new.route_metric = old.route_metric;
        new.install_routes = old.install_routes;
        new.control_socket = old.control_socket.clone();
        new.metrics_bind_address = old.metrics_bind_address;
        new.node_name = old.node_name.clone();
        new.kubeconfig = old.kubeconfig.clone();
        new.manifests = old.manifests.clone();
        new.multipath = old.multipath;
        self.cfg = new;
        for a in &d.removed {
            tracing::info!(peer = %a, "peer removed from the configuration");
            self.remove_peer(
                *a,
                Notification::new(ErrorCode::Cease(CeaseReason::PeerDeconfigured)),
            );
        }
        for a in &d.reset {
            tracing::info!(peer = %a, "peer settings changed: resetting its session only");
            self.remove_peer(
                *a,
                Notification::new(ErrorCode::Cease(CeaseReason::OtherConfigurationChange)),
            );
        }
        for a in d.reset.iter().chain(&d.added) {
            if let Some(p) = self.cfg.peer(*a).cloned()
                && let Err(e) = self.add_peer(p, false)
            {
                tracing::error!(error = %e, "peer not started");
            }
        }
        for a in &d.policy {
            self.update_policy(*a);
        }
        if d.prefixes_changed {
            self.static_prefixes = self.cfg.static_prefixes();
            self.update_own();
        }
    }

    /// New import/export policy without a reset: ROUTE-REFRESH for import (RFC 2918),
    /// a re-computed Adj-RIB-Out for export.
    fn update_policy(&mut self, addr: IpAddr) {
        let Some(p) = self.cfg.peer(addr).cloned() else {
            return;
        };
        let import = self.import_for(&p);
        let export = self.cfg.export_policy(&p);
        let Some(ps) = self.peers.get_mut(&addr) else {
            return;
        };
        ps.cfg = p;
        let import_changed = ps.import != import;
        let export_changed = ps.export != export;
        ps.import = import;
        ps.export = export.clone();
        let mut acts = Vec::new();
        if import_changed && let Some(s) = ps.fsm.established() {
            for f in s.families.clone() {
                match ps.fsm.request_route_refresh(f) {
                    Ok(a) => {
                        tracing::info!(peer = %addr, family = %f, "new import policy: sending ROUTE-REFRESH (RFC 2918 §3)");
                        self.metrics.route_refresh(addr, true);
                        acts.push(a)
                    }
                    Err(e) => {
                        tracing::warn!(peer = %addr, error = %e, "new import policy applies to new routes only")
                    }
                }
            }
        }
        if export_changed && let Some(out) = &mut ps.out {
            out.set_policy(export);
            out.recompute_all(&self.rib, &self.own);
        }
        tracing::info!(peer = %addr, import_changed, export_changed, "peer policy changed, session kept");
        self.execute(addr, acts, None);
        self.flush_out(addr);
    }

    pub(super) fn accepted(&mut self, acc: Accepted) {
        let addr = canonical(acc.remote.ip());
        let Some(ps) = self.peers.get(&addr) else {
            tracing::warn!(remote = %acc.remote, "connection refused: not a configured peer");
            return;
        };
        if ps.cfg.password.is_some() && ps.listen_key_error.is_some() {
            tracing::warn!(peer = %addr, "connection refused: the MD5 key could not be set on the listener (fail closed)");
            return;
        }
        let acts = match self.peers.get_mut(&addr) {
            Some(ps) => ps
                .fsm
                .handle(Instant::now(), PeerEvent::TcpConnectionConfirmed),
            None => return,
        };
        self.execute(addr, acts, Some(acc));
    }

    pub(super) fn conn_event(&mut self, ev: FromConn) {
        use crate::session::Event;
        let key = ev.key();
        let Some(ps) = self.peers.get_mut(&key.peer) else {
            return;
        };
        if ps.epoch != key.epoch || !ps.conns.contains_key(&key.conn) {
            return; // a connection we dropped, or of a removed incarnation of the peer
        }
        let event = match ev {
            FromConn::Connected { local, .. } => {
                if let Some(c) = ps.conns.get_mut(&key.conn) {
                    c.local = Some(local);
                }
                Event::TcpCrAcked
            }
            FromConn::ConnectFailed { error, .. } => {
                tracing::info!(peer = %key.peer, conn = %key.conn, error = %error, "connection attempt failed");
                ps.last_error = Some(error);
                Event::TcpConnectionFails
            }
            FromConn::Event { event, .. } => {
                match &event {
                    Event::UpdateMsg(u) => {
                        ps.updates_in += 1;
                        self.metrics.update_received(key.peer);
                        if let Some(a) = u.action() {
                            let prefixes: Vec<IpNet> = announced(u).chain(withdrawn(u)).collect();
                            for e in &u.errors {
                                tracing::warn!(peer = %key.peer, action = %a, ?prefixes, "UPDATE error handled per RFC 7606: {e}");
                            }
                        }
                    }
                    Event::UpdateMsgErr(e) => {
                        self.metrics.update_received(key.peer);
                        self.metrics.update_error(key.peer, &e.action.to_string());
                    }
                    Event::RouteRefreshMsg(rr) => {
                        tracing::info!(peer = %key.peer, family = %rr.afi_safi, subtype = ?rr.subtype, "ROUTE-REFRESH received (RFC 2918 §4)");
                        self.metrics.route_refresh(key.peer, false);
                    }
                    _ => {}
                }
                event
            }
            FromConn::Closed { error, .. } => {
                if let Some(e) = error {
                    ps.last_error = Some(e);
                }
                Event::TcpConnectionFails
            }
        };
        let acts = ps.fsm.handle(
            Instant::now(),
            PeerEvent::Conn {
                conn: key.conn,
                event,
            },
        );
        self.execute(key.peer, acts, None);
    }

    /// Carry out a peer's actions in order; actions they cause (End-of-RIB after the initial
    /// advertisement, a max-prefix stop) are queued behind.
    pub(super) fn execute(
        &mut self,
        addr: IpAddr,
        acts: Vec<Action>,
        mut accepted: Option<Accepted>,
    ) {
        let mut queue: VecDeque<Action> = acts.into();
        let mut changes: Vec<Change> = Vec::new();
        while let Some(a) = queue.pop_front() {
            let now = Instant::now();
            if !self.peers.contains_key(&addr) {
                return;
            }
            match a {
                Action::Connect { conn } => self.connect(addr, conn),
                Action::Accept { conn } => {
                    if let Some(acc) = accepted.take() {
                        let opts = self.socket_opts(&self.peers[&addr].cfg);
                        let key = ConnKey {
                            peer: addr,
                            epoch: self.peers[&addr].epoch,
                            conn,
                        };
                        let tx =
                            transport::spawn_incoming(key, acc.stream, &opts, self.conn_tx.clone());
                        if let Some(ps) = self.peers.get_mut(&addr) {
                            ps.conns.insert(
                                conn,
                                Conn {
                                    tx,
                                    local: Some(acc.local),
                                },
                            );
                        }
                    }
                }
                Action::Refuse { reason } => {
                    tracing::info!(peer = %addr, "incoming connection refused: {reason}");
                    accepted = None;
                }
                Action::Send { conn, message } => self.send(addr, conn, message),
                Action::Drop { conn } => {
                    if let Some(c) = self
                        .peers
                        .get_mut(&addr)
                        .and_then(|p| p.conns.remove(&conn))
                    {
                        let _ = c.tx.send(ToConn::Close);
                    }
                }
                Action::Established(e) => {
                    changes.extend(self.session_up(addr, &e));
                    if !self.own_known() {
                        tracing::info!(peer = %addr, "End-of-RIB waits until our own prefixes are known (RFC 4724 §4.1)");
                    } else if let Some(ps) = self.peers.get_mut(&addr) {
                        queue.extend(ps.fsm.handle(now, PeerEvent::InitialAdvertisementComplete));
                    }
                }
                Action::SessionDown { reason, .. } => {
                    if let Some(ps) = self.peers.get_mut(&addr) {
                        if let Some(out) = &mut ps.out {
                            out.reset();
                        }
                        ps.out = None;
                        if !matches!(reason, DownReason::ManualStop { .. }) {
                            ps.last_error = Some(reason.to_string());
                        }
                    }
                    tracing::warn!(peer = %addr, "session down: {reason}");
                }
                Action::Rib(r) => {
                    let (c, more) = self.rib_action(addr, r, now);
                    changes.extend(c);
                    queue.extend(more);
                }
                Action::Transition(t) => {
                    tracing::info!(peer = %addr, conn = %t.conn, direction = %t.direction, "{t}");
                    self.metrics.transition(addr, t.from, t.to);
                    if let Some(ps) = self.peers.get_mut(&addr) {
                        let st = ps.fsm.state();
                        if st != ps.state {
                            ps.state = st;
                            ps.since = now;
                            self.metrics.session_state(addr, st);
                        }
                    }
                }
            }
        }
        self.fib_apply(&changes);
        self.peer_metrics(addr);
    }

    fn peer_metrics(&self, addr: IpAddr) {
        if let Some(ps) = self.peers.get(&addr) {
            let accepted = self.rib.peer_routes(ps.id, AfiSafi::Ipv4Unicast)
                + self.rib.peer_routes(ps.id, AfiSafi::Ipv6Unicast);
            let advertised = ps.out.as_ref().map_or(0, |o| o.len() as u64);
            self.metrics.prefixes(
                addr,
                accepted + ps.filtered.len() as u64,
                accepted,
                advertised,
            );
            let stale = self.rib.peer_stale(ps.id, AfiSafi::Ipv4Unicast)
                + self.rib.peer_stale(ps.id, AfiSafi::Ipv6Unicast);
            self.metrics.prefixes_stale(addr, stale);
        }
    }

    fn connect(&mut self, addr: IpAddr, conn: crate::session::ConnId) {
        let Some(ps) = self.peers.get(&addr) else {
            return;
        };
        let retry = Duration::from_secs(ps.cfg.connect_retry);
        let params = ConnectParams {
            remote: std::net::SocketAddr::new(addr, ps.cfg.port),
            local: ps.cfg.local_address,
            opts: self.socket_opts(&ps.cfg),
            // fail (with a reason) just before the FSM's ConnectRetryTimer gives up on it
            timeout: retry
                .saturating_sub(Duration::from_millis(200))
                .max(Duration::from_millis(500)),
        };
        let key = ConnKey {
            peer: addr,
            epoch: ps.epoch,
            conn,
        };
        let tx = transport::spawn_outgoing(key, params, self.conn_tx.clone());
        if let Some(ps) = self.peers.get_mut(&addr) {
            ps.conns.insert(conn, Conn { tx, local: None });
        }
    }

    fn send(&mut self, addr: IpAddr, conn: crate::session::ConnId, message: Message) {
        let Some(ps) = self.peers.get_mut(&addr) else {
            return;
        };
        let cx = ps
            .fsm
            .established()
            .filter(|s| s.conn == conn)
            .map(|s| s.encode.clone())
            .unwrap_or_default();
        let Some(c) = ps.conns.get(&conn) else {
            return;
        };
        let mut b = BytesMut::new();
        message.encode(&cx, &mut b);
        let open = match &message {
            Message::Open(o) => Some(Box::new(o.clone())),
            _ => None,
        };
        if let Message::Update(_) = &message {
            ps.updates_out += 1;
            self.metrics.updates_sent(addr, 1);
        }
        if let Message::Notification(n) = &message {
            tracing::info!(peer = %addr, "sending NOTIFICATION {n}");
        }
        let _ = c.tx.send(ToConn::Send {
            bytes: b.freeze(),
            open,
        });
    }

    fn send_updates(&mut self, addr: IpAddr, updates: Vec<Update>) {
        if updates.is_empty() {
            return;
        }
        let Some(ps) = self.peers.get_mut(&addr) else {
            return;
        };
        let Some(s) = ps.fsm.established() else {
            return;
        };
        let (conn, cx) = (s.conn, s.encode.clone());
        let Some(c) = ps.conns.get(&conn) else {
            return;
        };
        let mut b = BytesMut::new();
        let n = updates.len() as u64;
        for u in updates {
            Message::Update(u).encode(&cx, &mut b);
        }
        ps.updates_out += n;
        self.metrics.updates_sent(addr, n);
        let _ = c.tx.send(ToConn::Send {
            bytes: b.freeze(),
            open: None,
        });
    }

    /// Send what the peer's Adj-RIB-Out has pending.
    fn flush_out(&mut self, addr: IpAddr) {
        let ups = self
            .peers
            .get_mut(&addr)
            .and_then(|p| p.out.as_mut())
            .map(AdjRibOut::take_updates)
            .unwrap_or_default();
        self.send_updates(addr, ups);
        self.peer_metrics(addr);
    }

    /// Re-export `prefixes` to an Established peer.
    pub(super) fn export_prefixes(&mut self, addr: IpAddr, prefixes: &[IpNet]) {
        if let Some(out) = self.peers.get_mut(&addr).and_then(|p| p.out.as_mut()) {
            out.recompute(&self.rib, &self.own, prefixes.iter().copied());
        }
        self.flush_out(addr);
    }

    /// The session is up: tell the RIB who the peer is, build its Adj-RIB-Out with our next
    /// hops on the session, send it.
    fn session_up(&mut self, addr: IpAddr, e: &Established) -> Vec<Change> {
        let Some(ps) = self.peers.get(&addr) else {
            return Vec::new();
        };
        let local = ps.conns.get(&e.conn).and_then(|c| c.local).map(|l| l.ip());
        let (nh4, nh6, ifindex) = {
            let addrs = self.addrs.borrow();
            let ifindex = local
                .and_then(|l| addrs.iter().find(|a| a.net.addr() == l))
                .map(|a| a.ifindex);
            let on_if = |v6: bool| {
                addrs
                    .iter()
                    .filter(|a| Some(a.ifindex) == ifindex && a.is_global())
                    .map(|a| a.net.addr())
                    .find(|a| a.is_ipv6() == v6)
            };
            let nh4 = ps.cfg.next_hop_ipv4.or(match local {
                Some(IpAddr::V4(a)) => Some(a),
                _ => match on_if(false) {
                    Some(IpAddr::V4(a)) => Some(a),
                    _ => None,
                },
            });
            let nh6 = ps.cfg.next_hop_ipv6.or(match local {
                Some(IpAddr::V6(a)) if is_global6(&a) => Some(a),
                _ => match on_if(true) {
                    Some(IpAddr::V6(a)) => Some(a),
                    _ => None,
                },
            });
            (nh4, nh6, ifindex)
        };
        let info = PeerInfo {
            address: addr,
            asn: e.peer_as,
            local_as: self.cfg.asn,
            router_id: e.peer_id,
            ifindex,
        };
        let id = ps.id;
        let changes = self.rib.update_peer(id, info).unwrap_or_default();
        if nh6.is_none() && e.families.contains(&AfiSafi::Ipv6Unicast) {
            tracing::warn!(peer = %addr, "no IPv6 next hop of ours on this session (set next_hop_ipv6): IPv6 prefixes are not advertised to it");
        }
        let session = OutSession {
            peer: id,
            local_as: self.cfg.asn,
            peer_as: e.peer_as,
            next_hop_v4: nh4,
            next_hop_v6: nh6.map(|global| Ipv6NextHop {
                global,
                link_local: None,
            }),
            families: e.families.clone(),
            extended_next_hop: false,
            encode: e.encode.clone(),
        };
        let mut out = AdjRibOut::new(session, ps.export.clone());
        out.recompute_all(&self.rib, &self.own);
        tracing::info!(
            peer = %addr,
            asn = e.peer_as,
            router_id = %e.peer_id,
            hold_time = e.hold_time,
            families = ?e.families,
            graceful_restart = e.peer_gr.is_some() && e.local_gr,
            "session established"
        );
        if let Some(ps) = self.peers.get_mut(&addr) {
            ps.out = Some(out);
        }
        self.flush_out(addr);
        if let Some(d) = &mut self.deferral {
            let ready = d.established(&addr, e);
            self.selection_ready(ready);
        }
        changes
    }

    /// RIB work of a peer: returns the Loc-RIB changes and actions for the peer (a
    /// max-prefix stop).
    fn rib_action(
        &mut self,
        addr: IpAddr,
        r: RibAction,
        now: Instant,
    ) -> (Vec<Change>, Vec<Action>) {
        let Some(ps) = self.peers.get_mut(&addr) else {
            return (Vec::new(), Vec::new());
        };
        let id = ps.id;
        match r {
            RibAction::Update(u) => {
                let four = ps.fsm.established().is_some_and(|s| s.encode.four_octet_as);
                for p in announced(&u).chain(withdrawn(&u)) {
                    ps.filtered.remove(&p);
                }
                if let Some(a) = u.action() {
                    self.metrics.update_error(addr, &a.to_string());
                }
                let out = match self.rib.apply_update(id, &u, &ps.import, four) {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::error!(peer = %addr, error = %e, "UPDATE not applied");
                        return (Vec::new(), Vec::new());
                    }
                };
                for r in &out.rejected {
                    ps.filtered.insert(r.prefix);
                    self.metrics.rejected(addr, r.reason.label());
                }
                if let Some(first) = out.rejected.first() {
                    tracing::info!(peer = %addr, count = out.rejected.len(), "{first}");
                }
                let mut more = Vec::new();
                match &out.max_prefix {
                    Some(MaxPrefixEvent::Exceeded {
                        family,
                        limit,
                        count,
                        notification,
                    }) => {
                        tracing::warn!(peer = %addr, %family, limit, count, "maximum prefixes exceeded: closing the session (RFC 4486)");
                        ps.last_error = Some(format!(
                            "maximum prefixes exceeded: {count} > {limit} ({family})"
                        ));
                        more = ps
                            .fsm
                            .handle(now, PeerEvent::AutomaticStop(notification.clone()));
                    }
                    Some(MaxPrefixEvent::Warning {
                        family,
                        limit,
                        count,
                        crossed: true,
                    }) => {
                        tracing::warn!(peer = %addr, %family, limit, count, "maximum prefixes exceeded (warning only)");
                    }
                    _ => {}
                }
                (out.changes, more)
            }
            RibAction::Withdraw(w) => {
                let all: Vec<IpNet> = w
                    .ipv4
                    .iter()
                    .map(|n| IpNet::V4(n.prefix))
                    .chain(w.ipv6.iter().map(|n| IpNet::V6(n.prefix)))
                    .collect();
                tracing::warn!(peer = %addr, prefixes = all.len(), "malformed UPDATE treated as withdraw (RFC 7606 §2)");
                self.metrics.update_error(addr, "treat-as-withdraw");
                for p in &all {
                    ps.filtered.remove(p);
                }
                (self.rib.withdraw(id, all), Vec::new())
            }
            RibAction::EndOfRib(f) => {
                tracing::info!(peer = %addr, family = %f, "End-of-RIB received");
                if let Some(d) = &mut self.deferral {
                    let ready = d.end_of_rib(&addr, f);
                    self.selection_ready(ready);
                }
                (Vec::new(), Vec::new())
            }
            RibAction::FlushAll => {
                ps.filtered.clear();
                (self.rib.flush(id, None), Vec::new())
            }
            RibAction::Flush(f) => (self.rib.flush(id, Some(f)), Vec::new()),
            RibAction::MarkStale(f) => {
                let n = self.rib.mark_stale(id, Some(f));
                tracing::info!(peer = %addr, family = %f, routes = n, "graceful restart helper: keeping the peer's routes as stale (RFC 4724 §4.2)");
                (Vec::new(), Vec::new())
            }
            RibAction::SweepStale(f) => {
                let c = self.rib.sweep_stale(id, Some(f));
                if !c.is_empty() {
                    tracing::info!(peer = %addr, family = %f, removed = c.len(), "stale routes of the peer swept");
                }
                (c, Vec::new())
            }
            RibAction::ReAdvertise(f) => {
                let ups = ps.out.as_mut().map(|o| o.refresh(f)).unwrap_or_default();
                self.send_updates(addr, ups);
                (Vec::new(), Vec::new())
            }
        }
    }
}

/// Prefixes an UPDATE announces (NLRI field and MP_REACH_NLRI).
fn announced(u: &Update) -> impl Iterator<Item = IpNet> + '_ {
    use crate::wire::{Attr, MpReach};
    let mp = u.attrs.iter().flat_map(|a| -> Vec<IpNet> {
        match &a.attr {
            Attr::MpReach(MpReach::Ipv4Unicast { nlri, .. }) => {
                nlri.iter().map(|n| IpNet::V4(n.prefix)).collect()
            }
            Attr::MpReach(MpReach::Ipv6Unicast { nlri, .. }) => {
                nlri.iter().map(|n| IpNet::V6(n.prefix)).collect()
            }
            _ => Vec::new(),
        }
    });
    u.nlri.iter().map(|n| IpNet::V4(n.prefix)).chain(mp)
}

/// Prefixes an UPDATE withdraws (withdrawn routes and MP_UNREACH_NLRI).
fn withdrawn(u: &Update) -> impl Iterator<Item = IpNet> + '_ {
    use crate::wire::MpUnreach;
    let mp: Vec<IpNet> = match u.mp_unreach() {
        Some(MpUnreach::Ipv4Unicast(v)) => v.iter().map(|n| IpNet::V4(n.prefix)).collect(),
        Some(MpUnreach::Ipv6Unicast(v)) => v.iter().map(|n| IpNet::V6(n.prefix)).collect(),
        _ => Vec::new(),
    };
    u.withdrawn.iter().map(|n| IpNet::V4(n.prefix)).chain(mp)
}
