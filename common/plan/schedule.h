// common/plan/schedule.h — the order a pipeline stage runs the forwards and backwards of its
// micro-batches.
//
// The planner's pipeline simulator (planner/cost/pipeline.h) and the runtime's engine take their
// order of operations from StageSchedule, so what is simulated is what runs.
//
//   for (const PipelineOp& op : StageSchedule(Schedule::k1F1B, p, stage, m)) {
//     if (op.forward) Forward(op.micro_batch); else Backward(op.micro_batch);
//   }
#ifndef CAIRN_COMMON_PLAN_SCHEDULE_H_
#define CAIRN_COMMON_PLAN_SCHEDULE_H_

#include <vector>

#include "common/plan/plan.h"

namespace cairn::plan {

// One operation of a stage's schedule: the forward or backward of one micro-batch.
struct PipelineOp {
  bool forward = true;
  int micro_batch = 0;
};

// The order stage `stage` of `pipeline_degree` runs its operations in: 1F1B (p - stage - 1
// warm-up forwards, then one forward one backward, then the cool-down backwards) or GPipe (all
// forwards, then all backwards).
std::vector<PipelineOp> StageSchedule(Schedule schedule, int pipeline_degree, int stage,
                                      int num_micro_batches);

// Micro-batches whose activations stage `stage` keeps at its peak (1F1B: p - stage, at most m;
// GPipe: m).
int InFlightMicroBatches(Schedule schedule, int pipeline_degree, int stage, int num_micro_batches);

}  // namespace cairn::plan

#endif  // CAIRN_COMMON_PLAN_SCHEDULE_H_
