// planner/cost/pipeline.h — simulates a pipeline schedule over micro-batches.
//
// Each stage runs the forward and backward operations of its model chunks in the schedule's order
// (common/plan/schedule.h: 1F1B, GPipe, interleaved 1F1B — the order the runtime executes). An
// operation starts when its stage is free and its input has arrived: the previous chunk's forward
// (or the next chunk's backward) plus one point-to-point hop. After its last operation a stage
// spends its chunks' step_sync_s on unhidden gradient sync and the optimizer step. The step ends
// when every stage is done. Uneven stages and chunks are modelled exactly, not through a closed
// form.
//
//   std::vector<StageTimes> st = {{.forward_s = 1, .backward_s = 2}, {...}};   // one per chunk
//   PipelineResult r = SimulatePipeline(Schedule::k1F1B, /*num_micro_batches=*/8, st);
//   // interleaved: p x v chunks in model order, chunk c on stage c mod p
//   PipelineResult q = SimulatePipeline(Schedule::kInterleaved1F1B, 8, chunks, {.virtual_stages = 2});
//
// With `record_events` the result also lists what every stage did when (PipelineEvent): the same
// walk that computes the step time, so a picture of the step (planner/picture) shows exactly what
// was costed.
#ifndef CAIRN_PLANNER_COST_PIPELINE_H_
#define CAIRN_PLANNER_COST_PIPELINE_H_

#include <vector>

#include "common/plan/schedule.h"
#include "planner/problem/problem.h"

namespace cairn::planner {

// Times of one model chunk (one stage without interleaving).
struct StageTimes {
  double forward_s = 0;     // one micro-batch
  double backward_s = 0;    // one micro-batch
  double step_sync_s = 0;   // once per step, after the stage's last operation
  double hop_s = 0;         // point-to-point to the next chunk's stage, per micro-batch and
                            // direction
};

struct PipelineOptions {
  int virtual_stages = 1;   // chunks per stage (interleaved 1F1B); chunks.size() = p x v
  // The sender of a pipeline message is busy for its transfer too (RuntimeTraits::blocking_sends);
  // else only the receiver waits for it.
  bool blocking_sends = false;
  // Fill PipelineResult::events (off in the search and in Evaluate: it costs an allocation per
  // operation).
  bool record_events = false;
  // Fixed seconds added to every operation (RuntimeTraits::op_overhead_s).
  double op_overhead_s = 0;
};

// One interval of one stage's step, as the simulation placed it.
struct PipelineEvent {
  enum class Kind {
    kForward,   // an operation: forward of `micro_batch` through model chunk `chunk`
    kBackward,  // an operation: its backward
    kSend,      // a blocking send of the preceding operation's output (PipelineOptions)
    kReceive,   // waiting while the input of the next operation is in transit (its hop)
    kWait,      // waiting for anything else: the pipeline bubble proper
    kSync,      // the stage's step_sync_s after its last operation (gradient sync, optimizer)
  };
  Kind kind = Kind::kForward;
  int stage = 0;
  int chunk = -1;        // model chunk (kForward, kBackward, kSend; kReceive: the receiving one)
  int micro_batch = -1;  // kForward, kBackward, kSend, kReceive
  double start_s = 0;
  double end_s = 0;
  double duration_s() const { return end_s - start_s; }
};

struct PipelineResult {
  double step_time_s = 0;
  std::vector<double> stage_end_s;      // when each stage finished (including its sync)
  int bottleneck_stage = 0;             // stage with the largest busy time
  double bubble_s = 0;                  // step time not spent busy on the bottleneck stage
  std::vector<double> stage_busy_s;     // per stage: operations, incl. blocking sends
  std::vector<double> stage_idle_s;     // per stage: step time - busy - sync (waiting)
  // With PipelineOptions::record_events: stage 0's intervals in time order, then stage 1's, ...
  // Each stage's intervals tile [0, step_time_s] without gaps; its kReceive and kWait add up to
  // stage_idle_s, its kForward, kBackward and kSend to stage_busy_s.
  std::vector<PipelineEvent> events;
};

// Requires num_micro_batches >= 1 and p x v chunks (p >= 1).
PipelineResult SimulatePipeline(Schedule schedule, int num_micro_batches,
                                const std::vector<StageTimes>& chunks,
                                const PipelineOptions& options = {});

// The order of operations comes from the plan contract, shared with the runtime.
using ::cairn::plan::InFlightMicroBatches;
using ::cairn::plan::PipelineOp;
using ::cairn::plan::StageSchedule;

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_COST_PIPELINE_H_
