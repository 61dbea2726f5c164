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
# every fuzz target for a short smoke (docs/fuzzing.md): FUZZ_SMOKE_SECS per target (0 skips);
# the instrumented build holds only the pure libraries (no default features): 700 s of CPU cold;
# 5 s a target keeps the whole test run inside the CI budget
secs=${FUZZ_SMOKE_SECS:-5}
if ((secs > 0)); then scripts/fuzz-smoke.sh "$secs"; fi
