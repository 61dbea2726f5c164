//! Kubernetes manifests: kube-proxy-rs' `--manifests` parser (Services, EndpointSlices,
//! Nodes; `List`s; multi-document YAML or JSON), then the pure model and the iptables render
//! on what it read; and bgpd's Node reader (`manifests:`, pod CIDRs) on the same text.
//!
//! Input: the YAML or JSON text (invalid UTF-8 replaced).
//!
//! Asserts: no panic; an error names a line inside the text (as YAML counts lines) (1 ..= lines + 1) and a document;
//! every object the parser accepts goes through `model::build` (bad ones skipped with a reason,
//! never a panic), and the iptables rules rendered for each family form an `iptables-restore`
//! script that `dataplane` parses and applies.
#![no_main]

use std::path::Path;

use dataplane::Family;
use kube_proxy_rs::model::{self, ModelOptions};
use kube_proxy_rs::render::iptables::{RenderOptions, render_iptables};
use kube_proxy_rs::source::manifest::{self, ManifestError};
use libfuzzer_sys::fuzz_target;

#[path = "support/yaml_lines.rs"]
mod support;
use support::yaml_lines;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = yaml_lines(&text);
    match manifest::parse(Path::new("fuzz.yaml"), &text) {
        Ok(m) => {
            let opts = ModelOptions {
                node_name: "node-a".into(),
                ..ModelOptions::default()
            };
            let b = model::build(&m.services, &m.endpoint_slices, m.node("node-a"), &opts);
            for fam in [Family::V4, Family::V6] {
                let r = render_iptables(b.state(fam), &RenderOptions::default());
                if let Err(e) = r.to_ruleset() {
                    panic!("rendered rules do not restore: {e}\n{}", r.to_restore());
                }
            }
        }
        Err(e) => {
            let at = match &e {
                ManifestError::Syntax { at, .. }
                | ManifestError::NotAnObject { at, .. }
                | ManifestError::Version { at, .. } => at,
            };
            assert!(
                at.line >= 1 && at.line <= lines + 1,
                "line {} of {lines}: {e}",
                at.line
            );
            assert!(at.document >= 1, "no document: {e}");
        }
    }
    match bgpd::source::nodes_in(&text, Path::new("fuzz.yaml")) {
        Ok(nodes) => {
            for n in &nodes {
                let _ = bgpd::source::pod_cidrs(n);
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.yaml"), "{e}"),
    }
});
