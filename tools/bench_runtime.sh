#!/usr/bin/env bash
# CPU training throughput of cairn-train for a few models, process counts and plans, with the
# planner's prediction beside each measurement (docs/benchmarks.md, "CPU training runtime").
# Usage: tools/bench_runtime.sh [STEPS]   (run from the repository root; builds in opt mode)
set -euo pipefail
steps=${1:-12}
bazel build -c opt //runtime/train:cairn-train //runtime/data:cairn-data //planner/cli:cairn >/dev/null
bin=bazel-bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat README.md docs/*.md > "$work/corpus.txt"
"$bin/runtime/data/cairn-data" "$work/corpus.txt" --output "$work/data" >/dev/null
echo "| model | processes | plan | batch x seq | measured step | predicted step | tokens/s | measured peak / rank | predicted peak / rank |"
echo "|---|---|---|---|---|---|---|---|---|"
run() {  # model nproc label plan-flags...
  local model=$1 nproc=$2 label=$3; shift 3
  local plan=auto
  if [ $# -gt 0 ]; then
    "$bin/planner/cli/cairn" plan --model "$model" --cluster cpu --gpus-per-node "$nproc" \
      --global-batch 16 --seq-len 128 --dtype fp32 --quiet --output "$work/plan.json" "$@" >/dev/null
    plan="$work/plan.json"
  fi
  local out
  out=$("$bin/runtime/train/cairn-train" --model "$model" --plan "$plan" --nproc "$nproc" \
    --global-batch 16 --seq-len 128 --data "$work/data" --steps "$steps" --quiet --lr 1e-3)
  local done_line
  done_line=$(grep '^done:' <<<"$out" || true)
  # done: N steps | mean step X (predicted Y) | Z tokens/s | peak memory P per rank (predicted Q)
  local meas pred tps peak ppeak
  meas=$(sed -E 's/.*mean step ([^(]*) \(predicted ([^)]*)\).*/\1/' <<<"$done_line")
  pred=$(sed -E 's/.*mean step ([^(]*) \(predicted ([^)]*)\).*/\2/' <<<"$done_line")
  tps=$(sed -E 's/.*\| ([^|]*) tokens\/s.*/\1/' <<<"$done_line")
  peak=$(sed -E 's/.*peak memory (.*) per rank.*/\1/' <<<"$done_line")
  ppeak=$(sed -E 's/.*per rank \(predicted (.*)\)/\1/' <<<"$done_line")
  echo "| $model | $nproc | $label | 16 x 128 | $meas | $pred | $tps | $peak | $ppeak |"
}
for model in gpt2-tiny llama-tiny; do
  run "$model" 1 "single process"
  run "$model" 2 "auto (searched)"
  run "$model" 2 "DP=2 DDP" --pp 1 --max-tp 1 --dp-modes ddp
  run "$model" 2 "TP=2 (Megatron-SP)" --pp 1 --modes tp+sp --micro-batches 1 --no-recompute
  run "$model" 2 "PP=2, 4 micro-batches" --pp 2 --max-tp 1 --micro-batches 4
  run "$model" 4 "auto (searched)"
  run "$model" 4 "TP=2 x DP=2 ZeRO-3" --pp 1 --modes tp --dp-modes zero3 --max-tp 2
  run "$model" 4 "PP=2 x DP=2" --pp 2 --max-tp 1 --micro-batches 4
done
