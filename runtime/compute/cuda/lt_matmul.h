// runtime/compute/cuda/lt_matmul.h — row-major bf16 GEMMs on cuBLASLt (private to
// runtime/compute/cuda).
//
//   LtMatmul lt = ...;                                    // one per CudaBackend
//   GemmArgs g{m, n, k, ta, tb, a, b, c, /*c_f32=*/false, /*beta=*/1.0f, bias};
//   CAIRN_RETURN_IF_ERROR(lt.Run(g, workspace, workspace_bytes, stream));
//
// cuBLASLt is column-major; a row-major [r, c] matrix is the column-major [c, r] matrix with
// leading dimension c. So the row-major C[m, n] = op(A) op(B) is computed as the column-major
// C^T[n, m] = op(B)^T op(A)^T: cuBLASLt's "A" is our B (transposed iff tb: B stored [n, k] is the
// column-major [k, n]), its "B" is our A (transposed iff ta), and its D is [n, m] with leading
// dimension n. The bias epilogue adds a vector over D's rows, i.e. over our columns n.
//
// Types: A and B bf16, compute CUBLAS_COMPUTE_32F (fp32 accumulation), scale type fp32, C = D bf16
// or fp32 (c_f32), bias of D's type, beta 0 (overwrite) or 1 (accumulate, C = D in place).
//
// Algorithms come from cublasLtMatmulAlgoGetHeuristic, cached per (m, n, k, ta, tb, c dtype,
// bias?, beta == 0, the 16..256-byte alignments of every pointer); the heuristic is told the
// workspace size and the alignments, so any cached algorithm is valid for any call with that key.
// Run returns Unimplemented when cuBLASLt has no algorithm for a key (the backend then uses the
// simple kernel); other cuBLAS failures are Internal. Thread-safe.
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_LT_MATMUL_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_LT_MATMUL_H_

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/compute/cuda/kernels.h"

namespace cairn::runtime::cuda {

class LtMatmul {
 public:
  static absl::StatusOr<std::unique_ptr<LtMatmul>> Create();
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // Enqueues the GEMM of `args` (kernels.h GemmArgs semantics) on `stream`.
  absl::Status Run(const GemmArgs& args, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream);

  // Heuristic cache entries (tests, logs).
  size_t cached_algorithms() const;

 private:
  // (m, n, k, ta, tb, c_f32, has_bias, beta_zero, alignment of a, b, c, bias)
  using Key =
      std::tuple<int64_t, int64_t, int64_t, bool, bool, bool, bool, bool, int, int, int, int>;
  struct Entry {
    bool found = false;
    cublasLtMatmulAlgo_t algo;
  };

  explicit LtMatmul(cublasLtHandle_t handle) : handle_(handle) {}

  cublasLtHandle_t handle_;
  mutable std::mutex mu_;
  std::map<Key, Entry> cache_;
};

}  // namespace cairn::runtime::cuda

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_LT_MATMUL_H_
