#include "planner/cost/pipeline.h"

#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

TEST(PipelineTest, UniformStagesTakeMPlusPMinusOneSlots) {
  // 2 stages of F=1, B=2, 4 micro-batches: (m + p - 1)(F + B) = 15, for both schedules.
  std::vector<StageTimes> st = {{1, 2, 0, 0}, {1, 2, 0, 0}};
  EXPECT_DOUBLE_EQ(SimulatePipeline(Schedule::k1F1B, 4, st).step_time_s, 15);
  EXPECT_DOUBLE_EQ(SimulatePipeline(Schedule::kGPipe, 4, st).step_time_s, 15);
}

TEST(PipelineTest, UnevenStagesBottleneck) {
  // Stage 1 twice as slow: sum(F+B) + (m-1) max(F+B) = 3 + 6 + 3*6 = 27 (traced by hand in
  // docs/cost-model.md).
  std::vector<StageTimes> st = {{1, 2, 0, 0}, {2, 4, 0, 0}};
  const PipelineResult r = SimulatePipeline(Schedule::k1F1B, 4, st);
  EXPECT_DOUBLE_EQ(r.step_time_s, 27);
  EXPECT_EQ(r.bottleneck_stage, 1);
  EXPECT_DOUBLE_EQ(r.bubble_s, 27 - 24);
}

TEST(PipelineTest, GradientSyncTailHidesBehindEarlierStages) {
  // The last stage finishes its backwards at 13 of 15: a sync of 1 s there is hidden, on the
  // first stage it is not.
  std::vector<StageTimes> st = {{1, 2, 0, 0}, {1, 2, 1, 0}};
  EXPECT_DOUBLE_EQ(SimulatePipeline(Schedule::k1F1B, 4, st).step_time_s, 15);
  st = {{1, 2, 1, 0}, {1, 2, 0, 0}};
  EXPECT_DOUBLE_EQ(SimulatePipeline(Schedule::k1F1B, 4, st).step_time_s, 16);
}

TEST(PipelineTest, HopsAddToTheCriticalPath) {
  // One micro-batch crosses the boundary twice: 1 + 0.5 + 1 + 2 + 0.5 + 2 = 7.
  std::vector<StageTimes> st = {{1, 2, 0, 0.5}, {1, 2, 0, 0}};
  EXPECT_DOUBLE_EQ(SimulatePipeline(Schedule::k1F1B, 1, st).step_time_s, 7);
}

}  // namespace
}  // namespace cairn::planner
