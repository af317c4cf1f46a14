#!/usr/bin/env bash
# tools/gpu/speed.sh — cairn-train on one GPU against PyTorch on the same shapes, in one call
# (docs/benchmarks.md, "GPU runtime"). Needs binaries staged into .device (tools/gpu/run_all.sh
# --stage) and /tmp/data (tools/gpu/train_checks.sh makes it). Prints one JSON line per run and a
# table last. LAYERS (default 8) sets the Llama-shaped models' depth.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/speed}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
layers=${LAYERS:-8}
steps=${STEPS:-20}

source tools/gpu/model_specs.sh
llama_shapes "$layers"

# name, cairn model, pytorch model, batch, seq
runs=("gpt2-124m gpt2-124m gpt2-124m 16 1024"
      "llama3-8b-l$layers /tmp/llama3-8b-l$layers.json llama3-8b 1 4096"
      "llama2-7b-l$layers /tmp/llama2-7b-l$layers.json llama2-7b 1 4096")
for r in "${runs[@]}"; do
  read -r name model pt batch seq <<< "$r"
  timeout 300 .device/cairn-train --device cuda --model "$model" --plan auto --nproc 1 \
      --global-batch "$batch" --seq-len "$seq" --steps "$steps" --data /tmp/data --quiet \
      --metrics "$out/cairn_$name.jsonl" > "$out/cairn_$name.log" 2>&1
  echo "cairn $name: exit $? $(tail -1 "$out/cairn_$name.log")"
  for mode in eager compile; do
    flag=""; [ $mode = compile ] && flag="--compile"
    timeout 400 python3 tools/gpu/pytorch_baseline.py --model "$pt" --layers \
        "$([ "$pt" = gpt2-124m ] && echo 0 || echo "$layers")" --batch "$batch" --seq "$seq" \
        --steps "$steps" $flag > "$out/torch_${mode}_$name.json" 2> "$out/torch_${mode}_$name.log"
    echo "torch $mode $name: exit $? $(cat "$out/torch_${mode}_$name.json")"
  done
done
python3 - "$out" <<'PY'
import json, os, sys, statistics
out = sys.argv[1]
print(f"{'model':<20} {'runtime':<18} {'tokens/s':>10} {'step ms':>9} {'MFU':>6} {'peak GiB':>9}")
for name in sorted({f.split('_', 1)[1].rsplit('.', 1)[0] for f in os.listdir(out) if f.startswith('cairn_') and f.endswith('.jsonl')}):
    rows = [json.loads(l) for l in open(f"{out}/cairn_{name}.jsonl") if l.strip()]
    rows = rows[3:] or rows
    if rows:
        st = statistics.median(r["step_time_s"] for r in rows)
        print(f"{name:<20} {'cairn':<18} {rows[0]['tokens_per_s'] and statistics.median(r['tokens_per_s'] for r in rows):>10.0f} {st*1e3:>9.1f} {100*statistics.median(r['mfu'] for r in rows):>5.1f}% {max(r['peak_memory_bytes'] for r in rows)/2**30:>9.2f}")
    for mode in ("eager", "compile"):
        try:
            t = json.loads(open(f"{out}/torch_{mode}_{name}.json").read())
            print(f"{name:<20} {'pytorch ' + mode:<18} {t['tokens_per_s']:>10.0f} {t['step_time_s']*1e3:>9.1f} {100*t['mfu']:>5.1f}% {t['peak_memory_bytes']/2**30:>9.2f}")
        except Exception as e:
            print(f"{name:<20} {'pytorch ' + mode:<18} failed ({e})")
PY
