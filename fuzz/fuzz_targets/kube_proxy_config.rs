//! kube-proxy-rs' `--config` file (`KubeProxyConfiguration` v1alpha1, upstream's field
//! names), then merged with a command line as the program does.
//!
//! Input: the YAML or JSON text (invalid UTF-8 replaced).
//!
//! Asserts: no panic; a syntax error names a line inside the text (as YAML counts lines); a file that decodes merges
//! with an empty command line into a `Config` or a typed error (bad CIDR, bad mode, ...), and a
//! merged `Config` derives its model options and sysctls without panicking.
#![no_main]

use std::path::Path;

use kube_proxy_rs::config::file::FileError;
use kube_proxy_rs::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

#[path = "support/yaml_lines.rs"]
mod support;
use support::yaml_lines;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse_file(Path::new("config.yaml"), &text) {
        Ok(file) => {
            if let Ok(cfg) = Config::from_args_and_file(["kube-proxy-rs"], Some(&file)) {
                let _ = cfg.model_options("node-a");
                let _ = cfg.masquerade_mark();
                let _ = cfg.conntrack.sysctls(2);
            }
        }
        Err(ConfigError::File {
            source: FileError::Syntax { line, .. },
            ..
        }) => {
            let lines = yaml_lines(&text);
            assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
