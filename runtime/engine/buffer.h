// runtime/engine/buffer.h — host buffers with exact memory accounting.
//
// Every tensor the engine keeps (parameters, gradients, optimizer states, saved activations,
// working buffers) is a Buffer registered with the rank's MemoryTracker, so the per-rank peak the
// engine reports is exact and can be compared with the planner's prediction.
//
//   MemoryTracker mem;
//   Buffer x(&mem, 1024);          // 4 KiB counted
//   x.data()[0] = 1.0f;
//   mem.peak_bytes();              // >= 4096
#ifndef CAIRN_RUNTIME_ENGINE_BUFFER_H_
#define CAIRN_RUNTIME_ENGINE_BUFFER_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

namespace cairn::runtime {

// Current and peak bytes of live buffers. Thread-safe.
class MemoryTracker {
 public:
  void Add(int64_t bytes) {
    const int64_t now = current_.fetch_add(bytes) + bytes;
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
  }
  void Sub(int64_t bytes) { current_.fetch_sub(bytes); }
  int64_t current_bytes() const { return current_.load(); }
  int64_t peak_bytes() const { return peak_.load(); }
  void ResetPeak() { peak_.store(current_.load()); }

 private:
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> peak_{0};
};

// A zero-initialised float buffer counted by a tracker (may be null: not counted). Movable.
class Buffer {
 public:
  Buffer() = default;
  Buffer(MemoryTracker* tracker, int64_t count) : tracker_(tracker), data_(count, 0.0f) {
    if (tracker_) tracker_->Add(bytes());
  }
  ~Buffer() { Release(); }
  Buffer(Buffer&& o) noexcept : tracker_(o.tracker_), data_(std::move(o.data_)) {
    o.tracker_ = nullptr;
    o.data_.clear();
  }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      Release();
      tracker_ = o.tracker_;
      data_ = std::move(o.data_);
      o.tracker_ = nullptr;
      o.data_.clear();
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  int64_t size() const { return static_cast<int64_t>(data_.size()); }
  int64_t bytes() const { return size() * static_cast<int64_t>(sizeof(float)); }
  bool empty() const { return data_.empty(); }
  void Zero() { std::fill(data_.begin(), data_.end(), 0.0f); }
  // Frees the memory now (the buffer becomes empty).
  void Release() {
    if (tracker_ && !data_.empty()) tracker_->Sub(bytes());
    data_.clear();
    data_.shrink_to_fit();
  }

 private:
  MemoryTracker* tracker_ = nullptr;
  std::vector<float> data_;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_ENGINE_BUFFER_H_
