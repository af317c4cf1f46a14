// runtime/compute/cuda/flash_primitives.h — the machine primitives the flash attention kernels
// (attention_flash_impl.h) are written against (private to runtime/compute/cuda).
//
// Two implementations with the same names and semantics:
//   * compiled by nvcc (the default): inline PTX for sm_80+ — ldmatrix, mma.sync m16n8k16 bf16
//     with fp32 accumulators, cp.async with zero fill, warp shuffles, __syncthreads;
//   * with CAIRN_FLASH_EMULATE defined, compiled by the host compiler: flash_emulator.h, a SIMT
//     emulator that runs the same kernel code on the CPU (one fiber per CUDA thread,
//     warp-collective operations exchanged lane by lane, cp.async deferred to its wait, and a
//     shared-memory race detector), so that the kernels' index math is tested in CI without a GPU
//     (attention_flash_emulation_test.cc).
//
// Fragment layouts (PTX ISA, "mma.m16n8k16" for .bf16; g = lane / 4, c = lane % 4; a register
// holds two bf16, the lower column / row in the low half):
//   A (16 x 16, row-major): a0 = A[g][2c..2c+1], a1 = A[g+8][2c..], a2 = A[g][2c+8..],
//                           a3 = A[g+8][2c+8..]
//   B (16 x 8, "col"):      b0 = B[2c..2c+1][g], b1 = B[2c+8..2c+9][g]
//   C/D (16 x 8, fp32):     d0, d1 = D[g][2c], D[g][2c+1]; d2, d3 = D[g+8][2c], D[g+8][2c+1]
// ldmatrix.x4: lanes 8i..8i+7 give the row addresses of 8 x 8 matrix i; lane l receives in r[i]
// the elements (l / 4, 2 (l % 4)..+1) of matrix i, or with .trans of its transpose.
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_FLASH_PRIMITIVES_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_FLASH_PRIMITIVES_H_

#if defined(CAIRN_FLASH_EMULATE)

#include "runtime/compute/cuda/flash_emulator.h"

#else  // nvcc

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#define FLASH_INLINE __device__ __forceinline__
#define FLASH_UNROLL _Pragma("unroll")

namespace cairn::runtime::cuda::flash {

using bf16 = __nv_bfloat16;
using Vec16 = uint4;  // 16 bytes: 8 bf16

FLASH_INLINE int ThreadIndex() { return static_cast<int>(threadIdx.x); }
FLASH_INLINE void SyncThreads() { __syncthreads(); }
FLASH_INLINE float ShflXor(float v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask); }

FLASH_INLINE uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

FLASH_INLINE void LdMatrixX4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(smem)));
}

FLASH_INLINE void LdMatrixX4Trans(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(smem)));
}

// d += A (16 x 16 bf16) x B (16 x 8 bf16), fp32 accumulators.
FLASH_INLINE void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Copies 16 bytes global -> shared asynchronously; when !valid writes 16 zero bytes and reads
// nothing (`global` must still be a valid address: pass the tensor's base).
FLASH_INLINE void CpAsync16(void* smem, const void* global, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SharedAddress(smem)),
               "l"(global), "r"(src_bytes));
}
FLASH_INLINE void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most `kPending` of this thread's committed groups are still in flight.
template <int kPending>
FLASH_INLINE void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// Two floats as bf16 (round to nearest even), `lo` in the low half: one cvt.rn.bf16x2.f32 (its
// first source goes to the upper half).
FLASH_INLINE uint32_t PackBf16(float lo, float hi) {
  uint32_t packed;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(packed) : "f"(hi), "f"(lo));
  return packed;
}

// The two bf16 of a register as floats (low half in .x); exact.
FLASH_INLINE float2 UnpackBf16(uint32_t w) {
  return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}

FLASH_INLINE float ToFloat(bf16 x) { return __bfloat162float(x); }
FLASH_INLINE bf16 ToBf16(float x) { return __float2bfloat16_rn(x); }
FLASH_INLINE float Exp2(float x) { return exp2f(x); }
FLASH_INLINE float Log2(float x) { return log2f(x); }

// Shared memory accesses that are not ldmatrix / cp.async (the emulator checks them for races).
FLASH_INLINE void StoreShared32(void* smem, uint32_t v) { *static_cast<uint32_t*>(smem) = v; }
FLASH_INLINE Vec16 LoadShared16(const void* smem) { return *static_cast<const Vec16*>(smem); }
FLASH_INLINE void StoreSharedFloat(float* smem, float v) { *smem = v; }
FLASH_INLINE float LoadSharedFloat(const float* smem) { return *smem; }

// Global memory.
FLASH_INLINE void StoreGlobal16(void* global, Vec16 v) { *static_cast<Vec16*>(global) = v; }
FLASH_INLINE Vec16 LoadGlobal16(const void* global) { return *static_cast<const Vec16*>(global); }
FLASH_INLINE void AtomicAddFloat(float* global, float v) { atomicAdd(global, v); }

}  // namespace cairn::runtime::cuda::flash

#endif  // CAIRN_FLASH_EMULATE

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_FLASH_PRIMITIVES_H_
