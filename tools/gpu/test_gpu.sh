#!/usr/bin/env bash
# tools/gpu/test_gpu.sh — `make test-gpu`: every GPU check of the runtime on a GPU machine, ending with
# the plain line `N passed, N failed` (as `make test` does).
#   - the CUDA backend's tests and bench, NCCL at world size 1, cairn-train --device cuda
#     (tools/gpu/run_all.sh: one check per step, passed when the step exits 0)
#   - engine parity with 1/2/4 processes on the GPU, 200-step CUDA vs CPU loss curves, GPU<->CPU
#     checkpoints, out-of-memory before the first step (tools/gpu/train_checks.sh: one check each)
# It runs from binaries staged into .device (the GPU machines have no Bazel): stage them on the build
# machine with `make gpu-stage` (tools/gpu/run_all.sh --stage) and copy the tree. Where Bazel and a
# GPU are both present and nothing is staged, it stages first. Logs go to $OUT (default /tmp/test_gpu).
set -uo pipefail
cd "$(dirname "$0")/../.."
export OUT=${OUT:-/tmp/test_gpu}
mkdir -p "$OUT"
if [ ! -x .device/cairn-train ]; then
  if command -v bazel > /dev/null; then
    tools/gpu/run_all.sh --stage || { echo "0 passed, 1 failed"; exit 1; }
  else
    echo "test-gpu: nothing staged in .device and no bazel here; run 'make gpu-stage' on the build machine" >&2
    echo "0 passed, 1 failed"; exit 1
  fi
fi
if ! nvidia-smi -L > /dev/null 2>&1; then
  echo "test-gpu: no GPU visible (nvidia-smi -L failed); run this on a GPU machine" >&2
  echo "0 passed, 1 failed"; exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

tools/gpu/run_all.sh compute comm train | tee "$OUT/run_all.out"
tools/gpu/train_checks.sh parity curve ckpt oom | tee "$OUT/train_checks.out"

# run_all's summary lines: "NAME exit RC SECONDS"; train_checks' verdicts: "... PASS: ..." / "FAIL".
passed=$(awk '/^== summary/{s=1;next} s && $2=="exit" && $3==0' "$OUT/run_all.out" | wc -l)
failed=$(awk '/^== summary/{s=1;next} s && $2=="exit" && $3!=0' "$OUT/run_all.out" | wc -l)
v=$(sed -n '/^== train checks/,$p' "$OUT/train_checks.out" | tail -n +2)
passed=$((passed + $(grep -c ': PASS' <<< "$v")))
failed=$((failed + $(grep -cE ': (FAIL|exit [1-9])' <<< "$v")))
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
