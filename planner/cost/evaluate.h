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
//   std::cout << ExplainStages(*ea);   // compute / exposed / hidden communication / bubble per stage
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

// One model chunk of a plan (one stage without interleaving), costed.
struct ChunkCost {
  int chunk = 0;                  // model chunk index (stage = chunk mod p)
  int first_layer = 0;
  int num_layers = 0;
  StageTimes times;               // per micro-batch forward/backward, per step sync, hop onwards
  // Per micro-batch, the compute part of times.forward_s / times.backward_s (the rest is exposed
  // TP/SP/Ulysses and ZeRO communication and layout transitions).
  double forward_compute_s = 0;
  double backward_compute_s = 0;
  // Per optimizer step (m micro-batches), seconds.
  double compute_s = 0;
  double tp_comm_s = 0;           // exposed TP/SP/Ulysses collectives
  double transition_s = 0;
  double dp_comm_s = 0;           // exposed data-parallel communication
  double dp_comm_hidden_s = 0;    // data-parallel communication under compute
  double tp_comm_hidden_s = 0;    // TP communication under GEMMs (RuntimeTraits::tp_comm_hidden)
  double optimizer_s = 0;
  // Memory ingredients (bytes, one device).
  int64_t state_bytes[3] = {0, 0, 0};  // parameters, gradients, optimizer states
  int64_t activation_bytes = 0;   // saved activations of one micro-batch
  int64_t peak_current_bytes = 0; // the running micro-batch's largest moment in this chunk
  int64_t transient_bytes = 0;    // the largest per-layer bound (the search's)
  int64_t step_shard_bytes = 0;   // ZeRO-1 step shards of the chunk
};

// One stage of a plan (its devices), costed: its chunks' times and the memory of one device.
struct StageCost {
  std::vector<int> chunks;        // model chunks of the stage (v entries)
  int first_layer = 0;            // first layer of its first chunk
  int num_layers = 0;             // layers of all its chunks
  StageContext ctx;
  StageTimes times;               // summed over its chunks (a micro-batch through all of them)
  // Per optimizer step on this stage (m micro-batches through every chunk), seconds.
  double compute_s = 0;
  double tp_comm_s = 0;
  double transition_s = 0;
  double dp_comm_s = 0;
  double dp_comm_hidden_s = 0;
  double tp_comm_hidden_s = 0;
  double optimizer_s = 0;
  double p2p_s = 0;               // point-to-point hops this stage receives
  // Memory of one device, bytes.
  int64_t param_bytes = 0;
  int64_t grad_bytes = 0;
  int64_t optimizer_bytes = 0;
  int64_t activation_bytes = 0;   // saved activations of the micro-batches in flight at the peak
  int64_t transient_bytes = 0;    // the rest of the peak: working set + pipeline buffers
  int64_t reserved_bytes = 0;
  int64_t total_bytes = 0;        // the peak (exact for Cairn's runtime)
  // The search's upper bound of the peak: every layer's activations times its chunk's largest
  // count in flight, plus the largest working set (additive over layers; >= total_bytes).
  int64_t bound_bytes = 0;
};

// Costs model chunk `chunk` of `plan` (which must be structurally valid, see ValidatePlanShape).
ChunkCost CostChunk(const CostModel& cm, const PlanSpec& plan, int chunk);
// Costs stage `stage` of `plan`: its chunks, and the memory of one of its devices. When
// `chunk_costs` is given, the costs of the stage's chunks (stage, stage + p, ...) are appended to
// it in that order.
StageCost CostStage(const CostModel& cm, const PlanSpec& plan, int stage,
                    std::vector<ChunkCost>* chunk_costs = nullptr);

// Context of stage `stage` of a plan with the given shape (in_flight: micro-batches alive at the
// stage's peak, any chunk).
StageContext MakeStageContext(const SearchProblem& problem, int pipeline_degree, int stage,
                              int global_batch, int num_micro_batches, Schedule schedule,
                              int virtual_stages = 1);

// Memory outside the layers that a stage holds: pipeline send buffers, token ids of the
// micro-batches in flight and the runtime reservation.
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
  std::vector<StageCost> stages;  // one per pipeline stage
  std::vector<ChunkCost> chunks;  // one per model chunk (= stages without interleaving)
  PipelineResult pipeline;
  // Critical-path breakdown (bottleneck stage, per step).
  double compute_s = 0, tp_comm_s = 0, dp_comm_s = 0, pipeline_comm_s = 0, transition_s = 0,
         bubble_s = 0, optimizer_s = 0;
  double hidden_comm_s = 0;       // communication the bottleneck stage hides under compute

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

// How the violation Evaluate records for a stage over the memory budget begins ("stage 2 needs up
// to "), for callers that report that stage otherwise and skip it.
std::string MemoryViolationPrefix(int stage);

// The pipeline simulation Evaluate runs for `plan`, from its costed chunks (Evaluation::chunks, in
// model order) with the problem's runtime options. Evaluate calls it with record_events = false;
// pictures of the step (planner/picture) call it again with true, so they show what was costed.
PipelineResult SimulatePlanPipeline(const SearchProblem& problem, const PlanSpec& plan,
                                    const std::vector<ChunkCost>& chunks,
                                    bool record_events = false);

// Why `b` is slower (or faster) than `a`: the terms that differ most, stage by stage.
std::string Explain(const CostModel& cm, const PlanSpec& a, const Evaluation& ea, const PlanSpec& b,
                    const Evaluation& eb);

// Where each stage's step goes: compute, exposed communication (TP/SP, data-parallel,
// transitions), communication hidden under compute, point-to-point, waiting (bubble), sync and
// optimizer — one line per stage, the bottleneck marked.
std::string ExplainStages(const Evaluation& e);

// "layers 1-32: tp=2 sp zero1" lines: consecutive layers with equal strategies grouped.
std::vector<std::string> SummarizeLayers(const PlanSpec& plan, int first, int count,
                                         int num_layers);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_COST_EVALUATE_H_
