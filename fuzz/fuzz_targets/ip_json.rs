//! `dataplane::route`: the `ip -j` documents (`ip -j -d link show`, `ip -j addr show`,
//! `ip -j -4/-6 route show table all`, `ip -j [-6] rule show`) and the combined RouteState
//! JSON of a diag bundle.
//!
//! Input: one selector byte (modulo 7: link, addr, route4, route6, rule4, rule6, state), then
//! the JSON text (invalid UTF-8 replaced).
//!
//! Asserts: no panic; a JSON syntax error names a line inside the text, a field error an
//! element index; whatever parses emits JSON (`to_value` / `to_json`, the form `ip -j`
//! prints) that parses to the same value.
#![no_main]

use dataplane::Family;
use dataplane::route::{InterfaceAddrs, Link, ParseError, Route, RouteState, Rule};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check_err(e: &ParseError, text: &str) {
    match e {
        ParseError::Json { line, .. } => {
            let lines = text.lines().count();
            assert!(
                *line >= 1 && *line <= lines + 1,
                "line {line} of {lines}: {e}"
            );
        }
        ParseError::Field { field, .. } | ParseError::Missing { field, .. } => {
            assert!(!field.is_empty(), "a field error without the field: {e}");
        }
        _ => {}
    }
}

/// Parse, emit with `emit`, parse again: the same value.
fn round_trip<T: PartialEq + std::fmt::Debug>(
    text: &str,
    parse: impl Fn(&str) -> Result<Vec<T>, ParseError>,
    emit: impl Fn(&T) -> Value,
) {
    match parse(text) {
        Ok(items) => {
            let json = Value::Array(items.iter().map(emit).collect()).to_string();
            let back =
                parse(&json).unwrap_or_else(|e| panic!("emitted JSON does not parse: {e}\n{json}"));
            assert_eq!(back, items, "emit → parse changed the value\n{json}");
        }
        Err(e) => check_err(&e, text),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match sel % 7 {
        0 => round_trip(&text, Link::parse_doc, Link::to_value),
        1 => round_trip(&text, InterfaceAddrs::parse_doc, InterfaceAddrs::to_value),
        2 => round_trip(&text, |t| Route::parse_doc(Family::V4, t), Route::to_value),
        3 => round_trip(&text, |t| Route::parse_doc(Family::V6, t), Route::to_value),
        4 => round_trip(&text, |t| Rule::parse_doc(Family::V4, t), Rule::to_value),
        5 => round_trip(&text, |t| Rule::parse_doc(Family::V6, t), Rule::to_value),
        _ => match RouteState::from_json_str(&text) {
            Ok(st) => {
                let json = st.to_json();
                let back = RouteState::from_json(&json)
                    .unwrap_or_else(|e| panic!("to_json output does not parse: {e}\n{json}"));
                assert_eq!(back, st, "to_json → from_json changed the state\n{json}");
            }
            Err(e) => check_err(&e, &text),
        },
    }
});
