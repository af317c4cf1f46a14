// planner/cost/evaluate.h — scores any plan with the cost model: time, memory, violations, and why
// one plan beats another.
//
// The search uses the same CostStage() to turn its tables back into stage times, so a plan's
// predicted numbers are identical whether it came out of the search, a file or the command line.
//
//   CostModel cm(problem);
//   absl::StatusOr<Evaluation> e = Evaluate(cm, plan);   // error only for malformed plans
//   if (e->feasible) ... e->step_time_s ...;  else for (auto& v : e->violations) ...
//   std::string why = Explain(cm, plan_a, *ea, plan_b, *eb);
#ifndef CAIRN_PLANNER_COST_EVALUATE_H_
#define CAIRN_PLANNER_COST_EVALUATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "planner/cost/cost_model.h"
#include "planner/cost/pipeline.h"
#include "planner/problem/problem.h"

namespace cairn::planner {

// One stage of a plan, costed.
struct StageCost {
  int first_layer = 0;
  int num_layers = 0;
  StageContext ctx;
  StageTimes times;               // per micro-batch forward/backward, per step sync, hop
  // Per optimizer step on this stage (m micro-batches), seconds.
  double compute_s = 0;
  double tp_comm_s = 0;
  double transition_s = 0;
  double dp_comm_s = 0;
  double optimizer_s = 0;
  // Memory of one device, bytes.
  int64_t param_bytes = 0;
  int64_t grad_bytes = 0;
  int64_t optimizer_bytes = 0;
  int64_t activation_bytes = 0;   // saved activations x micro-batches in flight
  int64_t transient_bytes = 0;    // the rest of the peak: working set + pipeline buffers
  int64_t reserved_bytes = 0;
  int64_t total_bytes = 0;        // the peak (exact for Cairn's runtime)
  // The search's upper bound of the peak: every layer's activations plus the largest working set
  // (additive over layers; >= total_bytes).
  int64_t bound_bytes = 0;
};

// Costs stage `stage` of `plan` (which must be structurally valid, see ValidatePlanShape).
StageCost CostStage(const CostModel& cm, const PlanSpec& plan, int stage);

// Context of stage `stage` of a plan with the given shape.
StageContext MakeStageContext(const SearchProblem& problem, int pipeline_degree, int stage,
                              int global_batch, int num_micro_batches, Schedule schedule);

// Memory outside the layers that a stage holds: pipeline send/receive buffers and the runtime
// reservation.
int64_t StageFixedBytes(const CostModel& cm, const StageContext& ctx);

struct Evaluation {
  bool valid = false;             // the plan contract accepts the plan (plan::ValidatePlan)
  bool feasible = false;          // valid, and every stage within the memory budget
  std::vector<std::string> violations;  // the contract's violations, then memory
  double step_time_s = 0;
  double tokens_per_s = 0;
  double samples_per_s = 0;
  double mfu = 0;
  double lower_bound_s = 0;
  double optimality_gap = 0;      // step_time_s / lower_bound_s - 1
  int64_t budget_bytes = 0;
  std::vector<StageCost> stages;
  PipelineResult pipeline;
  // Critical-path breakdown (bottleneck stage, per step).
  double compute_s = 0, tp_comm_s = 0, dp_comm_s = 0, pipeline_comm_s = 0, transition_s = 0,
         bubble_s = 0, optimizer_s = 0;

  int64_t PeakBytes() const;
  // The plan contract accepts the plan (memory aside): what the runtime would run.
  bool StrategiesValid() const { return valid; }
  int64_t BoundBytes() const;  // max over stages of bound_bytes
};

// InvalidArgument when the plan's shape does not match the problem (plan::CheckPlanShape: layer
// count, stage sizes, pipeline degree not dividing the devices, batch not divisible by
// micro-batches, sequence length), listing every shape violation.
absl::Status ValidatePlanShape(const SearchProblem& problem, const PlanSpec& plan);

absl::StatusOr<Evaluation> Evaluate(const CostModel& cm, const PlanSpec& plan);

// Why `b` is slower (or faster) than `a`: the terms that differ most, stage by stage.
std::string Explain(const CostModel& cm, const PlanSpec& a, const Evaluation& ea, const PlanSpec& b,
                    const Evaluation& eb);

// "layers 1-32: tp=2 sp zero1" lines: consecutive layers with equal strategies grouped.
std::vector<std::string> SummarizeLayers(const PlanSpec& plan, int first, int count,
                                         int num_layers);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_COST_EVALUATE_H_
