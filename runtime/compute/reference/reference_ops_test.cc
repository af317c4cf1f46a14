// The oracle's own check: every backward in reference_ops.h against central finite differences of
// its forward, in double precision (step 1e-5, relative error < 1e-6), on tiny shapes. The backends
// are then compared with these backward passes (testing/backend_ops_test_suite.cc).
#include "runtime/compute/reference/reference_ops.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/compute/testing/test_util.h"

namespace cairn::runtime::reference {
namespace {

using ::cairn::runtime::testing::Convert;
using ::cairn::runtime::testing::NumericalGradient;
using ::cairn::runtime::testing::RandomInts;
using ::cairn::runtime::testing::RandomVector;
using ::cairn::runtime::testing::RelativeError;
using ::cairn::runtime::testing::WeightedSum;

constexpr double kStep = 1e-5;
constexpr double kTolerance = 1e-6;

std::vector<double> Random(int64_t n, uint32_t seed, float stddev = 1.0f, float mean = 0.0f) {
  return Convert<double>(RandomVector(n, seed, stddev, mean));
}

TEST(ReferenceOpsTest, MatmulBackwardMatchesFiniteDifferences) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(absl::StrCat("ta=", ta, " tb=", tb));
      const MatmulShape s{3, 4, 5, ta, tb};
      auto a = Random(15, 1), b = Random(20, 2), bias = Random(4, 3);
      const auto w = Random(12, 4);
      std::vector<double> da(15), db(20), dbias(4), c(12);
      MatmulBackward<double>(s, a.data(), b.data(), w.data(), da.data(), db.data(), dbias.data(),
                             false);
      auto loss = [&]() {
        MatmulForward<double>(s, a.data(), b.data(), bias.data(), c.data(), false);
        return WeightedSum(w, c);
      };
      EXPECT_LT(RelativeError(da, NumericalGradient(a, loss, kStep)), kTolerance);
      EXPECT_LT(RelativeError(db, NumericalGradient(b, loss, kStep)), kTolerance);
      EXPECT_LT(RelativeError(dbias, NumericalGradient(bias, loss, kStep)), kTolerance);
    }
  }
}

TEST(ReferenceOpsTest, LayerNormBackwardMatchesFiniteDifferences) {
  const NormShape s{3, 8, 1e-5f};
  auto x = Random(24, 1, 1.0f, 0.3f), w = Random(8, 2, 0.2f, 1.0f), b = Random(8, 3, 0.2f);
  const auto dy = Random(24, 4);
  std::vector<double> y(24), rstd(3), dx(24), dw(8), db(8);
  LayerNormForward<double>(s, x.data(), w.data(), b.data(), y.data(), rstd.data());
  LayerNormBackward<double>(s, x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(),
                            db.data(), false);
  auto loss = [&]() {
    LayerNormForward<double>(s, x.data(), w.data(), b.data(), y.data(), rstd.data());
    return WeightedSum(dy, y);
  };
  EXPECT_LT(RelativeError(dx, NumericalGradient(x, loss, kStep)), kTolerance);
  EXPECT_LT(RelativeError(dw, NumericalGradient(w, loss, kStep)), kTolerance);
  EXPECT_LT(RelativeError(db, NumericalGradient(b, loss, kStep)), kTolerance);
}

TEST(ReferenceOpsTest, RmsNormBackwardMatchesFiniteDifferences) {
  const NormShape s{3, 8, 1e-5f};
  auto x = Random(24, 1, 1.0f, 0.3f), w = Random(8, 2, 0.2f, 1.0f);
  const auto dy = Random(24, 4);
  std::vector<double> y(24), rstd(3), dx(24), dw(8);
  RmsNormForward<double>(s, x.data(), w.data(), y.data(), rstd.data());
  RmsNormBackward<double>(s, x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(),
                          false);
  auto loss = [&]() {
    RmsNormForward<double>(s, x.data(), w.data(), y.data(), rstd.data());
    return WeightedSum(dy, y);
  };
  EXPECT_LT(RelativeError(dx, NumericalGradient(x, loss, kStep)), kTolerance);
  EXPECT_LT(RelativeError(dw, NumericalGradient(w, loss, kStep)), kTolerance);
}

TEST(ReferenceOpsTest, ActivationBackwardsMatchFiniteDifferences) {
  const int64_t n = 12;
  auto x = Random(n, 1, 2.0f), u = Random(n, 2);
  const auto dy = Random(n, 3);
  std::vector<double> y(n), dx(n), du(n);
  GeluBackward<double>(n, x.data(), dy.data(), dx.data());
  auto gelu_loss = [&]() {
    GeluForward<double>(n, x.data(), y.data());
    return WeightedSum(dy, y);
  };
  EXPECT_LT(RelativeError(dx, NumericalGradient(x, gelu_loss, kStep)), kTolerance);

  SwiGluBackward<double>(n, x.data(), u.data(), dy.data(), dx.data(), du.data());
  auto swiglu_loss = [&]() {
    SwiGluForward<double>(n, x.data(), u.data(), y.data());
    return WeightedSum(dy, y);
  };
  EXPECT_LT(RelativeError(dx, NumericalGradient(x, swiglu_loss, kStep)), kTolerance);
  EXPECT_LT(RelativeError(du, NumericalGradient(u, swiglu_loss, kStep)), kTolerance);
}

TEST(ReferenceOpsTest, RopeBackwardMatchesFiniteDifferences) {
  RopeShape s{2, 3, 2, 4, 0, 5, 10000.0f};
  s.token_stride = 10;  // two unused elements per token
  auto x = Random(2 * 3 * 10, 1);
  const auto dy = Random(x.size(), 2);
  std::vector<double> y(x.size(), 0.0), dx(x.size(), 0.0);
  RopeBackward<double>(s, dy.data(), dx.data());
  auto loss = [&]() {
    RopeForward<double>(s, x.data(), y.data());
    return WeightedSum(dy, y);
  };
  EXPECT_LT(RelativeError(dx, NumericalGradient(x, loss, kStep)), kTolerance);
}

TEST(ReferenceOpsTest, AttentionBackwardMatchesFiniteDifferences) {
  // GQA with a local head range [1, 3) of 4 heads over 2 kv heads: both kv heads are read.
  AttentionShape s = AttentionShape::AllHeads(2, 5, 4, 2, 4);
  s.head_begin = 1;
  s.head_end = 3;
  const int64_t q_size = 2 * 5 * 2 * 4, kv_size = 2 * 5 * 2 * 4;
  auto q = Random(q_size, 1), k = Random(kv_size, 2), v = Random(kv_size, 3);
  const auto dout = Random(q_size, 4);
  std::vector<double> out(q_size), lse(2 * 2 * 5), dq(q_size), dk(kv_size), dv(kv_size);
  AttentionBackward<double>(s, q.data(), k.data(), v.data(), dout.data(), dq.data(), dk.data(),
                            dv.data());
  auto loss = [&]() {
    AttentionForward<double>(s, q.data(), k.data(), v.data(), out.data(), lse.data());
    return WeightedSum(dout, out);
  };
  EXPECT_LT(RelativeError(dq, NumericalGradient(q, loss, kStep)), kTolerance);
  EXPECT_LT(RelativeError(dk, NumericalGradient(k, loss, kStep)), kTolerance);
  EXPECT_LT(RelativeError(dv, NumericalGradient(v, loss, kStep)), kTolerance);
}

// The logsumexp the forward saves is log sum_j exp(score_ij) over the causal row.
TEST(ReferenceOpsTest, AttentionLogSumExpOfFirstRowIsItsOnlyScore) {
  const AttentionShape s = AttentionShape::AllHeads(1, 2, 1, 1, 2);
  const std::vector<double> q{1, 2, 3, 4}, k{0.5, -1, 2, 1}, v{1, 1, 1, 1};
  std::vector<double> out(4), lse(2);
  AttentionForward<double>(s, q.data(), k.data(), v.data(), out.data(), lse.data());
  // Row 0 sees key 0 only: score = (1 x 0.5 + 2 x -1) / sqrt(2).
  EXPECT_NEAR(lse[0], -1.5 / std::sqrt(2.0), 1e-12);
  // Row 1: scores (3 x 0.5 - 4) / sqrt 2 and (6 + 4) / sqrt 2.
  EXPECT_NEAR(lse[1], std::log(std::exp(-2.5 / std::sqrt(2.0)) + std::exp(10 / std::sqrt(2.0))),
              1e-12);
}

TEST(ReferenceOpsTest, EmbeddingBackwardMatchesFiniteDifferences) {
  const EmbeddingShape s{2, 3, 4, 2, 8, 1, 5};  // vocabulary rows [2, 8); ids 0, 1 contribute zeros
  const std::vector<int32_t> ids{0, 5, 2, 2, 7, 1};
  auto wte = Random(6 * 4, 1), wpe = Random(5 * 4, 2);
  const auto dout = Random(2 * 3 * 4, 3);
  std::vector<double> out(dout.size()), dwte(wte.size()), dwpe(wpe.size());
  EmbeddingBackward<double>(s, ids.data(), dout.data(), dwte.data(), dwpe.data());
  auto loss = [&]() {
    EmbeddingForward<double>(s, ids.data(), wte.data(), wpe.data(), out.data());
    return WeightedSum(dout, out);
  };
  EXPECT_LT(RelativeError(dwte, NumericalGradient(wte, loss, kStep)), kTolerance);
  EXPECT_LT(RelativeError(dwpe, NumericalGradient(wpe, loss, kStep)), kTolerance);
}

TEST(ReferenceOpsTest, CrossEntropyGradientMatchesFiniteDifferences) {
  const CrossEntropyShape s{4, 7, 0, 7};
  auto logits = Random(28, 1, 2.0f);
  const std::vector<int32_t> targets{3, -1, 6, 0};
  const double scale = 0.25;
  std::vector<double> losses(4), dlogits(28), unused(28);
  CrossEntropy<double>(s, logits.data(), targets.data(), scale, losses.data(), dlogits.data());
  auto loss = [&]() {
    CrossEntropy<double>(s, logits.data(), targets.data(), scale, losses.data(), unused.data());
    double total = 0;
    for (double l : losses) total += scale * l;
    return total;
  };
  EXPECT_LT(RelativeError(dlogits, NumericalGradient(logits, loss, kStep)), kTolerance);
  // Uniform logits: loss = log V.
  const std::vector<double> uniform(7, 0.5);
  const std::vector<int32_t> one{2};
  std::vector<double> l(1), d(7);
  CrossEntropy<double>(CrossEntropyShape{1, 7, 0, 7}, uniform.data(), one.data(), 1.0, l.data(),
                       d.data());
  EXPECT_NEAR(l[0], std::log(7.0), 1e-12);
}

}  // namespace
}  // namespace cairn::runtime::reference
