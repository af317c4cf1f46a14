#include "agent/probes/device_buffer.h"

#include <algorithm>

#include "common/status_macros.h"
#include "runtime/dtype.h"

namespace cairn::agent {
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_ != nullptr) backend_->Free(ptr_);
    backend_ = other.backend_;
    ptr_ = other.ptr_;
    count_ = other.count_;
    bytes_ = other.bytes_;
    other.ptr_ = nullptr;
    other.count_ = other.bytes_ = 0;
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ != nullptr) backend_->Free(ptr_);
}

absl::StatusOr<DeviceBuffer> DeviceBuffer::F32(runtime::ComputeBackend* backend, int64_t count,
                                               float value) {
  DeviceBuffer b;
  b.backend_ = backend;
  b.count_ = count;
  b.bytes_ = count * static_cast<int64_t>(sizeof(float));
  CAIRN_ASSIGN_OR_RETURN(b.ptr_, backend->Allocate(std::max<int64_t>(b.bytes_, 4)));
  // In chunks, so a large buffer needs no host copy of its size.
  constexpr int64_t kChunk = int64_t{4} << 20;
  const std::vector<float> host(std::min(count, kChunk), value);
  for (int64_t at = 0; at < count; at += kChunk) {
    const int64_t n = std::min(kChunk, count - at);
    CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(b.f32() + at, host.data(), n * sizeof(float)));
  }
  CAIRN_RETURN_IF_ERROR(backend->Synchronize());
  return b;
}

absl::StatusOr<DeviceBuffer> DeviceBuffer::Working(runtime::ComputeBackend* backend, int64_t count,
                                                   float value) {
  CAIRN_ASSIGN_OR_RETURN(DeviceBuffer staging, F32(backend, count, value));
  if (backend->working_dtype() == runtime::DType::kFloat32) return staging;
  DeviceBuffer b;
  b.backend_ = backend;
  b.count_ = count;
  b.bytes_ = count * static_cast<int64_t>(runtime::DTypeSize(backend->working_dtype()));
  CAIRN_ASSIGN_OR_RETURN(b.ptr_, backend->Allocate(std::max<int64_t>(b.bytes_, 4)));
  CAIRN_RETURN_IF_ERROR(backend->ToWorking(count, staging.f32(), b.ptr_));
  CAIRN_RETURN_IF_ERROR(backend->Synchronize());
  return b;
}

absl::StatusOr<std::vector<float>> DeviceBuffer::ReadF32(int64_t n) const {
  n = std::min(n, count_);
  std::vector<float> out(n);
  CAIRN_RETURN_IF_ERROR(backend_->CopyToHost(out.data(), ptr_, n * sizeof(float)));
  CAIRN_RETURN_IF_ERROR(backend_->Synchronize());
  return out;
}

absl::StatusOr<std::vector<float>> DeviceBuffer::ReadWorking(int64_t n) const {
  if (backend_->working_dtype() == runtime::DType::kFloat32) return ReadF32(n);
  n = std::min(n, count_);
  CAIRN_ASSIGN_OR_RETURN(DeviceBuffer staging, F32(backend_, n, 0.0f));
  CAIRN_RETURN_IF_ERROR(backend_->FromWorking(n, ptr_, staging.f32()));
  return staging.ReadF32(n);
}

}  // namespace cairn::agent
