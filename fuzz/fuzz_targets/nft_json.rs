//! `dataplane::nft`: `nft -j list ruleset` JSON.
//!
//! Input: the JSON text (invalid UTF-8 replaced).
//!
//! Asserts: no panic; a syntax error names a line inside the text, a shape error names a JSON
//! path; a ruleset that parses emits JSON (`to_json_string`) that parses to
//! the same ruleset, and its `nft -f` text (when it has one) does not panic.
#![no_main]

use dataplane::nft::{NftParseError, Ruleset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Ruleset::from_json(&text) {
        Ok(rs) => {
            let json = rs.to_json_string();
            let back = Ruleset::from_json(&json)
                .unwrap_or_else(|e| panic!("to_json_string output does not parse: {e}\n{json}"));
            assert_eq!(back, rs, "emit → parse changed the ruleset\n{json}");
            let _ = rs.to_text();
        }
        Err(NftParseError::Syntax { line, .. }) => {
            let lines = text.lines().count();
            assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}");
        }
        Err(NftParseError::Unexpected { path, .. } | NftParseError::Missing { path, .. }) => {
            assert!(!path.is_empty(), "a shape error without a JSON path");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
