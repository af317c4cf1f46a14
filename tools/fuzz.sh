#!/usr/bin/env bash
# tools/fuzz.sh — builds the libFuzzer targets with clang (Bazel --config=fuzz) and runs each for a
# bounded time on its seed corpus. docs/reliability.md lists the targets and the recorded runs.
#
#   tools/fuzz.sh                          # every target, 15 s each (what CI runs)
#   tools/fuzz.sh --seconds 600 checkpoint_fuzz
#   tools/fuzz.sh --runs 1000000 validation_fuzz plan_json_fuzz
#   tools/fuzz.sh --list
#
# Targets (name -> Bazel label; seeds in testdata/<name>/ beside the code):
#   validation_fuzz   //planner/server:validation_fuzz    every RPC's request checks and search resolution
#   plan_json_fuzz    //planner/plan:plan_json_fuzz       plan JSON import, check and evaluation
#   spec_json_fuzz    //planner/catalog:spec_json_fuzz    ModelSpec / HardwareProfile JSON
#   galvatron_fuzz    //planner/catalog:galvatron_fuzz    Galvatron strategy, profile and hardware JSON
#   token_shard_fuzz  //runtime/data:token_shard_fuzz     the token-shard reader
#   checkpoint_fuzz   //runtime/checkpoint:checkpoint_fuzz  the checkpoint reader
#
# Each run works on a copy of the seeds (the repository is not modified) under $FUZZ_WORK (default
# a temporary folder, on /dev/shm when there is one); a crash leaves its input there as crash-* and is reported with the command
# that reproduces it. Limits per input: 10 s (-timeout), 2 GiB of memory (-rss_limit_mb, and
# -malloc_limit_mb: a single allocation above it is a finding too).
#
# Output: one line per target ("fuzz: <name> OK: N runs in S s, cov C" or FAILED), then, alone on
# the last line, `N passed, N failed` counting targets. Exit status 0 when every target passed.
# Needs clang-14 and libclang-rt-14-dev (tools/install_deps.sh installs them).
set -uo pipefail
cd "$(dirname "$0")/.."
BAZEL=${BAZEL:-bazel}

declare -A LABELS=(
  [validation_fuzz]=//planner/server:validation_fuzz
  [plan_json_fuzz]=//planner/plan:plan_json_fuzz
  [spec_json_fuzz]=//planner/catalog:spec_json_fuzz
  [galvatron_fuzz]=//planner/catalog:galvatron_fuzz
  [token_shard_fuzz]=//runtime/data:token_shard_fuzz
  [checkpoint_fuzz]=//runtime/checkpoint:checkpoint_fuzz
)
ORDER=(validation_fuzz plan_json_fuzz spec_json_fuzz galvatron_fuzz token_shard_fuzz checkpoint_fuzz)

seconds=15
runs=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; seconds=""; shift 2 ;;
    --list) printf '%s\n' "${ORDER[@]}"; exit 0 ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown flag $1 (see --help)" >&2; exit 2 ;;
    *)
      if [ -z "${LABELS[$1]:-}" ]; then echo "fuzz: unknown target $1 (see --list)" >&2; exit 2; fi
      targets+=("$1"); shift ;;
  esac
done
[ "${#targets[@]}" -eq 0 ] && targets=("${ORDER[@]}")

if ! command -v clang-14 >/dev/null 2>&1; then
  echo "fuzz: clang-14 not found: run tools/install_deps.sh (clang-14, libclang-rt-14-dev)" >&2
  echo "0 passed, ${#targets[@]} failed"
  exit 1
fi

labels=()
for t in "${targets[@]}"; do labels+=("${LABELS[$t]}"); done
echo "fuzz: $BAZEL build --config=fuzz ${labels[*]}"
if ! "$BAZEL" build --config=fuzz "${labels[@]}"; then
  echo "fuzz: the fuzz targets did not build"
  echo "0 passed, ${#targets[@]} failed"
  exit 1
fi
bin=$("$BAZEL" info --config=fuzz bazel-bin 2>/dev/null)

# Targets that go through files run several times faster on a RAM file system.
scratch=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && scratch=/dev/shm
work=${FUZZ_WORK:-$(mktemp -d "$scratch/cairn-fuzz.XXXXXX")}
mkdir -p "$work"
passed=0
failed=0
for t in "${targets[@]}"; do
  label=${LABELS[$t]}
  pkg=${label#//}
  pkg=${pkg%%:*}
  exe="$bin/$pkg/$t"
  seeds="$pkg/testdata/$t"
  corpus="$work/$t/corpus"
  rm -rf "$corpus"
  mkdir -p "$corpus" "$work/$t/tmp"
  cp "$seeds"/* "$corpus"/ 2>/dev/null || true
  limit=(-max_total_time="$seconds")
  [ -n "$runs" ] && limit=(-runs="$runs")
  log="$work/$t/log"
  start=$(date +%s)
  TMPDIR="$work/$t/tmp" "$exe" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/$t/" "$corpus" >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)
  execs=$(echo "$done_line" | sed -n -E 's/^Done ([0-9]+) runs.*/\1/p')
  cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n -E 's/.*cov: ([0-9]+).*/\1/p')
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "fuzz: $t OK: ${execs:-?} runs in ${took} s, cov ${cov:-?}, corpus $(ls "$corpus" | wc -l) inputs"
  else
    failed=$((failed + 1))
    crash=$(ls "$work/$t"/crash-* "$work/$t"/leak-* "$work/$t"/timeout-* "$work/$t"/oom-* 2>/dev/null | head -n 1)
    echo "fuzz: $t FAILED (exit $rc) after ${took} s; log $log"
    grep -E 'ERROR: |runtime error|SUMMARY' "$log" | head -n 5 | sed 's/^/fuzz:   /'
    [ -n "$crash" ] && echo "fuzz:   reproduce: $exe $crash"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
