#!/usr/bin/env bash
# The test command: formatting, lints, then every test tier (pure, kernel in network namespaces,
# real BGP peers, the IPVS VM). Run as root from a fresh clone; it installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# the VM tier (lab/tests/vm_*.rs) fails instead of skipping when it cannot boot its guest
export K8S_DATAPLANE_REQUIRE_VM=${K8S_DATAPLANE_REQUIRE_VM:-1}
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast "$@"
cargo test --workspace --doc --locked
# a short fuzz smoke of bgpd::wire's decoder, opt-in (FUZZ_SMOKE_SECS=30): `cargo fuzz` builds
# bgpd's whole dependency tree (kube included) in release with sanitizers, too slow for CI today
secs=${FUZZ_SMOKE_SECS:-0}
if ((secs > 0)); then scripts/fuzz-smoke.sh "$secs"; fi
