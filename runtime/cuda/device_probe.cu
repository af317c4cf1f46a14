// runtime/cuda/device_probe.cu — ProbeDevices and MeasureCopyBandwidth on the CUDA runtime API.
//
// This file is the one place where CUDA error codes become absl::Status (see ToStatus below).
// It launches no kernel: it is a .cu file so that it goes through nvcc like the rest of runtime/cuda.
#include "runtime/cuda/device_probe.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

// Returns from the enclosing function with ToStatus(call) when a CUDA runtime call fails; the call's
// source text names it in the message.
#define CAIRN_RETURN_IF_CUDA_ERROR(call) CAIRN_RETURN_IF_ERROR(ToStatus((call), #call))

namespace cairn::runtime::cuda {
namespace {

// Copies timed after the warm-up copy; the result is their mean.
constexpr int kTimedCopies = 10;

// Maps a CUDA error to the code a caller can act on: no device or no driver -> FailedPrecondition
// (run elsewhere), out of memory -> ResourceExhausted (ask for less), anything else -> Internal.
absl::Status ToStatus(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return absl::OkStatus();
  const std::string detail =
      absl::StrCat(what, ": ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")");
  switch (error) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInitializationError:
    case cudaErrorCompatNotSupportedOnDevice:
      return absl::FailedPreconditionError(absl::StrCat("no CUDA device: ", detail));
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(detail);
    default:
      return absl::InternalError(detail);
  }
}

// Frees what MeasureCopyBandwidth allocated, on every return path. Teardown errors are ignored: the
// measurement is already decided by then.
struct CopyResources {
  void* src = nullptr;
  void* dst = nullptr;
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  ~CopyResources() {
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
    if (src != nullptr) cudaFree(src);
    if (dst != nullptr) cudaFree(dst);
  }
};

absl::StatusOr<int> DeviceCount() {
  int count = 0;
  CAIRN_RETURN_IF_CUDA_ERROR(cudaGetDeviceCount(&count));
  if (count == 0) return absl::FailedPreconditionError("no CUDA device: cudaGetDeviceCount() == 0");
  return count;
}

}  // namespace

absl::StatusOr<std::vector<DeviceInfo>> ProbeDevices() {
  CAIRN_ASSIGN_OR_RETURN(const int count, DeviceCount());
  std::vector<DeviceInfo> devices;
  devices.reserve(count);
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    CAIRN_RETURN_IF_CUDA_ERROR(cudaGetDeviceProperties(&prop, i));
    DeviceInfo info;
    info.index = i;
    info.name = prop.name;
    info.total_memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
    info.sm_count = prop.multiProcessorCount;
    info.compute_capability_major = prop.major;
    info.compute_capability_minor = prop.minor;
    devices.push_back(std::move(info));
  }
  return devices;
}

absl::StatusOr<double> MeasureCopyBandwidth(int device, int64_t bytes) {
  if (bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("bytes must be positive, got ", bytes));
  }
  CAIRN_ASSIGN_OR_RETURN(const int count, DeviceCount());
  if (device < 0 || device >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("device ", device, " out of range: ", count, " CUDA device(s)"));
  }
  const size_t size = static_cast<size_t>(bytes);
  CopyResources r;
  CAIRN_RETURN_IF_CUDA_ERROR(cudaSetDevice(device));
  CAIRN_RETURN_IF_CUDA_ERROR(cudaMalloc(&r.src, size));
  CAIRN_RETURN_IF_CUDA_ERROR(cudaMalloc(&r.dst, size));
  CAIRN_RETURN_IF_CUDA_ERROR(cudaMemset(r.src, 1, size));
  CAIRN_RETURN_IF_CUDA_ERROR(cudaEventCreate(&r.start));
  CAIRN_RETURN_IF_CUDA_ERROR(cudaEventCreate(&r.stop));
  // Warm-up: the first copy pays for lazy initialisation and page mapping.
  CAIRN_RETURN_IF_CUDA_ERROR(cudaMemcpy(r.dst, r.src, size, cudaMemcpyDeviceToDevice));
  CAIRN_RETURN_IF_CUDA_ERROR(cudaEventRecord(r.start));
  for (int i = 0; i < kTimedCopies; ++i) {
    CAIRN_RETURN_IF_CUDA_ERROR(cudaMemcpyAsync(r.dst, r.src, size, cudaMemcpyDeviceToDevice));
  }
  CAIRN_RETURN_IF_CUDA_ERROR(cudaEventRecord(r.stop));
  CAIRN_RETURN_IF_CUDA_ERROR(cudaEventSynchronize(r.stop));
  float elapsed_ms = 0.0f;
  CAIRN_RETURN_IF_CUDA_ERROR(cudaEventElapsedTime(&elapsed_ms, r.start, r.stop));
  if (elapsed_ms <= 0.0f) {
    return absl::InternalError("cudaEventElapsedTime reported no elapsed time");
  }
  const double seconds_per_copy = elapsed_ms * 1e-3 / kTimedCopies;
  return static_cast<double>(bytes) / seconds_per_copy / 1e9;
}

}  // namespace cairn::runtime::cuda
