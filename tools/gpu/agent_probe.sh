#!/usr/bin/env bash
# tools/gpu/agent_probe.sh — the agent's GPU probes on a GPU machine: a local cairn-planner, one
# cairn-agent owning every visible GPU that probes them at registration (cairn-probe-cuda: bf16 GEMM
# by layer shape, attention, HBM bandwidth, launch overhead, NCCL collectives when there are 2+
# GPUs, overlap, per-layer times) and uploads a HardwareProfile; then the profile against the
# catalog default (`cairn profiles diff`). Numbers for docs/benchmarks.md ("Agent GPU probes").
#
# On the development machine (Bazel, nvcc, no GPU): build -c opt and stage into DIR (default .device):
#   tools/gpu/agent_probe.sh --stage [DIR]
# On the GPU machine (the device tool, carry: [".device"]); results under $OUT (else /tmp/agent_probe):
#   tools/gpu/agent_probe.sh [--quick] [--models llama2-7b,llama3-8b] [--seq 4096[,2048...]]
#                            [--micro-batches 1,2,4] [--time-limit S] [DIR]
#     --quick       the probes' quick budget (a minute or two) instead of the full one
#     --models      catalog names or ModelSpec JSON files whose layers are probed (ModelProfiles)
#     --time-limit  seconds the probe run has (cairn-agent --probe-time-limit-s, cairn-probe
#                   --time-limit-s): cases that would start later are skipped and counted in the
#                   reports (a partial profile, exit 0). Default $CAIRN_PROBE_TIME_LIMIT_S, else
#                   300: the probe, the agent around it and a table after it fit one 10-minute
#                   device call. 0 = no limit (then nothing bounds the run but --probe-timeout-s).
# Writes: device.txt, agent.log, planner.log, profile.json (the uploaded HardwareProfile),
# model-profiles.txt, model-profile-<model>.json (each uploaded ModelProfile), diff.txt (measured vs h100-sxm / h200-sxm default), probe reports
# (report-<rank>.json, rank-<rank>.log). Exit status 0 when a measured profile was uploaded.
set -uo pipefail

cd "$(dirname "$0")/../.."
BINS=(agent/cairn-agent agent/probes/cairn-probe-cuda planner/server/cairn-planner planner/cli/cairn)

if [ "${1:-}" = "--stage" ]; then
  dir=${2:-.device}
  targets=()
  for b in "${BINS[@]}"; do targets+=("//${b%/*}:${b##*/}"); done
  bazel build -c opt "${targets[@]}" || exit 1
  paths=()
  for b in "${BINS[@]}"; do paths+=("bazel-bin/$b"); done
  stage=../shared/device/stage.sh
  [ -x "$stage" ] || stage=/work/shared/device/stage.sh
  "$stage" "$dir" "${paths[@]}" || exit 1
  echo "staged into $dir; on the GPU machine: tools/gpu/agent_probe.sh $dir"
  exit 0
fi

budget=full
models=llama2-7b
seq=4096
micro=1,2,4
limit=${CAIRN_PROBE_TIME_LIMIT_S:-300}
dir=.device
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) budget=quick ;;
    --models) models=$2; shift ;;
    --seq) seq=$2; shift ;;
    --micro-batches) micro=$2; shift ;;
    --time-limit) limit=$2; shift ;;
    -*) echo "usage: $0 --stage [DIR] | $0 [--quick] [--models M] [--seq S] [--micro-batches B] [--time-limit S] [DIR]" >&2
        exit 2 ;;
    *) dir=$1 ;;
  esac
  shift
done
out=${OUT:-/tmp/agent_probe}
mkdir -p "$out"
[ -x "$dir/cairn-agent" ] || { echo "no staged binaries in $dir (run --stage first)" >&2; exit 2; }
export LD_LIBRARY_PATH="$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
work=$(mktemp -d /tmp/agent-probe.XXXXXX)

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 | tee "$out/device.txt"

"$dir/cairn-planner" --db "$work/planner.db" --listen 127.0.0.1:0 --metrics-address "" \
    > "$work/planner.out" 2> "$out/planner.log" &
planner=$!
for _ in $(seq 300); do grep -q "serving on" "$work/planner.out" 2>/dev/null && break; sleep 0.1; done
addr=$(grep -o "serving on [^ ]*" "$work/planner.out" | awk '{print $3}')
[ -n "$addr" ] || { echo "planner did not start"; cat "$out/planner.log"; exit 1; }
echo "== planner at $addr"

# With a limit, the agent stops a probe still running 120 s after it (the case in flight at the
# limit has had that long), and this script waits 180 s beyond it: a hung probe ends the call with
# its logs instead of outlasting the lease.
if [ "$limit" != 0 ]; then
  probe_timeout=$(awk -v l="$limit" 'BEGIN { printf "%d", l + 120 }')
  wait_s=$(awk -v l="$limit" 'BEGIN { printf "%d", l + 180 }')
else
  probe_timeout=1500
  wait_s=1800
fi
echo "== probe time limit: ${limit} s (0 = none); agent stops it after ${probe_timeout} s"
"$dir/cairn-agent" --planner "$addr" --device-kind cuda --work-dir "$work/agent" \
    --probe-binary "$PWD/$dir/cairn-probe-cuda" --probe-on-register always \
    --probe-budget "$budget" --probe-models "$models" --layer-seq-lens "$seq" \
    --layer-micro-batches "$micro" --metrics-address 127.0.0.1:0 \
    --probe-time-limit-s "$limit" --probe-timeout-s "$probe_timeout" \
    > "$work/agent.out" 2> "$out/agent.log" &
agent=$!
start=$(date +%s)
ok=0
for _ in $(seq "$wait_s"); do
  if grep -q "hardware profile .* v[0-9]" "$out/agent.log"; then ok=1; break; fi
  if grep -q "probe .* failed" "$out/agent.log" || ! kill -0 $agent 2>/dev/null; then break; fi
  sleep 1
done
echo "== probe finished after $(( $(date +%s) - start )) s (ok=$ok)"
grep -E "registered|probe|profile" "$out/agent.log" | tail -20

cli=("$dir/cairn" --planner "$addr")
id=$("${cli[@]}" profiles list | awk '/measured/ {print $1; exit}')
if [ -n "$id" ]; then
  "${cli[@]}" profiles export --id "$id" --output "$out/profile.json" > /dev/null
  "${cli[@]}" profiles list --kind model > "$out/model-profiles.txt"
  while read -r mid _ mname _; do
    "${cli[@]}" profiles export --kind model --id "$mid" --output "$out/model-profile-$mname.json" \
        > /dev/null
  done < "$out/model-profiles.txt"
  "${cli[@]}" profiles diff --id "$id" | tee "$out/diff.txt"
fi
cp "$work"/agent/probes/*/report-*.json "$work"/agent/probes/*/rank-*.log "$out/" 2>/dev/null
# What the time limit left out, per rank (ProbeReport.skipped), beside the suites' progress lines.
grep -h "suite done\|suite failed" "$out"/rank-*.log 2>/dev/null | tail -8

kill -TERM $agent 2>/dev/null; wait $agent 2>/dev/null
kill -TERM $planner 2>/dev/null; wait $planner 2>/dev/null
rm -rf "$work"
[ "$ok" = 1 ] && [ -n "$id" ]
