#!/usr/bin/env bash
# tools/bench_agent_loop.sh — how well the agents' measured profiles predict training on this
# machine (docs/benchmarks.md, "Agent loop on CPU"): a cairn-planner and two cairn-agents (one CPU
# core each, 2 worker slots each: 4 workers), their registration probes, the measured profile
# against the catalog's cpu default, then jobs of llama-tiny on 4 ranks over both agents planned on
# the measured profile, each job's mean measured step time (steps 2.., from rank 0's metrics)
# against the plan's prediction.
#
#   tools/bench_agent_loop.sh [--budget quick|full] [--batches "8 16 32"] [--seq 128] [--steps 12]
# Binaries from bazel-bin (build -c opt first). Prints Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=full; batches="8 16 32"; seq=128; steps=12
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) budget=$2; shift ;;
    --batches) batches=$2; shift ;;
    --seq) seq=$2; shift ;;
    --steps) steps=$2; shift ;;
    *) echo "usage: $0 [--budget quick|full] [--batches \"8 16 32\"] [--seq S] [--steps N]" >&2; exit 2 ;;
  esac
  shift
done
B=$PWD/bazel-bin
D=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-agents.XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$D"' EXIT
$B/planner/server/cairn-planner --db "$D/p.db" --listen 127.0.0.1:0 --metrics-address "" \
    --agent-timeout 30 > "$D/planner.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "serving on" "$D/planner.log" && break; sleep 0.1; done
export CAIRN_PLANNER=$(grep -o "serving on [^ ]*" "$D/planner.log" | awk '{print $3}')
CLI=$B/planner/cli/cairn
for i in 0 1; do
  $B/agent/cairn-agent --planner "$CAIRN_PLANNER" --node-name "node-$i" --cpu-set $(( i % $(nproc) )) \
      --cpu-slots 2 --work-dir "$D/a$i" --metrics-address "" --probe-budget "$budget" \
      --probe-max-bytes 16777216 --layer-seq-lens "$seq" --layer-micro-batches 1,2,4,8,16 \
      --train-binary $B/runtime/train/cairn-train --probe-binary $B/agent/probes/cairn-probe \
      > "$D/agent-$i.log" 2>&1 &
  pids+=($!)
done
start=$(date +%s)
for _ in $(seq 1800); do
  [ "$(cat "$D"/agent-*.log | grep -c "probe .* done")" -ge 2 ] && break; sleep 1
done
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "probes ($budget budget): $(( $(date +%s) - start )) s"
HW=$($CLI profiles list | awk '/measured/ {print $1; exit}')
MP=$($CLI profiles list --kind model | awk '{print $1; exit}')
echo; echo '```'; $CLI profiles diff --id "$HW" | grep -vE " g=(8|16) | inter-node"; echo '```'
$B/runtime/data/cairn-data README.md docs/*.md --output "$D/data" > /dev/null
echo
$CLI profiles export --id "$HW" --output "$D/hw.json" > /dev/null
# KEEP_PROFILE=FILE keeps the measured HardwareProfile (e.g. for tools/validate_cpu.sh).
[ -n "${KEEP_PROFILE:-}" ] && cp "$D/hw.json" "$KEEP_PROFILE"
echo
echo "predicted: the plan's prediction (measured hardware + measured layer times); from shapes: the"
echo "same plan on the measured hardware alone (layers from its GEMM shapes, attention kernels,"
echo "bandwidth and launch cost: what a model without a layer profile gets)."
echo
echo "| global batch x seq | plan (searched on the measured profile) | predicted step | from shapes | measured step (mean of steps 2-$steps) | measured / predicted | measured / from shapes |"
echo "|---|---|---|---|---|---|---|"
for gb in $batches; do
  out=$($CLI jobs submit --model llama-tiny --data "$D/data" --global-batch "$gb" --seq-len "$seq" \
        --steps "$steps" --profile "$HW" --model-profile "$MP" --nodes 2 --gpus-per-node 2 \
        --dtype fp32 --watch 2>&1)
  job=$(echo "$out" | grep -o "Submitted job [^ ]*" | awk '{print $3}')
  plan=$($CLI jobs show "$job" --json | grep '"plan_id"' | head -1 | cut -d'"' -f4)
  shape=$($CLI plans show --id "$plan" | sed -n 3p | sed 's/^ *pipeline: //')
  strat=$($CLI plans show --id "$plan" | { grep -m1 -E "blocks|model chunk [0-9]" || true; } | sed 's/^ *//')
  pred=$($CLI plans show --id "$plan" | sed -n 2p | awk '{print $2, $3}')
  metrics=$(ls "$D"/a*/jobs/"$job"/attempt-1/metrics.jsonl | head -1)
  $CLI plans show --id "$plan" --output "$D/plan-$gb.json" > /dev/null
  $CLI evaluate --plan "$D/plan-$gb.json" --hardware-profile "$D/hw.json" --dtype fp32 --json \
      > "$D/shapes-$gb.json"
  python3 - "$metrics" "$gb" "$seq" "$pred" "$shape; $strat" "$D/shapes-$gb.json" <<'PY'
import json, sys
path, gb, seq, pred, plan, shapes = sys.argv[1:7]
steps = [json.loads(l) for l in open(path)]
t = [s["step_time_s"] for s in steps[1:]]
mean = sum(t) / len(t)
p = float(pred.split()[0]) / (1000 if pred.split()[1] == "ms" else 1)
a = float(json.load(open(shapes))["prediction"]["step_time_s"])
print(f"| {gb} x {seq} | {plan} | {p*1e3:.1f} ms | {a*1e3:.1f} ms | {mean*1e3:.1f} ms | {mean/p:.2f} | {mean/a:.2f} |")
PY
done
