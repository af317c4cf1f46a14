// common/math.h — small integer helpers used across Cairn.
//
//   if (!IsPowerOfTwo(tp)) ...;
//   const int64_t shard = CeilDiv(params, group);   // elements per rank, last one padded
#ifndef CAIRN_COMMON_MATH_H_
#define CAIRN_COMMON_MATH_H_

#include <cstdint>

namespace cairn {

constexpr bool IsPowerOfTwo(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

// ceil(a / b) for a >= 0, b > 0.
constexpr int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace cairn

#endif  // CAIRN_COMMON_MATH_H_
