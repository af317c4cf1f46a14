#!/usr/bin/env bash
# tools/plan_sanity.sh — the plan-sanity table of docs/cost-model.md: for catalog cases from 7B on 8
# GPUs to 405B on 16,384, the searched plan (runtime traits: cairn) against the best uniform
# Megatron-style plan the same cost model scores, with the predicted gap. Prints Markdown.
#   tools/plan_sanity.sh    (uses bazel-bin/planner/cli/cairn; `bazel build -c opt //planner/cli:cairn` first)
set -euo pipefail
cd "$(dirname "$0")/.."
C=bazel-bin/planner/cli/cairn
cases=(
  "llama2-7b h100-sxm 1 64 4096"
  "llama2-7b h100-sxm 4 512 4096"
  "llama2-13b h100-sxm 2 128 4096"
  "llama3-8b h100-sxm 8 512 8192"
  "llama2-70b h100-sxm 8 512 4096"
  "llama3-70b h100-sxm 16 256 8192"
  "llama3-70b h100-sxm 96 384 4096"
  "llama3-70b h100-sxm 128 2048 8192"
  "llama3-405b h100-sxm 256 1024 8192"
  "gpt3-175b a100-80g-sxm 128 1536 2048"
  "llama3-405b h200-sxm 2048 2048 8192"
)
echo "| model | GPUs | batch x seq | searched plan | step | MFU | best Megatron-style | its step | searched gain | search time |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in "${cases[@]}"; do
  read -r model cluster nodes batch seq <<<"$c"
  out=$($C plan --model "$model" --cluster "$cluster" --nodes "$nodes" --global-batch "$batch" \
        --seq-len "$seq" --quiet 2>&1) || { echo "| $model | $((nodes * 8)) | $batch x $seq | (no plan: $(echo "$out" | tail -1)) |||||||"; continue; }
  step=$(echo "$out" | sed -n 's/^  step \([^|]*\) |.*/\1/p' | head -1 | xargs)
  mfu=$(echo "$out" | sed -n 's/.*| MFU \([0-9.]*%\).*/\1/p' | head -1)
  pipe=$(echo "$out" | sed -n 's/^  pipeline: \(.*\)/\1/p' | head -1 | sed 's/ (micro-batch size.*//')
  # Blocks per strategy over the first plan's stages ("blocks 3-10: x" counts 8).
  strat=$(echo "$out" | awk '/^  stage /{ if (!done) s=1 } /^  time per step/{s=0; done=1}
      s && /^      blocks? [0-9]/ { line=$0; sub(/^      /,"",line); split(line, parts, ": ");
        r=parts[1]; sub(/^blocks? /,"",r); n=split(r, ab, "-"); c=(n==2? ab[2]-ab[1]+1 : 1);
        cnt[parts[2]]+=c } END { for (k in cnt) printf "%d %s\n", cnt[k], k }' |
      sort -rn | head -3 | awk '{c=$1; $1=""; printf "%s%s x%d", (NR>1?"; ":""), substr($0,2), c}')
  # The better of the two Megatron families (plain, with recomputation): description and step.
  meg=$(echo "$out" | awk '($1=="megatron" || $1=="megatron+recompute") && /\/step,/ {
      for (i=1;i<=NF;i++) if ($i ~ /^s\/step,$|^ms\/step,$/) { t=$(i-1); u=$i; d="";
        for (j=2;j<i-1;j++) d=d" "$j; sub(/\/step,/,"",u); sec=(u=="ms"? t/1000 : t);
        printf "%.6f|%s|%s %s\n", sec, d, t, u } }' | sort -t'|' -k1 -g | head -1)
  best_meg_desc=$(echo "$meg" | cut -d'|' -f2 | xargs)
  best_meg=$(echo "$meg" | cut -d'|' -f3)
  gain=$(echo "$out" | sed -n 's/^Gain over the best uniform plan (\(.*\)): \(.*\)/\2 vs \1/p')
  stime=$(echo "$out" | sed -n 's/^Search: \([^,]*\),.*/\1/p')
  echo "| $model | $((nodes * 8)) $cluster | $batch x $seq | $pipe; $strat | $step | $mfu | ${best_meg_desc:-none fits} | ${best_meg:-} | $gain | $stime |"
done
