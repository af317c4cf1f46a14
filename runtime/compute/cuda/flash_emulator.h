// runtime/compute/cuda/flash_emulator.h — a SIMT emulator for the flash attention kernels: the
// primitives of flash_primitives.h for the host compiler (include flash_primitives.h with
// CAIRN_FLASH_EMULATE defined; test-only).
//
//   std::vector<std::string> errors = emulator::RunGrid(
//       grid_x, grid_y, /*threads=*/128, smem_bytes, emulator::CopyMode::kAtWait,
//       [&](int bx, int by, char* smem) { BackwardBlock<64>(args, ..., bx, by, smem); });
//   EXPECT_TRUE(errors.empty());
//
// The machine (fibers, barriers, warps) is simt_emulator.h's. Every warp-collective primitive
// exchanges the 32 lanes' operands and computes exactly what the PTX ISA defines for the fragment
// layouts (flash_primitives.h); mma accumulates the 16 products of each output in fp32, in k order.
//
// What it checks (each finding is one error string; the run continues where it can):
//   * barrier divergence (simt_emulator.h);
//   * shared memory: accesses outside the block's dynamic shared memory, misaligned ldmatrix rows
//     or 16-byte accesses, reads of words nothing wrote in this block, and races: with an epoch per
//     block-barrier interval, a read of a word another thread wrote in the same epoch (RAW), a
//     write of a word another thread read or wrote in the same epoch (WAR, WAW);
//   * cp.async: with CopyMode::kAtWait the copy lands only when the issuing thread's wait_group
//     retires its group (a missing wait reads stale data); with kAtIssue it lands at once (a copy
//     into a buffer others still read is a race). Run both.
// Global memory is plain host memory (no checks); atomics are plain adds (fibers never switch
// inside one).
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_FLASH_EMULATOR_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_FLASH_EMULATOR_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/compute/cuda/simt_emulator.h"

#define FLASH_INLINE inline
#define FLASH_UNROLL

namespace cairn::runtime::cuda::flash {

#if defined(CAIRN_CUDA_EMULATION)
// The whole-backend emulation build has the CUDA headers: the kernels' pointers are __nv_bfloat16.
using bf16 = __nv_bfloat16;
using Vec16 = uint4;
using float2 = ::float2;
#else
struct bf16 {
  uint16_t bits;
};
struct Vec16 {
  uint32_t x, y, z, w;
};
struct float2 {
  float x, y;
};
#endif

inline uint16_t Bits(bf16 v) {
  uint16_t bits;
  std::memcpy(&bits, &v, 2);
  return bits;
}
inline bf16 FromBits(uint16_t bits) {
  bf16 v;
  std::memcpy(&v, &bits, 2);
  return v;
}
inline float ToFloat(bf16 v) {
  const uint32_t u = static_cast<uint32_t>(Bits(v)) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even (NaN stays NaN), as __float2bfloat16_rn.
inline bf16 ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
    return FromBits(static_cast<uint16_t>((u >> 16) | 0x0040u));
  }
  return FromBits(static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16));
}
inline uint32_t PackBf16(float lo, float hi) {
  return static_cast<uint32_t>(Bits(ToBf16(lo))) | (static_cast<uint32_t>(Bits(ToBf16(hi))) << 16);
}
inline float2 UnpackBf16(uint32_t w) {
  float2 out;
  out.x = ToFloat(FromBits(static_cast<uint16_t>(w & 0xffffu)));
  out.y = ToFloat(FromBits(static_cast<uint16_t>(w >> 16)));
  return out;
}
inline float Exp2(float x) { return std::exp2(x); }
inline float Log2(float x) { return std::log2(x); }

}  // namespace cairn::runtime::cuda::flash

namespace cairn::runtime::cuda::emulator {

// Checks that [p, p + bytes) lies in shared memory; returns the first word's index or -1.
inline int64_t SharedWord(const void* p, size_t bytes, const char* what) {
  Machine* m = Current();
  const char* c = static_cast<const char*>(p);
  if (c < m->smem || c + bytes > m->smem + m->smem_bytes) {
    Error(std::string(what) + ": address outside shared memory");
    return -1;
  }
  const size_t offset = static_cast<size_t>(c - m->smem);
  if (offset % (bytes < 4 ? bytes : 4) != 0) {
    Error(std::string(what) + ": misaligned shared access");
    return -1;
  }
  return static_cast<int64_t>(offset / 4);
}

inline void NoteRead(int64_t word, int tid, const char* what) {
  Machine* m = Current();
  Shadow& s = m->shadow[static_cast<size_t>(word)];
  if (s.write_epoch < 0) Error(std::string(what) + ": reads shared memory nothing wrote");
  if (s.write_epoch == m->epoch && s.writer != tid) {
    Error(std::string(what) + ": race (reads a word thread " + std::to_string(s.writer) +
          " wrote since the last barrier)");
  }
  if (s.read_epoch != m->epoch) {
    s.read_epoch = m->epoch;
    s.reader = tid;
  } else if (s.reader != tid) {
    s.reader = -2;
  }
}

inline void NoteWrite(int64_t word, int tid, const char* what) {
  Machine* m = Current();
  Shadow& s = m->shadow[static_cast<size_t>(word)];
  if (s.write_epoch == m->epoch && s.writer != tid) {
    Error(std::string(what) + ": race (writes a word thread " + std::to_string(s.writer) +
          " wrote since the last barrier)");
  }
  if (s.read_epoch == m->epoch && s.reader != tid) {
    Error(std::string(what) + ": race (writes a word another thread read since the last barrier)");
  }
  s.write_epoch = m->epoch;
  s.writer = tid;
}

// Shared-memory reads and writes of `bytes` (a multiple of 4, or 2 inside one word) by `tid`.
inline bool ReadShared(void* dst, const void* src, size_t bytes, int tid, const char* what) {
  const int64_t word = SharedWord(src, bytes, what);
  if (word < 0) {
    std::memset(dst, 0, bytes);
    return false;
  }
  for (size_t w = 0; w < (bytes + 3) / 4; ++w) NoteRead(word + static_cast<int64_t>(w), tid, what);
  std::memcpy(dst, src, bytes);
  return true;
}
inline void WriteShared(void* dst, const void* src, size_t bytes, int tid, const char* what) {
  const int64_t word = SharedWord(dst, bytes, what);
  if (word < 0) return;
  for (size_t w = 0; w < (bytes + 3) / 4; ++w) {
    NoteWrite(word + static_cast<int64_t>(w), tid, what);
  }
  std::memcpy(dst, src, bytes);
}

// Runs body(block_x, block_y, smem) for every block of a 2-D grid of `threads`-thread blocks;
// returns what the checks found.
inline std::vector<std::string> RunGrid(int grid_x, int grid_y, int threads, size_t smem_bytes,
                                        CopyMode mode,
                                        const std::function<void(int, int, char*)>& body) {
  std::vector<std::string> errors;
  RunGrid(Index3{static_cast<unsigned int>(grid_x), static_cast<unsigned int>(grid_y), 1},
          Index3{static_cast<unsigned int>(threads), 1, 1}, smem_bytes, mode, &errors, [&body] {
            const Index3 b = BlockIdx();
            body(static_cast<int>(b.x), static_cast<int>(b.y), DynamicSharedMemory());
          });
  return errors;
}

// ldmatrix.x4: lane l receives in r[i] two b16 of matrix i: without .trans row l / 4, columns
// 2 (l % 4) and +1 (row address from lane 8 i + l / 4); with .trans rows 2 (l % 4) and +1, column
// l / 4 (row addresses from lanes 8 i + 2 (l % 4) and +1).
inline void LdMatrix(uint32_t (&r)[4], const void* smem, bool trans) {
  Fiber& self = Self();
  self.address = static_cast<const char*>(smem);
  if (SharedWord(smem, 16, "ldmatrix row address") >= 0 &&
      (reinterpret_cast<uintptr_t>(smem) - reinterpret_cast<uintptr_t>(Current()->smem)) % 16 !=
          0) {
    Error("ldmatrix: row address not 16-byte aligned");
  }
  WarpBarrier();
  const int lane = self.tid & 31;
  for (int i = 0; i < 4; ++i) {
    uint16_t half[2];
    for (int e = 0; e < 2; ++e) {
      const char* row;
      int column;
      if (!trans) {
        row = Lane(8 * i + lane / 4).address;
        column = 2 * (lane % 4) + e;
      } else {
        row = Lane(8 * i + 2 * (lane % 4) + e).address;
        column = lane / 4;
      }
      ReadShared(&half[e], row + 2 * column, 2, self.tid, "ldmatrix");
    }
    r[i] = static_cast<uint32_t>(half[0]) | (static_cast<uint32_t>(half[1]) << 16);
  }
  WarpBarrier();
}

inline void DoCopy(const Fiber::Copy& copy, int tid) {
  uint8_t bytes[16] = {0};
  if (copy.valid) std::memcpy(bytes, copy.src, 16);
  WriteShared(copy.dst, bytes, 16, tid, "cp.async");
}

}  // namespace cairn::runtime::cuda::emulator

namespace cairn::runtime::cuda::flash {

// ---- The primitives (flash_primitives.h)
// ------------------------------------------------------------

inline int ThreadIndex() { return emulator::Self().tid; }
inline void SyncThreads() { emulator::BlockBarrier(); }

inline float ShflXor(float v, int mask) {
  return static_cast<float>(emulator::Exchange(v, (ThreadIndex() & 31) ^ mask));
}

inline void LdMatrixX4(uint32_t (&r)[4], const void* smem) { emulator::LdMatrix(r, smem, false); }
inline void LdMatrixX4Trans(uint32_t (&r)[4], const void* smem) {
  emulator::LdMatrix(r, smem, true);
}

inline void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  emulator::Fiber& self = emulator::Self();
  for (int i = 0; i < 4; ++i) self.words[i] = a[i];
  self.words[4] = b0;
  self.words[5] = b1;
  for (int i = 0; i < 4; ++i) self.floats[i] = d[i];
  emulator::WarpBarrier();
  float A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    const emulator::Fiber& f = emulator::Lane(l);
    const int g = l / 4, c = l % 4;
    const float2 a0 = UnpackBf16(f.words[0]), a1 = UnpackBf16(f.words[1]),
                 a2 = UnpackBf16(f.words[2]), a3 = UnpackBf16(f.words[3]);
    A[g][2 * c] = a0.x, A[g][2 * c + 1] = a0.y;
    A[g + 8][2 * c] = a1.x, A[g + 8][2 * c + 1] = a1.y;
    A[g][2 * c + 8] = a2.x, A[g][2 * c + 9] = a2.y;
    A[g + 8][2 * c + 8] = a3.x, A[g + 8][2 * c + 9] = a3.y;
    const float2 bb0 = UnpackBf16(f.words[4]), bb1 = UnpackBf16(f.words[5]);
    B[2 * c][g] = bb0.x, B[2 * c + 1][g] = bb0.y;
    B[2 * c + 8][g] = bb1.x, B[2 * c + 9][g] = bb1.y;
    C[g][2 * c] = f.floats[0], C[g][2 * c + 1] = f.floats[1];
    C[g + 8][2 * c] = f.floats[2], C[g + 8][2 * c + 1] = f.floats[3];
  }
  const int lane = self.tid & 31, g = lane / 4, c = lane % 4;
  const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * c, 2 * c + 1, 2 * c, 2 * c + 1};
  float out[4];
  for (int e = 0; e < 4; ++e) {
    float acc = C[rows[e]][cols[e]];
    for (int k = 0; k < 16; ++k) acc += A[rows[e]][k] * B[k][cols[e]];
    out[e] = acc;
  }
  emulator::WarpBarrier();
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

inline void CpAsync16(void* smem, const void* global, bool valid) {
  emulator::Fiber& self = emulator::Self();
  const emulator::Fiber::Copy copy{static_cast<char*>(smem), static_cast<const char*>(global),
                                   valid};
  if (emulator::Current()->mode == emulator::CopyMode::kAtIssue) {
    emulator::DoCopy(copy, self.tid);
  } else {
    self.open.push_back(copy);
  }
}
inline void CpAsyncCommit() {
  emulator::Fiber& self = emulator::Self();
  self.groups.push_back(std::move(self.open));
  self.open.clear();
}
template <int kPending>
inline void CpAsyncWait() {
  emulator::Fiber& self = emulator::Self();
  while (static_cast<int>(self.groups.size()) > kPending) {
    for (const auto& copy : self.groups.front()) emulator::DoCopy(copy, self.tid);
    self.groups.erase(self.groups.begin());
  }
}

inline void StoreShared32(void* smem, uint32_t v) {
  emulator::WriteShared(smem, &v, 4, ThreadIndex(), "shared store");
}
inline Vec16 LoadShared16(const void* smem) {
  Vec16 v;
  emulator::ReadShared(&v, smem, 16, ThreadIndex(), "shared load");
  return v;
}
inline void StoreSharedFloat(float* smem, float v) {
  emulator::WriteShared(smem, &v, 4, ThreadIndex(), "shared store");
}
inline float LoadSharedFloat(const float* smem) {
  float v;
  emulator::ReadShared(&v, smem, 4, ThreadIndex(), "shared load");
  return v;
}

inline void StoreGlobal16(void* global, Vec16 v) { std::memcpy(global, &v, 16); }
inline Vec16 LoadGlobal16(const void* global) {
  Vec16 v;
  std::memcpy(&v, global, 16);
  return v;
}
inline void AtomicAddFloat(float* global, float v) { *global += v; }

}  // namespace cairn::runtime::cuda::flash

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_FLASH_EMULATOR_H_
