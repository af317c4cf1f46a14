#!/usr/bin/env bash
# tools/gpu/validate_gpu.sh — the cost model against cairn-train on one GPU (docs/cost-model.md,
# "Validation on one GPU"). For each single-GPU configuration below it prints the planner's
# predicted step time from three sources next to the measured one:
#   catalog   the built-in h100-sxm / h200-sxm hardware defaults, analytic layers
#   probed    the HardwareProfile this GPU's agent probes measured (GEMM shapes, attention kernels,
#             HBM bandwidth, launch cost), analytic layers
#   +layers   the probed HardwareProfile plus the ModelProfile of measured layer times
# the trainer's measured step (its metrics' step_time_s, median of steps 3..) beside the wall time
# between its progress lines (a check on the step's clock), and predicted against measured peak
# memory (the plan's most loaded stage, without the reserve, against the engine's arena peak).
# Numbers are measured, never asserted.
#
# Runs from binaries staged into .device (tools/gpu/run_all.sh --stage and
# tools/gpu/agent_probe.sh --stage). Usage, on the GPU machine:
#   tools/gpu/validate_gpu.sh all        # probe, then as many configurations as fit in the call:
#                                        # $ALL_BUDGET_S in all (default 560 s of a 10-minute
#                                        # device call), the probe $CAIRN_PROBE_TIME_LIMIT_S
#                                        # (default here 240 s); configurations not started in
#                                        # time are listed as not run
#   tools/gpu/validate_gpu.sh probe      # the agent probes this GPU for the models below, within
#                                        # $CAIRN_PROBE_TIME_LIMIT_S (default 300 s; 0 = no limit)
#   tools/gpu/validate_gpu.sh table      # the table (uses $OUT/profile.json etc. when present);
#                                        # ONLY=name,name runs just those configurations
# and anywhere, after the GPU's files came back (nothing is run, only predicted):
#   CAIRN=bazel-bin/planner/cli/cairn OUT=DIR tools/gpu/validate_gpu.sh predict
#                                        # the table again from DIR's measured runs and probed
#                                        # profiles (the predictions need no GPU)
# Writes under $OUT (default /tmp/validate_gpu): the probe's files, validate.md, per-run logs.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/validate_gpu}
mkdir -p "$out/runs"
export LD_LIBRARY_PATH="$PWD/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
steps=${STEPS:-10}
source tools/gpu/model_specs.sh
llama_shapes 4
MODELS=gpt2-124m,/tmp/llama3-8b-l4.json,/tmp/llama2-7b-l4.json

# name | model | global batch | seq | evaluate flags (one GPU: dp 1, so the dp mode is moot)
# The two llama-tiny rows are launch-bound (a few microseconds of GPU work per kernel): their
# measured minus predicted step, one micro-batch against eight, is fitted (after the table) as a
# cost per step plus one per micro-batch that the model does not charge. On one H100 it is the
# host's time per kernel call beyond a bare launch, not a fixed cost (docs/cost-model.md, "One GPU").
CONFIGS=(
  "tiny-b1-s256|llama-tiny|1|256|--micro-batches 1"
  "tiny-b8-s256-m8|llama-tiny|8|256|--micro-batches 8"
  "gpt2-b4-s1024|gpt2-124m|4|1024|--micro-batches 1"
  "gpt2-b8-s1024-m2|gpt2-124m|8|1024|--micro-batches 2"
  "gpt2-b4-s1024-rc|gpt2-124m|4|1024|--micro-batches 1 --recompute"
  "l3-b1-s4096|/tmp/llama3-8b-l4.json|1|4096|--micro-batches 1"
  "l3-b2-s4096|/tmp/llama3-8b-l4.json|2|4096|--micro-batches 1"
  "l3-b4-s2048-m2|/tmp/llama3-8b-l4.json|4|2048|--micro-batches 2"
  "l3-b2-s4096-rc|/tmp/llama3-8b-l4.json|2|4096|--micro-batches 1 --recompute"
  "l3-b4-s1024|/tmp/llama3-8b-l4.json|4|1024|--micro-batches 1"
  "l2-b1-s4096|/tmp/llama2-7b-l4.json|1|4096|--micro-batches 1"
  "l2-b2-s2048|/tmp/llama2-7b-l4.json|2|2048|--micro-batches 1"
  "l2-b4-s2048-m2-rc|/tmp/llama2-7b-l4.json|4|2048|--micro-batches 2 --recompute"
  "l2-b4-s1024|/tmp/llama2-7b-l4.json|4|1024|--micro-batches 1"
)

start_s=$(date +%s)
deadline_s=0  # 0: no deadline
probe() {
  tools/gpu/agent_probe.sh --models "$MODELS" --seq 1024,2048,4096 --micro-batches 1,2,4 \
      --time-limit "$1" .device
}
mode=${1:-table}
case "$mode" in
  probe) probe "${CAIRN_PROBE_TIME_LIMIT_S:-300}"; exit ;;
  all)
    deadline_s=$(( start_s + ${ALL_BUDGET_S:-560} ))
    probe "${CAIRN_PROBE_TIME_LIMIT_S:-240}"
    ;;
  table|predict) ;;
  *) echo "usage: $0 all|probe|table|predict" >&2; exit 2 ;;
esac
cairn=${CAIRN:-.device/cairn}

if [ "$mode" = predict ]; then
  if [ ! -w "$out" ] || [ ! -w "$out/runs" ]; then  # the device tool's returned files are read-only
    copy=$(mktemp -d "${TMPDIR:-/tmp}/validate_gpu.XXXXXX")
    cp -r "$out"/. "$copy"/ && chmod -R u+w "$copy" && out=$copy
    echo "predict: working in $out (a writable copy)" >&2
  fi
  gpu=$(cat "$out/gpu.txt" 2>/dev/null || echo "unknown GPU")
else
  [ -d /tmp/data ] || { head -c 40000000 /dev/urandom > /tmp/random.bin
                        .device/cairn-data /tmp/random.bin --output /tmp/data > "$out/data.log" 2>&1; }
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  echo "$gpu" > "$out/gpu.txt"
fi
cluster=h100-sxm; [[ "$gpu" == *H200* ]] && cluster=h200-sxm
hw=()
[ -f "$out/profile.json" ] && hw=(--hardware-profile "$out/profile.json")

# PLAN_JSON -> "step_s peak_bytes" (the plan's prediction: most loaded stage without the reserve)
predicted() {
  python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["prediction"]
peak = max(int(m["total_bytes"]) - int(m.get("reserved_bytes", 0)) for m in p["stage_memory"])
print(p["step_time_s"], peak)' "$1"
}

rows=()
for row in "${CONFIGS[@]}"; do
  IFS='|' read -r name model batch seq flags <<< "$row"
  # ONLY=name,name: just these configurations (e.g. the ones an earlier call did not reach).
  if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  mname=$(basename "$model" .json)
  common=(--model "$model" --nodes 1 --gpus-per-node 1 --global-batch "$batch" --seq-len "$seq"
          --tp 1 --pp 1 --dp-mode ddp)
  # shellcheck disable=SC2086
  "$cairn" evaluate "${common[@]}" --cluster "$cluster" $flags --json \
      > "$out/runs/$name.catalog.json" 2> "$out/runs/$name.err" || { rows+=("| $name | evaluate failed: $(head -c 100 "$out/runs/$name.err") |"); continue; }
  plan="$out/runs/$name.catalog.json"
  cat_pred=$(predicted "$plan")
  probed_pred="- -"; layers_pred="- -"
  if [ ${#hw[@]} -gt 0 ]; then
    # shellcheck disable=SC2086
    "$cairn" evaluate "${common[@]}" "${hw[@]}" $flags --json > "$out/runs/$name.probed.json" \
        2>> "$out/runs/$name.err" && probed_pred=$(predicted "$out/runs/$name.probed.json")
    mp="$out/model-profile-$mname.json"
    if [ -f "$mp" ]; then
      # shellcheck disable=SC2086
      "$cairn" evaluate "${common[@]}" "${hw[@]}" --model-profile "$mp" $flags --json \
          > "$out/runs/$name.layers.json" 2>> "$out/runs/$name.err" &&
          layers_pred=$(predicted "$out/runs/$name.layers.json")
    fi
  fi
  if [ "$mode" = predict ]; then
    [ -s "$out/runs/$name.jsonl" ] || { rows+=("| $name | not measured |"); continue; }
  elif [ "$deadline_s" -gt 0 ] && [ "$(date +%s)" -ge "$deadline_s" ]; then
    rows+=("| $name | not run: the call's time ran out |"); continue
  else
    timeout "${RUN_TIMEOUT:-120}" .device/cairn-train --device cuda --model "$model" --plan "$plan" --nproc 1 \
        --data /tmp/data --steps "$steps" --metrics "$out/runs/$name.jsonl" \
        > "$out/runs/$name.train.log" 2>&1 || { rows+=("| $name | cairn-train failed: $(tail -c 120 "$out/runs/$name.train.log" | tr '\n|' '  ') |"); continue; }
  fi
  rows+=("$(python3 - "$name" "$out/runs/$name.jsonl" "$out/runs/$name.train.log" $cat_pred $probed_pred $layers_pred <<'PY'
import json, re, statistics, sys
name, path, log = sys.argv[1], sys.argv[2], sys.argv[3]
preds = sys.argv[4:]
rows = [json.loads(l) for l in open(path) if l.strip()]
timed = [r["step_time_s"] for r in rows[2:]] or [rows[-1]["step_time_s"]]
t = statistics.median(timed)
# A check on the step's own clock: the wall time between progress lines (steps 3.., the last one
# left out: it also validates). The two differ by the trainer's own per-step work (metrics,
# progress); a larger gap means the step's clock misses work (as it once missed the update).
elapsed = {}
for line in open(log, errors="replace"):
    m = re.search(r"step +(\d+)/\d+ .*elapsed ([\d.]+) (us|ms|s)\b", line)
    if m:
        elapsed[int(m.group(1))] = float(m.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(3)]
gaps = [elapsed[i] - elapsed[i - 1] for i in sorted(elapsed)[2:-1] if i - 1 in elapsed]
wall = f"{statistics.median(gaps) * 1e3:.1f} ms" if gaps else "-"
m = max(r["peak_memory_bytes"] for r in rows)
def cell(i):
    v = preds[i]
    if v == "-": return "-"
    v = float(v)
    return f"{v * 1e3:.1f} ms ({100 * (v - t) / t:+.1f}%)"
def mem(i):
    v = preds[i]
    if v == "-": return "-"
    v = float(v)
    return f"{v / 2**30:.2f} GiB ({100 * (v - m) / m:+.1f}%)"
print(f"| {name} | {cell(0)} | {cell(2)} | {cell(4)} | {t * 1e3:.1f} ms | {wall} | "
      f"{mem(1)} | {mem(3)} | {m / 2**30:.2f} GiB |")
PY
)")
  echo "${rows[-1]}"
done
{
  echo "GPU: $gpu; catalog cluster: $cluster; profile: ${hw[*]:-none}; $steps steps, median of steps 3..$steps"
  echo
  echo "| config | predicted (catalog) | predicted (probed) | predicted (probed + layers) | measured step | wall per step | predicted peak (catalog) | predicted peak (probed) | measured peak |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out/validate.md"

# The fixed costs the model does not charge, from the two launch-bound rows: measured minus
# predicted (probed profile) = a + m b for m micro-batches, so b = (r8 - r1) / 7 and a = r1 - b.
python3 - "$out/runs" <<'PY' | tee -a "$out/validate.md"
import json, os, statistics, sys
runs = sys.argv[1]
def residual(name):
    metrics, plan = f"{runs}/{name}.jsonl", f"{runs}/{name}.probed.json"
    if not (os.path.exists(metrics) and os.path.exists(plan)):
        return None
    rows = [json.loads(l) for l in open(metrics) if l.strip()]
    measured = statistics.median([r["step_time_s"] for r in rows[2:]] or [rows[-1]["step_time_s"]])
    return measured - json.load(open(plan))["prediction"]["step_time_s"]
r1, r8 = residual("tiny-b1-s256"), residual("tiny-b8-s256-m8")
if r1 is not None and r8 is not None:
    b = (r8 - r1) / 7
    print(f"\nUncharged fixed costs (llama-tiny rows, measured - predicted on the probed profile): "
          f"{(r1 - b) * 1e6:.0f} us per step + {b * 1e6:.0f} us per micro-batch")
PY
