//! Fixtures for the session tests: a node (AS 65010, 198.18.0.10) peering with a ToR router
//! (AS 65000, 198.18.0.1), the router's OPEN, and UPDATEs decoded from hand-built bytes.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgpd::session::*;
use bgpd::wire::*;

pub(crate) const LOCAL_AS: u32 = 65010;
pub(crate) const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub(crate) const PEER_AS: u32 = 65000;
/// Lower than ours: on a collision our outgoing connection survives.
pub(crate) const PEER_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Higher than ours: on a collision the peer's connection survives.
pub(crate) const PEER_ID_HIGH: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 200);

pub(crate) const V4: AfiSafi = AfiSafi::Ipv4Unicast;
pub(crate) const V6: AfiSafi = AfiSafi::Ipv6Unicast;

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The instant every test starts from (one clock read per test, never asserted on).
pub(crate) fn t0() -> Instant {
    Instant::now()
}

/// eBGP to the ToR, ConnectRetryTime 5 s, everything else default (hold 90, GR with N and F).
pub(crate) fn config() -> PeerConfig {
    let mut c = PeerConfig::new(LOCAL_AS, LOCAL_ID, PeerAs::Exact(PEER_AS));
    c.connect_retry = secs(5);
    c
}

pub(crate) fn gr_cap(
    restart_time: u16,
    notification: bool,
    families: &[(AfiSafi, bool)],
) -> GracefulRestart {
    GracefulRestart {
        restart_state: false,
        notification,
        restart_time,
        families: families
            .iter()
            .map(|&(afi_safi, f)| GrFamily {
                afi_safi,
                forwarding_preserved: f,
            })
            .collect(),
    }
}

/// The router's OPEN: IPv4 and IPv6 unicast, route refresh, 4-octet AS, and the given GR
/// capability.
pub(crate) fn open_from(id: Ipv4Addr, hold: u16, gr: Option<GracefulRestart>) -> Open {
    let mut caps = vec![
        Capability::Multiprotocol(V4),
        Capability::Multiprotocol(V6),
        Capability::RouteRefresh,
        Capability::FourOctetAs(PEER_AS),
    ];
    caps.extend(gr.map(Capability::GracefulRestart));
    Open::new(PEER_AS, hold, id, caps)
}

/// The router's usual OPEN: hold 90, GR 120 s with N, F set for both families.
pub(crate) fn peer_open() -> Open {
    open_from(
        PEER_ID,
        90,
        Some(gr_cap(120, true, &[(V4, true), (V6, true)])),
    )
}

pub(crate) fn notif(code: u8, subcode: u8) -> Notification {
    Notification::new(ErrorCode::new(code, subcode))
}

pub(crate) fn open_event(o: Open) -> Event {
    Event::BgpOpen(Box::new(o))
}

pub(crate) fn update_event(u: Update) -> Event {
    Event::UpdateMsg(Box::new(u))
}

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
const AS_PATH: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8]; // [65000], 4-octet
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 198, 18, 0, 1];
const NLRI: &[u8] = &[24, 198, 18, 65]; // 198.18.65.0/24

fn update_bytes(attrs: &[&[u8]], nlri: &[u8]) -> Vec<u8> {
    let attrs = attrs.concat();
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + 4 + attrs.len() + nlri.len()) as u16).to_be_bytes());
    m.extend_from_slice(&[2, 0, 0]);
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&attrs);
    m.extend_from_slice(nlri);
    m
}

fn session_cx() -> DecodeCx {
    DecodeCx {
        four_octet_as: true,
        ebgp: true,
        ..DecodeCx::default()
    }
}

/// A well-formed UPDATE for 198.18.65.0/24 from AS 65000.
pub(crate) fn update() -> Update {
    match Message::decode(
        &update_bytes(&[ORIGIN, AS_PATH, NEXT_HOP], NLRI),
        &session_cx(),
    ) {
        Ok(Message::Update(u)) => u,
        other => panic!("{other:?}"),
    }
}

/// An UPDATE whose ORIGIN has length 2: RFC 7606 §7.1 treat-as-withdraw.
pub(crate) fn treat_as_withdraw_update() -> Update {
    let bad_origin: &[u8] = &[0x40, 1, 2, 0, 0];
    match Message::decode(
        &update_bytes(&[bad_origin, AS_PATH, NEXT_HOP], NLRI),
        &session_cx(),
    ) {
        Ok(Message::Update(u)) => {
            assert_eq!(u.action(), Some(ErrorAction::TreatAsWithdraw));
            u
        }
        other => panic!("{other:?}"),
    }
}

/// An UPDATE with LOCAL_PREF from an external peer: RFC 7606 §7.5 attribute discard.
pub(crate) fn attribute_discard_update() -> Update {
    let local_pref: &[u8] = &[0x40, 5, 4, 0, 0, 0, 100];
    match Message::decode(
        &update_bytes(&[ORIGIN, AS_PATH, NEXT_HOP, local_pref], NLRI),
        &session_cx(),
    ) {
        Ok(Message::Update(u)) => {
            assert_eq!(u.action(), Some(ErrorAction::AttributeDiscard));
            u
        }
        other => panic!("{other:?}"),
    }
}

/// An UPDATE whose attribute length overruns the message: Malformed Attribute List (3/1),
/// session reset.
pub(crate) fn update_error() -> DecodeError {
    let mut m = update_bytes(&[ORIGIN], &[]);
    m[22] = 9; // total path attribute length 9 > the 4 octets present
    Message::decode(&m, &session_cx()).unwrap_err()
}

/// A KEEPALIVE with a broken marker: Connection Not Synchronized (1/1).
pub(crate) fn header_error() -> DecodeError {
    let mut m = vec![0xff; 16];
    m[3] = 0;
    m.extend_from_slice(&[0, 19, 4]);
    Message::decode(&m, &DecodeCx::default()).unwrap_err()
}

/// An OPEN with version 3, as the decoder reports it: Unsupported Version Number (2/1, data 4).
pub(crate) fn version_error() -> DecodeError {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&[0, 29, 1, 3, 0xfd, 0xe8, 0, 90, 198, 18, 0, 1, 0]);
    Message::decode(&m, &DecodeCx::default()).unwrap_err()
}

/// The transitions among `actions`, as `from -> to` strings.
pub(crate) fn transitions(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transition(t) => Some(format!("{} -> {}", t.from, t.to)),
            _ => None,
        })
        .collect()
}

/// The actions without transitions.
pub(crate) fn effects(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| !matches!(a, Action::Transition(_)))
        .cloned()
        .collect()
}

/// Messages sent, in order.
pub(crate) fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// RIB actions, in order.
pub(crate) fn rib(actions: &[Action]) -> Vec<RibAction> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Rib(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn conn(c: ConnId, event: Event) -> PeerEvent {
    PeerEvent::Conn { conn: c, event }
}

/// The connection a `Connect` or `Accept` among `acts` names.
pub(crate) fn new_conn(acts: &[Action]) -> ConnId {
    acts.iter()
        .find_map(|a| match a {
            Action::Connect { conn } | Action::Accept { conn } => Some(*conn),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no new connection in {acts:?}"))
}

/// A started peer with its outgoing connection in OpenSent.
pub(crate) fn outgoing_open_sent(p: &mut Peer, now: Instant) -> ConnId {
    let c = new_conn(&p.handle(now, PeerEvent::ManualStart));
    p.handle(now, conn(c, Event::TcpCrAcked));
    c
}

/// Drive the outgoing connection to Established with `open` from the peer.
pub(crate) fn establish(p: &mut Peer, now: Instant, open: Open) -> ConnId {
    let c = outgoing_open_sent(p, now);
    p.handle(now, conn(c, open_event(open)));
    let acts = p.handle(now, conn(c, Event::KeepAliveMsg));
    assert!(
        acts.iter().any(|a| matches!(a, Action::Established(_))),
        "{acts:?}"
    );
    c
}

/// An FSM in `state`, reached by driving events at `now`.
pub(crate) fn fsm_in(state: State, cfg: &PeerConfig, peer: &Open, now: Instant) -> Fsm {
    let mut f = Fsm::new(ConnId(1), Direction::Outgoing, cfg, cfg.local_open(false));
    let path: &[Event] = match state {
        State::Idle => &[],
        State::Connect => &[Event::ManualStart],
        State::Active => &[Event::ManualStartWithPassiveTcpEstablishment],
        State::OpenSent => &[Event::ManualStart, Event::TcpCrAcked],
        State::OpenConfirm | State::Established => {
            &[Event::ManualStart, Event::TcpCrAcked, Event::KeepAliveMsg]
        }
    };
    for (i, e) in path.iter().enumerate() {
        if i == 2 {
            f.handle(now, open_event(peer.clone()));
            if state == State::OpenConfirm {
                break;
            }
        }
        f.handle(now, e.clone());
    }
    assert_eq!(f.state(), state, "could not drive the FSM to {state}");
    f
}
