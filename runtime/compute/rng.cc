#include "runtime/compute/rng.h"

#include <cmath>

namespace cairn::runtime {
namespace {

// Philox constants (Random123, philox.h): multipliers and the Weyl key increments.
constexpr uint32_t kMultiplier0 = 0xD2511F53u;
constexpr uint32_t kMultiplier1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

void MulHiLo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(product >> 32);
  *lo = static_cast<uint32_t>(product);
}

// A double in [0, 1) from the top 53 bits of (hi, lo).
double Uniform53(uint32_t hi, uint32_t lo) {
  const uint64_t bits = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace

std::array<uint32_t, 4> Philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kWeyl0;
      k[1] += kWeyl1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    MulHiLo(kMultiplier0, c[0], &hi0, &lo0);
    MulHiLo(kMultiplier1, c[2], &hi1, &lo1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
  }
  return c;
}

float InitValue(uint64_t seed, uint64_t tensor_id, uint64_t index, float std) {
  const std::array<uint32_t, 4> words =
      Philox4x32({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                  static_cast<uint32_t>(tensor_id), static_cast<uint32_t>(tensor_id >> 32)},
                 {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  // Box-Muller: u1 in (0, 1] keeps the logarithm finite; u2 in [0, 1).
  const double u1 = 1.0 - Uniform53(words[0], words[1]);
  const double u2 = Uniform53(words[2], words[3]);
  const double normal = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  return static_cast<float>(normal * std);
}

void FillInitValues(uint64_t seed, uint64_t tensor_id, uint64_t first_index, int64_t count,
                    float std, float* out) {
  for (int64_t i = 0; i < count; ++i) {
    out[i] = InitValue(seed, tensor_id, first_index + static_cast<uint64_t>(i), std);
  }
}

void FillInitBlock(uint64_t seed, uint64_t tensor_id, int64_t cols, int64_t row_begin,
                   int64_t row_end, int64_t col_begin, int64_t col_end, float std, float* out) {
  const int64_t width = col_end - col_begin;
  for (int64_t r = row_begin; r < row_end; ++r) {
    FillInitValues(seed, tensor_id, static_cast<uint64_t>(r * cols + col_begin), width, std,
                   out + (r - row_begin) * width);
  }
}

}  // namespace cairn::runtime
