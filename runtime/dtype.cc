#include "runtime/dtype.h"

#include <cstring>

namespace cairn::runtime {

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return 4;
    case DType::kBFloat16: return 2;
    case DType::kInt32: return 4;
    case DType::kInt64: return 8;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "f32";
    case DType::kBFloat16: return "bf16";
    case DType::kInt32: return "i32";
    case DType::kInt64: return "i64";
  }
  return "unknown";
}

BFloat16 ToBFloat16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, sizeof(u));
  BFloat16 out;
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
    out.bits = static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
    return out;
  }
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  out.bits = static_cast<uint16_t>((u + rounding) >> 16);
  return out;
}

float FromBFloat16(BFloat16 value) {
  const uint32_t u = static_cast<uint32_t>(value.bits) << 16;
  float out;
  std::memcpy(&out, &u, sizeof(out));
  return out;
}

}  // namespace cairn::runtime
