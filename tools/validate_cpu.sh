#!/usr/bin/env bash
# tools/validate_cpu.sh — the cost model against the CPU runtime: for each plan below, the planner's
# prediction (step time, peak memory) next to what cairn-train measures, as a Markdown table for
# docs/cost-model.md ("Validation"). Numbers are measured, never asserted.
#
#   tools/validate_cpu.sh BIN_DIR DATA_DIR [STEPS]
#     BIN_DIR   holds cairn, cairn-train (bazel-bin/planner/cli/cairn, bazel-bin/runtime/train/...)
#     DATA_DIR  token shards from cairn-data (e.g. `cairn-data docs/*.md --output DATA_DIR`)
#     STEPS     training steps per plan (default 6); the first is a warm-up and is not timed
#
# Each plan is written by `cairn evaluate --json` (uniform strategies from flags), or by
# `cairn plan` for rows whose flags start with "search" (the searched plan, restricted by the
# rest of the flags), on the `cpu` catalog cluster with N devices, then run with `cairn-train --device cpu --nproc N`. Measured step
# time: the median over steps 2..STEPS; measured peak: the largest per-rank peak of live tensors
# (the trainer's metrics), predicted peak: the planner's for the most loaded stage.
# With HARDWARE_PROFILE=FILE.json (a measured profile, e.g. an agent's from `cairn profiles export`)
# each plan is also evaluated on it (`cairn evaluate --plan ... --hardware-profile`: the same plan,
# layers from the profile's GEMM shapes, attention kernels and bandwidths): an extra column.
set -euo pipefail
BIN=${1:?BIN_DIR}
DATA=${2:?DATA_DIR}
STEPS=${3:-6}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# name model nproc global_batch seq_len evaluate-flags...
PLANS=(
  "llama-dp1|llama-tiny|1|8|128|--tp 1 --pp 1 --micro-batches 1 --dp-mode ddp"
  "llama-dp1-m4|llama-tiny|1|8|128|--tp 1 --pp 1 --micro-batches 4 --dp-mode ddp"
  "llama-dp1-rc|llama-tiny|1|8|128|--tp 1 --pp 1 --micro-batches 2 --dp-mode ddp --recompute"
  "llama-dp2|llama-tiny|2|8|128|--tp 1 --pp 1 --micro-batches 1 --dp-mode ddp"
  "llama-dp2-z1|llama-tiny|2|8|128|--tp 1 --pp 1 --micro-batches 2 --dp-mode zero1"
  "llama-dp2-z3|llama-tiny|2|8|128|--tp 1 --pp 1 --micro-batches 2 --dp-mode zero3"
  "llama-tp2|llama-tiny|2|8|128|--tp 2 --pp 1 --micro-batches 1 --mode tp --dp-mode ddp"
  "llama-tp2-sp|llama-tiny|2|8|128|--tp 2 --pp 1 --micro-batches 2 --mode tp+sp --dp-mode ddp"
  "llama-ul2|llama-tiny|2|8|128|--tp 2 --pp 1 --micro-batches 1 --mode ulysses --dp-mode ddp"
  "llama-pp2|llama-tiny|2|8|128|--tp 1 --pp 2 --micro-batches 4 --dp-mode ddp"
  "llama-pp2-gpipe|llama-tiny|2|8|128|--tp 1 --pp 2 --micro-batches 4 --dp-mode ddp --schedule gpipe"
  "llama-pp2-il|llama-tiny|2|8|128|search --pp 2 --schedules interleaved"
  "llama-searched-2|llama-tiny|2|8|128|search"
  "llama-searched-4|llama-tiny|4|16|128|search"
  "llama-dp4-z2|llama-tiny|4|16|128|--tp 1 --pp 1 --micro-batches 2 --dp-mode zero2"
  "llama-tp2-dp2|llama-tiny|4|16|128|--tp 2 --pp 1 --micro-batches 2 --mode tp+sp --dp-mode zero1"
  "llama-pp2-dp2|llama-tiny|4|16|128|--tp 1 --pp 2 --micro-batches 4 --dp-mode zero1"
  "llama-pp4|llama-tiny|4|16|128|--tp 1 --pp 4 --micro-batches 8 --dp-mode ddp"
  "llama-pp2-tp2-rc|llama-tiny|4|16|128|--tp 2 --pp 2 --micro-batches 4 --mode tp+sp --dp-mode ddp --recompute"
  "gpt-dp1|gpt2-tiny|1|8|128|--tp 1 --pp 1 --micro-batches 1 --dp-mode ddp"
  "gpt-dp2-z1|gpt2-tiny|2|8|128|--tp 1 --pp 1 --micro-batches 2 --dp-mode zero1"
  "gpt-tp2|gpt2-tiny|2|8|128|--tp 2 --pp 1 --micro-batches 1 --mode tp --dp-mode ddp"
  "gpt-pp2|gpt2-tiny|2|8|128|--tp 1 --pp 2 --micro-batches 4 --dp-mode ddp"
  "gpt-tp4|gpt2-tiny|4|16|128|--tp 4 --pp 1 --micro-batches 2 --mode tp+sp --dp-mode ddp"
  "gpt-dp4-z3|gpt2-tiny|4|16|128|--tp 1 --pp 1 --micro-batches 1 --dp-mode zero3"
)

HW=${HARDWARE_PROFILE:-}
if [ -n "$HW" ]; then
  echo "| plan | N | predicted step | measured step (median) | error | predicted on the probed profile | error | predicted peak | measured peak | error |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
else
  echo "| plan | N | predicted step | measured step (median) | error | predicted peak | measured peak | error |"
  echo "|---|---|---|---|---|---|---|---|"
fi
for row in "${PLANS[@]}"; do
  IFS='|' read -r name model nproc batch seq flags <<<"$row"
  plan="$WORK/$name.json"
  metrics="$WORK/$name.jsonl"
  common=(--model "$model" --cluster cpu --nodes 1 --gpus-per-node "$nproc" --global-batch "$batch"
          --seq-len "$seq" --dtype fp32)
  if [[ "$flags" == search* ]]; then
    # shellcheck disable=SC2086
    make_plan() { "$BIN/cairn" plan "${common[@]}" ${flags#search} --format json --output "$plan" --quiet >/dev/null; }
  else
    # shellcheck disable=SC2086
    make_plan() { "$BIN/cairn" evaluate "${common[@]}" $flags --json >"$plan"; }
  fi
  if ! make_plan 2>"$WORK/$name.err"; then
    echo "| $name | $nproc | (planner refused: $(head -c 120 "$WORK/$name.err" | tr '\n|' '  ')) | | | | | |"
    continue
  fi
  if ! "$BIN/cairn-train" --device cpu --model "$model" --plan "$plan" --nproc "$nproc" \
      --data "$DATA" --steps "$STEPS" --metrics "$metrics" >"$WORK/$name.out" 2>&1; then
    echo "| $name | $nproc | (cairn-train failed: $(tail -c 160 "$WORK/$name.out" | tr '\n|' '  ')) | | | | | |"
    continue
  fi
  probed=""
  if [ -n "$HW" ]; then
    "$BIN/cairn" evaluate --plan "$plan" --hardware-profile "$HW" --dtype fp32 --json \
        >"$WORK/$name.probed.json" 2>>"$WORK/$name.err" && probed="$WORK/$name.probed.json"
  fi
  python3 - "$name" "$nproc" "$metrics" "$HW" "$probed" <<'EOF'
import json, statistics, sys
name, nproc, path, hw, probed = sys.argv[1:6]
rows = [json.loads(l) for l in open(path) if l.strip()]
timed = [r["step_time_s"] for r in rows[1:]] or [rows[0]["step_time_s"]]
meas_t = statistics.median(timed)
meas_m = max(r["peak_memory_bytes"] for r in rows)
pred_t = rows[-1]["predicted_step_time_s"]
pred_m = rows[-1]["predicted_memory_bytes"]
def ms(x): return f"{x * 1e3:.1f} ms"
def mib(x): return f"{x / 2**20:.2f} MiB"
def err(p, m): return f"{100 * (p - m) / m:+.0f}%" if m > 0 else "n/a"
extra = ""
if hw:
    if probed:
        p = float(json.load(open(probed))["prediction"]["step_time_s"])
        extra = f" {ms(p)} | {err(p, meas_t)} |"
    else:
        extra = " (evaluate failed) | |"
print(f"| {name} | {nproc} | {ms(pred_t)} | {ms(meas_t)} | {err(pred_t, meas_t)} |{extra} "
      f"{mib(pred_m)} | {mib(meas_m)} | {err(pred_m, meas_m)} |")
EOF
done
