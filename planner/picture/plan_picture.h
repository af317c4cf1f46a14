// planner/picture/plan_picture.h — what a picture of a plan shows, as plain data taken from the
// cost model's evaluation of the plan (`cairn plan --svg/--html`, `cairn evaluate --svg/--html`).
//
// Overview
// --------
// A PlanPicture has three parts, each one-to-one with numbers the cost model computed; nothing is
// estimated here:
//  1. layers: every layer (embedding, blocks, head) with its pipeline stage, model chunk and
//     strategy; `styles` lists the distinct strategies (tp/sp/ulysses degree, dp mode,
//     recomputation) with a colour each, in order of first use — the legend.
//  2. memory: per pipeline stage, one device's predicted peak split the way StageCost splits it
//     (parameters, gradients, optimizer states, activations, transient = working set + pipeline
//     buffers, reserved), the search's upper bound (what feasibility is judged on) and the budget.
//  3. timeline: one training step, per stage, as the pipeline simulator placed it
//     (SimulatePlanPipeline with record_events, the simulation Evaluate runs): forward and backward
//     compute of each micro-batch and chunk; the exposed communication of each operation (TP/SP/
//     Ulysses collectives, ZeRO exposure, layout transitions — drawn right after its compute: the
//     cost model knows how long, not where inside the operation); blocking sends; the stage's
//     gradient sync and optimizer step after its last operation; and waiting, split into waiting
//     for a point-to-point message in transit (`p2p`) and the rest. Both kinds of waiting are the
//     evaluation's bubble: per stage they add up to PipelineResult::stage_idle_s, and on the
//     bottleneck stage to Evaluation::bubble_s.
// picture_render.h draws it (SVG, HTML) and writes the files.
//
// Example:
//
//   CostModel cm(problem);
//   absl::StatusOr<Evaluation> e = Evaluate(cm, plan);
//   absl::StatusOr<PlanPicture> picture = BuildPlanPicture(cm, plan, *e);
//   for (const PictureBlock& b : picture->timeline) ... b.kind, b.stage, b.start_s, b.end_s ...
//
// Thread-safe: pure functions of their arguments.
#ifndef CAIRN_PLANNER_PICTURE_PLAN_PICTURE_H_
#define CAIRN_PLANNER_PICTURE_PLAN_PICTURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "planner/cost/evaluate.h"

namespace cairn::planner {

// One distinct strategy of the plan: a colour in the layer row and a line in the legend.
struct PictureStyle {
  Strategy strategy;
  std::string label;        // Describe(strategy): "tp=4 sp zero1 recompute"
  std::string fill;         // CSS colour, "#4e79a7"
  int num_layers = 0;       // layers using it
};

struct PictureLayer {
  int index = 0;            // 0 embedding, 1..L blocks, L + 1 head
  std::string name;         // "embedding", "block 7", "head"
  int stage = 0;
  int chunk = 0;            // model chunk (= stage without interleaving)
  int style = 0;            // index into PlanPicture::styles
};

// One device of one pipeline stage at its predicted peak (StageCost), bytes. The parts add up to
// total_bytes.
struct PictureMemory {
  int stage = 0;
  int64_t parameter_bytes = 0;
  int64_t gradient_bytes = 0;
  int64_t optimizer_bytes = 0;
  int64_t activation_bytes = 0;
  int64_t transient_bytes = 0;   // working set and pipeline buffers
  int64_t reserved_bytes = 0;
  int64_t total_bytes = 0;       // the predicted peak
  int64_t bound_bytes = 0;       // the search's upper bound: feasible when <= the budget
};

enum class PictureBlockKind {
  kForward,    // forward compute of one micro-batch through one chunk
  kBackward,   // backward compute (with recomputation)
  kComm,       // exposed communication (see `detail`)
  kOptimizer,  // the optimizer step
  kBubble,     // waiting; `p2p` when for a message in transit
};

// "fwd", "bwd", "comm", "optimizer", "bubble": the CSS class of the block.
const char* ToString(PictureBlockKind kind);

// One interval of one stage's step.
struct PictureBlock {
  PictureBlockKind kind = PictureBlockKind::kForward;
  bool p2p = false;         // point-to-point: a blocking send (kComm) or a receive wait (kBubble)
  std::string detail;       // what the interval is, for tooltips: "TP/SP/Ulysses, ZeRO, layout
                            // transitions (exposed)", "gradient sync / parameter gather", ...
  int stage = 0;
  int chunk = -1;           // model chunk; -1 for sync, optimizer and plain waiting
  int micro_batch = -1;     // -1 for sync, optimizer and plain waiting
  double start_s = 0;
  double end_s = 0;
  double duration_s() const { return end_s - start_s; }
};

// Per pipeline stage, the evaluation's totals for one step (ExplainStages' columns).
struct PictureStageSummary {
  int stage = 0;
  std::string layers;           // "0-8" or, interleaved, "0-4, 17-20"
  double forward_s = 0;         // one micro-batch through all the stage's chunks
  double backward_s = 0;
  double compute_s = 0;         // per step
  double exposed_comm_s = 0;    // TP/SP + data-parallel + layout transitions, per step
  double hidden_comm_s = 0;     // overlapped with compute, per step
  double p2p_s = 0;             // point-to-point hops the stage receives, per step
  double waiting_s = 0;         // the stage's bubble (PipelineResult::stage_idle_s)
  double sync_s = 0;            // gradient sync and optimizer after the last operation
  double busy_s = 0;
};

struct PlanPicture {
  std::string title;            // "llama2-7b on 2 x h100-sxm (16 devices), global batch 64, seq 4096"
  std::string subtitle;         // origin, pipeline shape, schedule, step time, MFU, bubble
  int num_layers = 0;           // L + 2 layers in `layers`
  int pipeline_degree = 1;
  int virtual_stages = 1;
  int num_micro_batches = 1;
  Schedule schedule = Schedule::k1F1B;
  double step_time_s = 0;
  double bubble_s = 0;          // Evaluation::bubble_s (bottleneck stage's waiting)
  int bottleneck_stage = 0;
  bool feasible = true;
  int64_t budget_bytes = 0;
  std::vector<PictureStyle> styles;
  std::vector<PictureLayer> layers;            // in layer order
  std::vector<PictureMemory> memory;           // one per stage
  std::vector<PictureBlock> timeline;          // stage 0's blocks in time order, then stage 1's...
  std::vector<PictureStageSummary> stages;     // one per stage
};

// The picture of `plan`, whose evaluation by `cm` is `e` (Evaluate(cm, plan)).
// Errors: InvalidArgument when `e` does not belong to `plan` (stage or chunk counts differ);
// FailedPrecondition when the plan is invalid (e.valid false: the cost model skipped layers it
// cannot run, so there is no step to draw).
absl::StatusOr<PlanPicture> BuildPlanPicture(const CostModel& cm, const PlanSpec& plan,
                                             const Evaluation& e);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_PICTURE_PLAN_PICTURE_H_
