// runtime/compute/cpu/cpu_backend.h — the fp32 CPU implementation of ComputeBackend.
//
// Overview
// --------
// The readable reference backend of the runtime (llm.c's train_gpt2.c, behind Cairn's interface):
// matmuls go to OpenBLAS (`cblas_sgemm`), everything else is a plain loop over the shapes that
// compute_backend.h documents. It is what CPU training (CI, the parity tests of the parallel
// engine) runs, and the backend the CUDA backend's parity tests compare against.
//
//   CpuBackend cpu;
//   CAIRN_RETURN_IF_ERROR(cpu.GeluForward(n, x, y));    // synchronous; the stream is ignored
//
// Contract
// --------
// * Memory is host memory: Allocate is an aligned malloc, copies are memcpy, every pointer may be
//   any host pointer. Every call finishes before it returns (Synchronize is a no-op).
// * Working dtype fp32. Reductions over rows (norm statistics, softmax sums, gradient norms) and
//   the bias, norm-weight and position gradient sums accumulate in double, so results do not drift
//   with row length; the products inside sgemm are fp32.
// * Attention is flash-style: per (batch, head), blocks of 64 queries against the keys they can
//   see, two sgemms forward, five backward (the scores recomputed); scratch is 64 x T floats, never
//   T x T per head.
// * Threads: matmuls use OpenBLAS's own threads (OPENBLAS_NUM_THREADS, and OPENBLAS_CORETYPE if the
//   environment sets it, are honoured and never changed here); the other loops are single-threaded.
//   The object has no mutable state, so concurrent calls on different data are safe.
// * Faster variants that cost readability (fused kernels, OpenMP over heads, key-blocked online
//   softmax) belong in a separate backend until they earn their way in (STYLE.md).
#ifndef CAIRN_RUNTIME_COMPUTE_CPU_CPU_BACKEND_H_
#define CAIRN_RUNTIME_COMPUTE_CPU_CPU_BACKEND_H_

#include <cstdint>
#include <string>

#include "runtime/compute/compute_backend.h"

namespace cairn::runtime {

class CpuBackend final : public ComputeBackend {
 public:
  CpuBackend() = default;

  std::string name() const override { return "cpu"; }
  DType working_dtype() const override { return DType::kFloat32; }

 private:
  absl::StatusOr<void*> DoAllocate(int64_t bytes) override;
  void DoFree(void* ptr) override;
  absl::Status DoCopyToDevice(void* device_dst, const void* host_src, int64_t bytes,
                              Stream* stream) override;
  absl::Status DoCopyToHost(void* host_dst, const void* device_src, int64_t bytes,
                            Stream* stream) override;
  absl::Status DoCopyOnDevice(void* device_dst, const void* device_src, int64_t bytes,
                              Stream* stream) override;
  absl::Status DoZero(void* device_dst, int64_t bytes, Stream* stream) override;
  absl::Status DoSynchronize(Stream* stream) override;
  absl::Status DoMatmulForward(const MatmulShape& shape, const float* a, const float* b,
                               const float* bias, float* c, bool accumulate,
                               Stream* stream) override;
  absl::Status DoMatmulBackward(const MatmulShape& shape, const float* a, const float* b,
                                const float* dc, float* da, float* db, float* dbias,
                                bool accumulate_da, Stream* stream) override;
  absl::Status DoLayerNormForward(const NormShape& shape, const float* inp, const float* weight,
                                  const float* bias, float* out, float* rstd,
                                  Stream* stream) override;
  absl::Status DoLayerNormBackward(const NormShape& shape, const float* inp, const float* weight,
                                   const float* rstd, const float* dout, float* dinp,
                                   float* dweight, float* dbias, bool accumulate_dinp,
                                   Stream* stream) override;
  absl::Status DoRmsNormForward(const NormShape& shape, const float* inp, const float* weight,
                                float* out, float* rstd, Stream* stream) override;
  absl::Status DoRmsNormBackward(const NormShape& shape, const float* inp, const float* weight,
                                 const float* rstd, const float* dout, float* dinp, float* dweight,
                                 bool accumulate_dinp, Stream* stream) override;
  absl::Status DoGeluForward(int64_t n, const float* inp, float* out, Stream* stream) override;
  absl::Status DoGeluBackward(int64_t n, const float* inp, const float* dout, float* dinp,
                              Stream* stream) override;
  absl::Status DoSwiGluForward(int64_t n, const float* gate, const float* up, float* out,
                               Stream* stream) override;
  absl::Status DoSwiGluBackward(int64_t n, const float* gate, const float* up, const float* dout,
                                float* dgate, float* dup, Stream* stream) override;
  absl::Status DoRopeForward(const RopeShape& shape, const float* inp, float* out,
                             Stream* stream) override;
  absl::Status DoRopeBackward(const RopeShape& shape, const float* dout, float* dinp,
                              Stream* stream) override;
  absl::Status DoAttentionForward(const AttentionShape& shape, const float* q, const float* k,
                                  const float* v, float* out, float* lse, Stream* stream) override;
  absl::Status DoAttentionBackward(const AttentionShape& shape, const float* q, const float* k,
                                   const float* v, const float* out, const float* lse,
                                   const float* dout, float* dq, float* dk, float* dv,
                                   Stream* stream) override;
  absl::Status DoEmbeddingForward(const EmbeddingShape& shape, const int32_t* tokens,
                                  const float* wte, const float* wpe, float* out,
                                  Stream* stream) override;
  absl::Status DoEmbeddingBackward(const EmbeddingShape& shape, const int32_t* tokens,
                                   const float* dout, float* dwte, float* dwpe,
                                   Stream* stream) override;
  absl::Status DoCrossEntropyMax(const CrossEntropyShape& shape, const float* logits, float* max,
                                 Stream* stream) override;
  absl::Status DoCrossEntropySums(const CrossEntropyShape& shape, const float* logits,
                                  const int32_t* targets, const float* max, float* sum_exp,
                                  float* target_logit, Stream* stream) override;
  absl::Status DoCrossEntropyLossAndGrad(const CrossEntropyShape& shape, const float* logits,
                                         const int32_t* targets, const float* max,
                                         const float* sum_exp, const float* target_logit,
                                         float loss_scale, float* losses, float* dlogits,
                                         Stream* stream) override;
  absl::Status DoResidualForward(int64_t n, const float* a, const float* b, float* out,
                                 Stream* stream) override;
  absl::Status DoResidualBackward(int64_t n, const float* dout, float* da, float* db,
                                  bool accumulate, Stream* stream) override;
  absl::Status DoAdamWUpdate(int64_t n, const AdamWConfig& config, int64_t step,
                             bool apply_weight_decay, float grad_scale, float* params,
                             const float* grads, float* m, float* v, Stream* stream) override;
  absl::Status DoScale(int64_t n, float alpha, float* x, Stream* stream) override;
  absl::Status DoNormSquared(int64_t n, const float* x, float* sum, Stream* stream) override;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMPUTE_CPU_CPU_BACKEND_H_
