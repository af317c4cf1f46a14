#!/usr/bin/env bash
# tools/gpu/comm_tests.sh — the communication layer's GPU checks, run on a GPU machine from the
# repository root with staged binaries (docs/building.md, "Communication tests on a GPU machine").
#
# On the development machine (repository root):
#   bazel build -c opt //runtime/comm/nccl:nccl_communicator_test \
#       //runtime/comm/nccl:nccl_multiprocess_test //runtime/comm:nccl_parity_test \
#       //runtime/comm/nccl:nccl_bench
#   ../shared/device/stage.sh .device bazel-bin/runtime/comm/nccl/nccl_communicator_test \
#       bazel-bin/runtime/comm/nccl/nccl_multiprocess_test bazel-bin/runtime/comm/nccl_parity_test \
#       bazel-bin/runtime/comm/nccl/nccl_bench
# On the GPU machine (device tool, carry [".device"]):
#   tools/gpu/comm_tests.sh
#
# Runs, from $DEVICE_DIR (default .device):
#   nccl_communicator_test   one rank on GPU 0: every operation and element type, stream order  (required)
#   nccl_multiprocess_test   ranks as processes, one GPU each: skipped with fewer than 2 GPUs   (if staged)
#   nccl_parity_test         the parity suite on NCCL, ranks as threads, one GPU each; cases
#                            needing more GPUs than visible are skipped                        (if staged)
#   nccl_bench               1 rank (and all visible GPUs when there are several), small sizes
# and prints one summary line per step. Logs go to $OUT (when set, as on the device tool) or to
# $DEVICE_DIR/logs. Exit status: 0 when every step passed, 1 otherwise.
set -uo pipefail

dir=${DEVICE_DIR:-.device}
logs=${OUT:-$dir/logs}
mkdir -p "$logs"
export LD_LIBRARY_PATH="$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
failed=0
summary=()

gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l)
echo "comm_tests: $gpus GPU(s): $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sort | uniq -c | xargs)"

# run_gtest NAME REQUIRED: runs $dir/NAME, summarises GoogleTest's counts.
run_gtest() {
  local name=$1 required=$2 bin="$dir/$1"
  if [ ! -x "$bin" ]; then
    if [ "$required" = yes ]; then
      summary+=("$name: MISSING (not staged in $dir)"); failed=1
    else
      summary+=("$name: not staged, skipped")
    fi
    return
  fi
  local start=$SECONDS
  "$bin" >"$logs/$name.log" 2>&1
  local rc=$?
  local passed skipped failures
  passed=$(grep -Eo '^\[  PASSED  \] [0-9]+' "$logs/$name.log" | grep -Eo '[0-9]+$' || true)
  skipped=$(grep -Eo '^\[  SKIPPED \] [0-9]+' "$logs/$name.log" | grep -Eo '[0-9]+$' || true)
  failures=$(grep -E '^\[  FAILED  \] [A-Za-z]' "$logs/$name.log" |
    sed -e 's/^\[  FAILED  \] /    /' -e 's/ ([0-9]* ms)$//' | sort -u)
  if [ $rc -eq 0 ]; then
    summary+=("$name: PASSED (${passed:-0} passed, ${skipped:-0} skipped, $((SECONDS - start)) s)")
  else
    summary+=("$name: FAILED (exit $rc, ${passed:-0} passed; log $logs/$name.log)")
    [ -n "$failures" ] && summary+=("$failures")
    failed=1
  fi
}

run_gtest nccl_communicator_test yes
run_gtest nccl_multiprocess_test no
run_gtest nccl_parity_test no

if [ -x "$dir/nccl_bench" ]; then
  nprocs=1
  [ "$gpus" -gt 1 ] && nprocs="1,$gpus"
  if "$dir/nccl_bench" --nproc="$nprocs" --sizes=1048576,67108864,1073741824 \
      >"$logs/nccl_bench.md" 2>"$logs/nccl_bench.err"; then
    summary+=("nccl_bench: ok (--nproc=$nprocs; table below, also in $logs/nccl_bench.md)")
  else
    summary+=("nccl_bench: FAILED (see $logs/nccl_bench.err)"); failed=1
  fi
else
  summary+=("nccl_bench: not staged, skipped")
fi

echo
echo "== summary =="
printf '%s\n' "${summary[@]}"
if [ -s "$logs/nccl_bench.md" ]; then
  echo
  cat "$logs/nccl_bench.md"
fi
[ -s "$logs/nccl_bench.err" ] && { echo; cat "$logs/nccl_bench.err"; }
exit $failed
