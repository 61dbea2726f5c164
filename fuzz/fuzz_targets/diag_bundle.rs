//! diag bundles: `manifest.json` (format, version, the file list) and every part a snapshot
//! reads (iptables-save of both backends and families, ipset save, `nft -j`, the `ip -j`
//! documents, neighbours, conntrack, sysctls, `ipvsadm -Sn`, Kubernetes lists, bgpd status),
//! then the blackhole catalogue on the node.
//!
//! Input: `manifest.json` text, then any number of files, each introduced by a line
//! `%% NAME` (the file name inside the bundle); invalid UTF-8 replaced in the manifest only.
//!
//! Asserts: no panic in `Bundle::from_files`, `Snapshot::from_bundle` or `check::run`; a
//! manifest error names a line inside the manifest text; a snapshot error names a file of
//! the bundle.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use diag::bundle::{Bundle, BundleError, MANIFEST};
use diag::check;
use diag::cluster::Cluster;
use diag::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fn split(data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut name = MANIFEST.to_string();
    let mut cur: Vec<u8> = Vec::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"%% ") {
            files.insert(std::mem::take(&mut name), std::mem::take(&mut cur));
            name = String::from_utf8_lossy(rest).trim_end().to_string();
        } else {
            cur.extend_from_slice(line);
        }
    }
    files.insert(name, cur);
    files
}

fuzz_target!(|data: &[u8]| {
    let files = split(data);
    let manifest_lines = String::from_utf8_lossy(&files[MANIFEST]).lines().count();
    let bundle = match Bundle::from_files(&files, Path::new("fuzz")) {
        Ok(b) => b,
        Err(e) => {
            let line = match &e {
                BundleError::Manifest { line, .. }
                | BundleError::Format { line, .. }
                | BundleError::Version { line, .. }
                | BundleError::MissingFile { line, .. }
                | BundleError::BadFileName { line, .. } => Some(*line),
                BundleError::Io { .. } | BundleError::NotABundle { .. } => None,
            };
            if let Some(line) = line {
                assert!(
                    line >= 1 && line <= manifest_lines + 1,
                    "line {line} of {manifest_lines}: {e}"
                );
            }
            return;
        }
    };
    match Snapshot::from_bundle(&bundle) {
        Ok(snap) => {
            let _ = check::run(&Cluster::new(vec![snap], Default::default()), &[], &[]);
        }
        Err(e) => assert!(!e.file.is_empty(), "a snapshot error without a file: {e}"),
    }
});
