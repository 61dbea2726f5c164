//! `dataplane::ipvs`: `ipvsadm -Sn` (the table) and `ipvsadm -Ln` listings (with `--stats`,
//! `--rate`, `--thresholds`, `--persistent-conn`, `--tun-info`, `--timeout`).
//!
//! Input: one selector byte (bit 0: listing instead of save), then the text (invalid UTF-8
//! replaced). A listing is merged into the table parsed from the part after a line `%%`, as
//! diag does with the two dumps of a bundle.
//!
//! Asserts: no panic; an error names a line inside the text (1 ..= lines + 1); a table that
//! parses prints back (`to_save`) to text that parses to the same table.
#![no_main]

use dataplane::ipvs::{IpvsError, IpvsState, Listing};
use libfuzzer_sys::fuzz_target;

fn check_line(e: &IpvsError, text: &str) {
    let line = match e {
        IpvsError::Syntax { line, .. }
        | IpvsError::UnknownService { line, .. }
        | IpvsError::Duplicate { line, .. } => *line,
    };
    let lines = text.lines().count();
    assert!(
        line >= 1 && line <= lines + 1,
        "line {line} of {lines}: {e}"
    );
}

fn save(text: &str) -> Option<IpvsState> {
    match IpvsState::from_save(text) {
        Ok(st) => {
            let saved = st.to_save();
            let back = IpvsState::from_save(&saved)
                .unwrap_or_else(|e| panic!("to_save output does not parse: {e}\n{saved}"));
            assert_eq!(back, st, "save → parse changed the table\n{saved}");
            Some(st)
        }
        Err(e) => {
            check_line(&e, text);
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if sel & 1 == 0 {
        save(&text);
        return;
    }
    let (listing, table) = text.split_once("\n%%\n").unwrap_or((&text, ""));
    match Listing::parse(listing) {
        Ok(l) => {
            if let Some(mut st) = save(table) {
                let _ = st.merge_listing(&l);
            }
        }
        Err(e) => check_line(&e, listing),
    }
});
