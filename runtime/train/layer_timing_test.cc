// LayerTimer and TimeLayer on the CPU backend with a tiny model: one timer reused over several
// points gives what a fresh TimeLayer gives per point (activation bytes exactly: they are arena
// accounting, not timing), the iteration-count callback decides the timed iterations, sizes and
// counts below 1 are rejected, and a failed point leaves the timer usable. No time is asserted
// beyond "positive".
#include "runtime/train/layer_timing.h"

#include <vector>

#include "absl/strings/str_cat.h"

#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "runtime/compute/cpu/cpu_backend.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::IsOk;

// Llama-style (RMSNorm, SwiGLU, RoPE, grouped KV heads) and GPT-style (LayerNorm, GELU, learned
// positions, biases) at toy sizes.
plan::ModelDims Tiny(bool llama) {
  plan::ModelDims m;
  m.name = llama ? "tiny-llama" : "tiny-gpt";
  m.num_layers = 2;
  m.hidden = 32;
  m.ffn_hidden = llama ? 64 : 128;
  m.num_heads = 4;
  m.num_kv_heads = llama ? 2 : 4;
  m.vocab = 64;
  m.max_seq_len = 64;
  m.rms_norm = m.swiglu = m.rope = llama;
  m.bias = !llama;
  return m;
}

constexpr plan::LayerKind kKinds[] = {plan::LayerKind::kEmbedding, plan::LayerKind::kBlock,
                                      plan::LayerKind::kHead};

struct Point {
  int micro_batch, seq;
};

// Activation bytes the single-point TimeLayer measured before LayerTimer existed (commit 9732bad),
// for the points of the first test: {llama, kind} -> bytes at (1, 16), (2, 32), (3, 8). The
// embedding keeps nothing; the head keeps its normalised input (and its statistics).
int64_t Recorded(bool llama, plan::LayerKind kind, int point) {
  static const int64_t kBlockLlama[] = {27392, 108032, 40960};
  static const int64_t kBlockGpt[] = {33536, 132608, 50176};
  static const int64_t kHead[] = {8448, 33024, 12544};
  if (kind == plan::LayerKind::kEmbedding) return 0;
  if (kind == plan::LayerKind::kHead) return kHead[point];
  return llama ? kBlockLlama[point] : kBlockGpt[point];
}

TEST(LayerTimerTest, OneTimerOverSeveralPointsGivesTimeLayersActivationBytes) {
  CpuBackend backend;
  const std::vector<Point> points = {{1, 16}, {2, 32}, {3, 8}, {1, 16}};  // the first again last
  for (bool llama : {true, false}) {
    const plan::ModelDims model = Tiny(llama);
    for (plan::LayerKind kind : kKinds) {
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<LayerTimer> timer,
                           LayerTimer::Create(model, kind, &backend));
      EXPECT_GT(timer->parameter_count(), 0);
      for (size_t i = 0; i < points.size(); ++i) {
        const Point& p = points[i];
        const std::string where = absl::StrCat(model.name, " ", plan::ToString(kind), " b=",
                                               p.micro_batch, " seq=", p.seq);
        ASSERT_OK_AND_ASSIGN(LayerTime reused, timer->Time(p.micro_batch, p.seq, 2));
        ASSERT_OK_AND_ASSIGN(LayerTime fresh,
                             TimeLayer(model, kind, p.micro_batch, p.seq, 2, &backend));
        EXPECT_EQ(reused.activation_bytes, fresh.activation_bytes) << where;
        EXPECT_EQ(reused.activation_bytes, Recorded(llama, kind, static_cast<int>(i % 3))) << where;
        EXPECT_GE(reused.iterations, 2) << where;
        EXPECT_GT(reused.forward_s, 0) << where;
        EXPECT_GT(reused.backward_s, 0) << where;
        EXPECT_GT(reused.forward_median_s, 0) << where;
        // The block keeps its input and intermediates for backward, more with more tokens.
        if (kind == plan::LayerKind::kBlock) {
          EXPECT_GT(reused.activation_bytes, 0) << where;
        }
      }
    }
  }
}

TEST(LayerTimerTest, BlockActivationBytesGrowWithTokens) {
  CpuBackend backend;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LayerTimer> timer,
                       LayerTimer::Create(Tiny(true), plan::LayerKind::kBlock, &backend));
  ASSERT_OK_AND_ASSIGN(LayerTime small, timer->Time(1, 16, 1));
  ASSERT_OK_AND_ASSIGN(LayerTime large, timer->Time(4, 16, 1));
  EXPECT_GT(large.activation_bytes, small.activation_bytes);
}

TEST(LayerTimerTest, TheCallbackDecidesTheTimedIterations) {
  CpuBackend backend;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LayerTimer> timer,
                       LayerTimer::Create(Tiny(true), plan::LayerKind::kBlock, &backend));
  for (int wanted : {1, 3, 11}) {
    int calls = 0;
    double seen_s = -1;
    ASSERT_OK_AND_ASSIGN(LayerTime t,
                         timer->Time(2, 16, [&](double one_iteration_s) -> absl::StatusOr<int> {
                           ++calls;
                           seen_s = one_iteration_s;
                           return wanted;
                         }));
    EXPECT_EQ(calls, 1);
    EXPECT_GT(seen_s, 0);  // the warm-up's forward + backward
    EXPECT_EQ(t.iterations, wanted);
  }
}

TEST(LayerTimerTest, MinTotalSecondsAddsIterations) {
  CpuBackend backend;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LayerTimer> timer,
                       LayerTimer::Create(Tiny(true), plan::LayerKind::kBlock, &backend));
  ASSERT_OK_AND_ASSIGN(LayerTime t, timer->Time(1, 16, 2, /*min_total_s=*/0.02));
  EXPECT_GE(t.iterations, 2);
  // Either the timed iterations add up to the minimum or the cap stopped them.
  const double total_s = (t.forward_s + t.backward_s) * t.iterations;
  EXPECT_TRUE(total_s >= 0.02 * 0.999 || t.iterations == LayerTimer::kMaxTimedIterations)
      << total_s << " s in " << t.iterations;
}

TEST(LayerTimerTest, SizesAndCountsBelowOneAreRejected) {
  CpuBackend backend;
  const plan::ModelDims model = Tiny(true);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LayerTimer> timer,
                       LayerTimer::Create(model, plan::LayerKind::kBlock, &backend));
  EXPECT_EQ(timer->Time(0, 16, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(timer->Time(1, 0, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(timer->Time(1, 16, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(timer->Time(1, 16, LayerTimer::IterationCount()).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (int bad : {0, -2, LayerTimer::kMaxTimedIterations + 1}) {
    EXPECT_EQ(timer->Time(1, 16, [&](double) -> absl::StatusOr<int> { return bad; })
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(TimeLayer(model, plan::LayerKind::kHead, 1, 16, 0, &backend).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TimeLayer(model, plan::LayerKind::kHead, 0, 16, 1, &backend).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A callback's error (e.g. the ranks' agreement failed) is the point's error; the timer then
// times other points as before.
TEST(LayerTimerTest, AFailedPointLeavesTheTimerUsable) {
  CpuBackend backend;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LayerTimer> timer,
                       LayerTimer::Create(Tiny(false), plan::LayerKind::kHead, &backend));
  absl::StatusOr<LayerTime> failed = timer->Time(2, 16, [](double) -> absl::StatusOr<int> {
    return absl::UnavailableError("agreement lost");
  });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(failed.status().message(), "agreement lost");
  ASSERT_OK_AND_ASSIGN(LayerTime after, timer->Time(2, 16, 1));
  ASSERT_OK_AND_ASSIGN(LayerTime fresh, TimeLayer(Tiny(false), plan::LayerKind::kHead, 2, 16, 1,
                                                  &backend));
  EXPECT_EQ(after.activation_bytes, fresh.activation_bytes);
  EXPECT_EQ(after.iterations, 1);
}

}  // namespace
}  // namespace cairn::runtime
