#!/usr/bin/env bash
# tools/gpu/train_checks.sh — the GPU runtime's end-to-end checks and speed runs, on a GPU machine,
# from binaries staged into .device (tools/gpu/run_all.sh --stage). Each step writes its logs and
# metrics (JSON lines) under $OUT and prints a one-line verdict; tools/gpu/compare_runs.py does the
# arithmetic. Steps (any subset, in order):
#   parity   llama-tiny under explicit plans on CUDA with 1, 2 and 4 processes sharing the GPU
#            (staged Gloo): every rank count matches 1 process within bf16 tolerance
#   curve    200 steps of gpt2-tiny and llama-tiny on CUDA (bf16) against the CPU (fp32)
#   ckpt     a checkpoint written on the GPU resumes on the CPU, and the reverse
#   oom      a plan that cannot fit is refused before the first step, with the numbers
#   speed    cairn-train on gpt2-124m (seq 1024), Llama-3-8B-shaped layers (seq 4096) and
#            Llama-2-7B-shaped layers (seq 4096), then PyTorch eager and compiled on the same shapes
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/train_checks}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
T=.device/cairn-train
cmp=tools/gpu/compare_runs.py
verdicts=()

if [ ! -d /tmp/data ]; then
  head -c 40000000 /dev/urandom > /tmp/random.bin
  .device/cairn-data /tmp/random.bin --output /tmp/data > "$out/data.log" 2>&1
fi

# plan FILE DEVICES STRATEGY [STAGES MICRO]: a llama-tiny plan (4 blocks, batch 16, seq 256).
plan() {
  python3 - "$@" <<'PY'
import json, sys
path, devices, strategy = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
stages = int(sys.argv[4]) if len(sys.argv) > 4 else 1
micro = int(sys.argv[5]) if len(sys.argv) > 5 else 1
blocks, first, st = 4 // stages, 0, []
for s in range(stages):
    n = blocks + (s == 0) + (s == stages - 1)
    st.append({"first_layer": first, "num_layers": n}); first += n
layers = [dict(strategy, index=i, tp_consecutive=True) for i in range(6)]
json.dump({"format_version": 1, "model_name": "llama-tiny", "num_nodes": 1,
           "devices_per_node": devices, "global_batch_size": 16, "seq_len": 256,
           "num_micro_batches": micro, "pipeline_degree": stages, "stages": st,
           "layers": layers}, open(path, "w"))
PY
}

train() {  # NAME ARGS...: runs cairn-train, metrics to $out/NAME.jsonl, log to $out/NAME.log
  local name=$1; shift
  rm -f "$out/$name.jsonl"
  timeout 300 $T --data /tmp/data --metrics "$out/$name.jsonl" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  [ $rc = 0 ] || { echo "$name: exit $rc"; tail -5 "$out/$name.log"; }
  return $rc
}

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(parity curve ckpt oom)
for step in "${steps[@]}"; do
  case "$step" in
    parity)
      plan /tmp/one.json 1 '{"tp_degree": 1}'
      plan /tmp/dp2.json 2 '{"tp_degree": 1, "dp_mode": "DATA_PARALLEL_MODE_ZERO1"}'
      plan /tmp/tp2sp_z3.json 4 '{"tp_degree": 2, "mode": "PARALLEL_MODE_TENSOR_SEQUENCE", "dp_mode": "DATA_PARALLEL_MODE_ZERO3"}'
      plan /tmp/ulysses2.json 2 '{"tp_degree": 2, "mode": "PARALLEL_MODE_ULYSSES"}'
      plan /tmp/pp2.json 4 '{"tp_degree": 1}' 2 4
      common=(--device cuda --model llama-tiny --steps 8 --lr 1e-3 --quiet)
      train cuda_1 "${common[@]}" --nproc 1 --plan /tmp/one.json
      for p in dp2:2 tp2sp_z3:4 ulysses2:2 pp2:4; do
        name=${p%%:*}; n=${p##*:}
        train "cuda_$name" "${common[@]}" --nproc "$n" --plan "/tmp/$name.json"
        verdicts+=("parity $name x$n: $(python3 $cmp "$out/cuda_1.jsonl" "$out/cuda_$name.jsonl" 2e-2)")
      done
      ;;
    curve)
      for m in gpt2-tiny llama-tiny; do
        args=(--model "$m" --plan auto --nproc 1 --global-batch 16 --seq-len 256 --steps 200 --lr 1e-3 --quiet)
        train "curve_cpu_$m" --device cpu "${args[@]}"
        train "curve_cuda_$m" --device cuda "${args[@]}"
        verdicts+=("curve $m 200 steps cuda vs cpu: $(python3 $cmp "$out/curve_cpu_$m.jsonl" "$out/curve_cuda_$m.jsonl" 3e-2)")
      done
      ;;
    ckpt)
      plan /tmp/one.json 1 '{"tp_degree": 1}'
      common=(--model llama-tiny --nproc 1 --plan /tmp/one.json --lr 1e-3 --quiet)
      for from in cuda cpu; do
        to=$([ $from = cuda ] && echo cpu || echo cuda)
        rm -rf "/tmp/ck_$from"
        # The same 10-step run on `to` straight, and as 5 steps on `from` (saving at its end) then
        # steps 6-10 on `to` from that checkpoint (the learning-rate schedule spans 10 steps in both).
        train "ck_straight_$to" --device "$to" "${common[@]}" --steps 10
        train "ck_save_$from" --device "$from" "${common[@]}" --steps 10 --checkpoint-dir "/tmp/ck_$from" --checkpoint-every 5 --stop-at 5
        train "ck_resume_${from}_on_$to" --device "$to" "${common[@]}" --steps 10 --resume "/tmp/ck_$from"
        verdicts+=("checkpoint $from -> $to: $(python3 $cmp "$out/ck_straight_$to.jsonl" "$out/ck_resume_${from}_on_$to.jsonl" 2e-2)")
      done
      ;;
    oom)
      # Llama-3-8B (32 blocks) on one GPU with plain DDP: about 18 bytes x 8 B parameters of weights,
      # gradients and AdamW moments alone, far past 80 GiB. The explicit plan bypasses the planner's
      # own memory check, so this is the runtime's: the arena is sized by the dry run and allocated
      # before the first step, and cudaMalloc's failure must come back as "needs N, F free of T".
      python3 - <<'PY'
import json
layers = [{"index": i, "tp_degree": 1, "tp_consecutive": True} for i in range(34)]
json.dump({"format_version": 1, "model_name": "llama3-8b", "num_nodes": 1, "devices_per_node": 1,
           "global_batch_size": 1, "seq_len": 4096, "num_micro_batches": 1, "pipeline_degree": 1,
           "stages": [{"first_layer": 0, "num_layers": 34}], "layers": layers},
          open("/tmp/oom_plan.json", "w"))
PY
      timeout 180 $T --device cuda --model llama3-8b --plan /tmp/oom_plan.json --nproc 1 \
          --global-batch 1 --seq-len 4096 --steps 1 --data /tmp/data > "$out/oom.log" 2>&1
      rc=$?
      msg=$(grep -m1 -E "needs .* free of" "$out/oom.log")
      steps_ran=$(grep -c '^step ' "$out/oom.log")
      v=FAIL; [ $rc != 0 ] && [ $rc != 124 ] && [ "$steps_ran" = 0 ] && [ -n "$msg" ] && v=PASS
      verdicts+=("oom refused before the first step: $v: exit $rc, $steps_ran steps ran; $msg")
      ;;
    speed)
      tools/gpu/speed.sh > "$out/speed.log" 2>&1
      verdicts+=("speed: see speed.log"); tail -20 "$out/speed.log"
      ;;
  esac
done
echo "== train checks"
printf '%s\n' "${verdicts[@]}"
