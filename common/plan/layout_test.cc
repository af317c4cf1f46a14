#include "common/plan/layout.h"

#include "gtest/gtest.h"

namespace cairn::plan {
namespace {

TEST(LayoutTest, LayoutOfSplitsBatchThenSequence) {
  const ActLayout tp = LayoutOf(Strategy{.tp = 2}, 8);
  EXPECT_EQ(tp.dp, 4);
  EXPECT_EQ(tp.tp, 2);
  EXPECT_FALSE(tp.seq_sharded);
  const ActLayout sp = LayoutOf(Strategy{.tp = 4, .mode = ParallelMode::kTensorSequence}, 8);
  EXPECT_EQ(sp.dp, 2);
  EXPECT_TRUE(sp.seq_sharded);
  EXPECT_TRUE(LayoutOf(Strategy{.tp = 2, .mode = ParallelMode::kUlysses}, 2).seq_sharded);
  EXPECT_FALSE(LayoutOf(Strategy{.tp = 1, .mode = ParallelMode::kUlysses}, 4).seq_sharded);
}

TEST(LayoutTest, BoundarySplitsTheBatchAsFarAsItDividesThenTheSequence) {
  // 8 devices, micro-batch 2: batch over 2, sequence over 4.
  ActLayout b = BoundaryLayout(8, 2, 1024);
  EXPECT_EQ(b.dp, 2);
  EXPECT_EQ(b.tp, 4);
  EXPECT_TRUE(b.seq_sharded);
  // Sequence 6 does not split over 4: the boundary cannot be crossed.
  b = BoundaryLayout(8, 2, 6);
  EXPECT_EQ(b.tp, 4);
  EXPECT_FALSE(b.seq_sharded);
  b = BoundaryLayout(4, 8, 7);
  EXPECT_EQ(b.dp, 4);
  EXPECT_EQ(b.tp, 1);
}

TEST(LayoutTest, SliceOfIsTpInnermost) {
  // dp 2 x tp 2, sequence-sharded: rank 3 holds samples [2, 4) and positions [8, 16).
  const ActLayout l{2, 2, true};
  const Slice s = SliceOf(l, 3, 4, 16);
  EXPECT_EQ(s.row_begin, 2);
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.pos_begin, 8);
  EXPECT_EQ(s.positions, 8);
  // Replicated over TP: rank 1 holds what rank 0 holds.
  const Slice r0 = SliceOf(ActLayout{2, 2, false}, 0, 4, 16);
  const Slice r1 = SliceOf(ActLayout{2, 2, false}, 1, 4, 16);
  EXPECT_TRUE(r0.Contains(r1) && r1.Contains(r0));
  const Slice x = Intersect(s, SliceOf(ActLayout{1, 4, true}, 2, 4, 16));  // positions [8, 12)
  EXPECT_EQ(x.rows, 2);
  EXPECT_EQ(x.pos_begin, 8);
  EXPECT_EQ(x.positions, 4);
  EXPECT_EQ(x.elements(), 8);
}

TEST(LayoutTest, RelocationGroupSize) {
  const ActLayout dp8{8, 1, false}, sp8{1, 8, true}, tp8{1, 8, false}, sp2{4, 2, true};
  EXPECT_EQ(RelocationGroupSize(dp8, dp8), 1);
  EXPECT_EQ(RelocationGroupSize(tp8, dp8), 1);  // replicated -> a slice: free
  EXPECT_EQ(RelocationGroupSize(dp8, tp8), 8);  // gather the whole micro-batch
  EXPECT_EQ(RelocationGroupSize(sp8, tp8), 8);
  // Rank 0: sample 0 whole -> samples 0-1, first half of the sequence: half of it from rank 1.
  EXPECT_EQ(RelocationGroupSize(dp8, sp2), 2);
  EXPECT_EQ(RelocationGroupSize(sp2, dp8), 2);
  EXPECT_EQ(RelocationGroupSize(sp8, dp8), 8);
}

TEST(LayoutTest, SplitRangeIsBalancedAndCoversEverything) {
  // GPT-2's vocabulary over 2 and 8 ranks.
  EXPECT_EQ(SplitRange(50257, 2, 0).size(), 25129);
  EXPECT_EQ(SplitRange(50257, 2, 1).begin, 25129);
  EXPECT_EQ(SplitRange(50257, 2, 1).end, 50257);
  for (int parts : {1, 3, 8, 64}) {
    int64_t next = 0, largest = 0;
    for (int r = 0; r < parts; ++r) {
      const Range x = SplitRange(50257, parts, r);
      EXPECT_EQ(x.begin, next);
      EXPECT_GE(x.size(), 50257 / parts);
      largest = std::max(largest, x.size());
      next = x.end;
    }
    EXPECT_EQ(next, 50257);
    EXPECT_EQ(largest, (50257 + parts - 1) / parts);  // what the cost model charges
  }
  EXPECT_EQ(VocabDegree(Strategy{.tp = 4, .mode = ParallelMode::kUlysses}), 1);
  EXPECT_EQ(VocabDegree(Strategy{.tp = 4, .mode = ParallelMode::kTensorSequence}), 4);
}

}  // namespace
}  // namespace cairn::plan
