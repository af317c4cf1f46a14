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
  absl::Status DoMatmulForward(const MatmulShape& shape, const void* a, const void* b,
                               const void* bias, void* c, bool accumulate,
                               Stream* stream) override;
  absl::Status DoMatmulBackward(const MatmulShape& shape, const void* a, const void* b,
                                const void* dc, void* da, float* db, float* dbias,
                                bool accumulate_da, Stream* stream) override;
  absl::Status DoLayerNormForward(const NormShape& shape, const void* inp, const void* weight,
                                  const void* bias, void* out, float* rstd,
                                  Stream* stream) override;
  absl::Status DoLayerNormBackward(const NormShape& shape, const void* inp, const void* weight,
                                   const float* rstd, const void* dout, void* dinp,
                                   float* dweight, float* dbias, bool accumulate_dinp,
                                   Stream* stream) override;
  absl::Status DoRmsNormForward(const NormShape& shape, const void* inp, const void* weight,
                                void* out, float* rstd, Stream* stream) override;
  absl::Status DoRmsNormBackward(const NormShape& shape, const void* inp, const void* weight,
                                 const float* rstd, const void* dout, void* dinp, float* dweight,
                                 bool accumulate_dinp, Stream* stream) override;
  absl::Status DoGeluForward(int64_t n, const void* inp, void* out, Stream* stream) override;
  absl::Status DoGeluBackward(int64_t n, const void* inp, const void* dout, void* dinp,
                              Stream* stream) override;
  absl::Status DoSwiGluForward(int64_t n, const void* gate, const void* up, void* out,
                               Stream* stream) override;
  absl::Status DoSwiGluBackward(int64_t n, const void* gate, const void* up, const void* dout,
                                void* dgate, void* dup, Stream* stream) override;
  absl::Status DoRopeForward(const RopeShape& shape, const void* inp, void* out,
                             Stream* stream) override;
  absl::Status DoRopeBackward(const RopeShape& shape, const void* dout, void* dinp,
                              Stream* stream) override;
  absl::Status DoAttentionForward(const AttentionShape& shape, const void* q, const void* k,
                                  const void* v, void* out, float* lse, Stream* stream) override;
  absl::Status DoAttentionBackward(const AttentionShape& shape, const void* q, const void* k,
                                   const void* v, const void* out, const float* lse,
                                   const void* dout, void* dq, void* dk, void* dv,
                                   Stream* stream) override;
  absl::Status DoEmbeddingForward(const EmbeddingShape& shape, const int32_t* tokens,
                                  const void* wte, const void* wpe, void* out,
                                  Stream* stream) override;
  absl::Status DoEmbeddingBackward(const EmbeddingShape& shape, const int32_t* tokens,
                                   const void* dout, float* dwte, float* dwpe,
                                   Stream* stream) override;
  absl::Status DoCrossEntropyMax(const CrossEntropyShape& shape, const float* logits, float* max,
                                 Stream* stream) override;
  absl::Status DoCrossEntropySums(const CrossEntropyShape& shape, const float* logits,
                                  const int32_t* targets, const float* max, float* sum_exp,
                                  float* target_logit, Stream* stream) override;
  absl::Status DoCrossEntropyLossAndGrad(const CrossEntropyShape& shape, const float* logits,
                                         const int32_t* targets, const float* max,
                                         const float* sum_exp, const float* target_logit,
                                         float loss_scale, float* losses, void* dlogits,
                                         Stream* stream) override;
  absl::Status DoResidualForward(int64_t n, const void* a, const void* b, void* out,
                                 Stream* stream) override;
  absl::Status DoResidualBackward(int64_t n, const void* dout, void* da, void* db,
                                  bool accumulate, Stream* stream) override;
  absl::Status DoAdamWUpdate(int64_t n, const AdamWConfig& config, int64_t step,
                             bool apply_weight_decay, float grad_scale, float* params,
                             const float* grads, float* m, float* v, Stream* stream) override;
  absl::Status DoScale(int64_t n, float alpha, float* x, Stream* stream) override;
  absl::Status DoNormSquared(int64_t n, const float* x, float* sum, Stream* stream) override;
  absl::Status DoSum(int64_t n, const float* x, float* sum, Stream* stream) override;
  absl::Status DoAxpy(int64_t n, float alpha, const float* x, float* y, Stream* stream) override;
  absl::Status DoCopy2D(int64_t rows, int64_t row_bytes, const void* src, int64_t src_pitch,
                        void* dst, int64_t dst_pitch, Stream* stream) override;
  absl::Status DoAdd2D(int64_t rows, int64_t row_elements, const void* src, int64_t src_pitch,
                       void* dst, int64_t dst_pitch, Stream* stream) override;
  absl::Status DoToWorking(int64_t n, const float* src, void* dst, Stream* stream) override;
  absl::Status DoFromWorking(int64_t n, const void* src, float* dst, Stream* stream) override;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMPUTE_CPU_CPU_BACKEND_H_
