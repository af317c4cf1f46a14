// common/plan/schedule.h — the order a pipeline stage runs the forwards and backwards of its
// micro-batches, and when the point-to-point messages it sends are known to have arrived.
//
// The planner's pipeline simulator (planner/cost/pipeline.h) and the runtime's engine take their
// order of operations from StageSchedule, and the runtime frees its send buffers where
// SendReleases says (the planner's memory model counts the same buffers), so what is simulated is
// what runs.
//
//   for (const PipelineOp& op : StageSchedule(Schedule::k1F1B, p, stage, m)) {
//     if (op.forward) Forward(op.chunk, op.micro_batch); else Backward(op.chunk, op.micro_batch);
//   }
//
// Schedules (p stages, m micro-batches, v model chunks per stage; PlanSpec explains chunks):
//  - 1F1B (PipeDream-flush): stage i runs p - i - 1 warm-up forwards, then one forward and one
//    backward alternately, then the cool-down backwards. v = 1.
//  - GPipe: all forwards, then all backwards. v = 1.
//  - Interleaved 1F1B (Narayanan et al., SC'21, "Efficient Large-Scale Language Model Training on
//    GPU Clusters Using Megatron-LM", section 2.2.2; Megatron-LM's
//    forward_backward_pipelining_with_interleaving): each stage runs m x v forwards and m x v
//    backwards of its chunks. Forward number k (0-based) is local chunk (k mod p v) / p of
//    micro-batch (k / (p v)) p + k mod p — groups of p micro-batches go through one chunk, then the
//    next; backward number k runs the chunks in reverse order (chunk v - 1 - (k mod p v) / p). Stage
//    i warms up with min(m v, 2 (p - i - 1) + (v - 1) p) forwards (all m v when m = p), then
//    alternates forward and backward, then cools down. Requires m to be a multiple of p.
#ifndef CAIRN_COMMON_PLAN_SCHEDULE_H_
#define CAIRN_COMMON_PLAN_SCHEDULE_H_

#include <vector>

#include "common/plan/plan.h"

namespace cairn::plan {

// One operation of a stage's schedule: the forward or backward of one micro-batch through one of
// the stage's model chunks (`chunk` is local, 0..v-1: model chunk chunk x p + stage).
struct PipelineOp {
  bool forward = true;
  int micro_batch = 0;
  int chunk = 0;
};

// The order stage `stage` of `pipeline_degree` runs its operations in (see the overview). For
// 1F1B and GPipe `virtual_stages` must be 1.
std::vector<PipelineOp> StageSchedule(Schedule schedule, int pipeline_degree, int stage,
                                      int num_micro_batches, int virtual_stages = 1);

// Micro-batches stage `stage` holds activations of at its peak (with interleaving: micro-batches
// with at least one chunk whose forward ran and whose backward has not). 1F1B: min(p - stage, m);
// GPipe: m.
int InFlightMicroBatches(Schedule schedule, int pipeline_degree, int stage, int num_micro_batches,
                         int virtual_stages = 1);

// For each local chunk of stage `stage`, the largest number of micro-batches whose activations of
// that chunk are alive at once (forward done, backward not yet). v entries; for v = 1 one entry
// equal to InFlightMicroBatches.
std::vector<int> InFlightPerChunk(Schedule schedule, int pipeline_degree, int stage,
                                  int num_micro_batches, int virtual_stages = 1);

// A point-to-point message one stage sent: the activation (forward) or the gradient (backward)
// leaving local chunk `chunk` for micro-batch `micro_batch`.
struct SentMessage {
  bool forward = true;
  int chunk = 0;
  int micro_batch = 0;
};

// When stage `stage` may free its send buffers. Entry k lists the sends of this stage that are
// known to have been received once operation k (of StageSchedule's order) has received its own
// input: the peer has since sent this stage a message that it produced after consuming ours.
// Sends never listed are known received only at the end of the step. One entry per operation.
// 1F1B: the forward send of micro-batch j is released at the first backward whose gradient the
// next stage sent after its forward of j; the backward send of j at the forward of micro-batch
// j + p - stage + 1. GPipe: forward sends at the first backward, backward sends at the end.
std::vector<std::vector<SentMessage>> SendReleases(Schedule schedule, int pipeline_degree,
                                                   int stage, int num_micro_batches,
                                                   int virtual_stages = 1);
// The same for every stage at once ([stage][operation]): O(p m v log(m v)).
std::vector<std::vector<std::vector<SentMessage>>> AllSendReleases(Schedule schedule,
                                                                   int pipeline_degree,
                                                                   int num_micro_batches,
                                                                   int virtual_stages = 1);

// The largest number of send buffers stage `stage` holds at once while an operation runs (sends
// issued by earlier operations and not yet released before it; its own output is not counted).
int PeakPendingSends(Schedule schedule, int pipeline_degree, int stage, int num_micro_batches,
                     int virtual_stages = 1);
// The same for every stage at once.
std::vector<int> PeakPendingSendsPerStage(Schedule schedule, int pipeline_degree,
                                          int num_micro_batches, int virtual_stages = 1);

}  // namespace cairn::plan

#endif  // CAIRN_COMMON_PLAN_SCHEDULE_H_
