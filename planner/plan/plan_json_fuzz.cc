// libFuzzer target: a plan JSON file as `cairn evaluate --plan` and `cairn-train --plan` read it.
//
// PlanFromJson on the input; when it parses, the plan's model (catalog name, else llama-tiny) on a
// CPU cluster of the plan's device count is built into a SearchProblem (BuildSearchProblem, with
// its limits), the plan checked against it (PlanSpecFromProto) and scored (Evaluate). Crashes and
// sanitizer reports are findings; Status errors are the expected outcome.
//
//   tools/fuzz.sh plan_json_fuzz           # seeds: planner/plan/testdata/plan_json_fuzz/
#include <cstddef>
#include <cstdint>
#include <string>

#include "planner/catalog/clusters.h"
#include "planner/catalog/models.h"
#include "planner/cost/evaluate.h"
#include "planner/plan/plan_convert.h"
#include "planner/problem/problem_builder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn::planner;  // NOLINT
  const std::string json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cairn::v1::Plan> plan = PlanFromJson(json);
  if (!plan.ok()) return 0;
  cairn::v1::SearchRequest req;
  absl::StatusOr<cairn::v1::ModelSpec> model = LookupModel(plan->model_name());
  *req.mutable_model() = model.ok() ? *model : LookupModel("llama-tiny").value();
  const int64_t devices = static_cast<int64_t>(plan->num_nodes()) * plan->devices_per_node();
  if (devices < 1 || devices > 64) return 0;  // the CPU cluster has 1..64 workers per node
  absl::StatusOr<cairn::v1::Cluster> cluster = MakeCluster("cpu", 1, static_cast<int>(devices));
  if (!cluster.ok()) return 0;
  *req.mutable_cluster() = *cluster;
  req.set_global_batch_size(plan->global_batch_size());
  req.set_seq_len(plan->seq_len());
  req.set_dtype_bytes(4);
  absl::StatusOr<SearchProblem> problem = BuildSearchProblem(req);
  if (!problem.ok()) return 0;
  absl::StatusOr<PlanSpec> spec = PlanSpecFromProto(*problem, *plan);
  if (!spec.ok()) return 0;
  CostModel cm(*problem);
  (void)Evaluate(cm, *spec);
  return 0;
}
