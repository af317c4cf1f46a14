#include "planner/cost/hardware_model.h"

#include <cmath>

#include "gtest/gtest.h"
#include "planner/cost/test_problems.h"

namespace cairn::planner {
namespace {

TEST(HardwareModelTest, AlphaBetaCollectives) {
  HardwareModel hw(testing::RoundHardware(8, 2));
  // All-reduce, 4 ranks, 1 GB, intra-node: 10 us + 1e9 * 2*3/4 / 100e9 = 0.01501 s.
  EXPECT_NEAR(hw.CollectiveTime(CollectiveOp::kAllReduce, 4, false, 1e9), 0.01501, 1e-12);
  // All-gather, 8 ranks across nodes: 20 us + 1e9 * 7/8 / 10e9 = 0.08752 s.
  EXPECT_NEAR(hw.CollectiveTime(CollectiveOp::kAllGather, 8, true, 1e9), 0.08752, 1e-12);
  EXPECT_EQ(hw.CollectiveTime(CollectiveOp::kAllReduce, 1, false, 1e9), 0.0);
}

TEST(HardwareModelTest, DerivesMissingOpsFromAllReduce) {
  Hardware h = testing::RoundHardware(8, 1);
  std::vector<CommTable> only_ar;
  for (const CommTable& t : h.collectives) {
    if (t.op == CollectiveOp::kAllReduce) only_ar.push_back(t);
  }
  h.collectives = only_ar;
  HardwareModel hw(h);
  // Reduce-scatter at the all-reduce's bus bandwidth: half its time (bus factor (g-1)/g vs
  // 2(g-1)/g): (10 us + 1e9 * 1.5 / 100e9) / 2.
  EXPECT_NEAR(hw.CollectiveTime(CollectiveOp::kReduceScatter, 4, false, 1e9), 0.01501 / 2, 1e-12);
}

TEST(HardwareModelTest, InterpolatesGroupSizesAndPoints) {
  Hardware h = testing::RoundHardware(8, 1);
  h.collectives = {
      {CollectiveOp::kAllReduce, 2, false, 0, 0, {{1e6, 1e-4}, {1e8, 1e-3}}},
      {CollectiveOp::kAllReduce, 8, false, 0, 0, {{1e6, 2e-4}, {1e8, 2e-3}}},
  };
  HardwareModel hw(h);
  // On a measured point and between points (linear in bytes).
  EXPECT_NEAR(hw.CollectiveTime(CollectiveOp::kAllReduce, 2, false, 1e8), 1e-3, 1e-15);
  EXPECT_NEAR(hw.CollectiveTime(CollectiveOp::kAllReduce, 2, false, 5.05e7), 5.5e-4, 1e-12);
  // Beyond the last point: the last segment's slope, 9e-4 s per 9.9e7 bytes.
  EXPECT_NEAR(hw.CollectiveTime(CollectiveOp::kAllReduce, 2, false, 1.99e8), 1.9e-3, 1e-12);
  // Group 4 sits halfway (in log2) between 2 and 8; each side is first scaled to group 4's bus
  // factor (1.5 vs 1.0 and 1.75): 1e-3 * 1.5 and 2e-3 * 1.5 / 1.75, averaged.
  const double expected = 0.5 * (1.5e-3 + 2e-3 * 1.5 / 1.75);
  EXPECT_NEAR(hw.CollectiveTime(CollectiveOp::kAllReduce, 4, false, 1e8), expected, 1e-12);
}

TEST(HardwareModelTest, GemmRateInterpolatesInLogFlops) {
  Hardware h = testing::RoundHardware(8, 1);
  h.gemm = {{1e9, 1e13}, {1e12, 1e14}};
  HardwareModel hw(h);
  EXPECT_DOUBLE_EQ(hw.AchievedGemmRate(1e9), 1e13);
  EXPECT_DOUBLE_EQ(hw.AchievedGemmRate(1e6), 1e13);        // clamped below
  EXPECT_DOUBLE_EQ(hw.AchievedGemmRate(1e15), 1e14);       // clamped above
  EXPECT_NEAR(hw.AchievedGemmRate(std::pow(10.0, 10.5)), 5.5e13, 1e3);
  EXPECT_DOUBLE_EQ(hw.BestGemmRate(), 1e14);
}

TEST(HardwareModelTest, SpansNodes) {
  HardwareModel hw(testing::RoundHardware(8, 4));
  EXPECT_FALSE(hw.SpansNodes(8, 1));   // one full node
  EXPECT_FALSE(hw.SpansNodes(4, 2));   // ranks 0,2,4,6
  EXPECT_TRUE(hw.SpansNodes(2, 8));    // ranks 0 and 8
  EXPECT_TRUE(hw.SpansNodes(16, 1));
}

TEST(HardwareModelTest, HierarchicalCollectiveForGroupsWithSeveralRanksPerNode) {
  HardwareModel hw(testing::RoundHardware(8, 2));
  // 16 consecutive ranks on 2 nodes: 8 per node.
  const GroupPlacement place = hw.Placement(16, 1);
  EXPECT_TRUE(place.spans_nodes);
  EXPECT_EQ(place.ranks_per_node, 8);
  // All-reduce of 1 GB: reduce-scatter in the node (10 us + 1e9 * 7/8 / 100e9 = 8.76 ms), the
  // all-reduce between 2 nodes on 1e9 / 8 bytes (20 us + 1.25e8 * 1 / 10e9 = 12.52 ms), all-gather
  // in the node (8.76 ms): 30.04 ms, against 187.52 ms for the flat inter-node table.
  EXPECT_NEAR(hw.CollectiveTime(CollectiveOp::kAllReduce, 16, place, 1e9), 0.03004, 1e-12);
  EXPECT_NEAR(hw.CollectiveTime(CollectiveOp::kAllReduce, 16, true, 1e9), 0.18752, 1e-12);
  // Strided by 8: one rank per node, the flat table.
  EXPECT_EQ(hw.Placement(2, 8).ranks_per_node, 1);
}

TEST(HardwareModelTest, GemmShapesFromMeasuredPointsWithAMemoryFloor) {
  Hardware h = testing::RoundHardware(8, 1);
  h.gemm_shapes = {{1024, 1024, 1024, 1e-4, 0}};
  HardwareModel shaped(h);
  // On the measured shape: its time. Twice the rows at the same rate (one point): twice the time.
  EXPECT_DOUBLE_EQ(shaped.GemmTime(1024, 1024, 1024, 2), 1e-4);
  EXPECT_NEAR(shaped.GemmTime(2048, 1024, 1024, 2), 2e-4, 1e-15);
  // No backward measured: its two gradient GEMMs looked up as shapes (both 1024^3 here).
  EXPECT_NEAR(shaped.GemmBackwardTime(1024, 1024, 1024, 2), 2e-4, 1e-15);
  // A thin GEMM on the FLOPs table (100 TFLOP/s): 2 x 4096^2 FLOPs take 0.34 us, but its bytes
  // (4096 + 4096^2 + 4096) x 2 over 1 TB/s take 33.57 us.
  HardwareModel table(testing::RoundHardware(8, 1));
  EXPECT_NEAR(table.GemmTime(1, 4096, 4096, 2), (4096.0 + 4096.0 * 4096 + 4096) * 2 / 1e12,
              1e-15);
}

}  // namespace
}  // namespace cairn::planner
