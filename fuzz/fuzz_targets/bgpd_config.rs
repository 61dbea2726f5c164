//! bgpd's YAML configuration file (`bgpd --config`): decoding, the checks across keys, and
//! what the daemon derives from it.
//!
//! Input: the YAML text (invalid UTF-8 replaced).
//!
//! Asserts: no panic; an error names a key and a line inside the text (as YAML counts lines) (or none when the
//! parser cannot place it); a config that parses derives its peer, policy, FIB and RIB
//! settings without panicking, differs from itself by nothing, and (without passwords, which
//! print as `<redacted>`) prints as YAML that parses to the same config.
#![no_main]

use std::path::Path;

use bgpd::config::{self, Config};
use libfuzzer_sys::fuzz_target;

#[path = "support/yaml_lines.rs"]
mod support;
use support::yaml_lines;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text, Path::new("bgpd.yaml")) {
        Ok(cfg) => {
            let _ = cfg.listen_addrs();
            let _ = cfg.fib_config();
            let _ = cfg.rib_options();
            let own = cfg.static_prefixes();
            for p in &cfg.peers {
                let _ = cfg.peer_config(p);
                let _ = cfg.import_policy(p, &own);
                let _ = cfg.export_policy(p);
            }
            assert!(
                config::diff(&cfg, &cfg).is_empty(),
                "a config differs from itself"
            );
            let yaml = serde_yaml::to_string(&cfg).expect("a config serializes");
            if !yaml.contains("<redacted>") {
                let back = Config::parse(&yaml, Path::new("bgpd.yaml"))
                    .unwrap_or_else(|e| panic!("printed config does not parse: {e}\n{yaml}"));
                assert_eq!(back, cfg, "print → parse changed the config\n{yaml}");
            }
        }
        Err(e) => {
            let lines = yaml_lines(&text);
            if let Some(line) = e.line() {
                assert!(line <= lines + 1, "line {line} of {lines}: {e}");
            }
            assert!(
                e.key().is_some_and(|k| !k.is_empty()),
                "an error without a key: {e}"
            );
        }
    }
});
