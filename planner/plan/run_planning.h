// planner/plan/run_planning.h — the planner as a library call for a training run: the plan to use
// (`--plan auto`) or the prediction of a given plan, on the catalog profile of the device the run
// uses. What `cairn-train` calls before it starts the runtime (which itself never plans).
//
//   RunRequest req;
//   req.model = spec; req.cluster = "cpu"; req.world_size = 4;
//   req.global_batch = 16; req.seq_len = 128; req.dtype_bytes = 4;
//   CAIRN_ASSIGN_OR_RETURN(PlannedRun run, PlanRun(req));          // search
//   CAIRN_ASSIGN_OR_RETURN(PlannedRun same, PredictRun(req, run.plan));  // evaluate only
#ifndef CAIRN_PLANNER_PLAN_RUN_PLANNING_H_
#define CAIRN_PLANNER_PLAN_RUN_PLANNING_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/plan/plan.h"
#include "proto/cairn/v1/model.pb.h"

namespace cairn::planner {

struct RunRequest {
  cairn::v1::ModelSpec model;
  std::string cluster = "cpu";       // catalog name of the device profile (one node)
  int world_size = 1;                // devices of that node the run uses
  int global_batch = 0;
  int seq_len = 0;
  int64_t memory_budget_bytes = 0;   // per device; 0: the device's memory
  int dtype_bytes = 4;               // 4: the fp32 CPU runtime; 2: bf16 mixed precision
  std::optional<cairn::v1::ModelProfile> model_profile;  // measured layer times, if any
};

struct PlannedRun {
  plan::PlanSpec plan;
  double predicted_step_time_s = 0;
  int64_t predicted_peak_bytes = 0;  // per device, tensors only (the reservation excluded)
  double search_time_s = 0;          // PlanRun only
  // For the runtime's MFU: model FLOPs per token (PaLM/Megatron convention) and the device's
  // peak FLOP/s from its profile (0 when the profile has none, e.g. the cpu profile).
  double model_flops_per_token = 0;
  double peak_flops_per_s = 0;
  std::vector<std::string> summary;  // "blocks 1-4: tp=1 ddp" lines
};

// The fastest plan the search finds (FailedPrecondition with the planner's explanation when none
// fits; InvalidArgument for a bad request).
absl::StatusOr<PlannedRun> PlanRun(const RunRequest& request);

// The prediction for `plan` (InvalidArgument listing the plan's violations when it is invalid).
absl::StatusOr<PlannedRun> PredictRun(const RunRequest& request, const plan::PlanSpec& plan);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_PLAN_RUN_PLANNING_H_
