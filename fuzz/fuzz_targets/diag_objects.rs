//! diag's Kubernetes object reader (`--objects FILE`, and the `k8s-*.json` parts of a bundle):
//! Pods, Services, EndpointSlices, Nodes, `List`s, multi-document YAML or JSON.
//!
//! Input: the YAML or JSON text (invalid UTF-8 replaced).
//!
//! Asserts: no panic; an error names the file and a line inside the text (as YAML counts lines) (1 ..= lines + 1);
//! objects that parse print as the bundle's lists (`to_lists`), which parse back to the same
//! objects; the lookups diag's name resolution uses do not panic.
#![no_main]

use diag::objects::Objects;
use libfuzzer_sys::fuzz_target;

#[path = "support/yaml_lines.rs"]
mod support;
use support::yaml_lines;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Objects::parse("fuzz.yaml", &text) {
        Ok(objs) => {
            let [pods, services, slices, nodes] = objs.to_lists().map(|(part, list)| {
                let json = list.to_string();
                Objects::parse(&part.file_name(), &json)
                    .unwrap_or_else(|e| panic!("to_lists output does not parse: {e}\n{json}"))
            });
            assert_eq!(pods.pods, objs.pods, "PodList round trip");
            assert_eq!(services.services, objs.services, "ServiceList round trip");
            assert_eq!(
                slices.endpoint_slices, objs.endpoint_slices,
                "EndpointSliceList round trip"
            );
            assert_eq!(nodes.nodes, objs.nodes, "NodeList round trip");
            for p in &objs.pods {
                for ip in diag::objects::pod_ips(p) {
                    let _ = objs.pod_by_ip(ip);
                }
            }
            for s in &objs.services {
                for ip in diag::objects::cluster_ips(s) {
                    let _ = objs.service_by_ip(ip);
                }
            }
            for n in &objs.nodes {
                for ip in diag::objects::node_addrs(n) {
                    let _ = objs.node_by_addr(ip);
                }
            }
        }
        Err(e) => {
            let lines = yaml_lines(&text);
            assert_eq!(e.file, "fuzz.yaml");
            assert!(
                e.line >= 1 && e.line <= lines + 1,
                "line {} of {lines}: {e}",
                e.line
            );
        }
    }
});
