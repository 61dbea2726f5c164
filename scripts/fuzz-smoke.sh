#!/usr/bin/env bash
# Run every fuzz target (fuzz/fuzz_targets/*.rs) for SECONDS each (default 60), one after the
# other, after seeding each corpus from the repository's fixtures (fuzz/seeds.py). Fails when
# any target finds a crash (the input is left in fuzz/artifacts/TARGET/); prints each target's
# executions and rate. The toolchain is stable: RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo
# fuzz needs. The code is unsafe-free, so no sanitizer (-s none): libFuzzer's coverage
# guidance, debug assertions and overflow checks stay on. See docs/fuzzing.md.
# Usage: scripts/fuzz-smoke.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# the fuzz crate is its own workspace with its own target dir (fuzz/target)
unset CARGO_TARGET_DIR
export RUSTC_BOOTSTRAP=1
targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo fuzz list)
fi
python3 fuzz/seeds.py fuzz/corpus
start=$SECONDS
cargo fuzz build -s none 2>&1 | tail -n 3
build=$((SECONDS - start))
failed=()
report=()
for t in "${targets[@]}"; do
    log=$(mktemp)
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    if cargo fuzz run -s none "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -timeout=30 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
        grep -E "panicked|ERROR|SUMMARY|Test unit written|thread '" "$log" | head -n 20 || true
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    report+=("$(printf '%-18s %-6s %12s execs %8s exec/s' "$t" "$status" "${execs:-?}" "${rate:-?}")")
    rm -f "$log"
done
printf '%s\n' "fuzz smoke: ${secs}s per target, build ${build}s, total $((SECONDS - start))s" \
    "${report[@]}"
if ((${#failed[@]} > 0)); then
    echo "fuzz smoke: crashes in ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
