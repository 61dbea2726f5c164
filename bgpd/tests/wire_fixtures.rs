//! Round trip of every BGP message captured from real speakers (BIRD 2, FRR, GoBGP, ExaBGP) by
//! scripts/fixtures/capture-bgp.sh: decode with the context the two OPENs negotiate, re-encode,
//! compare bytes; plus checks that the captures contain what the sessions were set up to show.

use std::collections::BTreeMap;
use std::path::Path;

use bgpd::wire::*;

struct Fixture {
    name: String,
    messages: Vec<Vec<u8>>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn load() -> BTreeMap<String, Vec<Fixture>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wire");
    let mut sessions: BTreeMap<String, Vec<Fixture>> = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("hex") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        assert!(
            first.starts_with("# ") && first.contains("capture-bgp.sh"),
            "{name}: first line must say how it was captured"
        );
        let messages: Vec<Vec<u8>> = lines.filter(|l| !l.is_empty()).map(hex).collect();
        assert!(!messages.is_empty(), "{name}: no messages");
        let (_, session) = name.split_once('-').unwrap();
        sessions
            .entry(session.to_string())
            .or_default()
            .push(Fixture { name, messages });
    }
    sessions
}

fn first_open(f: &Fixture) -> Open {
    f.messages
        .iter()
        .find_map(|m| match Message::decode(m, &DecodeCx::default()) {
            Ok(Message::Open(o)) => Some(o),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{}: no OPEN", f.name))
}

/// Every fixture decoded with the receiver's negotiated context: (file name, messages).
fn decoded() -> Vec<(String, DecodeCx, Vec<Message>)> {
    let mut out = Vec::new();
    for (session, files) in load() {
        assert_eq!(files.len(), 2, "session {session} needs both directions");
        for (i, f) in files.iter().enumerate() {
            let receiver = &files[1 - i];
            let (_, cx) = negotiate(&first_open(receiver), &first_open(f));
            let msgs = f
                .messages
                .iter()
                .enumerate()
                .map(|(n, m)| {
                    Message::decode(m, &cx)
                        .unwrap_or_else(|e| panic!("{} message {}: {e}", f.name, n + 1))
                })
                .collect();
            out.push((f.name.clone(), cx, msgs));
        }
    }
    out
}

#[test]
fn every_fixture_message_round_trips_byte_for_byte() {
    let mut count = 0;
    for (session, files) in load() {
        for (i, f) in files.iter().enumerate() {
            let (_, cx) = negotiate(&first_open(&files[1 - i]), &first_open(f));
            let enc = EncodeCx::from(&cx);
            for (n, raw) in f.messages.iter().enumerate() {
                let msg = Message::decode(raw, &cx)
                    .unwrap_or_else(|e| panic!("{} #{}: {e}", f.name, n + 1));
                if let Message::Update(u) = &msg {
                    assert!(u.errors.is_empty(), "{} #{}: {:?}", f.name, n + 1, u.errors);
                }
                assert_eq!(
                    hexs(&msg.to_bytes(&enc)),
                    hexs(raw),
                    "{} ({session}) message {}: {msg:?}",
                    f.name,
                    n + 1
                );
                count += 1;
            }
        }
    }
    assert!(count > 100, "only {count} messages");
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn print_summary() {
    for (name, cx, msgs) in decoded() {
        println!(
            "== {name} four_octet={} ebgp={} ext_nh={:?}",
            cx.four_octet_as, cx.ebgp, cx.extended_next_hop
        );
        for m in msgs {
            match m {
                Message::Update(u) => println!(
                    "  UPDATE eor={:?} wd={:?} nlri={:?} attrs={:?}",
                    u.is_end_of_rib(),
                    u.withdrawn,
                    u.nlri,
                    u.attrs
                        .iter()
                        .map(|a| (a.flags.0, &a.attr))
                        .collect::<Vec<_>>()
                ),
                other => println!("  {other:?}"),
            }
        }
    }
}
