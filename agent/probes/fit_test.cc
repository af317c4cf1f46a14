#include "agent/probes/fit.h"

#include <cmath>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::agent {
namespace {

using ::cairn::testing::IsOk;
using ::cairn::testing::StatusIs;

TEST(FitAlphaBetaTest, RecoversAnExactLatencyBandwidthLine) {
  // t = 20 us + bytes x 1.5 / 10 GB/s (all-reduce on 4: bus factor 2 x 3/4).
  std::vector<std::pair<double, double>> pts;
  for (double b = 1024; b <= 1 << 30; b *= 4) pts.emplace_back(b, 20e-6 + b * 1.5 / 10e9);
  absl::StatusOr<AlphaBetaFit> f = FitAlphaBeta(pts, 1.5);
  ASSERT_THAT(f.status(), IsOk());
  EXPECT_NEAR(f->latency_s, 20e-6, 1e-9);
  EXPECT_NEAR(f->busbw_bytes_per_s, 10e9, 1e3);
  EXPECT_LT(f->max_rel_error, 1e-9);
}

TEST(FitAlphaBetaTest, ErrorsSayHowFarTheFormIsFromTheMachine) {
  // A step at 64 KiB (protocol switch): no line fits both sides; the fit says so.
  std::vector<std::pair<double, double>> pts = {
      {1024, 10e-6}, {16384, 12e-6}, {65536, 60e-6}, {1 << 20, 200e-6}, {16 << 20, 3e-3}};
  absl::StatusOr<AlphaBetaFit> f = FitAlphaBeta(pts, 1.0);
  ASSERT_THAT(f.status(), IsOk());
  EXPECT_GT(f->max_rel_error, 0.2);
  EXPECT_GT(f->rms_rel_error, 0.0);
  EXPECT_GE(f->latency_s, 0.0);
  EXPECT_GT(f->busbw_bytes_per_s, 0.0);
}

TEST(FitAlphaBetaTest, FlatTimesGiveTheLargestPointsBandwidthAndNoNegativeLatency) {
  std::vector<std::pair<double, double>> pts = {{1024, 4e-3}, {4096, 3.9e-3}, {16384, 3.8e-3}};
  absl::StatusOr<AlphaBetaFit> f = FitAlphaBeta(pts, 1.0);
  ASSERT_THAT(f.status(), IsOk());
  EXPECT_GE(f->latency_s, 0.0);
  EXPECT_GT(f->busbw_bytes_per_s, 0.0);
}

TEST(FitAlphaBetaTest, RefusesTooFewOrBadPoints) {
  EXPECT_THAT(FitAlphaBeta({{1024, 1e-5}}, 1.0).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(FitAlphaBeta({{1024, 1e-5}, {1024, 2e-5}}, 1.0).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(FitAlphaBeta({{1024, 0}, {2048, 1e-5}}, 1.0).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(FitAlphaBeta({{1024, 1e-5}, {2048, 2e-5}}, 0).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(LogSpacedSizesTest, OneKibToOneGibByFour) {
  const std::vector<double> s = LogSpacedSizes(1024, 1 << 30, 4, 4);
  ASSERT_EQ(s.size(), 11u);
  EXPECT_EQ(s.front(), 1024);
  EXPECT_EQ(s.back(), 1 << 30);
  // Rounded to the multiple a group of 3 fp32 ranks needs (12 bytes), never below it.
  const std::vector<double> t = LogSpacedSizes(8, 1024, 4, 12);
  EXPECT_EQ(t.front(), 12);
  for (double b : t) EXPECT_EQ(std::fmod(b, 12), 0);
}

}  // namespace
}  // namespace cairn::agent
