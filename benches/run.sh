#!/usr/bin/env bash
# The performance harness of issue 9: runs the measurement examples side by side with their
# anchors (iptables-restore alone, ip -batch, BIRD) REPS times, then writes per measurement a TSV
# (median, min, max across the repetitions, ratio to the anchor of the same run) into
# benches/results/, a PNG per TSV (gnuplot) and benches/results/tables.md for docs/performance.md.
#
#   sudo benches/run.sh [--reps N] [--quick] [--backend legacy|nft] [--plots DIR] [--no-build]
#                       [iptables|nftables|bgp|diag|memory|all]...
#
#   iptables  sync_netns at 1k/10k/30k Services x 10 endpoints (full and one-Service partial
#             sync, each next to iptables-restore --noflush of the same text alone) and
#             event_latency at 10k (event -> rule in the kernel through the API server double)
#   nftables  mode_scale: full sync 5k x 50 in both modes, add one Service into 10k, first-packet
#             latency at 1k/10k/30k Services (KEP-3866's chart)
#   bgp       install_bench: 100k IPv4 and 1M IPv6 prefixes into bgpd, BIRD 2, FRR, GoBGP, ip -batch
#   diag      bench_300k: diag trace and diag check on a generated ~300k-rule node
#   memory    idle VmRSS: kube-proxy-rs at 10k Services (event_latency; reused from the
#             iptables group when both run), bgpd and BIRD at 1k routes (install_bench 1000)
#
# --quick: tiny sizes and 1 repetition (unless --reps follows), to check the harness in a minute
# or two; its PNGs go to benches/results/ so the committed plots of the real run stay untouched.
# Default plots directory: docs/performance/. --backend: the iptables backend of the iptables and
# memory groups (default legacy: iptables-nft's restore of 10k x 10 takes minutes). --no-build:
# use the binaries and examples already in target/release as they are. BENCH_RESULTS=DIR: results
# elsewhere than benches/results/ (two runs with different --reps keep both).
# Needs root (network namespaces), the tools of scripts/install-deps.sh, python3 and gnuplot.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
results=${BENCH_RESULTS:-$here/results}
reps=3
reps_given=
quick=
backend=legacy
plots=
build=1
groups=()

usage() { sed -n '7,8p' "$0" | sed 's/^# *//' >&2; exit 2; }

while (($#)); do
  case $1 in
    --reps) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --reps needs a positive number" >&2; exit 2; }
      reps=$2 reps_given=1; shift 2 ;;
    --quick) quick=1; shift ;;
    --no-build) build=; shift ;;
    --backend) [[ ${2:-} == legacy || ${2:-} == nft ]] || { echo "run.sh: --backend legacy|nft" >&2; exit 2; }
      backend=$2; shift 2 ;;
    --plots) [[ -n ${2:-} ]] || usage; plots=$2; shift 2 ;;
    iptables|nftables|bgp|diag|memory) groups+=("$1"); shift ;;
    all) groups+=(iptables nftables bgp diag memory); shift ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
((${#groups[@]})) || usage
[[ $(id -u) -eq 0 ]] || { echo "run.sh: needs root (the examples create network namespaces)" >&2; exit 1; }
for tool in python3 gnuplot cargo; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done
if [[ -n $quick && -z $reps_given ]]; then reps=1; fi
if [[ -z $plots ]]; then
  if [[ -n $quick ]]; then plots=$results; else plots=$repo/docs/performance; fi
fi
has() { [[ " ${groups[*]} " == *" $1 "* ]]; }

# ---- sizes --------------------------------------------------------------------------------------
if [[ -n $quick ]]; then
  sync_sizes=(100 200) event_services=200 event_rounds=3
  mode_args=(200 5 200 "100,200")
  bgp_feeds=("2000" "2000 --v6")
  diag_rules=3000
  mem_services=200 mem_routes=1000
else
  sync_sizes=(1000 10000 30000) event_services=10000 event_rounds=20
  mode_args=(5000 50 10000 "1000,10000,30000")
  bgp_feeds=("100000" "1000000 --v6")
  diag_rules=300000
  mem_services=10000 mem_routes=1000
fi

# ---- build --------------------------------------------------------------------------------------
cd "$repo"
packages=()
if has iptables || has nftables || has memory; then packages+=(-p kube-proxy-rs); fi
if has bgp || has memory; then packages+=(-p bgpd); fi
if has diag; then packages+=(-p diag); fi
if [[ -n $build ]]; then
  echo "run.sh: cargo build --release ${packages[*]} --bins --examples"
  cargo build --release --quiet "${packages[@]}" --bins --examples
fi
target=${CARGO_TARGET_DIR:-$repo/target}
examples=$target/release/examples

# ---- results dir and machine ----------------------------------------------------------------------
rm -rf "$results/raw" "$results"/*.tsv "$results"/*.gp "$results"/*.png "$results/tables.md"
mkdir -p "$results/raw" "$plots"
version() { "$@" 2>&1 | head -n1 || true; }
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
  echo "cores: $(nproc) online ($(grep -c ^processor /proc/cpuinfo) in /proc/cpuinfo)"
  echo "memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kernel: $(uname -sr)"
  echo "iptables-legacy: $(version iptables-legacy --version)"
  echo "iptables-nft: $(version iptables-nft --version)"
  echo "nft: $(version nft --version)"
  echo "BIRD: $(version bird --version)"
  echo "FRR: $(version /usr/lib/frr/bgpd --version)"
  echo "GoBGP: $(version gobgpd --version)"
  echo "rustc: $(version rustc --version)"
  echo "mode: ${quick:+quick, }$reps repetition(s), iptables backend $backend"
} | tee "$results/machine.txt"
printf '# group\trep\texample\tcommand\tlog\n' >"$results/runs.tsv"

# run GROUP REP EXAMPLE ARGS...: one run, its output validated (report.py check) and recorded
run() {
  local group=$1 rep=$2 example=$3; shift 3
  local bin=$examples/$example
  [[ -x $bin ]] || { echo "run.sh: $bin is missing (run without --no-build)" >&2; exit 1; }
  local tag
  tag=$(printf '%s-%s-%s' "$group" "$example" "$*" | tr -c 'A-Za-z0-9_.,-' '_')
  local log=$results/raw/$tag.rep$rep.out err=$results/raw/$tag.rep$rep.err
  local shown="target/release/examples/$example $*"
  echo "run.sh: [$group rep $rep/$reps] $shown"
  local t0=$SECONDS rc=0
  "$bin" "$@" >"$log" 2>"$err" </dev/null || rc=$?
  if ((rc != 0)); then
    echo "run.sh: $example failed (exit $rc): $shown; last lines of $err:" >&2
    tail -n 15 "$err" >&2
    exit 1
  fi
  python3 "$here/report.py" check "$example" "$log" >/dev/null
  echo "run.sh:   done in $((SECONDS - t0)) s"
  printf '%s\t%s\t%s\t%s\t%s\n' "$group" "$rep" "$example" "$shown" "$log" >>"$results/runs.tsv"
}

for ((rep = 1; rep <= reps; rep++)); do
  if has iptables; then
    for n in "${sync_sizes[@]}"; do run iptables "$rep" sync_netns "$n" "$backend"; done
    run iptables "$rep" event_latency "$event_services" "$backend" "$event_rounds"
  fi
  if has nftables; then
    run nftables "$rep" mode_scale "${mode_args[@]}"
  fi
  if has bgp; then
    for feed in "${bgp_feeds[@]}"; do
      # shellcheck disable=SC2086 # "N --v6" is two arguments
      run bgp "$rep" install_bench $feed
    done
  fi
  if has diag; then
    run diag "$rep" bench_300k "$diag_rules"
  fi
  if has memory; then
    if ! has iptables; then run memory "$rep" event_latency "$mem_services" "$backend" 1; fi
    run memory "$rep" install_bench "$mem_routes" --only bgpd,bird
  fi
done

python3 "$here/report.py" report "$results" "$plots"
echo "run.sh: tables in $results/tables.md, TSVs in $results/, plots in $plots/"
