// runtime/cuda/device_probe.h — what CUDA devices this machine has, and how fast they copy memory.
//
// The smallest piece of the CUDA runtime: it lists the visible devices (name, memory, SM count,
// compute capability) and times a device-to-device copy. The agent's probe harness and the
// `cuda-probe` binary build on it; it also proves that CUDA code compiles and links in CI.
//
//   absl::StatusOr<std::vector<DeviceInfo>> devices = ProbeDevices();
//   if (!devices.ok()) return devices.status();   // FailedPrecondition "no CUDA device" on CPU hosts
//   for (const DeviceInfo& d : *devices) {
//     absl::StatusOr<double> gbps = MeasureCopyBandwidth(d.index, int64_t{256} << 20);
//   }
//
// This header includes no CUDA header: callers compile with the ordinary C++ toolchain. CUDA error
// codes are turned into absl::Status inside device_probe.cu, and nowhere else.
#ifndef CAIRN_RUNTIME_CUDA_DEVICE_PROBE_H_
#define CAIRN_RUNTIME_CUDA_DEVICE_PROBE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cairn::runtime::cuda {

// One CUDA device as cudaGetDeviceProperties reports it.
struct DeviceInfo {
  int index = 0;                       // CUDA device ordinal (after CUDA_VISIBLE_DEVICES)
  std::string name;                    // e.g. "NVIDIA H200"
  int64_t total_memory_bytes = 0;      // global memory
  int sm_count = 0;                    // streaming multiprocessors
  int compute_capability_major = 0;    // 9 for Hopper
  int compute_capability_minor = 0;    // 0 for sm_90
};

// Lists every visible CUDA device, ordered by index.
// Errors: FailedPrecondition "no CUDA device" when there is no device or no usable driver (every CPU
// host); Internal for any other CUDA error. Thread-safe (the CUDA runtime is).
absl::StatusOr<std::vector<DeviceInfo>> ProbeDevices();

// Times device-to-device cudaMemcpy of `bytes` bytes on `device` (one warm-up copy, then the mean of
// several copies timed with CUDA events) and returns the copy rate in GB/s (1e9 bytes copied per
// second). Each copy reads and writes `bytes`, so the memory traffic is twice the returned rate.
// Allocates 2 * bytes of device memory for the duration of the call and sets `device` as the calling
// thread's current device.
// Errors: InvalidArgument for a device index out of range or bytes <= 0; FailedPrecondition when there
// is no CUDA device; ResourceExhausted when the buffers do not fit; Internal for other CUDA errors.
absl::StatusOr<double> MeasureCopyBandwidth(int device, int64_t bytes);

}  // namespace cairn::runtime::cuda

#endif  // CAIRN_RUNTIME_CUDA_DEVICE_PROBE_H_
