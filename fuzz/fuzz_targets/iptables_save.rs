//! `dataplane::iptables`: `iptables-save` / `ip6tables-save` text (with or without `-c`) and
//! `iptables-restore` scripts.
//!
//! Input: one selector byte (bit 0: IPv6), then the text (invalid UTF-8 replaced).
//!
//! Asserts: no panic; an error names a line inside the text (1 ..= lines + 1); a dump that
//! parses prints back (`to_save`) to text that parses to the same ruleset, and prints as a
//! restore script that parses and applies to an empty ruleset; the lazy parse agrees with the
//! full one; a restore script that parses applies without panicking.
#![no_main]

use dataplane::Family;
use dataplane::iptables::{ParseError, RestoreMode, RestoreScript, Ruleset};
use libfuzzer_sys::fuzz_target;

fn check_line(e: &ParseError, text: &str) {
    let lines = text.lines().count();
    assert!(
        e.line >= 1 && e.line <= lines + 1,
        "error names line {} of a {lines}-line text: {e}",
        e.line
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let fam = if sel & 1 == 0 { Family::V4 } else { Family::V6 };
    let text = String::from_utf8_lossy(rest);
    match Ruleset::parse(fam, &text) {
        Ok(rs) => {
            let saved = rs.to_save();
            let back = Ruleset::parse(fam, &saved)
                .unwrap_or_else(|e| panic!("to_save output does not parse: {e}\n{saved}"));
            assert_eq!(back, rs, "save → parse changed the ruleset\n{saved}");
            let restore = rs.to_restore();
            let script = RestoreScript::parse(fam, &restore)
                .unwrap_or_else(|e| panic!("to_restore output does not parse: {e}\n{restore}"));
            let mut fresh = Ruleset::new(fam);
            let _ = fresh.apply_restore(&script, RestoreMode::default());
        }
        Err(e) => {
            check_line(&e, &text);
            // the lazy parse may accept what only typing rejects, never the reverse
            if let Err(lazy) = Ruleset::parse_lazy(fam, &text) {
                assert_eq!(lazy, e, "lazy and full parse report different errors");
            }
        }
    }
    match RestoreScript::parse(fam, &text) {
        Ok(script) => {
            let mut rs = Ruleset::new(fam);
            let _ = rs.apply_restore(&script, RestoreMode::default());
        }
        Err(e) => check_line(&e, &text),
    }
});
