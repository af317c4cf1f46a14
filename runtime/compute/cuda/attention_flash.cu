// runtime/compute/cuda/attention_flash.cu — the FlashAttention-2-style tensor-core attention
// kernels (bodies in attention_flash_impl.h; the simple fp32 kernels of attention_simple.cu compute
// the same function and are the fallback).
//
// Instances: head dim 64 and 128. Forward: 8 warps (128-query tiles; the 64-key tiles in shared
// memory serve 8 warps' worth of rows), 96 KiB (D = 128) / 48 KiB (D = 64) of shared memory.
// Backward: 4 warps, 64 keys per block, ~105 KiB / ~57 KiB. Both above 48 KiB, so the launchers
// raise the kernels' dynamic shared-memory limit. Backward = zero dq_accum, DeltaKernel,
// BackwardKernel, ConvertDqKernel.
#include "runtime/compute/cuda/attention_flash_impl.h"
#include "runtime/compute/cuda/device_utils.cuh"
#include "runtime/compute/cuda/kernels.h"

namespace cairn::runtime::cuda {
namespace {

constexpr int kForwardWarps = 8;

template <int kD>
__global__ void __launch_bounds__(32 * kForwardWarps)
    ForwardKernel(flash::FlashArgs a, const bf16* q, const bf16* k, const bf16* v, bf16* out,
                  float* lse) {
  char* smem = DynamicShared<char>();
  flash::ForwardBlock<kD, kForwardWarps>(a, q, k, v, out, lse, blockIdx.x, blockIdx.y, gridDim.x,
                                         smem);
}

template <int kD>
__global__ void __launch_bounds__(32 * flash::kBwdWarps)
    BackwardKernel(flash::FlashArgs a, const bf16* q, const bf16* k, const bf16* v,
                   const float* lse, const float* delta, const bf16* dout, float* dq_accum,
                   bf16* dk, bf16* dv) {
  char* smem = DynamicShared<char>();
  flash::BackwardBlock<kD>(a, q, k, v, lse, delta, dout, dq_accum, dk, dv, blockIdx.x, blockIdx.y,
                           smem);
}

constexpr int kDeltaWarps = 8;

template <int kD>
__global__ void DeltaKernel(flash::FlashArgs a, const bf16* out, const bf16* dout, float* delta) {
  flash::DeltaBlock<kD>(a, out, dout, delta, blockIdx.x, kDeltaWarps);
}

template <int kD>
__global__ void ConvertDqKernel(flash::FlashArgs a, const float* dq_accum, bf16* dq) {
  flash::ConvertDqBlock<kD>(a, dq_accum, dq, blockIdx.x, blockDim.x);
}

flash::FlashArgs FlashArgsOf(const AttentionArgs& a) {
  flash::FlashArgs f;
  f.batch = a.batch;
  f.seq = a.seq;
  f.local_heads = a.local_heads;
  f.local_kv_heads = a.local_kv_heads;
  f.head_begin = a.head_begin;
  f.group_size = a.group_size;
  f.kv_begin = a.kv_begin;
  f.q_stride = a.q_stride;
  f.kv_stride = a.kv_stride;
  f.scale = a.scale;
  f.scale_log2 = a.scale * flash::kLog2e;
  return f;
}

template <typename Kernel>
cudaError_t AllowSharedMemory(Kernel kernel, int bytes) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                              cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

template <int kD>
cudaError_t Forward(const AttentionArgs& args, const bf16* q, const bf16* k, const bf16* v,
                    bf16* out, float* lse, cudaStream_t stream) {
  using Config = flash::ForwardConfig<kD, kForwardWarps>;
  const cudaError_t status = AllowSharedMemory(ForwardKernel<kD>, Config::kSmemBytes);
  if (status != cudaSuccess) return status;
  const int64_t tiles = (args.seq + Config::kBlockM - 1) / Config::kBlockM;
  const int64_t bh = args.batch * args.local_heads;
  if (tiles > 0x7fffffff || bh > 65535) return cudaErrorInvalidValue;
  return Launch(ForwardKernel<kD>,
                dim3(static_cast<unsigned int>(tiles), static_cast<unsigned int>(bh)),
                Config::kThreads, Config::kSmemBytes, stream, FlashArgsOf(args), q, k, v, out, lse);
}

template <int kD>
cudaError_t Backward(const AttentionArgs& args, const bf16* q, const bf16* k, const bf16* v,
                     const bf16* out, const float* lse, const bf16* dout, bf16* dq, bf16* dk,
                     bf16* dv, float* delta, float* dq_accum, cudaStream_t stream) {
  using Config = flash::BackwardConfig<kD>;
  const flash::FlashArgs f = FlashArgsOf(args);
  const int64_t rows = args.batch * args.local_heads * args.seq;
  cudaError_t status = cudaMemsetAsync(dq_accum, 0, static_cast<size_t>(rows * kD) * 4, stream);
  if (status != cudaSuccess) return status;
  status = Launch(DeltaKernel<kD>, GridFor(rows, kDeltaWarps), 32 * kDeltaWarps, 0, stream, f, out,
                  dout, delta);
  if (status != cudaSuccess) return status;

  status = AllowSharedMemory(BackwardKernel<kD>, Config::kSmemBytes);
  if (status != cudaSuccess) return status;
  const int64_t tiles = (args.seq + flash::kBlockN - 1) / flash::kBlockN;
  const int64_t bkv = args.batch * args.local_kv_heads;
  if (tiles > 0x7fffffff || bkv > 65535) return cudaErrorInvalidValue;
  status = Launch(
      BackwardKernel<kD>, dim3(static_cast<unsigned int>(tiles), static_cast<unsigned int>(bkv)),
      Config::kThreads, Config::kSmemBytes, stream, f, q, k, v, lse, delta, dout, dq_accum, dk, dv);
  if (status != cudaSuccess) return status;

  return Launch(ConvertDqKernel<kD>, GridFor(rows * (kD / 8), 256), 256, 0, stream, f, dq_accum,
                dq);
}

}  // namespace

bool FlashAttentionSupported(const AttentionArgs& args, const void* const* pointers, int count) {
  if (args.head_dim != 64 && args.head_dim != 128) return false;
  if (args.q_stride % 8 != 0 || args.kv_stride % 8 != 0) return false;
  for (int i = 0; i < count; ++i) {
    if (!Aligned16(pointers[i])) return false;
  }
  return true;
}

cudaError_t LaunchAttentionForwardFlash(const AttentionArgs& args, const bf16* q, const bf16* k,
                                        const bf16* v, bf16* out, float* lse, cudaStream_t stream) {
  switch (args.head_dim) {
    case 64:
      return Forward<64>(args, q, k, v, out, lse, stream);
    case 128:
      return Forward<128>(args, q, k, v, out, lse, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t LaunchAttentionBackwardFlash(const AttentionArgs& args, const bf16* q, const bf16* k,
                                         const bf16* v, const bf16* out, const float* lse,
                                         const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                                         float* delta, float* dq_accum, cudaStream_t stream) {
  switch (args.head_dim) {
    case 64:
      return Backward<64>(args, q, k, v, out, lse, dout, dq, dk, dv, delta, dq_accum, stream);
    case 128:
      return Backward<128>(args, q, k, v, out, lse, dout, dq, dk, dv, delta, dq_accum, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace cairn::runtime::cuda
