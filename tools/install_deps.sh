#!/usr/bin/env bash
# tools/install_deps.sh — installs the Debian packages Cairn builds against, if any are missing.
#
# Idempotent: asks dpkg-query which packages are missing and, only when some are, runs
# `apt-get update` and `apt-get install -y --no-install-recommends` for those (as root, non-interactive).
# With everything present it touches nothing and needs no root. CUDA is not a Debian package here: it
# comes with the machine image under /usr/local/cuda; without it the CUDA targets (tag "cuda") are
# skipped by tools/run_tests.sh and the Makefile, and this script only warns.
#
#   tools/install_deps.sh          # or: make deps
#
# Exit status: 0 when every package is installed afterwards; 1 otherwise (not root, apt failed, ...).
set -euo pipefail

# One line per group; BUILD_NOTES.md says what each provides (Bazel 4.2.3, gRPC 1.51, protobuf 3.21,
# Abseil 20220623, SQLite 3.40, prometheus-cpp 1.0.1, GoogleTest 1.12, Benchmark 1.7, Gloo, OpenBLAS,
# CLI11 2.1 for every command line; python3-grpcio 1.51 and python3-protobuf 3.21 for the Python
# client example, examples/python); chromium-headless-shell is the browser
# tests/plan_picture_browser_test.sh loads the plan pictures in.
PACKAGES=(
  bazel-bootstrap
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libssl-dev
  libabsl-dev
  libsqlite3-dev sqlite3
  prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgloo-dev libopenblas-dev
  nlohmann-json3-dev libcli11-dev
  clang-14 libclang-rt-14-dev
  python3-grpcio python3-protobuf chromium-headless-shell
)
CUDA_HOME=/usr/local/cuda

log() { echo "install_deps: $*"; }
die() { echo "install_deps: error: $*" >&2; exit 1; }

command -v dpkg-query >/dev/null 2>&1 ||
  die "dpkg-query not found: this script installs Debian packages (Debian 12); install the packages listed in it by hand"

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]
}

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    installed "$p" || echo "$p"
  done
}

mapfile -t missing < <(missing_packages)

if [ "${#missing[@]}" -eq 0 ]; then
  log "all ${#PACKAGES[@]} Debian packages are installed; nothing to do"
else
  log "missing ${#missing[@]} of ${#PACKAGES[@]} packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    die "installing packages needs root; run: sudo $0   (or: sudo apt-get install -y --no-install-recommends ${missing[*]})"
  fi
  export DEBIAN_FRONTEND=noninteractive
  log "running: apt-get update"
  apt-get update </dev/null || die "apt-get update failed (no network or no Debian mirror reachable?)"
  log "running: apt-get install -y --no-install-recommends ${missing[*]}"
  apt-get install -y --no-install-recommends "${missing[@]}" </dev/null ||
    die "apt-get install failed for: ${missing[*]}"
  mapfile -t still_missing < <(missing_packages)
  if [ "${#still_missing[@]}" -ne 0 ]; then
    die "still missing after apt-get install: ${still_missing[*]}"
  fi
  log "installed: ${missing[*]}"
fi

if [ -x "$CUDA_HOME/bin/nvcc" ]; then
  log "CUDA found: $("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*\(release [0-9.]*\).*/\1/p')"
else
  log "warning: no $CUDA_HOME/bin/nvcc: CUDA targets (tag \"cuda\") will be skipped; they need the CUDA 13 toolkit under $CUDA_HOME (part of the machine image, not a Debian package)" >&2
fi
