#!/usr/bin/env bash
# tools/published_runs.sh — published large-scale training runs of other runtimes, each rebuilt as
# a plan (`cairn evaluate` with uniform flags on a catalog cluster) and its predicted throughput
# printed next to the published one. Prints a Markdown table (docs/cost-model.md, "Published runs").
#
#   tools/published_runs.sh [CAIRN_BINARY]   (default bazel-bin/planner/cli/cairn;
#                                             `bazel build -c opt //planner/cli:cairn` first)
#
# Every row states its source (paper or document, table, URL in docs/cost-model.md) and what the
# source does not say (left as an assumption in the row's note). Metrics are compared in the
# source's own unit:
#   hw-tflops   Megatron's hardware TFLOP/s per GPU, 96 B s l h^2 (1 + s/6h + V/16lh) / step / N
#               (Narayanan et al. 2021, eq. 3; it counts the recomputed forward)
#   model-tflops  model TFLOP/s per GPU: Cairn's MFU (6 x matmul params + 12 L h s per token) x peak
#   tok/s/GPU   tokens per second per GPU
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-bazel-bin/planner/cli/cairn}
M1T=tools/published_runs/gpt-1t.json

# source | model | cluster | nodes | batch | seq | metric | published | runtime | flags | note
rows=(
  "Narayanan 2021|$M1T|a100-80g-sxm|384|3072|2048|hw-tflops|163|megatron-core|--tp 8 --pp 64 --micro-batch-size 1 --mode tp --dp-mode ddp --recompute|1T GPT, TP 8 x PP 64 x DP 6, full recompute; batch 3072 and 1F1B (not interleaved) assumed"
  "Llama 3 (Table 4)|llama3-405b|h100-sxm|1024|2048|8192|model-tflops|430|megatron-core|--tp 8 --pp 16 --micro-batch-size 1|TP 8 x PP 16 x DP 64, 16M tokens per batch; first and last stage one block less (the paper's split: 7, 8 x 14, 7); 1F1B, no recompute assumed (schedule not in the table)"
  "Llama 3 (Table 4)|llama3-405b|h100-sxm|1024|2048|8192|model-tflops|430|megatron-core|--tp 8 --pp 16 --micro-batch-size 1 --schedule interleaved --virtual-stages 2 --chunk-layout slots|as above, interleaved v = 2 ASSUMED (the paper does not give v): 32 chunks of 4 layer slots, embedding and head counted"
  "Llama 3 (Table 4)|llama3-405b|h100-sxm|1024|2048|8192|model-tflops|430|megatron-core|--tp 8 --pp 16 --micro-batch-size 1 --schedule interleaved --virtual-stages 4 --chunk-layout slots|as above, interleaved v = 4 ASSUMED (the paper does not give v): 64 chunks of 2 layer slots"
  "Llama 3 (Table 4)|llama3-405b|h100-sxm|2048|2048|8192|model-tflops|400|megatron-core|--tp 8 --pp 16 --micro-batch-size 1|TP 8 x PP 16 x DP 128, 16M tokens per batch; first and last stage one block less; 1F1B, no recompute assumed"
  "Llama 3 (Table 4)|llama3-405b|h100-sxm|2048|2048|8192|model-tflops|400|megatron-core|--tp 8 --pp 16 --micro-batch-size 1 --schedule interleaved --virtual-stages 2 --chunk-layout slots|as above, interleaved v = 2 ASSUMED (not in the paper), 4 slots per chunk"
  "Llama 3 (Table 4)|llama3-405b|h100-sxm|2048|2048|8192|model-tflops|400|megatron-core|--tp 8 --pp 16 --micro-batch-size 1 --schedule interleaved --virtual-stages 4 --chunk-layout slots|as above, interleaved v = 4 ASSUMED (not in the paper), 2 slots per chunk"
  "TorchTitan A100|llama3-8b|a100-80g-sxm|8|64|8192|tok/s/GPU|2904|cairn|--tp 1 --pp 1 --micro-batches 1 --dp-mode zero3|FSDP2 64 GPUs, local batch 1, selective layer AC (modelled as none)"
  "TorchTitan A100|llama3-70b|a100-80g-sxm|8|64|8192|tok/s/GPU|331|cairn|--tp 1 --pp 1 --micro-batches 1 --dp-mode zero3 --recompute|FSDP2 64 GPUs, local batch 1, full AC"
  "TorchTitan A100|llama2-13b|a100-80g-sxm|8|128|4096|tok/s/GPU|2162|cairn|--tp 1 --pp 1 --micro-batches 1 --dp-mode zero3|FSDP2 64 GPUs, local batch 2, no AC"
  "TorchTitan A100|llama2-70b|a100-80g-sxm|8|128|4096|tok/s/GPU|353|cairn|--tp 1 --pp 1 --micro-batches 1 --dp-mode zero3 --recompute|FSDP2 64 GPUs, local batch 2, full AC"
  "TorchTitan H100|llama3-8b|h100-sxm|1|16|8192|tok/s/GPU|5762|cairn|--tp 1 --pp 1 --micro-batches 1 --dp-mode zero3|FSDP2 8 GPUs, local batch 2, selective AC (as none), eager; 96 GB HBM2e H100 at 500 W, not the catalog's 700 W HBM3; seq 8192 assumed"
  "TorchTitan H100|llama3-8b|h100-sxm|16|256|8192|tok/s/GPU|5605|cairn|--tp 1 --pp 1 --micro-batches 1 --dp-mode zero3|FSDP2 128 GPUs, as above"
)

echo "| source | model | GPUs | configuration | metric | published | predicted | predicted / published | fits | note |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  IFS='|' read -r src model cluster nodes batch seq metric published runtime flags note <<<"$r"
  # shellcheck disable=SC2086
  out=$($C evaluate --model "$model" --cluster "$cluster" --nodes "$nodes" --global-batch "$batch" \
        --seq-len "$seq" --runtime "$runtime" $flags 2>&1) || true
  line=$(echo "$out" | grep -m1 '^  step ' || true)
  name=$(basename "$model" .json)
  gpus=$((nodes * 8))
  if [[ -z "$line" ]]; then
    echo "| $src | $name | $gpus | $runtime $flags | $metric | $published | (no prediction: $(echo "$out" | tail -1)) | | | $note |"
    continue
  fi
  step=$(echo "$line" | awk '{v=$2; if ($3=="ms") v/=1000; if ($3=="us") v/=1e6; print v}')
  mfu=$(echo "$line" | sed -n 's/.*MFU \([0-9.]*\)%.*/\1/p')
  fits=$(echo "$out" | grep -q VIOLATION && echo "no" || echo "yes")
  dims=$($C models --json "$model" 2>/dev/null || cat "$model")
  L=$(echo "$dims" | sed -n 's/.*"num_layers": \([0-9]*\).*/\1/p')
  H=$(echo "$dims" | sed -n 's/.*"hidden_size": \([0-9]*\).*/\1/p')
  V=$(echo "$dims" | sed -n 's/.*"vocab_size": \([0-9]*\).*/\1/p')
  peak=$(echo "$out" | grep -q a100 && echo 312 || echo 989)
  pred=$(awk -v m="$metric" -v st="$step" -v B="$batch" -v s="$seq" -v N="$gpus" -v L="$L" \
             -v h="$H" -v V="$V" -v mfu="$mfu" -v peak="$peak" 'BEGIN {
    if (m == "hw-tflops") printf "%.0f", 96*B*s*L*h*h*(1 + s/(6*h) + V/(16*L*h)) / st / N / 1e12;
    else if (m == "model-tflops") printf "%.0f", mfu / 100 * peak;
    else printf "%.0f", B * s / st / N }')
  ratio=$(awk -v a="$pred" -v b="$published" 'BEGIN { printf "%.2f", a / b }')
  echo "| $src | $name | $gpus $cluster | $runtime $flags | $metric | $published | $pred | $ratio | $fits | $note |"
done
