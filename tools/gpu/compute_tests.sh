#!/usr/bin/env bash
# tools/gpu/compute_tests.sh — the CUDA backend's GPU tests and benchmark, from staged binaries.
#
# On the development machine (has Bazel and nvcc, no GPU): build with -c opt and stage the binaries
# and the Debian libraries they need into DIR (default .device, an ignored folder):
#   tools/gpu/compute_tests.sh --stage [DIR]
# On a GPU machine (the device tool, with carry: [".device"]): run everything, keep logs and the
# benchmark's JSON under OUT (default $OUT, else /tmp/compute_tests), and print a short summary last:
#   tools/gpu/compute_tests.sh [--quick] [--no-bench] [DIR]
#     --quick     skip the large-tensor test and run the benchmark with --quick --reps 5
#     --no-bench  tests only
#
# What runs: cuda_backend_errors_test, cuda_backend_test (the parity suite: cuBLASLt + flash, and
# the simple kernels), cuda_backend_gpu_test (determinism, flash vs simple at T 1024/2048, poisoned
# outputs, indices past 2^31, memory errors), cuda_backend_bench. Exit status: 0 when every test
# passed (the benchmark's numbers are not judged here), 1 otherwise, 2 on bad usage.
set -uo pipefail

cd "$(dirname "$0")/../.."
TARGETS=(
  //runtime/compute/cuda:cuda_backend_errors_test
  //runtime/compute/cuda:cuda_backend_test
  //runtime/compute/cuda:cuda_backend_gpu_test
  //runtime/compute/cuda:cuda_backend_bench
)
TESTS=(cuda_backend_errors_test cuda_backend_test cuda_backend_gpu_test)

if [ "${1:-}" = "--stage" ]; then
  dir=${2:-.device}
  bazel build -c opt "${TARGETS[@]}" || exit 1
  bins=()
  for t in "${TARGETS[@]}"; do bins+=("bazel-bin/runtime/compute/cuda/${t##*:}"); done
  stage=../shared/device/stage.sh
  [ -x "$stage" ] || stage=/work/shared/device/stage.sh
  "$stage" "$dir" "${bins[@]}" || exit 1
  echo "staged into $dir; on the GPU machine: tools/gpu/compute_tests.sh $dir"
  exit 0
fi

quick=0
bench=1
dir=.device
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --no-bench) bench=0 ;;
    -*) echo "usage: $0 --stage [DIR] | $0 [--quick] [--no-bench] [DIR]" >&2; exit 2 ;;
    *) dir=$arg ;;
  esac
done
out=${OUT:-/tmp/compute_tests}
mkdir -p "$out"
[ -d "$dir" ] || { echo "no staged binaries in $dir (run --stage on the development machine)" >&2; exit 2; }
export LD_LIBRARY_PATH="$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 | tee "$out/device.txt"

summary=()
failed=0
for t in "${TESTS[@]}"; do
  filter=()
  if [ "$quick" = 1 ] && [ "$t" = cuda_backend_gpu_test ]; then
    filter=(--gtest_filter=-*LargeTensors*:*LlamaSized*)
  fi
  echo "== $t"
  start=$(date +%s)
  timeout 540 "$dir/$t" --gtest_output="xml:$out/$t.xml" "${filter[@]}" > "$out/$t.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  grep -E '^\[  (FAILED|PASSED|SKIPPED) |^flash vs|Failure$|^Expected|Which is|actual:' "$out/$t.log" | head -60
  passed=$(grep -c '^\[       OK \]' "$out/$t.log")
  nfailed=$(grep -cE '^\[  FAILED  \] .*\(' "$out/$t.log")
  skipped=$(grep -cE '^\[  SKIPPED \] .*\(' "$out/$t.log")
  [ "$rc" = 0 ] || failed=1
  status=ok
  [ "$rc" = 0 ] || status="FAILED (exit $rc)"
  [ "$rc" = 124 ] && status="TIMEOUT"
  summary+=("$(printf '%-26s %-18s %3d passed %3d failed %3d skipped  %4ds' "$t" "$status" "$passed" "$nfailed" "$skipped" "$secs")")
done

if [ "$bench" = 1 ]; then
  echo "== cuda_backend_bench"
  args=(--json "$out/bench.json")
  [ "$quick" = 1 ] && args+=(--quick --reps 5)
  timeout 540 "$dir/cuda_backend_bench" "${args[@]}" > "$out/bench.txt" 2> "$out/bench.err"
  rc=$?
  # The table (the progress lines went to bench.err).
  cat "$out/bench.txt"
  [ "$rc" = 0 ] || { summary+=("cuda_backend_bench         FAILED (exit $rc): see bench.err"); tail -5 "$out/bench.err"; }
fi

echo
echo "== summary (logs in $out)"
for line in "${summary[@]}"; do echo "$line"; done
grep -h '^flash vs' "$out"/cuda_backend_gpu_test.log 2>/dev/null | sed 's/^/  /'
if [ -s "$out/bench.txt" ]; then
  grep -E '^ceilings:' "$out/bench.txt"
  # Headline rows: flash attention at T 4096 D 128, the slowest memory-bound row relative to copy.
  awk '$0 ~ /attention fwd/ && $0 ~ /T4096/ && $0 ~ /D128/ && $0 ~ /flash/ {print "  " $0}' "$out/bench.txt" | head -3
fi
exit "$failed"
