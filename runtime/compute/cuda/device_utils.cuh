// runtime/compute/cuda/device_utils.cuh — small device helpers shared by the kernels (private).
//
// * 16-byte vectors of 8 bf16 (Load8 / Store8) converted to / from fp32 registers;
// * warp and block reductions in a fixed order (so that every thread of a block gets the same bits,
//   run after run: the deterministic reductions build on these);
// * grid sizing for grid-stride loops;
// * Launch (every kernel launch goes through it) and DynamicShared (the block's dynamic shared
//   memory): under nvcc the triple-chevron launch and `extern __shared__`; in the CPU emulation
//   build (emulation/cuda_emulation.h, CAIRN_CUDA_EMULATION) the SIMT emulator, so that the same
//   kernels run in CI (cuda_backend_emulation_test.cc).
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_DEVICE_UTILS_CUH_
#define CAIRN_RUNTIME_COMPUTE_CUDA_DEVICE_UTILS_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <utility>

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

// Launches `kernel` on `stream` and returns the launch's error (cudaGetLastError()).
template <typename... Params, typename... Args>
inline cudaError_t Launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                          cudaStream_t stream, Args&&... args) {
#if defined(CAIRN_CUDA_EMULATION)
  return emulator::LaunchKernel(kernel, grid, block, shared_bytes, stream,
                                std::forward<Args>(args)...);
#else
  // clang-format off
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
  // clang-format on
  return cudaGetLastError();
#endif
}

// The block's dynamic shared memory (the launch's shared_bytes), 128-byte aligned.
template <typename T>
__device__ __forceinline__ T* DynamicShared() {
#if defined(CAIRN_CUDA_EMULATION)
  return reinterpret_cast<T*>(emulator::DynamicSharedMemory());
#else
  extern __shared__ __align__(128) unsigned char cairn_dynamic_shared[];
  return reinterpret_cast<T*>(cairn_dynamic_shared);
#endif
}

__device__ __forceinline__ float ToFloat(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 ToBf16(float x) { return __float2bfloat16_rn(x); }

// fp32 with the given bits / the bits of two bf16 packed in 32 bits (low half first). Bit
// arithmetic rather than type punning through pointers, which is undefined behaviour in C++ (and
// miscompiled by the host compiler of the CPU emulation build).
__host__ __device__ __forceinline__ float FloatFromBits(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  memcpy(&f, &bits, 4);
  return f;
#endif
}
__host__ __device__ __forceinline__ uint32_t PackTwoBf16(float lo, float hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}

// 8 consecutive bf16 at a 16-byte aligned address, as fp32 (bf16 -> fp32 is exact: the bf16 bits
// are the top half of the fp32).
__device__ __forceinline__ void Load8(const bf16* p, float (&x)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    x[2 * i] = FloatFromBits(words[i] << 16);
    x[2 * i + 1] = FloatFromBits(words[i] & 0xffff0000u);
  }
}

// Rounds 8 fp32 values to bf16 (nearest even) and stores them at a 16-byte aligned address.
__device__ __forceinline__ void Store8(bf16* p, const float (&x)[8]) {
  uint4 raw;
  raw.x = PackTwoBf16(x[0], x[1]);
  raw.y = PackTwoBf16(x[2], x[3]);
  raw.z = PackTwoBf16(x[4], x[5]);
  raw.w = PackTwoBf16(x[6], x[7]);
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
