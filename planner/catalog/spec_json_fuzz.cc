// libFuzzer target: ModelSpec and HardwareProfile JSON files as `cairn plan --model FILE.json
// --hardware-profile FILE.json` reads them.
//
// The first byte picks ModelSpec (even) or HardwareProfile (odd); the rest is the JSON. It is
// parsed (ParseProtoJson), validated (ValidateModelSpec / ValidateHardwareProfile), and when valid
// combined with a catalog counterpart (h100-sxm x 2 nodes / llama2-7b, batch 64) into a search
// problem (MakeCluster, BuildSearchProblem with its limits). Crashes and sanitizer reports are
// findings; Status errors are the expected outcome.
//
//   tools/fuzz.sh spec_json_fuzz           # seeds: planner/catalog/testdata/spec_json_fuzz/
#include <cstddef>
#include <cstdint>
#include <string>

#include "planner/catalog/clusters.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"
#include "planner/problem/problem_builder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn::planner;  // NOLINT
  if (size < 1) return 0;
  const std::string json(reinterpret_cast<const char*>(data + 1), size - 1);
  cairn::v1::SearchRequest req;
  req.set_global_batch_size(64);
  req.set_seq_len(2048);
  if (data[0] % 2 == 0) {
    cairn::v1::ModelSpec spec;
    if (!ParseProtoJson(json, "model.json", &spec).ok() || !ValidateModelSpec(spec).ok()) return 0;
    *req.mutable_model() = spec;
    req.set_seq_len(spec.max_seq_len() < 2048 ? spec.max_seq_len() : 2048);
    *req.mutable_cluster() = MakeCluster("h100-sxm", 2).value();
  } else {
    cairn::v1::HardwareProfile hw;
    if (!ParseProtoJson(json, "hardware.json", &hw).ok() || !ValidateHardwareProfile(hw).ok()) {
      return 0;
    }
    absl::StatusOr<cairn::v1::Cluster> cluster = MakeCluster(hw, 2);
    if (!cluster.ok()) return 0;
    *req.mutable_cluster() = *cluster;
    *req.mutable_model() = LookupModel("llama2-7b").value();
  }
  (void)BuildSearchProblem(req);
  return 0;
}
