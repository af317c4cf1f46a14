// The parity tests of backend_ops_test_suite.h. Layout: one section per operation, each with
// "...MatchesReference" (forward and backward against the double oracle on small odd shapes) and
// "...MatchesFiniteDifferences" (tiny shapes), then the sharding identities, then AdamW, utilities
// and validation. Every (w) argument is a WorkingBuffer (WBuffer) and its host values go through
// W() (rounded to the working dtype) before the oracle sees them; (f32) arguments are Buffers.
#include "runtime/compute/testing/backend_ops_test_suite.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "runtime/compute/reference/reference_ops.h"
#include "runtime/compute/testing/test_util.h"

namespace cairn::runtime::testing {

std::string BackendUnderTestName(const ::testing::TestParamInfo<BackendUnderTest>& info) {
  return info.param.name;
}

void BackendOpsTest::SetUp() {
  backend_ = GetParam().make();
  ASSERT_NE(backend_, nullptr);
}

std::vector<float> BackendOpsTest::W(std::vector<float> v) {
  return RoundTo(backend_->working_dtype(), std::move(v));
}

namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;
using Buffer = DeviceBuffer<float>;  // (f32) arguments
using WBuffer = WorkingBuffer;       // (w) arguments
using IntBuffer = DeviceBuffer<int32_t>;

constexpr double kStep = 1e-2;  // finite-difference step for fp32 forwards

// Finite differences need a forward that resolves kStep; a backend without (bf16) skips them.
#define CAIRN_SKIP_WITHOUT_FINITE_DIFFERENCES()                            \
  if (!tolerances().finite_difference.has_value()) {                       \
    GTEST_SKIP() << "finite differences are not meaningful in " +          \
                        std::string(DTypeName(backend().working_dtype())); \
  }                                                                        \
  const double fd_tolerance = *tolerances().finite_difference

std::vector<double> D(const std::vector<float>& v) { return Convert<double>(v); }

// Copies heads [begin, end) of a [tokens, heads, dim] tensor.
std::vector<float> SliceHeads(const std::vector<float>& x, int64_t tokens, int64_t heads,
                              int64_t dim, int64_t begin, int64_t end) {
  std::vector<float> out;
  out.reserve(static_cast<size_t>(tokens * (end - begin) * dim));
  for (int64_t t = 0; t < tokens; ++t) {
    out.insert(out.end(), x.begin() + (t * heads + begin) * dim,
               x.begin() + (t * heads + end) * dim);
  }
  return out;
}

// Copies columns [begin, end) of a [rows, cols] matrix.
std::vector<float> SliceColumns(const std::vector<float>& x, int64_t rows, int64_t cols,
                                int64_t begin, int64_t end) {
  return SliceHeads(x, rows, cols, 1, begin, end);
}

// ==== Matmul =====================================================================================

struct MatmulSizes {
  int64_t m, n, k;
};

// Stored sizes of A and B for a shape.
int64_t SizeA(const MatmulShape& s) { return s.m * s.k; }
int64_t SizeB(const MatmulShape& s) { return s.n * s.k; }

TEST_P(BackendOpsTest, MatmulForwardMatchesReference) {
  for (const MatmulSizes& z :
       {MatmulSizes{37, 29, 19}, MatmulSizes{1, 7, 64}, MatmulSizes{64, 1, 3}}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (bool with_bias : {false, true}) {
          for (bool accumulate : {false, true}) {
            SCOPED_TRACE(absl::StrCat("m=", z.m, " n=", z.n, " k=", z.k, " ta=", ta, " tb=", tb,
                                      " bias=", with_bias, " accumulate=", accumulate));
            const MatmulShape s{z.m, z.n, z.k, ta, tb};
            const auto a = W(RandomVector(SizeA(s), 1)), b = W(RandomVector(SizeB(s), 2));
            const auto bias = W(RandomVector(s.n, 3)), c0 = W(RandomVector(s.m * s.n, 4));
            WBuffer da(backend(), a), db(backend(), b), dbias(backend(), bias), dc(backend(), c0);
            ASSERT_OK(backend().MatmulForward(
                s, da.get(), db.get(), with_bias ? dbias.get() : nullptr, dc.get(), accumulate));
            auto expected = D(c0);
            const auto bias_d = D(bias);
            reference::MatmulForward<double>(s, D(a).data(), D(b).data(),
                                             with_bias ? bias_d.data() : nullptr, expected.data(),
                                             accumulate);
            EXPECT_LT(RelativeError(dc.ToHost(), expected), tolerances().forward);
          }
        }
      }
    }
  }
}

// The LM head's matmul: working-dtype operands, fp32 logits and bias (shape.output_f32). Nothing is
// rounded to the working dtype on the way out, so the bound is fp32's (at most 1e-4: a bf16
// rounding of the output, ~2e-3, must fail it).
TEST_P(BackendOpsTest, MatmulForwardWithF32OutputMatchesReference) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (bool accumulate : {false, true}) {
        SCOPED_TRACE(absl::StrCat("ta=", ta, " tb=", tb, " accumulate=", accumulate));
        MatmulShape s{21, 67, 40, ta, tb};
        s.output_f32 = true;
        const auto a = W(RandomVector(SizeA(s), 1)), b = W(RandomVector(SizeB(s), 2));
        const auto bias = RandomVector(s.n, 3), c0 = RandomVector(s.m * s.n, 4);
        WBuffer a_(backend(), a), b_(backend(), b);
        Buffer bias_(backend(), bias), c(backend(), c0);
        ASSERT_OK(backend().MatmulForward(s, a_.get(), b_.get(), bias_.get(), c.get(), accumulate));
        auto expected = D(c0);
        reference::MatmulForward<double>(s, D(a).data(), D(b).data(), D(bias).data(),
                                         expected.data(), accumulate);
        EXPECT_LT(RelativeError(c.ToHost(), expected), std::max(tolerances().f32, 1e-4));
      }
    }
  }
}

TEST_P(BackendOpsTest, MatmulBackwardMatchesReference) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (bool accumulate : {false, true}) {
        SCOPED_TRACE(absl::StrCat("ta=", ta, " tb=", tb, " accumulate_da=", accumulate));
        const MatmulShape s{23, 17, 31, ta, tb};
        const auto a = W(RandomVector(SizeA(s), 1)), b = W(RandomVector(SizeB(s), 2));
        const auto dc = W(RandomVector(s.m * s.n, 3));
        // Gradients start non-zero: parameter gradients must accumulate, da must follow the flag.
        const auto da0 = W(RandomVector(SizeA(s), 4)), db0 = RandomVector(SizeB(s), 5);
        const auto dbias0 = RandomVector(s.n, 6);
        WBuffer a_(backend(), a), b_(backend(), b), dc_(backend(), dc), da(backend(), da0);
        Buffer db(backend(), db0), dbias(backend(), dbias0);
        ASSERT_OK(backend().MatmulBackward(s, a_.get(), b_.get(), dc_.get(), da.get(), db.get(),
                                           dbias.get(), accumulate));
        auto eda = D(da0), edb = D(db0), edbias = D(dbias0);
        reference::MatmulBackward<double>(s, D(a).data(), D(b).data(), D(dc).data(), eda.data(),
                                          edb.data(), edbias.data(), accumulate);
        EXPECT_LT(RelativeError(da.ToHost(), eda), tolerances().backward);
        EXPECT_LT(RelativeError(db.ToHost(), edb), tolerances().backward);
        EXPECT_LT(RelativeError(dbias.ToHost(), edbias), tolerances().backward);
      }
    }
  }
}

TEST_P(BackendOpsTest, MatmulBackwardSkipsNullGradients) {
  const MatmulShape s = MatmulShape::Linear(5, 4, 3);
  const auto a = W(RandomVector(SizeA(s), 1)), b = W(RandomVector(SizeB(s), 2));
  const auto dc = W(RandomVector(s.m * s.n, 3));
  WBuffer a_(backend(), a), b_(backend(), b), dc_(backend(), dc);
  Buffer db(backend(), SizeB(s));
  // Only the weight gradient: a frozen input, no bias.
  ASSERT_OK(backend().MatmulBackward(s, a_.get(), b_.get(), dc_.get(), nullptr, db.get(), nullptr,
                                     false));
  std::vector<double> edb(SizeB(s), 0.0);
  reference::MatmulBackward<double>(s, D(a).data(), D(b).data(), D(dc).data(), nullptr, edb.data(),
                                    nullptr, false);
  EXPECT_LT(RelativeError(db.ToHost(), edb), tolerances().backward);
}

TEST_P(BackendOpsTest, MatmulBackwardMatchesFiniteDifferences) {
  CAIRN_SKIP_WITHOUT_FINITE_DIFFERENCES();
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(absl::StrCat("ta=", ta, " tb=", tb));
      const MatmulShape s{3, 4, 5, ta, tb};
      auto a = RandomVector(SizeA(s), 1), b = RandomVector(SizeB(s), 2);
      auto bias = RandomVector(s.n, 3);
      const auto w = RandomVector(s.m * s.n, 4);  // loss = sum w * c, so dc = w
      WBuffer a_(backend(), a), b_(backend(), b), bias_(backend(), bias), c(backend(), s.m * s.n);
      WBuffer w_(backend(), w), da(backend(), SizeA(s));
      Buffer db(backend(), SizeB(s)), dbias(backend(), s.n);
      ASSERT_OK(backend().MatmulBackward(s, a_.get(), b_.get(), w_.get(), da.get(), db.get(),
                                         dbias.get(), false));
      auto loss = [&]() {
        a_.Upload(a);
        b_.Upload(b);
        bias_.Upload(bias);
        CAIRN_CHECK(
            backend().MatmulForward(s, a_.get(), b_.get(), bias_.get(), c.get(), false).ok());
        return WeightedSum(w, c.ToHost());
      };
      EXPECT_LT(RelativeError(da.ToHost(), NumericalGradient(a, loss, kStep)), fd_tolerance);
      EXPECT_LT(RelativeError(db.ToHost(), NumericalGradient(b, loss, kStep)), fd_tolerance);
      EXPECT_LT(RelativeError(dbias.ToHost(), NumericalGradient(bias, loss, kStep)), fd_tolerance);
    }
  }
}

// ==== LayerNorm and RMSNorm ======================================================================

TEST_P(BackendOpsTest, LayerNormMatchesReference) {
  for (bool with_bias : {false, true}) {
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(absl::StrCat("bias=", with_bias, " accumulate_dinp=", accumulate));
      const NormShape s{13, 37, 1e-5f};
      const auto x = W(RandomVector(s.rows * s.cols, 1, 2.0f, 0.5f));
      const auto w = W(RandomVector(s.cols, 2, 0.1f, 1.0f)),
                 bias = W(RandomVector(s.cols, 3, 0.1f));
      const auto dy = W(RandomVector(s.rows * s.cols, 4));
      const auto dx0 = W(RandomVector(s.rows * s.cols, 5)), dw0 = RandomVector(s.cols, 6),
                 db0 = RandomVector(s.cols, 7);
      WBuffer x_(backend(), x), w_(backend(), w), b_(backend(), bias), y(backend(), x.size());
      WBuffer dy_(backend(), dy), dx(backend(), dx0);
      Buffer rstd(backend(), s.rows), dw(backend(), dw0), db(backend(), db0);
      void* bias_ptr = with_bias ? b_.get() : nullptr;
      ASSERT_OK(backend().LayerNormForward(s, x_.get(), w_.get(), bias_ptr, y.get(), rstd.get()));
      ASSERT_OK(backend().LayerNormBackward(s, x_.get(), w_.get(), rstd.get(), dy_.get(), dx.get(),
                                            dw.get(), with_bias ? db.get() : nullptr, accumulate));

      std::vector<double> ey(x.size()), erstd(s.rows);
      const auto bias_d = D(bias);
      reference::LayerNormForward<double>(s, D(x).data(), D(w).data(),
                                          with_bias ? bias_d.data() : nullptr, ey.data(),
                                          erstd.data());
      auto edx = D(dx0), edw = D(dw0), edb = D(db0);
      reference::LayerNormBackward<double>(s, D(x).data(), D(w).data(), erstd.data(), D(dy).data(),
                                           edx.data(), edw.data(), with_bias ? edb.data() : nullptr,
                                           accumulate);
      EXPECT_LT(RelativeError(y.ToHost(), ey), tolerances().forward);
      EXPECT_LT(RelativeError(rstd.ToHost(), erstd), tolerances().forward);
      EXPECT_LT(RelativeError(dx.ToHost(), edx), tolerances().backward);
      EXPECT_LT(RelativeError(dw.ToHost(), edw), tolerances().backward);
      EXPECT_LT(RelativeError(db.ToHost(), edb), tolerances().backward);
    }
  }
}

TEST_P(BackendOpsTest, LayerNormMatchesFiniteDifferences) {
  CAIRN_SKIP_WITHOUT_FINITE_DIFFERENCES();
  const NormShape s{4, 8, 1e-5f};
  auto x = RandomVector(s.rows * s.cols, 1, 1.0f, 0.3f);
  auto w = RandomVector(s.cols, 2, 0.2f, 1.0f), bias = RandomVector(s.cols, 3, 0.2f);
  const auto dy = RandomVector(s.rows * s.cols, 4);
  WBuffer x_(backend(), x), w_(backend(), w), b_(backend(), bias), y(backend(), x.size());
  WBuffer dy_(backend(), dy), dx(backend(), x.size());
  Buffer rstd(backend(), s.rows), dw(backend(), s.cols), db(backend(), s.cols);
  ASSERT_OK(backend().LayerNormForward(s, x_.get(), w_.get(), b_.get(), y.get(), rstd.get()));
  ASSERT_OK(backend().LayerNormBackward(s, x_.get(), w_.get(), rstd.get(), dy_.get(), dx.get(),
                                        dw.get(), db.get(), false));
  auto loss = [&]() {
    x_.Upload(x);
    w_.Upload(w);
    b_.Upload(bias);
    CAIRN_CHECK(
        backend().LayerNormForward(s, x_.get(), w_.get(), b_.get(), y.get(), rstd.get()).ok());
    return WeightedSum(dy, y.ToHost());
  };
  EXPECT_LT(RelativeError(dx.ToHost(), NumericalGradient(x, loss, kStep)), fd_tolerance);
  EXPECT_LT(RelativeError(dw.ToHost(), NumericalGradient(w, loss, kStep)), fd_tolerance);
  EXPECT_LT(RelativeError(db.ToHost(), NumericalGradient(bias, loss, kStep)), fd_tolerance);
}

TEST_P(BackendOpsTest, RmsNormMatchesReference) {
  for (bool accumulate : {false, true}) {
    SCOPED_TRACE(absl::StrCat("accumulate_dinp=", accumulate));
    const NormShape s{11, 45, 1e-6f};
    const auto x = W(RandomVector(s.rows * s.cols, 1, 2.0f, 0.5f));
    const auto w = W(RandomVector(s.cols, 2, 0.1f, 1.0f));
    const auto dy = W(RandomVector(s.rows * s.cols, 4));
    const auto dx0 = W(RandomVector(s.rows * s.cols, 5)), dw0 = RandomVector(s.cols, 6);
    WBuffer x_(backend(), x), w_(backend(), w), y(backend(), x.size()), dy_(backend(), dy),
        dx(backend(), dx0);
    Buffer rstd(backend(), s.rows), dw(backend(), dw0);
    ASSERT_OK(backend().RmsNormForward(s, x_.get(), w_.get(), y.get(), rstd.get()));
    ASSERT_OK(backend().RmsNormBackward(s, x_.get(), w_.get(), rstd.get(), dy_.get(), dx.get(),
                                        dw.get(), accumulate));
    std::vector<double> ey(x.size()), erstd(s.rows);
    reference::RmsNormForward<double>(s, D(x).data(), D(w).data(), ey.data(), erstd.data());
    auto edx = D(dx0), edw = D(dw0);
    reference::RmsNormBackward<double>(s, D(x).data(), D(w).data(), erstd.data(), D(dy).data(),
                                       edx.data(), edw.data(), accumulate);
    EXPECT_LT(RelativeError(y.ToHost(), ey), tolerances().forward);
    EXPECT_LT(RelativeError(rstd.ToHost(), erstd), tolerances().forward);
    EXPECT_LT(RelativeError(dx.ToHost(), edx), tolerances().backward);
    EXPECT_LT(RelativeError(dw.ToHost(), edw), tolerances().backward);
  }
}

TEST_P(BackendOpsTest, RmsNormMatchesFiniteDifferences) {
  CAIRN_SKIP_WITHOUT_FINITE_DIFFERENCES();
  const NormShape s{4, 8, 1e-5f};
  auto x = RandomVector(s.rows * s.cols, 1, 1.0f, 0.3f);
  auto w = RandomVector(s.cols, 2, 0.2f, 1.0f);
  const auto dy = RandomVector(s.rows * s.cols, 4);
  WBuffer x_(backend(), x), w_(backend(), w), y(backend(), x.size()), dy_(backend(), dy),
      dx(backend(), x.size());
  Buffer rstd(backend(), s.rows), dw(backend(), s.cols);
  ASSERT_OK(backend().RmsNormForward(s, x_.get(), w_.get(), y.get(), rstd.get()));
  ASSERT_OK(backend().RmsNormBackward(s, x_.get(), w_.get(), rstd.get(), dy_.get(), dx.get(),
                                      dw.get(), false));
  auto loss = [&]() {
    x_.Upload(x);
    w_.Upload(w);
    CAIRN_CHECK(backend().RmsNormForward(s, x_.get(), w_.get(), y.get(), rstd.get()).ok());
    return WeightedSum(dy, y.ToHost());
  };
  EXPECT_LT(RelativeError(dx.ToHost(), NumericalGradient(x, loss, kStep)), fd_tolerance);
  EXPECT_LT(RelativeError(dw.ToHost(), NumericalGradient(w, loss, kStep)), fd_tolerance);
}

// ==== GELU and SwiGLU ============================================================================

TEST_P(BackendOpsTest, GeluMatchesReference) {
  const int64_t n = 1001;
  const auto x = W(RandomVector(n, 1, 2.5f)), dy = W(RandomVector(n, 2));
  WBuffer x_(backend(), x), y(backend(), n), dy_(backend(), dy), dx(backend(), n);
  ASSERT_OK(backend().GeluForward(n, x_.get(), y.get()));
  ASSERT_OK(backend().GeluBackward(n, x_.get(), dy_.get(), dx.get()));
  std::vector<double> ey(n), edx(n);
  reference::GeluForward<double>(n, D(x).data(), ey.data());
  reference::GeluBackward<double>(n, D(x).data(), D(dy).data(), edx.data());
  EXPECT_LT(RelativeError(y.ToHost(), ey), tolerances().forward);
  EXPECT_LT(RelativeError(dx.ToHost(), edx), tolerances().backward);
  // In place (dinp aliases dout, out aliases inp).
  ASSERT_OK(backend().GeluBackward(n, x_.get(), dy_.get(), dy_.get()));
  EXPECT_LT(RelativeError(dy_.ToHost(), edx), tolerances().backward);
  ASSERT_OK(backend().GeluForward(n, x_.get(), x_.get()));
  EXPECT_LT(RelativeError(x_.ToHost(), ey), tolerances().forward);
}

TEST_P(BackendOpsTest, GeluMatchesFiniteDifferences) {
  CAIRN_SKIP_WITHOUT_FINITE_DIFFERENCES();
  const int64_t n = 16;
  auto x = RandomVector(n, 1, 2.0f);
  const auto dy = RandomVector(n, 2);
  WBuffer x_(backend(), x), y(backend(), n), dy_(backend(), dy), dx(backend(), n);
  ASSERT_OK(backend().GeluBackward(n, x_.get(), dy_.get(), dx.get()));
  auto loss = [&]() {
    x_.Upload(x);
    CAIRN_CHECK(backend().GeluForward(n, x_.get(), y.get()).ok());
    return WeightedSum(dy, y.ToHost());
  };
  EXPECT_LT(RelativeError(dx.ToHost(), NumericalGradient(x, loss, kStep)), fd_tolerance);
}

TEST_P(BackendOpsTest, SwiGluMatchesReference) {
  const int64_t n = 999;
  const auto g = W(RandomVector(n, 1, 2.5f)), u = W(RandomVector(n, 2)), dy = W(RandomVector(n, 3));
  WBuffer g_(backend(), g), u_(backend(), u), y(backend(), n), dy_(backend(), dy), dg(backend(), n),
      du(backend(), n);
  ASSERT_OK(backend().SwiGluForward(n, g_.get(), u_.get(), y.get()));
  ASSERT_OK(backend().SwiGluBackward(n, g_.get(), u_.get(), dy_.get(), dg.get(), du.get()));
  std::vector<double> ey(n), edg(n), edu(n);
  reference::SwiGluForward<double>(n, D(g).data(), D(u).data(), ey.data());
  reference::SwiGluBackward<double>(n, D(g).data(), D(u).data(), D(dy).data(), edg.data(),
                                    edu.data());
  EXPECT_LT(RelativeError(y.ToHost(), ey), tolerances().forward);
  EXPECT_LT(RelativeError(dg.ToHost(), edg), tolerances().backward);
  EXPECT_LT(RelativeError(du.ToHost(), edu), tolerances().backward);
}

TEST_P(BackendOpsTest, SwiGluMatchesFiniteDifferences) {
  CAIRN_SKIP_WITHOUT_FINITE_DIFFERENCES();
  const int64_t n = 16;
  auto g = RandomVector(n, 1, 2.0f), u = RandomVector(n, 2);
  const auto dy = RandomVector(n, 3);
  WBuffer g_(backend(), g), u_(backend(), u), y(backend(), n), dy_(backend(), dy), dg(backend(), n),
      du(backend(), n);
  ASSERT_OK(backend().SwiGluBackward(n, g_.get(), u_.get(), dy_.get(), dg.get(), du.get()));
  auto loss = [&]() {
    g_.Upload(g);
    u_.Upload(u);
    CAIRN_CHECK(backend().SwiGluForward(n, g_.get(), u_.get(), y.get()).ok());
    return WeightedSum(dy, y.ToHost());
  };
  EXPECT_LT(RelativeError(dg.ToHost(), NumericalGradient(g, loss, kStep)), fd_tolerance);
  EXPECT_LT(RelativeError(du.ToHost(), NumericalGradient(u, loss, kStep)), fd_tolerance);
}

// ==== RoPE =======================================================================================

int64_t RopeElements(const RopeShape& s) {
  const int64_t stride = s.token_stride != 0 ? s.token_stride : s.num_heads * s.head_dim;
  return s.batch * s.seq * stride;
}

TEST_P(BackendOpsTest, RopeMatchesReference) {
  RopeShape contiguous{2, 7, 3, 10, 0, 5, 10000.0f};
  RopeShape strided = contiguous;
  strided.token_stride = 3 * 10 + 6;  // inside a fused buffer: 6 other elements per token
  RopeShape long_positions{1, 3, 2, 64, 0, 8189, 500000.0f};  // Llama-3 base, far positions
  RopeShape llama{2, 5, 4, 128, 0, 3, 500000.0f};             // head dim 128 (vector loads)
  for (const RopeShape& s : {contiguous, strided, long_positions, llama}) {
    SCOPED_TRACE(
        absl::StrCat("D=", s.head_dim, " stride=", s.token_stride, " offset=", s.position_offset));
    const int64_t size = RopeElements(s);
    const auto x = W(RandomVector(size, 1)), dy = W(RandomVector(size, 2));
    const auto y0 = W(RandomVector(size, 3));  // elements outside the heads must stay as they were
    WBuffer x_(backend(), x), y(backend(), y0), dy_(backend(), dy), dx(backend(), y0);
    ASSERT_OK(backend().RopeForward(s, x_.get(), y.get()));
    ASSERT_OK(backend().RopeBackward(s, dy_.get(), dx.get()));
    auto ey = D(y0), edx = D(y0);
    reference::RopeForward<double>(s, D(x).data(), ey.data());
    reference::RopeBackward<double>(s, D(dy).data(), edx.data());
    EXPECT_LT(RelativeError(y.ToHost(), ey), tolerances().forward);
    EXPECT_LT(RelativeError(dx.ToHost(), edx), tolerances().backward);
    // In place.
    ASSERT_OK(backend().RopeForward(s, x_.get(), x_.get()));
    auto in_place = D(x);
    reference::RopeForward<double>(s, D(x).data(), in_place.data());
    EXPECT_LT(RelativeError(x_.ToHost(), in_place), tolerances().forward);
    ASSERT_OK(backend().RopeBackward(s, dy_.get(), dy_.get()));
    auto in_place_dx = D(dy);
    reference::RopeBackward<double>(s, D(dy).data(), in_place_dx.data());
    EXPECT_LT(RelativeError(dy_.ToHost(), in_place_dx), tolerances().backward);
  }
}

TEST_P(BackendOpsTest, RopeMatchesFiniteDifferences) {
  CAIRN_SKIP_WITHOUT_FINITE_DIFFERENCES();
  const RopeShape s{2, 3, 2, 4, 0, 2, 10000.0f};
  const int64_t size = RopeElements(s);
  auto x = RandomVector(size, 1);
  const auto dy = RandomVector(size, 2);
  WBuffer x_(backend(), x), y(backend(), size), dy_(backend(), dy), dx(backend(), size);
  ASSERT_OK(backend().RopeBackward(s, dy_.get(), dx.get()));
  auto loss = [&]() {
    x_.Upload(x);
    CAIRN_CHECK(backend().RopeForward(s, x_.get(), y.get()).ok());
    return WeightedSum(dy, y.ToHost());
  };
  EXPECT_LT(RelativeError(dx.ToHost(), NumericalGradient(x, loss, kStep)), fd_tolerance);
}

// A sequence shard [4, 9) of a 12-token sequence, with position_offset 4, equals that slice of the
// full result (Ulysses and context-parallel layers rotate their shard before exchanging it).
TEST_P(BackendOpsTest, RopeOnSequenceShardEqualsSliceOfFull) {
  const int64_t B = 2, T = 12, H = 2, Dh = 8, begin = 4, end = 9;
  const RopeShape full{B, T, H, Dh, 0, 0, 10000.0f};
  const auto x = W(RandomVector(B * T * H * Dh, 1));
  WBuffer x_(backend(), x), y(backend(), x.size());
  ASSERT_OK(backend().RopeForward(full, x_.get(), y.get()));
  const auto y_full = y.ToHost();

  RopeShape shard = full;
  shard.seq = end - begin;
  shard.position_offset = begin;
  std::vector<float> x_shard, expected;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t from = (b * T + begin) * H * Dh, to = (b * T + end) * H * Dh;
    x_shard.insert(x_shard.end(), x.begin() + from, x.begin() + to);
    expected.insert(expected.end(), y_full.begin() + from, y_full.begin() + to);
  }
  WBuffer xs(backend(), x_shard), ys(backend(), x_shard.size());
  ASSERT_OK(backend().RopeForward(shard, xs.get(), ys.get()));
  EXPECT_LE(RelativeError(ys.ToHost(), expected), std::max(1e-7, tolerances().identity));
}

// ==== Attention ==================================================================================

struct AttentionCase {
  int64_t batch, seq, heads, kv_heads, head_dim, head_begin, head_end;
};

AttentionShape MakeShape(const AttentionCase& c) {
  return AttentionShape{c.batch,      c.seq,      c.heads, c.kv_heads, c.head_dim,
                        c.head_begin, c.head_end, 0,       0};
}

std::string Describe(const AttentionCase& c) {
  return absl::StrCat("B=", c.batch, " T=", c.seq, " H=", c.heads, " KV=", c.kv_heads,
                      " D=", c.head_dim, " heads=[", c.head_begin, ",", c.head_end, ")");
}

TEST_P(BackendOpsTest, AttentionMatchesReference) {
  for (const AttentionCase& c : {
           AttentionCase{2, 9, 4, 2, 8, 0, 4},     // GQA 2:1
           AttentionCase{1, 13, 3, 3, 5, 0, 3},    // multi-head, odd head_dim
           AttentionCase{2, 6, 4, 1, 6, 0, 4},     // multi-query
           AttentionCase{2, 7, 4, 2, 4, 1, 3},     // local heads [1, 3): kv heads [0, 2)
           AttentionCase{1, 1, 2, 1, 3, 0, 2},     // one token
           AttentionCase{1, 150, 2, 1, 8, 0, 2},   // long enough for several query blocks
           AttentionCase{1, 70, 4, 2, 64, 1, 4},   // head dim 64: tensor-core kernels on CUDA
           AttentionCase{2, 33, 2, 1, 128, 0, 2},  // head dim 128, a partial tile
       }) {
    SCOPED_TRACE(Describe(c));
    const AttentionShape s = MakeShape(c);
    const int64_t tokens = s.batch * s.seq;
    const int64_t q_size = tokens * s.local_heads() * s.head_dim;
    const int64_t kv_size = tokens * s.local_kv_heads() * s.head_dim;
    const auto q = W(RandomVector(q_size, 1)), k = W(RandomVector(kv_size, 2)),
               v = W(RandomVector(kv_size, 3)), dout = W(RandomVector(q_size, 4));
    WBuffer q_(backend(), q), k_(backend(), k), v_(backend(), v), out(backend(), q_size),
        dout_(backend(), dout);
    Buffer lse(backend(), s.batch * s.local_heads() * s.seq);
    // Gradient buffers start with garbage: the op overwrites them.
    WBuffer dq(backend(), RandomVector(q_size, 5)), dk(backend(), RandomVector(kv_size, 6)),
        dv(backend(), RandomVector(kv_size, 7));
    ASSERT_OK(backend().AttentionForward(s, q_.get(), k_.get(), v_.get(), out.get(), lse.get()));
    ASSERT_OK(backend().AttentionBackward(s, q_.get(), k_.get(), v_.get(), out.get(), lse.get(),
                                          dout_.get(), dq.get(), dk.get(), dv.get()));
    std::vector<double> eout(q_size), e_lse(lse.size()), edq(q_size), edk(kv_size), edv(kv_size);
    reference::AttentionForward<double>(s, D(q).data(), D(k).data(), D(v).data(), eout.data(),
                                        e_lse.data());
    reference::AttentionBackward<double>(s, D(q).data(), D(k).data(), D(v).data(), D(dout).data(),
                                         edq.data(), edk.data(), edv.data());
    EXPECT_LT(RelativeError(out.ToHost(), eout), tolerances().attention_forward);
    EXPECT_LT(RelativeError(lse.ToHost(), e_lse), tolerances().attention_forward);
    EXPECT_LT(RelativeError(dq.ToHost(), edq), tolerances().attention_backward);
    EXPECT_LT(RelativeError(dk.ToHost(), edk), tolerances().attention_backward);
    EXPECT_LT(RelativeError(dv.ToHost(), edv), tolerances().attention_backward);
  }
}

TEST_P(BackendOpsTest, AttentionMatchesFiniteDifferences) {
  CAIRN_SKIP_WITHOUT_FINITE_DIFFERENCES();
  const AttentionShape s = AttentionShape::AllHeads(2, 5, 2, 1, 4);
  const int64_t q_size = 2 * 5 * 2 * 4, kv_size = 2 * 5 * 1 * 4;
  auto q = RandomVector(q_size, 1), k = RandomVector(kv_size, 2), v = RandomVector(kv_size, 3);
  const auto dout = RandomVector(q_size, 4);
  WBuffer q_(backend(), q), k_(backend(), k), v_(backend(), v), out(backend(), q_size),
      dout_(backend(), dout);
  Buffer lse(backend(), 2 * 2 * 5);
  WBuffer dq(backend(), q_size), dk(backend(), kv_size), dv(backend(), kv_size);
  ASSERT_OK(backend().AttentionForward(s, q_.get(), k_.get(), v_.get(), out.get(), lse.get()));
  ASSERT_OK(backend().AttentionBackward(s, q_.get(), k_.get(), v_.get(), out.get(), lse.get(),
                                        dout_.get(), dq.get(), dk.get(), dv.get()));
  auto loss = [&]() {
    q_.Upload(q);
    k_.Upload(k);
    v_.Upload(v);
    CAIRN_CHECK(
        backend().AttentionForward(s, q_.get(), k_.get(), v_.get(), out.get(), lse.get()).ok());
    return WeightedSum(dout, out.ToHost());
  };
  EXPECT_LT(RelativeError(dq.ToHost(), NumericalGradient(q, loss, kStep)), fd_tolerance);
  EXPECT_LT(RelativeError(dk.ToHost(), NumericalGradient(k, loss, kStep)), fd_tolerance);
  EXPECT_LT(RelativeError(dv.ToHost(), NumericalGradient(v, loss, kStep)), fd_tolerance);
}

// Tensor parallelism splits the heads: running each rank's head range on its slice of q (and the kv
// heads it reads) must give the slices of the full attention, forward and backward. With fewer kv
// heads than ranks, a kv head is replicated and its gradient is the sum of the ranks' gradients.
TEST_P(BackendOpsTest, AttentionOverLocalHeadRangesConcatenatesToFull) {
  for (int64_t Dh : {int64_t{4}, int64_t{64}}) {
    for (int64_t kv_heads : {int64_t{2}, int64_t{1}}) {
      SCOPED_TRACE(absl::StrCat("head_dim=", Dh, " kv_heads=", kv_heads));
      const int64_t B = 2, T = 6, H = 4, ranks = 2, tokens = B * T;
      const AttentionShape full = AttentionShape::AllHeads(B, T, H, kv_heads, Dh);
      const auto q = W(RandomVector(tokens * H * Dh, 1)),
                 k = W(RandomVector(tokens * kv_heads * Dh, 2)),
                 v = W(RandomVector(tokens * kv_heads * Dh, 3)),
                 dout = W(RandomVector(q.size(), 4));
      WBuffer q_(backend(), q), k_(backend(), k), v_(backend(), v), out(backend(), q.size()),
          dout_(backend(), dout);
      Buffer lse(backend(), B * H * T);
      WBuffer dq(backend(), q.size()), dk(backend(), k.size()), dv(backend(), v.size());
      ASSERT_OK(
          backend().AttentionForward(full, q_.get(), k_.get(), v_.get(), out.get(), lse.get()));
      ASSERT_OK(backend().AttentionBackward(full, q_.get(), k_.get(), v_.get(), out.get(),
                                            lse.get(), dout_.get(), dq.get(), dk.get(), dv.get()));
      const auto full_out = out.ToHost(), full_lse = lse.ToHost(), full_dq = dq.ToHost(),
                 full_dk = dk.ToHost(), full_dv = dv.ToHost();
      const double exact = std::max(1e-6, tolerances().identity);

      std::vector<float> sum_dk(k.size(), 0.0f), sum_dv(v.size(), 0.0f);
      for (int64_t r = 0; r < ranks; ++r) {
        AttentionShape local = full;
        local.head_begin = r * H / ranks;
        local.head_end = (r + 1) * H / ranks;
        const int64_t hb = local.head_begin, he = local.head_end;
        const int64_t kb = local.kv_begin(), ke = local.kv_end();
        const auto lq = SliceHeads(q, tokens, H, Dh, hb, he);
        const auto lk = SliceHeads(k, tokens, kv_heads, Dh, kb, ke);
        const auto lv = SliceHeads(v, tokens, kv_heads, Dh, kb, ke);
        const auto ldout = SliceHeads(dout, tokens, H, Dh, hb, he);
        WBuffer q2(backend(), lq), k2(backend(), lk), v2(backend(), lv), out2(backend(), lq.size()),
            dout2(backend(), ldout);
        Buffer lse2(backend(), B * (he - hb) * T);
        WBuffer dq2(backend(), lq.size()), dk2(backend(), lk.size()), dv2(backend(), lv.size());
        ASSERT_OK(backend().AttentionForward(local, q2.get(), k2.get(), v2.get(), out2.get(),
                                             lse2.get()));
        ASSERT_OK(backend().AttentionBackward(local, q2.get(), k2.get(), v2.get(), out2.get(),
                                              lse2.get(), dout2.get(), dq2.get(), dk2.get(),
                                              dv2.get()));
        EXPECT_LE(RelativeError(out2.ToHost(), SliceHeads(full_out, tokens, H, Dh, hb, he)), exact);
        // lse is [B, H, T]: the rank's heads are a contiguous block per batch.
        EXPECT_LE(RelativeError(lse2.ToHost(), SliceHeads(full_lse, B, H, T, hb, he)), exact);
        EXPECT_LE(RelativeError(dq2.ToHost(), SliceHeads(full_dq, tokens, H, Dh, hb, he)), exact);
        const auto rank_dk = dk2.ToHost(), rank_dv = dv2.ToHost();
        for (int64_t t = 0; t < tokens; ++t) {
          for (int64_t g = kb; g < ke; ++g) {
            for (int64_t d = 0; d < Dh; ++d) {
              const int64_t global = (t * kv_heads + g) * Dh + d;
              const int64_t mine = (t * (ke - kb) + (g - kb)) * Dh + d;
              sum_dk[global] += rank_dk[mine];
              sum_dv[global] += rank_dv[mine];
            }
          }
        }
      }
      EXPECT_LE(RelativeError(sum_dk, full_dk), exact);
      EXPECT_LE(RelativeError(sum_dv, full_dv), exact);
    }
  }
}

// q, k and v inside one fused [B, T, (H + 2 KV) D] buffer (one QKV matmul) give the same results as
// separate tensors, and the gradients land in the matching parts of a fused gradient buffer (whose
// other elements stay untouched).
TEST_P(BackendOpsTest, AttentionOnFusedQkvBufferEqualsSeparateTensors) {
  for (int64_t Dh : {int64_t{4}, int64_t{64}}) {
    SCOPED_TRACE(absl::StrCat("head_dim=", Dh));
    const int64_t B = 2, T = 5, H = 4, KV = 2, tokens = B * T;
    const int64_t width = (H + 2 * KV) * Dh;
    const auto qkv = W(RandomVector(tokens * width, 1)), dout = W(RandomVector(tokens * H * Dh, 2));
    const auto q = SliceColumns(qkv, tokens, width, 0, H * Dh);
    const auto k = SliceColumns(qkv, tokens, width, H * Dh, (H + KV) * Dh);
    const auto v = SliceColumns(qkv, tokens, width, (H + KV) * Dh, width);
    const double exact = std::max(1e-7, tolerances().identity);

    const AttentionShape separate = AttentionShape::AllHeads(B, T, H, KV, Dh);
    WBuffer q_(backend(), q), k_(backend(), k), v_(backend(), v), out(backend(), dout.size()),
        dout_(backend(), dout);
    Buffer lse(backend(), B * H * T);
    WBuffer dq(backend(), q.size()), dk(backend(), k.size()), dv(backend(), v.size());
    ASSERT_OK(
        backend().AttentionForward(separate, q_.get(), k_.get(), v_.get(), out.get(), lse.get()));
    ASSERT_OK(backend().AttentionBackward(separate, q_.get(), k_.get(), v_.get(), out.get(),
                                          lse.get(), dout_.get(), dq.get(), dk.get(), dv.get()));

    AttentionShape fused = separate;
    fused.q_stride = width;
    fused.kv_stride = width;
    WBuffer qkv_(backend(), qkv), out2(backend(), dout.size()), dqkv(backend(), qkv.size());
    Buffer lse2(backend(), B * H * T);
    ASSERT_OK(backend().AttentionForward(fused, qkv_.get(), qkv_.at(H * Dh), qkv_.at((H + KV) * Dh),
                                         out2.get(), lse2.get()));
    ASSERT_OK(backend().AttentionBackward(
        fused, qkv_.get(), qkv_.at(H * Dh), qkv_.at((H + KV) * Dh), out2.get(), lse2.get(),
        dout_.get(), dqkv.get(), dqkv.at(H * Dh), dqkv.at((H + KV) * Dh)));
    EXPECT_LE(RelativeError(out2.ToHost(), out.ToHost()), exact);
    EXPECT_LE(RelativeError(lse2.ToHost(), lse.ToHost()), exact);
    const auto grads = dqkv.ToHost();
    EXPECT_LE(RelativeError(SliceColumns(grads, tokens, width, 0, H * Dh), dq.ToHost()), exact);
    EXPECT_LE(RelativeError(SliceColumns(grads, tokens, width, H * Dh, (H + KV) * Dh), dk.ToHost()),
              exact);
    EXPECT_LE(RelativeError(SliceColumns(grads, tokens, width, (H + KV) * Dh, width), dv.ToHost()),
              exact);
  }
}

// ==== Embedding ==================================================================================

TEST_P(BackendOpsTest, EmbeddingMatchesReference) {
  const EmbeddingShape s{3, 7, 11, 0, 50, 3, 16};
  const int64_t rows = s.vocab_end - s.vocab_begin, tokens = s.batch * s.seq;
  const auto ids = RandomInts(tokens, 1, 0, 50);
  const auto wte = W(RandomVector(rows * s.channels, 2)), wpe = W(RandomVector(16 * s.channels, 3));
  const auto dout = W(RandomVector(tokens * s.channels, 4));
  const auto dwte0 = RandomVector(wte.size(), 5), dwpe0 = RandomVector(wpe.size(), 6);
  for (bool with_positions : {false, true}) {
    SCOPED_TRACE(absl::StrCat("positions=", with_positions));
    IntBuffer ids_(backend(), ids);
    WBuffer wte_(backend(), wte), wpe_(backend(), wpe), out(backend(), tokens * s.channels),
        dout_(backend(), dout);
    Buffer dwte(backend(), dwte0), dwpe(backend(), dwpe0);
    void* wpe_ptr = with_positions ? wpe_.get() : nullptr;
    float* dwpe_ptr = with_positions ? dwpe.get() : nullptr;
    ASSERT_OK(backend().EmbeddingForward(s, ids_.get(), wte_.get(), wpe_ptr, out.get()));
    ASSERT_OK(backend().EmbeddingBackward(s, ids_.get(), dout_.get(), dwte.get(), dwpe_ptr));
    std::vector<double> eout(out.size());
    auto edwte = D(dwte0), edwpe = D(dwpe0);
    const auto wpe_d = D(wpe);
    reference::EmbeddingForward<double>(s, ids.data(), D(wte).data(),
                                        with_positions ? wpe_d.data() : nullptr, eout.data());
    reference::EmbeddingBackward<double>(s, ids.data(), D(dout).data(), edwte.data(),
                                         with_positions ? edwpe.data() : nullptr);
    EXPECT_LT(RelativeError(out.ToHost(), eout), tolerances().forward);
    EXPECT_LT(RelativeError(dwte.ToHost(), edwte), tolerances().backward);
    EXPECT_LT(RelativeError(dwpe.ToHost(), edwpe), tolerances().backward);
  }
}

TEST_P(BackendOpsTest, EmbeddingMatchesFiniteDifferences) {
  CAIRN_SKIP_WITHOUT_FINITE_DIFFERENCES();
  const EmbeddingShape s{2, 3, 4, 0, 6, 1, 5};
  const auto ids = std::vector<int32_t>{0, 5, 2, 2, 3, 5};  // repeats: gradients must add up
  auto wte = RandomVector(6 * 4, 1), wpe = RandomVector(5 * 4, 2);
  const auto dout = RandomVector(2 * 3 * 4, 3);
  IntBuffer ids_(backend(), ids);
  WBuffer wte_(backend(), wte), wpe_(backend(), wpe), out(backend(), dout.size()),
      dout_(backend(), dout);
  Buffer dwte(backend(), wte.size()), dwpe(backend(), wpe.size());
  ASSERT_OK(backend().EmbeddingBackward(s, ids_.get(), dout_.get(), dwte.get(), dwpe.get()));
  auto loss = [&]() {
    wte_.Upload(wte);
    wpe_.Upload(wpe);
    CAIRN_CHECK(backend().EmbeddingForward(s, ids_.get(), wte_.get(), wpe_.get(), out.get()).ok());
    return WeightedSum(dout, out.ToHost());
  };
  EXPECT_LT(RelativeError(dwte.ToHost(), NumericalGradient(wte, loss, kStep)), fd_tolerance);
  EXPECT_LT(RelativeError(dwpe.ToHost(), NumericalGradient(wpe, loss, kStep)), fd_tolerance);
}

// Vocab-parallel embedding over [0, 23) and [23, 50): the partial outputs (positions added on one
// rank only) sum to the full output, and each rank's table gradient is its rows of the full
// gradient. A sequence shard with position_offset uses the right position rows.
TEST_P(BackendOpsTest, EmbeddingOverVocabRangesSumsToFull) {
  const int64_t B = 2, T = 6, C = 5, V = 50, split = 23;
  const EmbeddingShape full{B, T, C, 0, V, 2, 10};
  const auto ids = RandomInts(B * T, 1, 0, V);
  const auto wte = W(RandomVector(V * C, 2)), wpe = W(RandomVector(10 * C, 3));
  const auto dout = W(RandomVector(B * T * C, 4));
  const double exact = std::max(1e-7, tolerances().identity);
  IntBuffer ids_(backend(), ids);
  WBuffer wte_(backend(), wte), wpe_(backend(), wpe), out(backend(), B * T * C),
      dout_(backend(), dout);
  Buffer dwte(backend(), wte.size()), dwpe(backend(), wpe.size());
  ASSERT_OK(backend().EmbeddingForward(full, ids_.get(), wte_.get(), wpe_.get(), out.get()));
  ASSERT_OK(backend().EmbeddingBackward(full, ids_.get(), dout_.get(), dwte.get(), dwpe.get()));
  const auto full_out = out.ToHost(), full_dwte = dwte.ToHost(), full_dwpe = dwpe.ToHost();

  std::vector<float> sum(full_out.size(), 0.0f);
  for (int r = 0; r < 2; ++r) {
    EmbeddingShape local = full;
    local.vocab_begin = r == 0 ? 0 : split;
    local.vocab_end = r == 0 ? split : V;
    const std::vector<float> rows(wte.begin() + local.vocab_begin * C,
                                  wte.begin() + local.vocab_end * C);
    WBuffer rows_(backend(), rows), part(backend(), sum.size());
    Buffer drows(backend(), rows.size()), dwpe_r(backend(), wpe.size());
    void* positions = r == 0 ? wpe_.get() : nullptr;
    ASSERT_OK(backend().EmbeddingForward(local, ids_.get(), rows_.get(), positions, part.get()));
    ASSERT_OK(backend().EmbeddingBackward(local, ids_.get(), dout_.get(), drows.get(),
                                          r == 0 ? dwpe_r.get() : nullptr));
    const auto p = part.ToHost();
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += p[i];
    const std::vector<float> expected_rows(full_dwte.begin() + local.vocab_begin * C,
                                           full_dwte.begin() + local.vocab_end * C);
    EXPECT_LE(RelativeError(drows.ToHost(), expected_rows), exact);
    if (r == 0) {
      EXPECT_LE(RelativeError(dwpe_r.ToHost(), full_dwpe), exact);
    }
  }
  EXPECT_LE(RelativeError(sum, full_out), exact);

  // Sequence shard [2, 5) of the full batch: positions 2 + 2 .. 2 + 4.
  EmbeddingShape shard = full;
  shard.seq = 3;
  shard.position_offset = full.position_offset + 2;
  std::vector<int32_t> shard_ids;
  std::vector<float> expected;
  for (int64_t b = 0; b < B; ++b) {
    shard_ids.insert(shard_ids.end(), ids.begin() + b * T + 2, ids.begin() + b * T + 5);
    expected.insert(expected.end(), full_out.begin() + (b * T + 2) * C,
                    full_out.begin() + (b * T + 5) * C);
  }
  IntBuffer sid(backend(), shard_ids);
  WBuffer sout(backend(), expected.size());
  ASSERT_OK(backend().EmbeddingForward(shard, sid.get(), wte_.get(), wpe_.get(), sout.get()));
  EXPECT_LE(RelativeError(sout.ToHost(), expected), exact);
}

// ==== Cross-entropy ==============================================================================

struct CrossEntropyResult {
  std::vector<float> losses;
  std::vector<float> dlogits;
};

// The three passes on one rank holding the whole vocabulary (no collectives needed). Logits and
// statistics are fp32; the logits gradient is in the working dtype (in place: over the logits).
CrossEntropyResult RunCrossEntropy(ComputeBackend& be, const CrossEntropyShape& s,
                                   const std::vector<float>& logits,
                                   const std::vector<int32_t>& targets, float loss_scale,
                                   bool in_place) {
  const int64_t N = s.tokens;
  Buffer logits_(be, logits), max(be, N), stats(be, 2 * N), losses(be, N);
  WBuffer dlogits(be, static_cast<int64_t>(logits.size()));
  IntBuffer targets_(be, targets);
  float* sum_exp = stats.get();
  float* target_logit = stats.get() + N;  // adjacent: one all-reduce when split
  void* grad = in_place ? static_cast<void*>(logits_.get()) : dlogits.get();
  CAIRN_CHECK(be.CrossEntropyMax(s, logits_.get(), max.get()).ok());
  CAIRN_CHECK(
      be.CrossEntropySums(s, logits_.get(), targets_.get(), max.get(), sum_exp, target_logit).ok());
  CAIRN_CHECK(be.CrossEntropyLossAndGrad(s, logits_.get(), targets_.get(), max.get(), sum_exp,
                                         target_logit, loss_scale, losses.get(), grad)
                  .ok());
  return {losses.ToHost(),
          in_place ? ReadWorking(be, logits_.get(), N * s.local_vocab()) : dlogits.ToHost()};
}

TEST_P(BackendOpsTest, CrossEntropyMatchesReference) {
  // 13 tokens x 37 entries (odd rows: unaligned starts), and 70 x 1037 (several passes over a row
  // per thread block; the in-place gradient overlaps other rows' logits when narrower than them).
  for (const auto& [N, V] : {std::pair<int64_t, int64_t>{13, 37}, {70, 1037}}) {
    SCOPED_TRACE(absl::StrCat("N=", N, " V=", V));
    const CrossEntropyShape s{N, V, 0, V};
    const auto logits = RandomVector(N * V, 1, 3.0f);
    auto targets = RandomInts(N, 2, 0, static_cast<int32_t>(V));
    targets[4] = -1;  // ignored (padding)
    targets[9] = -1;
    const float scale = 1.0f / 11;
    std::vector<double> elosses(N), edlogits(N * V);
    reference::CrossEntropy<double>(s, D(logits).data(), targets.data(), scale, elosses.data(),
                                    edlogits.data());
    for (bool in_place : {false, true}) {
      SCOPED_TRACE(absl::StrCat("in_place=", in_place));
      const auto got = RunCrossEntropy(backend(), s, logits, targets, scale, in_place);
      EXPECT_LT(RelativeError(got.losses, elosses), tolerances().f32);
      EXPECT_LT(RelativeError(got.dlogits, edlogits), tolerances().backward);
      EXPECT_EQ(got.losses[4], 0.0f);
    }
  }
}

TEST_P(BackendOpsTest, CrossEntropyGradientMatchesFiniteDifferences) {
  CAIRN_SKIP_WITHOUT_FINITE_DIFFERENCES();
  const int64_t N = 4, V = 7;
  const CrossEntropyShape s{N, V, 0, V};
  auto logits = RandomVector(N * V, 1, 2.0f);
  const std::vector<int32_t> targets{3, 0, 6, 3};
  const float scale = 0.25f;
  const auto analytic = RunCrossEntropy(backend(), s, logits, targets, scale, false).dlogits;
  auto loss = [&]() {
    const auto losses = RunCrossEntropy(backend(), s, logits, targets, scale, false).losses;
    double total = 0.0;
    for (float l : losses) total += scale * static_cast<double>(l);
    return total;
  };
  EXPECT_LT(RelativeError(analytic, NumericalGradient(logits, loss, kStep)), fd_tolerance);
}

// Vocab-parallel: two ranks hold logits columns [0, 17) and [17, 37). Each runs the passes with the
// "all-reduces" (MAX, then SUM of sum_exp and target_logit) done here on the host; every rank gets
// the unsplit losses, and the ranks' logits gradients concatenate to the unsplit gradient.
TEST_P(BackendOpsTest, CrossEntropyOverVocabRangesReproducesUnsplit) {
  const int64_t N = 9, V = 37, split = 17;
  const auto logits = RandomVector(N * V, 1, 3.0f);
  auto targets = RandomInts(N, 2, 0, V);
  targets[0] = 3;   // in rank 0's range
  targets[1] = 30;  // in rank 1's range
  targets[2] = -1;  // ignored
  const float scale = 1.0f / N;
  const CrossEntropyShape whole{N, V, 0, V};
  const auto unsplit = RunCrossEntropy(backend(), whole, logits, targets, scale, false);

  const int64_t begins[2] = {0, split}, ends[2] = {split, V};
  std::vector<std::unique_ptr<Buffer>> local_logits, maxes, stats;
  IntBuffer targets_(backend(), targets);
  std::vector<CrossEntropyShape> shapes;
  std::vector<float> global_max(N, -std::numeric_limits<float>::infinity());
  for (int r = 0; r < 2; ++r) {
    shapes.push_back(CrossEntropyShape{N, V, begins[r], ends[r]});
    local_logits.push_back(
        std::make_unique<Buffer>(backend(), SliceColumns(logits, N, V, begins[r], ends[r])));
    maxes.push_back(std::make_unique<Buffer>(backend(), N));
    stats.push_back(std::make_unique<Buffer>(backend(), 2 * N));
    ASSERT_OK(backend().CrossEntropyMax(shapes[r], local_logits[r]->get(), maxes[r]->get()));
    const auto m = maxes[r]->ToHost();
    for (int64_t i = 0; i < N; ++i) global_max[i] = std::max(global_max[i], m[i]);  // MAX
  }
  std::vector<float> global_stats(2 * N, 0.0f);
  for (int r = 0; r < 2; ++r) {
    maxes[r]->Upload(global_max);
    ASSERT_OK(backend().CrossEntropySums(shapes[r], local_logits[r]->get(), targets_.get(),
                                         maxes[r]->get(), stats[r]->get(), stats[r]->get() + N));
    const auto st = stats[r]->ToHost();
    for (int64_t i = 0; i < 2 * N; ++i) global_stats[i] += st[i];  // SUM
  }
  std::vector<float> dlogits_concat(N * V);
  for (int r = 0; r < 2; ++r) {
    stats[r]->Upload(global_stats);
    const int64_t local_v = ends[r] - begins[r];
    Buffer losses(backend(), N);
    WBuffer dlogits(backend(), N * local_v);
    ASSERT_OK(backend().CrossEntropyLossAndGrad(
        shapes[r], local_logits[r]->get(), targets_.get(), maxes[r]->get(), stats[r]->get(),
        stats[r]->get() + N, scale, losses.get(), dlogits.get()));
    EXPECT_LT(RelativeError(losses.ToHost(), unsplit.losses), tolerances().f32);
    const auto d = dlogits.ToHost();
    for (int64_t i = 0; i < N; ++i) {
      std::copy(d.begin() + i * local_v, d.begin() + (i + 1) * local_v,
                dlogits_concat.begin() + i * V + begins[r]);
    }
  }
  EXPECT_LT(RelativeError(dlogits_concat, unsplit.dlogits), tolerances().backward);
}

// ==== Residual, AdamW, utilities =================================================================

TEST_P(BackendOpsTest, ResidualForwardAndBackward) {
  const int64_t n = 101;
  const auto a = W(RandomVector(n, 1)), b = W(RandomVector(n, 2)), dout = W(RandomVector(n, 3));
  const auto da0 = W(RandomVector(n, 4));
  WBuffer a_(backend(), a), b_(backend(), b), out(backend(), n), dout_(backend(), dout),
      da(backend(), da0), db(backend(), n);
  ASSERT_OK(backend().ResidualForward(n, a_.get(), b_.get(), out.get()));
  std::vector<double> expected(n);
  reference::ResidualForward<double>(n, D(a).data(), D(b).data(), expected.data());
  EXPECT_LT(RelativeError(out.ToHost(), expected), tolerances().forward);
  ASSERT_OK(backend().ResidualForward(n, a_.get(), b_.get(), a_.get()));  // in place: a += b
  EXPECT_LT(RelativeError(a_.ToHost(), expected), tolerances().forward);

  ASSERT_OK(backend().ResidualBackward(n, dout_.get(), da.get(), db.get(), /*accumulate=*/true));
  std::vector<double> accumulated(n);
  reference::ResidualForward<double>(n, D(da0).data(), D(dout).data(), accumulated.data());
  EXPECT_LT(RelativeError(da.ToHost(), accumulated), tolerances().backward);
  EXPECT_LT(RelativeError(db.ToHost(), dout), tolerances().backward);  // db started at 0
  ASSERT_OK(backend().ResidualBackward(n, dout_.get(), da.get(), nullptr, /*accumulate=*/false));
  EXPECT_LT(RelativeError(da.ToHost(), dout), tolerances().backward);
}

// One AdamW step by hand (lr 0.1, betas 0.9 / 0.999, eps 1e-8, weight decay 0.1), parameters 1.0:
// step 1, g = 0.5:  m = 0.1 x 0.5 = 0.05, v = 0.001 x 0.25 = 0.00025,
//   m_hat = 0.05 / (1 - 0.9) = 0.5, v_hat = 0.00025 / (1 - 0.999) = 0.25, update = 0.5 / 0.5 = 1;
//   decayed:  p = 1 - 0.1 (1 + 0.1 x 1) = 0.89;   exempt: p = 1 - 0.1 x 1 = 0.9.
// step 2, grads -0.25 with grad_scale 2 (g = -0.5):  m = 0.045 - 0.05 = -0.005,
//   v = 0.00024975 + 0.00025 = 0.00049975, m_hat = -0.005 / 0.19 = -0.0263158,
//   v_hat = 0.00049975 / 0.001999 = 0.25, update = -0.0526316;
//   decayed:  p = 0.89 - 0.1 (-0.0526316 + 0.1 x 0.89) = 0.8863632;
//   exempt:   p = 0.9 - 0.1 (-0.0526316) = 0.9052632.
TEST_P(BackendOpsTest, AdamWMatchesHandComputedSteps) {
  const AdamWConfig config{0.1f, 0.9f, 0.999f, 1e-8f, 0.1f};
  Buffer decayed(backend(), std::vector<float>{1.0f}), exempt(backend(), std::vector<float>{1.0f});
  Buffer m1(backend(), 1), v1(backend(), 1), m2(backend(), 1), v2(backend(), 1);
  Buffer g(backend(), std::vector<float>{0.5f});
  ASSERT_OK(
      backend().AdamWUpdate(1, config, 1, true, 1.0f, decayed.get(), g.get(), m1.get(), v1.get()));
  ASSERT_OK(
      backend().AdamWUpdate(1, config, 1, false, 1.0f, exempt.get(), g.get(), m2.get(), v2.get()));
  EXPECT_NEAR(decayed.ToHost()[0], 0.89, 1e-6);
  EXPECT_NEAR(exempt.ToHost()[0], 0.9, 1e-6);
  // The moments see the betas as floats (1 - 0.999f = 0.00099998713, 1.3e-5 off the decimal value);
  // the bias corrections cancel that in the update, so only the moments get the wider bounds.
  EXPECT_NEAR(m1.ToHost()[0], 0.05, 1e-7);
  EXPECT_NEAR(v1.ToHost()[0], 0.00025, 1e-8);

  g.Upload({-0.25f});
  ASSERT_OK(
      backend().AdamWUpdate(1, config, 2, true, 2.0f, decayed.get(), g.get(), m1.get(), v1.get()));
  ASSERT_OK(
      backend().AdamWUpdate(1, config, 2, false, 2.0f, exempt.get(), g.get(), m2.get(), v2.get()));
  EXPECT_NEAR(m1.ToHost()[0], -0.005, 1e-7);
  EXPECT_NEAR(v1.ToHost()[0], 0.00049975, 1e-8);
  EXPECT_NEAR(decayed.ToHost()[0], 0.8863632, 1e-6);
  EXPECT_NEAR(exempt.ToHost()[0], 0.9052632, 1e-6);
}

TEST_P(BackendOpsTest, AdamWMatchesReference) {
  const int64_t n = 1001;
  const AdamWConfig config{3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
  const auto p0 = RandomVector(n, 1), g = RandomVector(n, 2);
  const auto m0 = RandomVector(n, 3, 0.1f);
  auto v0 = RandomVector(n, 4, 0.1f);
  for (float& x : v0) x = x * x;  // second moments are non-negative
  Buffer p(backend(), p0), g_(backend(), g), m(backend(), m0), v(backend(), v0);
  ASSERT_OK(backend().AdamWUpdate(n, config, 3, true, 0.7f, p.get(), g_.get(), m.get(), v.get()));
  auto ep = D(p0), em = D(m0), ev = D(v0);
  reference::AdamWUpdate<double>(n, config, 3, true, 0.7, ep.data(), D(g).data(), em.data(),
                                 ev.data());
  EXPECT_LT(RelativeError(p.ToHost(), ep), tolerances().f32);
  EXPECT_LT(RelativeError(m.ToHost(), em), tolerances().f32);
  EXPECT_LT(RelativeError(v.ToHost(), ev), tolerances().f32);
}

TEST_P(BackendOpsTest, ScaleAndNormSquared) {
  const int64_t n = 1003;
  const auto x = RandomVector(n, 1), y = RandomVector(7, 2);
  Buffer x_(backend(), x), y_(backend(), y), sum(backend(), 1);
  // The squared norm accumulates over tensors: |x|^2 + |y|^2.
  ASSERT_OK(backend().NormSquared(n, x_.get(), sum.get()));
  ASSERT_OK(backend().NormSquared(7, y_.get(), sum.get()));
  const double expected = reference::NormSquared<double>(n, D(x).data()) +
                          reference::NormSquared<double>(7, D(y).data());
  EXPECT_LT(RelativeError(sum.ToHost(), std::vector<double>{expected}), tolerances().f32);

  ASSERT_OK(backend().Scale(n, -0.25f, x_.get()));
  auto scaled = D(x);
  for (double& e : scaled) e *= -0.25;
  EXPECT_LT(RelativeError(x_.ToHost(), scaled), tolerances().f32);
}

TEST_P(BackendOpsTest, SumAccumulates) {
  const std::vector<float> x = RandomVector(1001, 21);
  double expected = 0.5;
  for (float v : x) expected += v;
  Buffer dx(backend(), x), sum(backend(), std::vector<float>{0.5f});
  ASSERT_OK(backend().Sum(1001, dx.get(), sum.get()));
  EXPECT_NEAR(sum.ToHost()[0], expected, 1e-3);
}

TEST_P(BackendOpsTest, AxpyAccumulates) {
  const std::vector<float> x = RandomVector(777, 22), y = RandomVector(777, 23);
  Buffer dx(backend(), x), dy(backend(), y);
  ASSERT_OK(backend().Axpy(777, -0.5f, dx.get(), dy.get()));
  std::vector<double> expected(777);
  for (int i = 0; i < 777; ++i) expected[i] = y[i] - 0.5 * x[i];
  EXPECT_LT(RelativeError(dy.ToHost(), expected), 1e-6);
}

TEST_P(BackendOpsTest, WorkingRoundTripIsExactForRepresentableValues) {
  // Values with 8 significant bits survive fp32 -> working -> fp32 on fp32 and bf16 backends.
  std::vector<float> x;
  for (int i = -64; i < 64; ++i) x.push_back(std::ldexp(static_cast<float>(i) + 0.5f, i % 7));
  WorkingBuffer w(backend(), x);
  EXPECT_EQ(w.ToHost(), x);
}

// Every element, whatever the length (vector bodies and scalar tails), rounds like RoundTo.
TEST_P(BackendOpsTest, WorkingConversionRoundsToNearestEven) {
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{9}, int64_t{1001}}) {
    SCOPED_TRACE(absl::StrCat("n=", n));
    const auto x = RandomVector(n, 5, 3.0f);
    WorkingBuffer w(backend(), x);
    EXPECT_EQ(w.ToHost(), W(x));
  }
}

TEST_P(BackendOpsTest, Copy2DAndAdd2DMoveStridedRows) {
  // A [4, 6] matrix; copy its 3-column middle block into a [4, 3] one and add it back shifted.
  std::vector<float> a(24);
  for (int i = 0; i < 24; ++i) a[i] = static_cast<float>(i);
  WorkingBuffer src(backend(), a), dst(backend(), 12);
  const int64_t esize = static_cast<int64_t>(DTypeSize(backend().working_dtype()));
  ASSERT_OK(backend().Copy2D(4, 3 * esize, static_cast<char*>(src.get()) + 2 * esize, 6 * esize,
                             dst.get(), 3 * esize));
  const std::vector<float> block = dst.ToHost();
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(block[r * 3 + c], a[r * 6 + 2 + c]) << r << "," << c;
  }
  ASSERT_OK(backend().Add2D(4, 3, dst.get(), 3, src.get(), 6));  // columns 0-2 += columns 2-4
  const std::vector<float> sum = src.ToHost();
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 6; ++c) {
      EXPECT_EQ(sum[r * 6 + c], a[r * 6 + c] + (c < 3 ? a[r * 6 + 2 + c] : 0.0f));
    }
  }
  EXPECT_THAT(backend().Copy2D(2, 8, src.get(), 4, dst.get(), 8),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pitches")));
}

// Wide rows (vector loads on a bf16 backend) with a pitch larger than the row.
TEST_P(BackendOpsTest, Add2DMatchesReferenceOnWideRows) {
  const int64_t rows = 5, cols = 40, src_pitch = 48, dst_pitch = 56;
  const auto src = W(RandomVector(rows * src_pitch, 1)), dst = W(RandomVector(rows * dst_pitch, 2));
  WorkingBuffer src_(backend(), src), dst_(backend(), dst);
  ASSERT_OK(backend().Add2D(rows, cols, src_.get(), src_pitch, dst_.get(), dst_pitch));
  auto expected = D(dst);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) expected[r * dst_pitch + c] += src[r * src_pitch + c];
  }
  EXPECT_LT(RelativeError(dst_.ToHost(), expected), tolerances().forward);
}

TEST_P(BackendOpsTest, MemoryAllocateCopyZero) {
  ASSERT_OK_AND_ASSIGN(void* ptr, backend().Allocate(1000));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ptr) % 256, 0u);
  ASSERT_OK_AND_ASSIGN(void* other, backend().Allocate(1000));
  std::vector<char> host(1000);
  for (int i = 0; i < 1000; ++i) host[i] = static_cast<char>(i % 251);
  ASSERT_OK(backend().CopyToDevice(ptr, host.data(), 1000));
  ASSERT_OK(backend().CopyOnDevice(other, ptr, 1000));
  ASSERT_OK(backend().Zero(ptr, 500));
  std::vector<char> back(1000), zeroed(1000);
  ASSERT_OK(backend().CopyToHost(back.data(), other, 1000));
  ASSERT_OK(backend().CopyToHost(zeroed.data(), ptr, 1000));
  ASSERT_OK(backend().Synchronize());
  EXPECT_EQ(back, host);
  EXPECT_TRUE(std::all_of(zeroed.begin(), zeroed.begin() + 500, [](char c) { return c == 0; }));
  EXPECT_TRUE(std::equal(zeroed.begin() + 500, zeroed.end(), host.begin() + 500));
  backend().Free(ptr);
  backend().Free(other);
  ASSERT_OK_AND_ASSIGN(void* empty, backend().Allocate(0));
  backend().Free(empty);
}

// ==== Validation at the public boundary ==========================================================

TEST_P(BackendOpsTest, RejectsBadShapesWithInvalidArgument) {
  Buffer buf(backend(), 4096);
  IntBuffer ids(backend(), 64);
  float* p = buf.get();
  const auto kInvalid = absl::StatusCode::kInvalidArgument;

  EXPECT_THAT(backend().MatmulForward(MatmulShape{0, 2, 2}, p, p, nullptr, p, false),
              StatusIs(kInvalid, HasSubstr("m must be > 0")));
  EXPECT_THAT(backend().MatmulForward(MatmulShape::Linear(2, 2, 2), nullptr, p, nullptr, p, false),
              StatusIs(kInvalid, HasSubstr("a is null")));
  EXPECT_THAT(backend().LayerNormForward(NormShape{2, 0, 1e-5f}, p, p, nullptr, p, p),
              StatusIs(kInvalid, HasSubstr("cols")));
  EXPECT_THAT(backend().RopeForward(RopeShape{1, 2, 1, 5, 0, 0, 10000.0f}, p, p),
              StatusIs(kInvalid, HasSubstr("head_dim must be even")));
  EXPECT_THAT(backend().RopeForward(RopeShape{1, 2, 2, 4, 7, 0, 10000.0f}, p, p),
              StatusIs(kInvalid, HasSubstr("token_stride")));

  AttentionShape attention = AttentionShape::AllHeads(1, 4, 4, 3, 8);
  EXPECT_THAT(backend().AttentionForward(attention, p, p, p, p, p),
              StatusIs(kInvalid, HasSubstr("not a multiple of num_kv_heads")));
  attention = AttentionShape::AllHeads(1, 4, 4, 2, 8);
  attention.head_begin = 2;
  attention.head_end = 2;
  EXPECT_THAT(backend().AttentionForward(attention, p, p, p, p, p),
              StatusIs(kInvalid, HasSubstr("head range [2, 2)")));
  attention.head_end = 5;
  EXPECT_THAT(backend().AttentionBackward(attention, p, p, p, p, p, p, p, p, p),
              StatusIs(kInvalid, HasSubstr("outside [0, 4)")));

  EXPECT_THAT(backend().EmbeddingForward(EmbeddingShape{1, 4, 2, 0, 10, 3, 6}, ids.get(), p, p, p),
              StatusIs(kInvalid, HasSubstr("exceed max_positions 6")));
  EXPECT_THAT(
      backend().EmbeddingForward(EmbeddingShape{1, 4, 2, 5, 5, 0, 0}, ids.get(), p, nullptr, p),
      StatusIs(kInvalid, HasSubstr("vocabulary range [5, 5)")));
  EXPECT_THAT(backend().CrossEntropyMax(CrossEntropyShape{4, 10, 5, 12}, p, p),
              StatusIs(kInvalid, HasSubstr("outside [0, 10)")));
  EXPECT_THAT(backend().AdamWUpdate(4, AdamWConfig{}, 0, true, 1.0f, p, p, p, p),
              StatusIs(kInvalid, HasSubstr("step must be > 0")));
  AdamWConfig bad_beta;
  bad_beta.beta2 = 1.0f;
  EXPECT_THAT(backend().AdamWUpdate(4, bad_beta, 1, true, 1.0f, p, p, p, p),
              StatusIs(kInvalid, HasSubstr("betas")));
  EXPECT_THAT(backend().GeluForward(-1, p, p), StatusIs(kInvalid, HasSubstr("n must be >= 0")));
  EXPECT_OK(backend().GeluForward(0, nullptr, nullptr));  // empty: nothing to touch
}

}  // namespace
}  // namespace cairn::runtime::testing
