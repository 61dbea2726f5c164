//! Property tests of the codec on its own: encode → decode is the identity on generated
//! messages (every session context), and no input makes the decoder panic.

mod common;

use bgpd::wire::*;
use proptest::prelude::*;

/// Give every NLRI a path identifier (as on an ADD-PATH session).
fn add_path_ids(m: &mut Message) {
    let Message::Update(u) = m else { return };
    let mut id = 0u32;
    let mut next = || {
        id += 1;
        Some(id)
    };
    u.withdrawn.iter_mut().for_each(|n| n.path_id = next());
    u.nlri.iter_mut().for_each(|n| n.path_id = next());
    for a in &mut u.attrs {
        match &mut a.attr {
            Attr::MpReach(MpReach::Ipv4Unicast { nlri, .. })
            | Attr::MpUnreach(MpUnreach::Ipv4Unicast(nlri)) => {
                nlri.iter_mut().for_each(|n| n.path_id = next())
            }
            Attr::MpReach(MpReach::Ipv6Unicast { nlri, .. })
            | Attr::MpUnreach(MpUnreach::Ipv6Unicast(nlri)) => {
                nlri.iter_mut().for_each(|n| n.path_id = next())
            }
            _ => {}
        }
    }
}

fn cx(four: bool, add_path: bool) -> DecodeCx {
    DecodeCx {
        four_octet_as: four,
        ebgp: false,
        extended_next_hop: vec![AfiSafi::Ipv4Unicast],
        add_path: if add_path {
            vec![AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast]
        } else {
            vec![]
        },
        max_message_len: 65535,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity_2_octet(m in common::message(false, true), add_path in any::<bool>()) {
        let mut m = m;
        if add_path { add_path_ids(&mut m); }
        let cx = cx(false, add_path);
        let bytes = m.to_bytes(&EncodeCx::from(&cx));
        let back = Message::decode(&bytes, &cx);
        prop_assert_eq!(back, Ok(m.clone()), "bytes {:02x?}", bytes);
        // and the bytes are stable
        prop_assert_eq!(Message::decode(&bytes, &cx).unwrap().to_bytes(&EncodeCx::from(&cx)), bytes);
    }

    #[test]
    fn encode_then_decode_is_identity_4_octet(m in common::message(true, true), add_path in any::<bool>()) {
        let mut m = m;
        if add_path { add_path_ids(&mut m); }
        let cx = cx(true, add_path);
        let bytes = m.to_bytes(&EncodeCx::from(&cx));
        prop_assert_eq!(Message::decode(&bytes, &cx), Ok(m.clone()), "bytes {:02x?}", bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300), t in 0u8..8, four in any::<bool>(), ap in any::<bool>(), ebgp in any::<bool>()) {
        let mut buf = vec![0xff; 16];
        buf.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        buf.push(t);
        buf.extend_from_slice(&body);
        let cx = DecodeCx { ebgp, ..cx(four, ap) };
        let _ = message_len(&buf, 4096);
        if let Ok(Message::Update(u)) = Message::decode(&buf, &cx) {
            let _ = u.treat_as_withdraw();
            let _ = u.is_end_of_rib();
            let _ = as4::from_two_octet_peer(&u.attrs);
            let _ = Message::Update(u).to_bytes(&EncodeCx::from(&cx));
        }
        let _ = Message::decode(&body, &cx);
    }

    #[test]
    fn mutated_valid_messages_never_panic(m in common::message(true, true), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let cx = cx(true, false);
        let mut bytes = m.to_bytes(&EncodeCx::from(&cx));
        prop_assume!(bytes.len() > 20);
        for (i, v) in flips {
            let i = 19 + i.index(bytes.len() - 19).min(bytes.len() - 20);
            if i < bytes.len() { bytes[i] = v; }
        }
        let _ = Message::decode(&bytes, &cx);
        // a truncated body with a header that claims the short length
        let n = 19 + cut.index(bytes.len() - 18);
        let mut short = bytes[..n].to_vec();
        short[16..18].copy_from_slice(&(n as u16).to_be_bytes());
        if let Ok(Message::Update(u)) = Message::decode(&short, &cx) {
            let _ = u.treat_as_withdraw();
        }
    }
}
