#!/usr/bin/env bash
# tests/plan_picture_browser_test.sh — the pictures `cairn plan/evaluate --svg/--html` write, loaded
# in a real headless browser (Chromium): the documents parse (no XML parser error) and the parsed
# DOM has the elements planner/picture/picture_render.h promises, as many as the plan implies.
#
#   tests/plan_picture_browser_test.sh bazel-bin/planner/cli/cairn     # or: bazel test //tests:plan_picture_browser_test
#
# Cases: a uniform 1F1B plan from `cairn evaluate` flags (4 stages, 16 micro-batches), and an
# interleaved plan found by `cairn plan --schedules interleaved`, scored again by
# `cairn evaluate --plan` (stages, chunks and micro-batches read from its plan file).
#
# The browser is Debian's chromium-headless-shell (or chromium, or $CAIRN_TEST_BROWSER), installed by
# tools/install_deps.sh.
# Without one the test fails under CI=true (.bazelrc passes CI through) and otherwise reports itself
# skipped (a skipped case in its test.xml, which tools/run_tests.sh counts as skipped).
set -euo pipefail

cairn=${1:?usage: $0 PATH/TO/cairn}
out=${TEST_TMPDIR:-$(mktemp -d)}
export HOME=${HOME:-$out}

fail() { echo "FAIL: $*" >&2; exit 1; }

# CAIRN_TEST_BROWSER names the browser to use instead (a path or command).
browser=""
candidates=(chromium-headless-shell chromium /usr/bin/chromium-headless-shell /usr/bin/chromium)
[ -n "${CAIRN_TEST_BROWSER:-}" ] && candidates=("$CAIRN_TEST_BROWSER")
for candidate in "${candidates[@]}"; do
  if command -v "$candidate" >/dev/null 2>&1; then
    browser=$(command -v "$candidate")
    break
  fi
done
if [ -z "$browser" ]; then
  why="no headless browser (chromium-headless-shell or chromium): run tools/install_deps.sh (make deps)"
  if [ "${CI:-}" = "true" ]; then
    fail "$why"
  fi
  echo "SKIP: $why"
  if [ -n "${XML_OUTPUT_FILE:-}" ]; then
    cat >"$XML_OUTPUT_FILE" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="plan_picture_browser_test" tests="1" skipped="1">
<testcase name="browser" status="notrun" result="skipped"><skipped message="$why"/></testcase>
</testsuite></testsuites>
EOF
  fi
  exit 0
fi
echo "browser: $browser ($("$browser" --version 2>/dev/null || echo 'version unknown'))"

# The DOM after the browser parsed FILE (serialised by the browser, not the file's own text).
dump_dom() {
  local file=$1 dom=$2
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$out/browser-profile" --dump-dom "file://$file" >"$dom" 2>"$dom.log" ||
    { cat "$dom.log" >&2; fail "the browser could not load $file"; }
  [ -s "$dom" ] || { cat "$dom.log" >&2; fail "the browser returned an empty DOM for $file"; }
}

count() { grep -o -- "$2" "$1" | wc -l | tr -d ' '; }

expect_count() {
  local file=$1 needle=$2 want=$3 got
  got=$(count "$file" "$needle")
  [ "$got" = "$want" ] || fail "$file: $got elements matching '$needle', want $want"
}

# check_picture FILE KIND STAGES OPS_PER_DIRECTION LAYERS: KIND is svg or html.
check_picture() {
  local file=$1 kind=$2 stages=$3 ops=$4 layers=$5
  local dom="$file.dom"
  dump_dom "$file" "$dom"
  if grep -q "parsererror" "$dom"; then
    grep -o '<parsererror.*</parsererror>' "$dom" >&2 || true
    fail "$file does not parse"
  fi
  expect_count "$dom" '<svg[ >]' 1
  expect_count "$dom" 'id="plan-picture"' 1
  for legend in layer-legend memory-legend timeline-legend; do
    expect_count "$dom" "id=\"$legend\"" 1
  done
  expect_count "$dom" 'class="layer"' "$layers"
  expect_count "$dom" 'class="stage-label"' $((3 * stages))
  expect_count "$dom" 'class="mem-bar ' $((6 * stages))
  expect_count "$dom" 'class="mem-bound"' "$stages"
  expect_count "$dom" 'class="timeline-block fwd' "$ops"
  expect_count "$dom" 'class="timeline-block bwd' "$ops"
  expect_count "$dom" "data-stages=\"$stages\"" 1
  # Every block the file has, the browser has (nothing dropped by a parse error).
  expect_count "$dom" 'class="timeline-block ' "$(count "$file" 'class="timeline-block ')"
  if [ "$kind" = html ]; then
    expect_count "$dom" 'id="stage-table"' 1
    expect_count "$dom" 'class="stage-row"' "$stages"
    grep -q '<body>.*<svg' <(tr -d '\n' <"$dom") || fail "$file: the svg is not in the body"
  else
    head -c 200 "$dom" | grep -q '^<svg' || fail "$file: the document root is not <svg>"
  fi
  echo "ok: $file ($(count "$dom" 'class="timeline-block ') timeline blocks)"
}

# The model's layer count from the catalog: blocks + embedding + head.
layers_of() {
  local blocks
  blocks=$("$cairn" models | awk -v m="$1" '$1 == m { print $2 }')
  [ -n "$blocks" ] || fail "model $1 not in 'cairn models'"
  echo $((blocks + 2))
}

# A plan file's integer field ("name": N).
json_int() { sed -n "s/.*\"$2\": *\([0-9]*\).*/\1/p" "$1" | head -n 1; }

# 1. A uniform 1F1B plan: 4 stages, 16 micro-batches.
"$cairn" evaluate --model llama2-13b --nodes 2 --global-batch 128 --tp 4 --pp 4 \
  --micro-batches 16 --recompute --svg "$out/uniform.svg" --html "$out/uniform.html" >"$out/uniform.txt" ||
  fail "cairn evaluate exited with $?"
layers=$(layers_of llama2-13b)
for kind in svg html; do
  check_picture "$out/uniform.$kind" "$kind" 4 $((4 * 16)) "$layers"
done

# 2. An interleaved plan from the search, scored again from its file.
"$cairn" plan --model llama2-7b --nodes 1 --global-batch 32 --seq-len 2048 --pp 2 \
  --schedules interleaved --quiet --output "$out/interleaved.json" >"$out/interleaved.txt" ||
  fail "cairn plan exited with $?"
stages=$(json_int "$out/interleaved.json" pipeline_degree)
chunks=$(json_int "$out/interleaved.json" virtual_stages)
micro=$(json_int "$out/interleaved.json" num_micro_batches)
[ "$stages" = 2 ] && [ "${chunks:-0}" -ge 2 ] ||
  fail "expected an interleaved plan on 2 stages, got pipeline_degree=$stages virtual_stages=$chunks"
"$cairn" evaluate --plan "$out/interleaved.json" --svg "$out/interleaved.svg" \
  --html "$out/interleaved.html" >/dev/null || fail "cairn evaluate --plan exited with $?"
for kind in svg html; do
  check_picture "$out/interleaved.$kind" "$kind" "$stages" $((stages * chunks * micro)) \
    "$(layers_of llama2-7b)"
done
echo "PASS"
