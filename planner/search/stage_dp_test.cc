// Unit tests of the stage dynamic program's bounds: cancellation and the table-memory cap.
#include "planner/search/stage_dp.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "common/units.h"
#include "gtest/gtest.h"
#include "planner/cost/evaluate.h"
#include "planner/cost/test_problems.h"
#include "planner/search/search.h"

namespace cairn::planner {
namespace {

// The input Searcher::Solve builds for stage `stage` of `p` (options not pruned for dominance).
StageDpInput StageInput(const CostModel& cm, const SearchProblem& pb, int p, int stage, int m) {
  StageDpInput in;
  in.ctx = MakeStageContext(pb, p, stage, pb.global_batch_sizes[0], m, Schedule::k1F1B);
  in.has_embedding = stage == 0;
  in.has_head = stage == p - 1;
  in.min_blocks = p == 1 ? pb.model.num_layers : 0;
  in.max_blocks = pb.model.num_layers;
  in.layouts.push_back(cm.BoundaryLayout(in.ctx));
  in.boundary_layout = 0;
  auto options = [&](LayerKind kind) {
    std::vector<DpOption> out;
    for (const Strategy& s : EnumerateStrategies(pb, kind, in.ctx.stage_devices)) {
      const LayerCost lc = cm.Layer(kind, s, in.ctx);
      if (!lc.valid) continue;
      DpOption o;
      o.strategy = s;
      o.busy_s = lc.forward_s + lc.backward_s;
      o.sync_s = lc.step_sync_s;
      o.persistent_bytes = lc.PersistentBytes(in.ctx.in_flight);
      o.transient_bytes = lc.transient_bytes;
      const Layout l = CostModel::LayoutOf(s, in.ctx.stage_devices);
      auto it = std::find(in.layouts.begin(), in.layouts.end(), l);
      o.layout = static_cast<int>(it - in.layouts.begin());
      if (it == in.layouts.end()) in.layouts.push_back(l);
      out.push_back(o);
    }
    return out;
  };
  if (in.has_embedding) in.embedding = options(LayerKind::kEmbedding);
  in.block = options(LayerKind::kBlock);
  if (in.has_head) in.head = options(LayerKind::kHead);
  in.budget_bytes = pb.memory_budget_bytes - StageFixedBytes(cm, in.ctx);
  in.quantum_bytes = MiB(1);
  return in;
}

// 8 blocks on 4 devices, a budget tight enough that memory decides the strategies (the
// memory-free optimum needs more than 3 GiB).
SearchProblem Tight() {
  return testing::SmallProblem(/*num_layers=*/8, /*devices_per_node=*/4, /*num_nodes=*/1,
                               /*global_batch=*/32, /*seq_len=*/1024, /*budget_bytes=*/GiB(3));
}

TEST(StageDpTest, StopsAtOnceWhenCancelled) {
  const SearchProblem pb = Tight();
  const CostModel cm(pb);
  StageDpInput in = StageInput(cm, pb, /*p=*/1, /*stage=*/0, /*m=*/4);
  std::atomic<bool> cancelled{true};
  in.cancelled = &cancelled;
  const StageDpOutput out = SolveStage(cm, in);
  EXPECT_TRUE(out.cancelled);
  EXPECT_EQ(out.cells, 0);
  for (const StageDpSolution& s : out.by_blocks) EXPECT_FALSE(s.feasible);

  cancelled = false;
  const StageDpOutput full = SolveStage(cm, in);
  EXPECT_FALSE(full.cancelled);
  EXPECT_TRUE(full.by_blocks[pb.model.num_layers].feasible);
}

TEST(StageDpTest, CoarsensTheQuantumInsteadOfExceedingTheTableBudget) {
  const SearchProblem pb = Tight();
  const CostModel cm(pb);
  StageDpInput in = StageInput(cm, pb, /*p=*/1, /*stage=*/0, /*m=*/4);
  const StageDpOutput exact = SolveStage(cm, in);
  ASSERT_TRUE(exact.by_blocks[8].feasible);
  EXPECT_EQ(exact.largest_quantum_bytes, MiB(1));

  // 64 KiB of tables for 10 tables of 44 options: about 70 memory units per pass.
  in.max_table_bytes = 64 << 10;
  const StageDpOutput coarse = SolveStage(cm, in);
  EXPECT_GT(coarse.largest_quantum_bytes, MiB(1));
  // At most 64 KiB / (10 tables x 44 options x 2 bytes) = 74 units of the coarse quantum fit the
  // budget (the passes' room is the budget less a transient cap, hence the slack of 2x).
  EXPECT_LE(in.budget_bytes / coarse.largest_quantum_bytes, 2 * 74);
  // Coarser memory never finds a better assignment, and whatever it finds still fits.
  auto find = [](const std::vector<DpOption>& list, const Strategy& s) {
    for (const DpOption& o : list) {
      if (o.strategy == s) return &o;
    }
    return static_cast<const DpOption*>(nullptr);
  };
  int checked = 0;
  for (int n = 0; n <= in.max_blocks; ++n) {
    const StageDpSolution& s = coarse.by_blocks[n];
    if (!s.feasible) continue;
    ASSERT_TRUE(exact.by_blocks[n].feasible);
    EXPECT_GE(s.objective, exact.by_blocks[n].objective - 1e-9);
    int64_t persistent = 0, transient = 0;
    for (size_t i = 0; i < s.layers.size(); ++i) {
      const bool emb = in.has_embedding && i == 0;
      const bool head = in.has_head && i + 1 == s.layers.size();
      const DpOption* o = find(emb ? in.embedding : head ? in.head : in.block, s.layers[i]);
      ASSERT_NE(o, nullptr);
      persistent += o->persistent_bytes;
      transient = std::max(transient, o->transient_bytes);
    }
    EXPECT_LE(persistent + transient, in.budget_bytes);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace cairn::planner
