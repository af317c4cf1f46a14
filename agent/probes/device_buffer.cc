#include "agent/probes/device_buffer.h"

#include <algorithm>
#include <vector>

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

namespace {

// Probe buffers hold one value everywhere; filling them from the host would move every byte over
// PCIe (seconds for the multi-GiB GEMM cases, minutes over a probe's hundreds of cases). Instead:
// zero on the device, or the first `head_bytes` written once and then doubled by on-device copies.
constexpr int64_t kChunkElements = int64_t{1} << 20;

absl::Status Replicate(runtime::ComputeBackend* backend, char* base, int64_t head_bytes,
                       int64_t bytes) {
  for (int64_t filled = head_bytes; filled < bytes;) {
    const int64_t n = std::min(filled, bytes - filled);
    CAIRN_RETURN_IF_ERROR(backend->CopyOnDevice(base + filled, base, n));
    filled += n;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DeviceBuffer> DeviceBuffer::F32(runtime::ComputeBackend* backend, int64_t count,
                                               float value) {
  DeviceBuffer b;
  b.backend_ = backend;
  b.count_ = count;
  b.bytes_ = count * static_cast<int64_t>(sizeof(float));
  CAIRN_ASSIGN_OR_RETURN(b.ptr_, backend->Allocate(std::max<int64_t>(b.bytes_, 4)));
  if (value == 0.0f) {
    CAIRN_RETURN_IF_ERROR(backend->Zero(b.ptr_, b.bytes_));
  } else {
    const std::vector<float> host(std::min(count, kChunkElements), value);
    CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(b.ptr_, host.data(), host.size() * sizeof(float)));
    CAIRN_RETURN_IF_ERROR(Replicate(backend, static_cast<char*>(b.ptr_),
                                    host.size() * sizeof(float), b.bytes_));
  }
  CAIRN_RETURN_IF_ERROR(backend->Synchronize());
  return b;
}

absl::StatusOr<DeviceBuffer> DeviceBuffer::Working(runtime::ComputeBackend* backend, int64_t count,
                                                   float value) {
  if (backend->working_dtype() == runtime::DType::kFloat32) return F32(backend, count, value);
  DeviceBuffer b;
  b.backend_ = backend;
  b.count_ = count;
  const int64_t element = runtime::DTypeSize(backend->working_dtype());
  b.bytes_ = count * element;
  CAIRN_ASSIGN_OR_RETURN(b.ptr_, backend->Allocate(std::max<int64_t>(b.bytes_, 4)));
  if (value == 0.0f) {
    CAIRN_RETURN_IF_ERROR(backend->Zero(b.ptr_, b.bytes_));
  } else {
    // The first chunk converted from an fp32 staging buffer of its size, then replicated.
    const int64_t head = std::min(count, kChunkElements);
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer staging, F32(backend, head, value));
    CAIRN_RETURN_IF_ERROR(backend->ToWorking(head, staging.f32(), b.ptr_));
    CAIRN_RETURN_IF_ERROR(
        Replicate(backend, static_cast<char*>(b.ptr_), head * element, b.bytes_));
  }
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
