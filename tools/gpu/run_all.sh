#!/usr/bin/env bash
# tools/gpu/run_all.sh — one device call that checks and measures the GPU runtime end to end, from
# binaries staged into .device (tools/gpu/run_all.sh --stage here first). Steps, each bounded and
# independent (a failing step does not stop the next):
#   1. the CUDA backend's tests and a quick benchmark (tools/gpu/compute_tests.sh --quick)
#   2. the NCCL communicator on one GPU (tools/gpu/comm_tests.sh)
#   3. cairn-train --device cuda: gpt2-124m and llama-tiny (loss falls, memory planned up front)
# Logs go to $OUT; a summary is printed last.
#   tools/gpu/run_all.sh --stage              # here
#   tools/gpu/run_all.sh [STEPS...]           # there (default: compute comm train)
set -uo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" = "--stage" ]; then
  bazel build -c opt //runtime/compute/cuda:cuda_backend_errors_test \
      //runtime/compute/cuda:cuda_backend_test //runtime/compute/cuda:cuda_backend_gpu_test \
      //runtime/compute/cuda:cuda_backend_bench //runtime/comm/nccl:nccl_communicator_test \
      //runtime/comm/nccl:nccl_bench //runtime/train:cairn-train //runtime/data:cairn-data || exit 1
  stage=../shared/device/stage.sh
  [ -x "$stage" ] || stage=/work/shared/device/stage.sh
  rm -rf .device
  "$stage" .device bazel-bin/runtime/compute/cuda/cuda_backend_errors_test \
      bazel-bin/runtime/compute/cuda/cuda_backend_test bazel-bin/runtime/compute/cuda/cuda_backend_gpu_test \
      bazel-bin/runtime/compute/cuda/cuda_backend_bench bazel-bin/runtime/comm/nccl/nccl_communicator_test \
      bazel-bin/runtime/comm/nccl/nccl_bench bazel-bin/runtime/train/cairn-train \
      bazel-bin/runtime/data/cairn-data
  exit $?
fi

out=${OUT:-/tmp/run_all}
mkdir -p "$out"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(compute comm train)
export LD_LIBRARY_PATH="$PWD/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
summary=()
run_step() {  # name, command...
  local name=$1; shift
  local start=$(date +%s)
  "$@" > "$out/$name.log" 2>&1
  local rc=$?
  summary+=("$(printf '%-28s exit %-3s %4ds' "$name" "$rc" "$(( $(date +%s) - start ))")")
  tail -n 25 "$out/$name.log"
}

for step in "${steps[@]}"; do
  case "$step" in
    compute) run_step compute timeout 420 tools/gpu/compute_tests.sh --quick .device ;;
    comm) run_step comm timeout 120 env DEVICE_DIR=.device tools/gpu/comm_tests.sh ;;
    train)
      head -c 40000000 /dev/urandom > /tmp/random.bin
      .device/cairn-data /tmp/random.bin --output /tmp/data > "$out/data.log" 2>&1
      run_step train_gpt2_124m timeout 240 .device/cairn-train --device cuda --model gpt2-124m \
          --plan auto --global-batch 8 --seq-len 1024 --steps 12 --data /tmp/data \
          --metrics "$out/gpt2_124m.jsonl"
      run_step train_llama_tiny timeout 120 .device/cairn-train --device cuda --model llama-tiny \
          --plan auto --global-batch 16 --seq-len 256 --steps 30 --lr 1e-3 --data /tmp/data
      ;;
    *) echo "unknown step $step" ;;
  esac
done
echo "== summary"
printf '%s\n' "${summary[@]}"
