// planner/search/stage_dp.h — the exact dynamic program over the layers of one pipeline stage.
//
// For one stage context (devices, micro-batch, micro-batches in flight) and per-kind option lists,
// finds for every block count n = 0..depth the cheapest assignment of strategies to
// [embedding] + n blocks + [head] whose memory fits the stage budget, where the cost of a layer is
// its DpObjective (m x (forward + backward) + per-step sync) and consecutive layers pay the
// relocation cost between their layouts (and the pipeline-boundary layout at the stage's ends).
//
// State: (layers placed, memory units used <= v, strategy of the last layer). Memory is counted in
// quanta of `quantum_bytes`, each layer rounded up, so every returned assignment fits exactly;
// transient buffers are handled by enumerating a cap on them (see docs/search.md).
// Transitions depend only on layouts, so the inner minimum runs over layouts, not strategies:
// O(depth x units x (options + layouts^2)) per cap.
//
// Bounded: the backtracking tables of one pass take (units + 1) x options x depth x 2 bytes; when
// that would exceed `max_table_bytes`, the pass counts memory in a coarser quantum (every layer is
// still rounded up, so what it returns still fits, only a plan that needs the last fraction of the
// budget may be missed). `cancelled` is read once per table row, so a stop takes effect within
// microseconds to a few milliseconds; the output is then partial and must be discarded.
#ifndef CAIRN_PLANNER_SEARCH_STAGE_DP_H_
#define CAIRN_PLANNER_SEARCH_STAGE_DP_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "planner/cost/cost_model.h"
#include "planner/problem/problem.h"

namespace cairn::planner {

// One strategy of one layer kind, costed in the stage's context.
struct DpOption {
  Strategy strategy;
  double busy_s = 0;           // forward_s + backward_s (one micro-batch)
  double sync_s = 0;           // step_sync_s (once per step)
  int64_t persistent_bytes = 0;
  int64_t transient_bytes = 0;
  int layout = 0;              // index into StageDpInput::layouts
};

struct StageDpInput {
  StageContext ctx;
  bool has_embedding = false;
  bool has_head = false;
  int min_blocks = 0;
  int max_blocks = 0;
  std::vector<DpOption> embedding, block, head;
  std::vector<Layout> layouts;  // every layout used by an option, plus the boundary layout
  int boundary_layout = 0;
  int64_t budget_bytes = 0;     // for the stage's layers (budget minus fixed bytes)
  int64_t quantum_bytes = 1;
  int max_transient_caps = 4;
  // Objective of a layer = m x busy_s + sync_weight x sync_s. 1 charges the per-step sync fully
  // (exact for one stage); 0 assumes it hides behind other stages' drain (see docs/search.md).
  double sync_weight = 1.0;
  // Set from another thread to stop early (may be null).
  const std::atomic<bool>* cancelled = nullptr;
  // Most bytes the backtracking tables of one pass may take (see the overview).
  int64_t max_table_bytes = int64_t{256} << 20;
};

// Best assignment for one block count.
struct StageDpSolution {
  bool feasible = false;
  double objective = 0;        // sum of layer objectives + m x transitions
  double busy_s = 0;           // per micro-batch: forward + backward + transitions
  std::vector<Strategy> layers;  // [embedding] + blocks + [head]
};

struct StageDpOutput {
  std::vector<StageDpSolution> by_blocks;  // index n = number of blocks, 0..max_blocks
  int64_t cells = 0;
  int64_t largest_quantum_bytes = 0;  // the coarsest memory quantum a pass used
  bool cancelled = false;             // stopped by `cancelled`: by_blocks is partial
};

StageDpOutput SolveStage(const CostModel& cm, const StageDpInput& in);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SEARCH_STAGE_DP_H_
