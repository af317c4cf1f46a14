// runtime/dtype.h — element types of the runtime's device buffers, shared by the compute backends
// (runtime/compute) and the communicators (runtime/comm).
//
//   const size_t bytes = count * DTypeSize(backend.working_dtype());
//   CAIRN_RETURN_IF_ERROR(comm->StartAllReduce(p, p, count, DType::kBFloat16, ReduceOp::kSum, s));
#ifndef CAIRN_RUNTIME_DTYPE_H_
#define CAIRN_RUNTIME_DTYPE_H_

#include <cstddef>
#include <cstdint>

namespace cairn::runtime {

enum class DType {
  kFloat32,
  kBFloat16,  // bfloat16: the top 16 bits of an IEEE fp32
  kInt32,
  kInt64,
};

// Bytes per element: 4, 2, 4, 8.
size_t DTypeSize(DType dtype);
// "f32", "bf16", "i32", "i64".
const char* DTypeName(DType dtype);

// A bfloat16 value as stored in device memory (for typed host-side calls and tests).
struct BFloat16 {
  uint16_t bits = 0;
};
// Round-to-nearest-even conversion (NaN stays NaN) and the exact widening.
BFloat16 ToBFloat16(float value);
float FromBFloat16(BFloat16 value);

// Maps a C++ element type to its DType (typed communicator calls); only these are specialised.
template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kFloat32;
};
template <>
struct DTypeOf<BFloat16> {
  static constexpr DType value = DType::kBFloat16;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kInt32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kInt64;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_DTYPE_H_
