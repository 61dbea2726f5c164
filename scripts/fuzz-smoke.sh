#!/usr/bin/env bash
# Fuzz bgpd::wire's decoder for a while (default 60 s): seeds the corpus with every captured
# fixture message, then runs the cargo-fuzz target `decode`. The toolchain is stable, so
# RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz needs. Usage: scripts/fuzz-smoke.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
corpus=fuzz/corpus/decode
mkdir -p "$corpus"
# seeds: selector byte (bit 0: 4-octet AS, bit 2: extended next hop) + one fixture message
python3 - "$corpus" bgpd/tests/fixtures/wire/*.hex <<'PY'
import os, sys
corpus, files = sys.argv[1], sys.argv[2:]
for f in files:
    sel = b"\x00" if "as-trans" in f else b"\x05"
    msgs = [l.strip() for l in open(f) if l.strip() and not l.startswith("#")]
    for i, m in enumerate(msgs):
        name = os.path.join(corpus, "seed-%s-%d" % (os.path.basename(f)[:-4], i + 1))
        open(name, "wb").write(sel + bytes.fromhex(m))
PY
RUSTC_BOOTSTRAP=1 cargo fuzz run decode "$corpus" -- -max_total_time="$secs" -print_final_stats=1
