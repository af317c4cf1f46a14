#!/usr/bin/env bash
# The Python client example against a real daemon: starts cairn-planner on a free port with a
# temporary SQLite database, runs examples/python/cairn_plan.py (message classes generated from
# proto/ by //examples/python:cairn_pb2) and checks the printed plan and Megatron-LM flags (the same
# line the local `cairn plan --format megatron` prints), then a
# bad model name (the daemon's INVALID_ARGUMENT, exit 1).
#
# Needs python3 with grpc and google.protobuf (Debian: python3-grpcio python3-protobuf, installed
# by tools/install_deps.sh). Without them the test is skipped (exit 0, saying so), except under
# CI=true (passed through by .bazelrc's --test_env=CI), where it fails.
set -uo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

# The first python3 that has both: the one on PATH (it may be a pyenv or virtualenv one without
# Debian's packages), else Debian's own.
python=
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import grpc, google.protobuf' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  if [ "${CI:-}" = "true" ]; then
    fail "no python3 can import grpc and google.protobuf under CI=true: install python3-grpcio python3-protobuf (tools/install_deps.sh)"
  fi
  echo "SKIPPED: no python3 can import grpc and google.protobuf (apt-get install python3-grpcio python3-protobuf)"
  exit 0
fi

tmp=${TEST_TMPDIR:-$(mktemp -d)}
planner=planner/server/cairn-planner
client=examples/python/cairn_plan.py
stubs=examples/python/stubs
[ -x "$planner" ] || fail "no $planner in the runfiles"
[ -f "$stubs/proto/cairn/v1/service_pb2.py" ] || fail "no generated stubs under $stubs"

"$planner" --db "$tmp/planner.db" --listen 127.0.0.1:0 --metrics-address "" \
  >"$tmp/planner.out" 2>"$tmp/planner.err" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
# "cairn-planner 0.1.0: serving on 127.0.0.1:PORT (...": the first stdout line, once it listens.
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*serving on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/planner.out" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || fail "cairn-planner exited: $(cat "$tmp/planner.err")"
  sleep 0.1
done
[ -n "$port" ] || fail "cairn-planner did not print its port: $(cat "$tmp/planner.err")"

out=$("$python" "$client" --planner "127.0.0.1:$port" --model llama2-7b --cluster h100-sxm \
        --nodes 2 --global-batch 256 --seq-len 4096 --stubs "$stubs" 2>&1) ||
  fail "cairn_plan.py exited $?: $out"
echo "$out"

expect() { grep -qE -- "$1" <<<"$out" || fail "output lacks /$1/"; }
expect '^Plan plan-[0-9a-f]+ for llama2-7b on 2 x 8 devices: global batch 256, sequence 4096$'
expect '^  predicted: [0-9.]+ (s|ms) per step, [0-9]+ tokens/s, MFU [0-9.]+%$'
expect '^  pipeline: [0-9]+ stage\(s\), (1f1b|gpipe|interleaved_1f1b), [0-9]+ micro-batches'
expect '^  stage 0: layers 0-[0-9]+: .*tp[0-9]+.* \| memory [0-9.]+ GiB of [0-9.]+ GiB$'
expect '^Megatron-LM flags:$'
# The flags launch Megatron-LM as is: parallelism, batch shape and the model's architecture.
expect '^--tensor-model-parallel-size [0-9]+ --pipeline-model-parallel-size [0-9]+ '
expect ' --global-batch-size 256 --seq-length 4096 '
expect ' --num-layers 32 --hidden-size 4096 --ffn-hidden-size 11008 --num-attention-heads 32 '
expect ' --normalization RMSNorm --swiglu --position-embedding-type rope'
expect ' --bf16'

# One implementation: the very line the local `cairn plan --format megatron` prints.
local_flags=$(planner/cli/cairn plan --model llama2-7b --cluster h100-sxm --nodes 2 \
                --global-batch 256 --seq-len 4096 --format megatron --quiet) ||
  fail "cairn plan --format megatron failed: $local_flags"
python_flags=$(sed -n '/^Megatron-LM flags:$/{n;p}' <<<"$out")
[ "$python_flags" = "$local_flags" ] ||
  fail "flags differ from cairn plan --format megatron:\n python: $python_flags\n cairn:  $local_flags"

# The same question again is answered from the daemon's plan cache, flags included.
again=$("$python" "$client" --planner "127.0.0.1:$port" --model llama2-7b --cluster h100-sxm \
          --nodes 2 --global-batch 256 --seq-len 4096 --stubs "$stubs" 2>&1) ||
  fail "second call exited $?: $again"
grep -q ' (cached) for llama2-7b' <<<"$again" || fail "second answer not from the cache: $again"
grep -q -- '--tensor-model-parallel-size' <<<"$again" || fail "cached answer lacks the flags: $again"

# A model the catalog lacks: the daemon's INVALID_ARGUMENT, exit status 1.
bad=$("$python" "$client" --planner "127.0.0.1:$port" --model no-such-model --global-batch 8 \
        --seq-len 128 --stubs "$stubs" 2>&1)
status=$?
[ "$status" -eq 1 ] || fail "unknown model: exit $status, want 1: $bad"
grep -q 'INVALID_ARGUMENT' <<<"$bad" || fail "unknown model: no INVALID_ARGUMENT: $bad"
echo "PASS"
