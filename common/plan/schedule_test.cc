#include "common/plan/schedule.h"

#include <string>

#include "gtest/gtest.h"

namespace cairn::plan {
namespace {

std::string Order(Schedule s, int p, int stage, int m, int v = 1) {
  std::string out;
  for (const PipelineOp& op : StageSchedule(s, p, stage, m, v)) {
    out += (op.forward ? "F" : "B") + std::to_string(op.micro_batch);
    if (v > 1) out += "." + std::to_string(op.chunk);
    out += " ";
  }
  return out;
}

// Runs every stage's schedule with blocking receives (an operation waits for its input from the
// neighbouring chunk's stage): true when every operation ran, i.e. the schedule cannot deadlock.
bool RunsToCompletion(Schedule s, int p, int m, int v) {
  const int chunks = p * v;
  std::vector<std::vector<PipelineOp>> order(p);
  for (int i = 0; i < p; ++i) order[i] = StageSchedule(s, p, i, m, v);
  // done[forward][model chunk][micro-batch]
  std::vector<std::vector<std::vector<bool>>> done(
      2, std::vector<std::vector<bool>>(chunks, std::vector<bool>(m, false)));
  std::vector<size_t> next(p, 0);
  bool progressed = true;
  while (progressed) {
    progressed = false;
    for (int i = 0; i < p; ++i) {
      while (next[i] < order[i].size()) {
        const PipelineOp& op = order[i][next[i]];
        const int g = op.chunk * p + i;
        const bool ready = op.forward ? (g == 0 || done[1][g - 1][op.micro_batch])
                                      : (g == chunks - 1 ? done[1][g][op.micro_batch]
                                                         : done[0][g + 1][op.micro_batch]);
        if (!ready) break;
        done[op.forward ? 1 : 0][g][op.micro_batch] = true;
        ++next[i];
        progressed = true;
      }
    }
  }
  for (int i = 0; i < p; ++i) {
    if (next[i] != order[i].size()) return false;
  }
  return true;
}

TEST(ScheduleTest, OneFOneBWarmsUpThenAlternates) {
  EXPECT_EQ(Order(Schedule::k1F1B, 4, 0, 6), "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5 ");
  EXPECT_EQ(Order(Schedule::k1F1B, 4, 3, 3), "F0 B0 F1 B1 F2 B2 ");
  EXPECT_EQ(Order(Schedule::k1F1B, 4, 0, 2), "F0 F1 B0 B1 ");
}

TEST(ScheduleTest, GPipeRunsAllForwardsFirst) {
  EXPECT_EQ(Order(Schedule::kGPipe, 2, 1, 3), "F0 F1 F2 B0 B1 B2 ");
}

TEST(ScheduleTest, InterleavedGoesThroughChunksInGroupsOfPMicroBatches) {
  // p = 2, v = 2, m = 4. Forward k: chunk (k mod 4) / 2 of micro-batch (k / 4) 2 + k mod 2;
  // stage 0 warms up with 2 (2 - 0 - 1) + (2 - 1) 2 = 4 forwards, stage 1 with 2.
  EXPECT_EQ(Order(Schedule::kInterleaved1F1B, 2, 0, 4, 2),
            "F0.0 F1.0 F0.1 F1.1 F2.0 B0.1 F3.0 B1.1 F2.1 B0.0 F3.1 B1.0 B2.1 B3.1 B2.0 B3.0 ");
  EXPECT_EQ(Order(Schedule::kInterleaved1F1B, 2, 1, 4, 2),
            "F0.0 F1.0 F0.1 B0.1 F1.1 B1.1 F2.0 B0.0 F3.0 B1.0 F2.1 B2.1 F3.1 B3.1 B2.0 B3.0 ");
  // m = p: every forward first (Megatron's all-warm-up case).
  EXPECT_EQ(Order(Schedule::kInterleaved1F1B, 2, 1, 2, 2), "F0.0 F1.0 F0.1 F1.1 B0.1 B1.1 B0.0 B1.0 ");
}

TEST(ScheduleTest, EveryScheduleRunsToCompletionWithBlockingReceives) {
  for (int p = 1; p <= 5; ++p) {
    for (int m = 1; m <= 12; ++m) {
      EXPECT_TRUE(RunsToCompletion(Schedule::k1F1B, p, m, 1)) << "1f1b p=" << p << " m=" << m;
      EXPECT_TRUE(RunsToCompletion(Schedule::kGPipe, p, m, 1)) << "gpipe p=" << p << " m=" << m;
    }
  }
  for (int p = 2; p <= 5; ++p) {
    for (int v = 2; v <= 4; ++v) {
      for (int m = p; m <= 4 * p; m += p) {
        EXPECT_TRUE(RunsToCompletion(Schedule::kInterleaved1F1B, p, m, v))
            << "interleaved p=" << p << " v=" << v << " m=" << m;
      }
    }
  }
}

TEST(ScheduleTest, InFlightMicroBatches) {
  EXPECT_EQ(InFlightMicroBatches(Schedule::k1F1B, 4, 0, 8), 4);
  EXPECT_EQ(InFlightMicroBatches(Schedule::k1F1B, 4, 3, 8), 1);
  EXPECT_EQ(InFlightMicroBatches(Schedule::k1F1B, 4, 0, 2), 2);
  EXPECT_EQ(InFlightMicroBatches(Schedule::kGPipe, 4, 3, 8), 8);
  // The closed forms of 1F1B and GPipe, everywhere.
  for (int p = 1; p <= 6; ++p) {
    for (int m = 1; m <= 10; ++m) {
      for (int i = 0; i < p; ++i) {
        EXPECT_EQ(InFlightMicroBatches(Schedule::k1F1B, p, i, m), std::min(p - i, m));
        EXPECT_EQ(InFlightPerChunk(Schedule::k1F1B, p, i, m), std::vector<int>{std::min(p - i, m)});
        EXPECT_EQ(InFlightMicroBatches(Schedule::kGPipe, p, i, m), m);
      }
    }
  }
}

TEST(ScheduleTest, InterleavedInFlightPerChunk) {
  // Stage 0 above: chunk 0 runs F0 F1 F2 F3 before its first backward (B0.0): 4 alive; chunk 1
  // F0 F1, then B0 B1 before F2 F3: 2.
  EXPECT_EQ(InFlightPerChunk(Schedule::kInterleaved1F1B, 2, 0, 4, 2), (std::vector<int>{4, 2}));
  // Stage 1: chunk 0 F0 F1 ... F2 (3 alive) B0 F3 (3) B1: 3; chunk 1 is the last chunk, each
  // forward is followed by its backward: 1.
  EXPECT_EQ(InFlightPerChunk(Schedule::kInterleaved1F1B, 2, 1, 4, 2), (std::vector<int>{3, 1}));
  // Micro-batches with any chunk alive on stage 0: m0..m3 at F3.0.
  EXPECT_EQ(InFlightMicroBatches(Schedule::kInterleaved1F1B, 2, 0, 4, 2), 4);
}

TEST(ScheduleTest, OneFOneBSendReleases) {
  // p = 3, m = 5, stage 1: F0 F1 B0 F2 B1 F3 B2 F4 B3 B4. Stage 2 (last) runs F j B j: its
  // gradient of j is sent after it read our forward of j, so our forward send of j is released at
  // our B j. Stage 0 reads our backward send of j at its B j and sends its forward of j + 3 after
  // it: released at our F (j + p - stage + 1) = F (j + 3).
  const std::vector<PipelineOp> ops = StageSchedule(Schedule::k1F1B, 3, 1, 5);
  const auto rel = SendReleases(Schedule::k1F1B, 3, 1, 5);
  ASSERT_EQ(rel.size(), ops.size());
  for (size_t k = 0; k < ops.size(); ++k) {
    for (const SentMessage& s : rel[k]) {
      if (s.forward) {
        EXPECT_FALSE(ops[k].forward);
        EXPECT_EQ(ops[k].micro_batch, s.micro_batch);
      } else {
        EXPECT_TRUE(ops[k].forward);
        EXPECT_EQ(ops[k].micro_batch, s.micro_batch + 3);
      }
    }
  }
  // Backward sends of j = 2, 3, 4 have no later forward to learn from: end of step.
  int released_backward = 0, released_forward = 0;
  for (const auto& list : rel) {
    for (const SentMessage& s : list) (s.forward ? released_forward : released_backward)++;
  }
  EXPECT_EQ(released_forward, 5);
  EXPECT_EQ(released_backward, 2);
  // Pending sends at the start of each operation (after its releases): F0 0, F1 1 (F0), B0 1
  // (F1; F0 released), F2 2 (F1 B0), B1 2 (B0 F2), F3 2 (F2 B1), B2 2, F4 2, B3 2, B4 2: peak 2.
  EXPECT_EQ(PeakPendingSends(Schedule::k1F1B, 3, 1, 5), 2);
  // The last stage only sends gradients; B j is released at F (j + 2): at most one pending.
  EXPECT_EQ(PeakPendingSends(Schedule::k1F1B, 3, 2, 5), 1);
}

TEST(ScheduleTest, GPipeReleasesForwardSendsAtTheFirstBackward) {
  const auto rel = SendReleases(Schedule::kGPipe, 2, 0, 3);
  ASSERT_EQ(rel.size(), 6u);
  EXPECT_EQ(rel[3].size(), 3u);  // B0: the next stage sent its first gradient after every forward
  EXPECT_EQ(PeakPendingSends(Schedule::kGPipe, 2, 0, 3), 2);  // F0, F1 pending while F2 runs
  EXPECT_EQ(PeakPendingSends(Schedule::kGPipe, 2, 1, 3), 2);  // B0, B1 pending while B2 runs
}

TEST(ScheduleTest, InterleavedReleasesEverySendItCanProve) {
  // Every release names a send this stage issued before the releasing operation.
  for (int p = 2; p <= 4; ++p) {
    for (int v = 2; v <= 3; ++v) {
      const int m = 2 * p;
      const auto all = AllSendReleases(Schedule::kInterleaved1F1B, p, m, v);
      for (int s = 0; s < p; ++s) {
        const std::vector<PipelineOp> ops = StageSchedule(Schedule::kInterleaved1F1B, p, s, m, v);
        for (size_t k = 0; k < ops.size(); ++k) {
          for (const SentMessage& msg : all[s][k]) {
            bool sent_before = false;
            for (size_t e = 0; e < k; ++e) {
              sent_before |= ops[e].forward == msg.forward && ops[e].chunk == msg.chunk &&
                             ops[e].micro_batch == msg.micro_batch;
            }
            EXPECT_TRUE(sent_before) << "p=" << p << " v=" << v << " stage " << s << " op " << k;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace cairn::plan
