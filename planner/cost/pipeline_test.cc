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


TEST(PipelineTest, EventsOfOneMicroBatchTracedByHand) {
  // The case of HopsAddToTheCriticalPath: stage 1 waits for stage 0's forward (0-1), then for its
  // hop (1-1.5), runs forward 1.5-2.5 and backward 2.5-4.5, and idles to the end of the step (7);
  // stage 0 runs forward 0-1, waits 1-4.5, receives 4.5-5 and runs backward 5-7.
  using Kind = PipelineEvent::Kind;
  std::vector<StageTimes> st = {{1, 2, 0, 0.5}, {1, 2, 0, 0}};
  const PipelineResult r = SimulatePipeline(Schedule::k1F1B, 1, st, {.record_events = true});
  struct Want {
    int stage;
    Kind kind;
    double start_s, end_s;
  };
  const std::vector<Want> want = {
      {0, Kind::kForward, 0, 1},   {0, Kind::kWait, 1, 4.5},       {0, Kind::kReceive, 4.5, 5},
      {0, Kind::kBackward, 5, 7},  {1, Kind::kWait, 0, 1},         {1, Kind::kReceive, 1, 1.5},
      {1, Kind::kForward, 1.5, 2.5}, {1, Kind::kBackward, 2.5, 4.5}, {1, Kind::kWait, 4.5, 7},
  };
  ASSERT_EQ(r.events.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(r.events[k].stage, want[k].stage);
    EXPECT_EQ(r.events[k].kind, want[k].kind);
    EXPECT_DOUBLE_EQ(r.events[k].start_s, want[k].start_s);
    EXPECT_DOUBLE_EQ(r.events[k].end_s, want[k].end_s);
  }
  // Without the option, no events (the search's and Evaluate's path).
  EXPECT_TRUE(SimulatePipeline(Schedule::k1F1B, 1, st).events.empty());
}

// For every schedule: each stage's events tile the step, operations appear once each, and the
// waits and busy intervals add up to the simulation's own idle and busy times.
TEST(PipelineTest, EventsTileTheStepAndMatchBusyAndIdle) {
  using Kind = PipelineEvent::Kind;
  struct Case {
    Schedule schedule;
    int m, v;
    bool blocking;
  };
  for (const Case& c : {Case{Schedule::k1F1B, 6, 1, false}, Case{Schedule::kGPipe, 4, 1, true},
                        Case{Schedule::kInterleaved1F1B, 6, 2, false},
                        Case{Schedule::kInterleaved1F1B, 3, 3, true}}) {
    SCOPED_TRACE(ToString(c.schedule));
    const int p = 3;
    std::vector<StageTimes> st;
    for (int g = 0; g < p * c.v; ++g) {
      // Uneven chunks, a hop after all but the last, a sync on some.
      st.push_back({1.0 + 0.25 * (g % 3), 2.0 + 0.5 * (g % 2), g % 2 ? 0.75 : 0.0,
                    g + 1 < p * c.v ? 0.125 : 0.0});
    }
    PipelineOptions opt;
    opt.virtual_stages = c.v;
    opt.blocking_sends = c.blocking;
    opt.record_events = true;
    const PipelineResult r = SimulatePipeline(c.schedule, c.m, st, opt);
    const PipelineResult plain = SimulatePipeline(c.schedule, c.m, st, {c.v, c.blocking});
    EXPECT_DOUBLE_EQ(r.step_time_s, plain.step_time_s);
    std::vector<double> at(p, 0.0), busy(p, 0.0), idle(p, 0.0);
    std::vector<int> ops(p, 0);
    int last_stage = 0;
    for (const PipelineEvent& e : r.events) {
      ASSERT_GE(e.stage, last_stage);  // stage-major
      last_stage = e.stage;
      EXPECT_NEAR(e.start_s, at[e.stage], 1e-12);
      EXPECT_GE(e.end_s, e.start_s);
      at[e.stage] = e.end_s;
      switch (e.kind) {
        case Kind::kForward:
        case Kind::kBackward:
          EXPECT_EQ(e.chunk % p, e.stage);
          ++ops[e.stage];
          [[fallthrough]];
        case Kind::kSend:
          busy[e.stage] += e.duration_s();
          break;
        case Kind::kReceive:
        case Kind::kWait:
          idle[e.stage] += e.duration_s();
          break;
        case Kind::kSync:
          break;
      }
    }
    for (int i = 0; i < p; ++i) {
      SCOPED_TRACE(i);
      EXPECT_NEAR(at[i], r.step_time_s, 1e-9);
      EXPECT_EQ(ops[i], 2 * c.m * c.v);
      EXPECT_NEAR(busy[i], r.stage_busy_s[i], 1e-9);
      EXPECT_NEAR(idle[i], r.stage_idle_s[i], 1e-9);
    }
    EXPECT_NEAR(idle[r.bottleneck_stage], r.bubble_s, 1e-9);
  }
}

TEST(PipelineTest, FixedCostPerOperationIsPaidPerChunkAndMicroBatch) {
  // Every operation costs 0.5 s more: the stages of UnevenStagesBottleneck become (1.5, 2.5)
  // and (2.5, 4.5), so 4 + 7 + 3 x 7 = 32 instead of 27.
  std::vector<StageTimes> st = {{1, 2, 0, 0}, {2, 4, 0, 0}};
  PipelineOptions opt;
  opt.op_overhead_s = 0.5;
  EXPECT_DOUBLE_EQ(SimulatePipeline(Schedule::k1F1B, 4, st, opt).step_time_s, 32);
  // The same work cut into more, thinner chunks pays it more often: one stage of F = 2, B = 4 in
  // one chunk, m = 4: 4 x (6 + 1) = 28; as 2 chunks of F = 1, B = 2 on 2 stages... the fixed cost
  // is paid by each of the 2 x 2 operations per micro-batch of a stage: 2 stages of F = 1.5,
  // B = 2.5: (m + p - 1) x 4 = 20 against 15 without it.
  const std::vector<StageTimes> one = {{2, 4, 0, 0}};
  EXPECT_DOUBLE_EQ(SimulatePipeline(Schedule::k1F1B, 4, one, opt).step_time_s, 28);
  const std::vector<StageTimes> two = {{1, 2, 0, 0}, {1, 2, 0, 0}};
  EXPECT_DOUBLE_EQ(SimulatePipeline(Schedule::k1F1B, 4, two, opt).step_time_s, 20);
  // Interleaving doubles the operations per stage: 4 chunks of F = 1.5, B = 2.5 on 2 stages,
  // m = 4: 8 operations of 4 s per stage plus (2 - 1) x 4 / 2... = 32 + 4 = 36 (27 without).
  const std::vector<StageTimes> chunks(4, StageTimes{1, 2, 0, 0});
  PipelineOptions il = opt;
  il.virtual_stages = 2;
  EXPECT_DOUBLE_EQ(SimulatePipeline(Schedule::kInterleaved1F1B, 4, chunks, il).step_time_s, 36);
}

}  // namespace
}  // namespace cairn::planner
