#include "runtime/compute/arena.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/units.h"

namespace cairn::runtime {
namespace {

// Planning arenas hand out addresses from here: non-null, aligned, never dereferenced.
constexpr uintptr_t kPlanningBase = 1u << 20;

}  // namespace

ArenaBuffer& ArenaBuffer::operator=(ArenaBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    arena_ = o.arena_;
    offset_ = o.offset_;
    block_bytes_ = o.block_bytes_;
    data_ = o.data_;
    count_ = o.count_;
    dtype_ = o.dtype_;
    o.arena_ = nullptr;
    o.data_ = nullptr;
    o.count_ = 0;
    o.block_bytes_ = 0;
  }
  return *this;
}

void ArenaBuffer::Release() {
  if (arena_ != nullptr && block_bytes_ > 0) arena_->Free(offset_, block_bytes_);
  arena_ = nullptr;
  data_ = nullptr;
  count_ = 0;
  block_bytes_ = 0;
}

DeviceArena::DeviceArena(ComputeBackend* backend, void* base, int64_t capacity)
    : backend_(backend), base_(static_cast<char*>(base)), capacity_(capacity) {}

DeviceArena::~DeviceArena() {
  if (backend_ != nullptr && base_ != nullptr) backend_->Free(base_);
}

std::unique_ptr<DeviceArena> DeviceArena::ForPlanning() {
  return std::unique_ptr<DeviceArena>(new DeviceArena(
      nullptr, reinterpret_cast<void*>(kPlanningBase), std::numeric_limits<int64_t>::max()));
}

absl::StatusOr<std::unique_ptr<DeviceArena>> DeviceArena::Create(ComputeBackend* backend,
                                                                 int64_t capacity_bytes) {
  if (capacity_bytes < 0) return absl::InvalidArgumentError("arena capacity must be >= 0");
  void* base = nullptr;
  if (capacity_bytes > 0) {
    absl::StatusOr<void*> mem = backend->Allocate(capacity_bytes);
    if (!mem.ok()) {
      return absl::Status(mem.status().code(),
                          absl::StrCat("the plan needs ", FormatBytes(capacity_bytes),
                                       " of device memory per rank (planned before the first "
                                       "step): ",
                                       mem.status().message()));
    }
    base = *mem;
  }
  return std::unique_ptr<DeviceArena>(new DeviceArena(backend, base, capacity_bytes));
}

absl::StatusOr<ArenaBuffer> DeviceArena::Allocate(int64_t count, DType dtype) {
  ArenaBuffer b;
  b.dtype_ = dtype;
  if (count <= 0) return b;
  const int64_t bytes = count * static_cast<int64_t>(DTypeSize(dtype));
  const int64_t block = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  // Best fit among the free blocks below the top.
  auto best = free_.end();
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second >= block && (best == free_.end() || it->second < best->second)) best = it;
  }
  int64_t offset;
  if (best != free_.end()) {
    offset = best->first;
    const int64_t left = best->second - block;
    free_.erase(best);
    if (left > 0) free_[offset + block] = left;
  } else {
    // Grow at the top (free blocks never end at the top: Free lowers it instead).
    offset = top_;
    if (offset + block > capacity_) {
      return absl::InternalError(
          absl::StrCat("device arena exhausted: ", FormatBytes(block), " requested at offset ",
                       FormatBytes(offset), " of ", FormatBytes(capacity_),
                       " planned (the engine's allocations differ from its dry run)"));
    }
    top_ = offset + block;
    extent_ = std::max(extent_, top_);
  }
  live_ += block;
  peak_live_ = std::max(peak_live_, live_);
  b.arena_ = this;
  b.offset_ = offset;
  b.block_bytes_ = block;
  b.count_ = count;
  b.data_ = base_ + offset;
  return b;
}

void DeviceArena::Free(int64_t offset, int64_t bytes) {
  live_ -= bytes;
  auto next = free_.lower_bound(offset);
  // Merge with the following free block.
  if (next != free_.end() && offset + bytes == next->first) {
    bytes += next->second;
    next = free_.erase(next);
  }
  // Merge with the preceding one.
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      prev->second += bytes;
      offset = prev->first;
      bytes = prev->second;
      free_.erase(prev);
    }
  }
  if (offset + bytes == top_) {
    top_ = offset;  // the top shrinks; the extent remembers the maximum
    return;
  }
  free_[offset] = bytes;
}

}  // namespace cairn::runtime
