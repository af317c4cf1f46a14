// runtime/compute/cuda/simt_emulator.h — runs CUDA kernel code on the CPU, for tests (private to
// runtime/compute/cuda; host compiler only).
//
// Two users: flash_emulator.h (the flash attention kernels' primitives, with a shared-memory race
// detector) and cuda_emulation.h (threadIdx, __syncthreads, shuffles, ... for the plain CUDA
// kernels, so that the whole CudaBackend runs on the CPU: cuda_backend_emulation_test.cc).
//
//   std::vector<std::string> errors;
//   emulator::RunGrid({grid_x, grid_y, 1}, {threads, 1, 1}, smem_bytes, CopyMode::kAtWait, &errors,
//                     [&] { MyKernelBody(...); });   // reads ThreadIdx(), BlockIdx(), ...
//
// How it runs: blocks one after another; in a block, one fiber per CUDA thread on the calling OS
// thread (entered once through ucontext, switched with _setjmp/_longjmp), run round-robin, each
// until its next barrier. That schedule is adversarial to a missing barrier: the first thread runs
// ahead through the code the barrier should have held back (reading what others have not written
// yet, overwriting what they have not read yet). __syncthreads is a block barrier; a
// warp-collective operation (shuffle, ldmatrix, mma, __syncwarp) is a warp barrier around an
// exchange of the lanes' operands. Threads are grouped into warps by linear thread index, as on the
// GPU.
//
// What it checks: barrier divergence (no fiber can run and not all are done: the block is abandoned
// and reported). flash_emulator.h adds shared-memory bounds, alignment, uninitialised-read and race
// checks for the accesses that go through its primitives.
//
// The including file must be built without _FORTIFY_SOURCE (its longjmp check rejects jumps between
// stacks): #undef it before any include.
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_SIMT_EMULATOR_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_SIMT_EMULATOR_H_

#include <setjmp.h>
#include <ucontext.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cairn::runtime::cuda::emulator {

struct Index3 {
  unsigned int x = 0, y = 0, z = 0;
};

enum class CopyMode { kAtIssue, kAtWait };

struct Fiber {
  enum class State { kRunnable, kBlockBarrier, kWarpBarrier, kDone };
  ucontext_t context;  // for the first entry only
  jmp_buf jump;
  bool started = false;
  std::unique_ptr<char[]> stack;
  int tid = 0;
  State state = State::kRunnable;
  // Warp-collective operands.
  uint32_t words[6] = {0, 0, 0, 0, 0, 0};
  float floats[4] = {0, 0, 0, 0};
  double value = 0;
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
  Index3 grid, block, block_index;
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
  std::function<void()> body;
};

inline Machine*& Current() {
  static Machine* machine = nullptr;
  return machine;
}

inline Fiber& Self() { return Current()->fibers[static_cast<size_t>(Current()->current)]; }

inline void Error(const std::string& message) {
  Machine* m = Current();
  if (m->errors != nullptr && m->errors->size() < 32) {
    m->errors->push_back("block (" + std::to_string(m->block_index.x) + ", " +
                         std::to_string(m->block_index.y) + ") thread " +
                         std::to_string(m->fibers[static_cast<size_t>(m->current)].tid) + ": " +
                         message);
  }
}

inline Index3 ThreadIdx() {
  const Machine* m = Current();
  const unsigned int t = static_cast<unsigned int>(Self().tid);
  return Index3{t % m->block.x, (t / m->block.x) % m->block.y, t / (m->block.x * m->block.y)};
}
inline Index3 BlockIdx() { return Current()->block_index; }
inline Index3 BlockDim() { return Current()->block; }
inline Index3 GridDim() { return Current()->grid; }

inline void Yield(Fiber::State state) {
  Machine* m = Current();
  Fiber& f = m->fibers[static_cast<size_t>(m->current)];
  f.state = state;
  if (_setjmp(f.jump) == 0) _longjmp(m->scheduler, 1);
}

inline void BlockBarrier() { Yield(Fiber::State::kBlockBarrier); }
inline void WarpBarrier() { Yield(Fiber::State::kWarpBarrier); }

// The fiber of lane `lane` of the calling thread's warp.
inline Fiber& Lane(int lane) {
  Machine* m = Current();
  const int base = Self().tid & ~31;
  return m->fibers[static_cast<size_t>(base + lane)];
}

// Value of lane `source` (of the calling warp) for a shuffle: every lane of the warp must call.
inline double Exchange(double value, int source) {
  Self().value = value;
  WarpBarrier();
  const double r = Lane(source & 31).value;
  WarpBarrier();
  return r;
}

inline void Trampoline() {
  Machine* m = Current();
  m->body();
  Fiber& f = m->fibers[static_cast<size_t>(m->current)];
  if (!f.open.empty() || !f.groups.empty()) Error("exits with cp.async copies not waited for");
  f.state = Fiber::State::kDone;
  _longjmp(m->scheduler, 1);
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
  if (m.smem_bytes > 0) std::memset(m.smem, 0xff, m.smem_bytes);  // NaN: unwritten data shows
  while (true) {
    bool ran = false;
    for (int t = 0; t < m.threads; ++t) {
      if (m.fibers[static_cast<size_t>(t)].state != Fiber::State::kRunnable) continue;
      Resume(m, t);
      ran = true;
    }
    if (ran) continue;
    // Nobody can run: release every complete warp barrier, else a complete block barrier.
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

// Runs `body` for every thread of every block of the grid (blocks in x-fastest order).
inline void RunGrid(Index3 grid, Index3 block, size_t smem_bytes, CopyMode mode,
                    std::vector<std::string>* errors, std::function<void()> body) {
  std::vector<char> smem(smem_bytes + 16);
  Machine m;
  m.grid = grid;
  m.block = block;
  m.threads = static_cast<int>(block.x * block.y * block.z);
  m.smem = smem.data() + (16 - reinterpret_cast<uintptr_t>(smem.data()) % 16) % 16;
  m.smem_bytes = smem_bytes;
  m.mode = mode;
  m.errors = errors;
  m.body = std::move(body);
  Machine* outer = Current();
  Current() = &m;
  for (unsigned int z = 0; z < grid.z; ++z) {
    for (unsigned int y = 0; y < grid.y; ++y) {
      for (unsigned int x = 0; x < grid.x; ++x) {
        m.block_index = Index3{x, y, z};
        RunBlock(m);
      }
    }
  }
  Current() = outer;
}

inline char* DynamicSharedMemory() { return Current()->smem; }

}  // namespace cairn::runtime::cuda::emulator

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_SIMT_EMULATOR_H_
