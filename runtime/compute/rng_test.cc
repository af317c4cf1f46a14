#include "runtime/compute/rng.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace cairn::runtime {
namespace {

// Random123's kat_vectors for philox4x32 with 10 rounds: counter (4 words), key (2 words), result.
TEST(Philox4x32Test, MatchesKnownAnswerVectors) {
  EXPECT_EQ(Philox4x32({0, 0, 0, 0}, {0, 0}),
            (std::array<uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(
      Philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
      (std::array<uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(
      Philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
      (std::array<uint32_t, 4>{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(InitValueTest, IsAPureFunctionOfSeedTensorAndIndex) {
  EXPECT_EQ(InitValue(7, 3, 12345, 0.02f), InitValue(7, 3, 12345, 0.02f));
  EXPECT_NE(InitValue(7, 3, 12345, 0.02f), InitValue(8, 3, 12345, 0.02f));
  EXPECT_NE(InitValue(7, 3, 12345, 0.02f), InitValue(7, 4, 12345, 0.02f));
  EXPECT_NE(InitValue(7, 3, 12345, 0.02f), InitValue(7, 3, 12346, 0.02f));
  // High bits of every key part matter.
  EXPECT_NE(InitValue(7, 3, 5, 1.0f), InitValue(7, 3, 5 + (uint64_t{1} << 40), 1.0f));
  EXPECT_NE(InitValue(7, 3, 5, 1.0f), InitValue(7, 3 + (uint64_t{1} << 40), 5, 1.0f));
  EXPECT_NE(InitValue(7, 3, 5, 1.0f), InitValue(7 + (uint64_t{1} << 40), 3, 5, 1.0f));
  // std only scales.
  EXPECT_FLOAT_EQ(InitValue(1, 2, 3, 0.5f), 0.5f * InitValue(1, 2, 3, 1.0f));
}

// A tensor [rows, cols] initialised whole equals, on every shard, what the shard initialises by
// itself: contiguous row blocks (column-parallel TP, ZeRO flat slices) and column blocks
// (row-parallel TP).
TEST(InitValueTest, ShardsEqualSlicesOfTheFullTensor) {
  const int64_t rows = 6, cols = 10;
  std::vector<float> full(rows * cols);
  FillInitValues(42, 9, 0, rows * cols, 0.02f, full.data());

  const int64_t parts = 4;  // uneven flat slices: 60 elements in 4 parts of 15
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t begin = p * rows * cols / parts, end = (p + 1) * rows * cols / parts;
    std::vector<float> shard(end - begin);
    FillInitValues(42, 9, begin, end - begin, 0.02f, shard.data());
    EXPECT_EQ(shard, std::vector<float>(full.begin() + begin, full.begin() + end)) << p;
  }
  // Column block [3, 7) of rows [1, 5).
  std::vector<float> block(4 * 4);
  FillInitBlock(42, 9, cols, 1, 5, 3, 7, 0.02f, block.data());
  for (int64_t r = 1; r < 5; ++r) {
    for (int64_t c = 3; c < 7; ++c) {
      EXPECT_EQ(block[(r - 1) * 4 + (c - 3)], full[r * cols + c]) << r << "," << c;
    }
  }
}

// 1e5 samples: mean within 4.5 standard errors (std/sqrt(n) ~ 0.0032 std), std within 1%, and the
// fourth moment near 3 (normal). Two tensors' streams are uncorrelated.
TEST(InitValueTest, SamplesAreStandardNormal) {
  const int64_t n = 100000;
  const float std = 0.02f;
  std::vector<float> x(n), y(n);
  FillInitValues(1234, 0, 0, n, std, x.data());
  FillInitValues(1234, 1, 0, n, std, y.data());
  double sum = 0, sum2 = 0, sum4 = 0, cross = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double z = x[i] / std;
    sum += z;
    sum2 += z * z;
    sum4 += z * z * z * z;
    cross += z * (y[i] / std);
  }
  const double mean = sum / n;
  const double variance = sum2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 4.5 / std::sqrt(static_cast<double>(n)));
  EXPECT_NEAR(std::sqrt(variance), 1.0, 0.01);
  EXPECT_NEAR(sum4 / n, 3.0, 0.1);
  EXPECT_NEAR(cross / n, 0.0, 4.5 / std::sqrt(static_cast<double>(n)));
  // Tails: P(|z| > 3) = 0.27% for a normal.
  int64_t tail = 0;
  for (float v : x) tail += std::fabs(v / std) > 3.0f;
  EXPECT_NEAR(static_cast<double>(tail) / n, 0.0027, 0.0008);
}

}  // namespace
}  // namespace cairn::runtime
