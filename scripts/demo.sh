#!/usr/bin/env bash
# The main job: `lab demo`, a lab cluster in network namespaces end to end. Run as root from a
# fresh clone; it installs what it needs, builds the four binaries, and runs the demo:
# API server double + N nodes (kube-proxy-rs, bgpd) + a BIRD 2 top-of-rack router, example
# Services shown working, two faults explained by diag, then everything removed (also on
# Ctrl-C). Arguments go to `lab demo` (--nodes N, --router bird|frr, --keep, --name, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked -p lab -p kube-proxy-rs -p bgpd -p diag --bins
# lab finds kube-proxy-rs, bgpd and diag next to itself
exec "${CARGO_TARGET_DIR:-target}/release/lab" demo "$@"
