#include "agent/testing/fake_binaries.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace cairn::agent {
namespace {

std::string Write(const std::string& name, const std::string& text) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
  std::ofstream(path) << text;
  chmod(path.c_str(), 0755);
  return path;
}

}  // namespace

std::string FakeTrainBinary() {
  static const std::string* path = new std::string(Write("fake-cairn-train", R"(#!/bin/sh
metrics=""; steps=3
while [ $# -gt 0 ]; do
  case "$1" in
    --metrics) metrics="$2"; shift ;;
    --steps) steps="$2"; shift ;;
  esac
  shift
done
echo "rank $RANK of $WORLD_SIZE local $LOCAL_RANK/$LOCAL_WORLD_SIZE prefix $CAIRN_RDZV_PREFIX job $CAIRN_RDZV_JOB host $CAIRN_HOST_ADDRESS"
if [ "$FAKE_MODE" = hang ]; then while true; do sleep 0.05; done; fi
if [ "$FAKE_MODE" = fail ]; then
  if [ "$RANK" = "$FAKE_FAIL_RANK" ]; then echo "injected failure" >&2; exit 3; fi
  while true; do sleep 0.05; done
fi
i=1
while [ $i -le $steps ]; do
  if [ -n "$metrics" ]; then
    echo "{\"step\": $i, \"loss\": 5.0, \"step_time_s\": 0.2, \"tokens_per_s\": 1000.0, \"peak_memory_bytes\": 1000}" >> "$metrics"
  fi
  i=$((i+1))
done
exit 0
)"));
  return *path;
}

std::string FakeProbeBinary() {
  static const std::string* path = new std::string(Write("fake-cairn-probe", R"(#!/bin/sh
echo "fake-cairn-probe $*"
out=""; rank=0
while [ $# -gt 0 ]; do
  case "$1" in
    --output) out="$2"; shift ;;
    --rank) rank="$2"; shift ;;
  esac
  shift
done
cat > "$out" <<JSON
{"version": "cairn-probes/1", "rank": $rank, "measurements": [
 {"probe": "gemm", "name": "gemm x", "op": "qkv", "model": "llama-tiny", "flops": 6e9,
  "time_s": 0.1, "correct": true},
 {"probe": "layer", "name": "llama-tiny block b=1 seq=128", "op": "block", "model": "llama-tiny",
  "params": {"micro_batch": 1, "seq": 128, "tp": 1, "forward_s": 0.01, "backward_s": 0.02},
  "correct": true}]}
JSON
)"));
  return *path;
}

}  // namespace cairn::agent
