// runtime/compute/cuda/device_utils.cuh — small device helpers shared by the kernels (private).
//
// * 16-byte vectors of 8 bf16 (Load8 / Store8) converted to / from fp32 registers;
// * warp and block reductions in a fixed order (so that every thread of a block gets the same bits,
//   run after run: the deterministic reductions build on these);
// * grid sizing for grid-stride loops.
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_DEVICE_UTILS_CUH_
#define CAIRN_RUNTIME_COMPUTE_CUDA_DEVICE_UTILS_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace cairn::runtime::cuda {

using bf16 = __nv_bfloat16;

__host__ __device__ inline bool Aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Blocks for a grid-stride loop over `units` work items with `threads` per block: one item per
// thread, at most `max_blocks` blocks (every kernel loops, so any cap is correct).
inline unsigned int GridFor(int64_t units, int threads, int64_t max_blocks = int64_t{1} << 20) {
  int64_t blocks = (units + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned int>(blocks);
}

__device__ __forceinline__ float ToFloat(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 ToBf16(float x) { return __float2bfloat16_rn(x); }

// 8 consecutive bf16 at a 16-byte aligned address, as fp32.
__device__ __forceinline__ void Load8(const bf16* p, float (&x)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    x[2 * i] = f.x;
    x[2 * i + 1] = f.y;
  }
}

// Rounds 8 fp32 values to bf16 (nearest even) and stores them at a 16-byte aligned address.
__device__ __forceinline__ void Store8(bf16* p, const float (&x)[8]) {
  uint4 raw;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(x[2 * i], x[2 * i + 1]);
  *reinterpret_cast<uint4*>(p) = raw;
}

// Butterfly reductions over a full warp: every lane ends with the same bits (each step adds the
// same two operands on both lanes, and fp32 addition is commutative).
__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  }
  return v;
}

// Sum over the block of every thread's `v`, returned to every thread. blockDim.x must be a multiple
// of 32; `shared` holds >= 32 floats and may be reused by the next call (the leading barrier
// protects it). Fixed order: warp sums, then the warp sums in warp order.
__device__ __forceinline__ float BlockSum(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = WarpSum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  return WarpSum(lane < warps ? shared[lane] : 0.0f);
}

// Two sums at once (one pair of barriers); `shared` holds >= 64 floats.
__device__ __forceinline__ void BlockSum2(float& a, float& b, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  a = WarpSum(a);
  b = WarpSum(b);
  __syncthreads();
  if (lane == 0) {
    shared[warp] = a;
    shared[32 + warp] = b;
  }
  __syncthreads();
  a = WarpSum(lane < warps ? shared[lane] : 0.0f);
  b = WarpSum(lane < warps ? shared[32 + lane] : 0.0f);
}

__device__ __forceinline__ float BlockMax(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  return WarpMax(lane < warps ? shared[lane] : -INFINITY);
}

}  // namespace cairn::runtime::cuda

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_DEVICE_UTILS_CUH_
