#!/usr/bin/env bash
# Fails, listing them, when the query result file given as $1 names any target.
set -euo pipefail
if [ -s "$1" ]; then
  echo "forbidden dependencies (runtime libraries must not depend on planner/):" >&2
  cat "$1" >&2
  exit 1
fi
echo "no forbidden dependencies"
