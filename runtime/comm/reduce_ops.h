// runtime/comm/reduce_ops.h — the element-wise reductions of ReduceOp on every DType, shared by the
// CPU communicators (gloo/, local/). Internal to runtime/comm.
//
// Element types and how they reduce:
//   f32        in fp32.
//   i32, i64   exactly, in the type itself (sums wrap on overflow like the hardware; kAvg divides the
//              sum by the group size truncating toward zero, as NCCL's ncclAvg does on integers).
//   bf16       each value is widened to fp32 (exact), reduced in fp32, and rounded back to bf16 to
//              nearest even (ToBFloat16). A reduction over several steps (a ring) rounds after each.
//
//   VisitDType(dtype, [&](auto tag) {
//     using T = typename decltype(tag)::type;     // float, BFloat16, int32_t or int64_t
//     T* acc = static_cast<T*>(buffer);
//     ReduceInto(ReduceOp::kMax, acc, acc, static_cast<const T*>(incoming), n);  // acc = max(acc, in)
//     if (op == ReduceOp::kAvg) DivideBy(acc, n, group_size);
//   });
#ifndef CAIRN_RUNTIME_COMM_REDUCE_OPS_H_
#define CAIRN_RUNTIME_COMM_REDUCE_OPS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "runtime/comm/communicator.h"
#include "runtime/dtype.h"

namespace cairn::runtime::internal {

// A C++ type carried as a value, so that a generic lambda can name it (see VisitDType).
template <typename T>
struct TypeTag {
  using type = T;
};

// Calls fn(TypeTag<T>{}) with T the C++ element type of `dtype` and returns its result.
template <typename Fn>
decltype(auto) VisitDType(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kBFloat16:
      return fn(TypeTag<BFloat16>{});
    case DType::kInt32:
      return fn(TypeTag<int32_t>{});
    case DType::kInt64:
      return fn(TypeTag<int64_t>{});
    case DType::kFloat32:
      break;
  }
  return fn(TypeTag<float>{});
}

// How an element type is computed on: Acc is the type arithmetic happens in, Widen/Narrow convert
// (Narrow rounds to nearest even for bf16; identities otherwise).
template <typename T>
struct ElementMath {
  using Acc = T;
  static Acc Widen(T x) { return x; }
  static T Narrow(Acc x) { return x; }
};
template <>
struct ElementMath<BFloat16> {
  using Acc = float;
  static float Widen(BFloat16 x) { return FromBFloat16(x); }
  static BFloat16 Narrow(float x) { return ToBFloat16(x); }
};

// out[i] = a[i] op b[i] for i < count; kAvg adds (divide once at the end with DivideBy). The
// arrays may alias.
template <typename T>
void ReduceInto(ReduceOp op, T* out, const T* a, const T* b, size_t count) {
  using M = ElementMath<T>;
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      for (size_t i = 0; i < count; ++i) out[i] = M::Narrow(M::Widen(a[i]) + M::Widen(b[i]));
      return;
    case ReduceOp::kMax:
      for (size_t i = 0; i < count; ++i) out[i] = M::Narrow(std::max(M::Widen(a[i]), M::Widen(b[i])));
      return;
    case ReduceOp::kMin:
      for (size_t i = 0; i < count; ++i) out[i] = M::Narrow(std::min(M::Widen(a[i]), M::Widen(b[i])));
      return;
  }
}

// data[i] /= n: the final step of kAvg (integers: truncating toward zero).
template <typename T>
void DivideBy(T* data, size_t count, int n) {
  using M = ElementMath<T>;
  const auto d = static_cast<typename M::Acc>(n);
  for (size_t i = 0; i < count; ++i) data[i] = M::Narrow(M::Widen(data[i]) / d);
}

}  // namespace cairn::runtime::internal

#endif  // CAIRN_RUNTIME_COMM_REDUCE_OPS_H_
