// runtime/compute/cuda/cuda_backend.h — the CUDA bf16 implementation of ComputeBackend (H100/H200,
// sm_90a; also runs on sm_80+).
//
// Overview
// --------
// The GPU backend of the training runtime: the same operations as the CPU fp32 backend
// (cpu/cpu_backend.h), with the working dtype bf16 and everything that stays fp32 by contract
// (master weights, AdamW moments, gradient accumulators, norm rstd, attention logsumexp,
// cross-entropy logits and statistics) in fp32. Matmuls run on cuBLASLt (bf16 operands, fp32
// accumulation, bias through the epilogue); attention is flash-style (a tensor-core
// FlashAttention-2 kernel for head dims 64 and 128, a simple fp32 tiled kernel for any other head
// dim and as the correctness baseline); every other operation is one or two fused kernels.
// docs/runtime.md ("CUDA backend") says what is fused, why the attention kernel was chosen and what
// is deterministic.
//
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> gpu, CudaBackend::Create(/*device=*/0));
//   CAIRN_ASSIGN_OR_RETURN(void* arena, gpu->Allocate(bytes));             // cudaMalloc
//   CAIRN_RETURN_IF_ERROR(gpu->CopyToDevice(arena, host, bytes));          // async on the stream
//   CAIRN_RETURN_IF_ERROR(gpu->GeluForward(n, x, y));                      // (w) = bf16
//   CAIRN_RETURN_IF_ERROR(gpu->CopyToHost(host, y, n * 2));
//   CAIRN_RETURN_IF_ERROR(gpu->Synchronize());                             // now `host` holds y
//
// Contract (beyond compute_backend.h)
// -----------------------------------
// * Device: every call makes the backend's device current on the calling thread, so one process
//   may hold backends of several devices. Create fails with FailedPrecondition naming the device
//   when it is absent or older than compute capability 8.0 (bf16 tensor cores).
// * Streams: default_stream() (what nullptr means in every call) is the backend's own
//   non-blocking stream. CreateStream adds more (owned by the backend, valid while it lives); any
//   Stream* wrapping another cudaStream_t also works. All work is asynchronous on its stream.
// * Copies are cudaMemcpyAsync on the stream. From or to pageable host memory CUDA may block the
//   host until the copy is staged (host -> device) or done (device -> host); with pinned memory the
//   host buffer must stay alive and untouched until the stream is synchronized. Either way, a
//   CopyToHost's data is in host memory once Synchronize(stream) has returned (not before).
// * Memory: Allocate is cudaMalloc (256-byte aligned). When it does not fit: ResourceExhausted
//   "cuda: cannot allocate X bytes: Y free of Z on <device name>". Besides the arena, the backend
//   keeps per stream a cuBLASLt workspace (options.cublas_workspace_bytes, default 32 MiB) and
//   draws short-lived scratch from a private stream-ordered pool (cudaMallocFromPoolAsync, freed on
//   the stream after the call; the pool keeps its peak): the attention backward's fp32 dq
//   accumulator and row statistics (4 x (B T H_local D + B H_local T) bytes), per-block partial
//   sums of the deterministic reductions (norm weight gradients: up to 2 x 4 x C x 2 x #SMs bytes;
//   bias gradients, NormSquared/Sum: a few MiB at most), and the embedding backward's sort buffers
//   (about 20 x B T bytes plus CUB's temporary storage).
// * Precision: bf16 tensors are converted to fp32 on load; all arithmetic and every reduction is
//   fp32; results are rounded to bf16 (nearest even) once, when stored. The flash attention
//   kernels round the probabilities and their gradients to bf16 before the tensor-core products
//   (as FlashAttention does); the simple kernel keeps them in fp32.
// * Determinism: the same inputs give the same bits on the same GPU model for every operation
//   except the flash attention backward's dq (fp32 atomic adds over key tiles: the order of the
//   additions varies, ~1 ulp of fp32 before the bf16 rounding) and cuBLASLt matmuls whose
//   heuristic picks a split-K algorithm with atomics (cuBLASLt documents which; none is requested).
//   In particular the embedding backward, the norm weight/bias gradients, bias gradients,
//   NormSquared and Sum are bit-reproducible (fixed-order partial sums, no float atomics).
// * Limits (Unimplemented beyond them): norm rows of at most 8192 columns; attention head dims up
//   to 512 (64 and 128 on the flash kernels); the embedding backward over at most 2^31 - 1 tokens.
// * Threads: calls from several threads are safe (the heuristic cache and the per-stream
//   workspaces are guarded); two threads enqueueing on one stream interleave their calls.
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_CUDA_BACKEND_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_CUDA_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::runtime {

// Every tunable of the CUDA backend, with its default.
struct CudaBackendOptions {
  // Which attention kernels run.
  //   kAuto:   the tensor-core flash kernels where they apply (head dim 64 or 128, q/k/v base
  //            pointers 16-byte aligned, token strides multiples of 8 elements), else kSimple.
  //   kSimple: always the simple tiled fp32 kernels (any head dim up to 512).
  //   kFlash:  always the flash kernels; Unimplemented where they do not apply (benchmarks, tests).
  enum class Attention { kAuto, kSimple, kFlash };
  Attention attention = Attention::kAuto;

  // Which matmul implementation runs.
  //   kCublasLt: cuBLASLt (heuristic algorithms, cached per shape); the production path.
  //   kSimple:   a plain tiled fp32-accumulating kernel (correctness baseline, no cuBLAS call).
  enum class Matmul { kCublasLt, kSimple };
  Matmul matmul = Matmul::kCublasLt;

  // cuBLASLt workspace per stream, bytes (>= 0). 32 MiB is what cuBLAS recommends for Hopper.
  int64_t cublas_workspace_bytes = int64_t{32} << 20;
};

// "auto", "simple", "flash"; and the matmul names "cublaslt", "simple".
const char* AttentionKernelName(CudaBackendOptions::Attention attention);
const char* MatmulKernelName(CudaBackendOptions::Matmul matmul);

class CudaBackend final : public ComputeBackend {
 public:
  // A backend on CUDA device `device_index`. FailedPrecondition when there is no such device, no
  // driver, or the device's compute capability is below 8.0 (the message names the device);
  // InvalidArgument for bad options; Internal for other CUDA/cuBLAS failures.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(
      int device_index, const CudaBackendOptions& options = CudaBackendOptions());
  // Synchronizes the backend's streams, then frees its streams, workspaces and pool. Memory from
  // Allocate must be freed by the caller before.
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda"; }
  DType working_dtype() const override { return DType::kBFloat16; }
  Stream* default_stream() override;
  int64_t ScratchHighWaterBytes() const override;

  // Another non-blocking stream on this device, owned by the backend (valid while it lives).
  absl::StatusOr<Stream*> CreateStream();

  int device_index() const;
  // The device's name as CUDA reports it, e.g. "NVIDIA H100 80GB HBM3".
  const std::string& device_name() const;
  const CudaBackendOptions& options() const;

  // Whether the flash attention kernels take `shape` with these q, k, v (kAuto also needs the
  // call's other tensors 16-byte aligned; benchmarks and tests print it).
  bool FlashAttentionApplies(const AttentionShape& shape, const void* q, const void* k,
                             const void* v) const;

 private:
  struct Impl;
  explicit CudaBackend(std::unique_ptr<Impl> impl);

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
                               const void* bias, void* c, bool accumulate, Stream* stream) override;
  absl::Status DoMatmulBackward(const MatmulShape& shape, const void* a, const void* b,
                                const void* dc, void* da, float* db, float* dbias,
                                bool accumulate_da, Stream* stream) override;
  absl::Status DoLayerNormForward(const NormShape& shape, const void* inp, const void* weight,
                                  const void* bias, void* out, float* rstd,
                                  Stream* stream) override;
  absl::Status DoLayerNormBackward(const NormShape& shape, const void* inp, const void* weight,
                                   const float* rstd, const void* dout, void* dinp, float* dweight,
                                   float* dbias, bool accumulate_dinp, Stream* stream) override;
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
  absl::Status DoResidualBackward(int64_t n, const void* dout, void* da, void* db, bool accumulate,
                                  Stream* stream) override;
  absl::Status DoAdamWUpdate(int64_t n, const AdamWConfig& config, int64_t step,
                             bool apply_weight_decay, float grad_scale, float* params,
                             const float* grads, float* m, float* v, Stream* stream) override;
  absl::Status DoScale(int64_t n, float alpha, float* x, Stream* stream) override;
  absl::Status DoAxpy(int64_t n, float alpha, const float* x, float* y, Stream* stream) override;
  absl::Status DoNormSquared(int64_t n, const float* x, float* sum, Stream* stream) override;
  absl::Status DoSum(int64_t n, const float* x, float* sum, Stream* stream) override;
  absl::Status DoCopy2D(int64_t rows, int64_t row_bytes, const void* src, int64_t src_pitch,
                        void* dst, int64_t dst_pitch, Stream* stream) override;
  absl::Status DoAdd2D(int64_t rows, int64_t row_elements, const void* src, int64_t src_pitch,
                       void* dst, int64_t dst_pitch, Stream* stream) override;
  absl::Status DoToWorking(int64_t n, const float* src, void* dst, Stream* stream) override;
  absl::Status DoFromWorking(int64_t n, const void* src, float* dst, Stream* stream) override;

  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_CUDA_BACKEND_H_
