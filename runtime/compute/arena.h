// runtime/compute/arena.h — one device allocation per rank, carved into buffers by a
// deterministic allocator, so that a rank's peak memory is known before its first step.
//
// Overview
// --------
// The engine never allocates from the backend directly. It runs one dry step first on a planning
// arena (no memory behind it) with a NullBackend and NullCommunicators, which records exactly the
// allocations and frees a real step makes; the planning arena's extent (the highest byte any buffer
// reached) is then allocated once from the real backend, and the real steps replay the same
// sequence on the same allocator, so every buffer lands at the offset the dry run planned and the
// arena can never run out. An allocation beyond the planned capacity is a bug (the sequence
// changed) and returns Internal rather than corrupting memory.
//
//   CAIRN_ASSIGN_OR_RETURN(DeviceArena arena, DeviceArena::Create(&backend, planned_bytes));
//   CAIRN_ASSIGN_OR_RETURN(ArenaBuffer x, arena.Allocate(n, DType::kFloat32));
//   CAIRN_RETURN_IF_ERROR(backend.Zero(x.data(), x.bytes()));
//   x.Release();                                   // or let it go out of scope
//
// The allocator: 256-byte aligned blocks, best fit among free blocks (smallest that fits, lowest
// offset on ties), else the end of the arena grows; neighbouring free blocks merge. Given the same
// sequence of allocations and frees it returns the same offsets, which is what the replay needs.
// Not thread-safe: one engine thread allocates.
#ifndef CAIRN_RUNTIME_COMPUTE_ARENA_H_
#define CAIRN_RUNTIME_COMPUTE_ARENA_H_

#include <cstdint>
#include <map>
#include <memory>

#include "absl/status/statusor.h"
#include "runtime/compute/compute_backend.h"
#include "runtime/dtype.h"

namespace cairn::runtime {

class DeviceArena;

// A block of an arena holding `count` elements of `dtype`. Movable; frees itself when destroyed.
// An empty ArenaBuffer (default-constructed, moved-from or released) has data() == nullptr.
class ArenaBuffer {
 public:
  ArenaBuffer() = default;
  ~ArenaBuffer() { Release(); }
  ArenaBuffer(ArenaBuffer&& o) noexcept { *this = std::move(o); }
  ArenaBuffer& operator=(ArenaBuffer&& o) noexcept;
  ArenaBuffer(const ArenaBuffer&) = delete;
  ArenaBuffer& operator=(const ArenaBuffer&) = delete;

  void* data() const { return data_; }
  float* f32() const { return static_cast<float*>(data_); }
  int32_t* i32() const { return static_cast<int32_t*>(data_); }
  // `elements` elements into the buffer (in its dtype).
  void* at(int64_t elements) const {
    return static_cast<char*>(data_) + elements * static_cast<int64_t>(DTypeSize(dtype_));
  }
  int64_t count() const { return count_; }
  int64_t bytes() const { return count_ * static_cast<int64_t>(DTypeSize(dtype_)); }
  DType dtype() const { return dtype_; }
  bool empty() const { return data_ == nullptr; }
  // Returns the block to its arena now.
  void Release();

 private:
  friend class DeviceArena;
  DeviceArena* arena_ = nullptr;
  int64_t offset_ = 0;
  int64_t block_bytes_ = 0;
  void* data_ = nullptr;
  int64_t count_ = 0;
  DType dtype_ = DType::kFloat32;
};

class DeviceArena {
 public:
  // An arena with no memory behind it, for dry runs: any size fits, data() pointers are distinct
  // non-null addresses that must never be dereferenced (only a NullBackend sees them).
  static std::unique_ptr<DeviceArena> ForPlanning();
  // An arena of `capacity_bytes` allocated once from `backend` (its ResourceExhausted, with the
  // backend's numbers, when it does not fit). Frees it when destroyed.
  static absl::StatusOr<std::unique_ptr<DeviceArena>> Create(ComputeBackend* backend,
                                                             int64_t capacity_bytes);
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  // `count` elements of `dtype` (count >= 0; 0 gives an empty buffer). Internal when a backed
  // arena's capacity is exceeded (the allocation sequence differs from the dry run's).
  absl::StatusOr<ArenaBuffer> Allocate(int64_t count, DType dtype);

  bool planning() const { return backend_ == nullptr; }
  int64_t capacity_bytes() const { return capacity_; }
  // Highest byte any block reached: what a real arena must hold for the same sequence.
  int64_t extent_bytes() const { return extent_; }
  // Bytes in live blocks now, and their maximum since ResetPeak (without fragmentation).
  int64_t live_bytes() const { return live_; }
  int64_t peak_live_bytes() const { return peak_live_; }
  void ResetPeak() { peak_live_ = live_; }

  static constexpr int64_t kAlignment = 256;

 private:
  DeviceArena(ComputeBackend* backend, void* base, int64_t capacity);
  friend class ArenaBuffer;
  void Free(int64_t offset, int64_t bytes);

  ComputeBackend* backend_ = nullptr;  // null: planning
  char* base_ = nullptr;
  int64_t capacity_ = 0;
  int64_t top_ = 0;  // end of the highest block handed out so far
  int64_t extent_ = 0;
  int64_t live_ = 0;
  int64_t peak_live_ = 0;
  std::map<int64_t, int64_t> free_;  // offset -> bytes, below top_
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMPUTE_ARENA_H_
