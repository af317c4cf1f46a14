#include "runtime/comm/nccl/testing/cuda_staging_memory.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "runtime/compute/cuda/cuda_stream.h"

namespace cairn::runtime::testing {
namespace {

absl::Status Cuda(cudaError_t error, absl::string_view call) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(call, ": ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")"));
}

}  // namespace

absl::Status CudaStagingMemory::Use() const {
  return Cuda(cudaSetDevice(device_), absl::StrCat("cudaSetDevice(", device_, ")"));
}

absl::StatusOr<void*> CudaStagingMemory::AllocateStaging(size_t bytes) {
  CAIRN_RETURN_IF_ERROR(Use());
  void* ptr = nullptr;
  const cudaError_t error = cudaMalloc(&ptr, bytes);
  if (error == cudaErrorMemoryAllocation) {
    return absl::ResourceExhaustedError(absl::StrCat("cudaMalloc of ", bytes, " bytes"));
  }
  CAIRN_RETURN_IF_ERROR(Cuda(error, "cudaMalloc"));
  return ptr;
}

void CudaStagingMemory::FreeStaging(void* staging) {
  if (Use().ok()) (void)cudaFree(staging);
}

absl::Status CudaStagingMemory::CopyToStaging(void* staging, const void* buffer, size_t bytes,
                                              Stream* stream) {
  CAIRN_RETURN_IF_ERROR(Use());
  return Cuda(cudaMemcpyAsync(staging, buffer, bytes, cudaMemcpyHostToDevice,
                              CudaStreamOf(stream)),
              "cudaMemcpyAsync host to device");
}

absl::Status CudaStagingMemory::CopyFromStaging(void* buffer, const void* staging, size_t bytes,
                                                Stream* stream) {
  CAIRN_RETURN_IF_ERROR(Use());
  return Cuda(cudaMemcpyAsync(buffer, staging, bytes, cudaMemcpyDeviceToHost,
                              CudaStreamOf(stream)),
              "cudaMemcpyAsync device to host");
}

absl::Status CudaStagingMemory::Synchronize(Stream* stream) {
  CAIRN_RETURN_IF_ERROR(Use());
  return Cuda(cudaStreamSynchronize(CudaStreamOf(stream)), "cudaStreamSynchronize");
}

int VisibleGpuCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

}  // namespace cairn::runtime::testing
