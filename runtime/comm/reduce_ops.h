// runtime/comm/reduce_ops.h — the element-wise reductions of ReduceOp on fp32, shared by the CPU
// communicators (gloo/, local/). Internal to runtime/comm.
//
//   ReduceInto(ReduceOp::kMax, acc, acc, incoming, n);   // acc[i] = max(acc[i], incoming[i])
//   if (op == ReduceOp::kAvg) DivideBy(acc, n, group_size);
#ifndef CAIRN_RUNTIME_COMM_REDUCE_OPS_H_
#define CAIRN_RUNTIME_COMM_REDUCE_OPS_H_

#include <algorithm>
#include <cstddef>

#include "runtime/comm/communicator.h"

namespace cairn::runtime::internal {

// out[i] = a[i] op b[i] for i < count; kAvg adds (divide once at the end with DivideBy). The
// arrays may alias.
inline void ReduceInto(ReduceOp op, float* out, const float* a, const float* b, size_t count) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      for (size_t i = 0; i < count; ++i) out[i] = a[i] + b[i];
      return;
    case ReduceOp::kMax:
      for (size_t i = 0; i < count; ++i) out[i] = std::max(a[i], b[i]);
      return;
    case ReduceOp::kMin:
      for (size_t i = 0; i < count; ++i) out[i] = std::min(a[i], b[i]);
      return;
  }
}

// data[i] /= n: the final step of kAvg.
inline void DivideBy(float* data, size_t count, int n) {
  const float d = static_cast<float>(n);
  for (size_t i = 0; i < count; ++i) data[i] /= d;
}

}  // namespace cairn::runtime::internal

#endif  // CAIRN_RUNTIME_COMM_REDUCE_OPS_H_
