#!/usr/bin/env bash
# tools/run_tests.sh — runs `bazel test` and ends with one plain line: `N passed, N failed[, N skipped]`.
#
#   tools/run_tests.sh                      # bazel test //...   (what `make test` and CI run)
#   tools/run_tests.sh //common/... -c opt  # any targets (-//x:y excludes) and bazel flags (-...)
#
# .bazelrc already leaves out tests tagged "gpu" (they need a device). Without /usr/local/cuda the
# targets tagged "cuda" are left out too. Bazel runs with --keep_going, so one broken package does not
# hide the results of the others.
#
# What is counted (CAIRN_TEST_COUNT):
#   cases   (default) individual test cases, read from each test's bazel-testlogs/<pkg>/<name>/test.xml
#           (GoogleTest writes one case per TEST; Bazel writes one case for tests that write none).
#           A case is failed if it has <failure> or <error>, skipped if GTEST_SKIP'd or DISABLED_,
#           passed otherwise. A test target that failed without a failed case in its XML (it crashed
#           or exited non-zero after its cases), or that has no XML (FAILED TO BUILD, NO STATUS, ...),
#           counts as one failed case.
#   targets one per test target, from Bazel's summary lines (PASSED, FLAKY = passed; FAILED, TIMEOUT,
#           FAILED TO BUILD, NO STATUS, INCOMPLETE = failed).
# If Bazel fails while no test failed (a non-test target failed to build), that counts as one failure.
#
# Exit status: 0 when Bazel succeeded and nothing failed (also when no test target matched); else
# Bazel's exit status, or 1.
set -uo pipefail

cd "$(dirname "$0")/.."
BAZEL=${BAZEL:-bazel}
COUNT_MODE=${CAIRN_TEST_COUNT:-cases}
case "$COUNT_MODE" in
  cases | targets) ;;
  *) echo "run_tests: CAIRN_TEST_COUNT must be 'cases' or 'targets', got '$COUNT_MODE'" >&2; exit 2 ;;
esac

targets=()
flags=()
for arg in "$@"; do
  case "$arg" in
    -//* | -@*) targets+=("$arg") ;;  # negative target pattern
    -*) flags+=("$arg") ;;
    *) targets+=("$arg") ;;
  esac
done
[ "${#targets[@]}" -eq 0 ] && targets=(//...)

# Same rule as the Makefile: no nvcc, no CUDA targets. --test_tag_filters replaces .bazelrc's -gpu.
if [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "run_tests: warning: no /usr/local/cuda/bin/nvcc: skipping targets tagged \"cuda\"" >&2
  flags+=(--build_tag_filters=-cuda --test_tag_filters=-gpu,-cuda --define=cuda=off)
fi

log=$(mktemp "${TMPDIR:-/tmp}/cairn-test.XXXXXX")
trap 'rm -f "$log"' EXIT

echo "run_tests: $BAZEL test --keep_going ${flags[*]} ${targets[*]}"
"$BAZEL" test --keep_going "${flags[@]}" -- "${targets[@]}" 2>&1 | tee "$log"
bazel_rc=${PIPESTATUS[0]}

# Where this configuration's test logs are (the bazel-testlogs link may point elsewhere by now if
# someone else ran another configuration in this checkout meanwhile).
testlogs=$("$BAZEL" info "${flags[@]}" bazel-testlogs 2>/dev/null) || testlogs=bazel-testlogs

# Prints "passed failed skipped" for the test cases in the given test.xml files.
count_xml_cases() {
  awk 'BEGIN { RS = "<testcase"; p = 0; f = 0; s = 0 }
       FNR > 1 {
         # Split the record into the opening tag and, unless it closes itself, the body.
         gt = index($0, ">")
         head = substr($0, 1, gt)
         body = ""
         if (substr($0, gt - 1, 1) != "/") {
           end = index($0, "</testcase>")
           body = substr($0, gt + 1, end > 0 ? end - gt - 1 : length($0))
         }
         if (body ~ /<failure|<error/) f++
         else if (head ~ /result="skipped"|status="notrun"/ || body ~ /<skipped/) s++
         else p++
       }
       END { print p, f, s }' "$@"
}

passed=0
failed=0
skipped=0
detail=()
ntargets=0
# Summary lines look like `//pkg:name   (cached) PASSED in 0.1s`, `//pkg:name   FAILED TO BUILD`.
while read -r label status; do
  ntargets=$((ntargets + 1))
  case "$status" in
    PASSED | FLAKY) ok=1 ;;
    *) ok=0 ;;
  esac
  p=0 f=0 s=0
  if [ "$COUNT_MODE" = cases ]; then
    dir="$testlogs/$(echo "${label#//}" | tr ':' '/')"
    xmls=()
    if [ "$ok" = 1 ] || [ "$status" = FAILED ] || [ "$status" = TIMEOUT ]; then
      # Sharded tests write shard_K_of_N/test.xml; prefer those (a top-level test.xml may be
      # left over from before the test was sharded).
      if [ -d "$dir" ]; then
        mapfile -t xmls < <(find "$dir" -mindepth 2 -path '*/shard_*' -name test.xml | sort)
      fi
      if [ "${#xmls[@]}" -eq 0 ] && [ -f "$dir/test.xml" ]; then
        xmls=("$dir/test.xml")
      fi
    fi
    if [ "${#xmls[@]}" -gt 0 ]; then
      read -r p f s < <(count_xml_cases "${xmls[@]}")
    elif [ "$ok" = 1 ]; then
      p=1
    fi
    [ "$ok" = 0 ] && [ "$f" -eq 0 ] && f=1
  elif [ "$ok" = 1 ]; then
    p=1
  else
    f=1
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  detail+=("$(printf '  %-16s %-60s %s passed, %s failed, %s skipped' "$status" "$label" "$p" "$f" "$s")")
done < <(sed -n -E 's#^(//[^ ]+)[[:space:]]+(\(cached\)[[:space:]]+)?(PASSED|FAILED TO BUILD|FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|SKIPPED).*#\1 \3#p' "$log")

rc=0
note=""
if [ "$bazel_rc" -eq 4 ] && [ "$ntargets" -eq 0 ]; then
  note="run_tests: no test targets matched"
elif [ "$bazel_rc" -ne 0 ]; then
  rc=$bazel_rc
  if [ "$failed" -eq 0 ]; then
    failed=1
    note="run_tests: bazel test exited with $bazel_rc although no test failed (a non-test target failed to build?): counted as 1 failed"
  fi
fi
[ "$failed" -gt 0 ] && [ "$rc" -eq 0 ] && rc=1

echo
echo "run_tests: results by test target (counting $COUNT_MODE; CAIRN_TEST_COUNT=cases|targets):"
[ "${#detail[@]}" -gt 0 ] && printf '%s\n' "${detail[@]}"
[ -n "$note" ] && echo "$note"
summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary+=", $skipped skipped"
echo "$summary"
exit "$rc"
