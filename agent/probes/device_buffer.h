// agent/probes/device_buffer.h — a buffer of backend memory for the probes (freed with the object),
// filled with one value in the backend's working dtype or in fp32, and read back for checks.
//
//   CAIRN_ASSIGN_OR_RETURN(DeviceBuffer a, DeviceBuffer::Working(backend, n, 0.5f));
//   backend->MatmulForward(shape, a.data(), ...);
//   CAIRN_ASSIGN_OR_RETURN(std::vector<float> host, a.ReadWorking(4));   // first 4 elements
#ifndef CAIRN_AGENT_PROBES_DEVICE_BUFFER_H_
#define CAIRN_AGENT_PROBES_DEVICE_BUFFER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::agent {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  // `count` elements of the working dtype, every one `value`.
  static absl::StatusOr<DeviceBuffer> Working(runtime::ComputeBackend* backend, int64_t count,
                                              float value);
  // `count` fp32 elements, every one `value`.
  static absl::StatusOr<DeviceBuffer> F32(runtime::ComputeBackend* backend, int64_t count,
                                          float value);

  void* data() const { return ptr_; }
  float* f32() const { return static_cast<float*>(ptr_); }
  int64_t count() const { return count_; }
  int64_t bytes() const { return bytes_; }

  // The first `n` elements (working dtype / fp32) as fp32 on the host.
  absl::StatusOr<std::vector<float>> ReadWorking(int64_t n) const;
  absl::StatusOr<std::vector<float>> ReadF32(int64_t n) const;

 private:
  runtime::ComputeBackend* backend_ = nullptr;
  void* ptr_ = nullptr;
  int64_t count_ = 0;
  int64_t bytes_ = 0;
};

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROBES_DEVICE_BUFFER_H_
