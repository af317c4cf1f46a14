#!/usr/bin/env bash
# tools/demo_cluster.sh — the agent loop on this machine, with a walk-through (`make demo-cluster`):
# a cairn-planner, two cairn-agents as two nodes (each its own CPU core when there are two, each its
# own network namespace when the machine allows it), their probes and profiles, a cross-node probe,
# a job planned for the measured profile and trained on four CPU workers, measured vs predicted,
# the job's logs and both /metrics endpoints, then everything stopped.
#
#   tools/demo_cluster.sh [--no-netns] [--keep] [--steps N]
#     --no-netns  separate ports on loopback even where network namespaces are allowed
#     --keep      leave the planner and agents running at the end (prints how to stop them)
# Binaries come from bazel-bin (built -c opt first). State goes to $TMPDIR/cairn-demo-cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

netns=auto
keep=0
steps=30
while [ $# -gt 0 ]; do
  case "$1" in
    --no-netns) netns=no ;;
    --keep) keep=1 ;;
    --steps) steps=$2; shift ;;
    --inside) netns=inside ;;   # internal: already inside the namespaces
    *) echo "usage: $0 [--no-netns] [--keep] [--steps N]" >&2; exit 2 ;;
  esac
  shift
done

BAZEL=${BAZEL:-bazel}
# Without the CUDA toolkit the CUDA parts are left out (the Makefile passes the same flags).
[ -x /usr/local/cuda/bin/nvcc ] || BAZEL_FLAGS=${BAZEL_FLAGS:---define=cuda=off --build_tag_filters=-cuda}
if [ "$netns" != inside ]; then
  echo "== building (bazel build -c opt)"
  $BAZEL build -c opt ${BAZEL_FLAGS:-} //planner/server:cairn-planner //agent:cairn-agent //agent/probes:cairn-probe \
      //runtime/train:cairn-train //runtime/data:cairn-data //planner/cli:cairn 2>&1 | tail -1
  if [ "$netns" = auto ] && tools/netns_cluster.sh --check 2 2>/dev/null; then
    echo "== network namespaces are allowed: each agent gets its own (10.77.0.2, 10.77.0.3), the"
    echo "   planner listens on the bridge (10.77.0.1); the host's network is not touched"
    exec tools/netns_cluster.sh 2 "$0" --inside --steps "$steps" $([ $keep = 1 ] && echo --keep)
  fi
  [ "$netns" = auto ] && echo "== network namespaces are not allowed here: agents on loopback ports"
fi

B=$PWD/bazel-bin
# Output is cut with `sed -n '1,Np'`, not `head -N`: head closes the pipe early, the writer dies of
# SIGPIPE, and with pipefail that ended the demo (exit 141) whenever the output was long enough.
STATE=${TMPDIR:-/tmp}/cairn-demo-cluster
rm -rf "$STATE" && mkdir -p "$STATE"
if [ "$netns" = inside ]; then
  HOST=10.77.0.1; NODE_ADDR=(10.77.0.2 10.77.0.3); NODE_RUN=("ip netns exec node0" "ip netns exec node1")
else
  HOST=127.0.0.1; NODE_ADDR=(127.0.0.1 127.0.0.1); NODE_RUN=("" "")
fi
pids=()
cleanup() {
  [ $keep = 1 ] && return
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
wait_for() {  # wait_for FILE REGEX SECONDS
  for _ in $(seq $(( $3 * 10 ))); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1:"; tail -20 "$1"; return 1
}

echo; echo "== 1. the planner daemon"
$B/planner/server/cairn-planner --db "$STATE/planner.db" --listen "$HOST:0" \
    --metrics-address "$HOST:0" --agent-timeout 10 > "$STATE/planner.log" 2>&1 &
pids+=($!)
wait_for "$STATE/planner.log" "serving on" 10
PLANNER=$(grep -o "serving on [^ ]*" "$STATE/planner.log" | awk '{print $3}')
PMETRICS=$(grep -o "metrics on http://[^ ]*" "$STATE/planner.log" | sed 's/metrics on //')
export CAIRN_PLANNER=$PLANNER
CLI=$B/planner/cli/cairn
echo "   $(head -1 "$STATE/planner.log")"

echo; echo "== 2. two agents, two nodes of 2 CPU worker slots each; they register and probe"
ncpu=$(nproc)
for i in 0 1; do
  cpuset=()
  [ "$ncpu" -ge 2 ] && cpuset=(--cpu-set "$(( i % ncpu ))")
  ${NODE_RUN[$i]} $B/agent/cairn-agent --planner "$PLANNER" --node-name "node-$i" --cpu-slots 2 \
      "${cpuset[@]}" --work-dir "$STATE/agent-$i" --advertise-address "${NODE_ADDR[$i]}" \
      --metrics-address "${NODE_ADDR[$i]}:0" --probe-budget quick --probe-max-bytes 1048576 \
      --probe-models llama-tiny --layer-seq-lens 128 --layer-micro-batches 1,2,4,8,16 \
      --train-binary $B/runtime/train/cairn-train --probe-binary $B/agent/probes/cairn-probe \
      > "$STATE/agent-$i.log" 2>&1 &
  pids+=($!)
done
for i in 0 1; do wait_for "$STATE/agent-$i.log" "registered as" 30; done
$CLI agents list
echo "   ... probing (GEMM by layer shape, attention, memory, Gloo collectives, overlap, layers)"
for i in 0 1; do wait_for "$STATE/agent-$i.log" "probe .* done|fresh measured profile" 300; done
grep -h "probe .* done" "$STATE"/agent-*.log | sed 's/^.*\] /   /' | cut -c1-220
$CLI profiles list
HW=$($CLI profiles list | awk '/measured/ {print $1; exit}')

echo; echo "== 3. measured against the catalog's cpu default (what the planner used to assume)"
$CLI profiles diff --id "$HW" | grep -vE " g=(8|16) " | sed -n '1,24p'

echo; echo "== 4. a coordinated probe across the two nodes (groups that span them)"
out=$($CLI agents probe --cross-node --quick --suites comm)
echo "$out"
# The probe's id is the probe job's (job-...); the agent hosting its rank 0 logs "probe ID done".
PROBE=$(echo "$out" | sed -n 's/^Probe \([^ ]*\) .*/\1/p')
for _ in $(seq 1200); do
  grep -qh "probe $PROBE done" "$STATE"/agent-*.log && break; sleep 0.2
done
if ! grep -h "probe $PROBE done" "$STATE"/agent-*.log | sed 's/^.*\] /   /' | cut -c1-160; then
  echo "   the cross-node probe $PROBE did not finish in 240 s; agent logs: $STATE/agent-*.log" >&2
  exit 1
fi

echo; echo "== 5. a job planned for the agents' measured profile: llama-tiny, 4 ranks on 2 nodes"
$B/runtime/data/cairn-data README.md docs/*.md --output "$STATE/data" > /dev/null
$CLI jobs submit --model llama-tiny --data "$STATE/data" --global-batch 16 --seq-len 128 \
    --steps "$steps" --watch | tee "$STATE/job.txt"
JOB=$(grep -o "Submitted job [^ ]*" "$STATE/job.txt" | awk '{print $3}')
PLAN=$($CLI jobs show "$JOB" --json | grep '"plan_id"' | sed -n '1,1p' | cut -d'"' -f4)
echo; echo "   the plan (searched on the measured profile):"
$CLI plans show --id "$PLAN" | sed 's/^/   /' | sed -n '1,12p'

echo; echo "== 6. measured vs predicted, as the planner keeps it with the job"
$CLI jobs show "$JOB" --json | sed -n '/"measurement"/,/}/p'

echo; echo "== 7. the workers' output (cairn jobs logs $JOB --rank 0 --tail 400)"
$CLI jobs logs "$JOB" --rank 0 --tail 400

echo; echo "== 8. metrics: the planner's and an agent's /metrics"
curl -s "$PMETRICS" | grep -E '^cairn_planner_(jobs|agents)\{' | sed 's/^/   /'
AM=$(grep -o "metrics on port [0-9]*" "$STATE/agent-0.log" | awk '{print $4}')
curl -s "http://${NODE_ADDR[0]}:$AM/metrics" | grep -E '^cairn_agent_(up|devices|jobs_total|probe_age|probe_gemm|job_)' | sed 's/^/   /' | sed -n '1,20p'

if [ $keep = 1 ]; then
  echo; echo "== left running (CAIRN_PLANNER=$PLANNER); stop with: kill ${pids[*]}"
else
  echo; echo "== 9. SIGTERM: agents stop their workers and exit, then the planner"
fi
