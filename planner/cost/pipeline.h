// planner/cost/pipeline.h — simulates a pipeline schedule over micro-batches.
//
// Each stage runs its forward and backward micro-batch operations in schedule order (1F1B: p-i-1
// warm-up forwards, then one-forward-one-backward, then the cool-down backwards; GPipe: all forwards
// then all backwards). An operation starts when its stage is free and its input has arrived (the
// previous stage's forward, or the next stage's backward, plus one point-to-point hop). After its
// last backward a stage spends step_sync_s on unhidden gradient sync and the optimizer step. The
// step ends when every stage is done. Uneven stages are therefore modelled exactly, not through a
// closed form.
//
//   std::vector<StageTimes> st = {{.forward_s = 1, .backward_s = 2}, {...}};
//   PipelineResult r = SimulatePipeline(Schedule::k1F1B, /*num_micro_batches=*/8, st);
#ifndef CAIRN_PLANNER_COST_PIPELINE_H_
#define CAIRN_PLANNER_COST_PIPELINE_H_

#include <vector>

#include "common/plan/schedule.h"
#include "planner/problem/problem.h"

namespace cairn::planner {

struct StageTimes {
  double forward_s = 0;     // one micro-batch
  double backward_s = 0;    // one micro-batch
  double step_sync_s = 0;   // once per step, after the stage's last backward
  double hop_s = 0;         // point-to-point to the next stage, per micro-batch and direction
};

struct PipelineResult {
  double step_time_s = 0;
  std::vector<double> stage_end_s;      // when each stage finished (including step_sync_s)
  int bottleneck_stage = 0;             // stage with the largest busy time m * (F + B)
  double bubble_s = 0;                  // step time not spent busy on the bottleneck stage
};

// Requires num_micro_batches >= 1 and at least one stage.
PipelineResult SimulatePipeline(Schedule schedule, int num_micro_batches,
                                const std::vector<StageTimes>& stages);

// The order of operations comes from the plan contract, shared with the runtime.
using ::cairn::plan::InFlightMicroBatches;
using ::cairn::plan::PipelineOp;
using ::cairn::plan::StageSchedule;

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_COST_PIPELINE_H_
