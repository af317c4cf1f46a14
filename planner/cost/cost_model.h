// planner/cost/cost_model.h — the cost of one layer, one layout change and one pipeline hop.
//
// Every term of Cairn's cost model that depends on a strategy lives here, so the search (which
// tabulates these terms) and Evaluate (which adds them up for one plan) can never disagree.
// docs/cost-model.md derives each formula and lists the assumptions about the runtime.
//
//   CostModel cm(problem);
//   StageContext ctx = cm.MakeContext(plan, stage);      // or fill it by hand
//   LayerCost c = cm.Layer(LayerKind::kBlock, strategy, ctx);
//   if (!c.valid) ... c.invalid_reason ...
//   double score = c.DpObjective(ctx.num_micro_batches);
//
// Time terms are seconds per micro-batch (forward_s, backward_s) or per optimizer step
// (step_sync_s); memory terms are bytes on the most loaded device of the layer's stage.
// Thread-safe: all methods are const.
#ifndef CAIRN_PLANNER_COST_COST_MODEL_H_
#define CAIRN_PLANNER_COST_COST_MODEL_H_

#include <cstdint>
#include <string>

#include "common/plan/layout.h"
#include "planner/cost/hardware_model.h"
#include "planner/problem/problem.h"

namespace cairn::planner {

// Where a layer runs: one pipeline stage of a plan.
struct StageContext {
  int stage_devices = 1;       // n = N / p
  int stage_index = 0;
  int pipeline_degree = 1;
  int micro_batch = 1;         // samples per micro-batch, B / m (before data-parallel split)
  int num_micro_batches = 1;   // m
  int in_flight = 1;           // micro-batches whose activations the stage holds at its peak
                               // (with interleaving: the largest count of one chunk's; the
                               // search's per-layer bound)
  Schedule schedule = Schedule::k1F1B;
  int virtual_stages = 1;      // model chunks per stage
};

// The layout of an activation between two layers (the plan contract's ActLayout).
using Layout = ::cairn::plan::ActLayout;

struct LayerCost {
  bool valid = true;
  std::string invalid_reason;

  // Per micro-batch on one device. forward_s/backward_s are complete: compute, TP/SP/Ulysses
  // collectives, ZeRO-2/3 communication exposed after overlap, recomputation.
  double forward_s = 0;
  double backward_s = 0;
  double compute_forward_s = 0;
  double compute_backward_s = 0;   // includes the recomputed forward
  double tp_comm_forward_s = 0;
  double tp_comm_backward_s = 0;
  // Per optimizer step: unhidden gradient sync, parameter all-gathers after the update, and the
  // optimizer step itself.
  double step_sync_s = 0;
  double dp_comm_exposed_s = 0;    // the communication part of step_sync_s plus per-micro-batch
                                   // ZeRO exposure (x m), for the breakdown
  double dp_comm_hidden_s = 0;     // data-parallel communication hidden under compute, per step
  double tp_comm_hidden_s = 0;     // TP/SP communication hidden under GEMMs, per step
  double optimizer_s = 0;
  // Per optimizer step, in step_sync_s: the step end's all-reduces of gradients summed over TP
  // ranks (TpSummedGradients: partial replicated tensors, shared kv heads).
  double tp_grad_sum_s = 0;

  // Memory on one device.
  int64_t param_bytes = 0;
  int64_t grad_bytes = 0;
  int64_t optimizer_bytes = 0;
  int64_t activation_bytes = 0;    // saved for backward, per micro-batch in flight
  // Working buffers while this layer runs, counting what the overlapped data parallelism of its
  // neighbours adds as if they were this layer (exact for equal blocks): the search's bound.
  int64_t transient_bytes = 0;
  // The runtime's overlapped data parallelism, term by term (docs/cost-model.md, "Memory"), for
  // the exact peak, which knows the neighbours:
  int64_t own_transient_bytes = 0;  // this layer's own working set (incl. its ZeRO-2/3 buffers)
  int64_t gathered_bytes = 0;       // ZeRO-3: its gathered weights, also live while the layer
                                    // before it (prefetch) computes
  int64_t reduce_bytes = 0;         // ZeRO-2/3: its unsharded gradient and reduced shard, live
                                    // while the next layer down runs its backward
  int64_t step_shard_bytes = 0;     // ZeRO-1: its gradient shard, from the end of its last
                                    // backward to the optimizer step

  // Persistent bytes of this layer in a stage that holds `in_flight` micro-batches (ZeRO-1's step
  // shard counted as persistent: the search's bound).
  int64_t PersistentBytes(int in_flight) const {
    return param_bytes + grad_bytes + optimizer_bytes + activation_bytes * in_flight +
           step_shard_bytes;
  }
  // The search's per-layer objective: busy time of this layer over one step.
  double DpObjective(int num_micro_batches) const {
    return num_micro_batches * (forward_s + backward_s) + step_sync_s;
  }
};

// Forward and backward cost of relocating an activation between two layouts, per micro-batch.
struct TransitionCost {
  double forward_s = 0;
  double backward_s = 0;
  double total() const { return forward_s + backward_s; }
};

class CostModel {
 public:
  explicit CostModel(const SearchProblem& problem);

  const SearchProblem& problem() const { return problem_; }
  const HardwareModel& hardware() const { return hw_; }

  // Cost of a layer of `kind` under `s` in `ctx`. Strategies the plan contract refuses
  // (plan::CheckLayer: degree not dividing the stage, batch not divisible, heads not divisible, ...)
  // come back with valid = false and the contract's reason.
  LayerCost Layer(LayerKind kind, const Strategy& s, const StageContext& ctx) const;

  // The activation layout a layer consumes and produces (plan::LayoutOf).
  static Layout LayoutOf(const Strategy& s, int stage_devices);
  // The layout activations cross a pipeline boundary in (plan::BoundaryLayout).
  Layout BoundaryLayout(const StageContext& ctx) const;
  // Relocating activations from `from` to `to` (all-gather of the missing part, or a free slice),
  // and the mirror for gradients in backward.
  TransitionCost Transition(const Layout& from, const Layout& to, const StageContext& ctx) const;
  // The rank stride of the group a relocation from `from` to `to` gathers over (`group` ranks,
  // plan::RelocationGroupSize): 1 when the pieces sit on consecutive ranks (a sequence gather
  // inside a TP group, or whole TP groups), else from.tp (row blocks on every from.tp-th rank).
  // With the devices per node it decides whether the gather crosses nodes.
  static int RelocationStride(const Layout& from, const Layout& to, int group);
  // Point-to-point time of one micro-batch's activation (or gradient) between stage `i` and `i+1`.
  double PipelineHop(const StageContext& ctx) const;
  // The same between any two stages (interleaving wraps from the last stage to the first).
  double PipelineHop(const StageContext& ctx, int from_stage, int to_stage) const;
  // Bytes of one micro-batch's activation a device sends across a pipeline boundary.
  int64_t PipelineHopBytes(const StageContext& ctx) const;

  // ov(a, c) = max(a, c) + (gamma - 1) min(a, c): both slow down by gamma while they overlap.
  double Overlap(double compute_s, double comm_s) const;

 private:
  // Compute-only times of one micro-batch of `samples` samples, from measurements when available.
  void Compute(LayerKind kind, const Strategy& s, int samples, double* forward_s,
               double* backward_s) const;
  bool MeasuredCompute(LayerKind kind, int tp, int samples, double* forward_s,
                       double* backward_s) const;
  void AddDataParallel(LayerKind kind, const Strategy& s, const StageContext& ctx,
                       int64_t params_on_device, LayerCost* c) const;
  void AddMemory(LayerKind kind, const Strategy& s, int samples, LayerCost* c) const;
  // The optimizer step (optimizer_s, added to step_sync_s): its memory traffic and the launches
  // of its per-tensor kernels on one-row tensors; needs grad_bytes.
  void AddStepEnd(int64_t updated_params, int updated_vectors, LayerCost* c) const;

  SearchProblem problem_;
  HardwareModel hw_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_COST_COST_MODEL_H_
