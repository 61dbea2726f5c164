//! Fuzz `Message::decode` (and the framing helper) with every session context. The first input
//! byte picks the context; the rest is one message. A decoded message that carries no RFC 7606
//! findings must survive encode → decode unchanged.
#![no_main]

use bgpd::wire::{AfiSafi, DecodeCx, EncodeCx, Message, message_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, msg)) = data.split_first() else { return };
    let both = vec![AfiSafi::Ipv4Unicast, AfiSafi::Ipv6Unicast];
    let cx = DecodeCx {
        four_octet_as: sel & 1 != 0,
        ebgp: sel & 2 != 0,
        extended_next_hop: if sel & 4 != 0 { vec![AfiSafi::Ipv4Unicast] } else { vec![] },
        add_path: if sel & 8 != 0 { both } else { vec![] },
        max_message_len: if sel & 16 != 0 { 65535 } else { 4096 },
    };
    let _ = message_len(msg, cx.max_message_len);
    let Ok(m) = Message::decode(msg, &cx) else { return };
    if let Message::Update(u) = &m {
        let _ = u.treat_as_withdraw();
        let _ = u.is_end_of_rib();
        let _ = bgpd::wire::as4::from_two_octet_peer(&u.attrs);
        if !u.errors.is_empty() {
            return;
        }
    }
    let bytes = m.to_bytes(&EncodeCx::from(&cx));
    let again = Message::decode(&bytes, &cx).expect("re-encoded message must decode");
    assert_eq!(again, m);
});
