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

TEST(PipelineTest, InterleavingShrinksTheBubbleByV) {
  // Narayanan et al. (SC'21) section 2.2.2: with v chunks per stage the bubble is
  // (p - 1)(F + B) / v for stage times F, B. p = 2, chunks of F = 1, B = 2 (a stage: 2 and 4),
  // m = 4: m (F + B) of a stage = 24, plus (2 - 1) x 6 / 2 = 3 -> 27; without interleaving the
  // same stages take 24 + 6 = 30.
  const std::vector<StageTimes> chunks(4, StageTimes{1, 2, 0, 0});
  const PipelineResult r =
      SimulatePipeline(Schedule::kInterleaved1F1B, 4, chunks, {.virtual_stages = 2});
  EXPECT_DOUBLE_EQ(r.step_time_s, 27);
  EXPECT_DOUBLE_EQ(r.bubble_s, 3);
  const std::vector<StageTimes> stages(2, StageTimes{2, 4, 0, 0});
  EXPECT_DOUBLE_EQ(SimulatePipeline(Schedule::k1F1B, 4, stages).step_time_s, 30);
}

TEST(PipelineTest, BlockingSendsKeepTheSenderBusy) {
  // One micro-batch, hop 0.5: the receiver waits for it either way (7, as above); a blocking
  // sender is also busy for it, so each stage's busy time grows by one hop.
  std::vector<StageTimes> st = {{1, 2, 0, 0.5}, {1, 2, 0, 0}};
  const PipelineResult async = SimulatePipeline(Schedule::k1F1B, 1, st);
  const PipelineResult blocking =
      SimulatePipeline(Schedule::k1F1B, 1, st, {.virtual_stages = 1, .blocking_sends = true});
  EXPECT_DOUBLE_EQ(async.step_time_s, 7);
  EXPECT_DOUBLE_EQ(blocking.step_time_s, 7);  // the sender had nothing else to do
  EXPECT_DOUBLE_EQ(async.stage_busy_s[0], 3);
  EXPECT_DOUBLE_EQ(blocking.stage_busy_s[0], 3.5);
  EXPECT_DOUBLE_EQ(blocking.stage_busy_s[1], 3.5);
}

}  // namespace
}  // namespace cairn::planner
