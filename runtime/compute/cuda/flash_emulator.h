// runtime/compute/cuda/flash_emulator.h — a SIMT emulator for the flash attention kernels: the
// primitives of flash_primitives.h for the host compiler (include flash_primitives.h with
// CAIRN_FLASH_EMULATE defined; test-only).
//
//   std::vector<std::string> errors = emulator::RunGrid(
//       grid_x, grid_y, /*threads=*/128, smem_bytes, emulator::CopyMode::kAtWait,
//       [&](int bx, int by, char* smem) { BackwardBlock<64>(args, ..., bx, by, smem); });
//   EXPECT_TRUE(errors.empty());
//
// How it runs: blocks one after another; in a block, one fiber per CUDA thread on the calling OS
// thread (entered once through ucontext, switched with _setjmp/_longjmp), scheduled round-robin,
// switching only at barriers. Build the including file without _FORTIFY_SOURCE (its longjmp check
// rejects jumps between stacks): #undef it before any include. __syncthreads is a block
// barrier; every warp-collective operation (shuffle, ldmatrix, mma) is two warp barriers around an
// exchange of the 32 lanes' operands, computed exactly as the PTX ISA defines the fragment layouts
// (flash_primitives.h). mma accumulates the 16 products of each output in fp32, in k order.
//
// What it checks (each finding is one error string; the run continues where it can):
//   * barrier divergence: no fiber can run and not all are done (a __syncthreads some threads skip,
//     a warp collective some lanes skip) — the block is abandoned;
//   * shared memory: accesses outside the block's dynamic shared memory, misaligned ldmatrix rows
//     or 16-byte accesses, reads of words nothing wrote in this block, and races: with an epoch per
//     block-barrier interval, a read of a word another thread wrote in the same epoch (RAW), a write
//     of a word another thread read or wrote in the same epoch (WAR, WAW);
//   * cp.async: with CopyMode::kAtWait the copy lands only when the issuing thread's wait_group
//     retires its group (a missing wait reads stale data); with kAtIssue it lands at once (a copy
//     into a buffer others still read is a race). Run both.
// Global memory is plain host memory (no checks); atomics are plain adds (fibers never switch
// inside one).
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_FLASH_EMULATOR_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_FLASH_EMULATOR_H_

#include <setjmp.h>
#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#define FLASH_INLINE inline
#define FLASH_UNROLL

namespace cairn::runtime::cuda::flash {

struct bf16 {
  uint16_t bits;
};
struct Vec16 {
  uint32_t x, y, z, w;
};
struct float2 {
  float x, y;
};

inline float ToFloat(bf16 v) {
  const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even (NaN stays NaN), as __float2bfloat16_rn.
inline bf16 ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
    return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  }
  return bf16{static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}
inline uint32_t PackBf16(float lo, float hi) {
  return static_cast<uint32_t>(ToBf16(lo).bits) | (static_cast<uint32_t>(ToBf16(hi).bits) << 16);
}
inline float2 UnpackBf16(uint32_t w) {
  return float2{ToFloat(bf16{static_cast<uint16_t>(w & 0xffffu)}),
                ToFloat(bf16{static_cast<uint16_t>(w >> 16)})};
}
inline float Exp2(float x) { return std::exp2(x); }
inline float Log2(float x) { return std::log2(x); }

namespace emulator {

enum class CopyMode { kAtIssue, kAtWait };

struct Fiber {
  enum class State { kRunnable, kBlockBarrier, kWarpBarrier, kDone };
  ucontext_t context;  // for the first entry only; switches use _setjmp/_longjmp (no syscall)
  jmp_buf jump;
  bool started = false;
  std::unique_ptr<char[]> stack;
  int tid = 0;
  State state = State::kRunnable;
  // Warp-collective operands.
  uint32_t words[6] = {0, 0, 0, 0, 0, 0};
  float floats[4] = {0, 0, 0, 0};
  const char* address = nullptr;
  // cp.async: committed groups (oldest first) and the open one.
  struct Copy {
    char* dst;
    const char* src;
    bool valid;
  };
  std::vector<std::vector<Copy>> groups;
  std::vector<Copy> open;
};

struct Shadow {
  int64_t write_epoch = -1;
  int writer = -1;
  int64_t read_epoch = -1;
  int reader = -1;  // -2: several threads
};

struct Machine {
  int threads = 0;
  char* smem = nullptr;
  size_t smem_bytes = 0;
  CopyMode mode = CopyMode::kAtWait;
  std::vector<Fiber> fibers;
  int current = 0;
  jmp_buf scheduler;
  int64_t epoch = 0;
  std::vector<Shadow> shadow;
  std::vector<std::string>* errors = nullptr;
  std::function<void(int, int, char*)> body;
  int block_x = 0, block_y = 0;
};

inline Machine*& Current() {
  static Machine* machine = nullptr;
  return machine;
}

inline void Error(const std::string& message) {
  Machine* m = Current();
  if (m->errors->size() < 32) {
    m->errors->push_back("block (" + std::to_string(m->block_x) + ", " +
                         std::to_string(m->block_y) + ") thread " +
                         std::to_string(m->fibers[m->current].tid) + ": " + message);
  }
}

inline Fiber& Self() { return Current()->fibers[Current()->current]; }

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

inline void Yield(Fiber::State state) {
  Machine* m = Current();
  Fiber& f = m->fibers[m->current];
  f.state = state;
  if (_setjmp(f.jump) == 0) _longjmp(m->scheduler, 1);
}

// Runs fiber t until it yields or finishes.
__attribute__((noinline)) inline void Resume(Machine& m, int t) {
  m.current = t;
  if (_setjmp(m.scheduler) == 0) {
    Fiber& f = m.fibers[static_cast<size_t>(t)];
    if (!f.started) {
      f.started = true;
      setcontext(&f.context);
    }
    _longjmp(f.jump, 1);
  }
}

inline void WarpBarrier() { Yield(Fiber::State::kWarpBarrier); }

inline Fiber& Lane(int lane) {
  Machine* m = Current();
  const int base = m->fibers[m->current].tid & ~31;
  return m->fibers[base + lane];
}

inline void Trampoline() {
  Machine* m = Current();
  m->body(m->block_x, m->block_y, m->smem);
  Fiber& f = m->fibers[m->current];
  if (!f.open.empty() || !f.groups.empty()) Error("exits with cp.async copies not waited for");
  f.state = Fiber::State::kDone;
  _longjmp(m->scheduler, 1);
}

// Runs one block to completion (or to a deadlock, which is reported).
inline void RunBlock(Machine& m) {
  constexpr size_t kStack = 256 << 10;
  m.fibers.clear();
  m.fibers.resize(static_cast<size_t>(m.threads));
  for (int t = 0; t < m.threads; ++t) {
    Fiber& f = m.fibers[static_cast<size_t>(t)];
    f.tid = t;
    f.stack.reset(new char[kStack]);
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.get();
    f.context.uc_stack.ss_size = kStack;
    f.context.uc_link = nullptr;
    makecontext(&f.context, &Trampoline, 0);
  }
  m.epoch = 0;
  m.shadow.assign((m.smem_bytes + 3) / 4, Shadow());
  std::memset(m.smem, 0xff, m.smem_bytes);  // NaN bf16 everywhere: unwritten data shows
  while (true) {
    bool ran = false;
    for (int t = 0; t < m.threads; ++t) {
      if (m.fibers[static_cast<size_t>(t)].state != Fiber::State::kRunnable) continue;
      Resume(m, t);
      ran = true;
    }
    if (ran) continue;
    // Nobody can run: release a complete warp barrier, else a complete block barrier.
    bool released = false;
    for (int w = 0; w * 32 < m.threads; ++w) {
      bool all = true;
      for (int l = 0; l < 32 && w * 32 + l < m.threads; ++l) {
        all = all && m.fibers[static_cast<size_t>(w * 32 + l)].state == Fiber::State::kWarpBarrier;
      }
      if (all) {
        for (int l = 0; l < 32 && w * 32 + l < m.threads; ++l) {
          m.fibers[static_cast<size_t>(w * 32 + l)].state = Fiber::State::kRunnable;
        }
        released = true;
      }
    }
    if (released) continue;
    int at_block = 0, done = 0;
    for (const Fiber& f : m.fibers) {
      at_block += f.state == Fiber::State::kBlockBarrier;
      done += f.state == Fiber::State::kDone;
    }
    if (done == m.threads) return;
    if (at_block == m.threads) {
      ++m.epoch;
      for (Fiber& f : m.fibers) f.state = Fiber::State::kRunnable;
      continue;
    }
    m.current = 0;
    Error("deadlock: " + std::to_string(at_block) + " threads at __syncthreads, " +
          std::to_string(done) + " done, the rest at a warp-collective operation");
    return;
  }
}

// Runs body(block_x, block_y, smem) for every block; returns what the checks found.
inline std::vector<std::string> RunGrid(int grid_x, int grid_y, int threads, size_t smem_bytes,
                                        CopyMode mode,
                                        const std::function<void(int, int, char*)>& body) {
  std::vector<std::string> errors;
  std::vector<char> smem(smem_bytes + 16);
  Machine m;
  m.threads = threads;
  m.smem = smem.data() + (16 - reinterpret_cast<uintptr_t>(smem.data()) % 16) % 16;
  m.smem_bytes = smem_bytes;
  m.mode = mode;
  m.errors = &errors;
  m.body = body;
  Current() = &m;
  for (int by = 0; by < grid_y; ++by) {
    for (int bx = 0; bx < grid_x; ++bx) {
      m.block_x = bx;
      m.block_y = by;
      RunBlock(m);
    }
  }
  Current() = nullptr;
  return errors;
}

inline void DoCopy(const Fiber::Copy& copy, int tid) {
  uint8_t bytes[16] = {0};
  if (copy.valid) std::memcpy(bytes, copy.src, 16);
  WriteShared(copy.dst, bytes, 16, tid, "cp.async");
}

}  // namespace emulator

// ---- The primitives (flash_primitives.h) ------------------------------------------------------------

inline int ThreadIndex() { return emulator::Self().tid; }
inline void SyncThreads() { emulator::Yield(emulator::Fiber::State::kBlockBarrier); }

inline float ShflXor(float v, int mask) {
  emulator::Self().floats[0] = v;
  emulator::WarpBarrier();
  const float r = emulator::Lane((ThreadIndex() & 31) ^ mask).floats[0];
  emulator::WarpBarrier();
  return r;
}

namespace emulator {
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
}  // namespace emulator

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
