//! `dataplane::ipset`: `ipset save` text.
//!
//! Input: the text (invalid UTF-8 replaced).
//!
//! Asserts: no panic; an error names a line inside the text (1 ..= lines + 1); sets that parse
//! print back (`to_save`) to text that parses to the same sets.
#![no_main]

use dataplane::ipset::Sets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Sets::parse(&text) {
        Ok(sets) => {
            let saved = sets.to_save();
            let back = Sets::parse(&saved)
                .unwrap_or_else(|e| panic!("to_save output does not parse: {e}\n{saved}"));
            assert_eq!(back, sets, "save → parse changed the sets\n{saved}");
        }
        Err(e) => {
            let lines = text.lines().count();
            assert!(
                e.line >= 1 && e.line <= lines + 1,
                "line {} of {lines}: {e}",
                e.line
            );
        }
    }
});
