#include "runtime/dtype.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace cairn::runtime {
namespace {

TEST(DTypeTest, SizesAndNames) {
  EXPECT_EQ(DTypeSize(DType::kFloat32), 4u);
  EXPECT_EQ(DTypeSize(DType::kBFloat16), 2u);
  EXPECT_EQ(DTypeSize(DType::kInt64), 8u);
  EXPECT_STREQ(DTypeName(DType::kBFloat16), "bf16");
  EXPECT_STREQ(DTypeName(DType::kInt32), "i32");
}

TEST(DTypeTest, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(FromBFloat16(ToBFloat16(1.0f)), 1.0f);
  EXPECT_EQ(FromBFloat16(ToBFloat16(-2.5f)), -2.5f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
  EXPECT_EQ(FromBFloat16(ToBFloat16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  // Just above halfway rounds up.
  EXPECT_EQ(FromBFloat16(ToBFloat16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -12))),
            1.0f + std::ldexp(1.0f, -7));
  EXPECT_TRUE(std::isnan(FromBFloat16(ToBFloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(FromBFloat16(ToBFloat16(std::numeric_limits<float>::infinity()))));
  // Relative error of a round trip is at most 2^-9.
  for (float x : {3.14159f, 1e-20f, 6.02e23f, -0.001234f}) {
    EXPECT_LE(std::fabs(FromBFloat16(ToBFloat16(x)) - x), std::fabs(x) * std::ldexp(1.0f, -9));
  }
}

}  // namespace
}  // namespace cairn::runtime
